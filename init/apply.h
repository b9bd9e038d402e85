/*
 * apply.h - puts rules.c's text into the kernel, or takes it out.
 *
 * Owns everything ringmesh-init does to the system: capability check, choosing the
 * iptables backend (nft or legacy), deciding whether the pod is IPv6, reading live nat
 * state with *-save, and writing with one `*-restore --noflush` transaction per family
 * that both removes any earlier copy of our rules and installs the new one, so a rerun
 * leaves exactly one copy and a failure leaves the table as it was. Also adds ::6/128
 * to lo for IPv6 inbound passthrough, as istio-iptables does.
 * Runs on the main thread; spawns the iptables tools as children and waits for them.
 */
#ifndef RINGMESH_INIT_APPLY_H
#define RINGMESH_INIT_APPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "rules.h"

enum apply_backend {
    APPLY_BACKEND_NFT,    /* iptables-nft-restore / -save and the ip6 twins */
    APPLY_BACKEND_LEGACY, /* iptables-legacy-restore / -save and the ip6 twins */
};

/* One run's decisions and the restore input for each family. Owned by the caller;
 * release with apply_plan_free(). */
struct apply_plan {
    bool cleanup;               /* text removes only */
    enum apply_backend backend; /* valid when backend_known */
    bool backend_known;         /* false in a dry run without CAP_NET_ADMIN */
    bool live_read;             /* live state was read, so text is exactly what applies */
    bool v6;                    /* the IPv6 family is part of this run */
    struct rules_text text4;    /* owned; empty when there is nothing to do */
    struct rules_text text6;    /* owned; empty when !v6 or nothing to do */
};

/* "nft" or "legacy". */
const char *apply_backend_str(enum apply_backend b);

/* True when this process has CAP_NET_ADMIN in its effective set. */
bool apply_has_net_admin(void);

/* True when some interface has a global (2000::/3) or unique-local (fc00::/7) IPv6
 * address: the --ipv6 auto test. Link-local, loopback and ::6 do not count. */
bool apply_has_routable_ipv6(void);

/* Decides backend and families, reads live state when it can, and renders the restore
 * input for apply (or cleanup when o->cleanup). In a dry run without CAP_NET_ADMIN it
 * reads nothing and renders for a pod without our rules. Returns 0, -EPERM (no
 * CAP_NET_ADMIN for a real run), -ENOENT (iptables tools missing), -EBUSY (someone
 * else's rule uses our chains) or -EIO, with err saying which; nothing is changed. */
int apply_plan(const struct rules_opts *o, struct apply_plan *p, char *err, size_t errlen);

/* Writes a plan: v4 transaction, then (when p->v6) ::6/128 on lo and the v6
 * transaction. Each family is atomic; if v6 fails after v4 succeeded, v4 stays applied
 * and the error says so (a rerun converges). 0, -EPERM, -ENOENT or -EIO with err set. */
int apply_commit(const struct apply_plan *p, char *err, size_t errlen);

/* Releases the plan's texts. */
void apply_plan_free(struct apply_plan *p);

#endif
