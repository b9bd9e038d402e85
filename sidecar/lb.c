/*
 * lb.c - the load balancer (see lb.h for the contract and the algorithms).
 *
 * Layout: hosts[] holds the member hosts sorted by address, so lb_update matches old and
 * new lists with a binary search. base[] indexes the base set (ready, or the terminating
 * fallback); it and the hash tables only change in lb_update. The pick set (elig[] with
 * weight prefix sums cum[]) depends on ejections too: it is rebuilt lazily, on the first
 * pick after an ejection or un-ejection marked it dirty, so a pick is O(1) (random,
 * P2C), O(log n) (weighted random, ring) or O(n) (smooth WRR, as in nginx).
 */
#include "lb.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "model.h"

#define RING_TARGET     65536u /* points in a ring of average-weight hosts ... */
#define RING_MIN_PER    100u   /* ... but at least this many per host */
#define RING_MAX_PER    1000u  /* ... and at most this many */
#define RING_CAP        (1u << 20)
#define MAGLEV_PER_HOST 100u /* table size >= 100 x hosts */
#define NO_HOST         UINT32_MAX

struct ring_point {
    uint64_t hash;
    uint32_t host; /* index into hosts[] */
};

struct lb {
    struct lb_config cfg;
    struct lb_host **hosts; /* owned; sorted by address */
    size_t n;

    uint32_t *base; /* indexes into hosts[] */
    size_t n_base;
    bool fallback; /* base is the serving+terminating fallback */

    uint32_t *elig; /* the pick set; capacity n */
    uint64_t *cum;  /* inclusive weight prefix sums over elig */
    size_t n_elig;
    bool panic;
    bool dirty;

    struct ring_point *ring;
    size_t n_ring;
    uint32_t *maglev;
    uint32_t maglev_size;

    struct outlier outlier;
    int64_t next_sweep_ms;
    struct lb_stats stats;
};

static void fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(char *err, size_t len, const char *fmt, ...)
{
    if (!err || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/* ---- hashing ---- */

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t fmix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* Eight bytes at a time, each word multiplied, rotated and folded in; the tail as one
 * zero-padded word; the length and a murmur3-style finalizer at the end. */
static uint64_t hash_seeded(const void *key, size_t len, uint64_t seed)
{
    const uint8_t *p = key;
    const uint64_t k1 = 0x87c37b91114253d5ull, k2 = 0x4cf5ad432745937full;
    uint64_t h = seed ^ (len * k2);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w = rotl(w * k1, 31) * k2;
        h = rotl(h ^ w, 27) * 5 + 0x52dce729;
        p += 8;
        len -= 8;
    }
    if (len) {
        uint64_t w = 0;
        memcpy(&w, p, len);
        w = rotl(w * k1, 31) * k2;
        h ^= w;
    }
    return fmix(h ^ rotl(h, 17));
}

uint64_t lb_hash(const void *key, size_t len)
{
    return hash_seeded(key, len, 0x6c62272e07bb0142ull);
}

static uint64_t addr_hash(const struct lb_addr *a, uint64_t seed)
{
    uint8_t buf[20];
    buf[0] = (uint8_t)a->family;
    buf[1] = (uint8_t)(a->family >> 8);
    buf[2] = (uint8_t)(a->port >> 8);
    buf[3] = (uint8_t)a->port;
    memcpy(buf + 4, a->ip, 16);
    return hash_seeded(buf, sizeof(buf), seed);
}

/* ---- small helpers ---- */

void lb_addr_set(struct lb_addr *a, int family, const void *ip, uint16_t port)
{
    memset(a, 0, sizeof(*a));
    a->family = (uint16_t)family;
    a->port = port;
    memcpy(a->ip, ip, family == AF_INET6 ? 16 : 4);
}

socklen_t lb_addr_sockaddr(const struct lb_addr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(a->port);
        memcpy(&s4->sin_addr, a->ip, 4);
        return sizeof(*s4);
    }
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(a->port);
    memcpy(&s6->sin6_addr, a->ip, 16);
    return sizeof(*s6);
}

static int addr_cmp(const struct lb_addr *a, const struct lb_addr *b)
{
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    int c = memcmp(a->ip, b->ip, 16);
    if (c)
        return c;
    if (a->port != b->port)
        return a->port < b->port ? -1 : 1;
    return 0;
}

static int64_t ns_to_ms(int64_t ns)
{
    return ns / 1000000;
}

/* e^-x for x >= 0 without libm (the sidecar does not link it): halve x until it is tiny,
 * a short Taylor series there, then square back. Relative error well under 1e-6. */
static double exp_neg(double x)
{
    if (!(x > 0))
        return 1.0;
    if (x > 700)
        return 0.0;
    int k = 0;
    while (x > 1.0 / 64) {
        x *= 0.5;
        k++;
    }
    double t = 1 - x * (1 - x / 2 * (1 - x / 3 * (1 - x / 4 * (1 - x / 5))));
    while (k--)
        t *= t;
    return t;
}

static bool is_prime(uint32_t m)
{
    if (m < 2)
        return false;
    for (uint32_t d = 2; (uint64_t)d * d <= m; d++)
        if (m % d == 0)
            return false;
    return true;
}

static void host_free(struct lb_host *h)
{
    if (h->free_cb)
        h->free_cb(h, h->free_arg);
    free(h);
}

/* h leaves the member list: freed now, or by its last lb_request_end. */
static void host_detach(struct lb_host *h)
{
    h->member = false;
    h->eligible = false;
    if (!h->active)
        host_free(h);
}

/* ---- config ---- */

void lb_config_default(struct lb_config *c)
{
    *c = (struct lb_config){
        .type = LB_ROUND_ROBIN,
        .panic_percent = LB_DEFAULT_PANIC_PERCENT,
        .ewma_decay_ns = LB_DEFAULT_EWMA_DECAY_NS,
        .ewma_default_rtt_ns = LB_DEFAULT_RTT_NS,
    };
    outlier_config_default(&c->outlier);
    c->outlier.enabled = false;
}

void lb_config_from_model(struct lb_config *c, const struct model_destination_policy *p)
{
    lb_config_default(c);
    outlier_config_from_model(&c->outlier, p);
    if (!p)
        return;
    switch (p->lb) {
    case MODEL_LB_ROUND_ROBIN:
        c->type = LB_ROUND_ROBIN;
        break;
    case MODEL_LB_RANDOM:
        c->type = LB_RANDOM;
        break;
    case MODEL_LB_LEAST_REQUEST:
        c->type = LB_LEAST_REQUEST;
        break;
    case MODEL_LB_PEAK_EWMA:
        c->type = LB_PEAK_EWMA;
        break;
    case MODEL_LB_RING_HASH:
        c->type = LB_RING_HASH;
        break;
    case MODEL_LB_MAGLEV:
        c->type = LB_MAGLEV;
        break;
    }
}

const char *lb_type_str(enum lb_type t)
{
    switch (t) {
    case LB_ROUND_ROBIN:
        return "RoundRobin";
    case LB_RANDOM:
        return "Random";
    case LB_LEAST_REQUEST:
        return "LeastRequest";
    case LB_PEAK_EWMA:
        return "PeakEWMA";
    case LB_RING_HASH:
        return "RingHash";
    case LB_MAGLEV:
        return "Maglev";
    }
    return "?";
}

static int check_config(const struct lb_config *c, char *err, size_t len)
{
    if ((unsigned)c->type > LB_MAGLEV) {
        fail(err, len, "lb: unknown type %d", (int)c->type);
        return -EINVAL;
    }
    if (c->panic_percent > 100) {
        fail(err, len, "lb: panic_percent %u out of range 0..100", c->panic_percent);
        return -EINVAL;
    }
    if (c->ewma_decay_ns <= 0 || c->ewma_default_rtt_ns <= 0) {
        fail(err, len, "lb: ewma_decay_ns and ewma_default_rtt_ns must be > 0");
        return -EINVAL;
    }
    if (c->maglev_size && !is_prime(c->maglev_size)) {
        fail(err, len, "lb: maglev_size %u is not a prime", c->maglev_size);
        return -EINVAL;
    }
    if (c->outlier.max_ejection_percent > 100 ||
        (c->outlier.enabled && c->outlier.interval_ms <= 0) ||
        (c->outlier.enabled && c->outlier.base_ejection_ms <= 0)) {
        fail(err, len,
             "lb: outlier detection needs interval and base ejection > 0, percent <= 100");
        return -EINVAL;
    }
    return 0;
}

struct lb *lb_create(const struct lb_config *cfg, char *err, size_t err_len)
{
    if (check_config(cfg, err, err_len) < 0)
        return NULL;
    struct lb *lb = calloc(1, sizeof(*lb));
    if (!lb) {
        fail(err, err_len, "lb: out of memory");
        return NULL;
    }
    lb->cfg = *cfg;
    outlier_init(&lb->outlier, &cfg->outlier);
    lb->next_sweep_ms = INT64_MAX;
    return lb;
}

void lb_destroy(struct lb *lb)
{
    if (!lb)
        return;
    for (size_t i = 0; i < lb->n; i++)
        host_detach(lb->hosts[i]);
    free(lb->hosts);
    free(lb->base);
    free(lb->elig);
    free(lb->cum);
    free(lb->ring);
    free(lb->maglev);
    free(lb);
}

/* ---- table construction (lb_update) ---- */

static int ring_cmp(const void *a, const void *b)
{
    const struct ring_point *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->host < y->host ? -1 : x->host > y->host;
}

static struct ring_point *build_ring(struct lb_host **hosts, const uint32_t *w,
                                     const uint32_t *base, size_t nb, size_t *n_out)
{
    uint64_t w_sum = 0;
    for (size_t i = 0; i < nb; i++)
        w_sum += w[base[i]];
    uint64_t per = RING_TARGET / nb;
    per = per < RING_MIN_PER ? RING_MIN_PER : per > RING_MAX_PER ? RING_MAX_PER : per;
    uint64_t total = per * nb;
    if (total > RING_CAP)
        total = RING_CAP;

    size_t cap = 0;
    for (size_t i = 0; i < nb; i++) {
        uint64_t pts = (total * w[base[i]] + w_sum / 2) / w_sum;
        cap += pts ? pts : 1;
    }
    struct ring_point *ring = malloc(cap * sizeof(*ring));
    if (!ring)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < nb; i++) {
        const struct lb_host *h = hosts[base[i]];
        uint64_t pts = (total * w[base[i]] + w_sum / 2) / w_sum;
        /* A host's points are a splitmix sequence seeded by its address: they depend on
         * nothing else, so adding or removing another host moves no point of this one. */
        uint64_t state = addr_hash(&h->addr, 0x9ae16a3b2f90404full);
        for (uint64_t j = 0; j < (pts ? pts : 1); j++)
            ring[k++] = (struct ring_point){prng_splitmix64(&state), base[i]};
    }
    qsort(ring, k, sizeof(*ring), ring_cmp);
    *n_out = k;
    return ring;
}

static uint32_t maglev_auto_size(size_t nb)
{
    uint64_t want = (uint64_t)nb * MAGLEV_PER_HOST;
    if (want <= LB_MAGLEV_DEFAULT_SIZE)
        return LB_MAGLEV_DEFAULT_SIZE;
    if (want > UINT32_MAX / 2)
        return 0;
    uint32_t m = (uint32_t)want | 1;
    while (!is_prime(m))
        m += 2;
    return m;
}

/* Each base host walks its own permutation of the table (offset + j * skip mod a prime
 * size visits every slot) and claims the first free slot on its turn. Turns come in rounds:
 * every round a host earns its weight in credit and takes one turn per max-weight of
 * credit, so slot counts end up proportional to weight. */
static uint32_t *build_maglev(struct lb_host **hosts, const uint32_t *w, const uint32_t *base,
                              size_t nb, uint32_t m)
{
    uint32_t *table = malloc((size_t)m * sizeof(*table));
    uint64_t *pos = malloc(nb * sizeof(*pos));
    uint64_t *skip = malloc(nb * sizeof(*skip));
    uint64_t *credit = calloc(nb, sizeof(*credit));
    if (!table || !pos || !skip || !credit) {
        free(table);
        table = NULL;
        goto out;
    }
    uint64_t max_w = 0;
    for (size_t i = 0; i < nb; i++) {
        const struct lb_host *h = hosts[base[i]];
        pos[i] = addr_hash(&h->addr, 0x1f83d9abfb41bd6bull) % m;
        skip[i] = addr_hash(&h->addr, 0x5be0cd19137e2179ull) % (m - 1) + 1;
        if (w[base[i]] > max_w)
            max_w = w[base[i]];
    }
    for (uint32_t i = 0; i < m; i++)
        table[i] = NO_HOST;
    for (uint32_t filled = 0; filled < m;) {
        for (size_t i = 0; i < nb && filled < m; i++) {
            credit[i] += w[base[i]];
            if (credit[i] < max_w)
                continue;
            credit[i] -= max_w;
            while (table[pos[i]] != NO_HOST)
                pos[i] = (pos[i] + skip[i]) % m;
            table[pos[i]] = base[i];
            pos[i] = (pos[i] + skip[i]) % m;
            filled++;
        }
    }
out:
    free(pos);
    free(skip);
    free(credit);
    return table;
}

/* Rank of an endpoint's conditions, for merging duplicates: the one that may take traffic
 * wins. */
static int cond_rank(const struct lb_endpoint *e)
{
    if (e->ready && !e->terminating)
        return 2;
    if (e->serving && e->terminating)
        return 1;
    return 0;
}

static int ep_idx_cmp(const void *a, const void *b, void *arg)
{
    const struct lb_endpoint *eps = arg;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    int c = addr_cmp(&eps[x].addr, &eps[y].addr);
    if (c)
        return c;
    return x < y ? -1 : x > y; /* stable: the first listed comes first */
}

static struct lb_host *find_host(struct lb_host **hosts, size_t n, const struct lb_addr *a,
                                 size_t *at)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = addr_cmp(&hosts[mid]->addr, a);
        if (c == 0) {
            if (at)
                *at = mid;
            return hosts[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int lb_update(struct lb *lb, const struct lb_config *cfg, const struct lb_endpoint *eps, size_t n,
              int64_t now_ns, char *err, size_t err_len)
{
    int rc = check_config(cfg, err, err_len);
    if (rc < 0)
        return rc;
    if (n > UINT32_MAX / 4) {
        fail(err, err_len, "lb: %zu endpoints is too many", n);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const struct lb_endpoint *e = &eps[i];
        if (e->addr.family != AF_INET && e->addr.family != AF_INET6) {
            fail(err, err_len, "endpoints[%zu]: address family %u is not IPv4 or IPv6", i,
                 e->addr.family);
            return -EINVAL;
        }
        if (e->weight < 1 || e->weight > LB_MAX_WEIGHT) {
            fail(err, err_len, "endpoints[%zu]: weight %u out of range 1..%u", i, e->weight,
                 (unsigned)LB_MAX_WEIGHT);
            return -EINVAL;
        }
        if (e->addr.port == 0) {
            fail(err, err_len, "endpoints[%zu]: port 0", i);
            return -EINVAL;
        }
    }

    uint32_t *order = NULL, *base = NULL, *elig = NULL, *maglev = NULL, *wts = NULL;
    uint64_t *cum = NULL;
    bool *kept = NULL, *fresh = NULL;
    struct lb_host **hosts = NULL;
    struct ring_point *ring = NULL;
    size_t n_ring = 0, nu = 0, nb = 0, dups = 0, added = 0;
    uint32_t msize = 0;
    rc = -ENOMEM;

    size_t alloc_n = n ? n : 1;
    order = malloc(alloc_n * sizeof(*order));
    hosts = calloc(alloc_n, sizeof(*hosts));
    fresh = calloc(alloc_n, sizeof(*fresh));
    base = malloc(alloc_n * sizeof(*base));
    elig = malloc(alloc_n * sizeof(*elig));
    cum = malloc(alloc_n * sizeof(*cum));
    kept = calloc(lb->n ? lb->n : 1, sizeof(*kept));
    if (!order || !hosts || !fresh || !base || !elig || !cum || !kept)
        goto unwind;

    /* Sort by address and merge duplicates (a pod in two slices while the controller
     * moves it), keeping the listing with the best conditions. */
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    qsort_r(order, n, sizeof(*order), ep_idx_cmp, (void *)eps);
    for (size_t i = 0; i < n; i++) {
        if (nu && addr_cmp(&eps[order[nu - 1]].addr, &eps[order[i]].addr) == 0) {
            dups++;
            if (cond_rank(&eps[order[i]]) > cond_rank(&eps[order[nu - 1]]))
                order[nu - 1] = order[i];
            continue;
        }
        order[nu++] = order[i];
    }

    /* Hosts: the old object when the address remains, else a new one. Nothing old is
     * modified before every allocation succeeded. */
    for (size_t i = 0; i < nu; i++) {
        size_t at;
        struct lb_host *h = find_host(lb->hosts, lb->n, &eps[order[i]].addr, &at);
        if (h) {
            kept[at] = true;
        } else {
            h = calloc(1, sizeof(*h));
            if (!h)
                goto unwind;
            h->addr = eps[order[i]].addr;
            fresh[i] = true;
            added++;
        }
        hosts[i] = h;
    }

    /* The base set: ready and not terminating; else serving and terminating. */
    for (size_t i = 0; i < nu; i++)
        if (cond_rank(&eps[order[i]]) == 2)
            base[nb++] = (uint32_t)i;
    bool fallback = false;
    if (!nb) {
        for (size_t i = 0; i < nu; i++)
            if (cond_rank(&eps[order[i]]) == 1)
                base[nb++] = (uint32_t)i;
        fallback = nb > 0;
    }

    if (nb && (cfg->type == LB_RING_HASH || cfg->type == LB_MAGLEV)) {
        /* Tables see the new weights; kept hosts keep their old ones until the commit. */
        wts = malloc(nu * sizeof(*wts));
        if (!wts)
            goto unwind;
        for (size_t i = 0; i < nu; i++)
            wts[i] = eps[order[i]].weight;
        if (cfg->type == LB_RING_HASH) {
            ring = build_ring(hosts, wts, base, nb, &n_ring);
            if (!ring)
                goto unwind;
        } else {
            msize = cfg->maglev_size ? cfg->maglev_size : maglev_auto_size(nb);
            if (msize && msize < nb) {
                fail(err, err_len, "lb: maglev_size %u is below the %zu endpoints", msize, nb);
                rc = -EINVAL;
                goto unwind;
            }
            maglev = msize ? build_maglev(hosts, wts, base, nb, msize) : NULL;
            if (!maglev)
                goto unwind;
        }
    }

    /* Commit. */
    size_t removed = 0;
    for (size_t i = 0; i < lb->n; i++) {
        if (kept[i])
            continue;
        removed++;
        host_detach(lb->hosts[i]);
    }
    uint32_t n_ejected = 0;
    for (size_t i = 0; i < nu; i++) {
        struct lb_host *h = hosts[i];
        const struct lb_endpoint *e = &eps[order[i]];
        h->weight = e->weight;
        snprintf(h->zone, sizeof(h->zone), "%s", e->zone ? e->zone : "");
        h->ready = e->ready;
        h->serving = e->serving;
        h->terminating = e->terminating;
        h->swrr_current = 0;
        h->member = true;
        h->eligible = false;
        h->free_cb = cfg->host_free;
        h->free_arg = cfg->host_free_arg;
        if (fresh[i]) {
            h->ewma_ns = (double)cfg->ewma_default_rtt_ns;
            h->ewma_stamp_ns = now_ns;
        }
        n_ejected += h->outlier.ejected;
    }
    free(lb->hosts);
    free(lb->base);
    free(lb->elig);
    free(lb->cum);
    free(lb->ring);
    free(lb->maglev);
    lb->cfg = *cfg;
    lb->hosts = hosts;
    lb->n = nu;
    lb->base = base;
    lb->n_base = nb;
    lb->fallback = fallback;
    lb->elig = elig;
    lb->cum = cum;
    lb->n_elig = 0;
    lb->ring = ring;
    lb->n_ring = n_ring;
    lb->maglev = maglev;
    lb->maglev_size = maglev ? msize : 0;
    lb->dirty = true;
    lb->next_sweep_ms = INT64_MIN; /* recompute on the next pick */
    outlier_set_config(&lb->outlier, &cfg->outlier);
    outlier_set_membership(&lb->outlier, (uint32_t)nu, n_ejected);
    lb->stats.updates++;
    lb->stats.hosts_added += added;
    lb->stats.hosts_removed += removed;
    lb->stats.duplicates += dups;
    free(order);
    free(fresh);
    free(kept);
    free(wts);
    return 0;

unwind:
    if (rc == -ENOMEM)
        fail(err, err_len, "lb: out of memory building %zu endpoints", n);
    for (size_t i = 0; i < nu && hosts; i++)
        if (fresh && fresh[i])
            free(hosts[i]);
    free(order);
    free(hosts);
    free(fresh);
    free(base);
    free(elig);
    free(cum);
    free(kept);
    free(ring);
    free(maglev);
    free(wts);
    return rc;
}

/* ---- picking ---- */

/* Rebuilds the pick set from the base set and the ejection flags. */
static void refresh(struct lb *lb)
{
    size_t healthy = 0;
    for (size_t i = 0; i < lb->n; i++)
        lb->hosts[i]->eligible = false;
    for (size_t i = 0; i < lb->n_base; i++)
        healthy += !lb->hosts[lb->base[i]]->outlier.ejected;
    lb->panic = lb->cfg.panic_percent && lb->n_base &&
                (uint64_t)healthy * 100 < (uint64_t)lb->cfg.panic_percent * lb->n_base;
    uint64_t sum = 0;
    size_t k = 0;
    for (size_t i = 0; i < lb->n_base; i++) {
        struct lb_host *h = lb->hosts[lb->base[i]];
        if (!lb->panic && h->outlier.ejected)
            continue;
        h->eligible = true;
        h->elig_pos = (uint32_t)k;
        sum += h->weight;
        lb->elig[k] = lb->base[i];
        lb->cum[k++] = sum;
    }
    lb->n_elig = k;
    lb->dirty = false;
}

void lb_sweep(struct lb *lb, int64_t now_ns)
{
    int64_t now_ms = ns_to_ms(now_ns), next = INT64_MAX;
    for (size_t i = 0; i < lb->n; i++) {
        struct outlier_host *o = &lb->hosts[i]->outlier;
        if (outlier_tick(&lb->outlier, o, now_ms))
            lb->dirty = true;
        int64_t t = outlier_next_ms(&lb->outlier, o);
        if (t < next)
            next = t;
    }
    lb->next_sweep_ms = next;
}

static struct lb_host *at_elig(const struct lb *lb, size_t pos)
{
    return lb->hosts[lb->elig[pos]];
}

/* Weighted random over the pick set, without ex (which is eligible or NULL). */
static struct lb_host *pick_weighted(struct lb *lb, struct prng *rng, const struct lb_host *ex)
{
    uint64_t total = lb->cum[lb->n_elig - 1];
    uint64_t r;
    if (ex) {
        uint64_t before = lb->cum[ex->elig_pos] - ex->weight;
        r = prng_below(rng, total - ex->weight);
        if (r >= before)
            r += ex->weight;
    } else {
        r = prng_below(rng, total);
    }
    size_t lo = 0, hi = lb->n_elig - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (lb->cum[mid] > r)
            hi = mid;
        else
            lo = mid + 1;
    }
    return at_elig(lb, lo);
}

static struct lb_host *pick_swrr(struct lb *lb, const struct lb_host *ex)
{
    struct lb_host *best = NULL;
    int64_t total = 0;
    for (size_t i = 0; i < lb->n_elig; i++) {
        struct lb_host *h = at_elig(lb, i);
        if (h == ex)
            continue;
        h->swrr_current += h->weight;
        total += h->weight;
        if (!best || h->swrr_current > best->swrr_current)
            best = h;
    }
    best->swrr_current -= total;
    return best;
}

double lb_ewma_ns(const struct lb *lb, const struct lb_host *h, int64_t now_ns)
{
    int64_t dt = now_ns - h->ewma_stamp_ns;
    if (dt <= 0)
        return h->ewma_ns;
    return h->ewma_ns * exp_neg((double)dt / (double)lb->cfg.ewma_decay_ns);
}

/* true when a is strictly cheaper than b. Costs are divided by weight, so compare
 * cross-multiplied. */
static bool cheaper(const struct lb *lb, const struct lb_host *a, const struct lb_host *b,
                    int64_t now_ns)
{
    double ca = (double)a->active + 1, cb = (double)b->active + 1;
    if (lb->cfg.type == LB_PEAK_EWMA) {
        ca *= lb_ewma_ns(lb, a, now_ns);
        cb *= lb_ewma_ns(lb, b, now_ns);
    }
    return ca * b->weight < cb * a->weight;
}

static struct lb_host *pick_p2c(struct lb *lb, struct prng *rng, const struct lb_host *ex,
                                int64_t now_ns)
{
    size_t m = lb->n_elig - (ex ? 1 : 0);
    size_t skip = ex ? ex->elig_pos : SIZE_MAX;
    if (m == 1)
        return at_elig(lb, skip == 0 ? 1 : 0);
    size_t a = (size_t)prng_below(rng, m);
    size_t b = (size_t)prng_below(rng, m - 1);
    if (b >= a)
        b++;
    if (a >= skip)
        a++;
    if (b >= skip)
        b++;
    struct lb_host *ha = at_elig(lb, a), *hb = at_elig(lb, b);
    return cheaper(lb, hb, ha, now_ns) ? hb : ha;
}

static bool usable(const struct lb_host *h, const struct lb_host *ex)
{
    return h->eligible && h != ex;
}

static struct lb_host *pick_ring(struct lb *lb, uint64_t key, const struct lb_host *ex)
{
    size_t lo = 0, hi = lb->n_ring;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (lb->ring[mid].hash < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = 0; k < lb->n_ring; k++) {
        struct lb_host *h = lb->hosts[lb->ring[(lo + k) % lb->n_ring].host];
        if (usable(h, ex))
            return h;
    }
    return NULL;
}

static struct lb_host *pick_maglev(struct lb *lb, uint64_t key, const struct lb_host *ex)
{
    uint32_t m = lb->maglev_size;
    uint32_t at = (uint32_t)(key % m);
    for (uint32_t k = 0; k < m; k++) {
        struct lb_host *h = lb->hosts[lb->maglev[(at + k) % m]];
        if (usable(h, ex))
            return h;
    }
    return NULL;
}

struct lb_host *lb_pick(struct lb *lb, const struct lb_pick_ctx *ctx)
{
    if (ns_to_ms(ctx->now_ns) >= lb->next_sweep_ms)
        lb_sweep(lb, ctx->now_ns);
    if (lb->dirty)
        refresh(lb);
    if (!lb->n_elig) {
        lb->stats.no_host++;
        return NULL;
    }
    /* Only an eligible host of this lb can be skipped, and only if another is left. The
     * pointer may be stale (the host left and was freed since the previous attempt): it is
     * compared with the eligible hosts, never read, until it is found among them. */
    const struct lb_host *ex = NULL;
    if (ctx->exclude && lb->n_elig >= 2)
        for (size_t i = 0; i < lb->n_elig && !ex; i++)
            if (at_elig(lb, i) == ctx->exclude)
                ex = ctx->exclude;

    struct lb_host *h = NULL;
    switch (lb->cfg.type) {
    case LB_ROUND_ROBIN:
        h = pick_swrr(lb, ex);
        break;
    case LB_RANDOM:
        h = pick_weighted(lb, ctx->rng, ex);
        break;
    case LB_LEAST_REQUEST:
    case LB_PEAK_EWMA:
        h = pick_p2c(lb, ctx->rng, ex, ctx->now_ns);
        break;
    case LB_RING_HASH:
    case LB_MAGLEV:
        if (!ctx->has_hash) {
            lb->stats.hash_missing++;
            h = pick_weighted(lb, ctx->rng, ex);
        } else if (lb->cfg.type == LB_RING_HASH) {
            h = pick_ring(lb, ctx->hash, ex);
        } else {
            h = pick_maglev(lb, ctx->hash, ex);
        }
        /* A Maglev host with a tiny weight may own no slot at all. */
        if (!h)
            h = pick_weighted(lb, ctx->rng, ex);
        break;
    }
    lb->stats.picks++;
    if (lb->panic)
        lb->stats.panic_picks++;
    if (lb->fallback)
        lb->stats.fallback_picks++;
    return h;
}

/* ---- runtime feedback ---- */

void lb_request_start(struct lb_host *h)
{
    h->active++;
    h->rq.rq_total++;
}

void lb_count_timeout(struct lb_host *h)
{
    h->rq.rq_timeout++;
}

void lb_request_end(struct lb_host *h)
{
    if (h->active)
        h->active--;
    if (!h->member && !h->active)
        host_free(h);
}

void lb_observe(const struct lb *lb, struct lb_host *h, int64_t rtt_ns, int64_t now_ns)
{
    double rtt = rtt_ns > 0 ? (double)rtt_ns : 0.0;
    int64_t dt = now_ns - h->ewma_stamp_ns;
    if (rtt > h->ewma_ns) {
        h->ewma_ns = rtt; /* peak: a slow sample counts in full at once */
    } else if (dt > 0) {
        double keep = exp_neg((double)dt / (double)lb->cfg.ewma_decay_ns);
        h->ewma_ns = h->ewma_ns * keep + rtt * (1 - keep);
    }
    if (dt > 0)
        h->ewma_stamp_ns = now_ns;
}

enum outlier_event lb_report(struct lb *lb, struct lb_host *h, enum outlier_result r,
                             int64_t now_ns)
{
    if (r == OUTLIER_SUCCESS)
        h->rq.rq_success++;
    else
        h->rq.rq_error++;
    if (!h->member)
        return OUTLIER_EV_NONE;
    enum outlier_event ev = outlier_report(&lb->outlier, &h->outlier, r, ns_to_ms(now_ns));
    if (ev == OUTLIER_EV_EJECTED) {
        h->rq.ejections++;
        lb->dirty = true;
        if (h->outlier.eject_until_ms < lb->next_sweep_ms)
            lb->next_sweep_ms = h->outlier.eject_until_ms;
    }
    return ev;
}

/* ---- introspection ---- */

const struct lb_stats *lb_get_stats(const struct lb *lb)
{
    return &lb->stats;
}

const struct outlier *lb_get_outlier(const struct lb *lb)
{
    return &lb->outlier;
}

enum lb_type lb_get_type(const struct lb *lb)
{
    return lb->cfg.type;
}

size_t lb_size(const struct lb *lb)
{
    return lb->n;
}

struct lb_host *lb_host_at(struct lb *lb, size_t i)
{
    return i < lb->n ? lb->hosts[i] : NULL;
}

struct lb_host *lb_find(struct lb *lb, const struct lb_addr *a)
{
    return find_host(lb->hosts, lb->n, a, NULL);
}

bool lb_in_panic(struct lb *lb)
{
    if (lb->dirty)
        refresh(lb);
    return lb->panic;
}

size_t lb_usable(struct lb *lb)
{
    if (lb->dirty)
        refresh(lb);
    return lb->n_elig;
}

uint32_t lb_maglev_size(const struct lb *lb)
{
    return lb->maglev_size;
}

size_t lb_ring_points(const struct lb *lb)
{
    return lb->n_ring;
}
