/*
 * admin.h - the sidecar's small HTTP servers on the main thread: the admin API on
 * 127.0.0.1:--admin-port (/stats, /stats/prometheus, /ready), Prometheus on
 * --stats-port (/stats/prometheus) and the readiness probe on --health-port
 * (/healthz/ready). One request per connection, answered from the workers' summed
 * counters; a client has ADMIN_DEADLINE_MS from accept to the end of the answer, and at
 * most ADMIN_MAX_CLIENTS are served at once (past that the oldest silent client is
 * dropped, or the newcomer if none is silent; counted).
 */
#ifndef RINGMESH_ADMIN_H
#define RINGMESH_ADMIN_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "sidecar.h"

#define ADMIN_LISTENERS   3
#define ADMIN_MAX_CLIENTS 64
#define ADMIN_DEADLINE_MS 1000

struct admin_client {
    int fd;           /* owned */
    int listener;     /* which listener accepted it */
    char in[4096];    /* the request head, NUL-terminated */
    size_t in_len;
    bool head_only;   /* HEAD: answer without the body */
    char *out;        /* owned: the whole answer, once known */
    size_t out_len, out_off;
    uint64_t deadline_ms;
};

struct admin {
    struct sidecar *sc;       /* borrowed */
    int fds[ADMIN_LISTENERS]; /* owned listening sockets */
    struct admin_client clients[ADMIN_MAX_CLIENTS];
    int nclients;
    uint64_t rejected;        /* clients dropped because ADMIN_MAX_CLIENTS were open */
};

/* Opens the three listeners. 0, or -errno with err naming the port. */
int admin_open(struct admin *a, struct sidecar *sc, char *err, size_t errlen);
/* Fills p with the listeners (first ADMIN_LISTENERS entries) then the clients; returns
 * how many. max must be at least ADMIN_LISTENERS + ADMIN_MAX_CLIENTS. */
int admin_pollfds(struct admin *a, struct pollfd *p, int max);
/* Handles what poll reported for the n entries admin_pollfds gave: reads, answers,
 * writes, accepts, and closes clients past their deadline. Never blocks. */
void admin_process(struct admin *a, const struct pollfd *p, int n);
void admin_close(struct admin *a);
/* Renders the /stats text into buf (at most len bytes); returns the length. */
size_t admin_render_stats(struct sidecar *sc, char *buf, size_t len);

#endif
