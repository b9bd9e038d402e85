# tests/integ/lib.sh - real binaries on loopback; sourced by tests/integ/*.sh.
#   integ_ports               picks a free-looking block of 12 ports: sets P0..P11
#   sidecar_start NAME [flags]  starts ringmesh-sidecar on P0..P4 (outbound, inbound, admin,
#                             stats, health) with extra flags; waits for /ready; sets SC_PID
#                             (runs under $SC_WRAP if set, e.g. the no_uring tool)
#   stat KEY                  one value from the running sidecar's /stats
#   bg NAME cmd...            a background process, killed on exit; its pid in BG_PID
#   tool ARGS...              tests/tools/tcptool.py
# Everything started is killed on exit; logs of a failed test are printed as TAP comments.
[ "${BASH_SOURCE[0]}" = "$0" ] && exit 0
: "${RINGMESH_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${RINGMESH_BIN:=$RINGMESH_ROOT/bin}"
: "${RINGMESH_BUILD:=$RINGMESH_ROOT/build}"
source "$RINGMESH_ROOT/tests/lib/tap.sh"
IT_TMP=$(mktemp -d /tmp/ringmesh-integ.XXXXXX)
IT_PIDS=()
SC_PID=
PY=${RINGMESH_PYTHON:-python3}

integ_down() {
    local p
    # children first: a background shell function's $! is a subshell, not the program
    for p in "${IT_PIDS[@]}"; do pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
    for p in "${IT_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [ "$TAP_FAILED" -gt 0 ]; then
        for f in "$IT_TMP"/*.log; do
            [ -f "$f" ] || continue
            echo "# --- $f"; tail -n 40 "$f" | sed 's/^/#   /'
        done
    fi
    rm -rf "$IT_TMP"
}
trap integ_down EXIT

integ_ports() {
    local base i
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        base=$((20000 + (RANDOM % 1000) * 12)) # below the ephemeral range (32768+)
        for i in 0 1 2 3 4 5 6 7 8 9 10 11; do
            ss -ltnH "sport = :$((base + i))" | grep -q . && continue 2
        done
        break
    done
    for i in 0 1 2 3 4 5 6 7 8 9 10 11; do eval "P$i=$((base + i))"; done
}

bg() {
    local name=$1; shift
    "$@" >"$IT_TMP/$name.log" 2>&1 &
    BG_PID=$!
    IT_PIDS+=("$BG_PID")
}

tool() { "$PY" "$RINGMESH_ROOT/tests/tools/tcptool.py" "$@"; }

wait_until() {
    local secs=$1 i; shift
    for ((i = 0; i < secs * 10; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}

ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P2/ready")" = 200 ]; }

sidecar_start() {
    local name=$1; shift
    bg "$name" ${SC_WRAP:-} "$RINGMESH_BIN/ringmesh-sidecar" --outbound-port "$P0" --inbound-port "$P1" \
        --admin-port "$P2" --stats-port "$P3" --health-port "$P4" --concurrency 2 "$@"
    SC_PID=$BG_PID
    SC_LOG=$IT_TMP/$name.log
    wait_until 5 ready
}

stat() { curl -s "http://127.0.0.1:$P2/stats" | awk -v k="$1:" '$1 == k { print $2 }'; }

# Waits for pid to exit (up to secs); 0 if it did.
wait_exit() {
    local pid=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    return 1
}
