#!/usr/bin/env bash
# bench/xds_run.sh - the control-plane benchmark (bench/run.sh xds; by hand, no root; never a
# test).
#
# For each size point SxE (S Services, each with one EndpointSlice of E endpoints, written
# by bench/xds_gen.py into a temporary manifest directory, one YAML file per Service):
#   1. ringmesh-xds on the directory (loopback, its own free ports, TLS port off): the time
#      from exec until /ready answers 200 (polled every 20 ms), and its VmRSS/VmHWM then.
#   2. one real ringmesh-sidecar --xds http://127.0.0.1:PORT (loopback, explicit ports,
#      --concurrency 2): time from exec to /ready 200 (every type's first response applied:
#      "time to first config"), VmRSS/VmHWM 2 s after that (the workers have adopted the
#      config), config.services / config.endpoints from /stats.
#   3. on the points in BENCH_XDS_LOAD_SIZES: bench/xdsload.c connects BENCH_XDS_CLIENTS
#      lightweight clients (subscribe "*" to all six types, ACK everything), then makes
#      BENCH_XDS_CHANGES changes of one endpoint of one EndpointSlice (round robin over
#      BENCH_XDS_CHANGES distinct Services) through POST /api/v1/apply, and times, per client
#      and change, the arrival of the response line holding it from the apply's request start
#      (and from its answer), with the bytes each client received per change. The real
#      sidecar stays connected: its own time per update (server log "push ... to <node>" to
#      the sidecar's log "ACK ... nonce N", both ms timestamps) and its RSS after the changes
#      are recorded too. Between changes a quiet gap (BENCH_XDS_GAP_MS; default 300 ms + 1.5x
#      the point's start-up load time, at most 10 s): the API's own write makes ringmesh-xds re-read the
#      whole directory 200 ms later (inotify), which blocks its loop; the gap keeps the next
#      change out of that reload, and the report gives the reload's time from the log.
# Per-service and per-endpoint sidecar memory come from three points: 0x0 (empty config),
# Sx1 and SxE (same S): per endpoint = (RSS(SxE) - RSS(Sx1)) / (S*(E-1)); per service =
# (RSS(Sx1) - RSS(0x0)) / S - per endpoint (a service's share includes its Service, its
# one EndpointSlice object and everything per service in the compiled config).
#
# On this shared 2-core machine everything runs unpinned; the load clients compete with
# ringmesh-xds for the CPUs (their CPU time is in the record). Binaries are copied first (a
# concurrent "make" cannot swap them).
#
# Writes bench/results/<date>-xds.md (tables + machine) and <date>-xds.jsonl (every record).
# Knobs: BENCH_XDS_SIZES ("0x0 1000x10 10000x1 10000x10"), BENCH_XDS_LOAD_SIZES ("1000x10
# 10000x10"), BENCH_XDS_CLIENTS (100), BENCH_XDS_CHANGES (50), BENCH_XDS_GAP_MS (see 3.),
# BENCH_OUT (results dir).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
RINGMESH_ROOT=$(cd "$HERE/.." && pwd)
: "${RINGMESH_BIN:=$RINGMESH_ROOT/bin}"
RINGMESH_BIN=$(realpath -m "$RINGMESH_BIN")
XDSLOAD=${XDSLOAD:-$RINGMESH_ROOT/build/bench/xdsload}
read -r -a SIZES <<<"${BENCH_XDS_SIZES:-0x0 1000x10 10000x1 10000x10}"
LOAD_SIZES=" ${BENCH_XDS_LOAD_SIZES:-1000x10 10000x10} "
CLIENTS=${BENCH_XDS_CLIENTS:-100}
CHANGES=${BENCH_XDS_CHANGES:-50}
OUT=${BENCH_OUT:-$HERE/results}
DATE=$(date +%F)

die() { echo "bench: $*" >&2; exit 1; }
say() { printf '[bench %s] %s\n' "$(date +%T)" "$*"; }
for b in "$RINGMESH_BIN/ringmesh-xds" "$RINGMESH_BIN/ringmesh-sidecar" "$XDSLOAD"; do
    [ -x "$b" ] || die "$b missing: run make"
done
for c in python3 curl ss; do command -v $c >/dev/null || die "needs $c"; done

TMP=$(mktemp -d /tmp/ringmesh-xdsbench.XXXXXX) || die "cannot make a temp dir"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$TMP/bin" && cp "$RINGMESH_BIN/ringmesh-xds" "$RINGMESH_BIN/ringmesh-sidecar" \
    "$XDSLOAD" "$TMP/bin/" || die "cannot copy the binaries to $TMP/bin"
BIN=$TMP/bin

# 8 consecutive free ports from 27000 up: P[0..7]
P=()
for ((base = 27000; base < 60000; base += 10)); do
    for ((i = 0; i < 8; i++)); do
        ss -ltnH "sport = :$((base + i))" | grep -q . && continue 2
    done
    for ((i = 0; i < 8; i++)); do P+=($((base + i))); done
    break
done
[ ${#P[@]} = 8 ] || die "no 8 free ports"
XP=${P[0]} AP=${P[1]}

ms_now() { date +%s%3N; }
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null; }
# wait_ready URL PID SECONDS: polls every 20 ms; prints nothing, returns 1 on timeout/exit
wait_ready() {
    local end=$(($(ms_now) + $3 * 1000))
    while [ "$(ms_now)" -lt $end ]; do
        kill -0 "$2" 2>/dev/null || return 1
        [ "$(code "$1")" = 200 ] && return 0
        sleep 0.02
    done
    return 1
}
mem() { # PID -> "rss_kb hwm_kb"
    awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { print r + 0, h + 0 }' "/proc/$1/status"
}
cpu_ms() { # PID -> utime+stime in ms
    awk -v t="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / t) }' "/proc/$1/stat"
}
stat_of() { # ADMIN_PORT KEY
    curl -s --max-time 2 "http://127.0.0.1:$1/stats" | awk -F': *' -v k="$2" '$1 == k { print $2; exit }'
}

mkdir -p "$OUT"
RAW=$OUT/$DATE-xds.jsonl
MD=$OUT/$DATE-xds.md
: >"$RAW"
say "sizes: ${SIZES[*]}; load on:${LOAD_SIZES% }; $CLIENTS clients, $CHANGES changes;" \
    "ports ${P[0]}..${P[7]}; raw -> $RAW"

for size in "${SIZES[@]}"; do
    S=${size%x*} E=${size#*x}
    dir=$TMP/m-$size
    say "$size: generating $S Services with $E endpoints each"
    mkdir -p "$dir" && python3 "$HERE/xds_gen.py" "$dir" "$S" "$E" || die "xds_gen.py failed"
    dir_kb=$(du -sk "$dir" | awk '{ print $1 }')

    # ---- 1. the control plane
    xlog=$TMP/xds-$size.log
    t0=$(ms_now)
    "$BIN/ringmesh-xds" --config-dir "$dir" --xds-port "$XP" --xds-tls-port 0 \
        --api-port "$AP" --listen 127.0.0.1 --log-level debug >"$xlog" 2>&1 &
    XPID=$!
    PIDS+=("$XPID")
    wait_ready "http://127.0.0.1:$AP/ready" "$XPID" 600 ||
        { tail -n 5 "$xlog"; die "$size: ringmesh-xds not ready"; }
    xready=$(($(ms_now) - t0))
    read -r xrss xhwm < <(mem "$XPID")
    xcpu=$(cpu_ms "$XPID")
    say "$size: ringmesh-xds ready in ${xready} ms, RSS ${xrss} kB (HWM ${xhwm} kB)"

    # ---- 2. one real sidecar
    slog=$TMP/sidecar-$size.log
    t0=$(ms_now)
    "$BIN/ringmesh-sidecar" --xds "http://127.0.0.1:$XP" --concurrency 2 \
        --outbound-port "${P[2]}" --inbound-port "${P[3]}" --admin-port "${P[4]}" \
        --stats-port "${P[5]}" --health-port "${P[6]}" --pod-name bench-sc-0 \
        --pod-namespace bench --service-account bench --pod-ip 10.199.0.1 >"$slog" 2>&1 &
    SPID=$!
    PIDS+=("$SPID")
    wait_ready "http://127.0.0.1:${P[4]}/ready" "$SPID" 600 ||
        { tail -n 5 "$slog"; die "$size: sidecar not ready"; }
    sready=$(($(ms_now) - t0))
    read -r srss0 shwm0 < <(mem "$SPID")
    sleep 2
    read -r srss shwm < <(mem "$SPID")
    nsvc=$(stat_of "${P[4]}" config.services) neps=$(stat_of "${P[4]}" config.endpoints)
    scpu=$(cpu_ms "$SPID")
    say "$size: sidecar ready in ${sready} ms, RSS ${srss} kB (HWM ${shwm} kB);" \
        "config.services ${nsvc:-?}, config.endpoints ${neps:-?}"
    printf '{"phase":"point","size":"%s","services":%s,"endpoints_per_service":%s,"manifest_kb":%s,"xds_ready_ms":%s,"xds_rss_kb":%s,"xds_hwm_kb":%s,"xds_cpu_ms":%s,"sidecar_ready_ms":%s,"sidecar_rss_at_ready_kb":%s,"sidecar_rss_kb":%s,"sidecar_hwm_kb":%s,"sidecar_cpu_ms":%s,"sidecar_services":%s,"sidecar_endpoints":%s}\n' \
        "$size" "$S" "$E" "$dir_kb" "$xready" "$xrss" "$xhwm" "$xcpu" "$sready" "$srss0" \
        "$srss" "$shwm" "$scpu" "${nsvc:-null}" "${neps:-null}" >>"$RAW"

    # ---- 3. the load clients and the changes
    if [[ $LOAD_SIZES == *" $size "* ]] && [ "$S" -gt 0 ]; then
        gap=${BENCH_XDS_GAP_MS:-$((300 + xready * 3 / 2))}
        [ -n "${BENCH_XDS_GAP_MS:-}" ] || [ "$gap" -le 10000 ] || gap=10000
        slices=$(python3 -c "import random,sys; random.seed(1); s=int(sys.argv[1]); print(','.join('bench/svc-%05d-1' % i for i in random.sample(range(s), min(s, int(sys.argv[2])))))" "$S" "$CHANGES")
        say "$size: $CLIENTS clients, $CHANGES changes, ${gap} ms apart"
        xc0=$(cpu_ms "$XPID")
        "$BIN/xdsload" --xds-port "$XP" --api-port "$AP" --clients "$CLIENTS" \
            --changes "$CHANGES" --gap-ms "$gap" --slice "$slices" \
            >"$TMP/load-$size.jsonl" 2>"$TMP/load-$size.err" &
        LPID=$!
        lrc=0
        wait $LPID || lrc=$?
        grep -v '^xdsload: change' "$TMP/load-$size.err" | sed 's/^/  /'
        [ -s "$TMP/load-$size.jsonl" ] || die "$size: xdsload wrote nothing (rc $lrc)"
        read -r xrss2 xhwm2 < <(mem "$XPID")
        read -r srss2 shwm2 < <(mem "$SPID")
        xc1=$(cpu_ms "$XPID")
        python3 - "$size" "$lrc" "$xlog" "$slog" "$TMP/load-$size.jsonl" "$xrss2" "$xhwm2" \
            "$srss2" "$shwm2" "$((xc1 - xc0))" "$gap" >>"$RAW" <<'PY' || die "$size: log parsing failed"
import json, re, sys
from datetime import datetime
size, lrc, xlog, slog, load = sys.argv[1:6]
xrss, xhwm, srss, shwm, xcpu, gap = map(int, sys.argv[6:12])
ts = lambda l: datetime.strptime(l[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp() * 1e3
# server: apply times, pushes to the real sidecar (its nonce), reloads after the API's writes
applies, pushes, reloads = [], {}, []
for l in open(xlog):
    if "] apply: " in l:
        applies.append(ts(l))
    m = re.search(r"push discovery\.k8s\.io/v1/EndpointSlice nonce (\d+) to sidecar~10\.199\.0\.1~", l)
    if m:
        pushes[m.group(1)] = ts(l)
    if "reloaded " in l and ": no change" in l and applies:
        reloads.append(ts(l) - applies[-1] - 200)  # the 200 ms debounce after the write
sc = []
for l in open(slog):
    m = re.search(r"xds: ACK discovery\.k8s\.io/v1/EndpointSlice nonce (\d+) .*: (\d+) updated", l)
    if m and m.group(1) in pushes and int(m.group(1)) > 1 and int(m.group(2)) < 10:
        sc.append(ts(l) - pushes[m.group(1)])
for l in open(load):
    r = json.loads(l)
    r["size"] = size
    if r["phase"] == "warm":
        r["xdsload_rc"] = int(lrc)
    print(json.dumps(r))
print(json.dumps({"phase": "after_changes", "size": size, "gap_ms": gap,
                  "xds_rss_kb": xrss, "xds_hwm_kb": xhwm, "xds_cpu_ms_during_load": xcpu,
                  "sidecar_rss_kb": srss, "sidecar_hwm_kb": shwm,
                  "sidecar_update_ms": [round(x, 1) for x in sc],
                  "reload_ms": [round(x, 1) for x in reloads if x > -200]}))
PY
        say "$size: changes done (xdsload rc $lrc); ringmesh-xds RSS ${xrss2} kB, sidecar" \
            "RSS ${srss2} kB"
        python3 "$HERE/xds_report.py" --progress "$RAW" "$size"
    fi
    kill "$SPID" "$XPID" 2>/dev/null
    wait "$SPID" "$XPID" 2>/dev/null
    PIDS=()
    rm -rf "$dir"
done

python3 "$HERE/xds_report.py" "$RAW" "$RINGMESH_ROOT" "$CLIENTS" >"$MD" || die "report failed"
cat "$MD"
say "wrote $MD and $RAW"
