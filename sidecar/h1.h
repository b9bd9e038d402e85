/*
 * h1.h - a strict, incremental HTTP/1.1 codec (RFC 9110, RFC 9112). Pure: no I/O, no
 * allocation, no global state; any thread may use it on its own objects.
 *
 * Parsers follow picohttpparser's contract: the caller passes (buf, len); the result is
 * the number of bytes consumed, -EAGAIN when more bytes are needed (call again with the
 * same bytes plus more, the buffer may have moved), or -H1_E_* (enum h1_error) for
 * malformed or dangerous input. Header views point into the caller's buffer and stay
 * valid as long as those bytes do. Parser objects remember only offsets, so a byte-by-
 * byte feed costs O(n) in total, not O(n^2).
 *
 * Decisions (each one is also tested in tests/unit/h1_test.c):
 * - Line endings are CRLF only. A bare LF is rejected (H1_E_BARE_LF), as is a bare CR
 *   (H1_E_BARE_CR), in the head, chunk lines and trailers. RFC 9112 §2.2 allows a
 *   recipient to accept LF alone; every client a mesh sees sends CRLF, and lenient LF
 *   handling is where several parser-differential smuggling bugs came from.
 * - Identical duplicate Content-Length values ("5" twice, or "5, 5") are merged, as
 *   RFC 9110 §8.6 allows; differing ones are H1_E_CL_MULTIPLE.
 * - Content-Length together with Transfer-Encoding is an error for requests and for
 *   responses (RFC 9112 §6.3 calls it a likely smuggling attempt); so is
 *   Transfer-Encoding in an HTTP/1.0 message (§6.1).
 * - Empty lines (CRLF) before a request-line are skipped (RFC 9112 §2.2) and count
 *   towards the head's size limit, so a stream of them still ends in an error.
 * - Transfer codings: only "chunked" is implemented. A request whose Transfer-Encoding
 *   is anything but a single "chunked" is rejected (not-chunked-last, chunked-twice or
 *   unknown); a response the same way, since an HTTP/2 peer cannot carry a transfer
 *   coding either. Responses without framing are close-delimited.
 * - A request-target is ASCII VCHARs only (raw UTF-8 and CTLs are H1_E_BAD_TARGET); field
 *   values may hold obs-text (bytes >= 0x80), as RFC 9110 §5.5 allows.
 * - "HTTP/1.1 200\r\n" (no SP before an empty reason) is accepted: common, and it
 *   changes nothing about framing.
 * - Upgrade counts only with "Connection: upgrade" in HTTP/1.1; Host is never flagged
 *   hop-by-hop even when Connection names it.
 * - Limits: 64 KiB head (H1_DEFAULT_MAX_HEAD_LEN), 100 fields (H1_DEFAULT_MAX_HEADERS),
 *   4 KiB of chunk extensions per chunk, 16 hex digits per chunk size, 32 Connection
 *   options (each may name a field to strip; the bound keeps that work linear).
 */
#ifndef RINGMESH_H1_H
#define RINGMESH_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define H1_DEFAULT_MAX_HEAD_LEN   (64 * 1024)
#define H1_DEFAULT_MAX_HEADERS    100
#define H1_DEFAULT_MAX_CHUNK_EXT  4096
#define H1_MAX_CHUNK_SIZE_DIGITS  16
#define H1_MAX_CONNECTION_OPTIONS 32 /* tokens in Connection, all fields together */

/*
 * Errors, returned negated (-H1_E_*). Values start at 1000 so they never collide with
 * -EAGAIN / -ENOSPC / -EINVAL. Each is a distinct reason for logs and counters;
 * h1_error_status() gives the HTTP status a server answers with (then closes).
 */
enum h1_error {
    H1_E_HEAD_TOO_LARGE = 1000, /* head longer than max_head_len (431) */
    H1_E_TOO_MANY_HEADERS,      /* more fields than max_headers or the array (431) */
    H1_E_BAD_METHOD,            /* method empty or not a token */
    H1_E_BAD_TARGET,            /* request-target: CTL/space/non-ASCII, or wrong form */
    H1_E_BAD_REQUEST_LINE,      /* request-line shape: extra spaces, junk after version */
    H1_E_HTTP09,                /* request-line without a version (HTTP/0.9) */
    H1_E_BAD_VERSION,           /* not "HTTP/" DIGIT "." DIGIT */
    H1_E_VERSION_UNSUPPORTED,   /* well-formed but not HTTP/1.0 or 1.1 (505) */
    H1_E_BAD_STATUS_LINE,       /* status-line shape */
    H1_E_BAD_STATUS,            /* status code not 3 digits in 100..599 */
    H1_E_BARE_CR,               /* CR not followed by LF */
    H1_E_BARE_LF,               /* LF not preceded by CR */
    H1_E_OBS_FOLD,              /* a field line starting with SP/HTAB (obs-fold) */
    H1_E_SPACE_BEFORE_COLON,    /* whitespace between field name and colon */
    H1_E_BAD_HEADER_NAME,       /* empty field name or a byte that is not a tchar */
    H1_E_NO_COLON,              /* a field line without a colon */
    H1_E_BAD_HEADER_VALUE,      /* CTL (other than HTAB) or DEL in a field value */
    H1_E_CL_AND_TE,             /* both Content-Length and Transfer-Encoding */
    H1_E_CL_INVALID,            /* Content-Length not 1*DIGIT, or over INT64_MAX */
    H1_E_CL_MULTIPLE,           /* Content-Length values that differ */
    H1_E_TE_INVALID,            /* Transfer-Encoding syntax (empty, bad token) */
    H1_E_TE_UNKNOWN,            /* a request transfer-coding we do not implement (501) */
    H1_E_TE_NOT_CHUNKED_LAST,   /* request Transfer-Encoding whose last coding isn't chunked */
    H1_E_TE_CHUNKED_TWICE,      /* chunked applied more than once (RFC 9112 §6.1) */
    H1_E_TE_HTTP10,             /* Transfer-Encoding in an HTTP/1.0 message (§6.1) */
    H1_E_HOST_MISSING,          /* HTTP/1.1 request without Host */
    H1_E_HOST_MULTIPLE,         /* more than one Host field */
    H1_E_BAD_HOST,              /* Host value is not a uri-host [":" port] */
    H1_E_CHUNK_SIZE,            /* chunk size empty or not hex */
    H1_E_CHUNK_SIZE_OVERFLOW,   /* chunk size over 16 hex digits */
    H1_E_CHUNK_EXT,             /* bad byte in a chunk extension */
    H1_E_CHUNK_EXT_TOO_LONG,    /* chunk extensions over max_chunk_ext */
    H1_E_CHUNK_DATA_CRLF,       /* chunk data not followed by CRLF */
    H1_E_TRAILERS_TOO_LARGE,    /* trailer section over max_trailers_len */
    H1_E_BODY_TRUNCATED,        /* connection closed before the body's end */
    H1_E_CONN_OPTIONS,          /* Connection lists over H1_MAX_CONNECTION_OPTIONS */
    H1_E__COUNT                 /* not an error: end of the list */
};

/* A short stable name for an error ("bare_lf", "cl_and_te"...) for logs and metric
 * labels; accepts the enum value or its negation, and -EAGAIN/-ENOSPC/-EINVAL. */
const char *h1_error_str(int err);
/* The status a server should answer a request that failed with err: 431 for size
 * limits, 505 for unsupported versions, 501 for unknown transfer-codings, else 400.
 * Accepts err or -err. The connection must be closed after the answer. */
int h1_error_status(int err);

/* Methods the codec needs to tell apart; everything else is H1_M_OTHER. */
enum h1_method {
    H1_M_OTHER,
    H1_M_GET,
    H1_M_HEAD,
    H1_M_POST,
    H1_M_PUT,
    H1_M_DELETE,
    H1_M_CONNECT,
    H1_M_OPTIONS,
    H1_M_TRACE,
    H1_M_PATCH,
};

/* The four request-target forms of RFC 9112 §3.2. */
enum h1_target_form {
    H1_TARGET_ORIGIN,    /* "/path?query" */
    H1_TARGET_ABSOLUTE,  /* "http://host:port/path?query" */
    H1_TARGET_AUTHORITY, /* "host:port", CONNECT only */
    H1_TARGET_ASTERISK,  /* "*", OPTIONS only */
};

/* How the message body is delimited (RFC 9112 §6.3). */
enum h1_body {
    H1_BODY_NONE,    /* no body: HEAD responses, 1xx/204/304, requests without framing */
    H1_BODY_LENGTH,  /* exactly content_length bytes (may be 0) */
    H1_BODY_CHUNKED, /* chunked transfer coding, decoded by struct h1_decoder */
    H1_BODY_CLOSE,   /* responses only: everything until the server closes */
    H1_BODY_TUNNEL,  /* 101 or 2xx to CONNECT: the connection becomes a byte relay */
};

/* Flags on a parsed head (struct h1_message.flags). */
#define H1_F_KEEP_ALIVE        0x0001u /* connection may be reused after this message */
#define H1_F_CONN_CLOSE        0x0002u /* Connection: close */
#define H1_F_CONN_KEEP_ALIVE   0x0004u /* Connection: keep-alive */
#define H1_F_CONN_UPGRADE      0x0008u /* Connection: upgrade */
#define H1_F_UPGRADE           0x0010u /* Upgrade + Connection: upgrade, HTTP/1.1 */
#define H1_F_UPGRADE_WEBSOCKET 0x0020u /* ...and the Upgrade list names websocket */
#define H1_F_EXPECT_CONTINUE   0x0040u /* HTTP/1.1 request with Expect: 100-continue */
#define H1_F_EXPECT_OTHER      0x0080u /* an Expect the codec does not know (417) */
#define H1_F_HAS_TE            0x0100u /* a Transfer-Encoding field was present */
#define H1_F_HAS_TRAILER       0x0200u /* a Trailer field was present */
#define H1_F_TE_TRAILERS       0x0400u /* request "TE: trailers" (gRPC needs it) */

/* Flags on one field (struct h1_header.flags). */
#define H1_HF_HOP_BY_HOP 0x01u /* a proxy must not forward it (RFC 9110 §7.6.1) */

/* One field line: views into the caller's buffer, OWS trimmed from the value. */
struct h1_header {
    const char *name; /* borrowed; not NUL-terminated */
    size_t name_len;
    const char *value; /* borrowed; not NUL-terminated; may be empty */
    size_t value_len;
    unsigned flags; /* H1_HF_* */
};

/*
 * What requests and responses share. The caller sets headers/headers_cap before parsing
 * (its array, borrowed); the parser fills the rest.
 */
struct h1_message {
    struct h1_header *headers; /* in: caller's array (borrowed) */
    size_t headers_cap;        /* in: its length (0: any field is too many) */
    size_t num_headers;        /* out */
    int minor_version;         /* 0 or 1 */
    enum h1_body body;
    uint64_t content_length; /* for H1_BODY_LENGTH */
    unsigned flags;          /* H1_F_* */
    const char *upgrade;     /* first Upgrade value or NULL (borrowed) */
    size_t upgrade_len;
};

struct h1_request {
    struct h1_message msg;
    const char *method; /* borrowed */
    size_t method_len;
    enum h1_method method_id;
    const char *target; /* request-target as sent (borrowed) */
    size_t target_len;
    enum h1_target_form form;
    const char *path; /* origin: the target; absolute: after the authority, possibly
                       * empty; authority/asterisk: NULL */
    size_t path_len;
    const char *host; /* Host value or NULL (borrowed) */
    size_t host_len;
    const char *authority; /* target's authority if absolute/authority-form (RFC 9112
                            * §3.2.2: it wins over Host), else Host; may be NULL */
    size_t authority_len;
};

struct h1_response {
    struct h1_message msg;
    int status;
    const char *reason; /* borrowed; may be empty */
    size_t reason_len;
};

/* Parser limits; zero fields mean the defaults. */
struct h1_limits {
    size_t max_head_len; /* bytes from the first byte to the end of the empty line */
    size_t max_headers;  /* field lines; the caller's array may lower it */
};

/*
 * Per-connection head parser state: only offsets into the caller's buffer, so the
 * buffer may move between calls as long as its bytes stay the same. Owned by the
 * caller; reset by itself when a call returns a complete head or an error.
 */
struct h1_parser {
    size_t max_head_len;
    size_t max_headers;
    size_t scanned;    /* bytes already checked for the end of the head */
    size_t head_start; /* after skipped empty lines */
    size_t line_start; /* start of the line being scanned */
    size_t lines;      /* complete non-empty lines of this head */
};

/* Sets limits (NULL or zero fields: defaults) and resets the scan state. */
void h1_parser_init(struct h1_parser *p, const struct h1_limits *limits);
/* Forgets a partly scanned head (the caller dropped its buffer); keeps the limits. */
void h1_parser_reset(struct h1_parser *p);

/*
 * Parses a request head from buf[0..len). req->msg.headers/headers_cap must be set.
 * Returns the head's length in bytes (the body or next request starts there), -EAGAIN
 * when the head is incomplete (call again with these bytes and more), or -H1_E_*; on
 * error answer h1_error_status() and close. Errors in the request-line are reported as
 * soon as it is complete, not only once the whole head arrived.
 * The body framing is in req->msg.body (H1_BODY_CLOSE never occurs for requests).
 */
ssize_t h1_parse_request(struct h1_parser *p, const char *buf, size_t len, struct h1_request *req);

/*
 * Parses a response head, same contract as h1_parse_request. request_method is the
 * method of the request it answers (HEAD and CONNECT change the framing). A 1xx other
 * than 101 is interim (h1_status_is_interim()): parse again for the final response.
 * 101 and a 2xx to CONNECT give H1_BODY_TUNNEL.
 */
ssize_t h1_parse_response(struct h1_parser *p, const char *buf, size_t len,
                          enum h1_method request_method, struct h1_response *resp);

/* True for 1xx statuses other than 101: another response head follows. */
static inline bool h1_status_is_interim(int status)
{
    return status >= 100 && status < 200 && status != 101;
}

/* The method's enum; case-sensitive (RFC 9110 §9.1). */
enum h1_method h1_method_id(const char *method, size_t len);

/* True if a proxy must never forward a field of this name whatever the Connection
 * field says: Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
 * Upgrade (case-insensitive). The parser also flags (H1_HF_HOP_BY_HOP) every field the
 * message's Connection names, except Host, which a proxy needs to route. */
bool h1_is_hop_by_hop_name(const char *name, size_t len);

/* First field called name (case-insensitive) in msg, or NULL. */
const struct h1_header *h1_find_header(const struct h1_message *msg, const char *name, size_t len);

/* True if the comma-separated list value contains token (case-insensitive, OWS
 * around elements ignored). */
bool h1_list_has_token(const char *value, size_t value_len, const char *token, size_t len);

/*
 * Body decoding: one decoder per message body. Content-Length counting, chunked
 * decoding and close-delimited bodies behind one call. States (h1_state_str()):
 */
enum h1_state {
    H1_S_LENGTH,        /* counting down a Content-Length body */
    H1_S_CLOSE,         /* data until the connection closes (close-delimited, tunnel) */
    H1_S_CHUNK_SIZE,    /* chunk-size hex digits */
    H1_S_CHUNK_SIZE_WS, /* BWS after the size; only ";" may follow */
    H1_S_CHUNK_EXT,     /* inside chunk extensions, up to CR */
    H1_S_CHUNK_SIZE_LF, /* saw CR ending the size line, need LF */
    H1_S_CHUNK_DATA,    /* chunk data bytes */
    H1_S_CHUNK_DATA_CR, /* need the CR after chunk data */
    H1_S_CHUNK_DATA_LF, /* need the LF after chunk data */
    H1_S_TRAILERS,      /* last chunk seen; trailer section until an empty line */
    H1_S_DONE,          /* body complete; later bytes belong to the next message */
    H1_S_ERROR,         /* failed; every later call returns the same error */
};

/* A name for a state, for logs. */
const char *h1_state_str(enum h1_state s);

/*
 * Body decoder. Set trailers/trailers_cap before feeding a chunked body to receive
 * trailer fields (views into the buffer of the call that completed them); with NULL
 * trailers are checked and skipped. Owned by the caller; no pointers into the input
 * are kept between calls.
 */
struct h1_decoder {
    enum h1_state state;
    int error;                  /* -H1_E_* once in H1_S_ERROR */
    uint64_t remaining;         /* LENGTH: body bytes left; CHUNK_DATA: chunk bytes left */
    uint64_t total;             /* body bytes delivered so far */
    unsigned digits;            /* hex digits of the current chunk size */
    size_t ext_len;             /* chunk-extension bytes on the current size line */
    size_t max_chunk_ext;       /* limit; 0 = H1_DEFAULT_MAX_CHUNK_EXT */
    size_t max_trailers_len;    /* limit; 0 = H1_DEFAULT_MAX_HEAD_LEN */
    size_t max_trailers;        /* limit; 0 = H1_DEFAULT_MAX_HEADERS */
    struct h1_header *trailers; /* in: caller's array or NULL (borrowed) */
    size_t trailers_cap;
    size_t num_trailers;    /* out, once H1_S_DONE */
    size_t trailer_scanned; /* trailer bytes already scanned for the empty line */
    size_t trailer_line_start;
    size_t trailer_lines;
};

/* Starts decoding a body framed as body (content_length for H1_BODY_LENGTH). Limits
 * and the trailer array are zeroed: set them after this call. H1_BODY_NONE (and
 * LENGTH 0) start in H1_S_DONE; H1_BODY_TUNNEL behaves as H1_BODY_CLOSE. */
void h1_decoder_init(struct h1_decoder *d, enum h1_body body, uint64_t content_length);

/*
 * Feeds body bytes buf[0..len). Consumes framing and at most one contiguous run of body
 * data, which it reports as *data and *data_len (a view into buf; may be empty).
 * Returns the bytes consumed (0 < n <= len when len > 0; n == 0 only once done or when
 * len == 0): call again with buf + n while bytes remain and the decoder isn't done.
 * Chunk framing is consumed into the decoder's state byte by byte; the trailer section
 * is not: in H1_S_TRAILERS it returns -EAGAIN until the whole section is in buf (then
 * pass the same bytes again plus more). Returns -H1_E_* on malformed framing, and the
 * same error on every later call.
 */
ssize_t h1_decoder_feed(struct h1_decoder *d, const char *buf, size_t len, const char **data,
                        size_t *data_len);

/* True once the body is complete (H1_S_DONE). */
static inline bool h1_decoder_is_done(const struct h1_decoder *d)
{
    return d->state == H1_S_DONE;
}

/* The peer closed the connection: returns 0 if that is a clean end of this body (a
 * close-delimited or tunnel body, which becomes done, or an already complete one), else
 * -H1_E_BODY_TRUNCATED (a proxy must not make a truncated body look complete). */
int h1_decoder_eof(struct h1_decoder *d);

/*
 * Serializers. Each writes into out[0..cap) and returns the bytes written or -ENOSPC
 * (nothing useful written), or -EINVAL when an argument would produce an invalid or
 * dangerous message (a name that is not a token, a value with CR, LF, NUL or other
 * CTLs, a target with spaces or CTLs, a status outside 100..599). Headers are written in
 * order, as given; the caller adds framing fields (Content-Length / Transfer-Encoding)
 * it wants and leaves out hop-by-hop ones.
 */

/* "METHOD SP target SP HTTP/1.1 CRLF" + fields + CRLF. */
ssize_t h1_write_request_head(char *out, size_t cap, const char *method, size_t method_len,
                              const char *target, size_t target_len,
                              const struct h1_header *headers, size_t num_headers);

/* "HTTP/1.1 SP status SP reason CRLF" + fields + CRLF; reason NULL: the standard one. */
ssize_t h1_write_response_head(char *out, size_t cap, int status, const char *reason,
                               size_t reason_len, const struct h1_header *headers,
                               size_t num_headers);

/* "HEX CRLF", the header of a chunk of size bytes (size > 0, else -EINVAL). After the
 * chunk's data the caller writes CRLF (H1_CRLF). */
ssize_t h1_write_chunk_header(char *out, size_t cap, uint64_t size);

/* The end of a chunked body: "0 CRLF" + trailer fields + CRLF. */
ssize_t h1_write_last_chunk(char *out, size_t cap, const struct h1_header *trailers,
                            size_t num_trailers);

#define H1_CRLF "\r\n"

/* The standard reason phrase of a status ("OK", "Not Found"), "" if unknown. */
const char *h1_status_reason(int status);

#endif
