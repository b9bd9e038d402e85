/*
 * h2_fuzz.c - libFuzzer target for the HTTP/2 connection (sidecar/h2.c), server role.
 * The input (after one control byte) is fed to a fresh server h2_conn as if read from a
 * socket, in pieces whose sizes come from the control byte, and the connection's output
 * is pulled after each piece. A small proxy stand-in answers requests (headers, a body,
 * trailers), consumes what it receives and sometimes resets, so the send side and the
 * data providers run too. Besides ASan/UBSan faults (and leaks at exit), it aborts when
 * an invariant fails: a recv returns more than it was given, output exceeds the buffer,
 * or an error is not sticky.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h2.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static void *f_open(struct h2_conn *c, int32_t id, void *u)
{
    return u;
}

static void f_headers(struct h2_conn *c, int32_t id, const struct h2_head *h, bool end, void *u)
{
    if (h->path_len && h->path[h->path_len - 1] == 'r') {
        h2_reset_stream(c, id, H2_REFUSED_STREAM);
        return;
    }
    struct h2_header hs[] = {{"x-a", 3, "b", 1}};
    if (h2_submit_response(c, id, 200, hs, 1, true) == 0) {
        h2_submit_data(c, id, "hello", 5, false);
        struct h2_header t[] = {{"grpc-status", 11, "0", 1}};
        if (h->method_len & 1)
            h2_submit_trailers(c, id, t, 1);
        else
            h2_submit_data(c, id, NULL, 0, true);
    }
}

static void f_data(struct h2_conn *c, int32_t id, const uint8_t *d, size_t len, void *u)
{
    h2_stream_consumed(c, id, len);
}

static const struct h2_callbacks f_cbs = {
    .stream_open = f_open, .headers = f_headers, .data = f_data};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[4096];
    char err[128];
    if (size < 1)
        return 0;
    unsigned ctl = data[0];
    data++;
    size--;
    struct h2_conn *c = h2_conn_new(H2_SERVER, NULL, &f_cbs, NULL, err, sizeof(err));
    CHECK(c);
    size_t off = 0, step = 1 + (ctl & 0x3f) * 37;
    uint64_t now = 1000;
    int dead = 0;
    while (off < size) {
        size_t k = size - off < step ? size - off : step;
        ssize_t rv = h2_conn_recv(c, data + off, k, now);
        CHECK(rv < 0 || (size_t)rv == k);
        if (rv < 0) {
            CHECK(h2_conn_error(c) == rv);
            CHECK(h2_conn_recv(c, data, 1, now) == rv);
            dead = 1;
        }
        for (int i = 0; i < 64; i++) {
            ssize_t n = h2_conn_send_pending(c, out, (ctl & 0x40) ? 7 : sizeof(out));
            CHECK(n <= (ssize_t)sizeof(out));
            if (n <= 0)
                break;
        }
        if (dead)
            break;
        off += k;
        now += (ctl & 0x80) ? 50 : 1;
    }
    h2_conn_free(c);
    return 0;
}
