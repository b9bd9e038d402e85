#!/usr/bin/env bash
# WebSocket through two sidecars (client pod a -> Service VIP -> server pod b): an HTTP/1.1
# Upgrade: websocket request is forwarded, the app's 101 (with the right Sec-WebSocket-Accept)
# comes back, and after it the connection is a byte relay: a message round trip while the
# connection stays open, then 1 MiB each way at once. An Upgrade the app refuses (400)
# leaves the connection speaking HTTP. With appProtocol http and with sniffing. On both I/O
# backends. Written against the HTTP engine while it is built.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
pod a 10.233.1.2
pod b 10.233.1.3
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0 # pods reach VIPs through their route
for p in a b; do check "ringmesh-init in $p" pod_init "$p"; done
pod_app b "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name b; log_b=$RM_APP_LOG
wait_port b 8080

WS=10.96.0.40    # appProtocol http
SNIFF=10.96.0.41 # no appProtocol
source "$RINGMESH_ROOT/tests/lib/http.sh" # fetch, expect, service, check_delta, alive, codes
CFG=$RM_TMP/mesh.yaml
{
    service ws $WS
    service sniff $SNIFF proto=
} >"$CFG"
chmod 644 "$CFG"

# wsclient HOST MODE: a WebSocket client as the app user. MODE echo: upgrade, check the 101
# and its accept key, one message round trip with the connection open, then 1 MiB each way
# at once, then EOF. MODE refused: an Upgrade without Sec-WebSocket-Key must get the app's
# 400, and a plain GET on the same connection must then get a 200. Prints one line.
wsclient() {
    in_pod a "$RM_PY" - "$1" "$2" <<'EOF'
import base64, hashlib, os, socket, sys, threading
host, mode = sys.argv[1], sys.argv[2]
s = socket.create_connection((host, 80), timeout=10)
buf = b""

def head():
    global buf
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            sys.exit("eof before a response head; got %r" % buf[:300])
        buf += d
    h, buf = buf.split(b"\r\n\r\n", 1)
    lines = h.decode(errors="replace").split("\r\n")
    f = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    return int(lines[0].split()[1]), f

def body(f):
    global buf
    n = int(f.get("content-length", 0))
    while len(buf) < n:
        d = s.recv(65536)
        if not d:
            sys.exit("eof in a body")
        buf += d
    b, buf = buf[:n], buf[n:]
    return b

if mode == "refused":
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: ws\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    st, f = head()
    body(f)
    if st != 400:
        sys.exit("refused upgrade: status %d, want 400 (%r)" % (st, f))
    s.sendall(b"GET /after HTTP/1.1\r\nHost: ws\r\n\r\n")
    st2, f2 = head()
    b = body(f2)
    if st2 != 200 or f2.get("x-path") != "/after":
        sys.exit("after the refused upgrade: status %d x-path %r body %r" % (st2, f2.get("x-path"), b))
    print("refused 400, then 200 on the same connection")
    sys.exit(0)

key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET /ws HTTP/1.1\r\nHost: ws\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
st, f = head()
want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC11B85").encode()).digest()).decode()
if st != 101 or f.get("sec-websocket-accept") != want or f.get("upgrade", "").lower() != "websocket":
    sys.exit("upgrade: status %d, fields %r; want 101 with accept %s" % (st, f, want))
got = buf
s.sendall(b"hello")
while len(got) < 5:
    d = s.recv(65536)
    if not d:
        sys.exit("eof before the echo of 'hello'")
    got += d
if got != b"hello":
    sys.exit("echo of 'hello': %r" % got[:100])
data = os.urandom(1 << 20)

def send():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)

threading.Thread(target=send, daemon=True).start()
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
if got != data:
    sys.exit("1 MiB each way: got %d bytes back, %s" % (len(got), "equal prefix" if data.startswith(got) else "different"))
print("101 from %s, accept ok, hello echoed, 1 MiB echoed, eof" % f.get("x-app"))
EOF
}

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    sidecar_up a "$io" --config "$CFG" --pod-ip 10.233.1.2 || continue
    sidecar_up b "$io" --config "$CFG" --pod-ip 10.233.1.3 || { sidecar_down a; continue; }

    ws_n0=$(grep -c '^ws echoed=1048581$' "$log_b")
    h1_0=$(sidecar_stat a outbound.cx_http1)
    check_q "$io: WebSocket through two sidecars (appProtocol http): 101, then bytes both ways" \
        wsclient $WS echo
    check_delta a outbound.cx_http1 "$h1_0" eq 1
    check_q "$io: WebSocket to a Service without appProtocol (sniffed)" wsclient $SNIFF echo
    check_q "$io: an Upgrade the app refuses leaves the connection speaking HTTP" wsclient $WS refused
    # the app logs after its half-close, which may reach the client first
    wait_until 3 test "$(grep -c '^ws echoed=1048581$' "$log_b")" -ge $((ws_n0 + 2))
    check_eq "$io: the app echoed 1 MiB + 5 bytes on each of the two WebSockets" \
        $(($(grep -c '^ws echoed=1048581$' "$log_b") - ws_n0)) 2
    two=$(in_pod a curl -sS --max-time 5 -o /dev/null -w '%{http_code} %header{x-app}' http://$WS/ 2>&1)
    check_eq "$io: a plain GET to the same Service still works" "$two" "200 b"
    check_stat a outbound.rq_total ge 4
    alive a b
    sidecars_down
done
tap_done
