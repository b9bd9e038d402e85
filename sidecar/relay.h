/*
 * relay.h - one proxied TCP connection: the downstream socket a listener accepted and
 * the upstream socket the relay connects to its original destination, with bytes
 * copied both ways through the worker's pool buffers.
 *
 * TCP semantics kept end to end: a FIN is passed on as shutdown(SHUT_WR) once
 * everything before it was sent; a reset on either side becomes a reset (SO_LINGER 0
 * close) on the other; reading from a side pauses while the other side has more than
 * --buffer-bytes queued (backpressure: a slow reader costs at most that much plus what
 * the kernel had already delivered); connect has a timeout and an idle relay is closed.
 * Runs on its worker's thread only. Owned by the worker's relay list; freed when closed
 * and the last of its ops has completed.
 */
#ifndef RINGMESH_RELAY_H
#define RINGMESH_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stats.h"

struct worker;

/* Takes over accepted socket fd and starts relaying it to its original destination
 * (or --static-dst). On any failure fd is closed and the reason counted. */
void relay_start(struct worker *w, enum stats_dir dir, int fd);
/* Periodic: closes relays idle past --idle-timeout-ms; restarts reads that ran out of
 * buffers when buffers are free again. */
void relay_sweep(struct worker *w, uint64_t now_ms);
/* Frees every relay of w at once, without waiting for their ops: only after the
 * worker's loop has stopped for good. */
void relay_free_all(struct worker *w);

/* The labeled TCP metrics (metrics.h) of one TCP connection, at its open or, with its
 * bytes from (rx) and to (tx) the client, its close. svc_ns/svc_name: the Service (NULL or
 * "": unknown); peer_id: the peer's SPIFFE ID when the hop was mTLS, else NULL. */
void relay_tcp_metrics(struct worker *w, enum stats_dir dir, const char *svc_ns,
                       const char *svc_name, const char *peer_id, uint64_t rx, uint64_t tx,
                       bool open);

#endif
