#!/usr/bin/env bash
# bench/loadgen_check.sh - ringmesh-loadgen side by side with h2load and wrk against the same
# target (by hand, never a test; no root). Checks that its numbers are in line with the tools
# people know, and shows what the coordinated-omission correction changes.
#
# Target: a one-thread haproxy with bench/haproxy-origin.cfg on loopback (1 KiB answers, as
# bench/http_run.sh uses it), pinned to CPU 1; every client pinned to CPU 0, one thread.
# Runs, BENCH_SECONDS each (after 1 s of warm-up where the tool has one):
#   closed loop (max throughput), HTTP/1.1, 16 connections: wrk, h2load --h1, ringmesh-loadgen
#   closed loop, h2c, 4 connections x 10 streams:           h2load, ringmesh-loadgen --h2
#   fixed rate, HTTP/1.1 at BENCH_H1_RATE req/s, 16 conns:    h2load --h1 --rps, ringmesh-loadgen -r
#   fixed rate, h2c at BENCH_H2_RATE req/s, 4 x 10:           h2load --rps, ringmesh-loadgen --h2 -r
# wrk (Debian's 4.1, not wrk2) has no fixed rate. h2load's percentiles come from its
# --log-file (the whole run, warm-up included: it logs every request); its --rps paces each
# client but times each request from its actual send, like a closed loop.
# send lag (ringmesh-loadgen at a fixed rate): how late its requests went out against their
# intended times; when it is most of the latency, the client (or its connections' in-flight
# limit) was the bottleneck, not the server.
# client CPU us/req: the client's user + system time over its requests (an estimate: the
# requests of the warm-up are counted at the measured rate); it holds on a loaded machine
# where req/s and latency do not.
# Prints a markdown table (and the raw tool output under $BENCH_OUT/loadgen-check.log).
# Knobs: BENCH_SECONDS (5), BENCH_H1_RATE (4800), BENCH_H2_RATE (9600), RINGMESH_BIN (bin).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN=$(realpath -m "${RINGMESH_BIN:-$ROOT/bin}")
SECS=${BENCH_SECONDS:-5}
H1_RATE=${BENCH_H1_RATE:-4800}
H2_RATE=${BENCH_H2_RATE:-9600}
die() { echo "loadgen_check: $*" >&2; exit 1; }
for c in haproxy h2load wrk taskset python3 curl /usr/bin/time; do command -v $c >/dev/null || die "needs $c"; done
[ -x "$BIN/ringmesh-loadgen" ] || die "$BIN/ringmesh-loadgen missing: run make"
T=$(mktemp -d /tmp/ringmesh-lgcheck.XXXXXX)
OUT=${BENCH_OUT:-$T}
mkdir -p "$OUT"
LOG=$OUT/loadgen-check.log
: >"$LOG"
HPID=
cleanup() { [ -z "$HPID" ] || kill "$HPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
cp "$BIN/ringmesh-loadgen" "$T/" # a concurrent make must not swap it mid-run
LG=$T/ringmesh-loadgen

base=$((20000 + RANDOM % 10000))
H1=$base H2=$((base + 1))
head -c 1024 /dev/zero | tr '\0' x >"$T/body"
ORIGIN_H1=$H1 ORIGIN_H1_L4=$((base + 2)) ORIGIN_H2=$H2 ORIGIN_H2_L4=$((base + 3)) ORIGIN_BODY=$T/body \
    taskset -c 1 haproxy -db -f "$HERE/haproxy-origin.cfg" >"$T/haproxy.log" 2>&1 &
HPID=$!
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$H1/" && break; sleep 0.1; done
curl -sf -o /dev/null "http://127.0.0.1:$H1/" || { cat "$T/haproxy.log"; die "haproxy did not start"; }
U1=http://127.0.0.1:$H1/ U2=http://127.0.0.1:$H2/

# run NAME TOOL SCENARIO cmd...: output to $T/NAME.out, appended to $LOG; a line to $T/runs
run() {
    local name=$1 tool=$2 scen=$3; shift 3
    local l0 l1
    read -r l0 _ </proc/loadavg
    echo "== $name: $*" >>"$LOG"
    /usr/bin/time -f "%U %S" -o "$T/$name.cpu" taskset -c 0 "$@" >"$T/$name.out" 2>>"$LOG"
    read -r l1 _ </proc/loadavg
    cat "$T/$name.out" >>"$LOG"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$tool" "$scen" "$l0" "$l1" >>"$T/runs"
    sleep 1
}
: >"$T/runs"
echo "loadgen_check: ${SECS}s per run, 10 runs; origin haproxy on CPU 1, clients on CPU 0" >&2
run wrk1 wrk "closed h1 16c" wrk -t1 -c16 -d"${SECS}s" --latency "$U1"
run h2l1 h2load "closed h1 16c" h2load --h1 -t1 -c16 -D "$SECS" --warm-up-time 1 --log-file "$T/h2l1.tsv" "$U1"
run lg1 ringmesh-loadgen "closed h1 16c" "$LG" --json --quiet -c16 -d "$SECS" "$U1"
run h2l2 h2load "closed h2c 4x10" h2load -t1 -c4 -m10 -D "$SECS" --warm-up-time 1 --log-file "$T/h2l2.tsv" "$U2"
run lg2 ringmesh-loadgen "closed h2c 4x10" "$LG" --json --quiet --h2 -c4 -m10 -d "$SECS" "$U2"
run h2l3 h2load "rate h1 16c $H1_RATE/s" h2load --h1 -t1 -c16 --rps $((H1_RATE / 16)) -D "$SECS" --warm-up-time 1 \
    --log-file "$T/h2l3.tsv" "$U1"
run lg3 ringmesh-loadgen "rate h1 16c $H1_RATE/s" "$LG" --json --quiet -c16 -r "$H1_RATE" -d "$SECS" "$U1"
run h2l4 h2load "rate h2c 4x10 $H2_RATE/s" h2load -t1 -c4 -m10 --rps $((H2_RATE / 4)) -D "$SECS" --warm-up-time 1 \
    --log-file "$T/h2l4.tsv" "$U2"
run lg4 ringmesh-loadgen "rate h2c 4x10 $H2_RATE/s" "$LG" --json --quiet --h2 -c4 -m10 -r "$H2_RATE" -d "$SECS" "$U2"
run lg5 ringmesh-loadgen "rate h1 16c $H1_RATE/s" "$LG" --json --quiet -c16 -r "$H1_RATE" -d "$SECS" "$U1"

python3 - "$T" "$SECS" <<'PY'
import json, re, statistics, sys
T, secs = sys.argv[1], float(sys.argv[2])
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, max(0, int(-(-p * len(v) // 100)) - 1))] if v else float("nan")
def ms(x):
    return f"{x / 1000:.3f}"
print("| scenario | tool | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | client CPU us/req | send lag p50/p99 ms | load avg |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
for line in open(f"{T}/runs"):
    name, tool, scen, l0, l1 = line.rstrip("\n").split("\t")
    out = open(f"{T}/{name}.out").read()
    row, lag = None, ""
    if tool == "wrk":
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        unit = {"us": 1, "ms": 1e3, "s": 1e6}
        lat = {m.group(1): float(m.group(2)) * unit[m.group(3)]
               for m in re.finditer(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
        mx = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
        err = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
        err += int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1])
        row = (rps, lat.get("50"), lat.get("90"), lat.get("99"),
               float(mx.group(1)) * unit[mx.group(2)] if mx else float("nan"), err,
               " (p90 is wrk's, p99 too)")
    elif tool == "h2load":
        rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
        d = [int(l.split("\t")[2]) for l in open(f"{T}/{name}.tsv") if l.strip()]
        m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)
        err = int(m.group(2)) + int(m.group(3)) + int(m.group(4)) if m else -1
        row = (rps, pct(d, 50), pct(d, 90), pct(d, 99), max(d) if d else float("nan"), err, "")
    else:
        j = json.loads(out)
        l = j["latency_us"]
        row = (j["achieved_rate"], l["p50"], l["p90"], l["p99"], l["max"], sum(j["errors"].values()),
               " (corrected)" if j["corrected"] else "")
        if j["corrected"]:
            lag = f'{j["send_lag_us"]["p50"] / 1000:.3f} / {j["send_lag_us"]["p99"] / 1000:.3f}'
    rps, p50, p90, p99, mx, err, note = row
    u, sy = map(float, open(f"{T}/{name}.cpu").read().split()[-2:])
    # wrk runs secs, h2load 1 s of warm-up + secs, ringmesh-loadgen connect + 1 s + secs
    extra = {"wrk": 0, "h2load": 1}.get(tool, 1)
    cpu_us = (u + sy) * 1e6 / (rps * (secs + extra)) if rps else float("nan")
    print(f"| {scen} | {tool}{note} | {rps:.0f} | {ms(p50)} | {ms(p90)} | {ms(p99)} | {ms(mx)} | {err} | {cpu_us:.1f} | {lag} | {l0}..{l1} |")
PY
