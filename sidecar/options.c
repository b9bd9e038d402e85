/*
 * options.c - see options.h. Long flags only, named like Envoy's and Istio's where
 * they have one; every value is checked and a bad one is named in the error.
 */
#include "options.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "log.h"
#include "client.h"
#include "metrics.h"
#include "model.h"

static const char usage[] =
    "usage: ringmesh-sidecar [options]\n"
    "  --io auto|uring|epoll        I/O backend (default auto: io_uring, else epoll)\n"
    "  --concurrency N              worker threads (default: CPUs available)\n"
    "  --outbound-port P            outbound capture listener (15001)\n"
    "  --inbound-port P             inbound capture listener (15006)\n"
    "  --admin-port P               admin API on 127.0.0.1 (15000)\n"
    "  --stats-port P               /stats/prometheus (15090)\n"
    "  --health-port P              /healthz/ready (15021)\n"
    "  --connect-timeout-ms MS      upstream connect timeout (5000)\n"
    "  --idle-timeout-ms MS         close a connection idle this long, 0 = never (3600000)\n"
    "  --max-request-rate N         requests a second one downstream connection may start;\n"
    "                               more get 429 (flag RL); 0 = no limit (50000)\n"
    "  --sniff-timeout-ms MS        wait this long for a client's first bytes before treating\n"
    "                               a connection as opaque TCP (server-first) (100)\n"
    "  --max-connections N          downstream connections at once (65536)\n"
    "  --drain-seconds S            on SIGTERM, wait this long for connections (5)\n"
    "  --buffer-bytes N             bytes queued per direction before reading pauses (65536)\n"
    "  --buffers N                  receive buffers per worker, a power of two (512)\n"
    "  --buffer-size N              bytes per receive buffer (16384)\n"
    "  --static-dst ADDR:PORT       where to send connections that were not redirected\n"
    "                               (tests and benchmarks; default: close them)\n"
    "  --log-level LEVEL            error|warn|info|debug|trace (info)\n"
    "  --access-log PATH            JSON access log, a line per request, appended to PATH\n"
    "                               ('-': standard output); off when absent\n"
    "  --access-log-sample R        log this fraction of the requests, 0 < R <= 1 (1); with\n"
    "                               --access-log-errors-only, of the failures\n"
    "  --access-log-errors-only     log only failures: status >= 400, no response, or a\n"
    "                               response flag\n"
    "  --cert-dir DIR               mTLS between sidecars with DIR's cert-chain.pem, key.pem and\n"
    "                               root-cert.pem (Istio's layout; reloaded when they change);\n"
    "                               none: plaintext ($RINGMESH_CERT_DIR)\n"
    "  --config FILE                the resource model (Services, EndpointSlices, HTTPRoutes,\n"
    "                               policies; YAML or JSON); SIGHUP reloads it\n"
    "  --xds URL                    take the resource model from the control plane's delta xDS\n"
    "                               stream: http://HOST:15010 (h2c) or https://HOST:15012;\n"
    "                               not with --config; ready after every type's first\n"
    "                               response (or --xds-cache)\n"
    "  --xds-cache FILE             the last accepted xDS resource set, rewritten after each\n"
    "                               update; served at start when the control plane is away\n"
    "  --xds-token FILE             bootstrap token for the mesh CA (ringmeshctl ca token):\n"
    "                               key, CSR and certificate into --cert-dir when it holds\n"
    "                               no usable set, renewed at half-life\n"
    "  --pod-name NAME              this workload's pod ($POD_NAME)\n"
    "  --pod-namespace NS           its namespace ($POD_NAMESPACE; default)\n"
    "  --service-account SA         its service account ($SERVICE_ACCOUNT; default)\n"
    "  --pod-ip IP                  its address ($INSTANCE_IP or $POD_IP)\n"
    "  --pod-labels k=v,...|@FILE   its labels, for PeerAuthentication selectors; @FILE reads\n"
    "                               the Downward API's labels file ($POD_LABELS)\n"
    "  --workload-name NAME         its workload (Deployment...) for metrics ($WORKLOAD_NAME;\n"
    "                               default: the pod name without a ReplicaSet suffix)\n"
    "  --metrics-prefix P           ringmesh (default) or istio: istio_requests_total...\n"
    "                               for Istio's dashboards\n"
    "  --metrics-labels L,...|all   the request labels kept (Istio's names; default all)\n"
    "  --metrics-max-series N       labeled series at most; the rest go to one \"overflow\"\n"
    "                               series (2000)\n"
    "  --metrics-idle-seconds S     drop a series unused this long, 0 = never (600)\n"
    "  --no-metrics                 no per-request metrics (proxy counters stay)\n"
    "  -h, --help\n";

const char *options_usage(void)
{
    return usage;
}

enum {
    OPT_IO = 256,
    OPT_CONCURRENCY,
    OPT_OUT_PORT,
    OPT_IN_PORT,
    OPT_ADMIN_PORT,
    OPT_STATS_PORT,
    OPT_HEALTH_PORT,
    OPT_CONNECT_TIMEOUT,
    OPT_IDLE_TIMEOUT,
    OPT_SNIFF_TIMEOUT,
    OPT_MAX_REQUEST_RATE,
    OPT_MAX_CX,
    OPT_DRAIN,
    OPT_BUFFER_BYTES,
    OPT_BUFFERS,
    OPT_BUFFER_SIZE,
    OPT_STATIC_DST,
    OPT_LOG_LEVEL,
    OPT_ACCESS_LOG,
    OPT_ACCESS_LOG_SAMPLE,
    OPT_ACCESS_LOG_ERRORS_ONLY,
    OPT_CONFIG,
    OPT_XDS,
    OPT_XDS_CACHE,
    OPT_XDS_TOKEN,
    OPT_CERT_DIR,
    OPT_POD_NAME,
    OPT_POD_NAMESPACE,
    OPT_SERVICE_ACCOUNT,
    OPT_POD_IP,
    OPT_POD_LABELS,
    OPT_WORKLOAD_NAME,
    OPT_METRICS_PREFIX,
    OPT_METRICS_LABELS,
    OPT_METRICS_MAX_SERIES,
    OPT_METRICS_IDLE,
    OPT_NO_METRICS,
};

static const struct option longopts[] = {
    {"io", required_argument, NULL, OPT_IO},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"outbound-port", required_argument, NULL, OPT_OUT_PORT},
    {"inbound-port", required_argument, NULL, OPT_IN_PORT},
    {"admin-port", required_argument, NULL, OPT_ADMIN_PORT},
    {"stats-port", required_argument, NULL, OPT_STATS_PORT},
    {"health-port", required_argument, NULL, OPT_HEALTH_PORT},
    {"connect-timeout-ms", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"idle-timeout-ms", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"sniff-timeout-ms", required_argument, NULL, OPT_SNIFF_TIMEOUT},
    {"max-request-rate", required_argument, NULL, OPT_MAX_REQUEST_RATE},
    {"max-connections", required_argument, NULL, OPT_MAX_CX},
    {"drain-seconds", required_argument, NULL, OPT_DRAIN},
    {"buffer-bytes", required_argument, NULL, OPT_BUFFER_BYTES},
    {"buffers", required_argument, NULL, OPT_BUFFERS},
    {"buffer-size", required_argument, NULL, OPT_BUFFER_SIZE},
    {"static-dst", required_argument, NULL, OPT_STATIC_DST},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
    {"access-log-sample", required_argument, NULL, OPT_ACCESS_LOG_SAMPLE},
    {"access-log-errors-only", no_argument, NULL, OPT_ACCESS_LOG_ERRORS_ONLY},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"xds", required_argument, NULL, OPT_XDS},
    {"xds-cache", required_argument, NULL, OPT_XDS_CACHE},
    {"xds-token", required_argument, NULL, OPT_XDS_TOKEN},
    {"cert-dir", required_argument, NULL, OPT_CERT_DIR},
    {"pod-name", required_argument, NULL, OPT_POD_NAME},
    {"pod-namespace", required_argument, NULL, OPT_POD_NAMESPACE},
    {"service-account", required_argument, NULL, OPT_SERVICE_ACCOUNT},
    {"pod-ip", required_argument, NULL, OPT_POD_IP},
    {"pod-labels", required_argument, NULL, OPT_POD_LABELS},
    {"workload-name", required_argument, NULL, OPT_WORKLOAD_NAME},
    {"metrics-prefix", required_argument, NULL, OPT_METRICS_PREFIX},
    {"metrics-labels", required_argument, NULL, OPT_METRICS_LABELS},
    {"metrics-max-series", required_argument, NULL, OPT_METRICS_MAX_SERIES},
    {"metrics-idle-seconds", required_argument, NULL, OPT_METRICS_IDLE},
    {"no-metrics", no_argument, NULL, OPT_NO_METRICS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses a decimal in [min, max] into *v. */
static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned *v)
{
    char *end;
    unsigned long x;
    if (!*s || *s == '-' || *s == '+')
        return -EINVAL;
    errno = 0;
    x = strtoul(s, &end, 10);
    if (errno || *end || x < min || x > max)
        return -EINVAL;
    *v = (unsigned)x;
    return 0;
}

static void defaults(struct sidecar_options *o)
{
    memset(o, 0, sizeof(*o));
    o->io = LOOP_IO_AUTO;
    o->outbound_port = 15001;
    o->inbound_port = 15006;
    o->admin_port = 15000;
    o->stats_port = 15090;
    o->health_port = 15021;
    o->connect_timeout_ms = 5000;
    o->idle_timeout_ms = 3600 * 1000; /* Envoy's tcp_proxy default idle timeout: 1 h */
    o->sniff_timeout_ms = 100;        /* Istio's outbound protocol detection timeout */
    o->max_request_rate = 50000;      /* per downstream connection, a second */
    o->max_connections = 65536;
    o->drain_seconds = 5;
    o->buffer_bytes = 64 * 1024;
    o->buf_count = 512;
    o->buf_size = 16 * 1024;
    o->log_level = LOG_INFO;
    o->access_log_sample = 1.0;
    o->cert_dir = getenv("RINGMESH_CERT_DIR");
    if (o->cert_dir && !*o->cert_dir)
        o->cert_dir = NULL;
    o->pod_name = getenv("POD_NAME");
    o->pod_namespace = getenv("POD_NAMESPACE");
    o->service_account = getenv("SERVICE_ACCOUNT");
    o->workload_name = getenv("WORKLOAD_NAME");
    o->metrics_prefix = "ringmesh";
    o->metrics_labels = (1u << ML_COUNT) - 1;
    o->metrics_max_series = 2000;
    o->metrics_idle_s = 600;
    o->pod_ip = getenv("INSTANCE_IP");
    if (!o->pod_ip || !*o->pod_ip)
        o->pod_ip = getenv("POD_IP");
}

static bool is_ip(const char *v)
{
    unsigned char b[16];
    return inet_pton(AF_INET, v, b) == 1 || inet_pton(AF_INET6, v, b) == 1;
}

/* A Kubernetes label key ([prefix/]name) and value, checked loosely: the characters and
 * lengths the API server allows. */
static bool label_ok(const char *k, const char *v)
{
    size_t kl = strlen(k), vl = strlen(v);
    if (kl == 0 || kl > 316 || vl > 63)
        return false;
    for (const char *p = k; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-._/", *p))
            return false;
    for (const char *p = v; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-._", *p))
            return false;
    return true;
}

/* Adds key=value to o's labels; the strings are copied into o->pod_labels_buf at *used. */
static int label_add(struct sidecar_options *o, size_t *used, const char *k, size_t kl,
                     const char *v, size_t vl)
{
    if (o->n_pod_labels == OPTIONS_MAX_LABELS || *used + kl + vl + 2 > sizeof(o->pod_labels_buf))
        return -1;
    char *kk = o->pod_labels_buf + *used;
    memcpy(kk, k, kl);
    kk[kl] = 0;
    char *vv = kk + kl + 1;
    memcpy(vv, v, vl);
    vv[vl] = 0;
    *used += kl + vl + 2;
    if (!label_ok(kk, vv))
        return -1;
    o->pod_labels[o->n_pod_labels].key = kk;
    o->pod_labels[o->n_pod_labels].value = vv;
    o->n_pod_labels++;
    return 0;
}

/* "k=v,k2=v2", or "@FILE" in the Downward API's format (a line per label: key="value",
 * the value quoted as Go's %q). Fills o->pod_labels; err names the bad label. */
static int parse_labels(struct sidecar_options *o, const char *from, const char *arg, char *err,
                        size_t errlen)
{
    size_t used = 0;
    o->n_pod_labels = 0;
    if (arg[0] != '@') {
        for (const char *p = arg; *p;) {
            size_t n = strcspn(p, ","), e = strcspn(p, "=");
            if (e >= n || label_add(o, &used, p, e, p + e + 1, n - e - 1) < 0) {
                snprintf(err, errlen, "%s: bad label '%.*s': want key=value (Kubernetes label "
                         "syntax), comma-separated, at most %d", from, (int)n, p,
                         OPTIONS_MAX_LABELS);
                return -1;
            }
            p += n + (p[n] == ',');
        }
        return 0;
    }
    FILE *f = fopen(arg + 1, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s: %s", from, arg + 1, strerror(errno));
        return -1;
    }
    char line[1024];
    int ln = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        ln++;
        size_t len = strcspn(line, "\r\n");
        line[len] = 0;
        if (!len)
            continue;
        char *eq = strchr(line, '='), val[256];
        size_t vl = 0;
        bool good = eq && eq[1] == '"' && len >= 2 && line[len - 1] == '"' && eq + 1 < line + len - 1;
        for (char *q = eq ? eq + 2 : NULL; good && q < line + len - 1; q++) {
            if (*q == '\\' && q + 1 < line + len - 1)
                q++;
            if (vl + 1 >= sizeof(val))
                good = false;
            else
                val[vl++] = *q;
        }
        if (!good || label_add(o, &used, line, (size_t)(eq - line), val, vl) < 0) {
            snprintf(err, errlen, "%s: %s line %d: bad label '%s': want key=\"value\" "
                     "(Kubernetes label syntax, at most %d)", from, arg + 1, ln, line,
                     OPTIONS_MAX_LABELS);
            rc = -1;
        }
    }
    fclose(f);
    return rc;
}

enum options_result options_parse(struct sidecar_options *o, int argc, char **argv, char *err,
                                  size_t errlen)
{
    int c;
    unsigned v;
    const char *labels = getenv("POD_LABELS"), *labels_from = "POD_LABELS";
    defaults(o);
    optind = 0; /* GNU: full re-initialisation */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        const char *name = NULL;
        for (const struct option *lo = longopts; lo->name; lo++)
            if (lo->val == c)
                name = lo->name;
        switch (c) {
        case 'h':
            return OPTIONS_HELP;
        case OPT_IO:
            if (strcmp(optarg, "auto") == 0)
                o->io = LOOP_IO_AUTO;
            else if (strcmp(optarg, "uring") == 0 || strcmp(optarg, "io_uring") == 0)
                o->io = LOOP_IO_URING;
            else if (strcmp(optarg, "epoll") == 0)
                o->io = LOOP_IO_EPOLL;
            else
                goto bad_value;
            break;
        case OPT_CONCURRENCY:
            if (parse_uint(optarg, 1, 1024, &v) < 0)
                goto bad_value;
            o->concurrency = (int)v;
            break;
        case OPT_OUT_PORT:
        case OPT_IN_PORT:
        case OPT_ADMIN_PORT:
        case OPT_STATS_PORT:
        case OPT_HEALTH_PORT: {
            unsigned short p;
            if (addr_parse_port(optarg, &p) < 0)
                goto bad_value;
            *(c == OPT_OUT_PORT     ? &o->outbound_port
              : c == OPT_IN_PORT    ? &o->inbound_port
              : c == OPT_ADMIN_PORT ? &o->admin_port
              : c == OPT_STATS_PORT ? &o->stats_port
                                    : &o->health_port) = p;
            break;
        }
        case OPT_CONNECT_TIMEOUT:
            if (parse_uint(optarg, 1, 3600000, &o->connect_timeout_ms) < 0)
                goto bad_value;
            break;
        case OPT_IDLE_TIMEOUT:
            if (parse_uint(optarg, 0, 86400000, &o->idle_timeout_ms) < 0)
                goto bad_value;
            break;
        case OPT_MAX_REQUEST_RATE:
            if (parse_uint(optarg, 0, 100000000, &o->max_request_rate) < 0)
                goto bad_value;
            break;
        case OPT_SNIFF_TIMEOUT:
            if (parse_uint(optarg, 1, 60000, &o->sniff_timeout_ms) < 0)
                goto bad_value;
            break;
        case OPT_MAX_CX:
            if (parse_uint(optarg, 1, 10000000, &o->max_connections) < 0)
                goto bad_value;
            break;
        case OPT_DRAIN:
            if (parse_uint(optarg, 0, 86400, &o->drain_seconds) < 0)
                goto bad_value;
            break;
        case OPT_BUFFER_BYTES:
            if (parse_uint(optarg, 1024, 64u << 20, &o->buffer_bytes) < 0)
                goto bad_value;
            break;
        case OPT_BUFFERS:
            if (parse_uint(optarg, 16, 32768, &o->buf_count) < 0 ||
                (o->buf_count & (o->buf_count - 1)))
                goto bad_value;
            break;
        case OPT_BUFFER_SIZE:
            if (parse_uint(optarg, 1024, 1u << 20, &o->buf_size) < 0)
                goto bad_value;
            break;
        case OPT_STATIC_DST:
            if (addr_parse(optarg, &o->static_dst, &o->static_dst_len) < 0)
                goto bad_value;
            o->has_static_dst = true;
            break;
        case OPT_LOG_LEVEL: {
            int lvl = log_level_parse(optarg);
            if (lvl < 0)
                goto bad_value;
            o->log_level = lvl;
            break;
        }
        case OPT_ACCESS_LOG:
            if (!*optarg)
                goto bad_value;
            o->access_log = optarg;
            break;
        case OPT_ACCESS_LOG_SAMPLE: {
            char *end;
            errno = 0;
            double r = strtod(optarg, &end);
            /* !(r > 0) also refuses NaN */
            if (errno || end == optarg || *end || !(r > 0) || r > 1)
                goto bad_value;
            o->access_log_sample = r;
            break;
        }
        case OPT_ACCESS_LOG_ERRORS_ONLY:
            o->access_log_errors_only = true;
            break;
        case OPT_CONFIG:
            if (!*optarg)
                goto bad_value;
            o->config_path = optarg;
            break;
        case OPT_XDS:
        case OPT_XDS_CACHE:
        case OPT_XDS_TOKEN:
            if (!*optarg)
                goto bad_value;
            *(c == OPT_XDS         ? &o->xds_url
              : c == OPT_XDS_CACHE ? &o->xds_cache
                                   : &o->xds_token) = optarg;
            break;
        case OPT_CERT_DIR:
            if (!*optarg)
                goto bad_value;
            o->cert_dir = optarg;
            break;
        case OPT_POD_NAME:
            o->pod_name = optarg;
            break;
        case OPT_POD_NAMESPACE:
            o->pod_namespace = optarg;
            break;
        case OPT_SERVICE_ACCOUNT:
            o->service_account = optarg;
            break;
        case OPT_POD_LABELS:
            labels = optarg;
            labels_from = "--pod-labels";
            break;
        case OPT_POD_IP:
            o->pod_ip = optarg;
            break;
        case OPT_WORKLOAD_NAME:
            if (!label_ok("w", optarg) || !*optarg)
                goto bad_value;
            o->workload_name = optarg;
            break;
        case OPT_METRICS_PREFIX:
            if (strcmp(optarg, "ringmesh") && strcmp(optarg, "istio"))
                goto bad_value;
            o->metrics_prefix = optarg;
            break;
        case OPT_METRICS_LABELS: {
            char why[200];
            if (metrics_labels_parse(optarg, &o->metrics_labels, why, sizeof(why)) < 0) {
                snprintf(err, errlen, "--metrics-labels: %s", why);
                return OPTIONS_ERROR;
            }
            break;
        }
        case OPT_METRICS_MAX_SERIES:
            if (parse_uint(optarg, 1, 1000000, &o->metrics_max_series) < 0)
                goto bad_value;
            break;
        case OPT_METRICS_IDLE:
            if (parse_uint(optarg, 0, 86400 * 30, &o->metrics_idle_s) < 0)
                goto bad_value;
            break;
        case OPT_NO_METRICS:
            o->metrics_off = true;
            break;
        case ':':
            snprintf(err, errlen, "option %s needs a value", argv[optind - 1]);
            return OPTIONS_ERROR;
        default:
            snprintf(err, errlen, "unknown option %s (see --help)", argv[optind - 1]);
            return OPTIONS_ERROR;
        bad_value : {
            const char *want = c == OPT_IO            ? "auto, uring or epoll"
                               : c == OPT_CONCURRENCY ? "a number from 1 to 1024"
                               : c == OPT_OUT_PORT || c == OPT_IN_PORT || c == OPT_ADMIN_PORT ||
                                       c == OPT_STATS_PORT || c == OPT_HEALTH_PORT
                                   ? "a port from 1 to 65535"
                               : c == OPT_BUFFERS    ? "a power of two from 16 to 32768"
                               : c == OPT_STATIC_DST ? "a numeric IPv4:port or [IPv6]:port"
                               : c == OPT_LOG_LEVEL  ? "error, warn, info, debug or trace"
                               : c == OPT_ACCESS_LOG ? "a file name, or - for standard output"
                               : c == OPT_ACCESS_LOG_SAMPLE
                                   ? "a fraction of requests, 0 < R <= 1 (e.g. 0.1)"
                               : c == OPT_CONFIG || c == OPT_XDS_CACHE || c == OPT_XDS_TOKEN
                                   ? "a file name"
                               : c == OPT_XDS      ? "a URL"
                               : c == OPT_CERT_DIR ? "a directory"
                               : c == OPT_METRICS_PREFIX ? "ringmesh or istio"
                               : c == OPT_WORKLOAD_NAME
                                   ? "a name of up to 63 letters, digits, '-', '_' or '.'"
                                                   : "a number in range";
            snprintf(err, errlen, "--%s: bad value '%s': want %s", name ? name : "?", optarg, want);
            return OPTIONS_ERROR;
        }
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
        return OPTIONS_ERROR;
    }
    if (o->buffer_bytes < o->buf_size)
        o->buffer_bytes = o->buf_size;
    if (!o->access_log && (o->access_log_errors_only || o->access_log_sample < 1.0)) {
        snprintf(err, errlen, "%s needs --access-log",
                 o->access_log_errors_only ? "--access-log-errors-only" : "--access-log-sample");
        return OPTIONS_ERROR;
    }
    /* Identity, whether it came from a flag or the environment. */
    if (!o->pod_namespace || !*o->pod_namespace)
        o->pod_namespace = "default";
    if (!o->service_account || !*o->service_account)
        o->service_account = "default";
    if (o->pod_name && !*o->pod_name)
        o->pod_name = NULL;
    if (o->pod_ip && !*o->pod_ip)
        o->pod_ip = NULL;
    if (!model_is_dns_label(o->pod_namespace)) {
        snprintf(err, errlen,
                 "--pod-namespace (or POD_NAMESPACE): bad value '%s': want a DNS label",
                 o->pod_namespace);
        return OPTIONS_ERROR;
    }
    if (!model_is_dns_subdomain(o->service_account)) {
        snprintf(err, errlen,
                 "--service-account (or SERVICE_ACCOUNT): bad value '%s': want a DNS subdomain",
                 o->service_account);
        return OPTIONS_ERROR;
    }
    if (labels && *labels && parse_labels(o, labels_from, labels, err, errlen) < 0)
        return OPTIONS_ERROR;
    if (o->pod_ip && !is_ip(o->pod_ip)) {
        snprintf(err, errlen,
                 "--pod-ip (or INSTANCE_IP/POD_IP): bad value '%s': want a numeric IPv4 or IPv6 "
                 "address",
                 o->pod_ip);
        return OPTIONS_ERROR;
    }
    return OPTIONS_OK;
}

int options_check_sources(const struct sidecar_options *o, char *err, size_t errlen)
{
    struct xds_url u;
    char why[400];
    if (o->config_path && o->xds_url) {
        snprintf(err, errlen,
                 "--config and --xds both given: the configuration comes from a file or from "
                 "the control plane, not both; drop one");
        return -1;
    }
    if (o->xds_url && xds_url_parse(o->xds_url, &u, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "--xds: %s", why);
        return -1;
    }
    if (!o->xds_url && (o->xds_cache || o->xds_token)) {
        snprintf(err, errlen, "%s needs --xds", o->xds_cache ? "--xds-cache" : "--xds-token");
        return -1;
    }
    if (o->xds_token && !o->cert_dir) {
        snprintf(err, errlen,
                 "--xds-token needs --cert-dir: the directory the certificate is written to");
        return -1;
    }
    return 0;
}
