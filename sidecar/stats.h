/*
 * stats.h - the sidecar's counters. Each worker owns one struct stats and is its only
 * writer; the admin thread sums all workers' when scraped. Writes are relaxed atomic
 * stores of a plain increment (a normal mov on x86: no lock prefix), reads relaxed loads,
 * so there is no data race and no cost on the data path.
 */
#ifndef RINGMESH_STATS_H
#define RINGMESH_STATS_H

#include <stddef.h>
#include <stdint.h>

enum stats_dir { STATS_OUTBOUND, STATS_INBOUND, STATS_DIRS };

/* Per-direction counters; names in stats.c. */
enum stats_cx {
    STATS_CX_TOTAL,           /* accepted downstream connections */
    STATS_CX_CLOSED,          /* relays finished (any reason) */
    STATS_CX_OVERFLOW,        /* accepted and closed at once: --max-connections */
    STATS_CX_CONNECT_FAIL,    /* upstream connect failed (not timeouts) */
    STATS_CX_CONNECT_TIMEOUT, /* upstream connect timed out */
    STATS_CX_IDLE_TIMEOUT,    /* closed after --idle-timeout-ms without traffic */
    STATS_CX_RESET,           /* a reset from either side, propagated to the other */
    STATS_CX_NO_ORIGINAL_DST, /* not redirected and no --static-dst: closed */
    STATS_CX_ALLOC_FAIL,      /* no memory for the relay or socket: closed */
    STATS_CX_SERVICE,         /* outbound to a Service VIP: balanced over its endpoints */
    STATS_CX_NO_HEALTHY,      /* to a Service with no usable endpoint (UH): reset */
    STATS_CX_CONNECT_RETRY,   /* a failed connect retried on another endpoint */
    STATS_BYTES_RX,           /* from downstream */
    STATS_BYTES_TX,           /* to downstream */
    /* HTTP (http.h) */
    STATS_CX_HTTP1,         /* downstream connections that spoke HTTP/1.x */
    STATS_CX_HTTP2,         /* ...HTTP/2 */
    STATS_CX_TCP,           /* sniffed and found opaque (or server-first): relayed as TCP */
    STATS_UPSTREAM_CX_HTTP, /* upstream HTTP connections opened (pools) */
    STATS_H2_CONN_ERROR,    /* HTTP/2 connections closed for a protocol error or an attack */
    STATS_RQ_TOTAL,         /* requests answered (counted once, at their end) */
    STATS_RQ_1XX,
    STATS_RQ_2XX,
    STATS_RQ_3XX,
    STATS_RQ_4XX,
    STATS_RQ_5XX,
    STATS_RQ_RETRY,        /* retries started */
    STATS_RQ_RETRY_BUDGET, /* retries refused by the retry budget */
    STATS_RQ_TIMEOUT,      /* requests that ran out of time (UT) */
    STATS_RQ_RESET,        /* responses cut short after their headers went out */
    STATS_RQ_FLAG_NR,      /* local replies and failures by Envoy response flag */
    STATS_RQ_FLAG_UH,
    STATS_RQ_FLAG_UF,
    STATS_RQ_FLAG_UO,
    STATS_RQ_FLAG_UT,
    STATS_RQ_FLAG_URX,
    STATS_RQ_FLAG_UC,
    STATS_RQ_FLAG_UR,
    STATS_RQ_FLAG_DC,
    STATS_RQ_FLAG_DPE,
    STATS_RQ_FLAG_NC,
    STATS_RQ_CANCEL_SKIPPED,    /* abandoned upstream streams left to finish (reset budget) */
    STATS_RQ_MIRROR,            /* RequestMirror copies started */
    STATS_RQ_FLAG_RL,           /* 429: a connection's request rate (--max-request-rate) */
    STATS_TLS_HANDSHAKE,        /* mTLS handshakes completed (upstream and downstream) */
    STATS_TLS_RESUMED,          /* ...of them resumed a session */
    STATS_TLS_FAIL,             /* handshakes failed: untrusted, expired, wrong identity... */
    /* ...by reason (enum tls_fail order): */
    STATS_TLS_FAIL_UNTRUSTED,   /* the chain does not reach the bundle (another CA, bad signature) */
    STATS_TLS_FAIL_EXPIRED,     /* expired or not yet valid */
    STATS_TLS_FAIL_NO_CERT,     /* the peer sent no certificate */
    STATS_TLS_FAIL_NOT_SVID,    /* no SPIFFE URI SAN, two, or one that breaks the SVID rules */
    STATS_TLS_FAIL_WRONG_ID,    /* another trust domain, or not an identity of the service */
    STATS_TLS_FAIL_CLOSED,      /* the peer closed during the handshake (often: it refused us) */
    STATS_TLS_FAIL_PROTOCOL,    /* anything else: an alert, a protocol or cipher error */
    STATS_CX_MTLS,              /* inbound connections that came with mTLS */
    STATS_CX_PLAINTEXT,         /* inbound plaintext accepted (PERMISSIVE, or no mTLS) */
    STATS_CX_PLAINTEXT_REFUSED, /* inbound plaintext closed (STRICT) */
    STATS_RQ_AUTHZ_DENIED,      /* inbound requests denied by AuthorizationPolicy (403) */
    STATS_CX_AUTHZ_DENIED,      /* inbound TCP connections denied (closed) */
    STATS_CX_COUNT
};

/* Worker-wide counters. */
enum stats_worker {
    STATS_ACCEPT_PAUSED,     /* accept paused for EMFILE/ENFILE/ENOMEM */
    STATS_BUFFERS_EXHAUSTED, /* a recv found the buffer pool empty */
    STATS_OUTLIER_EJECTIONS, /* endpoints ejected by outlier detection */
    /* retries started, by what the failed attempt ran into (enum retry_outcome_kind order) */
    STATS_RETRY_CONNECT_FAILURE,
    STATS_RETRY_REFUSED_STREAM,
    STATS_RETRY_RESET,
    STATS_RETRY_STATUS,
    STATS_RETRY_PER_TRY_TIMEOUT,
    STATS_WORKER_COUNT
};

struct stats {
    uint64_t cx[STATS_DIRS][STATS_CX_COUNT];
    uint64_t w[STATS_WORKER_COUNT];
    uint64_t buffers_in_use; /* gauge: pool buffers held by relays (set each tick) */
} __attribute__((aligned(64)));

#define STATS_ADD(p, v) __atomic_store_n((p), *(p) + (v), __ATOMIC_RELAXED)
#define STATS_INC(p)    STATS_ADD(p, 1)

const char *stats_dir_name(enum stats_dir d);
const char *stats_cx_name(enum stats_cx c);
const char *stats_worker_name(enum stats_worker c);
/* sum += one worker's counters (relaxed loads). */
void stats_accumulate(struct stats *sum, const struct stats *one);

#endif
