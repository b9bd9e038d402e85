#!/usr/bin/env bash
# L4 through both sidecars: pod a's client -> a's outbound (15001) -> b's inbound (15006) ->
# b's app. A 64 MiB transfer arrives intact (sha256 compared end to end), parallel streams too,
# the reverse direction as well, and the counters show it. On every --io backend.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
mesh_two_pods
SIZE=$((64 << 20))
REPLY=$((${#SIZE} + 1 + 64 + 1)) # "<n> <sha256>\n"

pod_tool_bg b hash-server 9000; b_log=$RM_APP_LOG; wait_port b 9000
pod_tool_bg a hash-server 9000; a_log=$RM_APP_LOG; wait_port a 9000

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    sidecar_up a "$io" || continue
    sidecar_up b "$io" || { sidecar_down a; continue; }

    first_check "$io: 64 MiB a -> b intact" pod_tool a send "$B" 9000 $SIZE ||
        { sidecars_down; continue; }
    check_stat a outbound.cx_total ge 1
    check_stat a outbound.bytes_rx ge $SIZE
    check_stat a outbound.bytes_tx ge $REPLY
    check_stat b inbound.cx_total ge 1
    check_stat b inbound.bytes_rx ge $SIZE
    check_stat b inbound.bytes_tx ge $REPLY
    check_q "$io: b's app saw the request from 127.0.0.6" \
        wait_until 2 grep -q "peer=127.0.0.6:.* bytes=$SIZE .*result=ok" "$b_log"

    check_q "$io: 8 parallel streams of 4 MiB a -> b intact" \
        pod_tool a send "$B" 9000 $((4 << 20)) --streams 8
    check_stat a outbound.cx_total ge 9
    check_stat b inbound.cx_total ge 9

    check_q "$io: 16 MiB b -> a intact" pod_tool b send "$A" 9000 $((16 << 20))
    check_stat b outbound.cx_total ge 1
    check_stat a inbound.cx_total ge 1
    check_stat a inbound.bytes_rx ge $((16 << 20))

    check_stat a outbound.cx_active eq 0
    check_stat b inbound.cx_active eq 0
    check_stat a outbound.cx_connect_fail eq 0
    check_stat a outbound.cx_reset eq 0
    sidecar_down a
    sidecar_down b
done
tap_done
