/*
 * metrics.h - per-request and per-TCP-connection metrics with Istio's labels
 * (CONVENTIONS.md §3), rendered as Prometheus text on /stats/prometheus.
 *
 * Each worker owns a struct metrics_worker: a hash table of series keyed by their label
 * values, written by that worker only, with plain relaxed stores (stats.h's STATS_ADD: no
 * lock prefix, no lock). The admin thread reads every worker's series through a list the
 * worker publishes with release stores, and sums series with the same labels at scrape.
 *
 * Cardinality is bounded three ways: the label values come from the configuration and
 * from peer identities, never from a request's path or Host; a worker holds at most
 * max_series / workers series, and what does not fit lands in one overflow series whose
 * labels all say "overflow"; a series unused for idle_ms is evicted. An evicted series is
 * unlinked from the published list at once and freed once every scrape that may have
 * been walking the list then has finished (a scrape counter, see metrics_scrape_*).
 */
#ifndef RINGMESH_METRICS_H
#define RINGMESH_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Istio's label set, in the order the exposition prints them. */
enum metrics_label {
    ML_REPORTER,
    ML_SRC_WORKLOAD,
    ML_SRC_WORKLOAD_NS,
    ML_SRC_PRINCIPAL,
    ML_SRC_APP,
    ML_SRC_VERSION,
    ML_SRC_CANON_SVC,
    ML_SRC_CANON_REV,
    ML_DST_WORKLOAD,
    ML_DST_WORKLOAD_NS,
    ML_DST_PRINCIPAL,
    ML_DST_APP,
    ML_DST_VERSION,
    ML_DST_SERVICE,
    ML_DST_SERVICE_NAME,
    ML_DST_SERVICE_NS,
    ML_DST_CANON_SVC,
    ML_DST_CANON_REV,
    ML_REQUEST_PROTOCOL,
    ML_RESPONSE_CODE,
    ML_GRPC_STATUS,
    ML_RESPONSE_FLAGS,
    ML_SECURITY_POLICY,
    ML_COUNT
};

/* The name of label l ("source_workload"...). */
const char *metrics_label_name(enum metrics_label l);
/* Parses a --metrics-labels list ("all", or comma-separated label names) into a mask of
 * 1u << enum metrics_label; reporter is always on. -1 with err naming the bad name. */
int metrics_labels_parse(const char *list, uint32_t *mask, char *err, size_t errlen);

/* A workload's descriptive labels: this pod's, or a peer's from its x-ringmesh-peer. */
struct metrics_peer {
    char workload[64], ns[64], app[64], version[64], canon_svc[64], canon_rev[64];
};

/* The header sidecars exchange over mTLS (Istio's metadata exchange, simplified): the
 * client's sidecar adds it to requests, the server's to responses, each removes the
 * other's before the app sees it. Value: "w=..;n=..;a=..;v=..;cs=..;cr=..". */
#define METRICS_PEER_HEADER     "x-ringmesh-peer"
#define METRICS_PEER_HEADER_LEN 15

/* Formats p as the header's value; length (< cap) or -1. */
int metrics_peer_format(const struct metrics_peer *p, char *out, size_t cap);
/* Parses a header value into p: unknown keys are skipped, a value outside
 * [A-Za-z0-9._-]{1,63} leaves that field "unknown". False when nothing usable was in it. */
bool metrics_peer_parse(const char *v, size_t len, struct metrics_peer *p);
/* This pod's labels from its name, namespace and pod labels, as Istio derives them:
 * workload = workload_name, else the pod name without a ReplicaSet's "-<hash>-<id>"
 * suffix; app = app.kubernetes.io/name or app; version = app.kubernetes.io/version or
 * version; canonical service / revision from service.istio.io/canonical-{name,revision},
 * else app / version, else the workload / "latest". */
void metrics_peer_self(struct metrics_peer *p, const char *workload_name, const char *pod_name,
                       const char *ns, const char *const (*labels)[2], size_t n_labels);

struct metrics_config {
    bool enabled;          /* false: --no-metrics, nothing recorded */
    const char *prefix;    /* "ringmesh" or "istio" */
    uint32_t label_mask;   /* labels kept (1u << enum metrics_label) */
    uint32_t max_series;   /* per sidecar */
    uint32_t per_worker;   /* each worker's share of it */
    uint32_t idle_ms;      /* evict series unused this long; 0 = never */
};

/* What one finished request or TCP connection says, label values NUL-terminated (NULL =
 * "unknown"; "" is kept, as Istio's grpc_response_status off gRPC). */
struct metrics_sample {
    const char *v[ML_COUNT];
    uint64_t duration_us;
    uint64_t rq_bytes, rs_bytes; /* HTTP: body bytes; TCP: received from / sent to the client */
};

/* Sets the source_* (src) or destination_* workload labels of s from p (not principal). */
void metrics_sample_peer(struct metrics_sample *s, bool src, const struct metrics_peer *p);

enum metrics_kind { METRICS_HTTP, METRICS_TCP, METRICS_KINDS };

struct metrics_series;

struct metrics_worker {
    const struct metrics_config *cfg;
    struct metrics_series **buckets; /* worker only */
    size_t nbuckets, n, cap;
    struct metrics_series *published; /* newest first; admin walks it (acquire) */
    struct metrics_series *retired;   /* unlinked, freed once scrapes moved past */
    struct metrics_series *overflow[METRICS_KINDS];
    uint64_t overflowed; /* samples that went to an overflow series */
    uint64_t evicted;
    uint64_t next_sweep_ms;
};

/* Empty, holding at most cfg->per_worker series. 0 or -ENOMEM. */
int metrics_worker_init(struct metrics_worker *mw, const struct metrics_config *cfg);
void metrics_worker_free(struct metrics_worker *mw);

/* Records a finished HTTP request (kind HTTP) or a TCP connection's open (opened) and
 * close (closed, with its bytes). now_ms: the worker's clock, for eviction. */
void metrics_http(struct metrics_worker *mw, const struct metrics_sample *s, uint64_t now_ms);
void metrics_tcp_open(struct metrics_worker *mw, const struct metrics_sample *s, uint64_t now_ms);
void metrics_tcp_close(struct metrics_worker *mw, const struct metrics_sample *s, uint64_t now_ms);
/* The worker's tick: evicts idle series, frees retired ones no scrape can still see. */
void metrics_sweep(struct metrics_worker *mw, uint64_t now_ms);

/* Appends the exposition of every worker's series (summed by label values) to a
 * malloc'ed buffer growing at *buf (*len bytes used, *cap allocated). Admin thread only,
 * one at a time. -ENOMEM leaves what was written. */
int metrics_render(struct metrics_worker *const *mws, size_t n, const struct metrics_config *cfg,
                   char **buf, size_t *len, size_t *cap);
/* printf onto such a growing buffer. */
int metrics_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Series alive over all workers (before summing), overflowed samples, evictions. */
void metrics_counts(struct metrics_worker *const *mws, size_t n, uint64_t *series,
                    uint64_t *overflowed, uint64_t *evicted);

#endif
