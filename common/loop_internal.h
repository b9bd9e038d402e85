/*
 * loop_internal.h - what loop.c shares with its two backends; not for users of the loop.
 */
#ifndef RINGMESH_LOOP_INTERNAL_H
#define RINGMESH_LOOP_INTERNAL_H

#include "loop.h"

struct loop_backend_ops {
    enum loop_backend_kind kind;
    int (*init)(struct loop *l, char *err, size_t errlen);
    void (*fini)(struct loop *l);
    int (*attach)(struct loop *l); /* optional: on the thread that will run the loop */
    int (*accept)(struct loop *l, struct loop_op *op);
    int (*recv)(struct loop *l, struct loop_op *op);
    int (*send)(struct loop *l, struct loop_op *op);
    int (*connect)(struct loop *l, struct loop_op *op); /* address in op->ptr, op->len */
    int (*read)(struct loop *l, struct loop_op *op);
    int (*poll_err)(struct loop *l, struct loop_op *op);
    void (*cancel)(struct loop *l, struct loop_op *op);
    void (*close_fd)(struct loop *l, int fd);
    void (*buf_put)(struct loop *l, struct loop_buf *b);
    /* Waits up to timeout_ms (0: don't block) and dispatches what completed. */
    int (*wait)(struct loop *l, int timeout_ms);
};

struct loop {
    const struct loop_backend_ops *be;
    void *be_state; /* owned: the backend's */
    struct loop_config cfg;

    char *buf_mem;          /* owned: buf_count * buf_size bytes */
    struct loop_buf *bufs;  /* owned: buf_count descriptors */
    unsigned buf_free_count;

    struct loop_op *pending_head, *pending_tail; /* deferred final completions */

    uint64_t now_ms;
    unsigned tick_ms;
    uint64_t next_tick_ms;
    void (*tick_cb)(struct loop *, void *);
    void *tick_arg;

    struct loop_timer **timers; /* owned array, borrowed timers: a binary min-heap */
    uint32_t n_timers, cap_timers;

    int wake_fd;
    uint64_t wake_val;
    struct loop_op wake_op;
    void (*wake_cb)(struct loop *, void *);
    void *wake_arg;

    bool stop;
};

extern const struct loop_backend_ops loop_uring_ops;
extern const struct loop_backend_ops loop_epoll_ops;

/* Queues op's final completion to run from loop_run, never inside the caller. */
void loop_defer(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf);
/* Delivers one completion: clears armed on the final one, then calls the callback. */
void loop_complete(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more);
uint64_t loop_clock_ms(void);

#endif
