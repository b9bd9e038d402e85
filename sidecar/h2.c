/*
 * h2.c - one HTTP/2 connection over memory buffers: an nghttp2 session (mem_recv /
 * mem_send), a per-stream send queue behind nghttp2 data providers, manual flow control,
 * and the abuse limits described in h2.h.
 *
 * Owns: the nghttp2 session (its memory comes from a counting allocator capped per
 * connection), every struct h2_stream (chained hash by id, freed on nghttp2's stream
 * close or with the connection), the queued body chunks and pending trailers, and one
 * scratch array for the header block being received (blocks never interleave, RFC 9113
 * §6.10, so one per connection is enough).
 * Thread: the worker that owns the connection; no locks, no clocks (now_ms comes in).
 * Invariants:
 * - c->queued is the sum of s->queued; s->queued the sum of its chunks' unsent bytes.
 * - A stream is in the hash from creation (server: on_begin_headers; client: submit) to
 *   nghttp2's on_stream_close, or on_frame_not_send for a request never sent.
 * - The frame scanner sees every input byte before nghttp2 does; once c->error is set no
 *   input reaches nghttp2 again.
 * - c->pend points into nghttp2's frame buffer, valid until the next mem_send.
 */
#include "h2.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

/*
 * Debian's 1.52.0-1+deb12u1/u2 added these two (upstream 1.57 and 1.61); weak so the
 * module links against a plain 1.52 too, where they are NULL.
 */
#pragma weak nghttp2_option_set_stream_reset_rate_limit
#pragma weak nghttp2_option_set_max_continuations

#define H2_PREFACE_LEN   24 /* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" */
#define H2_FRAME_HDR_LEN 9

/* Wire frame types and flags the scanner looks at (RFC 9113 §6). */
#define FT_DATA         0x0
#define FT_HEADERS      0x1
#define FT_PRIORITY     0x2
#define FT_SETTINGS     0x4
#define FT_PUSH_PROMISE 0x5
#define FT_PING         0x6
#define FT_CONTINUATION 0x9
#define FF_END_STREAM   0x1
#define FF_ACK          0x1
#define FF_END_HEADERS  0x4

/* Connection flags. */
#define H2_C_GOAWAY_SENT    0x01u /* we submitted a GOAWAY (user or limit) */
#define H2_C_GOAWAY_RECV    0x02u /* the peer sent GOAWAY */
#define H2_C_GOAWAY_FLUSHED 0x04u /* a GOAWAY left through send_pending (or none will) */
#define H2_C_IN_BLOCK       0x08u /* scanner: inside a header block (no END_HEADERS yet) */
#define H2_C_HDR_BAD        0x10u /* the header block being received was rejected */
#define H2_C_HDR_SKIP       0x20u /* ...or refused after our GOAWAY: skip it quietly */

/* Stream flags. */
#define H2_S_USER_OPEN  0x001u /* the proxy knows the stream: closed_cb is owed */
#define H2_S_RESPONDED  0x002u /* server: final response submitted */
#define H2_S_HEADERS    0x004u /* first (final) header block received */
#define H2_S_HAS_BODY   0x008u /* a data provider is attached */
#define H2_S_DATA_END   0x010u /* the last chunk (or trailers) was submitted */
#define H2_S_DEFERRED   0x020u /* our data provider returned DEFERRED */
#define H2_S_USER_RESET 0x040u /* h2_reset_stream was called */

/* One queued body chunk, copied from the caller. Owned by its stream. */
struct h2_chunk {
    struct h2_chunk *next; /* owned */
    size_t len;            /* bytes in data */
    size_t off;            /* bytes already framed */
    uint8_t data[];
};

/* One stream. Owned by the connection (hash), freed on close. */
struct h2_stream {
    int32_t id;
    unsigned flags;          /* H2_S_* */
    struct h2_stream *hnext; /* hash chain (borrowed links) */
    void *user;              /* the proxy's pointer (borrowed) */
    struct h2_chunk *qhead;  /* owned */
    struct h2_chunk *qtail;  /* borrowed: last of qhead's list */
    size_t queued;           /* unsent bytes in the chunks */
    size_t unconsumed;       /* received, not yet h2_stream_consumed */
    nghttp2_nv *trailers;    /* owned, one allocation with the strings; NULL if none */
    size_t num_trailers;
};

/* Frame-header scanner state (see h2.h "Limits and attacks"). */
struct h2_scan {
    size_t preface_left; /* server: client preface bytes still to skip */
    uint8_t hdr[H2_FRAME_HDR_LEN];
    size_t hdr_have;      /* bytes of hdr filled */
    size_t payload_left;  /* payload bytes of the current frame still to skip */
    size_t continuations; /* in the current header block */
    size_t block_len;     /* HPACK bytes of the current header block */
};

struct h2_conn {
    enum h2_role role;
    struct h2_limits lim; /* defaults filled in */
    struct h2_callbacks cbs;
    void *user;               /* borrowed */
    nghttp2_session *session; /* owned */
    nghttp2_mem mem;          /* the counting allocator, user data = c */
    unsigned flags;           /* H2_C_* */
    int error;                /* H2_E_* (positive) once dead, else 0 */
    int32_t goaway_last;      /* last stream id of the GOAWAY we submitted */
    char reason[160];
    uint64_t now_ms; /* of the h2_conn_recv in progress (or last) */
    struct h2_scan scan;
    uint64_t rr_start_ms; /* rapid-reset window */
    uint32_t rr_count;
    uint64_t ctl_start_ms; /* control-frame window */
    uint32_t ctl_count;
    const uint8_t *pend; /* borrowed: nghttp2's frame buffer, see invariants */
    size_t pend_len;
    struct h2_stream **buckets; /* owned array; chains of streams */
    size_t nbuckets;            /* power of two */
    size_t nstreams;
    size_t nuser; /* streams with H2_S_USER_OPEN */
    size_t queued;
    int32_t hdr_stream;      /* stream of the block in hdr_rc */
    nghttp2_rcbuf **hdr_rc;  /* owned array of 2 * max_headers refs (name, value) */
    size_t hdr_n;            /* fields collected */
    size_t hdr_len;          /* RFC 9113 §6.5.2 size so far */
    struct h2_header *hview; /* owned scratch of max_headers views */
    struct h2_stats st;
};

static const char *const h2_error_names[] = {
    [H2_E_BAD_PREFACE - 2000] = "bad_preface",
    [H2_E_PROTOCOL - 2000] = "protocol",
    [H2_E_RAPID_RESET - 2000] = "rapid_reset",
    [H2_E_CONTINUATION_FLOOD - 2000] = "continuation_flood",
    [H2_E_HEADER_BLOCK_TOO_LARGE - 2000] = "header_block_too_large",
    [H2_E_CONTROL_FLOOD - 2000] = "control_flood",
    [H2_E_ACK_FLOOD - 2000] = "ack_flood",
    [H2_E_NOMEM - 2000] = "nomem",
    [H2_E_INTERNAL - 2000] = "internal",
};

const char *h2_error_str(int err)
{
    if (err < 0)
        err = -err;
    if (err >= 2000 && err < H2_E__COUNT)
        return h2_error_names[err - 2000];
    switch (err) {
    case 0:
        return "ok";
    case ENOENT:
        return "no_stream";
    case EINVAL:
        return "invalid";
    case ENOBUFS:
        return "queue_full";
    case EPIPE:
        return "body_ended";
    case ESHUTDOWN:
        return "goaway";
    case ENOMEM:
        return "nomem";
    case EALREADY:
        return "already";
    default:
        return "unknown";
    }
}

/* ---- counting allocator: every nghttp2 byte of this connection, capped ---- */

/* 16 bytes in front of each block keep its size (and the block max_align_t aligned). */
#define MEM_HDR 16

static bool mem_admit(struct h2_conn *c, size_t add)
{
    if (add > c->lim.max_session_mem - c->st.mem_bytes) {
        c->st.mem_refused++;
        return false;
    }
    return true;
}

static void mem_account(struct h2_conn *c, size_t add, size_t sub)
{
    c->st.mem_bytes = c->st.mem_bytes + add - sub;
    if (c->st.mem_bytes > c->st.mem_peak)
        c->st.mem_peak = c->st.mem_bytes;
}

static void *mem_malloc(size_t size, void *ud)
{
    struct h2_conn *c = ud;
    if (!mem_admit(c, size))
        return NULL;
    uint8_t *p = malloc(MEM_HDR + size);
    if (!p)
        return NULL;
    memcpy(p, &size, sizeof(size));
    mem_account(c, size, 0);
    return p + MEM_HDR;
}

static void mem_free(void *ptr, void *ud)
{
    struct h2_conn *c = ud;
    size_t size;
    if (!ptr)
        return;
    uint8_t *p = (uint8_t *)ptr - MEM_HDR;
    memcpy(&size, p, sizeof(size));
    mem_account(c, 0, size);
    free(p);
}

static void *mem_calloc(size_t nmemb, size_t size, void *ud)
{
    if (size && nmemb > SIZE_MAX / size)
        return NULL;
    void *p = mem_malloc(nmemb * size, ud);
    if (p)
        memset(p, 0, nmemb * size);
    return p;
}

static void *mem_realloc(void *ptr, size_t size, void *ud)
{
    struct h2_conn *c = ud;
    size_t old;
    if (!ptr)
        return mem_malloc(size, ud);
    uint8_t *p = (uint8_t *)ptr - MEM_HDR;
    memcpy(&old, p, sizeof(old));
    if (size > old && !mem_admit(c, size - old))
        return NULL;
    uint8_t *q = realloc(p, MEM_HDR + size);
    if (!q)
        return NULL;
    memcpy(q, &size, sizeof(size));
    mem_account(c, size, old);
    return q + MEM_HDR;
}

/* ---- streams ---- */

static size_t bucket_of(const struct h2_conn *c, int32_t id)
{
    /* Ids of one side are all odd or all even: drop the low bit before masking. */
    return ((uint32_t)id >> 1) & (c->nbuckets - 1);
}

static struct h2_stream *stream_find(const struct h2_conn *c, int32_t id)
{
    struct h2_stream *s;
    if (id <= 0)
        return NULL;
    for (s = c->buckets[bucket_of(c, id)]; s; s = s->hnext)
        if (s->id == id)
            return s;
    return NULL;
}

/* Makes room for one more stream, so that stream_insert cannot fail. */
static int stream_reserve(struct h2_conn *c)
{
    if (c->nstreams < c->nbuckets)
        return 0;
    size_t nb = c->nbuckets * 2;
    struct h2_stream **b = calloc(nb, sizeof(*b));
    if (!b)
        return -ENOMEM;
    struct h2_stream **old = c->buckets;
    size_t oldn = c->nbuckets;
    c->buckets = b;
    c->nbuckets = nb;
    for (size_t i = 0; i < oldn; i++) {
        struct h2_stream *t = old[i], *next;
        for (; t; t = next) {
            next = t->hnext;
            size_t k = bucket_of(c, t->id);
            t->hnext = b[k];
            b[k] = t;
        }
    }
    free(old);
    return 0;
}

/* After stream_reserve. */
static void stream_insert(struct h2_conn *c, struct h2_stream *s)
{
    size_t k = bucket_of(c, s->id);
    s->hnext = c->buckets[k];
    c->buckets[k] = s;
    c->nstreams++;
}

static void stream_drop_queue(struct h2_conn *c, struct h2_stream *s)
{
    struct h2_chunk *ch = s->qhead, *next;
    for (; ch; ch = next) {
        next = ch->next;
        free(ch);
    }
    s->qhead = s->qtail = NULL;
    c->queued -= s->queued;
    s->queued = 0;
}

/* Removes s from the hash and frees it. */
static void stream_destroy(struct h2_conn *c, struct h2_stream *s)
{
    struct h2_stream **pp = &c->buckets[bucket_of(c, s->id)];
    while (*pp && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = s->hnext;
        c->nstreams--;
    }
    if (s->flags & H2_S_USER_OPEN)
        c->nuser--;
    stream_drop_queue(c, s);
    free(s->trailers);
    free(s);
}

static struct h2_stream *stream_new(int32_t id)
{
    struct h2_stream *s = calloc(1, sizeof(*s));
    if (s)
        s->id = id;
    return s;
}

/* ---- limits ---- */

/* Fixed window counter: true when this event is over max within the window. */
static bool window_over(uint64_t *start, uint32_t *count, uint64_t now, uint32_t window_ms,
                        uint32_t max)
{
    if (now < *start || now - *start >= window_ms) {
        *start = now;
        *count = 0;
    }
    return ++*count > max;
}

/*
 * Kills the connection for abuse or a fatal error: records why, counts it, and queues
 * GOAWAY(code) with the reason as debug data (unless no GOAWAY can or should be sent).
 */
static void conn_fail(struct h2_conn *c, int err, uint32_t code, const char *reason)
{
    if (c->error)
        return;
    c->error = err;
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
    switch (err) {
    case H2_E_RAPID_RESET:
        c->st.rapid_reset++;
        break;
    case H2_E_CONTINUATION_FLOOD:
        c->st.continuation_flood++;
        break;
    case H2_E_HEADER_BLOCK_TOO_LARGE:
        c->st.header_block_too_large++;
        break;
    case H2_E_CONTROL_FLOOD:
        c->st.control_flood++;
        break;
    case H2_E_ACK_FLOOD:
        c->st.ack_flood++;
        break;
    case H2_E_BAD_PREFACE:
    case H2_E_PROTOCOL:
        c->st.protocol_errors++;
        break;
    default:
        break;
    }
    if (code == UINT32_MAX || (c->flags & H2_C_GOAWAY_FLUSHED)) {
        c->flags |= H2_C_GOAWAY_FLUSHED;
        return;
    }
    c->goaway_last = nghttp2_session_get_last_proc_stream_id(c->session);
    int rv = nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, c->goaway_last, code,
                                   (const uint8_t *)c->reason, strlen(c->reason));
    c->flags |= H2_C_GOAWAY_SENT;
    if (rv != 0)
        c->flags |= H2_C_GOAWAY_FLUSHED;
}

/*
 * Checks one complete frame header. Returns 0 or an H2_E_* the caller applies with
 * conn_fail before any of this frame reaches nghttp2.
 */
static int scan_frame(struct h2_conn *c, const uint8_t *h)
{
    struct h2_scan *sc = &c->scan;
    size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
    uint8_t type = h[3], flags = h[4];
    char why[128];

    c->st.frames_in++;
    sc->payload_left = len;
    switch (type) {
    case FT_HEADERS:
    case FT_PUSH_PROMISE:
        sc->continuations = 0;
        sc->block_len = len;
        if (flags & FF_END_HEADERS)
            c->flags &= ~H2_C_IN_BLOCK;
        else
            c->flags |= H2_C_IN_BLOCK;
        break;
    case FT_CONTINUATION:
        if (!(c->flags & H2_C_IN_BLOCK))
            break; /* nghttp2 answers a stray CONTINUATION with a connection error */
        sc->continuations++;
        sc->block_len += len;
        if (sc->continuations > c->lim.max_continuations) {
            snprintf(why, sizeof(why), "CONTINUATION flood: %zu frames in one header block",
                     sc->continuations);
            conn_fail(c, H2_E_CONTINUATION_FLOOD, NGHTTP2_ENHANCE_YOUR_CALM, why);
            return H2_E_CONTINUATION_FLOOD;
        }
        if (flags & FF_END_HEADERS)
            c->flags &= ~H2_C_IN_BLOCK;
        break;
    case FT_PING:
    case FT_SETTINGS:
        if (flags & FF_ACK)
            return 0;
        /* fall through */
    case FT_PRIORITY:
        goto control;
    case FT_DATA:
        if (len == 0 && !(flags & FF_END_STREAM))
            goto control;
        return 0;
    default:
        return 0;
    }
    if (sc->block_len > c->lim.max_header_block_len) {
        snprintf(why, sizeof(why), "header block of %zu bytes over the %zu limit", sc->block_len,
                 c->lim.max_header_block_len);
        conn_fail(c, H2_E_HEADER_BLOCK_TOO_LARGE, NGHTTP2_ENHANCE_YOUR_CALM, why);
        return H2_E_HEADER_BLOCK_TOO_LARGE;
    }
    return 0;

control:
    if (window_over(&c->ctl_start_ms, &c->ctl_count, c->now_ms, c->lim.control_window_ms,
                    c->lim.control_max)) {
        snprintf(why, sizeof(why),
                 "control frame flood: over %u PING/SETTINGS/PRIORITY/"
                 "empty DATA in %u ms",
                 c->lim.control_max, c->lim.control_window_ms);
        conn_fail(c, H2_E_CONTROL_FLOOD, NGHTTP2_ENHANCE_YOUR_CALM, why);
        return H2_E_CONTROL_FLOOD;
    }
    return 0;
}

/*
 * Walks data[0..len) frame header by frame header. Returns how many bytes may go to
 * nghttp2: len, or the offset of the offending frame's header (bytes of that header
 * given to nghttp2 by an earlier call are harmless: a partial header does nothing).
 */
static size_t scan(struct h2_conn *c, const uint8_t *data, size_t len, int *err)
{
    struct h2_scan *sc = &c->scan;
    size_t i = 0, n;
    *err = 0;
    while (i < len) {
        if (sc->preface_left) {
            n = len - i < sc->preface_left ? len - i : sc->preface_left;
            sc->preface_left -= n;
            i += n;
        } else if (sc->payload_left) {
            n = len - i < sc->payload_left ? len - i : sc->payload_left;
            sc->payload_left -= n;
            i += n;
        } else {
            sc->hdr[sc->hdr_have++] = data[i++];
            if (sc->hdr_have == H2_FRAME_HDR_LEN) {
                sc->hdr_have = 0;
                *err = scan_frame(c, sc->hdr);
                if (*err)
                    return i >= H2_FRAME_HDR_LEN ? i - H2_FRAME_HDR_LEN : 0;
            }
        }
    }
    return len;
}

/* Server: a stream the client gave up on, or one nghttp2 had to refuse or reset. */
static int count_early_reset(struct h2_conn *c)
{
    char why[128];
    if (c->role != H2_SERVER || c->error)
        return 0;
    if (!window_over(&c->rr_start_ms, &c->rr_count, c->now_ms, c->lim.rapid_reset_window_ms,
                     c->lim.rapid_reset_max))
        return 0;
    snprintf(why, sizeof(why), "rapid reset: over %u streams reset before a response in %u ms",
             c->lim.rapid_reset_max, c->lim.rapid_reset_window_ms);
    conn_fail(c, H2_E_RAPID_RESET, NGHTTP2_ENHANCE_YOUR_CALM, why);
    return -1;
}

/* ---- receiving: nghttp2 callbacks ---- */

static void hdr_release(struct h2_conn *c)
{
    for (size_t i = 0; i < 2 * c->hdr_n; i++)
        nghttp2_rcbuf_decref(c->hdr_rc[i]);
    c->hdr_n = 0;
    c->hdr_len = 0;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    struct h2_conn *c = ud;
    int32_t id = frame->hd.stream_id;

    hdr_release(c);
    c->flags &= ~(H2_C_HDR_BAD | H2_C_HDR_SKIP);
    c->hdr_stream = id;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if ((c->flags & H2_C_GOAWAY_SENT) && id > c->goaway_last) {
        /* nghttp2 only ignores new streams once the GOAWAY left; between submit and send
         * the peer cannot know, and our GOAWAY already told it this one is not processed */
        c->flags |= H2_C_HDR_SKIP;
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    struct h2_stream *s = stream_reserve(c) == 0 ? stream_new(id) : NULL;
    if (!s)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    stream_insert(c, s);
    nghttp2_session_set_stream_user_data(session, id, s);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, nghttp2_rcbuf *name,
                     nghttp2_rcbuf *value, uint8_t flags, void *ud)
{
    struct h2_conn *c = ud;
    nghttp2_vec n = nghttp2_rcbuf_get_buf(name), v = nghttp2_rcbuf_get_buf(value);

    if (c->flags & H2_C_HDR_SKIP)
        return 0;
    if (frame->hd.stream_id != c->hdr_stream || (c->flags & H2_C_HDR_BAD))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    c->hdr_len += n.len + v.len + 32;
    if (c->hdr_len > c->lim.max_header_list_len || c->hdr_n >= c->lim.max_headers) {
        if (c->hdr_n >= c->lim.max_headers)
            c->st.too_many_headers++;
        else
            c->st.header_list_too_large++;
        c->flags |= H2_C_HDR_BAD;
        hdr_release(c);
        /* nghttp2 resets the stream (INTERNAL_ERROR) and skips the rest of the block;
         * the scanner bounds how long that block may be. */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    nghttp2_rcbuf_incref(name);
    nghttp2_rcbuf_incref(value);
    c->hdr_rc[2 * c->hdr_n] = name;
    c->hdr_rc[2 * c->hdr_n + 1] = value;
    c->hdr_n++;
    return 0;
}

static bool name_is(nghttp2_vec n, const char *lit)
{
    size_t l = strlen(lit);
    return n.len == l && memcmp(n.base, lit, l) == 0;
}

/* Splits the collected block into pseudo-headers and regular fields (c->hview). */
static void hdr_build(struct h2_conn *c, struct h2_head *h)
{
    memset(h, 0, sizeof(*h));
    h->headers = c->hview;
    for (size_t i = 0; i < c->hdr_n; i++) {
        nghttp2_vec n = nghttp2_rcbuf_get_buf(c->hdr_rc[2 * i]);
        nghttp2_vec v = nghttp2_rcbuf_get_buf(c->hdr_rc[2 * i + 1]);
        const char *vp = (const char *)v.base;
        if (n.len && n.base[0] == ':') {
            if (name_is(n, ":method"))
                h->method = vp, h->method_len = v.len;
            else if (name_is(n, ":scheme"))
                h->scheme = vp, h->scheme_len = v.len;
            else if (name_is(n, ":authority"))
                h->authority = vp, h->authority_len = v.len;
            else if (name_is(n, ":path"))
                h->path = vp, h->path_len = v.len;
            else if (name_is(n, ":status") && v.len == 3)
                /* nghttp2 has checked the three digits */
                h->status = (vp[0] - '0') * 100 + (vp[1] - '0') * 10 + (vp[2] - '0');
            continue;
        }
        c->hview[h->num_headers++] = (struct h2_header){
            .name = (const char *)n.base, .name_len = n.len, .value = vp, .value_len = v.len};
    }
}

static void on_headers_frame(struct h2_conn *c, const nghttp2_frame *frame, struct h2_stream *s)
{
    int32_t id = frame->hd.stream_id;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    struct h2_head h;

    if (c->flags & (H2_C_HDR_BAD | H2_C_HDR_SKIP) || c->hdr_stream != id)
        return;
    hdr_build(c, &h);
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        s->flags |= H2_S_USER_OPEN | H2_S_HEADERS;
        c->nuser++;
        c->st.streams_opened++;
        if (c->cbs.stream_open)
            s->user = c->cbs.stream_open(c, id, c->user);
        if (c->cbs.headers)
            c->cbs.headers(c, id, &h, end, s->user);
    } else if (!(s->flags & H2_S_HEADERS) && c->role == H2_CLIENT) {
        /* a response: interim 1xx blocks come through here too, then the final one */
        if (h.status >= 200)
            s->flags |= H2_S_HEADERS;
        if (c->cbs.headers)
            c->cbs.headers(c, id, &h, end, s->user);
    } else if (c->cbs.trailers) {
        c->cbs.trailers(c, id, h.headers, h.num_headers, s->user);
    }
    hdr_release(c);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    struct h2_conn *c = ud;
    int32_t id = frame->hd.stream_id;
    struct h2_stream *s = id ? nghttp2_session_get_stream_user_data(session, id) : NULL;

    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (!s)
            return 0;
        on_headers_frame(c, frame, s);
        break;
    case NGHTTP2_DATA:
        break;
    case NGHTTP2_RST_STREAM:
        c->st.resets_received++;
        if (s && !(s->flags & H2_S_RESPONDED) && c->role == H2_SERVER) {
            c->st.resets_early++;
            if (count_early_reset(c) != 0)
                return NGHTTP2_ERR_CALLBACK_FAILURE; /* stop at this frame */
        }
        if (s && (s->flags & H2_S_USER_OPEN) && c->cbs.reset)
            c->cbs.reset(c, id, frame->rst_stream.error_code, s->user);
        return 0;
    case NGHTTP2_GOAWAY:
        c->flags |= H2_C_GOAWAY_RECV;
        if (c->cbs.goaway)
            c->cbs.goaway(c, frame->goaway.last_stream_id, frame->goaway.error_code, c->user);
        return 0;
    default:
        return 0;
    }
    if (s && (s->flags & H2_S_USER_OPEN) && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        c->cbs.end_stream)
        c->cbs.end_stream(c, id, s->user);
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    struct h2_conn *c = ud;
    struct h2_stream *s = nghttp2_session_get_stream_user_data(session, id);

    if (!s || !(s->flags & H2_S_USER_OPEN)) {
        /* nobody will forward it: give the window back now */
        nghttp2_session_consume(session, id, len);
        return 0;
    }
    s->unconsumed += len;
    if (c->cbs.data)
        c->cbs.data(c, id, data, len, s->user);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t code, void *ud)
{
    struct h2_conn *c = ud;
    struct h2_stream *s = nghttp2_session_get_stream_user_data(session, id);

    if (!s)
        return 0;
    if (s->unconsumed)
        /* the stream's window dies with it; the connection's must not leak */
        nghttp2_session_consume_connection(session, s->unconsumed);
    if (s->flags & H2_S_USER_OPEN) {
        c->st.streams_closed++;
        if (c->cbs.closed)
            c->cbs.closed(c, id, code, s->user);
    }
    stream_destroy(c, s);
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    struct h2_conn *c = ud;
    int32_t id = frame->hd.stream_id;
    struct h2_stream *s;

    switch (frame->hd.type) {
    case NGHTTP2_DATA:
        s = nghttp2_session_get_stream_user_data(session, id);
        if (s && c->cbs.drained && (s->flags & H2_S_USER_OPEN))
            c->cbs.drained(c, id, s->queued, s->user);
        break;
    case NGHTTP2_RST_STREAM:
        c->st.resets_sent++;
        s = nghttp2_session_get_stream_user_data(session, id);
        if (frame->rst_stream.error_code == NGHTTP2_REFUSED_STREAM && !s)
            c->st.streams_refused++;
        if (!s || !(s->flags & H2_S_USER_RESET))
            count_early_reset(c); /* nghttp2's own resets cost us work too */
        break;
    case NGHTTP2_GOAWAY:
        c->flags |= H2_C_GOAWAY_FLUSHED;
        if (!(c->flags & H2_C_GOAWAY_SENT) && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
            /* nghttp2 terminated the session: a connection error in the input */
            char why[160];
            int l =
                (int)(frame->goaway.opaque_data_len < 120 ? frame->goaway.opaque_data_len : 120);
            snprintf(why, sizeof(why), "%s: %.*s", nghttp2_http2_strerror(frame->goaway.error_code),
                     l, frame->goaway.opaque_data ? (const char *)frame->goaway.opaque_data : "");
            c->flags |= H2_C_GOAWAY_SENT;
            conn_fail(c, H2_E_PROTOCOL, UINT32_MAX, why);
        }
        c->flags |= H2_C_GOAWAY_SENT;
        break;
    default:
        break;
    }
    return 0;
}

static int on_frame_not_send(nghttp2_session *session, const nghttp2_frame *frame, int lib_err,
                             void *ud)
{
    struct h2_conn *c = ud;
    int32_t id = frame->hd.stream_id;

    if (frame->hd.type != NGHTTP2_HEADERS || c->role != H2_CLIENT)
        return 0;
    /* A request never sent (GOAWAY received, ids exhausted): nghttp2 opened no stream,
     * so no on_stream_close will come; it was never processed, hence REFUSED_STREAM. */
    struct h2_stream *s = stream_find(c, id);
    if (!s || nghttp2_session_find_stream(session, id))
        return 0;
    if (s->flags & H2_S_USER_OPEN) {
        c->st.streams_closed++;
        if (c->cbs.closed)
            c->cbs.closed(c, id, NGHTTP2_REFUSED_STREAM, s->user);
    }
    stream_destroy(c, s);
    return 0;
}

/* ---- sending: the data provider ---- */

static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *ud)
{
    struct h2_conn *c = ud;
    struct h2_stream *s = source->ptr;
    size_t n = 0;

    while (n < length && s->qhead) {
        struct h2_chunk *ch = s->qhead;
        size_t k = ch->len - ch->off;
        if (k > length - n)
            k = length - n;
        memcpy(buf + n, ch->data + ch->off, k);
        ch->off += k;
        n += k;
        if (ch->off == ch->len) {
            s->qhead = ch->next;
            if (!s->qhead)
                s->qtail = NULL;
            free(ch);
        }
    }
    s->queued -= n;
    c->queued -= n;
    if (s->qhead)
        return (ssize_t)n;
    if (!(s->flags & H2_S_DATA_END)) {
        if (n)
            return (ssize_t)n;
        s->flags |= H2_S_DEFERRED;
        return NGHTTP2_ERR_DEFERRED;
    }
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (s->trailers) {
        *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        int rv = nghttp2_submit_trailer(session, id, s->trailers, s->num_trailers);
        free(s->trailers);
        s->trailers = NULL;
        if (rv != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

/* ---- outgoing headers ---- */

static bool is_conn_specific(const char *n, size_t l, const char *v, size_t vl)
{
    static const char *const bad[] = {"connection", "keep-alive", "proxy-connection",
                                      "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (strlen(bad[i]) == l && memcmp(bad[i], n, l) == 0)
            return true;
    /* RFC 9113 §8.2.2: TE may only carry "trailers" */
    return l == 2 && memcmp(n, "te", 2) == 0 && !(vl == 8 && memcmp(v, "trailers", 8) == 0);
}

static void nv_set(nghttp2_nv *nv, const char *n, size_t nl, const char *v, size_t vl)
{
    nv->name = (uint8_t *)(uintptr_t)n;
    nv->namelen = nl;
    nv->value = (uint8_t *)(uintptr_t)v;
    nv->valuelen = vl;
    nv->flags = NGHTTP2_NV_FLAG_NONE;
}

/* Appends regular fields to nva after checking them; -EINVAL for a field HTTP/2 cannot
 * carry (uppercase or bad name, CR/LF/NUL in a value, connection-specific). */
static int nv_add_fields(nghttp2_nv *nva, size_t *n, const struct h2_header *hs, size_t num)
{
    for (size_t i = 0; i < num; i++) {
        const struct h2_header *h = &hs[i];
        if (!h->name || !h->name_len || h->name[0] == ':' ||
            !nghttp2_check_header_name((const uint8_t *)h->name, h->name_len) ||
            (h->value_len && !h->value) ||
            !nghttp2_check_header_value((const uint8_t *)h->value, h->value_len) ||
            is_conn_specific(h->name, h->name_len, h->value, h->value_len))
            return -EINVAL;
        nv_set(&nva[(*n)++], h->name, h->name_len, h->value ? h->value : "", h->value_len);
    }
    return 0;
}

static int map_ng(int rv)
{
    switch (rv) {
    case NGHTTP2_ERR_NOMEM:
        return -ENOMEM;
    case NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE:
    case NGHTTP2_ERR_STREAM_CLOSED:
    case NGHTTP2_ERR_STREAM_CLOSING:
    case NGHTTP2_ERR_STREAM_SHUT_WR:
        return -ENOENT;
    case NGHTTP2_ERR_INVALID_STATE:
        return -ESHUTDOWN;
    default:
        return -EINVAL;
    }
}

/* ---- public API ---- */

static void limits_fill(struct h2_limits *l, const struct h2_limits *in)
{
    memset(l, 0, sizeof(*l));
    if (in)
        *l = *in;
#define DEF(f, v)                                                                                  \
    if (!l->f)                                                                                     \
    l->f = (v)
    DEF(max_concurrent_streams, H2_DEFAULT_MAX_CONCURRENT_STREAMS);
    DEF(max_header_list_len, H2_DEFAULT_MAX_HEADER_LIST_LEN);
    DEF(max_headers, H2_DEFAULT_MAX_HEADERS);
    DEF(max_header_block_len, H2_DEFAULT_MAX_HEADER_BLOCK_LEN);
    DEF(max_continuations, H2_DEFAULT_MAX_CONTINUATIONS);
    DEF(stream_window, H2_DEFAULT_STREAM_WINDOW);
    DEF(conn_window, H2_DEFAULT_CONN_WINDOW);
    DEF(max_stream_queue, H2_DEFAULT_MAX_STREAM_QUEUE);
    DEF(rapid_reset_max, H2_DEFAULT_RAPID_RESET_MAX);
    DEF(rapid_reset_window_ms, H2_DEFAULT_RAPID_RESET_WINDOW_MS);
    DEF(control_max, H2_DEFAULT_CONTROL_MAX);
    DEF(control_window_ms, H2_DEFAULT_CONTROL_WINDOW_MS);
    DEF(max_session_mem, H2_DEFAULT_MAX_SESSION_MEM);
#undef DEF
    if (l->stream_window > NGHTTP2_MAX_WINDOW_SIZE)
        l->stream_window = NGHTTP2_MAX_WINDOW_SIZE;
    if (l->conn_window > NGHTTP2_MAX_WINDOW_SIZE)
        l->conn_window = NGHTTP2_MAX_WINDOW_SIZE;
}

static int session_setup(struct h2_conn *c, char *err, size_t err_len)
{
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    int rv = -1;

    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0) {
        snprintf(err, err_len, "h2: out of memory");
        goto out;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback2(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, on_frame_not_send);

    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_reserved_remote_streams(opt, 0);
    /* Backstops only, looser than ours so our counters and reasons fire first. */
    if (nghttp2_option_set_stream_reset_rate_limit) {
        uint64_t burst = 10ull * c->lim.rapid_reset_max;
        uint64_t rate = burst * 1000 / c->lim.rapid_reset_window_ms;
        nghttp2_option_set_stream_reset_rate_limit(opt, burst < 1000 ? 1000 : burst,
                                                   rate < 33 ? 33 : rate);
    }
    if (nghttp2_option_set_max_continuations)
        nghttp2_option_set_max_continuations(opt, c->lim.max_continuations + 8);

    if (c->role == H2_CLIENT)
        rv = nghttp2_session_client_new3(&c->session, cb, c, opt, &c->mem);
    else
        rv = nghttp2_session_server_new3(&c->session, cb, c, opt, &c->mem);
    if (rv != 0) {
        snprintf(err, err_len, "h2: session: %s", nghttp2_strerror(rv));
        goto out;
    }
    nghttp2_settings_entry iv[5] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->lim.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, c->lim.stream_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)c->lim.max_header_list_len},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    rv = nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, c->role == H2_CLIENT ? 5 : 4);
    if (rv == 0)
        rv = nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                                   (int32_t)c->lim.conn_window);
    if (rv != 0)
        snprintf(err, err_len, "h2: settings: %s", nghttp2_strerror(rv));
out:
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    return rv;
}

struct h2_conn *h2_conn_new(enum h2_role role, const struct h2_limits *limits,
                            const struct h2_callbacks *cbs, void *conn_user, char *err,
                            size_t err_len)
{
    struct h2_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, err_len, "h2: out of memory");
        return NULL;
    }
    c->role = role;
    limits_fill(&c->lim, limits);
    if (cbs)
        c->cbs = *cbs;
    c->user = conn_user;
    c->mem = (nghttp2_mem){.mem_user_data = c,
                           .malloc = mem_malloc,
                           .free = mem_free,
                           .calloc = mem_calloc,
                           .realloc = mem_realloc};
    c->scan.preface_left = role == H2_SERVER ? H2_PREFACE_LEN : 0;
    c->nbuckets = 16;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    c->hdr_rc = calloc(2 * c->lim.max_headers, sizeof(*c->hdr_rc));
    c->hview = calloc(c->lim.max_headers, sizeof(*c->hview));
    if (!c->buckets || !c->hdr_rc || !c->hview) {
        snprintf(err, err_len, "h2: out of memory");
        goto fail;
    }
    if (session_setup(c, err, err_len) != 0)
        goto fail;
    return c;
fail:
    h2_conn_free(c);
    return NULL;
}

void h2_conn_free(struct h2_conn *c)
{
    if (!c)
        return;
    if (c->hdr_rc)
        hdr_release(c); /* the refs are session memory */
    for (size_t i = 0; c->buckets && i < c->nbuckets; i++) {
        struct h2_stream *s = c->buckets[i], *next;
        for (; s; s = next) {
            next = s->hnext;
            stream_drop_queue(c, s);
            free(s->trailers);
            free(s);
        }
    }
    if (c->session)
        nghttp2_session_del(c->session);
    free(c->buckets);
    free(c->hdr_rc);
    free(c->hview);
    free(c);
}

static int map_fatal(struct h2_conn *c, ssize_t rv)
{
    switch (rv) {
    case NGHTTP2_ERR_BAD_CLIENT_MAGIC:
        conn_fail(c, H2_E_BAD_PREFACE, UINT32_MAX, "bad client preface");
        break;
    case NGHTTP2_ERR_FLOODED:
        conn_fail(c, H2_E_ACK_FLOOD, UINT32_MAX,
                  "flood: peer does not read the PING/SETTINGS ACKs it asks for");
        break;
    case NGHTTP2_ERR_NOMEM:
        conn_fail(c, H2_E_NOMEM, NGHTTP2_INTERNAL_ERROR, "out of memory (max_session_mem)");
        break;
    case NGHTTP2_ERR_CALLBACK_FAILURE:
        if (c->error) /* one of our limits, already recorded */
            break;
        /* fall through */
    default: {
        char why[128];
        snprintf(why, sizeof(why), "nghttp2: %s", nghttp2_strerror((int)rv));
        conn_fail(c, rv == NGHTTP2_ERR_CALLBACK_FAILURE ? H2_E_INTERNAL : H2_E_PROTOCOL, UINT32_MAX,
                  why);
        break;
    }
    }
    return -c->error;
}

ssize_t h2_conn_recv(struct h2_conn *c, const uint8_t *data, size_t len, uint64_t now_ms)
{
    int serr;

    if (c->error)
        return -c->error;
    c->now_ms = now_ms;
    size_t allowed = scan(c, data, len, &serr);
    if (allowed) {
        ssize_t rv = nghttp2_session_mem_recv(c->session, data, allowed);
        if (rv < 0)
            return map_fatal(c, rv);
        c->st.bytes_in += (size_t)rv;
    }
    if (c->error)
        return -c->error;
    return (ssize_t)len;
}

ssize_t h2_conn_send_pending(struct h2_conn *c, uint8_t *out, size_t cap)
{
    size_t n = 0;

    while (n < cap) {
        if (!c->pend_len) {
            const uint8_t *p;
            ssize_t rv = nghttp2_session_mem_send(c->session, &p);
            if (rv < 0) {
                map_fatal(c, rv);
                c->flags |= H2_C_GOAWAY_FLUSHED;
                return -c->error;
            }
            if (rv == 0)
                break;
            c->pend = p;
            c->pend_len = (size_t)rv;
        }
        size_t k = c->pend_len < cap - n ? c->pend_len : cap - n;
        memcpy(out + n, c->pend, k);
        c->pend += k;
        c->pend_len -= k;
        n += k;
    }
    c->st.bytes_out += n;
    return (ssize_t)n;
}

bool h2_conn_want_write(const struct h2_conn *c)
{
    if (c->pend_len)
        return true;
    if (c->error && (c->flags & H2_C_GOAWAY_FLUSHED))
        return false;
    return nghttp2_session_want_write(c->session) != 0;
}

bool h2_conn_want_read(const struct h2_conn *c)
{
    return !c->error && nghttp2_session_want_read(c->session) != 0;
}

bool h2_conn_is_done(const struct h2_conn *c)
{
    if (c->pend_len)
        return false;
    if (c->error)
        return (c->flags & H2_C_GOAWAY_FLUSHED) != 0;
    return !nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session);
}

int h2_conn_error(const struct h2_conn *c)
{
    return -c->error;
}

const char *h2_conn_reason(const struct h2_conn *c)
{
    return c->reason;
}

const struct h2_stats *h2_conn_stats(const struct h2_conn *c)
{
    return &c->st;
}

size_t h2_conn_num_streams(const struct h2_conn *c)
{
    return c->nuser;
}

size_t h2_conn_queued(const struct h2_conn *c)
{
    return c->queued;
}

int32_t h2_submit_request(struct h2_conn *c, const struct h2_head *head, bool has_body, void *user)
{
    if (c->error)
        return -c->error;
    if (c->role != H2_CLIENT || !head || !head->method || !head->method_len)
        return -EINVAL;
    if (c->flags & (H2_C_GOAWAY_SENT | H2_C_GOAWAY_RECV))
        return -ESHUTDOWN;
    nghttp2_nv *nva = malloc((head->num_headers + 4) * sizeof(*nva));
    struct h2_stream *s = stream_new(0);
    size_t n = 0;
    int rv = -ENOMEM;
    if (!nva || !s || stream_reserve(c) != 0)
        goto fail;
    nv_set(&nva[n++], ":method", 7, head->method, head->method_len);
    if (head->scheme)
        nv_set(&nva[n++], ":scheme", 7, head->scheme, head->scheme_len);
    if (head->authority)
        nv_set(&nva[n++], ":authority", 10, head->authority, head->authority_len);
    if (head->path)
        nv_set(&nva[n++], ":path", 5, head->path, head->path_len);
    rv = nv_add_fields(nva, &n, head->headers, head->num_headers);
    if (rv != 0)
        goto fail;
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(c->session, NULL, nva, n, has_body ? &prd : NULL, s);
    if (id < 0) {
        rv = map_ng(id);
        goto fail;
    }
    s->id = id;
    s->user = user;
    s->flags = H2_S_USER_OPEN | (has_body ? H2_S_HAS_BODY : H2_S_DATA_END);
    stream_insert(c, s);
    c->nuser++;
    c->st.streams_opened++;
    free(nva);
    return id;
fail:
    free(nva);
    free(s);
    return rv;
}

/* The stream the proxy may act on: known and not reset by it. */
static struct h2_stream *user_stream(const struct h2_conn *c, int32_t id)
{
    struct h2_stream *s = stream_find(c, id);
    if (!s || !(s->flags & H2_S_USER_OPEN) || (s->flags & H2_S_USER_RESET))
        return NULL;
    return s;
}

int h2_submit_response(struct h2_conn *c, int32_t stream_id, int status,
                       const struct h2_header *headers, size_t num_headers, bool has_body)
{
    struct h2_stream *s = user_stream(c, stream_id);
    char st[4];
    int rv;

    if (c->role != H2_SERVER || status < 100 || status > 599)
        return -EINVAL;
    if (!s)
        return -ENOENT;
    if (s->flags & H2_S_RESPONDED)
        return -EINVAL;
    nghttp2_nv *nva = malloc((num_headers + 1) * sizeof(*nva));
    size_t n = 0;
    if (!nva)
        return -ENOMEM;
    snprintf(st, sizeof(st), "%03d", status);
    nv_set(&nva[n++], ":status", 7, st, 3);
    rv = nv_add_fields(nva, &n, headers, num_headers);
    if (rv == 0 && status < 200) {
        rv = nghttp2_submit_headers(c->session, NGHTTP2_FLAG_NONE, stream_id, NULL, nva, n, NULL);
        rv = rv < 0 ? map_ng(rv) : 0;
    } else if (rv == 0) {
        nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_body};
        rv = nghttp2_submit_response(c->session, stream_id, nva, n, has_body ? &prd : NULL);
        if (rv == 0)
            s->flags |= H2_S_RESPONDED | (has_body ? H2_S_HAS_BODY : H2_S_DATA_END);
        else
            rv = map_ng(rv);
    }
    free(nva);
    return rv;
}

static void resume(struct h2_conn *c, struct h2_stream *s)
{
    if (s->flags & H2_S_DEFERRED) {
        s->flags &= ~H2_S_DEFERRED;
        nghttp2_session_resume_data(c->session, s->id);
    }
}

int h2_submit_data(struct h2_conn *c, int32_t stream_id, const void *data, size_t len, bool end)
{
    struct h2_stream *s = user_stream(c, stream_id);

    if (!s)
        return -ENOENT;
    if (!(s->flags & H2_S_HAS_BODY) || (s->flags & H2_S_DATA_END))
        return -EPIPE;
    if (len > c->lim.max_stream_queue - s->queued) {
        c->st.queue_full++;
        return -ENOBUFS;
    }
    if (len) {
        struct h2_chunk *ch = malloc(sizeof(*ch) + len);
        if (!ch)
            return -ENOMEM;
        ch->next = NULL;
        ch->len = len;
        ch->off = 0;
        memcpy(ch->data, data, len);
        if (s->qtail)
            s->qtail->next = ch;
        else
            s->qhead = ch;
        s->qtail = ch;
        s->queued += len;
        c->queued += len;
    }
    if (end)
        s->flags |= H2_S_DATA_END;
    resume(c, s);
    return 0;
}

int h2_submit_trailers(struct h2_conn *c, int32_t stream_id, const struct h2_header *trailers,
                       size_t num_trailers)
{
    struct h2_stream *s = user_stream(c, stream_id);
    nghttp2_nv *tmp;
    size_t n = 0, strings = 0;

    if (!s)
        return -ENOENT;
    if (!(s->flags & H2_S_HAS_BODY) || (s->flags & H2_S_DATA_END))
        return -EPIPE;
    tmp = malloc((num_trailers + 1) * sizeof(*tmp));
    if (!tmp)
        return -ENOMEM;
    int rv = nv_add_fields(tmp, &n, trailers, num_trailers);
    if (rv != 0) {
        free(tmp);
        return rv;
    }
    for (size_t i = 0; i < n; i++)
        strings += tmp[i].namelen + tmp[i].valuelen;
    /* One allocation: the array, then the strings it points to. */
    nghttp2_nv *nva = malloc(n * sizeof(*nva) + strings + 1);
    if (!nva) {
        free(tmp);
        return -ENOMEM;
    }
    uint8_t *p = (uint8_t *)(nva + n);
    for (size_t i = 0; i < n; i++) {
        nva[i] = tmp[i];
        memcpy(p, tmp[i].name, tmp[i].namelen);
        nva[i].name = p;
        p += tmp[i].namelen;
        memcpy(p, tmp[i].value, tmp[i].valuelen);
        nva[i].value = p;
        p += tmp[i].valuelen;
    }
    free(tmp);
    s->trailers = nva;
    s->num_trailers = n;
    s->flags |= H2_S_DATA_END;
    resume(c, s);
    return 0;
}

int h2_reset_stream(struct h2_conn *c, int32_t stream_id, uint32_t error_code)
{
    struct h2_stream *s = user_stream(c, stream_id);

    if (!s)
        return -ENOENT;
    s->flags |= H2_S_USER_RESET;
    stream_drop_queue(c, s);
    int rv = nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, stream_id, error_code);
    return rv ? map_ng(rv) : 0;
}

int h2_goaway(struct h2_conn *c, uint32_t error_code)
{
    if (c->flags & H2_C_GOAWAY_SENT)
        return -EALREADY;
    c->goaway_last = nghttp2_session_get_last_proc_stream_id(c->session);
    int rv =
        nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, c->goaway_last, error_code, NULL, 0);
    if (rv != 0)
        return map_ng(rv);
    c->flags |= H2_C_GOAWAY_SENT;
    return 0;
}

int h2_stream_consumed(struct h2_conn *c, int32_t stream_id, size_t n)
{
    struct h2_stream *s = stream_find(c, stream_id);

    if (!s)
        return -ENOENT;
    if (n > s->unconsumed)
        n = s->unconsumed;
    if (!n)
        return 0;
    s->unconsumed -= n;
    int rv = nghttp2_session_consume(c->session, stream_id, n);
    return rv ? map_ng(rv) : 0;
}

size_t h2_stream_queued(const struct h2_conn *c, int32_t stream_id)
{
    const struct h2_stream *s = stream_find(c, stream_id);
    return s ? s->queued : 0;
}

size_t h2_stream_unconsumed(const struct h2_conn *c, int32_t stream_id)
{
    const struct h2_stream *s = stream_find(c, stream_id);
    return s ? s->unconsumed : 0;
}

int h2_stream_set_user(struct h2_conn *c, int32_t stream_id, void *user)
{
    struct h2_stream *s = (struct h2_stream *)stream_find(c, stream_id);
    if (!s)
        return -ENOENT;
    s->user = user;
    return 0;
}
