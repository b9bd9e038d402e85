/*
 * sidecar.h - the process-wide state shared by the main thread and the workers.
 * Written once at start-up before workers run, except the atomics.
 */
#ifndef RINGMESH_SIDECAR_H
#define RINGMESH_SIDECAR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "options.h"

struct accesslog;
struct worker;
struct xds_client;

enum sidecar_state {
    SIDECAR_STARTING, /* listeners not all up yet */
    SIDECAR_LIVE,
    SIDECAR_DRAINING, /* SIGTERM, /quitquitquit or /drain_listeners: readiness fails,
                       * listeners closed, connections finish */
};

/* sidecar_drain() flags */
#define SIDECAR_DRAIN_INBOUND_ONLY 1u /* the inbound listeners only (?inboundonly) */
#define SIDECAR_DRAIN_GRACEFUL     2u /* and GOAWAY / Connection: close on their connections */
#define SIDECAR_DRAIN_EXIT         4u /* then exit 0: at zero connections or the deadline */

struct sidecar {
    struct sidecar_options opts;
    struct worker **workers; /* owned */
    int nworkers;
    const char *backend;     /* "io_uring" or "epoll", what the workers run */
    char backend_why[256];   /* why not io_uring; empty when it runs */
    atomic_int state;        /* enum sidecar_state */
    atomic_int active_cx;    /* downstream connections open, all workers */
    long long start_time;    /* unix seconds */
    struct accesslog *alog;  /* owned by main: the access log, a ring per worker; NULL = off */
    atomic_int reloads_ok;       /* config files accepted after the first */
    atomic_int reloads_rejected; /* config files rejected; the old snapshot kept serving */
    atomic_int tls_reloads_ok, tls_reloads_rejected; /* --cert-dir rotations */
    char last_reload_error[512]; /* main thread only */
    /* Readiness also needs a configuration: true at once with --config or none; with
     * --xds once the first warm snapshot (or the --xds-cache) was published. */
    atomic_bool config_ready;
    struct xds_client *xds;  /* owned by main; NULL without --xds */
    char xds_source[300];    /* "xds <url>" or "xds-cache <file>": what the snapshot came from */
    /* Per-request metrics: the settings every worker's metrics_worker points at, this
     * pod's own labels and their x-ringmesh-peer value (sidecar_metrics_init). */
    struct metrics_config metrics;
    struct metrics_peer self;
    char self_peer_hdr[512];
    size_t self_peer_hdr_len;
    /* The drain (main thread only): what sidecar_drain() did so far. */
    unsigned drained_dirs; /* 1 << enum stats_dir: listeners closed */
    unsigned goaway_dirs;  /* 1 << enum stats_dir: connections told to go away */
    uint64_t exit_at_ms;   /* monotonic deadline of a drain that ends in exit; 0 = none */
};

/* Fills sc->metrics and sc->self from the options, for nworkers workers. */
void sidecar_metrics_init(struct sidecar *sc, int nworkers);

/* The xDS client's apply callback (xds_apply_cb): compiles the candidate model with
 * config_from_buffer() and, when warm, publishes it, tells the workers and makes the
 * sidecar config-ready. Runs on the xDS client's thread; arg is the struct sidecar. */
int sidecar_xds_apply(void *arg, const char *model, size_t len, bool warm, char *err,
                      size_t errlen);

/* Loads --config again and publishes it; on error keeps the current snapshot and says why
 * in the log and in last_reload_error. Main thread only. 0 or -1. */
int sidecar_reload(struct sidecar *sc);

/* Starts or widens a drain, main thread only: SIGTERM and /quitquitquit ask for
 * GRACEFUL | EXIT, /drain_listeners for what its query says. The state becomes DRAINING
 * (readiness fails), the workers close the listeners (of the inbound direction only with
 * INBOUND_ONLY) and, with GRACEFUL, send GOAWAY / Connection: close on those directions'
 * connections; open connections go on. With EXIT, exit_at_ms is set to now +
 * --drain-seconds: the main loop exits 0 once no connection is left or then. why names
 * the cause in the log. */
void sidecar_drain(struct sidecar *sc, unsigned flags, const char *why);
/* Monotonic milliseconds, the clock of exit_at_ms. */
uint64_t sidecar_now_ms(void);

const char *sidecar_state_str(int state);
/* The xDS "node" object for this workload (PROTOCOL.md), as compact JSON; caller frees;
 * NULL when out of memory. */
char *sidecar_node_json(const struct sidecar_options *o);

#endif
