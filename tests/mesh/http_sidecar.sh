#!/usr/bin/env bash
# The HTTP layer's own behaviours through two sidecars (client pod a -> Service VIPs ->
# server pod b): the Host header names the Service (svc, svc.ns, FQDN) over the VIP the
# app connected to, and an unknown Host falls back to that VIP's Service; a connection's
# request rate past --max-request-rate gets 429 with flag RL while another connection is
# served; HTTP connections count their bytes like relays; on SIGTERM an HTTP/2 client gets
# GOAWAY and its request in flight completes; a RequestMirror copy reaches the mirror; a
# CONTINUATION flood gets GOAWAY(ENHANCE_YOUR_CALM) while another client is served. On
# both I/O backends.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
pod a 10.233.1.2
pod b 10.233.1.3
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0 # pods reach VIPs through their route
for p in a b; do check "ringmesh-init in $p" pod_init "$p"; done
pod_app b "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name one
pod_app b "$RM_PY" "$RM_TOOLS/httpapp.py" 8081 --name two; log_two=$RM_APP_LOG
for port in 8080 8081; do wait_port b $port; done

ONE=10.96.0.70 # -> b:8080 (app "one")
TWO=10.96.0.71 # -> b:8081 (app "two"), also the mirror of ONE's /mirror route
source "$RINGMESH_ROOT/tests/lib/http.sh" # fetch, expect, service, check_delta, alive, codes
CFG=$RM_TMP/mesh.yaml
{
    service one $ONE ns=shop
    service two $TWO ns=shop target=8081
    cat <<'YAML'
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: one, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: one, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /mirror}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: two, port: 80}}
    backendRefs: [{name: one, port: 80}]
  - backendRefs: [{name: one, port: 80}]
YAML
} >"$CFG"
chmod 644 "$CFG"

app_of() { # POD CURL_ARGS...: the x-app of one response (or curl's error)
    local p=$1; shift
    in_pod "$p" curl -sS --max-time 5 -o /dev/null -w '%{http_code} %header{x-app}' "$@" 2>&1
}

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    # the client pod is in namespace shop: "two" alone names two.shop
    sidecar_up a "$io" --config "$CFG" --concurrency 1 --pod-namespace shop --max-request-rate 50 ||
        continue
    sidecar_up b "$io" --config "$CFG" || { sidecar_down a; continue; }

    # --- the Host names the Service
    check_eq "$io: Host matches the VIP's Service: one" "$(app_of a http://$ONE/)" "200 one"
    check_eq "$io: Host 'two' on one's VIP goes to two" "$(app_of a -H 'Host: two' http://$ONE/)" "200 two"
    check_eq "$io: Host 'two.shop' goes to two" "$(app_of a -H 'Host: two.shop' http://$ONE/)" "200 two"
    check_eq "$io: Host 'two.shop.svc.cluster.local:80' goes to two" \
        "$(app_of a -H 'Host: two.shop.svc.cluster.local:80' http://$ONE/)" "200 two"
    check_eq "$io: an unknown Host falls back to the VIP's Service" \
        "$(app_of a -H 'Host: nosuch.example' http://$ONE/)" "200 one"
    check_eq "$io: HTTP/2 :authority 'two' goes to two" \
        "$(app_of a --http2-prior-knowledge -H 'Host: two' http://$ONE/)" "200 two"

    # --- RequestMirror: the copy reaches two with a -shadow authority, the client sees one
    before=$(grep -c 'req GET /mirror' "$log_two")
    check_eq "$io: a mirrored request is answered by one" "$(app_of a http://$ONE/mirror/x)" "200 one"
    check "$io: two got the mirror copy" wait_until 3 \
        bash -c "[ \$(grep -c 'req GET /mirror' '$log_two') -gt $before ]"
    check_stat a outbound.rq_mirror ge 1

    # --- a connection's request rate: 200 requests at once on one HTTP/2 connection, 50/s
    out=$(in_pod a h2load -n 200 -c 1 -m 20 http://$ONE/ 2>&1 | grep -E '^status codes')
    n2=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$out")
    n4=$(sed -n 's/.* \([0-9]*\) 4xx.*/\1/p' <<<"$out")
    check "$io: one connection past 50 requests a second gets 429s ($out)" \
        bash -c "[ '${n2:-0}' -ge 1 ] && [ '${n2:-0}' -le 100 ] && [ '${n4:-0}' -ge 100 ]"
    check_stat a outbound.rq_flag_RL ge 100
    check_eq "$io: another connection is still served" "$(app_of a http://$ONE/)" "200 one"
    code=$(in_pod a curl -sS --max-time 5 -o /dev/null -D - http://$ONE/ 2>&1 | tr -d '\r' |
        awk 'tolower($1) == "x-ringmesh-flags:" { print $2 }')
    check_eq "$io: a fresh connection has its own budget (no flag)" "${code:-none}" none

    # --- CONTINUATION flood (CVE-2024-27316 class): one HEADERS without END_HEADERS, then
    # endless CONTINUATION frames. The sidecar must answer GOAWAY(ENHANCE_YOUR_CALM) after a
    # few frames and close, while another client is served and the sidecar stays small.
    out=$(in_pod a "$RM_PY" - "$ONE" <<'PY'
import socket, struct, sys
s = socket.create_connection((sys.argv[1], 80), timeout=5)
frame = lambda t, f, sid, p: struct.pack(">I", len(p))[1:] + bytes([t, f]) + struct.pack(">I", sid) + p
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b""))
s.sendall(frame(1, 0, 1, b"\x82\x86\x84"))  # HEADERS, stream 1, no END_HEADERS
sent, buf, goaway = 0, b"", None
try:
    for i in range(10000):
        s.sendall(frame(9, 0, 1, b"\x40\x01a\x01b"))  # CONTINUATION, no END_HEADERS
        sent += 1
except OSError:
    pass
try:
    while goaway is None:
        d = s.recv(65536)
        if not d:
            break
        buf += d
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            if buf[3] == 7:
                goaway = int.from_bytes(buf[9 + 4:9 + 8], "big")
            buf = buf[9 + n:]
except OSError:
    pass
print("goaway=%s sent=%d" % (goaway if goaway is not None else "none", sent))
PY
)
    check "$io: CONTINUATION flood: GOAWAY(ENHANCE_YOUR_CALM) ($out)" grep -q 'goaway=11 ' <<<"$out"
    check_stat a outbound.h2_conn_error ge 1
    check_eq "$io: CONTINUATION flood: another client is served" "$(app_of a http://$ONE/)" "200 one"
    rss=$(awk '/VmRSS/ { print $2 }' "/proc/$(sidecar_pid a)/status")
    check "$io: CONTINUATION flood: the sidecar's RSS stays under 64 MiB (${rss} KiB)" [ "${rss:-999999}" -lt 65536 ]

    # --- abandoned and early-answered exchanges leave nothing behind: uploads cut short by
    # the client's FIN (the connection used to leak: cx_active stayed up), an upload the app
    # answers without reading it (/status/413), and a pooled connection reused right after
    # a large response still answers.
    in_pod a "$RM_PY" - "$ONE" <<'PY'
import socket, sys
for i in range(5):  # Content-Length 100000, 500 bytes, then FIN
    s = socket.create_connection((sys.argv[1], 80), timeout=5)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: one\r\nContent-Length: 100000\r\n\r\n" + b"x" * 500)
    s.shutdown(socket.SHUT_WR)
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.close()
PY
    code=$(in_pod a bash -c "head -c 3000000 /dev/zero | curl -sS --max-time 10 -o /dev/null -w '%{http_code}' --data-binary @- http://$ONE/status/413" 2>&1)
    check_eq "$io: an upload answered early (413) gets the answer" "$code" 413
    big=$(in_pod a curl -sS --max-time 10 http://$ONE/bytes/3000000 | wc -c)
    check_eq "$io: a 3 MB response arrives whole" "$big" 3000000
    check_eq "$io: the next request on the pool is answered" "$(app_of a http://$ONE/)" "200 one"
    check "$io: no downstream connection left open (outbound.cx_active 0)" \
        wait_until 5 [ "$(sidecar_stat a outbound.cx_active)" = 0 ]

    # --- bytes: HTTP connections count what they carry, both directions
    rx0=$(sidecar_stat a outbound.bytes_rx) tx0=$(sidecar_stat a outbound.bytes_tx)
    in_pod a curl -sS --max-time 10 -o /dev/null http://$ONE/bytes/300000
    rx1=$(sidecar_stat a outbound.bytes_rx) tx1=$(sidecar_stat a outbound.bytes_tx)
    check "$io: outbound.bytes_tx grew by the 300000-byte response ($tx0 -> $tx1)" \
        [ $((tx1 - tx0)) -ge 300000 ]
    check "$io: outbound.bytes_rx grew by the requests ($rx0 -> $rx1)" [ $((rx1 - rx0)) -ge 50 ]

    # --- drain: an HTTP/2 request in flight completes after SIGTERM, the client sees GOAWAY
    in_pod a nghttp -v http://$ONE/delay/1500 >"$RM_TMP/drain.out" 2>&1 &
    dpid=$!
    sleep 0.5
    kill -TERM "$(sidecar_pid a)"
    wait $dpid
    check "$io: drain: the HTTP/2 request in flight got its 200" grep -q ':status: 200' "$RM_TMP/drain.out"
    check "$io: drain: the client was told GOAWAY" grep -q 'recv GOAWAY' "$RM_TMP/drain.out"
    check "$io: drain: the sidecar exits" wait_until 8 bash -c "[ -z \"\$(sidecar_pid a)\" ] || ! kill -0 \$(sidecar_pid a) 2>/dev/null"
    sidecar_down a
    sidecar_down b
done
tap_done
