/*
 * router_test.c - the HTTPRoute router (sidecar/router*.c), fed through the real model
 * (model_load_buffer on YAML written here): precedence tables with every tie-break, path /
 * header / query / method edge cases, hostname tiers, GAMMA producer vs consumer, weighted
 * backends (90/10 over 100,000 draws), every filter with the CONVENTIONS §5 examples,
 * redirect Locations, authority canonicalisation, VIP lookup over 10,000 Services, and
 * concurrent matching from several threads sharing one table.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "model.h"
#include "router.h"
#include "tap.h"

/* ---- fixtures ---- */

#define SVC(name, ns, ip, ports)                                                                   \
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: " name ", namespace: " ns "}\n"          \
    "spec:\n  clusterIP: " ip "\n  ports: " ports "\n"

/* web (two ports) and v1, v2, v3 backends in default; the same in prod. */
#define BASE                                                                                       \
    SVC("web", "default", "10.96.0.10", "[{name: http, port: 80}, {name: admin, port: 8080}]")     \
    SVC("v1", "default", "10.96.0.11", "[{port: 80}]")                                             \
    SVC("v2", "default", "10.96.0.12", "[{port: 80}]")                                             \
    SVC("v3", "default", "10.96.0.13", "[{port: 80}]")                                             \
    SVC("web", "prod", "10.96.1.10", "[{name: http, port: 80}, {name: admin, port: 8080}]")        \
    SVC("v1", "prod", "10.96.1.11", "[{port: 80}]")                                                \
    SVC("v2", "prod", "10.96.1.12", "[{port: 80}]")

#define ROUTE_HEAD(name, ns, meta)                                                                 \
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"                             \
    "metadata: {name: " name ", namespace: " ns meta "}\nspec:\n"
#define PARENT(svc, ns)                                                                            \
    "  parentRefs: [{group: \"\", kind: Service, name: " svc ", namespace: " ns "}]\n"
/* A route on default/web with the given rules. */
#define ROUTE(name, rules)                                                                         \
    ROUTE_HEAD(name, "default", "") PARENT("web", "default") "  rules:\n" rules
#define ROUTE_TS(name, ts, rules)                                                                  \
    ROUTE_HEAD(name, "default", ", creationTimestamp: \"" ts "\"")                                 \
    PARENT("web", "default") "  rules:\n" rules
#define RULE(name, matches)                                                                        \
    "  - name: " name "\n    matches: " matches "\n    backendRefs: [{name: v1, port: 80}]\n"

static struct model_set *load(const char *yaml)
{
    char err[512];
    struct model_set *set = model_load_buffer("test", yaml, strlen(yaml), err, sizeof(err));
    if (!set)
        printf("# model: %s\n", err);
    return set;
}

struct fix {
    struct model_set *set;
    struct router_table *t;
};

static bool fix_open(struct fix *f, const char *yaml)
{
    char err[512];
    f->t = NULL;
    if (!(f->set = load(yaml)))
        return false;
    if (!(f->t = router_table_new(f->set, NULL, err, sizeof(err)))) {
        printf("# router: %s\n", err);
        model_set_free(f->set);
        return false;
    }
    return true;
}

static void fix_close(struct fix *f)
{
    router_table_free(f->t);
    model_set_free(f->set);
}

static struct router_scratch *scratch;

/* Headers as "name: value\n" lines into v (views into the string). */
static size_t parse_headers(const char *s, struct router_header *v, size_t cap)
{
    size_t n = 0;
    while (s && *s && n < cap) {
        const char *nl = strchr(s, '\n'), *end = nl ? nl : s + strlen(s);
        const char *colon = memchr(s, ':', (size_t)(end - s));
        if (!colon)
            break;
        const char *val = colon + 1;
        while (val < end && *val == ' ')
            val++;
        v[n++] = (struct router_header){s, (size_t)(colon - s), val, (size_t)(end - val)};
        s = nl ? nl + 1 : end;
    }
    return n;
}

struct rq {
    const char *method, *path, *host, *headers, *ns;
};

static void make_req(const struct rq *q, struct router_request *r, struct router_header *hv,
                     size_t cap)
{
    memset(r, 0, sizeof(*r));
    r->method = q->method ? q->method : "GET";
    r->method_len = strlen(r->method);
    r->path = q->path ? q->path : "/";
    r->path_len = strlen(r->path);
    r->authority = q->host ? q->host : "web";
    r->authority_len = strlen(r->authority);
    r->n_headers = parse_headers(q->headers, hv, cap);
    r->headers = hv;
    r->client_ns = q->ns;
}

/* "route/rule", or "NR", "default", "500", "redirect" prefixed results. */
static const char *outcome(const struct router_table *t, const struct router_port *dst,
                           const struct rq *q, uint64_t rnd, struct router_result *res)
{
    static char buf[128];
    struct router_header hv[16];
    struct router_request r;
    make_req(q, &r, hv, 16);
    enum router_status st = router_route(t, dst, &r, rnd, scratch, res);
    if (st == ROUTER_NO_ROUTE)
        return "NR";
    if (res->is_default)
        return "default";
    snprintf(buf, sizeof(buf), "%s%s/%s", st == ROUTER_NO_BACKEND ? "500:" : "",
             res->rule->route->meta.name, res->rule->src->name ? res->rule->src->name : "-");
    return buf;
}

static const struct router_port *web_port(const struct router_table *t, const char *ns,
                                          uint16_t port)
{
    return router_service_port(router_find_service(t, ns, "web"), port);
}

/* ---- precedence tables ---- */

struct scenario {
    const char *name;
    const char *routes;
    struct {
        struct rq q;
        const char *want;
    } cases[10];
};

static const struct scenario scenarios[] = {
    {"Exact beats PathPrefix",
     ROUTE("r1", RULE("a", "[{path: {type: PathPrefix, value: /foo}}]"))
         ROUTE("r2", RULE("b", "[{path: {type: Exact, value: /foo/bar}}]")),
     {{{.path = "/foo/bar"}, "r2/b"},
      {{.path = "/foo/baz"}, "r1/a"},
      {{.path = "/foo"}, "r1/a"},
      {{.path = "/foo/bar/"}, "r1/a"},
      {{.path = "/foo/bar?x=1"}, "r2/b"},
      {{.path = "/bar"}, "NR"}}},
    {"longest PathPrefix wins over rule order",
     ROUTE("r1", RULE("a", "[{path: {type: PathPrefix, value: /foo}}]")
                     RULE("b", "[{path: {type: PathPrefix, value: /foo/bar}}]")),
     {{{.path = "/foo/bar/baz"}, "r1/b"},
      {{.path = "/foo/bar"}, "r1/b"},
      {{.path = "/foo/barx"}, "r1/a"},
      {{.path = "/foo/"}, "r1/a"},
      {{.path = "/foox"}, "NR"}}},
    {"trailing slash on a prefix does not count",
     ROUTE("r1", RULE("a", "[{path: {type: PathPrefix, value: /abc/}}]")),
     {{{.path = "/abc"}, "r1/a"},
      {{.path = "/abc/"}, "r1/a"},
      {{.path = "/abc/def"}, "r1/a"},
      {{.path = "/abcd"}, "NR"},
      {{.path = "/ABC"}, "NR"}}},
    {"PathPrefix (even /) beats RegularExpression",
     ROUTE("r1", RULE("re", "[{path: {type: RegularExpression, value: \"/foo/.*\"}}]")
                     RULE("root", "[{path: {type: PathPrefix, value: /}}]")),
     {{{.path = "/foo/x"}, "r1/root"}, {{.path = "/"}, "r1/root"}}},
    {"regex after prefixes, longer pattern first",
     ROUTE("r1", RULE("short", "[{path: {type: RegularExpression, value: \"/fo.*\"}}]")
                     RULE("long", "[{path: {type: RegularExpression, value: \"/foo/[a-z]+\"}}]")
                         RULE("pre", "[{path: {type: PathPrefix, value: /foo/abc}}]")),
     {{{.path = "/foo/abc"}, "r1/pre"},
      {{.path = "/foo/xyz"}, "r1/long"},
      {{.path = "/foo/x1"}, "r1/short"},
      {{.path = "/bar"}, "NR"}}},
    {"method beats headers and query",
     ROUTE("r1", RULE("hdr", "[{path: {value: /api}, headers: [{name: x-a, value: \"1\"}, {name: "
                             "x-b, value: \"2\"}], queryParams: [{name: q, value: \"1\"}]}]")
                     RULE("get", "[{path: {value: /api}, method: GET}]")),
     {{{.path = "/api/x?q=1", .headers = "x-a: 1\nx-b: 2"}, "r1/get"},
      {{.method = "POST", .path = "/api/x?q=1", .headers = "x-a: 1\nx-b: 2"}, "r1/hdr"},
      {{.method = "POST", .path = "/api/x", .headers = "x-a: 1\nx-b: 2"}, "NR"}}},
    {"path beats method",
     ROUTE("r1",
           RULE("m", "[{path: {value: /api}, method: GET, headers: [{name: x-a, value: \"1\"}]}]")
               RULE("p", "[{path: {value: /api/v1}}]")),
     {{{.path = "/api/v1/z", .headers = "x-a: 1"}, "r1/p"},
      {{.path = "/api/v2", .headers = "x-a: 1"}, "r1/m"}}},
    {"most header matches",
     ROUTE("r1", RULE("one", "[{path: {value: /}, headers: [{name: x-a, value: \"1\"}]}]")
                     RULE("two", "[{path: {value: /}, headers: [{name: x-a, value: \"1\"}, "
                                 "{name: x-b, value: \"2\"}]}]")),
     {{{.headers = "x-a: 1\nx-b: 2"}, "r1/two"},
      {{.headers = "x-a: 1\nx-b: 3"}, "r1/one"},
      {{.headers = "x-b: 2"}, "NR"}}},
    {"most query matches",
     ROUTE("r1", RULE("one", "[{queryParams: [{name: a, value: \"1\"}]}]") RULE(
                     "two", "[{queryParams: [{name: a, value: \"1\"}, {name: b, value: \"2\"}]}]")),
     {{{.path = "/?a=1&b=2"}, "r1/two"},
      {{.path = "/?b=2&a=1"}, "r1/two"},
      {{.path = "/?a=1"}, "r1/one"}}},
    {"headers beat query",
     ROUTE("r1", RULE("q", "[{queryParams: [{name: a, value: \"1\"}, {name: b, value: \"2\"}]}]")
                     RULE("h", "[{headers: [{name: x-a, value: \"1\"}]}]")),
     {{{.path = "/?a=1&b=2", .headers = "x-a: 1"}, "r1/h"}, {{.path = "/?a=1&b=2"}, "r1/q"}}},
    {"oldest creationTimestamp wins a tie",
     ROUTE_TS("a-new", "2024-06-01T00:00:00Z", RULE("x", "[{path: {value: /t}}]"))
         ROUTE_TS("z-old", "2023-01-01T00:00:00Z", RULE("y", "[{path: {value: /t}}]")),
     {{{.path = "/t"}, "z-old/y"}}},
    {"then namespace/name alphabetically",
     ROUTE_TS("beta", "2024-01-01T00:00:00Z", RULE("x", "[{path: {value: /t}}]"))
         ROUTE_TS("alpha", "2024-01-01T00:00:00Z", RULE("y", "[{path: {value: /t}}]"))
             ROUTE_TS("alpha-2", "2024-01-01T00:00:00Z", RULE("z", "[{path: {value: /t}}]")),
     {{{.path = "/t"}, "alpha/y"}}},
    {"no timestamps: alphabetical",
     ROUTE("m", RULE("x", "[{path: {value: /t}}]")) ROUTE("b", RULE("y", "[{path: {value: /t}}]")),
     {{{.path = "/t"}, "b/y"}}},
    {"then rule order",
     ROUTE("r1", RULE("first", "[{path: {value: /t}}]") RULE("second", "[{path: {value: /t}}]")),
     {{{.path = "/t/u"}, "r1/first"}}},
    {"precedence across routes beats route age",
     ROUTE_TS("old", "2020-01-01T00:00:00Z", RULE("x", "[{path: {value: /t}}]"))
         ROUTE_TS("new", "2024-01-01T00:00:00Z", RULE("y", "[{path: {value: /t/u}}]")),
     {{{.path = "/t/u"}, "new/y"}, {{.path = "/t/v"}, "old/x"}}},
    {"matches are OR'ed, fields AND'ed",
     ROUTE("r1", RULE("or", "[{path: {type: Exact, value: /a}}, {path: {type: Exact, value: /b}, "
                            "method: PUT}]")),
     {{{.path = "/a"}, "r1/or"},
      {{.path = "/b"}, "NR"},
      {{.method = "PUT", .path = "/b"}, "r1/or"}}},
};

static void test_precedence(void)
{
    char yaml[16384];
    for (size_t s = 0; s < sizeof(scenarios) / sizeof(scenarios[0]); s++) {
        const struct scenario *sc = &scenarios[s];
        struct fix f;
        snprintf(yaml, sizeof(yaml), "%s%s", BASE, sc->routes);
        if (!ok(fix_open(&f, yaml), "precedence: %s: loads", sc->name))
            continue;
        for (size_t i = 0; i < 10 && sc->cases[i].want; i++) {
            struct router_result res;
            const struct rq *q = &sc->cases[i].q;
            char name[256];
            snprintf(name, sizeof(name), "precedence: %s: %s %s [%s]", sc->name,
                     q->method ? q->method : "GET", q->path ? q->path : "/",
                     q->headers ? q->headers : "");
            for (char *c = name; *c; c++)
                if (*c == '\n')
                    *c = ',';
            is_str(outcome(f.t, web_port(f.t, "default", 80), q, 0, &res), sc->cases[i].want, name);
        }
        fix_close(&f);
    }
}

/* The match that won within one rule: the first of equal matches. */
static void test_match_order(void)
{
    struct fix f;
    const char *y = BASE ROUTE("r1", RULE("a", "[{headers: [{name: h1, value: \"1\"}]}, "
                                               "{headers: [{name: h2, value: \"1\"}]}]"));
    if (!ok(fix_open(&f, y), "match order: loads"))
        return;
    struct router_result res;
    struct rq q = {.headers = "h2: 1\nh1: 1"};
    is_str(outcome(f.t, web_port(f.t, "default", 80), &q, 0, &res), "r1/a", "match order: rule");
    ok(res.match == &res.rule->src->matches[0], "match order: the first match of equals wins");
    q.headers = "h2: 1";
    outcome(f.t, web_port(f.t, "default", 80), &q, 0, &res);
    ok(res.match == &res.rule->src->matches[1], "match order: the second when only it matches");
    fix_close(&f);
}

/* ---- matching edge cases ---- */

static void test_matching(void)
{
    struct fix f;
    const char *y = BASE ROUTE(
        "m",
        RULE("hdr", "[{path: {type: Exact, value: /h}, headers: [{name: X-Env, value: prod}]}]")
            RULE("hre", "[{path: {type: Exact, value: /hr}, headers: [{type: RegularExpression, "
                        "name: x-v, value: \"v[0-9]+\"}]}]")
                RULE("q", "[{path: {type: Exact, value: /q}, queryParams: [{name: name, value: "
                          "\"x y\"}]}]")
                    RULE("qre", "[{path: {type: Exact, value: /qr}, queryParams: [{type: "
                                "RegularExpression, name: id, value: \"[0-9]{3}\"}]}]")
                        RULE("alt", "[{path: {type: RegularExpression, value: \"/(a|ab)\"}}]") RULE(
                            "any", "[{path: {type: RegularExpression, value: \"/any/.*\"}}]")
                            RULE("evil", "[{path: {type: RegularExpression, value: "
                                         "\"/e/(a|aa)+\"}}]")
                                RULE("utf", "[{path: {type: RegularExpression, value: "
                                            "\"/u/\\\\p{L}+\"}}]")
                                    RULE("host", "[{path: {type: Exact, value: /host}, headers: "
                                                 "[{name: host, value: web}]}]")
                                        RULE("del", "[{path: {type: Exact, value: /m}, method: "
                                                    "DELETE}]"));
    if (!ok(fix_open(&f, y), "matching: loads"))
        return;
    const struct router_port *p = web_port(f.t, "default", 80);
    struct router_result res;
    static const struct {
        struct rq q;
        const char *want;
        const char *name;
    } cases[] = {
        {{.path = "/h", .headers = "x-env: prod"}, "m/hdr", "header names are case-insensitive"},
        {{.path = "/h", .headers = "X-ENV: prod"}, "m/hdr", "header names, upper case"},
        {{.path = "/h", .headers = "x-env: Prod"}, "NR", "header values are case-sensitive"},
        {{.path = "/h", .headers = "x-env: dev\nx-env: prod"},
         "NR",
         "duplicate header: first wins"},
        {{.path = "/h", .headers = "x-env: prod\nx-env: dev"},
         "m/hdr",
         "duplicate header: first wins (2)"},
        {{.path = "/h"}, "NR", "missing header"},
        {{.path = "/hr", .headers = "x-v: v12"}, "m/hre", "header regex"},
        {{.path = "/hr", .headers = "x-v: v12a"}, "NR", "header regex is a full match (tail)"},
        {{.path = "/hr", .headers = "x-v: av1"}, "NR", "header regex is a full match (head)"},
        {{.path = "/q?name=x%20y"}, "m/q", "query value percent-decoded"},
        {{.path = "/q?na%6De=x%20y"}, "m/q", "query name percent-decoded"},
        {{.path = "/q?a=1&name=x%20y&b"}, "m/q", "query among others"},
        {{.path = "/q?name=x+y"}, "NR", "'+' is not a space"},
        {{.path = "/q?name=z&name=x%20y"}, "NR", "repeated query param: first value"},
        {{.path = "/q?Name=x%20y"}, "NR", "query names are case-sensitive"},
        {{.path = "/q?name"}, "NR", "query param without a value"},
        {{.path = "/q"}, "NR", "no query"},
        {{.path = "/qr?id=123"}, "m/qre", "query regex"},
        {{.path = "/qr?id=1234"}, "NR", "query regex is a full match"},
        {{.path = "/ab"}, "m/alt", "regex alternation backtracks to the end"},
        {{.path = "/a"}, "m/alt", "regex alternation, short"},
        {{.path = "/abc"}, "NR", "regex does not match a prefix"},
        {{.path = "/any/\xff\xfe"}, "m/any", "regex on invalid UTF-8 bytes"},
        {{.path = "/any/x?y=/z"}, "m/any", "regex sees no query"},
        {{.path = "/u/h\xc3\xa9llo"}, "m/utf", "a Unicode pattern runs in UTF mode"},
        {{.path = "/u/h\xe9llo"}, "NR", "UTF mode: invalid UTF-8 matches nothing, safely"},
        {{.path = "/host", .host = "web"}, "m/host", "host matcher falls back to the authority"},
        {{.path = "/host", .host = "web", .headers = "Host: other"},
         "NR",
         "a Host field wins over the authority"},
        {{.method = "DELETE", .path = "/m"}, "m/del", "method"},
        {{.method = "delete", .path = "/m"}, "NR", "methods are case-sensitive"},
        {{.method = "DELETEX", .path = "/m"}, "NR", "method length"},
        {{.path = "/h?x-env=prod"}, "NR", "a query is not a header"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        is_str(outcome(f.t, p, &cases[i].q, 0, &res), cases[i].want, cases[i].name);

    /* Catastrophic backtracking stops at the match limit and counts. */
    char evil[200] = "/e/";
    memset(evil + 3, 'a', 60);
    evil[63] = '!';
    struct rq q = {.path = evil};
    is_str(outcome(f.t, p, &q, 0, &res), "NR", "regex: catastrophic pattern does not match");
    ok(res.regex_errors > 0, "regex: the match limit is counted (%u)", res.regex_errors);

    /* A query value longer than the decode buffer matches nothing. */
    static char longq[ROUTER_QUERY_VALUE_MAX + 64];
    strcpy(longq, "/qr?id=");
    memset(longq + 7, '1', ROUTER_QUERY_VALUE_MAX + 10);
    q.path = longq;
    is_str(outcome(f.t, p, &q, 0, &res), "NR", "query value over the buffer: no match");
    fix_close(&f);
}

/* ---- hostnames ---- */

static void test_hostnames(void)
{
    struct fix f;
    const char *y = BASE ROUTE_HEAD("exact", "default", "")
        PARENT("web", "default") "  hostnames: [foo.example.com]\n  rules:\n" RULE(
            "a", "[{path: {type: Exact, value: /only}}]") ROUTE_HEAD("wild", "default", "")
            PARENT("web", "default") "  hostnames: [\"*.example.com\"]\n  rules:\n" RULE(
                "b", "[{path: {value: /w}}]") ROUTE_HEAD("wild2", "default", "")
                PARENT("web", "default") "  hostnames: [\"*.api.example.com\"]\n  rules:\n" RULE(
                    "c", "[{path: {value: /w}}]") ROUTE("any", RULE("d", "[{path: {value: /}}]"));
    if (!ok(fix_open(&f, y), "hostnames: loads"))
        return;
    const struct router_port *p = web_port(f.t, "default", 80);
    struct router_result res;
    static const struct {
        struct rq q;
        const char *want;
        const char *name;
    } cases[] = {
        {{.path = "/only", .host = "foo.example.com"}, "exact/a", "exact hostname"},
        {{.path = "/only", .host = "FOO.Example.COM:8080"}, "exact/a", "case and port ignored"},
        {{.path = "/only", .host = "foo.example.com."}, "exact/a", "trailing dot ignored"},
        {{.path = "/other", .host = "foo.example.com"},
         "any/d",
         "falls through to less specific routes"},
        {{.path = "/w", .host = "foo.example.com"}, "wild/b", "exact route misses, wildcard next"},
        {{.path = "/w", .host = "bar.example.com"}, "wild/b", "wildcard"},
        {{.path = "/w", .host = "a.b.example.com"}, "wild/b", "wildcard takes several labels"},
        {{.path = "/w", .host = "x.api.example.com"}, "wild2/c", "longer wildcard first"},
        {{.path = "/w", .host = "example.com"}, "any/d", "wildcard needs one more label"},
        {{.path = "/w", .host = "xexample.com"}, "any/d", "wildcard suffix is on a label boundary"},
        {{.path = "/only", .host = "web"}, "any/d", "no hostnames: every host"},
        {{.path = "/only", .host = "[::1]:80"}, "any/d", "IPv6 authority"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        is_str(outcome(f.t, p, &cases[i].q, 0, &res), cases[i].want, cases[i].name);
    fix_close(&f);

    /* Every route names hosts: another host finds nothing. */
    y = BASE ROUTE_HEAD("exact", "default", "")
        PARENT("web", "default") "  hostnames: [foo.example.com]\n  rules:\n" RULE(
            "a", "[{path: {value: /}}]");
    if (!ok(fix_open(&f, y), "hostnames only: loads"))
        return;
    struct rq q = {.host = "bar.example.com"};
    is_str(outcome(f.t, web_port(f.t, "default", 80), &q, 0, &res), "NR",
           "hostnames: no route for another host");
    fix_close(&f);
}

/* ---- GAMMA ---- */

static void test_gamma(void)
{
    struct fix f;
    const char *y = BASE
        /* producer, every port of prod/web */
        ROUTE_HEAD("prod-route", "prod", "")
            PARENT("web", "prod") "  rules:\n"
                                  "  - name: p\n    backendRefs: [{name: v1, port: 80}]\n"
        /* consumer in team-a, port 80 only, /special only */
        ROUTE_HEAD("team-a-route", "team-a",
                   "") "  parentRefs: [{group: \"\", kind: Service, name: web, namespace: prod, "
                       "port: 80}]\n"
                       "  rules:\n  - name: c\n    matches: [{path: {value: /special}}]\n"
                       "    backendRefs: [{name: v2, namespace: prod, port: 80}]\n"
        /* a second consumer route in team-a merges with the first */
        ROUTE_HEAD("team-a-more", "team-a",
                   "") "  parentRefs: [{group: \"\", kind: Service, name: web, namespace: prod, "
                       "port: 80}]\n"
                       "  rules:\n  - name: c2\n    matches: [{path: {value: /more}}]\n"
                       "    backendRefs: [{name: v2, namespace: prod, port: 80}]\n"
        /* consumer in team-z, only on default/web (which has no producer routes) */
        ROUTE_HEAD("team-z-route", "team-z", "") PARENT(
            "web",
            "default") "  rules:\n"
                       "  - name: z\n    backendRefs: [{name: v3, namespace: default, port: 80}]\n"
        /* sectionName selects the admin port of default/v1 */
        ROUTE_HEAD("admin-only", "prod",
                   "") "  parentRefs: [{group: \"\", kind: Service, name: web, namespace: prod, "
                       "sectionName: admin}]\n"
                       "  rules:\n  - name: adm\n    matches: [{path: {value: /admin}}]\n"
                       "    backendRefs: [{name: v2, port: 80}]\n"
        /* a parent that does not exist */
        ROUTE_HEAD("orphan", "prod", "")
            PARENT("nope", "prod") "  rules:\n"
                                   "  - name: o\n    backendRefs: [{name: v2, port: 80}]\n";
    if (!ok(fix_open(&f, y), "gamma: loads"))
        return;
    const struct router_port *p80 = web_port(f.t, "prod", 80), *p8080 = web_port(f.t, "prod", 8080);
    const struct router_port *d80 = web_port(f.t, "default", 80);
    struct router_result res;
    struct rq q = {.ns = "prod"};
    is_str(outcome(f.t, p80, &q, 0, &res), "prod-route/p",
           "gamma: producer route for its own namespace");
    q.ns = "team-b";
    is_str(outcome(f.t, p80, &q, 0, &res), "prod-route/p",
           "gamma: producer route for any other client");
    q.ns = NULL;
    is_str(outcome(f.t, p80, &q, 0, &res), "prod-route/p", "gamma: client ns NULL = default");
    q.ns = "team-a";
    q.path = "/special/x";
    is_str(outcome(f.t, p80, &q, 0, &res), "team-a-route/c",
           "gamma: consumer route for its namespace");
    ok(res.backend &&
           res.backend->target == router_service_port(router_find_service(f.t, "prod", "v2"), 80),
       "gamma: consumer backend in the producer's namespace resolves");
    q.path = "/more";
    is_str(outcome(f.t, p80, &q, 0, &res), "team-a-more/c2",
           "gamma: consumer routes of one namespace merge");
    q.path = "/other";
    is_str(outcome(f.t, p80, &q, 0, &res), "NR",
           "gamma: consumer routes replace producer routes (no fallback)");
    is_str(outcome(f.t, p8080, &q, 0, &res), "prod-route/p",
           "gamma: a consumer route on port 80 leaves port 8080 to the producer");
    q.path = "/admin";
    is_str(outcome(f.t, p8080, &q, 0, &res), "admin-only/adm",
           "gamma: sectionName attaches to the named port");
    q.ns = "prod";
    is_str(outcome(f.t, p80, &q, 0, &res), "prod-route/p",
           "gamma: sectionName route absent on the other port");
    q.ns = "team-z";
    q.path = "/";
    is_str(outcome(f.t, d80, &q, 0, &res), "team-z-route/z",
           "gamma: consumer-only Service, consumer client");
    q.ns = "default";
    is_str(outcome(f.t, d80, &q, 0, &res), "default",
           "gamma: consumer-only Service, other client: default");
    ok(res.status == ROUTER_FORWARD && res.backend && res.backend->target == d80 &&
           res.rule->is_default,
       "gamma: the default route forwards to the Service port itself");
    const struct router_port *v1 =
        router_service_port(router_find_service(f.t, "default", "v1"), 80);
    is_str(outcome(f.t, v1, &q, 0, &res), "default", "no routes: default route");
    ok(res.backend->target == v1 && res.rule->request_timeout_ms == MODEL_DURATION_UNSET &&
           res.rule->n_filters == 0 && res.match == NULL,
       "default route: self, no timeout, no filters");
    struct router_stats st;
    router_table_stats(f.t, &st);
    is_int(st.parents_unresolved, 1, "stats: one parentRef unresolved");
    is_int(st.routes, 6, "stats: routes");
    /* prod-route 2 ports, team-a 2 routes x 1, team-z 2 ports, admin 1 */
    is_int(st.attachments, 7, "stats: attachments");
    is_int(router_route(f.t, NULL, &(struct router_request){0}, 0, scratch, &res), ROUTER_NO_ROUTE,
           "route: NULL destination is no route");
    fix_close(&f);
}

/* ---- weights ---- */

static uint64_t xs_state = 88172645463325252ull;
static uint64_t xorshift(void)
{
    xs_state ^= xs_state << 13;
    xs_state ^= xs_state >> 7;
    xs_state ^= xs_state << 17;
    return xs_state;
}

static void test_weights(void)
{
    struct fix f;
    const char *y =
        BASE ROUTE("split", "  - name: w\n    matches: [{path: {value: /w}}]\n"
                            "    backendRefs: [{name: v1, port: 80, weight: 90}, {name: "
                            "v2, port: 80, weight: 10}, {name: v3, port: 80, weight: 0}]\n"
                            "  - name: zero\n    matches: [{path: {value: /zero}}]\n"
                            "    backendRefs: [{name: v1, port: 80, weight: 0}]\n"
                            "  - name: bad\n    matches: [{path: {value: /bad}}]\n"
                            "    backendRefs: [{name: v1, port: 80}, {name: missing, "
                            "port: 80}, {name: v2, port: 81}]\n"
                            "  - name: none\n    matches: [{path: {value: /none}}]\n"
                            "  - name: big\n    matches: [{path: {value: /big}}]\n"
                            "    backendRefs: [{name: v1, port: 80, weight: 1000000}, "
                            "{name: v2, port: 80, weight: 1}]\n");
    if (!ok(fix_open(&f, y), "weights: loads"))
        return;
    const struct router_port *p = web_port(f.t, "default", 80);
    const struct router_port *v1 =
        router_service_port(router_find_service(f.t, "default", "v1"), 80);
    const struct router_port *v2 =
        router_service_port(router_find_service(f.t, "default", "v2"), 80);
    struct router_result res;
    struct rq q = {.path = "/w"};
    size_t n1 = 0, n2 = 0, other = 0;
    for (int i = 0; i < 100000; i++) {
        outcome(f.t, p, &q, xorshift(), &res);
        if (res.status == ROUTER_FORWARD && res.backend->target == v1)
            n1++;
        else if (res.status == ROUTER_FORWARD && res.backend->target == v2)
            n2++;
        else
            other++;
    }
    ok(n1 > 89000 && n1 < 91000, "weights: 90/10 split, v1 got %zu of 100000", n1);
    ok(n2 > 9000 && n2 < 11000, "weights: 90/10 split, v2 got %zu of 100000", n2);
    is_int(other, 0, "weights: weight 0 never chosen");
    outcome(f.t, p, &q, 89, &res);
    ok(res.backend->target == v1, "weights: draw 89 of 100 is v1");
    outcome(f.t, p, &q, 90, &res);
    ok(res.backend->target == v2, "weights: draw 90 of 100 is v2");
    outcome(f.t, p, &q, 199, &res);
    ok(res.backend->target == v2, "weights: draw 199 wraps to 99, v2");

    q.path = "/zero";
    is_str(outcome(f.t, p, &q, 7, &res), "500:split/zero", "weights: all zero is a 500");
    ok(res.backend == NULL && router_result_http_status(&res) == 500 &&
           !strcmp(router_status_flag(res.status), "NC"),
       "weights: all zero: no backend, 500, flag NC");
    q.path = "/none";
    is_str(outcome(f.t, p, &q, 7, &res), "500:split/none", "weights: no backendRefs is a 500");

    q.path = "/bad";
    size_t bad = 0, good = 0;
    for (int i = 0; i < 30000; i++) {
        outcome(f.t, p, &q, xorshift(), &res);
        if (res.status == ROUTER_NO_BACKEND) {
            bad++;
        } else if (res.status == ROUTER_FORWARD && res.backend->target == v1) {
            good++;
        }
    }
    ok(good > 9000 && good < 11000 && bad + good == 30000,
       "weights: invalid backends answer 500 for their share (%zu ok, %zu 500)", good, bad);
    outcome(f.t, p, &q, 1, &res);
    ok(res.status == ROUTER_NO_BACKEND && res.backend && res.backend->target == NULL,
       "weights: the drawn invalid backend is reported");
    struct router_stats st;
    router_table_stats(f.t, &st);
    is_int(st.backends_invalid, 2, "stats: invalid backends (missing Service, missing port)");

    q.path = "/big";
    n2 = 0;
    for (int i = 0; i < 100000; i++) {
        outcome(f.t, p, &q, xorshift(), &res);
        n2 += res.backend->target == v2;
    }
    ok(n2 < 5, "weights: 1 in 1000001 is rare (%zu of 100000)", n2);
    fix_close(&f);
}

/* ---- filters ---- */

static void test_headers(void)
{
    struct router_header v[8];
    struct router_headers h = {v, 0, 8};
    h.n = parse_headers("X-A: old\nx-b: 1\nx-a: old2\nx-c: z\nother: o", v, 8);
    struct model_kv set[] = {{"x-a", "new"}}, add[] = {{"x-b", "2"}, {"x-new", "n"}};
    const char *rm[] = {"X-C", "absent"};
    struct model_header_mod mod = {set, 1, add, 2, rm, 2};
    is_int(router_header_mod_apply(&h, &mod), 0, "headers: modifier applies");
    char got[256] = "";
    for (size_t i = 0; i < h.n; i++)
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%.*s=%.*s;", (int)v[i].name_len,
                 v[i].name, (int)v[i].value_len, v[i].value);
    is_str(
        got, "X-A=new;x-b=1;x-b=2;other=o;x-new=n;",
        "headers: set replaces the first and drops the rest, add appends after its name, remove");

    h.n = parse_headers("a: 1\nb: 2", v, 8);
    h.cap = 3;
    struct model_kv two[] = {{"c", "3"}, {"d", "4"}};
    struct model_header_mod m2 = {two, 2, NULL, 0, NULL, 0};
    is_int(router_header_mod_apply(&h, &m2), -ENOSPC, "headers: not enough slots");
    is_int(h.n, 2, "headers: unchanged after -ENOSPC");
    is_int(router_headers_set(&h, "A", 1, "9", 1), 0, "headers: set in place needs no slot");
    h.cap = 2;
    is_int(router_headers_add(&h, "z", 1, "1", 1), -ENOSPC, "headers: add when full");
    is_int(router_headers_set(&h, "z", 1, "1", 1), -ENOSPC, "headers: set of a new name when full");
    ok(router_headers_get(&h, "a", 1) && router_headers_get(&h, "a", 1)->value[0] == '9',
       "headers: get is case-insensitive");
    is_int(router_headers_remove(&h, "B", 1), 1, "headers: remove counts");
    ok(!router_headers_get(&h, "b", 1), "headers: removed");
    is_int(router_header_mod_apply(&h, NULL), 0, "headers: NULL modifier is a no-op");
}

static void test_rewrite_table(void)
{
    static const struct {
        const char *path, *prefix, *repl, *want;
    } pre[] = {
        /* The Gateway API's ReplacePrefixMatch table (CONVENTIONS §5). */
        {"/foo/bar", "/foo", "/xyz", "/xyz/bar"},
        {"/foo/bar", "/foo", "/xyz/", "/xyz/bar"},
        {"/foo/bar", "/foo/", "/xyz", "/xyz/bar"},
        {"/foo/bar", "/foo/", "/xyz/", "/xyz/bar"},
        {"/foo", "/foo", "/xyz", "/xyz"},
        {"/foo/", "/foo", "/xyz", "/xyz/"},
        {"/foo/bar", "/foo", "", "/bar"},
        {"/foo/", "/foo", "", "/"},
        {"/foo", "/foo", "", "/"},
        {"/foo/", "/foo", "/", "/"},
        {"/foo", "/foo", "/", "/"},
        {"/foo/bar", "/foo", "/", "/bar"},
        {"/abc", "/", "/xyz", "/xyz/abc"},
        {"/", "/", "/xyz", "/xyz"},
        {"/foo/bar?x=1&y", "/foo", "/xyz", "/xyz/bar?x=1&y"},
        {"/foo?x=/foo", "/foo", "/xyz", "/xyz?x=/foo"},
        {"/other", "/foo", "/xyz", "/other"},
    };
    char out[256];
    for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++) {
        char name[160];
        snprintf(name, sizeof(name), "ReplacePrefixMatch: %s, prefix %s -> \"%s\"", pre[i].path,
                 pre[i].prefix, pre[i].repl);
        ssize_t n = router_path_rewrite(MODEL_REWRITE_PREFIX, pre[i].repl, pre[i].prefix,
                                        pre[i].path, strlen(pre[i].path), out, sizeof(out));
        is_str(n >= 0 ? out : "(error)", pre[i].want, name);
    }
    ssize_t n =
        router_path_rewrite(MODEL_REWRITE_FULL, "/new", NULL, "/a/b?q=1", 8, out, sizeof(out));
    is_str(n >= 0 ? out : "(error)", "/new?q=1", "ReplaceFullPath keeps the query");
    n = router_path_rewrite(MODEL_REWRITE_NONE, NULL, NULL, "/a/b?q=1", 8, out, sizeof(out));
    is_str(n >= 0 ? out : "(error)", "/a/b?q=1", "no rewrite copies");
    is_int(router_path_rewrite(MODEL_REWRITE_FULL, "/new", NULL, "/a", 2, out, 4), -ENOSPC,
           "rewrite: -ENOSPC");
    is_int(router_path_rewrite(MODEL_REWRITE_FULL, "/new", NULL, "/a", 2, out, 5), 4,
           "rewrite: exact fit with NUL");
}

static void test_filters_yaml(void)
{
    struct fix f;
    const char *y = BASE ROUTE(
        "fl",
        "  - name: rw\n    matches: [{path: {value: /foo}}]\n"
        "    filters:\n"
        "    - {type: URLRewrite, urlRewrite: {hostname: rewritten.example.com, path: {type: "
        "ReplacePrefixMatch, replacePrefixMatch: /xyz}}}\n"
        "    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-set, value: "
        "s}]}}\n"
        "    - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: set-cookie, "
        "value: a=1}]}}\n"
        "    - {type: RequestMirror, requestMirror: {backendRef: {name: v2, port: 80}, percent: "
        "50}}\n"
        "    - {type: RequestMirror, requestMirror: {backendRef: {name: v3, port: 80}, fraction: "
        "{numerator: 1, denominator: 1000}}}\n"
        "    - {type: RequestMirror, requestMirror: {backendRef: {name: gone, port: 80}}}\n"
        "    - {type: RequestMirror, requestMirror: {backendRef: {name: v1, port: 80}, percent: "
        "0}}\n"
        "    backendRefs: [{name: v1, port: 80, filters: [{type: RequestHeaderModifier, "
        "requestHeaderModifier: {add: [{name: x-backend, value: v1}]}}]}]\n"
        "    timeouts: {request: 10s, backendRequest: 2s}\n"
        "    retry: {attempts: 3, codes: [503], backoff: 100ms}\n"
        "  - name: full\n    matches: [{path: {type: Exact, value: /full}}]\n"
        "    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, "
        "replaceFullPath: /replaced}}}]\n"
        "    backendRefs: [{name: v1, port: 80}]\n"
        "  - name: r-https\n    matches: [{path: {value: /https}}]\n"
        "    filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]\n"
        "  - name: r-host\n    matches: [{path: {value: /host}}]\n"
        "    filters: [{type: RequestRedirect, requestRedirect: {hostname: other.example.com, "
        "statusCode: 301}}]\n"
        "  - name: r-port\n    matches: [{path: {value: /port}}]\n"
        "    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, port: 8443, "
        "statusCode: 308}}]\n"
        "  - name: r-httpport\n    matches: [{path: {value: /p80}}]\n"
        "    filters: [{type: RequestRedirect, requestRedirect: {scheme: http, port: 80}}]\n"
        "  - name: r-full\n    matches: [{path: {value: /rf}}]\n"
        "    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, "
        "replaceFullPath: /new}, statusCode: 303}}]\n"
        "  - name: r-prefix\n    matches: [{path: {value: /old/}}]\n"
        "    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, "
        "replacePrefixMatch: /new}, statusCode: 307}}]\n");
    if (!ok(fix_open(&f, y), "filters: loads"))
        return;
    const struct router_port *p = web_port(f.t, "default", 80);
    struct router_result res;
    struct router_header hv[8];
    struct router_request r;
    char out[256];

    /* URLRewrite + the rule's other filters. */
    struct rq q = {.path = "/foo/bar?q=1"};
    make_req(&q, &r, hv, 8);
    is_int(router_route(f.t, p, &r, 0, scratch, &res), ROUTER_FORWARD,
           "filters: rewrite rule forwards");
    ssize_t n = router_rewrite_path(&res, &r, out, sizeof(out));
    is_str(n >= 0 ? out : "(error)", "/xyz/bar?q=1",
           "URLRewrite: ReplacePrefixMatch /foo/bar -> /xyz/bar");
    q.path = "/foo";
    make_req(&q, &r, hv, 8);
    router_route(f.t, p, &r, 0, scratch, &res);
    n = router_rewrite_path(&res, &r, out, sizeof(out));
    is_str(n >= 0 ? out : "(error)", "/xyz", "URLRewrite: /foo -> /xyz");
    is_str(res.rule->rewrite->hostname, "rewritten.example.com", "URLRewrite: hostname");
    ok(res.rule->request_headers && res.rule->request_headers->n_set == 1,
       "filters: RequestHeaderModifier shortcut");
    ok(res.rule->response_headers && res.rule->response_headers->n_add == 1,
       "filters: ResponseHeaderModifier shortcut");
    ok(res.backend->ref->n_filters == 1, "filters: per-backend filters reachable");
    is_int(res.rule->n_filters, 7, "filters: all filters in order");
    is_int(res.rule->request_timeout_ms, 10000, "timeouts: request");
    is_int(res.rule->backend_timeout_ms, 2000, "timeouts: backendRequest");
    ok(res.rule->retry->set && res.rule->retry->attempts == 3 && res.rule->retry->n_codes == 1 &&
           res.rule->retry->backoff_ms == 100,
       "retry: attempts, codes, backoff");

    /* Response header add keeps two Set-Cookie fields apart. */
    struct router_header rv[4];
    struct router_headers rh = {rv, 0, 4};
    rh.n = parse_headers("set-cookie: b=2", rv, 4);
    router_header_mod_apply(&rh, res.rule->response_headers);
    ok(rh.n == 2 && rv[1].value_len == 3 && !memcmp(rv[1].value, "a=1", 3),
       "ResponseHeaderModifier: add appends a second field");

    /* Mirrors. */
    is_int(res.rule->n_mirrors, 4, "RequestMirror: four mirrors");
    size_t hits[4] = {0};
    for (int i = 0; i < 100000; i++) {
        uint64_t rnd = xorshift();
        for (int m = 0; m < 4; m++)
            hits[m] += router_mirror_selected(&res.rule->mirrors[m], rnd);
    }
    ok(hits[0] > 49000 && hits[0] < 51000, "RequestMirror: percent 50 (%zu of 100000)", hits[0]);
    ok(hits[1] > 50 && hits[1] < 150, "RequestMirror: fraction 1/1000 (%zu of 100000)", hits[1]);
    ok(hits[2] == 0 && res.rule->mirrors[2].target == NULL,
       "RequestMirror: unresolved backend never mirrored");
    is_int(hits[3], 0, "RequestMirror: percent 0 never");
    ok(res.rule->mirrors[0].target ==
           router_service_port(router_find_service(f.t, "default", "v2"), 80),
       "RequestMirror: backend resolved");

    q.path = "/full?a=b";
    make_req(&q, &r, hv, 8);
    router_route(f.t, p, &r, 0, scratch, &res);
    n = router_rewrite_path(&res, &r, out, sizeof(out));
    is_str(n >= 0 ? out : "(error)", "/replaced?a=b", "URLRewrite: ReplaceFullPath");
    ok(res.rule->rewrite->hostname == NULL, "URLRewrite: hostname unset");

    /* Redirects. */
    static const struct {
        const char *path, *host, *scheme;
        uint16_t listener;
        const char *want;
        int status;
    } rd[] = {
        {"/https/x?y=1", "web:80", NULL, 80, "https://web/https/x?y=1", 302},
        {"/https", "web.default.svc.cluster.local:8080", NULL, 8080,
         "https://web.default.svc.cluster.local/https", 302},
        {"/host/a", "web:8080", NULL, 8080, "http://other.example.com:8080/host/a", 301},
        {"/host/a", "web", "https", 443, "https://other.example.com/host/a", 301},
        {"/host/a", "web", NULL, 80, "http://other.example.com/host/a", 301},
        {"/port", "web", NULL, 80, "https://web:8443/port", 308},
        {"/p80/z", "web:9090", NULL, 9090, "http://web/p80/z", 302},
        {"/rf/deep?k=v", "web", NULL, 80, "http://web/new?k=v", 303},
        {"/old/a/b", "web", NULL, 80, "http://web/new/a/b", 307},
        {"/old", "web", NULL, 80, "http://web/new", 307},
        {"/https", "[fd00::1]:8080", NULL, 8080, "https://[fd00::1]/https", 302},
        {"/host", "web", NULL, 0, "http://other.example.com/host", 301},
    };
    for (size_t i = 0; i < sizeof(rd) / sizeof(rd[0]); i++) {
        char name[160];
        q = (struct rq){.path = rd[i].path, .host = rd[i].host};
        make_req(&q, &r, hv, 8);
        enum router_status st = router_route(f.t, p, &r, 0, scratch, &res);
        snprintf(name, sizeof(name), "RequestRedirect: %s %s -> %s", rd[i].host, rd[i].path,
                 rd[i].want);
        n = st == ROUTER_REDIRECT
                ? router_redirect_location(&res, &r, rd[i].scheme, rd[i].listener, out, sizeof(out))
                : -1;
        is_str(n >= 0 ? out : "(error)", rd[i].want, name);
        is_int(router_result_http_status(&res), rd[i].status, "RequestRedirect: status code");
    }
    q = (struct rq){.path = "/https/x"};
    make_req(&q, &r, hv, 8);
    router_route(f.t, p, &r, 0, scratch, &res);
    is_int(router_redirect_location(&res, &r, NULL, 80, out, 10), -ENOSPC,
           "RequestRedirect: -ENOSPC");
    ok(res.backend == NULL, "RequestRedirect: no backend drawn");
    q.path = "/foo";
    make_req(&q, &r, hv, 8);
    router_route(f.t, p, &r, 0, scratch, &res);
    is_int(router_redirect_location(&res, &r, NULL, 80, out, sizeof(out)), -EINVAL,
           "RequestRedirect: -EINVAL without a redirect filter");
    fix_close(&f);
}

/* ---- authority canonicalisation ---- */

static void test_authority(void)
{
    struct fix f;
    const char *y = SVC("reviews", "default", "10.96.0.20", "[{name: http, port: 9080}]")
        SVC("reviews", "prod", "10.96.0.21", "[{name: http, port: 9080}, {name: grpc, port: 80}]")
            SVC("ratings", "prod", "fd00::21", "[{port: 80}]");
    if (!ok(fix_open(&f, y), "authority: loads"))
        return;
    const struct router_port *d =
        router_service_port(router_find_service(f.t, "default", "reviews"), 9080);
    const struct router_port *p =
        router_service_port(router_find_service(f.t, "prod", "reviews"), 9080);
    const struct router_port *p80 =
        router_service_port(router_find_service(f.t, "prod", "reviews"), 80);
    const struct router_port *r6 =
        router_service_port(router_find_service(f.t, "prod", "ratings"), 80);
    ok(d && p && p80 && r6 && d != p, "authority: fixtures");
    static const struct {
        const char *a, *ns;
        uint16_t def;
        int want; /* 0 NULL, 1 default/reviews:9080, 2 prod/reviews:9080, 3 prod:80, 4 ratings */
    } cases[] = {
        {"reviews", "default", 9080, 1},
        {"reviews", "prod", 9080, 2},
        {"reviews", NULL, 9080, 1},
        {"reviews:9080", "prod", 80, 2},
        {"reviews", "prod", 80, 3},
        {"reviews.prod", "default", 9080, 2},
        {"reviews.prod:9080", "default", 1, 2},
        {"reviews.prod.svc", "default", 9080, 2},
        {"reviews.prod.svc:80", "default", 9080, 3},
        {"reviews.prod.svc.cluster.local", "default", 9080, 2},
        {"reviews.prod.svc.cluster.local:9080", "default", 0, 2},
        {"REVIEWS.Prod.SVC.Cluster.Local", "default", 9080, 2},
        {"reviews.prod.svc.cluster.local.", "default", 9080, 2},
        {"reviews.prod.svc.cluster.local.:9080", "default", 0, 2},
        {"reviews.", "prod", 9080, 0},
        {"reviews.prod.", "default", 9080, 0},
        {"reviews:1234", "prod", 9080, 0},
        {"reviews:abc", "prod", 9080, 0},
        {"reviews:0", "prod", 9080, 0},
        {"reviews:99999", "prod", 9080, 0},
        {"reviews:", "prod", 9080, 0},
        {"reviews.prod.svc.other", "default", 9080, 0},
        {"reviews.prod.xyz", "default", 9080, 0},
        {"reviews.other", "default", 9080, 0},
        {"nothere", "prod", 9080, 0},
        {".prod", "prod", 9080, 0},
        {"reviews..svc", "prod", 9080, 0},
        {"10.96.0.21:9080", "default", 80, 2},
        {"10.96.0.21", "default", 80, 3},
        {"10.96.0.22:9080", "default", 80, 0},
        {"[fd00::21]:80", "default", 9080, 4},
        {"[fd00::21]", "default", 80, 4},
        {"[fd00::21", "default", 80, 0},
        {"ratings.prod.svc.cluster.local", "x", 80, 4},
        {"1reviews", "prod", 9080, 0},
    };
    const struct router_port *want[] = {NULL, d, p, p80, r6};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct router_port *got =
            router_find_authority(f.t, cases[i].a, strlen(cases[i].a), cases[i].ns, cases[i].def);
        ok(got == want[cases[i].want], "authority: %s (client %s, port %u) -> %d", cases[i].a,
           cases[i].ns ? cases[i].ns : "NULL", cases[i].def, cases[i].want);
    }
    ok(!router_find_authority(f.t, "", 0, "prod", 80), "authority: empty");
    ok(!router_find_authority(f.t, NULL, 0, "prod", 80), "authority: NULL");
    char longname[400];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    ok(!router_find_authority(f.t, longname, strlen(longname), "prod", 80), "authority: too long");
    ok(router_find_service(f.t, NULL, "reviews") == d->service, "find_service: NULL ns is default");
    ok(!router_find_service(f.t, "prod", "nothere"), "find_service: miss");
    is_str(p->service->fqdn, "reviews.prod.svc.cluster.local", "fqdn");
    fix_close(&f);

    /* Another cluster domain. */
    struct model_set *set = load(y);
    char err[256];
    struct router_options opt = {.cluster_domain = "corp.internal"};
    struct router_table *t = set ? router_table_new(set, &opt, err, sizeof(err)) : NULL;
    ok(t && router_find_authority(t, "reviews.prod.svc.corp.internal", 30, "x", 9080),
       "authority: custom cluster domain");
    ok(t && !router_find_authority(t, "reviews.prod.svc.cluster.local", 30, "x", 9080),
       "authority: default domain no longer matches");
    ok(t && router_find_authority(t, "reviews", 7, "prod", 9080),
       "authority: short name, custom domain");
    router_table_free(t);
    model_set_free(set);
}

/* ---- VIPs at scale ---- */

#define N_SVC 10000

static void test_vips(void)
{
    size_t cap = (size_t)N_SVC * 200 + 4096, len = 0;
    char *y = malloc(cap);
    for (int i = 0; i < N_SVC; i++)
        len +=
            (size_t)snprintf(y + len, cap - len,
                             "---\napiVersion: v1\nkind: Service\nmetadata: {name: s%d, namespace: "
                             "ns%d}\nspec:\n  clusterIP: 10.%d.%d.%d\n  ports: [{name: http, port: "
                             "80}, {name: grpc, port: %d}]\n",
                             i, i % 100, 100 + i / 65536, (i / 256) % 256, i % 256, 9000 + i % 7);
    len += (size_t)snprintf(
        y + len, cap - len, "%s",
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: headless}\n"
        "spec:\n  clusterIP: None\n  ports: [{port: 80}]\n"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: ext}\n"
        "spec:\n  type: ExternalName\n  externalName: example.com\n  ports: [{port: 80}]\n"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: dual}\n"
        "spec:\n  clusterIP: 10.99.0.1\n  clusterIPs: [10.99.0.1, \"fd00::99\"]\n"
        "  ports: [{name: tcp, port: 53}, {name: udp, port: 53, protocol: UDP}]\n"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: clash}\n"
        "spec:\n  clusterIP: 10.100.0.0\n  ports: [{port: 80}]\n");
    struct fix f;
    bool loaded = fix_open(&f, y);
    free(y);
    if (!ok(loaded, "vips: %d Services load", N_SVC))
        return;
    struct router_stats st;
    router_table_stats(f.t, &st);
    is_int(st.services, N_SVC + 4, "vips: services");
    is_int(st.vips, 2 * N_SVC + 2,
           "vips: two per Service, dual stack tcp, none for headless/ext/udp");
    is_int(st.vip_conflicts, 1, "vips: a second Service on a taken VIP:port is a conflict");

    size_t right = 0, right_port = 0, right_fqdn = 0, misses = 0;
    for (int i = 0; i < N_SVC; i++) {
        uint8_t a[4] = {10, (uint8_t)(100 + i / 65536), (uint8_t)((i / 256) % 256),
                        (uint8_t)(i % 256)};
        char name[32], ns[16], fq[96];
        snprintf(name, sizeof(name), "s%d", i);
        snprintf(ns, sizeof(ns), "ns%d", i % 100);
        const struct router_port *p = router_find_vip(f.t, AF_INET, a, 80);
        if (p && !strcmp(p->service->svc->meta.name, name) &&
            !strcmp(p->service->svc->meta.ns, ns) && p->port->port == 80)
            right++;
        p = router_find_vip(f.t, AF_INET, a, (uint16_t)(9000 + i % 7));
        if (p && !strcmp(p->service->svc->meta.name, name) && !strcmp(p->port->name, "grpc"))
            right_port++;
        misses += router_find_vip(f.t, AF_INET, a, 81) != NULL;
        int n = snprintf(fq, sizeof(fq), "%s.%s.svc.cluster.local:80", name, ns);
        p = router_find_authority(f.t, fq, (size_t)n, "x", 0);
        if (p && !strcmp(p->service->svc->meta.name, name))
            right_fqdn++;
    }
    is_int(right, N_SVC, "vips: every VIP:80 finds its Service");
    is_int(right_port, N_SVC, "vips: every second port finds its Service port");
    is_int(right_fqdn, N_SVC, "vips: every FQDN finds its Service");
    is_int(misses, 0, "vips: unknown ports miss");
    uint8_t none[4] = {10, 200, 0, 1}, dual4[4] = {10, 99, 0, 1}, dual6[16];
    inet_pton(AF_INET6, "fd00::99", dual6);
    ok(!router_find_vip(f.t, AF_INET, none, 80), "vips: unknown IP misses");
    const struct router_port *d4 = router_find_vip(f.t, AF_INET, dual4, 53);
    const struct router_port *d6 = router_find_vip(f.t, AF_INET6, dual6, 53);
    ok(d4 && d4 == d6 && !strcmp(d4->port->name, "tcp"),
       "vips: dual stack, both families, TCP port");
    uint8_t clash[4] = {10, 100, 0, 0};
    const struct router_port *c = router_find_vip(f.t, AF_INET, clash, 80);
    ok(c && !strcmp(c->service->svc->meta.name, "s0"),
       "vips: the first Service keeps a clashing VIP");
    ok(!router_find_vip(f.t, AF_UNIX, clash, 80), "vips: unknown family");
    const struct router_service *h = router_find_service(f.t, "default", "headless");
    ok(h && h->n_ports == 1, "vips: headless Service still resolves by name");
    fix_close(&f);
}

/* ---- threads share one table ---- */

struct thr {
    const struct router_table *t;
    const struct router_port *p;
    size_t mismatches;
};

static void *thr_run(void *arg)
{
    struct thr *a = arg;
    struct router_scratch *s = router_scratch_new();
    struct router_header hv[4] = {{"x-v", 3, "v42", 3}};
    struct router_request r = {.method = "GET",
                               .method_len = 3,
                               .authority = "web",
                               .authority_len = 3,
                               .headers = hv,
                               .n_headers = 1};
    for (int i = 0; i < 20000; i++) {
        struct router_result res;
        r.path = (i & 1) ? "/hr" : "/ab";
        r.path_len = 3;
        router_route(a->t, a->p, &r, (uint64_t)i, s, &res);
        const char *want = (i & 1) ? "hre" : "alt";
        if (res.status != ROUTER_FORWARD || strcmp(res.rule->src->name, want))
            a->mismatches++;
    }
    router_scratch_free(s);
    return NULL;
}

static void test_threads(void)
{
    struct fix f;
    const char *y =
        BASE ROUTE("m", RULE("hre", "[{path: {type: Exact, value: /hr}, headers: [{type: "
                                    "RegularExpression, name: x-v, value: \"v[0-9]+\"}]}]")
                            RULE("alt", "[{path: {type: RegularExpression, value: \"/(a|ab)\"}}]"));
    if (!ok(fix_open(&f, y), "threads: loads"))
        return;
    struct thr a[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct thr){f.t, web_port(f.t, "default", 80), 0};
        pthread_create(&th[i], NULL, thr_run, &a[i]);
    }
    size_t bad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        bad += a[i].mismatches;
    }
    is_int(bad, 0, "threads: 4 threads x 20000 regex routes on one table agree");
    fix_close(&f);
}

static void test_misc(void)
{
    struct fix f;
    /* One route, two parentRefs that select the same port: attached once. Also a route on
     * two Services. */
    const char *y =
        BASE ROUTE_HEAD("both", "default", "") "  parentRefs: [{group: \"\", kind: Service, name: "
                                               "web}, {group: \"\", kind: Service, name: "
                                               "web, port: 80}, {group: \"\", kind: Service, name: "
                                               "v1}, {group: \"\", kind: Service, name: "
                                               "web, port: 9999}]\n"
                                               "  rules:\n" RULE("a", "[{path: {value: /}}]");
    if (!ok(fix_open(&f, y), "misc: loads"))
        return;
    struct router_stats st;
    router_table_stats(f.t, &st);
    is_int(st.attachments, 3, "misc: duplicate parentRefs attach once (web:80, web:8080, v1:80)");
    is_int(st.parents_unresolved, 1, "misc: a parentRef to a missing port is unresolved");
    struct router_result res;
    struct rq q = {0};
    const struct router_port *v1 =
        router_service_port(router_find_service(f.t, "default", "v1"), 80);
    is_str(outcome(f.t, v1, &q, 0, &res), "both/a", "misc: a route on two Services");
    is_str(router_status_str(ROUTER_NO_ROUTE), "no-route", "status_str");
    is_str(router_status_flag(ROUTER_NO_ROUTE), "NR", "flag NR");
    ok(router_status_flag(ROUTER_FORWARD) == NULL, "no flag on forward");
    res.status = ROUTER_NO_ROUTE;
    is_int(router_result_http_status(&res), 404, "no route is 404");
    fix_close(&f);
    router_table_free(NULL);
}

int main(void)
{
    scratch = router_scratch_new();
    test_precedence();
    test_match_order();
    test_matching();
    test_hostnames();
    test_gamma();
    test_weights();
    test_headers();
    test_rewrite_table();
    test_filters_yaml();
    test_authority();
    test_vips();
    test_threads();
    test_misc();
    router_scratch_free(scratch);
    return tap_done();
}
