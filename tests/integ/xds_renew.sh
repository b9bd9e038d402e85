#!/usr/bin/env bash
# Certificate renewal against the real control plane: ringmesh-xds signs 20-second
# certificates (--cert-ttl 20s); a sidecar bootstraps with a token over https (the host name
# of ringmesh-xds's certificate, mapped to 127.0.0.1 by a private /etc/hosts), then renews
# at half-life with its current certificate (the CA logs "renewal", not the token), hot-
# swaps it (tls.reloads_ok grows, the expiry moves forward, the identity stays), and a TLS
# client of the sidecar's inbound port sees the new certificate. A renewal the CA refuses
# keeps the current certificate and is retried.
source "$(dirname "$0")/lib.sh"
integ_ports
command -v unshare >/dev/null || { skip "no unshare"; tap_done; exit 0; }
CFG=$IT_TMP/cfg CA=$IT_TMP/ca CD=$IT_TMP/certs
mkdir -p "$CFG" "$CD"
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  clusterIP: 10.96.0.10\n  ports: [{name: http, port: 80, appProtocol: http}]\n' >"$CFG/web.yaml"
check "ca init" "$RINGMESH_BIN/ringmeshctl" ca init --dir "$CA"
bg xds "$RINGMESH_BIN/ringmesh-xds" --config-dir "$CFG" --ca-dir "$CA" --xds-port 0 \
    --xds-tls-port "$P6" --api-port "$P7" --listen 127.0.0.1 --cert-ttl 20s
XDS_PID=$BG_PID
check "ringmesh-xds ready" wait_until 5 curl -sf -o /dev/null "http://127.0.0.1:$P7/ready"
"$RINGMESH_BIN/ringmeshctl" ca token --dir "$CA" --ns shop --sa cart >"$IT_TMP/token"
cp "$CA/root-cert.pem" "$CD/"
printf '127.0.0.1 localhost\n127.0.0.1 ringmesh-xds.ringmesh-system.svc\n' >"$IT_TMP/hosts"

# the sidecar in a private mount namespace whose /etc/hosts names the control plane
bg sc unshare -m sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' _ "$IT_TMP/hosts" \
    "$RINGMESH_BIN/ringmesh-sidecar" --xds "https://ringmesh-xds.ringmesh-system.svc:$P6" \
    --xds-token "$IT_TMP/token" --cert-dir "$CD" --pod-namespace shop --service-account cart \
    --outbound-port "$P0" --inbound-port "$P1" --admin-port "$P2" --stats-port "$P3" \
    --health-port "$P4" --concurrency 1
SC_PID=$BG_PID
check "the sidecar bootstraps and is ready" wait_until 10 ready
check_eq() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi; }
id_now() { curl -s "http://127.0.0.1:$P2/stats" | sed -n 's/^tls.identity: //p'; }
check_eq "identity from the CA" "$(id_now)" spiffe://cluster.local/ns/shop/sa/cart
check "the CA signed it for the token" grep -q 'CA: signed spiffe://cluster.local/ns/shop/sa/cart until .* (bootstrap token)' "$IT_TMP/xds.log"
exp0=$(stat tls.cert_expiry_seconds) ok0=$(stat tls.reloads_ok)
check "the certificate lives about 20 s ($exp0)" [ "${exp0:-0}" -le 20 ]
serial() { openssl x509 -in "$CD/cert-chain.pem" -noout -serial 2>/dev/null; }
s0=$(serial)
grew() { [ "$(stat tls.reloads_ok)" -gt "${ok0:-0}" ]; }
check "renewed at half-life: tls.reloads_ok grows within 15 s" wait_until 15 grew
check "the renewal was signed for the client certificate, not the token" \
    grep -q 'CA: signed spiffe://cluster.local/ns/shop/sa/cart until .* (renewal)' "$IT_TMP/xds.log"
check_eq "the identity stays" "$(id_now)" spiffe://cluster.local/ns/shop/sa/cart
exp1=$(stat tls.cert_expiry_seconds)
check "the new certificate expires later ($exp0 -> $exp1 s left)" [ "${exp1:-0}" -gt 10 ]
s1=$(serial)
check "--cert-dir holds the new certificate ($s0 -> $s1)" \
    bash -c "[ -n '$s1' ] && [ '$s0' != '$s1' ]"
check "the sidecar logged the renewal" grep -q 'identity: certificate renewed' "$IT_TMP/sc.log"

# the CA goes away: renewal fails, the current certificate stays, the sidecar keeps serving
kill "$XDS_PID"; wait_exit "$XDS_PID" 5
check "with the CA gone, a renewal failure is logged and retried" \
    wait_until 15 grep -q 'identity: renewal failed' "$IT_TMP/sc.log"
check "the sidecar still runs and is ready" ready
kill "$SC_PID"; wait_exit "$SC_PID" 5
tap_done
