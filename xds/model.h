/*
 * model.h - the resource model: the one parser/validator for ringmesh's Kubernetes-shaped
 * configuration, shared by the sidecar (--config mesh.yaml), the control plane and the CLI.
 *
 * Input is YAML (libyaml; "---" separated documents) or JSON (cJSON; one object, an array
 * of objects, or {"kind":"List","items":[...]}; a YAML document may also be a List). Both
 * become one cJSON tree per document, which one validator checks and converts into the
 * plain C structs below. Pure code: no sockets, no threads, no global state; the only I/O
 * is model_load_file() reading the file it is given. Safe to call from any thread.
 *
 * Validation is strict: unknown kinds, wrong apiVersions, unknown fields, duplicate keys,
 * wrong types and out-of-range values are errors. The first error stops the load; it names
 * the source, the 1-based document, the object (Kind namespace/name) when known, the field
 * path in JSON-path style and what was expected, e.g.
 *   mesh.yaml: document 3 (HTTPRoute default/reviews): spec.rules[0].backendRefs[1].weight:
 *   want an integer 0..1000000, got -5
 * YAML and JSON syntax errors give line:column instead of a path. Documents that are empty
 * or null are skipped (they still count for numbering). Items of a List are numbered as
 * documents in order of appearance.
 *
 * YAML specifics: plain scalars resolve with the YAML 1.2 core schema (80 is a number,
 * "80" a string, true/false booleans, null/~/empty null; yes/no/on/off are strings);
 * anchors, aliases and custom tags are refused; mapping keys must be scalars. A field whose
 * value is null counts as absent, as in Kubernetes. Nesting is bounded (MODEL_MAX_DEPTH).
 *
 * Ignored but accepted (they appear in `kubectl get -o yaml` output): metadata fields other
 * than name/namespace/labels/annotations/creationTimestamp, a top-level `status`, and the
 * Service spec fields listed in model_kinds.c (selector and publishNotReadyAddresses are
 * kept).
 *
 * Ownership: model_load_*() returns one struct model_set that owns everything reachable
 * from it (every string and array lives in the set's arena); model_set_free() frees it all.
 * Objects are immutable once loaded. Regular expressions are checked to compile with pcre2
 * and kept as strings; whoever matches compiles them (pcre2 code is per-snapshot there).
 *
 * ---------------------------------------------------------------------------------------
 * DestinationPolicy (ringmesh.io/v1alpha1): how clients reach one Service. Every field is
 * optional; the defaults are shown. At most one policy may target a Service.
 *
 *   apiVersion: ringmesh.io/v1alpha1
 *   kind: DestinationPolicy
 *   metadata: {name: reviews, namespace: default}
 *   spec:
 *     targetRef: {group: "", kind: Service, name: reviews}   # required; same namespace
 *     loadBalancer:
 *       type: RoundRobin      # RoundRobin | Random | LeastRequest | PeakEWMA | RingHash | Maglev
 *       hashKey:              # required for RingHash/Maglev, forbidden otherwise; exactly one of
 *         header: x-user      #   a request header name,
 *         cookie: session     #   a cookie name,
 *         sourceIP: true      #   or the client's address
 *     retries:
 *       attempts: 2           # retries after the first try, 0..10
 *       perTryTimeout: 0s     # GEP-2257 duration; 0s = only the route timeout bounds a try
 *       retryOn: [connect-failure, refused-stream]
 *                             # connect-failure refused-stream reset 5xx gateway-error
 *                             # retriable-status-codes cancelled deadline-exceeded internal
 *                             # resource-exhausted unavailable (the last five: gRPC status)
 *       retriableStatusCodes: []   # 400..599; needs retriable-status-codes in retryOn
 *       backoff: {baseInterval: 25ms, maxInterval: 250ms}   # max >= base > 0
 *       budget: {percent: 20, minRetriesPerSecond: 10}     # percent 0..100
 *       retryNonIdempotent: false
 *     outlierDetection:       # present = enabled
 *       consecutive5xx: 5     # 0 disables this detector
 *       consecutiveGatewayErrors: 0
 *       interval: 10s
 *       baseEjectionTime: 30s
 *       maxEjectionPercent: 10   # 0..100
 *     connectionPool: {maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024}
 *     tls: {mode: MUTUAL}     # MUTUAL (mesh mTLS) | DISABLE (plaintext to the peer)
 *
 * AuthorizationPolicy (ringmesh.io/v1alpha1): spec.targetRef (optional Service; absent =
 * every workload of the namespace), spec.action ALLOW (default) | DENY, spec.rules[]: each
 * rule {from: {principals: [], namespaces: []}, to: {methods: [], paths: [], ports: []}};
 * a rule matches when every list present has a matching entry; "*" and a leading or
 * trailing "*" are wildcards in principals, namespaces and paths. ALLOW with no rules
 * allows nothing; a rule {} matches every request.
 *
 * PeerAuthentication (ringmesh.io/v1alpha1): spec.selector.matchLabels (optional),
 * spec.mtls.mode STRICT | PERMISSIVE | DISABLE | UNSET (default UNSET = inherit),
 * spec.portLevelMtls: {"<port>": {mode: ...}}.
 * ---------------------------------------------------------------------------------------
 */
#ifndef RINGMESH_MODEL_H
#define RINGMESH_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MODEL_MAX_DEPTH           64          /* nesting of maps and lists in one document */
#define MODEL_MAX_FILE_BYTES      (64u << 20) /* model_load_file refuses larger files */
#define MODEL_MAX_SLICE_ENDPOINTS 1000        /* API limit; the controller writes <= 100 */
#define MODEL_DURATION_UNSET      (-1)        /* an optional duration that was absent */

enum model_kind {
    MODEL_KIND_SERVICE,
    MODEL_KIND_ENDPOINT_SLICE,
    MODEL_KIND_HTTP_ROUTE,
    MODEL_KIND_DESTINATION_POLICY,
    MODEL_KIND_AUTHORIZATION_POLICY,
    MODEL_KIND_PEER_AUTHENTICATION,
    MODEL_KIND_COUNT
};

/* A label or annotation, a header to set/add, a selector term. Both strings owned by the
 * set. */
#define MODEL_SERVICE_ACCOUNTS_ANNOTATION "ringmesh.io/service-accounts"
#define MODEL_MAX_SERVICE_ACCOUNTS 8

struct model_kv {
    const char *key;
    const char *value;
};

/* An IP literal, parsed. text is the canonical form as written (owned by the set). */
struct model_ip {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    const char *text;
};

struct model_meta {
    const char *name;
    const char *ns; /* "default" when absent */
    struct model_kv *labels;
    size_t n_labels;
    struct model_kv *annotations;
    size_t n_annotations;
    int64_t creation_ts; /* metadata.creationTimestamp, seconds since the epoch; 0 if absent */
    int doc;             /* 1-based document index in its source */
};

enum model_protocol { MODEL_PROTO_TCP, MODEL_PROTO_UDP, MODEL_PROTO_SCTP };

/* ---- v1/Service ---- */

enum model_service_type {
    MODEL_SVC_CLUSTER_IP,
    MODEL_SVC_NODE_PORT,
    MODEL_SVC_LOAD_BALANCER,
    MODEL_SVC_EXTERNAL_NAME
};

struct model_service_port {
    const char *name;             /* "" when absent (only allowed with one port) */
    uint16_t port;                /* 1..65535 */
    uint16_t target_port;         /* numeric targetPort; = port when absent; 0 when named */
    const char *target_port_name; /* a named targetPort (IANA service name), else NULL */
    enum model_protocol protocol; /* TCP default */
    const char *app_protocol;     /* NULL when absent */
};

struct model_service {
    struct model_meta meta;
    enum model_service_type type;
    bool headless;                /* clusterIP: None */
    bool has_cluster_ip;          /* a VIP is set (not headless, not empty) */
    struct model_ip cluster_ip;   /* valid when has_cluster_ip */
    struct model_ip *cluster_ips; /* spec.clusterIPs (dual stack); first = cluster_ip */
    size_t n_cluster_ips;
    const char *external_name; /* type ExternalName only, else NULL */
    struct model_service_port *ports;
    size_t n_ports;
    struct model_kv *selector;
    size_t n_selector;
    bool publish_not_ready;
    /* The annotation ringmesh.io/service-accounts: "sa1,sa2" (DNS subdomains, up to
     * MODEL_MAX_SERVICE_ACCOUNTS): the service accounts its endpoints run as, in the
     * Service's namespace. A client sidecar accepts only those identities from the
     * endpoints (Istio's alpha.istio.io/kubernetes-serviceaccounts); absent = any identity
     * of the trust domain. */
    const char **service_accounts;
    size_t n_service_accounts;
};

/* ---- discovery.k8s.io/v1/EndpointSlice ---- */

struct model_slice_port {
    const char *name; /* "" when absent */
    bool has_port;
    uint16_t port; /* valid when has_port (absent = unrestricted, per the API) */
    enum model_protocol protocol;
    const char *app_protocol; /* NULL when absent */
};

struct model_endpoint {
    struct model_ip *addresses; /* 1..100, all of the slice's family */
    size_t n_addresses;
    bool ready;           /* nil => true */
    bool serving;         /* nil => true */
    bool terminating;     /* nil => false */
    const char *hostname; /* NULL when absent; so are the three below */
    const char *node_name;
    const char *zone;
    const char *target_kind; /* targetRef.kind/namespace/name */
    const char *target_ns;
    const char *target_name;
};

struct model_slice {
    struct model_meta meta;
    const char *service_name; /* label kubernetes.io/service-name */
    int family;               /* AF_INET (IPv4) or AF_INET6 (IPv6) */
    struct model_slice_port *ports;
    size_t n_ports;
    struct model_endpoint *endpoints;
    size_t n_endpoints;
};

/* ---- gateway.networking.k8s.io/v1/HTTPRoute ---- */

enum model_path_match { MODEL_PATH_PREFIX, MODEL_PATH_EXACT, MODEL_PATH_REGEX };
enum model_value_match { MODEL_MATCH_EXACT, MODEL_MATCH_REGEX };

enum model_method {
    MODEL_METHOD_ANY, /* no method match */
    MODEL_METHOD_GET,
    MODEL_METHOD_HEAD,
    MODEL_METHOD_POST,
    MODEL_METHOD_PUT,
    MODEL_METHOD_DELETE,
    MODEL_METHOD_CONNECT,
    MODEL_METHOD_OPTIONS,
    MODEL_METHOD_TRACE,
    MODEL_METHOD_PATCH
};

/* A header or query parameter match. Header names keep their case as written; they match
 * case-insensitively. A regex value is a pcre2 pattern that compiled. */
struct model_value_matcher {
    enum model_value_match type;
    const char *name;
    const char *value;
};

struct model_route_match {
    enum model_path_match path_type; /* PathPrefix "/" when absent */
    const char *path;
    struct model_value_matcher *headers;
    size_t n_headers;
    struct model_value_matcher *query_params;
    size_t n_query_params;
    enum model_method method;
};

/* A backend Service reference: group "" kind Service only. */
struct model_backend_ref {
    const char *name;
    const char *ns;               /* the route's namespace when absent */
    uint16_t port;                /* required */
    uint32_t weight;              /* 0..1000000, default 1 */
    struct model_filter *filters; /* RequestHeaderModifier/ResponseHeaderModifier only */
    size_t n_filters;
};

enum model_filter_type {
    MODEL_FILTER_REQUEST_HEADER_MODIFIER,
    MODEL_FILTER_RESPONSE_HEADER_MODIFIER,
    MODEL_FILTER_REQUEST_REDIRECT,
    MODEL_FILTER_URL_REWRITE,
    MODEL_FILTER_REQUEST_MIRROR
};

struct model_header_mod {
    struct model_kv *set; /* <= 16 each; a header name appears in one action only */
    size_t n_set;
    struct model_kv *add;
    size_t n_add;
    const char **remove;
    size_t n_remove;
};

enum model_path_rewrite { MODEL_REWRITE_NONE, MODEL_REWRITE_FULL, MODEL_REWRITE_PREFIX };

struct model_redirect {
    const char *scheme;   /* "http" | "https" | NULL */
    const char *hostname; /* NULL = keep */
    enum model_path_rewrite path_type;
    const char *path; /* replaceFullPath or replacePrefixMatch */
    uint16_t port;    /* 0 = unset */
    int status_code;  /* 301 302 303 307 308; default 302 */
};

struct model_rewrite {
    const char *hostname; /* NULL = keep */
    enum model_path_rewrite path_type;
    const char *path;
};

struct model_mirror {
    struct model_backend_ref backend; /* weight and filters unused */
    uint32_t numerator;               /* share mirrored = numerator/denominator */
    uint32_t denominator;             /* percent p => p/100; default 100/100 */
};

struct model_filter {
    enum model_filter_type type;
    union {
        struct model_header_mod header_mod; /* both header modifiers */
        struct model_redirect redirect;
        struct model_rewrite rewrite;
        struct model_mirror mirror;
    } u;
};

struct model_route_retry {
    bool set;        /* the rule had a retry block */
    uint16_t *codes; /* 400..599 */
    size_t n_codes;
    int attempts;       /* -1 unset (implementation default) */
    int64_t backoff_ms; /* MODEL_DURATION_UNSET when absent */
};

struct model_route_rule {
    const char *name;                  /* optional, unique within the route */
    struct model_route_match *matches; /* >= 1 (the default PathPrefix "/" when absent) */
    size_t n_matches;
    struct model_filter *filters;
    size_t n_filters;
    struct model_backend_ref *backends;
    size_t n_backends;
    int64_t request_timeout_ms; /* MODEL_DURATION_UNSET, 0 = disabled, else ms */
    int64_t backend_timeout_ms; /* the same; <= request when both are set and non-zero */
    struct model_route_retry retry;
};

/* A parent: the Service this route attaches to (Gateway API mesh profile). */
struct model_parent_ref {
    const char *name;
    const char *ns;           /* the route's namespace when absent */
    uint16_t port;            /* 0 = every port of the Service */
    const char *section_name; /* NULL when absent */
};

struct model_route {
    struct model_meta meta;
    struct model_parent_ref *parents; /* 1..32 */
    size_t n_parents;
    const char **hostnames; /* <= 16, lower-cased; "*.x" is a suffix match */
    size_t n_hostnames;
    struct model_route_rule *rules; /* 1..16 */
    size_t n_rules;
};

/* ---- ringmesh.io/v1alpha1/DestinationPolicy (schema at the top of this file) ---- */

enum model_lb_type {
    MODEL_LB_ROUND_ROBIN,
    MODEL_LB_RANDOM,
    MODEL_LB_LEAST_REQUEST,
    MODEL_LB_PEAK_EWMA,
    MODEL_LB_RING_HASH,
    MODEL_LB_MAGLEV
};

enum model_hash_key { MODEL_HASH_NONE, MODEL_HASH_HEADER, MODEL_HASH_COOKIE, MODEL_HASH_SOURCE_IP };

/* retryOn bits */
#define MODEL_RETRY_CONNECT_FAILURE         (1u << 0)
#define MODEL_RETRY_REFUSED_STREAM          (1u << 1)
#define MODEL_RETRY_RESET                   (1u << 2)
#define MODEL_RETRY_5XX                     (1u << 3)
#define MODEL_RETRY_GATEWAY_ERROR           (1u << 4)
#define MODEL_RETRY_RETRIABLE_CODES         (1u << 5)
#define MODEL_RETRY_GRPC_CANCELLED          (1u << 6)
#define MODEL_RETRY_GRPC_DEADLINE           (1u << 7)
#define MODEL_RETRY_GRPC_INTERNAL           (1u << 8)
#define MODEL_RETRY_GRPC_RESOURCE_EXHAUSTED (1u << 9)
#define MODEL_RETRY_GRPC_UNAVAILABLE        (1u << 10)

enum model_tls_mode { MODEL_TLS_MUTUAL, MODEL_TLS_DISABLE };

struct model_destination_policy {
    struct model_meta meta;
    const char *target; /* the Service's name, in meta.ns */

    enum model_lb_type lb;
    enum model_hash_key hash_key;
    const char *hash_name; /* header or cookie name for MODEL_HASH_HEADER/COOKIE */

    bool has_retries; /* a retries block was present; the fields hold defaults if not */
    int retry_attempts;
    int64_t per_try_timeout_ms; /* 0 = none */
    uint32_t retry_on;          /* MODEL_RETRY_* bits */
    uint16_t *retriable_codes;
    size_t n_retriable_codes;
    int64_t backoff_base_ms;
    int64_t backoff_max_ms;
    int budget_percent;
    int budget_min_per_sec;
    bool retry_non_idempotent;

    bool has_outlier; /* outlier detection runs only when present */
    int consecutive_5xx;
    int consecutive_gateway;
    int64_t outlier_interval_ms;
    int64_t base_ejection_ms;
    int max_ejection_percent;

    uint32_t max_connections;
    uint32_t max_pending;
    uint32_t max_requests;

    enum model_tls_mode tls_mode;
};

/* ---- ringmesh.io/v1alpha1/AuthorizationPolicy ---- */

enum model_authz_action { MODEL_AUTHZ_ALLOW, MODEL_AUTHZ_DENY };

struct model_authz_rule {
    const char **principals; /* NULL/0 = any */
    size_t n_principals;
    const char **namespaces;
    size_t n_namespaces;
    enum model_method *methods;
    size_t n_methods;
    const char **paths;
    size_t n_paths;
    uint16_t *ports;
    size_t n_ports;
};

struct model_authz_policy {
    struct model_meta meta;
    const char *target; /* a Service in meta.ns, or NULL = the whole namespace */
    enum model_authz_action action;
    struct model_authz_rule *rules;
    size_t n_rules;
};

/* ---- ringmesh.io/v1alpha1/PeerAuthentication ---- */

enum model_mtls_mode {
    MODEL_MTLS_UNSET,
    MODEL_MTLS_STRICT,
    MODEL_MTLS_PERMISSIVE,
    MODEL_MTLS_DISABLE
};

struct model_port_mtls {
    uint16_t port;
    enum model_mtls_mode mode;
};

struct model_peer_authn {
    struct model_meta meta;
    struct model_kv *selector; /* matchLabels; 0 entries = the whole namespace */
    size_t n_selector;
    enum model_mtls_mode mode;
    struct model_port_mtls *ports;
    size_t n_ports;
};

struct model_arena;

/* Everything one load produced, in document order per kind. Owns all of it. */
struct model_set {
    struct model_service *services;
    size_t n_services;
    struct model_slice *slices;
    size_t n_slices;
    struct model_route *routes;
    size_t n_routes;
    struct model_destination_policy *dest_policies;
    size_t n_dest_policies;
    struct model_authz_policy *authz_policies;
    size_t n_authz_policies;
    struct model_peer_authn *peer_authns;
    size_t n_peer_authns;
    int n_documents;           /* documents seen, empty ones included */
    struct model_arena *arena; /* private */
};

/* Parses and validates buf[0..len) (YAML, or JSON when its first non-blank byte is '{' or
 * '['). src_name names the input in errors (NULL = "<input>"). Returns a set the caller
 * frees with model_set_free(), or NULL with the first error in err (always NUL-terminated
 * when errlen > 0). buf need not be NUL-terminated; a NUL byte inside it is an error. */
struct model_set *model_load_buffer(const char *src_name, const char *buf, size_t len, char *err,
                                    size_t errlen);

/* model_load_buffer(), also appending a copy of every object's document (List items one by
 * one; empty documents and Lists themselves not) to the cJSON array docs, in input order, as
 * each passes validation: the control plane stores and serves objects as written. On
 * failure docs may hold the objects before the bad one; the caller owns docs either way. */
struct cJSON;
struct model_set *model_load_buffer_docs(const char *src_name, const char *buf, size_t len,
                                         struct cJSON *docs, char *err, size_t errlen);

/* Reads path ("-" = standard input, named "<stdin>") and loads it as model_load_buffer()
 * does, with the path as source name. Files over MODEL_MAX_FILE_BYTES are refused. */
struct model_set *model_load_file(const char *path, char *err, size_t errlen);

/* Name syntaxes other programs check the same way the model does (RFC 1123): a label
 * (namespaces) and a subdomain (object and service account names). */
bool model_is_dns_label(const char *s);
bool model_is_dns_subdomain(const char *s);

/* Frees the set and everything it owns. NULL is fine. */
void model_set_free(struct model_set *set);

/* Lookups by namespace and name (ns NULL = "default"); NULL when absent. Linear: for
 * tests and tools; the snapshot compiler builds its own tables. Results are owned by set. */
const struct model_service *model_find_service(const struct model_set *set, const char *ns,
                                               const char *name);
const struct model_slice *model_find_slice(const struct model_set *set, const char *ns,
                                           const char *name);
const struct model_route *model_find_route(const struct model_set *set, const char *ns,
                                           const char *name);
/* The DestinationPolicy targeting Service ns/service (not the policy's own name). */
const struct model_destination_policy *model_find_dest_policy(const struct model_set *set,
                                                              const char *ns, const char *service);
const struct model_authz_policy *model_find_authz(const struct model_set *set, const char *ns,
                                                  const char *name);
const struct model_peer_authn *model_find_peer_authn(const struct model_set *set, const char *ns,
                                                     const char *name);

/* Fills p with the values a Service without a DestinationPolicy gets (the defaults shown
 * at the top of this file; retries: connect-failure and refused-stream only). meta and
 * target are left zero. */
void model_dest_policy_defaults(struct model_destination_policy *p);

/* "Service", "EndpointSlice", ... for logs. */
const char *model_kind_str(enum model_kind kind);
/* "GET", ... ; "" for MODEL_METHOD_ANY. */
const char *model_method_str(enum model_method m);

#endif
