/*
 * hist.h - a log-linear latency histogram (HDR-like), for bench/loadgen.c.
 *
 * Values are nanoseconds. Below 2^HIST_SUB_BITS (128 ns) every value has a bucket of its
 * own; above, each power-of-two range [2^e, 2^(e+1)) is split into 128 equal sub-buckets,
 * so a bucket is at most 1/128 (0.78%) of its lower bound wide and a percentile reported
 * as the bucket's midpoint is within 0.4% of the true value. The top range ends at 2^37 ns
 * (137 s); larger values are counted in the last bucket (max still holds the exact value).
 * 4096 buckets of 8 bytes: 32 KiB a histogram, fixed, no allocation after hist_new.
 *
 * Owned by whoever made it; not thread-safe: each worker records into its own and the
 * main thread merges them (hist_merge) after the workers have been joined.
 * min, max, the count, the sum and the sum of squares are exact (mean, stdev).
 */
#ifndef RINGMESH_HIST_H
#define RINGMESH_HIST_H

#include <stdbool.h>
#include <stdint.h>

#define HIST_SUB_BITS  7
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP   37 /* values up to 2^37 - 1 ns get a bucket of their own */
#define HIST_BUCKETS   (HIST_SUB_COUNT + (HIST_MAX_EXP - HIST_SUB_BITS) * HIST_SUB_COUNT)

struct hist {
    uint64_t count;
    uint64_t min_ns, max_ns; /* min is UINT64_MAX while empty */
    double sum, sumsq;       /* of the values in ns, for mean and stdev */
    uint64_t buckets[HIST_BUCKETS];
};

/* Empties h (it may be uninitialised memory). */
void hist_init(struct hist *h);
/* Counts one value. Never fails; values past the top land in the last bucket. */
void hist_record(struct hist *h, uint64_t value_ns);
/* Counts n equal values at once (n may be 0). */
void hist_record_n(struct hist *h, uint64_t value_ns, uint64_t n);
/* Adds every count of src into dst (src unchanged). Merging then reading gives the same
 * percentiles as recording everything into one histogram. */
void hist_merge(struct hist *dst, const struct hist *src);
/* The value below or at which pct percent (0..100) of the values lie: the midpoint of the
 * bucket holding the ceil(pct/100 * count)-th smallest value, clamped to [min, max];
 * pct 0 is min, 100 is max. 0 when empty. */
uint64_t hist_percentile(const struct hist *h, double pct);
/* Mean and standard deviation (population) in ns; 0 when empty. */
double hist_mean(const struct hist *h);
double hist_stdev(const struct hist *h);
/* Bucket index of a value, and the bounds [lo, hi) of bucket i in ns. */
unsigned hist_index(uint64_t value_ns);
uint64_t hist_bucket_lo(unsigned i);
uint64_t hist_bucket_hi(unsigned i);
/* Iterates the non-empty buckets in increasing order: start with *i = 0; returns false at
 * the end, else fills [lo, hi) and count and advances *i past the bucket. */
bool hist_next(const struct hist *h, unsigned *i, uint64_t *lo_ns, uint64_t *hi_ns,
               uint64_t *count);

#endif
