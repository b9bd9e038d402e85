/*
 * loop.h - the per-thread event loop and its two backends, io_uring and epoll.
 *
 * The API is completion-based, like io_uring: the caller starts an op (accept, recv,
 * send, connect, read) on a struct loop_op it embeds in its own object, and the op's
 * callback runs later on the loop's thread with the result. Both backends give the
 * same guarantees, so everything above this file is shared:
 *   - a callback never runs inside the call that started the op;
 *   - every started op ends with exactly one final completion (more == false), after
 *     which the op may be reused or freed; multishot ops (accept, recv) deliver any
 *     number of completions with more == true before it;
 *   - loop_cancel() makes an armed op end soon with -ECANCELED (completions already
 *     produced by the kernel may still arrive first);
 *   - recv data arrives in pool buffers (struct loop_buf) that the callback's caller
 *     now owns and gives back with loop_buf_put(); when the pool is empty a recv ends
 *     with -ENOBUFS and may be restarted once loop_buf_free() is non-zero again.
 * io_uring: multishot accept, multishot recv on a provided-buffer ring (liburing 2.3
 * io_uring_register_buf_ring), send, connect with a linked timeout, close, batched
 * submit and reap. epoll: readiness plus nonblocking syscalls, level-triggered.
 * Owned by one thread; other threads reach it only through loop_wake() (an eventfd).
 */
#ifndef RINGMESH_LOOP_H
#define RINGMESH_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct loop_op;

enum loop_backend_kind { LOOP_BACKEND_URING, LOOP_BACKEND_EPOLL };
enum loop_io_choice { LOOP_IO_AUTO, LOOP_IO_URING, LOOP_IO_EPOLL };

/* A receive buffer from the loop's pool. data is owned by the loop's pool; whoever holds
 * the struct (the recv callback's caller from delivery on) must loop_buf_put() it once. */
struct loop_buf {
    char *data;
    uint32_t len;          /* bytes of valid data */
    uint32_t off;          /* bytes already consumed by the holder */
    uint16_t bid;          /* index in the pool */
    struct loop_buf *next; /* free to use by the holder (e.g. a send queue) */
};

/* res: accept: the new fd or -errno; recv: bytes (buf set), 0 at EOF, or -errno;
 * send: bytes sent (may be fewer than asked) or -errno; connect: 0 or -errno
 * (-ETIMEDOUT when its timeout fired); read: bytes or -errno; poll_err: the poll mask
 * (POLLERR, POLLHUP) or -errno. */
typedef void (*loop_op_cb)(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf,
                           bool more);

enum loop_op_kind {
    LOOP_OP_NONE,
    LOOP_OP_ACCEPT,
    LOOP_OP_RECV,
    LOOP_OP_SEND,
    LOOP_OP_CONNECT,
    LOOP_OP_READ,
    LOOP_OP_POLL_ERR,
};

/* Embedded by its owner; zero it (or loop_op_init) before the first use. */
struct loop_op {
    loop_op_cb cb;
    void *owner;            /* borrowed: the object the callback works on */
    int fd;
    uint8_t kind;           /* enum loop_op_kind */
    bool armed;             /* started and its final completion not yet delivered */
    bool cancelled;         /* loop_cancel() was called while armed */
    /* backend state, private */
    const void *ptr;        /* send/read: data; connect: address (kept alive by the caller) */
    uint32_t len;           /* send/read: bytes; connect: address length; recv: cap */
    uint32_t timeout_ms;    /* connect */
    bool in_pending;        /* its final completion waits in the deferred list */
    uint64_t deadline_ms;   /* epoll connect */
    int64_t ts[2];          /* io_uring link timeout (struct __kernel_timespec) */
    uint32_t done_len;      /* recv: bytes delivered since it started (epoll's cap) */
    struct loop_op *tnext;  /* epoll: list of connects with deadlines */
    int pending_res;        /* epoll: result waiting in the deferred list */
    bool pending_more;
    struct loop_buf *pending_buf;
    struct loop_op *pending_next;
};

/* Sizes of a loop's receive buffer pool. */
struct loop_config {
    enum loop_io_choice io;
    unsigned buf_count; /* power of two, at most 32768 */
    unsigned buf_size;  /* bytes per buffer */
    unsigned ring_entries;
};

/* Creates a loop on the calling thread's behalf. With io == AUTO it tries io_uring
 * and falls back to epoll, writing why into why (e.g. "io_uring_setup: Operation not
 * permitted"; empty when it did not fall back). NULL on failure with err filled. */
struct loop *loop_new(const struct loop_config *cfg, char *why, size_t whylen, char *err,
                      size_t errlen);
void loop_free(struct loop *l);
enum loop_backend_kind loop_backend(const struct loop *l);
const char *loop_backend_name(enum loop_backend_kind k);

void loop_op_init(struct loop_op *op, loop_op_cb cb, void *owner);

/* Starts an op. 0, or -errno when it could not be started (no completion then). */
int loop_accept(struct loop *l, struct loop_op *op, int listen_fd);      /* multishot */
/* Multishot recv. With max_len > 0 it ends (its last completion still carrying data)
 * once max_len bytes were delivered, so a caller bounds what one connection takes before
 * it has had a chance to pause. io_uring passes the cap to the kernel (the SQE's optlen);
 * a kernel without it (-EINVAL) gets uncapped multishot recvs from then on. */
int loop_recv(struct loop *l, struct loop_op *op, int fd, uint32_t max_len);
int loop_send(struct loop *l, struct loop_op *op, int fd, const void *p, uint32_t len);
int loop_connect(struct loop *l, struct loop_op *op, int fd, const struct sockaddr *sa,
                 socklen_t salen, uint32_t timeout_ms);
int loop_read(struct loop *l, struct loop_op *op, int fd, void *p, uint32_t len);
/* Completes once when fd reports an error or hang-up (a reset arrived, or both
 * directions are closed), without reading: how a connection whose reads are paused
 * still notices that its peer is gone. */
int loop_poll_err(struct loop *l, struct loop_op *op, int fd);
/* Asks an armed op to end; no-op when it isn't armed. */
void loop_cancel(struct loop *l, struct loop_op *op);
/* Closes fd. The caller must have no armed op on it. */
void loop_close_fd(struct loop *l, int fd);

/* Gives a recv buffer back to the pool. */
void loop_buf_put(struct loop *l, struct loop_buf *b);
/* Buffers free in the pool now. */
unsigned loop_buf_free(const struct loop *l);

/* A one-shot timer embedded by its owner (zero it or loop_timer_init before use). Its
 * callback runs on the loop's thread after the deadline, never inside loop_timer_set;
 * it may set or cancel any timer, itself included. */
struct loop_timer;
typedef void (*loop_timer_cb)(struct loop *l, struct loop_timer *t);
struct loop_timer {
    loop_timer_cb cb;
    void *owner;          /* borrowed */
    uint64_t deadline_ms; /* loop_now_ms() clock */
    uint32_t heap_idx;    /* private: position in the loop's heap + 1; 0 when not armed */
};
void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *owner);
/* Arms t for deadline_ms (re-arms it if it was armed). A deadline already past fires on
 * the next pass of the loop. 0 or -ENOMEM. */
int loop_timer_set(struct loop *l, struct loop_timer *t, uint64_t deadline_ms);
/* Disarms t; a no-op when it isn't armed. */
void loop_timer_cancel(struct loop *l, struct loop_timer *t);
static inline bool loop_timer_armed(const struct loop_timer *t)
{
    return t->heap_idx != 0;
}

/* Calls cb(arg) every interval_ms (the loop's clock tick, for sweeps and retries). */
void loop_set_tick(struct loop *l, unsigned interval_ms, void (*cb)(struct loop *, void *),
                   void *arg);
/* Monotonic milliseconds, cached per batch of completions. */
uint64_t loop_now_ms(const struct loop *l);

/* Binds the loop to the calling thread, which must be the one calling loop_run. Call
 * once, before loop_run, when the loop was created on another thread. 0 or -errno. */
int loop_attach_thread(struct loop *l);
/* Runs until loop_stop(). Returns 0 or -errno on a fatal backend error. */
int loop_run(struct loop *l);
/* One pass: deferred completions, one wait of at most max_wait_ms (-1: until something
 * happens or the tick), the tick if due. Works after loop_stop() too, to let ops finish.
 * 0 or -errno. */
int loop_run_once(struct loop *l, int max_wait_ms);
void loop_stop(struct loop *l);
/* Thread-safe: wakes the loop and calls the wake callback on its thread. */
void loop_wake(struct loop *l);
void loop_set_wake_cb(struct loop *l, void (*cb)(struct loop *, void *), void *arg);

#endif
