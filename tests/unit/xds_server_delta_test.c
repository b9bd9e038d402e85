/*
 * xds_server_delta_test.c - xds/store and xds/server_delta, the pure part of ringmesh-xds: commits
 * (created/configured/unchanged, revisions and versions, all-or-nothing validation with the
 * model, replace and delete), and per-type delta state: the first response (even empty),
 * one outstanding nonce, coalescing while unACKed, ACK/NACK/stale nonces, NACKed responses
 * not resent, resume with initial_resource_versions, removed_resources, explicit names that
 * do not exist, unsubscribe, and the JSON line (parsed back, no duplicate names).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "server_delta.h"
#include "store.h"
#include "tap.h"

static char err[1024];

static const char *svc(const char *name, int port, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\n"
             "spec: {ports: [{port: %d}]}\n",
             name, port);
    return buf;
}

/* Applies YAML; returns store_commit's result. */
static int apply(struct store *s, const char *yaml, enum store_mode mode,
                 enum store_action *act, bool *changed)
{
    struct store_obj **objs = NULL;
    size_t n = 0;
    int rc = store_parse("test.yaml", yaml, strlen(yaml), NULL, &objs, &n, err, sizeof(err));
    if (rc) {
        store_objs_free(objs, n);
        return rc;
    }
    bool ch;
    rc = store_commit(s, mode, objs, n, act, changed ? changed : &ch, err, sizeof(err));
    free(objs);
    return rc;
}

static int apply_svc(struct store *s, const char *name, int port)
{
    char b[512];
    return apply(s, svc(name, port, b, sizeof(b)), STORE_MERGE, NULL, NULL);
}

static int del(struct store *s, enum model_kind k, const char *ns, const char *name)
{
    struct store_obj *o = calloc(1, sizeof(*o));
    o->kind = k;
    o->ns = strdup(ns);
    o->name = strdup(name);
    bool ch;
    return store_commit(s, STORE_DELETE, &o, 1, NULL, &ch, err, sizeof(err));
}

/* Names in a response, "a,b" for resources and "-c" for removed. */
static const char *names(const struct delta_resp *r)
{
    static char buf[1024];
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < r->n_res; i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s@%llu", o ? "," : "", r->res[i]->key,
                              (unsigned long long)r->res[i]->version);
    for (size_t i = 0; i < r->n_removed; i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s-%s", o ? "," : "", r->removed[i]);
    return buf;
}

static uint64_t nonce_ctr;

/* delta_next_if_due (what the server calls) + delta_sent; the names sent or "(none)". */
static const char *push(struct delta_type *t, const struct store *s)
{
    static char out[1024];
    struct delta_resp r;
    int due = delta_next_if_due(t, s, &r);
    if (due <= 0)
        return "(none)";
    snprintf(out, sizeof(out), "%s", names(&r));
    delta_sent(t, &r, ++nonce_ctr, s->revision);
    delta_resp_free(&r);
    return out;
}

static enum delta_ack answer(struct delta_type *t, uint64_t nonce, const char *error)
{
    struct delta_req q = {.has_nonce = true, .nonce = nonce, .error = error};
    enum delta_ack a;
    delta_request(t, &q, 1000, &a, err, sizeof(err));
    return a;
}

static void subscribe_all(struct delta_type *t)
{
    static const char *const star[] = {"*"};
    struct delta_req q = {.subscribe = star, .n_subscribe = 1};
    enum delta_ack a;
    delta_request(t, &q, 1000, &a, err, sizeof(err));
}

static void test_store(void)
{
    struct store s;
    enum store_action act[4];
    bool changed;
    char b[512];
    store_init(&s);

    is_int(apply(&s,
                 "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{port: 80}]}\n"
                 "---\n"
                 "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n",
                 STORE_MERGE, act, &changed),
           0, "two Services applied");
    ok(changed && act[0] == STORE_CREATED && act[1] == STORE_CREATED, "both created");
    is_int(s.revision, 1, "revision 1");
    is_int(store_count(&s, MODEL_KIND_SERVICE), 2, "two Services stored");
    ok(s.objs[0]->name[0] == 'a', "sorted by name");
    is_str(s.objs[0]->key, "default/a", "resource name is ns/name");
    is_int(s.objs[1]->version, 1, "version = the revision of the change");

    is_int(apply(&s, svc("a", 80, b, sizeof(b)), STORE_MERGE, act, &changed), 0, "reapplied");
    ok(!changed && act[0] == STORE_UNCHANGED, "unchanged");
    is_int(s.revision, 1, "an unchanged apply keeps the revision");

    is_int(apply(&s, svc("a", 81, b, sizeof(b)), STORE_MERGE, act, &changed), 0, "a changed");
    ok(changed && act[0] == STORE_CONFIGURED, "configured");
    is_int(s.revision, 2, "revision 2");
    is_int(store_find(&s, MODEL_KIND_SERVICE, "default", "a")->version, 2, "a at 2");
    is_int(store_find(&s, MODEL_KIND_SERVICE, "default", "b")->version, 1, "b still at 1");

    /* all or nothing: the second policy for the same Service fails the whole candidate */
    is_int(apply(&s,
                 "apiVersion: ringmesh.io/v1alpha1\nkind: DestinationPolicy\n"
                 "metadata: {name: p1}\nspec: {targetRef: {group: '', kind: Service, name: a}}\n",
                 STORE_MERGE, NULL, NULL),
           0, "a policy for a");
    uint64_t rev = s.revision;
    size_t n = s.n;
    is_int(apply(&s,
                 "apiVersion: v1\nkind: Service\nmetadata: {name: c}\nspec: {ports: [{port: 80}]}\n"
                 "---\n"
                 "apiVersion: ringmesh.io/v1alpha1\nkind: DestinationPolicy\n"
                 "metadata: {name: p2}\nspec: {targetRef: {group: '', kind: Service, name: a}}\n",
                 STORE_MERGE, NULL, NULL),
           -EINVAL, "a second policy for a is refused");
    ok(strstr(err, "already has DestinationPolicy"), "with the model's error: %s", err);
    ok(s.revision == rev && s.n == n && !store_find(&s, MODEL_KIND_SERVICE, "default", "c"),
       "and nothing changed (not even the valid Service c)");

    is_int(apply(&s, "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 0}]}\n",
                 STORE_MERGE, NULL, NULL),
           -EINVAL, "a bad object is refused");
    ok(strstr(err, "test.yaml: document 1 (Service default/x): spec.ports[0].port"),
       "naming document and field: %s", err);

    is_int(del(&s, MODEL_KIND_SERVICE, "default", "nope"), -ENOENT, "deleting what is absent");
    ok(strstr(err, "Service default/nope not found"), "says not found");
    is_int(del(&s, MODEL_KIND_SERVICE, "default", "b"), 0, "b deleted");
    ok(!store_find(&s, MODEL_KIND_SERVICE, "default", "b"), "b gone");
    is_int(s.revision, rev + 1, "a delete moves the revision");

    /* replace: what is not in the new set goes; identical objects keep their version */
    uint64_t va = store_find(&s, MODEL_KIND_SERVICE, "default", "a")->version;
    is_int(apply(&s, svc("a", 81, b, sizeof(b)), STORE_REPLACE, NULL, &changed), 0, "replace");
    ok(changed, "the policy went: a change");
    is_int(s.n, 1, "one object left");
    is_int(store_find(&s, MODEL_KIND_SERVICE, "default", "a")->version, va,
           "a kept its version");
    rev = s.revision;
    is_int(apply(&s, svc("a", 81, b, sizeof(b)), STORE_REPLACE, NULL, &changed), 0,
           "the same replace again (the server re-reading its own write)");
    ok(!changed && s.revision == rev, "is no change");

    is_int(store_kind_parse("httproutes"), MODEL_KIND_HTTP_ROUTE, "kind httproutes");
    is_int(store_kind_parse("svc"), MODEL_KIND_SERVICE, "kind svc");
    is_int(store_kind_parse("discovery.k8s.io/v1/EndpointSlice"), MODEL_KIND_ENDPOINT_SLICE,
           "kind by type URL");
    is_int(store_kind_parse("Pod"), -1, "kind Pod unknown");
    {
        char fn[256];
        store_obj_filename(s.objs[0], fn, sizeof(fn));
        is_str(fn, "service-default-a.json", "file name of an applied object");
    }
    store_free(&s);
}

static void test_delta(void)
{
    struct store s;
    struct delta_type t;
    store_init(&s);
    delta_type_init(&t, MODEL_KIND_SERVICE);

    is_str(push(&t, &s), "(none)", "nothing before a subscription");
    subscribe_all(&t);
    is_str(push(&t, &s), "", "the first response goes out even empty");
    uint64_t n1 = nonce_ctr;
    apply_svc(&s, "a", 80);
    is_str(push(&t, &s), "(none)", "nothing while the first is unACKed");
    is_int(answer(&t, n1 + 100, NULL), DELTA_STALE, "an unknown nonce is stale");
    is_str(push(&t, &s), "(none)", "and changes nothing");
    is_int(answer(&t, n1, NULL), DELTA_ACK, "ACK");
    is_int(t.acked_sysver, 0, "acked the empty revision 0");
    is_str(push(&t, &s), "default/a@1", "a goes out after the ACK");
    uint64_t n2 = nonce_ctr;
    apply_svc(&s, "b", 80);
    apply_svc(&s, "a", 81);
    apply_svc(&s, "a", 82);
    is_int(answer(&t, n2, NULL), DELTA_ACK, "ACK");
    is_str(push(&t, &s), "default/a@4,default/b@2", "coalesced: a once at its last version, b");
    is_int(answer(&t, nonce_ctr, NULL), DELTA_ACK, "ACK");
    is_str(push(&t, &s), "(none)", "nothing more");

    /* NACK: recorded, not resent; the next real change only */
    apply_svc(&s, "a", 83);
    is_str(push(&t, &s), "default/a@5", "a changed");
    uint64_t nn = nonce_ctr;
    is_int(answer(&t, nn, "test.yaml: spec.ports[0]: bad"), DELTA_NACK, "NACK");
    is_int(t.nacks, 1, "counted");
    ok(t.last_nack.nonce == nn && !strcmp(t.last_nack.message, "test.yaml: spec.ports[0]: bad"),
       "recorded with its nonce and message");
    is_str(push(&t, &s), "(none)", "the NACKed response is not resent");
    apply_svc(&s, "b", 81);
    is_str(push(&t, &s), "default/b@6", "the next real change goes out alone");
    answer(&t, nonce_ctr, NULL);

    /* removal */
    del(&s, MODEL_KIND_SERVICE, "default", "b");
    is_str(push(&t, &s), "-default/b", "a delete goes out as removed_resources");
    answer(&t, nonce_ctr, NULL);
    is_str(push(&t, &s), "(none)", "once");

    /* JSON line */
    {
        struct delta_resp r;
        apply_svc(&s, "c", 80);
        del(&s, MODEL_KIND_SERVICE, "default", "a");
        is_int(delta_next(&t, &s, &r), 1, "due");
        size_t len;
        char *j = delta_resp_json(&r, MODEL_KIND_SERVICE, 42, s.revision, &len);
        ok(j && len && j[len - 1] == '\n' && !memchr(j, '\n', len - 1), "one JSON line");
        cJSON *o = cJSON_Parse(j);
        ok(o, "parses");
        is_str(cJSON_GetObjectItem(o, "type_url")->valuestring, "v1/Service", "type_url");
        is_str(cJSON_GetObjectItem(o, "nonce")->valuestring, "42", "nonce");
        cJSON *res = cJSON_GetObjectItem(o, "resources");
        is_int(cJSON_GetArraySize(res), 1, "one resource");
        is_str(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "name")->valuestring,
               "default/c", "named ns/name");
        is_str(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "resource"),
                                   "kind")->valuestring,
               "Service", "carrying the object");
        is_str(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "removed_resources"), 0)->valuestring,
               "default/a", "removed a");
        cJSON_Delete(o);
        free(j);
        delta_resp_free(&r);
    }
    delta_type_free(&t);

    /* resume with initial_resource_versions: only the difference */
    apply_svc(&s, "d", 80); /* store: c, d */
    {
        struct delta_type r;
        char cver[32];
        snprintf(cver, sizeof(cver), "%llu",
                 (unsigned long long)store_find(&s, MODEL_KIND_SERVICE, "default", "c")->version);
        const char *const star[] = {"*"};
        const char *const in[] = {"default/c", "default/d", "default/gone"};
        const char *const iv[] = {cver, "1", "3"};
        struct delta_req q = {.subscribe = star, .n_subscribe = 1, .initial_names = in,
                              .initial_versions = iv, .n_initial = 3};
        enum delta_ack a;
        delta_type_init(&r, MODEL_KIND_SERVICE);
        is_int(delta_request(&r, &q, 1000, &a, err, sizeof(err)), 0, "resume accepted");
        char want[128];
        snprintf(want, sizeof(want), "default/d@%llu,-default/gone",
                 (unsigned long long)s.revision);
        is_str(push(&r, &s), want, "resume: d changed, gone removed, c (same version) not sent");
        is_int(delta_request(&r, &q, 1000, &a, err, sizeof(err)), -EPROTO,
               "initial_resource_versions later in the stream is refused");
        delta_type_free(&r);
    }

    /* explicit names */
    {
        struct delta_type e;
        const char *const nm[] = {"default/c", "default/zz"};
        struct delta_req q = {.subscribe = nm, .n_subscribe = 2};
        enum delta_ack a;
        delta_type_init(&e, MODEL_KIND_SERVICE);
        delta_request(&e, &q, 1000, &a, err, sizeof(err));
        char want[128];
        snprintf(want, sizeof(want), "default/c@%llu,-default/zz",
                 (unsigned long long)store_find(&s, MODEL_KIND_SERVICE, "default", "c")->version);
        is_str(push(&e, &s), want, "explicit: c, and the unknown zz as removed");
        answer(&e, nonce_ctr, NULL);
        apply_svc(&s, "d", 99);
        is_str(push(&e, &s), "(none)", "d is not subscribed; zz not repeated");
        apply_svc(&s, "zz", 80);
        snprintf(want, sizeof(want), "default/zz@%llu", (unsigned long long)s.revision);
        is_str(push(&e, &s), want, "zz once it exists");
        answer(&e, nonce_ctr, NULL);
        const char *const un[] = {"default/zz"};
        struct delta_req u = {.unsubscribe = un, .n_unsubscribe = 1};
        delta_request(&e, &u, 1000, &a, err, sizeof(err));
        apply_svc(&s, "zz", 81);
        is_str(push(&e, &s), "(none)", "unsubscribed: no reply, no more zz");
        delta_type_free(&e);
    }
    store_free(&s);
}

static void test_map(void)
{
    struct delta_map m = {0};
    char k[32];
    int bad = 0;
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        delta_map_put(&m, k, (uint64_t)i + 1);
    }
    for (int i = 0; i < 2000; i += 2) {
        snprintf(k, sizeof(k), "k%d", i);
        delta_map_del(&m, k);
    }
    for (int i = 0; i < 2000; i++) {
        uint64_t v;
        snprintf(k, sizeof(k), "k%d", i);
        bool has = delta_map_get(&m, k, &v);
        if (has != (i % 2 == 1) || (has && v != (uint64_t)i + 1))
            bad++;
    }
    is_int(bad, 0, "map: 2000 puts, 1000 deletes, every lookup right");
    is_int(m.n, 1000, "map size");
    delta_map_free(&m);
}

/* kind_rev: which kinds a commit touched, so streams skip the others */
static void test_kind_rev(void)
{
    struct store s;
    struct delta_type ts, tp;
    store_init(&s);
    delta_type_init(&ts, MODEL_KIND_SERVICE);
    delta_type_init(&tp, MODEL_KIND_DESTINATION_POLICY);
    subscribe_all(&ts);
    subscribe_all(&tp);
    is_int(apply_svc(&s, "a", 80), 0, "kind_rev: a Service");
    ok(s.kind_rev[MODEL_KIND_SERVICE] == s.revision && s.kind_rev[MODEL_KIND_DESTINATION_POLICY] == 0,
       "kind_rev: the Service kind moved, DestinationPolicy did not");
    is_str(push(&ts, &s), "default/a@1", "kind_rev: the Service is pushed");
    is_str(push(&tp, &s), "", "kind_rev: the first (empty) DestinationPolicy response");
    answer(&ts, nonce_ctr - 1, NULL);
    answer(&tp, nonce_ctr, NULL);
    is_int(apply(&s,
                 "apiVersion: ringmesh.io/v1alpha1\nkind: DestinationPolicy\n"
                 "metadata: {name: a, namespace: default}\n"
                 "spec: {targetRef: {group: \"\", kind: Service, name: a}}\n",
                 STORE_MERGE, NULL, NULL),
           0, "kind_rev: a DestinationPolicy");
    ok(s.kind_rev[MODEL_KIND_SERVICE] == 1 && s.kind_rev[MODEL_KIND_DESTINATION_POLICY] == 2,
       "kind_rev: only DestinationPolicy moved (1, 2)");
    is_str(push(&ts, &s), "(none)", "kind_rev: nothing for the Service type");
    is_str(push(&tp, &s), "default/a@2", "kind_rev: the policy goes out");
    is_int(apply_svc(&s, "a", 80), 0, "kind_rev: the same Service again");
    is_int((int)s.kind_rev[MODEL_KIND_SERVICE], 1, "kind_rev: an unchanged apply moves nothing");
    /* a change while a response is pending is sent after the ACK (coalesced) */
    is_int(apply_svc(&s, "b", 81), 0, "kind_rev: Service b");
    answer(&tp, nonce_ctr, NULL);
    is_str(push(&ts, &s), "default/b@3", "kind_rev: b is pushed");
    is_int(apply_svc(&s, "c", 82), 0, "kind_rev: Service c while b is unACKed");
    is_str(push(&ts, &s), "(none)", "kind_rev: nothing while pending");
    answer(&ts, nonce_ctr, NULL);
    is_str(push(&ts, &s), "default/c@4", "kind_rev: c after the ACK");
    answer(&ts, nonce_ctr, NULL);
    /* a subscription change is looked at even when the store did not move */
    static const char *const names_[] = {"default/zz"};
    struct delta_req q = {.subscribe = names_, .n_subscribe = 1};
    enum delta_ack a;
    delta_request(&ts, &q, 1000, &a, err, sizeof(err));
    is_str(push(&ts, &s), "-default/zz",
           "kind_rev: an explicit name that does not exist comes back removed, store unmoved");
    ok(!ts.dirty, "kind_rev: the subscription change was looked at");
    answer(&ts, nonce_ctr, NULL);
    /* removals (replace mode) move the removed kind */
    is_int(del(&s, MODEL_KIND_SERVICE, "default", "c"), 0, "kind_rev: delete c");
    is_int((int)s.kind_rev[MODEL_KIND_SERVICE], (int)s.revision, "kind_rev: a delete moves it");
    is_str(push(&ts, &s), "-default/c", "kind_rev: c is removed");
    /* an API change is not revalidated as a whole set: the one rule across objects */
    static const char dp2[] = "apiVersion: ringmesh.io/v1alpha1\nkind: DestinationPolicy\n"
                              "metadata: {name: other, namespace: default}\n"
                              "spec: {targetRef: {group: \"\", kind: Service, name: a}}\n";
    uint64_t rev = s.revision;
    is_int(apply(&s, dp2, STORE_MERGE, NULL, NULL), -EINVAL,
           "a second DestinationPolicy for Service a is refused");
    ok(strstr(err, "DestinationPolicy default/other: spec.targetRef: Service default/a already "
                   "has DestinationPolicy default/a") != NULL,
       "... naming both (%s)", err);
    is_int((int)s.revision, (int)rev, "... and nothing changed");
    static const char dp3[] = "apiVersion: ringmesh.io/v1alpha1\nkind: DestinationPolicy\n"
                              "metadata: {name: x, namespace: default}\n"
                              "spec: {targetRef: {group: \"\", kind: Service, name: q}}\n"
                              "---\napiVersion: ringmesh.io/v1alpha1\nkind: DestinationPolicy\n"
                              "metadata: {name: y, namespace: default}\n"
                              "spec: {targetRef: {group: \"\", kind: Service, name: q}}\n";
    is_int(apply(&s, dp3, STORE_MERGE, NULL, NULL), -EINVAL,
           "two new policies for one Service in one apply are refused");
    is_int(apply(&s,
                 "apiVersion: ringmesh.io/v1alpha1\nkind: DestinationPolicy\n"
                 "metadata: {name: a, namespace: default}\n"
                 "spec: {targetRef: {group: \"\", kind: Service, name: a}, "
                 "loadBalancer: {type: Random}}\n",
                 STORE_MERGE, NULL, NULL),
           0, "the policy itself may change");
    delta_type_free(&ts);
    delta_type_free(&tp);
    store_free(&s);
}

/* The change-log path (delta_next_if_due) against the full diff (delta_next), over 400
 * random applies and deletes of 40 Services, ACKing or NACKing each response: every
 * response must be the same. */
static void test_log_equivalence(void)
{
    struct store s;
    struct delta_type full, fast;
    store_init(&s);
    delta_type_init(&full, MODEL_KIND_SERVICE);
    delta_type_init(&fast, MODEL_KIND_SERVICE);
    subscribe_all(&full);
    subscribe_all(&fast);
    unsigned seed = 12345, same = 0, steps = 0, logged = 0;
    char name[16], a[1024], b[1024];
    for (int step = 0; step < 400; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = (seed >> 8) % 40, op = (seed >> 20) % 3;
        snprintf(name, sizeof(name), "s%u", r);
        if (op == 0 && store_find(&s, MODEL_KIND_SERVICE, "default", name))
            del(&s, MODEL_KIND_SERVICE, "default", name);
        else
            apply_svc(&s, name, 80 + (int)((seed >> 12) % 3));
        if ((seed >> 4) % 4 == 0)
            continue; /* several changes before the next look: coalesced */
        struct delta_resp r1, r2;
        int d1 = delta_next(&full, &s, &r1);
        bool via_log = fast.subscribed && fast.sent_first && !fast.pending_nonce &&
                       !fast.dirty && fast.seen_rev != s.kind_rev[MODEL_KIND_SERVICE] &&
                       fast.seen_rev >= s.log_floor;
        int d2 = delta_next_if_due(&fast, &s, &r2);
        logged += via_log;
        snprintf(a, sizeof(a), "%d %s", d1, d1 > 0 ? names(&r1) : "");
        snprintf(b, sizeof(b), "%d %s", d2, d2 > 0 ? names(&r2) : "");
        steps++;
        if (!strcmp(a, b))
            same++;
        else if (same + 1 == steps)
            printf("#   step %d: full '%s', log '%s'\n", step, a, b);
        bool nack = (seed >> 16) % 5 == 0;
        if (d1 > 0) {
            delta_sent(&full, &r1, ++nonce_ctr, s.revision);
            answer(&full, nonce_ctr, nack ? "no" : NULL);
        }
        if (d2 > 0) {
            delta_sent(&fast, &r2, ++nonce_ctr, s.revision);
            answer(&fast, nonce_ctr, nack ? "no" : NULL);
        }
        delta_resp_free(&r1);
        delta_resp_free(&r2);
    }
    is_int((int)same, (int)steps, "the change log gives the full diff's answer at every step");
    ok(logged > 100, "most steps went through the log (%u of %u)", logged, steps);
    delta_type_free(&full);
    delta_type_free(&fast);
    store_free(&s);
}

int main(void)
{
    test_log_equivalence();
    test_store();
    test_delta();
    test_map();
    test_kind_rev();
    return tap_done();
}
