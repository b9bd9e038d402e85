#!/usr/bin/env bash
# tests/integ/xds_server.sh - ringmesh-xds on a temporary manifest directory, driven by
# ringmeshctl and tests/tools/xdsclient.py (python3-h2, delta xDS over h2c and TLS):
# the initial push (order, contents), one change -> one resource, one endpoint change -> one
# EndpointSlice, a NACK in proxy-status and /metrics, delete -> removed_resources, resume with
# initial_resource_versions -> only the difference, a bad apply refused with the model's error
# (nothing changed), applied objects saved to the directory and served after a restart, a bad
# file dropped in the directory rejected and logged (old objects still served), CSR signing
# with a bootstrap token (openssl verify, SPIFFE URI SAN; a foreign token refused), the TLS
# port (openssl s_client -alpn h2), /metrics parsing strictly.
source "$(dirname "$0")/lib.sh"
PY=${RINGMESH_PYTHON:-$( [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)}
if ! "$PY" -c 'import h2' 2>/dev/null; then skip "python3-h2 not installed"; tap_done; exit; fi
integ_ports
CFG=$IT_TMP/cfg CA=$IT_TMP/ca
mkdir -p "$CFG"
export RINGMESH_XDS_API=http://127.0.0.1:$P2
CTL=$RINGMESH_BIN/ringmeshctl
XC="$RINGMESH_ROOT/tests/tools/xdsclient.py"

cat >"$CFG/mesh.yaml" <<'Y'
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-a, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.0.1]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-b, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.0.2]}]
Y

api_ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P2/ready")" = 200 ]; }
xds_start() {
    bg "xds$1" "$RINGMESH_BIN/ringmesh-xds" --config-dir "$CFG" --ca-dir "$CA" --xds-port "$P0" \
        --xds-tls-port "$P1" --api-port "$P2" --log-level debug
    XDS_PID=$BG_PID XDS_LOG=$IT_TMP/xds$1.log
    wait_until 5 api_ready
}
metric() { curl -s "http://127.0.0.1:$P2/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
# responses of client output file $1: line N (1-based) as JSON
resp() { grep '"nonce"' "$1" | sed -n "${2}p"; }
nresp() { grep -c '"nonce"' "$1"; }
jqr() { jq -c "$2" <<<"$1"; }

"$RINGMESH_BIN/ringmesh-xds" --config-dir /nonexistent-x 2>"$IT_TMP/err.txt"; rc=$?
check "ringmesh-xds: a missing --config-dir exits 1 naming flag, path and reason" bash -c "[ $rc = 1 ] && grep -q 'ringmesh-xds: --config-dir: /nonexistent-x: No such file or directory' '$IT_TMP/err.txt'"
"$CTL" get >/dev/null 2>&1; rc=$?
check "ringmeshctl: a usage error exits 2" [ "$rc" = 2 ]

xds_start 1 || not_ok "ringmesh-xds did not become ready"
check "ready" api_ready

# ---- client 1: the initial push ----
mkfifo "$IT_TMP/c1.in"
exec 3<>"$IT_TMP/c1.in"
C1=$IT_TMP/c1.log
# a background job's stdin is /dev/null unless the job itself opens the fifo
bg c1 bash -c 'exec "$@" <"$0"' "$IT_TMP/c1.in" "$PY" "$XC" --port "$P0" --pod web-1 --state "$IT_TMP/c1.state"
wait_until 5 bash -c "[ \$(grep -c '\"nonce\"' '$C1') -ge 6 ]"
order=$(grep '"nonce"' "$C1" | jq -r .type_url | tr '\n' ' ')
check "initial push: six responses in make-before-break order" [ "$order" = \
    "v1/Service ringmesh.io/v1alpha1/DestinationPolicy discovery.k8s.io/v1/EndpointSlice gateway.networking.k8s.io/v1/HTTPRoute ringmesh.io/v1alpha1/AuthorizationPolicy ringmesh.io/v1alpha1/PeerAuthentication " ]
check "  Services: default/web with its object" [ "$(jqr "$(resp "$C1" 1)" '[.resources[]|.name+"="+.resource.kind]')" = '["default/web=Service"]' ]
check "  EndpointSlices: web-a and web-b" [ "$(jqr "$(resp "$C1" 3)" '[.resources[].name]')" = '["default/web-a","default/web-b"]' ]
check "  empty types get an empty first response (warming)" [ "$(jqr "$(resp "$C1" 4)" '.resources|length')" = 0 ]
check "  nonces unique" [ "$(grep '"nonce"' "$C1" | jq -r .nonce | sort -u | wc -l)" = 6 ]
echo ack >&3
wait_until 5 bash -c "[ \"\$(curl -s http://127.0.0.1:$P2/api/v1/proxy-status | jq -r '.proxies[0].types[\"v1/Service\"].acked_version')\" = 1 ]"
check "proxy-status: the sidecar with its ACKed version" bash -c "'$CTL' proxy-status | grep -E '^web-1 +default +v1/Service +1 +- +-$'"

# ---- one change -> one resource ----
sed 's/port: 80}/port: 81}/' "$CFG/mesh.yaml" | awk 'BEGIN{RS="---\n"} NR==1' >"$IT_TMP/web81.yaml"
out=$("$CTL" apply -f "$IT_TMP/web81.yaml"); rc=$?
check "apply: ringmeshctl says configured" bash -c "[ $rc = 0 ] && [ '$out' = 'Service default/web configured' ]"
wait_until 5 bash -c "[ \$(grep -c '\"nonce\"' '$C1') -ge 7 ]"
r=$(resp "$C1" 7)
check "  exactly one changed resource pushed" [ "$(jqr "$r" '[.type_url,[.resources[]|.name+"@"+.version+":"+(.resource.spec.ports[0].port|tostring)],.removed_resources]')" = '["v1/Service",["default/web@2:81"],[]]' ]
check "  saved to the directory atomically as its own file" bash -c "jq -e '.spec.ports[0].port == 81' '$CFG/service-default-web.json' >/dev/null && ! ls -a '$CFG' | grep -q tmp"
echo ack >&3
sleep 0.5 # the inotify reload of our own write
check "  our own write reloaded changes nothing (revision 2, no extra push)" bash -c "[ \"\$(curl -s http://127.0.0.1:$P2/metrics | awk '\$1==\"ringmesh_xds_store_revision\"{print \$2}')\" = 2 ] && [ \$(grep -c '\"nonce\"' '$C1') = 7 ]"
check "  our own write starts no directory reload (reloads_total ok stays 1)" bash -c "[ \"\$(curl -s http://127.0.0.1:$P2/metrics | awk '\$1==\"ringmesh_xds_reloads_total{result=\\\"ok\\\"}\"{print \$2}')\" = 1 ]"

# ---- an endpoint change sends that one slice ----
awk 'BEGIN{RS="---\n"} NR==2' "$CFG/mesh.yaml" | sed 's/10.0.0.1/10.0.0.11/' | "$CTL" apply -f - >/dev/null
wait_until 5 bash -c "[ \$(grep -c '\"nonce\"' '$C1') -ge 8 ]"
check "endpoint change: only EndpointSlice default/web-a" [ "$(jqr "$(resp "$C1" 8)" '[.type_url,[.resources[].name],(.resources[0].resource.endpoints[0].addresses[0])]')" = '["discovery.k8s.io/v1/EndpointSlice",["default/web-a"],"10.0.0.11"]' ]
echo ack >&3

# ---- NACK ----
sed 's/port: 81}/port: 82}/' "$IT_TMP/web81.yaml" | "$CTL" apply -f - >/dev/null
wait_until 5 bash -c "[ \$(grep -c '\"nonce\"' '$C1') -ge 9 ]"
nn=$(resp "$C1" 9 | jq -r .nonce)
echo "nack mesh.yaml: document 1: spec.ports[0].port: refused by test" >&3
wait_until 5 bash -c "curl -s http://127.0.0.1:$P2/api/v1/proxy-status | grep -q 'refused by test'"
ps=$(curl -s "http://127.0.0.1:$P2/api/v1/proxy-status")
check "NACK recorded in proxy-status with its nonce and message" [ "$(jqr "$ps" '.proxies[0].types["v1/Service"].last_nack|[.nonce,.message]')" = "[\"$nn\",\"mesh.yaml: document 1: spec.ports[0].port: refused by test\"]" ]
check "  and in ringmeshctl proxy-status" bash -c "'$CTL' proxy-status | grep -q \"nonce $nn at .*refused by test\""
check "  counted in /metrics" [ "$(metric 'ringmesh_xds_nacks_total{type="v1/Service"}')" = 1 ]
sleep 0.3
check "  the NACKed response is not resent" [ "$(nresp "$C1")" = 9 ]

# ---- created through the API, then deleted -> removed_resources ----
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec: {ports: [{port: 90}]}\n' >"$IT_TMP/api.yaml"
check "apply of a new object says created" bash -c "[ \"\$('$CTL' apply -f '$IT_TMP/api.yaml')\" = 'Service default/api created' ]"
check "  its file is in the directory" test -f "$CFG/service-default-api.json"
wait_until 5 bash -c "[ \$(grep -c '\"nonce\"' '$C1') -ge 10 ]"
check "  pushed alone" [ "$(jqr "$(resp "$C1" 10)" '[.resources[].name]')" = '["default/api"]' ]
echo ack >&3
check "delete: ringmeshctl delete svc api" bash -c "[ \"\$('$CTL' delete svc api)\" = 'svc default/api deleted' ]"
wait_until 5 bash -c "[ \$(grep -c '\"nonce\"' '$C1') -ge 11 ]"
check "  pushed as removed_resources" [ "$(jqr "$(resp "$C1" 11)" '[.type_url,(.resources|length),.removed_resources]')" = '["v1/Service",0,["default/api"]]' ]
check "  its file is gone" test ! -e "$CFG/service-default-api.json"
echo ack >&3
"$CTL" delete svc api >/dev/null 2>"$IT_TMP/err.txt"; rc=$?
check "deleting it again: exit 1 with the server's error" bash -c "[ $rc = 1 ] && grep -q 'Service default/api not found' '$IT_TMP/err.txt'"
"$CTL" delete EndpointSlice web-b >/dev/null 2>"$IT_TMP/err.txt"; rc=$?
check "deleting an object of a hand-written manifest is refused, naming the file" bash -c "[ $rc = 1 ] && grep -q 'mesh.yaml, which the API does not edit' '$IT_TMP/err.txt'"

# ---- a bad apply ----
rev=$(metric ringmesh_xds_store_revision)
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: ok1}\nspec: {ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: [{port: 70000}]}\n' >"$IT_TMP/bad.yaml"
"$CTL" apply -f "$IT_TMP/bad.yaml" >/dev/null 2>"$IT_TMP/err.txt"; rc=$?
check "bad apply: exit 1" [ "$rc" = 1 ]
check "  with the model's error naming document and field" grep -q "bad.yaml: document 2 (Service default/bad): spec.ports\[0\].port: want an integer 1..65535, got 70000" "$IT_TMP/err.txt"
check "  nothing changed (not even the good document)" bash -c "[ '$(metric ringmesh_xds_store_revision)' = '$rev' ] && ! '$CTL' get svc ok1 >/dev/null 2>&1 && [ ! -e '$CFG/service-default-ok1.json' ]"

# ---- resume with initial_resource_versions ----
echo quit >&3
exec 3>&-
wait_until 5 bash -c "[ \"\$(curl -s http://127.0.0.1:$P2/api/v1/proxy-status | jq '.proxies|length')\" = 0 ]"
check "the disconnected sidecar leaves proxy-status" [ "$(metric ringmesh_xds_connected_sidecars)" = 0 ]
sed 's/port: 81}/port: 83}/' "$IT_TMP/web81.yaml" | "$CTL" apply -f - >/dev/null
C2=$IT_TMP/c2.log
bg c2 "$PY" "$XC" --port "$P0" --pod web-2 --auto-ack --resume "$IT_TMP/c1.state" </dev/null
wait_until 5 bash -c "[ \$(grep -c '\"nonce\"' '$C2') -ge 6 ]"
check "resume: Services carry only default/web (changed while away)" [ "$(jqr "$(resp "$C2" 1)" '[[.resources[].name],(.resources[0].resource.spec.ports[0].port),.removed_resources]')" = '[["default/web"],83,[]]' ]
check "  every other type: an empty response" [ "$(grep '"nonce"' "$C2" | sed -n '2,6p' | jq -c '[(.resources|length), (.removed_resources|length)]' | sort -u)" = '[0,0]' ]

# ---- restart: the directory holds what the API applied ----
kill "$XDS_PID"; wait_exit "$XDS_PID" 5
check "SIGTERM: clean exit" bash -c "grep -q 'signal 15: shutting down' '$XDS_LOG'"
xds_start 2
check "after a restart the applied object is served (port 83)" [ "$("$CTL" get svc web -o json | jq '.spec.ports[0].port')" = 83 ]

# ---- a bad file dropped into the directory ----
rev=$(metric ringmesh_xds_store_revision)
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: broken}\nspec: {ports: [{port: -1}]}\n' >"$CFG/zz-broken.yaml"
wait_until 5 grep -q "reload of $CFG rejected" "$XDS_LOG"
check "a bad file is rejected with the model's error in the log" grep -q "zz-broken.yaml: document 1 (Service default/broken): spec.ports\[0\].port" "$XDS_LOG"
check "  the old objects are still served" bash -c "[ \"\$('$CTL' get svc web -o json | jq '.spec.ports[0].port')\" = 83 ] && [ '$(metric ringmesh_xds_store_revision)' = '$rev' ]"
check "  counted" [ "$(metric 'ringmesh_xds_reloads_total{result="rejected"}')" -ge 1 ]
rm -f "$CFG/zz-broken.yaml"

# ---- CA: signing a CSR with a bootstrap token ----
tok=$("$CTL" ca token --dir "$CA" --ns default --sa web)
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /O=ringmesh/CN=ignored \
    -keyout "$IT_TMP/w.key" -out "$IT_TMP/w.csr" 2>/dev/null
"$PY" "$XC" --port "$P0" --token "$tok" --sign "$IT_TMP/w.csr" >"$IT_TMP/sign.json"
check "Sign with a token: 200" [ "$(jq .status "$IT_TMP/sign.json")" = 200 ]
jq -r .body.cert_chain "$IT_TMP/sign.json" >"$IT_TMP/w.crt"
check "  the certificate verifies against the root" openssl verify -CAfile "$CA/root-cert.pem" "$IT_TMP/w.crt"
check "  with the token's SPIFFE ID as URI SAN (not the CSR's subject)" bash -c "openssl x509 -in '$IT_TMP/w.crt' -noout -ext subjectAltName | grep -q 'URI:spiffe://cluster.local/ns/default/sa/web' && ! openssl x509 -in '$IT_TMP/w.crt' -noout -subject | grep -q ignored"
check "  the root bundle comes with it" bash -c "[ \"\$(jq -r .body.root_cert '$IT_TMP/sign.json')\" = \"\$(cat '$CA/root-cert.pem')\" ]"
mkdir -p "$IT_TMP/other"
"$CTL" ca init --dir "$IT_TMP/other" >/dev/null
bad=$("$CTL" ca token --dir "$IT_TMP/other" --ns default --sa web)
"$PY" "$XC" --port "$P0" --token "$bad" --sign "$IT_TMP/w.csr" >"$IT_TMP/sign2.json"
check "a token from another CA is refused (403)" bash -c "[ \"\$(jq .status '$IT_TMP/sign2.json')\" = 403 ] && jq -r .body.error '$IT_TMP/sign2.json' | grep -q 'bad signature'"
"$PY" "$XC" --port "$P0" --sign "$IT_TMP/w.csr" >"$IT_TMP/sign3.json"
check "no identity at all is refused (401)" [ "$(jq .status "$IT_TMP/sign3.json")" = 401 ]
# renewal on 15012: the client certificate names the identity
"$PY" "$XC" --port "$P1" --tls --cert "$IT_TMP/w.crt" --key "$IT_TMP/w.key" --sign "$IT_TMP/w.csr" >"$IT_TMP/sign4.json"
jq -r .body.cert_chain "$IT_TMP/sign4.json" >"$IT_TMP/w2.crt"
check "renewal over TLS with the client certificate: same SPIFFE ID" bash -c "[ \"\$(jq .status '$IT_TMP/sign4.json')\" = 200 ] && openssl x509 -in '$IT_TMP/w2.crt' -noout -ext subjectAltName | grep -q 'URI:spiffe://cluster.local/ns/default/sa/web'"

# ---- TLS port ----
echo | timeout 5 openssl s_client -connect "127.0.0.1:$P1" -alpn h2 -CAfile "$CA/root-cert.pem" >"$IT_TMP/sc.txt" 2>&1
check "TLS port: TLS 1.3 with ALPN h2, the server cert verifying against the root" bash -c \
    "grep -q 'ALPN protocol: h2' '$IT_TMP/sc.txt' && grep -q 'TLSv1.3' '$IT_TMP/sc.txt' && grep -q 'Verify return code: 0 (ok)' '$IT_TMP/sc.txt'"
C3=$IT_TMP/c3.log
bg c3 "$PY" "$XC" --port "$P1" --tls --pod web-3 --auto-ack </dev/null
wait_until 5 bash -c "[ \$(grep -c '\"nonce\"' '$C3') -ge 6 ]"
check "  a delta xDS stream over it gets the initial push" [ "$(nresp "$C3")" = 6 ]

# ---- /metrics ----
curl -s "http://127.0.0.1:$P2/metrics" >"$IT_TMP/metrics.txt"
check "/metrics: every line is a comment or a well-formed sample" bash -c "! grep -vE '^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\})? [0-9.e+-]+)$' '$IT_TMP/metrics.txt'"
check "  pushes counted by type (one stream since the restart)" [ "$(awk '$1=="ringmesh_xds_pushes_total{type=\"v1/Service\"}"{print $2}' "$IT_TMP/metrics.txt")" = 1 ]
check "  push histogram count = sum of pushes" [ "$(awk '$1=="ringmesh_xds_push_seconds_count"{print $2}' "$IT_TMP/metrics.txt")" = \
    "$(awk '$1 ~ /^ringmesh_xds_pushes_total/ {s+=$2} END{print s}' "$IT_TMP/metrics.txt")" ]
check "  store objects by kind" [ "$(awk '$1=="ringmesh_xds_store_objects{kind=\"EndpointSlice\"}"{print $2}' "$IT_TMP/metrics.txt")" = 2 ]
check "  CSRs counted" [ "$(awk '$1=="ringmesh_xds_csr_total{result=\"signed\"}"{print $2}' "$IT_TMP/metrics.txt")" = 2 ]

# ---- mutations only from loopback (or with --api-token) ----
ip=$(hostname -I 2>/dev/null | awk '{print $1}')
if [ -n "$ip" ] && [ "${ip#127.}" = "$ip" ]; then
    code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "http://$ip:$P2/api/v1/Service/default/web")
    check "a DELETE from a non-loopback address is refused (403)" [ "$code" = 403 ]
else
    skip "no non-loopback address to test from"
fi
tap_done
