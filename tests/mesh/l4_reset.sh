#!/usr/bin/env bash
# A reset propagates both ways through both sidecars as a reset, not as a clean close:
#  b's app closes with SO_LINGER 0 -> a's client must get ECONNRESET;
#  a's client closes with SO_LINGER 0 -> b's app must get ECONNRESET.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
mesh_two_pods

pod_tool_bg b rst-server 9002; wait_port b 9002
pod_tool_bg b watch-server 9003; watch_log=$RM_APP_LOG; wait_port b 9003

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    sidecar_up a "$io" || continue
    sidecar_up b "$io" || { sidecar_down a; continue; }
    echo "=== $io" >>"$watch_log"

    check_q "$io: server RST reaches a's client as ECONNRESET" pod_tool a expect-reset "$B" 9002
    check_stat b inbound.cx_reset ge 1
    check_stat a outbound.cx_reset ge 1
    check_q "$io: client sends RST" pod_tool a rst-client "$B" 9003
    check_q "$io: client RST reaches b's app as ECONNRESET" \
        wait_until 3 bash -c "sed -n '/=== $io/,\$p' $watch_log | grep -q 'watch result=reset'"
    check_stat a outbound.cx_reset ge 2
    check_stat b inbound.cx_reset ge 2
    check_stat a outbound.cx_active eq 0
    check_stat b inbound.cx_active eq 0
    sidecar_down a
    sidecar_down b
done
tap_done
