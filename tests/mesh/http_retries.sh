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
source "$RINGMESH_ROOT/tests/lib/http.sh" # fetch, expect, service, check_delta, alive, codes
CFG=$RM_TMP/mesh.yaml
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

# tries KEY: how many requests with KEY the app saw (asked directly in s1, past the mesh)
tries() { in_pod_root s1 curl -s --max-time 5 "http://127.0.0.1:8080/count/$1"; }

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
