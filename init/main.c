/*
 * main.c - ringmesh-init: program a pod's nat table so the sidecar sees its traffic.
 *
 * Runs once, in the pod's network namespace, before the app starts (an init container
 * with NET_ADMIN). Parses flags (rules.c), plans and applies (apply.c); --dry-run prints
 * the restore input instead, --cleanup removes our chains and jumps.
 * Exit codes: 0 done, 2 bad command line (nothing changed), 1 could not apply.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "apply.h"
#include "log.h"
#include "rules.h"

static struct rules_opts opts; /* ~15 KiB: too big for a comfortable stack frame */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: ringmesh-init [flags]\n"
        "Writes the pod's nat rules (chains RINGMESH_INBOUND, RINGMESH_IN_REDIRECT,\n"
        "RINGMESH_OUTPUT, RINGMESH_REDIRECT) the way istio-iptables does in REDIRECT mode.\n"
        "Rerunning replaces the earlier copy in one atomic iptables-restore transaction.\n"
        "\n"
        "  -p, --envoy-port PORT            outbound capture port (15001)\n"
        "  -z, --inbound-capture-port PORT  inbound capture port (15006)\n"
        "  -e, --inbound-tunnel-port PORT   HBONE port, never captured (15008)\n"
        "  -u, --proxy-uid UID              proxy user; its traffic is not captured (1337)\n"
        "  -g, --proxy-gid GID              proxy group (defaults to the uid)\n"
        "  -b, --inbound-ports LIST         inbound ports to capture: '*' all (default),\n"
        "                                   '' none, or a comma-separated list\n"
        "  -d, --local-exclude-ports LIST   inbound ports not captured with '*';\n"
        "                                   15090,15021,15020 are always excluded\n"
        "  -q, --outbound-ports LIST        outbound ports always captured\n"
        "  -o, --local-outbound-ports-exclude LIST  outbound ports never captured (tcp+udp)\n"
        "  -i, --service-cidr LIST          outbound CIDRs to capture: '*' all (default),\n"
        "                                   '' none, or v4/v6 CIDRs (host bits are cleared)\n"
        "  -x, --service-exclude-cidr LIST  outbound CIDRs never captured\n"
        "      --ipv6 auto|on|off           program ip6tables: auto = when the pod has a\n"
        "                                   global or ULA IPv6 address (default auto)\n"
        "      --iptables-mode auto|nft|legacy  backend; auto = the one that already holds\n"
        "                                   rules, else nft (default auto)\n"
        "  -n, --dry-run                    print the restore input instead of applying it;\n"
        "                                   needs no root (without NET_ADMIN it shows the\n"
        "                                   input for a pod without ringmesh rules)\n"
        "      --cleanup, --cleanup-only    remove ringmesh's chains and jumps, nothing else\n"
        "  -h, --help                       this text\n"
        "\n"
        "Each flag given twice: the last one wins. Exit: 0 ok, 2 usage error, 1 apply failed.\n");
}

static void print_family(const char *tool, const struct rules_text *t, bool cleanup)
{
    printf("# %s --noflush\n", tool);
    if (t->len)
        fwrite(t->buf, 1, t->len, stdout);
    else if (cleanup)
        printf("# nothing of ringmesh's to remove\n");
}

int main(int argc, char **argv)
{
    struct apply_plan plan;
    char err[1024];
    int ret;

    log_set_program("ringmesh-init");
    /* A restore child that dies early must not take us with it: we want its message. */
    signal(SIGPIPE, SIG_IGN);

    if (rules_opts_parse(&opts, argc, argv, err, sizeof(err)) < 0) {
        log_error("%s", err);
        fprintf(stderr, "usage: ringmesh-init [flags]; ringmesh-init --help lists them\n");
        return 2;
    }
    if (opts.help) {
        usage(stdout);
        return 0;
    }
    if (opts.inbound_exclude_given && !opts.inbound_all)
        log_warn("--local-exclude-ports is ignored unless --inbound-ports is '*'");

    ret = apply_plan(&opts, &plan, err, sizeof(err));
    if (ret < 0) {
        log_error("%s", err);
        return 1;
    }
    if (opts.dry_run) {
        print_family("iptables-restore", &plan.text4, opts.cleanup);
        if (plan.v6)
            print_family("ip6tables-restore", &plan.text6, opts.cleanup);
        fflush(stdout);
        apply_plan_free(&plan);
        return ferror(stdout) ? 1 : 0;
    }
    ret = apply_commit(&plan, err, sizeof(err));
    if (ret < 0) {
        log_error("%s", err);
        apply_plan_free(&plan);
        return 1;
    }
    if (!plan.text4.len && !plan.text6.len)
        log_info("nothing of ringmesh's to remove");
    else
        log_info("%s%s%s rules (%s backend)", opts.cleanup ? "removed" : "applied",
                 plan.text4.len ? " IPv4" : "", plan.text6.len ? " IPv6" : "",
                 apply_backend_str(plan.backend));
    apply_plan_free(&plan);
    return 0;
}
