/*
 * router_internal.h - the parts of the compiled routing table only router*.c see: compiled
 * matches, host tiers, groups, the hash tables. Everything here is built by router_table.c
 * (one thread, at compile time), owned by the table's arena, and only read afterwards by
 * router.c and router_filter.c from any thread.
 */
#ifndef RINGMESH_ROUTER_INTERNAL_H
#define RINGMESH_ROUTER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "router.h"

/* A header or query-parameter matcher. */
struct router_vmatch {
    const char *name;
    size_t name_len;
    const char *value; /* Exact: the value; regex: NULL and re set */
    size_t value_len;
    pcre2_code *re;
    bool is_host; /* a header matcher on "host": falls back to the authority */
};

/* One (rule, match) pair: the unit that precedence sorts. */
struct router_cmatch {
    const struct router_rule *rule;
    const struct model_route_match *src;
    const struct model_route *route;
    uint32_t rule_index;
    uint32_t match_index;
    enum model_path_match path_type;
    const char *path;
    size_t path_len; /* PathPrefix: without a trailing '/' ("/" -> 0) */
    pcre2_code *path_re;
    const char *method; /* NULL = any */
    size_t method_len;
    const struct router_vmatch *headers;
    size_t n_headers;
    const struct router_vmatch *query;
    size_t n_query;
};

enum router_tier_kind { ROUTER_TIER_EXACT, ROUTER_TIER_WILDCARD, ROUTER_TIER_ANY };

/* The matches of the routes of one group that list one hostname (or list none: ANY),
 * sorted by precedence. */
struct router_tier {
    enum router_tier_kind kind;
    const char *host; /* EXACT: the name; WILDCARD: ".suffix" (the '*' dropped); ANY: NULL */
    size_t host_len;
    const struct router_cmatch **m;
    size_t n;
};

/* The routes of one namespace attached to one Service port (producer or consumer). Tiers are
 * sorted most specific first: exact, wildcards longest first, any. */
struct router_group {
    const char *ns;
    const struct router_tier *tiers;
    size_t n_tiers;
};

struct router_vip {
    uint8_t family;
    uint16_t port;
    uint8_t addr[16];
    const struct router_port *target;
};

struct router_arena;

struct router_table {
    const struct model_set *set; /* borrowed */
    struct router_arena *arena;  /* owns every compiled object */
    char *domain;                /* the cluster domain, from the arena */
    size_t domain_len;
    struct router_service *services;
    size_t n_services;
    struct router_port *ports; /* every Service's ports, contiguous */
    size_t n_ports;
    uint32_t *svc_slots; /* open addressing: index + 1 into services, 0 = empty */
    size_t svc_mask;
    struct router_vip *vips;
    size_t n_vips;
    uint32_t *vip_slots;
    size_t vip_mask;
    pcre2_match_context *mctx; /* limits; read-only while matching */
    pcre2_code **codes;        /* every compiled regex, to free */
    size_t n_codes;
    size_t cap_codes;
    struct router_stats stats;
};

struct router_scratch {
    pcre2_match_data *md;
    char qbuf[ROUTER_QUERY_VALUE_MAX];
};

/* Hashes (router_table.c), shared with the lookups. */
uint64_t router_hash_lower(const char *s, size_t len);
uint64_t router_hash_vip(int family, const uint8_t *addr, uint16_t port);

/* Case-insensitive ASCII equality of two byte ranges of equal length. */
static inline bool router_ieq(const char *a, const char *b, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return false;
    }
    return true;
}

/* The host part of an authority: no port, no trailing dot; an IPv6 literal keeps its
 * brackets. Sets *port_str and *port_len to the port digits (len 0 when absent). */
void router_split_authority(const char *a, size_t len, const char **host, size_t *host_len,
                            const char **port_str, size_t *port_len);

#endif
