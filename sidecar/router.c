/*
 * router.c - the hot path: match one request against a compiled routing table and draw
 * its weighted backend (router.h has the rules and decisions).
 *
 * Runs on every worker thread at once. It only reads the table (compiled in
 * router_table.c, immutable once built) and writes only the caller's result and the
 * calling thread's scratch (pcre2 match data and the query decode buffer), so it needs
 * no locks and allocates nothing. Cost per request: one consumer-group binary search,
 * then a walk of the pre-sorted matches of the hostname tiers that apply, first match
 * wins; the work is bounded by the routes attached to this one Service port, never by
 * the size of the mesh.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "router_internal.h"

struct router_scratch *router_scratch_new(void)
{
    struct router_scratch *s = malloc(sizeof(*s));
    if (!s)
        return NULL;
    /* One ovector pair: the router only asks whether a pattern matched. */
    if (!(s->md = pcre2_match_data_create(1, NULL))) {
        free(s);
        return NULL;
    }
    /* Without JIT, pcre2 (10.41+) keeps its backtracking frames in the match data and
     * allocates them on first use; one interpreted match here makes that happen now, not
     * on a worker's first request. Only patterns needing more than the initial frames
     * vector (bounded by the table's heap limit) ever grow it later. */
    int code;
    PCRE2_SIZE off;
    pcre2_code *warm = pcre2_compile((PCRE2_SPTR) "(a)", 3, 0, &code, &off, NULL);
    if (warm) {
        (void)pcre2_match(warm, (PCRE2_SPTR) "a", 1, 0, PCRE2_NO_JIT, s->md, NULL);
        pcre2_code_free(warm);
    }
    return s;
}

void router_scratch_free(struct router_scratch *s)
{
    if (!s)
        return;
    pcre2_match_data_free(s->md);
    free(s);
}

/* What one request looks like once, before walking the matches. */
struct req_view {
    const struct router_request *req;
    const char *path; /* without the query */
    size_t path_len;
    const char *query; /* after '?', NULL when there is none */
    size_t query_len;
    const char *host; /* authority without port and trailing dot */
    size_t host_len;
};

/* 1 matched, 0 not; errors (limits) count and do not match. */
static int regex_full(const struct router_table *t, struct router_scratch *s, pcre2_code *re,
                      const char *subj, size_t len, struct router_result *out)
{
    int rc = pcre2_match(re, (PCRE2_SPTR)(subj ? subj : ""), len, 0, 0, s->md, t->mctx);
    /* rc 0: matched, the one-pair ovector was too small for the groups; still a match. */
    if (rc >= 0)
        return 1;
    if (rc != PCRE2_ERROR_NOMATCH)
        out->regex_errors++;
    return 0;
}

static bool path_matches(const struct router_table *t, struct router_scratch *s,
                         const struct router_cmatch *m, const struct req_view *v,
                         struct router_result *out)
{
    switch (m->path_type) {
    case MODEL_PATH_EXACT:
        return v->path_len == m->path_len && !memcmp(v->path, m->path, m->path_len);
    case MODEL_PATH_PREFIX:
        /* Whole segments: "/abc" takes "/abc", "/abc/", "/abc/def", never "/abcd". The
         * root prefix (length 0 once its '/' is dropped) takes every origin-form path. */
        if (v->path_len == 0 || v->path[0] != '/')
            return false;
        if (v->path_len < m->path_len || memcmp(v->path, m->path, m->path_len))
            return false;
        return v->path_len == m->path_len || v->path[m->path_len] == '/';
    case MODEL_PATH_REGEX:
        return regex_full(t, s, m->path_re, v->path, v->path_len, out);
    }
    return false;
}

static bool value_matches(const struct router_table *t, struct router_scratch *s,
                          const struct router_vmatch *vm, const char *val, size_t len,
                          struct router_result *out)
{
    if (vm->re)
        return regex_full(t, s, vm->re, val, len, out);
    return len == vm->value_len && !memcmp(val, vm->value, len);
}

static bool headers_match(const struct router_table *t, struct router_scratch *s,
                          const struct router_cmatch *m, const struct req_view *v,
                          struct router_result *out)
{
    const struct router_request *req = v->req;
    for (size_t i = 0; i < m->n_headers; i++) {
        const struct router_vmatch *vm = &m->headers[i];
        const struct router_header *h = NULL;
        /* Duplicate names: the first field is the one that counts. */
        for (size_t j = 0; j < req->n_headers; j++)
            if (req->headers[j].name_len == vm->name_len &&
                router_ieq(req->headers[j].name, vm->name, vm->name_len)) {
                h = &req->headers[j];
                break;
            }
        const char *val;
        size_t len;
        if (h) {
            val = h->value;
            len = h->value_len;
        } else if (vm->is_host && req->authority) {
            val = req->authority;
            len = req->authority_len;
        } else {
            return false;
        }
        if (!value_matches(t, s, vm, val, len, out))
            return false;
    }
    return true;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src into dst (cap bytes); the decoded length, or SIZE_MAX when it does not
 * fit. A '%' not followed by two hex digits stays as it is. dst NULL: length only. */
static size_t pct_decode(const char *src, size_t len, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        int hi, lo;
        if (c == '%' && i + 2 < len && (hi = hexval((unsigned char)src[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)src[i + 2])) >= 0) {
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (dst) {
            if (o == cap)
                return SIZE_MAX;
            dst[o] = (char)c;
        }
        o++;
    }
    return o;
}

/* Whether the raw (encoded) name equals want once decoded, without a buffer. */
static bool pct_name_equals(const char *raw, size_t len, const char *want, size_t want_len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++, o++) {
        unsigned char c = (unsigned char)raw[i];
        int hi, lo;
        if (c == '%' && i + 2 < len && (hi = hexval((unsigned char)raw[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)raw[i + 2])) >= 0) {
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (o >= want_len || (unsigned char)want[o] != c)
            return false;
    }
    return o == want_len;
}

static bool query_match(const struct router_table *t, struct router_scratch *s,
                        const struct router_cmatch *m, const struct req_view *v,
                        struct router_result *out)
{
    for (size_t i = 0; i < m->n_query; i++) {
        const struct router_vmatch *vm = &m->query[i];
        const char *q = v->query, *end = v->query ? v->query + v->query_len : NULL;
        bool found = false;
        while (q && q <= end) {
            const char *amp = memchr(q, '&', (size_t)(end - q));
            const char *pe = amp ? amp : end;
            const char *eq = memchr(q, '=', (size_t)(pe - q));
            const char *ne = eq ? eq : pe;
            if (pct_name_equals(q, (size_t)(ne - q), vm->name, vm->name_len)) {
                const char *val = eq ? eq + 1 : pe;
                size_t dl = pct_decode(val, (size_t)(pe - val), s->qbuf, sizeof(s->qbuf));
                /* The first occurrence decides, matched or not. */
                if (dl == SIZE_MAX || !value_matches(t, s, vm, s->qbuf, dl, out))
                    return false;
                found = true;
                break;
            }
            if (!amp)
                break;
            q = amp + 1;
        }
        if (!found)
            return false;
    }
    return true;
}

static bool cmatch_ok(const struct router_table *t, struct router_scratch *s,
                      const struct router_cmatch *m, const struct req_view *v,
                      struct router_result *out)
{
    const struct router_request *req = v->req;
    if (m->method &&
        (req->method_len != m->method_len || memcmp(req->method, m->method, m->method_len)))
        return false;
    return path_matches(t, s, m, v, out) && headers_match(t, s, m, v, out) &&
           query_match(t, s, m, v, out);
}

static bool tier_takes(const struct router_tier *tr, const struct req_view *v)
{
    switch (tr->kind) {
    case ROUTER_TIER_ANY:
        return true;
    case ROUTER_TIER_EXACT:
        return v->host_len == tr->host_len && router_ieq(v->host, tr->host, tr->host_len);
    case ROUTER_TIER_WILDCARD:
        /* host is ".example.com": "a.example.com" and "a.b.example.com", never
         * "example.com" itself. */
        return v->host_len > tr->host_len &&
               router_ieq(v->host + v->host_len - tr->host_len, tr->host, tr->host_len);
    }
    return false;
}

static const struct router_group *pick_group(const struct router_port *dst, const char *client_ns)
{
    const char *svc_ns = dst->service->svc->meta.ns;
    if (strcmp(client_ns, svc_ns) != 0) {
        size_t lo = 0, hi = dst->n_consumers;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int d = strcmp(client_ns, dst->consumers[mid].ns);
            if (!d)
                return &dst->consumers[mid];
            if (d < 0)
                hi = mid;
            else
                lo = mid + 1;
        }
    }
    return dst->producer;
}

static enum router_status choose_backend(const struct router_rule *rule, uint64_t rnd,
                                         struct router_result *out)
{
    if (rule->total_weight == 0)
        return out->status = ROUTER_NO_BACKEND;
    uint64_t point = rnd % rule->total_weight;
    for (size_t i = 0; i < rule->n_backends; i++) {
        const struct router_backend *b = &rule->backends[i];
        if (point < b->weight) {
            out->backend = b;
            return out->status = b->target ? ROUTER_FORWARD : ROUTER_NO_BACKEND;
        }
        point -= b->weight;
    }
    return out->status = ROUTER_NO_BACKEND; /* unreachable: the weights sum to total */
}

enum router_status router_route(const struct router_table *t, const struct router_port *dst,
                                const struct router_request *req, uint64_t rnd,
                                struct router_scratch *s, struct router_result *out)
{
    memset(out, 0, sizeof(*out));
    out->status = ROUTER_NO_ROUTE;
    if (!dst)
        return out->status;
    const struct router_group *g = pick_group(dst, req->client_ns ? req->client_ns : "default");
    if (!g) {
        out->rule = dst->default_rule;
        out->is_default = true;
        return choose_backend(out->rule, rnd, out);
    }

    struct req_view v = {.req = req, .path = req->path ? req->path : "", .path_len = req->path_len};
    const char *qm = memchr(v.path, '?', v.path_len);
    if (qm) {
        v.query = qm + 1;
        v.query_len = v.path_len - (size_t)(qm + 1 - v.path);
        v.path_len = (size_t)(qm - v.path);
    }
    if (req->authority && req->authority_len) {
        const char *ps;
        size_t pl;
        router_split_authority(req->authority, req->authority_len, &v.host, &v.host_len, &ps, &pl);
        if (v.host_len && v.host[v.host_len - 1] == '.')
            v.host_len--;
    } else {
        v.host = "";
    }

    for (size_t k = 0; k < g->n_tiers; k++) {
        const struct router_tier *tr = &g->tiers[k];
        if (!tier_takes(tr, &v))
            continue;
        for (size_t i = 0; i < tr->n; i++) {
            const struct router_cmatch *m = tr->m[i];
            if (!cmatch_ok(t, s, m, &v, out))
                continue;
            out->rule = m->rule;
            out->match = m->src;
            if (m->rule->redirect)
                return out->status = ROUTER_REDIRECT;
            return choose_backend(m->rule, rnd, out);
        }
    }
    return out->status = ROUTER_NO_ROUTE;
}

int router_result_http_status(const struct router_result *r)
{
    switch (r->status) {
    case ROUTER_FORWARD:
        return 0;
    case ROUTER_REDIRECT:
        return r->rule && r->rule->redirect ? r->rule->redirect->status_code : 302;
    case ROUTER_NO_ROUTE:
        return 404;
    case ROUTER_NO_BACKEND:
        return 500;
    }
    return 500;
}

const char *router_status_flag(enum router_status s)
{
    switch (s) {
    case ROUTER_NO_ROUTE:
        return "NR";
    case ROUTER_NO_BACKEND:
        /* Envoy's "cluster not found": the nearest flag for a backend that cannot take it. */
        return "NC";
    default:
        return NULL;
    }
}

const char *router_status_str(enum router_status s)
{
    switch (s) {
    case ROUTER_FORWARD:
        return "forward";
    case ROUTER_REDIRECT:
        return "redirect";
    case ROUTER_NO_ROUTE:
        return "no-route";
    case ROUTER_NO_BACKEND:
        return "no-backend";
    }
    return "?";
}
