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
source "$RINGMESH_ROOT/tests/lib/http.sh" # fetch, expect, service, check_delta, alive, codes
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

reqs_bad() { grep -c '^req ' "$log_bad"; }
now_ms() { date +%s%3N; }

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    sidecar_up a "$io" --config "$CFG" --pod-ip 10.233.1.2 --concurrency 1 || continue
    sidecar_up good "$io" --config "$CFG" --pod-ip 10.233.1.3 || { sidecar_down a; continue; }
    sidecar_up bad "$io" --config "$CFG" --pod-ip 10.233.1.4 || { sidecar_down a; sidecar_down good; continue; }

    b0=$(reqs_bad) x0=$(sidecar_stat a outbound.rq_5xx) t0=$(now_ms)
    out=$(MAXT=10 codes a "http://$WEB/o/[1-20]")
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
