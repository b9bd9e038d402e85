/*
 * http_proxy.c - one proxied request from its downstream head to its end: routing,
 * the endpoint pick, attempts with retries and timeouts, the bodies in between, local
 * replies and the request's counters. See http_internal.h and http.h.
 *
 * Decisions:
 * - The outbound Service is the one the Host names, canonicalised from the client's
 *   namespace (svc, svc.ns, FQDN, or a VIP literal) as Istio picks a virtual host on
 *   the outbound port; a Host that names no Service falls back to the Service whose VIP
 *   the app connected to (the original destination).
 * - A request body is kept for replay up to RETRY_REPLAY_MAX bytes; past that it is
 *   streamed and never retried. Response bodies are streamed.
 * - The per-try and the overall timeouts run until the response is complete; firing
 *   after the response headers went downstream resets the downstream stream (HTTP/2) or
 *   closes the connection (HTTP/1.1), flag UT, as Envoy does.
 * - A failed attempt whose retries are spent: a response is passed through as the app
 *   sent it (the last one), a reset or connect failure becomes a local 503 whose flag
 *   says why (UF, UC/UR, URX when retries were tried and spent).
 * - Inbound requests are not retried (the client sidecar does that) and get no routing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "accesslog.h"
#include "addr.h"
#include "authz.h"
#include "config.h"
#include "http_internal.h"
#include "log.h"
#include "tls.h"
#include "worker.h"

#define BQ_CHUNK (16 * 1024)

static void ps_attempt(struct pstream *ps);
static void ps_finish(struct pstream *ps);
static void ps_mirror(struct pstream *ps, const struct router_port *target);
static void mirror_unlink(struct pstream *m);
static void ps_maybe_finish(struct pstream *ps);
static void pump_request(struct pstream *ps);
static void pump_response(struct pstream *ps);
static void pump_request_once(struct pstream *ps);
static void pump_response_once(struct pstream *ps);
static void on_total_timeout(struct loop *l, struct loop_timer *t);
static void on_try_timer(struct loop *l, struct loop_timer *t);

/* ---- body queues ---- */

struct bqc {
    struct bqc *next;
    size_t len, cap;
    char data[];
};

static int bq_append(struct bq *q, const char *p, size_t n)
{
    struct bqc *t = (struct bqc *)q->tail;
    while (n) {
        if (!t || t->len == t->cap) {
            size_t cap = n > BQ_CHUNK ? n : BQ_CHUNK;
            struct bqc *c = malloc(sizeof(*c) + cap);
            if (!c)
                return -ENOMEM;
            c->next = NULL;
            c->len = 0;
            c->cap = cap;
            if (t)
                t->next = c;
            else
                q->head = (struct bq_chunk *)c;
            q->tail = (struct bq_chunk *)c;
            t = c;
        }
        size_t k = t->cap - t->len < n ? t->cap - t->len : n;
        memcpy(t->data + t->len, p, k);
        t->len += k;
        q->total += k;
        p += k;
        n -= k;
    }
    return 0;
}

/* The contiguous bytes at the cursor q->sent. */
static size_t bq_peek(const struct bq *q, const char **p)
{
    size_t off = q->base;
    for (struct bqc *c = (struct bqc *)q->head; c; c = c->next) {
        if (q->sent < off + c->len) {
            *p = c->data + (q->sent - off);
            return off + c->len - q->sent;
        }
        off += c->len;
    }
    return 0;
}

/* Frees whole chunks before the cursor. */
static void bq_trim(struct bq *q)
{
    struct bqc *c;
    while ((c = (struct bqc *)q->head) && q->base + c->len <= q->sent &&
           c != (struct bqc *)q->tail) {
        q->head = (struct bq_chunk *)c->next;
        q->base += c->len;
        free(c);
    }
    c = (struct bqc *)q->head;
    if (c && c == (struct bqc *)q->tail && q->base + c->len == q->sent && c->len == c->cap) {
        q->base += c->len;
        q->head = q->tail = NULL;
        free(c);
    }
}

static void bq_free(struct bq *q)
{
    for (struct bqc *c = (struct bqc *)q->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    memset(q, 0, sizeof(*q));
}

/* ---- protocol names ---- */

enum http_app_proto http_app_proto(const char *ap)
{
    if (!ap)
        return HTTP_APP_UNKNOWN;
    if (!strcasecmp(ap, "http") || !strcasecmp(ap, "http1") || !strcasecmp(ap, "http/1.1"))
        return HTTP_APP_HTTP1;
    if (!strcasecmp(ap, "h2c") || !strcasecmp(ap, "http2") || !strcasecmp(ap, "grpc") ||
        !strcasecmp(ap, "kubernetes.io/h2c"))
        return HTTP_APP_HTTP2;
    return HTTP_APP_TCP;
}

/* The EndpointSlice (and its port) listing the local endpoint dst, or NULL. */
static const struct model_slice *local_slice(const struct model_set *m,
                                             const struct sockaddr_storage *dst,
                                             const struct model_slice_port **port_out)
{
    const void *ip;
    size_t iplen;
    uint16_t port;
    if (dst->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)dst;
        ip = &s4->sin_addr, iplen = 4, port = ntohs(s4->sin_port);
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)dst;
        ip = &s6->sin6_addr, iplen = 16, port = ntohs(s6->sin6_port);
    }
    for (size_t i = 0; m && i < m->n_slices; i++) {
        const struct model_slice *sl = &m->slices[i];
        const struct model_slice_port *sp = NULL;
        for (size_t j = 0; j < sl->n_ports; j++)
            if (sl->ports[j].has_port && sl->ports[j].port == port)
                sp = &sl->ports[j];
        if (!sp)
            continue;
        for (size_t j = 0; j < sl->n_endpoints; j++)
            for (size_t k = 0; k < sl->endpoints[j].n_addresses; k++)
                if (sl->endpoints[j].addresses[k].family == dst->ss_family &&
                    memcmp(sl->endpoints[j].addresses[k].addr, ip, iplen) == 0) {
                    *port_out = sp;
                    return sl;
                }
    }
    return NULL;
}

enum http_app_proto http_local_app_proto(const struct config_snapshot *snap,
                                         const struct sockaddr_storage *dst, char *svc,
                                         size_t svclen)
{
    const struct model_set *m = snap ? snap->model : NULL;
    const struct model_slice_port *sp;
    const struct model_slice *sl = local_slice(m, dst, &sp);
    if (svclen)
        snprintf(svc, svclen, "%s", sl ? sl->service_name : "");
    if (!sl)
        return HTTP_APP_UNKNOWN;
    if (sp->app_protocol)
        return http_app_proto(sp->app_protocol);
    /* the Service's port of the same name says it otherwise */
    for (size_t j = 0; j < m->n_services; j++) {
        const struct model_service *sv = &m->services[j];
        if (strcmp(sv->meta.ns, sl->meta.ns) || strcmp(sv->meta.name, sl->service_name))
            continue;
        for (size_t k = 0; k < sv->n_ports; k++)
            if (!strcmp(sv->ports[k].name, sp->name))
                return http_app_proto(sv->ports[k].app_protocol);
    }
    return HTTP_APP_UNKNOWN;
}

bool http_inbound_allowed(struct worker *w, const char *svc, const struct sockaddr_storage *dst,
                          const char *principal, const char *method, size_t method_len,
                          const char *path, size_t path_len, const char **why, char *buf,
                          size_t buflen)
{
    struct authz_request r = {
        .principal = principal && *principal ? principal : NULL,
        .method = method,
        .method_len = method_len,
        .path = path,
        .path_len = path_len,
        .port = dst->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)dst)->sin_port)
                                          : ntohs(((const struct sockaddr_in6 *)dst)->sin6_port),
    };
    return authz_allowed(w->snap ? w->snap->model : NULL, w->sc->opts.pod_namespace,
                         svc && *svc ? svc : NULL, &r, why, buf, buflen);
}

/* Whether the PeerAuthentication's selector picks this pod: every matchLabels entry is
 * one of its labels. */
static bool selects_pod(const struct model_peer_authn *pa, const struct sidecar_options *o)
{
    for (size_t i = 0; i < pa->n_selector; i++) {
        size_t j = 0;
        while (j < o->n_pod_labels && (strcmp(o->pod_labels[j].key, pa->selector[i].key) != 0 ||
                                       strcmp(o->pod_labels[j].value, pa->selector[i].value) != 0))
            j++;
        if (j == o->n_pod_labels)
            return false;
    }
    return true;
}

/* The policy's mode for port (portLevelMtls first); UNSET inherits. */
static enum model_mtls_mode pa_mode(const struct model_peer_authn *pa, uint16_t port)
{
    for (size_t j = 0; j < pa->n_ports; j++)
        if (pa->ports[j].port == port && pa->ports[j].mode != MODEL_MTLS_UNSET)
            return pa->ports[j].mode;
    return pa->mode;
}

/* Istio's precedence: the mesh-wide policy (root namespace, no selector), then the
 * namespace's (no selector), then the workload's (a selector matching the pod's labels),
 * each overriding the one before unless UNSET; among several at one level the oldest
 * (creationTimestamp, then name) wins. No policy at all: PERMISSIVE. */
enum http_mtls_mode http_inbound_mtls(const struct config_snapshot *snap,
                                      const struct sidecar_options *o, uint16_t port)
{
    const struct model_set *m = snap ? snap->model : NULL;
    const struct model_peer_authn *best[3] = {NULL, NULL, NULL};
    for (size_t i = 0; m && i < m->n_peer_authns; i++) {
        const struct model_peer_authn *pa = &m->peer_authns[i];
        int level;
        if (!pa->n_selector && !strcmp(pa->meta.ns, HTTP_MESH_ROOT_NAMESPACE))
            level = 0;
        else if (strcmp(pa->meta.ns, o->pod_namespace) != 0)
            continue;
        else if (!pa->n_selector)
            level = 1;
        else if (selects_pod(pa, o))
            level = 2;
        else
            continue;
        const struct model_peer_authn *b = best[level];
        if (!b || pa->meta.creation_ts < b->meta.creation_ts ||
            (pa->meta.creation_ts == b->meta.creation_ts && strcmp(pa->meta.name, b->meta.name) < 0))
            best[level] = pa;
    }
    enum model_mtls_mode mode = MODEL_MTLS_PERMISSIVE;
    for (int level = 0; level < 3; level++) {
        enum model_mtls_mode mm = best[level] ? pa_mode(best[level], port) : MODEL_MTLS_UNSET;
        if (mm != MODEL_MTLS_UNSET)
            mode = mm;
    }
    return mode == MODEL_MTLS_STRICT    ? HTTP_MTLS_STRICT
           : mode == MODEL_MTLS_DISABLE ? HTTP_MTLS_DISABLE
                                        : HTTP_MTLS_PERMISSIVE;
}

/* ---- the access log ---- */

/* What a request's access log line needs from its connections, copied when the request
 * starts (downstream) and per attempt (upstream): the connections may be gone, or be
 * serving another request, by the time it ends. */
struct ps_alog {
    struct sockaddr_storage down; /* the client; AF_UNSPEC when unknown */
    struct sockaddr_storage up;   /* the last attempt's endpoint; AF_UNSPEC: none */
    uint16_t dst_port;            /* the port the client asked for (inbound cluster) */
};

static uint16_t addr_port(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET    ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
           : ss->ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)ss)->sin6_port)
                                       : 0;
}

/* The peer of this hop (the downstream inbound, this attempt's upstream outbound): its
 * SPIFFE ID when the connection is mTLS, copied into the request's arena (ps->peer_id), for
 * authorization, x-forwarded-client-cert, the metrics and the access log. */
static void ps_set_peer(struct pstream *ps, const struct hconn *c)
{
    const char *id = c && c->sock.tls ? tls_conn_peer_id(c->sock.tls) : NULL;
    ps->peer_id = id && *id ? stream_head_strdup(&ps->req, id, strlen(id)) : NULL;
}

/* The request started: note the downstream facts (only with the access log on). */
static void alog_begin(struct pstream *ps)
{
    struct hconn *dc = ps->dc;
    if (!ps->w->sc->alog || ps->shadow || ps->alog || !dc)
        return;
    struct ps_alog *a = calloc(1, sizeof(*a));
    if (!a)
        return; /* logged without the connection's facts */
    a->down = dc->src;
    a->dst_port = addr_port(&dc->dst);
    ps->alog = a;
}

/* An attempt goes to addr. */
static void alog_upstream(struct pstream *ps, const struct sockaddr_storage *addr)
{
    if (ps->alog)
        ps->alog->up = *addr;
}

static struct accesslog_str astr(const char *p, size_t len)
{
    return (struct accesslog_str){p, p ? len : 0};
}

static struct accesslog_str afield(const struct stream_head *h, const char *name)
{
    const struct router_header *f = h->fields.v ? stream_head_get(h, name) : NULL;
    return f ? astr(f->value, f->value_len) : astr(NULL, 0);
}

/* The request's line, if the access log wants it (Envoy logs when the stream ends). */
/* A gRPC response's grpc-status: from its trailers, else its headers (trailers-only); -1. */
static int ps_grpc_status(const struct pstream *ps)
{
    int gs = ps->has_ptr ? stream_grpc_status(&ps->ptr) : -1;
    return gs >= 0 ? gs : stream_grpc_status(&ps->resp);
}

static void ps_access_log(struct pstream *ps)
{
    struct worker *w = ps->w;
    struct accesslog *al = w->sc->alog;
    if (!al || ps->shadow)
        return;
    bool error = ps->status >= 400 || ps->status == 0 || ps->flag;
    if (!accesslog_wants(al, error, prng_next(&w->clusters.rng)))
        return;
    const struct ps_alog *a = ps->alog;
    struct hconn *dc = ps->dc;
    struct accesslog_entry e = {0};
    uint64_t now = loop_now_ms(w->loop);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    e.duration_ms = now - ps->start_ms;
    e.start_unix_ms = (int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000 - (int64_t)e.duration_ms;
    e.method = astr(ps->req.method, ps->req.method_len);
    e.path = astr(ps->req.path, ps->req.path_len);
    e.protocol = ps->dsid              ? astr("HTTP/2", 6)
                 : ps->peer_minor == 0 ? astr("HTTP/1.0", 8)
                                       : astr("HTTP/1.1", 8);
    e.authority = astr(ps->req.authority, ps->req.authority_len);
    e.response_code = ps->status;
    e.response_flags = astr(ps->flag, ps->flag ? strlen(ps->flag) : 0);
    e.bytes_received = ps->rq.total;
    e.bytes_sent = ps->rs.sent;
    char up[ADDR_STRLEN], down[ADDR_STRLEN], cl[400];
    if (a && a->up.ss_family != AF_UNSPEC) {
        addr_format((const struct sockaddr *)&a->up, up);
        e.upstream_host = astr(up, strlen(up));
    }
    const struct sockaddr_storage *src = a ? &a->down : dc ? &dc->src : NULL;
    if (src && src->ss_family != AF_UNSPEC) {
        addr_format((const struct sockaddr *)src, down);
        e.downstream_remote_address = astr(down, strlen(down));
    }
    /* Istio's cluster names: outbound|port||FQDN, inbound|port|| */
    int n = -1;
    if (ps->dir == STATS_OUTBOUND && ps->cluster) {
        const char *port = strrchr(ps->cluster->key, ':');
        n = snprintf(cl, sizeof(cl), "outbound|%s||%s", port ? port + 1 : "", ps->cluster->sni);
    } else if (ps->dir == STATS_INBOUND && (a || dc)) {
        n = snprintf(cl, sizeof(cl), "inbound|%u||", a ? a->dst_port : addr_port(&dc->dst));
    }
    if (n > 0 && (size_t)n < sizeof(cl))
        e.upstream_cluster = astr(cl, (size_t)n);
    e.direction = astr(stats_dir_name(ps->dir), strlen(stats_dir_name(ps->dir)));
    /* principals: the mTLS peer, and ourselves on the side that connection reached */
    const char *me = w->tls ? tls_creds_id(w->tls) : NULL;
    const char *peer = ps->peer_id;
    if (peer) {
        const char *src_id = ps->dir == STATS_INBOUND ? peer : me;
        const char *dst_id = ps->dir == STATS_INBOUND ? me : peer;
        e.source_principal = astr(src_id, src_id ? strlen(src_id) : 0);
        e.destination_principal = astr(dst_id, dst_id ? strlen(dst_id) : 0);
    }
    e.x_request_id = afield(&ps->req, "x-request-id");
    e.traceparent = afield(&ps->req, "traceparent");
    e.user_agent = afield(&ps->req, "user-agent");
    if (ps->grpc) {
        e.grpc = true;
        e.grpc_status = ps_grpc_status(ps);
    }
    char line[ACCESSLOG_LINE_MAX];
    size_t len = accesslog_format(&e, line, sizeof(line));
    accesslog_push(al, w->id, line, len); /* a full ring drops the line and counts it */
}

/* A request the HTTP/1.1 parser refused before it became a stream (400/431/501, flag DPE):
 * logged too, as Envoy does, with what the connection knows. */
void ps_access_log_reject(struct hconn *c, int status)
{
    struct worker *w = c->w;
    struct accesslog *al = w->sc->alog;
    if (!al || !accesslog_wants(al, true, prng_next(&w->clusters.rng)))
        return;
    struct accesslog_entry e = {0};
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    e.start_unix_ms = (int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000;
    e.protocol = astr("HTTP/1.1", 8);
    e.response_code = status;
    e.response_flags = astr("DPE", 3);
    char down[ADDR_STRLEN];
    if (c->src.ss_family != AF_UNSPEC) {
        addr_format((const struct sockaddr *)&c->src, down);
        e.downstream_remote_address = astr(down, strlen(down));
    }
    e.direction = astr(stats_dir_name(c->dir), strlen(stats_dir_name(c->dir)));
    const char *peer = c->sock.tls ? tls_conn_peer_id(c->sock.tls) : NULL;
    if (peer && *peer) {
        const char *me = w->tls ? tls_creds_id(w->tls) : NULL;
        e.source_principal = astr(peer, strlen(peer));
        e.destination_principal = astr(me, me ? strlen(me) : 0);
    }
    char line[ACCESSLOG_LINE_MAX];
    size_t len = accesslog_format(&e, line, sizeof(line));
    accesslog_push(al, w->id, line, len);
}

/* ---- streams ---- */

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static struct pstream *ps_alloc(struct worker *w, enum stats_dir dir, struct config_snapshot *snap)
{
    struct http_worker *hw = w->http;
    struct pstream *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return NULL;
    /* trailer heads are made when trailers come (trailers_begin): most requests have none */
    if (stream_head_init(&ps->req, STREAM_REQUEST, NULL) < 0 ||
        stream_head_init(&ps->resp, STREAM_RESPONSE, NULL) < 0) {
        stream_head_free(&ps->req);
        stream_head_free(&ps->resp);
        stream_head_free(&ps->rtr);
        stream_head_free(&ps->ptr);
        free(ps);
        return NULL;
    }
    ps->w = w;
    ps->id = ++hw->next_id;
    ps->dir = dir;
    ps->peer_minor = 1;
    ps->snap = config_hold(snap);
    ps->start_ms = loop_now_ms(w->loop);
    ps->t0_us = mono_us();
    loop_timer_init(&ps->t_total, on_total_timeout, ps);
    loop_timer_init(&ps->t_try, on_try_timer, ps);
    ps->next = hw->streams;
    if (hw->streams)
        hw->streams->prev = ps;
    hw->streams = ps;
    return ps;
}

struct pstream *ps_new(struct hconn *dc, int32_t dsid)
{
    struct pstream *ps = ps_alloc(dc->w, dc->dir, dc->w->snap);
    if (ps) {
        ps->dc = dc;
        ps->dsid = dsid;
    }
    return ps;
}

static void ps_free(struct pstream *ps)
{
    stream_head_free(&ps->req);
    stream_head_free(&ps->resp);
    stream_head_free(&ps->rtr);
    stream_head_free(&ps->ptr);
    bq_free(&ps->rq);
    bq_free(&ps->rs);
    free(ps->alog);
    config_release(ps->snap);
    free(ps);
}

static void on_reap(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct http_worker *hw = t->owner;
    while (hw->reap) {
        struct pstream *ps = hw->reap;
        hw->reap = ps->reap_next;
        if (ps->prev)
            ps->prev->next = ps->next;
        else
            hw->streams = ps->next;
        if (ps->next)
            ps->next->prev = ps->prev;
        ps_free(ps);
    }
}

void ps_free_all(struct worker *w)
{
    struct http_worker *hw = w->http;
    for (struct pstream *ps = hw->streams, *next; ps; ps = next) {
        next = ps->next;
        if (ps->host)
            lb_request_end(ps->host);
        if (ps->cluster)
            cluster_release(&w->clusters, ps->cluster);
        ps_free(ps);
    }
    hw->streams = hw->reap = NULL;
    loop_timer_cancel(w->loop, &hw->reap_timer);
}

static int64_t now_ns(const struct pstream *ps)
{
    return (int64_t)loop_now_ms(ps->w->loop) * 1000000;
}

static void stat(struct pstream *ps, enum stats_cx c)
{
    http_stat(ps->w, ps->dir, c);
}

static enum stats_cx flag_stat(const char *flag)
{
    static const struct {
        const char *f;
        enum stats_cx c;
    } t[] = {{"NR", STATS_RQ_FLAG_NR},   {"UH", STATS_RQ_FLAG_UH}, {"UF", STATS_RQ_FLAG_UF},
             {"UO", STATS_RQ_FLAG_UO},   {"UT", STATS_RQ_FLAG_UT}, {"URX", STATS_RQ_FLAG_URX},
             {"UC", STATS_RQ_FLAG_UC},   {"UR", STATS_RQ_FLAG_UR}, {"DC", STATS_RQ_FLAG_DC},
             {"DPE", STATS_RQ_FLAG_DPE}, {"NC", STATS_RQ_FLAG_NC}, {"RL", STATS_RQ_FLAG_RL}};
    for (size_t i = 0; flag && i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(flag, t[i].f))
            return t[i].c;
    return STATS_CX_COUNT;
}

/* Lets go of the endpoint this attempt held. */
static void ps_release_host(struct pstream *ps)
{
    if (ps->host) {
        ps->prev_host = ps->host;
        lb_request_end(ps->host);
        ps->host = NULL;
    }
}

/* Ends whatever attempt is running: out of the pool's wait list, off its connection. */
static void ps_drop_attempt(struct pstream *ps, bool cancel)
{
    pool_unwait(ps);
    if (ps->uc)
        uc_detach(ps->uc, ps, cancel);
    ps_release_host(ps);
    loop_timer_cancel(ps->w->loop, &ps->t_try);
    ps->at = AT_NONE;
}

/* ---- metrics (metrics.h) ---- */

/* "name.ns.svc.cluster.local" of the Service ns/name into out. */
static const char *service_fqdn(char *out, size_t cap, const char *ns, const char *name)
{
    snprintf(out, cap, "%s.%s.svc.cluster.local", name, ns);
    return out;
}

/* v in decimal into buf (no printf on the request path); returns buf. */
static const char *utoa(char buf[12], unsigned v)
{
    char *p = buf + 11;
    *p = 0;
    do
        *--p = (char)('0' + v % 10);
    while (v /= 10);
    return p;
}

/* The finished request as a sample of Istio's labels: this pod on one side, the peer's
 * x-ringmesh-peer (only trusted over mTLS) on the other. */
static void ps_metrics(struct pstream *ps)
{
    struct worker *w = ps->w;
    const struct sidecar *sc = w->sc;
    if (!sc->metrics.enabled)
        return;
    struct metrics_peer peer;
    struct metrics_sample m = {.duration_us = mono_us() - ps->t0_us,
                               .rq_bytes = ps->rq.total,
                               .rs_bytes = ps->rs.total};
    char code[12], grpc[12], svc[300];
    const char *self_id = w->tls ? tls_creds_id(w->tls) : NULL;
    bool out = ps->dir == STATS_OUTBOUND;
    if (!ps->peer_md || !metrics_peer_parse(ps->peer_md, ps->peer_md_len, &peer))
        metrics_peer_parse("", 0, &peer); /* all "unknown" */
    metrics_sample_peer(&m, true, out ? &sc->self : &peer);
    metrics_sample_peer(&m, false, out ? &peer : &sc->self);
    m.v[ML_REPORTER] = out ? "source" : "destination";
    m.v[ML_SRC_PRINCIPAL] = out ? (ps->peer_id ? self_id : NULL) : ps->peer_id;
    m.v[ML_DST_PRINCIPAL] = out ? ps->peer_id : (ps->peer_id ? self_id : NULL);
    if (out && ps->cluster) {
        m.v[ML_DST_SERVICE] = ps->cluster->sni;
        m.v[ML_DST_SERVICE_NAME] = ps->cluster->svc_name;
        m.v[ML_DST_SERVICE_NS] = ps->cluster->svc_ns;
    } else if (!out && ps->in_svc) {
        m.v[ML_DST_SERVICE] = service_fqdn(svc, sizeof(svc), sc->opts.pod_namespace, ps->in_svc);
        m.v[ML_DST_SERVICE_NAME] = ps->in_svc;
        m.v[ML_DST_SERVICE_NS] = sc->opts.pod_namespace;
    }
    m.v[ML_REQUEST_PROTOCOL] = ps->grpc ? "grpc" : "http";
    m.v[ML_RESPONSE_CODE] = utoa(code, ps->status > 0 ? (unsigned)ps->status : 0);
    int gs = ps->grpc ? ps_grpc_status(ps) : -1;
    m.v[ML_GRPC_STATUS] = gs >= 0 ? utoa(grpc, (unsigned)gs) : ""; /* Istio's value off gRPC */
    m.v[ML_RESPONSE_FLAGS] = ps->flag ? ps->flag : "-";
    m.v[ML_SECURITY_POLICY] = out ? "unknown" : ps->peer_id ? "mutual_tls" : "none";
    metrics_http(&w->metrics, &m, loop_now_ms(w->loop));
}

/* Keeps what the peer said of itself (x-ringmesh-peer) when the hop is mTLS, and removes
 * the header in any case: the app never sees it, and a plaintext client cannot forge it. */
static void ps_take_peer(struct pstream *ps, struct stream_head *h)
{
    const struct router_header *f = stream_head_get(h, METRICS_PEER_HEADER);
    if (f && ps->peer_id && f->value_len <= 512) {
        ps->peer_md = stream_head_strdup(h, f->value, f->value_len);
        ps->peer_md_len = ps->peer_md ? f->value_len : 0;
    }
    if (f)
        router_headers_remove(&h->fields, METRICS_PEER_HEADER, METRICS_PEER_HEADER_LEN);
}

/* Our x-ringmesh-peer on a head going to an mTLS peer. */
static void ps_give_peer(struct pstream *ps, struct stream_head *h)
{
    const struct sidecar *sc = ps->w->sc;
    if (sc->metrics.enabled && sc->self_peer_hdr_len)
        stream_head_set(h, METRICS_PEER_HEADER, METRICS_PEER_HEADER_LEN, sc->self_peer_hdr,
                        sc->self_peer_hdr_len);
}

/* Counted, detached from both connections, freed by the reap. */
static void ps_finish(struct pstream *ps)
{
    struct worker *w = ps->w;
    struct http_worker *hw = w->http;
    if (ps->finished)
        return;
    ps->finished = true;
    ps_access_log(ps); /* both while the cluster is still held */
    if (!ps->shadow)
        ps_metrics(ps);
    mirror_unlink(ps);
    while (ps->mirrors) { /* mirrors outlive the original only with a whole request */
        struct pstream *m = ps->mirrors;
        ps->mirrors = m->mnext;
        m->mparent = NULL;
        m->mnext = NULL;
        if (!ps->req_done || !ps->rq.done)
            ps_downstream_gone(m);
    }
    loop_timer_cancel(w->loop, &ps->t_total);
    ps_drop_attempt(ps, ps->at != AT_DONE);
    if (ps->counted_rq) {
        ps->cluster->rq_active--;
        ps->counted_rq = false;
    }
    if (ps->cluster) {
        cluster_release(&w->clusters, ps->cluster);
        ps->cluster = NULL;
    }
    if (!ps->shadow) { /* mirrors are counted once, as rq_mirror, when they start */
        stat(ps, STATS_RQ_TOTAL);
        if (ps->status >= 100 && ps->status < 600)
            stat(ps, (enum stats_cx)(STATS_RQ_1XX + ps->status / 100 - 1));
        enum stats_cx fc = flag_stat(ps->flag);
        if (fc != STATS_CX_COUNT)
            stat(ps, fc);
    }
    log_trace("request %lu (%s): %.*s %.*s -> %d %s", (unsigned long)ps->id,
              stats_dir_name(ps->dir), (int)ps->req.method_len,
              ps->req.method ? ps->req.method : "", (int)ps->req.path_len,
              ps->req.path ? ps->req.path : "", ps->status, ps->flag ? ps->flag : "-");
    if (ps->dc)
        hc_detach(ps->dc, ps); /* may start the next pipelined request */
    ps->reap_next = hw->reap;
    hw->reap = ps;
    if (!loop_timer_armed(&hw->reap_timer)) {
        loop_timer_init(&hw->reap_timer, on_reap, hw);
        loop_timer_set(w->loop, &hw->reap_timer, 0);
    }
}

static void ps_maybe_finish(struct pstream *ps)
{
    /* Once the whole response went down nothing waits for the rest of the request: an
     * HTTP/1.1 connection is closed after it (hc_detach), an HTTP/2 stream's remaining
     * DATA is consumed and dropped (its window stays open). */
    if (!ps->finished && ps->resp_done)
        ps_finish(ps);
}

/* ---- local replies ---- */

static void ps_reply(struct pstream *ps, int status, const char *flag, const char *msg,
                     const char *location)
{
    const char *body = NULL;
    size_t blen = 0;
    if (ps->resp_started) { /* too late for a reply: cut the response */
        ps->flag = flag;
        stat(ps, STATS_RQ_RESET);
        if (ps->dc)
            hc_reset(ps->dc, ps, H2_INTERNAL_ERROR);
        ps->resp_done = true;
        ps_finish(ps);
        return;
    }
    ps->flag = flag;
    ps->status = status;
    ps_drop_attempt(ps, true);
    if (stream_local_reply(&ps->resp, ps->req.method ? &ps->req : NULL, status, flag, msg, &body,
                           &blen) < 0) {
        if (ps->dc)
            hc_reset(ps->dc, ps, H2_INTERNAL_ERROR);
        ps->resp_done = true;
        ps_finish(ps);
        return;
    }
    if (location)
        stream_head_set(&ps->resp, "location", 8, location, strlen(location));
    if (ps->rule && ps->rule->response_headers)
        router_header_mod_apply(&ps->resp.fields, ps->rule->response_headers);
    ps->resp_started = true;
    ps->resp_done = true; /* first: the codec may close the stream inside the calls */
    bool end = blen == 0 || (ps->resp.flags & STREAM_F_END_STREAM);
    struct hconn *dc = ps->dc;
    if (dc) {
        if (hc_response_head(dc, ps, end) < 0)
            hc_reset(dc, ps, H2_INTERNAL_ERROR);
        else if (!end && ps->dc == dc)
            hc_response_data(dc, ps, body, blen, true);
    }
    ps_maybe_finish(ps);
}

void ps_local_reply(struct pstream *ps, int status, const char *flag, const char *msg)
{
    ps_reply(ps, status, flag, msg, NULL);
}

/* ---- RequestMirror ---- */

/* A copy of the request head as it goes upstream, :authority with "-shadow" appended
 * (Envoy's convention, so the mirror's app can tell). */
static int head_copy(struct stream_head *d, const struct stream_head *h)
{
    char auth[ROUTER_MAX_HOST_LEN + 16];
    int n = snprintf(auth, sizeof(auth), "%.*s-shadow", (int)h->authority_len, h->authority);
    if (n < 0 || (size_t)n >= sizeof(auth))
        return -ENOSPC;
    d->method = stream_head_strdup(d, h->method, h->method_len);
    d->method_len = h->method_len;
    d->scheme = h->scheme ? stream_head_strdup(d, h->scheme, h->scheme_len) : NULL;
    d->scheme_len = h->scheme_len;
    d->authority = stream_head_strdup(d, auth, (size_t)n);
    d->authority_len = (size_t)n;
    d->path = h->path ? stream_head_strdup(d, h->path, h->path_len) : NULL;
    d->path_len = h->path_len;
    if (!d->method || !d->authority || (h->path && !d->path))
        return -ENOMEM;
    for (size_t i = 0; i < h->fields.n; i++) {
        const struct router_header *f = &h->fields.v[i];
        int e = stream_head_add(d, f->name, f->name_len, f->value, f->value_len);
        if (e < 0)
            return e;
    }
    d->content_length = h->content_length;
    d->flags = h->flags & (STREAM_F_HAS_CL | STREAM_F_END_STREAM | STREAM_F_TE_TRAILERS);
    return 0;
}

/* Starts a fire-and-forget copy of ps to the mirror's Service: the body follows as the
 * client sends it, the response is dropped, nothing is retried, and the copy never
 * delays or fails the original. */
static void ps_mirror(struct pstream *ps, const struct router_port *target)
{
    struct worker *w = ps->w;
    if (!target || ps->upgrade)
        return;
    struct cluster *c = cluster_find(&w->clusters, target->service->svc->meta.ns,
                                     target->service->svc->meta.name, target->port->port);
    if (!c)
        return;
    struct pstream *m = ps_alloc(w, ps->dir, ps->snap);
    if (!m)
        return;
    stat(ps, STATS_RQ_MIRROR);
    m->shadow = true;
    m->cluster = c;
    cluster_hold(c);
    m->method_id = ps->method_id;
    retry_policy_default(&m->rp);
    m->rp.attempts = 0;
    if (head_copy(&m->req, &ps->req) < 0) {
        m->resp_done = m->req_done = true;
        ps_finish(m);
        return;
    }
    if (m->req.flags & STREAM_F_END_STREAM)
        m->rq.done = m->req_done = true;
    m->mparent = ps;
    m->mnext = ps->mirrors;
    ps->mirrors = m;
    retry_state_init(&m->rst, m->req.method, m->req.method_len, (int64_t)loop_now_ms(w->loop), 0,
                     0);
    ps_attempt(m);
}

/* Unlinks a mirror from its original. */
static void mirror_unlink(struct pstream *m)
{
    struct pstream *p = m->mparent;
    if (!p)
        return;
    for (struct pstream **pp = &p->mirrors; *pp; pp = &(*pp)->mnext)
        if (*pp == m) {
            *pp = m->mnext;
            break;
        }
    m->mparent = NULL;
    m->mnext = NULL;
}

/* ---- routing ---- */

static const struct router_port *vip_of(const struct router_table *t,
                                        const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        return router_find_vip(t, AF_INET, &s4->sin_addr, ntohs(s4->sin_port));
    }
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    return router_find_vip(t, AF_INET6, &s6->sin6_addr, ntohs(s6->sin6_port));
}

/* Routes an outbound request: sets ps->rule and ps->cluster, or answers it. 0 to go on. */
static int ps_route(struct pstream *ps)
{
    struct worker *w = ps->w;
    const struct router_table *t = ps->snap ? ps->snap->router : NULL;
    const char *ns = w->sc->opts.pod_namespace;
    /* The Service the Host names (svc, svc.ns, svc.ns.svc[.domain], or a VIP literal,
     * from the client's namespace), as Istio picks the virtual host; else the one whose
     * VIP the app connected to. */
    const struct router_port *rp = NULL;
    if (t && ps->req.authority_len)
        rp = router_find_authority(t, ps->req.authority, ps->req.authority_len, ns,
                                   addr_port(&ps->dc->dst));
    if (t && !rp)
        rp = vip_of(t, &ps->dc->dst);
    if (!rp) {
        ps_local_reply(ps, 404, "NR", "the Service is no longer configured");
        return -1;
    }
    ps->port = rp;
    struct router_request rr;
    struct router_result res;
    stream_router_request(&ps->req, ns, &rr);
    enum router_status st =
        router_route(t, rp, &rr, prng_next(&w->clusters.rng), w->http->scratch, &res);
    ps->rule = res.rule;
    if (st == ROUTER_NO_ROUTE) {
        ps_local_reply(ps, 404, "NR", NULL);
        return -1;
    }
    if (st == ROUTER_REDIRECT) {
        char loc[2048];
        if (router_redirect_location(&res, &rr, "http", rp->port->port, loc, sizeof(loc)) < 0) {
            ps_local_reply(ps, 500, NULL, "redirect location too long");
            return -1;
        }
        ps_reply(ps, router_result_http_status(&res), NULL, "", loc);
        return -1;
    }
    if (st == ROUTER_NO_BACKEND || !res.backend || !res.backend->target) {
        ps_local_reply(ps, 500, "NC", "the route's backend does not exist");
        return -1;
    }
    const struct router_port *bp = res.backend->target;
    struct cluster *c = cluster_find(&w->clusters, bp->service->svc->meta.ns,
                                     bp->service->svc->meta.name, bp->port->port);
    if (!c) {
        ps_local_reply(ps, 503, "NC", "no cluster for the backend");
        return -1;
    }
    ps->cluster = c;
    cluster_hold(c);
    /* filters */
    const struct router_rule *rule = res.rule;
    if (rule->request_headers)
        router_header_mod_apply(&ps->req.fields, rule->request_headers);
    if (rule->rewrite) {
        char path[4096];
        ssize_t n = router_rewrite_path(&res, &rr, path, sizeof(path));
        if (n >= 0 && ((size_t)n != ps->req.path_len || memcmp(path, ps->req.path, (size_t)n))) {
            const char *p = stream_head_strdup(&ps->req, path, (size_t)n);
            if (p)
                ps->req.path = p, ps->req.path_len = (size_t)n;
        }
        if (rule->rewrite->hostname) {
            size_t hl = strlen(rule->rewrite->hostname);
            const char *h = stream_head_strdup(&ps->req, rule->rewrite->hostname, hl);
            if (h)
                ps->req.authority = h, ps->req.authority_len = hl;
        }
    }
    ps->rp = c->retry;
    retry_policy_apply_route(&ps->rp, rule->retry);
    for (size_t i = 0; i < rule->n_mirrors; i++)
        if (router_mirror_selected(&rule->mirrors[i], prng_next(&w->clusters.rng)))
            ps_mirror(ps, rule->mirrors[i].target);
    return 0;
}

/* ---- the request ---- */

/*
 * Inbound: who is asking. x-forwarded-client-cert is replaced (never trusted from the
 * client, Envoy's SANITIZE_SET): with mTLS it says "By=<our ID>;URI=<the peer's ID>",
 * without it is removed. Then AuthorizationPolicy: a denial answers 403. -1 when answered.
 */
static int ps_inbound_identity(struct pstream *ps)
{
    struct worker *w = ps->w;
    struct hconn *dc = ps->dc;
    const char *peer = ps->peer_id;
    ps_take_peer(ps, &ps->req);
    if (dc && dc->svc[0])
        ps->in_svc = stream_head_strdup(&ps->req, dc->svc, strlen(dc->svc));
    router_headers_remove(&ps->req.fields, "x-forwarded-client-cert", 23);
    if (peer && w->tls) {
        char xfcc[2 * TLS_ID_MAX + 16];
        int n = snprintf(xfcc, sizeof(xfcc), "By=%s;URI=%s", tls_creds_id(w->tls), peer);
        if (n > 0 && (size_t)n < sizeof(xfcc))
            stream_head_set(&ps->req, "x-forwarded-client-cert", 23, xfcc, (size_t)n);
    }
    const char *why;
    char buf[300];
    if (dc && !http_inbound_allowed(w, dc->svc, &dc->dst, peer, ps->req.method, ps->req.method_len,
                                    ps->req.path, ps->req.path_len, &why, buf, sizeof(buf))) {
        stat(ps, STATS_RQ_AUTHZ_DENIED);
        log_debug("request %lu from %s: %.*s %.*s denied: %s", (unsigned long)ps->id,
                  peer && *peer ? peer : "a plaintext peer", (int)ps->req.method_len,
                  ps->req.method, (int)ps->req.path_len, ps->req.path ? ps->req.path : "", why);
        ps_local_reply(ps, 403, "RBAC", "RBAC: access denied");
        return -1;
    }
    return 0;
}

void ps_request_head(struct pstream *ps)
{
    struct worker *w = ps->w;
    uint8_t rnd[24]; /* 16 for an x-request-id, 8 for this hop's traceparent span */
    uint64_t now = loop_now_ms(w->loop);

    ps->grpc = stream_is_grpc(&ps->req);
    if (ps->dir == STATS_INBOUND)
        ps_set_peer(ps, ps->dc);
    alog_begin(ps);
    if (ps->dc && w->sc->opts.max_request_rate) { /* one connection's request rate */
        struct hconn *dc = ps->dc;
        if (now - dc->rq_window_ms >= 1000) {
            dc->rq_window_ms = now;
            dc->rq_count = 0;
        }
        if (++dc->rq_count > w->sc->opts.max_request_rate) {
            ps_local_reply(ps, 429, "RL", "request rate limit of this connection");
            return;
        }
    }
    ps->head_method = ps->req.method_len == 4 && !memcmp(ps->req.method, "HEAD", 4);
    ps->method_id = h1_method_id(ps->req.method, ps->req.method_len);
    ps->upgrade = (ps->req.flags & STREAM_F_UPGRADE) != 0;
    if (ps->req.flags & STREAM_F_END_STREAM)
        ps->rq.done = true; /* no body: the upstream head can say so at once */
    if ((ps->req.flags & STREAM_F_EXPECT_CONTINUE) && ps->dc)
        hc_continue(ps->dc);
    for (size_t i = 0; i < sizeof(rnd); i += 8) {
        uint64_t r = prng_next(&w->clusters.rng);
        memcpy(rnd + i, &r, 8);
    }
    stream_forwarded(&ps->req, "http", false, NULL);
    stream_request_id(&ps->req, rnd);
    stream_trace_continue(&ps->req, rnd + 16, NULL);

    int64_t req_to = 0, be_to = 0;
    if (ps->dir == STATS_OUTBOUND) {
        if (ps_route(ps) < 0)
            return;
        req_to = ps->rule->request_timeout_ms > 0 ? ps->rule->request_timeout_ms : 0;
        be_to = ps->rule->backend_timeout_ms > 0 ? ps->rule->backend_timeout_ms : 0;
        if (ps->cluster->rq_active >= ps->cluster->max_requests) {
            ps_local_reply(ps, 503, "UO", NULL);
            return;
        }
        ps->cluster->rq_active++;
        ps->counted_rq = true;
        if (ps->cluster->tls && w->tls)
            ps_give_peer(ps, &ps->req);
        else
            router_headers_remove(&ps->req.fields, METRICS_PEER_HEADER, METRICS_PEER_HEADER_LEN);
        retry_budget_request(&ps->cluster->budget, (int64_t)now);
    } else {
        retry_policy_default(&ps->rp);
        ps->rp.attempts = 0; /* the client's sidecar retries, not this one */
        if (ps_inbound_identity(ps) < 0)
            return;
    }
    retry_state_init(&ps->rst, ps->req.method, ps->req.method_len, (int64_t)now, req_to, be_to);
    if (req_to > 0)
        loop_timer_set(w->loop, &ps->t_total, now + (uint64_t)req_to);
    ps_attempt(ps);
}

void ps_request_data(struct pstream *ps, const char *p, size_t n)
{
    if (ps->finished)
        return;
    if (bq_append(&ps->rq, p, n) < 0) {
        ps_local_reply(ps, 503, "LR", "out of memory");
        return;
    }
    if (ps->rq.total > RETRY_REPLAY_MAX)
        ps->rst.flags |= RETRY_S_BODY_OVERFLOW;
    for (struct pstream *m = ps->mirrors, *next; m; m = next) {
        next = m->mnext; /* a mirror that fails unlinks itself */
        ps_request_data(m, p, n);
    }
    pump_request(ps);
}

void ps_request_trailers(struct pstream *ps)
{
    ps->has_rtr = true;
}

void ps_request_end(struct pstream *ps)
{
    if (ps->finished)
        return;
    ps->rq.done = true;
    ps->req_done = true;
    for (struct pstream *m = ps->mirrors, *next; m; m = next) {
        next = m->mnext;
        ps_request_end(m);
    }
    pump_request(ps);
    ps_maybe_finish(ps);
}

void ps_downstream_gone(struct pstream *ps)
{
    if (ps->finished)
        return;
    ps->req_done = true;
    if (!ps->resp_done) {
        ps->flag = "DC";
        if (!ps->status)
            ps->status = 0;
    }
    ps->resp_done = true;
    struct hconn *dc = ps->dc;
    if (dc)
        hc_forget(dc, ps); /* HTTP/1.1: the connection is closed; HTTP/2: the stream reset */
    ps->dc = NULL;
    ps_finish(ps);
}

/* The request body from the cursor to the upstream, as far as the upstream takes it. */
static void pump_request(struct pstream *ps)
{
    /* The codecs' callbacks can call back in here (a flush frees room): the outer call
     * goes round again instead. */
    if (ps->pumping_rq) {
        ps->pump_rq_again = true;
        return;
    }
    ps->pumping_rq = true;
    do {
        ps->pump_rq_again = false;
        pump_request_once(ps);
    } while (ps->pump_rq_again && !ps->finished);
    ps->pumping_rq = false;
}

static void pump_request_once(struct pstream *ps)
{
    struct hconn *uc = ps->uc;
    if (uc && (ps->at == AT_SENT || ps->at == AT_HEADERS) && !ps->req_sent) {
        while (ps->rq.sent < ps->rq.total) {
            size_t room = uc_request_room(uc, ps);
            if (!room)
                break;
            const char *p = NULL;
            size_t n = bq_peek(&ps->rq, &p);
            if (n > room)
                n = room;
            bool end = ps->rq.done && ps->rq.sent + n == ps->rq.total && !ps->has_rtr;
            ps->rq.sent += n;
            if (end)
                ps->req_sent = true;
            if (uc_request_data(uc, ps, p, n, end) < 0) {
                ps_upstream_failed(ps, RETRY_OUT_RESET);
                return;
            }
            if (ps->uc != uc)
                return;
        }
        if (ps->rq.done && ps->rq.sent == ps->rq.total && !ps->req_sent && ps->uc == uc) {
            ps->req_sent = true;
            int e =
                ps->has_rtr ? uc_request_trailers(uc, ps) : uc_request_data(uc, ps, NULL, 0, true);
            if (e < 0 && e != -EPIPE) {
                ps_upstream_failed(ps, RETRY_OUT_RESET);
                return;
            }
        }
    }
    /* downstream flow: HTTP/2 windows reopen as bytes leave; HTTP/1.1 pauses */
    if (ps->rq.sent > ps->rq_acked && ps->dc) {
        hc_consumed(ps->dc, ps, ps->rq.sent - ps->rq_acked);
        ps->rq_acked = ps->rq.sent;
    }
    if (ps->rst.flags & RETRY_S_BODY_OVERFLOW)
        bq_trim(&ps->rq);
    if (ps->dc)
        hc_pause(ps->dc, ps->rq.total - ps->rq.sent > HTTP_BODY_MARK);
}

void ps_upstream_writable(struct pstream *ps)
{
    pump_request(ps);
}

/* ---- attempts ---- */

/* The session-affinity key of a request under the cluster's hash policy. */
static bool hash_key(struct pstream *ps, uint64_t *out)
{
    struct cluster *c = ps->cluster;
    if (c->hash_key == MODEL_HASH_HEADER) {
        const struct router_header *h = stream_head_get(&ps->req, c->hash_name);
        if (!h)
            return false;
        *out = lb_hash(h->value, h->value_len);
        return true;
    }
    if (c->hash_key == MODEL_HASH_COOKIE) {
        size_t nl = strlen(c->hash_name);
        for (size_t i = 0; i < ps->req.fields.n; i++) {
            const struct router_header *h = &ps->req.fields.v[i];
            if (h->name_len != 6 || strncasecmp(h->name, "cookie", 6))
                continue;
            const char *v = h->value, *end = v + h->value_len;
            while (v < end) {
                while (v < end && (*v == ' ' || *v == ';'))
                    v++;
                const char *e = memchr(v, ';', (size_t)(end - v));
                if (!e)
                    e = end;
                if ((size_t)(e - v) > nl && v[nl] == '=' && !memcmp(v, c->hash_name, nl)) {
                    *out = lb_hash(v + nl + 1, (size_t)(e - v) - nl - 1);
                    return true;
                }
                v = e;
            }
        }
        return false;
    }
    if (c->hash_key == MODEL_HASH_SOURCE_IP && ps->dc) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (getpeername(ps->dc->sock.fd, (struct sockaddr *)&ss, &sl) < 0)
            return false;
        if (ss.ss_family == AF_INET)
            *out = lb_hash(&((struct sockaddr_in *)&ss)->sin_addr, 4);
        else
            *out = lb_hash(&((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        return true;
    }
    return false;
}

static void ps_attempt(struct pstream *ps)
{
    struct worker *w = ps->w;
    struct sockaddr_storage addr;
    socklen_t alen;
    bool h2;
    uint64_t now = loop_now_ms(w->loop);

    retry_attempt_start(&ps->rst);
    ps->rq.sent = ps->rq.base; /* a replay starts from the first byte (base is 0 then) */
    ps->req_sent = false;
    if (ps->dir == STATS_OUTBOUND) {
        struct lb_pick_ctx ctx = {
            .rng = &w->clusters.rng, .now_ns = now_ns(ps), .exclude = ps->prev_host};
        ctx.has_hash = hash_key(ps, &ctx.hash);
        struct lb_host *h = lb_pick(ps->cluster->lb, &ctx);
        if (!h) {
            ps_upstream_failed(ps, RETRY_OUT_NO_HEALTHY);
            return;
        }
        lb_request_start(h);
        ps->host = h;
        alen = lb_addr_sockaddr(&h->addr, &addr);
        h2 = !ps->upgrade; /* between sidecars: HTTP/2, except an Upgrade */
    } else {
        addr = ps->dc->dst;
        alen = ps->dc->dst_len;
        h2 = ps->dc->app == HTTP_APP_HTTP2 && !ps->upgrade;
    }
    int64_t d = retry_attempt_deadline_ms(&ps->rp, &ps->rst, (int64_t)now);
    if (d != RETRY_NO_DEADLINE) {
        if (d <= (int64_t)now) {
            ps_upstream_failed(ps, RETRY_OUT_TIMEOUT);
            return;
        }
        ps->backoff = false;
        loop_timer_set(w->loop, &ps->t_try, (uint64_t)d);
    }
    ps->at_start_ms = now;
    alog_upstream(ps, &addr);
    if (ps->dir == STATS_OUTBOUND)
        ps->peer_id = NULL; /* the last attempt's peer is not this one's */
    struct hconn *uc;
    ps->at = AT_WAIT;
    /* between sidecars: mTLS when we have credentials and the policy does not disable it */
    bool tls = ps->dir == STATS_OUTBOUND && w->tls && ps->cluster->tls;
    int e = pool_acquire(w, ps, &addr, alen, h2, tls, &uc);
    if (e < 0) {
        ps_upstream_failed(ps, e == -EOVERFLOW ? RETRY_OUT_OVERFLOW : RETRY_OUT_CONNECT_FAILURE);
        return;
    }
    if (uc)
        ps_upstream_ready(ps, uc);
}

void ps_upstream_ready(struct pstream *ps, struct hconn *uc)
{
    if (ps->dir == STATS_OUTBOUND) /* inbound, the peer is the client */
        ps_set_peer(ps, uc);
    ps->uc = uc;
    ps->at = AT_SENT;
    bool end = ps->rq.done && ps->rq.total == 0 && !ps->has_rtr;
    if (uc_request_head(uc, ps, end) < 0) {
        ps_upstream_failed(ps, RETRY_OUT_RESET);
        return;
    }
    if (end)
        ps->req_sent = true;
    pump_request(ps);
}

static void on_try_timer(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct pstream *ps = t->owner;
    if (ps->finished)
        return;
    if (ps->backoff) {
        ps->backoff = false;
        ps_attempt(ps);
        return;
    }
    stat(ps, STATS_RQ_TIMEOUT);
    ps_upstream_failed(ps, RETRY_OUT_PER_TRY_TIMEOUT);
}

static void on_total_timeout(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct pstream *ps = t->owner;
    if (ps->finished)
        return;
    stat(ps, STATS_RQ_TIMEOUT);
    ps_upstream_failed(ps, RETRY_OUT_TIMEOUT);
}

/* After a failed attempt: another one after a backoff, or the answer. */
static bool ps_retry(struct pstream *ps, const struct retry_outcome *o)
{
    struct worker *w = ps->w;
    int64_t delay;
    if (ps->dir != STATS_OUTBOUND || ps->resp_started)
        return false;
    bool again = retry_decide(&ps->rp, &ps->rst, o, &ps->cluster->budget, &w->clusters.rng,
                              (int64_t)loop_now_ms(w->loop), &delay);
    if (!again) {
        if (ps->rst.why == RETRY_WHY_BUDGET)
            stat(ps, STATS_RQ_RETRY_BUDGET);
        return false;
    }
    stat(ps, STATS_RQ_RETRY);
    if (o->kind <= RETRY_OUT_PER_TRY_TIMEOUT)
        STATS_INC(&w->stats.w[STATS_RETRY_CONNECT_FAILURE + o->kind]);
    ps_drop_attempt(ps, true);
    stream_head_reset(&ps->resp, STREAM_RESPONSE);
    if (ps->ptr.fields.v)
        stream_head_reset(&ps->ptr, STREAM_TRAILERS);
    bq_free(&ps->rs);
    ps->has_ptr = false;
    ps->backoff = true;
    loop_timer_set(w->loop, &ps->t_try, loop_now_ms(w->loop) + (uint64_t)delay);
    return true;
}

static void report_outlier(struct pstream *ps, enum outlier_result r)
{
    if (ps->host && ps->cluster)
        if (lb_report(ps->cluster->lb, ps->host, r, now_ns(ps)) == OUTLIER_EV_EJECTED)
            STATS_INC(&ps->w->stats.w[STATS_OUTLIER_EJECTIONS]);
}

void ps_upstream_failed(struct pstream *ps, enum retry_outcome_kind kind)
{
    if (ps->finished)
        return;
    struct retry_outcome o = {.kind = kind, .grpc_status = -1};
    log_trace("request %lu (%s): attempt failed (outcome %d, state %d, response %s)",
              (unsigned long)ps->id, stats_dir_name(ps->dir), (int)kind, (int)ps->at,
              ps->resp_started ? "started" : "not started");
    if ((kind == RETRY_OUT_TIMEOUT || kind == RETRY_OUT_PER_TRY_TIMEOUT) && ps->host)
        lb_count_timeout(ps->host);
    if (kind == RETRY_OUT_CONNECT_FAILURE || kind == RETRY_OUT_RESET ||
        kind == RETRY_OUT_PER_TRY_TIMEOUT)
        report_outlier(ps, OUTLIER_GATEWAY);
    if (ps->resp_started) {
        /* the response is already going downstream: it can only be cut */
        ps_reply(ps, 0,
                 kind == RETRY_OUT_TIMEOUT || kind == RETRY_OUT_PER_TRY_TIMEOUT ? "UT" : "UR", NULL,
                 NULL);
        return;
    }
    if (ps_retry(ps, &o))
        return;
    const char *flag;
    int status = 503;
    switch (kind) {
    case RETRY_OUT_CONNECT_FAILURE:
        flag = "UF";
        break;
    case RETRY_OUT_REFUSED_STREAM:
    case RETRY_OUT_RESET:
        flag = ps->dir == STATS_OUTBOUND ? "UR" : "UC";
        break;
    case RETRY_OUT_PER_TRY_TIMEOUT:
    case RETRY_OUT_TIMEOUT:
        flag = "UT";
        status = 504;
        break;
    case RETRY_OUT_OVERFLOW:
        flag = "UO";
        break;
    case RETRY_OUT_NO_HEALTHY:
        flag = "UH";
        break;
    default:
        flag = "UR";
    }
    if (ps->rst.tries > 1 && ps->rst.why == RETRY_WHY_ATTEMPTS && status == 503)
        flag = "URX";
    if (ps->dir == STATS_INBOUND && ps->dsid && ps->dc &&
        (kind == RETRY_OUT_CONNECT_FAILURE || kind == RETRY_OUT_RESET)) {
        /* From a peer sidecar (HTTP/2): the app's failure goes back as what it was, a
         * stream reset (REFUSED_STREAM when the app never saw the request), so the
         * client's sidecar applies its own retryOn (connect-failure, refused-stream,
         * reset) rather than seeing a 503 it would not retry. */
        ps->flag = flag;
        ps->status = 0;
        ps_drop_attempt(ps, true);
        hc_reset(ps->dc, ps,
                 kind == RETRY_OUT_CONNECT_FAILURE ? H2_REFUSED_STREAM : H2_INTERNAL_ERROR);
        ps->resp_done = true;
        ps_finish(ps);
        return;
    }
    ps_local_reply(ps, status, flag, NULL);
}

/* ---- the response ---- */

void ps_response_head(struct pstream *ps)
{
    struct worker *w = ps->w;
    if (ps->finished)
        return;
    int status = ps->resp.status;
    if (ps->host && ps->cluster) {
        lb_observe(ps->cluster->lb, ps->host,
                   (int64_t)(loop_now_ms(w->loop) - ps->at_start_ms) * 1000000, now_ns(ps));
        report_outlier(ps, outlier_classify_status(status));
    }
    struct retry_outcome o = {.kind = RETRY_OUT_RESPONSE,
                              .http_status = status,
                              .grpc_status = stream_grpc_status(&ps->resp)};
    if (status >= 400 && ps_retry(ps, &o))
        return;
    if (status >= 400 && ps->rst.tries > 1 && ps->rst.why == RETRY_WHY_ATTEMPTS)
        ps->flag = "URX"; /* the last answer goes down as it is; the flag says why */
    ps->at = AT_HEADERS;
    ps->status = status;
    if (ps->dir == STATS_OUTBOUND)
        ps_take_peer(ps, &ps->resp);
    else if (ps->peer_id)
        ps_give_peer(ps, &ps->resp);
    if (ps->rule && ps->rule->response_headers)
        router_header_mod_apply(&ps->resp.fields, ps->rule->response_headers);
    if (status == 101 && ps->upgrade && ps->uc && ps->dc && ps->dsid == 0 &&
        ps->uc->mode == HM_H1) {
        /* WebSocket: the 101 goes down, then both connections relay bytes */
        struct hconn *dc = ps->dc, *uc = ps->uc;
        stream_head_set(&ps->resp, "connection", 10, "upgrade", 7);
        if (ps->upgrade_proto)
            stream_head_set(&ps->resp, "upgrade", 7, ps->upgrade_proto, strlen(ps->upgrade_proto));
        ps->resp_started = true;
        hc_response_head(dc, ps, true);
        ps->resp_done = true;
        ps->req_done = true;
        ps->at = AT_DONE;
        dc->cur = NULL;
        uc->cur = NULL;
        ps->uc = NULL;
        ps->dc = NULL;
        uc->nstreams--;
        ps_finish(ps);
        hc_tunnel(dc, uc);
        return;
    }
    ps->resp_started = true;
    ps->rst.flags |= RETRY_S_HEADERS_SENT;
    bool end = (ps->resp.flags & STREAM_F_END_STREAM) != 0;
    if (end) { /* first: the codec may close the stream inside the call */
        ps->rs.done = true;
        ps->resp_done = true;
        ps->at = AT_DONE;
        if (ps->uc)
            uc_detach(ps->uc, ps, !ps->req_sent);
        ps_release_host(ps);
        loop_timer_cancel(w->loop, &ps->t_try);
    }
    if (ps->dc && hc_response_head(ps->dc, ps, end) < 0) {
        ps_reply(ps, 0, "DPE", NULL, NULL);
        return;
    }
    if (end)
        ps_response_end(ps);
}

void ps_response_data(struct pstream *ps, const char *p, size_t n)
{
    if (ps->finished)
        return;
    if (ps->shadow) { /* a mirror's answer is dropped as it comes */
        if (ps->uc)
            uc_consumed(ps->uc, ps, n);
        return;
    }
    if (bq_append(&ps->rs, p, n) < 0) {
        ps_reply(ps, 0, "LR", NULL, NULL);
        return;
    }
    pump_response(ps);
}

void ps_response_trailers(struct pstream *ps)
{
    ps->has_ptr = true;
}

void ps_response_end(struct pstream *ps)
{
    if (ps->finished)
        return;
    ps->rs.done = true;
    ps->at = AT_DONE;
    /* the upstream is finished with: the connection goes back to its pool (or is
     * cancelled when the request body was still on its way) */
    if (ps->uc)
        uc_detach(ps->uc, ps, !ps->req_sent);
    ps_release_host(ps);
    loop_timer_cancel(ps->w->loop, &ps->t_try);
    pump_response(ps);
    ps_maybe_finish(ps);
}

static void pump_response(struct pstream *ps)
{
    if (ps->pumping_rs) {
        ps->pump_rs_again = true;
        return;
    }
    ps->pumping_rs = true;
    do {
        ps->pump_rs_again = false;
        pump_response_once(ps);
    } while (ps->pump_rs_again && !ps->finished);
    ps->pumping_rs = false;
}

static void pump_response_once(struct pstream *ps)
{
    struct hconn *dc = ps->dc;
    if (ps->shadow && ps->rs.done && !ps->resp_done) {
        ps->resp_done = true;
        ps_maybe_finish(ps);
        return;
    }
    if (!dc || ps->resp_done)
        return;
    size_t moved = 0;
    while (ps->rs.sent < ps->rs.total) {
        size_t room = hc_response_room(dc, ps);
        if (!room)
            break;
        const char *p = NULL;
        size_t n = bq_peek(&ps->rs, &p);
        if (n > room)
            n = room;
        bool end = ps->rs.done && ps->rs.sent + n == ps->rs.total && !ps->has_ptr;
        ps->rs.sent += n;
        moved += n;
        if (end)
            ps->resp_done = true;
        if (hc_response_data(dc, ps, p, n, end) < 0) {
            hc_reset(dc, ps, H2_INTERNAL_ERROR);
            ps_downstream_gone(ps);
            return;
        }
        if (ps->finished || ps->dc != dc)
            return;
        bq_trim(&ps->rs);
    }
    if (moved && ps->uc)
        uc_consumed(ps->uc, ps, moved);
    if (ps->uc)
        uc_pause(ps->uc, ps->rs.total - ps->rs.sent > HTTP_BODY_MARK);
    if (ps->rs.done && ps->rs.sent == ps->rs.total && !ps->resp_done) {
        ps->resp_done = true; /* first: the codec may close the stream inside the call */
        int e =
            ps->has_ptr ? hc_response_trailers(dc, ps) : hc_response_data(dc, ps, NULL, 0, true);
        (void)e;
        if (ps->finished)
            return;
    }
    if (ps->resp_done) {
        /* the whole response left: the per-request timers stop */
        loop_timer_cancel(ps->w->loop, &ps->t_total);
        ps_maybe_finish(ps);
    }
}

void ps_downstream_writable(struct pstream *ps)
{
    if (!ps->finished)
        pump_response(ps);
}
