/*
 * stream.h - the one request model: a message head (request, response or trailers) that
 * both codecs translate to and from, plus the proxy's header edits (x-forwarded-proto,
 * x-request-id, traceparent), locally generated responses and the facts retries need.
 * Pure: no I/O, no clocks, no global state; randomness comes from the caller.
 *
 * Ownership and threads: a struct stream_head is owned by one stream on one worker and
 * never shared. It owns its field array and an arena of blocks holding every byte it
 * copied (names, values, pseudo-headers); block memory never moves, so views handed out
 * stay valid until stream_head_reset/stream_head_free. Fields added by the router's
 * header modifiers point into the routing table (borrowed): the stream pins its config
 * snapshot for its whole life, which keeps them valid.
 *
 * Decisions (each one has a test in tests/unit/stream_test.c):
 * - The field list IS a struct router_headers (router.h): router_route() matches on
 *   head->fields.v directly and router_header_mod_apply() edits head->fields in place, so
 *   a request head is copied once, from the codec's buffer into the arena, and never
 *   again. Names are stored lower-case (HTTP/2's form); names a modifier adds in another
 *   case are lower-cased into the arena on the way to HTTP/2.
 * - Pseudo-headers live in their own members, not in the list. Content-Length is not in
 *   the list either: it becomes content_length + STREAM_F_HAS_CL and each serializer
 *   writes the framing it decides, so framing has one source of truth. Host likewise
 *   becomes the authority (an HTTP/2 request whose host field differs from :authority is
 *   rejected, RFC 9113 §8.3.1).
 * - Hop-by-hop fields are dropped on the way in from HTTP/1.1: Connection, Keep-Alive,
 *   Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade and every field Connection
 *   names (h1.c flags them). "TE: trailers" survives as STREAM_F_TE_TRAILERS and is written
 *   back as "te: trailers" on HTTP/2. Upgrade sets STREAM_F_UPGRADE: the proxy hands such
 *   a connection to the byte relay; this module does not translate WebSocket to HTTP/2.
 * - Expect: 100-continue is removed and noted (STREAM_F_EXPECT_CONTINUE): the proxy
 *   answers "100 Continue" itself, as Envoy does by default, and never forwards Expect.
 * - Cookie: HTTP/2 crumbs stay separate fields in the model and are joined with "; " only
 *   when written to HTTP/1.1 (RFC 9113 §8.2.3); HTTP/1.1 cookies pass unchanged.
 * - Limits: field bytes (name + value, pseudo-headers included) and field count are
 *   checked on the way in (default 64 KiB, 100 fields, as h1/h2); past them,
 *   -STREAM_E_TOO_LARGE / -STREAM_E_TOO_MANY (431 on HTTP/1.1, a stream reset on HTTP/2).
 *   The array has STREAM_EXTRA_FIELDS more slots for the proxy's own and the router's
 *   additions.
 * - Body framing to HTTP/1.1 (stream_h1_framing): none for HEAD, 1xx, 204, 304 (a
 *   HEAD/304 keeps its Content-Length field); Content-Length when known; a head that ends
 *   the stream gets "Content-Length: 0" (requests: only POST/PUT/PATCH); otherwise chunked
 *   to an HTTP/1.1 peer and close-delimited to an HTTP/1.0 one.
 * - Trailers over HTTP/1.1: sent as chunked trailer fields whenever the body is chunked
 *   (a recipient may discard them, RFC 9112 §7.1.2). With Content-Length or close framing
 *   there is no place for them: they are dropped, and stream_h1_can_carry_trailers() lets
 *   the proxy count it (Envoy drops them by default too). A gRPC response never carries
 *   Content-Length, so grpc-status always reaches an HTTP/1.1 peer. Framing, routing and
 *   hop-by-hop names are never accepted as trailers (RFC 9110 §6.5.1).
 * - Proxy headers follow Envoy's sidecar defaults (Istio sets use_remote_address only on
 *   gateways): x-forwarded-proto is set from the downstream scheme when absent (overwritten
 *   only when asked); x-forwarded-for is left as received unless the caller asks to append
 *   the peer address; x-request-id is kept when present, else a UUIDv4 from caller
 *   randomness; b3 headers are never touched.
 * - traceparent (W3C Trace Context level 1): a valid version-00 one (exactly one field)
 *   gets this hop's span: same trace id and flags byte, new parent id. An absent one is
 *   not invented (no tracer here records spans, so a trace we started would point at
 *   spans nobody has); an invalid one, a later version or two fields pass through as they
 *   came, so the proxy never breaks a request over it and never rewrites what it does not
 *   understand. tracestate always passes untouched (docs/tracing.md).
 * - Local replies carry "x-ringmesh-flags: <Envoy response flag>" so tests and clients can
 *   see why (Envoy keeps flags in logs only); bodies are Envoy's texts. A gRPC request gets
 *   a trailers-only response (HTTP 200, grpc-status, grpc-message) with the status mapped
 *   by gRPC's HTTP table (stream_grpc_status_from_http: 504 -> UNAVAILABLE), except an
 *   upstream timeout (flag UT), which answers DEADLINE_EXCEEDED, as Envoy now does
 *   (envoyproxy/envoy#10184), so clients do not retry a spent deadline.
 */
#ifndef RINGMESH_STREAM_H
#define RINGMESH_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "h1.h"
#include "h2.h"
#include "router.h"

#define STREAM_DEFAULT_MAX_HEADER_LEN (64 * 1024)
#define STREAM_DEFAULT_MAX_FIELDS     100
#define STREAM_EXTRA_FIELDS           32 /* slots beyond max_fields for proxy/router edits */
#define STREAM_ARENA_BLOCK            4096

/* Errors, returned negated (-STREAM_E_*); 3000.. so they never meet h1 (1000..) or h2
 * (2000..) errors. stream_error_status() gives the HTTP answer. */
enum stream_error {
    STREAM_E_TOO_LARGE = 3000, /* field bytes over max_header_len (431) */
    STREAM_E_TOO_MANY,         /* more fields than max_fields (431) */
    STREAM_E_NO_AUTHORITY,     /* no Host / :authority and no original destination (400) */
    STREAM_E_BAD_PSEUDO,       /* missing or malformed pseudo-header (400) */
    STREAM_E_BAD_FIELD,        /* a name or value that cannot cross to the other codec (400) */
    STREAM_E_HOST_MISMATCH,    /* HTTP/2 host field differs from :authority (400) */
    STREAM_E_NOMEM,            /* an allocation failed (500) */
    STREAM_E__COUNT
};

/* A short stable name for an error, for logs and metric labels (value or negation). */
const char *stream_error_str(int err);
/* The status to answer a request that failed with err (or -err): 431, 400 or 500. */
int stream_error_status(int err);

enum stream_kind {
    STREAM_REQUEST,
    STREAM_RESPONSE,
    STREAM_TRAILERS,
};

/* Flags on a head (struct stream_head.flags). */
#define STREAM_F_HAS_CL          0x0001u /* content_length is a Content-Length field's value */
#define STREAM_F_END_STREAM      0x0002u /* no body (and no trailers) follows this head */
#define STREAM_F_TE_TRAILERS     0x0004u /* request said TE: trailers */
#define STREAM_F_EXPECT_CONTINUE 0x0008u /* HTTP/1.1 Expect: 100-continue (removed) */
#define STREAM_F_UPGRADE         0x0010u /* HTTP/1.1 Upgrade request (byte relay, not h2) */
#define STREAM_F_HTTP10          0x0020u /* came from an HTTP/1.0 peer */
#define STREAM_F_KEEP_ALIVE      0x0040u /* the HTTP/1.x connection may be reused after it */
#define STREAM_F_CLOSE           0x0080u /* written to HTTP/1.1 with "Connection: close" */

/* Limits; zero fields mean the defaults. */
struct stream_limits {
    size_t max_header_len; /* name + value bytes of all fields, pseudo-headers included */
    size_t max_fields;     /* fields received (pseudo-headers not counted) */
};

struct stream_block; /* arena block, private */

/*
 * One message head. Members are read-only for callers except through the functions
 * below and router_headers_* / router_header_mod_apply on fields. Pointers are into the
 * arena (owned), to static strings, or (router additions) into the routing table.
 */
struct stream_head {
    enum stream_kind kind;
    const char *method; /* request; NUL-terminated */
    size_t method_len;
    const char *scheme; /* request; NULL for CONNECT */
    size_t scheme_len;
    const char *authority; /* request; never NULL after a successful stream_from_* */
    size_t authority_len;
    const char *path; /* request, origin-form with query, or "*"; NULL for CONNECT */
    size_t path_len;
    int status;          /* response */
    const char *upgrade; /* with STREAM_F_UPGRADE: the Upgrade value to write to
                          * HTTP/1.1 (with "Connection: upgrade"), in the arena */
    size_t upgrade_len;
    struct router_headers fields; /* v owned; entries point into the arena or the table */
    uint64_t content_length;      /* valid with STREAM_F_HAS_CL */
    unsigned flags;               /* STREAM_F_* */
    /* private */
    struct stream_limits limits;
    size_t in_len;               /* bytes counted against max_header_len */
    struct stream_block *blocks; /* owned, newest first */
    size_t arena_len;            /* bytes in all blocks */
    struct h1_header *h1v;       /* owned scratch for the HTTP/1.1 serializer */
    struct h2_header *h2v;       /* owned scratch for the HTTP/2 submit calls */
};

/* Prepares an empty head of the given kind (limits NULL: defaults) and allocates its
 * field array. Returns 0 or -STREAM_E_NOMEM (then stream_head_free is still safe). */
int stream_head_init(struct stream_head *h, enum stream_kind kind,
                     const struct stream_limits *limits);
/* Empties h for reuse as kind (keeps one arena block and the arrays). */
void stream_head_reset(struct stream_head *h, enum stream_kind kind);
/* Frees everything h owns; h must be init'ed again before reuse. */
void stream_head_free(struct stream_head *h);

/* Copies len bytes into the head's arena (NUL-terminated); NULL when the arena cannot
 * grow. Not counted against max_header_len: for values the proxy generates. */
const char *stream_head_strdup(struct stream_head *h, const char *s, size_t len);

/* Copies a field into the arena and appends it (lower-cased name). Counted against the
 * limits like received fields. 0, -STREAM_E_TOO_LARGE/-TOO_MANY/-NOMEM. */
int stream_head_add(struct stream_head *h, const char *name, size_t name_len, const char *value,
                    size_t value_len);
/* router_headers_set with both strings copied into the arena first (not counted). 0 or
 * -STREAM_E_NOMEM / -ENOSPC. */
int stream_head_set(struct stream_head *h, const char *name, size_t name_len, const char *value,
                    size_t value_len);
/* The first field called name (case-insensitive), or NULL. */
const struct router_header *stream_head_get(const struct stream_head *h, const char *name);

/* A struct router_request for router_route(): views of h (no copy) and client_ns. */
void stream_router_request(const struct stream_head *h, const char *client_ns,
                           struct router_request *out);

/* ---- from the codecs ---- */

/*
 * An HTTP/1.1 request parsed by h1_parse_request into h (a STREAM_REQUEST head, reset
 * first). orig_authority ("10.0.0.5:8080", from the original destination) is used when
 * the request has no Host and no absolute-form target (HTTP/1.0); NULL then means
 * -STREAM_E_NO_AUTHORITY. Every byte is copied; req's buffer may go afterwards.
 */
int stream_from_h1_request(struct stream_head *h, const struct h1_request *req,
                           const char *orig_authority, size_t orig_authority_len);

/* An HTTP/1.1 response head (from h1_parse_response) into h (a STREAM_RESPONSE head). */
int stream_from_h1_response(struct stream_head *h, const struct h1_response *resp);

/* An HTTP/2 request's header block (h2 headers callback) into h; end_stream as given by
 * the callback. Checks what nghttp2 leaves: :authority or host present and agreeing, a
 * userinfo-free authority, a :path that can sit in an HTTP/1.1 request-line, values
 * without CR/LF/NUL or surrounding whitespace, a valid content-length. */
int stream_from_h2_request(struct stream_head *h, const struct h2_head *hd, bool end_stream);

/* An HTTP/2 response header block into h (a STREAM_RESPONSE head). */
int stream_from_h2_response(struct stream_head *h, const struct h2_head *hd, bool end_stream);

/* Trailer fields into h (a STREAM_TRAILERS head): from the h1 decoder or the h2 trailers
 * callback. Pseudo-headers, hop-by-hop, framing and routing fields are dropped. */
int stream_trailers_from_h1(struct stream_head *h, const struct h1_header *t, size_t n);
int stream_trailers_from_h2(struct stream_head *h, const struct h2_header *t, size_t n);

/* ---- to the codecs ---- */

/*
 * Fills out for h2_submit_request (request heads) or h2_submit_response(out->status,
 * out->headers, out->num_headers) (response heads); also trailers (out->headers for
 * h2_submit_trailers). The array is h's scratch: valid until h changes. Names are
 * lower-case; connection-specific fields and host are left out; content-length is
 * written from the hint; a request with STREAM_F_TE_TRAILERS or a gRPC request gets
 * "te: trailers". 0 or -STREAM_E_NOMEM / -STREAM_E_BAD_FIELD.
 */
int stream_to_h2(struct stream_head *h, struct h2_head *out);

/* How a body goes on an HTTP/1.x connection. */
enum stream_framing {
    STREAM_FRAME_NONE,    /* no body bytes at all */
    STREAM_FRAME_LENGTH,  /* Content-Length: content_length (0 when the head ends it) */
    STREAM_FRAME_CHUNKED, /* Transfer-Encoding: chunked (trailers possible) */
    STREAM_FRAME_CLOSE,   /* HTTP/1.0 response: body until we close the connection */
};

/*
 * The framing for writing h to an HTTP/1.x peer. For a response, request_method is the
 * method it answers (HEAD changes it) and peer_minor_version the client's HTTP/1.x minor
 * version (0: no chunked). For a request, both are ignored (the app is HTTP/1.1).
 */
enum stream_framing stream_h1_framing(const struct stream_head *h, const char *request_method,
                                      size_t request_method_len, int peer_minor_version);

/* Writes h as an HTTP/1.1 request head (Host first, fields in order, cookie crumbs
 * joined, framing fields for fr) with h1_write_request_head. Returns the length or
 * -ENOSPC / -EINVAL (h1's) / -STREAM_E_NOMEM. */
ssize_t stream_write_h1_request(struct stream_head *h, enum stream_framing fr, char *out,
                                size_t cap);

/* Writes h as an HTTP/1.1 response head with h1_write_response_head, framing fields
 * for fr ("Connection: close" with STREAM_FRAME_CLOSE). Same returns. */
ssize_t stream_write_h1_response(struct stream_head *h, enum stream_framing fr, char *out,
                                 size_t cap);

/* True if trailers can be written to an HTTP/1.1 body framed as fr (only chunked); the
 * proxy drops them otherwise and counts it. */
bool stream_h1_can_carry_trailers(enum stream_framing fr);

/* The end of a chunked body with t's fields ("0\r\n" fields "\r\n"); t may be NULL (no
 * trailers). Length or -ENOSPC / -EINVAL. */
ssize_t stream_write_h1_last_chunk(struct stream_head *t, char *out, size_t cap);

/* ---- proxy headers ---- */

/*
 * x-forwarded-proto: set to proto when absent, or always when overwrite. x-forwarded-for:
 * when peer_addr is non-NULL, appended (", " joined onto the last field, or a new field);
 * NULL leaves it as received (the sidecar default). 0 or -STREAM_E_NOMEM / -ENOSPC.
 */
int stream_forwarded(struct stream_head *h, const char *proto, bool overwrite,
                     const char *peer_addr);

#define STREAM_REQUEST_ID_LEN 36 /* 8-4-4-4-12 hex digits */

/* Formats rnd as a UUIDv4 (version and variant bits forced) into out (37 bytes). */
void stream_uuid4(const uint8_t rnd[16], char out[STREAM_REQUEST_ID_LEN + 1]);

/* Keeps an existing x-request-id; else sets one made from rnd. Returns 1 when it
 * generated one, 0 when one was there, or -STREAM_E_NOMEM / -ENOSPC. */
int stream_request_id(struct stream_head *h, const uint8_t rnd[16]);

/* A W3C traceparent's fields. */
struct stream_traceparent {
    uint8_t version;
    uint8_t trace_id[16];
    uint8_t span_id[8]; /* "parent-id" on the wire */
    uint8_t flags;      /* bit 0: sampled */
};

#define STREAM_TRACEPARENT_LEN 55

/* Parses and validates a traceparent value (W3C Trace Context §3.2: lower-case hex,
 * version != ff, version 00 exactly 55 bytes, a later version at least 55 with '-' after,
 * non-zero trace and parent ids). 0 or -EINVAL. */
int stream_traceparent_parse(const char *v, size_t len, struct stream_traceparent *out);

/* Formats tp as a version-00 traceparent into out (56 bytes); the flags byte as it is. */
void stream_traceparent_format(const struct stream_traceparent *tp,
                               char out[STREAM_TRACEPARENT_LEN + 1]);

/*
 * This hop's span: when h holds exactly one traceparent field and it is a valid version-00
 * value, it is rewritten with the same trace id and flags and a new parent id from
 * span_rnd (all-zero randomness is nudged to stay valid). Anything else (none, invalid,
 * another version, two fields) is left as it is. tracestate is never touched. Returns 1
 * when rewritten (the new fields in out, which may be NULL), 0 when left alone, or
 * -STREAM_E_NOMEM / -ENOSPC.
 */
int stream_trace_continue(struct stream_head *h, const uint8_t span_rnd[8],
                          struct stream_traceparent *out);

/* ---- local replies ---- */

/* gRPC status codes the proxy produces. */
#define STREAM_GRPC_OK                 0
#define STREAM_GRPC_CANCELLED          1
#define STREAM_GRPC_UNKNOWN            2
#define STREAM_GRPC_DEADLINE_EXCEEDED  4
#define STREAM_GRPC_PERMISSION_DENIED  7
#define STREAM_GRPC_RESOURCE_EXHAUSTED 8
#define STREAM_GRPC_UNIMPLEMENTED      12
#define STREAM_GRPC_INTERNAL           13
#define STREAM_GRPC_UNAVAILABLE        14
#define STREAM_GRPC_UNAUTHENTICATED    16

/* gRPC's HTTP-to-gRPC table (doc/http-grpc-status-mapping.md, as Envoy's
 * httpToGrpcStatus): 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED,
 * 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, anything else UNKNOWN. */
int stream_grpc_status_from_http(int http_status);

/* Envoy's body text for a local reply with this status and flag (never NULL, may be ""):
 * "no healthy upstream" (UH), "upstream request timeout" (UT), "upstream connect error
 * or disconnect/reset before headers. reset reason: ..." (UF, UC, UR, LR, UO, URX)... */
const char *stream_local_body(int status, const char *flag);

/*
 * Builds the local reply to req (may be NULL: not gRPC) into resp (a STREAM_RESPONSE
 * head, reset first): status, flag (Envoy response flag or NULL) and message (NULL: the
 * stream_local_body text). Plain HTTP: content-type text/plain, x-ringmesh-flags, and the
 * text as body (*body, *body_len; static or in resp's arena; HEAD gets the length but
 * no body). gRPC: a trailers-only response, HTTP 200, grpc-status, grpc-message
 * (percent-encoded), no body (STREAM_F_END_STREAM). 0 or -STREAM_E_NOMEM.
 */
int stream_local_reply(struct stream_head *resp, const struct stream_head *req, int status,
                       const char *flag, const char *message, const char **body, size_t *body_len);

/* ---- facts for retries ---- */

/* RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE. Case-sensitive. */
bool stream_method_is_idempotent(const char *method, size_t len);
/* content-type application/grpc, alone or followed by '+' or ';'. */
bool stream_is_grpc(const struct stream_head *h);
/* grpc-status of a trailers head or a trailers-only response: 0..99, or -1 if absent or
 * not a number. */
int stream_grpc_status(const struct stream_head *h);

#endif
