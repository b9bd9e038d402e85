/*
 * retry.c - retry decisions, backoff, budget and deadlines (see retry.h).
 *
 * The budget formula. The window is the last RETRY_BUDGET_WINDOW_S (10) whole seconds,
 * the current one included, as one-second buckets of original requests R and retries X.
 * A retry is allowed when, counting it,
 *     100 * (X + 1) <= percent * R + 100 * min_per_sec * 10
 * i.e. retries stay within percent% of the requests seen in the last 10 s plus a floor of
 * min_per_sec per second, the floor sized over the whole window (as Linkerd's TTL'd
 * reserve: a quiet destination may spend its 10 s of floor in one burst). Retries do not
 * count as requests, so they cannot fund themselves. Over any aligned 10 s block the
 * extra load is therefore at most percent% of the requests + 10 x min_per_sec, whatever
 * the failure rate; with several workers each has its own budget (the caller may divide
 * min_per_sec among workers).
 */
#include "retry.h"

#include <string.h>

void retry_policy_default(struct retry_policy *p)
{
    *p = (struct retry_policy){
        .retry_on = MODEL_RETRY_CONNECT_FAILURE | MODEL_RETRY_REFUSED_STREAM,
        .attempts = RETRY_DEFAULT_ATTEMPTS,
        .per_try_timeout_ms = 0,
        .backoff_base_ms = RETRY_DEFAULT_BASE_MS,
        .backoff_max_ms = RETRY_DEFAULT_MAX_MS,
        .budget_percent = RETRY_DEFAULT_PERCENT,
        .budget_min_per_sec = RETRY_DEFAULT_MIN_PER_S,
    };
}

void retry_policy_add_code(struct retry_policy *p, int status)
{
    if (status < 400 || status > 599)
        return;
    unsigned bit = (unsigned)(status - 400);
    p->codes[bit / 64] |= 1ull << (bit % 64);
}

static bool has_code(const struct retry_policy *p, int status)
{
    if (status < 400 || status > 599)
        return false;
    unsigned bit = (unsigned)(status - 400);
    return p->codes[bit / 64] >> (bit % 64) & 1;
}

void retry_policy_from_model(struct retry_policy *p, const struct model_destination_policy *m)
{
    retry_policy_default(p);
    if (!m || !m->has_retries)
        return;
    p->retry_on = m->retry_on;
    p->attempts = m->retry_attempts > 0 ? (uint32_t)m->retry_attempts : 0;
    p->per_try_timeout_ms = m->per_try_timeout_ms > 0 ? m->per_try_timeout_ms : 0;
    if (m->backoff_base_ms > 0)
        p->backoff_base_ms = m->backoff_base_ms;
    p->backoff_max_ms =
        m->backoff_max_ms > p->backoff_base_ms ? m->backoff_max_ms : p->backoff_base_ms;
    p->budget_percent = m->budget_percent > 0 ? (uint32_t)m->budget_percent : 0;
    p->budget_min_per_sec = m->budget_min_per_sec > 0 ? (uint32_t)m->budget_min_per_sec : 0;
    p->retry_non_idempotent = m->retry_non_idempotent;
    for (size_t i = 0; i < m->n_retriable_codes; i++)
        retry_policy_add_code(p, m->retriable_codes[i]);
}

void retry_policy_apply_route(struct retry_policy *p, const struct model_route_retry *r)
{
    if (!r || !r->set)
        return;
    if (r->attempts >= 0)
        p->attempts = (uint32_t)r->attempts;
    if (r->n_codes) {
        p->retry_on |= MODEL_RETRY_RETRIABLE_CODES | MODEL_RETRY_CONNECT_FAILURE;
        for (size_t i = 0; i < r->n_codes; i++)
            retry_policy_add_code(p, r->codes[i]);
    }
    if (r->backoff_ms > 0) {
        p->backoff_base_ms = r->backoff_ms;
        if (p->backoff_max_ms < r->backoff_ms)
            p->backoff_max_ms = r->backoff_ms;
    }
}

bool retry_is_idempotent(const char *method, size_t len)
{
    static const char *const names[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && memcmp(names[i], method, len) == 0)
            return true;
    return false;
}

void retry_state_init(struct retry_state *st, const char *method, size_t method_len, int64_t now_ms,
                      int64_t request_timeout_ms, int64_t backend_timeout_ms)
{
    *st = (struct retry_state){
        .flags = method && retry_is_idempotent(method, method_len) ? RETRY_S_IDEMPOTENT : 0,
        .start_ms = now_ms,
        .request_timeout_ms = request_timeout_ms > 0 ? request_timeout_ms : 0,
        .backend_timeout_ms = backend_timeout_ms > 0 ? backend_timeout_ms : 0,
    };
}

void retry_attempt_start(struct retry_state *st)
{
    st->tries++;
}

enum retry_flag retry_outcome_flag(const struct retry_outcome *o)
{
    switch (o->kind) {
    case RETRY_OUT_CONNECT_FAILURE:
        return RETRY_FLAG_UF;
    case RETRY_OUT_REFUSED_STREAM:
    case RETRY_OUT_RESET:
        return RETRY_FLAG_UR;
    case RETRY_OUT_PER_TRY_TIMEOUT:
    case RETRY_OUT_TIMEOUT:
        return RETRY_FLAG_UT;
    case RETRY_OUT_OVERFLOW:
        return RETRY_FLAG_UO;
    case RETRY_OUT_NO_HEALTHY:
        return RETRY_FLAG_UH;
    case RETRY_OUT_RESPONSE:
        break;
    }
    return RETRY_FLAG_NONE;
}

static bool grpc_matches(uint32_t on, int grpc)
{
    switch (grpc) {
    case 1:
        return on & MODEL_RETRY_GRPC_CANCELLED;
    case 4:
        return on & MODEL_RETRY_GRPC_DEADLINE;
    case 8:
        return on & MODEL_RETRY_GRPC_RESOURCE_EXHAUSTED;
    case 13:
        return on & MODEL_RETRY_GRPC_INTERNAL;
    case 14:
        return on & MODEL_RETRY_GRPC_UNAVAILABLE;
    }
    return false;
}

/* Is the outcome itself in the policy's retryOn set? */
static bool retriable(const struct retry_policy *p, const struct retry_outcome *o)
{
    const uint32_t on = p->retry_on;
    const uint32_t no_response = MODEL_RETRY_RESET | MODEL_RETRY_5XX | MODEL_RETRY_GATEWAY_ERROR;
    switch (o->kind) {
    case RETRY_OUT_CONNECT_FAILURE:
        return on & (MODEL_RETRY_CONNECT_FAILURE | no_response);
    case RETRY_OUT_REFUSED_STREAM:
        return on & (MODEL_RETRY_REFUSED_STREAM | no_response);
    case RETRY_OUT_RESET:
    case RETRY_OUT_PER_TRY_TIMEOUT:
        return on & no_response;
    case RETRY_OUT_RESPONSE: {
        int s = o->http_status;
        if ((on & MODEL_RETRY_5XX) && s >= 500 && s <= 599)
            return true;
        if ((on & MODEL_RETRY_GATEWAY_ERROR) && s >= 502 && s <= 504)
            return true;
        if ((on & MODEL_RETRY_RETRIABLE_CODES) && has_code(p, s))
            return true;
        return o->grpc_status >= 0 && grpc_matches(on, o->grpc_status);
    }
    case RETRY_OUT_TIMEOUT:
    case RETRY_OUT_OVERFLOW:
    case RETRY_OUT_NO_HEALTHY:
        break;
    }
    return false;
}

static bool give_up(struct retry_state *st, const struct retry_outcome *o, enum retry_why why)
{
    enum retry_flag base = retry_outcome_flag(o);
    st->why = why;
    if (base == RETRY_FLAG_UO || base == RETRY_FLAG_UH || base == RETRY_FLAG_UT)
        st->flag = base; /* the 503/504 says what happened; UT outranks URX */
    else if (why == RETRY_WHY_ATTEMPTS || why == RETRY_WHY_BUDGET)
        st->flag = RETRY_FLAG_URX;
    else if (why == RETRY_WHY_DEADLINE)
        st->flag = RETRY_FLAG_UT;
    else
        st->flag = base;
    return false;
}

bool retry_should(const struct retry_policy *p, struct retry_state *st,
                  const struct retry_outcome *o)
{
    if (o->kind == RETRY_OUT_TIMEOUT || o->kind == RETRY_OUT_OVERFLOW ||
        o->kind == RETRY_OUT_NO_HEALTHY)
        return give_up(st, o, RETRY_WHY_NEVER);
    if (!retriable(p, o))
        return give_up(st, o, RETRY_WHY_NOT_RETRIABLE);
    if (st->flags & RETRY_S_HEADERS_SENT)
        return give_up(st, o, RETRY_WHY_HEADERS_SENT);
    if (st->flags & RETRY_S_BODY_OVERFLOW)
        return give_up(st, o, RETRY_WHY_BODY_TOO_LARGE);
    if (!(st->flags & RETRY_S_IDEMPOTENT) && !p->retry_non_idempotent)
        return give_up(st, o, RETRY_WHY_NON_IDEMPOTENT);
    /* tries counts the first attempt; attempts counts only retries. With attempts 0 the
     * policy retries nothing, so nothing "ran out" (no URX). */
    if (st->tries > p->attempts)
        return give_up(st, o, p->attempts ? RETRY_WHY_ATTEMPTS : RETRY_WHY_NOT_RETRIABLE);
    st->why = RETRY_WHY_RETRY;
    st->flag = RETRY_FLAG_NONE;
    return true;
}

bool retry_decide(const struct retry_policy *p, struct retry_state *st,
                  const struct retry_outcome *o, struct retry_budget *b, struct prng *rng,
                  int64_t now_ms, int64_t *delay_ms)
{
    *delay_ms = 0;
    if (!retry_should(p, st, o))
        return false;
    int64_t delay = retry_backoff_ms(p, st->tries ? st->tries - 1 : 0, rng);
    if (st->request_timeout_ms && now_ms + delay >= st->start_ms + st->request_timeout_ms)
        return give_up(st, o, RETRY_WHY_DEADLINE);
    if (b && !retry_budget_withdraw(b, now_ms))
        return give_up(st, o, RETRY_WHY_BUDGET);
    *delay_ms = delay;
    return true;
}

int64_t retry_backoff_ms(const struct retry_policy *p, uint32_t n, struct prng *rng)
{
    int64_t base = p->backoff_base_ms > 0 ? p->backoff_base_ms : RETRY_DEFAULT_BASE_MS;
    int64_t cap = p->backoff_max_ms >= base ? p->backoff_max_ms : base;
    /* base * 2^n, stopping at the cap before it can overflow */
    int64_t bound = base;
    for (uint32_t i = 0; i < n && bound < cap; i++)
        bound *= 2;
    if (bound > cap)
        bound = cap;
    return (int64_t)prng_below(rng, (uint64_t)bound);
}

int64_t retry_attempt_deadline_ms(const struct retry_policy *p, const struct retry_state *st,
                                  int64_t now_ms)
{
    int64_t deadline = RETRY_NO_DEADLINE;
    if (st->request_timeout_ms)
        deadline = st->start_ms + st->request_timeout_ms;
    int64_t per_try = st->backend_timeout_ms;
    if (p->per_try_timeout_ms > 0 && (!per_try || p->per_try_timeout_ms < per_try))
        per_try = p->per_try_timeout_ms;
    if (per_try && now_ms + per_try < deadline)
        deadline = now_ms + per_try;
    return deadline;
}

const char *retry_flag_str(enum retry_flag f)
{
    switch (f) {
    case RETRY_FLAG_NONE:
        return "-";
    case RETRY_FLAG_UH:
        return "UH";
    case RETRY_FLAG_UF:
        return "UF";
    case RETRY_FLAG_UO:
        return "UO";
    case RETRY_FLAG_UT:
        return "UT";
    case RETRY_FLAG_URX:
        return "URX";
    case RETRY_FLAG_UR:
        return "UR";
    }
    return "?";
}

const char *retry_why_str(enum retry_why w)
{
    switch (w) {
    case RETRY_WHY_RETRY:
        return "retry";
    case RETRY_WHY_NOT_RETRIABLE:
        return "not_retriable";
    case RETRY_WHY_NEVER:
        return "never";
    case RETRY_WHY_NON_IDEMPOTENT:
        return "non_idempotent";
    case RETRY_WHY_HEADERS_SENT:
        return "headers_sent";
    case RETRY_WHY_BODY_TOO_LARGE:
        return "body_too_large";
    case RETRY_WHY_ATTEMPTS:
        return "attempts";
    case RETRY_WHY_BUDGET:
        return "budget";
    case RETRY_WHY_DEADLINE:
        return "deadline";
    }
    return "?";
}

void retry_budget_init(struct retry_budget *b, uint32_t percent, uint32_t min_per_sec)
{
    *b =
        (struct retry_budget){.percent = percent > 100 ? 100 : percent, .min_per_sec = min_per_sec};
}

/* Moves the window so its newest bucket is now's second, zeroing the buckets that slid
 * out. A clock that goes backwards is treated as "still the newest second". */
static unsigned advance(struct retry_budget *b, int64_t now_ms)
{
    int64_t s = now_ms >= 0 ? now_ms / 1000 : -((-now_ms + 999) / 1000);
    if (s > b->head_s) {
        int64_t gap = s - b->head_s;
        if (gap >= RETRY_BUDGET_WINDOW_S) {
            memset(b->requests, 0, sizeof(b->requests));
            memset(b->retries, 0, sizeof(b->retries));
        } else {
            for (int64_t t = b->head_s + 1; t <= s; t++) {
                unsigned i = (unsigned)(t % RETRY_BUDGET_WINDOW_S);
                b->requests[i] = 0;
                b->retries[i] = 0;
            }
        }
        b->head_s = s;
    }
    int64_t m = b->head_s % RETRY_BUDGET_WINDOW_S;
    return (unsigned)(m < 0 ? m + RETRY_BUDGET_WINDOW_S : m);
}

void retry_budget_request(struct retry_budget *b, int64_t now_ms)
{
    unsigned i = advance(b, now_ms);
    if (b->requests[i] < UINT32_MAX)
        b->requests[i]++;
}

bool retry_budget_withdraw(struct retry_budget *b, int64_t now_ms)
{
    unsigned cur = advance(b, now_ms);
    uint64_t r = 0, x = 0;
    for (unsigned i = 0; i < RETRY_BUDGET_WINDOW_S; i++) {
        r += b->requests[i];
        x += b->retries[i];
    }
    uint64_t allowed = (uint64_t)b->percent * r + 100ull * b->min_per_sec * RETRY_BUDGET_WINDOW_S;
    if (100 * (x + 1) > allowed) {
        b->overflows++;
        return false;
    }
    if (b->retries[cur] < UINT32_MAX)
        b->retries[cur]++;
    return true;
}
