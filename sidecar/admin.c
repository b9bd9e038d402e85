/*
 * admin.c - see admin.h. Nonblocking I/O on the main thread, every client with a
 * deadline and a bounded number of them, so neither a slow client nor a flood of them
 * (15090 and 15021 listen on every address) can hold up the readiness probe, signals or
 * the drain. Envoy's names and formats: /clusters, /server_info, /logging, mutations POST
 * only, /ready answers 200 "LIVE" or 503 with the state. Nothing here reads what a worker
 * owns: /clusters asks the workers for copies (worker.h).
 */
#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "accesslog.h"
#include "addr.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "model.h"
#include "stats.h"
#include "tls.h"
#include "worker.h"

static int admin_listen(uint32_t ip, unsigned short port)
{
    int one = 1, e;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(ip)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
        e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int admin_open(struct admin *a, struct sidecar *sc, char *err, size_t errlen)
{
    const struct {
        uint32_t ip;
        unsigned short port;
        const char *what;
    } l[ADMIN_LISTENERS] = {
        {INADDR_LOOPBACK, sc->opts.admin_port, "admin"},
        {INADDR_ANY, sc->opts.stats_port, "stats"},
        {INADDR_ANY, sc->opts.health_port, "health"},
    };
    memset(a, 0, sizeof(*a));
    a->sc = sc;
    for (int i = 0; i < ADMIN_LISTENERS; i++)
        a->fds[i] = -1;
    for (int i = 0; i < ADMIN_LISTENERS; i++) {
        a->fds[i] = admin_listen(l[i].ip, l[i].port);
        if (a->fds[i] < 0) {
            int e = a->fds[i];
            snprintf(err, errlen, "%s listener on port %u: %s", l[i].what, l[i].port,
                     strerror(-e));
            admin_close(a);
            return e;
        }
    }
    return 0;
}

static void client_close(struct admin *a, struct admin_client *c);

void admin_close(struct admin *a)
{
    while (a->nclients)
        client_close(a, &a->clients[a->nclients - 1]);
    for (int i = 0; i < ADMIN_LISTENERS; i++) {
        if (a->fds[i] >= 0)
            close(a->fds[i]);
        a->fds[i] = -1;
    }
}

static void sum_stats(struct sidecar *sc, struct stats *sum)
{
    memset(sum, 0, sizeof(*sum));
    for (int i = 0; i < sc->nworkers; i++)
        stats_accumulate(sum, &sc->workers[i]->stats);
}

/* Appends printf output to buf[*n..len), never past the end. */
static void put(char *buf, size_t len, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t len, size_t *n, const char *fmt, ...)
{
    va_list ap;
    int r;
    if (*n >= len)
        return;
    va_start(ap, fmt);
    r = vsnprintf(buf + *n, len - *n, fmt, ap);
    va_end(ap);
    if (r > 0)
        *n = *n + (size_t)r < len ? *n + (size_t)r : len;
}

static uint64_t cx_active(const struct stats *s, int d)
{
    return s->cx[d][STATS_CX_TOTAL] - s->cx[d][STATS_CX_OVERFLOW] - s->cx[d][STATS_CX_CLOSED];
}

size_t admin_render_stats(struct sidecar *sc, char *buf, size_t len)
{
    struct stats s;
    size_t n = 0;
    sum_stats(sc, &s);
    put(buf, len, &n, "server.state: %s\n", sidecar_state_str(atomic_load(&sc->state)));
    put(buf, len, &n, "server.io_backend: %s\n", sc->backend);
    put(buf, len, &n, "server.workers: %d\n", sc->nworkers);
    put(buf, len, &n, "server.uptime: %lld\n", (long long)time(NULL) - sc->start_time);
    put(buf, len, &n, "server.active_connections: %d\n", atomic_load(&sc->active_cx));
    for (int d = 0; d < STATS_DIRS; d++) {
        for (int c = 0; c < STATS_CX_COUNT; c++)
            put(buf, len, &n, "%s.%s: %llu\n", stats_dir_name(d), stats_cx_name(c),
                (unsigned long long)s.cx[d][c]);
        put(buf, len, &n, "%s.cx_active: %llu\n", stats_dir_name(d),
            (unsigned long long)cx_active(&s, d));
    }
    for (int c = 0; c < STATS_WORKER_COUNT; c++)
        put(buf, len, &n, "%s: %llu\n", stats_worker_name(c), (unsigned long long)s.w[c]);
    put(buf, len, &n, "buffers.in_use: %llu\n", (unsigned long long)s.buffers_in_use);
    put(buf, len, &n, "access_log.written: %llu\n",
        (unsigned long long)accesslog_written(sc->alog));
    put(buf, len, &n, "access_log.dropped: %llu\n",
        (unsigned long long)accesslog_dropped(sc->alog));
    struct config_snapshot *snap = config_acquire();
    uint64_t oldest = UINT64_MAX;
    for (int i = 0; i < sc->nworkers; i++) {
        uint64_t v = atomic_load(&sc->workers[i]->snap_version);
        if (v < oldest)
            oldest = v;
    }
    put(buf, len, &n, "config.version: %llu\n", (unsigned long long)(snap ? snap->version : 0));
    put(buf, len, &n, "config.oldest_worker_version: %llu\n",
        (unsigned long long)(sc->nworkers ? oldest : 0));
    put(buf, len, &n, "config.reloads_ok: %d\n", atomic_load(&sc->reloads_ok));
    put(buf, len, &n, "config.reloads_rejected: %d\n", atomic_load(&sc->reloads_rejected));
    const struct model_set *m = snap ? snap->model : NULL;
    size_t eps = 0;
    for (size_t i = 0; m && i < m->n_slices; i++)
        eps += m->slices[i].n_endpoints;
    put(buf, len, &n, "config.services: %zu\n", m ? m->n_services : 0);
    put(buf, len, &n, "config.endpoint_slices: %zu\n", m ? m->n_slices : 0);
    put(buf, len, &n, "config.endpoints: %zu\n", eps);
    put(buf, len, &n, "config.http_routes: %zu\n", m ? m->n_routes : 0);
    config_release(snap);
    struct tls_creds *tc = tls_acquire();
    put(buf, len, &n, "tls.enabled: %d\n", tc != NULL);
    if (tc) {
        put(buf, len, &n, "tls.identity: %s\n", tls_creds_id(tc));
        put(buf, len, &n, "tls.cert_expiry_seconds: %lld\n",
            (long long)tls_creds_not_after(tc) - (long long)time(NULL));
    }
    put(buf, len, &n, "tls.reloads_ok: %d\n", atomic_load(&sc->tls_reloads_ok));
    put(buf, len, &n, "tls.reloads_rejected: %d\n", atomic_load(&sc->tls_reloads_rejected));
    tls_creds_release(tc);
    if (sc->xds) {
        struct xds_status xs;
        xds_client_status(sc->xds, &xs);
        put(buf, len, &n, "xds.connected: %d\n", xs.connected);
        put(buf, len, &n, "xds.warm: %d\n", xs.warm);
        put(buf, len, &n, "xds.updates_accepted: %llu\n",
            (unsigned long long)xs.updates_accepted);
        put(buf, len, &n, "xds.updates_rejected: %llu\n",
            (unsigned long long)xs.updates_rejected);
        put(buf, len, &n, "xds.reconnects: %llu\n", (unsigned long long)xs.reconnects);
    }
    return n;
}

/* The Prometheus text exposition (format 0.0.4): the labeled request and TCP series of
 * every worker (metrics.c, prefix per --metrics-prefix), then the proxy's own health,
 * always ringmesh_*. A malloc'ed buffer (*len bytes), or NULL when out of memory. */
static char *render_prometheus(struct sidecar *sc, size_t *len)
{
    static const struct {
        const char *name, *type;
        int cx; /* enum stats_cx, or -1 for active */
    } per_dir[] = {
        {"ringmesh_downstream_cx_total", "counter", STATS_CX_TOTAL},
        {"ringmesh_downstream_cx_active", "gauge", -1},
        {"ringmesh_downstream_cx_overflow_total", "counter", STATS_CX_OVERFLOW},
        {"ringmesh_downstream_rx_bytes_total", "counter", STATS_BYTES_RX},
        {"ringmesh_downstream_tx_bytes_total", "counter", STATS_BYTES_TX},
        {"ringmesh_upstream_cx_connect_fail_total", "counter", STATS_CX_CONNECT_FAIL},
        {"ringmesh_upstream_cx_connect_timeout_total", "counter", STATS_CX_CONNECT_TIMEOUT},
        {"ringmesh_cx_reset_total", "counter", STATS_CX_RESET},
        {"ringmesh_requests_proxied_total", "counter", STATS_RQ_TOTAL},
        {"ringmesh_retries_total", "counter", STATS_RQ_RETRY},
        {"ringmesh_retry_budget_exhausted_total", "counter", STATS_RQ_RETRY_BUDGET},
        {"ringmesh_pool_overflow_total", "counter", STATS_RQ_FLAG_UO},
        {"ringmesh_tls_handshakes_total", "counter", STATS_TLS_HANDSHAKE},
        {"ringmesh_tls_resumed_total", "counter", STATS_TLS_RESUMED},
        {"ringmesh_authz_denied_total", "counter", STATS_RQ_AUTHZ_DENIED},
    };
    static const char *const fail_reasons[] = {"untrusted", "expired",   "no_cert",
                                               "not_svid",  "wrong_identity", "closed",
                                               "protocol"};
    static const char *const retry_reasons[] = {"connect_failure", "refused_stream", "reset",
                                                "status", "per_try_timeout"};
    struct stats s;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc;
    struct metrics_worker *mws[sc->nworkers > 0 ? sc->nworkers : 1];
    for (int i = 0; i < sc->nworkers; i++)
        mws[i] = &sc->workers[i]->metrics;
    rc = metrics_render(mws, (size_t)sc->nworkers, &sc->metrics, &buf, &n, &cap);
    sum_stats(sc, &s);
#define P(...)                                                                                  \
    do {                                                                                        \
        if (rc == 0)                                                                            \
            rc = metrics_printf(&buf, &n, &cap, __VA_ARGS__);                                   \
    } while (0)
    for (size_t i = 0; i < sizeof(per_dir) / sizeof(per_dir[0]); i++) {
        P("# TYPE %s %s\n", per_dir[i].name, per_dir[i].type);
        for (int d = 0; d < STATS_DIRS; d++)
            P("%s{direction=\"%s\"} %llu\n", per_dir[i].name, stats_dir_name(d),
              (unsigned long long)(per_dir[i].cx < 0 ? cx_active(&s, d) : s.cx[d][per_dir[i].cx]));
    }
    P("# TYPE ringmesh_response_flags_total counter\n");
    for (int d = 0; d < STATS_DIRS; d++)
        for (int c = STATS_RQ_FLAG_NR; c <= STATS_RQ_FLAG_RL; c++)
            if (strncmp(stats_cx_name(c), "rq_flag_", 8) == 0)
                P("ringmesh_response_flags_total{direction=\"%s\",flag=\"%s\"} %llu\n",
                  stats_dir_name(d), stats_cx_name(c) + 8, (unsigned long long)s.cx[d][c]);
    P("# TYPE ringmesh_tls_handshake_failures_total counter\n");
    for (int d = 0; d < STATS_DIRS; d++)
        for (int r = 0; r < 7; r++)
            P("ringmesh_tls_handshake_failures_total{direction=\"%s\",reason=\"%s\"} %llu\n",
              stats_dir_name(d), fail_reasons[r],
              (unsigned long long)s.cx[d][STATS_TLS_FAIL_UNTRUSTED + r]);
    P("# TYPE ringmesh_retries_by_reason_total counter\n");
    for (int r = 0; r < 5; r++)
        P("ringmesh_retries_by_reason_total{reason=\"%s\"} %llu\n", retry_reasons[r],
          (unsigned long long)s.w[STATS_RETRY_CONNECT_FAILURE + r]);
    P("# TYPE ringmesh_outlier_ejections_total counter\nringmesh_outlier_ejections_total %llu\n",
      (unsigned long long)s.w[STATS_OUTLIER_EJECTIONS]);
    P("# TYPE ringmesh_accept_paused_total counter\nringmesh_accept_paused_total %llu\n",
      (unsigned long long)s.w[STATS_ACCEPT_PAUSED]);
    struct tls_creds *tc = tls_acquire();
    if (tc) {
        P("# TYPE ringmesh_cert_expiry_timestamp_seconds gauge\n"
          "ringmesh_cert_expiry_timestamp_seconds %lld\n",
          (long long)tls_creds_not_after(tc));
        tls_creds_release(tc);
    }
    if (sc->xds) {
        struct xds_status xs;
        xds_client_status(sc->xds, &xs);
        P("# TYPE ringmesh_xds_connected gauge\nringmesh_xds_connected %d\n", xs.connected);
        P("# TYPE ringmesh_xds_warm gauge\nringmesh_xds_warm %d\n", xs.warm);
        P("# TYPE ringmesh_xds_updates_total counter\n"
          "ringmesh_xds_updates_total{result=\"accepted\"} %llu\n"
          "ringmesh_xds_updates_total{result=\"rejected\"} %llu\n",
          (unsigned long long)xs.updates_accepted, (unsigned long long)xs.updates_rejected);
        P("# TYPE ringmesh_xds_reconnects_total counter\nringmesh_xds_reconnects_total %llu\n",
          (unsigned long long)xs.reconnects);
    }
    uint64_t series, overflowed, evicted;
    metrics_counts(mws, (size_t)sc->nworkers, &series, &overflowed, &evicted);
    P("# TYPE ringmesh_metrics_series gauge\nringmesh_metrics_series %llu\n",
      (unsigned long long)series);
    P("# TYPE ringmesh_metrics_overflow_total counter\nringmesh_metrics_overflow_total %llu\n",
      (unsigned long long)overflowed);
    P("# TYPE ringmesh_metrics_evicted_total counter\nringmesh_metrics_evicted_total %llu\n",
      (unsigned long long)evicted);
    P("# TYPE ringmesh_io_backend gauge\nringmesh_io_backend{backend=\"%s\"} 1\n", sc->backend);
    P("# TYPE ringmesh_workers gauge\nringmesh_workers %d\n", sc->nworkers);
    P("# TYPE ringmesh_server_live gauge\nringmesh_server_live %d\n",
      atomic_load(&sc->state) == SIDECAR_LIVE);
#undef P
    if (rc) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* /config_dump: what this sidecar runs with, as JSON (Envoy's name; the full per-
 * component dump grows with the HTTP layer). No secrets exist in it yet. */
static char *render_config_dump(struct sidecar *sc)
{
    struct config_snapshot *snap = config_acquire();
    const struct model_set *m = snap ? snap->model : NULL;
    cJSON *root = cJSON_CreateObject(), *id, *svcs, *routes;
    char ts[32], *out;
    struct tm tm;
    time_t t = snap ? snap->loaded_at : 0;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddNumberToObject(root, "version", snap ? (double)snap->version : 0);
    cJSON_AddStringToObject(root, "source", snap ? snap->source : "");
    cJSON_AddStringToObject(root, "loaded_at", ts);
    cJSON_AddStringToObject(root, "last_reload_error", sc->last_reload_error);
    id = cJSON_AddObjectToObject(root, "node");
    cJSON_AddStringToObject(id, "pod_name", sc->opts.pod_name ? sc->opts.pod_name : "");
    cJSON_AddStringToObject(id, "namespace", sc->opts.pod_namespace);
    cJSON_AddStringToObject(id, "service_account", sc->opts.service_account);
    cJSON_AddStringToObject(id, "pod_ip", sc->opts.pod_ip ? sc->opts.pod_ip : "");
    svcs = cJSON_AddArrayToObject(root, "services");
    for (size_t i = 0; m && i < m->n_services; i++) {
        const struct model_service *sv = &m->services[i];
        cJSON *o = cJSON_CreateObject(), *ports = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "namespace", sv->meta.ns);
        cJSON_AddStringToObject(o, "name", sv->meta.name);
        cJSON_AddStringToObject(o, "cluster_ip", sv->has_cluster_ip ? sv->cluster_ip.text
                                                 : sv->headless     ? "None"
                                                                    : "");
        for (size_t j = 0; j < sv->n_ports; j++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddStringToObject(p, "name", sv->ports[j].name);
            cJSON_AddNumberToObject(p, "port", sv->ports[j].port);
            if (sv->ports[j].app_protocol)
                cJSON_AddStringToObject(p, "app_protocol", sv->ports[j].app_protocol);
            cJSON_AddItemToArray(ports, p);
        }
        cJSON_AddItemToObject(o, "ports", ports);
        size_t eps = 0;
        for (size_t k = 0; k < m->n_slices; k++)
            if (strcmp(m->slices[k].meta.ns, sv->meta.ns) == 0 &&
                strcmp(m->slices[k].service_name, sv->meta.name) == 0)
                eps += m->slices[k].n_endpoints;
        cJSON_AddNumberToObject(o, "endpoints", (double)eps);
        cJSON_AddItemToArray(svcs, o);
    }
    routes = cJSON_AddArrayToObject(root, "http_routes");
    for (size_t i = 0; m && i < m->n_routes; i++) {
        char name[512];
        snprintf(name, sizeof(name), "%s/%s", m->routes[i].meta.ns, m->routes[i].meta.name);
        cJSON_AddItemToArray(routes, cJSON_CreateString(name));
    }
    config_release(snap);
    if (sc->xds) {
        struct xds_status xs;
        cJSON *x = cJSON_AddObjectToObject(root, "xds"), *types, *nack;
        xds_client_status(sc->xds, &xs);
        cJSON_AddStringToObject(x, "server", sc->opts.xds_url);
        cJSON_AddBoolToObject(x, "connected", xs.connected);
        cJSON_AddBoolToObject(x, "warm", xs.warm);
        cJSON_AddStringToObject(x, "last_stream_error", xs.last_error);
        types = cJSON_AddObjectToObject(x, "types");
        for (int ty = 0; ty < XDS_T_COUNT; ty++) {
            cJSON *o = cJSON_AddObjectToObject(types, xds_type_url(ty));
            cJSON_AddStringToObject(o, "acked_version", xs.acked_version[ty]);
            cJSON_AddNumberToObject(o, "resources", (double)xs.held[ty]);
        }
        nack = cJSON_AddObjectToObject(x, "last_nack");
        if (xs.last_nack[0]) {
            char at[32];
            struct tm ntm;
            gmtime_r(&xs.last_nack_at, &ntm);
            strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &ntm);
            cJSON_AddStringToObject(nack, "type_url", xs.last_nack_type);
            cJSON_AddStringToObject(nack, "nonce", xs.last_nack_nonce);
            cJSON_AddStringToObject(nack, "message", xs.last_nack);
            cJSON_AddStringToObject(nack, "at", at);
        }
    }
    out = cJSON_Print(root);
    cJSON_Delete(root);
    return out;
}

/* Queues a whole response on the client (head + body, one buffer) for nonblocking
 * writes; HEAD gets the head only. extra: more header lines ("Name: value\r\n"), or NULL. */
static void respond_h(struct admin_client *c, int code, const char *ctype, const char *extra,
                      const char *body, size_t blen)
{
    const char *reason = code == 200   ? "OK"
                         : code == 404 ? "Not Found"
                         : code == 405 ? "Method Not Allowed"
                         : code == 400 ? "Bad Request"
                                       : "Service Unavailable";
    size_t elen = extra ? strlen(extra) : 0;
    size_t cap = 256 + elen + blen;
    char *out = malloc(cap);
    if (!out) {
        c->out_len = 0;
        return;
    }
    int hl = snprintf(out, cap,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n%s\r\n",
                      code, reason, ctype, blen, extra ? extra : "");
    size_t n = (size_t)hl;
    if (!c->head_only) {
        memcpy(out + n, body, blen);
        n += blen;
    }
    free(c->out);
    c->out = out;
    c->out_len = n;
    c->out_off = 0;
}

static void respond(struct admin_client *c, int code, const char *ctype, const char *body,
                    size_t blen)
{
    respond_h(c, code, ctype, NULL, body, blen);
}

/* A plain-text answer made with printf. */
static void respondf(struct admin_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void respondf(struct admin_client *c, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    respond(c, code, "text/plain", msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

/* ---- growing text buffer for answers of unbounded size (/clusters) ---- */

struct sbuf {
    char *p; /* owned */
    size_t n, cap;
    bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (int pass = 0; pass < 2 && !b->oom; pass++) {
        size_t room = b->cap - b->n;
        va_start(ap, fmt);
        int r = vsnprintf(b->p ? b->p + b->n : NULL, room, fmt, ap);
        va_end(ap);
        if (r < 0)
            return;
        if ((size_t)r < room) {
            b->n += (size_t)r;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->n <= (size_t)r)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

/* ---- the request line and its query ----
 * The head is parsed in place in c->in (it is ours): method, path, and at most
 * ADMIN_MAX_PARAMS query parameters "k" or "k=v", percent-decoded in place (a decoded
 * string is never longer). Bad input is refused with 400 saying what was wrong. */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes %XX in s in place. -1 on a malformed escape or an encoded NUL. */
static int pct_decode(char *s)
{
    char *o = s;
    for (char *i = s; *i; i++) {
        if (*i != '%') {
            *o++ = *i;
            continue;
        }
        int hi = hexval(i[1]), lo = hi < 0 ? -1 : hexval(i[2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return -1;
        *o++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *o = 0;
    return 0;
}

int admin_parse_query(char *qs, struct admin_query *q, char *why, size_t whylen)
{
    q->n = 0;
    for (char *tok = qs, *next; tok; tok = next) {
        next = strchr(tok, '&');
        if (next)
            *next++ = 0;
        if (!*tok)
            continue; /* "a&&b", a trailing '&' */
        if (q->n == ADMIN_MAX_PARAMS) {
            snprintf(why, whylen, "more than %d query parameters", ADMIN_MAX_PARAMS);
            return -1;
        }
        char *eq = strchr(tok, '=');
        if (eq)
            *eq++ = 0;
        if (pct_decode(tok) < 0 || (eq && pct_decode(eq) < 0)) {
            snprintf(why, whylen, "bad percent-escape in query parameter '%.64s'", tok);
            return -1;
        }
        if (!*tok) {
            snprintf(why, whylen, "query parameter without a name");
            return -1;
        }
        q->p[q->n].key = tok;
        q->p[q->n].val = eq; /* NULL: "?graceful" */
        q->n++;
    }
    return 0;
}

/* Parses the request head in c->in: method, path and query. -1 with why filled if it is
 * malformed. */
static int parse_request(struct admin_client *c, char **method, char **path, struct admin_query *q,
                         char *why, size_t whylen)
{
    char *sp1 = strchr(c->in, ' '), *sp2;
    q->n = 0;
    if (!sp1) {
        snprintf(why, whylen, "bad request line");
        return -1;
    }
    *sp1 = 0;
    sp2 = strpbrk(sp1 + 1, " \r\n");
    if (!sp2) {
        snprintf(why, whylen, "bad request line");
        return -1;
    }
    *sp2 = 0;
    *method = c->in;
    *path = sp1 + 1;
    char *qs = strchr(*path, '?');
    if (!qs)
        return 0;
    *qs++ = 0;
    return admin_parse_query(qs, q, why, whylen);
}

static const char *query_get(const struct admin_query *q, const char *key)
{
    for (int i = 0; i < q->n; i++)
        if (strcmp(q->p[i].key, key) == 0)
            return q->p[i].val ? q->p[i].val : "";
    return NULL;
}

static bool query_has(const struct admin_query *q, const char *key)
{
    return query_get(q, key) != NULL;
}

/* The first parameter not in allowed (NULL-terminated), or NULL if none. */
static const char *query_unknown(const struct admin_query *q, const char *const *allowed)
{
    for (int i = 0; i < q->n; i++) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(q->p[i].key, *a) == 0;
        if (!ok)
            return q->p[i].key;
    }
    return NULL;
}

/* ---- /clusters ---- */

/* Istio's cluster name for our "namespace/name:port" key:
 * "outbound|port||name.namespace.svc.cluster.local". */
static void cluster_name(const char *key, char *out, size_t len)
{
    const char *slash = strchr(key, '/'), *colon = strrchr(key, ':');
    if (!slash || !colon || colon < slash) {
        snprintf(out, len, "%s", key);
        return;
    }
    snprintf(out, len, "outbound|%s||%.*s.%.*s.svc.cluster.local", colon + 1,
             (int)(colon - slash - 1), slash + 1, (int)(slash - key), key);
}

static void host_addr_str(const struct lb_addr *a, char *ip, size_t iplen)
{
    if (!inet_ntop(a->family, a->ip, ip, (socklen_t)iplen))
        snprintf(ip, iplen, "?");
}

/* One endpoint of one cluster, summed over the workers that have it. */
struct host_sum {
    struct cluster_view_host h; /* the first worker's, counters replaced by the sums */
    uint32_t workers_ejected;
};

/* One cluster summed over the workers (a worker adopting a new snapshot may lack it or
 * have other endpoints for a moment: the union is shown). */
struct cluster_sum {
    const struct cluster_view *c; /* the first worker's: settings */
    uint32_t up_cx, pending, rq_active;
    struct outlier_stats os;
    struct host_sum *hosts; /* owned; sorted by address */
    size_t nhosts;
};

static int ptr_key_cmp(const void *a, const void *b)
{
    const struct cluster_view *x = *(const struct cluster_view *const *)a;
    const struct cluster_view *y = *(const struct cluster_view *const *)b;
    return strcmp(x->key, y->key);
}

static int host_addr_cmp(const void *a, const void *b)
{
    return memcmp(&((const struct host_sum *)a)->h.addr, &((const struct host_sum *)b)->h.addr,
                  sizeof(struct lb_addr));
}

/* Merges the workers' views into sums, sorted by cluster key; NULL when out of memory
 * (*n = 0 and no cluster is not an error: returns a non-NULL empty array). */
static struct cluster_sum *sum_views(struct cluster_set_view **v, int nv, size_t *n)
{
    size_t total = 0, nsum = 0;
    *n = 0;
    for (int i = 0; i < nv; i++)
        total += v[i] ? v[i]->n : 0;
    const struct cluster_view **all = calloc(total ? total : 1, sizeof(*all));
    struct cluster_sum *sums = calloc(total ? total : 1, sizeof(*sums));
    if (!all || !sums) {
        free(all);
        free(sums);
        return NULL;
    }
    for (int i = 0, k = 0; i < nv; i++)
        for (size_t j = 0; v[i] && j < v[i]->n; j++)
            all[k++] = &v[i]->clusters[j];
    qsort(all, total, sizeof(*all), ptr_key_cmp);
    for (size_t i = 0; i < total;) {
        size_t j = i, nh = 0;
        while (j < total && strcmp(all[j]->key, all[i]->key) == 0)
            nh += all[j++]->n_hosts;
        struct cluster_sum *cs = &sums[nsum++];
        cs->c = all[i];
        cs->hosts = calloc(nh ? nh : 1, sizeof(*cs->hosts));
        if (!cs->hosts)
            goto oom;
        /* which view holds all[k]: its hosts are at view->hosts[first_host..] */
        for (size_t k = i; k < j; k++) {
            const struct cluster_view *cv = all[k];
            const struct cluster_view_host *hosts = NULL;
            for (int w = 0; w < nv && !hosts; w++)
                if (v[w] && cv >= v[w]->clusters && cv < v[w]->clusters + v[w]->n)
                    hosts = v[w]->hosts + cv->first_host;
            cs->up_cx += cv->up_cx;
            cs->pending += cv->pending;
            cs->rq_active += cv->rq_active;
            cs->os.ejections += cv->outlier_stats.ejections;
            cs->os.ejections_5xx += cv->outlier_stats.ejections_5xx;
            cs->os.ejections_gateway += cv->outlier_stats.ejections_gateway;
            cs->os.skipped_max_percent += cv->outlier_stats.skipped_max_percent;
            cs->os.unejections += cv->outlier_stats.unejections;
            for (size_t h = 0; hosts && h < cv->n_hosts; h++) {
                cs->hosts[cs->nhosts].h = hosts[h];
                cs->hosts[cs->nhosts++].workers_ejected = hosts[h].ejected;
            }
        }
        /* every worker's copy of an endpoint side by side, then each run summed into one */
        qsort(cs->hosts, cs->nhosts, sizeof(*cs->hosts), host_addr_cmp);
        size_t out = 0;
        for (size_t x = 0; x < cs->nhosts; x++) {
            const struct cluster_view_host *vh = &cs->hosts[x].h;
            struct host_sum *d = out ? &cs->hosts[out - 1] : NULL;
            if (!d || memcmp(&d->h.addr, &vh->addr, sizeof(vh->addr)) != 0) {
                if (out != x)
                    cs->hosts[out] = cs->hosts[x];
                out++;
                continue;
            }
            d->h.rq.rq_total += vh->rq.rq_total;
            d->h.rq.rq_success += vh->rq.rq_success;
            d->h.rq.rq_error += vh->rq.rq_error;
            d->h.rq.rq_timeout += vh->rq.rq_timeout;
            d->h.rq.ejections += vh->rq.ejections;
            d->h.rq_active += vh->rq_active;
            d->h.cx_active += vh->cx_active;
            d->h.ejected = d->h.ejected || vh->ejected;
            d->workers_ejected += vh->ejected;
        }
        cs->nhosts = out;
        i = j;
    }
    free(all);
    *n = nsum;
    return sums;
oom:
    for (size_t i = 0; i < nsum; i++)
        free(sums[i].hosts);
    free(sums);
    free(all);
    return NULL;
}

/* Envoy's health_flags: "healthy", or the reasons it is not, each with a leading '/'. */
static void health_flags(const struct cluster_view_host *h, char *out, size_t len)
{
    size_t n = 0;
    out[0] = 0;
    if (h->ejected)
        n += (size_t)snprintf(out + n, len - n, "/failed_outlier_check");
    if (n < len && (!h->ready || h->terminating))
        n += (size_t)snprintf(out + n, len - n, "/failed_eds_health");
    if (!out[0])
        snprintf(out, len, "healthy");
}

/* success_rate: Envoy's success-rate outlier detector's value; ours has only the
 * consecutive detectors, so it is never computed and reads -1, as Envoy's does then. */
#define ADMIN_SUCCESS_RATE_NONE (-1)

static void render_clusters_text(struct sidecar *sc, struct sbuf *b, struct cluster_sum *cs,
                                 size_t n, uint64_t version)
{
    sb_printf(b, "version_info::%llu\n", (unsigned long long)version);
    for (size_t i = 0; i < n; i++) {
        const struct cluster_view *c = cs[i].c;
        const struct outlier_config *o = &c->outlier;
        char name[400];
        cluster_name(c->key, name, sizeof(name));
        sb_printf(b, "%s::observability_name::%s\n", name, name);
        /* the DestinationPolicy's limits; they hold per worker (cluster.h) */
        sb_printf(b, "%s::default_priority::max_connections::%u\n", name, c->max_connections);
        sb_printf(b, "%s::default_priority::max_pending_requests::%u\n", name, c->max_pending);
        sb_printf(b, "%s::default_priority::max_requests::%u\n", name, c->max_requests);
        sb_printf(b, "%s::added_via_api::%s\n", name, sc->xds ? "true" : "false");
        sb_printf(b, "%s::lb_policy::%s\n", name, lb_type_str(c->lb_type));
        sb_printf(b, "%s::outlier::enabled::%s\n", name, o->enabled ? "true" : "false");
        sb_printf(b, "%s::outlier::consecutive_5xx::%u\n", name, o->consecutive_5xx);
        sb_printf(b, "%s::outlier::consecutive_gateway_failure::%u\n", name,
                  o->consecutive_gateway);
        sb_printf(b, "%s::outlier::interval_ms::%lld\n", name, (long long)o->interval_ms);
        sb_printf(b, "%s::outlier::base_ejection_time_ms::%lld\n", name,
                  (long long)o->base_ejection_ms);
        sb_printf(b, "%s::outlier::max_ejection_time_ms::%lld\n", name,
                  (long long)o->max_ejection_ms);
        sb_printf(b, "%s::outlier::max_ejection_percent::%u\n", name, o->max_ejection_percent);
        sb_printf(b, "%s::outlier::ejections_total::%llu\n", name,
                  (unsigned long long)cs[i].os.ejections);
        sb_printf(b, "%s::outlier::success_rate_average::%d\n", name, ADMIN_SUCCESS_RATE_NONE);
        sb_printf(b, "%s::outlier::success_rate_ejection_threshold::%d\n", name,
                  ADMIN_SUCCESS_RATE_NONE);
        for (size_t k = 0; k < cs[i].nhosts; k++) {
            const struct cluster_view_host *h = &cs[i].hosts[k].h;
            char ip[INET6_ADDRSTRLEN], hp[INET6_ADDRSTRLEN + 10], flags[64];
            host_addr_str(&h->addr, ip, sizeof(ip));
            snprintf(hp, sizeof(hp), h->addr.family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip,
                     h->addr.port);
            health_flags(h, flags, sizeof(flags));
            sb_printf(b, "%s::%s::cx_active::%u\n", name, hp, h->cx_active);
            sb_printf(b, "%s::%s::rq_active::%u\n", name, hp, h->rq_active);
            sb_printf(b, "%s::%s::rq_error::%llu\n", name, hp, (unsigned long long)h->rq.rq_error);
            sb_printf(b, "%s::%s::rq_success::%llu\n", name, hp,
                      (unsigned long long)h->rq.rq_success);
            sb_printf(b, "%s::%s::rq_timeout::%llu\n", name, hp,
                      (unsigned long long)h->rq.rq_timeout);
            sb_printf(b, "%s::%s::rq_total::%llu\n", name, hp, (unsigned long long)h->rq.rq_total);
            sb_printf(b, "%s::%s::health_flags::%s\n", name, hp, flags);
            sb_printf(b, "%s::%s::weight::%u\n", name, hp, h->weight);
            sb_printf(b, "%s::%s::zone::%s\n", name, hp, h->zone);
            sb_printf(b, "%s::%s::success_rate::%d\n", name, hp, ADMIN_SUCCESS_RATE_NONE);
            sb_printf(b, "%s::%s::ejected::%s\n", name, hp, h->ejected ? "true" : "false");
            sb_printf(b, "%s::%s::ejections_total::%llu\n", name, hp,
                      (unsigned long long)h->rq.ejections);
        }
    }
}

static void add_stat(cJSON *arr, const char *name, uint64_t v, bool gauge)
{
    char num[24];
    cJSON *o = cJSON_CreateObject();
    snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
    cJSON_AddStringToObject(o, "name", name);
    if (gauge)
        cJSON_AddStringToObject(o, "type", "GAUGE");
    cJSON_AddStringToObject(o, "value", num); /* uint64 as a string: proto3 JSON */
    cJSON_AddItemToArray(arr, o);
}

/* Envoy's Clusters proto as JSON (cluster_statuses[].host_statuses[]), plus ours. */
static char *render_clusters_json(struct sidecar *sc, struct cluster_sum *cs, size_t n,
                                  uint64_t version, int missing)
{
    cJSON *root = cJSON_CreateObject(), *arr;
    char vs[24];
    snprintf(vs, sizeof(vs), "%llu", (unsigned long long)version);
    cJSON_AddStringToObject(root, "version_info", vs);
    if (missing)
        cJSON_AddNumberToObject(root, "workers_not_answering", missing);
    arr = cJSON_AddArrayToObject(root, "cluster_statuses");
    for (size_t i = 0; i < n; i++) {
        const struct cluster_view *c = cs[i].c;
        const struct outlier_config *oc = &c->outlier;
        cJSON *o = cJSON_CreateObject(), *cb, *th, *od, *hsa;
        char name[400];
        cluster_name(c->key, name, sizeof(name));
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "observability_name", name);
        cJSON_AddStringToObject(o, "service", c->key);
        cJSON_AddBoolToObject(o, "added_via_api", sc->xds != NULL);
        cJSON_AddStringToObject(o, "lb_policy", lb_type_str(c->lb_type));
        cb = cJSON_AddObjectToObject(o, "circuit_breakers");
        th = cJSON_CreateObject();
        cJSON_AddStringToObject(th, "priority", "DEFAULT");
        cJSON_AddNumberToObject(th, "max_connections", c->max_connections);
        cJSON_AddNumberToObject(th, "max_pending_requests", c->max_pending);
        cJSON_AddNumberToObject(th, "max_requests", c->max_requests);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(cb, "thresholds"), th);
        od = cJSON_AddObjectToObject(o, "outlier_detection");
        cJSON_AddBoolToObject(od, "enabled", oc->enabled);
        cJSON_AddNumberToObject(od, "consecutive_5xx", oc->consecutive_5xx);
        cJSON_AddNumberToObject(od, "consecutive_gateway_failure", oc->consecutive_gateway);
        cJSON_AddNumberToObject(od, "interval_ms", (double)oc->interval_ms);
        cJSON_AddNumberToObject(od, "base_ejection_time_ms", (double)oc->base_ejection_ms);
        cJSON_AddNumberToObject(od, "max_ejection_time_ms", (double)oc->max_ejection_ms);
        cJSON_AddNumberToObject(od, "max_ejection_percent", oc->max_ejection_percent);
        cJSON_AddNumberToObject(od, "ejections_total", (double)cs[i].os.ejections);
        cJSON_AddNumberToObject(od, "ejections_consecutive_5xx", (double)cs[i].os.ejections_5xx);
        cJSON_AddNumberToObject(od, "ejections_consecutive_gateway_failure",
                                (double)cs[i].os.ejections_gateway);
        cJSON_AddNumberToObject(od, "ejections_skipped_max_percent",
                                (double)cs[i].os.skipped_max_percent);
        hsa = cJSON_AddArrayToObject(o, "host_statuses");
        for (size_t k = 0; k < cs[i].nhosts; k++) {
            const struct cluster_view_host *h = &cs[i].hosts[k].h;
            cJSON *ho = cJSON_CreateObject(), *sa, *st, *hs;
            char ip[INET6_ADDRSTRLEN], flags[64];
            host_addr_str(&h->addr, ip, sizeof(ip));
            health_flags(h, flags, sizeof(flags));
            sa = cJSON_AddObjectToObject(cJSON_AddObjectToObject(ho, "address"), "socket_address");
            cJSON_AddStringToObject(sa, "address", ip);
            cJSON_AddNumberToObject(sa, "port_value", h->addr.port);
            st = cJSON_AddArrayToObject(ho, "stats");
            add_stat(st, "cx_active", h->cx_active, true);
            add_stat(st, "rq_active", h->rq_active, true);
            add_stat(st, "rq_error", h->rq.rq_error, false);
            add_stat(st, "rq_success", h->rq.rq_success, false);
            add_stat(st, "rq_timeout", h->rq.rq_timeout, false);
            add_stat(st, "rq_total", h->rq.rq_total, false);
            hs = cJSON_AddObjectToObject(ho, "health_status");
            cJSON_AddStringToObject(hs, "eds_health_status",
                                    h->terminating ? "DRAINING"
                                    : h->ready     ? "HEALTHY"
                                                   : "UNHEALTHY");
            if (h->ejected)
                cJSON_AddBoolToObject(hs, "failed_outlier_check", true);
            cJSON_AddStringToObject(ho, "health_flags", flags);
            cJSON_AddNumberToObject(ho, "weight", h->weight);
            cJSON_AddStringToObject(cJSON_AddObjectToObject(ho, "locality"), "zone", h->zone);
            cJSON_AddNumberToObject(cJSON_AddObjectToObject(ho, "success_rate"), "value",
                                    ADMIN_SUCCESS_RATE_NONE);
            cJSON_AddBoolToObject(ho, "ejected", h->ejected);
            cJSON_AddNumberToObject(ho, "workers_ejected", cs[i].hosts[k].workers_ejected);
            cJSON_AddNumberToObject(ho, "ejections_total", (double)h->rq.ejections);
            cJSON_AddItemToArray(hsa, ho);
        }
        cJSON_AddItemToArray(arr, o);
    }
    char *out = cJSON_Print(root);
    cJSON_Delete(root);
    return out;
}

/* /clusters: the workers' views (worker.h says why they are copies), summed. */
static void handle_clusters(struct admin *a, struct admin_client *c, const struct admin_query *q)
{
    static const char *const allowed[] = {"format", NULL};
    struct sidecar *sc = a->sc;
    const char *bad = query_unknown(q, allowed), *fmt = query_get(q, "format");
    bool json = fmt && strcmp(fmt, "json") == 0;
    if (bad) {
        respondf(c, 400, "unknown query parameter '%.64s' for /clusters (format=json|text)\n", bad);
        return;
    }
    if (fmt && !json && strcmp(fmt, "text") != 0) {
        respondf(c, 400, "unknown format '%.64s' for /clusters (json or text)\n", fmt);
        return;
    }
    struct cluster_set_view **v = calloc(sc->nworkers ? (size_t)sc->nworkers : 1, sizeof(*v));
    if (!v) {
        respondf(c, 503, "out of memory\n");
        return;
    }
    worker_collect_views(sc->workers, sc->nworkers, v, ADMIN_VIEW_TIMEOUT_MS);
    int missing = 0;
    uint64_t version = UINT64_MAX;
    for (int i = 0; i < sc->nworkers; i++) {
        if (!v[i])
            missing++;
        else if (v[i]->version < version)
            version = v[i]->version;
    }
    if (version == UINT64_MAX)
        version = 0;
    size_t n;
    struct cluster_sum *cs = sum_views(v, sc->nworkers, &n);
    char extra[96] = "";
    if (missing)
        snprintf(extra, sizeof(extra), "X-Ringmesh-Workers-Missing: %d of %d\r\n", missing,
                 sc->nworkers);
    if (!cs) {
        respondf(c, 503, "out of memory\n");
    } else if (json) {
        char *out = render_clusters_json(sc, cs, n, version, missing);
        if (out)
            respond_h(c, 200, "application/json", extra, out, strlen(out));
        else
            respondf(c, 503, "out of memory\n");
        free(out);
    } else {
        struct sbuf b = {0};
        render_clusters_text(sc, &b, cs, n, version);
        if (b.oom)
            respondf(c, 503, "out of memory\n");
        else
            respond_h(c, 200, "text/plain", extra, b.p ? b.p : "", b.n);
        free(b.p);
    }
    for (size_t i = 0; cs && i < n; i++)
        free(cs[i].hosts);
    free(cs);
    for (int i = 0; i < sc->nworkers; i++)
        cluster_set_view_free(v[i]);
    free(v);
}

/* ---- /server_info ---- */

/* Envoy's server states for ours: LIVE waiting for its first xDS snapshot is INITIALIZING. */
static const char *server_state(struct sidecar *sc)
{
    int st = atomic_load(&sc->state);
    if (st == SIDECAR_LIVE && !atomic_load(&sc->config_ready))
        return "INITIALIZING";
    return sidecar_state_str(st);
}

static void add_str_or_null(cJSON *o, const char *k, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static char *render_server_info(struct sidecar *sc)
{
    const struct sidecar_options *op = &sc->opts;
    cJSON *root = cJSON_CreateObject(), *clo, *node = NULL, *md, *labels, *dr;
    char *nj = sidecar_node_json(op), buf[ADDR_STRLEN + 8];
    const cJSON *uav;
    long long up = (long long)time(NULL) - sc->start_time;
    if (nj)
        node = cJSON_Parse(nj);
    free(nj);
    uav = node ? cJSON_GetObjectItemCaseSensitive(node, "user_agent_version") : NULL;
    snprintf(buf, sizeof(buf), "ringmesh-sidecar/%s",
             cJSON_IsString(uav) ? uav->valuestring : "unknown");
    cJSON_AddStringToObject(root, "version", buf);
    cJSON_AddStringToObject(root, "state", server_state(sc));
    snprintf(buf, sizeof(buf), "%llds", up);
    cJSON_AddStringToObject(root, "uptime_current_epoch", buf);
    cJSON_AddStringToObject(root, "uptime_all_epochs", buf); /* no hot restart: one epoch */
    clo = cJSON_AddObjectToObject(root, "command_line_options");
    cJSON_AddNumberToObject(clo, "concurrency", op->concurrency); /* 0: one per CPU */
    cJSON_AddStringToObject(clo, "log_level",
                            log_level_str(atomic_load(&log_level_current))); /* now */
    snprintf(buf, sizeof(buf), "%us", op->drain_seconds);
    cJSON_AddStringToObject(clo, "drain_time", buf);
    cJSON_AddNumberToObject(clo, "outbound_port", op->outbound_port);
    cJSON_AddNumberToObject(clo, "inbound_port", op->inbound_port);
    cJSON_AddNumberToObject(clo, "admin_port", op->admin_port);
    cJSON_AddNumberToObject(clo, "stats_port", op->stats_port);
    cJSON_AddNumberToObject(clo, "health_port", op->health_port);
    cJSON_AddNumberToObject(clo, "connect_timeout_ms", op->connect_timeout_ms);
    cJSON_AddNumberToObject(clo, "idle_timeout_ms", op->idle_timeout_ms);
    cJSON_AddNumberToObject(clo, "sniff_timeout_ms", op->sniff_timeout_ms);
    cJSON_AddNumberToObject(clo, "max_request_rate", op->max_request_rate);
    cJSON_AddNumberToObject(clo, "max_connections", op->max_connections);
    cJSON_AddNumberToObject(clo, "buffer_bytes", op->buffer_bytes);
    cJSON_AddNumberToObject(clo, "buffers", op->buf_count);
    cJSON_AddNumberToObject(clo, "buffer_size", op->buf_size);
    if (op->has_static_dst)
        cJSON_AddStringToObject(clo, "static_dst",
                                addr_format((const struct sockaddr *)&op->static_dst, buf));
    add_str_or_null(clo, "config", op->config_path);
    add_str_or_null(clo, "xds", op->xds_url);
    add_str_or_null(clo, "xds_cache", op->xds_cache);
    add_str_or_null(clo, "xds_token", op->xds_token); /* the file's path, not the token */
    add_str_or_null(clo, "cert_dir", op->cert_dir);
    if (node) {
        md = cJSON_GetObjectItemCaseSensitive(node, "metadata");
        labels = md ? cJSON_AddObjectToObject(md, "labels") : NULL;
        for (size_t i = 0; labels && i < op->n_pod_labels; i++)
            cJSON_AddStringToObject(labels, op->pod_labels[i].key, op->pod_labels[i].value);
        cJSON_AddItemToObject(root, "node", node);
    }
    cJSON_AddStringToObject(root, "io_backend", sc->backend ? sc->backend : "");
    if (sc->backend_why[0])
        cJSON_AddStringToObject(root, "io_backend_why", sc->backend_why);
    cJSON_AddNumberToObject(root, "workers", sc->nworkers);
    dr = cJSON_AddArrayToObject(root, "listeners_drained");
    for (int d = 0; d < STATS_DIRS; d++)
        if (sc->drained_dirs & (1u << d))
            cJSON_AddItemToArray(dr, cJSON_CreateString(stats_dir_name(d)));
    cJSON_AddBoolToObject(root, "exiting", sc->exit_at_ms != 0);
    char *out = cJSON_Print(root);
    cJSON_Delete(root);
    return out;
}

/* ---- /logging ---- */

int admin_log_level(const char *s)
{
    static const struct {
        const char *name;
        int level;
    } t[] = {{"trace", LOG_TRACE},    {"debug", LOG_DEBUG}, {"info", LOG_INFO},
             {"warning", LOG_WARN},   {"warn", LOG_WARN},   {"error", LOG_ERROR},
             {"critical", LOG_ERROR}, {"off", LOG_OFF}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (strcmp(s, t[i].name) == 0)
            return t[i].level;
    return ADMIN_LEVEL_UNKNOWN;
}

/* Our one logger, as Envoy would list it (level names Envoy's). */
static void respond_loggers(struct admin_client *c)
{
    int lvl = atomic_load(&log_level_current);
    respondf(c, 200, "active loggers:\n  %s: %s\n", ADMIN_LOGGER,
             lvl == LOG_WARN ? "warning" : log_level_str((enum log_level)lvl));
}

static void handle_logging(struct admin_client *c, const struct admin_query *q)
{
    static const char *const allowed[] = {"level", ADMIN_LOGGER, NULL};
    const char *bad = query_unknown(q, allowed);
    if (bad) {
        respondf(c, 400, "unknown logger or parameter '%.64s' (one logger: use level= or %s=)\n",
                 bad, ADMIN_LOGGER);
        return;
    }
    const char *want = query_get(q, "level");
    if (!want)
        want = query_get(q, ADMIN_LOGGER);
    if (!want) {
        respond_loggers(c);
        return;
    }
    int lvl = admin_log_level(want);
    if (lvl == ADMIN_LEVEL_UNKNOWN) {
        respondf(c, 400,
                 "unknown log level '%.64s' (trace, debug, info, warning, error, critical, off)\n",
                 want);
        return;
    }
    int old = atomic_exchange(&log_level_current, lvl);
    log_info("log level %s (was %s), set by POST /logging", log_level_str((enum log_level)lvl),
             log_level_str((enum log_level)old));
    respond_loggers(c);
}

/* ---- the endpoints ---- */

enum admin_ep {
    EP_HELP,
    EP_STATS,
    EP_PROMETHEUS,
    EP_CONFIG_DUMP,
    EP_CLUSTERS,
    EP_SERVER_INFO,
    EP_READY,
    EP_CONFIG_RELOAD,
    EP_DRAIN_LISTENERS,
    EP_QUITQUITQUIT,
    EP_LOGGING,
    EP_COUNT,
};

static const struct {
    const char *path;
    bool mutating; /* POST only */
    const char *help;
} endpoints[EP_COUNT] = {
    [EP_HELP] = {"/help", false, "print this list"},
    [EP_STATS] = {"/stats", false, "counters and server state, \"name: value\" lines"},
    [EP_PROMETHEUS] = {"/stats/prometheus", false, "metrics in Prometheus text format 0.0.4"},
    [EP_CONFIG_DUMP] = {"/config_dump", false, "the running configuration as JSON"},
    [EP_CLUSTERS] = {"/clusters", false,
                     "upstream clusters and their endpoints, summed over workers "
                     "(?format=json)"},
    [EP_SERVER_INFO] = {"/server_info", false,
                        "version, state, command line options, uptime, node, as JSON"},
    [EP_READY] = {"/ready", false, "200 LIVE when ready, else 503 with the state"},
    [EP_CONFIG_RELOAD] = {"/config_reload", true, "load --config again (POST)"},
    [EP_DRAIN_LISTENERS] = {"/drain_listeners", true,
                            "stop accepting: ?inboundonly for inbound only, ?graceful "
                            "to also send GOAWAY / Connection: close (POST; no exit)"},
    [EP_QUITQUITQUIT] = {"/quitquitquit", true, "drain as on SIGTERM, then exit 0 (POST)"},
    [EP_LOGGING] = {"/logging", true,
                    "list the log level, or set it: ?level=trace|debug|info|warning|error|"
                    "critical|off (POST)"},
};

static void handle_help(struct admin_client *c)
{
    struct sbuf b = {0};
    sb_printf(&b, "admin commands are:\n");
    for (int i = 0; i < EP_COUNT; i++)
        sb_printf(&b, "  %s%s: %s\n", endpoints[i].mutating ? "POST " : "", endpoints[i].path,
                  endpoints[i].help);
    if (b.oom)
        respondf(c, 503, "out of memory\n");
    else
        respond(c, 200, "text/plain", b.p, b.n);
    free(b.p);
}

/* Refuses query parameters on an endpoint that takes none listed in allowed. */
static bool refuse_params(struct admin_client *c, const struct admin_query *q, const char *path,
                          const char *const *allowed)
{
    const char *bad = query_unknown(q, allowed);
    if (!bad)
        return false;
    respondf(c, 400, "unknown query parameter '%.64s' for %s\n", bad, path);
    return true;
}

/* Answers a complete request head: fills c->out. */
static void handle(struct admin *a, struct admin_client *c)
{
    static char body[64 * 1024];
    static const char *const none[] = {NULL};
    struct sidecar *sc = a->sc;
    struct admin_query q;
    char *method, *path, why[160];
    int i = c->listener, ep = -1;
    if (parse_request(c, &method, &path, &q, why, sizeof(why)) < 0) {
        respondf(c, 400, "bad request: %s\n", why);
        return;
    }
    c->head_only = strcmp(method, "HEAD") == 0;
    bool is_get = strcmp(method, "GET") == 0 || c->head_only;
    bool is_post = strcmp(method, "POST") == 0;
    if (i == ADMIN_API) {
        for (int k = 0; k < EP_COUNT && ep < 0; k++)
            if (strcmp(path, endpoints[k].path) == 0)
                ep = k;
        if (strcmp(path, "/") == 0)
            ep = EP_HELP;
    } else if (strcmp(path, "/stats/prometheus") == 0 && i == ADMIN_PROMETHEUS) {
        ep = EP_PROMETHEUS;
    } else if (strcmp(path, "/healthz/ready") == 0 && i == ADMIN_HEALTH) {
        ep = EP_READY;
    }
    if (ep < 0) {
        respond(c, 404, "text/plain", "not found\n", 10);
        return;
    }
    /* The method rule; admin.h says why 405 and not Envoy's 400. */
    if (endpoints[ep].mutating && !is_post) {
        respond_h(c, 405, "text/plain", "Allow: POST\r\n", "use POST\n", 9);
        return;
    }
    if (!endpoints[ep].mutating && !is_get) {
        respond_h(c, 405, "text/plain", "Allow: GET, HEAD\r\n", "method not allowed\n", 19);
        return;
    }
    switch ((enum admin_ep)ep) {
    case EP_HELP:
        handle_help(c);
        break;
    case EP_CONFIG_RELOAD:
        if (refuse_params(c, &q, path, none))
            break;
        if (sidecar_reload(sc) == 0) {
            struct config_snapshot *snap = config_acquire();
            respondf(c, 200, "loaded version %llu\n",
                     (unsigned long long)(snap ? snap->version : 0));
            config_release(snap);
        } else {
            respondf(c, 400, "rejected: %s\n", sc->last_reload_error);
        }
        break;
    case EP_DRAIN_LISTENERS: {
        static const char *const allowed[] = {"inboundonly", "graceful", "skip_exit", NULL};
        if (refuse_params(c, &q, path, allowed))
            break;
        /* skip_exit is Envoy's: a drain here never exits (that is /quitquitquit) */
        unsigned fl = (query_has(&q, "inboundonly") ? SIDECAR_DRAIN_INBOUND_ONLY : 0) |
                      (query_has(&q, "graceful") ? SIDECAR_DRAIN_GRACEFUL : 0);
        sidecar_drain(sc, fl, "POST /drain_listeners");
        respondf(c, 200, "OK\n");
        break;
    }
    case EP_QUITQUITQUIT:
        if (refuse_params(c, &q, path, none))
            break;
        /* answered first: the main loop exits once this answer is written (admin_busy) */
        respondf(c, 200, "OK\n");
        sidecar_drain(sc, SIDECAR_DRAIN_GRACEFUL | SIDECAR_DRAIN_EXIT, "POST /quitquitquit");
        break;
    case EP_LOGGING:
        handle_logging(c, &q);
        break;
    case EP_CLUSTERS:
        handle_clusters(a, c, &q);
        break;
    case EP_SERVER_INFO: {
        if (refuse_params(c, &q, path, none))
            break;
        char *json = render_server_info(sc);
        if (json)
            respond(c, 200, "application/json", json, strlen(json));
        else
            respondf(c, 503, "out of memory\n");
        free(json);
        break;
    }
    case EP_READY: {
        /* ready: listeners up and a configuration to serve (with --xds: the first warm
         * snapshot or the cache; CONVENTIONS 7, DESIGN "Lifecycle") */
        int state = atomic_load(&sc->state);
        bool cfg = atomic_load(&sc->config_ready);
        int n = snprintf(body, sizeof(body), "%s\n",
                         state == SIDECAR_LIVE && !cfg ? "WAITING_FOR_XDS"
                                                       : sidecar_state_str(state));
        respond(c, state == SIDECAR_LIVE && cfg ? 200 : 503, "text/plain", body, (size_t)n);
        break;
    }
    case EP_CONFIG_DUMP: {
        char *json = render_config_dump(sc);
        if (json) {
            respond(c, 200, "application/json", json, strlen(json));
            free(json);
        } else {
            respond(c, 503, "text/plain", "out of memory\n", 14);
        }
        break;
    }
    case EP_PROMETHEUS: {
        size_t n = 0;
        char *text = render_prometheus(sc, &n);
        if (text)
            respond(c, 200, "text/plain; version=0.0.4", text, n);
        else
            respond(c, 503, "text/plain", "out of memory\n", 14);
        free(text);
        break;
    }
    case EP_STATS: {
        size_t n = admin_render_stats(sc, body, sizeof(body));
        respond(c, 200, "text/plain", body, n);
        break;
    }
    case EP_COUNT:
        break;
    }
}

bool admin_busy(const struct admin *a)
{
    for (int i = 0; i < a->nclients; i++)
        if (a->clients[i].out && a->clients[i].out_off < a->clients[i].out_len)
            return true;
    return false;
}

static void client_close(struct admin *a, struct admin_client *c)
{
    close(c->fd);
    free(c->out);
    *c = a->clients[--a->nclients]; /* keep the array dense */
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int admin_pollfds(struct admin *a, struct pollfd *p, int max)
{
    int n = 0;
    for (int i = 0; i < ADMIN_LISTENERS && n < max; i++)
        p[n++] = (struct pollfd){.fd = a->fds[i], .events = POLLIN};
    for (int i = 0; i < a->nclients && n < max; i++)
        p[n++] = (struct pollfd){.fd = a->clients[i].fd,
                                 .events = a->clients[i].out ? POLLOUT : POLLIN};
    return n;
}

/* Reads what a client sent; answers once the head is complete. -1: close the client. */
static int client_read(struct admin *a, struct admin_client *c)
{
    ssize_t r = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, MSG_DONTWAIT);
    if (r < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (r == 0)
        return -1;
    c->in_len += (size_t)r;
    c->in[c->in_len] = 0;
    if (strstr(c->in, "\r\n\r\n") || strstr(c->in, "\n\n"))
        handle(a, c);
    else if (c->in_len == sizeof(c->in) - 1)
        respond(c, 400, "text/plain", "bad request\n", 12); /* head too long */
    else
        return 0; /* more to come */
    return c->out ? 0 : -1; /* no answer: out of memory */
}

/* Writes what is queued. -1: done or failed, close the client. */
static int client_write(struct admin_client *c)
{
    ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    c->out_off += (size_t)w;
    return c->out_off == c->out_len ? -1 : 0;
}

void admin_process(struct admin *a, const struct pollfd *p, int n)
{
    uint64_t now = mono_ms();
    /* Clients first (their slots match p[ADMIN_LISTENERS...] as admin_pollfds made them);
     * walk backwards, since closing moves the last client into the freed slot. */
    int nc = n - ADMIN_LISTENERS < a->nclients ? n - ADMIN_LISTENERS : a->nclients;
    for (int i = nc - 1; i >= 0; i--) {
        struct admin_client *c = &a->clients[i];
        short re = p[ADMIN_LISTENERS + i].revents;
        int r = 0;
        if (re & (POLLERR | POLLNVAL))
            r = -1;
        else if (c->out && (re & (POLLOUT | POLLHUP)))
            r = client_write(c);
        else if (!c->out && (re & (POLLIN | POLLHUP)))
            r = client_read(a, c);
        if (r == 0 && c->out && !(re & POLLOUT))
            r = client_write(c); /* a fresh answer: try at once */
        if (r < 0 || now >= c->deadline_ms)
            client_close(a, c);
    }
    for (int i = 0; i < ADMIN_LISTENERS && i < n; i++) {
        if (!(p[i].revents & POLLIN))
            continue;
        for (int k = 0; k < 16; k++) {
            int fd = accept4(a->fds[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0)
                break;
            if (a->nclients == ADMIN_MAX_CLIENTS) {
                /* Full: make room by dropping the oldest client still silent, so idle
                 * connections (15021 and 15090 face the network) cannot lock the
                 * kubelet's probe out; with none silent, refuse the newcomer. */
                int oldest = -1;
                for (int j = 0; j < a->nclients; j++)
                    if (!a->clients[j].out && !a->clients[j].in_len &&
                        (oldest < 0 ||
                         a->clients[j].deadline_ms < a->clients[oldest].deadline_ms))
                        oldest = j;
                a->rejected++;
                if (oldest < 0) {
                    close(fd);
                    continue;
                }
                client_close(a, &a->clients[oldest]);
            }
            struct admin_client *c = &a->clients[a->nclients++];
            memset(c, 0, sizeof(*c));
            c->fd = fd;
            c->listener = i;
            c->deadline_ms = now + ADMIN_DEADLINE_MS;
        }
    }
}
