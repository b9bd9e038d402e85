/*
 * tcpbench.c - a small TCP load tool for the L4 benchmarks (bench/run.sh).
 *
 *   tcpbench server PORT [--bind ADDR] [--threads N]
 *   tcpbench throughput HOST PORT [--seconds S] [--streams K]
 *   tcpbench connrate HOST PORT [--seconds S] [--concurrency C]
 *
 * The wire protocol is ours alone. A client's first byte picks the exchange:
 *   'T'  throughput: the client sends bytes until it shuts down its write side; the server
 *        counts every byte after the 'T' and, at EOF, answers "<count>\n" and closes. The
 *        client reports the server's count, so bytes still queued in a proxy (or lost) are
 *        never counted, and the clock stops only when that count has come back.
 *   'C'  connection rate: a request of TCPBENCH_REQ_LEN bytes (the 'C' included); the server
 *        answers TCPBENCH_RESP_LEN bytes and closes first, so TIME_WAIT lands on the accepting
 *        side and clients do not run out of ephemeral ports.
 * The server is one epoll loop per thread (SO_REUSEPORT listeners); the clients are one
 * thread per stream or per concurrent connection with plain blocking sockets and bounded
 * socket timeouts. Each client run prints one JSON line on stdout; errors go to stderr.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TCPBENCH_REQ_LEN   64
#define TCPBENCH_RESP_LEN  64
#define TCPBENCH_SEND_LEN  (128 * 1024) /* bytes per send() in throughput mode */
#define TCPBENCH_RECV_LEN  (256 * 1024) /* server read buffer */
#define TCPBENCH_IO_TIMEOUT_S 10        /* every blocking client call is bounded by this */

struct opts {
    const char *mode;
    const char *host;
    const char *port;
    const char *bind_addr;
    unsigned seconds;
    unsigned streams;
    unsigned concurrency;
    unsigned threads;
};

static void usage(FILE *f)
{
    fputs("usage: tcpbench server PORT [--bind ADDR] [--threads N]\n"
          "       tcpbench throughput HOST PORT [--seconds S] [--streams K]\n"
          "       tcpbench connrate HOST PORT [--seconds S] [--concurrency C]\n"
          "HOST is a numeric IPv4 or IPv6 address. Defaults: --seconds 5, --streams 1,\n"
          "--concurrency 16, --threads 1, --bind 0.0.0.0.\n",
          f);
}

/* A usage error: the message names the flag or argument; exit 2. */
static void __attribute__((format(printf, 1, 2), noreturn)) die_usage(const char *fmt, ...)
{
    va_list ap;
    fputs("tcpbench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage(stderr);
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned parse_flag_uint(const char *flag, const char *s, unsigned min, unsigned max)
{
    char *end;
    unsigned long v;
    errno = 0;
    if (!*s || *s == '-' || *s == '+' || (v = strtoul(s, &end, 10), errno || *end) ||
        v < min || v > max)
        die_usage("%s: want a whole number from %u to %u, got '%s'", flag, min, max, s);
    return (unsigned)v;
}

static void parse_args(struct opts *o, int argc, char **argv)
{
    const char *pos[3];
    int npos = 0;
    memset(o, 0, sizeof(*o));
    o->seconds = 5;
    o->streams = 1;
    o->concurrency = 16;
    o->threads = 1;
    o->bind_addr = "0.0.0.0";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (a[0] != '-') {
            if (npos == 3)
                die_usage("unexpected argument '%s'", a);
            pos[npos++] = a;
            continue;
        }
        if (!v)
            die_usage("%s: missing value", a);
        if (!strcmp(a, "--seconds"))
            o->seconds = parse_flag_uint(a, v, 1, 3600);
        else if (!strcmp(a, "--streams"))
            o->streams = parse_flag_uint(a, v, 1, 1024);
        else if (!strcmp(a, "--concurrency"))
            o->concurrency = parse_flag_uint(a, v, 1, 1024);
        else if (!strcmp(a, "--threads"))
            o->threads = parse_flag_uint(a, v, 1, 64);
        else if (!strcmp(a, "--bind"))
            o->bind_addr = v;
        else
            die_usage("unknown flag %s", a);
        i++;
    }
    if (npos == 0)
        die_usage("missing mode (server, throughput or connrate)");
    o->mode = pos[0];
    if (!strcmp(o->mode, "server")) {
        if (npos != 2)
            die_usage("server: want PORT");
        o->port = pos[1];
    } else if (!strcmp(o->mode, "throughput") || !strcmp(o->mode, "connrate")) {
        if (npos != 3)
            die_usage("%s: want HOST PORT", o->mode);
        o->host = pos[1];
        o->port = pos[2];
    } else {
        die_usage("unknown mode '%s'", o->mode);
    }
    parse_flag_uint("PORT", o->port, 1, 65535);
}

/* Resolves a numeric address; exits 2 on a bad one (it came from the command line). */
static void resolve(const char *host, const char *port, struct sockaddr_storage *ss,
                    socklen_t *len)
{
    struct addrinfo hints, *res;
    int e;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    e = getaddrinfo(host, port, &hints, &res);
    if (e)
        die_usage("bad address %s: %s", host, gai_strerror(e));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
}

/* ---- server ---------------------------------------------------------------------- */

enum srv_kind { SRV_NEW, SRV_THROUGHPUT, SRV_CONNRATE };

struct srv_conn {
    int fd;
    enum srv_kind kind;
    uint64_t count; /* throughput: payload bytes; connrate: request bytes */
};

struct srv_thread {
    pthread_t tid;
    int lfd;
    int epfd;
};

static struct sockaddr_storage srv_addr;
static socklen_t srv_addr_len;

static void srv_close(struct srv_thread *t, struct srv_conn *c)
{
    epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Writes a short reply at once; a fresh socket's send buffer always has room for it, so
 * a short write means the peer is gone. */
static bool srv_reply(int fd, const void *p, size_t len)
{
    return send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)len;
}

/* Reads what is there; returns false when the connection is finished (and closed). */
static bool srv_readable(struct srv_thread *t, struct srv_conn *c, char *buf)
{
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = recv(c->fd, buf, TCPBENCH_RECV_LEN, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return true;
        if (n < 0) {
            if (errno != ECONNRESET)
                fprintf(stderr, "tcpbench server: recv: %s\n", strerror(errno));
            srv_close(t, c);
            return false;
        }
        if (n == 0) {
            if (c->kind == SRV_THROUGHPUT) {
                char line[32];
                int l = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)c->count);
                if (!srv_reply(c->fd, line, (size_t)l))
                    fprintf(stderr, "tcpbench server: cannot send the byte count\n");
            }
            srv_close(t, c);
            return false;
        }
        size_t off = 0;
        if (c->kind == SRV_NEW) {
            c->kind = buf[0] == 'T' ? SRV_THROUGHPUT : buf[0] == 'C' ? SRV_CONNRATE : SRV_NEW;
            if (c->kind == SRV_NEW) {
                fprintf(stderr, "tcpbench server: unknown request byte 0x%02x\n",
                        (unsigned char)buf[0]);
                srv_close(t, c);
                return false;
            }
            off = c->kind == SRV_THROUGHPUT ? 1 : 0;
        }
        c->count += (uint64_t)n - off;
        if (c->kind == SRV_CONNRATE && c->count >= TCPBENCH_REQ_LEN) {
            static const char resp[TCPBENCH_RESP_LEN] = "OK";
            if (c->count > TCPBENCH_REQ_LEN || !srv_reply(c->fd, resp, sizeof(resp)))
                fprintf(stderr, "tcpbench server: bad connrate exchange\n");
            srv_close(t, c); /* the server closes first: see the header */
            return false;
        }
        if ((size_t)n < TCPBENCH_RECV_LEN)
            return true;
    }
    return true; /* level-triggered: let other connections have a turn */
}

static void *srv_main(void *arg)
{
    struct srv_thread *t = arg;
    struct epoll_event evs[64];
    char *buf = malloc(TCPBENCH_RECV_LEN);
    if (!buf) {
        fprintf(stderr, "tcpbench server: out of memory\n");
        exit(1);
    }
    for (;;) {
        int n = epoll_wait(t->epfd, evs, 64, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "tcpbench server: epoll_wait: %s\n", strerror(errno));
            exit(1);
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr) {
                srv_readable(t, evs[i].data.ptr, buf);
                continue;
            }
            for (;;) {
                int fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        fprintf(stderr, "tcpbench server: accept: %s\n", strerror(errno));
                    break;
                }
                struct srv_conn *c = calloc(1, sizeof(*c));
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                if (!c || epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                    fprintf(stderr, "tcpbench server: cannot track a connection\n");
                    free(c);
                    close(fd);
                    continue;
                }
                c->fd = fd;
            }
        }
    }
    return NULL;
}

static int run_server(const struct opts *o)
{
    struct srv_thread *ts = calloc(o->threads, sizeof(*ts));
    int one = 1;
    if (!ts) {
        fprintf(stderr, "tcpbench server: out of memory\n");
        return 1;
    }
    resolve(o->bind_addr, o->port, &srv_addr, &srv_addr_len);
    for (unsigned i = 0; i < o->threads; i++) {
        struct srv_thread *t = &ts[i];
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        t->lfd = socket(srv_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (t->lfd < 0 ||
            setsockopt(t->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            setsockopt(t->lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
            bind(t->lfd, (struct sockaddr *)&srv_addr, srv_addr_len) < 0 ||
            listen(t->lfd, 4096) < 0) {
            fprintf(stderr, "tcpbench server: listen on %s port %s: %s\n", o->bind_addr,
                    o->port, strerror(errno));
            return 1;
        }
        t->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (t->epfd < 0 || epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->lfd, &ev) < 0) {
            fprintf(stderr, "tcpbench server: epoll: %s\n", strerror(errno));
            return 1;
        }
    }
    fprintf(stderr, "tcpbench server: listening on %s port %s, %u thread(s)\n", o->bind_addr,
            o->port, o->threads);
    for (unsigned i = 1; i < o->threads; i++)
        if (pthread_create(&ts[i].tid, NULL, srv_main, &ts[i]) != 0) {
            fprintf(stderr, "tcpbench server: cannot start a thread\n");
            return 1;
        }
    srv_main(&ts[0]);
    return 0;
}

/* ---- clients --------------------------------------------------------------------- */

static struct sockaddr_storage dst;
static socklen_t dst_len;
static double deadline;

/* A blocking socket whose every call gives up after TCPBENCH_IO_TIMEOUT_S (on Linux
 * SO_SNDTIMEO bounds connect() too). Returns -errno. */
static int client_connect(void)
{
    struct timeval tv = {.tv_sec = TCPBENCH_IO_TIMEOUT_S};
    int fd = socket(dst.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), e;
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&dst, dst_len) < 0) {
        e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads until EOF or cap bytes; returns the byte count or -errno. */
static ssize_t recv_to_eof(int fd, char *p, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, p + got, cap - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return (ssize_t)got;
        got += (size_t)n;
        if (got == cap)
            return (ssize_t)got;
    }
}

struct tp_stream {
    pthread_t tid;
    pthread_barrier_t *start;
    int fd;
    uint64_t sent;
    uint64_t acked; /* the server's count */
    double done_at;
    const char *err; /* static string, NULL if fine */
    int err_no;
};

static double tp_t0;

static void *tp_main(void *arg)
{
    struct tp_stream *s = arg;
    static char payload[TCPBENCH_SEND_LEN];
    char reply[32];
    ssize_t n;
    int e;

    pthread_barrier_wait(s->start);
    if (s->fd < 0)
        return NULL;
    if ((e = send_all(s->fd, "T", 1)) < 0)
        goto fail_send;
    while (now_s() < deadline) {
        if ((e = send_all(s->fd, payload, sizeof(payload))) < 0)
            goto fail_send;
        s->sent += sizeof(payload);
    }
    shutdown(s->fd, SHUT_WR);
    n = recv_to_eof(s->fd, reply, sizeof(reply) - 1);
    s->done_at = now_s();
    if (n <= 0) {
        s->err = n == 0 ? "no byte count from the server" : "reading the byte count";
        s->err_no = n < 0 ? (int)-n : 0;
        return NULL;
    }
    reply[n] = '\0';
    s->acked = strtoull(reply, NULL, 10);
    return NULL;
fail_send:
    s->err = "send";
    s->err_no = -e;
    s->done_at = now_s();
    return NULL;
}

static int run_throughput(const struct opts *o)
{
    struct tp_stream *ss = calloc(o->streams, sizeof(*ss));
    pthread_barrier_t start;
    uint64_t sent = 0, acked = 0;
    unsigned errors = 0;
    double end = 0;

    if (!ss) {
        fprintf(stderr, "tcpbench: out of memory\n");
        return 1;
    }
    /* All streams connect first, then all start sending at once. */
    pthread_barrier_init(&start, NULL, o->streams + 1);
    for (unsigned i = 0; i < o->streams; i++) {
        ss[i].start = &start;
        ss[i].fd = client_connect();
        if (ss[i].fd < 0) {
            ss[i].err = "connect";
            ss[i].err_no = -ss[i].fd;
        }
        if (pthread_create(&ss[i].tid, NULL, tp_main, &ss[i]) != 0) {
            fprintf(stderr, "tcpbench: cannot start a thread\n");
            return 1;
        }
    }
    tp_t0 = now_s();
    deadline = tp_t0 + o->seconds;
    pthread_barrier_wait(&start);
    for (unsigned i = 0; i < o->streams; i++) {
        pthread_join(ss[i].tid, NULL);
        if (ss[i].fd >= 0)
            close(ss[i].fd);
        if (ss[i].err) {
            errors++;
            fprintf(stderr, "tcpbench throughput: stream %u: %s: %s\n", i, ss[i].err,
                    ss[i].err_no ? strerror(ss[i].err_no) : "-");
        }
        sent += ss[i].sent;
        acked += ss[i].acked;
        if (ss[i].done_at > end)
            end = ss[i].done_at;
    }
    double el = end > tp_t0 ? end - tp_t0 : 0;
    printf("{\"mode\":\"throughput\",\"host\":\"%s\",\"port\":%s,\"streams\":%u,"
           "\"seconds\":%u,\"elapsed_s\":%.3f,\"bytes_sent\":%llu,\"bytes_acked\":%llu,"
           "\"mbytes_per_s\":%.1f,\"gbit_per_s\":%.3f,\"errors\":%u}\n",
           o->host, o->port, o->streams, o->seconds, el, (unsigned long long)sent,
           (unsigned long long)acked, el > 0 ? (double)acked / el / 1e6 : 0,
           el > 0 ? (double)acked * 8 / el / 1e9 : 0, errors);
    return errors ? 1 : 0;
}

struct cr_worker {
    pthread_t tid;
    uint64_t done;
    uint64_t err_connect, err_io, err_short;
    uint32_t *lat_us; /* owned: one sample per completed connection */
    size_t lat_n, lat_cap;
    int last_errno;
};

static void cr_record(struct cr_worker *w, double us)
{
    if (w->lat_n == w->lat_cap) {
        size_t cap = w->lat_cap ? w->lat_cap * 2 : 4096;
        uint32_t *p = realloc(w->lat_us, cap * sizeof(*p));
        if (!p)
            return; /* the count stays right; only the percentiles lose samples */
        w->lat_us = p;
        w->lat_cap = cap;
    }
    w->lat_us[w->lat_n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void *cr_main(void *arg)
{
    struct cr_worker *w = arg;
    char req[TCPBENCH_REQ_LEN], resp[TCPBENCH_RESP_LEN + 1];
    memset(req, 'x', sizeof(req));
    req[0] = 'C';
    while (now_s() < deadline) {
        double t = now_s();
        int fd = client_connect();
        ssize_t n;
        if (fd < 0) {
            w->err_connect++;
            w->last_errno = -fd;
            usleep(1000); /* don't spin on a refused port */
            continue;
        }
        /* The response is followed by the server's FIN: a full exchange ends at EOF. */
        n = send_all(fd, req, sizeof(req));
        if (n == 0)
            n = recv_to_eof(fd, resp, sizeof(resp));
        if (n < 0) {
            w->err_io++;
            w->last_errno = (int)-n;
            close(fd);
            usleep(1000);
            continue;
        }
        close(fd);
        if (n != TCPBENCH_RESP_LEN) {
            w->err_short++;
            continue;
        }
        w->done++;
        cr_record(w, (now_s() - t) * 1e6);
    }
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int run_connrate(const struct opts *o)
{
    struct cr_worker *ws = calloc(o->concurrency, sizeof(*ws));
    uint64_t done = 0, ec = 0, ei = 0, es = 0;
    size_t nlat = 0;
    uint32_t *lat;
    int last_errno = 0;
    double t0, el;

    if (!ws) {
        fprintf(stderr, "tcpbench: out of memory\n");
        return 1;
    }
    t0 = now_s();
    deadline = t0 + o->seconds;
    for (unsigned i = 0; i < o->concurrency; i++)
        if (pthread_create(&ws[i].tid, NULL, cr_main, &ws[i]) != 0) {
            fprintf(stderr, "tcpbench: cannot start a thread\n");
            return 1;
        }
    for (unsigned i = 0; i < o->concurrency; i++) {
        pthread_join(ws[i].tid, NULL);
        done += ws[i].done;
        ec += ws[i].err_connect;
        ei += ws[i].err_io;
        es += ws[i].err_short;
        nlat += ws[i].lat_n;
        if (ws[i].last_errno)
            last_errno = ws[i].last_errno;
    }
    el = now_s() - t0;
    lat = malloc((nlat ? nlat : 1) * sizeof(*lat));
    if (!lat) {
        fprintf(stderr, "tcpbench: out of memory\n");
        return 1;
    }
    nlat = 0;
    for (unsigned i = 0; i < o->concurrency; i++) {
        memcpy(lat + nlat, ws[i].lat_us, ws[i].lat_n * sizeof(*lat));
        nlat += ws[i].lat_n;
    }
    qsort(lat, nlat, sizeof(*lat), cmp_u32);
    if (ec + ei + es)
        fprintf(stderr, "tcpbench connrate: %llu connect errors, %llu I/O errors, %llu short "
                        "responses (last: %s)\n",
                (unsigned long long)ec, (unsigned long long)ei, (unsigned long long)es,
                last_errno ? strerror(last_errno) : "-");
    printf("{\"mode\":\"connrate\",\"host\":\"%s\",\"port\":%s,\"concurrency\":%u,"
           "\"seconds\":%u,\"elapsed_s\":%.3f,\"completed\":%llu,\"conn_per_s\":%.1f,"
           "\"errors\":%llu,\"err_connect\":%llu,\"err_io\":%llu,\"err_short\":%llu,"
           "\"lat_us_p50\":%u,\"lat_us_p99\":%u,\"lat_us_max\":%u}\n",
           o->host, o->port, o->concurrency, o->seconds, el, (unsigned long long)done,
           el > 0 ? (double)done / el : 0, (unsigned long long)(ec + ei + es),
           (unsigned long long)ec, (unsigned long long)ei, (unsigned long long)es,
           nlat ? lat[nlat / 2] : 0, nlat ? lat[nlat * 99 / 100] : 0,
           nlat ? lat[nlat - 1] : 0);
    return done ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct opts o;
    parse_args(&o, argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(o.mode, "server"))
        return run_server(&o);
    resolve(o.host, o.port, &dst, &dst_len);
    if (!strcmp(o.mode, "throughput"))
        return run_throughput(&o);
    return run_connrate(&o);
}
