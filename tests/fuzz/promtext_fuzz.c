/*
 * promtext_fuzz.c - the Prometheus text reader and the per-Service sums on any input: no
 * out-of-bounds read, no leak, no undefined behaviour. The input is split at its first NUL
 * (or in half) into two rounds of one sidecar, so the row computation (deltas, resets,
 * quantiles over whatever buckets the text made) runs too; a text that fails leaves its
 * snapshot as it was, which the rows then see.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshstat.h"
#include "promtext.h"

static int count_cb(void *arg, const struct prom_sample *s)
{
    if (!s->name[0] || s->n_labels < 0 || s->n_labels > PROM_LABELS_MAX)
        abort();
    ++*(size_t *)arg;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t cut = nul ? (size_t)(nul - data) : size / 2, n = 0;
    struct meshstat_snap a, b;
    struct meshstat_row *rows;
    char err[256];
    int nr;

    prom_parse(text, size, count_cb, &n, err, sizeof(err));
    meshstat_snap_init(&a);
    meshstat_snap_init(&b);
    meshstat_snap_add(&a, 0, text, cut, err, sizeof(err));
    meshstat_snap_add(&b, 0, text + cut + (nul != NULL), size - cut - (nul != NULL), err,
                      sizeof(err));
    nr = meshstat_rows(&a, &b, 1.0, NULL, &rows);
    for (int i = 0; i < nr; i++)
        if (!rows[i].ns || !rows[i].name || !rows[i].fqdn || rows[i].meshed < 0)
            abort();
    if (nr > 0)
        meshstat_rows_free(rows, nr);
    meshstat_snap_free(&a);
    meshstat_snap_free(&b);
    return 0;
}
