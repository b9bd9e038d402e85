/*
 * stream.c - the request model and HTTP/1.1 <-> HTTP/2 translation. See stream.h for the
 * decisions; this file holds the arena, the per-codec conversions, the proxy's header
 * edits and local replies. Pure: one stream's heads belong to one worker thread.
 */
#include "stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct stream_block {
    struct stream_block *next;
    size_t used, cap;
    char data[];
};

static const char *const error_names[] = {
    [STREAM_E_TOO_LARGE - 3000] = "headers_too_large",
    [STREAM_E_TOO_MANY - 3000] = "too_many_headers",
    [STREAM_E_NO_AUTHORITY - 3000] = "no_authority",
    [STREAM_E_BAD_PSEUDO - 3000] = "bad_pseudo_header",
    [STREAM_E_BAD_FIELD - 3000] = "bad_field",
    [STREAM_E_HOST_MISMATCH - 3000] = "host_mismatch",
    [STREAM_E_NOMEM - 3000] = "nomem",
};

const char *stream_error_str(int err)
{
    if (err < 0)
        err = -err;
    if (err >= 3000 && err < STREAM_E__COUNT)
        return error_names[err - 3000];
    if (err == ENOSPC)
        return "nospc";
    if (err == EINVAL)
        return "inval";
    return "unknown";
}

int stream_error_status(int err)
{
    if (err < 0)
        err = -err;
    if (err == STREAM_E_TOO_LARGE || err == STREAM_E_TOO_MANY)
        return 431;
    if (err == STREAM_E_NOMEM)
        return 500;
    return 400;
}

/* ---- the head and its arena ---- */

static size_t fields_cap(const struct stream_head *h)
{
    return h->limits.max_fields + STREAM_EXTRA_FIELDS;
}

int stream_head_init(struct stream_head *h, enum stream_kind kind,
                     const struct stream_limits *limits)
{
    memset(h, 0, sizeof(*h));
    h->limits.max_header_len =
        limits && limits->max_header_len ? limits->max_header_len : STREAM_DEFAULT_MAX_HEADER_LEN;
    h->limits.max_fields =
        limits && limits->max_fields ? limits->max_fields : STREAM_DEFAULT_MAX_FIELDS;
    h->kind = kind;
    h->fields.cap = fields_cap(h);
    h->fields.v = calloc(h->fields.cap, sizeof(*h->fields.v));
    if (!h->fields.v) {
        h->fields.cap = 0;
        return -STREAM_E_NOMEM;
    }
    return 0;
}

void stream_head_reset(struct stream_head *h, enum stream_kind kind)
{
    struct stream_block *keep = NULL, *b = h->blocks;
    /* Keep the oldest block (the first one, usually the only one) for reuse. */
    while (b) {
        struct stream_block *next = b->next;
        if (!next) {
            keep = b;
            break;
        }
        free(b);
        b = next;
    }
    if (keep)
        keep->used = 0;
    h->blocks = keep;
    h->arena_len = keep ? keep->cap : 0;
    h->kind = kind;
    h->method = h->scheme = h->authority = h->path = NULL;
    h->method_len = h->scheme_len = h->authority_len = h->path_len = 0;
    h->status = 0;
    h->upgrade = NULL;
    h->upgrade_len = 0;
    h->fields.n = 0;
    h->content_length = 0;
    h->flags = 0;
    h->in_len = 0;
}

void stream_head_free(struct stream_head *h)
{
    struct stream_block *b = h->blocks;
    while (b) {
        struct stream_block *next = b->next;
        free(b);
        b = next;
    }
    free(h->fields.v);
    free(h->h1v);
    free(h->h2v);
    memset(h, 0, sizeof(*h));
}

/* The arena may hold twice the input limit: room for the proxy's own values and for the
 * joined cookie and lower-cased names the serializers make, never unbounded. */
static char *arena_alloc(struct stream_head *h, size_t len)
{
    struct stream_block *b = h->blocks;
    if (b && b->cap - b->used >= len) {
        char *p = b->data + b->used;
        b->used += len;
        return p;
    }
    size_t cap = len > STREAM_ARENA_BLOCK ? len : STREAM_ARENA_BLOCK;
    if (h->arena_len + cap > 2 * h->limits.max_header_len + 2 * STREAM_ARENA_BLOCK)
        return NULL;
    b = malloc(sizeof(*b) + cap);
    if (!b)
        return NULL;
    b->cap = cap;
    b->used = len;
    b->next = h->blocks;
    h->blocks = b;
    h->arena_len += cap;
    return b->data;
}

const char *stream_head_strdup(struct stream_head *h, const char *s, size_t len)
{
    char *p = arena_alloc(h, len + 1);
    if (!p)
        return NULL;
    memcpy(p, s, len);
    p[len] = 0;
    return p;
}

static char *strdup_lower(struct stream_head *h, const char *s, size_t len)
{
    char *p = arena_alloc(h, len + 1);
    if (!p)
        return NULL;
    for (size_t i = 0; i < len; i++)
        p[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
    p[len] = 0;
    return p;
}

static int count_in(struct stream_head *h, size_t len)
{
    if (len > h->limits.max_header_len || h->in_len + len > h->limits.max_header_len)
        return -STREAM_E_TOO_LARGE;
    h->in_len += len;
    return 0;
}

static int add_field(struct stream_head *h, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    if (h->fields.n >= h->limits.max_fields)
        return -STREAM_E_TOO_MANY;
    int rc = count_in(h, name_len + value_len);
    if (rc)
        return rc;
    const char *n = strdup_lower(h, name, name_len);
    const char *v = n ? stream_head_strdup(h, value, value_len) : NULL;
    if (!v)
        return -STREAM_E_NOMEM;
    h->fields.v[h->fields.n++] = (struct router_header){n, name_len, v, value_len};
    return 0;
}

int stream_head_add(struct stream_head *h, const char *name, size_t name_len, const char *value,
                    size_t value_len)
{
    return add_field(h, name, name_len, value, value_len);
}

int stream_head_set(struct stream_head *h, const char *name, size_t name_len, const char *value,
                    size_t value_len)
{
    const char *n = strdup_lower(h, name, name_len);
    const char *v = n ? stream_head_strdup(h, value, value_len) : NULL;
    if (!v)
        return -STREAM_E_NOMEM;
    return router_headers_set(&h->fields, n, name_len, v, value_len);
}

const struct router_header *stream_head_get(const struct stream_head *h, const char *name)
{
    return router_headers_get(&h->fields, name, strlen(name));
}

static int set_pseudo(struct stream_head *h, const char **dst, size_t *dst_len, const char *s,
                      size_t len)
{
    int rc = count_in(h, len);
    if (rc)
        return rc;
    *dst = stream_head_strdup(h, s, len);
    *dst_len = len;
    return *dst ? 0 : -STREAM_E_NOMEM;
}

void stream_router_request(const struct stream_head *h, const char *client_ns,
                           struct router_request *out)
{
    memset(out, 0, sizeof(*out));
    out->method = h->method;
    out->method_len = h->method_len;
    out->path = h->path;
    out->path_len = h->path_len;
    out->authority = h->authority;
    out->authority_len = h->authority_len;
    out->headers = h->fields.v;
    out->n_headers = h->fields.n;
    out->client_ns = client_ns;
}

/* ---- small helpers ---- */

static bool name_is(const char *n, size_t len, const char *lit)
{
    size_t l = strlen(lit);
    return len == l && strncasecmp(n, lit, l) == 0;
}

static bool mem_eq_nocase(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && (alen == 0 || strncasecmp(a, b, alen) == 0);
}

/* Parses a Content-Length value h1 or nghttp2 accepted ("5", or h1's merged "5, 5"):
 * leading digits, at most 19. */
static int parse_cl(const char *v, size_t len, uint64_t *out)
{
    uint64_t x = 0;
    size_t i = 0;
    for (; i < len && v[i] >= '0' && v[i] <= '9'; i++) {
        if (i >= 19)
            return -1;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (i == 0)
        return -1;
    for (; i < len; i++)
        if (v[i] != ',' && v[i] != ' ' && v[i] != '\t' && (v[i] < '0' || v[i] > '9'))
            return -1;
    *out = x;
    return 0;
}

/* Names a proxy never forwards whatever the message says (RFC 9110 §7.6.1, RFC 9113
 * §8.2.2), plus the ones the model keeps elsewhere (host, content-length). */
static bool is_connection_specific(const char *n, size_t len)
{
    return h1_is_hop_by_hop_name(n, len);
}

/* Fields that must never appear as trailers (RFC 9110 §6.5.1: framing, routing, control). */
static bool trailer_forbidden(const char *n, size_t len)
{
    return len == 0 || n[0] == ':' || h1_is_hop_by_hop_name(n, len) ||
           name_is(n, len, "content-length") || name_is(n, len, "host") ||
           name_is(n, len, "content-type") || name_is(n, len, "content-encoding") ||
           name_is(n, len, "content-range") || name_is(n, len, "expect") ||
           name_is(n, len, "cache-control") || name_is(n, len, "authorization") ||
           name_is(n, len, "set-cookie") || name_is(n, len, "cookie");
}

static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool valid_value(const char *v, size_t len)
{
    if (len && (v[0] == ' ' || v[0] == '\t' || v[len - 1] == ' ' || v[len - 1] == '\t'))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static bool valid_name(const char *n, size_t len)
{
    if (!len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)n[i]))
            return false;
    return true;
}

/* An authority that an HTTP/1.1 Host can carry: no userinfo (RFC 9113 §8.3.1), no
 * whitespace, CTLs or bytes outside ASCII, no path characters. */
static bool valid_authority(const char *a, size_t len)
{
    if (!len)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c <= 0x20 || c >= 0x7f || c == '@' || c == '/' || c == '?' || c == '#' || c == '\\')
            return false;
    }
    return true;
}

/* A request-target HTTP/1.1 can carry: VCHARs only. */
static bool valid_path(const char *p, size_t len, bool options)
{
    if (!len)
        return false;
    if (len == 1 && p[0] == '*')
        return options;
    if (p[0] != '/')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

/* ---- from HTTP/1.1 ---- */

static int from_h1_fields(struct stream_head *h, const struct h1_message *m, bool request)
{
    for (size_t i = 0; i < m->num_headers; i++) {
        const struct h1_header *f = &m->headers[i];
        if (name_is(f->name, f->name_len, "te")) {
            if (request && h1_list_has_token(f->value, f->value_len, "trailers", 8))
                h->flags |= STREAM_F_TE_TRAILERS;
            continue;
        }
        if ((f->flags & H1_HF_HOP_BY_HOP) || is_connection_specific(f->name, f->name_len))
            continue;
        if (name_is(f->name, f->name_len, "content-length"))
            continue; /* the hint below */
        if (request && name_is(f->name, f->name_len, "host"))
            continue; /* becomes the authority */
        if (request && name_is(f->name, f->name_len, "expect") && (m->flags & H1_F_EXPECT_CONTINUE))
            continue;
        int rc = add_field(h, f->name, f->name_len, f->value, f->value_len);
        if (rc)
            return rc;
    }
    if (m->minor_version == 0)
        h->flags |= STREAM_F_HTTP10;
    if (m->flags & H1_F_KEEP_ALIVE)
        h->flags |= STREAM_F_KEEP_ALIVE;
    const struct h1_header *cl = h1_find_header(m, "content-length", 14);
    if (m->body == H1_BODY_LENGTH) {
        h->content_length = m->content_length;
        h->flags |= STREAM_F_HAS_CL;
        if (m->content_length == 0)
            h->flags |= STREAM_F_END_STREAM;
    } else if (m->body == H1_BODY_NONE) {
        h->flags |= STREAM_F_END_STREAM;
        /* A HEAD or 304 response keeps the length of the representation it describes. */
        if (!request && cl && parse_cl(cl->value, cl->value_len, &h->content_length) == 0)
            h->flags |= STREAM_F_HAS_CL;
    }
    return 0;
}

int stream_from_h1_request(struct stream_head *h, const struct h1_request *req,
                           const char *orig_authority, size_t orig_authority_len)
{
    stream_head_reset(h, STREAM_REQUEST);
    int rc = set_pseudo(h, &h->method, &h->method_len, req->method, req->method_len);
    if (rc)
        return rc;
    const char *auth = req->authority;
    size_t auth_len = req->authority_len;
    if (!auth || !auth_len) {
        auth = orig_authority;
        auth_len = orig_authority ? orig_authority_len : 0;
    }
    if (!auth || !auth_len)
        return -STREAM_E_NO_AUTHORITY;
    if ((rc = set_pseudo(h, &h->authority, &h->authority_len, auth, auth_len)))
        return rc;
    switch (req->form) {
    case H1_TARGET_AUTHORITY: /* CONNECT: no scheme, no path (RFC 9113 §8.5) */
        break;
    case H1_TARGET_ASTERISK:
        h->scheme = "http", h->scheme_len = 4;
        rc = set_pseudo(h, &h->path, &h->path_len, "*", 1);
        break;
    case H1_TARGET_ABSOLUTE:
    case H1_TARGET_ORIGIN:
        h->scheme = "http", h->scheme_len = 4;
        /* An absolute-form target with an empty path means "/" (RFC 9112 §3.2.2),
         * or "*" for OPTIONS (RFC 9110 §7.1). */
        if (!req->path_len)
            rc = set_pseudo(h, &h->path, &h->path_len, req->method_id == H1_M_OPTIONS ? "*" : "/",
                            1);
        else
            rc = set_pseudo(h, &h->path, &h->path_len, req->path, req->path_len);
        break;
    }
    if (rc)
        return rc;
    if (req->msg.flags & H1_F_EXPECT_CONTINUE)
        h->flags |= STREAM_F_EXPECT_CONTINUE;
    if ((req->msg.flags & H1_F_UPGRADE) && req->msg.upgrade) {
        h->flags |= STREAM_F_UPGRADE;
        h->upgrade = stream_head_strdup(h, req->msg.upgrade, req->msg.upgrade_len);
        h->upgrade_len = h->upgrade ? req->msg.upgrade_len : 0;
    }
    return from_h1_fields(h, &req->msg, true);
}

int stream_from_h1_response(struct stream_head *h, const struct h1_response *resp)
{
    stream_head_reset(h, STREAM_RESPONSE);
    h->status = resp->status;
    if (resp->status == 101 && resp->msg.upgrade) { /* the switch the proxy passes on */
        h->flags |= STREAM_F_UPGRADE;
        h->upgrade = stream_head_strdup(h, resp->msg.upgrade, resp->msg.upgrade_len);
        h->upgrade_len = h->upgrade ? resp->msg.upgrade_len : 0;
    }
    return from_h1_fields(h, &resp->msg, false);
}

/* ---- from HTTP/2 ---- */

static int from_h2_fields(struct stream_head *h, const struct h2_header *v, size_t n, bool request,
                          const char **host, size_t *host_len)
{
    bool have_cl = false;
    for (size_t i = 0; i < n; i++) {
        const struct h2_header *f = &v[i];
        if (!valid_name(f->name, f->name_len) || !valid_value(f->value, f->value_len))
            return -STREAM_E_BAD_FIELD;
        if (name_is(f->name, f->name_len, "te")) {
            /* nghttp2 only lets "trailers" through (RFC 9113 §8.2.2). */
            if (request && mem_eq_nocase(f->value, f->value_len, "trailers", 8))
                h->flags |= STREAM_F_TE_TRAILERS;
            continue;
        }
        if (is_connection_specific(f->name, f->name_len))
            return -STREAM_E_BAD_FIELD;
        if (name_is(f->name, f->name_len, "content-length")) {
            uint64_t x;
            if (parse_cl(f->value, f->value_len, &x) || (have_cl && x != h->content_length))
                return -STREAM_E_BAD_FIELD;
            have_cl = true;
            h->content_length = x;
            h->flags |= STREAM_F_HAS_CL;
            continue;
        }
        if (request && name_is(f->name, f->name_len, "host")) {
            if (*host)
                return -STREAM_E_HOST_MISMATCH;
            *host = f->value;
            *host_len = f->value_len;
            continue;
        }
        int rc = add_field(h, f->name, f->name_len, f->value, f->value_len);
        if (rc)
            return rc;
    }
    return 0;
}

int stream_from_h2_request(struct stream_head *h, const struct h2_head *hd, bool end_stream)
{
    stream_head_reset(h, STREAM_REQUEST);
    if (!hd->method || !hd->method_len || !valid_name(hd->method, hd->method_len))
        return -STREAM_E_BAD_PSEUDO;
    bool connect = hd->method_len == 7 && memcmp(hd->method, "CONNECT", 7) == 0;
    bool options = hd->method_len == 7 && memcmp(hd->method, "OPTIONS", 7) == 0;
    if (connect) {
        if (hd->scheme || hd->path || !hd->authority)
            return -STREAM_E_BAD_PSEUDO;
    } else {
        if (!hd->scheme || !hd->scheme_len || !hd->path ||
            !valid_path(hd->path, hd->path_len, options))
            return -STREAM_E_BAD_PSEUDO;
    }
    const char *host = NULL;
    size_t host_len = 0;
    int rc = from_h2_fields(h, hd->headers, hd->num_headers, true, &host, &host_len);
    if (rc)
        return rc;
    const char *auth = hd->authority;
    size_t auth_len = hd->authority_len;
    if (auth && host && !mem_eq_nocase(auth, auth_len, host, host_len))
        return -STREAM_E_HOST_MISMATCH;
    if (!auth) {
        auth = host;
        auth_len = host_len;
    }
    if (!auth || !auth_len)
        return -STREAM_E_NO_AUTHORITY;
    if (!valid_authority(auth, auth_len))
        return -STREAM_E_BAD_PSEUDO;
    if ((rc = set_pseudo(h, &h->method, &h->method_len, hd->method, hd->method_len)) ||
        (rc = set_pseudo(h, &h->authority, &h->authority_len, auth, auth_len)))
        return rc;
    if (!connect) {
        if ((rc = set_pseudo(h, &h->scheme, &h->scheme_len, hd->scheme, hd->scheme_len)) ||
            (rc = set_pseudo(h, &h->path, &h->path_len, hd->path, hd->path_len)))
            return rc;
    }
    if (end_stream) {
        h->flags |= STREAM_F_END_STREAM;
        if (h->flags & STREAM_F_HAS_CL && h->content_length != 0)
            return -STREAM_E_BAD_FIELD;
    }
    h->flags |= STREAM_F_KEEP_ALIVE;
    return 0;
}

int stream_from_h2_response(struct stream_head *h, const struct h2_head *hd, bool end_stream)
{
    stream_head_reset(h, STREAM_RESPONSE);
    if (hd->status < 100 || hd->status > 599)
        return -STREAM_E_BAD_PSEUDO;
    h->status = hd->status;
    const char *host = NULL;
    size_t host_len = 0;
    int rc = from_h2_fields(h, hd->headers, hd->num_headers, false, &host, &host_len);
    if (rc)
        return rc;
    if (end_stream)
        h->flags |= STREAM_F_END_STREAM;
    return 0;
}

int stream_trailers_from_h1(struct stream_head *h, const struct h1_header *t, size_t n)
{
    stream_head_reset(h, STREAM_TRAILERS);
    for (size_t i = 0; i < n; i++) {
        if ((t[i].flags & H1_HF_HOP_BY_HOP) || trailer_forbidden(t[i].name, t[i].name_len))
            continue;
        int rc = add_field(h, t[i].name, t[i].name_len, t[i].value, t[i].value_len);
        if (rc)
            return rc;
    }
    h->flags |= STREAM_F_END_STREAM;
    return 0;
}

int stream_trailers_from_h2(struct stream_head *h, const struct h2_header *t, size_t n)
{
    stream_head_reset(h, STREAM_TRAILERS);
    for (size_t i = 0; i < n; i++) {
        if (!valid_name(t[i].name, t[i].name_len) || !valid_value(t[i].value, t[i].value_len))
            return -STREAM_E_BAD_FIELD;
        if (trailer_forbidden(t[i].name, t[i].name_len))
            continue;
        int rc = add_field(h, t[i].name, t[i].name_len, t[i].value, t[i].value_len);
        if (rc)
            return rc;
    }
    h->flags |= STREAM_F_END_STREAM;
    return 0;
}

/* ---- to HTTP/2 ---- */

static bool has_upper(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            return true;
    return false;
}

static int ensure_h2v(struct stream_head *h)
{
    if (!h->h2v && !(h->h2v = calloc(fields_cap(h) + 4, sizeof(*h->h2v))))
        return -STREAM_E_NOMEM;
    return 0;
}

static int ensure_h1v(struct stream_head *h)
{
    if (!h->h1v && !(h->h1v = calloc(fields_cap(h) + 6, sizeof(*h->h1v))))
        return -STREAM_E_NOMEM;
    return 0;
}

int stream_to_h2(struct stream_head *h, struct h2_head *out)
{
    int rc = ensure_h2v(h);
    if (rc)
        return rc;
    memset(out, 0, sizeof(*out));
    size_t k = 0;
    for (size_t i = 0; i < h->fields.n; i++) {
        struct router_header *f = &h->fields.v[i];
        if (is_connection_specific(f->name, f->name_len) || name_is(f->name, f->name_len, "host") ||
            name_is(f->name, f->name_len, "content-length"))
            continue;
        if (h->kind == STREAM_TRAILERS && trailer_forbidden(f->name, f->name_len))
            continue;
        if (has_upper(f->name, f->name_len)) {
            /* A modifier's name from config: lower-case it once, in place in the list. */
            const char *n = strdup_lower(h, f->name, f->name_len);
            if (!n)
                return -STREAM_E_NOMEM;
            f->name = n;
        }
        h->h2v[k++] = (struct h2_header){f->name, f->name_len, f->value, f->value_len};
    }
    if (h->kind == STREAM_REQUEST) {
        if ((h->flags & STREAM_F_TE_TRAILERS) || stream_is_grpc(h)) {
            h->h2v[k++] = (struct h2_header){"te", 2, "trailers", 8};
        }
        out->method = h->method, out->method_len = h->method_len;
        out->scheme = h->scheme, out->scheme_len = h->scheme_len;
        out->authority = h->authority, out->authority_len = h->authority_len;
        out->path = h->path, out->path_len = h->path_len;
    }
    if (h->kind != STREAM_TRAILERS && (h->flags & STREAM_F_HAS_CL) &&
        !(h->kind == STREAM_RESPONSE && (h->status == 204 || h->status < 200))) {
        char num[24];
        int len = snprintf(num, sizeof(num), "%llu", (unsigned long long)h->content_length);
        const char *v = stream_head_strdup(h, num, (size_t)len);
        if (!v)
            return -STREAM_E_NOMEM;
        h->h2v[k++] = (struct h2_header){"content-length", 14, v, (size_t)len};
    }
    out->status = h->status;
    out->headers = h->h2v;
    out->num_headers = k;
    return 0;
}

/* ---- to HTTP/1.1 ---- */

enum stream_framing stream_h1_framing(const struct stream_head *h, const char *request_method,
                                      size_t request_method_len, int peer_minor_version)
{
    if (h->kind == STREAM_REQUEST) {
        if (!h->path) /* CONNECT: the tunnel is not a message body */
            return STREAM_FRAME_NONE;
        if (h->flags & STREAM_F_HAS_CL)
            return STREAM_FRAME_LENGTH;
        if (h->flags & STREAM_F_END_STREAM) {
            bool wants_cl = (h->method_len == 4 && memcmp(h->method, "POST", 4) == 0) ||
                            (h->method_len == 3 && memcmp(h->method, "PUT", 3) == 0) ||
                            (h->method_len == 5 && memcmp(h->method, "PATCH", 5) == 0);
            return wants_cl ? STREAM_FRAME_LENGTH : STREAM_FRAME_NONE;
        }
        return STREAM_FRAME_CHUNKED;
    }
    bool head = request_method && request_method_len == 4 && memcmp(request_method, "HEAD", 4) == 0;
    if (head || h->status < 200 || h->status == 204 || h->status == 304)
        return STREAM_FRAME_NONE;
    if (h->flags & (STREAM_F_HAS_CL | STREAM_F_END_STREAM))
        return STREAM_FRAME_LENGTH;
    return peer_minor_version >= 1 ? STREAM_FRAME_CHUNKED : STREAM_FRAME_CLOSE;
}

bool stream_h1_can_carry_trailers(enum stream_framing fr)
{
    return fr == STREAM_FRAME_CHUNKED;
}

/* Fills h->h1v with h's fields for an HTTP/1.1 head: cookie crumbs joined into the first
 * cookie field's place, framing per fr. Returns the count or a negative error. */
static ssize_t h1_fields(struct stream_head *h, enum stream_framing fr, bool request)
{
    int rc = ensure_h1v(h);
    if (rc)
        return rc;
    size_t k = 0;
    if (request)
        h->h1v[k++] = (struct h1_header){"host", 4, h->authority, h->authority_len, 0};
    size_t cookies = 0, cookie_len = 0;
    for (size_t i = 0; i < h->fields.n; i++)
        if (name_is(h->fields.v[i].name, h->fields.v[i].name_len, "cookie"))
            cookies++, cookie_len += h->fields.v[i].value_len + 2;
    bool cookie_done = false;
    for (size_t i = 0; i < h->fields.n; i++) {
        const struct router_header *f = &h->fields.v[i];
        if (is_connection_specific(f->name, f->name_len) || name_is(f->name, f->name_len, "host") ||
            name_is(f->name, f->name_len, "content-length"))
            continue;
        if (request && cookies > 1 && name_is(f->name, f->name_len, "cookie")) {
            if (cookie_done)
                continue;
            /* RFC 9113 §8.2.3: crumbs become one field joined with "; ". */
            char *v = arena_alloc(h, cookie_len);
            if (!v)
                return -STREAM_E_NOMEM;
            size_t n = 0;
            for (size_t j = i; j < h->fields.n; j++) {
                const struct router_header *c = &h->fields.v[j];
                if (!name_is(c->name, c->name_len, "cookie"))
                    continue;
                if (n)
                    v[n++] = ';', v[n++] = ' ';
                memcpy(v + n, c->value, c->value_len);
                n += c->value_len;
            }
            h->h1v[k++] = (struct h1_header){"cookie", 6, v, n, 0};
            cookie_done = true;
            continue;
        }
        h->h1v[k++] = (struct h1_header){f->name, f->name_len, f->value, f->value_len, 0};
    }
    if (fr == STREAM_FRAME_LENGTH ||
        (fr == STREAM_FRAME_NONE && (h->flags & STREAM_F_HAS_CL) && h->kind == STREAM_RESPONSE &&
         h->status != 204 && h->status >= 200)) {
        char num[24];
        uint64_t cl = (h->flags & STREAM_F_HAS_CL) ? h->content_length : 0;
        int len = snprintf(num, sizeof(num), "%llu", (unsigned long long)cl);
        const char *v = stream_head_strdup(h, num, (size_t)len);
        if (!v)
            return -STREAM_E_NOMEM;
        h->h1v[k++] = (struct h1_header){"content-length", 14, v, (size_t)len, 0};
    } else if (fr == STREAM_FRAME_CHUNKED) {
        h->h1v[k++] = (struct h1_header){"transfer-encoding", 17, "chunked", 7, 0};
    } else if (fr == STREAM_FRAME_CLOSE) {
        h->h1v[k++] = (struct h1_header){"connection", 10, "close", 5, 0};
    }
    if ((h->flags & STREAM_F_UPGRADE) && h->upgrade && k + 2 <= fields_cap(h) + 4) {
        /* an upgrade the proxy carries on HTTP/1.1 (WebSocket): hop-by-hop on purpose */
        h->h1v[k++] = (struct h1_header){"connection", 10, "upgrade", 7, 0};
        h->h1v[k++] = (struct h1_header){"upgrade", 7, h->upgrade, h->upgrade_len, 0};
    } else if ((h->flags & STREAM_F_CLOSE) && fr != STREAM_FRAME_CLOSE && k < fields_cap(h) + 4) {
        h->h1v[k++] = (struct h1_header){"connection", 10, "close", 5, 0};
    }
    if (request && (h->flags & STREAM_F_TE_TRAILERS) && k < fields_cap(h) + 4) {
        h->h1v[k++] = (struct h1_header){"te", 2, "trailers", 8, 0};
        if (k < fields_cap(h) + 4)
            h->h1v[k++] = (struct h1_header){"connection", 10, "te", 2, 0};
    }
    return (ssize_t)k;
}

ssize_t stream_write_h1_request(struct stream_head *h, enum stream_framing fr, char *out,
                                size_t cap)
{
    ssize_t k = h1_fields(h, fr, true);
    if (k < 0)
        return k;
    const char *target = h->path ? h->path : h->authority;
    size_t target_len = h->path ? h->path_len : h->authority_len;
    return h1_write_request_head(out, cap, h->method, h->method_len, target, target_len, h->h1v,
                                 (size_t)k);
}

ssize_t stream_write_h1_response(struct stream_head *h, enum stream_framing fr, char *out,
                                 size_t cap)
{
    ssize_t k = h1_fields(h, fr, false);
    if (k < 0)
        return k;
    return h1_write_response_head(out, cap, h->status, NULL, 0, h->h1v, (size_t)k);
}

ssize_t stream_write_h1_last_chunk(struct stream_head *t, char *out, size_t cap)
{
    if (!t)
        return h1_write_last_chunk(out, cap, NULL, 0);
    int rc = ensure_h1v(t);
    if (rc)
        return rc;
    size_t k = 0;
    for (size_t i = 0; i < t->fields.n; i++) {
        const struct router_header *f = &t->fields.v[i];
        if (trailer_forbidden(f->name, f->name_len))
            continue;
        t->h1v[k++] = (struct h1_header){f->name, f->name_len, f->value, f->value_len, 0};
    }
    return h1_write_last_chunk(out, cap, t->h1v, k);
}

/* ---- proxy headers ---- */

int stream_forwarded(struct stream_head *h, const char *proto, bool overwrite,
                     const char *peer_addr)
{
    int rc;
    if (proto && (overwrite || !stream_head_get(h, "x-forwarded-proto")) &&
        (rc = stream_head_set(h, "x-forwarded-proto", 17, proto, strlen(proto))))
        return rc;
    if (!peer_addr)
        return 0;
    size_t plen = strlen(peer_addr);
    struct router_header *last = NULL;
    for (size_t i = 0; i < h->fields.n; i++)
        if (name_is(h->fields.v[i].name, h->fields.v[i].name_len, "x-forwarded-for"))
            last = &h->fields.v[i];
    if (!last) {
        const char *v = stream_head_strdup(h, peer_addr, plen);
        if (!v)
            return -STREAM_E_NOMEM;
        return router_headers_add(&h->fields, "x-forwarded-for", 15, v, plen);
    }
    char *v = arena_alloc(h, last->value_len + 2 + plen);
    if (!v)
        return -STREAM_E_NOMEM;
    memcpy(v, last->value, last->value_len);
    memcpy(v + last->value_len, ", ", 2);
    memcpy(v + last->value_len + 2, peer_addr, plen);
    last->value = v;
    last->value_len += 2 + plen;
    return 0;
}

static const char hexdig[] = "0123456789abcdef";

static char *hex(char *o, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        *o++ = hexdig[b[i] >> 4];
        *o++ = hexdig[b[i] & 15];
    }
    return o;
}

void stream_uuid4(const uint8_t rnd[16], char out[STREAM_REQUEST_ID_LEN + 1])
{
    uint8_t b[16];
    memcpy(b, rnd, 16);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 (RFC 9562 §5.4) */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* variant 10 */
    char *o = out;
    o = hex(o, b, 4);
    *o++ = '-';
    o = hex(o, b + 4, 2);
    *o++ = '-';
    o = hex(o, b + 6, 2);
    *o++ = '-';
    o = hex(o, b + 8, 2);
    *o++ = '-';
    o = hex(o, b + 10, 6);
    *o = 0;
}

int stream_request_id(struct stream_head *h, const uint8_t rnd[16])
{
    const struct router_header *f = stream_head_get(h, "x-request-id");
    if (f && f->value_len)
        return 0;
    char id[STREAM_REQUEST_ID_LEN + 1];
    stream_uuid4(rnd, id);
    int rc = stream_head_set(h, "x-request-id", 12, id, STREAM_REQUEST_ID_LEN);
    return rc ? rc : 1;
}

static int unhex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* upper case is invalid (W3C Trace Context §3.2.2) */
}

static int parse_hex(const char *s, uint8_t *out, size_t n)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        int a = unhex(s[2 * i]), b = unhex(s[2 * i + 1]);
        if (a < 0 || b < 0)
            return -1;
        out[i] = (uint8_t)(a << 4 | b);
        nonzero |= out[i] != 0;
    }
    return nonzero ? 1 : 0;
}

int stream_traceparent_parse(const char *v, size_t len, struct stream_traceparent *out)
{
    uint8_t ver, fl;
    if (len < STREAM_TRACEPARENT_LEN || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return -EINVAL;
    if (parse_hex(v, &ver, 1) < 0 || ver == 0xff)
        return -EINVAL;
    /* Version 00 is exactly 55 bytes; a later version may append "-..." (§3.2.4). */
    if (ver == 0 ? len != STREAM_TRACEPARENT_LEN
                 : len > STREAM_TRACEPARENT_LEN && v[STREAM_TRACEPARENT_LEN] != '-')
        return -EINVAL;
    if (parse_hex(v + 3, out->trace_id, 16) != 1 || parse_hex(v + 36, out->span_id, 8) != 1 ||
        parse_hex(v + 53, &fl, 1) < 0)
        return -EINVAL;
    out->version = ver;
    out->flags = fl;
    return 0;
}

void stream_traceparent_format(const struct stream_traceparent *tp,
                               char out[STREAM_TRACEPARENT_LEN + 1])
{
    char *o = out;
    *o++ = '0', *o++ = '0', *o++ = '-';
    o = hex(o, tp->trace_id, 16);
    *o++ = '-';
    o = hex(o, tp->span_id, 8);
    *o++ = '-';
    /* The flags byte goes on as it came: a proxy that records no span makes no sampling
     * decision, and Trace Context level 2 defines another bit (random-trace-id, 0x02)
     * that a level-1 mask would wrongly clear. */
    o = hex(o, &tp->flags, 1);
    *o = 0;
}

static void nonzero(uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return;
    b[n - 1] = 1;
}

int stream_trace_continue(struct stream_head *h, const uint8_t span_rnd[8],
                          struct stream_traceparent *out)
{
    struct stream_traceparent tp;
    const struct router_header *f = NULL;
    size_t n = 0;
    for (size_t i = 0; i < h->fields.n; i++)
        if (name_is(h->fields.v[i].name, h->fields.v[i].name_len, "traceparent")) {
            f = &h->fields.v[i];
            n++;
        }
    /* Two traceparent fields: which would be the parent? Both go on as they came. */
    if (n != 1 || stream_traceparent_parse(f->value, f->value_len, &tp) < 0 || tp.version != 0)
        return 0;
    memcpy(tp.span_id, span_rnd, 8);
    nonzero(tp.span_id, 8);
    char buf[STREAM_TRACEPARENT_LEN + 1];
    stream_traceparent_format(&tp, buf);
    int rc = stream_head_set(h, "traceparent", 11, buf, STREAM_TRACEPARENT_LEN);
    if (rc)
        return rc;
    if (out)
        *out = tp;
    return 1;
}

/* ---- local replies ---- */

int stream_grpc_status_from_http(int s)
{
    switch (s) {
    case 400:
        return STREAM_GRPC_INTERNAL;
    case 401:
        return STREAM_GRPC_UNAUTHENTICATED;
    case 403:
        return STREAM_GRPC_PERMISSION_DENIED;
    case 404:
        return STREAM_GRPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return STREAM_GRPC_UNAVAILABLE;
    default:
        return STREAM_GRPC_UNKNOWN;
    }
}

static bool flag_is(const char *flag, const char *lit)
{
    return flag && strcmp(flag, lit) == 0;
}

const char *stream_local_body(int status, const char *flag)
{
    if (flag_is(flag, "UH"))
        return "no healthy upstream";
    if (flag_is(flag, "UT"))
        return "upstream request timeout";
    if (flag_is(flag, "UF"))
        return "upstream connect error or disconnect/reset before headers. reset reason: "
               "connection failure";
    if (flag_is(flag, "UC"))
        return "upstream connect error or disconnect/reset before headers. reset reason: "
               "connection termination";
    if (flag_is(flag, "UR"))
        return "upstream connect error or disconnect/reset before headers. reset reason: "
               "remote reset";
    if (flag_is(flag, "LR"))
        return "upstream connect error or disconnect/reset before headers. reset reason: "
               "local reset";
    if (flag_is(flag, "UO"))
        return "upstream connect error or disconnect/reset before headers. reset reason: "
               "overflow";
    if (flag_is(flag, "URX"))
        return "upstream connect error or disconnect/reset before headers. retried and the "
               "latest reset reason: connection failure";
    if (flag_is(flag, "NR") || flag_is(flag, "NC"))
        return "";
    switch (status) {
    case 400:
        return "Bad Request";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "upstream connect error or disconnect/reset before headers. reset reason: "
               "protocol error";
    case 503:
        return "no healthy upstream";
    case 504:
        return "upstream request timeout";
    default:
        return "";
    }
}

/* grpc-message is percent-encoded: unreserved printable ASCII stays, the rest %XX
 * (gRPC PROTOCOL-HTTP2.md, "Responses"). */
static const char *grpc_message(struct stream_head *h, const char *m, size_t *len)
{
    size_t n = strlen(m);
    char *o = arena_alloc(h, 3 * n + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)m[i];
        if (c >= 0x20 && c <= 0x7e && c != '%') {
            o[k++] = (char)c;
        } else {
            o[k++] = '%';
            o[k++] = "0123456789ABCDEF"[c >> 4]; /* upper case, as grpc-go and C core */
            o[k++] = "0123456789ABCDEF"[c & 15];
        }
    }
    o[k] = 0;
    *len = k;
    return o;
}

int stream_local_reply(struct stream_head *resp, const struct stream_head *req, int status,
                       const char *flag, const char *message, const char **body, size_t *body_len)
{
    stream_head_reset(resp, STREAM_RESPONSE);
    const char *text = message ? message : stream_local_body(status, flag);
    size_t text_len = strlen(text);
    *body = "";
    *body_len = 0;
    int rc;
    if (req && stream_is_grpc(req)) {
        int gs = flag_is(flag, "UT") ? STREAM_GRPC_DEADLINE_EXCEEDED
                                     : stream_grpc_status_from_http(status);
        char num[8];
        int nl = snprintf(num, sizeof(num), "%d", gs);
        size_t ml = 0;
        const char *msg = grpc_message(resp, text, &ml);
        if (!msg)
            return -STREAM_E_NOMEM;
        resp->status = 200;
        if ((rc = stream_head_set(resp, "content-type", 12, "application/grpc", 16)) ||
            (rc = stream_head_set(resp, "grpc-status", 11, num, (size_t)nl)) ||
            (ml && (rc = stream_head_set(resp, "grpc-message", 12, msg, ml))) ||
            (flag && (rc = stream_head_set(resp, "x-ringmesh-flags", 16, flag, strlen(flag)))))
            return rc;
        resp->flags |= STREAM_F_END_STREAM;
        return 0;
    }
    resp->status = status;
    if (text_len && (rc = stream_head_set(resp, "content-type", 12, "text/plain", 10)))
        return rc;
    if (flag && (rc = stream_head_set(resp, "x-ringmesh-flags", 16, flag, strlen(flag))))
        return rc;
    resp->content_length = text_len;
    resp->flags |= STREAM_F_HAS_CL;
    bool head = req && req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    if (!text_len || head) {
        resp->flags |= STREAM_F_END_STREAM;
        return 0;
    }
    *body = text;
    *body_len = text_len;
    return 0;
}

/* ---- facts for retries ---- */

bool stream_method_is_idempotent(const char *m, size_t len)
{
    static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof(idem) / sizeof(idem[0]); i++)
        if (strlen(idem[i]) == len && memcmp(idem[i], m, len) == 0)
            return true;
    return false;
}

bool stream_is_grpc(const struct stream_head *h)
{
    const struct router_header *f = stream_head_get(h, "content-type");
    if (!f || f->value_len < 16 || strncasecmp(f->value, "application/grpc", 16) != 0)
        return false;
    return f->value_len == 16 || f->value[16] == '+' || f->value[16] == ';';
}

int stream_grpc_status(const struct stream_head *h)
{
    const struct router_header *f = stream_head_get(h, "grpc-status");
    if (!f || !f->value_len || f->value_len > 2)
        return -1;
    int x = 0;
    for (size_t i = 0; i < f->value_len; i++) {
        if (f->value[i] < '0' || f->value[i] > '9')
            return -1;
        x = x * 10 + (f->value[i] - '0');
    }
    return x;
}
