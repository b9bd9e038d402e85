/*
 * router_table.c - compiles a model_set into the routing table (router.h): Services by
 * FQDN and by VIP:port in open-addressing hash tables, every route compiled once (backends
 * and mirrors resolved, regexes compiled with pcre2), then per Service port the attached
 * routes grouped by namespace (GAMMA producer/consumer), split into hostname tiers and
 * pre-sorted by Gateway API precedence. Also the O(1) lookups that read those tables.
 *
 * Runs on whichever thread compiles a snapshot (the main thread); allocates freely from
 * one arena, so router_table_free() is one walk. After router_table_new() returns nothing
 * here is written again: the lookups are read-only and safe from every worker.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "router_internal.h"

/* ---- arena: bump allocation in chunks, freed at once ---- */

struct router_arena {
    struct router_arena *next;
    size_t used;
    size_t cap;
    _Alignas(16) unsigned char data[];
};

#define ARENA_CHUNK (64u << 10)

static void *arena_alloc(struct router_table *t, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    struct router_arena *a = t->arena;
    if (!a || a->cap - a->used < size) {
        size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
        struct router_arena *n = malloc(sizeof(*n) + cap);
        if (!n)
            return NULL;
        n->next = a;
        n->used = 0;
        n->cap = cap;
        t->arena = a = n;
    }
    void *p = a->data + a->used;
    a->used += size;
    memset(p, 0, size);
    return p;
}

static void *arena_array(struct router_table *t, size_t n, size_t size)
{
    if (n && size > SIZE_MAX / n)
        return NULL;
    return arena_alloc(t, n ? n * size : 1);
}

static char *arena_printf(struct router_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static char *arena_printf(struct router_table *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = arena_alloc(t, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* ---- hashing ---- */

/* FNV-1a over lower-cased bytes. Keys come from config; lookups only probe, so a hostile
 * authority cannot lengthen chains. */
uint64_t router_hash_lower(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        h = (h ^ c) * 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

uint64_t router_hash_vip(int family, const uint8_t *addr, uint16_t port)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t n = family == AF_INET ? 4 : 16;
    h = (h ^ (uint8_t)family) * 0x100000001b3ull;
    h = (h ^ (port >> 8)) * 0x100000001b3ull;
    h = (h ^ (port & 0xff)) * 0x100000001b3ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ addr[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static size_t table_size(size_t n)
{
    size_t s = 16;
    while (s < 2 * n)
        s <<= 1;
    return s;
}

/* ---- errors ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- Services, ports, lookups ---- */

static const struct router_service *svc_lookup(const struct router_table *t, const char *fqdn,
                                               size_t len)
{
    if (!t->svc_slots)
        return NULL;
    for (size_t i = router_hash_lower(fqdn, len) & t->svc_mask;; i = (i + 1) & t->svc_mask) {
        uint32_t slot = t->svc_slots[i];
        if (!slot)
            return NULL;
        const struct router_service *s = &t->services[slot - 1];
        if (s->fqdn_len == len && router_ieq(s->fqdn, fqdn, len))
            return s;
    }
}

/* "name.ns.svc.<domain>" into buf; length, or 0 when it does not fit. */
static size_t make_fqdn(const struct router_table *t, const char *name, size_t name_len,
                        const char *ns, size_t ns_len, char *buf, size_t buflen)
{
    size_t need = name_len + 1 + ns_len + 5 + t->domain_len;
    if (need >= buflen)
        return 0;
    char *p = buf;
    memcpy(p, name, name_len);
    p += name_len;
    *p++ = '.';
    memcpy(p, ns, ns_len);
    p += ns_len;
    memcpy(p, ".svc.", 5);
    p += 5;
    memcpy(p, t->domain, t->domain_len);
    p += t->domain_len;
    *p = 0;
    return need;
}

const struct router_service *router_find_service(const struct router_table *t, const char *ns,
                                                 const char *name)
{
    char buf[ROUTER_MAX_HOST_LEN + 1];
    if (!ns)
        ns = "default";
    size_t len = make_fqdn(t, name, strlen(name), ns, strlen(ns), buf, sizeof(buf));
    return len ? svc_lookup(t, buf, len) : NULL;
}

const struct router_port *router_service_port(const struct router_service *s, uint16_t port)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < s->n_ports; i++)
        if (s->ports[i].port->port == port)
            return &s->ports[i];
    return NULL;
}

const struct router_port *router_find_vip(const struct router_table *t, int family,
                                          const void *addr, uint16_t port)
{
    if ((family != AF_INET && family != AF_INET6) || !t->vip_slots)
        return NULL;
    size_t n = family == AF_INET ? 4 : 16;
    for (size_t i = router_hash_vip(family, addr, port) & t->vip_mask;; i = (i + 1) & t->vip_mask) {
        uint32_t slot = t->vip_slots[i];
        if (!slot)
            return NULL;
        const struct router_vip *v = &t->vips[slot - 1];
        if (v->family == family && v->port == port && !memcmp(v->addr, addr, n))
            return v->target;
    }
}

void router_split_authority(const char *a, size_t len, const char **host, size_t *host_len,
                            const char **port_str, size_t *port_len)
{
    size_t hl = len;
    *port_str = NULL;
    *port_len = 0;
    if (len && a[0] == '[') {
        const char *close = memchr(a, ']', len);
        hl = close ? (size_t)(close - a) + 1 : len;
        if (hl < len && a[hl] == ':') {
            *port_str = a + hl + 1;
            *port_len = len - hl - 1;
        }
    } else {
        const char *colon = memchr(a, ':', len);
        if (colon) {
            hl = (size_t)(colon - a);
            *port_str = colon + 1;
            *port_len = len - hl - 1;
        }
    }
    *host = a;
    *host_len = hl;
}

static bool parse_port(const char *s, size_t len, uint16_t *out)
{
    uint32_t v = 0;
    if (len == 0 || len > 5)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

const struct router_port *router_find_authority(const struct router_table *t, const char *authority,
                                                size_t len, const char *client_ns,
                                                uint16_t default_port)
{
    const char *host, *ps;
    size_t hl, pl;
    uint16_t port = default_port;
    char buf[ROUTER_MAX_HOST_LEN + 2];
    if (!authority || !len)
        return NULL;
    router_split_authority(authority, len, &host, &hl, &ps, &pl);
    if (ps && !parse_port(ps, pl, &port))
        return NULL;
    if (!hl || hl > ROUTER_MAX_HOST_LEN + 1)
        return NULL;

    /* An IP literal: the VIP table, as the outbound path would. */
    if (host[0] == '[' || (host[0] >= '0' && host[0] <= '9')) {
        unsigned char addr[16];
        bool v6 = host[0] == '[';
        size_t n = v6 ? hl - 2 : hl;
        if (v6 && (hl < 2 || host[hl - 1] != ']'))
            return NULL;
        memcpy(buf, v6 ? host + 1 : host, n);
        buf[n] = 0;
        if (inet_pton(v6 ? AF_INET6 : AF_INET, buf, addr) == 1)
            return router_find_vip(t, v6 ? AF_INET6 : AF_INET, addr, port);
        if (v6)
            return NULL;
    }

    bool absolute = host[hl - 1] == '.';
    if (absolute)
        hl--;
    if (!hl || hl > ROUTER_MAX_HOST_LEN)
        return NULL;
    /* Labels: up to the first three dots. */
    const char *dot[3] = {NULL, NULL, NULL};
    size_t n_dots = 0;
    for (size_t i = 0; i < hl && n_dots < 3; i++)
        if (host[i] == '.')
            dot[n_dots++] = host + i;
    const char *ns = client_ns ? client_ns : "default";
    size_t name_len, ns_len, flen;
    const char *nsp;
    if (absolute || n_dots >= 3) {
        /* Only the full name resolves; the hash compares case-insensitively. */
        const struct router_service *s = svc_lookup(t, host, hl);
        return router_service_port(s, port);
    }
    if (n_dots == 0) {
        name_len = hl;
        nsp = ns;
        ns_len = strlen(ns);
    } else {
        name_len = (size_t)(dot[0] - host);
        nsp = dot[0] + 1;
        ns_len = (n_dots == 1 ? host + hl : dot[1]) - nsp;
        if (n_dots == 2) {
            size_t last = (size_t)(host + hl - (dot[1] + 1));
            if (last != 3 || !router_ieq(dot[1] + 1, "svc", 3))
                return NULL;
        }
    }
    if (!name_len || !ns_len)
        return NULL;
    flen = make_fqdn(t, host, name_len, nsp, ns_len, buf, sizeof(buf));
    if (!flen)
        return NULL;
    return router_service_port(svc_lookup(t, buf, flen), port);
}

static int build_services(struct router_table *t)
{
    const struct model_set *set = t->set;
    size_t n_ports = 0;
    for (size_t i = 0; i < set->n_services; i++)
        n_ports += set->services[i].n_ports;
    t->n_services = set->n_services;
    t->n_ports = n_ports;
    if (!(t->services = arena_array(t, t->n_services, sizeof(*t->services))) ||
        !(t->ports = arena_array(t, n_ports, sizeof(*t->ports))))
        return -ENOMEM;
    size_t size = table_size(t->n_services);
    if (!(t->svc_slots = arena_array(t, size, sizeof(uint32_t))))
        return -ENOMEM;
    t->svc_mask = size - 1;
    struct router_port *p = t->ports;
    for (size_t i = 0; i < set->n_services; i++) {
        const struct model_service *ms = &set->services[i];
        struct router_service *s = &t->services[i];
        s->svc = ms;
        char *f = arena_printf(t, "%s.%s.svc.%s", ms->meta.name, ms->meta.ns, t->domain);
        if (!f)
            return -ENOMEM;
        for (char *c = f; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c += 32;
        s->fqdn = f;
        s->fqdn_len = strlen(f);
        s->ports = p;
        s->n_ports = ms->n_ports;
        for (size_t j = 0; j < ms->n_ports; j++, p++) {
            p->service = s;
            p->port = &ms->ports[j];
        }
        /* The model refuses duplicate objects, so a hit here cannot happen; keep the first. */
        if (svc_lookup(t, s->fqdn, s->fqdn_len))
            continue;
        size_t k = router_hash_lower(s->fqdn, s->fqdn_len) & t->svc_mask;
        while (t->svc_slots[k])
            k = (k + 1) & t->svc_mask;
        t->svc_slots[k] = (uint32_t)i + 1;
    }
    t->stats.services = t->n_services;
    t->stats.ports = t->n_ports;
    return 0;
}

static int build_vips(struct router_table *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_services; i++) {
        const struct model_service *ms = t->services[i].svc;
        if (ms->type == MODEL_SVC_EXTERNAL_NAME || ms->headless || !ms->has_cluster_ip)
            continue;
        n += (ms->n_cluster_ips ? ms->n_cluster_ips : 1) * ms->n_ports;
    }
    size_t size = table_size(n);
    if (!(t->vips = arena_array(t, n, sizeof(*t->vips))) ||
        !(t->vip_slots = arena_array(t, size, sizeof(uint32_t))))
        return -ENOMEM;
    t->vip_mask = size - 1;
    for (size_t i = 0; i < t->n_services; i++) {
        const struct router_service *s = &t->services[i];
        const struct model_service *ms = s->svc;
        if (ms->type == MODEL_SVC_EXTERNAL_NAME || ms->headless || !ms->has_cluster_ip)
            continue;
        size_t n_ips = ms->n_cluster_ips ? ms->n_cluster_ips : 1;
        for (size_t a = 0; a < n_ips; a++) {
            const struct model_ip *ip = ms->n_cluster_ips ? &ms->cluster_ips[a] : &ms->cluster_ip;
            for (size_t j = 0; j < s->n_ports; j++) {
                uint16_t port = s->ports[j].port->port;
                /* The sidecar captures TCP only. */
                if (s->ports[j].port->protocol != MODEL_PROTO_TCP)
                    continue;
                if (router_find_vip(t, ip->family, ip->addr, port)) {
                    t->stats.vip_conflicts++;
                    continue;
                }
                struct router_vip *v = &t->vips[t->n_vips++];
                v->family = (uint8_t)ip->family;
                v->port = port;
                memcpy(v->addr, ip->addr, ip->family == AF_INET ? 4 : 16);
                v->target = &s->ports[j];
                size_t k = router_hash_vip(ip->family, ip->addr, port) & t->vip_mask;
                while (t->vip_slots[k])
                    k = (k + 1) & t->vip_mask;
                t->vip_slots[k] = (uint32_t)t->n_vips;
            }
        }
    }
    t->stats.vips = t->n_vips;
    return 0;
}

/* ---- routes ---- */

/* Whether a pattern needs Unicode semantics: non-ASCII bytes, or \p \P \X \x{...}. */
static bool needs_utf(const char *p)
{
    for (; *p; p++) {
        if ((unsigned char)*p >= 0x80)
            return true;
        if (p[0] == '\\' && p[1]) {
            if (strchr("pPX", p[1]) || (p[1] == 'x' && p[2] == '{'))
                return true;
            p++;
        }
    }
    return false;
}

static pcre2_code *compile_regex(struct router_table *t, const char *pattern, char *err,
                                 size_t errlen, const struct model_route *r)
{
    int code;
    PCRE2_SIZE off;
    /* Whole-value match: ANCHORED + ENDANCHORED (alternatives still backtrack to the end).
     * An ASCII pattern runs on bytes, so '.' and classes take any byte as RE2 (Envoy) does
     * with invalid UTF-8, and obs-text in header values matches ".*"; a pattern that needs
     * Unicode runs in UTF mode, where MATCH_INVALID_UTF keeps arbitrary bytes safe (they
     * just never match a pattern item). */
    uint32_t opts = PCRE2_ANCHORED | PCRE2_ENDANCHORED;
    if (needs_utf(pattern))
        opts |= PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", code);
        set_err(err, errlen, "HTTPRoute %s/%s: regex \"%s\" at offset %zu: %s", r->meta.ns,
                r->meta.name, pattern, (size_t)off, (char *)msg);
        return NULL;
    }
    if (t->n_codes == t->cap_codes) {
        size_t cap = t->cap_codes ? 2 * t->cap_codes : 16;
        pcre2_code **c = realloc(t->codes, cap * sizeof(*c));
        if (!c) {
            pcre2_code_free(re);
            set_err(err, errlen, "out of memory");
            return NULL;
        }
        t->codes = c;
        t->cap_codes = cap;
    }
    t->codes[t->n_codes++] = re;
    /* JIT when the platform has it; the interpreter otherwise. Either is shareable. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    t->stats.regexes++;
    return re;
}

static const struct router_port *resolve_backend(struct router_table *t,
                                                 const struct model_backend_ref *b)
{
    const struct router_port *p =
        router_service_port(router_find_service(t, b->ns, b->name), b->port);
    if (!p)
        t->stats.backends_invalid++;
    return p;
}

static int compile_vmatches(struct router_table *t, const struct model_value_matcher *src, size_t n,
                            bool header, const struct router_vmatch **out,
                            const struct model_route *r, char *err, size_t errlen)
{
    struct router_vmatch *v = arena_array(t, n, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        v[i].name = src[i].name;
        v[i].name_len = strlen(src[i].name);
        v[i].is_host = header && v[i].name_len == 4 && router_ieq(v[i].name, "host", 4);
        if (src[i].type == MODEL_MATCH_REGEX) {
            if (!(v[i].re = compile_regex(t, src[i].value, err, errlen, r)))
                return -EINVAL;
        } else {
            v[i].value = src[i].value;
            v[i].value_len = strlen(src[i].value);
        }
    }
    *out = v;
    return 0;
}

/* One route compiled: its rules, and its (rule, match) pairs in rule/match order. */
struct croute {
    const struct model_route *src;
    struct router_rule *rules;
    struct router_cmatch *m;
    size_t n_m;
};

static int compile_rule(struct router_table *t, const struct model_route *r, size_t ri,
                        struct router_rule *rule, char *err, size_t errlen)
{
    const struct model_route_rule *src = &r->rules[ri];
    rule->route = r;
    rule->src = src;
    rule->index = ri;
    rule->filters = src->filters;
    rule->n_filters = src->n_filters;
    rule->request_timeout_ms = src->request_timeout_ms;
    rule->backend_timeout_ms = src->backend_timeout_ms;
    rule->retry = &src->retry;

    struct router_backend *b = arena_array(t, src->n_backends, sizeof(*b));
    if (!b)
        goto nomem;
    for (size_t i = 0; i < src->n_backends; i++) {
        b[i].ref = &src->backends[i];
        b[i].weight = src->backends[i].weight;
        b[i].target = resolve_backend(t, &src->backends[i]);
        rule->total_weight += b[i].weight;
    }
    rule->backends = b;
    rule->n_backends = src->n_backends;

    size_t n_mirrors = 0;
    for (size_t i = 0; i < src->n_filters; i++)
        n_mirrors += src->filters[i].type == MODEL_FILTER_REQUEST_MIRROR;
    struct router_mirror *m = arena_array(t, n_mirrors, sizeof(*m));
    if (!m)
        goto nomem;
    rule->mirrors = m;
    for (size_t i = 0; i < src->n_filters; i++) {
        const struct model_filter *f = &src->filters[i];
        switch (f->type) {
        case MODEL_FILTER_REQUEST_HEADER_MODIFIER:
            rule->request_headers = &f->u.header_mod;
            break;
        case MODEL_FILTER_RESPONSE_HEADER_MODIFIER:
            rule->response_headers = &f->u.header_mod;
            break;
        case MODEL_FILTER_REQUEST_REDIRECT:
            rule->redirect = &f->u.redirect;
            break;
        case MODEL_FILTER_URL_REWRITE:
            rule->rewrite = &f->u.rewrite;
            break;
        case MODEL_FILTER_REQUEST_MIRROR:
            m[rule->n_mirrors].src = &f->u.mirror;
            m[rule->n_mirrors].target = resolve_backend(t, &f->u.mirror.backend);
            rule->n_mirrors++;
            break;
        }
    }
    return 0;
nomem:
    set_err(err, errlen, "out of memory");
    return -ENOMEM;
}

static int compile_route(struct router_table *t, const struct model_route *r, struct croute *cr,
                         char *err, size_t errlen)
{
    cr->src = r;
    if (!(cr->rules = arena_array(t, r->n_rules, sizeof(*cr->rules))))
        goto nomem;
    size_t n = 0;
    for (size_t i = 0; i < r->n_rules; i++)
        n += r->rules[i].n_matches;
    if (!(cr->m = arena_array(t, n, sizeof(*cr->m))))
        goto nomem;
    for (size_t ri = 0; ri < r->n_rules; ri++) {
        if (compile_rule(t, r, ri, &cr->rules[ri], err, errlen))
            return -ENOMEM;
        const struct model_route_rule *rs = &r->rules[ri];
        for (size_t mi = 0; mi < rs->n_matches; mi++) {
            const struct model_route_match *ms = &rs->matches[mi];
            struct router_cmatch *c = &cr->m[cr->n_m++];
            c->rule = &cr->rules[ri];
            c->src = ms;
            c->route = r;
            c->rule_index = (uint32_t)ri;
            c->match_index = (uint32_t)mi;
            c->path_type = ms->path_type;
            c->path = ms->path;
            c->path_len = strlen(ms->path);
            if (ms->path_type == MODEL_PATH_PREFIX)
                while (c->path_len && ms->path[c->path_len - 1] == '/')
                    c->path_len--;
            if (ms->path_type == MODEL_PATH_REGEX &&
                !(c->path_re = compile_regex(t, ms->path, err, errlen, r)))
                return -EINVAL;
            if (ms->method != MODEL_METHOD_ANY) {
                c->method = model_method_str(ms->method);
                c->method_len = strlen(c->method);
            }
            int e =
                compile_vmatches(t, ms->headers, ms->n_headers, true, &c->headers, r, err, errlen);
            if (!e)
                e = compile_vmatches(t, ms->query_params, ms->n_query_params, false, &c->query, r,
                                     err, errlen);
            if (e == -ENOMEM)
                goto nomem;
            if (e)
                return e;
            c->n_headers = ms->n_headers;
            c->n_query = ms->n_query_params;
        }
    }
    return 0;
nomem:
    set_err(err, errlen, "out of memory");
    return -ENOMEM;
}

/* ---- precedence ---- */

static int path_class(enum model_path_match type)
{
    return type == MODEL_PATH_EXACT ? 0 : type == MODEL_PATH_PREFIX ? 1 : 2;
}

/* "ns/name" of a against b, as one string. */
static int cmp_ns_name(const struct model_route *a, const struct model_route *b)
{
    const char *pa[3] = {a->meta.ns, "/", a->meta.name}, *pb[3] = {b->meta.ns, "/", b->meta.name};
    int ia = 0, ib = 0;
    const char *x = pa[0], *y = pb[0];
    for (;;) {
        while (!*x && ia < 2)
            x = pa[++ia];
        while (!*y && ib < 2)
            y = pb[++ib];
        if (!*x || !*y || *x != *y)
            return (unsigned char)*x - (unsigned char)*y;
        x++;
        y++;
    }
}

/* Sort key of CONVENTIONS §5, documented in router.h. */
static int cmp_precedence(const void *pa, const void *pb)
{
    const struct router_cmatch *a = *(const struct router_cmatch *const *)pa;
    const struct router_cmatch *b = *(const struct router_cmatch *const *)pb;
    int d;
    if ((d = path_class(a->path_type) - path_class(b->path_type)))
        return d;
    if (a->path_len != b->path_len)
        return a->path_len > b->path_len ? -1 : 1;
    if ((a->method != NULL) != (b->method != NULL))
        return a->method ? -1 : 1;
    if (a->n_headers != b->n_headers)
        return a->n_headers > b->n_headers ? -1 : 1;
    if (a->n_query != b->n_query)
        return a->n_query > b->n_query ? -1 : 1;
    if (a->route != b->route) {
        if (a->route->meta.creation_ts != b->route->meta.creation_ts)
            return a->route->meta.creation_ts < b->route->meta.creation_ts ? -1 : 1;
        if ((d = cmp_ns_name(a->route, b->route)))
            return d;
    }
    if (a->rule_index != b->rule_index)
        return a->rule_index < b->rule_index ? -1 : 1;
    if (a->match_index != b->match_index)
        return a->match_index < b->match_index ? -1 : 1;
    return 0;
}

/* Most specific first: exact (longest first, though two exact names never both match),
 * wildcards longest first, then ANY. */
static int cmp_tier(const void *pa, const void *pb)
{
    const struct router_tier *a = pa, *b = pb;
    if (a->kind != b->kind)
        return (int)a->kind - (int)b->kind;
    if (a->host_len != b->host_len)
        return a->host_len > b->host_len ? -1 : 1;
    return a->host && b->host ? strcmp(a->host, b->host) : 0;
}

/* ---- attaching routes to Service ports ---- */

struct attach {
    uint32_t port;  /* index into t->ports */
    uint32_t route; /* index into the croute array */
};

static int cmp_attach(const void *pa, const void *pb, void *ctx)
{
    const struct attach *a = pa, *b = pb;
    const struct croute *sort_routes = ctx;
    if (a->port != b->port)
        return a->port < b->port ? -1 : 1;
    int d = strcmp(sort_routes[a->route].src->meta.ns, sort_routes[b->route].src->meta.ns);
    if (d)
        return d;
    return a->route < b->route ? -1 : a->route > b->route;
}

static bool route_has_host(const struct model_route *r, const char *host)
{
    for (size_t i = 0; i < r->n_hostnames; i++)
        if (!strcmp(r->hostnames[i], host))
            return true;
    return false;
}

/* One group from the routes at[0..n) (same port, same namespace). */
static int build_group(struct router_table *t, const struct croute *cr, const struct attach *at,
                       size_t n, struct router_group *g)
{
    g->ns = cr[at[0].route].src->meta.ns;
    size_t max_tiers = 1;
    for (size_t i = 0; i < n; i++)
        max_tiers += cr[at[i].route].src->n_hostnames;
    struct router_tier *tiers = arena_array(t, max_tiers, sizeof(*tiers));
    if (!tiers)
        return -ENOMEM;
    size_t n_tiers = 0;
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        const struct model_route *r = cr[at[i].route].src;
        any |= r->n_hostnames == 0;
        for (size_t h = 0; h < r->n_hostnames; h++) {
            const char *name = r->hostnames[h];
            bool wild = name[0] == '*';
            const char *key = wild ? name + 1 : name;
            size_t k;
            for (k = 0; k < n_tiers; k++)
                if (!strcmp(tiers[k].host, key) &&
                    tiers[k].kind == (wild ? ROUTER_TIER_WILDCARD : ROUTER_TIER_EXACT))
                    break;
            if (k == n_tiers) {
                tiers[n_tiers].kind = wild ? ROUTER_TIER_WILDCARD : ROUTER_TIER_EXACT;
                tiers[n_tiers].host = key;
                tiers[n_tiers].host_len = strlen(key);
                n_tiers++;
            }
        }
    }
    if (any)
        tiers[n_tiers++].kind = ROUTER_TIER_ANY;
    qsort(tiers, n_tiers, sizeof(*tiers), cmp_tier);

    for (size_t k = 0; k < n_tiers; k++) {
        struct router_tier *tr = &tiers[k];
        size_t count = 0;
        for (int pass = 0; pass < 2; pass++) {
            const struct router_cmatch **list = NULL;
            if (pass) {
                if (!(list = arena_array(t, count, sizeof(*list))))
                    return -ENOMEM;
                tr->m = list;
            }
            count = 0;
            for (size_t i = 0; i < n; i++) {
                const struct croute *c = &cr[at[i].route];
                const struct model_route *r = c->src;
                bool in;
                if (tr->kind == ROUTER_TIER_ANY)
                    in = r->n_hostnames == 0;
                else {
                    /* The tier's key is the hostname minus '*' for wildcards. */
                    const char *want = tr->kind == ROUTER_TIER_WILDCARD ? tr->host - 1 : tr->host;
                    in = route_has_host(r, want);
                }
                if (!in)
                    continue;
                for (size_t j = 0; j < c->n_m; j++) {
                    if (pass)
                        list[count] = &c->m[j];
                    count++;
                }
            }
        }
        tr->n = count;
        qsort(tr->m, tr->n, sizeof(*tr->m), cmp_precedence);
    }
    g->tiers = tiers;
    g->n_tiers = n_tiers;
    return 0;
}

/* The ports of s a parentRef selects: one by number or sectionName (port name), or all. */
static bool parent_selects(const struct model_parent_ref *p, const struct model_service_port *sp)
{
    if (p->port && p->port != sp->port)
        return false;
    if (p->section_name && strcmp(p->section_name, sp->name))
        return false;
    return true;
}

static int attach_routes(struct router_table *t, const struct croute *cr, size_t n_routes)
{
    size_t cap = 64, n = 0;
    struct attach *at = malloc(cap * sizeof(*at));
    int rc = -ENOMEM;
    if (!at)
        return -ENOMEM;
    for (size_t r = 0; r < n_routes; r++) {
        const struct model_route *mr = cr[r].src;
        for (size_t p = 0; p < mr->n_parents; p++) {
            const struct model_parent_ref *pr = &mr->parents[p];
            const struct router_service *s = router_find_service(t, pr->ns, pr->name);
            bool any = false;
            for (size_t j = 0; s && j < s->n_ports; j++) {
                if (!parent_selects(pr, s->ports[j].port))
                    continue;
                if (n == cap) {
                    struct attach *x = realloc(at, 2 * cap * sizeof(*at));
                    if (!x)
                        goto out;
                    at = x;
                    cap *= 2;
                }
                at[n].port = (uint32_t)(&s->ports[j] - t->ports);
                at[n].route = (uint32_t)r;
                n++;
                any = true;
            }
            if (!any)
                t->stats.parents_unresolved++;
        }
    }
    qsort_r(at, n, sizeof(*at), cmp_attach, (void *)cr);
    /* Two parentRefs of one route can select the same port. */
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (!w || at[w - 1].port != at[i].port || at[w - 1].route != at[i].route)
            at[w++] = at[i];
    n = w;
    t->stats.attachments = n;

    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && at[j].port == at[i].port)
            j++;
        struct router_port *port = &t->ports[at[i].port];
        const char *svc_ns = port->service->svc->meta.ns;
        /* Groups in this port's run: one per namespace (the run is sorted by namespace). */
        size_t n_groups = 0;
        for (size_t k = i; k < j; k++)
            if (k == i || strcmp(cr[at[k].route].src->meta.ns, cr[at[k - 1].route].src->meta.ns))
                n_groups++;
        struct router_group *groups = arena_array(t, n_groups, sizeof(*groups));
        if (!groups)
            goto out;
        size_t gi = 0, n_consumers = 0;
        struct router_group *producer = NULL;
        for (size_t k = i; k < j;) {
            size_t e = k;
            const char *ns = cr[at[k].route].src->meta.ns;
            while (e < j && !strcmp(cr[at[e].route].src->meta.ns, ns))
                e++;
            if (!strcmp(ns, svc_ns)) {
                if ((rc = build_group(t, cr, at + k, e - k, &groups[n_groups - 1])))
                    goto out;
                producer = &groups[n_groups - 1];
            } else {
                if ((rc = build_group(t, cr, at + k, e - k, &groups[gi])))
                    goto out;
                gi++;
                n_consumers++;
            }
            k = e;
        }
        /* Consumers stay sorted by namespace in groups[0..n_consumers); the producer, when
         * there is one, took the last slot. */
        port->producer = producer;
        port->consumers = n_consumers ? groups : NULL;
        port->n_consumers = n_consumers;
        i = j;
    }
    rc = 0;
out:
    free(at);
    return rc;
}

static int build_defaults(struct router_table *t)
{
    struct router_rule *rules = arena_array(t, t->n_ports, sizeof(*rules));
    struct router_backend *b = arena_array(t, t->n_ports, sizeof(*b));
    if (!rules || !b)
        return -ENOMEM;
    for (size_t i = 0; i < t->n_ports; i++) {
        b[i].target = &t->ports[i];
        b[i].weight = 1;
        rules[i].backends = &b[i];
        rules[i].n_backends = 1;
        rules[i].total_weight = 1;
        rules[i].request_timeout_ms = MODEL_DURATION_UNSET;
        rules[i].backend_timeout_ms = MODEL_DURATION_UNSET;
        rules[i].is_default = true;
        t->ports[i].default_rule = &rules[i];
    }
    return 0;
}

struct router_table *router_table_new(const struct model_set *set, const struct router_options *opt,
                                      char *err, size_t errlen)
{
    struct router_table *t = calloc(1, sizeof(*t));
    struct croute *cr = NULL;
    const char *domain =
        opt && opt->cluster_domain ? opt->cluster_domain : ROUTER_DEFAULT_CLUSTER_DOMAIN;
    uint32_t limit = opt && opt->match_limit ? opt->match_limit : ROUTER_DEFAULT_MATCH_LIMIT;
    set_err(err, errlen, "out of memory");
    if (!t)
        return NULL;
    t->set = set;
    if (!(t->domain = arena_printf(t, "%s", domain)))
        goto fail;
    t->domain_len = strlen(t->domain);
    if (!(t->mctx = pcre2_match_context_create(NULL)))
        goto fail;
    pcre2_set_match_limit(t->mctx, limit);
    pcre2_set_depth_limit(t->mctx, limit);
    pcre2_set_heap_limit(t->mctx, 1024); /* KiB of backtracking frames per match */
    if (build_services(t) || build_vips(t) || build_defaults(t))
        goto fail;
    t->stats.routes = set->n_routes;
    if (set->n_routes && !(cr = calloc(set->n_routes, sizeof(*cr))))
        goto fail;
    for (size_t i = 0; i < set->n_routes; i++)
        if (compile_route(t, &set->routes[i], &cr[i], err, errlen))
            goto fail_keep_err;
    set_err(err, errlen, "out of memory");
    if (attach_routes(t, cr, set->n_routes))
        goto fail;
    free(cr);
    set_err(err, errlen, "%s", "");
    return t;
fail:
    set_err(err, errlen, "out of memory");
fail_keep_err:
    free(cr);
    router_table_free(t);
    return NULL;
}

void router_table_free(struct router_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_codes; i++)
        pcre2_code_free(t->codes[i]);
    free(t->codes);
    pcre2_match_context_free(t->mctx);
    for (struct router_arena *a = t->arena, *next; a; a = next) {
        next = a->next;
        free(a);
    }
    free(t);
}

void router_table_stats(const struct router_table *t, struct router_stats *out)
{
    *out = t->stats;
}
