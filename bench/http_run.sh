#!/usr/bin/env bash
# bench/http_run.sh - the HTTP benchmark (bench/run.sh http, or make bench after the L4 one;
# by hand, as root; never a test).
#
# 1 KiB requests and responses, req/s and latency, through a sidecar pair against direct,
# HTTP/1.1 and HTTP/2 (h2c prior knowledge), in one run. Two netns pods on the tests/mesh
# bridge: a (client: h2load) and b (origin: one-thread haproxy, bench/haproxy-origin.cfg,
# answering everything with 200 and 1 KiB). Configurations, interleaved per repetition so
# that drift on the machine hits them alike:
#   direct    no iptables: a's h2load -> b's pod address, the origin's ports
#   uring     ringmesh-init in both pods, sidecars --io uring; h2load -> Service VIP
#             10.96.0.60, whose ports say appProtocol http (:80) and h2c (:81)
#   uring-l4  the same sidecars and rules; h2load -> Service VIP 10.96.0.61, the same origin
#             (on ports of its own) with appProtocol tcp: the L4 relay baseline
#   uring-mtls  a second io_uring pair, both sidecars with --cert-dir (mTLS between them:
#             HTTP/2 over TLS 1.3, ChaCha20-Poly1305; credentials from bin/ringmeshctl ca
#             init/issue, workloads default/client in a and default/origin in b, owned by
#             uid 1337); h2load -> Service VIP 10.96.0.60 as for uring
#   epoll, epoll-l4, epoll-mtls   the same with --io epoll
# Every sidecar pair stays up for the whole run on its own ports (uring 15001/15006, epoll
# 15101/15106, uring-mtls 15201/15206, epoll-mtls 15301/15306) with --config holding the
# Services and their EndpointSlices; switching configuration is one ringmesh-init rerun per
# pod (bench/run.sh does the same).
# Tests per configuration and repetition, BENCH_HTTP_SECONDS each: h1get / h1post (h2load
# --h1, BENCH_H1_CONNS connections) and h2get / h2post (BENCH_H2_CONNS connections x
# BENCH_H2_STREAMS streams); GET carries a 1 KiB response, POST a 1 KiB body both ways.
# h1get64k / h2get64k: the same GETs of a 64 KiB response (throughput: req/s x 64 KiB),
# served by a second one-thread haproxy in pod b (the same bench/haproxy-origin.cfg with a
# 64 KiB $ORIGIN_BODY, its own ports and tune.bufsize raised so the body fits a buffer) behind
# Service VIP 10.96.0.62 (appProtocol http/h2c); not run on the L4 relay configurations.
#
# CPUs as in bench/run.sh: pod a (h2load, a's sidecars) on CPU 0, pod b (haproxy, b's
# sidecars) on CPU 1, sidecars with one worker. Also as there: private copies of the
# binaries, runs redone when processes outside the pods load the CPUs (BENCH_OTHER_MAX), a
# sidecar that died (crash or kill) restarted and its run redone; a run whose sidecar died in
# all 4 attempts is reported as not measured, and the benchmark goes on.
#
# Latency percentiles come from h2load's --log-file (one line per request, on tmpfs). No
# --warm-up-time: sidecar CPU per request needs the requests and the CPU ticks over the same
# interval, and the connections are set up once per run (a few of ~100k requests).
#
# Writes bench/results/<date>-http.md (tables + machine) and <date>-http.jsonl (every raw run).
# Knobs: BENCH_HTTP_SECONDS (3), BENCH_REPS (3), BENCH_HTTP_TESTS ("h1get h1post h2get
# h2post h1get64k h2get64k"), BENCH_HTTP_L4 (1; 0 drops the L4 relay configurations),
# BENCH_HTTP_L4_TESTS ("h1get h2get": the tests of BENCH_HTTP_TESTS the L4 relay
# configurations run; "h1get h1post h2get h2post" for the POSTs too; never the 64k ones),
# BENCH_HTTP_MTLS (1; 0 drops the mTLS configurations), BENCH_HTTP_IOS ("uring epoll"; one of
# them drops the other backend's configurations), BENCH_H1_CONNS (8), BENCH_H2_CONNS (4),
# BENCH_H2_STREAMS (10), BENCH_OUT (results dir), BENCH_OTHER_MAX (10).
# The defaults (7 configurations, 6 tests, 2 on the L4 ones: 34 runs of 3 s per repetition,
# about 4.3 s each with the bookkeeping: 2.5 minutes a repetition) take about 7.5 minutes
# with 3 repetitions; runs redone for load from outside add to that (6 s each).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
RINGMESH_ROOT=$(cd "$HERE/.." && pwd)
: "${RINGMESH_BIN:=$RINGMESH_ROOT/bin}"
RINGMESH_BIN=$(realpath -m "$RINGMESH_BIN")
SECS=${BENCH_HTTP_SECONDS:-3}
REPS=${BENCH_REPS:-3}
read -r -a TESTS <<<"${BENCH_HTTP_TESTS:-h1get h1post h2get h2post h1get64k h2get64k}"
H1_CONNS=${BENCH_H1_CONNS:-8}
H2_CONNS=${BENCH_H2_CONNS:-4}
H2_STREAMS=${BENCH_H2_STREAMS:-10}
OUT=${BENCH_OUT:-$HERE/results}
CPU_A=0
CPU_B=1
DATE=$(date +%F)
# the origin's ports: HTTP/1.1 and h2c for the http/h2c Service (and direct), and a second
# pair for the tcp (L4 relay) Service, so the two Services never share an endpoint
ORIGIN_H1=8080 ORIGIN_H2=8081 ORIGIN_H1_L4=8090 ORIGIN_H2_L4=8091
# the 64 KiB origin (its L4 pair of ports is bound but not used)
O64_H1=8180 O64_H2=8181 O64_H1_L4=8190 O64_H2_L4=8191
VIP=10.96.0.60
VIP_L4=10.96.0.61
VIP_64K=10.96.0.62
BODY_LEN=1024
BODY64_LEN=65536

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (netns pods, iptables): sudo bench/run.sh http"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (pods a and b are pinned to CPUs $CPU_A and $CPU_B)"
for b in "$RINGMESH_BIN/ringmesh-sidecar" "$RINGMESH_BIN/ringmesh-init" "$RINGMESH_BIN/ringmeshctl"; do
    [ -x "$b" ] || die "$b missing: run make"
done
for c in taskset python3 curl h2load haproxy; do
    command -v $c >/dev/null || die "needs $c (make deps)"
done
read -r -a L4_TESTS <<<"${BENCH_HTTP_L4_TESTS:-h1get h2get}"
for t in "${TESTS[@]}"; do
    case $t in h1get | h1post | h2get | h2post | h1get64k | h2get64k) ;; *) die "unknown test '$t'" ;; esac
done

# shellcheck source=../tests/mesh/lib.sh
source "$RINGMESH_ROOT/tests/mesh/lib.sh"
RM_CMD_TIMEOUT=$((SECS + 30))
mesh_up
# h2load's per-request logs go to tmpfs (a write(2) per request; on disk it costs the client
# several times more); the directory goes with the run, failed or not.
SHM=$(mktemp -d /dev/shm/ringmesh-bench.XXXXXX) || die "cannot make a directory in /dev/shm"
chown "$RM_APP_UID" "$SHM"
trap 'rc=$?; rm -rf "$SHM"; (exit $rc); mesh_down' EXIT
# Run private copies: other people's "make" in this tree must not swap binaries mid-run.
mkdir -p "$RM_TMP/bin" && chmod 755 "$RM_TMP/bin" &&
    cp "$RINGMESH_BIN/ringmesh-sidecar" "$RINGMESH_BIN/ringmesh-init" "$RINGMESH_BIN/ringmeshctl" \
        "$RM_TMP/bin/" ||
    die "cannot copy the binaries to $RM_TMP/bin"
RINGMESH_BIN=$RM_TMP/bin

say() { printf '[bench %s] %s\n' "$(date +%T)" "$*"; }

# ---- sidecars (as bench/run.sh's, plus --config and --pod-ip) --------------------------

# bench_sidecar POD ENGINE CPU ADMIN OUT IN STATS HEALTH: like pod_sidecar, pinned to CPU, with
# its own ports, so several pairs can run side by side. ENGINE is uring or epoll (--io), with
# -mtls: --cert-dir $CERTS/POD. The pid is the sidecar's own (ip netns exec, taskset and
# setpriv all exec), so /proc/PID is the sidecar.
declare -A SC_PID SC_ADMIN
bench_sidecar() {
    local name=$1 eng=$2 cpu=$3 admin=$4 out=$5 in=$6 stats=$7 health=$8
    local ns=${RM_NS[$name]} log=$RM_TMP/$name.$2.sidecar.log pid i code= io=${2%-mtls} tls=()
    [ "$eng" = "$io" ] || tls=(--cert-dir "$CERTS/$name")
    (
        ulimit -n 65536 2>/dev/null
        exec ip netns exec "$ns" taskset -c "$cpu" setpriv --reuid $RM_PROXY_UID \
            --regid $RM_PROXY_UID --clear-groups -- "$RINGMESH_BIN/ringmesh-sidecar" \
            --io "$io" --concurrency 1 --outbound-port "$out" --inbound-port "$in" \
            --admin-port "$admin" --stats-port "$stats" --health-port "$health" \
            --config "$CFG" --pod-name "origin-$name" --pod-ip "$(pod_ip "$name")" "${tls[@]}"
    ) >>"$log" 2>&1 &
    pid=$!
    RM_PIDS+=("$pid")
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || { sed 's/^/  /' "$log"; die "sidecar $name/$eng exited"; }
        code=$(ip netns exec "$ns" curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
            "http://127.0.0.1:$admin/ready" 2>/dev/null)
        [ "$code" = 200 ] && break
        sleep 0.1
    done
    [ "$code" = 200 ] || die "sidecar $name/$eng not ready after 10 s"
    [ "$(cat "/proc/$pid/comm")" = ringmesh-sideca ] || die "pid $pid is not the sidecar"
    SC_PID[$name.$eng]=$pid
    SC_ADMIN[$name.$eng]=$admin
}

bench_stats() { # POD ENGINE
    ip netns exec "${RM_NS[$1]}" curl -s --max-time 2 "http://127.0.0.1:${SC_ADMIN[$1.$2]}/stats"
}
bench_stat() { bench_stats "$1" "$2" | awk -F': *' -v k="$3" '$1 == k { print $2; exit }'; }
# utime + stime of every thread, in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# "busy steal total" jiffies of one CPU
cpu_line() { awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= 9; i++) t += $i;
    print t - $5 - $6 - $9, $9, t }' /proc/stat; }

# the sidecar pair a configuration runs on: uring-l4 -> uring; uring-mtls stays itself
io_of() { echo "${1%-l4}"; }
# ports of an engine's pair: admin outbound inbound stats health
eng_ports() {
    case $1 in
    uring) echo 15000 15001 15006 15090 15021 ;;
    epoll) echo 15100 15101 15106 15190 15121 ;;
    uring-mtls) echo 15200 15201 15206 15290 15221 ;;
    epoll-mtls) echo 15300 15301 15306 15390 15321 ;;
    esac
}
use_config() { # direct | uring[-l4|-mtls] | epoll[-l4|-mtls]
    local p ports
    [ "$1" = direct ] && { pod_init_cleanup a && pod_init_cleanup b; return; }
    read -r -a ports <<<"$(eng_ports "$(io_of "$1")")"
    for p in a b; do pod_init $p -p "${ports[1]}" -z "${ports[2]}" || return 1; done
}

# ---- the pods, the config, the origin ------------------------------------------------

pod a 10.233.1.2
pod b 10.233.1.3
B=$(pod_ip b)
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0 # the client reaches VIPs through its route
mkdir -p "$OUT"
RAW=$OUT/$DATE-http.jsonl
MD=$OUT/$DATE-http.md
: >"$RAW"

CFG=$RM_TMP/mesh.yaml
svc() { # NAME VIP H1_PROTO H1_PORT H2_PROTO H2_PORT
    printf 'apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\n' "$1"
    printf 'spec:\n  clusterIP: %s\n  ports:\n' "$2"
    printf '  - {name: h1, port: 80, targetPort: %s, appProtocol: %s}\n' "$4" "$3"
    printf '  - {name: h2, port: 81, targetPort: %s, appProtocol: %s}\n---\n' "$6" "$5"
    printf 'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n'
    printf 'metadata: {name: %s-1, namespace: default, labels: {kubernetes.io/service-name: %s}}\n' "$1" "$1"
    printf 'addressType: IPv4\nports: [{name: h1, port: %s}, {name: h2, port: %s}]\n' "$4" "$6"
    printf 'endpoints:\n- {addresses: [%s]}\n' "$B"
}
{
    svc origin "$VIP" http $ORIGIN_H1 h2c $ORIGIN_H2
    printf -- '---\n'
    svc origin-l4 "$VIP_L4" tcp $ORIGIN_H1_L4 tcp $ORIGIN_H2_L4
    printf -- '---\n'
    svc origin-64k "$VIP_64K" http $O64_H1 h2c $O64_H2
} >"$CFG"
chmod 644 "$CFG"

# mTLS credentials: one root, workload default/client for pod a's sidecars and default/origin
# for pod b's, in the --cert-dir layout, owned by the sidecars' uid (key.pem is 0600)
CERTS=$RM_TMP/certs
MTLS=${BENCH_HTTP_MTLS:-1}
if [ "$MTLS" != 0 ]; then
    mkdir -p "$CERTS" && chmod 755 "$CERTS"
    { "$RINGMESH_BIN/ringmeshctl" ca init --dir "$CERTS/root" &&
        "$RINGMESH_BIN/ringmeshctl" ca issue --dir "$CERTS/root" --ns default --sa client \
            --out "$CERTS/a" &&
        "$RINGMESH_BIN/ringmeshctl" ca issue --dir "$CERTS/root" --ns default --sa origin \
            --out "$CERTS/b" &&
        chown -R "$RM_PROXY_UID:$RM_PROXY_UID" "$CERTS/a" "$CERTS/b" &&
        chmod 700 "$CERTS/a" "$CERTS/b"; } >"$RM_TMP/ringmeshctl.log" 2>&1 ||
        { cat "$RM_TMP/ringmeshctl.log"; die "cannot make the mTLS credentials"; }
fi

head -c $BODY_LEN /dev/zero | tr '\0' x >"$RM_TMP/body-1k" && chmod 644 "$RM_TMP/body-1k"
export ORIGIN_H1 ORIGIN_H2 ORIGIN_H1_L4 ORIGIN_H2_L4 ORIGIN_BODY=$RM_TMP/body-1k
cp "$HERE/haproxy-origin.cfg" "$RM_TMP/" && chmod 644 "$RM_TMP/haproxy-origin.cfg"
pod_app b taskset -c $CPU_B haproxy -db -f "$RM_TMP/haproxy-origin.cfg"
ORIGIN_PID=$RM_APP_PID
ORIGIN_LOG=$RM_APP_LOG
for p in $ORIGIN_H1 $ORIGIN_H2 $ORIGIN_H1_L4 $ORIGIN_H2_L4; do
    wait_port b "$p" || { cat "$ORIGIN_LOG"; die "haproxy did not start"; }
done
# one request each way before anything is measured: the origin answers 1 KiB
got=$(in_pod a curl -s --max-time 5 "http://$B:$ORIGIN_H1/" | wc -c)
[ "$got" = $BODY_LEN ] || die "origin answered $got bytes over HTTP/1.1, want $BODY_LEN"
got=$(in_pod a curl -s --max-time 5 --http2-prior-knowledge -d @"$ORIGIN_BODY" \
    "http://$B:$ORIGIN_H2/" | wc -c)
[ "$got" = $BODY_LEN ] || die "origin answered $got bytes over h2c, want $BODY_LEN"

# the 64 KiB origin, when a 64k test is asked for: the same config, its own ports and body,
# and a global section in front that makes a buffer big enough for the body
if [[ " ${TESTS[*]} " == *64k* ]]; then
    head -c $BODY64_LEN /dev/zero | tr '\0' y >"$RM_TMP/body-64k" && chmod 644 "$RM_TMP/body-64k"
    printf 'global\n    tune.bufsize 131072\n' >"$RM_TMP/haproxy-64k.cfg"
    chmod 644 "$RM_TMP/haproxy-64k.cfg"
    pod_app b env ORIGIN_H1=$O64_H1 ORIGIN_H2=$O64_H2 ORIGIN_H1_L4=$O64_H1_L4 \
        ORIGIN_H2_L4=$O64_H2_L4 ORIGIN_BODY="$RM_TMP/body-64k" taskset -c $CPU_B \
        haproxy -db -f "$RM_TMP/haproxy-64k.cfg" -f "$RM_TMP/haproxy-origin.cfg"
    ORIGIN64_PID=$RM_APP_PID
    ORIGIN64_LOG=$RM_APP_LOG
    for p in $O64_H1 $O64_H2; do
        wait_port b "$p" || { cat "$ORIGIN64_LOG"; die "the 64 KiB haproxy did not start"; }
    done
    got=$(in_pod a curl -s --max-time 5 "http://$B:$O64_H1/" | wc -c)
    [ "$got" = $BODY64_LEN ] || die "64 KiB origin answered $got bytes over HTTP/1.1"
    got=$(in_pod a curl -s --max-time 5 --http2-prior-knowledge "http://$B:$O64_H2/" | wc -c)
    [ "$got" = $BODY64_LEN ] || die "64 KiB origin answered $got bytes over h2c"
else
    ORIGIN64_PID=
fi

read -r -a IOS <<<"${BENCH_HTTP_IOS:-uring epoll}"
for io in "${IOS[@]}"; do
    case $io in uring | epoll) ;; *) die "BENCH_HTTP_IOS: unknown backend '$io'" ;; esac
done
if [ "$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)" != 0 ] &&
    [[ " ${IOS[*]} " == *" uring "* ]]; then
    say "io_uring disabled here (kernel.io_uring_disabled): epoll only"; IOS=(epoll)
fi
# the sidecar pairs: one per backend, and one more with --cert-dir (mTLS) unless BENCH_HTTP_MTLS=0
ENGINES=()
for io in "${IOS[@]}"; do
    ENGINES+=("$io")
    [ "$MTLS" = 0 ] || ENGINES+=("$io-mtls")
done
# pair_up ENGINE: start whichever of the pair's two sidecars is not running
pair_up() {
    local eng=$1 io=${1%-mtls} ports p cpu got
    read -r -a ports <<<"$(eng_ports "$eng")"
    for p in a b; do
        [ -n "${SC_PID[$p.$eng]:-}" ] && kill -0 "${SC_PID[$p.$eng]}" 2>/dev/null && continue
        cpu=$([ $p = a ] && echo $CPU_A || echo $CPU_B)
        bench_sidecar $p "$eng" "$cpu" "${ports[@]}"
        got=$(bench_stat $p "$eng" server.io_backend)
        [ "$got" = "$([ "$io" = uring ] && echo io_uring || echo epoll)" ] ||
            die "sidecar $p asked for --io $io runs '$got'"
        got=$(bench_stat $p "$eng" tls.enabled)
        [ "${got:-0}" = "$([ "$eng" = "$io" ] && echo 0 || echo 1)" ] ||
            die "sidecar $p ($eng) has tls.enabled '$got'"
        say "sidecar $p $eng up: pid ${SC_PID[$p.$eng]} (CPU $cpu)"
    done
}
# pair_alive IO: both running; otherwise says which one went, how, and the end of its log
# (DEATH keeps the last "pod: how" for the record)
pair_alive() {
    local io=$1 p ok=0 st how
    for p in a b; do
        kill -0 "${SC_PID[$p.$io]}" 2>/dev/null && continue
        wait "${SC_PID[$p.$io]}" 2>/dev/null
        st=$?
        how="exit status $st"
        [ "$st" -gt 128 ] && how="killed by SIG$(kill -l $((st - 128)) 2>/dev/null)"
        say "sidecar $p --io $io (pid ${SC_PID[$p.$io]}) is gone ($how); its log ends:"
        tail -n 3 "$RM_TMP/$p.$io.sidecar.log" | sed 's/^/    /'
        DEATH="$p: $how, log: $(tail -n 1 "$RM_TMP/$p.$io.sidecar.log" | tr -d '"\\')"
        RESTARTS=$((RESTARTS + 1))
        ok=1
    done
    return $ok
}
RESTARTS=0 DEATH=
for eng in "${ENGINES[@]}"; do pair_up "$eng"; done
CONFIGS=(direct)
for io in "${IOS[@]}"; do
    CONFIGS+=("$io")
    [ "${BENCH_HTTP_L4:-1}" = 0 ] || CONFIGS+=("$io-l4")
    [ "$MTLS" = 0 ] || CONFIGS+=("$io-mtls")
done

# measure CONFIG TEST REP: one h2load run; appends one JSON record to $RAW. A run during which
# processes outside the pods used more than OTHER_MAX % of one core, or a sidecar died, is
# done again (up to 4 attempts; the last is kept either way and the report shows the load).
# A run whose sidecar died in all 4 is recorded as not measured (with how it died) and the
# benchmark goes on: an engine that crashes on one protocol still gets the others measured.
OTHER_MAX=${BENCH_OTHER_MAX:-10}
measure() {
    local cfg=$1 test=$2 rep=$3 attempt rec ticks io rc
    io=$(io_of "$cfg")
    for attempt in 1 2 3 4; do
        kill -0 "$ORIGIN_PID" 2>/dev/null || { cat "$ORIGIN_LOG"; die "the origin in pod b is gone"; }
        [ -z "$ORIGIN64_PID" ] || kill -0 "$ORIGIN64_PID" 2>/dev/null ||
            { cat "$ORIGIN64_LOG"; die "the 64 KiB origin in pod b is gone"; }
        [ "$cfg" = direct ] || pair_up "$io"
        rec=$(measure_once "$cfg" "$test" "$rep" "$attempt")
        rc=$?
        if [ "$cfg" != direct ] && ! pair_alive "$io"; then
            if [ "$attempt" = 4 ]; then
                say "rep $rep $cfg $test: a sidecar died in each of 4 attempts; not measured"
                rec=$(printf '{"config":"%s","test":"%s","rep":%s,"error":"sidecar %s"}' \
                    "$cfg" "$test" "$rep" "$DEATH")
                echo "$rec" >>"$RAW"
                return 0
            fi
            say "rep $rep $cfg $test: a sidecar died during the run (not by us); again"
            continue
        fi
        [ "$rc" = 0 ] || die "$cfg $test: h2load failed (its output is above)"
        ticks=$(sed 's/.*"foreign_ticks":\([0-9]*\).*/\1/' <<<"$rec")
        if [ "$attempt" = 4 ] || [ $((ticks * 100)) -le $((OTHER_MAX * SECS * CLK_TCK)) ]; then
            break
        fi
        say "rep $rep $cfg $test: other processes used $((ticks * 100 / (SECS * CLK_TCK)))% of a core; again"
        sleep 2
    done
    echo "$rec" >>"$RAW"
    python3 "$HERE/http_report.py" --progress "$rec"
}
CLK_TCK=$(getconf CLK_TCK)
NETNS_LIST=$(IFS=,; echo "${RM_NETNS[*]}")

measure_once() {
    local cfg=$1 test=$2 rep=$3 attempt=$4 io host port args conns streams body=0 resp=$BODY_LEN
    local ta0=0 tb0=0 ta1=0 tb1=0 ca0 ca1 cb0 cb1 fticks log=$SHM/h2load.log T=$RM_TMP/run
    io=$(io_of "$cfg")
    case $cfg in
    direct) host=$B ;;
    *-l4) host=$VIP_L4 ;;
    *) host=$VIP ;;
    esac
    case $test in
    h1*) args=(--h1 -c "$H1_CONNS") conns=$H1_CONNS streams=1
        port=$([ "$cfg" = direct ] && echo $ORIGIN_H1 || echo 80) ;;
    h2*) args=(-c "$H2_CONNS" -m "$H2_STREAMS") conns=$H2_CONNS streams=$H2_STREAMS
        port=$([ "$cfg" = direct ] && echo $ORIGIN_H2 || echo 81) ;;
    esac
    case $test in
    *64k) # the 64 KiB origin: its own ports direct, its own Service through the sidecars
        resp=$BODY64_LEN
        [ "$cfg" = direct ] || host=$VIP_64K
        [ "$cfg" != direct ] || port=$([ "${test:0:2}" = h1 ] && echo $O64_H1 || echo $O64_H2) ;;
    esac
    case $test in *post) args+=(-d "$ORIGIN_BODY") body=$BODY_LEN ;; esac
    rm -f "$log"
    if [ "$cfg" != direct ]; then
        bench_stats a "$io" >"$T.a0" && bench_stats b "$io" >"$T.b0"
        ta0=$(cpu_ticks "${SC_PID[a.$io]}") tb0=$(cpu_ticks "${SC_PID[b.$io]}")
    fi
    python3 "$HERE/l4_report.py" --snap "$NETNS_LIST" >"$T.snap0"
    read -r -a ca0 < <(cpu_line $CPU_A)
    read -r -a cb0 < <(cpu_line $CPU_B)
    in_pod a taskset -c $CPU_A h2load "${args[@]}" -D "$SECS" --log-file "$log" \
        "http://$host:$port/" >"$T.out" 2>&1
    read -r -a ca1 < <(cpu_line $CPU_A)
    read -r -a cb1 < <(cpu_line $CPU_B)
    if [ "$cfg" != direct ]; then
        ta1=$(cpu_ticks "${SC_PID[a.$io]}") tb1=$(cpu_ticks "${SC_PID[b.$io]}")
    fi
    python3 "$HERE/l4_report.py" --snap "$NETNS_LIST" >"$T.snap1"
    fticks=$(python3 "$HERE/l4_report.py" --foreign "$T.snap0" "$T.snap1")
    if [ "$cfg" != direct ]; then
        sleep 0.2 # the last relays close just after the client has gone
        bench_stats a "$io" >"$T.a1" && bench_stats b "$io" >"$T.b1"
    else
        : >"$T.a0"; : >"$T.a1"; : >"$T.b0"; : >"$T.b1"
    fi
    if ! grep -q '^finished in' "$T.out"; then
        echo "bench: $cfg $test: h2load said:" >&2
        tail -n 20 "$T.out" | sed 's/^/    /' >&2
        return 1
    fi
    python3 "$HERE/http_report.py" --record --config "$cfg" --test "$test" --rep "$rep" \
        --attempt "$attempt" --foreign-ticks "${fticks:-0}" \
        --ticks-a $((ta1 - ta0)) --ticks-b $((tb1 - tb0)) \
        --cpu-a "$((ca1[0] - ca0[0])) $((ca1[1] - ca0[1])) $((ca1[2] - ca0[2]))" \
        --cpu-b "$((cb1[0] - cb0[0])) $((cb1[1] - cb0[1])) $((cb1[2] - cb0[2]))" \
        --stats-a "$T.a0" "$T.a1" --stats-b "$T.b0" "$T.b1" \
        --h2load-out "$T.out" --h2load-log "$log" --url "http://$host:$port/" \
        --conns "$conns" --streams "$streams" --body-len "$body" --resp-len "$resp"
    local rc=$?
    rm -f "$log"
    return $rc
}

say "pods a=$(pod_ip a) (CPU $CPU_A) b=$B (CPU $CPU_B); ${SECS}s per run, $REPS reps," \
    "configs: ${CONFIGS[*]}; tests: ${TESTS[*]}; raw runs -> $RAW"
cur=
for ((rep = 1; rep <= REPS; rep++)); do
    for cfg in "${CONFIGS[@]}"; do
        # uring and uring-l4 share sidecars and rules: switch only when the backend changes
        if [ "$(io_of "$cfg")" != "$cur" ]; then
            use_config "$cfg" || die "ringmesh-init for $cfg failed (see $RM_TMP/*.init.log)"
            cur=$(io_of "$cfg")
        fi
        for test in "${TESTS[@]}"; do
            # the L4 relay (the baseline) runs BENCH_HTTP_L4_TESTS; never the 64 KiB GETs,
            # which measure the HTTP paths, plaintext and mTLS
            [[ $cfg == *-l4 && ($test == *64k || " ${L4_TESTS[*]} " != *" $test "*) ]] &&
                continue
            measure "$cfg" "$test" "$rep"
        done
    done
done
use_config direct

# after the run: memory, and each sidecar's counters for the record
{
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$ORIGIN_PID/status" 2>/dev/null)
    printf '{"after":{"restarts":%s,"origin_rss_kb":%s,"sidecars":{' "$RESTARTS" "${rss:-null}"
    sep=
    for io in "${ENGINES[@]}"; do
        for p in a b; do
            pid=${SC_PID[$p.$io]}
            rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
            hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
            printf '%s"%s.%s":{"rss_kb":%s,"hwm_kb":%s,"stats":"%s"}' "$sep" "$p" "$io" \
                "${rss:-null}" "${hwm:-null}" \
                "$(bench_stats "$p" "$io" | tr '\n' ';')"
            sep=,
        done
    done
    printf '}}}\n'
} >>"$RAW"

python3 "$HERE/http_report.py" --raw "$RAW" --clk-tck "$CLK_TCK" --seconds "$SECS" \
    --reps "$REPS" --h1-conns "$H1_CONNS" --h2-conns "$H2_CONNS" --h2-streams "$H2_STREAMS" \
    --cpu-a-id $CPU_A --cpu-b-id $CPU_B --other-max "$OTHER_MAX" >"$MD" ||
    die "report failed"
cat "$MD"
say "wrote $MD and $RAW"
