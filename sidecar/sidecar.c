/*
 * sidecar.c - names of the process-wide states (sidecar.h), as Envoy's /server_info
 * names them; reloads; the drain that SIGTERM, /quitquitquit and /drain_listeners share.
 */
#include "sidecar.h"

#include <stdio.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "log.h"
#include "worker.h"

const char *sidecar_state_str(int state)
{
    switch (state) {
    case SIDECAR_STARTING:
        return "PRE_INITIALIZING";
    case SIDECAR_LIVE:
        return "LIVE";
    case SIDECAR_DRAINING:
        return "DRAINING";
    }
    return "UNKNOWN";
}

uint64_t sidecar_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void sidecar_drain(struct sidecar *sc, unsigned flags, const char *why)
{
    unsigned dirs = flags & SIDECAR_DRAIN_INBOUND_ONLY ? 1u << STATS_INBOUND
                                                       : 1u << STATS_OUTBOUND | 1u << STATS_INBOUND;
    int cmd = 0;
    atomic_store(&sc->state, SIDECAR_DRAINING);
    if (dirs & ~sc->drained_dirs & 1u << STATS_OUTBOUND)
        cmd |= WORKER_CMD_CLOSE_OUTBOUND;
    if (dirs & ~sc->drained_dirs & 1u << STATS_INBOUND)
        cmd |= WORKER_CMD_CLOSE_INBOUND;
    sc->drained_dirs |= dirs;
    if (flags & SIDECAR_DRAIN_GRACEFUL) {
        if (dirs & ~sc->goaway_dirs & 1u << STATS_OUTBOUND)
            cmd |= WORKER_CMD_GOAWAY_OUTBOUND;
        if (dirs & ~sc->goaway_dirs & 1u << STATS_INBOUND)
            cmd |= WORKER_CMD_GOAWAY_INBOUND;
        sc->goaway_dirs |= dirs;
    }
    if ((flags & SIDECAR_DRAIN_EXIT) && sc->exit_at_ms) {
        log_info("%s: already draining to exit", why);
    } else if (flags & SIDECAR_DRAIN_EXIT) {
        sc->exit_at_ms = sidecar_now_ms() + (uint64_t)sc->opts.drain_seconds * 1000;
        log_info("%s: draining %d connections for up to %u s, then exiting", why,
                 atomic_load(&sc->active_cx), sc->opts.drain_seconds);
    } else {
        log_info("%s: %s listeners closed%s; %d connections open", why,
                 flags & SIDECAR_DRAIN_INBOUND_ONLY ? "inbound" : "all",
                 flags & SIDECAR_DRAIN_GRACEFUL ? ", their connections asked to go away" : "",
                 atomic_load(&sc->active_cx));
    }
    for (int i = 0; cmd && i < sc->nworkers; i++)
        worker_command(sc->workers[i], (enum worker_cmd)cmd);
}

int sidecar_reload(struct sidecar *sc)
{
    char err[512];
    struct config_snapshot *snap;
    if (!sc->opts.config_path) {
        log_info("reload: no --config file; nothing to reload");
        return 0;
    }
    snap = config_load(sc->opts.config_path, err, sizeof(err));
    if (!snap) {
        atomic_fetch_add(&sc->reloads_rejected, 1);
        snprintf(sc->last_reload_error, sizeof(sc->last_reload_error), "%s", err);
        log_error("reload rejected, still serving the previous configuration: %s", err);
        return -1;
    }
    config_publish(snap);
    atomic_fetch_add(&sc->reloads_ok, 1);
    sc->last_reload_error[0] = 0;
    log_info("configuration version %llu loaded from %s", (unsigned long long)snap->version,
             sc->opts.config_path);
    for (int i = 0; i < sc->nworkers; i++)
        worker_command(sc->workers[i], WORKER_CMD_CONFIG);
    return 0;
}

int sidecar_xds_apply(void *arg, const char *model, size_t len, bool warm, char *err, size_t errlen)
{
    struct sidecar *sc = arg;
    struct config_snapshot *snap = config_from_buffer("xds", model, len, err, errlen);
    if (!snap)
        return -1;
    if (!warm) { /* checked, but a partial set is never served (warming) */
        config_release(snap);
        return 0;
    }
    size_t ns = snap->model->n_services, nsl = snap->model->n_slices, nr = snap->model->n_routes;
    snprintf(snap->source, sizeof(snap->source), "%s", sc->opts.xds_url);
    config_publish(snap); /* snap is the publication's now: not read again */
    log_info("configuration from xDS published (%zu services, %zu endpoint slices, %zu routes)", ns,
             nsl, nr);
    for (int i = 0; i < sc->nworkers; i++)
        worker_command(sc->workers[i], WORKER_CMD_CONFIG);
    atomic_store(&sc->config_ready, true);
    return 0;
}

char *sidecar_node_json(const struct sidecar_options *o)
{
    char id[1024];
    const char *pod = o->pod_name ? o->pod_name : "";
    const char *ip = o->pod_ip ? o->pod_ip : "";
    cJSON *n = cJSON_CreateObject(), *md;
    char *out = NULL;
    /* Istio's node id: type~ip~pod.namespace~namespace.svc.<domain> */
    snprintf(id, sizeof(id), "sidecar~%s~%s.%s~%s.svc.cluster.local", ip, pod, o->pod_namespace,
             o->pod_namespace);
    if (n && cJSON_AddStringToObject(n, "id", id) &&
        cJSON_AddStringToObject(n, "cluster", o->service_account) &&
        (md = cJSON_AddObjectToObject(n, "metadata")) &&
        cJSON_AddStringToObject(md, "namespace", o->pod_namespace) &&
        cJSON_AddStringToObject(md, "service_account", o->service_account) &&
        cJSON_AddStringToObject(md, "pod", pod) && cJSON_AddStringToObject(md, "pod_ip", ip) &&
        cJSON_AddStringToObject(n, "user_agent_name", "ringmesh-sidecar") &&
        cJSON_AddStringToObject(n, "user_agent_version", "0.1"))
        out = cJSON_PrintUnformatted(n);
    cJSON_Delete(n);
    return out;
}

void sidecar_metrics_init(struct sidecar *sc, int nworkers)
{
    const struct sidecar_options *o = &sc->opts;
    const char *labels[OPTIONS_MAX_LABELS][2];
    for (size_t i = 0; i < o->n_pod_labels; i++) {
        labels[i][0] = o->pod_labels[i].key;
        labels[i][1] = o->pod_labels[i].value;
    }
    sc->metrics = (struct metrics_config){
        .enabled = !o->metrics_off,
        .prefix = o->metrics_prefix,
        .label_mask = o->metrics_labels,
        .max_series = o->metrics_max_series,
        .idle_ms = o->metrics_idle_s * 1000u,
        .per_worker = nworkers > 0 ? (o->metrics_max_series + (unsigned)nworkers - 1) /
                                         (unsigned)nworkers
                                   : o->metrics_max_series,
    };
    metrics_peer_self(&sc->self, o->workload_name, o->pod_name, o->pod_namespace,
                      (const char *const(*)[2])labels, o->n_pod_labels);
    int n = metrics_peer_format(&sc->self, sc->self_peer_hdr, sizeof(sc->self_peer_hdr));
    sc->self_peer_hdr_len = n > 0 ? (size_t)n : 0;
}
