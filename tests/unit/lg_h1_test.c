/*
 * lg_h1_test.c - bench/lg_h1.c, ringmesh-loadgen's HTTP/1.1 response parser: every case is
 * fed whole, split at every point, and byte by byte, through a caller that keeps the
 * unconsumed bytes as loadgen.c does; each way must give the same responses.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lg_h1.h"
#include "tap.h"

struct result {
    int n; /* complete responses */
    int status[8];
    int close[8];
    int err; /* the first negative return, 0 if none */
    int eof_completes;
    size_t left; /* bytes never consumed */
};

static char pend[300000];

/* Feeds input in pieces: whole (step 0), split at `split`, or `step` bytes at a time. */
static struct result feed(const char *in, size_t len, bool head, size_t split, size_t step)
{
    struct result r = {0};
    struct lg_h1 p;
    size_t pl = 0, off = 0;
    lg_h1_init(&p, head);
    while (off < len && !r.err) {
        size_t n = len - off;
        if (step)
            n = step < n ? step : n;
        else if (split && off < split)
            n = split - off;
        memcpy(pend + pl, in + off, n);
        pl += n;
        off += n;
        for (;;) {
            bool done;
            ssize_t k = lg_h1_parse(&p, pend, pl, &done);
            if (k < 0) {
                r.err = (int)k;
                break;
            }
            memmove(pend, pend + k, pl - (size_t)k);
            pl -= (size_t)k;
            if (!done)
                break;
            if (r.n < 8) {
                r.status[r.n] = p.status;
                r.close[r.n] = p.close;
            }
            r.n++;
            lg_h1_init(&p, head);
            if (pl == 0)
                break;
        }
    }
    r.eof_completes = lg_h1_eof_completes(&p);
    r.left = pl;
    return r;
}

static int same(const struct result *a, const struct result *b)
{
    if (a->err || b->err) /* after an error what is left unread depends on the split */
        return a->n == b->n && a->err == b->err;
    return a->n == b->n && a->eof_completes == b->eof_completes && a->left == b->left &&
           memcmp(a->status, b->status, sizeof(a->status)) == 0 &&
           memcmp(a->close, b->close, sizeof(a->close)) == 0;
}

/* The case's result, after checking that every split and byte by byte agree with it. */
static struct result run(const char *name, const char *in, bool head)
{
    size_t len = strlen(in);
    struct result whole = feed(in, len, head, 0, 0), r;
    int splits_ok = 1;
    for (size_t s = 1; s < len; s++) {
        r = feed(in, len, head, s, 0);
        if (!same(&r, &whole)) {
            splits_ok = 0;
            printf("#   split at %zu: n %d err %d (whole: n %d err %d)\n", s, r.n, r.err, whole.n,
                   whole.err);
            break;
        }
    }
    ok(splits_ok, "%s: same at every split point", name);
    r = feed(in, len, head, 0, 1);
    ok(same(&r, &whole), "%s: same byte by byte", name);
    return whole;
}

int main(void)
{
    struct result r;

    r = run("content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false);
    ok(r.n == 1 && r.status[0] == 200 && !r.close[0] && !r.err && r.left == 0,
       "content-length: one 200, keep-alive");

    r = run("pipelined CL + chunked + 204",
            "HTTP/1.1 201 Created\r\ncontent-length: 3\r\n\r\nabc"
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
            "chunked\r\n\r\n5;a=b\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n\r\n"
            "HTTP/1.1 204 No Content\r\n\r\n",
            false);
    ok(r.n == 3 && r.status[0] == 201 && r.status[1] == 200 && r.status[2] == 204 && !r.err &&
           r.left == 0,
       "pipelined: 201, 200 (chunked, extension, trailer), 204");

    r = run("chunked, upper-case hex, no trailers",
            "HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
            false);
    ok(r.n == 1 && !r.err && r.left == 0, "chunked: A = 10 bytes, then the last chunk");

    r = run("100 continue",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false);
    ok(r.n == 1 && r.status[0] == 200 && !r.err, "interim 100 skipped, the 200 counted");

    r = run("HTTP/1.0 until close",
            "HTTP/1.0 200 ok\r\nContent-type: text/html\r\n\r\n<HTML>body</HTML>", false);
    ok(r.n == 0 && !r.err && r.eof_completes, "HTTP/1.0 without length: the close completes it");

    r = run("HTTP/1.0 keep-alive",
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", false);
    ok(r.n == 1 && !r.close[0], "HTTP/1.0 with keep-alive and a length: stays open");

    r = run("connection close",
            "HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy", false);
    ok(r.n == 1 && r.status[0] == 503 && r.close[0], "Connection: close: 503, close");

    r = run("HEAD",
            "HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\nHTTP/1.1 404 NF\r\nContent-Length: "
            "10\r\n\r\n",
            true);
    ok(r.n == 2 && r.status[1] == 404 && !r.err && r.left == 0,
       "HEAD: no body despite Content-Length");

    r = run("304", "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", false);
    ok(r.n == 1 && r.status[0] == 304 && r.left == 0, "304: no body");

    r = run("status without reason", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false);
    ok(r.n == 1 && r.status[0] == 200, "a status line without a reason phrase");

    r = run("cut short", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel", false);
    ok(r.n == 0 && !r.err && !r.eof_completes,
       "a body cut short: incomplete, EOF does not complete it");

    r = run("not HTTP", "FOO/1.1 200 OK\r\n\r\n", false);
    is_int(r.err, -EPROTO, "not HTTP: -EPROTO");
    r = run("bad status", "HTTP/1.1 2x0 OK\r\n\r\n", false);
    is_int(r.err, -EPROTO, "a bad status: -EPROTO");
    r = run("bad length", "HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n", false);
    is_int(r.err, -EPROTO, "Content-Length 12a: -EPROTO");
    r = run("two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            false);
    is_int(r.err, -EPROTO, "two different Content-Lengths: -EPROTO");
    r = run("bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false);
    is_int(r.err, -EPROTO, "chunk size zz: -EPROTO");
    r = run("junk after chunk size",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n", false);
    is_int(r.err, -EPROTO, "chunk size 5x: -EPROTO");
    r = run("chunk without CRLF",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n", false);
    is_int(r.err, -EPROTO, "chunk data not followed by CRLF: -EPROTO");
    r = run("header without colon", "HTTP/1.1 200 OK\r\nbogus\r\n\r\n", false);
    is_int(r.err, -EPROTO, "a header line without a colon: -EPROTO");

    /* a head larger than LG_H1_HEAD_MAX */
    static char big[LG_H1_HEAD_MAX + 200];
    int n = snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(big + n, 'a', sizeof(big) - (size_t)n - 1);
    big[sizeof(big) - 1] = 0;
    struct result rb = feed(big, strlen(big), false, 0, 0);
    is_int(rb.err, -E2BIG, "a head over 64 KiB: -E2BIG");
    rb = feed(big, strlen(big), false, 0, 4096);
    is_int(rb.err, -E2BIG, "  (in 4 KiB reads too)");

    is_str(lg_h1_state_str(LG_H1_CHUNK_DATA), "chunk data", "state names");
    return tap_done();
}
