/*
 * loop_epoll.c - the epoll backend: the loop's completion semantics on top of
 * level-triggered readiness and nonblocking syscalls.
 *
 * A table indexed by fd holds the op waiting to read (accept, recv, read), the op
 * waiting to write (send, connect) and the op waiting for an error (poll_err) on each fd; the epoll registration always equals
 * what those three want. Sends and connects are tried at once and complete through the
 * deferred list, so a callback never runs inside the call that started its op. One
 * readiness event does one recv (fairness between connections, like one multishot
 * CQE), and up to 16 accepts. Connect timeouts are kept on a short list checked on
 * every wait. Buffers come from a LIFO free list, so a quiet loop touches few pages.
 */
#include "loop_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct epoll_fdent {
    struct loop_op *rd, *wr, *err;
    uint32_t events; /* registered with epoll */
    uint32_t gen;    /* bumped when the fd is closed: tells a stale event from a new one */
};

struct epoll_state {
    int epfd;
    struct epoll_fdent *fds; /* owned, indexed by fd */
    unsigned nfds;
    struct loop_buf *free; /* LIFO of free pool buffers */
    struct loop_op *connects; /* connects with a deadline */
};

static struct epoll_state *est(struct loop *l)
{
    return l->be_state;
}

static int epoll_init(struct loop *l, char *err, size_t errlen)
{
    struct epoll_state *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        int e = errno;
        snprintf(err, errlen, "epoll_create1: %s", strerror(e));
        free(s);
        return -e;
    }
    for (unsigned i = l->cfg.buf_count; i-- > 0;) {
        l->bufs[i].next = s->free;
        s->free = &l->bufs[i];
    }
    l->be_state = s;
    return 0;
}

static void epoll_fini(struct loop *l)
{
    struct epoll_state *s = est(l);
    if (!s)
        return;
    close(s->epfd);
    free(s->fds);
    free(s);
    l->be_state = NULL;
}

static struct epoll_fdent *fdent(struct loop *l, int fd)
{
    struct epoll_state *s = est(l);
    if ((unsigned)fd >= s->nfds) {
        unsigned n = s->nfds ? s->nfds : 256;
        while (n <= (unsigned)fd)
            n *= 2;
        struct epoll_fdent *t = realloc(s->fds, n * sizeof(*t));
        if (!t)
            return NULL;
        memset(t + s->nfds, 0, (n - s->nfds) * sizeof(*t));
        s->fds = t;
        s->nfds = n;
    }
    return &s->fds[fd];
}

/* Makes the epoll registration of fd match what its ops wait for. */
static int sync_fd(struct loop *l, int fd, struct epoll_fdent *e)
{
    uint32_t want = (e->rd ? EPOLLIN : 0) | (e->wr ? EPOLLOUT : 0) | (e->err ? EPOLLERR : 0);
    /* The event carries the fd and the slot's generation: if the fd is closed and its
     * number reused within one epoll_wait batch, the old event no longer matches. */
    struct epoll_event ev = {.events = want, .data.u64 = (uint64_t)e->gen << 32 | (uint32_t)fd};
    int op, r;
    if (want == e->events)
        return 0;
    op = !e->events ? EPOLL_CTL_ADD : !want ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    r = epoll_ctl(est(l)->epfd, op, fd, &ev);
    if (r < 0 && op == EPOLL_CTL_DEL)
        r = 0; /* already closed: the kernel dropped it */
    if (r < 0)
        return -errno;
    e->events = want;
    return 0;
}

/* Which slot of an fd's entry an op waits in. */
static struct loop_op **slot(struct epoll_fdent *e, const struct loop_op *op)
{
    return op->kind == LOOP_OP_POLL_ERR                                ? &e->err
           : op->kind == LOOP_OP_SEND || op->kind == LOOP_OP_CONNECT ? &e->wr
                                                                       : &e->rd;
}

static int watch(struct loop *l, struct loop_op *op)
{
    struct epoll_fdent *e = fdent(l, op->fd);
    if (!e)
        return -ENOMEM;
    *slot(e, op) = op;
    int r = sync_fd(l, op->fd, e);
    if (r < 0)
        *slot(e, op) = NULL;
    return r;
}

static void unwatch(struct loop *l, struct loop_op *op)
{
    struct epoll_state *s = est(l);
    if ((unsigned)op->fd >= s->nfds)
        return;
    struct epoll_fdent *e = &s->fds[op->fd];
    if (e->rd == op)
        e->rd = NULL;
    if (e->wr == op)
        e->wr = NULL;
    if (e->err == op)
        e->err = NULL;
    sync_fd(l, op->fd, e);
}

static void connect_list_remove(struct loop *l, struct loop_op *op)
{
    for (struct loop_op **pp = &est(l)->connects; *pp; pp = &(*pp)->tnext)
        if (*pp == op) {
            *pp = op->tnext;
            return;
        }
}

static int epoll_send(struct loop *l, struct loop_op *op)
{
    ssize_t n = send(op->fd, op->ptr, op->len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0 || (errno != EAGAIN && errno != EINTR)) {
        loop_defer(l, op, n >= 0 ? (int)n : -errno, NULL);
        return 0;
    }
    return watch(l, op);
}

static int epoll_connect(struct loop *l, struct loop_op *op)
{
    if (connect(op->fd, op->ptr, op->len) == 0) {
        loop_defer(l, op, 0, NULL);
        return 0;
    }
    if (errno != EINPROGRESS) {
        loop_defer(l, op, -errno, NULL);
        return 0;
    }
    int r = watch(l, op);
    if (r == 0 && op->timeout_ms) {
        op->deadline_ms = loop_clock_ms() + op->timeout_ms;
        op->tnext = est(l)->connects;
        est(l)->connects = op;
    }
    return r;
}

static void epoll_cancel(struct loop *l, struct loop_op *op)
{
    unwatch(l, op);
    if (op->kind == LOOP_OP_CONNECT)
        connect_list_remove(l, op);
    loop_defer(l, op, -ECANCELED, NULL);
}

static void epoll_close_fd(struct loop *l, int fd)
{
    struct epoll_state *s = est(l);
    if ((unsigned)fd < s->nfds) {
        struct epoll_fdent *e = &s->fds[fd];
        uint32_t gen = e->gen + 1;
        if (e->events)
            epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
        memset(e, 0, sizeof(*e));
        e->gen = gen;
    }
    close(fd);
}

static void epoll_buf_put(struct loop *l, struct loop_buf *b)
{
    b->next = est(l)->free;
    est(l)->free = b;
}

/* Ends a read-side op with its final completion, now (we are inside wait). */
static void end_rd(struct loop *l, struct loop_op *op, int res)
{
    unwatch(l, op);
    loop_complete(l, op, res, NULL, false);
}

static void on_readable(struct loop *l, struct loop_op *op)
{
    struct epoll_state *s = est(l);
    switch (op->kind) {
    case LOOP_OP_ACCEPT:
        for (int i = 0; i < 16; i++) {
            int fd = accept4(op->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                loop_complete(l, op, fd, NULL, true);
                if (!op->armed || op->cancelled || s->fds[op->fd].rd != op)
                    return;
                continue;
            }
            if (errno == EAGAIN || errno == EINTR)
                return;
            if (errno == ECONNABORTED || errno == EPROTO)
                continue;
            end_rd(l, op, -errno);
            return;
        }
        return;
    case LOOP_OP_RECV: {
        struct loop_buf *b = s->free;
        if (!b) {
            end_rd(l, op, -ENOBUFS);
            return;
        }
        uint32_t want = l->cfg.buf_size;
        if (op->len && op->len - op->done_len < want)
            want = op->len - op->done_len;
        ssize_t n = recv(op->fd, b->data, want, MSG_DONTWAIT);
        if (n > 0) {
            s->free = b->next;
            l->buf_free_count--;
            b->len = (uint32_t)n;
            b->off = 0;
            b->next = NULL;
            op->done_len += (uint32_t)n;
            if (op->len && op->done_len >= op->len) {
                unwatch(l, op); /* the cap: this is the last completion */
                loop_complete(l, op, (int)n, b, false);
            } else {
                loop_complete(l, op, (int)n, b, true);
            }
        } else if (n == 0) {
            end_rd(l, op, 0);
        } else if (errno != EAGAIN && errno != EINTR) {
            end_rd(l, op, -errno);
        }
        return;
    }
    case LOOP_OP_READ: {
        ssize_t n = read(op->fd, (void *)op->ptr, op->len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        end_rd(l, op, n >= 0 ? (int)n : -errno);
        return;
    }
    default:
        return;
    }
}

static void on_writable(struct loop *l, struct loop_op *op)
{
    if (op->kind == LOOP_OP_SEND) {
        ssize_t n = send(op->fd, op->ptr, op->len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        unwatch(l, op);
        loop_complete(l, op, n >= 0 ? (int)n : -errno, NULL, false);
    } else if (op->kind == LOOP_OP_CONNECT) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        unwatch(l, op);
        connect_list_remove(l, op);
        loop_complete(l, op, -soerr, NULL, false);
    }
}

static void expire_connects(struct loop *l)
{
    uint64_t now = loop_clock_ms();
    struct loop_op **pp = &est(l)->connects;
    while (*pp) {
        struct loop_op *op = *pp;
        if (op->deadline_ms <= now) {
            *pp = op->tnext;
            unwatch(l, op);
            loop_defer(l, op, -ETIMEDOUT, NULL);
        } else {
            pp = &op->tnext;
        }
    }
}

static int epoll_wait_dispatch(struct loop *l, int timeout_ms)
{
    struct epoll_state *s = est(l);
    struct epoll_event evs[256];
    if (s->connects) {
        uint64_t now = loop_clock_ms(), first = UINT64_MAX;
        for (struct loop_op *op = s->connects; op; op = op->tnext)
            if (op->deadline_ms < first)
                first = op->deadline_ms;
        int until = first > now ? (int)(first - now) : 0;
        if (timeout_ms < 0 || until < timeout_ms)
            timeout_ms = until;
    }
    int n = epoll_wait(s->epfd, evs, 256, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    l->now_ms = loop_clock_ms(); /* the callbacks below read the time after the sleep */
    for (int i = 0; i < n; i++) {
        int fd = (int)(uint32_t)evs[i].data.u64;
        uint32_t ev = evs[i].events;
        if ((unsigned)fd >= s->nfds || s->fds[fd].gen != (uint32_t)(evs[i].data.u64 >> 32))
            continue;
        /* Look the ops up again after each callback: it may have closed or re-armed. */
        if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) && s->fds[fd].rd)
            on_readable(l, s->fds[fd].rd);
        if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && s->fds[fd].wr)
            on_writable(l, s->fds[fd].wr);
        if ((ev & (EPOLLERR | EPOLLHUP)) && s->fds[fd].err) {
            struct loop_op *op = s->fds[fd].err;
            unwatch(l, op);
            loop_complete(l, op, (int)(ev & (EPOLLERR | EPOLLHUP)), NULL, false);
        }
    }
    if (s->connects)
        expire_connects(l);
    return 0;
}

const struct loop_backend_ops loop_epoll_ops = {
    .kind = LOOP_BACKEND_EPOLL,
    .init = epoll_init,
    .fini = epoll_fini,
    .accept = watch, /* readiness is all it takes */
    .recv = watch,
    .send = epoll_send,
    .connect = epoll_connect,
    .read = watch,
    .poll_err = watch,
    .cancel = epoll_cancel,
    .close_fd = epoll_close_fd,
    .buf_put = epoll_buf_put,
    .wait = epoll_wait_dispatch,
};
