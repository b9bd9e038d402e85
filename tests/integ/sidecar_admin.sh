#!/usr/bin/env bash
# sidecar_admin.sh - the admin API's endpoints with Envoy's names, against a real sidecar
# driven by curl and python3: /help; /server_info (JSON, state, options, node); /clusters
# (text and JSON) listing a Service's endpoints from a --config file with the right
# per-endpoint counts after N requests (and a timeout) through the outbound listener, the
# EndpointSlice's not-ready and terminating endpoints flagged /failed_eds_health, and an
# endpoint that answers 503 ejected (/failed_outlier_check); POST /logging (lists, sets,
# changes what is logged, refuses an unknown level naming it); query strings
# (percent-decoding, bad input 400 naming it); GET refused on every mutation (405, Allow:
# POST) doing nothing; POST /drain_listeners (?inboundonly: inbound refuses, outbound
# serves; then new connections fail while an open one keeps working, and ?graceful closes
# it after its answer in flight, Connection: close; state DRAINING; no exit);
# POST /quitquitquit (200 OK, an in-flight request finishes, exit 0 within the drain time).
#
# Requests through a Service VIP need the original destination, so as root the script
# re-runs itself in a private network namespace (unshare -n) where an iptables OUTPUT rule
# sends the VIPs to the outbound listener (nothing changes in the host's namespace). Not
# root: the checks that need traffic through a VIP are skipped, saying so.
if [ -z "${RM_ADMIN_NETNS:-}" ] && [ "$(id -u)" = 0 ] && command -v iptables >/dev/null &&
    unshare -n true 2>/dev/null; then
    exec env RM_ADMIN_NETNS=1 unshare -n bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"
integ_ports
APP_PY=${RINGMESH_PYTHON:-/usr/bin/python3} # httpapp --h2c needs python3-h2
ADMIN=http://127.0.0.1:$P2
WEB=10.96.7.7 API=10.96.7.8
NET=
if [ -n "${RM_ADMIN_NETNS:-}" ]; then
    ip link set lo up && ip addr add "$WEB/32" dev lo && ip addr add "$API/32" dev lo &&
        iptables -t nat -A OUTPUT -p tcp -d "$WEB,$API" --dport 80 -j REDIRECT --to-ports "$P0" &&
        NET=1
fi
skip_net() { skip "$1 (needs root: VIP traffic runs in a private network namespace)"; }

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
# answers URL STATUS PATTERN [CURL_ARGS...]: the status is STATUS and the body matches
answers() {
    local url=$1 want=$2 pat=$3 out; shift 3
    out=$(curl -s -w '\n%{http_code}' "$@" "$url")
    [ "${out##*$'\n'}" = "$want" ] && grep -q -- "$pat" <<<"${out%$'\n'*}"
}
# refuses405 URL ALLOW [CURL_ARGS...]: 405 with that Allow header
refuses405() {
    local url=$1 allow=$2 h; shift 2
    h=$(curl -s -D - -o /dev/null "$@" "$url" | tr -d '\r')
    grep -q '^HTTP/1.1 405' <<<"$h" && grep -qx "Allow: $allow" <<<"$h"
}
# cl HOST:PORT STAT [SERVICE]: one per-endpoint value from the text /clusters
cl() {
    curl -s "$ADMIN/clusters" |
        awk -F'::' -v c="outbound|80||${3:-web}.shop.svc.cluster.local" -v h="$1" -v s="$2" \
            '$1 == c && $2 == h && $3 == s { print $4 }'
}
sum_stat() { # STAT: summed over the web endpoints
    curl -s "$ADMIN/clusters" | awk -F'::' -v s="$1" \
        '$1 == "outbound|80||web.shop.svc.cluster.local" && $3 == s { t += $4 } END { print t + 0 }'
}

bg good "$APP_PY" "$RINGMESH_ROOT/tests/tools/httpapp.py" "$P6" --name good --h2c
bg bad "$APP_PY" "$RINGMESH_ROOT/tests/tools/httpapp.py" "$P7" --name bad --h2c --fail-all
wait_until 5 bash -c "ss -ltnH 'sport = :$P6' | grep -q . && ss -ltnH 'sport = :$P7' | grep -q ."

CFG=$IT_TMP/mesh.yaml
cat >"$CFG" <<EOF
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: $WEB
  ports: [{name: http, port: 80, targetPort: $P6, appProtocol: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: $P6}]
endpoints:
- {addresses: [127.0.0.1]}
- {addresses: [127.0.0.2], zone: zone-b}
- {addresses: [127.0.0.3], conditions: {ready: false}}
- {addresses: [127.0.0.4], conditions: {ready: false, serving: true, terminating: true}}
---
apiVersion: ringmesh.io/v1alpha1
kind: DestinationPolicy
metadata: {name: web, namespace: shop}
spec:
  targetRef: {group: "", kind: Service, name: web}
  tls: {mode: DISABLE}
  retries: {attempts: 0, perTryTimeout: 2s}
  connectionPool: {maxConnections: 77, maxPendingRequests: 78, maxRequests: 79}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  clusterIP: $API
  ports: [{name: http, port: 80, appProtocol: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-good, namespace: shop, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{name: http, port: $P6}]
endpoints: [{addresses: [127.0.0.1]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-bad, namespace: shop, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{name: http, port: $P7}]
endpoints: [{addresses: [127.0.0.2]}]
---
apiVersion: ringmesh.io/v1alpha1
kind: DestinationPolicy
metadata: {name: api, namespace: shop}
spec:
  targetRef: {group: "", kind: Service, name: api}
  tls: {mode: DISABLE}
  retries: {attempts: 0}
  outlierDetection: {consecutive5xx: 3, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 50}
EOF

POD_NAMESPACE=shop sidecar_start sc --config "$CFG" --pod-name web-7d9 --service-account web \
    --pod-ip 10.1.0.5 --pod-labels app=web,version=v1 --drain-seconds 5
check "sidecar is ready" ready

# ---- /help
help=$(curl -s "$ADMIN/help")
for p in /help /stats /stats/prometheus /config_dump /clusters /server_info /ready \
    /config_reload /drain_listeners /quitquitquit /logging; do
    check "/help lists $p" grep -q "^  \(POST \)\?$p: " <<<"$help"
done

# ---- /server_info
info=$(curl -s "$ADMIN/server_info")
check "/server_info: JSON, LIVE, options, node with labels ($info)" python3 -c "
import json, re, sys
d = json.loads(sys.argv[1])
assert d['state'] == 'LIVE', d['state']
assert d['version'].startswith('ringmesh-sidecar/'), d['version']
assert re.fullmatch(r'\d+s', d['uptime_current_epoch']) and re.fullmatch(r'\d+s', d['uptime_all_epochs'])
o = d['command_line_options']
assert o['concurrency'] == 2 and o['drain_time'] == '5s' and o['log_level'] == 'info', o
assert o['config'] == sys.argv[2] and o['admin_port'] == int(sys.argv[3]) and o['xds'] is None, o
m = d['node']['metadata']
assert m == {'namespace': 'shop', 'service_account': 'web', 'pod': 'web-7d9', 'pod_ip': '10.1.0.5',
             'labels': {'app': 'web', 'version': 'v1'}}, m
assert d['io_backend'] in ('io_uring', 'epoll') and d['workers'] == 2, d
assert d['listeners_drained'] == [] and d['exiting'] is False, d
" "$info" "$CFG" "$P2"
check "/server_info?x=1 is 400 naming x" answers "$ADMIN/server_info?x=1" 400 "unknown query parameter 'x' for /server_info"

# ---- /clusters: the configured endpoints, before any traffic
check "/clusters: version_info first" bash -c "curl -s $ADMIN/clusters | head -1 | grep -qx 'version_info::1'"
check "/clusters: web's circuit breakers from its DestinationPolicy" \
    bash -c "curl -s $ADMIN/clusters | grep -qx 'outbound|80||web.shop.svc.cluster.local::default_priority::max_connections::77'"
check "/clusters: added_via_api false (a --config file)" \
    bash -c "curl -s $ADMIN/clusters | grep -qx 'outbound|80||web.shop.svc.cluster.local::added_via_api::false'"
check "/clusters: api's outlier settings" \
    bash -c "curl -s $ADMIN/clusters | grep -qx 'outbound|80||api.shop.svc.cluster.local::outlier::consecutive_5xx::3'"
for h in 1 2; do
    check "/clusters: 127.0.0.$h:$P6 healthy, weight 1, rq_total 0" \
        [ "$(cl "127.0.0.$h:$P6" health_flags)/$(cl "127.0.0.$h:$P6" weight)/$(cl "127.0.0.$h:$P6" rq_total)" = healthy/1/0 ]
done
check "/clusters: zone of 127.0.0.2" [ "$(cl "127.0.0.2:$P6" zone)" = zone-b ]
check "/clusters: not ready 127.0.0.3 is /failed_eds_health" [ "$(cl "127.0.0.3:$P6" health_flags)" = /failed_eds_health ]
check "/clusters: terminating 127.0.0.4 is /failed_eds_health" [ "$(cl "127.0.0.4:$P6" health_flags)" = /failed_eds_health ]
check "/clusters: success_rate -1 (not computed)" [ "$(cl "127.0.0.1:$P6" success_rate)" = -1 ]

# ---- N requests through the outbound listener to web's VIP
N=10
if [ -n "$NET" ]; then
    ok=0
    for ((i = 0; i < N; i++)); do
        [ "$(curl -s -m 5 "http://$WEB/")" = good ] && ok=$((ok + 1))
    done
    check "$N requests to web through the sidecar: all answered by the app" [ "$ok" = "$N" ]
    check "/clusters: rq_total over web's endpoints is $N" [ "$(sum_stat rq_total)" = "$N" ]
    check "/clusters: rq_success over web's endpoints is $N" [ "$(sum_stat rq_success)" = "$N" ]
    check "/clusters: rq_error 0, rq_timeout 0, rq_active 0" \
        [ "$(sum_stat rq_error)/$(sum_stat rq_timeout)/$(sum_stat rq_active)" = 0/0/0 ]
    r1=$(cl "127.0.0.1:$P6" rq_total) r2=$(cl "127.0.0.2:$P6" rq_total)
    check "/clusters: both ready endpoints got requests ($r1 + $r2)" [ "$r1" -gt 0 -a "$r2" -gt 0 ]
    check "/clusters: not ready and terminating endpoints got none" \
        [ "$(cl "127.0.0.3:$P6" rq_total)/$(cl "127.0.0.4:$P6" rq_total)" = 0/0 ]
    check "/clusters: pooled upstream connections show in cx_active" [ "$(sum_stat cx_active)" -ge 1 ]
    check "/clusters?format=json agrees ($N requests, Envoy's shape)" python3 -c "
import json, sys
d = json.loads(sys.argv[1])
c = [c for c in d['cluster_statuses'] if c['name'] == 'outbound|80||web.shop.svc.cluster.local'][0]
assert c['added_via_api'] is False and c['circuit_breakers']['thresholds'][0]['max_requests'] == 79, c
hs = {h['address']['socket_address']['address']: h for h in c['host_statuses']}
assert sorted(hs) == ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'], sorted(hs)
st = lambda h, n: int([s['value'] for s in h['stats'] if s['name'] == n][0])
assert sum(st(h, 'rq_total') for h in hs.values()) == int(sys.argv[2])
assert hs['127.0.0.1']['health_status']['eds_health_status'] == 'HEALTHY'
assert hs['127.0.0.3']['health_status']['eds_health_status'] == 'UNHEALTHY'
assert hs['127.0.0.4']['health_status']['eds_health_status'] == 'DRAINING'
assert hs['127.0.0.1']['success_rate']['value'] == -1 and hs['127.0.0.2']['locality']['zone'] == 'zone-b'
" "$(curl -s "$ADMIN/clusters?format=json")" "$N"

    # an attempt that outlives web's perTryTimeout (2 s): rq_timeout on its endpoint
    c=$(curl -s -o /dev/null -w '%{http_code}' -m 10 "http://$WEB/delay/3000")
    check "web: a request past perTryTimeout is 504 ($c)" [ "$c" = 504 ]
    check "/clusters: it shows as rq_timeout 1 (and rq_error 1) on web's endpoints" \
        [ "$(sum_stat rq_timeout)/$(sum_stat rq_error)/$(sum_stat rq_total)" = "1/1/$((N + 1))" ]

    # api: the endpoint that answers 503 is ejected on the workers that saw 3 in a row
    codes=$(for ((i = 0; i < 40; i++)); do curl -s -o /dev/null -w '%{http_code} ' -m 5 "http://$API/"; done)
    check "api: 503s from bad, then only good ($codes)" grep -q '503' <<<"$codes"
    check "/clusters: bad endpoint is /failed_outlier_check" \
        [ "$(cl "127.0.0.2:$P7" health_flags api)" = /failed_outlier_check ]
    check "/clusters: bad endpoint ejected, ejections counted" \
        [ "$(cl "127.0.0.2:$P7" ejected api)" = true -a "$(cl "127.0.0.2:$P7" ejections_total api)" -ge 1 ]
    check "/clusters: bad endpoint's 503s are rq_error (>= 3)" [ "$(cl "127.0.0.2:$P7" rq_error api)" -ge 3 ]
    check "/clusters: good endpoint healthy, no errors" \
        [ "$(cl "127.0.0.1:$P6" health_flags api)/$(cl "127.0.0.1:$P6" rq_error api)" = healthy/0 ]
    check "/clusters?format=json: failed_outlier_check true" python3 -c "
import json, sys
d = json.loads(sys.argv[1])
c = [c for c in d['cluster_statuses'] if c['name'] == 'outbound|80||api.shop.svc.cluster.local'][0]
h = [h for h in c['host_statuses'] if h['address']['socket_address']['port_value'] == int(sys.argv[2])][0]
assert h['health_status']['failed_outlier_check'] is True and h['health_flags'] == '/failed_outlier_check', h
assert c['outlier_detection']['ejections_total'] >= 1, c['outlier_detection']
" "$(curl -s "$ADMIN/clusters?format=json")" "$P7"
else
    skip_net "requests through web's VIP counted in /clusters"
    skip_net "an endpoint answering 503 ejected: /failed_outlier_check"
fi

# ---- query strings
check "/clusters?format=%6Aso%6E: percent-decoded to json" \
    bash -c "curl -s '$ADMIN/clusters?format=%6Aso%6E' | python3 -c 'import json,sys; json.load(sys.stdin)'"
check "/clusters?format=xml is 400 naming xml" answers "$ADMIN/clusters?format=xml" 400 "unknown format 'xml'"
check "/clusters?bogus=1 is 400 naming bogus" answers "$ADMIN/clusters?bogus=1" 400 "unknown query parameter 'bogus'"
check "/clusters?format=%zz is 400: bad percent-escape" answers "$ADMIN/clusters?format=%zz" 400 "bad percent-escape in query parameter 'format'"
check "a NUL escape (%00) is 400" answers "$ADMIN/clusters?format=js%00on" 400 "bad percent-escape"
many=$(printf 'a%d=1&' $(seq 1 17))
check "17 query parameters is 400 saying the limit" answers "$ADMIN/clusters?$many" 400 "more than 16 query parameters"

# ---- GET on every mutation is refused and does nothing; POST on a read is refused too
for p in config_reload drain_listeners quitquitquit "logging?level=debug" "drain_listeners?graceful"; do
    check "GET /$p: 405 with Allow: POST" refuses405 "$ADMIN/$p" POST
done
check "after the GETs: still ready" ready
check "after the GETs: still running" kill -0 "$SC_PID"
check "after GET /logging?level=debug: level still info" answers "$ADMIN/logging" 200 '^  ringmesh: info$' -X POST
check "after GET /config_reload: still version 1" [ "$(stat config.version)" = 1 ]
check "POST /clusters: 405 with Allow: GET, HEAD" refuses405 "$ADMIN/clusters" "GET, HEAD" -X POST
check "HEAD /server_info: 200" [ "$(code -I "$ADMIN/server_info")" = 200 ]
check "unknown path: 404" [ "$(code "$ADMIN/nope")" = 404 ]

# ---- /logging
check "POST /logging lists the level" [ "$(curl -s -X POST "$ADMIN/logging")" = "$(printf 'active loggers:\n  ringmesh: info')" ]
check "POST /logging?level=bogus is 400 naming bogus" answers "$ADMIN/logging?level=bogus" 400 "unknown log level 'bogus'" -X POST
check "POST /logging?paths=... is 400 naming it" answers "$ADMIN/logging?paths=a:debug" 400 "'paths'" -X POST
debug_lines() { grep -c ' debug \[' "$SC_LOG"; }
curl -s -X POST "$ADMIN/config_reload" >/dev/null
check "at info, a reload logs no debug line" [ "$(debug_lines)" = 0 ]
check "POST /logging?level=debug: 200, lists debug" answers "$ADMIN/logging?level=debug" 200 '^  ringmesh: debug$' -X POST
curl -s -X POST "$ADMIN/config_reload" >/dev/null
check "at debug, a reload logs the workers' cluster updates" wait_until 3 bash -c "grep -q ' debug \[w[0-9]*\] cluster shop/web:80: 4 endpoints' '$SC_LOG'"
check "/server_info shows the new level" bash -c "curl -s $ADMIN/server_info | grep -q '\"log_level\":.*\"debug\"'"
check "POST /logging?level=warning: lists warning" answers "$ADMIN/logging?level=warning" 200 '^  ringmesh: warning$' -X POST
n=$(debug_lines)
curl -s -X POST "$ADMIN/config_reload" >/dev/null
sleep 0.3
check "back at warning, a reload logs no debug line" [ "$(debug_lines)" = "$n" ]
check "POST /logging?ringmesh=info (Envoy's ?<logger>=<level>)" answers "$ADMIN/logging?ringmesh=info" 200 '^  ringmesh: info$' -X POST

# ---- /drain_listeners
refused() { curl -s -o /dev/null -m 3 "$@"; [ $? = 7 ]; } # curl: 7 = could not connect
accepts() { ! refused "$@"; }
check "before the drain: inbound accepts connections" accepts "http://127.0.0.1:$P1/"
check "POST /drain_listeners?inboundonly: 200" [ "$(code -X POST "$ADMIN/drain_listeners?inboundonly")" = 200 ]
check "inboundonly: inbound refuses new connections" wait_until 3 refused "http://127.0.0.1:$P1/"
check "inboundonly: /ready is 503 DRAINING" answers "$ADMIN/ready" 503 '^DRAINING$'
check "inboundonly: /server_info says DRAINING, inbound drained" python3 -c "
import json, sys
d = json.loads(sys.argv[1])
assert d['state'] == 'DRAINING' and d['listeners_drained'] == ['inbound'] and not d['exiting'], d
" "$(curl -s "$ADMIN/server_info")"
if [ -n "$NET" ]; then
    check "inboundonly: outbound still serves new connections" [ "$(curl -s -m 5 "http://$WEB/")" = good ]
    # One keep-alive connection across the drains: a plain drain of everything leaves it
    # alone while new connections fail; a graceful one lets its request in flight finish
    # and closes it after (Connection: close), as SIGTERM's drain does.
    out=$(python3 - "$WEB" "$P2" 2>&1 <<'EOF'
import http.client, socket, sys, time, urllib.request
vip, admin = sys.argv[1], int(sys.argv[2])
def drain(q):
    req = urllib.request.Request('http://127.0.0.1:%d/drain_listeners%s' % (admin, q), method='POST')
    return urllib.request.urlopen(req, timeout=5).status
c = http.client.HTTPConnection(vip, 80, timeout=5)
c.request('GET', '/'); r = c.getresponse(); first = (r.status, r.read().decode().strip())
d1 = drain('')
try:
    socket.create_connection((vip, 80), timeout=3).close(); new = 'connected'
except OSError as e:
    new = 'refused' if isinstance(e, ConnectionRefusedError) else repr(e)
c.request('GET', '/'); r = c.getresponse()
second = (r.status, r.read().decode().strip(), r.getheader('connection') != 'close')
c.request('GET', '/delay/800')
time.sleep(0.2)
d2 = drain('?graceful')
r = c.getresponse()
print(first, d1, new, second, d2, r.status, r.getheader('connection'))
EOF
)
    check "drains: the open connection keeps working, new ones fail, graceful closes it after its answer ($out)" \
        [ "$out" = "(200, 'good') 200 refused (200, 'good', True) 200 200 close" ]
else
    skip_net "inboundonly: outbound still serves"
    check "POST /drain_listeners?graceful: 200" [ "$(code -X POST "$ADMIN/drain_listeners?graceful")" = 200 ]
fi
check "after ?graceful: outbound refuses new connections" refused "http://127.0.0.1:$P0/"
check "after ?graceful: both directions drained, not exiting" python3 -c "
import json, sys
d = json.loads(sys.argv[1])
assert d['state'] == 'DRAINING' and d['listeners_drained'] == ['outbound', 'inbound'] and not d['exiting'], d
" "$(curl -s "$ADMIN/server_info")"
check "POST /drain_listeners?nope is 400 naming nope" answers "$ADMIN/drain_listeners?nope" 400 "'nope'" -X POST
sleep 1
check "a drain without exit: still running" kill -0 "$SC_PID"
check "a drain without exit: admin still answers" [ "$(code "$ADMIN/stats")" = 200 ]
kill "$SC_PID"
check "SIGTERM after a drain: exits" wait_exit "$SC_PID" 7
wait "$SC_PID"
check "SIGTERM after a drain: exit 0" [ $? = 0 ]

# ---- /quitquitquit: answers OK, lets an in-flight request finish, exits 0 (on epoll)
integ_ports
ADMIN=http://127.0.0.1:$P2
if [ -n "$NET" ]; then
    iptables -t nat -F OUTPUT
    iptables -t nat -A OUTPUT -p tcp -d "$WEB,$API" --dport 80 -j REDIRECT --to-ports "$P0"
fi
sed -i "s/port: [0-9]*}/port: $P6}/; s/targetPort: [0-9]*/targetPort: $P6/" "$CFG"
bg good2 "$APP_PY" "$RINGMESH_ROOT/tests/tools/httpapp.py" "$P6" --name good --h2c
wait_until 5 bash -c "ss -ltnH 'sport = :$P6' | grep -q ."
# this one on epoll: the first ran on the default backend (io_uring where the kernel allows)
sidecar_start sc2 --config "$CFG" --drain-seconds 5 --io epoll
check "second sidecar (epoll) ready" ready
check "second sidecar: /server_info says epoll" answers "$ADMIN/server_info" 200 '"io_backend":.*"epoll"'
if [ -n "$NET" ]; then
    check "epoll: a request to web" [ "$(curl -s -m 5 "http://$WEB/")" = good ]
    check "epoll: /clusters counts it" [ "$(sum_stat rq_total)/$(sum_stat rq_success)" = 1/1 ]
    curl -s -m 10 -o "$IT_TMP/slow.body" -w '%{http_code}' "http://$WEB/delay/1500" >"$IT_TMP/slow.code" &
    SLOW=$!
    sleep 0.4
fi
t0=$(date +%s%N)
out=$(curl -s -X POST "$ADMIN/quitquitquit")
check "POST /quitquitquit answers OK ($out)" [ "$out" = OK ]
check "/quitquitquit: exits within the drain time" wait_exit "$SC_PID" 6
wait "$SC_PID"
rc=$?
check "/quitquitquit: exit code 0" [ "$rc" = 0 ]
check "/quitquitquit: the log says why" grep -q 'POST /quitquitquit: draining' "$SC_LOG"
if [ -n "$NET" ]; then
    wait "$SLOW"
    check "/quitquitquit: the in-flight request finished with 200" [ "$(cat "$IT_TMP/slow.code")" = 200 ]
    ms=$((($(date +%s%N) - t0) / 1000000))
    check "/quitquitquit: the exit waited for it (${ms} ms)" [ "$ms" -ge 1000 ]
else
    skip_net "/quitquitquit lets an in-flight request through a VIP finish"
fi
tap_done
