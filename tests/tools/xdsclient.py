#!/usr/bin/env python3
"""xdsclient.py - a small delta xDS client for ringmesh-xds's tests (xds/PROTOCOL.md), on
python3-h2 over a raw socket (h2c prior knowledge, or TLS with --tls).

Connects, opens POST /ringmesh.xds.v1/DeltaResources, subscribes "*" to the six types (the
first line carrying the node), and prints every response line as it arrives, one JSON object
per line on stdout (flushed). The held state (type -> name -> version, the client rule of
PROTOCOL.md applied to every response) is written to --state after each response, so a later
run can resume from it with --resume.

Commands, one per line on stdin:
  ack              ACK every response not yet answered, in order
  nack MESSAGE     NACK the oldest unanswered response with MESSAGE (code 3)
  quit             end the stream and exit
With --auto-ack every response is ACKed as it arrives.

  --sign TOKEN CSRFILE  instead: POST /ringmesh.ca.v1/Sign with the CSR, print the answer
                        as {"status":N,"body":{...}} and exit
"""
import argparse
import json
import os
import select
import socket
import ssl
import sys

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


def out(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Client:
    def __init__(self, args):
        self.args = args
        raw = socket.create_connection((args.host, args.port), timeout=10)
        if args.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            ctx.set_alpn_protocols(["h2"])
            if args.cert:
                ctx.load_cert_chain(args.cert, args.key)
            raw = ctx.wrap_socket(raw)
        self.sock = raw
        self.sock.settimeout(None)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.flush()
        self.sid = None
        self.buf = b""
        self.unanswered = []  # (type_url, nonce)
        self.held = {t: {} for t in TYPES}
        self.ended = False

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path):
        self.sid = self.h2.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":authority", "xds"),
                   (":path", path), ("content-type", "application/x-ndjson")]
        if self.args.token:
            headers.append(("authorization", "Bearer " + self.args.token))
        self.h2.send_headers(self.sid, headers)
        self.flush()

    def send_line(self, obj, end=False):
        self.h2.send_data(self.sid, (json.dumps(obj) + "\n").encode(), end_stream=end)
        self.flush()

    def subscribe(self):
        resume = {}
        if self.args.resume:
            with open(self.args.resume) as f:
                resume = json.load(f)
        for i, t in enumerate(TYPES):
            line = {"type_url": t, "resource_names_subscribe": ["*"]}
            if i == 0:
                line["node"] = {"id": "sidecar~%s~%s.%s~%s.svc.cluster.local" %
                                (self.args.pod_ip, self.args.pod, self.args.ns, self.args.ns),
                                "cluster": "web",
                                "metadata": {"namespace": self.args.ns, "pod": self.args.pod,
                                             "service_account": "web", "pod_ip": self.args.pod_ip},
                                "user_agent_name": "xdsclient.py"}
            if resume.get(t):
                line["initial_resource_versions"] = resume[t]
                self.held[t] = dict(resume[t])
            self.send_line(line)

    def on_line(self, line):
        resp = json.loads(line)
        out(resp)
        if "error" in resp:
            return
        t = resp["type_url"]
        for r in resp.get("resources", []):
            self.held[t][r["name"]] = r["version"]
        for n in resp.get("removed_resources", []):
            self.held[t].pop(n, None)
        if self.args.state:
            tmp = self.args.state + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.held, f)
            os.replace(tmp, self.args.state)
        self.unanswered.append((t, resp["nonce"]))
        if self.args.auto_ack:
            self.ack()

    def ack(self):
        for t, n in self.unanswered:
            self.send_line({"type_url": t, "response_nonce": n})
        self.unanswered = []

    def nack(self, msg):
        if not self.unanswered:
            out({"client_error": "nothing to NACK"})
            return
        t, n = self.unanswered.pop(0)
        self.send_line({"type_url": t, "response_nonce": n,
                        "error_detail": {"code": 3, "message": msg}})

    def pump(self):
        data = self.sock.recv(65536)
        if not data:
            self.ended = True
            return
        for ev in self.h2.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                hdrs = {k.decode() if isinstance(k, bytes) else k:
                        v.decode() if isinstance(v, bytes) else v for k, v in ev.headers}
                self.status = int(hdrs.get(":status", "0"))
            elif isinstance(ev, h2.events.DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                self.buf += ev.data
                if not self.args.sign:
                    while b"\n" in self.buf:
                        line, self.buf = self.buf.split(b"\n", 1)
                        if line.strip():
                            self.on_line(line)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset,
                                 h2.events.ConnectionTerminated)):
                self.ended = True
        self.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--pod", default="web-1")
    ap.add_argument("--ns", default="default")
    ap.add_argument("--pod-ip", default="10.0.0.5")
    ap.add_argument("--state")
    ap.add_argument("--resume")
    ap.add_argument("--auto-ack", action="store_true")
    ap.add_argument("--token")
    ap.add_argument("--sign", metavar="CSRFILE")
    args = ap.parse_args()

    c = Client(args)
    if args.sign:
        c.status = 0
        c.request("/ringmesh.ca.v1/Sign")
        with open(args.sign) as f:
            c.send_line({"csr": f.read()}, end=True)
        while not c.ended:
            c.pump()
        try:
            body = json.loads(c.buf)
        except ValueError:
            body = c.buf.decode(errors="replace")
        out({"status": c.status, "body": body})
        return 0
    c.request("/ringmesh.xds.v1/DeltaResources")
    c.subscribe()
    stdin_open = True
    while not c.ended:
        fds = [c.sock] + ([sys.stdin] if stdin_open else [])
        if isinstance(c.sock, ssl.SSLSocket) and c.sock.pending():
            r = [c.sock]
        else:
            r, _, _ = select.select(fds, [], [])
        if c.sock in r:
            c.pump()
        if sys.stdin in r:
            cmd = sys.stdin.readline()
            if not cmd:
                stdin_open = False
                continue
            cmd = cmd.strip()
            if cmd == "ack":
                c.ack()
            elif cmd.startswith("nack "):
                c.nack(cmd[5:])
            elif cmd == "quit":
                break
    out({"client": "ended"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
