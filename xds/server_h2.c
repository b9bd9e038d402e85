/*
 * server_h2.c - the sidecar ports: 15010 (h2c, prior knowledge) and 15012 (TLS 1.3 with
 * ALPN h2; wolfSSL over memory buffers, server_tls.c's context). One connection is a
 * common sock (sidecar/sock.c: buffered I/O on the loop, no TLS of its own here), an
 * optional WOLFSSL whose I/O callbacks read the sock's input and append to its output,
 * and an nghttp2 server session driven by mem_recv/mem_send.
 *
 * Streams: POST /ringmesh.xds.v1/DeltaResources is a delta xDS stream (xds/PROTOCOL.md):
 * request lines are parsed as they arrive; the response body is produced by a deferred
 * data provider from one buffer per stream holding the current response line. The next
 * response is built only when that buffer has been handed to nghttp2, and nghttp2 is only
 * asked for frames while the socket holds under XDS_SOCK_HIGH bytes, so a slow client
 * costs one response per stream plus XDS_SOCK_HIGH, and never blocks the loop for others.
 * POST /ringmesh.ca.v1/Sign reads its body and answers once (server_ca.c).
 *
 * Ownership: struct xds_conn owns its sock, TLS session, nghttp2 session and streams; it
 * frees itself from the sock's `closed` callback. Streams are also on the server's list of
 * xDS streams (borrowed there) while open.
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <nghttp2/nghttp2.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "server_delta.h"
#include "log.h"
#include "sock.h"

#define XDS_SOCK_HIGH    (256 * 1024)    /* stop asking nghttp2 for frames above this */
#define XDS_LINE_MAX     (64u << 20)     /* PROTOCOL.md: a longer request line ends the stream */
#define XDS_SIGN_MAX     (64 * 1024)     /* a Sign request body */
#define XDS_PATH_STREAM  "/ringmesh.xds.v1/DeltaResources"
#define XDS_PATH_SIGN    "/ringmesh.ca.v1/Sign"

enum xs_kind { XS_UNKNOWN, XS_XDS, XS_SIGN, XS_REFUSED };

struct xds_stream {
    struct xds_conn *c; /* borrowed: the owner */
    int32_t id;
    enum xs_kind kind;
    char method[8];
    char path[64];
    char *authorization; /* owned */
    char *in;            /* owned: request bytes not yet parsed */
    size_t in_len, in_cap;
    char *out; /* owned: the response bytes nghttp2 has not taken yet, out[out_off..out_len) */
    size_t out_off, out_len;
    bool deferred;    /* the data provider returned NGHTTP2_ERR_DEFERRED */
    bool out_eof;     /* end the body once out is drained */
    bool responded;   /* response headers submitted */
    bool in_server;   /* on srv->streams */
    /* xDS */
    char *node_id, *pod, *ns; /* owned; from the first line's node */
    char *pod_ip;             /* owned; metadata.pod_ip, else node id's second field */
    time_t connected_at;
    uint64_t nonce;
    uint64_t want_since_ms; /* when a push became due (for the histogram) */
    struct delta_type types[STORE_TYPE_COUNT];
    struct xds_stream *snext, *sprev; /* srv->streams */
    struct xds_stream *cnext;         /* c->streams */
};

struct xds_conn {
    struct xds_server *srv; /* borrowed */
    struct sock sock;
    nghttp2_session *h2; /* owned */
    WOLFSSL *ssl;        /* owned; NULL on 15010 */
    bool tls_up;
    char peer_id[CA_SPIFFE_ID_MAX + 1]; /* the client certificate's SPIFFE ID, "" without */
    uint64_t id;
    bool closing;
    bool in_io; /* inside conn_io: a nested call only marks again */
    struct xds_stream *streams;
    struct xds_conn *next, *prev; /* srv->conns */
};

static void conn_close(struct xds_conn *c, const char *why);
static void conn_io(struct xds_conn *c);

/* ---- streams ---------------------------------------------------------------------------- */

static const char *kind_type_url(int i)
{
    return store_type_url(store_push_order[i]);
}

/* The pod's IP as its node reports it: metadata.pod_ip, else the second field of an
 * Istio node id (type~ip~pod.ns~ns.svc.domain); "" when neither has one. Only an address's
 * characters are kept: it is shown to operators and scraped by ringmeshctl stat. */
static char *node_pod_ip(const char *node_id, const cJSON *md_ip)
{
    char ip[64] = "";
    const char *s = cJSON_IsString(md_ip) ? md_ip->valuestring : NULL;
    size_t n = 0;
    if ((!s || !*s) && node_id && (s = strchr(node_id, '~')))
        s++;
    for (; s && *s && *s != '~' && n + 1 < sizeof(ip); s++) {
        if (!strchr("0123456789abcdefABCDEF.:", *s)) {
            n = 0;
            break;
        }
        ip[n++] = *s;
    }
    ip[n] = '\0';
    return strdup(ip);
}

static void stream_free(struct xds_stream *st)
{
    struct xds_conn *c = st->c;
    struct xds_server *srv = c->srv;
    struct xds_stream **pp;
    if (st->in_server) {
        if (st->sprev)
            st->sprev->snext = st->snext;
        else
            srv->streams = st->snext;
        if (st->snext)
            st->snext->sprev = st->sprev;
        srv->n_streams--;
        log_info("conn %llu: xDS stream %d of %s closed", (unsigned long long)c->id, st->id,
                 st->node_id ? st->node_id : "(no node)");
    }
    for (pp = &c->streams; *pp; pp = &(*pp)->cnext)
        if (*pp == st) {
            *pp = st->cnext;
            break;
        }
    for (int i = 0; i < STORE_TYPE_COUNT; i++)
        delta_type_free(&st->types[i]);
    free(st->authorization);
    free(st->in);
    free(st->out);
    free(st->node_id);
    free(st->pod);
    free(st->ns);
    free(st->pod_ip);
    free(st);
}

/* Sets the stream's body to the given bytes (taken over) and wakes its data provider. */
static void stream_put(struct xds_stream *st, char *bytes, size_t len, bool eof)
{
    free(st->out);
    st->out = bytes;
    st->out_off = 0;
    st->out_len = len;
    st->out_eof = eof;
    if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(st->c->h2, st->id);
    }
}

static ssize_t on_read_body(nghttp2_session *h, int32_t sid, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct xds_stream *st = src->ptr;
    size_t n = st->out_len - st->out_off;
    (void)h;
    (void)sid;
    (void)ud;
    if (n == 0) {
        if (st->out_eof) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (n > length)
        n = length;
    memcpy(buf, st->out + st->out_off, n);
    st->out_off += n;
    if (st->out_off == st->out_len && st->out_eof)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int respond(struct xds_stream *st, int status, const char *ctype, char *body, size_t len,
                   bool eof)
{
    char code[4];
    snprintf(code, sizeof(code), "%d", status);
    nghttp2_nv hdrs[] = {
        {(uint8_t *)":status", (uint8_t *)code, 7, strlen(code), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)ctype, 12, strlen(ctype), NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = on_read_body};
    st->responded = true;
    st->out = body;
    st->out_off = 0;
    st->out_len = len;
    st->out_eof = eof;
    return nghttp2_submit_response(st->c->h2, st->id, hdrs, 2, &dp);
}

static char *json_error(const char *msg, size_t *len)
{
    cJSON *o = cJSON_CreateObject();
    char *s;
    cJSON_AddStringToObject(o, "error", msg);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s) {
        size_t l = strlen(s);
        char *t = realloc(s, l + 2);
        if (t) {
            t[l] = '\n';
            t[l + 1] = 0;
            s = t;
            l++;
        }
        *len = l;
    }
    return s;
}

/* Ends an xDS stream with an error line (PROTOCOL.md). */
static void stream_fail(struct xds_stream *st, const char *msg)
{
    size_t len = 0;
    char *line = json_error(msg, &len);
    log_warn("conn %llu: xDS stream %d (%s): %s; ending it", (unsigned long long)st->c->id,
             st->id, st->node_id ? st->node_id : "no node yet", msg);
    st->c->srv->m.stream_errors++;
    st->kind = XS_REFUSED; /* no more lines parsed or pushed */
    stream_put(st, line, line ? len : 0, true);
}

/* Builds the next response of this stream if its buffer is free: types in push order. */
static void stream_pump(struct xds_stream *st)
{
    struct xds_server *srv = st->c->srv;
    if (st->kind != XS_XDS || st->out_off < st->out_len)
        return;
    for (int i = 0; i < STORE_TYPE_COUNT; i++) {
        struct delta_type *t = &st->types[i];
        struct delta_resp r;
        int due = delta_next_if_due(t, &srv->store, &r);
        if (due < 0) {
            stream_fail(st, "out of memory");
            return;
        }
        if (!due)
            continue;
        size_t len;
        uint64_t nonce = ++st->nonce;
        char *line = delta_resp_json(&r, t->kind, nonce, srv->store.revision, &len);
        if (!line || delta_sent(t, &r, nonce, srv->store.revision)) {
            free(line);
            delta_resp_free(&r);
            stream_fail(st, "out of memory");
            return;
        }
        log_debug("conn %llu: push %s nonce %llu to %s: %zu resources, %zu removed",
                  (unsigned long long)st->c->id, kind_type_url(i), (unsigned long long)nonce,
                  st->node_id ? st->node_id : "?", r.n_res, r.n_removed);
        delta_resp_free(&r);
        uint64_t since = st->want_since_ms > srv->changed_at_ms ? st->want_since_ms
                                                                : srv->changed_at_ms;
        xds_metrics_push(srv, t->kind, (double)(loop_now_ms(srv->loop) - since) / 1000.0);
        stream_put(st, line, len, false);
        return;
    }
}

/* One request line (a JSON object). */
static void stream_line(struct xds_stream *st, const char *line, size_t len)
{
    struct xds_server *srv = st->c->srv;
    cJSON *o = cJSON_ParseWithLength(line, len);
    const cJSON *tu, *node, *nonce, *ed, *sub, *unsub, *iv, *it;
    const char **subs = NULL, **unsubs = NULL, **in_n = NULL, **in_v = NULL;
    struct delta_req q = {0};
    enum delta_ack ack;
    char err[256];
    int k = -1, idx = -1;

    if (!cJSON_IsObject(o)) {
        stream_fail(st, o ? "a request line is not a JSON object" : "a request line is not JSON");
        goto out;
    }
    if ((node = cJSON_GetObjectItemCaseSensitive(o, "node")) && !st->node_id) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(node, "id");
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(node, "metadata");
        const cJSON *pod = cJSON_GetObjectItemCaseSensitive(md, "pod");
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(md, "namespace");
        st->node_id = strdup(cJSON_IsString(id) ? id->valuestring : "");
        st->pod = strdup(cJSON_IsString(pod) ? pod->valuestring : "");
        st->ns = strdup(cJSON_IsString(ns) ? ns->valuestring : "");
        st->pod_ip = node_pod_ip(st->node_id, cJSON_GetObjectItemCaseSensitive(md, "pod_ip"));
        log_info("conn %llu: xDS stream %d is %s (pod %s, namespace %s)",
                 (unsigned long long)st->c->id, st->id, st->node_id ? st->node_id : "",
                 st->pod ? st->pod : "", st->ns ? st->ns : "");
    }
    tu = cJSON_GetObjectItemCaseSensitive(o, "type_url");
    if (!cJSON_IsString(tu)) {
        stream_fail(st, "type_url: want a string");
        goto out;
    }
    for (int i = 0; i < STORE_TYPE_COUNT; i++)
        if (!strcmp(kind_type_url(i), tu->valuestring))
            idx = i, k = (int)store_push_order[i];
    if (k < 0) {
        snprintf(err, sizeof(err), "type_url \"%.100s\": not a type this server serves",
                 tu->valuestring);
        stream_fail(st, err);
        goto out;
    }
    sub = cJSON_GetObjectItemCaseSensitive(o, "resource_names_subscribe");
    unsub = cJSON_GetObjectItemCaseSensitive(o, "resource_names_unsubscribe");
    iv = cJSON_GetObjectItemCaseSensitive(o, "initial_resource_versions");
    subs = calloc((size_t)cJSON_GetArraySize(sub) + 1, sizeof(char *));
    unsubs = calloc((size_t)cJSON_GetArraySize(unsub) + 1, sizeof(char *));
    in_n = calloc((size_t)cJSON_GetArraySize(iv) + 1, sizeof(char *));
    in_v = calloc((size_t)cJSON_GetArraySize(iv) + 1, sizeof(char *));
    if (!subs || !unsubs || !in_n || !in_v) {
        stream_fail(st, "out of memory");
        goto out;
    }
    cJSON_ArrayForEach(it, sub) if (cJSON_IsString(it)) subs[q.n_subscribe++] = it->valuestring;
    cJSON_ArrayForEach(it, unsub) if (cJSON_IsString(it)) unsubs[q.n_unsubscribe++] =
        it->valuestring;
    cJSON_ArrayForEach(it, iv) if (cJSON_IsString(it) && it->string)
    {
        in_n[q.n_initial] = it->string;
        in_v[q.n_initial++] = it->valuestring;
    }
    q.subscribe = subs;
    q.unsubscribe = unsubs;
    q.initial_names = in_n;
    q.initial_versions = in_v;
    if ((nonce = cJSON_GetObjectItemCaseSensitive(o, "response_nonce")) &&
        cJSON_IsString(nonce)) {
        char *end;
        q.has_nonce = true;
        q.nonce = strtoull(nonce->valuestring, &end, 10);
        if (*end || !*nonce->valuestring)
            q.nonce = 0; /* not one of ours: stale */
    }
    if ((ed = cJSON_GetObjectItemCaseSensitive(o, "error_detail"))) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(ed, "message");
        q.error = cJSON_IsString(m) ? m->valuestring : "(no message)";
    }
    if (delta_request(&st->types[idx], &q, (int64_t)time(NULL), &ack, err, sizeof(err))) {
        stream_fail(st, err);
        goto out;
    }
    if (ack == DELTA_ACK)
        srv->m.acks[k]++;
    if (ack == DELTA_NACK) {
        srv->m.nacks[k]++;
        log_warn("conn %llu: %s NACKed %s nonce %s: %s", (unsigned long long)st->c->id,
                 st->node_id ? st->node_id : "?", tu->valuestring, nonce->valuestring, q.error);
    }
    if (ack == DELTA_STALE)
        log_debug("conn %llu: stale nonce %s for %s", (unsigned long long)st->c->id,
                  nonce->valuestring, tu->valuestring);
    st->want_since_ms = loop_now_ms(srv->loop);
out:
    free(subs);
    free(unsubs);
    free(in_n);
    free(in_v);
    cJSON_Delete(o);
}

/* Parses the complete lines buffered in st->in. */
static void stream_lines(struct xds_stream *st)
{
    size_t off = 0;
    while (st->kind == XS_XDS && off < st->in_len) {
        char *nl = memchr(st->in + off, '\n', st->in_len - off);
        if (!nl)
            break;
        size_t len = (size_t)(nl - (st->in + off));
        if (len)
            stream_line(st, st->in + off, len);
        off += len + 1;
    }
    memmove(st->in, st->in + off, st->in_len - off);
    st->in_len -= off;
    if (st->kind == XS_XDS && st->in_len > XDS_LINE_MAX)
        stream_fail(st, "a request line is over 64 MiB");
}

static void sign_done(struct xds_stream *st)
{
    struct xds_conn *c = st->c;
    int status = 500;
    char *body = xds_server_ca_sign(c->srv, st->in ? st->in : "", st->in_len,
                             c->peer_id[0] ? c->peer_id : NULL, st->authorization, &status);
    size_t len = body ? strlen(body) : 0;
    respond(st, status, "application/json", body, len, true);
}

/* ---- nghttp2 callbacks ------------------------------------------------------------------ */

static int on_begin_headers(nghttp2_session *h, const nghttp2_frame *f, void *ud)
{
    struct xds_conn *c = ud;
    struct xds_stream *st;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (!(st = calloc(1, sizeof(*st))))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->c = c;
    st->id = f->hd.stream_id;
    st->cnext = c->streams;
    c->streams = st;
    for (int i = 0; i < STORE_TYPE_COUNT; i++)
        delta_type_init(&st->types[i], store_push_order[i]);
    nghttp2_session_set_stream_user_data(h, st->id, st);
    return 0;
}

static int on_header(nghttp2_session *h, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud)
{
    struct xds_stream *st = nghttp2_session_get_stream_user_data(h, f->hd.stream_id);
    (void)flags;
    (void)ud;
    if (!st || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (namelen == 7 && !memcmp(name, ":method", 7))
        snprintf(st->method, sizeof(st->method), "%.*s", (int)valuelen, value);
    else if (namelen == 5 && !memcmp(name, ":path", 5))
        snprintf(st->path, sizeof(st->path), "%.*s", (int)valuelen, value);
    else if (namelen == 13 && !memcmp(name, "authorization", 13) && !st->authorization)
        st->authorization = strndup((const char *)value, valuelen);
    return 0;
}

static int on_frame_recv(nghttp2_session *h, const nghttp2_frame *f, void *ud)
{
    struct xds_conn *c = ud;
    struct xds_server *srv = c->srv;
    struct xds_stream *st = nghttp2_session_get_stream_user_data(h, f->hd.stream_id);
    (void)h;
    if (!st)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        bool post = !strcmp(st->method, "POST");
        if (post && !strcmp(st->path, XDS_PATH_STREAM)) {
            st->kind = XS_XDS;
            st->connected_at = time(NULL);
            st->in_server = true;
            st->snext = srv->streams;
            if (srv->streams)
                srv->streams->sprev = st;
            srv->streams = st;
            srv->n_streams++;
            srv->m.streams_total++;
            respond(st, 200, "application/x-ndjson", NULL, 0, false);
        } else if (post && !strcmp(st->path, XDS_PATH_SIGN)) {
            st->kind = XS_SIGN;
        } else {
            size_t len = 0;
            char msg[256], *body;
            snprintf(msg, sizeof(msg), "%s %s: no such method here (want POST %s or %s)",
                     st->method, st->path, XDS_PATH_STREAM, XDS_PATH_SIGN);
            body = json_error(msg, &len);
            st->kind = XS_REFUSED;
            respond(st, 404, "application/json", body, body ? len : 0, true);
        }
    }
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        if (st->kind == XS_SIGN && !st->responded)
            sign_done(st);
        else if (st->kind == XS_XDS && !st->responded)
            respond(st, 200, "application/x-ndjson", NULL, 0, true);
        else if (st->kind == XS_XDS) /* the client ended its side: so do we */
            stream_put(st, NULL, 0, true), st->kind = XS_REFUSED;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *h, uint8_t flags, int32_t sid, const uint8_t *data,
                         size_t len, void *ud)
{
    struct xds_stream *st = nghttp2_session_get_stream_user_data(h, sid);
    size_t max = st && st->kind == XS_SIGN ? XDS_SIGN_MAX : XDS_LINE_MAX + 1;
    (void)flags;
    (void)ud;
    if (!st || (st->kind != XS_XDS && st->kind != XS_SIGN))
        return 0;
    if (st->in_len + len > max) {
        if (st->kind == XS_SIGN) {
            nghttp2_submit_rst_stream(h, NGHTTP2_FLAG_NONE, sid, NGHTTP2_REFUSED_STREAM);
            st->kind = XS_REFUSED;
        } else {
            stream_fail(st, "a request line is over 64 MiB");
        }
        return 0;
    }
    if (st->in_len + len + 1 > st->in_cap) {
        size_t nc = st->in_cap ? st->in_cap : 4096;
        while (nc < st->in_len + len + 1)
            nc *= 2;
        char *p = realloc(st->in, nc);
        if (!p)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        st->in = p;
        st->in_cap = nc;
    }
    memcpy(st->in + st->in_len, data, len);
    st->in_len += len;
    st->in[st->in_len] = 0;
    if (st->kind == XS_XDS)
        stream_lines(st);
    return 0;
}

static int on_stream_close(nghttp2_session *h, int32_t sid, uint32_t code, void *ud)
{
    struct xds_stream *st = nghttp2_session_get_stream_user_data(h, sid);
    (void)code;
    (void)ud;
    if (st) {
        nghttp2_session_set_stream_user_data(h, sid, NULL);
        stream_free(st);
    }
    return 0;
}

/* ---- TLS over the sock's buffers ------------------------------------------------------ */

static int tls_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct xds_conn *c = ctx;
    size_t have = sock_in_len(&c->sock);
    (void)ssl;
    if (!have)
        return c->sock.eof_in ? WOLFSSL_CBIO_ERR_CONN_CLOSE : WOLFSSL_CBIO_ERR_WANT_READ;
    if ((size_t)sz > have)
        sz = (int)have;
    memcpy(buf, sock_in(&c->sock), (size_t)sz);
    sock_consume(&c->sock, (size_t)sz);
    return sz;
}

static int tls_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct xds_conn *c = ctx;
    (void)ssl;
    return sock_write(&c->sock, buf, (size_t)sz) ? WOLFSSL_CBIO_ERR_GENERAL : sz;
}

/* Drives the handshake; true once it is done (false: wait, or the conn is closing). */
static bool tls_handshake(struct xds_conn *c)
{
    char err[256];
    if (c->tls_up)
        return true;
    if (wolfSSL_accept(c->ssl) != WOLFSSL_SUCCESS) {
        int e = wolfSSL_get_error(c->ssl, 0);
        if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
            return false;
        c->srv->m.tls_handshake_failures++;
        snprintf(err, sizeof(err), "TLS handshake failed: %s (%d)",
                 wolfSSL_ERR_reason_error_string((unsigned long)e), e);
        conn_close(c, err);
        return false;
    }
    c->tls_up = true;
    WOLFSSL_X509 *peer = wolfSSL_get_peer_certificate(c->ssl);
    if (peer) {
        /* wolfSSL verified the chain to our root (WOLFSSL_VERIFY_PEER); the SVID rules and
         * the trust domain are ours to check */
        if (ca_svid_id_x509(peer, c->peer_id, sizeof(c->peer_id), err, sizeof(err)) == 0 &&
            c->srv->ca) {
            const char *td = ca_root_trust_domain(c->srv->ca);
            size_t tl = strlen(td);
            if (strncmp(c->peer_id + 9, td, tl) || c->peer_id[9 + tl] != '/')
                c->peer_id[0] = 0;
        } else {
            c->peer_id[0] = 0;
        }
        wolfSSL_X509_free(peer);
    }
    log_info("conn %llu: TLS 1.3 up%s%s", (unsigned long long)c->id,
             c->peer_id[0] ? ", client " : ", no client certificate", c->peer_id);
    return true;
}

/* ---- the connection ------------------------------------------------------------------- */

/* Reads what arrived into nghttp2, then writes what nghttp2 has while the socket is not
 * backed up, building responses as stream buffers free up. */
static void conn_io(struct xds_conn *c)
{
    char buf[16384];
    if (c->closing || c->in_io)
        return;
    c->in_io = true;
    /* input */
    if (c->ssl) {
        if (tls_handshake(c)) {
            for (;;) {
                int n = wolfSSL_read(c->ssl, buf, sizeof(buf));
                if (n <= 0) {
                    int e = wolfSSL_get_error(c->ssl, n);
                    if (e != WOLFSSL_ERROR_WANT_READ && e != WOLFSSL_ERROR_WANT_WRITE) {
                        c->in_io = false;
                        conn_close(c, e == WOLFSSL_ERROR_ZERO_RETURN ? "peer closed TLS"
                                                                     : "TLS read failed");
                        return;
                    }
                    break;
                }
                if (nghttp2_session_mem_recv(c->h2, (uint8_t *)buf, (size_t)n) < 0) {
                    c->in_io = false;
                    conn_close(c, "HTTP/2 protocol error");
                    return;
                }
            }
        }
        if (c->closing) {
            c->in_io = false;
            return;
        }
    } else if (sock_in_len(&c->sock)) {
        ssize_t n = nghttp2_session_mem_recv(c->h2, (const uint8_t *)sock_in(&c->sock),
                                             sock_in_len(&c->sock));
        if (n < 0) {
            c->in_io = false;
            conn_close(c, nghttp2_strerror((int)n));
            return;
        }
        sock_consume(&c->sock, (size_t)n);
    }
    /* output: with TLS, nothing of HTTP/2 before the handshake is done */
    while (!c->closing && (!c->ssl || c->tls_up) && sock_queued(&c->sock) < XDS_SOCK_HIGH) {
        for (struct xds_stream *st = c->streams; st; st = st->cnext)
            stream_pump(st);
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->h2, &data);
        if (n < 0) {
            c->in_io = false;
            conn_close(c, nghttp2_strerror((int)n));
            return;
        }
        if (n == 0)
            break;
        int rc = c->ssl ? (wolfSSL_write(c->ssl, data, (int)n) == n ? 0 : -EIO)
                                     : sock_write(&c->sock, data, (size_t)n);
        if (rc) {
            c->in_io = false;
            conn_close(c, "write failed");
            return;
        }
    }
    c->in_io = false;
    if (!c->closing && (c->sock.eof_in || c->sock.err))
        conn_close(c, c->sock.err ? strerror(-c->sock.err) : "peer closed");
    else if (!c->closing && !nghttp2_session_want_read(c->h2) &&
             !nghttp2_session_want_write(c->h2) && sock_queued(&c->sock) == 0)
        conn_close(c, "HTTP/2 session done");
}

static void on_readable(struct sock *s)
{
    conn_io(s->owner);
}

static void on_writable(struct sock *s)
{
    conn_io(s->owner);
}

static void on_connected(struct sock *s, int res)
{
    (void)s;
    (void)res;
}

static void on_closed(struct sock *s)
{
    struct xds_conn *c = s->owner;
    struct xds_server *srv = c->srv;
    while (c->streams) /* nghttp2_session_del does not call on_stream_close */
        stream_free(c->streams);
    nghttp2_session_del(c->h2);
    if (c->ssl)
        wolfSSL_free(c->ssl);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static const struct sock_ops conn_ops = {on_readable, on_writable, on_connected, on_closed};

static void conn_close(struct xds_conn *c, const char *why)
{
    if (c->closing)
        return;
    c->closing = true;
    log_info("conn %llu: closed: %s", (unsigned long long)c->id, why);
    while (c->streams)
        stream_free(c->streams);
    sock_close(&c->sock, false);
}

int xds_h2_accept(struct xds_server *srv, int fd, bool tls)
{
    nghttp2_session_callbacks *cb;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
    };
    struct xds_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->srv = srv;
    c->id = ++srv->next_conn_id;
    if (nghttp2_session_callbacks_new(&cb)) {
        free(c);
        close(fd);
        return -ENOMEM;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    int rc = nghttp2_session_server_new(&c->h2, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rc) {
        free(c);
        close(fd);
        return -ENOMEM;
    }
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2);
    if (tls) {
        static char alpn[] = "h2";
        if (!(c->ssl = wolfSSL_new(srv->tls_ctx))) {
            nghttp2_session_del(c->h2);
            free(c);
            close(fd);
            return -ENOMEM;
        }
        wolfSSL_SetIOReadCtx(c->ssl, c);
        wolfSSL_SetIOWriteCtx(c->ssl, c);
        wolfSSL_UseALPN(c->ssl, alpn, 2, WOLFSSL_ALPN_FAILED_ON_MISMATCH);
    }
    sock_init(&c->sock, srv->loop, fd, &conn_ops, c);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    log_debug("conn %llu: accepted on the %s port", (unsigned long long)c->id,
              tls ? "TLS" : "plaintext");
    sock_read_start(&c->sock);
    conn_io(c); /* our SETTINGS go first (h2c prior knowledge) */
    return 0;
}

void xds_server_changed(struct xds_server *srv)
{
    srv->changed_at_ms = loop_now_ms(srv->loop);
    for (struct xds_conn *c = srv->conns; c; c = c->next)
        conn_io(c);
}

void xds_h2_close_all(struct xds_server *srv)
{
    for (struct xds_conn *c = srv->conns; c; c = c->next)
        conn_close(c, "shutting down");
}

/* ---- wolfSSL context ------------------------------------------------------------------ */

void *xds_tls_ctx_new(const char *cert_pem, const char *key_pem, const char *roots_pem,
                      char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());
    if (!ctx) {
        snprintf(err, errlen, "wolfSSL_CTX_new failed");
        return NULL;
    }
    if (wolfSSL_CTX_use_certificate_chain_buffer(ctx, (const unsigned char *)cert_pem,
                                                 (long)strlen(cert_pem)) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "the server certificate chain does not load");
        goto fail;
    }
    if (wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)key_pem,
                                          (long)strlen(key_pem),
                                          WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "the server key does not load");
        goto fail;
    }
    if (roots_pem) {
        if (wolfSSL_CTX_load_verify_buffer(ctx, (const unsigned char *)roots_pem,
                                           (long)strlen(roots_pem),
                                           WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
            snprintf(err, errlen, "the root bundle does not load");
            goto fail;
        }
        /* a client certificate is optional (a bootstrapping sidecar has none), verified when
         * presented */
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
    } else {
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    }
    wolfSSL_SetIORecv(ctx, tls_recv);
    wolfSSL_SetIOSend(ctx, tls_send);
    return ctx;
fail:
    wolfSSL_CTX_free(ctx);
    return NULL;
}

void xds_tls_ctx_free(void *ctx)
{
    if (ctx)
        wolfSSL_CTX_free(ctx);
}

/* ---- proxy-status and metrics --------------------------------------------------------- */

static void rfc3339(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

char *xds_proxy_status_json(struct xds_server *srv)
{
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "proxies");
    char tbuf[32], num[32];
    for (struct xds_stream *st = srv->streams; st; st = st->snext) {
        cJSON *p = cJSON_CreateObject(), *types;
        cJSON_AddStringToObject(p, "node_id", st->node_id ? st->node_id : "");
        cJSON_AddStringToObject(p, "pod", st->pod ? st->pod : "");
        cJSON_AddStringToObject(p, "namespace", st->ns ? st->ns : "");
        cJSON_AddStringToObject(p, "pod_ip", st->pod_ip ? st->pod_ip : "");
        rfc3339(st->connected_at, tbuf, sizeof(tbuf));
        cJSON_AddStringToObject(p, "connected_at", tbuf);
        cJSON_AddStringToObject(p, "identity", st->c->peer_id);
        types = cJSON_AddObjectToObject(p, "types");
        for (int i = 0; i < STORE_TYPE_COUNT; i++) {
            const struct delta_type *t = &st->types[i];
            cJSON *to;
            if (!t->subscribed)
                continue;
            to = cJSON_AddObjectToObject(types, kind_type_url(i));
            snprintf(num, sizeof(num), "%llu", (unsigned long long)t->acked_sysver);
            cJSON_AddStringToObject(to, "acked_version", t->acks ? num : "");
            snprintf(num, sizeof(num), "%llu", (unsigned long long)t->pending_nonce);
            cJSON_AddStringToObject(to, "pending_nonce", t->pending_nonce ? num : "");
            if (t->last_nack.nonce) {
                cJSON *n = cJSON_AddObjectToObject(to, "last_nack");
                snprintf(num, sizeof(num), "%llu", (unsigned long long)t->last_nack.nonce);
                cJSON_AddStringToObject(n, "nonce", num);
                cJSON_AddStringToObject(n, "message", t->last_nack.message ? t->last_nack.message
                                                                           : "");
                rfc3339((time_t)t->last_nack.at_s, tbuf, sizeof(tbuf));
                cJSON_AddStringToObject(n, "at", tbuf);
            } else {
                cJSON_AddNullToObject(to, "last_nack");
            }
        }
        cJSON_AddItemToArray(arr, p);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

const double xds_push_bucket_s[XDS_PUSH_BUCKETS] = {0.001, 0.005, 0.01, 0.05,
                                                    0.1,   0.5,   1,    5};

void xds_metrics_push(struct xds_server *srv, enum model_kind k, double s)
{
    srv->m.pushes[k]++;
    srv->m.push_count++;
    srv->m.push_sum_s += s;
    for (int i = 0; i < XDS_PUSH_BUCKETS; i++)
        if (s <= xds_push_bucket_s[i]) {
            srv->m.push_hist[i]++;
            break;
        }
}
