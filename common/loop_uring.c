/*
 * loop_uring.c - the io_uring backend.
 *
 * Each SQE's user_data is the struct loop_op it serves; SQEs whose completion nobody
 * needs (cancel, close, link timeout) carry LOOP_UD_IGNORE. Receives use one
 * provided-buffer ring (group 0) registered with io_uring_register_buf_ring, as
 * liburing 2.3 requires; a buffer the kernel filled belongs to the user until
 * loop_buf_put(). The ring holds at most LOOP_RING_DEPTH buffers; the rest of the pool
 * waits on a LIFO free list and tops the ring up as it drains. A ring is FIFO, so
 * offering the whole pool would cycle through (and touch) every buffer; this way the
 * same few hot buffers are reused, RSS follows what is really in use, and one burst of
 * a multishot recv can take at most LOOP_RING_DEPTH buffers. SQEs are batched: nothing is submitted until the loop
 * waits, or the SQ is full. Completions are reaped in a batch and the CQ advanced once.
 */
#include "loop_internal.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOOP_UD_IGNORE 1ULL
#define LOOP_BGID       0
#define LOOP_RING_DEPTH 32

struct uring_state {
    struct io_uring ring;
    struct io_uring_buf_ring *br; /* owned: page-aligned */
    unsigned br_mask;
    unsigned in_ring;       /* buffers the kernel may fill now */
    bool no_recv_cap;       /* the kernel refused a capped multishot recv: run uncapped */
    struct loop_buf *spare; /* LIFO of free buffers not in the ring */
};

static struct uring_state *ust(struct loop *l)
{
    return l->be_state;
}

static int uring_setup(struct io_uring *ring, unsigned entries)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    /* One thread submits and reaps; defer task work to our own wait (fewer interrupts). */
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
              IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
    p.cq_entries = entries * 4;
    p.flags |= IORING_SETUP_CQSIZE;
    int r = io_uring_queue_init_params(entries, ring, &p);
    if (r == -EINVAL) {
        memset(&p, 0, sizeof(p));
        r = io_uring_queue_init_params(entries, ring, &p);
    }
    return r;
}

/* SINGLE_ISSUER binds the ring to the first thread that submits; the ring was made
 * disabled on the creating thread so the loop's own thread can claim it here. */
static int uring_attach(struct loop *l)
{
    struct uring_state *s = ust(l);
    if (!(s->ring.flags & IORING_SETUP_R_DISABLED))
        return 0;
    /* liburing 2.3 declares io_uring_enable_rings but its library does not export it. */
    if (syscall(__NR_io_uring_register, s->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) <
        0)
        return -errno;
    return 0;
}

/* Moves spare buffers into the ring until it holds LOOP_RING_DEPTH. */
static void ring_top_up(struct loop *l)
{
    struct uring_state *s = ust(l);
    int added = 0;
    while (s->in_ring < LOOP_RING_DEPTH && s->spare) {
        struct loop_buf *b = s->spare;
        s->spare = b->next;
        io_uring_buf_ring_add(s->br, b->data, l->cfg.buf_size, b->bid, s->br_mask, added++);
        s->in_ring++;
    }
    if (added)
        io_uring_buf_ring_advance(s->br, added);
}

static int uring_init(struct loop *l, char *err, size_t errlen)
{
    struct uring_state *s = calloc(1, sizeof(*s));
    unsigned n = l->cfg.buf_count;
    int r;
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r = uring_setup(&s->ring, l->cfg.ring_entries ? l->cfg.ring_entries : 1024);
    if (r < 0) {
        snprintf(err, errlen, "io_uring_setup: %s", strerror(-r));
        goto fail;
    }
    if (posix_memalign((void **)&s->br, 4096, n * sizeof(struct io_uring_buf)) != 0) {
        r = -ENOMEM;
        snprintf(err, errlen, "buffer ring: out of memory");
        goto fail_ring;
    }
    struct io_uring_buf_reg reg = {
        .ring_addr = (unsigned long)s->br,
        .ring_entries = n,
        .bgid = LOOP_BGID,
    };
    r = io_uring_register_buf_ring(&s->ring, &reg, 0);
    if (r < 0) {
        snprintf(err, errlen, "io_uring_register_buf_ring: %s", strerror(-r));
        goto fail_br;
    }
    io_uring_buf_ring_init(s->br);
    s->br_mask = io_uring_buf_ring_mask(n);
    for (unsigned i = n; i-- > 0;) {
        l->bufs[i].next = s->spare;
        s->spare = &l->bufs[i];
    }
    l->be_state = s;
    ring_top_up(l);
    return 0;

fail_br:
    free(s->br);
fail_ring:
    io_uring_queue_exit(&s->ring);
fail:
    free(s);
    return r;
}

static void uring_fini(struct loop *l)
{
    struct uring_state *s = ust(l);
    if (!s)
        return;
    /* SQEs still queued (closes) cannot be submitted from here: SINGLE_ISSUER binds the
     * ring to the loop's thread, which flushes them before it leaves (loop_run_once). */
    io_uring_queue_exit(&s->ring);
    free(s->br);
    free(s);
    l->be_state = NULL;
}

/* An SQE, submitting what is queued when the SQ is full. NULL only if the kernel keeps
 * refusing submissions (the ring is unusable); starting ops then fail with -EBUSY. */
static struct io_uring_sqe *get_sqe(struct loop *l)
{
    struct uring_state *s = ust(l);
    struct io_uring_sqe *sqe;
    for (int tries = 0; !(sqe = io_uring_get_sqe(&s->ring)); tries++) {
        if (tries == 8)
            return NULL;
        io_uring_submit(&s->ring);
    }
    return sqe;
}

static int uring_accept(struct loop *l, struct loop_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, op);
    return 0;
}

static int uring_recv(struct loop *l, struct loop_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = LOOP_BGID;
    /* The total-bytes cap of a multishot recv is the SQE's optlen, which shares its
     * place with file_index (liburing 2.3 predates the name). */
    if (op->len && !ust(l)->no_recv_cap)
        sqe->file_index = op->len;
    io_uring_sqe_set_data(sqe, op);
    return 0;
}

static int uring_send(struct loop *l, struct loop_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_send(sqe, op->fd, op->ptr, op->len, MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, op);
    return 0;
}

static int uring_connect(struct loop *l, struct loop_op *op)
{
    struct io_uring_sqe *sqe;
    /* The connect and its link timeout must be adjacent in the SQ. */
    if (io_uring_sq_space_left(&ust(l)->ring) < 2)
        io_uring_submit(&ust(l)->ring);
    sqe = get_sqe(l);
    if (!sqe)
        return -EBUSY;
    /* The kernel reads the address when the SQE is submitted, which may be after this
     * returns: the caller keeps sa alive while the op is armed. */
    io_uring_prep_connect(sqe, op->fd, op->ptr, op->len);
    io_uring_sqe_set_data(sqe, op);
    if (op->timeout_ms) {
        sqe->flags |= IOSQE_IO_LINK;
        op->ts[0] = op->timeout_ms / 1000;
        op->ts[1] = (int64_t)(op->timeout_ms % 1000) * 1000000;
        sqe = get_sqe(l);
        if (!sqe)
            return 0; /* the connect is queued without its timeout; the ring is failing anyway */
        io_uring_prep_link_timeout(sqe, (struct __kernel_timespec *)op->ts, 0);
        io_uring_sqe_set_data64(sqe, LOOP_UD_IGNORE);
    }
    return 0;
}

static int uring_read(struct loop *l, struct loop_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_read(sqe, op->fd, (void *)op->ptr, op->len, 0);
    io_uring_sqe_set_data(sqe, op);
    return 0;
}

static int uring_poll_err(struct loop *l, struct loop_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_poll_add(sqe, op->fd, POLLERR | POLLHUP);
    io_uring_sqe_set_data(sqe, op);
    return 0;
}

static void uring_cancel(struct loop *l, struct loop_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    if (!sqe)
        return; /* ring unusable: the op ends when its socket does */
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
    io_uring_sqe_set_data64(sqe, LOOP_UD_IGNORE);
}

static void uring_close_fd(struct loop *l, int fd)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    if (!sqe) {
        close(fd);
        return;
    }
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, LOOP_UD_IGNORE);
}

static void uring_buf_put(struct loop *l, struct loop_buf *b)
{
    struct uring_state *s = ust(l);
    b->next = s->spare;
    s->spare = b;
    ring_top_up(l);
}

static void dispatch(struct loop *l, struct io_uring_cqe *cqe)
{
    struct loop_op *op = io_uring_cqe_get_data(cqe);
    struct loop_buf *buf = NULL;
    int res = cqe->res;
    bool more = cqe->flags & IORING_CQE_F_MORE;

    if (cqe->user_data == LOOP_UD_IGNORE || !op)
        return;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        buf = &l->bufs[cqe->flags >> IORING_CQE_BUFFER_SHIFT];
        l->buf_free_count--;
        ust(l)->in_ring--;
        if (res > 0) {
            buf->len = (uint32_t)res;
            buf->off = 0;
            buf->next = NULL;
        } else {
            loop_buf_put(l, buf);
            buf = NULL;
        }
    }
    if (op->kind == LOOP_OP_RECV && res == -EINVAL && op->len && !ust(l)->no_recv_cap) {
        /* An older kernel: no capped multishot recv. Go on uncapped, unless the owner
         * cancelled it meanwhile (its cancel SQE found nothing to cancel). */
        ust(l)->no_recv_cap = true;
        if (op->cancelled) {
            loop_complete(l, op, -ECANCELED, NULL, false);
            return;
        }
        uring_recv(l, op);
        return;
    }
    if (op->kind == LOOP_OP_CONNECT && res == -ECANCELED && !op->cancelled)
        res = -ETIMEDOUT; /* the linked timeout fired */
    if (op->kind != LOOP_OP_ACCEPT && op->kind != LOOP_OP_RECV)
        more = false;
    loop_complete(l, op, res, buf, more);
}

static int uring_wait(struct loop *l, int timeout_ms)
{
    struct uring_state *s = ust(l);
    struct io_uring_cqe *cqe;
    int r;

    if (timeout_ms == 0) {
        r = io_uring_submit_and_get_events(&s->ring);
    } else if (timeout_ms < 0) {
        r = io_uring_submit_and_wait(&s->ring, 1);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                       .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
        r = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
    }
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN)
        return r;
    l->now_ms = loop_clock_ms(); /* the callbacks below read the time after the sleep */

    /* Callbacks may queue SQEs and even submit (a full SQ) but never touch the CQ head,
     * so iterating the CQ while they run is safe. Advance in chunks so a long batch
     * frees CQ space for completions of what the callbacks submitted. */
    for (;;) {
        unsigned head, n = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe)
        {
            dispatch(l, cqe);
            if (++n == 256)
                break;
        }
        if (!n)
            break;
        io_uring_cq_advance(&s->ring, n);
        /* Refill what the batch consumed even if no buffer came back yet: the ring
         * must not run dry while the spare list still has buffers. */
        ring_top_up(l);
    }
    return 0;
}

const struct loop_backend_ops loop_uring_ops = {
    .kind = LOOP_BACKEND_URING,
    .init = uring_init,
    .attach = uring_attach,
    .fini = uring_fini,
    .accept = uring_accept,
    .recv = uring_recv,
    .send = uring_send,
    .connect = uring_connect,
    .read = uring_read,
    .poll_err = uring_poll_err,
    .cancel = uring_cancel,
    .close_fd = uring_close_fd,
    .buf_put = uring_buf_put,
    .wait = uring_wait,
};
