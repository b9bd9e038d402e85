#!/usr/bin/python3
"""bench/loadgen_h2load.py - a stand-in for bin/ringmesh-loadgen, on h2load.

bench/compare_run.sh drives its load generator through ringmesh-loadgen's command line and
reads its --json object. Until that program is built, LOADGEN=bench/loadgen_h2load.py gives
the same command line and the same JSON keys from an h2load run (nghttp2-client), so the
pipeline can be developed and smoke-tested; compare_run.sh prefers the real one.

What differs from ringmesh-loadgen, and why its numbers are not the real ones:
  - not open loop: h2load --rps paces each connection but sends the next request only after
    the previous one's response (HTTP/1.1) or when a stream is free, so a stall delays the
    requests behind it and their latency is never counted (coordinated omission);
    "corrected" is false in the output;
  - the rate is split over the connections (--rps RATE/CONNS, rounded up to an integer per
    connection: h2load takes only integers), so "target_rate" can be a little above -r;
  - latency is h2load's per-request time from its --log-file (request sent -> response
    complete), nearest-rank percentiles; the histogram is built here on log-spaced bounds;
  - --method is GET or, with --body-size, POST (h2load's -d); TLS options are refused (the
    bench's client always speaks plaintext to the proxy in its own pod); --timeout is ignored.

Usage: loadgen_h2load.py [-r RATE] [-c CONNS] [-m STREAMS] [-d SECONDS] [--warmup S]
       [-t THREADS] [--h2] [--method M] [--body-size N] [-H 'k: v']... [--json] [--quiet]
       [--timeout MS] URL
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile

UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6}


def histogram(times):
    """[[upper_us, count], ...] on log-spaced bounds, 48 a decade (each about 5% wide)."""
    out, i, n, j = [], 0, len(times), 0
    while i < n:
        upper = int(math.ceil(10 ** (j / 48.0)))
        j += 1
        c = 0
        while i < n and times[i] <= upper:
            c += 1
            i += 1
        if c:
            out.append([upper, c])
    return out


def main():
    p = argparse.ArgumentParser(add_help=True)
    p.add_argument("-r", type=float, default=0)
    p.add_argument("-c", type=int, default=1)
    p.add_argument("-m", type=int, default=1)
    p.add_argument("-d", type=float, default=10)
    p.add_argument("--warmup", type=float, default=0)
    p.add_argument("-t", type=int, default=1)
    p.add_argument("--h2", action="store_true")
    p.add_argument("--method", default="GET")
    p.add_argument("--body-size", type=int, default=0)
    p.add_argument("-H", action="append", default=[])
    for tls in ("--cacert", "--cert", "--key", "--sni"):
        p.add_argument(tls)
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--timeout", type=int, default=0)
    p.add_argument("url")
    a = p.parse_args()
    if a.cacert or a.cert or a.key or a.sni or a.insecure or a.url.startswith("https:"):
        sys.exit("loadgen_h2load: TLS to the target is not supported by this stand-in")
    tmp = tempfile.mkdtemp(prefix="loadgen-h2load.", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    log = os.path.join(tmp, "log")
    # h2load takes whole seconds or a unit: 1.5 s is "1500ms"
    cmd = ["h2load", "-c", str(a.c), "-t", str(min(a.t, a.c)), "-D", "%dms" % round(a.d * 1000),
           "--log-file", log]
    if a.warmup > 0:
        cmd += ["--warm-up-time", "%dms" % round(a.warmup * 1000)]
    if a.h2:
        cmd += ["-m", str(a.m)]
    else:
        cmd += ["--h1"]
    per_conn = 0
    if a.r > 0:
        per_conn = max(1, int(math.ceil(a.r / a.c)))
        cmd += ["--rps", str(per_conn)]
    for h in a.H:
        cmd += ["-H", h]
    if a.body_size > 0 or a.method.upper() == "POST":
        body = os.path.join(tmp, "body")
        with open(body, "wb") as f:
            f.write(b"x" * a.body_size)
        cmd += ["-d", body]
    cmd.append(a.url)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True)
        out = p.stdout
        with open(log) as f:
            tok = f.read().split()
    except OSError as e:
        sys.exit("loadgen_h2load: %s; %s said:\n%s" % (e, " ".join(cmd), (p.stdout + p.stderr)[-1500:]))
    finally:
        for f in ("log", "body"):
            try:
                os.unlink(os.path.join(tmp, f))
            except OSError:
                pass
        os.rmdir(tmp)
    m = re.search(r"^finished in ([0-9.]+)(us|ms|s), ([0-9.]+) req/s, ([0-9.]+)(B|KB|MB|GB)/s",
                  out, re.M)
    if not m:
        sys.exit("loadgen_h2load: h2load said:\n" + out[-1500:])
    elapsed = float(m.group(1)) * UNITS_US[m.group(2)] / 1e6
    measured = elapsed - a.warmup if a.warmup > 0 and elapsed > a.warmup else elapsed
    r = {}
    m2 = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                   r"(\d+) failed, (\d+) errored, (\d+) timeout", out, re.M)
    for k, v in zip(("total", "started", "done", "succeeded", "failed", "errored", "timeout"),
                    m2.groups() if m2 else [0] * 7):
        r[k] = int(v)
    st = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out, re.M)
    status = {}
    if st:
        for k, v in zip(("200", "3xx", "4xx", "5xx"), st.groups()):
            if int(v):
                status[k] = int(v)
    tr = re.search(r"^traffic: .*?\((\d+)\) total", out, re.M)
    n = len(tok) // 3
    times = sorted(int(d) for s, d in zip(tok[1:3 * n:3], tok[2:3 * n:3]) if s[0] == "2")

    def pct(q):
        return times[max(0, min(len(times) - 1, int(-(-q * len(times) // 100)) - 1))] if times else 0

    mean = sum(times) / len(times) if times else 0.0
    sd = math.sqrt(sum((t - mean) ** 2 for t in times) / len(times)) if times else 0.0
    res = {
        "target_rate": per_conn * a.c if a.r > 0 else 0,
        # h2load's "finished in" includes the warm-up, its counts do not
        "achieved_rate": round(r["done"] / measured, 1) if measured else 0.0,
        "duration_s": round(measured, 3),
        "connections": a.c,
        "streams": a.m if a.h2 else 1,
        "requests": r["done"],
        # a run that got nothing (the target refused every connection) is one error
        "errors": {"failed": r["failed"], "errored": r["errored"], "timeout": r["timeout"],
                   "no_response": 0 if r["done"] else 1},
        "status": status,
        "latency_us": {"min": times[0] if times else 0, "p50": pct(50), "p90": pct(90),
                       "p99": pct(99), "p99_9": pct(99.9), "max": times[-1] if times else 0,
                       "mean": round(mean, 1), "stdev": round(sd, 1)},
        "bytes_in": int(tr.group(1)) if tr else 0,
        "bytes_out": 0,
        "corrected": False,
        "histogram": histogram(times),
        "standin": "h2load",
    }
    if a.json:
        print(json.dumps(res, separators=(",", ":")))
    elif not a.quiet:
        print(out)


if __name__ == "__main__":
    main()
