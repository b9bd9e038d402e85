#!/usr/bin/env python3
"""bench/compare_report.py - the records, progress lines, report and plots of
bench/compare_run.sh (ringmesh against direct, HAProxy and nghttpx sidecar pairs).

  compare_report.py --record [...]     one raw record (a JSON line) from one load generator
                                       run: its --json object, the proxies' CPU around it
  compare_report.py --progress RECORD --done N --total N --started EPOCH
                                       one progress line
  compare_report.py --raw FILE --out MD [--perf-dir DIR]
                                       the Markdown report, its .dat files and the PNG plots
                                       (gnuplot: bench/compare_latency.gp, compare_bars.gp)

Each cell is repeated: tables give the median and the min-max of the repeats. Added latency
is a scenario's percentile minus the direct path's, both medians over the repeats of the same
run. CPU per 1000 requests is the proxy's on-CPU time over the measured interval (all its
threads and processes) divided by the requests the load generator counted in it. This
reports; it never fails a build (a missing gnuplot only loses the plots).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the tree from a benchmark run
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from l4_report import busy, machine  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = {
    "direct": "direct (no proxy)",
    "rm-uring": "ringmesh io_uring, h2c between sidecars",
    "rm-epoll": "ringmesh epoll, h2c between sidecars",
    "rm-uring-mtls": "ringmesh io_uring, mTLS h2",
    "rm-epoll-mtls": "ringmesh epoll, mTLS h2",
    "rm-uring-mtls-nometrics": "ringmesh io_uring, mTLS h2, --no-metrics",
    "haproxy": "HAProxy 2.6 pair, mTLS h2",
    "nghttpx": "nghttpx pair, mTLS h2",
}
PEERS = ("haproxy", "nghttpx")
GOAL_CPU, GOAL_P99_US, GOAL_MAX, GOAL_RSS_KB = 0.7, 100, 1.5, 6 * 1024


# ---- records --------------------------------------------------------------------------------

def record(a):
    with open(a.json) as f:
        res = json.loads(next(line for line in f if line.startswith("{")))
    load, size, conns = a.test.split("-")

    def cpu(s0, s1):
        ns0, t0 = (int(x) for x in s0.split())
        ns1, t1 = (int(x) for x in s1.split())
        return {"ns": ns1 - ns0, "ticks": t1 - t0}

    rec = {"scenario": a.scenario, "test": a.test, "load": load, "size": size,
           "conns": int(conns), "rep": a.rep, "attempt": a.attempt, "seconds": a.seconds,
           "foreign_ticks": a.foreign_ticks, "foreign_window_s": a.foreign_window_ms / 1000.0,
           "foreign_pct": round(100.0 * a.foreign_ticks / a.clk_tck /
                                max(a.foreign_window_ms / 1000.0, a.seconds), 1),
           "clk_tck": a.clk_tck,
           "cpu_a": cpu(a.cpu_a0, a.cpu_a1), "cpu_b": cpu(a.cpu_b0, a.cpu_b1),
           "core_a": [int(x) for x in a.core_a.split()],
           "core_b": [int(x) for x in a.core_b.split()],
           "loadgen": a.loadgen, "url": a.url, "result": res}
    print(json.dumps(rec, separators=(",", ":")))


def cpu_s(rec, side):
    """CPU seconds of one pod's proxy in the measured interval (schedstat ns, else ticks)."""
    c = rec["cpu_" + side]
    return c["ns"] / 1e9 if c["ns"] else c["ticks"] / float(rec.get("clk_tck", 100))


def per_1k(rec, side):
    """CPU seconds per 1000 requests, requests = achieved rate x the measured interval."""
    n = rec["result"]["achieved_rate"] * rec["seconds"]
    return cpu_s(rec, side) / n * 1000 if n else float("nan")


def nerr(rec):
    """Failed requests: the load generator's errors and every non-2xx status."""
    r = rec["result"]
    errs = r.get("errors", {})
    n = sum(v for v in errs.values() if isinstance(v, int))
    if "status_non_2xx" not in errs:  # ringmesh-loadgen counts them there too
        n += sum(v for k, v in r.get("status", {}).items() if not k.startswith("2"))
    return n


def other(rec):
    """CPU of processes outside the pods during the run, in % of one core."""
    if "foreign_pct" in rec:
        return rec["foreign_pct"]
    return 100.0 * rec["foreign_ticks"] / rec["clk_tck"] / (rec["seconds"] + 2)


def lat(rec, k):
    return rec["result"]["latency_us"][k]


def progress(a):
    rec = json.loads(a.progress)
    r = rec["result"]
    line = "[bench %s] %d/%d rep %d %-24s %-11s %8.0f req/s  p50 %6s p99 %6s us" % (
        time.strftime("%H:%M:%S"), a.done, a.total, rec["rep"], rec["scenario"], rec["test"],
        r["achieved_rate"], lat(rec, "p50"), lat(rec, "p99"))
    if rec["scenario"] != "direct":
        line += "  CPU/1k req a %.3f b %.3f s" % (per_1k(rec, "a"), per_1k(rec, "b"))
    line += "  errors %d  cores %.0f%%/%.0f%%  others %.0f%%" % (
        nerr(rec), busy(rec["core_a"])[0], busy(rec["core_b"])[0], other(rec))
    if rec["attempt"] > 1:
        line += " (attempt %d)" % rec["attempt"]
    el = time.time() - a.started
    if a.done:
        line += "  eta %.0f min" % (el / a.done * (a.total - a.done) / 60)
    print(line, flush=True)


# ---- the report -----------------------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def mr(xs, fmt):
    xs = [x for x in xs if x == x]
    if not xs:
        return "-"
    s = fmt % statistics.median(xs)
    if len(xs) > 1:
        s += (" (" + fmt + "–" + fmt + ")") % (min(xs), max(xs))
    return s


def ratio(x, y, fmt="%.2f×"):
    return fmt % (x / y) if x == x and y == y and y else "-"


def test_title(t):
    load, size, conns = t.split("-")
    size = {"1k": "1 KiB", "64k": "64 KiB"}[size]
    if load == "lat":
        return "fixed rate, %s responses, %s connections" % (size, conns)
    return "max throughput (closed loop), %s responses, %s connections" % (size, conns)


def pooled_percentiles(recs):
    """Percentile curve points (x = 1/(1-p), latency us) from the runs' histograms pooled."""
    buckets = {}
    for r in recs:
        for upper, c in r["result"].get("histogram", []):
            buckets[upper] = buckets.get(upper, 0) + c
    n = sum(buckets.values())
    if not n:
        return []
    pts, cum, it = [], 0, sorted(buckets.items())
    ps = [0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97, 98, 99, 99.5, 99.7, 99.9,
          99.95, 99.99, 99.995, 99.999]
    ps = [p for p in ps if n * (1 - p / 100) >= 1]  # no point past the data
    i = 0
    for p in ps:
        want = n * p / 100
        while i < len(it) - 1 and cum + it[i][1] < want:
            cum += it[i][1]
            i += 1
        pts.append((1 / (1 - p / 100), it[i][0]))
    return pts


def gnuplot(script, out, **var):
    if not shutil.which("gnuplot"):
        return "gnuplot not installed: no plot"
    e = "; ".join("%s=%s" % (k, json.dumps(v) if isinstance(v, str) else v)
                  for k, v in var.items())
    p = subprocess.run(["gnuplot", "-e", e + "; out=%s" % json.dumps(out),
                        os.path.join(HERE, script)], capture_output=True, text=True)
    return p.stderr.strip() if p.returncode else ""


def report(a):
    recs, after = [], {}
    with open(a.raw) as f:
        for line in f:
            if line.strip():
                o = json.loads(line)
                if "after" in o:
                    after = o["after"]
                else:
                    recs.append(o)
    scen = []
    tests = []
    for r in recs:
        if r["scenario"] not in scen:
            scen.append(r["scenario"])
        if r["test"] not in tests:
            tests.append(r["test"])
    by = {}
    for r in recs:
        by.setdefault((r["scenario"], r["test"]), []).append(r)

    def m(sc, t, f):
        return med([f(r) for r in by.get((sc, t), [])])

    def cell(sc, t, f, fmt):
        return mr([f(r) for r in by.get((sc, t), [])], fmt)

    base = os.path.splitext(a.out)[0]
    stem = os.path.basename(base)
    date = stem[:10]
    reps = max((r["rep"] for r in recs), default=0)
    lat_tests = [t for t in tests if t.startswith("lat-")]
    max_tests = [t for t in tests if t.startswith("max-")]
    proxied = [s for s in scen if s != "direct"]
    loadgen = after.get("loadgen") or (recs[0]["loadgen"] if recs else "?")
    standin = loadgen == "loadgen_h2load.py"
    o = []
    w = o.append
    w("# ringmesh against HAProxy and nghttpx as sidecars, %s" % date)
    w("")
    w("Pod a (the client: the load generator and a's proxy, CPU %s) → pod b (the origin and b's "
      "proxy, CPU %s) over a veth bridge (tests/mesh/lib.sh pods), HTTP/1.1 GETs from the "
      "client, 1 KiB or 64 KiB responses from one-thread haproxy origins "
      "(bench/haproxy-origin.cfg). Every scenario in the same run, interleaved per repetition "
      "(%d repetition%s); cells are the median (min–max) of the repetitions. Made by "
      "`bench/compare_run.sh` (`make bench`, `bench/run.sh compare`)."
      % (a.cpu_a_id, a.cpu_b_id, reps, "" if reps == 1 else "s"))
    w("")
    secs = sorted({(r["load"], r["seconds"]) for r in recs})
    w("Load generator: **%s**%s. %s" % (
        loadgen,
        " — the h2load stand-in (bench/loadgen_h2load.py): NOT open loop, latency not corrected "
        "for coordinated omission, rate split over the connections (--rps per connection, "
        "rounded up); use these numbers for the pipeline, not as results" if standin else
        " (open loop, coordinated-omission corrected)",
        "; ".join("%s runs %g s" % ({"lat": "fixed-rate", "max": "closed-loop"}[l], s)
                  for l, s in secs) + ", each after an uncounted warm-up at the same load."))
    w("")
    busy_runs = [r for r in recs if other(r) > float(a.other_max)]
    if busy_runs:
        w("- **Note: the machine was busy.** %d of %d kept runs had processes outside the pods "
          "using more than %s%% of a core after 4 attempts (up to %.0f%%): those numbers are "
          "perturbed; rerun on a quiet machine before reading them as results." % (
              len(busy_runs), len(recs), a.other_max, max(other(r) for r in busy_runs)))
    for n in after.get("notes", []):
        w("- **Note:** " + n)
    if after.get("notes") or busy_runs:
        w("")

    # goals --------------------------------------------------------------------------------
    lat1k = next((t for t in lat_tests if t.startswith("lat-1k-")), None)
    max1k = [t for t in max_tests if t.startswith("max-1k-")]
    max1k = max1k[-1] if max1k else None
    heads = [s for s in ("rm-uring-mtls", "rm-epoll-mtls", "rm-uring", "rm-epoll") if s in scen]
    w("## Goals (ratios within this run)")
    w("")
    if "haproxy" not in scen:
        w("HAProxy was not run: the CPU and throughput goals cannot be judged.")
        w("")
    w("The mesh runs mTLS between sidecars, so the mTLS rows are the ones the goals are "
      "about; HAProxy's pair is mTLS too. The plaintext (h2c) rows are for information.")
    w("")
    w("| goal | scenario | measured | goal | |")
    w("|---|---|---|---|---|")
    for s in heads:
        note = "" if "mtls" in s else " (plaintext)"
        if lat1k and "haproxy" in scen:
            for side in ("a", "b"):
                rm = m(s, lat1k, lambda r: per_1k(r, side))
                ha = m("haproxy", lat1k, lambda r: per_1k(r, side))
                q = rm / ha if ha == ha and ha else float("nan")
                w("| CPU per 1000 req/s, sidecar %s (%s) | %s%s | %.3f s vs HAProxy %.3f s = "
                  "%.2f× | ≤ %.1f× | %s |" % (side, "client" if side == "a" else "server", s,
                                             note, rm, ha, q, GOAL_CPU, met(q <= GOAL_CPU, q)))
        if lat1k and "direct" in scen:
            d = m("direct", lat1k, lambda r: lat(r, "p99"))
            x = m(s, lat1k, lambda r: lat(r, "p99"))
            w("| p99 added at %s req/s (%s) | %s%s | %.3f ms | ≤ %.2f ms | %s |" % (
                fmt_rate(by[(s, lat1k)]), lat1k, s, note, (x - d) / 1000, GOAL_P99_US / 1000,
                met(x - d <= GOAL_P99_US, x - d)))
        if max1k and "haproxy" in scen:
            rm = m(s, max1k, lambda r: r["result"]["achieved_rate"])
            ha = m("haproxy", max1k, lambda r: r["result"]["achieved_rate"])
            q = rm / ha if ha else float("nan")
            w("| max req/s (%s) | %s%s | %.0f vs HAProxy %.0f = %.2f× | ≥ %.1f× | %s |" % (
                max1k, s, note, rm, ha, q, GOAL_MAX, met(q >= GOAL_MAX, q)))
        for side in ("a", "b"):
            pr = after.get("proxies", {}).get("%s.%s" % (side, s))
            if pr:
                w("| RSS after the run, sidecar %s | %s%s | %.1f MB (peak %.1f MB) | ≤ 6 MB | %s |"
                  % (side, s, note, pr["rss_kb"] / 1024, pr["hwm_kb"] / 1024,
                     met(pr["rss_kb"] <= GOAL_RSS_KB, pr["rss_kb"])))
    w("")
    w("CPU per 1000 req/s is CPU seconds per 1000 requests at the fixed rate (the same "
      "number: CPU seconds each second at 1000 req/s). MB = 2^20 bytes.")
    w("")
    behind = []
    for s in [x for x in ("rm-uring-mtls", "rm-epoll-mtls") if x in scen]:
        for peer in [x for x in PEERS if x in scen]:
            for t in tests:
                rm_cpu = m(s, t, lambda r: per_1k(r, "a") + per_1k(r, "b"))
                pe_cpu = m(peer, t, lambda r: per_1k(r, "a") + per_1k(r, "b"))
                if rm_cpu > pe_cpu * 1.05:
                    behind.append("%s uses %.0f%% more CPU per request than %s in %s (%.3f vs "
                                  "%.3f s per 1000, both proxies)" % (
                                      s, 100 * (rm_cpu / pe_cpu - 1), peer, t, rm_cpu, pe_cpu))
                if t.startswith("max"):
                    x = m(s, t, lambda r: r["result"]["achieved_rate"])
                    y = m(peer, t, lambda r: r["result"]["achieved_rate"])
                    if x < y * 0.95:
                        behind.append("%s does %.0f%% fewer req/s than %s in %s (%.0f vs %.0f)"
                                      % (s, 100 * (1 - x / y), peer, t, x, y))
                else:
                    x, y = m(s, t, lambda r: lat(r, "p99")), m(peer, t, lambda r: lat(r, "p99"))
                    if x > y * 1.1 and x - y > 50:
                        behind.append("%s's p99 is %.0f µs above %s's in %s (%.0f vs %.0f µs)"
                                      % (s, x - y, peer, t, x, y))
    if behind:
        w("Where ringmesh (mTLS) is behind a peer in this run, by more than the noise margins "
          "used here (5% CPU or req/s, 10% and 50 µs p99); the perf section below shows where "
          "its time goes:")
        w("")
        for b in behind:
            w("- " + b)
        w("")

    # latency --------------------------------------------------------------------------------
    plots = []
    if lat_tests:
        w("## Latency at a fixed rate")
        w("")
        w("Percentiles in µs; *added* = the scenario's percentile − the direct path's (medians "
          "over the repetitions). Plot: `%s-lat-*.png` (percentile curves from the load "
          "generator's histograms, repetitions pooled)." % stem)
        w("")
    for t in lat_tests:
        w("### %s" % test_title(t))
        w("")
        w("| scenario | req/s | p50 | p90 | p99 | p99.9 | max | added p50 | added p99 | "
          "added p99.9 | errors |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        dm = {k: m("direct", t, lambda r, k=k: lat(r, k)) for k in ("p50", "p99", "p99_9")}
        for s in scen:
            row = ["**%s**" % NAMES.get(s, s),
                   cell(s, t, lambda r: r["result"]["achieved_rate"], "%.0f")]
            row += [cell(s, t, lambda r, k=k: lat(r, k), "%.0f")
                    for k in ("p50", "p90", "p99", "p99_9", "max")]
            for k in ("p50", "p99", "p99_9"):
                row.append("-" if s == "direct" or "direct" not in scen else
                           "%+.0f" % (m(s, t, lambda r, k=k: lat(r, k)) - dm[k]))
            row.append(str(sum(nerr(r) for r in by.get((s, t), []))))
            w("| " + " | ".join(row) + " |")
        w("")
        dat = "%s-lat-%s.dat" % (base, t[4:])
        names = []
        with open(dat, "w") as f:
            for s in scen:
                pts = pooled_percentiles(by.get((s, t), []))
                if not pts:
                    continue
                names.append(s)
                f.write("# %s\n" % s)
                for x, y in pts:
                    f.write("%g %d\n" % (x, y))
                f.write("\n\n")
        png = "%s-lat-%s.png" % (base, t[4:])
        err = gnuplot("compare_latency.gp", png, dat=dat, names=" ".join(names),
                      ttl="latency, %s (%s)" % (test_title(t), date))
        plots.append((png, err))

    # CPU ------------------------------------------------------------------------------------
    if proxied:
        w("## CPU per 1000 requests")
        w("")
        w("CPU seconds of each proxy per 1000 requests: on-CPU time of all its threads (and "
          "processes: nghttpx's master and worker) over the measured interval, from "
          "/proc/PID/task/*/schedstat (utime+stime from /proc/PID/stat is in the .jsonl), "
          "divided by the requests counted in it. a = the client's proxy, b = the origin's. "
          "Plot: `%s-cpu-*.png`." % stem)
        w("")
        w("| scenario | " + " | ".join("%s a / b / sum" % t for t in tests) + " |")
        w("|---|" + "---|" * len(tests))
        for s in proxied:
            row = ["**%s**" % NAMES.get(s, s)]
            for t in tests:
                row.append("%s / %s / %s" % (
                    cell(s, t, lambda r: per_1k(r, "a"), "%.3f"),
                    cell(s, t, lambda r: per_1k(r, "b"), "%.3f"),
                    "%.3f" % m(s, t, lambda r: per_1k(r, "a") + per_1k(r, "b"))))
            w("| " + " | ".join(row) + " |")
        w("")
        for t in lat_tests:
            dat = "%s-cpu-%s.dat" % (base, t[4:])
            with open(dat, "w") as f:
                f.write("scenario a(client) b(origin)\n")
                for s in proxied:
                    f.write("%s %.4f %.4f\n" % (s, m(s, t, lambda r: per_1k(r, "a")),
                                                m(s, t, lambda r: per_1k(r, "b"))))
            png = "%s-cpu-%s.png" % (base, t[4:])
            err = gnuplot("compare_bars.gp", png, dat=dat, ncol=3,
                          ylab="CPU seconds per 1000 requests",
                          ttl="proxy CPU per 1000 requests, %s (%s)" % (test_title(t), date))
            plots.append((png, err))

    # throughput -------------------------------------------------------------------------------
    if max_tests:
        w("## Max throughput (closed loop)")
        w("")
        w("| scenario | " + " | ".join("%s req/s | × direct | × HAProxy" % t
                                       for t in max_tests) + " | errors |")
        w("|---|" + "---|---|---|" * len(max_tests) + "---|")
        for s in scen:
            row = ["**%s**" % NAMES.get(s, s)]
            for t in max_tests:
                x = m(s, t, lambda r: r["result"]["achieved_rate"])
                row += [cell(s, t, lambda r: r["result"]["achieved_rate"], "%.0f"),
                        ratio(x, m("direct", t, lambda r: r["result"]["achieved_rate"])),
                        ratio(x, m("haproxy", t, lambda r: r["result"]["achieved_rate"]))]
            row.append(str(sum(nerr(r) for t in max_tests for r in by.get((s, t), []))))
            w("| " + " | ".join(row) + " |")
        w("")
        dat = "%s-max.dat" % base
        with open(dat, "w") as f:
            f.write("scenario " + " ".join(max_tests) + "\n")
            for s in scen:
                f.write(s + " " + " ".join(
                    "%.0f" % m(s, t, lambda r: r["result"]["achieved_rate"]) for t in max_tests)
                    + "\n")
        png = "%s-max.png" % base
        plots.append((png, gnuplot("compare_bars.gp", png, dat=dat, ncol=len(max_tests) + 1,
                                   ylab="requests per second",
                                   ttl="max throughput, closed loop (%s)" % date)))
        w("Where the cores went in the closed-loop runs: busy %% of CPU %s / CPU %s (median; "
          "softirq included):" % (a.cpu_a_id, a.cpu_b_id))
        w("")
        w("| scenario | " + " | ".join(max_tests) + " |")
        w("|---|" + "---|" * len(max_tests))
        for s in scen:
            w("| **%s** | " % s + " | ".join(
                "%.0f%% / %.0f%%" % (m(s, t, lambda r: busy(r["core_a"])[0]),
                                     m(s, t, lambda r: busy(r["core_b"])[0]))
                for t in max_tests) + " |")
        w("")

    # io_uring / epoll, metrics -----------------------------------------------------------------
    pairs = [(u, e) for u, e in (("rm-uring", "rm-epoll"), ("rm-uring-mtls", "rm-epoll-mtls"))
             if u in scen and e in scen]
    if pairs:
        w("## io_uring / epoll")
        w("")
        w("Ratios of the medians, io_uring over epoll: above 1 for req/s and below 1 for CPU "
          "means io_uring does better.")
        w("")
        w("| pair | test | max req/s ratio | CPU/1000 req ratio a / b |")
        w("|---|---|---|---|")
        for u, e in pairs:
            for t in tests:
                rq = ratio(m(u, t, lambda r: r["result"]["achieved_rate"]),
                           m(e, t, lambda r: r["result"]["achieved_rate"]))
                w("| %s / %s | %s | %s | %s / %s |" % (
                    u, e, t, rq if t.startswith("max") else "-",
                    ratio(m(u, t, lambda r: per_1k(r, "a")), m(e, t, lambda r: per_1k(r, "a"))),
                    ratio(m(u, t, lambda r: per_1k(r, "b")), m(e, t, lambda r: per_1k(r, "b")))))
        w("")
    if "rm-uring-mtls-nometrics" in scen and "rm-uring-mtls" in scen:
        w("## Per-request metrics on / off")
        w("")
        w("rm-uring-mtls-nometrics over rm-uring-mtls (the same but --no-metrics):")
        w("")
        w("| test | req/s ratio | CPU/1000 req a / b: metrics on → off | p99 µs on → off |")
        w("|---|---|---|---|")
        on, off = "rm-uring-mtls", "rm-uring-mtls-nometrics"
        for t in tests:
            w("| %s | %s | %.3f → %.3f / %.3f → %.3f | %.0f → %.0f |" % (
                t, ratio(m(off, t, lambda r: r["result"]["achieved_rate"]),
                         m(on, t, lambda r: r["result"]["achieved_rate"])),
                m(on, t, lambda r: per_1k(r, "a")), m(off, t, lambda r: per_1k(r, "a")),
                m(on, t, lambda r: per_1k(r, "b")), m(off, t, lambda r: per_1k(r, "b")),
                m(on, t, lambda r: lat(r, "p99")), m(off, t, lambda r: lat(r, "p99"))))
        w("")

    # memory, handshakes -----------------------------------------------------------------------
    if after.get("proxies"):
        w("## Memory")
        w("")
        w("VmRSS / VmHWM after the whole run, KiB (nghttpx: its master and worker summed).")
        w("")
        w("| scenario | a RSS / HWM | b RSS / HWM |")
        w("|---|---|---|")
        for s in proxied:
            cells = []
            for side in ("a", "b"):
                p = after["proxies"].get("%s.%s" % (side, s), {})
                cells.append("%s / %s" % (p.get("rss_kb", "?"), p.get("hwm_kb", "?")))
            w("| **%s** | %s |" % (NAMES.get(s, s), " | ".join(cells)))
        w("")
    tls = after.get("tls_raw")
    w("## mTLS handshakes")
    w("")
    if tls and os.path.exists(tls):
        hs = [json.loads(line) for line in open(tls) if line.strip()]

        def tm(test, key):
            return med([h[key] for h in hs if h.get("test") == test and key in h])
        w("bench/tlsbench.c through sidecar/tls.c (`bench/run.sh tls`, %s), one core: full TLS "
          "1.3 mutual handshakes %.0f/s with client and server on the core (client side alone "
          "%.0f/s per core, server side alone %.0f/s per core); resumed %.0f/s. The peers' "
          "handshake rates were not measured (their connections are pooled in this benchmark, "
          "so handshakes do not show in the request numbers)." % (
              os.path.basename(tls), tm("handshake_full", "per_sec_cpu"),
              tm("handshake_full", "client_per_sec_core"),
              tm("handshake_full", "server_per_sec_core"),
              tm("handshake_resumed", "per_sec_cpu")))
    else:
        w("Not measured (no tlsbench result).")
    w("")

    # perf ---------------------------------------------------------------------------------------
    if a.perf_dir and os.path.isdir(a.perf_dir) and os.listdir(a.perf_dir):
        w("## Where the time goes (perf)")
        w("")
        w("`perf record -F 999 -p PID` of each proxy of each pair during one extra closed-loop "
          "run (%s), one recording per proxy: self time by library (above 1%%) and by symbol "
          "(the top 10; `perf report --no-children --sort dso` and `--sort dso,sym`; "
          "the whole lists in `%s/`). Kernel symbols ([k]) are the proxy's system calls and "
          "the network stack run on its behalf." % (max1k or "1 KiB", os.path.basename(a.perf_dir)))
        w("")
        for s in proxied:
            for side in ("a", "b"):
                fn = os.path.join(a.perf_dir, "%s.%s.txt" % (s, side))
                fd = os.path.join(a.perf_dir, "%s.%s.dso.txt" % (s, side))
                if os.path.exists(fn):
                    lines = [line.rstrip() for line in open(fn) if line.strip()][:10]
                    dsos = [line.rstrip() for line in open(fd) if line.strip()] \
                        if os.path.exists(fd) else []
                    w("**%s, pod %s**: by library, then the top %d symbols" % (
                        s, side, len(lines)))
                    w("")
                    w("```")
                    o.extend(dsos)
                    w("")
                    o.extend(lines)
                    w("```")
                    w("")

    # configurations, checks, machine -------------------------------------------------------------
    w("## Configurations")
    w("")
    w("- **direct**: no proxy, ringmesh-init's rules removed in both pods; the client connects "
      "to the origin's pod address and port.")
    w("- **ringmesh**: `ringmesh-sidecar --io uring|epoll --concurrency 1 --max-request-rate 0 "
      "--config mesh.yaml` in each pod as uid 1337 behind `ringmesh-init` (outbound capture "
      "in a, inbound capture in b); Services 10.96.0.70 (1 KiB origin) and 10.96.0.71 (64 KiB) "
      "with appProtocol http; the client speaks HTTP/1.1 to the VIP, a's sidecar sends the "
      "request over one pooled HTTP/2 connection to b's sidecar, which forwards HTTP/1.1 "
      "(pooled) to the origin from 127.0.0.6. Without certificates that hop is h2c; the "
      "*mTLS* rows add `--cert-dir` (TLS 1.3 with client certificates from `ringmeshctl ca`, "
      "ChaCha20-Poly1305: the cipher tls.c picks with Debian's wolfSSL). `--max-request-rate 0` "
      "lifts the per-connection request limit (50000/s by default), which would otherwise cap "
      "the one pooled connection; the peers have no such limit. *--no-metrics* turns the "
      "per-request labeled metrics off.")
    w("- **HAProxy 2.6 pair**: `bench/haproxy-sidecar-out.cfg` in a and "
      "`bench/haproxy-sidecar-in.cfg` in b (`haproxy -db`, one process, `nbthread 1`, no "
      "`log`, `http-reuse always`, keep-alive both sides; with the h2load stand-in only, a's "
      "also sets the reason phrase OK on 200s, which h2load needs), uid 1337 behind the same "
      "ringmesh-init rules; a's forwards HTTP/2 over TLS 1.3 (`alpn h2`, client certificate, "
      "server name verified) to b's pod address, which b's rules send to b's haproxy (client "
      "certificate required), which forwards HTTP/1.1 to the origin. Origin chosen by Host.")
    w("- **nghttpx pair** (nghttp2-proxy): `nghttpx --conf /dev/null -n1 --single-thread "
      "--log-level=ERROR --no-via --no-ocsp` (no access log), uid 1337 behind the same rules; "
      "a's: frontend `no-tls`, backends `proto=h2;tls` with `--client-cert-file`/"
      "`--client-private-key-file` and `--cacert` (server name checked through `sni=`); b's: "
      "TLS frontend with `--verify-client`, HTTP/1.1 backends (keep-alive) to the origin. "
      "nghttpx runs a master process and a worker process; both are counted.")
    w("- The peers' certificates: one ECDSA P-256 CA from openssl, leaf certificates with DNS "
      "and SPIFFE URI SANs (ringmesh's are P-256 too). OpenSSL negotiates its default TLS 1.3 "
      "suite, TLS_AES_256_GCM_SHA384 with AES-NI; ringmesh with Debian's wolfSSL (no AES-NI "
      "build) uses ChaCha20-Poly1305: the cipher cost is not the same, and that is part of "
      "what is measured (`make WOLFSSL=fast` builds a wolfSSL with AES-NI).")
    w("- CPUs (taskset): the load generator and a's proxy on CPU %s, both origins and b's "
      "proxy on CPU %s; every proxy has one worker thread." % (a.cpu_a_id, a.cpu_b_id))
    w("")
    fr = [other(r) for r in recs]
    w("Checks: processes outside the pods used at most %.0f%% of a core in a kept run "
      "(median %.0f%%); runs over %s%% were redone (%s redone), proxies restarted after dying: "
      "%s. Errors (non-2xx, failed, timed out) over all runs: %d." % (
          max(fr, default=0), med(fr) if fr else 0, a.other_max, after.get("redone", 0),
          after.get("restarts", 0), sum(nerr(r) for r in recs)))
    w("")
    w("## Machine")
    w("")
    o.extend(machine())
    w("- haproxy: %s" % first_line(["haproxy", "-v"]))
    w("- nghttpx: %s" % first_line(["nghttpx", "--version"]))
    w("")
    bad = [(p, e) for p, e in plots if e]
    if plots:
        w("Plots: " + ", ".join("[%s](%s)" % (os.path.basename(p), os.path.basename(p))
                                for p, e in plots if not e) + ".")
    for p, e in bad:
        w("- plot %s failed: %s" % (os.path.basename(p), e.splitlines()[-1] if e else "?"))
    w("")
    with open(a.out, "w") as f:
        f.write("\n".join(o))
    print("\n".join(o))


def met(ok, x):
    if x != x:
        return "-"
    return "met" if ok else "**missed**"


def fmt_rate(recs):
    return "%.0f" % med([r["result"]["target_rate"] or r["result"]["achieved_rate"]
                         for r in recs])


def first_line(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "?"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--record", action="store_true")
    p.add_argument("--scenario")
    p.add_argument("--test")
    p.add_argument("--rep", type=int)
    p.add_argument("--attempt", type=int, default=1)
    p.add_argument("--seconds", type=float)
    p.add_argument("--foreign-ticks", type=int, default=0)
    p.add_argument("--foreign-window-ms", type=int, default=0)
    p.add_argument("--clk-tck", type=int, default=100)
    for k in ("cpu-a0", "cpu-a1", "cpu-b0", "cpu-b1"):
        p.add_argument("--" + k, default="0 0")
    p.add_argument("--core-a", default="0 0 0")
    p.add_argument("--core-b", default="0 0 0")
    p.add_argument("--loadgen")
    p.add_argument("--url")
    p.add_argument("--json")
    p.add_argument("--progress")
    p.add_argument("--done", type=int, default=0)
    p.add_argument("--total", type=int, default=0)
    p.add_argument("--started", type=float, default=time.time())
    p.add_argument("--raw")
    p.add_argument("--out")
    p.add_argument("--perf-dir")
    p.add_argument("--cpu-a-id", type=int, default=0)
    p.add_argument("--cpu-b-id", type=int, default=1)
    p.add_argument("--other-max", default="10")
    a = p.parse_args()
    if a.record:
        record(a)
    elif a.progress:
        progress(a)
    elif a.raw:
        report(a)
    else:
        p.error("one of --record, --progress, --raw")


if __name__ == "__main__":
    main()
