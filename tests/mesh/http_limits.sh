#!/usr/bin/env bash
# Limits and attacks through two sidecars (client pod a -> Service VIPs -> server pod b):
# DestinationPolicy connectionPool (maxConnections 1, maxPendingRequests 1, maxRequests 1)
# turns most of 20 concurrent slow requests into 503 UO that never reach the app; an HTTP/2
# rapid reset (1000 streams opened and reset at once, CVE-2023-44487) gets GOAWAY while a
# well-behaved curl on another connection carries on; a request head of 200 fields or with
# a 100 KiB field gets 431 on HTTP/1.1 (and is not forwarded on HTTP/2); the sidecars' RSS
# stays under 64 MiB afterwards. On both I/O backends. Written against the HTTP engine
# while it is built.
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

SLOW=10.96.0.50 # connectionPool limits of 1
WEB=10.96.0.51  # no limits
source "$RINGMESH_ROOT/tests/lib/http.sh" # fetch, expect, service, check_delta, alive, codes
CFG=$RM_TMP/mesh.yaml
{
    service slow $SLOW
    printf -- '---\napiVersion: ringmesh.io/v1alpha1\nkind: DestinationPolicy\n'
    printf 'metadata: {name: slow, namespace: default}\nspec:\n'
    printf '  targetRef: {group: "", kind: Service, name: slow}\n'
    printf '  connectionPool: {maxConnections: 1, maxPendingRequests: 1, maxRequests: 1}\n'
    service web $WEB
} >"$CFG"
chmod 644 "$CFG"
OUT=$RM_TMP/out
mkdir -m 777 "$OUT"

# burst N URL: N curls at once as the app user; "status flags" lines counted ("N 200 -")
burst() {
    in_pod a bash -c 'for ((i = 0; i < $1; i++)); do
            curl -sS --max-time 10 -o /dev/null -w "%{http_code} %header{x-ringmesh-flags}\n" "$2" 2>&1 &
        done; wait' - "$1" "$2" | awk '{ print $1, ($2 == "" ? "-" : $2) }' | sort | uniq -c | sed 's/^ *//'
}
# rapid_reset HOST: one HTTP/2 connection; open and reset 1000 streams in batches of 10;
# prints "streams=N goaway=CODE|none"; exits 0 only if a GOAWAY came
rapid_reset() {
    in_pod a "$RM_PY" - "$1" <<'EOF'
import socket, sys, time
import h2.config, h2.connection, h2.errors, h2.events
s = socket.create_connection((sys.argv[1], 80), timeout=5)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
s.sendall(c.data_to_send())
hdrs = [(":method", "GET"), (":scheme", "http"), (":authority", "web"), (":path", "/delay/1000")]
sent, goaway = 0, None

def feed(data):
    global goaway
    for ev in c.receive_data(data):
        if isinstance(ev, h2.events.ConnectionTerminated):
            goaway = ev.error_code

def read(timeout):
    """Feed what arrives within timeout s; False at EOF or a reset (what came before it,
    a GOAWAY say, is still read: Linux keeps received data readable after an RST)."""
    s.settimeout(timeout)
    try:
        d = s.recv(65536)
    except (socket.timeout, BlockingIOError):
        return True
    except OSError:
        return False
    if d:
        feed(d)
    return bool(d)

open_ = True
try:
    while sent < 1000 and goaway is None and open_:
        for _ in range(10):
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, hdrs, end_stream=True)
            c.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            sent += 1
        s.sendall(c.data_to_send())
        open_ = read(0.001)
except OSError as e:  # the proxy closed first: what it sent before may still be unread
    print("send failed after %d streams: %r" % (sent, e))
end = time.time() + 3
while goaway is None and open_ and time.time() < end:
    open_ = read(0.5)
name = getattr(goaway, "name", goaway)
print("streams=%d goaway=%s" % (sent, "none" if goaway is None else name))
sys.exit(0 if goaway is not None else 1)
EOF
}

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    # one worker: one set of connectionPool counters, as the overflow check assumes
    sidecar_up a "$io" --config "$CFG" --pod-ip 10.233.1.2 --concurrency 1 || continue
    sidecar_up b "$io" --config "$CFG" --pod-ip 10.233.1.3 || { sidecar_down a; continue; }

    # connectionPool: 20 concurrent /delay/500 with room for 1 active + 1 pending
    uo_0=$(sidecar_stat a outbound.rq_flag_UO) d0=$(grep -c '^req GET /delay/500 ' "$log_b")
    out=$(burst 20 http://$SLOW/delay/500)
    n200=$(awk '$2 == 200 && $3 == "-" { print $1 }' <<<"$out")
    nuo=$(awk '$2 == 503 && $3 == "UO" { print $1 }' <<<"$out")
    if [ "${n200:-0}" -ge 1 ] && [ "${nuo:-0}" -ge 10 ] && [ $((n200 + nuo)) = 20 ]; then
        ok "$io: connectionPool of 1: of 20 concurrent requests $n200 got 200, $nuo got 503 UO"
    else
        not_ok "$io: connectionPool of 1: of 20 concurrent requests >= 1 get 200, >= 10 get 503 UO, no other outcome" \
            "got (count status flag): $(echo $out)"
    fi
    check_delta a outbound.rq_flag_UO "$uo_0" eq "${nuo:-0}"
    check_eq "$io: the app saw only the requests that got 200" \
        $(($(grep -c '^req GET /delay/500 ' "$log_b") - d0)) "${n200:-0}"
    fetch a http://$SLOW/delay/10
    expect "after the burst, one request to the limited Service passes" code=200 hdr:x-app=b

    # HTTP/2 rapid reset on one connection while curl uses another
    pod_app a curl -sS --max-time 10 --http2-prior-knowledge -D - -o /dev/null \
        -w 'result %{http_code} %header{x-app}\n' http://$WEB/delay/1500
    good_pid=$RM_APP_PID good_log=$RM_APP_LOG
    sleep 0.3
    r0=$(grep -c '^req GET /delay/1000 ' "$log_b")
    out=$(rapid_reset $WEB 2>&1)
    if [ $? = 0 ]; then ok "$io: rapid reset: GOAWAY ($out)"; else not_ok "$io: rapid reset gets GOAWAY" "$out"; fi
    check_stat a outbound.h2_conn_error ge 1
    # the flood stays on the attacker's connection: a must not pass it on to b, whose own
    # rapid-reset limit would then close the pooled connection other clients' streams share
    check_stat b inbound.h2_conn_error eq 0
    sleep 1 # streams the proxy did forward reach the app by now
    check_le "$io: rapid reset: the app saw at most 200 of the 1000 streams" \
        $(($(grep -c '^req GET /delay/1000 ' "$log_b") - r0)) 200
    wait "$good_pid"
    if [ "$(grep '^result' "$good_log")" = "result 200 b" ]; then
        ok "$io: the well-behaved HTTP/2 client on another connection got its answer"
    else
        not_ok "$io: the well-behaved HTTP/2 client on another connection got its answer" \
            "what it got: $(tr -d '\r' <"$good_log" | tr '\n' '|')"
    fi
    fetch a --http2-prior-knowledge http://$WEB/
    expect "after the attack a new HTTP/2 connection works" code=200 hdr:x-app=b

    # oversized request heads
    hs=(); for ((i = 0; i < 200; i++)); do hs+=(-H "x-field-$i: v"); done
    fetch a --http1.1 "${hs[@]}" http://$WEB/
    expect "HTTP/1.1 request with 200 header fields: 431, not forwarded" code=431 nohdr:x-app
    big=$(head -c 102400 /dev/zero | tr '\0' a)
    fetch a --http1.1 -H "x-big: $big" http://$WEB/
    expect "HTTP/1.1 request with a 100 KiB field: 431, not forwarded" code=431 nohdr:x-app
    fetch a --http2-prior-knowledge -H "x-big: $big" http://$WEB/
    if [ "$CODE" != 200 ] && [ -z "$(hdr x-app)" ]; then
        ok "$io: HTTP/2 request with a 100 KiB field is refused ($CODE: $(head -c 80 "$OUT/e"))"
    else
        not_ok "$io: HTTP/2 request with a 100 KiB field is refused" "status $CODE, x-app '$(hdr x-app)'"
    fi
    fetch a --http1.1 http://$WEB/
    expect "after the oversized heads a normal request works" code=200 hdr:x-app=b

    check_le "$io: sidecar a RSS (KiB) after the attacks" "$(sidecar_rss_kb a)" 65536
    check_le "$io: sidecar b RSS (KiB) after the attacks" "$(sidecar_rss_kb b)" 65536
    alive a b
    sidecars_down
done
tap_done
