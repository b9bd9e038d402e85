#!/usr/bin/env bash
# --max-connections 20: of 50 connections opened one after another, the first 20 relay and
# the other 30 are closed at once (counted in cx_overflow); while the 20 are held cx_active
# is 20; after they go, the sidecar serves again. Once on a's outbound, once on b's inbound.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
mesh_two_pods

pod_tool_bg b echo-server 9001; wait_port b 9001

# limited POD DIRECTION: the scenario with POD's sidecar limited to 20
limited() {
    local who=$1 dir=$2 io=$3 other hold_log out
    other=$([ "$who" = a ] && echo b || echo a)
    sidecar_up "$who" "$io" --max-connections 20 --concurrency 2 || return
    sidecar_up "$other" "$io" || { sidecar_down "$who"; return; }
    first_check "$io/$who: one connection relays" pod_tool a connect "$B" 9001 ||
        { sidecars_down; return; }
    sidecars_down
    # fresh sidecars so the counters hold only the burst
    sidecar_up "$who" "$io" --max-connections 20 --concurrency 2 || return
    sidecar_up "$other" "$io" || { sidecar_down "$who"; return; }
    pod_tool_bg a hold "$B" 9001 50 --timeout 1 --hold 4; hold_log=$RM_APP_LOG hold_pid=$RM_APP_PID
    wait_until 30 grep -q "^hold ok=" "$hold_log"
    out=$(grep "^hold ok=" "$hold_log")
    check_eq "$io/$who: 50 connections: 20 relay, 30 closed" "$out" "hold ok=20 closed=30 timeout=0"
    check_stat "$who" "$dir.cx_active" eq 20
    check_stat "$who" "$dir.cx_overflow" eq 30
    wait_until 10 bash -c "! kill -0 $hold_pid 2>/dev/null" # the holder lets go of its 20
    check_fails "$io/$who: the sidecar closed none of the 20 it took" grep "peer closed" "$hold_log"
    check_stat "$who" "$dir.cx_active" eq 0
    out=$(pod_tool a connect "$B" 9001)
    check_eq "$io/$who: after the burst a new connection relays" "$out" "connect ok"
    # that connection's close reaches the sidecar a moment after the client has gone: until
    # it has, it still counts against the 20
    check_stat "$who" "$dir.cx_active" eq 0
    out=$(pod_tool a hold "$B" 9001 20 --timeout 1)
    check_eq "$io/$who: 20 at once are fine again" "$out" "hold ok=20 closed=0 timeout=0"
    check_stat "$who" "$dir.cx_overflow" eq 30
    sidecar_down a
    sidecar_down b
}

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    limited a outbound "$io"
    limited b inbound "$io"
done
tap_done
