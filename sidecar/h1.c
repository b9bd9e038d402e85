/*
 * h1.c - strict, incremental HTTP/1.1 codec: request and response heads, body framing
 * (RFC 9112 §6), the chunked decoder, connection semantics and the serializer.
 *
 * A head is parsed in two layers. The scanner walks each byte once (it keeps its offset
 * in struct h1_parser across calls), checks byte classes that are wrong anywhere in a
 * head (CTLs, bare CR, bare LF), counts lines and finds the empty line. The structural
 * parser then walks the complete head once, left to right, and fills the views. It is
 * also run on a prefix when the scanner finishes the start-line (so a bad request-line
 * fails at once) or trips on a bad byte (to name the precise error). Because every
 * decision of both layers depends only on bytes already seen, in order, a message
 * yields the same result however it is split across calls; the unit tests check that
 * at every split point and byte by byte.
 *
 * Invariants: nothing is read at or past buf[len]; no state holds a pointer into the
 * input between calls; errors are -H1_E_* values distinct from -errno.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "h1.h"

/* ---- character classes (RFC 9110 §5.6.2, §5.5; RFC 3986 §3.2.2) ---- */

static inline bool is_digit(uint8_t c)
{
    return (uint8_t)(c - '0') < 10;
}

static inline bool is_alpha(uint8_t c)
{
    return (uint8_t)((c | 0x20) - 'a') < 26;
}

static inline int hex_value(uint8_t c)
{
    if (is_digit(c))
        return c - '0';
    if ((uint8_t)((c | 0x20) - 'a') < 6)
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/*
 * tchar (RFC 9110 §5.6.2) as a 256-entry table built at compile time from the
 * grammar's own expression, so it is both fast (one load per byte on the hot field-name
 * loop) and checkable by reading TCHAR() alone.
 */
#define TCHAR(c)                                                                                   \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || ((c) >= '0' && (c) <= '9') ||     \
     (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' || (c) == '\'' ||          \
     (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' ||           \
     (c) == '`' || (c) == '|' || (c) == '~')
#define T4(c)  TCHAR(c), TCHAR((c) + 1), TCHAR((c) + 2), TCHAR((c) + 3)
#define T16(c) T4(c), T4((c) + 4), T4((c) + 8), T4((c) + 12)
#define T64(c) T16(c), T16((c) + 16), T16((c) + 32), T16((c) + 48)
static const bool tchar_table[256] = {T64(0), T64(64), T64(128), T64(192)};
#undef T64
#undef T16
#undef T4
#undef TCHAR

static inline bool is_tchar(uint8_t c)
{
    return tchar_table[c];
}

/* VCHAR: what a request-target may hold (RFC 3986 is ASCII; raw UTF-8 is refused). */
static inline bool is_vchar(uint8_t c)
{
    return c > 0x20 && c < 0x7f;
}

/* field-vchar / SP / HTAB, obs-text included (RFC 9110 §5.5). */
static inline bool is_value_char(uint8_t c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Bytes of a reg-name or IPv4 address: unreserved / pct-encoded / sub-delims. */
static inline bool is_regname_char(uint8_t c)
{
    if (is_alpha(c) || is_digit(c))
        return true;
    switch (c) {
    case '-':
    case '.':
    case '_':
    case '~':
    case '%':
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
        return true;
    default:
        return false;
    }
}

static inline bool is_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static bool ieq(const char *a, size_t alen, const char *lit, size_t litlen)
{
    return alen == litlen && strncasecmp(a, lit, litlen) == 0;
}

#define IEQ(a, alen, lit) ieq((a), (alen), (lit), sizeof(lit) - 1)

/* ---- errors ---- */

static const char *const error_names[H1_E__COUNT - H1_E_HEAD_TOO_LARGE] = {
    [H1_E_HEAD_TOO_LARGE - H1_E_HEAD_TOO_LARGE] = "head_too_large",
    [H1_E_TOO_MANY_HEADERS - H1_E_HEAD_TOO_LARGE] = "too_many_headers",
    [H1_E_BAD_METHOD - H1_E_HEAD_TOO_LARGE] = "bad_method",
    [H1_E_BAD_TARGET - H1_E_HEAD_TOO_LARGE] = "bad_target",
    [H1_E_BAD_REQUEST_LINE - H1_E_HEAD_TOO_LARGE] = "bad_request_line",
    [H1_E_HTTP09 - H1_E_HEAD_TOO_LARGE] = "http09",
    [H1_E_BAD_VERSION - H1_E_HEAD_TOO_LARGE] = "bad_version",
    [H1_E_VERSION_UNSUPPORTED - H1_E_HEAD_TOO_LARGE] = "version_unsupported",
    [H1_E_BAD_STATUS_LINE - H1_E_HEAD_TOO_LARGE] = "bad_status_line",
    [H1_E_BAD_STATUS - H1_E_HEAD_TOO_LARGE] = "bad_status",
    [H1_E_BARE_CR - H1_E_HEAD_TOO_LARGE] = "bare_cr",
    [H1_E_BARE_LF - H1_E_HEAD_TOO_LARGE] = "bare_lf",
    [H1_E_OBS_FOLD - H1_E_HEAD_TOO_LARGE] = "obs_fold",
    [H1_E_SPACE_BEFORE_COLON - H1_E_HEAD_TOO_LARGE] = "space_before_colon",
    [H1_E_BAD_HEADER_NAME - H1_E_HEAD_TOO_LARGE] = "bad_header_name",
    [H1_E_NO_COLON - H1_E_HEAD_TOO_LARGE] = "no_colon",
    [H1_E_BAD_HEADER_VALUE - H1_E_HEAD_TOO_LARGE] = "bad_header_value",
    [H1_E_CL_AND_TE - H1_E_HEAD_TOO_LARGE] = "cl_and_te",
    [H1_E_CL_INVALID - H1_E_HEAD_TOO_LARGE] = "cl_invalid",
    [H1_E_CL_MULTIPLE - H1_E_HEAD_TOO_LARGE] = "cl_multiple",
    [H1_E_TE_INVALID - H1_E_HEAD_TOO_LARGE] = "te_invalid",
    [H1_E_TE_UNKNOWN - H1_E_HEAD_TOO_LARGE] = "te_unknown",
    [H1_E_TE_NOT_CHUNKED_LAST - H1_E_HEAD_TOO_LARGE] = "te_not_chunked_last",
    [H1_E_TE_CHUNKED_TWICE - H1_E_HEAD_TOO_LARGE] = "te_chunked_twice",
    [H1_E_TE_HTTP10 - H1_E_HEAD_TOO_LARGE] = "te_http10",
    [H1_E_HOST_MISSING - H1_E_HEAD_TOO_LARGE] = "host_missing",
    [H1_E_HOST_MULTIPLE - H1_E_HEAD_TOO_LARGE] = "host_multiple",
    [H1_E_BAD_HOST - H1_E_HEAD_TOO_LARGE] = "bad_host",
    [H1_E_CHUNK_SIZE - H1_E_HEAD_TOO_LARGE] = "chunk_size",
    [H1_E_CHUNK_SIZE_OVERFLOW - H1_E_HEAD_TOO_LARGE] = "chunk_size_overflow",
    [H1_E_CHUNK_EXT - H1_E_HEAD_TOO_LARGE] = "chunk_ext",
    [H1_E_CHUNK_EXT_TOO_LONG - H1_E_HEAD_TOO_LARGE] = "chunk_ext_too_long",
    [H1_E_CHUNK_DATA_CRLF - H1_E_HEAD_TOO_LARGE] = "chunk_data_crlf",
    [H1_E_TRAILERS_TOO_LARGE - H1_E_HEAD_TOO_LARGE] = "trailers_too_large",
    [H1_E_BODY_TRUNCATED - H1_E_HEAD_TOO_LARGE] = "body_truncated",
    [H1_E_CONN_OPTIONS - H1_E_HEAD_TOO_LARGE] = "conn_options",
};

const char *h1_error_str(int err)
{
    if (err < 0)
        err = -err;
    if (err >= H1_E_HEAD_TOO_LARGE && err < H1_E__COUNT)
        return error_names[err - H1_E_HEAD_TOO_LARGE];
    switch (err) {
    case 0:
        return "ok";
    case EAGAIN:
        return "incomplete";
    case ENOSPC:
        return "no_space";
    case EINVAL:
        return "invalid_argument";
    default:
        return "unknown";
    }
}

int h1_error_status(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case H1_E_HEAD_TOO_LARGE:
    case H1_E_TOO_MANY_HEADERS:
        return 431;
    case H1_E_VERSION_UNSUPPORTED:
        return 505;
    case H1_E_TE_UNKNOWN:
        /* RFC 9112 §6.1: a transfer coding the server does not understand. */
        return 501;
    default:
        return 400;
    }
}

/* ---- the scanner: byte classes, line ends, end of a field section ---- */

enum scan_result {
    SCAN_MORE,     /* no end yet in the bytes given (up to the limit) */
    SCAN_LINE1,    /* the first line just completed */
    SCAN_END,      /* *pos is just past the empty line */
    SCAN_BAD,      /* *pos is just past a byte that is wrong anywhere in a head */
    SCAN_TOO_MANY, /* more than max_lines non-empty lines */
};

struct scan {
    size_t pos;        /* next byte to look at */
    size_t line_start; /* first byte of the current line */
    size_t lines;      /* non-empty lines completed */
    size_t start;      /* first byte after skipped leading empty lines */
};

/*
 * Scans buf from s->pos up to min(len, limit). With skip_leading, empty lines before
 * the first non-empty one are skipped (request heads); without, an empty first line
 * ends the section at once (an empty trailer section).
 */
static enum scan_result scan(struct scan *s, const char *buf, size_t len, size_t limit,
                             size_t max_lines, bool skip_leading)
{
    size_t end = len < limit ? len : limit;
    size_t i = s->pos;

    while (i < end) {
        uint8_t c = (uint8_t)buf[i];
        if ((c >= 0x20 && c != 0x7f) || c == '\t') {
            i++;
            continue;
        }
        if (c != '\r') {
            /* A CTL, or an LF that no CR came before (CRLF is taken whole below). */
            s->pos = i + 1;
            return SCAN_BAD;
        }
        if (i + 1 >= end)
            break; /* look at this CR again when the next byte is here */
        if (buf[i + 1] != '\n') {
            s->pos = i + 2;
            return SCAN_BAD;
        }
        bool empty = i == s->line_start;
        i += 2;
        if (empty) {
            if (s->lines == 0 && skip_leading) {
                s->line_start = s->start = i;
                continue;
            }
            s->pos = i;
            return SCAN_END;
        }
        s->line_start = s->pos = i;
        if (++s->lines > max_lines)
            return SCAN_TOO_MANY;
        if (s->lines == 1)
            return SCAN_LINE1;
    }
    s->pos = i;
    return SCAN_MORE;
}

/*
 * At buf[i], where a line may not end: returns the error for a bare CR / bare LF,
 * -EAGAIN if a CR is the last byte, or 0 for a proper CRLF (the caller's own error).
 */
static int eol_check(const char *buf, size_t i, size_t end)
{
    if (buf[i] == '\n')
        return -H1_E_BARE_LF;
    if (buf[i] == '\r') {
        if (i + 1 >= end)
            return -EAGAIN;
        return buf[i + 1] == '\n' ? 0 : -H1_E_BARE_CR;
    }
    return 0;
}

/* ---- structural parsing ---- */

/*
 * Field lines from pos through the empty line. Stores up to max views in hdrs (NULL:
 * count only). Returns the offset after the empty line, -EAGAIN or -H1_E_*.
 */
static ssize_t parse_fields(const char *buf, size_t pos, size_t end, struct h1_header *hdrs,
                            size_t max, size_t *count)
{
    size_t n = 0;

    for (;;) {
        if (pos >= end)
            return -EAGAIN;
        uint8_t c = (uint8_t)buf[pos];
        if (c == '\r' || c == '\n') {
            int rc = eol_check(buf, pos, end);
            if (rc)
                return rc;
            *count = n;
            return (ssize_t)(pos + 2);
        }
        /* RFC 9112 §5.2: obs-fold is rejected; so is whitespace before the first field
         * line (§2.2), which is the same shape. */
        if (is_ows(c))
            return -H1_E_OBS_FOLD;

        size_t name = pos;
        while (pos < end && is_tchar((uint8_t)buf[pos]))
            pos++;
        if (pos >= end)
            return -EAGAIN;
        c = (uint8_t)buf[pos];
        if (c != ':') {
            if (is_ows(c) && pos > name)
                return -H1_E_SPACE_BEFORE_COLON;
            if (c == '\r' || c == '\n') {
                int rc = eol_check(buf, pos, end);
                return rc ? rc : -H1_E_NO_COLON;
            }
            return -H1_E_BAD_HEADER_NAME;
        }
        if (pos == name)
            return -H1_E_BAD_HEADER_NAME;
        size_t name_len = pos - name;
        pos++;

        while (pos < end && is_ows((uint8_t)buf[pos]))
            pos++;
        size_t value = pos;
        while (pos < end && is_value_char((uint8_t)buf[pos]))
            pos++;
        if (pos >= end)
            return -EAGAIN;
        c = (uint8_t)buf[pos];
        if (c != '\r' && c != '\n')
            return -H1_E_BAD_HEADER_VALUE;
        int rc = eol_check(buf, pos, end);
        if (rc)
            return rc;
        size_t value_end = pos;
        while (value_end > value && is_ows((uint8_t)buf[value_end - 1]))
            value_end--;
        pos += 2;

        if (n >= max)
            return -H1_E_TOO_MANY_HEADERS;
        if (hdrs) {
            hdrs[n].name = buf + name;
            hdrs[n].name_len = name_len;
            hdrs[n].value = buf + value;
            hdrs[n].value_len = value_end - value;
            hdrs[n].flags = 0;
        }
        n++;
    }
}

/* "HTTP/" DIGIT "." DIGIT at pos; on success *pos moves past it. */
static int parse_version(const char *buf, size_t *pos, size_t end, int *major, int *minor)
{
    static const char proto[] = "HTTP/";
    size_t i = *pos;

    for (size_t k = 0; k < sizeof(proto) - 1; k++, i++) {
        if (i >= end)
            return -EAGAIN;
        if (buf[i] != proto[k])
            return -H1_E_BAD_VERSION;
    }
    if (i + 3 > end) {
        /* Refuse what already cannot become a version, else wait. */
        if (i < end && !is_digit((uint8_t)buf[i]))
            return -H1_E_BAD_VERSION;
        if (i + 1 < end && buf[i + 1] != '.')
            return -H1_E_BAD_VERSION;
        return -EAGAIN;
    }
    if (!is_digit((uint8_t)buf[i]) || buf[i + 1] != '.' || !is_digit((uint8_t)buf[i + 2]))
        return -H1_E_BAD_VERSION;
    *major = buf[i] - '0';
    *minor = buf[i + 2] - '0';
    *pos = i + 3;
    return 0;
}

/* A port: 1..5 digits, at most 65535. */
static bool valid_port(const char *s, size_t n)
{
    unsigned v = 0;
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((uint8_t)s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v <= 65535;
}

/*
 * uri-host [":" port] (RFC 3986 §3.2.2-3). No userinfo: RFC 9110 §4.2.4 says to treat
 * it as an error. need_port: authority-form for CONNECT (RFC 9112 §3.2.3).
 */
static bool valid_authority(const char *s, size_t n, bool need_port)
{
    size_t i = 0;

    if (n == 0)
        return false;
    if (s[0] == '[') {
        /* IP-literal: IPv6 / IPvFuture, with an RFC 6874 zone ("%25...") allowed. */
        for (i = 1; i < n && s[i] != ']'; i++)
            if (!is_regname_char((uint8_t)s[i]) && s[i] != ':')
                return false;
        if (i >= n || i == 1)
            return false;
        i++;
    } else {
        while (i < n && is_regname_char((uint8_t)s[i]))
            i++;
        if (i == 0)
            return false;
    }
    if (i == n)
        return !need_port;
    if (s[i] != ':')
        return false;
    return valid_port(s + i + 1, n - i - 1);
}

enum h1_method h1_method_id(const char *m, size_t n)
{
#define M(lit, id)                                                                                 \
    if (n == sizeof(lit) - 1 && memcmp(m, lit, n) == 0)                                            \
        return id;
    switch (n) {
    case 3:
        M("GET", H1_M_GET);
        M("PUT", H1_M_PUT);
        break;
    case 4:
        M("HEAD", H1_M_HEAD);
        M("POST", H1_M_POST);
        break;
    case 5:
        M("TRACE", H1_M_TRACE);
        M("PATCH", H1_M_PATCH);
        break;
    case 6:
        M("DELETE", H1_M_DELETE);
        break;
    case 7:
        M("CONNECT", H1_M_CONNECT);
        M("OPTIONS", H1_M_OPTIONS);
        break;
    }
#undef M
    return H1_M_OTHER;
}

/* Classifies and checks the request-target against the method (RFC 9112 §3.2). */
static int classify_target(struct h1_request *r)
{
    const char *t = r->target;
    size_t n = r->target_len;

    r->path = NULL;
    r->path_len = 0;
    r->authority = NULL;
    r->authority_len = 0;

    if (r->method_id == H1_M_CONNECT) {
        if (!valid_authority(t, n, true))
            return -H1_E_BAD_TARGET;
        r->form = H1_TARGET_AUTHORITY;
        r->authority = t;
        r->authority_len = n;
        return 0;
    }
    if (t[0] == '/') {
        r->form = H1_TARGET_ORIGIN;
        r->path = t;
        r->path_len = n;
        return 0;
    }
    if (n == 1 && t[0] == '*') {
        if (r->method_id != H1_M_OPTIONS)
            return -H1_E_BAD_TARGET;
        r->form = H1_TARGET_ASTERISK;
        return 0;
    }
    /* absolute-form: scheme "://" authority path-abempty [ "?" query ]. */
    size_t i = 0;
    if (!is_alpha((uint8_t)t[0]))
        return -H1_E_BAD_TARGET;
    while (i < n && (is_alpha((uint8_t)t[i]) || is_digit((uint8_t)t[i]) || t[i] == '+' ||
                     t[i] == '-' || t[i] == '.'))
        i++;
    if (n - i < 3 || memcmp(t + i, "://", 3) != 0)
        return -H1_E_BAD_TARGET;
    size_t a = i + 3, e = a;
    while (e < n && t[e] != '/' && t[e] != '?' && t[e] != '#')
        e++;
    if (!valid_authority(t + a, e - a, false))
        return -H1_E_BAD_TARGET;
    r->form = H1_TARGET_ABSOLUTE;
    r->authority = t + a;
    r->authority_len = e - a;
    r->path = t + e;
    r->path_len = n - e;
    return 0;
}

/* The request-line at pos; returns the offset after its CRLF. */
static ssize_t parse_request_line(const char *buf, size_t pos, size_t end, struct h1_request *r)
{
    size_t i = pos;
    int rc, major, minor;

    while (i < end && is_tchar((uint8_t)buf[i]))
        i++;
    if (i >= end)
        return -EAGAIN;
    if (buf[i] != ' ') {
        rc = eol_check(buf, i, end);
        if (rc)
            return rc;
        return i == pos || buf[i] != '\r' ? -H1_E_BAD_METHOD : -H1_E_BAD_REQUEST_LINE;
    }
    if (i == pos)
        return -H1_E_BAD_METHOD;
    r->method = buf + pos;
    r->method_len = i - pos;
    r->method_id = h1_method_id(r->method, r->method_len);

    size_t t = ++i;
    while (i < end && is_vchar((uint8_t)buf[i]))
        i++;
    if (i >= end)
        return -EAGAIN;
    if (buf[i] == '\r' || buf[i] == '\n') {
        rc = eol_check(buf, i, end);
        if (rc)
            return rc;
        /* "GET /\r\n": HTTP/0.9, which has no headers, no status line and no place in
         * a proxy (RFC 9112 §2.3: only 1.x is parsed here). */
        return i == t ? -H1_E_BAD_REQUEST_LINE : -H1_E_HTTP09;
    }
    if (buf[i] != ' ')
        return -H1_E_BAD_TARGET;
    if (i == t)
        return -H1_E_BAD_REQUEST_LINE;
    r->target = buf + t;
    r->target_len = i - t;

    i++;
    rc = parse_version(buf, &i, end, &major, &minor);
    if (rc)
        return rc;
    if (i >= end)
        return -EAGAIN;
    if (is_digit((uint8_t)buf[i]))
        return -H1_E_BAD_VERSION;
    if (buf[i] != '\r' && buf[i] != '\n')
        return -H1_E_BAD_REQUEST_LINE;
    rc = eol_check(buf, i, end);
    if (rc)
        return rc;
    if (major != 1 || minor > 1)
        return -H1_E_VERSION_UNSUPPORTED;
    r->msg.minor_version = minor;
    rc = classify_target(r);
    if (rc)
        return rc;
    return (ssize_t)(i + 2);
}

/* The status-line at pos; returns the offset after its CRLF. */
static ssize_t parse_status_line(const char *buf, size_t pos, size_t end, struct h1_response *r)
{
    size_t i = pos;
    int rc, major, minor;

    rc = parse_version(buf, &i, end, &major, &minor);
    if (rc)
        return rc == -H1_E_BAD_VERSION ? -H1_E_BAD_STATUS_LINE : rc;
    if (i >= end)
        return -EAGAIN;
    if (buf[i] != ' ')
        return is_digit((uint8_t)buf[i]) ? -H1_E_BAD_VERSION : -H1_E_BAD_STATUS_LINE;
    if (major != 1 || minor > 1)
        return -H1_E_VERSION_UNSUPPORTED;
    r->msg.minor_version = minor;
    i++;

    int status = 0;
    for (int k = 0; k < 3; k++, i++) {
        if (i >= end)
            return -EAGAIN;
        if (!is_digit((uint8_t)buf[i]))
            return -H1_E_BAD_STATUS;
        status = status * 10 + (buf[i] - '0');
    }
    if (i >= end)
        return -EAGAIN;
    if (is_digit((uint8_t)buf[i]) || status < 100 || status > 599)
        return -H1_E_BAD_STATUS;
    r->status = status;

    /* RFC 9112 §4 wants SP even before an empty reason; servers that omit it are common
     * and it changes nothing about framing, so "HTTP/1.1 200\r\n" is accepted. */
    if (buf[i] == ' ') {
        i++;
    } else if (buf[i] != '\r' && buf[i] != '\n') {
        return -H1_E_BAD_STATUS_LINE;
    }
    size_t reason = i;
    while (i < end && is_value_char((uint8_t)buf[i]))
        i++;
    if (i >= end)
        return -EAGAIN;
    if (buf[i] != '\r' && buf[i] != '\n')
        return -H1_E_BAD_STATUS_LINE;
    rc = eol_check(buf, i, end);
    if (rc)
        return rc;
    r->reason = buf + reason;
    r->reason_len = i - reason;
    return (ssize_t)(i + 2);
}

/* ---- semantics: framing, Host, connection options ---- */

/* Next element of a comma-separated list from *pos; OWS trimmed, may be empty.
 * Returns false at the end of the value. */
static bool list_next(const char *v, size_t n, size_t *pos, const char **elem, size_t *elen)
{
    size_t i = *pos;
    if (i > n)
        return false;
    while (i < n && is_ows((uint8_t)v[i]))
        i++;
    size_t s = i;
    while (i < n && v[i] != ',')
        i++;
    size_t e = i;
    while (e > s && is_ows((uint8_t)v[e - 1]))
        e--;
    *elem = v + s;
    *elen = e - s;
    *pos = i + 1;
    return true;
}

bool h1_list_has_token(const char *value, size_t value_len, const char *token, size_t len)
{
    size_t pos = 0, elen;
    const char *elem;
    while (list_next(value, value_len, &pos, &elem, &elen))
        if (ieq(elem, elen, token, len))
            return true;
    return false;
}

/* Content-Length (RFC 9112 §6.3, RFC 9110 §8.6): 1*DIGIT, or a list of identical ones. */
static int parse_content_length(const char *v, size_t n, uint64_t *out)
{
    size_t pos = 0, elen;
    const char *elem;
    bool have = false;
    uint64_t first = 0;

    while (list_next(v, n, &pos, &elem, &elen)) {
        uint64_t x = 0;
        if (elen == 0)
            return -H1_E_CL_INVALID;
        for (size_t i = 0; i < elen; i++) {
            if (!is_digit((uint8_t)elem[i]))
                return -H1_E_CL_INVALID;
            unsigned d = (unsigned)(elem[i] - '0');
            if (x > ((uint64_t)INT64_MAX - d) / 10)
                return -H1_E_CL_INVALID;
            x = x * 10 + d;
        }
        if (have && x != first)
            return -H1_E_CL_MULTIPLE;
        have = true;
        first = x;
    }
    *out = first;
    return 0;
}

struct te_info {
    unsigned chunked; /* times "chunked" appeared */
    unsigned other;   /* other codings */
    bool last_chunked;
    bool any;
};

/* One Transfer-Encoding field value, added to what earlier ones said (RFC 9112 §6.1). */
static int parse_te(const char *v, size_t n, struct te_info *te)
{
    size_t pos = 0, elen;
    const char *elem;

    while (list_next(v, n, &pos, &elem, &elen)) {
        if (elen == 0)
            continue; /* RFC 9110 §5.6.1: empty list elements are ignored */
        size_t k = 0;
        while (k < elen && is_tchar((uint8_t)elem[k]))
            k++;
        if (k == 0)
            return -H1_E_TE_INVALID;
        if (k < elen) {
            /* transfer-parameters: only for codings we do not implement anyway. */
            size_t j = k;
            while (j < elen && is_ows((uint8_t)elem[j]))
                j++;
            if (j >= elen || elem[j] != ';')
                return -H1_E_TE_INVALID;
            if (IEQ(elem, k, "chunked"))
                return -H1_E_TE_INVALID;
        }
        te->any = true;
        if (IEQ(elem, k, "chunked")) {
            te->chunked++;
            te->last_chunked = true;
        } else {
            te->other++;
            te->last_chunked = false;
        }
    }
    return 0;
}

/* Sets flags on each field and in msg; checks framing fields. host/host_count for the
 * request checks, te/cl for framing. */
struct head_info {
    struct te_info te;
    bool has_cl;
    uint64_t cl;
    size_t host_count;
    const char *host;
    size_t host_len;
    size_t conn_options; /* non-empty Connection list elements */
};

static int analyze_fields(struct h1_message *m, struct head_info *hi)
{
    memset(hi, 0, sizeof(*hi));
    m->flags = 0;
    m->upgrade = NULL;
    m->upgrade_len = 0;

    for (size_t i = 0; i < m->num_headers; i++) {
        struct h1_header *h = &m->headers[i];
        const char *v = h->value;
        size_t vn = h->value_len;
        int rc;

        switch (h->name_len) {
        case 2:
            if (IEQ(h->name, 2, "te") && h1_list_has_token(v, vn, "trailers", 8))
                m->flags |= H1_F_TE_TRAILERS;
            break;
        case 4:
            if (IEQ(h->name, 4, "host")) {
                if (hi->host_count++ == 0) {
                    hi->host = v;
                    hi->host_len = vn;
                }
            }
            break;
        case 6:
            if (IEQ(h->name, 6, "expect")) {
                if (IEQ(v, vn, "100-continue"))
                    m->flags |= H1_F_EXPECT_CONTINUE;
                else
                    m->flags |= H1_F_EXPECT_OTHER;
            }
            break;
        case 7:
            if (IEQ(h->name, 7, "upgrade")) {
                if (!m->upgrade) {
                    m->upgrade = v;
                    m->upgrade_len = vn;
                }
                if (h1_list_has_token(v, vn, "websocket", 9))
                    m->flags |= H1_F_UPGRADE_WEBSOCKET;
            } else if (IEQ(h->name, 7, "trailer")) {
                m->flags |= H1_F_HAS_TRAILER;
            }
            break;
        case 10:
            if (IEQ(h->name, 10, "connection")) {
                size_t pos = 0, tl;
                const char *t;
                while (list_next(v, vn, &pos, &t, &tl))
                    hi->conn_options += tl > 0;
                /* Each option may name a field to strip: bounded, so marking them costs
                 * at most H1_MAX_CONNECTION_OPTIONS passes over the fields. */
                if (hi->conn_options > H1_MAX_CONNECTION_OPTIONS)
                    return -H1_E_CONN_OPTIONS;
                if (h1_list_has_token(v, vn, "close", 5))
                    m->flags |= H1_F_CONN_CLOSE;
                if (h1_list_has_token(v, vn, "keep-alive", 10))
                    m->flags |= H1_F_CONN_KEEP_ALIVE;
                if (h1_list_has_token(v, vn, "upgrade", 7))
                    m->flags |= H1_F_CONN_UPGRADE;
            }
            break;
        case 14:
            if (IEQ(h->name, 14, "content-length")) {
                uint64_t x;
                rc = parse_content_length(v, vn, &x);
                if (rc)
                    return rc;
                if (hi->has_cl && x != hi->cl)
                    return -H1_E_CL_MULTIPLE;
                hi->has_cl = true;
                hi->cl = x;
            }
            break;
        case 17:
            if (IEQ(h->name, 17, "transfer-encoding")) {
                m->flags |= H1_F_HAS_TE;
                rc = parse_te(v, vn, &hi->te);
                if (rc)
                    return rc;
            }
            break;
        }
    }
    if ((m->flags & H1_F_HAS_TE) && !hi->te.any)
        return -H1_E_TE_INVALID;

    /* Hop-by-hop fields (RFC 9110 §7.6.1): the fixed set, then what Connection names.
     * Host is never stripped, whatever Connection says: routing needs it, and
     * "Connection: host" is a known proxy-confusion trick. */
    for (size_t i = 0; i < m->num_headers; i++)
        if (h1_is_hop_by_hop_name(m->headers[i].name, m->headers[i].name_len))
            m->headers[i].flags |= H1_HF_HOP_BY_HOP;
    for (size_t j = 0; hi->conn_options && j < m->num_headers; j++) {
        const struct h1_header *c = &m->headers[j];
        size_t pos = 0, tl;
        const char *t;
        if (!IEQ(c->name, c->name_len, "connection"))
            continue;
        while (list_next(c->value, c->value_len, &pos, &t, &tl)) {
            if (tl == 0 || IEQ(t, tl, "host"))
                continue;
            for (size_t i = 0; i < m->num_headers; i++)
                if (ieq(m->headers[i].name, m->headers[i].name_len, t, tl))
                    m->headers[i].flags |= H1_HF_HOP_BY_HOP;
        }
    }

    /* Upgrade counts only with "Connection: upgrade", and never in HTTP/1.0 (RFC 9110
     * §7.8). */
    if (!m->upgrade || !(m->flags & H1_F_CONN_UPGRADE) || m->minor_version == 0)
        m->flags &= ~(unsigned)(H1_F_UPGRADE | H1_F_UPGRADE_WEBSOCKET);
    else
        m->flags |= H1_F_UPGRADE;
    return 0;
}

/* Transfer-Encoding checks shared by requests and responses (RFC 9112 §6.1, §6.3). */
static int check_te(const struct h1_message *m, const struct head_info *hi, bool request)
{
    if (!(m->flags & H1_F_HAS_TE))
        return 0;
    if (hi->has_cl)
        return -H1_E_CL_AND_TE;
    if (m->minor_version == 0)
        return -H1_E_TE_HTTP10;
    if (hi->te.chunked > 1)
        return -H1_E_TE_CHUNKED_TWICE;
    if (request && !hi->te.last_chunked)
        return -H1_E_TE_NOT_CHUNKED_LAST;
    if (hi->te.other)
        return -H1_E_TE_UNKNOWN;
    return 0;
}

/* Keep-alive per RFC 9112 §9.3. */
static bool keep_alive(const struct h1_message *m)
{
    if (m->flags & H1_F_CONN_CLOSE)
        return false;
    return m->minor_version == 1 || (m->flags & H1_F_CONN_KEEP_ALIVE);
}

/* What requests and responses share after the start line (which ended at pos, or failed
 * with it): the header fields, and once the head is complete the field and
 * Transfer-Encoding checks that fill hi. Returns the head's end, -EAGAIN or -H1_E_*. */
static ssize_t head_fields(const char *buf, ssize_t pos, size_t end, struct h1_message *m,
                           size_t max_headers, bool complete, bool request, struct head_info *hi)
{
    int rc;
    if (pos < 0)
        return pos;
    pos = parse_fields(buf, (size_t)pos, end, m->headers, max_headers, &m->num_headers);
    if (pos < 0 || !complete)
        return pos;
    rc = analyze_fields(m, hi);
    if (rc)
        return rc;
    rc = check_te(m, hi, request);
    return rc ? rc : pos;
}

static ssize_t request_head(const char *buf, size_t start, size_t end, struct h1_request *r,
                            size_t max_headers, bool complete)
{
    struct h1_message *m = &r->msg;
    struct head_info hi;
    ssize_t pos;

    m->num_headers = 0;
    pos = head_fields(buf, parse_request_line(buf, start, end, r), end, m, max_headers, complete,
                      true, &hi);
    if (pos < 0 || !complete)
        return pos;
    if (hi.host_count > 1)
        return -H1_E_HOST_MULTIPLE;
    if (hi.host_count == 0 && m->minor_version == 1)
        return -H1_E_HOST_MISSING;
    /* An empty Host is legal when the target URI has no authority (RFC 9112 §3.2). */
    if (hi.host_count && hi.host_len && !valid_authority(hi.host, hi.host_len, false))
        return -H1_E_BAD_HOST;
    r->host = hi.host;
    r->host_len = hi.host_len;
    if (!r->authority) {
        r->authority = hi.host;
        r->authority_len = hi.host_len;
    }

    /* RFC 9112 §6.3: chunked (checked above to be last), else Content-Length, else no
     * body: a request is never close-delimited. */
    m->content_length = 0;
    if (m->flags & H1_F_HAS_TE) {
        m->body = H1_BODY_CHUNKED;
    } else if (hi.has_cl) {
        m->body = H1_BODY_LENGTH;
        m->content_length = hi.cl;
    } else {
        m->body = H1_BODY_NONE;
    }
    if (m->minor_version == 0)
        m->flags &= ~(unsigned)H1_F_EXPECT_CONTINUE; /* RFC 9110 §10.1.1 */
    if (keep_alive(m))
        m->flags |= H1_F_KEEP_ALIVE;
    return pos;
}

static ssize_t response_head(const char *buf, size_t start, size_t end, struct h1_response *r,
                             size_t max_headers, bool complete, enum h1_method req_method)
{
    struct h1_message *m = &r->msg;
    struct head_info hi;
    ssize_t pos;

    m->num_headers = 0;
    pos = head_fields(buf, parse_status_line(buf, start, end, r), end, m, max_headers, complete,
                      false, &hi);
    if (pos < 0 || !complete)
        return pos;

    m->content_length = 0;
    int s = r->status;
    if (s == 101) {
        m->body = H1_BODY_TUNNEL;
    } else if (s < 200 || s == 204 || s == 304 || req_method == H1_M_HEAD) {
        m->body = H1_BODY_NONE;
    } else if (req_method == H1_M_CONNECT && s < 300) {
        m->body = H1_BODY_TUNNEL;
    } else if (m->flags & H1_F_HAS_TE) {
        m->body = hi.te.last_chunked ? H1_BODY_CHUNKED : H1_BODY_CLOSE;
    } else if (hi.has_cl) {
        m->body = H1_BODY_LENGTH;
        m->content_length = hi.cl;
    } else {
        m->body = H1_BODY_CLOSE;
    }
    if (keep_alive(m) && m->body != H1_BODY_CLOSE && m->body != H1_BODY_TUNNEL)
        m->flags |= H1_F_KEEP_ALIVE;
    return pos;
}

/* ---- head parsers: scanner + structure ---- */

void h1_parser_reset(struct h1_parser *p)
{
    p->scanned = p->head_start = p->line_start = p->lines = 0;
}

void h1_parser_init(struct h1_parser *p, const struct h1_limits *limits)
{
    p->max_head_len =
        limits && limits->max_head_len ? limits->max_head_len : H1_DEFAULT_MAX_HEAD_LEN;
    p->max_headers = limits && limits->max_headers ? limits->max_headers : H1_DEFAULT_MAX_HEADERS;
    if (p->max_head_len > INT32_MAX)
        p->max_head_len = INT32_MAX;
    h1_parser_reset(p);
}

typedef ssize_t (*h1_head_cb)(const char *buf, size_t start, size_t end, void *out,
                              size_t max_headers, bool complete, enum h1_method req_method);

static ssize_t request_head_cb(const char *buf, size_t start, size_t end, void *out,
                               size_t max_headers, bool complete, enum h1_method unused)
{
    (void)unused;
    return request_head(buf, start, end, out, max_headers, complete);
}

static ssize_t response_head_cb(const char *buf, size_t start, size_t end, void *out,
                                size_t max_headers, bool complete, enum h1_method req_method)
{
    return response_head(buf, start, end, out, max_headers, complete, req_method);
}

static ssize_t parse_head(struct h1_parser *p, const char *buf, size_t len, h1_head_cb cb,
                          void *out, struct h1_message *m, bool request, enum h1_method req_method)
{
    size_t max_headers = p->max_headers;
    if (m->headers_cap < max_headers)
        max_headers = m->headers_cap;
    if (p->scanned > len)
        h1_parser_reset(p); /* not the same buffer grown: start over */

    struct scan s = {p->scanned, p->line_start, p->lines, p->head_start};
    ssize_t rc;

    for (;;) {
        enum scan_result r = scan(&s, buf, len, p->max_head_len, max_headers + 1, request);
        switch (r) {
        case SCAN_MORE:
            p->scanned = s.pos;
            p->line_start = s.line_start;
            p->lines = s.lines;
            p->head_start = s.start;
            if (len >= p->max_head_len) {
                h1_parser_reset(p);
                return -H1_E_HEAD_TOO_LARGE;
            }
            return -EAGAIN;
        case SCAN_LINE1:
            rc = cb(buf, s.start, s.pos, out, max_headers, false, req_method);
            if (rc == -EAGAIN)
                continue;
            if (rc >= 0) /* cannot happen: no empty line yet */
                rc = request ? -H1_E_BAD_REQUEST_LINE : -H1_E_BAD_STATUS_LINE;
            h1_parser_reset(p);
            return rc;
        case SCAN_TOO_MANY:
            h1_parser_reset(p);
            return -H1_E_TOO_MANY_HEADERS;
        case SCAN_BAD:
            /* Name the error: the structural parser meets this byte in context. */
            rc = cb(buf, s.start, s.pos, out, max_headers, false, req_method);
            if (rc >= 0 || rc == -EAGAIN)
                rc = -H1_E_BAD_HEADER_VALUE;
            h1_parser_reset(p);
            return rc;
        case SCAN_END:
            rc = cb(buf, s.start, s.pos, out, max_headers, true, req_method);
            if (rc == -EAGAIN || (rc >= 0 && (size_t)rc != s.pos))
                rc = -H1_E_BAD_HEADER_VALUE; /* cannot happen: both layers agree */
            h1_parser_reset(p);
            return rc;
        }
    }
}

ssize_t h1_parse_request(struct h1_parser *p, const char *buf, size_t len, struct h1_request *req)
{
    return parse_head(p, buf, len, request_head_cb, req, &req->msg, true, H1_M_OTHER);
}

ssize_t h1_parse_response(struct h1_parser *p, const char *buf, size_t len,
                          enum h1_method request_method, struct h1_response *resp)
{
    return parse_head(p, buf, len, response_head_cb, resp, &resp->msg, false, request_method);
}

/* ---- connection helpers ---- */

bool h1_is_hop_by_hop_name(const char *n, size_t len)
{
    switch (len) {
    case 2:
        return IEQ(n, len, "te");
    case 7:
        return IEQ(n, len, "upgrade") || IEQ(n, len, "trailer");
    case 10:
        return IEQ(n, len, "connection") || IEQ(n, len, "keep-alive");
    case 16:
        return IEQ(n, len, "proxy-connection");
    case 17:
        return IEQ(n, len, "transfer-encoding");
    default:
        return false;
    }
}

const struct h1_header *h1_find_header(const struct h1_message *msg, const char *name, size_t len)
{
    for (size_t i = 0; i < msg->num_headers; i++)
        if (ieq(msg->headers[i].name, msg->headers[i].name_len, name, len))
            return &msg->headers[i];
    return NULL;
}

/* ---- body decoder ---- */

static const char *const state_names[] = {
    [H1_S_LENGTH] = "length",
    [H1_S_CLOSE] = "close",
    [H1_S_CHUNK_SIZE] = "chunk_size",
    [H1_S_CHUNK_SIZE_WS] = "chunk_size_ws",
    [H1_S_CHUNK_EXT] = "chunk_ext",
    [H1_S_CHUNK_SIZE_LF] = "chunk_size_lf",
    [H1_S_CHUNK_DATA] = "chunk_data",
    [H1_S_CHUNK_DATA_CR] = "chunk_data_cr",
    [H1_S_CHUNK_DATA_LF] = "chunk_data_lf",
    [H1_S_TRAILERS] = "trailers",
    [H1_S_DONE] = "done",
    [H1_S_ERROR] = "error",
};

const char *h1_state_str(enum h1_state s)
{
    if ((unsigned)s < sizeof(state_names) / sizeof(state_names[0]) && state_names[s])
        return state_names[s];
    return "unknown";
}

void h1_decoder_init(struct h1_decoder *d, enum h1_body body, uint64_t content_length)
{
    memset(d, 0, sizeof(*d));
    switch (body) {
    case H1_BODY_NONE:
        d->state = H1_S_DONE;
        break;
    case H1_BODY_LENGTH:
        d->remaining = content_length;
        d->state = content_length ? H1_S_LENGTH : H1_S_DONE;
        break;
    case H1_BODY_CHUNKED:
        d->state = H1_S_CHUNK_SIZE;
        break;
    case H1_BODY_CLOSE:
    case H1_BODY_TUNNEL:
    default:
        d->state = H1_S_CLOSE;
        break;
    }
}

static ssize_t decoder_fail(struct h1_decoder *d, int err)
{
    d->state = H1_S_ERROR;
    d->error = err;
    return err;
}

/* The trailer section, from its first byte at buf[0] (RFC 9112 §7.1.2). */
static ssize_t decode_trailers(struct h1_decoder *d, const char *buf, size_t len)
{
    size_t limit = d->max_trailers_len ? d->max_trailers_len : H1_DEFAULT_MAX_HEAD_LEN;
    size_t max = d->max_trailers ? d->max_trailers : H1_DEFAULT_MAX_HEADERS;
    if (d->trailers && d->trailers_cap < max)
        max = d->trailers_cap;
    if (d->trailer_scanned > len)
        d->trailer_scanned = d->trailer_line_start = d->trailer_lines = 0;

    struct scan s = {d->trailer_scanned, d->trailer_line_start, d->trailer_lines, 0};
    ssize_t rc;
    for (;;) {
        switch (scan(&s, buf, len, limit, max, false)) {
        case SCAN_LINE1:
            continue;
        case SCAN_MORE:
            d->trailer_scanned = s.pos;
            d->trailer_line_start = s.line_start;
            d->trailer_lines = s.lines;
            if (len >= limit)
                return decoder_fail(d, -H1_E_TRAILERS_TOO_LARGE);
            return -EAGAIN;
        case SCAN_TOO_MANY:
            return decoder_fail(d, -H1_E_TOO_MANY_HEADERS);
        case SCAN_BAD:
            rc = parse_fields(buf, 0, s.pos, d->trailers, max, &d->num_trailers);
            if (rc >= 0 || rc == -EAGAIN)
                rc = -H1_E_BAD_HEADER_VALUE;
            d->num_trailers = 0;
            return decoder_fail(d, (int)rc);
        case SCAN_END:
            rc = parse_fields(buf, 0, s.pos, d->trailers, max, &d->num_trailers);
            if (rc < 0 || (size_t)rc != s.pos) {
                d->num_trailers = 0;
                return decoder_fail(d, rc < 0 && rc != -EAGAIN ? (int)rc : -H1_E_BAD_HEADER_VALUE);
            }
            if (d->trailers)
                for (size_t i = 0; i < d->num_trailers; i++)
                    if (h1_is_hop_by_hop_name(d->trailers[i].name, d->trailers[i].name_len))
                        d->trailers[i].flags |= H1_HF_HOP_BY_HOP;
            d->state = H1_S_DONE;
            return rc;
        }
    }
}

ssize_t h1_decoder_feed(struct h1_decoder *d, const char *buf, size_t len, const char **data,
                        size_t *data_len)
{
    size_t max_ext = d->max_chunk_ext ? d->max_chunk_ext : H1_DEFAULT_MAX_CHUNK_EXT;
    size_t i = 0;

    *data = NULL;
    *data_len = 0;
    if (d->state == H1_S_ERROR)
        return d->error;

    while (i < len) {
        uint8_t c = (uint8_t)buf[i];
        int v;

        switch (d->state) {
        case H1_S_LENGTH:
        case H1_S_CHUNK_DATA: {
            size_t n = len - i;
            if (n > d->remaining)
                n = (size_t)d->remaining;
            *data = buf + i;
            *data_len = n;
            d->remaining -= n;
            d->total += n;
            if (d->remaining == 0)
                d->state = d->state == H1_S_LENGTH ? H1_S_DONE : H1_S_CHUNK_DATA_CR;
            return (ssize_t)(i + n);
        }
        case H1_S_CLOSE:
            *data = buf + i;
            *data_len = len - i;
            d->total += len - i;
            return (ssize_t)len;

        case H1_S_CHUNK_SIZE:
            v = hex_value(c);
            if (v >= 0) {
                /* Leading zeros count: more digits than a uint64 holds is refused, so no
                 * two parsers can disagree about where a huge size wraps. */
                if (d->digits == H1_MAX_CHUNK_SIZE_DIGITS)
                    return decoder_fail(d, -H1_E_CHUNK_SIZE_OVERFLOW);
                d->remaining = (d->remaining << 4) | (unsigned)v;
                d->digits++;
                i++;
                break;
            }
            if (d->digits == 0)
                return decoder_fail(d, c == '\n' ? -H1_E_BARE_LF : -H1_E_CHUNK_SIZE);
            if (c == '\r') {
                d->state = H1_S_CHUNK_SIZE_LF;
            } else if (c == ';') {
                d->state = H1_S_CHUNK_EXT;
            } else if (is_ows(c)) {
                d->state = H1_S_CHUNK_SIZE_WS;
            } else if (c == '\n') {
                return decoder_fail(d, -H1_E_BARE_LF);
            } else {
                return decoder_fail(d, -H1_E_CHUNK_SIZE);
            }
            d->ext_len = 1;
            i++;
            break;

        case H1_S_CHUNK_SIZE_WS:
            /* BWS is allowed only before ";" (RFC 9112 §7.1.1): "5 \r\n" is refused. */
            if (c == ';')
                d->state = H1_S_CHUNK_EXT;
            else if (!is_ows(c))
                return decoder_fail(d, -H1_E_CHUNK_SIZE);
            if (++d->ext_len > max_ext)
                return decoder_fail(d, -H1_E_CHUNK_EXT_TOO_LONG);
            i++;
            break;

        case H1_S_CHUNK_EXT:
            /* Extensions are not interpreted, only bounded and kept free of CTLs, so the
             * line always ends at the first CR, which must precede LF. */
            if (c == '\r') {
                d->state = H1_S_CHUNK_SIZE_LF;
            } else if (c == '\n') {
                return decoder_fail(d, -H1_E_BARE_LF);
            } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return decoder_fail(d, -H1_E_CHUNK_EXT);
            } else if (++d->ext_len > max_ext) {
                return decoder_fail(d, -H1_E_CHUNK_EXT_TOO_LONG);
            }
            i++;
            break;

        case H1_S_CHUNK_SIZE_LF:
            if (c != '\n')
                return decoder_fail(d, -H1_E_BARE_CR);
            i++;
            if (d->remaining == 0) {
                d->state = H1_S_TRAILERS;
                d->trailer_scanned = d->trailer_line_start = d->trailer_lines = 0;
                d->num_trailers = 0;
                /* The trailer section is parsed from its own first byte: hand back the
                 * framing consumed so far; the next call starts there. */
                return (ssize_t)i;
            }
            d->state = H1_S_CHUNK_DATA;
            break;

        case H1_S_CHUNK_DATA_CR:
            if (c != '\r')
                return decoder_fail(d, -H1_E_CHUNK_DATA_CRLF);
            d->state = H1_S_CHUNK_DATA_LF;
            i++;
            break;

        case H1_S_CHUNK_DATA_LF:
            if (c != '\n')
                return decoder_fail(d, -H1_E_CHUNK_DATA_CRLF);
            d->state = H1_S_CHUNK_SIZE;
            d->remaining = 0;
            d->digits = 0;
            d->ext_len = 0;
            i++;
            break;

        case H1_S_TRAILERS:
            return decode_trailers(d, buf, len); /* i == 0 here, see CHUNK_SIZE_LF */

        case H1_S_DONE:
            return (ssize_t)i;

        case H1_S_ERROR:
        default:
            return d->error;
        }
    }
    if (d->state == H1_S_TRAILERS && len == 0)
        return -EAGAIN;
    return (ssize_t)i;
}

int h1_decoder_eof(struct h1_decoder *d)
{
    if (d->state == H1_S_DONE)
        return 0;
    if (d->state == H1_S_CLOSE) {
        d->state = H1_S_DONE;
        return 0;
    }
    if (d->state == H1_S_ERROR)
        return d->error;
    return (int)decoder_fail(d, -H1_E_BODY_TRUNCATED);
}

/* ---- serializer ---- */

struct out {
    char *p;
    size_t cap, len;
    bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full || n > o->cap - o->len) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_uint(struct out *o, uint64_t v, unsigned base)
{
    char tmp[24];
    size_t n = sizeof(tmp);
    do {
        tmp[--n] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    put(o, tmp + n, sizeof(tmp) - n);
}

static bool valid_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((uint8_t)s[i]))
            return false;
    return true;
}

/* field-value without leading/trailing OWS, so it reads back byte for byte. */
static bool valid_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_value_char((uint8_t)s[i]))
            return false;
    return n == 0 || (!is_ows((uint8_t)s[0]) && !is_ows((uint8_t)s[n - 1]));
}

static int put_fields(struct out *o, const struct h1_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!valid_token(h[i].name, h[i].name_len) || !valid_value(h[i].value, h[i].value_len))
            return -EINVAL;
        put(o, h[i].name, h[i].name_len);
        put(o, ": ", 2);
        put(o, h[i].value, h[i].value_len);
        put(o, "\r\n", 2);
    }
    put(o, "\r\n", 2);
    return 0;
}

static ssize_t finish(const struct out *o)
{
    return o->full ? -ENOSPC : (ssize_t)o->len;
}

ssize_t h1_write_request_head(char *out, size_t cap, const char *method, size_t method_len,
                              const char *target, size_t target_len,
                              const struct h1_header *headers, size_t num_headers)
{
    struct out o = {out, cap, 0, false};

    if (!valid_token(method, method_len) || target_len == 0)
        return -EINVAL;
    for (size_t i = 0; i < target_len; i++)
        if (!is_vchar((uint8_t)target[i]))
            return -EINVAL;
    put(&o, method, method_len);
    put(&o, " ", 1);
    put(&o, target, target_len);
    put(&o, " HTTP/1.1\r\n", 11);
    if (put_fields(&o, headers, num_headers))
        return -EINVAL;
    return finish(&o);
}

ssize_t h1_write_response_head(char *out, size_t cap, int status, const char *reason,
                               size_t reason_len, const struct h1_header *headers,
                               size_t num_headers)
{
    struct out o = {out, cap, 0, false};

    if (status < 100 || status > 599)
        return -EINVAL;
    if (!reason) {
        reason = h1_status_reason(status);
        reason_len = strlen(reason);
    }
    for (size_t i = 0; i < reason_len; i++)
        if (!is_value_char((uint8_t)reason[i]))
            return -EINVAL;
    put(&o, "HTTP/1.1 ", 9);
    put_uint(&o, (unsigned)status, 10);
    put(&o, " ", 1);
    put(&o, reason, reason_len);
    put(&o, "\r\n", 2);
    if (put_fields(&o, headers, num_headers))
        return -EINVAL;
    return finish(&o);
}

ssize_t h1_write_chunk_header(char *out, size_t cap, uint64_t size)
{
    struct out o = {out, cap, 0, false};

    if (size == 0)
        return -EINVAL;
    put_uint(&o, size, 16);
    put(&o, "\r\n", 2);
    return finish(&o);
}

ssize_t h1_write_last_chunk(char *out, size_t cap, const struct h1_header *trailers,
                            size_t num_trailers)
{
    struct out o = {out, cap, 0, false};

    put(&o, "0\r\n", 3);
    if (put_fields(&o, trailers, num_trailers))
        return -EINVAL;
    return finish(&o);
}

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {103, "Early Hints"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *h1_status_reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "";
}
