/*
 * promtext.c - the Prometheus text format 0.0.4 reader and histogram_quantile (promtext.h).
 *
 * The parser is a single forward pass over one line with a cursor; strings are copied,
 * unescaped, into the caller's scratch buffer, so nothing is allocated per sample. It is
 * as strict as Prometheus's own text parser where that matters to a reader (quoting,
 * names, the value) and lenient where Prometheus is (blanks around tokens, a trailing
 * comma in the label set, \r before \n).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promtext.h"

static int bad(char *err, size_t errlen, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int bad(char *err, size_t errlen, size_t col, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (errlen) {
        n = snprintf(err, errlen, "column %zu: ", col + 1);
        if (n >= 0 && (size_t)n < errlen) {
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -EINVAL;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_name_start(char c, bool metric)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (metric && c == ':');
}

static bool is_name_char(char c, bool metric)
{
    return is_name_start(c, metric) || (c >= '0' && c <= '9');
}

/* Copies the name at line[*i] (metric: with ':') into scratch at *o, NUL-terminated. */
static const char *take_name(const char *line, size_t len, size_t *i, bool metric, char *scratch,
                             size_t *o)
{
    const char *s = scratch + *o;
    if (*i >= len || !is_name_start(line[*i], metric))
        return NULL;
    while (*i < len && is_name_char(line[*i], metric))
        scratch[(*o)++] = line[(*i)++];
    scratch[(*o)++] = '\0';
    return s;
}

static void skip_blanks(const char *line, size_t len, size_t *i)
{
    while (*i < len && is_blank(line[*i]))
        (*i)++;
}

/* The token at line[*i] up to a blank or the end, as a NUL-terminated copy in tok. */
static size_t take_token(const char *line, size_t len, size_t *i, char *tok, size_t cap)
{
    size_t n = 0;
    while (*i < len && !is_blank(line[*i])) {
        if (n + 1 < cap)
            tok[n] = line[*i];
        n++;
        (*i)++;
    }
    tok[n < cap ? n : cap - 1] = '\0';
    return n;
}

/* Go's strconv.ParseFloat, which Prometheus uses, takes what strtod takes save the
 * "infinity" and "nan(...)" spellings; a value must be all of its token. */
static bool parse_value(const char *tok, size_t n, double *out)
{
    char *end;
    if (n == 0 || n >= 64)
        return false;
    errno = 0;
    *out = strtod(tok, &end);
    if (end != tok + n)
        return false;
    /* strtod's ERANGE on 1e400 gives HUGE_VAL, as ParseFloat's +Inf; on 1e-400 it gives a
     * denormal or 0, as ParseFloat: both fine */
    return true;
}

int prom_parse_line(const char *line, size_t len, char *scratch, struct prom_sample *out, char *err,
                    size_t errlen)
{
    size_t i = 0, o = 0, n;
    char tok[64];

    if (len && line[len - 1] == '\r')
        len--;
    skip_blanks(line, len, &i);
    if (i == len || line[i] == '#')
        return 0;
    if (memchr(line, '\0', len))
        return bad(err, errlen, (size_t)((const char *)memchr(line, '\0', len) - line),
                   "a NUL byte");
    memset(out, 0, sizeof(*out));
    if (!(out->name = take_name(line, len, &i, true, scratch, &o)))
        return bad(err, errlen, i, "want a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)");
    size_t after_name = i;
    skip_blanks(line, len, &i);
    if (i >= len || line[i] != '{')
        i = after_name; /* the blanks before the value */
    if (i < len && line[i] == '{') {
        i++;
        for (;;) {
            struct prom_label *l;
            skip_blanks(line, len, &i);
            if (i < len && line[i] == '}') {
                i++;
                break;
            }
            if (out->n_labels == PROM_LABELS_MAX)
                return bad(err, errlen, i, "more than %d labels", PROM_LABELS_MAX);
            l = &out->labels[out->n_labels];
            if (!(l->name = take_name(line, len, &i, false, scratch, &o)))
                return bad(err, errlen, i,
                           i >= len ? "the label set is not closed with }"
                                    : "want a label name ([a-zA-Z_][a-zA-Z0-9_]*) or }");
            for (int k = 0; k < out->n_labels; k++)
                if (!strcmp(out->labels[k].name, l->name))
                    return bad(err, errlen, i, "label %s twice", l->name);
            skip_blanks(line, len, &i);
            if (i >= len || line[i] != '=')
                return bad(err, errlen, i, "want = after label %s", l->name);
            i++;
            skip_blanks(line, len, &i);
            if (i >= len || line[i] != '"')
                return bad(err, errlen, i, "the value of label %s must be quoted", l->name);
            i++;
            l->value = scratch + o;
            for (;;) {
                if (i >= len)
                    return bad(err, errlen, i, "the value of label %s is not closed with \"",
                               l->name);
                char c = line[i++];
                if (c == '"')
                    break;
                if (c == '\\') {
                    if (i >= len)
                        return bad(err, errlen, i, "the value of label %s ends in a lone \\",
                                   l->name);
                    c = line[i++];
                    /* the format defines \\ \" \n; Prometheus keeps any other pair as is */
                    if (c == 'n')
                        c = '\n';
                    else if (c != '\\' && c != '"')
                        scratch[o++] = '\\';
                }
                scratch[o++] = c;
            }
            scratch[o++] = '\0';
            out->n_labels++;
            skip_blanks(line, len, &i);
            if (i < len && line[i] == ',') {
                i++;
                continue;
            }
            if (i < len && line[i] == '}') {
                i++;
                break;
            }
            return bad(err, errlen, i, "want , or } after label %s", l->name);
        }
    }
    if (i < len && !is_blank(line[i]))
        return bad(err, errlen, i, "want a blank before the value");
    skip_blanks(line, len, &i);
    if (i >= len)
        return bad(err, errlen, i, "no value");
    size_t at = i;
    n = take_token(line, len, &i, tok, sizeof(tok));
    if (!parse_value(tok, n, &out->value))
        return bad(err, errlen, at, "value \"%.*s\" is not a number", (int)(n < 40 ? n : 40),
                   line + at);
    skip_blanks(line, len, &i);
    if (i < len) {
        char *end;
        at = i;
        n = take_token(line, len, &i, tok, sizeof(tok));
        errno = 0;
        out->ts_ms = strtoll(tok, &end, 10);
        if (n == 0 || n >= sizeof(tok) || end != tok + n || errno ||
            !(tok[0] == '-' || (tok[0] >= '0' && tok[0] <= '9')))
            return bad(err, errlen, at, "timestamp \"%.*s\" is not an integer (ms)",
                       (int)(n < 40 ? n : 40), line + at);
        out->has_ts = true;
        skip_blanks(line, len, &i);
        if (i < len)
            return bad(err, errlen, i, "text after the timestamp");
    }
    return 1;
}

int prom_parse(const char *text, size_t len, prom_sample_cb cb, void *arg, char *err, size_t errlen)
{
    struct prom_sample *s = malloc(sizeof(*s));
    char *scratch = malloc(PROM_LINE_MAX + 1), msg[256];
    size_t pos = 0, lineno = 0;
    int rc = 0;

    if (!s || !scratch) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
        lineno++;
        if (ll > PROM_LINE_MAX) {
            rc = -E2BIG;
            snprintf(err, errlen, "line %zu: longer than %d bytes", lineno, PROM_LINE_MAX);
            goto out;
        }
        int r = prom_parse_line(text + pos, ll, scratch, s, msg, sizeof(msg));
        if (r < 0) {
            rc = r;
            snprintf(err, errlen, "line %zu: %s", lineno, msg);
            goto out;
        }
        if (r > 0 && (rc = cb(arg, s)))
            goto out;
        pos += ll + (nl != NULL);
    }
out:
    free(s);
    free(scratch);
    return rc;
}

const char *prom_label(const struct prom_sample *s, const char *name)
{
    for (int i = 0; i < s->n_labels; i++)
        if (!strcmp(s->labels[i].name, name))
            return s->labels[i].value;
    return NULL;
}

double prom_histogram_quantile(double q, const double *le, const double *count, size_t n)
{
    double total, rank, start = 0, c, prev_max = 0, below = 0;
    size_t b;

    if (isnan(q))
        return NAN;
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    if (n < 2 || !(isinf(le[n - 1]) && le[n - 1] > 0))
        return NAN;
    /* monotonic: a bucket never holds fewer than the one below it */
    for (b = 0; b < n; b++)
        prev_max = count[b] > prev_max ? count[b] : prev_max;
    total = prev_max;
    if (!(total > 0))
        return NAN;
    rank = q * total;
    prev_max = 0;
    for (b = 0; b < n - 1; b++) {
        c = count[b] > prev_max ? count[b] : prev_max;
        if (c >= rank)
            break;
        prev_max = c;
    }
    if (b == n - 1)
        return le[n - 2];
    if (b == 0 && le[0] <= 0)
        return le[0];
    c = count[b] > prev_max ? count[b] : prev_max;
    if (b > 0) {
        start = le[b - 1];
        below = prev_max;
    }
    c -= below;
    rank -= below;
    /* only q == 0 over an empty lowest bucket gets here with c == 0 (Prometheus answers
     * NaN from 0/0; the bucket's start is the better answer) */
    if (!(c > 0))
        return start;
    return start + (le[b] - start) * (rank / c);
}

double prom_counter_delta(double prev, double cur)
{
    return cur < prev ? cur : cur - prev;
}
