/*
 * options_test.c - the sidecar's command line: defaults, every flag, and the error
 * for each kind of bad value naming the flag. Also common/addr and common/cpus.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "addr.h"
#include "cpus.h"
#include "options.h"
#include "tap.h"

static enum options_result parse(struct sidecar_options *o, char *err, size_t len, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    argv[argc++] = "ringmesh-sidecar";
    va_start(ap, len);
    for (char *a; (a = va_arg(ap, char *)) && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    err[0] = 0;
    return options_parse(o, argc, argv, err, len);
}

static void bad(const char *flag, const char *value, const char *want_in_err)
{
    struct sidecar_options o;
    char err[256];
    enum options_result r = parse(&o, err, sizeof(err), (char *)flag, (char *)value, NULL);
    ok(r == OPTIONS_ERROR && strstr(err, want_in_err), "%s %s is refused: %s", flag,
       value ? value : "", err);
}

int main(void)
{
    struct sidecar_options o;
    char err[256], a[ADDR_STRLEN];

    is_int(parse(&o, err, sizeof(err), NULL), OPTIONS_OK, "no flags parse");
    is_int(o.outbound_port, 15001, "default outbound port 15001");
    is_int(o.inbound_port, 15006, "default inbound port 15006");
    is_int(o.admin_port, 15000, "default admin port 15000");
    is_int(o.stats_port, 15090, "default stats port 15090");
    is_int(o.health_port, 15021, "default health port 15021");
    is_int(o.io, LOOP_IO_AUTO, "default io auto");
    is_int(o.concurrency, 0, "default concurrency: CPUs available");
    is_int(o.buffer_bytes, 65536, "default buffer-bytes 64 KiB");
    ok(!o.has_static_dst, "no static dst by default");

    is_int(parse(&o, err, sizeof(err), "--io", "epoll", "--concurrency", "3", "--outbound-port",
                 "1", "--inbound-port", "65535", "--max-connections", "20", "--drain-seconds",
                 "0", "--static-dst", "[::1]:8080", "--idle-timeout-ms", "0", "--buffers",
                 "1024", "--log-level", "debug", NULL),
           OPTIONS_OK, "a full command line parses");
    is_int(o.io, LOOP_IO_EPOLL, "--io epoll");
    is_int(o.concurrency, 3, "--concurrency 3");
    is_int(o.outbound_port, 1, "--outbound-port 1");
    is_int(o.inbound_port, 65535, "--inbound-port 65535");
    is_int(o.max_connections, 20, "--max-connections 20");
    is_int(o.drain_seconds, 0, "--drain-seconds 0");
    is_int(o.idle_timeout_ms, 0, "--idle-timeout-ms 0 (never)");
    is_int(o.buf_count, 1024, "--buffers 1024");
    ok(o.has_static_dst, "--static-dst set");
    is_str(addr_format((struct sockaddr *)&o.static_dst, a), "[::1]:8080", "--static-dst [::1]:8080");
    is_int(parse(&o, err, sizeof(err), "--io=uring", NULL), OPTIONS_OK, "--io=uring form");
    is_int(o.io, LOOP_IO_URING, "--io=uring");
    is_int(parse(&o, err, sizeof(err), "--help", NULL), OPTIONS_HELP, "--help");

    bad("--io", "kqueue", "--io: bad value 'kqueue'");
    bad("--outbound-port", "0", "--outbound-port: bad value '0': want a port");
    bad("--inbound-port", "70000", "--inbound-port: bad value '70000'");
    bad("--admin-port", "-1", "--admin-port");
    bad("--concurrency", "0", "--concurrency: bad value '0'");
    bad("--buffers", "100", "want a power of two");
    bad("--buffer-size", "12", "--buffer-size");
    bad("--static-dst", "localhost:80", "want a numeric IPv4:port");
    bad("--static-dst", "1.2.3.4", "--static-dst");
    bad("--connect-timeout-ms", "abc", "--connect-timeout-ms");
    bad("--log-level", "loud", "want error, warn, info, debug or trace");
    bad("--bogus", NULL, "unknown option --bogus");
    bad("--io", NULL, "option --io needs a value");
    bad("stray", NULL, "unexpected argument 'stray'");

    /* addr */
    struct sockaddr_storage ss, ss2;
    socklen_t sl;
    unsigned short port;
    ok(addr_parse("10.0.0.1:80", &ss, &sl) == 0 && sl == sizeof(struct sockaddr_in),
       "addr: IPv4 parses");
    is_str(addr_format((struct sockaddr *)&ss, a), "10.0.0.1:80", "addr: IPv4 round trip");
    ok(addr_parse("[fd00::1]:443", &ss2, &sl) == 0 && sl == sizeof(struct sockaddr_in6),
       "addr: IPv6 parses");
    is_str(addr_format((struct sockaddr *)&ss2, a), "[fd00::1]:443", "addr: IPv6 round trip");
    ok(!addr_equal((struct sockaddr *)&ss, (struct sockaddr *)&ss2), "addr: v4 != v6");
    addr_parse("10.0.0.1:80", &ss2, &sl);
    ok(addr_equal((struct sockaddr *)&ss, (struct sockaddr *)&ss2), "addr: equal");
    const char *bads[] = {"", ":80", "10.0.0.1", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:65536",
                          "10.0.0.256:1", "[::1:80", "[::1]80", "::1:80", "host:80", "1.2.3.4:8x"};
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++)
        ok(addr_parse(bads[i], &ss, &sl) < 0, "addr: '%s' refused", bads[i]);
    ok(addr_parse_port("65535", &port) == 0 && port == 65535, "port 65535");
    ok(addr_parse_port("+1", &port) < 0, "port +1 refused");

    /* cpus */
    is_int(cpus_from_cpu_max("max 100000\n"), 0, "cpu.max unlimited");
    is_int(cpus_from_cpu_max("100000 100000\n"), 1, "cpu.max 1 CPU");
    is_int(cpus_from_cpu_max("150000 100000\n"), 2, "cpu.max 1.5 CPUs rounds up to 2");
    is_int(cpus_from_cpu_max("50000 100000\n"), 1, "cpu.max 0.5 CPU gives 1");
    is_int(cpus_from_cpu_max("garbage"), 0, "cpu.max garbage ignored");
    ok(cpus_available() >= 1, "cpus_available() >= 1 (%d)", cpus_available());
    /* where the configuration comes from: parsed fine, refused by options_check_sources */
    is_int(parse(&o, err, sizeof(err), "--xds", "http://127.0.0.1:15010", "--xds-cache", "/c",
                 "--xds-token", "/t", "--cert-dir", "/d", NULL),
           OPTIONS_OK, "--xds, --xds-cache, --xds-token parse");
    ok(o.xds_url && !strcmp(o.xds_url, "http://127.0.0.1:15010") && !strcmp(o.xds_cache, "/c") &&
           !strcmp(o.xds_token, "/t"),
       "  and are kept");
    is_int(options_check_sources(&o, err, sizeof(err)), 0, "  and go together");
    bad("--xds", "", "--xds: bad value '': want a URL");
    parse(&o, err, sizeof(err), "--xds", "http://h:1", "--config", "m.yaml", NULL);
    ok(options_check_sources(&o, err, sizeof(err)) < 0 &&
           strstr(err, "--config and --xds both given"),
       "--config with --xds is refused: %s", err);
    parse(&o, err, sizeof(err), "--xds", "http://h", NULL);
    ok(options_check_sources(&o, err, sizeof(err)) < 0 && strstr(err, "--xds: 'http://h': no port"),
       "--xds without a port is refused: %s", err);
    parse(&o, err, sizeof(err), "--xds-cache", "/c", NULL);
    ok(options_check_sources(&o, err, sizeof(err)) < 0 && strstr(err, "--xds-cache needs --xds"),
       "--xds-cache alone is refused: %s", err);
    parse(&o, err, sizeof(err), "--xds", "https://h:15012", "--xds-token", "/t", NULL);
    ok(options_check_sources(&o, err, sizeof(err)) < 0 && strstr(err, "needs --cert-dir"),
       "--xds-token without --cert-dir is refused: %s", err);
    parse(&o, err, sizeof(err), NULL);
    is_int(options_check_sources(&o, err, sizeof(err)), 0, "no sources at all is fine (empty)");

    /* the access log */
    ok(!o.access_log && o.access_log_sample == 1.0 && !o.access_log_errors_only,
       "access log off by default, sample 1");
    is_int(parse(&o, err, sizeof(err), "--access-log", "/tmp/a.log", "--access-log-sample", "0.25",
                 "--access-log-errors-only", NULL),
           OPTIONS_OK, "--access-log, --access-log-sample, --access-log-errors-only parse");
    ok(o.access_log && !strcmp(o.access_log, "/tmp/a.log") && o.access_log_sample == 0.25 &&
           o.access_log_errors_only,
       "  and are kept");
    is_int(parse(&o, err, sizeof(err), "--access-log", "-", "--access-log-sample", "1", NULL),
           OPTIONS_OK, "--access-log - (standard output), sample 1");
    const char *bad_samples[] = {"0", "-0.5", "1.01", "nan", "abc", "0.5x", "", "inf"};
    for (size_t i = 0; i < sizeof(bad_samples) / sizeof(bad_samples[0]); i++) {
        enum options_result r = parse(&o, err, sizeof(err), "--access-log", "x",
                                      "--access-log-sample", bad_samples[i], NULL);
        ok(r == OPTIONS_ERROR && strstr(err, "--access-log-sample: bad value") &&
               strstr(err, "0 < R <= 1"),
           "--access-log-sample '%s' refused: %s", bad_samples[i], err);
    }
    bad("--access-log", "", "--access-log: bad value '': want a file name");
    is_int(parse(&o, err, sizeof(err), "--access-log-errors-only", NULL), OPTIONS_ERROR,
           "--access-log-errors-only without --access-log is refused");
    ok(strstr(err, "--access-log-errors-only needs --access-log") != NULL, "  saying so: %s", err);
    is_int(parse(&o, err, sizeof(err), "--access-log-sample", "0.5", NULL), OPTIONS_ERROR,
           "--access-log-sample without --access-log is refused");
    ok(strstr(err, "--access-log-sample needs --access-log") != NULL, "  saying so: %s", err);
    return tap_done();
}
