/*
 * lb_test.c - sidecar/lb: smooth WRR's exact sequence and counts, weighted random within
 * tolerance, P2C least request and PeakEWMA preferences, ring hash and Maglev affinity,
 * spread and minimal disruption, the exclude hint, EndpointSlice conditions (terminating,
 * the kube-proxy fallback), outlier ejection and panic mode, and lb_update keeping runtime
 * state (and the lifetime of removed hosts).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lb.h"
#include "model.h"
#include "prng.h"
#include "tap.h"

#define NOW0 (1000ll * 1000 * 1000 * 1000) /* 1000 s, in ns */
#define MS   (1000ll * 1000)
#define SEC  (1000ll * MS)

static struct prng rng;

static struct lb_endpoint ep4(int last, uint32_t w)
{
    struct lb_endpoint e = {.weight = w, .ready = true, .serving = true};
    uint8_t ip[4] = {10, 0, (uint8_t)(last >> 8), (uint8_t)last};
    lb_addr_set(&e.addr, AF_INET, ip, 8080);
    return e;
}

static struct lb_config config(enum lb_type t)
{
    struct lb_config c;
    lb_config_default(&c);
    c.type = t;
    return c;
}

static struct lb *mk(enum lb_type t, const struct lb_endpoint *eps, size_t n)
{
    struct lb_config c = config(t);
    char err[200] = "";
    struct lb *lb = lb_create(&c, err, sizeof(err));
    if (!lb || lb_update(lb, &c, eps, n, NOW0, err, sizeof(err)) < 0) {
        printf("# lb setup failed: %s\n", err);
        exit(1);
    }
    return lb;
}

static struct lb_pick_ctx ctx(int64_t now)
{
    return (struct lb_pick_ctx){.rng = &rng, .now_ns = now};
}

/* The index (in lb_host_at order) of h, or -1. */
static int idx(struct lb *lb, const struct lb_host *h)
{
    for (size_t i = 0; i < lb_size(lb); i++)
        if (lb_host_at(lb, i) == h)
            return (int)i;
    return -1;
}

static void count_picks(struct lb *lb, int n, long *counts)
{
    struct lb_pick_ctx c = ctx(NOW0);
    for (int i = 0; i < n; i++) {
        int k = idx(lb, lb_pick(lb, &c));
        if (k >= 0)
            counts[k]++;
    }
}

static void test_swrr(void)
{
    struct lb_endpoint e[] = {ep4(1, 5), ep4(2, 1), ep4(3, 1)};
    struct lb *lb = mk(LB_ROUND_ROBIN, e, 3);
    char seq[8] = "";
    struct lb_pick_ctx c = ctx(NOW0);
    for (int i = 0; i < 7; i++)
        seq[i] = (char)('a' + idx(lb, lb_pick(lb, &c)));
    is_str(seq, "aabacaa", "weights 5:1:1: nginx's smooth sequence");
    long counts[3] = {0};
    count_picks(lb, 70000, counts);
    ok(counts[0] == 50000 && counts[1] == 10000 && counts[2] == 10000,
       "70,000 picks: exactly 50000/10000/10000 (got %ld/%ld/%ld)", counts[0], counts[1],
       counts[2]);
    for (size_t i = 0; i < 3; i++) {
        e[i].weight = 1;
    }
    struct lb_config cf = config(LB_ROUND_ROBIN);
    lb_update(lb, &cf, e, 3, NOW0, NULL, 0);
    for (int i = 0; i < 6; i++)
        seq[i] = (char)('a' + idx(lb, lb_pick(lb, &c)));
    seq[6] = 0;
    is_str(seq, "abcabc", "equal weights: plain rotation");
    lb_destroy(lb);

    /* many hosts, mixed weights: counts per cycle are exact */
    struct lb_endpoint m[20];
    long total_w = 0;
    for (int i = 0; i < 20; i++) {
        m[i] = ep4(i + 1, (uint32_t)(i % 4 + 1));
        total_w += i % 4 + 1;
    }
    lb = mk(LB_ROUND_ROBIN, m, 20);
    long cm[20] = {0};
    count_picks(lb, (int)(total_w * 1000), cm);
    int exact = 1;
    for (int i = 0; i < 20; i++)
        exact &= cm[i] == (long)(i % 4 + 1) * 1000;
    ok(exact, "20 hosts, weights 1..4: counts exactly proportional over whole cycles");
    lb_destroy(lb);
}

static void test_random(void)
{
    struct lb_endpoint e[] = {ep4(1, 5), ep4(2, 3), ep4(3, 2)};
    struct lb *lb = mk(LB_RANDOM, e, 3);
    long counts[3] = {0};
    const int n = 200000;
    count_picks(lb, n, counts);
    double want[] = {0.5, 0.3, 0.2};
    for (int i = 0; i < 3; i++) {
        double share = (double)counts[i] / n;
        ok(share > want[i] * 0.98 && share < want[i] * 1.02,
           "random 5:3:2: host %d share %.4f within 2%% of %.1f", i, share, want[i]);
    }
    lb_destroy(lb);
}

static void test_least_request(void)
{
    struct lb_endpoint e[] = {ep4(1, 1), ep4(2, 1), ep4(3, 1), ep4(4, 1)};
    struct lb *lb = mk(LB_LEAST_REQUEST, e, 4);
    for (int i = 1; i < 4; i++)
        for (int k = 0; k < 5; k++)
            lb_request_start(lb_host_at(lb, (size_t)i));
    long counts[4] = {0};
    const int n = 100000;
    count_picks(lb, n, counts);
    double share = (double)counts[0] / n;
    ok(share > 0.48 && share < 0.52,
       "P2C: the idle host wins whenever drawn, 1 - C(3,2)/C(4,2) = 50%% (got %.3f)", share);

    for (int i = 1; i < 4; i++)
        for (int k = 0; k < 5; k++)
            lb_request_end(lb_host_at(lb, (size_t)i));

    /* closed loop: a host whose requests take 10x longer ends up with far fewer picks */
    lb_destroy(lb);
    lb = mk(LB_LEAST_REQUEST, e, 4);
    struct lb_host *inflight[4096];
    int64_t done_at[4096];
    int nf = 0;
    long got[4] = {0};
    struct lb_pick_ctx c = ctx(NOW0);
    for (int64_t t = 0; t < 20000; t++) {
        for (int i = 0; i < nf;) {
            if (done_at[i] <= t) {
                lb_request_end(inflight[i]);
                inflight[i] = inflight[--nf];
                done_at[i] = done_at[nf];
            } else {
                i++;
            }
        }
        for (int k = 0; k < 4 && nf < 4096; k++) {
            struct lb_host *h = lb_pick(lb, &c);
            lb_request_start(h);
            int hi = idx(lb, h);
            got[hi]++;
            inflight[nf] = h;
            done_at[nf++] = t + (hi == 0 ? 10 : 1);
        }
    }
    ok(got[0] * 3 < got[1], "closed loop: the slow host gets far fewer requests (%ld vs %ld)",
       got[0], got[1]);
    while (nf)
        lb_request_end(inflight[--nf]);
    lb_destroy(lb);

    /* weight counts: (active + 1) / weight */
    struct lb_endpoint w[] = {ep4(1, 2), ep4(2, 1)};
    lb = mk(LB_LEAST_REQUEST, w, 2);
    for (int k = 0; k < 3; k++) {
        lb_request_start(lb_host_at(lb, 0));
        lb_request_start(lb_host_at(lb, 1));
    }
    long cw[2] = {0};
    count_picks(lb, 1000, cw);
    ok(cw[0] == 1000, "equal load, weights 2:1: the heavier host always wins");
    for (int k = 0; k < 3; k++) {
        lb_request_end(lb_host_at(lb, 0));
        lb_request_end(lb_host_at(lb, 1));
    }
    lb_destroy(lb);
}

static void test_peak_ewma(void)
{
    struct lb_endpoint e[] = {ep4(1, 1), ep4(2, 1)};
    struct lb *lb = mk(LB_PEAK_EWMA, e, 2);
    struct lb_host *fast = lb_host_at(lb, 0), *slow = lb_host_at(lb, 1);
    ok(lb_ewma_ns(lb, fast, NOW0) == (double)LB_DEFAULT_RTT_NS,
       "new host starts at the default RTT");
    int64_t now = NOW0;
    for (int i = 0; i < 600; i++) { /* a minute of samples: 6 decay periods */
        now += 100 * MS;
        lb_observe(lb, fast, 1 * MS, now);
        lb_observe(lb, slow, 50 * MS, now);
    }
    double f = lb_ewma_ns(lb, fast, now), s = lb_ewma_ns(lb, slow, now);
    ok(f < 2.0 * MS, "fast host's estimate converges near 1 ms (%.0f ns)", f);
    ok(s > 49.0 * MS && s <= 50.0 * MS, "slow host's estimate is its peak 50 ms (%.0f ns)", s);
    long counts[2] = {0};
    struct lb_pick_ctx c = ctx(now);
    for (int i = 0; i < 10000; i++)
        counts[idx(lb, lb_pick(lb, &c))]++;
    is_int(counts[0], 10000, "PeakEWMA: the fast host wins every pick");

    for (int k = 0; k < 100; k++)
        lb_request_start(fast);
    struct lb_host *h = lb_pick(lb, &c);
    ok(h == slow, "100 requests in flight on the fast host: cost 101 ms > 50 ms, slow wins");
    for (int k = 0; k < 100; k++)
        lb_request_end(fast);

    /* peak: one slow sample counts at once */
    lb_observe(lb, fast, 200 * MS, now + 1);
    ok(lb_ewma_ns(lb, fast, now + 1) == 200.0 * MS, "a 200 ms sample lifts the estimate at once");
    h = lb_pick(lb, &(struct lb_pick_ctx){.rng = &rng, .now_ns = now + 1});
    ok(h == slow, "after its peak the formerly fast host loses");
    /* decay towards 0 when idle: e^-1 after one decay period */
    double d = lb_ewma_ns(lb, fast, now + 1 + LB_DEFAULT_EWMA_DECAY_NS);
    ok(d > 200.0 * MS * 0.3677 && d < 200.0 * MS * 0.3680, "idle decay: e^-1 after 10 s (%.0f)", d);
    /* a smaller sample moves the estimate by 1 - e^(-dt/decay) */
    lb_observe(lb, fast, 0, now + 1 + LB_DEFAULT_EWMA_DECAY_NS);
    double after = fast->ewma_ns;
    ok(after > 200.0 * MS * 0.3677 && after < 200.0 * MS * 0.3680,
       "a 0 ms sample after 10 s keeps e^-1 of the old estimate (%.0f)", after);
    lb_destroy(lb);
}

static uint64_t key_hash(int k)
{
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "user-%d", k);
    return lb_hash(buf, (size_t)len);
}

/* Picks for nkeys keys; owner[k] gets the host's address last byte. */
static void owners(struct lb *lb, int nkeys, int *owner)
{
    for (int k = 0; k < nkeys; k++) {
        struct lb_pick_ctx c = ctx(NOW0);
        c.has_hash = true;
        c.hash = key_hash(k);
        struct lb_host *h = lb_pick(lb, &c);
        owner[k] = h ? h->addr.ip[3] : -1;
    }
}

static void test_hash(enum lb_type t)
{
    const char *name = lb_type_str(t);
    enum { NK = 100000, NH = 10 };
    static int before[NK], after[NK];
    struct lb_endpoint e[NH];
    for (int i = 0; i < NH; i++)
        e[i] = ep4(i + 1, 1);
    struct lb *lb = mk(t, e, NH);
    if (t == LB_MAGLEV)
        is_int(lb_maglev_size(lb), 65537, "Maglev: 10 hosts use the 65537 table");
    else
        is_int(lb_ring_points(lb), 10 * 1000, "RingHash: 10 hosts x 1000 points");

    owners(lb, NK, before);
    owners(lb, NK, after);
    ok(!memcmp(before, after, sizeof(before)), "%s: the same key always maps to the same host",
       name);

    long counts[NH + 2] = {0};
    for (int k = 0; k < NK; k++)
        counts[before[k]]++;
    double lo = 1, hi = 0;
    for (int i = 1; i <= NH; i++) {
        double s = (double)counts[i] / NK;
        lo = s < lo ? s : lo;
        hi = s > hi ? s : hi;
    }
    double tol = t == LB_MAGLEV ? 0.05 : 0.10;
    ok(lo > 0.1 * (1 - tol) && hi < 0.1 * (1 + tol),
       "%s: 100,000 keys over 10 hosts, every share within %.0f%% of 10%% (%.4f..%.4f)", name,
       tol * 100, lo, hi);

    /* remove host 4: only its keys move */
    struct lb_endpoint e9[NH - 1];
    for (int i = 0, j = 0; i < NH; i++)
        if (i != 3)
            e9[j++] = e[i];
    struct lb_config c = config(t);
    is_int(lb_update(lb, &c, e9, NH - 1, NOW0, NULL, 0), 0, "update to 9 hosts");
    owners(lb, NK, after);
    long stable = 0, moved_others = 0;
    for (int k = 0; k < NK; k++) {
        stable += before[k] == after[k];
        moved_others += before[k] != 4 && before[k] != after[k];
    }
    ok(stable >= NK * 70 / 100, "%s: %.1f%% of keys keep their host after removing 1 of 10", name,
       100.0 * stable / NK);
    if (t == LB_RING_HASH)
        is_int(moved_others, 0, "RingHash: no key of a remaining host moves");
    else
        ok(moved_others < NK / 50, "Maglev: under 2%% of other hosts' keys move (%ld)",
           moved_others);

    /* add it back: the original mapping returns */
    is_int(lb_update(lb, &c, e, NH, NOW0, NULL, 0), 0, "update back to 10 hosts");
    owners(lb, NK, after);
    long same = 0;
    for (int k = 0; k < NK; k++)
        same += before[k] == after[k];
    ok(t == LB_RING_HASH ? same == NK : same >= NK * 97 / 100,
       "%s: restoring the host restores the mapping (%ld of %d)", name, same, (int)NK);

    /* exclude: the retry gets another host, deterministically */
    struct lb_pick_ctx pc = ctx(NOW0);
    pc.has_hash = true;
    pc.hash = key_hash(7);
    struct lb_host *first = lb_pick(lb, &pc);
    pc.exclude = first;
    struct lb_host *second = lb_pick(lb, &pc);
    ok(second && second != first && lb_pick(lb, &pc) == second,
       "%s: excluding the key's host gives a stable second choice", name);

    /* no key: random, counted */
    pc = ctx(NOW0);
    ok(lb_pick(lb, &pc) != NULL, "%s: no key still picks", name);
    is_int(lb_get_stats(lb)->hash_missing, 1, "hash_missing counted");
    lb_destroy(lb);

    /* weights 1:2 */
    struct lb_endpoint w[] = {ep4(1, 1), ep4(2, 2)};
    lb = mk(t, w, 2);
    owners(lb, NK, before);
    long c1 = 0;
    for (int k = 0; k < NK; k++)
        c1 += before[k] == 1;
    double s1 = (double)c1 / NK;
    ok(s1 > 0.3333 * 0.95 && s1 < 0.3333 * 1.05, "%s: weights 1:2 give the first host 1/3 (%.4f)",
       name, s1);
    lb_destroy(lb);
}

static void test_maglev_size(void)
{
    enum { N = 1000 };
    static struct lb_endpoint e[N];
    for (int i = 0; i < N; i++)
        e[i] = ep4(i + 1, 1);
    struct lb *lb = mk(LB_MAGLEV, e, N);
    uint32_t m = lb_maglev_size(lb);
    int prime = m > 1;
    for (uint32_t d = 2; (uint64_t)d * d <= m; d++)
        prime &= m % d != 0;
    ok(m >= 100 * N && prime, "1000 hosts: table size %u is a prime >= 100 x hosts", m);
    lb_destroy(lb);

    struct lb_config c = config(LB_MAGLEV);
    c.maglev_size = 65536;
    char err[200] = "";
    ok(!lb_create(&c, err, sizeof(err)) && strstr(err, "not a prime"),
       "maglev_size must be prime: %s", err);
    c.maglev_size = 7;
    lb = lb_create(&c, err, sizeof(err));
    ok(lb_update(lb, &c, e, 10, NOW0, err, sizeof(err)) == -EINVAL && strstr(err, "below"),
       "maglev_size below the host count refused: %s", err);
    lb_destroy(lb);
}

static void test_exclude(void)
{
    enum lb_type types[] = {LB_ROUND_ROBIN, LB_RANDOM, LB_LEAST_REQUEST, LB_PEAK_EWMA};
    struct lb_endpoint e[] = {ep4(1, 5), ep4(2, 1), ep4(3, 1)};
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        struct lb *lb = mk(types[t], e, 3);
        int bad = 0;
        struct lb_pick_ctx c = ctx(NOW0);
        for (int i = 0; i < 3000; i++) {
            c.exclude = lb_host_at(lb, (size_t)(i % 3));
            struct lb_host *h = lb_pick(lb, &c);
            bad += !h || h == c.exclude;
        }
        ok(!bad, "%s: the excluded host is never picked while others are usable",
           lb_type_str(types[t]));
        lb_destroy(lb);
        lb = mk(types[t], e, 1);
        c.exclude = lb_host_at(lb, 0);
        ok(lb_pick(lb, &c) == c.exclude, "%s: a lone host is picked even when excluded",
           lb_type_str(types[t]));
        lb_destroy(lb);
    }
    /* the previous attempt's host left the Service (and was freed) before the retry: the
     * stale pointer is only compared (ASan caught lb_pick reading it) */
    {
        struct lb *lb2 = mk(LB_ROUND_ROBIN, e, 3);
        struct lb_config cf = config(LB_ROUND_ROBIN);
        struct lb_pick_ctx c2 = ctx(NOW0);
        c2.exclude = lb_host_at(lb2, 0);
        is_int(lb_update(lb2, &cf, e + 1, 2, NOW0, NULL, 0), 0, "exclude: its host removed");
        int got = 0;
        for (int i = 0; i < 10; i++)
            got += lb_pick(lb2, &c2) != NULL;
        is_int(got, 10, "exclude: a freed host as the hint still picks from the others");
        lb_destroy(lb2);
    }
    /* random with exclude keeps the others' proportions */
    struct lb_endpoint r[] = {ep4(1, 1), ep4(2, 3), ep4(3, 1)};
    struct lb *lb = mk(LB_RANDOM, r, 3);
    struct lb_pick_ctx c = ctx(NOW0);
    c.exclude = lb_host_at(lb, 0);
    long counts[3] = {0};
    for (int i = 0; i < 100000; i++)
        counts[idx(lb, lb_pick(lb, &c))]++;
    double s = (double)counts[1] / 100000;
    ok(counts[0] == 0 && s > 0.75 * 0.98 && s < 0.75 * 1.02,
       "random excluding host 0: the others split 3:1 (%.4f)", s);
    lb_destroy(lb);
}

static void test_conditions(void)
{
    struct lb_endpoint e[] = {ep4(1, 1), ep4(2, 1), ep4(3, 1)};
    e[1].ready = false; /* terminating, still serving */
    e[1].terminating = true;
    e[2].ready = false; /* not ready, not serving */
    e[2].serving = false;
    struct lb *lb = mk(LB_ROUND_ROBIN, e, 3);
    long counts[3] = {0};
    count_picks(lb, 100, counts);
    ok(counts[0] == 100, "only the ready host gets requests (terminating and not-ready get none)");
    is_int(lb_get_stats(lb)->fallback_picks, 0, "no fallback while a host is ready");

    /* ready and terminating (publishNotReadyAddresses): still no new requests */
    e[0].terminating = true;
    struct lb_config c = config(LB_ROUND_ROBIN);
    lb_update(lb, &c, e, 3, NOW0, NULL, 0);
    memset(counts, 0, sizeof(counts));
    count_picks(lb, 100, counts);
    ok(counts[0] + counts[1] == 100 && counts[2] == 0,
       "none ready: fall back to serving+terminating hosts (kube-proxy)");
    is_int(lb_get_stats(lb)->fallback_picks, 100, "fallback picks counted");

    e[0].serving = false;
    e[1].serving = false;
    lb_update(lb, &c, e, 3, NOW0, NULL, 0);
    struct lb_pick_ctx pc = ctx(NOW0);
    ok(lb_pick(lb, &pc) == NULL, "nothing ready or serving: NULL (503 UH)");
    is_int(lb_get_stats(lb)->no_host, 1, "no_host counted");
    lb_update(lb, &c, NULL, 0, NOW0, NULL, 0);
    ok(lb_pick(lb, &pc) == NULL, "no endpoints: NULL");
    lb_destroy(lb);
}

static void test_ejection_and_panic(void)
{
    struct lb_endpoint e[] = {ep4(1, 1), ep4(2, 1), ep4(3, 1), ep4(4, 1)};
    struct lb_config c = config(LB_ROUND_ROBIN);
    c.outlier.enabled = true;
    c.outlier.consecutive_5xx = 2;
    c.outlier.max_ejection_percent = 100;
    char err[200];
    struct lb *lb = lb_create(&c, err, sizeof(err));
    lb_update(lb, &c, e, 4, NOW0, err, sizeof(err));
    struct lb_host *h0 = lb_host_at(lb, 0), *h1 = lb_host_at(lb, 1), *h2 = lb_host_at(lb, 2);

    ok(lb_report(lb, h0, OUTLIER_ERROR_5XX, NOW0) == OUTLIER_EV_NONE, "one 5xx: nothing");
    ok(lb_report(lb, h0, OUTLIER_GATEWAY, NOW0) == OUTLIER_EV_EJECTED, "second 5xx ejects host 0");
    long counts[4] = {0};
    count_picks(lb, 300, counts);
    ok(counts[0] == 0 && counts[1] == 100 && counts[2] == 100 && counts[3] == 100,
       "ejected host gets nothing, the rest share evenly");
    lb_report(lb, h1, OUTLIER_ERROR_5XX, NOW0);
    lb_report(lb, h1, OUTLIER_ERROR_5XX, NOW0);
    ok(!lb_in_panic(lb), "2 of 4 healthy = 50%%: not below the threshold, no panic");
    is_int(lb_usable(lb), 2, "two usable");
    lb_report(lb, h2, OUTLIER_ERROR_5XX, NOW0);
    lb_report(lb, h2, OUTLIER_ERROR_5XX, NOW0);
    ok(lb_in_panic(lb), "1 of 4 healthy = 25%% < 50%%: panic");
    memset(counts, 0, sizeof(counts));
    count_picks(lb, 400, counts);
    ok(counts[0] == 100 && counts[1] == 100 && counts[2] == 100 && counts[3] == 100,
       "panic: balance over every host, ejected ones included");
    is_int(lb_get_stats(lb)->panic_picks, 400, "panic picks counted");
    is_int(lb_get_outlier(lb)->n_ejected, 3, "three ejected");

    /* time passes: the pick itself un-ejects (30 s base ejection) */
    struct lb_pick_ctx pc = ctx(NOW0 + 30 * SEC);
    lb_pick(lb, &pc);
    ok(!lb_in_panic(lb), "after 30 s every host is back, no panic");
    is_int(lb_get_outlier(lb)->n_ejected, 0, "none ejected");
    is_int(lb_get_outlier(lb)->stats.unejections, 3, "three un-ejections");
    is_int(lb_usable(lb), 4, "four usable");

    /* panic disabled: everything ejected means no host */
    c.panic_percent = 0;
    lb_update(lb, &c, e, 4, NOW0 + 30 * SEC, err, sizeof(err));
    for (size_t i = 0; i < 4; i++) {
        lb_report(lb, lb_host_at(lb, i), OUTLIER_ERROR_5XX, NOW0 + 31 * SEC);
        lb_report(lb, lb_host_at(lb, i), OUTLIER_ERROR_5XX, NOW0 + 31 * SEC);
    }
    pc = ctx(NOW0 + 31 * SEC);
    ok(lb_pick(lb, &pc) == NULL, "panic_percent 0 and every host ejected: NULL");
    is_int(lb_get_outlier(lb)->stats.ejections, 7, "seven ejections in all");
    pc = ctx(NOW0 + 31 * SEC + 60 * SEC);
    ok(lb_pick(lb, &pc) != NULL, "second ejections last 2 x 30 s; after that hosts return");

    /* max ejection percent through the lb */
    c.outlier.max_ejection_percent = 25;
    lb_update(lb, &c, e, 4, NOW0 + 100 * SEC, err, sizeof(err));
    for (size_t i = 0; i < 4; i++) {
        lb_report(lb, lb_host_at(lb, i), OUTLIER_ERROR_5XX, NOW0 + 100 * SEC);
        lb_report(lb, lb_host_at(lb, i), OUTLIER_ERROR_5XX, NOW0 + 100 * SEC);
    }
    is_int(lb_get_outlier(lb)->n_ejected, 1, "25%% of 4: only one ejected");
    is_int(lb_get_outlier(lb)->stats.skipped_max_percent, 3, "three ejections skipped");
    lb_destroy(lb);
}

static int freed[16];
static int n_freed;

static void on_free(struct lb_host *h, void *arg)
{
    (void)arg;
    if (n_freed < 16)
        freed[n_freed++] = h->addr.ip[3];
}

static void test_update_keeps_state(void)
{
    struct lb_endpoint e[] = {ep4(1, 1), ep4(2, 1), ep4(3, 1)};
    struct lb_config c = config(LB_PEAK_EWMA);
    c.outlier.enabled = true;
    c.outlier.consecutive_5xx = 1;
    c.outlier.max_ejection_percent = 100;
    c.host_free = on_free;
    char err[200];
    struct lb *lb = lb_create(&c, err, sizeof(err));
    lb_update(lb, &c, e, 3, NOW0, err, sizeof(err));
    struct lb_host *b = lb_host_at(lb, 1), *cc = lb_host_at(lb, 2);
    int user_b = 2, user_c = 3;
    b->user = &user_b;
    cc->user = &user_c;
    lb_request_start(b);
    lb_observe(lb, b, 7 * MS, NOW0 + SEC);
    double ewma_b = b->ewma_ns;
    lb_report(lb, cc, OUTLIER_ERROR_5XX, NOW0);
    ok(cc->outlier.ejected, "host c ejected before the update");

    /* a leaves, d arrives; b and c remain (listed in another order, new weight for b) */
    struct lb_endpoint e2[] = {ep4(4, 1), ep4(3, 1), ep4(2, 3)};
    n_freed = 0;
    is_int(lb_update(lb, &c, e2, 3, NOW0 + 2 * SEC, err, sizeof(err)), 0, "update: b, c, d");
    is_int(n_freed, 1, "a, idle, freed at once");
    is_int(freed[0], 1, "the freed host is a");
    ok(lb_host_at(lb, 0) == b && lb_host_at(lb, 1) == cc, "b and c are the same objects");
    is_int(b->active, 1, "b keeps its active request");
    ok(b->ewma_ns == ewma_b, "b keeps its EWMA");
    is_int(b->weight, 3, "b takes its new weight");
    ok(b->user == &user_b && cc->user == &user_c, "user pointers kept");
    ok(cc->outlier.ejected, "c is still ejected");
    is_int(lb_get_outlier(lb)->n_ejected, 1, "ejection count carried over");
    is_int(lb_get_outlier(lb)->n_hosts, 3, "three members");
    struct lb_host *d = lb_host_at(lb, 2);
    ok(d->addr.ip[3] == 4 && d->active == 0 && !d->outlier.ejected, "d is fresh");
    ok(lb_ewma_ns(lb, d, NOW0 + 2 * SEC) == (double)LB_DEFAULT_RTT_NS,
       "d starts at the default RTT");
    is_int(lb_get_stats(lb)->hosts_added, 4, "hosts added: 3 then 1");
    is_int(lb_get_stats(lb)->hosts_removed, 1, "hosts removed: 1");

    /* b leaves while its request is in flight: detached, freed by the last end */
    struct lb_endpoint e3[] = {ep4(3, 1), ep4(4, 1)};
    n_freed = 0;
    lb_update(lb, &c, e3, 2, NOW0 + 3 * SEC, err, sizeof(err));
    is_int(n_freed, 0, "b, busy, not freed yet");
    ok(lb_find(lb, &b->addr) == NULL, "b is no longer a member");
    ok(lb_report(lb, b, OUTLIER_ERROR_5XX, NOW0 + 3 * SEC) == OUTLIER_EV_NONE,
       "reports on a detached host are ignored");
    struct lb_pick_ctx pc = ctx(NOW0 + 3 * SEC);
    int saw_b = 0;
    for (int i = 0; i < 100; i++)
        saw_b += lb_pick(lb, &pc) == b;
    is_int(saw_b, 0, "a detached host is never picked");
    lb_request_end(b);
    is_int(n_freed, 1, "b freed by its last lb_request_end");

    /* a bad list changes nothing */
    struct lb_endpoint bad[] = {ep4(5, 1), ep4(6, 0)};
    err[0] = 0;
    is_int(lb_update(lb, &c, bad, 2, NOW0, err, sizeof(err)), -EINVAL, "weight 0 refused");
    ok(strstr(err, "endpoints[1]") && strstr(err, "weight 0"), "the error names it: %s", err);
    is_int(lb_size(lb), 2, "the lb kept its two hosts");
    bad[1] = ep4(6, 1);
    bad[1].addr.family = 99;
    is_int(lb_update(lb, &c, bad, 2, NOW0, err, sizeof(err)), -EINVAL, "bad family refused");

    /* duplicates merge, the better conditions win */
    struct lb_endpoint dup[] = {ep4(7, 1), ep4(7, 1), ep4(8, 1)};
    dup[0].ready = false;
    dup[0].terminating = true;
    is_int(lb_update(lb, &c, dup, 3, NOW0, err, sizeof(err)), 0, "duplicates accepted");
    is_int(lb_size(lb), 2, "merged into two hosts");
    ok(lb_host_at(lb, 0)->ready && !lb_host_at(lb, 0)->terminating, "the ready listing won");
    is_int(lb_get_stats(lb)->duplicates, 1, "duplicate counted");

    n_freed = 0;
    lb_request_start(lb_host_at(lb, 0));
    struct lb_host *busy = lb_host_at(lb, 0);
    lb_destroy(lb);
    is_int(n_freed, 1, "destroy frees idle hosts");
    lb_request_end(busy);
    is_int(n_freed, 2, "and a busy one at its last request end");
}

static void test_ipv6_and_model(void)
{
    struct lb_endpoint e[3];
    e[0] = ep4(1, 1);
    uint8_t ip6[16];
    inet_pton(AF_INET6, "fd00::1", ip6);
    e[1] = (struct lb_endpoint){.weight = 1, .ready = true, .serving = true, .zone = "zone-a"};
    lb_addr_set(&e[1].addr, AF_INET6, ip6, 8080);
    e[2] = e[1];
    e[2].addr.port = 9090;
    struct lb *lb = mk(LB_MAGLEV, e, 3);
    is_int(lb_size(lb), 3, "v4 and v6, and two ports of one IP, are distinct hosts");
    ok(lb_find(lb, &e[1].addr) && !strcmp(lb_find(lb, &e[1].addr)->zone, "zone-a"), "zone kept");
    lb_destroy(lb);

    struct model_destination_policy p;
    memset(&p, 0, sizeof(p));
    p.lb = MODEL_LB_MAGLEV;
    p.has_outlier = true;
    p.consecutive_5xx = 3;
    p.outlier_interval_ms = 1000;
    p.base_ejection_ms = 2000;
    p.max_ejection_percent = 20;
    struct lb_config c;
    lb_config_from_model(&c, &p);
    ok(c.type == LB_MAGLEV && c.outlier.enabled && c.outlier.consecutive_5xx == 3,
       "config from a DestinationPolicy");
    lb_config_from_model(&c, NULL);
    ok(c.type == LB_ROUND_ROBIN && !c.outlier.enabled && c.panic_percent == 50,
       "no policy: round robin, no outlier detection, panic at 50%%");
    is_str(lb_type_str(LB_PEAK_EWMA), "PeakEWMA", "type names as in the schema");

    ok(lb_hash("a", 1) != lb_hash("b", 1) && lb_hash("abc", 3) == lb_hash("abc", 3) &&
           lb_hash("", 0) != lb_hash("\0", 1),
       "lb_hash: deterministic, length-sensitive");
}

int main(void)
{
    prng_seed(&rng, 2024);
    test_swrr();
    test_random();
    test_least_request();
    test_peak_ewma();
    test_hash(LB_RING_HASH);
    test_hash(LB_MAGLEV);
    test_maglev_size();
    test_exclude();
    test_conditions();
    test_ejection_and_panic();
    test_update_keeps_state();
    test_ipv6_and_model();
    return tap_done();
}
