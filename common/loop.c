/*
 * loop.c - the backend-independent half of the loop: choosing the backend, the
 * receive buffer pool, deferred completions, the tick and the cross-thread wake-up.
 * Runs on the loop's own thread, except loop_wake() which any thread may call.
 */
#include "loop_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

uint64_t loop_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *loop_backend_name(enum loop_backend_kind k)
{
    return k == LOOP_BACKEND_URING ? "io_uring" : "epoll";
}

enum loop_backend_kind loop_backend(const struct loop *l)
{
    return l->be->kind;
}

void loop_op_init(struct loop_op *op, loop_op_cb cb, void *owner)
{
    memset(op, 0, sizeof(*op));
    op->cb = cb;
    op->owner = owner;
    op->fd = -1;
}

static void wake_read_done(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf,
                           bool more)
{
    if (res == -ECANCELED || l->stop)
        return;
    if (l->wake_cb)
        l->wake_cb(l, l->wake_arg);
    if (!l->stop)
        loop_read(l, &l->wake_op, l->wake_fd, &l->wake_val, sizeof(l->wake_val));
}

static int pool_init(struct loop *l, char *err, size_t errlen)
{
    unsigned n = l->cfg.buf_count;
    if (n == 0 || (n & (n - 1)) || n > 32768 || l->cfg.buf_size < 512) {
        snprintf(err, errlen, "buffer pool: count %u must be a power of two up to 32768, size >= 512",
                 n);
        return -EINVAL;
    }
    if (posix_memalign((void **)&l->buf_mem, 4096, (size_t)n * l->cfg.buf_size) != 0 ||
        !(l->bufs = calloc(n, sizeof(*l->bufs)))) {
        snprintf(err, errlen, "buffer pool: out of memory for %u x %u bytes", n, l->cfg.buf_size);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        l->bufs[i].data = l->buf_mem + (size_t)i * l->cfg.buf_size;
        l->bufs[i].bid = (uint16_t)i;
    }
    l->buf_free_count = n;
    return 0;
}

static struct loop *loop_try(const struct loop_config *cfg, const struct loop_backend_ops *be,
                             char *err, size_t errlen)
{
    struct loop *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->cfg = *cfg;
    l->be = be;
    l->wake_fd = -1;
    l->now_ms = loop_clock_ms();
    if (pool_init(l, err, errlen) < 0)
        goto fail_pool;
    if (be->init(l, err, errlen) < 0)
        goto fail_pool;
    l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wake_fd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail_be;
    }
    loop_op_init(&l->wake_op, wake_read_done, l);
    if (loop_read(l, &l->wake_op, l->wake_fd, &l->wake_val, sizeof(l->wake_val)) < 0) {
        snprintf(err, errlen, "cannot arm the wake-up eventfd");
        goto fail_fd;
    }
    return l;

fail_fd:
    close(l->wake_fd);
fail_be:
    be->fini(l);
fail_pool:
    free(l->bufs);
    free(l->buf_mem);
    free(l);
    return NULL;
}

struct loop *loop_new(const struct loop_config *cfg, char *why, size_t whylen, char *err,
                      size_t errlen)
{
    struct loop *l;
    if (whylen)
        why[0] = 0;
    if (cfg->io != LOOP_IO_EPOLL) {
        l = loop_try(cfg, &loop_uring_ops, err, errlen);
        if (l || cfg->io == LOOP_IO_URING)
            return l;
        snprintf(why, whylen, "%s", err);
    }
    return loop_try(cfg, &loop_epoll_ops, err, errlen);
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    l->be->fini(l);
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    free(l->timers);
    free(l->bufs);
    free(l->buf_mem);
    free(l);
}

/* ---- timers: a binary min-heap of deadlines; heap_idx is the slot + 1 ---- */

static void heap_place(struct loop *l, uint32_t i, struct loop_timer *t)
{
    l->timers[i] = t;
    t->heap_idx = i + 1;
}

static void heap_up(struct loop *l, uint32_t i)
{
    struct loop_timer *t = l->timers[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (l->timers[parent]->deadline_ms <= t->deadline_ms)
            break;
        heap_place(l, i, l->timers[parent]);
        i = parent;
    }
    heap_place(l, i, t);
}

static void heap_down(struct loop *l, uint32_t i)
{
    struct loop_timer *t = l->timers[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= l->n_timers)
            break;
        if (c + 1 < l->n_timers && l->timers[c + 1]->deadline_ms < l->timers[c]->deadline_ms)
            c++;
        if (t->deadline_ms <= l->timers[c]->deadline_ms)
            break;
        heap_place(l, i, l->timers[c]);
        i = c;
    }
    heap_place(l, i, t);
}

void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *owner)
{
    memset(t, 0, sizeof(*t));
    t->cb = cb;
    t->owner = owner;
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
    if (!t->heap_idx)
        return;
    uint32_t i = t->heap_idx - 1;
    t->heap_idx = 0;
    struct loop_timer *last = l->timers[--l->n_timers];
    if (i == l->n_timers)
        return;
    heap_place(l, i, last);
    heap_up(l, i);
    heap_down(l, last->heap_idx - 1);
}

int loop_timer_set(struct loop *l, struct loop_timer *t, uint64_t deadline_ms)
{
    if (t->heap_idx) {
        uint32_t i = t->heap_idx - 1;
        t->deadline_ms = deadline_ms;
        heap_up(l, i);
        heap_down(l, t->heap_idx - 1);
        return 0;
    }
    if (l->n_timers == l->cap_timers) {
        uint32_t cap = l->cap_timers ? l->cap_timers * 2 : 64;
        struct loop_timer **v = realloc(l->timers, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->timers = v;
        l->cap_timers = cap;
    }
    t->deadline_ms = deadline_ms;
    heap_place(l, l->n_timers++, t);
    heap_up(l, l->n_timers - 1);
    return 0;
}

/* Runs every timer due by now. A callback that arms a timer for now or earlier sees it
 * run on the next pass, not in this one, so a timer cannot keep the loop here. */
static void run_timers(struct loop *l)
{
    uint64_t now = l->now_ms;
    unsigned budget = l->n_timers;
    while (l->n_timers && l->timers[0]->deadline_ms <= now && budget--) {
        struct loop_timer *t = l->timers[0];
        loop_timer_cancel(l, t);
        t->cb(l, t);
    }
}

/* Every op starts the same way: armed before the backend runs, since the epoll backend
 * may queue the final completion at once; disarmed again if it could not start. */
static int start(struct loop *l, struct loop_op *op, enum loop_op_kind kind, int fd,
                 int (*be_start)(struct loop *, struct loop_op *))
{
    op->kind = (uint8_t)kind;
    op->fd = fd;
    op->cancelled = false;
    op->armed = true;
    int r = be_start(l, op);
    if (r < 0)
        op->armed = false;
    return r;
}

int loop_accept(struct loop *l, struct loop_op *op, int listen_fd)
{
    return start(l, op, LOOP_OP_ACCEPT, listen_fd, l->be->accept);
}

int loop_recv(struct loop *l, struct loop_op *op, int fd, uint32_t max_len)
{
    op->len = max_len;
    op->done_len = 0;
    return start(l, op, LOOP_OP_RECV, fd, l->be->recv);
}

int loop_send(struct loop *l, struct loop_op *op, int fd, const void *p, uint32_t len)
{
    op->ptr = p;
    op->len = len;
    return start(l, op, LOOP_OP_SEND, fd, l->be->send);
}

int loop_connect(struct loop *l, struct loop_op *op, int fd, const struct sockaddr *sa,
                 socklen_t salen, uint32_t timeout_ms)
{
    op->ptr = sa;
    op->len = salen;
    op->timeout_ms = timeout_ms;
    return start(l, op, LOOP_OP_CONNECT, fd, l->be->connect);
}

int loop_read(struct loop *l, struct loop_op *op, int fd, void *p, uint32_t len)
{
    op->ptr = p;
    op->len = len;
    return start(l, op, LOOP_OP_READ, fd, l->be->read);
}

int loop_poll_err(struct loop *l, struct loop_op *op, int fd)
{
    return start(l, op, LOOP_OP_POLL_ERR, fd, l->be->poll_err);
}

void loop_cancel(struct loop *l, struct loop_op *op)
{
    if (!op->armed || op->cancelled || op->in_pending)
        return;
    op->cancelled = true;
    l->be->cancel(l, op);
}

void loop_close_fd(struct loop *l, int fd)
{
    if (fd >= 0)
        l->be->close_fd(l, fd);
}

void loop_buf_put(struct loop *l, struct loop_buf *b)
{
    l->buf_free_count++;
    l->be->buf_put(l, b);
}

unsigned loop_buf_free(const struct loop *l)
{
    return l->buf_free_count;
}

void loop_set_tick(struct loop *l, unsigned interval_ms, void (*cb)(struct loop *, void *),
                   void *arg)
{
    l->tick_ms = interval_ms;
    l->tick_cb = cb;
    l->tick_arg = arg;
    l->next_tick_ms = loop_clock_ms() + interval_ms;
}

uint64_t loop_now_ms(const struct loop *l)
{
    return l->now_ms;
}

void loop_defer(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf)
{
    op->in_pending = true;
    op->pending_res = res;
    op->pending_buf = buf;
    op->pending_next = NULL;
    if (l->pending_tail)
        l->pending_tail->pending_next = op;
    else
        l->pending_head = op;
    l->pending_tail = op;
}

void loop_complete(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more)
{
    if (!more)
        op->armed = false;
    op->cb(l, op, res, buf, more);
}

static void flush_pending(struct loop *l)
{
    while (l->pending_head) {
        struct loop_op *op = l->pending_head;
        l->pending_head = op->pending_next;
        if (!l->pending_head)
            l->pending_tail = NULL;
        op->in_pending = false;
        loop_complete(l, op, op->pending_res, op->pending_buf, false);
    }
}

int loop_attach_thread(struct loop *l)
{
    return l->be->attach ? l->be->attach(l) : 0;
}

int loop_run_once(struct loop *l, int max_wait_ms)
{
    flush_pending(l);
    int timeout = max_wait_ms;
    if (l->pending_head)
        timeout = 0;
    else {
        if (l->tick_ms) {
            int until = l->next_tick_ms > l->now_ms ? (int)(l->next_tick_ms - l->now_ms) : 0;
            if (timeout < 0 || until < timeout)
                timeout = until;
        }
        if (l->n_timers) {
            uint64_t d = l->timers[0]->deadline_ms, now = loop_clock_ms();
            int until = d > now ? (int)(d - now < 3600000 ? d - now : 3600000) : 0;
            if (timeout < 0 || until < timeout)
                timeout = until;
        }
    }
    int r = l->be->wait(l, timeout);
    if (r < 0)
        return r;
    l->now_ms = loop_clock_ms();
    if (l->tick_ms && l->now_ms >= l->next_tick_ms) {
        l->next_tick_ms = l->now_ms + l->tick_ms;
        l->tick_cb(l, l->tick_arg);
    }
    flush_pending(l);
    if (l->n_timers) {
        run_timers(l);
        flush_pending(l);
    }
    return 0;
}

int loop_run(struct loop *l)
{
    while (!l->stop) {
        int r = loop_run_once(l, -1);
        if (r < 0)
            return r;
    }
    return 0;
}

void loop_stop(struct loop *l)
{
    l->stop = true;
}

void loop_wake(struct loop *l)
{
    uint64_t one = 1;
    ssize_t w = write(l->wake_fd, &one, sizeof(one));
    (void)w;
}

void loop_set_wake_cb(struct loop *l, void (*cb)(struct loop *, void *), void *arg)
{
    l->wake_cb = cb;
    l->wake_arg = arg;
}
