/*
 * http_conn.c - HTTP connections: the socket, HTTP/1.1 and HTTP/2 in both roles, the
 * tunnel after a 101, and the upstream pools. See http_internal.h.
 *
 * Decisions:
 * - Downstream protocol: the HTTP/2 connection preface means HTTP/2 (prior knowledge),
 *   anything else HTTP/1.x. HTTP/1.1 requests on one connection are handled one at a
 *   time, so pipelined requests are answered in order; the next request is parsed only
 *   when the current response is complete.
 * - A malformed HTTP/1.1 request gets h1_error_status() (400, 431, 501, 505) with
 *   x-ringmesh-flags: DPE and the connection is closed: after a framing error nothing
 *   later on the connection can be trusted (request smuggling).
 * - HTTP/1.1 upstream connections carry one request at a time and go back to the pool
 *   when both the request and the response ended and the app kept the connection alive.
 *   A response that ends while the request body is still being sent closes the
 *   connection (the app did not read it; reusing it would mix two bodies).
 * - An HTTP/2 upstream connection takes up to H2_DEFAULT_MAX_CONCURRENT_STREAMS streams;
 *   more go to another connection, within the cluster's maxConnections.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "http_internal.h"
#include "log.h"
#include "relay.h"
#include "tls.h"
#include "worker.h"

#define HTTP_UP_IDLE_MS   60000 /* an idle upstream connection is closed after this */
#define HTTP_H2_OUT_CHUNK (64 * 1024)
#define HTTP_H2_STREAMS   H2_DEFAULT_MAX_CONCURRENT_STREAMS
#define HTTP_H1_HEAD_ROOM (64 * 1024 + 1024)

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void hc_readable(struct sock *s);
static void hc_writable(struct sock *s);
static void hc_connected(struct sock *s, int res);
static void hc_closed(struct sock *s);
static const struct sock_ops hc_sock_ops = {
    .readable = hc_readable,
    .writable = hc_writable,
    .connected = hc_connected,
    .closed = hc_closed,
};
static void hc_process(struct hconn *c);
static void hc_tcp_to_app(struct hconn *c);
static struct hconn *hc_new(struct worker *w, int fd, enum stats_dir dir, bool client);
static void hc_close(struct hconn *c, bool reset, const char *why);
static void pool_remove(struct hconn *c);
static void pool_dispatch(struct pool *p);
static void pool_dispatch_once(struct pool *p);

void http_stat(struct worker *w, enum stats_dir dir, enum stats_cx c)
{
    STATS_INC(&w->stats.cx[dir][c]);
}

/* ---- the connection list ---- */

static struct hconn *hc_new(struct worker *w, int fd, enum stats_dir dir, bool client)
{
    struct http_worker *hw = http_of(w);
    struct hconn *c = hw ? calloc(1, sizeof(*c)) : NULL;
    if (!c)
        return NULL;
    c->w = w;
    c->dir = dir;
    c->client = client;
    c->id = ++hw->next_id;
    sock_init(&c->sock, w->loop, fd, &hc_sock_ops, c);
    c->next = hw->conns;
    if (hw->conns)
        hw->conns->prev = c;
    hw->conns = c;
    if (!client)
        hw->ndown++;
    return c;
}

static void hc_unlink(struct hconn *c)
{
    struct http_worker *hw = c->w->http;
    if (c->prev)
        c->prev->next = c->next;
    else
        hw->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (!c->client)
        hw->ndown--;
}

/* ---- HTTP/2 glue ---- */

/* Moves what nghttp2 wants to send into the socket, while the socket's queue is short. */
static void h2_flush(struct hconn *c)
{
    if (!c->h2 || c->sock.closing)
        return;
    if (c->flushing) { /* called from a callback of the flush below: it goes round again */
        c->flush_again = true;
        return;
    }
    c->flushing = true;
    do {
        c->flush_again = false;
        while (sock_queued(&c->sock) < 4 * HTTP_BODY_MARK && !c->sock.closing) {
            char *p = sock_reserve(&c->sock, HTTP_H2_OUT_CHUNK);
            if (!p) {
                c->flushing = false;
                hc_close(c, true, "out of memory");
                return;
            }
            ssize_t n = h2_conn_send_pending(c->h2, (uint8_t *)p, HTTP_H2_OUT_CHUNK);
            if (n < 0) {
                c->flushing = false;
                hc_close(c, true, h2_error_str((int)n));
                return;
            }
            sock_commit(&c->sock, (size_t)n);
            if (n < HTTP_H2_OUT_CHUNK)
                break;
        }
    } while (c->flush_again && !c->sock.closing);
    c->flushing = false;
    if (!c->sock.closing && h2_conn_is_done(c->h2) && sock_queued(&c->sock) == 0)
        hc_close(c, false, "HTTP/2 session over");
}

/* Which side of ps an HTTP/2 callback is about: its downstream connection's session or
 * its upstream's (the stream may have both at once). */
static bool h2_is_down(const struct pstream *ps, const struct h2_conn *h2)
{
    return ps->dc && ps->dc->h2 == h2;
}

static bool h2_is_up(const struct pstream *ps, const struct h2_conn *h2)
{
    return ps->uc && ps->uc->h2 == h2;
}

static void *h2_on_open(struct h2_conn *h2, int32_t sid, void *user)
{
    (void)h2;
    struct hconn *c = user;
    if (c->client)
        return NULL;
    struct pstream *ps = ps_new(c, sid);
    if (!ps)
        h2_reset_stream(c->h2, sid, H2_INTERNAL_ERROR);
    return ps;
}

static void h2_on_headers(struct h2_conn *h2, int32_t sid, const struct h2_head *hd, bool end,
                          void *user)
{
    (void)sid;
    struct pstream *ps = user;
    if (!ps)
        return;
    if (h2_is_down(ps, h2)) { /* server: a request */
        int e = stream_from_h2_request(&ps->req, hd, end);
        if (e < 0) {
            ps_local_reply(ps, stream_error_status(e), "DPE", stream_error_str(e));
            return;
        }
        ps_request_head(ps);
        return;
    }
    if (!h2_is_up(ps, h2) || hd->status < 200) /* interim: 100-continue is answered locally */
        return;
    int e = stream_from_h2_response(&ps->resp, hd, end);
    if (e < 0) {
        ps_upstream_failed(ps, RETRY_OUT_RESET);
        return;
    }
    ps_response_head(ps);
}

static void h2_on_data(struct h2_conn *h2, int32_t sid, const uint8_t *d, size_t n, void *user)
{
    struct pstream *ps = user;
    if (!ps) { /* a stream the proxy let go of: its bytes still count in the window */
        h2_stream_consumed(h2, sid, n);
        return;
    }
    if (h2_is_up(ps, h2) && ps->at >= AT_HEADERS)
        ps_response_data(ps, (const char *)d, n);
    else if (h2_is_down(ps, h2))
        ps_request_data(ps, (const char *)d, n);
}

static void h2_on_trailers(struct h2_conn *h2, int32_t sid, const struct h2_header *t, size_t n,
                           void *user)
{
    (void)sid;
    struct pstream *ps = user;
    if (!ps)
        return;
    if (h2_is_up(ps, h2)) {
        if (trailers_begin(&ps->ptr) == 0 && stream_trailers_from_h2(&ps->ptr, t, n) == 0)
            ps_response_trailers(ps);
    } else if (h2_is_down(ps, h2)) {
        if (trailers_begin(&ps->rtr) == 0 && stream_trailers_from_h2(&ps->rtr, t, n) == 0)
            ps_request_trailers(ps);
    }
}

static void h2_on_end(struct h2_conn *h2, int32_t sid, void *user)
{
    (void)sid;
    struct pstream *ps = user;
    if (!ps)
        return;
    log_trace("HTTP/2 stream %d: end of stream (%s)", (int)sid,
              h2_is_up(ps, h2)     ? "response"
              : h2_is_down(ps, h2) ? "request"
                                   : "?");
    if (h2_is_up(ps, h2))
        ps_response_end(ps);
    else if (h2_is_down(ps, h2))
        ps_request_end(ps);
}

static void h2_on_closed(struct h2_conn *h2, int32_t sid, uint32_t code, void *user)
{
    struct pstream *ps = user;
    log_trace("HTTP/2 stream %d closed (code %u)%s", (int)sid, code,
              ps ? "" : ", not ours any more");
    if (!ps)
        return;
    if (h2_is_up(ps, h2) && ps->usid == sid) {
        struct hconn *c = ps->uc;
        if (ps->at == AT_SENT || ps->at == AT_HEADERS)
            ps_upstream_failed(ps, code == H2_REFUSED_STREAM ? RETRY_OUT_REFUSED_STREAM
                                                             : RETRY_OUT_RESET);
        if (ps->uc == c) { /* still ours: let go */
            ps->uc = NULL;
            c->nstreams--;
        }
    } else if (h2_is_down(ps, h2) && ps->dsid == sid) {
        ps_downstream_gone(ps);
    }
}

static void h2_on_reset(struct h2_conn *h2, int32_t sid, uint32_t code, void *user)
{
    (void)h2;
    (void)sid;
    (void)code;
    (void)user; /* closed follows with the same code: handled there */
}

static void h2_on_goaway(struct h2_conn *h2, int32_t last, uint32_t code, void *user)
{
    (void)h2;
    struct hconn *c = user;
    log_debug("HTTP/2 connection %lu: GOAWAY received (last stream %d, code %u)",
              (unsigned long)c->id, (int)last, code);
    c->goaway = true;
}

static void h2_on_drained(struct h2_conn *h2, int32_t sid, size_t queued, void *user)
{
    (void)sid;
    struct pstream *ps = user;
    if (!ps || queued > HTTP_BODY_MARK / 2)
        return;
    if (h2_is_up(ps, h2))
        ps_upstream_writable(ps);
    else if (h2_is_down(ps, h2))
        ps_downstream_writable(ps);
}

static const struct h2_callbacks h2cbs = {
    .stream_open = h2_on_open,
    .headers = h2_on_headers,
    .data = h2_on_data,
    .trailers = h2_on_trailers,
    .end_stream = h2_on_end,
    .reset = h2_on_reset,
    .goaway = h2_on_goaway,
    .closed = h2_on_closed,
    .drained = h2_on_drained,
};

static int hc_start_h2(struct hconn *c)
{
    char err[128];
    c->mode = HM_H2;
    c->h2 = h2_conn_new(c->client ? H2_CLIENT : H2_SERVER, NULL, &h2cbs, c, err, sizeof(err));
    if (!c->h2) {
        log_warn("HTTP/2 connection: %s", err);
        return -ENOMEM;
    }
    return 0;
}

/* ---- HTTP/1.1 ---- */

/* A request the codec refused: answer and close (nothing after it can be trusted). */
static void h1_reject(struct hconn *c, int status, const char *why)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %zu\r\n"
                     "x-ringmesh-flags: DPE\r\nconnection: close\r\n\r\n%s\n",
                     status, h1_status_reason(status), strlen(why) + 1, why);
    log_debug("HTTP/1.1 connection %lu: %d: %s", (unsigned long)c->id, status, why);
    http_stat(c->w, c->dir, STATS_RQ_TOTAL);
    http_stat(c->w, c->dir, status >= 500 ? STATS_RQ_5XX : STATS_RQ_4XX);
    http_stat(c->w, c->dir, STATS_RQ_FLAG_DPE);
    sock_write(&c->sock, buf, (size_t)n);
    sock_shutdown(&c->sock);
    sock_pause_read(&c->sock, true);
    c->close_after = true;
    c->mode = HM_TUNNEL; /* nothing more is parsed; closes once flushed */
    c->peer = NULL;
    ps_access_log_reject(c, status);
}

static void h1_orig_authority(struct hconn *c, char *out, size_t len)
{
    char a[ADDR_STRLEN];
    addr_format((const struct sockaddr *)&c->dst, a);
    snprintf(out, len, "%s", a);
}

/* Server: the next request head, then its body, as far as the input goes. */
static void h1_server_input(struct hconn *c)
{
    struct sock *s = &c->sock;
    while (!s->closing && !s->read_paused) {
        if (!c->cur) {
            if (c->close_after)
                return;
            if (!sock_in_len(s)) {
                if (s->eof_in) { /* after the last response has gone out */
                    c->close_after = true;
                    if (sock_queued(s) == 0)
                        hc_close(c, false, "client closed");
                }
                return;
            }
            struct h1_header hv[HTTP_H1_MAX_FIELDS];
            struct h1_request req = {.msg = {.headers = hv, .headers_cap = HTTP_H1_MAX_FIELDS}};
            ssize_t n = h1_parse_request(&c->p1, sock_in(s), sock_in_len(s), &req);
            if (n == -EAGAIN) {
                if (s->eof_in)
                    hc_close(c, false, "client closed mid-request");
                return;
            }
            if (n < 0) {
                h1_reject(c, h1_error_status((int)n), h1_error_str((int)n));
                return;
            }
            struct pstream *ps = ps_new(c, 0);
            if (!ps) {
                h1_reject(c, 503, "out of memory");
                return;
            }
            char auth[ADDR_STRLEN + 8];
            h1_orig_authority(c, auth, sizeof(auth));
            int e = stream_from_h1_request(&ps->req, &req, auth, strlen(auth));
            c->cur = ps;
            ps->peer_minor = req.msg.minor_version;
            if (e == 0 && (req.msg.flags & H1_F_UPGRADE)) {
                /* kept for the HTTP/1.1 upstream that carries the upgrade */
                ps->upgrade_proto =
                    stream_head_strdup(&ps->req, req.msg.upgrade, req.msg.upgrade_len);
                stream_head_add(&ps->req, "connection", 10, "upgrade", 7);
                stream_head_add(&ps->req, "upgrade", 7, req.msg.upgrade, req.msg.upgrade_len);
            }
            ps->method_id = req.method_id;
            if (!(req.msg.flags & H1_F_KEEP_ALIVE))
                c->close_after = true;
            h1_decoder_init(&c->dec, req.msg.body == H1_BODY_TUNNEL ? H1_BODY_NONE : req.msg.body,
                            req.msg.content_length);
            c->dec.trailers = c->trailers;
            c->dec.trailers_cap = HTTP_H1_MAX_FIELDS;
            c->dec_on = true;
            sock_consume(s, (size_t)n);
            if (e < 0) {
                c->close_after = true;
                ps_local_reply(ps, stream_error_status(e), "DPE", stream_error_str(e));
                continue;
            }
            if (req.msg.flags & H1_F_EXPECT_OTHER) {
                c->close_after = true;
                ps_local_reply(ps, 417, "DPE", "unsupported Expect");
                continue;
            }
            ps_request_head(ps);
            continue;
        }
        if (!c->dec_on) {
            if (s->eof_in && !sock_in_len(s) && c->cur)
                c->close_after = true; /* the client half-closed after its request */
            return;
        }
        /* the request body */
        const char *data;
        size_t dlen;
        ssize_t n = 0;
        if (!h1_decoder_is_done(&c->dec)) {
            if (!sock_in_len(s)) {
                if (s->eof_in) {
                    c->dec_on = false;
                    if (h1_decoder_eof(&c->dec) < 0) {
                        c->close_after = true;
                        ps_downstream_gone(c->cur);
                    } else {
                        ps_request_end(c->cur);
                    }
                }
                return;
            }
            n = h1_decoder_feed(&c->dec, sock_in(s), sock_in_len(s), &data, &dlen);
            if (n == -EAGAIN) {
                if (s->eof_in) {
                    c->dec_on = false;
                    c->close_after = true;
                    ps_downstream_gone(c->cur);
                }
                return;
            }
            if (n < 0) {
                c->dec_on = false;
                c->close_after = true;
                if (c->cur && !c->cur->resp_started)
                    ps_local_reply(c->cur, h1_error_status((int)n), "DPE", h1_error_str((int)n));
                else if (c->cur)
                    ps_downstream_gone(c->cur);
                return;
            }
            sock_consume(s, (size_t)n);
            if (dlen)
                ps_request_data(c->cur, data, dlen);
            if (!c->cur || !h1_decoder_is_done(&c->dec))
                continue;
        }
        c->dec_on = false;
        if (c->dec.num_trailers) {
            if (trailers_begin(&c->cur->rtr) == 0 &&
                stream_trailers_from_h1(&c->cur->rtr, c->dec.trailers, c->dec.num_trailers) == 0)
                ps_request_trailers(c->cur);
        }
        if (c->cur)
            ps_request_end(c->cur);
    }
}

/* Client: the response head (interim ones skipped), then its body. */
static void h1_client_input(struct hconn *c)
{
    struct sock *s = &c->sock;
    while (!s->closing && !s->read_paused) {
        struct pstream *ps = c->cur;
        if (!ps) {
            if (sock_in_len(s) || s->eof_in || s->err)
                hc_close(c, sock_in_len(s) != 0, "idle upstream connection closed or spoke");
            return;
        }
        if (!c->dec_on) {
            if (!sock_in_len(s)) {
                if (s->eof_in || s->err)
                    ps_upstream_failed(ps, RETRY_OUT_RESET);
                return;
            }
            struct h1_header hv[HTTP_H1_MAX_FIELDS];
            struct h1_response resp = {.msg = {.headers = hv, .headers_cap = HTTP_H1_MAX_FIELDS}};
            ssize_t n = h1_parse_response(&c->p1, sock_in(s), sock_in_len(s), ps->method_id, &resp);
            if (n == -EAGAIN) {
                if (s->eof_in || s->err)
                    ps_upstream_failed(ps, RETRY_OUT_RESET);
                return;
            }
            if (n < 0) {
                log_debug("upstream HTTP/1.1 response: %s", h1_error_str((int)n));
                c->close_after = true;
                ps_upstream_failed(ps, RETRY_OUT_RESET);
                return;
            }
            sock_consume(s, (size_t)n);
            if (h1_status_is_interim(resp.status))
                continue;
            if (!(resp.msg.flags & H1_F_KEEP_ALIVE))
                c->close_after = true;
            int e = stream_from_h1_response(&ps->resp, &resp);
            if (e < 0) {
                c->close_after = true;
                ps_upstream_failed(ps, RETRY_OUT_RESET);
                return;
            }
            h1_decoder_init(&c->dec, resp.msg.body, resp.msg.content_length);
            c->dec.trailers = c->trailers;
            c->dec.trailers_cap = HTTP_H1_MAX_FIELDS;
            c->dec_on = true;
            if (resp.msg.body == H1_BODY_TUNNEL && resp.status == 101) {
                ps_response_head(ps); /* the proxy sends the 101 and joins the tunnel */
                return;
            }
            ps_response_head(ps);
            continue;
        }
        const char *data;
        size_t dlen;
        if (!h1_decoder_is_done(&c->dec)) {
            if (!sock_in_len(s)) {
                if (s->eof_in) {
                    c->close_after = true;
                    c->dec_on = false;
                    if (h1_decoder_eof(&c->dec) < 0)
                        ps_upstream_failed(ps, RETRY_OUT_RESET);
                    else
                        ps_response_end(ps);
                } else if (s->err) {
                    c->dec_on = false;
                    ps_upstream_failed(ps, RETRY_OUT_RESET);
                }
                return;
            }
            ssize_t n = h1_decoder_feed(&c->dec, sock_in(s), sock_in_len(s), &data, &dlen);
            if (n == -EAGAIN) {
                if (s->eof_in || s->err) { /* closed inside the trailer section */
                    c->dec_on = false;
                    c->close_after = true;
                    ps_upstream_failed(ps, RETRY_OUT_RESET);
                }
                return;
            }
            if (n < 0) {
                c->dec_on = false;
                c->close_after = true;
                ps_upstream_failed(ps, RETRY_OUT_RESET);
                return;
            }
            sock_consume(s, (size_t)n);
            if (dlen)
                ps_response_data(ps, data, dlen);
            if (c->cur != ps || !h1_decoder_is_done(&c->dec))
                continue;
        }
        c->dec_on = false;
        if (c->dec.num_trailers) {
            if (trailers_begin(&ps->ptr) == 0 &&
                stream_trailers_from_h1(&ps->ptr, c->dec.trailers, c->dec.num_trailers) == 0)
                ps_response_trailers(ps);
        }
        if (c->cur == ps)
            ps_response_end(ps);
        return;
    }
}

/* ---- the tunnel after a 101 ---- */

/* Both sides said FIN and everything queued has been sent: the tunnel is over. */
static void tunnel_maybe_done(struct hconn *c)
{
    struct hconn *p = c->peer;
    if (p && c->tunnel_eof && p->tunnel_eof && sock_queued(&c->sock) == 0 &&
        sock_queued(&p->sock) == 0) {
        hc_close(c, false, "tunnel done");
        hc_close(p, false, "tunnel done");
    }
}

static void tunnel_input(struct hconn *c)
{
    struct sock *s = &c->sock;
    struct hconn *p = c->peer;
    if (!p) {
        if (c->close_after && sock_queued(s) == 0)
            hc_close(c, false, "answered and closed");
        return;
    }
    if (s->err) {
        hc_close(p, true, "tunnel peer reset");
        hc_close(c, true, "tunnel reset");
        return;
    }
    if (sock_in_len(s)) {
        if (sock_write(&p->sock, sock_in(s), sock_in_len(s)) < 0) {
            hc_close(p, true, "out of memory");
            hc_close(c, true, "out of memory");
            return;
        }
        sock_consume(s, sock_in_len(s));
        if (sock_queued(&p->sock) > HTTP_BODY_MARK)
            sock_pause_read(s, true);
    }
    if (s->eof_in && !c->tunnel_eof) {
        c->tunnel_eof = true;
        sock_shutdown(&p->sock); /* the FIN follows the bytes still queued */
    }
    tunnel_maybe_done(c);
}

void hc_tunnel(struct hconn *down, struct hconn *up)
{
    down->mode = up->mode = HM_TUNNEL;
    down->peer = up;
    up->peer = down;
    down->cur = up->cur = NULL;
    pool_remove(up);
    sock_pause_read(&down->sock, false);
    sock_pause_read(&up->sock, false);
    sock_read_start(&down->sock);
    sock_read_start(&up->sock);
    tunnel_input(down);
    tunnel_input(up);
}

/* ---- mTLS on a downstream connection ---- */

/* The server side's handshake: false while it runs or once it failed (logged with the
 * peer and the reason, counted, closed). When it is done, a peer that asked for a TCP
 * tunnel (ALPN ringmesh-tcp) gets one to the app. */
static bool hc_tls_ready(struct hconn *c)
{
    struct sock *s = &c->sock;
    if (!tls_conn_established(s->tls)) {
        if (s->err || s->eof_in) {
            char a[ADDR_STRLEN] = "?";
            if (c->src.ss_family != AF_UNSPEC)
                addr_format((struct sockaddr *)&c->src, a);
            http_stat(c->w, c->dir, STATS_TLS_FAIL);
            http_stat(c->w, c->dir, STATS_TLS_FAIL_UNTRUSTED + tls_conn_fail(s->tls));
            log_warn("mTLS from %s: handshake failed: %s", a, tls_conn_reason(s->tls));
            hc_close(c, true, "TLS handshake failed");
        }
        return false;
    }
    if (!c->tls_counted) {
        c->tls_counted = true;
        http_stat(c->w, c->dir, STATS_TLS_HANDSHAKE);
        if (tls_conn_resumed(s->tls))
            http_stat(c->w, c->dir, STATS_TLS_RESUMED);
        if (strcmp(tls_conn_alpn(s->tls), TLS_ALPN_TCP) == 0) {
            hc_tcp_to_app(c);
            return false;
        }
    }
    return true;
}

/* ---- the socket's callbacks ---- */

static void hc_process(struct hconn *c)
{
    struct sock *s = &c->sock;
    if (s->closing)
        return;
    switch (c->mode) {
    case HM_DETECT: {
        if (s->tls && !hc_tls_ready(c))
            return;
        size_t n = sock_in_len(s), k = n < 24 ? n : 24;
        if (!n && !s->eof_in && !s->err)
            return;
        if (n && n < 24 && memcmp(sock_in(s), h2_preface, k) == 0 && !s->eof_in && !s->err)
            return; /* a prefix of the preface: wait */
        if (n >= 24 && memcmp(sock_in(s), h2_preface, 24) == 0) {
            if (hc_start_h2(c) < 0) {
                hc_close(c, true, "no memory for HTTP/2");
                return;
            }
            http_stat(c->w, c->dir, STATS_CX_HTTP2);
        } else {
            if (!n && (s->eof_in || s->err)) {
                hc_close(c, false, "closed before a request");
                return;
            }
            if (!n)
                return;
            c->mode = HM_H1;
            h1_parser_init(&c->p1, NULL);
            http_stat(c->w, c->dir, STATS_CX_HTTP1);
        }
        hc_process(c);
        return;
    }
    case HM_H1:
        if (c->client)
            h1_client_input(c);
        else
            h1_server_input(c);
        if (!c->client && !s->closing && s->err)
            hc_close(c, true, "downstream error");
        break;
    case HM_H2:
        if (sock_in_len(s)) {
            c->flushing = true; /* submits from the callbacks are flushed once, below */
            ssize_t n = h2_conn_recv(c->h2, (const uint8_t *)sock_in(s), sock_in_len(s),
                                     loop_now_ms(c->w->loop));
            c->flushing = false;
            if (n < 0) {
                log_debug("HTTP/2 connection %lu: %s", (unsigned long)c->id, h2_conn_reason(c->h2));
                http_stat(c->w, c->dir, STATS_H2_CONN_ERROR);
                c->close_after = true;
                sock_consume(s, sock_in_len(s));
                h2_flush(c);
                sock_shutdown(s);
                sock_pause_read(s, true);
                if (sock_queued(s) == 0)
                    hc_close(c, false, "HTTP/2 connection error");
                return;
            }
            sock_consume(s, (size_t)n);
        }
        if (s->eof_in || s->err) {
            hc_close(c, s->err != 0,
                     s->err ? strerror(-s->err) : "peer closed the HTTP/2 connection");
            return;
        }
        h2_flush(c);
        break;
    case HM_TUNNEL:
        tunnel_input(c);
        break;
    }
}

/* Downstream bytes into the per-direction counters, as the relay counts them. */
static void hc_count_bytes(struct hconn *c)
{
    if (c->client)
        return;
    struct sock *s = &c->sock;
    if (s->bytes_in > c->bytes_counted_in) {
        STATS_ADD(&c->w->stats.cx[c->dir][STATS_BYTES_RX], s->bytes_in - c->bytes_counted_in);
        c->bytes_counted_in = s->bytes_in;
    }
    if (s->bytes_out > c->bytes_counted_out) {
        STATS_ADD(&c->w->stats.cx[c->dir][STATS_BYTES_TX], s->bytes_out - c->bytes_counted_out);
        c->bytes_counted_out = s->bytes_out;
    }
}

static void hc_readable(struct sock *s)
{
    hc_count_bytes(s->owner);
    hc_process(s->owner);
}

static void hc_writable(struct sock *s)
{
    struct hconn *c = s->owner;
    hc_count_bytes(c);
    if (c->mode == HM_H2) {
        h2_flush(c);
        return;
    }
    if (c->mode == HM_TUNNEL) {
        if (c->peer) {
            sock_pause_read(&c->peer->sock, false);
            tunnel_maybe_done(c);
        } else if (c->close_after && sock_queued(s) == 0)
            hc_close(c, false, "answered");
        return;
    }
    if (c->cur) {
        if (c->client)
            ps_upstream_writable(c->cur);
        else
            ps_downstream_writable(c->cur);
    } else if (c->close_after && sock_queued(s) == 0) {
        hc_close(c, false, "done");
    }
}

static void hc_closed(struct sock *s)
{
    struct hconn *c = s->owner;
    hc_count_bytes(c);
    if (c->m_tcp)
        relay_tcp_metrics(c->w, c->dir, c->m_ns, c->svc, c->m_peer_id, s->bytes_in,
                          s->bytes_out, false);
    free(c->m_peer_id);
    hc_unlink(c);
    h2_conn_free(c->h2);
    if (c->cluster) {
        c->cluster->up_cx--;
        cluster_release(&c->w->clusters, c->cluster);
    }
    if (c->counted_cx) {
        atomic_fetch_sub_explicit(&c->w->sc->active_cx, 1, memory_order_relaxed);
        http_stat(c->w, c->dir, STATS_CX_CLOSED);
    }
    free(c);
}

/* Closes c: its streams learn that it is gone first. */
static void hc_close(struct hconn *c, bool reset, const char *why)
{
    if (c->closing)
        return;
    c->closing = true;
    log_debug("HTTP %s connection %lu (%s): closing%s: %s", c->client ? "upstream" : "downstream",
              (unsigned long)c->id, stats_dir_name(c->dir), reset ? " with reset" : "", why);
    struct pool *p = c->pool;
    pool_remove(c);
    if (c->cluster) { /* its slot is free for a waiter now, not when the close completes */
        c->cluster->up_cx--;
        cluster_release(&c->w->clusters, c->cluster);
        c->cluster = NULL;
    }
    if (c->peer) {
        struct hconn *peer = c->peer;
        c->peer = NULL;
        peer->peer = NULL;
        hc_close(peer, reset, "tunnel peer closed");
    }
    if (c->cur) {
        struct pstream *ps = c->cur;
        c->cur = NULL;
        if (c->client) {
            if (ps->uc == c) {
                ps_upstream_failed(ps, RETRY_OUT_RESET);
                if (ps->uc == c)
                    ps->uc = NULL;
            }
        } else if (ps->dc == c) {
            ps_downstream_gone(ps);
            ps->dc = NULL;
        }
    }
    if (c->h2) {
        /* Every stream still open learns it now; nghttp2 is not asked again. */
        struct http_worker *hw = c->w->http;
        for (struct pstream *ps = hw->streams, *next; ps; ps = next) {
            next = ps->next;
            if (c->client && ps->uc == c) {
                ps_upstream_failed(ps, RETRY_OUT_RESET);
                if (ps->uc == c)
                    ps->uc = NULL;
            } else if (!c->client && ps->dc == c) {
                ps_downstream_gone(ps);
                ps->dc = NULL;
            }
        }
    }
    sock_close(&c->sock, reset);
    if (p)
        pool_dispatch(p); /* waiters may get a new connection */
}

/* ---- downstream: the proxy layer's calls ---- */

void http_adopt(struct worker *w, enum stats_dir dir, int fd, const struct sockaddr_storage *dst,
                socklen_t dst_len, const char *early, size_t early_len, bool tls)
{
    struct hconn *c = hc_new(w, fd, dir, false);
    if (!c) {
        close(fd);
        atomic_fetch_sub_explicit(&w->sc->active_cx, 1, memory_order_relaxed);
        http_stat(w, dir, STATS_CX_ALLOC_FAIL);
        http_stat(w, dir, STATS_CX_CLOSED);
        return;
    }
    c->counted_cx = true;
    c->dst = *dst;
    c->dst_len = dst_len;
    c->mode = HM_DETECT;
    socklen_t sl = sizeof(c->src);
    if (getpeername(fd, (struct sockaddr *)&c->src, &sl) < 0)
        c->src.ss_family = AF_UNSPEC;
    if (dir == STATS_INBOUND)
        c->app = http_local_app_proto(w->snap, dst, c->svc, sizeof(c->svc));
    if (tls) { /* mTLS from a peer sidecar: what follows is plaintext to the codecs */
        char err[256];
        if (!w->tls ||
            sock_tls_start(&c->sock, w->tls, true, NULL, NULL, NULL, 0, NULL, err, sizeof(err)) < 0) {
            log_warn("inbound mTLS: %s", w->tls ? err : "no credentials");
            hc_close(c, true, "no TLS session");
            return;
        }
        http_stat(w, dir, STATS_CX_MTLS);
    }
    if (early_len && sock_push_input(&c->sock, early, early_len) < 0) {
        hc_close(c, true, "out of memory");
        return;
    }
    c->bytes_counted_in = c->sock.bytes_in; /* the relay counted what it sniffed */
    sock_read_start(&c->sock);
    hc_process(c);
}

int hc_response_head(struct hconn *c, struct pstream *ps, bool end)
{
    if (c->mode == HM_H2) {
        struct h2_head hd;
        int e = stream_to_h2(&ps->resp, &hd);
        if (e < 0)
            return e;
        e = h2_submit_response(c->h2, ps->dsid, ps->resp.status, hd.headers, hd.num_headers, !end);
        h2_flush(c);
        return e;
    }
    c->out_fr = stream_h1_framing(&ps->resp, ps->req.method, ps->req.method_len, ps->peer_minor);
    if (c->close_after || (c->w->http->drain_dirs & (1u << c->dir)))
        c->close_after = true;
    if (c->out_fr == STREAM_FRAME_CLOSE)
        c->close_after = true;
    if (c->close_after && ps->resp.status != 101) /* a 101 says Connection: upgrade */
        ps->resp.flags |= STREAM_F_CLOSE;
    char *p = sock_reserve(&c->sock, HTTP_H1_HEAD_ROOM);
    if (!p)
        return -ENOMEM;
    ssize_t n = stream_write_h1_response(&ps->resp, c->out_fr, p, HTTP_H1_HEAD_ROOM);
    if (n < 0)
        return (int)n;
    sock_commit(&c->sock, (size_t)n);
    c->out_open = !end && c->out_fr != STREAM_FRAME_NONE;
    return 0;
}

/* HTTP/1.1 body bytes in the connection's framing. */
static int h1_body(struct hconn *c, const char *p, size_t n)
{
    if (!n)
        return 0;
    if (c->out_fr == STREAM_FRAME_CHUNKED) {
        char hdr[32];
        ssize_t k = h1_write_chunk_header(hdr, sizeof(hdr), n);
        if (k < 0 || sock_write(&c->sock, hdr, (size_t)k) < 0 || sock_write(&c->sock, p, n) < 0 ||
            sock_write(&c->sock, H1_CRLF, 2) < 0)
            return -ENOMEM;
        return 0;
    }
    if (c->out_fr == STREAM_FRAME_NONE)
        return 0;
    return sock_write(&c->sock, p, n);
}

static int h1_body_end(struct hconn *c, struct stream_head *trailers)
{
    if (!c->out_open)
        return 0;
    c->out_open = false;
    if (c->out_fr != STREAM_FRAME_CHUNKED)
        return 0;
    char *p = sock_reserve(&c->sock, HTTP_H1_HEAD_ROOM);
    if (!p)
        return -ENOMEM;
    ssize_t n = stream_write_h1_last_chunk(trailers, p, HTTP_H1_HEAD_ROOM);
    if (n < 0)
        n = stream_write_h1_last_chunk(NULL, p, HTTP_H1_HEAD_ROOM);
    if (n < 0)
        return (int)n;
    sock_commit(&c->sock, (size_t)n);
    return 0;
}

/* ---- a body on either role: the stream is sid on HTTP/2, the connection on HTTP/1.1 ---- */

static int body_data(struct hconn *c, int32_t sid, const char *p, size_t n, bool end)
{
    if (c->mode == HM_H2) {
        int e = h2_submit_data(c->h2, sid, p, n, end);
        h2_flush(c);
        return e;
    }
    int e = h1_body(c, p, n);
    if (e == 0 && end)
        e = h1_body_end(c, NULL);
    return e;
}

static int body_trailers(struct hconn *c, int32_t sid, struct stream_head *t)
{
    if (c->mode == HM_H2) {
        struct h2_head hd;
        int e = stream_to_h2(t, &hd);
        if (e == 0)
            e = h2_submit_trailers(c->h2, sid, hd.headers, hd.num_headers);
        h2_flush(c);
        return e;
    }
    return h1_body_end(c, stream_h1_can_carry_trailers(c->out_fr) ? t : NULL);
}

static size_t body_room(struct hconn *c, int32_t sid)
{
    size_t q = c->mode == HM_H2 ? h2_stream_queued(c->h2, sid) : sock_queued(&c->sock);
    return q < HTTP_BODY_MARK ? HTTP_BODY_MARK - q : 0;
}

static void body_consumed(struct hconn *c, int32_t sid, size_t n)
{
    if (c->mode == HM_H2 && n && !c->closing) {
        h2_stream_consumed(c->h2, sid, n);
        h2_flush(c);
    }
}

/* HTTP/1.1 only (HTTP/2 has its windows): stop or resume reading; bytes already read may
 * be waiting when it resumes. */
static void conn_pause(struct hconn *c, bool pause)
{
    if (c->mode == HM_H1) {
        sock_pause_read(&c->sock, pause);
        if (!pause)
            hc_process(c);
    }
}

int hc_response_data(struct hconn *c, struct pstream *ps, const char *p, size_t n, bool end)
{
    return body_data(c, ps->dsid, p, n, end);
}

int hc_response_trailers(struct hconn *c, struct pstream *ps)
{
    return body_trailers(c, ps->dsid, &ps->ptr);
}

size_t hc_response_room(struct hconn *c, struct pstream *ps)
{
    return body_room(c, ps->dsid);
}

void hc_consumed(struct hconn *c, struct pstream *ps, size_t n)
{
    body_consumed(c, ps->dsid, n);
}

void hc_pause(struct hconn *c, bool pause)
{
    conn_pause(c, pause);
}

void hc_continue(struct hconn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (c->mode == HM_H1)
        sock_write(&c->sock, cont, sizeof(cont) - 1);
}

void hc_reset(struct hconn *c, struct pstream *ps, uint32_t h2_code)
{
    if (c->mode == HM_H2) {
        h2_reset_stream(c->h2, ps->dsid, h2_code);
        h2_flush(c);
        return;
    }
    /* HTTP/1.1: a response cut short can only be told by closing without its end */
    c->cur = NULL;
    hc_close(c, true, "response failed after it started");
}

void hc_detach(struct hconn *c, struct pstream *ps)
{
    ps->dc = NULL;
    if (c->mode == HM_H2) {
        h2_stream_set_user(c->h2, ps->dsid, NULL);
        return;
    }
    if (c->cur != ps)
        return;
    c->cur = NULL;
    if (c->dec_on && !h1_decoder_is_done(&c->dec)) /* the response ended first: the rest of
                                                    * the request is unread */
        c->close_after = true;
    c->dec_on = false;
    if (c->close_after) {
        sock_shutdown(&c->sock);
        if (sock_queued(&c->sock) == 0)
            hc_close(c, false, "exchange done, not kept alive");
        return;
    }
    sock_pause_read(&c->sock, false); /* a pause for the stream's backlog ends with it */
    hc_process(c);                    /* a pipelined request may be waiting */
}

void hc_forget(struct hconn *c, struct pstream *ps)
{
    ps->dc = NULL;
    if (c->mode == HM_H2) { /* the stream is closed already (the usual case) or the caller
                             * resets it */
        h2_stream_set_user(c->h2, ps->dsid, NULL);
        return;
    }
    if (c->cur != ps)
        return;
    c->cur = NULL;
    c->dec_on = false;
    c->close_after = true;
    hc_close(c, true, "exchange abandoned");
}

/* ---- upstream pools ---- */

static uint64_t addr_hash(const struct sockaddr_storage *a, socklen_t len, bool h2, bool tls,
                          int dir)
{
    return lb_hash(a, len) ^ (h2 ? 0x9e3779b97f4a7c15ull : 0) ^ (tls ? 0x5851f42d4c957f2dull : 0) ^
           (uint64_t)dir;
}


static struct pool *pool_find(struct http_worker *hw, const struct sockaddr_storage *a,
                              socklen_t len, bool h2, bool tls, uint64_t idh, enum stats_dir dir,
                              bool create)
{
    size_t b = (addr_hash(a, len, h2, tls, dir) ^ idh) % hw->npools;
    for (struct pool *p = hw->pools[b]; p; p = p->next)
        if (p->h2 == h2 && p->tls == tls && p->idh == idh && p->dir == dir &&
            p->addr_len == len && memcmp(&p->addr, a, len) == 0)
            return p;
    if (!create)
        return NULL;
    struct pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    memcpy(&p->addr, a, len);
    p->addr_len = len;
    p->h2 = h2;
    p->tls = tls;
    p->idh = idh;
    p->dir = dir;
    p->next = hw->pools[b];
    hw->pools[b] = p;
    return p;
}

static void pool_remove(struct hconn *c)
{
    struct pool *p = c->pool;
    if (!p)
        return;
    if (c->pprev)
        c->pprev->pnext = c->pnext;
    else
        p->conns = c->pnext;
    if (c->pnext)
        c->pnext->pprev = c->pprev;
    p->nconns--;
    if (!c->connected)
        p->connecting--;
    c->pool = NULL;
}

/* The upstream socket: inbound requests leave from 127.0.0.6 (::6), as relays do. Out of
 * descriptors, the worker stops accepting for a while: each accepted connection would
 * need one more and fail the same way. */
int http_upstream_socket(struct worker *w, const struct sockaddr_storage *dst, enum stats_dir dir)
{
    int one = 1, fam = dst->ss_family;
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        if (e == EMFILE || e == ENFILE)
            worker_pause_accept(w, e);
        return -e;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (dir == STATS_INBOUND) {
        struct sockaddr_storage src;
        socklen_t slen;
        memset(&src, 0, sizeof(src));
        if (fam == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&src;
            s4->sin_family = AF_INET;
            s4->sin_addr.s_addr = htonl(0x7f000006);
            slen = sizeof(*s4);
        } else {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&src;
            s6->sin6_family = AF_INET6;
            s6->sin6_addr.s6_addr[15] = 6;
            slen = sizeof(*s6);
        }
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&src, slen) < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
    }
    return fd;
}

static struct hconn *pool_open(struct worker *w, struct pool *p, struct cluster *cl)
{
    int fd = http_upstream_socket(w, &p->addr, p->dir);
    if (fd < 0)
        return NULL;
    struct hconn *c = hc_new(w, fd, p->dir, true);
    if (!c) {
        close(fd);
        return NULL;
    }
    c->mode = p->h2 ? HM_H2 : HM_H1;
    c->pool = p;
    c->pnext = p->conns;
    if (p->conns)
        p->conns->pprev = c;
    p->conns = c;
    p->nconns++;
    p->connecting++;
    if (cl) {
        c->cluster = cl;
        cluster_hold(cl);
        cl->up_cx++;
    }
    http_stat(w, p->dir, STATS_UPSTREAM_CX_HTTP);
    if (p->tls) {
        char err[256], peer[ADDR_STRLEN];
        addr_format((struct sockaddr *)&p->addr, peer);
        if (!w->tls ||
            sock_tls_start(&c->sock, w->tls, false, cl ? cl->sni : NULL,
                           p->h2 ? TLS_ALPN_H2 : "http/1.1", cl ? cl->want_ids : NULL,
                           cl ? cl->n_want_ids : 0, peer, err, sizeof(err)) < 0) {
            log_warn("mTLS to a peer: %s", w->tls ? err : "no credentials");
            hc_close(c, true, "no TLS session");
            return NULL;
        }
    }
    if (sock_connect(&c->sock, (struct sockaddr *)&p->addr, p->addr_len,
                     w->sc->opts.connect_timeout_ms) < 0) {
        hc_close(c, true, "cannot start connect");
        return NULL;
    }
    return c;
}

static bool up_usable(const struct hconn *c)
{
    return c->connected && !c->closing && !c->goaway && !c->close_after;
}

/* Gives ps the connection c (one more stream on it). */
static void pool_give(struct hconn *c, struct pstream *ps)
{
    c->nstreams++;
    if (c->mode == HM_H1) {
        c->idle = false;
        c->cur = ps;
    }
    ps_upstream_ready(ps, c);
}

static void wait_push(struct pool *p, struct pstream *ps)
{
    ps->pool = p;
    ps->wnext = NULL;
    if (p->wait_tail)
        p->wait_tail->wnext = ps;
    else
        p->wait_head = ps;
    p->wait_tail = ps;
    p->nwait++;
    if (ps->cluster) {
        ps->cluster->pending++;
        ps->counted_pending = true;
    }
}

static struct pstream *wait_pop(struct pool *p)
{
    struct pstream *ps = p->wait_head;
    if (!ps)
        return NULL;
    p->wait_head = ps->wnext;
    if (!p->wait_head)
        p->wait_tail = NULL;
    p->nwait--;
    ps->pool = NULL;
    ps->wnext = NULL;
    if (ps->counted_pending) {
        ps->cluster->pending--;
        ps->counted_pending = false;
    }
    return ps;
}

void pool_unwait(struct pstream *ps)
{
    struct pool *p = ps->pool;
    if (!p)
        return;
    struct pstream **pp = &p->wait_head, *prev = NULL;
    for (; *pp; prev = *pp, pp = &(*pp)->wnext)
        if (*pp == ps) {
            *pp = ps->wnext;
            if (p->wait_tail == ps)
                p->wait_tail = prev;
            p->nwait--;
            break;
        }
    ps->pool = NULL;
    ps->wnext = NULL;
    if (ps->counted_pending) {
        ps->cluster->pending--;
        ps->counted_pending = false;
    }
}

/* A connection with room for one more stream, or NULL. */
static struct hconn *pool_ready(struct pool *p)
{
    for (struct hconn *c = p->conns; c; c = c->pnext) {
        if (!up_usable(c))
            continue;
        if (p->h2 ? c->nstreams < HTTP_H2_STREAMS : c->idle)
            return c;
    }
    return NULL;
}

/* Hands waiting requests the connections that have room; opens more when allowed. */
static void pool_dispatch(struct pool *p)
{
    if (p->dispatching) /* a connect failing at once closes a connection, which dispatches */
        return;
    p->dispatching = true;
    pool_dispatch_once(p);
    p->dispatching = false;
}

static void pool_dispatch_once(struct pool *p)
{
    while (p->wait_head) {
        struct hconn *c = pool_ready(p);
        if (!c)
            break;
        pool_give(c, wait_pop(p));
    }
    if (!p->wait_head)
        return;
    /* Still waiting: one more connection if none is on its way for them. */
    uint32_t expect = p->h2 ? p->connecting * HTTP_H2_STREAMS : p->connecting;
    if (p->nwait > expect) {
        struct pstream *ps = p->wait_head;
        struct cluster *cl = ps->cluster;
        if (!cl || cl->up_cx < cl->max_connections)
            pool_open(ps->w, p, cl);
    }
    if (!p->connecting && !pool_ready(p) && p->nconns == 0) {
        /* Nothing can serve them (no connection and none may be opened). */
        while (p->wait_head)
            ps_upstream_failed(wait_pop(p), RETRY_OUT_OVERFLOW);
    }
}

int pool_acquire(struct worker *w, struct pstream *ps, const struct sockaddr_storage *addr,
                 socklen_t len, bool h2, bool tls, struct hconn **out)
{
    struct http_worker *hw = http_of(w);
    struct cluster *cl = ps->cluster;
    struct pool *p =
        hw ? pool_find(hw, addr, len, h2, tls, tls && cl ? cl->want_hash : 0, ps->dir, true) : NULL;
    *out = NULL;
    if (!p)
        return -ENOMEM;
    if (!p->wait_head) {
        struct hconn *c = pool_ready(p);
        if (c) {
            c->nstreams++;
            if (c->mode == HM_H1) {
                c->idle = false;
                c->cur = ps;
            }
            *out = c;
            return 0;
        }
    }
    if (cl && cl->pending >= cl->max_pending)
        return -EOVERFLOW;
    if (cl && cl->up_cx >= cl->max_connections && !p->connecting) {
        /* at the connection limit: HTTP/2 may still share a busy connection */
        if (!p->h2 || !p->nconns)
            return p->nconns ? (wait_push(p, ps), 0) : -EOVERFLOW;
        for (struct hconn *c = p->conns; c; c = c->pnext)
            if (up_usable(c)) {
                c->nstreams++;
                *out = c;
                return 0;
            }
        return -EOVERFLOW;
    }
    wait_push(p, ps);
    pool_dispatch(p);
    return 0;
}

static void hc_connected(struct sock *s, int res)
{
    struct hconn *c = s->owner;
    struct pool *p = c->pool;
    if (res < 0) {
        char a[ADDR_STRLEN];
        if (c->sock.tls && res == -ECONNREFUSED && c->sock.bytes_in) {
            /* TCP was up: the TLS handshake failed, and says why */
            http_stat(c->w, c->dir, STATS_TLS_FAIL);
            http_stat(c->w, c->dir, STATS_TLS_FAIL_UNTRUSTED + tls_conn_fail(c->sock.tls));
            log_warn("mTLS to %s: handshake failed: %s",
                     addr_format((struct sockaddr *)&c->sock.peer, a),
                     tls_conn_reason(c->sock.tls));
        } else {
            log_debug("HTTP upstream connection %lu: connect: %s", (unsigned long)c->id,
                      strerror(-res));
        }
        http_stat(c->w, c->dir,
                  res == -ETIMEDOUT ? STATS_CX_CONNECT_TIMEOUT : STATS_CX_CONNECT_FAIL);
        pool_remove(c);
        if (c->mode == HM_TUNNEL && c->peer) {
            struct hconn *down = c->peer;
            c->peer = NULL;
            down->peer = NULL;
            hc_close(down, true, "tunnel upstream connect failed");
        }
        c->closing = true; /* no dispatch to it */
        /* Its waiters fail (they may retry elsewhere) unless another connect is on its way. */
        if (p && !p->connecting) {
            while (p->wait_head)
                ps_upstream_failed(wait_pop(p), RETRY_OUT_CONNECT_FAILURE);
        }
        sock_close(s, true);
        return;
    }
    c->connected = true;
    if (p)
        p->connecting--;
    if (c->sock.tls) {
        http_stat(c->w, c->dir, STATS_TLS_HANDSHAKE);
        if (tls_conn_resumed(c->sock.tls))
            http_stat(c->w, c->dir, STATS_TLS_RESUMED);
    }
    if (c->mode == HM_H2 && hc_start_h2(c) < 0) {
        hc_close(c, true, "no memory for HTTP/2");
        return;
    }
    if (c->mode == HM_H1) {
        h1_parser_init(&c->p1, NULL);
        c->idle = true;
        c->idle_since_ms = loop_now_ms(c->w->loop);
    }
    sock_read_start(s);
    if (c->mode == HM_TUNNEL) {
        if (c->peer)
            tunnel_input(c->peer);
        return;
    }
    if (p)
        pool_dispatch(p);
    h2_flush(c);
}

/* ---- upstream: the proxy layer's calls ---- */

int uc_request_head(struct hconn *c, struct pstream *ps, bool end)
{
    if (c->mode == HM_H2) {
        struct h2_head hd;
        int e = stream_to_h2(&ps->req, &hd);
        if (e < 0)
            return e;
        int32_t sid = h2_submit_request(c->h2, &hd, !end, ps);
        if (sid < 0)
            return sid;
        ps->usid = sid;
        h2_flush(c);
        return 0;
    }
    ps->usid = 0;
    c->out_fr = stream_h1_framing(&ps->req, NULL, 0, 1);
    if (ps->upgrade)
        c->out_fr = STREAM_FRAME_NONE;
    char *p = sock_reserve(&c->sock, HTTP_H1_HEAD_ROOM);
    if (!p)
        return -ENOMEM;
    ssize_t n = stream_write_h1_request(&ps->req, c->out_fr, p, HTTP_H1_HEAD_ROOM);
    if (n < 0)
        return (int)n;
    sock_commit(&c->sock, (size_t)n);
    c->out_open = !end && c->out_fr != STREAM_FRAME_NONE;
    c->dec_on = false;
    h1_parser_reset(&c->p1);
    return 0;
}

int uc_request_data(struct hconn *c, struct pstream *ps, const char *p, size_t n, bool end)
{
    return body_data(c, ps->usid, p, n, end);
}

int uc_request_trailers(struct hconn *c, struct pstream *ps)
{
    return body_trailers(c, ps->usid, &ps->rtr);
}

size_t uc_request_room(struct hconn *c, struct pstream *ps)
{
    return body_room(c, ps->usid);
}

void uc_consumed(struct hconn *c, struct pstream *ps, size_t n)
{
    body_consumed(c, ps->usid, n);
}

void uc_pause(struct hconn *c, bool pause)
{
    conn_pause(c, pause);
}

/*
 * Whether a stream abandoned on a pooled HTTP/2 connection may be cancelled with
 * RST_STREAM. A client that opens and resets streams as fast as it can (rapid reset,
 * CVE-2023-44487) would have every reset forwarded on the shared connection to the peer
 * sidecar, whose own rapid-reset defence would then close that connection and every
 * innocent request on it. So each pooled connection sends at most HTTP_UP_RST_PER_S
 * resets a second (the peer allows H2_DEFAULT_RAPID_RESET_MAX); past that, an abandoned
 * stream whose request is complete is left to finish and its response is dropped, while
 * the attacker's own connection is cut by our downstream limit. A stream with its request
 * still unfinished is always reset (leaving it would hold the peer's stream open).
 */
#define HTTP_UP_RST_PER_S (H2_DEFAULT_RAPID_RESET_MAX / 2)
static bool up_rst_allowed(struct hconn *c, const struct pstream *ps)
{
    uint64_t now = loop_now_ms(c->w->loop);
    if (now - c->rst_window_ms >= 1000) {
        c->rst_window_ms = now;
        c->rst_count = 0;
    }
    if (c->rst_count < HTTP_UP_RST_PER_S || !ps->req_sent) {
        c->rst_count++;
        return true;
    }
    http_stat(c->w, c->dir, STATS_RQ_CANCEL_SKIPPED);
    return false;
}

void uc_detach(struct hconn *c, struct pstream *ps, bool cancel)
{
    if (ps->uc != c)
        return;
    ps->uc = NULL;
    c->nstreams--;
    if (c->mode == HM_H2) {
        h2_stream_set_user(c->h2, ps->usid, NULL);
        if (cancel && !up_rst_allowed(c, ps))
            cancel = false; /* left to finish; its response is dropped as it comes */
        if (cancel) {
            h2_reset_stream(c->h2, ps->usid, H2_CANCEL);
            h2_flush(c);
        }
        if (c->pool)
            pool_dispatch(c->pool);
        return;
    }
    if (c->cur == ps)
        c->cur = NULL;
    log_trace("upstream connection %lu: request %lu done%s%s%s%s%s", (unsigned long)c->id,
              (unsigned long)ps->id, cancel ? ", cancelled" : "", c->close_after ? ", close" : "",
              c->out_open ? ", request unfinished" : "", c->dec_on ? ", response unfinished" : "",
              sock_in_len(&c->sock) ? ", bytes left" : "");
    bool unread = c->dec_on && !h1_decoder_is_done(&c->dec);
    c->dec_on = false;
    if (cancel || c->close_after || c->out_open || unread || sock_in_len(&c->sock)) {
        hc_close(c, cancel, cancel ? "request abandoned" : "not reusable");
        return;
    }
    c->idle = true;
    c->idle_since_ms = loop_now_ms(c->w->loop);
    sock_pause_read(&c->sock, false); /* a pause for the last response's backlog ends */
    if (c->pool)
        pool_dispatch(c->pool);
}

/* ---- the worker's side ---- */

struct http_worker *http_of(struct worker *w)
{
    if (w->http)
        return w->http;
    struct http_worker *hw = calloc(1, sizeof(*hw));
    if (!hw)
        return NULL;
    hw->npools = 256;
    hw->pools = calloc(hw->npools, sizeof(*hw->pools));
    hw->scratch = router_scratch_new();
    if (!hw->pools || !hw->scratch) {
        free(hw->pools);
        router_scratch_free(hw->scratch);
        free(hw);
        return NULL;
    }
    w->http = hw;
    return hw;
}

size_t http_active(const struct worker *w)
{
    return w->http ? w->http->ndown : 0;
}

uint32_t http_upstream_cx(struct worker *w, const struct sockaddr_storage *dst, socklen_t len,
                          uint64_t idh)
{
    struct http_worker *hw = w->http;
    uint32_t n = 0;
    if (!hw || !hw->npools)
        return 0;
    /* the pools an outbound request to dst may use: h2 or not, mTLS (under idh) or not */
    for (int h2 = 0; h2 < 2; h2++)
        for (int tls = 0; tls < 2; tls++) {
            struct pool *p = pool_find(hw, dst, len, h2, tls, tls ? idh : 0, STATS_OUTBOUND, false);
            if (p)
                n += p->nconns;
        }
    return n;
}

void http_sweep(struct worker *w, uint64_t now_ms)
{
    struct http_worker *hw = w->http;
    if (!hw)
        return;
    /* pools of endpoints that went away: nothing in them, nothing waiting */
    for (size_t i = 0; i < hw->npools; i++)
        for (struct pool **pp = &hw->pools[i]; *pp;) {
            struct pool *p = *pp;
            if (!p->conns && !p->wait_head && !p->dispatching) {
                *pp = p->next;
                free(p);
            } else {
                pp = &p->next;
            }
        }
    unsigned idle = w->sc->opts.idle_timeout_ms;
    for (struct hconn *c = hw->conns, *next; c; c = next) {
        next = c->next;
        if (c->closing)
            continue;
        if (c->client) {
            bool unused = c->mode == HM_H2 ? c->nstreams == 0 : c->idle;
            if (unused && c->connected && now_ms - c->sock.last_active_ms >= HTTP_UP_IDLE_MS)
                hc_close(c, false, "idle upstream connection");
            continue;
        }
        bool quiet = c->mode == HM_H2 ? h2_conn_num_streams(c->h2) == 0 : !c->cur;
        if (idle && (quiet || c->mode == HM_TUNNEL) && now_ms - c->sock.last_active_ms >= idle) {
            http_stat(w, c->dir, STATS_CX_IDLE_TIMEOUT);
            if (c->peer)
                hc_close(c->peer, false, "idle timeout");
            hc_close(c, false, "idle timeout");
        }
    }
}

void http_drain(struct worker *w, unsigned dirs)
{
    struct http_worker *hw = w->http;
    if (!hw)
        return;
    hw->drain_dirs |= dirs;
    for (struct hconn *c = hw->conns, *next; c; c = next) {
        next = c->next;
        if (c->client || c->closing || !(dirs & (1u << c->dir)))
            continue;
        if (c->mode == HM_H2) {
            h2_goaway(c->h2, H2_NO_ERROR);
            h2_flush(c);
        } else if (c->mode == HM_H1 || c->mode == HM_DETECT) {
            c->close_after = true;
            if (!c->cur) { /* what was written still goes out first */
                sock_shutdown(&c->sock);
                if (sock_queued(&c->sock) == 0)
                    hc_close(c, false, "draining");
            }
        }
    }
}

void http_free_all(struct worker *w)
{
    struct http_worker *hw = w->http;
    if (!hw)
        return;
    for (struct hconn *c = hw->conns, *next; c; c = next) {
        next = c->next;
        if (c->sock.fd >= 0)
            close(c->sock.fd);
        h2_conn_free(c->h2);
        free(c->sock.in);
        free(c->sock.out);
        free(c->sock.fly);
        free(c->sock.pt);
        tls_conn_free(c->sock.tls);
        if (c->counted_cx)
            atomic_fetch_sub_explicit(&w->sc->active_cx, 1, memory_order_relaxed);
        free(c);
    }
    ps_free_all(w);
    for (size_t i = 0; i < hw->npools; i++)
        for (struct pool *p = hw->pools[i], *next; p; p = next) {
            next = p->next;
            free(p);
        }
    free(hw->pools);
    router_scratch_free(hw->scratch);
    free(hw);
    w->http = NULL;
}

/* ---- TCP between sidecars over mTLS (ALPN ringmesh-tcp) ---- */

/* Links down to a new upstream connection to addr (plaintext to the app from 127.0.0.6
 * inbound; mTLS to a peer sidecar outbound when sni is set): a byte tunnel once it is
 * connected. What down sent meanwhile waits in the upstream's queue. */
static void tunnel_to(struct hconn *down, const struct sockaddr_storage *addr, socklen_t len,
                      const struct cluster *cl)
{
    const char *sni = cl ? cl->sni : NULL;
    struct worker *w = down->w;
    int fd = http_upstream_socket(w, addr, down->dir);
    struct hconn *up = fd >= 0 ? hc_new(w, fd, down->dir, true) : NULL;
    if (!up) {
        if (fd >= 0)
            close(fd);
        hc_close(down, true, "no upstream socket for the tunnel");
        return;
    }
    char err[256], peer[ADDR_STRLEN];
    addr_format((const struct sockaddr *)addr, peer);
    if (sni && (!w->tls || sock_tls_start(&up->sock, w->tls, false, sni, TLS_ALPN_TCP,
                                          cl->want_ids, cl->n_want_ids, peer, err,
                                          sizeof(err)) < 0)) {
        log_warn("mTLS tunnel: %s", w->tls ? err : "no credentials");
        hc_close(up, true, "no TLS session");
        hc_close(down, true, "no TLS session");
        return;
    }
    down->mode = up->mode = HM_TUNNEL;
    down->peer = up;
    up->peer = down;
    down->cur = NULL;
    if (sock_connect(&up->sock, (const struct sockaddr *)addr, len,
                     w->sc->opts.connect_timeout_ms) < 0) {
        hc_close(down, true, "cannot start connect");
        return;
    }
    tunnel_input(down); /* bytes already decrypted go into up's queue */
}

static void hc_tcp_to_app(struct hconn *c)
{
    const char *why, *peer = c->sock.tls ? tls_conn_peer_id(c->sock.tls) : NULL;
    char buf[300];
    if (!http_inbound_allowed(c->w, c->svc, &c->dst, peer, NULL, 0, NULL, 0, &why, buf,
                              sizeof(buf))) {
        http_stat(c->w, c->dir, STATS_CX_AUTHZ_DENIED);
        log_debug("TCP connection from %s denied: %s", peer ? peer : "?", why);
        hc_close(c, true, "denied by AuthorizationPolicy");
        return;
    }
    c->m_tcp = true;
    snprintf(c->m_ns, sizeof(c->m_ns), "%s", c->w->sc->opts.pod_namespace);
    c->m_peer_id = peer && *peer ? strdup(peer) : NULL;
    relay_tcp_metrics(c->w, c->dir, c->m_ns, c->svc, c->m_peer_id, 0, 0, true);
    tunnel_to(c, &c->dst, c->dst_len, NULL);
}

void http_adopt_tcp(struct worker *w, int fd, const struct sockaddr_storage *dst, socklen_t dst_len,
                    const struct sockaddr_storage *up, socklen_t up_len,
                    const struct cluster *cl, const char *early, size_t early_len)
{
    struct hconn *c = hc_new(w, fd, STATS_OUTBOUND, false);
    if (!c) {
        close(fd);
        atomic_fetch_sub_explicit(&w->sc->active_cx, 1, memory_order_relaxed);
        http_stat(w, STATS_OUTBOUND, STATS_CX_ALLOC_FAIL);
        http_stat(w, STATS_OUTBOUND, STATS_CX_CLOSED);
        return;
    }
    c->counted_cx = true;
    c->dst = *dst;
    c->dst_len = dst_len;
    if (early_len && sock_push_input(&c->sock, early, early_len) < 0) {
        hc_close(c, true, "out of memory");
        return;
    }
    sock_read_start(&c->sock);
    if (cl) { /* the peer's identity is not known yet: the source side counts without it */
        c->m_tcp = true;
        snprintf(c->m_ns, sizeof(c->m_ns), "%s", cl->svc_ns);
        snprintf(c->svc, sizeof(c->svc), "%s", cl->svc_name);
        relay_tcp_metrics(w, c->dir, c->m_ns, c->svc, NULL, 0, 0, true);
    }
    tunnel_to(c, up, up_len, cl);
}
