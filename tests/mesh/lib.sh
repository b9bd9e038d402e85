# tests/mesh/lib.sh - netns "pods" on a bridge, real iptables from ringmesh-init, sidecars as
# uid 1337. Sourced by every tests/mesh/*.sh scenario and by deploy/demo.sh.
#
#   mesh_up                    hub netns + bridge for this run (skips the test if not root or
#                              if netns cannot be made); installs the teardown trap
#   pod NAME [IP]              a pod netns on the bridge (IP default 10.233.1.N)
#   host NAME [IP]             the same, but meant to stay outside the mesh (no init/sidecar)
#   pod_ip NAME                its address
#   pod_init NAME [flags]      ringmesh-init in the pod (log: $RM_TMP/NAME.init.log)
#   pod_init_cleanup NAME      ringmesh-init --cleanup
#   pod_sidecar NAME [flags]   start ringmesh-sidecar as uid/gid 1337, wait for /ready = 200
#   sidecar_pid NAME           pid of the pod's sidecar (empty if none)
#   sidecar_stop NAME [SIG] [TIMEOUT]   signal it (TERM) and wait for its exit (5 s)
#   sidecar_stat NAME KEY      one counter from /stats (empty if unreachable)
#   sidecar_stats NAME         all of /stats
#   pod_app NAME cmd...        a background server as uid 1000; sets RM_APP_PID, RM_APP_LOG
#   pod_hosts NAME "IP NAME..."...  /etc/hosts lines for the pod (ip netns exec mounts
#                              /etc/netns/<ns>/hosts over /etc/hosts; removed on exit)
#   wait_port NAME PORT        wait until something listens on PORT in the pod (5 s)
#   in_pod NAME cmd...         run a client as uid 1000 (bounded by RM_CMD_TIMEOUT, 60 s)
#   in_pod_root NAME cmd...    the same as root (curl to the admin port, ss, iptables-save)
#   tool ARGS...               shorthand for "$RM_PY $RM_TOOLS/tcptool.py ARGS..."
#   mesh_ios                   sets RM_IOS, the --io values to test: (uring epoll); RINGMESH_IO
#                              overrides; uring is dropped, with a skip, where it is disabled
#   wait_until SECS cmd...     poll cmd every 0.1 s until it succeeds; 1 on timeout
#   check_eq/check_ge/check_le NAME GOT WANT   TAP checks on integers
#
# Names are unique per run (rm<pid>-*), so runs never collide and the root netns is never
# touched: the bridge lives in the hub netns, each veth goes straight from the hub into its pod.
# Everything started here is killed and every netns deleted on exit, even after a failure;
# after a failure the sidecar and app logs are printed as TAP comments.

# Run directly (tests/run runs every tests/mesh/*.sh) it is a library: nothing to do.
[ "${BASH_SOURCE[0]}" = "$0" ] && exit 0

: "${RINGMESH_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${RINGMESH_BIN:=$RINGMESH_ROOT/bin}"
RINGMESH_BIN=$(realpath -m "$RINGMESH_BIN")
source "$RINGMESH_ROOT/tests/lib/tap.sh"

# Debian's python3: readable by uid 1000, unlike a pyenv shim under /root.
RM_PY=${RINGMESH_PYTHON:-/usr/bin/python3}
RM_TOOLS=$RINGMESH_ROOT/tests/tools
RM_APP_UID=${RM_APP_UID:-1000}
RM_PROXY_UID=1337
RM_CMD_TIMEOUT=${RM_CMD_TIMEOUT:-60}
RM_ID=rm$$
RM_HUB=$RM_ID-hub
RM_TMP=
RM_NEXT=1
RM_PIDS=()
RM_NETNS=()
declare -A RM_IP RM_NS RM_SIDECAR RM_SIDECAR_LOG

rm_log() { echo "# $*"; }

mesh_skip() { skip "$1"; tap_done; exit 0; }

mesh_up() {
    [ "$(id -u)" = 0 ] || mesh_skip "mesh tests need root"
    command -v ip >/dev/null || mesh_skip "no iproute2"
    command -v setpriv >/dev/null || mesh_skip "no setpriv"
    [ -x "$RM_PY" ] || mesh_skip "no $RM_PY"
    RM_TMP=$(mktemp -d /tmp/ringmesh-mesh.XXXXXX)
    chmod 755 "$RM_TMP"
    trap mesh_down EXIT
    trap 'exit 130' INT TERM
    trap 'exit 129' HUP
    # a reader that goes away (| head) must not kill us before the teardown: a SIGPIPE
    # death skips the EXIT trap and leaks the namespaces; ignored, writes just fail
    trap '' PIPE
    ip netns add "$RM_HUB" 2>/dev/null || mesh_skip "cannot create network namespaces"
    RM_NETNS+=("$RM_HUB")
    ip -n "$RM_HUB" link add br0 type bridge &&
        ip -n "$RM_HUB" link set br0 up &&
        ip -n "$RM_HUB" link set lo up || mesh_skip "cannot create a bridge in a netns"
}

mesh_require_bins() {
    local b
    for b in ringmesh-init ringmesh-sidecar; do
        if [ ! -x "$RINGMESH_BIN/$b" ]; then
            not_ok "binary $RINGMESH_BIN/$b exists (run make)"
            tap_done
            exit 1
        fi
    done
}

_mkns() { # NAME IP
    local name=$1 ip=${2:-} ns=$RM_ID-$1 idx=$RM_NEXT
    RM_NEXT=$((RM_NEXT + 1))
    [ -n "$ip" ] || ip=10.233.1.$((idx + 1))
    ip netns add "$ns" || return 1
    RM_NETNS+=("$ns")
    ip -n "$RM_HUB" link add "v$idx" type veth peer name eth0 netns "$ns" &&
        ip -n "$RM_HUB" link set "v$idx" master br0 up &&
        ip -n "$ns" link set lo up &&
        ip -n "$ns" addr add "$ip/24" dev eth0 &&
        ip -n "$ns" link set eth0 up || return 1
    RM_NS[$name]=$ns
    RM_IP[$name]=$ip
}
pod() { _mkns "$@" || { not_ok "create pod $1"; exit 1; }; }
host() { _mkns "$@" || { not_ok "create host $1"; exit 1; }; }
pod_ip() { echo "${RM_IP[$1]}"; }

pod_init() {
    local name=$1; shift
    ip netns exec "${RM_NS[$name]}" "$RINGMESH_BIN/ringmesh-init" "$@" \
        >>"$RM_TMP/$name.init.log" 2>&1
}
pod_init_cleanup() { pod_init "$1" --cleanup; }

pod_sidecar() {
    local name=$1; shift
    local ns=${RM_NS[$name]} log=$RM_TMP/$name.sidecar.log pid i code=
    echo "=== $(date +%T) ringmesh-sidecar $*" >>"$log"
    (
        ulimit -n 65536 2>/dev/null
        exec ip netns exec "$ns" setpriv --reuid $RM_PROXY_UID --regid $RM_PROXY_UID \
            --clear-groups -- "$RINGMESH_BIN/ringmesh-sidecar" "$@"
    ) >>"$log" 2>&1 &
    pid=$!
    RM_PIDS+=("$pid")
    RM_SIDECAR[$name]=$pid
    RM_SIDECAR_LOG[$name]=$log
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm_log "sidecar in $name exited during start-up; log:"
            sed 's/^/#   /' "$log" | tail -n 20
            return 1
        fi
        code=$(ip netns exec "$ns" curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
            http://127.0.0.1:15000/ready 2>/dev/null)
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    rm_log "sidecar in $name not ready after 10 s (last /ready: ${code:-none})"
    return 1
}

sidecar_pid() { echo "${RM_SIDECAR[$1]:-}"; }

# sidecar_stop NAME [SIG] [TIMEOUT_S]: 0 if it exited within the timeout
sidecar_stop() {
    local name=$1 sig=${2:-TERM} t=${3:-5} pid=${RM_SIDECAR[$1]:-} i
    [ -n "$pid" ] || return 0
    kill -"$sig" "$pid" 2>/dev/null
    for ((i = 0; i < t * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; RM_SIDECAR[$name]=; return 0; }
        sleep 0.1
    done
    return 1
}

sidecar_stats() {
    ip netns exec "${RM_NS[$1]}" curl -s --max-time 2 http://127.0.0.1:15000/stats
}
sidecar_stat() {
    sidecar_stats "$1" | awk -F': *' -v k="$2" '$1 == k { print $2; exit }'
}
# sidecar_rss_kb NAME: VmRSS of the sidecar in KiB
sidecar_rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/${RM_SIDECAR[$1]}/status" 2>/dev/null
}

pod_app() {
    local name=$1; shift
    RM_APP_LOG=$RM_TMP/$name.app.$RM_NEXT.log
    RM_NEXT=$((RM_NEXT + 1))
    echo "=== $(date +%T) $*" >"$RM_APP_LOG"
    (
        exec ip netns exec "${RM_NS[$name]}" setpriv --reuid "$RM_APP_UID" \
            --regid "$RM_APP_UID" --clear-groups -- "$@"
    ) >>"$RM_APP_LOG" 2>&1 &
    RM_APP_PID=$!
    RM_PIDS+=("$RM_APP_PID")
}

pod_hosts() {
    local name=$1 ns=${RM_NS[$1]}; shift
    mkdir -p "/etc/netns/$ns" && printf '127.0.0.1 localhost\n' >"/etc/netns/$ns/hosts" &&
        printf '%s\n' "$@" >>"/etc/netns/$ns/hosts" && chmod 644 "/etc/netns/$ns/hosts"
}

wait_port() {
    local ns=${RM_NS[$1]} port=$2 i
    for ((i = 0; i < 50; i++)); do
        ip netns exec "$ns" ss -Htln "sport = :$port" 2>/dev/null | grep -q . && return 0
        sleep 0.1
    done
    rm_log "nothing listens on $1:$port after 5 s"
    return 1
}

in_pod() {
    local name=$1; shift
    timeout -k 2 "$RM_CMD_TIMEOUT" ip netns exec "${RM_NS[$name]}" setpriv \
        --reuid "$RM_APP_UID" --regid "$RM_APP_UID" --clear-groups -- "$@"
}
in_pod_root() {
    local name=$1; shift
    timeout -k 2 "$RM_CMD_TIMEOUT" ip netns exec "${RM_NS[$name]}" "$@"
}
tool() { "$RM_PY" "$RM_TOOLS/tcptool.py" "$@"; }
# in-pod forms of tool, so callers need not spell the interpreter
pod_tool() { local n=$1; shift; in_pod "$n" "$RM_PY" "$RM_TOOLS/tcptool.py" "$@"; }
pod_tool_bg() { local n=$1; shift; pod_app "$n" "$RM_PY" "$RM_TOOLS/tcptool.py" "$@"; }

# mesh_ios: sets RM_IOS to the --io values to test, "uring epoll" by default (RINGMESH_IO
# overrides); uring is dropped with a TAP skip where the kernel disables io_uring.
mesh_ios() {
    local b
    RM_IOS=()
    for b in ${RINGMESH_IO:-uring epoll}; do
        if [ "$b" = uring ] && [ "$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)" != 0 ]; then
            skip "io_uring disabled here (kernel.io_uring_disabled); epoll only"
            continue
        fi
        RM_IOS+=("$b")
    done
}

wait_until() { # SECS may be fractional (0.5)
    local n i; n=$(awk -v t="$1" 'BEGIN { print int(t * 10 + 0.5) }'); shift
    for ((i = 0; i < n; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# check_q NAME cmd...: like check, but keeps cmd's output out of the TAP stream unless it fails
check_q() {
    local name=$1 out; shift
    if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "command failed: $*" "$out"; fi
}
# first_check NAME cmd...: check_q for the first transfer of a backend's round; when it fails
# it says so and returns 1, so the caller can skip the rest of that round instead of piling
# up timeouts behind a sidecar that relays nothing.
first_check() {
    local name=$1 out; shift
    if out=$("$@" 2>&1); then ok "$name"; return 0; fi
    not_ok "$name" "command failed: $*" "$out" \
        "(skipping the rest of this ${RM_LABEL:-round}: the first transfer failed)"
    return 1
}
# check_fails NAME cmd...: passes when cmd fails (for "this must not work" checks)
check_fails() {
    local name=$1; shift
    local out
    if out=$("$@" 2>&1); then not_ok "$name" "command succeeded: $*" "$out"; else ok "$name"; fi
}
check_eq() { if [ "${2:-x}" = "$3" ]; then ok "$1"; else not_ok "$1" "got '${2:-}', want $3"; fi; }
_num() { [[ "${1:-}" =~ ^[0-9]+$ ]]; }
check_ge() {
    if _num "$2" && [ "$2" -ge "$3" ]; then ok "$1"; else not_ok "$1" "got '${2:-}', want >= $3"; fi
}
check_le() {
    if _num "$2" && [ "$2" -le "$3" ]; then ok "$1"; else not_ok "$1" "got '${2:-}', want <= $3"; fi
}
# check_stats NAME POD KEY=WANT...: exact counter values, one check each
check_stats() {
    local label=$1 name=$2 kv stats; shift 2
    stats=$(sidecar_stats "$name")
    for kv in "$@"; do
        check_eq "$label: $name ${kv%%=*} = ${kv#*=}" \
            "$(awk -F': *' -v k="${kv%%=*}" '$1 == k { print $2; exit }' <<<"$stats")" "${kv#*=}"
    done
}

# check_stat POD KEY OP WANT [SECS]: one TAP check on a /stats counter; OP is eq, ge or le.
# Counters settle after the client has gone (the sidecar closes its side a moment later), so
# this polls up to SECS (3) for the condition before judging the last value it read.
check_stat() {
    local name=$1 key=$2 op=$3 want=$4 t=${5:-3} got i
    for ((i = 0; i <= t * 10; i++)); do
        got=$(sidecar_stat "$name" "$key")
        case $op in
        eq) [ "$got" = "$want" ] && break ;;
        ge) _num "$got" && [ "$got" -ge "$want" ] && break ;;
        le) _num "$got" && [ "$got" -le "$want" ] && break ;;
        esac
        sleep 0.1
    done
    "check_$op" "${RM_LABEL:+$RM_LABEL: }$name $key $op $want" "$got" "$want"
}

# The usual two-pod mesh: pods a (10.233.1.2) and b (10.233.1.3) with ringmesh-init run with
# $INIT_A / $INIT_B (default: no flags, i.e. ringmesh-init's defaults).
mesh_two_pods() {
    pod a 10.233.1.2
    pod b 10.233.1.3
    A=$(pod_ip a) B=$(pod_ip b)
    # shellcheck disable=SC2086
    check "ringmesh-init in pod a ${INIT_A:-}" pod_init a ${INIT_A:-}
    # shellcheck disable=SC2086
    check "ringmesh-init in pod b ${INIT_B:-}" pod_init b ${INIT_B:-}
}

# sidecar_up POD IO [flags]: start the pod's sidecar with --io IO; one TAP check that it came up
# and one that it runs the backend it was asked for.
sidecar_up() {
    local name=$1 io=$2 want; shift 2
    if ! pod_sidecar "$name" --io "$io" "$@"; then
        not_ok "${RM_LABEL:+$RM_LABEL: }sidecar in $name starts with --io $io $*"
        return 1
    fi
    want=$([ "$io" = uring ] && echo io_uring || echo "$io")
    check_eq "${RM_LABEL:+$RM_LABEL: }sidecar in $name runs server.io_backend $want" \
        "$(sidecar_stat "$name" server.io_backend)" "$want"
}

# sidecars_down: both of the usual two pods
sidecars_down() { sidecar_down a; sidecar_down b; }

# sidecar_down POD: SIGTERM, then SIGKILL if it has not gone within 8 s (noted as a failure).
sidecar_down() {
    [ -n "${RM_SIDECAR[$1]:-}" ] || return 0
    if ! sidecar_stop "$1" TERM 8; then
        not_ok "sidecar in $1 exits within 8 s of SIGTERM with no traffic"
        sidecar_stop "$1" KILL 2
    fi
}

mesh_down() {
    local rc=$? pid ns i name f
    trap - EXIT INT TERM HUP
    for pid in "${RM_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for ((i = 0; i < 20; i++)); do
        local alive=0
        for pid in "${RM_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pid in "${RM_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    # anything else still running inside our namespaces (clients that outlived a timeout)
    for ns in "${RM_NETNS[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    done
    if [ "$TAP_FAILED" -gt 0 ] || [ "$rc" -ne 0 ]; then
        if [ -n "$RM_TMP" ]; then
            for f in "$RM_TMP"/*.log; do
                [ -f "$f" ] || continue
                echo "# ---- $(basename "$f") (last 40 lines)"
                tail -n 40 "$f" | sed 's/^/#   /'
            done
        fi
    fi
    # pods first, the hub last (and their /etc/netns files, from pod_hosts)
    for ((i = ${#RM_NETNS[@]} - 1; i >= 0; i--)); do
        ip netns del "${RM_NETNS[$i]}" 2>/dev/null
        [ -d "/etc/netns/${RM_NETNS[$i]}" ] && rm -rf "/etc/netns/${RM_NETNS[$i]:?}"
    done
    [ -n "$RM_TMP" ] && [ -z "${RM_KEEP_LOGS:-}" ] && rm -rf "$RM_TMP"
    exit "$rc"
}
