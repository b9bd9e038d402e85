#!/usr/bin/python3
"""fakexds.py - a scriptable fake ringmesh control plane for tests (xds/PROTOCOL.md).

h2c (HTTP/2 prior knowledge) on one port, python3-h2, one thread per connection:

  POST /ringmesh.xds.v1/DeltaResources  the delta xDS stream: answers each subscribe line
      with what differs from initial_resource_versions (changed/new in `resources`, held
      names the store lacks in `removed_resources`), pushes changes to every open stream,
      nonces count per stream. It does not enforce "one unACKed response per type".
  POST /ringmesh.ca.v1/Sign             the CA: the bearer token must be one of --token
      TOKEN=NS/SA; the CSR is signed with `openssl x509 -req` by --ca-dir's root-cert.pem
      and root-key.pem (ringmeshctl ca init) for spiffe://cluster.local/ns/NS/sa/SA.

Scripting: the test drops files NAME.cmd (JSON) into --control DIR; they run in name order:
  {"op":"apply","objects":[...model objects...]}  store them (version = new revision), push
  {"op":"delete","type_url":T,"name":"ns/name"}    remove, push
  {"op":"drop"}                                    close every connection (no GOAWAY)
  {"op":"raw","line":"..."}                        send this line on every stream
Every request line received and every event goes to --record FILE as one JSON line:
  {"event":"connect"}, {"event":"line","line":{...}}, {"event":"sent","line":{...}},
  {"event":"sign","identity":"ns/sa"}, {"event":"drop"}.
--objects FILE: the initial store (a JSON list of model objects).
"""
import argparse
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

import h2.config
import h2.connection
import h2.events

TYPES = [
    "v1/Service",
    "ringmesh.io/v1alpha1/DestinationPolicy",
    "discovery.k8s.io/v1/EndpointSlice",
    "gateway.networking.k8s.io/v1/HTTPRoute",
    "ringmesh.io/v1alpha1/AuthorizationPolicy",
    "ringmesh.io/v1alpha1/PeerAuthentication",
]

lock = threading.RLock()
store = {t: {} for t in TYPES}  # type -> name -> (version, obj)
revision = [0]
conns = []
args = None


def record(ev):
    ev["t"] = time.time()
    with lock, open(args.record, "a") as f:
        f.write(json.dumps(ev) + "\n")


def type_of(obj):
    return "%s/%s" % (obj["apiVersion"], obj["kind"])


def name_of(obj):
    md = obj.get("metadata", {})
    return "%s/%s" % (md.get("namespace") or "default", md["name"])


def put(objs):
    """Stores objects at a new revision; returns {type: [names changed]}."""
    with lock:
        revision[0] += 1
        changed = {}
        for o in objs:
            t, n = type_of(o), name_of(o)
            store[t][n] = (str(revision[0]), o)
            changed.setdefault(t, []).append(n)
        return changed


class Stream:
    """One DeltaResources stream on a connection."""

    def __init__(self, conn, sid):
        self.conn, self.sid = conn, sid
        self.buf = b""
        self.nonce = 0
        self.subscribed = set()

    def send_line(self, obj):
        data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        self.conn.send_data(self.sid, data)
        record({"event": "sent", "line": obj})

    def respond(self, t, names=None, removed=(), irv=None):
        """Sends type t: the named resources (None = all differing from irv)."""
        with lock:
            held = store[t]
            res = []
            if names is None:
                irv = irv or {}
                for n, (v, o) in held.items():
                    if irv.get(n) != v:
                        res.append({"name": n, "version": v, "resource": o})
                removed = [n for n in irv if n not in held]
            else:
                res = [{"name": n, "version": held[n][0], "resource": held[n][1]}
                       for n in names if n in held]
            self.nonce += 1
            self.send_line({"system_version_info": str(revision[0]), "type_url": t,
                            "nonce": str(self.nonce), "resources": res,
                            "removed_resources": list(removed)})

    def on_data(self, data):
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            try:
                req = json.loads(line)
            except ValueError:
                record({"event": "badline", "line": line.decode(errors="replace")})
                continue
            record({"event": "line", "line": req})
            t = req.get("type_url")
            if "resource_names_subscribe" in req and t not in self.subscribed:
                self.subscribed.add(t)
                if t in store:
                    self.respond(t, irv=req.get("initial_resource_versions"))


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.streams = {}
        self.sign = {}  # stream id -> (headers, body)
        self.alive = True
        self.wlock = threading.RLock()

    def send_data(self, sid, data):
        with self.wlock:
            # small lines: the windows (65535 + what the client granted) are enough here
            while data:
                n = min(len(data), self.h2.max_outbound_frame_size,
                        self.h2.local_flow_control_window(sid))
                if n <= 0:
                    self.flush()
                    time.sleep(0.01)
                    continue
                self.h2.send_data(sid, data[:n])
                data = data[n:]
            self.flush()

    def flush(self):
        out = self.h2.data_to_send()
        if out:
            try:
                self.sock.sendall(out)
            except OSError:
                self.alive = False

    def handle_sign(self, sid, headers, body):
        auth = headers.get("authorization", "")
        ident = None
        if auth.startswith("Bearer "):
            ident = args.tokens.get(auth[7:])
        if not ident:
            return self.reply(sid, 401, {"error": "no or unknown bearer token"})
        try:
            csr = json.loads(body)["csr"]
        except (ValueError, KeyError):
            return self.reply(sid, 400, {"error": "want {\"csr\": PEM}"})
        ns, sa = ident.split("/")
        with tempfile.TemporaryDirectory() as d:
            open(d + "/req.pem", "w").write(csr)
            open(d + "/ext", "w").write(
                "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyAgreement\n"
                "extendedKeyUsage=serverAuth,clientAuth\n"
                "subjectAltName=critical,URI:spiffe://cluster.local/ns/%s/sa/%s\n" % (ns, sa))
            p = subprocess.run(
                ["openssl", "x509", "-req", "-in", d + "/req.pem", "-CA",
                 args.ca_dir + "/root-cert.pem", "-CAkey", args.ca_dir + "/root-key.pem",
                 "-CAcreateserial", "-CAserial", d + "/serial", "-days", "1", "-sha256",
                 "-extfile", d + "/ext", "-out", d + "/cert.pem"],
                capture_output=True, text=True)
            if p.returncode != 0:
                return self.reply(sid, 400, {"error": "openssl: " + p.stderr.strip()})
            cert = open(d + "/cert.pem").read()
        root = open(args.ca_dir + "/root-cert.pem").read()
        exp = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        record({"event": "sign", "identity": ident})
        self.reply(sid, 200, {"cert_chain": cert, "root_cert": root, "expires": exp})

    def reply(self, sid, status, obj):
        body = json.dumps(obj).encode()
        with self.wlock:
            self.h2.send_headers(sid, [(":status", str(status)),
                                       ("content-type", "application/json"),
                                       ("content-length", str(len(body)))])
            self.h2.send_data(sid, body, end_stream=True)
            self.flush()

    def run(self):
        with self.wlock:
            self.h2.initiate_connection()
            self.h2.increment_flow_control_window(1 << 24)
            self.flush()
        record({"event": "connect"})
        while self.alive:
            try:
                r, _, _ = select.select([self.sock], [], [], 0.05)
            except (OSError, ValueError):
                break
            if not r:
                continue
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            with self.wlock:
                try:
                    events = self.h2.receive_data(data)
                except Exception as e:  # protocol error: end the connection
                    record({"event": "h2error", "error": str(e)})
                    break
                for ev in events:
                    self.on_event(ev)
                self.flush()
        self.alive = False
        with lock:
            if self in conns:
                conns.remove(self)
        try:
            self.sock.close()
        except OSError:
            pass
        record({"event": "disconnect"})

    def on_event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            hd = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                  for k, v in ev.headers}
            path = hd.get(":path")
            if path == "/ringmesh.xds.v1/DeltaResources":
                self.h2.send_headers(ev.stream_id, [(":status", "200"),
                                                    ("content-type", "application/x-ndjson")])
                self.streams[ev.stream_id] = Stream(self, ev.stream_id)
            elif path == "/ringmesh.ca.v1/Sign":
                self.sign[ev.stream_id] = (hd, b"")
            else:
                self.reply(ev.stream_id, 404, {"error": "no such path"})
        elif isinstance(ev, h2.events.DataReceived):
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if ev.stream_id in self.streams:
                self.streams[ev.stream_id].on_data(ev.data)
            elif ev.stream_id in self.sign:
                hd, b = self.sign[ev.stream_id]
                self.sign[ev.stream_id] = (hd, b + ev.data)
        elif isinstance(ev, h2.events.StreamEnded):
            if ev.stream_id in self.sign:
                hd, b = self.sign.pop(ev.stream_id)
                self.handle_sign(ev.stream_id, hd, b)
        elif isinstance(ev, h2.events.StreamReset):
            self.streams.pop(ev.stream_id, None)


def control_loop():
    while True:
        time.sleep(0.05)
        try:
            names = sorted(n for n in os.listdir(args.control) if n.endswith(".cmd"))
        except OSError:
            continue
        for n in names:
            path = os.path.join(args.control, n)
            try:
                cmd = json.load(open(path))
            except ValueError:
                continue  # still being written
            os.unlink(path)
            run_cmd(cmd)


def each_stream():
    with lock:
        return [(c, s) for c in conns for s in list(c.streams.values())]


def run_cmd(cmd):
    op = cmd["op"]
    record({"event": "cmd", "op": op})
    if op == "apply":
        changed = put(cmd["objects"])
        for c, s in each_stream():
            with c.wlock:
                for t in TYPES:
                    if t in changed and t in s.subscribed:
                        s.respond(t, names=changed[t])
    elif op == "delete":
        with lock:
            revision[0] += 1
            store[cmd["type_url"]].pop(cmd["name"], None)
        for c, s in each_stream():
            with c.wlock:
                s.respond(cmd["type_url"], names=[], removed=[cmd["name"]])
    elif op == "drop":
        with lock:
            cs = list(conns)
        for c in cs:
            c.alive = False
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        record({"event": "drop"})
    elif op == "raw":
        for c, s in each_stream():
            with c.wlock:
                c.send_data(s.sid, (cmd["line"] + "\n").encode())


def main():
    global args
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--objects")
    ap.add_argument("--ca-dir")
    ap.add_argument("--token", action="append", default=[], help="TOKEN=NS/SA")
    args = ap.parse_args()
    args.tokens = dict(t.split("=", 1) for t in args.token)
    if args.objects:
        put(json.load(open(args.objects)))
    os.makedirs(args.control, exist_ok=True)
    threading.Thread(target=control_loop, daemon=True).start()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.port))
    ls.listen(16)
    print("fakexds: listening on 127.0.0.1:%d" % args.port, flush=True)
    while True:
        s, _ = ls.accept()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = Conn(s)
        with lock:
            conns.append(c)
        threading.Thread(target=c.run, daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
