/*
 * xds_client_test.c - the delta xDS client's logic (xds/delta.c) without sockets: applying
 * responses to the held set through the sidecar's real compile path (config_from_buffer,
 * the --config code), NACKs that change nothing, duplicate names, unknown types, warming,
 * the subscribe and resume lines, the cache round trip; and the pure parts of xds/client.c
 * (URL check, backoff) and the CSR maker (xds/csr.c; the integ test has a CA sign it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "client.h"
#include "config.h"
#include "delta.h"
#include "model.h"
#include "ca.h"
#include "tap.h"

/* The apply callback: compiles like the sidecar does; counts compiles and publishes. */
struct sink {
    int compiles, publishes;
    size_t services, slices, routes; /* of the last accepted candidate */
};

static int apply(void *arg, const char *model, size_t len, bool warm, char *err, size_t errlen)
{
    struct sink *s = arg;
    struct config_snapshot *snap = config_from_buffer("xds", model, len, err, errlen);
    s->compiles++;
    if (!snap)
        return -1;
    s->services = snap->model->n_services;
    s->slices = snap->model->n_slices;
    s->routes = snap->model->n_routes;
    if (warm)
        s->publishes++;
    config_release(snap);
    return 0;
}

static const char SVC[] =
    "{\"name\":\"shop/%s\",\"version\":\"%s\",\"resource\":{\"apiVersion\":\"v1\",\"kind\":"
    "\"Service\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"shop\"},\"spec\":{\"clusterIP\":"
    "\"%s\",\"ports\":[{\"name\":\"http\",\"port\":%s,\"appProtocol\":\"http\"}]}}}";

static char *svc(const char *name, const char *ver, const char *ip, const char *port)
{
    static char buf[8][1024];
    static int n;
    char *b = buf[n++ & 7];
    snprintf(b, 1024, SVC, name, ver, name, ip, port);
    return b;
}

static char *resp(const char *type, const char *nonce, const char *resources, const char *removed)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf),
             "{\"system_version_info\":\"%s\",\"type_url\":\"%s\",\"nonce\":\"%s\","
             "\"resources\":[%s],\"removed_resources\":[%s]}",
             nonce, type, nonce, resources, removed);
    return buf;
}

static enum xds_verdict handle(struct xds_delta *d, struct sink *s, const char *line,
                               struct xds_delta_result *r)
{
    int rc = xds_delta_handle(d, line, strlen(line), apply, s, r);
    return rc < 0 ? XDS_ERROR : (enum xds_verdict)rc;
}

/* Sends an empty first response for every type not yet received. */
static void warm_rest(struct xds_delta *d, struct sink *s)
{
    for (int t = 0; t < XDS_T_COUNT; t++) {
        struct xds_delta_result r;
        if (d->received[t])
            continue;
        handle(d, s, resp(xds_type_url(t), "w", "", ""), &r);
        xds_delta_result_free(&r);
    }
}

static cJSON *parse_reply(const struct xds_delta_result *r)
{
    ok(r->reply && r->reply_len && r->reply[r->reply_len - 1] == '\n' &&
           !memchr(r->reply, '\n', r->reply_len - 1),
       "the reply is one line ending in a newline");
    return r->reply ? cJSON_ParseWithLength(r->reply, r->reply_len) : NULL;
}

static void test_types(void)
{
    is_int(xds_type_index("v1/Service"), XDS_T_SERVICE, "v1/Service is type 0");
    is_int(xds_type_index("ringmesh.io/v1alpha1/PeerAuthentication"), XDS_T_PEER_AUTHN,
           "PeerAuthentication is the last type");
    is_int(xds_type_index("v1/ConfigMap"), -1, "an unknown type URL is -1");
    is_str(xds_type_url(XDS_T_SLICE), "discovery.k8s.io/v1/EndpointSlice",
           "type 2 is EndpointSlice (the server's order)");
}

static void test_apply_and_warming(void)
{
    struct xds_delta d;
    struct sink s = {0};
    struct xds_delta_result r;
    char two[2048];
    xds_delta_init(&d);
    ok(!xds_delta_is_warm(&d), "a fresh state is not warm");

    snprintf(two, sizeof(two), "%s,%s", svc("cart", "3", "10.96.1.1", "80"),
             svc("pay", "4", "10.96.1.2", "80"));
    is_int(handle(&d, &s, resp("v1/Service", "1", two, ""), &r), XDS_ACK, "two Services are ACKed");
    cJSON *j = parse_reply(&r);
    is_str(cJSON_GetStringValue(cJSON_GetObjectItem(j, "response_nonce")), "1",
           "the ACK echoes the nonce");
    is_str(cJSON_GetStringValue(cJSON_GetObjectItem(j, "type_url")), "v1/Service",
           "the ACK names the type");
    ok(!cJSON_GetObjectItem(j, "error_detail"), "an ACK has no error_detail");
    cJSON_Delete(j);
    xds_delta_result_free(&r);
    is_int(xds_delta_count(&d, XDS_T_SERVICE), 2, "two Services held");
    is_int(s.services, 2, "the compiled candidate had two Services");
    is_int(s.publishes, 0, "not warm after one type: nothing published");
    is_str(d.acked_version[XDS_T_SERVICE], "1", "the ACKed version is system_version_info");

    /* warming: each further type's first response; publish only with the sixth */
    for (int t = 1; t < XDS_T_COUNT; t++) {
        handle(&d, &s, resp(xds_type_url(t), "n", "", ""), &r);
        xds_delta_result_free(&r);
        if (t < XDS_T_COUNT - 1)
            ok(!xds_delta_is_warm(&d) && s.publishes == 0, "after type %d: still warming", t);
    }
    ok(xds_delta_is_warm(&d), "warm after every type's first response");
    is_int(s.publishes, 1, "the first snapshot is published with the last type's response");

    /* an update replaces one and adds one; a removal drops one */
    snprintf(two, sizeof(two), "%s,%s", svc("cart", "5", "10.96.1.9", "80"),
             svc("ship", "5", "10.96.1.3", "80"));
    is_int(handle(&d, &s, resp("v1/Service", "7", two, "\"shop/pay\""), &r), XDS_ACK,
           "replace + add + remove is ACKed");
    is_int(r.n_updated * 10 + r.n_removed, 21, "two updated, one removed");
    xds_delta_result_free(&r);
    is_int(xds_delta_count(&d, XDS_T_SERVICE), 2, "cart and ship held, pay gone");
    ok(cJSON_GetObjectItem(d.held[XDS_T_SERVICE], "shop/ship") &&
           !cJSON_GetObjectItem(d.held[XDS_T_SERVICE], "shop/pay"),
       "the held names are right");
    is_str(cJSON_GetStringValue(cJSON_GetObjectItem(
               cJSON_GetObjectItem(d.held[XDS_T_SERVICE], "shop/cart"), "version")),
           "5", "cart's version is the new one");
    is_int(s.publishes, 2, "a warm update is published");

    /* a warm state and an empty response: ACKed without compiling or publishing again */
    int compiles = s.compiles, publishes = s.publishes;
    is_int(handle(&d, &s, resp("gateway.networking.k8s.io/v1/HTTPRoute", "7b", "", ""), &r),
           XDS_ACK, "an empty response when warm is ACKed");
    xds_delta_result_free(&r);
    ok(s.compiles == compiles && s.publishes == publishes,
       "  without compiling or publishing the same set again");
    is_str(d.acked_version[XDS_T_ROUTE], "7b", "  and its version is recorded");

    /* removing a name never held is fine */
    is_int(handle(&d, &s, resp("v1/Service", "8", "", "\"shop/ghost\""), &r), XDS_ACK,
           "removing an unknown name is ACKed");
    xds_delta_result_free(&r);
    is_int(xds_delta_count(&d, XDS_T_SERVICE), 2, "still two held");
    xds_delta_free(&d);
}

/* Builds a 3-Service warm state. */
static void warm_state(struct xds_delta *d, struct sink *s)
{
    struct xds_delta_result r;
    char three[3072];
    xds_delta_init(d);
    snprintf(three, sizeof(three), "%s,%s,%s", svc("a", "1", "10.96.1.1", "80"),
             svc("b", "1", "10.96.1.2", "80"), svc("c", "1", "10.96.1.3", "80"));
    handle(d, s, resp("v1/Service", "1", three, ""), &r);
    xds_delta_result_free(&r);
    warm_rest(d, s);
}

static void test_nack(void)
{
    struct xds_delta d;
    struct sink s = {0};
    struct xds_delta_result r;
    char buf[2048];
    warm_state(&d, &s);
    char *before = xds_delta_cache(&d, NULL);
    int pub = s.publishes;

    /* the model rejects a port out of range: NACK with the model's field path */
    snprintf(buf, sizeof(buf), "%s,%s", svc("a", "2", "10.96.1.1", "99999"),
             svc("d", "2", "10.96.1.4", "80"));
    is_int(handle(&d, &s, resp("v1/Service", "9", buf, "\"shop/b\""), &r), XDS_NACK,
           "an invalid resource is NACKed");
    ok(strstr(r.error, "(Service shop/a): spec.ports[0].port") != NULL,
       "the NACK names object and field path: %s", r.error);
    cJSON *j = parse_reply(&r);
    cJSON *ed = cJSON_GetObjectItem(j, "error_detail");
    is_int(cJSON_GetNumberValue(cJSON_GetObjectItem(ed, "code")), 3, "error_detail.code 3");
    ok(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(ed, "message")) ?: "", "spec.ports[0].port"),
       "error_detail.message carries the model's error");
    is_str(cJSON_GetStringValue(cJSON_GetObjectItem(j, "response_nonce")), "9",
           "the NACK echoes the nonce");
    cJSON_Delete(j);
    xds_delta_result_free(&r);
    char *after = xds_delta_cache(&d, NULL);
    is_str(after, before, "after a NACK the held state is byte for byte the same");
    free(after);
    is_int(s.publishes, pub, "a NACK publishes nothing");
    is_str(d.acked_version[XDS_T_SERVICE], "1", "the ACKed version did not move");

    /* duplicate names in one response */
    snprintf(buf, sizeof(buf), "%s,%s", svc("d", "2", "10.96.1.4", "80"),
             svc("d", "3", "10.96.1.5", "80"));
    int compiles = s.compiles;
    is_int(handle(&d, &s, resp("v1/Service", "10", buf, ""), &r), XDS_NACK,
           "a name twice in one response is NACKed");
    ok(strstr(r.error, "shop/d: twice in one response") != NULL, "and says so: %s", r.error);
    xds_delta_result_free(&r);
    is_int(s.compiles, compiles, "a malformed response is not even compiled");

    /* updated and removed at once */
    is_int(handle(&d, &s, resp("v1/Service", "11", svc("a", "2", "10.96.1.1", "80"), "\"shop/a\""),
                  &r),
           XDS_NACK, "a name both updated and removed is NACKed");
    xds_delta_result_free(&r);

    /* wrong kind for the type URL */
    is_int(handle(&d, &s,
                  resp("gateway.networking.k8s.io/v1/HTTPRoute", "12",
                       svc("x", "1", "10.96.1.8", "80"), ""),
                  &r),
           XDS_NACK, "a Service in an HTTPRoute response is NACKed");
    ok(strstr(r.error, "a v1/Service in a gateway.networking.k8s.io/v1/HTTPRoute response") != NULL,
       "naming both: %s", r.error);
    xds_delta_result_free(&r);

    /* a name that is not <ns>/<name> of the object */
    snprintf(buf, sizeof(buf), "%s", svc("e", "1", "10.96.1.8", "80"));
    memcpy(strstr(buf, "shop/e"), "shop/f", 6);
    is_int(handle(&d, &s, resp("v1/Service", "13", buf, ""), &r), XDS_NACK,
           "a resource name its metadata does not give back is NACKed");
    xds_delta_result_free(&r);

    /* an unknown type: answered with a NACK naming it, nothing applied */
    is_int(handle(&d, &s, resp("v1/ConfigMap", "14", "", ""), &r), XDS_NACK,
           "an unknown type URL is answered (NACK), not applied");
    ok(strstr(r.error, "v1/ConfigMap: not subscribed") != NULL, "naming it: %s", r.error);
    j = parse_reply(&r);
    is_str(cJSON_GetStringValue(cJSON_GetObjectItem(j, "type_url")), "v1/ConfigMap",
           "the answer carries the unknown type URL back");
    cJSON_Delete(j);
    xds_delta_result_free(&r);

    after = xds_delta_cache(&d, NULL);
    is_str(after, before, "after all those NACKs the held state is unchanged");
    free(after);
    free(before);

    /* lines that cannot be answered break the stream */
    const char *bad[] = {"not json", "[1,2]", "{\"type_url\":\"v1/Service\"}",
                         "{\"error\":\"line too long\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is_int(handle(&d, &s, bad[i], &r), XDS_ERROR, "unanswerable line is a stream error");
        ok(r.reply == NULL && r.error[0], "  no reply, a reason: %s", r.error);
        xds_delta_result_free(&r);
    }
    xds_delta_free(&d);
}

static char *policy(const char *name, const char *target)
{
    static char buf[2][512];
    static int n;
    char *b = buf[n++ & 1];
    snprintf(b, 512,
             "{\"name\":\"shop/%s\",\"version\":\"1\",\"resource\":{\"apiVersion\":"
             "\"ringmesh.io/v1alpha1\",\"kind\":\"DestinationPolicy\",\"metadata\":{\"name\":"
             "\"%s\",\"namespace\":\"shop\"},\"spec\":{\"targetRef\":{\"group\":\"\","
             "\"kind\":\"Service\",\"name\":\"%s\"}}}}",
             name, name, target);
    return b;
}

static void test_whole_set_checked(void)
{
    /* The candidate is validated as a whole with every held type, not just the
     * response's resources: a second DestinationPolicy for a Service that already has one
     * (held from an earlier response) is refused by the model. */
    struct xds_delta d;
    struct sink s = {0};
    struct xds_delta_result r;
    const char *dp = "ringmesh.io/v1alpha1/DestinationPolicy";
    warm_state(&d, &s);
    is_int(handle(&d, &s, resp(dp, "20", policy("p1", "a"), ""), &r), XDS_ACK,
           "a DestinationPolicy for Service a is ACKed");
    xds_delta_result_free(&r);
    is_int(handle(&d, &s, resp(dp, "21", policy("p2", "a"), ""), &r), XDS_NACK,
           "a second one for a, in a later response, is NACKed");
    ok(strstr(r.error, "already has DestinationPolicy shop/p1") != NULL,
       "  because the held p1 was compiled with it: %s", r.error);
    xds_delta_result_free(&r);
    is_int(xds_delta_count(&d, XDS_T_DEST_POLICY), 1, "  and p2 is not held");
    is_int(handle(&d, &s, resp(dp, "22", policy("p2", "a"), "\"shop/p1\""), &r), XDS_ACK,
           "replacing p1 by p2 in one response is ACKed");
    xds_delta_result_free(&r);
    ok(cJSON_GetObjectItem(d.held[XDS_T_DEST_POLICY], "shop/p2") &&
           xds_delta_count(&d, XDS_T_DEST_POLICY) == 1,
       "  p2 alone is held");
    xds_delta_free(&d);
}

static void test_subscribe_and_resume(void)
{
    struct xds_delta d;
    struct sink s = {0};
    size_t len;
    warm_state(&d, &s);
    char *l = xds_delta_subscribe_line(&d, XDS_T_SERVICE, "{\"id\":\"sidecar~1\"}", false, &len);
    ok(l && l[len - 1] == '\n', "a subscribe line ends in a newline");
    cJSON *j = cJSON_Parse(l);
    is_str(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "node"), "id")),
           "sidecar~1", "the first line carries node");
    is_str(cJSON_GetStringValue(
               cJSON_GetArrayItem(cJSON_GetObjectItem(j, "resource_names_subscribe"), 0)),
           "*", "subscribes to *");
    ok(!cJSON_GetObjectItem(j, "initial_resource_versions"), "no resume on a first stream");
    cJSON_Delete(j);
    free(l);

    l = xds_delta_subscribe_line(&d, XDS_T_SERVICE, NULL, true, &len);
    j = cJSON_Parse(l);
    ok(!cJSON_GetObjectItem(j, "node"), "later lines carry no node");
    cJSON *irv = cJSON_GetObjectItem(j, "initial_resource_versions");
    is_int(cJSON_GetArraySize(irv), 3, "resume lists the three held Services");
    is_str(cJSON_GetStringValue(cJSON_GetObjectItem(irv, "shop/b")), "1", "with their versions");
    cJSON_Delete(j);
    free(l);

    l = xds_delta_subscribe_line(&d, XDS_T_ROUTE, NULL, true, &len);
    j = cJSON_Parse(l);
    ok(l && !cJSON_GetObjectItem(j, "initial_resource_versions"),
       "a type holding nothing resumes without initial_resource_versions");
    cJSON_Delete(j);
    free(l);
    ok(xds_delta_subscribe_line(&d, XDS_T_ROUTE, "[1]", false, &len) == NULL,
       "a node that is not an object is refused");

    /* the cache round-trips and is warm */
    size_t clen;
    char *cache = xds_delta_cache(&d, &clen), err[256];
    struct xds_delta d2;
    xds_delta_init(&d2);
    is_int(xds_delta_load_cache(&d2, cache, clen, err, sizeof(err)), 0, "the cache loads back");
    ok(xds_delta_is_warm(&d2), "a loaded cache is warm");
    char *again = xds_delta_cache(&d2, NULL);
    is_str(again, cache, "and renders the same");
    size_t mlen;
    char *model = xds_delta_render(&d2, &mlen);
    struct config_snapshot *snap = config_from_buffer("cache", model, mlen, err, sizeof(err));
    ok(snap && snap->model->n_services == 3, "the cache's model compiles with three Services");
    config_release(snap);
    free(model);
    free(again);
    l = xds_delta_subscribe_line(&d2, XDS_T_SERVICE, NULL, true, &len);
    ok(strstr(l, "\"initial_resource_versions\":{\"shop/a\":\"1\""),
       "resume after a restart from the cache sends the cached versions");
    free(l);
    is_int(xds_delta_load_cache(&d2, "{\"types\":{}}", 12, err, sizeof(err)), -22,
           "a file that is not a cache is refused");
    memcpy(strstr(cache, "shop/b\""), "shop/x", 6);
    is_int(xds_delta_load_cache(&d2, cache, clen, err, sizeof(err)), -22,
           "a cache whose name and object disagree is refused");
    ok(strstr(err, "its metadata names shop/b") != NULL, "  saying so: %s", err);
    ok(xds_delta_count(&d2, XDS_T_SERVICE) == 3, "a refused cache leaves the state alone");
    free(cache);
    xds_delta_free(&d2);
    xds_delta_free(&d);
}

static void test_client_pure(void)
{
    char err[256];
    struct xds_url u;
    is_int(xds_url_parse("http://127.0.0.1:15010", &u, err, sizeof(err)), 0, "http URL parses");
    ok(!u.tls && u.port == 15010, "  plaintext, port 15010");
    is_int(xds_url_parse("https://istiod.ringmesh-system.svc:15012/", &u, err, sizeof(err)), 0,
           "https URL with a trailing slash parses");
    ok(u.tls && u.port == 15012 && strcmp(u.host, "istiod.ringmesh-system.svc") == 0,
       "  TLS, host and port");
    is_int(xds_url_parse("http://[::1]:15010", &u, err, sizeof(err)), 0, "IPv6 literal parses");
    const char *bad[] = {"ftp://x:1",       "http://",           "http://host",
                         "http://host:0",   "http://host:99999", "http://host:15010/path",
                         "127.0.0.1:15010", "http://ho st:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok(xds_url_parse(bad[i], &u, err, sizeof(err)) < 0 && err[0], "bad URL '%s': %s", bad[i],
           err);
    }
    /* backoff: 250 ms doubling to 15 s, each +-50% */
    unsigned seed = 1;
    bool in_range = true;
    unsigned lo_seen = ~0u, hi_seen = 0;
    for (unsigned attempt = 0; attempt < 20; attempt++) {
        unsigned base = 250u << (attempt < 6 ? attempt : 6);
        if (base > 15000)
            base = 15000;
        for (int k = 0; k < 200; k++) {
            unsigned ms = xds_backoff_ms(attempt, &seed);
            if (ms < base / 2 || ms > base + base / 2)
                in_range = false;
            if (attempt == 19) {
                lo_seen = ms < lo_seen ? ms : lo_seen;
                hi_seen = ms > hi_seen ? ms : hi_seen;
            }
        }
    }
    ok(in_range, "every backoff is within +-50%% of 250 ms * 2^n capped at 15 s");
    ok(lo_seen < 9000 && hi_seen > 21000, "the jitter spreads (at the cap: %u..%u ms)", lo_seen,
       hi_seen);
}

static void test_csr(void)
{
    char *key, *csr, err[256];
    char *key2, *csr2;
    is_int(ca_key_new(&key, err, sizeof(err)) || ca_make_csr(key, strlen(key), &csr, err, sizeof(err)),
           0, "ca_key_new + ca_make_csr work");
    ok(strstr(csr, "-----BEGIN CERTIFICATE REQUEST-----") == csr, "  a PEM CSR");
    ok(strstr(key, "-----BEGIN EC PRIVATE KEY-----") == key, "  a SEC 1 PEM key");
    is_int(ca_key_new(&key2, err, sizeof(err)) ||
               ca_make_csr(key2, strlen(key2), &csr2, err, sizeof(err)),
           0, "again");
    ok(strcmp(key, key2) != 0 && strcmp(csr, csr2) != 0, "  a fresh key each time");
    free(key);
    free(csr);
    free(key2);
    free(csr2);
}

int main(void)
{
    test_types();
    test_apply_and_warming();
    test_nack();
    test_whole_set_checked();
    test_subscribe_and_resume();
    test_client_pure();
    test_csr();
    config_shutdown();
    return tap_done();
}
