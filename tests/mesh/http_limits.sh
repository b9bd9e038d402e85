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
CFG=$RM_TMP/mesh.yaml
service() { # NAME VIP
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\n' "$1"
    printf 'spec:\n  clusterIP: %s\n  ports: [{name: http, port: 80, targetPort: 8080, appProtocol: http}]\n' "$2"
    printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n'
    printf 'metadata: {name: %s-1, namespace: default, labels: {kubernetes.io/service-name: %s}}\n' "$1" "$1"
    printf 'addressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints: [{addresses: [10.233.1.3]}]\n'
}
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
# fetch POD CURL_ARGS...: one request by curl as the app user; CODE = the status (000: none),
# TIME = seconds it took; the response head(s) in $OUT/h, the body in $OUT/b, curl's
# complaint in $OUT/e.
fetch() {
    local p=$1 out; shift
    rm -f "$OUT/h" "$OUT/b" "$OUT/e"
    out=$(in_pod "$p" curl -sS --max-time "${MAXT:-5}" -D "$OUT/h" -o "$OUT/b" \
        -w '%{http_code} %{time_total}' "$@" 2>"$OUT/e")
    CODE=${out% *} TIME=${out#* }
}
# hdr NAME: the field's value in the last response head of the last fetch
hdr() {
    tr -d '\r' <"$OUT/h" 2>/dev/null | awk -v k="${1,,}" '
        /^HTTP\// { v = ""; next }
        { i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == k) { v = substr($0, i + 1); sub(/^ +/, "", v) } }
        END { print v }'
}
# expect NAME COND...: one TAP check on the last fetch. COND is code=N, hdr:NAME=VALUE,
# hre:NAME=REGEX, nohdr:NAME, body=TEXT (trailing newlines ignored), sha=HEX (the body's
# sha256), head=REGEX (on the raw heads, 1xx included), json:KEY=VALUE, jre:KEY=REGEX or
# nojson:KEY (a field of a JSON body), time<SECS. The failure detail shows what differed, the status, the time, curl's
# error, the head and the body.
expect() {
    local name=$1 c k v got why=; shift
    for c in "$@"; do
        case $c in
        code=*) [ "$CODE" = "${c#code=}" ] || why+="status $CODE, want ${c#code=}; " ;;
        hdr:*) k=${c#hdr:} k=${k%%=*} v=${c#hdr:*=} got=$(hdr "$k")
            [ "$got" = "$v" ] || why+="$k: '$got', want '$v'; " ;;
        hre:*) k=${c#hre:} k=${k%%=*} v=${c#hre:*=} got=$(hdr "$k")
            [[ "$got" =~ $v ]] || why+="$k: '$got', want /$v/; " ;;
        nohdr:*) got=$(hdr "${c#nohdr:}"); [ -z "$got" ] || why+="${c#nohdr:}: '$got', want none; " ;;
        body=*) got=$(cat "$OUT/b" 2>/dev/null)
            [ "$got" = "${c#body=}" ] || why+="body differs, want '${c#body=}'; " ;;
        sha=*) got=$(sha256sum <"$OUT/b" 2>/dev/null | cut -c1-64)
            [ "$got" = "${c#sha=}" ] ||
                why+="body of $(stat -c %s "$OUT/b" 2>/dev/null || echo no) bytes has sha256 $got; " ;;
        head=*) grep -Eq "${c#head=}" "$OUT/h" 2>/dev/null || why+="no head line /${c#head=}/; " ;;
        nojson:*) got=$(jq -r --arg k "${c#nojson:}" '.[$k] // empty' "$OUT/b" 2>/dev/null)
            [ -z "$got" ] || why+="request field ${c#nojson:}: '$got', want none; " ;;
        time\<*) awk -v t="$TIME" -v m="${c#time<}" 'BEGIN { exit !(t + 0 < m + 0) }' ||
            why+="took ${TIME}s, want < ${c#time<}s; " ;;
        json:* | jre:*) k=${c#*:} k=${k%%=*} v=${c#*:*=}
            got=$(jq -r --arg k "$k" '.[$k] // empty' "$OUT/b" 2>/dev/null)
            if [[ $c == json:* ]]; then [ "$got" = "$v" ]; else [[ "$got" =~ $v ]]; fi ||
                why+="request field $k: '$got', want '$v'; " ;;
        esac
    done
    if [ -z "$why" ]; then ok "${RM_LABEL:+$RM_LABEL: }$name"; return 0; fi
    not_ok "${RM_LABEL:+$RM_LABEL: }$name" "$why" "status $CODE in ${TIME}s; curl: $(head -c 300 "$OUT/e" 2>/dev/null)" \
        "head: $(tr -d '\r' <"$OUT/h" 2>/dev/null | tr '\n' '|')" \
        "body: $(head -c 300 "$OUT/b" 2>/dev/null | tr -c '[:print:]' '.')"
    return 1
}
# check_delta POD KEY BEFORE OP N: check_stat on the counter's growth since BEFORE
check_delta() {
    local pod=$1 key=$2 before=$3 op=$4 want=$5 got= now i
    for ((i = 0; i <= 30; i++)); do
        now=$(sidecar_stat "$pod" "$key")
        if _num "$now" && _num "$before"; then
            got=$((now - before))
            case $op in
            eq) [ "$got" -eq "$want" ] && break ;;
            ge) [ "$got" -ge "$want" ] && break ;;
            le) [ "$got" -le "$want" ] && break ;;
            esac
        else
            got="(counter was '$before', now '$now')"
        fi
        sleep 0.1
    done
    "check_$op" "${RM_LABEL:+$RM_LABEL: }$pod $key grew by $op $want" "$got" "$want"
}
# alive POD...: one check per pod that its sidecar still runs (a crash otherwise only shows
# as the failures after it); a dead one's exit status is reaped and shown
alive() {
    local p pid st
    for p; do
        pid=$(sidecar_pid "$p")
        if [ -n "$pid" ] && [ -e "/proc/$pid" ] && ! grep -q '^State:.*zombie' "/proc/$pid/status"; then
            ok "${RM_LABEL:+$RM_LABEL: }sidecar in $p still runs"
        else
            wait "$pid" 2>/dev/null; st=$?
            not_ok "${RM_LABEL:+$RM_LABEL: }sidecar in $p still runs" \
                "it exited with status $st$( ((st > 128)) && echo " (signal $((st - 128)))")"
        fi
    done
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
