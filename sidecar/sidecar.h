/*
 * sidecar.h - the process-wide state shared by the main thread and the workers.
 * Written once at start-up before workers run, except the atomics.
 */
#ifndef RINGMESH_SIDECAR_H
#define RINGMESH_SIDECAR_H

#include <stdatomic.h>

#include "options.h"

struct worker;

enum sidecar_state {
    SIDECAR_STARTING, /* listeners not all up yet */
    SIDECAR_LIVE,
    SIDECAR_DRAINING, /* SIGTERM: readiness fails, listeners closed, connections finish */
};

struct sidecar {
    struct sidecar_options opts;
    struct worker **workers; /* owned */
    int nworkers;
    const char *backend;     /* "io_uring" or "epoll", what the workers run */
    char backend_why[256];   /* why not io_uring; empty when it runs */
    atomic_int state;        /* enum sidecar_state */
    atomic_int active_cx;    /* downstream connections open, all workers */
    long long start_time;    /* unix seconds */
    atomic_int reloads_ok;       /* config files accepted after the first */
    atomic_int reloads_rejected; /* config files rejected; the old snapshot kept serving */
    atomic_int tls_reloads_ok, tls_reloads_rejected; /* --cert-dir rotations */
    char last_reload_error[512]; /* main thread only */
};

/* Loads --config again and publishes it; on error keeps the current snapshot and says why
 * in the log and in last_reload_error. Main thread only. 0 or -1. */
int sidecar_reload(struct sidecar *sc);

const char *sidecar_state_str(int state);

#endif
