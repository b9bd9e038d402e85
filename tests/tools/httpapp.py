#!/usr/bin/python3
"""httpapp - the origin server of the HTTP mesh tests (Python 3 stdlib; python3-h2 for --h2c).

    httpapp.py PORT --name NAME [--h2c] [--fail-all]
    httpapp.py --bytes-sha N      print the sha256 of what /bytes/N sends, and exit

Listens on 0.0.0.0:PORT and prints "listening PORT" once bound. Without --h2c it speaks
HTTP/1.1 with keep-alive (http.server), chunked request bodies and 100-continue; with --h2c
HTTP/2 with prior knowledge (one reader thread per connection, one thread per request).
Every request is logged as one flushed line "req METHOD PATH peer=IP" (tests grep these).

Every response carries x-app: NAME, x-seen-proto: HTTP/1.1 or h2, and x-path: the request
target as the app saw it (after any rewrite by the mesh).

    /                 200 "NAME\\n"; so does any path not listed here
    /echo             the request body back
    /hash             sha256 hex of the request body, "\\n"
    /bytes/N          N deterministic bytes (see pattern()), with Content-Length
    /status/NNN       that status, body "NAME\\n" (none for 1xx, 204, 304)
    /delay/MS         sleep MS milliseconds, then 200
    /headers          the request headers as a JSON object (lower-case names; repeats joined
                      with ", "; HTTP/2 pseudo-headers included)
    /reset            HTTP/1.1: close the connection with a TCP RST (SO_LINGER 0) before
                      answering; HTTP/2: RST_STREAM(INTERNAL_ERROR) for that stream
    /reset/N/KEY      the same for the first N requests with that KEY, then 200
    /fail/N/KEY       503 for the first N requests with that KEY, then 200
    /count            requests served so far, "/count" requests excluded
    /count/KEY        requests seen for /fail/*/KEY and /reset/*/KEY
    /ws               HTTP/1.1 only: a valid "Upgrade: websocket" request gets 101 with its
                      Sec-WebSocket-Accept; after it every byte received is echoed (no
                      framing) until EOF
With --fail-all every request except /count gets 503 (a bad endpoint for outlier tests).

Header limits are raised (1000 fields, 1 MiB lines) so a request the mesh should have refused
reaches this app and gets a normal answer with x-app, instead of http.server's own 431.
"""
import argparse
import base64
import hashlib
import http.client
import http.server
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time

http.client._MAXHEADERS = 1000
http.client._MAXLINE = 1 << 20

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B85"

_lock = threading.Lock()
_served = 0
_keys = {}


def log(*a):
    with _lock:
        sys.stdout.write(" ".join(str(x) for x in a) + "\n")
        sys.stdout.flush()


def pattern(n):
    """Yield the N bytes of /bytes/N in blocks: a 64 KiB block of a sha256 chain, repeated."""
    block = b"".join(hashlib.sha256(b"ringmesh %d" % i).digest() for i in range(2048))
    while n > 0:
        yield block[:n]
        n -= len(block)


def count_key(key):
    """Count one request for KEY; return how many there were before it."""
    with _lock:
        seen = _keys.get(key, 0)
        _keys[key] = seen + 1
        return seen


def decide(name, method, path, headers, body, fail_all):
    """The answer to a request: (status, [(name, value)...], body bytes or an iterable of
    them, length), or ("reset",) for /reset. headers: list of (lower-case name, value)."""
    global _served
    path = path.split("?", 1)[0]
    parts = path.strip("/").split("/")
    if path != "/count" and not path.startswith("/count/"):
        with _lock:
            _served += 1
    hdrs = [("content-type", "text/plain")]
    text = (name + "\n").encode()

    def plain(status, b=text):
        return status, hdrs, b, len(b)

    if fail_all and parts[0] != "count":
        return plain(503)
    if parts[0] == "echo":
        return plain(200, body)
    if parts[0] == "hash":
        return plain(200, (hashlib.sha256(body).hexdigest() + "\n").encode())
    if parts[0] == "bytes" and len(parts) == 2 and parts[1].isdigit():
        n = int(parts[1])
        return 200, [("content-type", "application/octet-stream")], pattern(n), n
    if parts[0] == "status" and len(parts) == 2 and parts[1].isdigit():
        status = int(parts[1])
        if status < 200 or status in (204, 304):
            return status, hdrs, b"", 0
        return plain(status)
    if parts[0] == "delay" and len(parts) == 2 and parts[1].isdigit():
        time.sleep(int(parts[1]) / 1000.0)
        return plain(200)
    if parts[0] == "headers":
        seen = {}
        for k, v in headers:
            seen[k] = seen[k] + ", " + v if k in seen else v
        b = (json.dumps(seen, indent=1, sort_keys=True) + "\n").encode()
        return 200, [("content-type", "application/json")], b, len(b)
    if parts[0] in ("reset", "fail") and len(parts) == 3 and parts[1].isdigit():
        if count_key(parts[2]) < int(parts[1]):
            return ("reset",) if parts[0] == "reset" else plain(503, b"%s fail\n" % name.encode())
        return plain(200)
    if path == "/reset":
        return ("reset",)
    if path == "/count":
        with _lock:
            return plain(200, b"%d\n" % _served)
    if parts[0] == "count" and len(parts) == 2:
        with _lock:
            return plain(200, b"%d\n" % _keys.get(parts[1], 0))
    return plain(200)


# ---------------------------------------------------------------- HTTP/1.1

class H1Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        # one line, not a traceback: peers (the mesh) reset connections on purpose
        log("connection from %s ends: %r" % (client_address[0], sys.exc_info()[1]))


def make_h1_handler(name, fail_all):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # the head and the body are two writes: with Nagle on, the body waits for the ACK
        # of the head, which a delayed ACK holds back 40 ms on every keep-alive request
        disable_nagle_algorithm = True

        def log_request(self, code="-", size="-"):
            pass

        def read_body(self):
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                out = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailer fields
                        return bytes(out)
                    out += self.rfile.read(size)
                    self.rfile.readline()
            n = int(self.headers.get("content-length") or 0)
            return self.rfile.read(n) if n else b""

        def any_method(self):
            log("req", self.command, self.path, "peer=%s" % self.client_address[0])
            body = self.read_body()
            if self.path.split("?")[0] == "/ws" and not fail_all:
                return self.websocket()
            headers = [(k.lower(), v) for k, v in self.headers.items()]
            r = decide(name, self.command, self.path, headers, body, fail_all)
            if r[0] == "reset":
                s = self.connection
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # detach, so neither the rfile's reference nor socketserver's shutdown(SHUT_WR)
                # can send a FIN first: the close is the RST
                os.close(s.detach())
                self.close_connection = True
                return
            status, hdrs, b, length = r
            self.send_response(status)
            for k, v in hdrs + self.common():
                self.send_header(k, v)
            if status >= 200 and status not in (204, 304):
                self.send_header("content-length", str(length))
            self.end_headers()
            if self.command != "HEAD":
                for chunk in [b] if isinstance(b, bytes) else b:
                    self.wfile.write(chunk)

        def common(self):
            return [("x-app", name), ("x-seen-proto", "HTTP/1.1"), ("x-path", self.path)]

        def websocket(self):
            h = self.headers
            key = h.get("sec-websocket-key")
            if (h.get("upgrade", "").lower() != "websocket" or not key
                    or "upgrade" not in h.get("connection", "").lower()):
                self.send_response(400)
                for k, v in self.common():
                    self.send_header(k, v)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            self.send_response(101)
            self.send_header("upgrade", "websocket")
            self.send_header("connection", "Upgrade")
            self.send_header("sec-websocket-accept", accept)
            for k, v in self.common():
                self.send_header(k, v)
            self.end_headers()
            n = 0
            try:
                while True:
                    d = self.rfile.read1(65536)
                    if not d:
                        break
                    self.wfile.write(d)
                    n += len(d)
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            log("ws echoed=%d" % n)
            self.close_connection = True

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = any_method

    return H


# ---------------------------------------------------------------- HTTP/2 (h2c)

class H2Conn:
    """One HTTP/2 connection: this thread reads and feeds h2; each request runs in its own
    thread; a writer thread sends, so no reader ever blocks on a send (no deadlock when both
    sides' socket buffers are full)."""

    def __init__(self, sock, peer, name, fail_all):
        import h2.config
        import h2.connection
        import queue
        self.sock, self.peer, self.name, self.fail_all = sock, peer, name, fail_all
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self.cond = threading.Condition()
        self.out = queue.Queue()
        self.streams = {}
        self.closed = False

    def flush(self):  # with self.cond held
        data = self.conn.data_to_send()
        if data:
            self.out.put(data)

    def writer(self):
        while True:
            data = self.out.get()
            if data is None:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                return

    def run(self):
        import h2.events
        import h2.settings
        threading.Thread(target=self.writer, daemon=True).start()
        with self.cond:
            self.conn.initiate_connection()
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
                                       h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000})
            self.conn.increment_flow_control_window(1 << 24)
            self.flush()
        try:
            while not self.closed:
                data = self.sock.recv(65536)
                if not data:
                    break
                with self.cond:
                    for ev in self.conn.receive_data(data):
                        self.event(ev, h2.events)
                    self.flush()
                    self.cond.notify_all()
        except Exception as e:  # a protocol error or a reset peer: this connection ends
            log("h2 connection from %s ends: %r" % (self.peer, e))
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.out.put(None)
        try:
            self.sock.close()
        except OSError:
            pass

    def event(self, ev, events):
        if isinstance(ev, events.RequestReceived):
            self.streams[ev.stream_id] = [list(ev.headers), bytearray()]
        elif isinstance(ev, events.DataReceived):
            if ev.stream_id in self.streams:
                self.streams[ev.stream_id][1] += ev.data
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, events.StreamEnded):
            st = self.streams.pop(ev.stream_id, None)
            if st:
                threading.Thread(target=self.request, args=(ev.stream_id, st[0], bytes(st[1])),
                                 daemon=True).start()
        elif isinstance(ev, events.StreamReset):
            self.streams.pop(ev.stream_id, None)
        elif isinstance(ev, events.ConnectionTerminated):
            self.closed = True

    def request(self, sid, headers, body):
        import h2.errors
        hd = dict(headers)
        method, path = hd.get(":method", "GET"), hd.get(":path", "/")
        log("req", method, path, "peer=%s" % self.peer)
        r = decide(self.name, method, path, [(k.lower(), v) for k, v in headers], body,
                   self.fail_all)
        try:
            with self.cond:
                if r[0] == "reset":
                    self.conn.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
                    self.flush()
                    return
                status, hdrs, b, length = r
                out = [(":status", str(status))] + hdrs + [
                    ("x-app", self.name), ("x-seen-proto", "h2"), ("x-path", path)]
                if status >= 200 and status not in (204, 304):
                    out.append(("content-length", str(length)))
                no_body = method == "HEAD" or length == 0
                self.conn.send_headers(sid, out, end_stream=no_body)
                self.flush()
            if not no_body:
                self.send_body(sid, [b] if isinstance(b, bytes) else b)
        except Exception as e:  # the stream or connection went away meanwhile
            log("h2 stream %d: %r" % (sid, e))

    def send_body(self, sid, chunks):
        for chunk in chunks:
            view = memoryview(chunk)
            while len(view):
                with self.cond:
                    while not self.closed and self.conn.local_flow_control_window(sid) <= 0:
                        self.cond.wait(1)
                    if self.closed:
                        return
                    n = min(len(view), self.conn.local_flow_control_window(sid),
                            self.conn.max_outbound_frame_size)
                    self.conn.send_data(sid, bytes(view[:n]))
                    view = view[n:]
                    self.flush()
        with self.cond:
            self.conn.end_stream(sid)
            self.flush()


def serve_h2(port, name, fail_all):
    class H(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            H2Conn(self.request, self.client_address[0], name, fail_all).run()

    srv = H1Server(("0.0.0.0", port), H)
    log("listening", port)
    srv.serve_forever()


def main():
    ap = argparse.ArgumentParser(description="HTTP origin server for the mesh tests")
    ap.add_argument("port", type=int, nargs="?")
    ap.add_argument("--name", default="app")
    ap.add_argument("--h2c", action="store_true", help="HTTP/2 with prior knowledge")
    ap.add_argument("--fail-all", action="store_true", help="503 to everything but /count")
    ap.add_argument("--bytes-sha", type=int, metavar="N", help="print sha256 of /bytes/N")
    a = ap.parse_args()
    if a.bytes_sha is not None:
        h = hashlib.sha256()
        for chunk in pattern(a.bytes_sha):
            h.update(chunk)
        print(h.hexdigest())
        return
    if a.port is None:
        ap.error("PORT is required")
    if a.h2c:
        serve_h2(a.port, a.name, a.fail_all)
    else:
        srv = H1Server(("0.0.0.0", a.port), make_h1_handler(a.name, a.fail_all))
        log("listening", a.port)
        srv.serve_forever()


if __name__ == "__main__":
    main()
