/*
 * worker.h - one worker thread: its loop, its SO_REUSEPORT listeners on the outbound
 * and inbound capture ports (IPv4, and IPv6 where the host has it), the relays it
 * accepted, and its counters. Share-nothing: a connection lives and dies on the worker
 * that accepted it. The main thread talks to a worker only through worker_command()
 * (an atomic word plus the loop's eventfd wake-up).
 */
#ifndef RINGMESH_WORKER_H
#define RINGMESH_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster.h"
#include "loop.h"
#include "sidecar.h"
#include "metrics.h"
#include "stats.h"

struct config_snapshot;
struct relay;
struct relay_side;
struct worker;

struct listener {
    struct worker *w;          /* borrowed: owner */
    int fd;                    /* owned; -1 when closed */
    enum stats_dir dir;
    struct loop_op accept_op;
    bool paused;               /* out of fds: accept resumes at accept_resume_ms (a cancel
                                * may still be in flight: accept_op.armed) */
};

enum worker_cmd {
    WORKER_CMD_NONE = 0,
    WORKER_CMD_DRAIN = 1, /* close the listeners, keep the relays */
    WORKER_CMD_STOP = 2,  /* leave the loop */
    WORKER_CMD_CONFIG = 4, /* a new configuration snapshot was published */
};

enum worker_status {
    WORKER_STARTING = 0,
    WORKER_RUNNING,  /* accepting on every listener */
    WORKER_FAILED,   /* its loop could not start or died: the sidecar must not be ready */
    WORKER_STOPPED,  /* left its loop after WORKER_CMD_STOP */
};

struct worker {
    int id;
    struct sidecar *sc;       /* borrowed */
    struct loop *loop;        /* owned */
    pthread_t thread;
    struct listener listeners[4];
    int nlisteners;
    struct relay *relays;     /* owned: every open relay, doubly linked */
    struct relay_side *starved; /* borrowed: relay sides whose recv ran out of buffers */
    struct stats stats;
    atomic_int cmd;           /* bitmask of enum worker_cmd, set by the main thread */
    atomic_int status;        /* enum worker_status, set by the worker thread */
    bool draining;
    uint64_t accept_resume_ms;
    uint64_t next_sweep_ms;
    uint64_t next_relay_id;
    struct config_snapshot *snap; /* owned reference: the snapshot new work starts under */
    uint64_t snap_gen;            /* config_generation() when snap was acquired */
    atomic_uint_fast64_t snap_version; /* snap->version, for the admin thread to read */
    struct cluster_set clusters;  /* per Service port of snap: load balancers */
    struct tls_creds *tls;        /* held: the mTLS credentials new handshakes use, or NULL */
    uint64_t tls_gen;             /* tls_generation() when tls was taken */
    struct http_worker *http;     /* owned: the HTTP proxy's connections and streams */
    struct metrics_worker metrics; /* labeled per-request series (admin reads, metrics.h) */
};

/* Creates worker id: its loop (backend per sc->opts.io) and its listeners. NULL with err
 * filled on failure. why_not_uring gets the reason when auto fell back to epoll. */
struct worker *worker_new(struct sidecar *sc, int id, char *why_not_uring, size_t whylen,
                          char *err, size_t errlen);
/* Starts the thread running the worker's loop. 0 or -errno. */
int worker_start(struct worker *w);
/* Thread-safe: asks the worker to drain or stop. */
void worker_command(struct worker *w, enum worker_cmd cmd);
/* Out of descriptors (err EMFILE or ENFILE) outside accept: stops accepting on every
 * listener for a while, as an accept that failed would. Worker thread only. */
void worker_pause_accept(struct worker *w, int err);
/* Joins the thread (after WORKER_CMD_STOP) and frees everything, open relays included. */
void worker_free(struct worker *w);

#endif
