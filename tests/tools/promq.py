#!/usr/bin/python3
"""promq - questions about a Prometheus text exposition on stdin, parsed with the real
parser of Debian's python3-prometheus-client (a text the parser rejects exits 2).

    promq.py sum NAME [LABEL=VALUE...]     the sum of the samples called NAME (with a
                                           histogram's suffix: x_bucket, x_count, x_sum)
                                           whose labels match; 0 when none
    promq.py series NAME [LABEL=VALUE...]  how many samples match
    promq.py labels NAME LABEL [LABEL=VALUE...]  the distinct values of LABEL, sorted, one a line
    promq.py check                         parses; prints the number of families and samples
"""
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser's own complaint, whatever its type
        print("parse error: %s" % e)
        return 2
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    cmd = args[0]
    if cmd == "check":
        print("%d families, %d samples" % (len(families), sum(len(f.samples) for f in families)))
        return 0
    name = args[1]
    rest = args[2:]
    want_label = None
    if cmd == "labels":
        want_label, rest = rest[0], rest[1:]
    want = dict(a.split("=", 1) for a in rest)
    match = [s for f in families for s in f.samples
             if s.name == name and all(s.labels.get(k) == v for k, v in want.items())]
    if cmd == "sum":
        total = sum(s.value for s in match)
        print(int(total) if total == int(total) else total)
    elif cmd == "series":
        print(len(match))
    elif cmd == "labels":
        for v in sorted({s.labels.get(want_label, "") for s in match}):
            print(v)
    else:
        print("unknown command %s" % cmd)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
