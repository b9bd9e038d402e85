#!/usr/bin/env bash
# bench/run.sh - the benchmarks' entry point, and the L4 benchmark (make bench; by hand, as
# root; never a test).
#
# bench/run.sh [compare|all|l4|http|tls|xds]: compare (the default, what make bench runs) is
# ringmesh against direct, HAProxy and nghttpx sidecar pairs (bench/compare_run.sh, about 20
# minutes); all is compare, then this L4 benchmark, then the HTTP one (bench/http_run.sh),
# each with pods of its own, then the TLS one (the "tls" section at the end of this file:
# bench/tlsbench.c, no pods), then the control plane one (bench/xds_run.sh: ringmesh-xds, a
# sidecar and 100 xDS clients on loopback, no root); l4, http, tls or xds runs just one
# (make bench BENCH=http).
#
# Two netns pods, a (client) and b (server), on the tests/mesh bridge. In one run, with the
# measurements interleaved so that drift on the machine hits every configuration alike:
#   direct  no iptables, no sidecar: a's client -> b's tcpbench server
#   uring   ringmesh-init in both pods, sidecars --io uring as uid 1337
#   epoll   the same with --io epoll
# Both sidecar pairs stay up for the whole run on their own ports (uring 15001/15006, epoll
# 15101/15106); switching configuration is one atomic ringmesh-init rerun (-p/-z) per pod,
# or --cleanup for direct. Per configuration and repetition: throughput with 1 and 8 streams
# and the connection rate at concurrency 16 (bench/tcpbench.c), BENCH_SECONDS each.
#
# CPUs (the machine this was written for has two): pod a's processes (client, both a
# sidecars) run on CPU 0 and pod b's (server, both b sidecars) on CPU 1 (taskset), each
# sidecar with one worker; so a pod is "one core", shared by its app and its sidecar.
# Softirq work follows the sender's CPU over veth (a -> b data is received on a's CPU).
#
# On a shared machine: the binaries are copied first (a concurrent "make" cannot swap them),
# a run is redone when other processes load the CPUs (BENCH_OTHER_MAX), and a sidecar killed
# from outside is restarted and its run redone; the report counts both.
#
# Writes bench/results/<date>-l4.md (table + machine) and <date>-l4.jsonl (every raw run).
# Knobs: BENCH_SECONDS (5), BENCH_REPS (3), BENCH_CONCURRENCY (16), BENCH_OUT (results dir),
# BENCH_OTHER_MAX (10: redo a run during which processes outside the pods used more than this
# % of one core; the machine may be shared).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
RINGMESH_ROOT=$(cd "$HERE/.." && pwd)
: "${RINGMESH_BIN:=$RINGMESH_ROOT/bin}"
RINGMESH_BIN=$(realpath -m "$RINGMESH_BIN")
TCPBENCH=${TCPBENCH:-$RINGMESH_ROOT/build/bench/tcpbench}
SECS=${BENCH_SECONDS:-5}
REPS=${BENCH_REPS:-3}
CONC=${BENCH_CONCURRENCY:-16}
OUT=${BENCH_OUT:-$HERE/results}
CPU_A=0
CPU_B=1
PORT=9000
DATE=$(date +%F)

die() { echo "bench: $*" >&2; exit 1; }
# ---- bench/run.sh tls -----------------------------------------------------------------
#
# bench/run.sh tls [CLIENT_DIR SERVER_DIR]: the cost of mTLS on one core, with
# bench/tlsbench.c (no pods, no root needed): full TLS 1.3 mutual handshakes per second (and
# CPU per handshake of each side), resumed ones (the client's cached ticket, psk_dhe_ke), bulk MB/s through an established pair in 16 KiB records (ChaCha20-Poly1305, tls.c's
# choice) and the raw AEADs ChaCha20-Poly1305 against AES-128-GCM. The credentials are two
# workloads issued by a fresh root with bin/ringmeshctl (ca init, ca issue) into a temporary
# directory, unless two --cert-dir style directories are given.
# The Makefile links bench/ programs with libcommon.a only (no tls.c): tlsbench is compiled
# here against build/libsidecar.a and build/libxds.a (run make first), into the temp dir.
# Pinned to CPU 0 (taskset). Writes bench/results/<date>-tls.md and <date>-tls.jsonl.
# The wolfSSL is the one build/ was compiled against (build/wolfssl.env, written by make):
# after make WOLFSSL=fast the files are <date>-tls-wolfssl-fast.md and .jsonl.
# Knobs: BENCH_TLS_SECONDS (3 per test), BENCH_REPS (3), BENCH_OUT, BENCH_TLS_CPU (0),
# BENCH_TLS_BASELINE (the .jsonl of an earlier run, e.g. with the other wolfSSL in the same
# session: the report then shows both side by side with the ratio).
bench_tls() {
    local secs=${BENCH_TLS_SECONDS:-3} reps=${BENCH_REPS:-3} cpu=${BENCH_TLS_CPU:-0}
    local cdir sdir raw md rep lib libs load0 load1 ctl=$RINGMESH_BIN/ringmeshctl tmp
    local WOLFSSL=system TLS_CFLAGS='' TLS_LIBS='' name=tls wolfssl base=${BENCH_TLS_BASELINE:-}
    [ -z "$base" ] || [ -f "$base" ] || die "BENCH_TLS_BASELINE=$base: no such file"
    [ $# = 0 ] || [ $# = 2 ] || die "usage: bench/run.sh tls [CLIENT_DIR SERVER_DIR]"
    for lib in libsidecar.a libxds.a libcommon.a; do
        [ -f "$RINGMESH_ROOT/build/$lib" ] || die "build/$lib missing: run make"
    done
    command -v python3 >/dev/null || die "needs python3"
    tmp=$(mktemp -d /tmp/ringmesh-tlsbench.XXXXXX) || die "cannot make a temp dir"
    TLS_TMP=$tmp
    trap 'rm -rf "$TLS_TMP"' EXIT
    # shellcheck source=/dev/null # WOLFSSL, TLS_CFLAGS, TLS_LIBS (make writes it)
    [ ! -f "$RINGMESH_ROOT/build/wolfssl.env" ] || . "$RINGMESH_ROOT/build/wolfssl.env"
    if [ "$WOLFSSL" = fast ]; then
        name=tls-wolfssl-fast
        libs=$(pkg-config --libs liburing yaml-0.1 libcjson libpcre2-8 libnghttp2 2>/dev/null) ||
            libs="-luring -lyaml -lcjson -lpcre2-8 -lnghttp2"
        libs="$libs $TLS_LIBS"
        wolfssl="wolfSSL $(sed -n 's/^#define LIBWOLFSSL_VERSION_STRING "\(.*\)"/\1/p' \
            "$RINGMESH_ROOT"/build/wolfssl-fast/prefix/include/wolfssl/version.h)"
        wolfssl+=" built by make WOLFSSL=fast from Debian's source package"
        for f in "$RINGMESH_ROOT"/build/wolfssl-fast/src/*.dsc; do wolfssl+=" ${f##*/},"; done
        wolfssl+=" configure $(cat "$RINGMESH_ROOT"/build/wolfssl-fast/src/wolfssl-*/built.flags),"
        wolfssl+=" linked statically"
    else
        libs=$(pkg-config --libs liburing yaml-0.1 libcjson libpcre2-8 libnghttp2 wolfssl 2>/dev/null) ||
            libs="-luring -lyaml -lcjson -lpcre2-8 -lnghttp2 -lwolfssl"
        wolfssl="wolfSSL $(pkg-config --modversion wolfssl) (Debian's libwolfssl-dev $(dpkg-query -W -f='${Version}' libwolfssl-dev 2>/dev/null))"
    fi
    # shellcheck disable=SC2086 # $libs and $TLS_CFLAGS are lists of flags
    (cd "$RINGMESH_ROOT" && ${CC:-cc} -O2 -g -std=gnu11 -Wall -Wextra -Werror -Wshadow \
        -Wno-unused-parameter -D_GNU_SOURCE -pthread $TLS_CFLAGS -Icommon -Isidecar -Ixds \
        bench/tlsbench.c build/libsidecar.a build/libxds.a build/libcommon.a $libs \
        -o "$tmp/tlsbench") || die "cannot build tlsbench"
    if [ $# = 2 ]; then
        cdir=$1 sdir=$2
    else
        [ -x "$ctl" ] || die "$ctl missing: run make"
        cdir=$tmp/certs/client sdir=$tmp/certs/origin
        { "$ctl" ca init --dir "$tmp/certs/root" &&
            "$ctl" ca issue --dir "$tmp/certs/root" --ns default --sa client --out "$cdir" &&
            "$ctl" ca issue --dir "$tmp/certs/root" --ns default --sa origin --out "$sdir"; } \
            >"$tmp/ringmeshctl.log" 2>&1 || { cat "$tmp/ringmeshctl.log"; die "ringmeshctl failed"; }
    fi
    mkdir -p "$OUT"
    raw=$OUT/$DATE-$name.jsonl md=$OUT/$DATE-$name.md
    : >"$raw"
    printf '[bench %s] tlsbench on CPU %s, %ss per test, %s reps -> %s\n' "$(date +%T)" "$cpu" \
        "$secs" "$reps" "$raw"
    for ((rep = 1; rep <= reps; rep++)); do
        read -r load0 _ </proc/loadavg
        taskset -c "$cpu" "$tmp/tlsbench" "$cdir" "$sdir" --seconds "$secs" >"$tmp/out" \
            2>"$tmp/err" || { cat "$tmp/err"; die "tlsbench failed"; }
        read -r load1 _ </proc/loadavg
        sed "s/^{/{\"rep\":$rep,\"loadavg\":[$load0,$load1],\"wolfssl\":\"$WOLFSSL\",/" "$tmp/out" |
            tee -a "$raw"
    done
    python3 - "$raw" "$secs" "$reps" "$cpu" "$RINGMESH_ROOT" "$wolfssl" "$base" >"$md" <<'PY' || die "report failed"
import json, math, platform, statistics, subprocess, sys
raw, secs, reps, cpu, root, wolfssl, base = sys.argv[1:8]
recs = [json.loads(l) for l in open(raw) if l.strip()]
def med(test, key, cipher=None, recs=recs):
    v = [r[key] for r in recs if r["test"] == test and key in r
         and (cipher is None or r.get("cipher") == cipher)]
    return statistics.median(v) if v else float("nan")
def share(test, cipher=None):  # CPU time / wall time: below 1, others took the core
    v = [r["cpu_seconds"] / r["seconds"] for r in recs if r["test"] == test
         and "cpu_seconds" in r and (cipher is None or r.get("cipher") == cipher)]
    return min(v) if v else float("nan")
title = raw.rsplit('/', 1)[-1].rsplit('.', 1)[0]
print(f"# TLS benchmark ({title.split('-tls')[0]}{', wolfSSL fast build' if 'wolfssl-fast' in title else ''})\n")
print(f"bench/tlsbench.c through sidecar/tls.c, one thread pinned to CPU {cpu}, "
      f"{secs} s per test, {reps} rep(s); medians. Rates \"per core\" are on the thread's "
      "CPU time; wall-clock rates are in the .jsonl.\n")
rows = [  # label, format, (test, key[, cipher])...
    ("full handshake (client + server on one core)", "{0:.0f}/s (wall: {1:.0f}/s)",
     ("handshake_full", "per_sec_cpu"), ("handshake_full", "per_sec")),
    ("full handshake, client side only", "{0:.0f} us -> {1:.0f}/s per core",
     ("handshake_full", "client_us"), ("handshake_full", "client_per_sec_core")),
    ("full handshake, server side only", "{0:.0f} us -> {1:.0f}/s per core",
     ("handshake_full", "server_us"), ("handshake_full", "server_per_sec_core")),
    ("resumed handshake (client + server on one core)", "{0:.0f}/s (wall: {1:.0f}/s)",
     ("handshake_resumed", "per_sec_cpu"), ("handshake_resumed", "per_sec")),
    ("resumed handshake, server side only", "{0:.0f} us -> {1:.0f}/s per core",
     ("handshake_resumed", "server_us"), ("handshake_resumed", "server_per_sec_core")),
    ("bulk, 16 KiB records, encrypt + decrypt on one core", "{0:.0f} MB/s",
     ("bulk", "mb_per_s_cpu")),
    ("bulk, encrypt alone / decrypt alone", "{0:.0f} / {1:.0f} MB/s",
     ("bulk", "encrypt_mb_per_s"), ("bulk", "decrypt_mb_per_s")),
] + [(f"raw AEAD {c}, 16 KiB, encrypt", "{0:.0f} MB/s", ("aead", "encrypt_mb_per_s", c))
     for c in ("chacha20-poly1305", "aes-128-gcm")]
def cell(row, rs):
    return row[1].format(*[med(*k, recs=rs) for k in row[2:]])
if base:
    brecs = [json.loads(l) for l in open(base) if l.strip()]
    bname = base.rsplit('/', 1)[-1]
    print(f"Baseline: {bname} (wolfSSL: {brecs[0].get('wolfssl', '?')} build), "
          "run before this one; ratio = this / baseline on the row's first number (for "
          "times in us, lower is better).\n")
    print(f"| test | baseline | this run | ratio |\n|---|---|---|---|")
    for row in rows:
        b, t = med(*row[2], recs=brecs), med(*row[2])
        ratio = t / b if b and not math.isnan(b) else float("nan")
        print(f"| {row[0]} | {cell(row, brecs)} | {cell(row, recs)} | {ratio:.2f}x |")
else:
    print("| test | result |\n|---|---|")
    for row in rows:
        print(f"| {row[0]} | {cell(row, recs)} |")
print()
hs = [r for r in recs if r["test"] == "handshake_full"]
if hs:
    print(f"Handshake: TLS 1.3, ECDSA P-256 SVIDs from ringmeshctl, ALPN {hs[0]['alpn']}, "
          f"resumed={str(hs[0]['resumed']).lower()}; client saw {hs[0]['client_saw']}, "
          f"server saw {hs[0]['server_saw']}. Bulk cipher: "
          f"{next((r['cipher'] for r in recs if r['test'] == 'bulk'), '?')} "
          "(tls.c's first choice for this wolfSSL build). "
          + next((f"AES-GCM: {r['note']}." for r in recs if r.get("note")), ""))
    print()
rs = [r for r in recs if r["test"] == "handshake_resumed"]
if rs:
    print(f"Resumed: {rs[0]['resumed_count']} of {rs[0]['handshakes']} handshakes resumed; the "
          f"server saw {rs[0]['server_saw']} from its sealed ticket. TLS 1.3 resumption keeps an "
          "ECDHE exchange (psk_dhe_ke, forward secrecy), so it saves the certificate signatures "
          "and chain checks, not the key exchange.")
    print()
low = min(share("handshake_full"), share("bulk"))
loads = [x for r in recs for x in r.get("loadavg", [])]
print(f"Load: the thread got at least {low * 100:.0f}% of its core's wall time "
      f"(CPU time / wall time, worst test); load average during the run "
      f"{min(loads):.2f}..{max(loads):.2f} on {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} CPUs"
      + (" - other processes were running (a shared machine): wall-clock rates are low, "
         "the per-core (CPU time) rates hold." if low < 0.9 else "."))
print()
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
              if l.startswith("model name")), "?")
print(f"Machine: {model}; {platform.system()} {platform.release()}; {wolfssl}")
git = lambda *a: subprocess.run(["git", "-C", root] + list(a), capture_output=True,
                                text=True).stdout.strip()
dirty = git("status", "--porcelain", "--", "sidecar", "xds", "common").split("\n")
dirty = [l[3:] for l in dirty if l.strip()]
print(f"\nringmesh: {git('log', '-1', '--format=%h')}"
      + (f" with uncommitted changes in {', '.join(dirty)}" if dirty else "")
      + "; tlsbench linked with build/libsidecar.a, libxds.a, libcommon.a as they were "
      "(the last make), so it measures the tls.c that make built.")
PY
    cat "$md"
    printf '[bench %s] wrote %s and %s\n' "$(date +%T)" "$md" "$raw"
}

case ${1:-compare} in
compare)
    "$HERE/compare_run.sh"; rc=$?
    echo "bench: the other benchmarks: bench/run.sh l4|http|tls|xds (make bench BENCH=...), or all" >&2
    exit $rc ;;
all)
    "$HERE/compare_run.sh"; rc=$?
    "$HERE/run.sh" l4 || rc=$?
    "$HERE/http_run.sh" || rc=$?
    "$HERE/run.sh" tls || rc=$?
    "$HERE/xds_run.sh" || rc=$?
    exit $rc ;;
http) exec "$HERE/http_run.sh" ;;
xds) exec "$HERE/xds_run.sh" ;;
tls) shift; bench_tls "$@"; exit ;;
l4) ;;
*) die "usage: bench/run.sh [compare|all|l4|http|tls [CLIENT_DIR SERVER_DIR]|xds]" ;;
esac
[ "$(id -u)" = 0 ] || die "needs root (netns pods, iptables): sudo make bench"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (pods a and b are pinned to CPUs $CPU_A and $CPU_B)"
for b in "$RINGMESH_BIN/ringmesh-sidecar" "$RINGMESH_BIN/ringmesh-init" "$TCPBENCH"; do
    [ -x "$b" ] || die "$b missing: run make"
done
for c in taskset python3 curl; do command -v $c >/dev/null || die "needs $c"; done

# shellcheck source=../tests/mesh/lib.sh
source "$RINGMESH_ROOT/tests/mesh/lib.sh"
RM_CMD_TIMEOUT=$((SECS + 30))
mesh_up
# Run private copies: other people's "make" in this tree must not swap binaries mid-run.
mkdir -p "$RM_TMP/bin" && chmod 755 "$RM_TMP/bin" &&
    cp "$RINGMESH_BIN/ringmesh-sidecar" "$RINGMESH_BIN/ringmesh-init" "$TCPBENCH" "$RM_TMP/bin/" ||
    die "cannot copy the binaries to $RM_TMP/bin"
RINGMESH_BIN=$RM_TMP/bin
TCPBENCH=$RM_TMP/bin/tcpbench

say() { printf '[bench %s] %s\n' "$(date +%T)" "$*"; }

# ---- wrappers over tests/mesh/lib.sh --------------------------------------------------

# bench_sidecar POD IO CPU ADMIN OUT IN STATS HEALTH: like pod_sidecar, pinned to CPU, with its
# own ports, so two pairs can run side by side. Sets BENCH_PID. The pid is the sidecar's own
# (ip netns exec, taskset and setpriv all exec), so /proc/PID is the sidecar.
declare -A SC_PID SC_ADMIN
bench_sidecar() {
    local name=$1 io=$2 cpu=$3 admin=$4 out=$5 in=$6 stats=$7 health=$8
    local ns=${RM_NS[$name]} log=$RM_TMP/$name.$io.sidecar.log pid i code=
    (
        ulimit -n 65536 2>/dev/null
        exec ip netns exec "$ns" taskset -c "$cpu" setpriv --reuid $RM_PROXY_UID \
            --regid $RM_PROXY_UID --clear-groups -- "$RINGMESH_BIN/ringmesh-sidecar" \
            --io "$io" --concurrency 1 --outbound-port "$out" --inbound-port "$in" \
            --admin-port "$admin" --stats-port "$stats" --health-port "$health"
    ) >>"$log" 2>&1 &
    pid=$!
    RM_PIDS+=("$pid")
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || { sed 's/^/  /' "$log"; die "sidecar $name/$io exited"; }
        code=$(ip netns exec "$ns" curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
            "http://127.0.0.1:$admin/ready" 2>/dev/null)
        [ "$code" = 200 ] && break
        sleep 0.1
    done
    [ "$code" = 200 ] || die "sidecar $name/$io not ready after 10 s"
    [ "$(cat "/proc/$pid/comm")" = ringmesh-sideca ] || die "pid $pid is not the sidecar"
    SC_PID[$name.$io]=$pid
    SC_ADMIN[$name.$io]=$admin
}

bench_stats() { # POD IO
    ip netns exec "${RM_NS[$1]}" curl -s --max-time 2 "http://127.0.0.1:${SC_ADMIN[$1.$2]}/stats"
}
bench_stat() { bench_stats "$1" "$2" | awk -F': *' -v k="$3" '$1 == k { print $2; exit }'; }
# utime + stime of every thread, in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# "busy steal total" jiffies of one CPU
cpu_line() { awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= 9; i++) t += $i;
    print t - $5 - $6 - $9, $9, t }' /proc/stat; }

use_config() { # direct | uring | epoll
    local p
    case $1 in
    direct) pod_init_cleanup a && pod_init_cleanup b ;;
    uring) for p in a b; do pod_init $p -p 15001 -z 15006 || return 1; done ;;
    epoll) for p in a b; do pod_init $p -p 15101 -z 15106 || return 1; done ;;
    esac
}

# ---- the pods -------------------------------------------------------------------------

pod a 10.233.1.2
pod b 10.233.1.3
B=$(pod_ip b)
mkdir -p "$OUT"
RAW=$OUT/$DATE-l4.jsonl
MD=$OUT/$DATE-l4.md
: >"$RAW"

pod_app b taskset -c $CPU_B "$TCPBENCH" server $PORT
wait_port b $PORT || die "tcpbench server did not start (log: $RM_APP_LOG)"
SERVER_PID=$RM_APP_PID

IOS=(uring epoll)
[ "$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)" = 0 ] ||
    { say "io_uring disabled here (kernel.io_uring_disabled): epoll only"; IOS=(epoll); }
# pair_up IO: start whichever of the pair's two sidecars is not running
pair_up() {
    local io=$1 ports p cpu got
    if [ "$io" = uring ]; then ports=(15000 15001 15006 15090 15021); else
        ports=(15100 15101 15106 15190 15121); fi
    for p in a b; do
        [ -n "${SC_PID[$p.$io]:-}" ] && kill -0 "${SC_PID[$p.$io]}" 2>/dev/null && continue
        cpu=$([ $p = a ] && echo $CPU_A || echo $CPU_B)
        bench_sidecar $p "$io" "$cpu" "${ports[@]}"
        got=$(bench_stat $p "$io" server.io_backend)
        [ "$got" = "$([ "$io" = uring ] && echo io_uring || echo epoll)" ] ||
            die "sidecar $p asked for --io $io runs '$got'"
        say "sidecar $p --io $io up: pid ${SC_PID[$p.$io]} (CPU $cpu)"
    done
}
# pair_alive IO: both running; otherwise says which one went and the end of its log
pair_alive() {
    local io=$1 p ok=0
    for p in a b; do
        kill -0 "${SC_PID[$p.$io]}" 2>/dev/null && continue
        say "sidecar $p --io $io (pid ${SC_PID[$p.$io]}) is gone; its log ends:"
        tail -n 3 "$RM_TMP/$p.$io.sidecar.log" | sed 's/^/    /'
        RESTARTS=$((RESTARTS + 1))
        ok=1
    done
    return $ok
}
RESTARTS=0
for io in "${IOS[@]}"; do pair_up "$io"; done
CONFIGS=(direct "${IOS[@]}")

# measure CONFIG TEST REP: one tcpbench run; appends one JSON record to $RAW. This machine may
# be shared: the user-space CPU of processes outside our pods is measured around each run, and
# a run during which it passed OTHER_MAX % of one core is done again (up to 6 attempts; the
# last attempt is kept either way and the report says how much foreign load it saw).
OTHER_MAX=${BENCH_OTHER_MAX:-10}
measure() {
    local cfg=$1 test=$2 rep=$3 attempt rec ticks
    for attempt in 1 2 3 4 5 6; do
        kill -0 "$SERVER_PID" 2>/dev/null || die "the tcpbench server in pod b is gone"
        [ "$cfg" = direct ] || pair_up "$cfg"
        rec=$(measure_once "$cfg" "$test" "$rep" "$attempt") || exit 1
        if [ "$cfg" != direct ] && ! pair_alive "$cfg"; then
            [ "$attempt" = 6 ] && die "sidecars keep dying; giving up"
            say "rep $rep $cfg $test: a sidecar died during the run (not by us); again"
            continue
        fi
        ticks=$(sed 's/.*"foreign_ticks":\([0-9]*\).*/\1/' <<<"$rec")
        if [ "$attempt" = 6 ] || [ $((ticks * 100)) -le $((OTHER_MAX * SECS * CLK_TCK)) ]; then
            break
        fi
        say "rep $rep $cfg $test: other processes used $((ticks * 100 / (SECS * CLK_TCK)))% of a core; again"
        sleep 3
    done
    echo "$rec" >>"$RAW"
    python3 "$HERE/l4_report.py" --progress "$rec"
}
CLK_TCK=$(getconf CLK_TCK)
NETNS_LIST=$(IFS=,; echo "${RM_NETNS[*]}")

measure_once() {
    local cfg=$1 test=$2 rep=$3 attempt=$4 args json ta0=0 tb0=0 ta1=0 tb1=0 ca0 ca1 cb0 cb1
    local xa0=0 xb0=0 xa1=0 xb1=0 fticks
    case $test in
    tp1) args=(throughput "$B" $PORT --seconds "$SECS" --streams 1) ;;
    tp8) args=(throughput "$B" $PORT --seconds "$SECS" --streams 8) ;;
    cr) args=(connrate "$B" $PORT --seconds "$SECS" --concurrency "$CONC") ;;
    esac
    if [ "$cfg" != direct ]; then
        xa0=$(bench_stat a "$cfg" outbound.cx_total) xb0=$(bench_stat b "$cfg" inbound.cx_total)
        xa0=${xa0:-0} xb0=${xb0:-0}
        ta0=$(cpu_ticks "${SC_PID[a.$cfg]}") tb0=$(cpu_ticks "${SC_PID[b.$cfg]}")
    fi
    python3 "$HERE/l4_report.py" --snap "$NETNS_LIST" >"$RM_TMP/snap0"
    read -r -a ca0 < <(cpu_line $CPU_A)
    read -r -a cb0 < <(cpu_line $CPU_B)
    json=$(in_pod a taskset -c $CPU_A "$TCPBENCH" "${args[@]}" 2>>"$RM_TMP/client.err")
    read -r -a ca1 < <(cpu_line $CPU_A)
    read -r -a cb1 < <(cpu_line $CPU_B)
    if [ "$cfg" != direct ]; then
        ta1=$(cpu_ticks "${SC_PID[a.$cfg]}") tb1=$(cpu_ticks "${SC_PID[b.$cfg]}")
    fi
    python3 "$HERE/l4_report.py" --snap "$NETNS_LIST" >"$RM_TMP/snap1"
    fticks=$(python3 "$HERE/l4_report.py" --foreign "$RM_TMP/snap0" "$RM_TMP/snap1")
    if [ "$cfg" != direct ]; then
        sleep 0.2 # the last relays close just after the client sees EOF
        xa1=$(bench_stat a "$cfg" outbound.cx_total) xb1=$(bench_stat b "$cfg" inbound.cx_total)
        xa1=${xa1:-0} xb1=${xb1:-0}
    fi
    [ -n "$json" ] || { tail -n 5 "$RM_TMP/client.err" >&2; die "$cfg $test: no result"; }
    printf '{"config":"%s","test":"%s","rep":%s,"attempt":%s,"foreign_ticks":%s,' \
        "$cfg" "$test" "$rep" "$attempt" "${fticks:-0}"
    printf '"sc_ticks_a":%s,"sc_ticks_b":%s,' $((ta1 - ta0)) $((tb1 - tb0))
    printf '"sc_cx_a":%s,"sc_cx_b":%s,"cpu_a":[%s,%s,%s],"cpu_b":[%s,%s,%s],"result":%s}\n' \
        $((xa1 - xa0)) $((xb1 - xb0)) $((ca1[0] - ca0[0])) $((ca1[1] - ca0[1])) \
        $((ca1[2] - ca0[2])) $((cb1[0] - cb0[0])) $((cb1[1] - cb0[1])) $((cb1[2] - cb0[2])) \
        "$json"
}

say "pods a=$(pod_ip a) (CPU $CPU_A) b=$B (CPU $CPU_B); ${SECS}s per run, $REPS reps," \
    "configs: ${CONFIGS[*]}; raw runs -> $RAW"
for ((rep = 1; rep <= REPS; rep++)); do
    for cfg in "${CONFIGS[@]}"; do
        use_config "$cfg" || die "ringmesh-init for $cfg failed (see $RM_TMP/*.init.log)"
        for test in tp1 tp8 cr; do
            measure "$cfg" "$test" "$rep"
        done
    done
done
use_config direct

# after the run: memory, and each sidecar's counters for the record
STATE=$RM_TMP/after.json
{
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null)
    printf '{"restarts":%s,"server_rss_kb":%s,"sidecars":{' "$RESTARTS" "${rss:-null}"
    sep=
    for io in "${IOS[@]}"; do
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
    printf '}}\n'
} >"$STATE"
echo "{\"after\":$(cat "$STATE")}" >>"$RAW"

python3 "$HERE/l4_report.py" --raw "$RAW" --clk-tck "$CLK_TCK" --seconds "$SECS" \
    --reps "$REPS" --concurrency "$CONC" --cpu-a $CPU_A --cpu-b $CPU_B \
    --other-max "$OTHER_MAX" >"$MD" ||
    die "report failed"
cat "$MD"
say "wrote $MD and $RAW"
