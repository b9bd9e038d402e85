/*
 * admin.c - see admin.h. Nonblocking I/O on the main thread, every client with a
 * deadline and a bounded number of them, so neither a slow client nor a flood of them
 * (15090 and 15021 listen on every address) can hold up the readiness probe, signals or
 * the drain. Envoy's conventions: mutations would be POST only
 * (none exist yet), /ready answers 200 "LIVE" or 503 with the state.
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
#include "client.h"
#include "config.h"
#include "log.h"
#include "model.h"
#include "stats.h"
#include "tls.h"
#include "worker.h"


enum admin_kind { ADMIN_API, ADMIN_PROMETHEUS, ADMIN_HEALTH };

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

/* The Prometheus text exposition (format 0.0.4). The full per-request metric set comes
 * with the HTTP layer; for now the TCP-level series, named as Istio's with our prefix. */
static size_t render_prometheus(struct sidecar *sc, char *buf, size_t len)
{
    static const struct {
        const char *name, *type;
        int cx; /* enum stats_cx, or -1 for active */
    } series[] = {
        {"ringmesh_tcp_connections_opened_total", "counter", STATS_CX_TOTAL},
        {"ringmesh_tcp_connections_closed_total", "counter", STATS_CX_CLOSED},
        {"ringmesh_tcp_connections_active", "gauge", -1},
        {"ringmesh_tcp_received_bytes_total", "counter", STATS_BYTES_RX},
        {"ringmesh_tcp_sent_bytes_total", "counter", STATS_BYTES_TX},
        {"ringmesh_tcp_connect_failures_total", "counter", STATS_CX_CONNECT_FAIL},
        {"ringmesh_tcp_connect_timeouts_total", "counter", STATS_CX_CONNECT_TIMEOUT},
        {"ringmesh_tcp_overflow_total", "counter", STATS_CX_OVERFLOW},
        {"ringmesh_tcp_resets_total", "counter", STATS_CX_RESET},
    };
    struct stats s;
    size_t n = 0;
    sum_stats(sc, &s);
    for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
        put(buf, len, &n, "# TYPE %s %s\n", series[i].name, series[i].type);
        for (int d = 0; d < STATS_DIRS; d++)
            put(buf, len, &n, "%s{direction=\"%s\"} %llu\n", series[i].name, stats_dir_name(d),
                (unsigned long long)(series[i].cx < 0 ? cx_active(&s, d)
                                                      : s.cx[d][series[i].cx]));
    }
    put(buf, len, &n, "# TYPE ringmesh_io_backend gauge\nringmesh_io_backend{backend=\"%s\"} 1\n",
        sc->backend);
    put(buf, len, &n, "# TYPE ringmesh_workers gauge\nringmesh_workers %d\n", sc->nworkers);
    put(buf, len, &n, "# TYPE ringmesh_server_live gauge\nringmesh_server_live %d\n",
        atomic_load(&sc->state) == SIDECAR_LIVE);
    return n;
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
 * writes; HEAD gets the head only. */
static void respond(struct admin_client *c, int code, const char *ctype, const char *body,
                    size_t blen)
{
    const char *reason = code == 200   ? "OK"
                         : code == 404 ? "Not Found"
                         : code == 405 ? "Method Not Allowed"
                         : code == 400 ? "Bad Request"
                                       : "Service Unavailable";
    size_t cap = 256 + blen;
    char *out = malloc(cap);
    if (!out) {
        c->out_len = 0;
        return;
    }
    int hl = snprintf(out, cap,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      code, reason, ctype, blen);
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

/* Parses the request head in c->in: method and path (query dropped). -1 if malformed. */
static int parse_request(struct admin_client *c, char **method, char **path)
{
    char *sp1 = strchr(c->in, ' '), *sp2;
    if (!sp1)
        return -1;
    *sp1 = 0;
    sp2 = strpbrk(sp1 + 1, " \r\n");
    if (!sp2)
        return -1;
    *sp2 = 0;
    *method = c->in;
    *path = sp1 + 1;
    char *q = strchr(*path, '?');
    if (q)
        *q = 0;
    return 0;
}

/* Answers a complete request head: fills c->out. */
static void handle(struct admin *a, struct admin_client *c)
{
    static char body[64 * 1024];
    struct sidecar *sc = a->sc;
    char *method, *path;
    int i = c->listener;
    if (parse_request(c, &method, &path) < 0) {
        respond(c, 400, "text/plain", "bad request\n", 12);
        return;
    }
    c->head_only = strcmp(method, "HEAD") == 0;
    int state = atomic_load(&sc->state);
    bool is_get = strcmp(method, "GET") == 0 || c->head_only;
    bool prom = strcmp(path, "/stats/prometheus") == 0 && i != ADMIN_HEALTH;
    bool ready = (i == ADMIN_API && strcmp(path, "/ready") == 0) ||
                 (i == ADMIN_HEALTH && strcmp(path, "/healthz/ready") == 0);
    bool stats = i == ADMIN_API && strcmp(path, "/stats") == 0;
    bool dump = i == ADMIN_API && strcmp(path, "/config_dump") == 0;
    bool reload = i == ADMIN_API && strcmp(path, "/config_reload") == 0;
    if (reload) {
        /* A mutation: POST only, as Envoy's admin API does (CONVENTIONS §2). */
        if (strcmp(method, "POST") != 0) {
            respond(c, 405, "text/plain", "use POST\n", 9);
        } else if (sidecar_reload(sc) == 0) {
            struct config_snapshot *snap = config_acquire();
            int n = snprintf(body, sizeof(body), "loaded version %llu\n",
                             (unsigned long long)(snap ? snap->version : 0));
            config_release(snap);
            respond(c, 200, "text/plain", body, (size_t)n);
        } else {
            int n = snprintf(body, sizeof(body), "rejected: %s\n", sc->last_reload_error);
            respond(c, 400, "text/plain", body, (size_t)n);
        }
    } else if (!prom && !ready && !stats && !dump) {
        respond(c, 404, "text/plain", "not found\n", 10);
    } else if (!is_get) {
        respond(c, 405, "text/plain", "method not allowed\n", 19);
    } else if (ready) {
        /* ready: listeners up and a configuration to serve (with --xds: the first warm
         * snapshot or the cache; CONVENTIONS 7, DESIGN "Lifecycle") */
        bool cfg = atomic_load(&sc->config_ready);
        int n = snprintf(body, sizeof(body), "%s\n",
                         state == SIDECAR_LIVE && !cfg ? "WAITING_FOR_XDS"
                                                       : sidecar_state_str(state));
        respond(c, state == SIDECAR_LIVE && cfg ? 200 : 503, "text/plain", body, (size_t)n);
    } else if (dump) {
        char *json = render_config_dump(sc);
        if (json) {
            respond(c, 200, "application/json", json, strlen(json));
            free(json);
        } else {
            respond(c, 503, "text/plain", "out of memory\n", 14);
        }
    } else if (prom) {
        size_t n = render_prometheus(sc, body, sizeof(body));
        respond(c, 200, "text/plain; version=0.0.4", body, n);
    } else {
        size_t n = admin_render_stats(sc, body, sizeof(body));
        respond(c, 200, "text/plain", body, n);
    }
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
