/*
 * rules.h - the pod's nat rules as iptables-restore text, and the flags that shape them.
 *
 * Pure module: no I/O, no globals. It parses and validates ringmesh-init's command line
 * into a struct rules_opts, renders the `iptables-restore --noflush` input for IPv4 or
 * IPv6 (REDIRECT mode, the rule order of istio-iptables with the RINGMESH_ prefix), and
 * reads `iptables-save -t nat` text to find what an earlier run left, so that one restore
 * transaction can remove the old copy and install the new one. Text it renders is
 * byte-identical to what iptables-save prints back for the same rules (canonical option
 * order, explicit `-m tcp`, CIDRs with host bits cleared), so dry-run output and live
 * state can be compared line by line.
 * Runs on the main thread of a short-lived program; callers own every struct passed in.
 */
#ifndef RINGMESH_INIT_RULES_H
#define RINGMESH_INIT_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RULES_MAX_PORTS      256
#define RULES_MAX_CIDRS      256
#define RULES_MAX_LIVE_CHAIN 32
#define RULES_CHAIN_LEN      32 /* xtables allows 28 characters plus NUL */
#define RULES_CHAIN_PREFIX   "RINGMESH_"

#define RULES_DEFAULT_ENVOY_PORT   15001
#define RULES_DEFAULT_INBOUND_PORT 15006
#define RULES_DEFAULT_TUNNEL_PORT  15008
#define RULES_DEFAULT_PROXY_UID    1337

enum rules_ipv6 {
    RULES_IPV6_AUTO, /* program v6 when the pod has a global or ULA v6 address */
    RULES_IPV6_ON,   /* always program v6 */
    RULES_IPV6_OFF,  /* never touch ip6tables */
};

enum rules_backend_mode {
    RULES_BACKEND_AUTO,   /* whichever backend already holds rules, else nft */
    RULES_BACKEND_NFT,    /* iptables-nft-* */
    RULES_BACKEND_LEGACY, /* iptables-legacy-* */
};

struct rules_ports {
    uint16_t port[RULES_MAX_PORTS]; /* in the order given, duplicates dropped */
    unsigned n;
};

struct rules_cidr {
    int family;            /* AF_INET or AF_INET6 */
    uint8_t addr[16];      /* network order, host bits cleared; v4 uses the first 4 */
    unsigned prefix_len;   /* 0..32 or 0..128 */
    bool addr_is_loopback; /* the address as written was 127/8 or ::1 (istio's test) */
};

struct rules_cidrs {
    struct rules_cidr cidr[RULES_MAX_CIDRS];
    unsigned n;
};

/* Everything the command line says. Plain value struct, owned by the caller (~15 KiB). */
struct rules_opts {
    uint16_t envoy_port;                 /* -p: outbound capture port */
    uint16_t inbound_capture_port;       /* -z: inbound capture port */
    uint16_t inbound_tunnel_port;        /* -e: HBONE tunnel port, never captured */
    uint32_t proxy_uid;                  /* -u */
    uint32_t proxy_gid;                  /* -g; defaults to proxy_uid, as in istio-iptables */
    bool inbound_all;                    /* -b '*' */
    struct rules_ports inbound_ports;    /* -b list (used when !inbound_all) */
    struct rules_ports inbound_exclude;  /* 15090,15021,15020 then -d (only with '*') */
    bool inbound_exclude_given;          /* -d was on the command line */
    struct rules_ports outbound_ports;   /* -q: outbound ports always captured */
    struct rules_ports outbound_exclude; /* -o: outbound ports never captured */
    bool outbound_all;                   /* -i '*' */
    struct rules_cidrs outbound_cidrs;   /* -i list (used when !outbound_all) */
    struct rules_cidrs exclude_cidrs;    /* -x */
    enum rules_ipv6 ipv6;                /* --ipv6 */
    enum rules_backend_mode backend;     /* --iptables-mode */
    bool dry_run;                        /* --dry-run */
    bool cleanup;                        /* --cleanup / --cleanup-only */
    bool help;                           /* -h / --help: nothing else was validated */
};

/* Growable text buffer. buf is owned and NUL-terminated once anything was appended. */
struct rules_text {
    char *buf;
    size_t len;
    size_t cap;
    bool oom; /* an append failed; the text is incomplete */
};

/* What an earlier run left in one family's nat table, from rules_live_parse(). */
struct rules_live {
    struct rules_text deletes;                         /* "-D ..." lines for our jumps */
    unsigned n_jumps;                                  /* lines in deletes */
    char chain[RULES_MAX_LIVE_CHAIN][RULES_CHAIN_LEN]; /* RINGMESH_* chains present */
    unsigned n_chains;
};

/* Fills o with the defaults: 15001/15006/15008, uid=gid=1337, inbound '*' minus
 * 15090,15021,15020, outbound '*', ipv6 auto, backend auto. */
void rules_opts_default(struct rules_opts *o);

/* Parses argv[1..argc-1] (argv[0] is skipped) over the defaults. Long flags take
 * "--flag=value" or "--flag value", short ones "-p value" or "-pvalue". Returns 0, or
 * -EINVAL with err naming the flag and the bad value ("--envoy-port: '70000' is not a
 * port (1-65535)"). With -h/--help it returns 0 at once with o->help set. Never prints. */
int rules_opts_parse(struct rules_opts *o, int argc, char *const argv[], char *err, size_t errlen);

/* Parses a comma-separated port list ("" = empty, items 1..65535, spaces around items
 * ignored) and appends new ports to out. flag names the option in errors. 0 or -EINVAL. */
int rules_parse_ports(const char *flag, const char *s, struct rules_ports *out, char *err,
                      size_t errlen);

/* Parses "a.b.c.d/n" (n 0..32) or "v6addr/n" (n 0..128); a bare address means /32 or
 * /128. Host bits are cleared. 0 or -EINVAL with err naming flag and value. */
int rules_parse_cidr(const char *flag, const char *s, struct rules_cidr *out, char *err,
                     size_t errlen);

/* Writes c as iptables-save prints it ("10.0.0.0/8", "fd00::/8") into buf; 0 or
 * -ENOSPC. */
int rules_cidr_str(const struct rules_cidr *c, char *buf, size_t len);

/* Appends the restore input for one family (4 or 6): "*nat", the removal of whatever
 * live lists (NULL = nothing to remove), the chain declarations, the jumps from
 * PREROUTING/OUTPUT, each RINGMESH_ chain's rules in istio-iptables order, "COMMIT".
 * Deterministic. 0, -EINVAL for a bad family, or -ENOMEM (out->oom set). */
int rules_render(const struct rules_opts *o, int family, const struct rules_live *live,
                 struct rules_text *out);

/* Appends the restore input that removes everything live lists (jumps, then flush and
 * delete of each chain). Appends nothing and returns 0 when live holds nothing. */
int rules_render_cleanup(const struct rules_live *live, struct rules_text *out);

/* The whole --dry-run text for a pod without ringmesh rules: a "# iptables-restore
 * --noflush" line and the v4 input, then, when with_v6, "# ip6tables-restore --noflush"
 * and the v6 input. This is what the golden files hold. 0 or -ENOMEM. */
int rules_render_dry_run(const struct rules_opts *o, bool with_v6, struct rules_text *out);

/* Reads `iptables-save -t nat` output and records our chains and the jumps to them.
 * Jumps from PREROUTING or OUTPUT are ours to delete; a jump to a RINGMESH_ chain from
 * any other non-RINGMESH_ chain is someone else's and fails with -EBUSY (deleting our
 * chain would fail anyway), err quoting the rule. -E2BIG past RULES_MAX_LIVE_CHAIN
 * chains. live must be zeroed by the caller; free it with rules_live_free(). */
int rules_live_parse(const char *save, struct rules_live *live, char *err, size_t errlen);

/* True when live found any chain or jump of ours. */
bool rules_live_has_any(const struct rules_live *live);

/* Releases live's text and zeroes it. */
void rules_live_free(struct rules_live *live);

/* Appends printf-formatted text; on allocation failure sets t->oom and returns -ENOMEM. */
int rules_text_printf(struct rules_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Releases t's buffer and zeroes it. */
void rules_text_free(struct rules_text *t);

#endif
