/*
 * server_delta.c - see server_delta.h.
 */
#include "server_delta.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* ---- map: linear probing, deletion by backward shift (no tombstones) ---- */

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

static size_t slot(const struct delta_map *m, const char *key)
{
    size_t i = (size_t)hash(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key))
        i = (i + 1) & (m->cap - 1);
    return i;
}

bool delta_map_get(const struct delta_map *m, const char *key, uint64_t *val)
{
    if (!m->cap)
        return false;
    size_t i = slot(m, key);
    if (!m->keys[i])
        return false;
    if (val)
        *val = m->vals[i];
    return true;
}

static int grow(struct delta_map *m)
{
    size_t nc = m->cap ? m->cap * 2 : 16;
    struct delta_map n = {calloc(nc, sizeof(char *)), calloc(nc, sizeof(uint64_t)), 0, nc};
    if (!n.keys || !n.vals) {
        free(n.keys);
        free(n.vals);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = slot(&n, m->keys[i]);
        n.keys[j] = m->keys[i];
        n.vals[j] = m->vals[i];
        n.n++;
    }
    free(m->keys);
    free(m->vals);
    *m = n;
    return 0;
}

int delta_map_put(struct delta_map *m, const char *key, uint64_t val)
{
    if ((m->n + 1) * 4 > m->cap * 3 && grow(m))
        return -ENOMEM;
    size_t i = slot(m, key);
    if (!m->keys[i]) {
        if (!(m->keys[i] = strdup(key)))
            return -ENOMEM;
        m->n++;
    }
    m->vals[i] = val;
    return 0;
}

void delta_map_del(struct delta_map *m, const char *key)
{
    if (!m->cap)
        return;
    size_t i = slot(m, key), j = i;
    if (!m->keys[i])
        return;
    free(m->keys[i]);
    m->keys[i] = NULL;
    m->n--;
    /* shift back every entry of the cluster that no longer sits where it would be found */
    for (;;) {
        j = (j + 1) & (m->cap - 1);
        if (!m->keys[j])
            return;
        size_t home = (size_t)hash(m->keys[j]) & (m->cap - 1);
        bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            m->keys[j] = NULL;
            i = j;
        }
    }
}

void delta_map_free(struct delta_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

/* ---- type state ---- */

void delta_type_init(struct delta_type *t, enum model_kind kind)
{
    memset(t, 0, sizeof(*t));
    t->kind = kind;
}

void delta_type_free(struct delta_type *t)
{
    delta_map_free(&t->names);
    delta_map_free(&t->held);
    free(t->last_nack.message);
    memset(t, 0, sizeof(*t));
}

/* A client's version string: ours are decimal store revisions >= 1; anything else can
 * match nothing, so the object is sent again. */
static uint64_t parse_version(const char *s)
{
    uint64_t v = 0;
    if (!s || !*s)
        return UINT64_MAX;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > UINT64_MAX / 10 - 10)
            return UINT64_MAX;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    return v ? v : UINT64_MAX;
}

int delta_request(struct delta_type *t, const struct delta_req *r, int64_t now_s,
                  enum delta_ack *ack, char *err, size_t errlen)
{
    *ack = DELTA_NONE;
    if (r->n_initial && t->subscribed) {
        snprintf(err, errlen,
                 "initial_resource_versions: only on a type's first request of a stream");
        return -EPROTO;
    }
    if (!t->subscribed && r->n_subscribe == 0 && r->n_unsubscribe == 0)
        t->wildcard = true; /* legacy wildcard: a first request naming nothing */
    for (size_t i = 0; i < r->n_initial; i++)
        if (delta_map_put(&t->held, r->initial_names[i], parse_version(r->initial_versions[i])))
            goto oom;
    for (size_t i = 0; i < r->n_subscribe; i++) {
        if (!strcmp(r->subscribe[i], "*"))
            t->wildcard = true;
        else if (delta_map_put(&t->names, r->subscribe[i], 0))
            goto oom;
    }
    for (size_t i = 0; i < r->n_unsubscribe; i++) {
        if (!strcmp(r->unsubscribe[i], "*")) {
            t->wildcard = false;
            /* what only the wildcard covered is no longer the client's business */
            for (size_t j = 0; j < t->held.cap; j++) {
                while (t->held.keys[j] && !delta_map_get(&t->names, t->held.keys[j], NULL))
                    delta_map_del(&t->held, t->held.keys[j]);
            }
        } else {
            delta_map_del(&t->names, r->unsubscribe[i]);
            if (!t->wildcard)
                delta_map_del(&t->held, r->unsubscribe[i]);
        }
    }
    t->subscribed = true;
    if (r->n_subscribe || r->n_unsubscribe || r->n_initial)
        t->dirty = true;
    if (r->has_nonce) {
        if (!t->pending_nonce || r->nonce != t->pending_nonce) {
            *ack = DELTA_STALE;
        } else if (r->error) {
            *ack = DELTA_NACK;
            t->nacks++;
            free(t->last_nack.message);
            t->last_nack.message = strdup(r->error);
            t->last_nack.nonce = r->nonce;
            t->last_nack.at_s = now_s;
            t->pending_nonce = 0;
        } else {
            *ack = DELTA_ACK;
            t->acks++;
            t->acked_sysver = t->pending_sysver;
            t->pending_nonce = 0;
        }
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

static bool wants(const struct delta_type *t, const char *key)
{
    return t->wildcard || delta_map_get(&t->names, key, NULL);
}

void delta_resp_free(struct delta_resp *r)
{
    for (size_t i = 0; i < r->n_removed; i++)
        free(r->removed[i]);
    free(r->removed);
    free(r->res);
    memset(r, 0, sizeof(*r));
}

static int add_removed(struct delta_resp *r, const char *key, size_t cap)
{
    if (r->n_removed == cap)
        return -ENOMEM;
    if (!(r->removed[r->n_removed] = strdup(key)))
        return -ENOMEM;
    r->n_removed++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The object named "<ns>/<name>" of kind k, or NULL. */
static struct store_obj *store_get(const struct store *s, enum model_kind k, const char *key)
{
    const char *slash = strchr(key, '/');
    char ns[254];
    if (!slash || (size_t)(slash - key) >= sizeof(ns))
        return NULL;
    memcpy(ns, key, (size_t)(slash - key));
    ns[slash - key] = 0;
    return store_find(s, k, ns, slash + 1);
}

static int cmp_obj(const void *a, const void *b)
{
    const struct store_obj *x = *(struct store_obj *const *)a, *y = *(struct store_obj *const *)b;
    int c = strcmp(x->ns, y->ns);
    return c ? c : strcmp(x->name, y->name);
}

/* delta_next from the store's change log: only the names changed after t->seen_rev (which
 * the log covers) are looked at. Same result as delta_next for a type whose subscription
 * did not change since it last looked. */
static int delta_next_logged(const struct delta_type *t, const struct store *s,
                             struct delta_resp *out)
{
    size_t m = 0, first = (s->log_head + STORE_LOG_SIZE - s->log_len) % STORE_LOG_SIZE;
    for (size_t i = 0; i < s->log_len; i++) {
        const struct store_change *c = &s->log[(first + i) % STORE_LOG_SIZE];
        m += c->kind == t->kind && c->rev > t->seen_rev;
    }
    memset(out, 0, sizeof(*out));
    out->res = malloc((m + 1) * sizeof(*out->res));
    out->removed = calloc(m + 1, sizeof(char *));
    if (!out->res || !out->removed)
        goto oom;
    for (size_t i = 0; i < s->log_len; i++) {
        const struct store_change *c = &s->log[(first + i) % STORE_LOG_SIZE];
        if (c->kind != t->kind || c->rev <= t->seen_rev || !wants(t, c->key))
            continue;
        struct store_obj *o = store_get(s, t->kind, c->key);
        uint64_t v;
        bool held = delta_map_get(&t->held, c->key, &v), dup = false;
        if (o) {
            if (held && v == o->version)
                continue;
            for (size_t j = 0; j < out->n_res && !dup; j++)
                dup = out->res[j] == o;
            if (!dup)
                out->res[out->n_res++] = o;
        } else if (held && v != DELTA_ABSENT) {
            for (size_t j = 0; j < out->n_removed && !dup; j++)
                dup = !strcmp(out->removed[j], c->key);
            if (!dup && add_removed(out, c->key, m + 1))
                goto oom;
        }
    }
    qsort(out->res, out->n_res, sizeof(*out->res), cmp_obj);
    qsort(out->removed, out->n_removed, sizeof(char *), cmp_str);
    if (out->n_res == 0 && out->n_removed == 0) {
        delta_resp_free(out);
        return 0;
    }
    return 1;
oom:
    delta_resp_free(out);
    return -ENOMEM;
}

/* Whether the store has the object named "<ns>/<name>" of kind k. */
static bool store_has(const struct store *s, enum model_kind k, const char *key)
{
    const char *slash = strchr(key, '/');
    char ns[254];
    if (!slash || (size_t)(slash - key) >= sizeof(ns))
        return false;
    memcpy(ns, key, (size_t)(slash - key));
    ns[slash - key] = 0;
    return store_find(s, k, ns, slash + 1) != NULL;
}


int delta_next(const struct delta_type *t, const struct store *s, struct delta_resp *out)
{
    struct store_obj **objs;
    size_t n = store_range(s, t->kind, &objs), cap;
    uint64_t v;

    memset(out, 0, sizeof(*out));
    if (!t->subscribed || t->pending_nonce)
        return 0;
    cap = t->held.n + t->names.n + 1;
    out->res = malloc((n + 1) * sizeof(*out->res));
    out->removed = calloc(cap, sizeof(char *));
    if (!out->res || !out->removed)
        goto oom;
    size_t matched = 0, live = 0; /* held names the store has; held names not ABSENT */
    for (size_t i = 0; i < n; i++) {
        if (!wants(t, objs[i]->key))
            continue;
        bool held = delta_map_get(&t->held, objs[i]->key, &v);
        matched += held && v != DELTA_ABSENT;
        if (!(held && v == objs[i]->version))
            out->res[out->n_res++] = objs[i];
    }
    for (size_t i = 0; i < t->held.cap; i++)
        live += t->held.keys[i] && t->held.vals[i] != DELTA_ABSENT;
    /* every name held was found above: nothing was removed (the usual case, and the
     * lookup of each held name in the store is what made a change cost O(held log n)) */
    for (size_t i = 0; matched < live && i < t->held.cap; i++) {
        const char *k = t->held.keys[i];
        if (k && t->held.vals[i] != DELTA_ABSENT && !store_has(s, t->kind, k) &&
            add_removed(out, k, cap))
            goto oom;
    }
    for (size_t i = 0; i < t->names.cap; i++) {
        const char *k = t->names.keys[i];
        if (k && !delta_map_get(&t->held, k, NULL) && !store_has(s, t->kind, k) &&
            add_removed(out, k, cap))
            goto oom;
    }
    qsort(out->removed, out->n_removed, sizeof(char *), cmp_str);
    if (out->n_res == 0 && out->n_removed == 0 && t->sent_first) {
        delta_resp_free(out);
        return 0;
    }
    return 1;
oom:
    delta_resp_free(out);
    return -ENOMEM;
}

int delta_next_if_due(struct delta_type *t, const struct store *s, struct delta_resp *out)
{
    uint64_t rev = s->kind_rev[t->kind];
    bool steady = t->subscribed && t->sent_first && !t->pending_nonce && !t->dirty;
    if (steady && t->seen_rev == rev) {
        memset(out, 0, sizeof(*out));
        return 0;
    }
    int due = steady && t->seen_rev >= s->log_floor ? delta_next_logged(t, s, out)
                                                    : delta_next(t, s, out);
    if (due >= 0 && t->subscribed && !t->pending_nonce) {
        t->seen_rev = rev;
        t->dirty = false;
    }
    return due;
}

int delta_sent(struct delta_type *t, const struct delta_resp *r, uint64_t nonce, uint64_t sysver)
{
    for (size_t i = 0; i < r->n_res; i++)
        if (delta_map_put(&t->held, r->res[i]->key, r->res[i]->version))
            return -ENOMEM;
    for (size_t i = 0; i < r->n_removed; i++) {
        if (delta_map_get(&t->names, r->removed[i], NULL)) {
            if (delta_map_put(&t->held, r->removed[i], DELTA_ABSENT))
                return -ENOMEM;
        } else {
            delta_map_del(&t->held, r->removed[i]);
        }
    }
    t->pending_nonce = nonce;
    t->pending_sysver = sysver;
    t->sent_first = true;
    return 0;
}

/* JSON is built by hand around the objects' stored compact text: no re-serialization of
 * what may be thousands of EndpointSlices. */
struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *q = realloc(b->p, nc);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* A JSON string literal (names are DNS names, but quote properly anyway). */
static void sb_quoted(struct sbuf *b, const char *s)
{
    cJSON *item = cJSON_CreateStringReference(s);
    char *q = item ? cJSON_PrintUnformatted(item) : NULL;
    cJSON_Delete(item); /* a reference: the string stays the caller's */
    if (!q) {
        b->oom = true;
        return;
    }
    sb_str(b, q);
    free(q);
}

char *delta_resp_json(const struct delta_resp *r, enum model_kind kind, uint64_t nonce,
                      uint64_t sysver, size_t *len)
{
    struct sbuf b = {0};
    char num[64];

    snprintf(num, sizeof(num), "{\"system_version_info\":\"%llu\",\"type_url\":",
             (unsigned long long)sysver);
    sb_str(&b, num);
    sb_quoted(&b, store_type_url(kind));
    snprintf(num, sizeof(num), ",\"nonce\":\"%llu\",\"resources\":[", (unsigned long long)nonce);
    sb_str(&b, num);
    for (size_t i = 0; i < r->n_res; i++) {
        sb_str(&b, i ? ",{\"name\":" : "{\"name\":");
        sb_quoted(&b, r->res[i]->key);
        snprintf(num, sizeof(num), ",\"version\":\"%llu\",\"resource\":",
                 (unsigned long long)r->res[i]->version);
        sb_str(&b, num);
        sb_str(&b, r->res[i]->json);
        sb_str(&b, "}");
    }
    sb_str(&b, "],\"removed_resources\":[");
    for (size_t i = 0; i < r->n_removed; i++) {
        if (i)
            sb_str(&b, ",");
        sb_quoted(&b, r->removed[i]);
    }
    sb_str(&b, "]}\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
