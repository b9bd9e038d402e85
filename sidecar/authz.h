/*
 * authz.h - AuthorizationPolicy (ringmesh.io/v1alpha1, Istio's semantics) for inbound
 * requests and connections. Pure: the model in, a decision out.
 *
 * Which policies apply: those in the pod's namespace whose target is the Service the
 * request came to, or no target (the whole namespace). Then: any matching DENY rule
 * denies; else, when ALLOW policies apply, one of their rules must match; else allow.
 * A rule matches when every field it has matches: principals (the peer's SPIFFE ID, with
 * or without "spiffe://", as Istio writes "cluster.local/ns/x/sa/y"), namespaces (the
 * peer's, from its ID), methods, paths (the query excluded), ports (the local port).
 * Patterns are exact, "prefix*", "*suffix" or "*". A plaintext peer has no principal and
 * no namespace: only rules without them can match it. For TCP, a rule with methods or
 * paths never matches (so it neither allows nor denies), as Istio does.
 */
#ifndef RINGMESH_AUTHZ_H
#define RINGMESH_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct model_set;

struct authz_request {
    const char *principal; /* the peer's SPIFFE ID, or NULL (plaintext) */
    const char *method;    /* HTTP; NULL for TCP */
    size_t method_len;
    const char *path; /* HTTP; may carry a query */
    size_t path_len;
    uint16_t port; /* the local (original destination) port */
};

/* true: allowed. On a denial *why names the policy ("ns/name") that decided, or
 * "no ALLOW policy matched". service may be NULL (not a Service's endpoint). */
bool authz_allowed(const struct model_set *m, const char *pod_ns, const char *service,
                   const struct authz_request *r, const char **why, char *buf, size_t buflen);

#endif
