#!/usr/bin/env python3
"""promserve.py - a stand-in for a sidecar's stats port in ringmeshctl stat's tests.

  promserve.py PORT SNAP1 SNAP2   GET (any path) answers SNAP1's bytes on the 1st, 3rd, ...
                                  request and SNAP2's on the 2nd, 4th, ...: each one-shot
                                  `ringmeshctl stat` (two scrapes) sees SNAP1 then SNAP2
  promserve.py PORT --grow N      answers one web request counter that grows by N per GET

Content-Type is Prometheus's text/plain; version=0.0.4. Logs each GET on stderr.
"""
import http.server
import sys

port = int(sys.argv[1])
if sys.argv[2] == "--grow":
    step = int(sys.argv[3])
    snaps = None
else:
    snaps = [open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()]
count = 0


class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global count
        count += 1
        if snaps:
            body = snaps[(count - 1) % 2]
        else:
            body = ('ringmesh_requests_total{reporter="destination",'
                    'destination_service="web.default.svc.cluster.local",response_code="200"} %d\n'
                    % (step * count)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("GET %d %s\n" % (count, self.path))


http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
