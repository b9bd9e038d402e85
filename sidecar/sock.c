/*
 * sock.c - see sock.h.
 */
#include "sock.h"
#include "tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SOCK_STARVED_RETRY_MS 5

/* The socks written to during this batch of completions, sent together once it is over.
 * One loop per thread, so the list is the thread's. */
static __thread struct sock *dirty_head;
static __thread struct loop_timer dirty_timer;
static __thread bool dirty_timer_init;

static void on_recv(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more);
static void on_send(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more);
static void on_connect(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf,
                       bool more);
static void on_timer(struct loop *l, struct loop_timer *t);
static bool tls_drive(struct sock *s);

void sock_init(struct sock *s, struct loop *l, int fd, const struct sock_ops *ops, void *owner)
{
    memset(s, 0, sizeof(*s));
    s->ops = ops;
    s->owner = owner;
    s->loop = l;
    s->fd = fd;
    loop_op_init(&s->recv_op, on_recv, s);
    loop_op_init(&s->send_op, on_send, s);
    loop_op_init(&s->connect_op, on_connect, s);
    loop_timer_init(&s->timer, on_timer, s);
    s->last_active_ms = loop_now_ms(l);
}

static bool sock_idle(const struct sock *s)
{
    return !s->recv_op.armed && !s->send_op.armed && !s->connect_op.armed && !s->busy;
}

/* After every callback: a closing sock that went idle reports `closed` from the timer,
 * so the owner is never freed under a caller still running. */
static void after(struct sock *s)
{
    if (s->closing && !s->closed_done && sock_idle(s) && !loop_timer_armed(&s->timer))
        loop_timer_set(s->loop, &s->timer, 0);
}

static bool grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need)
        nc *= 2;
    char *q = realloc(*p, nc);
    if (!q)
        return false;
    *p = q;
    *cap = nc;
    return true;
}

static void arm_recv(struct sock *s)
{
    if (s->closing || !s->read_on || s->read_paused || s->eof_in || s->err || s->recv_op.armed ||
        loop_timer_armed(&s->timer))
        return;
    size_t have = sock_in_len(s);
    if (have >= SOCK_READ_CHUNK) { /* the owner is not consuming: stop until it does */
        s->in_full = true;
        return;
    }
    uint32_t room = (uint32_t)(SOCK_READ_CHUNK - have);
    if (loop_recv(s->loop, &s->recv_op, s->fd, room) < 0) {
        s->err = -EIO; /* reported from the timer, never inside the owner's call */
        loop_timer_set(s->loop, &s->timer, 0);
    }
}

int sock_read_start(struct sock *s)
{
    s->read_on = true;
    arm_recv(s);
    return s->err;
}

void sock_pause_read(struct sock *s, bool pause)
{
    if (pause == s->read_paused)
        return;
    s->read_paused = pause;
    if (pause)
        loop_cancel(s->loop, &s->recv_op);
    else
        arm_recv(s);
}

static void recv_done(struct sock *s, int res, struct loop_buf *buf, bool more)
{
    bool news = false;
    if (buf) {
        if (!s->closing) {
            if (s->in_off && s->in_off == s->in_len)
                s->in_off = s->in_len = 0;
            if (s->in_off > s->in_cap / 2) { /* slide the rest to the front */
                memmove(s->in, s->in + s->in_off, s->in_len - s->in_off);
                s->in_len -= s->in_off;
                s->in_off = 0;
            }
            if (s->tls) {
                s->bytes_in += buf->len;
                s->last_active_ms = loop_now_ms(s->loop);
                if (tls_conn_feed(s->tls, buf->data, buf->len) < 0)
                    s->err = -ENOMEM;
                news = true; /* tls_drive below decides */
            } else if (grow(&s->in, &s->in_cap, s->in_len + buf->len)) {
                memcpy(s->in + s->in_len, buf->data, buf->len);
                s->in_len += buf->len;
                s->bytes_in += buf->len;
                s->last_active_ms = loop_now_ms(s->loop);
                news = true;
            } else {
                s->err = -ENOMEM;
            }
        }
        loop_buf_put(s->loop, buf);
    }
    if (!more && !s->closing) {
        if (res == 0) {
            s->eof_in = true;
            news = true;
        } else if (res == -ENOBUFS) {
            loop_timer_set(s->loop, &s->timer, loop_now_ms(s->loop) + SOCK_STARVED_RETRY_MS);
        } else if (res < 0 && res != -ECANCELED) {
            if (!s->err)
                s->err = res;
            news = true;
        }
    }
    if (s->tls && !s->closing && (news || s->eof_in))
        news = tls_drive(s);
    if (news && !s->closing)
        s->ops->readable(s);
    if (!more)
        arm_recv(s);
}

static void kick_send(struct sock *s)
{
    if (s->closing || s->send_op.armed || s->fd < 0 || s->connect_op.armed)
        return;
    if (s->tls && s->pt_len && tls_conn_established(s->tls)) {
        size_t n = s->pt_len;
        s->pt_len = 0;
        if (tls_conn_write(s->tls, s->pt, n) < 0 && !s->err) {
            s->err = -EPROTO;
            loop_timer_set(s->loop, &s->timer, 0);
            return;
        }
    }
    if (s->fly_off == s->fly_len && s->out_len) { /* swap the buffers */
        char *t = s->fly;
        size_t tc = s->fly_cap;
        s->fly = s->out;
        s->fly_cap = s->out_cap;
        s->fly_len = s->out_len;
        s->fly_off = 0;
        s->out = t;
        s->out_cap = tc;
        s->out_len = 0;
    }
    if (s->fly_off < s->fly_len) {
        size_t n = s->fly_len - s->fly_off;
        if (n > (1u << 30))
            n = 1u << 30;
        if (loop_send(s->loop, &s->send_op, s->fd, s->fly + s->fly_off, (uint32_t)n) < 0) {
            s->err = -EIO;
            loop_timer_set(s->loop, &s->timer, 0);
        }
        return;
    }
    /* with TLS, the FIN waits for the handshake and for the last plaintext to be sealed */
    if (s->want_shut && !s->shut_out && !(s->tls && (s->pt_len || !tls_conn_established(s->tls)))) {
        s->shut_out = true;
        shutdown(s->fd, SHUT_WR);
    }
}

static void send_done(struct sock *s, int res)
{
    if (s->closing)
        return;
    if (res < 0) {
        if (res != -ECANCELED && !s->err) {
            s->err = res;
            s->ops->readable(s);
        }
        return;
    }
    s->fly_off += (size_t)res;
    s->bytes_out += (size_t)res;
    s->last_active_ms = loop_now_ms(s->loop);
    kick_send(s);
    if (!s->closing && sock_queued(s) < SOCK_LOW_MARK)
        s->ops->writable(s);
}

#define SOCK_CALLBACK(name, body)                                                                  \
    static void name(struct loop *l, struct loop_op *op, int res, struct loop_buf *buf, bool more) \
    {                                                                                              \
        (void)l;                                                                                   \
        struct sock *s = op->owner;                                                                \
        s->busy++;                                                                                 \
        body;                                                                                      \
        s->busy--;                                                                                 \
        after(s);                                                                                  \
    }
SOCK_CALLBACK(on_recv, recv_done(s, res, buf, more))
SOCK_CALLBACK(on_send, (void)buf; (void)more; send_done(s, res))
SOCK_CALLBACK(
    on_connect, (void)buf; (void)more; if (!s->closing) {
        if (s->tls && res == 0) { /* TCP is up: the handshake decides */
            s->tls_wait = true;
            if (tls_drive(s) && !s->closing && (s->err || s->eof_in))
                s->ops->readable(s);
            if (!s->closing) {
                kick_send(s);
                s->read_on = true;
                arm_recv(s);
            }
        } else {
            s->ops->connected(s, res);
            if (!s->closing && res == 0)
                kick_send(s);
        }
    })

static void on_timer(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct sock *s = t->owner;
    if (s->closing) {
        if (sock_idle(s) && !s->closed_done) {
            s->closed_done = true;
            if (s->fd >= 0)
                loop_close_fd(s->loop, s->fd);
            s->fd = -1;
            free(s->in);
            free(s->out);
            free(s->fly);
            free(s->pt);
            s->in = s->out = s->fly = s->pt = NULL;
            tls_conn_free(s->tls);
            s->tls = NULL;
            s->ops->closed(s); /* may free s */
        }
        return;
    }
    s->busy++;
    if (s->err)
        s->ops->readable(s); /* an op that could not start */
    else
        arm_recv(s); /* a starved recv tries again */
    s->busy--;
    after(s);
}

int sock_connect(struct sock *s, const struct sockaddr *sa, socklen_t len, uint32_t timeout_ms)
{
    memcpy(&s->peer, sa, len);
    s->peer_len = len;
    return loop_connect(s->loop, &s->connect_op, s->fd, (struct sockaddr *)&s->peer, len,
                        timeout_ms);
}

int sock_push_input(struct sock *s, const char *p, size_t len)
{
    if (s->tls) { /* ciphertext a sniffer read: the handshake goes on from it at once */
        s->bytes_in += len;
        if (tls_conn_feed(s->tls, p, len) < 0)
            return -ENOMEM;
        tls_drive(s);
        return 0;
    }
    if (!grow(&s->in, &s->in_cap, s->in_len + len))
        return -ENOMEM;
    memcpy(s->in + s->in_len, p, len);
    s->in_len += len;
    s->bytes_in += len;
    return 0;
}

void sock_consume(struct sock *s, size_t n)
{
    s->in_off += n;
    if (s->in_off >= s->in_len)
        s->in_off = s->in_len = 0;
    if (s->in_full && sock_in_len(s) < SOCK_READ_CHUNK) {
        s->in_full = false;
        arm_recv(s);
    }
}

char *sock_reserve(struct sock *s, size_t n)
{
    if (s->tls) {
        if (!grow(&s->pt, &s->pt_cap, s->pt_len + n))
            return NULL;
        return s->pt + s->pt_len;
    }
    if (!grow(&s->out, &s->out_cap, s->out_len + n))
        return NULL;
    return s->out + s->out_len;
}

/* TLS: ciphertext from wolfSSL goes straight to the output queue. */
static int tls_sink_out(void *arg, const char *p, size_t n)
{
    struct sock *s = arg;
    if (!grow(&s->out, &s->out_cap, s->out_len + n))
        return -ENOMEM;
    memcpy(s->out + s->out_len, p, n);
    s->out_len += n;
    return 0;
}

/* TLS: the handshake, then decryption into the input. True when the owner has news
 * (bytes, EOF, an error). A client's `connected` is called from here. */
static bool tls_drive(struct sock *s)
{
    bool news = false;
    if (!tls_conn_established(s->tls)) {
        int r = tls_conn_handshake(s->tls); /* an alert may be in what came with the error */
        if (s->out_len)
            sock_commit(s, 0); /* the handshake wrote: send it with this batch */
        if (r == 0 && !s->eof_in && !s->err)
            return false; /* more handshake to come */
        if (r <= 0) {
            if (!s->err)
                s->err = -ECONNREFUSED;
            if (s->tls_wait) {
                s->tls_wait = false;
                s->ops->connected(s, -ECONNREFUSED);
                return false;
            }
            return true;
        }
        if (s->tls_wait) {
            s->tls_wait = false;
            s->ops->connected(s, 0);
            if (s->closing)
                return false;
        }
        if (s->pt_len)
            sock_commit(s, 0); /* written before the handshake ended */
        else if (s->want_shut && !s->shut_out)
            kick_send(s); /* a FIN held back for the handshake */
    }
    for (;;) {
        if (!grow(&s->in, &s->in_cap, s->in_len + 16384)) {
            s->err = -ENOMEM;
            return true;
        }
        ssize_t n = tls_conn_read(s->tls, s->in + s->in_len, s->in_cap - s->in_len);
        if (n > 0) {
            s->in_len += (size_t)n;
            news = true;
            continue;
        }
        if (n == -EPIPE)
            s->eof_in = true, news = true;
        else if (n < 0)
            s->err = -EPROTO, news = true;
        break;
    }
    if (s->out_len)
        sock_commit(s, 0); /* TLS may answer (key updates, tickets) */
    return news || s->eof_in || s->err;
}

int sock_tls_start(struct sock *s, struct tls_creds *c, bool server, const char *sni,
                   const char *alpn, const char *const *want, size_t n_want, const char *resume,
                   char *err, size_t errlen)
{
    s->tls = tls_conn_new(c, server, sni, alpn, want, n_want, resume, tls_sink_out, s, err,
                          errlen);
    return s->tls ? 0 : -ENOMEM;
}

static void dirty_unlink(struct sock *s)
{
    if (!s->dirty)
        return;
    if (s->dprev)
        s->dprev->dnext = s->dnext;
    else
        dirty_head = s->dnext;
    if (s->dnext)
        s->dnext->dprev = s->dprev;
    s->dirty = false;
    s->dprev = s->dnext = NULL;
}

static void on_dirty(struct loop *l, struct loop_timer *t)
{
    (void)l;
    (void)t;
    while (dirty_head) {
        struct sock *s = dirty_head;
        dirty_unlink(s);
        s->busy++;
        kick_send(s);
        s->busy--;
        after(s);
    }
}

void sock_commit(struct sock *s, size_t n)
{
    if (s->tls)
        s->pt_len += n;
    else
        s->out_len += n;
    if (!sock_queued(s) || s->dirty || s->send_op.armed || s->closing)
        return; /* a send in flight picks the bytes up when it completes */
    if (!dirty_timer_init) {
        loop_timer_init(&dirty_timer, on_dirty, NULL);
        dirty_timer_init = true;
    }
    s->dirty = true;
    s->dprev = NULL;
    s->dnext = dirty_head;
    if (dirty_head)
        dirty_head->dprev = s;
    dirty_head = s;
    if (!loop_timer_armed(&dirty_timer))
        loop_timer_set(s->loop, &dirty_timer, 0);
}

int sock_write(struct sock *s, const void *p, size_t len)
{
    char *d = sock_reserve(s, len);
    if (!d)
        return -ENOMEM;
    memcpy(d, p, len);
    sock_commit(s, len);
    return 0;
}

void sock_shutdown(struct sock *s)
{
    s->want_shut = true;
    kick_send(s);
}

void sock_close(struct sock *s, bool reset)
{
    if (s->closing)
        return;
    s->closing = true;
    dirty_unlink(s);
    if (reset && s->fd >= 0) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    loop_timer_cancel(s->loop, &s->timer);
    loop_cancel(s->loop, &s->recv_op);
    loop_cancel(s->loop, &s->send_op);
    loop_cancel(s->loop, &s->connect_op);
    after(s);
}
