#!/usr/bin/env bash
# SIGTERM drains. With a connection mid-transfer: /ready (15000) and /healthz/ready (15021)
# turn 503 at once, server.state is DRAINING, new connections are refused, the open one
# completes intact, and the sidecar exits when it is done, well before --drain-seconds.
# With a connection that never finishes, the sidecar exits at the --drain-seconds deadline.
# Outbound (a's sidecar) and inbound (b's sidecar).
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
mesh_two_pods

pod_tool_bg b hash-server 9000; wait_port b 9000
pod_tool_bg b echo-server 9001; wait_port b 9001

ready_code() { # POD URL
    ip netns exec "${RM_NS[$1]}" curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$2"
}
now_ms() { date +%s%3N; }

# drain_busy POD: a 3 s paced transfer a -> b, SIGTERM POD's sidecar 1 s into it
drain_busy() {
    local who=$1 io=$2 pid send_pid send_log t0 t_exit t_done out rc
    sidecar_up a "$io" --drain-seconds 10 || return
    sidecar_up b "$io" --drain-seconds 10 || { sidecar_down a; return; }
    first_check "$io/$who: one connection relays" pod_tool a connect "$B" 9001 ||
        { sidecars_down; return; }
    pid=$(sidecar_pid "$who")
    pod_tool_bg a send "$B" 9000 3000000 --rate 1000000; send_log=$RM_APP_LOG send_pid=$RM_APP_PID
    check_stat "$who" "$([ "$who" = a ] && echo outbound || echo inbound).cx_active" eq 1 2
    sleep 1
    t0=$(now_ms)
    kill -TERM "$pid"
    check_q "$io/$who: /ready is 503 within 0.5 s of SIGTERM" \
        wait_until 0.5 bash -c "[ \$(ip netns exec ${RM_NS[$who]} curl -s -o /dev/null -w '%{http_code}' --max-time 1 http://127.0.0.1:15000/ready) = 503 ]"
    check_eq "$io/$who: /healthz/ready on 15021 is 503" \
        "$(ready_code "$who" "http://$(pod_ip "$who"):15021/healthz/ready")" 503
    check_eq "$io/$who: server.state" "$(sidecar_stat "$who" server.state)" DRAINING
    out=$(pod_tool a connect "$B" 9001 --timeout 2)
    check_fails "$io/$who: a new connection a -> b is not served while draining ($out)" \
        test "$out" = "connect ok"
    wait_until 10 bash -c "! kill -0 $send_pid 2>/dev/null"
    t_done=$(now_ms)
    check_q "$io/$who: the open transfer completed intact" grep -q "^send ok" "$send_log"
    wait_until 10 bash -c "! kill -0 $pid 2>/dev/null"
    t_exit=$(now_ms)
    rm_log "$io/$who: SIGTERM at 0, transfer done at $((t_done - t0)) ms, exit at $((t_exit - t0)) ms"
    check_fails "$io/$who: the sidecar exited" kill -0 "$pid"
    check_le "$io/$who: it exited within 1.5 s of its last connection (ms)" \
        $((t_exit - t_done)) 1500
    check_le "$io/$who: it exited before --drain-seconds 10 (ms)" $((t_exit - t0)) 9000
    wait "$pid" 2>/dev/null; rc=$?
    check_eq "$io/$who: exit status after a drain" "$rc" 0
    RM_SIDECAR[$who]=
    sidecar_down a
    sidecar_down b
}

# drain_stuck POD: one idle connection that never ends; --drain-seconds 3
drain_stuck() {
    local who=$1 io=$2 pid t0 t_exit hold_log
    sidecar_up a "$io" --drain-seconds 3 || return
    sidecar_up b "$io" --drain-seconds 3 || { sidecar_down a; return; }
    first_check "$io/$who: one connection relays" pod_tool a connect "$B" 9001 ||
        { sidecars_down; return; }
    pid=$(sidecar_pid "$who")
    pod_tool_bg a hold "$B" 9001 1 --hold 20; hold_log=$RM_APP_LOG
    wait_until 5 grep -q "^hold ok=1" "$hold_log"
    t0=$(now_ms)
    kill -TERM "$pid"
    wait_until 8 bash -c "! kill -0 $pid 2>/dev/null"
    t_exit=$(now_ms)
    rm_log "$io/$who: SIGTERM at 0, exit at $((t_exit - t0)) ms with a connection open"
    check_fails "$io/$who: the sidecar exited with a connection still open" kill -0 "$pid"
    check_ge "$io/$who: it waited for the drain deadline (ms)" $((t_exit - t0)) 2700
    check_le "$io/$who: it exited soon after the 3 s deadline (ms)" $((t_exit - t0)) 4500
    check_q "$io/$who: the held connection was closed" wait_until 3 grep -q "peer closed" "$hold_log"
    wait "$pid" 2>/dev/null
    RM_SIDECAR[$who]=
    sidecar_down a
    sidecar_down b
}

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    drain_busy a "$io"
    drain_busy b "$io"
    drain_stuck a "$io"
    drain_stuck b "$io"
done
tap_done
