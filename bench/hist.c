/*
 * hist.c - the log-linear latency histogram (see hist.h for the layout and its precision).
 *
 * Bucket of v: below 128, v itself. Above, with e = floor(log2 v) (7..36) and the 7 bits
 * after the leading one as the sub-bucket s: 128 + (e - 7) * 128 + s. So the index is
 * monotonic in v and a bucket's bounds follow from its index alone.
 */
#include "hist.h"

#include <math.h>
#include <string.h>

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
}

unsigned hist_index(uint64_t v)
{
    if (v < HIST_SUB_COUNT)
        return (unsigned)v;
    unsigned e = 63 - (unsigned)__builtin_clzll(v);
    if (e >= HIST_MAX_EXP)
        return HIST_BUCKETS - 1;
    unsigned s = (unsigned)(v >> (e - HIST_SUB_BITS)) - HIST_SUB_COUNT;
    return HIST_SUB_COUNT + (e - HIST_SUB_BITS) * HIST_SUB_COUNT + s;
}

uint64_t hist_bucket_lo(unsigned i)
{
    if (i < HIST_SUB_COUNT)
        return i;
    unsigned e = (i - HIST_SUB_COUNT) / HIST_SUB_COUNT + HIST_SUB_BITS;
    uint64_t s = (i - HIST_SUB_COUNT) % HIST_SUB_COUNT;
    return (1ull << e) + (s << (e - HIST_SUB_BITS));
}

uint64_t hist_bucket_hi(unsigned i)
{
    if (i < HIST_SUB_COUNT)
        return i + 1ull;
    unsigned e = (i - HIST_SUB_COUNT) / HIST_SUB_COUNT + HIST_SUB_BITS;
    return hist_bucket_lo(i) + (1ull << (e - HIST_SUB_BITS));
}

void hist_record_n(struct hist *h, uint64_t v, uint64_t n)
{
    if (n == 0)
        return;
    h->buckets[hist_index(v)] += n;
    h->count += n;
    if (v < h->min_ns)
        h->min_ns = v;
    if (v > h->max_ns)
        h->max_ns = v;
    h->sum += (double)v * (double)n;
    h->sumsq += (double)v * (double)v * (double)n;
}

void hist_record(struct hist *h, uint64_t v)
{
    hist_record_n(h, v, 1);
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    dst->sumsq += src->sumsq;
    if (src->min_ns < dst->min_ns)
        dst->min_ns = src->min_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
}

uint64_t hist_percentile(const struct hist *h, double pct)
{
    if (h->count == 0)
        return 0;
    if (pct <= 0)
        return h->min_ns;
    if (pct >= 100)
        return h->max_ns;
    /* the rank of the value asked for, 1-based; the small epsilon keeps 50% of 1000
     * values at rank 500 despite the binary fraction */
    uint64_t rank = (uint64_t)ceil(pct / 100.0 * (double)h->count - 1e-9);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t lo = hist_bucket_lo(i), hi = hist_bucket_hi(i);
            uint64_t mid = lo + (hi - 1 - lo) / 2;
            if (mid < h->min_ns)
                mid = h->min_ns;
            if (mid > h->max_ns)
                mid = h->max_ns;
            return mid;
        }
    }
    return h->max_ns;
}

double hist_mean(const struct hist *h)
{
    return h->count ? h->sum / (double)h->count : 0;
}

double hist_stdev(const struct hist *h)
{
    if (h->count == 0)
        return 0;
    double m = hist_mean(h), var = h->sumsq / (double)h->count - m * m;
    return var > 0 ? sqrt(var) : 0;
}

bool hist_next(const struct hist *h, unsigned *i, uint64_t *lo_ns, uint64_t *hi_ns, uint64_t *count)
{
    for (; *i < HIST_BUCKETS; (*i)++) {
        if (h->buckets[*i]) {
            *lo_ns = hist_bucket_lo(*i);
            *hi_ns = hist_bucket_hi(*i);
            *count = h->buckets[*i];
            (*i)++;
            return true;
        }
    }
    return false;
}
