/*
 * accesslog.h - the HTTP access log: one JSON object a line, field names as Envoy's and
 * Istio's JSON access logs, off unless --access-log names a file (docs/tracing.md).
 *
 * Threads and ownership: the main thread opens and closes a struct accesslog (it owns
 * the file, one ring per worker and the writer thread). A worker formats its line on
 * its own stack and copies it into its own ring (single producer, single consumer,
 * lock-free: no syscall, no lock, no allocation); the writer thread drains every ring
 * and write(2)s what it found. A full ring drops the line and counts it: the request
 * path never waits for the disk. The writer polls the rings, napping 1 to 16 ms while
 * they are empty, so a line reaches the file within ~20 ms. accesslog_close() stops the
 * writer after one last pass over every ring, after the workers stopped, so every line
 * pushed before is written.
 *
 * accesslog_format() and accesslog_json_str() are pure (the unit test drives them).
 */
#ifndef RINGMESH_ACCESSLOG_H
#define RINGMESH_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACCESSLOG_LINE_MAX  8192         /* a formatted line never exceeds this */
#define ACCESSLOG_RING_SIZE (512 * 1024) /* bytes per worker ring (a power of two) */

struct accesslog;

/* A string field: p NULL (or len 0) is written as "-". Borrowed for the call. */
struct accesslog_str {
    const char *p;
    size_t len;
};

/* One request's line. */
struct accesslog_entry {
    int64_t start_unix_ms; /* wall clock */
    uint64_t duration_ms;
    struct accesslog_str method, path, protocol, authority, response_flags;
    int response_code; /* 0: no response went out (e.g. DC) */
    uint64_t bytes_received, bytes_sent;
    struct accesslog_str upstream_host, upstream_cluster, downstream_remote_address;
    struct accesslog_str direction, source_principal, destination_principal;
    struct accesslog_str x_request_id, traceparent, user_agent;
    bool grpc;       /* a gRPC request: grpc_status is written */
    int grpc_status; /* -1: none (written as null) */
};

/*
 * Appends s as a JSON string (quotes included) to out[*n..cap): ", \ and control
 * characters escaped (\n, \t... or \u00XX, DEL too), valid UTF-8 copied, each byte of an
 * invalid sequence written as \ufffd. The escaped value takes at most max bytes between
 * the quotes, plus "..." when it was cut there (always at a character boundary); output
 * never passes cap. NULL or empty s is "-".
 */
void accesslog_json_str(char *out, size_t cap, size_t *n, const char *s, size_t len, size_t max);

/* e as one JSON object and '\n' into out (cap >= ACCESSLOG_LINE_MAX); returns the length.
 * Each escaped value is bounded (path 2048 bytes, principals 512, the others 320 or
 * less), so a line always fits ACCESSLOG_LINE_MAX and is always whole JSON. */
size_t accesslog_format(const struct accesslog_entry *e, char *out, size_t cap);

/* Opens path for appending ("-": standard output) with nrings rings; sample in (0, 1];
 * errors_only keeps only failures. NULL with err filled (naming --access-log). */
struct accesslog *accesslog_open(const char *path, int nrings, double sample, bool errors_only,
                                 char *err, size_t errlen);
/* Starts the writer thread. 0 or -errno. */
int accesslog_start(struct accesslog *al);
/* Drains every ring one last time, stops the writer, closes the file, frees al. The
 * producers must have stopped. NULL is fine. */
void accesslog_close(struct accesslog *al);

/* Whether a request is logged: an error (status >= 400, 0, or a response flag) when
 * errors_only, then kept with probability sample (rnd: 64 random bits). Pure. */
bool accesslog_wants(const struct accesslog *al, bool error, uint64_t rnd);
/* Worker ring only: copies line into the ring. 0, or -ENOSPC when it is full (the line
 * is dropped and counted), or -EINVAL for a ring that does not exist. */
int accesslog_push(struct accesslog *al, int ring, const char *line, size_t len);

/* Counters, any thread: lines written to the file, lines dropped (ring full or a failed
 * write). 0 for NULL. */
uint64_t accesslog_written(const struct accesslog *al);
uint64_t accesslog_dropped(const struct accesslog *al);

#endif
