/*
 * stats.c - names of the counters in stats.h and their summing.
 */
#include "stats.h"

static const char *const dir_names[STATS_DIRS] = {"outbound", "inbound"};
static const char *const cx_names[STATS_CX_COUNT] = {
    "cx_total",
    "cx_closed",
    "cx_overflow",
    "cx_connect_fail",
    "cx_connect_timeout",
    "cx_idle_timeout",
    "cx_reset",
    "cx_no_original_dst",
    "cx_alloc_fail",
    "cx_service",
    "cx_no_healthy_upstream",
    "cx_connect_retry",
    "bytes_rx",
    "bytes_tx",
    "cx_http1",
    "cx_http2",
    "cx_tcp",
    "upstream_cx_http",
    "h2_conn_error",
    "rq_total",
    "rq_1xx",
    "rq_2xx",
    "rq_3xx",
    "rq_4xx",
    "rq_5xx",
    "rq_retry",
    "rq_retry_budget_exhausted",
    "rq_timeout",
    "rq_reset",
    "rq_flag_NR",
    "rq_flag_UH",
    "rq_flag_UF",
    "rq_flag_UO",
    "rq_flag_UT",
    "rq_flag_URX",
    "rq_flag_UC",
    "rq_flag_UR",
    "rq_flag_DC",
    "rq_flag_DPE",
    "rq_flag_NC",
    "rq_cancel_skipped",
    "rq_mirror",
    "rq_flag_RL",
    "tls_handshakes",
    "tls_resumed",
    "tls_handshake_failures",
    "tls_fail_untrusted",
    "tls_fail_expired",
    "tls_fail_no_cert",
    "tls_fail_not_svid",
    "tls_fail_wrong_identity",
    "tls_fail_closed",
    "tls_fail_protocol",
    "cx_mtls",
    "cx_plaintext",
    "cx_plaintext_refused",
    "rq_authz_denied",
    "cx_authz_denied",
};
static const char *const worker_names[STATS_WORKER_COUNT] = {
    "listener.accept_paused",
    "buffers.exhausted",
    "outlier.ejections",
    "retry.connect_failure",
    "retry.refused_stream",
    "retry.reset",
    "retry.status",
    "retry.per_try_timeout",
};

const char *stats_dir_name(enum stats_dir d)
{
    return dir_names[d];
}

const char *stats_cx_name(enum stats_cx c)
{
    return cx_names[c];
}

const char *stats_worker_name(enum stats_worker c)
{
    return worker_names[c];
}

void stats_accumulate(struct stats *sum, const struct stats *one)
{
    for (int d = 0; d < STATS_DIRS; d++)
        for (int c = 0; c < STATS_CX_COUNT; c++)
            sum->cx[d][c] += __atomic_load_n(&one->cx[d][c], __ATOMIC_RELAXED);
    for (int c = 0; c < STATS_WORKER_COUNT; c++)
        sum->w[c] += __atomic_load_n(&one->w[c], __ATOMIC_RELAXED);
    sum->buffers_in_use += __atomic_load_n(&one->buffers_in_use, __ATOMIC_RELAXED);
}
