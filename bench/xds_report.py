#!/usr/bin/env python3
"""bench/xds_report.py - the tables of bench/xds_run.sh from its .jsonl.

  xds_report.py RAW ROOT CLIENTS    the Markdown report (stdout)
  xds_report.py --progress RAW SIZE one progress line for a load point
"""
import json, platform, statistics, subprocess, sys

def pct(v, p):
    v = sorted(v)
    if not v:
        return float("nan")
    i = min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))
    return v[i]

def load(raw):
    return [json.loads(l) for l in open(raw) if l.strip()]

def load_summary(recs, size):
    ch = [r for r in recs if r.get("size") == size and r["phase"] == "change"]
    warm = next((r for r in recs if r.get("size") == size and r["phase"] == "warm"), None)
    after = next((r for r in recs if r.get("size") == size and r["phase"] == "after_changes"), {})
    lat = [x for r in ch for x in r["from_req_ms"] if x >= 0]
    lat_resp = [x for r in ch for x in r["from_resp_ms"] if x > -1e8]
    missed = sum(1 for r in ch for x in r["from_req_ms"] if x < 0)
    sock = [x for r in ch for x in r["sock_bytes"]]
    line = [x for r in ch for x in r["line_bytes"]]
    mline = [x for r in ch for x in r["marker_line_bytes"]]
    nres = sorted({x for r in ch for x in r["marker_resources"]})
    nlines = sorted({x for r in ch for x in r["lines"]})
    return dict(n=len(ch), clients=warm["clients"] if warm else 0, lat=lat, lat_resp=lat_resp,
                missed=missed, sock=sock, line=line, mline=mline, nres=nres, nlines=nlines,
                apply=[r["apply_ms"] for r in ch], codes=sorted({r["apply_code"] for r in ch}),
                warm_ms=max(warm["warm_ms"]) if warm else float("nan"),
                warm_bytes=statistics.median(warm["sock_bytes"]) if warm else float("nan"),
                after=after, first_last=[r["from_req_ms"] for r in ch])

if sys.argv[1] == "--progress":
    s = load_summary(load(sys.argv[2]), sys.argv[3])
    print(f"[bench] {sys.argv[3]}: {s['n']} changes x {s['clients']} clients: from the apply's "
          f"request start p50 {pct(s['lat'], 50):.1f} / p99 {pct(s['lat'], 99):.1f} / max "
          f"{max(s['lat'] or [float('nan')]):.1f} ms, missed {s['missed']}; apply answered in "
          f"p50 {pct(s['apply'], 50):.1f} ms; {statistics.median(s['sock'] or [0]):.0f} B per "
          f"client per change")
    sys.exit(0)

raw, root, clients = sys.argv[1], sys.argv[2], int(sys.argv[3])
recs = load(raw)
pts = {r["size"]: r for r in recs if r["phase"] == "point"}
date = raw.rsplit("/", 1)[-1].split("-xds")[0]
MB = lambda kb: f"{kb / 1024:.1f}"
print(f"# xDS control-plane benchmark ({date})\n")
print("bench/xds_run.sh (`bench/run.sh xds`): ringmesh-xds on a generated manifest directory "
      "(one YAML file per Service: the Service and one EndpointSlice), one real "
      "ringmesh-sidecar --xds on it, and bench/xdsload.c's lightweight clients; all on "
      "loopback, unpinned, on a shared 2-core machine.\n")
print("## Start-up and memory per size\n")
print("| services x endpoints/service | endpoints | manifests | ringmesh-xds ready | ringmesh-xds RSS (HWM) | sidecar first config (ready) | sidecar RSS (HWM) | sidecar sees |")
print("|---|---|---|---|---|---|---|---|")
for size, p in pts.items():
    print(f"| {p['services']} x {p['endpoints_per_service']} | {p['services'] * p['endpoints_per_service']} "
          f"| {MB(p['manifest_kb'])} MB | {p['xds_ready_ms']} ms | {MB(p['xds_rss_kb'])} MB "
          f"({MB(p['xds_hwm_kb'])}) | {p['sidecar_ready_ms']} ms | {MB(p['sidecar_rss_kb'])} MB "
          f"({MB(p['sidecar_hwm_kb'])}) | {p['sidecar_services']} services, "
          f"{p['sidecar_endpoints']} endpoints |")
print()
# per service / per endpoint from 0x0, Sx1, SxE
base = pts.get("0x0")
derived = None
for size, p in pts.items():
    S, E = p["services"], p["endpoints_per_service"]
    one = pts.get(f"{S}x1")
    if base and one and E > 1 and S > 0:
        per_ep = (p["sidecar_rss_kb"] - one["sidecar_rss_kb"]) * 1024 / (S * (E - 1))
        per_svc = (one["sidecar_rss_kb"] - base["sidecar_rss_kb"]) * 1024 / S - per_ep
        xper_ep = (p["xds_rss_kb"] - one["xds_rss_kb"]) * 1024 / (S * (E - 1))
        xper_svc = (one["xds_rss_kb"] - base["xds_rss_kb"]) * 1024 / S - xper_ep
        derived = (S, E, per_svc, per_ep, xper_svc, xper_ep)
big = max(pts.values(), key=lambda p: p["services"] * p["endpoints_per_service"]) if pts else None
load_sizes = list(dict.fromkeys(r["size"] for r in recs if r["phase"] == "change"))
main = big["size"] if big and big["size"] in load_sizes else (load_sizes[-1] if load_sizes else None)
print("## Against the goals\n")
print("| measure | goal | result |\n|---|---|---|")
if derived:
    S, E, ps, pe, xs, xe = derived
    print(f"| sidecar memory per service | <= 2 KB | **{ps / 1024:.2f} KB** "
          f"({'met' if ps <= 2048 else 'MISSED'}) |")
    print(f"| sidecar memory per endpoint | <= 200 B | **{pe:.0f} B** "
          f"({'met' if pe <= 200 else 'MISSED'}) |")
if main:
    s = load_summary(recs, main)
    p99 = pct(s["lat"], 99)
    print(f"| p99 endpoint change -> every client ({main.replace('x', ' x ')}, {s['clients']} "
          f"clients, {s['n']} changes) | <= 100 ms | **{p99:.1f} ms** "
          f"({'met' if p99 <= 100 and not s['missed'] else 'MISSED'}) |")
    print(f"| on the wire per client per endpoint change | only the changed slice | "
          f"**{statistics.median(s['sock']):.0f} B** median socket bytes; one response line of "
          f"{statistics.median(s['mline']):.0f} B holding {', '.join(map(str, s['nres']))} "
          f"resource(s); lines per change {s['nlines']} "
          f"({'met' if s['nres'] == [1] and s['nlines'] == [1] else 'check'}) |")
if big:
    print(f"| ringmesh-xds memory, {big['services']} services / "
          f"{big['services'] * big['endpoints_per_service']} endpoints | - | "
          f"{MB(big['xds_rss_kb'])} MB RSS at ready |")
    print(f"| sidecar time to first config, same | - | {big['sidecar_ready_ms']} ms |")
print()
if derived:
    S, E, ps, pe, xs, xe = derived
    print(f"Derivation (RSS after the sidecar was ready and 2 s settled): per endpoint = "
          f"(RSS({S}x{E}) - RSS({S}x1)) / ({S} x {E - 1}) = {pe:.0f} B; per service = "
          f"(RSS({S}x1) - RSS(0x0)) / {S} - per endpoint = {ps:.0f} B (a Service, its one "
          f"EndpointSlice object and its share of the compiled config). The same for "
          f"ringmesh-xds: {xs:.0f} B per service, {xe:.0f} B per endpoint.\n")
print("## Endpoint changes with clients connected\n")
print("Per change: one EndpointSlice's first endpoint gets a new address (GET it, change it, "
      "`POST /api/v1/apply`). Latency is from the apply's **request start** (in xdsload, "
      "CLOCK_MONOTONIC) to the arrival of the whole response line holding the new address, "
      "per client; percentiles over all clients x changes. \"From the answer\" is the same "
      "from the apply's HTTP answer: ringmesh-xds queues the pushes before it answers, so it "
      "is often negative.\n")
print("| point | clients | changes | p50 | p99 | max | missed | from the answer p50 / p99 | apply answered p50 / p99 | bytes/client/change (socket / JSON) | initial sync: all warm / per client | real sidecar: update applied p50 / max | reload after each apply | ringmesh-xds RSS after |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for size in load_sizes:
    s = load_summary(recs, size)
    a = s["after"]
    su, rl = a.get("sidecar_update_ms", []), a.get("reload_ms", [])
    print(f"| {size.replace('x', ' x ')} | {s['clients']} | {s['n']} | {pct(s['lat'], 50):.1f} ms "
          f"| {pct(s['lat'], 99):.1f} ms | {max(s['lat'] or [float('nan')]):.1f} ms | {s['missed']} "
          f"| {pct(s['lat_resp'], 50):.1f} / {pct(s['lat_resp'], 99):.1f} ms "
          f"| {pct(s['apply'], 50):.1f} / {pct(s['apply'], 99):.1f} ms "
          f"| {statistics.median(s['sock']):.0f} / {statistics.median(s['line']):.0f} B "
          f"| {s['warm_ms'] / 1000:.1f} s / {s['warm_bytes'] / 1e6:.1f} MB "
          f"| {pct(su, 50):.1f} / {max(su or [float('nan')]):.1f} ms ({len(su)}) "
          f"| {statistics.median(rl) if rl else float('nan'):.0f} ms median ({len(rl)}) "
          f"| {MB(a.get('xds_rss_kb', 0))} MB |")
print()
for size in load_sizes:
    s = load_summary(recs, size)
    # spread over clients within a change: first client vs last client
    firsts = [min(x for x in v if x >= 0) for v in s["first_last"] if any(x >= 0 for x in v)]
    lasts = [max(v) for v in s["first_last"]]
    print(f"{size}: within one change the first client had it after p50 "
          f"{pct(firsts, 50):.1f} ms, the last after p50 {pct(lasts, 50):.1f} ms (the spread is "
          f"ringmesh-xds writing to {s['clients']} connections one after another).  ")
print()
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
              if l.startswith("model name")), "?")
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
print(f"Machine: {model}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} "
      f"CPUs, {int(mem) / 1048576:.0f} GiB; {platform.system()} {platform.release()}; "
      f"shared with another engineer's work, nothing pinned.\n")
git = lambda *a: subprocess.run(["git", "-C", root] + list(a), capture_output=True,
                                text=True).stdout.strip()
dirty = [l[3:] for l in git("status", "--porcelain", "--", "sidecar", "xds", "common").split("\n")
         if l.strip()]
print(f"ringmesh: {git('log', '-1', '--format=%h')}"
      + (f" with uncommitted changes in {', '.join(dirty)}" if dirty else "") + ".")
