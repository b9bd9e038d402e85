/*
 * tlsbench.c - the cost of the sidecars' mutual TLS on one core (bench/run.sh tls).
 *
 *   tlsbench CLIENT_DIR SERVER_DIR [--seconds S] [--record N]
 *
 * CLIENT_DIR and SERVER_DIR hold two workloads' credentials in the --cert-dir layout
 * (ringmeshctl ca issue; the same root). Everything runs in this one thread, through the
 * sidecar's own sidecar/tls.c API: a client and a server struct tls_conn whose sinks append
 * the ciphertext to memory buffers, each fed the other's output with tls_conn_feed. No
 * sockets, no kernel: what is measured is the TLS work a sidecar's worker does.
 *
 * One JSON line per result on stdout:
 *   handshake_full     full TLS 1.3 mutual handshakes (ECDSA P-256 SVIDs, chain and SPIFFE
 *                      ID checks on both sides, ALPN h2), tls_conn_new to established and
 *                      tls_conn_free, for S seconds. per_sec: client and server together on
 *                      this core; client_us / server_us: CPU per handshake of each side
 *                      (CLOCK_THREAD_CPUTIME_ID around its calls), and the rate one core
 *                      would reach doing only that side (server_per_sec_core: what an
 *                      inbound sidecar's worker can accept).
 *   handshake_resumed  the same with TLS 1.3 resumption: the client keeps the server's
 *                      last ticket per peer (tls_conn_new's resume) and every handshake
 *                      after the first resumes (PSK with (EC)DHE, so still one ECDH per
 *                      side, but no certificate signatures or chain verification);
 *                      resumed_count says how many did.
 *   bulk               one established pair: the client encrypts N-byte writes
 *                      (tls_conn_write, one TLS record each at 16 KiB), the server is fed
 *                      and decrypts them (tls_conn_read); MB/s of plaintext for S seconds,
 *                      on the wall clock and on this thread's CPU time (mb_per_s_cpu: both
 *                      sides on one core), and encrypt and decrypt alone. The cipher is
 *                      tls.c's first choice for the wolfSSL build (ChaCha20-Poly1305 on
 *                      Debian's, AES-128-GCM with AES-NI), named in "cipher".
 *   aead               the raw AEADs on N-byte buffers, wolfCrypt directly (the pair's cipher
 *                      cannot be changed through tls.h): ChaCha20-Poly1305 against
 *                      AES-128-GCM, encrypt MB/s on CPU time, to show why tls.c puts
 *                      ChaCha20 first.
 * cpu_seconds against seconds shows how much of the core others took meanwhile.
 *
 * Build: the Makefile's bench rule compiles each bench .c file with -Icommon and links only
 * libcommon.a, which has no tls.c; that build is a stub that says so. bench/run.sh tls
 * compiles this file again with -Isidecar -Ixds against libsidecar.a and libxds.a.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if __has_include("tls.h") && __has_include("ca.h")

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/types.h>

#include "tls.h"

#define SNI "origin.default.svc.cluster.local"

struct buf {
    char *p;
    size_t len, cap;
};

static int sink(void *arg, const char *p, size_t n)
{
    struct buf *b = arg;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return -ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static double now(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
static double wall(void)
{
    return now(CLOCK_MONOTONIC);
}
static double cpu(void)
{
    return now(CLOCK_THREAD_CPUTIME_ID);
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "tlsbench: %s: %s\n", what, why);
    exit(1);
}

/* Hands what is in *from to t (and empties *from). */
static void feed(struct tls_conn *t, struct buf *from)
{
    if (from->len && tls_conn_feed(t, from->p, from->len) < 0)
        die("tls_conn_feed", "out of memory");
    from->len = 0;
}

struct pair {
    struct tls_conn *c, *s;
    struct buf c2s, s2c;
    double c_cpu, s_cpu; /* seconds spent in each side's calls */
};

/* One handshake: new connections on both sides, both established, and the server's
 * ticket read by the client (so with resume, the next one resumes). Dies on failure. */
static void handshake(struct pair *pr, struct tls_creds *cc, struct tls_creds *sc, const char *want,
                      const char *resume)
{
    char err[256];
    const char *wants[1] = {want};
    double t0 = cpu();
    pr->c = tls_conn_new(cc, false, SNI, TLS_ALPN_H2, wants, 1, resume, sink, &pr->c2s, err,
                         sizeof(err));
    if (!pr->c)
        die("client tls_conn_new", err);
    double t1 = cpu();
    pr->s = tls_conn_new(sc, true, NULL, NULL, NULL, 0, NULL, sink, &pr->s2c, err, sizeof(err));
    if (!pr->s)
        die("server tls_conn_new", err);
    double t2 = cpu();
    pr->c_cpu += t1 - t0;
    pr->s_cpu += t2 - t1;
    int rc = 0, rs = 0;
    for (int i = 0; i < 16 && (rc != 1 || rs != 1); i++) {
        t0 = cpu();
        if (rc != 1 && (rc = tls_conn_handshake(pr->c)) < 0)
            die("client handshake", tls_conn_reason(pr->c));
        t1 = cpu();
        feed(pr->s, &pr->c2s);
        if (rs != 1 && (rs = tls_conn_handshake(pr->s)) < 0)
            die("server handshake", tls_conn_reason(pr->s));
        t2 = cpu();
        feed(pr->c, &pr->s2c);
        pr->c_cpu += t1 - t0;
        pr->s_cpu += t2 - t1;
    }
    if (rc != 1 || rs != 1)
        die("handshake", "did not finish in 16 rounds");
    char tmp[256];
    t0 = cpu();
    feed(pr->c, &pr->s2c);
    if (tls_conn_read(pr->c, tmp, sizeof(tmp)) < 0)
        die("client read after the handshake", tls_conn_reason(pr->c));
    pr->c_cpu += cpu() - t0;
}

static void pair_free(struct pair *pr)
{
    double t0 = cpu();
    tls_conn_free(pr->c);
    double t1 = cpu();
    tls_conn_free(pr->s);
    double t2 = cpu();
    pr->c_cpu += t1 - t0;
    pr->s_cpu += t2 - t1;
    pr->c = pr->s = NULL;
    pr->c2s.len = pr->s2c.len = 0;
}

/* Full handshakes (resume NULL), or resumed ones: the client keeps the server's last
 * ticket under resume, as a sidecar does per peer address. */
static void bench_handshakes(struct tls_creds *cc, struct tls_creds *sc, double secs,
                             const char *resume)
{
    struct pair pr = {0};
    const char *want = tls_creds_id(sc);
    /* one to check what a handshake gives (and, resuming, to get the first ticket), and
     * one more to check the second resumes; not counted */
    handshake(&pr, cc, sc, want, resume);
    pair_free(&pr);
    handshake(&pr, cc, sc, want, resume);
    char peer_c[TLS_ID_MAX], peer_s[TLS_ID_MAX], alpn[32];
    snprintf(peer_c, sizeof(peer_c), "%s", tls_conn_peer_id(pr.c));
    snprintf(peer_s, sizeof(peer_s), "%s", tls_conn_peer_id(pr.s));
    snprintf(alpn, sizeof(alpn), "%s", tls_conn_alpn(pr.c));
    bool resumed = tls_conn_resumed(pr.c) && tls_conn_resumed(pr.s);
    if (resumed != (resume != NULL))
        die(resume ? "handshake_resumed" : "handshake_full",
            resume ? "the second handshake did not resume" : "a full handshake resumed");
    pair_free(&pr);
    memset(&pr, 0, sizeof(pr));

    uint64_t n = 0, n_resumed = 0;
    double w0 = wall(), c0 = cpu(), w1;
    do {
        handshake(&pr, cc, sc, want, resume);
        n_resumed += tls_conn_resumed(pr.c);
        pair_free(&pr);
        n++;
    } while ((w1 = wall()) - w0 < secs);
    double c1 = cpu();
    printf("{\"test\":\"%s\",\"handshakes\":%llu,\"resumed_count\":%llu,\"seconds\":%.3f,"
           "\"cpu_seconds\":%.3f,\"per_sec\":%.1f,\"per_sec_cpu\":%.1f,\"client_us\":%.1f,"
           "\"server_us\":%.1f,\"client_per_sec_core\":%.1f,\"server_per_sec_core\":%.1f,"
           "\"alpn\":\"%s\",\"resumed\":%s,\"client_saw\":\"%s\",\"server_saw\":\"%s\"}\n",
           resume ? "handshake_resumed" : "handshake_full", (unsigned long long)n,
           (unsigned long long)n_resumed, w1 - w0, c1 - c0, (double)n / (w1 - w0),
           (double)n / (c1 - c0), pr.c_cpu / (double)n * 1e6, pr.s_cpu / (double)n * 1e6,
           (double)n / pr.c_cpu, (double)n / pr.s_cpu, alpn, resumed ? "true" : "false", peer_c,
           peer_s);
    free(pr.c2s.p);
    free(pr.s2c.p);
}

static void bench_bulk(struct tls_creds *cc, struct tls_creds *sc, double secs, size_t rec)
{
    struct pair pr = {0};
    handshake(&pr, cc, sc, tls_creds_id(sc), NULL);
    char *plain = malloc(rec), *out = malloc(rec + 1024);
    if (!plain || !out)
        die("bulk", "out of memory");
    memset(plain, 'x', rec);
    /* whatever the server sent after its Finished (tickets) goes to the client first */
    ssize_t r;
    while ((r = tls_conn_read(pr.c, out, rec)) > 0)
        ;
    uint64_t bytes = 0, wire = 0;
    double enc = 0, dec = 0, w0 = wall(), c0 = cpu(), w1;
    do {
        for (int k = 0; k < 64; k++) {
            double t0 = cpu();
            if (tls_conn_write(pr.c, plain, rec) < 0)
                die("tls_conn_write", tls_conn_reason(pr.c));
            double t1 = cpu();
            wire += pr.c2s.len;
            feed(pr.s, &pr.c2s);
            size_t got = 0;
            while ((r = tls_conn_read(pr.s, out, rec + 1024)) > 0)
                got += (size_t)r;
            if (r < 0)
                die("tls_conn_read", tls_conn_reason(pr.s));
            double t2 = cpu();
            if (got != rec)
                die("bulk", "the server read back another size than was written");
            enc += t1 - t0;
            dec += t2 - t1;
            bytes += rec;
        }
    } while ((w1 = wall()) - w0 < secs);
    double c1 = cpu();
    const char *cipher = tls_conn_cipher(pr.c);
    printf("{\"test\":\"bulk\",\"cipher\":\"%s\",\"record\":%zu,"
           "\"bytes\":%llu,\"wire_bytes\":%llu,\"seconds\":%.3f,\"cpu_seconds\":%.3f,"
           "\"mb_per_s\":%.1f,\"mb_per_s_cpu\":%.1f,\"encrypt_mb_per_s\":%.1f,"
           "\"decrypt_mb_per_s\":%.1f}\n",
           cipher, rec, (unsigned long long)bytes, (unsigned long long)wire, w1 - w0, c1 - c0,
           (double)bytes / (w1 - w0) / 1e6, (double)bytes / (c1 - c0) / 1e6,
           (double)bytes / enc / 1e6, (double)bytes / dec / 1e6);
    pair_free(&pr);
    free(pr.c2s.p);
    free(pr.s2c.p);
    free(plain);
    free(out);
}

/* rates on this thread's CPU time (a shared machine takes wall time, not CPU time) */
static void aead_line(const char *name, uint64_t bytes, double secs, double cpus, const char *note)
{
    printf("{\"test\":\"aead\",\"cipher\":\"%s\",\"bytes\":%llu,\"seconds\":%.3f,"
           "\"cpu_seconds\":%.3f,\"encrypt_mb_per_s\":%.1f%s%s%s}\n",
           name, (unsigned long long)bytes, secs, cpus, cpus > 0 ? (double)bytes / cpus / 1e6 : 0.0,
           note ? ",\"note\":\"" : "", note ? note : "", note ? "\"" : "");
}

static void bench_aead(double secs, size_t rec)
{
    byte key[32] = {1}, iv[12] = {2}, aad[5] = {0x17, 3, 3, 0, 0}, tag[16];
    byte *in = calloc(1, rec), *out = malloc(rec);
    if (!in || !out)
        die("aead", "out of memory");
    uint64_t bytes = 0;
    double w0 = wall(), c0 = cpu(), w1;
#if defined(HAVE_CHACHA) && defined(HAVE_POLY1305)
    do {
        for (int k = 0; k < 64; k++) {
            iv[11]++;
            if (wc_ChaCha20Poly1305_Encrypt(key, iv, aad, sizeof(aad), in, (word32)rec, out, tag) !=
                0)
                die("aead", "wc_ChaCha20Poly1305_Encrypt failed");
            bytes += rec;
        }
    } while ((w1 = wall()) - w0 < secs);
    aead_line("chacha20-poly1305", bytes, w1 - w0, cpu() - c0, NULL);
#else
    aead_line("chacha20-poly1305", 0, 0, 0, "not in this wolfSSL");
#endif
#ifdef HAVE_AESGCM
    Aes aes;
    if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0 || wc_AesGcmSetKey(&aes, key, 16) != 0)
        die("aead", "AES-GCM set-up failed");
    bytes = 0;
    w0 = wall();
    c0 = cpu();
    do {
        for (int k = 0; k < 64; k++) {
            iv[11]++;
            if (wc_AesGcmEncrypt(&aes, out, in, (word32)rec, iv, sizeof(iv), tag, sizeof(tag), aad,
                                 sizeof(aad)) != 0)
                die("aead", "wc_AesGcmEncrypt failed");
            bytes += rec;
        }
    } while ((w1 = wall()) - w0 < secs);
    wc_AesFree(&aes);
#ifdef WOLFSSL_AESNI
    aead_line("aes-128-gcm", bytes, w1 - w0, cpu() - c0, "AES-NI");
#else
    aead_line("aes-128-gcm", bytes, w1 - w0, cpu() - c0, "no AES-NI in this wolfSSL build");
#endif
#else
    aead_line("aes-128-gcm", 0, 0, 0, "not in this wolfSSL");
#endif
    free(in);
    free(out);
}

int main(int argc, char **argv)
{
    const char *dirs[2] = {NULL, NULL};
    double secs = 3;
    size_t rec = 16384;
    int nd = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            secs = atof(argv[++i]);
        else if (!strcmp(argv[i], "--record") && i + 1 < argc)
            rec = (size_t)atol(argv[++i]);
        else if (argv[i][0] != '-' && nd < 2)
            dirs[nd++] = argv[i];
        else
            nd = 99;
    }
    if (nd != 2 || secs <= 0 || rec == 0 || rec > 16384) {
        fprintf(stderr,
                "usage: tlsbench CLIENT_DIR SERVER_DIR [--seconds S] [--record N<=16384]\n");
        return 2;
    }
    char err[512];
    struct tls_creds *cc = tls_creds_load(dirs[0], err, sizeof(err));
    if (!cc)
        die(dirs[0], err);
    struct tls_creds *sc = tls_creds_load(dirs[1], err, sizeof(err));
    if (!sc)
        die(dirs[1], err);
    fprintf(stderr, "tlsbench: client %s, server %s, %.1f s per test\n", tls_creds_id(cc),
            tls_creds_id(sc), secs);
    setvbuf(stdout, NULL, _IOLBF, 0);
    bench_handshakes(cc, sc, secs, NULL);
    bench_handshakes(cc, sc, secs, "10.0.0.2:15006");
    bench_bulk(cc, sc, secs, rec);
    bench_aead(secs, rec);
    tls_creds_release(cc);
    tls_creds_release(sc);
    return 0;
}

#else /* the Makefile's build: no sidecar headers, no libsidecar.a */

int main(void)
{
    fprintf(stderr, "tlsbench: this build has no sidecar/tls.c (the Makefile links bench/ with "
                    "libcommon.a only); run bench/run.sh tls, which builds it with libsidecar.a\n");
    return 2;
}

#endif
