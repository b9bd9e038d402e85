#!/usr/bin/env bash
# --xds: the sidecar takes its configuration from a control plane (tests/tools/fakexds.py,
# h2c, xds/PROTOCOL.md) over one long-lived HTTP/2 stream. Not ready before the first warm
# snapshot; serves it (config_dump, stats, a real connection); an invalid update is NACKed
# with the model's field path and changes nothing; a dropped stream reconnects with a
# jittered backoff and resumes with initial_resource_versions; --xds-cache serves and
# makes the sidecar ready with the control plane down; flag errors exit 1; --xds-token
# fetches the workload certificate from the CA into --cert-dir.
source "$(dirname "$0")/lib.sh"
integ_ports
PYH2=${RINGMESH_PYTHON_H2:-/usr/bin/python3} # Debian's python3-h2 lives there
if ! "$PYH2" -c 'import h2' 2>/dev/null; then
    skip "python3-h2 not installed (apt-get install python3-h2)"
    tap_done
    exit 0
fi
XDS=http://127.0.0.1:$P6
REC=$IT_TMP/rec.jsonl
CTL=$IT_TMP/ctl
CACHE=$IT_TMP/xds-cache.json
SC_FLAGS=(--outbound-port "$P0" --inbound-port "$P1" --admin-port "$P2" --stats-port "$P3"
    --health-port "$P4" --concurrency 2 --pod-name cart-1 --pod-namespace shop
    --service-account cart --pod-ip 10.1.0.5)

svc() { # NAME VIP [PORT]
    printf '{"apiVersion":"v1","kind":"Service","metadata":{"name":"%s","namespace":"shop"},"spec":{"clusterIP":"%s","ports":[{"name":"http","port":%s,"appProtocol":"http"}]}}' "$1" "$2" "${3:-80}"
}
slice() { # SERVICE IP
    printf '{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"%s-1","namespace":"shop","labels":{"kubernetes.io/service-name":"%s"}},"addressType":"IPv4","ports":[{"name":"http","port":8080}],"endpoints":[{"addresses":["%s"]}]}' "$1" "$1" "$2"
}
n_cmd=0
xcmd() { # JSON: one scripted step for the fake control plane
    n_cmd=$((n_cmd + 1))
    printf '%s' "$1" >"$CTL/.tmp" && mv "$CTL/.tmp" "$CTL/$(printf %04d $n_cmd).cmd"
}
fake_start() { # NAME [extra flags]
    local name=$1; shift
    bg "$name" "$PYH2" "$RINGMESH_ROOT/tests/tools/fakexds.py" --port "$P6" --control "$CTL" \
        --record "$REC" "$@"
    FAKE_PID=$BG_PID
    wait_until 5 bash -c "ss -ltnH 'sport = :$P6' | grep -q ."
}
# rec PYTHON-EXPR: evaluates EXPR over the recorded events `ev` (a list of dicts)
rec() { python3 -c "import json,sys; ev=[json.loads(l) for l in open('$REC')]; r=($1); print(r) if not isinstance(r,bool) else sys.exit(0 if r else 1)"; }
stat_is() { [ "$(stat "$1")" = "$2" ]; } # KEY VALUE, re-read on every try of wait_until
dump() { curl -s "http://127.0.0.1:$P2/config_dump"; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

# ---- flag errors: exit 1, saying what to change
out=$("$RINGMESH_BIN/ringmesh-sidecar" --config /dev/null --xds "$XDS" 2>&1); rc=$?
check "--config with --xds: exit 1 ($out)" [ "$rc" = 1 ]
check "--config with --xds: says both were given" grep -q -- '--config and --xds both given' <<<"$out"
for bad in "ftp://x:1" "http://127.0.0.1" "http://127.0.0.1:99999" "127.0.0.1:15010" "http://h:1/x"; do
    out=$("$RINGMESH_BIN/ringmesh-sidecar" --xds "$bad" 2>&1); rc=$?
    check "bad --xds '$bad': exit 1 naming it ($out)" bash -c "[ $rc = 1 ] && grep -qF -- \"--xds: '$bad'\" <<<\"\$1\"" _ "$out"
done
out=$("$RINGMESH_BIN/ringmesh-sidecar" --xds "$XDS" --xds-token /dev/null 2>&1); rc=$?
check "--xds-token without --cert-dir: exit 1" bash -c "[ $rc = 1 ] && grep -q 'needs --cert-dir' <<<\"\$1\"" _ "$out"
out=$("$RINGMESH_BIN/ringmesh-sidecar" --xds-cache "$CACHE" 2>&1); rc=$?
check "--xds-cache without --xds: exit 1" bash -c "[ $rc = 1 ] && grep -q 'needs --xds' <<<\"\$1\"" _ "$out"

# ---- no control plane, no cache: up but not ready; reconnects back off
mkdir -p "$CTL"
bg sc "$RINGMESH_BIN/ringmesh-sidecar" "${SC_FLAGS[@]}" --xds "$XDS" --xds-cache "$CACHE" \
    --static-dst "127.0.0.1:$P5"
SC_PID=$BG_PID
SC_LOG=$IT_TMP/sc.log
check "no control plane: admin answers" wait_until 5 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$P2/stats)\" = 200 ]"
check "no control plane, no cache: /ready is 503" [ "$(code "http://127.0.0.1:$P2/ready")" = 503 ]
check "no control plane, no cache: :health/healthz/ready is 503" [ "$(code "http://127.0.0.1:$P4/healthz/ready")" = 503 ]
check "no control plane: /ready says it waits for xDS" bash -c "curl -s http://127.0.0.1:$P2/ready | grep -q WAITING_FOR_XDS"
check "no control plane: xds.connected 0" [ "$(stat xds.connected)" = 0 ]
check "four reconnect attempts logged" wait_until 8 bash -c "[ \$(grep -c 'reconnecting in' '$SC_LOG') -ge 4 ]"
waits=$(grep -o 'reconnecting in [0-9]* ms' "$SC_LOG" | awk '{print $3}' | head -4 | tr '\n' ' ')
read -r w1 w2 w3 w4 <<<"$waits"
check "backoff: first wait in 125..375 ms, fourth in 1000..3000 ms ($waits)" \
    bash -c "[ $w1 -ge 125 ] && [ $w1 -le 375 ] && [ $w4 -ge 1000 ] && [ $w4 -le 3000 ]"
check "xds.reconnects counts them" bash -c "[ $(stat xds.reconnects) -ge 3 ]"

# ---- the control plane comes: the sidecar connects, warms, is ready
{ echo "["; svc cart 10.96.1.1; echo ","; slice cart 10.1.0.5; echo "]"; } >"$IT_TMP/objects.json"
bg hash tool hash-server "$P5"
fake_start fake --objects "$IT_TMP/objects.json"
check "control plane up: ready within the backoff" wait_until 10 ready
check "xds.connected 1" [ "$(stat xds.connected)" = 1 ]
check "six subscriptions, node on the first line only" rec "[e['line'].get('type_url') for e in ev if e['event']=='line' and 'resource_names_subscribe' in e['line']] == ['v1/Service','ringmesh.io/v1alpha1/DestinationPolicy','discovery.k8s.io/v1/EndpointSlice','gateway.networking.k8s.io/v1/HTTPRoute','ringmesh.io/v1alpha1/AuthorizationPolicy','ringmesh.io/v1alpha1/PeerAuthentication'] and [('node' in e['line']) for e in ev if e['event']=='line'][:2] == [True, False]"
check "node names the workload" rec "[e for e in ev if e['event']=='line'][0]['line']['node']['id'] == 'sidecar~10.1.0.5~cart-1.shop~shop.svc.cluster.local'"
check "every response ACKed, in order" wait_until 3 rec "[e['line']['nonce'] for e in ev if e['event']=='sent'] == [e['line']['response_nonce'] for e in ev if e['event']=='line' and 'response_nonce' in e['line']]"
check "xds.updates_accepted 6" [ "$(stat xds.updates_accepted)" = 6 ]
check "stats: one service, one endpoint from xDS" [ "$(stat config.services)/$(stat config.endpoints)" = 1/1 ]
check "every worker adopted it" wait_until 3 stat_is config.oldest_worker_version "$(stat config.version)"
check "config_dump: the service, and the xDS state" python3 -c "
import json, sys
d = json.loads(sys.argv[1])
assert [(s['namespace'], s['name'], s['cluster_ip'], s['endpoints']) for s in d['services']] == [('shop', 'cart', '10.96.1.1', 1)], d['services']
x = d['xds']
assert x['connected'] is True and x['warm'] is True, x
assert x['types']['v1/Service'] == {'acked_version': '1', 'resources': 1}, x['types']
assert x['types']['discovery.k8s.io/v1/EndpointSlice']['resources'] == 1, x['types']
assert x['last_nack'] == {}, x['last_nack']
" "$(dump)"
check "a real connection through the sidecar (1 MiB intact)" tool send 127.0.0.1 "$P0" 1048576

# ---- an update: a second Service and its slice
xcmd "{\"op\":\"apply\",\"objects\":[$(svc pay 10.96.1.2),$(slice pay 10.1.0.6)]}"
check "update: two services" wait_until 3 stat_is config.services 2
check "update: ACKed (8 accepted)" wait_until 3 stat_is xds.updates_accepted 8
check "update: the cache holds both" wait_until 3 python3 -c "
import json; c = json.load(open('$CACHE'))
assert sorted(c['types']['v1/Service']) == ['shop/cart', 'shop/pay'], c['types']['v1/Service']"
v_before=$(stat config.version)

# ---- an invalid update: NACK with the field path; nothing changes
xcmd "{\"op\":\"apply\",\"objects\":[$(svc cart 10.96.1.1 99999)]}"
check "invalid update: NACKed with the model's field path" wait_until 3 rec "any(e['event']=='line' and 'spec.ports[0].port: want an integer 1..65535, got 99999' in e['line'].get('error_detail',{}).get('message','') and e['line']['error_detail']['code']==3 for e in ev)"
check "invalid update: xds.updates_rejected 1" [ "$(stat xds.updates_rejected)" = 1 ]
check "invalid update: config version unchanged, still two services" \
    [ "$(stat config.version)/$(stat config.services)" = "$v_before/2" ]
check "invalid update: config_dump shows the NACK" python3 -c "
import json, sys
n = json.loads(sys.argv[1])['xds']['last_nack']
assert n['type_url'] == 'v1/Service' and '(Service shop/cart): spec.ports[0].port' in n['message'], n
" "$(dump)"
check "invalid update: the old port 80 is still served" python3 -c "
import json, sys
d = json.loads(sys.argv[1]); assert [s['ports'][0]['port'] for s in d['services'] if s['name']=='cart'] == [80], d['services']
" "$(dump)"
check "invalid update: the cache was not touched" python3 -c "
import json; c = json.load(open('$CACHE'))
assert c['types']['v1/Service']['shop/cart']['resource']['spec']['ports'][0]['port'] == 80"
check "invalid update: traffic still flows" tool send 127.0.0.1 "$P0" 65536
xcmd "{\"op\":\"apply\",\"objects\":[$(svc cart 10.96.1.1 81)]}"
check "a valid fix after the NACK is ACKed and served (port 81)" wait_until 3 bash -c "curl -s http://127.0.0.1:$P2/config_dump | grep -q '\"port\":[[:space:]]*81'"

# ---- the server drops the connection: reconnect with backoff, resume with versions
acc=$(stat xds.updates_accepted); rc0=$(stat xds.reconnects)
xcmd '{"op":"drop"}'
check "drop: reconnected (a second connect)" wait_until 5 rec "sum(e['event']=='connect' for e in ev) == 2"
check "drop: xds.reconnects grew" wait_until 3 bash -c "[ \$(curl -s http://127.0.0.1:$P2/stats | awk '\$1 == \"xds.reconnects:\" {print \$2}') -gt $rc0 ]"
check "drop: the reconnect waited the jittered backoff (>= 125 ms)" rec "(lambda d, c: c - d >= 0.125)([e['t'] for e in ev if e['event']=='drop'][-1], [e['t'] for e in ev if e['event']=='connect'][-1])"
check "resume: initial_resource_versions name what is held, with versions" wait_until 3 rec "[e['line'].get('initial_resource_versions') for e in ev if e['event']=='line' and e['line'].get('type_url')=='v1/Service' and 'resource_names_subscribe' in e['line']][-1] == {'shop/cart': '4', 'shop/pay': '2'}"
check "resume: slices too" rec "[e['line'].get('initial_resource_versions') for e in ev if e['event']=='line' and e['line'].get('type_url')=='discovery.k8s.io/v1/EndpointSlice' and 'resource_names_subscribe' in e['line']][-1] == {'shop/cart-1': '1', 'shop/pay-1': '2'}"
check "resume: types holding nothing send no versions" rec "'initial_resource_versions' not in [e['line'] for e in ev if e['event']=='line' and e['line'].get('type_url')=='gateway.networking.k8s.io/v1/HTTPRoute' and 'resource_names_subscribe' in e['line']][-1]"
check "resume: the server had nothing to resend (empty responses)" wait_until 3 rec "all(not e['line']['resources'] for e in ev if e['event']=='sent' and e['t'] > [x['t'] for x in ev if x['event']=='connect'][-1])"
check "resume: still two services, connected" wait_until 3 bash -c "[ \"\$(curl -s http://127.0.0.1:$P2/stats | grep -E '^(config.services|xds.connected):' | tr -d '\n')\" = 'config.services: 2xds.connected: 1' ]"

# ---- restart with the control plane down: the cache serves and makes it ready
kill "$FAKE_PID"; wait "$FAKE_PID" 2>/dev/null
kill "$SC_PID"; wait_exit "$SC_PID" 10
sidecar_start sc2 "${SC_FLAGS[@]}" --xds "$XDS" --xds-cache "$CACHE" --static-dst "127.0.0.1:$P5"
check "restart with the cache, control plane down: ready" ready
check "restart with the cache: two services served, port 81" python3 -c "
import json, sys
d = json.loads(sys.argv[1])
assert sorted(s['name'] for s in d['services']) == ['cart', 'pay'], d['services']
assert [s['ports'][0]['port'] for s in d['services'] if s['name']=='cart'] == [81]
assert d['xds']['connected'] is False, d['xds']
" "$(dump)"
check "restart with the cache: traffic flows" tool send 127.0.0.1 "$P0" 65536
rm -f "$REC"
fake_start fake2 --objects "$IT_TMP/objects.json"
check "the control plane returns: the first stream resumes from the cache's versions" \
    wait_until 10 rec "[e['line'].get('initial_resource_versions') for e in ev if e['event']=='line' and e['line'].get('type_url')=='v1/Service'][:1] == [{'shop/cart': '4', 'shop/pay': '2'}]"
check "and the server's view wins: pay is removed, cart back to port 80" wait_until 5 python3 -c "
import json, urllib.request
d = json.load(urllib.request.urlopen('http://127.0.0.1:$P2/config_dump'))
assert [(s['name'], s['ports'][0]['port']) for s in d['services']] == [('cart', 80)], d['services']"
kill "$SC_PID"; wait_exit "$SC_PID" 10
kill "$FAKE_PID"; wait "$FAKE_PID" 2>/dev/null

# ---- a corrupt cache is not served (not ready), and says why
echo '{"ringmesh_xds_cache":1,"types":{"v1/Nope":{}}}' >"$CACHE"
bg sc3 "$RINGMESH_BIN/ringmesh-sidecar" "${SC_FLAGS[@]}" --xds "$XDS" --xds-cache "$CACHE"
SC_PID=$BG_PID
check "corrupt cache: admin up" wait_until 5 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$P2/stats)\" = 200 ]"
check "corrupt cache: not ready" [ "$(code "http://127.0.0.1:$P2/ready")" = 503 ]
check "corrupt cache: the log says why" grep -q 'xds-cache: not used: .*unknown type URL v1/Nope' "$IT_TMP/sc3.log"
kill "$SC_PID"; wait_exit "$SC_PID" 10

# ---- certificate bootstrap from the CA with a token
"$RINGMESH_BIN/ringmeshctl" ca init --dir "$IT_TMP/ca" >/dev/null
echo good-token >"$IT_TMP/token"
echo bad-token >"$IT_TMP/badtoken"
rm -f "$REC"
fake_start fake3 --objects "$IT_TMP/objects.json" --ca-dir "$IT_TMP/ca" --token good-token=shop/cart
out=$("$RINGMESH_BIN/ringmesh-sidecar" "${SC_FLAGS[@]}" --xds "$XDS" --xds-token "$IT_TMP/badtoken" \
    --cert-dir "$IT_TMP/certs-bad" 2>&1); rc=$?
check "a refused token: exit 1 with the CA's answer" bash -c "[ $rc = 1 ] && grep -q 'HTTP 401: no or unknown bearer token' <<<\"\$1\"" _ "$out"
sidecar_start sc4 "${SC_FLAGS[@]}" --xds "$XDS" --xds-token "$IT_TMP/token" --cert-dir "$IT_TMP/certs"
check "bootstrap: ready" ready
check "bootstrap: the CA signed once for shop/cart" rec "[e['identity'] for e in ev if e['event']=='sign'] == ['shop/cart']"
check "bootstrap: key.pem, cert-chain.pem, root-cert.pem written" \
    bash -c "[ -s '$IT_TMP/certs/key.pem' ] && [ -s '$IT_TMP/certs/cert-chain.pem' ] && [ -s '$IT_TMP/certs/root-cert.pem' ]"
check "bootstrap: key.pem is 0600" [ "$(command stat -c %a "$IT_TMP/certs/key.pem")" = 600 ]
check "bootstrap: no temporary files left" bash -c "[ -z \"\$(ls -A '$IT_TMP/certs' | grep -v -e '^key.pem$' -e '^cert-chain.pem$' -e '^root-cert.pem$')\" ]"
check "bootstrap: the certificate is the key's and chains to the root" bash -c "
    [ \"\$(openssl x509 -in '$IT_TMP/certs/cert-chain.pem' -noout -pubkey)\" = \"\$(openssl pkey -in '$IT_TMP/certs/key.pem' -pubout)\" ] &&
    openssl verify -CAfile '$IT_TMP/ca/root-cert.pem' '$IT_TMP/certs/cert-chain.pem' >/dev/null"
check "bootstrap: /stats tls.identity is the SPIFFE ID" \
    [ "$(stat tls.identity)" = "spiffe://cluster.local/ns/shop/sa/cart" ]
check "bootstrap: and the xDS config arrived" [ "$(stat config.services)" = 1 ]
kill "$SC_PID"; wait_exit "$SC_PID" 10
sidecar_start sc5 "${SC_FLAGS[@]}" --xds "$XDS" --xds-token "$IT_TMP/token" --cert-dir "$IT_TMP/certs"
check "restart with a fresh certificate in --cert-dir: no new signing" rec "[e['identity'] for e in ev if e['event']=='sign'] == ['shop/cart']"
check "restart: the same identity" [ "$(stat tls.identity)" = "spiffe://cluster.local/ns/shop/sa/cart" ]

# ---- ringmeshctl proxy-config
out=$("$RINGMESH_BIN/ringmeshctl" proxy-config --admin "http://127.0.0.1:$P2" shop/cart-1); rc=$?
check "proxy-config shop/cart-1: exit 0" [ "$rc" = 0 ]
check "proxy-config: the sidecar's services and xDS state" python3 -c "
import json, sys
d = json.loads(sys.argv[1])
assert [s['name'] for s in d['services']] == ['cart'] and d['xds']['connected'] is True, d
" "$out"
out=$("$RINGMESH_BIN/ringmeshctl" proxy-config --admin "http://127.0.0.1:$P2" shop/other 2>&1); rc=$?
check "proxy-config for another pod: exit 1 naming who answered ($out)" \
    bash -c "[ $rc = 1 ] && grep -q 'is the sidecar of shop/cart-1, not shop/other' <<<\"\$1\"" _ "$out"
out=$("$RINGMESH_BIN/ringmeshctl" proxy-config --admin "http://127.0.0.1:$P6" 2>&1); rc=$?
check "proxy-config against something else: exit 1 ($out)" [ "$rc" = 1 ]
tap_done
