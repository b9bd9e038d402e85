/*
 * options.h - the sidecar's command line: parsed and validated here, pure (no I/O
 * besides reading the environment for defaults), so tests can feed it argv arrays.
 */
#ifndef RINGMESH_OPTIONS_H
#define RINGMESH_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loop.h"

#define OPTIONS_MAX_LABELS 64

struct sidecar_options {
    enum loop_io_choice io;
    int concurrency;              /* workers; 0 = CPUs available */
    unsigned short outbound_port; /* 15001 */
    unsigned short inbound_port;  /* 15006 */
    unsigned short admin_port;    /* 15000, on 127.0.0.1 */
    unsigned short stats_port;    /* 15090 */
    unsigned short health_port;   /* 15021 */
    unsigned connect_timeout_ms;
    unsigned idle_timeout_ms;  /* 0 = none */
    unsigned max_request_rate; /* requests a second per downstream connection; 0 = any */
    unsigned sniff_timeout_ms; /* first bytes awaited before a connection is opaque TCP */
    unsigned max_connections;  /* downstream connections, both directions */
    unsigned drain_seconds;
    unsigned buffer_bytes; /* queued bytes per direction before reading pauses */
    unsigned buf_count;    /* pool buffers per worker (power of two) */
    unsigned buf_size;     /* bytes per pool buffer */
    bool has_static_dst;
    struct sockaddr_storage static_dst;
    socklen_t static_dst_len;
    int log_level;
    /* The access log (accesslog.h, docs/tracing.md). */
    const char *access_log;      /* --access-log: a file, "-" for standard output; NULL = off */
    double access_log_sample;    /* --access-log-sample: fraction of requests, (0, 1]; 1 */
    bool access_log_errors_only; /* --access-log-errors-only: status >= 400, 0 or a flag */
    const char *cert_dir;         /* --cert-dir, $RINGMESH_CERT_DIR: mTLS credentials; NULL = off */
    const char *config_path; /* --config: the resource model file; NULL = none */
    const char *xds_url;     /* --xds: the control plane; NULL = none (not with --config) */
    const char *xds_cache;   /* --xds-cache: the last good xDS resource set; NULL = none */
    const char *xds_token;   /* --xds-token: bootstrap token for the mesh CA; NULL = none */
    /* The workload's identity, from flags or the usual env vars (Istio's names). */
    const char *pod_name;        /* --pod-name, $POD_NAME */
    const char *pod_namespace;   /* --pod-namespace, $POD_NAMESPACE; default "default" */
    const char *service_account; /* --service-account, $SERVICE_ACCOUNT; default "default" */
    const char *pod_ip;          /* --pod-ip, $INSTANCE_IP or $POD_IP; numeric */
    /* --pod-labels, $POD_LABELS: "k=v,k2=v2" or "@FILE" (the Downward API's labels file);
     * what PeerAuthentication selectors match. Strings live in pod_labels_buf. */
    struct { const char *key, *value; } pod_labels[OPTIONS_MAX_LABELS];
    size_t n_pod_labels;
    char pod_labels_buf[8192];
    const char *workload_name; /* --workload-name, $WORKLOAD_NAME; NULL = from the pod name */
    /* Per-request metrics (metrics.h). */
    bool metrics_off;             /* --no-metrics */
    const char *metrics_prefix;   /* --metrics-prefix ringmesh|istio */
    uint32_t metrics_labels;      /* --metrics-labels: mask of enum metrics_label */
    unsigned metrics_max_series;  /* --metrics-max-series */
    unsigned metrics_idle_s;      /* --metrics-idle-seconds; 0 = never evicted */
};

enum options_result { OPTIONS_OK, OPTIONS_HELP, OPTIONS_ERROR };

/* Fills o with defaults, then the environment, then argv (strings in o point into argv
 * or the environment). On OPTIONS_ERROR err names the flag and what was
 * wrong with its value. getopt state is reset, so it may be called repeatedly. */
enum options_result options_parse(struct sidecar_options *o, int argc, char **argv, char *err,
                                  size_t errlen);
/* Checks where the configuration and identity come from, once the flags parsed:
 * --config and --xds exclude each other, --xds must be a valid control plane URL,
 * --xds-cache and --xds-token need --xds, --xds-token needs --cert-dir. 0, or -1 with err
 * saying what to change. The sidecar exits 1 on these (a configuration error, like a bad
 * --config file), where a malformed flag exits 2. */
int options_check_sources(const struct sidecar_options *o, char *err, size_t errlen);
/* The --help text. */
const char *options_usage(void);

#endif
