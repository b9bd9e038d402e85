#!/usr/bin/env bash
# Per-request metrics with Istio's labels, over mTLS, checked with Prometheus's own text
# parser (python3-prometheus-client, tests/tools/promq.py): client pod a (workload
# "client", from a ReplicaSet-style pod name; app client, version v1) calls Service web in
# pod b (workload "web", app web, version v2). After exactly 17 requests answered 200 and 3
# answered 500 (HTTP/1.1 and HTTP/2), b reports them as reporter=destination with a's
# workload, labels and SPIFFE ID (learned over mTLS from x-ringmesh-peer, which neither app
# ever sees), and a as reporter=source with b's; the duration histogram's count and +Inf
# bucket say 20; request and response bytes are counted. gRPC calls carry
# request_protocol grpc and their grpc_response_status; a request with no route carries
# response_flags NR; a TCP Service is counted in the tcp_* series. --metrics-prefix istio
# names the same series istio_*; --metrics-labels keeps only the labels asked for;
# --metrics-max-series 5 holds under 40 distinct response codes (one "overflow" series
# takes the rest, counted); --metrics-idle-seconds evicts unused series; --no-metrics
# records none. A plaintext client's forged x-ringmesh-peer is not believed.
source "$(dirname "$0")/lib.sh"
source "$RINGMESH_ROOT/tests/lib/http.sh"
mesh_up
mesh_require_bins
mesh_ios
pod a 10.233.1.2
pod b 10.233.1.3
A=$(pod_ip a) B=$(pod_ip b)
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0
for p in a b; do check "ringmesh-init in $p" pod_init "$p"; done
pod_app b "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name web
pod_app b "$RM_PY" "$RM_TOOLS/grpcapp.py" server 50051 --name g
pod_tool_bg b echo-server 9000
for port in 8080 50051 9000; do wait_port b $port; done

WEB=10.96.0.40 GRPC=10.96.0.41 TCP=10.96.0.42 EMPTY=10.96.0.43
CFG=$RM_TMP/mesh.yaml
{
    service web $WEB
    service grpc $GRPC pname=grpc port=50051 target=50051 proto=grpc
    service tcp $TCP pname=tcp port=80 target=9000 proto=tcp
    # a Service without endpoints: its requests get 503 UH from a's sidecar
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: default}\n'
    printf 'spec:\n  clusterIP: %s\n  ports: [{name: http, port: 80, appProtocol: http}]\n' $EMPTY
} >"$CFG"
chmod 644 "$CFG"

C=$RM_TMP/certs
mesh_certs a b

OUT=$RM_TMP/out
mkdir -m 777 "$OUT"
ID_A=spiffe://cluster.local/ns/default/sa/a
ID_B=spiffe://cluster.local/ns/default/sa/b

# prom POD [PATH_PORT]: the exposition of the pod's sidecar (stats port 15090)
prom() { ip netns exec "${RM_NS[$1]}" curl -s --max-time 5 http://127.0.0.1:15090/stats/prometheus; }
# q POD ARGS...: promq.py on the pod's exposition
q() { local p=$1; shift; prom "$p" | "$RM_PY" "$RM_TOOLS/promq.py" "$@"; }
# check_q_eq NAME POD WANT ARGS...: polls (3 s) until promq says WANT
check_prom() {
    local name=$1 p=$2 want=$3 got i; shift 3
    for ((i = 0; i < 30; i++)); do
        got=$(q "$p" "$@")
        [ "$got" = "$want" ] && break
        sleep 0.1
    done
    check_eq "${RM_LABEL:+$RM_LABEL: }$name" "$got" "$want"
}

WEB_FQDN=web.default.svc.cluster.local
DST=(reporter=destination destination_service=$WEB_FQDN)
SRC=(reporter=source destination_service=$WEB_FQDN)
PEER_A=(source_workload=client source_workload_namespace=default source_app=client source_version=v1
    source_canonical_service=client source_canonical_revision=v1 source_principal=$ID_A)
PEER_B=(destination_workload=web destination_workload_namespace=default destination_app=web
    destination_version=v2 destination_canonical_service=web destination_canonical_revision=v2
    destination_principal=$ID_B destination_service_name=web destination_service_namespace=default)

up() { # IO [a's extra flags...]: both sidecars with mTLS
    local io=$1; shift
    sidecar_up b "$io" --config "$CFG" --cert-dir "$C/b" --service-account b \
        --pod-name web-6f8d7c9b5-abcde --pod-labels app=web,version=v2 --concurrency 2 "$@" &&
        sidecar_up a "$io" --config "$CFG" --cert-dir "$C/a" --service-account a \
            --pod-name client-7d4b9c8f6d-x2x9z --pod-labels app=client,version=v1 "$@"
}

scenario() {
    local io=$1 out
    up "$io" || { sidecars_down; return; }
    check "$io: the exposition parses" bash -c "ip netns exec ${RM_NS[b]} curl -s \
        http://127.0.0.1:15090/stats/prometheus | $RM_PY $RM_TOOLS/promq.py check"
    # 17 x 200 and 3 x 500, HTTP/1.1 and HTTP/2 mixed
    in_pod a curl -s -o /dev/null $(for i in $(seq 9); do echo http://$WEB/status/200; done) >/dev/null
    # one curl per request: Debian's curl 7.88.1 fails to reuse a prior-knowledge HTTP/2
    # connection ("Error in the HTTP2 framing layer", curl/curl#10634, fixed in 8.0)
    out=$(for i in $(seq 8); do in_pod a curl -sS -o /dev/null -w '%{http_code} %{http_version}\n' \
        --http2-prior-knowledge http://$WEB/status/200 2>&1; done | sort | uniq -c | sed 's/^ *//')
    check_eq "$io: 8 HTTP/2 requests answered 200" "$out" "8 200 2"
    in_pod a curl -s -o /dev/null $(for i in $(seq 3); do echo http://$WEB/status/500; done) >/dev/null

    check_prom "b counts 17 x 200 from a, with a's labels and identity" b 17 \
        sum ringmesh_requests_total "${DST[@]}" "${PEER_A[@]}" response_code=200 \
        request_protocol=http grpc_response_status= response_flags=- connection_security_policy=mutual_tls \
        destination_workload=web destination_principal=$ID_B
    check_prom "b counts 3 x 500" b 3 sum ringmesh_requests_total "${DST[@]}" response_code=500
    check_prom "b: 20 in all for web" b 20 sum ringmesh_requests_total "${DST[@]}"
    check_prom "b: duration histogram count 20" b 20 \
        sum ringmesh_request_duration_milliseconds_count "${DST[@]}"
    check_prom "b: duration +Inf bucket 20" b 20 \
        sum ringmesh_request_duration_milliseconds_bucket "${DST[@]}" le=+Inf
    out=$(q b sum ringmesh_request_duration_milliseconds_sum "${DST[@]}")
    check "b: duration sum is positive ($out ms)" awk -v v="$out" 'BEGIN { exit !(v > 0) }'
    # httpapp answers "web\n" (4 bytes) to /status/200 and /status/500: 80 bytes in all
    check_prom "b: response bytes sum 80" b 80 sum ringmesh_response_bytes_sum "${DST[@]}"
    check_prom "b: request bytes, 20 requests in the bucket <= 1 (no bodies)" b 20 \
        sum ringmesh_request_bytes_bucket "${DST[@]}" le=1
    check_prom "a counts 17 x 200 as source, with b's labels and identity" a 17 \
        sum ringmesh_requests_total "${SRC[@]}" "${PEER_B[@]}" response_code=200 \
        source_workload=client source_principal=$ID_A connection_security_policy=unknown
    check_prom "a: 3 x 500" a 3 sum ringmesh_requests_total "${SRC[@]}" response_code=500
    # the exchange header never reaches an app
    fetch a http://$WEB/headers
    expect "$io: b's app does not see x-ringmesh-peer" code=200 nojson:x-ringmesh-peer
    check_fails "$io: a's app does not see x-ringmesh-peer" grep -qi x-ringmesh-peer "$OUT/h"
    # gRPC: 2 OK, 1 NOT_FOUND (5)
    in_pod a "$RM_PY" "$RM_TOOLS/grpcapp.py" client $GRPC:50051 unary --count 2 >/dev/null 2>&1
    in_pod a "$RM_PY" "$RM_TOOLS/grpcapp.py" client $GRPC:50051 fail NOT_FOUND >/dev/null 2>&1
    check_prom "b: 2 gRPC calls with status 0" b 2 sum ringmesh_requests_total \
        reporter=destination request_protocol=grpc grpc_response_status=0 response_code=200
    check_prom "b: 1 gRPC call with status 5" b 1 sum ringmesh_requests_total \
        reporter=destination request_protocol=grpc grpc_response_status=5
    check_prom "a: 1 gRPC call with status 5" a 1 sum ringmesh_requests_total \
        reporter=source request_protocol=grpc grpc_response_status=5
    # a Service without endpoints: a answers 503 itself, flag UH
    fetch a http://$EMPTY/
    check_prom "a: the UH reply is counted with its flag" a 1 sum ringmesh_requests_total \
        reporter=source response_flags=UH response_code=503 \
        destination_service=empty.default.svc.cluster.local
    # TCP over the tcp Service: 3 connections
    for i in 1 2 3; do pod_tool a connect $TCP 80 >/dev/null; done
    check_prom "a: 3 TCP connections opened to tcp" a 3 sum ringmesh_tcp_connections_opened_total \
        reporter=source destination_service=tcp.default.svc.cluster.local
    check_prom "a: and 3 closed" a 3 sum ringmesh_tcp_connections_closed_total \
        reporter=source destination_service=tcp.default.svc.cluster.local
    check_prom "b: 3 TCP connections closed, over mTLS from a" b 3 \
        sum ringmesh_tcp_connections_closed_total reporter=destination \
        destination_service=tcp.default.svc.cluster.local source_principal=$ID_A \
        connection_security_policy=mutual_tls
    out=$(q b sum ringmesh_tcp_received_bytes_total reporter=destination)
    check "b: TCP bytes received counted ($out)" test "${out:-0}" -gt 0
    check_prom "destination_service values are the Services' names, never a Host" a \
        "$(printf '%s\n' empty.default.svc.cluster.local grpc.default.svc.cluster.local $WEB_FQDN)" \
        labels ringmesh_requests_total destination_service
    check_prom "proxy health: the I/O backend" a 1 sum ringmesh_io_backend
    check_prom "proxy health: cert expiry is there" a 1 series ringmesh_cert_expiry_timestamp_seconds
    alive a b
    sidecars_down
}

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    scenario "$io"
done
RM_LABEL=
io=${RM_IOS[0]}

# --metrics-prefix istio: the same series, named istio_*
up "$io" --metrics-prefix istio || { sidecars_down; tap_done; exit 1; }
in_pod a curl -s -o /dev/null http://$WEB/ http://$WEB/ >/dev/null
check_prom "istio prefix: b's istio_requests_total counts 2" b 2 \
    sum istio_requests_total "${DST[@]}" source_workload=client
check_prom "istio prefix: no ringmesh_requests_total" b 0 series ringmesh_requests_total
check_prom "istio prefix: istio_request_duration_milliseconds_count 2" b 2 \
    sum istio_request_duration_milliseconds_count "${DST[@]}"
sidecars_down

# --metrics-labels: only those (and reporter)
up "$io" --metrics-labels destination_service,response_code || { sidecars_down; tap_done; exit 1; }
in_pod a curl -s -o /dev/null http://$WEB/status/200 http://$WEB/status/404 >/dev/null
check_prom "labels: 2 series on b" b 2 series ringmesh_requests_total
check_prom "labels: no source_workload label" b 0 sum ringmesh_requests_total source_workload=client
check_prom "labels: response_code kept" b "$(printf '200\n404')" labels ringmesh_requests_total response_code
sidecars_down

# --metrics-max-series 5 on b (2 workers: 3 each at most, rounded up) under 40 codes
up "$io" --metrics-max-series 5 || { sidecars_down; tap_done; exit 1; }
in_pod a curl -s -o /dev/null $(for c in $(seq 200 239); do echo http://$WEB/status/$c; done) >/dev/null
check_prom "cap: 40 requests counted in all on b, overflow included" b 40 sum ringmesh_requests_total
out=$(q b series ringmesh_requests_total)
check "cap: b holds at most 6 request series plus overflow ($out)" test "${out:-99}" -le 7
check_prom "cap: the overflow series exists" b 1 series ringmesh_requests_total reporter=overflow
out=$(q b sum ringmesh_metrics_overflow_total)
check "cap: overflowed samples counted ($out)" test "${out:-0}" -ge 33
sidecars_down

# --metrics-idle-seconds 1: a series unused for a second goes
up "$io" --metrics-idle-seconds 1 || { sidecars_down; tap_done; exit 1; }
in_pod a curl -s -o /dev/null http://$WEB/ >/dev/null
check_prom "idle: the series is there" b 1 sum ringmesh_requests_total reporter=destination
wait_until 8 bash -c "[ \"\$(ip netns exec ${RM_NS[b]} curl -s http://127.0.0.1:15090/stats/prometheus | \
    $RM_PY $RM_TOOLS/promq.py series ringmesh_requests_total)\" = 0 ]"
check_prom "idle: evicted after a second unused" b 0 series ringmesh_requests_total
check_prom "idle: eviction counted" b 1 sum ringmesh_metrics_evicted_total
sidecars_down

# --no-metrics: no request series, proxy counters still there
up "$io" --no-metrics || { sidecars_down; tap_done; exit 1; }
in_pod a curl -s -o /dev/null http://$WEB/ >/dev/null
check_prom "no-metrics: no request series" b 0 series ringmesh_requests_total
check_prom "no-metrics: proxy counters still count" b 1 sum ringmesh_requests_proxied_total direction=inbound
sidecars_down

# A plaintext client's x-ringmesh-peer is not believed (b alone, no mTLS on b; a's
# capture removed, so a's curl goes straight to b)
check "ringmesh-init --cleanup in a" pod_init_cleanup a
sidecar_up b "$io" --config "$CFG" --pod-name web-6f8d7c9b5-abcde || { tap_done; exit 1; }
in_pod a curl -s -o /dev/null -H 'x-ringmesh-peer: w=forged;n=evil' http://$B:8080/ >/dev/null
check_prom "plaintext: counted with policy none" b 1 sum ringmesh_requests_total \
    reporter=destination connection_security_policy=none source_workload=unknown
check_prom "plaintext: the forged workload is not" b 0 series ringmesh_requests_total source_workload=forged
sidecar_down b

# bad flags
for bad in "--metrics-prefix envoy" "--metrics-labels destination_service,bogus" \
    "--metrics-max-series 0" "--workload-name a/b"; do
    # shellcheck disable=SC2086
    out=$("$RINGMESH_BIN/ringmesh-sidecar" $bad 2>&1); rc=$?
    named=$(grep -q -- "${bad%% *}" <<<"$out" && echo named)
    check_eq "bad flag '$bad' exits 2 naming it ($out)" "$rc $named" "2 named"
done
tap_done
