/*
 * server.c - the store's manifest directory on the server side: a reload commits the
 * directory as the whole store, or leaves the store as it was and logs the model's error.
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "store_dir.h"

int xds_server_reload(struct xds_server *srv)
{
    struct store_obj **objs = NULL;
    size_t n = 0;
    char err[2048];
    bool changed;
    int rc;

    if ((rc = store_dir_read(srv->config_dir, &objs, &n, err, sizeof(err))) ||
        (rc = store_commit(&srv->store, STORE_REPLACE, objs, n, NULL, &changed, err,
                           sizeof(err)))) {
        if (!rc)
            rc = -EINVAL;
        free(objs);
        srv->m.reloads_failed++;
        log_error("reload of %s rejected, keeping the %zu objects of revision %llu: %s",
                  srv->config_dir, srv->store.n, (unsigned long long)srv->store.revision, err);
        return rc;
    }
    free(objs);
    srv->m.reloads_ok++;
    if (changed) {
        log_info("reloaded %s: %zu objects, store revision %llu", srv->config_dir, srv->store.n,
                 (unsigned long long)srv->store.revision);
        xds_server_changed(srv);
    } else {
        log_debug("reloaded %s: no change", srv->config_dir);
    }
    return 0;
}
