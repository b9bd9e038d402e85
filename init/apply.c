/*
 * apply.c - runs the iptables tools for ringmesh-init; see apply.h.
 *
 * Every write is one `*-restore --noflush` child fed on stdin: the kernel (nft) or libiptc
 * (legacy) commits the whole table section or nothing, which is what makes a rerun or a
 * failure safe. Live state comes from `*-save -t nat` and is parsed by rules.c. Children
 * run with LC_ALL=C so their error text ("Permission denied") can be recognised.
 * Single-threaded; SIGPIPE must be ignored by the caller (a child may exit before
 * reading all of its input).
 */
#include "apply.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

#define CAP_NET_ADMIN_BIT 12
#define XTABLES_WAIT_S    "10"

/* Where the tools live when PATH lacks the sbin directories (non-root shells). */
static const char *const extra_dirs[] = {"/usr/sbin", "/sbin", "/usr/local/sbin"};

/* [backend][family 4/6][save, restore] */
static const char *const tools[2][2][2] = {
    [APPLY_BACKEND_NFT] = {{"iptables-nft-save", "iptables-nft-restore"},
                           {"ip6tables-nft-save", "ip6tables-nft-restore"}},
    [APPLY_BACKEND_LEGACY] = {{"iptables-legacy-save", "iptables-legacy-restore"},
                              {"ip6tables-legacy-save", "ip6tables-legacy-restore"}},
};

const char *apply_backend_str(enum apply_backend b)
{
    return b == APPLY_BACKEND_LEGACY ? "legacy" : "nft";
}

static const char *tool(enum apply_backend b, int family, bool restore)
{
    return tools[b][family == 6][restore];
}

/* ---- processes ------------------------------------------------------------------ */

static bool try_dir(const char *dir, size_t dlen, const char *name, char *path, size_t len)
{
    int n = snprintf(path, len, "%.*s/%s", (int)dlen, dir, name);
    return n > 0 && (size_t)n < len && access(path, X_OK) == 0;
}

static int find_bin(const char *name, char *path, size_t len)
{
    const char *env = getenv("PATH");

    for (const char *p = env; p && *p;) {
        size_t dlen = strcspn(p, ":");
        if (dlen && try_dir(p, dlen, name, path, len))
            return 0;
        p += dlen + (p[dlen] == ':');
    }
    for (size_t i = 0; i < sizeof(extra_dirs) / sizeof(extra_dirs[0]); i++)
        if (try_dir(extra_dirs[i], strlen(extra_dirs[i]), name, path, len))
            return 0;
    return -ENOENT;
}

/* What a finished child said. */
struct run_result {
    int status;            /* exit code, or 128+signal */
    struct rules_text out; /* stdout, owned */
    char errtext[1024];    /* stderr, first bytes, trailing newlines trimmed */
};

/* Runs argv[0] (an absolute path) with input on stdin, collecting stdout and stderr.
 * 0 once the child was reaped (see r->status), or -errno if it could not run. */
static int run(const char *const argv[], const char *input, size_t input_len, struct run_result *r)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
    size_t written = 0, errlen = 0;
    int ret = 0, st;
    pid_t pid;

    memset(r, 0, sizeof(*r));
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
        ret = -errno;
        goto close_all;
    }
    pid = fork();
    if (pid < 0) {
        ret = -errno;
        goto close_all;
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(errp[1], 2);
        setenv("LC_ALL", "C", 1);
        execv(argv[0], (char *const *)argv);
        dprintf(2, "exec %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(errp[1]);
    in[0] = out[1] = errp[1] = -1;
    if (input_len == 0) {
        close(in[1]);
        in[1] = -1;
    }

    while (out[0] >= 0 || errp[0] >= 0) {
        struct pollfd pfd[3] = {{in[1], POLLOUT, 0}, {out[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
        if (poll(pfd, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            ret = -errno;
            break;
        }
        if (pfd[0].revents) {
            ssize_t n = write(in[1], input + written, input_len - written);
            if (n > 0)
                written += (size_t)n;
            /* EPIPE: the child quit reading; its exit status says why. */
            if (n < 0 || written == input_len) {
                close(in[1]);
                in[1] = -1;
            }
        }
        if (pfd[1].revents) {
            char buf[4096];
            ssize_t n = read(out[0], buf, sizeof(buf));
            if (n > 0) {
                if (rules_text_printf(&r->out, "%.*s", (int)n, buf) < 0)
                    ret = -ENOMEM;
            } else {
                close(out[0]);
                out[0] = -1;
            }
        }
        if (pfd[2].revents) {
            char buf[1024];
            ssize_t n = read(errp[0], buf, sizeof(buf));
            if (n > 0) {
                size_t room = sizeof(r->errtext) - 1 - errlen;
                size_t take = (size_t)n < room ? (size_t)n : room;
                memcpy(r->errtext + errlen, buf, take);
                errlen += take;
            } else {
                close(errp[0]);
                errp[0] = -1;
            }
        }
    }
    while (errlen && (r->errtext[errlen - 1] == '\n' || r->errtext[errlen - 1] == ' '))
        errlen--;
    r->errtext[errlen] = '\0';
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
close_all:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
        if (errp[i] >= 0)
            close(errp[i]);
    }
    if (ret < 0)
        rules_text_free(&r->out);
    return ret;
}

static bool says_permission(const char *s)
{
    return strstr(s, "Permission denied") || strstr(s, "Operation not permitted") ||
           strstr(s, "must be root");
}

/* Runs one iptables tool; on failure fills err with the tool's own words. */
static int run_tool(const char *name, const char *const args[], const char *input, size_t input_len,
                    struct rules_text *out, char *err, size_t errlen)
{
    const char *argv[8];
    char path[256];
    struct run_result r;
    int ret, i;

    if (find_bin(name, path, sizeof(path)) < 0) {
        snprintf(err, errlen, "%s not found in PATH or /usr/sbin:/sbin (is iptables installed?)",
                 name);
        return -ENOENT;
    }
    argv[0] = path;
    for (i = 0; args[i] && i < 6; i++)
        argv[i + 1] = args[i];
    argv[i + 1] = NULL;

    ret = run(argv, input, input_len, &r);
    if (ret < 0) {
        snprintf(err, errlen, "cannot run %s: %s", path, strerror(-ret));
        return ret;
    }
    if (r.status != 0) {
        ret = says_permission(r.errtext) ? -EPERM : -EIO;
        snprintf(err, errlen, "%s failed (exit %d)%s: %s", name, r.status,
                 ret == -EPERM ? ", no CAP_NET_ADMIN?" : "",
                 r.errtext[0] ? r.errtext : "no output");
        rules_text_free(&r.out);
        return ret;
    }
    if (r.errtext[0])
        log_debug("%s: %s", name, r.errtext);
    if (out)
        *out = r.out;
    else
        rules_text_free(&r.out);
    return 0;
}

/* ---- decisions ------------------------------------------------------------------ */

bool apply_has_net_admin(void)
{
    char line[256];
    unsigned long long eff = 0;
    bool found = false;
    FILE *f = fopen("/proc/self/status", "re");

    if (!f)
        return true; /* cannot tell: let the tools report it */
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "CapEff: %llx", &eff) == 1) {
            found = true;
            break;
        }
    fclose(f);
    return !found || (eff >> CAP_NET_ADMIN_BIT) & 1;
}

bool apply_has_routable_ipv6(void)
{
    struct ifaddrs *ifa, *i;
    bool found = false;

    if (getifaddrs(&ifa) < 0)
        return false;
    for (i = ifa; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET6)
            continue;
        const uint8_t *a = ((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr.s6_addr;
        found = (a[0] & 0xe0) == 0x20 || (a[0] & 0xfe) == 0xfc;
    }
    freeifaddrs(ifa);
    return found;
}

static int count_rules(enum apply_backend b, int *count, char *err, size_t errlen)
{
    static const char *const no_args[] = {NULL};
    struct rules_text out = {0};
    int ret = run_tool(tool(b, 4, false), no_args, NULL, 0, &out, err, errlen);

    *count = 0;
    if (ret < 0)
        return ret;
    for (const char *p = out.buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "")
        *count += strncmp(p, "-A ", 3) == 0;
    rules_text_free(&out);
    return 0;
}

static int detect_backend(enum rules_backend_mode mode, enum apply_backend *b, char *err,
                          size_t errlen)
{
    char path[256];
    int n_nft = 0, n_legacy = 0;
    bool has_nft, has_legacy;

    if (mode != RULES_BACKEND_AUTO) {
        *b = mode == RULES_BACKEND_LEGACY ? APPLY_BACKEND_LEGACY : APPLY_BACKEND_NFT;
        log_info("iptables backend %s (--iptables-mode)", apply_backend_str(*b));
        return 0;
    }
    has_nft = find_bin(tool(APPLY_BACKEND_NFT, 4, false), path, sizeof(path)) == 0;
    has_legacy = find_bin(tool(APPLY_BACKEND_LEGACY, 4, false), path, sizeof(path)) == 0;
    if (!has_nft && !has_legacy) {
        snprintf(err, errlen,
                 "iptables not found: neither iptables-nft-save nor "
                 "iptables-legacy-save is in PATH or /usr/sbin:/sbin");
        return -ENOENT;
    }
    /* Like istio-iptables: whichever backend already holds rules is the node's choice
     * (the two are invisible to each other); nft when both or neither do. */
    if (has_nft) {
        int ret = count_rules(APPLY_BACKEND_NFT, &n_nft, err, errlen);
        if (ret == -EPERM)
            return ret;
        if (ret < 0)
            log_warn("%s", err);
    }
    if (has_legacy && n_nft == 0) {
        /* Probing legacy can fail on kernels without the legacy tables: no rules there. */
        char e2[256];
        if (count_rules(APPLY_BACKEND_LEGACY, &n_legacy, e2, sizeof(e2)) < 0)
            log_debug("legacy probe: %s", e2);
    }
    if (!has_nft || (n_nft == 0 && n_legacy > 0)) {
        *b = APPLY_BACKEND_LEGACY;
        log_info("iptables backend legacy (%s)",
                 has_nft ? "legacy tables hold rules, nft ones none" : "no iptables-nft");
    } else {
        *b = APPLY_BACKEND_NFT;
        log_info("iptables backend nft (%s)", n_nft         ? "nft tables hold rules"
                                              : !has_legacy ? "no iptables-legacy"
                                              : n_legacy    ? "both hold rules, nft preferred"
                                                            : "no rules yet, nft preferred");
    }
    return 0;
}

static int read_live(enum apply_backend b, int family, bool cleanup, struct rules_live *live,
                     char *err, size_t errlen)
{
    static const char *const args[] = {"-t", "nat", NULL};
    struct rules_text out = {0};
    int ret = run_tool(tool(b, family, false), args, NULL, 0, &out, err, errlen);

    memset(live, 0, sizeof(*live));
    if (ret < 0)
        return ret;
    ret = rules_live_parse(out.buf ? out.buf : "", live, err, errlen);
    rules_text_free(&out);
    if (ret < 0)
        rules_live_free(live);
    else if (rules_live_has_any(live))
        log_info("IPv%d: found %u chain(s) and %u jump(s) of an earlier run; %s them", family,
                 live->n_chains, live->n_jumps, cleanup ? "removing" : "replacing");
    return ret;
}

static int render(const struct rules_opts *o, int family, const struct rules_live *live,
                  struct rules_text *t)
{
    return o->cleanup ? rules_render_cleanup(live, t) : rules_render(o, family, live, t);
}

int apply_plan(const struct rules_opts *o, struct apply_plan *p, char *err, size_t errlen)
{
    struct rules_live live4 = {0}, live6 = {0};
    bool caps = apply_has_net_admin();
    int ret;

    memset(p, 0, sizeof(*p));
    p->cleanup = o->cleanup;
    if (!caps && !o->dry_run) {
        snprintf(err, errlen,
                 "no CAP_NET_ADMIN: run as root, or give the init container "
                 "the NET_ADMIN capability");
        return -EPERM;
    }
    p->v6 = o->ipv6 == RULES_IPV6_ON ||
            (o->ipv6 == RULES_IPV6_AUTO && (o->cleanup || apply_has_routable_ipv6()));

    if (!caps) {
        log_info("dry run without CAP_NET_ADMIN: live rules not read; showing the input "
                 "for a pod without ringmesh rules");
        goto render;
    }
    ret = detect_backend(o->backend, &p->backend, err, errlen);
    if (ret == 0) {
        p->backend_known = true;
        ret = read_live(p->backend, 4, o->cleanup, &live4, err, errlen);
    }
    if (ret == 0 && p->v6) {
        ret = read_live(p->backend, 6, o->cleanup, &live6, err, errlen);
        /* Cleanup in auto mode tries v6 in case an earlier run programmed it; a pod
         * without ip6tables nat simply has nothing there. */
        if (ret < 0 && o->cleanup && o->ipv6 == RULES_IPV6_AUTO && !apply_has_routable_ipv6()) {
            log_debug("IPv6 cleanup skipped: %s", err);
            p->v6 = false;
            ret = 0;
        }
    }
    if (ret < 0 && o->dry_run) {
        log_warn("dry run: live rules not read (%s); showing the input for a pod without "
                 "ringmesh rules",
                 err);
        rules_live_free(&live4);
        rules_live_free(&live6);
        ret = 0;
    } else if (ret < 0) {
        goto out;
    } else {
        p->live_read = true;
    }
render:
    ret = render(o, 4, &live4, &p->text4);
    if (ret == 0 && p->v6)
        ret = render(o, 6, &live6, &p->text6);
    if (ret < 0)
        snprintf(err, errlen, "out of memory rendering rules");
out:
    rules_live_free(&live4);
    rules_live_free(&live6);
    if (ret < 0)
        apply_plan_free(p);
    return ret;
}

/* Adds ::6/128 to lo, the source address of inbound passthrough over IPv6 (v6 loopback
 * is ::1/128 only, unlike 127/8). Already there is fine. */
static int add_lo_v6(char *err, size_t errlen)
{
    /* The kernel's struct in6_ifreq; <linux/ipv6.h> clashes with <netinet/in.h>. */
    struct {
        struct in6_addr addr;
        uint32_t prefix_len;
        int ifindex;
    } req = {.prefix_len = 128};
    int fd, ret = 0;

    req.ifindex = (int)if_nametoindex("lo");
    inet_pton(AF_INET6, "::6", &req.addr);
    fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || req.ifindex == 0) {
        ret = -errno;
        snprintf(err, errlen, "adding ::6/128 to lo: %s", strerror(errno));
    } else if (ioctl(fd, SIOCSIFADDR, &req) < 0 && errno != EEXIST) {
        ret = -errno;
        snprintf(err, errlen, "adding ::6/128 to lo: %s", strerror(errno));
    }
    if (fd >= 0)
        close(fd);
    return ret;
}

static int restore(enum apply_backend b, int family, const struct rules_text *t, char *err,
                   size_t errlen)
{
    static const char *const args[] = {"--noflush", "--wait=" XTABLES_WAIT_S, NULL};

    if (!t->len)
        return 0;
    log_debug("%s input:\n%s", tool(b, family, true), t->buf);
    return run_tool(tool(b, family, true), args, t->buf, t->len, NULL, err, errlen);
}

int apply_commit(const struct apply_plan *p, char *err, size_t errlen)
{
    int ret;

    if (!p->backend_known) {
        snprintf(err, errlen, "no backend chosen");
        return -EINVAL;
    }
    /* ::6 first: adding an address is harmless on its own and is the step most
     * likely to fail (IPv6 disabled on lo), so a failure here leaves no rules behind. */
    if (p->v6 && !p->cleanup && (ret = add_lo_v6(err, errlen)) < 0)
        return ret;
    ret = restore(p->backend, 4, &p->text4, err, errlen);
    if (ret < 0 || !p->v6)
        return ret;
    ret = restore(p->backend, 6, &p->text6, err, errlen);
    if (ret < 0 && p->text4.len) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, " (IPv4 rules were %s; rerun to converge)",
                 p->cleanup ? "removed" : "applied");
    }
    return ret;
}

void apply_plan_free(struct apply_plan *p)
{
    rules_text_free(&p->text4);
    rules_text_free(&p->text6);
}
