/*
 * model_test.c - the resource model (xds/model*.c): a multi-document YAML with every kind
 * loads with the expected values; the same objects in JSON load to an identical set
 * (compared through a full text dump); Lists, YAML scalar typing, the example mesh.yaml;
 * a table of invalid inputs, each with its exact error text; and every prefix of the valid
 * file either loads or fails with a message (never a crash, under ASan in `make asan`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "model.h"
#include "tap.h"

static char *data_path(const char *rel)
{
    static char buf[4][512];
    static int n;
    const char *root = getenv("RINGMESH_ROOT");
    char *p = buf[n++ & 3];
    snprintf(p, 512, "%s%s%s", root ? root : "", root ? "/" : "", rel);
    return p;
}

/* ---- a full dump, so two sets compare as text ---- */

static void dump_kv(FILE *f, const char *what, const struct model_kv *kv, size_t n)
{
    fprintf(f, " %s{", what);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s=%s;", kv[i].key, kv[i].value);
    fprintf(f, "}");
}

static void dump_meta(FILE *f, const char *kind, const struct model_meta *m)
{
    fprintf(f, "%s %s/%s doc=%d ts=%lld", kind, m->ns, m->name, m->doc, (long long)m->creation_ts);
    dump_kv(f, "labels", m->labels, m->n_labels);
    dump_kv(f, "annotations", m->annotations, m->n_annotations);
    fprintf(f, "\n");
}

#define S(x) ((x) ? (x) : "-")

static void dump_backend(FILE *f, const struct model_backend_ref *b);

static void dump_filters(FILE *f, const struct model_filter *fl, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct model_filter *x = &fl[i];
        fprintf(f, "   filter %d", x->type);
        switch (x->type) {
        case MODEL_FILTER_REQUEST_HEADER_MODIFIER:
        case MODEL_FILTER_RESPONSE_HEADER_MODIFIER:
            dump_kv(f, "set", x->u.header_mod.set, x->u.header_mod.n_set);
            dump_kv(f, "add", x->u.header_mod.add, x->u.header_mod.n_add);
            for (size_t j = 0; j < x->u.header_mod.n_remove; j++)
                fprintf(f, " remove=%s", x->u.header_mod.remove[j]);
            break;
        case MODEL_FILTER_REQUEST_REDIRECT:
            fprintf(f, " %s %s %d %s %u %d", S(x->u.redirect.scheme), S(x->u.redirect.hostname),
                    x->u.redirect.path_type, S(x->u.redirect.path), x->u.redirect.port,
                    x->u.redirect.status_code);
            break;
        case MODEL_FILTER_URL_REWRITE:
            fprintf(f, " %s %d %s", S(x->u.rewrite.hostname), x->u.rewrite.path_type,
                    S(x->u.rewrite.path));
            break;
        case MODEL_FILTER_REQUEST_MIRROR:
            fprintf(f, " %u/%u", x->u.mirror.numerator, x->u.mirror.denominator);
            dump_backend(f, &x->u.mirror.backend);
            break;
        }
        fprintf(f, "\n");
    }
}

static void dump_backend(FILE *f, const struct model_backend_ref *b)
{
    fprintf(f, " backend %s/%s:%u w=%u\n", b->ns, b->name, b->port, b->weight);
    dump_filters(f, b->filters, b->n_filters);
}

static char *dump_set(const struct model_set *s)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    fprintf(f, "documents %d\n", s->n_documents);
    for (size_t i = 0; i < s->n_services; i++) {
        const struct model_service *v = &s->services[i];
        dump_meta(f, "Service", &v->meta);
        fprintf(f, " type=%d headless=%d vip=%s ext=%s pnr=%d", v->type, v->headless,
                v->has_cluster_ip ? v->cluster_ip.text : "-", S(v->external_name),
                v->publish_not_ready);
        for (size_t j = 0; j < v->n_cluster_ips; j++)
            fprintf(f, " ip=%s/%d", v->cluster_ips[j].text, v->cluster_ips[j].family);
        dump_kv(f, "selector", v->selector, v->n_selector);
        fprintf(f, "\n");
        for (size_t j = 0; j < v->n_ports; j++) {
            const struct model_service_port *p = &v->ports[j];
            fprintf(f, " port %s %u->%u/%s %d %s\n", p->name, p->port, p->target_port,
                    S(p->target_port_name), p->protocol, S(p->app_protocol));
        }
    }
    for (size_t i = 0; i < s->n_slices; i++) {
        const struct model_slice *v = &s->slices[i];
        dump_meta(f, "EndpointSlice", &v->meta);
        fprintf(f, " svc=%s family=%d\n", v->service_name, v->family);
        for (size_t j = 0; j < v->n_ports; j++)
            fprintf(f, " port %s %d:%u %d %s\n", v->ports[j].name, v->ports[j].has_port,
                    v->ports[j].port, v->ports[j].protocol, S(v->ports[j].app_protocol));
        for (size_t j = 0; j < v->n_endpoints; j++) {
            const struct model_endpoint *e = &v->endpoints[j];
            fprintf(f, " ep");
            for (size_t k = 0; k < e->n_addresses; k++)
                fprintf(f, " %s", e->addresses[k].text);
            fprintf(f, " r=%d s=%d t=%d %s %s %s %s %s %s\n", e->ready, e->serving, e->terminating,
                    S(e->hostname), S(e->node_name), S(e->zone), S(e->target_kind), S(e->target_ns),
                    S(e->target_name));
        }
    }
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct model_route *v = &s->routes[i];
        dump_meta(f, "HTTPRoute", &v->meta);
        for (size_t j = 0; j < v->n_parents; j++)
            fprintf(f, " parent %s/%s:%u %s\n", v->parents[j].ns, v->parents[j].name,
                    v->parents[j].port, S(v->parents[j].section_name));
        for (size_t j = 0; j < v->n_hostnames; j++)
            fprintf(f, " host %s\n", v->hostnames[j]);
        for (size_t j = 0; j < v->n_rules; j++) {
            const struct model_route_rule *r = &v->rules[j];
            fprintf(f, " rule %s timeouts=%lld/%lld retry=%d/%d/%lld", S(r->name),
                    (long long)r->request_timeout_ms, (long long)r->backend_timeout_ms,
                    r->retry.set, r->retry.attempts, (long long)r->retry.backoff_ms);
            for (size_t k = 0; k < r->retry.n_codes; k++)
                fprintf(f, " %u", r->retry.codes[k]);
            fprintf(f, "\n");
            for (size_t k = 0; k < r->n_matches; k++) {
                const struct model_route_match *m = &r->matches[k];
                fprintf(f, "  match %d %s %s", m->path_type, m->path, model_method_str(m->method));
                for (size_t h = 0; h < m->n_headers; h++)
                    fprintf(f, " h:%d:%s=%s", m->headers[h].type, m->headers[h].name,
                            m->headers[h].value);
                for (size_t h = 0; h < m->n_query_params; h++)
                    fprintf(f, " q:%d:%s=%s", m->query_params[h].type, m->query_params[h].name,
                            m->query_params[h].value);
                fprintf(f, "\n");
            }
            dump_filters(f, r->filters, r->n_filters);
            for (size_t k = 0; k < r->n_backends; k++)
                dump_backend(f, &r->backends[k]);
        }
    }
    for (size_t i = 0; i < s->n_dest_policies; i++) {
        const struct model_destination_policy *p = &s->dest_policies[i];
        dump_meta(f, "DestinationPolicy", &p->meta);
        fprintf(f, " target=%s lb=%d hash=%d/%s retries=%d/%d/%lld/%x/%lld/%lld/%d/%d/%d codes=",
                p->target, p->lb, p->hash_key, S(p->hash_name), p->has_retries, p->retry_attempts,
                (long long)p->per_try_timeout_ms, p->retry_on, (long long)p->backoff_base_ms,
                (long long)p->backoff_max_ms, p->budget_percent, p->budget_min_per_sec,
                p->retry_non_idempotent);
        for (size_t k = 0; k < p->n_retriable_codes; k++)
            fprintf(f, "%u,", p->retriable_codes[k]);
        fprintf(f, " od=%d/%d/%d/%lld/%lld/%d pool=%u/%u/%u tls=%d\n", p->has_outlier,
                p->consecutive_5xx, p->consecutive_gateway, (long long)p->outlier_interval_ms,
                (long long)p->base_ejection_ms, p->max_ejection_percent, p->max_connections,
                p->max_pending, p->max_requests, p->tls_mode);
    }
    for (size_t i = 0; i < s->n_authz_policies; i++) {
        const struct model_authz_policy *p = &s->authz_policies[i];
        dump_meta(f, "AuthorizationPolicy", &p->meta);
        fprintf(f, " target=%s action=%d\n", S(p->target), p->action);
        for (size_t j = 0; j < p->n_rules; j++) {
            const struct model_authz_rule *r = &p->rules[j];
            fprintf(f, "  rule");
            for (size_t k = 0; k < r->n_principals; k++)
                fprintf(f, " p=%s", r->principals[k]);
            for (size_t k = 0; k < r->n_namespaces; k++)
                fprintf(f, " ns=%s", r->namespaces[k]);
            for (size_t k = 0; k < r->n_methods; k++)
                fprintf(f, " m=%s", model_method_str(r->methods[k]));
            for (size_t k = 0; k < r->n_paths; k++)
                fprintf(f, " path=%s", r->paths[k]);
            for (size_t k = 0; k < r->n_ports; k++)
                fprintf(f, " port=%u", r->ports[k]);
            fprintf(f, "\n");
        }
    }
    for (size_t i = 0; i < s->n_peer_authns; i++) {
        const struct model_peer_authn *p = &s->peer_authns[i];
        dump_meta(f, "PeerAuthentication", &p->meta);
        dump_kv(f, "selector", p->selector, p->n_selector);
        fprintf(f, " mode=%d", p->mode);
        for (size_t j = 0; j < p->n_ports; j++)
            fprintf(f, " %u:%d", p->ports[j].port, p->ports[j].mode);
        fprintf(f, "\n");
    }
    fclose(f);
    return out;
}

/* ---- the valid file ---- */

static void check_values(const struct model_set *s)
{
    is_int(s->n_documents, 11, "11 documents (one empty)");
    is_int(s->n_services, 3, "3 Services");
    const struct model_service *svc = model_find_service(s, "bookinfo", "reviews");
    ok(svc != NULL, "Service bookinfo/reviews found");
    if (svc) {
        is_str(svc->cluster_ip.text, "10.96.0.20", "clusterIP");
        is_int(svc->cluster_ip.family, AF_INET, "clusterIP is IPv4");
        is_int(svc->n_cluster_ips, 2, "two clusterIPs");
        is_int(svc->cluster_ips[1].family, AF_INET6, "second clusterIP is IPv6");
        is_int(svc->n_ports, 2, "two ports");
        is_str(svc->ports[0].name, "http", "port name");
        is_int(svc->ports[0].target_port, 9080, "numeric targetPort");
        is_str(svc->ports[1].target_port_name, "grpc-port", "named targetPort");
        is_str(svc->ports[1].app_protocol, "kubernetes.io/h2c", "appProtocol");
        is_str(svc->meta.labels[1].value, "1.0", "quoted label value stays a string");
        is_int(svc->meta.creation_ts, 1714564800, "creationTimestamp in epoch seconds");
    }
    const struct model_service *db = model_find_service(s, NULL, "db");
    ok(db && db->headless && !db->has_cluster_ip, "clusterIP None is headless");
    ok(db && db->ports[0].target_port == 5432 && db->ports[0].name[0] == 0,
       "targetPort defaults to port; name may be empty with one port");
    const struct model_service *ext = model_find_service(s, "bookinfo", "ext");
    ok(ext && ext->type == MODEL_SVC_EXTERNAL_NAME &&
           !strcmp(ext->external_name, "api.example.com"),
       "ExternalName service");

    const struct model_slice *sl = model_find_slice(s, "bookinfo", "reviews-abc12");
    ok(sl != NULL, "EndpointSlice found");
    if (sl) {
        is_str(sl->service_name, "reviews", "slice service name from label");
        is_int(sl->family, AF_INET, "addressType IPv4");
        is_int(sl->n_endpoints, 3, "3 endpoints");
        ok(sl->endpoints[1].ready == false && sl->endpoints[1].terminating,
           "explicit conditions kept");
        ok(sl->endpoints[2].ready && sl->endpoints[2].serving && !sl->endpoints[2].terminating,
           "nil conditions: ready, serving, not terminating");
        is_str(sl->endpoints[0].zone, "us-east-1a", "zone");
        is_str(sl->endpoints[0].target_name, "reviews-v1-0", "targetRef name");
    }

    const struct model_route *rt = model_find_route(s, "bookinfo", "reviews");
    ok(rt != NULL, "HTTPRoute found");
    if (rt) {
        is_int(rt->parents[0].port, 9080, "parentRef port");
        is_int(rt->n_hostnames, 2, "hostnames");
        is_int(rt->n_rules, 3, "3 rules");
        const struct model_route_rule *r = &rt->rules[0];
        is_int(r->n_matches, 2, "rule 0: 2 matches");
        is_int(r->matches[0].path_type, MODEL_PATH_PREFIX, "PathPrefix");
        is_int(r->matches[0].method, MODEL_METHOD_GET, "method GET");
        is_int(r->matches[0].headers[1].type, MODEL_MATCH_REGEX, "header regex");
        is_int(r->matches[1].path_type, MODEL_PATH_EXACT, "Exact");
        is_int(r->backends[0].weight, 90, "weight 90");
        is_str(r->backends[1].ns, "canary", "backend namespace");
        is_str(r->backends[0].ns, "bookinfo", "backend namespace defaults to the route's");
        is_int(r->request_timeout_ms, 10000, "timeouts.request 10s");
        is_int(r->backend_timeout_ms, 1500, "timeouts.backendRequest 1500ms");
        is_int(r->retry.attempts, 2, "retry attempts");
        is_int(r->retry.backoff_ms, 100, "retry backoff");
        is_int(r->filters[1].u.mirror.numerator, 10, "mirror percent");
        is_int(rt->rules[1].filters[0].u.rewrite.path_type, MODEL_REWRITE_PREFIX,
               "ReplacePrefixMatch");
        is_int(rt->rules[1].request_timeout_ms, MODEL_DURATION_UNSET, "unset timeout");
        is_int(rt->rules[2].filters[0].u.redirect.status_code, 301, "redirect status");
        is_int(rt->rules[2].n_backends, 0, "redirect rule has no backends");
    }

    const struct model_destination_policy *p = model_find_dest_policy(s, "bookinfo", "reviews");
    ok(p != NULL, "DestinationPolicy for bookinfo/reviews");
    if (p) {
        is_int(p->lb, MODEL_LB_RING_HASH, "RingHash");
        is_int(p->hash_key, MODEL_HASH_HEADER, "hash on a header");
        is_int(p->retry_on,
               MODEL_RETRY_CONNECT_FAILURE | MODEL_RETRY_REFUSED_STREAM | MODEL_RETRY_5XX |
                   MODEL_RETRY_RETRIABLE_CODES | MODEL_RETRY_GRPC_UNAVAILABLE,
               "retryOn bits");
        is_int(p->backoff_max_ms, 1000, "maxInterval 1s");
        is_int(p->base_ejection_ms, 60000, "baseEjectionTime 1m");
        is_int(p->max_connections, 100, "maxConnections");
        is_int(p->tls_mode, MODEL_TLS_DISABLE, "tls DISABLE");
    }
    const struct model_destination_policy *d = model_find_dest_policy(s, NULL, "db");
    ok(d && !d->has_retries && d->retry_attempts == 2 && d->backoff_base_ms == 25 &&
           d->backoff_max_ms == 250 && d->budget_percent == 20 && d->budget_min_per_sec == 10 &&
           d->max_requests == 1024 && d->tls_mode == MODEL_TLS_MUTUAL && !d->has_outlier,
       "DestinationPolicy defaults");

    const struct model_authz_policy *az = model_find_authz(s, "bookinfo", "reviews-allow");
    ok(az && az->n_rules == 2 && az->rules[0].n_methods == 2 && az->rules[0].ports[0] == 9080 &&
           az->rules[1].n_principals == 0,
       "AuthorizationPolicy rules");
    const struct model_peer_authn *pa = model_find_peer_authn(s, "bookinfo", "default");
    ok(pa && pa->mode == MODEL_MTLS_STRICT && pa->n_ports == 2 && pa->ports[1].port == 15090 &&
           pa->ports[1].mode == MODEL_MTLS_DISABLE,
       "PeerAuthentication with portLevelMtls");
}

static void test_valid(void)
{
    char err[512];
    struct model_set *y =
        model_load_file(data_path("tests/unit/data/model/all.yaml"), err, sizeof(err));
    if (!ok(y != NULL, "all.yaml loads"))
        printf("#   %s\n", err);
    struct model_set *j =
        model_load_file(data_path("tests/unit/data/model/all.json"), err, sizeof(err));
    if (!ok(j != NULL, "all.json loads"))
        printf("#   %s\n", err);
    if (y)
        check_values(y);
    if (y && j) {
        char *a = dump_set(y), *b = dump_set(j);
        if (!ok(strcmp(a, b) == 0, "YAML and JSON give identical sets"))
            printf("# YAML:\n%s\n# JSON:\n%s\n", a, b);
        free(a);
        free(b);
    }
    model_set_free(y);
    model_set_free(j);

    struct model_set *ex =
        model_load_file(data_path("deploy/examples/mesh.yaml"), err, sizeof(err));
    if (!ok(ex != NULL, "deploy/examples/mesh.yaml loads"))
        printf("#   %s\n", err);
    model_set_free(ex);
}

static struct model_set *load(const char *src, char *err, size_t len)
{
    return model_load_buffer("t.yaml", src, strlen(src), err, len);
}

static void test_forms(void)
{
    char err[512];
    const char *list = "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":["
                       "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"a\"},"
                       "\"spec\":{\"ports\":[{\"port\":80}]}},"
                       "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"b\"},"
                       "\"spec\":{\"ports\":[{\"port\":81}]}}]}";
    struct model_set *s = load(list, err, sizeof(err));
    ok(s && s->n_services == 2 && s->services[1].meta.doc == 2, "JSON List: items are documents");
    model_set_free(s);

    s = load("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n"
             "  metadata: {name: a}\n  spec: {ports: [{port: 80}]}\n",
             err, sizeof(err));
    ok(s && s->n_services == 1, "YAML List");
    model_set_free(s);

    s = load("", err, sizeof(err));
    ok(s && s->n_documents == 0 && s->n_services == 0, "empty input is an empty set");
    model_set_free(s);

    s = load("[]", err, sizeof(err));
    ok(s && s->n_documents == 0, "empty JSON array is an empty set");
    model_set_free(s);

    /* YAML 1.2 core schema: 0x50 and 8e1 are numbers, yes is a string, ~ is absent. */
    s = load("apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: ~}\n"
             "spec: {ports: [{port: 0x50, targetPort: 8e1, name: yes}]}\n",
             err, sizeof(err));
    if (!ok(s && s->services[0].ports[0].port == 80 && s->services[0].ports[0].target_port == 80 &&
                !strcmp(s->services[0].ports[0].name, "yes") &&
                !strcmp(s->services[0].meta.ns, "default"),
            "YAML scalars: hex and float integers, yes is a string, ~ is absent"))
        printf("#   %s\n", err);
    model_set_free(s);

    s = load("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"
             "spec: {ports: [{port: !!int \"81\"}]}\n",
             err, sizeof(err));
    ok(s && s->services[0].ports[0].port == 81, "!!int tag on a quoted scalar");
    model_set_free(s);

    char big[64];
    snprintf(big, sizeof(big), "/nonexistent/mesh.yaml");
    s = model_load_file(big, err, sizeof(err));
    is_str(err, "/nonexistent/mesh.yaml: cannot open: No such file or directory",
           "missing file names the path");
    model_set_free(s);

    s = model_load_buffer("t.yaml", "kind: Service\n\0x", 16, err, sizeof(err));
    ok(!s, "a NUL byte is an error");
    is_str(err, "t.yaml: line 2, column 1: NUL byte in the input", "NUL byte error has its place");

    /* Truncated error buffers stay terminated. */
    char tiny[8];
    s = load("kind: [", tiny, sizeof(tiny));
    ok(!s && strlen(tiny) == 7, "error truncated to the buffer");
}

/* ---- invalid inputs ---- */

#define SVC(spec) "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: " spec "\n"
#define SLICE(rest)                                                                                \
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n"             \
    "  labels: {kubernetes.io/service-name: web}\naddressType: IPv4\n" rest
#define ROUTE(spec)                                                                                \
    "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"             \
    "spec:\n  parentRefs: [{group: '', kind: Service, name: web}]\n" spec
#define RULE(rule) ROUTE("  rules:\n  - " rule "\n")
#define DP(spec)                                                                                   \
    "apiVersion: ringmesh.io/v1alpha1\nkind: DestinationPolicy\nmetadata: {name: p}\n"             \
    "spec:\n  targetRef: {kind: Service, name: web}\n" spec
#define P_SVC   "t.yaml: document 1 (Service default/web): "
#define P_SLICE "t.yaml: document 1 (EndpointSlice default/web-1): "
#define P_ROUTE "t.yaml: document 1 (HTTPRoute default/r): "
#define P_DP    "t.yaml: document 1 (DestinationPolicy default/p): "

static const struct bad_case {
    const char *name;
    const char *src;
    const char *want;
} bad_cases[] = {
    /* the Service's service accounts annotation */
#define SVC_SA(v)                                                                                  \
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations: "                     \
    "{ringmesh.io/service-accounts: \"" v "\"}\nspec: {ports: [{port: 80}]}\n"
    {"service-accounts: a bad name", SVC_SA("web, Bad_"),
     P_SVC "metadata.annotations[\"ringmesh.io/service-accounts\"]: \"Bad_\" is not a service "
           "account name (a DNS subdomain)"},
    {"service-accounts: empty entry", SVC_SA("web,,api"),
     P_SVC "metadata.annotations[\"ringmesh.io/service-accounts\"]: want a comma-separated "
           "list of service account names, got \"web,,api\""},
    {"service-accounts: twice", SVC_SA("web, web"),
     P_SVC "metadata.annotations[\"ringmesh.io/service-accounts\"]: \"web\" is listed twice"},
    {"service-accounts: more than 8", SVC_SA("a,b,c,d,e,f,g,h,i"),
     P_SVC "metadata.annotations[\"ringmesh.io/service-accounts\"]: at most 8 service accounts"},
    /* syntax and structure */
    {"YAML syntax error has line and column", "a: [1, 2\nb: 3\n",
     "t.yaml: document 1: line 2, column 2: YAML syntax error: did not find expected ',' or "
     "']' while parsing a flow sequence"},
    {"JSON syntax error has line and column", "{\"kind\": \"Service\",\n \"x\": tru}",
     "t.yaml: line 2, column 7: JSON syntax error"},
    {"anchors refused", "a: &x 1\nb: *x\n",
     "t.yaml: document 1: line 1, column 4: anchors and aliases are not supported"},
    {"custom tag refused", "a: !foo 1\n",
     "t.yaml: document 1: line 1, column 4: unsupported tag !foo"},
    {"document must be a mapping", "- a\n- b\n",
     "t.yaml: document 1: want a mapping (a Kubernetes object), got a list"},
    {"duplicate key in YAML", SVC("{ports: [{port: 80, port: 81}]}"),
     "t.yaml: document 1: spec.ports[0].port: duplicate key"},
    {"duplicate key in JSON", "{\"kind\":\"Service\",\"kind\":\"Service\"}",
     "t.yaml: document 1: kind: duplicate key"},
    {"List inside a List", "{\"kind\": \"List\", \"items\": [null, {\"kind\": \"List\"}]}",
     "t.yaml: document 2: kind: a List cannot hold another List"},
    {"kind required", "apiVersion: v1\nmetadata: {name: a}\n",
     "t.yaml: document 1: kind: required"},
    {"unknown kind", "apiVersion: apps/v1\nkind: Deployment\n",
     "t.yaml: document 1: unknown kind apps/v1/Deployment (want one of v1/Service, "
     "discovery.k8s.io/v1/EndpointSlice, gateway.networking.k8s.io/v1/HTTPRoute, "
     "ringmesh.io/v1alpha1/DestinationPolicy, ringmesh.io/v1alpha1/AuthorizationPolicy, "
     "ringmesh.io/v1alpha1/PeerAuthentication)"},
    {"wrong apiVersion for a kind",
     "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: HTTPRoute\n",
     "t.yaml: document 1: apiVersion: want \"gateway.networking.k8s.io/v1\" for kind HTTPRoute, "
     "got \"gateway.networking.k8s.io/v1beta1\""},
    {"document index counts from 1 across ---",
     SVC("{ports: [{port: 80}]}") "---\n" SVC("{ports: [{port: 80}]}"),
     "t.yaml: document 2 (Service default/web): duplicate Service default/web (first in "
     "document 1)"},
    /* metadata */
    {"name required", "apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\nspec: {}\n",
     "t.yaml: document 1 (Service): metadata.name: required"},
    {"unknown metadata field", "apiVersion: v1\nkind: Service\nmetadata: {name: a, nmespace: x}\n",
     "t.yaml: document 1 (Service): metadata.nmespace: unknown field"},
    {"bad namespace", "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: Prod}\n",
     "t.yaml: document 1 (Service): metadata.namespace: want a DNS label (at most 63 of a-z, 0-9 "
     "and '-', alphanumeric at both ends), got \"Prod\""},
    {"label value must be a string",
     "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n"
     "  labels: {version: 1}\n",
     "t.yaml: document 1 (Service default/a): metadata.labels.version: want a string, got 1"},
    /* Service */
    {"unknown spec field", SVC("{prots: []}"), P_SVC "spec.prots: unknown field"},
    {"port as a string", SVC("{ports: [{port: \"80\"}]}"),
     P_SVC "spec.ports[0].port: want an integer 1..65535, got \"80\""},
    {"port out of range", SVC("{ports: [{port: 70000}]}"),
     P_SVC "spec.ports[0].port: want an integer 1..65535, got 70000"},
    {"ports required", SVC("{clusterIP: 10.0.0.1}"), P_SVC "spec.ports: required"},
    {"bad clusterIP", SVC("{clusterIP: 10.0.0.300, ports: [{port: 80}]}"),
     P_SVC "spec.clusterIP: want an IP address, \"None\" or \"\", got \"10.0.0.300\""},
    {"port names required with two ports", SVC("{ports: [{port: 80}, {port: 81, name: b}]}"),
     P_SVC "spec.ports[0].name: required when there is more than one port"},
    {"duplicate port", SVC("{ports: [{port: 80, name: a}, {port: 80, name: b}]}"),
     P_SVC "spec.ports[1].port: duplicate port 80/TCP (also ports[0])"},
    {"bad protocol", SVC("{ports: [{port: 80, protocol: tcp}]}"),
     P_SVC "spec.ports[0].protocol: want one of TCP, UDP, SCTP, got \"tcp\""},
    {"bad named targetPort", SVC("{ports: [{port: 80, targetPort: \"8080\"}]}"),
     P_SVC "spec.ports[0].targetPort: want a port name (at most 15 of a-z, 0-9 and '-', with a "
           "letter), got \"8080\""},
    {"ExternalName needs externalName", SVC("{type: ExternalName}"),
     P_SVC "spec.externalName: required"},
    {"externalName only with ExternalName", SVC("{externalName: a.b, ports: [{port: 80}]}"),
     P_SVC "spec.externalName: only allowed with type ExternalName"},
    /* EndpointSlice */
    {"slice needs the service-name label",
     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\n"
     "addressType: IPv4\n",
     "t.yaml: document 1 (EndpointSlice default/s): metadata.labels: want the label "
     "kubernetes.io/service-name naming the Service"},
    {"FQDN addressType refused",
     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n"
     "  labels: {kubernetes.io/service-name: web}\naddressType: FQDN\n",
     P_SLICE "addressType: want one of IPv4, IPv6, got \"FQDN\""},
    {"address family must match", SLICE("endpoints:\n- addresses: [\"fd00::1\"]\n"),
     P_SLICE "endpoints[0].addresses[0]: want an IPv4 address, got \"fd00::1\""},
    {"addresses required", SLICE("endpoints:\n- conditions: {ready: true}\n"),
     P_SLICE "endpoints[0].addresses: required"},
    {"condition must be a bool",
     SLICE("endpoints:\n- addresses: [10.0.0.1]\n"
           "  conditions: {ready: \"true\"}\n"),
     P_SLICE "endpoints[0].conditions.ready: want true or false, got \"true\""},
    {"unknown endpoint field", SLICE("endpoints:\n- addresses: [10.0.0.1]\n  zoen: a\n"),
     P_SLICE "endpoints[0].zoen: unknown field"},
    /* HTTPRoute */
    {"parentRef must be a Service",
     "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
     "spec:\n  parentRefs: [{name: gw}]\n",
     P_ROUTE "spec.parentRefs[0].group: required: \"\" (routes attach to Services)"},
    {"parentRef kind Gateway refused",
     "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
     "spec:\n  parentRefs: [{group: '', kind: Gateway, name: gw}]\n",
     P_ROUTE "spec.parentRefs[0].kind: want \"Service\", got \"Gateway\""},
    {"weight out of range",
     RULE("backendRefs: [{name: a, port: 80}, {name: b, port: 80, weight: -5}]"),
     P_ROUTE "spec.rules[0].backendRefs[1].weight: want an integer 0..1000000, got -5"},
    {"backend port required", RULE("backendRefs: [{name: a}]"),
     P_ROUTE "spec.rules[0].backendRefs[0].port: required"},
    {"backend kind must be Service", RULE("backendRefs: [{kind: Pod, name: a, port: 80}]"),
     P_ROUTE "spec.rules[0].backendRefs[0].kind: want \"Service\", got \"Pod\""},
    {"path type enum", RULE("matches: [{path: {type: Prefix, value: /a}}]"),
     P_ROUTE "spec.rules[0].matches[0].path.type: want one of PathPrefix, Exact, "
             "RegularExpression, got \"Prefix\""},
    {"path must start with /", RULE("matches: [{}, {path: {type: Exact, value: a/b}}]"),
     P_ROUTE "spec.rules[0].matches[1].path.value: want a path starting with '/' (at most 1024 "
             "bytes; no '//', '/./', '/../', '%2f', '#', and not ending in '/.' or '/..'), got "
             "\"a/b\""},
    {"path with /../", RULE("matches: [{path: {value: /a/../b}}]"),
     P_ROUTE "spec.rules[0].matches[0].path.value: want a path starting with '/' (at most 1024 "
             "bytes; no '//', '/./', '/../', '%2f', '#', and not ending in '/.' or '/..'), got "
             "\"/a/../b\""},
    {"path regex must compile",
     RULE("matches: [{path: {type: RegularExpression, value: \"/a(\"}}]"),
     P_ROUTE "spec.rules[0].matches[0].path.value: want a regular expression (pcre2), got an "
             "error at offset 3: missing closing parenthesis"},
    {"header regex must compile",
     RULE("matches: [{headers: [{type: RegularExpression, name: x, value: \"[a\"}]}]"),
     P_ROUTE "spec.rules[0].matches[0].headers[0].value: want a regular expression (pcre2), got "
             "an error at offset 2: missing terminating ] for character class"},
    {"bad header name", RULE("matches: [{headers: [{name: \"x y\", value: a}]}]"),
     P_ROUTE "spec.rules[0].matches[0].headers[0].name: want an HTTP header name (1..256 token "
             "characters), got \"x y\""},
    {"duplicate header match",
     RULE("matches: [{headers: [{name: X-A, value: a}, {name: x-a, value: b}]}]"),
     P_ROUTE "spec.rules[0].matches[0].headers[1].name: duplicate name \"x-a\" (also "
             "headers[0])"},
    {"bad method", RULE("matches: [{method: get}]"),
     P_ROUTE "spec.rules[0].matches[0].method: want one of GET, HEAD, POST, PUT, DELETE, CONNECT, "
             "OPTIONS, TRACE, PATCH, got \"get\""},
    {"too many hostnames",
     ROUTE("  hostnames: [a0.x, a1.x, a2.x, a3.x, a4.x, a5.x, a6.x, a7.x, a8.x, a9.x, b0.x, "
           "b1.x, b2.x, b3.x, b4.x, b5.x, b6.x]\n"),
     P_ROUTE "spec.hostnames: want at most 16 entries, got 17"},
    {"IP hostname refused", ROUTE("  hostnames: [10.0.0.1]\n"),
     P_ROUTE "spec.hostnames[0]: want a hostname (a DNS subdomain, optionally starting with "
             "\"*.\"; not an IP), got \"10.0.0.1\""},
    {"empty rules list", ROUTE("  rules: []\n"),
     P_ROUTE "spec.rules: want at least 1 entry, got 0"},
    {"two RequestHeaderModifiers",
     RULE("filters:\n    - {type: RequestHeaderModifier, requestHeaderModifier: {remove: [a]}}\n"
          "    - {type: RequestHeaderModifier, requestHeaderModifier: {remove: [b]}}"),
     P_ROUTE "spec.rules[0].filters[1].type: RequestHeaderModifier may appear only once (also "
             "filters[0])"},
    {"redirect and rewrite exclusive",
     RULE("filters:\n    - {type: URLRewrite, urlRewrite: {hostname: a.b}}\n"
          "    - {type: RequestRedirect, requestRedirect: {scheme: https}}"),
     P_ROUTE "spec.rules[0].filters[1].type: RequestRedirect and URLRewrite cannot both be used "
             "(also filters[0])"},
    {"redirect forbids backendRefs",
     RULE("filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]\n"
          "    backendRefs: [{name: a, port: 80}]"),
     P_ROUTE "spec.rules[0].backendRefs: not allowed with a RequestRedirect filter (filters[0])"},
    {"ReplacePrefixMatch needs one PathPrefix match",
     RULE("matches: [{path: {type: Exact, value: /a}}]\n"
          "    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, "
          "replacePrefixMatch: /b}}}]"),
     P_ROUTE "spec.rules[0].filters[0].urlRewrite.path.type: ReplacePrefixMatch needs exactly one "
             "match, of type PathPrefix (the rule has 1 match, not PathPrefix)"},
    {"filter config must match type",
     RULE("filters: [{type: RequestHeaderModifier, responseHeaderModifier: {remove: [a]}}]"),
     P_ROUTE "spec.rules[0].filters[0].responseHeaderModifier: only allowed with type "
             "ResponseHeaderModifier"},
    {"filter config required", RULE("filters: [{type: RequestMirror}]"),
     P_ROUTE "spec.rules[0].filters[0].requestMirror: required for type RequestMirror"},
    {"header in two actions",
     RULE("filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: A, "
          "value: b}], remove: [a]}}]"),
     P_ROUTE "spec.rules[0].filters[0].requestHeaderModifier.remove[0]: header \"a\" already has "
             "an action in this filter"},
    {"redirect status code",
     RULE("filters: [{type: RequestRedirect, requestRedirect: {statusCode: 304}}]"),
     P_ROUTE "spec.rules[0].filters[0].requestRedirect.statusCode: want one of 301, 302, 303, 307, "
             "308, got 304"},
    {"mirror percent range",
     RULE("filters: [{type: RequestMirror, requestMirror: {backendRef: {name: m, port: 80}, "
          "percent: 101}}]"),
     P_ROUTE "spec.rules[0].filters[0].requestMirror.percent: want an integer 0..100, got 101"},
    {"bad duration", RULE("timeouts: {request: 10 s}"),
     P_ROUTE "spec.rules[0].timeouts.request: want a duration like 500ms, 10s or 1h2m3s, got "
             "\"10 s\""},
    {"duration as a number", RULE("timeouts: {request: 10}"),
     P_ROUTE "spec.rules[0].timeouts.request: want a duration like 500ms, 10s or 1h2m3s, got 10"},
    {"backendRequest above request", RULE("timeouts: {request: 1s, backendRequest: 1m}"),
     P_ROUTE "spec.rules[0].timeouts.backendRequest: must not exceed request (1000ms), got "
             "60000ms"},
    {"retry code range", RULE("retry: {codes: [503, 302]}"),
     P_ROUTE "spec.rules[0].retry.codes[1]: want an HTTP status code 400..599, got 302"},
    {"unknown rule field", RULE("backendRef: [{name: a, port: 80}]"),
     P_ROUTE "spec.rules[0].backendRef: unknown field"},
    {"unsupported filter type", RULE("filters: [{type: ExtensionRef}]"),
     P_ROUTE "spec.rules[0].filters[0].type: want one of RequestHeaderModifier, "
             "ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror, got "
             "\"ExtensionRef\""},
    {"redirect filter on a backend refused",
     RULE("backendRefs: [{name: a, port: 80, filters: [{type: RequestRedirect, requestRedirect: "
          "{}}]}]"),
     P_ROUTE "spec.rules[0].backendRefs[0].filters[0].type: RequestRedirect is not supported on "
             "a backendRef (only RequestHeaderModifier and ResponseHeaderModifier)"},
    /* DestinationPolicy */
    {"policy targetRef required",
     "apiVersion: ringmesh.io/v1alpha1\nkind: DestinationPolicy\nmetadata: {name: p}\nspec: {}\n",
     P_DP "spec.targetRef: required"},
    {"lb type enum", DP("  loadBalancer: {type: LeastConn}\n"),
     P_DP "spec.loadBalancer.type: want one of RoundRobin, Random, LeastRequest, PeakEWMA, "
          "RingHash, Maglev, got \"LeastConn\""},
    {"RingHash needs a hashKey", DP("  loadBalancer: {type: Maglev}\n"),
     P_DP "spec.loadBalancer.hashKey: required for type Maglev"},
    {"hashKey only with hashing", DP("  loadBalancer: {hashKey: {sourceIP: true}}\n"),
     P_DP "spec.loadBalancer.hashKey: only allowed with type RingHash or Maglev"},
    {"retryOn enum", DP("  retries: {retryOn: [5xx, 503]}\n"),
     P_DP "spec.retries.retryOn[1]: want one of connect-failure, refused-stream, reset, 5xx, "
          "gateway-error, retriable-status-codes, cancelled, deadline-exceeded, internal, "
          "resource-exhausted, unavailable, got 503"},
    {"codes need retriable-status-codes", DP("  retries: {retriableStatusCodes: [503]}\n"),
     P_DP "spec.retries.retriableStatusCodes: needs retriable-status-codes in retryOn"},
    {"backoff max below base",
     DP("  retries: {backoff: {baseInterval: 100ms, maxInterval: 50ms}}\n"),
     P_DP "spec.retries.backoff.maxInterval: must be at least baseInterval (100ms)"},
    {"budget percent range", DP("  retries: {budget: {percent: 150}}\n"),
     P_DP "spec.retries.budget.percent: want an integer 0..100, got 150"},
    {"attempts range", DP("  retries: {attempts: 11}\n"),
     P_DP "spec.retries.attempts: want an integer 0..10, got 11"},
    {"outlier interval positive", DP("  outlierDetection: {interval: 0s}\n"),
     P_DP "spec.outlierDetection.interval: want a duration above 0s, got \"0s\""},
    {"pool limit positive", DP("  connectionPool: {maxConnections: 0}\n"),
     P_DP "spec.connectionPool.maxConnections: want an integer 1..4294967295, got 0"},
    {"tls mode enum", DP("  tls: {mode: STRICT}\n"),
     P_DP "spec.tls.mode: want one of MUTUAL, DISABLE, got \"STRICT\""},
    {"typo in a policy field", DP("  retries: {attempt: 2}\n"),
     P_DP "spec.retries.attempt: unknown field"},
    {"one policy per Service",
     DP("") "---\n"
            "apiVersion: ringmesh.io/v1alpha1\nkind: DestinationPolicy\n"
            "metadata: {name: q}\nspec:\n  targetRef: {kind: Service, name: web}\n",
     "t.yaml: document 2 (DestinationPolicy default/q): spec.targetRef: Service default/web "
     "already has DestinationPolicy default/p (document 1)"},
    /* AuthorizationPolicy, PeerAuthentication */
    {"authz action enum",
     "apiVersion: ringmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
     "spec: {action: AUDIT}\n",
     "t.yaml: document 1 (AuthorizationPolicy default/a): spec.action: want one of ALLOW, DENY, "
     "got \"AUDIT\""},
    {"authz path wildcard in the middle",
     "apiVersion: ringmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
     "spec: {rules: [{to: {paths: [/a/*/b]}}]}\n",
     "t.yaml: document 1 (AuthorizationPolicy default/a): spec.rules[0].to.paths[0]: want a path "
     "starting with '/' with at most one '*' at its start or end, got \"/a/*/b\""},
    {"authz port range",
     "apiVersion: ringmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
     "spec: {rules: [{to: {ports: [0]}}]}\n",
     "t.yaml: document 1 (AuthorizationPolicy default/a): spec.rules[0].to.ports[0]: want a port "
     "number 1..65535, got 0"},
    {"mtls mode enum",
     "apiVersion: ringmesh.io/v1alpha1\nkind: PeerAuthentication\nmetadata: {name: a}\n"
     "spec: {mtls: {mode: strict}}\n",
     "t.yaml: document 1 (PeerAuthentication default/a): spec.mtls.mode: want one of UNSET, "
     "STRICT, PERMISSIVE, DISABLE, got \"strict\""},
    {"portLevelMtls key must be a port",
     "apiVersion: ringmesh.io/v1alpha1\nkind: PeerAuthentication\nmetadata: {name: a}\n"
     "spec: {portLevelMtls: {http: {mode: DISABLE}}}\n",
     "t.yaml: document 1 (PeerAuthentication default/a): spec.portLevelMtls.http: want a port "
     "number 1..65535 as key, got \"http\""},
    {"depth bounded",
     "a: "
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]"
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
     "t.yaml: document 1: line 1, column 68: nested deeper than 64 levels"},
};

static void test_invalid(void)
{
    size_t n = sizeof(bad_cases) / sizeof(bad_cases[0]);
    for (size_t i = 0; i < n; i++) {
        char err[1024] = "";
        struct model_set *s = load(bad_cases[i].src, err, sizeof(err));
        if (s) {
            ok(0, "invalid: %s (loaded instead of failing)", bad_cases[i].name);
            model_set_free(s);
            continue;
        }
        char name[160];
        snprintf(name, sizeof(name), "invalid: %s", bad_cases[i].name);
        is_str(err, bad_cases[i].want, name);
    }
    ok(n >= 40, "at least 40 invalid cases (%zu)", n);
}

/* Every prefix of the valid YAML and JSON loads or fails with a message. */
static void test_prefixes(const char *rel)
{
    char *path = data_path(rel), err[512];
    FILE *f = fopen(path, "rb");
    if (!f) {
        ok(0, "open %s", rel);
        return;
    }
    char buf[16384];
    size_t len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    size_t bad = 0;
    for (size_t i = 0; i <= len; i++) {
        err[0] = 0;
        struct model_set *s = model_load_buffer(rel, buf, i, err, sizeof(err));
        if (!s && strncmp(err, rel, strlen(rel)) != 0)
            bad++;
        model_set_free(s);
    }
    ok(bad == 0, "every prefix of %s loads or names the source in its error (%zu bytes)", rel, len);
}

int main(void)
{
    test_valid();
    test_forms();
    test_invalid();
    test_prefixes("tests/unit/data/model/all.yaml");
    test_prefixes("tests/unit/data/model/all.json");
        {
        /* fuzz finding: clusterIPs: [] read entry 0 of an empty list */
        const char *y = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"
                        "spec: {clusterIP: 10.96.0.1, clusterIPs: [], ports: [{port: 80}]}\n";
        char e[512];
        struct model_set *m = model_load_buffer("t", y, strlen(y), e, sizeof(e));
        ok(m && m->n_services == 1 && m->services[0].n_cluster_ips == 0 &&
               m->services[0].has_cluster_ip,
           "clusterIPs: [] is treated as unset (%s)", m ? "loaded" : e);
        model_set_free(m);
    }
    return tap_done();
}
