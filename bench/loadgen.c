/*
 * loadgen.c - ringmesh-loadgen: an open-loop, constant-rate HTTP load generator that
 * corrects for coordinated omission (the idea of wrk2; this is its own code).
 *
 *   ringmesh-loadgen [options] URL          URL: http://host:port/path or https://...
 *   -r, --rate N         target requests/s over all connections (open loop); 0 (the default)
 *                        is closed loop: every connection keeps -m requests in flight
 *   -c, --connections N  connections (16)            -t, --threads N   worker threads (1)
 *   -m, --streams N      HTTP/2 streams in flight per connection (1); HTTP/1.1 has 1
 *   -d, --duration S     measured seconds (10), after --warmup S (1, not recorded)
 *   --h2                 HTTP/2: prior knowledge on http://, ALPN h2 on https://
 *   --method M           (GET; POST when --body-size is given)
 *   --body-size N        a request body of N bytes     -H 'name: value' (repeatable)
 *   --tls                TLS on an http:// URL too (https:// implies it)
 *   --cacert F, --cert F --key F (client certificate), --sni NAME, --insecure
 *                        (the server's certificate must match --sni, or the URL's host
 *                        without --sni; when that name is an IP address only the chain is
 *                        checked, which SPIFFE certificates without DNS names need)
 *   --timeout MS         per request, from its send (5000)
 *   --json               one JSON object on stdout instead of the summary
 *   --quiet              no progress line on stderr (one a second otherwise)
 *
 * The workers connect first; the schedule starts when every connection is up or has
 * failed once (2 s at most). Open loop (-r R): connection g (0..c-1) sends its request i at
 * the intended time start + (g + i * c) / R, so all connections together send on a uniform grid of
 * 1/R. A request's latency runs from its intended time, not from when it went out: when the server
 * (or this process) stalls, requests queue behind the in-flight limit (1 for HTTP/1.1, -m for
 * HTTP/2) and their wait shows in the tail, as the users sending them at that rate would have seen
 * it. Closed loop (-r 0) measures from the actual send. Requests whose intended (open) or actual
 * (closed) send time falls in the measured window are recorded; after the window, the run waits up
 * to --timeout for them, and those never sent (the connection was down or behind) count as
 * errors.not_sent. A connection that fails is reconnected (backing off while connects fail); its
 * in-flight requests count as read errors, a request older than --timeout as a timeout (the
 * HTTP/1.1 connection is closed, the HTTP/2 stream reset). Non-2xx responses are recorded (latency,
 * status) and also counted in errors.status_non_2xx. A response that ends before its request
 * body was all sent (a server answering a large POST early, then resetting or closing) counts as a
 * response; over TLS with HTTP/1.1, if the write fails first, it is a write error (wolfSSL allows
 * no read after a failed write).
 *
 * send_lag_us (open loop): how late requests went out against their intended time. Large
 * while latency is large: the requests waited for a connection (the in-flight limit, or a
 * reconnect), or this process was not running (a loaded machine: use more threads, pin it).
 *
 * Threads: each worker owns its connections, an epoll loop whose timeout (epoll_pwait2, in
 * ns) ends at the next intended send, and a histogram (bench/hist.h, log-linear, 1/128 precision);
 * nothing is shared on the request path. The main thread prints progress from counters the workers
 * publish with relaxed atomic stores, joins them and merges the histograms.
 * Exit status: 0; 1 when nothing was answered or setup failed at run time; 2 bad usage.
 *
 * Examples (bench/loadgen_check.sh runs these side by side with wrk and h2load):
 *   ringmesh-loadgen -c 16 -d 10 http://10.96.0.60/            closed loop: max req/s
 *   ringmesh-loadgen -r 5000 -c 16 -d 30 --json http://...      5k req/s, corrected latency
 *   ringmesh-loadgen --h2 -c 4 -m 10 -r 20000 https://svc:8443/ --cacert ca.pem \
 *       --cert client.pem --key client.key --sni svc.default   h2 over mTLS, ALPN h2
 * A rate above what the target sustains shows as growing latency (requests queue behind
 * the in-flight limit) and, at the end, errors.not_sent: the achieved rate is the
 * requests answered over the measured seconds. --json's "histogram" lists the non-empty
 * buckets as [upper bound in us, count], for percentile curves.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "hist.h"
#include "lg_h1.h"

#define NS_PER_S    1000000000ull
#define NS_PER_MS   1000000ull
#define RBUF_LEN    (64 * 1024)
#define MAX_HEADERS 64
#define TICK_NS     (10 * NS_PER_MS) /* timeout checks */

/* ---- options ------------------------------------------------------------------------ */

struct opts {
    double rate;
    unsigned conns, streams, threads;
    double duration_s, warmup_s;
    bool h2, tls, insecure, json, quiet;
    const char *method;
    size_t body_size;
    const char *hdr_name[MAX_HEADERS], *hdr_value[MAX_HEADERS];
    unsigned nhdr;
    const char *cacert, *cert, *key, *sni;
    unsigned timeout_ms;
    const char *url;
    char host[256], port[8], authority[300];
    const char *path;
    struct sockaddr_storage addr;
    socklen_t addrlen;
};
static struct opts O; /* written by main before the workers start, read-only after */

/* The run's clock marks (CLOCK_MONOTONIC ns): UINT64_MAX until main sets them, once the
 * workers have their connections up (or 2 s have passed); read through T_START() etc.
 * (relaxed atomic loads: plain loads on x86) since the workers are already running. */
static uint64_t t_start_ns = UINT64_MAX, t_warm_end_ns = UINT64_MAX, t_end_ns = UINT64_MAX;
#define T_START()    __atomic_load_n(&t_start_ns, __ATOMIC_RELAXED)
#define T_WARM_END() __atomic_load_n(&t_warm_end_ns, __ATOMIC_RELAXED)
#define T_END()      __atomic_load_n(&t_end_ns, __ATOMIC_RELAXED)
/* the start-up handshake: workers count themselves connected, main publishes the marks */
static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cv; /* on CLOCK_MONOTONIC, made by main */
static unsigned start_ready;    /* workers whose connections are all up or have failed */
static bool start_go;           /* the marks are set */
static char *h1_req;            /* owned: the whole HTTP/1.1 request, body included */
static size_t h1_req_len;
static char *req_body; /* owned: body_size bytes of 'x' */
static nghttp2_nv h2_nv[MAX_HEADERS + 6];
static size_t h2_nnv;
static WOLFSSL_CTX *tls_ctx; /* owned; shared by the workers (wolfSSL_new is safe on it) */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* ---- per-worker state ------------------------------------------------------------------ */

enum lg_err {
    LG_E_CONNECT,  /* connect() failed or the connection was refused */
    LG_E_TLS,      /* TLS handshake failed, or ALPN did not give the protocol asked for */
    LG_E_READ,     /* a request lost with its connection: reset, EOF, read error */
    LG_E_WRITE,    /* write failed */
    LG_E_TIMEOUT,  /* no complete response within --timeout of the send */
    LG_E_PARSE,    /* a response that is not HTTP (or an HTTP/2 protocol error) */
    LG_E_NON_2XX,  /* a response with a status outside 200..299 (also recorded) */
    LG_E_NOT_SENT, /* an in-window request still unsent when the run ended */
    LG_E_COUNT
};
static const char *const lg_err_name[LG_E_COUNT] = {
    "connect", "tls", "read", "write", "timeout", "parse", "status_non_2xx", "not_sent",
};

enum conn_state {
    CONN_IDLE,       /* no socket; connects at reconnect_at_ns */
    CONN_CONNECTING, /* non-blocking connect() in progress: waits for EPOLLOUT */
    CONN_TLS,        /* TLS handshake in progress */
    CONN_READY,      /* sends requests */
};

struct slot {             /* one request in flight */
    uint64_t intended_ns; /* the latency's start: intended (open) or actual (closed) send */
    uint64_t sent_ns;     /* actual send: the timeout runs from here */
    size_t body_off;      /* HTTP/2: body bytes handed to nghttp2 so far */
    int32_t stream_id;
    int status;
    bool used, recorded, timed_out;
    bool resp_done; /* HTTP/2: the response ended (END_STREAM), whatever the stream's fate */
};

struct worker;

struct conn {
    struct worker *w; /* borrowed: the owner */
    unsigned gidx;    /* index over all connections: its phase in the schedule */
    int fd;
    enum conn_state state;
    WOLFSSL *ssl;        /* owned, NULL over plain TCP */
    nghttp2_session *h2; /* owned, NULL for HTTP/1.1 */
    uint64_t next_i;     /* open loop: index of the next request to send */
    unsigned inflight, fails;
    uint64_t reconnect_at_ns;
    uint32_t events; /* the epoll interest set now */
    bool tls_want_write;
    bool write_failed; /* the peer stopped reading: no more requests, read what is owed */
    char *out; /* owned: bytes to write (requests or HTTP/2 frames) */
    size_t out_len, out_off, out_cap, tls_wlen;
    char *in; /* owned: HTTP/1.1 bytes not parsed yet (a partial line) */
    size_t in_len, in_cap;
    struct lg_h1 h1;    /* the response being parsed (HTTP/1.1) */
    struct slot *slots; /* owned: 1 (HTTP/1.1) or -m (HTTP/2) */
    unsigned nslots;
};

struct worker {
    unsigned id;
    pthread_t th;
    int ep;
    bool no_pwait2;     /* epoll_pwait2 is missing (kernel < 5.11): ms timeouts */
    struct conn *conns; /* owned */
    unsigned nconns, first_gidx;
    char rbuf[RBUF_LEN];
    struct hist hist;
    struct hist lag; /* open loop: actual send - intended send, recorded requests */
    uint64_t requests, errors[LG_E_COUNT], status[600], bytes_in, bytes_out, reconnects;
    uint64_t pub_requests, pub_errors; /* published for the progress line (relaxed) */
    bool started;                      /* the marks are set: requests may go out */
};

static unsigned slot_limit(void)
{
    return O.h2 ? O.streams : 1;
}

/* The intended time of request i of connection g (open loop). */
static uint64_t sched_ns(unsigned g, uint64_t i)
{
    double k = (double)g + (double)i * O.conns;
    return T_START() + (uint64_t)(k * 1e9 / O.rate);
}

static void count_err(struct worker *w, enum lg_err e, bool recorded)
{
    if (recorded)
        w->errors[e]++;
}

/* ---- output buffer ----------------------------------------------------------------------- */

static int out_append(struct conn *c, const void *p, size_t n)
{
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 16384;
        while (cap < c->out_len + n)
            cap *= 2;
        char *q = realloc(c->out, cap);
        if (!q)
            return -ENOMEM;
        c->out = q;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

/* ---- connection lifecycle ------------------------------------------------------------ */

static void conn_update_events(struct conn *c)
{
    uint32_t ev = EPOLLIN;
    if (c->state == CONN_CONNECTING || c->out_off < c->out_len ||
        (c->state == CONN_TLS && c->tls_want_write))
        ev |= EPOLLOUT;
    if (ev != c->events) {
        struct epoll_event e = {.events = ev, .data.ptr = c};
        epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &e);
        c->events = ev;
    }
}

/* Drops the connection: its in-flight requests count as read errors (unless they already
 * counted as timeouts), and it reconnects at once after a connection that worked, later
 * (10 ms doubling to 500 ms) while connects keep failing. */
static void conn_reset(struct conn *c, uint64_t now, bool failed_connect)
{
    struct worker *w = c->w;
    for (unsigned i = 0; i < c->nslots; i++) {
        struct slot *s = &c->slots[i];
        if (s->used && !s->timed_out)
            count_err(w, c->write_failed ? LG_E_WRITE : LG_E_READ, s->recorded);
        s->used = false;
    }
    c->inflight = 0;
    if (c->h2) {
        nghttp2_session_del(c->h2);
        c->h2 = NULL;
    }
    if (c->ssl) {
        wolfSSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->out_len = c->out_off = c->tls_wlen = 0;
    c->in_len = 0;
    lg_h1_init(&c->h1, strcmp(O.method, "HEAD") == 0);
    c->tls_want_write = false;
    c->write_failed = false;
    if (failed_connect) {
        c->fails++;
        uint64_t back = (10 * NS_PER_MS) << (c->fails < 6 ? c->fails - 1 : 5);
        c->reconnect_at_ns = now + back;
    } else {
        c->fails = 0;
        c->reconnect_at_ns = now;
    }
    c->state = CONN_IDLE;
    if (now >= T_WARM_END())
        w->reconnects++;
}

static int h2_session_start(struct conn *c);

static void conn_established(struct conn *c, uint64_t now)
{
    if (O.h2 && h2_session_start(c) < 0) {
        count_err(c->w, LG_E_PARSE, now >= T_WARM_END());
        conn_reset(c, now, true);
        return;
    }
    c->state = CONN_READY;
    c->fails = 0;
}

static void conn_tls_step(struct conn *c, uint64_t now)
{
    int rc = wolfSSL_connect(c->ssl);
    if (rc == WOLFSSL_SUCCESS) {
        c->tls_want_write = false;
        if (O.h2) {
            char *proto = NULL;
            unsigned short len = 0;
            if (wolfSSL_ALPN_GetProtocol(c->ssl, &proto, &len) != WOLFSSL_SUCCESS || len != 2 ||
                memcmp(proto, "h2", 2) != 0) {
                count_err(c->w, LG_E_TLS, now >= T_WARM_END());
                conn_reset(c, now, true);
                return;
            }
        }
        conn_established(c, now);
        return;
    }
    int err = wolfSSL_get_error(c->ssl, rc);
    if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) {
        c->tls_want_write = err == WOLFSSL_ERROR_WANT_WRITE;
        conn_update_events(c);
        return;
    }
    if (!O.quiet && c->fails == 0) {
        char msg[WOLFSSL_MAX_ERROR_SZ];
        fprintf(stderr, "ringmesh-loadgen: connection %u: during TLS handshake: %s\n", c->gidx,
                wolfSSL_ERR_error_string((unsigned long)err, msg));
    }
    count_err(c->w, LG_E_TLS, now >= T_WARM_END());
    conn_reset(c, now, true);
}

static void conn_connected(struct conn *c, uint64_t now)
{
    if (!O.tls) {
        conn_established(c, now);
        return;
    }
    c->ssl = wolfSSL_new(tls_ctx);
    if (!c->ssl || wolfSSL_set_fd(c->ssl, c->fd) != WOLFSSL_SUCCESS) {
        count_err(c->w, LG_E_TLS, now >= T_WARM_END());
        conn_reset(c, now, true);
        return;
    }
    const char *sni = O.sni ? O.sni : O.host;
    struct in6_addr a6;
    bool is_ip = inet_pton(AF_INET, sni, &a6) == 1 || inet_pton(AF_INET6, sni, &a6) == 1;
    if (!is_ip || O.sni)
        wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, sni, (unsigned short)strlen(sni));
    if (!O.insecure && !is_ip)
        wolfSSL_check_domain_name(c->ssl, O.sni ? O.sni : O.host);
    char alpn[16];
    snprintf(alpn, sizeof(alpn), "%s", O.h2 ? "h2" : "http/1.1");
    wolfSSL_UseALPN(c->ssl, alpn, (unsigned)strlen(alpn), WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
    c->state = CONN_TLS;
    conn_tls_step(c, now);
}

static void conn_start(struct conn *c, uint64_t now)
{
    int fd = socket(O.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        count_err(c->w, LG_E_CONNECT, now >= T_WARM_END());
        c->fails++;
        c->reconnect_at_ns = now + 100 * NS_PER_MS;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->events = EPOLLOUT | EPOLLIN;
    struct epoll_event e = {.events = c->events, .data.ptr = c};
    epoll_ctl(c->w->ep, EPOLL_CTL_ADD, fd, &e);
    if (connect(fd, (struct sockaddr *)&O.addr, O.addrlen) == 0) {
        conn_connected(c, now);
    } else if (errno == EINPROGRESS) {
        c->state = CONN_CONNECTING;
    } else {
        count_err(c->w, LG_E_CONNECT, now >= T_WARM_END());
        conn_reset(c, now, true);
    }
}

/* ---- writing --------------------------------------------------------------------------- */

/* Writes what it can of the output buffer. 0, or -EPIPE when writing failed: the output
 * is dropped, c->write_failed set, and the read side finishes the connection. */
static int conn_flush(struct conn *c, uint64_t now)
{
    while (c->out_off < c->out_len) {
        ssize_t n;
        size_t want = c->out_len - c->out_off;
        if (c->ssl) {
            /* after WANT_WRITE wolfSSL needs the same length again */
            if (c->tls_wlen)
                want = c->tls_wlen;
            int rc = wolfSSL_write(c->ssl, c->out + c->out_off, (int)want);
            if (rc <= 0) {
                int err = wolfSSL_get_error(c->ssl, rc);
                if (err == WOLFSSL_ERROR_WANT_WRITE || err == WOLFSSL_ERROR_WANT_READ) {
                    c->tls_wlen = want;
                    break;
                }
                n = -1;
            } else {
                c->tls_wlen = 0;
                n = rc;
            }
        } else {
            n = send(c->fd, c->out + c->out_off, want, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
        }
        if (n < 0) {
            /* A server may answer before it has read the whole request (RFC 9112 9.6,
             * RFC 9113 8.1: an early response to a large POST) and close or reset: stop
             * writing and read the response it sent. The requests in flight count as
             * write errors only if their responses do not come. */
            c->write_failed = true;
            c->out_off = c->out_len = c->tls_wlen = 0;
            conn_update_events(c);
            return -EPIPE;
        }
        c->out_off += (size_t)n;
        if (now >= T_WARM_END())
            c->w->bytes_out += (uint64_t)n;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    conn_update_events(c);
    return 0;
}

/* ---- responses ----------------------------------------------------------------------------- */

static void finish_request(struct conn *c, struct slot *s, int status, uint64_t now)
{
    struct worker *w = c->w;
    if (s->recorded && !s->timed_out) {
        uint64_t lat = now > s->intended_ns ? now - s->intended_ns : 0;
        hist_record(&w->hist, lat);
        w->requests++;
        if (status >= 100 && status < 600)
            w->status[status]++;
        if (status < 200 || status > 299)
            w->errors[LG_E_NON_2XX]++;
    }
    s->used = false;
    c->inflight--;
}

/* ---- HTTP/1.1 ------------------------------------------------------------------------------- */

/* One complete response. Returns -EPIPE when the connection was reset. */
static int h1_response_done(struct conn *c, uint64_t now)
{
    int status = c->h1.status;
    bool close_after = c->h1.close;
    lg_h1_init(&c->h1, strcmp(O.method, "HEAD") == 0);
    if (c->inflight == 0) { /* a response to no request */
        count_err(c->w, LG_E_PARSE, now >= T_WARM_END());
        conn_reset(c, now, false);
        return -EPIPE;
    }
    finish_request(c, &c->slots[0], status, now);
    if (close_after) {
        conn_reset(c, now, false);
        return -EPIPE;
    }
    return 0;
}

/* Parses (p, n): returns the bytes consumed (a partial line is left), or -EPIPE when the
 * connection was reset (a bad response, or a complete one with Connection: close). */
static ssize_t h1_parse(struct conn *c, const char *p, size_t n, uint64_t now)
{
    size_t off = 0;
    while (off < n) {
        bool done;
        ssize_t k = lg_h1_parse(&c->h1, p + off, n - off, &done);
        if (k < 0) {
            count_err(c->w, LG_E_PARSE, now >= T_WARM_END());
            for (unsigned i = 0; i < c->nslots; i++)
                c->slots[i].timed_out = true; /* counted as a parse error, not a read error */
            conn_reset(c, now, false);
            return -EPIPE;
        }
        off += (size_t)k;
        if (!done)
            break;
        if (h1_response_done(c, now) < 0)
            return -EPIPE;
    }
    return (ssize_t)off;
}

/* Feeds bytes read; keeps an unparsed partial line in c->in. 0 or -EPIPE (reset). */
static int h1_feed(struct conn *c, const char *p, size_t n, uint64_t now)
{
    if (c->in_len == 0) {
        ssize_t k = h1_parse(c, p, n, now);
        if (k < 0)
            return -EPIPE;
        p += k;
        n -= (size_t)k;
        if (n == 0)
            return 0;
    }
    if (c->in_len + n > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 4096;
        while (cap < c->in_len + n)
            cap *= 2;
        char *q = realloc(c->in, cap);
        if (!q) {
            count_err(c->w, LG_E_READ, true);
            conn_reset(c, now, false);
            return -EPIPE;
        }
        c->in = q;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, p, n);
    c->in_len += n;
    if (c->in_len == n) /* just stashed the tail of a direct parse */
        return 0;
    ssize_t k = h1_parse(c, c->in, c->in_len, now);
    if (k < 0)
        return -EPIPE;
    memmove(c->in, c->in + k, c->in_len - (size_t)k);
    c->in_len -= (size_t)k;
    return 0;
}

static int h1_send(struct conn *c, struct slot *s)
{
    (void)s;
    return out_append(c, h1_req, h1_req_len);
}

/* ---- HTTP/2 (nghttp2) ------------------------------------------------------------------------ */

static int h2_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *user_data)
{
    if (frame->hd.type != NGHTTP2_HEADERS || namelen != 7 || memcmp(name, ":status", 7) != 0)
        return 0;
    struct slot *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (s && valuelen == 3 && isdigit(value[0]) && isdigit(value[1]) && isdigit(value[2])) {
        int st = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
        if (st >= 200 || s->status == 0)
            s->status = st;
    }
    return 0;
}

/* Marks a response complete when its last frame arrives: the server may then reset the
 * stream (CANCEL) to refuse the rest of a request body it does not need. */
static int h2_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct slot *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (s)
            s->resp_done = true;
    }
    return 0;
}

static int h2_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                              void *user_data)
{
    struct conn *c = user_data;
    struct slot *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!s || !s->used)
        return 0;
    uint64_t now = now_ns();
    if (s->timed_out) {
        s->used = false;
        c->inflight--;
    } else if ((error_code != NGHTTP2_NO_ERROR && !s->resp_done) || s->status < 200) {
        count_err(c->w, LG_E_READ, s->recorded);
        s->used = false;
        c->inflight--;
    } else {
        finish_request(c, s, s->status, now);
    }
    return 0;
}

static ssize_t h2_read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                            size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                            void *user_data)
{
    struct slot *s = source->ptr;
    size_t k = O.body_size - s->body_off;
    if (k > length)
        k = length;
    memcpy(buf, req_body + s->body_off, k);
    s->body_off += k;
    if (s->body_off == O.body_size)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)k;
}

static nghttp2_session_callbacks *h2_callbacks; /* owned; read-only once made */

static int h2_session_start(struct conn *c)
{
    if (nghttp2_session_client_new(&c->h2, h2_callbacks, c) != 0)
        return -ENOMEM;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 16 << 20},
    };
    if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2) != 0 ||
        nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 64 << 20) != 0)
        return -ENOMEM;
    return 0;
}

static int h2_send(struct conn *c, struct slot *s)
{
    nghttp2_data_provider dp = {.source.ptr = s, .read_callback = h2_read_body};
    s->body_off = 0;
    int32_t id = nghttp2_submit_request(c->h2, NULL, h2_nv, h2_nnv, O.body_size ? &dp : NULL, s);
    if (id < 0)
        return -EIO;
    s->stream_id = id;
    return 0;
}

/* Moves nghttp2's pending frames into the output buffer. 0 or -EIO. */
static int h2_pull(struct conn *c)
{
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->h2, &data);
        if (n < 0)
            return -EIO;
        if (n == 0)
            return 0;
        if (out_append(c, data, (size_t)n) < 0)
            return -EIO;
    }
}

/* ---- the schedule ---------------------------------------------------------------------------- */

static bool has_unsent(const struct conn *c)
{
    return O.rate > 0 && sched_ns(c->gidx, c->next_i) < T_END();
}

/* Sends every request that is due and fits in flight, then flushes. */
static void conn_pump(struct conn *c, uint64_t now)
{
    if (c->state != CONN_READY)
        return;
    if (c->write_failed) {
        if (c->inflight == 0)
            conn_reset(c, now, false);
        return;
    }
    unsigned limit = slot_limit();
    while (c->w->started && c->inflight < limit) {
        uint64_t intended;
        if (O.rate > 0) {
            intended = sched_ns(c->gidx, c->next_i);
            if (intended > now || intended >= T_END())
                break;
        } else {
            if (now >= T_END() || now < T_START())
                break;
            intended = now;
        }
        struct slot *s = NULL;
        for (unsigned i = 0; i < c->nslots; i++)
            if (!c->slots[i].used) {
                s = &c->slots[i];
                break;
            }
        if (!s)
            break;
        *s = (struct slot){.intended_ns = intended,
                           .sent_ns = now,
                           .used = true,
                           .recorded = intended >= T_WARM_END() && intended < T_END()};
        if ((O.h2 ? h2_send(c, s) : h1_send(c, s)) < 0) {
            s->used = false;
            count_err(c->w, LG_E_WRITE, s->recorded);
            conn_reset(c, now, false);
            return;
        }
        c->inflight++;
        c->next_i++;
        if (O.rate > 0 && s->recorded)
            hist_record(&c->w->lag, now - intended);
    }
    if (c->h2 && h2_pull(c) < 0) {
        count_err(c->w, LG_E_PARSE, now >= T_WARM_END());
        conn_reset(c, now, false);
        return;
    }
    conn_flush(c, now);
}

/* ---- reading ------------------------------------------------------------------------------------
 */

static void conn_eof(struct conn *c, uint64_t now)
{
    if (!O.h2 && lg_h1_eof_completes(&c->h1) && c->inflight) {
        c->h1.close = true;
        h1_response_done(c, now);
        return;
    }
    conn_reset(c, now, false);
}

static void conn_readable(struct conn *c, uint64_t now)
{
    struct worker *w = c->w;
    for (;;) {
        ssize_t n;
        if (c->ssl) {
            int rc = wolfSSL_read(c->ssl, w->rbuf, RBUF_LEN);
            if (rc <= 0) {
                int err = wolfSSL_get_error(c->ssl, rc);
                if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
                    break;
                if (err == WOLFSSL_ERROR_ZERO_RETURN || rc == 0) {
                    conn_eof(c, now);
                    return;
                }
                conn_reset(c, now, false);
                return;
            }
            n = rc;
        } else {
            n = recv(c->fd, w->rbuf, RBUF_LEN, 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (n == 0) {
                conn_eof(c, now);
                return;
            }
            if (n < 0) {
                conn_reset(c, now, false);
                return;
            }
        }
        if (now >= T_WARM_END())
            w->bytes_in += (uint64_t)n;
        if (c->h2) {
            ssize_t k = nghttp2_session_mem_recv(c->h2, (const uint8_t *)w->rbuf, (size_t)n);
            if (k < 0) {
                count_err(w, LG_E_PARSE, now >= T_WARM_END());
                conn_reset(c, now, false);
                return;
            }
        } else if (h1_feed(c, w->rbuf, (size_t)n, now) < 0) {
            return;
        }
        if ((size_t)n < RBUF_LEN && !c->ssl)
            break;
    }
    if (c->h2 && !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
        conn_reset(c, now, false); /* GOAWAY and nothing left */
        return;
    }
    conn_pump(c, now);
}

static void conn_event(struct conn *c, uint32_t ev, uint64_t now)
{
    switch (c->state) {
    case CONN_IDLE:
        return;
    case CONN_CONNECTING: {
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            count_err(c->w, LG_E_CONNECT, now >= T_WARM_END());
            conn_reset(c, now, true);
            return;
        }
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        conn_connected(c, now);
        if (c->state == CONN_READY)
            conn_pump(c, now);
        else if (c->state != CONN_IDLE)
            conn_update_events(c);
        return;
    }
    case CONN_TLS:
        conn_tls_step(c, now);
        if (c->state == CONN_READY)
            conn_pump(c, now);
        return;
    case CONN_READY:
        if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            conn_readable(c, now);
            if (c->state != CONN_READY)
                return;
        }
        if (ev & EPOLLOUT)
            conn_flush(c, now);
        return;
    }
}

/* ---- the worker loop
 * ----------------------------------------------------------------------------- */

static void check_timeouts(struct worker *w, uint64_t now)
{
    uint64_t to = (uint64_t)O.timeout_ms * NS_PER_MS;
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        bool h1_expired = false;
        for (unsigned j = 0; j < c->nslots; j++) {
            struct slot *s = &c->slots[j];
            if (!s->used || s->timed_out || now - s->sent_ns < to)
                continue;
            count_err(w, LG_E_TIMEOUT, s->recorded);
            s->timed_out = true;
            if (c->h2)
                nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->stream_id, NGHTTP2_CANCEL);
            else
                h1_expired = true;
        }
        if (h1_expired)
            conn_reset(c, now, false); /* HTTP/1.1 cannot cancel one request */
        else if (c->h2)
            conn_pump(c, now);
    }
}

static bool worker_outstanding(struct worker *w)
{
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        /* unsent requests are waited for only on a connection that may still send them:
         * not on one whose connects keep failing (a refused port would cost --timeout) */
        if (has_unsent(c) && !(c->state == CONN_IDLE && c->fails > 0))
            return true;
        for (unsigned j = 0; j < c->nslots; j++)
            if (c->slots[j].used && c->slots[j].recorded && !c->slots[j].timed_out)
                return true;
    }
    return false;
}

static void worker_finish(struct worker *w)
{
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        for (unsigned j = 0; j < c->nslots; j++) {
            struct slot *s = &c->slots[j];
            if (s->used && s->recorded && !s->timed_out) {
                w->errors[LG_E_TIMEOUT]++;
                s->timed_out = true;
            }
        }
        if (O.rate > 0)
            for (uint64_t k = c->next_i;; k++) {
                uint64_t t = sched_ns(c->gidx, k);
                if (t >= T_END())
                    break;
                if (t >= T_WARM_END())
                    w->errors[LG_E_NOT_SENT]++;
            }
        if (c->state != CONN_IDLE || c->fd >= 0) {
            uint64_t r = w->reconnects;
            conn_reset(c, now_ns(), false);
            w->reconnects = r;
        }
    }
}

/* Waits for events until next (ns, CLOCK_MONOTONIC) at the latest, and 10 ms at most (the
 * timeout checks). epoll_pwait2 takes the timeout in ns, so an open-loop send is not
 * rounded to the millisecond and needs no timerfd (one syscall per wake-up, not three). */
static int wait_events(struct worker *w, struct epoll_event *evs, int max, uint64_t now,
                       uint64_t next)
{
    uint64_t d = next <= now ? 0 : next - now;
    if (d > TICK_NS)
        d = TICK_NS;
    if (!w->no_pwait2) {
        struct timespec ts = {.tv_sec = (time_t)(d / NS_PER_S), .tv_nsec = (long)(d % NS_PER_S)};
        int n = epoll_pwait2(w->ep, evs, max, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        w->no_pwait2 = true;
    }
    return epoll_wait(w->ep, evs, max, (int)((d + NS_PER_MS - 1) / NS_PER_MS));
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[64];
    uint64_t errs;
    /* the epoll timeout wakes us for each intended send: without this, the default 50 us
     * timer slack would be added to every open-loop latency */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    /* Connect first, for up to 2 s: the schedule starts when every connection is up or has
     * failed once, so that a slow start (hundreds of TLS handshakes) does not queue the
     * first requests of the warm-up behind it. */
    uint64_t connect_until = now_ns() + 2 * NS_PER_S;
    for (;;) {
        uint64_t now = now_ns();
        bool settled = true;
        for (unsigned i = 0; i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            if (c->state == CONN_IDLE && c->reconnect_at_ns <= now)
                conn_start(c, now);
            if (c->state != CONN_READY && c->fails == 0)
                settled = false;
        }
        if (settled || now >= connect_until)
            break;
        int n = wait_events(w, evs, 64, now, now + TICK_NS);
        now = now_ns();
        for (int i = 0; i < n; i++)
            conn_event(evs[i].data.ptr, evs[i].events, now);
    }
    pthread_mutex_lock(&start_mu);
    start_ready++;
    pthread_cond_broadcast(&start_cv);
    while (!start_go)
        pthread_cond_wait(&start_cv, &start_mu);
    pthread_mutex_unlock(&start_mu);
    w->started = true;
    uint64_t next_tick = 0, drain_until = T_END() + (uint64_t)O.timeout_ms * NS_PER_MS;
    for (;;) {
        uint64_t now = now_ns(), next = UINT64_MAX;
        bool draining = now >= T_END();
        if (draining && (!worker_outstanding(w) || now >= drain_until))
            break;
        if (now >= next_tick) {
            check_timeouts(w, now);
            next_tick = now + TICK_NS;
        }
        for (unsigned i = 0; i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            if (c->state == CONN_IDLE && c->reconnect_at_ns <= now && (!draining || has_unsent(c)))
                conn_start(c, now);
            if (c->state == CONN_READY)
                conn_pump(c, now);
            if (c->state == CONN_IDLE) {
                if (c->reconnect_at_ns < next)
                    next = c->reconnect_at_ns;
            } else if (c->state == CONN_READY && O.rate > 0 && c->inflight < slot_limit() &&
                       has_unsent(c)) {
                uint64_t t = sched_ns(c->gidx, c->next_i);
                if (t < next)
                    next = t;
            }
        }
        if (now < T_START() && T_START() < next)
            next = T_START();
        if (!draining && T_END() < next)
            next = T_END();
        errs = 0;
        for (unsigned e = 0; e < LG_E_COUNT; e++)
            errs += w->errors[e];
        __atomic_store_n(&w->pub_requests, w->requests, __ATOMIC_RELAXED);
        __atomic_store_n(&w->pub_errors, errs, __ATOMIC_RELAXED);
        int n = wait_events(w, evs, 64, now, next);
        now = now_ns();
        for (int i = 0; i < n; i++)
            conn_event(evs[i].data.ptr, evs[i].events, now);
    }
    worker_finish(w);
#ifdef FP_ECC
    if (O.tls)
        wc_ecc_fp_free(); /* this thread's fixed-point ECC tables (wolfSSL keeps them per thread) */
#endif
    errs = 0;
    for (unsigned e = 0; e < LG_E_COUNT; e++)
        errs += w->errors[e];
    __atomic_store_n(&w->pub_requests, w->requests, __ATOMIC_RELAXED);
    __atomic_store_n(&w->pub_errors, errs, __ATOMIC_RELAXED);
    return NULL;
}

static int worker_init(struct worker *w, unsigned id, unsigned first, unsigned n)
{
    w->id = id;
    w->first_gidx = first;
    w->nconns = n;
    hist_init(&w->hist);
    hist_init(&w->lag);
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->conns = calloc(n, sizeof(*w->conns));
    if (w->ep < 0 || !w->conns)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        struct conn *c = &w->conns[i];
        c->w = w;
        c->gidx = first + i;
        c->fd = -1;
        lg_h1_init(&c->h1, strcmp(O.method, "HEAD") == 0);
        c->nslots = slot_limit();
        c->slots = calloc(c->nslots, sizeof(*c->slots));
        if (!c->slots)
            return -ENOMEM;
    }
    return 0;
}

static void worker_free(struct worker *w)
{
    for (unsigned i = 0; w->conns && i < w->nconns; i++) {
        free(w->conns[i].slots);
        free(w->conns[i].out);
        free(w->conns[i].in);
    }
    free(w->conns);
    if (w->ep >= 0)
        close(w->ep);
}

/* ---- setup: options, URL, request, TLS
 * ------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: ringmesh-loadgen [options] URL   (http://host:port/path or https://...)\n"
        "  -r, --rate N         target requests/s over all connections (open loop);\n"
        "                       0 = closed loop, as fast as possible (default 0)\n"
        "  -c, --connections N  connections (16)\n"
        "  -m, --streams N      HTTP/2 streams in flight per connection (1)\n"
        "  -d, --duration S     measured seconds (10)   --warmup S  unrecorded seconds before (1)\n"
        "  -t, --threads N      worker threads (1)\n"
        "  --h2                 HTTP/2 (prior knowledge on http://, ALPN h2 on https://)\n"
        "  --method M           request method (GET; POST with --body-size)\n"
        "  --body-size N        request body of N bytes\n"
        "  -H 'name: value'     an extra request header (repeatable)\n"
        "  --tls                TLS on an http:// URL too (https:// implies it)\n"
        "  --cacert FILE  --cert FILE --key FILE  --sni NAME  --insecure   (TLS)\n"
        "  --timeout MS         per request (5000)\n"
        "  --json               one JSON object on stdout\n"
        "  --quiet              no progress line on stderr\n");
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "ringmesh-loadgen: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(ringmesh-loadgen --help for the options)\n");
    exit(2);
}

static double num_arg(const char *opt, const char *s, double min, double max)
{
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (!*s || *e || errno || !isfinite(v))
        die_usage("%s: '%s' is not a number", opt, s);
    if (v < min || v > max)
        die_usage("%s: %s is out of range (%g..%g)", opt, s, min, max);
    return v;
}

static unsigned uint_arg(const char *opt, const char *s, unsigned min, unsigned max)
{
    double v = num_arg(opt, s, min, max);
    if (v != floor(v))
        die_usage("%s: '%s' is not a whole number", opt, s);
    return (unsigned)v;
}

static void parse_url(const char *url)
{
    const char *p;
    if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        p = url + 8;
        O.tls = true;
    } else {
        die_usage("URL '%s': want http://host[:port][/path] or https://...", url);
    }
    const char *slash = strchr(p, '/');
    size_t hp_len = slash ? (size_t)(slash - p) : strlen(p);
    O.path = slash ? slash : "/";
    if (hp_len == 0 || hp_len >= sizeof(O.authority))
        die_usage("URL '%s': no host", url);
    memcpy(O.authority, p, hp_len);
    O.authority[hp_len] = 0;
    const char *hs = O.authority, *he, *port = NULL;
    if (*hs == '[') {
        he = strchr(hs, ']');
        if (!he)
            die_usage("URL '%s': unterminated [IPv6 address]", url);
        hs++;
        if (he[1] == ':')
            port = he + 2;
        else if (he[1])
            die_usage("URL '%s': junk after the ]", url);
    } else {
        he = strchr(hs, ':');
        if (he)
            port = he + 1;
        else
            he = hs + strlen(hs);
    }
    if (he == hs || (size_t)(he - hs) >= sizeof(O.host))
        die_usage("URL '%s': no host", url);
    memcpy(O.host, hs, (size_t)(he - hs));
    O.host[he - hs] = 0;
    if (port) {
        unsigned pn = uint_arg("URL port", port, 1, 65535);
        snprintf(O.port, sizeof(O.port), "%u", pn);
    } else {
        snprintf(O.port, sizeof(O.port), "%s", O.tls ? "443" : "80");
    }
}

static void resolve(void)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(O.host, O.port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "ringmesh-loadgen: cannot resolve %s: %s\n", O.host, gai_strerror(rc));
        exit(1);
    }
    memcpy(&O.addr, res->ai_addr, res->ai_addrlen);
    O.addrlen = res->ai_addrlen;
    freeaddrinfo(res);
}

static bool has_header(const char *name)
{
    for (unsigned i = 0; i < O.nhdr; i++)
        if (strcasecmp(O.hdr_name[i], name) == 0)
            return true;
    return false;
}

static void make_nv(const char *name, const char *value)
{
    h2_nv[h2_nnv++] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                                   NGHTTP2_NV_FLAG_NONE};
}

static void build_request(void)
{
    static char clen[24];
    req_body = malloc(O.body_size + 1);
    if (!req_body)
        exit(1);
    memset(req_body, 'x', O.body_size);
    snprintf(clen, sizeof(clen), "%zu", O.body_size);
    size_t cap = 512 + strlen(O.path) + strlen(O.authority) + O.body_size;
    for (unsigned i = 0; i < O.nhdr; i++)
        cap += strlen(O.hdr_name[i]) + strlen(O.hdr_value[i]) + 4;
    h1_req = malloc(cap);
    if (!h1_req)
        exit(1);
    int n = snprintf(h1_req, cap, "%s %s HTTP/1.1\r\n", O.method, O.path);
    if (!has_header("host"))
        n += snprintf(h1_req + n, cap - (size_t)n, "Host: %s\r\n", O.authority);
    if (!has_header("user-agent"))
        n += snprintf(h1_req + n, cap - (size_t)n, "User-Agent: ringmesh-loadgen\r\n");
    if (O.body_size && !has_header("content-length"))
        n += snprintf(h1_req + n, cap - (size_t)n, "Content-Length: %zu\r\n", O.body_size);
    for (unsigned i = 0; i < O.nhdr; i++)
        n += snprintf(h1_req + n, cap - (size_t)n, "%s: %s\r\n", O.hdr_name[i], O.hdr_value[i]);
    n += snprintf(h1_req + n, cap - (size_t)n, "\r\n");
    memcpy(h1_req + n, req_body, O.body_size);
    h1_req_len = (size_t)n + O.body_size;

    const char *auth = O.authority;
    for (unsigned i = 0; i < O.nhdr; i++)
        if (strcasecmp(O.hdr_name[i], "host") == 0)
            auth = O.hdr_value[i];
    make_nv(":method", O.method);
    make_nv(":scheme", O.tls ? "https" : "http");
    make_nv(":authority", auth);
    make_nv(":path", O.path);
    if (!has_header("user-agent"))
        make_nv("user-agent", "ringmesh-loadgen");
    if (O.body_size && !has_header("content-length"))
        make_nv("content-length", clen);
    for (unsigned i = 0; i < O.nhdr; i++)
        if (strcasecmp(O.hdr_name[i], "host") != 0)
            make_nv(O.hdr_name[i], O.hdr_value[i]);
}

static void add_header(const char *arg)
{
    if (O.nhdr == MAX_HEADERS)
        die_usage("-H: at most %d headers", MAX_HEADERS);
    const char *colon = strchr(arg, ':');
    if (!colon || colon == arg)
        die_usage("-H '%s': want 'name: value'", arg);
    char *name = strndup(arg, (size_t)(colon - arg));
    for (char *q = name; *q; q++) {
        if (!isgraph((unsigned char)*q))
            die_usage("-H '%s': bad header name", arg);
        *q = (char)tolower((unsigned char)*q); /* HTTP/2 wants lower case; HTTP/1.1 does not care */
    }
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    O.hdr_name[O.nhdr] = name;
    O.hdr_value[O.nhdr++] = v;
}

static void tls_setup(void)
{
    char msg[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_Init();
    tls_ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    if (!tls_ctx) {
        fprintf(stderr, "ringmesh-loadgen: wolfSSL_CTX_new failed\n");
        exit(1);
    }
    if (O.insecure) {
        wolfSSL_CTX_set_verify(tls_ctx, WOLFSSL_VERIFY_NONE, NULL);
    } else {
        int rc = O.cacert ? wolfSSL_CTX_load_verify_locations(tls_ctx, O.cacert, NULL)
                          : wolfSSL_CTX_load_system_CA_certs(tls_ctx);
        if (rc != WOLFSSL_SUCCESS) {
            fprintf(stderr, "ringmesh-loadgen: %s: cannot load CA certificates: %s\n",
                    O.cacert ? O.cacert : "the system's",
                    wolfSSL_ERR_error_string((unsigned long)rc, msg));
            exit(1);
        }
        wolfSSL_CTX_set_verify(tls_ctx, WOLFSSL_VERIFY_PEER, NULL);
    }
    if (O.cert && wolfSSL_CTX_use_certificate_chain_file(tls_ctx, O.cert) != WOLFSSL_SUCCESS) {
        fprintf(stderr, "ringmesh-loadgen: --cert %s: cannot load it (PEM certificate chain)\n",
                O.cert);
        exit(1);
    }
    if (O.key &&
        wolfSSL_CTX_use_PrivateKey_file(tls_ctx, O.key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        fprintf(stderr, "ringmesh-loadgen: --key %s: cannot load it (PEM private key)\n", O.key);
        exit(1);
    }
}

static void parse_args(int argc, char **argv)
{
    enum {
        OPT_H2 = 256,
        OPT_METHOD,
        OPT_BODY,
        OPT_CACERT,
        OPT_CERT,
        OPT_KEY,
        OPT_SNI,
        OPT_INSECURE,
        OPT_JSON,
        OPT_TIMEOUT,
        OPT_QUIET,
        OPT_WARMUP,
        OPT_TLS
    };
    bool force_tls = false;
    static const struct option lo[] = {
        {"rate", required_argument, NULL, 'r'},
        {"connections", required_argument, NULL, 'c'},
        {"streams", required_argument, NULL, 'm'},
        {"duration", required_argument, NULL, 'd'},
        {"threads", required_argument, NULL, 't'},
        {"header", required_argument, NULL, 'H'},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"h2", no_argument, NULL, OPT_H2},
        {"method", required_argument, NULL, OPT_METHOD},
        {"body-size", required_argument, NULL, OPT_BODY},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"cert", required_argument, NULL, OPT_CERT},
        {"key", required_argument, NULL, OPT_KEY},
        {"sni", required_argument, NULL, OPT_SNI},
        {"insecure", no_argument, NULL, OPT_INSECURE},
        {"tls", no_argument, NULL, OPT_TLS},
        {"json", no_argument, NULL, OPT_JSON},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    O.conns = 16;
    O.streams = 1;
    O.threads = 1;
    O.duration_s = 10;
    O.warmup_s = 1;
    O.timeout_ms = 5000;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":r:c:m:d:t:H:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'r':
            O.rate = num_arg("--rate", optarg, 0, 1e9);
            break;
        case 'c':
            O.conns = uint_arg("--connections", optarg, 1, 100000);
            break;
        case 'm':
            O.streams = uint_arg("--streams", optarg, 1, 10000);
            break;
        case 'd':
            O.duration_s = num_arg("--duration", optarg, 0.001, 1e6);
            break;
        case 't':
            O.threads = uint_arg("--threads", optarg, 1, 1024);
            break;
        case 'H':
            add_header(optarg);
            break;
        case OPT_WARMUP:
            O.warmup_s = num_arg("--warmup", optarg, 0, 1e6);
            break;
        case OPT_H2:
            O.h2 = true;
            break;
        case OPT_METHOD:
            for (const char *q = optarg; *q; q++)
                if (!isupper((unsigned char)*q) && *q != '-' && *q != '_')
                    die_usage("--method '%s': want an upper-case token like GET or POST", optarg);
            if (!*optarg)
                die_usage("--method: empty");
            O.method = optarg;
            break;
        case OPT_BODY:
            O.body_size = uint_arg("--body-size", optarg, 0, 1u << 30);
            break;
        case OPT_CACERT:
            O.cacert = optarg;
            break;
        case OPT_CERT:
            O.cert = optarg;
            break;
        case OPT_KEY:
            O.key = optarg;
            break;
        case OPT_SNI:
            O.sni = optarg;
            break;
        case OPT_INSECURE:
            O.insecure = true;
            break;
        case OPT_JSON:
            O.json = true;
            break;
        case OPT_TIMEOUT:
            O.timeout_ms = uint_arg("--timeout", optarg, 1, 3600000);
            break;
        case OPT_QUIET:
            O.quiet = true;
            break;
        case OPT_TLS:
            force_tls = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case ':':
            die_usage("%s needs a value", argv[optind - 1]);
        default:
            if (optopt)
                die_usage("unknown option -%c", optopt);
            die_usage("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind == argc)
        die_usage("no URL");
    if (optind + 1 < argc)
        die_usage("one URL only ('%s' is extra)", argv[optind + 1]);
    O.url = argv[optind];
    parse_url(O.url);
    O.tls |= force_tls;
    if (!O.method)
        O.method = O.body_size ? "POST" : "GET";
    if (!!O.cert != !!O.key)
        die_usage("--cert and --key go together");
    if (!O.tls && (O.cacert || O.cert || O.sni || O.insecure))
        die_usage(
            "--cacert, --cert, --key, --sni and --insecure need TLS (an https:// URL or --tls)");
    if (!O.h2 && O.streams > 1)
        die_usage("-m %u: HTTP/1.1 has one request in flight per connection (use --h2)", O.streams);
    if (O.threads > O.conns)
        O.threads = O.conns;
}

/* ---- results
 * -------------------------------------------------------------------------------------- */

struct totals {
    struct hist *hist, *lag;
    uint64_t requests, errors[LG_E_COUNT], status[600], bytes_in, bytes_out, reconnects;
};

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static void print_json(const struct totals *t)
{
    const struct hist *h = t->hist;
    char url[2048]; /* O.url as a JSON string */
    size_t n = 0;
    for (const char *q = O.url; *q && n + 8 < sizeof(url); q++) {
        if (*q == '"' || *q == '\\')
            n += (size_t)snprintf(url + n, sizeof(url) - n, "\\%c", *q);
        else if ((unsigned char)*q < 0x20)
            n += (size_t)snprintf(url + n, sizeof(url) - n, "\\u%04x", (unsigned)*q);
        else
            url[n++] = *q;
    }
    url[n] = 0;
    printf("{\"url\":\"%s\",\"protocol\":\"%s\",\"target_rate\":%g,\"achieved_rate\":%.1f,"
           "\"duration_s\":%g,\"warmup_s\":%g,\"connections\":%u,\"streams\":%u,\"threads\":%u,"
           "\"requests\":%llu,\"errors\":{",
           url, O.h2 ? "h2" : "http/1.1", O.rate, (double)t->requests / O.duration_s, O.duration_s,
           O.warmup_s, O.conns, slot_limit(), O.threads, (unsigned long long)t->requests);
    for (unsigned e = 0; e < LG_E_COUNT; e++)
        printf("%s\"%s\":%llu", e ? "," : "", lg_err_name[e], (unsigned long long)t->errors[e]);
    printf("},\"reconnects\":%llu,\"status\":{", (unsigned long long)t->reconnects);
    const char *sep = "";
    for (int s = 100; s < 600; s++)
        if (t->status[s]) {
            printf("%s\"%d\":%llu", sep, s, (unsigned long long)t->status[s]);
            sep = ",";
        }
    printf("},\"latency_us\":{\"min\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p99_9\":%.1f,"
           "\"max\":%.1f,\"mean\":%.1f,\"stdev\":%.1f},",
           us(h->count ? h->min_ns : 0), us(hist_percentile(h, 50)), us(hist_percentile(h, 90)),
           us(hist_percentile(h, 99)), us(hist_percentile(h, 99.9)), us(h->max_ns),
           hist_mean(h) / 1000.0, hist_stdev(h) / 1000.0);
    printf("\"send_lag_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f},",
           us(hist_percentile(t->lag, 50)), us(hist_percentile(t->lag, 90)),
           us(hist_percentile(t->lag, 99)), us(t->lag->max_ns));
    printf("\"bytes_in\":%llu,\"bytes_out\":%llu,\"corrected\":%s,\"histogram\":[",
           (unsigned long long)t->bytes_in, (unsigned long long)t->bytes_out,
           O.rate > 0 ? "true" : "false");
    unsigned it = 0;
    uint64_t lo, hi, cnt;
    sep = "";
    while (hist_next(h, &it, &lo, &hi, &cnt)) {
        printf("%s[%.3f,%llu]", sep, us(hi), (unsigned long long)cnt);
        sep = ",";
    }
    printf("]}\n");
}

static void print_human(const struct totals *t)
{
    const struct hist *h = t->hist;
    printf("%s: %s, %u connection(s) x %u, %u thread(s), ", O.url, O.h2 ? "HTTP/2" : "HTTP/1.1",
           O.conns, slot_limit(), O.threads);
    if (O.rate > 0)
        printf("open loop at %g req/s (latency from the intended send: corrected)\n", O.rate);
    else
        printf("closed loop (latency from the actual send)\n");
    printf("  %llu requests in %gs: %.1f req/s", (unsigned long long)t->requests, O.duration_s,
           (double)t->requests / O.duration_s);
    printf(", %.2f MB in, %.2f MB out\n", (double)t->bytes_in / 1e6, (double)t->bytes_out / 1e6);
    printf("  latency ms: min %.3f  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (mean "
           "%.3f, stdev %.3f)\n",
           (h->count ? h->min_ns : 0) / 1e6, hist_percentile(h, 50) / 1e6,
           hist_percentile(h, 90) / 1e6, hist_percentile(h, 99) / 1e6,
           hist_percentile(h, 99.9) / 1e6, h->max_ns / 1e6, hist_mean(h) / 1e6,
           hist_stdev(h) / 1e6);
    if (O.rate > 0)
        printf("  send lag ms (actual - intended send): p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
               hist_percentile(t->lag, 50) / 1e6, hist_percentile(t->lag, 90) / 1e6,
               hist_percentile(t->lag, 99) / 1e6, t->lag->max_ns / 1e6);
    printf("  status:");
    for (int s = 100; s < 600; s++)
        if (t->status[s])
            printf(" %d=%llu", s, (unsigned long long)t->status[s]);
    printf("\n  errors:");
    uint64_t any = 0;
    for (unsigned e = 0; e < LG_E_COUNT; e++)
        if (t->errors[e]) {
            printf(" %s=%llu", lg_err_name[e], (unsigned long long)t->errors[e]);
            any += t->errors[e];
        }
    printf("%s; reconnects %llu\n", any ? "" : " none", (unsigned long long)t->reconnects);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    parse_args(argc, argv);
    resolve();
    build_request();
    if (O.tls)
        tls_setup();
    if (nghttp2_session_callbacks_new(&h2_callbacks) != 0)
        return 1;
    nghttp2_session_callbacks_set_on_header_callback(h2_callbacks, h2_on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(h2_callbacks, h2_on_stream_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(h2_callbacks, h2_on_frame_recv);

    struct worker *ws = calloc(O.threads, sizeof(*ws));
    if (!ws)
        return 1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&start_cv, &ca);
    pthread_condattr_destroy(&ca);
    unsigned first = 0;
    for (unsigned i = 0; i < O.threads; i++) {
        unsigned n = O.conns / O.threads + (i < O.conns % O.threads);
        ws[i].ep = -1;
        if (worker_init(&ws[i], i, first, n) < 0) {
            fprintf(stderr, "ringmesh-loadgen: out of memory or file descriptors\n");
            return 1;
        }
        first += n;
    }
    for (unsigned i = 0; i < O.threads; i++)
        if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) {
            fprintf(stderr, "ringmesh-loadgen: cannot start a thread\n");
            return 1;
        }
    /* the workers connect (2 s at most each); then the schedule starts for all at once */
    uint64_t until = now_ns() + 3 * NS_PER_S;
    struct timespec dl = {.tv_sec = (time_t)(until / NS_PER_S),
                          .tv_nsec = (long)(until % NS_PER_S)};
    pthread_mutex_lock(&start_mu);
    while (start_ready < O.threads &&
           pthread_cond_timedwait(&start_cv, &start_mu, &dl) != ETIMEDOUT)
        ;
    uint64_t t0 = now_ns() + 10 * NS_PER_MS, t1 = t0 + (uint64_t)(O.warmup_s * 1e9);
    __atomic_store_n(&t_start_ns, t0, __ATOMIC_RELAXED);
    __atomic_store_n(&t_warm_end_ns, t1, __ATOMIC_RELAXED);
    __atomic_store_n(&t_end_ns, t1 + (uint64_t)(O.duration_s * 1e9), __ATOMIC_RELAXED);
    start_go = true;
    pthread_cond_broadcast(&start_cv);
    pthread_mutex_unlock(&start_mu);
    /* progress, once a second, until the run (and its drain) is over */
    uint64_t last_req = 0, tick = T_START() + NS_PER_S;
    for (;;) {
        uint64_t now = now_ns();
        if (now >= T_END())
            break;
        uint64_t wait = (tick < T_END() ? tick : T_END()) - now;
        struct timespec ts = {.tv_sec = (time_t)(wait / NS_PER_S),
                              .tv_nsec = (long)(wait % NS_PER_S)};
        nanosleep(&ts, NULL);
        if (now_ns() < tick)
            continue;
        uint64_t req = 0, err = 0;
        for (unsigned i = 0; i < O.threads; i++) {
            req += __atomic_load_n(&ws[i].pub_requests, __ATOMIC_RELAXED);
            err += __atomic_load_n(&ws[i].pub_errors, __ATOMIC_RELAXED);
        }
        if (!O.quiet)
            fprintf(stderr, "[loadgen %5.1fs] %s %llu req/s, %llu requests, %llu errors\n",
                    (double)(tick - T_START()) / 1e9,
                    tick <= T_WARM_END() ? "warmup   " : "measuring",
                    (unsigned long long)(req - last_req), (unsigned long long)req,
                    (unsigned long long)err);
        last_req = req;
        tick += NS_PER_S;
    }
    struct totals t = {.hist = malloc(sizeof(struct hist)), .lag = malloc(sizeof(struct hist))};
    if (!t.hist || !t.lag)
        return 1;
    hist_init(t.hist);
    hist_init(t.lag);
    for (unsigned i = 0; i < O.threads; i++) {
        pthread_join(ws[i].th, NULL);
        struct worker *w = &ws[i];
        hist_merge(t.hist, &w->hist);
        hist_merge(t.lag, &w->lag);
        t.requests += w->requests;
        t.bytes_in += w->bytes_in;
        t.bytes_out += w->bytes_out;
        t.reconnects += w->reconnects;
        for (unsigned e = 0; e < LG_E_COUNT; e++)
            t.errors[e] += w->errors[e];
        for (unsigned s = 0; s < 600; s++)
            t.status[s] += w->status[s];
        worker_free(w);
    }
    if (O.json)
        print_json(&t);
    else
        print_human(&t);
    uint64_t answered = t.requests;
    free(t.hist);
    free(t.lag);
    free(ws);
    nghttp2_session_callbacks_del(h2_callbacks);
    if (tls_ctx) {
        wolfSSL_CTX_free(tls_ctx);
        wolfSSL_Cleanup();
    }
    free(h1_req);
    free(req_body);
    for (unsigned i = 0; i < O.nhdr; i++)
        free((char *)O.hdr_name[i]);
    return answered ? 0 : 1;
}
