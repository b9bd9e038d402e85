/*
 * stream_test.c - sidecar/stream.c: HTTP/1.1 -> model -> HTTP/2 (through a real h2_conn
 * client/server pair in memory) -> model -> HTTP/1.1, parsed back with h1; responses with
 * each framing, gRPC trailers to chunked trailers and back, cookie crumbs, limits, local
 * replies with their gRPC mapping, traceparent and x-request-id.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "h1.h"
#include "h2.h"
#include "stream.h"
#include "tap.h"

/* ---- an h2 client/server pair whose callbacks convert into models ---- */

struct side {
    struct h2_conn *c;
    struct stream_head head, trailers;
    int head_rc, trailers_rc;
    bool got_head, got_trailers, ended;
    bool head_end; /* end_stream on the header block */
    char body[256];
    size_t body_len;
};

static void *cb_open(struct h2_conn *c, int32_t id, void *u)
{
    return u;
}

static void cb_headers(struct h2_conn *c, int32_t id, const struct h2_head *h, bool end, void *u)
{
    struct side *sd = u;
    sd->got_head = true;
    sd->head_end = end;
    sd->head_rc = h->status ? stream_from_h2_response(&sd->head, h, end)
                            : stream_from_h2_request(&sd->head, h, end);
}

static void cb_data(struct h2_conn *c, int32_t id, const uint8_t *d, size_t len, void *u)
{
    struct side *sd = u;
    if (sd->body_len + len <= sizeof(sd->body)) {
        memcpy(sd->body + sd->body_len, d, len);
        sd->body_len += len;
    }
    h2_stream_consumed(c, id, len);
}

static void cb_trailers(struct h2_conn *c, int32_t id, const struct h2_header *t, size_t n, void *u)
{
    struct side *sd = u;
    sd->got_trailers = true;
    sd->trailers_rc = stream_trailers_from_h2(&sd->trailers, t, n);
}

static void cb_end(struct h2_conn *c, int32_t id, void *u)
{
    ((struct side *)u)->ended = true;
}

static const struct h2_callbacks cbs = {
    .stream_open = cb_open,
    .headers = cb_headers,
    .data = cb_data,
    .trailers = cb_trailers,
    .end_stream = cb_end,
};

static long move(struct h2_conn *from, struct h2_conn *to)
{
    static uint8_t buf[16384];
    long total = 0;
    for (;;) {
        ssize_t n = h2_conn_send_pending(from, buf, sizeof(buf));
        if (n <= 0)
            return n < 0 ? -1 : total;
        if (h2_conn_recv(to, buf, (size_t)n, 1000) < 0)
            return -1;
        total += n;
    }
}

static int shuttle(struct side *a, struct side *b)
{
    for (int i = 0; i < 1000; i++) {
        long x = move(a->c, b->c), y = move(b->c, a->c);
        if (x < 0 || y < 0)
            return -1;
        if (x == 0 && y == 0)
            return 0;
    }
    return -2;
}

static void pair(struct side *cl, struct side *sv)
{
    char err[128];
    memset(cl, 0, sizeof(*cl));
    memset(sv, 0, sizeof(*sv));
    cl->c = h2_conn_new(H2_CLIENT, NULL, &cbs, cl, err, sizeof(err));
    sv->c = h2_conn_new(H2_SERVER, NULL, &cbs, sv, err, sizeof(err));
    stream_head_init(&cl->head, STREAM_RESPONSE, NULL);
    stream_head_init(&cl->trailers, STREAM_TRAILERS, NULL);
    stream_head_init(&sv->head, STREAM_REQUEST, NULL);
    stream_head_init(&sv->trailers, STREAM_TRAILERS, NULL);
}

static void unpair(struct side *cl, struct side *sv)
{
    h2_conn_free(cl->c);
    h2_conn_free(sv->c);
    stream_head_free(&cl->head);
    stream_head_free(&cl->trailers);
    stream_head_free(&sv->head);
    stream_head_free(&sv->trailers);
}

/* ---- helpers ---- */

static struct h1_header hv[128];

static ssize_t parse_req(const char *s, struct h1_request *req)
{
    struct h1_parser p;
    h1_parser_init(&p, NULL);
    memset(req, 0, sizeof(*req));
    req->msg.headers = hv;
    req->msg.headers_cap = 128;
    return h1_parse_request(&p, s, strlen(s), req);
}

static ssize_t parse_resp(const char *s, size_t len, enum h1_method m, struct h1_response *resp)
{
    struct h1_parser p;
    h1_parser_init(&p, NULL);
    memset(resp, 0, sizeof(*resp));
    resp->msg.headers = hv;
    resp->msg.headers_cap = 128;
    return h1_parse_response(&p, s, len, m, resp);
}

static bool h1_has(const struct h1_message *m, const char *name, const char *value)
{
    const struct h1_header *f = h1_find_header(m, name, strlen(name));
    return f &&
           (!value || (f->value_len == strlen(value) && !memcmp(f->value, value, f->value_len)));
}

static bool field_is(const struct stream_head *h, const char *name, const char *value)
{
    const struct router_header *f = stream_head_get(h, name);
    return f &&
           (!value || (f->value_len == strlen(value) && !memcmp(f->value, value, f->value_len)));
}

static char *dupn(const char *s, size_t n)
{
    static char buf[4][512];
    static int k;
    char *b = buf[k++ & 3];
    if (n >= 512)
        n = 511;
    memcpy(b, s ? s : "", s ? n : 0);
    b[s ? n : 0] = 0;
    return b;
}

/* ---- tests ---- */

static void test_request_round_trip(void)
{
    static const char raw[] = "POST /api/v1?x=1 HTTP/1.1\r\n"
                              "Host: reviews.default:9080\r\n"
                              "User-Agent: curl/7.88\r\n"
                              "Connection: keep-alive, X-Secret\r\n"
                              "Keep-Alive: timeout=5\r\n"
                              "Proxy-Connection: close\r\n"
                              "X-Secret: hop\r\n"
                              "TE: trailers, deflate\r\n"
                              "Expect: 100-continue\r\n"
                              "Content-Length: 5\r\n"
                              "X-Multi: a\r\n"
                              "x-multi: b\r\n"
                              "Cookie: a=1; b=2\r\n"
                              "\r\n";
    struct h1_request req;
    ok(parse_req(raw, &req) > 0, "h1 parses the request");

    struct stream_head m;
    stream_head_init(&m, STREAM_REQUEST, NULL);
    is_int(stream_from_h1_request(&m, &req, NULL, 0), 0, "h1 request -> model");
    is_str(m.method, "POST", "method");
    is_str(m.path, "/api/v1?x=1", "path");
    is_str(m.authority, "reviews.default:9080", "authority from Host");
    is_str(m.scheme, "http", "scheme http");
    ok(m.flags & STREAM_F_EXPECT_CONTINUE, "Expect: 100-continue noted");
    ok(m.flags & STREAM_F_TE_TRAILERS, "TE: trailers noted");
    ok((m.flags & STREAM_F_HAS_CL) && m.content_length == 5, "content-length kept as hint");
    ok(!stream_head_get(&m, "connection") && !stream_head_get(&m, "keep-alive") &&
           !stream_head_get(&m, "proxy-connection") && !stream_head_get(&m, "x-secret") &&
           !stream_head_get(&m, "te") && !stream_head_get(&m, "expect") &&
           !stream_head_get(&m, "host") && !stream_head_get(&m, "content-length"),
       "hop-by-hop, Connection-named, Host, Expect and CL not in the list");
    is_int(m.fields.n, 4, "user-agent, x-multi x2, cookie remain");
    is_str(m.fields.v[0].name, "user-agent", "names lower-cased");

    /* The router sees the list without a copy, and edits it in place. */
    struct router_request rr;
    stream_router_request(&m, "default", &rr);
    ok(rr.headers == m.fields.v && rr.n_headers == 4 && rr.path == m.path, "router view, no copy");
    is_int(router_headers_set(&m.fields, "X-Added", 7, "yes", 3), 0, "router modifier set");

    /* Through a real HTTP/2 connection. */
    struct side cl, sv;
    pair(&cl, &sv);
    struct h2_head out;
    is_int(stream_to_h2(&m, &out), 0, "model -> h2 pairs");
    bool te = false, upper = false;
    for (size_t i = 0; i < out.num_headers; i++) {
        te |= out.headers[i].name_len == 2 && !memcmp(out.headers[i].name, "te", 2);
        for (size_t j = 0; j < out.headers[i].name_len; j++)
            upper |= out.headers[i].name[j] >= 'A' && out.headers[i].name[j] <= 'Z';
    }
    ok(te && !upper, "te: trailers added, every name lower-case");
    int32_t id = h2_submit_request(cl.c, &out, true, &cl);
    ok(id > 0, "h2_submit_request accepts the pairs");
    h2_submit_data(cl.c, id, "hello", 5, true);
    is_int(shuttle(&cl, &sv), 0, "shuttled");
    ok(sv.got_head && sv.head_rc == 0, "server side: h2 -> model");
    struct stream_head *m2 = &sv.head;
    is_str(m2->method, "POST", "h2 method");
    is_str(m2->path, "/api/v1?x=1", "h2 path");
    is_str(m2->authority, "reviews.default:9080", "h2 authority");
    ok((m2->flags & STREAM_F_HAS_CL) && m2->content_length == 5, "h2 content-length hint");
    ok(m2->flags & STREAM_F_TE_TRAILERS, "h2 te: trailers");
    ok(field_is(m2, "x-added", "yes"), "modifier's field crossed, lower-cased");
    is_int(sv.body_len, 5, "body crossed");

    /* Model -> HTTP/1.1 -> h1 parser. */
    char buf[2048];
    enum stream_framing fr = stream_h1_framing(m2, NULL, 0, 1);
    is_int(fr, STREAM_FRAME_LENGTH, "framing: content-length");
    ssize_t n = stream_write_h1_request(m2, fr, buf, sizeof(buf) - 1);
    ok(n > 0, "model -> h1 head");
    buf[n > 0 ? n : 0] = 0;
    struct h1_request r2;
    ok(parse_req(buf, &r2) == n, "h1 parses what we wrote");
    is_str(dupn(r2.method, r2.method_len), "POST", "h1 method");
    is_str(dupn(r2.path, r2.path_len), "/api/v1?x=1", "h1 path");
    is_str(dupn(r2.host, r2.host_len), "reviews.default:9080", "h1 Host");
    ok(r2.msg.body == H1_BODY_LENGTH && r2.msg.content_length == 5, "h1 Content-Length: 5");
    ok(h1_has(&r2.msg, "user-agent", "curl/7.88") && h1_has(&r2.msg, "cookie", "a=1; b=2") &&
           h1_has(&r2.msg, "x-added", "yes"),
       "fields kept");
    size_t multi = 0;
    for (size_t i = 0; i < r2.msg.num_headers; i++)
        multi += r2.msg.headers[i].name_len == 7 && !strncmp(r2.msg.headers[i].name, "x-multi", 7);
    is_int(multi, 2, "repeated fields stay repeated, in order");
    ok(!h1_has(&r2.msg, "x-secret", NULL) && !h1_has(&r2.msg, "keep-alive", NULL) &&
           !h1_has(&r2.msg, "proxy-connection", NULL) && !h1_has(&r2.msg, "expect", NULL),
       "no hop-by-hop fields in the output");
    unpair(&cl, &sv);
    stream_head_free(&m);
}

static void test_request_forms(void)
{
    struct stream_head m;
    struct h1_request req;
    stream_head_init(&m, STREAM_REQUEST, NULL);

    ok(parse_req("GET / HTTP/1.0\r\nUser-Agent: x\r\n\r\n", &req) > 0, "HTTP/1.0 without Host");
    is_int(stream_from_h1_request(&m, &req, NULL, 0), -STREAM_E_NO_AUTHORITY,
           "no Host, no original destination: error");
    is_int(stream_error_status(-STREAM_E_NO_AUTHORITY), 400, "...answered 400");
    is_int(stream_from_h1_request(&m, &req, "10.1.2.3:8080", 13), 0, "original destination used");
    is_str(m.authority, "10.1.2.3:8080", "authority from original destination");
    ok(m.flags & STREAM_F_HTTP10, "HTTP/1.0 noted");

    ok(parse_req("GET http://other.ns:81 HTTP/1.1\r\nHost: ignored\r\n\r\n", &req) > 0,
       "absolute-form");
    is_int(stream_from_h1_request(&m, &req, NULL, 0), 0, "absolute-form -> model");
    is_str(m.authority, "other.ns:81", "target authority wins over Host");
    is_str(m.path, "/", "empty path becomes /");

    ok(parse_req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &req) > 0, "asterisk-form");
    is_int(stream_from_h1_request(&m, &req, NULL, 0), 0, "asterisk -> model");
    is_str(m.path, "*", "path *");

    ok(parse_req("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                 &req) > 0,
       "upgrade request");
    is_int(stream_from_h1_request(&m, &req, NULL, 0), 0, "upgrade -> model");
    ok((m.flags & STREAM_F_UPGRADE) && !stream_head_get(&m, "upgrade"), "upgrade flagged, dropped");

    ok(parse_req("GET / HTTP/1.1\r\nHost: a\r\nTE: gzip\r\n\r\n", &req) > 0, "TE without trailers");
    is_int(stream_from_h1_request(&m, &req, NULL, 0), 0, "-> model");
    ok(!(m.flags & STREAM_F_TE_TRAILERS), "TE: gzip is not kept");
    is_int(stream_h1_framing(&m, NULL, 0, 1), STREAM_FRAME_NONE, "GET without body: no framing");

    ok(parse_req("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", &req) > 0,
       "chunked request");
    is_int(stream_from_h1_request(&m, &req, NULL, 0), 0, "-> model");
    ok(!(m.flags & (STREAM_F_HAS_CL | STREAM_F_END_STREAM)) &&
           !stream_head_get(&m, "transfer-encoding"),
       "unknown length, TE dropped");
    is_int(stream_h1_framing(&m, NULL, 0, 1), STREAM_FRAME_CHUNKED, "re-chunked to HTTP/1.1");
    stream_head_free(&m);
}

/* A response on an h2 pair: the server submits pairs built from model src, the client
 * converts what it receives into cl->head. */
static void h2_response(struct side *cl, struct side *sv, struct stream_head *src, const char *body,
                        struct stream_head *trailers)
{
    struct h2_head rq = {.method = "GET",
                         .method_len = 3,
                         .scheme = "http",
                         .scheme_len = 4,
                         .authority = "a",
                         .authority_len = 1,
                         .path = "/",
                         .path_len = 1};
    int32_t id = h2_submit_request(cl->c, &rq, false, cl);
    shuttle(cl, sv);
    struct h2_head out;
    stream_to_h2(src, &out);
    bool has_body = !(src->flags & STREAM_F_END_STREAM);
    h2_submit_response(sv->c, id, out.status, out.headers, out.num_headers, has_body);
    if (has_body) {
        if (trailers) {
            h2_submit_data(sv->c, id, body, strlen(body), false);
            struct h2_head tout;
            stream_to_h2(trailers, &tout);
            h2_submit_trailers(sv->c, id, tout.headers, tout.num_headers);
        } else {
            h2_submit_data(sv->c, id, body, strlen(body), true);
        }
    }
    shuttle(cl, sv);
}

static void test_responses(void)
{
    struct stream_head m;
    struct h1_response resp;
    char buf[2048];
    stream_head_init(&m, STREAM_RESPONSE, NULL);

    static const char r1[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n"
                             "X-App: v1\r\n\r\nabc";
    ok(parse_resp(r1, sizeof(r1) - 1, H1_M_GET, &resp) > 0, "h1 response with length");
    is_int(stream_from_h1_response(&m, &resp), 0, "-> model");
    struct side cl, sv;
    pair(&cl, &sv);
    h2_response(&cl, &sv, &m, "abc", NULL);
    ok(cl.got_head && cl.head_rc == 0 && cl.head.status == 200, "h2 client got 200");
    ok((cl.head.flags & STREAM_F_HAS_CL) && cl.head.content_length == 3, "length crossed h2");
    ok(field_is(&cl.head, "x-app", "v1") && !stream_head_get(&cl.head, "connection"),
       "fields crossed, Connection did not");
    enum stream_framing fr = stream_h1_framing(&cl.head, "GET", 3, 1);
    is_int(fr, STREAM_FRAME_LENGTH, "framing: length");
    ssize_t n = stream_write_h1_response(&cl.head, fr, buf, sizeof(buf));
    ok(n > 0 && parse_resp(buf, (size_t)n, H1_M_GET, &resp) == n, "h1 parses the response");
    ok(resp.msg.body == H1_BODY_LENGTH && resp.msg.content_length == 3 &&
           h1_has(&resp.msg, "x-app", "v1"),
       "Content-Length: 3 and fields");
    unpair(&cl, &sv);

    /* Chunked from HTTP/1.1, unknown length through h2, chunked again; close for 1.0. */
    static const char r2[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    ok(parse_resp(r2, sizeof(r2) - 1, H1_M_GET, &resp) > 0, "chunked response");
    is_int(stream_from_h1_response(&m, &resp), 0, "-> model");
    pair(&cl, &sv);
    h2_response(&cl, &sv, &m, "hello", NULL);
    ok(cl.got_head && !(cl.head.flags & STREAM_F_HAS_CL) && cl.body_len == 5,
       "h2: no length, body crossed");
    fr = stream_h1_framing(&cl.head, "GET", 3, 1);
    is_int(fr, STREAM_FRAME_CHUNKED, "HTTP/1.1 client: chunked");
    n = stream_write_h1_response(&cl.head, fr, buf, sizeof(buf));
    ok(n > 0 && parse_resp(buf, (size_t)n, H1_M_GET, &resp) == n &&
           resp.msg.body == H1_BODY_CHUNKED,
       "h1 sees chunked");
    fr = stream_h1_framing(&cl.head, "GET", 3, 0);
    is_int(fr, STREAM_FRAME_CLOSE, "HTTP/1.0 client: close-delimited");
    n = stream_write_h1_response(&cl.head, fr, buf, sizeof(buf));
    ok(n > 0 && parse_resp(buf, (size_t)n, H1_M_GET, &resp) == n &&
           resp.msg.body == H1_BODY_CLOSE && (resp.msg.flags & H1_F_CONN_CLOSE),
       "h1 sees close-delimited with Connection: close");
    ok(!stream_h1_can_carry_trailers(fr) && stream_h1_can_carry_trailers(STREAM_FRAME_CHUNKED),
       "trailers only over chunked");
    unpair(&cl, &sv);

    /* No body: 204, 304, HEAD. */
    static const char r3[] =
        "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n";
    ok(parse_resp(r3, sizeof(r3) - 1, H1_M_GET, &resp) > 0, "304");
    is_int(stream_from_h1_response(&m, &resp), 0, "-> model");
    ok((m.flags & STREAM_F_END_STREAM) && (m.flags & STREAM_F_HAS_CL) && m.content_length == 10,
       "304 ends the stream, keeps its length");
    pair(&cl, &sv);
    h2_response(&cl, &sv, &m, "", NULL);
    ok(cl.got_head && cl.head_end && cl.head.status == 304, "h2 304 with END_STREAM");
    fr = stream_h1_framing(&cl.head, "GET", 3, 1);
    is_int(fr, STREAM_FRAME_NONE, "304: no framing");
    n = stream_write_h1_response(&cl.head, fr, buf, sizeof(buf));
    ok(n > 0 && parse_resp(buf, (size_t)n, H1_M_GET, &resp) == n && resp.msg.body == H1_BODY_NONE &&
           h1_has(&resp.msg, "etag", "\"x\""),
       "h1 304 without body");
    unpair(&cl, &sv);

    static const char r4[] = "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n";
    ok(parse_resp(r4, sizeof(r4) - 1, H1_M_HEAD, &resp) > 0, "response to HEAD");
    is_int(stream_from_h1_response(&m, &resp), 0, "-> model");
    ok((m.flags & STREAM_F_END_STREAM) && m.content_length == 42, "HEAD: no body, length 42");
    fr = stream_h1_framing(&m, "HEAD", 4, 1);
    is_int(fr, STREAM_FRAME_NONE, "HEAD: no framing");
    n = stream_write_h1_response(&m, fr, buf, sizeof(buf));
    ok(n > 0 && parse_resp(buf, (size_t)n, H1_M_HEAD, &resp) == n &&
           h1_has(&resp.msg, "content-length", "42"),
       "HEAD response keeps Content-Length: 42");

    static const char r5[] = "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n";
    ok(parse_resp(r5, sizeof(r5) - 1, H1_M_GET, &resp) > 0, "204");
    is_int(stream_from_h1_response(&m, &resp), 0, "-> model");
    is_int(stream_h1_framing(&m, "GET", 3, 1), STREAM_FRAME_NONE, "204: no framing");
    n = stream_write_h1_response(&m, STREAM_FRAME_NONE, buf, sizeof(buf));
    ok(n > 0 && parse_resp(buf, (size_t)n, H1_M_GET, &resp) == n &&
           !h1_has(&resp.msg, "content-length", NULL) &&
           !h1_has(&resp.msg, "transfer-encoding", NULL),
       "204 has neither Content-Length nor Transfer-Encoding");
    stream_head_free(&m);
}

static void test_grpc_trailers(void)
{
    /* gRPC response on h2 with trailers -> model -> HTTP/1.1 chunked with trailers ->
     * h1 decoder -> model -> h2 trailers again. */
    struct stream_head m, t;
    stream_head_init(&m, STREAM_RESPONSE, NULL);
    stream_head_init(&t, STREAM_TRAILERS, NULL);
    m.status = 200;
    stream_head_add(&m, "content-type", 12, "application/grpc", 16);
    stream_head_add(&t, "grpc-status", 11, "14", 2);
    stream_head_add(&t, "grpc-message", 12, "down", 4);
    stream_head_add(&t, "content-length", 14, "9", 1); /* never a trailer */

    struct side cl, sv;
    pair(&cl, &sv);
    h2_response(&cl, &sv, &m, "\0\0\0\0\0", &t);
    ok(cl.got_head && cl.got_trailers && cl.trailers_rc == 0 && cl.ended, "h2 trailers arrived");
    ok(stream_is_grpc(&cl.head), "response is gRPC");
    is_int(stream_grpc_status(&cl.trailers), 14, "grpc-status from trailers");
    ok(!stream_head_get(&cl.trailers, "content-length"), "content-length never a trailer");

    char buf[2048];
    enum stream_framing fr = stream_h1_framing(&cl.head, "POST", 4, 1);
    is_int(fr, STREAM_FRAME_CHUNKED, "gRPC to HTTP/1.1: chunked");
    ssize_t n = stream_write_h1_response(&cl.head, fr, buf, sizeof(buf));
    ok(n > 0, "head written");
    size_t off = (size_t)n;
    n = h1_write_chunk_header(buf + off, sizeof(buf) - off, 5);
    off += (size_t)n;
    memcpy(buf + off, "ABCDE\r\n", 7);
    off += 7;
    n = stream_write_h1_last_chunk(&cl.trailers, buf + off, sizeof(buf) - off);
    ok(n > 0, "last chunk with trailers written");
    off += (size_t)n;

    struct h1_response resp;
    ssize_t hn = parse_resp(buf, off, H1_M_POST, &resp);
    ok(hn > 0 && resp.msg.body == H1_BODY_CHUNKED, "h1 parses a chunked head");
    struct h1_decoder d;
    struct h1_header tv[8];
    h1_decoder_init(&d, resp.msg.body, 0);
    d.trailers = tv;
    d.trailers_cap = 8;
    size_t pos = (size_t)hn, got = 0;
    while (pos < off && !h1_decoder_is_done(&d)) {
        const char *data;
        size_t dl;
        ssize_t k = h1_decoder_feed(&d, buf + pos, off - pos, &data, &dl);
        if (k <= 0)
            break;
        pos += (size_t)k;
        got += dl;
    }
    ok(h1_decoder_is_done(&d) && got == 5, "body decoded");
    is_int(d.num_trailers, 2, "two trailers");
    struct stream_head t2;
    stream_head_init(&t2, STREAM_TRAILERS, NULL);
    is_int(stream_trailers_from_h1(&t2, tv, d.num_trailers), 0, "h1 trailers -> model");
    is_int(stream_grpc_status(&t2), 14, "grpc-status survived the HTTP/1.1 hop");
    ok(field_is(&t2, "grpc-message", "down"), "grpc-message too");
    struct h2_head th;
    is_int(stream_to_h2(&t2, &th), 0, "trailers -> h2 pairs");
    is_int(th.num_headers, 2, "two trailer pairs");
    unpair(&cl, &sv);
    stream_head_free(&m);
    stream_head_free(&t);
    stream_head_free(&t2);
}

static void test_cookies_and_h2_validation(void)
{
    struct stream_head m;
    stream_head_init(&m, STREAM_REQUEST, NULL);
    struct h2_header hs[] = {{"cookie", 6, "a=1", 3},
                             {"user-agent", 10, "grpc", 4},
                             {"cookie", 6, "b=2", 3},
                             {"cookie", 6, "c=3", 3}};
    struct h2_head hd = {.method = "GET",
                         .method_len = 3,
                         .scheme = "http",
                         .scheme_len = 4,
                         .authority = "svc",
                         .authority_len = 3,
                         .path = "/c",
                         .path_len = 2,
                         .headers = hs,
                         .num_headers = 4};
    is_int(stream_from_h2_request(&m, &hd, true), 0, "h2 request with cookie crumbs");
    char buf[1024];
    ssize_t n =
        stream_write_h1_request(&m, stream_h1_framing(&m, NULL, 0, 1), buf, sizeof(buf) - 1);
    ok(n > 0, "written to h1");
    buf[n > 0 ? n : 0] = 0;
    struct h1_request req;
    ok(parse_req(buf, &req) == n, "h1 parses it");
    ok(h1_has(&req.msg, "cookie", "a=1; b=2; c=3"), "crumbs joined with \"; \" (RFC 9113 §8.2.3)");
    size_t cookies = 0;
    for (size_t i = 0; i < req.msg.num_headers; i++)
        cookies +=
            req.msg.headers[i].name_len == 6 && !strncmp(req.msg.headers[i].name, "cookie", 6);
    is_int(cookies, 1, "one cookie field");

    /* host without :authority is the authority; differing host is rejected. */
    struct h2_header hh[] = {{"host", 4, "svc.ns", 6}};
    hd.headers = hh;
    hd.num_headers = 1;
    hd.authority = NULL;
    hd.authority_len = 0;
    is_int(stream_from_h2_request(&m, &hd, true), 0, "host field as authority");
    is_str(m.authority, "svc.ns", "authority from host");
    hd.authority = "other";
    hd.authority_len = 5;
    is_int(stream_from_h2_request(&m, &hd, true), -STREAM_E_HOST_MISMATCH, "host != :authority");
    hd.authority = "user@svc";
    hd.authority_len = 8;
    hd.num_headers = 0;
    is_int(stream_from_h2_request(&m, &hd, true), -STREAM_E_BAD_PSEUDO, "userinfo in :authority");
    hd.authority = "svc";
    hd.authority_len = 3;
    hd.path = "/a b";
    hd.path_len = 4;
    is_int(stream_from_h2_request(&m, &hd, true), -STREAM_E_BAD_PSEUDO, "space in :path");
    hd.path = "x";
    hd.path_len = 1;
    is_int(stream_from_h2_request(&m, &hd, true), -STREAM_E_BAD_PSEUDO, ":path not origin-form");
    hd.path = "/";
    hd.path_len = 1;
    struct h2_header ws[] = {{"x-a", 3, " padded", 7}};
    hd.headers = ws;
    hd.num_headers = 1;
    is_int(stream_from_h2_request(&m, &hd, true), -STREAM_E_BAD_FIELD, "leading whitespace value");
    struct h2_header cl[] = {{"content-length", 14, "4", 1}};
    hd.headers = cl;
    is_int(stream_from_h2_request(&m, &hd, true), -STREAM_E_BAD_FIELD,
           "content-length 4 on an ended stream");
    hd.method = "CONNECT";
    hd.method_len = 7;
    hd.num_headers = 0;
    is_int(stream_from_h2_request(&m, &hd, true), -STREAM_E_BAD_PSEUDO, "CONNECT with :path");
    hd.path = NULL;
    hd.path_len = 0;
    hd.scheme = NULL;
    hd.scheme_len = 0;
    is_int(stream_from_h2_request(&m, &hd, false), 0, "CONNECT authority-only");
    n = stream_write_h1_request(&m, stream_h1_framing(&m, NULL, 0, 1), buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = 0;
    ok(n > 0 && !strncmp(buf, "CONNECT svc HTTP/1.1\r\n", 22), "CONNECT in authority-form");
    stream_head_free(&m);
}

static void test_limits(void)
{
    struct stream_limits lim = {.max_header_len = 200, .max_fields = 3};
    struct stream_head m;
    stream_head_init(&m, STREAM_REQUEST, &lim);
    struct h1_request req;
    ok(parse_req("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", &req) > 0,
       "5 fields parse");
    int rc = stream_from_h1_request(&m, &req, NULL, 0);
    is_int(rc, -STREAM_E_TOO_MANY, "4 fields over a limit of 3");
    is_int(stream_error_status(rc), 431, "answered 431");
    static char raw[1024];
    snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\nA: %0200d\r\n\r\n", 0);
    ok(parse_req(raw, &req) > 0, "a 200-byte value parses");
    rc = stream_from_h1_request(&m, &req, NULL, 0);
    is_int(rc, -STREAM_E_TOO_LARGE, "over 200 bytes of fields");
    is_str(stream_error_str(rc), "headers_too_large", "error name");
    is_int(stream_from_h1_request(&m, &req, NULL, 0), -STREAM_E_TOO_LARGE, "reused head, same");
    ok(parse_req("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\n\r\n", &req) > 0, "small request");
    is_int(stream_from_h1_request(&m, &req, NULL, 0), 0, "fits after reset");
    /* Extra slots for the proxy's own fields beyond max_fields. */
    uint8_t rnd[16] = {0};
    is_int(stream_request_id(&m, rnd), 1, "x-request-id fits past max_fields");
    is_int(stream_forwarded(&m, "http", false, NULL), 0, "x-forwarded-proto fits too");
    stream_head_free(&m);

    /* h2 side: defaults (100 fields). */
    stream_head_init(&m, STREAM_REQUEST, NULL);
    static struct h2_header many[101];
    for (int i = 0; i < 101; i++)
        many[i] = (struct h2_header){"x-f", 3, "v", 1};
    struct h2_head hd = {.method = "GET",
                         .method_len = 3,
                         .scheme = "http",
                         .scheme_len = 4,
                         .authority = "a",
                         .authority_len = 1,
                         .path = "/",
                         .path_len = 1,
                         .headers = many,
                         .num_headers = 101};
    is_int(stream_from_h2_request(&m, &hd, true), -STREAM_E_TOO_MANY, "101 h2 fields");
    hd.num_headers = 100;
    is_int(stream_from_h2_request(&m, &hd, true), 0, "100 h2 fields");
    stream_head_free(&m);
}

static void test_local_replies(void)
{
    static const struct {
        int status;
        const char *flag;
        const char *body;
        int grpc;
    } cases[] = {
        {400, NULL, "Bad Request", 13},
        {404, "NR", "", 12},
        {431, NULL, "Request Header Fields Too Large", 2},
        {500, NULL, "Internal Server Error", 2},
        {502, NULL,
         "upstream connect error or disconnect/reset before headers. reset reason: "
         "protocol error",
         14},
        {503, "UH", "no healthy upstream", 14},
        {503, "UF",
         "upstream connect error or disconnect/reset before headers. reset reason: "
         "connection failure",
         14},
        {503, "UO",
         "upstream connect error or disconnect/reset before headers. reset reason: "
         "overflow",
         14},
        {504, "UT", "upstream request timeout", 4},
        {504, NULL, "upstream request timeout", 14},
    };
    struct stream_head req, greq, resp;
    stream_head_init(&req, STREAM_REQUEST, NULL);
    stream_head_init(&greq, STREAM_REQUEST, NULL);
    stream_head_init(&resp, STREAM_RESPONSE, NULL);
    struct h1_request r;
    parse_req("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    stream_from_h1_request(&req, &r, NULL, 0);
    parse_req("POST /pkg.Svc/M HTTP/1.1\r\nHost: a\r\nContent-Type: application/grpc+proto\r\n"
              "TE: trailers\r\nContent-Length: 5\r\n\r\n",
              &r);
    stream_from_h1_request(&greq, &r, NULL, 0);
    ok(stream_is_grpc(&greq) && !stream_is_grpc(&req), "gRPC request recognised");

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *body;
        size_t blen;
        char name[96];
        snprintf(name, sizeof(name), "%d %s", cases[i].status, cases[i].flag ? cases[i].flag : "-");
        int rc =
            stream_local_reply(&resp, &req, cases[i].status, cases[i].flag, NULL, &body, &blen);
        ok(rc == 0 && resp.status == cases[i].status, "%s: local reply", name);
        ok(blen == strlen(cases[i].body) && !memcmp(body, cases[i].body, blen), "%s: body '%s'",
           name, cases[i].body);
        ok(!cases[i].flag || field_is(&resp, "x-ringmesh-flags", cases[i].flag),
           "%s: x-ringmesh-flags", name);
        char buf[1024];
        enum stream_framing fr = stream_h1_framing(&resp, "GET", 3, 1);
        ssize_t n = stream_write_h1_response(&resp, fr, buf, sizeof(buf));
        struct h1_response hr;
        ok(n > 0 && parse_resp(buf, (size_t)n, H1_M_GET, &hr) == n &&
               hr.msg.body == H1_BODY_LENGTH && hr.msg.content_length == blen,
           "%s: HTTP/1.1 head with Content-Length", name);

        rc = stream_local_reply(&resp, &greq, cases[i].status, cases[i].flag, NULL, &body, &blen);
        ok(rc == 0 && resp.status == 200 && (resp.flags & STREAM_F_END_STREAM) && blen == 0,
           "%s: gRPC trailers-only", name);
        is_int(stream_grpc_status(&resp), cases[i].grpc, "grpc-status mapped");
        struct h2_head out;
        ok(stream_to_h2(&resp, &out) == 0 && out.status == 200, "%s: h2 pairs", name);
    }
    const char *body;
    size_t blen;
    stream_local_reply(&resp, &greq, 503, "UH", "50% done\n", &body, &blen);
    ok(field_is(&resp, "grpc-message", "50%25 done%0A"), "grpc-message percent-encoded");
    is_int(stream_grpc_status_from_http(401), 16, "401 -> UNAUTHENTICATED");
    is_int(stream_grpc_status_from_http(403), 7, "403 -> PERMISSION_DENIED");
    is_int(stream_grpc_status_from_http(429), 14, "429 -> UNAVAILABLE");
    is_int(stream_grpc_status_from_http(418), 2, "other -> UNKNOWN");
    parse_req("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    stream_from_h1_request(&req, &r, NULL, 0);
    stream_local_reply(&resp, &req, 503, "UH", NULL, &body, &blen);
    ok(blen == 0 && resp.content_length == 19 && (resp.flags & STREAM_F_END_STREAM),
       "HEAD: length without body");
    stream_head_free(&req);
    stream_head_free(&greq);
    stream_head_free(&resp);
}

static void test_trace_and_ids(void)
{
    struct stream_traceparent tp;
    static const char good[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    is_int(stream_traceparent_parse(good, 55, &tp), 0, "valid traceparent");
    ok(tp.trace_id[0] == 0x4b && tp.span_id[7] == 0xb7 && tp.flags == 1, "fields parsed");
    static const char *const bad[] = {
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* upper case */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero parent id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* 00 with extra */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",    /* short */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   /* not hex */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_int(stream_traceparent_parse(bad[i], strlen(bad[i]), &tp), -EINVAL, bad[i]);
    static const char future[] = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what";
    is_int(stream_traceparent_parse(future, strlen(future), &tp), 0, "later version with more");

    struct stream_head m;
    stream_head_init(&m, STREAM_REQUEST, NULL);
    struct h1_request r;
    parse_req("GET / HTTP/1.1\r\nHost: a\r\n"
              "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
              "tracestate: congo=t61rcWkgMzE\r\nX-B3-TraceId: 80f198ee56343ba864fe8b2a57d3eff7\r\n"
              "\r\n",
              &r);
    stream_from_h1_request(&m, &r, NULL, 0);
    uint8_t span[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    is_int(stream_trace_continue(&m, span, &tp), 1, "valid parent: trace continues");
    ok(field_is(&m, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01"),
       "child: same trace id and flags, new parent id");
    ok(field_is(&m, "tracestate", "congo=t61rcWkgMzE"), "tracestate kept");
    ok(field_is(&m, "x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"), "b3 untouched");

    /* the flags byte is kept whole (level 2's random bit 0x02, unknown bits) */
    parse_req("GET / HTTP/1.1\r\nHost: a\r\n"
              "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03\r\n\r\n",
              &r);
    stream_from_h1_request(&m, &r, NULL, 0);
    is_int(stream_trace_continue(&m, span, &tp), 1, "flags 03: continues");
    ok(field_is(&m, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-03"),
       "flags 03 kept");

    /* invalid, absent, a later version, two fields: left exactly as they came */
    static const char *const keep[] = {
        "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n"
        "tracestate: congo=t61rcWkgMzE\r\n",
        "traceparent: garbage\r\n",
        "traceparent: 01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what\r\n",
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-01\r\n",
        "",
    };
    uint8_t zero8[8] = {0}, zero16[16] = {0};
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        char req[512];
        snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n", keep[i]);
        parse_req(req, &r);
        stream_from_h1_request(&m, &r, NULL, 0);
        size_t n0 = m.fields.n;
        char before[512];
        const struct router_header *f0 = stream_head_get(&m, "traceparent");
        snprintf(before, sizeof(before), "%.*s", f0 ? (int)f0->value_len : 0, f0 ? f0->value : "");
        is_int(stream_trace_continue(&m, span, &tp), 0, "left alone");
        const struct router_header *f1 = stream_head_get(&m, "traceparent");
        ok(m.fields.n == n0 && (f0 ? f1 && field_is(&m, "traceparent", before) : !f1),
           i == 4 ? "absent: none invented" : "unchanged");
    }
    parse_req("GET / HTTP/1.1\r\nHost: a\r\n"
              "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n",
              &r);
    stream_from_h1_request(&m, &r, NULL, 0);
    is_int(stream_trace_continue(&m, zero8, &tp), 1, "all-zero randomness");
    const struct router_header *f = stream_head_get(&m, "traceparent");
    ok(f && stream_traceparent_parse(f->value, f->value_len, &tp) == 0,
       "all-zero randomness still gives a valid traceparent");

    uint8_t rnd[16];
    for (int i = 0; i < 16; i++)
        rnd[i] = (uint8_t)(0xf0 + i);
    char id[STREAM_REQUEST_ID_LEN + 1];
    stream_uuid4(rnd, id);
    is_str(id, "f0f1f2f3-f4f5-46f7-b8f9-fafbfcfdfeff", "UUIDv4: version 4, variant 10");
    is_int(stream_request_id(&m, rnd), 1, "x-request-id generated when absent");
    ok(field_is(&m, "x-request-id", "f0f1f2f3-f4f5-46f7-b8f9-fafbfcfdfeff"), "...as that UUID");
    is_int(stream_request_id(&m, zero16), 0, "kept when present");
    ok(field_is(&m, "x-request-id", "f0f1f2f3-f4f5-46f7-b8f9-fafbfcfdfeff"), "...unchanged");

    is_int(stream_forwarded(&m, "http", false, NULL), 0, "forwarded headers");
    ok(field_is(&m, "x-forwarded-proto", "http") && !stream_head_get(&m, "x-forwarded-for"),
       "x-forwarded-proto set, x-forwarded-for untouched by default");
    stream_forwarded(&m, "https", false, NULL);
    ok(field_is(&m, "x-forwarded-proto", "http"), "x-forwarded-proto kept unless overwrite");
    stream_forwarded(&m, "https", true, "10.0.0.1");
    ok(field_is(&m, "x-forwarded-proto", "https") && field_is(&m, "x-forwarded-for", "10.0.0.1"),
       "overwrite, XFF added on request");
    stream_forwarded(&m, NULL, false, "10.0.0.2");
    ok(field_is(&m, "x-forwarded-for", "10.0.0.1, 10.0.0.2"), "XFF appended");
    stream_head_free(&m);
}

static void test_retry_facts(void)
{
    ok(stream_method_is_idempotent("GET", 3) && stream_method_is_idempotent("PUT", 3) &&
           stream_method_is_idempotent("DELETE", 6) && stream_method_is_idempotent("OPTIONS", 7),
       "idempotent methods");
    ok(!stream_method_is_idempotent("POST", 4) && !stream_method_is_idempotent("PATCH", 5) &&
           !stream_method_is_idempotent("get", 3),
       "non-idempotent, case-sensitive");
    struct stream_head m;
    stream_head_init(&m, STREAM_RESPONSE, NULL);
    stream_head_add(&m, "content-type", 12, "application/grpc-web", 20);
    ok(!stream_is_grpc(&m), "application/grpc-web is not gRPC");
    stream_head_reset(&m, STREAM_RESPONSE);
    stream_head_add(&m, "content-type", 12, "application/grpc;charset=x", 26);
    ok(stream_is_grpc(&m), "application/grpc;params is");
    is_int(stream_grpc_status(&m), -1, "no grpc-status");
    stream_head_add(&m, "grpc-status", 11, "x", 1);
    is_int(stream_grpc_status(&m), -1, "bad grpc-status");
    stream_head_free(&m);
}

int main(void)
{
    test_request_round_trip();
    test_request_forms();
    test_responses();
    test_grpc_trailers();
    test_cookies_and_h2_validation();
    test_limits();
    test_local_replies();
    test_trace_and_ids();
    test_retry_facts();
    return tap_done();
}
