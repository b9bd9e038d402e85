#!/usr/bin/python3
"""grpcapp - a gRPC server and client for the mesh tests (python3-grpcio, no protoc: every
message is raw bytes, serialised by the identity function).

    grpcapp.py server PORT --name NAME
        listens on 0.0.0.0:PORT, prints "listening PORT", then "rpc METHOD" per call.
        /test.Echo/Unary   returns the request bytes; trailing metadata x-app: NAME
        /test.Echo/Stream  bidi: answers each message M with "NAME M", in order
        /test.Echo/Fail    request "CODE [MESSAGE]" (CODE a number or a name such as
                           NOT_FOUND): aborts the call with that status and message
        /test.Echo/Sleep   request "MS": sleeps MS milliseconds, returns "slept"

    grpcapp.py client HOST:PORT unary [--size N] [--count K] [--expect-name NAME]
        K calls (1) on one channel, each with N (5) random bytes; every reply must equal
        the request and, with --expect-name, carry trailing metadata x-app: NAME.
    grpcapp.py client HOST:PORT stream N
        one bidi call with N messages; the N replies must come back in order.
    grpcapp.py client HOST:PORT fail CODE [MESSAGE]
        the call must end with exactly that status (and message, when given).
    grpcapp.py client HOST:PORT sleep MS
        one Sleep call.
    Client options: --expect-code CODE (default OK; for fail, the CODE asked for) makes the
    expected outcome that status instead; --timeout S is each call's deadline (10).
    The client prints one line saying what it saw and exits 0 only on the expected outcome.
"""
import argparse
import os
import sys
import threading
import time
from concurrent import futures

import grpc

SERVICE = "test.Echo"
CODES = {c.value[0]: c for c in grpc.StatusCode}


def ident(b):
    return b


def log(*a):
    sys.stdout.write(" ".join(str(x) for x in a) + "\n")
    sys.stdout.flush()


def parse_code(text):
    """A status code from "5", "NOT_FOUND" or "not_found"."""
    if text.isdigit():
        return CODES[int(text)]
    return grpc.StatusCode[text.upper()]


# ---------------------------------------------------------------- server

def serve(port, name):
    nb = name.encode()

    def unary(req, ctx):
        log("rpc Unary bytes=%d" % len(req))
        ctx.set_trailing_metadata((("x-app", name),))
        return req

    def stream(reqs, ctx):
        log("rpc Stream")
        for m in reqs:
            yield nb + b" " + m

    def fail(req, ctx):
        log("rpc Fail", req.decode(errors="replace"))
        code, _, msg = req.decode().partition(" ")
        ctx.abort(parse_code(code), msg)

    def sleep(req, ctx):
        log("rpc Sleep", req.decode(errors="replace"))
        time.sleep(int(req) / 1000.0)
        return b"slept"

    h = grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, ident, ident),
        "Stream": grpc.stream_stream_rpc_method_handler(stream, ident, ident),
        "Fail": grpc.unary_unary_rpc_method_handler(fail, ident, ident),
        "Sleep": grpc.unary_unary_rpc_method_handler(sleep, ident, ident),
    })
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=64),
                      options=[("grpc.max_receive_message_length", 64 << 20),
                               ("grpc.max_send_message_length", 64 << 20)])
    srv.add_generic_rpc_handlers((h,))
    srv.add_insecure_port("0.0.0.0:%d" % port)
    srv.start()
    log("listening", port)
    threading.Event().wait()


# ---------------------------------------------------------------- client

def call(ch, a):
    """Run the calls a asks for; return (status, text) where status is grpc.StatusCode.OK when
    every reply was right, the failing call's code otherwise (or None: a wrong reply)."""
    m = "/%s/" % SERVICE
    if a.method == "unary":
        fn = ch.unary_unary(m + "Unary", request_serializer=ident, response_deserializer=ident)
        for i in range(a.count):
            req = os.urandom(a.size)
            resp, c = fn.with_call(req, timeout=a.timeout)
            got = dict(c.trailing_metadata() or ()).get("x-app")
            if resp != req:
                return None, "call %d: reply of %d bytes differs from the request" % (i, len(resp))
            if a.expect_name and got != a.expect_name:
                return None, "call %d: trailing x-app %r, want %r" % (i, got, a.expect_name)
        return grpc.StatusCode.OK, "unary ok calls=%d bytes=%d x-app=%s" % (a.count, a.size, got)
    if a.method == "stream":
        n = int(a.args[0])
        msgs = [b"m%d" % i for i in range(n)]
        fn = ch.stream_stream(m + "Stream", request_serializer=ident, response_deserializer=ident)
        got = list(fn(iter(msgs), timeout=a.timeout))
        names = {g.split(b" ", 1)[0] for g in got}
        if [g.split(b" ", 1)[-1] for g in got] != msgs:
            return None, "stream: got %r, want %d echoes in order" % (got[:10], n)
        return grpc.StatusCode.OK, "stream ok messages=%d from=%s" % (
            len(got), b",".join(sorted(names)).decode())
    if a.method == "fail":
        fn = ch.unary_unary(m + "Fail", request_serializer=ident, response_deserializer=ident)
        fn(" ".join(a.args).encode(), timeout=a.timeout)
        return grpc.StatusCode.OK, "fail: the call succeeded"
    if a.method == "sleep":
        fn = ch.unary_unary(m + "Sleep", request_serializer=ident, response_deserializer=ident)
        return grpc.StatusCode.OK, "sleep ok %s" % fn(a.args[0].encode(), timeout=a.timeout).decode()
    raise SystemExit("unknown method %s" % a.method)


def client(a):
    want = parse_code(a.expect_code) if a.expect_code else (
        parse_code(a.args[0]) if a.method == "fail" else grpc.StatusCode.OK)
    want_msg = " ".join(a.args[1:]) if a.method == "fail" and len(a.args) > 1 else None
    ch = grpc.insecure_channel(a.target, options=[
        ("grpc.enable_http_proxy", 0),
        ("grpc.max_receive_message_length", 64 << 20),
        ("grpc.max_send_message_length", 64 << 20)])
    t0 = time.monotonic()
    try:
        status, text = call(ch, a)
        details = None
    except grpc.RpcError as e:
        status, details = e.code(), e.details()
        text = "%s status=%s (%d) details=%r" % (a.method, status.name, status.value[0], details)
    print("%s elapsed_ms=%d" % (text, (time.monotonic() - t0) * 1000))
    if status != want:
        print("want status %s (%d)" % (want.name, want.value[0]))
        return 1
    if want_msg is not None and details != want_msg:
        print("want details %r" % want_msg)
        return 1
    return 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "server":
        ap = argparse.ArgumentParser(prog="grpcapp.py server")
        ap.add_argument("port", type=int)
        ap.add_argument("--name", default="app")
        a = ap.parse_args(sys.argv[2:])
        serve(a.port, a.name)
        return 0
    ap = argparse.ArgumentParser(prog="grpcapp.py client")
    ap.add_argument("mode", choices=["client"])
    ap.add_argument("target", help="HOST:PORT")
    ap.add_argument("method", choices=["unary", "stream", "fail", "sleep"])
    ap.add_argument("args", nargs="*")
    ap.add_argument("--size", type=int, default=5)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--expect-name")
    ap.add_argument("--expect-code")
    ap.add_argument("--timeout", type=float, default=10)
    return client(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
