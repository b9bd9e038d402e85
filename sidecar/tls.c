/*
 * tls.c - see tls.h.
 */
#include <wolfssl/options.h>

#include "tls.h"

#include <errno.h>
#include <pthread.h>
#include <sys/random.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/openssl/x509v3.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "ca.h"
#include "fileio.h"

/* By measurement (bench/results/2026-11-25-tls*.md): Debian's wolfSSL has no AES-NI and
 * its ChaCha20-Poly1305 is 2.2x its AES-GCM; built with AES-NI (make WOLFSSL=fast) AES-GCM
 * is 2.3x ChaCha20. A peer of the other build still agrees on one of the two. */
#ifdef WOLFSSL_AESNI
#define TLS_CIPHERS "TLS13-AES128-GCM-SHA256:TLS13-CHACHA20-POLY1305-SHA256"
#else
#define TLS_CIPHERS "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256"
#endif

#define TLS_RESUME_KEY_MAX 320
#define TLS_SESSION_CACHE  256

/* A client's resumable session with one peer (address, SNI, ALPN): the server's last
 * ticket and the identity that peer proved in the full handshake the ticket descends
 * from (a resumed handshake carries no certificate). */
struct tls_cached {
    char key[TLS_RESUME_KEY_MAX];
    WOLFSSL_SESSION *sess; /* owned */
    char peer[TLS_ID_MAX];
    uint64_t used;         /* LRU clock */
};

struct tls_creds {
    atomic_int refs;
    WOLFSSL_CTX *client, *server;
    char id[TLS_ID_MAX];
    char trust_domain[256];
    time_t not_after;
    /* Client sessions made with these credentials: handshakes only, never the request
     * path, so a mutex. A new generation starts empty (the peer must see our new
     * certificate), and its server context has a new ticket key. */
    pthread_mutex_t cache_lock;
    struct tls_cached *cache; /* TLS_SESSION_CACHE entries, allocated on first use */
    uint64_t cache_clock;
    /* Server tickets: sealed with ticket_key (ChaCha20-Poly1305, random per generation);
     * the ticket's key name carries the index of the client's identity in peers, which
     * the seal authenticates. A resumed handshake has no certificate, and wolfSSL's own
     * session cache (which would keep it) is too small to count on: this is how the
     * server knows who resumed, with memory per distinct peer identity, not per session. */
    uint8_t ticket_key[32];
    char **peers; /* owned; under cache_lock */
    uint32_t n_peers, cap_peers;
};

struct tls_conn {
    struct tls_creds *creds; /* held */
    WOLFSSL *ssl;
    bool server, established, failed;
    char *cin; /* ciphertext fed and not yet read by wolfSSL */
    size_t cin_off, cin_len, cin_cap;
    tls_sink sink;
    void *sink_arg;
    char **want; /* owned copies */
    size_t n_want;
    char peer[TLS_ID_MAX];
    char alpn[32];
    char reason[1280];
    const char *ticket_peer; /* server: the identity a resumed session's ticket names
                              * (in creds->peers) */
    char resume_key[TLS_RESUME_KEY_MAX]; /* client: "" = no resumption */
    char resume_peer[TLS_ID_MAX];        /* client: the cached session's peer identity */
    bool session_saved;                  /* client: a ticket from this connection is cached */
    uint64_t old_ticket;                 /* client: hash of the ticket it resumed with (0 none) */
    unsigned save_tries;                 /* client: reads that looked for a new ticket */
    enum tls_fail fail;                  /* with reason: its class */
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t pub_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_creds *current;
static atomic_uint_fast64_t generation;

static void global_init(void)
{
    wolfSSL_Init();
}

/* ---- wolfSSL's I/O, over memory ---- */

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct tls_conn *t = ctx;
    size_t have = t->cin_len - t->cin_off;
    if (!have)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = have < (size_t)sz ? have : (size_t)sz;
    memcpy(buf, t->cin + t->cin_off, n);
    t->cin_off += n;
    if (t->cin_off == t->cin_len)
        t->cin_off = t->cin_len = 0;
    return (int)n;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct tls_conn *t = ctx;
    if (t->sink(t->sink_arg, buf, (size_t)sz) < 0)
        return WOLFSSL_CBIO_ERR_GENERAL;
    return sz;
}

/* ---- credentials ---- */

#define TICKET_MAGIC     "rmt1"
#define TICKET_NO_PEER   UINT32_MAX
#define TICKET_MAX_PEERS 4096

/* The index of id in c->peers, added if new; TICKET_NO_PEER when the table is full. */
static uint32_t peer_index(struct tls_creds *c, const char *id)
{
    uint32_t i;
    pthread_mutex_lock(&c->cache_lock);
    for (i = 0; i < c->n_peers; i++)
        if (!strcmp(c->peers[i], id))
            goto out;
    i = TICKET_NO_PEER;
    if (c->n_peers == c->cap_peers && c->cap_peers < TICKET_MAX_PEERS) {
        uint32_t cap = c->cap_peers ? c->cap_peers * 2 : 16;
        char **q = realloc(c->peers, cap * sizeof(*q));
        if (q) {
            c->peers = q;
            c->cap_peers = cap;
        }
    }
    if (c->n_peers < c->cap_peers && (c->peers[c->n_peers] = strdup(id)))
        i = c->n_peers++;
out:
    pthread_mutex_unlock(&c->cache_lock);
    return i;
}

static const char *peer_at(struct tls_creds *c, uint32_t i)
{
    pthread_mutex_lock(&c->cache_lock);
    const char *id = i < c->n_peers ? c->peers[i] : NULL;
    pthread_mutex_unlock(&c->cache_lock); /* entries never move or go before c does */
    return id;
}

static int peer_svid(struct tls_conn *t, char *why, size_t whylen);

/* wolfSSL's ticket sealing (server): enc seals ticket[0..len) in place, else opens it.
 * The AAD is the key name and IV, so the identity index cannot be changed. */
static int ticket_cb(WOLFSSL *ssl, unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                     unsigned char iv[WOLFSSL_TICKET_IV_SZ], unsigned char mac[WOLFSSL_TICKET_MAC_SZ],
                     int enc, unsigned char *ticket, int len, int *out_len, void *arg)
{
    struct tls_creds *c = arg;
    struct tls_conn *t = wolfSSL_GetIOReadCtx(ssl);
    unsigned char aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ];
    uint32_t idx;
    if (len < 0)
        return WOLFSSL_TICKET_RET_FATAL;
    if (enc) {
        char why[256];
        idx = TICKET_NO_PEER;
        if (t && t->ticket_peer)
            idx = peer_index(c, t->ticket_peer);
        else if (t && peer_svid(t, why, sizeof(why)) == 0)
            idx = peer_index(c, t->peer);
        memset(name, 0, WOLFSSL_TICKET_NAME_SZ);
        memcpy(name, TICKET_MAGIC, 4);
        memcpy(name + 4, &idx, sizeof(idx));
        if (getrandom(iv, WOLFSSL_TICKET_IV_SZ, 0) != WOLFSSL_TICKET_IV_SZ)
            return WOLFSSL_TICKET_RET_FATAL;
        memcpy(aad, name, WOLFSSL_TICKET_NAME_SZ);
        memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
        memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
        if (wc_ChaCha20Poly1305_Encrypt(c->ticket_key, iv, aad, sizeof(aad), ticket, (word32)len,
                                        ticket, mac) != 0)
            return WOLFSSL_TICKET_RET_FATAL;
        *out_len = len;
        return WOLFSSL_TICKET_RET_OK;
    }
    /* another generation's ticket, or not ours: a full handshake instead */
    if (memcmp(name, TICKET_MAGIC, 4) != 0)
        return WOLFSSL_TICKET_RET_REJECT;
    memcpy(aad, name, WOLFSSL_TICKET_NAME_SZ);
    memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
    if (wc_ChaCha20Poly1305_Decrypt(c->ticket_key, iv, aad, sizeof(aad), ticket, (word32)len, mac,
                                    ticket) != 0)
        return WOLFSSL_TICKET_RET_REJECT;
    memcpy(&idx, name + 4, sizeof(idx));
    const char *id = peer_at(c, idx);
    if (!id || !t)
        return WOLFSSL_TICKET_RET_REJECT; /* who it was is not known: prove it again */
    t->ticket_peer = id;
    *out_len = len;
    return WOLFSSL_TICKET_RET_OK;
}

static WOLFSSL_CTX *make_ctx(bool server, struct tls_creds *tc, const char *chain, const char *key,
                             const char *roots, char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx =
        wolfSSL_CTX_new(server ? wolfTLSv1_3_server_method() : wolfTLSv1_3_client_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    const char *what = NULL, *file = NULL;
    if (wolfSSL_CTX_use_certificate_chain_file(ctx, chain) != WOLFSSL_SUCCESS)
        what = "not a PEM certificate chain", file = chain;
    else if (wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
        what = "not a PEM private key", file = key;
    else if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS)
        what = "the key does not match the certificate", file = key;
    else if (wolfSSL_CTX_load_verify_locations(ctx, roots, NULL) != WOLFSSL_SUCCESS)
        what = "not a PEM trust bundle", file = roots;
    else if (wolfSSL_CTX_set_cipher_list(ctx, TLS_CIPHERS) != WOLFSSL_SUCCESS)
        what = "cipher list refused", file = "(built in)";
    if (what) {
        snprintf(err, errlen, "%s: %s", file, what);
        wolfSSL_CTX_free(ctx);
        return NULL;
    }
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    if (server && tc) {
        /* stateless tickets only: resumption must not depend on wolfSSL's global cache */
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
        wolfSSL_CTX_set_TicketEncCb(ctx, ticket_cb);
        wolfSSL_CTX_set_TicketEncCtx(ctx, tc);
    }
    wolfSSL_SetIORecv(ctx, io_recv);
    wolfSSL_SetIOSend(ctx, io_send);
    return ctx;
}

/* A whole small file (a PEM), NUL-terminated; NULL if unreadable. */
static char *read_file(const char *path, size_t *len)
{
    char *buf;
    return file_read(path, 1u << 20, &buf, len) == 0 ? buf : NULL;
}

struct tls_creds *tls_creds_load(const char *dir, char *err, size_t errlen)
{
    char chain[4096], key[4096], roots[4096];
    pthread_once(&init_once, global_init);
    snprintf(chain, sizeof(chain), "%s/cert-chain.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(roots, sizeof(roots), "%s/root-cert.pem", dir);
    struct tls_creds *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->cache_lock, NULL);
    /* wolfSSL 5.5.4's own key check passes any P-256 key with any P-256 certificate */
    size_t cl = 0, kl = 0;
    char *cp = read_file(chain, &cl), *kp = read_file(key, &kl), pair[256];
    int kr = cp && kp ? ca_check_key_pair(cp, cl, kp, kl, pair, sizeof(pair)) : -ENOENT;
    if (kp)
        memset(kp, 0, kl);
    free(cp);
    free(kp);
    if (kr < 0) {
        if (kr == -ENOENT)
            snprintf(err, errlen, "%s or %s: cannot read it", chain, key);
        else
            snprintf(err, errlen, "%s and %s do not belong together: %s", chain, key, pair);
        tls_creds_release(c);
        return NULL;
    }
    if (getrandom(c->ticket_key, sizeof(c->ticket_key), 0) != (ssize_t)sizeof(c->ticket_key)) {
        snprintf(err, errlen, "getrandom: %s", strerror(errno));
        tls_creds_release(c);
        return NULL;
    }
    c->client = make_ctx(false, c, chain, key, roots, err, errlen);
    c->server = c->client ? make_ctx(true, c, chain, key, roots, err, errlen) : NULL;
    if (!c->server) {
        tls_creds_release(c);
        return NULL;
    }
    /* our own identity, read back from the leaf the way a peer will read it */
    char why[256];
    WOLFSSL_X509 *leaf = wolfSSL_X509_load_certificate_file(chain, WOLFSSL_FILETYPE_PEM);
    if (!leaf || ca_svid_id_x509(leaf, c->id, sizeof(c->id), why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: the workload certificate is not an X.509-SVID: %s", chain,
                 leaf ? why : "unreadable");
        wolfSSL_X509_free(leaf);
        tls_creds_release(c);
        return NULL;
    }
    const char *td = c->id + strlen("spiffe://");
    size_t tdl = strcspn(td, "/");
    snprintf(c->trust_domain, sizeof(c->trust_domain), "%.*s", (int)tdl, td);
    const WOLFSSL_ASN1_TIME *na = wolfSSL_X509_get_notAfter(leaf);
    struct tm tm;
    if (na && wolfSSL_ASN1_TIME_to_tm(na, &tm) == WOLFSSL_SUCCESS)
        c->not_after = timegm(&tm);
    wolfSSL_X509_free(leaf);
    return c;
}

void tls_creds_hold(struct tls_creds *c)
{
    if (c)
        atomic_fetch_add(&c->refs, 1);
}

void tls_creds_release(struct tls_creds *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
        for (int i = 0; c->cache && i < TLS_SESSION_CACHE; i++)
            wolfSSL_SESSION_free(c->cache[i].sess);
        free(c->cache);
        for (uint32_t i = 0; i < c->n_peers; i++)
            free(c->peers[i]);
        free(c->peers);
        memset(c->ticket_key, 0, sizeof(c->ticket_key));
        pthread_mutex_destroy(&c->cache_lock);
        wolfSSL_CTX_free(c->client);
        wolfSSL_CTX_free(c->server);
        free(c);
    }
}

const char *tls_creds_id(const struct tls_creds *c)
{
    return c->id;
}

const char *tls_creds_trust_domain(const struct tls_creds *c)
{
    return c->trust_domain;
}

time_t tls_creds_not_after(const struct tls_creds *c)
{
    return c->not_after;
}

void tls_publish(struct tls_creds *c)
{
    pthread_mutex_lock(&pub_lock);
    struct tls_creds *old = current;
    current = c;
    atomic_fetch_add(&generation, 1);
    pthread_mutex_unlock(&pub_lock);
    tls_creds_release(old);
}

struct tls_creds *tls_acquire(void)
{
    pthread_mutex_lock(&pub_lock);
    struct tls_creds *c = current;
    tls_creds_hold(c);
    pthread_mutex_unlock(&pub_lock);
    return c;
}

void tls_thread_done(void)
{
#ifdef FP_ECC
    wc_ecc_fp_free(); /* this thread's fixed-point ECC tables */
#endif
}

uint64_t tls_generation(void)
{
    return atomic_load(&generation);
}

void tls_shutdown(void)
{
    tls_publish(NULL);
    /* every context is gone with the workers: wolfSSL's global caches (ECC fixed-point
     * tables among them) go too, so a leak check sees only real leaks */
    wolfSSL_Cleanup();
}

/* ---- client session cache ---- */

/* A hash of the ticket t's session holds now (0: none). */
static uint64_t ticket_hash(struct tls_conn *t)
{
    unsigned char buf[2048];
    word32 len = sizeof(buf);
    if (wolfSSL_get_SessionTicket(t->ssl, buf, &len) != WOLFSSL_SUCCESS || len == 0 ||
        len > sizeof(buf))
        return 0;
    uint64_t h = 0xcbf29ce484222325ull;
    for (word32 i = 0; i < len; i++)
        h = (h ^ buf[i]) * 0x100000001b3ull;
    return h | 1;
}

/* Sets t up to resume the session cached under t->resume_key, if any. */
static void cache_resume(struct tls_conn *t)
{
    struct tls_creds *c = t->creds;
    pthread_mutex_lock(&c->cache_lock);
    for (int i = 0; c->cache && i < TLS_SESSION_CACHE; i++) {
        struct tls_cached *e = &c->cache[i];
        if (e->sess && strcmp(e->key, t->resume_key) == 0) {
            if (wolfSSL_set_session(t->ssl, e->sess) == WOLFSSL_SUCCESS) {
                snprintf(t->resume_peer, sizeof(t->resume_peer), "%s", e->peer);
                e->used = ++c->cache_clock;
                t->old_ticket = ticket_hash(t);
            }
            break;
        }
    }
    pthread_mutex_unlock(&c->cache_lock);
}

/* Once the server's ticket has arrived (it follows the handshake, so it is read with
 * the first records after it): caches it for the next connection to the same peer,
 * replacing the older one or the least recently used entry. */
static void cache_save(struct tls_conn *t)
{
    /* A resumed connection holds the ticket it resumed with until the server's new one
     * arrives; saved before that, the old ticket would go with this connection's secret
     * and the next resumption fails ("binder does not verify"). */
    uint64_t now = ticket_hash(t);
    if (!now || now == t->old_ticket) {
        /* a server that sends no ticket: stop looking (it costs a copy per read) */
        if (++t->save_tries >= 16)
            t->session_saved = true;
        return;
    }
    WOLFSSL_SESSION *sess = wolfSSL_get1_session(t->ssl);
    if (!sess)
        return;
    if (wolfSSL_SESSION_has_ticket(sess) != 1) {
        wolfSSL_SESSION_free(sess);
        return;
    }
    t->session_saved = true;
    struct tls_creds *c = t->creds;
    pthread_mutex_lock(&c->cache_lock);
    if (!c->cache)
        c->cache = calloc(TLS_SESSION_CACHE, sizeof(*c->cache));
    struct tls_cached *slot = NULL;
    for (int i = 0; c->cache && i < TLS_SESSION_CACHE; i++) {
        struct tls_cached *e = &c->cache[i];
        if (e->sess && strcmp(e->key, t->resume_key) == 0) {
            slot = e;
            break;
        }
        if (!slot || (slot->sess && (!e->sess || e->used < slot->used)))
            slot = e;
    }
    if (slot) {
        wolfSSL_SESSION_free(slot->sess);
        slot->sess = sess;
        sess = NULL;
        snprintf(slot->key, sizeof(slot->key), "%s", t->resume_key);
        snprintf(slot->peer, sizeof(slot->peer), "%s", t->peer);
        slot->used = ++c->cache_clock;
    }
    pthread_mutex_unlock(&c->cache_lock);
    wolfSSL_SESSION_free(sess);
}

/* ---- connections ---- */

struct tls_conn *tls_conn_new(struct tls_creds *c, bool server, const char *sni, const char *alpn,
                              const char *const *want_ids, size_t n_want, const char *resume,
                              tls_sink sink, void *sink_arg, char *err, size_t errlen)
{
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->ssl = wolfSSL_new(server ? c->server : c->client);
    if (!t->ssl) {
        snprintf(err, errlen, "cannot create a TLS session");
        free(t);
        return NULL;
    }
    tls_creds_hold(c);
    t->creds = c;
    t->server = server;
    t->sink = sink;
    t->sink_arg = sink_arg;
    if (n_want && !(t->want = calloc(n_want, sizeof(char *)))) {
        snprintf(err, errlen, "out of memory");
        tls_conn_free(t);
        return NULL;
    }
    for (size_t i = 0; i < n_want; i++) {
        if (!(t->want[i] = strdup(want_ids[i]))) {
            snprintf(err, errlen, "out of memory");
            tls_conn_free(t);
            return NULL;
        }
        t->n_want++;
    }
    wolfSSL_SetIOReadCtx(t->ssl, t);
    wolfSSL_SetIOWriteCtx(t->ssl, t);
    if (server) {
        static char list[] = TLS_ALPN_H2 ",http/1.1," TLS_ALPN_TCP;
        wolfSSL_UseALPN(t->ssl, list, sizeof(list) - 1, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
    } else {
        char list[32];
        snprintf(list, sizeof(list), "%s", alpn ? alpn : TLS_ALPN_H2);
        wolfSSL_UseALPN(t->ssl, list, (unsigned)strlen(list), WOLFSSL_ALPN_FAILED_ON_MISMATCH);
        if (sni && *sni)
            wolfSSL_UseSNI(t->ssl, WOLFSSL_SNI_HOST_NAME, sni, (unsigned short)strlen(sni));
        if (resume && *resume) {
            snprintf(t->resume_key, sizeof(t->resume_key), "%s|%s|%s", resume, sni ? sni : "",
                     list);
            cache_resume(t);
        }
    }
    return t;
}

void tls_conn_free(struct tls_conn *t)
{
    if (!t)
        return;
    wolfSSL_free(t->ssl);
    tls_creds_release(t->creds);
    for (size_t i = 0; i < t->n_want; i++)
        free(t->want[i]);
    free(t->want);
    free(t->cin);
    free(t);
}

int tls_conn_feed(struct tls_conn *t, const char *p, size_t n)
{
    if (t->cin_off && t->cin_off == t->cin_len)
        t->cin_off = t->cin_len = 0;
    if (t->cin_len + n > t->cin_cap) {
        if (t->cin_off) { /* slide what is left to the front first */
            memmove(t->cin, t->cin + t->cin_off, t->cin_len - t->cin_off);
            t->cin_len -= t->cin_off;
            t->cin_off = 0;
        }
        size_t cap = t->cin_cap ? t->cin_cap : 16384;
        while (cap < t->cin_len + n)
            cap *= 2;
        if (cap != t->cin_cap) {
            char *q = realloc(t->cin, cap);
            if (!q)
                return -ENOMEM;
            t->cin = q;
            t->cin_cap = cap;
        }
    }
    memcpy(t->cin + t->cin_len, p, n);
    t->cin_len += n;
    return 0;
}

static void set_reason_from_ssl(struct tls_conn *t, int ret)
{
    int e = wolfSSL_get_error(t->ssl, ret);
    char buf[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n((unsigned long)e, buf, sizeof(buf));
    long v = wolfSSL_get_verify_result(t->ssl);
    if (v != 0) { /* the verify result is a wolfSSL error code: its own text says why */
        const char *why = wolfSSL_X509_verify_cert_error_string(v);
        if (!why || strstr(why, "unknown"))
            why = v == 2 || v == 20 || v == 21 ? "unknown issuer (no root of the bundle signs it)"
                  : v == 10                    ? "certificate has expired"
                  : v == 9                     ? "certificate is not yet valid"
                  : v == 7                     ? "certificate signature failure"
                                               : NULL;
        snprintf(t->reason, sizeof(t->reason), "certificate verify failed: %s (%ld)",
                 why ? why : buf, v);
        t->fail = v == 9 || v == 10 ? TLS_FAIL_EXPIRED : TLS_FAIL_UNTRUSTED;
    } else {
        snprintf(t->reason, sizeof(t->reason), "%s", buf);
        /* wolfSSL names a missing client certificate, or an expired one it checked itself */
        t->fail = strstr(buf, "certificate") && (strstr(buf, "peer") || strstr(buf, "return"))
                      ? TLS_FAIL_NO_CERT
                  : e == ASN_AFTER_DATE_E || e == ASN_BEFORE_DATE_E ? TLS_FAIL_EXPIRED
                  : e == ASN_NO_SIGNER_E || e == ASN_SIG_CONFIRM_E ? TLS_FAIL_UNTRUSTED
                                                                   : TLS_FAIL_PROTOCOL;
    }
}

/* The peer certificate's SPIFFE ID into t->peer (once: the ticket callback may have read it
 * already). 0, or -1 with why. */
static int peer_svid(struct tls_conn *t, char *why, size_t whylen)
{
    if (t->peer[0])
        return 0;
    WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(t->ssl);
    if (!x) {
        snprintf(why, whylen, "the peer sent no certificate");
        t->fail = TLS_FAIL_NO_CERT;
        return -1;
    }
    char w[256];
    int r = ca_svid_id_x509(x, t->peer, sizeof(t->peer), w, sizeof(w));
    wolfSSL_X509_free(x);
    if (r < 0) {
        t->peer[0] = 0;
        snprintf(why, whylen, "the peer's certificate is not an SVID: %s", w);
        t->fail = TLS_FAIL_NOT_SVID;
        return -1;
    }
    return 0;
}

/* The peer's identity: one SPIFFE ID in our trust domain, and one the client expects. A
 * resumed session has no certificate: the identity is the one its full handshake proved
 * (the ticket is bound to that handshake's secret): the client keeps it with the ticket,
 * the server reads it from the ticket. */
static int check_peer(struct tls_conn *t)
{
    bool resumed = wolfSSL_session_reused(t->ssl) == 1;
    if (resumed && t->server && t->ticket_peer) {
        snprintf(t->peer, sizeof(t->peer), "%s", t->ticket_peer);
    } else if (resumed && !t->server && t->resume_peer[0]) {
        snprintf(t->peer, sizeof(t->peer), "%s", t->resume_peer);
    } else if (peer_svid(t, t->reason, sizeof(t->reason)) < 0) {
        return -1;
    }
    const char *td = t->peer + strlen("spiffe://");
    size_t tdl = strcspn(td, "/");
    if (tdl != strlen(t->creds->trust_domain) || strncmp(td, t->creds->trust_domain, tdl) != 0) {
        snprintf(t->reason, sizeof(t->reason), "the peer %s is not in trust domain %s", t->peer,
                 t->creds->trust_domain);
        t->fail = TLS_FAIL_WRONG_ID;
        return -1;
    }
    if (!t->server && t->n_want) {
        for (size_t i = 0; i < t->n_want; i++)
            if (strcmp(t->want[i], t->want[i][0] == '/' ? td + tdl : t->peer) == 0)
                return 0;
        snprintf(t->reason, sizeof(t->reason), "the peer %s is not an identity of the service",
                 t->peer);
        t->fail = TLS_FAIL_WRONG_ID;
        return -1;
    }
    return 0;
}

int tls_conn_handshake(struct tls_conn *t)
{
    if (t->established)
        return 1;
    if (t->failed)
        return -1;
    int r = t->server ? wolfSSL_accept(t->ssl) : wolfSSL_connect(t->ssl);
    if (r != WOLFSSL_SUCCESS) {
        int e = wolfSSL_get_error(t->ssl, r);
        if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
            return 0;
        set_reason_from_ssl(t, r);
        t->failed = true;
        return -1;
    }
    if (check_peer(t) < 0) {
        t->failed = true;
        return -1;
    }
    char *proto = NULL;
    unsigned short plen = 0;
    if (wolfSSL_ALPN_GetProtocol(t->ssl, &proto, &plen) == WOLFSSL_SUCCESS && proto)
        snprintf(t->alpn, sizeof(t->alpn), "%.*s", (int)plen, proto);
    t->established = true;
    return 1;
}

bool tls_conn_established(const struct tls_conn *t)
{
    return t->established;
}

ssize_t tls_conn_read(struct tls_conn *t, char *out, size_t cap)
{
    if (t->failed)
        return -EPROTO;
    int r = wolfSSL_read(t->ssl, out, (int)(cap > INT32_MAX ? INT32_MAX : cap));
    if (!t->session_saved && t->resume_key[0])
        cache_save(t);
    if (r > 0)
        return r;
    int e = wolfSSL_get_error(t->ssl, r);
    if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
        return 0;
    if (e == WOLFSSL_ERROR_ZERO_RETURN)
        return -EPIPE;
    set_reason_from_ssl(t, r);
    t->failed = true;
    return -EPROTO;
}

int tls_conn_write(struct tls_conn *t, const char *p, size_t n)
{
    while (n) {
        int k = n > 16384 ? 16384 : (int)n;
        int r = wolfSSL_write(t->ssl, p, k);
        if (r <= 0) {
            set_reason_from_ssl(t, r);
            t->failed = true;
            return -EPROTO;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

const char *tls_conn_peer_id(const struct tls_conn *t)
{
    return t->peer;
}

const char *tls_conn_alpn(const struct tls_conn *t)
{
    return t->alpn;
}

bool tls_conn_resumed(const struct tls_conn *t)
{
    return wolfSSL_session_reused(t->ssl) == 1;
}

const char *tls_conn_cipher(const struct tls_conn *t)
{
    const char *c = t->established ? wolfSSL_get_cipher_name(t->ssl) : NULL;
    return c ? c : "";
}

enum tls_fail tls_conn_fail(const struct tls_conn *t)
{
    return t->reason[0] ? t->fail : TLS_FAIL_CLOSED;
}

const char *tls_conn_reason(const struct tls_conn *t)
{
    if (t->reason[0])
        return t->reason;
    return t->established ? "no error" : "the connection closed during the handshake";
}
