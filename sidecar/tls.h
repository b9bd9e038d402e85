/*
 * tls.h - mutual TLS between sidecars with wolfSSL: the workload's credentials (one
 * refcounted generation per load, published like config snapshots so a rotation
 * reaches new handshakes at once while open connections keep theirs) and one TLS
 * connection over memory buffers. wolfSSL never sees a socket: its I/O callbacks read
 * the ciphertext the loop received (tls_conn_feed) and hand the ciphertext it writes to
 * the caller's sink; the same code runs on both loop backends.
 *
 * Credentials come from a directory in Istio's /etc/certs layout: cert-chain.pem (the
 * workload's SVID first, then intermediates), key.pem, root-cert.pem (the trust bundle:
 * one or more roots, so a CA can rotate without an outage).
 *
 * Decisions:
 * - TLS 1.3 only. Cipher order ChaCha20-Poly1305 first, then AES-128-GCM: Debian's
 *   wolfSSL has no AES-NI and its ChaCha20-Poly1305 measured 2.2x faster here; with
 *   make WOLFSSL=fast (AES-NI) AES-128-GCM goes first (2.3x faster than ChaCha20 there).
 * - Both sides verify: the chain to the bundle (wolfSSL), then the peer's SPIFFE ID (one
 *   URI SAN, X.509-SVID rules) in our trust domain. A client also passes the identity it
 *   expects (exact SPIFFE IDs, or NULL for any in the trust domain).
 * - ALPN: "h2" for HTTP between sidecars, "ringmesh-tcp" for relayed TCP; the server
 *   accepts either and the caller asks which one was chosen.
 */
#ifndef RINGMESH_TLS_H
#define RINGMESH_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define TLS_ALPN_H2  "h2"
#define TLS_ALPN_TCP "ringmesh-tcp"
#define TLS_ID_MAX   512

struct tls_creds;
struct tls_conn;

/* Loads dir's cert-chain.pem, key.pem and root-cert.pem into a new generation (refs 1).
 * NULL with the file and the reason in err. */
struct tls_creds *tls_creds_load(const char *dir, char *err, size_t errlen);
void tls_creds_hold(struct tls_creds *c);
void tls_creds_release(struct tls_creds *c);
const char *tls_creds_id(const struct tls_creds *c);           /* our SPIFFE ID */
const char *tls_creds_trust_domain(const struct tls_creds *c); /* "cluster.local" */
time_t tls_creds_not_after(const struct tls_creds *c);         /* our SVID's expiry */

/* The current generation: published by the main thread, taken by workers for each new
 * handshake (one reference each). */
void tls_publish(struct tls_creds *c);
struct tls_creds *tls_acquire(void); /* NULL when mTLS is off (no --cert-dir) */
void tls_shutdown(void);
/* A thread that made handshakes is ending: wolfSSL's per-thread ECC fixed-point cache
 * (FP_ECC, about 7 MB after a few hundred handshakes) goes with it. */
void tls_thread_done(void);
/* Moves on every publication: a worker takes the new generation when it changed. */
uint64_t tls_generation(void);

/* Where a connection's ciphertext goes: appended to the socket's output. */
typedef int (*tls_sink)(void *arg, const char *p, size_t n);

/*
 * A connection. Client: sni names the destination service; alpn is TLS_ALPN_H2 or
 * TLS_ALPN_TCP; want_ids (n_want, may be 0; copied) are the SPIFFE IDs the server may
 * have, whole or as "/ns/N/sa/S" in our trust domain (else any in the domain); resume names the peer (its address) to resume a TLS
 * 1.3 session with: the credentials keep the last ticket per (resume, sni, alpn), taken
 * from the first records read after the handshake; NULL = full handshakes only. A
 * resumed session's peer identity is the one its full handshake proved, checked against
 * want_ids again. Server: sni/alpn/want/resume ignored; it issues tickets (encrypted with
 * a key of this credential generation, so a rotation ends resumption with the old one).
 * NULL on failure.
 */
struct tls_conn *tls_conn_new(struct tls_creds *c, bool server, const char *sni, const char *alpn,
                              const char *const *want_ids, size_t n_want, const char *resume,
                              tls_sink sink, void *sink_arg, char *err, size_t errlen);
void tls_conn_free(struct tls_conn *t);

/* Ciphertext read from the socket. 0 or -ENOMEM. */
int tls_conn_feed(struct tls_conn *t, const char *p, size_t n);
/* Advances the handshake with what was fed (writing via the sink). 1: established;
 * 0: needs more input; -1: failed (tls_conn_reason says why: the alert, the verify
 * error, or the identity check). */
int tls_conn_handshake(struct tls_conn *t);
bool tls_conn_established(const struct tls_conn *t);
/* Decrypted bytes into out. >0 bytes; 0 nothing more now; -EPIPE the peer closed
 * (close_notify); -EPROTO failure (reason set). */
ssize_t tls_conn_read(struct tls_conn *t, char *out, size_t cap);
/* Encrypts and writes all n bytes through the sink. 0, -EPROTO, -ENOMEM. */
int tls_conn_write(struct tls_conn *t, const char *p, size_t n);
/* After the handshake: the peer's SPIFFE ID, the ALPN chosen ("" if none), whether
 * the session was resumed. */
const char *tls_conn_peer_id(const struct tls_conn *t);
const char *tls_conn_alpn(const struct tls_conn *t);
bool tls_conn_resumed(const struct tls_conn *t);
/* The cipher suite in use ("TLS13-CHACHA20-POLY1305-SHA256"), "" before the handshake. */
const char *tls_conn_cipher(const struct tls_conn *t);
const char *tls_conn_reason(const struct tls_conn *t);
/* Why a handshake failed, as a class to count (the order of stats.h's STATS_TLS_FAIL_*). */
enum tls_fail {
    TLS_FAIL_UNTRUSTED,
    TLS_FAIL_EXPIRED,
    TLS_FAIL_NO_CERT,
    TLS_FAIL_NOT_SVID,
    TLS_FAIL_WRONG_ID,
    TLS_FAIL_CLOSED,
    TLS_FAIL_PROTOCOL,
};
enum tls_fail tls_conn_fail(const struct tls_conn *t);

#endif
