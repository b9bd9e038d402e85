/*
 * metrics.c - see metrics.h.
 */
#include "metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

/* Envoy's default timer buckets (ms) and Istio's byte-size buckets. */
static const double dur_le[] = {0.5,   1,     5,      10,     25,      50,     100,
                                250,   500,   1000,   2500,   5000,    10000,  30000,
                                60000, 300000, 600000, 1800000, 3600000};
#define DUR_N (sizeof(dur_le) / sizeof(dur_le[0]))
static const double bytes_le[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};
#define BYTES_N (sizeof(bytes_le) / sizeof(bytes_le[0]))

static const char *const label_names[ML_COUNT] = {
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
};

/* The labels a TCP series has (Istio's TCP metrics have no HTTP fields). */
#define TCP_LABELS                                                                              \
    (~((1u << ML_RESPONSE_CODE) | (1u << ML_GRPC_STATUS)) & ((1u << ML_COUNT) - 1))

struct metrics_series {
    struct metrics_series *next;  /* published list (admin reads) */
    struct metrics_series *prev;  /* published list, worker only */
    struct metrics_series *hnext; /* hash chain, worker only */
    uint64_t hash;
    uint64_t last_ms;    /* worker only */
    uint64_t retired_at; /* scrapes begun when it was unlinked */
    enum metrics_kind kind;
    /* counters (relaxed stores by the worker, relaxed loads by the admin) */
    uint64_t count;   /* HTTP: requests; TCP: connections opened */
    uint64_t closed;  /* TCP: connections closed */
    uint64_t dur_sum_us, rq_sum, rs_sum;
    uint64_t dur[DUR_N + 1], rq[BYTES_N + 1], rs[BYTES_N + 1]; /* per bucket, last = +Inf */
    uint16_t off[ML_COUNT]; /* label values in key; 0xffff = label off */
    size_t key_len;
    char key[]; /* kind byte, then each kept label's value and a NUL */
};

/* Scrapes begun and finished (admin thread writes, workers read). */
static uint64_t scrapes_begun, scrapes_done;

const char *metrics_label_name(enum metrics_label l)
{
    return label_names[l];
}

int metrics_labels_parse(const char *list, uint32_t *mask, char *err, size_t errlen)
{
    uint32_t m = 1u << ML_REPORTER;
    if (!strcmp(list, "all")) {
        *mask = (1u << ML_COUNT) - 1;
        return 0;
    }
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        int found = -1;
        for (int l = 0; l < ML_COUNT; l++)
            if (strlen(label_names[l]) == n && !memcmp(label_names[l], p, n))
                found = l;
        if (found < 0) {
            snprintf(err, errlen, "unknown label '%.*s' (Istio's names, e.g. "
                     "destination_service,response_code; or all)", (int)n, p);
            return -1;
        }
        m |= 1u << found;
        p += n + (p[n] == ',');
    }
    *mask = m;
    return 0;
}

/* ---- the peer metadata header ---- */

static bool value_ok(const char *v, size_t n)
{
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void set_field(char dst[64], const char *v, size_t n)
{
    if (!value_ok(v, n))
        v = "unknown", n = 7;
    memcpy(dst, v, n);
    dst[n] = 0;
}

static const struct {
    const char *key;
    size_t off;
} peer_keys[] = {
    {"w", offsetof(struct metrics_peer, workload)},
    {"n", offsetof(struct metrics_peer, ns)},
    {"a", offsetof(struct metrics_peer, app)},
    {"v", offsetof(struct metrics_peer, version)},
    {"cs", offsetof(struct metrics_peer, canon_svc)},
    {"cr", offsetof(struct metrics_peer, canon_rev)},
};
#define PEER_KEYS (sizeof(peer_keys) / sizeof(peer_keys[0]))

int metrics_peer_format(const struct metrics_peer *p, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < PEER_KEYS; i++) {
        int r = snprintf(out + n, cap - n, "%s%s=%s", i ? ";" : "", peer_keys[i].key,
                         (const char *)p + peer_keys[i].off);
        if (r < 0 || (size_t)r >= cap - n)
            return -1;
        n += (size_t)r;
    }
    return (int)n;
}

bool metrics_peer_parse(const char *v, size_t len, struct metrics_peer *p)
{
    bool any = false;
    for (size_t i = 0; i < PEER_KEYS; i++)
        strcpy((char *)p + peer_keys[i].off, "unknown");
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && v[e] != ';')
            e++;
        const char *eq = memchr(v + i, '=', e - i);
        if (eq) {
            size_t kl = (size_t)(eq - (v + i));
            for (size_t k = 0; k < PEER_KEYS; k++)
                if (strlen(peer_keys[k].key) == kl && !memcmp(peer_keys[k].key, v + i, kl)) {
                    set_field((char *)p + peer_keys[k].off, eq + 1, (size_t)(v + e - eq - 1));
                    any |= value_ok(eq + 1, (size_t)(v + e - eq - 1));
                }
        }
        i = e + 1;
    }
    return any;
}

static const char *label_of(const char *const (*labels)[2], size_t n, const char *k1,
                            const char *k2)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(labels[i][0], k1))
            return labels[i][1];
    for (size_t i = 0; k2 && i < n; i++)
        if (!strcmp(labels[i][0], k2))
            return labels[i][1];
    return NULL;
}

/* "web-7d4b9c8f6d-x2x9z" -> "web": a ReplicaSet pod's name is the Deployment's, a
 * pod-template hash and a 5-character id. Anything else is kept whole. */
static size_t workload_of_pod(const char *pod)
{
    size_t n = strlen(pod);
    const char *id = strrchr(pod, '-');
    if (!id || (size_t)(pod + n - id - 1) != 5)
        return n;
    const char *hash = id;
    while (hash > pod && hash[-1] != '-')
        hash--;
    size_t hl = (size_t)(id - hash);
    if (hash == pod || hl < 6 || hl > 10)
        return n;
    return (size_t)(hash - 1 - pod);
}

void metrics_peer_self(struct metrics_peer *p, const char *workload_name, const char *pod_name,
                       const char *ns, const char *const (*labels)[2], size_t n_labels)
{
    const char *app = label_of(labels, n_labels, "app.kubernetes.io/name", "app");
    const char *ver = label_of(labels, n_labels, "app.kubernetes.io/version", "version");
    const char *cs = label_of(labels, n_labels, "service.istio.io/canonical-name", NULL);
    const char *cr = label_of(labels, n_labels, "service.istio.io/canonical-revision", NULL);
    if (workload_name && *workload_name)
        set_field(p->workload, workload_name, strlen(workload_name));
    else if (pod_name && *pod_name)
        set_field(p->workload, pod_name, workload_of_pod(pod_name));
    else if (app)
        set_field(p->workload, app, strlen(app));
    else
        set_field(p->workload, "unknown", 7);
    set_field(p->ns, ns ? ns : "", ns ? strlen(ns) : 0);
    set_field(p->app, app ? app : "", app ? strlen(app) : 0);
    set_field(p->version, ver ? ver : "", ver ? strlen(ver) : 0);
    cs = cs ? cs : app ? app : p->workload;
    set_field(p->canon_svc, cs, strlen(cs));
    cr = cr ? cr : ver ? ver : "latest";
    set_field(p->canon_rev, cr, strlen(cr));
}

void metrics_sample_peer(struct metrics_sample *s, bool src, const struct metrics_peer *p)
{
    s->v[src ? ML_SRC_WORKLOAD : ML_DST_WORKLOAD] = p->workload;
    s->v[src ? ML_SRC_WORKLOAD_NS : ML_DST_WORKLOAD_NS] = p->ns;
    s->v[src ? ML_SRC_APP : ML_DST_APP] = p->app;
    s->v[src ? ML_SRC_VERSION : ML_DST_VERSION] = p->version;
    s->v[src ? ML_SRC_CANON_SVC : ML_DST_CANON_SVC] = p->canon_svc;
    s->v[src ? ML_SRC_CANON_REV : ML_DST_CANON_REV] = p->canon_rev;
}

/* ---- the worker's series ---- */

int metrics_worker_init(struct metrics_worker *mw, const struct metrics_config *cfg)
{
    memset(mw, 0, sizeof(*mw));
    mw->cfg = cfg;
    mw->cap = cfg->per_worker ? cfg->per_worker : 1;
    mw->nbuckets = 64;
    while (mw->nbuckets < mw->cap)
        mw->nbuckets <<= 1;
    mw->buckets = calloc(mw->nbuckets, sizeof(*mw->buckets));
    return mw->buckets ? 0 : -ENOMEM;
}

static void series_free_list(struct metrics_series *s, bool via_hnext)
{
    while (s) {
        struct metrics_series *n = via_hnext ? s->hnext : s->next;
        free(s);
        s = n;
    }
}

void metrics_worker_free(struct metrics_worker *mw)
{
    series_free_list(mw->published, false); /* every live series, overflow ones included */
    series_free_list(mw->retired, true);
    free(mw->buckets);
    memset(mw, 0, sizeof(*mw));
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

/* The key of s's kept labels: kind byte, then value NUL per label. Length, or 0 if it
 * does not fit. */
static size_t make_key(const struct metrics_config *cfg, enum metrics_kind kind,
                       const struct metrics_sample *s, char *key, size_t cap)
{
    uint32_t mask = cfg->label_mask & (kind == METRICS_TCP ? TCP_LABELS : ~0u);
    size_t n = 0;
    key[n++] = (char)('0' + kind);
    for (int l = 0; l < ML_COUNT; l++) {
        if (!(mask & (1u << l)))
            continue;
        const char *v = s->v[l] ? s->v[l] : "unknown"; /* "" stays: Istio's non-gRPC status */
        size_t vl = strnlen(v, 256);
        if (n + vl + 1 > cap)
            return 0;
        memcpy(key + n, v, vl);
        n += vl;
        key[n++] = 0;
    }
    return n;
}

static struct metrics_series *series_new(struct metrics_worker *mw, enum metrics_kind kind,
                                         const char *key, size_t key_len, uint64_t h)
{
    struct metrics_series *s = calloc(1, sizeof(*s) + key_len);
    if (!s)
        return NULL;
    uint32_t mask = mw->cfg->label_mask & (kind == METRICS_TCP ? TCP_LABELS : ~0u);
    size_t o = 1;
    memcpy(s->key, key, key_len);
    s->key_len = key_len;
    s->kind = kind;
    s->hash = h;
    for (int l = 0; l < ML_COUNT; l++) {
        s->off[l] = 0xffff;
        if (mask & (1u << l)) {
            s->off[l] = (uint16_t)o;
            o += strlen(key + o) + 1;
        }
    }
    /* publish: everything above is written before the admin can reach it */
    s->next = mw->published;
    if (mw->published)
        mw->published->prev = s;
    __atomic_store_n(&mw->published, s, __ATOMIC_SEQ_CST);
    return s;
}

/* The overflow series of a kind: every label "overflow". */
static struct metrics_series *overflow_series(struct metrics_worker *mw, enum metrics_kind kind)
{
    if (!mw->overflow[kind]) {
        struct metrics_sample o;
        char key[ML_COUNT * 10 + 2];
        for (int l = 0; l < ML_COUNT; l++)
            o.v[l] = "overflow";
        size_t n = make_key(mw->cfg, kind, &o, key, sizeof(key));
        mw->overflow[kind] = series_new(mw, kind, key, n, 0);
    }
    return mw->overflow[kind];
}

static struct metrics_series *series_get(struct metrics_worker *mw, enum metrics_kind kind,
                                         const struct metrics_sample *smp, uint64_t now_ms)
{
    char key[ML_COUNT * 257 + 2];
    size_t n = make_key(mw->cfg, kind, smp, key, sizeof(key));
    if (!n)
        return overflow_series(mw, kind);
    uint64_t h = hash_bytes(key, n);
    size_t b = h & (mw->nbuckets - 1);
    struct metrics_series *s;
    for (s = mw->buckets[b]; s; s = s->hnext)
        if (s->hash == h && s->key_len == n && !memcmp(s->key, key, n))
            break;
    if (!s) {
        if (mw->n >= mw->cap || !(s = series_new(mw, kind, key, n, h))) {
            STATS_INC(&mw->overflowed);
            return overflow_series(mw, kind);
        }
        s->hnext = mw->buckets[b];
        mw->buckets[b] = s;
        STATS_INC(&mw->n);
    }
    s->last_ms = now_ms;
    return s;
}

static size_t bucket_of(const double *le, size_t n, double v)
{
    size_t i = 0;
    while (i < n && v > le[i])
        i++;
    return i;
}

void metrics_http(struct metrics_worker *mw, const struct metrics_sample *smp, uint64_t now_ms)
{
    if (!mw->cfg || !mw->cfg->enabled)
        return;
    struct metrics_series *s = series_get(mw, METRICS_HTTP, smp, now_ms);
    if (!s)
        return;
    STATS_INC(&s->count);
    STATS_INC(&s->dur[bucket_of(dur_le, DUR_N, (double)smp->duration_us / 1000.0)]);
    STATS_ADD(&s->dur_sum_us, smp->duration_us);
    STATS_INC(&s->rq[bucket_of(bytes_le, BYTES_N, (double)smp->rq_bytes)]);
    STATS_ADD(&s->rq_sum, smp->rq_bytes);
    STATS_INC(&s->rs[bucket_of(bytes_le, BYTES_N, (double)smp->rs_bytes)]);
    STATS_ADD(&s->rs_sum, smp->rs_bytes);
}

void metrics_tcp_open(struct metrics_worker *mw, const struct metrics_sample *smp, uint64_t now_ms)
{
    if (!mw->cfg || !mw->cfg->enabled)
        return;
    struct metrics_series *s = series_get(mw, METRICS_TCP, smp, now_ms);
    if (s)
        STATS_INC(&s->count);
}

void metrics_tcp_close(struct metrics_worker *mw, const struct metrics_sample *smp,
                       uint64_t now_ms)
{
    if (!mw->cfg || !mw->cfg->enabled)
        return;
    struct metrics_series *s = series_get(mw, METRICS_TCP, smp, now_ms);
    if (!s)
        return;
    STATS_INC(&s->closed);
    STATS_ADD(&s->rq_sum, smp->rq_bytes);
    STATS_ADD(&s->rs_sum, smp->rs_bytes);
}

void metrics_sweep(struct metrics_worker *mw, uint64_t now_ms)
{
    if (!mw->buckets)
        return;
    uint64_t done = __atomic_load_n(&scrapes_done, __ATOMIC_SEQ_CST);
    struct metrics_series **pp = &mw->retired;
    while (*pp) { /* freed once every scrape that may have seen it has ended */
        struct metrics_series *s = *pp;
        if (done >= s->retired_at) {
            *pp = s->hnext;
            free(s);
        } else {
            pp = &s->hnext;
        }
    }
    if (!mw->cfg->idle_ms || now_ms < mw->next_sweep_ms)
        return;
    mw->next_sweep_ms = now_ms + (mw->cfg->idle_ms < 10000 ? mw->cfg->idle_ms / 2 + 1 : 5000);
    for (size_t b = 0; b < mw->nbuckets; b++) {
        struct metrics_series **hp = &mw->buckets[b];
        while (*hp) {
            struct metrics_series *s = *hp;
            if (now_ms - s->last_ms < mw->cfg->idle_ms) {
                hp = &s->hnext;
                continue;
            }
            *hp = s->hnext;
            /* unlink from the published list; a scrape on s still follows s->next */
            if (s->prev)
                __atomic_store_n(&s->prev->next, s->next, __ATOMIC_SEQ_CST);
            else
                __atomic_store_n(&mw->published, s->next, __ATOMIC_SEQ_CST);
            if (s->next)
                s->next->prev = s->prev;
            s->retired_at = __atomic_load_n(&scrapes_begun, __ATOMIC_SEQ_CST);
            s->hnext = mw->retired;
            mw->retired = s;
            STATS_INC(&mw->evicted);
            __atomic_store_n(&mw->n, mw->n - 1, __ATOMIC_RELAXED);
        }
    }
}

void metrics_counts(struct metrics_worker *const *mws, size_t n, uint64_t *series,
                    uint64_t *overflowed, uint64_t *evicted)
{
    *series = *overflowed = *evicted = 0;
    for (size_t i = 0; i < n; i++) {
        *series += __atomic_load_n(&mws[i]->n, __ATOMIC_RELAXED);
        *overflowed += __atomic_load_n(&mws[i]->overflowed, __ATOMIC_RELAXED);
        *evicted += __atomic_load_n(&mws[i]->evicted, __ATOMIC_RELAXED);
    }
}

/* ---- rendering ---- */

int metrics_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int r = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (r < 0)
            return -EINVAL;
        if (*buf && (size_t)r < *cap - *len) {
            *len += (size_t)r;
            return 0;
        }
        size_t ncap = *cap ? *cap * 2 : 64 * 1024;
        while (ncap < *len + (size_t)r + 1)
            ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return -ENOMEM;
        *buf = nb;
        *cap = ncap;
    }
}

/* One summed series at scrape time. */
struct agg {
    const struct metrics_series *first; /* its labels */
    uint64_t count, closed, dur_sum_us, rq_sum, rs_sum;
    uint64_t dur[DUR_N + 1], rq[BYTES_N + 1], rs[BYTES_N + 1];
};

static uint64_t ld(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void agg_add(struct agg *a, const struct metrics_series *s)
{
    a->count += ld(&s->count);
    a->closed += ld(&s->closed);
    a->dur_sum_us += ld(&s->dur_sum_us);
    a->rq_sum += ld(&s->rq_sum);
    a->rs_sum += ld(&s->rs_sum);
    for (size_t i = 0; i <= DUR_N; i++)
        a->dur[i] += ld(&s->dur[i]);
    for (size_t i = 0; i <= BYTES_N; i++) {
        a->rq[i] += ld(&s->rq[i]);
        a->rs[i] += ld(&s->rs[i]);
    }
}

/* The label set of a series as {k="v",...} plus extra (a trailing le=), escaped. */
static int put_labels(char **buf, size_t *len, size_t *cap, const struct metrics_series *s,
                      const char *le)
{
    int rc = metrics_printf(buf, len, cap, "{");
    bool first = true;
    for (int l = 0; rc == 0 && l < ML_COUNT; l++) {
        if (s->off[l] == 0xffff)
            continue;
        const char *v = s->key + s->off[l];
        rc = metrics_printf(buf, len, cap, "%s%s=\"", first ? "" : ",", label_names[l]);
        for (; rc == 0 && *v; v++) /* values are ours, but a principal may hold anything */
            rc = *v == '"' || *v == '\\' ? metrics_printf(buf, len, cap, "\\%c", *v)
                 : *v == '\n'            ? metrics_printf(buf, len, cap, "\\n")
                                         : metrics_printf(buf, len, cap, "%c", *v);
        if (rc == 0)
            rc = metrics_printf(buf, len, cap, "\"");
        first = false;
    }
    if (rc == 0 && le)
        rc = metrics_printf(buf, len, cap, "%sle=\"%s\"", first ? "" : ",", le);
    return rc ? rc : metrics_printf(buf, len, cap, "}");
}

static int put_hist(char **buf, size_t *len, size_t *cap, const char *name,
                    const struct agg *a, size_t na, const double *le, size_t nle,
                    size_t field_off, size_t sum_off, double sum_div)
{
    int rc = metrics_printf(buf, len, cap, "# TYPE %s histogram\n", name);
    for (size_t i = 0; rc == 0 && i < na; i++) {
        const uint64_t *b = (const uint64_t *)((const char *)&a[i] + field_off);
        uint64_t cum = 0;
        for (size_t k = 0; rc == 0 && k <= nle; k++) {
            char les[32];
            cum += b[k];
            if (k < nle)
                snprintf(les, sizeof(les), "%g", le[k]);
            else
                strcpy(les, "+Inf");
            rc = metrics_printf(buf, len, cap, "%s_bucket", name);
            if (rc == 0)
                rc = put_labels(buf, len, cap, a[i].first, les);
            if (rc == 0)
                rc = metrics_printf(buf, len, cap, " %llu\n", (unsigned long long)cum);
        }
        uint64_t sum = *(const uint64_t *)((const char *)&a[i] + sum_off);
        if (rc == 0)
            rc = metrics_printf(buf, len, cap, "%s_sum", name);
        if (rc == 0)
            rc = put_labels(buf, len, cap, a[i].first, NULL);
        if (rc == 0)
            rc = metrics_printf(buf, len, cap, " %.17g\n%s_count", (double)sum / sum_div, name);
        if (rc == 0)
            rc = put_labels(buf, len, cap, a[i].first, NULL);
        if (rc == 0)
            rc = metrics_printf(buf, len, cap, " %llu\n", (unsigned long long)a[i].count);
    }
    return rc;
}

static int put_counter(char **buf, size_t *len, size_t *cap, const char *name,
                       const struct agg *a, size_t na, size_t field_off)
{
    int rc = metrics_printf(buf, len, cap, "# TYPE %s counter\n", name);
    for (size_t i = 0; rc == 0 && i < na; i++) {
        rc = metrics_printf(buf, len, cap, "%s", name);
        if (rc == 0)
            rc = put_labels(buf, len, cap, a[i].first, NULL);
        if (rc == 0)
            rc = metrics_printf(buf, len, cap, " %llu\n",
                                (unsigned long long)*(const uint64_t *)((const char *)&a[i] +
                                                                        field_off));
    }
    return rc;
}

static int agg_cmp(const void *x, const void *y)
{
    const struct metrics_series *a = ((const struct agg *)x)->first,
                                *b = ((const struct agg *)y)->first;
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key, b->key, n);
    return c ? c : (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

int metrics_render(struct metrics_worker *const *mws, size_t n, const struct metrics_config *cfg,
                   char **buf, size_t *len, size_t *cap)
{
    __atomic_add_fetch(&scrapes_begun, 1, __ATOMIC_SEQ_CST);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += __atomic_load_n(&mws[i]->n, __ATOMIC_RELAXED) + METRICS_KINDS;
    /* workers may add series while we walk: collect into a table with room to spare,
     * and stop adding when it is full (they show at the next scrape) */
    size_t slots = 64;
    while (slots < total * 2 + 16)
        slots <<= 1;
    struct agg *aggs = calloc(slots, sizeof(*aggs));
    uint32_t *table = calloc(slots, sizeof(*table)); /* index + 1 into aggs, 0 = empty */
    size_t na = 0;
    int rc = aggs && table ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        for (const struct metrics_series *s = __atomic_load_n(&mws[i]->published, __ATOMIC_SEQ_CST);
             s; s = __atomic_load_n(&s->next, __ATOMIC_SEQ_CST)) {
            uint64_t h = s->hash ? s->hash : hash_bytes(s->key, s->key_len);
            size_t k = h & (slots - 1);
            while (table[k] && agg_cmp(&aggs[table[k] - 1], &(struct agg){.first = s}))
                k = (k + 1) & (slots - 1);
            if (!table[k]) {
                if (na * 2 >= slots)
                    continue;
                aggs[na].first = s;
                table[k] = (uint32_t)++na;
            }
            agg_add(&aggs[table[k] - 1], s);
        }
    }
    free(table);
    if (rc == 0) {
        qsort(aggs, na, sizeof(*aggs), agg_cmp); /* HTTP ('0') before TCP ('1') */
        size_t nh = 0;
        while (nh < na && aggs[nh].first->kind == METRICS_HTTP)
            nh++;
        struct agg *tcp = aggs + nh;
        size_t nt = na - nh;
        char name[128];
#define NAME(suffix) (snprintf(name, sizeof(name), "%s_%s", cfg->prefix, suffix), name)
        if (nh) {
            rc = put_counter(buf, len, cap, NAME("requests_total"), aggs, nh,
                             offsetof(struct agg, count));
            if (rc == 0)
                rc = put_hist(buf, len, cap, NAME("request_duration_milliseconds"), aggs, nh,
                              dur_le, DUR_N, offsetof(struct agg, dur),
                              offsetof(struct agg, dur_sum_us), 1000.0);
            if (rc == 0)
                rc = put_hist(buf, len, cap, NAME("request_bytes"), aggs, nh, bytes_le, BYTES_N,
                              offsetof(struct agg, rq), offsetof(struct agg, rq_sum), 1.0);
            if (rc == 0)
                rc = put_hist(buf, len, cap, NAME("response_bytes"), aggs, nh, bytes_le,
                              BYTES_N, offsetof(struct agg, rs), offsetof(struct agg, rs_sum),
                              1.0);
        }
        if (nt && rc == 0) {
            rc = put_counter(buf, len, cap, NAME("tcp_connections_opened_total"), tcp, nt,
                             offsetof(struct agg, count));
            if (rc == 0)
                rc = put_counter(buf, len, cap, NAME("tcp_connections_closed_total"), tcp, nt,
                                 offsetof(struct agg, closed));
            if (rc == 0)
                rc = put_counter(buf, len, cap, NAME("tcp_received_bytes_total"), tcp, nt,
                                 offsetof(struct agg, rq_sum));
            if (rc == 0)
                rc = put_counter(buf, len, cap, NAME("tcp_sent_bytes_total"), tcp, nt,
                                 offsetof(struct agg, rs_sum));
        }
#undef NAME
    }
    free(aggs);
    __atomic_add_fetch(&scrapes_done, 1, __ATOMIC_SEQ_CST);
    return rc;
}
