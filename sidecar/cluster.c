/*
 * cluster.c - see cluster.h. Endpoints of a Service port come from the EndpointSlices
 * labelled with the Service's name in its namespace, through the slice port whose name
 * equals the Service port's name (Kubernetes' rule; "" matches ""); an endpoint's first
 * address is used, as kube-proxy does.
 */
#include "cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "model.h"

#define CLUSTER_DROPPED UINT64_MAX /* gen of a cluster no longer configured */

static uint64_t key_hash(const char *k)
{
    return lb_hash(k, strlen(k));
}

static int make_key(char *out, size_t len, const char *ns, const char *name, uint16_t port)
{
    int n = snprintf(out, len, "%s/%s:%u", ns, name, port);
    return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

int cluster_set_init(struct cluster_set *cs, uint64_t seed)
{
    memset(cs, 0, sizeof(*cs));
    cs->nbuckets = 256;
    cs->buckets = calloc(cs->nbuckets, sizeof(*cs->buckets));
    prng_seed(&cs->rng, seed);
    return cs->buckets ? 0 : -ENOMEM;
}

struct cluster *cluster_find(struct cluster_set *cs, const char *ns, const char *name,
                             uint16_t port)
{
    char key[sizeof(((struct cluster *)0)->key)];
    if (!cs->buckets || make_key(key, sizeof(key), ns, name, port) < 0)
        return NULL;
    for (struct cluster *c = cs->buckets[key_hash(key) % cs->nbuckets]; c; c = c->next)
        if (c->gen != CLUSTER_DROPPED && strcmp(c->key, key) == 0)
            return c;
    return NULL;
}

static void unlink_free(struct cluster_set *cs, struct cluster *c)
{
    for (struct cluster **pp = &cs->buckets[key_hash(c->key) % cs->nbuckets]; *pp;
         pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    lb_destroy(c->lb);
    free(c);
    cs->n--;
}

static void grow(struct cluster_set *cs)
{
    size_t nb = cs->nbuckets * 2;
    struct cluster **b = calloc(nb, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < cs->nbuckets; i++)
        for (struct cluster *c = cs->buckets[i], *next; c; c = next) {
            next = c->next;
            size_t h = key_hash(c->key) % nb;
            c->next = b[h];
            b[h] = c;
        }
    free(cs->buckets);
    cs->buckets = b;
    cs->nbuckets = nb;
}

/* The endpoints of one Service port, into a caller-freed array. */
static struct lb_endpoint *endpoints_of(const struct model_set *m, const struct model_service *sv,
                                        const struct model_service_port *sp, size_t *n)
{
    size_t cap = 0, k = 0;
    struct lb_endpoint *eps = NULL;
    for (size_t i = 0; i < m->n_slices; i++) {
        const struct model_slice *sl = &m->slices[i];
        if (strcmp(sl->meta.ns, sv->meta.ns) != 0 || strcmp(sl->service_name, sv->meta.name) != 0)
            continue;
        const struct model_slice_port *port = NULL;
        for (size_t j = 0; j < sl->n_ports; j++)
            if (strcmp(sl->ports[j].name, sp->name) == 0 && sl->ports[j].has_port)
                port = &sl->ports[j];
        if (!port)
            continue;
        for (size_t j = 0; j < sl->n_endpoints; j++) {
            const struct model_endpoint *e = &sl->endpoints[j];
            if (!e->n_addresses)
                continue;
            if (k == cap) {
                size_t nc = cap ? cap * 2 : 16;
                struct lb_endpoint *t = realloc(eps, nc * sizeof(*t));
                if (!t)
                    break;
                eps = t;
                cap = nc;
            }
            struct lb_endpoint *le = &eps[k++];
            memset(le, 0, sizeof(*le));
            lb_addr_set(&le->addr, e->addresses[0].family, e->addresses[0].addr, port->port);
            le->weight = 1;
            le->zone = e->zone;
            le->ready = e->ready;
            le->serving = e->serving;
            le->terminating = e->terminating;
        }
    }
    *n = k;
    return eps;
}

static void update_one(struct cluster_set *cs, const struct model_set *m,
                       const struct model_service *sv, const struct model_service_port *sp,
                       int64_t now_ns)
{
    char key[sizeof(((struct cluster *)0)->key)], err[256];
    struct model_destination_policy defaults;
    const struct model_destination_policy *pol = model_find_dest_policy(m, sv->meta.ns,
                                                                        sv->meta.name);
    struct lb_config cfg;
    struct cluster *c;
    size_t n;

    if (make_key(key, sizeof(key), sv->meta.ns, sv->meta.name, sp->port) < 0)
        return;
    if (!pol) {
        model_dest_policy_defaults(&defaults);
        pol = &defaults;
    }
    lb_config_from_model(&cfg, pol);
    c = cluster_find(cs, sv->meta.ns, sv->meta.name, sp->port);
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c || !(c->lb = lb_create(&cfg, err, sizeof(err)))) {
            log_error("cluster %s: %s", key, c ? err : "out of memory");
            free(c);
            return;
        }
        snprintf(c->key, sizeof(c->key), "%s", key);
        size_t h = key_hash(key) % cs->nbuckets;
        c->next = cs->buckets[h];
        cs->buckets[h] = c;
        if (++cs->n > cs->nbuckets)
            grow(cs);
    }
    c->gen = cs->gen;
    /* TCP has no request to retry: what a policy's retries buy it is another endpoint
     * when the connect fails (Envoy's tcp_proxy max_connect_attempts). */
    c->connect_attempts =
        (pol->retry_on & MODEL_RETRY_CONNECT_FAILURE) ? (uint32_t)pol->retry_attempts : 0;
    retry_policy_from_model(&c->retry, pol);
    if (c->budget.percent != c->retry.budget_percent ||
        c->budget.min_per_sec != c->retry.budget_min_per_sec)
        retry_budget_init(&c->budget, c->retry.budget_percent, c->retry.budget_min_per_sec);
    c->hash_key = pol->hash_key;
    snprintf(c->hash_name, sizeof(c->hash_name), "%s", pol->hash_name ? pol->hash_name : "");
    c->tls = pol->tls_mode == MODEL_TLS_MUTUAL;
    snprintf(c->sni, sizeof(c->sni), "%s.%s.svc.cluster.local", sv->meta.name, sv->meta.ns);
    snprintf(c->svc_ns, sizeof(c->svc_ns), "%s", sv->meta.ns);
    snprintf(c->svc_name, sizeof(c->svc_name), "%s", sv->meta.name);
    c->n_want_ids = 0;
    c->want_hash = 0;
    for (size_t i = 0, off = 0; i < sv->n_service_accounts; i++) {
        int k = snprintf(c->want_buf + off, sizeof(c->want_buf) - off, "/ns/%s/sa/%s",
                         sv->meta.ns, sv->service_accounts[i]);
        if (k < 0 || (size_t)k >= sizeof(c->want_buf) - off)
            break;
        c->want_ids[c->n_want_ids++] = c->want_buf + off;
        uint64_t x = 0xcbf29ce484222325ull; /* FNV-1a; xor keeps the order irrelevant */
        for (const char *q = c->want_buf + off; *q; q++)
            x = (x ^ (unsigned char)*q) * 0x100000001b3ull;
        c->want_hash ^= x;
        off += (size_t)k + 1;
    }
    c->max_connections = pol->max_connections;
    c->max_pending = pol->max_pending;
    c->max_requests = pol->max_requests;
    struct lb_endpoint *eps = endpoints_of(m, sv, sp, &n);
    if (lb_update(c->lb, &cfg, eps, n, now_ns, err, sizeof(err)) < 0)
        log_error("cluster %s: endpoints not updated: %s", key, err);
    else
        log_debug("cluster %s: %zu endpoints, %zu usable, %u connect retries", key, n,
                  lb_usable(c->lb), c->connect_attempts);
    free(eps);
}

void cluster_set_update(struct cluster_set *cs, const struct config_snapshot *snap,
                        int64_t now_ns)
{
    const struct model_set *m = snap ? snap->model : NULL;
    cs->gen++;
    for (size_t i = 0; m && i < m->n_services; i++) {
        const struct model_service *sv = &m->services[i];
        for (size_t j = 0; j < sv->n_ports; j++)
            update_one(cs, m, sv, &sv->ports[j], now_ns);
    }
    /* Drop what the configuration no longer has, once nothing holds it. */
    for (size_t i = 0; i < cs->nbuckets; i++)
        for (struct cluster *c = cs->buckets[i], *next; c; c = next) {
            next = c->next;
            if (c->gen == cs->gen)
                continue;
            c->gen = CLUSTER_DROPPED;
            if (!c->active)
                unlink_free(cs, c);
        }
}

void cluster_hold(struct cluster *c)
{
    c->active++;
}

void cluster_release(struct cluster_set *cs, struct cluster *c)
{
    if (--c->active == 0 && c->gen == CLUSTER_DROPPED)
        unlink_free(cs, c);
}

void cluster_set_sweep(struct cluster_set *cs, int64_t now_ns)
{
    for (size_t i = 0; cs->buckets && i < cs->nbuckets; i++)
        for (struct cluster *c = cs->buckets[i]; c; c = c->next)
            lb_sweep(c->lb, now_ns);
}

void cluster_set_free(struct cluster_set *cs)
{
    for (size_t i = 0; cs->buckets && i < cs->nbuckets; i++)
        for (struct cluster *c = cs->buckets[i], *next; c; c = next) {
            next = c->next;
            lb_destroy(c->lb);
            free(c);
        }
    free(cs->buckets);
    memset(cs, 0, sizeof(*cs));
}

static int view_key_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cluster_view *)a)->key, ((const struct cluster_view *)b)->key);
}

struct cluster_set_view *cluster_set_view(struct cluster_set *cs, uint64_t version,
                                          cluster_cx_cb cx, void *cx_arg)
{
    struct cluster_set_view *v = calloc(1, sizeof(*v));
    size_t nc = 0, nh = 0;
    if (!v)
        return NULL;
    v->version = version;
    for (size_t i = 0; cs->buckets && i < cs->nbuckets; i++)
        for (struct cluster *c = cs->buckets[i]; c; c = c->next)
            if (c->gen != CLUSTER_DROPPED) {
                nc++;
                nh += lb_size(c->lb);
            }
    v->clusters = calloc(nc ? nc : 1, sizeof(*v->clusters));
    v->hosts = calloc(nh ? nh : 1, sizeof(*v->hosts));
    if (!v->clusters || !v->hosts) {
        cluster_set_view_free(v);
        return NULL;
    }
    for (size_t i = 0; cs->buckets && i < cs->nbuckets; i++)
        for (struct cluster *c = cs->buckets[i]; c; c = c->next) {
            if (c->gen == CLUSTER_DROPPED)
                continue;
            struct cluster_view *cv = &v->clusters[v->n++];
            const struct lb_stats *ls = lb_get_stats(c->lb);
            const struct outlier *o = lb_get_outlier(c->lb);
            snprintf(cv->key, sizeof(cv->key), "%s", c->key);
            cv->lb_type = lb_get_type(c->lb);
            cv->tls = c->tls;
            cv->max_connections = c->max_connections;
            cv->max_pending = c->max_pending;
            cv->max_requests = c->max_requests;
            cv->up_cx = c->up_cx;
            cv->pending = c->pending;
            cv->rq_active = c->rq_active;
            cv->retry_budget_percent = c->retry.budget_percent;
            cv->retry_budget_min_per_sec = c->retry.budget_min_per_sec;
            cv->outlier = o->cfg;
            cv->outlier_stats = o->stats;
            cv->lb_stats = *ls;
            cv->first_host = v->nhosts;
            for (size_t k = 0; k < lb_size(c->lb); k++) {
                const struct lb_host *h = lb_host_at(c->lb, k);
                struct cluster_view_host *vh = &v->hosts[v->nhosts++];
                vh->addr = h->addr;
                vh->weight = h->weight;
                memcpy(vh->zone, h->zone, sizeof(vh->zone));
                vh->ready = h->ready;
                vh->serving = h->serving;
                vh->terminating = h->terminating;
                vh->ejected = h->outlier.ejected;
                vh->rq_active = h->active;
                vh->cx_active = cx ? cx(cx_arg, &h->addr, c->want_hash) : 0;
                vh->rq = h->rq;
            }
            cv->n_hosts = v->nhosts - cv->first_host;
        }
    qsort(v->clusters, v->n, sizeof(*v->clusters), view_key_cmp);
    return v;
}

void cluster_set_view_free(struct cluster_set_view *v)
{
    if (!v)
        return;
    free(v->clusters);
    free(v->hosts);
    free(v);
}
