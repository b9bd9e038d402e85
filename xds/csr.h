/*
 * csr.h - a workload's key and PKCS#10 certificate request for the mesh CA
 * (POST /ringmesh.ca.v1/Sign, xds/PROTOCOL.md), on wolfCrypt: a fresh ECDSA P-256 key and a
 * CSR signed with it (ECDSA with SHA-256), subject O=ringmesh, CN=<sa>.<ns>. The CSR names
 * no SPIFFE ID: the CA takes the identity from the requester (token or client
 * certificate), never from the CSR.
 *
 * To merge: the control plane's branch adds ca_make_csr() to xds/ca.c; this file exists
 * only so the two branches do not collide, and should become that one function.
 *
 * Pure code (the only outside input is the system RNG); safe from any thread.
 */
#ifndef RINGMESH_XDS_CSR_H
#define RINGMESH_XDS_CSR_H

#include <stddef.h>

/* Makes a key and its CSR for workload ns/sa. On success *key_pem ("EC PRIVATE KEY", SEC 1)
 * and *csr_pem ("CERTIFICATE REQUEST") are malloc'd, NUL-terminated; the caller wipes and
 * frees the key. 0, or -ENOMEM / -EIO with err naming the wolfCrypt step that failed. */
int csr_make(const char *ns, const char *sa, char **key_pem, char **csr_pem, char *err,
             size_t errlen);

#endif
