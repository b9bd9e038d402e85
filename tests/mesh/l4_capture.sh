#!/usr/bin/env bash
# Capture is real and loop-free: with ringmesh-init's rules in place a connection goes through
# exactly one outbound and one inbound sidecar hop; with b's sidecar down, traffic to b fails
# (b's inbound is captured), with a's sidecar down, a cannot reach b (a's outbound is
# captured); after `ringmesh-init --cleanup` b is reachable directly again.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
mesh_two_pods
host out 10.233.1.20

pod_tool_bg b hash-server 9000; b_log=$RM_APP_LOG; wait_port b 9000
pod_tool_bg b echo-server 9001; wait_port b 9001

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    sidecar_up a "$io" || continue
    sidecar_up b "$io" || { sidecar_down a; continue; }

    # one connection = one outbound cx in a, one inbound cx in b, nothing else
    first_check "$io: one 1 MiB connection a -> b" pod_tool a send "$B" 9000 $((1 << 20)) ||
        { sidecars_down; continue; }
    sleep 1 # a looping sidecar would keep counting; give it a moment to show
    check_stat a outbound.cx_total eq 1
    check_stat a inbound.cx_total eq 0
    check_stat b inbound.cx_total eq 1
    check_stat b outbound.cx_total eq 0
    check_stat a outbound.cx_no_original_dst eq 0
    check_stat b inbound.cx_no_original_dst eq 0
    check_stat a outbound.bytes_rx eq $((1 << 20))
    check_stat b inbound.bytes_rx eq $((1 << 20))

    # b's sidecar down: its PREROUTING still sends port 9000 to 15006, where nobody listens
    sidecar_down b
    out=$(pod_tool a connect "$B" 9001 --timeout 2)
    check_fails "$io: b's sidecar down: a cannot reach b:9001 ($out)" test "$out" = "connect ok"
    check_stat a outbound.cx_connect_fail ge 1
    out=$(pod_tool out connect "$B" 9001 --timeout 2)
    check_fails "$io: b's sidecar down: non-mesh host cannot reach b:9001 ($out)" \
        test "$out" = "connect ok"

    # a's sidecar down: a's OUTPUT sends the connection to 15001, where nobody listens
    sidecar_up b "$io" || { sidecar_down a; continue; }
    sidecar_down a
    out=$(pod_tool a connect "$B" 9001 --timeout 2)
    check_eq "$io: a's sidecar down: a's connection to b:9001 is refused locally" "$out" "connect refused"
    check_stat b inbound.cx_total eq 0
    out=$(pod_tool out connect "$B" 9001 --timeout 2)
    check_eq "$io: non-mesh host reaches b through b's sidecar" "$out" "connect ok"
    check_stat b inbound.cx_total eq 1
    sidecar_down b
done

# Without rules the same non-mesh connection reaches b directly: the failures above were
# the capture, not the network.
check "ringmesh-init --cleanup in b" pod_init_cleanup b
out=$(pod_tool out connect "$B" 9001 --timeout 2)
check_eq "after cleanup the non-mesh host reaches b directly" "$out" "connect ok"
check_q "after cleanup no RINGMESH chain is left in b" \
    bash -c "! ip netns exec ${RM_NS[b]} iptables-save | grep -q RINGMESH"
tap_done
