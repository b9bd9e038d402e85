/*
 * admin.h - the sidecar's small HTTP servers on the main thread: the admin API on
 * 127.0.0.1:--admin-port (/stats, /stats/prometheus, /ready), Prometheus on
 * --stats-port (/stats/prometheus) and the readiness probe on --health-port
 * (/healthz/ready). One request per connection, answered at once from the workers'
 * summed counters; a client has ADMIN_READ_MS to send its request head.
 */
#ifndef RINGMESH_ADMIN_H
#define RINGMESH_ADMIN_H

#include <stddef.h>

#include "sidecar.h"

#define ADMIN_LISTENERS 3

struct admin {
    struct sidecar *sc; /* borrowed */
    int fds[ADMIN_LISTENERS]; /* owned listening sockets */
};

/* Opens the three listeners. 0, or -errno with err naming the port. */
int admin_open(struct admin *a, struct sidecar *sc, char *err, size_t errlen);
/* Accepts and answers one connection on listener i (called when its fd is readable). */
void admin_serve(struct admin *a, int i);
void admin_close(struct admin *a);
/* Renders the /stats text into buf (at most len bytes); returns the length. */
size_t admin_render_stats(struct sidecar *sc, char *buf, size_t len);

#endif
