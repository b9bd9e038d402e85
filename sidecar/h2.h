/*
 * h2.h - one HTTP/2 connection (RFC 9113) over memory buffers, client or server role,
 * wrapping an nghttp2 session driven by nghttp2_session_mem_recv/mem_send. No I/O, no
 * clocks, no global state: the loop feeds bytes it read (h2_conn_recv, with the time as
 * now_ms) and pulls bytes to write (h2_conn_send_pending). One worker thread owns a
 * connection; nothing here locks.
 *
 * Streams reach the proxy through struct h2_callbacks; the proxy answers with h2_submit_*.
 * Callbacks run only inside h2_conn_recv and h2_conn_send_pending; they may call every
 * h2_submit_*, h2_reset_stream, h2_goaway and h2_stream_consumed, never h2_conn_free.
 *
 * Ownership of data:
 * - Received header views (struct h2_head, trailers) point into nghttp2's buffers and are
 *   valid only during the callback; data chunk pointers likewise. Copy what you keep.
 * - h2_submit_data COPIES the bytes into a per-stream queue the connection owns; the
 *   caller's buffer is free on return. Queued bytes leave the queue when nghttp2 frames
 *   them (pulled by the data provider, within the peer's flow-control windows).
 * - h2_submit_request/response/trailers copy names and values (nghttp2 copies headers on
 *   submit; trailers are copied here until the body ends).
 * - h2_conn_send_pending copies out of nghttp2's frame buffer into the caller's buffer:
 *   at most cap bytes per call. Between calls the connection keeps a view of the rest of
 *   the one frame nghttp2 last serialized (nghttp2 keeps it valid until its next
 *   mem_send), so the module never holds more than one frame of output of its own.
 *
 * Flow control (receiving): automatic WINDOW_UPDATE is off. Received DATA counts as
 * "unconsumed" until the proxy says it forwarded it (h2_stream_consumed), and only then
 * are the stream and connection windows reopened. A slow reader therefore stops the
 * sender at the window: at most stream_window bytes per stream and conn_window bytes per
 * connection are ever waiting in the proxy. Defaults: 256 KiB per stream, 1 MiB per
 * connection (enough for ~1 Gbit/s at 8 ms RTT on one connection, and 100 streams cannot
 * pin more than 1 MiB). Bytes still unconsumed when a stream closes are returned to the
 * connection window by the module.
 * Flow control (sending): h2_stream_queued() is what the proxy submitted and the peer's
 * windows have not let out yet; the proxy stops reading the other side while it is over
 * its threshold and resumes on the drained callback. A queue never exceeds
 * max_stream_queue (h2_submit_data fails with -ENOBUFS beyond it, counted).
 *
 * Limits and attacks (struct h2_limits; every refusal is counted in struct h2_stats):
 * - SETTINGS_MAX_CONCURRENT_STREAMS (100): nghttp2 refuses extra streams with
 *   RST_STREAM(REFUSED_STREAM), counted as streams_refused.
 * - Header list of a block: 64 KiB (name + value + 32 per field, RFC 9113 §6.5.2) and
 *   100 fields, advertised as SETTINGS_MAX_HEADER_LIST_SIZE; a stream over either is
 *   reset (RST_STREAM INTERNAL_ERROR from nghttp2), counted.
 * - CONTINUATION flood (CVE-2024-27316 class): a frame-header scanner in front of
 *   nghttp2 sees every frame before nghttp2 does, whatever state nghttp2 is in (nghttp2
 *   1.52 skips its callbacks for CONTINUATIONs of a header block it ignores). More than
 *   max_continuations (8) CONTINUATION frames, or more than max_header_block_len
 *   (128 KiB of HPACK bytes) in one header block -> GOAWAY(ENHANCE_YOUR_CALM) and
 *   -H2_E_CONTINUATION_FLOOD. Nothing past the offending frame header reaches nghttp2.
 * - Rapid reset (CVE-2023-44487), server role: RST_STREAMs from the client on streams
 *   not yet answered, plus streams nghttp2 reset itself (refused, malformed), count
 *   against rapid_reset_max (100) per rapid_reset_window_ms (1000); past it,
 *   GOAWAY(ENHANCE_YOUR_CALM) and -H2_E_RAPID_RESET, processing stops at that frame.
 * - Control-frame flood (CVE-2019-9512/9515/9516/9518 class): PING, SETTINGS and
 *   PRIORITY frames and empty DATA frames without END_STREAM count against control_max
 *   (200) per control_window_ms (1000) -> GOAWAY(ENHANCE_YOUR_CALM), -H2_E_CONTROL_FLOOD.
 *   nghttp2 1.52 itself bounds only queued PING/SETTINGS ACKs of a peer that does not
 *   read (max_outbound_ack, 1000 -> -H2_E_ACK_FLOOD) and SETTINGS entries per frame (32).
 * - Memory: every nghttp2 allocation of the connection goes through a counting allocator
 *   capped at max_session_mem (8 MiB); over the cap nghttp2 sees NOMEM -> -H2_E_NOMEM.
 * Windows are fixed (reset when now_ms passes their end), so a burst across a boundary
 * may reach twice the limit; that still bounds the work to O(limit) per window.
 * Debian's libnghttp2 1.52.0-1+deb12u1/u2 backports nghttp2's own reset-rate and
 * CONTINUATION limits; when the running library has them (weak symbols) they are set
 * looser than ours, as a backstop, so our counters and reasons fire first.
 *
 * Validation: nghttp2's HTTP messaging checks stay on (pseudo-headers, field syntax,
 * content-length vs DATA, connection-specific fields); a malformed request becomes a
 * stream reset (PROTOCOL_ERROR), malformed framing a connection error.
 */
#ifndef RINGMESH_H2_H
#define RINGMESH_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define H2_DEFAULT_MAX_CONCURRENT_STREAMS 100
#define H2_DEFAULT_MAX_HEADER_LIST_LEN    (64 * 1024)
#define H2_DEFAULT_MAX_HEADERS            100
#define H2_DEFAULT_MAX_HEADER_BLOCK_LEN   (128 * 1024)
#define H2_DEFAULT_MAX_CONTINUATIONS      8
#define H2_DEFAULT_STREAM_WINDOW          (256 * 1024)
#define H2_DEFAULT_CONN_WINDOW            (1024 * 1024)
#define H2_DEFAULT_MAX_STREAM_QUEUE       (1024 * 1024)
#define H2_DEFAULT_RAPID_RESET_MAX        100
#define H2_DEFAULT_RAPID_RESET_WINDOW_MS  1000
#define H2_DEFAULT_CONTROL_MAX            200
#define H2_DEFAULT_CONTROL_WINDOW_MS      1000
#define H2_DEFAULT_MAX_SESSION_MEM        (8 * 1024 * 1024)

/* RFC 9113 §7 error codes the proxy uses by name (values are the wire codes). */
#define H2_NO_ERROR          0x0u
#define H2_PROTOCOL_ERROR    0x1u
#define H2_INTERNAL_ERROR    0x2u
#define H2_REFUSED_STREAM    0x7u
#define H2_CANCEL            0x8u
#define H2_ENHANCE_YOUR_CALM 0xbu

/*
 * Connection errors, returned negated (-H2_E_*) by h2_conn_recv/h2_conn_send_pending.
 * Values start at 2000 (h1 uses 1000..). After any of them the connection is dead: send
 * what h2_conn_send_pending still gives (usually a GOAWAY), then close the socket.
 */
enum h2_error {
    H2_E_BAD_PREFACE = 2000,     /* server: input did not start with the client preface */
    H2_E_PROTOCOL,               /* nghttp2 found a connection error; h2_conn_reason() says which */
    H2_E_RAPID_RESET,            /* too many streams reset before a response (CVE-2023-44487) */
    H2_E_CONTINUATION_FLOOD,     /* too many CONTINUATION frames in one header block */
    H2_E_HEADER_BLOCK_TOO_LARGE, /* one header block's HPACK bytes over max_header_block_len */
    H2_E_CONTROL_FLOOD,          /* PING/SETTINGS/PRIORITY/empty DATA over the rate limit */
    H2_E_ACK_FLOOD,              /* nghttp2: too many ACKs queued for a peer that does not read */
    H2_E_NOMEM,                  /* an allocation failed or max_session_mem was reached */
    H2_E_INTERNAL,               /* an nghttp2 error the module does not expect */
    H2_E__COUNT                  /* not an error: end of the list */
};

/* A short stable name ("rapid_reset", "continuation_flood"...) for logs and metric
 * labels; accepts the value or its negation, and -ENOENT/-EINVAL/-ENOBUFS/... */
const char *h2_error_str(int err);

enum h2_role {
    H2_CLIENT, /* we send requests (upstream connection) */
    H2_SERVER, /* we receive requests (downstream connection) */
};

/* One header field: views, not NUL-terminated. Names are lowercase on the wire. */
struct h2_header {
    const char *name; /* borrowed */
    size_t name_len;
    const char *value; /* borrowed */
    size_t value_len;
};

/*
 * A header block, pseudo-headers separated from the regular fields. Received: views
 * into nghttp2's buffers valid during the callback only; absent pseudo-headers are NULL
 * with length 0. Submitted (h2_submit_request): the caller's views, copied on submit.
 */
struct h2_head {
    const char *method; /* :method (request) */
    size_t method_len;
    const char *scheme; /* :scheme (request; NULL for CONNECT) */
    size_t scheme_len;
    const char *authority; /* :authority (request; may be NULL) */
    size_t authority_len;
    const char *path; /* :path (request; NULL for CONNECT) */
    size_t path_len;
    int status;                      /* :status (response), 0 in a request */
    const struct h2_header *headers; /* regular fields, in order */
    size_t num_headers;
};

struct h2_conn;

/* Server role: a request's header block arrived complete and valid on a new stream.
 * Returns the stream's user pointer (may be NULL), passed to every later callback of
 * the stream. Called right before headers_cb for the same block. */
typedef void *(*h2_stream_open_cb)(struct h2_conn *c, int32_t stream_id, void *conn_user);
/* The first header block of a stream (request, or response; a 1xx response is interim
 * and another block follows). end_stream: no body follows. */
typedef void (*h2_headers_cb)(struct h2_conn *c, int32_t stream_id, const struct h2_head *head,
                              bool end_stream, void *stream_user);
/* A chunk of body. The bytes count as unconsumed until h2_stream_consumed(). */
typedef void (*h2_data_cb)(struct h2_conn *c, int32_t stream_id, const uint8_t *data, size_t len,
                           void *stream_user);
/* A trailer block (always ends the stream; end_stream_cb follows). */
typedef void (*h2_trailers_cb)(struct h2_conn *c, int32_t stream_id,
                               const struct h2_header *trailers, size_t num_trailers,
                               void *stream_user);
/* The peer ended its side of the stream (END_STREAM). */
typedef void (*h2_end_stream_cb)(struct h2_conn *c, int32_t stream_id, void *stream_user);
/* The peer reset the stream with RST_STREAM(error_code). H2_REFUSED_STREAM means the
 * peer did no work on it: a request may be retried elsewhere. closed_cb follows. */
typedef void (*h2_reset_cb)(struct h2_conn *c, int32_t stream_id, uint32_t error_code,
                            void *stream_user);
/* The peer sent GOAWAY: streams above last_stream_id were not processed (each gets
 * closed_cb with H2_REFUSED_STREAM); no new streams may be submitted. */
typedef void (*h2_goaway_cb)(struct h2_conn *c, int32_t last_stream_id, uint32_t error_code,
                             void *conn_user);
/* The stream is gone (last callback of a stream the proxy knows about: server streams
 * after stream_open_cb, client streams after h2_submit_request). error_code is 0 after
 * a clean end, else the reset/GOAWAY code (H2_REFUSED_STREAM: never processed). */
typedef void (*h2_closed_cb)(struct h2_conn *c, int32_t stream_id, uint32_t error_code,
                             void *stream_user);
/* A DATA frame of the stream left for the peer; queued is what remains in its queue.
 * The proxy resumes reading the other side when queued drops under its threshold. */
typedef void (*h2_drained_cb)(struct h2_conn *c, int32_t stream_id, size_t queued,
                              void *stream_user);

/* Every member may be NULL. Copied by h2_conn_new. */
struct h2_callbacks {
    h2_stream_open_cb stream_open;
    h2_headers_cb headers;
    h2_data_cb data;
    h2_trailers_cb trailers;
    h2_end_stream_cb end_stream;
    h2_reset_cb reset;
    h2_goaway_cb goaway;
    h2_closed_cb closed;
    h2_drained_cb drained;
};

/* Limits; zero fields mean the H2_DEFAULT_* value. */
struct h2_limits {
    uint32_t max_concurrent_streams; /* advertised; enforced by nghttp2 on the server */
    size_t max_header_list_len;      /* per header block, RFC 9113 §6.5.2 accounting */
    size_t max_headers;              /* fields per header block, pseudo-headers included */
    size_t max_header_block_len;     /* HPACK bytes of HEADERS + its CONTINUATIONs */
    size_t max_continuations;        /* CONTINUATION frames per header block */
    uint32_t stream_window;          /* SETTINGS_INITIAL_WINDOW_SIZE we advertise */
    uint32_t conn_window;            /* our connection receive window */
    size_t max_stream_queue;         /* bytes h2_submit_data may queue per stream */
    uint32_t rapid_reset_max;        /* early resets per window (server role) */
    uint32_t rapid_reset_window_ms;
    uint32_t control_max; /* control frames per window */
    uint32_t control_window_ms;
    size_t max_session_mem; /* bytes nghttp2 may allocate for this connection */
};

/* Per-connection counters, plain (one thread). */
struct h2_stats {
    uint64_t bytes_in, bytes_out;
    uint64_t frames_in;
    uint64_t streams_opened; /* streams the proxy saw (stream_open / submit_request) */
    uint64_t streams_closed;
    uint64_t streams_refused;       /* REFUSED_STREAM sent by nghttp2 (concurrency, GOAWAY) */
    uint64_t resets_received;       /* RST_STREAM frames from the peer */
    uint64_t resets_early;          /* ...on streams not yet answered (server role) */
    uint64_t resets_sent;           /* RST_STREAM frames we sent, any reason */
    uint64_t header_list_too_large; /* streams reset for max_header_list_len */
    uint64_t too_many_headers;      /* streams reset for max_headers */
    uint64_t queue_full;            /* h2_submit_data refused with -ENOBUFS */
    uint64_t rapid_reset;           /* connection closed for rapid reset */
    uint64_t continuation_flood;
    uint64_t header_block_too_large;
    uint64_t control_flood;
    uint64_t ack_flood;
    uint64_t protocol_errors; /* connection errors found by nghttp2 (incl. bad preface) */
    uint64_t mem_refused;     /* allocations refused by max_session_mem */
    size_t mem_bytes;         /* nghttp2 bytes allocated now */
    size_t mem_peak;          /* ...at most, over the connection's life */
};

/*
 * Creates a connection: an nghttp2 session in the given role, our SETTINGS and
 * connection WINDOW_UPDATE queued (a client's preface goes out with the first
 * h2_conn_send_pending). limits may be NULL; cbs is copied; conn_user is passed to the
 * connection callbacks. Returns NULL with a message in err (err_len bytes) on failure.
 */
struct h2_conn *h2_conn_new(enum h2_role role, const struct h2_limits *limits,
                            const struct h2_callbacks *cbs, void *conn_user, char *err,
                            size_t err_len);

/* Frees the connection, its streams and queues. No callbacks run. NULL is a no-op.
 * Never call it from inside a callback. */
void h2_conn_free(struct h2_conn *c);

/*
 * Feeds bytes read from the socket. now_ms is the loop's clock (monotonic ms) for the
 * rate limits. Returns the bytes consumed (always len unless an error), or a negative
 * -H2_E_* error: the connection is then dead, every later call returns the same error;
 * flush h2_conn_send_pending (it carries a GOAWAY saying why) and close.
 */
ssize_t h2_conn_recv(struct h2_conn *c, const uint8_t *data, size_t len, uint64_t now_ms);

/*
 * Writes up to cap bytes the connection wants sent into out. Returns the bytes written
 * (0: nothing to send now) or -H2_E_NOMEM / -H2_E_INTERNAL. Data providers are pulled
 * here, so DATA frames leave the stream queues only as fast as the caller writes.
 * Call it until it returns less than cap (or 0) after each recv and submit.
 */
ssize_t h2_conn_send_pending(struct h2_conn *c, uint8_t *out, size_t cap);

/* True if h2_conn_send_pending would return bytes (or may: a data provider can still be
 * deferred). */
bool h2_conn_want_write(const struct h2_conn *c);

/* True while the session still expects input (false after GOAWAY both ways with no
 * stream left, or after a connection error). */
bool h2_conn_want_read(const struct h2_conn *c);

/* True once neither reading nor writing has anything left: close the socket. */
bool h2_conn_is_done(const struct h2_conn *c);

/* The connection's error (-H2_E_*) or 0. */
int h2_conn_error(const struct h2_conn *c);

/* Why the connection failed, human-readable ("CONTINUATION flood: 9 frames in one
 * header block"), "" if it did not. */
const char *h2_conn_reason(const struct h2_conn *c);

/* The connection's counters. */
const struct h2_stats *h2_conn_stats(const struct h2_conn *c);

/* Streams currently open from the proxy's point of view (opened, not closed yet). */
size_t h2_conn_num_streams(const struct h2_conn *c);

/*
 * Client role: submits a request. head gives :method, :scheme, :authority, :path and the
 * regular fields (lowercase names; connection-specific fields rejected). has_body: the
 * body follows through h2_submit_data (else END_STREAM is on HEADERS). user is the
 * stream's user pointer. Returns the stream id (> 0), or -EINVAL (bad header, wrong role),
 * -ESHUTDOWN (GOAWAY sent or received), -ENOMEM, or -H2_E_* once the connection is dead.
 * Requests beyond the peer's SETTINGS_MAX_CONCURRENT_STREAMS wait in nghttp2's queue.
 */
int32_t h2_submit_request(struct h2_conn *c, const struct h2_head *head, bool has_body, void *user);

/*
 * Server role: submits the response headers of a stream (status 100..599; a 1xx is
 * interim and may be followed by another call). has_body as for requests. Returns 0,
 * -ENOENT (no such open stream), -EINVAL, -ENOMEM.
 */
int h2_submit_response(struct h2_conn *c, int32_t stream_id, int status,
                       const struct h2_header *headers, size_t num_headers, bool has_body);

/*
 * Queues body bytes on a stream submitted with has_body (copied; see above). end: this
 * is the last chunk (len may be 0). Returns 0, -ENOENT (no such stream), -EPIPE (body
 * already ended, or the stream has no body), -ENOBUFS (queue would pass
 * max_stream_queue; nothing queued, counted), -ENOMEM.
 */
int h2_submit_data(struct h2_conn *c, int32_t stream_id, const void *data, size_t len, bool end);

/*
 * Ends a stream's body with a trailer block (gRPC: grpc-status, grpc-message); sent
 * after the queued data. Copies the fields. Returns 0, -ENOENT, -EPIPE (body already
 * ended or no body), -EINVAL (bad field), -ENOMEM.
 */
int h2_submit_trailers(struct h2_conn *c, int32_t stream_id, const struct h2_header *trailers,
                       size_t num_trailers);

/* Resets a stream with RST_STREAM(error_code); its queue is dropped and closed_cb follows
 * (from a later send/recv). Returns 0, -ENOENT. */
int h2_reset_stream(struct h2_conn *c, int32_t stream_id, uint32_t error_code);

/*
 * Sends GOAWAY(error_code) with the last stream id nghttp2 processed. With H2_NO_ERROR
 * this is a graceful drain: streams at or below that id complete, later ones the peer
 * opens are refused (it sees them closed with REFUSED_STREAM), and no new request may be
 * submitted here. Returns 0, -EALREADY (already sent), -ENOMEM.
 */
int h2_goaway(struct h2_conn *c, uint32_t error_code);

/*
 * The proxy forwarded n bytes of the stream's received body: reopens the stream and
 * connection windows by n (WINDOW_UPDATE goes out when nghttp2 decides it is worth it,
 * at half a window). n is capped at the stream's unconsumed bytes. Returns 0, -ENOENT.
 */
int h2_stream_consumed(struct h2_conn *c, int32_t stream_id, size_t n);

/* Bytes submitted on the stream and not yet framed (0 for an unknown stream). */
size_t h2_stream_queued(const struct h2_conn *c, int32_t stream_id);

/* Bytes delivered by data_cb and not yet consumed (0 for an unknown stream). */
size_t h2_stream_unconsumed(const struct h2_conn *c, int32_t stream_id);

/* Replaces the stream's user pointer (later callbacks get the new one; NULL is allowed:
 * the proxy let go of the stream). Returns 0, -ENOENT. */
int h2_stream_set_user(struct h2_conn *c, int32_t stream_id, void *user);
/* Sum of h2_stream_queued over the connection's streams. */
size_t h2_conn_queued(const struct h2_conn *c);

#endif
