/*
 * sniff_test.c - protocol sniffing: each protocol at every prefix length (NEED_MORE until
 * the deciding byte, then its answer, and the same answer for every longer input), and
 * the inputs that must be opaque.
 */
#include <stdlib.h>
#include <string.h>

#include "sniff.h"
#include "tap.h"

/* Feeds every prefix of s; checks NEED_MORE before `decide` bytes and want from there on. */
static void prefixes(const char *name, const void *s, size_t len, size_t decide,
                     enum sniff_result want)
{
    size_t bad = 0, first_bad = 0;
    for (size_t k = 1; k <= len; k++) {
        /* exact-size copy, so reading past k bytes is caught by ASan */
        char *copy = malloc(k);
        memcpy(copy, s, k);
        enum sniff_result r = sniff_detect(copy, k);
        free(copy);
        enum sniff_result expect = k < decide ? SNIFF_NEED_MORE : want;
        if (r != expect && !bad++)
            first_bad = k;
    }
    ok(bad == 0, "%s: every prefix (%zu bytes) says need-more, then %s%s", name, len,
       sniff_result_str(want), bad ? " (first wrong at a prefix)" : "");
    if (bad)
        printf("#   first wrong prefix: %zu bytes\n", first_bad);
}

int main(void)
{
    const char *h1 = "GET /reviews/1?x=y HTTP/1.1\r\nHost: reviews\r\n\r\n";
    prefixes("HTTP/1.1 GET", h1, strlen(h1), strlen("GET /reviews/1?x=y HTTP/1.1\r\n"),
             SNIFF_HTTP1);
    const char *h10 = "POST * HTTP/1.0\r\n";
    prefixes("HTTP/1.0 POST *", h10, strlen(h10), strlen(h10), SNIFF_HTTP1);
    const char *conn = "CONNECT db:5432 HTTP/1.1\r\n";
    prefixes("HTTP/1.1 CONNECT", conn, strlen(conn), strlen(conn), SNIFF_HTTP1);
    const char *h2 = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04";
    prefixes("HTTP/2 preface", h2, 28, 24, SNIFF_HTTP2);
    const unsigned char tls[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
    prefixes("TLS ClientHello", tls, sizeof(tls), 6, SNIFF_TLS);

    struct {
        const char *name;
        const char *data;
        size_t len;
    } opaque[] = {
        {"server-first probe reply", "220 smtp ready\r\n", 16},
        {"lower-case method", "get / HTTP/1.1\r\n", 16},
        {"HTTP/2.0 request line", "GET / HTTP/2.0\r\n", 16},
        {"HTTP/1.2", "GET / HTTP/1.2\r\n", 16},
        {"no target", "GET  HTTP/1.1\r\n", 15},
        {"bare LF", "GET / HTTP/1.1\n", 15},
        {"tab in target", "GET /a\tb HTTP/1.1\r\n", 19},
        {"method of 21 letters", "ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\n", 34},
        {"binary", "\x00\x01\x02\x03", 4},
        {"TLS alert record", "\x15\x03\x03\x00\x02\x02\x28", 7},
        {"TLS record, not a ClientHello", "\x16\x03\x03\x00\x40\x02", 6},
        {"TLS record length 3", "\x16\x03\x01\x00\x03\x01", 6},
        {"SSL 2-style version", "\x16\x02\x00", 3},
        {"redis RESP", "*1\r\n$4\r\nPING\r\n", 14},
        {"postgres startup", "\x00\x00\x00\x08\x04\xd2\x16\x2f", 8},
    };
    for (size_t i = 0; i < sizeof(opaque) / sizeof(opaque[0]); i++)
        is_int(sniff_detect(opaque[i].data, opaque[i].len), SNIFF_OPAQUE, opaque[i].name);

    is_int(sniff_detect("", 0), SNIFF_NEED_MORE, "nothing yet: need more (the caller's timeout decides)");

    /* a request line that never ends within SNIFF_MAX_BYTES is opaque */
    size_t n = SNIFF_MAX_BYTES + 100;
    char *huge = malloc(n);
    memcpy(huge, "GET /", 5);
    memset(huge + 5, 'a', n - 5);
    is_int(sniff_detect(huge, SNIFF_MAX_BYTES - 1), SNIFF_NEED_MORE, "long target: need more below the limit");
    is_int(sniff_detect(huge, n), SNIFF_OPAQUE, "request line past 8 KiB: opaque");
    free(huge);
    is_str(sniff_result_str(SNIFF_TLS), "tls", "names for logs");
    return tap_done();
}
