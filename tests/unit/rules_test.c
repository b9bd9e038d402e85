/*
 * rules_test.c - unit tests for init/rules.c: flag parsing and validation, CIDR
 * handling, the rendered iptables-restore text and the reading of iptables-save text.
 *
 * Rendered text is compared with golden files in tests/unit/golden/init/<case>.rules
 * (relative to $RINGMESH_ROOT, else the current directory). UPDATE_GOLDEN=1 rewrites
 * them instead of comparing; review every rewritten file by hand against CONVENTIONS.md
 * section 1 before committing it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../init/rules.h"
#include "tap.h"

static struct rules_opts opts;

/* Parses a NULL-terminated flag list; returns rules_opts_parse's result. */
static int parse(const char *const *args, char *err, size_t errlen)
{
    char *argv[32];
    int argc = 0;

    argv[argc++] = "ringmesh-init";
    for (; *args; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    err[0] = '\0';
    return rules_opts_parse(&opts, argc, argv, err, errlen);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Renders the --dry-run text for args (v6 included when they say --ipv6 on) and
 * compares it with golden/init/<name>.rules. */
static void golden(const char *name, const char *const *args)
{
    struct rules_text t = {0};
    const char *root = getenv("RINGMESH_ROOT");
    char path[512], err[256];

    snprintf(path, sizeof(path), "%s%stests/unit/golden/init/%s.rules", root ? root : "",
             root ? "/" : "", name);
    if (parse(args, err, sizeof(err)) < 0) {
        ok(0, "golden %s: flags parse", name);
        printf("#   %s\n", err);
        return;
    }
    if (rules_render_dry_run(&opts, opts.ipv6 == RULES_IPV6_ON, &t) < 0) {
        ok(0, "golden %s: render", name);
        return;
    }
    if (getenv("UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "wb");
        ok(f && fwrite(t.buf, 1, t.len, f) == t.len && fclose(f) == 0, "golden %s: rewrote %s",
           name, path);
    } else {
        char *want = read_all(path);
        if (!want) {
            ok(0, "golden %s: read %s (UPDATE_GOLDEN=1 creates it)", name, path);
        } else {
            char label[128];
            snprintf(label, sizeof(label), "golden %s", name);
            is_str(t.buf, want, label);
            free(want);
        }
    }
    rules_text_free(&t);
}

static void test_goldens(void)
{
    golden("defaults", (const char *[]){NULL});
    golden("defaults_v6", (const char *[]){"--ipv6", "on", NULL});
    golden("custom_ports_ids", (const char *[]){"-p", "16001", "--inbound-capture-port=16006", "-e",
                                                "16008", "--proxy-uid", "2000", "-g3000", NULL});
    golden("gid_follows_uid", (const char *[]){"--proxy-uid", "2102", NULL});
    golden("inbound_include", (const char *[]){"-b", "8080, 9090,8080", NULL});
    golden("inbound_none", (const char *[]){"--inbound-ports", "", NULL});
    golden("inbound_exclude", (const char *[]){"-d", "22,8081,15020", NULL});
    golden("outbound_ports", (const char *[]){"-q", "3306,5432", "-o", "25,53", NULL});
    golden("cidr_include", (const char *[]){"-i", "10.96.0.0/12,192.168.1.7/24", NULL});
    golden("cidr_exclude", (const char *[]){"-x", "10.0.0.0/8,169.254.169.254", NULL});
    golden("cidr_none", (const char *[]){"--service-cidr=", NULL});
    golden("cidr_loopback", (const char *[]){"-i", "127.0.0.1/32,10.0.0.0/8", NULL});
    golden("cidr_dual_stack",
           (const char *[]){"--ipv6", "on", "-i", "10.96.0.0/12,fd00:10:96::/112", "-x",
                            "fd00:10:96::1", NULL});
    golden("combo", (const char *[]){"--ipv6=on",
                                     "-p",
                                     "15101",
                                     "-z",
                                     "15106",
                                     "-u",
                                     "1500",
                                     "-b",
                                     "80,443",
                                     "-d",
                                     "9999",
                                     "-q",
                                     "8443",
                                     "-o",
                                     "53",
                                     "-i",
                                     "10.0.0.0/8,fd00::/8",
                                     "-x",
                                     "10.1.0.0/16,fd00:1::/32",
                                     NULL});
}

/* A bad flag: parse fails with -EINVAL and exactly this message. */
static void bad(const char *const *args, const char *want)
{
    char err[256];
    int ret = parse(args, err, sizeof(err));
    char label[160];

    snprintf(label, sizeof(label), "rejects: %s", want);
    if (ret != -EINVAL) {
        ok(0, "%s (returned %d)", label, ret);
        return;
    }
    is_str(err, want, label);
}

static void test_validation(void)
{
    bad((const char *[]){"--envoy-port", "70000", NULL},
        "--envoy-port: '70000' is not a port (1-65535)");
    bad((const char *[]){"-p", "0", NULL}, "-p/--envoy-port: '0' is not a port (1-65535)");
    bad((const char *[]){"-z", "+15006", NULL},
        "-z/--inbound-capture-port: '+15006' is not a port (1-65535)");
    bad((const char *[]){"--inbound-capture-port=15006x", NULL},
        "--inbound-capture-port: '15006x' is not a port (1-65535)");
    bad((const char *[]){"--envoy-port", NULL}, "--envoy-port: missing value");
    bad((const char *[]){"--envoy-port", "-h", NULL},
        "--envoy-port: '-h' is not a port (1-65535)"); /* the next word is the value */
    bad((const char *[]){"-b", "80,,81", NULL},
        "-b/--inbound-ports: empty or overlong item in '80,,81'");
    bad((const char *[]){"-d", "22,65536", NULL},
        "-d/--local-exclude-ports: '65536' is not a port (1-65535)");
    bad((const char *[]){"-b", "*,80", NULL}, "-b/--inbound-ports: '*' is not a port (1-65535)");
    bad((const char *[]){"-q", "*", NULL}, "-q/--outbound-ports: '*' is not a port (1-65535)");
    bad((const char *[]){"-i", "10.0.0.0/33", NULL},
        "-i/--service-cidr: '10.0.0.0/33' has a bad prefix length (IPv4 allows 0-32)");
    bad((const char *[]){"--service-exclude-cidr", "fd00::/129", NULL},
        "--service-exclude-cidr: 'fd00::/129' has a bad prefix length (IPv6 allows 0-128)");
    bad((const char *[]){"-i", "10.0.0/8", NULL},
        "-i/--service-cidr: '10.0.0/8' is not an IPv4 or IPv6 CIDR");
    bad((const char *[]){"-i", "10.0.0.0/", NULL},
        "-i/--service-cidr: '10.0.0.0/' has a bad prefix length (IPv4 allows 0-32)");
    bad((const char *[]){"-i", "10.0.0.0/-1", NULL},
        "-i/--service-cidr: '10.0.0.0/-1' has a bad prefix length (IPv4 allows 0-32)");
    bad((const char *[]){"-i", "*,10.0.0.0/8", NULL},
        "-i/--service-cidr: '*' must be the whole value, in '*,10.0.0.0/8'");
    bad((const char *[]){"-x", "*", NULL},
        "-x/--service-exclude-cidr: '*' must be the whole value, in '*'");
    bad((const char *[]){"-x", "/8", NULL},
        "-x/--service-exclude-cidr: '/8' is not an IPv4 or IPv6 CIDR");
    bad((const char *[]){"-u", "4294967295", NULL},
        "-u/--proxy-uid: '4294967295' is not a numeric id (0-4294967294)");
    bad((const char *[]){"--proxy-gid", "istio", NULL},
        "--proxy-gid: 'istio' is not a numeric id (0-4294967294)");
    bad((const char *[]){"--ipv6", "yes", NULL}, "--ipv6: 'yes' is not one of auto, on, off");
    bad((const char *[]){"--iptables-mode=xt", NULL},
        "--iptables-mode: 'xt' is not one of auto, nft, legacy");
    bad((const char *[]){"--dry-run=1", NULL}, "--dry-run takes no value");
    bad((const char *[]){"--bogus", NULL}, "unknown flag '--bogus' (see --help)");
    bad((const char *[]){"-Z", NULL}, "unknown flag '-Z' (see --help)");
    bad((const char *[]){"--envoy", "1", NULL}, "unknown flag '--envoy' (see --help)");
    bad((const char *[]){"extra", NULL}, "unexpected argument 'extra'");
}

static void test_parse(void)
{
    char err[256];

    is_int(parse((const char *[]){NULL}, err, sizeof(err)), 0, "no flags parse");
    is_int(opts.envoy_port, 15001, "default envoy port 15001");
    is_int(opts.inbound_capture_port, 15006, "default inbound port 15006");
    is_int(opts.inbound_tunnel_port, 15008, "default tunnel port 15008");
    is_int(opts.proxy_uid, 1337, "default uid 1337");
    is_int(opts.proxy_gid, 1337, "default gid 1337");
    ok(opts.inbound_all && opts.outbound_all, "default captures all inbound and outbound");
    is_int(opts.inbound_exclude.n, 3, "default excludes three inbound ports");
    ok(opts.inbound_exclude.port[0] == 15090 && opts.inbound_exclude.port[1] == 15021 &&
           opts.inbound_exclude.port[2] == 15020,
       "... 15090, 15021, 15020 in the injector's order");
    is_int(opts.ipv6, RULES_IPV6_AUTO, "default ipv6 auto");
    is_int(opts.backend, RULES_BACKEND_AUTO, "default backend auto");
    ok(!opts.dry_run && !opts.cleanup && !opts.help, "no modes by default");

    parse((const char *[]){"-p", "1", "-p", "2", "--cleanup-only", "-n", NULL}, err, sizeof(err));
    is_int(opts.envoy_port, 2, "last -p wins");
    ok(opts.cleanup && opts.dry_run, "--cleanup-only and -n set their modes");
    parse((const char *[]){"--cleanup", "--iptables-mode", "legacy", "--ipv6", "off", NULL}, err,
          sizeof(err));
    ok(opts.cleanup && opts.backend == RULES_BACKEND_LEGACY && opts.ipv6 == RULES_IPV6_OFF,
       "--cleanup, --iptables-mode legacy, --ipv6 off");
    parse((const char *[]){"-b", "80", "-b", " * ", NULL}, err, sizeof(err));
    ok(opts.inbound_all && opts.inbound_ports.n == 0, "-b ' * ' after a list means all again");
    parse((const char *[]){"-d", "1,2", "-d", "3", NULL}, err, sizeof(err));
    is_int(opts.inbound_exclude.n, 4, "second -d replaces the first, keeps the fixed three");
    parse((const char *[]){"-u", "0", "-g", "0", NULL}, err, sizeof(err));
    ok(opts.proxy_uid == 0 && opts.proxy_gid == 0, "uid and gid 0 accepted");
    parse((const char *[]){"-g", "5", "-u", "7", NULL}, err, sizeof(err));
    ok(opts.proxy_uid == 7 && opts.proxy_gid == 5, "explicit -g is kept when -u comes later");
    is_int(parse((const char *[]){"--bogus", NULL}, err, sizeof(err)), -EINVAL, "bogus flag");
    is_int(parse((const char *[]){"--help", "--bogus", NULL}, err, sizeof(err)), 0,
           "--help first wins over later bad flags");
    ok(opts.help, "... and sets help");
    parse((const char *[]){"-q", "80,80,443,80", NULL}, err, sizeof(err));
    is_int(opts.outbound_ports.n, 2, "duplicate ports collapse");
}

static void test_cidr(void)
{
    struct rules_cidr c;
    char err[256], s[64];

    is_int(rules_parse_cidr("-i", "192.168.1.7/24", &c, err, sizeof(err)), 0, "v4 cidr");
    rules_cidr_str(&c, s, sizeof(s));
    is_str(s, "192.168.1.0/24", "host bits cleared");
    ok(c.family == AF_INET && !c.addr_is_loopback, "v4 family, not loopback");
    rules_parse_cidr("-i", "10.1.2.3", &c, err, sizeof(err));
    rules_cidr_str(&c, s, sizeof(s));
    is_str(s, "10.1.2.3/32", "bare v4 address is /32");
    rules_parse_cidr("-i", "0.0.0.0/0", &c, err, sizeof(err));
    rules_cidr_str(&c, s, sizeof(s));
    is_str(s, "0.0.0.0/0", "/0 allowed");
    rules_parse_cidr("-i", "10.255.255.255/9", &c, err, sizeof(err));
    rules_cidr_str(&c, s, sizeof(s));
    is_str(s, "10.128.0.0/9", "mask on a non-octet boundary");
    rules_parse_cidr("-i", "127.0.0.53/8", &c, err, sizeof(err));
    ok(c.addr_is_loopback, "127.0.0.53/8 is loopback");
    is_int(rules_parse_cidr("-i", "FD00:10::AB/33", &c, err, sizeof(err)), 0, "v6 cidr");
    rules_cidr_str(&c, s, sizeof(s));
    is_str(s, "fd00:10::/33", "v6 masked and lower-cased as ip6tables-save prints it");
    rules_parse_cidr("-i", "::1", &c, err, sizeof(err));
    rules_cidr_str(&c, s, sizeof(s));
    is_str(s, "::1/128", "bare v6 address is /128");
    ok(c.family == AF_INET6 && c.addr_is_loopback, "::1 is v6 loopback");
    rules_parse_cidr("-i", "2001:db8::1:2/127", &c, err, sizeof(err));
    rules_cidr_str(&c, s, sizeof(s));
    is_str(s, "2001:db8::1:2/127", "/127 keeps the even address");
    is_int(rules_parse_cidr("-i", "10.0.0.0/8/8", &c, err, sizeof(err)), -EINVAL,
           "two slashes rejected");
    is_int(rules_parse_cidr("-i", " 10.0.0.0/8", &c, err, sizeof(err)), -EINVAL,
           "leading blank rejected (lists trim them first)");
}

static const char live_save[] =
    "# Generated by iptables-save v1.8.9 (nf_tables)\n"
    "*filter\n"
    ":INPUT ACCEPT [0:0]\n"
    ":RINGMESH_NOT_NAT - [0:0]\n"
    "-A INPUT -j RINGMESH_NOT_NAT\n"
    "COMMIT\n"
    "*nat\n"
    ":PREROUTING ACCEPT [0:0]\n"
    ":OUTPUT ACCEPT [0:0]\n"
    ":KUBE-X - [0:0]\n"
    ":RINGMESH_INBOUND - [0:0]\n"
    ":RINGMESH_OUTPUT - [0:0]\n"
    "-A PREROUTING -p tcp -j RINGMESH_INBOUND\n"
    "-A PREROUTING -p tcp -m comment --comment \"-j RINGMESH_FAKE\" -j KUBE-X\n"
    "-A PREROUTING -p tcp -m comment --comment \"a \\\" -j RINGMESH_FAKE\" -j KUBE-X\n"
    "-A OUTPUT -p tcp -m tcp --dport 9 -j ACCEPT\n"
    "-A OUTPUT -j RINGMESH_OUTPUT\n"
    "-A RINGMESH_OUTPUT -j RINGMESH_INBOUND\n"
    "COMMIT\n";

static void test_live(void)
{
    struct rules_live live = {0};
    struct rules_text t = {0};
    char err[256];

    is_int(rules_live_parse(live_save, &live, err, sizeof(err)), 0, "parse save text");
    is_int(live.n_chains, 2, "two nat chains of ours (filter table ignored)");
    is_str(live.chain[0], "RINGMESH_INBOUND", "first chain");
    is_str(live.chain[1], "RINGMESH_OUTPUT", "second chain");
    is_int(live.n_jumps, 2, "two jumps; quoted comments (escaped quotes too) are not targets");
    is_str(live.deletes.buf,
           "-D PREROUTING -p tcp -j RINGMESH_INBOUND\n-D OUTPUT -j RINGMESH_OUTPUT\n",
           "deletes are the save lines with -A turned into -D");
    ok(rules_live_has_any(&live), "has_any");

    rules_render_cleanup(&live, &t);
    is_str(t.buf,
           "*nat\n"
           "-D PREROUTING -p tcp -j RINGMESH_INBOUND\n"
           "-D OUTPUT -j RINGMESH_OUTPUT\n"
           "-F RINGMESH_INBOUND\n"
           "-F RINGMESH_OUTPUT\n"
           "-X RINGMESH_INBOUND\n"
           "-X RINGMESH_OUTPUT\n"
           "COMMIT\n",
           "cleanup: jumps, then flush all, then delete all");
    rules_text_free(&t);

    rules_opts_default(&opts);
    opts.inbound_all = false; /* no PREROUTING jump; keeps the expected text short */
    rules_render(&opts, 4, &live, &t);
    ok(t.buf && strncmp(t.buf,
                        "*nat\n"
                        "-D PREROUTING -p tcp -j RINGMESH_INBOUND\n"
                        "-D OUTPUT -j RINGMESH_OUTPUT\n"
                        "-F RINGMESH_INBOUND\n"
                        "-F RINGMESH_OUTPUT\n"
                        "-X RINGMESH_INBOUND\n"
                        "-X RINGMESH_OUTPUT\n"
                        ":RINGMESH_INBOUND - [0:0]\n",
                        strlen("*nat\n-D PREROUTING -p tcp -j RINGMESH_INBOUND\n")) == 0,
       "apply over live state removes first, in the same transaction");
    ok(t.buf && strstr(t.buf, "-X RINGMESH_OUTPUT\n:RINGMESH_INBOUND - [0:0]\n"),
       "... and declares the chains right after deleting them");
    ok(t.buf && !strstr(t.buf, "-A PREROUTING"), "inbound none: no PREROUTING jump");
    rules_text_free(&t);
    rules_live_free(&live);

    memset(&live, 0, sizeof(live));
    is_int(rules_live_parse("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ACCEPT\nCOMMIT\n",
                            &live, err, sizeof(err)),
           0, "parse a table without our rules");
    ok(!rules_live_has_any(&live), "nothing of ours");
    rules_render_cleanup(&live, &t);
    is_int(t.len, 0, "cleanup of nothing renders nothing");
    rules_live_free(&live);

    memset(&live, 0, sizeof(live));
    is_int(rules_live_parse("*nat\n:RINGMESH_OUTPUT - [0:0]\n:MINE - [0:0]\n"
                            "-A MINE -g RINGMESH_OUTPUT\nCOMMIT\n",
                            &live, err, sizeof(err)),
           -EBUSY, "a foreign chain jumping to ours is refused");
    is_str(err, "rule not made by ringmesh-init jumps to our chain: -A MINE -g RINGMESH_OUTPUT",
           "... naming the rule");
    rules_live_free(&live);

    memset(&live, 0, sizeof(live));
    is_int(rules_live_parse("*nat\n-A OUTPUT -j RINGMESH_OUTPUT\n-A OUTPUT -j RINGMESH_OUTPUT\n"
                            "COMMIT\n",
                            &live, err, sizeof(err)),
           0, "duplicate jumps parse");
    is_int(live.n_jumps, 2, "each duplicate gets its own -D");
    rules_live_free(&live);
}

static void test_render_misc(void)
{
    struct rules_text t = {0};

    rules_opts_default(&opts);
    is_int(rules_render(&opts, 5, NULL, &t), -EINVAL, "family 5 rejected");
    is_int(rules_render(&opts, 4, NULL, &t), 0, "render v4");
    size_t len = t.len;
    rules_text_free(&t);
    for (int i = 0; i < 3; i++) {
        rules_render(&opts, 4, NULL, &t);
        ok(t.len == len, "render is deterministic (%d)", i);
        rules_text_free(&t);
    }
    /* Upper bound: every list full still renders (and exercises buffer growth). */
    for (unsigned i = 0; i < RULES_MAX_PORTS; i++) {
        opts.inbound_exclude.port[i] = (uint16_t)(1000 + i);
        opts.outbound_exclude.port[i] = (uint16_t)(2000 + i);
        opts.outbound_ports.port[i] = (uint16_t)(3000 + i);
    }
    opts.inbound_exclude.n = opts.outbound_exclude.n = opts.outbound_ports.n = RULES_MAX_PORTS;
    is_int(rules_render(&opts, 6, NULL, &t), 0, "render with full lists");
    ok(t.len > 3 * RULES_MAX_PORTS * 40 && t.buf[t.len] == '\0', "long text, NUL-terminated");
    rules_text_free(&t);
}

int main(void)
{
    test_parse();
    test_validation();
    test_cidr();
    test_live();
    test_render_misc();
    test_goldens();
    return tap_done();
}
