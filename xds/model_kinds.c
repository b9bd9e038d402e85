/*
 * model_kinds.c - validators for every kind but HTTPRoute: v1/Service,
 * discovery.k8s.io/v1/EndpointSlice and the ringmesh.io/v1alpha1 policies
 * (DestinationPolicy, AuthorizationPolicy, PeerAuthentication; the schemas are in model.h).
 *
 * Each model_parse_*() checks one document's tree (apiVersion/kind already matched) and
 * fills the caller's zeroed struct with arena memory; on error it returns -1 with the
 * message in the context, and the caller frees the whole set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "model_internal.h"

static const char *const top_keys[] = {"apiVersion", "kind", "metadata", "spec", "status", NULL};

/* Stores the IP text in the arena after a successful parse. */
static int get_ip(struct model_ctx *c, const cJSON *v, int family, struct model_ip *ip)
{
    const char *want = family == AF_INET    ? "an IPv4 address"
                       : family == AF_INET6 ? "an IPv6 address"
                                            : "an IP address";
    if (!cJSON_IsString(v) || !model_parse_ip(v->valuestring, ip) ||
        (family && ip->family != family))
        return model_want(c, v, want);
    ip->text = model_strdup(c, v->valuestring);
    return ip->text ? 0 : -1;
}

/* ---- Service ---- */

static int parse_service_port(struct model_ctx *c, const cJSON *v, struct model_service_port *p)
{
    static const char *const keys[] = {"name",        "port",     "targetPort", "protocol",
                                       "appProtocol", "nodePort", NULL};
    long long n;
    int e;
    MODEL_TRY(model_check_object(c, v, keys));
    MODEL_TRY(model_get_str(c, v, "name", false, MODEL_STR_DNS_LABEL, &p->name));
    if (!p->name)
        p->name = "";
    MODEL_TRY(model_get_int(c, v, "port", true, 1, 65535, 0, &n));
    p->port = (uint16_t)n;
    p->target_port = p->port;
    const cJSON *tp = model_get(v, "targetPort");
    if (tp) {
        size_t mark = model_path_key(c, "targetPort");
        if (cJSON_IsString(tp)) {
            MODEL_TRY(model_check_str(c, tp, tp->valuestring, MODEL_STR_IANA_SVC));
            if (!(p->target_port_name = model_strdup(c, tp->valuestring)))
                return -1;
            p->target_port = 0;
        } else {
            double d = cJSON_IsNumber(tp) ? tp->valuedouble : 0;
            if (!(d >= 1 && d <= 65535 && d == (double)(int)d))
                return model_want(c, tp, "a port number 1..65535 or a port name");
            p->target_port = (uint16_t)d;
        }
        model_path_pop(c, mark);
    }
    MODEL_TRY(model_get_enum(c, v, "protocol", model_protocol_names, MODEL_PROTO_TCP, &e));
    p->protocol = (enum model_protocol)e;
    MODEL_TRY(model_get_str(c, v, "appProtocol", false, MODEL_STR_LABEL_KEY, &p->app_protocol));
    MODEL_TRY(model_get_int(c, v, "nodePort", false, 0, 65535, 0, &n));
    return 0;
}

/* metadata.annotations["ringmesh.io/service-accounts"]: "a, b" into out->service_accounts. */
static int parse_service_accounts(struct model_ctx *c, struct model_service *out)
{
    const char *v = NULL;
    for (size_t i = 0; i < out->meta.n_annotations; i++)
        if (!strcmp(out->meta.annotations[i].key, MODEL_SERVICE_ACCOUNTS_ANNOTATION))
            v = out->meta.annotations[i].value;
    if (!v)
        return 0;
    size_t m1 = model_path_key(c, "metadata"), m2 = model_path_key(c, "annotations");
    size_t m3 = model_path_key(c, MODEL_SERVICE_ACCOUNTS_ANNOTATION);
    if (!(out->service_accounts = model_alloc(c, MODEL_MAX_SERVICE_ACCOUNTS, sizeof(char *))))
        return -1;
    for (const char *p = v;;) {
        p += strspn(p, " ");
        size_t n = strcspn(p, ",");
        size_t k = n;
        while (k && p[k - 1] == ' ')
            k--;
        char sa[256];
        if (k == 0 || k >= sizeof(sa))
            return model_fail(c, "want a comma-separated list of service account names, got "
                                 "\"%s\"", v);
        memcpy(sa, p, k);
        sa[k] = 0;
        if (!model_is_dns_subdomain(sa))
            return model_fail(c, "\"%s\" is not a service account name (a DNS subdomain)", sa);
        if (out->n_service_accounts == MODEL_MAX_SERVICE_ACCOUNTS)
            return model_fail(c, "at most %d service accounts", MODEL_MAX_SERVICE_ACCOUNTS);
        for (size_t j = 0; j < out->n_service_accounts; j++)
            if (!strcmp(out->service_accounts[j], sa))
                return model_fail(c, "\"%s\" is listed twice", sa);
        if (!(out->service_accounts[out->n_service_accounts++] = model_strdup(c, sa)))
            return -1;
        if (!p[n])
            break;
        p += n + 1;
    }
    model_path_pop(c, m3);
    model_path_pop(c, m2);
    model_path_pop(c, m1);
    return 0;
}

int model_parse_service(struct model_ctx *c, const cJSON *doc, struct model_service *out)
{
    static const char *const spec_keys[] = {
        "clusterIP", "clusterIPs", "type", "externalName", "ports", "selector",
        "publishNotReadyAddresses",
        /* Accepted and ignored: they do not change what the mesh does. */
        "sessionAffinity", "sessionAffinityConfig", "ipFamilies", "ipFamilyPolicy",
        "internalTrafficPolicy", "externalTrafficPolicy", "loadBalancerIP",
        "loadBalancerSourceRanges", "loadBalancerClass", "externalIPs", "healthCheckNodePort",
        "allocateLoadBalancerNodePorts", "trafficDistribution", NULL};
    static const char *const types[] = {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName",
                                        NULL};
    const cJSON *spec;
    size_t mark;
    int e;
    MODEL_TRY(model_check_object(c, doc, top_keys));
    MODEL_TRY(model_parse_meta(c, doc, MODEL_STR_DNS_1035, &out->meta));
    MODEL_TRY(parse_service_accounts(c, out));
    MODEL_TRY(model_enter(c, doc, "spec", true, spec_keys, &spec, &mark));
    MODEL_TRY(model_get_enum(c, spec, "type", types, MODEL_SVC_CLUSTER_IP, &e));
    out->type = (enum model_service_type)e;
    bool external = out->type == MODEL_SVC_EXTERNAL_NAME;

    const cJSON *ip = model_get(spec, "clusterIP");
    if (ip) {
        size_t m2 = model_path_key(c, "clusterIP");
        if (cJSON_IsString(ip) && !strcmp(ip->valuestring, "None")) {
            out->headless = true;
        } else if (!(cJSON_IsString(ip) && ip->valuestring[0] == 0)) {
            if (!cJSON_IsString(ip) || !model_parse_ip(ip->valuestring, &out->cluster_ip))
                return model_want(c, ip, "an IP address, \"None\" or \"\"");
            if (!(out->cluster_ip.text = model_strdup(c, ip->valuestring)))
                return -1;
            out->has_cluster_ip = true;
        }
        if (external && (out->headless || out->has_cluster_ip))
            return model_fail(c, "must be empty for type ExternalName");
        model_path_pop(c, m2);
    }
    const cJSON *ips;
    MODEL_TRY(model_get_list(c, spec, "clusterIPs", false, 0, 2, &ips, &out->n_cluster_ips));
    if (ips && out->n_cluster_ips) { /* [] means unset, as in Kubernetes */
        size_t m2 = model_path_key(c, "clusterIPs"), i = 0;
        if (!(out->cluster_ips = model_alloc(c, out->n_cluster_ips, sizeof(struct model_ip))))
            return -1;
        for (const cJSON *it = ips->child; it; it = it->next, i++) {
            size_t m3 = model_path_idx(c, i);
            MODEL_TRY(get_ip(
                c, it, i == 1 ? (out->cluster_ips[0].family == AF_INET ? AF_INET6 : AF_INET) : 0,
                &out->cluster_ips[i]));
            model_path_pop(c, m3);
        }
        if (out->headless || external)
            return model_fail(c, "must be absent with clusterIP None or type ExternalName");
        if (out->has_cluster_ip && strcmp(out->cluster_ips[0].text, out->cluster_ip.text) != 0)
            return model_fail(c, "the first entry must equal clusterIP \"%s\"",
                              out->cluster_ip.text);
        if (!out->has_cluster_ip && out->n_cluster_ips) {
            out->cluster_ip = out->cluster_ips[0];
            out->has_cluster_ip = true;
        }
        model_path_pop(c, m2);
    }

    MODEL_TRY(
        model_get_str(c, spec, "externalName", external, MODEL_STR_SUBDOMAIN, &out->external_name));
    if (out->external_name && !external)
        return model_fail_at(c, "externalName", "only allowed with type ExternalName");

    const cJSON *ports;
    bool need_ports = !external && !out->headless;
    MODEL_TRY(model_get_list(c, spec, "ports", need_ports, need_ports ? 1 : 0, 128, &ports,
                             &out->n_ports));
    if (!(out->ports = model_alloc(c, out->n_ports, sizeof(*out->ports))))
        return -1;
    size_t m2 = model_path_key(c, "ports"), i = 0;
    for (const cJSON *it = ports ? ports->child : NULL; it; it = it->next, i++) {
        struct model_service_port *p = &out->ports[i];
        size_t m3 = model_path_idx(c, i);
        MODEL_TRY(parse_service_port(c, it, p));
        if (out->n_ports > 1 && !p->name[0])
            return model_fail_at(c, "name", "required when there is more than one port");
        for (size_t j = 0; j < i; j++) {
            if (p->name[0] && !strcmp(out->ports[j].name, p->name))
                return model_fail_at(c, "name", "duplicate port name \"%s\" (also ports[%zu])",
                                     p->name, j);
            if (out->ports[j].port == p->port && out->ports[j].protocol == p->protocol)
                return model_fail_at(c, "port", "duplicate port %u/%s (also ports[%zu])", p->port,
                                     model_protocol_names[p->protocol], j);
        }
        model_path_pop(c, m3);
    }
    model_path_pop(c, m2);

    MODEL_TRY(model_get_str_map(c, spec, "selector", MODEL_STR_LABEL_KEY, MODEL_STR_LABEL_VALUE,
                                &out->selector, &out->n_selector));
    MODEL_TRY(model_get_bool(c, spec, "publishNotReadyAddresses", false, &out->publish_not_ready));
    model_path_pop(c, mark);
    return 0;
}

/* ---- EndpointSlice ---- */

#define SERVICE_NAME_LABEL "kubernetes.io/service-name"

static int parse_endpoint(struct model_ctx *c, const cJSON *v, int family,
                          struct model_endpoint *ep)
{
    static const char *const keys[] = {"addresses", "conditions", "hostname", "nodeName",
                                       "zone",      "targetRef",  "hints",    "deprecatedTopology",
                                       NULL};
    static const char *const cond_keys[] = {"ready", "serving", "terminating", NULL};
    static const char *const ref_keys[] = {"kind",       "namespace",       "name",      "uid",
                                           "apiVersion", "resourceVersion", "fieldPath", NULL};
    static const char *const hint_keys[] = {"forZones", "forNodes", NULL};
    static const char *const hint_item_keys[] = {"name", NULL};
    const cJSON *o, *list;
    size_t mark, n, i = 0;
    MODEL_TRY(model_check_object(c, v, keys));

    MODEL_TRY(model_get_list(c, v, "addresses", true, 1, 100, &list, &ep->n_addresses));
    if (!(ep->addresses = model_alloc(c, ep->n_addresses, sizeof(*ep->addresses))))
        return -1;
    mark = model_path_key(c, "addresses");
    for (const cJSON *it = list->child; it; it = it->next, i++) {
        size_t m2 = model_path_idx(c, i);
        MODEL_TRY(get_ip(c, it, family, &ep->addresses[i]));
        model_path_pop(c, m2);
    }
    model_path_pop(c, mark);

    /* §6: nil ready and serving mean true, nil terminating means false. */
    MODEL_TRY(model_enter(c, v, "conditions", false, cond_keys, &o, &mark));
    MODEL_TRY(model_get_bool(c, o, "ready", true, &ep->ready));
    MODEL_TRY(model_get_bool(c, o, "serving", true, &ep->serving));
    MODEL_TRY(model_get_bool(c, o, "terminating", false, &ep->terminating));
    if (o)
        model_path_pop(c, mark);

    MODEL_TRY(model_get_str(c, v, "hostname", false, MODEL_STR_DNS_LABEL, &ep->hostname));
    MODEL_TRY(model_get_str(c, v, "nodeName", false, MODEL_STR_SUBDOMAIN, &ep->node_name));
    MODEL_TRY(model_get_str(c, v, "zone", false, MODEL_STR_NONEMPTY, &ep->zone));

    MODEL_TRY(model_enter(c, v, "targetRef", false, ref_keys, &o, &mark));
    if (o) {
        const char *ignored;
        MODEL_TRY(model_get_str(c, o, "kind", false, MODEL_STR_NONEMPTY, &ep->target_kind));
        MODEL_TRY(model_get_str(c, o, "namespace", false, MODEL_STR_DNS_LABEL, &ep->target_ns));
        MODEL_TRY(model_get_str(c, o, "name", false, MODEL_STR_SUBDOMAIN, &ep->target_name));
        MODEL_TRY(model_get_str(c, o, "uid", false, MODEL_STR_ANY, &ignored));
        MODEL_TRY(model_get_str(c, o, "apiVersion", false, MODEL_STR_ANY, &ignored));
        MODEL_TRY(model_get_str(c, o, "resourceVersion", false, MODEL_STR_ANY, &ignored));
        MODEL_TRY(model_get_str(c, o, "fieldPath", false, MODEL_STR_ANY, &ignored));
        model_path_pop(c, mark);
    }

    /* Topology hints: checked for shape, not used yet. */
    MODEL_TRY(model_enter(c, v, "hints", false, hint_keys, &o, &mark));
    for (int h = 0; o && h < 2; h++) {
        const char *key = h ? "forNodes" : "forZones";
        MODEL_TRY(model_get_list(c, o, key, false, 0, 8, &list, &n));
        size_t m2 = model_path_key(c, key);
        i = 0;
        for (const cJSON *it = list ? list->child : NULL; it; it = it->next, i++) {
            const char *name;
            size_t m3 = model_path_idx(c, i);
            MODEL_TRY(model_check_object(c, it, hint_item_keys));
            MODEL_TRY(model_get_str(c, it, "name", true, MODEL_STR_NONEMPTY, &name));
            model_path_pop(c, m3);
        }
        model_path_pop(c, m2);
    }
    if (o)
        model_path_pop(c, mark);
    MODEL_TRY(model_get_str_map(c, v, "deprecatedTopology", MODEL_STR_LABEL_KEY, MODEL_STR_ANY,
                                &(struct model_kv *){NULL}, &n));
    return 0;
}

int model_parse_slice(struct model_ctx *c, const cJSON *doc, struct model_slice *out)
{
    static const char *const keys[] = {"apiVersion", "kind",      "metadata", "addressType",
                                       "ports",      "endpoints", NULL};
    static const char *const port_keys[] = {"name", "port", "protocol", "appProtocol", NULL};
    static const char *const families[] = {"IPv4", "IPv6", NULL};
    const cJSON *list;
    size_t mark, i = 0;
    int e;
    long long n;
    MODEL_TRY(model_check_object(c, doc, keys));
    MODEL_TRY(model_parse_meta(c, doc, MODEL_STR_SUBDOMAIN, &out->meta));
    for (size_t l = 0; l < out->meta.n_labels; l++)
        if (!strcmp(out->meta.labels[l].key, SERVICE_NAME_LABEL))
            out->service_name = out->meta.labels[l].value;
    if (!out->service_name) {
        mark = model_path_key(c, "metadata");
        return model_fail_at(c, "labels",
                             "want the label " SERVICE_NAME_LABEL " naming the Service");
    }
    if (!model_is_str(out->service_name, MODEL_STR_DNS_1035)) {
        model_path_key(c, "metadata");
        model_path_key(c, "labels");
        model_path_key(c, SERVICE_NAME_LABEL);
        return model_fail(c, "want a Service name (a DNS-1035 label), got \"%s\"",
                          out->service_name);
    }
    MODEL_TRY(model_get_enum(c, doc, "addressType", families, -1, &e));
    out->family = e == 0 ? AF_INET : AF_INET6;

    MODEL_TRY(model_get_list(c, doc, "ports", false, 0, 100, &list, &out->n_ports));
    if (!(out->ports = model_alloc(c, out->n_ports, sizeof(*out->ports))))
        return -1;
    mark = model_path_key(c, "ports");
    for (const cJSON *it = list ? list->child : NULL; it; it = it->next, i++) {
        struct model_slice_port *p = &out->ports[i];
        size_t m2 = model_path_idx(c, i);
        MODEL_TRY(model_check_object(c, it, port_keys));
        MODEL_TRY(model_get_str(c, it, "name", false, MODEL_STR_ANY, &p->name));
        if (!p->name)
            p->name = "";
        if (p->name[0] && !model_is_str(p->name, MODEL_STR_DNS_LABEL)) {
            model_path_key(c, "name");
            return model_want(c, model_get(it, "name"), "\"\" or a DNS label");
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(out->ports[j].name, p->name))
                return model_fail_at(c, "name", "duplicate port name \"%s\" (also ports[%zu])",
                                     p->name, j);
        MODEL_TRY(model_get_int(c, it, "port", false, 1, 65535, 0, &n));
        p->has_port = model_get(it, "port") != NULL;
        p->port = (uint16_t)n;
        MODEL_TRY(model_get_enum(c, it, "protocol", model_protocol_names, MODEL_PROTO_TCP, &e));
        p->protocol = (enum model_protocol)e;
        MODEL_TRY(
            model_get_str(c, it, "appProtocol", false, MODEL_STR_LABEL_KEY, &p->app_protocol));
        model_path_pop(c, m2);
    }
    model_path_pop(c, mark);

    MODEL_TRY(model_get_list(c, doc, "endpoints", false, 0, MODEL_MAX_SLICE_ENDPOINTS, &list,
                             &out->n_endpoints));
    if (!(out->endpoints = model_alloc(c, out->n_endpoints, sizeof(*out->endpoints))))
        return -1;
    mark = model_path_key(c, "endpoints");
    i = 0;
    for (const cJSON *it = list ? list->child : NULL; it; it = it->next, i++) {
        size_t m2 = model_path_idx(c, i);
        MODEL_TRY(parse_endpoint(c, it, out->family, &out->endpoints[i]));
        model_path_pop(c, m2);
    }
    model_path_pop(c, mark);
    return 0;
}

/* ---- DestinationPolicy ---- */

static const char *const retry_on_names[] = {
    "connect-failure", "refused-stream",         "reset",       "5xx",
    "gateway-error",   "retriable-status-codes", "cancelled",   "deadline-exceeded",
    "internal",        "resource-exhausted",     "unavailable", NULL};

void model_dest_policy_defaults(struct model_destination_policy *p)
{
    p->lb = MODEL_LB_ROUND_ROBIN;
    p->hash_key = MODEL_HASH_NONE;
    p->hash_name = NULL;
    p->has_retries = false;
    p->retry_attempts = 2;
    p->per_try_timeout_ms = 0;
    p->retry_on = MODEL_RETRY_CONNECT_FAILURE | MODEL_RETRY_REFUSED_STREAM;
    p->retriable_codes = NULL;
    p->n_retriable_codes = 0;
    p->backoff_base_ms = 25;
    p->backoff_max_ms = 250;
    p->budget_percent = 20;
    p->budget_min_per_sec = 10;
    p->retry_non_idempotent = false;
    p->has_outlier = false;
    p->consecutive_5xx = 5;
    p->consecutive_gateway = 0;
    p->outlier_interval_ms = 10000;
    p->base_ejection_ms = 30000;
    p->max_ejection_percent = 10;
    p->max_connections = 1024;
    p->max_pending = 1024;
    p->max_requests = 1024;
    p->tls_mode = MODEL_TLS_MUTUAL;
}

static int parse_lb(struct model_ctx *c, const cJSON *spec, struct model_destination_policy *p)
{
    static const char *const keys[] = {"type", "hashKey", NULL};
    static const char *const hash_keys[] = {"header", "cookie", "sourceIP", NULL};
    static const char *const types[] = {
        "RoundRobin", "Random", "LeastRequest", "PeakEWMA", "RingHash", "Maglev", NULL};
    const cJSON *lb, *hk;
    size_t mark, m2;
    int e;
    MODEL_TRY(model_enter(c, spec, "loadBalancer", false, keys, &lb, &mark));
    if (!lb)
        return 0;
    MODEL_TRY(model_get_enum(c, lb, "type", types, MODEL_LB_ROUND_ROBIN, &e));
    p->lb = (enum model_lb_type)e;
    bool hashing = p->lb == MODEL_LB_RING_HASH || p->lb == MODEL_LB_MAGLEV;
    MODEL_TRY(model_enter(c, lb, "hashKey", false, hash_keys, &hk, &m2));
    if (!hk) {
        if (hashing)
            return model_fail_at(c, "hashKey", "required for type %s", types[e]);
        model_path_pop(c, mark);
        return 0;
    }
    if (!hashing)
        return model_fail(c, "only allowed with type RingHash or Maglev");
    if (cJSON_GetArraySize(hk) != 1)
        return model_fail(c, "want exactly one of header, cookie, sourceIP");
    MODEL_TRY(model_get_str(c, hk, "header", false, MODEL_STR_HEADER_NAME, &p->hash_name));
    if (p->hash_name) {
        p->hash_key = MODEL_HASH_HEADER;
    } else {
        MODEL_TRY(model_get_str(c, hk, "cookie", false, MODEL_STR_TOKEN, &p->hash_name));
        if (p->hash_name) {
            p->hash_key = MODEL_HASH_COOKIE;
        } else {
            const cJSON *s = model_get(hk, "sourceIP");
            if (!cJSON_IsTrue(s)) {
                model_path_key(c, hk->child->string);
                return model_want(c, s, "true");
            }
            p->hash_key = MODEL_HASH_SOURCE_IP;
        }
    }
    model_path_pop(c, mark);
    return 0;
}

static int parse_retries(struct model_ctx *c, const cJSON *spec, struct model_destination_policy *p)
{
    static const char *const keys[] = {
        "attempts", "perTryTimeout",      "retryOn", "retriableStatusCodes", "backoff",
        "budget",   "retryNonIdempotent", NULL};
    static const char *const backoff_keys[] = {"baseInterval", "maxInterval", NULL};
    static const char *const budget_keys[] = {"percent", "minRetriesPerSecond", NULL};
    const cJSON *r, *o, *list;
    size_t mark, m2, n;
    long long v;
    MODEL_TRY(model_enter(c, spec, "retries", false, keys, &r, &mark));
    if (!r)
        return 0;
    p->has_retries = true;
    MODEL_TRY(model_get_int(c, r, "attempts", false, 0, 10, 2, &v));
    p->retry_attempts = (int)v;
    MODEL_TRY(model_get_duration(c, r, "perTryTimeout", 0, &p->per_try_timeout_ms));
    MODEL_TRY(model_get_list(c, r, "retryOn", false, 0, 16, &list, &n));
    if (list) {
        p->retry_on = 0;
        m2 = model_path_key(c, "retryOn");
        size_t i = 0;
        for (const cJSON *it = list->child; it; it = it->next, i++) {
            size_t m3 = model_path_idx(c, i);
            int bit = -1;
            for (int b = 0; cJSON_IsString(it) && retry_on_names[b]; b++)
                if (!strcmp(retry_on_names[b], it->valuestring))
                    bit = b;
            if (bit < 0)
                return model_want(c, it,
                                  "one of connect-failure, refused-stream, reset, 5xx, "
                                  "gateway-error, retriable-status-codes, cancelled, "
                                  "deadline-exceeded, internal, resource-exhausted, "
                                  "unavailable");
            if (p->retry_on & (1u << bit))
                return model_fail(c, "duplicate entry \"%s\"", retry_on_names[bit]);
            p->retry_on |= 1u << bit;
            model_path_pop(c, m3);
        }
        model_path_pop(c, m2);
    }
    MODEL_TRY(
        model_get_codes(c, r, "retriableStatusCodes", &p->retriable_codes, &p->n_retriable_codes));
    if (p->n_retriable_codes && !(p->retry_on & MODEL_RETRY_RETRIABLE_CODES))
        return model_fail_at(c, "retriableStatusCodes", "needs retriable-status-codes in retryOn");
    if (!p->n_retriable_codes && (p->retry_on & MODEL_RETRY_RETRIABLE_CODES))
        return model_fail_at(c, "retriableStatusCodes",
                             "required when retryOn has retriable-status-codes");

    MODEL_TRY(model_enter(c, r, "backoff", false, backoff_keys, &o, &m2));
    if (o) {
        MODEL_TRY(model_get_duration(c, o, "baseInterval", 25, &p->backoff_base_ms));
        if (p->backoff_base_ms == 0)
            return model_fail_at(c, "baseInterval", "want a duration above 0s, got \"0s\"");
        /* Envoy's rule: the cap defaults to ten times the base. */
        MODEL_TRY(
            model_get_duration(c, o, "maxInterval", 10 * p->backoff_base_ms, &p->backoff_max_ms));
        if (p->backoff_max_ms < p->backoff_base_ms)
            return model_fail_at(c, "maxInterval", "must be at least baseInterval (%lldms)",
                                 (long long)p->backoff_base_ms);
        model_path_pop(c, m2);
    }
    MODEL_TRY(model_enter(c, r, "budget", false, budget_keys, &o, &m2));
    if (o) {
        MODEL_TRY(model_get_int(c, o, "percent", false, 0, 100, 20, &v));
        p->budget_percent = (int)v;
        MODEL_TRY(model_get_int(c, o, "minRetriesPerSecond", false, 0, 1000000, 10, &v));
        p->budget_min_per_sec = (int)v;
        model_path_pop(c, m2);
    }
    MODEL_TRY(model_get_bool(c, r, "retryNonIdempotent", false, &p->retry_non_idempotent));
    model_path_pop(c, mark);
    return 0;
}

static int positive_duration(struct model_ctx *c, const cJSON *o, const char *key, int64_t def,
                             int64_t *out)
{
    MODEL_TRY(model_get_duration(c, o, key, def, out));
    if (*out == 0)
        return model_fail_at(c, key, "want a duration above 0s, got \"0s\"");
    return 0;
}

int model_parse_dest_policy(struct model_ctx *c, const cJSON *doc,
                            struct model_destination_policy *out)
{
    static const char *const spec_keys[] = {
        "targetRef", "loadBalancer", "retries", "outlierDetection", "connectionPool", "tls", NULL};
    static const char *const od_keys[] = {"consecutive5xx",     "consecutiveGatewayErrors",
                                          "interval",           "baseEjectionTime",
                                          "maxEjectionPercent", NULL};
    static const char *const pool_keys[] = {"maxConnections", "maxPendingRequests", "maxRequests",
                                            NULL};
    static const char *const tls_keys[] = {"mode", NULL};
    static const char *const tls_modes[] = {"MUTUAL", "DISABLE", NULL};
    const cJSON *spec, *o;
    size_t mark, m2;
    long long v;
    int e;
    model_dest_policy_defaults(out);
    MODEL_TRY(model_check_object(c, doc, top_keys));
    MODEL_TRY(model_parse_meta(c, doc, MODEL_STR_SUBDOMAIN, &out->meta));
    MODEL_TRY(model_enter(c, doc, "spec", true, spec_keys, &spec, &mark));
    MODEL_TRY(model_parse_service_ref(c, spec, "targetRef", true, &out->target));
    MODEL_TRY(parse_lb(c, spec, out));
    MODEL_TRY(parse_retries(c, spec, out));

    MODEL_TRY(model_enter(c, spec, "outlierDetection", false, od_keys, &o, &m2));
    if (o) {
        out->has_outlier = true;
        MODEL_TRY(model_get_int(c, o, "consecutive5xx", false, 0, 1000000, 5, &v));
        out->consecutive_5xx = (int)v;
        MODEL_TRY(model_get_int(c, o, "consecutiveGatewayErrors", false, 0, 1000000, 0, &v));
        out->consecutive_gateway = (int)v;
        MODEL_TRY(positive_duration(c, o, "interval", 10000, &out->outlier_interval_ms));
        MODEL_TRY(positive_duration(c, o, "baseEjectionTime", 30000, &out->base_ejection_ms));
        MODEL_TRY(model_get_int(c, o, "maxEjectionPercent", false, 0, 100, 10, &v));
        out->max_ejection_percent = (int)v;
        model_path_pop(c, m2);
    }
    MODEL_TRY(model_enter(c, spec, "connectionPool", false, pool_keys, &o, &m2));
    if (o) {
        MODEL_TRY(model_get_int(c, o, "maxConnections", false, 1, UINT32_MAX, 1024, &v));
        out->max_connections = (uint32_t)v;
        MODEL_TRY(model_get_int(c, o, "maxPendingRequests", false, 1, UINT32_MAX, 1024, &v));
        out->max_pending = (uint32_t)v;
        MODEL_TRY(model_get_int(c, o, "maxRequests", false, 1, UINT32_MAX, 1024, &v));
        out->max_requests = (uint32_t)v;
        model_path_pop(c, m2);
    }
    MODEL_TRY(model_enter(c, spec, "tls", false, tls_keys, &o, &m2));
    if (o) {
        MODEL_TRY(model_get_enum(c, o, "mode", tls_modes, MODEL_TLS_MUTUAL, &e));
        out->tls_mode = (enum model_tls_mode)e;
        model_path_pop(c, m2);
    }
    model_path_pop(c, mark);
    return 0;
}

/* ---- AuthorizationPolicy ---- */

/* "*", "prefix*", "*suffix" or an exact value; one wildcard at most, at an end. */
static int get_patterns(struct model_ctx *c, const cJSON *obj, const char *key, bool path,
                        const char ***out, size_t *n)
{
    MODEL_TRY(model_get_str_list(c, obj, key, 64, MODEL_STR_NONEMPTY, true, out, n));
    for (size_t i = 0; i < *n; i++) {
        const char *s = (*out)[i], *star = strchr(s, '*');
        size_t len = strlen(s);
        bool ok = !star || (strchr(star + 1, '*') == NULL && (star == s || star == s + len - 1));
        if (ok && path && s[0] != '/' && s[0] != '*')
            ok = false;
        if (!ok) {
            model_path_key(c, key);
            model_path_idx(c, i);
            return model_fail(c, "want %s with at most one '*' at its start or end, got \"%s\"",
                              path ? "a path starting with '/'" : "a name", s);
        }
    }
    return 0;
}

static int parse_authz_rule(struct model_ctx *c, const cJSON *v, struct model_authz_rule *r)
{
    static const char *const keys[] = {"from", "to", NULL};
    static const char *const from_keys[] = {"principals", "namespaces", NULL};
    static const char *const to_keys[] = {"methods", "paths", "ports", NULL};
    const cJSON *o, *list;
    size_t mark, n, i = 0;
    MODEL_TRY(model_check_object(c, v, keys));
    MODEL_TRY(model_enter(c, v, "from", false, from_keys, &o, &mark));
    if (o) {
        MODEL_TRY(get_patterns(c, o, "principals", false, &r->principals, &r->n_principals));
        MODEL_TRY(get_patterns(c, o, "namespaces", false, &r->namespaces, &r->n_namespaces));
        model_path_pop(c, mark);
    }
    MODEL_TRY(model_enter(c, v, "to", false, to_keys, &o, &mark));
    if (!o)
        return 0;
    MODEL_TRY(model_get_list(c, o, "methods", false, 0, 16, &list, &r->n_methods));
    if (!(r->methods = model_alloc(c, r->n_methods, sizeof(*r->methods))))
        return -1;
    size_t m2 = model_path_key(c, "methods");
    for (const cJSON *it = list ? list->child : NULL; it; it = it->next, i++) {
        size_t m3 = model_path_idx(c, i);
        int m = 0;
        for (int k = 1; cJSON_IsString(it) && model_method_names[k]; k++)
            if (!strcmp(model_method_names[k], it->valuestring))
                m = k;
        if (!m)
            return model_want(c, it,
                              "one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, "
                              "TRACE, PATCH");
        r->methods[i] = (enum model_method)m;
        model_path_pop(c, m3);
    }
    model_path_pop(c, m2);
    MODEL_TRY(get_patterns(c, o, "paths", true, &r->paths, &r->n_paths));
    MODEL_TRY(model_get_list(c, o, "ports", false, 0, 64, &list, &n));
    r->n_ports = n;
    if (!(r->ports = model_alloc(c, n, sizeof(*r->ports))))
        return -1;
    m2 = model_path_key(c, "ports");
    i = 0;
    for (const cJSON *it = list ? list->child : NULL; it; it = it->next, i++) {
        size_t m3 = model_path_idx(c, i);
        double d = cJSON_IsNumber(it) ? it->valuedouble : 0;
        if (!(d >= 1 && d <= 65535 && d == (double)(int)d))
            return model_want(c, it, "a port number 1..65535");
        r->ports[i] = (uint16_t)d;
        model_path_pop(c, m3);
    }
    model_path_pop(c, m2);
    model_path_pop(c, mark);
    return 0;
}

int model_parse_authz(struct model_ctx *c, const cJSON *doc, struct model_authz_policy *out)
{
    static const char *const spec_keys[] = {"targetRef", "action", "rules", NULL};
    static const char *const actions[] = {"ALLOW", "DENY", NULL};
    const cJSON *spec, *list;
    size_t mark, i = 0;
    int e;
    MODEL_TRY(model_check_object(c, doc, top_keys));
    MODEL_TRY(model_parse_meta(c, doc, MODEL_STR_SUBDOMAIN, &out->meta));
    MODEL_TRY(model_enter(c, doc, "spec", true, spec_keys, &spec, &mark));
    MODEL_TRY(model_parse_service_ref(c, spec, "targetRef", false, &out->target));
    MODEL_TRY(model_get_enum(c, spec, "action", actions, MODEL_AUTHZ_ALLOW, &e));
    out->action = (enum model_authz_action)e;
    MODEL_TRY(model_get_list(c, spec, "rules", false, 0, 64, &list, &out->n_rules));
    if (!(out->rules = model_alloc(c, out->n_rules, sizeof(*out->rules))))
        return -1;
    size_t m2 = model_path_key(c, "rules");
    for (const cJSON *it = list ? list->child : NULL; it; it = it->next, i++) {
        size_t m3 = model_path_idx(c, i);
        MODEL_TRY(parse_authz_rule(c, it, &out->rules[i]));
        model_path_pop(c, m3);
    }
    model_path_pop(c, m2);
    model_path_pop(c, mark);
    return 0;
}

/* ---- PeerAuthentication ---- */

static const char *const mtls_modes[] = {"UNSET", "STRICT", "PERMISSIVE", "DISABLE", NULL};

int model_parse_peer_authn(struct model_ctx *c, const cJSON *doc, struct model_peer_authn *out)
{
    static const char *const spec_keys[] = {"selector", "mtls", "portLevelMtls", NULL};
    static const char *const sel_keys[] = {"matchLabels", NULL};
    static const char *const mtls_keys[] = {"mode", NULL};
    const cJSON *spec, *o;
    size_t mark, m2;
    int e;
    MODEL_TRY(model_check_object(c, doc, top_keys));
    MODEL_TRY(model_parse_meta(c, doc, MODEL_STR_SUBDOMAIN, &out->meta));
    MODEL_TRY(model_enter(c, doc, "spec", false, spec_keys, &spec, &mark));
    if (!spec)
        return 0;
    MODEL_TRY(model_enter(c, spec, "selector", false, sel_keys, &o, &m2));
    if (o) {
        MODEL_TRY(model_get_str_map(c, o, "matchLabels", MODEL_STR_LABEL_KEY, MODEL_STR_LABEL_VALUE,
                                    &out->selector, &out->n_selector));
        model_path_pop(c, m2);
    }
    MODEL_TRY(model_enter(c, spec, "mtls", false, mtls_keys, &o, &m2));
    if (o) {
        MODEL_TRY(model_get_enum(c, o, "mode", mtls_modes, MODEL_MTLS_UNSET, &e));
        out->mode = (enum model_mtls_mode)e;
        model_path_pop(c, m2);
    }
    o = model_get(spec, "portLevelMtls");
    if (o) {
        m2 = model_path_key(c, "portLevelMtls");
        if (!cJSON_IsObject(o))
            return model_want(c, o, "a mapping of port numbers to {mode}");
        out->n_ports = (size_t)cJSON_GetArraySize(o);
        if (out->n_ports > 64)
            return model_fail(c, "want at most 64 entries, got %zu", out->n_ports);
        if (!(out->ports = model_alloc(c, out->n_ports, sizeof(*out->ports))))
            return -1;
        size_t i = 0;
        for (const cJSON *it = o->child; it; it = it->next, i++) {
            size_t m3 = model_path_key(c, it->string);
            char *end;
            long port = strtol(it->string, &end, 10);
            if (!(it->string[0] >= '1' && it->string[0] <= '9') || *end || port > 65535)
                return model_fail(c, "want a port number 1..65535 as key, got \"%.32s\"",
                                  it->string);
            out->ports[i].port = (uint16_t)port;
            MODEL_TRY(model_check_object(c, it, mtls_keys));
            MODEL_TRY(model_get_enum(c, it, "mode", mtls_modes, -1, &e));
            out->ports[i].mode = (enum model_mtls_mode)e;
            model_path_pop(c, m3);
        }
        model_path_pop(c, m2);
    }
    model_path_pop(c, mark);
    return 0;
}
