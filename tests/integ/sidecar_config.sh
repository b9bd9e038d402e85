#!/usr/bin/env bash
# --config: the resource model loads at start (a bad file stops the start, naming file,
# document and field), SIGHUP and POST /config_reload publish a new snapshot that every
# worker adopts, a bad reload is rejected while the old snapshot keeps serving, and the
# workload identity comes from flags or env. /config_dump shows what runs.
source "$(dirname "$0")/lib.sh"
integ_ports
CFG=$IT_TMP/mesh.yaml
svc() { # NAME VIP
    printf 'apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: shop}\nspec:\n  clusterIP: %s\n  ports: [{name: http, port: 80, appProtocol: http}]\n---\n' "$1" "$2"
}
slice() { # SERVICE IP
    printf 'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: %s-1, namespace: shop, labels: {kubernetes.io/service-name: %s}}\naddressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints: [{addresses: [%s]}]\n---\n' "$1" "$1" "$2"
}
{ svc cart 10.96.1.1; slice cart 10.1.0.5; } >"$CFG"

# a bad file at start: exit 1, the error names file, document, object and field
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: cart}\nspec:\n  ports: [{port: 99999}]\n' >"$IT_TMP/bad.yaml"
out=$("$RINGMESH_BIN/ringmesh-sidecar" --config "$IT_TMP/bad.yaml" --outbound-port "$P0" --inbound-port "$P1" \
    --admin-port "$P2" --stats-port "$P3" --health-port "$P4" 2>&1); rc=$?
check "bad config at start: exit 1" [ "$rc" = 1 ]
check "bad config at start: names file, document, field ($out)" \
    grep -q "bad.yaml: document 1 (Service default/cart): spec.ports\[0\].port" <<<"$out"
out=$("$RINGMESH_BIN/ringmesh-sidecar" --config "$IT_TMP/missing.yaml" 2>&1); rc=$?
check "missing config file: exit 1 naming it ($out)" bash -c "[ $rc = 1 ] && grep -q 'missing.yaml' <<<'$out'"

# bad --cert-dir: a missing directory, and a key that is not the certificate's
out=$("$RINGMESH_BIN/ringmesh-sidecar" --cert-dir "$IT_TMP/nocerts" 2>&1); rc=$?
check "missing --cert-dir: exit 1" [ "$rc" = 1 ]
check "missing --cert-dir: names the file" grep -q 'nocerts/cert-chain.pem' <<<"$out"
"$RINGMESH_BIN/ringmeshctl" ca init --dir "$IT_TMP/ca" >/dev/null &&
    "$RINGMESH_BIN/ringmeshctl" ca issue --dir "$IT_TMP/ca" --ns default --sa x --out "$IT_TMP/x" >/dev/null &&
    "$RINGMESH_BIN/ringmeshctl" ca issue --dir "$IT_TMP/ca" --ns default --sa y --out "$IT_TMP/y" >/dev/null
cp "$IT_TMP/y/key.pem" "$IT_TMP/x/key.pem"
out=$("$RINGMESH_BIN/ringmesh-sidecar" --cert-dir "$IT_TMP/x" --outbound-port "$P0" --inbound-port "$P1" \
    --admin-port "$P2" --stats-port "$P3" --health-port "$P4" 2>&1); rc=$?
check "--cert-dir with another workload's key: exit 1" [ "$rc" = 1 ]
check "--cert-dir with another workload's key: says the pair does not match" \
    grep -q 'do not belong together' <<<"$out"

bg hash tool hash-server "$P5"
wait_until 5 bash -c "ss -ltnH 'sport = :$P5' | grep -q ."
POD_NAMESPACE=shop sidecar_start sc --config "$CFG" --pod-name cart-7d9 --service-account cart \
    --pod-ip 10.1.0.5 --static-dst "127.0.0.1:$P5"
check "start: config.version 1" [ "$(stat config.version)" = 1 ]
check "start: one service, one endpoint" [ "$(stat config.services)/$(stat config.endpoints)" = 1/1 ]
check "start: every worker runs version 1" [ "$(stat config.oldest_worker_version)" = 1 ]
dump=$(curl -s "http://127.0.0.1:$P2/config_dump")
check "config_dump: JSON with the service and the identity (namespace from POD_NAMESPACE)" \
    python3 -c "
import json, sys
d = json.loads(sys.argv[1])
assert d['version'] == 1, d['version']
assert [(s['namespace'], s['name'], s['cluster_ip'], s['endpoints']) for s in d['services']] == [('shop', 'cart', '10.96.1.1', 1)], d['services']
assert d['node'] == {'pod_name': 'cart-7d9', 'namespace': 'shop', 'service_account': 'cart', 'pod_ip': '10.1.0.5'}, d['node']
" "$dump"

# SIGHUP with a grown file: version 2 everywhere
{ svc cart 10.96.1.1; slice cart 10.1.0.5; svc pay 10.96.1.2; slice pay 10.1.0.6; } >"$CFG"
kill -HUP "$SC_PID"
check "SIGHUP: version 2" wait_until 3 [ "$(stat config.version)" = 2 ]
check "SIGHUP: two services now" [ "$(stat config.services)" = 2 ]
check "SIGHUP: every worker adopted version 2" wait_until 3 [ "$(stat config.oldest_worker_version)" = 2 ]
check "SIGHUP: counted as a reload" [ "$(stat config.reloads_ok)" = 1 ]

# a bad reload is rejected; version 2 keeps serving and traffic still flows
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: cart, namespace: shop}\nspec:\n  clusterIP: 10.96.1.1\n  ports: [{name: http, port: 80, bogus: 1}]\n' >"$CFG"
kill -HUP "$SC_PID"
check "bad reload: rejected and counted" wait_until 3 [ "$(stat config.reloads_rejected)" = 1 ]
check "bad reload: still version 2 with two services" [ "$(stat config.version)/$(stat config.services)" = 2/2 ]
check "bad reload: the log names the field" grep -q "reload rejected, still serving the previous configuration: .*mesh.yaml: document 1 (Service shop/cart): spec.ports\[0\].bogus: unknown field" "$SC_LOG"
check "bad reload: config_dump shows the error" bash -c "curl -s http://127.0.0.1:$P2/config_dump | grep -q 'unknown field'"
check "bad reload: traffic still flows (1 MiB intact)" tool send 127.0.0.1 "$P0" 1048576

# POST /config_reload; GET is refused
{ svc cart 10.96.1.1; } >"$CFG"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
check "GET /config_reload is 405" [ "$(code "http://127.0.0.1:$P2/config_reload")" = 405 ]
out=$(curl -s -X POST "http://127.0.0.1:$P2/config_reload")
check "POST /config_reload loads version 3 ($out)" [ "$out" = "loaded version 3" ]
check "POST /config_reload: one service" [ "$(stat config.services)" = 1 ]
echo 'kind: Nope' >"$CFG"
check "POST /config_reload of a bad file is 400" [ "$(code -X POST "http://127.0.0.1:$P2/config_reload")" = 400 ]
check "still version 3" [ "$(stat config.version)" = 3 ]

# identity validation
for args in "--pod-namespace Bad_NS|--pod-namespace" "--pod-ip not-an-ip|--pod-ip" "--service-account -x|--service-account"; do
    flags=${args%|*}; want=${args#*|}
    out=$("$RINGMESH_BIN/ringmesh-sidecar" $flags 2>&1); rc=$?
    check "bad identity '$flags': exit 2 naming $want" bash -c "[ $rc = 2 ] && grep -q -- '$want' <<<'$out'"
done
out=$(POD_NAMESPACE=UPPER "$RINGMESH_BIN/ringmesh-sidecar" 2>&1); rc=$?
check "bad POD_NAMESPACE env: exit 2 naming it" bash -c "[ $rc = 2 ] && grep -q 'POD_NAMESPACE' <<<'$out'"
tap_done
