/*
 * router.h - Gateway API HTTPRoute routing for the mesh (GAMMA: routes attach to Services).
 * Pure: no I/O, no global state, no locks.
 *
 * Two halves. router_table_new() compiles a struct model_set, once per config snapshot, into
 * an immutable table: Services by FQDN and VIP:port (hash tables), and per Service port the
 * attached HTTPRoutes' (rule, match) pairs flattened and pre-sorted by Gateway API
 * precedence, regular expressions compiled once with pcre2. router_route() then matches one
 * request on the hot path: read-only on the table, no allocation, safe from any number of
 * threads at once. router_filter.c holds the filters as pure transforms the proxy applies.
 *
 * Ownership and threads: the table borrows the model_set (every model pointer reachable from
 * it points into the set): free the table before the set; a config snapshot owns both.
 * The table owns everything else and is freed whole by router_table_free(). pcre2 compiled
 * code and the pcre2 match context in the table are only read while matching, which pcre2
 * allows from many threads at once; pcre2 match data is written by every match, so each
 * worker thread owns one struct router_scratch (router_scratch_new() at start, never shared)
 * and passes it to router_route(). A scratch is not tied to a table: it survives snapshot
 * changes.
 *
 * Decisions (each one has a test in tests/unit/router_test.c):
 * - Precedence, across every (rule, match) of every route in play for one Service port:
 *   Exact path > PathPrefix, longest first (a trailing '/' does not count) > RegularExpression
 *   (after every prefix, as Istio's sortHTTPRoutes does; longer pattern first) > has method >
 *   most header matches > most query matches > oldest creationTimestamp (absent = 0, so it
 *   sorts as oldest) > "namespace/name" compared as one string > rule index > match index.
 * - Hostnames first: the rules of routes whose hostnames match the request's Host most
 *   specifically are tried first: an exact hostname, then wildcards longest first, then
 *   routes without hostnames (they see every Host). A request that matches no rule of a
 *   more specific route falls through to the less specific ones (the Gateway API words this
 *   as precedence, not as exclusive virtual hosts). Host is compared without its port and
 *   a trailing dot, case-insensitively; "*.example.com" needs at least one more label.
 * - GAMMA: producer routes (the Service's namespace) apply to every client; consumer routes
 *   (another namespace) only to clients in that namespace, and when a client's namespace has
 *   consumer routes for the Service port, only those apply to it: they replace the producer
 *   routes, never merge with them (GEP-1294, "namespace boundaries"). Decided per Service
 *   port: a consumer route attached to port 80 leaves port 8080 on the producer routes.
 * - A Service port with no applicable route gets a default rule: forward to that same
 *   Service port, weight 1, no filters, no timeouts (result.is_default). With routes in play
 *   and none matching: ROUTER_NO_ROUTE (404, flag NR).
 * - Matching: paths exactly as received (no percent-decoding or dot-segment removal: the
 *   codec normalises first if it wants to); the query string is excluded. Exact and
 *   PathPrefix are case-sensitive; PathPrefix matches whole segments. Regular expressions
 *   (path, header and query values) must match the whole value (anchored at both ends, as
 *   Envoy's safe_regex and Istio do). Header names compare case-insensitively, the first
 *   field of a name is the one matched; a "host" matcher falls back to the authority when no
 *   Host field is in the list (HTTP/2). Query parameters: names compare exactly, both name
 *   and value are percent-decoded (%XX only; '+' stays '+'), the first occurrence counts,
 *   a value that decodes to more than ROUTER_QUERY_VALUE_MAX bytes matches nothing.
 * - Regex engine: pcre2, JIT when available, match/depth/heap limits; a pattern that hits a
 *   limit does not match and is counted in result.regex_errors. ASCII patterns run on bytes
 *   ('.' takes any byte, as RE2 in Envoy does with invalid UTF-8); patterns with non-ASCII
 *   characters or \p \P \X \x{} run in UTF mode with MATCH_INVALID_UTF, where invalid
 *   bytes in the request are safe and match no pattern item.
 * - Weights: share = weight / sum over the rule's backendRefs. A reference to a missing
 *   Service or port stays in the sum and answers 500 when drawn ("500 for its share"); so do
 *   a rule without backendRefs and one whose weights are all 0. Cross-namespace backendRefs
 *   are allowed: the model has no ReferenceGrant yet.
 */
#ifndef RINGMESH_ROUTER_H
#define RINGMESH_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "model.h"

#define ROUTER_DEFAULT_CLUSTER_DOMAIN "cluster.local"
#define ROUTER_MAX_HOST_LEN           253    /* a DNS name; longer authorities resolve to nothing */
#define ROUTER_QUERY_VALUE_MAX        4096   /* decoded query value bytes a matcher looks at */
#define ROUTER_DEFAULT_MATCH_LIMIT    100000 /* pcre2 match limit (backtracking steps) */

/* ---- requests and header lists ---- */

/* A header field as a view: nothing is owned, nothing is NUL-terminated. */
struct router_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* A caller-owned header list the header modifiers edit in place: v[0..n) used, cap slots.
 * Entries the filters add point at strings owned by the table (borrowed; valid as long as
 * the table), so editing never allocates. */
struct router_headers {
    struct router_header *v;
    size_t n;
    size_t cap;
};

/* One request as the router sees it. Every pointer is borrowed for the call only. */
struct router_request {
    const char *method; /* "GET", case-sensitive */
    size_t method_len;
    const char *path; /* origin-form, query included: "/a/b?x=1" */
    size_t path_len;
    const char *authority; /* Host or :authority, port allowed; may be NULL/0 */
    size_t authority_len;
    const struct router_header *headers; /* as received, in order */
    size_t n_headers;
    const char *client_ns; /* the client pod's namespace (NUL-terminated); NULL = "default" */
};

/* ---- the compiled table (read-only for callers) ---- */

struct router_group;
struct router_service;

/* One port of one Service: what VIP and authority lookups return and router_route() takes. */
struct router_port {
    const struct router_service *service;
    const struct model_service_port *port; /* borrowed from the set */
    /* private to the router */
    const struct router_group *producer;  /* NULL: no producer routes on this port */
    const struct router_group *consumers; /* sorted by namespace */
    size_t n_consumers;
    const struct router_rule *default_rule;
};

struct router_service {
    const struct model_service *svc; /* borrowed from the set */
    const char *fqdn;                /* "name.ns.svc.cluster.local", owned by the table */
    size_t fqdn_len;
    const struct router_port *ports; /* svc->ports, same order */
    size_t n_ports;
};

/* A backendRef resolved at compile time. */
struct router_backend {
    const struct model_backend_ref *ref; /* NULL for a default rule's backend */
    const struct router_port *target;    /* NULL: no such Service or port (answers 500) */
    uint32_t weight;
};

/* A RequestMirror filter resolved at compile time. */
struct router_mirror {
    const struct model_mirror *src;
    const struct router_port *target; /* NULL: no such Service or port (never mirrored) */
};

/* One compiled rule. Filters stay the model's typed structs, in the rule's order; the
 * shortcuts point at the one filter of each kind (NULL when absent). */
struct router_rule {
    const struct model_route *route;    /* NULL for a default rule */
    const struct model_route_rule *src; /* NULL for a default rule */
    size_t index;                       /* in route->rules */
    const struct router_backend *backends;
    size_t n_backends;
    uint64_t total_weight;
    const struct model_filter *filters; /* src->filters */
    size_t n_filters;
    const struct model_header_mod *request_headers;  /* RequestHeaderModifier */
    const struct model_header_mod *response_headers; /* ResponseHeaderModifier */
    const struct model_redirect *redirect;
    const struct model_rewrite *rewrite;
    const struct router_mirror *mirrors; /* every RequestMirror, in order */
    size_t n_mirrors;
    int64_t request_timeout_ms; /* MODEL_DURATION_UNSET, 0 = disabled, else ms */
    int64_t backend_timeout_ms;
    const struct model_route_retry *retry; /* NULL for a default rule */
    bool is_default;
};

struct router_table;

struct router_options {
    const char *cluster_domain; /* NULL = ROUTER_DEFAULT_CLUSTER_DOMAIN */
    uint32_t match_limit;       /* 0 = ROUTER_DEFAULT_MATCH_LIMIT */
};

/* What one compile saw, for logs and the admin page. */
struct router_stats {
    size_t services;
    size_t ports;
    size_t vips;          /* VIP:port entries */
    size_t vip_conflicts; /* a VIP:port already taken (the first Service in the set keeps it) */
    size_t routes;
    size_t attachments;        /* (route, Service port) pairs */
    size_t parents_unresolved; /* parentRefs naming a missing Service or port */
    size_t backends_invalid;   /* backendRefs and mirrors naming a missing Service or port */
    size_t regexes;
};

/* Compiles set into a routing table. opt may be NULL (defaults). Returns the table, or NULL
 * with a message in err (NUL-terminated when errlen > 0) on allocation failure or a regex
 * pcre2 refuses. The table borrows set: free the table first. */
struct router_table *router_table_new(const struct model_set *set, const struct router_options *opt,
                                      char *err, size_t errlen);

/* Frees the table and everything it owns. NULL is fine. */
void router_table_free(struct router_table *t);

/* Copies the compile counters into out. */
void router_table_stats(const struct router_table *t, struct router_stats *out);

/* The Service ns/name (ns NULL = "default"), or NULL. O(1). */
const struct router_service *router_find_service(const struct router_table *t, const char *ns,
                                                 const char *name);

/* The port of s with number port, or NULL. Linear in the Service's ports. */
const struct router_port *router_service_port(const struct router_service *s, uint16_t port);

/* The Service port a VIP:port belongs to (family AF_INET with a 4-byte addr, or AF_INET6
 * with 16 bytes; port in host order), or NULL (passthrough). Headless and ExternalName
 * Services have no entries. O(1). */
const struct router_port *router_find_vip(const struct router_table *t, int family,
                                          const void *addr, uint16_t port);

/* Canonicalises an authority the way a pod's resolv.conf search list would (§6) and returns
 * the Service port: "svc" (client_ns), "svc.ns", "svc.ns.svc", "svc.ns.svc.<domain>" with an
 * optional trailing dot (then only the full name), each optionally ":port"; an IP literal
 * goes through the VIP table. Case-insensitive. Without a port in the authority,
 * default_port is used (the connection's original destination port, or 80). client_ns NULL
 * = "default". NULL when nothing matches or the authority is malformed. O(1). */
const struct router_port *router_find_authority(const struct router_table *t, const char *authority,
                                                size_t len, const char *client_ns,
                                                uint16_t default_port);

/* ---- matching ---- */

struct router_scratch;

/* Per-thread scratch for router_route() (pcre2 match data, a query decode buffer). Returns
 * NULL on allocation failure. Never share one between threads. */
struct router_scratch *router_scratch_new(void);
void router_scratch_free(struct router_scratch *s);

enum router_status {
    ROUTER_FORWARD,    /* send to result.backend->target */
    ROUTER_REDIRECT,   /* answer result.rule->redirect->status_code, router_redirect_location() */
    ROUTER_NO_ROUTE,   /* routes are in play and none matched: 404, flag NR */
    ROUTER_NO_BACKEND, /* the drawn backend is invalid, or the rule has none / all weight 0: 500 */
};

struct router_result {
    enum router_status status;
    const struct router_rule *rule;        /* NULL for ROUTER_NO_ROUTE */
    const struct model_route_match *match; /* the match that won; NULL for a default rule */
    const struct router_backend
        *backend;          /* FORWARD; also NO_BACKEND when an invalid one was drawn */
    bool is_default;       /* no route applies: the default rule */
    unsigned regex_errors; /* pcre2 errors (limits hit), counted as no match */
};

/* Routes req sent to Service port dst (from router_find_vip/authority). rnd is a uniformly
 * random number from the caller (one per request; it picks the weighted backend). Fills
 * out and returns out->status. No allocation; the table is only read; s is the calling
 * thread's scratch. Results point into the table. */
enum router_status router_route(const struct router_table *t, const struct router_port *dst,
                                const struct router_request *req, uint64_t rnd,
                                struct router_scratch *s, struct router_result *out);

/* The HTTP status a proxy answers with for a local status (0 for FORWARD; for REDIRECT the
 * rule's redirect code) and the Envoy response flag (NULL = none, shown as "-"). */
int router_result_http_status(const struct router_result *r);
const char *router_status_flag(enum router_status s);
const char *router_status_str(enum router_status s);

/* ---- filters (router_filter.c): pure transforms the proxy applies ---- */

/* The first field named name (case-insensitive), or NULL. */
const struct router_header *router_headers_get(const struct router_headers *h, const char *name,
                                               size_t name_len);

/* Gateway API "set": the first field of that name gets value, later ones are removed; appended
 * when absent. 0, or -ENOSPC when it would need a slot past cap (h unchanged). */
int router_headers_set(struct router_headers *h, const char *name, size_t name_len,
                       const char *value, size_t value_len);

/* Gateway API "add": appends one more field line, after any of the same name. An extra field
 * line is what "append to the existing values" means in RFC 9110 §5.3 terms, needs no
 * buffer, and keeps Set-Cookie intact where joining with commas would break it; HTTP/1.1
 * serialisers may join list fields. 0 or -ENOSPC (h unchanged). */
int router_headers_add(struct router_headers *h, const char *name, size_t name_len,
                       const char *value, size_t value_len);

/* Removes every field named name; returns how many. Order of the others is kept. */
size_t router_headers_remove(struct router_headers *h, const char *name, size_t name_len);

/* Applies one RequestHeaderModifier/ResponseHeaderModifier: set, then add, then remove (the
 * model allows one action per name, so order cannot change the result). 0, or -ENOSPC
 * before touching h when h lacks n_set + n_add free slots. mod NULL is a no-op. */
int router_header_mod_apply(struct router_headers *h, const struct model_header_mod *mod);

/* The path rewrite core: type/value from a URLRewrite or RequestRedirect, prefix the
 * PathPrefix value that matched (for MODEL_REWRITE_PREFIX). path is origin-form with its
 * query, which is kept. ReplacePrefixMatch replaces the matched segments (trailing '/' of
 * prefix and replacement ignored): /foo/bar with /foo -> /xyz gives /xyz/bar, /foo gives
 * /xyz, /foo/ gives /xyz/; an empty or "/" replacement strips the prefix (/foo/bar -> /bar,
 * /foo -> /). MODEL_REWRITE_NONE copies path. Writes a NUL-terminated result to out and
 * returns its length, or -ENOSPC. */
ssize_t router_path_rewrite(enum model_path_rewrite type, const char *value, const char *prefix,
                            const char *path, size_t path_len, char *out, size_t outlen);

/* The upstream path after the matched rule's URLRewrite (req->path unchanged when the rule
 * has none, or no path rewrite). Length or -ENOSPC, as router_path_rewrite(). */
ssize_t router_rewrite_path(const struct router_result *res, const struct router_request *req,
                            char *out, size_t outlen);

/* The Location of the matched rule's RequestRedirect (res->status == ROUTER_REDIRECT):
 * scheme (the filter's, else req_scheme, NULL = "http"), hostname (the filter's, else the
 * request's host without its port), port (the filter's; else 80/443 when the filter sets a
 * scheme; else listener_port, the Service port the request came to), path (ReplaceFullPath,
 * ReplacePrefixMatch or the request's), then the request's query. Port 80 with http and
 * 443 with https are omitted, as is port 0. Length of the NUL-terminated result in out, or
 * -ENOSPC, or -EINVAL when the rule has no redirect. */
ssize_t router_redirect_location(const struct router_result *res, const struct router_request *req,
                                 const char *req_scheme, uint16_t listener_port, char *out,
                                 size_t outlen);

/* Whether this request is mirrored to m->target, given a uniformly random rnd (use a
 * different draw from router_route's): numerator/denominator of requests, never when the
 * target did not resolve. */
bool router_mirror_selected(const struct router_mirror *m, uint64_t rnd);

#endif
