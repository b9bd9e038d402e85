/*
 * meshstat.c - per-Service golden metrics from scraped Istio-style metrics (meshstat.h).
 *
 * A snapshot is a flat array of entries, one per (sidecar, reporter, Service); a sample
 * finds its entry by a linear search that starts from the previous sample's entry, since
 * an exposition lists a family's series (and a histogram's buckets) together. The row
 * computation is O(entries^2) in the worst case; entries are Services x sidecars, small
 * next to the text that made them.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshstat.h"
#include "promtext.h"

const char *meshstat_reporter_str(enum meshstat_reporter r)
{
    switch (r) {
    case MESHSTAT_DESTINATION:
        return "destination";
    case MESHSTAT_SOURCE:
        return "source";
    case MESHSTAT_OVERFLOWED:
        return "overflow";
    }
    return "?";
}

void meshstat_snap_init(struct meshstat_snap *s)
{
    memset(s, 0, sizeof(*s));
}

static void entry_free(struct meshstat_entry *e)
{
    free(e->ns);
    free(e->name);
    free(e->fqdn);
}

void meshstat_snap_free(struct meshstat_snap *s)
{
    for (size_t i = 0; i < s->n; i++)
        entry_free(&s->e[i]);
    free(s->e);
    memset(s, 0, sizeof(*s));
}

enum family {
    FAM_NONE,
    FAM_REQ,
    FAM_BUCKET,
    FAM_TCP_OPEN,
    FAM_TCP_CLOSE,
    FAM_TCP_SENT,
    FAM_TCP_RECV
};

static enum family family_of(const char *name)
{
    static const struct {
        const char *suffix;
        enum family f;
    } fams[] = {
        {"requests_total", FAM_REQ},
        {"request_duration_milliseconds_bucket", FAM_BUCKET},
        {"tcp_connections_opened_total", FAM_TCP_OPEN},
        {"tcp_connections_closed_total", FAM_TCP_CLOSE},
        {"tcp_sent_bytes_total", FAM_TCP_SENT},
        {"tcp_received_bytes_total", FAM_TCP_RECV},
    };
    if (!strncmp(name, "ringmesh_", 9))
        name += 9;
    else if (!strncmp(name, "istio_", 6))
        name += 6;
    else
        return FAM_NONE;
    for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++)
        if (!strcmp(name, fams[i].suffix))
            return fams[i].f;
    return FAM_NONE;
}

static const char *nonempty(const char *v)
{
    return v && *v ? v : NULL;
}

/* The Service of a sample (see meshstat.h); false when it names none. The strings point
 * into the sample or into buf. */
static bool service_of(const struct prom_sample *smp, const char **ns, const char **name,
                       const char **fqdn, char *buf, size_t cap)
{
    const char *svc = nonempty(prom_label(smp, "destination_service"));
    const char *sn = nonempty(prom_label(smp, "destination_service_name"));
    const char *sns = nonempty(prom_label(smp, "destination_service_namespace"));
    const char *fn = NULL, *fns = NULL;

    *fqdn = svc ? svc : "";
    if (svc && strcmp(svc, "unknown")) {
        /* name.ns.svc.cluster.local: the first label, then the second */
        const char *dot = strchr(svc, '.');
        size_t l1 = dot ? (size_t)(dot - svc) : strlen(svc);
        if (l1 < cap) {
            memcpy(buf, svc, l1);
            buf[l1] = '\0';
            fn = buf;
            if (dot) {
                const char *d2 = strchr(dot + 1, '.');
                size_t l2 = d2 ? (size_t)(d2 - dot - 1) : strlen(dot + 1);
                if (l2 && l1 + 1 + l2 < cap) {
                    memcpy(buf + l1 + 1, dot + 1, l2);
                    buf[l1 + 1 + l2] = '\0';
                    fns = buf + l1 + 1;
                }
            }
        }
    }
    *name = sn   ? sn
            : fn ? fn
            : nonempty(prom_label(smp, "destination_canonical_service"))
                ? prom_label(smp, "destination_canonical_service")
                : nonempty(prom_label(smp, "destination_workload"));
    if (!*name && svc)
        *name = svc; /* "unknown" */
    *ns = sns ? sns : fns ? fns : nonempty(prom_label(smp, "destination_workload_namespace"));
    if (!*name)
        return false;
    if (!*ns)
        *ns = "unknown";
    return true;
}

static bool is_overflow(const struct prom_sample *smp)
{
    int n = 0;
    for (int i = 0; i < smp->n_labels; i++) {
        if (!strcmp(smp->labels[i].name, "le"))
            continue;
        if (strcmp(smp->labels[i].value, "overflow"))
            return false;
        n++;
    }
    return n > 0;
}

struct add_ctx {
    struct meshstat_snap *s;
    int sidecar;
    size_t first; /* this text's entries start here */
    char *err;
    size_t errlen;
};

static struct meshstat_entry *entry_get(struct add_ctx *a, enum meshstat_reporter r, const char *ns,
                                        const char *name, const char *fqdn)
{
    struct meshstat_snap *s = a->s;
    struct meshstat_entry *e;
    for (size_t k = 0; k < s->n - a->first; k++) {
        /* from the last hit on, wrapping within this sidecar's entries */
        size_t i = a->first + (s->last - a->first + k) % (s->n - a->first);
        e = &s->e[i];
        if (e->reporter == r && !strcmp(e->name, name) && !strcmp(e->ns, ns)) {
            s->last = i;
            if (!e->fqdn[0] && fqdn[0]) {
                char *f = strdup(fqdn);
                if (!f)
                    return NULL;
                free(e->fqdn);
                e->fqdn = f;
            }
            return e;
        }
    }
    if (s->n == MESHSTAT_MAX_ENTRIES) {
        snprintf(a->err, a->errlen, "more than %d Service series per round", MESHSTAT_MAX_ENTRIES);
        return NULL;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct meshstat_entry *ne = realloc(s->e, cap * sizeof(*ne));
        if (!ne)
            goto nomem;
        s->e = ne;
        s->cap = cap;
    }
    e = &s->e[s->n];
    memset(e, 0, sizeof(*e));
    e->sidecar = a->sidecar;
    e->reporter = r;
    e->ns = strdup(ns);
    e->name = strdup(name);
    e->fqdn = strdup(fqdn);
    if (!e->ns || !e->name || !e->fqdn) {
        entry_free(e);
        goto nomem;
    }
    s->last = s->n++;
    return e;
nomem:
    snprintf(a->err, a->errlen, "out of memory");
    return NULL;
}

static int add_bucket(struct add_ctx *a, struct meshstat_entry *e, const char *le_s, double v)
{
    char *end;
    double le;
    int i;
    if (!le_s || !*le_s)
        return 0; /* not a bucket of a histogram */
    le = strtod(le_s, &end);
    if (*end || isnan(le)) {
        snprintf(a->err, a->errlen, "%s: le=\"%s\" is not a bound", e->name, le_s);
        return -EINVAL;
    }
    for (i = 0; i < e->n_buckets && e->le[i] < le; i++)
        ;
    if (i == e->n_buckets || e->le[i] != le) {
        if (e->n_buckets == MESHSTAT_MAX_BUCKETS) {
            snprintf(a->err, a->errlen, "%s: more than %d histogram buckets", e->name,
                     MESHSTAT_MAX_BUCKETS);
            return -E2BIG;
        }
        memmove(&e->le[i + 1], &e->le[i], (size_t)(e->n_buckets - i) * sizeof(double));
        memmove(&e->bucket[i + 1], &e->bucket[i], (size_t)(e->n_buckets - i) * sizeof(double));
        e->le[i] = le;
        e->bucket[i] = 0;
        e->n_buckets++;
    }
    e->bucket[i] += v;
    e->has_hist = true;
    return 0;
}

static bool is_failure(const struct prom_sample *smp)
{
    const char *code = prom_label(smp, "response_code");
    const char *grpc = prom_label(smp, "grpc_response_status");
    if (code && code[0] == '5' && strlen(code) == 3)
        return true;
    return grpc && *grpc && strcmp(grpc, "0");
}

static int on_sample(void *arg, const struct prom_sample *smp)
{
    struct add_ctx *a = arg;
    enum family f = family_of(smp->name);
    const char *ns, *name, *fqdn, *rep;
    enum meshstat_reporter r;
    struct meshstat_entry *e;
    char buf[512];

    if (f == FAM_NONE || isnan(smp->value))
        return 0;
    if (is_overflow(smp)) {
        r = MESHSTAT_OVERFLOWED;
        ns = "-";
        name = MESHSTAT_OVERFLOW;
        fqdn = "";
    } else {
        if (!service_of(smp, &ns, &name, &fqdn, buf, sizeof(buf)))
            return 0;
        rep = prom_label(smp, "reporter");
        r = rep && !strcmp(rep, "source") ? MESHSTAT_SOURCE : MESHSTAT_DESTINATION;
    }
    if (!(e = entry_get(a, r, ns, name, fqdn)))
        return -ENOMEM;
    switch (f) {
    case FAM_REQ:
        e->has_req = true;
        e->requests += smp->value;
        if (!is_failure(smp))
            e->success += smp->value;
        break;
    case FAM_BUCKET:
        return add_bucket(a, e, prom_label(smp, "le"), smp->value);
    case FAM_TCP_OPEN:
        e->has_tcp = true;
        e->tcp_opened += smp->value;
        break;
    case FAM_TCP_CLOSE:
        e->has_tcp = true;
        e->tcp_closed += smp->value;
        break;
    case FAM_TCP_SENT:
        e->has_tcp = true;
        e->tcp_sent += smp->value;
        break;
    case FAM_TCP_RECV:
        e->has_tcp = true;
        e->tcp_received += smp->value;
        break;
    case FAM_NONE:
        break;
    }
    return 0;
}

int meshstat_snap_add(struct meshstat_snap *s, int sidecar, const char *text, size_t len, char *err,
                      size_t errlen)
{
    struct add_ctx a = {.s = s, .sidecar = sidecar, .first = s->n, .err = err, .errlen = errlen};
    int rc;
    if (sidecar < 0 || sidecar >= MESHSTAT_MAX_SIDECARS) {
        snprintf(err, errlen, "sidecar index %d out of range", sidecar);
        return -EINVAL;
    }
    if (s->scraped[sidecar]) {
        snprintf(err, errlen, "sidecar %d added twice to one round", sidecar);
        return -EEXIST;
    }
    s->last = s->n;
    if ((rc = prom_parse(text, len, on_sample, &a, err, errlen))) {
        while (s->n > a.first)
            entry_free(&s->e[--s->n]);
        s->last = 0;
        return rc;
    }
    s->scraped[sidecar] = true;
    return 0;
}

/* ---- rows ------------------------------------------------------------------------------- */

static int entry_key_cmp(const void *x, const void *y)
{
    const struct meshstat_entry *a = *(const struct meshstat_entry *const *)x;
    const struct meshstat_entry *b = *(const struct meshstat_entry *const *)y;
    int c;
    if (a->sidecar != b->sidecar)
        return a->sidecar < b->sidecar ? -1 : 1;
    if (a->reporter != b->reporter)
        return a->reporter < b->reporter ? -1 : 1;
    if ((c = strcmp(a->ns, b->ns)))
        return c;
    return strcmp(a->name, b->name);
}

/* e's entry in prev through by_key (prev's entries sorted by entry_key_cmp), or NULL. */
static const struct meshstat_entry *find_prev(const struct meshstat_entry *const *by_key, size_t n,
                                              const struct meshstat_entry *e)
{
    const struct meshstat_entry *const *hit =
        n ? bsearch(&e, by_key, n, sizeof(*by_key), entry_key_cmp) : NULL;
    return hit ? *hit : NULL;
}

/* The bucket of p at bound le (0 when p has none there). */
static double bucket_at(const struct meshstat_entry *p, double le)
{
    if (!p)
        return 0;
    for (int i = 0; i < p->n_buckets; i++)
        if (p->le[i] == le)
            return p->bucket[i];
    return 0;
}

struct acc {
    int n_buckets;
    double le[MESHSTAT_MAX_BUCKETS], bucket[MESHSTAT_MAX_BUCKETS];
    bool has_req, has_hist, has_tcp;
};

static void acc_add(struct acc *a, struct meshstat_row *r, const struct meshstat_entry *e,
                    const struct meshstat_entry *p, double interval_s)
{
    if (e->has_req) {
        a->has_req = true;
        r->requests += prom_counter_delta(p ? p->requests : 0, e->requests);
        r->success += prom_counter_delta(p ? p->success : 0, e->success);
    }
    if (e->has_tcp) {
        if (!a->has_tcp) {
            r->tcp_open = r->tcp_sent_bps = r->tcp_received_bps = 0;
            a->has_tcp = true;
        }
        r->tcp_open += e->tcp_opened - e->tcp_closed;
        r->tcp_sent_bps += prom_counter_delta(p ? p->tcp_sent : 0, e->tcp_sent) / interval_s;
        r->tcp_received_bps +=
            prom_counter_delta(p ? p->tcp_received : 0, e->tcp_received) / interval_s;
    }
    if (e->has_hist) {
        /* a reset of any bucket resets the whole histogram */
        bool reset = false;
        for (int i = 0; p && i < e->n_buckets; i++)
            reset |= e->bucket[i] < bucket_at(p, e->le[i]);
        a->has_hist = true;
        for (int i = 0; i < e->n_buckets; i++) {
            double d = e->bucket[i] - (reset ? 0 : bucket_at(p, e->le[i]));
            int k;
            for (k = 0; k < a->n_buckets && a->le[k] < e->le[i]; k++)
                ;
            if (k == a->n_buckets || a->le[k] != e->le[i]) {
                if (a->n_buckets == MESHSTAT_MAX_BUCKETS)
                    continue;
                memmove(&a->le[k + 1], &a->le[k], (size_t)(a->n_buckets - k) * sizeof(double));
                memmove(&a->bucket[k + 1], &a->bucket[k],
                        (size_t)(a->n_buckets - k) * sizeof(double));
                a->le[k] = e->le[i];
                a->bucket[k] = 0;
                a->n_buckets++;
            }
            a->bucket[k] += d;
        }
    }
}

static int row_cmp(const void *x, const void *y)
{
    const struct meshstat_row *a = x, *b = y;
    int c = strcmp(a->ns, b->ns);
    return c ? c : strcmp(a->name, b->name);
}

bool meshstat_row_matches(const struct meshstat_row *r, const char *service)
{
    size_t nl = strlen(r->name);
    if (!strcmp(service, r->name) || (r->fqdn[0] && !strcmp(service, r->fqdn)))
        return true;
    /* NAME.NS, and NAME.NS.svc[.domain] when the series named no FQDN */
    if (strncmp(service, r->name, nl) || service[nl] != '.')
        return false;
    service += nl + 1;
    nl = strlen(r->ns);
    return !strncmp(service, r->ns, nl) &&
           (service[nl] == '\0' || (!r->fqdn[0] && !strncmp(service + nl, ".svc", 4) &&
                                    (service[nl + 4] == '\0' || service[nl + 4] == '.')));
}

int meshstat_rows(const struct meshstat_snap *prev, const struct meshstat_snap *cur,
                  double interval_s, const struct meshstat_filter *f, struct meshstat_row **out)
{
    struct meshstat_row *rows = NULL, *r;
    int n = 0, cap = 0;
    bool *done = cur->n ? calloc(cur->n, sizeof(bool)) : NULL;
    struct acc a;

    /* prev's entries by key, so each of cur's finds its earlier self in O(log n) */
    size_t np = prev ? prev->n : 0;
    const struct meshstat_entry **by_key = np ? malloc(np * sizeof(*by_key)) : NULL;

    *out = NULL;
    if ((cur->n && !done) || (np && !by_key)) {
        free(done);
        free(by_key);
        return -ENOMEM;
    }
    for (size_t i = 0; i < np; i++)
        by_key[i] = &prev->e[i];
    if (np > 1)
        qsort(by_key, np, sizeof(*by_key), entry_key_cmp);
    for (size_t i = 0; i < cur->n; i++) {
        const struct meshstat_entry *e0 = &cur->e[i];
        enum meshstat_reporter use;
        if (done[i])
            continue;
        if (f && f->ns && (e0->reporter == MESHSTAT_OVERFLOWED || strcmp(e0->ns, f->ns)))
            continue;
        /* the Service's reporter: destination when any sidecar reported it so */
        use = e0->reporter == MESHSTAT_OVERFLOWED ? MESHSTAT_OVERFLOWED : MESHSTAT_SOURCE;
        for (size_t j = i; j < cur->n && use == MESHSTAT_SOURCE; j++)
            if (cur->e[j].reporter == MESHSTAT_DESTINATION && !strcmp(cur->e[j].name, e0->name) &&
                !strcmp(cur->e[j].ns, e0->ns))
                use = MESHSTAT_DESTINATION;
        if (n == cap) {
            int nc = cap ? cap * 2 : 8;
            struct meshstat_row *nr = realloc(rows, (size_t)nc * sizeof(*nr));
            if (!nr)
                goto nomem;
            rows = nr;
            cap = nc;
        }
        r = &rows[n];
        memset(r, 0, sizeof(*r));
        memset(&a, 0, sizeof(a));
        r->reporter = use;
        r->tcp_open = r->tcp_sent_bps = r->tcp_received_bps = NAN;
        r->ns = strdup(e0->ns);
        r->name = strdup(e0->name);
        r->fqdn = strdup("");
        if (!r->ns || !r->name || !r->fqdn) {
            free(r->ns);
            free(r->name);
            free(r->fqdn);
            goto nomem;
        }
        n++;
        for (size_t j = i; j < cur->n; j++) {
            const struct meshstat_entry *e = &cur->e[j], *p;
            bool same = (e->reporter == MESHSTAT_OVERFLOWED) == (use == MESHSTAT_OVERFLOWED) &&
                        !strcmp(e->name, e0->name) && !strcmp(e->ns, e0->ns);
            if (!same)
                continue;
            done[j] = true;
            if (!r->fqdn[0] && e->fqdn[0] && strcmp(e->fqdn, "unknown")) {
                char *fq = strdup(e->fqdn);
                if (!fq)
                    goto nomem;
                free(r->fqdn);
                r->fqdn = fq;
            }
            if (e->reporter != use)
                continue;
            /* one entry per (sidecar, reporter, Service): each is another sidecar */
            r->meshed += use == MESHSTAT_DESTINATION;
            if (!prev || !prev->scraped[e->sidecar])
                continue; /* no earlier round from this sidecar: no delta */
            p = find_prev(by_key, np, e);
            acc_add(&a, r, e, p, interval_s);
        }
        r->rps = a.has_req ? r->requests / interval_s : NAN;
        r->success = a.has_req && r->requests > 0 ? r->success / r->requests : NAN;
        if (!a.has_req)
            r->requests = NAN;
        r->p50_ms = prom_histogram_quantile(0.50, a.le, a.bucket, (size_t)a.n_buckets);
        r->p95_ms = prom_histogram_quantile(0.95, a.le, a.bucket, (size_t)a.n_buckets);
        r->p99_ms = prom_histogram_quantile(0.99, a.le, a.bucket, (size_t)a.n_buckets);
        if (f && f->service && !meshstat_row_matches(r, f->service)) {
            n--;
            free(r->ns);
            free(r->name);
            free(r->fqdn);
        }
    }
    free(done);
    free(by_key);
    if (n > 1)
        qsort(rows, (size_t)n, sizeof(*rows), row_cmp);
    *out = rows;
    return n;
nomem:
    free(done);
    free(by_key);
    meshstat_rows_free(rows, n);
    return -ENOMEM;
}

void meshstat_rows_free(struct meshstat_row *rows, int n)
{
    for (int i = 0; i < n; i++) {
        free(rows[i].ns);
        free(rows[i].name);
        free(rows[i].fqdn);
    }
    free(rows);
}
