/*
 * sock.h - a byte-stream socket for the HTTP layer: received bytes gathered into one
 * contiguous input buffer (codecs parse in place), written bytes queued into an output
 * buffer and sent by the loop, connect with a timeout, read pausing for backpressure,
 * and a close that waits for every op before telling the owner it may free.
 *
 * Two output buffers alternate: one is in flight (the loop's send points into it) while
 * the owner appends to the other, so appending never moves bytes a send is reading.
 * The owner bounds both buffers: it stops producing while sock_queued() is over its
 * mark and resumes on the writable callback; it pauses reading while it holds more
 * input than it wants (sock_pause_read).
 *
 * Lifetime: embedded in its owner. After sock_close() no callback but `closed` runs,
 * and `closed` runs exactly once, from the loop (never inside sock_close), when no op
 * is armed any more; only then may the owner free the memory holding the sock.
 * One worker thread; nothing here locks.
 */
#ifndef RINGMESH_SOCK_H
#define RINGMESH_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loop.h"

struct tls_conn;
struct tls_creds;

#define SOCK_READ_CHUNK (256 * 1024) /* at most this much input gathered before the owner runs */

struct sock;

struct sock_ops {
    /* New bytes in s->in (sock_in/sock_consume), or s->eof_in or s->err became set. */
    void (*readable)(struct sock *s);
    /* A send completed and sock_queued() is now under SOCK_LOW_MARK (or zero). */
    void (*writable)(struct sock *s);
    /* sock_connect finished: res 0 or -errno (-ETIMEDOUT for the timeout). */
    void (*connected)(struct sock *s, int res);
    /* The sock is closed and idle: the owner may free it now. */
    void (*closed)(struct sock *s);
};

#define SOCK_LOW_MARK (64 * 1024)

struct sock {
    const struct sock_ops *ops;
    void *owner; /* borrowed */
    struct loop *loop;
    int fd; /* owned; -1 when none */
    struct loop_op recv_op, send_op, connect_op;
    struct loop_timer timer;      /* retries a starved recv; delivers `closed` */
    struct sockaddr_storage peer; /* sock_connect's address (must outlive the op) */
    socklen_t peer_len;
    char *in; /* owned: input in[in_off..in_len) */
    size_t in_off, in_len, in_cap;
    char *out; /* owned: bytes queued behind the send in flight */
    size_t out_len, out_cap;
    char *fly; /* owned: bytes of the send in flight, fly[fly_off..fly_len) */
    size_t fly_off, fly_len, fly_cap;
    uint64_t bytes_in, bytes_out;
    uint64_t last_active_ms;
    int err;          /* first hard error (-errno) of a recv or send, else 0 */
    bool eof_in;      /* the peer sent FIN */
    bool read_on;     /* the owner wants input */
    bool read_paused; /* ...but asked for a pause */
    bool in_full;     /* reading stopped: SOCK_READ_CHUNK of input not consumed yet */
    bool want_shut;   /* shutdown(SHUT_WR) once everything queued has gone */
    bool shut_out;
    bool closing;
    bool closed_done;
    bool dirty;           /* on the thread's list of socks to send at the batch end */
    struct tls_conn *tls; /* owned: TLS on this socket (sock_set_tls), else NULL */
    char *pt;             /* owned, with TLS: plaintext written, encrypted when sent */
    size_t pt_len, pt_cap;
    bool tls_wait; /* client: TCP connected, `connected` waits for the handshake */
    struct sock *dprev, *dnext;
    int busy; /* callbacks running now */
};

/* Takes over fd (nonblocking) for owner. No op is started. */
void sock_init(struct sock *s, struct loop *l, int fd, const struct sock_ops *ops, void *owner);
/* Starts (or resumes) reading. 0 or -errno. */
int sock_read_start(struct sock *s);
/* Pauses or resumes reading (cheap to call repeatedly). */
void sock_pause_read(struct sock *s, bool pause);
/* Connects fd to sa (copied) with a timeout; `connected` reports the result. */
int sock_connect(struct sock *s, const struct sockaddr *sa, socklen_t len, uint32_t timeout_ms);

static inline const char *sock_in(const struct sock *s)
{
    return s->in + s->in_off;
}
static inline size_t sock_in_len(const struct sock *s)
{
    return s->in_len - s->in_off;
}
/* Appends bytes read elsewhere (a sniffer's) to the input. 0 or -ENOMEM. */
int sock_push_input(struct sock *s, const char *p, size_t len);
/* Drops n bytes from the front of the input. */
void sock_consume(struct sock *s, size_t n);
/* Appends bytes to the output queue. The send starts when the current batch of
 * completions has been handled (a zero-delay timer), so everything a batch wrote to one
 * socket leaves in one send: a response head and its body, many HTTP/2 frames. 0 or
 * -ENOMEM. */
int sock_write(struct sock *s, const void *p, size_t len);
/* Room for n bytes at the end of the output queue (NULL: no memory); then sock_commit
 * the bytes actually written there. */
char *sock_reserve(struct sock *s, size_t n);
void sock_commit(struct sock *s, size_t n);
/* Bytes queued or in flight. */
static inline size_t sock_queued(const struct sock *s)
{
    return s->pt_len + s->out_len + (s->fly_len - s->fly_off);
}
/* Puts TLS on the socket (tls.h's connection, owned by the sock). A client's handshake starts
 * once TCP is connected and `connected` reports its end (a failed handshake is a failed
 * connect: -ECONNREFUSED, the reason in tls_conn_reason); a server's runs on the first
 * input. Input and output are plaintext to the owner either way; what it writes before
 * the handshake ends waits for it. resume (client): the peer's address, to resume a TLS
 * session with it (tls_conn_new). */
int sock_tls_start(struct sock *s, struct tls_creds *c, bool server, const char *sni,
                   const char *alpn, const char *const *want, size_t n_want, const char *resume,
                   char *err, size_t errlen);
/* FIN after everything queued has been sent. */
void sock_shutdown(struct sock *s);
/* Closes: cancels every op; with reset the close sends RST (SO_LINGER 0). Queued output
 * is dropped, so flush first (wait for sock_queued() == 0) for a clean close. */
void sock_close(struct sock *s, bool reset);

#endif
