/*
 * worker.h - one worker thread: its loop, its SO_REUSEPORT listeners on the outbound
 * and inbound capture ports (IPv4, and IPv6 where the host has it), the relays it
 * accepted, and its counters. Share-nothing: a connection lives and dies on the worker
 * that accepted it. The main thread talks to a worker only through worker_command()
 * (an atomic word plus the loop's eventfd wake-up).
 *
 * The admin's /clusters must not read the worker's clusters or lb hosts: the worker frees
 * them (a config update, the last request on a detached host) whenever it likes, with no
 * lock. So the main thread asks (WORKER_CMD_VIEW) and the worker answers on its own
 * thread with a plain-data copy (cluster_set_view), handed over under view_mu, which the
 * worker holds only for the pointer swap. Chosen over counters published on every tick:
 * the answer is as fresh as the request (a test reads its counts right after its
 * requests), and a worker pays nothing unless someone asks. A worker that does not answer
 * within the caller's timeout (its loop died) is left out, and the caller says so.
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
    bool drained;              /* closed for good by a drain: never re-armed */
    bool paused;               /* out of fds: accept resumes at accept_resume_ms (a cancel
                                * may still be in flight: accept_op.armed) */
};

enum worker_cmd {
    WORKER_CMD_NONE = 0,
    WORKER_CMD_STOP = 2,   /* leave the loop */
    WORKER_CMD_CONFIG = 4, /* a new configuration snapshot was published */
    WORKER_CMD_VIEW = 8,   /* publish a cluster_set_view (worker_collect_views) */
    /* Drains, by direction; what was closed stays closed. Relays and open connections
     * keep going; http_drain's GOAWAY / Connection: close asks clients to move on. */
    WORKER_CMD_CLOSE_OUTBOUND = 16,        /* close the outbound listeners */
    WORKER_CMD_CLOSE_INBOUND = 32,         /* close the inbound listeners */
    WORKER_CMD_GOAWAY_OUTBOUND = 64,       /* http_drain the outbound connections */
    WORKER_CMD_GOAWAY_INBOUND = 128,       /* http_drain the inbound connections */
    WORKER_CMD_DRAIN = 16 | 32 | 64 | 128, /* SIGTERM's: all of the above */
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
    bool draining;            /* every listener drained */
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
    /* WORKER_CMD_VIEW's answer: set by the worker, taken by the main thread */
    pthread_mutex_t view_mu;
    pthread_cond_t view_cv;        /* signalled when view_seq moves */
    struct cluster_set_view *view; /* owned; guarded by view_mu */
    uint64_t view_seq;             /* guarded by view_mu: views published so far */
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
/* Main thread: asks each of the n workers for a copy of its clusters and waits up to
 * timeout_ms in all for their answers; out[i] gets worker i's view (the caller frees it
 * with cluster_set_view_free) or NULL if it is not running, did not answer in time or
 * ran out of memory. */
void worker_collect_views(struct worker **ws, int n, struct cluster_set_view **out, int timeout_ms);
/* Joins the thread (after WORKER_CMD_STOP) and frees everything, open relays included. */
void worker_free(struct worker *w);

#endif
