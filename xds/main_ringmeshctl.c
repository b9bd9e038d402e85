/*
 * main_ringmeshctl.c - ringmeshctl, the mesh's command line. For now the CA:
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
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "ca.h"
#include "model.h"

#define EXIT_USAGE    2
#define MAX_PEM_BYTES (1 << 20)

static const char usage_top[] =
    "usage: ringmeshctl <command> [flags]\n"
    "\n"
    "commands:\n"
    "  ca init    create the mesh's root CA (ECDSA P-256)\n"
    "  ca issue   issue a workload's key and X.509-SVID signed by that root\n"
    "  proxy-config [POD]  a sidecar's compiled configuration (its admin /config_dump)\n"
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
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (!f)
        return -errno;
    if (!(buf = malloc(MAX_PEM_BYTES + 1))) {
        fclose(f);
        return -ENOMEM;
    }
    n = fread(buf, 1, MAX_PEM_BYTES + 1, f);
    if (ferror(f) || n > MAX_PEM_BYTES) {
        int rc = ferror(f) ? -EIO : -EFBIG;
        fclose(f);
        free(buf);
        return rc;
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Writes data to dir/name through a temporary file and rename(2), with the given mode. */
static int write_atomic(const char *path, const char *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    int fd, rc = 0;
    size_t off = 0;
    ssize_t n;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    if ((fd = mkstemp(tmp)) < 0) /* created 0600: a key is never readable by others */
        return -errno;
    while (off < len) {
        n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            break;
        }
        off += (size_t)n;
    }
    if (!rc && fchmod(fd, mode))
        rc = -errno;
    if (!rc && fsync(fd))
        rc = -errno;
    if (close(fd) && !rc)
        rc = -errno;
    if (!rc && rename(tmp, path))
        rc = -errno;
    if (rc)
        unlink(tmp);
    return rc;
}

static void fmt_time(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Flags shared by the subcommands; each uses some. */
enum { OPT_DIR = 1, OPT_TD, OPT_DAYS, OPT_HOURS, OPT_NS, OPT_SA, OPT_OUT, OPT_FORCE, OPT_HELP };

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

struct pc_buf {
    char *p;
    size_t len;
};

static size_t pc_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct pc_buf *b = arg;
    size_t n = size * nmemb;
    char *p = b->len + n > (64u << 20) ? NULL : realloc(b->p, b->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, data, n);
    b->p = p;
    b->len += n;
    b->p[b->len] = 0;
    return n;
}

static int cmd_proxy_config(int argc, char **argv)
{
    static const struct option opts[] = {{"admin", required_argument, NULL, OPT_DIR},
                                         {"help", no_argument, NULL, OPT_HELP},
                                         {NULL, 0, NULL, 0}};
    const char *admin = "http://127.0.0.1:15000", *pod = NULL;
    char url[1024];
    struct pc_buf b = {0};
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
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, pc_write);
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
    if (strcmp(argv[1], "ca") != 0)
        return usage_error(usage_top, "unknown command \"%s\"", argv[1]);
    if (argc < 3)
        return usage_error(usage_top, "ca: want a subcommand, init or issue");
    if (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h")) {
        fputs(usage_top, stdout);
        return 0;
    }
    /* getopt_long sees "init"/"issue" as argv[0] */
    if (!strcmp(argv[2], "init"))
        return cmd_ca_init(argc - 2, argv + 2);
    if (!strcmp(argv[2], "issue"))
        return cmd_ca_issue(argc - 2, argv + 2);
    return usage_error(usage_top, "unknown command \"ca %s\"", argv[2]);
}
