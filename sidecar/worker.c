/*
 * worker.c - see worker.h. The loop's tick (100 ms) resumes paused accepts, runs the
 * relay sweep every second, and is where commands from the main thread are also
 * noticed if a wake-up raced with them.
 */
#include "worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "http.h"
#include "tls.h"
#include "relay.h"

#define WORKER_TICK_MS         100
#define WORKER_SWEEP_MS        1000
#define WORKER_ACCEPT_PAUSE_MS 100

/* Synchronous: when drain says the port is closed, it is (no queued close SQE). */
static void listener_close(struct listener *ls)
{
    if (ls->fd >= 0) {
        close(ls->fd);
        ls->fd = -1;
    }
}

static void on_accept(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more)
{
    struct listener *ls = op->owner;
    struct worker *w = ls->w;

    if (res >= 0)
        relay_start(w, ls->dir, res);
    if (more)
        return;
    if (ls->drained || (res == -ECANCELED && !ls->paused)) {
        listener_close(ls);
        return;
    }
    if (ls->paused)
        return; /* worker_pause_accept cancelled it (or it ended meanwhile): the tick re-arms */
    if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS) {
        /* Out of descriptors or memory: stop accepting for a while instead of spinning;
         * the backlog holds new connections until then. */
        STATS_INC(&w->stats.w[STATS_ACCEPT_PAUSED]);
        log_warn("%s listener: accept: %s; pausing accept for %d ms", stats_dir_name(ls->dir),
                 strerror(-res), WORKER_ACCEPT_PAUSE_MS);
        ls->paused = true;
        w->accept_resume_ms = loop_now_ms(l) + WORKER_ACCEPT_PAUSE_MS;
        return;
    }
    if (res < 0 && res != -EINTR && res != -ECONNABORTED && res != -EAGAIN)
        log_warn("%s listener: accept: %s; re-arming", stats_dir_name(ls->dir), strerror(-res));
    if (loop_accept(l, op, ls->fd) < 0)
        log_error("%s listener: cannot re-arm accept", stats_dir_name(ls->dir));
}

void worker_pause_accept(struct worker *w, int err)
{
    if (w->draining || (err != EMFILE && err != ENFILE))
        return;
    bool paused = false;
    for (int i = 0; i < w->nlisteners; i++) {
        struct listener *ls = &w->listeners[i];
        if (ls->paused || ls->fd < 0 || ls->drained)
            continue;
        ls->paused = paused = true;
        if (ls->accept_op.armed)
            loop_cancel(w->loop, &ls->accept_op);
    }
    if (!paused)
        return;
    /* A multishot accept may have taken the last descriptor, so the upstream socket is
     * where the shortage shows: pausing here is what keeps the test for it (and a
     * descriptor-starved pod) from accepting-and-failing every connection in turn. */
    STATS_INC(&w->stats.w[STATS_ACCEPT_PAUSED]);
    log_warn("upstream socket: %s; pausing accept for %d ms", strerror(err),
             WORKER_ACCEPT_PAUSE_MS);
    w->accept_resume_ms = loop_now_ms(w->loop) + WORKER_ACCEPT_PAUSE_MS;
}

static bool listeners_armed(const struct worker *w)
{
    for (int i = 0; i < w->nlisteners; i++)
        if (w->listeners[i].accept_op.armed)
            return true;
    return false;
}

/* Closes the listeners of the directions in dirs (bits 1 << enum stats_dir) for good. */
static void close_listeners(struct worker *w, unsigned dirs)
{
    bool all = true;
    for (int i = 0; i < w->nlisteners; i++) {
        struct listener *ls = &w->listeners[i];
        if (!ls->drained && (dirs & (1u << ls->dir))) {
            ls->drained = true;
            if (ls->accept_op.armed)
                loop_cancel(w->loop, &ls->accept_op); /* closed when the cancel completes */
            else
                listener_close(ls);
        }
        all = all && ls->drained;
    }
    w->draining = all;
}

static void worker_drain(struct worker *w)
{
    if (w->draining)
        return;
    http_drain(w, 1u << STATS_OUTBOUND | 1u << STATS_INBOUND);
    close_listeners(w, 1u << STATS_OUTBOUND | 1u << STATS_INBOUND);
}

static uint32_t view_cx(void *arg, const struct lb_addr *a, uint64_t want_hash)
{
    struct sockaddr_storage ss;
    socklen_t len = lb_addr_sockaddr(a, &ss);
    return http_upstream_cx(arg, &ss, len, want_hash);
}

/* WORKER_CMD_VIEW: the copy is made outside the lock; the lock covers the swap only. */
static void publish_view(struct worker *w)
{
    struct cluster_set_view *v =
        cluster_set_view(&w->clusters, w->snap ? w->snap->version : 0, view_cx, w);
    struct cluster_set_view *old;
    pthread_mutex_lock(&w->view_mu);
    old = w->view;
    w->view = v; /* NULL when out of memory: the caller still gets its answer */
    w->view_seq++;
    pthread_cond_broadcast(&w->view_cv);
    pthread_mutex_unlock(&w->view_mu);
    cluster_set_view_free(old);
}

/* Adopts the published snapshot if it moved (between completion batches, as a command or
 * on the tick). Work already started keeps the snapshot it pinned. */
static void adopt_config(struct worker *w)
{
    uint64_t gen = config_generation();
    if (gen == w->snap_gen && w->snap)
        return;
    struct config_snapshot *s = config_acquire();
    if (!s)
        return;
    config_release(w->snap);
    w->snap = s;
    w->snap_gen = gen;
    cluster_set_update(&w->clusters, s, (int64_t)loop_now_ms(w->loop) * 1000000);
    atomic_store(&w->snap_version, s->version);
}

static void check_commands(struct worker *w)
{
    int cmd = atomic_exchange(&w->cmd, 0);
    unsigned go = 0, close = 0;
    if (cmd & WORKER_CMD_CONFIG)
        adopt_config(w);
    if (cmd & WORKER_CMD_GOAWAY_OUTBOUND)
        go |= 1u << STATS_OUTBOUND;
    if (cmd & WORKER_CMD_GOAWAY_INBOUND)
        go |= 1u << STATS_INBOUND;
    if (cmd & WORKER_CMD_CLOSE_OUTBOUND)
        close |= 1u << STATS_OUTBOUND;
    if (cmd & WORKER_CMD_CLOSE_INBOUND)
        close |= 1u << STATS_INBOUND;
    if (go)
        http_drain(w, go);
    if (close)
        close_listeners(w, close);
    if (cmd & WORKER_CMD_VIEW)
        publish_view(w);
    if (cmd & WORKER_CMD_STOP)
        loop_stop(w->loop);
}

static void on_wake(struct loop *l, void *arg)
{
    check_commands(arg);
}

/* The mTLS credentials of new handshakes: the newest published generation. */
static void adopt_tls(struct worker *w)
{
    uint64_t g = tls_generation();
    if (g == w->tls_gen)
        return;
    struct tls_creds *c = tls_acquire();
    tls_creds_release(w->tls);
    w->tls = c;
    w->tls_gen = g;
}

static void on_tick(struct loop *l, void *arg)
{
    struct worker *w = arg;
    uint64_t now = loop_now_ms(l);
    check_commands(w);
    adopt_config(w);
    adopt_tls(w);
    __atomic_store_n(&w->stats.buffers_in_use, w->sc->opts.buf_count - loop_buf_free(l),
                     __ATOMIC_RELAXED);
    if (w->accept_resume_ms && now >= w->accept_resume_ms) {
        w->accept_resume_ms = 0;
        for (int i = 0; i < w->nlisteners; i++) {
            struct listener *ls = &w->listeners[i];
            if (!ls->paused || ls->drained || ls->fd < 0)
                continue;
            if (ls->accept_op.armed) /* its cancel has not completed yet: next tick */
                w->accept_resume_ms = now + WORKER_TICK_MS;
            else if (loop_accept(l, &ls->accept_op, ls->fd) == 0)
                ls->paused = false;
        }
    }
    if (now >= w->next_sweep_ms || w->starved) {
        w->next_sweep_ms = now + WORKER_SWEEP_MS;
        relay_sweep(w, now);
        http_sweep(w, now);
        cluster_set_sweep(&w->clusters, (int64_t)now * 1000000);
        metrics_sweep(&w->metrics, now);
    }
}

/* A SO_REUSEPORT listener on the wildcard address of family fam. -errno on failure;
 * -EAFNOSUPPORT/-EADDRNOTAVAIL for IPv6 on a host without it. The first worker (probe)
 * first binds without SO_REUSEPORT: another process of the same uid listening there
 * with SO_REUSEPORT (a stale sidecar) would otherwise silently share our traffic. */
static int listen_socket(int fam, unsigned short port, bool probe)
{
    int one = 1, e;
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    memset(&ss, 0, sizeof(ss));
    if (fam == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        len = sizeof(*s4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        s6->sin6_addr = in6addr_any;
        len = sizeof(*s6);
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (probe) {
        if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
            e = errno;
            close(fd);
            return -e;
        }
        close(fd);
        fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (fam == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0) {
        e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

struct worker *worker_new(struct sidecar *sc, int id, char *why_not_uring, size_t whylen, char *err,
                          size_t errlen)
{
    struct loop_config lc = {
        .io = sc->opts.io,
        .buf_count = sc->opts.buf_count,
        .buf_size = sc->opts.buf_size,
        .ring_entries = 1024,
    };
    struct worker *w;
    char lerr[256];

    if (posix_memalign((void **)&w, 64, sizeof(*w)) != 0) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->sc = sc;
    w->loop = loop_new(&lc, why_not_uring, whylen, lerr, sizeof(lerr));
    if (!w->loop) {
        snprintf(err, errlen, "worker %d: %s", id, lerr);
        free(w);
        return NULL;
    }
    if (cluster_set_init(&w->clusters, (uint64_t)time(NULL) * 1000003u + (uint64_t)id) < 0 ||
        metrics_worker_init(&w->metrics, &sc->metrics) < 0) {
        snprintf(err, errlen, "worker %d: out of memory", id);
        cluster_set_free(&w->clusters);
        metrics_worker_free(&w->metrics);
        loop_free(w->loop);
        free(w);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* timed waits immune to clock steps */
    pthread_mutex_init(&w->view_mu, NULL);
    pthread_cond_init(&w->view_cv, &ca);
    pthread_condattr_destroy(&ca);
    for (int d = 0; d < STATS_DIRS; d++) {
        unsigned short port = d == STATS_OUTBOUND ? sc->opts.outbound_port : sc->opts.inbound_port;
        for (int f = 0; f < 2; f++) {
            int fam = f == 0 ? AF_INET : AF_INET6;
            int fd = listen_socket(fam, port, id == 0);
            if (fd < 0) {
                if (fam == AF_INET6 && (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL))
                    continue; /* no IPv6 here */
                snprintf(err, errlen, "%s listener on %s port %u: %s", stats_dir_name(d),
                         fam == AF_INET ? "0.0.0.0" : "[::]", port, strerror(-fd));
                worker_free(w);
                return NULL;
            }
            struct listener *ls = &w->listeners[w->nlisteners++];
            ls->w = w;
            ls->fd = fd;
            ls->dir = (enum stats_dir)d;
            loop_op_init(&ls->accept_op, on_accept, ls);
        }
    }
    return w;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];
    int r;
    snprintf(name, sizeof(name), "w%d", w->id);
    log_set_thread_name(name);
    /* Reseeded from the kernel: x-request-ids and traceparent span ids come from this
     * generator, and its time-based seed gave two sidecars started in the same second
     * the same sequence (the same IDs in two pods). The time seed stays if it fails. */
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
        prng_seed(&w->clusters.rng, seed ^ (uint64_t)w->id);
    r = loop_attach_thread(w->loop);
    if (r < 0) {
        log_error("cannot attach the %s ring to the worker thread: %s",
                  loop_backend_name(loop_backend(w->loop)), strerror(-r));
        atomic_store(&w->status, WORKER_FAILED);
        return NULL;
    }
    loop_set_wake_cb(w->loop, on_wake, w);
    loop_set_tick(w->loop, WORKER_TICK_MS, on_tick, w);
    for (int i = 0; i < w->nlisteners; i++) {
        if (loop_accept(w->loop, &w->listeners[i].accept_op, w->listeners[i].fd) < 0) {
            log_error("cannot start accepting on listener %d", i);
            atomic_store(&w->status, WORKER_FAILED);
            return NULL;
        }
    }
    /* The first pass submits the accepts; a ring that cannot run fails here, before the
     * sidecar says it is ready. */
    r = loop_run_once(w->loop, 0);
    /* Failpoint for the test that a failed worker keeps the sidecar from being ready. */
    const char *fp = getenv("RINGMESH_FAILPOINT");
    if (fp && strcmp(fp, "worker-loop") == 0 && w->id == w->sc->nworkers - 1)
        r = -EIO;
    if (r == 0) {
        adopt_config(w); /* before RUNNING: ready means every worker has the configuration */
        adopt_tls(w);
        atomic_store(&w->status, WORKER_RUNNING);
        check_commands(w); /* a drain may have come before the thread ran */
        r = loop_run(w->loop);
    }
    if (r < 0) {
        log_error("%s loop failed: %s", loop_backend_name(loop_backend(w->loop)), strerror(-r));
        atomic_store(&w->status, WORKER_FAILED);
        tls_thread_done();
        return NULL;
    }
    /* An armed multishot accept holds its listening socket even after close(2), until
     * the ring is torn down, which the kernel finishes asynchronously after exit: a
     * restarted sidecar would find the port busy. End the accepts before leaving. */
    worker_drain(w);
    for (int i = 0; i < 100 && listeners_armed(w); i++)
        loop_run_once(w->loop, 10);
    loop_run_once(w->loop, 0); /* submits queued closes: only this thread may (io_uring) */
    tls_thread_done();
    atomic_store(&w->status, WORKER_STOPPED);
    return NULL;
}

int worker_start(struct worker *w)
{
    int r = pthread_create(&w->thread, NULL, worker_main, w);
    return -r;
}

void worker_command(struct worker *w, enum worker_cmd cmd)
{
    atomic_fetch_or(&w->cmd, (int)cmd);
    loop_wake(w->loop);
}

void worker_collect_views(struct worker **ws, int n, struct cluster_set_view **out, int timeout_ms)
{
    uint64_t *seq0 = calloc(n > 0 ? (size_t)n : 1, sizeof(*seq0));
    struct timespec dl;
    for (int i = 0; i < n; i++)
        out[i] = NULL;
    if (!seq0)
        return;
    /* ask them all first, so they copy in parallel */
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&ws[i]->view_mu);
        seq0[i] = ws[i]->view_seq;
        pthread_mutex_unlock(&ws[i]->view_mu);
        if (atomic_load(&ws[i]->status) == WORKER_RUNNING)
            worker_command(ws[i], WORKER_CMD_VIEW);
    }
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    for (int i = 0; i < n; i++) {
        struct worker *w = ws[i];
        if (atomic_load(&w->status) != WORKER_RUNNING)
            continue;
        pthread_mutex_lock(&w->view_mu);
        int rc = 0;
        while (w->view_seq == seq0[i] && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&w->view_cv, &w->view_mu, &dl);
        if (w->view_seq != seq0[i]) {
            out[i] = w->view;
            w->view = NULL;
        }
        pthread_mutex_unlock(&w->view_mu);
    }
    free(seq0);
}

void worker_free(struct worker *w)
{
    if (!w)
        return;
    if (w->thread)
        pthread_join(w->thread, NULL);
    relay_free_all(w);
    http_free_all(w);
    cluster_set_free(&w->clusters);
    metrics_worker_free(&w->metrics);
    tls_creds_release(w->tls);
    w->tls = NULL;
    config_release(w->snap);
    for (int i = 0; i < w->nlisteners; i++)
        if (w->listeners[i].fd >= 0)
            close(w->listeners[i].fd);
    cluster_set_view_free(w->view);
    pthread_mutex_destroy(&w->view_mu);
    pthread_cond_destroy(&w->view_cv);
    loop_free(w->loop);
    free(w);
}
