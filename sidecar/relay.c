/*
 * relay.c - see relay.h.
 *
 * A relay has two sides, downstream (index 0, accepted) and upstream (index 1,
 * connected). Each side has a multishot recv and a queue of buffers received from the
 * other side waiting to be sent on it. No op is ever started on a closing relay, and
 * the relay is freed only when none of its ops is armed, so a late completion never
 * touches freed memory.
 */
#include "relay.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "cluster.h"
#include "tls.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "origdst.h"
#include "router.h"
#include "sniff.h"
#include "worker.h"

enum relay_state {
    RELAY_SNIFF,      /* reading the client's first bytes to tell HTTP from opaque TCP */
    RELAY_HANDOVER,   /* HTTP: waiting for the recv to end, then the HTTP layer takes it */
    RELAY_CONNECTING, /* upstream connect in flight; downstream bytes are queued */
    RELAY_OPEN,       /* relaying both ways */
    RELAY_CLOSING,    /* ops cancelled; freed when the last one completes */
};

struct relay_side {
    struct relay *r; /* borrowed: owner */
    int fd;          /* owned */
    struct loop_op recv_op;
    struct loop_op send_op;
    struct loop_op err_op;   /* while reads are paused: notices a reset */
    struct loop_buf *q_head; /* owned: received on the other side, to send here */
    struct loop_buf *q_tail;
    uint32_t q_len;   /* bytes in the queue */
    bool eof_in;      /* this side sent us FIN */
    bool shut_out;    /* we sent FIN on this side */
    bool recv_paused; /* the other side's queue is full */
    bool starved;     /* on the worker's starved list (pool was empty) */
    struct relay_side *starved_next;
};

struct relay {
    struct worker *w; /* borrowed */
    uint64_t id;
    enum stats_dir dir;
    enum relay_state state;
    struct relay_side side[2]; /* [0] downstream, [1] upstream */
    struct loop_op connect_op;
    struct sockaddr_storage dst; /* must outlive the connect op */
    socklen_t dst_len;
    struct cluster *cluster; /* held: the Service port's cluster when dst was a VIP */
    struct lb_host *host;    /* the endpoint picked (lb_request_start), or NULL */
    uint32_t connects_left;  /* connect retries the cluster's policy still allows */
    bool has_origdst;        /* dst came from SO_ORIGINAL_DST (not --static-dst) */
    uint64_t last_active_ms;
    struct loop_timer sniff_timer; /* RELAY_SNIFF: server-first protocols give up waiting */
    bool handed_over;              /* the HTTP layer owns the client socket and its count */
    bool tls_in;                   /* inbound: the client started TLS (mTLS from a peer) */
    bool tls_out;                  /* outbound TCP to a peer sidecar: over mTLS */
    bool m_open;                   /* counted as opened in the labeled TCP metrics */
    uint64_t m_rx, m_tx;           /* bytes from / to the client, for those metrics */
    enum http_mtls_mode mtls;      /* inbound: PeerAuthentication for this port */
    int busy;                      /* callbacks of this relay running now: no free until 0 */
    struct relay *prev, *next;     /* the worker's list */
};

static const char *relay_state_str(enum relay_state s)
{
    switch (s) {
    case RELAY_SNIFF:
        return "sniffing";
    case RELAY_HANDOVER:
        return "handing over";
    case RELAY_CONNECTING:
        return "connecting";
    case RELAY_OPEN:
        return "open";
    case RELAY_CLOSING:
        return "closing";
    }
    return "?";
}

#define RELAY_DOWN 0
#define RELAY_UP   1

static void on_recv(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more);
static void on_send(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more);
static void on_err(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more);
static int upstream_socket(struct relay *r);
static void sniff_check(struct relay *r);
static bool plaintext_allowed(struct relay *r);
static void handover(struct relay *r);
static void relay_go(struct relay *r);
static void on_connect(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf,
                       bool more);

static uint64_t *cx_stat(struct relay *r, enum stats_cx c)
{
    return &r->w->stats.cx[r->dir][c];
}

static struct relay_side *other(struct relay_side *s)
{
    return s == &s->r->side[RELAY_DOWN] ? &s->r->side[RELAY_UP] : &s->r->side[RELAY_DOWN];
}

static bool side_busy(const struct relay_side *s)
{
    return s->recv_op.armed || s->send_op.armed || s->err_op.armed;
}

static void unstarve_remove(struct relay_side *s)
{
    struct worker *w = s->r->w;
    if (!s->starved)
        return;
    for (struct relay_side **pp = &w->starved; *pp; pp = &(*pp)->starved_next)
        if (*pp == s) {
            *pp = s->starved_next;
            break;
        }
    s->starved = false;
}

/* Gives back the endpoint and the cluster a Service connection held. */
static void relay_unpick(struct relay *r)
{
    if (r->host)
        lb_request_end(r->host);
    r->host = NULL;
    if (r->cluster)
        cluster_release(&r->w->clusters, r->cluster);
    r->cluster = NULL;
}

/* Picks an endpoint of r->cluster (not `avoid`) as r->dst. -1 when none is usable. */
static int relay_pick(struct relay *r, const struct lb_host *avoid)
{
    struct worker *w = r->w;
    struct lb_pick_ctx ctx = {.rng = &w->clusters.rng,
                              .now_ns = (int64_t)loop_now_ms(w->loop) * 1000000,
                              .exclude = avoid};
    struct lb_host *h = lb_pick(r->cluster->lb, &ctx);
    if (!h)
        return -1;
    lb_request_start(h);
    r->host = h;
    r->dst_len = lb_addr_sockaddr(&h->addr, &r->dst);
    return 0;
}

void relay_tcp_metrics(struct worker *w, enum stats_dir dir, const char *svc_ns,
                       const char *svc_name, const char *peer_id, uint64_t rx, uint64_t tx,
                       bool open)
{
    const struct sidecar *sc = w->sc;
    if (!sc->metrics.enabled)
        return;
    bool out = dir == STATS_OUTBOUND;
    const char *self_id = peer_id && w->tls ? tls_creds_id(w->tls) : NULL;
    char fqdn[600];
    struct metrics_sample m = {.rq_bytes = rx, .rs_bytes = tx};
    metrics_sample_peer(&m, out, &sc->self);
    m.v[ML_REPORTER] = out ? "source" : "destination";
    m.v[ML_REQUEST_PROTOCOL] = "tcp";
    m.v[ML_RESPONSE_FLAGS] = "-";
    m.v[ML_SECURITY_POLICY] = out ? "unknown" : peer_id ? "mutual_tls" : "none";
    m.v[ML_SRC_PRINCIPAL] = out ? self_id : peer_id;
    m.v[ML_DST_PRINCIPAL] = out ? peer_id : self_id;
    if (svc_name && *svc_name) {
        snprintf(fqdn, sizeof(fqdn), "%s.%s.svc.cluster.local", svc_name, svc_ns);
        m.v[ML_DST_SERVICE] = fqdn;
        m.v[ML_DST_SERVICE_NAME] = svc_name;
        m.v[ML_DST_SERVICE_NS] = svc_ns;
    }
    if (open)
        metrics_tcp_open(&w->metrics, &m, loop_now_ms(w->loop));
    else
        metrics_tcp_close(&w->metrics, &m, loop_now_ms(w->loop));
}

/* The labeled TCP metrics of a plaintext relay, at its open or its close: the Service is
 * the VIP's (outbound) or the one whose endpoint was dialed (inbound). mTLS TCP goes
 * through the HTTP layer, which counts it the same way (http_conn.c). */
static void relay_metrics(struct relay *r, bool open)
{
    struct worker *w = r->w;
    char svc[254] = "";
    if (r->dir == STATS_OUTBOUND && r->cluster) {
        relay_tcp_metrics(w, r->dir, r->cluster->svc_ns, r->cluster->svc_name, NULL, r->m_rx,
                          r->m_tx, open);
        return;
    }
    if (r->dir == STATS_INBOUND)
        http_local_app_proto(w->snap, &r->dst, svc, sizeof(svc));
    relay_tcp_metrics(w, r->dir, w->sc->opts.pod_namespace, svc, NULL, r->m_rx, r->m_tx, open);
}

static void relay_maybe_free(struct relay *r)
{
    struct worker *w = r->w;
    if (r->state != RELAY_CLOSING || r->busy || r->connect_op.armed || side_busy(&r->side[0]) ||
        side_busy(&r->side[1]))
        return;
    loop_timer_cancel(w->loop, &r->sniff_timer);
    for (int i = 0; i < 2; i++) {
        struct relay_side *s = &r->side[i];
        unstarve_remove(s);
        while (s->q_head) {
            struct loop_buf *b = s->q_head;
            s->q_head = b->next;
            loop_buf_put(w->loop, b);
        }
        if (s->fd >= 0)
            loop_close_fd(w->loop, s->fd);
    }
    if (r->prev)
        r->prev->next = r->next;
    else
        w->relays = r->next;
    if (r->next)
        r->next->prev = r->prev;
    if (r->m_open)
        relay_metrics(r, false);
    relay_unpick(r);
    if (!r->handed_over) {
        STATS_INC(cx_stat(r, STATS_CX_CLOSED));
        atomic_fetch_sub_explicit(&w->sc->active_cx, 1, memory_order_relaxed);
    }
    free(r);
}

/* Closes the relay. With reset, both sockets are closed with SO_LINGER 0 so each peer
 * sees a RST, as the other peer did (or as a failure would). */
static void relay_close(struct relay *r, bool reset, const char *why)
{
    if (r->state == RELAY_CLOSING)
        return;
    log_debug("relay %lu (%s, %s): closing%s: %s", (unsigned long)r->id, stats_dir_name(r->dir),
              relay_state_str(r->state), reset ? " with reset" : "", why);
    r->state = RELAY_CLOSING;
    loop_timer_cancel(r->w->loop, &r->sniff_timer);
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        for (int i = 0; i < 2; i++)
            if (r->side[i].fd >= 0)
                setsockopt(r->side[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    loop_cancel(r->w->loop, &r->connect_op);
    for (int i = 0; i < 2; i++) {
        loop_cancel(r->w->loop, &r->side[i].recv_op);
        loop_cancel(r->w->loop, &r->side[i].send_op);
        loop_cancel(r->w->loop, &r->side[i].err_op);
    }
    relay_maybe_free(r);
}

/* A side that is not reading (paused for backpressure, or starved of buffers) still
 * watches for a reset, so a peer that gives up while we wait is noticed at once. */
static void watch_err(struct relay_side *s)
{
    struct relay *r = s->r;
    if (r->state != RELAY_CLOSING && !s->err_op.armed &&
        loop_poll_err(r->w->loop, &s->err_op, s->fd) < 0)
        relay_close(r, true, "cannot watch a paused side");
}

static void arm_recv(struct relay_side *s)
{
    struct relay *r = s->r;
    if (r->state == RELAY_CLOSING || r->state == RELAY_HANDOVER || s->recv_op.armed || s->eof_in ||
        s->recv_paused || s->starved)
        return;
    /* Never let the kernel hand this side more than the other side may queue. */
    uint32_t limit = r->w->sc->opts.buffer_bytes, queued = other(s)->q_len;
    uint32_t room = queued < limit ? limit - queued : 0;
    if (room < r->w->sc->opts.buf_size)
        room = r->w->sc->opts.buf_size;
    loop_cancel(r->w->loop, &s->err_op);
    if (loop_recv(r->w->loop, &s->recv_op, s->fd, room) < 0)
        relay_close(r, true, "cannot start recv");
}

/* Passes a FIN on to s once everything queued for it has been sent. */
static void maybe_shutdown(struct relay_side *s)
{
    struct relay *r = s->r;
    if (s->shut_out || s->q_head || s->send_op.armed || !other(s)->eof_in || r->state != RELAY_OPEN)
        return;
    s->shut_out = true;
    shutdown(s->fd, SHUT_WR);
    if (r->side[0].shut_out && r->side[1].shut_out)
        relay_close(r, false, "both sides finished");
}

static void kick_send(struct relay_side *s)
{
    struct relay *r = s->r;
    struct loop_buf *b = s->q_head;
    if (!b || s->send_op.armed || r->state != RELAY_OPEN)
        return;
    if (loop_send(r->w->loop, &s->send_op, s->fd, b->data + b->off, b->len - b->off) < 0)
        relay_close(r, true, "cannot start send");
}

static void recv_done(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more)
{
    struct relay_side *s = op->owner, *o = other(s);
    struct relay *r = s->r;

    if (buf) {
        if (r->state == RELAY_CLOSING) {
            loop_buf_put(l, buf);
        } else {
            r->last_active_ms = loop_now_ms(l);
            STATS_ADD(cx_stat(r, s == &r->side[RELAY_DOWN] ? STATS_BYTES_RX : STATS_BYTES_TX),
                      (uint64_t)res);
            *(s == &r->side[RELAY_DOWN] ? &r->m_rx : &r->m_tx) += (uint64_t)res;
            /* Small segments would each hold a whole pool buffer: copy one into the queue's
             * last buffer when it fits (appending behind an in-flight send is safe, the send
             * covers only what was there), so buffers held stay proportional to bytes. */
            struct loop_buf *t = o->q_tail;
            o->q_len += buf->len;
            if (t && t->len + buf->len <= r->w->sc->opts.buf_size) {
                memcpy(t->data + t->len, buf->data, buf->len);
                t->len += buf->len;
                loop_buf_put(l, buf);
            } else {
                if (t)
                    t->next = buf;
                else
                    o->q_head = buf;
                o->q_tail = buf;
            }
            kick_send(o);
            if (r->state == RELAY_SNIFF)
                sniff_check(r);
            if (o->q_len >= r->w->sc->opts.buffer_bytes && !s->recv_paused &&
                r->state != RELAY_HANDOVER && r->state != RELAY_CLOSING) {
                s->recv_paused = true; /* backpressure */
                loop_cancel(l, &s->recv_op);
                watch_err(s);
            }
        }
    }
    if (more)
        return;
    if (r->state == RELAY_CLOSING) {
        relay_maybe_free(r);
        return;
    }
    if (r->state == RELAY_HANDOVER) {
        handover(r);
        return;
    }
    if (res == 0) {
        s->eof_in = true;
        if (r->state == RELAY_SNIFF) { /* the client said all it will say: relay it */
            if (r->dir == STATS_INBOUND && r->w->tls && r->mtls != HTTP_MTLS_DISABLE &&
                !plaintext_allowed(r))
                return;
            STATS_INC(cx_stat(r, STATS_CX_TCP));
            relay_go(r);
            return;
        }
        maybe_shutdown(o);
        return;
    }
    if (res == -ENOBUFS) {
        STATS_INC(&r->w->stats.w[STATS_BUFFERS_EXHAUSTED]);
        s->starved = true;
        s->starved_next = r->w->starved;
        r->w->starved = s;
        watch_err(s);
        return;
    }
    if (res < 0 && res != -ECANCELED) {
        STATS_INC(cx_stat(r, STATS_CX_RESET));
        relay_close(r, true, res == -ECONNRESET ? "reset by peer" : "recv error");
        return;
    }
    arm_recv(s); /* the multishot ended (cancelled for backpressure, or by the kernel) */
}

static void err_done(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more)
{
    struct relay_side *s = op->owner;
    struct relay *r = s->r;
    if (r->state == RELAY_CLOSING) {
        relay_maybe_free(r);
        return;
    }
    if (res > 0 && (res & POLLERR)) {
        STATS_INC(cx_stat(r, STATS_CX_RESET));
        relay_close(r, true, "reset by peer while paused");
        return;
    }
    /* Cancelled by a resume that has since paused again: the watch is needed still.
     * A bare POLLHUP (both directions closed) is read as EOF once reading resumes. */
    if (res == -ECANCELED && (s->recv_paused || s->starved))
        watch_err(s);
}

static void send_done(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more)
{
    struct relay_side *s = op->owner, *o = other(s);
    struct relay *r = s->r;
    struct loop_buf *b = s->q_head;

    if (r->state == RELAY_CLOSING) {
        relay_maybe_free(r);
        return;
    }
    if (res < 0) {
        if (res == -ECANCELED)
            return;
        STATS_INC(cx_stat(r, STATS_CX_RESET));
        relay_close(r, true, res == -EPIPE || res == -ECONNRESET ? "peer gone" : "send error");
        return;
    }
    r->last_active_ms = loop_now_ms(l);
    b->off += (uint32_t)res;
    s->q_len -= (uint32_t)res;
    if (b->off == b->len) {
        s->q_head = b->next;
        if (!s->q_head)
            s->q_tail = NULL;
        loop_buf_put(l, b);
        struct worker *w = r->w;
        if (w->starved) { /* a buffer is free again: give it to a starved reader */
            struct relay_side *st = w->starved;
            w->starved = st->starved_next;
            st->starved = false;
            arm_recv(st);
        }
    }
    if (o->recv_paused && s->q_len <= r->w->sc->opts.buffer_bytes / 2) {
        o->recv_paused = false;
        arm_recv(o);
    }
    kick_send(s);
    maybe_shutdown(s);
}

static void connect_done(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf,
                         bool more)
{
    struct relay *r = op->owner;
    char a[ADDR_STRLEN];
    if (r->state == RELAY_CLOSING) {
        relay_maybe_free(r);
        return;
    }
    int64_t now_ns = (int64_t)loop_now_ms(l) * 1000000;
    if (res < 0) {
        STATS_INC(cx_stat(r, res == -ETIMEDOUT ? STATS_CX_CONNECT_TIMEOUT : STATS_CX_CONNECT_FAIL));
        log_debug("relay %lu (%s): connect to %s: %s", (unsigned long)r->id, stats_dir_name(r->dir),
                  addr_format((struct sockaddr *)&r->dst, a), strerror(-res));
        if (r->host) {
            /* A Service endpoint: tell outlier detection, then try another endpoint
             * while the policy allows (the client has only seen its connect succeed). */
            struct lb_host *failed = r->host;
            if (lb_report(r->cluster->lb, failed, OUTLIER_GATEWAY, now_ns) == OUTLIER_EV_EJECTED)
                STATS_INC(&r->w->stats.w[STATS_OUTLIER_EJECTIONS]);
            r->host = NULL;
            bool again = r->connects_left > 0 && relay_pick(r, failed) == 0;
            lb_request_end(failed);
            if (again) {
                r->connects_left--;
                STATS_INC(cx_stat(r, STATS_CX_CONNECT_RETRY));
                close(r->side[RELAY_UP].fd);
                r->side[RELAY_UP].fd = upstream_socket(r);
                if (r->side[RELAY_UP].fd >= 0 &&
                    loop_connect(l, &r->connect_op, r->side[RELAY_UP].fd,
                                 (struct sockaddr *)&r->dst, r->dst_len,
                                 r->w->sc->opts.connect_timeout_ms) == 0)
                    return;
            }
        }
        relay_close(r, true, "upstream connect failed");
        return;
    }
    if (r->host)
        lb_report(r->cluster->lb, r->host, OUTLIER_SUCCESS, now_ns);
    r->state = RELAY_OPEN;
    r->last_active_ms = loop_now_ms(l);
    arm_recv(&r->side[RELAY_UP]);
    kick_send(&r->side[RELAY_UP]);
    maybe_shutdown(&r->side[RELAY_UP]);
}

static const struct router_port *vip_lookup(const struct router_table *t,
                                            const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        return router_find_vip(t, AF_INET, &s4->sin_addr, ntohs(s4->sin_port));
    }
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    return router_find_vip(t, AF_INET6, &s6->sin6_addr, ntohs(s6->sin6_port));
}

/* Every completion runs with the relay marked busy: a close inside it (a failed send,
 * a reset) only marks the relay closing, and the free happens here, after the callback
 * stopped touching it. */
#define RELAY_CALLBACK(name, done, relay_of)                                                       \
    static void name(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more) \
    {                                                                                              \
        struct relay *r = relay_of;                                                                \
        r->busy++;                                                                                 \
        done(l, op, res, buf, more);                                                               \
        r->busy--;                                                                                 \
        relay_maybe_free(r);                                                                       \
    }
RELAY_CALLBACK(on_recv, recv_done, ((struct relay_side *)op->owner)->r)
RELAY_CALLBACK(on_send, send_done, ((struct relay_side *)op->owner)->r)
RELAY_CALLBACK(on_err, err_done, ((struct relay_side *)op->owner)->r)
RELAY_CALLBACK(on_connect, connect_done, (struct relay *)op->owner)

/* The upstream socket: nonblocking, no Nagle. Inbound connections leave from 127.0.0.6
 * (::6 for IPv6), so the pod's OUTPUT rules let them reach the app without capture. */
static int upstream_socket(struct relay *r)
{
    return http_upstream_socket(r->w, &r->dst, r->dir);
}

/* Starts the upstream side: an endpoint of the Service when the destination is a VIP
 * (as kube-proxy would pick one), else the original destination; then the connect. */
static void relay_go(struct relay *r)
{
    struct worker *w = r->w;
    enum stats_dir dir = r->dir;
    char a[ADDR_STRLEN];

    r->state = RELAY_CONNECTING;
    loop_timer_cancel(w->loop, &r->sniff_timer);
    /* DESIGN.md: a miss in the VIP table is passthrough */
    if (dir == STATS_OUTBOUND && !r->handed_over && r->has_origdst && w->snap && w->snap->router) {
        const struct router_port *rp = vip_lookup(w->snap->router, &r->dst);
        struct cluster *c = rp ? cluster_find(&w->clusters, rp->service->svc->meta.ns,
                                              rp->service->svc->meta.name, rp->port->port)
                               : NULL;
        if (c) {
            STATS_INC(&w->stats.cx[dir][STATS_CX_SERVICE]);
            r->cluster = c;
            cluster_hold(c);
            r->connects_left = c->connect_attempts;
            if (relay_pick(r, NULL) < 0) {
                STATS_INC(&w->stats.cx[dir][STATS_CX_NO_HEALTHY]);
                log_debug("outbound connection to %s (%s): no healthy upstream",
                          addr_format((struct sockaddr *)&r->dst, a), c->key);
                /* the client is told at once that nothing is there, as a refused connect */
                relay_close(r, true, "no healthy upstream");
                return;
            }
            if (w->tls && c->tls) { /* between sidecars TCP goes over mTLS too */
                r->tls_out = true;
                r->state = RELAY_HANDOVER;
                if (r->side[RELAY_DOWN].recv_op.armed)
                    loop_cancel(w->loop, &r->side[RELAY_DOWN].recv_op);
                else
                    handover(r);
                return;
            }
        }
    }
    if (dir == STATS_INBOUND && r->has_origdst) { /* a plaintext TCP peer: no principal */
        const char *why;
        char buf[300];
        char svc[254];
        http_local_app_proto(w->snap, &r->dst, svc, sizeof(svc));
        if (!http_inbound_allowed(w, svc, &r->dst, NULL, NULL, 0, NULL, 0, &why, buf,
                                  sizeof(buf))) {
            STATS_INC(&w->stats.cx[dir][STATS_CX_AUTHZ_DENIED]);
            log_debug("inbound TCP connection to %s denied: %s",
                      addr_format((struct sockaddr *)&r->dst, a), why);
            relay_close(r, true, "denied by AuthorizationPolicy");
            return;
        }
    }
    r->m_open = true;
    relay_metrics(r, true);
    r->side[RELAY_UP].fd = upstream_socket(r);
    if (r->side[RELAY_UP].fd < 0) {
        STATS_INC(&w->stats.cx[dir][STATS_CX_CONNECT_FAIL]);
        log_warn("%s connection to %s: upstream socket: %s", stats_dir_name(dir),
                 addr_format((struct sockaddr *)&r->dst, a), strerror(-r->side[RELAY_UP].fd));
        relay_close(r, true, "no upstream socket");
        return;
    }
    log_trace("relay %lu (%s): to %s", (unsigned long)r->id, stats_dir_name(dir),
              addr_format((struct sockaddr *)&r->dst, a));
    if (loop_connect(w->loop, &r->connect_op, r->side[RELAY_UP].fd, (struct sockaddr *)&r->dst,
                     r->dst_len, w->sc->opts.connect_timeout_ms) < 0) {
        STATS_INC(&w->stats.cx[dir][STATS_CX_CONNECT_FAIL]);
        relay_close(r, true, "cannot start connect");
        return;
    }
    /* Read the client while connecting: its first bytes are queued for upstream. */
    arm_recv(&r->side[RELAY_DOWN]);
}

#define RELAY_STRICT_HELLO_MS 10000 /* how long STRICT waits for a ClientHello */

static void sniff_timeout(struct loop *l, struct loop_timer *t)
{
    struct relay *r = t->owner;
    if (r->state != RELAY_SNIFF)
        return;
    if (r->dir == STATS_INBOUND && r->w->tls && r->mtls == HTTP_MTLS_STRICT &&
        loop_now_ms(l) - r->last_active_ms < RELAY_STRICT_HELLO_MS) {
        /* STRICT takes nothing but TLS: a slow ClientHello gets more time, not a refusal */
        loop_timer_set(l, &r->sniff_timer, loop_now_ms(l) + 500);
        return;
    }
    if (r->dir == STATS_INBOUND && r->w->tls && r->mtls != HTTP_MTLS_DISABLE &&
        !plaintext_allowed(r))
        return;
    STATS_INC(cx_stat(r, STATS_CX_TCP));
    relay_go(r);
}

/* The client's first bytes (queued for upstream) decide: HTTP goes to the HTTP layer
 * once the recv has ended; anything else is relayed as TCP. */
/* Inbound plaintext with mTLS on: PERMISSIVE takes it (counted), STRICT closes it. */
static bool plaintext_allowed(struct relay *r)
{
    if (r->mtls == HTTP_MTLS_STRICT) {
        char a[ADDR_STRLEN], b[ADDR_STRLEN];
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (getpeername(r->side[RELAY_DOWN].fd, (struct sockaddr *)&ss, &sl) < 0)
            ss.ss_family = AF_UNSPEC;
        STATS_INC(cx_stat(r, STATS_CX_PLAINTEXT_REFUSED));
        log_info("inbound plaintext from %s to %s refused: PeerAuthentication STRICT",
                 ss.ss_family == AF_UNSPEC ? "?" : addr_format((struct sockaddr *)&ss, a),
                 addr_format((struct sockaddr *)&r->dst, b));
        relay_close(r, true, "plaintext under STRICT mTLS");
        return false;
    }
    STATS_INC(cx_stat(r, STATS_CX_PLAINTEXT));
    return true;
}

static void sniff_check(struct relay *r)
{
    struct relay_side *up = &r->side[RELAY_UP];
    char tmp[SNIFF_MAX_BYTES];
    size_t n = 0;
    for (struct loop_buf *b = up->q_head; b && n < sizeof(tmp); b = b->next) {
        size_t k = b->len - b->off < sizeof(tmp) - n ? b->len - b->off : sizeof(tmp) - n;
        memcpy(tmp + n, b->data + b->off, k);
        n += k;
    }
    enum sniff_result res = sniff_detect(tmp, n);
    if (res == SNIFF_NEED_MORE && n < SNIFF_MAX_BYTES)
        return;
    bool mtls_on = r->dir == STATS_INBOUND && r->w->tls && r->mtls != HTTP_MTLS_DISABLE;
    if (mtls_on && res == SNIFF_TLS) { /* a peer sidecar: the HTTP layer terminates it */
        r->tls_in = true;
        r->state = RELAY_HANDOVER;
        loop_cancel(r->w->loop, &r->side[RELAY_DOWN].recv_op);
        return;
    }
    if (mtls_on && !plaintext_allowed(r))
        return;
    if (res == SNIFF_HTTP1 || res == SNIFF_HTTP2) {
        r->state = RELAY_HANDOVER;
        loop_cancel(r->w->loop, &r->side[RELAY_DOWN].recv_op);
        return;
    }
    STATS_INC(cx_stat(r, STATS_CX_TCP));
    relay_go(r);
}

/* The recv has ended: the client socket and the bytes read go to the HTTP layer. */
static void handover(struct relay *r)
{
    struct worker *w = r->w;
    struct relay_side *down = &r->side[RELAY_DOWN], *up = &r->side[RELAY_UP];
    char *bytes = malloc(up->q_len ? up->q_len : 1);
    size_t n = 0;
    if (!bytes) {
        relay_close(r, true, "out of memory for the handover");
        return;
    }
    while (up->q_head) {
        struct loop_buf *b = up->q_head;
        up->q_head = b->next;
        memcpy(bytes + n, b->data + b->off, b->len - b->off);
        n += b->len - b->off;
        loop_buf_put(w->loop, b);
    }
    up->q_tail = NULL;
    up->q_len = 0;
    int fd = down->fd;
    down->fd = -1;
    r->handed_over = true;
    struct sockaddr_storage dst = r->dst;
    socklen_t dst_len = r->dst_len;
    struct cluster *cl = r->cluster; /* held across relay_close */
    if (cl)
        cluster_hold(cl);
    bool tcp = r->tls_out, tls_in = r->tls_in;
    enum stats_dir dir = r->dir;
    relay_close(r, false, "handed to the HTTP layer"); /* may free r */
    if (tcp)
        http_adopt_tcp(w, fd, &dst, dst_len, &dst, dst_len, cl, bytes, n);
    else
        http_adopt(w, dir, fd, &dst, dst_len, bytes, n, tls_in);
    if (cl)
        cluster_release(&w->clusters, cl);
    free(bytes);
}

void relay_start(struct worker *w, enum stats_dir dir, int fd)
{
    struct sidecar *sc = w->sc;
    struct relay *r;
    int one = 1, e;

    STATS_INC(&w->stats.cx[dir][STATS_CX_TOTAL]);
    if (atomic_fetch_add_explicit(&sc->active_cx, 1, memory_order_relaxed) >=
        (int)sc->opts.max_connections) {
        atomic_fetch_sub_explicit(&sc->active_cx, 1, memory_order_relaxed);
        STATS_INC(&w->stats.cx[dir][STATS_CX_OVERFLOW]);
        close(fd);
        return;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        STATS_INC(&w->stats.cx[dir][STATS_CX_ALLOC_FAIL]);
        goto fail_fd;
    }
    r->w = w;
    r->dir = dir;
    r->id = ++w->next_relay_id;
    e = origdst_get(fd, &r->dst, &r->dst_len);
    if (e == -ENOENT && sc->opts.has_static_dst) {
        r->dst = sc->opts.static_dst;
        r->dst_len = sc->opts.static_dst_len;
    } else if (e < 0) {
        STATS_INC(&w->stats.cx[dir][STATS_CX_NO_ORIGINAL_DST]);
        log_debug("%s connection: no original destination (%s): closed", stats_dir_name(dir),
                  strerror(-e));
        free(r);
        goto fail_fd;
    }
    r->has_origdst = e == 0;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    /* What the connection speaks: the Service port's appProtocol when the configuration
     * names one, else the client's first bytes. Outbound, only Service VIPs are looked at
     * (anything else is passthrough TCP); inbound, the local endpoint's port. */
    enum http_app_proto app = HTTP_APP_TCP;
    if (r->has_origdst && dir == STATS_OUTBOUND && w->snap && w->snap->router) {
        const struct router_port *rp = vip_lookup(w->snap->router, &r->dst);
        if (rp)
            app = http_app_proto(rp->port->app_protocol);
    } else if (r->has_origdst && dir == STATS_INBOUND) {
        app = http_local_app_proto(w->snap, &r->dst, NULL, 0);
        if (w->tls) { /* mTLS on: what arrives decides (TLS from a peer, or plaintext) */
            uint16_t port = r->dst.ss_family == AF_INET
                                ? ntohs(((struct sockaddr_in *)&r->dst)->sin_port)
                                : ntohs(((struct sockaddr_in6 *)&r->dst)->sin6_port);
            r->mtls = http_inbound_mtls(w->snap, &sc->opts, port);
            if (r->mtls != HTTP_MTLS_DISABLE)
                app = HTTP_APP_UNKNOWN;
        }
    }
    if (app == HTTP_APP_HTTP1 || app == HTTP_APP_HTTP2) {
        struct sockaddr_storage dst = r->dst;
        socklen_t dlen = r->dst_len;
        free(r);
        http_adopt(w, dir, fd, &dst, dlen, NULL, 0, false);
        return;
    }

    r->side[RELAY_DOWN].fd = fd;
    r->side[RELAY_UP].fd = -1;
    for (int i = 0; i < 2; i++) {
        struct relay_side *s = &r->side[i];
        s->r = r;
        loop_op_init(&s->recv_op, on_recv, s);
        loop_op_init(&s->send_op, on_send, s);
        loop_op_init(&s->err_op, on_err, s);
    }
    loop_op_init(&r->connect_op, on_connect, r);
    loop_timer_init(&r->sniff_timer, sniff_timeout, r);
    r->last_active_ms = loop_now_ms(w->loop);
    r->next = w->relays;
    if (w->relays)
        w->relays->prev = r;
    w->relays = r;
    if (app == HTTP_APP_UNKNOWN) {
        r->state = RELAY_SNIFF;
        loop_timer_set(w->loop, &r->sniff_timer, loop_now_ms(w->loop) + sc->opts.sniff_timeout_ms);
        arm_recv(&r->side[RELAY_DOWN]);
        return;
    }
    relay_go(r);
    return;

fail_fd:
    atomic_fetch_sub_explicit(&sc->active_cx, 1, memory_order_relaxed);
    STATS_INC(&w->stats.cx[dir][STATS_CX_CLOSED]);
    close(fd);
}

void relay_sweep(struct worker *w, uint64_t now_ms)
{
    unsigned idle = w->sc->opts.idle_timeout_ms;
    struct relay *r, *next;
    for (r = w->relays; r; r = next) {
        next = r->next; /* relay_close may free r */
        if (idle && r->state == RELAY_OPEN && now_ms - r->last_active_ms >= idle) {
            /* Stalled with data still queued: a FIN would pass for a clean end of stream
             * with bytes missing, so both peers get a reset instead. */
            bool stuck = r->side[0].q_head || r->side[1].q_head || r->side[0].send_op.armed ||
                         r->side[1].send_op.armed;
            STATS_INC(cx_stat(r, STATS_CX_IDLE_TIMEOUT));
            relay_close(r, stuck, stuck ? "idle timeout with data queued" : "idle timeout");
        }
    }
    while (w->starved && loop_buf_free(w->loop) > 0) {
        struct relay_side *st = w->starved;
        w->starved = st->starved_next;
        st->starved = false;
        arm_recv(st);
    }
}

void relay_free_all(struct worker *w)
{
    struct relay *r = w->relays, *next;
    for (; r; r = next) {
        next = r->next;
        for (int i = 0; i < 2; i++)
            if (r->side[i].fd >= 0)
                close(r->side[i].fd);
        relay_unpick(r);
        atomic_fetch_sub_explicit(&w->sc->active_cx, 1, memory_order_relaxed);
        free(r);
    }
    w->relays = NULL;
    w->starved = NULL;
}
