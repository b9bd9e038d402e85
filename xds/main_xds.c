/*
 * main_xds.c - ringmesh-xds, the control plane: flags, the CA directory, the manifest
 * directory (loaded at start, watched with inotify and re-read after a quiet period), the
 * three listeners and the loop; SIGTERM/SIGINT end it cleanly (exit 0).
 *
 *   ringmesh-xds --config-dir DIR [--ca-dir DIR] [--cert-dir DIR] [--api-token T] ...
 *
 * One thread: the loop runs accepts, connections, the inotify reads, the debounce timer and
 * the signalfd. Exit status: 0 after a signal, 1 when start-up failed (the reason on
 * stderr, naming the flag and the file), 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "ca.h"
#include "fileio.h"
#include "log.h"
#include "model.h"
#include "server.h"

#define RELOAD_DEBOUNCE_MS 200

static const char usage[] =
    "usage: ringmesh-xds --config-dir DIR [flags]\n"
    "\n"
    "The mesh's control plane: serves the objects of DIR (every *.yaml, *.yml, *.json) to\n"
    "sidecars over delta xDS, signs their certificates, and takes changes from ringmeshctl.\n"
    "\n"
    "  --config-dir DIR      the manifests; watched, re-read on change; the API writes here\n"
    "  --xds-port N          delta xDS and CA over h2c (default 15010; 0 = off)\n"
    "  --xds-tls-port N      the same over TLS 1.3 (default 15012; 0 = off; needs --ca-dir\n"
    "                        or --cert-dir)\n"
    "  --api-port N          HTTP/1.1 metrics, readiness and the API (default 15014)\n"
    "  --listen ADDR         IPv4 address the ports listen on (default 0.0.0.0)\n"
    "  --api-token T         also accept mutations from non-loopback peers that send\n"
    "                        authorization: Bearer T\n"
    "  --ca-dir DIR          the mesh CA: DIR/root-cert.pem, root-key.pem and token-key\n"
    "                        (created when missing, as ringmeshctl ca init does)\n"
    "  --trust-domain TD     for a new CA (default cluster.local)\n"
    "  --cert-dir DIR        the TLS port's certificate: DIR/cert-chain.pem and key.pem\n"
    "                        (default: issued by --ca-dir's CA for\n"
    "                        spiffe://TD/ns/NS/sa/ringmesh-xds)\n"
    "  --namespace NS        the namespace in that identity (default ringmesh-system)\n"
    "  --cert-ttl D          lifetime of signed workload certificates (default 24h; 10s..366d:\n"
    "                        short ones are for tests of renewal)\n"
    "  --io auto|uring|epoll the loop's backend (default auto)\n"
    "  --log-level L         error|warn|info|debug|trace (default info)\n"
    "  --help                this text\n";

static const char *prog = "ringmesh-xds";

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", usage);
    return 2;
}

static int read_text(const char *path, char **out, size_t *len)
{
    return file_read(path, 1 << 20, out, len);
}

static int write_new(const char *path, const char *data, mode_t mode)
{
    return file_write_atomic(path, data, strlen(data), mode, false);
}

/* Loads (or creates) the CA in dir. */
static int ca_setup(struct xds_server *srv, const char *dir, const char *td)
{
    char cert_path[PATH_MAX], key_path[PATH_MAX], tok_path[PATH_MAX], err[512];
    char *cert = NULL, *key = NULL, *tok = NULL;
    size_t cert_len = 0, key_len = 0, tok_len = 0;
    int rc;

    snprintf(cert_path, sizeof(cert_path), "%s/root-cert.pem", dir);
    snprintf(key_path, sizeof(key_path), "%s/root-key.pem", dir);
    snprintf(tok_path, sizeof(tok_path), "%s/" CA_TOKEN_FILE, dir);
    if (mkdir(dir, 0700) && errno != EEXIST)
        return die("--ca-dir: %s: %s", dir, strerror(errno));
    if (access(cert_path, F_OK) && access(key_path, F_OK)) {
        struct ca_pem pem;
        struct ca_root *root = ca_root_new(td, 3650, time(NULL), err, sizeof(err));
        if (!root || ca_root_pem(root, &pem, err, sizeof(err))) {
            ca_root_free(root);
            return die("--ca-dir %s: %s", dir, err);
        }
        if ((rc = write_new(key_path, pem.key, 0600)) ||
            (rc = write_new(cert_path, pem.cert, 0644))) {
            ca_pem_free(&pem);
            ca_root_free(root);
            return die("--ca-dir: %s: %s", dir, strerror(-rc));
        }
        log_info("created a root CA for trust domain %s in %s", td, dir);
        ca_pem_free(&pem);
        ca_root_free(root);
    }
    if ((rc = read_text(cert_path, &cert, &cert_len)))
        return die("--ca-dir: %s: %s", cert_path, strerror(-rc));
    if ((rc = read_text(key_path, &key, &key_len))) {
        free(cert);
        return die("--ca-dir: %s: %s", key_path, strerror(-rc));
    }
    srv->ca = ca_root_load(cert, cert_len, key, key_len, err, sizeof(err));
    explicit_bzero(key, key_len);
    free(key);
    if (!srv->ca) {
        free(cert);
        return die("--ca-dir: %s/%s", dir, err);
    }
    srv->root_pem = cert;
    if (read_text(tok_path, &tok, &tok_len) == 0) {
        rc = ca_token_key_parse(tok, tok_len, srv->token_key);
        free(tok);
        if (rc)
            return die("--ca-dir: %s: want 64 hex digits", tok_path);
    } else {
        char hex[2 * CA_TOKEN_KEY_LEN + 2];
        if (ca_token_key_new(hex) || (strcat(hex, "\n"), write_new(tok_path, hex, 0600)) ||
            ca_token_key_parse(hex, strlen(hex), srv->token_key))
            return die("--ca-dir: %s: cannot create the token key", tok_path);
        log_info("created the bootstrap token key %s", tok_path);
    }
    return 0;
}

/* The TLS port's credentials: --cert-dir, or a certificate from our own CA. */
static int tls_setup(struct xds_server *srv, const char *cert_dir, const char *ns)
{
    char path[PATH_MAX], err[512], *cert = NULL, *key = NULL;
    int rc;
    if (cert_dir) {
        snprintf(path, sizeof(path), "%s/cert-chain.pem", cert_dir);
        if ((rc = read_text(path, &cert, NULL)))
            return die("--cert-dir: %s: %s", path, strerror(-rc));
        snprintf(path, sizeof(path), "%s/key.pem", cert_dir);
        if ((rc = read_text(path, &key, NULL))) {
            free(cert);
            return die("--cert-dir: %s: %s", path, strerror(-rc));
        }
        if (ca_check_key_pair(cert, strlen(cert), key, strlen(key), err, sizeof(err))) {
            free(cert);
            free(key);
            return die("--cert-dir: %s: %s", cert_dir, err);
        }
    } else {
        struct ca_pem pem;
        /* its Service's names too, so a client on https://ringmesh-xds.<ns>.svc:15012
         * checks the host it asked for (libcurl does) as well as the chain */
        char n1[300], n2[300], n3[300];
        snprintf(n1, sizeof(n1), "ringmesh-xds.%s", ns);
        snprintf(n2, sizeof(n2), "ringmesh-xds.%s.svc", ns);
        snprintf(n3, sizeof(n3), "ringmesh-xds.%s.svc.cluster.local", ns);
        const char *dns[] = {"ringmesh-xds", n1, n2, n3};
        struct ca_leaf_req req = {.ns = ns, .sa = "ringmesh-xds", .hours = 24 * 365,
                                  .now = time(NULL), .dns = dns, .n_dns = 4};
        if (req.now + (time_t)req.hours * 3600 > ca_root_not_after(srv->ca))
            req.hours = 24;
        if (ca_issue(srv->ca, &req, &pem, err, sizeof(err)))
            return die("TLS certificate from the CA: %s", err);
        cert = pem.cert;
        key = pem.key;
    }
    srv->tls_ctx = xds_tls_ctx_new(cert, key, srv->root_pem, err, sizeof(err));
    explicit_bzero(key, strlen(key));
    free(key);
    free(cert);
    if (!srv->tls_ctx)
        return die("TLS port: %s", err);
    return 0;
}

static int listen_on(uint32_t ip, unsigned port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = ip};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 256)) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static void on_accept(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more)
{
    struct xds_server *srv = op->owner;
    int which = (int)(op - srv->accept_ops);
    (void)buf;
    if (res >= 0) {
        int fl = fcntl(res, F_GETFL);
        fcntl(res, F_SETFL, fl | O_NONBLOCK);
        if (which == XDS_L_API)
            xds_api_accept(srv, res);
        else
            xds_h2_accept(srv, res, which == XDS_L_TLS);
    } else if (res != -ECANCELED) {
        log_warn("accept: %s", strerror(-res));
    }
    if (!more && !srv->stopping && loop_accept(l, op, srv->fds[which]) < 0)
        log_error("cannot re-arm accept");
}

/* inotify and signals */
struct watch {
    struct xds_server *srv;
    int ifd, sfd;
    struct loop_op iop, sop;
    struct loop_timer debounce;
    char ibuf[4096] __attribute__((aligned(8)));
    struct signalfd_siginfo si;
};

static void on_debounce(struct loop *l, struct loop_timer *t)
{
    struct watch *w = t->owner;
    (void)l;
    xds_server_reload(w->srv);
}

static void on_inotify(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more)
{
    struct watch *w = op->owner;
    bool relevant = false;
    (void)buf;
    (void)more;
    if (res > 0) {
        for (char *p = w->ibuf; p < w->ibuf + res;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            /* our own temporary files start with '.'; their rename shows up as the real
             * name, which is ours too while the file is as the API left it */
            if (!ev->len ||
                (ev->name[0] != '.' && !xds_own_write_is(w->srv, w->srv->config_dir, ev->name)))
                relevant = true;
            p += sizeof(*ev) + ev->len;
        }
        if (relevant)
            loop_timer_set(l, &w->debounce, loop_now_ms(l) + RELOAD_DEBOUNCE_MS);
    } else if (res < 0 && res != -ECANCELED) {
        log_warn("inotify read: %s", strerror(-res));
    }
    if (!w->srv->stopping)
        loop_read(l, op, w->ifd, w->ibuf, sizeof(w->ibuf));
}

static void on_signal(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more)
{
    struct watch *w = op->owner;
    (void)buf;
    (void)more;
    if (res == (int)sizeof(w->si)) {
        log_info("signal %u: shutting down", w->si.ssi_signo);
        w->srv->stopping = true;
        loop_stop(l);
        return;
    }
    loop_read(l, op, w->sfd, &w->si, sizeof(w->si));
}

static bool parse_duration_s(const char *s, unsigned *out)
{
    int64_t ms;
    extern int model_parse_duration(const char *s, int64_t *out_ms);
    if (model_parse_duration(s, &ms) < 0 || ms < 10000 || ms > (int64_t)CA_LEAF_MAX_HOURS * 3600000)
        return false;
    *out = (unsigned)(ms / 1000);
    return true;
}

static bool parse_port(const char *s, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v > 65535)
        return false;
    *out = (unsigned)v;
    return true;
}

int main(int argc, char **argv)
{
    enum { O_CONFIG = 1, O_XDS, O_TLS, O_API, O_LISTEN, O_TOKEN, O_CA, O_TD, O_CERT, O_NS, O_TTL,
           O_IO, O_LOG, O_HELP };
    static const struct option opts[] = {
        {"config-dir", required_argument, NULL, O_CONFIG},
        {"xds-port", required_argument, NULL, O_XDS},
        {"xds-tls-port", required_argument, NULL, O_TLS},
        {"api-port", required_argument, NULL, O_API},
        {"listen", required_argument, NULL, O_LISTEN},
        {"api-token", required_argument, NULL, O_TOKEN},
        {"ca-dir", required_argument, NULL, O_CA},
        {"trust-domain", required_argument, NULL, O_TD},
        {"cert-dir", required_argument, NULL, O_CERT},
        {"namespace", required_argument, NULL, O_NS},
        {"cert-ttl", required_argument, NULL, O_TTL},
        {"io", required_argument, NULL, O_IO},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    static struct xds_server srv;
    static struct watch w;
    const char *ca_dir = NULL, *td = "cluster.local", *cert_dir = NULL, *ns = "ringmesh-system";
    unsigned ports[XDS_L_COUNT] = {15010, 15012, 15014};
    struct in_addr listen_ip = {.s_addr = htonl(INADDR_ANY)};
    enum loop_io_choice io = LOOP_IO_AUTO;
    char why[256], err[256];
    struct stat st;
    int c, rc = 1;

    log_set_program(prog);
    log_set_thread_name("main");
    opterr = 0;
    srv.cert_ttl_s = 24 * 3600;
    for (int i = 0; i < XDS_L_COUNT; i++)
        srv.fds[i] = -1;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case O_CONFIG:
            srv.config_dir = optarg;
            break;
        case O_XDS:
        case O_TLS:
        case O_API:
            if (!parse_port(optarg, &ports[c - O_XDS]))
                return usage_error("%s: want a port 0..65535, got \"%s\"", argv[optind - 2],
                                   optarg);
            break;
        case O_LISTEN:
            if (inet_pton(AF_INET, optarg, &listen_ip) != 1)
                return usage_error("--listen: want an IPv4 address, got \"%s\"", optarg);
            break;
        case O_TOKEN:
            if (!*optarg)
                return usage_error("--api-token: empty");
            srv.api_token = optarg;
            break;
        case O_CA:
            ca_dir = optarg;
            break;
        case O_TD:
            if (!ca_is_trust_domain(optarg))
                return usage_error("--trust-domain \"%s\": want a lowercase DNS name", optarg);
            td = optarg;
            break;
        case O_CERT:
            cert_dir = optarg;
            break;
        case O_NS:
            if (!model_is_dns_label(optarg))
                return usage_error("--namespace \"%s\": want a DNS label", optarg);
            ns = optarg;
            break;
        case O_TTL:
            if (!parse_duration_s(optarg, &srv.cert_ttl_s))
                return usage_error("--cert-ttl: want a duration 10s..%dh, got \"%s\"",
                                   CA_LEAF_MAX_HOURS, optarg);
            break;
        case O_IO:
            if (!strcmp(optarg, "auto"))
                io = LOOP_IO_AUTO;
            else if (!strcmp(optarg, "uring"))
                io = LOOP_IO_URING;
            else if (!strcmp(optarg, "epoll"))
                io = LOOP_IO_EPOLL;
            else
                return usage_error("--io: want auto, uring or epoll, got \"%s\"", optarg);
            break;
        case O_LOG:
            if (log_level_parse(optarg) < 0)
                return usage_error("--log-level: want error|warn|info|debug|trace, got \"%s\"",
                                   optarg);
            log_level_current = log_level_parse(optarg);
            break;
        case O_HELP:
            fputs(usage, stdout);
            return 0;
        case ':':
            return usage_error("%s needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown flag %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument \"%s\"", argv[optind]);
    if (!srv.config_dir)
        return usage_error("--config-dir is required");
    if (stat(srv.config_dir, &st))
        return die("--config-dir: %s: %s", srv.config_dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return die("--config-dir: %s: %s", srv.config_dir, strerror(ENOTDIR));

    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    wolfSSL_Init();

    store_init(&srv.store);
    if (ca_dir && ca_setup(&srv, ca_dir, td))
        goto out;
    if (ports[XDS_L_TLS] && (ca_dir || cert_dir)) {
        if (tls_setup(&srv, cert_dir, ns))
            goto out;
    } else if (ports[XDS_L_TLS]) {
        log_info("TLS port %u off: no --ca-dir or --cert-dir", ports[XDS_L_TLS]);
        ports[XDS_L_TLS] = 0;
    }

    struct loop_config lc = {.io = io, .buf_count = 256, .buf_size = 16384, .ring_entries = 256};
    if (!(srv.loop = loop_new(&lc, why, sizeof(why), err, sizeof(err)))) {
        die("loop: %s", err);
        goto out;
    }
    if (why[0])
        log_info("io_uring unavailable (%s): using epoll", why);
    /* io_uring rings start disabled and bind to the thread that enables them */
    if ((c = loop_attach_thread(srv.loop)) < 0) {
        die("loop: %s", strerror(-c));
        goto out;
    }

    /* the directory: a bad directory at start is fatal, later ones are rejected */
    if (xds_server_reload(&srv)) {
        die("--config-dir: %s: not loaded (see above)", srv.config_dir);
        goto out;
    }
    srv.ready = true;

    for (int i = 0; i < XDS_L_COUNT; i++) {
        static const char *const names[] = {"--xds-port", "--xds-tls-port", "--api-port"};
        if (!ports[i])
            continue;
        if ((srv.fds[i] = listen_on(listen_ip.s_addr, ports[i])) < 0) {
            die("%s %u: %s", names[i], ports[i], strerror(-srv.fds[i]));
            goto out;
        }
        loop_op_init(&srv.accept_ops[i], on_accept, &srv);
        if (loop_accept(srv.loop, &srv.accept_ops[i], srv.fds[i]) < 0) {
            die("%s %u: cannot accept", names[i], ports[i]);
            goto out;
        }
    }

    w.srv = &srv;
    w.ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w.ifd < 0 || inotify_add_watch(w.ifd, srv.config_dir,
                                       IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                           IN_CREATE) < 0) {
        die("--config-dir: %s: inotify: %s", srv.config_dir, strerror(errno));
        goto out;
    }
    loop_op_init(&w.iop, on_inotify, &w);
    loop_timer_init(&w.debounce, on_debounce, &w);
    loop_read(srv.loop, &w.iop, w.ifd, w.ibuf, sizeof(w.ibuf));
    w.sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    loop_op_init(&w.sop, on_signal, &w);
    loop_read(srv.loop, &w.sop, w.sfd, &w.si, sizeof(w.si));

    log_info("serving %zu objects of %s (revision %llu): xDS %u, xDS TLS %u, API %u, CA %s",
             srv.store.n, srv.config_dir, (unsigned long long)srv.store.revision,
             ports[XDS_L_PLAIN], ports[XDS_L_TLS], ports[XDS_L_API], srv.ca ? "on" : "off");
    if ((c = loop_run(srv.loop)) < 0)
        log_error("loop failed: %s", strerror(-c));

    /* shut down: close everything, let the closes complete */
    for (int i = 0; i < XDS_L_COUNT; i++)
        if (srv.fds[i] >= 0)
            loop_cancel(srv.loop, &srv.accept_ops[i]);
    loop_cancel(srv.loop, &w.iop);
    loop_cancel(srv.loop, &w.sop);
    loop_timer_cancel(srv.loop, &w.debounce);
    xds_h2_close_all(&srv);
    xds_api_close_all(&srv);
    for (int i = 0; i < 50 && (srv.conns || srv.api_conns || w.iop.armed || w.sop.armed); i++)
        loop_run_once(srv.loop, 10);
    rc = 0;
out:
    for (int i = 0; i < XDS_L_COUNT; i++)
        if (srv.fds[i] >= 0)
            close(srv.fds[i]);
    if (w.ifd > 0)
        close(w.ifd);
    if (w.sfd > 0)
        close(w.sfd);
    if (srv.loop)
        loop_free(srv.loop);
    store_free(&srv.store);
    xds_tls_ctx_free(srv.tls_ctx);
    ca_root_free(srv.ca);
    free(srv.root_pem);
    wolfSSL_Cleanup();
    return rc;
}
