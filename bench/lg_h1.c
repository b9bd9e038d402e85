/*
 * lg_h1.c - HTTP/1.1 response parsing for ringmesh-loadgen (see lg_h1.h). Pure: the tests
 * feed it at every split point (tests/unit/lg_h1_test.c).
 */
#include "lg_h1.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

void lg_h1_init(struct lg_h1 *p, bool head)
{
    *p = (struct lg_h1){.state = LG_H1_HEAD, .head = head};
}

const char *lg_h1_state_str(enum lg_h1_state s)
{
    switch (s) {
    case LG_H1_HEAD:
        return "head";
    case LG_H1_BODY_CL:
        return "body (content-length)";
    case LG_H1_BODY_EOF:
        return "body (until close)";
    case LG_H1_CHUNK_SIZE:
        return "chunk size";
    case LG_H1_CHUNK_DATA:
        return "chunk data";
    case LG_H1_CHUNK_CRLF:
        return "chunk end";
    case LG_H1_TRAILERS:
        return "trailers";
    }
    return "?";
}

static bool name_is(const char *p, size_t n, const char *name)
{
    size_t l = strlen(name);
    return n == l && strncasecmp(p, name, l) == 0;
}

/* The head (head_len bytes, its CRLF CRLF included): sets status, close and the body's
 * state. 0, or -EPROTO. */
static int parse_head(struct lg_h1 *p, const char *s, size_t head_len)
{
    if (head_len < 14 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') ||
        s[8] != ' ' || !isdigit((unsigned char)s[9]) || !isdigit((unsigned char)s[10]) ||
        !isdigit((unsigned char)s[11]) || (s[12] != ' ' && s[12] != '\r'))
        return -EPROTO;
    p->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    p->close = s[7] == '0'; /* HTTP/1.0 closes unless it says keep-alive */
    bool chunked = false, have_cl = false;
    uint64_t cl = 0;
    const char *end = s + head_len - 2, *line = memchr(s, '\n', head_len) + 1;
    while (line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            return -EPROTO;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (!colon)
            return -EPROTO;
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t nl = (size_t)(colon - line), vl = (size_t)(ve - v);
        if (name_is(line, nl, "content-length")) {
            uint64_t n = 0;
            if (vl == 0 || vl > 18)
                return -EPROTO;
            for (size_t i = 0; i < vl; i++) {
                if (!isdigit((unsigned char)v[i]))
                    return -EPROTO;
                n = n * 10 + (uint64_t)(v[i] - '0');
            }
            if (have_cl && n != cl)
                return -EPROTO; /* RFC 9112 6.3: differing lengths are an error */
            cl = n;
            have_cl = true;
        } else if (name_is(line, nl, "transfer-encoding")) {
            /* chunked must be the last coding (RFC 9112 6.3) */
            chunked = vl >= 7 && strncasecmp(ve - 7, "chunked", 7) == 0;
        } else if (name_is(line, nl, "connection")) {
            if (vl == 5 && strncasecmp(v, "close", 5) == 0)
                p->close = true;
            else if (vl == 10 && strncasecmp(v, "keep-alive", 10) == 0)
                p->close = false;
        }
        line = eol + 1;
    }
    if (p->status < 200 && p->status != 101) {
        p->state = LG_H1_HEAD; /* interim: the final response follows */
        return 0;
    }
    if (p->head || p->status == 204 || p->status == 304 || p->status == 101) {
        p->remaining = 0;
        p->state = LG_H1_BODY_CL;
    } else if (chunked) {
        p->state = LG_H1_CHUNK_SIZE;
    } else if (have_cl) {
        p->remaining = cl;
        p->state = LG_H1_BODY_CL;
    } else {
        p->state = LG_H1_BODY_EOF;
        p->close = true;
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

ssize_t lg_h1_parse(struct lg_h1 *p, const char *buf, size_t len, bool *done)
{
    size_t off = 0;
    *done = false;
    for (;;) {
        const char *q = buf + off;
        size_t avail = len - off;
        switch (p->state) {
        case LG_H1_HEAD: {
            if (avail == 0)
                return (ssize_t)off;
            const char *e = memmem(q, avail, "\r\n\r\n", 4);
            if (!e)
                return avail > LG_H1_HEAD_MAX ? -E2BIG : (ssize_t)off;
            size_t hl = (size_t)(e - q) + 4;
            if (hl > LG_H1_HEAD_MAX)
                return -E2BIG;
            if (parse_head(p, q, hl) < 0)
                return -EPROTO;
            off += hl;
            break;
        }
        case LG_H1_BODY_CL: {
            size_t k = avail < p->remaining ? avail : (size_t)p->remaining;
            off += k;
            p->remaining -= k;
            if (p->remaining == 0) {
                *done = true;
                return (ssize_t)off;
            }
            return (ssize_t)off;
        }
        case LG_H1_BODY_EOF:
            return (ssize_t)len;
        case LG_H1_CHUNK_SIZE: {
            if (avail == 0)
                return (ssize_t)off;
            const char *e = memmem(q, avail, "\r\n", 2);
            if (!e)
                return avail > 4096 ? -E2BIG : (ssize_t)off;
            uint64_t sz = 0;
            const char *d = q;
            if (hexval(*d) < 0)
                return -EPROTO;
            for (; d < e && hexval(*d) >= 0; d++) {
                if (sz >> 59)
                    return -EPROTO;
                sz = sz * 16 + (uint64_t)hexval(*d);
            }
            while (d < e && (*d == ' ' || *d == '\t'))
                d++;
            if (d < e && *d != ';')
                return -EPROTO; /* only a chunk extension may follow the size */
            off += (size_t)(e - q) + 2;
            p->remaining = sz;
            p->state = sz ? LG_H1_CHUNK_DATA : LG_H1_TRAILERS;
            break;
        }
        case LG_H1_CHUNK_DATA: {
            size_t k = avail < p->remaining ? avail : (size_t)p->remaining;
            off += k;
            p->remaining -= k;
            if (p->remaining)
                return (ssize_t)off;
            p->state = LG_H1_CHUNK_CRLF;
            p->remaining = 2;
            break;
        }
        case LG_H1_CHUNK_CRLF:
            if (avail == 0)
                return (ssize_t)off;
            if (*q != (p->remaining == 2 ? '\r' : '\n'))
                return -EPROTO;
            off++;
            if (--p->remaining == 0)
                p->state = LG_H1_CHUNK_SIZE;
            break;
        case LG_H1_TRAILERS: {
            if (avail == 0)
                return (ssize_t)off;
            const char *e = memmem(q, avail, "\r\n", 2);
            if (!e)
                return avail > LG_H1_HEAD_MAX ? -E2BIG : (ssize_t)off;
            off += (size_t)(e - q) + 2;
            if (e == q) {
                *done = true;
                return (ssize_t)off;
            }
            break;
        }
        }
    }
}

bool lg_h1_eof_completes(const struct lg_h1 *p)
{
    return p->state == LG_H1_BODY_EOF;
}
