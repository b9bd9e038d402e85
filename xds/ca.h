/*
 * ca.h - the mesh's certificate authority and SPIFFE X.509-SVID checks, on wolfCrypt.
 *
 * A root is an ECDSA P-256 key with a self-signed certificate (CA:true critical,
 * keyCertSign + cRLSign, URI SAN spiffe://<trust-domain>); it issues workload SVIDs: a fresh
 * P-256 key and a leaf with exactly one URI SAN spiffe://<td>/ns/<ns>/sa/<sa>, keyUsage
 * digitalSignature (critical), extKeyUsage serverAuth + clientAuth, CA:false, a random
 * 16-byte serial, valid from now - CA_CLOCK_SKEW_S. Every signature is ECDSA with SHA-256.
 * Rules: CONVENTIONS section 7 and
 * https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md
 *
 * Pure code: keys, certificates and PEM text go in and out as buffers (the caller reads and
 * writes files); "now" is a parameter; the only outside input is the system RNG that wolfCrypt
 * draws keys and serials from. No global state; safe from any thread (a struct ca_root is
 * read-only once made, so threads may share one).
 *
 * Ownership: a struct ca_root owns its key and certificate; struct ca_pem owns its strings.
 * Errors: constructors return NULL, int functions -errno; both fill err (NUL-terminated when
 * errlen > 0) with what was wrong, e.g. "root-cert.pem: not a CA certificate".
 */
#ifndef RINGMESH_CA_H
#define RINGMESH_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct WOLFSSL_X509;

/* Certificates start this long before their issuance, for peers whose clocks are behind. */
#define CA_CLOCK_SKEW_S 300
/* The longest SPIFFE ID (SPIFFE-ID.md section 2.3); id buffers want CA_SPIFFE_ID_MAX + 1. */
#define CA_SPIFFE_ID_MAX 2048
/* Bounds on lifetimes the CA accepts. */
#define CA_ROOT_MAX_DAYS  36500
#define CA_LEAF_MAX_HOURS (24 * 366)

/* PEM text made by the CA. Both strings are owned and NUL-terminated. */
struct ca_pem {
    char *cert; /* owned: one or more "CERTIFICATE" blocks */
    char *key;  /* owned: one "EC PRIVATE KEY" block (SEC 1, with the public key) */
};

/* A root CA: its key and certificate. Opaque; immutable once made. */
struct ca_root;

/* Makes a new root for trust_domain (must pass ca_is_trust_domain()): a fresh P-256 key and
 * a self-signed certificate valid from now - CA_CLOCK_SKEW_S to now + days (1..
 * CA_ROOT_MAX_DAYS), subject O=ringmesh, CN=<trust domain> (or "ringmesh root CA" when the
 * trust domain is over 63 characters: X.520 caps a CN at 64). */
struct ca_root *ca_root_new(const char *trust_domain, unsigned days, time_t now, char *err,
                            size_t errlen);

/* Loads a root from PEM: the first certificate of cert_pem (others, e.g. an old root kept
 * in a bundle, are ignored) and its private key (SEC 1 "EC PRIVATE KEY" or unencrypted
 * PKCS#8 "PRIVATE KEY"). The certificate must be a CA (basicConstraints cA=true; keyUsage,
 * when present, with keyCertSign), the key P-256 and the certificate's. Its trust domain is
 * taken from its URI SAN (spiffe://<td>) when it has one, else it is "" (unknown). Buffers
 * need not be NUL-terminated. Errors name "root-cert.pem" or "root-key.pem". */
struct ca_root *ca_root_load(const char *cert_pem, size_t cert_len, const char *key_pem,
                             size_t key_len, char *err, size_t errlen);

/* Frees the root and wipes its key. NULL is fine. */
void ca_root_free(struct ca_root *root);

/* The root's trust domain ("" when the certificate names none). Owned by root. */
const char *ca_root_trust_domain(const struct ca_root *root);

/* The root certificate's validity, in seconds since the epoch. */
time_t ca_root_not_after(const struct ca_root *root);

/* The root's certificate as DER, owned by root (valid until ca_root_free()). */
const uint8_t *ca_root_der(const struct ca_root *root, size_t *len);

/* Writes the root's certificate and key as PEM into *out (free with ca_pem_free()).
 * Returns 0 or -ENOMEM / -EIO, with err filled. */
int ca_root_pem(const struct ca_root *root, struct ca_pem *out, char *err, size_t errlen);

/* What a workload SVID is issued for. */
struct ca_leaf_req {
    const char *trust_domain; /* borrowed; NULL or "" = the root's (then it must have one);
                                 if both are known they must be equal */
    const char *ns;           /* borrowed; a DNS label (model_is_dns_label) */
    const char *sa;           /* borrowed; a DNS subdomain (model_is_dns_subdomain), as
                                 Kubernetes names service accounts */
    unsigned hours;           /* lifetime, 1..CA_LEAF_MAX_HOURS */
    time_t now;
    /* DNS names after the URI SAN (an SVID may have them: the control plane's certificate
     * names its Service so clients can check the host they connect to); borrowed, each a
     * DNS subdomain. */
    const char *const *dns;
    size_t n_dns;
};

/* Issues a workload SVID signed by root: out->cert holds the leaf only (the root signs
 * leaves directly; the caller ships the root separately), out->key its new P-256 key.
 * Fails with -EINVAL (bad name, trust domain mismatch, or a leaf that would outlive the
 * root), -ENOMEM, -EIO (wolfCrypt failed); err says which and names the field. */
int ca_issue(const struct ca_root *root, const struct ca_leaf_req *req, struct ca_pem *out,
             char *err, size_t errlen);

/* Frees what *pem owns (wiping the key) and zeroes it. NULL is fine. */
void ca_pem_free(struct ca_pem *pem);

/* Checks that key_pem (P-256; SEC 1 or unencrypted PKCS#8) is the private key of the first
 * certificate of cert_pem, e.g. key.pem and cert-chain.pem before a TLS context uses them:
 * wolfSSL 5.5.4's wolfSSL_CTX_check_private_key() passes any P-256 key with any P-256
 * certificate. Returns 0 or -EINVAL, err starting "certificate: " or "key: ". */
int ca_check_key_pair(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
                      char *err, size_t errlen);

/* A trust domain name: a DNS subdomain (lowercase RFC 1123, at most 253 characters), which
 * is also a valid SPIFFE trust domain. */
bool ca_is_trust_domain(const char *s);

/* Formats the mesh SPIFFE ID spiffe://<td>/ns/<ns>/sa/<sa> into out after checking each
 * part (the same rules as struct ca_leaf_req). Returns 0, -EINVAL naming the bad part, or
 * -ENOSPC when outlen is too small. */
int ca_mesh_id(const char *td, const char *ns, const char *sa, char *out, size_t outlen, char *err,
               size_t errlen);

/* Checks id[0..len) against SPIFFE-ID.md: "spiffe://", a trust domain of [a-z0-9._-] (no
 * port, no userinfo), and, when want_path, a non-empty path of non-empty segments of
 * [A-Za-z0-9._-] other than "." and "..", no trailing "/", no query, no fragment, no
 * percent-encoding; when !want_path there must be no path (a trust domain's own ID). At
 * most CA_SPIFFE_ID_MAX bytes. Returns 0 or -EINVAL with the reason. */
int ca_spiffe_id_check(const char *id, size_t len, bool want_path, char *err, size_t errlen);

/* Extracts the SPIFFE ID of a peer's leaf certificate der[0..len) by the X.509-SVID rules
 * (section 5.2): exactly one URI SAN (other SAN types are fine), which must be a valid
 * workload SPIFFE ID (ca_spiffe_id_check() with a path); the certificate must not be a CA
 * (basicConstraints cA=true) nor carry keyCertSign or cRLSign. Copies the ID, NUL-terminated,
 * into id (idlen >= CA_SPIFFE_ID_MAX + 1 always fits). Returns 0; -EINVAL with the reason
 * ("no URI SAN", "2 URI SANs", "not a spiffe URI: ...", "a CA certificate, not a workload
 * SVID", ...); -EBADMSG for DER that is not a certificate; -ENOSPC when id is too small.
 * It neither verifies the signature nor the validity dates: the TLS stack's chain
 * verification does that before this is asked. */
int ca_svid_id(const uint8_t *der, size_t len, char *id, size_t idlen, char *err, size_t errlen);

/* ca_svid_id() on a wolfSSL certificate (e.g. wolfSSL_get_peer_certificate()'s), which is
 * only read. */
int ca_svid_id_x509(struct WOLFSSL_X509 *x509, char *id, size_t idlen, char *err, size_t errlen);

/* ---- certificate signing requests (the sidecar asks ringmesh-xds for its SVID) ---------- */

/* A new ECDSA P-256 private key as PEM ("EC PRIVATE KEY", SEC 1 with the public key) in
 * *key_pem (malloc'd, NUL-terminated; the caller wipes and frees it). 0, -ENOMEM or -EIO. */
int ca_key_new(char **key_pem, char *err, size_t errlen);

/* Makes a PKCS#10 certificate request for key_pem[0..key_len) (a P-256 key, SEC 1 or
 * unencrypted PKCS#8 PEM, e.g. from ca_key_new()), signed with that key (ECDSA SHA-256),
 * subject O=ringmesh and nothing else: the CA takes the identity from the requester, never
 * from the CSR (xds/PROTOCOL.md, "CA"). *csr_pem receives the "CERTIFICATE REQUEST" PEM,
 * malloc'd and NUL-terminated; the caller frees it. Returns 0, -EINVAL (err "key: ..."),
 * -ENOMEM or -EIO. The sidecar calls this before POST /ringmesh.ca.v1/Sign. */
int ca_make_csr(const char *key_pem, size_t key_len, char **csr_pem, char *err, size_t errlen);

/* Issues a workload SVID for the public key of the PKCS#10 request csr_pem[0..csr_len)
 * (PEM): the CSR's self-signature must verify and its key must be P-256; everything else in
 * it (subject, extensions) is ignored. spiffe_id (a workload ID, ca_spiffe_id_check() with a
 * path, in the root's trust domain) is the one URI SAN; the leaf is made as ca_issue() makes
 * one, valid from now - CA_CLOCK_SKEW_S for ttl_s seconds (10..CA_LEAF_MAX_HOURS * 3600,
 * not past the root's expiry). *cert_pem receives the leaf's PEM (malloc'd; the caller
 * frees it). Returns 0, -EINVAL (err starts "csr: " for a bad request, else names the ID or
 * lifetime), -ENOMEM or -EIO. */
int ca_sign_csr(const struct ca_root *root, const char *csr_pem, size_t csr_len,
                const char *spiffe_id, unsigned ttl_s, time_t now, char **cert_pem, char *err,
                size_t errlen);

/* ---- bootstrap tokens (ringmeshctl ca token; checked by ringmesh-xds) ------------------- */

#define CA_TOKEN_KEY_LEN 32   /* bytes of HMAC-SHA256 key */
#define CA_TOKEN_MAX     512  /* a token's length, NUL included, always fits */
#define CA_TOKEN_FILE    "token-key" /* in the CA directory: the key, 64 hex digits */

/* A bootstrap token naming ns (a DNS label) and sa (a DNS subdomain), valid until expires:
 * "rm1_<ns>_<sa>_<expires, decimal seconds>_<hex HMAC-SHA256 of "rm1_<ns>_<sa>_<expires>"
 * with key>" ('_' is in neither name syntax and is a token68 character, so the token is a
 * valid Bearer credential). Written NUL-terminated into out (CA_TOKEN_MAX fits). 0 or
 * -EINVAL naming the bad part. */
int ca_token_make(const uint8_t key[CA_TOKEN_KEY_LEN], const char *ns, const char *sa,
                  time_t expires, char *out, size_t outlen, char *err, size_t errlen);

/* Checks token (NUL-terminated) against key at now: its MAC (compared in constant time),
 * its syntax and its expiry. Fills ns (at least 64 bytes) and sa (at least 254 bytes).
 * 0, or -EACCES with the reason ("malformed token", "bad signature", "expired at ..."). */
int ca_token_check(const uint8_t key[CA_TOKEN_KEY_LEN], const char *token, time_t now, char *ns,
                   size_t nslen, char *sa, size_t salen, char *err, size_t errlen);

/* Parses the token key file's text (64 hex digits, surrounding white space allowed).
 * 0 or -EINVAL. And makes a new random key into key_hex (65 bytes: hex + NUL). 0 or -EIO. */
int ca_token_key_parse(const char *text, size_t len, uint8_t key[CA_TOKEN_KEY_LEN]);
int ca_token_key_new(char key_hex[2 * CA_TOKEN_KEY_LEN + 1]);

#endif
