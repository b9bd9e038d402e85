#!/usr/bin/env bash
# Half-close propagates both ways through both sidecars:
#  client first: a sends, shuts down its write side; b's app must see EOF while its own
#    write side is still open, and its reply must still reach a (a then sees EOF);
#  server first: b's app sends N bytes and shuts down its write side; a must see all N and
#    EOF while a's write side is open; a's reply must still reach b's app.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
mesh_two_pods

pod_tool_bg b hash-server 9000; wait_port b 9000
pod_tool_bg b fin-first-server 9004 300000; fin_log=$RM_APP_LOG; wait_port b 9004

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    sidecar_up a "$io" || continue
    sidecar_up b "$io" || { sidecar_down a; continue; }
    echo "=== $io" >>"$fin_log"

    first_check "$io: client FIN first: 2 MiB then shutdown(WR), reply still arrives" \
        pod_tool a send "$B" 9000 $((2 << 20)) ||
        { sidecars_down; continue; }
    check_q "$io: client FIN first: 10 bytes then shutdown(WR), reply still arrives" \
        pod_tool a send "$B" 9000 10
    check_q "$io: client FIN first: 0 bytes then shutdown(WR), reply still arrives" \
        pod_tool a send "$B" 9000 0
    check_q "$io: server FIN first: a reads 300000 bytes and EOF, then replies" \
        pod_tool a fin-first-client "$B" 9004 300000
    check_q "$io: server FIN first: b's app got the reply after its own FIN" \
        wait_until 3 bash -c "sed -n '/=== $io/,\$p' $fin_log | grep -q 'finfirst sent=300000 got=thanks result=eof'"
    check_stat a outbound.cx_active eq 0
    check_stat b inbound.cx_active eq 0
    check_stat a outbound.cx_reset eq 0
    check_stat b inbound.cx_reset eq 0
    sidecar_down a
    sidecar_down b
done
tap_done
