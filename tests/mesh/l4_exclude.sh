#!/usr/bin/env bash
# Excluded ports bypass the sidecars. a: ringmesh-init -o 8081,8083 (outbound exclude);
# b: -d 15090,15021,15020,8081,8082 (inbound exclude). So a -> b:
#   9000 goes through both (control, first),
#   8081 bypasses both sidecars (app sees a's pod IP, no counter moves),
#   8082 goes through a's outbound only (app sees a's pod IP: a's sidecar connects from it),
#   8083 goes through b's inbound only (app sees 127.0.0.6).
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
INIT_A="-o 8081,8083" INIT_B="-d 15090,15021,15020,8081,8082" mesh_two_pods

declare -A log
for p in 8081 8082 8083 9000; do
    pod_tool_bg b hash-server $p; log[$p]=$RM_APP_LOG; wait_port b $p
done

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    for p in 8081 8082 8083 9000; do echo "=== $io" >>"${log[$p]}"; done
    sidecar_up a "$io" || continue
    sidecar_up b "$io" || { sidecar_down a; continue; }

    first_check "$io: a -> b:9000 (not excluded) works" pod_tool a send "$B" 9000 100000 ||
        { sidecars_down; continue; }
    check_stat a outbound.cx_total eq 1
    check_stat b inbound.cx_total eq 1
    check_q "$io: b's app on 9000 saw 127.0.0.6" \
        wait_until 2 bash -c "sed -n '/=== $io/,\$p' ${log[9000]} | grep -q 'peer=127.0.0.6:'"

    check_q "$io: a -> b:8081 (excluded both ways) works" pod_tool a send "$B" 8081 100000
    check_stat a outbound.cx_total eq 1
    check_stat b inbound.cx_total eq 1
    check_q "$io: b's app on 8081 saw a's pod IP" \
        wait_until 2 bash -c "sed -n '/=== $io/,\$p' ${log[8081]} | grep -q 'peer=$A:'"

    check_q "$io: a -> b:8082 (excluded inbound on b) works" pod_tool a send "$B" 8082 100000
    check_stat a outbound.cx_total eq 2
    check_stat b inbound.cx_total eq 1
    check_q "$io: b's app on 8082 saw a's pod IP" \
        wait_until 2 bash -c "sed -n '/=== $io/,\$p' ${log[8082]} | grep -q 'peer=$A:'"

    check_q "$io: a -> b:8083 (excluded outbound on a) works" pod_tool a send "$B" 8083 100000
    check_stat a outbound.cx_total eq 2
    check_stat b inbound.cx_total eq 2
    check_q "$io: b's app on 8083 saw 127.0.0.6" \
        wait_until 2 bash -c "sed -n '/=== $io/,\$p' ${log[8083]} | grep -q 'peer=127.0.0.6:'"

    sidecar_down a
    sidecar_down b
done
tap_done
