/*
 * rules.c - ringmesh-init's flags and nat rules; see rules.h.
 *
 * The rule order is istio-iptables' REDIRECT mode (tools/istio-iptables/pkg/capture/
 * run.go, summarised in CONVENTIONS.md section 1) with RINGMESH_ in place of ISTIO_.
 * Every rule is written the way iptables-save prints it: addresses before interfaces
 * before protocol, "-m tcp"/"-m udp" spelled out for --dport, CIDRs masked. That makes
 * `--dry-run` output comparable with live state and keeps the goldens honest.
 * Pure: no I/O, no globals; allocation only in struct rules_text.
 */
#include "rules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CH_INBOUND     RULES_CHAIN_PREFIX "INBOUND"
#define CH_IN_REDIRECT RULES_CHAIN_PREFIX "IN_REDIRECT"
#define CH_OUTPUT      RULES_CHAIN_PREFIX "OUTPUT"
#define CH_REDIRECT    RULES_CHAIN_PREFIX "REDIRECT"

/* Istio's injector always passes these to -d: Envoy Prometheus, health, agent. The
 * admin port 15000 is not among them and needs no rule: Envoy binds it to localhost,
 * and loopback traffic never goes through PREROUTING. */
static const uint16_t always_excluded_inbound[] = {15090, 15021, 15020};

/* ---- text buffer ---------------------------------------------------------------- */

int rules_text_printf(struct rules_text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->oom)
        return -ENOMEM;
    for (;;) {
        size_t room = t->cap - t->len;
        va_start(ap, fmt);
        n = vsnprintf(t->buf ? t->buf + t->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return -ENOMEM;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return 0;
        }
        size_t cap = t->cap ? t->cap * 2 : 1024;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *nb = realloc(t->buf, cap);
        if (!nb) {
            t->oom = true;
            return -ENOMEM;
        }
        t->buf = nb;
        t->cap = cap;
    }
}

void rules_text_free(struct rules_text *t)
{
    free(t->buf);
    memset(t, 0, sizeof(*t));
}

/* ---- values --------------------------------------------------------------------- */

/* Strict unsigned decimal: digits only, no sign, no blanks, at most max. */
static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    unsigned long long v = 0;

    if (!*s)
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = v * 10 + (unsigned)(*s - '0');
        if (v > max)
            return -ERANGE;
    }
    *out = v;
    return 0;
}

static int parse_port(const char *flag, const char *s, uint16_t *out, char *err, size_t errlen)
{
    unsigned long long v;

    if (parse_uint(s, 65535, &v) < 0 || v == 0) {
        snprintf(err, errlen, "%s: '%s' is not a port (1-65535)", flag, s);
        return -EINVAL;
    }
    *out = (uint16_t)v;
    return 0;
}

static int parse_id(const char *flag, const char *s, uint32_t *out, char *err, size_t errlen)
{
    unsigned long long v;

    /* (uid_t)-1 means "no change" to the kernel, so it can never be the proxy's id. */
    if (parse_uint(s, 4294967294ULL, &v) < 0) {
        snprintf(err, errlen, "%s: '%s' is not a numeric id (0-4294967294)", flag, s);
        return -EINVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Copies the comma-separated item starting at s into item (blanks trimmed) and returns
 * a pointer past its comma, or NULL at the end of the list. */
static const char *next_item(const char *s, char *item, size_t len, bool *too_long)
{
    const char *end = strchr(s, ',');
    const char *stop = end ? end : s + strlen(s);

    while (s < stop && (*s == ' ' || *s == '\t'))
        s++;
    while (stop > s && (stop[-1] == ' ' || stop[-1] == '\t'))
        stop--;
    *too_long = (size_t)(stop - s) >= len;
    size_t n = *too_long ? len - 1 : (size_t)(stop - s);
    memcpy(item, s, n);
    item[n] = '\0';
    return end ? end + 1 : NULL;
}

static bool is_blank(const char *s)
{
    return s[strspn(s, " \t")] == '\0';
}

static void ports_add(struct rules_ports *p, uint16_t port)
{
    for (unsigned i = 0; i < p->n; i++)
        if (p->port[i] == port)
            return;
    p->port[p->n++] = port;
}

int rules_parse_ports(const char *flag, const char *s, struct rules_ports *out, char *err,
                      size_t errlen)
{
    char item[64];
    bool too_long;

    if (is_blank(s))
        return 0;
    for (const char *p = s; p;) {
        uint16_t port;
        p = next_item(p, item, sizeof(item), &too_long);
        if (too_long || !*item) {
            snprintf(err, errlen, "%s: empty or overlong item in '%s'", flag, s);
            return -EINVAL;
        }
        if (parse_port(flag, item, &port, err, errlen) < 0)
            return -EINVAL;
        if (out->n == RULES_MAX_PORTS) {
            snprintf(err, errlen, "%s: more than %d ports", flag, RULES_MAX_PORTS);
            return -EINVAL;
        }
        ports_add(out, port);
    }
    return 0;
}

int rules_parse_cidr(const char *flag, const char *s, struct rules_cidr *out, char *err,
                     size_t errlen)
{
    char addr[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    unsigned long long plen;

    memset(out, 0, sizeof(*out));
    if (alen == 0 || alen >= sizeof(addr))
        goto bad;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, addr, out->addr) == 1)
        out->family = AF_INET6;
    else
        goto bad;

    unsigned max = out->family == AF_INET ? 32 : 128;
    if (!slash) {
        plen = max;
    } else if (parse_uint(slash + 1, 255, &plen) < 0 || plen > max) {
        snprintf(err, errlen, "%s: '%s' has a bad prefix length (IPv%c allows 0-%u)", flag, s,
                 out->family == AF_INET ? '4' : '6', max);
        return -EINVAL;
    }
    out->prefix_len = (unsigned)plen;

    if (out->family == AF_INET) {
        out->addr_is_loopback = out->addr[0] == 127;
    } else {
        static const uint8_t v6_loopback[16] = {[15] = 1};
        out->addr_is_loopback = memcmp(out->addr, v6_loopback, 16) == 0;
    }
    /* iptables masks host bits itself; doing it here keeps our text equal to its save. */
    for (unsigned bit = out->prefix_len; bit < max; bit++)
        out->addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
    return 0;
bad:
    snprintf(err, errlen, "%s: '%s' is not an IPv4 or IPv6 CIDR", flag, s);
    return -EINVAL;
}

int rules_cidr_str(const struct rules_cidr *c, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];

    if (!inet_ntop(c->family, c->addr, a, sizeof(a)))
        return -EINVAL;
    int n = snprintf(buf, len, "%s/%u", a, c->prefix_len);
    return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static int parse_cidrs(const char *flag, const char *s, struct rules_cidrs *out, char *err,
                       size_t errlen)
{
    char item[INET6_ADDRSTRLEN + 8];
    bool too_long;

    if (is_blank(s))
        return 0;
    for (const char *p = s; p;) {
        p = next_item(p, item, sizeof(item), &too_long);
        if (too_long || !*item) {
            snprintf(err, errlen, "%s: empty or overlong item in '%s'", flag, s);
            return -EINVAL;
        }
        if (strcmp(item, "*") == 0) {
            snprintf(err, errlen, "%s: '*' must be the whole value, in '%s'", flag, s);
            return -EINVAL;
        }
        if (out->n == RULES_MAX_CIDRS) {
            snprintf(err, errlen, "%s: more than %d CIDRs", flag, RULES_MAX_CIDRS);
            return -EINVAL;
        }
        if (rules_parse_cidr(flag, item, &out->cidr[out->n], err, errlen) < 0)
            return -EINVAL;
        out->n++;
    }
    return 0;
}

static bool is_star(const char *s)
{
    const char *p = s + strspn(s, " \t");
    return *p == '*' && is_blank(p + 1);
}

/* ---- the command line ----------------------------------------------------------- */

enum opt_id {
    OPT_ENVOY_PORT,
    OPT_INBOUND_PORT,
    OPT_TUNNEL_PORT,
    OPT_UID,
    OPT_GID,
    OPT_IN_PORTS,
    OPT_IN_EXCLUDE,
    OPT_OUT_PORTS,
    OPT_OUT_EXCLUDE,
    OPT_CIDRS,
    OPT_CIDRS_EXCLUDE,
    OPT_IPV6,
    OPT_MODE,
    OPT_DRY_RUN,
    OPT_CLEANUP,
    OPT_HELP,
};

static const struct opt_def {
    char short_name; /* 0: long form only */
    const char *long_name;
    bool has_arg;
    enum opt_id id;
} opt_defs[] = {
    {'p', "envoy-port", true, OPT_ENVOY_PORT},
    {'z', "inbound-capture-port", true, OPT_INBOUND_PORT},
    {'e', "inbound-tunnel-port", true, OPT_TUNNEL_PORT},
    {'u', "proxy-uid", true, OPT_UID},
    {'g', "proxy-gid", true, OPT_GID},
    {'b', "inbound-ports", true, OPT_IN_PORTS},
    {'d', "local-exclude-ports", true, OPT_IN_EXCLUDE},
    {'q', "outbound-ports", true, OPT_OUT_PORTS},
    {'o', "local-outbound-ports-exclude", true, OPT_OUT_EXCLUDE},
    {'i', "service-cidr", true, OPT_CIDRS},
    {'x', "service-exclude-cidr", true, OPT_CIDRS_EXCLUDE},
    {0, "ipv6", true, OPT_IPV6},
    {0, "iptables-mode", true, OPT_MODE},
    {'n', "dry-run", false, OPT_DRY_RUN},
    {0, "cleanup", false, OPT_CLEANUP},
    {0, "cleanup-only", false, OPT_CLEANUP},
    {'h', "help", false, OPT_HELP},
};

void rules_opts_default(struct rules_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->envoy_port = RULES_DEFAULT_ENVOY_PORT;
    o->inbound_capture_port = RULES_DEFAULT_INBOUND_PORT;
    o->inbound_tunnel_port = RULES_DEFAULT_TUNNEL_PORT;
    o->proxy_uid = RULES_DEFAULT_PROXY_UID;
    o->proxy_gid = RULES_DEFAULT_PROXY_UID;
    o->inbound_all = true;
    for (size_t i = 0; i < sizeof(always_excluded_inbound) / sizeof(always_excluded_inbound[0]);
         i++)
        ports_add(&o->inbound_exclude, always_excluded_inbound[i]);
    o->outbound_all = true;
    o->ipv6 = RULES_IPV6_AUTO;
    o->backend = RULES_BACKEND_AUTO;
}

static const struct opt_def *find_opt(const char *arg, const char **inline_val, char *flag,
                                      size_t flaglen)
{
    *inline_val = NULL;
    if (arg[0] == '-' && arg[1] == '-') {
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        for (size_t i = 0; i < sizeof(opt_defs) / sizeof(opt_defs[0]); i++) {
            if (strlen(opt_defs[i].long_name) == n && memcmp(opt_defs[i].long_name, name, n) == 0) {
                *inline_val = eq ? eq + 1 : NULL;
                snprintf(flag, flaglen, "--%s", opt_defs[i].long_name);
                return &opt_defs[i];
            }
        }
        return NULL;
    }
    if (arg[0] == '-' && arg[1]) {
        for (size_t i = 0; i < sizeof(opt_defs) / sizeof(opt_defs[0]); i++) {
            if (opt_defs[i].short_name == arg[1]) {
                *inline_val = arg[2] ? arg + 2 : NULL;
                snprintf(flag, flaglen, "-%c/--%s", arg[1], opt_defs[i].long_name);
                return &opt_defs[i];
            }
        }
    }
    return NULL;
}

static int apply_opt(struct rules_opts *o, const struct opt_def *d, const char *flag, const char *v,
                     bool *gid_given, char *err, size_t errlen)
{
    switch (d->id) {
    case OPT_ENVOY_PORT:
        return parse_port(flag, v, &o->envoy_port, err, errlen);
    case OPT_INBOUND_PORT:
        return parse_port(flag, v, &o->inbound_capture_port, err, errlen);
    case OPT_TUNNEL_PORT:
        return parse_port(flag, v, &o->inbound_tunnel_port, err, errlen);
    case OPT_UID:
        return parse_id(flag, v, &o->proxy_uid, err, errlen);
    case OPT_GID:
        *gid_given = true;
        return parse_id(flag, v, &o->proxy_gid, err, errlen);
    case OPT_IN_PORTS:
        /* Each occurrence replaces the earlier one, like every other flag. */
        memset(&o->inbound_ports, 0, sizeof(o->inbound_ports));
        o->inbound_all = is_star(v);
        return o->inbound_all ? 0 : rules_parse_ports(flag, v, &o->inbound_ports, err, errlen);
    case OPT_IN_EXCLUDE:
        memset(&o->inbound_exclude, 0, sizeof(o->inbound_exclude));
        for (size_t i = 0; i < sizeof(always_excluded_inbound) / sizeof(always_excluded_inbound[0]);
             i++)
            ports_add(&o->inbound_exclude, always_excluded_inbound[i]);
        o->inbound_exclude_given = true;
        return rules_parse_ports(flag, v, &o->inbound_exclude, err, errlen);
    case OPT_OUT_PORTS:
        memset(&o->outbound_ports, 0, sizeof(o->outbound_ports));
        return rules_parse_ports(flag, v, &o->outbound_ports, err, errlen);
    case OPT_OUT_EXCLUDE:
        memset(&o->outbound_exclude, 0, sizeof(o->outbound_exclude));
        return rules_parse_ports(flag, v, &o->outbound_exclude, err, errlen);
    case OPT_CIDRS:
        o->outbound_cidrs.n = 0;
        o->outbound_all = is_star(v);
        return o->outbound_all ? 0 : parse_cidrs(flag, v, &o->outbound_cidrs, err, errlen);
    case OPT_CIDRS_EXCLUDE:
        o->exclude_cidrs.n = 0;
        return parse_cidrs(flag, v, &o->exclude_cidrs, err, errlen);
    case OPT_IPV6:
        if (strcmp(v, "auto") == 0)
            o->ipv6 = RULES_IPV6_AUTO;
        else if (strcmp(v, "on") == 0)
            o->ipv6 = RULES_IPV6_ON;
        else if (strcmp(v, "off") == 0)
            o->ipv6 = RULES_IPV6_OFF;
        else
            goto bad_choice;
        return 0;
    case OPT_MODE:
        if (strcmp(v, "auto") == 0)
            o->backend = RULES_BACKEND_AUTO;
        else if (strcmp(v, "nft") == 0)
            o->backend = RULES_BACKEND_NFT;
        else if (strcmp(v, "legacy") == 0)
            o->backend = RULES_BACKEND_LEGACY;
        else
            goto bad_choice;
        return 0;
    case OPT_DRY_RUN:
        o->dry_run = true;
        return 0;
    case OPT_CLEANUP:
        o->cleanup = true;
        return 0;
    case OPT_HELP:
        o->help = true;
        return 0;
    }
    return 0;
bad_choice:
    snprintf(err, errlen, "%s: '%s' is not one of %s", flag, v,
             d->id == OPT_IPV6 ? "auto, on, off" : "auto, nft, legacy");
    return -EINVAL;
}

int rules_opts_parse(struct rules_opts *o, int argc, char *const argv[], char *err, size_t errlen)
{
    bool gid_given = false;
    char flag[64];

    rules_opts_default(o);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        const struct opt_def *d;

        if (arg[0] != '-' || strcmp(arg, "-") == 0 || strcmp(arg, "--") == 0) {
            snprintf(err, errlen, "unexpected argument '%s'", arg);
            return -EINVAL;
        }
        d = find_opt(arg, &v, flag, sizeof(flag));
        if (!d) {
            snprintf(err, errlen, "unknown flag '%s' (see --help)", arg);
            return -EINVAL;
        }
        if (d->id == OPT_HELP) {
            o->help = true;
            return 0;
        }
        if (!d->has_arg && v) {
            snprintf(err, errlen, "%s takes no value", flag);
            return -EINVAL;
        }
        if (d->has_arg && !v) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "%s: missing value", flag);
                return -EINVAL;
            }
            v = argv[++i];
        }
        if (apply_opt(o, d, flag, v, &gid_given, err, errlen) < 0)
            return -EINVAL;
    }
    /* istio-iptables: the proxy's gid is its uid unless said otherwise. */
    if (!gid_given)
        o->proxy_gid = o->proxy_uid;
    return 0;
}

/* ---- rendering ------------------------------------------------------------------ */

struct fam {
    int af;
    const char *passthrough; /* source of inbound-passthrough connections (rule 2) */
    const char *localhost;
};

static const struct fam fam4 = {AF_INET, "127.0.0.6/32", "127.0.0.1/32"};
static const struct fam fam6 = {AF_INET6, "::6/128", "::1/128"};

static void render_removal(const struct rules_live *live, struct rules_text *t)
{
    if (!live)
        return;
    if (live->deletes.len)
        rules_text_printf(t, "%s", live->deletes.buf);
    /* Flush all before deleting any: our chains jump to each other. */
    for (unsigned i = 0; i < live->n_chains; i++)
        rules_text_printf(t, "-F %s\n", live->chain[i]);
    for (unsigned i = 0; i < live->n_chains; i++)
        rules_text_printf(t, "-X %s\n", live->chain[i]);
}

static void render_inbound(const struct rules_opts *o, struct rules_text *t)
{
    const char *A = "-A " CH_INBOUND;

    /* The HBONE tunnel port is never captured, whatever -b says. */
    rules_text_printf(t, "%s -p tcp -m tcp --dport %u -j RETURN\n", A, o->inbound_tunnel_port);
    if (o->inbound_all) {
        /* -d only means something with '*', as in istio-iptables. */
        for (unsigned i = 0; i < o->inbound_exclude.n; i++)
            rules_text_printf(t, "%s -p tcp -m tcp --dport %u -j RETURN\n", A,
                              o->inbound_exclude.port[i]);
        rules_text_printf(t, "%s -p tcp -j " CH_IN_REDIRECT "\n", A);
    } else {
        for (unsigned i = 0; i < o->inbound_ports.n; i++)
            rules_text_printf(t, "%s -p tcp -m tcp --dport %u -j " CH_IN_REDIRECT "\n", A,
                              o->inbound_ports.port[i]);
    }
}

/* Rules 3-5 of CONVENTIONS section 1 for one owner match ("uid" or "gid"). */
static void render_owner(const struct rules_opts *o, const struct fam *f, const char *what,
                         uint32_t id, bool include_has_loopback, struct rules_text *t)
{
    const char *A = "-A " CH_OUTPUT;

    /* Proxy to its own pod IP over lo: capture again as inbound, so the server side
     * (policy, telemetry) still runs for app -> own Service VIP -> own pod. */
    rules_text_printf(t,
                      "%s ! -d %s -o lo -p tcp -m tcp ! --dport %u -m owner --%s-owner %u"
                      " -j " CH_IN_REDIRECT "\n",
                      A, f->localhost, o->inbound_tunnel_port, what, id);
    /* App to localhost or its own pod IP bypasses the proxy; istio drops this rule when
     * an included range is a loopback address, so that such traffic is captured. */
    if (!include_has_loopback)
        rules_text_printf(t, "%s -o lo -m owner ! --%s-owner %u -j RETURN\n", A, what, id);
    /* Everything else the proxy sends, any protocol: never loop back into it. */
    rules_text_printf(t, "%s -m owner --%s-owner %u -j RETURN\n", A, what, id);
}

static void render_output(const struct rules_opts *o, const struct fam *f, struct rules_text *t)
{
    const char *A = "-A " CH_OUTPUT;
    bool loopback = false, any_include = false;
    char c[INET6_ADDRSTRLEN + 8];

    for (unsigned i = 0; i < o->outbound_cidrs.n && !o->outbound_all; i++)
        loopback |= o->outbound_cidrs.cidr[i].addr_is_loopback;

    for (unsigned i = 0; i < o->outbound_exclude.n; i++) {
        rules_text_printf(t, "%s -p tcp -m tcp --dport %u -j RETURN\n", A,
                          o->outbound_exclude.port[i]);
        rules_text_printf(t, "%s -p udp -m udp --dport %u -j RETURN\n", A,
                          o->outbound_exclude.port[i]);
    }
    rules_text_printf(t, "%s -s %s -o lo -j RETURN\n", A, f->passthrough);
    render_owner(o, f, "uid", o->proxy_uid, loopback, t);
    render_owner(o, f, "gid", o->proxy_gid, loopback, t);
    rules_text_printf(t, "%s -d %s -j RETURN\n", A, f->localhost);

    for (unsigned i = 0; i < o->exclude_cidrs.n; i++) {
        if (o->exclude_cidrs.cidr[i].family != f->af)
            continue;
        rules_cidr_str(&o->exclude_cidrs.cidr[i], c, sizeof(c));
        rules_text_printf(t, "%s -d %s -j RETURN\n", A, c);
    }
    for (unsigned i = 0; i < o->outbound_ports.n; i++)
        rules_text_printf(t, "%s -p tcp -m tcp --dport %u -j " CH_REDIRECT "\n", A,
                          o->outbound_ports.port[i]);
    if (o->outbound_all) {
        rules_text_printf(t, "%s -j " CH_REDIRECT "\n", A);
        return;
    }
    for (unsigned i = 0; i < o->outbound_cidrs.n; i++) {
        if (o->outbound_cidrs.cidr[i].family != f->af)
            continue;
        rules_cidr_str(&o->outbound_cidrs.cidr[i], c, sizeof(c));
        rules_text_printf(t, "%s -d %s -j " CH_REDIRECT "\n", A, c);
        any_include = true;
    }
    /* Explicit ranges: nothing else of this family is captured. */
    if (any_include)
        rules_text_printf(t, "%s -j RETURN\n", A);
}

int rules_render(const struct rules_opts *o, int family, const struct rules_live *live,
                 struct rules_text *out)
{
    const struct fam *f = family == 4 ? &fam4 : family == 6 ? &fam6 : NULL;
    bool inbound = o->inbound_all || o->inbound_ports.n > 0;

    if (!f)
        return -EINVAL;
    rules_text_printf(out, "*nat\n");
    render_removal(live, out);
    /* Chains and rules in the order iptables-save lists them (built-ins, then user
     * chains by name), so that a save of the result reads like this text. */
    rules_text_printf(out, ":" CH_INBOUND " - [0:0]\n"
                           ":" CH_IN_REDIRECT " - [0:0]\n"
                           ":" CH_OUTPUT " - [0:0]\n"
                           ":" CH_REDIRECT " - [0:0]\n");
    if (inbound)
        rules_text_printf(out, "-A PREROUTING -p tcp -j " CH_INBOUND "\n");
    rules_text_printf(out, "-A OUTPUT -j " CH_OUTPUT "\n");
    render_inbound(o, out);
    rules_text_printf(out, "-A " CH_IN_REDIRECT " -p tcp -j REDIRECT --to-ports %u\n",
                      o->inbound_capture_port);
    render_output(o, f, out);
    rules_text_printf(out, "-A " CH_REDIRECT " -p tcp -j REDIRECT --to-ports %u\n", o->envoy_port);
    rules_text_printf(out, "COMMIT\n");
    return out->oom ? -ENOMEM : 0;
}

int rules_render_cleanup(const struct rules_live *live, struct rules_text *out)
{
    if (!rules_live_has_any(live))
        return 0;
    rules_text_printf(out, "*nat\n");
    render_removal(live, out);
    rules_text_printf(out, "COMMIT\n");
    return out->oom ? -ENOMEM : 0;
}

int rules_render_dry_run(const struct rules_opts *o, bool with_v6, struct rules_text *out)
{
    rules_text_printf(out, "# iptables-restore --noflush\n");
    rules_render(o, 4, NULL, out);
    if (with_v6) {
        rules_text_printf(out, "# ip6tables-restore --noflush\n");
        rules_render(o, 6, NULL, out);
    }
    return out->oom ? -ENOMEM : 0;
}

/* ---- live state ----------------------------------------------------------------- */

static bool is_ours(const char *chain, size_t len)
{
    size_t plen = strlen(RULES_CHAIN_PREFIX);
    return len > plen && memcmp(chain, RULES_CHAIN_PREFIX, plen) == 0;
}

/* True when the rule line targets one of our chains with -j or -g. Quoted text (a
 * comment match) is skipped: it may contain anything, "-j RINGMESH_X" included. */
static bool targets_ours(const char *line)
{
    bool quoted = false;

    for (const char *p = line; *p; p++) {
        if (*p == '\\' && p[1]) {
            p++;
        } else if (*p == '"') {
            quoted = !quoted;
        } else if (!quoted && p[0] == ' ' && p[1] == '-' && (p[2] == 'j' || p[2] == 'g') &&
                   p[3] == ' ') {
            const char *tgt = p + 4;
            return is_ours(tgt, strcspn(tgt, " "));
        }
    }
    return false;
}

int rules_live_parse(const char *save, struct rules_live *live, char *err, size_t errlen)
{
    bool in_nat = false;
    char line[4096];

    for (const char *p = save; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        const char *next = nl ? nl + 1 : p + n;

        if (n >= sizeof(line)) {
            snprintf(err, errlen, "iptables-save line longer than %zu bytes", sizeof(line));
            return -E2BIG;
        }
        memcpy(line, p, n);
        line[n] = '\0';
        p = next;

        if (line[0] == '*') {
            in_nat = strcmp(line, "*nat") == 0;
            continue;
        }
        if (!in_nat)
            continue;
        if (line[0] == ':') {
            size_t clen = strcspn(line + 1, " ");
            if (!is_ours(line + 1, clen))
                continue;
            if (live->n_chains == RULES_MAX_LIVE_CHAIN || clen >= RULES_CHAIN_LEN) {
                snprintf(err, errlen, "too many or too long " RULES_CHAIN_PREFIX "* chains");
                return -E2BIG;
            }
            memcpy(live->chain[live->n_chains], line + 1, clen);
            live->chain[live->n_chains++][clen] = '\0';
        } else if (strncmp(line, "-A ", 3) == 0 && targets_ours(line)) {
            const char *chain = line + 3;
            size_t clen = strcspn(chain, " ");
            if (is_ours(chain, clen))
                continue;
            if (!((clen == 10 && memcmp(chain, "PREROUTING", 10) == 0) ||
                  (clen == 6 && memcmp(chain, "OUTPUT", 6) == 0))) {
                snprintf(err, errlen, "rule not made by ringmesh-init jumps to our chain: %s",
                         line);
                return -EBUSY;
            }
            if (rules_text_printf(&live->deletes, "-D %s\n", chain) < 0) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
            }
            live->n_jumps++;
        }
    }
    return 0;
}

bool rules_live_has_any(const struct rules_live *live)
{
    return live && (live->n_chains > 0 || live->n_jumps > 0);
}

void rules_live_free(struct rules_live *live)
{
    rules_text_free(&live->deletes);
    memset(live, 0, sizeof(*live));
}
