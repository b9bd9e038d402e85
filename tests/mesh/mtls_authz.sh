#!/usr/bin/env bash
# AuthorizationPolicy on the inbound side, by mTLS identity (two client pods: a as
# service account "front", c as "other"; server pod b): an ALLOW policy on Service web lets
# front GET /api/*, so front's GET /api/x is 200, its GET /admin and other's GET /api/x are
# 403 with x-ringmesh-flags: RBAC (counted in inbound.rq_authz_denied); a DENY policy on
# POST beats the ALLOW; the app sees x-forwarded-client-cert naming both identities, and
# one a client forged is replaced; an ALLOW on the TCP Service lets front's connection
# through and closes other's (inbound.cx_authz_denied). On both I/O backends.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
[ -x "$RINGMESH_BIN/ringmeshctl" ] || { not_ok "ringmeshctl exists (run make)"; tap_done; exit 1; }
pod a 10.233.1.2
pod b 10.233.1.3
pod c 10.233.1.4
for p in a c; do ip -n "${RM_NS[$p]}" route add 10.96.0.0/16 dev eth0; done
for p in a b c; do check "ringmesh-init in $p" pod_init "$p"; done
pod_app b "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name web
pod_tool_bg b hash-server 9000
for port in 8080 9000; do wait_port b $port; done

# credentials: one root, an SVID per pod (the sidecars run as uid 1337)
CA=$RM_TMP/ca
"$RINGMESH_BIN/ringmeshctl" ca init --dir "$CA" >/dev/null
for p in a:front b:web c:other; do
    "$RINGMESH_BIN/ringmeshctl" ca issue --dir "$CA" --ns default --sa "${p#*:}" \
        --out "$CA/${p%%:*}" >/dev/null
    chown -R "$RM_PROXY_UID:$RM_PROXY_UID" "$CA/${p%%:*}"
done
chmod 755 "$CA"

WEB=10.96.0.30 # appProtocol http -> b:8080
TCP=10.96.0.31 # appProtocol tcp  -> b:9000
source "$RINGMESH_ROOT/tests/lib/http.sh" # fetch, expect, service, check_delta, alive, codes
CFG=$RM_TMP/mesh.yaml
{
    service web $WEB pname=p
    service tcp $TCP pname=p target=9000 proto=tcp
    cat <<'YAML'
---
apiVersion: ringmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-allow, namespace: default}
spec:
  targetRef: {kind: Service, name: web}
  action: ALLOW
  rules:
  - from: {principals: ["cluster.local/ns/default/sa/front"]}
    to: {paths: ["/api/*", "/headers"]}
---
apiVersion: ringmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-no-post, namespace: default}
spec:
  targetRef: {kind: Service, name: web}
  action: DENY
  rules:
  - to: {methods: [POST]}
---
apiVersion: ringmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: tcp-allow, namespace: default}
spec:
  targetRef: {kind: Service, name: tcp}
  action: ALLOW
  rules:
  - from: {principals: ["spiffe://cluster.local/ns/default/sa/front"]}
YAML
} >"$CFG"
chmod 644 "$CFG"

status() { # POD CURL_ARGS...: "CODE FLAG"
    local p=$1; shift
    in_pod "$p" curl -sS --max-time 5 -o /dev/null -w '%{http_code} %header{x-ringmesh-flags}' "$@" 2>&1
}

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    sidecar_up b "$io" --config "$CFG" --cert-dir "$CA/b" --concurrency 1 || continue
    sidecar_up a "$io" --config "$CFG" --cert-dir "$CA/a" || { sidecar_down b; continue; }
    sidecar_up c "$io" --config "$CFG" --cert-dir "$CA/c" || { sidecars_down; continue; }
    d0=$(sidecar_stat b inbound.rq_authz_denied)

    check_eq "$io: front GET /api/x is allowed" "$(status a http://$WEB/api/x)" "200 "
    check_eq "$io: front GET /admin is denied (no ALLOW rule)" "$(status a http://$WEB/admin)" "403 RBAC"
    check_eq "$io: other GET /api/x is denied (not the principal)" "$(status c http://$WEB/api/x)" "403 RBAC"
    check_eq "$io: front POST /api/x is denied (the DENY policy wins)" \
        "$(status a -d x http://$WEB/api/x)" "403 RBAC"
    check_eq "$io: HTTP/2 from front is allowed too" \
        "$(status a --http2-prior-knowledge http://$WEB/api/y)" "200 "
    d1=$(sidecar_stat b inbound.rq_authz_denied)
    check_eq "$io: b counted 3 denials" $((d1 - d0)) 3

    # x-forwarded-client-cert: set by b from the handshake; a forged one is replaced
    xfcc=$(in_pod a curl -sS --max-time 5 -H 'x-forwarded-client-cert: By=me;URI=spiffe://evil' \
        http://$WEB/headers | "$RM_PY" -c 'import json,sys; print(json.load(sys.stdin).get("x-forwarded-client-cert", ""))')
    check_eq "$io: the app sees b's and front's identities in x-forwarded-client-cert" "$xfcc" \
        "By=spiffe://cluster.local/ns/default/sa/web;URI=spiffe://cluster.local/ns/default/sa/front"

    # TCP: front's connection goes through, other's is closed
    check "$io: TCP from front is allowed (bytes intact)" in_pod a "$RM_PY" "$RM_TOOLS/tcptool.py" send $TCP 80 100000
    t0=$(sidecar_stat b inbound.cx_authz_denied)
    if in_pod c "$RM_PY" "$RM_TOOLS/tcptool.py" send $TCP 80 100000 >/dev/null 2>&1; then
        not_ok "$io: TCP from other is refused" "the transfer succeeded"
    else
        ok "$io: TCP from other is refused"
    fi
    check_stat b inbound.cx_authz_denied ge $((${t0:-0} + 1))
    # Again, on resumed TLS sessions (each TCP connection is its own tunnel, and both
    # clients hold a ticket from b now): b must still know who is who without certificates.
    r0=$(sidecar_stat a outbound.tls_resumed) rb0=$(sidecar_stat b inbound.tls_resumed)
    check "$io: resumed: TCP from front is still allowed" in_pod a "$RM_PY" "$RM_TOOLS/tcptool.py" send $TCP 80 100000
    check_delta a outbound.tls_resumed "${r0:-x}" ge 1
    t0=$(sidecar_stat b inbound.cx_authz_denied)
    if in_pod c "$RM_PY" "$RM_TOOLS/tcptool.py" send $TCP 80 100000 >/dev/null 2>&1; then
        not_ok "$io: resumed: TCP from other is still refused" "the transfer succeeded"
    else
        ok "$io: resumed: TCP from other is still refused"
    fi
    check_stat b inbound.cx_authz_denied ge $((${t0:-0} + 1))
    check_delta b inbound.tls_resumed "${rb0:-x}" ge 1
    sidecar_down a
    sidecar_down c
    sidecar_down b
done
tap_done
