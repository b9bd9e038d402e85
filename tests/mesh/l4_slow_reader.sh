#!/usr/bin/env bash
# Backpressure: a fast sender in a pushes up to 200 MB at b's app, which reads 4 KB a second.
# The sidecars must stop reading when the peer's queue is full (--buffer-bytes, 64 KiB by
# default), so after seconds of stall their RSS stays near the baseline and the sender is
# held back (it gets no further than the socket buffers along the path).
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
mesh_two_pods
RSS_GROWTH_KB=$((4 << 10))    # allowed RSS growth per sidecar under the stall (a 16 MiB
                              # --buffer-bytes grows ~8 MiB here; the default ~0)
SENT_MAX=$((64 << 20))        # socket buffers along the path are a few MB each; 200 MB is not

pod_tool_bg b slow-server 9100 4000; wait_port b 9100
pod_tool_bg b hash-server 9000; wait_port b 9000

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    sidecar_up a "$io" || continue
    sidecar_up b "$io" || { sidecar_down a; continue; }
    # warm up: cycle through every worker's receive-buffer pool (512 x 16 KiB a worker by
    # default) so the baseline includes them; 16 connections so SO_REUSEPORT spreads them
    # over all workers (4 once landed all on one worker: the other's 8 MiB pool was first
    # touched under the stall and looked like growth)
    first_check "$io: warm-up 16 x 4 MiB a -> b" pod_tool a send "$B" 9000 $((4 << 20)) --streams 16 ||
        { sidecars_down; continue; }
    rss_a0=$(sidecar_rss_kb a) rss_b0=$(sidecar_rss_kb b)
    rx0=$(sidecar_stat a outbound.bytes_rx)

    pod_tool_bg a blast "$B" 9100 200000000 6; blast_log=$RM_APP_LOG blast_pid=$RM_APP_PID
    sleep 5
    rss_a1=$(sidecar_rss_kb a) rss_b1=$(sidecar_rss_kb b)
    rm_log "$io: VmRSS a ${rss_a0} -> ${rss_a1} KiB, b ${rss_b0} -> ${rss_b1} KiB"
    check_le "$io: a's sidecar RSS growth (KiB) under a stalled 200 MB transfer" \
        $((rss_a1 - rss_a0)) $RSS_GROWTH_KB
    check_le "$io: b's sidecar RSS growth (KiB) under a stalled 200 MB transfer" \
        $((rss_b1 - rss_b0)) $RSS_GROWTH_KB
    check_stat a outbound.cx_active eq 1
    check_stat b inbound.cx_active eq 1
    check_stat b inbound.bytes_rx ge 4000
    wait_until 5 bash -c "! kill -0 $blast_pid 2>/dev/null"
    sent=$(awk '/^blast sent=/ { sub("blast sent=", ""); print }' "$blast_log")
    rm_log "$io: the sender pushed $sent bytes in 6 s"
    check_le "$io: the sender was held back (bytes sent in 6 s)" "$sent" $SENT_MAX
    check_stat a outbound.bytes_rx le $((${rx0:-0} + ${sent:-0}))
    # the sender has reset its connection (SO_LINGER 0) while both sidecars were paused on
    # it: they must notice and tear down both sides, not wait for the slow reader to drain
    rm_log "$io: after the sender's RST, both sidecars must drop the stalled connection"
    check_stat a outbound.cx_active eq 0
    check_stat b inbound.cx_active eq 0
    # the sidecars still serve after the stalled connection is reset
    check_q "$io: a -> b still works after the stall" pod_tool a send "$B" 9000 $((1 << 20))
    sidecar_down a
    sidecar_down b
done
tap_done
