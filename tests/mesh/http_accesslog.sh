#!/usr/bin/env bash
# The JSON access log through two sidecars (client pod a -> Service VIPs -> server pod b):
# a mix of requests (200s over HTTP/1.1, app 404s over HTTP/2, an app 503, a POST with a
# body, local replies 503 UH from a Service without endpoints and 404 NR from a route that
# does not match, and a hostile request whose path and user-agent hold quotes,
# backslashes, a tab and invalid UTF-8, and one the parser refuses for a control byte in
# its target (400 DPE)) gives one JSON line per request on each side, with
# the right method, path, status, flags, protocol, bytes, clusters, hosts and direction;
# gRPC calls carry grpc_status (0, and 5 for NOT_FOUND); with mTLS the lines name the SPIFFE
# IDs of both ends; --access-log-errors-only logs only the failures; --access-log-sample
# 0.5 over 400 requests logs between 100 and 300; what was pushed is written at exit;
# access_log.written / access_log.dropped count it. On both I/O backends.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
[ -x "$RINGMESH_BIN/ringmeshctl" ] || { not_ok "binary $RINGMESH_BIN/ringmeshctl exists (run make)"; tap_done; exit 1; }
pod a 10.233.1.2
pod b 10.233.1.3
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0 # pods reach VIPs through their route
for p in a b; do check "ringmesh-init in $p" pod_init "$p"; done
pod_app b "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name web
pod_app b "$RM_PY" "$RM_TOOLS/grpcapp.py" server 50051 --name g
for port in 8080 50051; do wait_port b $port; done

WEB=10.96.0.10    # -> b:8080
EMPTY=10.96.0.12  # no endpoints: 503 UH
ROUTED=10.96.0.13 # an HTTPRoute for /only: anything else 404 NR
GRPC=10.96.0.14   # appProtocol grpc -> b:50051
source "$RINGMESH_ROOT/tests/lib/http.sh"
CFG=$RM_TMP/mesh.yaml
{
    service web $WEB
    service routed $ROUTED
    service grpc $GRPC port=50051 target=50051 proto=grpc
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: default}\n'
    printf 'spec:\n  clusterIP: %s\n  ports: [{name: http, port: 80, targetPort: 8080, appProtocol: http}]\n' $EMPTY
    cat <<EOF
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: routed, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: routed, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /only}}]
    backendRefs: [{name: routed, port: 80}]
EOF
} >"$CFG"
chmod 644 "$CFG"
OUT=$RM_TMP/out
mkdir -m 777 "$OUT"
LOGS=$RM_TMP/alog
mkdir -m 777 "$LOGS"
head -c 1000 /dev/zero >"$OUT/body1000"
chmod 644 "$OUT/body1000"

# mTLS credentials: one root, workloads a and b
C=$RM_TMP/certs
mesh_certs a b

# traffic: the requests of a round, 12 from a (8 of them reach b)
traffic() {
    in_pod a curl -sS --max-time 10 --http1.1 -o /dev/null -o /dev/null -o /dev/null \
        "http://$WEB/ok/[1-3]" 2>>"$OUT/curl.err"
    # (one connection each: curl 7.88's --http2-prior-knowledge fails on a reused one)
    for n in 1 2; do
        in_pod a curl -sS --max-time 5 --http2-prior-knowledge -o /dev/null \
            "http://$WEB/status/404?n=$n" 2>>"$OUT/curl.err"
    done
    in_pod a curl -sS --max-time 5 --http1.1 -o /dev/null http://$WEB/status/503 2>>"$OUT/curl.err"
    in_pod a curl -sS --max-time 5 --http1.1 -o /dev/null --data-binary @"$OUT/body1000" \
        -H 'user-agent: poster' http://$WEB/echo 2>>"$OUT/curl.err"
    in_pod a curl -sS --max-time 10 --http1.1 -o /dev/null -o /dev/null "http://$EMPTY/uh/[1-2]" \
        2>>"$OUT/curl.err"
    in_pod a curl -sS --max-time 5 --http1.1 -o /dev/null http://$ROUTED/nope 2>>"$OUT/curl.err"
    # hostile, raw: quotes and a backslash in the path (the HTTP/1.1 parser takes nothing
    # else unusual in a target), a tab, quotes, a backslash, invalid UTF-8 in user-agent
    in_pod a "$RM_PY" - $WEB <<'EOF'
import socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=5)
s.sendall(b'GET /h"q\\x\'{}|^?a="b" HTTP/1.1\r\nHost: web\r\n'
          b'User-Agent: ev\til "agent" \\ \xc3\x28 \xff\r\nx-request-id: hostile-1\r\n'
          b'Connection: close\r\n\r\n')
while s.recv(65536):
    pass
# a control byte in the target: refused by the parser (400 DPE), logged all the same
s = socket.create_connection((sys.argv[1], 80), timeout=5)
s.sendall(b'GET /ctl\x01x HTTP/1.1\r\nHost: web\r\n\r\n')
while s.recv(65536):
    pass
EOF
}
# hostile LOG: "ok" when the hostile request's line parses back to what was sent
hostile() {
    "$RM_PY" - "$1" <<'EOF'
import json, sys
want = ('/h"q\\x\'{}|^?a="b"', 'ev\til "agent" \\ \ufffd( \ufffd', 200)
for l in open(sys.argv[1], "rb"):
    r = json.loads(l)
    if r["x_request_id"] == "hostile-1":
        got = (r["path"], r["user_agent"], r["response_code"])
        print("ok" if got == want else "got %r" % (got,))
EOF
}

# summary LOG: one line per request, "method path code flags protocol direction", sorted,
# then "bad N" (lines that are not JSON objects); fields of interest checked in python
summary() {
    "$RM_PY" - "$1" <<'EOF'
import json, sys
bad, out = 0, []
for l in open(sys.argv[1], "rb").read().split(b"\n")[:-1]:
    try:
        r = json.loads(l)
        assert isinstance(r, dict)
    except Exception:
        bad += 1
        continue
    if r["x_request_id"] == "hostile-1":  # its path holds "|": checked by hostile()
        continue
    out.append("%s %s %s %s %s %s" % (r["method"], r["path"].split("?")[0], r["response_code"],
                                      r["response_flags"], r["protocol"], r["direction"]))
print("\n".join(sorted(out)))
print("bad", bad)
EOF
}
# fields LOG EXPR: for every line, python EXPR over r (the parsed line); prints the lines
# for which it is false, "ok" when it holds for all
fields() {
    "$RM_PY" - "$1" "$2" <<'EOF'
import json, re, sys
n = bad = 0
for l in open(sys.argv[1], "rb").read().split(b"\n")[:-1]:
    r = json.loads(l)
    n += 1
    if not eval(sys.argv[2], {"re": re, "r": r}):
        bad += 1
        print(l.decode("utf-8", "replace")[:400])
if not n:
    print("no lines")
elif not bad:
    print("ok")
EOF
}
# lines LOG: the number of lines in LOG
lines() { wc -l <"$1" 2>/dev/null || echo 0; }
# logged POD N: the pod's sidecar has written N lines
logged() { [ "$(sidecar_stat "$1" access_log.written)" -ge "$2" ] 2>/dev/null; }

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    rm -f "$LOGS"/*.log
    # ---- plaintext, every request logged
    sidecar_up a "$io" --config "$CFG" --pod-ip 10.233.1.2 --access-log "$LOGS/a.log" || continue
    sidecar_up b "$io" --config "$CFG" --pod-ip 10.233.1.3 --access-log "$LOGS/b.log" ||
        { sidecar_down a; continue; }
    traffic
    wait_until 3 logged a 12
    wait_until 3 logged b 8
    got=$(summary "$LOGS/a.log")
    check_eq "$io: a: 12 lines, each a JSON object, the right method, path, status, flags" \
        "$(echo "$got" | tr '\n' '|')" \
        "- - 400 DPE HTTP/1.1 outbound|GET /nope 404 NR HTTP/1.1 outbound|GET /ok/1 200 - HTTP/1.1 outbound|GET /ok/2 200 - HTTP/1.1 outbound|GET /ok/3 200 - HTTP/1.1 outbound|GET /status/404 404 - HTTP/2 outbound|GET /status/404 404 - HTTP/2 outbound|GET /status/503 503 - HTTP/1.1 outbound|GET /uh/1 503 UH HTTP/1.1 outbound|GET /uh/2 503 UH HTTP/1.1 outbound|POST /echo 200 - HTTP/1.1 outbound|bad 0|"
    check_eq "$io: b: 8 lines, inbound over HTTP/2, each a JSON object" \
        "$(summary "$LOGS/b.log" | cut -d' ' -f1-3,5- | tr '\n' '|')" \
        "GET /ok/1 200 HTTP/2 inbound|GET /ok/2 200 HTTP/2 inbound|GET /ok/3 200 HTTP/2 inbound|GET /status/404 404 HTTP/2 inbound|GET /status/404 404 HTTP/2 inbound|GET /status/503 503 HTTP/2 inbound|POST /echo 200 HTTP/2 inbound|bad 0|"
    check_eq "$io: a: the hostile path and user-agent parse back as sent (bad UTF-8 as U+FFFD)" \
        "$(hostile "$LOGS/a.log")" ok
    check_eq "$io: b: the same in b's line" "$(hostile "$LOGS/b.log")" ok
    check_eq "$io: a: the tab, quotes and backslash escaped in the raw line" \
        "$(grep -cF '"user_agent":"ev\til \"agent\" \\ \ufffd( \ufffd"' "$LOGS/a.log")" 1
    check_eq "$io: a: start_time RFC 3339 UTC with ms, duration, x_request_id, user_agent" \
        "$(fields "$LOGS/a.log" "re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z', r['start_time']) and isinstance(r['duration'], int) and r['duration'] < 5000 and (r['x_request_id'] == 'hostile-1' or re.fullmatch('[0-9a-f-]{36}', r['x_request_id']) or r['response_flags'] == 'DPE') and (r['user_agent'].startswith(('curl/', 'poster', 'ev')) or r['response_flags'] == 'DPE')")" ok
    check_eq "$io: a: clusters and hosts: outbound|80||FQDN and b:8080; '-' for UH, NR and DPE" \
        "$(fields "$LOGS/a.log" "(r['upstream_host'], r['upstream_cluster']) == (('-', 'outbound|80||empty.default.svc.cluster.local') if r['response_flags'] == 'UH' else ('-', '-') if r['response_flags'] in ('NR', 'DPE') else ('10.233.1.3:8080', 'outbound|80||' + ('web' if r['authority'] == 'web' or r['authority'].startswith('10.96.0.10') else 'routed') + '.default.svc.cluster.local')) and r['downstream_remote_address'].startswith('10.233.1.2:')")" ok
    check_eq "$io: b: inbound|8080||, the app at b:8080, from a" \
        "$(fields "$LOGS/b.log" "r['upstream_cluster'] == 'inbound|8080||' and r['upstream_host'] == '10.233.1.3:8080' and r['downstream_remote_address'].startswith('10.233.1.2:')")" ok
    check_eq "$io: bytes: the POST's 1000 up and 1000 back, 0 for GETs to the app's 404" \
        "$(fields "$LOGS/a.log" "r['method'] != 'POST' or (r['bytes_received'], r['bytes_sent']) == (1000, 1000)") $(fields "$LOGS/b.log" "r['method'] != 'POST' or (r['bytes_received'], r['bytes_sent']) == (1000, 1000)")" "ok ok"
    check_eq "$io: no mTLS: principals '-'" \
        "$(fields "$LOGS/a.log" "r['source_principal'] == '-' == r['destination_principal']")" ok
    # gRPC: grpc_status from the trailers (0, and 5 for a NOT_FOUND), on gRPC lines only
    check_q "$io: a gRPC unary call" in_pod a "$RM_PY" "$RM_TOOLS/grpcapp.py" client $GRPC:50051 unary
    check_q "$io: a gRPC call failing NOT_FOUND" in_pod a "$RM_PY" "$RM_TOOLS/grpcapp.py" client \
        $GRPC:50051 fail NOT_FOUND
    wait_until 3 logged a 14
    check_eq "$io: grpc_status 0 and 5 on the gRPC lines, absent on the others" \
        "$(fields "$LOGS/a.log" "r.get('grpc_status', 'none') == {'/test.Echo/Unary': 0, '/test.Echo/Fail': 5}.get(r['path'], 'none') and (r['path'] != '/test.Echo/Fail' or r['response_code'] == 200)")" ok
    check_stat a access_log.written eq 14
    check_stat a access_log.dropped eq 0
    alive a b
    sidecars_down

    # ---- mTLS; a logs only the failures
    rm -f "$LOGS"/*.log
    sidecar_up b "$io" --config "$CFG" --pod-ip 10.233.1.3 --cert-dir "$C/b" \
        --access-log "$LOGS/b.log" || continue
    sidecar_up a "$io" --config "$CFG" --pod-ip 10.233.1.2 --cert-dir "$C/a" \
        --access-log "$LOGS/a.log" --access-log-errors-only || { sidecar_down b; continue; }
    traffic
    wait_until 3 logged b 8
    wait_until 3 logged a 7
    check_eq "$io: errors-only: a logs the 7 failures (404 x 2, 503, UH x 2, NR, 400 DPE) and nothing else" \
        "$(summary "$LOGS/a.log" | cut -d' ' -f2-4 | tr '\n' '|')" \
        "- 400 DPE|/nope 404 NR|/status/404 404 -|/status/404 404 -|/status/503 503 -|/uh/1 503 UH|/uh/2 503 UH|0|"
    SA=spiffe://cluster.local/ns/default/sa/a SB=spiffe://cluster.local/ns/default/sa/b
    check_eq "$io: mTLS: a's lines to b name a as source and b as destination, '-' without a peer" \
        "$(fields "$LOGS/a.log" "(r['source_principal'], r['destination_principal']) == (('$SA', '$SB') if r['upstream_host'] != '-' else ('-', '-'))")" ok
    check_eq "$io: mTLS: b's inbound lines name a as source and b as destination" \
        "$(fields "$LOGS/b.log" "(r['source_principal'], r['destination_principal']) == ('$SA', '$SB')")" ok
    check_stat b access_log.written eq 8
    alive a b
    sidecars_down

    # ---- sampling: 400 requests, half logged; written at exit
    rm -f "$LOGS"/*.log
    sidecar_up b "$io" --config "$CFG" --pod-ip 10.233.1.3 || continue
    sidecar_up a "$io" --config "$CFG" --pod-ip 10.233.1.2 --access-log "$LOGS/a.log" \
        --access-log-sample 0.5 || { sidecar_down b; continue; }
    out=$(in_pod a curl -sS --max-time 60 --http1.1 -o /dev/null -w '%{http_code}\n' \
        "http://$WEB/s/[1-400]" 2>&1 | sort | uniq -c | sed 's/^ *//')
    check_eq "$io: 400 requests answered" "$out" "400 200"
    written=$(sidecar_stat a access_log.written)
    sidecar_down a
    n=$(lines "$LOGS/a.log")
    if [ "$n" -ge 100 ] && [ "$n" -le 300 ]; then
        ok "$io: --access-log-sample 0.5: $n of 400 logged"
    else
        not_ok "$io: --access-log-sample 0.5: between 100 and 300 of 400 logged" "got $n"
    fi
    check_le "$io: every line counted before exit is in the file ($written <= $n)" "$written" "$n"
    check_eq "$io: sampled lines are JSON" "$(summary "$LOGS/a.log" | tail -n 1)" "bad 0"
    sidecars_down
done
tap_done
