/*
 * tls_test.c - sidecar/tls: TLS 1.3 session resumption between two in-memory endpoints on
 * issued SVIDs. The second connection to a peer resumes and both sides still know who the
 * other is (the server from its sealed ticket, the client from its cache); two clients of
 * different identities resuming with one server each get their own identity; resumption
 * keeps working past wolfSSL's small global session cache (hundreds of sessions between);
 * a server with a new credential generation refuses the old tickets and the handshake
 * falls back to a full one without failing; a client with new credentials starts over; a
 * ticket reused by two connections at once works for both; the client's expected
 * identities ("/ns/N/sa/S" and whole IDs) are checked again on a resumed session.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ca.h"
#include "tap.h"
#include "tls.h"

struct buf {
    char p[1 << 16];
    size_t len;
};

static int sink(void *arg, const char *p, size_t n)
{
    struct buf *b = arg;
    if (b->len + n > sizeof(b->p))
        return -ENOMEM;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static void feed(struct tls_conn *t, struct buf *b)
{
    if (b->len)
        tls_conn_feed(t, b->p, b->len);
    b->len = 0;
}

struct pair {
    struct tls_conn *c, *s;
    struct buf c2s, s2c;
    int rc, rs;
};

static void pair_start(struct pair *p, struct tls_creds *cc, struct tls_creds *sc,
                       const char *resume, const char *const *want, size_t n_want)
{
    char err[256];
    memset(p, 0, sizeof(*p));
    p->c = tls_conn_new(cc, false, "web.default.svc.cluster.local", TLS_ALPN_H2, want, n_want,
                        resume, sink, &p->c2s, err, sizeof(err));
    p->s = tls_conn_new(sc, true, NULL, NULL, NULL, 0, NULL, sink, &p->s2c, err, sizeof(err));
    if (!p->c || !p->s)
        printf("# tls_conn_new: %s\n", err);
}

/* Runs the handshake to its end on both sides, then lets the client read the ticket. */
static bool pair_finish(struct pair *p)
{
    for (int i = 0; i < 8 && (p->rc != 1 || p->rs != 1); i++) {
        if (p->rc != 1)
            p->rc = tls_conn_handshake(p->c);
        feed(p->s, &p->c2s);
        if (p->rs != 1)
            p->rs = tls_conn_handshake(p->s);
        feed(p->c, &p->s2c);
        if (p->rc < 0 || p->rs < 0)
            break;
    }
    char tmp[64];
    if (p->rc == 1)
        tls_conn_read(p->c, tmp, sizeof(tmp));
    if (p->rc != 1 || p->rs != 1)
        printf("#   client: %s; server: %s\n", tls_conn_reason(p->c), tls_conn_reason(p->s));
    return p->rc == 1 && p->rs == 1;
}

static void pair_free(struct pair *p)
{
    tls_conn_free(p->c);
    tls_conn_free(p->s);
    p->c = p->s = NULL;
}

/* One connection: established? resumed? what each side saw. */
struct seen {
    bool ok, resumed_c, resumed_s;
    char client_saw[TLS_ID_MAX], server_saw[TLS_ID_MAX];
};

static struct seen connect_once(struct tls_creds *cc, struct tls_creds *sc, const char *resume,
                                const char *const *want, size_t n_want)
{
    static struct pair p;
    struct seen r = {0};
    pair_start(&p, cc, sc, resume, want, n_want);
    if (p.c && p.s) {
        r.ok = pair_finish(&p);
        r.resumed_c = tls_conn_resumed(p.c);
        r.resumed_s = tls_conn_resumed(p.s);
        snprintf(r.client_saw, sizeof(r.client_saw), "%s", tls_conn_peer_id(p.c));
        snprintf(r.server_saw, sizeof(r.server_saw), "%s", tls_conn_peer_id(p.s));
    }
    pair_free(&p);
    return r;
}

static char tmpdir[] = "/tmp/tls_test.XXXXXX";

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* A workload's --cert-dir from root, loaded. */
static struct tls_creds *workload(struct ca_root *root, const char *sa, const char *name)
{
    char dir[512], err[512];
    struct ca_pem leaf = {0}, rp = {0};
    struct ca_leaf_req req = {.ns = "default", .sa = sa, .hours = 24, .now = time(NULL)};
    snprintf(dir, sizeof(dir), "%s/%s", tmpdir, name);
    mkdir(dir, 0700);
    if (ca_issue(root, &req, &leaf, err, sizeof(err)) < 0 || ca_root_pem(root, &rp, err, sizeof(err)) < 0 ||
        write_file(dir, "cert-chain.pem", leaf.cert) < 0 || write_file(dir, "key.pem", leaf.key) < 0 ||
        write_file(dir, "root-cert.pem", rp.cert) < 0) {
        printf("# %s: %s\n", name, err);
        return NULL;
    }
    ca_pem_free(&leaf);
    ca_pem_free(&rp);
    struct tls_creds *c = tls_creds_load(dir, err, sizeof(err));
    if (!c)
        printf("# %s: %s\n", name, err);
    return c;
}

#define ID(sa) "spiffe://cluster.local/ns/default/sa/" sa

int main(void)
{
    char err[512];
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    struct ca_root *root = ca_root_new("cluster.local", 30, time(NULL), err, sizeof(err));
    ok(root, "a root (%s)", root ? "made" : err);
    if (!root)
        return tap_done();
    struct tls_creds *a = workload(root, "a", "a"), *c = workload(root, "c", "c"),
                     *b = workload(root, "b", "b");
    ok(a && b && c, "three workloads' credentials");
    if (!a || !b || !c)
        return tap_done();

    /* ---- the second connection resumes; both sides know who the other is */
    struct seen s = connect_once(a, b, "10.0.0.2:8080", NULL, 0);
    ok(s.ok && !s.resumed_c && !s.resumed_s, "first connection: a full handshake");
    is_str(s.server_saw, ID("a"), "first: the server sees a");
    is_str(s.client_saw, ID("b"), "first: the client sees b");
    s = connect_once(a, b, "10.0.0.2:8080", NULL, 0);
    ok(s.ok && s.resumed_c && s.resumed_s, "second connection to the same peer resumes");
    is_str(s.server_saw, ID("a"), "resumed: the server still sees a (from its ticket)");
    is_str(s.client_saw, ID("b"), "resumed: the client still sees b (from its cache)");

    /* ---- no resume key: full handshakes only */
    s = connect_once(a, b, NULL, NULL, 0);
    ok(s.ok && !s.resumed_c, "without a resume key: a full handshake");

    /* ---- another peer address: its own session */
    s = connect_once(a, b, "10.0.0.3:8080", NULL, 0);
    ok(s.ok && !s.resumed_c, "another peer address starts with a full handshake");

    /* ---- two clients of different identities, one server: each resumes as itself */
    s = connect_once(c, b, "10.0.0.2:8080", NULL, 0);
    ok(s.ok && !s.resumed_c, "c: a full handshake first");
    for (int i = 0; i < 3; i++) {
        struct seen sa = connect_once(a, b, "10.0.0.2:8080", NULL, 0);
        struct seen sc = connect_once(c, b, "10.0.0.2:8080", NULL, 0);
        ok(sa.ok && sa.resumed_s && !strcmp(sa.server_saw, ID("a")) && sc.ok && sc.resumed_s &&
               !strcmp(sc.server_saw, ID("c")),
           "round %d: a and c both resume and the server tells them apart (%s, %s)", i,
           sa.server_saw, sc.server_saw);
    }

    /* ---- past wolfSSL's own session cache (about a hundred sessions): 200 others between */
    struct seen first = connect_once(a, b, "10.0.0.9:1", NULL, 0);
    int fails = 0;
    for (int i = 0; i < 200; i++) {
        char key[32];
        snprintf(key, sizeof(key), "10.1.%d.%d:80", i / 250, i % 250);
        fails += !connect_once(c, b, key, NULL, 0).ok;
    }
    is_int(fails, 0, "200 other sessions between: none failed");
    s = connect_once(a, b, "10.0.0.9:1", NULL, 0);
    ok(first.ok && s.ok && s.resumed_s && !strcmp(s.server_saw, ID("a")),
       "after them, the first peer still resumes and is still a (%s, resumed %d)", s.server_saw,
       s.resumed_s);

    /* ---- a ticket used by two connections at once: both work */
    static struct pair p1, p2;
    pair_start(&p1, a, b, "10.0.0.2:8080", NULL, 0);
    pair_start(&p2, a, b, "10.0.0.2:8080", NULL, 0);
    bool ok1 = pair_finish(&p1), ok2 = pair_finish(&p2);
    ok(ok1 && ok2 && tls_conn_resumed(p1.s) && tls_conn_resumed(p2.s),
       "two connections resuming with the same ticket both work");
    pair_free(&p1);
    pair_free(&p2);

    /* ---- a resumed connection read before the server's new ticket arrives: what it holds
     * then is the old ticket, which must not be saved with this connection's secret */
    {
        static struct pair p3;
        pair_start(&p3, a, b, "10.0.0.7:8080", NULL, 0);
        pair_finish(&p3); /* full, and its ticket read */
        pair_free(&p3);
        pair_start(&p3, a, b, "10.0.0.7:8080", NULL, 0);
        char tmp[64];
        for (int i = 0; i < 8 && (p3.rc != 1 || p3.rs != 1); i++) {
            if (p3.rc != 1)
                p3.rc = tls_conn_handshake(p3.c);
            feed(p3.s, &p3.c2s);
            if (p3.rs != 1)
                p3.rs = tls_conn_handshake(p3.s);
            if (p3.rs == 1 && p3.rc == 1)
                break;
            feed(p3.c, &p3.s2c);
        }
        /* the client is established; the server's ticket is still in s2c */
        bool early = p3.rc == 1 && tls_conn_resumed(p3.c);
        if (p3.rc == 1)
            tls_conn_read(p3.c, tmp, sizeof(tmp)); /* nothing for it yet */
        feed(p3.c, &p3.s2c);
        if (p3.rc == 1)
            tls_conn_read(p3.c, tmp, sizeof(tmp));
        pair_free(&p3);
        s = connect_once(a, b, "10.0.0.7:8080", NULL, 0);
        ok(early && s.ok && s.resumed_s,
           "a read before the new ticket arrived: the next connection still resumes (%s)",
           s.ok ? "ok" : "failed");
    }

    /* ---- the server's credentials rotate: old tickets are refused, the handshake is full */
    struct tls_creds *b2 = workload(root, "b", "b2");
    s = connect_once(a, b2, "10.0.0.2:8080", NULL, 0);
    ok(s.ok && !s.resumed_s && !strcmp(s.server_saw, ID("a")),
       "a new server generation: the old ticket is refused, a full handshake, no failure");
    s = connect_once(a, b2, "10.0.0.2:8080", NULL, 0);
    ok(s.ok && s.resumed_s, "then the new generation's ticket resumes");
    s = connect_once(a, b, "10.0.0.2:8080", NULL, 0);
    ok(s.ok && !s.resumed_s, "the old generation refuses the new one's ticket");

    /* ---- the client's credentials rotate: it starts over (the peer must see the new cert) */
    struct tls_creds *a2 = workload(root, "a", "a2");
    s = connect_once(a2, b, "10.0.0.2:8080", NULL, 0);
    ok(s.ok && !s.resumed_c, "a new client generation: a full handshake");

    /* ---- expected identities are checked on resumed sessions too */
    const char *want_b[] = {"/ns/default/sa/web", "/ns/default/sa/b"};
    const char *want_web[] = {"/ns/default/sa/web", ID("web-v2")};
    s = connect_once(a2, b, "10.0.0.2:8080", want_b, 2);
    ok(s.ok && s.resumed_c, "resumed, b is one of the identities wanted (relative form)");
    s = connect_once(a2, b, "10.0.0.2:8080", want_web, 2);
    ok(!s.ok, "resumed, b is not one of the identities wanted: refused");
    s = connect_once(a2, b, "10.0.0.4:8080", want_web, 2);
    ok(!s.ok, "full handshake, b is not one of the identities wanted: refused");
    const char *want_whole[] = {ID("b")};
    s = connect_once(a2, b, "10.0.0.4:8080", want_whole, 1);
    ok(s.ok, "a whole SPIFFE ID wanted: accepted");

    tls_creds_release(a);
    tls_creds_release(a2);
    tls_creds_release(b);
    tls_creds_release(b2);
    tls_creds_release(c);
    ca_root_free(root);
    tls_shutdown();
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", tmpdir);
    return tap_done();
}
