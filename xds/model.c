/*
 * model.c - loading the resource model: input sniffing, YAML (libyaml events) and JSON
 * (cJSON) into one cJSON tree per document, the per-document checks every kind shares
 * (a mapping, no duplicate keys, bounded depth, a known apiVersion/kind), dispatch to the
 * kind validators (model_kinds.c, model_route.c), duplicate-object detection, the set's
 * storage and its lookups.
 *
 * Documents are converted and validated one at a time, so a YAML stream never holds more
 * than one document's tree. Objects are appended to per-kind arrays owned by the set; their
 * strings and inner arrays live in the set's arena. On any error everything built so far
 * is freed through model_set_free(), which is why validators never free on their own.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "model_internal.h"

static const struct kind_def {
    const char *api_version;
    const char *kind;
} kind_defs[MODEL_KIND_COUNT] = {
    [MODEL_KIND_SERVICE] = {"v1", "Service"},
    [MODEL_KIND_ENDPOINT_SLICE] = {"discovery.k8s.io/v1", "EndpointSlice"},
    [MODEL_KIND_HTTP_ROUTE] = {"gateway.networking.k8s.io/v1", "HTTPRoute"},
    [MODEL_KIND_DESTINATION_POLICY] = {"ringmesh.io/v1alpha1", "DestinationPolicy"},
    [MODEL_KIND_AUTHORIZATION_POLICY] = {"ringmesh.io/v1alpha1", "AuthorizationPolicy"},
    [MODEL_KIND_PEER_AUTHENTICATION] = {"ringmesh.io/v1alpha1", "PeerAuthentication"},
};

const char *model_kind_str(enum model_kind kind)
{
    return (unsigned)kind < MODEL_KIND_COUNT ? kind_defs[kind].kind : "?";
}

const char *model_method_str(enum model_method m)
{
    return (unsigned)m <= MODEL_METHOD_PATCH ? model_method_names[m] : "?";
}

/* ---- duplicate detection: (kind, namespace, name) seen in this load ---- */

struct seen_entry {
    uint64_t hash;
    int kind; /* MODEL_KIND_*, or MODEL_KIND_COUNT for "policy target" */
    const char *ns, *name, *owner;
    int doc;
};

struct seen {
    struct seen_entry *slots;
    size_t cap, n;
};

static uint64_t seen_hash(int kind, const char *ns, const char *name)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)kind;
    for (const char *s = ns; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h = (h ^ '/') * 1099511628211ull;
    for (const char *s = name; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Returns the earlier entry if (kind, ns, name) was seen, else records it; *oom on failure. */
static const struct seen_entry *seen_add(struct seen *s, int kind, const char *ns, const char *name,
                                         const char *owner, int doc, bool *oom)
{
    *oom = false;
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        struct seen_entry *slots = calloc(cap, sizeof(*slots));
        if (!slots) {
            *oom = true;
            return NULL;
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slots[i].name)
                continue;
            size_t j = s->slots[i].hash & (cap - 1);
            while (slots[j].name)
                j = (j + 1) & (cap - 1);
            slots[j] = s->slots[i];
        }
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    uint64_t h = seen_hash(kind, ns, name);
    size_t j = h & (s->cap - 1);
    for (; s->slots[j].name; j = (j + 1) & (s->cap - 1)) {
        struct seen_entry *e = &s->slots[j];
        if (e->hash == h && e->kind == kind && !strcmp(e->ns, ns) && !strcmp(e->name, name))
            return e;
    }
    s->slots[j] = (struct seen_entry){h, kind, ns, name, owner, doc};
    s->n++;
    return NULL;
}

/* ---- the set ---- */

struct loader {
    struct model_ctx c;
    struct model_set *set;
    cJSON *docs; /* borrowed: model_load_buffer_docs()'s array, else NULL */
    struct seen seen;
    size_t caps[MODEL_KIND_COUNT];
};

static void *push(struct loader *L, enum model_kind k)
{
    static const size_t sizes[MODEL_KIND_COUNT] = {
        sizeof(struct model_service),      sizeof(struct model_slice),
        sizeof(struct model_route),        sizeof(struct model_destination_policy),
        sizeof(struct model_authz_policy), sizeof(struct model_peer_authn)};
    struct model_set *s = L->set;
    void **arr[MODEL_KIND_COUNT] = {(void **)&s->services,       (void **)&s->slices,
                                    (void **)&s->routes,         (void **)&s->dest_policies,
                                    (void **)&s->authz_policies, (void **)&s->peer_authns};
    size_t *n[MODEL_KIND_COUNT] = {&s->n_services,      &s->n_slices,         &s->n_routes,
                                   &s->n_dest_policies, &s->n_authz_policies, &s->n_peer_authns};
    if (*n[k] == L->caps[k]) {
        size_t cap = L->caps[k] ? 2 * L->caps[k] : 8;
        void *p = realloc(*arr[k], cap * sizes[k]);
        if (!p) {
            model_fail(&L->c, "out of memory");
            return NULL;
        }
        *arr[k] = p;
        L->caps[k] = cap;
    }
    char *slot = (char *)*arr[k] + (*n[k])++ * sizes[k];
    memset(slot, 0, sizes[k]);
    return slot;
}

void model_set_free(struct model_set *set)
{
    if (!set)
        return;
    free(set->services);
    free(set->slices);
    free(set->routes);
    free(set->dest_policies);
    free(set->authz_policies);
    free(set->peer_authns);
    model_arena_free(set->arena);
    free(set);
}

/* ---- per-document checks ---- */

static int key_cmp(const void *a, const void *b)
{
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* No duplicate keys (cJSON keeps both; libyaml does not check), bounded depth. */
static int check_tree(struct model_ctx *c, const cJSON *v, int depth)
{
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
        return 0;
    if (depth >= MODEL_MAX_DEPTH)
        return model_fail(c, "nested deeper than %d levels", MODEL_MAX_DEPTH);
    if (cJSON_IsObject(v)) {
        size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
        if (n > 1) {
            const cJSON **keys = malloc(n * sizeof(*keys));
            if (!keys)
                return model_fail(c, "out of memory");
            for (const cJSON *it = v->child; it; it = it->next)
                keys[i++] = it;
            qsort(keys, n, sizeof(*keys), key_cmp);
            for (i = 1; i < n; i++)
                if (!strcmp(keys[i - 1]->string, keys[i]->string)) {
                    const char *dup = keys[i]->string;
                    free(keys);
                    return model_fail_at(c, dup, "duplicate key");
                }
            free(keys);
        }
        for (const cJSON *it = v->child; it; it = it->next) {
            size_t mark = model_path_key(c, it->string);
            MODEL_TRY(check_tree(c, it, depth + 1));
            model_path_pop(c, mark);
        }
    } else {
        size_t i = 0;
        for (const cJSON *it = v->child; it; it = it->next, i++) {
            size_t mark = model_path_idx(c, i);
            MODEL_TRY(check_tree(c, it, depth + 1));
            model_path_pop(c, mark);
        }
    }
    return 0;
}

static int kind_of(struct model_ctx *c, const cJSON *doc, enum model_kind *out)
{
    const cJSON *av = model_get(doc, "apiVersion"), *k = model_get(doc, "kind");
    if (!k)
        return model_fail_at(c, "kind", "required");
    if (!cJSON_IsString(k)) {
        model_path_key(c, "kind");
        return model_want(c, k, "a string");
    }
    if (!av)
        return model_fail_at(c, "apiVersion", "required");
    if (!cJSON_IsString(av)) {
        model_path_key(c, "apiVersion");
        return model_want(c, av, "a string");
    }
    for (int i = 0; i < MODEL_KIND_COUNT; i++) {
        if (strcmp(kind_defs[i].kind, k->valuestring) != 0)
            continue;
        if (strcmp(kind_defs[i].api_version, av->valuestring) != 0) {
            char what[96];
            snprintf(what, sizeof(what), "\"%s\" for kind %s", kind_defs[i].api_version,
                     kind_defs[i].kind);
            model_path_key(c, "apiVersion");
            return model_want(c, av, what);
        }
        *out = (enum model_kind)i;
        return 0;
    }
    char list[512];
    size_t o = 0;
    for (int i = 0; i < MODEL_KIND_COUNT; i++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s/%s", i ? ", " : "",
                              kind_defs[i].api_version, kind_defs[i].kind);
    return model_fail(c, "unknown kind %.64s/%.64s (want one of %s)", av->valuestring,
                      k->valuestring, list);
}

static int load_object(struct loader *L, const cJSON *doc)
{
    struct model_ctx *c = &L->c;
    enum model_kind k;
    MODEL_TRY(kind_of(c, doc, &k));
    c->kind = kind_defs[k].kind;
    void *slot = push(L, k);
    if (!slot)
        return -1;
    struct model_meta *meta = slot; /* every kind's struct starts with its meta */
    switch (k) {
    case MODEL_KIND_SERVICE:
        MODEL_TRY(model_parse_service(c, doc, slot));
        break;
    case MODEL_KIND_ENDPOINT_SLICE:
        MODEL_TRY(model_parse_slice(c, doc, slot));
        break;
    case MODEL_KIND_HTTP_ROUTE:
        MODEL_TRY(model_parse_route(c, doc, slot));
        break;
    case MODEL_KIND_DESTINATION_POLICY:
        MODEL_TRY(model_parse_dest_policy(c, doc, slot));
        break;
    case MODEL_KIND_AUTHORIZATION_POLICY:
        MODEL_TRY(model_parse_authz(c, doc, slot));
        break;
    case MODEL_KIND_PEER_AUTHENTICATION:
        MODEL_TRY(model_parse_peer_authn(c, doc, slot));
        break;
    case MODEL_KIND_COUNT:
        return -1;
    }
    if (L->docs) {
        cJSON *copy = cJSON_Duplicate(doc, 1);
        if (!copy || !cJSON_AddItemToArray(L->docs, copy)) {
            cJSON_Delete(copy);
            return model_fail(c, "out of memory");
        }
    }
    bool oom;
    const struct seen_entry *e = seen_add(&L->seen, k, meta->ns, meta->name, NULL, c->doc, &oom);
    if (oom)
        return model_fail(c, "out of memory");
    if (e)
        return model_fail(c, "duplicate %s %s/%s (first in document %d)", c->kind, meta->ns,
                          meta->name, e->doc);
    if (k == MODEL_KIND_DESTINATION_POLICY) {
        const struct model_destination_policy *p = slot;
        e = seen_add(&L->seen, MODEL_KIND_COUNT, meta->ns, p->target, meta->name, c->doc, &oom);
        if (oom)
            return model_fail(c, "out of memory");
        if (e)
            return model_fail(c,
                              "spec.targetRef: Service %s/%s already has DestinationPolicy "
                              "%s/%s (document %d)",
                              meta->ns, p->target, meta->ns, e->owner, e->doc);
    }
    return 0;
}

/* One document (or one List item when in_list). */
static int load_doc(struct loader *L, const cJSON *doc, bool in_list)
{
    struct model_ctx *c = &L->c;
    c->doc = ++L->set->n_documents;
    c->kind = c->obj_ns = c->obj_name = NULL;
    model_path_pop(c, 0);
    if (!doc || cJSON_IsNull(doc))
        return 0;
    if (!cJSON_IsObject(doc))
        return model_want(c, doc, "a mapping (a Kubernetes object)");
    MODEL_TRY(check_tree(c, doc, 0));
    const cJSON *k = model_get(doc, "kind");
    if (!cJSON_IsString(k) || strcmp(k->valuestring, "List") != 0)
        return load_object(L, doc);
    if (in_list)
        return model_fail_at(c, "kind", "a List cannot hold another List");

    /* A List is not an object of its own: its items are the documents. */
    static const char *const keys[] = {"apiVersion", "kind", "metadata", "items", NULL};
    MODEL_TRY(model_check_object(c, doc, keys));
    const cJSON *items;
    size_t n;
    MODEL_TRY(model_get_list(c, doc, "items", false, 0, SIZE_MAX, &items, &n));
    L->set->n_documents--;
    for (const cJSON *it = items ? items->child : NULL; it; it = it->next)
        MODEL_TRY(load_doc(L, it, true));
    return 0;
}

/* ---- JSON ---- */

static void line_col(const char *buf, const char *at, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = buf; p < at; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static int load_json(struct loader *L, const char *buf)
{
    struct model_ctx *c = &L->c;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(buf, &end, 1);
    if (!root) {
        size_t line, col;
        line_col(buf, end ? end : buf, &line, &col);
        return model_fail(c, "line %zu, column %zu: JSON syntax error", line, col);
    }
    int rc = 0;
    if (cJSON_IsArray(root)) {
        for (const cJSON *it = root->child; it && rc == 0; it = it->next)
            rc = load_doc(L, it, false);
    } else {
        rc = load_doc(L, root, false);
    }
    cJSON_Delete(root);
    return rc;
}

/* ---- YAML ---- */

struct yreader {
    yaml_parser_t p;
    yaml_event_t ev;
    bool has_ev;
    struct model_ctx *c;
};

static int y_fail(struct yreader *y, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int y_fail(struct yreader *y, yaml_mark_t m, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return model_fail(y->c, "line %zu, column %zu: %s", m.line + 1, m.column + 1, msg);
}

static int y_next(struct yreader *y)
{
    if (y->has_ev) {
        yaml_event_delete(&y->ev);
        y->has_ev = false;
    }
    if (!yaml_parser_parse(&y->p, &y->ev)) {
        if (y->p.error == YAML_MEMORY_ERROR)
            return model_fail(y->c, "out of memory");
        const char *problem = y->p.problem ? y->p.problem : "syntax error";
        if (y->p.context)
            return y_fail(y, y->p.problem_mark, "YAML syntax error: %s %s", problem, y->p.context);
        return y_fail(y, y->p.problem_mark, "YAML syntax error: %s", problem);
    }
    y->has_ev = true;
    return 0;
}

static bool all_digits(const char *s, const char *set)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr(set, *s))
            return false;
    return true;
}

/* YAML 1.2 core schema resolution of a plain scalar. */
static cJSON *y_plain(const char *s)
{
    if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
        return cJSON_CreateNull();
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        return cJSON_CreateTrue();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return cJSON_CreateFalse();
    const char *d = s + (*s == '-' || *s == '+');
    if (all_digits(d, "0123456789"))
        return cJSON_CreateNumber(strtod(s, NULL));
    if (s[0] == '0' && s[1] == 'x' && all_digits(s + 2, "0123456789abcdefABCDEF"))
        return cJSON_CreateNumber((double)strtoull(s + 2, NULL, 16));
    if (s[0] == '0' && s[1] == 'o' && all_digits(s + 2, "01234567"))
        return cJSON_CreateNumber((double)strtoull(s + 2, NULL, 8));
    if (!strcmp(d, ".inf") || !strcmp(d, ".Inf") || !strcmp(d, ".INF") || !strcmp(s, ".nan") ||
        !strcmp(s, ".NaN") || !strcmp(s, ".NAN"))
        return cJSON_CreateNumber(strtod(s[0] == '.' && s[1] == 'n' ? "nan" : s, NULL));
    /* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
    const char *p = d;
    size_t before = strspn(p, "0123456789"), after = 0;
    p += before;
    if (*p == '.') {
        after = strspn(p + 1, "0123456789");
        p += 1 + after;
    }
    if (before == 0 && after == 0)
        return cJSON_CreateString(s);
    if (*p == 'e' || *p == 'E') {
        p++;
        p += (*p == '-' || *p == '+');
        size_t exp = strspn(p, "0123456789");
        if (exp == 0)
            return cJSON_CreateString(s);
        p += exp;
    }
    if (*p == 0)
        return cJSON_CreateNumber(strtod(s, NULL));
    return cJSON_CreateString(s);
}

static int y_scalar(struct yreader *y, cJSON **out)
{
    const yaml_event_t *ev = &y->ev;
    const char *s = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;
    if (strlen(s) != ev->data.scalar.length)
        return y_fail(y, ev->start_mark, "NUL character in a scalar");
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (!tag || !strcmp(tag, "!") || !strcmp(tag, YAML_STR_TAG)) {
        *out = plain && !tag ? y_plain(s) : cJSON_CreateString(s);
    } else if (!strcmp(tag, YAML_INT_TAG) || !strcmp(tag, YAML_FLOAT_TAG) ||
               !strcmp(tag, YAML_BOOL_TAG) || !strcmp(tag, YAML_NULL_TAG)) {
        *out = y_plain(s);
        bool is_bool = !strcmp(tag, YAML_BOOL_TAG), is_null = !strcmp(tag, YAML_NULL_TAG);
        bool fits = *out && ((is_bool && cJSON_IsBool(*out)) || (is_null && cJSON_IsNull(*out)) ||
                             (!is_bool && !is_null && cJSON_IsNumber(*out)));
        if (!fits) {
            cJSON_Delete(*out);
            *out = NULL;
            return y_fail(y, ev->start_mark, "value does not match its tag %s", tag);
        }
    } else {
        return y_fail(y, ev->start_mark, "unsupported tag %.64s", tag);
    }
    return *out ? 0 : model_fail(y->c, "out of memory");
}

static int y_node(struct yreader *y, int depth, cJSON **out);

static int y_collection(struct yreader *y, int depth, bool map, cJSON *coll)
{
    for (;;) {
        MODEL_TRY(y_next(y));
        if (y->ev.type == (map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT))
            return 0;
        char *key = NULL;
        if (map) {
            if (y->ev.type == YAML_ALIAS_EVENT)
                return y_fail(y, y->ev.start_mark, "anchors and aliases are not supported");
            if (y->ev.type != YAML_SCALAR_EVENT)
                return y_fail(y, y->ev.start_mark, "mapping keys must be scalars");
            if (y->ev.data.scalar.anchor)
                return y_fail(y, y->ev.start_mark, "anchors and aliases are not supported");
            const char *k = (const char *)y->ev.data.scalar.value;
            if (strlen(k) != y->ev.data.scalar.length)
                return y_fail(y, y->ev.start_mark, "NUL character in a key");
            if (!(key = strdup(k)))
                return model_fail(y->c, "out of memory");
            if (y_next(y) < 0) {
                free(key);
                return -1;
            }
        }
        cJSON *child = NULL;
        if (y_node(y, depth + 1, &child) < 0) {
            free(key);
            return -1;
        }
        bool added =
            map ? cJSON_AddItemToObject(coll, key, child) : cJSON_AddItemToArray(coll, child);
        free(key);
        if (!added) {
            cJSON_Delete(child);
            return model_fail(y->c, "out of memory");
        }
    }
}

static int y_node(struct yreader *y, int depth, cJSON **out)
{
    const yaml_event_t *ev = &y->ev;
    *out = NULL;
    if (depth > MODEL_MAX_DEPTH)
        return y_fail(y, ev->start_mark, "nested deeper than %d levels", MODEL_MAX_DEPTH);
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return y_fail(y, ev->start_mark, "anchors and aliases are not supported");
    case YAML_SCALAR_EVENT:
        if (ev->data.scalar.anchor)
            return y_fail(y, ev->start_mark, "anchors and aliases are not supported");
        return y_scalar(y, out);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool map = ev->type == YAML_MAPPING_START_EVENT;
        const char *tag =
            (const char *)(map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
        if (map ? ev->data.mapping_start.anchor != NULL : ev->data.sequence_start.anchor != NULL)
            return y_fail(y, ev->start_mark, "anchors and aliases are not supported");
        if (tag && strcmp(tag, map ? YAML_MAP_TAG : YAML_SEQ_TAG) != 0)
            return y_fail(y, ev->start_mark, "unsupported tag %.64s", tag);
        cJSON *coll = map ? cJSON_CreateObject() : cJSON_CreateArray();
        if (!coll)
            return model_fail(y->c, "out of memory");
        if (y_collection(y, depth, map, coll) < 0) {
            cJSON_Delete(coll);
            return -1;
        }
        *out = coll;
        return 0;
    }
    default:
        return y_fail(y, ev->start_mark, "unexpected YAML event");
    }
}

static int load_yaml_stream(struct loader *L, struct yreader *y)
{
    MODEL_TRY(y_next(y)); /* STREAM-START */
    for (;;) {
        MODEL_TRY(y_next(y));
        if (y->ev.type == YAML_STREAM_END_EVENT)
            return 0;
        if (y->ev.type != YAML_DOCUMENT_START_EVENT)
            return y_fail(y, y->ev.start_mark, "unexpected YAML event");
        /* Number the document now so syntax errors inside it name it. */
        L->c.doc = L->set->n_documents + 1;
        L->c.kind = NULL;
        model_path_pop(&L->c, 0);
        MODEL_TRY(y_next(y));
        cJSON *root = NULL;
        MODEL_TRY(y_node(y, 0, &root));
        int rc = y_next(y); /* DOCUMENT-END */
        if (rc == 0)
            rc = load_doc(L, root, false);
        cJSON_Delete(root);
        MODEL_TRY(rc);
    }
}

static int load_yaml(struct loader *L, const char *buf, size_t len)
{
    struct yreader y = {.c = &L->c};
    if (!yaml_parser_initialize(&y.p))
        return model_fail(&L->c, "out of memory");
    yaml_parser_set_input_string(&y.p, (const unsigned char *)buf, len);
    int rc = load_yaml_stream(L, &y);
    if (y.has_ev)
        yaml_event_delete(&y.ev);
    yaml_parser_delete(&y.p);
    return rc;
}

/* ---- entry points ---- */

struct model_set *model_load_buffer(const char *src_name, const char *buf, size_t len, char *err,
                                    size_t errlen)
{
    return model_load_buffer_docs(src_name, buf, len, NULL, err, errlen);
}

struct model_set *model_load_buffer_docs(const char *src_name, const char *buf, size_t len,
                                         struct cJSON *docs, char *err, size_t errlen)
{
    struct loader L = {.c = {.src = src_name ? src_name : "<input>", .err = err, .errlen = errlen},
                       .docs = docs};
    if (err && errlen)
        err[0] = 0;
    L.set = calloc(1, sizeof(*L.set));
    if (!L.set || !(L.set->arena = model_arena_new())) {
        model_fail(&L.c, "out of memory");
        model_set_free(L.set);
        return NULL;
    }
    L.c.arena = L.set->arena;

    int rc = -1;
    if (!buf)
        len = 0, buf = "";
    const char *nul = memchr(buf, 0, len);
    if (nul) {
        size_t line, col;
        line_col(buf, nul, &line, &col);
        model_fail(&L.c, "line %zu, column %zu: NUL byte in the input", line, col);
        goto out;
    }
    size_t i = 0;
    if (len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3))
        i = 3;
    while (i < len && strchr(" \t\r\n", buf[i]))
        i++;
    if (i < len && (buf[i] == '{' || buf[i] == '[')) {
        /* cJSON wants a terminated string; the fuzzer and callers give (ptr, len). */
        char *copy = malloc(len + 1);
        if (!copy) {
            model_fail(&L.c, "out of memory");
            goto out;
        }
        memcpy(copy, buf, len);
        copy[len] = 0;
        rc = load_json(&L, copy);
        free(copy);
    } else {
        rc = load_yaml(&L, buf, len);
    }
out:
    free(L.seen.slots);
    if (rc < 0) {
        model_set_free(L.set);
        return NULL;
    }
    return L.set;
}

struct model_set *model_load_file(const char *path, char *err, size_t errlen)
{
    bool is_stdin = !strcmp(path, "-");
    const char *name = is_stdin ? "<stdin>" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", name, strerror(errno));
        return NULL;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    bool too_big = false;
    while (buf) {
        if (len == cap) {
            if (cap > MODEL_MAX_FILE_BYTES) {
                too_big = true;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int read_err = ferror(f) ? errno : 0;
    if (!is_stdin)
        fclose(f);
    struct model_set *set = NULL;
    if (!buf)
        snprintf(err, errlen, "%s: out of memory", name);
    else if (too_big || len > MODEL_MAX_FILE_BYTES)
        snprintf(err, errlen, "%s: larger than %u bytes", name, MODEL_MAX_FILE_BYTES);
    else if (read_err)
        snprintf(err, errlen, "%s: read error: %s", name, strerror(read_err));
    else
        set = model_load_buffer(name, buf, len, err, errlen);
    free(buf);
    return set;
}

/* ---- lookups ---- */

#define FIND(arr, n, field, want_ns, want_name)                                                    \
    do {                                                                                           \
        const char *ns_ = (want_ns) ? (want_ns) : "default";                                       \
        for (size_t i_ = 0; set && i_ < set->n; i_++)                                              \
            if (!strcmp(set->arr[i_].meta.ns, ns_) && !strcmp(set->arr[i_].field, (want_name)))    \
                return &set->arr[i_];                                                              \
        return NULL;                                                                               \
    } while (0)

const struct model_service *model_find_service(const struct model_set *set, const char *ns,
                                               const char *name)
{
    FIND(services, n_services, meta.name, ns, name);
}

const struct model_slice *model_find_slice(const struct model_set *set, const char *ns,
                                           const char *name)
{
    FIND(slices, n_slices, meta.name, ns, name);
}

const struct model_route *model_find_route(const struct model_set *set, const char *ns,
                                           const char *name)
{
    FIND(routes, n_routes, meta.name, ns, name);
}

const struct model_destination_policy *model_find_dest_policy(const struct model_set *set,
                                                              const char *ns, const char *service)
{
    FIND(dest_policies, n_dest_policies, target, ns, service);
}

const struct model_authz_policy *model_find_authz(const struct model_set *set, const char *ns,
                                                  const char *name)
{
    FIND(authz_policies, n_authz_policies, meta.name, ns, name);
}

const struct model_peer_authn *model_find_peer_authn(const struct model_set *set, const char *ns,
                                                     const char *name)
{
    FIND(peer_authns, n_peer_authns, meta.name, ns, name);
}
