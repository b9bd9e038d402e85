/*
 * cluster.h - a worker's clusters: one per Service port of the running configuration,
 * each with its load balancer over the endpoints that EndpointSlices give that port,
 * and the connect-retry budget its DestinationPolicy allows.
 *
 * Owned by one worker (no locks). Rebuilt in place when the worker adopts a snapshot:
 * a cluster is found by "namespace/name:port", so its load balancer keeps per-endpoint
 * state (active requests, ejections) across reloads; a cluster that disappears is freed
 * once no connection holds it (cluster_release).
 */
#ifndef RINGMESH_CLUSTER_H
#define RINGMESH_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lb.h"
#include "prng.h"
#include "model.h"
#include "retry.h"

struct config_snapshot;

struct cluster {
    char key[320];        /* "namespace/name:port" */
    struct lb *lb;        /* owned */
    uint32_t connect_attempts; /* extra connects after a connect failure (0 = none) */
    /* HTTP: the DestinationPolicy's retries, budget, hashing and pool limits (per worker,
     * as everything here; Envoy's circuit breakers are per cluster across workers). */
    struct retry_policy retry;
    struct retry_budget budget;
    enum model_hash_key hash_key;
    char hash_name[128];
    uint32_t max_connections, max_pending, max_requests;
    bool tls;       /* DestinationPolicy tls mode MUTUAL (the default): mTLS to peers */
    char sni[300];  /* "name.ns.svc.cluster.local": the SNI of connections to it */
    char svc_ns[64], svc_name[254]; /* the Service's namespace and name (metrics labels) */
    /* The identities its endpoints may prove, "/ns/N/sa/S" (in our trust domain), from
     * the Service's ringmesh.io/service-accounts annotation; none = any in the domain. */
    const char *want_ids[MODEL_MAX_SERVICE_ACCOUNTS];
    size_t n_want_ids;
    char want_buf[MODEL_MAX_SERVICE_ACCOUNTS * 340];
    /* those identities as one number (0: any), made with them: mTLS connections are pooled
     * per address and per this, so a connection whose peer proved an identity for one
     * Service is not reused for another Service that does not allow it */
    uint64_t want_hash;
    uint32_t up_cx;      /* upstream HTTP connections open now */
    uint32_t pending;    /* requests waiting for a connection */
    uint32_t rq_active;  /* requests in flight */
    uint32_t active;      /* connections holding the cluster */
    uint64_t gen;         /* the update that last saw it in the configuration */
    struct cluster *next; /* hash chain */
};

struct cluster_set {
    struct cluster **buckets; /* owned */
    size_t nbuckets;
    size_t n;
    uint64_t gen;
    struct prng rng; /* the worker's picks */
};

/* An empty set; seed spreads the workers' random choices apart. 0 or -ENOMEM. */
int cluster_set_init(struct cluster_set *cs, uint64_t seed);
/* Makes the set match snap: creates, updates or drops clusters. Errors for one cluster
 * (e.g. a bad endpoint list) are logged and leave that cluster as it was. */
void cluster_set_update(struct cluster_set *cs, const struct config_snapshot *snap,
                        int64_t now_ns);
/* The cluster of Service ns/name port, or NULL. */
struct cluster *cluster_find(struct cluster_set *cs, const char *ns, const char *name,
                             uint16_t port);
/* A connection takes / gives back a cluster; the last release of a dropped cluster
 * frees it. */
void cluster_hold(struct cluster *c);
void cluster_release(struct cluster_set *cs, struct cluster *c);
/* Outlier detection's clock: un-ejects endpoints whose ejection time is over. */
void cluster_set_sweep(struct cluster_set *cs, int64_t now_ns);
/* Frees everything, held or not (the worker is stopping). */
void cluster_set_free(struct cluster_set *cs);

/* ---- a copy for the admin thread (/clusters) ----
 * Plain data, nothing pointing back into the worker: the worker builds it on its own
 * thread and hands it over (worker.h, WORKER_CMD_VIEW); the admin reads and frees it. */

struct cluster_view_host {
    struct lb_addr addr;
    uint32_t weight;
    char zone[LB_ZONE_MAX];
    bool ready, serving, terminating; /* EndpointSlice conditions */
    bool ejected;                     /* outlier detection, now */
    uint32_t rq_active;               /* attempts in flight (lb_request_start..end) */
    uint32_t cx_active;               /* upstream HTTP connections open to it */
    struct lb_host_counters rq;
};

struct cluster_view {
    char key[320]; /* "namespace/name:port" */
    enum lb_type lb_type;
    bool tls;
    uint32_t max_connections, max_pending, max_requests;
    uint32_t up_cx, pending, rq_active;
    uint32_t retry_budget_percent, retry_budget_min_per_sec;
    struct outlier_config outlier;
    struct outlier_stats outlier_stats;
    struct lb_stats lb_stats;
    size_t first_host, n_hosts; /* its hosts in cluster_set_view.hosts, by address */
};

struct cluster_set_view {
    uint64_t version; /* the configuration snapshot the worker ran when it made this */
    size_t n, nhosts;
    struct cluster_view *clusters;   /* owned; sorted by key */
    struct cluster_view_host *hosts; /* owned */
};

/* How many upstream connections the caller's worker has open to a (mTLS ones: pooled
 * under want_hash, cluster.want_hash); for cx_active. */
typedef uint32_t (*cluster_cx_cb)(void *arg, const struct lb_addr *a, uint64_t want_hash);

/* A copy of every configured cluster of cs, or NULL when out of memory. cx may be NULL
 * (cx_active 0). Runs on the thread that owns cs. */
struct cluster_set_view *cluster_set_view(struct cluster_set *cs, uint64_t version,
                                          cluster_cx_cb cx, void *cx_arg);
void cluster_set_view_free(struct cluster_set_view *v);

#endif
