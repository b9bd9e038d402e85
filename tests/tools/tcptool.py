#!/usr/bin/python3
"""tcptool - small TCP servers and clients for the mesh tests (Python 3 stdlib only).

Servers listen on 0.0.0.0:PORT, print "listening PORT" once bound, then one line per
connection describing what they saw (tests grep these lines). Clients exit 0 only when
what they checked held, and print one line saying what they saw.

Servers
  hash-server PORT          read to EOF, reply "<nbytes> <sha256>\\n", close.
                            logs "conn peer=IP:PORT bytes=N sha=HEX"
  echo-server PORT          echo every byte back until EOF.
  fin-first-server PORT N   send N random bytes, shutdown(SHUT_WR), read to EOF.
                            logs "finfirst sent=N got=<text> result=eof|reset"
  rst-server PORT           read one line, then close with SO_LINGER 0 (RST).
  watch-server PORT         read one line, reply "ready\\n", then read until EOF or error;
                            logs "watch result=eof|reset bytes=N"
  slow-server PORT BPS      read BPS bytes a second (small receive buffer).

Clients
  send HOST PORT NBYTES [--rate BPS] [--streams K]
                            send NBYTES random bytes, shutdown(SHUT_WR), read the hash
                            server's reply and compare. --rate paces the sender; --streams
                            runs K connections at once, each NBYTES.
  blast HOST PORT NBYTES SECONDS
                            send up to NBYTES as fast as the peer takes them for at most
                            SECONDS; print "blast sent=N"; exit 0 (never fails on a stall).
  fin-first-client HOST PORT N
                            read to EOF (must be N bytes), then send "thanks\\n", shutdown,
                            read to EOF.
  expect-reset HOST PORT    send a line, expect ECONNRESET on read.
  rst-client HOST PORT      send a line, wait for "ready", close with SO_LINGER 0.
  hold HOST PORT N [--timeout S] [--hold S]
                            open N connections one after another to an echo server; on
                            each send a line and wait for its echo. Prints
                            "hold ok=A closed=B timeout=C"; keeps the live ones open
                            --hold seconds (or until they are closed by the peer).
  connect HOST PORT [--timeout S]
                            print "connect ok|refused|reset|timeout|eof" after one
                            request/echo round trip; exit 0 only for ok.
"""
import argparse
import errno
import hashlib
import os
import socket
import socketserver
import struct
import sys
import threading
import time


_log_lock = threading.Lock()


def log(*a):
    with _log_lock:
        sys.stdout.write(" ".join(str(x) for x in a) + "\n")
        sys.stdout.flush()


def linger0(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# ---------------------------------------------------------------- servers

class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 256


def serve(port, handler):
    srv = Server(("0.0.0.0", port), handler)
    log("listening", port)
    srv.serve_forever()


def read_line(sock, limit=4096):
    buf = b""
    while not buf.endswith(b"\n") and len(buf) < limit:
        d = sock.recv(1)
        if not d:
            break
        buf += d
    return buf


def drain_result(sock):
    """Read until EOF or error; return (result, bytes)."""
    n = 0
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                return "eof", n
            n += len(d)
    except ConnectionResetError:
        return "reset", n
    except socket.timeout:
        return "timeout", n
    except OSError as e:
        return "error-%s" % errno.errorcode.get(e.errno, e.errno), n


class HashHandler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        h = hashlib.sha256()
        n = 0
        try:
            while True:
                d = s.recv(1 << 20)
                if not d:
                    break
                h.update(d)
                n += len(d)
            s.sendall(b"%d %s\n" % (n, h.hexdigest().encode()))
            res = "ok"
        except OSError as e:
            res = "error-%s" % errno.errorcode.get(e.errno, e.errno)
        log("conn peer=%s:%d bytes=%d sha=%s result=%s"
            % (self.client_address[0], self.client_address[1], n, h.hexdigest(), res))


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                s.sendall(d)
        except OSError:
            pass


def make_fin_first(nbytes):
    class H(socketserver.BaseRequestHandler):
        def handle(self):
            s = self.request
            data = os.urandom(nbytes)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            got = b""
            res = "eof"
            try:
                s.settimeout(20)
                while True:
                    d = s.recv(4096)
                    if not d:
                        break
                    got += d
            except ConnectionResetError:
                res = "reset"
            except socket.timeout:
                res = "timeout"
            log("finfirst sent=%d got=%s result=%s"
                % (nbytes, got.decode(errors="replace").strip() or "-", res))
    return H


class RstHandler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        read_line(s)
        linger0(s)
        s.close()
        log("rst sent")


class WatchHandler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        read_line(s)
        s.sendall(b"ready\n")
        s.settimeout(20)
        res, n = drain_result(s)
        log("watch result=%s bytes=%d" % (res, n))


def make_slow(bps):
    class H(socketserver.BaseRequestHandler):
        def handle(self):
            s = self.request
            chunk = max(1, bps // 10)
            n = 0
            try:
                while True:
                    d = s.recv(chunk)
                    if not d:
                        break
                    n += len(d)
                    time.sleep(0.1)
            except OSError:
                pass
            log("slow read=%d" % n)
    return H


class SlowServer(Server):
    def server_bind(self):
        # a small receive buffer so the kernel does not absorb the stall for us
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        super().server_bind()


# ---------------------------------------------------------------- clients

def connect(host, port, timeout=10):
    s = socket.create_connection((host, port), timeout=timeout)
    return s


def send_one(host, port, nbytes, rate, result, idx):
    try:
        s = connect(host, port)
        s.settimeout(10)  # no progress for 10 s: fail with a message, not a hang
        h = hashlib.sha256()
        left = nbytes
        chunk = 256 * 1024
        if rate:
            chunk = max(1, min(chunk, rate // 10))
        t0 = time.monotonic()
        sent = 0
        while left > 0:
            d = os.urandom(min(chunk, left))
            s.sendall(d)
            h.update(d)
            left -= len(d)
            sent += len(d)
            if rate:
                ahead = sent / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            reply += d
        s.close()
        want = "%d %s" % (nbytes, h.hexdigest())
        got = reply.decode(errors="replace").strip()
        result[idx] = (got == want, "want %r got %r" % (want, got))
    except OSError as e:
        result[idx] = (False, "error %s" % e)


def cmd_send(a):
    result = [None] * a.streams
    ts = [threading.Thread(target=send_one, args=(a.host, a.port, a.nbytes, a.rate, result, i))
          for i in range(a.streams)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    bad = [r[1] for r in result if not r[0]]
    if bad:
        log("send FAIL %d/%d: %s" % (len(bad), a.streams, "; ".join(bad[:3])))
        return 1
    log("send ok streams=%d bytes=%d" % (a.streams, a.nbytes))
    return 0


def cmd_blast(a):
    s = connect(a.host, a.port)
    s.setblocking(False)
    block = os.urandom(256 * 1024)
    sent = 0
    deadline = time.monotonic() + a.seconds
    import select
    while sent < a.nbytes and time.monotonic() < deadline:
        _, w, _ = select.select([], [s], [], 0.1)
        if not w:
            continue
        try:
            sent += s.send(block[: min(len(block), a.nbytes - sent)])
        except BlockingIOError:
            pass
        except OSError as e:
            log("blast error %s sent=%d" % (e, sent))
            return 1
    log("blast sent=%d" % sent)
    linger0(s)
    s.close()
    return 0


def cmd_fin_first_client(a):
    s = connect(a.host, a.port)
    s.settimeout(20)
    n = 0
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            n += len(d)
    except OSError as e:
        log("finfirst-client error while reading: %s (got %d)" % (e, n))
        return 1
    if n != a.nbytes:
        log("finfirst-client got %d bytes, want %d" % (n, a.nbytes))
        return 1
    try:
        s.sendall(b"thanks\n")
        s.shutdown(socket.SHUT_WR)
        res, extra = drain_result(s)
    except OSError as e:
        log("finfirst-client error while replying: %s" % e)
        return 1
    log("finfirst-client got=%d then %s" % (n, res))
    return 0 if res == "eof" and extra == 0 else 1


def cmd_expect_reset(a):
    try:
        # a proxy that fails upstream resets so fast that even the connect may see it
        s = connect(a.host, a.port)
        s.settimeout(10)
        s.sendall(b"hi\n")
        d = s.recv(4096)
        what = "eof" if not d else "data"
    except ConnectionResetError:
        what = "reset"
    except socket.timeout:
        what = "timeout"
    except OSError as e:
        what = "error-%s" % errno.errorcode.get(e.errno, e.errno)
    log("expect-reset saw %s" % what)
    return 0 if what == "reset" else 1


def cmd_rst_client(a):
    s = connect(a.host, a.port)
    s.settimeout(10)
    s.sendall(b"hi\n")
    line = read_line(s)
    if line != b"ready\n":
        log("rst-client: no ready line, got %r" % line)
        return 1
    time.sleep(0.3)
    linger0(s)
    s.close()
    log("rst-client sent rst")
    return 0


def round_trip(s, msg, timeout):
    """'ok' if msg comes back; else 'closed' (EOF/RST) or 'timeout'."""
    s.settimeout(timeout)
    try:
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            d = s.recv(len(msg) - len(got))
            if not d:
                return "closed"
            got += d
        return "ok" if got == msg else "closed"
    except socket.timeout:
        return "timeout"
    except OSError:
        return "closed"


def cmd_hold(a):
    live, counts = [], {"ok": 0, "closed": 0, "timeout": 0}
    for i in range(a.n):
        try:
            s = connect(a.host, a.port, timeout=a.timeout)
        except OSError:
            counts["closed"] += 1
            continue
        r = round_trip(s, b"ping %d\n" % i, a.timeout)
        counts[r] += 1
        if r == "ok":
            live.append(s)
        else:
            s.close()
    log("hold ok=%d closed=%d timeout=%d" % (counts["ok"], counts["closed"], counts["timeout"]))
    # keep the live ones until --hold passes or the peer closes all of them
    deadline = time.monotonic() + a.hold
    import select
    while live and time.monotonic() < deadline:
        r, _, _ = select.select(live, [], [], 0.2)
        for s in r:
            try:
                d = s.recv(4096)
            except OSError:
                d = b""
            if not d:
                live.remove(s)
                s.close()
                log("hold peer closed one at +%.1fs" % (time.monotonic() - deadline + a.hold))
    for s in live:
        s.close()
    return 0


def cmd_connect(a):
    try:
        s = connect(a.host, a.port, timeout=a.timeout)
    except ConnectionRefusedError:
        log("connect refused")
        return 1
    except ConnectionResetError:
        log("connect reset")
        return 1
    except socket.timeout:
        log("connect timeout")
        return 1
    except OSError as e:
        log("connect error-%s" % errno.errorcode.get(e.errno, e.errno))
        return 1
    r = round_trip(s, b"ping\n", a.timeout)
    log("connect %s" % ("ok" if r == "ok" else ("eof" if r == "closed" else r)))
    return 0 if r == "ok" else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("hash-server", "echo-server", "rst-server", "watch-server"):
        sub.add_parser(name).add_argument("port", type=int)
    x = sub.add_parser("fin-first-server"); x.add_argument("port", type=int); x.add_argument("nbytes", type=int)
    x = sub.add_parser("slow-server"); x.add_argument("port", type=int); x.add_argument("bps", type=int)
    x = sub.add_parser("send"); x.add_argument("host"); x.add_argument("port", type=int)
    x.add_argument("nbytes", type=int); x.add_argument("--rate", type=int, default=0)
    x.add_argument("--streams", type=int, default=1)
    x = sub.add_parser("blast"); x.add_argument("host"); x.add_argument("port", type=int)
    x.add_argument("nbytes", type=int); x.add_argument("seconds", type=float)
    x = sub.add_parser("fin-first-client"); x.add_argument("host"); x.add_argument("port", type=int)
    x.add_argument("nbytes", type=int)
    for name in ("expect-reset", "rst-client"):
        x = sub.add_parser(name); x.add_argument("host"); x.add_argument("port", type=int)
    x = sub.add_parser("hold"); x.add_argument("host"); x.add_argument("port", type=int)
    x.add_argument("n", type=int); x.add_argument("--timeout", type=float, default=3)
    x.add_argument("--hold", type=float, default=0)
    x = sub.add_parser("connect"); x.add_argument("host"); x.add_argument("port", type=int)
    x.add_argument("--timeout", type=float, default=3)
    a = p.parse_args()

    if a.cmd == "hash-server":
        serve(a.port, HashHandler)
    elif a.cmd == "echo-server":
        serve(a.port, EchoHandler)
    elif a.cmd == "rst-server":
        serve(a.port, RstHandler)
    elif a.cmd == "watch-server":
        serve(a.port, WatchHandler)
    elif a.cmd == "fin-first-server":
        serve(a.port, make_fin_first(a.nbytes))
    elif a.cmd == "slow-server":
        srv = SlowServer(("0.0.0.0", a.port), make_slow(a.bps))
        log("listening", a.port)
        srv.serve_forever()
    else:
        fn = {"send": cmd_send, "blast": cmd_blast, "fin-first-client": cmd_fin_first_client,
              "expect-reset": cmd_expect_reset, "rst-client": cmd_rst_client,
              "hold": cmd_hold, "connect": cmd_connect}[a.cmd]
        sys.exit(fn(a))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
