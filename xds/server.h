/*
 * server.h - ringmesh-xds: the control plane's state and the parts that share it.
 *
 *   main_xds.c     flags, the CA, the manifest directory (inotify, debounced reloads),
 *                  signals, the loop
 *   server_h2.c    the sidecar ports 15010 (h2c) and 15012 (TLS 1.3, server_tls.c): delta
 *                  xDS streams (xds/PROTOCOL.md) and POST /ringmesh.ca.v1/Sign
 *   server_api.c   15014: HTTP/1.1 /metrics, /ready and the ringmeshctl API
 *   store.c, delta.c, store_dir.c: the pure store and delta logic, the directory
 *
 * One thread runs everything on one common/loop: a store change and every push happen on
 * it, so nothing locks. Ownership: struct xds_server owns the store, the CA, every
 * connection (each frees itself when its socket has closed) and the listeners.
 */
#ifndef RINGMESH_XDS_SERVER_H
#define RINGMESH_XDS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ca.h"
#include "loop.h"
#include "store.h"

struct xds_conn;
struct xds_stream;
struct api_conn;

/* Push time buckets (seconds) for /metrics: the time from a store change (or a stream's
 * request) to its response being queued. */
#define XDS_PUSH_BUCKETS 8
extern const double xds_push_bucket_s[XDS_PUSH_BUCKETS];

struct xds_metrics {
    uint64_t pushes[MODEL_KIND_COUNT];
    uint64_t nacks[MODEL_KIND_COUNT];
    uint64_t acks[MODEL_KIND_COUNT];
    uint64_t push_hist[XDS_PUSH_BUCKETS]; /* cumulative counts are made when scraped */
    uint64_t push_count;
    double push_sum_s;
    uint64_t streams_total, stream_errors;
    uint64_t reloads_ok, reloads_failed;
    uint64_t api_applies, api_errors;
    uint64_t csr_signed, csr_refused;
    uint64_t tls_handshake_failures;
};

enum xds_listener { XDS_L_PLAIN, XDS_L_TLS, XDS_L_API, XDS_L_COUNT };

struct xds_server {
    struct loop *loop; /* owned */
    struct store store;
    const char *config_dir; /* borrowed from argv */
    const char *api_token;  /* borrowed; NULL = mutations from loopback only */
    bool ready;             /* the directory loaded once */
    uint64_t changed_at_ms; /* loop clock of the last store change */

    /* CA: NULL without --ca-dir */
    struct ca_root *ca;
    char *root_pem; /* owned: the trust bundle served with every SVID */
    uint8_t token_key[CA_TOKEN_KEY_LEN];
    unsigned cert_ttl_s;
    void *tls_ctx; /* owned WOLFSSL_CTX for 15012, NULL when it is off */

    int fds[XDS_L_COUNT]; /* listeners, -1 when off */
    struct loop_op accept_ops[XDS_L_COUNT];

    struct xds_stream *streams; /* every live xDS stream (borrowed: owned by its connection) */
    size_t n_streams;
    struct xds_conn *conns;     /* every sidecar-port connection (owned) */
    struct api_conn *api_conns; /* owned */
    uint64_t next_conn_id;
    bool stopping;
    struct xds_metrics m;
    /* Files the API itself wrote or removed lately, so the inotify events they cause do not
     * re-read the whole directory (at 10k objects that took seconds per apply): a name
     * with the inode, size and mtime it was left with (ino 0: removed). A ring. */
    struct xds_own_write {
        char name[256];
        unsigned long ino;
        long long size, mtime_ns;
    } own[64];
    unsigned n_own;
};

/* Notes that the API just wrote (or removed) path in the config directory. */
void xds_own_write_note(struct xds_server *srv, const char *path);
/* Whether dir/name is as the API last left it (an event for it is our own). */
bool xds_own_write_is(const struct xds_server *srv, const char *dir, const char *name);

/* Accepts on a sidecar port; tls says 15012. Takes fd. 0 or -errno (fd closed then). */
int xds_h2_accept(struct xds_server *srv, int fd, bool tls);
/* The store changed: every stream recomputes what it owes and pushes it. */
void xds_server_changed(struct xds_server *srv);
/* GET /api/v1/proxy-status's body (malloc'd JSON). */
char *xds_proxy_status_json(struct xds_server *srv);
/* Closes every sidecar connection (shutdown). */
void xds_h2_close_all(struct xds_server *srv);
/* Records a push's latency. */
void xds_metrics_push(struct xds_server *srv, enum model_kind k, double seconds);

/* The TLS context for 15012 from PEM cert chain and key; the root bundle verifies client
 * certificates when presented (optional). NULL with err. */
void *xds_tls_ctx_new(const char *cert_pem, const char *key_pem, const char *roots_pem,
                      char *err, size_t errlen);
void xds_tls_ctx_free(void *ctx);

/* The CA's answer to a Sign request body. identity: the peer's verified SPIFFE ID (15012
 * with a client certificate), else NULL; authorization: the request's header or NULL. Sets
 * *status (200, 400, 401, 403, 503) and returns the malloc'd JSON answer. */
char *xds_server_ca_sign(struct xds_server *srv, const char *body, size_t len, const char *identity,
                  const char *authorization, int *status);

/* Accepts on 15014. Takes fd. 0 or -errno. */
int xds_api_accept(struct xds_server *srv, int fd);
void xds_api_close_all(struct xds_server *srv);

/* Re-reads the directory and commits it as the whole store (a reload). 0, or -errno with
 * the error logged and the store untouched. */
int xds_server_reload(struct xds_server *srv);

#endif
