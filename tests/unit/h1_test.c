/*
 * h1_test.c - the HTTP/1.1 codec: valid requests and responses of every shape, each fed
 * whole, at every split point and byte by byte with the same result; the chunked
 * decoder the same way; a table of malformed and smuggling inputs with the exact error
 * (also byte by byte: the first error is the same however the bytes arrive); limits;
 * connection helpers; serializer round trips; pipelined requests.
 *
 * Every input a parser sees sits at the very end of a mapping followed by a PROT_NONE
 * page, so reading one byte past what the caller passed faults.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "h1.h"
#include "tap.h"

#define NHDR 32

/* ---- guard-page input ---- */

static char *guard_base;
static size_t guard_len;

static void guard_init(size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    guard_len = (len + page - 1) / page * page;
    char *m =
        mmap(NULL, guard_len + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m + guard_len, page, PROT_NONE) != 0) {
        perror("guard mapping");
        exit(2);
    }
    guard_base = m;
}

/* Copies n bytes so that the last one is the last readable byte. */
static const char *guard_put(const char *s, size_t n)
{
    char *p = guard_base + guard_len - n;
    memmove(p, s, n);
    return p;
}

/* ---- summaries: one string that captures a parse result, to compare across feeds ---- */

static const char *const form_names[] = {"origin", "absolute", "authority", "asterisk"};
static const char *const body_names[] = {"none", "length", "chunked", "close", "tunnel"};

static int sv_len(const char *p, size_t n)
{
    return p ? (int)n : 6;
}

static const char *sv(const char *p)
{
    return p ? p : "(null)";
}

static void msg_summary(char *s, size_t cap, const struct h1_message *m)
{
    size_t o = strlen(s);
    o += (size_t)snprintf(s + o, cap - o, " v=1.%d body=%s cl=%llu flags=%#x up=%.*s",
                          m->minor_version, body_names[m->body],
                          (unsigned long long)m->content_length, m->flags,
                          sv_len(m->upgrade, m->upgrade_len), sv(m->upgrade));
    for (size_t i = 0; i < m->num_headers && o < cap; i++) {
        const struct h1_header *h = &m->headers[i];
        o += (size_t)snprintf(s + o, cap - o, " [%.*s: %.*s%s]", (int)h->name_len, h->name,
                              (int)h->value_len, h->value,
                              h->flags & H1_HF_HOP_BY_HOP ? " hop" : "");
    }
}

static void req_summary(char *s, size_t cap, ssize_t rc, const struct h1_request *r)
{
    if (rc < 0) {
        snprintf(s, cap, "error %s", h1_error_str((int)rc));
        return;
    }
    snprintf(s, cap, "%zd %.*s %.*s %s auth=%.*s path=%.*s host=%.*s", rc, (int)r->method_len,
             r->method, (int)r->target_len, r->target, form_names[r->form],
             sv_len(r->authority, r->authority_len), sv(r->authority), sv_len(r->path, r->path_len),
             sv(r->path), sv_len(r->host, r->host_len), sv(r->host));
    msg_summary(s, cap, &r->msg);
}

static void resp_summary(char *s, size_t cap, ssize_t rc, const struct h1_response *r)
{
    if (rc < 0) {
        snprintf(s, cap, "error %s", h1_error_str((int)rc));
        return;
    }
    snprintf(s, cap, "%zd %d [%.*s]", rc, r->status, (int)r->reason_len, r->reason);
    msg_summary(s, cap, &r->msg);
}

/* ---- request/response feeding ---- */

static struct h1_header hdrs[NHDR];

static ssize_t parse_req(struct h1_parser *p, const char *s, size_t n, struct h1_request *r)
{
    memset(r, 0, sizeof(*r));
    r->msg.headers = hdrs;
    r->msg.headers_cap = NHDR;
    return h1_parse_request(p, guard_put(s, n), n, r);
}

static ssize_t parse_resp(struct h1_parser *p, const char *s, size_t n, enum h1_method m,
                          struct h1_response *r)
{
    memset(r, 0, sizeof(*r));
    r->msg.headers = hdrs;
    r->msg.headers_cap = NHDR;
    return h1_parse_response(p, guard_put(s, n), n, m, r);
}

/* One parse of s[0..n) as request or response into a summary. kind: 0 request, else
 * 1 + the request method for a response. */
static ssize_t parse_any(struct h1_parser *p, int kind, const char *s, size_t n, char *sum,
                         size_t cap)
{
    ssize_t rc;
    if (kind == 0) {
        struct h1_request r;
        rc = parse_req(p, s, n, &r);
        req_summary(sum, cap, rc, &r);
    } else {
        struct h1_response r;
        rc = parse_resp(p, s, n, (enum h1_method)(kind - 1), &r);
        resp_summary(sum, cap, rc, &r);
    }
    return rc;
}

/*
 * Feeds s whole, then split at every k (first k bytes, then all), then byte by byte,
 * each time with the buffer moved; all must give the same summary as the whole parse,
 * and -EAGAIN for every prefix shorter than the head. Returns the whole parse's rc and
 * leaves its summary in want.
 */
static ssize_t check_feeds(const char *name, int kind, const char *s, size_t n, char *want,
                           size_t cap)
{
    struct h1_parser p;
    char got[4096];
    ssize_t whole;
    size_t bad_k = (size_t)-1;

    h1_parser_init(&p, NULL);
    whole = parse_any(&p, kind, s, n, want, cap);

    for (size_t k = 0; k <= n && bad_k == (size_t)-1; k++) {
        h1_parser_init(&p, NULL);
        ssize_t rc = parse_any(&p, kind, s, k, got, sizeof(got));
        if (rc == -EAGAIN)
            rc = parse_any(&p, kind, s, n, got, sizeof(got));
        else if (whole >= 0 && (size_t)whole > k)
            bad_k = k; /* complete before the head arrived */
        if (strcmp(got, want) != 0)
            bad_k = k;
    }
    if (!ok(bad_k == (size_t)-1, "%s: same result at every split point", name))
        printf("#   first bad split %zu: got '%s'\n#   want '%s'\n", bad_k, got, want);

    h1_parser_init(&p, NULL);
    ssize_t rc = -EAGAIN;
    size_t k = 0;
    while (rc == -EAGAIN && k < n)
        rc = parse_any(&p, kind, s, ++k, got, sizeof(got));
    bool same = strcmp(got, want) == 0 && (whole < 0 || (size_t)whole == k);
    if (!ok(same, "%s: same result byte by byte", name))
        printf("#   at %zu got '%s'\n#   want '%s'\n", k, got, want);
    return whole;
}

struct req_case {
    const char *name;
    const char *raw;
    size_t head_len; /* 0: strlen(raw) */
    const char *want;
};

/* ---- valid requests ---- */

static void test_valid_requests(void)
{
    static const struct req_case cases[] = {
        {"simple GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0,
         "27 GET / origin auth=a path=/ host=a v=1.1 body=none cl=0 flags=0x1 up=(null) "
         "[Host: a]"},
        {"GET with query, OWS, empty value, tab",
         "GET /p/q?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nX-A:  v  \r\nX-B:\r\n"
         "X-C:\ta\tb\t\r\nUser-Agent: curl/8\r\n\r\n",
         0,
         "103 GET /p/q?x=1&y=%20 origin auth=example.com:8080 path=/p/q?x=1&y=%20 "
         "host=example.com:8080 v=1.1 body=none cl=0 flags=0x1 up=(null) "
         "[Host: example.com:8080] [X-A: v] [X-B: ] [X-C: a\tb] [User-Agent: curl/8]"},
        {"HTTP/1.0 without Host, closes", "GET /x HTTP/1.0\r\nAccept: */*\r\n\r\n", 0,
         "32 GET /x origin auth=(null) path=/x host=(null) v=1.0 body=none cl=0 flags=0 "
         "up=(null) [Accept: */*]"},
        {"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0,
         "42 GET / origin auth=(null) path=/ host=(null) v=1.0 body=none cl=0 flags=0x5 "
         "up=(null) [Connection: Keep-Alive hop]"},
        {"POST Content-Length", "POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", 48,
         "48 POST /f origin auth=a path=/f host=a v=1.1 body=length cl=5 flags=0x1 up=(null) "
         "[Host: a] [Content-Length: 5]"},
        {"POST chunked",
         "POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
         57,
         "57 POST /f origin auth=a path=/f host=a v=1.1 body=chunked cl=0 flags=0x101 up=(null) "
         "[Host: a] [Transfer-Encoding: Chunked hop]"},
        {"TE list with empty elements",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked ,\r\n\r\n", 0,
         "60 POST / origin auth=a path=/ host=a v=1.1 body=chunked cl=0 flags=0x101 up=(null) "
         "[Host: a] [Transfer-Encoding: , chunked , hop]"},
        {"CONNECT authority-form",
         "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 0,
         "59 CONNECT example.com:443 authority auth=example.com:443 path=(null) "
         "host=example.com:443 v=1.1 body=none cl=0 flags=0x1 up=(null) "
         "[Host: example.com:443]"},
        {"CONNECT IPv6", "CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n",
         0,
         "65 CONNECT [2001:db8::1]:8443 authority auth=[2001:db8::1]:8443 path=(null) "
         "host=[2001:db8::1]:8443 v=1.1 body=none cl=0 flags=0x1 up=(null) "
         "[Host: [2001:db8::1]:8443]"},
        {"OPTIONS asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0,
         "31 OPTIONS * asterisk auth=a path=(null) host=a v=1.1 body=none cl=0 flags=0x1 "
         "up=(null) [Host: a]"},
        {"absolute-form wins over Host",
         "GET http://example.com:8080/a?b HTTP/1.1\r\nHost: other\r\n\r\n", 0,
         "57 GET http://example.com:8080/a?b absolute auth=example.com:8080 path=/a?b "
         "host=other v=1.1 body=none cl=0 flags=0x1 up=(null) [Host: other]"},
        {"absolute-form without path", "OPTIONS https://h HTTP/1.1\r\nHost: h\r\n\r\n", 0,
         "39 OPTIONS https://h absolute auth=h path= host=h v=1.1 body=none cl=0 flags=0x1 "
         "up=(null) [Host: h]"},
        {"leading empty lines skipped", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0,
         "31 GET / origin auth=a path=/ host=a v=1.1 body=none cl=0 flags=0x1 up=(null) "
         "[Host: a]"},
        {"Expect: 100-continue",
         "PUT /u HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n", 0,
         "69 PUT /u origin auth=a path=/u host=a v=1.1 body=length cl=3 flags=0x41 up=(null) "
         "[Host: a] [Content-Length: 3] [Expect: 100-Continue]"},
        {"Expect other", "PUT /u HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n", 0,
         "44 PUT /u origin auth=a path=/u host=a v=1.1 body=none cl=0 flags=0x81 up=(null) "
         "[Host: a] [Expect: teapot]"},
        {"WebSocket upgrade",
         "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         0,
         "154 GET /ws origin auth=a path=/ws host=a v=1.1 body=none cl=0 flags=0x3d "
         "up=websocket [Host: a] [Connection: keep-alive, Upgrade hop] [Upgrade: websocket hop] "
         "[Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==] [Sec-WebSocket-Version: 13]"},
        {"Upgrade without Connection: upgrade is ignored",
         "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n", 0,
         "41 GET / origin auth=a path=/ host=a v=1.1 body=none cl=0 flags=0x1 up=h2c "
         "[Host: a] [Upgrade: h2c hop]"},
        {"Connection: close + listed names are hop-by-hop",
         "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Hop, host\r\nX-Hop: 1\r\nX-Keep: 2\r\n"
         "Keep-Alive: timeout=5\r\nProxy-Connection: x\r\nTE: trailers\r\nTrailer: x\r\n\r\n",
         0,
         "150 GET / origin auth=a path=/ host=a v=1.1 body=none cl=0 flags=0x602 up=(null) "
         "[Host: a] [Connection: close, X-Hop, host hop] [X-Hop: 1 hop] [X-Keep: 2] "
         "[Keep-Alive: timeout=5 hop] [Proxy-Connection: x hop] [TE: trailers hop] "
         "[Trailer: x hop]"},
        {"identical Content-Length merged",
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nContent-Length: 005\r\n\r\n", 0,
         "71 POST / origin auth=a path=/ host=a v=1.1 body=length cl=5 flags=0x1 up=(null) "
         "[Host: a] [Content-Length: 5, 5] [Content-Length: 005]"},
        {"largest Content-Length",
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", 0,
         "65 POST / origin auth=a path=/ host=a v=1.1 body=length cl=9223372036854775807 "
         "flags=0x1 up=(null) [Host: a] [Content-Length: 9223372036854775807]"},
        {"obs-text in a value, IPv6 Host, custom method",
         "PURGE /c HTTP/1.1\r\nHost: [::1]:80\r\nX-Name: caf\xc3\xa9\r\n\r\n", 0,
         "52 PURGE /c origin auth=[::1]:80 path=/c host=[::1]:80 v=1.1 body=none cl=0 "
         "flags=0x1 up=(null) [Host: [::1]:80] [X-Name: caf\xc3\xa9]"},
        {"empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 0,
         "25 GET / origin auth= path=/ host= v=1.1 body=none cl=0 flags=0x1 up=(null) "
         "[Host: ]"},
        {"pipelined tail is not consumed", "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\n",
         27,
         "27 GET / origin auth=a path=/ host=a v=1.1 body=none cl=0 flags=0x1 up=(null) "
         "[Host: a]"},
    };
    char want[4096];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct req_case *c = &cases[i];
        size_t n = strlen(c->raw);
        ssize_t rc = check_feeds(c->name, 0, c->raw, n, want, sizeof(want));
        is_int(rc, c->head_len ? c->head_len : n, c->name);
        is_str(want, c->want, c->name);
    }
}

/* ---- valid responses ---- */

struct resp_case {
    const char *name;
    const char *raw;
    enum h1_method method;
    size_t head_len;
    const char *want;
};

static void test_valid_responses(void)
{
    static const struct resp_case cases[] = {
        {"200 Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", H1_M_GET, 38,
         "38 200 [OK] v=1.1 body=length cl=2 flags=0x1 up=(null) [Content-Length: 2]"},
        {"200 chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", H1_M_GET, 0,
         "47 200 [OK] v=1.1 body=chunked cl=0 flags=0x101 up=(null) "
         "[Transfer-Encoding: chunked hop]"},
        {"200 close-delimited", "HTTP/1.1 200 OK\r\nServer: x\r\n\r\nbody...", H1_M_GET, 30,
         "30 200 [OK] v=1.1 body=close cl=0 flags=0 up=(null) [Server: x]"},
        {"204 ignores Content-Length", "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
         H1_M_DELETE, 0,
         "46 204 [No Content] v=1.1 body=none cl=0 flags=0x1 up=(null) [Content-Length: 7]"},
        {"304 has no body", "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", H1_M_GET, 0,
         "50 304 [Not Modified] v=1.1 body=none cl=0 flags=0x1 up=(null) "
         "[Content-Length: 100]"},
        {"HEAD response has no body", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", H1_M_HEAD,
         0, "40 200 [OK] v=1.1 body=none cl=0 flags=0x1 up=(null) [Content-Length: 100]"},
        {"100 Continue is interim", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", H1_M_PUT,
         25, "25 100 [Continue] v=1.1 body=none cl=0 flags=0x1 up=(null)"},
        {"103 Early Hints", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
         H1_M_GET, 0,
         "57 103 [Early Hints] v=1.1 body=none cl=0 flags=0x1 up=(null) "
         "[Link: </s.css>; rel=preload]"},
        {"101 Switching Protocols",
         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         H1_M_GET, 0,
         "129 101 [Switching Protocols] v=1.1 body=tunnel cl=0 flags=0x38 up=websocket "
         "[Upgrade: websocket hop] [Connection: Upgrade hop] "
         "[Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=]"},
        {"2xx to CONNECT is a tunnel", "HTTP/1.1 200 Connection Established\r\n\r\n", H1_M_CONNECT,
         0, "39 200 [Connection Established] v=1.1 body=tunnel cl=0 flags=0 up=(null)"},
        {"407 to CONNECT has a body",
         "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n", H1_M_CONNECT, 0,
         "65 407 [Proxy Authentication Required] v=1.1 body=length cl=0 flags=0x1 up=(null) "
         "[Content-Length: 0]"},
        {"HTTP/1.0 response", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", H1_M_GET, 0,
         "38 200 [OK] v=1.0 body=length cl=1 flags=0 up=(null) [Content-Length: 1]"},
        {"HTTP/1.0 keep-alive response",
         "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", H1_M_GET, 0,
         "62 200 [OK] v=1.0 body=length cl=1 flags=0x5 up=(null) "
         "[Connection: keep-alive hop] [Content-Length: 1]"},
        {"Connection: close response",
         "HTTP/1.1 500 Oops\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", H1_M_POST, 0,
         "59 500 [Oops] v=1.1 body=length cl=0 flags=0x2 up=(null) [Connection: close hop] "
         "[Content-Length: 0]"},
        {"no SP, no reason", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", H1_M_GET, 0,
         "35 200 [] v=1.1 body=length cl=0 flags=0x1 up=(null) [Content-Length: 0]"},
        {"empty reason, obs-text reason", "HTTP/1.1 404 \xe2\x9c\x97 nope\r\n\r\n", H1_M_GET, 0,
         "25 404 [\xe2\x9c\x97 nope] v=1.1 body=close cl=0 flags=0 up=(null)"},
    };
    char want[4096];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct resp_case *c = &cases[i];
        size_t n = strlen(c->raw);
        ssize_t rc = check_feeds(c->name, 1 + (int)c->method, c->raw, n, want, sizeof(want));
        is_int(rc, c->head_len ? c->head_len : n, c->name);
        is_str(want, c->want, c->name);
    }
}

/* ---- chunked decoder ---- */

static struct h1_header trailer_hdrs[NHDR];

/*
 * Decodes body[0..n) as a caller would: bytes arrive in steps (cut[0], cut[1], ... then
 * all; step 0: one byte at a time), unconsumed bytes stay in front of the next arrival.
 * Writes "data=<...> trailers=[...] used=N state" or "error <name> ..." to sum.
 */
static void chunked_run(const char *body, size_t n, size_t step, const size_t *cuts, size_t ncuts,
                        size_t max_ext, char *sum, size_t cap)
{
    struct h1_decoder d;
    char data[8192];
    size_t dlen = 0, off = 0, avail = 0, ci = 0;
    char tr[2048] = "";
    ssize_t rc = 0;
    bool offered_all = false;

    h1_decoder_init(&d, H1_BODY_CHUNKED, 0);
    d.trailers = trailer_hdrs;
    d.trailers_cap = NHDR;
    d.max_chunk_ext = max_ext;
    while (!h1_decoder_is_done(&d)) {
        if (avail == n && offered_all)
            break; /* all bytes offered and the decoder wants more */
        offered_all = avail == n;
        if (avail < n) {
            if (step)
                avail = avail + step < n ? avail + step : n;
            else
                avail = ci < ncuts && cuts[ci] < n ? cuts[ci++] : n;
        }
        if (avail < off)
            avail = off;
        for (;;) {
            const char *dp;
            size_t dl;
            const char *in = guard_put(body + off, avail - off);
            rc = h1_decoder_feed(&d, in, avail - off, &dp, &dl);
            if (rc < 0)
                break;
            if (dl && dlen + dl <= sizeof(data)) {
                memcpy(data + dlen, dp, dl);
                dlen += dl;
            }
            off += (size_t)rc;
            if (h1_decoder_is_done(&d)) {
                size_t o = 0;
                for (size_t i = 0; i < d.num_trailers; i++)
                    o += (size_t)snprintf(tr + o, sizeof(tr) - o, "[%.*s: %.*s]",
                                          (int)trailer_hdrs[i].name_len, trailer_hdrs[i].name,
                                          (int)trailer_hdrs[i].value_len, trailer_hdrs[i].value);
                break;
            }
            if (off == avail || rc == 0)
                break;
        }
        if (rc < 0 && rc != -EAGAIN)
            break;
    }
    if (rc < 0 && rc != -EAGAIN)
        snprintf(sum, cap, "error %s", h1_error_str((int)rc));
    else
        snprintf(sum, cap, "data=%.*s trailers=%s used=%zu %s total=%llu", (int)dlen, data, tr, off,
                 h1_state_str(d.state), (unsigned long long)d.total);
}

static void check_chunked(const char *name, const char *body, size_t n, const char *want)
{
    char got[8192], whole[8192];
    size_t bad = (size_t)-1;

    chunked_run(body, n, 0, NULL, 0, 0, whole, sizeof(whole));
    is_str(whole, want, name);
    for (size_t k = 0; k <= n && bad == (size_t)-1; k++) {
        chunked_run(body, n, 0, &k, 1, 0, got, sizeof(got));
        if (strcmp(got, whole) != 0)
            bad = k;
    }
    if (!ok(bad == (size_t)-1, "%s: chunked, every split point", name))
        printf("#   split %zu: got '%s'\n", bad, got);
    for (size_t a = 0; a <= n && bad == (size_t)-1; a += 3) {
        for (size_t b = a; b <= n && bad == (size_t)-1; b += 5) {
            size_t cuts[2] = {a, b};
            chunked_run(body, n, 0, cuts, 2, 0, got, sizeof(got));
            if (strcmp(got, whole) != 0)
                bad = a * 10000 + b;
        }
    }
    if (!ok(bad == (size_t)-1, "%s: chunked, pairs of split points", name))
        printf("#   split %zu: got '%s'\n", bad, got);
    chunked_run(body, n, 1, NULL, 0, 0, got, sizeof(got));
    if (!ok(strcmp(got, whole) == 0, "%s: chunked, byte by byte", name))
        printf("#   got '%s'\n", got);
}

#define CHK(name, body, want) check_chunked(name, body, sizeof(body) - 1, want)

static void test_chunked(void)
{
    CHK("one chunk", "5\r\nhello\r\n0\r\n\r\n", "data=hello trailers= used=15 done total=5");
    CHK("several chunks, hex sizes",
        "1\r\na\r\nA\r\n0123456789\r\n1f\r\nabcdefghijklmnopqrstuvwxyz01234\r\n0\r\n\r\n",
        "data=a0123456789abcdefghijklmnopqrstuvwxyz01234 trailers= used=63 done total=42");
    CHK("extensions and BWS", "4;name=value;q=\"a b\"\r\nwiki\r\n5 ; x\r\npedia\r\n000\r\n\r\n",
        "data=wikipedia trailers= used=49 done total=9");
    CHK("leading zeros within 16 digits", "0000000000000003\r\nabc\r\n0\r\n\r\n",
        "data=abc trailers= used=28 done total=3");
    CHK("trailers", "3\r\nabc\r\n0\r\nGrpc-Status: 0\r\nGrpc-Message:  ok \r\n\r\n",
        "data=abc trailers=[Grpc-Status: 0][Grpc-Message: ok] used=49 done total=3");
    CHK("empty body with trailer", "0\r\nX: 1\r\n\r\n",
        "data= trailers=[X: 1] used=11 done total=0");
    CHK("stops at its end", "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
        "data=hi trailers= used=12 done total=2");
    CHK("incomplete trailers wait", "2\r\nhi\r\n0\r\nX: 1\r\n",
        "data=hi trailers= used=10 trailers total=2");
    CHK("incomplete data waits", "a\r\nhello", "data=hello trailers= used=8 chunk_data total=5");
}

/* ---- Content-Length and close-delimited bodies ---- */

static void test_length_and_close(void)
{
    struct h1_decoder d;
    const char *dp;
    size_t dl;

    h1_decoder_init(&d, H1_BODY_LENGTH, 10);
    is_str(h1_state_str(d.state), "length", "CL decoder starts counting");
    is_int(h1_decoder_feed(&d, guard_put("0123", 4), 4, &dp, &dl), 4, "CL: 4 of 10 consumed");
    is_int(dl, 4, "CL: 4 data bytes");
    is_int(h1_decoder_feed(&d, guard_put("456789GET", 9), 9, &dp, &dl), 6,
           "CL: stops at its end, next message untouched");
    ok(dl == 6 && memcmp(dp, "456789", 6) == 0, "CL: the right 6 bytes");
    ok(h1_decoder_is_done(&d), "CL: done");
    is_int(h1_decoder_feed(&d, guard_put("GET", 3), 3, &dp, &dl), 0, "CL: done consumes nothing");
    is_int(h1_decoder_eof(&d), 0, "CL: eof after the end is clean");

    h1_decoder_init(&d, H1_BODY_LENGTH, 10);
    h1_decoder_feed(&d, guard_put("0123", 4), 4, &dp, &dl);
    is_int(h1_decoder_eof(&d), -H1_E_BODY_TRUNCATED, "CL: eof before the end is truncation");
    is_int(h1_decoder_feed(&d, guard_put("x", 1), 1, &dp, &dl), -H1_E_BODY_TRUNCATED,
           "decoder: an error sticks");

    h1_decoder_init(&d, H1_BODY_LENGTH, 0);
    ok(h1_decoder_is_done(&d), "CL 0: done at once");
    h1_decoder_init(&d, H1_BODY_NONE, 0);
    ok(h1_decoder_is_done(&d), "no body: done at once");

    h1_decoder_init(&d, H1_BODY_CLOSE, 0);
    is_int(h1_decoder_feed(&d, guard_put("abc", 3), 3, &dp, &dl), 3, "close: takes everything");
    ok(!h1_decoder_is_done(&d), "close: not done before eof");
    is_int(h1_decoder_eof(&d), 0, "close: eof ends it cleanly");
    ok(h1_decoder_is_done(&d), "close: done after eof");

    h1_decoder_init(&d, H1_BODY_CHUNKED, 0);
    h1_decoder_feed(&d, guard_put("5\r\nhel", 6), 6, &dp, &dl);
    is_int(h1_decoder_eof(&d), -H1_E_BODY_TRUNCATED, "chunked: eof mid-chunk is truncation");

    /* A Content-Length body fed byte by byte: counts exactly. */
    h1_decoder_init(&d, H1_BODY_LENGTH, 300);
    size_t total = 0, calls = 0;
    while (!h1_decoder_is_done(&d)) {
        ssize_t rc = h1_decoder_feed(&d, guard_put("z", 1), 1, &dp, &dl);
        total += dl;
        calls++;
        if (rc != 1)
            break;
    }
    ok(total == 300 && calls == 300 && d.total == 300, "CL: byte by byte counts 300");
}

/* ---- malformed input: exact errors ---- */

enum { REQ, RESP, CHUNK };

struct bad_case {
    int kind;
    const char *in;
    size_t len;
    int err;
    const char *err_name;
};

#define BAD(kind, s, e)                                                                            \
    {                                                                                              \
        kind, s, sizeof(s) - 1, e, #e                                                              \
    }
#define RL "GET / HTTP/1.1\r\nHost: a\r\n"
#define PL "POST / HTTP/1.1\r\nHost: a\r\n"
#define SL "HTTP/1.1 200 OK\r\n"

static const struct bad_case bad_cases[] = {
    /* framing: the classic smuggling shapes */
    BAD(REQ, PL "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", H1_E_CL_AND_TE),
    BAD(REQ, PL "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", H1_E_CL_AND_TE),
    BAD(REQ, PL "Transfer-Encoding: gzip\r\n\r\n", H1_E_TE_NOT_CHUNKED_LAST),
    BAD(REQ, PL "Transfer-Encoding: chunked, gzip\r\n\r\n", H1_E_TE_NOT_CHUNKED_LAST),
    BAD(REQ, PL "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
        H1_E_TE_NOT_CHUNKED_LAST),
    BAD(REQ, PL "Transfer-Encoding: xchunked\r\n\r\n", H1_E_TE_NOT_CHUNKED_LAST),
    BAD(REQ, PL "Transfer-Encoding: gzip, chunked\r\n\r\n", H1_E_TE_UNKNOWN),
    BAD(REQ, PL "Transfer-Encoding: foo, chunked\r\n\r\n", H1_E_TE_UNKNOWN),
    BAD(REQ, PL "Transfer-Encoding: chunked, chunked\r\n\r\n", H1_E_TE_CHUNKED_TWICE),
    BAD(REQ, PL "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        H1_E_TE_CHUNKED_TWICE),
    BAD(REQ, PL "Transfer-Encoding: chunked;q=1\r\n\r\n", H1_E_TE_INVALID),
    BAD(REQ, PL "Transfer-Encoding:\r\n\r\n", H1_E_TE_INVALID),
    BAD(REQ, PL "Transfer-Encoding: \"chunked\"\r\n\r\n", H1_E_TE_INVALID),
    BAD(REQ, PL "Transfer-Encoding: chunked x\r\n\r\n", H1_E_TE_INVALID),
    BAD(REQ, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", H1_E_TE_HTTP10),
    BAD(REQ, PL "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", H1_E_CL_MULTIPLE),
    BAD(REQ, PL "Content-Length: 5, 6\r\n\r\n", H1_E_CL_MULTIPLE),
    BAD(REQ, PL "Content-Length: +5\r\n\r\n", H1_E_CL_INVALID),
    BAD(REQ, PL "Content-Length: -5\r\n\r\n", H1_E_CL_INVALID),
    BAD(REQ, PL "Content-Length: 5 5\r\n\r\n", H1_E_CL_INVALID),
    BAD(REQ, PL "Content-Length: 0x5\r\n\r\n", H1_E_CL_INVALID),
    BAD(REQ, PL "Content-Length: 5.0\r\n\r\n", H1_E_CL_INVALID),
    BAD(REQ, PL "Content-Length:\r\n\r\n", H1_E_CL_INVALID),
    BAD(REQ, PL "Content-Length: 5,\r\n\r\n", H1_E_CL_INVALID),
    BAD(REQ, PL "Content-Length: 99999999999999999999\r\n\r\n", H1_E_CL_INVALID),
    BAD(REQ, PL "Content-Length: 9223372036854775808\r\n\r\n", H1_E_CL_INVALID),
    /* field syntax */
    BAD(REQ, RL "X: a\r\n b\r\n\r\n", H1_E_OBS_FOLD),
    BAD(REQ, RL "X: a\r\n\tb\r\n\r\n", H1_E_OBS_FOLD),
    BAD(REQ, "GET / HTTP/1.1\r\n Host: a\r\n\r\n", H1_E_OBS_FOLD),
    BAD(REQ, "GET / HTTP/1.1\r\nHost : a\r\n\r\n", H1_E_SPACE_BEFORE_COLON),
    BAD(REQ, PL "Content-Length\t: 5\r\n\r\n", H1_E_SPACE_BEFORE_COLON),
    BAD(REQ, RL "X Y: a\r\n\r\n", H1_E_SPACE_BEFORE_COLON),
    BAD(REQ, RL "X(y): a\r\n\r\n", H1_E_BAD_HEADER_NAME),
    BAD(REQ, RL ": a\r\n\r\n", H1_E_BAD_HEADER_NAME),
    BAD(REQ, RL "X-\xc3\xa9: a\r\n\r\n", H1_E_BAD_HEADER_NAME),
    BAD(REQ, RL "X\x01: a\r\n\r\n", H1_E_BAD_HEADER_NAME),
    BAD(REQ, RL "NoColon\r\n\r\n", H1_E_NO_COLON),
    BAD(REQ, RL "X: a\0b\r\n\r\n", H1_E_BAD_HEADER_VALUE),
    BAD(REQ, RL "X: a\x01\r\n\r\n", H1_E_BAD_HEADER_VALUE),
    BAD(REQ, RL "X: a\x7f\r\n\r\n", H1_E_BAD_HEADER_VALUE),
    BAD(REQ, RL "X: a\x1b[0m\r\n\r\n", H1_E_BAD_HEADER_VALUE),
    BAD(REQ, RL "X: a\rb\r\n\r\n", H1_E_BARE_CR),
    BAD(REQ, RL "X: a\r\r\n\r\n", H1_E_BARE_CR),
    BAD(REQ, RL "X: a\nY: b\r\n\r\n", H1_E_BARE_LF),
    BAD(REQ, "GET / HTTP/1.1\nHost: a\n\n", H1_E_BARE_LF),
    BAD(REQ, RL "\n", H1_E_BARE_LF),
    BAD(REQ, RL "\r\r", H1_E_BARE_CR),
    BAD(REQ, "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BARE_LF),
    BAD(REQ, "\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BARE_CR),
    BAD(REQ,
        RL "Connection: a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p\r\n"
           "Connection: q,r,s,t,u,v,w,x,y,z,A,B,C,D,E,F,G\r\n\r\n",
        H1_E_CONN_OPTIONS),
    /* Host */
    BAD(REQ, "GET / HTTP/1.1\r\nX: a\r\n\r\n", H1_E_HOST_MISSING),
    BAD(REQ, "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", H1_E_HOST_MULTIPLE),
    BAD(REQ, "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", H1_E_HOST_MULTIPLE),
    BAD(REQ, "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", H1_E_BAD_HOST),
    BAD(REQ, "GET / HTTP/1.1\r\nHost: user@evil\r\n\r\n", H1_E_BAD_HOST),
    BAD(REQ, "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", H1_E_BAD_HOST),
    BAD(REQ, "GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", H1_E_BAD_HOST),
    BAD(REQ, "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", H1_E_BAD_HOST),
    /* request-line */
    BAD(REQ, "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
    BAD(REQ, "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
    BAD(REQ, "GET /a\0 HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
    BAD(REQ, "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
    BAD(REQ, "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_VERSION),
    BAD(REQ, "GET * HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
    BAD(REQ, "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
    BAD(REQ, "CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
    BAD(REQ, "GET http://user@h/ HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
    BAD(REQ, "GET http:/x HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
    BAD(REQ, "GET foo HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BAD_TARGET),
    BAD(REQ, "GET /\r\n", H1_E_HTTP09),
    BAD(REQ, "GET /\r\n\r\n", H1_E_HTTP09),
    BAD(REQ, "GET / HTTP/2.0\r\n", H1_E_VERSION_UNSUPPORTED),
    BAD(REQ, "GET / HTTP/1.2\r\nHost: a\r\n\r\n", H1_E_VERSION_UNSUPPORTED),
    BAD(REQ, "GET / HTTP/0.9\r\nHost: a\r\n\r\n", H1_E_VERSION_UNSUPPORTED),
    BAD(REQ, "GET / HTTP/1.10\r\n", H1_E_BAD_VERSION),
    BAD(REQ, "GET / http/1.1\r\n", H1_E_BAD_VERSION),
    BAD(REQ, "GET / HTTP/1\r\n", H1_E_BAD_VERSION),
    BAD(REQ, "GET / HTTP/1.1 \r\n", H1_E_BAD_REQUEST_LINE),
    BAD(REQ, "GET  / HTTP/1.1\r\n", H1_E_BAD_REQUEST_LINE),
    BAD(REQ, "GET\r\n", H1_E_BAD_REQUEST_LINE),
    BAD(REQ, "G@T / HTTP/1.1\r\n", H1_E_BAD_METHOD),
    BAD(REQ, " GET / HTTP/1.1\r\n", H1_E_BAD_METHOD),
    BAD(REQ, "GET / HTTP/1.1\rX", H1_E_BARE_CR),
    BAD(REQ, "GET / HTTP/1.1\n", H1_E_BARE_LF),
    BAD(REQ, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", H1_E_BAD_METHOD),
    BAD(REQ, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", H1_E_VERSION_UNSUPPORTED),
    /* responses */
    BAD(RESP, "HTTP/1.1 20 OK\r\n\r\n", H1_E_BAD_STATUS),
    BAD(RESP, "HTTP/1.1 2000 OK\r\n\r\n", H1_E_BAD_STATUS),
    BAD(RESP, "HTTP/1.1 099 X\r\n\r\n", H1_E_BAD_STATUS),
    BAD(RESP, "HTTP/1.1 600 X\r\n\r\n", H1_E_BAD_STATUS),
    BAD(RESP, "HTTP/1.1  200 OK\r\n\r\n", H1_E_BAD_STATUS),
    BAD(RESP, "HTTP/2 200\r\n\r\n", H1_E_BAD_STATUS_LINE),
    BAD(RESP, "HTTP/2.0 200 OK\r\n\r\n", H1_E_VERSION_UNSUPPORTED),
    BAD(RESP, "ICY 200 OK\r\n\r\n", H1_E_BAD_STATUS_LINE),
    BAD(RESP, "\r\nHTTP/1.1 200 OK\r\n\r\n", H1_E_BAD_STATUS_LINE),
    BAD(RESP, "HTTP/1.1 200 O\x01K\r\n\r\n", H1_E_BAD_STATUS_LINE),
    BAD(RESP, "HTTP/1.1 200OK\r\n\r\n", H1_E_BAD_STATUS_LINE),
    BAD(RESP, SL "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", H1_E_CL_AND_TE),
    BAD(RESP, SL "Transfer-Encoding: gzip\r\n\r\n", H1_E_TE_UNKNOWN),
    BAD(RESP, "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", H1_E_TE_HTTP10),
    BAD(RESP, SL "Content-Length: 1\r\nContent-Length: 2\r\n\r\n", H1_E_CL_MULTIPLE),
    BAD(RESP, SL "X: a\r\n b\r\n\r\n", H1_E_OBS_FOLD),
    BAD(RESP, SL "X: a\nY: b\r\n\r\n", H1_E_BARE_LF),
    /* chunked bodies */
    BAD(CHUNK, "g\r\n", H1_E_CHUNK_SIZE),
    BAD(CHUNK, "\r\n", H1_E_CHUNK_SIZE),
    BAD(CHUNK, " 5\r\nhello\r\n0\r\n\r\n", H1_E_CHUNK_SIZE),
    BAD(CHUNK, "-5\r\n", H1_E_CHUNK_SIZE),
    BAD(CHUNK, "0x5\r\n", H1_E_CHUNK_SIZE),
    BAD(CHUNK, "5 \r\nhello\r\n0\r\n\r\n", H1_E_CHUNK_SIZE),
    BAD(CHUNK, "5 x\r\n", H1_E_CHUNK_SIZE),
    BAD(CHUNK, "11111111111111111\r\n", H1_E_CHUNK_SIZE_OVERFLOW),
    BAD(CHUNK, "00000000000000000\r\n", H1_E_CHUNK_SIZE_OVERFLOW),
    BAD(CHUNK, "fffffffffffffffff\r\n", H1_E_CHUNK_SIZE_OVERFLOW),
    BAD(CHUNK, "5\nhello\r\n", H1_E_BARE_LF),
    BAD(CHUNK, "\n", H1_E_BARE_LF),
    BAD(CHUNK, "5\rXhello\r\n", H1_E_BARE_CR),
    BAD(CHUNK, "5;a\x01\r\nhello\r\n", H1_E_CHUNK_EXT),
    BAD(CHUNK, "5;a\0\r\nhello\r\n", H1_E_CHUNK_EXT),
    BAD(CHUNK, "5;a\nhello\r\n", H1_E_BARE_LF),
    BAD(CHUNK, "5;a=\"x\ry\"\r\nhello\r\n", H1_E_BARE_CR),
    BAD(CHUNK, "5\r\nhelloX\r\n", H1_E_CHUNK_DATA_CRLF),
    BAD(CHUNK, "5\r\nhello\n0\r\n\r\n", H1_E_CHUNK_DATA_CRLF),
    BAD(CHUNK, "5\r\nhello\r0\r\n\r\n", H1_E_CHUNK_DATA_CRLF),
    BAD(CHUNK, "0\r\nX: a\nY: b\r\n\r\n", H1_E_BARE_LF),
    BAD(CHUNK, "0\r\n\n", H1_E_BARE_LF),
    BAD(CHUNK, "0\r\nX: a\r\n b\r\n\r\n", H1_E_OBS_FOLD),
    BAD(CHUNK, "0\r\n b\r\n\r\n", H1_E_OBS_FOLD),
    BAD(CHUNK, "0\r\nX : a\r\n\r\n", H1_E_SPACE_BEFORE_COLON),
    BAD(CHUNK, "0\r\nX: \0\r\n\r\n", H1_E_BAD_HEADER_VALUE),
    BAD(CHUNK, "0\r\nX\r\n\r\n", H1_E_NO_COLON),
};

/* First error of a request/response fed byte by byte (buffer moved each time). */
static ssize_t bytewise_head(int kind, const char *s, size_t n)
{
    struct h1_parser p;
    char sum[4096];
    ssize_t rc = -EAGAIN;
    h1_parser_init(&p, NULL);
    for (size_t k = 1; k <= n && rc == -EAGAIN; k++)
        rc = parse_any(&p, kind, s, k, sum, sizeof(sum));
    return rc;
}

/* "1;" + xs 'x' + a one-byte chunk and the last chunk; returns its length. */
static size_t ext_body(char *body, size_t xs)
{
    memcpy(body, "1;", 2);
    memset(body + 2, 'x', xs);
    memcpy(body + 2 + xs, "\r\na\r\n0\r\n\r\n", 10);
    return 2 + xs + 10;
}

static void test_bad_inputs(void)
{
    char sum[4096], name[128];
    size_t n = sizeof(bad_cases) / sizeof(bad_cases[0]);
    int distinct[H1_E__COUNT] = {0};

    ok(n >= 40, "at least 40 malformed inputs (%zu)", n);
    for (size_t i = 0; i < n; i++) {
        const struct bad_case *c = &bad_cases[i];
        ssize_t whole, bytewise;
        struct h1_parser p;

        snprintf(name, sizeof(name), "bad #%zu %s -> %s", i,
                 c->kind == REQ    ? "request"
                 : c->kind == RESP ? "response"
                                   : "chunked",
                 h1_error_str(c->err));
        if (c->kind == CHUNK) {
            char want[128];
            snprintf(want, sizeof(want), "error %s", h1_error_str(c->err));
            chunked_run(c->in, c->len, 0, NULL, 0, 0, sum, sizeof(sum));
            is_str(sum, want, name);
            chunked_run(c->in, c->len, 1, NULL, 0, 0, sum, sizeof(sum));
            is_str(sum, want, "  ... and byte by byte");
        } else {
            int kind = c->kind == REQ ? 0 : 1 + H1_M_GET;
            h1_parser_init(&p, NULL);
            whole = parse_any(&p, kind, c->in, c->len, sum, sizeof(sum));
            if (!ok(whole == -c->err, "%s", name))
                printf("#   got %s (%zd)\n", sum, whole);
            bytewise = bytewise_head(kind, c->in, c->len);
            if (!ok(bytewise == -c->err, "  ... and byte by byte"))
                printf("#   got %s\n", h1_error_str((int)bytewise));
        }
        if (c->err >= H1_E_HEAD_TOO_LARGE && c->err < H1_E__COUNT)
            distinct[c->err]++;
    }
    int kinds = 0;
    for (int e = H1_E_HEAD_TOO_LARGE; e < H1_E__COUNT; e++)
        kinds += distinct[e] > 0;
    ok(kinds >= 30, "the table covers %d distinct errors", kinds);

    /* Extensions: bounded per chunk (";" included), the limit itself passes. */
    static char body[9000];
    size_t bl = ext_body(body, 4095);
    chunked_run(body, bl, 0, NULL, 0, 0, sum, sizeof(sum));
    is_str(sum, "data=a trailers= used=4107 done total=1", "chunk extension of 4096 bytes passes");
    bl = ext_body(body, 4096);
    chunked_run(body, bl, 0, NULL, 0, 0, sum, sizeof(sum));
    is_str(sum, "error chunk_ext_too_long", "chunk extension of 4097 bytes is refused");
    chunked_run(body, bl, 1, NULL, 0, 0, sum, sizeof(sum));
    is_str(sum, "error chunk_ext_too_long", "  ... and byte by byte");
    chunked_run(body, bl, 0, NULL, 0, 8192, sum, sizeof(sum));
    is_str(sum, "data=a trailers= used=4108 done total=1", "max_chunk_ext raises the limit");
    bl = ext_body(body, 8192);
    chunked_run(body, bl, 0, NULL, 0, 8192, sum, sizeof(sum));
    is_str(sum, "error chunk_ext_too_long", "  ... and still bounds it");
}

/* ---- limits ---- */

static void test_limits(void)
{
    struct h1_parser p;
    struct h1_limits lim = {.max_head_len = 64, .max_headers = 3};
    struct h1_request r;
    char buf[70000];
    const char *exact = "GET /aaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\nX: 1234567\r\n\r\n";

    is_int(strlen(exact), 64, "a 64-byte head");
    h1_parser_init(&p, &lim);
    is_int(parse_req(&p, exact, 64, &r), 64, "head of exactly max_head_len passes");
    h1_parser_init(&p, &lim);
    is_int(parse_req(&p,
                     "GET /aaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\nX: 1234567\r\n\r\n",
                     65, &r),
           -H1_E_HEAD_TOO_LARGE, "one byte over max_head_len: head_too_large");
    h1_parser_init(&p, &lim);
    ssize_t rc = -EAGAIN;
    size_t k;
    for (k = 1; k <= 200 && rc == -EAGAIN; k++) {
        memset(buf, 'a', k);
        memcpy(buf, "GET /", 5);
        rc = parse_req(&p, buf, k, &r);
    }
    ok(rc == -H1_E_HEAD_TOO_LARGE && k - 1 == 64,
       "an endless request-line fails at max_head_len bytes (%zu)", k - 1);
    h1_parser_init(&p, &lim);
    memset(buf, 0, sizeof(buf));
    for (k = 0; k < 100; k += 2)
        memcpy(buf + k, "\r\n", 2);
    is_int(parse_req(&p, buf, 100, &r), -H1_E_HEAD_TOO_LARGE,
           "empty lines count towards the limit");

    h1_parser_init(&p, &lim);
    is_int(parse_req(&p, "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 1\r\n\r\n", 39, &r), 39,
           "max_headers fields pass");
    h1_parser_init(&p, &lim);
    is_int(parse_req(&p, "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 1\r\nD:\r\n", 41, &r),
           -H1_E_TOO_MANY_HEADERS, "one more field: too_many_headers, before the head ends");
    h1_parser_init(&p, NULL);
    memset(&r, 0, sizeof(r));
    r.msg.headers = hdrs;
    r.msg.headers_cap = 1;
    const char *two = "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\n\r\n";
    is_int(h1_parse_request(&p, guard_put(two, strlen(two)), strlen(two), &r),
           -H1_E_TOO_MANY_HEADERS, "the caller's array bounds the fields too");

    /* Defaults: 100 fields pass, 101 fail; a 64 KiB head passes, one byte more fails. */
    size_t o = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 100; i++)
        o += (size_t)sprintf(buf + o, "H%d: v\r\n", i);
    struct h1_header many[128];
    memset(&r, 0, sizeof(r));
    r.msg.headers = many;
    r.msg.headers_cap = 128;
    h1_parser_init(&p, NULL);
    memcpy(buf + o, "\r\n", 2);
    is_int(h1_parse_request(&p, guard_put(buf, o + 2), o + 2, &r), -H1_E_HOST_MISSING,
           "100 fields: parsed (then host_missing)");
    o += (size_t)sprintf(buf + o, "Host: a\r\n\r\n");
    h1_parser_init(&p, NULL);
    is_int(h1_parse_request(&p, guard_put(buf, o), o, &r), -H1_E_TOO_MANY_HEADERS,
           "101 fields: too_many_headers");

    o = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    size_t fill = H1_DEFAULT_MAX_HEAD_LEN - o - 4;
    memset(buf + o, 'v', fill);
    o += fill;
    memcpy(buf + o, "\r\n\r\n", 4);
    o += 4;
    h1_parser_init(&p, NULL);
    r.msg.headers = hdrs;
    r.msg.headers_cap = NHDR;
    is_int(h1_parse_request(&p, guard_put(buf, o), o, &r), H1_DEFAULT_MAX_HEAD_LEN,
           "a 64 KiB head passes");

    /* Byte by byte, the scan resumes where it stopped: each call looks at new bytes only
     * (the parser remembers how far it scanned), so the feed is linear. */
    bool linear = true;
    h1_parser_init(&p, NULL);
    for (k = 1; k < o; k++) {
        rc = h1_parse_request(&p, buf, k, &r);
        if (rc != -EAGAIN || p.scanned + 1 < k) /* a trailing CR waits for its LF */
            linear = false;
    }
    rc = h1_parse_request(&p, buf, o, &r);
    ok(linear && rc == (ssize_t)o, "64 KiB head byte by byte: every byte scanned once");
    memmove(buf + o - 3, buf + o - 4, 4);
    buf[o - 4] = 'v';
    h1_parser_init(&p, NULL);
    is_int(h1_parse_request(&p, guard_put(buf, o + 1), o + 1, &r), -H1_E_HEAD_TOO_LARGE,
           "64 KiB + 1: head_too_large");
}

/* ---- helpers ---- */

static void test_helpers(void)
{
    ok(h1_is_hop_by_hop_name("Connection", 10) && h1_is_hop_by_hop_name("KEEP-ALIVE", 10) &&
           h1_is_hop_by_hop_name("proxy-connection", 16) && h1_is_hop_by_hop_name("te", 2) &&
           h1_is_hop_by_hop_name("Trailer", 7) && h1_is_hop_by_hop_name("Transfer-Encoding", 17) &&
           h1_is_hop_by_hop_name("upgrade", 7),
       "the seven hop-by-hop names");
    ok(!h1_is_hop_by_hop_name("Host", 4) && !h1_is_hop_by_hop_name("Trailers", 8) &&
           !h1_is_hop_by_hop_name("Content-Length", 14),
       "others are end-to-end");
    ok(h1_list_has_token(" a ,\tClose , b", 14, "close", 5), "list: token found, OWS, case");
    ok(!h1_list_has_token("closed, xclose", 14, "close", 5), "list: no partial matches");
    ok(!h1_list_has_token("", 0, "close", 5), "list: empty");

    struct h1_parser p;
    struct h1_request r;
    h1_parser_init(&p, NULL);
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\nX-Id: 7\r\n\r\n";
    parse_req(&p, s, strlen(s), &r);
    const struct h1_header *h = h1_find_header(&r.msg, "x-id", 4);
    ok(h && h->value_len == 1 && h->value[0] == '7', "find_header: case-insensitive");
    ok(!h1_find_header(&r.msg, "x-i", 3), "find_header: exact length");

    is_int(h1_method_id("GET", 3), H1_M_GET, "method GET");
    is_int(h1_method_id("get", 3), H1_M_OTHER, "methods are case-sensitive");
    is_int(h1_method_id("CONNECT", 7), H1_M_CONNECT, "method CONNECT");
    is_int(h1_method_id("PATCH", 5), H1_M_PATCH, "method PATCH");

    bool names_ok = true;
    for (int e = H1_E_HEAD_TOO_LARGE; e < H1_E__COUNT; e++) {
        const char *a = h1_error_str(-e);
        if (!a || strcmp(a, "unknown") == 0 || strcmp(a, h1_error_str(e)) != 0)
            names_ok = false;
        for (int f = H1_E_HEAD_TOO_LARGE; f < e; f++)
            if (strcmp(a, h1_error_str(f)) == 0)
                names_ok = false;
    }
    ok(names_ok, "every error has its own name");
    is_str(h1_error_str(-EAGAIN), "incomplete", "-EAGAIN has a name");
    is_int(h1_error_status(-H1_E_HEAD_TOO_LARGE), 431, "head_too_large -> 431");
    is_int(h1_error_status(-H1_E_VERSION_UNSUPPORTED), 505, "version -> 505");
    is_int(h1_error_status(-H1_E_TE_UNKNOWN), 501, "unknown coding -> 501");
    is_int(h1_error_status(-H1_E_CL_AND_TE), 400, "smuggling -> 400");
    bool states_ok = true;
    for (int s2 = H1_S_LENGTH; s2 <= H1_S_ERROR; s2++)
        if (strcmp(h1_state_str((enum h1_state)s2), "unknown") == 0)
            states_ok = false;
    ok(states_ok, "every state has a name");
    ok(h1_status_is_interim(100) && h1_status_is_interim(103) && !h1_status_is_interim(101) &&
           !h1_status_is_interim(200),
       "interim statuses");
    is_str(h1_status_reason(404), "Not Found", "reason phrase");

    /* 32 Connection options are fine (empty elements don't count), and name fields. */
    h1_parser_init(&p, NULL);
    const char *opts =
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: ,a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,\r\n"
        "Connection: q,r,s,t,u,v,w,x,y,z,A,B,C,D,E,X-F,,,\r\nX-f: 1\r\n\r\n";
    ok(parse_req(&p, opts, strlen(opts), &r) > 0 && r.msg.num_headers == 4 &&
           (r.msg.headers[3].flags & H1_HF_HOP_BY_HOP),
       "32 Connection options pass and mark the fields they name");

    /* A reused parser: the caller drops a half-read head and starts over. */
    h1_parser_init(&p, NULL);
    parse_req(&p, "GET /x HTTP/1.1\r\nHo", 19, &r);
    h1_parser_reset(&p);
    is_int(parse_req(&p, s, strlen(s), &r), (long long)strlen(s), "reset forgets a partial head");
}

/* ---- serializer ---- */

static void test_serializer(void)
{
    char out[1024], sum[4096], sum2[4096];
    struct h1_parser p;
    struct h1_request r;
    struct h1_response rs;
    const struct h1_header in[] = {
        {"Host", 4, "svc.ns:9080", 11, 0},
        {"X-Empty", 7, "", 0, 0},
        {"Content-Length", 14, "3", 1, 0},
        {"X-Obs", 5, "caf\xc3\xa9 a\tb", 9, 0},
    };

    ssize_t n = h1_write_request_head(out, sizeof(out), "POST", 4, "/p?q=1", 6, in, 4);
    ok(n > 0, "request head written (%zd bytes)", n);
    h1_parser_init(&p, NULL);
    ssize_t rc = parse_req(&p, out, (size_t)n, &r);
    is_int(rc, n, "request head parses back whole");
    ok(r.method_len == 4 && memcmp(r.method, "POST", 4) == 0 && r.target_len == 6 &&
           memcmp(r.target, "/p?q=1", 6) == 0 && r.msg.minor_version == 1 &&
           r.msg.body == H1_BODY_LENGTH && r.msg.content_length == 3,
       "round trip: method, target, version, framing");
    bool same = r.msg.num_headers == 4;
    for (size_t i = 0; same && i < 4; i++)
        same = r.msg.headers[i].name_len == in[i].name_len &&
               memcmp(r.msg.headers[i].name, in[i].name, in[i].name_len) == 0 &&
               r.msg.headers[i].value_len == in[i].value_len &&
               memcmp(r.msg.headers[i].value, in[i].value, in[i].value_len) == 0;
    ok(same, "round trip: every field, in order, byte for byte");
    req_summary(sum, sizeof(sum), rc, &r);
    char copy[1024];
    memcpy(copy, out, (size_t)n);
    check_feeds("serialized request", 0, copy, (size_t)n, sum2, sizeof(sum2));
    is_str(sum2, sum, "serialized request: same parse every way");

    bool nospc = true;
    for (size_t cap = 0; cap < (size_t)n; cap++)
        if (h1_write_request_head(out, cap, "POST", 4, "/p?q=1", 6, in, 4) != -ENOSPC)
            nospc = false;
    ok(nospc, "every too-small buffer: -ENOSPC");
    is_int(h1_write_request_head(out, (size_t)n, "POST", 4, "/p?q=1", 6, in, 4), n,
           "exactly enough room");

    const struct h1_header crlf[] = {{"X", 1, "a\r\nInjected: 1", 15, 0}};
    is_int(h1_write_request_head(out, sizeof(out), "GET", 3, "/", 1, crlf, 1), -EINVAL,
           "CRLF in a value: -EINVAL (no response splitting)");
    const struct h1_header badname[] = {{"X Y", 3, "a", 1, 0}};
    is_int(h1_write_request_head(out, sizeof(out), "GET", 3, "/", 1, badname, 1), -EINVAL,
           "space in a name: -EINVAL");
    const struct h1_header padded[] = {{"X", 1, " a", 2, 0}};
    is_int(h1_write_request_head(out, sizeof(out), "GET", 3, "/", 1, padded, 1), -EINVAL,
           "leading OWS in a value: -EINVAL (would not read back)");
    is_int(h1_write_request_head(out, sizeof(out), "GET", 3, "/a b", 4, in, 1), -EINVAL,
           "space in a target: -EINVAL");
    is_int(h1_write_request_head(out, sizeof(out), "G T", 3, "/", 1, in, 1), -EINVAL,
           "space in a method: -EINVAL");

    const struct h1_header rh[] = {{"Content-Type", 12, "text/plain", 10, 0},
                                   {"Transfer-Encoding", 17, "chunked", 7, 0}};
    n = h1_write_response_head(out, sizeof(out), 404, NULL, 0, rh, 2);
    ok(n > 0 && memcmp(out, "HTTP/1.1 404 Not Found\r\n", 24) == 0,
       "response head with the standard reason");
    h1_parser_init(&p, NULL);
    rc = parse_resp(&p, out, (size_t)n, H1_M_GET, &rs);
    ok(rc == n && rs.status == 404 && rs.reason_len == 9 && rs.msg.body == H1_BODY_CHUNKED &&
           rs.msg.num_headers == 2,
       "response round trip: status, reason, framing, fields");
    n = h1_write_response_head(out, sizeof(out), 599, "Custom Thing", 12, NULL, 0);
    h1_parser_init(&p, NULL);
    rc = parse_resp(&p, out, (size_t)n, H1_M_GET, &rs);
    ok(rc == n && rs.status == 599 && rs.reason_len == 12 && rs.msg.body == H1_BODY_CLOSE,
       "response with a custom reason and no fields");
    is_int(h1_write_response_head(out, sizeof(out), 99, NULL, 0, NULL, 0), -EINVAL,
           "status 99: -EINVAL");
    is_int(h1_write_response_head(out, 10, 200, NULL, 0, NULL, 0), -ENOSPC, "small: -ENOSPC");

    /* Chunked framing: encode, then decode at every split point. */
    char body[512];
    size_t bl = 0;
    static const char *parts[] = {"a", "hello world", "0123456789abcdef0123456789abcdef!"};
    for (int i = 0; i < 3; i++) {
        size_t pl = strlen(parts[i]);
        ssize_t w = h1_write_chunk_header(body + bl, sizeof(body) - bl, pl);
        ok(w > 0, "chunk header for %zu bytes", pl);
        bl += (size_t)w;
        memcpy(body + bl, parts[i], pl);
        bl += pl;
        memcpy(body + bl, H1_CRLF, 2);
        bl += 2;
    }
    const struct h1_header tr[] = {{"grpc-status", 11, "0", 1, 0},
                                   {"grpc-message", 12, "fine", 4, 0}};
    ssize_t w = h1_write_last_chunk(body + bl, sizeof(body) - bl, tr, 2);
    ok(w == 41, "last chunk with trailers (%zd)", w);
    bl += (size_t)w;
    ok(memcmp(body, "1\r\na\r\nb\r\nhello world\r\n21\r\n", 26) == 0, "chunk sizes in hex");
    check_chunked("serialized chunked body", body, bl,
                  "data=ahello world0123456789abcdef0123456789abcdef! "
                  "trailers=[grpc-status: 0][grpc-message: fine] used=102 done total=45");
    is_int(h1_write_chunk_header(out, sizeof(out), 0), -EINVAL, "chunk of 0: -EINVAL");
    is_int(h1_write_chunk_header(out, 3, 0x1000), -ENOSPC, "chunk header: -ENOSPC");
    w = h1_write_chunk_header(out, sizeof(out), UINT64_MAX);
    ok(w == 18 && memcmp(out, "ffffffffffffffff\r\n", 18) == 0, "largest chunk header");
    is_int(h1_write_last_chunk(out, sizeof(out), NULL, 0), 5, "last chunk, no trailers");
    ok(memcmp(out, "0\r\n\r\n", 5) == 0, "  ... is 0 CRLF CRLF");
}

/* ---- pipelining ---- */

static void test_pipelined(void)
{
    static const char stream[] =
        "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        "\r\n" /* a stray CRLF after a body, which servers skip (RFC 9112 §2.2) */
        "POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n0\r\nX: y\r\n\r\n"
        "HEAD /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    const size_t n = sizeof(stream) - 1;
    const char *want[] = {"/1:", "/2:hello", "/3:abc", "/4:"};
    char got[4][64];
    struct h1_parser p;
    int count = 0;
    size_t off = 0;
    const char *buf = guard_put(stream, n);

    h1_parser_init(&p, NULL);
    while (off < n && count < 4) {
        struct h1_request r;
        memset(&r, 0, sizeof(r));
        r.msg.headers = hdrs;
        r.msg.headers_cap = NHDR;
        ssize_t rc = h1_parse_request(&p, buf + off, n - off, &r);
        if (!ok(rc > 0, "pipelined request %d parsed", count + 1))
            return;
        off += (size_t)rc;
        int gl = snprintf(got[count], sizeof(got[count]), "%.*s:", (int)r.path_len, r.path);
        struct h1_decoder d;
        h1_decoder_init(&d, r.msg.body, r.msg.content_length);
        while (!h1_decoder_is_done(&d)) {
            const char *dp;
            size_t dl;
            rc = h1_decoder_feed(&d, buf + off, n - off, &dp, &dl);
            if (rc < 0)
                break;
            gl += snprintf(got[count] + gl, sizeof(got[count]) - (size_t)gl, "%.*s", (int)dl, dp);
            off += (size_t)rc;
        }
        ok(h1_decoder_is_done(&d), "pipelined body %d complete", count + 1);
        if (count == 3)
            ok(!(r.msg.flags & H1_F_KEEP_ALIVE), "the last one asks to close");
        count++;
    }
    is_int(count, 4, "four pipelined requests");
    is_int(off, n, "consumed exactly the stream");
    for (int i = 0; i < count; i++)
        is_str(got[i], want[i], "pipelined request in order with its body");
}

int main(void)
{
    guard_init(256 * 1024);
    test_valid_requests();
    test_valid_responses();
    test_chunked();
    test_length_and_close();
    test_bad_inputs();
    test_limits();
    test_helpers();
    test_serializer();
    test_pipelined();
    return tap_done();
}
