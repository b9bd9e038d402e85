/*
 * lg_h1.h - the HTTP/1.1 response parser of ringmesh-loadgen (bench/loadgen.c).
 *
 * Incremental and pure: (ptr, len) in, bytes consumed out, no I/O, no allocation. It reads
 * the status line and the headers it needs (Content-Length, Transfer-Encoding: chunked,
 * Connection) and skips the body: by Content-Length, chunked (extensions and trailers
 * skipped), or up to the connection's close when neither is given. Interim 1xx responses
 * are skipped (the final one follows). A partial line is left unconsumed: the caller keeps
 * it and calls again with it and the bytes that follow. One struct per connection, owned
 * by it; used by its worker thread only.
 */
#ifndef RINGMESH_LG_H1_H
#define RINGMESH_LG_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LG_H1_HEAD_MAX (64 * 1024) /* a status line and headers larger than this: -E2BIG */

enum lg_h1_state {
    LG_H1_HEAD,       /* status line and headers, up to the empty line */
    LG_H1_BODY_CL,    /* remaining bytes of a Content-Length body */
    LG_H1_BODY_EOF,   /* a body delimited by the connection's close */
    LG_H1_CHUNK_SIZE, /* a chunk-size line */
    LG_H1_CHUNK_DATA, /* remaining bytes of a chunk */
    LG_H1_CHUNK_CRLF, /* the CRLF after a chunk's data */
    LG_H1_TRAILERS,   /* trailer lines after the last chunk, up to the empty line */
};

struct lg_h1 {
    enum lg_h1_state state;
    uint64_t remaining; /* bytes left in a Content-Length body or a chunk */
    int status;         /* of the response being parsed (valid once past the head) */
    bool close;         /* the server closes the connection after this response */
    bool head;          /* the request was HEAD: no body whatever the headers say */
};

/* Ready for the response to a request; head: it was a HEAD request. */
void lg_h1_init(struct lg_h1 *p, bool head);
/* Parses (buf, len) up to the end of one final response. Returns the bytes consumed (0..len)
 * and sets *done when a response ended there (p->status, p->close then describe it; call
 * lg_h1_init before the next). Fewer than len bytes and !*done: the rest is a partial line,
 * to be passed again with more. -EPROTO on a malformed response, -E2BIG on a head (or a
 * chunk-size line) too large. */
ssize_t lg_h1_parse(struct lg_h1 *p, const char *buf, size_t len, bool *done);
/* The connection was closed: true when that completes the response (a body without
 * Content-Length or chunking), false when the response was cut short. */
bool lg_h1_eof_completes(const struct lg_h1 *p);
/* The state's name, for messages. */
const char *lg_h1_state_str(enum lg_h1_state s);

#endif
