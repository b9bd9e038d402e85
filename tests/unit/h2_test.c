/*
 * h2_test.c - sidecar/h2.c: a client and a server h2_conn paired in memory (bytes
 * shuttled whole, byte by byte and in random splits), plus raw hand-written frames for
 * the attacks (rapid reset, CONTINUATION flood, control flood) and malformed input.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "h2.h"
#include "tap.h"

#define MAXS 512

/* What one side saw, per stream id. */
struct srec {
    int status;
    char path[64];
    bool headers, end, closed, reset;
    uint32_t reset_code, close_code;
    size_t data_len;
    uint32_t data_sum;
    char grpc_status[8];
    int32_t peer_id;
};

struct side {
    struct h2_conn *c;
    struct srec s[MAXS];
    int opened, goaways;
    int32_t goaway_last;
    /* server behaviour */
    bool auto_respond; /* answer each request at its end */
    bool echo;         /* with its body */
    bool grpc;         /* ...as gRPC: headers, data, trailers */
    bool auto_consume; /* consume received data at once */
    int respond_status;
};

static struct srec *rec(struct side *sd, int32_t id)
{
    return &sd->s[(id > 0 && id < MAXS) ? id : 0];
}

static void respond(struct side *sd, int32_t id)
{
    struct srec *r = rec(sd, id);
    if (sd->grpc) {
        struct h2_header h[] = {{"content-type", 12, "application/grpc", 16}};
        h2_submit_response(sd->c, id, 200, h, 1, true);
        h2_submit_data(sd->c, id, "\0\0\0\0\5hello", 10, false);
        struct h2_header t[] = {{"grpc-status", 11, "0", 1}, {"grpc-message", 12, "ok", 2}};
        h2_submit_trailers(sd->c, id, t, 2);
        return;
    }
    if (sd->echo) {
        char len[24];
        snprintf(len, sizeof(len), "%zu", r->data_len);
        struct h2_header h[] = {{"x-len", 5, len, strlen(len)}};
        h2_submit_response(sd->c, id, 200, h, 1, true);
        h2_submit_data(sd->c, id, "echo:", 5, false);
        h2_submit_data(sd->c, id, r->path, strlen(r->path), true);
        return;
    }
    h2_submit_response(sd->c, id, sd->respond_status ? sd->respond_status : 204, NULL, 0, false);
}

static void *cb_open(struct h2_conn *c, int32_t id, void *u)
{
    struct side *sd = u;
    sd->opened++;
    return sd;
}

static void cb_headers(struct h2_conn *c, int32_t id, const struct h2_head *h, bool end, void *u)
{
    struct side *sd = u;
    struct srec *r = rec(sd, id);
    r->headers = true;
    r->status = h->status;
    if (h->path) {
        size_t n = h->path_len < sizeof(r->path) - 1 ? h->path_len : sizeof(r->path) - 1;
        memcpy(r->path, h->path, n);
        r->path[n] = 0;
        if (strcmp(r->path, "/refuse") == 0)
            h2_reset_stream(c, id, H2_REFUSED_STREAM);
    }
}

static void cb_data(struct h2_conn *c, int32_t id, const uint8_t *d, size_t len, void *u)
{
    struct side *sd = u;
    struct srec *r = rec(sd, id);
    for (size_t i = 0; i < len; i++)
        r->data_sum = r->data_sum * 31 + d[i];
    r->data_len += len;
    if (sd->auto_consume)
        h2_stream_consumed(c, id, len);
}

static void cb_trailers(struct h2_conn *c, int32_t id, const struct h2_header *t, size_t n, void *u)
{
    struct srec *r = rec(u, id);
    for (size_t i = 0; i < n; i++)
        if (t[i].name_len == 11 && memcmp(t[i].name, "grpc-status", 11) == 0 &&
            t[i].value_len < sizeof(r->grpc_status)) {
            memcpy(r->grpc_status, t[i].value, t[i].value_len);
            r->grpc_status[t[i].value_len] = 0;
        }
}

static void cb_end(struct h2_conn *c, int32_t id, void *u)
{
    struct side *sd = u;
    rec(sd, id)->end = true;
    if (sd->auto_respond)
        respond(sd, id);
}

static void cb_reset(struct h2_conn *c, int32_t id, uint32_t code, void *u)
{
    struct srec *r = rec(u, id);
    r->reset = true;
    r->reset_code = code;
}

static void cb_goaway(struct h2_conn *c, int32_t last, uint32_t code, void *u)
{
    struct side *sd = u;
    sd->goaways++;
    sd->goaway_last = last;
}

static void cb_closed(struct h2_conn *c, int32_t id, uint32_t code, void *u)
{
    struct srec *r = rec(u, id);
    r->closed = true;
    r->close_code = code;
}

static const struct h2_callbacks cbs = {
    .stream_open = cb_open,
    .headers = cb_headers,
    .data = cb_data,
    .trailers = cb_trailers,
    .end_stream = cb_end,
    .reset = cb_reset,
    .goaway = cb_goaway,
    .closed = cb_closed,
};

static uint64_t now_ms = 1000;
static unsigned rnd_state = 12345;
static unsigned rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 16) & 0x7fff;
}

enum split { WHOLE, BYTES, RANDOM };

/* Moves what from has to send into to. Returns bytes moved, or -1 on a recv error. */
static long move(struct h2_conn *from, struct h2_conn *to, enum split sp)
{
    static uint8_t buf[16384];
    long total = 0;
    for (;;) {
        size_t cap = sp == BYTES ? 1 + rnd() % 7 : sp == RANDOM ? 1 + rnd() % 3000 : sizeof(buf);
        ssize_t n = h2_conn_send_pending(from, buf, cap);
        if (n <= 0)
            return n < 0 ? -1 : total;
        size_t off = 0;
        while (off < (size_t)n) {
            size_t k = sp == BYTES ? 1 : sp == RANDOM ? 1 + rnd() % 200 : (size_t)n - off;
            if (k > (size_t)n - off)
                k = (size_t)n - off;
            if (h2_conn_recv(to, buf + off, k, now_ms) < 0)
                return -1;
            off += k;
        }
        total += n;
    }
}

/* Shuttles both ways until quiet. */
static int shuttle(struct side *a, struct side *b, enum split sp)
{
    for (int i = 0; i < 100000; i++) {
        long x = move(a->c, b->c, sp), y = move(b->c, a->c, sp);
        if (x < 0 || y < 0)
            return -1;
        if (x == 0 && y == 0)
            return 0;
    }
    return -2;
}

static void pair(struct side *cl, struct side *sv, const struct h2_limits *sl)
{
    char err[128];
    memset(cl, 0, sizeof(*cl));
    memset(sv, 0, sizeof(*sv));
    cl->c = h2_conn_new(H2_CLIENT, NULL, &cbs, cl, err, sizeof(err));
    sv->c = h2_conn_new(H2_SERVER, sl, &cbs, sv, err, sizeof(err));
    sv->auto_respond = true;
    sv->auto_consume = true;
    cl->auto_consume = true;
}

static void unpair(struct side *cl, struct side *sv)
{
    h2_conn_free(cl->c);
    h2_conn_free(sv->c);
}

static int32_t get(struct side *cl, const char *path, bool body)
{
    struct h2_header h[] = {{"user-agent", 10, "h2_test", 7}, {"te", 2, "trailers", 8}};
    struct h2_head hd = {.method = body ? "POST" : "GET",
                         .method_len = body ? 4 : 3,
                         .scheme = "http",
                         .scheme_len = 4,
                         .authority = "svc.ns",
                         .authority_len = 6,
                         .path = path,
                         .path_len = strlen(path),
                         .headers = h,
                         .num_headers = 2};
    return h2_submit_request(cl->c, &hd, body, cl);
}

static const char *split_name[] = {"whole", "byte by byte", "random splits"};

static void test_basic(enum split sp)
{
    struct side cl, sv;
    pair(&cl, &sv, NULL);
    int32_t id = get(&cl, "/a", false);
    is_int(id, 1, "first client stream is 1");
    is_int(shuttle(&cl, &sv, sp), 0, "headers-only exchange runs quiet");
    ok(sv.s[1].headers && sv.s[1].end && strcmp(sv.s[1].path, "/a") == 0,
       "%s: server saw GET /a with END_STREAM", split_name[sp]);
    is_int(cl.s[1].status, 204, "client got 204");
    ok(cl.s[1].end && cl.s[1].closed && cl.s[1].close_code == 0,
       "client stream ended and closed cleanly");
    ok(sv.s[1].closed, "server stream closed");
    is_int(h2_conn_num_streams(cl.c), 0, "no client stream left");

    /* body both ways */
    sv.echo = true;
    id = get(&cl, "/echo", true);
    static char body[70000];
    memset(body, 'x', sizeof(body));
    is_int(h2_submit_data(cl.c, id, body, 40000, false), 0, "submit body part 1");
    is_int(h2_submit_data(cl.c, id, body, 30000, true), 0, "submit body part 2 (end)");
    is_int(h2_submit_data(cl.c, id, "x", 1, false), -EPIPE, "data after end: -EPIPE");
    is_int(shuttle(&cl, &sv, sp), 0, "body exchange runs quiet");
    is_int(sv.s[id].data_len, 70000, "server got the 70000-byte body");
    is_int(cl.s[id].status, 200, "client got 200");
    is_int(cl.s[id].data_len, 10, "client got 'echo:/echo'");
    ok(cl.s[id].closed && cl.s[id].close_code == 0, "echo stream closed cleanly");
    is_int(h2_conn_error(cl.c), 0, "client has no error");
    is_int(h2_conn_error(sv.c), 0, "server has no error");
    unpair(&cl, &sv);
}

static void test_grpc(void)
{
    struct side cl, sv;
    pair(&cl, &sv, NULL);
    sv.grpc = true;
    int32_t id = get(&cl, "/pkg.Svc/Method", true);
    h2_submit_data(cl.c, id, "\0\0\0\0\2hi", 7, true);
    is_int(shuttle(&cl, &sv, RANDOM), 0, "gRPC exchange runs quiet");
    is_int(cl.s[id].status, 200, "gRPC: response headers");
    is_int(cl.s[id].data_len, 10, "gRPC: one message");
    is_str(cl.s[id].grpc_status, "0", "gRPC: grpc-status 0 in trailers");
    ok(cl.s[id].end && cl.s[id].closed && cl.s[id].close_code == 0,
       "gRPC: stream ended by trailers");
    unpair(&cl, &sv);
}

static void test_many(void)
{
    struct side cl, sv;
    pair(&cl, &sv, NULL);
    int good = 0;
    for (int i = 0; i < 90; i++)
        get(&cl, "/many", false);
    is_int(shuttle(&cl, &sv, RANDOM), 0, "90 concurrent streams run quiet");
    for (int i = 1; i < 180; i += 2)
        good += cl.s[i].status == 204 && cl.s[i].closed && cl.s[i].close_code == 0;
    is_int(good, 90, "all 90 streams answered");
    is_int(h2_conn_stats(sv.c)->streams_opened, 90, "server counted 90 streams");
    unpair(&cl, &sv);
}

/* 10 MiB upload to a server that consumes slowly. */
static void test_slow_reader(void)
{
    struct side cl, sv;
    const size_t total = 10u << 20, chunk = 32768, high = 256 * 1024;
    size_t sent = 0, max_unconsumed = 0, max_queued = 0;
    int stalls = 0;
    static uint8_t buf[32768];
    uint32_t sum = 0;

    pair(&cl, &sv, NULL);
    sv.auto_consume = false;
    sv.echo = true;
    int32_t id = get(&cl, "/upload", true);
    for (int round = 0; round < 100000 && !cl.s[id].closed; round++) {
        while (sent < total && h2_stream_queued(cl.c, id) < high) {
            for (size_t i = 0; i < chunk; i++)
                buf[i] = (uint8_t)((sent + i) * 7);
            for (size_t i = 0; i < chunk; i++)
                sum = sum * 31 + buf[i];
            if (h2_submit_data(cl.c, id, buf, chunk, sent + chunk == total) != 0)
                break;
            sent += chunk;
        }
        if (shuttle(&cl, &sv, WHOLE) != 0)
            break;
        size_t un = h2_stream_unconsumed(sv.c, id), q = h2_stream_queued(cl.c, id);
        if (un > max_unconsumed)
            max_unconsumed = un;
        if (q > max_queued)
            max_queued = q;
        if (un && q && sent < total)
            stalls++; /* sender has data, receiver holds a full window */
        /* the slow reader forwards 64 KiB per round */
        h2_stream_consumed(sv.c, id, un < 65536 ? un : 65536);
    }
    is_int(sv.s[id].data_len, total, "slow reader: all 10 MiB arrived");
    is_int(sv.s[id].data_sum, sum, "slow reader: bytes intact");
    ok(max_unconsumed <= H2_DEFAULT_STREAM_WINDOW,
       "slow reader: unconsumed never over the stream window (max %zu)", max_unconsumed);
    ok(max_queued <= high + chunk, "slow reader: sender queue bounded (max %zu)", max_queued);
    ok(stalls > 100, "slow reader: sender stalled at the window (%d rounds)", stalls);
    ok(cl.s[id].closed && cl.s[id].status == 200, "slow reader: response after the upload");
    ok(h2_conn_stats(sv.c)->mem_peak < 1024 * 1024, "slow reader: nghttp2 memory peak %zu",
       h2_conn_stats(sv.c)->mem_peak);
    unpair(&cl, &sv);

    /* the queue limit */
    pair(&cl, &sv, NULL);
    id = get(&cl, "/big", true);
    static uint8_t big[H2_DEFAULT_MAX_STREAM_QUEUE];
    is_int(h2_submit_data(cl.c, id, big, sizeof(big), false), 0, "queue up to the limit");
    is_int(h2_submit_data(cl.c, id, big, 1, false), -ENOBUFS, "one byte more: -ENOBUFS");
    is_int(h2_conn_stats(cl.c)->queue_full, 1, "queue_full counted");
    is_int(h2_conn_queued(cl.c), sizeof(big), "connection queue accounts the stream");
    unpair(&cl, &sv);
}

static void test_refused(void)
{
    struct side cl, sv;
    pair(&cl, &sv, NULL);
    int32_t id = get(&cl, "/refuse", false);
    shuttle(&cl, &sv, WHOLE);
    ok(cl.s[id].reset && cl.s[id].reset_code == H2_REFUSED_STREAM,
       "client saw RST_STREAM(REFUSED_STREAM)");
    ok(cl.s[id].closed && cl.s[id].close_code == H2_REFUSED_STREAM, "closed with REFUSED_STREAM");
    unpair(&cl, &sv);
}

static void test_goaway(void)
{
    struct side cl, sv;
    pair(&cl, &sv, NULL);
    sv.auto_respond = false;
    int32_t a = get(&cl, "/inflight", false);
    shuttle(&cl, &sv, WHOLE);
    ok(sv.s[a].end, "goaway: in-flight request reached the server");
    is_int(h2_goaway(sv.c, H2_NO_ERROR), 0, "server starts a graceful drain");
    is_int(h2_goaway(sv.c, H2_NO_ERROR), -EALREADY, "second GOAWAY: -EALREADY");
    int32_t b = get(&cl, "/racing", false); /* sent before the client sees the GOAWAY */
    ok(b > 0, "racing request submitted");
    shuttle(&cl, &sv, WHOLE);
    is_int(cl.goaways, 1, "client saw GOAWAY");
    is_int(cl.goaway_last, a, "GOAWAY last stream id is the in-flight one");
    ok(!sv.s[b].headers, "server ignored the racing stream");
    ok(cl.s[b].closed && cl.s[b].close_code == H2_REFUSED_STREAM,
       "racing stream closed with REFUSED_STREAM (retryable)");
    is_int(get(&cl, "/new", false), -ESHUTDOWN, "new request after GOAWAY: -ESHUTDOWN");
    respond(&sv, a);
    shuttle(&cl, &sv, WHOLE);
    ok(cl.s[a].status == 204 && cl.s[a].closed && cl.s[a].close_code == 0,
       "in-flight stream completed after GOAWAY");
    ok(h2_conn_is_done(sv.c), "server is done after the drain");
    unpair(&cl, &sv);
}

static void test_max_concurrent(void)
{
    struct side cl, sv;
    struct h2_limits l = {.max_concurrent_streams = 4};
    int refused = 0, seen = 0;
    pair(&cl, &sv, &l);
    sv.auto_respond = false;
    for (int i = 0; i < 10; i++)
        get(&cl, "/c", false); /* all in the first flight, before the server's SETTINGS */
    shuttle(&cl, &sv, WHOLE);
    is_int(sv.opened, 4, "max concurrent: server opened only 4 streams");
    for (int i = 1; i < 20; i += 2)
        refused += cl.s[i].reset && cl.s[i].reset_code == H2_REFUSED_STREAM;
    is_int(refused, 6, "max concurrent: 6 streams refused with REFUSED_STREAM");
    is_int(h2_conn_stats(sv.c)->streams_refused, 6, "max concurrent: refusals counted");
    /* after SETTINGS, the client queues beyond the limit instead */
    for (int i = 0; i < 6; i++)
        get(&cl, "/q", false);
    shuttle(&cl, &sv, WHOLE);
    is_int(sv.opened, 4, "max concurrent: queued requests wait for a free slot");
    sv.auto_respond = true;
    for (int i = 1; i < 8; i += 2)
        respond(&sv, i);
    for (int k = 0; k < 10; k++)
        shuttle(&cl, &sv, WHOLE);
    for (int i = 21; i < 33; i += 2)
        seen += cl.s[i].status == 204;
    is_int(seen, 6, "max concurrent: queued requests completed later");
    unpair(&cl, &sv);
}

/* ---- raw frames ---- */

static size_t frame(uint8_t *p, uint8_t type, uint8_t flags, uint32_t id, const void *pl,
                    size_t len)
{
    p[0] = (uint8_t)(len >> 16);
    p[1] = (uint8_t)(len >> 8);
    p[2] = (uint8_t)len;
    p[3] = type;
    p[4] = flags;
    p[5] = (uint8_t)(id >> 24);
    p[6] = (uint8_t)(id >> 16);
    p[7] = (uint8_t)(id >> 8);
    p[8] = (uint8_t)id;
    if (len)
        memcpy(p + 9, pl, len);
    return 9 + len;
}

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/* :method GET, :scheme http, :path /, :authority svc (literal without indexing) */
static const uint8_t req_block[] = {0x82, 0x86, 0x84, 0x01, 0x03, 's', 'v', 'c'};

static size_t start(uint8_t *p)
{
    memcpy(p, preface, 24);
    return 24 + frame(p + 24, 0x4, 0, 0, NULL, 0);
}

/* Finds a GOAWAY in the server's output; returns its error code or -1. */
static long drain_goaway(struct h2_conn *c)
{
    static uint8_t out[1 << 16];
    size_t n = 0;
    ssize_t k;
    long code = -1;
    while ((k = h2_conn_send_pending(c, out + n, sizeof(out) - n)) > 0 && n < sizeof(out))
        n += (size_t)k;
    for (size_t i = 0; i + 9 <= n;) {
        size_t len = (size_t)out[i] << 16 | (size_t)out[i + 1] << 8 | out[i + 2];
        if (out[i + 3] == 0x7 && len >= 8 && i + 9 + len <= n)
            code = (long)((uint32_t)out[i + 13] << 24 | (uint32_t)out[i + 14] << 16 |
                          (uint32_t)out[i + 15] << 8 | out[i + 16]);
        i += 9 + len;
    }
    return code;
}

static struct h2_conn *server(struct side *sv, const struct h2_limits *l)
{
    char err[128];
    memset(sv, 0, sizeof(*sv));
    sv->c = h2_conn_new(H2_SERVER, l, &cbs, sv, err, sizeof(err));
    return sv->c;
}

/* Feeds buf in 4 KiB reads until an error; returns the error (0 if none). */
static int feed(struct h2_conn *c, const uint8_t *buf, size_t len, size_t *fed)
{
    for (*fed = 0; *fed < len;) {
        size_t k = len - *fed < 4096 ? len - *fed : 4096;
        ssize_t rv = h2_conn_recv(c, buf + *fed, k, now_ms);
        if (rv < 0)
            return (int)rv;
        *fed += k;
    }
    return 0;
}

static void test_rapid_reset(void)
{
    struct side sv;
    size_t cap = 24 + 9 + 20000 * (9 + sizeof(req_block) + 9 + 4), n, fed;
    uint8_t *buf = malloc(cap);
    static const uint8_t cancel[4] = {0, 0, 0, 8};

    server(&sv, NULL);
    n = start(buf);
    for (uint32_t i = 0; i < 20000; i++) {
        n += frame(buf + n, 0x1, 0x5, 2 * i + 1, req_block, sizeof(req_block));
        n += frame(buf + n, 0x3, 0, 2 * i + 1, cancel, 4);
    }
    int rv = feed(sv.c, buf, n, &fed);
    is_int(rv, -H2_E_RAPID_RESET, "rapid reset: connection error H2_E_RAPID_RESET");
    ok(sv.opened <= H2_DEFAULT_RAPID_RESET_MAX + 1, "rapid reset: work bounded (%d streams)",
       sv.opened);
    ok(fed < n / 10, "rapid reset: input not read past the limit (%zu of %zu)", fed, n);
    is_int(drain_goaway(sv.c), H2_ENHANCE_YOUR_CALM, "rapid reset: GOAWAY(ENHANCE_YOUR_CALM)");
    is_int(h2_conn_stats(sv.c)->rapid_reset, 1, "rapid reset: counted");
    ok(strstr(h2_conn_reason(sv.c), "rapid reset") != NULL, "rapid reset: reason '%s'",
       h2_conn_reason(sv.c));
    ok(h2_conn_is_done(sv.c), "rapid reset: connection done after the GOAWAY");
    is_int(h2_conn_recv(sv.c, buf, 10, now_ms), -H2_E_RAPID_RESET, "rapid reset: sticky error");
    h2_conn_free(sv.c);

    /* the same resets spread over time stay legal */
    server(&sv, NULL);
    n = start(buf);
    h2_conn_recv(sv.c, buf, n, now_ms);
    int errs = 0;
    for (uint32_t i = 0; i < 300; i++) {
        n = frame(buf, 0x1, 0x5, 2 * i + 1, req_block, sizeof(req_block));
        n += frame(buf + n, 0x3, 0, 2 * i + 1, cancel, 4);
        errs += h2_conn_recv(sv.c, buf, n, now_ms + i * 20) < 0; /* 50/s */
        drain_goaway(sv.c);
    }
    is_int(errs, 0, "rapid reset: 50 cancels/s over 6 s are fine");
    h2_conn_free(sv.c);
    free(buf);
}

static void test_continuation_flood(void)
{
    struct side sv;
    uint8_t *buf = malloc(1 << 22);
    uint8_t field[9] = {0x00, 3, 'a', 'b', 'c', 3, 'd', 'e', 'f'};
    size_t n, fed;

    server(&sv, NULL);
    n = start(buf);
    n += frame(buf + n, 0x1, 0x1, 1, req_block, sizeof(req_block)); /* no END_HEADERS */
    for (int i = 0; i < 100000; i++)
        n += frame(buf + n, 0x9, 0, 1, field, sizeof(field));
    int rv = feed(sv.c, buf, n, &fed);
    is_int(rv, -H2_E_CONTINUATION_FLOOD, "CONTINUATION flood: connection error");
    ok(fed <= 4096, "CONTINUATION flood: stopped in the first read (%zu)", fed);
    is_int(drain_goaway(sv.c), H2_ENHANCE_YOUR_CALM,
           "CONTINUATION flood: GOAWAY(ENHANCE_YOUR_CALM)");
    is_int(h2_conn_stats(sv.c)->continuation_flood, 1, "CONTINUATION flood: counted");
    is_int(sv.opened, 0, "CONTINUATION flood: no stream reached the proxy");
    ok(h2_conn_stats(sv.c)->mem_peak < 256 * 1024, "CONTINUATION flood: memory peak %zu",
       h2_conn_stats(sv.c)->mem_peak);
    h2_conn_free(sv.c);

    /* big frames: bounded by bytes, also for a block nghttp2 already rejected (too many
     * fields: it resets the stream and skips the rest without callbacks) */
    struct h2_limits l = {.max_continuations = 1000};
    server(&sv, &l);
    n = start(buf);
    uint8_t *pl = malloc(16384);
    for (size_t i = 0; i + 9 <= 16384; i += 9)
        memcpy(pl + i, field, 9);
    n += frame(buf + n, 0x1, 0x0, 1, req_block, sizeof(req_block));
    for (int i = 0; i < 200; i++)
        n += frame(buf + n, 0x9, 0, 1, pl, 16380);
    rv = feed(sv.c, buf, n, &fed);
    is_int(rv, -H2_E_HEADER_BLOCK_TOO_LARGE, "large header block: connection error");
    ok(fed < 200 * 1024, "large header block: stopped early (%zu bytes)", fed);
    ok(h2_conn_stats(sv.c)->too_many_headers == 1, "too many fields: stream rejected first");
    is_int(drain_goaway(sv.c), H2_ENHANCE_YOUR_CALM, "large header block: GOAWAY");
    h2_conn_free(sv.c);
    free(pl);
    free(buf);
}

static void test_header_limits(void)
{
    struct side cl, sv;
    struct h2_limits l = {.max_header_list_len = 4096};
    pair(&cl, &sv, &l);
    static char big[5000];
    memset(big, 'v', sizeof(big));
    struct h2_header h[] = {{"x-big", 5, big, sizeof(big)}};
    struct h2_head hd = {.method = "GET",
                         .method_len = 3,
                         .scheme = "http",
                         .scheme_len = 4,
                         .path = "/",
                         .path_len = 1,
                         .headers = h,
                         .num_headers = 1};
    int32_t id = h2_submit_request(cl.c, &hd, false, &cl);
    shuttle(&cl, &sv, WHOLE);
    is_int(sv.opened, 0, "header list over the limit: not delivered");
    ok(cl.s[id].reset, "header list over the limit: stream reset");
    is_int(h2_conn_stats(sv.c)->header_list_too_large, 1, "header list over the limit: counted");
    is_int(h2_conn_error(sv.c), 0, "header list over the limit: connection survives");
    id = get(&cl, "/after", false);
    shuttle(&cl, &sv, WHOLE);
    is_int(cl.s[id].status, 204, "next request on the connection works");
    struct h2_header bad[] = {{"Connection", 10, "close", 5}};
    hd.headers = bad;
    is_int(h2_submit_request(cl.c, &hd, false, NULL), -EINVAL, "uppercase name: -EINVAL");
    bad[0].name = "connection";
    is_int(h2_submit_request(cl.c, &hd, false, NULL), -EINVAL, "connection-specific: -EINVAL");
    unpair(&cl, &sv);
}

static void test_malformed(void)
{
    struct side sv;
    uint8_t buf[4096];
    size_t n;

    server(&sv, NULL);
    is_int(h2_conn_recv(sv.c, (const uint8_t *)"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, now_ms),
           -H2_E_BAD_PREFACE, "bad preface: error");
    ok(h2_conn_is_done(sv.c), "bad preface: done");
    h2_conn_free(sv.c);

    /* a request without :path: stream reset, connection fine */
    server(&sv, NULL);
    n = start(buf);
    n += frame(buf + n, 0x1, 0x5, 1, req_block, 2); /* :method, :scheme only */
    is_int(h2_conn_recv(sv.c, buf, n, now_ms), (long long)n,
           "request without :path: accepted bytes");
    drain_goaway(sv.c);
    is_int(sv.opened, 0, "request without :path: not delivered");
    ok(h2_conn_stats(sv.c)->resets_sent == 1, "request without :path: RST_STREAM");
    is_int(h2_conn_error(sv.c), 0, "request without :path: connection survives");
    h2_conn_free(sv.c);

    /* a frame on stream 0 that needs a stream: connection error through GOAWAY */
    server(&sv, NULL);
    n = start(buf);
    n += frame(buf + n, 0x1, 0x5, 0, req_block, sizeof(req_block));
    h2_conn_recv(sv.c, buf, n, now_ms);
    is_int(drain_goaway(sv.c), H2_PROTOCOL_ERROR, "HEADERS on stream 0: GOAWAY(PROTOCOL_ERROR)");
    is_int(h2_conn_error(sv.c), -H2_E_PROTOCOL, "HEADERS on stream 0: H2_E_PROTOCOL");
    ok(h2_conn_reason(sv.c)[0] != 0, "protocol error reason: '%s'", h2_conn_reason(sv.c));
    ok(h2_conn_is_done(sv.c), "protocol error: done");
    h2_conn_free(sv.c);

    /* PING flood */
    server(&sv, NULL);
    n = start(buf);
    h2_conn_recv(sv.c, buf, n, now_ms);
    int rv = 0, i;
    for (i = 0; i < 1000 && rv >= 0; i++) {
        n = frame(buf, 0x6, 0, 0, "12345678", 8);
        rv = (int)h2_conn_recv(sv.c, buf, n, now_ms);
    }
    is_int(rv, -H2_E_CONTROL_FLOOD, "PING flood: H2_E_CONTROL_FLOOD");
    /* the client's SETTINGS counts too: the 200th PING is control frame 201 */
    is_int(i, H2_DEFAULT_CONTROL_MAX, "PING flood: right after the limit");
    is_int(drain_goaway(sv.c), H2_ENHANCE_YOUR_CALM, "PING flood: GOAWAY(ENHANCE_YOUR_CALM)");
    h2_conn_free(sv.c);

    /* garbage after a valid preface, many seeds: an error or nothing, never a crash */
    int errors = 0;
    for (int seed = 0; seed < 300; seed++) {
        server(&sv, NULL);
        n = start(buf);
        for (size_t k = 0; k < 600; k++)
            buf[n + k] = (uint8_t)rnd();
        rv = (int)h2_conn_recv(sv.c, buf, n + 600, now_ms);
        drain_goaway(sv.c);
        errors += rv < 0 || h2_conn_error(sv.c) < 0;
        h2_conn_free(sv.c);
    }
    ok(errors > 250, "garbage frames: %d of 300 seeds end in a connection error", errors);
}

int main(void)
{
    test_basic(WHOLE);
    test_basic(BYTES);
    test_basic(RANDOM);
    test_grpc();
    test_many();
    test_slow_reader();
    test_refused();
    test_goaway();
    test_max_concurrent();
    test_rapid_reset();
    test_continuation_flood();
    test_header_limits();
    test_malformed();
    is_str(h2_error_str(-H2_E_RAPID_RESET), "rapid_reset", "h2_error_str");
    return tap_done();
}
