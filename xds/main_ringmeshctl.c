/*
 * main_ringmeshctl.c - ringmeshctl, the mesh's command line. The control plane's API (libcurl
 * to ringmesh-xds's 15014, xds/PROTOCOL.md "API on 15014"; --server, else
 * $RINGMESH_XDS_API, else http://127.0.0.1:15014):
 *
 *   ringmeshctl apply -f FILE|DIR|-          all or nothing; prints what each object became
 *   ringmeshctl delete KIND NAME [-n NS] | delete -f FILE
 *   ringmeshctl get KIND [NAME] [-n NS] [-o yaml|json]     a table by default
 *   ringmeshctl proxy-status                  the sidecars connected and what they ACKed
 *   ringmeshctl stat [SERVICE] [-n NS] [-o wide|json] [--watch] [--interval S] [--sidecar A]
 *       golden metrics per Service from the sidecars' /stats/prometheus (xds/meshstat.c),
 *       the sidecars found through proxy-status (their pod IPs) unless --sidecar names them
 *   ringmeshctl ca token --dir D --ns N --sa S [--ttl 24h]  a bootstrap token for Sign
 *
 * and the CA:
 *
 *   ringmeshctl ca init  --dir D [--trust-domain cluster.local] [--days 3650] [--force]
 *       D/root-cert.pem, D/root-key.pem (0600): a new ECDSA P-256 root
 *   ringmeshctl ca issue --dir D --ns N --sa S [--trust-domain T] [--hours 24] [--out O]
 *       O/cert-chain.pem (the SVID; the root signs it directly, so no intermediates),
 *       O/key.pem (0600), O/root-cert.pem (a copy of D's, the trust bundle): Istio's layout
 *   ringmeshctl proxy-config [--admin URL] [POD]
 *       a sidecar's /config_dump (what it runs with, and its xDS state), pretty-printed
 *
 * The certificates themselves come from xds/ca.c; this file parses flags and does the file
 * I/O. Each file is written whole to a temporary name in its directory and renamed over the
 * old one, so a reader never sees half a key. Exit status: 0 done, 1 failed, 2 bad usage.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "ca.h"
#include "client.h"
#include "fileio.h"
#include "meshstat.h"
#include "model.h"

#define EXIT_USAGE    2
#define MAX_PEM_BYTES (1 << 20)

static const char usage_top[] =
    "usage: ringmeshctl <command> [flags]\n"
    "\n"
    "commands:\n"
    "  apply          apply manifests to the control plane (ringmesh-xds)\n"
    "  delete         delete objects from it\n"
    "  get            show its objects\n"
    "  proxy-status   the sidecars connected to it and what they ACKed or NACKed\n"
    "  proxy-config   a sidecar's compiled configuration (its admin /config_dump)\n"
    "  stat           golden metrics per Service (success, req/s, latency, TCP) from the\n"
    "                 sidecars' Prometheus metrics\n"
    "  ca init        create the mesh's root CA (ECDSA P-256)\n"
    "  ca issue       issue a workload's key and X.509-SVID signed by that root\n"
    "  ca token       make a bootstrap token for a workload's first certificate\n"
    "\n"
    "The control plane commands talk to --server URL (default $RINGMESH_XDS_API, else\n"
    "http://127.0.0.1:15014) and send --token T ($RINGMESH_XDS_TOKEN) when given.\n"
    "\n"
    "ringmeshctl <command> --help describes a command's flags.\n";

static const char usage_init[] =
    "usage: ringmeshctl ca init --dir DIR [--trust-domain TD] [--days N] [--force]\n"
    "\n"
    "Creates a root CA: an ECDSA P-256 key and a self-signed certificate (CA:true, keyCertSign,\n"
    "cRLSign, URI SAN spiffe://TD, SHA-256 signature), valid from 5 minutes ago.\n"
    "\n"
    "  --dir DIR            writes DIR/root-cert.pem and DIR/root-key.pem (mode 0600);\n"
    "                       DIR is created (0700) if missing\n"
    "  --trust-domain TD    the mesh's trust domain (default cluster.local)\n"
    "  --days N             lifetime in days, 1..36500 (default 3650)\n"
    "  --force              replace an existing root (SVIDs it issued stop verifying)\n"
    "  --help               this text\n";

static const char usage_issue[] =
    "usage: ringmeshctl ca issue --dir DIR --ns NS --sa SA [--trust-domain TD] [--hours N]\n"
    "                            [--out OUT]\n"
    "\n"
    "Issues a workload identity signed by the root in DIR: a new ECDSA P-256 key and an\n"
    "X.509-SVID with the one URI SAN spiffe://TD/ns/NS/sa/SA (digitalSignature, serverAuth +\n"
    "clientAuth, CA:false), valid from 5 minutes ago for N hours.\n"
    "\n"
    "  --dir DIR            the root: DIR/root-cert.pem and DIR/root-key.pem\n"
    "  --ns NS              the workload's namespace (a DNS label)\n"
    "  --sa SA              its service account (a DNS subdomain)\n"
    "  --trust-domain TD    default: the root's (from its URI SAN), else cluster.local;\n"
    "                       must match the root's when it names one\n"
    "  --hours N            lifetime in hours, 1..8784 (default 24); not past the root's\n"
    "  --out OUT            writes OUT/cert-chain.pem, OUT/key.pem (mode 0600) and\n"
    "                       OUT/root-cert.pem (default: the current directory; created if\n"
    "                       missing)\n"
    "  --help               this text\n";

static const char *cmd_name = "ringmeshctl";

static int usage_error(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", cmd_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", usage);
    return EXIT_USAGE;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", cmd_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_FAILURE;
}

static bool parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    unsigned long v;
    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = (unsigned)v;
    return true;
}

static int path_join(char *out, size_t cap, const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    int n = snprintf(out, cap, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* mkdir -p; the last component gets mode. */
static int mkdir_p(const char *dir, mode_t mode)
{
    char tmp[PATH_MAX];
    struct stat st;
    size_t i, len = strlen(dir);

    if (len == 0 || len >= sizeof(tmp))
        return -ENAMETOOLONG;
    memcpy(tmp, dir, len + 1);
    for (i = 1; i < len; i++) {
        if (tmp[i] != '/')
            continue;
        tmp[i] = '\0';
        if (mkdir(tmp, 0755) && errno != EEXIST)
            return -errno;
        tmp[i] = '/';
    }
    if (mkdir(tmp, mode) && errno != EEXIST)
        return -errno;
    if (stat(tmp, &st))
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Reads a whole (small) file; the caller frees *out. */
static int read_all(const char *path, char **out, size_t *len)
{
    return file_read(path, MAX_PEM_BYTES, out, len);
}

/* Writes data to dir/name through a temporary file and rename(2), with the given mode. */
static int write_atomic(const char *path, const char *data, size_t len, mode_t mode)
{
    return file_write_atomic(path, data, len, mode, false);
}

static void fmt_time(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Flags shared by the subcommands; each uses some. */
enum { OPT_DIR = 1, OPT_TD, OPT_DAYS, OPT_HOURS, OPT_NS, OPT_SA, OPT_OUT, OPT_FORCE, OPT_HELP,
       OPT_TTL, OPT_FILE, OPT_OUTPUT, OPT_SERVER, OPT_TOKEN, OPT_INTERVAL, OPT_SIDECAR,
       OPT_PORT };

/* getopt_long with our own messages: returns the option, -1 at the end, or 0 after printing a
 * usage error (into *rc). */
static int next_opt(int argc, char **argv, const struct option *opts, const char *usage, int *rc)
{
    int c = getopt_long(argc, argv, ":", opts, NULL);
    if (c == '?') {
        *rc = usage_error(usage, "unknown flag %s", argv[optind - 1]);
        return 0;
    }
    if (c == ':') {
        *rc = usage_error(usage, "%s needs a value", argv[optind - 1]);
        return 0;
    }
    return c;
}

static int cmd_ca_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, OPT_DIR},
        {"trust-domain", required_argument, NULL, OPT_TD},
        {"days", required_argument, NULL, OPT_DAYS},
        {"force", no_argument, NULL, OPT_FORCE},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *td = "cluster.local";
    unsigned days = 3650;
    bool force = false;
    char cert_path[PATH_MAX], key_path[PATH_MAX], err[512], until[32];
    struct ca_root *root;
    struct ca_pem pem;
    int c, rc = 0;

    cmd_name = "ringmeshctl ca init";
    while ((c = next_opt(argc, argv, opts, usage_init, &rc)) != -1) {
        switch (c) {
        case 0:
            return rc;
        case OPT_DIR:
            dir = optarg;
            break;
        case OPT_TD:
            td = optarg;
            break;
        case OPT_DAYS:
            if (!parse_uint(optarg, 1, CA_ROOT_MAX_DAYS, &days))
                return usage_error(usage_init, "--days: want an integer 1..%d, got \"%s\"",
                                   CA_ROOT_MAX_DAYS, optarg);
            break;
        case OPT_FORCE:
            force = true;
            break;
        case OPT_HELP:
            fputs(usage_init, stdout);
            return 0;
        }
    }
    if (optind < argc)
        return usage_error(usage_init, "unexpected argument \"%s\"", argv[optind]);
    if (!dir || !*dir)
        return usage_error(usage_init, "--dir is required");
    if (!ca_is_trust_domain(td))
        return usage_error(usage_init,
                           "--trust-domain \"%s\": want a lowercase DNS name (RFC 1123 subdomain)",
                           td);
    if (path_join(cert_path, sizeof(cert_path), dir, "root-cert.pem") ||
        path_join(key_path, sizeof(key_path), dir, "root-key.pem"))
        return usage_error(usage_init, "--dir: path too long");
    if (!force && (access(key_path, F_OK) == 0 || access(cert_path, F_OK) == 0))
        return fail("%s exists: a root is already there (--force replaces it, and every SVID it "
                    "issued stops verifying)",
                    access(key_path, F_OK) == 0 ? key_path : cert_path);
    if ((rc = mkdir_p(dir, 0700)))
        return fail("--dir %s: cannot create it: %s", dir, strerror(-rc));

    if (!(root = ca_root_new(td, days, time(NULL), err, sizeof(err))))
        return fail("%s", err);
    if (ca_root_pem(root, &pem, err, sizeof(err))) {
        ca_root_free(root);
        return fail("%s", err);
    }
    /* the key first: a cert without its key is useless, a key without its cert harmless */
    if ((rc = write_atomic(key_path, pem.key, strlen(pem.key), 0600)))
        rc = fail("%s: %s", key_path, strerror(-rc));
    else if ((rc = write_atomic(cert_path, pem.cert, strlen(pem.cert), 0644)))
        rc = fail("%s: %s", cert_path, strerror(-rc));
    else {
        fmt_time(ca_root_not_after(root), until, sizeof(until));
        printf("wrote %s and %s: root CA of trust domain %s, valid until %s\n", cert_path, key_path,
               td, until);
    }
    ca_pem_free(&pem);
    ca_root_free(root);
    return rc;
}

static int cmd_ca_issue(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, OPT_DIR},
        {"ns", required_argument, NULL, OPT_NS},
        {"sa", required_argument, NULL, OPT_SA},
        {"trust-domain", required_argument, NULL, OPT_TD},
        {"hours", required_argument, NULL, OPT_HOURS},
        {"out", required_argument, NULL, OPT_OUT},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *ns = NULL, *sa = NULL, *td = NULL, *out = ".";
    char root_cert[PATH_MAX], root_key[PATH_MAX], chain_path[PATH_MAX], key_path[PATH_MAX],
        bundle_path[PATH_MAX], err[512], until[32], id[CA_SPIFFE_ID_MAX + 1];
    char *cert_pem = NULL, *key_pem = NULL;
    size_t cert_len = 0, key_len = 0;
    struct ca_root *root = NULL;
    struct ca_pem pem = {0};
    struct ca_leaf_req req;
    unsigned hours = 24;
    int c, rc = 0;

    cmd_name = "ringmeshctl ca issue";
    while ((c = next_opt(argc, argv, opts, usage_issue, &rc)) != -1) {
        switch (c) {
        case 0:
            return rc;
        case OPT_DIR:
            dir = optarg;
            break;
        case OPT_NS:
            ns = optarg;
            break;
        case OPT_SA:
            sa = optarg;
            break;
        case OPT_TD:
            td = optarg;
            break;
        case OPT_HOURS:
            if (!parse_uint(optarg, 1, CA_LEAF_MAX_HOURS, &hours))
                return usage_error(usage_issue, "--hours: want an integer 1..%d, got \"%s\"",
                                   CA_LEAF_MAX_HOURS, optarg);
            break;
        case OPT_OUT:
            out = optarg;
            break;
        case OPT_HELP:
            fputs(usage_issue, stdout);
            return 0;
        }
    }
    if (optind < argc)
        return usage_error(usage_issue, "unexpected argument \"%s\"", argv[optind]);
    if (!dir || !*dir)
        return usage_error(usage_issue, "--dir is required");
    if (!ns)
        return usage_error(usage_issue, "--ns is required");
    if (!sa)
        return usage_error(usage_issue, "--sa is required");
    if (!model_is_dns_label(ns))
        return usage_error(usage_issue,
                           "--ns \"%s\": want a DNS label (lowercase RFC 1123, at most 63)", ns);
    if (!model_is_dns_subdomain(sa))
        return usage_error(
            usage_issue, "--sa \"%s\": want a DNS subdomain (lowercase RFC 1123, at most 253)", sa);
    if (td && !ca_is_trust_domain(td))
        return usage_error(usage_issue,
                           "--trust-domain \"%s\": want a lowercase DNS name (RFC 1123 subdomain)",
                           td);
    if (!*out)
        return usage_error(usage_issue, "--out: empty path");
    if (path_join(root_cert, sizeof(root_cert), dir, "root-cert.pem") ||
        path_join(root_key, sizeof(root_key), dir, "root-key.pem"))
        return usage_error(usage_issue, "--dir: path too long");
    if (path_join(chain_path, sizeof(chain_path), out, "cert-chain.pem") ||
        path_join(key_path, sizeof(key_path), out, "key.pem") ||
        path_join(bundle_path, sizeof(bundle_path), out, "root-cert.pem"))
        return usage_error(usage_issue, "--out: path too long");

    if ((rc = read_all(root_cert, &cert_pem, &cert_len))) {
        rc = fail("%s: %s%s", root_cert, strerror(-rc),
                  rc == -ENOENT ? " (ringmeshctl ca init --dir makes a root)" : "");
        goto out;
    }
    if ((rc = read_all(root_key, &key_pem, &key_len))) {
        rc = fail("%s: %s", root_key, strerror(-rc));
        goto out;
    }
    if (!(root = ca_root_load(cert_pem, cert_len, key_pem, key_len, err, sizeof(err)))) {
        /* the library names the file by its base name; give the path */
        if (!strncmp(err, "root-", 5))
            rc = fail("%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", err);
        else
            rc = fail("%s", err);
        goto out;
    }
    /* A root that names no trust domain (made by another tool) gets the mesh default. */
    if (!td && !ca_root_trust_domain(root)[0])
        td = "cluster.local";
    req = (struct ca_leaf_req){
        .trust_domain = td, .ns = ns, .sa = sa, .hours = hours, .now = time(NULL)};
    if (ca_issue(root, &req, &pem, err, sizeof(err))) {
        rc = fail("%s", err);
        goto out;
    }
    if ((rc = mkdir_p(out, 0755))) {
        rc = fail("--out %s: cannot create it: %s", out, strerror(-rc));
        goto out;
    }
    /* The bundle is D's file as it is: during a root rotation it may hold both roots. */
    if ((rc = write_atomic(key_path, pem.key, strlen(pem.key), 0600)))
        rc = fail("%s: %s", key_path, strerror(-rc));
    else if ((rc = write_atomic(chain_path, pem.cert, strlen(pem.cert), 0644)))
        rc = fail("%s: %s", chain_path, strerror(-rc));
    else if ((rc = write_atomic(bundle_path, cert_pem, cert_len, 0644)))
        rc = fail("%s: %s", bundle_path, strerror(-rc));
    else {
        ca_mesh_id(td ? td : ca_root_trust_domain(root), ns, sa, id, sizeof(id), NULL, 0);
        fmt_time(req.now + (time_t)hours * 3600, until, sizeof(until));
        printf("wrote %s, %s and %s: %s, valid until %s\n", chain_path, key_path, bundle_path, id,
               until);
    }

out:
    ca_pem_free(&pem);
    ca_root_free(root);
    if (key_pem) {
        explicit_bzero(key_pem, key_len);
        free(key_pem);
    }
    free(cert_pem);
    return rc;
}

/* ---- proxy-config: a sidecar's /config_dump ------------------------------------------ */

static const char usage_proxy_config[] =
    "usage: ringmeshctl proxy-config [--admin URL] [POD]\n"
    "\n"
    "Prints the configuration a sidecar runs with, as its admin server's /config_dump shows\n"
    "it (services, routes, identity, and with --xds the stream's state: connected, the ACKed\n"
    "version per type, the last NACK).\n"
    "\n"
    "  --admin URL   the sidecar's admin server (default http://127.0.0.1:15000; it listens on\n"
    "                loopback only, so for another pod use a port-forward or exec into it)\n"
    "  POD           NAME or NS/NAME: checked against the identity the sidecar reports, so a\n"
    "                port-forward to the wrong pod is an error, not a wrong answer\n"
    "  --help        this text\n";


static int cmd_proxy_config(int argc, char **argv)
{
    static const struct option opts[] = {{"admin", required_argument, NULL, OPT_DIR},
                                         {"help", no_argument, NULL, OPT_HELP},
                                         {NULL, 0, NULL, 0}};
    const char *admin = "http://127.0.0.1:15000", *pod = NULL;
    char url[1024];
    struct xds_body b = {.max = 64u << 20};
    long code = 0;
    int c, rc = 0;
    optind = 1;
    while ((c = next_opt(argc, argv, opts, usage_proxy_config, &rc)) != -1) {
        if (c == 0)
            return rc;
        if (c == OPT_HELP) {
            fputs(usage_proxy_config, stdout);
            return 0;
        }
        admin = optarg;
    }
    if (optind < argc)
        pod = argv[optind++];
    if (optind < argc)
        return usage_error(usage_proxy_config, "unexpected argument \"%s\"", argv[optind]);
    size_t al = strlen(admin);
    snprintf(url, sizeof(url), "%.*s/config_dump", (int)(al && admin[al - 1] == '/' ? al - 1 : al),
             admin);
    CURL *e = curl_easy_init();
    if (!e)
        return fail("cannot start curl");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, xds_body_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode cr = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    cJSON *d = cr == CURLE_OK && code == 200 && b.p ? cJSON_Parse(b.p) : NULL;
    if (cr != CURLE_OK)
        rc = fail("%s: %s", url, curl_easy_strerror(cr));
    else if (code != 200)
        rc = fail("%s: HTTP %ld", url, code);
    else if (!cJSON_IsObject(d))
        rc = fail("%s: not a sidecar's config_dump (no JSON object)", url);
    if (rc)
        goto out;
    if (pod) {
        const cJSON *node = cJSON_GetObjectItemCaseSensitive(d, "node");
        const char *ns = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "namespace"));
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "pod_name"));
        const char *slash = strchr(pod, '/');
        bool same = name && !strcmp(slash ? slash + 1 : pod, name) &&
                    (!slash || (ns && strlen(ns) == (size_t)(slash - pod) &&
                                !strncmp(pod, ns, (size_t)(slash - pod))));
        if (!same) {
            rc = fail("%s is the sidecar of %s/%s, not %s", admin, ns ? ns : "?",
                      name && *name ? name : "(no pod name)", pod);
            goto out;
        }
    }
    char *text = cJSON_Print(d);
    if (!text) {
        rc = fail("out of memory");
        goto out;
    }
    puts(text);
    free(text);
out:
    cJSON_Delete(d);
    free(b.p);
    return rc;
}

/* ---- the control plane's API ------------------------------------------------------------ */

static const char usage_token[] =
    "usage: ringmeshctl ca token --dir DIR --ns NS --sa SA [--ttl D]\n"
    "\n"
    "Prints a bootstrap token naming the identity spiffe://TD/ns/NS/sa/SA: an HMAC-SHA256\n"
    "with DIR's token key (DIR/token-key, created when missing). A sidecar sends it as\n"
    "authorization: Bearer TOKEN with its first POST /ringmesh.ca.v1/Sign.\n"
    "\n"
    "  --dir DIR     the CA directory (ringmeshctl ca init; ringmesh-xds --ca-dir)\n"
    "  --ns NS       the workload's namespace (a DNS label)\n"
    "  --sa SA       its service account (a DNS subdomain)\n"
    "  --ttl D       how long the token is good for (default 24h; 1m..366d)\n"
    "  --help        this text\n";

static const char usage_apply[] =
    "usage: ringmeshctl apply -f FILE|DIR|- [--server URL] [--token T]\n"
    "\n"
    "Applies the manifests (YAML or JSON, multi-document) of FILE, of every *.yaml, *.yml and\n"
    "*.json in DIR, or of standard input, all or nothing: the control plane validates them\n"
    "together with what it holds and saves them to its manifest directory. Prints each\n"
    "object's Kind namespace/name and created, configured or unchanged.\n";

static const char usage_delete[] =
    "usage: ringmeshctl delete KIND NAME [-n NS] [--server URL] [--token T]\n"
    "       ringmeshctl delete -f FILE [--server URL] [--token T]\n"
    "\n"
    "Deletes an object (namespace default unless -n), or every object FILE names.\n"
    "KIND: Service, EndpointSlice, HTTPRoute, DestinationPolicy, AuthorizationPolicy,\n"
    "PeerAuthentication (any case, plural or short: svc, httproutes, ...).\n";

static const char usage_get[] =
    "usage: ringmeshctl get KIND [NAME] [-n NS] [-o yaml|json] [--server URL]\n"
    "\n"
    "Shows objects of KIND (all namespaces unless -n; one object with NAME, namespace\n"
    "default unless -n): a table of NAMESPACE NAME VERSION, or the objects as YAML or JSON\n"
    "(with metadata.resourceVersion, the store revision of their last change).\n";

static const char usage_ps[] =
    "usage: ringmeshctl proxy-status [-o json] [--server URL]\n"
    "\n"
    "One line per connected sidecar and type: the version it ACKed last, the nonce it has\n"
    "not answered yet, and its last NACK.\n";

struct http_resp {
    long status;
    char *body;
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct http_resp *r = arg;
    size_t len = size * n;
    char *b = realloc(r->body, r->len + len + 1);
    if (!b)
        return 0;
    memcpy(b + r->len, p, len);
    r->body = b;
    r->len += len;
    b[r->len] = 0;
    return len;
}

static const char *server_url(const char *flag)
{
    const char *env = getenv("RINGMESH_XDS_API");
    return flag ? flag : env && *env ? env : "http://127.0.0.1:15014";
}

/* One request to the API. Returns 0 with *r filled (any status), or 1 after printing why
 * the server could not be asked. */
static int api_call(const char *server, const char *token, const char *method, const char *path,
                    const char *body, size_t len, const char *source, struct http_resp *r)
{
    char url[2048], hdr[600], src[600];
    struct curl_slist *h = NULL;
    CURL *c = curl_easy_init();
    CURLcode rc;

    memset(r, 0, sizeof(*r));
    if (!c)
        return fail("libcurl: cannot start");
    snprintf(url, sizeof(url), "%s%s", server, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (!token)
        token = getenv("RINGMESH_XDS_TOKEN");
    if (token && *token) {
        snprintf(hdr, sizeof(hdr), "authorization: Bearer %s", token);
        h = curl_slist_append(h, hdr);
    }
    if (source) {
        snprintf(src, sizeof(src), "x-ringmesh-source: %s", source);
        h = curl_slist_append(h, src);
    }
    if (body) {
        h = curl_slist_append(h, "content-type: application/yaml");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        free(r->body);
        r->body = NULL;
        return fail("%s: %s", url, curl_easy_strerror(rc));
    }
    return 0;
}

/* Prints the server's {"error":...} (or its status) and returns 1. */
static int server_error(const struct http_resp *r)
{
    cJSON *o = r->body ? cJSON_Parse(r->body) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    int rc = fail("%s", cJSON_IsString(e) ? e->valuestring : r->body ? r->body : "(no body)");
    if (!cJSON_IsString(e))
        fprintf(stderr, "(HTTP status %ld)\n", r->status);
    cJSON_Delete(o);
    return rc;
}

/* Common flags of the API commands: -f, -n, -o, --server, --token. */
struct api_flags {
    const char *file, *ns, *output, *server, *token;
};

static int api_opts(int argc, char **argv, const char *usage, struct api_flags *f, int *rc)
{
    static const struct option opts[] = {
        {"filename", required_argument, NULL, 'f'},
        {"namespace", required_argument, NULL, 'n'},
        {"output", required_argument, NULL, 'o'},
        {"server", required_argument, NULL, OPT_SERVER},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    int c;
    memset(f, 0, sizeof(*f));
    while ((c = getopt_long(argc, argv, ":f:n:o:", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            f->file = optarg;
            break;
        case 'n':
            if (!model_is_dns_label(optarg)) {
                *rc = usage_error(usage, "-n \"%s\": want a namespace (a DNS label)", optarg);
                return -1;
            }
            f->ns = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "yaml") && strcmp(optarg, "json")) {
                *rc = usage_error(usage, "-o: want yaml or json, got \"%s\"", optarg);
                return -1;
            }
            f->output = optarg;
            break;
        case OPT_SERVER:
            f->server = optarg;
            break;
        case OPT_TOKEN:
            f->token = optarg;
            break;
        case OPT_HELP:
            fputs(usage, stdout);
            *rc = 0;
            return -1;
        case ':':
            *rc = usage_error(usage, "%s needs a value", argv[optind - 1]);
            return -1;
        default:
            *rc = usage_error(usage, "unknown flag %s", argv[optind - 1]);
            return -1;
        }
    }
    f->server = server_url(f->server);
    return 0;
}

static bool is_manifest_name(const char *n)
{
    size_t l = strlen(n);
    return n[0] != '.' && ((l > 5 && !strcmp(n + l - 5, ".yaml")) ||
                           (l > 4 && !strcmp(n + l - 4, ".yml")) ||
                           (l > 5 && !strcmp(n + l - 5, ".json")));
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads FILE, -, or DIR (each manifest checked here, so errors name its file, then sent as
 * one JSON List so the directory applies all or nothing). *src names it. */
static int read_manifests(const char *what, char **out, size_t *len)
{
    struct stat st;
    char err[2048];
    if (strcmp(what, "-") && stat(what, &st))
        return fail("-f %s: %s", what, strerror(errno));
    if (!strcmp(what, "-") || !S_ISDIR(st.st_mode)) {
        FILE *f = strcmp(what, "-") ? fopen(what, "rb") : stdin;
        size_t cap = 65536, n = 0;
        char *buf = malloc(cap);
        if (!f)
            return fail("-f %s: %s", what, strerror(errno));
        while (buf) {
            if (n == cap) {
                char *b = cap > MODEL_MAX_FILE_BYTES ? NULL : realloc(buf, cap * 2);
                if (!b) {
                    free(buf);
                    buf = NULL;
                    break;
                }
                buf = b;
                cap *= 2;
            }
            size_t r = fread(buf + n, 1, cap - n, f);
            if (!r)
                break;
            n += r;
        }
        if (f != stdin)
            fclose(f);
        if (!buf)
            return fail("-f %s: too large or out of memory", what);
        *out = buf;
        *len = n;
        return 0;
    }
    DIR *d = opendir(what);
    struct dirent *de;
    char **names = NULL;
    size_t nn = 0;
    if (!d)
        return fail("-f %s: %s", what, strerror(errno));
    while ((de = readdir(d)))
        if (is_manifest_name(de->d_name)) {
            names = realloc(names, (nn + 1) * sizeof(*names));
            names[nn++] = strdup(de->d_name);
        }
    closedir(d);
    if (nn)
        qsort(names, nn, sizeof(*names), name_cmp);
    cJSON *list = cJSON_CreateObject(), *items = cJSON_CreateArray();
    cJSON_AddStringToObject(list, "apiVersion", "v1");
    cJSON_AddStringToObject(list, "kind", "List");
    cJSON_AddItemToObject(list, "items", items);
    int rc = 0;
    for (size_t i = 0; i < nn; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", what, names[i]);
        char *buf;
        size_t blen;
        if (!rc && (rc = read_all(path, &buf, &blen))) {
            rc = fail("%s: %s", path, strerror(-rc));
        } else if (!rc) {
            struct model_set *set = model_load_buffer_docs(path, buf, blen, items, err,
                                                           sizeof(err));
            free(buf);
            if (!set)
                rc = fail("%s", err);
            model_set_free(set);
        }
        free(names[i]);
    }
    free(names);
    if (!rc && !(*out = cJSON_PrintUnformatted(list)))
        rc = fail("out of memory");
    if (!rc)
        *len = strlen(*out);
    cJSON_Delete(list);
    return rc;
}

static int cmd_apply(int argc, char **argv)
{
    struct api_flags f;
    struct http_resp r;
    char *body = NULL;
    size_t len = 0;
    int rc = 0;

    cmd_name = "ringmeshctl apply";
    if (api_opts(argc, argv, usage_apply, &f, &rc))
        return rc;
    if (optind < argc)
        return usage_error(usage_apply, "unexpected argument \"%s\"", argv[optind]);
    if (!f.file)
        return usage_error(usage_apply, "-f is required");
    if ((rc = read_manifests(f.file, &body, &len)))
        return rc;
    rc = api_call(f.server, f.token, "POST", "/api/v1/apply", body, len,
                  strcmp(f.file, "-") ? f.file : "<stdin>", &r);
    free(body);
    if (rc)
        return rc;
    if (r.status != 200) {
        rc = server_error(&r);
    } else {
        cJSON *o = cJSON_Parse(r.body), *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(o, "applied"))
        {
            printf("%s %s/%s %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(e, "kind")),
                   cJSON_GetStringValue(cJSON_GetObjectItem(e, "namespace")),
                   cJSON_GetStringValue(cJSON_GetObjectItem(e, "name")),
                   cJSON_GetStringValue(cJSON_GetObjectItem(e, "action")));
        }
        cJSON_Delete(o);
    }
    free(r.body);
    return rc;
}

static int delete_one(const struct api_flags *f, const char *kind, const char *ns, const char *name)
{
    char path[1024];
    struct http_resp r;
    int rc;
    snprintf(path, sizeof(path), "/api/v1/%s/%s/%s", kind, ns, name);
    if ((rc = api_call(f->server, f->token, "DELETE", path, NULL, 0, NULL, &r)))
        return rc;
    if (r.status != 200)
        rc = server_error(&r);
    else
        printf("%s %s/%s deleted\n", kind, ns, name);
    free(r.body);
    return rc;
}

static int cmd_delete(int argc, char **argv)
{
    struct api_flags f;
    char err[2048];
    int rc = 0;

    cmd_name = "ringmeshctl delete";
    if (api_opts(argc, argv, usage_delete, &f, &rc))
        return rc;
    if (f.file) {
        if (optind < argc)
            return usage_error(usage_delete, "-f takes no KIND NAME");
        cJSON *docs = cJSON_CreateArray(), *d;
        struct model_set *set;
        char *buf;
        size_t len;
        if ((rc = read_manifests(f.file, &buf, &len))) {
            cJSON_Delete(docs);
            return rc;
        }
        set = model_load_buffer_docs(f.file, buf, len, docs, err, sizeof(err));
        free(buf);
        if (!set) {
            cJSON_Delete(docs);
            return fail("%s", err);
        }
        model_set_free(set);
        cJSON_ArrayForEach(d, docs)
        {
            cJSON *meta = cJSON_GetObjectItem(d, "metadata");
            const char *ns = cJSON_GetStringValue(cJSON_GetObjectItem(meta, "namespace"));
            int one = delete_one(&f, cJSON_GetStringValue(cJSON_GetObjectItem(d, "kind")),
                                 ns ? ns : "default",
                                 cJSON_GetStringValue(cJSON_GetObjectItem(meta, "name")));
            if (one)
                rc = one;
        }
        cJSON_Delete(docs);
        return rc;
    }
    if (argc - optind != 2)
        return usage_error(usage_delete, "want KIND NAME (or -f FILE)");
    return delete_one(&f, argv[optind], f.ns ? f.ns : "default", argv[optind + 1]);
}

/* A small YAML writer for cJSON: block mappings and sequences, scalars as JSON (valid YAML
 * flow scalars), so the output loads back with the model. */
static void yaml_out(const cJSON *v, int indent, bool in_seq)
{
    const cJSON *c;
    bool first = true;
    if (cJSON_IsObject(v) && v->child) {
        cJSON_ArrayForEach(c, v)
        {
            if (!(in_seq && first))
                printf("%*s", indent, "");
            first = false;
            printf("%s:", c->string);
            if ((cJSON_IsObject(c) && c->child) || (cJSON_IsArray(c) && c->child)) {
                printf("\n");
                yaml_out(c, indent + 2, false);
            } else {
                char *s = cJSON_PrintUnformatted(c);
                printf(" %s\n", s);
                free(s);
            }
        }
    } else if (cJSON_IsArray(v) && v->child) {
        cJSON_ArrayForEach(c, v)
        {
            printf("%*s- ", indent, "");
            if ((cJSON_IsObject(c) && c->child) || (cJSON_IsArray(c) && c->child)) {
                if (cJSON_IsArray(c))
                    printf("\n");
                yaml_out(c, indent + 2, cJSON_IsObject(c));
            } else {
                char *s = cJSON_PrintUnformatted(c);
                printf("%s\n", s);
                free(s);
            }
        }
    } else {
        char *s = cJSON_PrintUnformatted(v);
        printf("%*s%s\n", indent, "", s);
        free(s);
    }
}

static int cmd_get(int argc, char **argv)
{
    struct api_flags f;
    struct http_resp r;
    char path[1024];
    int rc = 0;

    cmd_name = "ringmeshctl get";
    if (api_opts(argc, argv, usage_get, &f, &rc))
        return rc;
    if (argc - optind < 1 || argc - optind > 2)
        return usage_error(usage_get, "want KIND [NAME]");
    if (argc - optind == 2)
        snprintf(path, sizeof(path), "/api/v1/%s/%s/%s", argv[optind], f.ns ? f.ns : "default",
                 argv[optind + 1]);
    else if (f.ns)
        snprintf(path, sizeof(path), "/api/v1/%s/%s", argv[optind], f.ns);
    else
        snprintf(path, sizeof(path), "/api/v1/%s", argv[optind]);
    if ((rc = api_call(f.server, f.token, "GET", path, NULL, 0, NULL, &r)))
        return rc;
    if (r.status != 200) {
        rc = server_error(&r);
        free(r.body);
        return rc;
    }
    cJSON *o = cJSON_Parse(r.body);
    if (f.output && !strcmp(f.output, "json")) {
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        free(s);
    } else if (f.output) {
        const cJSON *items = cJSON_GetObjectItem(o, "items"), *it;
        if (items) {
            cJSON_ArrayForEach(it, items)
            {
                printf("---\n");
                yaml_out(it, 0, false);
            }
        } else {
            yaml_out(o, 0, false);
        }
    } else {
        const cJSON *items = cJSON_GetObjectItem(o, "items"), *it;
        printf("%-20s %-40s %s\n", "NAMESPACE", "NAME", "VERSION");
        if (!items) { /* one object */
            cJSON *meta = cJSON_GetObjectItem(o, "metadata");
            printf("%-20s %-40s %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(meta, "namespace")),
                   cJSON_GetStringValue(cJSON_GetObjectItem(meta, "name")),
                   cJSON_GetStringValue(cJSON_GetObjectItem(meta, "resourceVersion")));
        }
        cJSON_ArrayForEach(it, items)
        {
            cJSON *meta = cJSON_GetObjectItem(it, "metadata");
            printf("%-20s %-40s %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(meta, "namespace")),
                   cJSON_GetStringValue(cJSON_GetObjectItem(meta, "name")),
                   cJSON_GetStringValue(cJSON_GetObjectItem(meta, "resourceVersion")));
        }
    }
    cJSON_Delete(o);
    free(r.body);
    return 0;
}

static int cmd_proxy_status(int argc, char **argv)
{
    struct api_flags f;
    struct http_resp r;
    int rc = 0;

    cmd_name = "ringmeshctl proxy-status";
    if (api_opts(argc, argv, usage_ps, &f, &rc))
        return rc;
    if (optind < argc)
        return usage_error(usage_ps, "unexpected argument \"%s\"", argv[optind]);
    if ((rc = api_call(f.server, f.token, "GET", "/api/v1/proxy-status", NULL, 0, NULL, &r)))
        return rc;
    if (r.status != 200) {
        rc = server_error(&r);
        free(r.body);
        return rc;
    }
    cJSON *o = cJSON_Parse(r.body), *p, *t;
    if (f.output) {
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        free(s);
    } else {
        printf("%-24s %-16s %-42s %-6s %-8s %s\n", "POD", "NAMESPACE", "TYPE", "ACKED", "PENDING",
               "LAST NACK");
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(o, "proxies"))
        {
            cJSON_ArrayForEach(t, cJSON_GetObjectItem(p, "types"))
            {
                cJSON *n = cJSON_GetObjectItem(t, "last_nack");
                const char *acked = cJSON_GetStringValue(cJSON_GetObjectItem(t, "acked_version"));
                const char *pend = cJSON_GetStringValue(cJSON_GetObjectItem(t, "pending_nonce"));
                printf("%-24s %-16s %-42s %-6s %-8s ",
                       cJSON_GetStringValue(cJSON_GetObjectItem(p, "pod")),
                       cJSON_GetStringValue(cJSON_GetObjectItem(p, "namespace")), t->string,
                       acked && *acked ? acked : "-", pend && *pend ? pend : "-");
                if (cJSON_IsObject(n))
                    printf("nonce %s at %s: %s\n",
                           cJSON_GetStringValue(cJSON_GetObjectItem(n, "nonce")),
                           cJSON_GetStringValue(cJSON_GetObjectItem(n, "at")),
                           cJSON_GetStringValue(cJSON_GetObjectItem(n, "message")));
                else
                    printf("-\n");
            }
        }
    }
    cJSON_Delete(o);
    free(r.body);
    return 0;
}

static int cmd_ca_token(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, OPT_DIR},  {"ns", required_argument, NULL, OPT_NS},
        {"sa", required_argument, NULL, OPT_SA},    {"ttl", required_argument, NULL, OPT_TTL},
        {"help", no_argument, NULL, OPT_HELP},      {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *ns = NULL, *sa = NULL;
    char path[PATH_MAX], err[512], tok[CA_TOKEN_MAX], hex[2 * CA_TOKEN_KEY_LEN + 2];
    uint8_t key[CA_TOKEN_KEY_LEN];
    int64_t ttl_ms = 24 * 3600 * 1000LL;
    char *text = NULL;
    size_t len = 0;
    int c, rc = 0;
    extern int model_parse_duration(const char *s, int64_t *out_ms);

    cmd_name = "ringmeshctl ca token";
    while ((c = next_opt(argc, argv, opts, usage_token, &rc)) != -1) {
        switch (c) {
        case 0:
            return rc;
        case OPT_DIR:
            dir = optarg;
            break;
        case OPT_NS:
            ns = optarg;
            break;
        case OPT_SA:
            sa = optarg;
            break;
        case OPT_TTL:
            if (model_parse_duration(optarg, &ttl_ms) < 0 || ttl_ms < 60000 ||
                ttl_ms > (int64_t)CA_LEAF_MAX_HOURS * 3600000)
                return usage_error(usage_token, "--ttl: want a duration 1m..%dh, got \"%s\"",
                                   CA_LEAF_MAX_HOURS, optarg);
            break;
        case OPT_HELP:
            fputs(usage_token, stdout);
            return 0;
        }
    }
    if (optind < argc)
        return usage_error(usage_token, "unexpected argument \"%s\"", argv[optind]);
    if (!dir || !*dir)
        return usage_error(usage_token, "--dir is required");
    if (!ns || !model_is_dns_label(ns))
        return usage_error(usage_token, "--ns: want a namespace (a DNS label)");
    if (!sa || !model_is_dns_subdomain(sa))
        return usage_error(usage_token, "--sa: want a service account (a DNS subdomain)");
    if (path_join(path, sizeof(path), dir, CA_TOKEN_FILE))
        return usage_error(usage_token, "--dir: path too long");
    if ((rc = read_all(path, &text, &len)) == -ENOENT) {
        /* first use: the key is made here, as ringmesh-xds would */
        if (access(dir, F_OK))
            return fail("--dir %s: %s (ringmeshctl ca init --dir makes it)", dir,
                        strerror(ENOENT));
        if (ca_token_key_new(hex))
            return fail("cannot make a token key");
        strcat(hex, "\n");
        if ((rc = write_atomic(path, hex, strlen(hex), 0600)))
            return fail("%s: %s", path, strerror(-rc));
        rc = read_all(path, &text, &len);
    }
    if (rc)
        return fail("%s: %s", path, strerror(-rc));
    rc = ca_token_key_parse(text, len, key);
    explicit_bzero(text, len);
    free(text);
    if (rc)
        return fail("%s: want 64 hex digits", path);
    if (ca_token_make(key, ns, sa, time(NULL) + (time_t)(ttl_ms / 1000), tok, sizeof(tok), err,
                      sizeof(err)))
        return fail("%s", err);
    explicit_bzero(key, sizeof(key));
    printf("%s\n", tok);
    return 0;
}

/* ---- stat: golden metrics per Service from the sidecars' Prometheus metrics ------------ */

static const char usage_stat[] =
    "usage: ringmeshctl stat [SERVICE] [-n NS] [-o wide|json] [--watch] [--interval S]\n"
    "                        [--sidecar HOST:PORT]... [--port P] [--server URL] [--token T]\n"
    "\n"
    "Golden metrics per Service, from the sidecars' Prometheus metrics (GET\n"
    "/stats/prometheus on their stats port; ringmesh_* or istio_* names): the sidecars are\n"
    "scraped twice, S seconds apart, and each row is what changed in between:\n"
    "\n"
    "  MESHED        sidecars that served the Service (reported it as reporter=destination);\n"
    "                0: only its callers' sidecars saw it (the Service has none of its own)\n"
    "  SUCCESS       requests not answered 5xx (nor a gRPC status other than 0), of all\n"
    "  RPS           requests per second: the growth of *_requests_total divided by S (by\n"
    "                the real gap instead when a round of scrapes started late)\n"
    "  LATENCY_P50 LATENCY_P95 LATENCY_P99\n"
    "                of *_request_duration_milliseconds, from the growth of its buckets,\n"
    "                interpolated inside a bucket as Prometheus's histogram_quantile()\n"
    "  TCP_CONN      TCP connections open now (opened - closed)\n"
    "\n"
    "Counted from reporter=\"destination\" series (what the servers' sidecars saw), or\n"
    "from reporter=\"source\" for a Service no sidecar serves; -o wide says which (REPORTER).\n"
    "The sidecars' cardinality cap (every label \"overflow\") is a row named (overflow).\n"
    "\"-\": no data (no requests in the interval, no histogram, no TCP series).\n"
    "\n"
    "  SERVICE            only this Service: NAME, NAME.NS or its FQDN\n"
    "  -n, --namespace NS only Services in NS\n"
    "  -o, --output F     wide (adds REPORTER, REQUESTS, FQDN) or json\n"
    "  -w, --watch        a new table every S seconds until interrupted (the screen is\n"
    "                     cleared when stdout is a terminal; otherwise each table follows a\n"
    "                     \"# TIME\" line; with -o json one JSON document per line)\n"
    "  --interval S       seconds between scrapes, 0.1..3600 (default 1)\n"
    "  --sidecar HOST:PORT  scrape this metrics endpoint (repeatable, or a comma list; a\n"
    "                     URL http://HOST:PORT/PATH too); without it, the sidecars the\n"
    "                     control plane lists (proxy-status) on their pod IP and --port\n"
    "  --port P           the sidecars' stats port when found through the control plane\n"
    "                     (default 15090)\n"
    "  --server URL, --token T   the control plane, as for the other commands\n"
    "  --help             this text\n"
    "\n"
    "A sidecar that cannot be scraped is named on stderr with its address; the others still\n"
    "count. Exit status: 0, 1 when the control plane cannot be asked or no sidecar could be\n"
    "scraped, 2 bad usage.\n";

#define STAT_MAX_BODY     (16u << 20)
#define STAT_DEFAULT_PORT 15090

/* One metrics endpoint; its index in the target list is its meshstat sidecar index. */
struct stat_target {
    char *name;     /* owned: NS/POD, or what --sidecar said */
    char *addr;     /* owned: HOST:PORT */
    char *url;      /* owned */
    char *last_err; /* owned: the failure last reported, NULL when the last scrape worked */
    bool live;      /* listed in this round */
};

struct stat_opts {
    const char *service, *ns, *server, *token;
    bool wide, json, watch;
    double interval_s;
    unsigned port;
    bool discover;
};

struct stat_targets {
    struct stat_target *t;
    int n;
};

static volatile sig_atomic_t stat_stop;

static void stat_on_signal(int sig)
{
    (void)sig;
    stat_stop = 1;
}

/* Adds (or finds) the target name at url; -1 when the list is full. */
static int stat_target_add(struct stat_targets *ts, const char *name, const char *addr,
                           const char *url)
{
    for (int i = 0; i < ts->n; i++)
        if (!strcmp(ts->t[i].name, name) && !strcmp(ts->t[i].url, url)) {
            ts->t[i].live = true;
            return i;
        }
    if (ts->n == MESHSTAT_MAX_SIDECARS)
        return -1;
    struct stat_target *nt = realloc(ts->t, (size_t)(ts->n + 1) * sizeof(*nt));
    if (!nt)
        return -1;
    ts->t = nt;
    nt = &ts->t[ts->n];
    *nt = (struct stat_target){
        .name = strdup(name), .addr = strdup(addr), .url = strdup(url), .live = true};
    if (!nt->name || !nt->addr || !nt->url) {
        free(nt->name);
        free(nt->addr);
        free(nt->url);
        return -1;
    }
    return ts->n++;
}

static void stat_targets_free(struct stat_targets *ts)
{
    for (int i = 0; i < ts->n; i++) {
        free(ts->t[i].name);
        free(ts->t[i].addr);
        free(ts->t[i].url);
        free(ts->t[i].last_err);
    }
    free(ts->t);
}

/* --sidecar ITEM: HOST:PORT, [V6]:PORT or http://HOST:PORT[/PATH]. Fills addr and url;
 * false with why when it is neither. */
static bool stat_parse_sidecar(const char *item, char *addr, size_t acap, char *url, size_t ucap,
                               char *why, size_t wcap)
{
    const char *hp = item, *path = "/stats/prometheus", *colon;
    size_t hl;
    unsigned port;
    char portbuf[8];

    if (!strncmp(item, "http://", 7)) {
        hp = item + 7;
        const char *slash = strchr(hp, '/');
        hl = slash ? (size_t)(slash - hp) : strlen(hp);
        if (slash && slash[1])
            path = slash;
    } else {
        if (!strncmp(item, "https://", 8)) {
            snprintf(why, wcap, "https is not supported (the stats port is plaintext)");
            return false;
        }
        hl = strlen(hp);
    }
    if (hl == 0 || hl >= acap) {
        snprintf(why, wcap, "want HOST:PORT");
        return false;
    }
    memcpy(addr, hp, hl);
    addr[hl] = '\0';
    colon = strrchr(addr, ':');
    if (!colon || colon == addr || (addr[0] == '[' && colon[-1] != ']') ||
        (addr[0] != '[' && strchr(addr, ':') != colon)) {
        snprintf(why, wcap, "want HOST:PORT (an IPv6 address in brackets: [::1]:15090)");
        return false;
    }
    snprintf(portbuf, sizeof(portbuf), "%s", colon + 1);
    if (strlen(colon + 1) > 5 || !parse_uint(portbuf, 1, 65535, &port)) {
        snprintf(why, wcap, "port \"%s\": want 1..65535", colon + 1);
        return false;
    }
    for (const char *c = addr; c < colon; c++)
        if (!(isalnum((unsigned char)*c) || strchr(".-_[]:", *c))) {
            snprintf(why, wcap, "host \"%.*s\": not a host name or address", (int)(colon - addr),
                     addr);
            return false;
        }
    if ((size_t)snprintf(url, ucap, "http://%s%s", addr, path) >= ucap) {
        snprintf(why, wcap, "too long");
        return false;
    }
    return true;
}

/* The sidecars the control plane lists: each on its pod IP and o->port. 0, or 1 after
 * printing why the control plane could not be asked. */
static int stat_discover(const struct stat_opts *o, struct stat_targets *ts, bool quiet)
{
    struct http_resp r;
    int rc;
    cJSON *doc, *p;

    if ((rc = api_call(o->server, o->token, "GET", "/api/v1/proxy-status", NULL, 0, NULL, &r)))
        return rc;
    if (r.status != 200) {
        rc = server_error(&r);
        free(r.body);
        return rc;
    }
    doc = cJSON_Parse(r.body ? r.body : "");
    free(r.body);
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "proxies"))) {
        cJSON_Delete(doc);
        return fail("%s/api/v1/proxy-status: no \"proxies\" list in the answer", o->server);
    }
    for (int i = 0; i < ts->n; i++)
        ts->t[i].live = false;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(doc, "proxies"))
    {
        const char *pod = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "pod"));
        const char *ns = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "namespace"));
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "node_id"));
        const char *ip = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "pod_ip"));
        char name[512], addr[128], url[256];
        if (pod && *pod)
            snprintf(name, sizeof(name), "%s/%s", ns && *ns ? ns : "?", pod);
        else
            snprintf(name, sizeof(name), "%s", id && *id ? id : "(unnamed sidecar)");
        if (!ip || !*ip) {
            if (!quiet)
                fprintf(stderr,
                        "%s: sidecar %s: the control plane knows no pod IP for it (started "
                        "without --pod-ip?): not scraped\n",
                        cmd_name, name);
            continue;
        }
        snprintf(addr, sizeof(addr), strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, o->port);
        snprintf(url, sizeof(url), "http://%s/stats/prometheus", addr);
        if (stat_target_add(ts, name, addr, url) < 0) {
            cJSON_Delete(doc);
            return fail("more than %d sidecars", MESHSTAT_MAX_SIDECARS);
        }
    }
    cJSON_Delete(doc);
    return 0;
}

static void stat_report(struct stat_target *t, const char *why)
{
    if (t->last_err && !strcmp(t->last_err, why))
        return; /* said already: a watch does not repeat it every round */
    fprintf(stderr, "%s: sidecar %s (%s): %s\n", cmd_name, t->name, t->addr, why);
    free(t->last_err);
    t->last_err = strdup(why);
}

/* Scrapes every live target at once into snap; returns how many were scraped. */
static int stat_scrape(struct stat_targets *ts, struct meshstat_snap *snap)
{
    CURLM *m = curl_multi_init();
    CURL **easy = calloc((size_t)ts->n + 1, sizeof(*easy));
    struct xds_body *body = calloc((size_t)ts->n + 1, sizeof(*body));
    int running = 0, scraped = 0;
    char err[512], why[700];

    if (!m || !easy || !body) {
        fprintf(stderr, "%s: out of memory\n", cmd_name);
        goto out;
    }
    for (int i = 0; i < ts->n; i++) {
        if (!ts->t[i].live || !(easy[i] = curl_easy_init()))
            continue;
        body[i].max = STAT_MAX_BODY;
        curl_easy_setopt(easy[i], CURLOPT_URL, ts->t[i].url);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, xds_body_write);
        curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, &body[i]);
        curl_easy_setopt(easy[i], CURLOPT_CONNECTTIMEOUT_MS, 2000L);
        curl_easy_setopt(easy[i], CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy[i], CURLOPT_PRIVATE, (char *)(intptr_t)i);
        curl_multi_add_handle(m, easy[i]);
    }
    do {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    } while (running && !stat_stop);
    for (CURLMsg *msg; (msg = curl_multi_info_read(m, &running));) {
        char *priv;
        long code = 0;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        int i = (int)(intptr_t)priv;
        struct stat_target *t = &ts->t[i];
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
        if (msg->data.result != CURLE_OK) {
            snprintf(why, sizeof(why), "%s%s", curl_easy_strerror(msg->data.result),
                     msg->data.result == CURLE_WRITE_ERROR ? " (over 16 MiB?)" : "");
            stat_report(t, why);
        } else if (code != 200) {
            snprintf(why, sizeof(why), "GET %s: HTTP %ld", t->url, code);
            stat_report(t, why);
        } else if (meshstat_snap_add(snap, i, body[i].p ? body[i].p : "", body[i].len, err,
                                     sizeof(err))) {
            snprintf(why, sizeof(why), "GET %s: not Prometheus text: %s", t->url, err);
            stat_report(t, why);
        } else {
            scraped++;
            free(t->last_err);
            t->last_err = NULL;
        }
    }
out:
    for (int i = 0; easy && i < ts->n; i++) {
        if (easy[i]) {
            curl_multi_remove_handle(m, easy[i]);
            curl_easy_cleanup(easy[i]);
        }
        free(body[i].p);
    }
    free(easy);
    free(body);
    if (m)
        curl_multi_cleanup(m);
    return scraped;
}

static void stat_fmt_ms(double v, char *buf, size_t cap)
{
    if (isnan(v))
        snprintf(buf, cap, "-");
    else if (v < 10)
        snprintf(buf, cap, "%.2fms", v);
    else if (v < 100)
        snprintf(buf, cap, "%.1fms", v);
    else
        snprintf(buf, cap, "%.0fms", v);
}

#define STAT_COLS 12

static void stat_table(const struct stat_opts *o, const struct meshstat_row *rows, int n)
{
    static const char *const head[STAT_COLS] = {
        "NAMESPACE",   "SERVICE",     "MESHED",   "SUCCESS",  "RPS",      "LATENCY_P50",
        "LATENCY_P95", "LATENCY_P99", "TCP_CONN", "REPORTER", "REQUESTS", "FQDN"};
    int ncols = o->wide ? 12 : 9;
    size_t w[STAT_COLS];
    char(*cell)[STAT_COLS][80] = calloc((size_t)n + 1, sizeof(*cell));
    if (!cell) {
        fprintf(stderr, "%s: out of memory\n", cmd_name);
        return;
    }
    for (int c = 0; c < ncols; c++) {
        snprintf(cell[0][c], sizeof(cell[0][c]), "%s", head[c]);
        w[c] = strlen(head[c]);
    }
    for (int i = 0; i < n; i++) {
        const struct meshstat_row *r = &rows[i];
        char(*l)[80] = cell[i + 1];
        snprintf(l[0], 80, "%s", r->ns);
        snprintf(l[1], 80, "%s", r->name);
        if (r->reporter == MESHSTAT_OVERFLOWED)
            snprintf(l[2], 80, "-");
        else
            snprintf(l[2], 80, "%d", r->meshed);
        if (isnan(r->success))
            snprintf(l[3], 80, "-");
        else
            snprintf(l[3], 80, "%.2f%%", 100 * r->success);
        if (isnan(r->rps))
            snprintf(l[4], 80, "-");
        else
            snprintf(l[4], 80, "%.2f", r->rps);
        stat_fmt_ms(r->p50_ms, l[5], 80);
        stat_fmt_ms(r->p95_ms, l[6], 80);
        stat_fmt_ms(r->p99_ms, l[7], 80);
        if (isnan(r->tcp_open))
            snprintf(l[8], 80, "-");
        else
            snprintf(l[8], 80, "%.0f", r->tcp_open);
        snprintf(l[9], 80, "%s", meshstat_reporter_str(r->reporter));
        if (isnan(r->requests))
            snprintf(l[10], 80, "-");
        else
            snprintf(l[10], 80, "%.0f", r->requests);
        snprintf(l[11], 80, "%s", r->fqdn[0] ? r->fqdn : "-");
        for (int c = 0; c < ncols; c++) {
            /* label values are the sidecars' text: no terminal escapes from them */
            for (char *ch = l[c]; *ch; ch++)
                if ((unsigned char)*ch < 0x20 || *ch == 0x7f)
                    *ch = '?';
            if (strlen(l[c]) > w[c])
                w[c] = strlen(l[c]);
        }
    }
    for (int i = 0; i <= n; i++)
        for (int c = 0; c < ncols; c++)
            printf(c + 1 < ncols ? "%-*s   " : "%-.*s\n", (int)w[c], cell[i][c]);
    free(cell);
}

static void stat_json_num(cJSON *o, const char *k, double v)
{
    if (isnan(v) || isinf(v))
        cJSON_AddNullToObject(o, k);
    else
        cJSON_AddNumberToObject(o, k, v);
}

static void stat_json(const struct stat_opts *o, const struct meshstat_row *rows, int n,
                      const struct stat_targets *ts, const struct meshstat_snap *prev,
                      const struct meshstat_snap *cur, const char *when)
{
    cJSON *d = cJSON_CreateObject(), *arr, *x;
    cJSON_AddStringToObject(d, "time", when);
    cJSON_AddNumberToObject(d, "interval_seconds", o->interval_s);
    arr = cJSON_AddArrayToObject(d, "services");
    for (int i = 0; i < n; i++) {
        const struct meshstat_row *r = &rows[i];
        x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "namespace", r->ns);
        cJSON_AddStringToObject(x, "service", r->name);
        cJSON_AddStringToObject(x, "fqdn", r->fqdn);
        cJSON_AddStringToObject(x, "reporter", meshstat_reporter_str(r->reporter));
        cJSON_AddNumberToObject(x, "meshed", r->meshed);
        stat_json_num(x, "requests", r->requests);
        stat_json_num(x, "success_rate", r->success);
        stat_json_num(x, "rps", r->rps);
        stat_json_num(x, "latency_ms_p50", r->p50_ms);
        stat_json_num(x, "latency_ms_p95", r->p95_ms);
        stat_json_num(x, "latency_ms_p99", r->p99_ms);
        stat_json_num(x, "tcp_connections", r->tcp_open);
        stat_json_num(x, "tcp_sent_bytes_per_second", r->tcp_sent_bps);
        stat_json_num(x, "tcp_received_bytes_per_second", r->tcp_received_bps);
        cJSON_AddItemToArray(arr, x);
    }
    arr = cJSON_AddArrayToObject(d, "sidecars");
    for (int i = 0; i < ts->n; i++) {
        const struct stat_target *t = &ts->t[i];
        if (!t->live)
            continue;
        x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", t->name);
        cJSON_AddStringToObject(x, "address", t->addr);
        cJSON_AddBoolToObject(x, "scraped", cur->scraped[i] && (!prev || prev->scraped[i]));
        if (t->last_err)
            cJSON_AddStringToObject(x, "error", t->last_err);
        else
            cJSON_AddNullToObject(x, "error");
        cJSON_AddItemToArray(arr, x);
    }
    char *s = o->watch ? cJSON_PrintUnformatted(d) : cJSON_Print(d);
    if (s)
        printf("%s\n", s);
    free(s);
    cJSON_Delete(d);
}

static double stat_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps until the monotonic time t; false when interrupted by a stop signal. */
static bool stat_sleep_until(double t)
{
    struct timespec ts = {.tv_sec = (time_t)t, .tv_nsec = (long)((t - (double)(time_t)t) * 1e9)};
    while (!stat_stop) {
        int r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        if (r == 0)
            return !stat_stop;
        if (r != EINTR)
            return false;
    }
    return false;
}

static int cmd_stat(int argc, char **argv)
{
    static const struct option opts[] = {
        {"namespace", required_argument, NULL, 'n'},
        {"output", required_argument, NULL, 'o'},
        {"watch", no_argument, NULL, 'w'},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"sidecar", required_argument, NULL, OPT_SIDECAR},
        {"port", required_argument, NULL, OPT_PORT},
        {"server", required_argument, NULL, OPT_SERVER},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    struct stat_opts o = {.interval_s = 1, .port = STAT_DEFAULT_PORT, .discover = true};
    struct stat_targets ts = {0};
    struct meshstat_snap snaps[2];
    struct meshstat_filter filt;
    bool port_given = false;
    int c, rc = 0, rounds = 0, ok_rounds = 0;
    double t_prev = 0, t_next;
    char when[32];

    cmd_name = "ringmeshctl stat";
    meshstat_snap_init(&snaps[0]);
    meshstat_snap_init(&snaps[1]);
    while ((c = getopt_long(argc, argv, ":n:o:w", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (!model_is_dns_label(optarg)) {
                rc = usage_error(usage_stat, "-n \"%s\": want a namespace (a DNS label)", optarg);
                goto out;
            }
            o.ns = optarg;
            break;
        case 'o':
            if (!strcmp(optarg, "wide"))
                o.wide = true;
            else if (!strcmp(optarg, "json"))
                o.json = true;
            else {
                rc = usage_error(usage_stat, "-o: want wide or json, got \"%s\"", optarg);
                goto out;
            }
            break;
        case 'w':
            o.watch = true;
            break;
        case OPT_INTERVAL: {
            char *end;
            errno = 0;
            o.interval_s = strtod(optarg, &end);
            if (end == optarg || (*end && strcmp(end, "s")) || errno || !(o.interval_s >= 0.1) ||
                o.interval_s > 3600) {
                rc = usage_error(usage_stat, "--interval: want seconds, 0.1..3600, got \"%s\"",
                                 optarg);
                goto out;
            }
            break;
        }
        case OPT_SIDECAR: {
            char *list = strdup(optarg), *save = NULL, *item;
            if (!list) {
                rc = fail("out of memory");
                goto out;
            }
            o.discover = false;
            for (item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
                char addr[300], url[600], why[200];
                while (*item == ' ')
                    item++;
                if (!stat_parse_sidecar(item, addr, sizeof(addr), url, sizeof(url), why,
                                        sizeof(why))) {
                    rc = usage_error(usage_stat, "--sidecar \"%s\": %s", item, why);
                    free(list);
                    goto out;
                }
                if (stat_target_add(&ts, item, addr, url) < 0) {
                    rc = usage_error(usage_stat, "--sidecar: more than %d", MESHSTAT_MAX_SIDECARS);
                    free(list);
                    goto out;
                }
            }
            free(list);
            if (ts.n == 0) {
                rc = usage_error(usage_stat, "--sidecar \"%s\": want HOST:PORT", optarg);
                goto out;
            }
            break;
        }
        case OPT_PORT:
            if (!parse_uint(optarg, 1, 65535, &o.port)) {
                rc = usage_error(usage_stat, "--port: want 1..65535, got \"%s\"", optarg);
                goto out;
            }
            port_given = true;
            break;
        case OPT_SERVER:
            o.server = optarg;
            break;
        case OPT_TOKEN:
            o.token = optarg;
            break;
        case OPT_HELP:
            fputs(usage_stat, stdout);
            goto out;
        case ':':
            rc = usage_error(usage_stat, "%s needs a value", argv[optind - 1]);
            goto out;
        default:
            rc = usage_error(usage_stat, "unknown flag %s", argv[optind - 1]);
            goto out;
        }
    }
    if (argc - optind > 1) {
        rc = usage_error(usage_stat, "unexpected argument \"%s\" (one SERVICE at most)",
                         argv[optind + 1]);
        goto out;
    }
    if (optind < argc) {
        o.service = argv[optind];
        if (!*o.service) {
            rc = usage_error(usage_stat, "SERVICE: empty");
            goto out;
        }
    }
    if (port_given && !o.discover) {
        rc = usage_error(usage_stat, "--port is for sidecars found through the control plane; "
                                     "--sidecar names its own port");
        goto out;
    }
    o.server = server_url(o.server);
    filt = (struct meshstat_filter){.service = o.service, .ns = o.ns};

    struct sigaction sa = {.sa_handler = stat_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    bool tty = isatty(STDOUT_FILENO);

    t_next = stat_now();
    for (;;) {
        struct meshstat_snap *cur = &snaps[rounds % 2], *prev = &snaps[(rounds + 1) % 2];
        int live = 0;
        double t;
        if (!stat_sleep_until(t_next))
            break;
        /* late (a slow scrape, a busy machine): the round starts now, and the rate uses
         * the real gap; on time, the rate divides by the interval itself */
        double now = stat_now();
        t = now > t_next + (o.interval_s < 0.5 ? 0.1 * o.interval_s : 0.05) ? now : t_next;
        t_next = t + o.interval_s;
        if (o.discover && (rounds == 0 || o.watch)) {
            if ((rc = stat_discover(&o, &ts, rounds > 0))) {
                if (rounds == 0)
                    goto out;
                rc = 0; /* a watch keeps the sidecars it knew */
            }
        }
        for (int i = 0; i < ts.n; i++)
            live += ts.t[i].live;
        if (live == 0) {
            rc = fail(o.discover ? "no sidecars to scrape: the control plane at %s lists none "
                                   "with a pod IP"
                                 : "no sidecars to scrape%s",
                      o.discover ? o.server : "");
            goto out;
        }
        meshstat_snap_free(cur);
        meshstat_snap_init(cur);
        stat_scrape(&ts, cur);
        if (stat_stop)
            break;
        if (rounds++ == 0) {
            t_prev = t;
            continue;
        }
        struct meshstat_row *rows;
        int n = meshstat_rows(prev, cur, t - t_prev, &filt, &rows);
        t_prev = t;
        if (n < 0) {
            rc = fail("out of memory");
            goto out;
        }
        int both = 0;
        for (int i = 0; i < ts.n; i++)
            both += ts.t[i].live && cur->scraped[i] && prev->scraped[i];
        ok_rounds += both > 0;
        fmt_time(time(NULL), when, sizeof(when));
        if (o.json) {
            stat_json(&o, rows, n, &ts, prev, cur, when);
        } else {
            if (o.watch && tty)
                printf(
                    "\033[H\033[2J%s: every %gs, %d of %d sidecars scraped, %s (Ctrl-C stops)\n\n",
                    cmd_name, o.interval_s, both, live, when);
            else if (o.watch)
                printf("# %s\n", when);
            stat_table(&o, rows, n);
            if (o.watch && !tty)
                printf("\n");
        }
        fflush(stdout);
        if (n == 0 && both > 0 && !o.watch)
            fprintf(stderr, "%s: no per-Service series%s in what %d sidecar(s) served\n", cmd_name,
                    o.service || o.ns ? " matching the filter" : "", both);
        meshstat_rows_free(rows, n);
        if (!o.watch)
            break;
    }
    if (stat_stop)
        rc = o.watch ? 0 : fail("interrupted");
    else if (!o.watch && ok_rounds == 0)
        rc = fail("no sidecar could be scraped twice: no rates");
out:
    meshstat_snap_free(&snaps[0]);
    meshstat_snap_free(&snaps[1]);
    stat_targets_free(&ts);
    return rc;
}

int main(int argc, char **argv)
{
    opterr = 0;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        if (argc < 2) {
            fputs(usage_top, stderr);
            return EXIT_USAGE;
        }
        fputs(usage_top, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "proxy-config"))
        return cmd_proxy_config(argc - 1, argv + 1);
    if (!strcmp(argv[1], "apply"))
        return cmd_apply(argc - 1, argv + 1);
    if (!strcmp(argv[1], "delete"))
        return cmd_delete(argc - 1, argv + 1);
    if (!strcmp(argv[1], "get"))
        return cmd_get(argc - 1, argv + 1);
    if (!strcmp(argv[1], "proxy-status"))
        return cmd_proxy_status(argc - 1, argv + 1);
    if (!strcmp(argv[1], "stat"))
        return cmd_stat(argc - 1, argv + 1);
    if (strcmp(argv[1], "ca") != 0)
        return usage_error(usage_top, "unknown command \"%s\"", argv[1]);
    if (argc < 3)
        return usage_error(usage_top, "ca: want a subcommand: init or issue, or token");
    if (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h")) {
        fputs(usage_top, stdout);
        return 0;
    }
    /* getopt_long sees "init"/"issue" as argv[0] */
    if (!strcmp(argv[2], "init"))
        return cmd_ca_init(argc - 2, argv + 2);
    if (!strcmp(argv[2], "issue"))
        return cmd_ca_issue(argc - 2, argv + 2);
    if (!strcmp(argv[2], "token"))
        return cmd_ca_token(argc - 2, argv + 2);
    return usage_error(usage_top, "unknown command \"ca %s\"", argv[2]);
}
