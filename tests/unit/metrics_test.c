/*
 * metrics_test.c - sidecar/metrics: the label list flag, the x-ringmesh-peer header
 * (format, parse, hostile values), a pod's own labels (ReplicaSet names, label fallbacks),
 * series keyed by labels and summed over workers at render, histogram buckets, the
 * series cap and its overflow series, idle eviction, labels left out, the prefix, and
 * exposition escaping.
 */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "tap.h"

static char *render(struct metrics_worker *const *mws, size_t n, const struct metrics_config *c)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (metrics_render(mws, n, c, &buf, &len, &cap) < 0) {
        free(buf);
        return NULL;
    }
    return buf ? buf : strdup("");
}

/* The value of the line that starts with prefix (the whole series name and labels). */
static long long value_of(const char *text, const char *prefix)
{
    const char *p = text;
    size_t n = strlen(prefix);
    while (p && *p) {
        if (!strncmp(p, prefix, n) && p[n] == ' ')
            return atoll(p + n + 1);
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return -1;
}

static int count_lines(const char *text, const char *prefix)
{
    int k = 0;
    for (const char *p = text; p && *p;) {
        k += !strncmp(p, prefix, strlen(prefix));
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return k;
}

static void sample(struct metrics_sample *s, const char *code, uint64_t us)
{
    memset(s, 0, sizeof(*s));
    s->v[ML_REPORTER] = "destination";
    s->v[ML_DST_SERVICE] = "web.default.svc.cluster.local";
    s->v[ML_RESPONSE_CODE] = code;
    s->duration_us = us;
    s->rq_bytes = 0;
    s->rs_bytes = 1500;
}

int main(void)
{
    char err[256];
    uint32_t mask;

    /* --metrics-labels */
    ok(metrics_labels_parse("all", &mask, err, sizeof(err)) == 0 && mask == (1u << ML_COUNT) - 1,
       "labels: all");
    ok(metrics_labels_parse("destination_service,response_code", &mask, err, sizeof(err)) == 0 &&
           mask == ((1u << ML_REPORTER) | (1u << ML_DST_SERVICE) | (1u << ML_RESPONSE_CODE)),
       "labels: two names, reporter always kept");
    ok(metrics_labels_parse("response_code,path", &mask, err, sizeof(err)) < 0 &&
           strstr(err, "'path'"),
       "labels: an unknown name is named (%s)", err);

    /* x-ringmesh-peer */
    struct metrics_peer p = {0}, q;
    const char *labels[][2] = {{"app", "web"}, {"version", "v2"}};
    metrics_peer_self(&p, NULL, "web-6f8d7c9b5-abcde", "shop", labels, 2);
    is_str(p.workload, "web", "self: a ReplicaSet pod's workload is its Deployment");
    is_str(p.ns, "shop", "self: namespace");
    is_str(p.app, "web", "self: app");
    is_str(p.version, "v2", "self: version");
    is_str(p.canon_svc, "web", "self: canonical service falls back to app");
    is_str(p.canon_rev, "v2", "self: canonical revision falls back to version");
    metrics_peer_self(&p, NULL, "db-0", "shop", NULL, 0);
    is_str(p.workload, "db-0", "self: a StatefulSet pod keeps its name");
    is_str(p.canon_svc, "db-0", "self: canonical service falls back to the workload");
    is_str(p.canon_rev, "latest", "self: canonical revision 'latest'");
    is_str(p.app, "unknown", "self: no app label: unknown");
    const char *canon[][2] = {{"service.istio.io/canonical-name", "shop-web"},
                              {"app.kubernetes.io/name", "web2"},
                              {"app", "web"}};
    metrics_peer_self(&p, "frontend", "x", "default", canon, 3);
    is_str(p.workload, "frontend", "self: --workload-name wins");
    is_str(p.app, "web2", "self: app.kubernetes.io/name before app");
    is_str(p.canon_svc, "shop-web", "self: service.istio.io/canonical-name");

    char hv[512], hv2[512];
    int n = metrics_peer_format(&p, hv, sizeof(hv));
    ok(n > 0 && metrics_peer_parse(hv, (size_t)n, &q) &&
           metrics_peer_format(&q, hv2, sizeof(hv2)) == n && !strcmp(hv, hv2),
       "peer header: format then parse gives the same labels (%s)", hv);
    ok(metrics_peer_format(&p, hv, 10) < 0, "peer header: too small a buffer is an error");
    const char *bad = "w=a\"b;n=ns;a=" "0123456789012345678901234567890123456789012345678901234567890123;zz=1";
    ok(metrics_peer_parse(bad, strlen(bad), &q), "peer header: one usable field is enough");
    is_str(q.workload, "unknown", "peer header: a quote in a value gives unknown");
    is_str(q.ns, "ns", "peer header: a good field is kept");
    is_str(q.app, "unknown", "peer header: a 64-character value gives unknown");
    ok(!metrics_peer_parse(";;=;w", 5, &q), "peer header: nothing usable");

    /* series, buckets, two workers summed */
    struct metrics_config cfg = {.enabled = true, .prefix = "ringmesh", .label_mask = (1u << ML_COUNT) - 1,
                                 .max_series = 8, .per_worker = 4, .idle_ms = 0};
    struct metrics_worker w1, w2;
    ok(metrics_worker_init(&w1, &cfg) == 0 && metrics_worker_init(&w2, &cfg) == 0, "two workers");
    struct metrics_sample s;
    sample(&s, "200", 300); /* 0.3 ms: the 0.5 bucket */
    metrics_http(&w1, &s, 1);
    sample(&s, "200", 7000); /* 7 ms: the 10 bucket */
    metrics_http(&w2, &s, 1);
    sample(&s, "503", 2000000); /* 2 s: the 2500 bucket */
    s.v[ML_RESPONSE_FLAGS] = "UF,URX";
    metrics_http(&w1, &s, 1);
    struct metrics_worker *ws[] = {&w1, &w2};
    char *t = render(ws, 2, &cfg);
    ok(t != NULL, "render");
    const char *lbl200 =
        "ringmesh_requests_total{reporter=\"destination\",source_workload=\"unknown\"";
    ok(count_lines(t, lbl200) == 2, "two series: 200 and 503 (the workers' 200s summed)");
    ok(count_lines(t, "# TYPE ringmesh_requests_total counter") == 1 &&
           count_lines(t, "# TYPE ringmesh_request_duration_milliseconds histogram") == 1 &&
           count_lines(t, "# TYPE ringmesh_request_bytes histogram") == 1 &&
           count_lines(t, "# TYPE ringmesh_response_bytes histogram") == 1,
       "one TYPE line per family");
    char key[2048];
    snprintf(key, sizeof(key),
             "ringmesh_requests_total{reporter=\"destination\",source_workload=\"unknown\","
             "source_workload_namespace=\"unknown\",source_principal=\"unknown\",source_app=\"unknown\","
             "source_version=\"unknown\",source_canonical_service=\"unknown\","
             "source_canonical_revision=\"unknown\",destination_workload=\"unknown\","
             "destination_workload_namespace=\"unknown\",destination_principal=\"unknown\","
             "destination_app=\"unknown\",destination_version=\"unknown\","
             "destination_service=\"web.default.svc.cluster.local\","
             "destination_service_name=\"unknown\",destination_service_namespace=\"unknown\","
             "destination_canonical_service=\"unknown\",destination_canonical_revision=\"unknown\","
             "request_protocol=\"unknown\",response_code=\"200\",grpc_response_status=\"unknown\","
             "response_flags=\"unknown\",connection_security_policy=\"unknown\"}");
    is_int(value_of(t, key), 2, "200: 2 requests over both workers");
    const char *dur = strstr(key, "{");
    char b[2200];
    snprintf(b, sizeof(b), "ringmesh_request_duration_milliseconds_bucket%.*s,le=\"0.5\"}",
             (int)(strlen(dur) - 1), dur);
    is_int(value_of(t, b), 1, "200: bucket le=0.5 holds the 0.3 ms one");
    snprintf(b, sizeof(b), "ringmesh_request_duration_milliseconds_bucket%.*s,le=\"5\"}",
             (int)(strlen(dur) - 1), dur);
    is_int(value_of(t, b), 1, "200: le=5 still 1 (cumulative)");
    snprintf(b, sizeof(b), "ringmesh_request_duration_milliseconds_bucket%.*s,le=\"10\"}",
             (int)(strlen(dur) - 1), dur);
    is_int(value_of(t, b), 2, "200: le=10 holds both");
    snprintf(b, sizeof(b), "ringmesh_request_duration_milliseconds_bucket%.*s,le=\"+Inf\"}",
             (int)(strlen(dur) - 1), dur);
    is_int(value_of(t, b), 2, "200: +Inf is the count");
    snprintf(b, sizeof(b), "ringmesh_request_duration_milliseconds_count%s", dur);
    is_int(value_of(t, b), 2, "200: _count");
    snprintf(b, sizeof(b), "ringmesh_response_bytes_sum%s", dur);
    is_int(value_of(t, b), 3000, "200: response bytes summed");
    snprintf(b, sizeof(b), "ringmesh_request_bytes_bucket%.*s,le=\"1\"}", (int)(strlen(dur) - 1), dur);
    is_int(value_of(t, b), 2, "200: empty requests in the le=1 bucket");
    ok(strstr(t, "response_flags=\"UF,URX\"") != NULL, "503: its flags");
    free(t);

    /* the cap: w1 holds 4 series at most, the rest goes to one overflow series */
    for (int c = 400; c < 420; c++) {
        char code[16];
        snprintf(code, sizeof(code), "%d", c);
        sample(&s, code, 1000);
        metrics_http(&w1, &s, 2);
    }
    uint64_t series, over, evicted;
    metrics_counts(ws, 2, &series, &over, &evicted);
    is_int(series, 5, "cap: w1 4 + w2 1 series");
    is_int(over, 18, "cap: 18 samples overflowed");
    t = render(ws, 2, &cfg);
    ok(t && count_lines(t, "ringmesh_requests_total{reporter=\"overflow\"") == 1,
       "cap: one overflow series");
    ok(t && value_of(t, "ringmesh_requests_total{reporter=\"overflow\",source_workload=\"overflow\","
                        "source_workload_namespace=\"overflow\",source_principal=\"overflow\","
                        "source_app=\"overflow\",source_version=\"overflow\","
                        "source_canonical_service=\"overflow\",source_canonical_revision=\"overflow\","
                        "destination_workload=\"overflow\",destination_workload_namespace=\"overflow\","
                        "destination_principal=\"overflow\",destination_app=\"overflow\","
                        "destination_version=\"overflow\",destination_service=\"overflow\","
                        "destination_service_name=\"overflow\",destination_service_namespace=\"overflow\","
                        "destination_canonical_service=\"overflow\",destination_canonical_revision=\"overflow\","
                        "request_protocol=\"overflow\",response_code=\"overflow\","
                        "grpc_response_status=\"overflow\",response_flags=\"overflow\","
                        "connection_security_policy=\"overflow\"}") == 18,
       "cap: it counts 18");
    free(t);

    /* eviction: idle 100 ms; w2's series last used at 1 ms */
    cfg.idle_ms = 100;
    metrics_sweep(&w2, 50);
    metrics_counts(ws, 2, &series, &over, &evicted);
    is_int(series, 5, "idle: nothing evicted before 100 ms");
    metrics_sweep(&w2, 200);
    metrics_counts(ws, 2, &series, &over, &evicted);
    is_int(series, 4, "idle: w2's series evicted");
    is_int(evicted, 1, "idle: counted");
    t = render(ws, 2, &cfg); /* the retired series is freed at the next sweep after a scrape */
    free(t);
    metrics_sweep(&w2, 300);
    sample(&s, "200", 1);
    metrics_http(&w2, &s, 301);
    metrics_counts(ws, 2, &series, &over, &evicted);
    is_int(series, 5, "idle: a new sample makes it again");
    cfg.idle_ms = 0;

    /* TCP series */
    memset(&s, 0, sizeof(s));
    s.v[ML_REPORTER] = "source";
    s.v[ML_RESPONSE_CODE] = "must not show";
    metrics_tcp_open(&w2, &s, 400);
    s.rq_bytes = 10, s.rs_bytes = 20;
    metrics_tcp_close(&w2, &s, 400);
    t = render(ws, 2, &cfg);
    ok(t && strstr(t, "ringmesh_tcp_connections_opened_total{reporter=\"source\"") &&
           strstr(t, "ringmesh_tcp_received_bytes_total{reporter=\"source\""),
       "tcp: opened and bytes series");
    ok(t && !strstr(t, "must not show"), "tcp: no response_code label");
    free(t);
    metrics_worker_free(&w1);
    metrics_worker_free(&w2);

    /* labels left out, the istio prefix, escaping, disabled */
    struct metrics_config c2 = {.enabled = true, .prefix = "istio",
                                .label_mask = (1u << ML_REPORTER) | (1u << ML_SRC_PRINCIPAL),
                                .per_worker = 10};
    struct metrics_worker w3;
    metrics_worker_init(&w3, &c2);
    struct metrics_worker *w3s[] = {&w3};
    sample(&s, "200", 1);
    s.v[ML_SRC_PRINCIPAL] = "spiffe://x/\"q\"\\\n";
    metrics_http(&w3, &s, 1);
    sample(&s, "404", 1);
    s.v[ML_SRC_PRINCIPAL] = "spiffe://x/\"q\"\\\n";
    metrics_http(&w3, &s, 1);
    t = render(w3s, 1, &c2);
    ok(t && value_of(t, "istio_requests_total{reporter=\"destination\","
                        "source_principal=\"spiffe://x/\\\"q\\\"\\\\\\n\"}") == 2,
       "only the labels kept (two codes, one series), istio prefix, value escaped");
    free(t);
    c2.enabled = false;
    metrics_http(&w3, &s, 1);
    t = render(w3s, 1, &c2);
    ok(t && value_of(t, "istio_requests_total{reporter=\"destination\","
                        "source_principal=\"spiffe://x/\\\"q\\\"\\\\\\n\"}") == 2,
       "disabled: nothing more recorded");
    free(t);
    metrics_worker_free(&w3);
    return tap_done();
}
