/*
 * promtext.h - the Prometheus text exposition format 0.0.4, read; and the two computations
 * a reader of it needs: histogram_quantile() as Prometheus does it, and counter deltas
 * across a reset.
 *
 * Format: https://prometheus.io/docs/instrumenting/exposition_formats/ . One sample per
 * line: name, optional {label="value",...} (values escape \\ \" \n; a trailing comma is
 * allowed), a value (a float, NaN, +Inf, -Inf) and an optional integer timestamp in ms
 * (read, checked, not used). Lines starting with # (HELP, TYPE, any comment) and blank
 * lines are skipped; a line may end in \r\n; the last line needs no newline.
 *
 * Pure code, no I/O, no global state. Memory is bounded: the parser allocates one scratch
 * buffer of the longest line allowed (PROM_LINE_MAX) per call and nothing per sample; the
 * sample it hands the callback points into that buffer and lives until the callback
 * returns.
 */
#ifndef RINGMESH_PROMTEXT_H
#define RINGMESH_PROMTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROM_LINE_MAX   65536 /* bytes in one sample line, escapes included */
#define PROM_LABELS_MAX 64    /* labels on one sample */

struct prom_label {
    const char *name, *value; /* NUL-terminated, unescaped; borrowed from the parser */
};

struct prom_sample {
    const char *name; /* NUL-terminated; borrowed */
    struct prom_label labels[PROM_LABELS_MAX];
    int n_labels;
    double value;
    bool has_ts;
    int64_t ts_ms;
};

/* Called for each sample; a non-zero return stops the parse, and prom_parse returns it. */
typedef int (*prom_sample_cb)(void *arg, const struct prom_sample *s);

/*
 * Parses one line (without its \n; a trailing \r is allowed) into *out, with scratch
 * (at least len + 1 bytes) holding the unescaped strings. Returns 1 for a sample, 0 for a
 * line that holds none (blank, comment, HELP, TYPE), or -EINVAL with err naming the
 * column and what was wrong (e.g. "column 12: a label value must be quoted").
 */
int prom_parse_line(const char *line, size_t len, char *scratch, struct prom_sample *out, char *err,
                    size_t errlen);

/*
 * Parses a whole exposition text and calls cb for every sample, in order. Returns 0,
 * -EINVAL with err naming the line ("line 7: column 12: ..."), -E2BIG for a line longer
 * than PROM_LINE_MAX, -ENOMEM, or what cb returned. Samples before a bad line have been
 * delivered.
 */
int prom_parse(const char *text, size_t len, prom_sample_cb cb, void *arg, char *err,
               size_t errlen);

/* The value of label name on s, or NULL when s has no such label. */
const char *prom_label(const struct prom_sample *s, const char *name);

/*
 * Prometheus's histogram_quantile(q, ...) over one histogram: n buckets with upper bounds
 * le[] ascending, the last +Inf, and cumulative counts count[]. The q-quantile by linear
 * interpolation inside the bucket that holds rank q * total, the lowest bucket starting at
 * 0 (or at its bound, when that is <= 0); a rank in the +Inf bucket answers the highest
 * finite bound. NaN when there are no observations, fewer than two buckets, or the last
 * bound is not +Inf; -Inf for q < 0, +Inf for q > 1. Counts that decrease (a series
 * scraped mid-update) are made monotonic first, as Prometheus does.
 */
double prom_histogram_quantile(double q, const double *le, const double *count, size_t n);

/* What a counter grew by from prev to cur: cur - prev, or cur when it went down (the
 * process restarted: Prometheus's reset rule). NaN in, NaN out. */
double prom_counter_delta(double prev, double cur);

#endif
