/*
 * hist_test.c - bench/hist.c: bucket layout, percentiles of known distributions within 1%,
 * min/max/mean, merging, iteration.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "hist.h"
#include "tap.h"

static struct hist a, b, all;

static int within(uint64_t got, double want, double rel)
{
    return fabs((double)got - want) <= rel * want;
}

static void check_pct(const struct hist *h, double pct, double want, const char *what)
{
    uint64_t got = hist_percentile(h, pct);
    if (!ok(within(got, want, 0.01), "%s: p%g within 1%% of %.0f", what, pct, want))
        printf("#   got %llu\n", (unsigned long long)got);
}

/* xorshift64*: a fixed sequence, so failures reproduce */
static uint64_t rng = 88172645463325252ull;
static double uniform01(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (double)((rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

int main(void)
{
    /* layout: monotonic, contiguous, every value inside its bucket, width <= 1/128 */
    int layout_ok = 1;
    for (unsigned i = 0; i + 1 < HIST_BUCKETS; i++)
        if (hist_bucket_hi(i) != hist_bucket_lo(i + 1) || hist_bucket_lo(i) >= hist_bucket_hi(i))
            layout_ok = 0;
    ok(layout_ok, "buckets are contiguous and increasing");
    int in_ok = 1, width_ok = 1;
    for (uint64_t v = 1; v < (1ull << 36); v = v * 3 / 2 + 1) {
        unsigned i = hist_index(v);
        if (v < hist_bucket_lo(i) || v >= hist_bucket_hi(i))
            in_ok = 0;
        if (v >= 128 && (double)(hist_bucket_hi(i) - hist_bucket_lo(i)) > hist_bucket_lo(i) / 128.0)
            width_ok = 0;
    }
    ok(in_ok, "every value lies in its bucket's [lo, hi)");
    ok(width_ok, "above 128 ns a bucket is at most 1/128 of its lower bound wide");
    is_int(hist_index(0), 0, "0 ns is bucket 0");
    is_int(hist_index(UINT64_MAX), HIST_BUCKETS - 1, "huge values go to the last bucket");
    ok(hist_bucket_hi(HIST_BUCKETS - 1) >= 100000000000ull, "the top reaches 100 s");

    /* empty */
    hist_init(&a);
    is_int(hist_percentile(&a, 99), 0, "empty: p99 is 0");
    ok(hist_mean(&a) == 0 && hist_stdev(&a) == 0, "empty: mean and stdev 0");

    /* uniform 1..100000 us, every integer microsecond once */
    for (uint64_t us = 1; us <= 100000; us++)
        hist_record(&a, us * 1000);
    is_int(a.count, 100000, "uniform: count");
    is_int(a.min_ns, 1000, "uniform: min exact");
    is_int(a.max_ns, 100000000, "uniform: max exact");
    check_pct(&a, 50, 50000e3, "uniform");
    check_pct(&a, 90, 90000e3, "uniform");
    check_pct(&a, 99, 99000e3, "uniform");
    check_pct(&a, 99.9, 99900e3, "uniform");
    check_pct(&a, 1, 1000e3, "uniform");
    is_int(hist_percentile(&a, 100), 100000000, "uniform: p100 is max");
    is_int(hist_percentile(&a, 0), 1000, "uniform: p0 is min");
    ok(within((uint64_t)hist_mean(&a), 50000.5e3, 1e-9), "uniform: mean exact");
    ok(within((uint64_t)hist_stdev(&a), 28867.5e3, 1e-4), "uniform: stdev");

    /* exponential, mean 1 ms: p50 = ln 2 ms, p99 = ln 100 ms, p99.9 = ln 1000 ms */
    hist_init(&b);
    for (int i = 0; i < 1000000; i++)
        hist_record(&b, (uint64_t)(-log(1 - uniform01()) * 1e6));
    check_pct(&b, 50, log(2) * 1e6, "exponential");
    check_pct(&b, 90, log(10) * 1e6, "exponential");
    check_pct(&b, 99, log(100) * 1e6, "exponential");
    check_pct(&b, 99.9, log(1000) * 1e6, "exponential");
    ok(within((uint64_t)hist_mean(&b), 1e6, 0.01), "exponential: mean within 1%%");

    /* bimodal: 99% at 100 us, 1% at 1 s (a stall) */
    struct hist *c = calloc(1, sizeof(*c));
    hist_init(c);
    hist_record_n(c, 100000, 9900);
    hist_record_n(c, 1000000000, 100);
    check_pct(c, 50, 100e3, "bimodal");
    check_pct(c, 99, 100e3, "bimodal");
    check_pct(c, 99.01, 1e9, "bimodal");
    check_pct(c, 99.9, 1e9, "bimodal");

    /* merge: a + b + c equals recording everything into one */
    hist_init(&all);
    for (uint64_t us = 1; us <= 100000; us++)
        hist_record(&all, us * 1000);
    rng = 88172645463325252ull;
    for (int i = 0; i < 1000000; i++)
        hist_record(&all, (uint64_t)(-log(1 - uniform01()) * 1e6));
    hist_record_n(&all, 100000, 9900);
    hist_record_n(&all, 1000000000, 100);
    struct hist *m = calloc(1, sizeof(*m));
    hist_init(m);
    hist_merge(m, &a);
    hist_merge(m, &b);
    hist_merge(m, c);
    is_int(m->count, all.count, "merge: count");
    is_int(m->min_ns, all.min_ns, "merge: min");
    is_int(m->max_ns, all.max_ns, "merge: max");
    ok(memcmp(m->buckets, all.buckets, sizeof(all.buckets)) == 0,
       "merge: same buckets as one histogram");
    int same = 1;
    for (double p = 0; p <= 100; p += 0.5)
        same &= hist_percentile(m, p) == hist_percentile(&all, p);
    ok(same, "merge: same percentiles as one histogram");
    struct hist *e = calloc(1, sizeof(*e));
    hist_init(e);
    hist_merge(m, e);
    is_int(m->count, all.count, "merging an empty histogram changes nothing");
    is_int(m->min_ns, all.min_ns, "  (min too)");

    /* iteration: non-empty buckets in order, counts sum to count */
    unsigned it = 0, n = 0;
    uint64_t lo, hi, cnt, sum = 0, last = 0;
    int order = 1;
    while (hist_next(c, &it, &lo, &hi, &cnt)) {
        n++;
        sum += cnt;
        order &= lo >= last && cnt > 0;
        last = hi;
    }
    is_int(n, 2, "iteration: bimodal has 2 non-empty buckets");
    is_int(sum, c->count, "iteration: counts sum to count");
    ok(order, "iteration: increasing, non-empty");
    it = 0;
    ok(!hist_next(e, &it, &lo, &hi, &cnt), "iteration: empty histogram has none");
    free(c);
    free(m);
    free(e);
    return tap_done();
}
