#!/usr/bin/env python3
"""Steady HTTP/1.1 load for the mesh tests, until a stop file appears.

    httpload.py HOST[:PORT] --stop FILE [--path /] [--keepalive N] [--fresh N] [--rate R]

--keepalive N clients each keep one connection for the whole run (reconnecting after an
error, which is counted); --fresh N clients open a new connection per request. Every
client sends about R requests a second. When the stop file appears, each client finishes
its request and one JSON line is printed:

    {"ok": 812, "bad": 0, "errors": ["..."], "by_app": {"v1": 400, "v2": 412},
     "first_app": "v1", "last_app": "v2", "conns": 3}

by_app counts the x-app header of 200 answers (httpapp.py --name); errors holds the first
ten failures (a status other than 200, or an exception). The exit status is 0; the test
decides what is a failure.
"""
import argparse
import http.client
import json
import os
import sys
import threading
import time


def client(host, port, path, stop, fresh, period, res, lock):
    conn = None
    while not os.path.exists(stop):
        t0 = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=5)
                with lock:
                    res["conns"] += 1
            conn.request("GET", path, headers={"Connection": "close"} if fresh else {})
            r = conn.getresponse()
            r.read()
            app = r.getheader("x-app") or "?"
            with lock:
                if r.status == 200:
                    res["ok"] += 1
                    res["by_app"][app] = res["by_app"].get(app, 0) + 1
                    res["first_app"] = res["first_app"] or app
                    res["last_app"] = app
                else:
                    res["bad"] += 1
                    if len(res["errors"]) < 10:
                        res["errors"].append("%s %s x-ringmesh-flags=%s at %.1f" % (
                            r.status, r.reason, r.getheader("x-ringmesh-flags"),
                            time.monotonic() - res["t0"]))
            if fresh or r.will_close:
                conn.close()
                conn = None
        except Exception as e:  # noqa: BLE001 - every failure is counted and shown
            with lock:
                res["bad"] += 1
                if len(res["errors"]) < 10:
                    res["errors"].append("%r at %.1f" % (e, time.monotonic() - res["t0"]))
            if conn is not None:
                conn.close()
            conn = None
        left = period - (time.monotonic() - t0)
        if left > 0:
            time.sleep(left)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("target")
    ap.add_argument("--stop", required=True)
    ap.add_argument("--path", default="/")
    ap.add_argument("--keepalive", type=int, default=2)
    ap.add_argument("--fresh", type=int, default=1)
    ap.add_argument("--rate", type=float, default=50.0, help="requests a second per client")
    a = ap.parse_args()
    host, _, port = a.target.partition(":")
    res = {"ok": 0, "bad": 0, "errors": [], "by_app": {}, "first_app": None, "last_app": None,
           "conns": 0, "t0": time.monotonic()}
    lock = threading.Lock()
    threads = [threading.Thread(target=client, args=(host, int(port or 80), a.path, a.stop,
                                                     i >= a.keepalive, 1.0 / a.rate, res, lock))
               for i in range(a.keepalive + a.fresh)]
    for t in threads:
        t.start()
    print("started", flush=True)
    for t in threads:
        t.join()
    del res["t0"]
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
