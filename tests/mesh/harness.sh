#!/usr/bin/env bash
# The harness itself, without ringmesh: pods on the bridge reach each other, the TCP tools
# detect what they claim to detect (including failing when they should), and teardown leaves
# no netns and no process behind. If this fails, no other mesh test means anything.
source "$(dirname "$0")/lib.sh"
mesh_up
pod a 10.233.1.2
pod b 10.233.1.3
B=$(pod_ip b)


pod_tool_bg b hash-server 9000; wait_port b 9000
pod_tool_bg b echo-server 9001; wait_port b 9001
pod_tool_bg b rst-server 9002; wait_port b 9002
pod_tool_bg b watch-server 9003; watch_log=$RM_APP_LOG; wait_port b 9003
pod_tool_bg b fin-first-server 9004 100000; fin_log=$RM_APP_LOG; wait_port b 9004
pod_tool_bg b hash-server 9005; hash_log=$RM_APP_LOG; wait_port b 9005
pod_tool_bg b fin-first-server 9006 0; wait_port b 9006

out=$(pod_tool a connect "$B" 9001)
check_eq "a reaches b over the bridge" "$out" "connect ok"

check "app servers run as uid $RM_APP_UID" \
    bash -c "[ \"\$(ps -o uid= -p $RM_APP_PID | tr -d ' ')\" = $RM_APP_UID ]"
check_q "send: 8 MiB hash round trip" pod_tool a send "$B" 9000 $((8 << 20))
check_q "send: 4 parallel streams" pod_tool a send "$B" 9000 $((1 << 20)) --streams 4
# the hash check can fail: the echo server returns the data, not its digest
check_fails "send fails against a server that replies with the wrong thing" \
    pod_tool a send "$B" 9001 1000
check_q "expect-reset sees the RST from rst-server" pod_tool a expect-reset "$B" 9002
check_fails "expect-reset fails against a plain close (FIN, no RST)" \
    pod_tool a expect-reset "$B" 9006
check_q "rst-client sends its RST" pod_tool a rst-client "$B" 9003
check_q "watch-server saw the reset" wait_until 3 grep -q "watch result=reset" "$watch_log"
check_q "fin-first: client sees server FIN, then replies" pod_tool a fin-first-client "$B" 9004 100000
check "fin-first: server got the reply after its own FIN" \
    wait_until 3 grep -q "finfirst sent=100000 got=thanks result=eof" "$fin_log"
pod_tool a send "$B" 9005 10 >/dev/null
check_q "hash-server logs the peer address" wait_until 2 grep -q "peer=$(pod_ip a):" "$hash_log"
out=$(pod_tool a hold "$B" 9001 5)
check_eq "hold: 5 echo round trips" "$out" "hold ok=5 closed=0 timeout=0"
out=$(pod_tool a hold "$B" 9999 3 --timeout 1)
check_eq "hold: refused connections count as closed" "$out" "hold ok=0 closed=3 timeout=0"
out=$(pod_tool a connect "$B" 9999)
check_eq "connect reports refused" "$out" "connect refused"

# Teardown: a nested run that builds a pod, starts a process and exits with a failure must
# leave neither its namespaces nor its process behind.
inner=$(RM_KEEP_LOGS='' bash -c '
    source "'"$RINGMESH_ROOT"'/tests/mesh/lib.sh"
    mesh_up; pod x 10.233.1.9
    pod_app x sleep 300
    sleep 0.3
    echo "ID $RM_ID PID $RM_APP_PID"
    not_ok "deliberate failure"; tap_done' 2>&1)
inner_id=$(awk '/^ID /{print $2}' <<<"$inner")
inner_pid=$(awk '/^ID /{print $4}' <<<"$inner")
check "nested run reported its ids" test -n "$inner_id" -a -n "$inner_pid"
check "teardown deleted its namespaces" bash -c "! ip netns list | grep -q '^$inner_id-'"
check "teardown killed its processes" bash -c "! kill -0 $inner_pid 2>/dev/null"
if grep -q "^# ---- x.app" <<<"$inner"; then ok "teardown printed the logs after a failure"
else not_ok "teardown printed the logs after a failure" "$inner"; fi
tap_done
