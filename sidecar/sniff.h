/*
 * sniff.h - what protocol a connection speaks, from its first bytes (Envoy's
 * http_inspector and tls_inspector, Istio's protocol sniffing): the HTTP/2 connection
 * preface, an HTTP/1.x request line, or a TLS ClientHello record; anything else is opaque
 * TCP. Pure: the caller feeds what it has read so far and, for server-first protocols
 * (the client sends nothing), gives up after its own timeout and treats the connection
 * as opaque. A Service port's appProtocol, when set, wins over sniffing.
 */
#ifndef RINGMESH_SNIFF_H
#define RINGMESH_SNIFF_H

#include <stddef.h>

enum sniff_result {
    SNIFF_NEED_MORE, /* what arrived so far is a prefix of some protocol: read more */
    SNIFF_HTTP1,     /* a complete HTTP/1.0 or HTTP/1.1 request line */
    SNIFF_HTTP2,     /* the 24-byte HTTP/2 client connection preface */
    SNIFF_TLS,       /* a TLS handshake record starting a ClientHello */
    SNIFF_OPAQUE,    /* none of them: relay as TCP */
};

/* At most this many bytes are examined; a request line still incomplete by then is
 * opaque (Envoy's http_inspector gives up at 8 KiB too). */
#define SNIFF_MAX_BYTES 8192

/* Classifies the first len bytes of a connection. Call again with more bytes (the same
 * data grown) while it says SNIFF_NEED_MORE. */
enum sniff_result sniff_detect(const void *data, size_t len);
const char *sniff_result_str(enum sniff_result r);

#endif
