#!/usr/bin/env python3
"""bench/xds_gen.py DIR SERVICES ENDPOINTS_PER_SERVICE - manifests for bench/xds_run.sh.

One YAML file per Service in DIR (namespace "bench"): the Service svc-NNNNN (ClusterIP
10.96.0.0/12, one http port) and one EndpointSlice svc-NNNNN-1 with E ready endpoints
(10.16.0.0/12, unique addresses, nodeName, zone) on port 8080, as a controller writes them.
"""
import os
import sys

d, n, e = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d, exist_ok=True)
ip = lambda base, i: f"10.{base + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
for s in range(n):
    name = f"svc-{s:05d}"
    eps = "".join(
        f"- addresses: [{ip(16, s * e + j + 1)}]\n"
        f"  conditions: {{ready: true}}\n"
        f"  nodeName: node-{(s * e + j) % 50:02d}\n"
        f"  zone: zone-{(s * e + j) % 3}\n"
        for j in range(e))
    with open(os.path.join(d, f"{name}.yaml"), "w") as f:
        f.write(f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: bench, labels: {{app: {name}}}}}
spec:
  clusterIP: {ip(96, s + 1)}
  ports: [{{name: http, port: 80, targetPort: 8080, appProtocol: http}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: bench
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints:{" []" if not e else ""}
{eps}""")
