/*
 * retry.h - retry policy arithmetic: whether a failed attempt may be retried, how long to
 * back off, whether the destination's retry budget allows it, the deadline of the next
 * attempt and the response flag to report when giving up. Pure: no I/O, no clock (time is
 * now_ms, any monotonic milliseconds), randomness from the caller's struct prng.
 *
 * Ownership and threads: struct retry_policy is compiled once per cluster/route into the
 * config snapshot (immutable afterwards, any thread may read it); struct retry_state lives
 * in one request; struct retry_budget is per destination and per worker (one thread, no
 * atomics). Nothing here allocates.
 *
 * Envoy semantics (CONVENTIONS.md section 8), with ringmesh's decisions:
 * - retryOn uses xds/model.h's MODEL_RETRY_* bits. connect-failure: TCP connect failed or
 *   timed out. refused-stream: HTTP/2 REFUSED_STREAM. reset: no response at all (connect
 *   failure, refused stream, reset, per-try timeout). 5xx: any 5xx status plus everything
 *   reset covers. gateway-error: 502/503/504 plus everything reset covers (Envoy retries
 *   resets under gateway-error too, since it would answer them with a 503).
 *   retriable-status-codes: the listed statuses. The gRPC names match the grpc-status of a
 *   trailers-only response (status in the headers; never in trailers, which come after the
 *   headers went downstream).
 * - Never retried: an overall (route) timeout, a local overflow (UO), no healthy endpoint
 *   (UH), anything after response headers went downstream, a request whose body outgrew the
 *   replay buffer (RETRY_REPLAY_MAX), a non-idempotent method unless retryNonIdempotent.
 *   Idempotent: GET, HEAD, OPTIONS, PUT, DELETE, TRACE (RFC 9110 9.2.2; case-sensitive).
 * - Default with no DestinationPolicy: connect-failure + refused-stream, 2 retries.
 */
#ifndef RINGMESH_RETRY_H
#define RINGMESH_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* For the MODEL_RETRY_* bits and the policy structs; sidecar objects have no -Ixds. */
#include "model.h"
#include "prng.h"

#define RETRY_REPLAY_MAX        (64 * 1024) /* bytes of request body kept for a replay */
#define RETRY_DEFAULT_ATTEMPTS  2
#define RETRY_DEFAULT_BASE_MS   25
#define RETRY_DEFAULT_MAX_MS    250
#define RETRY_DEFAULT_PERCENT   20
#define RETRY_DEFAULT_MIN_PER_S 10
#define RETRY_BUDGET_WINDOW_S   10 /* seconds in the budget's sliding window */
#define RETRY_NO_DEADLINE       INT64_MAX

/* The compiled policy of one destination (and route). Fill with retry_policy_default(),
 * retry_policy_from_model() and optionally retry_policy_apply_route(). */
struct retry_policy {
    uint32_t retry_on;          /* MODEL_RETRY_* bits */
    uint32_t attempts;          /* retries after the first try; 0 = never retry */
    int64_t per_try_timeout_ms; /* 0 = none */
    int64_t backoff_base_ms;    /* > 0 */
    int64_t backoff_max_ms;     /* >= base */
    uint32_t budget_percent;    /* 0..100 */
    uint32_t budget_min_per_sec;
    bool retry_non_idempotent;
    uint64_t codes[4]; /* retriable statuses: bit (status - 400) for 400..599 */
};

/* What ended one attempt. */
enum retry_outcome_kind {
    RETRY_OUT_CONNECT_FAILURE, /* TCP/TLS connect failed or timed out */
    RETRY_OUT_REFUSED_STREAM,  /* HTTP/2 RST_STREAM or GOAWAY with REFUSED_STREAM */
    RETRY_OUT_RESET,           /* the stream or connection reset before response headers */
    RETRY_OUT_RESPONSE,        /* response headers arrived: http_status, grpc_status */
    RETRY_OUT_PER_TRY_TIMEOUT, /* this attempt's own timeout fired */
    RETRY_OUT_TIMEOUT,         /* the route's overall timeout fired: never retried */
    RETRY_OUT_OVERFLOW,        /* connection-pool limit hit locally: never retried */
    RETRY_OUT_NO_HEALTHY,      /* the load balancer had no endpoint: never retried */
};

struct retry_outcome {
    enum retry_outcome_kind kind;
    int http_status; /* RETRY_OUT_RESPONSE only */
    int grpc_status; /* grpc-status in the response headers, or -1 */
};

/* Envoy response flags this module can report (CONVENTIONS.md section 3). */
enum retry_flag {
    RETRY_FLAG_NONE, /* "-": the upstream response goes downstream as it is */
    RETRY_FLAG_UH,   /* no healthy upstream (503) */
    RETRY_FLAG_UF,   /* upstream connect failure (503) */
    RETRY_FLAG_UO,   /* upstream overflow (503) */
    RETRY_FLAG_UT,   /* upstream request timeout (504) */
    RETRY_FLAG_URX,  /* retry limit (attempts or budget) reached */
    RETRY_FLAG_UR,   /* upstream remote reset (503) */
};

/* Why retry_should / retry_decide said what they said (one counter each). */
enum retry_why {
    RETRY_WHY_RETRY,          /* retry it */
    RETRY_WHY_NOT_RETRIABLE,  /* the outcome is not in retryOn (or a success) */
    RETRY_WHY_NEVER,          /* overall timeout, overflow, no healthy endpoint */
    RETRY_WHY_NON_IDEMPOTENT, /* the method may have had effects */
    RETRY_WHY_HEADERS_SENT,   /* response headers already went downstream */
    RETRY_WHY_BODY_TOO_LARGE, /* the body outgrew the replay buffer */
    RETRY_WHY_ATTEMPTS,       /* policy attempts used up */
    RETRY_WHY_BUDGET,         /* the destination's retry budget is spent */
    RETRY_WHY_DEADLINE,       /* the backoff would end past the overall deadline */
};

#define RETRY_S_IDEMPOTENT    (1u << 0) /* set by retry_state_init from the method */
#define RETRY_S_HEADERS_SENT  (1u << 1) /* the caller sets it when headers go downstream */
#define RETRY_S_BODY_OVERFLOW (1u << 2) /* the caller sets it past RETRY_REPLAY_MAX */

/* One request's retry bookkeeping; plain data inside the caller's stream. */
struct retry_state {
    uint32_t flags;             /* RETRY_S_* */
    uint32_t tries;             /* attempts started (1 after the first retry_attempt_start) */
    int64_t start_ms;           /* when the request started (timeouts.request counts from it) */
    int64_t request_timeout_ms; /* route timeouts.request; 0 = none */
    int64_t backend_timeout_ms; /* route timeouts.backendRequest; 0 = none */
    enum retry_why why;         /* the last decision's reason */
    enum retry_flag flag;       /* the flag to report if the last decision was to give up */
};

/* A sliding window of RETRY_BUDGET_WINDOW_S one-second buckets (see retry.c for the
 * formula). Per destination, per worker. */
struct retry_budget {
    uint32_t percent;
    uint32_t min_per_sec;
    int64_t head_s; /* the second of the newest bucket */
    uint32_t requests[RETRY_BUDGET_WINDOW_S];
    uint32_t retries[RETRY_BUDGET_WINDOW_S];
    uint64_t overflows; /* retries refused */
};

/* The no-DestinationPolicy defaults: connect-failure + refused-stream, 2 retries, 25/250 ms
 * backoff, budget 20% + 10/s, idempotent methods only, no per-try timeout. */
void retry_policy_default(struct retry_policy *p);

/* From a DestinationPolicy's retries block; NULL or has_retries false gives the defaults. */
void retry_policy_from_model(struct retry_policy *p, const struct model_destination_policy *m);

/* Overlays an HTTPRoute rule's retry block (GEP-1731) when r->set: attempts when set,
 * codes (adding retriable-status-codes and connect-failure, since Gateway API retries
 * connection errors too), backoff as the base interval (max stays >= base). */
void retry_policy_apply_route(struct retry_policy *p, const struct model_route_retry *r);

/* Adds status (400..599, others ignored) to the retriable codes; does not touch retry_on. */
void retry_policy_add_code(struct retry_policy *p, int status);

/* Whether the method (len bytes, not NUL-terminated) is idempotent in RFC 9110's sense. */
bool retry_is_idempotent(const char *method, size_t len);

/* Starts a request's state at now_ms with the route's timeouts (0 or negative = none). */
void retry_state_init(struct retry_state *st, const char *method, size_t method_len, int64_t now_ms,
                      int64_t request_timeout_ms, int64_t backend_timeout_ms);

/* Counts an attempt as started (call before each try, the first included). */
void retry_attempt_start(struct retry_state *st);

/* The pure predicate: may this outcome be retried under p, given st's flags and tries?
 * Budget and deadline are not considered. Sets st->why and st->flag. */
bool retry_should(const struct retry_policy *p, struct retry_state *st,
                  const struct retry_outcome *o);

/* The whole decision after a failed attempt at now_ms: retry_should, then the backoff
 * drawn from rng must end before the overall deadline, then the budget must allow it (it
 * is charged only when everything else said yes). true: wait *delay_ms, then
 * retry_attempt_start and go (prefer another endpoint: lb exclude hint). false: st->flag
 * is the flag to report and st->why the counter to bump. b may be NULL (no budget). */
bool retry_decide(const struct retry_policy *p, struct retry_state *st,
                  const struct retry_outcome *o, struct retry_budget *b, struct prng *rng,
                  int64_t now_ms, int64_t *delay_ms);

/* Full-jitter exponential backoff before retry number n (0 for the first retry):
 * uniform in [0, min(max, base * 2^n)) ms. */
int64_t retry_backoff_ms(const struct retry_policy *p, uint32_t n, struct prng *rng);

/* The absolute deadline (ms) of an attempt starting at now_ms: the earliest of
 * start + timeouts.request and now + the per-attempt timeout (the smaller of
 * timeouts.backendRequest and perTryTimeout that are set). RETRY_NO_DEADLINE when none
 * applies. A result <= now_ms means the request is already out of time (flag UT). */
int64_t retry_attempt_deadline_ms(const struct retry_policy *p, const struct retry_state *st,
                                  int64_t now_ms);

/* The flag an outcome carries on its own when nothing is retried (UF, UR, UT, UO, UH, or
 * NONE for a response). */
enum retry_flag retry_outcome_flag(const struct retry_outcome *o);

/* Envoy's spelling: "-", "UH", "UF", "UO", "UT", "URX", "UR". */
const char *retry_flag_str(enum retry_flag f);

/* "retry", "not_retriable", ... for logs and counter names. */
const char *retry_why_str(enum retry_why w);

/* Empties the budget and sets its parameters. */
void retry_budget_init(struct retry_budget *b, uint32_t percent, uint32_t min_per_sec);

/* Counts one original request (not a retry) at now_ms; call at each request's start. */
void retry_budget_request(struct retry_budget *b, int64_t now_ms);

/* Whether one more retry fits the budget at now_ms; when it does it is counted. */
bool retry_budget_withdraw(struct retry_budget *b, int64_t now_ms);

#endif
