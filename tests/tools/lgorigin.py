#!/usr/bin/python3
"""lgorigin - a small HTTP/1.1 origin for tests/integ/loadgen.sh (Python 3 stdlib only).

    lgorigin.py PORT [--stall-at-ms T --stall-ms MS]

Listens on 127.0.0.1:PORT (keep-alive, one thread per connection) and prints "listening PORT"
once bound. Every request is answered after reading its body (Content-Length):
    /status/NNN   that status, body "ok\\n"
    /chunked      200 with a chunked body of three chunks
    anything else 200 "ok\\n" with Content-Length
With --stall-at-ms T --stall-ms MS the whole server stalls once: T ms after the first
request, no response goes out for MS ms (every connection waits), as a GC pause would.
"""
import argparse
import socket
import sys
import threading
import time

args = None
first = None
lock = threading.Lock()


def stall():
    global first
    if args.stall_ms <= 0:
        return
    now = time.monotonic()
    with lock:
        if first is None:
            first = now
    start = first + args.stall_at_ms / 1000.0
    end = start + args.stall_ms / 1000.0
    if start <= now < end:
        time.sleep(end - now)


def handle(conn):
    f = conn.makefile("rb")
    try:
        while True:
            line = f.readline(65536)
            if not line:
                return
            parts = line.split()
            if len(parts) < 2:
                return
            path = parts[1].decode()
            clen = 0
            while True:
                h = f.readline(65536)
                if h in (b"\r\n", b"\n", b""):
                    break
                name, _, value = h.partition(b":")
                if name.strip().lower() == b"content-length":
                    clen = int(value.strip())
            if clen:
                f.read(clen)
            stall()
            if path.startswith("/status/"):
                code = int(path[8:11])
                resp = b"HTTP/1.1 %d X\r\nContent-Length: 3\r\n\r\nok\n" % code
            elif path == "/chunked":
                resp = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"5\r\nhello\r\n1;ext=1\r\n \r\na\r\nchunked!!\n\r\n0\r\nx-trailer: 1\r\n\r\n")
            else:
                resp = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
            conn.sendall(resp)
    except (OSError, ValueError):
        return
    finally:
        conn.close()


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--stall-at-ms", type=int, default=0)
    p.add_argument("--stall-ms", type=int, default=0)
    args = p.parse_args()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", args.port))
    s.listen(256)
    print("listening", args.port, flush=True)
    while True:
        c, _ = s.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handle, args=(c,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
