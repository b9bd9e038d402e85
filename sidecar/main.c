/*
 * main.c - ringmesh-sidecar: parses the command line, starts one worker per CPU (each
 * with its own loop and listeners), then runs the admin servers, signals and the drain
 * on the main thread.
 *
 * Lifecycle: STARTING until every worker's listeners are up, then LIVE. SIGTERM or
 * SIGINT (or POST /quitquitquit): DRAINING (readiness fails at once), listeners close,
 * open connections go on until they finish or --drain-seconds pass, then the workers stop
 * and the process exits 0 (sidecar_drain). A second signal while exiting exits at once;
 * one after a /drain_listeners that did not exit starts the exit drain. SIGPIPE is
 * ignored; SIGHUP reloads --config (a bad file is rejected and the running configuration
 * stays).
 *
 * With --xds the configuration comes from the control plane instead (xds/client.h, on its
 * own thread): the sidecar starts with the --xds-cache file's set when there is one (and
 * is ready on it), else empty and not ready until the first warm xDS snapshot. With
 * --xds-token the workload certificate is fetched from the mesh CA into --cert-dir before
 * the credentials load, and renewed at half-life (sidecar/identity.h).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "admin.h"
#include "client.h"
#include "config.h"
#include "identity.h"
#include "cpus.h"
#include "log.h"
#include "loop.h"
#include "options.h"
#include "sidecar.h"
#include "tls.h"
#include "worker.h"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Every connection needs two descriptors: take the hard limit. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void stop_workers(struct sidecar *sc)
{
    for (int i = 0; i < sc->nworkers; i++)
        worker_command(sc->workers[i], WORKER_CMD_STOP);
    for (int i = 0; i < sc->nworkers; i++)
        worker_free(sc->workers[i]);
    free(sc->workers);
    sc->workers = NULL;
    sc->nworkers = 0;
}

static int start_workers(struct sidecar *sc, char *err, size_t errlen)
{
    int n = sc->opts.concurrency ? sc->opts.concurrency : cpus_available();
    sidecar_metrics_init(sc, n);
    sc->workers = calloc((size_t)n, sizeof(*sc->workers));
    if (!sc->workers) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        char why[256];
        struct worker *w = worker_new(sc, i, why, sizeof(why), err, errlen);
        if (!w)
            return -1;
        sc->workers[sc->nworkers++] = w;
        if (i == 0) {
            /* Every worker runs what the first one got; say once why, if not io_uring. */
            sc->backend = loop_backend_name(loop_backend(w->loop));
            snprintf(sc->backend_why, sizeof(sc->backend_why), "%s", why);
            sc->opts.io =
                loop_backend(w->loop) == LOOP_BACKEND_URING ? LOOP_IO_URING : LOOP_IO_EPOLL;
        }
    }
    for (int i = 0; i < n; i++) {
        int r = worker_start(sc->workers[i]);
        if (r < 0) {
            snprintf(err, errlen, "cannot start worker thread %d: %s", i, strerror(-r));
            return r;
        }
    }
    /* Ready only when every worker runs its loop (DESIGN.md, Lifecycle). */
    for (int i = 0, waited = 0; i < n; i++) {
        int st;
        while ((st = atomic_load(&sc->workers[i]->status)) == WORKER_STARTING && waited < 5000) {
            usleep(1000);
            waited++;
        }
        if (st != WORKER_RUNNING) {
            snprintf(err, errlen, "worker %d %s", i,
                     st == WORKER_FAILED ? "failed to start its loop (see above)"
                                         : "did not start within 5 s");
            return -1;
        }
    }
    return 0;
}

/* A worker whose loop died leaves its listeners unserved: better to exit and be
 * restarted than to look healthy. */
static int failed_worker(struct sidecar *sc)
{
    for (int i = 0; i < sc->nworkers; i++)
        if (atomic_load(&sc->workers[i]->status) == WORKER_FAILED)
            return i;
    return -1;
}

/* One line about a credentials generation: who we are and until when. */
static void tls_log_creds(const struct tls_creds *c, const char *what)
{
    time_t na = tls_creds_not_after(c);
    struct tm tm;
    char when[32] = "?";
    if (na && gmtime_r(&na, &tm))
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    log_info("%s: identity %s, certificate valid until %s", what, tls_creds_id(c), when);
}

/* New handshakes use the new credentials at once; open connections keep theirs. A bad
 * set (half written, wrong key) is refused and the current one keeps serving. */
static void tls_reload(struct sidecar *sc)
{
    char err[512];
    struct tls_creds *c = tls_creds_load(sc->opts.cert_dir, err, sizeof(err));
    if (!c) {
        atomic_fetch_add(&sc->tls_reloads_rejected, 1);
        log_error("mTLS credentials not reloaded, the current ones stay: %s", err);
        return;
    }
    atomic_fetch_add(&sc->tls_reloads_ok, 1);
    tls_log_creds(c, "mTLS credentials reloaded");
    tls_publish(c);
}

int main(int argc, char **argv)
{
    static struct sidecar sc;
    static struct admin admin; /* 64 client slots: off the stack */
    char err[512];
    sigset_t sigs;
    int sfd, rc = 0;

    log_set_program("ringmesh-sidecar");
    switch (options_parse(&sc.opts, argc, argv, err, sizeof(err))) {
    case OPTIONS_HELP:
        fputs(options_usage(), stdout);
        return 0;
    case OPTIONS_ERROR:
        fprintf(stderr, "ringmesh-sidecar: %s\n", err);
        return 2;
    case OPTIONS_OK:
        break;
    }
    log_level_current = sc.opts.log_level;
    if (options_check_sources(&sc.opts, err, sizeof(err)) < 0) {
        fprintf(stderr, "ringmesh-sidecar: %s\n", err);
        return 1;
    }
    sc.start_time = time(NULL);
    atomic_init(&sc.state, SIDECAR_STARTING);
    atomic_init(&sc.active_cx, 0);

    /* Signals go to the main thread's signalfd only: block them before any thread. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        log_error("signalfd: %s", strerror(errno));
        return 1;
    }
    raise_nofile();

    /* The configuration comes before anything listens: a bad file stops the start. With
     * --xds: the cache if there is a good one, else nothing until the control plane
     * answers (not ready meanwhile). */
    struct config_snapshot *snap =
        sc.opts.config_path ? config_load(sc.opts.config_path, err, sizeof(err)) : config_empty();
    if (!snap) {
        log_error("%s", err);
        return 1;
    }
    struct xds_delta cached;
    bool have_cache = false;
    if (xds_delta_init(&cached) < 0) {
        log_error("out of memory");
        return 1;
    }
    if (sc.opts.xds_cache) {
        int r = xds_client_load_cache(sc.opts.xds_cache, &cached, err, sizeof(err));
        char *model = NULL;
        size_t mlen = 0;
        struct config_snapshot *cs = NULL;
        if (r == 0 && (model = xds_delta_render(&cached, &mlen)))
            cs = config_from_buffer(sc.opts.xds_cache, model, mlen, err, sizeof(err));
        free(model);
        if (cs) {
            config_release(snap);
            snap = cs;
            have_cache = true;
            log_info("--xds-cache %s: serving its %zu services until the control plane answers",
                     sc.opts.xds_cache, cs->model->n_services);
        } else if (r != -ENOENT) {
            log_warn("--xds-cache: not used: %s", err);
        }
        if (!have_cache) { /* start from nothing rather than a half-loaded state */
            xds_delta_free(&cached);
            xds_delta_init(&cached);
        }
    }
    atomic_store(&sc.config_ready, !sc.opts.xds_url || have_cache);
    config_publish(snap);

    /* --xds-token: a certificate from the mesh CA before the credentials load */
    struct identity_config idc = {.url = sc.opts.xds_url,
                                  .token_path = sc.opts.xds_token,
                                  .cert_dir = sc.opts.cert_dir,
                                  .ns = sc.opts.pod_namespace,
                                  .sa = sc.opts.service_account};
    struct identity *ident = NULL;
    time_t renew_at = 0;
    if (sc.opts.xds_token) {
        renew_at = identity_renew_at(sc.opts.cert_dir);
        if (renew_at > time(NULL)) {
            log_info("--cert-dir %s holds a usable certificate; renewal in %lld s",
                     sc.opts.cert_dir, (long long)(renew_at - time(NULL)));
        } else if (identity_issue(&idc, false, &renew_at, err, sizeof(err)) < 0) {
            log_error("--xds-token: no certificate from the mesh CA: %s", err);
            xds_delta_free(&cached);
            config_shutdown();
            return 1;
        } else {
            log_info("--xds-token: certificate issued by the mesh CA into %s", sc.opts.cert_dir);
        }
    }

    /* mTLS credentials, likewise before anything listens; then watched for rotation */
    int ifd = -1;
    uint64_t tls_reload_at = 0;
    if (sc.opts.cert_dir) {
        struct tls_creds *creds = tls_creds_load(sc.opts.cert_dir, err, sizeof(err));
        if (!creds) {
            log_error("--cert-dir: %s", err);
            xds_delta_free(&cached);
            config_shutdown();
            return 1;
        }
        tls_log_creds(creds, "mTLS on");
        tls_publish(creds);
        ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (ifd < 0 ||
            inotify_add_watch(ifd, sc.opts.cert_dir,
                              IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB) < 0)
            log_warn("--cert-dir %s: cannot watch for rotation (%s): reload with SIGHUP",
                     sc.opts.cert_dir, strerror(errno));
    }

    if (admin_open(&admin, &sc, err, sizeof(err)) < 0) {
        log_error("%s", err);
        xds_delta_free(&cached);
        config_shutdown();
        tls_shutdown();
        return 1;
    }
    if (sc.opts.access_log) {
        int nw = sc.opts.concurrency ? sc.opts.concurrency : cpus_available();
        sc.alog = accesslog_open(sc.opts.access_log, nw, sc.opts.access_log_sample,
                                 sc.opts.access_log_errors_only, err, sizeof(err));
        if (!sc.alog || accesslog_start(sc.alog) < 0) {
            log_error("%s", sc.alog ? "--access-log: cannot start the writer thread" : err);
            accesslog_close(sc.alog);
            admin_close(&admin);
            xds_delta_free(&cached);
            config_shutdown();
            tls_shutdown();
            return 1;
        }
    }
    if (start_workers(&sc, err, sizeof(err)) < 0) {
        log_error("%s", err);
        stop_workers(&sc);
        accesslog_close(sc.alog);
        admin_close(&admin);
        xds_delta_free(&cached);
        config_shutdown();
        tls_shutdown();
        return 1;
    }
    if (sc.backend_why[0])
        log_warn("I/O backend: epoll, because io_uring is unavailable (%s)", sc.backend_why);
    else
        log_info("I/O backend: %s", sc.backend);
    if (geteuid() == 0)
        log_warn("running as root: in a pod, run the sidecar as the uid/gid that ringmesh-init "
                 "excludes from capture (default 1337), or its own connections are captured "
                 "again");
    if (sc.opts.xds_url) {
        char *node = sidecar_node_json(&sc.opts);
        struct xds_client_config xc = {.url = sc.opts.xds_url,
                                       .node_json = node,
                                       .cert_dir = sc.opts.cert_dir,
                                       .cache_path = sc.opts.xds_cache,
                                       .apply = sidecar_xds_apply,
                                       .apply_arg = &sc};
        sc.xds = node ? xds_client_new(&xc, &cached, err, sizeof(err)) : NULL;
        free(node);
        if (!sc.xds || xds_client_start(sc.xds) < 0) {
            log_error("xds client: %s", sc.xds ? "cannot start its thread" : err);
            rc = 1;
            goto out;
        }
        log_info("xds: control plane %s%s", sc.opts.xds_url,
                 have_cache ? " (resuming from the cache)" : "; not ready until it answers");
    }
    xds_delta_free(&cached);
    if (sc.opts.xds_token && !(ident = identity_start(&idc, renew_at)))
        log_error("identity: cannot start the renewal thread; the certificate will expire");
    atomic_store(&sc.state, SIDECAR_LIVE);
    log_info("ready: %d workers, outbound :%u, inbound :%u, admin 127.0.0.1:%u", sc.nworkers,
             sc.opts.outbound_port, sc.opts.inbound_port, sc.opts.admin_port);

    for (;;) {
        struct pollfd p[2 + ADMIN_LISTENERS + ADMIN_MAX_CLIENTS];
        p[0] = (struct pollfd){.fd = sfd, .events = POLLIN};
        p[1] = (struct pollfd){.fd = ifd, .events = POLLIN}; /* -1: ignored by poll */
        int na = admin_pollfds(&admin, p + 2, ADMIN_LISTENERS + ADMIN_MAX_CLIENTS);
        /* 100 ms: client deadlines, the drain and failed workers are checked that often */
        int n = poll(p, (nfds_t)(2 + na), 100);
        if (n < 0 && errno != EINTR) {
            log_error("poll: %s", strerror(errno));
            rc = 1;
            break;
        }
        admin_process(&admin, p + 2, na);
        if (n > 0 && ifd >= 0 && (p[1].revents & POLLIN)) {
            char ev[4096];
            while (read(ifd, ev, sizeof(ev)) > 0)
                ;
            /* a secret update writes several files: load once they have settled */
            tls_reload_at = now_ms() + 200;
        }
        if (tls_reload_at && now_ms() >= tls_reload_at) {
            tls_reload_at = 0;
            tls_reload(&sc);
        }
        if (n > 0 && (p[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                    sidecar_reload(&sc);
                    if (sc.opts.cert_dir)
                        tls_reload(&sc);
                    continue;
                }
                if (sc.exit_at_ms) {
                    log_warn("%s while exiting: exiting now", strsignal((int)si.ssi_signo));
                    goto out;
                }
                sidecar_drain(&sc, SIDECAR_DRAIN_GRACEFUL | SIDECAR_DRAIN_EXIT,
                              strsignal((int)si.ssi_signo));
            }
        }
        int dead = failed_worker(&sc);
        if (dead >= 0) {
            log_error("worker %d failed; exiting", dead);
            rc = 1;
            break;
        }
        if (sc.exit_at_ms) {
            int active = atomic_load(&sc.active_cx);
            /* an admin answer still being written (/quitquitquit's "OK") goes out first */
            if (active == 0 && !admin_busy(&admin)) {
                log_info("drained: no connections left");
                break;
            }
            if (now_ms() >= sc.exit_at_ms) {
                log_warn("drain deadline: closing %d connections", active);
                break;
            }
        }
    }
out:
    identity_stop(ident);
    xds_client_free(sc.xds); /* before the workers: its thread commands them */
    sc.xds = NULL;
    stop_workers(&sc);
    accesslog_close(sc.alog); /* after the workers: their last lines are written */
    sc.alog = NULL;
    admin_close(&admin);
    config_shutdown();
    tls_shutdown();
    if (ifd >= 0)
        close(ifd);
    close(sfd);
    log_info("exit");
    return rc;
}
