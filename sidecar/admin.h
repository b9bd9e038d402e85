/*
 * admin.h - the sidecar's small HTTP servers on the main thread: the admin API on
 * 127.0.0.1:--admin-port (GET /help, /stats, /stats/prometheus, /config_dump, /clusters,
 * /server_info, /ready; POST /config_reload, /drain_listeners, /quitquitquit, /logging:
 * Envoy's names and formats, CONVENTIONS.md section 2), Prometheus on
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
#define ADMIN_MAX_PARAMS  16 /* query parameters a request may carry; more is a 400 */
/* /clusters waits this long for the workers' copies; a worker that does not answer (its
 * loop died) is left out and the answer says so (X-Ringmesh-Workers-Missing). The main
 * thread blocks meanwhile, which a live worker ends within one loop pass. */
#define ADMIN_VIEW_TIMEOUT_MS 250
#define ADMIN_LOGGER          "ringmesh" /* /logging's one logger (Envoy has one per component) */

/* The listeners, in admin_open's order. */
enum admin_kind { ADMIN_API, ADMIN_PROMETHEUS, ADMIN_HEALTH };

/* Mutating endpoints (/config_reload, /drain_listeners, /quitquitquit, /logging) take
 * POST only. Anything else gets 405 Method Not Allowed with "Allow: POST"; endpoints that
 * only read get 405 with "Allow: GET, HEAD" for other methods. A deliberate difference
 * from Envoy, which answers 400 to a GET on a mutation (CONVENTIONS.md section 2): 405 with
 * Allow is what HTTP says (RFC 9110 15.5.6), lets a client tell "wrong method" from "bad
 * argument" (our 400s name the bad argument), and /config_reload already answered 405.
 * Unknown query parameters are refused with 400 on the endpoints added with this rule
 * (/clusters, /server_info and the mutations); /stats, /stats/prometheus, /config_dump and
 * /ready ignore theirs, as before, so scrapers that add parameters keep working. */
struct admin_query {
    int n;
    struct {
        char *key; /* percent-decoded, in the client's buffer */
        char *val; /* likewise; NULL for "?key" without '=' */
    } p[ADMIN_MAX_PARAMS];
};

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
/* Parses a query string (after the '?') in place into q: at most ADMIN_MAX_PARAMS
 * parameters "k" or "k=v" split on '&' (empty ones skipped), names and values
 * percent-decoded (%XX; '+' stays '+'). Pure. 0, or -1 with why saying what was wrong: a
 * bad or NUL escape (naming the parameter), a parameter without a name, too many. */
int admin_parse_query(char *qs, struct admin_query *q, char *why, size_t whylen);
/* Envoy's log level names (trace debug info warning error critical off; also "warn") as
 * enum log_level values: we have no critical (error is our most severe) and off is
 * LOG_OFF. ADMIN_LEVEL_UNKNOWN for anything else. */
#define ADMIN_LEVEL_UNKNOWN (-2)
int admin_log_level(const char *name);
/* True while an answer is still being written (the exit waits for /quitquitquit's). */
bool admin_busy(const struct admin *a);
/* Renders the /stats text into buf (at most len bytes); returns the length. */
size_t admin_render_stats(struct sidecar *sc, char *buf, size_t len);

#endif
