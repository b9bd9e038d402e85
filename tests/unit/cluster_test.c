/*
 * cluster_test.c - a worker's clusters from a configuration snapshot: endpoints of each
 * Service port from its EndpointSlices (port matched by name), the policy's connect
 * retries, state kept across updates, dropped clusters freed once released.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "config.h"
#include "model.h"
#include "router.h"
#include "tap.h"

static const char base[] =
    "apiVersion: v1\nkind: Service\nmetadata: {name: echo, namespace: shop}\n"
    "spec:\n  clusterIP: 10.96.0.50\n  ports: [{name: tcp, port: 80, targetPort: 9000}]\n---\n"
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: echo-1, namespace: shop, labels: {kubernetes.io/service-name: echo}}\n"
    "addressType: IPv4\nports: [{name: tcp, port: 9000}, {name: other, port: 7000}]\n"
    "endpoints:\n- {addresses: [10.1.0.1]}\n- {addresses: [10.1.0.2]}\n"
    "- {addresses: [10.1.0.3], conditions: {ready: false, serving: true, terminating: true}}\n";

static struct config_snapshot *snap_of(const char *yaml)
{
    char err[512];
    struct config_snapshot *s = calloc(1, sizeof(*s));
    s->model = model_load_buffer("test", yaml, strlen(yaml), err, sizeof(err));
    if (!s->model) {
        printf("# %s\n", err);
        free(s);
        return NULL;
    }
    s->router = router_table_new(s->model, NULL, err, sizeof(err));
    atomic_init(&s->refs, 1);
    return s;
}

static const char *pick(struct cluster_set *cs, struct cluster *c, char *buf)
{
    struct lb_pick_ctx ctx = {.rng = &cs->rng, .now_ns = 1000};
    struct lb_host *h = lb_pick(c->lb, &ctx);
    if (!h)
        return "none";
    inet_ntop(AF_INET, h->addr.ip, buf, 32);
    sprintf(buf + strlen(buf), ":%u", h->addr.port);
    return buf;
}

int main(void)
{
    struct cluster_set cs;
    char b1[48], b2[48];
    ok(cluster_set_init(&cs, 42) == 0, "init");
    struct config_snapshot *s1 = snap_of(base);
    ok(s1 != NULL, "config loads");
    cluster_set_update(&cs, s1, 1000);
    struct cluster *c = cluster_find(&cs, "shop", "echo", 80);
    ok(c != NULL, "cluster shop/echo:80 exists");
    ok(cluster_find(&cs, "shop", "echo", 81) == NULL, "no cluster for an unknown port");
    is_int(lb_size(c->lb), 3, "three endpoints (the terminating one included, unusable)");
    is_int(lb_usable(c->lb), 2, "two usable: the terminating one gets no new requests");
    const char *p1 = pick(&cs, c, b1), *p2 = pick(&cs, c, b2);
    ok(strcmp(p1, p2) != 0 && strstr(p1, ":9000") && strstr(p2, ":9000"),
       "round robin alternates over the slice port 9000 (%s, %s)", p1, p2);
    is_int(c->connect_attempts, 2, "no policy: connect retries default to 2");

    /* a policy without connect-failure in retryOn: no connect retries */
    char with_policy[4096];
    snprintf(with_policy, sizeof(with_policy),
             "%s---\napiVersion: ringmesh.io/v1alpha1\nkind: DestinationPolicy\n"
             "metadata: {name: echo, namespace: shop}\nspec:\n"
             "  targetRef: {group: \"\", kind: Service, name: echo}\n"
             "  retries: {attempts: 3, retryOn: [5xx]}\n",
             base);
    struct config_snapshot *s2 = snap_of(with_policy);
    cluster_hold(c); /* a connection holds it across the update */
    cluster_set_update(&cs, s2, 2000);
    ok(cluster_find(&cs, "shop", "echo", 80) == c, "the same cluster object survives a reload");
    is_int(c->connect_attempts, 0, "retryOn without connect-failure: no connect retries");

    /* the Service goes away: the held cluster is dropped from lookups, freed on release */
    struct config_snapshot *s3 = snap_of("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n"
                                         "spec: {clusterIP: 10.96.0.9, ports: [{port: 1}]}\n");
    cluster_set_update(&cs, s3, 3000);
    ok(cluster_find(&cs, "shop", "echo", 80) == NULL, "a removed Service's cluster is not found");
    is_int(cs.n, 2, "but it lives on while held (2 clusters: it and default/x:1)");
    cluster_release(&cs, c);
    is_int(cs.n, 1, "released: freed");
    cluster_set_free(&cs);
    struct config_snapshot *all[] = {s1, s2, s3};
    for (int i = 0; i < 3; i++) {
        router_table_free(all[i]->router);
        model_set_free(all[i]->model);
        free(all[i]);
    }
    return tap_done();
}
