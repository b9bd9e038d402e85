/*
 * http_internal.h - what the HTTP proxy's files share: connections (http_conn.c: the
 * socket, the HTTP/1.1 and HTTP/2 codecs in both roles, upstream pools) and proxied
 * streams (http_proxy.c: routing, balancing, retries, timeouts, body queues).
 *
 * Ownership: a connection (struct hconn) is owned by its worker's list and freed when
 * its sock reports closed. A stream (struct pstream) is owned by the proxy layer and
 * freed from a deferred reap once both of its connections let go of it. Connections
 * and streams point at each other (borrowed both ways) and each side detaches itself
 * from the other before it goes.
 */
#ifndef RINGMESH_HTTP_INTERNAL_H
#define RINGMESH_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cluster.h"
#include "h1.h"
#include "h2.h"
#include "http.h"
#include "loop.h"
#include "retry.h"
#include "router.h"
#include "sock.h"
#include "stats.h"
#include "stream.h"

#define HTTP_BODY_MARK     (256 * 1024) /* queued body bytes before the source pauses */
#define HTTP_H1_MAX_FIELDS 100

enum hmode {
    HM_DETECT, /* downstream: waiting for the first bytes to tell HTTP/1 from HTTP/2 */
    HM_H1,
    HM_H2,
    HM_TUNNEL, /* after a 101: bytes relayed as they are */
};

struct pstream;
struct pool;

/* One HTTP connection, downstream (server role: we answer requests) or upstream (client
 * role: we send them). */
struct hconn {
    struct worker *w;
    struct sock sock;
    enum hmode mode;
    bool client;
    enum stats_dir dir;
    uint64_t id;
    struct h2_conn *h2;         /* owned, HM_H2 */
    bool flushing, flush_again; /* h2_flush runs (its callbacks may submit more) */
    /* HTTP/1.1 */
    struct h1_parser p1;
    struct h1_decoder dec; /* the body coming in (request: server, response: client) */
    struct h1_header trailers[HTTP_H1_MAX_FIELDS];
    bool dec_on;
    enum stream_framing out_fr; /* framing of the body going out */
    bool out_open;              /* an h1 body is being written */
    struct pstream *cur;        /* HTTP/1.1: the stream using the connection now */
    bool close_after;           /* HTTP/1.1: close once the current exchange ends */
    bool tunnel_eof;            /* HM_TUNNEL: this side's input ended */
    struct hconn *peer;         /* HM_TUNNEL: the other side (borrowed) */
    /* downstream */
    struct sockaddr_storage dst; /* original destination */
    struct sockaddr_storage src; /* the client's address (AF_UNSPEC if unknown) */
    socklen_t dst_len;
    enum http_app_proto app; /* inbound: the local app's protocol */
    char svc[254];           /* inbound: the Service whose endpoint dst is, or "" */
    /* a downstream TCP tunnel over mTLS, counted in the labeled TCP metrics at its open
     * and close (relay_tcp_metrics): its Service (outbound: svc holds the name) */
    bool m_tcp;
    char m_ns[64];
    char *m_peer_id; /* owned: the mTLS peer's SPIFFE ID, inbound */
    /* upstream */
    struct pool *pool;            /* NULL once removed from it */
    struct hconn *pnext, *pprev;  /* in pool->conns */
    bool connected, goaway, idle; /* idle: HTTP/1.1 with no stream */
    uint32_t nstreams;            /* streams using it */
    struct cluster *cluster;      /* held: counted in up_cx */
    uint64_t idle_since_ms;
    uint64_t rq_window_ms; /* downstream: requests started in the current second */
    uint32_t rq_count;
    uint64_t rst_window_ms; /* HTTP/2 upstream: RST_STREAMs sent in the current second */
    uint32_t rst_count;
    uint64_t bytes_counted_in, bytes_counted_out; /* downstream: already in the stats */
    /* the worker's list */
    struct hconn *prev, *next;
    bool closing;
    bool counted_cx;  /* holds one sc->active_cx */
    bool tls_counted; /* downstream mTLS: the handshake was counted */
};

/* Upstream connections to one address in one protocol, with the requests waiting. */
struct pool {
    struct pool *next; /* hash chain */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    bool h2;
    bool tls; /* mTLS to a peer sidecar */
    uint64_t idh; /* tls: the identities its peers may prove (want_hash), 0 = any */
    enum stats_dir dir;
    struct hconn *conns;
    uint32_t nconns, connecting;
    struct pstream *wait_head, *wait_tail; /* requests waiting for a connection */
    uint32_t nwait;
    bool dispatching;
};

/* A body in transit: chunks copied from the source, sent from a cursor. Chunks before
 * the cursor are kept while the request may still be replayed. */
struct bq_chunk {
    struct bq_chunk *next;
    size_t len;
    char data[];
};
struct bq {
    struct bq_chunk *head, *tail;
    size_t total; /* bytes ever appended */
    size_t base;  /* bytes freed from the front */
    size_t sent;  /* bytes handed to the sink in this attempt */
    bool done;    /* the source ended the body */
};

enum attempt_state {
    AT_NONE,    /* no attempt running (before the first, between tries) */
    AT_WAIT,    /* waiting for a pooled connection */
    AT_SENT,    /* request submitted upstream */
    AT_HEADERS, /* response headers arrived and went downstream */
    AT_DONE,    /* response complete */
};

struct pstream {
    struct worker *w;
    uint64_t id;
    enum stats_dir dir;
    struct config_snapshot *snap; /* pinned for the stream's life */
    /* downstream */
    struct hconn *dc; /* NULL once the downstream went away */
    int32_t dsid;     /* HTTP/2 stream id; 0 on HTTP/1.1 */
    bool grpc, head_method;
    enum h1_method method_id;
    int peer_minor;                         /* HTTP/1.x downstream minor version */
    struct stream_head req, resp, rtr, ptr; /* request, response, their trailers */
    bool has_rtr, has_ptr;
    struct bq rq, rs;                /* request and response bodies */
    bool req_done;                   /* downstream finished the request (or aborted) */
    bool resp_started;               /* response headers went downstream */
    bool resp_done;                  /* the response was handed to the downstream codec whole */
    bool finished;                   /* counted and detached: waiting for the reap */
    bool upgrade;                    /* an Upgrade request */
    bool shadow;                     /* a RequestMirror copy: no downstream, response dropped */
    struct pstream *mirrors;         /* the copies of this request (borrowed) */
    struct pstream *mparent, *mnext; /* a copy: its original and its siblings */
    const char *upgrade_proto;       /* its Upgrade value (in req's arena) */
    bool req_sent;                   /* the request's end went upstream in this attempt */
    size_t rq_acked;                 /* request bytes acknowledged downstream (HTTP/2 window) */
    bool backoff;                    /* t_try is the wait before the next attempt */
    bool pumping_rq, pump_rq_again, pumping_rs, pump_rs_again; /* re-entry guards */
    uint64_t at_start_ms;                                      /* this attempt's start */
    /* routing */
    const struct router_port *port; /* in snap */
    const struct router_rule *rule;
    struct cluster *cluster;   /* held; NULL inbound */
    struct lb_host *host;      /* this attempt's endpoint (lb_request_start) */
    struct lb_host *prev_host; /* the last failed attempt's (compared only) */
    struct retry_policy rp;
    struct retry_state rst;
    bool counted_rq; /* in cluster->rq_active */
    bool counted_pending;
    /* owned: what the access log needs past the connections; NULL when it is off */
    struct ps_alog *alog;
    /* the attempt */
    enum attempt_state at;
    struct pool *pool;
    struct hconn *uc; /* the upstream connection of this attempt */
    int32_t usid;
    struct pstream *wnext; /* pool wait list */
    struct loop_timer t_total, t_try;
    uint64_t start_ms;
    int status;       /* the status sent downstream */
    const char *flag; /* response flag, NULL = none */
    /* the peer (downstream inbound, this attempt's upstream outbound), copied into the
     * request's arena: its SPIFFE ID when the hop is mTLS (ps_set_peer), and what it said
     * of itself in x-ringmesh-peer (metrics) */
    uint64_t t0_us;          /* monotonic, at the stream's start */
    const char *peer_id;     /* NULL: no mTLS */
    const char *peer_md;     /* NULL: none came */
    const char *in_svc;      /* inbound: the Service whose endpoint was called, or NULL */
    size_t peer_md_len;
    struct pstream *reap_next;
    struct pstream *prev, *next; /* the worker's list */
};

/* The worker's HTTP state (worker->http). */
struct http_worker {
    struct hconn *conns; /* every connection, both roles */
    size_t ndown;        /* downstream connections */
    struct pool **pools; /* hash buckets */
    size_t npools;
    struct pstream *streams; /* live streams */
    struct pstream *reap;    /* finished, freed by reap_timer */
    struct loop_timer reap_timer;
    struct router_scratch *scratch;
    uint64_t next_id;
    unsigned drain_dirs; /* 1 << enum stats_dir: directions draining (http_drain) */
};

struct http_worker *http_of(struct worker *w);

/* ---- http_conn.c: the proxy layer calls these ---- */

/* Downstream: the response of ps (resp head in ps->resp). */
int hc_response_head(struct hconn *c, struct pstream *ps, bool end);
int hc_response_data(struct hconn *c, struct pstream *ps, const char *p, size_t n, bool end);
int hc_response_trailers(struct hconn *c, struct pstream *ps);
size_t hc_response_room(struct hconn *c, struct pstream *ps);
void hc_consumed(struct hconn *c, struct pstream *ps, size_t n);
void hc_pause(struct hconn *c, bool pause);
/* Downstream stream failed after its response started: reset it (HTTP/2) or close the
 * connection (HTTP/1.1). */
void hc_reset(struct hconn *c, struct pstream *ps, uint32_t h2_code);
/* The stream lets go of its downstream connection (it finished or is being freed). */
void hc_detach(struct hconn *c, struct pstream *ps);
/* The stream was abandoned mid-way (the client went away or cannot be written to): the
 * HTTP/1.1 connection is closed; on HTTP/2 the stream lets go (a stream still open is
 * reset by the caller, hc_reset). */
void hc_forget(struct hconn *c, struct pstream *ps);
/* An interim "100 Continue" to an HTTP/1.1 client. */
void hc_continue(struct hconn *c);

/* Upstream: a connection to addr from the pool (NULL with ps queued to wait; ps gets
 * ps_upstream_ready or ps_upstream_failed later), or an error (-EAGAIN when the cluster's
 * connection limit left nowhere to go... see http_conn.c). */
int pool_acquire(struct worker *w, struct pstream *ps, const struct sockaddr_storage *addr,
                 socklen_t len, bool h2, bool tls, struct hconn **out);
/* ps stops waiting in its pool. */
void pool_unwait(struct pstream *ps);
int uc_request_head(struct hconn *c, struct pstream *ps, bool end);
int uc_request_data(struct hconn *c, struct pstream *ps, const char *p, size_t n, bool end);
int uc_request_trailers(struct hconn *c, struct pstream *ps);
size_t uc_request_room(struct hconn *c, struct pstream *ps);
void uc_consumed(struct hconn *c, struct pstream *ps, size_t n);
void uc_pause(struct hconn *c, bool pause);
/* ps lets go of its upstream stream: a stream not finished is cancelled (HTTP/2 RST,
 * HTTP/1.1 connection closed). */
void uc_detach(struct hconn *c, struct pstream *ps, bool cancel);
/* After a 101: the two HTTP/1.1 connections of ps relay bytes. */
void hc_tunnel(struct hconn *down, struct hconn *up);

/* ---- http_proxy.c: the connection layer calls these ---- */

struct pstream *ps_new(struct hconn *dc, int32_t dsid);
/* The request head is in ps->req (parsed); routing starts. */
void ps_request_head(struct pstream *ps);
void ps_request_data(struct pstream *ps, const char *p, size_t n);
void ps_request_trailers(struct pstream *ps); /* in ps->rtr */
void ps_request_end(struct pstream *ps);
/* The downstream stream or connection is gone. */
void ps_downstream_gone(struct pstream *ps);
void ps_downstream_writable(struct pstream *ps);
void ps_upstream_ready(struct pstream *ps, struct hconn *uc);
void ps_upstream_failed(struct pstream *ps, enum retry_outcome_kind kind);
void ps_response_head(struct pstream *ps); /* final head in ps->resp */
void ps_response_data(struct pstream *ps, const char *p, size_t n);
void ps_response_trailers(struct pstream *ps); /* in ps->ptr */
void ps_response_end(struct pstream *ps);
void ps_upstream_writable(struct pstream *ps);
/* A local reply (status, flag) to a request the codec rejected or the proxy refused. */
void ps_local_reply(struct pstream *ps, int status, const char *flag, const char *msg);

/* Frees every stream at once (the worker is stopping). */
void ps_free_all(struct worker *w);
/* The access log's line for a request the HTTP/1.1 codec refused with status before it
 * made a stream of it (flag DPE). */
void ps_access_log_reject(struct hconn *c, int status);

/* Shared helpers. */

/* A trailers head ready to fill: made on first use, emptied after. 0 or -STREAM_E_NOMEM. */
static inline int trailers_begin(struct stream_head *h)
{
    if (!h->fields.v)
        return stream_head_init(h, STREAM_TRAILERS, NULL);
    stream_head_reset(h, STREAM_TRAILERS);
    return 0;
}
void http_stat(struct worker *w, enum stats_dir dir, enum stats_cx c);

#endif
