/*
 * peer_authn_test.c - which PeerAuthentication mode an inbound connection gets: the pod's
 * labels from --pod-labels (a list, or the Downward API's file) and $POD_LABELS with their
 * errors; then Istio's precedence over real compiled snapshots: mesh-wide (namespace
 * ringmesh-system) < namespace < workload (selector on the pod's labels), UNSET inheriting,
 * port-level modes, another namespace's and a non-matching selector's policies ignored, the
 * oldest of two at one level winning.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "options.h"
#include "tap.h"

static char dir[] = "/tmp/peer_authn_test.XXXXXX";

static enum options_result parse(struct sidecar_options *o, char *err, size_t len, const char *a1,
                                 const char *a2, const char *a3, const char *a4)
{
    char *argv[] = {"ringmesh-sidecar", (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
    int argc = 1;
    while (argv[argc])
        argc++;
    err[0] = 0;
    return options_parse(o, argc, argv, err, len);
}

static const char *write_tmp(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

/* A PeerAuthentication document. */
static void pa(char *out, size_t len, const char *ns, const char *name, const char *created,
               const char *selector, const char *mode, const char *ports)
{
    char *p = out + strlen(out);
    snprintf(p, len - strlen(out),
             "---\napiVersion: ringmesh.io/v1alpha1\nkind: PeerAuthentication\n"
             "metadata: {name: %s, namespace: %s%s%s%s}\nspec:\n%s%s%s%s%s%s\n",
             name, ns, created ? ", creationTimestamp: \"" : "", created ? created : "",
             created ? "\"" : "", selector ? "  selector: {matchLabels: {" : "",
             selector ? selector : "", selector ? "}}\n" : "", mode ? "  mtls: {mode: " : "",
             mode ? mode : "", mode ? "}" : "");
    if (ports)
        snprintf(out + strlen(out), len - strlen(out), "  portLevelMtls: {%s}\n", ports);
}

static const char *mode_name(enum http_mtls_mode m)
{
    return m == HTTP_MTLS_STRICT ? "STRICT" : m == HTTP_MTLS_DISABLE ? "DISABLE" : "PERMISSIVE";
}

/* The mode for port under the policies in yaml, for a pod in ns with labels. */
static const char *mode_for(const char *yaml, const char *ns, const char *labels, uint16_t port)
{
    static char err[512];
    struct sidecar_options o;
    if (parse(&o, err, sizeof(err), "--pod-namespace", ns, labels ? "--pod-labels" : NULL,
              labels) != OPTIONS_OK) {
        printf("#   options: %s\n", err);
        return "options error";
    }
    struct config_snapshot *s = config_load(write_tmp("mesh.yaml", yaml), err, sizeof(err));
    if (!s) {
        printf("#   config: %s\n", err);
        return "config error";
    }
    const char *m = mode_name(http_inbound_mtls(s, &o, port));
    config_release(s);
    return m;
}

int main(void)
{
    struct sidecar_options o;
    char err[512];
    if (!mkdtemp(dir))
        return 1;
    unsetenv("POD_LABELS");

    /* ---- labels */
    is_int(parse(&o, err, sizeof(err), "--pod-labels", "app=web,version=v1", NULL, NULL),
           OPTIONS_OK, "--pod-labels app=web,version=v1");
    ok(o.n_pod_labels == 2 && !strcmp(o.pod_labels[0].key, "app") &&
           !strcmp(o.pod_labels[0].value, "web") && !strcmp(o.pod_labels[1].key, "version") &&
           !strcmp(o.pod_labels[1].value, "v1"),
       "two labels, in order");
    is_int(parse(&o, err, sizeof(err), "--pod-labels", "example.com/tier=", NULL, NULL),
           OPTIONS_OK, "a prefixed key and an empty value");
    const char *f = write_tmp("labels", "app=\"web\"\npod-template-hash=\"7d9f8\"\n"
                                        "security.istio.io/tlsMode=\"istio\"\n");
    char at[600];
    snprintf(at, sizeof(at), "@%s", f);
    is_int(parse(&o, err, sizeof(err), "--pod-labels", at, NULL, NULL), OPTIONS_OK,
           "--pod-labels @FILE (the Downward API's format)");
    ok(o.n_pod_labels == 3 && !strcmp(o.pod_labels[2].key, "security.istio.io/tlsMode") &&
           !strcmp(o.pod_labels[2].value, "istio"),
       "three labels from the file");
    setenv("POD_LABELS", "app=api", 1);
    is_int(parse(&o, err, sizeof(err), NULL, NULL, NULL, NULL), OPTIONS_OK, "$POD_LABELS");
    ok(o.n_pod_labels == 1 && !strcmp(o.pod_labels[0].value, "api"), "$POD_LABELS read");
    is_int(parse(&o, err, sizeof(err), "--pod-labels", "app=web", NULL, NULL), OPTIONS_OK,
           "the flag over $POD_LABELS");
    ok(o.n_pod_labels == 1 && !strcmp(o.pod_labels[0].value, "web"), "the flag wins");
    unsetenv("POD_LABELS");
    struct {
        const char *arg, *want;
    } bads[] = {
        {"app", "--pod-labels: bad label 'app': want key=value"},
        {"app=web,=x", "bad label '=x'"},
        {"app=has space", "bad label 'app=has space'"},
        {"app=web!", "bad label 'app=web!'"},
        {"@/nonexistent/labels", "--pod-labels: /nonexistent/labels: No such file or directory"},
    };
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++)
        ok(parse(&o, err, sizeof(err), "--pod-labels", bads[i].arg, NULL, NULL) == OPTIONS_ERROR &&
               strstr(err, bads[i].want),
           "--pod-labels %s is refused: %s", bads[i].arg, err);
    f = write_tmp("badlabels", "app=\"web\"\nversion=v1\n");
    snprintf(at, sizeof(at), "@%s", f);
    ok(parse(&o, err, sizeof(err), "--pod-labels", at, NULL, NULL) == OPTIONS_ERROR &&
           strstr(err, "line 2: bad label 'version=v1'"),
       "an unquoted value in the file is refused with its line: %s", err);
    setenv("POD_LABELS", "nope", 1);
    ok(parse(&o, err, sizeof(err), NULL, NULL, NULL, NULL) == OPTIONS_ERROR &&
           strstr(err, "POD_LABELS: bad label 'nope'"),
       "a bad $POD_LABELS names the variable: %s", err);
    unsetenv("POD_LABELS");

    /* ---- precedence */
    char y[8192] = "";
    is_str(mode_for("", "default", NULL, 8080), "PERMISSIVE", "no policy: PERMISSIVE");
    pa(y, sizeof(y), "ringmesh-system", "mesh", NULL, NULL, "STRICT", NULL);
    is_str(mode_for(y, "default", NULL, 8080), "STRICT", "mesh-wide STRICT applies everywhere");
    is_str(mode_for(y, "other", NULL, 8080), "STRICT", "... in every namespace");
    pa(y, sizeof(y), "default", "ns", NULL, NULL, "PERMISSIVE", "\"9000\": {mode: DISABLE}");
    is_str(mode_for(y, "default", NULL, 8080), "PERMISSIVE", "the namespace's overrides the mesh's");
    is_str(mode_for(y, "default", NULL, 9000), "DISABLE", "its port-level mode for port 9000");
    is_str(mode_for(y, "other", NULL, 8080), "STRICT", "another namespace keeps the mesh's");
    pa(y, sizeof(y), "default", "web", NULL, "app: web", "STRICT", NULL);
    is_str(mode_for(y, "default", "app=web,version=v1", 8080), "STRICT",
           "a workload policy whose selector matches the pod's labels wins");
    is_str(mode_for(y, "default", "app=web,version=v1", 9000), "STRICT",
           "... on every port (its own mode over the namespace's port level)");
    is_str(mode_for(y, "default", "app=api", 8080), "PERMISSIVE",
           "a selector that does not match: the namespace's");
    is_str(mode_for(y, "default", NULL, 8080), "PERMISSIVE", "no labels: no workload policy");
    char y2[8192] = "";
    pa(y2, sizeof(y2), "default", "ns", NULL, NULL, "STRICT", NULL);
    pa(y2, sizeof(y2), "default", "web", NULL, "app: web, tier: front", NULL,
       "\"8443\": {mode: DISABLE}");
    is_str(mode_for(y2, "default", "app=web,tier=front", 8080), "STRICT",
           "a workload policy with mode UNSET inherits the namespace's");
    is_str(mode_for(y2, "default", "app=web,tier=front", 8443), "DISABLE",
           "... and its port level still applies");
    is_str(mode_for(y2, "default", "app=web", 8443), "STRICT",
           "a selector needs every label it names");
    char y3[8192] = "";
    pa(y3, sizeof(y3), "default", "b-newer", "2026-01-02T00:00:00Z", NULL, "DISABLE", NULL);
    pa(y3, sizeof(y3), "default", "a-older", "2026-01-01T00:00:00Z", NULL, "STRICT", NULL);
    is_str(mode_for(y3, "default", NULL, 8080), "STRICT",
           "two namespace-wide policies: the older one wins");
    pa(y3, sizeof(y3), "other", "x", NULL, NULL, "DISABLE", NULL);
    is_str(mode_for(y3, "default", NULL, 8080), "STRICT", "another namespace's policy is ignored");

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    config_shutdown();
    return tap_done();
}
