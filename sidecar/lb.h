/*
 * lb.h - endpoint picking for one cluster (one Service port's endpoints): smooth weighted
 * round robin, weighted random, least request (power of two choices), PeakEWMA, ring hash
 * and Maglev, with EndpointSlice conditions, outlier ejection (outlier.h) and panic mode.
 * Pure: no I/O, no clock (time comes in as now_ns, any monotonic nanoseconds), randomness
 * from the caller's struct prng.
 *
 * Ownership and threads: a struct lb is per worker and per cluster, created once and kept
 * across config snapshots: lb_update() replaces its endpoint list and keeps the runtime
 * state (active requests, EWMA, outlier state, the caller's user pointer) of endpoints
 * that remain, matched by address:port. It owns its struct lb_host objects. One thread
 * uses it; no atomics, no locks.
 *
 * Host lifetime: a host returned by lb_pick() stays valid until the next lb_update() or
 * lb_destroy(), unless the caller calls lb_request_start() on it; then it stays valid
 * until the matching lb_request_end(), even if an update removed it in between (it is
 * then "detached": never picked, reports ignored, freed by the last lb_request_end()).
 *
 * Which endpoints get traffic (CONVENTIONS.md section 6):
 * - The base set is the endpoints that are ready and not terminating. If there are none,
 *   it falls back to the ones that are serving and terminating, as kube-proxy does, so a
 *   Service whose every pod is shutting down still answers while they drain
 *   (stats.fallback_picks counts picks made that way). Other endpoints get nothing.
 * - Ejected endpoints (outlier detection) leave the set, unless fewer than panic_percent %
 *   (Envoy's default 50) of the base set are left healthy: then the lb panics and balances
 *   over the whole base set, ejected ones included, rather than overload the few left
 *   (stats.panic_picks counts those picks). panic_percent 0 disables panic: with every
 *   endpoint ejected lb_pick returns NULL.
 * - lb_pick returns NULL when nothing is usable; the caller answers 503 with flag UH.
 *
 * Algorithms:
 * - LB_ROUND_ROBIN: nginx's smooth weighted round robin (weights 5:1:1 give a a b a c a a).
 *   Its per-host current weights restart from zero on lb_update.
 * - LB_RANDOM: weighted random (prefix sums, binary search).
 * - LB_LEAST_REQUEST: two distinct hosts at random, the one with the smaller
 *   (active + 1) / weight wins.
 * - LB_PEAK_EWMA: the same two choices on cost = rtt_estimate x (active + 1) / weight. The
 *   estimate (lb_observe) jumps to any RTT above it (peak) and otherwise moves towards
 *   samples with weight 1 - e^(-dt/decay); read at pick time it also decays towards 0 with
 *   e^(-dt/decay), so an idle slow host gets tried again (Finagle / Linkerd's design; new
 *   hosts start at ewma_default_rtt_ns).
 * - LB_RING_HASH: a ketama-style ring, points per host proportional to weight: about
 *   65536 / hosts points at average weight, clamped to 100..1000 per host (total at most
 *   2^20, each host at least 1). The key's 64-bit hash finds the first point >= it.
 * - LB_MAGLEV: a Maglev lookup table of prime size (65537, or the next prime >= 100 x
 *   hosts), filled by each host's permutation in turns proportional to its weight.
 * - Both hash tables are built over the base set, so ejections do not reshuffle keys: a key
 *   whose host is unusable walks to the next entry. A pick without a hash key (the header
 *   or cookie was absent) is weighted random, counted in stats.hash_missing.
 * - ctx->exclude (the previous failed attempt's host) is skipped when any other host is
 *   usable, for every algorithm.
 */
#ifndef RINGMESH_LB_H
#define RINGMESH_LB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "outlier.h"
#include "prng.h"

struct model_destination_policy;
struct lb;
struct lb_host;

#define LB_MAX_WEIGHT            1000000
#define LB_ZONE_MAX              64 /* bytes kept of a zone name, NUL included */
#define LB_DEFAULT_PANIC_PERCENT 50
#define LB_DEFAULT_EWMA_DECAY_NS (10ll * 1000 * 1000 * 1000) /* Linkerd's 10 s */
#define LB_DEFAULT_RTT_NS        (30ll * 1000 * 1000)        /* a new host's estimate */
#define LB_MAGLEV_DEFAULT_SIZE   65537

enum lb_type {
    LB_ROUND_ROBIN,
    LB_RANDOM,
    LB_LEAST_REQUEST,
    LB_PEAK_EWMA,
    LB_RING_HASH,
    LB_MAGLEV,
};

/* An endpoint address: family AF_INET (ip[0..3]) or AF_INET6, port in host order. Compare
 * and hash it whole, so zero the unused bytes (lb_addr_set does). */
struct lb_addr {
    uint16_t family;
    uint16_t port;
    uint8_t ip[16];
};

/* One endpoint as the caller's config snapshot describes it (input to lb_update). */
struct lb_endpoint {
    struct lb_addr addr;
    uint32_t weight;  /* 1..LB_MAX_WEIGHT; Kubernetes endpoints are all 1 */
    const char *zone; /* NULL or the topology zone; copied */
    bool ready;       /* EndpointSlice conditions, nil already resolved by the model */
    bool serving;
    bool terminating;
};

/* Called just before the lb frees a host (removed by an update, or at destroy), so the
 * caller can release what h->user points to. */
typedef void (*lb_host_free_cb)(struct lb_host *h, void *arg);

struct lb_config {
    enum lb_type type;
    uint32_t panic_percent;      /* 0..100; 0 = never panic */
    uint32_t maglev_size;        /* 0 = automatic; else a prime >= the base set's size */
    int64_t ewma_decay_ns;       /* > 0 */
    int64_t ewma_default_rtt_ns; /* > 0 */
    struct outlier_config outlier;
    lb_host_free_cb host_free; /* may be NULL */
    void *host_free_arg;
};

/* Per endpoint request counters (Envoy's /clusters host stats), kept across updates with
 * the host. Attempts, not client requests: a retry to another host counts on both. */
struct lb_host_counters {
    uint64_t rq_total;   /* lb_request_start calls */
    uint64_t rq_success; /* lb_report OUTLIER_SUCCESS */
    uint64_t rq_error;   /* lb_report of a 5xx or a failure without a response (a
                          * per-try timeout is one: it counts here and in rq_timeout) */
    uint64_t rq_timeout; /* lb_count_timeout: the attempt's per-try or the request's
                          * timeout expired while it ran */
    uint64_t ejections;  /* outlier ejections of this host */
};

/* One endpoint with its runtime state. Fields are read-only for callers except user. */
struct lb_host {
    struct lb_addr addr;
    uint32_t weight;
    char zone[LB_ZONE_MAX];
    bool ready, serving, terminating;
    uint32_t active; /* requests in flight (lb_request_start/end) */
    double ewma_ns;  /* PeakEWMA estimate as of ewma_stamp_ns */
    int64_t ewma_stamp_ns;
    int64_t swrr_current; /* smooth WRR current weight */
    struct outlier_host outlier;
    struct lb_host_counters rq;
    void *user; /* the caller's (e.g. its connection pool), kept across updates */

    /* private to lb.c */
    bool member;       /* in the lb's current endpoint list */
    bool eligible;     /* in the current pick set */
    uint32_t elig_pos; /* its position in that set */
    lb_host_free_cb free_cb;
    void *free_arg;
};

struct lb_pick_ctx {
    struct prng *rng;              /* borrowed; required */
    int64_t now_ns;                /* monotonic now */
    bool has_hash;                 /* RingHash/Maglev: the key was present */
    uint64_t hash;                 /* lb_hash() of the key's bytes */
    const struct lb_host *exclude; /* the previous attempt's host, or NULL; may be stale
                                   * (freed since): only compared */
};

struct lb_stats {
    uint64_t picks;          /* lb_pick returned a host */
    uint64_t no_host;        /* lb_pick returned NULL */
    uint64_t panic_picks;    /* picks made in panic mode */
    uint64_t fallback_picks; /* picks from the serving+terminating fallback */
    uint64_t hash_missing;   /* hash policies picking at random for lack of a key */
    uint64_t updates;        /* successful lb_update calls */
    uint64_t hosts_added;
    uint64_t hosts_removed;
    uint64_t duplicates; /* endpoints listed twice (merged, the best condition kept) */
};

/* Defaults: round robin, panic at 50%, automatic Maglev size, Linkerd's EWMA parameters,
 * outlier detection disabled. */
void lb_config_default(struct lb_config *c);

/* From a DestinationPolicy (NULL = defaults): type, outlier detection. */
void lb_config_from_model(struct lb_config *c, const struct model_destination_policy *p);

/* Fills *a from a family (AF_INET/AF_INET6), 4 or 16 address bytes and a port. */
void lb_addr_set(struct lb_addr *a, int family, const void *ip, uint16_t port);
/* The endpoint as a socket address (zeroed first); returns its length. */
socklen_t lb_addr_sockaddr(const struct lb_addr *a, struct sockaddr_storage *ss);

/* A new lb with no endpoints (every pick NULL until lb_update), or NULL with err filled. */
struct lb *lb_create(const struct lb_config *cfg, char *err, size_t err_len);

/* Replaces the endpoint list (and the config) at now_ns. Hosts whose address:port remains
 * keep their runtime state; new ones start fresh; removed ones are freed or detached (see
 * the file comment). Duplicated addresses are merged. Returns 0, or -EINVAL (bad config or
 * endpoint, err names it) / -ENOMEM with the lb unchanged. */
int lb_update(struct lb *lb, const struct lb_config *cfg, const struct lb_endpoint *eps, size_t n,
              int64_t now_ns, char *err, size_t err_len);

/* Frees the lb; hosts with requests in flight are detached and freed by their last
 * lb_request_end(). NULL is fine. */
void lb_destroy(struct lb *lb);

/* Picks a host for one attempt, or NULL when no endpoint is usable (503, flag UH). Also
 * runs due outlier un-ejections (lb_sweep) at ctx->now_ns. */
struct lb_host *lb_pick(struct lb *lb, const struct lb_pick_ctx *ctx);

/* A request to h starts / ends. lb_request_end may free a detached h: it is the last call
 * on h for that request (report and observe before it). */
void lb_request_start(struct lb_host *h);
void lb_request_end(struct lb_host *h);

/* Feeds one attempt's latency (e.g. time to response headers) into h's PeakEWMA. */
void lb_observe(const struct lb *lb, struct lb_host *h, int64_t rtt_ns, int64_t now_ns);

/* Feeds one attempt's result into outlier detection (ignored for detached hosts or when
 * detection is off) and counts it in h->rq (always). Returns what happened. */
enum outlier_event lb_report(struct lb *lb, struct lb_host *h, enum outlier_result r,
                             int64_t now_ns);

/* Counts one attempt on h that ended by a timeout (h->rq.rq_timeout); lb_report still
 * gets its result. */
void lb_count_timeout(struct lb_host *h);

/* Un-ejects hosts whose ejection ended and decays multipliers, at now_ns. lb_pick calls it
 * when something is due; a caller with a timer may call it too. */
void lb_sweep(struct lb *lb, int64_t now_ns);

/* A 64-bit hash of a session key (header/cookie value, source address bytes). */
uint64_t lb_hash(const void *key, size_t len);

/* The PeakEWMA estimate of h read at now_ns (decayed), in ns. */
double lb_ewma_ns(const struct lb *lb, const struct lb_host *h, int64_t now_ns);

/* Introspection for admin pages and tests. */
const struct lb_stats *lb_get_stats(const struct lb *lb);
const struct outlier *lb_get_outlier(const struct lb *lb);
enum lb_type lb_get_type(const struct lb *lb);
size_t lb_size(const struct lb *lb);                 /* member hosts */
struct lb_host *lb_host_at(struct lb *lb, size_t i); /* sorted by address; i < lb_size */
struct lb_host *lb_find(struct lb *lb, const struct lb_addr *a); /* NULL if not a member */
bool lb_in_panic(struct lb *lb);                                 /* as of the last pick or sweep */
size_t lb_usable(struct lb *lb);                                 /* hosts a pick may return now */
uint32_t lb_maglev_size(const struct lb *lb);                    /* 0 unless Maglev */
size_t lb_ring_points(const struct lb *lb);                      /* 0 unless RingHash */

/* "RoundRobin", "Random", ... as in the DestinationPolicy schema. */
const char *lb_type_str(enum lb_type t);

#endif
