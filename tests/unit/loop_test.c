/*
 * loop_test.c - the loop's contract, on both backends: accept, recv into pool buffers,
 * send, EOF, cancel (exactly one final completion), connect timeout, pool exhaustion
 * (-ENOBUFS, then recovery), no callback inside the starting call, cross-thread wake.
 * io_uring is skipped, with the reason, where the kernel or a seccomp filter refuses it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"
#include "tap.h"

struct rec {
    int calls, finals, last_res;
    bool last_more;
    char data[256 * 1024];
    size_t len;
    bool in_start; /* set while the starting call runs */
    bool called_in_start;
    int accepted_fd;
};

static void rec_cb(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more)
{
    struct rec *r = op->owner;
    r->calls++;
    r->finals += !more;
    r->last_res = res;
    r->last_more = more;
    if (r->in_start)
        r->called_in_start = true;
    if (op->kind == LOOP_OP_ACCEPT && res >= 0)
        r->accepted_fd = res;
    if (buf) {
        if (r->len + buf->len <= sizeof(r->data)) {
            memcpy(r->data + r->len, buf->data, buf->len);
            r->len += buf->len;
        }
        loop_buf_put(l, buf);
    }
}

/* Runs the loop until cond holds, at most ~2 s. */
#define RUN_UNTIL(L, cond)                                                                         \
    do {                                                                                           \
        for (int i_ = 0; i_ < 200 && !(cond); i_++)                                                \
            loop_run_once((L), 10);                                                                \
    } while (0)

struct hold {
    struct loop_buf *b[64];
    int n, final_res;
    bool final;
};

/* Keeps every buffer it is given, so the pool runs dry. */
static void hold_cb(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more)
{
    struct hold *hh = op->owner;
    if (buf)
        hh->b[hh->n++] = buf;
    if (!more) {
        hh->final = true;
        hh->final_res = res;
    }
}

static int listen_any(unsigned short *port, int backlog)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    listen(fd, backlog);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void *waker(void *arg)
{
    usleep(50000);
    loop_wake(arg);
    return NULL;
}

static void wake_cb(struct loop *l, void *arg)
{
    (*(int *)arg)++;
}

static void test_backend(enum loop_io_choice io, const char *name)
{
    struct loop_config cfg = {.io = io, .buf_count = 16, .buf_size = 1024, .ring_entries = 64};
    char why[256], err[256];
    struct loop *l = loop_new(&cfg, why, sizeof(why), err, sizeof(err));
    if (!l) {
        if (io == LOOP_IO_URING) {
            printf("# io_uring refused here: %s\n", err);
            tap_skip("io_uring unavailable");
            return;
        }
        ok(0, "%s: loop_new: %s", name, err);
        return;
    }
    ok(loop_attach_thread(l) == 0, "%s: attach to this thread", name);
    ok(loop_backend(l) == (io == LOOP_IO_URING ? LOOP_BACKEND_URING : LOOP_BACKEND_EPOLL),
       "%s: backend is the one asked for", name);

    /* accept + connect */
    unsigned short port;
    int lfd = listen_any(&port, 16);
    static struct rec acc, con, rx, tx;
    memset(&acc, 0, sizeof(acc));
    memset(&con, 0, sizeof(con));
    struct loop_op acc_op, con_op, rx_op, tx_op;
    loop_op_init(&acc_op, rec_cb, &acc);
    loop_op_init(&con_op, rec_cb, &con);
    acc.accepted_fd = -1;
    ok(loop_accept(l, &acc_op, lfd) == 0, "%s: accept armed", name);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    con.in_start = true;
    ok(loop_connect(l, &con_op, cfd, (struct sockaddr *)&sa, sizeof(sa), 1000) == 0,
       "%s: connect started", name);
    con.in_start = false;
    RUN_UNTIL(l, con.finals && acc.accepted_fd >= 0);
    is_int(con.last_res, 0, "connect completes with 0");
    ok(!con.called_in_start, "%s: connect callback not inside loop_connect", name);
    ok(acc.accepted_fd >= 0 && acc.last_more, "%s: accept delivered an fd and stays armed", name);

    /* send + recv */
    memset(&rx, 0, sizeof(rx));
    memset(&tx, 0, sizeof(tx));
    loop_op_init(&rx_op, rec_cb, &rx);
    loop_op_init(&tx_op, rec_cb, &tx);
    ok(loop_recv(l, &rx_op, acc.accepted_fd, 0) == 0, "%s: recv armed", name);
    tx.in_start = true;
    loop_send(l, &tx_op, cfd, "hello, ring", 11);
    tx.in_start = false;
    RUN_UNTIL(l, rx.len >= 11 && tx.finals);
    is_int(tx.last_res, 11, "send reports 11 bytes");
    ok(!tx.called_in_start, "%s: send callback not inside loop_send", name);
    ok(rx.len == 11 && memcmp(rx.data, "hello, ring", 11) == 0, "%s: recv got the bytes", name);
    ok(rx.finals == 0 && rx_op.armed, "%s: multishot recv still armed", name);

    /* pool exhaustion: 16 x 1 KiB buffers, 64 KiB arrive and nobody gives buffers back
     * until the recv ends with -ENOBUFS; then everything is delivered after a restart */
    static char big[64 * 1024];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7);
    loop_cancel(l, &rx_op);
    RUN_UNTIL(l, rx.finals == 1);
    is_int(rx.last_res, -ECANCELED, "cancelled recv ends with -ECANCELED");
    is_int(rx.finals, 1, "exactly one final completion after cancel");
    ssize_t sent = send(cfd, big, sizeof(big), 0);
    ok(sent > 16 * 1024, "%s: pushed %zd bytes", name, sent);
    usleep(20000);
    struct hold h = {0};
    struct loop_op hold_op;
    loop_op_init(&hold_op, hold_cb, &h);
    loop_recv(l, &hold_op, acc.accepted_fd, 0);
    RUN_UNTIL(l, h.final);
    is_int(h.final_res, -ENOBUFS, "recv ends with -ENOBUFS when the pool is empty");
    is_int(h.n, 16, "all 16 pool buffers were delivered");
    is_int(loop_buf_free(l), 0, "pool reports 0 free");
    size_t got = 0;
    bool same = true;
    for (int i = 0; i < h.n; i++) {
        same &= memcmp(h.b[i]->data, big + got, h.b[i]->len) == 0;
        got += h.b[i]->len;
        loop_buf_put(l, h.b[i]);
    }
    is_int(loop_buf_free(l), 16, "buffers back in the pool");
    /* io_uring may fill the whole pool again before we reap (it did here): a recv
     * that ends with -ENOBUFS is restarted, as the relay does */
    memset(&rx, 0, sizeof(rx));
    loop_recv(l, &rx_op, acc.accepted_fd, 0);
    int restarts = 0;
    for (int i = 0; i < 200 && got + rx.len < (size_t)sent; i++) {
        loop_run_once(l, 10);
        if (!rx_op.armed && rx.last_res == -ENOBUFS && restarts++ < 50)
            loop_recv(l, &rx_op, acc.accepted_fd, 0);
    }
    rx.finals = 0;
    same &= memcmp(rx.data, big + got, rx.len) == 0;
    if (got + rx.len != (size_t)sent)
        printf("# rx: finals %d last_res %d len %zu free %u\n", rx.finals, rx.last_res, rx.len, loop_buf_free(l));
    ok(same && got + rx.len == (size_t)sent, "%s: every byte arrived in order (%zu)", name,
       got + rx.len);

    /* a capped recv ends after max_len bytes, its last completion carrying data */
    loop_cancel(l, &rx_op);
    RUN_UNTIL(l, !rx_op.armed);
    memset(&rx, 0, sizeof(rx));
    send(cfd, big, 10000, 0);
    usleep(20000);
    loop_recv(l, &rx_op, acc.accepted_fd, 4096);
    RUN_UNTIL(l, rx.finals);
    ok(rx.finals == 1 && rx.last_res > 0 && !rx.last_more,
       "%s: capped recv ends with data (last res %d)", name, rx.last_res);
    is_int(rx.len, 4096, "capped recv delivered exactly the cap");
    memset(&rx, 0, sizeof(rx));
    loop_recv(l, &rx_op, acc.accepted_fd, 0);
    RUN_UNTIL(l, rx.len >= 10000 - 4096);
    is_int(rx.len, 10000 - 4096, "the rest arrives on the next recv");
    loop_cancel(l, &rx_op);
    RUN_UNTIL(l, rx.finals);
    memset(&rx, 0, sizeof(rx));
    loop_recv(l, &rx_op, acc.accepted_fd, 0);

    /* EOF */
    shutdown(cfd, SHUT_WR);
    RUN_UNTIL(l, rx.finals);
    ok(rx.finals == 1 && rx.last_res == 0, "%s: EOF ends the recv with 0", name);

    /* cancel the accept */
    loop_cancel(l, &acc_op);
    RUN_UNTIL(l, acc.finals);
    ok(acc.finals == 1 && acc.last_res == -ECANCELED, "%s: cancelled accept ends once", name);

    /* connect timeout: a listener whose accept queue is full drops further SYNs */
    unsigned short p2;
    int full = listen_any(&p2, 0);
    struct sockaddr_in sa2 = {.sin_family = AF_INET, .sin_port = htons(p2),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fillers[4];
    for (int i = 0; i < 4; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&sa2, sizeof(sa2));
    }
    usleep(50000);
    memset(&con, 0, sizeof(con));
    int tfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    loop_connect(l, &con_op, tfd, (struct sockaddr *)&sa2, sizeof(sa2), 200);
    RUN_UNTIL(l, con.finals);
    is_int(con.last_res, -ETIMEDOUT, "connect to a full backlog times out");
    for (int i = 0; i < 4; i++)
        close(fillers[i]);
    close(full);
    close(tfd);

    /* wake from another thread */
    int woken = 0;
    pthread_t t;
    loop_set_wake_cb(l, wake_cb, &woken);
    pthread_create(&t, NULL, waker, l);
    RUN_UNTIL(l, woken);
    pthread_join(t, NULL);
    is_int(woken, 1, "loop_wake from another thread runs the wake callback");

    close(cfd);
    close(acc.accepted_fd);
    close(lfd);
    loop_free(l);
}

/* A pool larger than the io_uring ring's depth (32): buffers held by the consumer must
 * not make the ring run dry while the rest of the pool is free. */
static void test_ring_refill(enum loop_io_choice io, const char *name)
{
    struct loop_config cfg = {.io = io, .buf_count = 64, .buf_size = 1024, .ring_entries = 64};
    char why[256], err[256];
    struct loop *l = loop_new(&cfg, why, sizeof(why), err, sizeof(err));
    if (!l) {
        tap_skip("io_uring unavailable");
        return;
    }
    loop_attach_thread(l);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    static char data[48 * 1024];
    struct hold h = {0};
    struct loop_op op;
    loop_op_init(&op, hold_cb, &h);
    loop_recv(l, &op, sv[0], 0);
    for (int i = 0; i < 48 && h.n < 48 && !h.final; i++) {
        send(sv[1], data + i * 1024, 1024, 0);
        RUN_UNTIL(l, h.n > i || h.final);
    }
    ok(h.n == 48 && !h.final, "%s: 48 buffers held from a 64-buffer pool, recv still armed "
                              "(held %d, ended %d with %d)",
       name, h.n, h.final, h.final_res);
    for (int i = 0; i < h.n; i++)
        loop_buf_put(l, h.b[i]);
    loop_cancel(l, &op);
    RUN_UNTIL(l, !op.armed);
    close(sv[0]);
    close(sv[1]);
    loop_free(l);
}

/* Timers: fire in deadline order whatever the order they were set in, a cancelled one
 * never fires, re-arming moves it, a callback may arm another, and the loop sleeps until
 * the earliest deadline rather than the tick. */
static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct tlog {
    int order[16];
    int n;
    struct loop_timer *chain; /* armed by the callback of timer 1 */
};

static void timer_cb(struct loop *l, struct loop_timer *t)
{
    struct tlog *g = t->owner;
    int id = (int)(t->deadline_ms & 0xff); /* test deadlines carry their id in low bits */
    if (g->n < 16)
        g->order[g->n++] = id;
    if (id == 1 && g->chain)
        loop_timer_set(l, g->chain, (loop_now_ms(l) & ~0xffull) + 0x100 + 9);
}

static void test_timers(enum loop_io_choice io, const char *name)
{
    struct loop_config cfg = {.io = io, .buf_count = 16, .buf_size = 1024, .ring_entries = 64};
    char why[256], err[256];
    struct loop *l = loop_new(&cfg, why, sizeof(why), err, sizeof(err));
    if (!l) {
        for (int i = 0; i < 5; i++)
            tap_skip("no loop");
        return;
    }
    loop_attach_thread(l);
    struct tlog g = {0};
    struct loop_timer t[6];
    for (int i = 0; i < 6; i++)
        loop_timer_init(&t[i], timer_cb, &g);
    g.chain = &t[5];
    loop_run_once(l, 0);
    uint64_t base = (loop_now_ms(l) & ~0xffull) + 0x100; /* 1..255 ms ahead, id in low bits */
    int ids[5] = {4, 1, 3, 2, 5};
    for (int i = 0; i < 5; i++)
        loop_timer_set(l, &t[i], base + ids[i]);
    loop_timer_cancel(l, &t[2]);          /* id 3 never fires */
    loop_timer_set(l, &t[4], base + 6);   /* id 5 re-armed as 6 */
    ok(loop_timer_armed(&t[0]) && !loop_timer_armed(&t[2]), "%s: armed state", name);
    uint64_t t0 = mono_ms();
    for (int i = 0; i < 100 && g.n < 5; i++)
        loop_run_once(l, -1);
    uint64_t took = mono_ms() - t0;
    int want[5] = {1, 2, 4, 6, 9};
    bool same = g.n == 5;
    for (int i = 0; same && i < 5; i++)
        same = g.order[i] == want[i];
    ok(same, "%s: timers fire in deadline order, cancelled one never (got %d: %d %d %d %d %d)",
       name, g.n, g.order[0], g.order[1], g.order[2], g.order[3], g.order[4]);
    ok(took < 2000, "%s: the loop woke for the timers, not after a long sleep (%llu ms)", name,
       (unsigned long long)took);
    ok(!loop_timer_armed(&t[0]) && !loop_timer_armed(&t[5]), "%s: fired timers are disarmed",
       name);
    /* a past deadline fires on the next pass */
    g.n = 0;
    loop_timer_set(l, &t[0], 7);
    loop_run_once(l, 0);
    loop_run_once(l, 0);
    ok(g.n == 1 && g.order[0] == 7, "%s: a past deadline fires at once", name);
    loop_free(l);
}

/* A completion that ends a long sleep sees the time after the sleep in loop_now_ms (a
 * timer armed from it used to be set from the time before, and fired early). */
struct fresh {
    int fd;
    uint64_t seen_now, seen_mono;
};

static void *late_writer(void *arg)
{
    struct fresh *f = arg;
    usleep(300 * 1000);
    if (write(f->fd, "x", 1) != 1)
        return NULL;
    return NULL;
}

static void fresh_cb(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more)
{
    struct fresh *f = op->owner;
    if (buf) {
        f->seen_now = loop_now_ms(l);
        f->seen_mono = mono_ms();
        loop_buf_put(l, buf);
    }
    (void)res;
    (void)more;
}

static void test_fresh_clock(enum loop_io_choice io, const char *name)
{
    struct loop_config cfg = {.io = io, .buf_count = 16, .buf_size = 1024, .ring_entries = 64};
    char why[256], err[256];
    struct loop *l = loop_new(&cfg, why, sizeof(why), err, sizeof(err));
    if (!l) {
        tap_skip("no loop");
        return;
    }
    loop_attach_thread(l);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    struct fresh f = {.fd = sv[1]};
    struct loop_op op;
    loop_op_init(&op, fresh_cb, &f);
    loop_run_once(l, 0);
    loop_recv(l, &op, sv[0], 0);
    pthread_t t;
    pthread_create(&t, NULL, late_writer, &f);
    for (int i = 0; i < 50 && !f.seen_now; i++)
        loop_run_once(l, 2000);
    pthread_join(t, NULL);
    long long lag = (long long)f.seen_mono - (long long)f.seen_now;
    ok(f.seen_now && lag < 50, "%s: after a 300 ms sleep a callback's loop_now_ms is current (%lld ms behind)",
       name, lag);
    loop_cancel(l, &op);
    for (int i = 0; i < 10 && op.armed; i++)
        loop_run_once(l, 10);
    close(sv[0]);
    close(sv[1]);
    loop_free(l);
}

int main(void)
{
    test_fresh_clock(LOOP_IO_EPOLL, "epoll");
    test_fresh_clock(LOOP_IO_URING, "io_uring");
    test_timers(LOOP_IO_EPOLL, "epoll");
    test_timers(LOOP_IO_URING, "io_uring");
    test_ring_refill(LOOP_IO_EPOLL, "epoll");
    test_ring_refill(LOOP_IO_URING, "io_uring");
    test_backend(LOOP_IO_EPOLL, "epoll");
    test_backend(LOOP_IO_URING, "io_uring");
    return tap_done();
}
