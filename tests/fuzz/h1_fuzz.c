/*
 * h1_fuzz.c - libFuzzer target for the HTTP/1.1 codec (sidecar/h1.c). The first byte
 * picks what the rest is fed to, the second seeds split points and the request method:
 *   0 request head, 1 response head, 2 chunked body, 3 request head + its body.
 * Besides ASan/UBSan faults, it aborts when a differential check fails:
 *   - a head parsed whole, split in two (the prefix in its own exactly sized buffer, so
 *     an over-read faults) and byte by byte gives the same result;
 *   - every view lies inside the head, counts stay within limits;
 *   - a parsed HTTP/1.1 head written back by the serializer parses to the same fields;
 *   - a chunked body decoded whole, in random steps and byte by byte gives the same
 *     data, trailers and end (or the same error), and re-encoded decodes the same.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h1.h"

#define NHDR 64
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static bool in(const char *p, size_t n, const char *buf, size_t len)
{
    return n == 0 || (p >= buf && p + n <= buf + len);
}

/* Offsets of views, so results from different buffers compare. */
static size_t off(const char *p, const char *buf)
{
    return p ? (size_t)(p - buf) + 1 : 0;
}

struct head_sum {
    ssize_t rc;
    size_t a[8], alen[8];
    int status, minor, body;
    uint64_t cl;
    unsigned flags;
    size_t nh;
    size_t hn[NHDR], hnl[NHDR], hv[NHDR], hvl[NHDR];
    unsigned hf[NHDR];
};

static void sum_msg(struct head_sum *s, const struct h1_message *m, const char *buf, size_t len)
{
    s->minor = m->minor_version;
    s->body = m->body;
    s->cl = m->content_length;
    s->flags = m->flags;
    s->nh = m->num_headers;
    CHECK(m->num_headers <= NHDR && m->num_headers <= H1_DEFAULT_MAX_HEADERS);
    CHECK(m->minor_version == 0 || m->minor_version == 1);
    CHECK(m->body != H1_BODY_LENGTH || !(m->flags & H1_F_HAS_TE));
    for (size_t i = 0; i < m->num_headers; i++) {
        const struct h1_header *h = &m->headers[i];
        CHECK(h->name_len > 0 && in(h->name, h->name_len, buf, len));
        CHECK(in(h->value, h->value_len, buf, len));
        s->hn[i] = off(h->name, buf);
        s->hnl[i] = h->name_len;
        s->hv[i] = off(h->value, buf);
        s->hvl[i] = h->value_len;
        s->hf[i] = h->flags;
    }
    CHECK(in(m->upgrade, m->upgrade_len, buf, len));
    s->a[7] = off(m->upgrade, buf);
    s->alen[7] = m->upgrade_len;
}

static void run_request(const char *buf, size_t len, struct h1_parser *p, struct h1_request *r,
                        struct h1_header *h, struct head_sum *s)
{
    memset(r, 0, sizeof(*r));
    memset(s, 0, sizeof(*s));
    r->msg.headers = h;
    r->msg.headers_cap = NHDR;
    s->rc = h1_parse_request(p, buf, len, r);
    if (s->rc < 0)
        return;
    size_t n = (size_t)s->rc;
    CHECK(n <= len);
    CHECK(r->method_len > 0 && in(r->method, r->method_len, buf, n));
    CHECK(r->target_len > 0 && in(r->target, r->target_len, buf, n));
    CHECK(in(r->path, r->path_len, buf, n) && in(r->authority, r->authority_len, buf, n));
    CHECK(in(r->host, r->host_len, buf, n));
    CHECK(r->msg.body != H1_BODY_CLOSE && r->msg.body != H1_BODY_TUNNEL);
    CHECK(r->msg.minor_version == 0 || r->host);
    s->a[0] = off(r->method, buf), s->alen[0] = r->method_len;
    s->a[1] = off(r->target, buf), s->alen[1] = r->target_len;
    s->a[2] = off(r->path, buf), s->alen[2] = r->path_len;
    s->a[3] = off(r->authority, buf), s->alen[3] = r->authority_len;
    s->a[4] = off(r->host, buf), s->alen[4] = r->host_len;
    s->status = (int)r->form * 100 + (int)r->method_id;
    sum_msg(s, &r->msg, buf, n);
}

static void run_response(const char *buf, size_t len, enum h1_method m, struct h1_parser *p,
                         struct h1_response *r, struct h1_header *h, struct head_sum *s)
{
    memset(r, 0, sizeof(*r));
    memset(s, 0, sizeof(*s));
    r->msg.headers = h;
    r->msg.headers_cap = NHDR;
    s->rc = h1_parse_response(p, buf, len, m, r);
    if (s->rc < 0)
        return;
    size_t n = (size_t)s->rc;
    CHECK(n <= len);
    CHECK(r->status >= 100 && r->status <= 599);
    CHECK(in(r->reason, r->reason_len, buf, n));
    s->status = r->status;
    s->a[0] = off(r->reason, buf), s->alen[0] = r->reason_len;
    sum_msg(s, &r->msg, buf, n);
}

static bool same(const struct head_sum *a, const struct head_sum *b)
{
    return memcmp(a, b, sizeof(*a)) == 0;
}

/* Head parsed whole, split at k (prefix in its own buffer), byte by byte. */
static void fuzz_head(const char *data, size_t len, uint8_t seed, bool request)
{
    static struct h1_header h[NHDR];
    struct h1_parser p;
    struct head_sum whole, other;
    struct h1_request rq;
    struct h1_response rs;
    enum h1_method m = (enum h1_method)(seed % (H1_M_PATCH + 1));

#define RUN(buf, n, s)                                                                             \
    (request ? run_request(buf, n, &p, &rq, h, s) : run_response(buf, n, m, &p, &rs, h, s))

    h1_parser_init(&p, NULL);
    RUN(data, len, &whole);
    CHECK(whole.rc != 0);

    size_t k = len ? (size_t)seed * len / 256 : 0;
    char *prefix = malloc(k ? k : 1);
    CHECK(prefix);
    memcpy(prefix, data, k);
    h1_parser_init(&p, NULL);
    RUN(prefix, k, &other);
    free(prefix);
    if (other.rc == -EAGAIN)
        RUN(data, len, &other);
    else
        CHECK(whole.rc < 0 || (size_t)whole.rc <= k);
    CHECK(same(&whole, &other));

    h1_parser_init(&p, NULL);
    other.rc = -EAGAIN;
    for (size_t i = 1; i <= len && other.rc == -EAGAIN; i++)
        RUN(data, i, &other);
    if (len == 0)
        RUN(data, 0, &other);
    CHECK(same(&whole, &other));
    CHECK(other.rc == -EAGAIN || p.scanned == 0); /* a result resets the parser */

    if (whole.rc < 0 || (request ? rq.msg.minor_version : rs.msg.minor_version) != 1)
        return;

    /* Serialize what was parsed and parse it again: same fields. */
    static char out[70000];
    ssize_t w;
    RUN(data, len, &whole);
    struct h1_message *msg = request ? &rq.msg : &rs.msg;
    size_t nh = msg->num_headers;
    if (request)
        w = h1_write_request_head(out, sizeof(out), rq.method, rq.method_len, rq.target,
                                  rq.target_len, msg->headers, nh);
    else
        w = h1_write_response_head(out, sizeof(out), rs.status, rs.reason, rs.reason_len,
                                   msg->headers, nh);
    CHECK(w > 0);
    struct h1_header keep[NHDR];
    memcpy(keep, msg->headers, nh * sizeof(keep[0]));
    unsigned flags = msg->flags;
    int body = msg->body;
    uint64_t cl = msg->content_length;
    h1_parser_init(&p, NULL);
    RUN(out, (size_t)w, &other);
    if (other.rc == -H1_E_HEAD_TOO_LARGE)
        return; /* ": " and a CRLF per field can push a near-limit head over it */
    CHECK(other.rc == w);
    CHECK(msg->num_headers == nh && msg->flags == flags && (int)msg->body == body &&
          msg->content_length == cl);
    for (size_t i = 0; i < nh; i++)
        CHECK(msg->headers[i].name_len == keep[i].name_len &&
              memcmp(msg->headers[i].name, keep[i].name, keep[i].name_len) == 0 &&
              msg->headers[i].value_len == keep[i].value_len &&
              memcmp(msg->headers[i].value, keep[i].value, keep[i].value_len) == 0 &&
              msg->headers[i].flags == keep[i].flags);
#undef RUN
}

struct body_sum {
    ssize_t err;
    size_t used;
    uint64_t total;
    int state;
    size_t dlen;
    char data[8192];
    size_t nt;
    char trailers[4096];
    size_t tlen;
};

/*
 * Decodes data[0..len) with bytes arriving in steps from the step generator (0: all at
 * once; else pseudo-random 1..step), unconsumed bytes kept in front like a caller's
 * buffer. Each arrival is copied to an exactly sized buffer.
 */
static void decode(const char *data, size_t len, enum h1_body kind, uint64_t cl, unsigned step,
                   uint32_t rnd, struct body_sum *s)
{
    static struct h1_header tr[NHDR];
    struct h1_decoder d;
    size_t avail = 0, used = 0;
    bool final_round = false;

    memset(s, 0, sizeof(*s));
    h1_decoder_init(&d, kind, cl);
    d.trailers = tr;
    d.trailers_cap = NHDR;
    while (!h1_decoder_is_done(&d) && !s->err) {
        if (avail == len) {
            if (final_round)
                break;
            final_round = true;
        }
        if (step == 0) {
            avail = len;
        } else {
            rnd = rnd * 1103515245u + 12345u;
            size_t add = 1 + (rnd >> 16) % step;
            avail = avail + add < len ? avail + add : len;
        }
        for (;;) {
            size_t n = avail - used;
            char *b = malloc(n ? n : 1);
            CHECK(b);
            memcpy(b, data + used, n);
            const char *dp;
            size_t dl;
            ssize_t rc = h1_decoder_feed(&d, b, n, &dp, &dl);
            if (rc == -EAGAIN) {
                CHECK(d.state == H1_S_TRAILERS);
                free(b);
                break;
            }
            if (rc < 0) {
                s->err = rc;
                CHECK(d.state == H1_S_ERROR);
                free(b);
                break;
            }
            CHECK((size_t)rc <= n && dl <= (size_t)rc && in(dp, dl, b, (size_t)rc));
            if (dl && s->dlen + dl <= sizeof(s->data)) {
                memcpy(s->data + s->dlen, dp, dl);
                s->dlen += dl;
            }
            used += (size_t)rc;
            if (h1_decoder_is_done(&d)) {
                s->nt = d.num_trailers;
                CHECK(d.num_trailers <= NHDR);
                for (size_t i = 0; i < d.num_trailers; i++) {
                    CHECK(in(tr[i].name, tr[i].name_len, b, (size_t)rc));
                    CHECK(in(tr[i].value, tr[i].value_len, b, (size_t)rc));
                    size_t need = tr[i].name_len + tr[i].value_len + 2;
                    if (s->tlen + need <= sizeof(s->trailers)) {
                        memcpy(s->trailers + s->tlen, tr[i].name, tr[i].name_len);
                        s->tlen += tr[i].name_len;
                        s->trailers[s->tlen++] = ':';
                        memcpy(s->trailers + s->tlen, tr[i].value, tr[i].value_len);
                        s->tlen += tr[i].value_len;
                        s->trailers[s->tlen++] = '\n';
                    }
                }
                free(b);
                break;
            }
            free(b);
            if (used == avail || rc == 0)
                break;
        }
    }
    /* On an error, framing bytes of the failing call are not reported as consumed, so
     * "used" depends on the steps: only the error itself must agree. */
    s->used = s->err ? 0 : used;
    s->total = d.total;
    s->state = d.state;
    CHECK(s->dlen == d.total || d.total > sizeof(s->data));
}

static bool same_body(const struct body_sum *a, const struct body_sum *b)
{
    return a->err == b->err && a->used == b->used && a->total == b->total && a->state == b->state &&
           a->dlen == b->dlen && memcmp(a->data, b->data, a->dlen) == 0 && a->nt == b->nt &&
           a->tlen == b->tlen && memcmp(a->trailers, b->trailers, a->tlen) == 0;
}

static void fuzz_chunked(const char *data, size_t len, uint8_t seed)
{
    static struct body_sum whole, other;
    static char enc[16384];

    decode(data, len, H1_BODY_CHUNKED, 0, 0, 0, &whole);
    decode(data, len, H1_BODY_CHUNKED, 0, 1 + seed % 16, seed, &other);
    CHECK(same_body(&whole, &other));
    decode(data, len, H1_BODY_CHUNKED, 0, 1, 0, &other);
    CHECK(same_body(&whole, &other));

    /* Re-encode a complete body as one chunk (if any data) and the last chunk. */
    if (whole.state != H1_S_DONE || whole.dlen != whole.total || whole.nt > 0)
        return;
    size_t n = 0;
    if (whole.dlen) {
        ssize_t w = h1_write_chunk_header(enc, sizeof(enc), whole.dlen);
        CHECK(w > 0);
        n = (size_t)w;
        memcpy(enc + n, whole.data, whole.dlen);
        n += whole.dlen;
        memcpy(enc + n, H1_CRLF, 2);
        n += 2;
    }
    ssize_t w = h1_write_last_chunk(enc + n, sizeof(enc) - n, NULL, 0);
    CHECK(w == 5);
    n += (size_t)w;
    decode(enc, n, H1_BODY_CHUNKED, 0, 0, 0, &other);
    CHECK(other.state == H1_S_DONE && other.used == n && other.dlen == whole.dlen &&
          memcmp(other.data, whole.data, whole.dlen) == 0);
}

/* A request head and its body from the same bytes, as a server loop would. */
static void fuzz_request_and_body(const char *data, size_t len, uint8_t seed)
{
    static struct h1_header h[NHDR];
    static struct body_sum a, b;
    struct h1_parser p;
    struct h1_request r;

    memset(&r, 0, sizeof(r));
    r.msg.headers = h;
    r.msg.headers_cap = NHDR;
    h1_parser_init(&p, NULL);
    ssize_t rc = h1_parse_request(&p, data, len, &r);
    if (rc <= 0)
        return;
    decode(data + rc, len - (size_t)rc, r.msg.body, r.msg.content_length, 0, 0, &a);
    decode(data + rc, len - (size_t)rc, r.msg.body, r.msg.content_length, 1 + seed % 7, seed, &b);
    CHECK(same_body(&a, &b));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0] % 4, seed = data[1];
    const char *in_ = (const char *)data + 2;
    size_t len = size - 2;

    switch (mode) {
    case 0:
        fuzz_head(in_, len, seed, true);
        break;
    case 1:
        fuzz_head(in_, len, seed, false);
        break;
    case 2:
        fuzz_chunked(in_, len, seed);
        break;
    case 3:
        fuzz_request_and_body(in_, len, seed);
        break;
    }
    return 0;
}
