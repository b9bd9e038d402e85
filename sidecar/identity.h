/*
 * identity.h - the workload certificate from the mesh CA (--xds-token): a fresh P-256 key
 * and CSR (xds/ca.h: ca_key_new, ca_make_csr), POST /ringmesh.ca.v1/Sign on the control plane (xds_ca_sign), and
 * key.pem, cert-chain.pem, root-cert.pem written into --cert-dir, each through a temporary
 * file and rename(2). The sidecar never loads them from here: main.c's inotify watch on
 * --cert-dir reloads them like any rotation (one credential path, sidecar/tls.c), so open
 * connections keep their session and new handshakes use the new certificate.
 *
 * When: at start, when --cert-dir holds no usable set (missing, not loading, or past half
 * its lifetime), synchronously before the TLS credentials load; then a thread renews at
 * half-life (Istio's SECRET_GRACE_PERIOD_RATIO 0.5), retrying with the xDS backoff when the
 * CA cannot be reached. Authentication: the bearer token from --xds-token at bootstrap;
 * renewals over https present the current certificate instead, over http (dev) the token
 * again (re-read each time, so a rotated token file is picked up).
 */
#ifndef RINGMESH_IDENTITY_H
#define RINGMESH_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct identity_config {
    const char *url;        /* borrowed: the control plane (--xds) */
    const char *token_path; /* borrowed: --xds-token */
    const char *cert_dir;   /* borrowed: --cert-dir, created 0700 if missing */
    const char *ns, *sa;    /* borrowed: for the CSR's subject */
};

/* When the set in cert_dir should be renewed: half-way between cert-chain.pem's write
 * time and the certificate's expiry. 0 when the set does not load (no usable set). */
time_t identity_renew_at(const char *cert_dir);

/* Makes a key and CSR, has it signed (30 s timeout) and writes the three files. On
 * success *renew_at is half-way to the new certificate's expiry. 0 or -errno with err. */
int identity_issue(const struct identity_config *cfg, bool renewal, time_t *renew_at, char *err,
                   size_t errlen);

struct identity;
/* Starts the renewal thread (first renewal at renew_at). NULL on failure. cfg's strings
 * must outlive it. */
struct identity *identity_start(const struct identity_config *cfg, time_t renew_at);
/* Stops the thread and frees it. NULL is fine. */
void identity_stop(struct identity *id);

#endif
