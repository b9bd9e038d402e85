/*
 * store.c - see store.h. A sorted array of objects; a commit builds the candidate array,
 * validates it with the model as one List, and swaps it in.
 */
#include "store.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

const enum model_kind store_push_order[STORE_TYPE_COUNT] = {
    MODEL_KIND_SERVICE,     MODEL_KIND_DESTINATION_POLICY,   MODEL_KIND_ENDPOINT_SLICE,
    MODEL_KIND_HTTP_ROUTE,  MODEL_KIND_AUTHORIZATION_POLICY, MODEL_KIND_PEER_AUTHENTICATION,
};

static const struct {
    const char *api_version, *kind, *type_url, *plural, *alias;
} kinds[MODEL_KIND_COUNT] = {
    [MODEL_KIND_SERVICE] = {"v1", "Service", "v1/Service", "services", "svc"},
    [MODEL_KIND_ENDPOINT_SLICE] = {"discovery.k8s.io/v1", "EndpointSlice",
                                   "discovery.k8s.io/v1/EndpointSlice", "endpointslices",
                                   "slice"},
    [MODEL_KIND_HTTP_ROUTE] = {"gateway.networking.k8s.io/v1", "HTTPRoute",
                               "gateway.networking.k8s.io/v1/HTTPRoute", "httproutes", "route"},
    [MODEL_KIND_DESTINATION_POLICY] = {"ringmesh.io/v1alpha1", "DestinationPolicy",
                                       "ringmesh.io/v1alpha1/DestinationPolicy",
                                       "destinationpolicies", "dp"},
    [MODEL_KIND_AUTHORIZATION_POLICY] = {"ringmesh.io/v1alpha1", "AuthorizationPolicy",
                                         "ringmesh.io/v1alpha1/AuthorizationPolicy",
                                         "authorizationpolicies", "ap"},
    [MODEL_KIND_PEER_AUTHENTICATION] = {"ringmesh.io/v1alpha1", "PeerAuthentication",
                                        "ringmesh.io/v1alpha1/PeerAuthentication",
                                        "peerauthentications", "pa"},
};

const char *store_type_url(enum model_kind k)
{
    return (unsigned)k < MODEL_KIND_COUNT ? kinds[k].type_url : NULL;
}

const char *store_api_version(enum model_kind k)
{
    return (unsigned)k < MODEL_KIND_COUNT ? kinds[k].api_version : NULL;
}

int store_kind_parse(const char *s)
{
    if (!s)
        return -1;
    for (int k = 0; k < MODEL_KIND_COUNT; k++) {
        size_t kl = strlen(kinds[k].kind);
        if (!strcasecmp(s, kinds[k].kind) || !strcmp(s, kinds[k].type_url) ||
            !strcasecmp(s, kinds[k].plural) || !strcasecmp(s, kinds[k].alias) ||
            /* "service" and "services", "endpointslice" ... */
            (!strncasecmp(s, kinds[k].kind, kl) && !strcasecmp(s + kl, "s")))
            return k;
    }
    return -1;
}

const char *store_action_str(enum store_action a)
{
    static const char *const names[] = {"created", "configured", "unchanged", "deleted"};
    return (unsigned)a < 4 ? names[a] : "?";
}

void store_init(struct store *s)
{
    memset(s, 0, sizeof(*s));
}

void store_obj_free(struct store_obj *o)
{
    if (!o)
        return;
    free(o->ns);
    free(o->name);
    free(o->key);
    cJSON_Delete(o->doc);
    free(o->json);
    free(o->file);
    free(o);
}

void store_objs_free(struct store_obj **objs, size_t n)
{
    for (size_t i = 0; objs && i < n; i++)
        store_obj_free(objs[i]);
    free(objs);
}

void store_free(struct store *s)
{
    store_objs_free(s->objs, s->n);
    for (size_t i = 0; s->log && i < STORE_LOG_SIZE; i++)
        free(s->log[i].key);
    free(s->log);
    memset(s, 0, sizeof(*s));
}

static int key_cmp(enum model_kind ka, const char *nsa, const char *na, enum model_kind kb,
                   const char *nsb, const char *nb)
{
    if (ka != kb)
        return ka < kb ? -1 : 1;
    int c = strcmp(nsa, nsb);
    return c ? c : strcmp(na, nb);
}

static int obj_cmp(const void *a, const void *b)
{
    const struct store_obj *x = *(struct store_obj *const *)a, *y = *(struct store_obj *const *)b;
    return key_cmp(x->kind, x->ns, x->name, y->kind, y->ns, y->name);
}

/* Index of the first object >= key. */
static size_t lower_bound(struct store_obj *const *objs, size_t n, enum model_kind k,
                          const char *ns, const char *name)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(objs[mid]->kind, objs[mid]->ns, objs[mid]->name, k, ns, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct store_obj *store_find(const struct store *s, enum model_kind k, const char *ns,
                             const char *name)
{
    size_t i = lower_bound(s->objs, s->n, k, ns ? ns : "default", name);
    if (i < s->n && s->objs[i]->kind == k && !strcmp(s->objs[i]->ns, ns ? ns : "default") &&
        !strcmp(s->objs[i]->name, name))
        return s->objs[i];
    return NULL;
}

size_t store_range(const struct store *s, enum model_kind k, struct store_obj ***first)
{
    size_t i = lower_bound(s->objs, s->n, k, "", ""), j = i;
    while (j < s->n && s->objs[j]->kind == k)
        j++;
    *first = s->objs + i;
    return j - i;
}

size_t store_count(const struct store *s, int k)
{
    struct store_obj **f;
    return k < 0 ? s->n : store_range(s, (enum model_kind)k, &f);
}

/* An object from a validated document: kind, metadata.namespace ("default") and name. */
static struct store_obj *obj_from_doc(cJSON *doc, const char *file)
{
    struct store_obj *o = calloc(1, sizeof(*o));
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(doc, "kind");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(doc, "metadata");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(meta, "name");
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(meta, "namespace");
    int k = cJSON_IsString(kind) ? store_kind_parse(kind->valuestring) : -1;

    if (!o || k < 0 || !cJSON_IsString(name)) {
        free(o);
        return NULL;
    }
    /* the version is the store's to give (ringmeshctl get shows it as resourceVersion) */
    cJSON_DeleteItemFromObjectCaseSensitive((cJSON *)meta, "resourceVersion");
    /* stored and served with its namespace spelled out, so "metadata: {name: a}" and
     * "metadata: {name: a, namespace: default}" are the same object, unchanged */
    if (!cJSON_IsString(ns)) {
        cJSON_DeleteItemFromObjectCaseSensitive((cJSON *)meta, "namespace");
        if (!cJSON_AddStringToObject((cJSON *)meta, "namespace", "default")) {
            free(o);
            return NULL;
        }
        ns = cJSON_GetObjectItemCaseSensitive(meta, "namespace");
    }
    o->kind = (enum model_kind)k;
    o->doc = doc;
    o->ns = strdup(cJSON_IsString(ns) ? ns->valuestring : "default");
    o->name = strdup(name->valuestring);
    o->json = cJSON_PrintUnformatted(doc);
    o->file = file ? strdup(file) : NULL;
    if (o->ns && o->name)
        o->key = malloc(strlen(o->ns) + strlen(o->name) + 2);
    if (!o->ns || !o->name || !o->key || !o->json || (file && !o->file)) {
        o->doc = NULL; /* the caller still owns doc */
        store_obj_free(o);
        return NULL;
    }
    sprintf(o->key, "%s/%s", o->ns, o->name);
    return o;
}

int store_parse(const char *src, const char *buf, size_t len, const char *file,
                struct store_obj ***objs, size_t *n, char *err, size_t errlen)
{
    cJSON *docs = cJSON_CreateArray(), *d;
    struct model_set *set;
    int rc = 0;

    if (!docs) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (!(set = model_load_buffer_docs(src, buf, len, docs, err, errlen))) {
        cJSON_Delete(docs);
        return -EINVAL;
    }
    model_set_free(set);
    size_t count = (size_t)cJSON_GetArraySize(docs);
    struct store_obj **arr = realloc(*objs, (*n + count + 1) * sizeof(*arr));
    if (!arr) {
        cJSON_Delete(docs);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    *objs = arr;
    while ((d = cJSON_DetachItemFromArray(docs, 0))) {
        struct store_obj *o = obj_from_doc(d, file);
        if (!o) {
            cJSON_Delete(d);
            snprintf(err, errlen, "out of memory");
            rc = -ENOMEM;
            break;
        }
        arr[(*n)++] = o;
    }
    cJSON_Delete(docs);
    return rc;
}

/* Loads objs[0..n) as one List with the model. */
static int validate(struct store_obj *const *objs, size_t n, char *err, size_t errlen)
{
    size_t len = 64, off;
    for (size_t i = 0; i < n; i++)
        len += strlen(objs[i]->json) + 1;
    char *buf = malloc(len);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    off = (size_t)sprintf(buf, "{\"kind\":\"List\",\"items\":[");
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(objs[i]->json);
        if (i)
            buf[off++] = ',';
        memcpy(buf + off, objs[i]->json, l);
        off += l;
    }
    memcpy(buf + off, "]}", 3);
    off += 2;
    struct model_set *set = model_load_buffer("the store with this change", buf, off, err, errlen);
    free(buf);
    if (!set)
        return -EINVAL;
    model_set_free(set);
    return 0;
}

/* spec.targetRef.name of a DestinationPolicy document ("" if absent). */
static const char *policy_target(const struct store_obj *o)
{
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(o->doc, "spec");
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(spec, "targetRef");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(ref, "name");
    return cJSON_IsString(name) ? name->valuestring : "";
}

/* The model's rule across objects, for the new DestinationPolicies in objs: no other
 * policy in the (sorted) candidate targets the same Service. */
static int check_policy_targets(struct store_obj *const *cand, size_t cn,
                                struct store_obj *const *objs, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (objs[i]->kind != MODEL_KIND_DESTINATION_POLICY)
            continue;
        const char *t = policy_target(objs[i]);
        for (size_t j = 0; j < cn; j++) {
            const struct store_obj *o = cand[j];
            if (o->kind != MODEL_KIND_DESTINATION_POLICY || o == objs[i] ||
                strcmp(o->ns, objs[i]->ns) != 0 || strcmp(o->name, objs[i]->name) == 0 ||
                strcmp(policy_target(o), t) != 0)
                continue;
            snprintf(err, errlen,
                     "DestinationPolicy %s/%s: spec.targetRef: Service %s/%s already has "
                     "DestinationPolicy %s/%s",
                     objs[i]->ns, objs[i]->name, o->ns, t, o->ns, o->name);
            return -EINVAL;
        }
    }
    return 0;
}

/* Appends a commit's changes (keys taken over) to the ring. Without the ring (out of
 * memory), or when an entry is missing (its strdup failed), the floor moves to rev, so
 * streams diff the whole kind instead of trusting an incomplete log. */
static void log_changes(struct store *s, struct store_change *chg, size_t n, uint64_t rev)
{
    bool whole = !chg;
    if (!s->log && !(s->log = calloc(STORE_LOG_SIZE, sizeof(*s->log))))
        whole = true;
    for (size_t i = 0; chg && i < n; i++) {
        if (!chg[i].key || !s->log) {
            whole = true;
            free(chg[i].key);
            continue;
        }
        struct store_change *slot = &s->log[s->log_head];
        if (slot->key) { /* evicted: changes after its revision are no longer all here */
            if (slot->rev > s->log_floor)
                s->log_floor = slot->rev;
            free(slot->key);
        }
        *slot = chg[i];
        s->log_head = (s->log_head + 1) % STORE_LOG_SIZE;
        if (s->log_len < STORE_LOG_SIZE)
            s->log_len++;
    }
    if (whole)
        s->log_floor = rev;
}

int store_commit(struct store *s, enum store_mode mode, struct store_obj **objs, size_t n,
                 enum store_action *actions, bool *changed, char *err, size_t errlen)
{
    size_t cap = (mode == STORE_REPLACE ? 0 : s->n) + n + 1, cn = 0;
    struct store_obj **cand = malloc(cap * sizeof(*cand));
    bool *reused = NULL; /* reused[i]: the candidate keeps s->objs[i] */
    uint64_t rev = s->revision + 1;
    bool kchanged[MODEL_KIND_COUNT] = {false};
    struct store_change *chg = calloc(n + (mode == STORE_REPLACE ? s->n : 0) + 1, sizeof(*chg));
    size_t nchg = 0;
    int rc = 0;

    *changed = false;
    reused = calloc(s->n + 1, sizeof(*reused));
    if (!cand || !reused) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }

    /* Later copies of one key in objs win (kubectl apply does the same within a file). */
    if (mode == STORE_DELETE) {
        for (size_t i = 0; i < n; i++) {
            if (!store_find(s, objs[i]->kind, objs[i]->ns, objs[i]->name)) {
                snprintf(err, errlen, "%s %s/%s not found", model_kind_str(objs[i]->kind),
                         objs[i]->ns, objs[i]->name);
                rc = -ENOENT;
                goto fail;
            }
        }
        for (size_t i = 0; i < s->n; i++) {
            bool del = false;
            for (size_t j = 0; j < n && !del; j++)
                del = !obj_cmp(&s->objs[i], &objs[j]);
            if (!del) {
                cand[cn++] = s->objs[i];
                reused[i] = true;
            }
        }
        for (size_t j = 0; j < n; j++) {
            if (actions)
                actions[j] = STORE_DELETED;
            kchanged[objs[j]->kind] = true;
            if (chg) { /* a delete names kind, namespace and name only */
                char *k = malloc(strlen(objs[j]->ns) + strlen(objs[j]->name) + 2);
                if (k)
                    sprintf(k, "%s/%s", objs[j]->ns, objs[j]->name);
                chg[nchg++] = (struct store_change){rev, objs[j]->kind, k};
            }
        }
        *changed = n > 0;
    } else {
        /* sort the new objects (stable: the last copy of a key is kept) */
        for (size_t i = 0; i < n; i++) {
            struct store_obj *o = objs[i];
            struct store_obj *old = store_find(s, o->kind, o->ns, o->name);
            bool later = false;
            for (size_t j = i + 1; j < n && !later; j++)
                later = !obj_cmp(&objs[i], &objs[j]);
            if (actions)
                actions[i] = !old ? STORE_CREATED
                             : strcmp(old->json, o->json) ? STORE_CONFIGURED
                                                          : STORE_UNCHANGED;
            if (later)
                continue;
            if (old && !strcmp(old->json, o->json)) {
                o->version = old->version;
                if (!o->file && old->file && mode == STORE_MERGE) {
                    /* applied unchanged through the API: it stays where it was */
                    o->file = strdup(old->file);
                }
            } else {
                o->version = rev;
                *changed = true;
                kchanged[o->kind] = true;
                if (chg)
                    chg[nchg++] = (struct store_change){rev, o->kind, strdup(o->key)};
            }
            cand[cn++] = o;
        }
        if (mode == STORE_MERGE) {
            for (size_t i = 0; i < s->n; i++) {
                bool replaced = false;
                for (size_t j = 0; j < n && !replaced; j++)
                    replaced = !obj_cmp(&s->objs[i], &objs[j]);
                if (!replaced) {
                    cand[cn++] = s->objs[i];
                    reused[i] = true;
                }
            }
        }
    }
    qsort(cand, cn, sizeof(*cand), obj_cmp);
    if (mode == STORE_REPLACE) { /* removals: the old objects the sorted candidate lacks */
        for (size_t i = 0; i < s->n; i++)
            if (!bsearch(&s->objs[i], cand, cn, sizeof(*cand), obj_cmp)) {
                *changed = true;
                kchanged[s->objs[i]->kind] = true;
                if (chg)
                    chg[nchg++] =
                        (struct store_change){rev, s->objs[i]->kind, strdup(s->objs[i]->key)};
            }
    }
    /* A directory reload validates the whole set with the model. An API change needs less:
     * its objects were each validated by store_parse, the store keeps keys unique, and the
     * model's one rule across objects is one DestinationPolicy per Service (a delete cannot
     * break it). At 10k Services the whole set took about 2 s per apply. */
    if (mode == STORE_REPLACE ? (rc = validate(cand, cn, err, errlen))
        : mode == STORE_MERGE ? (rc = check_policy_targets(cand, cn, objs, n, err, errlen))
                              : 0) {
        *changed = false;
        goto fail;
    }

    /* success: free what the candidate dropped, take it */
    for (size_t i = 0; i < s->n; i++)
        if (!reused[i])
            store_obj_free(s->objs[i]);
    if (mode == STORE_DELETE) {
        for (size_t j = 0; j < n; j++)
            store_obj_free(objs[j]);
    } else {
        for (size_t i = 0; i < n; i++) { /* superseded duplicates within objs */
            bool in = false;
            for (size_t j = 0; j < cn && !in; j++)
                in = cand[j] == objs[i];
            if (!in)
                store_obj_free(objs[i]);
        }
    }
    free(s->objs);
    s->objs = cand;
    s->n = cn;
    s->cap = cap;
    if (*changed) {
        s->revision = rev;
        for (int k = 0; k < MODEL_KIND_COUNT; k++)
            if (kchanged[k])
                s->kind_rev[k] = rev;
        log_changes(s, chg, nchg, rev);
    }
    free(chg);
    free(reused);
    return 0;

fail:
    for (size_t i = 0; i < n; i++)
        store_obj_free(objs[i]);
    for (size_t i = 0; chg && i < nchg; i++)
        free(chg[i].key);
    free(chg);
    free(cand);
    free(reused);
    return rc;
}

int store_obj_filename(const struct store_obj *o, char *out, size_t outlen)
{
    const char *k = model_kind_str(o->kind);
    size_t kl = strlen(k);
    int n = snprintf(out, outlen, "%s-%s-%s.json", k, o->ns, o->name);
    if (n < 0 || (size_t)n >= outlen)
        return -ENAMETOOLONG;
    for (size_t i = 0; i < kl; i++)
        out[i] = (char)tolower((unsigned char)out[i]);
    return 0;
}
