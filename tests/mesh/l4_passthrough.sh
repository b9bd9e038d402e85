#!/usr/bin/env bash
# Destinations outside the mesh: a host with no sidecar and no rules. a -> host passes
# through a's outbound listener to the original destination (counted, intact); host -> a
# (a client outside the mesh) reaches a's app through a's inbound listener.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
pod a 10.233.1.2
host out 10.233.1.20
A=$(pod_ip a) OUT=$(pod_ip out)
check "ringmesh-init in pod a" pod_init a

pod_tool_bg out hash-server 9000; out_log=$RM_APP_LOG; wait_port out 9000
pod_tool_bg a hash-server 9000; a_log=$RM_APP_LOG; wait_port a 9000
SIZE=$((8 << 20))

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    sidecar_up a "$io" || continue
    echo "=== $io" >>"$out_log"; echo "=== $io" >>"$a_log"
    first_check "$io: a -> non-mesh host, 8 MiB intact" pod_tool a send "$OUT" 9000 $SIZE ||
        { sidecar_down a; continue; }
    check_stat a outbound.cx_total eq 1
    check_stat a outbound.bytes_rx eq $SIZE
    check_q "$io: the host saw a's pod IP" \
        wait_until 2 bash -c "sed -n '/=== $io/,\$p' $out_log | grep -q 'peer=$A:.* bytes=$SIZE '"

    check_q "$io: non-mesh host -> a, 8 MiB intact" pod_tool out send "$A" 9000 $SIZE
    check_stat a inbound.cx_total eq 1
    check_stat a inbound.bytes_rx eq $SIZE
    check_q "$io: a's app saw 127.0.0.6" \
        wait_until 2 bash -c "sed -n '/=== $io/,\$p' $a_log | grep -q 'peer=127.0.0.6:.* bytes=$SIZE '"
    sidecar_down a
done
tap_done
