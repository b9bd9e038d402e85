/*
 * sidecar.c - names of the process-wide states (sidecar.h), as Envoy's /server_info
 * names them.
 */
#include "sidecar.h"

#include <stdio.h>

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
