/*
 * sniff.c - see sniff.h. Each check answers yes, no, or "could still be": the input is
 * classified only when one protocol is certain or none is possible any more.
 */
#include "sniff.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN 24

enum verdict { NO, MAYBE, YES };

static enum verdict check_h2(const uint8_t *p, size_t len)
{
    size_t n = len < H2_PREFACE_LEN ? len : H2_PREFACE_LEN;
    if (memcmp(p, h2_preface, n) != 0)
        return NO;
    return len >= H2_PREFACE_LEN ? YES : MAYBE;
}

/* A TLS record: ContentType handshake (22), legacy version 3.x (x <= 4), a length of at
 * most 2^14 + 2048 (RFC 8446 §5.1 allows that much for ciphertext; a ClientHello record is
 * plaintext, but real clients stay far below), and a ClientHello (1) as the first
 * handshake message. */
static enum verdict check_tls(const uint8_t *p, size_t len)
{
    if (len >= 1 && p[0] != 22)
        return NO;
    if (len >= 2 && p[1] != 3)
        return NO;
    if (len >= 3 && p[2] > 4)
        return NO;
    if (len >= 5) {
        unsigned rec = (unsigned)p[3] << 8 | p[4];
        if (rec < 4 || rec > 16384 + 2048)
            return NO;
    }
    if (len >= 6)
        return p[5] == 1 ? YES : NO;
    return MAYBE;
}

static bool is_target_char(uint8_t c)
{
    return c > 0x20 && c < 0x7f;
}

/* METHOD SP request-target SP "HTTP/1." ("0" | "1") CRLF, with METHOD an upper-case
 * token of at most 20 letters (every registered method is; the strict codec decides the
 * rest). */
static enum verdict check_http1(const uint8_t *p, size_t len)
{
    static const char version[] = "HTTP/1.";
    size_t i = 0, j;
    while (i < len && i < 20 && ((p[i] >= 'A' && p[i] <= 'Z') || p[i] == '-' || p[i] == '_'))
        i++;
    if (i == len)
        return i <= 20 ? MAYBE : NO;
    if (i == 0 || p[i] != ' ')
        return NO;
    j = ++i;
    while (i < len && is_target_char(p[i]))
        i++;
    if (i == len)
        return MAYBE;
    if (i == j || p[i] != ' ')
        return NO;
    i++;
    for (size_t k = 0; k < sizeof(version) - 1; k++, i++) {
        if (i == len)
            return MAYBE;
        if (p[i] != (uint8_t)version[k])
            return NO;
    }
    if (i == len)
        return MAYBE;
    if (p[i] != '0' && p[i] != '1')
        return NO;
    if (++i == len)
        return MAYBE;
    if (p[i] != '\r')
        return NO;
    if (++i == len)
        return MAYBE;
    return p[i] == '\n' ? YES : NO;
}

enum sniff_result sniff_detect(const void *data, size_t len)
{
    const uint8_t *p = data;
    enum verdict h2, tls, h1;
    if (len == 0)
        return SNIFF_NEED_MORE;
    if (len > SNIFF_MAX_BYTES)
        len = SNIFF_MAX_BYTES;
    /* The preface starts like an HTTP/1 request line ("PRI * HTTP/2.0"): ask HTTP/2 first. */
    h2 = check_h2(p, len);
    if (h2 == YES)
        return SNIFF_HTTP2;
    tls = check_tls(p, len);
    if (tls == YES)
        return SNIFF_TLS;
    h1 = check_http1(p, len);
    if (h1 == YES)
        return SNIFF_HTTP1;
    if (h2 == NO && tls == NO && h1 == NO)
        return SNIFF_OPAQUE;
    return len >= SNIFF_MAX_BYTES ? SNIFF_OPAQUE : SNIFF_NEED_MORE;
}

const char *sniff_result_str(enum sniff_result r)
{
    switch (r) {
    case SNIFF_NEED_MORE:
        return "need-more";
    case SNIFF_HTTP1:
        return "http1";
    case SNIFF_HTTP2:
        return "http2";
    case SNIFF_TLS:
        return "tls";
    case SNIFF_OPAQUE:
        return "opaque";
    }
    return "?";
}
