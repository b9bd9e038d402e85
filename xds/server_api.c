/*
 * server_api.c - port 15014, HTTP/1.1 (xds/PROTOCOL.md "API on 15014"): /metrics, /ready and
 * the API ringmeshctl uses. One request per connection (Connection: close), a deadline-free
 * but size-bounded request (head 16 KiB, body MODEL_MAX_FILE_BYTES), on the loop thread
 * through the common sock. Mutations (apply, DELETE) are accepted from loopback peers, or
 * with "authorization: Bearer <--api-token>".
 *
 * apply: the body's manifests are parsed and validated by the model (errors name the
 * request's source, x-ringmesh-source when ringmeshctl sends it, the document and the field),
 * committed to the store together with everything else (all or nothing), then each created
 * or configured object is written to its own file in the manifest directory (store_dir.c)
 * before the answer. The inotify events of our own writes start no reload (the file is as
 * xds_own_write_note() saw it); a reload that does happen finds the same objects and
 * changes nothing (store_commit compares contents), so it neither loops nor re-pushes.
 *
 * Ownership: struct api_conn owns its sock and request buffers and frees itself when the
 * sock has closed.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "sock.h"
#include "store_dir.h"

#define API_HEAD_MAX (16 * 1024)

struct api_conn {
    struct xds_server *srv; /* borrowed */
    struct sock sock;
    bool loopback;
    bool answered;
    bool closing;
    struct api_conn *next, *prev; /* srv->api_conns */
};

static void api_close(struct api_conn *a)
{
    if (a->closing)
        return;
    a->closing = true;
    sock_close(&a->sock, false);
}

static const char *reason(int code)
{
    switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

/* Sends the answer (body taken over, may be NULL) and closes once it has gone. */
static void answer(struct api_conn *a, int code, const char *ctype, char *body)
{
    char head[256];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     code, reason(code), ctype, blen + (body ? 1 : 0));
    if (sock_write(&a->sock, head, (size_t)n) || (body && (sock_write(&a->sock, body, blen) ||
                                                         sock_write(&a->sock, "\n", 1)))) {
        free(body);
        api_close(a);
        return;
    }
    free(body);
    a->answered = true;
    sock_pause_read(&a->sock, true);
}

static void answer_error(struct api_conn *a, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void answer_error(struct api_conn *a, int code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    a->srv->m.api_errors++;
    answer(a, code, "application/json", cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
}

static void answer_json(struct api_conn *a, cJSON *o)
{
    answer(a, 200, "application/json", cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
}

/* ---- /metrics ---- */

struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = b->cap ? b->cap * 2 : 8192;
        while (nc < b->len + (size_t)n + 1)
            nc *= 2;
        char *q = realloc(b->p, nc);
        if (!q)
            return;
        b->p = q;
        b->cap = nc;
    }
}

static char *metrics_text(struct xds_server *srv)
{
    struct buf b = {0};
    const struct xds_metrics *m = &srv->m;
    put(&b, "# HELP ringmesh_xds_connected_sidecars xDS streams open now.\n"
            "# TYPE ringmesh_xds_connected_sidecars gauge\n"
            "ringmesh_xds_connected_sidecars %zu\n",
        srv->n_streams);
    put(&b, "# HELP ringmesh_xds_streams_total xDS streams opened.\n"
            "# TYPE ringmesh_xds_streams_total counter\n"
            "ringmesh_xds_streams_total %llu\n",
        (unsigned long long)m->streams_total);
    put(&b, "# HELP ringmesh_xds_pushes_total Responses sent, by type.\n"
            "# TYPE ringmesh_xds_pushes_total counter\n");
    for (int i = 0; i < STORE_TYPE_COUNT; i++)
        put(&b, "ringmesh_xds_pushes_total{type=\"%s\"} %llu\n",
            store_type_url(store_push_order[i]),
            (unsigned long long)m->pushes[store_push_order[i]]);
    put(&b, "# HELP ringmesh_xds_nacks_total Responses sidecars rejected, by type.\n"
            "# TYPE ringmesh_xds_nacks_total counter\n");
    for (int i = 0; i < STORE_TYPE_COUNT; i++)
        put(&b, "ringmesh_xds_nacks_total{type=\"%s\"} %llu\n",
            store_type_url(store_push_order[i]),
            (unsigned long long)m->nacks[store_push_order[i]]);
    put(&b, "# HELP ringmesh_xds_acks_total Responses sidecars accepted, by type.\n"
            "# TYPE ringmesh_xds_acks_total counter\n");
    for (int i = 0; i < STORE_TYPE_COUNT; i++)
        put(&b, "ringmesh_xds_acks_total{type=\"%s\"} %llu\n",
            store_type_url(store_push_order[i]),
            (unsigned long long)m->acks[store_push_order[i]]);
    put(&b, "# HELP ringmesh_xds_push_seconds From a change (or request) to its response.\n"
            "# TYPE ringmesh_xds_push_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < XDS_PUSH_BUCKETS; i++) {
        cum += m->push_hist[i];
        put(&b, "ringmesh_xds_push_seconds_bucket{le=\"%g\"} %llu\n", xds_push_bucket_s[i],
            (unsigned long long)cum);
    }
    put(&b, "ringmesh_xds_push_seconds_bucket{le=\"+Inf\"} %llu\n",
        (unsigned long long)m->push_count);
    put(&b, "ringmesh_xds_push_seconds_sum %.6f\n", m->push_sum_s);
    put(&b, "ringmesh_xds_push_seconds_count %llu\n", (unsigned long long)m->push_count);
    put(&b, "# HELP ringmesh_xds_store_objects Objects in the store, by kind.\n"
            "# TYPE ringmesh_xds_store_objects gauge\n");
    for (int k = 0; k < MODEL_KIND_COUNT; k++)
        put(&b, "ringmesh_xds_store_objects{kind=\"%s\"} %zu\n", model_kind_str(k),
            store_count(&srv->store, k));
    put(&b, "# HELP ringmesh_xds_store_revision The store's revision.\n"
            "# TYPE ringmesh_xds_store_revision gauge\n"
            "ringmesh_xds_store_revision %llu\n",
        (unsigned long long)srv->store.revision);
    put(&b, "# HELP ringmesh_xds_reloads_total Manifest directory reloads, by result.\n"
            "# TYPE ringmesh_xds_reloads_total counter\n"
            "ringmesh_xds_reloads_total{result=\"ok\"} %llu\n"
            "ringmesh_xds_reloads_total{result=\"rejected\"} %llu\n",
        (unsigned long long)m->reloads_ok, (unsigned long long)m->reloads_failed);
    put(&b, "# HELP ringmesh_xds_csr_total Certificate requests, by result.\n"
            "# TYPE ringmesh_xds_csr_total counter\n"
            "ringmesh_xds_csr_total{result=\"signed\"} %llu\n"
            "ringmesh_xds_csr_total{result=\"refused\"} %llu\n",
        (unsigned long long)m->csr_signed, (unsigned long long)m->csr_refused);
    put(&b, "# HELP ringmesh_xds_tls_handshake_failures_total Failed TLS handshakes on 15012.\n"
            "# TYPE ringmesh_xds_tls_handshake_failures_total counter\n"
            "ringmesh_xds_tls_handshake_failures_total %llu\n",
        (unsigned long long)m->tls_handshake_failures);
    if (b.p && b.len && b.p[b.len - 1] == '\n')
        b.p[--b.len] = 0; /* answer() appends the last newline */
    return b.p;
}

/* ---- the API ---- */

/* A copy of the object with its version as metadata.resourceVersion, as Kubernetes shows
 * it (the model accepts and ignores the field, so the output can be applied again). */
static cJSON *obj_json(const struct store_obj *o)
{
    cJSON *d = cJSON_Duplicate(o->doc, 1), *meta = cJSON_GetObjectItemCaseSensitive(d, "metadata");
    char v[32];
    snprintf(v, sizeof(v), "%llu", (unsigned long long)o->version);
    if (meta && !cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion"))
        cJSON_AddStringToObject(meta, "resourceVersion", v);
    return d;
}

static void api_get(struct api_conn *a, char **parts, int n)
{
    struct xds_server *srv = a->srv;
    int k = store_kind_parse(parts[0]);
    if (k < 0) {
        answer_error(a, 404, "unknown kind \"%s\"", parts[0]);
        return;
    }
    if (n == 3) {
        struct store_obj *o = store_find(&srv->store, k, parts[1], parts[2]);
        if (!o) {
            answer_error(a, 404, "%s %s/%s not found", model_kind_str(k), parts[1], parts[2]);
            return;
        }
        answer_json(a, obj_json(o));
        return;
    }
    cJSON *root = cJSON_CreateObject(), *items = cJSON_AddArrayToObject(root, "items");
    struct store_obj **objs;
    size_t cnt = store_range(&srv->store, k, &objs);
    for (size_t i = 0; i < cnt; i++) {
        if (n == 2 && strcmp(objs[i]->ns, parts[1]))
            continue;
        cJSON_AddItemToArray(items, obj_json(objs[i]));
    }
    answer_json(a, root);
}

static void api_apply(struct api_conn *a, const char *src, const char *body, size_t len)
{
    struct xds_server *srv = a->srv;
    struct store_obj **objs = NULL;
    size_t n = 0;
    char err[2048], werr_msg[1200] = "";
    bool changed;
    int rc;

    if ((rc = store_parse(src, body, len, NULL, &objs, &n, err, sizeof(err)))) {
        store_objs_free(objs, n);
        answer_error(a, 400, "%s", err);
        return;
    }
    if (n == 0) {
        free(objs);
        answer_error(a, 400, "%s: no objects in it", src);
        return;
    }
    /* store_commit takes the objects: keep their keys for the answer and the writes */
    enum store_action *act = calloc(n, sizeof(*act));
    cJSON *root = cJSON_CreateObject(), *applied = cJSON_AddArrayToObject(root, "applied");
    if (!act || !applied) {
        free(act);
        cJSON_Delete(root);
        store_objs_free(objs, n);
        answer_error(a, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "kind", model_kind_str(objs[i]->kind));
        cJSON_AddStringToObject(e, "namespace", objs[i]->ns);
        cJSON_AddStringToObject(e, "name", objs[i]->name);
        cJSON_AddItemToArray(applied, e);
    }
    rc = store_commit(&srv->store, STORE_MERGE, objs, n, act, &changed, err, sizeof(err));
    free(objs);
    if (rc) {
        free(act);
        cJSON_Delete(root);
        answer_error(a, 400, "%s", err);
        return;
    }
    size_t i = 0;
    for (cJSON *e = applied->child; e; e = e->next, i++) {
        cJSON_AddStringToObject(e, "action", store_action_str(act[i]));
        if (act[i] == STORE_UNCHANGED || !srv->config_dir)
            continue;
        struct store_obj *o = store_find(
            &srv->store, store_kind_parse(cJSON_GetObjectItem(e, "kind")->valuestring),
            cJSON_GetObjectItem(e, "namespace")->valuestring,
            cJSON_GetObjectItem(e, "name")->valuestring);
        char e2[1024];
        if (o && (rc = store_dir_write(srv->config_dir, o, e2, sizeof(e2)))) {
            log_error("apply: %s", e2);
            snprintf(werr_msg, sizeof(werr_msg), "applied, but not saved: %s", e2);
        } else if (o && o->file) {
            xds_own_write_note(srv, o->file);
        }
    }
    free(act);
    srv->m.api_applies++;
    if (changed) {
        log_info("apply: %zu objects from %s, store revision %llu", n, src,
                 (unsigned long long)srv->store.revision);
        xds_server_changed(srv);
    }
    if (werr_msg[0]) {
        cJSON_Delete(root);
        answer_error(a, 500, "%s", werr_msg);
        return;
    }
    answer_json(a, root);
}

static void api_delete(struct api_conn *a, char **parts)
{
    struct xds_server *srv = a->srv;
    int k = store_kind_parse(parts[0]);
    char err[1024];
    bool changed;
    struct store_obj *o;

    if (k < 0) {
        answer_error(a, 404, "unknown kind \"%s\"", parts[0]);
        return;
    }
    if (!(o = store_find(&srv->store, k, parts[1], parts[2]))) {
        answer_error(a, 404, "%s %s/%s not found", model_kind_str(k), parts[1], parts[2]);
        return;
    }
    /* an object from a hand-written manifest would come back on the next reload */
    if (srv->config_dir && o->file) {
        char path[4096];
        snprintf(path, sizeof(path), "%s", o->file);
        if (store_dir_remove(srv->config_dir, o, err, sizeof(err)) == -EPERM) {
            answer_error(a, 409, "%s", err);
            return;
        }
        xds_own_write_note(srv, path);
    }
    struct store_obj *key = calloc(1, sizeof(*key));
    if (!key || !(key->ns = strdup(parts[1])) || !(key->name = strdup(parts[2]))) {
        store_obj_free(key);
        answer_error(a, 500, "out of memory");
        return;
    }
    key->kind = k;
    if (store_commit(&srv->store, STORE_DELETE, &key, 1, NULL, &changed, err, sizeof(err))) {
        answer_error(a, 400, "%s", err);
        return;
    }
    log_info("delete: %s %s/%s, store revision %llu", model_kind_str(k), parts[1], parts[2],
             (unsigned long long)srv->store.revision);
    xds_server_changed(srv);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "kind", model_kind_str(k));
    cJSON_AddStringToObject(root, "namespace", parts[1]);
    cJSON_AddStringToObject(root, "name", parts[2]);
    cJSON_AddStringToObject(root, "action", "deleted");
    answer_json(a, root);
}

/* A header's value in head (case-insensitive name), copied into out; false if absent. */
static bool header(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *h = p + 2;
        if (!strncasecmp(h, name, nl) && h[nl] == ':') {
            const char *v = h + nl + 1, *e = strstr(v, "\r\n");
            while (*v == ' ' || *v == '\t')
                v++;
            size_t l = e ? (size_t)(e - v) : strlen(v);
            while (l && (v[l - 1] == ' ' || v[l - 1] == '\t'))
                l--;
            snprintf(out, cap, "%.*s", (int)l, v);
            return true;
        }
    }
    return false;
}

static void handle(struct api_conn *a, char *head, const char *body, size_t blen)
{
    struct xds_server *srv = a->srv;
    char method[16], path[1024], auth[512], src[512], *parts[4], *q;
    int n = 0;

    if (sscanf(head, "%15s %1023s", method, path) != 2) {
        answer_error(a, 400, "malformed request line");
        return;
    }
    if ((q = strchr(path, '?')))
        *q = 0;
    bool mutation = !strcmp(method, "POST") || !strcmp(method, "DELETE");
    if (mutation && !a->loopback) {
        bool ok = srv->api_token && header(head, "authorization", auth, sizeof(auth)) &&
                  !strncasecmp(auth, "Bearer ", 7) && !strcmp(auth + 7, srv->api_token);
        if (!ok) {
            answer_error(a, srv->api_token ? 401 : 403,
                         "mutations are accepted from loopback%s",
                         srv->api_token ? " or with authorization: Bearer <--api-token>" : " only");
            return;
        }
    }
    if (!strcmp(path, "/metrics") && !strcmp(method, "GET")) {
        answer(a, 200, "text/plain; version=0.0.4", metrics_text(srv));
        return;
    }
    if (!strcmp(path, "/ready") && !strcmp(method, "GET")) {
        if (srv->ready)
            answer(a, 200, "text/plain", strdup("ready"));
        else
            answer(a, 503, "text/plain", strdup("loading"));
        return;
    }
    if (!strcmp(path, "/api/v1/apply")) {
        if (strcmp(method, "POST")) {
            answer_error(a, 405, "%s /api/v1/apply: want POST", method);
            return;
        }
        if (!header(head, "x-ringmesh-source", src, sizeof(src)))
            snprintf(src, sizeof(src), "<request>");
        api_apply(a, src, body, blen);
        return;
    }
    if (!strcmp(path, "/api/v1/proxy-status") && !strcmp(method, "GET")) {
        answer(a, 200, "application/json", xds_proxy_status_json(srv));
        return;
    }
    if (!strncmp(path, "/api/v1/", 8)) {
        for (char *p = strtok(path + 8, "/"); p && n < 4; p = strtok(NULL, "/"))
            parts[n++] = p;
        if (!strcmp(method, "GET") && n >= 1 && n <= 3) {
            api_get(a, parts, n);
            return;
        }
        if (!strcmp(method, "DELETE") && n == 3) {
            api_delete(a, parts);
            return;
        }
        answer_error(a, n ? 405 : 404, "%s %s: want GET /api/v1/<Kind>[/<ns>[/<name>]] or "
                     "DELETE /api/v1/<Kind>/<ns>/<name>", method, path);
        return;
    }
    answer_error(a, 404, "%s %s: not found", method, path);
}

static void on_readable(struct sock *s)
{
    struct api_conn *a = s->owner;
    const char *in = sock_in(s), *end;
    size_t have = sock_in_len(s), head_len, clen = 0;
    char cl[32];

    if (a->answered || a->closing)
        return;
    if (s->err || (s->eof_in && !have)) {
        api_close(a);
        return;
    }
    end = memmem(in, have, "\r\n\r\n", 4);
    if (!end) {
        if (have > API_HEAD_MAX)
            answer_error(a, 413, "request head over %d bytes", API_HEAD_MAX);
        else if (s->eof_in)
            api_close(a);
        return;
    }
    head_len = (size_t)(end - in) + 4;
    char *head = strndup(in, head_len);
    if (!head) {
        api_close(a);
        return;
    }
    if (header(head, "content-length", cl, sizeof(cl))) {
        char *e;
        unsigned long long v = strtoull(cl, &e, 10);
        /* the sock gathers at most SOCK_READ_CHUNK of unconsumed input */
        if (*e || v + head_len > SOCK_READ_CHUNK) {
            free(head);
            answer_error(a, 413, "content-length: want at most %zu bytes (split the manifests)",
                         (size_t)SOCK_READ_CHUNK - head_len);
            return;
        }
        clen = (size_t)v;
    }
    if (have < head_len + clen) {
        free(head);
        if (s->eof_in)
            api_close(a);
        return;
    }
    handle(a, head, in + head_len, clen);
    free(head);
    if (!a->closing)
        sock_consume(s, head_len + clen);
}

static void on_writable(struct sock *s)
{
    struct api_conn *a = s->owner;
    if (a->answered && sock_queued(s) == 0)
        api_close(a);
}

static void on_connected(struct sock *s, int res)
{
    (void)s;
    (void)res;
}

static void on_closed(struct sock *s)
{
    struct api_conn *a = s->owner;
    if (a->prev)
        a->prev->next = a->next;
    else
        a->srv->api_conns = a->next;
    if (a->next)
        a->next->prev = a->prev;
    free(a);
}

static const struct sock_ops api_ops = {on_readable, on_writable, on_connected, on_closed};

int xds_api_accept(struct xds_server *srv, int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    struct api_conn *a = calloc(1, sizeof(*a));
    if (!a) {
        close(fd);
        return -ENOMEM;
    }
    a->srv = srv;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            a->loopback = (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
        else if (ss.ss_family == AF_INET6) {
            const struct in6_addr *a6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
            a->loopback = IN6_IS_ADDR_LOOPBACK(a6) ||
                          (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
        }
    }
    sock_init(&a->sock, srv->loop, fd, &api_ops, a);
    a->next = srv->api_conns;
    if (srv->api_conns)
        srv->api_conns->prev = a;
    srv->api_conns = a;
    sock_read_start(&a->sock);
    return 0;
}

void xds_api_close_all(struct xds_server *srv)
{
    for (struct api_conn *a = srv->api_conns; a; a = a->next)
        api_close(a);
}

/* ---- our own writes, told apart from other changes to the directory ---- */

void xds_own_write_note(struct xds_server *srv, const char *path)
{
    struct stat st;
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    struct xds_own_write *w = NULL;
    for (unsigned i = 0; i < srv->n_own && i < sizeof(srv->own) / sizeof(srv->own[0]); i++)
        if (!strcmp(srv->own[i].name, name))
            w = &srv->own[i];
    if (!w)
        w = &srv->own[srv->n_own++ % (sizeof(srv->own) / sizeof(srv->own[0]))];
    snprintf(w->name, sizeof(w->name), "%s", name);
    if (stat(path, &st) == 0) {
        w->ino = (unsigned long)st.st_ino;
        w->size = (long long)st.st_size;
        w->mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    } else {
        w->ino = 0;
        w->size = w->mtime_ns = 0;
    }
}

bool xds_own_write_is(const struct xds_server *srv, const char *dir, const char *name)
{
    for (unsigned i = 0; i < srv->n_own && i < sizeof(srv->own) / sizeof(srv->own[0]); i++) {
        const struct xds_own_write *w = &srv->own[i];
        if (strcmp(w->name, name) != 0)
            continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        if (stat(path, &st) < 0)
            return w->ino == 0;
        return w->ino == (unsigned long)st.st_ino && w->size == (long long)st.st_size &&
               w->mtime_ns ==
                   (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    }
    return false;
}
