#!/usr/bin/env bash
# The L4 sidecar on loopback (--static-dst stands in for iptables): transfer on both
# backends, the epoll fallback when seccomp forbids io_uring, connect failure, idle
# timeout, EMFILE, admin endpoints, bad flags, SIGTERM drain. Netns tests are in tests/mesh.
source "$(dirname "$0")/lib.sh"
integ_ports
bg hash tool hash-server "$P5"
wait_until 5 bash -c "ss -ltnH 'sport = :$P5' | grep -q ."

ios=(epoll uring)
if ! "$RINGMESH_BIN/ringmesh-sidecar" --io uring --help >/dev/null 2>&1; then :; fi

for io in "${ios[@]}"; do
    if ! sidecar_start "sc-$io" --io "$io" --static-dst "127.0.0.1:$P5"; then
        if [ "$io" = uring ] && grep -q "io_uring_setup" "$SC_LOG"; then
            skip "io_uring refused on this machine: $(grep -o 'io_uring_setup: .*' "$SC_LOG" | head -1)"
            continue
        fi
        not_ok "$io: sidecar starts"; continue
    fi
    check "$io: /stats names the backend" [ "$(stat server.io_backend)" = "$([ $io = uring ] && echo io_uring || echo epoll)" ]
    check "$io: 20 MiB through the sidecar arrive intact (sha256)" tool send 127.0.0.1 "$P0" 20971520
    check "$io: 8 parallel streams intact" tool send 127.0.0.1 "$P0" 1048576 --streams 8
    check "$io: bytes counted" [ "$(stat outbound.bytes_rx)" -ge $((20971520 + 8 * 1048576)) ]
    check "$io: connections closed after use" wait_until 5 [ "$(stat outbound.cx_active)" = 0 ]
    kill "$SC_PID"; wait_exit "$SC_PID" 5
done

# --- io_uring forbidden by seccomp: auto falls back to epoll, says why, still proxies
SC_WRAP="$RINGMESH_BUILD/tools/no_uring"
if sidecar_start sc-seccomp --static-dst "127.0.0.1:$P5"; then
    check "seccomp: falls back to epoll" [ "$(stat server.io_backend)" = epoll ]
    check "seccomp: one log line says why" grep -q "epoll, because io_uring is unavailable (io_uring_setup: Operation not permitted)" "$SC_LOG"
    check "seccomp: still proxies (4 MiB intact)" tool send 127.0.0.1 "$P0" 4194304
    check "seccomp: prometheus shows the backend" bash -c "curl -s http://127.0.0.1:$P3/stats/prometheus | grep -q 'ringmesh_io_backend{backend=\"epoll\"} 1'"
    kill "$SC_PID"; wait_exit "$SC_PID" 5
else
    not_ok "seccomp: sidecar starts with io_uring forbidden"
fi
"$SC_WRAP" "$RINGMESH_BIN/ringmesh-sidecar" --io uring --outbound-port "$P0" --inbound-port "$P1" \
    --admin-port "$P2" --stats-port "$P3" --health-port "$P4" >"$IT_TMP/forced.log" 2>&1
rc=$?
check "seccomp: --io uring refuses to start (exit 1)" [ "$rc" = 1 ]
check "seccomp: --io uring names the failing call" grep -q "io_uring_setup: Operation not permitted" "$IT_TMP/forced.log"
SC_WRAP=

# --- a relay fed small segments by a sender whose reader never reads must not take the
# worker's buffer pool (each segment used to hold a whole 16 KiB buffer): a second relay
# on the same worker still delivers, and the stalled one holds a few buffers, not hundreds.
# In a netns with small TCP send buffers, so the stall reaches the relay within seconds.
if [ "$(id -u)" = 0 ] && ip netns add "rm-starve-$$" 2>/dev/null; then
    NS="ip netns exec rm-starve-$$"
    $NS ip link set lo up
    $NS sysctl -qw net.ipv4.tcp_wmem="4096 8192 8192" net.ipv4.tcp_rmem="4096 8192 8192"
    for io in "${ios[@]}"; do
        bg "starve-sc-$io" $NS "$RINGMESH_BIN/ringmesh-sidecar" --io "$io" --concurrency 1 \
            --static-dst 127.0.0.1:18408 --outbound-port 18401 --inbound-port 18406 \
            --admin-port 18400 --stats-port 18490 --health-port 18421
        pid=$BG_PID
        if ! wait_until 5 $NS curl -sf -o /dev/null http://127.0.0.1:18400/ready; then
            skip "$io: sidecar in the netns did not start (io_uring refused?)"; kill "$pid"; continue
        fi
        out=$($NS python3 "$RINGMESH_ROOT/tests/integ/starve.py" 18408 18401 18400 120 4 | tr '\n' ' ')
        check "$io: small segments to a stalled reader: a second relay still delivers ($out)" \
            grep -q "second 12" <<<"$out"
        check "$io: the stalled relay holds at most 16 buffers ($out)" \
            bash -c "[ \$(awk '{print \$2}' <<<'$out') -le 16 ]"
        kill "$pid"; wait_exit "$pid" 5
    done
    ip netns del "rm-starve-$$"
else
    skip "small-segment starvation test needs root and a network namespace"
fi

# --- upstream down: the client sees a reset, the failure is counted
sidecar_start sc-fail --static-dst "127.0.0.1:$P6" --connect-timeout-ms 1000
check "connect failure: the client is reset, not hung" tool expect-reset 127.0.0.1 "$P0"
check "connect failure: cx_connect_fail counted" [ "$(stat outbound.cx_connect_fail)" = 1 ]
kill "$SC_PID"; wait_exit "$SC_PID" 5

# --- idle timeout closes a silent connection (and only then)
bg echo tool echo-server "$P6"
wait_until 5 bash -c "ss -ltnH 'sport = :$P6' | grep -q ."
sidecar_start sc-idle --static-dst "127.0.0.1:$P6" --idle-timeout-ms 500
out=$(tool hold 127.0.0.1 "$P0" 1 --hold 4 | tr '\n' ' ')
check "idle timeout: the connection worked, then the sidecar closed it ($out)" \
    bash -c "grep -q 'hold ok=1 closed=0' <<<'$out' && grep -q 'peer closed one' <<<'$out'"
check "idle timeout: counted" [ "$(stat outbound.cx_idle_timeout)" = 1 ]
kill "$SC_PID"; wait_exit "$SC_PID" 5

# --- EMFILE: with 64 descriptors, accept pauses instead of spinning, and recovers
bg sc-emfile bash -c "ulimit -n 64; exec '$RINGMESH_BIN/ringmesh-sidecar' --outbound-port $P0 --inbound-port $P1 \
    --admin-port $P2 --stats-port $P3 --health-port $P4 --concurrency 1 --static-dst 127.0.0.1:$P6"
SC_PID=$BG_PID
wait_until 5 ready
bg holder tool hold 127.0.0.1 "$P0" 40 --timeout 1 --hold 4
sleep 2
paused=$(stat listener.accept_paused)
check "EMFILE: accept paused (listener.accept_paused=$paused)" [ "${paused:-0}" -ge 1 ]
t0=$(awk '{print $14 + $15}' /proc/$SC_PID/stat); sleep 1; t1=$(awk '{print $14 + $15}' /proc/$SC_PID/stat)
check "EMFILE: no busy loop while paused (cpu ticks in 1 s: $((t1 - t0)))" [ $((t1 - t0)) -lt 50 ]
wait_until 8 bash -c "! kill -0 $BG_PID 2>/dev/null"
out=$(tool connect 127.0.0.1 "$P0" --timeout 3)
check "EMFILE: serves again once descriptors are free ($out)" [ "$out" = "connect ok" ]
kill "$SC_PID"; wait_exit "$SC_PID" 5

# --- admin API
sidecar_start sc-admin --static-dst "127.0.0.1:$P6"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
check "admin: /ready is 200 LIVE" [ "$(curl -s "http://127.0.0.1:$P2/ready")" = LIVE ]
check "admin: :health /healthz/ready is 200" [ "$(code "http://127.0.0.1:$P4/healthz/ready")" = 200 ]
check "admin: POST /ready is 405" [ "$(code -X POST "http://127.0.0.1:$P2/ready")" = 405 ]
check "admin: unknown path is 404" [ "$(code "http://127.0.0.1:$P2/nope")" = 404 ]
check "admin: /stats/prometheus on the stats port has TYPE lines" bash -c "curl -s http://127.0.0.1:$P3/stats/prometheus | grep -q '^# TYPE ringmesh_downstream_cx_total counter'"
check "admin: admin port is loopback only" bash -c "ss -ltnH 'sport = :$P2' | grep -q '127.0.0.1:$P2'"
check "admin: garbage request gets 400" bash -c "printf 'garbage\r\n\r\n' | timeout 3 socat -t2 - TCP:127.0.0.1:$P2 | head -1 | grep -q ' 400 '"

# idle connections to the network-facing ports must not hold up the readiness probe
cat >"$IT_TMP/idle.py" <<'PY'
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(int(sys.argv[2]))]
print("open", len(socks), flush=True)
time.sleep(float(sys.argv[3]))
PY
bg idle10 python3 "$IT_TMP/idle.py" "$P4" 10 5
wait_until 3 grep -q open "$IT_TMP/idle10.log"
check "admin: /healthz/ready answers within 1 s with 10 idle clients connected" \
    curl -sf --max-time 1 -o /dev/null "http://127.0.0.1:$P4/healthz/ready"
bg idle100 python3 "$IT_TMP/idle.py" "$P4" 100 5
wait_until 3 grep -q open "$IT_TMP/idle100.log"
check "admin: /healthz/ready answers with 100 idle clients connected (more than the 64 slots)" \
    curl -sf --max-time 1 -o /dev/null "http://127.0.0.1:$P4/healthz/ready"
check "admin: HEAD gets the head only" bash -c "out=\$(printf 'HEAD /ready HTTP/1.1\r\n\r\n' | timeout 3 socat -t2 - TCP:127.0.0.1:$P2); grep -q '200 OK' <<<\"\$out\" && ! grep -q LIVE <<<\"\$out\""

# a second sidecar (same uid) must not silently share the capture ports via SO_REUSEPORT
"$RINGMESH_BIN/ringmesh-sidecar" --outbound-port "$P0" --inbound-port "$P1" --admin-port "$P8" \
    --stats-port "$P9" --health-port "$P10" >"$IT_TMP/second.log" 2>&1
rc=$?
check "second sidecar on the same capture port: exit 1 naming the port" \
    bash -c "[ $rc = 1 ] && grep -q 'outbound listener on 0.0.0.0 port $P0: Address already in use' '$IT_TMP/second.log'"

# --- SIGTERM: readiness fails at once, the open connection keeps working, exit at the deadline
kill "$SC_PID"; wait_exit "$SC_PID" 5
sidecar_start sc-drain --static-dst "127.0.0.1:$P6" --drain-seconds 2
bg holder2 tool hold 127.0.0.1 "$P0" 1 --hold 10
wait_until 5 [ "$(stat outbound.cx_active)" = 1 ]
t0=$SECONDS
kill -TERM "$SC_PID"
sleep 0.3
check "drain: /ready is 503 DRAINING right after SIGTERM" [ "$(code "http://127.0.0.1:$P2/ready")" = 503 ]
out=$(tool connect 127.0.0.1 "$P0" --timeout 2)
check "drain: new connections are refused ($out)" [ "$out" = "connect refused" ]
check "drain: exits by the deadline" wait_exit "$SC_PID" 5
check "drain: did not exit before the deadline ($((SECONDS - t0)) s)" [ $((SECONDS - t0)) -ge 1 ]
check "drain: logged the deadline" grep -q "drain deadline: closing 1 connections" "$SC_LOG"

# --- a worker whose loop fails keeps the sidecar from ever being ready: it exits 1
RINGMESH_FAILPOINT=worker-loop "$RINGMESH_BIN/ringmesh-sidecar" --outbound-port "$P0" --inbound-port "$P1" \
    --admin-port "$P2" --stats-port "$P3" --health-port "$P4" --concurrency 2 >"$IT_TMP/failpoint.log" 2>&1
rc=$?
check "failed worker: exit 1" [ "$rc" = 1 ]
check "failed worker: says which worker failed" grep -q "worker 1 failed to start its loop" "$IT_TMP/failpoint.log"
check "failed worker: never said ready" bash -c "! grep -q 'ready:' '$IT_TMP/failpoint.log'"

# --- bad flags: exit 2, the flag named, nothing started
for args in "--io=kqueue|--io" "--outbound-port 70000|--outbound-port" "--buffers 100|--buffers" "--static-dst nowhere|--static-dst" "--bogus|--bogus"; do
    flags=${args%|*}; want=${args#*|}
    out=$("$RINGMESH_BIN/ringmesh-sidecar" $flags 2>&1); rc=$?
    check "bad flag '$flags': exit 2 naming $want ($out)" bash -c "[ $rc = 2 ] && grep -q -- '$want' <<<'$out'"
done
tap_done
