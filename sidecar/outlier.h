/*
 * outlier.h - passive outlier detection for one cluster's endpoints (Envoy's consecutive-5xx
 * and consecutive-gateway-failure detectors). Pure: no I/O, no clock; time comes in as
 * now_ms (any monotonic milliseconds).
 *
 * Two kinds of state: struct outlier is per cluster (config, how many hosts are members and
 * how many are ejected, counters); struct outlier_host is per endpoint and lives inside the
 * caller's endpoint object (lb.h embeds it in struct lb_host). Both are owned by their
 * embedder; this module allocates nothing. One worker thread owns a cluster's state: no
 * atomics, no locks.
 *
 * Semantics (Envoy's, with the ringmesh decisions marked):
 * - Every 5xx (and every locally seen failure: connect failure, reset, per-try timeout)
 *   adds one to consecutive_5xx; 502/503/504 and local failures also add one to
 *   consecutive_gateway; any other 5xx zeroes consecutive_gateway; a success zeroes both.
 *   Reaching a threshold (0 disables that detector) ejects the host.
 * - Ejection lasts min(base_ejection_ms x multiplier, max(max_ejection_ms, base)), where
 *   multiplier is how many times the host was ejected, counting this one; it grows with
 *   repeats and, while the host stays healthy, drops by one per interval_ms (decay).
 * - max_ejection_percent is a hard ceiling (ringmesh decision: Envoy >= 1.21 ejects at
 *   least one host regardless; we never exceed the percentage, so with the default 10% a
 *   cluster of fewer than 10 endpoints ejects nothing; raise the percentage for small
 *   services). An ejection that would exceed it is skipped and counted in
 *   stats.skipped_max_percent; the host's counters are reset either way, so the next try
 *   needs a full threshold of new failures.
 * - Reports on an ejected host are ignored (requests still in flight when it was ejected).
 *   Un-ejection happens in outlier_tick() once the time has passed; it zeroes the counters.
 */
#ifndef RINGMESH_OUTLIER_H
#define RINGMESH_OUTLIER_H

#include <stdbool.h>
#include <stdint.h>

struct model_destination_policy;

/* Defaults: the DestinationPolicy schema's (xds/model.h) and Envoy's max_ejection_time. */
#define OUTLIER_DEFAULT_CONSECUTIVE_5XX     5
#define OUTLIER_DEFAULT_CONSECUTIVE_GATEWAY 0
#define OUTLIER_DEFAULT_INTERVAL_MS         10000
#define OUTLIER_DEFAULT_BASE_EJECTION_MS    30000
#define OUTLIER_DEFAULT_MAX_EJECTION_MS     300000
#define OUTLIER_DEFAULT_MAX_PERCENT         10

/* Filled by the caller: outlier_config_default() then overrides, or
 * outlier_config_from_model(). */
struct outlier_config {
    bool enabled;                  /* false: outlier_report never ejects */
    uint32_t consecutive_5xx;      /* 0 disables this detector */
    uint32_t consecutive_gateway;  /* 0 disables this detector */
    int64_t interval_ms;           /* decay step of the multiplier; > 0 */
    int64_t base_ejection_ms;      /* > 0 */
    int64_t max_ejection_ms;       /* cap on base x multiplier (never below base) */
    uint32_t max_ejection_percent; /* 0..100 of member hosts ejected at once */
};

/* What one finished attempt on a host says about it. */
enum outlier_result {
    OUTLIER_SUCCESS,   /* any response below 500 */
    OUTLIER_ERROR_5XX, /* a 5xx that is not a gateway error (500, 501, 505, ...) */
    OUTLIER_GATEWAY,   /* 502/503/504, or no response: connect failure, reset, timeout */
};

/* What outlier_report did. */
enum outlier_event {
    OUTLIER_EV_NONE,    /* counted, nothing else */
    OUTLIER_EV_EJECTED, /* the host is now ejected */
    OUTLIER_EV_SKIPPED, /* a threshold was reached but max_ejection_percent forbade it */
};

/* Per endpoint; zero-initialised = healthy, never ejected. Read-only for callers. */
struct outlier_host {
    uint32_t consecutive_5xx;
    uint32_t consecutive_gateway;
    uint32_t multiplier; /* ejections not yet decayed away */
    bool ejected;
    int64_t ejected_at_ms;  /* valid while ejected */
    int64_t eject_until_ms; /* valid while ejected */
    int64_t decay_from_ms;  /* healthy since (last un-ejection or last decay step) */
};

struct outlier_stats {
    uint64_t ejections;           /* total */
    uint64_t ejections_5xx;       /* by the consecutive-5xx detector */
    uint64_t ejections_gateway;   /* by the consecutive-gateway detector */
    uint64_t skipped_max_percent; /* thresholds reached while at the ceiling */
    uint64_t unejections;
};

struct outlier {
    struct outlier_config cfg;
    struct outlier_stats stats;
    uint32_t n_hosts;   /* member hosts (the denominator of max_ejection_percent) */
    uint32_t n_ejected; /* member hosts ejected now */
};

/* Fills *c with the defaults above, enabled. */
void outlier_config_default(struct outlier_config *c);

/* Fills *c from a DestinationPolicy (NULL: detection disabled, other fields default). */
void outlier_config_from_model(struct outlier_config *c, const struct model_destination_policy *p);

/* The result for an HTTP status (< 500 success; 502/503/504 gateway; other 5xx 5xx).
 * For "no response at all" pass OUTLIER_GATEWAY directly. */
enum outlier_result outlier_classify_status(int status);

/* Resets o: config copied, counters zero, no hosts. */
void outlier_init(struct outlier *o, const struct outlier_config *cfg);

/* Replaces the config (a new policy) keeping counters and host states. */
void outlier_set_config(struct outlier *o, const struct outlier_config *cfg);

/* Tells o how many hosts are members and how many of them are ejected now (after the
 * caller's endpoint set changed). */
void outlier_set_membership(struct outlier *o, uint32_t n_hosts, uint32_t n_ejected);

/* Records one attempt's result on member host h at now_ms; may eject h. The caller must
 * only report on member hosts (a host removed from the set has no say in the ceiling). */
enum outlier_event outlier_report(struct outlier *o, struct outlier_host *h, enum outlier_result r,
                                  int64_t now_ms);

/* Advances h to now_ms: un-ejects it when its time has passed (returns true, counts it,
 * zeroes its counters) and decays its multiplier by one per full interval_ms of health.
 * Cheap; call it for every member host each interval, or whenever outlier_next_ms says. */
bool outlier_tick(struct outlier *o, struct outlier_host *h, int64_t now_ms);

/* The earliest time at which outlier_tick(h) would change something (un-eject or decay),
 * or INT64_MAX when nothing is pending. */
int64_t outlier_next_ms(const struct outlier *o, const struct outlier_host *h);

/* Forgets h's state as if it were new (for a host that is not a member any more). The
 * caller fixes the membership counts. */
void outlier_host_reset(struct outlier_host *h);

#endif
