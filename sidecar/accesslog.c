/*
 * accesslog.c - see accesslog.h. Each ring is a power-of-two byte array with free-running
 * head (consumer) and tail (producer) positions; a record is a 4-byte length and the
 * line, wrapping at the end of the array. The producer publishes a record by storing
 * tail with release order after copying it; the consumer frees space by storing head
 * with release order after copying out.
 */
#include "accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define WBUF_SIZE (256 * 1024) /* the writer's batch before a write(2) */
/* The writer's nap while the rings are empty: from 1 ms, doubling to 16 ms. A 512 KiB
 * ring holds ~1,700 lines of 300 bytes, so a worker may log ~100,000 lines a second
 * before a line waits longer than the ring lasts; an idle sidecar wakes ~60 times a
 * second. */
#define IDLE_MIN_NS (1000 * 1000)
#define IDLE_MAX_NS (16 * 1000 * 1000)

struct ring {
    _Alignas(64) _Atomic uint64_t tail; /* producer: bytes ever published */
    _Atomic uint64_t dropped;           /* producer only */
    _Alignas(64) _Atomic uint64_t head; /* consumer: bytes ever consumed */
    char *buf;                          /* owned, ACCESSLOG_RING_SIZE */
};

struct accesslog {
    int fd; /* owned unless it is standard output */
    bool own_fd;
    int nrings;
    struct ring *rings; /* owned */
    uint64_t threshold; /* a line is kept when rnd <= threshold */
    bool errors_only;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    _Atomic uint64_t written;     /* writer only */
    _Atomic uint64_t write_fails; /* writer only: lines lost to a failed write */
    char *wbuf;                   /* owned, WBUF_SIZE */
    size_t wlen, wlines;
};

/* ---- JSON ---- */

static void put_c(char *out, size_t cap, size_t *n, char c)
{
    if (*n < cap)
        out[(*n)++] = c;
}

static void put_s(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    if (*n + len <= cap) {
        memcpy(out + *n, s, len);
        *n += len;
    }
}

/* Length of the valid UTF-8 sequence at s (RFC 3629 §4: no overlongs, no surrogates,
 * nothing past U+10FFFF), or 0 if the byte there does not start one. */
static size_t utf8_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0;
        if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (len < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return need;
}

void accesslog_json_str(char *out, size_t cap, size_t *n, const char *s, size_t len, size_t max)
{
    static const char hexd[] = "0123456789abcdef";
    if (!s || !len) {
        put_s(out, cap, n, "\"-\"", 3);
        return;
    }
    bool cut = false;
    put_c(out, cap, n, '"');
    /* the value's bytes end here, leaving room for "..." and the closing quote */
    size_t end = cap < 4 ? 0 : cap - 4;
    if (*n + max < end)
        end = *n + max;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        char esc[8];
        size_t el = 0, take = 1;
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, el = 2;
        } else if (c < 0x20 || c == 0x7f) {
            const char *short_esc = c == '\n'   ? "\\n"
                                    : c == '\r' ? "\\r"
                                    : c == '\t' ? "\\t"
                                    : c == '\b' ? "\\b"
                                    : c == '\f' ? "\\f"
                                                : NULL;
            if (short_esc) {
                memcpy(esc, short_esc, 2);
                el = 2;
            } else {
                memcpy(esc, "\\u00", 4);
                esc[4] = hexd[c >> 4];
                esc[5] = hexd[c & 15];
                el = 6;
            }
        } else if (c < 0x80) {
            esc[0] = (char)c, el = 1;
        } else if ((take = utf8_len(u + i, len - i)) > 0) {
            memcpy(esc, u + i, take);
            el = take;
        } else {
            take = 1;
            memcpy(esc, "\\ufffd", 6);
            el = 6;
        }
        if (*n + el > end) {
            cut = true;
            break;
        }
        memcpy(out + *n, esc, el);
        *n += el;
        i += take;
    }
    if (cut)
        put_s(out, cap, n, "...", 3);
    put_c(out, cap, n, '"');
}

static void field_str(char *out, size_t cap, size_t *n, const char *name,
                      const struct accesslog_str *v, size_t max)
{
    put_c(out, cap, n, *n > 1 ? ',' : '{');
    put_c(out, cap, n, '"');
    put_s(out, cap, n, name, strlen(name));
    put_s(out, cap, n, "\":", 2);
    accesslog_json_str(out, cap, n, v->p, v->len, max);
}

static void field_num(char *out, size_t cap, size_t *n, const char *name, long long v)
{
    char b[64];
    int k = snprintf(b, sizeof(b), ",\"%s\":%lld", name, v);
    if (k > 0 && (size_t)k < sizeof(b))
        put_s(out, cap, n, b, (size_t)k);
}

size_t accesslog_format(const struct accesslog_entry *e, char *out, size_t cap)
{
    size_t n = 0;
    char ts[40];
    time_t sec = (time_t)(e->start_unix_ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof(ts) - tl, ".%03dZ", (int)(e->start_unix_ms % 1000));
    struct accesslog_str t = {ts, strlen(ts)};
    /* cap - 1: the newline always fits */
    size_t c = cap - 1;
    field_str(out, c, &n, "start_time", &t, 40);
    field_str(out, c, &n, "method", &e->method, 64);
    field_str(out, c, &n, "path", &e->path, 2048);
    field_str(out, c, &n, "protocol", &e->protocol, 16);
    field_str(out, c, &n, "authority", &e->authority, 256);
    field_num(out, c, &n, "response_code", e->response_code);
    field_str(out, c, &n, "response_flags", &e->response_flags, 32);
    field_num(out, c, &n, "bytes_received", (long long)e->bytes_received);
    field_num(out, c, &n, "bytes_sent", (long long)e->bytes_sent);
    field_num(out, c, &n, "duration", (long long)e->duration_ms);
    field_str(out, c, &n, "upstream_host", &e->upstream_host, 64);
    field_str(out, c, &n, "upstream_cluster", &e->upstream_cluster, 320);
    field_str(out, c, &n, "downstream_remote_address", &e->downstream_remote_address, 64);
    field_str(out, c, &n, "direction", &e->direction, 16);
    field_str(out, c, &n, "source_principal", &e->source_principal, 512);
    field_str(out, c, &n, "destination_principal", &e->destination_principal, 512);
    field_str(out, c, &n, "x_request_id", &e->x_request_id, 256);
    field_str(out, c, &n, "traceparent", &e->traceparent, 128);
    field_str(out, c, &n, "user_agent", &e->user_agent, 256);
    if (e->grpc) {
        if (e->grpc_status >= 0)
            field_num(out, c, &n, "grpc_status", e->grpc_status);
        else
            put_s(out, c, &n, ",\"grpc_status\":null", 19);
    }
    put_c(out, c, &n, '}');
    out[n++] = '\n';
    return n;
}

/* ---- rings ---- */

static void ring_copy_in(struct ring *r, uint64_t pos, const void *src, size_t len)
{
    size_t off = (size_t)(pos & (ACCESSLOG_RING_SIZE - 1));
    size_t k = ACCESSLOG_RING_SIZE - off < len ? ACCESSLOG_RING_SIZE - off : len;
    memcpy(r->buf + off, src, k);
    memcpy(r->buf, (const char *)src + k, len - k);
}

static void ring_copy_out(const struct ring *r, uint64_t pos, void *dst, size_t len)
{
    size_t off = (size_t)(pos & (ACCESSLOG_RING_SIZE - 1));
    size_t k = ACCESSLOG_RING_SIZE - off < len ? ACCESSLOG_RING_SIZE - off : len;
    memcpy(dst, r->buf + off, k);
    memcpy((char *)dst + k, r->buf, len - k);
}

bool accesslog_wants(const struct accesslog *al, bool error, uint64_t rnd)
{
    if (!al || (al->errors_only && !error))
        return false;
    return rnd <= al->threshold;
}

int accesslog_push(struct accesslog *al, int ring, const char *line, size_t len)
{
    if (ring < 0 || ring >= al->nrings) /* more workers than rings: cannot happen (main.c) */
        return -EINVAL;
    struct ring *r = &al->rings[ring];
    uint32_t l32 = (uint32_t)len;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (len > ACCESSLOG_LINE_MAX || tail - head + 4 + len > ACCESSLOG_RING_SIZE) {
        atomic_store_explicit(&r->dropped,
                              atomic_load_explicit(&r->dropped, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        return -ENOSPC;
    }
    ring_copy_in(r, tail, &l32, 4);
    ring_copy_in(r, tail + 4, line, len);
    atomic_store_explicit(&r->tail, tail + 4 + len, memory_order_release);
    return 0;
}

/* ---- the writer ---- */

static void wflush(struct accesslog *al)
{
    size_t off = 0;
    while (off < al->wlen) {
        ssize_t k = write(al->fd, al->wbuf + off, al->wlen - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            /* the rest of this batch is lost: count its lines (roughly, by newline) */
            size_t lost = 0;
            for (size_t i = off; i < al->wlen; i++)
                lost += al->wbuf[i] == '\n';
            atomic_store_explicit(&al->write_fails,
                                  atomic_load_explicit(&al->write_fails, memory_order_relaxed) +
                                      lost,
                                  memory_order_relaxed);
            al->wlines -= lost < al->wlines ? lost : al->wlines;
            static bool said;
            if (!said) {
                said = true;
                log_error("access log: write failed: %s; lines are being dropped",
                          k < 0 ? strerror(errno) : "nothing written");
            }
            break;
        }
        off += (size_t)k;
    }
    atomic_store_explicit(&al->written,
                          atomic_load_explicit(&al->written, memory_order_relaxed) + al->wlines,
                          memory_order_relaxed);
    al->wlen = al->wlines = 0;
}

/* One pass over every ring; true when anything was found. */
static bool drain(struct accesslog *al)
{
    bool any = false;
    for (int i = 0; i < al->nrings; i++) {
        struct ring *r = &al->rings[i];
        uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        while (head != tail) {
            uint32_t len;
            ring_copy_out(r, head, &len, 4);
            if (al->wlen + len > WBUF_SIZE)
                wflush(al);
            ring_copy_out(r, head + 4, al->wbuf + al->wlen, len);
            al->wlen += len;
            al->wlines++;
            head += 4 + len;
            any = true;
        }
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
    if (al->wlen)
        wflush(al);
    return any;
}

static void *writer_main(void *arg)
{
    struct accesslog *al = arg;
    long nap = IDLE_MIN_NS;
    log_set_thread_name("accesslog");
    for (;;) {
        bool stop = atomic_load(&al->stop);
        bool any = drain(al);
        if (stop)
            break; /* the pass after stop was seen took whatever was left */
        if (any) {
            nap = IDLE_MIN_NS;
            continue;
        }
        struct timespec ts = {0, nap};
        nanosleep(&ts, NULL);
        if (nap < IDLE_MAX_NS)
            nap *= 2;
    }
    return NULL;
}

struct accesslog *accesslog_open(const char *path, int nrings, double sample, bool errors_only,
                                 char *err, size_t errlen)
{
    struct accesslog *al = calloc(1, sizeof(*al));
    if (!al) {
        snprintf(err, errlen, "--access-log: out of memory");
        return NULL;
    }
    al->fd = -1;
    al->nrings = nrings;
    al->errors_only = errors_only;
    /* rnd <= threshold with probability sample (1 keeps every line) */
    al->threshold = sample >= 1.0 ? UINT64_MAX : (uint64_t)(sample * 18446744073709551615.0);
    al->rings = calloc((size_t)nrings, sizeof(*al->rings));
    al->wbuf = malloc(WBUF_SIZE);
    if (!al->rings || !al->wbuf)
        goto nomem;
    for (int i = 0; i < nrings; i++)
        if (!(al->rings[i].buf = malloc(ACCESSLOG_RING_SIZE)))
            goto nomem;
    if (!strcmp(path, "-")) {
        al->fd = STDOUT_FILENO;
    } else {
        al->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (al->fd < 0) {
            snprintf(err, errlen, "--access-log %s: %s", path, strerror(errno));
            accesslog_close(al);
            return NULL;
        }
        al->own_fd = true;
    }
    return al;
nomem:
    snprintf(err, errlen, "--access-log: out of memory");
    accesslog_close(al);
    return NULL;
}

int accesslog_start(struct accesslog *al)
{
    int r = pthread_create(&al->thread, NULL, writer_main, al);
    if (r)
        return -r;
    al->started = true;
    return 0;
}

void accesslog_close(struct accesslog *al)
{
    if (!al)
        return;
    if (al->started) {
        atomic_store(&al->stop, true);
        pthread_join(al->thread, NULL);
    } else if (al->wbuf && al->fd >= 0) {
        drain(al);
    }
    if (al->own_fd && al->fd >= 0)
        close(al->fd);
    for (int i = 0; al->rings && i < al->nrings; i++)
        free(al->rings[i].buf);
    free(al->rings);
    free(al->wbuf);
    free(al);
}

uint64_t accesslog_written(const struct accesslog *al)
{
    return al ? atomic_load_explicit(&al->written, memory_order_relaxed) : 0;
}

uint64_t accesslog_dropped(const struct accesslog *al)
{
    if (!al)
        return 0;
    uint64_t n = atomic_load_explicit(&al->write_fails, memory_order_relaxed);
    for (int i = 0; i < al->nrings; i++)
        n += atomic_load_explicit(&al->rings[i].dropped, memory_order_relaxed);
    return n;
}
