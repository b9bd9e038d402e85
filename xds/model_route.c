/*
 * model_route.c - the gateway.networking.k8s.io/v1 HTTPRoute validator, mesh profile
 * (GAMMA): parents are Services, backends are Services. Checks what the Gateway API's
 * CRD schema and CEL rules check (CONVENTIONS §5): list limits, path syntax, one filter
 * per type except RequestMirror, RequestRedirect and URLRewrite exclusive, no backendRefs
 * with a redirect, ReplacePrefixMatch only with exactly one PathPrefix match, weights,
 * GEP-2257 durations with backendRequest <= request, retry codes 400..599. Regular
 * expressions (path, header and query matches) must compile with pcre2.
 *
 * Unsupported here, and refused rather than ignored: ExtensionRef, CORS and ExternalAuth
 * filters, sessionPersistence, backendRefs that are not Services, and on backendRefs any
 * filter but the two header modifiers.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "model_internal.h"

#define ROUTE_MAX_PARENTS   32
#define ROUTE_MAX_HOSTNAMES 16
#define ROUTE_MAX_RULES     16
#define RULE_MAX_MATCHES    64
#define ROUTE_MAX_MATCHES   128
#define MAX_FILTERS         16
#define MAX_BACKENDS        16
#define MAX_VALUE_MATCHES   16
#define MAX_HEADER_ACTIONS  16
#define MAX_PATH_LEN        1024

static const char *const filter_types[] = {"RequestHeaderModifier", "ResponseHeaderModifier",
                                           "RequestRedirect",       "URLRewrite",
                                           "RequestMirror",         NULL};
/* The config field of each filter type, same order. */
static const char *const filter_fields[] = {"requestHeaderModifier", "responseHeaderModifier",
                                            "requestRedirect",       "urlRewrite",
                                            "requestMirror",         NULL};

static bool is_valid_path(const char *s)
{
    size_t len = strlen(s);
    if (s[0] != '/' || strstr(s, "//") || strstr(s, "/./") || strstr(s, "/../") ||
        strstr(s, "%2f") || strstr(s, "%2F") || strchr(s, '#'))
        return false;
    if ((len >= 2 && !strcmp(s + len - 2, "/.")) || (len >= 3 && !strcmp(s + len - 3, "/..")))
        return false;
    return true;
}

#define PATH_WANT                                                                                  \
    "a path starting with '/' (at most 1024 bytes; no '//', '/./', '/../', '%2f', '#', "           \
    "and not ending in '/.' or '/..')"

/* ---- matches ---- */

static int parse_value_matches(struct model_ctx *c, const cJSON *obj, const char *key, bool header,
                               struct model_value_matcher **out, size_t *n)
{
    static const char *const keys[] = {"type", "name", "value", NULL};
    static const char *const types[] = {"Exact", "RegularExpression", NULL};
    const cJSON *list;
    MODEL_TRY(model_get_list(c, obj, key, false, 0, MAX_VALUE_MATCHES, &list, n));
    if (!(*out = model_alloc(c, *n, sizeof(**out))))
        return -1;
    size_t mark = model_path_key(c, key), i = 0;
    for (const cJSON *it = list ? list->child : NULL; it; it = it->next, i++) {
        struct model_value_matcher *m = &(*out)[i];
        size_t m2 = model_path_idx(c, i);
        int e;
        MODEL_TRY(model_check_object(c, it, keys));
        MODEL_TRY(model_get_enum(c, it, "type", types, MODEL_MATCH_EXACT, &e));
        m->type = (enum model_value_match)e;
        MODEL_TRY(model_get_str(c, it, "name", true,
                                header ? MODEL_STR_HEADER_NAME : MODEL_STR_TOKEN, &m->name));
        MODEL_TRY(model_get_str(c, it, "value", true, MODEL_STR_HEADER_VALUE, &m->value));
        if (!header && strlen(m->value) > 1024) {
            model_path_key(c, "value");
            return model_fail(c, "want at most 1024 bytes, got %zu", strlen(m->value));
        }
        if (m->type == MODEL_MATCH_REGEX) {
            size_t m3 = model_path_key(c, "value");
            MODEL_TRY(model_check_regex(c, m->value));
            model_path_pop(c, m3);
        }
        for (size_t j = 0; j < i; j++)
            if (header ? !strcasecmp((*out)[j].name, m->name) : !strcmp((*out)[j].name, m->name))
                return model_fail_at(c, "name", "duplicate name \"%s\" (also %s[%zu])", m->name,
                                     key, j);
        model_path_pop(c, m2);
    }
    model_path_pop(c, mark);
    return 0;
}

static int parse_match(struct model_ctx *c, const cJSON *v, struct model_route_match *m)
{
    static const char *const keys[] = {"path", "headers", "queryParams", "method", NULL};
    static const char *const path_keys[] = {"type", "value", NULL};
    static const char *const path_types[] = {"PathPrefix", "Exact", "RegularExpression", NULL};
    const cJSON *path;
    size_t mark;
    int e;
    MODEL_TRY(model_check_object(c, v, keys));
    m->path_type = MODEL_PATH_PREFIX;
    m->path = "/";
    MODEL_TRY(model_enter(c, v, "path", false, path_keys, &path, &mark));
    if (path) {
        MODEL_TRY(model_get_enum(c, path, "type", path_types, MODEL_PATH_PREFIX, &e));
        m->path_type = (enum model_path_match)e;
        const char *value;
        MODEL_TRY(model_get_str(c, path, "value", false, MODEL_STR_ANY, &value));
        if (value) {
            size_t m2 = model_path_key(c, "value");
            const cJSON *jv = model_get(path, "value");
            if (strlen(value) > MAX_PATH_LEN ||
                (m->path_type != MODEL_PATH_REGEX && !is_valid_path(value)))
                return model_want(c, jv, PATH_WANT);
            if (m->path_type == MODEL_PATH_REGEX)
                MODEL_TRY(model_check_regex(c, value));
            m->path = value;
            model_path_pop(c, m2);
        }
        model_path_pop(c, mark);
    }
    MODEL_TRY(parse_value_matches(c, v, "headers", true, &m->headers, &m->n_headers));
    MODEL_TRY(
        parse_value_matches(c, v, "queryParams", false, &m->query_params, &m->n_query_params));
    MODEL_TRY(model_get_enum(c, v, "method", model_method_names, MODEL_METHOD_ANY, &e));
    m->method = (enum model_method)e;
    return 0;
}

/* ---- backend references ---- */

/* group/kind must name a core Service (both default to that on a backendRef). */
static int check_service_kind(struct model_ctx *c, const cJSON *v, bool defaults)
{
    const cJSON *g = model_get(v, "group"), *k = model_get(v, "kind");
    if (!g && !defaults)
        return model_fail_at(c, "group", "required: \"\" (routes attach to Services)");
    if (g && !(cJSON_IsString(g) && g->valuestring[0] == 0)) {
        model_path_key(c, "group");
        return model_want(c, g, "\"\" (the core group)");
    }
    if (!k && !defaults)
        return model_fail_at(c, "kind", "required: Service");
    if (k && !(cJSON_IsString(k) && !strcmp(k->valuestring, "Service"))) {
        model_path_key(c, "kind");
        return model_want(c, k, "\"Service\"");
    }
    return 0;
}

static int parse_filters(struct model_ctx *c, const cJSON *obj, bool on_backend,
                         const struct model_route_rule *rule, struct model_filter **out, size_t *n);

static int parse_backend(struct model_ctx *c, const cJSON *v, const char *route_ns, bool mirror,
                         struct model_backend_ref *b)
{
    static const char *const keys[] = {"group", "kind",   "name",    "namespace",
                                       "port",  "weight", "filters", NULL};
    static const char *const mirror_keys[] = {"group", "kind", "name", "namespace", "port", NULL};
    long long n;
    MODEL_TRY(model_check_object(c, v, mirror ? mirror_keys : keys));
    MODEL_TRY(check_service_kind(c, v, true));
    MODEL_TRY(model_get_str(c, v, "name", true, MODEL_STR_DNS_1035, &b->name));
    MODEL_TRY(model_get_str(c, v, "namespace", false, MODEL_STR_DNS_LABEL, &b->ns));
    if (!b->ns)
        b->ns = route_ns;
    MODEL_TRY(model_get_int(c, v, "port", true, 1, 65535, 0, &n));
    b->port = (uint16_t)n;
    MODEL_TRY(model_get_int(c, v, "weight", false, 0, 1000000, 1, &n));
    b->weight = (uint32_t)n;
    if (!mirror)
        MODEL_TRY(parse_filters(c, v, true, NULL, &b->filters, &b->n_filters));
    return 0;
}

/* ---- filters ---- */

static int parse_header_mod(struct model_ctx *c, const cJSON *v, struct model_header_mod *h)
{
    static const char *const keys[] = {"set", "add", "remove", NULL};
    static const char *const kv_keys[] = {"name", "value", NULL};
    const char *seen[3 * MAX_HEADER_ACTIONS];
    size_t n_seen = 0;
    MODEL_TRY(model_check_object(c, v, keys));
    for (int a = 0; a < 2; a++) {
        const char *key = a ? "add" : "set";
        const cJSON *list;
        size_t n, i = 0;
        MODEL_TRY(model_get_list(c, v, key, false, 0, MAX_HEADER_ACTIONS, &list, &n));
        struct model_kv *kv = model_alloc(c, n, sizeof(*kv));
        if (!kv)
            return -1;
        size_t mark = model_path_key(c, key);
        for (const cJSON *it = list ? list->child : NULL; it; it = it->next, i++) {
            size_t m2 = model_path_idx(c, i);
            MODEL_TRY(model_check_object(c, it, kv_keys));
            MODEL_TRY(model_get_str(c, it, "name", true, MODEL_STR_HEADER_NAME, &kv[i].key));
            MODEL_TRY(model_get_str(c, it, "value", true, MODEL_STR_HEADER_VALUE, &kv[i].value));
            for (size_t j = 0; j < n_seen; j++)
                if (!strcasecmp(seen[j], kv[i].key))
                    return model_fail_at(
                        c, "name", "header \"%s\" already has an action in this filter", kv[i].key);
            seen[n_seen++] = kv[i].key;
            model_path_pop(c, m2);
        }
        model_path_pop(c, mark);
        if (a) {
            h->add = kv;
            h->n_add = n;
        } else {
            h->set = kv;
            h->n_set = n;
        }
    }
    MODEL_TRY(model_get_str_list(c, v, "remove", MAX_HEADER_ACTIONS, MODEL_STR_HEADER_NAME, false,
                                 &h->remove, &h->n_remove));
    for (size_t i = 0; i < h->n_remove; i++) {
        for (size_t j = 0; j < n_seen; j++)
            if (!strcasecmp(seen[j], h->remove[i])) {
                model_path_key(c, "remove");
                model_path_idx(c, i);
                return model_fail(c, "header \"%s\" already has an action in this filter",
                                  h->remove[i]);
            }
        seen[n_seen++] = h->remove[i];
    }
    return 0;
}

/* path: {type: ReplaceFullPath|ReplacePrefixMatch, replaceFullPath|replacePrefixMatch}. */
static int parse_path_mod(struct model_ctx *c, const cJSON *v, const struct model_route_rule *rule,
                          enum model_path_rewrite *type, const char **path)
{
    static const char *const keys[] = {"type", "replaceFullPath", "replacePrefixMatch", NULL};
    static const char *const types[] = {"", "ReplaceFullPath", "ReplacePrefixMatch", NULL};
    const cJSON *p;
    size_t mark;
    int e;
    MODEL_TRY(model_enter(c, v, "path", false, keys, &p, &mark));
    if (!p)
        return 0;
    MODEL_TRY(model_get_enum(c, p, "type", types, -1, &e));
    *type = (enum model_path_rewrite)e;
    const char *field = e == MODEL_REWRITE_FULL ? "replaceFullPath" : "replacePrefixMatch";
    const char *other = e == MODEL_REWRITE_FULL ? "replacePrefixMatch" : "replaceFullPath";
    if (model_get(p, other))
        return model_fail_at(c, other, "only allowed with type %s",
                             e == MODEL_REWRITE_FULL ? "ReplacePrefixMatch" : "ReplaceFullPath");
    MODEL_TRY(model_get_str(c, p, field, true, MODEL_STR_ANY, path));
    bool empty_ok = e == MODEL_REWRITE_PREFIX && (*path)[0] == 0;
    if (!empty_ok && (strlen(*path) > MAX_PATH_LEN || !is_valid_path(*path))) {
        model_path_key(c, field);
        return model_want(c, model_get(p, field), PATH_WANT);
    }
    if (e == MODEL_REWRITE_PREFIX && rule &&
        !(rule->n_matches == 1 && rule->matches[0].path_type == MODEL_PATH_PREFIX))
        return model_fail_at(c, "type",
                             "ReplacePrefixMatch needs exactly one match, of type PathPrefix "
                             "(the rule has %zu match%s%s)",
                             rule->n_matches, rule->n_matches == 1 ? "" : "es",
                             rule->n_matches == 1 ? ", not PathPrefix" : "");
    if (e == MODEL_REWRITE_PREFIX && !rule)
        return model_fail_at(c, "type", "ReplacePrefixMatch is only allowed in a rule's filters");
    model_path_pop(c, mark);
    return 0;
}

static int parse_redirect(struct model_ctx *c, const cJSON *v, const struct model_route_rule *rule,
                          struct model_redirect *r)
{
    static const char *const keys[] = {"scheme", "hostname", "path", "port", "statusCode", NULL};
    static const char *const schemes[] = {"http", "https", NULL};
    long long n;
    int e;
    MODEL_TRY(model_check_object(c, v, keys));
    MODEL_TRY(model_get_enum(c, v, "scheme", schemes, 99, &e));
    r->scheme = e == 99 ? NULL : schemes[e];
    MODEL_TRY(model_get_str(c, v, "hostname", false, MODEL_STR_PRECISE_HOST, &r->hostname));
    MODEL_TRY(parse_path_mod(c, v, rule, &r->path_type, &r->path));
    MODEL_TRY(model_get_int(c, v, "port", false, 1, 65535, 0, &n));
    r->port = (uint16_t)n;
    const cJSON *sc = model_get(v, "statusCode");
    r->status_code = 302;
    if (sc) {
        double d = cJSON_IsNumber(sc) ? sc->valuedouble : 0;
        if (!(d == 301 || d == 302 || d == 303 || d == 307 || d == 308)) {
            model_path_key(c, "statusCode");
            return model_want(c, sc, "one of 301, 302, 303, 307, 308");
        }
        r->status_code = (int)d;
    }
    return 0;
}

static int parse_mirror(struct model_ctx *c, const cJSON *v, const char *route_ns,
                        struct model_mirror *m)
{
    static const char *const keys[] = {"backendRef", "percent", "fraction", NULL};
    static const char *const frac_keys[] = {"numerator", "denominator", NULL};
    const cJSON *frac;
    size_t mark;
    long long n, d;
    MODEL_TRY(model_check_object(c, v, keys));
    const cJSON *b = model_get(v, "backendRef");
    if (!b)
        return model_fail_at(c, "backendRef", "required");
    mark = model_path_key(c, "backendRef");
    MODEL_TRY(parse_backend(c, b, route_ns, true, &m->backend));
    model_path_pop(c, mark);
    m->numerator = m->denominator = 100;
    if (model_get(v, "percent") && model_get(v, "fraction"))
        return model_fail_at(c, "fraction", "not allowed together with percent");
    MODEL_TRY(model_get_int(c, v, "percent", false, 0, 100, 100, &n));
    m->numerator = (uint32_t)n;
    MODEL_TRY(model_enter(c, v, "fraction", false, frac_keys, &frac, &mark));
    if (frac) {
        MODEL_TRY(model_get_int(c, frac, "numerator", true, 0, INT32_MAX, 0, &n));
        MODEL_TRY(model_get_int(c, frac, "denominator", false, 1, INT32_MAX, 100, &d));
        if (n > d)
            return model_fail(c, "numerator %lld is above denominator %lld", n, d);
        m->numerator = (uint32_t)n;
        m->denominator = (uint32_t)d;
        model_path_pop(c, mark);
    }
    return 0;
}

/* rule is NULL for a backendRef's filters. */
static int parse_filters(struct model_ctx *c, const cJSON *obj, bool on_backend,
                         const struct model_route_rule *rule, struct model_filter **out, size_t *n)
{
    static const char *const keys[] = {"type",
                                       "requestHeaderModifier",
                                       "responseHeaderModifier",
                                       "requestRedirect",
                                       "urlRewrite",
                                       "requestMirror",
                                       NULL};
    const cJSON *list;
    int first_of[5] = {-1, -1, -1, -1, -1};
    MODEL_TRY(model_get_list(c, obj, "filters", false, 0, MAX_FILTERS, &list, n));
    if (!(*out = model_alloc(c, *n, sizeof(**out))))
        return -1;
    size_t mark = model_path_key(c, "filters");
    int i = 0;
    for (const cJSON *it = list ? list->child : NULL; it; it = it->next, i++) {
        struct model_filter *f = &(*out)[i];
        size_t m2 = model_path_idx(c, (size_t)i);
        int t;
        MODEL_TRY(model_check_object(c, it, keys));
        MODEL_TRY(model_get_enum(c, it, "type", filter_types, -1, &t));
        f->type = (enum model_filter_type)t;
        if (on_backend && t != MODEL_FILTER_REQUEST_HEADER_MODIFIER &&
            t != MODEL_FILTER_RESPONSE_HEADER_MODIFIER)
            return model_fail_at(c, "type",
                                 "%s is not supported on a backendRef (only "
                                 "RequestHeaderModifier and ResponseHeaderModifier)",
                                 filter_types[t]);
        for (int k = 0; filter_fields[k]; k++)
            if (k != t && model_get(it, filter_fields[k]))
                return model_fail_at(c, filter_fields[k], "only allowed with type %s",
                                     filter_types[k]);
        const cJSON *cfg = model_get(it, filter_fields[t]);
        if (!cfg)
            return model_fail_at(c, filter_fields[t], "required for type %s", filter_types[t]);
        if (t != MODEL_FILTER_REQUEST_MIRROR && first_of[t] >= 0)
            return model_fail_at(c, "type", "%s may appear only once (also filters[%d])",
                                 filter_types[t], first_of[t]);
        if ((t == MODEL_FILTER_REQUEST_REDIRECT && first_of[MODEL_FILTER_URL_REWRITE] >= 0) ||
            (t == MODEL_FILTER_URL_REWRITE && first_of[MODEL_FILTER_REQUEST_REDIRECT] >= 0))
            return model_fail_at(
                c, "type",
                "RequestRedirect and URLRewrite cannot both be used (also "
                "filters[%d])",
                first_of[t == MODEL_FILTER_URL_REWRITE ? MODEL_FILTER_REQUEST_REDIRECT
                                                       : MODEL_FILTER_URL_REWRITE]);
        if (first_of[t] < 0)
            first_of[t] = i;
        size_t m3 = model_path_key(c, filter_fields[t]);
        switch (f->type) {
        case MODEL_FILTER_REQUEST_HEADER_MODIFIER:
        case MODEL_FILTER_RESPONSE_HEADER_MODIFIER:
            MODEL_TRY(parse_header_mod(c, cfg, &f->u.header_mod));
            break;
        case MODEL_FILTER_REQUEST_REDIRECT:
            MODEL_TRY(parse_redirect(c, cfg, rule, &f->u.redirect));
            break;
        case MODEL_FILTER_URL_REWRITE: {
            static const char *const rw_keys[] = {"hostname", "path", NULL};
            MODEL_TRY(model_check_object(c, cfg, rw_keys));
            MODEL_TRY(model_get_str(c, cfg, "hostname", false, MODEL_STR_PRECISE_HOST,
                                    &f->u.rewrite.hostname));
            MODEL_TRY(parse_path_mod(c, cfg, rule, &f->u.rewrite.path_type, &f->u.rewrite.path));
            break;
        }
        case MODEL_FILTER_REQUEST_MIRROR:
            MODEL_TRY(parse_mirror(c, cfg, c->obj_ns, &f->u.mirror));
            break;
        }
        model_path_pop(c, m3);
        model_path_pop(c, m2);
    }
    model_path_pop(c, mark);
    return 0;
}

/* ---- rules ---- */

static int parse_rule(struct model_ctx *c, const cJSON *v, const char *route_ns,
                      struct model_route_rule *r, size_t *total_matches)
{
    static const char *const keys[] = {"name",     "matches", "filters", "backendRefs",
                                       "timeouts", "retry",   NULL};
    static const char *const timeout_keys[] = {"request", "backendRequest", NULL};
    static const char *const retry_keys[] = {"codes", "attempts", "backoff", NULL};
    const cJSON *list, *o;
    size_t mark, i = 0;
    MODEL_TRY(model_check_object(c, v, keys));
    MODEL_TRY(model_get_str(c, v, "name", false, MODEL_STR_DNS_LABEL, &r->name));

    MODEL_TRY(model_get_list(c, v, "matches", false, 0, RULE_MAX_MATCHES, &list, &r->n_matches));
    if (r->n_matches == 0) {
        /* The Gateway API default: one PathPrefix "/" match. */
        if (!(r->matches = model_alloc(c, 1, sizeof(*r->matches))))
            return -1;
        r->matches[0].path_type = MODEL_PATH_PREFIX;
        r->matches[0].path = "/";
        r->n_matches = 1;
    } else {
        if (!(r->matches = model_alloc(c, r->n_matches, sizeof(*r->matches))))
            return -1;
        mark = model_path_key(c, "matches");
        for (const cJSON *it = list->child; it; it = it->next, i++) {
            size_t m2 = model_path_idx(c, i);
            MODEL_TRY(parse_match(c, it, &r->matches[i]));
            model_path_pop(c, m2);
        }
        model_path_pop(c, mark);
    }
    *total_matches += r->n_matches;

    MODEL_TRY(parse_filters(c, v, false, r, &r->filters, &r->n_filters));

    MODEL_TRY(model_get_list(c, v, "backendRefs", false, 0, MAX_BACKENDS, &list, &r->n_backends));
    if (!(r->backends = model_alloc(c, r->n_backends, sizeof(*r->backends))))
        return -1;
    for (size_t f = 0; f < r->n_filters && r->n_backends; f++)
        if (r->filters[f].type == MODEL_FILTER_REQUEST_REDIRECT)
            return model_fail_at(c, "backendRefs",
                                 "not allowed with a RequestRedirect filter (filters[%zu])", f);
    mark = model_path_key(c, "backendRefs");
    i = 0;
    for (const cJSON *it = list ? list->child : NULL; it; it = it->next, i++) {
        size_t m2 = model_path_idx(c, i);
        MODEL_TRY(parse_backend(c, it, route_ns, false, &r->backends[i]));
        model_path_pop(c, m2);
    }
    model_path_pop(c, mark);

    r->request_timeout_ms = r->backend_timeout_ms = MODEL_DURATION_UNSET;
    MODEL_TRY(model_enter(c, v, "timeouts", false, timeout_keys, &o, &mark));
    if (o) {
        MODEL_TRY(
            model_get_duration(c, o, "request", MODEL_DURATION_UNSET, &r->request_timeout_ms));
        MODEL_TRY(model_get_duration(c, o, "backendRequest", MODEL_DURATION_UNSET,
                                     &r->backend_timeout_ms));
        if (r->request_timeout_ms > 0 && r->backend_timeout_ms > r->request_timeout_ms)
            return model_fail_at(
                c, "backendRequest", "must not exceed request (%lldms), got %lldms",
                (long long)r->request_timeout_ms, (long long)r->backend_timeout_ms);
        model_path_pop(c, mark);
    }

    r->retry.attempts = -1;
    r->retry.backoff_ms = MODEL_DURATION_UNSET;
    MODEL_TRY(model_enter(c, v, "retry", false, retry_keys, &o, &mark));
    if (o) {
        long long n;
        r->retry.set = true;
        MODEL_TRY(model_get_codes(c, o, "codes", &r->retry.codes, &r->retry.n_codes));
        MODEL_TRY(model_get_int(c, o, "attempts", false, 0, 1000, -1, &n));
        r->retry.attempts = (int)n;
        MODEL_TRY(model_get_duration(c, o, "backoff", MODEL_DURATION_UNSET, &r->retry.backoff_ms));
        model_path_pop(c, mark);
    }
    return 0;
}

static int parse_parent(struct model_ctx *c, const cJSON *v, const char *route_ns,
                        struct model_parent_ref *p)
{
    static const char *const keys[] = {"group",       "kind", "namespace", "name",
                                       "sectionName", "port", NULL};
    long long n;
    MODEL_TRY(model_check_object(c, v, keys));
    /* A parentRef defaults to a Gateway; a mesh route must say Service. */
    MODEL_TRY(check_service_kind(c, v, false));
    MODEL_TRY(model_get_str(c, v, "name", true, MODEL_STR_DNS_1035, &p->name));
    MODEL_TRY(model_get_str(c, v, "namespace", false, MODEL_STR_DNS_LABEL, &p->ns));
    if (!p->ns)
        p->ns = route_ns;
    MODEL_TRY(model_get_str(c, v, "sectionName", false, MODEL_STR_DNS_LABEL, &p->section_name));
    MODEL_TRY(model_get_int(c, v, "port", false, 1, 65535, 0, &n));
    p->port = (uint16_t)n;
    return 0;
}

int model_parse_route(struct model_ctx *c, const cJSON *doc, struct model_route *out)
{
    static const char *const top[] = {"apiVersion", "kind", "metadata", "spec", "status", NULL};
    static const char *const spec_keys[] = {"parentRefs", "hostnames", "rules", NULL};
    const cJSON *spec, *list;
    size_t mark, m2, i = 0;
    MODEL_TRY(model_check_object(c, doc, top));
    MODEL_TRY(model_parse_meta(c, doc, MODEL_STR_SUBDOMAIN, &out->meta));
    const char *ns = out->meta.ns;
    MODEL_TRY(model_enter(c, doc, "spec", true, spec_keys, &spec, &mark));

    MODEL_TRY(
        model_get_list(c, spec, "parentRefs", true, 1, ROUTE_MAX_PARENTS, &list, &out->n_parents));
    if (!(out->parents = model_alloc(c, out->n_parents, sizeof(*out->parents))))
        return -1;
    m2 = model_path_key(c, "parentRefs");
    for (const cJSON *it = list->child; it; it = it->next, i++) {
        struct model_parent_ref *p = &out->parents[i];
        size_t m3 = model_path_idx(c, i);
        MODEL_TRY(parse_parent(c, it, ns, p));
        for (size_t j = 0; j < i; j++) {
            const struct model_parent_ref *q = &out->parents[j];
            if (!strcmp(q->name, p->name) && !strcmp(q->ns, p->ns) && q->port == p->port &&
                !strcmp(q->section_name ? q->section_name : "",
                        p->section_name ? p->section_name : ""))
                return model_fail(c, "duplicate parent (also parentRefs[%zu])", j);
        }
        model_path_pop(c, m3);
    }
    model_path_pop(c, m2);

    MODEL_TRY(model_get_str_list(c, spec, "hostnames", ROUTE_MAX_HOSTNAMES, MODEL_STR_HOSTNAME,
                                 true, &out->hostnames, &out->n_hostnames));

    const cJSON *rules = model_get(spec, "rules");
    size_t total = 0;
    if (!rules) {
        /* The CRD's default: one rule matching PathPrefix "/", no backends. */
        static const cJSON empty = {.type = cJSON_Object};
        if (!(out->rules = model_alloc(c, 1, sizeof(*out->rules))))
            return -1;
        out->n_rules = 1;
        MODEL_TRY(parse_rule(c, &empty, ns, &out->rules[0], &total));
    } else {
        MODEL_TRY(model_get_list(c, spec, "rules", true, 1, ROUTE_MAX_RULES, &list, &out->n_rules));
        if (!(out->rules = model_alloc(c, out->n_rules, sizeof(*out->rules))))
            return -1;
        m2 = model_path_key(c, "rules");
        i = 0;
        for (const cJSON *it = list->child; it; it = it->next, i++) {
            struct model_route_rule *r = &out->rules[i];
            size_t m3 = model_path_idx(c, i);
            MODEL_TRY(parse_rule(c, it, ns, r, &total));
            for (size_t j = 0; r->name && j < i; j++)
                if (out->rules[j].name && !strcmp(out->rules[j].name, r->name))
                    return model_fail_at(c, "name", "duplicate rule name \"%s\" (also rules[%zu])",
                                         r->name, j);
            model_path_pop(c, m3);
        }
        if (total > ROUTE_MAX_MATCHES)
            return model_fail(c, "want at most %d matches over all rules, got %zu",
                              ROUTE_MAX_MATCHES, total);
        model_path_pop(c, m2);
    }
    model_path_pop(c, mark);
    return 0;
}
