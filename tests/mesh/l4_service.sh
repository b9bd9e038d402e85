#!/usr/bin/env bash
# Outbound connections to a Service VIP are balanced over the Service's endpoints (from
# --config: Service + EndpointSlice), the way kube-proxy would, with the policy's connect
# retries: round robin between two pods, terminating endpoints get nothing after a
# SIGHUP reload, a dead endpoint costs a retry and no failed connection, a Service with no
# usable endpoint resets the client (UH), and a destination outside the config passes
# through. On both I/O backends.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
pod a 10.233.1.2
pod b1 10.233.1.3
pod b2 10.233.1.4
host dead 10.233.1.9 # no sidecar, nothing listening: connects to it are refused
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0 # pods reach VIPs through their route
for p in a b1 b2; do check "ringmesh-init in $p" pod_init "$p"; done
pod_tool_bg b1 hash-server 9000; log_b1=$RM_APP_LOG; wait_port b1 9000
pod_tool_bg b2 hash-server 9000; log_b2=$RM_APP_LOG; wait_port b2 9000

CFG=$RM_TMP/mesh.yaml
# config ENDPOINTS...: each "IP" or "IP:terminating" or "IP:down" (not ready, not serving)
config() {
    {
        printf 'apiVersion: v1\nkind: Service\nmetadata: {name: echo, namespace: default}\n'
        printf 'spec:\n  clusterIP: 10.96.0.50\n  ports: [{name: tcp, port: 80, targetPort: 9000, appProtocol: tcp}]\n---\n'
        printf 'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n'
        printf 'metadata: {name: echo-1, namespace: default, labels: {kubernetes.io/service-name: echo}}\n'
        printf 'addressType: IPv4\nports: [{name: tcp, port: 9000}]\nendpoints:\n'
        for e in "$@"; do
            case $e in
            *:terminating) printf -- '- {addresses: [%s], conditions: {ready: false, serving: true, terminating: true}}\n' "${e%%:*}" ;;
            *:down) printf -- '- {addresses: [%s], conditions: {ready: false, serving: false}}\n' "${e%%:*}" ;;
            *) printf -- '- {addresses: [%s]}\n' "$e" ;;
            esac
        done
    } >"$CFG"
    chmod 644 "$CFG"
}
conns() { grep -c '^conn ' "$1"; }
send_n() { # N: N sequential 1000-byte transfers to the VIP; all must succeed
    local i
    for ((i = 0; i < $1; i++)); do pod_tool a send 10.96.0.50 80 1000 >/dev/null || return 1; done
}

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    config 10.233.1.3 10.233.1.4
    sidecar_up a "$io" --config "$CFG" --concurrency 1 || continue
    sidecar_up b1 "$io" || { sidecars_down; continue; }
    sidecar_up b2 "$io" || { sidecar_down a; sidecar_down b1; continue; }
    b1_0=$(conns "$log_b1") b2_0=$(conns "$log_b2")
    check "$io: 20 connections to the VIP all succeed" send_n 20
    check_eq "$io: round robin: b1 got 10" $(($(conns "$log_b1") - b1_0)) 10
    check_eq "$io: round robin: b2 got 10" $(($(conns "$log_b2") - b2_0)) 10
    check_stat a outbound.cx_service eq 20

    # b2 terminating: after the reload it gets no new connection
    config 10.233.1.3 10.233.1.4:terminating
    kill -HUP "$(sidecar_pid a)"
    check_stat a config.version eq 2
    b1_0=$(conns "$log_b1") b2_0=$(conns "$log_b2")
    check "$io: 6 connections after b2 turned terminating succeed" send_n 6
    check_eq "$io: terminating b2 got none" $(($(conns "$log_b2") - b2_0)) 0
    check_eq "$io: b1 got all 6" $(($(conns "$log_b1") - b1_0)) 6

    # a dead endpoint: half the picks land on it, each retried on b1; no client sees it
    config 10.233.1.9 10.233.1.3
    kill -HUP "$(sidecar_pid a)"
    check_stat a config.version eq 3
    b1_0=$(conns "$log_b1")
    check "$io: 8 connections with a dead endpoint in the set all succeed" send_n 8
    check_eq "$io: b1 served all 8" $(($(conns "$log_b1") - b1_0)) 8
    check_stat a outbound.cx_connect_retry ge 4
    check_stat a outbound.cx_connect_fail ge 4

    # nothing usable: the client is reset at once (UH), counted
    config 10.233.1.3:down 10.233.1.4:down
    kill -HUP "$(sidecar_pid a)"
    check_stat a config.version eq 4
    check "$io: no healthy endpoint: the client is reset" pod_tool a expect-reset 10.96.0.50 80
    check_stat a outbound.cx_no_healthy_upstream eq 1

    # a destination that is no Service VIP passes through as before
    b1_0=$(conns "$log_b1")
    check "$io: a pod address outside the config passes through" pod_tool a send 10.233.1.3 9000 1000
    check_eq "$io: b1 served the passthrough connection" $(($(conns "$log_b1") - b1_0)) 1
    check_stat a outbound.cx_service eq 35
    sidecar_down a; sidecar_down b1; sidecar_down b2
done
tap_done
