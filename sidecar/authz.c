/*
 * authz.c - see authz.h.
 */
#include "authz.h"

#include <stdio.h>
#include <string.h>

#include "model.h"

static bool pattern_match(const char *pat, const char *s, size_t len)
{
    size_t pl = strlen(pat);
    if (pl == 1 && pat[0] == '*')
        return true;
    if (pl && pat[pl - 1] == '*')
        return len >= pl - 1 && memcmp(s, pat, pl - 1) == 0;
    if (pl && pat[0] == '*')
        return len >= pl - 1 && memcmp(s + len - (pl - 1), pat + 1, pl - 1) == 0;
    return len == pl && memcmp(s, pat, pl) == 0;
}

static bool any_match(const char *const *pats, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (pattern_match(pats[i], s, len))
            return true;
    return false;
}

/* "spiffe://td/ns/X/sa/Y" -> X */
static bool peer_ns(const char *id, const char **ns, size_t *len)
{
    const char *p = strstr(id, "/ns/");
    if (!p)
        return false;
    *ns = p + 4;
    *len = strcspn(*ns, "/");
    return true;
}

static bool rule_matches(const struct model_authz_rule *r, const struct authz_request *q)
{
    if (r->n_principals) {
        if (!q->principal)
            return false;
        const char *id = q->principal, *bare = id;
        if (strncmp(id, "spiffe://", 9) == 0)
            bare = id + 9;
        if (!any_match(r->principals, r->n_principals, id, strlen(id)) &&
            !any_match(r->principals, r->n_principals, bare, strlen(bare)))
            return false;
    }
    if (r->n_namespaces) {
        const char *ns;
        size_t nl;
        if (!q->principal || !peer_ns(q->principal, &ns, &nl) ||
            !any_match(r->namespaces, r->n_namespaces, ns, nl))
            return false;
    }
    if (r->n_methods) {
        if (!q->method)
            return false;
        bool ok = false;
        for (size_t i = 0; i < r->n_methods && !ok; i++) {
            const char *m = model_method_str(r->methods[i]);
            ok = m && strlen(m) == q->method_len && memcmp(m, q->method, q->method_len) == 0;
        }
        if (!ok)
            return false;
    }
    if (r->n_paths) {
        if (!q->path)
            return false;
        size_t pl = strcspn(q->path, "?");
        if (pl > q->path_len)
            pl = q->path_len;
        if (!any_match(r->paths, r->n_paths, q->path, pl))
            return false;
    }
    if (r->n_ports) {
        bool ok = false;
        for (size_t i = 0; i < r->n_ports && !ok; i++)
            ok = r->ports[i] == q->port;
        if (!ok)
            return false;
    }
    return true;
}

bool authz_allowed(const struct model_set *m, const char *pod_ns, const char *service,
                   const struct authz_request *r, const char **why, char *buf, size_t buflen)
{
    bool have_allow = false, allowed = false;
    *why = "";
    for (size_t i = 0; m && i < m->n_authz_policies; i++) {
        const struct model_authz_policy *p = &m->authz_policies[i];
        if (strcmp(p->meta.ns, pod_ns ? pod_ns : "default") != 0)
            continue;
        if (p->target && (!service || strcmp(p->target, service) != 0))
            continue;
        bool hit = false;
        for (size_t j = 0; j < p->n_rules && !hit; j++)
            hit = rule_matches(&p->rules[j], r);
        if (p->action == MODEL_AUTHZ_DENY && hit) {
            snprintf(buf, buflen, "DENY policy %s/%s", p->meta.ns, p->meta.name);
            *why = buf;
            return false;
        }
        if (p->action == MODEL_AUTHZ_ALLOW) {
            have_allow = true;
            allowed = allowed || hit;
        }
    }
    if (have_allow && !allowed) {
        *why = "no ALLOW policy matched";
        return false;
    }
    return true;
}
