/*
 * delta.c - see delta.h. The held set of a type is a cJSON object keyed by resource name
 * ("<ns>/<name>"), each value {"version":V,"resource":{the model object}}; a candidate is
 * a deep copy of it with the response applied, so a rejected response costs a copy and
 * changes nothing. Lookups in a cJSON object are linear: a response of k resources on a
 * type holding n costs O(k*n) string compares (known limit; fine at thousands, a hash
 * table when a mesh holds tens of thousands of slices).
 */
#include "delta.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static const char *const type_urls[XDS_T_COUNT] = {
    "v1/Service",
    "ringmesh.io/v1alpha1/DestinationPolicy",
    "discovery.k8s.io/v1/EndpointSlice",
    "gateway.networking.k8s.io/v1/HTTPRoute",
    "ringmesh.io/v1alpha1/AuthorizationPolicy",
    "ringmesh.io/v1alpha1/PeerAuthentication",
};

const char *xds_type_url(int type)
{
    return type >= 0 && type < XDS_T_COUNT ? type_urls[type] : NULL;
}

int xds_type_index(const char *type_url)
{
    for (int i = 0; type_url && i < XDS_T_COUNT; i++)
        if (strcmp(type_urls[i], type_url) == 0)
            return i;
    return -1;
}

int xds_delta_init(struct xds_delta *d)
{
    memset(d, 0, sizeof(*d));
    for (int t = 0; t < XDS_T_COUNT; t++) {
        if (!(d->held[t] = cJSON_CreateObject())) {
            xds_delta_free(d);
            return -ENOMEM;
        }
    }
    return 0;
}

void xds_delta_free(struct xds_delta *d)
{
    for (int t = 0; t < XDS_T_COUNT; t++) {
        cJSON_Delete(d->held[t]);
        d->held[t] = NULL;
    }
}

bool xds_delta_is_warm(const struct xds_delta *d)
{
    for (int t = 0; t < XDS_T_COUNT; t++)
        if (!d->received[t])
            return false;
    return true;
}

size_t xds_delta_count(const struct xds_delta *d, int type)
{
    return type >= 0 && type < XDS_T_COUNT ? (size_t)cJSON_GetArraySize(d->held[type]) : 0;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void copy_str(char *dst, size_t cap, const cJSON *v)
{
    snprintf(dst, cap, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

/* Checks that obj is a model object of the type's kind whose metadata gives back name
 * ("<ns>/<name>", namespace "default" when absent). NULL or what is wrong. */
static const char *check_resource(int type, const char *name, const cJSON *obj, char *why,
                                  size_t cap)
{
    const cJSON *api = cJSON_GetObjectItemCaseSensitive(obj, "apiVersion");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(obj, "kind");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(meta, "name");
    const cJSON *mns = cJSON_GetObjectItemCaseSensitive(meta, "namespace");
    char have[512];
    if (!cJSON_IsString(api) || !cJSON_IsString(kind)) {
        seterr(why, cap, "resource %s: no apiVersion and kind", name);
        return why;
    }
    snprintf(have, sizeof(have), "%s/%s", api->valuestring, kind->valuestring);
    if (strcmp(have, type_urls[type]) != 0) {
        seterr(why, cap, "resource %s: a %s in a %s response", name, have, type_urls[type]);
        return why;
    }
    snprintf(have, sizeof(have), "%s/%s",
             cJSON_IsString(mns) && *mns->valuestring ? mns->valuestring : "default",
             cJSON_IsString(mn) ? mn->valuestring : "");
    if (strcmp(have, name) != 0) {
        seterr(why, cap, "resource %s: its metadata names %s", name, have);
        return why;
    }
    return NULL;
}

/* The candidate held set for type after the response's resources/removed (arrays or
 * NULL). NULL with err when the response is malformed or memory ran out. */
static cJSON *candidate(const struct xds_delta *d, int type, const cJSON *resources,
                        const cJSON *removed, char *err, size_t errlen, size_t *n_up, size_t *n_rm)
{
    cJSON *cand = cJSON_Duplicate(d->held[type], 1), *seen = cJSON_CreateObject();
    const cJSON *r;
    char why[512];
    if (!cand || !seen) {
        seterr(err, errlen, "out of memory");
        goto fail;
    }
    if ((resources && !cJSON_IsArray(resources)) || (removed && !cJSON_IsArray(removed))) {
        seterr(err, errlen, "%s must be an array",
               resources && !cJSON_IsArray(resources) ? "resources" : "removed_resources");
        goto fail;
    }
    cJSON_ArrayForEach(r, resources)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(r, "name");
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(r, "version");
        const cJSON *obj = cJSON_GetObjectItemCaseSensitive(r, "resource");
        cJSON *entry;
        if (!cJSON_IsString(name) || !*name->valuestring) {
            seterr(err, errlen, "resources[%zu]: no name", *n_up);
            goto fail;
        }
        if (cJSON_GetObjectItemCaseSensitive(seen, name->valuestring)) {
            seterr(err, errlen, "resource %s: twice in one response", name->valuestring);
            goto fail;
        }
        if (!cJSON_IsObject(obj)) {
            seterr(err, errlen, "resource %s: no resource object", name->valuestring);
            goto fail;
        }
        if (check_resource(type, name->valuestring, obj, why, sizeof(why))) {
            seterr(err, errlen, "%s", why);
            goto fail;
        }
        if (!cJSON_AddTrueToObject(seen, name->valuestring) || !(entry = cJSON_CreateObject()) ||
            !cJSON_AddStringToObject(entry, "version",
                                     cJSON_IsString(ver) ? ver->valuestring : "")) {
            seterr(err, errlen, "out of memory");
            goto fail;
        }
        cJSON *copy = cJSON_Duplicate(obj, 1);
        if (!copy) {
            cJSON_Delete(entry);
            seterr(err, errlen, "out of memory");
            goto fail;
        }
        cJSON_AddItemToObject(entry, "resource", copy);
        if (cJSON_GetObjectItemCaseSensitive(cand, name->valuestring))
            cJSON_ReplaceItemInObjectCaseSensitive(cand, name->valuestring, entry);
        else
            cJSON_AddItemToObject(cand, name->valuestring, entry);
        (*n_up)++;
    }
    cJSON_ArrayForEach(r, removed)
    {
        if (!cJSON_IsString(r)) {
            seterr(err, errlen, "removed_resources[%zu]: not a name", *n_rm);
            goto fail;
        }
        if (cJSON_GetObjectItemCaseSensitive(seen, r->valuestring)) {
            seterr(err, errlen, "resource %s: both updated and removed in one response",
                   r->valuestring);
            goto fail;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(cand, r->valuestring);
        (*n_rm)++;
    }
    cJSON_Delete(seen);
    return cand;
fail:
    cJSON_Delete(seen);
    cJSON_Delete(cand);
    return NULL;
}

/* The model List of every held type, with cand standing in for type's held set (cand may
 * be NULL: the held sets as they are). Items are references: nothing is copied. */
static char *render(const struct xds_delta *d, int type, const cJSON *cand, size_t *len)
{
    cJSON *root = cJSON_CreateObject(), *items;
    char *out = NULL;
    if (!root || !cJSON_AddStringToObject(root, "kind", "List") ||
        !(items = cJSON_AddArrayToObject(root, "items")))
        goto out;
    for (int t = 0; t < XDS_T_COUNT; t++) {
        const cJSON *set = t == type && cand ? cand : d->held[t], *e;
        cJSON_ArrayForEach(e, set)
        {
            if (!cJSON_AddItemReferenceToArray(items,
                                               cJSON_GetObjectItemCaseSensitive(e, "resource")))
                goto out;
        }
    }
    out = cJSON_PrintUnformatted(root);
    if (out && len)
        *len = strlen(out);
out:
    cJSON_Delete(root);
    return out;
}

char *xds_delta_render(const struct xds_delta *d, size_t *len)
{
    return render(d, -1, NULL, len);
}

/* {"type_url":T,"response_nonce":N[,"error_detail":{"code":3,"message":M}]}\n */
/* o as one compact JSON line ("...\n", NUL-terminated; *len counts the newline), and o
 * deleted; NULL when out of memory. */
static char *to_line(cJSON *o, size_t *len)
{
    char *s = cJSON_PrintUnformatted(o), *line = NULL;
    cJSON_Delete(o);
    if (!s)
        return NULL;
    *len = strlen(s) + 1;
    if ((line = malloc(*len + 1))) {
        memcpy(line, s, *len - 1);
        line[*len - 1] = '\n';
        line[*len] = 0;
    }
    free(s);
    return line;
}

static char *reply_line(const char *type_url, const char *nonce, const char *error, size_t *len)
{
    cJSON *o = cJSON_CreateObject(), *ed;
    if (!o || !cJSON_AddStringToObject(o, "type_url", type_url) ||
        !cJSON_AddStringToObject(o, "response_nonce", nonce))
        goto out;
    if (error) {
        /* 3 = google.rpc.Code INVALID_ARGUMENT, as Envoy NACKs a config it rejected */
        if (!(ed = cJSON_AddObjectToObject(o, "error_detail")) ||
            !cJSON_AddNumberToObject(ed, "code", 3) ||
            !cJSON_AddStringToObject(ed, "message", error))
            goto out;
    }
    return to_line(o, len);
out:
    cJSON_Delete(o);
    return NULL;
}

int xds_delta_handle(struct xds_delta *d, const char *line, size_t len, xds_apply_cb apply,
                     void *arg, struct xds_delta_result *res)
{
    cJSON *root, *cand = NULL;
    const cJSON *type_url, *nonce;
    char *model = NULL;
    size_t mlen = 0;
    memset(res, 0, sizeof(*res));
    res->type = -1;
    root = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(root)) {
        res->verdict = XDS_ERROR;
        seterr(res->error, sizeof(res->error), "a response line that is not a JSON object");
        cJSON_Delete(root);
        return res->verdict;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    type_url = cJSON_GetObjectItemCaseSensitive(root, "type_url");
    nonce = cJSON_GetObjectItemCaseSensitive(root, "nonce");
    if (e || !cJSON_IsString(nonce) || !*nonce->valuestring || !cJSON_IsString(type_url)) {
        res->verdict = XDS_ERROR;
        if (e)
            seterr(res->error, sizeof(res->error), "the server ended the stream: %s",
                   cJSON_IsString(e) ? e->valuestring : "(no message)");
        else
            seterr(res->error, sizeof(res->error), "a response without %s",
                   cJSON_IsString(type_url) ? "a nonce" : "a type_url");
        cJSON_Delete(root);
        return res->verdict;
    }
    copy_str(res->nonce, sizeof(res->nonce), nonce);
    copy_str(res->system_version, sizeof(res->system_version),
             cJSON_GetObjectItemCaseSensitive(root, "system_version_info"));
    res->type = xds_type_index(type_url->valuestring);
    if (res->type < 0) {
        /* Answered (every response is, once) but never applied: we did not subscribe. */
        seterr(res->error, sizeof(res->error), "type_url %s: not subscribed; ignored",
               type_url->valuestring);
        goto nack;
    }
    cand = candidate(d, res->type, cJSON_GetObjectItemCaseSensitive(root, "resources"),
                     cJSON_GetObjectItemCaseSensitive(root, "removed_resources"), res->error,
                     sizeof(res->error), &res->n_updated, &res->n_removed);
    if (!cand)
        goto nack;
    if (!(model = render(d, res->type, cand, &mlen))) {
        seterr(res->error, sizeof(res->error), "out of memory");
        goto nack;
    }
    /* A warm state and a response that carries nothing: the running snapshot already is
     * this set; do not compile and publish the same thing again (a resumed stream answers
     * each type, mostly with nothing). */
    if (xds_delta_is_warm(d) && res->n_updated == 0 && res->n_removed == 0)
        goto commit;
    /* warm once this response is in: every other type received, and this one now */
    bool warm = true;
    for (int t = 0; t < XDS_T_COUNT; t++)
        if (t != res->type && !d->received[t])
            warm = false;
    res->error[0] = 0;
    if (apply(arg, model, mlen, warm, res->error, sizeof(res->error)) != 0) {
        if (!res->error[0])
            seterr(res->error, sizeof(res->error), "rejected");
        goto nack;
    }
commit:
    cJSON_Delete(d->held[res->type]);
    d->held[res->type] = cand;
    cand = NULL;
    d->received[res->type] = true;
    snprintf(d->acked_version[res->type], XDS_VERSION_MAX, "%s", res->system_version);
    snprintf(d->acked_nonce[res->type], XDS_VERSION_MAX, "%s", res->nonce);
    res->verdict = XDS_ACK;
    res->reply = reply_line(type_url->valuestring, res->nonce, NULL, &res->reply_len);
    goto out;
nack:
    res->verdict = XDS_NACK;
    res->reply = reply_line(type_url->valuestring, res->nonce, res->error, &res->reply_len);
out:
    free(model);
    cJSON_Delete(cand);
    cJSON_Delete(root);
    return res->reply ? (int)res->verdict : -ENOMEM;
}

void xds_delta_result_free(struct xds_delta_result *res)
{
    free(res->reply);
    res->reply = NULL;
}

char *xds_delta_subscribe_line(const struct xds_delta *d, int type, const char *node_json,
                               bool resume, size_t *len)
{
    cJSON *o = cJSON_CreateObject(), *sub, *node = NULL;
    if (!o || type < 0 || type >= XDS_T_COUNT)
        goto out;
    if (node_json) {
        node = cJSON_Parse(node_json);
        if (!cJSON_IsObject(node)) {
            cJSON_Delete(node);
            goto out;
        }
        cJSON_AddItemToObject(o, "node", node);
    }
    if (!cJSON_AddStringToObject(o, "type_url", type_urls[type]) ||
        !(sub = cJSON_AddArrayToObject(o, "resource_names_subscribe")))
        goto out;
    cJSON_AddItemToArray(sub, cJSON_CreateString("*"));
    if (resume && cJSON_GetArraySize(d->held[type]) > 0) {
        cJSON *irv = cJSON_AddObjectToObject(o, "initial_resource_versions"), *e;
        if (!irv)
            goto out;
        cJSON_ArrayForEach(e, d->held[type])
        {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "version");
            if (!cJSON_AddStringToObject(irv, e->string, cJSON_IsString(v) ? v->valuestring : ""))
                goto out;
        }
    }
    return to_line(o, len);
out:
    cJSON_Delete(o);
    return NULL;
}

char *xds_delta_cache(const struct xds_delta *d, size_t *len)
{
    cJSON *root = cJSON_CreateObject(), *types;
    char *out = NULL;
    if (!root || !cJSON_AddNumberToObject(root, "ringmesh_xds_cache", 1) ||
        !(types = cJSON_AddObjectToObject(root, "types")))
        goto out;
    for (int t = 0; t < XDS_T_COUNT; t++) {
        cJSON *ref = cJSON_CreateObjectReference(d->held[t]->child);
        if (!ref)
            goto out;
        cJSON_AddItemToObject(types, type_urls[t], ref);
    }
    out = cJSON_PrintUnformatted(root);
    if (out && len)
        *len = strlen(out);
out:
    cJSON_Delete(root);
    return out;
}

int xds_delta_load_cache(struct xds_delta *d, const char *buf, size_t len, char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(buf, len), *held[XDS_T_COUNT] = {0};
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(root, "types"), *tv;
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "ringmesh_xds_cache");
    int rc = -EINVAL;
    if (!cJSON_IsObject(root) || !cJSON_IsNumber(ver) || ver->valueint != 1 ||
        !cJSON_IsObject(types)) {
        seterr(err, errlen, "not a ringmesh xDS cache (version 1)");
        goto out;
    }
    cJSON_ArrayForEach(tv, types)
    {
        int t = xds_type_index(tv->string);
        const cJSON *e;
        if (t < 0) {
            seterr(err, errlen, "types: unknown type URL %s", tv->string);
            goto out;
        }
        if (!cJSON_IsObject(tv)) {
            seterr(err, errlen, "types.%s: not an object", tv->string);
            goto out;
        }
        cJSON_ArrayForEach(e, tv)
        {
            char why[512];
            const cJSON *obj = cJSON_GetObjectItemCaseSensitive(e, "resource");
            if (!cJSON_IsObject(obj) ||
                !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "version"))) {
                seterr(err, errlen, "types.%s.%s: want {version, resource}", tv->string, e->string);
                goto out;
            }
            if (check_resource(t, e->string, obj, why, sizeof(why))) {
                seterr(err, errlen, "types.%s: %s", tv->string, why);
                goto out;
            }
        }
        cJSON_Delete(held[t]);
        if (!(held[t] = cJSON_Duplicate(tv, 1))) {
            seterr(err, errlen, "out of memory");
            rc = -ENOMEM;
            goto out;
        }
    }
    for (int t = 0; t < XDS_T_COUNT; t++) {
        if (!held[t] && !(held[t] = cJSON_CreateObject())) {
            seterr(err, errlen, "out of memory");
            rc = -ENOMEM;
            goto out;
        }
    }
    for (int t = 0; t < XDS_T_COUNT; t++) {
        cJSON_Delete(d->held[t]);
        d->held[t] = held[t];
        held[t] = NULL;
        d->received[t] = true;
        d->acked_version[t][0] = d->acked_nonce[t][0] = 0;
    }
    rc = 0;
out:
    for (int t = 0; t < XDS_T_COUNT; t++)
        cJSON_Delete(held[t]);
    cJSON_Delete(root);
    return rc;
}
