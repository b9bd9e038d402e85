/*
 * client.h - the sidecar's delta xDS client: one long-lived
 * POST /ringmesh.xds.v1/DeltaResources on libcurl's multi interface over HTTP/2 (h2c
 * prior knowledge for http://, ALPN h2 for https://), on its own thread.
 *
 * The request body is streamed: a read callback hands curl the queued lines (the six
 * subscribe lines, then one ACK/NACK per response) and pauses the upload when nothing is
 * queued; xds_client_queue() (any thread) appends and wakes the loop with
 * curl_multi_wakeup(), which unpauses it. The response body is cut into lines and each
 * goes through xds_delta_handle() (xds/delta.h), whose apply callback the sidecar
 * provides. A stream that ends, fails or carries a line that cannot be answered is
 * reopened after a jittered backoff (250 ms doubling to 15 s, +-50%) and resumes with
 * initial_resource_versions; the held state and the published snapshot stay meanwhile.
 * After each accepted update the held set is written to the cache file, if any
 * (temporary file + rename).
 *
 * Threads: xds_client_start() starts the client's thread, which owns the curl handles and
 * the delta state; xds_client_status() and xds_client_queue() may be called from any
 * thread; the apply callback runs on the client's thread.
 */
#ifndef RINGMESH_XDS_CLIENT_H
#define RINGMESH_XDS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "delta.h"

#define XDS_LINE_MAX   (64u << 20) /* PROTOCOL.md: a longer line ends the stream */
#define XDS_BACKOFF_MIN_MS 250
#define XDS_BACKOFF_MAX_MS 15000

/* A control plane address: http://host:port or https://host:port (no path). */
struct xds_url {
    bool tls;
    char host[256]; /* without the brackets of an IPv6 literal */
    unsigned short port;
    char base[300]; /* the URL as curl is given it, without a trailing slash */
};

/* Parses and checks url. 0, or -EINVAL with err saying what is wrong. Pure. */
int xds_url_parse(const char *url, struct xds_url *out, char *err, size_t errlen);

/* The wait before reconnect attempt n (0 = the first retry): 250 ms * 2^n capped at
 * 15 s, times a uniform factor in [0.5, 1.5]. seed: the caller's rand_r() state. Pure. */
unsigned xds_backoff_ms(unsigned attempt, unsigned *seed);

struct xds_client_config {
    const char *url;        /* borrowed: checked with xds_url_parse() */
    const char *node_json;  /* borrowed, copied: the "node" object of the first line */
    const char *cert_dir;   /* borrowed, may be NULL: for https, root-cert.pem verifies the
                               server and cert-chain.pem + key.pem, when present, are the
                               client certificate */
    const char *cache_path; /* borrowed, may be NULL: --xds-cache */
    xds_apply_cb apply;     /* compiles a candidate; publishes it when warm */
    void *apply_arg;
};

/* What /stats and /config_dump show. */
struct xds_status {
    bool connected;     /* a stream is open and answered 200 */
    bool warm;          /* every type received once (or loaded from the cache) */
    uint64_t updates_accepted, updates_rejected, reconnects;
    char acked_version[XDS_T_COUNT][XDS_VERSION_MAX];
    size_t held[XDS_T_COUNT];
    char last_nack[XDS_ERROR_MAX]; /* "" when none */
    char last_nack_type[128];
    char last_nack_nonce[XDS_VERSION_MAX];
    time_t last_nack_at;
    char last_error[512];          /* why the last stream ended; "" when none yet */
};

struct xds_client;

/* A client for cfg, holding *initial's state when it is not NULL (e.g. from the cache;
 * taken over, *initial is left empty). NULL with err on a bad URL or out of memory. */
struct xds_client *xds_client_new(const struct xds_client_config *cfg, struct xds_delta *initial,
                                  char *err, size_t errlen);
/* Starts the client's thread. 0 or -errno. */
int xds_client_start(struct xds_client *c);
/* Stops the thread (ending the stream) and frees everything. NULL is fine. */
void xds_client_free(struct xds_client *c);
/* A copy of the current status. Thread-safe. */
void xds_client_status(struct xds_client *c, struct xds_status *out);
/* Queues line[0..len) (one JSON object and its '\n') on the open stream's request body and
 * wakes the client's loop. Lines queued while no stream is open are dropped with the
 * stream (a new stream starts with its own subscribe lines). 0 or -ENOMEM. Thread-safe. */
int xds_client_queue(struct xds_client *c, const char *line, size_t len);

/* Reads the --xds-cache file path into d (xds_delta_load_cache()). 0, -ENOENT when there
 * is none, or another -errno with err naming the file. */
int xds_client_load_cache(const char *path, struct xds_delta *d, char *err, size_t errlen);
/* Writes d's cache to path atomically (path.tmp, fsync, rename). 0 or -errno. */
int xds_client_write_cache(const char *path, const struct xds_delta *d);

/* A response body for libcurl to append to (CURLOPT_WRITEFUNCTION xds_body_write,
 * CURLOPT_WRITEDATA a struct xds_body): p is malloc'd and NUL-terminated; past max bytes
 * the transfer fails. The caller frees p. */
struct xds_body {
    char *p;
    size_t len, max;
};
size_t xds_body_write(char *data, size_t size, size_t nmemb, void *arg);

/*
 * POST /ringmesh.ca.v1/Sign on the control plane at url (blocking; for start-up and the
 * renewal thread, never a worker): csr_pem in, the answer's cert_chain and root_cert out
 * (malloc'd, NUL-terminated) and its expiry (0 when the answer has none). bearer, when not
 * NULL, is sent as "authorization: Bearer <bearer>"; cert_dir, when not NULL, holds the
 * trust bundle (root-cert.pem) that verifies an https control plane, and without a bearer
 * the client certificate (cert-chain.pem, key.pem) that identifies a renewal. timeout_ms bounds the whole exchange. 0, or
 * -errno with err naming the HTTP status and the server's {"error":...}.
 */
int xds_ca_sign(const char *url, const char *bearer, const char *cert_dir, const char *csr_pem,
                long timeout_ms, char **cert_chain, char **root_cert, time_t *expires, char *err,
                size_t errlen);

#endif
