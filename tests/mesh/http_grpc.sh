#!/usr/bin/env bash
# gRPC through two sidecars (client pod a -> Service VIP, appProtocol grpc -> server pod b),
# with python3-grpcio on both ends: unary calls (small, 1 MiB, many on one channel), a bidi
# stream, error statuses passed through intact, a route timeout answered DEADLINE_EXCEEDED,
# and a Service with no endpoints answered UNAVAILABLE (14) by the proxy. On both I/O
# backends. Written against the HTTP engine while it is built.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
pod a 10.233.1.2
pod b 10.233.1.3
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0 # pods reach VIPs through their route
for p in a b; do check "ringmesh-init in $p" pod_init "$p"; done
pod_app b "$RM_PY" "$RM_TOOLS/grpcapp.py" server 50051 --name b; log_b=$RM_APP_LOG
wait_port b 50051

GRPC=10.96.0.30:50051  # -> b:50051; calls to /test.Echo/Sleep have a 500 ms route timeout
EMPTY=10.96.0.31:50051 # no endpoints
source "$RINGMESH_ROOT/tests/lib/http.sh" # fetch, expect, service, check_delta, alive, codes
CFG=$RM_TMP/mesh.yaml
cat >"$CFG" <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  clusterIP: 10.96.0.30
  ports: [{name: grpc, port: 50051, appProtocol: grpc}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, namespace: default, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{name: grpc, port: 50051}]
endpoints: [{addresses: [10.233.1.3]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 50051}]
  rules:
  - matches: [{path: {type: Exact, value: /test.Echo/Sleep}}]
    backendRefs: [{name: echo, port: 50051}]
    timeouts: {request: 500ms}
  - backendRefs: [{name: echo, port: 50051}]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec:
  clusterIP: 10.96.0.31
  ports: [{name: grpc, port: 50051, appProtocol: grpc}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: empty-1, namespace: default, labels: {kubernetes.io/service-name: empty}}
addressType: IPv4
ports: [{name: grpc, port: 50051}]
endpoints: []
EOF
chmod 644 "$CFG"

# rpc NAME ARGS...: one TAP check that "grpcapp.py client ARGS..." in pod a got what it
# expected (its output is the failure detail); RPC_MS = how long it took
rpc() {
    local name=$1 out t0; shift
    t0=$(date +%s%3N)
    out=$(in_pod a "$RM_PY" "$RM_TOOLS/grpcapp.py" client "$@" 2>&1)
    local rc=$?
    RPC_MS=$(($(date +%s%3N) - t0))
    if [ $rc = 0 ]; then ok "$RM_LABEL: $name"; else not_ok "$RM_LABEL: $name" "$(tail -n 5 <<<"$out")"; fi
}

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    sidecar_up a "$io" --config "$CFG" --pod-ip 10.233.1.2 || continue
    sidecar_up b "$io" --config "$CFG" --pod-ip 10.233.1.3 || { sidecar_down a; continue; }

    rpc "unary call through two sidecars (trailing metadata x-app: b)" $GRPC unary --expect-name b
    rpc "20 unary calls of 1 MiB on one channel" $GRPC unary --count 20 --size 1048576 --expect-name b
    rpc "200 small unary calls on one channel" $GRPC unary --count 200
    rpc "bidi stream: 100 messages echoed in order" $GRPC stream 100
    rpc "an error status passes through: NOT_FOUND 'no such thing'" $GRPC fail NOT_FOUND no such thing
    rpc "an error status passes through: RESOURCE_EXHAUSTED 'quota'" $GRPC fail 8 quota
    rpc "a Sleep of 100 ms within the 500 ms route timeout succeeds" $GRPC sleep 100
    ut_0=$(sidecar_stat a outbound.rq_flag_UT)
    rpc "a Sleep of 3 s past the 500 ms route timeout: DEADLINE_EXCEEDED" $GRPC sleep 3000 \
        --timeout 10 --expect-code DEADLINE_EXCEEDED
    check_le "$io: ... and it came within 1.5 s (ms)" "$RPC_MS" 1500
    check_delta a outbound.rq_flag_UT "$ut_0" eq 1
    uh_0=$(sidecar_stat a outbound.rq_flag_UH)
    rpc "a Service with no endpoints: UNAVAILABLE (14) from the proxy" $EMPTY unary \
        --timeout 5 --expect-code UNAVAILABLE
    check_delta a outbound.rq_flag_UH "$uh_0" eq 1

    check_stat a outbound.cx_http2 ge 1
    check_stat a outbound.rq_total ge 227
    check_stat b inbound.rq_total ge 225
    check_stat b inbound.cx_http2 ge 1
    alive a b
    sidecars_down
done
tap_done
