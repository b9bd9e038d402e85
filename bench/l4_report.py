#!/usr/bin/env python3
"""bench/l4_report.py - turns bench/run.sh's raw runs (JSON lines) into its report.

  l4_report.py --progress RECORD     one progress line for one raw record
  l4_report.py --raw FILE [...]      the Markdown report (tables + machine) on stdout
  l4_report.py --snap NS,NS...       "pid ticks" of every user-space process outside those
                                     netns (other people's work on a shared machine)
  l4_report.py --foreign BEFORE AFTER  the CPU ticks those processes used in between

Each measurement is repeated; the tables give the median and the min-max of the repeats.
Ratios are medians over the direct path's median. Sidecar CPU is utime+stime of the
sidecar process (all threads) over the run, per GB the server received or per 1000
connections completed. No timing is judged here: this reports, it never fails a build.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

TESTS = {"tp1": "throughput, 1 stream", "tp8": "throughput, 8 streams", "cr": "connection rate"}


def value(rec):
    r = rec["result"]
    return r["mbytes_per_s"] if r["mode"] == "throughput" else r["conn_per_s"]


def work(rec):
    """GB received by the server, or thousands of connections completed."""
    r = rec["result"]
    return r["bytes_acked"] / 1e9 if r["mode"] == "throughput" else r["completed"] / 1e3


def busy(cpu):
    busy_j, steal_j, total_j = cpu
    return (100.0 * busy_j / total_j if total_j else 0.0,
            100.0 * steal_j / total_j if total_j else 0.0)


def snap(netns):
    """utime+stime of every user-space process not in one of our netns (by inode)."""
    ours = set()
    for n in netns.split(","):
        try:
            ours.add(os.stat("/var/run/netns/" + n).st_ino)
        except OSError:
            pass
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            if os.stat("/proc/%s/ns/net" % d).st_ino in ours:
                continue
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rfind(")") + 2:].split()
        # fields[0] is field 3 (state); ppid is field 4, utime 14, stime 15
        if fields[1] == "2" or d == "2":
            continue  # kernel threads
        print(d, int(fields[11]) + int(fields[12]))


def foreign(before, after):
    def load(path):
        with open(path) as f:
            return {p: int(t) for p, t in (line.split() for line in f if line.strip())}
    b, a = load(before), load(after)
    print(sum(max(0, t - b.get(p, 0)) for p, t in a.items()))


def progress(rec):
    r = rec["result"]
    unit = "MB/s" if r["mode"] == "throughput" else "conn/s"
    ba, sa = busy(rec["cpu_a"])
    bb, sb = busy(rec["cpu_b"])
    line = "[bench] rep %d %-6s %-4s %9.1f %-6s errors %d  CPU a %3.0f%% b %3.0f%%" % (
        rec["rep"], rec["config"], rec["test"], value(rec), unit, r["errors"], ba, bb)
    if sa + sb >= 1:
        line += " (steal %.0f%%/%.0f%%)" % (sa, sb)
    line += "  others %.0f%%" % other_pct(rec)
    if rec.get("attempt", 1) > 1:
        line += " (attempt %d)" % rec["attempt"]
    if rec["config"] != "direct":
        line += "  sidecar CPU a %.2fs b %.2fs, cx a %d b %d" % (
            rec["sc_ticks_a"] / 100.0, rec["sc_ticks_b"] / 100.0, rec["sc_cx_a"], rec["sc_cx_b"])
    if r["mode"] == "connrate":
        line += "  p50 %d us p99 %d us" % (r["lat_us_p50"], r["lat_us_p99"])
    print(line, flush=True)


def other_pct(rec):
    """CPU of processes outside our pods during the run, in % of one core."""
    el = rec["result"]["elapsed_s"] or 1
    return 100.0 * rec.get("foreign_ticks", 0) / 100.0 / el


def med_range(xs, fmt):
    if not xs:
        return "-"
    return (fmt + " (" + fmt + "–" + fmt + ")") % (statistics.median(xs), min(xs), max(xs))


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def describe(root):
    """HEAD, and the files changed outside bench/ if the tree is dirty."""
    commit = sh(["git", "-C", root, "rev-parse", "--short", "HEAD"]) or "?"
    lines = sh(["git", "-C", root, "status", "--porcelain", "-uno"]).splitlines()
    dirty = [f for f in (line.split(None, 1)[1] for line in lines) if not f.startswith("bench/")]
    if dirty:
        commit += " with uncommitted changes in " + ", ".join(dirty)
    return commit


def machine():
    model, flags = "?", ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k.strip() == "model name" and model == "?":
                model = v.strip()
            if k.strip() == "flags" and not flags:
                flags = v
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1048576)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    commit = os.environ.get("RINGMESH_COMMIT") or (
        describe(root) + " (the binaries `make bench` built, copied at the start of the run)")
    return [
        "- `nproc`: %s" % sh(["nproc"]),
        "- kernel: %s (%s)" % (platform.release(), platform.machine()),
        "- CPU: %s%s" % (model, ", under a hypervisor" if " hypervisor" in flags else ""),
        "- memory: %s" % mem,
        "- ringmesh: %s" % commit,
    ]


def report(a):
    recs, after = [], {}
    with open(a.raw) as f:
        for line in f:
            if not line.strip():
                continue
            o = json.loads(line)
            if "after" in o:
                after = o["after"]
            else:
                recs.append(o)
    configs = []
    for r in recs:
        if r["config"] not in configs:
            configs.append(r["config"])
    by = {}
    for r in recs:
        by.setdefault((r["config"], r["test"]), []).append(r)
    tck = float(a.clk_tck)

    def vals(cfg, test):
        return [value(r) for r in by.get((cfg, test), [])]

    out = []
    out.append("# ringmesh L4 benchmark, %s" % os.path.basename(a.raw)[:10])
    out.append("")
    out.append("Pod a's client → pod b's server over a veth bridge (tests/mesh/lib.sh pods), "
               "`bench/tcpbench`, %d s per run, %d repeats per cell, interleaved "
               "(rep 1: direct, uring, epoll; rep 2: ...). Cells: median (min–max). "
               "Throughput is what the server counted (MB = 10^6 bytes) over the time from the "
               "first byte sent to the server's count coming back. The connection rate is full "
               "exchanges (connect, 64 B request, 64 B response, server closes) per second at "
               "concurrency %d." % (a.seconds, a.reps, a.concurrency))
    out.append("")
    out.append("| path | 1 stream MB/s | × direct | 8 streams MB/s | × direct | conn/s | × direct "
               "| conn p50 / p99 µs | errors |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    base = {t: statistics.median(vals("direct", t)) if vals("direct", t) else 0 for t in TESTS}
    names = {"direct": "direct (no sidecars)", "uring": "two sidecars, io_uring",
             "epoll": "two sidecars, epoll"}
    for cfg in configs:
        row = ["**%s**" % names.get(cfg, cfg)]
        for t, fmt in (("tp1", "%.0f"), ("tp8", "%.0f"), ("cr", "%.0f")):
            xs = vals(cfg, t)
            row.append(med_range(xs, fmt))
            row.append("%.2f×" % (statistics.median(xs) / base[t]) if xs and base[t] else "-")
        cr = by.get((cfg, "cr"), [])
        row.append("%d / %d" % (statistics.median([r["result"]["lat_us_p50"] for r in cr]),
                                statistics.median([r["result"]["lat_us_p99"] for r in cr]))
                   if cr else "-")
        row.append(str(sum(r["result"]["errors"] for r in recs if r["config"] == cfg)))
        out.append("| " + " | ".join(row) + " |")
    out.append("")

    sc_cfgs = [c for c in configs if c != "direct"]
    if sc_cfgs:
        out.append("Sidecar cost: CPU seconds (utime+stime, all threads, from /proc/PID/stat) per "
                   "GB received by the server and per 1000 connections; a = client pod "
                   "(outbound), b = server pod (inbound). Median (min–max) of the repeats. "
                   "RSS/HWM: VmRSS and VmHWM after the whole run.")
        out.append("")
        out.append("| sidecars | a CPU s/GB (1 / 8 streams) | b CPU s/GB (1 / 8 streams) "
                   "| a CPU s/1000 cx | b CPU s/1000 cx | a RSS / HWM KiB | b RSS / HWM KiB |")
        out.append("|---|---|---|---|---|---|---|")
        for cfg in sc_cfgs:
            row = ["**%s**" % cfg]
            for side in ("a", "b"):
                parts = []
                for t in ("tp1", "tp8"):
                    xs = [r["sc_ticks_" + side] / tck / work(r) for r in by.get((cfg, t), [])
                          if work(r) > 0]
                    parts.append(med_range(xs, "%.2f"))
                row.append(" / ".join(parts))
            for side in ("a", "b"):
                xs = [r["sc_ticks_" + side] / tck / work(r) for r in by.get((cfg, "cr"), [])
                      if work(r) > 0]
                row.append(med_range(xs, "%.3f"))
            for side in ("a", "b"):
                s = after.get("sidecars", {}).get("%s.%s" % (side, cfg), {})
                row.append("%s / %s" % (s.get("rss_kb", "?"), s.get("hwm_kb", "?")))
            out.append("| " + " | ".join(row) + " |")
        out.append("")

    out.append("Where the CPU went: busy % of each pod's core during the runs (median; "
               "busy = everything but idle and iowait, softirq included).")
    out.append("")
    out.append("| path | " + " | ".join("%s: core a / core b" % TESTS[t] for t in TESTS) + " |")
    out.append("|---|" + "---|" * len(TESTS))
    steal = []
    for cfg in configs:
        row = ["**%s**" % cfg]
        for t in TESTS:
            rs = by.get((cfg, t), [])
            if not rs:
                row.append("-")
                continue
            row.append("%.0f%% / %.0f%%" % (statistics.median([busy(r["cpu_a"])[0] for r in rs]),
                                            statistics.median([busy(r["cpu_b"])[0] for r in rs])))
            steal += [busy(r["cpu_a"])[1] for r in rs] + [busy(r["cpu_b"])[1] for r in rs]
        out.append("| " + " | ".join(row) + " |")
    out.append("")

    bad = []
    for r in recs:
        if r["config"] == "direct":
            continue
        want = r["result"]["streams"] if r["test"] != "cr" else None
        if want is not None and (r["sc_cx_a"] != want or r["sc_cx_b"] != want):
            bad.append("%s %s rep %d: sidecar connections a %d b %d, client streams %d" % (
                r["config"], r["test"], r["rep"], r["sc_cx_a"], r["sc_cx_b"], want))
        if want is None and min(r["sc_cx_a"], r["sc_cx_b"]) < r["result"]["completed"]:
            bad.append("%s cr rep %d: sidecar connections a %d b %d < completed %d" % (
                r["config"], r["rep"], r["sc_cx_a"], r["sc_cx_b"], r["result"]["completed"]))
    out.append("Checks: every sidecar run's connections went through both sidecars "
               "(outbound.cx_total on a and inbound.cx_total on b grew by at least the "
               "client's connections): %s. Steal time: max %.1f%% of a core per run. This machine is shared: "
               "user-space CPU of processes outside the bench pods during a run (other work) "
               "was at most %.0f%% of a core in a kept run (median %.0f%%); a run where it "
               "passed %d%% was repeated (%d repeated runs). Sidecars killed from outside "
               "during the run and restarted (that run repeated): %s." % (
                   "yes" if not bad else "NO: " + "; ".join(bad), max(steal) if steal else 0,
                   max(other_pct(r) for r in recs), statistics.median(other_pct(r) for r in recs),
                   a.other_max, sum(r.get("attempt", 1) - 1 for r in recs),
                   after.get("restarts", 0)))
    out.append("")
    keys = ("outbound.cx_total", "inbound.cx_total", "outbound.cx_reset", "inbound.cx_reset",
            "outbound.cx_connect_fail", "inbound.cx_connect_fail", "buffers.exhausted",
            "buffers.in_use", "server.active_connections")
    scs = after.get("sidecars", {})
    if scs:
        out.append("Sidecar counters after the run (from /stats):")
        out.append("")
        out.append("| sidecar | " + " | ".join(k for k in keys) + " |")
        out.append("|---|" + "---|" * len(keys))
        for name in sorted(scs):
            st = dict(kv.split(": ", 1) for kv in scs[name].get("stats", "").split(";")
                      if ": " in kv)
            out.append("| %s | " % name + " | ".join(st.get(k, "?") for k in keys) + " |")
        out.append("")
    out.append("Setup: pod a (client; its sidecars) pinned to CPU %s, pod b (tcpbench server, one "
               "epoll thread; its sidecars) pinned to CPU %s, with `taskset`; sidecars run "
               "`--concurrency 1` and default buffers (`--buffer-bytes 65536 --buffers 512 "
               "--buffer-size 16384`) as uid 1337 behind `ringmesh-init` (both sidecar pairs up "
               "for the whole run on their own ports; the rules are switched between "
               "configurations). The kernel's softirq work for a → b data runs on the "
               "sender's core (veth), so a client core does part of the receive path too." % (
                   a.cpu_a, a.cpu_b))
    out.append("")
    out.append("Machine:")
    out.append("")
    out += machine()
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--progress")
    p.add_argument("--raw")
    p.add_argument("--snap")
    p.add_argument("--foreign", nargs=2)
    p.add_argument("--clk-tck", default="100")
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--cpu-a", default="0")
    p.add_argument("--cpu-b", default="1")
    p.add_argument("--other-max", type=int, default=10)
    a = p.parse_args()
    if a.progress:
        progress(json.loads(a.progress))
    elif a.snap:
        snap(a.snap)
    elif a.foreign:
        foreign(*a.foreign)
    elif a.raw:
        sys.stdout.write(report(a))
    else:
        p.error("want --progress RECORD or --raw FILE")


if __name__ == "__main__":
    main()
