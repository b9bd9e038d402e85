/*
 * retry_test.c - sidecar/retry: the decision table for every retryOn value against every
 * outcome, methods, the never-retry flags, attempts, give-up response flags, backoff bounds
 * over many draws, the retry budget under a failure storm, attempt deadlines, and policies
 * from the model (DestinationPolicy and HTTPRoute retry).
 */
#include <stdint.h>
#include <string.h>

#include "model.h"
#include "prng.h"
#include "retry.h"
#include "tap.h"

static struct retry_outcome resp(int http, int grpc)
{
    return (struct retry_outcome){RETRY_OUT_RESPONSE, http, grpc};
}

static struct retry_outcome local(enum retry_outcome_kind k)
{
    return (struct retry_outcome){k, 0, -1};
}

/* Columns of the decision table. */
static const struct {
    const char *name;
    struct retry_outcome o;
} outcomes[] = {
    {"connect-failure", {RETRY_OUT_CONNECT_FAILURE, 0, -1}},
    {"refused-stream", {RETRY_OUT_REFUSED_STREAM, 0, -1}},
    {"reset", {RETRY_OUT_RESET, 0, -1}},
    {"per-try-timeout", {RETRY_OUT_PER_TRY_TIMEOUT, 0, -1}},
    {"route-timeout", {RETRY_OUT_TIMEOUT, 0, -1}},
    {"overflow", {RETRY_OUT_OVERFLOW, 0, -1}},
    {"no-healthy", {RETRY_OUT_NO_HEALTHY, 0, -1}},
    {"500", {RETRY_OUT_RESPONSE, 500, -1}},
    {"502", {RETRY_OUT_RESPONSE, 502, -1}},
    {"503", {RETRY_OUT_RESPONSE, 503, -1}},
    {"504", {RETRY_OUT_RESPONSE, 504, -1}},
    {"505", {RETRY_OUT_RESPONSE, 505, -1}},
    {"409", {RETRY_OUT_RESPONSE, 409, -1}},
    {"429", {RETRY_OUT_RESPONSE, 429, -1}},
    {"200", {RETRY_OUT_RESPONSE, 200, -1}},
    {"grpc 0", {RETRY_OUT_RESPONSE, 200, 0}},
    {"grpc 1 cancelled", {RETRY_OUT_RESPONSE, 200, 1}},
    {"grpc 2 unknown", {RETRY_OUT_RESPONSE, 200, 2}},
    {"grpc 4 deadline", {RETRY_OUT_RESPONSE, 200, 4}},
    {"grpc 8 exhausted", {RETRY_OUT_RESPONSE, 200, 8}},
    {"grpc 13 internal", {RETRY_OUT_RESPONSE, 200, 13}},
    {"grpc 14 unavailable", {RETRY_OUT_RESPONSE, 200, 14}},
};
#define N_OUT (sizeof(outcomes) / sizeof(outcomes[0]))

/* Rows: one retryOn value each; the string has one '1' per outcome it retries. */
static const struct {
    const char *name;
    uint32_t on;
    const char
        *want; /* CF RS RST PTT TO OV NH 500 502 503 504 505 409 429 200 g0 g1 g2 g4 g8 g13 g14 */
} rows[] = {
    {"connect-failure", MODEL_RETRY_CONNECT_FAILURE, "1000000000000000000000"},
    {"refused-stream", MODEL_RETRY_REFUSED_STREAM, "0100000000000000000000"},
    {"reset", MODEL_RETRY_RESET, "1111000000000000000000"},
    {"5xx", MODEL_RETRY_5XX, "1111000111110000000000"},
    {"gateway-error", MODEL_RETRY_GATEWAY_ERROR, "1111000011100000000000"},
    {"retriable-status-codes [409,503]", MODEL_RETRY_RETRIABLE_CODES, "0000000001001000000000"},
    {"cancelled", MODEL_RETRY_GRPC_CANCELLED, "0000000000000000100000"},
    {"deadline-exceeded", MODEL_RETRY_GRPC_DEADLINE, "0000000000000000001000"},
    {"resource-exhausted", MODEL_RETRY_GRPC_RESOURCE_EXHAUSTED, "0000000000000000000100"},
    {"internal", MODEL_RETRY_GRPC_INTERNAL, "0000000000000000000010"},
    {"unavailable", MODEL_RETRY_GRPC_UNAVAILABLE, "0000000000000000000001"},
    {"none", 0, "0000000000000000000000"},
    {"default (connect-failure,refused-stream)",
     MODEL_RETRY_CONNECT_FAILURE | MODEL_RETRY_REFUSED_STREAM, "1100000000000000000000"},
};

static void fresh(struct retry_state *st, const char *method)
{
    retry_state_init(st, method, strlen(method), 0, 0, 0);
    retry_attempt_start(st);
}

static void test_table(void)
{
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        struct retry_policy p;
        retry_policy_default(&p);
        p.retry_on = rows[r].on;
        retry_policy_add_code(&p, 409);
        retry_policy_add_code(&p, 503);
        ok(strlen(rows[r].want) == N_OUT, "row %s has one entry per outcome", rows[r].name);
        int bad = 0;
        for (size_t c = 0; c < N_OUT; c++) {
            struct retry_state st;
            fresh(&st, "GET");
            bool got = retry_should(&p, &st, &outcomes[c].o);
            bool want = rows[r].want[c] == '1';
            if (got != want) {
                bad++;
                printf("#   retryOn %s, outcome %s: got %d want %d\n", rows[r].name,
                       outcomes[c].name, got, want);
            }
            if (!got && st.why == RETRY_WHY_RETRY)
                bad++;
        }
        ok(!bad, "retryOn %s: decision for all %zu outcomes", rows[r].name, N_OUT);
    }
    struct retry_policy all;
    retry_policy_default(&all);
    all.retry_on = 0x7ff;
    const char *never[] = {"route-timeout", "overflow", "no-healthy"};
    for (size_t c = 0; c < N_OUT; c++)
        for (size_t k = 0; k < 3; k++)
            if (!strcmp(outcomes[c].name, never[k])) {
                struct retry_state st;
                fresh(&st, "GET");
                ok(!retry_should(&all, &st, &outcomes[c].o) && st.why == RETRY_WHY_NEVER,
                   "%s is never retried, even with every retryOn bit", never[k]);
            }
}

static void test_methods(void)
{
    static const struct {
        const char *m;
        bool idem;
    } t[] = {{"GET", 1},   {"HEAD", 1}, {"OPTIONS", 1}, {"PUT", 1},     {"DELETE", 1},
             {"TRACE", 1}, {"POST", 0}, {"PATCH", 0},   {"CONNECT", 0}, {"get", 0},
             {"GETX", 0},  {"GE", 0},   {"", 0}};
    struct retry_policy p;
    retry_policy_default(&p);
    struct retry_outcome cf = local(RETRY_OUT_CONNECT_FAILURE);
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct retry_state st;
        ok(retry_is_idempotent(t[i].m, strlen(t[i].m)) == t[i].idem, "'%s' idempotent=%d", t[i].m,
           t[i].idem);
        fresh(&st, t[i].m);
        bool got = retry_should(&p, &st, &cf);
        ok(got == t[i].idem && (got || st.why == RETRY_WHY_NON_IDEMPOTENT),
           "%s: connect failure retried only if idempotent", t[i].m[0] ? t[i].m : "(empty)");
    }
    p.retry_non_idempotent = true;
    struct retry_state st;
    fresh(&st, "POST");
    ok(retry_should(&p, &st, &cf), "POST retried with retryNonIdempotent");
    fresh(&st, "PATCH");
    ok(retry_should(&p, &st, &cf), "PATCH retried with retryNonIdempotent");
    /* method given by length, not NUL */
    ok(retry_is_idempotent("GETTING", 3), "method taken by length");
}

static void test_flags_and_attempts(void)
{
    struct retry_policy p;
    retry_policy_default(&p);
    p.retry_on = MODEL_RETRY_5XX;
    struct retry_outcome r503 = resp(503, -1);
    struct retry_state st;

    fresh(&st, "GET");
    st.flags |= RETRY_S_HEADERS_SENT;
    ok(!retry_should(&p, &st, &r503) && st.why == RETRY_WHY_HEADERS_SENT,
       "never after response headers went downstream");
    fresh(&st, "GET");
    st.flags |= RETRY_S_BODY_OVERFLOW;
    ok(!retry_should(&p, &st, &r503) && st.why == RETRY_WHY_BODY_TOO_LARGE,
       "never when the body outgrew the replay buffer");
    is_int(RETRY_REPLAY_MAX, 65536, "replay buffer is 64 KiB");

    /* attempts = 2: tries 1 and 2 may retry, the third may not */
    fresh(&st, "GET");
    ok(retry_should(&p, &st, &r503), "try 1 failed: retry");
    retry_attempt_start(&st);
    ok(retry_should(&p, &st, &r503), "try 2 failed: retry");
    retry_attempt_start(&st);
    ok(!retry_should(&p, &st, &r503), "try 3 failed: attempts used up");
    is_int(st.why, RETRY_WHY_ATTEMPTS, "why: attempts");
    is_str(retry_flag_str(st.flag), "URX", "503 after the last retry: URX");

    struct retry_outcome cf = local(RETRY_OUT_CONNECT_FAILURE);
    ok(!retry_should(&p, &st, &cf), "connect failure after the last retry");
    is_str(retry_flag_str(st.flag), "URX", "connect failure after the last retry: URX");
    struct retry_outcome ptt = local(RETRY_OUT_PER_TRY_TIMEOUT);
    ok(!retry_should(&p, &st, &ptt), "per-try timeout after the last retry");
    is_str(retry_flag_str(st.flag), "UT", "per-try timeout after the last retry: UT (504)");

    p.attempts = 0;
    fresh(&st, "GET");
    ok(!retry_should(&p, &st, &cf), "attempts 0: never retried");
    is_str(retry_flag_str(st.flag), "UF", "attempts 0: connect failure passes UF through");

    /* give-up flags when the outcome is not retriable */
    retry_policy_default(&p);
    p.retry_on = 0;
    static const struct {
        enum retry_outcome_kind k;
        const char *flag;
    } f[] = {{RETRY_OUT_CONNECT_FAILURE, "UF"}, {RETRY_OUT_REFUSED_STREAM, "UR"},
             {RETRY_OUT_RESET, "UR"},           {RETRY_OUT_PER_TRY_TIMEOUT, "UT"},
             {RETRY_OUT_TIMEOUT, "UT"},         {RETRY_OUT_OVERFLOW, "UO"},
             {RETRY_OUT_NO_HEALTHY, "UH"}};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        struct retry_outcome o = local(f[i].k);
        fresh(&st, "GET");
        retry_should(&p, &st, &o);
        is_str(retry_flag_str(st.flag), f[i].flag, "not retried: the outcome's own flag");
        is_str(retry_flag_str(retry_outcome_flag(&o)), f[i].flag, "retry_outcome_flag agrees");
    }
    fresh(&st, "GET");
    retry_should(&p, &st, &r503);
    is_str(retry_flag_str(st.flag), "-", "a non-retriable 503 goes downstream unflagged");

    static const struct {
        enum retry_flag f;
        const char *s;
    } names[] = {{RETRY_FLAG_NONE, "-"}, {RETRY_FLAG_UH, "UH"}, {RETRY_FLAG_UF, "UF"},
                 {RETRY_FLAG_UO, "UO"},  {RETRY_FLAG_UT, "UT"}, {RETRY_FLAG_URX, "URX"},
                 {RETRY_FLAG_UR, "UR"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        is_str(retry_flag_str(names[i].f), names[i].s, "retry_flag_str");
    is_str(retry_why_str(RETRY_WHY_BUDGET), "budget", "retry_why_str budget");
    is_str(retry_why_str(RETRY_WHY_DEADLINE), "deadline", "retry_why_str deadline");
    is_str(retry_why_str(RETRY_WHY_NON_IDEMPOTENT), "non_idempotent",
           "retry_why_str non_idempotent");
}

static void test_backoff(void)
{
    struct retry_policy p;
    retry_policy_default(&p);
    struct prng rng;
    prng_seed(&rng, 42);
    static const struct {
        uint32_t n;
        int64_t bound;
    } t[] = {{0, 25},   {1, 50},   {2, 100},  {3, 200},    {4, 250},         {5, 250},
             {10, 250}, {63, 250}, {64, 250}, {1000, 250}, {UINT32_MAX, 250}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int64_t lo = INT64_MAX, hi = -1;
        double sum = 0;
        const int draws = 100000;
        for (int k = 0; k < draws; k++) {
            int64_t d = retry_backoff_ms(&p, t[i].n, &rng);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
            sum += (double)d;
        }
        double mean = sum / draws, want = (double)(t[i].bound - 1) / 2;
        ok(lo == 0 && hi == t[i].bound - 1,
           "retry %u: 100k draws span [0, %lld) exactly (got %lld..%lld)", t[i].n,
           (long long)t[i].bound, (long long)lo, (long long)hi);
        ok(mean > want * 0.98 && mean < want * 1.02, "retry %u: mean %.2f ~ %.2f (full jitter)",
           t[i].n, mean, want);
    }
    p.backoff_base_ms = 100;
    p.backoff_max_ms = 1000;
    int64_t hi = 0;
    for (int k = 0; k < 10000; k++) {
        int64_t d = retry_backoff_ms(&p, 3, &rng);
        hi = d > hi ? d : hi;
    }
    ok(hi < 800 && hi > 780, "base 100: retry 3 below 800 (got max %lld)", (long long)hi);
    p.backoff_base_ms = INT64_MAX / 4;
    p.backoff_max_ms = INT64_MAX / 2;
    int64_t d = retry_backoff_ms(&p, 40, &rng);
    ok(d >= 0 && d < INT64_MAX / 2, "huge base does not overflow");
}

static void test_budget(void)
{
    struct retry_budget b;
    retry_budget_init(&b, 20, 10);
    int allowed = 0;
    for (int i = 0; i < 200; i++)
        allowed += retry_budget_withdraw(&b, 1000000);
    is_int(allowed, 100, "no traffic: the floor allows 10/s x 10 s = 100 retries");
    is_int(b.overflows, 100, "the rest counted as overflows");
    allowed = 0;
    for (int i = 0; i < 200; i++)
        allowed += retry_budget_withdraw(&b, 1000000 + 9999);
    is_int(allowed, 0, "still inside the same 10 s window: nothing more");
    allowed = 0;
    for (int i = 0; i < 200; i++)
        allowed += retry_budget_withdraw(&b, 1000000 + 10000);
    is_int(allowed, 100, "10 s later the second that held those 100 slid out: 100 more");

    retry_budget_init(&b, 20, 10);
    for (int i = 0; i < 1000; i++)
        retry_budget_request(&b, 5000000);
    allowed = 0;
    for (int i = 0; i < 1000; i++)
        allowed += retry_budget_withdraw(&b, 5000000);
    is_int(allowed, 300, "1000 requests: 20% = 200 plus the 100 floor");

    retry_budget_init(&b, 0, 0);
    for (int i = 0; i < 1000; i++)
        retry_budget_request(&b, 0);
    ok(!retry_budget_withdraw(&b, 0), "percent 0, floor 0: no retries at all");

    /* The failure storm: 1000 requests/s for 60 s, every attempt fails with a 503 and the
     * policy would retry each request twice. */
    struct retry_policy p;
    retry_policy_default(&p);
    p.retry_on = MODEL_RETRY_5XX;
    struct prng rng;
    prng_seed(&rng, 7);
    retry_budget_init(&b, p.budget_percent, p.budget_min_per_sec);
    struct retry_outcome r503 = resp(503, -1);
    uint64_t reqs = 0, retries = 0, block_req[6] = {0}, block_ret[6] = {0}, urx = 0;
    const int64_t t0 = 3600000; /* any monotonic origin, aligned to 10 s */
    for (int64_t ms = 0; ms < 60000; ms++) {
        int64_t now = t0 + ms;
        struct retry_state st;
        retry_state_init(&st, "GET", 3, now, 0, 0);
        retry_budget_request(&b, now);
        reqs++;
        block_req[ms / 10000]++;
        for (;;) {
            retry_attempt_start(&st);
            int64_t delay;
            if (!retry_decide(&p, &st, &r503, &b, &rng, now, &delay)) {
                urx += st.flag == RETRY_FLAG_URX;
                break;
            }
            retries++;
            block_ret[ms / 10000]++;
        }
    }
    int blocks_ok = 1;
    for (int i = 0; i < 6; i++)
        if (block_ret[i] * 100 > block_req[i] * 20 + 100 * 10 * 10) {
            blocks_ok = 0;
            printf("#   block %d: %llu retries for %llu requests\n", i,
                   (unsigned long long)block_ret[i], (unsigned long long)block_req[i]);
        }
    ok(blocks_ok, "storm: every 10 s block has retries <= 20%% of requests + 100");
    ok(retries * 100 <= reqs * 20 + 100 * 10 * 60,
       "storm: extra load %llu <= 20%% of %llu requests + 10/s x 60 s", (unsigned long long)retries,
       (unsigned long long)reqs);
    ok(retries * 100 >= reqs * 19, "storm: the budget is actually spent (%llu retries)",
       (unsigned long long)retries);
    is_int(urx, reqs, "storm: every request ends with URX");
    ok(b.overflows > 0, "storm: overflows counted (%llu)", (unsigned long long)b.overflows);

    /* A quiet service keeps its retries: 5 requests/s, two retries each = 10/s. */
    retry_budget_init(&b, 20, 10);
    reqs = retries = 0;
    for (int64_t ms = 0; ms < 30000; ms += 200) {
        int64_t now = t0 + ms;
        struct retry_state st;
        retry_state_init(&st, "GET", 3, now, 0, 0);
        retry_budget_request(&b, now);
        reqs++;
        for (;;) {
            retry_attempt_start(&st);
            int64_t delay;
            if (!retry_decide(&p, &st, &r503, &b, &rng, now, &delay))
                break;
            retries++;
        }
    }
    is_int(retries, 2 * reqs, "low rate: the 10/s floor covers every retry");
}

static void test_deadlines(void)
{
    struct retry_policy p;
    retry_policy_default(&p);
    struct retry_state st;

    retry_state_init(&st, "GET", 3, 1000, 0, 0);
    is_int(retry_attempt_deadline_ms(&p, &st, 1000), RETRY_NO_DEADLINE, "no timeouts: no deadline");
    retry_state_init(&st, "GET", 3, 1000, 5000, 0);
    is_int(retry_attempt_deadline_ms(&p, &st, 1200), 6000, "timeouts.request from the start");
    retry_state_init(&st, "GET", 3, 1000, 0, 300);
    is_int(retry_attempt_deadline_ms(&p, &st, 1200), 1500, "backendRequest from the attempt");
    p.per_try_timeout_ms = 200;
    is_int(retry_attempt_deadline_ms(&p, &st, 1200), 1400,
           "perTryTimeout below backendRequest wins");
    p.per_try_timeout_ms = 500;
    is_int(retry_attempt_deadline_ms(&p, &st, 1200), 1500,
           "backendRequest below perTryTimeout wins");
    retry_state_init(&st, "GET", 3, 1000, 0, 0);
    is_int(retry_attempt_deadline_ms(&p, &st, 1200), 1700, "perTryTimeout alone");
    retry_state_init(&st, "GET", 3, 1000, 1000, 0);
    is_int(retry_attempt_deadline_ms(&p, &st, 1800), 2000,
           "the overall deadline caps a late attempt's per-try timeout");
    ok(retry_attempt_deadline_ms(&p, &st, 2000) <= 2000, "at the overall deadline: out of time");
    retry_state_init(&st, "GET", 3, 1000, -1, -5);
    p.per_try_timeout_ms = 0;
    is_int(retry_attempt_deadline_ms(&p, &st, 1200), RETRY_NO_DEADLINE,
           "negative (unset) timeouts mean none");

    /* a retry whose backoff cannot end before the overall deadline gives up with UT */
    retry_policy_default(&p);
    p.retry_on = MODEL_RETRY_5XX;
    struct prng rng;
    prng_seed(&rng, 1);
    struct retry_outcome r503 = resp(503, -1), cf = local(RETRY_OUT_CONNECT_FAILURE);
    int64_t delay = -1;
    retry_state_init(&st, "GET", 3, 0, 100, 0);
    retry_attempt_start(&st);
    ok(!retry_decide(&p, &st, &r503, NULL, &rng, 100, &delay), "no time left: no retry");
    is_int(st.why, RETRY_WHY_DEADLINE, "why: deadline");
    is_str(retry_flag_str(st.flag), "UT", "flag UT");
    is_int(delay, 0, "no delay on give-up");
    retry_state_init(&st, "GET", 3, 0, 100, 0);
    retry_attempt_start(&st);
    ok(!retry_decide(&p, &st, &cf, NULL, &rng, 100, &delay) && st.flag == RETRY_FLAG_UT,
       "connect failure with no time left: UT");
    retry_state_init(&st, "GET", 3, 0, 10000, 0);
    retry_attempt_start(&st);
    ok(retry_decide(&p, &st, &r503, NULL, &rng, 100, &delay) && delay >= 0 && delay < 25,
       "time left: retry after a first backoff in [0, 25) ms (%lld)", (long long)delay);
    is_int(st.flag, RETRY_FLAG_NONE, "no flag on a retry");

    /* the budget is charged only when everything else said yes */
    struct retry_budget b;
    retry_budget_init(&b, 0, 0);
    retry_state_init(&st, "POST", 4, 0, 0, 0);
    retry_attempt_start(&st);
    ok(!retry_decide(&p, &st, &r503, &b, &rng, 0, &delay) && st.why == RETRY_WHY_NON_IDEMPOTENT,
       "non-idempotent refused before the budget");
    is_int(b.overflows, 0, "and the budget was not touched");
    retry_state_init(&st, "GET", 3, 0, 0, 0);
    retry_attempt_start(&st);
    ok(!retry_decide(&p, &st, &r503, &b, &rng, 0, &delay) && st.why == RETRY_WHY_BUDGET,
       "empty budget refuses");
    is_str(retry_flag_str(st.flag), "URX", "budget exhausted: URX");
}

static void test_policies(void)
{
    struct retry_policy p;
    retry_policy_default(&p);
    is_int(p.retry_on, MODEL_RETRY_CONNECT_FAILURE | MODEL_RETRY_REFUSED_STREAM,
           "default: connect-failure + refused-stream");
    is_int(p.attempts, 2, "default: 2 retries");
    is_int(p.backoff_base_ms, 25, "default base 25 ms");
    is_int(p.backoff_max_ms, 250, "default cap 250 ms");
    is_int(p.budget_percent, 20, "default budget 20%");
    is_int(p.budget_min_per_sec, 10, "default budget floor 10/s");
    ok(!p.retry_non_idempotent, "default: idempotent only");

    retry_policy_from_model(&p, NULL);
    is_int(p.retry_on, MODEL_RETRY_CONNECT_FAILURE | MODEL_RETRY_REFUSED_STREAM,
           "no DestinationPolicy: the defaults");

    struct model_destination_policy m;
    memset(&m, 0, sizeof(m));
    uint16_t codes[] = {409, 503, 600, 399};
    m.has_retries = true;
    m.retry_attempts = 4;
    m.per_try_timeout_ms = 1500;
    m.retry_on = MODEL_RETRY_RETRIABLE_CODES | MODEL_RETRY_GRPC_UNAVAILABLE;
    m.retriable_codes = codes;
    m.n_retriable_codes = 4;
    m.backoff_base_ms = 10;
    m.backoff_max_ms = 80;
    m.budget_percent = 50;
    m.budget_min_per_sec = 3;
    m.retry_non_idempotent = true;
    retry_policy_from_model(&p, &m);
    is_int(p.attempts, 4, "model attempts");
    is_int(p.per_try_timeout_ms, 1500, "model perTryTimeout");
    is_int(p.retry_on, MODEL_RETRY_RETRIABLE_CODES | MODEL_RETRY_GRPC_UNAVAILABLE, "model retryOn");
    is_int(p.backoff_base_ms, 10, "model backoff base");
    is_int(p.backoff_max_ms, 80, "model backoff max");
    is_int(p.budget_percent, 50, "model budget percent");
    is_int(p.budget_min_per_sec, 3, "model budget floor");
    ok(p.retry_non_idempotent, "model retryNonIdempotent");
    struct retry_state st;
    struct retry_outcome r409 = resp(409, -1), r500 = resp(500, -1), g14 = resp(200, 14);
    fresh(&st, "POST");
    ok(retry_should(&p, &st, &r409), "model codes: 409 retried");
    fresh(&st, "POST");
    ok(!retry_should(&p, &st, &r500), "model codes: 500 not retried");
    fresh(&st, "POST");
    ok(retry_should(&p, &st, &g14), "model: gRPC unavailable retried");

    struct model_route_retry rr;
    memset(&rr, 0, sizeof(rr));
    uint16_t rcodes[] = {500};
    retry_policy_default(&p);
    retry_policy_apply_route(&p, &rr);
    is_int(p.attempts, 2, "route retry block absent: nothing changes");
    rr.set = true;
    rr.codes = rcodes;
    rr.n_codes = 1;
    rr.attempts = 3;
    rr.backoff_ms = 100;
    retry_policy_apply_route(&p, &rr);
    is_int(p.attempts, 3, "route attempts override");
    is_int(p.backoff_base_ms, 100, "route backoff is the base");
    is_int(p.backoff_max_ms, 250, "max stays above the base");
    ok(p.retry_on & MODEL_RETRY_RETRIABLE_CODES, "route codes turn on retriable-status-codes");
    fresh(&st, "GET");
    ok(retry_should(&p, &st, &r500), "route codes: 500 retried");
    rr.attempts = -1;
    rr.backoff_ms = 400;
    retry_policy_apply_route(&p, &rr);
    is_int(p.attempts, 3, "route attempts unset (-1): kept");
    is_int(p.backoff_max_ms, 400, "a base above the max raises the max");
}

int main(void)
{
    test_table();
    test_methods();
    test_flags_and_attempts();
    test_backoff();
    test_budget();
    test_deadlines();
    test_policies();
    return tap_done();
}
