/*
 * router_filter.c - the HTTPRoute filters as pure transforms (router.h): header
 * set/add/remove on a caller-owned header list, the RequestRedirect Location, URLRewrite
 * paths (ReplaceFullPath, ReplacePrefixMatch) and the RequestMirror draw.
 *
 * No allocation and no state: every function writes only the caller's list or buffer, so
 * any thread may call them. Header entries that filters add point at strings the table
 * borrows from the model set, valid as long as the snapshot.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "router_internal.h"

/* ---- header lists ---- */

static bool name_is(const struct router_header *h, const char *name, size_t len)
{
    return h->name_len == len && router_ieq(h->name, name, len);
}

const struct router_header *router_headers_get(const struct router_headers *h, const char *name,
                                               size_t name_len)
{
    for (size_t i = 0; i < h->n; i++)
        if (name_is(&h->v[i], name, name_len))
            return &h->v[i];
    return NULL;
}

size_t router_headers_remove(struct router_headers *h, const char *name, size_t name_len)
{
    size_t w = 0, removed = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (name_is(&h->v[i], name, name_len)) {
            removed++;
            continue;
        }
        h->v[w++] = h->v[i];
    }
    h->n = w;
    return removed;
}

int router_headers_add(struct router_headers *h, const char *name, size_t name_len,
                       const char *value, size_t value_len)
{
    if (h->n >= h->cap)
        return -ENOSPC;
    /* After the last field of that name, so the values stay in order as a list; at the end
     * when there is none. */
    size_t at = h->n;
    for (size_t i = h->n; i-- > 0;)
        if (name_is(&h->v[i], name, name_len)) {
            at = i + 1;
            break;
        }
    memmove(&h->v[at + 1], &h->v[at], (h->n - at) * sizeof(*h->v));
    h->v[at] = (struct router_header){name, name_len, value, value_len};
    h->n++;
    return 0;
}

int router_headers_set(struct router_headers *h, const char *name, size_t name_len,
                       const char *value, size_t value_len)
{
    for (size_t i = 0; i < h->n; i++) {
        if (!name_is(&h->v[i], name, name_len))
            continue;
        h->v[i].value = value;
        h->v[i].value_len = value_len;
        /* Later fields of the name go: "set" leaves exactly one. */
        size_t w = i + 1;
        for (size_t j = i + 1; j < h->n; j++)
            if (!name_is(&h->v[j], name, name_len))
                h->v[w++] = h->v[j];
        h->n = w;
        return 0;
    }
    if (h->n >= h->cap)
        return -ENOSPC;
    h->v[h->n++] = (struct router_header){name, name_len, value, value_len};
    return 0;
}

int router_header_mod_apply(struct router_headers *h, const struct model_header_mod *mod)
{
    if (!mod)
        return 0;
    if (h->n > h->cap || mod->n_set + mod->n_add > h->cap - h->n)
        return -ENOSPC;
    for (size_t i = 0; i < mod->n_set; i++)
        router_headers_set(h, mod->set[i].key, strlen(mod->set[i].key), mod->set[i].value,
                           strlen(mod->set[i].value));
    for (size_t i = 0; i < mod->n_add; i++)
        router_headers_add(h, mod->add[i].key, strlen(mod->add[i].key), mod->add[i].value,
                           strlen(mod->add[i].value));
    for (size_t i = 0; i < mod->n_remove; i++)
        router_headers_remove(h, mod->remove[i], strlen(mod->remove[i]));
    return 0;
}

/* ---- paths ---- */

/* A bounded writer: every put checks room; ok stays false after the first overflow. */
struct out {
    char *p;
    size_t len;
    size_t cap;
    bool ok;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (!o->ok || o->cap - o->len <= n) { /* keep one byte for the NUL */
        o->ok = false;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static ssize_t finish(struct out *o)
{
    if (!o->ok)
        return -ENOSPC;
    o->p[o->len] = 0;
    return (ssize_t)o->len;
}

/* Writes the rewritten path (no query) of path[0..len). */
static void put_path(struct out *o, enum model_path_rewrite type, const char *value,
                     const char *prefix, const char *path, size_t len)
{
    if (type == MODEL_REWRITE_FULL) {
        put(o, value, strlen(value));
        return;
    }
    if (type != MODEL_REWRITE_PREFIX || !prefix) {
        put(o, path, len);
        return;
    }
    size_t pl = strlen(prefix);
    while (pl && prefix[pl - 1] == '/')
        pl--;
    /* Not under the prefix (only possible when called by hand): unchanged. */
    if (len < pl || memcmp(path, prefix, pl) || (len > pl && path[pl] != '/')) {
        put(o, path, len);
        return;
    }
    const char *rest = path + pl;
    size_t rest_len = len - pl;
    /* Under the root prefix, "/" itself is the whole prefix. */
    if (pl == 0 && rest_len == 1)
        rest_len = 0;
    size_t vl = strlen(value);
    if (rest_len == 0) {
        /* The whole path was the prefix: the replacement as written, "/" for an empty one. */
        if (vl)
            put(o, value, vl);
        else
            put(o, "/", 1);
        return;
    }
    while (vl && value[vl - 1] == '/')
        vl--;
    put(o, value, vl);
    put(o, rest, rest_len);
}

ssize_t router_path_rewrite(enum model_path_rewrite type, const char *value, const char *prefix,
                            const char *path, size_t path_len, char *out, size_t outlen)
{
    struct out o = {out, 0, outlen, outlen > 0};
    const char *qm = memchr(path, '?', path_len);
    size_t plen = qm ? (size_t)(qm - path) : path_len;
    put_path(&o, type, value, prefix, path, plen);
    if (qm)
        put(&o, qm, path_len - plen);
    return finish(&o);
}

/* The PathPrefix value that matched, for ReplacePrefixMatch (the model guarantees a rule
 * using it has exactly one match, a PathPrefix). */
static const char *matched_prefix(const struct router_result *res)
{
    if (res->match && res->match->path_type == MODEL_PATH_PREFIX)
        return res->match->path;
    return NULL;
}

ssize_t router_rewrite_path(const struct router_result *res, const struct router_request *req,
                            char *out, size_t outlen)
{
    const struct model_rewrite *rw = res->rule ? res->rule->rewrite : NULL;
    return router_path_rewrite(rw ? rw->path_type : MODEL_REWRITE_NONE, rw ? rw->path : NULL,
                               matched_prefix(res), req->path ? req->path : "", req->path_len, out,
                               outlen);
}

ssize_t router_redirect_location(const struct router_result *res, const struct router_request *req,
                                 const char *req_scheme, uint16_t listener_port, char *out,
                                 size_t outlen)
{
    const struct model_redirect *r = res->rule ? res->rule->redirect : NULL;
    if (!r)
        return -EINVAL;
    struct out o = {out, 0, outlen, outlen > 0};
    const char *scheme = r->scheme ? r->scheme : req_scheme ? req_scheme : "http";
    uint16_t port = r->port     ? r->port
                    : r->scheme ? (strcmp(r->scheme, "https") ? 80 : 443)
                                : listener_port;
    put(&o, scheme, strlen(scheme));
    put(&o, "://", 3);
    if (r->hostname) {
        put(&o, r->hostname, strlen(r->hostname));
    } else {
        const char *host = "", *ps;
        size_t hl = 0, pl;
        if (req->authority)
            router_split_authority(req->authority, req->authority_len, &host, &hl, &ps, &pl);
        put(&o, host, hl);
    }
    bool default_port =
        (port == 80 && !strcmp(scheme, "http")) || (port == 443 && !strcmp(scheme, "https"));
    if (port && !default_port) {
        char buf[8];
        int n = snprintf(buf, sizeof(buf), ":%u", (unsigned)port);
        put(&o, buf, (size_t)n);
    }
    const char *path = req->path ? req->path : "";
    size_t path_len = req->path_len;
    const char *qm = memchr(path, '?', path_len);
    size_t plen = qm ? (size_t)(qm - path) : path_len;
    put_path(&o, r->path_type, r->path, matched_prefix(res), path, plen);
    if (qm)
        put(&o, qm, path_len - plen);
    return finish(&o);
}

bool router_mirror_selected(const struct router_mirror *m, uint64_t rnd)
{
    if (!m->target || m->src->numerator == 0 || m->src->denominator == 0)
        return false;
    if (m->src->numerator >= m->src->denominator)
        return true;
    return rnd % m->src->denominator < m->src->numerator;
}
