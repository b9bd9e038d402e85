/*
 * admin_test.c - sidecar/admin: the query string parser (split, percent-decoding, the
 * limit, every kind of bad input named) and Envoy's log level names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "log.h"
#include "tap.h"

/* Parses a copy of s (the parser writes in place); returns its result. */
static int parse(const char *s, struct admin_query *q, char *buf, size_t buflen, char *why,
                 size_t whylen)
{
    snprintf(buf, buflen, "%s", s);
    why[0] = 0;
    return admin_parse_query(buf, q, why, whylen);
}

static void test_split(void)
{
    struct admin_query q;
    char buf[512], why[160];
    is_int(parse("", &q, buf, sizeof(buf), why, sizeof(why)), 0, "empty query: fine");
    is_int(q.n, 0, "empty query: no parameters");
    is_int(parse("format=json", &q, buf, sizeof(buf), why, sizeof(why)), 0, "one parameter");
    is_int(q.n, 1, "one parameter: n 1");
    is_str(q.p[0].key, "format", "its name");
    is_str(q.p[0].val, "json", "its value");
    is_int(parse("inboundonly&graceful", &q, buf, sizeof(buf), why, sizeof(why)), 0,
           "two flags without values");
    is_int(q.n, 2, "two flags: n 2");
    ok(q.p[0].val == NULL && q.p[1].val == NULL, "flags without '=' have no value");
    is_str(q.p[1].key, "graceful", "second flag's name");
    is_int(parse("a=&&b=2&", &q, buf, sizeof(buf), why, sizeof(why)), 0,
           "empty segments and a trailing '&' are skipped");
    is_int(q.n, 2, "...two parameters");
    is_str(q.p[0].val, "", "'a=' has an empty value");
    is_str(q.p[1].val, "2", "'b=2'");
    is_int(parse("k=a=b", &q, buf, sizeof(buf), why, sizeof(why)), 0, "a value with '='");
    is_str(q.p[0].val, "a=b", "...kept whole after the first '='");
}

static void test_decode(void)
{
    struct admin_query q;
    char buf[512], why[160];
    is_int(parse("format=%6Aso%6E", &q, buf, sizeof(buf), why, sizeof(why)), 0, "escapes");
    is_str(q.p[0].val, "json", "%6A and %6E decoded");
    is_int(parse("l%65vel=d%45bug", &q, buf, sizeof(buf), why, sizeof(why)), 0,
           "escapes in the name too");
    is_str(q.p[0].key, "level", "name decoded");
    is_str(q.p[0].val, "dEbug", "upper-case hex digits");
    is_int(parse("x=a%26b%3Dc+d", &q, buf, sizeof(buf), why, sizeof(why)), 0,
           "an escaped '&' and '=' do not split");
    is_int(q.n, 1, "...one parameter");
    is_str(q.p[0].val, "a&b=c+d", "...decoded after splitting; '+' stays");
    static const char *const bad[] = {"format=%zz", "format=%4", "format=%", "format=js%00on",
                                      "f%g1=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is_int(parse(bad[i], &q, buf, sizeof(buf), why, sizeof(why)), -1, bad[i]);
        ok(strstr(why, "bad percent-escape in query parameter") != NULL, "%s: says why (%s)",
           bad[i], why);
    }
    parse("format=%zz", &q, buf, sizeof(buf), why, sizeof(why));
    ok(strstr(why, "'format'") != NULL, "the bad value's parameter is named (%s)", why);
    is_int(parse("=x", &q, buf, sizeof(buf), why, sizeof(why)), -1, "a parameter without a name");
    is_str(why, "query parameter without a name", "...says so");
    is_int(parse("%41", &q, buf, sizeof(buf), why, sizeof(why)), 0, "an escaped name alone");
    is_str(q.p[0].key, "A", "...decoded");
}

static void test_limit(void)
{
    struct admin_query q;
    char in[512] = "", buf[512], why[160];
    size_t n = 0;
    for (int i = 0; i < ADMIN_MAX_PARAMS; i++)
        n += (size_t)snprintf(in + n, sizeof(in) - n, "p%d=%d&", i, i);
    is_int(parse(in, &q, buf, sizeof(buf), why, sizeof(why)), 0, "ADMIN_MAX_PARAMS parameters");
    is_int(q.n, ADMIN_MAX_PARAMS, "...all kept");
    snprintf(in + n, sizeof(in) - n, "one=more");
    is_int(parse(in, &q, buf, sizeof(buf), why, sizeof(why)), -1, "one more is refused");
    char want[64];
    snprintf(want, sizeof(want), "more than %d query parameters", ADMIN_MAX_PARAMS);
    is_str(why, want, "...saying the limit");
}

/* Every input byte value in every position: never past the end, never a crash (ASan). */
static void test_every_byte(void)
{
    struct admin_query q;
    char why[160];
    int bad = 0;
    for (int c = 1; c < 256; c++)
        for (int pos = 0; pos < 4; pos++) {
            char s[8] = "%41%";
            s[pos] = (char)c;
            char *heap = malloc(strlen(s) + 1); /* exact size: ASan sees any overread */
            if (!heap)
                return;
            memcpy(heap, s, strlen(s) + 1);
            int r = admin_parse_query(heap, &q, why, sizeof(why));
            bad += r != 0 && r != -1;
            free(heap);
        }
    is_int(bad, 0, "every byte at every position: 0 or -1, no overread");
}

static void test_levels(void)
{
    static const struct {
        const char *name;
        int want;
    } t[] = {{"trace", LOG_TRACE},
             {"debug", LOG_DEBUG},
             {"info", LOG_INFO},
             {"warning", LOG_WARN},
             {"warn", LOG_WARN},
             {"error", LOG_ERROR},
             {"critical", LOG_ERROR},
             {"off", LOG_OFF},
             {"bogus", ADMIN_LEVEL_UNKNOWN},
             {"", ADMIN_LEVEL_UNKNOWN},
             {"DEBUG", ADMIN_LEVEL_UNKNOWN}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        is_int(admin_log_level(t[i].name), t[i].want, t[i].name[0] ? t[i].name : "(empty)");
    is_str(log_level_str(LOG_OFF), "off", "LOG_OFF is named off");
}

int main(void)
{
    test_split();
    test_decode();
    test_limit();
    test_every_byte();
    test_levels();
    return tap_done();
}
