#!/usr/bin/env bash
# HTTPRoute routing through two sidecars (client pod a -> Service web -> pods v1 / v2): a
# header match (x-canary: true -> v2), path prefixes (on segment boundaries), Exact and
# RegularExpression paths, query parameter and method matches, a 90/10 weighted split over
# 1000 requests, RequestHeaderModifier and ResponseHeaderModifier, URLRewrite of a prefix,
# RequestRedirect, RequestMirror, no matching route -> 404 NR, timeouts.request (504 UT),
# and balancing over two endpoints of Services without routes: round robin (HTTP/1.1 and
# HTTP/2), RingHash on a header and Maglev on a cookie (one key, one endpoint). On both I/O
# backends. Written against the HTTP engine while it is built.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
pod a 10.233.1.2
pod v1 10.233.1.3
pod v2 10.233.1.4
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0 # pods reach VIPs through their route
for p in a v1 v2; do check "ringmesh-init in $p" pod_init "$p"; done
pod_app v1 "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name v1; log_v1=$RM_APP_LOG
pod_app v2 "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name v2; log_v2=$RM_APP_LOG
wait_port v1 8080
wait_port v2 8080

WEB=10.96.0.10 # the routed Service (its own endpoint: v1)
RR=10.96.0.13  # no routes: round robin over v1 and v2
RING=10.96.0.14   # RingHash on header x-user over v1 and v2
MAGLEV=10.96.0.15 # Maglev on cookie session over v1 and v2
source "$RINGMESH_ROOT/tests/lib/http.sh" # fetch, expect, service, check_delta, alive, codes
CFG=$RM_TMP/mesh.yaml
{
    service web $WEB 10.233.1.3
    service web-v1 10.96.0.11 10.233.1.3
    service web-v2 10.96.0.12 10.233.1.4
    service rr $RR 10.233.1.3 10.233.1.4
    service ring $RING 10.233.1.3 10.233.1.4
    service maglev $MAGLEV 10.233.1.3 10.233.1.4
    cat <<'EOF'
---
apiVersion: ringmesh.io/v1alpha1
kind: DestinationPolicy
metadata: {name: ring, namespace: default}
spec:
  targetRef: {group: "", kind: Service, name: ring}
  loadBalancer: {type: RingHash, hashKey: {header: x-user}}
---
apiVersion: ringmesh.io/v1alpha1
kind: DestinationPolicy
metadata: {name: maglev, namespace: default}
spec:
  targetRef: {group: "", kind: Service, name: maglev}
  loadBalancer: {type: Maglev, hashKey: {cookie: session}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - name: canary
    matches: [{path: {type: PathPrefix, value: /app}, headers: [{name: x-canary, value: "true"}]}]
    backendRefs: [{name: web-v2, port: 80}]
  - name: app
    matches: [{path: {type: PathPrefix, value: /app}}]
    backendRefs: [{name: web-v1, port: 80}]
  - name: split
    matches: [{path: {type: PathPrefix, value: /split}}]
    backendRefs: [{name: web-v1, port: 80, weight: 90}, {name: web-v2, port: 80, weight: 10}]
  - name: headers
    matches: [{path: {type: Exact, value: /headers}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-set, value: one}]
        add: [{name: x-add, value: two}]
        remove: [x-drop]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: x-resp, value: three}]
        remove: [x-path]
    backendRefs: [{name: web-v1, port: 80}]
  - name: rewrite
    matches: [{path: {type: PathPrefix, value: /old}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}]
    backendRefs: [{name: web-v1, port: 80}]
  - name: redirect
    matches: [{path: {type: PathPrefix, value: /moved}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /app/here}, statusCode: 301}}]
  - name: query-v2
    matches: [{path: {type: PathPrefix, value: /q}, queryParams: [{name: v, value: "2"}]}]
    backendRefs: [{name: web-v2, port: 80}]
  - name: query
    matches: [{path: {type: PathPrefix, value: /q}}]
    backendRefs: [{name: web-v1, port: 80}]
  - name: post-v2
    matches: [{path: {type: PathPrefix, value: /m}, method: POST}]
    backendRefs: [{name: web-v2, port: 80}]
  - name: method
    matches: [{path: {type: PathPrefix, value: /m}}]
    backendRefs: [{name: web-v1, port: 80}]
  - name: regex
    matches: [{path: {type: RegularExpression, value: "/re/[0-9]+"}}]
    backendRefs: [{name: web-v2, port: 80}]
  - name: mirror
    matches: [{path: {type: Exact, value: /mirror}}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: web-v2, port: 80}}}]
    backendRefs: [{name: web-v1, port: 80}]
  - name: slow
    matches: [{path: {type: PathPrefix, value: /delay}}]
    backendRefs: [{name: web-v1, port: 80}]
    timeouts: {request: 500ms}
EOF
} >"$CFG"
chmod 644 "$CFG"
OUT=$RM_TMP/out
mkdir -m 777 "$OUT"

# names POD CURL_ARGS...: the bodies (the app names) of sequential requests on one keep-alive
# connection, counted: "N NAME" lines sorted by name (curl's errors counted the same way)
names() {
    local p=$1; shift
    in_pod "$p" curl -sS --max-time 30 "$@" 2>&1 | sort | uniq -c | sed 's/^ *//' | cut -c1-120
}
# count_of NAME TEXT: N from the "N NAME" line of names' output (0 if absent)
count_of() { awk -v n="$1" '$2 == n { c = $1 } END { print c + 0 }' <<<"$2"; }

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    sidecar_up a "$io" --config "$CFG" --pod-ip 10.233.1.2 || continue
    sidecar_up v1 "$io" --config "$CFG" --pod-ip 10.233.1.3 || { sidecar_down a; continue; }
    sidecar_up v2 "$io" --config "$CFG" --pod-ip 10.233.1.4 || { sidecar_down a; sidecar_down v1; continue; }

    fetch a http://$WEB/app/x
    expect "PathPrefix /app goes to v1" code=200 hdr:x-app=v1 hdr:x-path=/app/x
    fetch a -H 'x-canary: true' http://$WEB/app/x
    expect "x-canary: true goes to v2 (more header matches win)" code=200 hdr:x-app=v2
    fetch a --http2-prior-knowledge -H 'x-canary: true' http://$WEB/app
    expect "HTTP/2: x-canary: true goes to v2" code=200 hdr:x-app=v2
    fetch a -H 'x-canary: false' http://$WEB/app
    expect "x-canary: false goes to v1" code=200 hdr:x-app=v1
    nr_0=$(sidecar_stat a outbound.rq_flag_NR) c4_0=$(sidecar_stat a outbound.rq_4xx)
    fetch a http://$WEB/apple
    expect "PathPrefix /app does not match /apple: 404 NR" code=404 hdr:x-ringmesh-flags=NR nohdr:x-app
    fetch a --http2-prior-knowledge http://$WEB/nowhere
    expect "no route matches: 404 NR (HTTP/2)" code=404 hdr:x-ringmesh-flags=NR nohdr:x-app
    check_delta a outbound.rq_flag_NR "$nr_0" eq 2
    check_delta a outbound.rq_4xx "$c4_0" eq 2
    fetch a http://$WEB/re/123
    expect "RegularExpression /re/[0-9]+ goes to v2" code=200 hdr:x-app=v2
    fetch a http://$WEB/re/abc
    expect "/re/abc matches no route: 404 NR" code=404 hdr:x-ringmesh-flags=NR
    fetch a "http://$WEB/q?v=2"
    expect "query v=2 goes to v2" code=200 hdr:x-app=v2 hdr:x-path=/q?v=2
    fetch a "http://$WEB/q?v=3"
    expect "query v=3 goes to v1" code=200 hdr:x-app=v1
    fetch a -X POST -d x=1 http://$WEB/m
    expect "POST /m goes to v2" code=200 hdr:x-app=v2
    fetch a http://$WEB/m
    expect "GET /m goes to v1" code=200 hdr:x-app=v1

    # filters
    fetch a -H 'x-drop: bye' -H 'x-add: zero' http://$WEB/headers
    expect "RequestHeaderModifier: set, add, remove reach the app" code=200 hdr:x-app=v1 \
        json:x-set=one jre:x-add='^zero, ?two$' nojson:x-drop
    expect "ResponseHeaderModifier: set and remove reach the client" hdr:x-resp=three nohdr:x-path
    fetch a "http://$WEB/old/thing?k=1"
    expect "URLRewrite ReplacePrefixMatch: /old/thing -> /new/thing" code=200 hdr:x-app=v1 \
        "hdr:x-path=/new/thing?k=1"
    fetch a http://$WEB/moved/x
    expect "RequestRedirect: 301 with Location .../app/here" code=301 hre:location='^http://10\.96\.0\.10/app/here$' \
        nohdr:x-app
    m2_0=$(grep -c '^req GET /mirror' "$log_v2")
    fetch a http://$WEB/mirror
    expect "RequestMirror: the answer comes from v1" code=200 hdr:x-app=v1
    if wait_until 3 test "$(grep -c '^req GET /mirror' "$log_v2")" -gt "$m2_0"; then
        ok "$io: RequestMirror: v2 got a copy"
    else
        not_ok "$io: RequestMirror: v2 got a copy" "v2's log has $(grep -c '^req GET /mirror' "$log_v2") /mirror lines, had $m2_0"
    fi

    # timeouts.request 500ms
    ut_0=$(sidecar_stat a outbound.rq_flag_UT) to_0=$(sidecar_stat a outbound.rq_timeout)
    fetch a http://$WEB/delay/10
    expect "timeouts.request 500ms: /delay/10 passes" code=200 hdr:x-app=v1
    fetch a http://$WEB/delay/2000
    expect "timeouts.request 500ms: /delay/2000 gets 504 UT at about 0.5 s" code=504 \
        hdr:x-ringmesh-flags=UT 'time<1.5'
    fetch a --http2-prior-knowledge http://$WEB/delay/2000
    expect "timeouts.request 500ms: HTTP/2 too" code=504 hdr:x-ringmesh-flags=UT 'time<1.5'
    check_delta a outbound.rq_flag_UT "$ut_0" eq 2
    check_delta a outbound.rq_timeout "$to_0" eq 2

    # a 90/10 split over 1000 requests (one keep-alive connection)
    out=$(names a "http://$WEB/split/[1-1000]")
    n1=$(count_of v1 "$out") n2=$(count_of v2 "$out")
    if [ $((n1 + n2)) = 1000 ] && [ "$n1" -ge 860 ] && [ "$n1" -le 940 ]; then
        ok "$io: weights 90/10: v1 got $n1, v2 $n2 of 1000"
    else
        not_ok "$io: weights 90/10 over 1000 requests: v1 in 860..940, v1 + v2 = 1000" \
            "got: $(echo $out | head -c 400)"
    fi
    # round robin over two endpoints (one connection, one worker: exact)
    out=$(names a "http://$RR/rr/[1-100]")
    check_eq "$io: round robin over two endpoints: 50/50 of 100" "$(echo $out)" "50 v1 50 v2"
    # (nghttp -m: curl 7.88's --http2-prior-knowledge fails on a reused connection, curl#10634)
    out=$(in_pod a nghttp -m 100 http://$RR/rr 2>&1 | sort | uniq -c | sed 's/^ *//' | cut -c1-120)
    check_eq "$io: round robin over two endpoints, 100 concurrent HTTP/2 streams: 50/50" \
        "$(echo $out)" "50 v1 50 v2"
    # hash-based balancing: one key always lands on one endpoint; many keys use both
    for u in alice bob carol; do
        out=$(names a -H "x-user: $u" "http://$RING/ring/[1-20]")
        if [[ "$(echo $out)" =~ ^20\ v[12]$ ]]; then
            ok "$io: RingHash on x-user: all 20 requests of $u on one endpoint ($out)"
        else
            not_ok "$io: RingHash on x-user: all 20 requests of $u on one endpoint" "got: $(echo $out)"
        fi
    done
    out=$(for u in $(seq 1 40); do in_pod a curl -sS --max-time 5 -H "x-user: user$u" http://$RING/; done 2>&1 |
        sort | uniq -c | sed 's/^ *//' | cut -c1-120)
    check_eq "$io: RingHash: 40 users spread over both endpoints" \
        "$(awk '$2 == "v1" || $2 == "v2" { n++ } END { print n + 0 }' <<<"$out") $(awk '{ s += $1 } END { print s }' <<<"$out")" "2 40"
    for c in s1 s2 s3; do
        out=$(names a -b "session=$c" "http://$MAGLEV/maglev/[1-20]")
        if [[ "$(echo $out)" =~ ^20\ v[12]$ ]]; then
            ok "$io: Maglev on cookie session: all 20 requests of session $c on one endpoint ($out)"
        else
            not_ok "$io: Maglev on cookie session: all 20 requests of session $c on one endpoint" "got: $(echo $out)"
        fi
    done
    check_stat a outbound.rq_total ge 1379 # the requests of a round
    check_stat v2 inbound.rq_total ge 100
    alive a v1 v2
    sidecar_down a; sidecar_down v1; sidecar_down v2
done
tap_done
