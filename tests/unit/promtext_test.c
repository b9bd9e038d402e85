/*
 * promtext_test.c - xds/promtext (the Prometheus text format reader, histogram_quantile,
 * counter deltas) and xds/meshstat (per-Service golden metrics from two rounds of scrapes).
 *
 * Parser: names, label escapes (\" \\ \n and an unknown pair kept), blanks, a trailing
 * comma, comments, HELP/TYPE, \r\n, NaN/+Inf/-Inf, timestamps, a last line without \n, each
 * error naming its line and column, the line and label limits. Quantiles: against values
 * worked out by hand from Prometheus's bucketQuantile. meshstat: rates, success, quantiles
 * of bucket deltas, the reporter choice, prefixes, overflow, resets, filters.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshstat.h"
#include "promtext.h"
#include "tap.h"

static char scratch[PROM_LINE_MAX + 1];
static struct prom_sample smp;
static char err[256];

static int line(const char *s)
{
    err[0] = '\0';
    return prom_parse_line(s, strlen(s), scratch, &smp, err, sizeof(err));
}

static void near(double got, double want, const char *name)
{
    bool same = (isnan(got) && isnan(want)) ||
                (isinf(got) && isinf(want) && (got > 0) == (want > 0)) || fabs(got - want) < 1e-9;
    if (!ok(same, "%s", name))
        printf("#   got %.12g, want %.12g\n", got, want);
}

static void bad_line(const char *s, const char *want_err)
{
    int rc = line(s);
    if (!ok(rc == -EINVAL && strstr(err, want_err), "rejected: %s", want_err))
        printf("#   rc %d, err '%s'\n", rc, err);
}

struct collect {
    int n;
    double sum;
    char last_name[64];
};

static int collect_cb(void *arg, const struct prom_sample *s)
{
    struct collect *c = arg;
    c->n++;
    c->sum += s->value;
    snprintf(c->last_name, sizeof(c->last_name), "%s", s->name);
    return 0;
}

static int stop_cb(void *arg, const struct prom_sample *s)
{
    (void)arg;
    (void)s;
    return -ECANCELED;
}

static void test_parser(void)
{
    is_int(line("foo 1"), 1, "a bare sample");
    is_str(smp.name, "foo", "its name");
    ok(smp.n_labels == 0 && smp.value == 1 && !smp.has_ts, "no labels, value 1, no timestamp");

    is_int(line("ns:foo_bar{a=\"x\\\"y\\\\z\\nw\",b=\"\"} 2.5 1700000000000"), 1,
           "escapes and a timestamp");
    is_str(smp.name, "ns:foo_bar", "a name with a colon");
    is_str(prom_label(&smp, "a"), "x\"y\\z\nw", "\\\" \\\\ \\n unescaped");
    is_str(prom_label(&smp, "b"), "", "an empty value");
    ok(prom_label(&smp, "c") == NULL, "a missing label is NULL");
    ok(smp.value == 2.5 && smp.has_ts && smp.ts_ms == 1700000000000LL, "value and timestamp");

    is_int(line("foo{a=\"\\t}\"} 1"), 1, "an unknown escape");
    is_str(prom_label(&smp, "a"), "\\t}", "kept as its two characters; } inside quotes");
    is_int(line("foo{a=\"1\",} 3"), 1, "a trailing comma");
    ok(smp.n_labels == 1 && smp.value == 3, "one label");
    is_int(line("foo{} 3"), 1, "an empty label set");
    is_int(line("  foo { a = \"b\" , c=\"d\" }\t4  -5 "), 1, "blanks and tabs between tokens");
    ok(smp.n_labels == 2 && smp.value == 4 && smp.ts_ms == -5, "two labels, value 4, ts -5");
    is_str(prom_label(&smp, "c"), "d", "the second label");
    is_int(line("foo 7\r"), 1, "a \\r before the newline");
    ok(smp.value == 7, "value 7");

    is_int(line("foo NaN"), 1, "NaN");
    ok(isnan(smp.value), "is NaN");
    is_int(line("foo +Inf"), 1, "+Inf");
    ok(isinf(smp.value) && smp.value > 0, "is +Inf");
    is_int(line("foo -Inf"), 1, "-Inf");
    ok(isinf(smp.value) && smp.value < 0, "is -Inf");
    is_int(line("foo{le=\"+Inf\"} 1.5e3"), 1, "an exponent");
    ok(smp.value == 1500, "1.5e3");
    is_int(line("foo -0.25"), 1, "a negative value");

    is_int(line(""), 0, "a blank line");
    is_int(line("   "), 0, "blanks only");
    is_int(line("# HELP foo what \"it\" counts\\n"), 0, "HELP");
    is_int(line("# TYPE foo counter"), 0, "TYPE");
    is_int(line("#just a comment"), 0, "a comment");

    bad_line("foo{a=b} 1", "column 7: the value of label a must be quoted");
    bad_line("foo{a=\"b} 1", "the value of label a is not closed");
    bad_line("foo{a=\"b\"", "column 10: want , or } after label a");
    bad_line("foo{a=\"b\",", "the label set is not closed with }");
    bad_line("foo{a=\"b\" c=\"d\"} 1", "want , or } after label a");
    bad_line("foo{a \"b\"} 1", "want = after label a");
    bad_line("foo{1a=\"b\"} 1", "want a label name");
    bad_line("foo{a:b=\"c\"} 1", "want = after label a");
    bad_line("foo{a=\"1\",a=\"2\"} 1", "label a twice");
    bad_line("foo{a=\"x\\", "ends in a lone \\");
    bad_line("foo", "column 4: no value");
    bad_line("foo ", "no value");
    bad_line("1foo 1", "column 1: want a metric name");
    bad_line("foo abc", "column 5: value \"abc\" is not a number");
    bad_line("foo 1x", "value \"1x\" is not a number");
    bad_line("foo{a=\"b\"}1", "want a blank before the value");
    bad_line("foo 1 1.5", "timestamp \"1.5\" is not an integer");
    bad_line("foo 1 +5", "timestamp \"+5\"");
    bad_line("foo 1 2 3", "text after the timestamp");
    {
        char nul[] = "foo{a=\"b\0\"} 1";
        int rc = prom_parse_line(nul, sizeof(nul) - 1, scratch, &smp, err, sizeof(err));
        ok(rc == -EINVAL && strstr(err, "column 9: a NUL byte"), "a NUL byte is rejected");
    }
    {
        char many[2048];
        size_t o = (size_t)snprintf(many, sizeof(many), "foo{");
        for (int i = 0; i <= PROM_LABELS_MAX; i++)
            o += (size_t)snprintf(many + o, sizeof(many) - o, "l%d=\"v\",", i);
        snprintf(many + o, sizeof(many) - o, "} 1");
        int rc = line(many);
        ok(rc == -EINVAL && strstr(err, "more than 64 labels"), "65 labels are too many");
    }

    /* whole texts */
    struct collect c = {0};
    const char *text = "# HELP a x\n# TYPE a counter\na{x=\"1\"} 1\r\n\na{x=\"2\"} 2\nb 4";
    is_int(prom_parse(text, strlen(text), collect_cb, &c, err, sizeof(err)), 0, "a text");
    ok(c.n == 3 && c.sum == 7 && !strcmp(c.last_name, "b"), "3 samples; the last without \\n");
    memset(&c, 0, sizeof(c));
    text = "a 1\n# TYPE b gauge\nb{x=\"1\" 2\nc 3\n";
    is_int(prom_parse(text, strlen(text), collect_cb, &c, err, sizeof(err)), -EINVAL,
           "a bad third line");
    ok(strstr(err, "line 3: column 9: want , or } after label x") != NULL, "named: %s", err);
    is_int(c.n, 1, "the sample before it was delivered");
    is_int(prom_parse("a 1\nb 2\n", 8, stop_cb, NULL, err, sizeof(err)), -ECANCELED,
           "the callback's error stops the parse");
    {
        size_t n = PROM_LINE_MAX + 10;
        char *big = malloc(n + 1);
        memset(big, 'a', n);
        memcpy(big + n - 2, " 1", 2);
        big[n] = '\0';
        is_int(prom_parse(big, n, collect_cb, &c, err, sizeof(err)), -E2BIG, "an overlong line");
        ok(strstr(err, "line 1: longer than") != NULL, "named: %s", err);
        /* at the limit it parses */
        memcpy(big + PROM_LINE_MAX - 2, " 1", 2);
        memset(&c, 0, sizeof(c));
        is_int(prom_parse(big, PROM_LINE_MAX, collect_cb, &c, err, sizeof(err)), 0,
               "a line of exactly PROM_LINE_MAX bytes");
        is_int(c.n, 1, "one sample");
        free(big);
    }
}

static void test_quantile(void)
{
    const double le[] = {1, 5, 10, INFINITY};
    const double cnt[] = {2, 6, 8, 10};
    near(prom_histogram_quantile(0.5, le, cnt, 4), 4.0, "p50: rank 5 in (1,5]: 1 + 4*3/4 = 4");
    near(prom_histogram_quantile(0.1, le, cnt, 4), 0.5, "p10: rank 1 in (0,1]: 0.5");
    near(prom_histogram_quantile(0.75, le, cnt, 4), 8.75, "p75: rank 7.5 in (5,10]: 5 + 5*1.5/2");
    near(prom_histogram_quantile(0.8, le, cnt, 4), 10, "p80: rank 8 = the top of (5,10]");
    near(prom_histogram_quantile(0.95, le, cnt, 4), 10,
         "p95: rank 9.5 in +Inf: the highest finite bound");
    near(prom_histogram_quantile(0, le, cnt, 4), 0, "p0: 0");
    near(prom_histogram_quantile(1, le, cnt, 4), 10, "p100: in +Inf: 10");
    near(prom_histogram_quantile(-0.1, le, cnt, 4), -INFINITY, "q < 0: -Inf");
    near(prom_histogram_quantile(1.1, le, cnt, 4), INFINITY, "q > 1: +Inf");
    near(prom_histogram_quantile(NAN, le, cnt, 4), NAN, "q NaN: NaN");
    const double zero[] = {0, 0, 0, 0};
    near(prom_histogram_quantile(0.5, le, zero, 4), NAN, "no observations: NaN");
    const double le_fin[] = {1, 5, 10, 20};
    near(prom_histogram_quantile(0.5, le_fin, cnt, 4), NAN, "no +Inf bucket: NaN");
    near(prom_histogram_quantile(0.5, le + 3, cnt + 3, 1), NAN, "only +Inf: NaN");
    const double le_neg[] = {-1, 0, 1, INFINITY};
    const double c_neg[] = {1, 2, 3, 4};
    near(prom_histogram_quantile(0.1, le_neg, c_neg, 4), -1,
         "the lowest bound <= 0: the bound itself");
    near(prom_histogram_quantile(0.5, le_neg, c_neg, 4), -0.0 + 0,
         "p50 in (-1,0]: -1 + 1*(2-1)/1 = 0");
    const double c_dip[] = {2, 1, 8, 10};
    near(prom_histogram_quantile(0.5, le, c_dip, 4), 7.5,
         "a dip is made monotonic: 2,2,8,10: rank 5 in (5,10]: 5 + 5*3/6");
    /* Envoy's default bounds (the sidecars' ms histogram), 100 observations */
    const double env_le[] = {0.5,   1,      5,      10,      25,      50,      100,
                             250,   500,    1000,   2500,    5000,    10000,   30000,
                             60000, 300000, 600000, 1800000, 3600000, INFINITY};
    double env_c[20] = {0};
    for (int i = 0; i < 20; i++)
        env_c[i] = i < 3 ? 0 : i < 4 ? 40 : i < 5 ? 90 : i < 6 ? 99 : 100;
    near(prom_histogram_quantile(0.5, env_le, env_c, 20), 13,
         "Envoy's bounds, p50: rank 50 in (10,25]: 10 + 15*(50-40)/50 = 13");
    near(prom_histogram_quantile(0.95, env_le, env_c, 20), 25 + 25 * (95.0 - 90) / 9,
         "p95: rank 95 in (25,50]: 25 + 25*5/9");
    near(prom_histogram_quantile(0.99, env_le, env_c, 20), 50, "p99: rank 99 = the top of (25,50]");
    near(prom_histogram_quantile(0.999, env_le, env_c, 20), 50 + 50 * (99.9 - 99) / 1,
         "p99.9: rank 99.9 in (50,100]: 50 + 50*0.9");
}

static void test_delta(void)
{
    near(prom_counter_delta(5, 12), 7, "a counter grew by 7");
    near(prom_counter_delta(12, 5), 5, "a counter that went down restarted: its value");
    near(prom_counter_delta(3, 3), 0, "no change");
}

/* ---- meshstat ------------------------------------------------------------------------ */

#define REQ(rep, svc, code, grpc, v)                                                               \
    "ringmesh_requests_total{reporter=\"" rep "\",destination_service=\"" svc                      \
    "\",response_code=\"" code "\",grpc_response_status=\"" grpc "\"} " v "\n"
#define BK(rep, svc, le, v)                                                                        \
    "ringmesh_request_duration_milliseconds_bucket{reporter=\"" rep                                \
    "\",destination_service=\"" svc "\",le=\"" le "\"} " v "\n"

static const char *web1_a = /* sidecar 0: web's pod a, round 1 */
    "# TYPE ringmesh_requests_total counter\n" REQ(
        "destination", "web.default.svc.cluster.local", "200", "",
        "100") REQ("destination", "web.default.svc.cluster.local", "503", "",
                   "10") BK("destination", "web.default.svc.cluster.local", "5",
                            "50") BK("destination", "web.default.svc.cluster.local", "10", "100")
        BK("destination", "web.default.svc.cluster.local", "+Inf",
           "110") "ringmesh_request_duration_milliseconds_sum{reporter=\"destination\"} 123\n"
                  "ringmesh_tcp_connections_opened_total{direction=\"inbound\"} 99\n"; /* no
                                                                                          Service:
                                                                                          skipped */

static const char *web2_a = /* round 2: +20 ok, +4 503, buckets +12 <=5, +8 (5,10], +4 +Inf */
    REQ("destination", "web.default.svc.cluster.local", "200", "", "120")
        REQ("destination", "web.default.svc.cluster.local", "503", "", "14")
            BK("destination", "web.default.svc.cluster.local", "5", "62")
                BK("destination", "web.default.svc.cluster.local", "10", "120")
                    BK("destination", "web.default.svc.cluster.local", "+Inf", "134");

/* sidecar 1: web's pod b (istio_ prefix, gRPC) and the caller of db, which has no sidecar */
static const char *b1 =
    "istio_requests_total{reporter=\"destination\",destination_service_name=\"web\","
    "destination_service_namespace=\"default\",request_protocol=\"grpc\",response_code=\"200\","
    "grpc_response_status=\"0\"} 5\n"
    "istio_requests_total{reporter=\"source\",destination_service=\"web.default.svc.cluster.local\""
    ",response_code=\"200\"} 1000\n" REQ(
        "source", "db.data.svc.cluster.local", "200", "",
        "7") "istio_tcp_connections_opened_total{reporter=\"source\",destination_service=\"db.data."
             "svc."
             "cluster.local\"} 10\n"
             "istio_tcp_connections_closed_total{reporter=\"source\",destination_service=\"db.data."
             "svc."
             "cluster.local\"} 4\n"
             "istio_tcp_sent_bytes_total{reporter=\"source\",destination_service=\"db.data.svc."
             "cluster.local\"} 1000\n";
static const char *b2 =
    "istio_requests_total{reporter=\"destination\",destination_service_name=\"web\","
    "destination_service_namespace=\"default\",request_protocol=\"grpc\",response_code=\"200\","
    "grpc_response_status=\"0\"} 9\n"
    "istio_requests_total{reporter=\"destination\",destination_service_name=\"web\","
    "destination_service_namespace=\"default\",request_protocol=\"grpc\",response_code=\"200\","
    "grpc_response_status=\"14\"} 2\n"
    "istio_requests_total{reporter=\"source\",destination_service=\"web.default.svc.cluster.local\""
    ",response_code=\"200\"} 2000\n" REQ(
        "source", "db.data.svc.cluster.local", "200", "",
        "3") "istio_tcp_connections_opened_total{reporter=\"source\",destination_service=\"db.data."
             "svc."
             "cluster.local\"} 12\n"
             "istio_tcp_connections_closed_total{reporter=\"source\",destination_service=\"db.data."
             "svc."
             "cluster.local\"} 5\n"
             "istio_tcp_sent_bytes_total{reporter=\"source\",destination_service=\"db.data.svc."
             "cluster.local\"} 3000\n"
             "ringmesh_requests_total{reporter=\"overflow\",destination_service=\"overflow\","
             "response_code=\"overflow\"} 6\n";

static const struct meshstat_row *row_of(const struct meshstat_row *rows, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].name, name))
            return &rows[i];
    return NULL;
}

static void test_meshstat(void)
{
    struct meshstat_snap s1, s2;
    struct meshstat_row *rows;
    const struct meshstat_row *r;
    int n;

    meshstat_snap_init(&s1);
    meshstat_snap_init(&s2);
    is_int(meshstat_snap_add(&s1, 0, web1_a, strlen(web1_a), err, sizeof(err)), 0, "round 1 a");
    is_int(meshstat_snap_add(&s1, 1, b1, strlen(b1), err, sizeof(err)), 0, "round 1 b");
    is_int(meshstat_snap_add(&s1, 1, b1, strlen(b1), err, sizeof(err)), -EEXIST,
           "a sidecar twice in one round");
    is_int(meshstat_snap_add(&s2, 0, web2_a, strlen(web2_a), err, sizeof(err)), 0, "round 2 a");
    is_int(meshstat_snap_add(&s2, 1, b2, strlen(b2), err, sizeof(err)), 0, "round 2 b");
    const char *broken = REQ("destination", "x.y.svc.cluster.local", "200", "", "1") "bad{ 1\n";
    ok(meshstat_snap_add(&s2, 2, broken, strlen(broken), err, sizeof(err)) == -EINVAL &&
           strstr(err, "line 2"),
       "a bad text is refused naming its line: %s", err);
    ok(!s2.scraped[2], "and its sidecar counts as not scraped");

    n = meshstat_rows(&s1, &s2, 2.0, NULL, &rows);
    is_int(n, 3, "three rows: (overflow), db, web");
    ok(n == 3 && !strcmp(rows[0].name, MESHSTAT_OVERFLOW) && !strcmp(rows[1].name, "db") &&
           !strcmp(rows[2].name, "web"),
       "sorted by namespace then name (- < data < default)");
    r = row_of(rows, n, "web");
    ok(r && r->reporter == MESHSTAT_DESTINATION && r->meshed == 2, "web: destination, 2 sidecars");
    ok(r && !strcmp(r->ns, "default") && !strcmp(r->fqdn, "web.default.svc.cluster.local"),
       "web: default, its FQDN");
    /* a: +24 (+20 ok), b: +4 ok and 2 gRPC failures (from 0: new between rounds) */
    near(r ? r->requests : 0, 30, "web: 24 + 6 requests (b's source 1000 ignored)");
    near(r ? r->rps : 0, 15, "web: 30 / 2 s = 15 rps");
    near(r ? r->success : 0, 24.0 / 30, "web: (20 + 4) / 30 succeeded");
    /* deltas 12, 20, 24: p50 rank 12 in (0,5]: 5 * 12/12 = 5; p95 rank 22.8 in +Inf: 10 */
    near(r ? r->p50_ms : 0, 5, "web p50: rank 12 of 24 at the top of (0,5]: 5");
    near(r ? r->p95_ms : 0, 10, "web p95: rank 22.8 in +Inf: 10");
    near(r ? r->tcp_open : 0, NAN, "web: no TCP series");
    r = row_of(rows, n, "db");
    ok(r && r->reporter == MESHSTAT_SOURCE && r->meshed == 0 && !strcmp(r->ns, "data"),
       "db: source only, no sidecar of its own");
    near(r ? r->requests : 0, 3, "db: the counter went 7 -> 3: restarted, 3");
    near(r ? r->tcp_open : 0, 7, "db: 12 opened - 5 closed");
    near(r ? r->tcp_sent_bps : 0, 1000, "db: 2000 bytes / 2 s");
    near(r ? r->p50_ms : 0, NAN, "db: no histogram, no latency");
    r = row_of(rows, n, MESHSTAT_OVERFLOW);
    ok(r && r->reporter == MESHSTAT_OVERFLOWED && !strcmp(r->ns, "-"), "the overflow row");
    near(r ? r->requests : 0, 6, "(overflow): new between the rounds: 6");
    meshstat_rows_free(rows, n);

    struct meshstat_filter f = {.service = "web.default"};
    n = meshstat_rows(&s1, &s2, 2.0, &f, &rows);
    ok(n == 1 && !strcmp(rows[0].name, "web"), "filter NAME.NS");
    meshstat_rows_free(rows, n);
    f.service = "web.default.svc.cluster.local";
    n = meshstat_rows(&s1, &s2, 2.0, &f, &rows);
    ok(n == 1 && !strcmp(rows[0].name, "web"), "filter FQDN");
    meshstat_rows_free(rows, n);
    f.service = "web.data";
    n = meshstat_rows(&s1, &s2, 2.0, &f, &rows);
    is_int(n, 0, "filter NAME.OTHERNS: none");
    meshstat_rows_free(rows, n);
    f = (struct meshstat_filter){.ns = "data"};
    n = meshstat_rows(&s1, &s2, 2.0, &f, &rows);
    ok(n == 1 && !strcmp(rows[0].name, "db"), "-n data: db only (not the overflow row)");
    meshstat_rows_free(rows, n);

    /* sidecar 0 missing from round 1: its counts are left out, not taken whole */
    struct meshstat_snap s0;
    meshstat_snap_init(&s0);
    meshstat_snap_add(&s0, 1, b1, strlen(b1), err, sizeof(err));
    n = meshstat_rows(&s0, &s2, 1.0, NULL, &rows);
    r = row_of(rows, n, "web");
    ok(r && r->meshed == 2, "web: still 2 sidecars");
    near(r ? r->requests : 0, 6, "web: only b's 6 (a has no earlier round)");
    meshstat_rows_free(rows, n);
    n = meshstat_rows(NULL, &s2, 1.0, NULL, &rows);
    r = row_of(rows, n, "web");
    near(r ? r->requests : 0, NAN, "one round alone: no rates");
    near(r ? r->rps : 0, NAN, "no rps");
    meshstat_rows_free(rows, n);
    meshstat_snap_free(&s0);
    meshstat_snap_free(&s1);
    meshstat_snap_free(&s2);
}

int main(void)
{
    test_parser();
    test_quantile();
    test_delta();
    test_meshstat();
    return tap_done();
}
