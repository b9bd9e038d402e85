#!/usr/bin/env bash
# The mesh driven by the control plane: ringmesh-xds in pod cp (manifests directory, mesh
# CA, xDS over TLS on 15012), sidecars in pods a (client), v1, v2, v3 configured only by
# --xds https://ringmesh-xds.ringmesh-system.svc:15012 with a bootstrap token (each gets
# its SVID from the CA, then talks mTLS to the others), and ringmeshctl in cp:
#   - every sidecar is ready on its first config and has its identity; proxy-status lists
#     the four pods with all six types ACKed;
#   - an HTTPRoute change applied with ringmeshctl moves traffic, under load, none failing;
#   - endpoints scaled up (v1 -> v1 v2 v3) and down under load: one endpoint marked
#     terminating, then its app stopped, then removed; one pod crashing (sidecar and app
#     killed) before the control plane knows, covered by retries; no request fails;
#   - ringmesh-xds killed under load: traffic goes on; restarted: the sidecars reconnect,
#     resume, and take the next change;
#   - a sidecar restarted while the control plane is down serves from its --xds-cache.
# Pod a's sidecar runs on epoll, the others on the default backend. The NACK path is in
# tests/integ/xds_client.sh (a fake server) and tests/integ/xds_server.sh (a fake client):
# with one model on both sides, a real server never sends what a real sidecar refuses.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
source "$RINGMESH_ROOT/tests/lib/http.sh" # fetch, expect, check_delta, alive, codes

CP_IP=10.233.1.10
XDS_NAME=ringmesh-xds.ringmesh-system.svc
pod cp $CP_IP
pod a 10.233.1.2
pod v1 10.233.1.3
pod v2 10.233.1.4
pod v3 10.233.1.5
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0
for p in a v1 v2 v3; do
    check "ringmesh-init in $p" pod_init "$p"
    pod_hosts "$p" "$CP_IP $XDS_NAME"
done
for p in v1 v2 v3; do
    pod_app $p "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name $p
    wait_port $p 8080
done
APP_V3=$RM_APP_PID

WEB=10.96.0.10
SCALE=10.96.0.13
CFG=$RM_TMP/cfg CA=$RM_TMP/ca OUT=$RM_TMP/out
mkdir -p "$CFG" "$OUT"
chmod 777 "$OUT"
ctl() { # COMMAND ARGS...: ringmeshctl in pod cp (mutations are taken from loopback)
    local c=$1; shift
    ip netns exec "${RM_NS[cp]}" "$RINGMESH_BIN/ringmeshctl" "$c" --server http://127.0.0.1:15014 "$@"
}
id_of() { sidecar_stats "$1" | sed -n 's/^tls.identity: //p'; }
xds_connected() { [ "$(sidecar_stat "$1" xds.connected)" = "$2" ]; }

# ---- manifests: web (routed to web-v1), web-v1, web-v2, scale (v1 only, retries on reset)
svc() { # NAME VIP IP...
    local n=$1 vip=$2; shift 2
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\n' "$n"
    printf 'spec:\n  clusterIP: %s\n  ports: [{name: http, port: 80, targetPort: 8080, appProtocol: http}]\n' "$vip"
    slice "$n" "$@"
}
slice() { # NAME IP[:terminating]...
    local n=$1 e; shift
    printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n'
    printf 'metadata: {name: %s-1, namespace: default, labels: {kubernetes.io/service-name: %s}}\n' "$n" "$n"
    printf 'addressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints:\n'
    for e; do
        case $e in
        *:terminating) printf -- '- {addresses: [%s], conditions: {ready: false, serving: true, terminating: true}}\n' "${e%:*}" ;;
        *) printf -- '- {addresses: [%s]}\n' "$e" ;;
        esac
    done
}
route() { # BACKEND
    printf -- '---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web, namespace: default}\n'
    printf 'spec:\n  parentRefs: [{group: "", kind: Service, name: web, port: 80}]\n'
    printf '  rules: [{backendRefs: [{name: %s, port: 80}]}]\n' "$1"
}
{
    svc web $WEB 10.233.1.3
    svc web-v1 10.96.0.11 10.233.1.3
    svc web-v2 10.96.0.12 10.233.1.4
    svc scale $SCALE 10.233.1.3
    route web-v1
    cat <<'EOF'
---
apiVersion: ringmesh.io/v1alpha1
kind: DestinationPolicy
metadata: {name: scale, namespace: default}
spec:
  targetRef: {group: "", kind: Service, name: scale}
  retries: {attempts: 2, retryOn: [connect-failure, refused-stream, reset, gateway-error]}
EOF
} >"$CFG/mesh.yaml"

# ---- the control plane in pod cp
check "ringmeshctl ca init" "$RINGMESH_BIN/ringmeshctl" ca init --dir "$CA"
XDS_PID=
xds_start() {
    echo "=== $(date +%T) ringmesh-xds" >>"$RM_TMP/xds.log"
    ip netns exec "${RM_NS[cp]}" "$RINGMESH_BIN/ringmesh-xds" --config-dir "$CFG" --ca-dir "$CA" \
        >>"$RM_TMP/xds.log" 2>&1 &
    XDS_PID=$!
    RM_PIDS+=("$XDS_PID")
    wait_until 5 ip netns exec "${RM_NS[cp]}" curl -sf -o /dev/null http://127.0.0.1:15014/ready
}
check "ringmesh-xds is ready in pod cp" xds_start

# ---- sidecars: certificates from the CA (a token each, the bundle mounted beforehand)
declare -A SA=([a]=client [v1]=web [v2]=web [v3]=web)
for p in a v1 v2 v3; do
    d=$RM_TMP/certs/$p
    mkdir -p "$d"
    cp "$CA/root-cert.pem" "$d/"
    "$RINGMESH_BIN/ringmeshctl" ca token --dir "$CA" --ns default --sa "${SA[$p]}" >"$RM_TMP/$p.token"
    chown -R $RM_PROXY_UID "$d" "$RM_TMP/$p.token"
done
mkdir -p "$RM_TMP/cache"
chown $RM_PROXY_UID "$RM_TMP/cache"
sc() { # POD [flags]: the pod's sidecar, configured by the control plane only
    local p=$1; shift
    pod_sidecar "$p" --xds "https://$XDS_NAME:15012" --xds-token "$RM_TMP/$p.token" \
        --cert-dir "$RM_TMP/certs/$p" --xds-cache "$RM_TMP/cache/$p.json" --pod-name "$p" \
        --pod-ip "$(pod_ip "$p")" --service-account "${SA[$p]}" "$@"
}
for p in v1 v2 v3; do check "sidecar in $p is ready on its first xDS config" sc $p; done
check "sidecar in a (epoll) is ready on its first xDS config" sc a --io epoll
for p in a v1 v2 v3; do
    check_eq "$p got its SVID from the mesh CA" "$(id_of $p)" \
        "spiffe://cluster.local/ns/default/sa/${SA[$p]}"
done
ps_out=$(ctl proxy-status 2>&1)
rm_log "$(head -n 8 <<<"$ps_out")"
for p in a v1 v2 v3; do
    check_eq "proxy-status: $p has all six types ACKed" \
        "$(awk -v p=$p '$1 == p && $4 ~ /^[0-9]+$/ && $6 == "-" { n++ } END { print n + 0 }' <<<"$ps_out")" 6
done

# ---- traffic follows the control plane
fetch a --http1.1 http://$WEB/
expect "a -> web: the route sends it to web-v1" code=200 hdr:x-app=v1
check_stat v1 inbound.cx_mtls ge 1

# load LABEL VIP: steady load from a until load_stop; LOAD = its summary file
load_start() {
    LOAD=$OUT/$1.json
    rm -f "$OUT/stop"
    in_pod a "$RM_PY" "$RM_TOOLS/httpload.py" "$2" --stop "$OUT/stop" --keepalive 2 --fresh 2 \
        --rate 40 >"$LOAD" 2>&1 &
    LOAD_PID=$!
    wait_until 5 grep -q started "$LOAD"
}
load_stop() {
    touch "$OUT/stop"
    wait "$LOAD_PID"
    tail -n 1 "$LOAD" >"$LOAD.last"
}
jq_() { "$RM_PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
load_check() { # NAME: one check that nothing failed, with the summary as detail
    local ok bad
    ok=$(jq_ "$LOAD.last" 'd["ok"]' 2>/dev/null) bad=$(jq_ "$LOAD.last" 'd["bad"]' 2>/dev/null)
    if [ -n "$ok" ] && [ "$ok" -gt 0 ] && [ "$bad" = 0 ]; then
        ok "$1 ($ok requests, none failed; $(jq_ "$LOAD.last" 'd["by_app"]'))"
    else
        not_ok "$1" "$(cat "$LOAD.last" 2>/dev/null || echo 'no summary')"
    fi
}
app_seen() { # POD VIP APP: within 5 s a request from POD to VIP is answered by APP
    wait_until 5 bash -c "[ \"\$(ip netns exec ${RM_NS[$1]} curl -s -o /dev/null --max-time 2 \
        -w '%header{x-app}' http://$2/)\" = $3 ]"
}

load_start route $WEB
sleep 1
ctl apply -f <(route web-v2) >"$OUT/apply.txt" 2>&1
check "ringmeshctl apply of the route ($(tr '\n' ' ' <"$OUT/apply.txt"))" grep -q configured "$OUT/apply.txt"
check "traffic moves to web-v2 within 5 s" app_seen a $WEB v2
sleep 1
load_stop
load_check "route change under load"
check_eq "after the change, the last answers come from v2" "$(jq_ "$LOAD.last" 'd["last_app"]')" v2

# ---- scale up and down under load
load_start scale $SCALE
sleep 1
ctl apply -f <(slice scale 10.233.1.3 10.233.1.4 10.233.1.5) >/dev/null 2>&1
check "scaled up: v3 answers within 5 s" app_seen a $SCALE v3
sleep 1
# v1 goes away the Kubernetes way: terminating first, then its app stops, then it is removed
ctl apply -f <(slice scale 10.233.1.3:terminating 10.233.1.4 10.233.1.5) >/dev/null 2>&1
sleep 1.5
pkill -TERM -f "httpapp.py 8080 --name v1" 2>/dev/null
sleep 1
ctl apply -f <(slice scale 10.233.1.4 10.233.1.5) >/dev/null 2>&1
sleep 1
# v3 crashes: its sidecar and app die before the control plane hears of it
sidecar_stop v3 KILL 2
kill -KILL "$APP_V3" 2>/dev/null
sleep 2
ctl apply -f <(slice scale 10.233.1.4) >/dev/null 2>&1
sleep 1
load_stop
load_check "scale 1 -> 3 -> 1 under load (terminating drained, a crash retried)"
seen=$(jq_ "$LOAD.last" '" ".join(sorted(d["by_app"]))')
check_eq "every endpoint served while it was there" "$seen" "v1 v2 v3"
check_stat a outbound.rq_retry ge 1
# pod v1's app comes back (web-v1 needs it below)
pod_app v1 "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name v1
wait_port v1 8080

# ---- the control plane dies under load; traffic goes on; it comes back and is resumed
load_start xds-kill $WEB
sleep 1
kill -KILL "$XDS_PID"
wait "$XDS_PID" 2>/dev/null
check "a notices the control plane is gone" wait_until 5 xds_connected a 0
r0=$(sidecar_stat a xds.reconnects)
mark=$(wc -l <"${RM_SIDECAR_LOG[a]}")
sleep 2
check "ringmesh-xds restarts on the same directory" xds_start
check "a reconnects (xds.connected 1)" wait_until 20 xds_connected a 1
check_ge "a's xds.reconnects grew" "$(sidecar_stat a xds.reconnects)" $((${r0:-0} + 1))
# resumed: the new stream's first Service response names nothing new (the versions a held)
check "a resumed: the restarted server sent no Service again" wait_until 5 bash -c \
    "tail -n +$((mark + 1)) '${RM_SIDECAR_LOG[a]}' | grep -q 'xds: ACK v1/Service nonce 1 version [0-9]*: 0 updated, 0 removed'"

ctl apply -f <(route web-v1) >/dev/null 2>&1
check "after the restart, a route change reaches a" app_seen a $WEB v1
load_stop
load_check "the control plane killed and restarted under load"

# ---- a sidecar restarted while the control plane is down: its cache
kill -TERM "$XDS_PID"
wait "$XDS_PID" 2>/dev/null
sidecar_stop a TERM 8
check "with the control plane down, a restarts from its --xds-cache and is ready" sc a --io epoll
fetch a --http1.1 http://$WEB/
expect "a serves from the cache: web -> v1" code=200 hdr:x-app=v1
check_eq "a is not connected" "$(sidecar_stat a xds.connected)" 0
check "ringmesh-xds back" xds_start
check "a connects once it is back" wait_until 20 xds_connected a 1
alive a v1 v2
tap_done
