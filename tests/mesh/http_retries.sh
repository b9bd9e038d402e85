#!/usr/bin/env bash
# Retries through two sidecars, per DestinationPolicy retries (client pod a, server pod s1):
# retryOn 5xx turns one 503 into a 200 and gives up after attempts + 1 tries (the app's
# counter proves how many), POST is not retried unless retryNonIdempotent, an endpoint whose
# app is down (its sidecar answers 503) is retried onto the good one under gateway-error, a
# refused endpoint (no sidecar) under the default policy, an app's TCP reset under retryOn
# reset, perTryTimeout, and the retry budget (20% + 10/s) caps the extra tries of a failing
# burst. On both I/O backends. Written against the HTTP engine while it is built.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
pod a 10.233.1.2
pod s1 10.233.1.3
pod s2 10.233.1.4    # sidecar, no app: its sidecar's connects to the app are refused
host dead 10.233.1.9 # no sidecar, nothing listening: connects to it are refused
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0 # pods reach VIPs through their route
for p in a s1 s2; do check "ringmesh-init in $p" pod_init "$p"; done
pod_app s1 "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name s1; log_s1=$RM_APP_LOG
wait_port s1 8080

FLAKY=10.96.0.20 POST=10.96.0.21 HALF=10.96.0.22 DEADMIX=10.96.0.23
BUDGET=10.96.0.24 RESETTY=10.96.0.25 PERTRY=10.96.0.26
CFG=$RM_TMP/mesh.yaml
service() { # NAME VIP ENDPOINT_IP...
    local n=$1 vip=$2 ip; shift 2
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\n' "$n"
    printf 'spec:\n  clusterIP: %s\n  ports: [{name: http, port: 80, targetPort: 8080, appProtocol: http}]\n' "$vip"
    printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n'
    printf 'metadata: {name: %s-1, namespace: default, labels: {kubernetes.io/service-name: %s}}\n' "$n" "$n"
    printf 'addressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints:\n'
    for ip in "$@"; do printf -- '- {addresses: [%s]}\n' "$ip"; done
}
policy() { # SERVICE RETRIES_YAML
    printf -- '---\napiVersion: ringmesh.io/v1alpha1\nkind: DestinationPolicy\n'
    printf 'metadata: {name: %s, namespace: default}\n' "$1"
    printf 'spec:\n  targetRef: {group: "", kind: Service, name: %s}\n  retries: %s\n' "$1" "$2"
}
{
    service flaky $FLAKY 10.233.1.3
    policy flaky '{attempts: 2, retryOn: [5xx]}'
    service post $POST 10.233.1.3
    policy post '{attempts: 2, retryOn: [5xx], retryNonIdempotent: true}'
    service half $HALF 10.233.1.3 10.233.1.4
    policy half '{attempts: 2, retryOn: [gateway-error]}'
    service deadmix $DEADMIX 10.233.1.3 10.233.1.9 # no policy: connect-failure, 2 retries
    service budget $BUDGET 10.233.1.3
    policy budget '{attempts: 3, retryOn: [5xx], budget: {percent: 20, minRetriesPerSecond: 10}}'
    service resetty $RESETTY 10.233.1.3
    policy resetty '{attempts: 2, retryOn: [reset]}'
    service pertry $PERTRY 10.233.1.3
    policy pertry '{attempts: 2, perTryTimeout: 300ms, retryOn: [5xx]}'
} >"$CFG"
chmod 644 "$CFG"
OUT=$RM_TMP/out
mkdir -m 777 "$OUT"

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
# tries KEY: how many requests with KEY the app saw (asked directly in s1, past the mesh)
tries() { in_pod_root s1 curl -s --max-time 5 "http://127.0.0.1:8080/count/$1"; }
# codes POD CURL_ARGS...: "status x-app" of sequential requests on one connection, counted
codes() {
    local p=$1; shift
    in_pod "$p" curl -sS --max-time 30 -o /dev/null -w '%{http_code} %header{x-app}\n' "$@" 2>&1 |
        sort | uniq -c | sed 's/^ *//' | cut -c1-120
}

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    # one worker: one retry budget per destination, as the budget check assumes
    sidecar_up a "$io" --config "$CFG" --pod-ip 10.233.1.2 --concurrency 1 || continue
    sidecar_up s1 "$io" --config "$CFG" --pod-ip 10.233.1.3 || { sidecar_down a; continue; }
    sidecar_up s2 "$io" --config "$CFG" --pod-ip 10.233.1.4 || { sidecar_down a; sidecar_down s1; continue; }

    # retryOn 5xx, attempts 2
    rt_0=$(sidecar_stat a outbound.rq_retry)
    fetch a http://$FLAKY/fail/1/k1-$io
    expect "retryOn 5xx: a 503 then a 200: the client gets the 200" code=200 hdr:x-app=s1
    check_eq "$io: retryOn 5xx: the app saw 2 tries" "$(tries k1-$io)" 2
    check_delta a outbound.rq_retry "$rt_0" eq 1
    urx_0=$(sidecar_stat a outbound.rq_flag_URX)
    fetch a http://$FLAKY/fail/5/k2-$io
    expect "retryOn 5xx, attempts 2: five 503s: the client gets a 503" code=503
    check_eq "$io: attempts 2: the app saw exactly 3 tries" "$(tries k2-$io)" 3
    check_delta a outbound.rq_retry "$rt_0" eq 3
    check_delta a outbound.rq_flag_URX "$urx_0" eq 1
    fetch a -X POST -d x=1 http://$FLAKY/fail/1/k3-$io
    expect "POST is not retried: the client gets the 503" code=503 hdr:x-app=s1
    check_eq "$io: POST: the app saw 1 try" "$(tries k3-$io)" 1
    fetch a -X POST -d x=1 http://$POST/fail/1/k4-$io
    expect "POST with retryNonIdempotent is retried: 200" code=200 hdr:x-app=s1
    check_eq "$io: POST with retryNonIdempotent: the app saw 2 tries" "$(tries k4-$io)" 2

    # endpoints that are down: all requests still succeed on s1
    rt_0=$(sidecar_stat a outbound.rq_retry)
    out=$(codes a "http://$HALF/half/[1-10]")
    check_eq "$io: s2's app is down (its sidecar answers): 10 of 10 succeed on s1 (gateway-error)" \
        "$(echo $out)" "10 200 s1"
    check_delta a outbound.rq_retry "$rt_0" ge 1
    rt_0=$(sidecar_stat a outbound.rq_retry)
    out=$(codes a "http://$DEADMIX/dead/[1-10]")
    check_eq "$io: a refused endpoint: 10 of 10 succeed on s1 (default policy)" "$(echo $out)" "10 200 s1"
    check_delta a outbound.rq_retry "$rt_0" ge 1

    # retryOn reset: the app resets the connection once
    fetch a http://$RESETTY/reset/1/r1-$io
    expect "retryOn reset: a reset then a 200: the client gets the 200" code=200 hdr:x-app=s1
    check_eq "$io: retryOn reset: the app saw 2 tries" "$(tries r1-$io)" 2
    fetch a http://$RESETTY/reset
    expect "retryOn reset: resets every time: 503 with a reset flag" code=503 \
        'hre:x-ringmesh-flags=^(UC|UR|URX)$'

    # perTryTimeout 300ms, attempts 2: three tries of 300 ms, then 504 UT
    n0=$(grep -c '^req GET /delay/1000 ' "$log_s1")
    fetch a http://$PERTRY/delay/100
    expect "perTryTimeout 300ms: /delay/100 passes" code=200 hdr:x-app=s1
    fetch a http://$PERTRY/delay/1000
    expect "perTryTimeout 300ms: /delay/1000 gets 504 UT before 2.5 s" code=504 \
        hdr:x-ringmesh-flags=UT 'time<2.5'
    wait_until 2 test "$(grep -c '^req GET /delay/1000 ' "$log_s1")" -ge $((n0 + 3))
    check_eq "$io: perTryTimeout: the app saw 3 tries" $(($(grep -c '^req GET /delay/1000 ' "$log_s1") - n0)) 3

    # the retry budget: 500 requests that always fail, attempts 3 (up to 1500 retries);
    # the budget allows 20% of the requests plus 10/s over its 10 s window (100)
    be_0=$(sidecar_stat a outbound.rq_retry_budget_exhausted)
    t0=$SECONDS
    out=$(RM_CMD_TIMEOUT=40 in_pod a h2load -n 500 -c 10 -m 1 http://$BUDGET/fail/1000000/b-$io 2>&1)
    secs=$((SECONDS - t0))
    if grep -q 'status codes: 0 2xx, 0 3xx, 0 4xx, 500 5xx' <<<"$out"; then
        ok "$io: retry budget: 500 failing requests all end in 5xx"
    else
        not_ok "$io: retry budget: 500 failing requests all end in 5xx" \
            "$(grep -E 'requests:|status codes|error' <<<"$out" | head -n 5)"
    fi
    n=$(tries b-$io)
    max=$((500 + 100 + 10 * (secs > 10 ? secs : 10) + 25))
    check_ge "$io: retry budget: the app saw every request (tries >= 500)" "$n" 500
    check_le "$io: retry budget: tries <= 500 + 20% + 10/s over $secs s + 25 slack = $max" "$n" "$max"
    check_delta a outbound.rq_retry_budget_exhausted "$be_0" ge 1
    alive a s1 s2
    sidecar_down a; sidecar_down s1; sidecar_down s2
done
tap_done
