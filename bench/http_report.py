#!/usr/bin/env python3
"""bench/http_report.py - the records and the report of bench/http_run.sh (the HTTP benchmark).

  http_report.py --record [...]      one raw record (a JSON line) from one h2load run: its
                                     stdout, its per-request log, the sidecars' /stats and
                                     CPU ticks around it (see --help for the arguments)
  http_report.py --progress RECORD   one progress line for one raw record
  http_report.py --raw FILE [...]    the Markdown report on stdout

Latency percentiles come from h2load's --log-file (one line per finished request: start
time, status, request time in µs), nearest rank. Each cell is repeated; the tables give the
median and the min-max of the repeats, ratios are medians over the direct path's median.
Sidecar CPU is utime+stime of the sidecar process (all threads) over the run, per 10,000
requests done. This reports, it never fails a build.
"""
import argparse
import json
import os
import re
import statistics
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the tree from a benchmark run
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from l4_report import busy, machine, med_range, other_pct  # noqa: E402

TESTS = {
    "h1get": "HTTP/1.1 GET, 1 KiB response",
    "h1post": "HTTP/1.1 POST, 1 KiB request and 1 KiB response",
    "h2get": "HTTP/2 (h2c prior knowledge) GET, 1 KiB response",
    "h2post": "HTTP/2 (h2c prior knowledge) POST, 1 KiB request and 1 KiB response",
    "h1get64k": "HTTP/1.1 GET, 64 KiB response (throughput)",
    "h2get64k": "HTTP/2 (h2c prior knowledge) GET, 64 KiB response (throughput)",
}
NAMES = {
    "direct": "direct (no sidecars)",
    "uring": "sidecars io_uring, appProtocol http/h2c",
    "uring-l4": "sidecars io_uring, appProtocol tcp (L4 relay)",
    "epoll": "sidecars epoll, appProtocol http/h2c",
    "epoll-l4": "sidecars epoll, appProtocol tcp (L4 relay)",
    "uring-mtls": "sidecars io_uring, mTLS between them, appProtocol http/h2c",
    "epoll-mtls": "sidecars epoll, mTLS between them, appProtocol http/h2c",
}
UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6}


def parse_h2load(out_path, log_path):
    """h2load's summary (stdout) and its per-request log -> the run's result."""
    with open(out_path) as f:
        text = f.read()
    r = {"tool": "h2load"}
    m = re.search(r"^finished in ([0-9.]+)(us|ms|s), ([0-9.]+) req/s", text, re.M)
    if not m:
        raise SystemExit("http_report: no 'finished in' line in %s:\n%s" % (out_path, text[-800:]))
    r["elapsed_s"] = float(m.group(1)) * UNITS_US[m.group(2)] / 1e6
    r["req_per_s"] = float(m.group(3))
    m = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text, re.M)
    if not m:
        raise SystemExit("http_report: no 'requests:' line in %s" % out_path)
    for k, v in zip(("total", "started", "done", "succeeded", "failed", "errored", "timeout"),
                    m.groups()):
        r[k] = int(v)
    m = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    r["status_2xx"] = int(m.group(1)) if m else 0
    r["status_other"] = sum(int(x) for x in m.groups()[1:]) if m else 0
    m = re.search(r"^time for request:\s+([0-9.]+)(us|ms|s)\s+([0-9.]+)(us|ms|s)\s+"
                  r"([0-9.]+)(us|ms|s)\s+([0-9.]+)(us|ms|s)", text, re.M)
    lat = {}
    if m:
        lat["h2load_mean"] = float(m.group(5)) * UNITS_US[m.group(6)]
        lat["h2load_sd"] = float(m.group(7)) * UNITS_US[m.group(8)]
    # "start_us <TAB> status <TAB> request_us" per request; a run can log a million lines,
    # so split the whole file at once rather than line by line
    with open(log_path) as f:
        tok = f.read().split()
    n = len(tok) // 3
    times = sorted(int(d) for s, d in zip(tok[1:3 * n:3], tok[2:3 * n:3]) if s[0] == "2")
    r["logged_2xx"] = len(times)
    if times:
        def pct(p):  # nearest rank
            return times[max(0, min(len(times) - 1, int(-(-p * len(times) // 100)) - 1))]
        lat.update(mean=round(sum(times) / len(times), 1), p50=pct(50), p90=pct(90),
                   p99=pct(99), p999=pct(99.9), max=times[-1])
    r["lat_us"] = lat
    return r


def parse_stats(path):
    """/stats text ('key: value' lines) -> {key: int} for the numeric ones."""
    st = {}
    try:
        with open(path) as f:
            for line in f:
                k, sep, v = line.partition(":")
                v = v.strip()
                if sep and v.lstrip("-").isdigit():
                    st[k.strip()] = int(v)
    except OSError:
        pass
    return st


def delta(before, after):
    a, b = parse_stats(before), parse_stats(after)
    return {k: v - a.get(k, 0) for k, v in b.items() if v != a.get(k, 0)}


def record(a):
    rec = {"config": a.config, "test": a.test, "rep": a.rep, "attempt": a.attempt,
           "foreign_ticks": a.foreign_ticks, "sc_ticks_a": a.ticks_a, "sc_ticks_b": a.ticks_b,
           "cpu_a": [int(x) for x in a.cpu_a.split()], "cpu_b": [int(x) for x in a.cpu_b.split()]}
    if a.config != "direct":
        rec["sc_delta_a"] = delta(*a.stats_a)
        rec["sc_delta_b"] = delta(*a.stats_b)
    r = parse_h2load(a.h2load_out, a.h2load_log)
    r.update(url=a.url, conns=a.conns, streams=a.streams, body_len=a.body_len,
             resp_len=a.resp_len)
    rec["result"] = r
    print(json.dumps(rec, separators=(",", ":")))


def resp_len(r):
    return r.get("resp_len", 1024)


def mb_s(r):
    """MB/s of response bodies (req/s x the body size)."""
    return r["req_per_s"] * resp_len(r) / 1e6


def errors(r):
    return r["failed"] + r["errored"] + r["timeout"] + r["status_other"]


def per_10k(rec, side):
    done = rec["result"]["done"]
    return rec["sc_ticks_" + side] / 100.0 / (done / 1e4) if done else 0.0


def progress(rec):
    r = rec["result"]
    ba, sa = busy(rec["cpu_a"])
    bb, sb = busy(rec["cpu_b"])
    lat = r["lat_us"]
    line = "[bench] rep %d %-10s %-8s %8.0f req/s %7.1f MB/s  p50 %5s p99 %6s us  errors %d  " \
        "CPU a %3.0f%% b %3.0f%%" % (rec["rep"], rec["config"], rec["test"], r["req_per_s"],
                                     mb_s(r), lat.get("p50", "?"), lat.get("p99", "?"),
                                     errors(r), ba, bb)
    if sa + sb >= 1:
        line += " (steal %.0f%%/%.0f%%)" % (sa, sb)
    line += "  others %.0f%%" % other_pct(rec)
    if rec.get("attempt", 1) > 1:
        line += " (attempt %d)" % rec["attempt"]
    if rec["config"] != "direct":
        line += "  sidecar CPU s/10k req a %.3f b %.3f, cx a %d b %d" % (
            per_10k(rec, "a"), per_10k(rec, "b"), rec["sc_delta_a"].get("outbound.cx_total", 0),
            rec["sc_delta_b"].get("inbound.cx_total", 0))
    print(line, flush=True)


def saw(d, direction, bytes_key, want_bytes, done):
    """'' if one sidecar's counters show the run: its byte counter grew by want_bytes, or a
    request counter of that direction (any key with "rq" or "request") by the requests done."""
    got = d.get("%s.%s" % (direction, bytes_key), 0)
    if got >= want_bytes:
        return ""
    rq = [(k, v) for k, v in d.items() if k.startswith(direction + ".") and
          ("rq" in k or "request" in k) and v >= done]
    if rq:
        return ""
    return "%s.%s +%d < %d and no %s request counter +%d" % (direction, bytes_key, got,
                                                             want_bytes, direction, done)


def through_both(rec):
    """'' if the run went through both sidecars, else what is missing."""
    r = rec["result"]
    bad = []
    a = saw(rec["sc_delta_a"], "outbound", "bytes_tx", resp_len(r) * r["done"], r["done"])
    if a:
        bad.append("a " + a)
    b = saw(rec["sc_delta_b"], "inbound", "bytes_rx", r["body_len"] * r["done"] or r["done"],
            r["done"])
    if b:
        bad.append("b " + b)
    return "; ".join(bad)


def report(a):
    recs, failed, after = [], [], {}
    with open(a.raw) as f:
        for line in f:
            if not line.strip():
                continue
            o = json.loads(line)
            if "after" in o:
                after = o["after"]
            elif "error" in o:
                failed.append(o)
            else:
                recs.append(o)
    configs, tests = [], []
    for r in recs + failed:
        if r["config"] not in configs:
            configs.append(r["config"])
        if r["test"] not in tests:
            tests.append(r["test"])
    by = {}
    for r in recs:
        by.setdefault((r["config"], r["test"]), []).append(r)
    tck = float(a.clk_tck)

    def per10k(rec, side):
        return rec["sc_ticks_" + side] / tck / (rec["result"]["done"] / 1e4)

    out = ["# ringmesh HTTP benchmark, %s" % os.path.basename(a.raw)[:10], ""]
    out.append(
        "Pod a's client → pod b's origin over a veth bridge (tests/mesh/lib.sh pods), 1 KiB "
        "responses (and 1 KiB request bodies for POST), `h2load` (one thread) for HTTP/1.1 "
        "(`--h1`, %s connections, one request at a time each) and HTTP/2 (h2c prior knowledge, "
        "%s connections × %s concurrent streams), against a one-thread haproxy 2.6 origin "
        "(bench/haproxy-origin.cfg); %d s per run, %d repeats per cell, interleaved (rep 1: %s; "
        "rep 2: ...). Cells: median (min–max) of the repeats. Latency is h2load's request time "
        "(request sent → response complete) from its per-request log, pooled per run, "
        "nearest-rank percentiles; the table shows the median over the repeats. The 64 KiB "
        "tests GET a 64 KiB body from a second haproxy (the same config, tune.bufsize 131072); "
        "MB/s is req/s × the response body." % (
            a.h1_conns, a.h2_conns, a.h2_streams, a.seconds, a.reps, ", ".join(configs)))
    out.append("")
    out.append("Paths: **direct**: the client connects to the origin's pod address, "
               "ringmesh-init's rules removed in both pods (the sidecars stay up but see "
               "nothing). **appProtocol http/h2c**: the client connects to Service VIP "
               "10.96.0.60 (port 80 → the origin's HTTP/1.1 port, appProtocol http; port 81 → "
               "its h2c port, appProtocol h2c), through pod a's sidecar (outbound) and pod b's "
               "(inbound). **appProtocol tcp (L4 relay)**: the same through Service 10.96.0.61, "
               "whose ports say appProtocol tcp, so both sidecars relay bytes; it is the L4 "
               "baseline the HTTP path is compared with. **mTLS**: another sidecar pair of the "
               "same backend started with `--cert-dir` (workloads default/client and "
               "default/origin from `ringmeshctl ca`), the same Service as appProtocol http/h2c: "
               "a's sidecar sends HTTP/2 over TLS 1.3 (ChaCha20-Poly1305, ALPN h2) to b's, "
               "which verifies it (PERMISSIVE) and talks plaintext to the origin. The 64 KiB "
               "tests use Service 10.96.0.62 (http/h2c) the same way; they are not run on the "
               "L4 relay paths.")
    out.append("")
    if failed:
        out.append("**Not measured**: a sidecar died in each of the 4 attempts of these runs "
                   "(the rows below are the repeats that did run):")
        out.append("")
        for f in failed:
            out.append("- %s %s rep %d: %s" % (f["config"], f["test"], f["rep"], f["error"]))
        out.append("")
    base = {t: statistics.median(r["result"]["req_per_s"] for r in by[("direct", t)])
            for t in tests if ("direct", t) in by}
    for t in tests:
        out.append("### %s" % TESTS.get(t, t))
        out.append("")
        out.append("| path | req/s | MB/s | × direct | mean µs | p50 µs | p99 µs | p99.9 µs "
                   "| sidecar CPU s / 10k req (a / b) | errors |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for cfg in configs:
            rs = by.get((cfg, t), [])
            if not rs:
                if any(f["config"] == cfg and f["test"] == t for f in failed):
                    out.append("| **%s** | not measured: the sidecar died |" % NAMES.get(cfg, cfg)
                               + " - |" * 8)
                continue
            xs = [r["result"]["req_per_s"] for r in rs]
            row = ["**%s**" % NAMES.get(cfg, cfg), med_range(xs, "%.0f"),
                   "%.1f" % statistics.median(mb_s(r["result"]) for r in rs),
                   "%.2f×" % (statistics.median(xs) / base[t]) if base.get(t) else "-"]
            for k in ("mean", "p50", "p99", "p999"):
                ls = [r["result"]["lat_us"].get(k) for r in rs
                      if r["result"]["lat_us"].get(k) is not None]
                row.append("%.0f" % statistics.median(ls) if ls else "-")
            if cfg == "direct":
                row.append("-")
            else:
                row.append("%s / %s" % (
                    med_range([per10k(r, "a") for r in rs if r["result"]["done"]], "%.3f"),
                    med_range([per10k(r, "b") for r in rs if r["result"]["done"]], "%.3f")))
            row.append(str(sum(errors(r["result"]) for r in rs)))
            out.append("| " + " | ".join(row) + " |")
        out.append("")

    # mTLS against plaintext on the same backend: req/s and sidecar CPU per request
    mrows = []
    for io in ("uring", "epoll"):
        for t in tests:
            pl, mt = by.get((io, t), []), by.get((io + "-mtls", t), [])
            if not pl or not mt:
                continue
            rp = statistics.median(r["result"]["req_per_s"] for r in pl)
            rm = statistics.median(r["result"]["req_per_s"] for r in mt)

            def cpu(rs, side):
                v = [per10k(r, side) for r in rs if r["result"]["done"]]
                return statistics.median(v) if v else 0.0

            def p99(rs):
                v = [r["result"]["lat_us"].get("p99") for r in rs
                     if r["result"]["lat_us"].get("p99") is not None]
                return statistics.median(v) if v else 0
            mrows.append("| %s | %s | %.0f | %.0f | %.2f× | %.0f / %.0f | %.3f / %.3f | "
                         "%.3f / %.3f |" % (
                             io, t, rp, rm, rm / rp if rp else 0, p99(pl), p99(mt),
                             cpu(pl, "a"), cpu(mt, "a"), cpu(pl, "b"), cpu(mt, "b")))
    if mrows:
        out.append("### mTLS against plaintext (same backend, same Service)")
        out.append("")
        out.append("| backend | test | plaintext req/s | mTLS req/s | mTLS / plaintext "
                   "| p99 µs plain / mTLS | a CPU s/10k req plain / mTLS "
                   "| b CPU s/10k req plain / mTLS |")
        out.append("|---|---|---|---|---|---|---|---|")
        out += mrows
        out.append("")

    out.append("Sidecar CPU: utime+stime of the sidecar (all threads, /proc/PID/stat) over the "
               "run divided by the requests done; a = client pod (outbound), b = server pod "
               "(inbound). Sidecar memory after the whole run (VmRSS / VmHWM, KiB):")
    out.append("")
    ios = [c for c in configs if c in ("uring", "epoll", "uring-mtls", "epoll-mtls")]
    if ios:
        out.append("| sidecars | a RSS / HWM KiB | b RSS / HWM KiB |")
        out.append("|---|---|---|")
        for io in ios:
            row = ["**%s**" % io]
            for side in ("a", "b"):
                s = after.get("sidecars", {}).get("%s.%s" % (side, io), {})
                row.append("%s / %s" % (s.get("rss_kb", "?"), s.get("hwm_kb", "?")))
            out.append("| " + " | ".join(row) + " |")
        out.append("")

    out.append("Where the CPU went: busy % of each pod's core during the runs (median; busy = "
               "everything but idle and iowait, softirq included), core a / core b.")
    out.append("")
    out.append("| path | " + " | ".join(t for t in tests) + " |")
    out.append("|---|" + "---|" * len(tests))
    steal = []
    for cfg in configs:
        row = ["**%s**" % cfg]
        for t in tests:
            rs = by.get((cfg, t), [])
            if not rs:
                row.append("-")
                continue
            row.append("%.0f%% / %.0f%%" % (statistics.median([busy(r["cpu_a"])[0] for r in rs]),
                                            statistics.median([busy(r["cpu_b"])[0] for r in rs])))
            steal += [busy(r["cpu_a"])[1] for r in rs] + [busy(r["cpu_b"])[1] for r in rs]
        out.append("| " + " | ".join(row) + " |")
    out.append("")

    bad = ["%s %s rep %d: %s" % (r["config"], r["test"], r["rep"], through_both(r))
           for r in recs if r["config"] != "direct" and through_both(r)]
    # How many connections b's sidecar accepted per run on the http/h2c Service: the client's
    # own while the sidecars relay L4, the outbound sidecar's pooled HTTP/2 ones with the engine.
    pooled = []
    for cfg in ("uring", "epoll", "uring-mtls", "epoll-mtls"):
        for t in tests:
            for r in by.get((cfg, t), []):
                pooled.append("%d/%d" % (r["sc_delta_b"].get("inbound.cx_total", 0),
                                         r["result"]["conns"]))
    stalled = ["%s %s rep %d (%.0f req/s)" % (r["config"], r["test"], r["rep"],
                                                r["result"]["req_per_s"]) for r in recs
               if base.get(r["test"]) and r["result"]["req_per_s"] < base[r["test"]] / 100]
    nerr = sum(errors(r["result"]) for r in recs)
    # mTLS runs: b's sidecar took its connections over TLS (inbound.cx_mtls or
    # inbound.tls_handshakes grew; pooled connections may outlive one run, so a run with
    # neither is checked against the pair's earlier runs) and no plaintext run did
    tls_seen, tls_bad = {}, []
    for r in recs:
        d = r.get("sc_delta_b", {})
        n = d.get("inbound.cx_mtls", 0) + d.get("inbound.tls_handshakes", 0)
        if r["config"].endswith("-mtls"):
            tls_seen[r["config"]] = tls_seen.get(r["config"], 0) + n
        elif r["config"] != "direct" and n:
            tls_bad.append("%s %s rep %d: TLS on a plaintext pair" % (r["config"], r["test"],
                                                                      r["rep"]))
    tls_bad += ["%s: no TLS connection on b's inbound side" % c for c, n in tls_seen.items()
                if not n]
    # (against "succeeded", not the 2xx status count: h2load counts a status when the head
    # arrives, so a response cut off by the end of the run is a 2xx that never finished)
    lost = [r for r in recs if r["result"]["logged_2xx"] < r["result"]["succeeded"]]
    out.append(
        "Checks: every sidecar run's traffic went through both sidecars (a's outbound.bytes_tx "
        "grew by the response body per response and b's inbound.bytes_rx by the request bodies, "
        "or a request counter of theirs by the requests done): %s. mTLS pairs took their "
        "connections over TLS (b's inbound.cx_mtls + inbound.tls_handshakes summed over the "
        "pair's runs: %s; the HTTP/2 connections between the sidecars are pooled, so a few) and the plaintext ones "
        "did not: %s. Failed, errored, timed-out or non-2xx "
        "requests: %d. Runs below 1%% of the direct path's req/s (stalled): %s. Runs whose log held fewer 2xx requests than h2load's succeeded count: %d. "
        "Connections b's sidecar accepted per run on the http/h2c Service (accepted/client "
        "connections; equal while the sidecars relay L4, fewer once the outbound sidecar pools "
        "HTTP/2 to its peer): %s. Steal time: max %.1f%% of a core per run. This machine is "
        "shared: user-space CPU of processes outside the bench pods during a run was at most "
        "%.0f%% of a core in a kept run (median %.0f%%); a run where it passed %d%% was repeated "
        "(%d repeated runs). Sidecars that died during a run (crashed or killed; restarted, and "
        "the run repeated): %s." % (
            "yes" if not bad else "NO: " + "; ".join(bad),
            ", ".join("%s +%d" % kv for kv in tls_seen.items()) or "no mTLS runs",
            "yes" if not tls_bad else "NO: " + "; ".join(tls_bad), nerr,
            ", ".join(stalled) or "none", len(lost),
            ", ".join(sorted(set(pooled), key=pooled.index)) or "-",
            max(steal) if steal else 0, max(other_pct(r) for r in recs) if recs else 0,
            statistics.median(other_pct(r) for r in recs) if recs else 0, a.other_max,
            sum(r.get("attempt", 1) - 1 for r in recs), after.get("restarts", 0)))
    out.append("")
    # The HTTP engine's request counters (rq_*, response flags, pooled upstream connections),
    # summed over each configuration's kept runs; absent while the sidecars relay L4.
    rq_rows = []
    for cfg in configs:
        if cfg == "direct":
            continue
        cells = []
        for side in ("a", "b"):
            tot = {}
            for r in recs:
                if r["config"] == cfg:
                    for k, v in r["sc_delta_" + side].items():
                        if ".rq_" in k or ".upstream_cx" in k:
                            tot[k] = tot.get(k, 0) + v
            cells.append(", ".join("%s +%d" % (k, v) for k, v in sorted(tot.items())) or "-")
        if cells != ["-", "-"]:
            rq_rows.append("| **%s** | %s | %s |" % (cfg, cells[0], cells[1]))
    if rq_rows:
        out.append("Request counters of the sidecars (/stats deltas summed over the kept runs):")
        out.append("")
        out.append("| path | a (outbound) | b (inbound) |")
        out.append("|---|---|---|")
        out += rq_rows
        out.append("")
    keys = ("outbound.cx_total", "outbound.cx_service", "inbound.cx_total", "outbound.tls_handshakes",
            "inbound.tls_handshakes", "inbound.cx_mtls", "outbound.cx_reset",
            "inbound.cx_reset", "outbound.cx_connect_fail", "inbound.cx_connect_fail",
            "buffers.exhausted", "server.active_connections")
    scs = after.get("sidecars", {})
    if scs:
        out.append("Sidecar counters after the run (from /stats):")
        out.append("")
        out.append("| sidecar | " + " | ".join(keys) + " |")
        out.append("|---|" + "---|" * len(keys))
        for name in sorted(scs):
            st = dict(kv.split(": ", 1) for kv in scs[name].get("stats", "").split(";")
                      if ": " in kv)
            out.append("| %s | " % name + " | ".join(st.get(k, "?") for k in keys) + " |")
        out.append("")
    out.append(
        "Setup: pod a (h2load; its sidecars) pinned to CPU %s, pod b (haproxy, `nbthread 1`, "
        "uid 1000; its sidecars) pinned to CPU %s, with `taskset`; sidecars run `--concurrency "
        "1`, default buffers and `--config` with both Services and their EndpointSlices, as uid "
        "1337 behind `ringmesh-init` (an io_uring and an epoll pair, and one more of each "
        "with `--cert-dir` for mTLS, up for the whole run on their own ports; the rules are switched between configurations). h2load writes one "
        "log line per request (a write(2) each, to tmpfs), which costs the client about 1 µs "
        "per request in every configuration alike. Origin RSS after the run: %s KiB." % (
            a.cpu_a, a.cpu_b, after.get("origin_rss_kb", "?")))
    out.append("")
    out.append("Machine:")
    out.append("")
    out += machine()
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--record", action="store_true")
    p.add_argument("--progress")
    p.add_argument("--raw")
    # --record
    p.add_argument("--config")
    p.add_argument("--test")
    p.add_argument("--rep", type=int)
    p.add_argument("--attempt", type=int, default=1)
    p.add_argument("--foreign-ticks", type=int, default=0)
    p.add_argument("--ticks-a", type=int, default=0)
    p.add_argument("--ticks-b", type=int, default=0)
    p.add_argument("--cpu-a", help="'busy steal total' jiffies of core a over the run")
    p.add_argument("--cpu-b")
    p.add_argument("--stats-a", nargs=2, metavar=("BEFORE", "AFTER"))
    p.add_argument("--stats-b", nargs=2, metavar=("BEFORE", "AFTER"))
    p.add_argument("--h2load-out")
    p.add_argument("--h2load-log")
    p.add_argument("--url")
    p.add_argument("--conns", type=int)
    p.add_argument("--streams", type=int)
    p.add_argument("--body-len", type=int, default=0)
    p.add_argument("--resp-len", type=int, default=1024)
    # --raw
    p.add_argument("--clk-tck", default="100")
    p.add_argument("--seconds", type=int, default=3)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--h1-conns", default="8")
    p.add_argument("--h2-conns", default="4")
    p.add_argument("--h2-streams", default="10")
    p.add_argument("--cpu-a-id", dest="cpu_a_id", default="0")
    p.add_argument("--cpu-b-id", dest="cpu_b_id", default="1")
    p.add_argument("--other-max", type=int, default=10)
    a = p.parse_args()
    if a.record:
        record(a)
    elif a.progress:
        progress(json.loads(a.progress))
    elif a.raw:
        a.cpu_a, a.cpu_b = a.cpu_a_id, a.cpu_b_id
        sys.stdout.write(report(a))
    else:
        p.error("want --record, --progress RECORD or --raw FILE")


if __name__ == "__main__":
    main()
