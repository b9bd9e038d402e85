#!/usr/bin/env bash
# deploy/demo.sh - `make demo`: a three-pod mesh on this machine, with real traffic.
#
# Each "pod" is a network namespace on a private bridge (itself in its own namespace, so the
# host's network is never touched). In each pod ringmesh-init writes the iptables rules,
# ringmesh-sidecar runs as uid 1337, and an HTTP app (python3 -m http.server) runs as uid
# 1000. curl in one pod talks to another pod's app; both sidecars carry the connection.
# At the end the demo prints what every sidecar counted, then tears everything down.
# Needs root. Exits non-zero if any step fails. DEMO_IO=uring|epoll picks the sidecars' I/O
# backend (default: the sidecar's own choice, --io auto).
set -u
if [ "$(id -u)" != 0 ]; then
    echo "demo: needs root (network namespaces and iptables)" >&2
    exit 1
fi
RINGMESH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${RINGMESH_BIN:=$RINGMESH_ROOT/bin}"
export RINGMESH_ROOT RINGMESH_BIN
source "$RINGMESH_ROOT/tests/mesh/lib.sh"
for b in ringmesh-init ringmesh-sidecar; do
    [ -x "$RINGMESH_BIN/$b" ] || { echo "demo: $RINGMESH_BIN/$b missing; run make" >&2; exit 1; }
done

FAILS=0
say() { printf '%s\n' "$*"; }
step() { # step "what" cmd...: one line, ok or FAILED with the command's output
    local what=$1 out; shift
    if out=$("$@" 2>&1); then
        printf '  %-62s ok\n' "$what"
    else
        printf '  %-62s FAILED\n' "$what"
        printf '%s\n' "$out" | sed 's/^/      /' | tail -n 5
        FAILS=$((FAILS + 1)); TAP_FAILED=$((TAP_FAILED + 1))
    fi
}

mesh_up >/dev/null
PODS=(productpage reviews ratings)
IPS=(10.233.1.2 10.233.1.3 10.233.1.4)
PORT=9080
www=$RM_TMP/www
mkdir -p "$www"
echo "hello from the ringmesh demo" >"$www/index.html"
head -c $((4 << 20)) /dev/urandom >"$www/blob"
chmod -R a+rX "$www"
blob_sha=$(sha256sum <"$www/blob" | cut -d' ' -f1)

# productpage's sidecar knows the Service "reviews" (VIP 10.96.0.20:9080), whose endpoints
# are the reviews and ratings pods (think v1 and v2): connections to the VIP are balanced.
MESH=$RM_TMP/mesh.yaml
cat >"$MESH" <<YAML
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 10.96.0.20
  ports: [{name: http, port: $PORT, appProtocol: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: reviews-1, namespace: default, labels: {kubernetes.io/service-name: reviews}}
addressType: IPv4
ports: [{name: http, port: $PORT}]
endpoints:
- {addresses: [${IPS[1]}]}
- {addresses: [${IPS[2]}]}
YAML
chmod 644 "$MESH"
declare -A APPLOG

say "ringmesh demo: ${#PODS[@]} pods on a private bridge, sidecars as uid 1337, apps as uid $RM_APP_UID"
say ""
say "bring-up:"
for i in "${!PODS[@]}"; do
    p=${PODS[$i]}
    pod "$p" "${IPS[$i]}" >/dev/null
    step "pod $p ${IPS[$i]}: ringmesh-init (iptables)" pod_init "$p"
    if [ "$p" = productpage ]; then
        ip -n "${RM_NS[$p]}" route add 10.96.0.0/16 dev eth0 # the Service network
        step "pod $p: ringmesh-sidecar --config mesh.yaml ready" pod_sidecar "$p" \
            --io "${DEMO_IO:-auto}" --config "$MESH" --concurrency 1
    else
        step "pod $p: ringmesh-sidecar --io ${DEMO_IO:-auto} ready" pod_sidecar "$p" --io "${DEMO_IO:-auto}"
    fi
    pod_app "$p" "$RM_PY" -m http.server "$PORT" --bind 0.0.0.0 --directory "$www"
    APPLOG[$p]=$RM_APP_LOG
    step "pod $p: app python3 -m http.server :$PORT" wait_port "$p" "$PORT"
done
[ "$FAILS" = 0 ] || { say ""; say "demo: bring-up failed"; exit 1; }

# curl_ok POD URL: the body must come back with 200
curl_ok() { in_pod "$1" curl -sSf --max-time 5 -o /dev/null "$2"; }
curl_n() { # POD URL N
    local i
    for ((i = 0; i < $3; i++)); do curl_ok "$1" "$2" || return 1; done
}
curl_blob() { # POD URL: 4 MiB file, sha256 compared
    local got
    got=$(in_pod "$1" curl -sSf --max-time 10 "$2" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$blob_sha" ] || { echo "sha256 $got, want $blob_sha"; return 1; }
}

say ""
say "traffic (curl as uid $RM_APP_UID, through both sidecars):"
step "productpage -> reviews  10 x GET /" curl_n productpage "http://${IPS[1]}:$PORT/" 10
step "productpage -> ratings   5 x GET /" curl_n productpage "http://${IPS[2]}:$PORT/" 5
step "reviews     -> ratings   GET /blob (4 MiB, sha256 checked)" curl_blob reviews "http://${IPS[2]}:$PORT/blob"
step "ratings     -> productpage GET /blob (4 MiB, sha256 checked)" curl_blob ratings "http://${IPS[0]}:$PORT/blob"

say ""
say "the Service VIP (productpage's sidecar balances it over the reviews and ratings pods):"
gets() { grep -c '"GET / ' "${APPLOG[$1]}"; }
r0=$(gets reviews) t0=$(gets ratings)
step "productpage -> reviews VIP 10.96.0.20:$PORT  10 x GET /" curl_n productpage "http://10.96.0.20:$PORT/" 10
r1=$(($(gets reviews) - r0)) t1=$(($(gets ratings) - t0))
step "round robin: reviews pod served $r1, ratings pod served $t1" test "$r1" = 5 -a "$t1" = 5

say ""
say "what each sidecar counted (GET http://127.0.0.1:15000/stats in the pod):"
printf '  %-12s %-8s | %-9s %12s %12s | %-9s %12s %12s\n' pod backend \
    "out cx" "out rx B" "out tx B" "in cx" "in rx B" "in tx B"
for p in "${PODS[@]}"; do
    s=$(sidecar_stats "$p")
    v() { awk -F': *' -v k="$1" '$1 == k { print $2; exit }' <<<"$s"; }
    printf '  %-12s %-8s | %-9s %12s %12s | %-9s %12s %12s\n' "$p" "$(v server.io_backend)" \
        "$(v outbound.cx_total)" "$(v outbound.bytes_rx)" "$(v outbound.bytes_tx)" \
        "$(v inbound.cx_total)" "$(v inbound.bytes_rx)" "$(v inbound.bytes_tx)"
done
# the counters must agree with the traffic above: 15 + 1 + 1 + 10 connections were made
out_total=0 in_total=0
for p in "${PODS[@]}"; do
    out_total=$((out_total + $(sidecar_stat "$p" outbound.cx_total || echo 0)))
    in_total=$((in_total + $(sidecar_stat "$p" inbound.cx_total || echo 0)))
done
say ""
step "27 connections made, 27 counted outbound ($out_total) and inbound ($in_total)" \
    test "$out_total" = 27 -a "$in_total" = 27

say ""
say "tear-down:"
for p in "${PODS[@]}"; do step "pod $p: sidecar SIGTERM, exits" sidecar_stop "$p" TERM 8; done
say ""
if [ "$FAILS" = 0 ]; then say "demo: all good"; else say "demo: $FAILS step(s) failed"; fi
[ "$FAILS" = 0 ]
