#!/usr/bin/env bash
# Outlier detection through two sidecars: Service web has two endpoints, good and bad (bad
# answers 503 to everything); with consecutive5xx 3 and baseEjectionTime 2s, bad is ejected
# after its third 503 in a row and gets nothing until the ejection ends (about 2 s, plus up
# to one 1 s interval), then it gets traffic again. On both I/O backends. Written against
# the HTTP engine while it is built.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
pod a 10.233.1.2
pod good 10.233.1.3
pod bad 10.233.1.4
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0 # pods reach VIPs through their route
for p in a good bad; do check "ringmesh-init in $p" pod_init "$p"; done
pod_app good "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name good
pod_app bad "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name bad --fail-all; log_bad=$RM_APP_LOG
wait_port good 8080
wait_port bad 8080

WEB=10.96.0.10
CFG=$RM_TMP/mesh.yaml
cat >"$CFG" <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, targetPort: 8080, appProtocol: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- {addresses: [10.233.1.3]}
- {addresses: [10.233.1.4]}
---
apiVersion: ringmesh.io/v1alpha1
kind: DestinationPolicy
metadata: {name: web, namespace: default}
spec:
  targetRef: {group: "", kind: Service, name: web}
  retries: {attempts: 0}   # every 503 reaches the client, so the test sees each one
  outlierDetection:
    consecutive5xx: 3
    interval: 1s
    baseEjectionTime: 2s
    maxEjectionPercent: 50
EOF
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
# codes POD CURL_ARGS...: "status x-app" of sequential requests on one connection, counted
codes() {
    local p=$1; shift
    in_pod "$p" curl -sS --max-time 10 -o /dev/null -w '%{http_code} %header{x-app}\n' "$@" 2>&1 |
        sort | uniq -c | sed 's/^ *//' | cut -c1-120
}
reqs_bad() { grep -c '^req ' "$log_bad"; }
now_ms() { date +%s%3N; }

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    sidecar_up a "$io" --config "$CFG" --pod-ip 10.233.1.2 --concurrency 1 || continue
    sidecar_up good "$io" --config "$CFG" --pod-ip 10.233.1.3 || { sidecar_down a; continue; }
    sidecar_up bad "$io" --config "$CFG" --pod-ip 10.233.1.4 || { sidecar_down a; sidecar_down good; continue; }

    b0=$(reqs_bad) x0=$(sidecar_stat a outbound.rq_5xx) t0=$(now_ms)
    out=$(codes a "http://$WEB/o/[1-20]")
    check_eq "$io: 20 requests: bad answers 3 (503) and is ejected, good the other 17" \
        "$(echo $out)" "17 200 good 3 503 bad"
    check_eq "$io: the bad app saw exactly consecutive5xx (3) requests" $(($(reqs_bad) - b0)) 3
    check_delta a outbound.rq_5xx "$x0" eq 3

    # one request every 0.1 s: all go to good until the ejection ends, then bad is back.
    # The ejection began during the burst (t0..t1), so from t1 it has most of its 2 s left.
    seen= back= n=0 t1=$(now_ms)
    while [ $(($(now_ms) - t1)) -lt 8000 ]; do
        r=$(in_pod a curl -sS --max-time 2 -o /dev/null -w '%{http_code} %header{x-app}' http://$WEB/poll 2>&1)
        n=$((n + 1))
        if [ "$r" = "503 bad" ]; then back=$(now_ms); break; fi
        [ "$r" = "200 good" ] || seen+="[$r] "
        sleep 0.1
    done
    check_eq "$io: while bad is ejected every request goes to good (of $n)" "${seen:-none}" none
    if [ -n "$back" ] && [ $((back - t1)) -ge 1500 ] && [ $((back - t0)) -le 6000 ]; then
        ok "$io: bad gets traffic again $((back - t1)) ms after the burst (which took $((t1 - t0)) ms)"
    else
        not_ok "$io: bad gets traffic again 1.5..6 s after the burst (2 s ejection, 1 s interval)" \
            "back after: $([ -n "$back" ] && echo "$((back - t1)) ms" || echo "never (polled 8 s)"); $n polls; the burst took $((t1 - t0)) ms"
    fi
    alive a good bad
    sidecar_down a; sidecar_down good; sidecar_down bad
done
tap_done
