#!/usr/bin/env bash
# ctl_stat.sh - ringmeshctl stat against fixed expositions (tests/tools/promserve.py serves
# tests/integ/stat/X1.prom on the first GET, X2.prom on the second, and so on), so every
# number of the table is known:
#
# sidecar A (ringmesh_*; serves web; a label value with \" \\ \n, comments, a timestamp,
# a NaN, a process-wide series without a Service, the overflow series in A2 only):
#   web 200: 100 -> 190, 503: 0 -> 10; buckets le 5/10/25: 50/90/100 -> 90/165/200, so the
#   deltas are 40/75/100: p50 rank 50 in (5,10]: 5 + 5*10/35 = 6.43; p95 rank 95 in
#   (10,25]: 10 + 15*20/25 = 22.0; p99 rank 99: 10 + 15*24/25 = 24.4
#   (overflow): 0 -> 4 (new in A2)
# sidecar B (istio_*; serves web over gRPC, calls web and db):
#   web destination grpc 0: 10 -> 60, grpc 14: 0 -> 50; web source 5000 -> 9000 (ignored:
#   web has destination series); db source 1000 -> 1100, TCP opened 30 -> 35, closed 20 -> 22,
#   sent 1000 -> 1500 bytes, received +Inf
# At --interval 0.5: web 200 requests, 140 ok (90 + 50): 70.00%, 400.00 rps, MESHED 2;
# db 100 ok: 200.00 rps, MESHED 0 (reporter source), TCP_CONN 13, 1000 B/s sent; (overflow)
# 4: 8.00 rps.
#
# Also: -o wide and -o json, SERVICE and -n filters, an unreachable --sidecar reported by
# name and address while the others still count, a sidecar serving garbage, every
# sidecar down (exit 1), bad flags (exit 2 naming the flag), --watch on a pipe (timestamp
# lines, a new table per interval, SIGINT exits 0), and discovery through ringmesh-xds's
# proxy-status (its new pod_ip; a python3-h2 xDS client stands in for a sidecar).
source "$(dirname "$0")/lib.sh"
PY=${RINGMESH_PYTHON:-$( [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)}
CTL=$RINGMESH_BIN/ringmeshctl
FIX=$RINGMESH_ROOT/tests/integ/stat
SERVE=$RINGMESH_ROOT/tests/tools/promserve.py
integ_ports
A=127.0.0.1:$P5 B=127.0.0.1:$P6 DEAD=127.0.0.1:$P7

run() { out=$("$@" 2>"$IT_TMP/stderr"); rc=$?; err=$(cat "$IT_TMP/stderr"); }
expect_usage() { # NAME PATTERN cmd...: exit 2, stderr matches
    local name=$1 pat=$2; shift 2
    run "$@"
    if [ "$rc" = 2 ] && grep -qE -- "$pat" <<<"$err"; then ok "usage: $name"; else
        not_ok "usage: $name" "exit $rc, want 2 and /$pat/" "$(head -n 2 <<<"$err")"; fi
}
# row NAME: the table line of Service NAME, its fields squeezed to one blank
row() { awk -v s="$1" '$2 == s' <<<"$out" | tr -s ' ' | sed 's/ $//'; }
expect_row() { # WHAT NAME WANT
    local got; got=$(row "$2")
    if [ "$got" = "$3" ]; then ok "$1"; else not_ok "$1" "got  '$got'" "want '$3'"; fi
}

bg promA "$PY" "$SERVE" "$P5" "$FIX/a1.prom" "$FIX/a2.prom"
bg promB "$PY" "$SERVE" "$P6" "$FIX/b1.prom" "$FIX/b2.prom"
# each curl above would be a GET: wait with a bare connect instead
wait_until 5 bash -c "exec 2>/dev/null 3<>/dev/tcp/127.0.0.1/$P5 && exec 3<>/dev/tcp/127.0.0.1/$P6" ||
    not_ok "promserve.py did not start"

# ---- the table
run "$CTL" stat --sidecar "$A,$B" --interval 0.5
check "two sidecars: exit 0, nothing on stderr" test "$rc" = 0 -a -z "$err"
check "the header" eval 'head -n 1 <<<"$out" | tr -s " " | grep -qx "NAMESPACE SERVICE MESHED SUCCESS RPS LATENCY_P50 LATENCY_P95 LATENCY_P99 TCP_CONN"'
expect_row "web: 2 sidecars, 70% (5xx and gRPC 14 fail), 400 rps, p50/95/99 from bucket deltas" \
    web "default web 2 70.00% 400.00 6.43ms 22.0ms 24.4ms -"
expect_row "db: no sidecar of its own (source), 100%, 200 rps, no latency, 13 open" \
    db "data db 0 100.00% 200.00 - - - 13"
expect_row "(overflow): the cardinality cap's series" "(overflow)" "- (overflow) - 100.00% 8.00 - - - -"
check "sorted by namespace, then name; nothing else" \
    eval '[ "$(awk "NR > 1 { print \$2 }" <<<"$out" | tr "\n" " ")" = "(overflow) db web " ]'

run "$CTL" stat --sidecar "$A" --sidecar "$B" --interval 0.5 -o wide
check "-o wide: REPORTER REQUESTS FQDN" eval 'head -n 1 <<<"$out" | grep -q "TCP_CONN *REPORTER *REQUESTS *FQDN$"'
expect_row "-o wide: web counted from its destination sidecars" web \
    "default web 2 70.00% 400.00 6.43ms 22.0ms 24.4ms - destination 200 web.default.svc.cluster.local"
expect_row "-o wide: db counted from its callers (reporter source)" db \
    "data db 0 100.00% 200.00 - - - 13 source 100 db.data.svc.cluster.local"

run "$CTL" stat --sidecar "$A,$B" --interval 0.5 -o json
echo "$out" >"$IT_TMP/stat.json"
jsonq() { "$PY" -c "import json, sys; d = json.load(open('$IT_TMP/stat.json')); print($1)"; }
check "-o json parses" jsonq 'len(d["services"])'
check "-o json: web's numbers" test "$(jsonq '[(s["requests"], s["success_rate"], s["rps"], round(s["latency_ms_p50"], 6), s["latency_ms_p95"], s["latency_ms_p99"], s["meshed"]) for s in d["services"] if s["service"] == "web"]')" \
    = "[(200, 0.7, 400, 6.428571, 22, 24.4, 2)]"
check "-o json: db's TCP (received +Inf -> +Inf: no rate, null)" test "$(jsonq '[(s["tcp_connections"], s["tcp_sent_bytes_per_second"], s["tcp_received_bytes_per_second"], s["reporter"]) for s in d["services"] if s["service"] == "db"]')" \
    = "[(13, 1000, None, 'source')]"
check "-o json: both sidecars scraped" test "$(jsonq '[(s["address"], s["scraped"]) for s in d["sidecars"]]')" \
    = "[('$A', True), ('$B', True)]"

# ---- filters
for f in web web.default web.default.svc.cluster.local; do
    run "$CTL" stat "$f" --sidecar "$A,$B" --interval 0.5
    check "SERVICE $f: web's row only" test "$(awk 'NR > 1 { print $2 }' <<<"$out")" = web
done
run "$CTL" stat web.data --sidecar "$A,$B" --interval 0.5
check "SERVICE web.data: no row, said on stderr" eval '[ "$(wc -l <<<"$out")" = 1 ] && grep -q "no per-Service series matching the filter" <<<"$err"'
run "$CTL" stat -n data --sidecar "$A,$B" --interval 0.5
check "-n data: db only" test "$(awk 'NR > 1 { print $2 }' <<<"$out")" = db

# ---- sidecars that cannot be scraped
run "$CTL" stat --sidecar "$A,$DEAD,$B" --interval 0.5
check "an unreachable sidecar: exit 0" test "$rc" = 0
check "it is named with its address on stderr, once" \
    eval '[ "$(grep -c "sidecar $DEAD ($DEAD): Could.*connect" <<<"$err")" = 1 ]'
expect_row "the others still count" web "default web 2 70.00% 400.00 6.43ms 22.0ms 24.4ms -"
mkdir -p "$IT_TMP/www" && cp "$FIX/b1.prom" "$IT_TMP/www/" && echo '<html>not metrics</html>' >"$IT_TMP/www/x.html"
# a Service name with a newline and an escape character (ESC [2J would clear a terminal)
printf 'ringmesh_requests_total{destination_service_name="ev\\nil\033[2J",destination_service_namespace="default"} 1\n' \
    >"$IT_TMP/www/evil.prom"
bg junk "$PY" -m http.server --bind 127.0.0.1 "$P8" --directory "$IT_TMP/www"
wait_until 5 bash -c "exec 2>/dev/null 3<>/dev/tcp/127.0.0.1/$P8"
run "$CTL" stat --sidecar "http://127.0.0.1:$P8/b1.prom,http://127.0.0.1:$P8/nothere" --interval 0.5
check "a URL with a path; a 404 is named with its URL" \
    eval '[ "$rc" = 0 ] && grep -q "sidecar http://127.0.0.1:$P8/nothere (127.0.0.1:$P8): GET http://127.0.0.1:$P8/nothere: HTTP 404" <<<"$err"'
expect_row "b1 twice: no change, 0 rps, no success rate" db "data db 0 - 0.00 - - - 10"
run "$CTL" stat --sidecar "http://127.0.0.1:$P8/evil.prom" --interval 0.5
check "control characters of label values are printed as ?" \
    eval 'grep -q "^default *ev?il?\[2J " <<<"$out" && ! grep -q $'"'"'\e'"'"' <<<"$out"'
run "$CTL" stat --sidecar "http://127.0.0.1:$P8/x.html" --interval 0.5
check "a sidecar serving something else: named, with the line at fault; exit 1 (none scraped)" \
    eval '[ "$rc" = 1 ] && grep -q "not Prometheus text: line 1: " <<<"$err" && grep -q "no sidecar could be scraped" <<<"$err"'
run "$CTL" stat --sidecar "$DEAD" --interval 0.2
check "every sidecar down: exit 1" test "$rc" = 1

# ---- usage
expect_usage "unknown flag" "unknown flag --bogus" "$CTL" stat --bogus
expect_usage "-o yaml" '-o: want wide or json, got "yaml"' "$CTL" stat -o yaml
expect_usage "--interval 0" '--interval: want seconds, 0.1..3600, got "0"' "$CTL" stat --interval 0
expect_usage "--interval abc" '--interval: .*got "abc"' "$CTL" stat --interval abc
expect_usage "--interval without a value" "--interval needs a value" "$CTL" stat --interval
expect_usage "--sidecar without a port" '--sidecar "localhost": want HOST:PORT' "$CTL" stat --sidecar localhost
expect_usage "--sidecar port 0" '--sidecar "1.2.3.4:0": port "0": want 1..65535' "$CTL" stat --sidecar 1.2.3.4:0
expect_usage "--sidecar https" 'https is not supported' "$CTL" stat --sidecar https://a:1
expect_usage "-n not a DNS label" '-n "Bad_NS"' "$CTL" stat -n Bad_NS
expect_usage "two SERVICEs" 'unexpected argument "b"' "$CTL" stat a b
expect_usage "--port with --sidecar" '--port is for sidecars found through the control plane' \
    "$CTL" stat --sidecar "$A" --port 9
run "$CTL" stat --help
check "--help: exit 0, the columns and flags" eval '[ "$rc" = 0 ] && grep -q LATENCY_P99 <<<"$out" && grep -q -- --sidecar <<<"$out"'
run "$CTL" --help
check "ringmeshctl --help lists stat" eval 'grep -q "^  stat " <<<"$out"'
run "$CTL" stat --server "http://$DEAD"
check "an unreachable control plane: exit 1 naming its URL" \
    eval '[ "$rc" = 1 ] && grep -q "http://$DEAD/api/v1/proxy-status: Could" <<<"$err"'

# ---- --watch on a pipe: a "# TIME" line before each table; SIGINT ends it with 0
bg grow "$PY" "$SERVE" "$P9" --grow 10
wait_until 5 bash -c "exec 2>/dev/null 3<>/dev/tcp/127.0.0.1/$P9"
"$CTL" stat --sidecar "127.0.0.1:$P9" --interval 0.3 --watch >"$IT_TMP/watch.out" 2>&1 &
wpid=$!
wait_until 5 bash -c "[ \$(grep -c '^default ' '$IT_TMP/watch.out') -ge 3 ]"
kill -INT "$wpid"; wait "$wpid"; wrc=$?
out=$(cat "$IT_TMP/watch.out")
check "--watch: SIGINT exits 0" test "$wrc" = 0
check "--watch: tables after timestamp lines, no ANSI on a pipe" \
    eval '[ "$(grep -c "^# 20[0-9-]*T[0-9:]*Z$" <<<"$out")" -ge 3 ] && ! grep -q $'"'"'\e'"'"' <<<"$out"'
# 10 per 0.3 s; a round woken late on a busy machine divides by the real gap instead
check "--watch: 10 requests per 0.3 s: 33.33 rps (or a little less when a round was late)" \
    eval 'grep -q "^default .* 33.33 " <<<"$out" && [ -z "$(awk "\$1 == \"default\" && (\$5 > 33.34 || \$5 < 25)" <<<"$out")" ]'

# ---- discovery: proxy-status lists a sidecar with its pod IP; --port is its stats port
if "$PY" -c 'import h2' 2>/dev/null; then
    mkdir -p "$IT_TMP/cfg"
    bg xds "$RINGMESH_BIN/ringmesh-xds" --config-dir "$IT_TMP/cfg" --ca-dir "$IT_TMP/ca" \
        --xds-port "$P0" --xds-tls-port "$P1" --api-port "$P2"
    wait_until 5 bash -c "curl -sf -o /dev/null http://127.0.0.1:$P2/ready"
    bg xc1 "$PY" "$RINGMESH_ROOT/tests/tools/xdsclient.py" --port "$P0" --pod web-a \
        --pod-ip 127.0.0.1 --auto-ack
    bg xc2 "$PY" "$RINGMESH_ROOT/tests/tools/xdsclient.py" --port "$P0" --pod web-b \
        --pod-ip 127.0.0.2 --auto-ack
    two() { [ "$(curl -s "http://127.0.0.1:$P2/api/v1/proxy-status" | grep -o '"pod_ip"' | wc -l)" = 2 ]; }
    wait_until 5 two
    ps=$(curl -s "http://127.0.0.1:$P2/api/v1/proxy-status")
    check "proxy-status: each proxy's pod_ip" \
        eval 'grep -q "\"pod\":\"web-a\",\"namespace\":\"default\",\"pod_ip\":\"127.0.0.1\"" <<<"$ps"'
    run "$CTL" stat --server "http://127.0.0.1:$P2" --port "$P5" --interval 0.5 -o wide
    check "through the control plane: web-a scraped on 127.0.0.1:$P5, web-b (nothing there) named" \
        eval '[ "$rc" = 0 ] && grep -q "sidecar default/web-b (127.0.0.2:$P5): Could" <<<"$err"'
    expect_row "through the control plane: A's numbers (web from one sidecar)" web \
        "default web 1 90.00% 200.00 6.43ms 22.0ms 24.4ms - destination 100 web.default.svc.cluster.local"
    RINGMESH_XDS_API=http://127.0.0.1:$P2 run "$CTL" stat --port "$P5" --interval 0.5 web
    check "\$RINGMESH_XDS_API names the control plane" test "$(row web | cut -d' ' -f1-5)" = "default web 1 90.00% 200.00"
else
    skip "python3-h2 is not installed: no xDS client for the discovery checks"
fi
tap_done
