/*
 * http.h - the sidecar's HTTP proxy: downstream connections whose first bytes (or whose
 * Service port's appProtocol) say HTTP, their requests routed, balanced, retried and
 * timed out, and the upstream connection pools they travel on.
 *
 * Outbound (app -> Service VIP): the client may speak HTTP/1.1 or HTTP/2 (prior
 * knowledge); each request is routed by the Service's HTTPRoutes, an endpoint picked by
 * the backend cluster's load balancer, and the request sent on a pooled, multiplexed
 * HTTP/2 connection to the endpoint's address, which the peer pod's rules deliver to its
 * sidecar's inbound port. Inbound (peer sidecar or any client -> this pod): each request
 * goes to the app at the original destination, from 127.0.0.6, over a local keep-alive
 * pool, in the app's protocol: HTTP/2 prior knowledge when the Service port's
 * appProtocol says so (h2c, http2, grpc, kubernetes.io/h2c), else HTTP/1.1.
 *
 * Runs on one worker thread; every object belongs to the worker that accepted the
 * connection it serves.
 */
#ifndef RINGMESH_HTTP_H
#define RINGMESH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "stats.h"

struct cluster;
struct worker;
struct config_snapshot;

/* How a Service port's appProtocol asks the sidecar to treat it. */
enum http_app_proto {
    HTTP_APP_UNKNOWN, /* unset: sniff */
    HTTP_APP_HTTP1,   /* http */
    HTTP_APP_HTTP2,   /* h2c, http2, grpc, grpc-web? no: kubernetes.io/h2c */
    HTTP_APP_TCP,     /* tcp or anything else named: opaque bytes */
};
enum http_app_proto http_app_proto(const char *app_protocol);

/* The appProtocol of the local endpoint ip:port (the inbound original destination): the
 * Service port whose EndpointSlices list that address and port. UNKNOWN when none does. */
enum http_app_proto http_local_app_proto(const struct config_snapshot *snap,
                                         const struct sockaddr_storage *dst, char *svc,
                                         size_t svclen);

/* A nonblocking TCP socket (no Nagle) to connect to dst; inbound ones leave from
 * 127.0.0.6 (::6), so the pod's OUTPUT rules let them reach the app without capture. The
 * port is chosen at connect time. fd or -errno; EMFILE/ENFILE also pause w's accepts. */
int http_upstream_socket(struct worker *w, const struct sockaddr_storage *dst, enum stats_dir dir);

/* AuthorizationPolicy for an inbound request (method/path set) or TCP connection (method
 * NULL) to Service svc ("" or NULL: not a Service's endpoint; from http_local_app_proto,
 * looked up once per connection) on dst's port from principal (the peer's SPIFFE ID; NULL or "" for
 * a plaintext peer). false with *why naming the policy when denied. */
bool http_inbound_allowed(struct worker *w, const char *svc, const struct sockaddr_storage *dst,
                          const char *principal, const char *method, size_t method_len,
                          const char *path, size_t path_len, const char **why, char *buf,
                          size_t buflen);

/* Takes over an accepted connection decided to be HTTP: fd, its original destination,
 * and bytes already read from it (sniffing). On failure fd is closed. The caller's
 * count in sc->active_cx passes to the HTTP connection. */
void http_adopt(struct worker *w, enum stats_dir dir, int fd, const struct sockaddr_storage *dst,
                socklen_t dst_len, const char *early, size_t early_len, bool tls);

/* Outbound TCP to a peer sidecar over mTLS: the client's connection fd (original
 * destination dst, bytes early already read) tunnelled to up (the endpoint picked of
 * cluster cl: its SNI and the identities its endpoints may prove) with ALPN ringmesh-tcp. The caller's active_cx count passes to it. */
void http_adopt_tcp(struct worker *w, int fd, const struct sockaddr_storage *dst, socklen_t dst_len,
                    const struct sockaddr_storage *up, socklen_t up_len,
                    const struct cluster *cl, const char *early, size_t early_len);

/* PeerAuthentication for an inbound connection to local port `port` of the pod o
 * describes (namespace, labels): the mesh-wide policy (namespace ringmesh-system, no
 * selector), the namespace's, then the workload's (selector matching the pod's labels),
 * each level's port-level mode first and UNSET inheriting; none: PERMISSIVE, as Istio. */
#define HTTP_MESH_ROOT_NAMESPACE "ringmesh-system"
enum http_mtls_mode { HTTP_MTLS_PERMISSIVE, HTTP_MTLS_STRICT, HTTP_MTLS_DISABLE };
struct sidecar_options;
enum http_mtls_mode http_inbound_mtls(const struct config_snapshot *snap,
                                      const struct sidecar_options *o, uint16_t port);
/* Periodic (each tick): idle timeouts, pool reaping, outlier sweeps. */
void http_sweep(struct worker *w, uint64_t now_ms);
/* The worker is draining the directions in dirs (bits 1 << enum stats_dir): their
 * downstream HTTP/2 connections get GOAWAY, HTTP/1.1 ones close after their current
 * response (and every later response there says Connection: close). */
void http_drain(struct worker *w, unsigned dirs);
/* Upstream HTTP connections this worker has open to dst in outbound pools (plaintext, and
 * mTLS pooled under idh: cluster.want_hash); for /clusters' cx_active. Worker thread. */
uint32_t http_upstream_cx(struct worker *w, const struct sockaddr_storage *dst, socklen_t len,
                          uint64_t idh);
/* Frees everything at once, without waiting for ops: only after the loop stopped. */
void http_free_all(struct worker *w);
/* Connections the HTTP layer holds (downstream), for drain accounting. */
size_t http_active(const struct worker *w);

#endif
