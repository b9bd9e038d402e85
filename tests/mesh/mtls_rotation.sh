#!/usr/bin/env bash
# mTLS credential rotation under load (client pod a -> Service VIPs -> server pod b, both
# with --cert-dir): while curl (HTTP/1.1 and HTTP/2, a new connection each), a keep-alive
# client and 1 MiB TCP transfers (a new mTLS tunnel each) run through a's sidecar to b,
#   1. b's cert-chain.pem and key.pem are replaced by a new pair from the same root (temp
#      files moved into place, as a Secret update would), with another validity;
#   2. root B joins root A in both bundles; 3. both workloads are reissued from root B;
#   4. root A leaves both bundles; 5. b gets a broken set (a key from another issue),
#      which is refused while the old credentials keep serving, then the good key again.
# No request fails through any of it; tls.reloads_ok grows on each sidecar at each step,
# tls.identity stays, tls.cert_expiry_seconds follows the new validity; new handshakes
# present the new certificates (seen with openssl s_client from a host outside the mesh),
# an upstream connection opened before the rotation still carries requests after it. On
# both I/O backends.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
command -v openssl >/dev/null || mesh_skip "no openssl"
[ -x "$RINGMESH_BIN/ringmeshctl" ] || { not_ok "binary $RINGMESH_BIN/ringmeshctl exists (run make)"; tap_done; exit 1; }
pod a 10.233.1.2
pod b 10.233.1.3
host h 10.233.1.9 # outside the mesh: looks at the certificates the sidecars serve
A=$(pod_ip a) B=$(pod_ip b)
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0 # pods reach VIPs through their route
for p in a b; do check "ringmesh-init in $p" pod_init "$p"; done
pod_app b "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name web
pod_tool_bg b hash-server 9000
for port in 8080 9000; do wait_port b $port; done
pod_app a "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name a # so that s_client to a's inbound gets an answer
wait_port a 8080

WEB=10.96.0.40 # appProtocol http -> b:8080 (HTTP/2 over mTLS between the sidecars)
TCP=10.96.0.41 # appProtocol tcp  -> b:9000 (a new mTLS tunnel per connection)
CFG=$RM_TMP/mesh.yaml
service() { # NAME VIP TARGETPORT APPPROTOCOL
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\n' "$1"
    printf 'spec:\n  clusterIP: %s\n  ports: [{name: p, port: 80, targetPort: %s, appProtocol: %s}]\n' \
        "$2" "$3" "$4"
    printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n'
    printf 'metadata: {name: %s-1, namespace: default, labels: {kubernetes.io/service-name: %s}}\n' "$1" "$1"
    printf 'addressType: IPv4\nports: [{name: p, port: %s}]\nendpoints: [{addresses: [%s]}]\n' "$3" "$B"
}
{ service web $WEB 8080 http; service tcp $TCP 9000 tcp; } >"$CFG"
chmod 644 "$CFG"

OUT=$RM_TMP/out
mkdir -m 777 "$OUT"
C=$RM_TMP/certs
mkdir -p "$C"
chmod 755 "$C"

ctl() { "$RINGMESH_BIN/ringmeshctl" "$@" >>"$RM_TMP/ringmeshctl.log" 2>&1; }
# issue ROOT SA HOURS OUT [OWNER]: a workload cert of ns default in $D/OUT
issue() {
    ctl ca issue --dir "$D/$1" --ns default --sa "$2" --hours "$3" --out "$D/$4" &&
        chown -R "${5:-$RM_PROXY_UID}:${5:-$RM_PROXY_UID}" "$D/$4" && chmod 700 "$D/$4"
}
# put POD FILE=SRC...: replace files in the pod's --cert-dir the way a Secret update would:
# each written to a staging directory on the same file system, then all renamed into place
# one right after the other
STAGE_N=0
put() {
    local dir=$D/$1 st kv f; shift
    STAGE_N=$((STAGE_N + 1))
    st=$D/stage.$STAGE_N
    mkdir -m 700 "$st" || return 1
    for kv; do
        f=${kv%%=*}
        cat "${kv#*=}" >"$st/$f" || return 1
        chown "$RM_PROXY_UID:$RM_PROXY_UID" "$st/$f"
        if [ "$f" = key.pem ]; then chmod 600 "$st/$f"; else chmod 644 "$st/$f"; fi
    done
    for kv; do mv -f "$st/${kv%%=*}" "$dir/${kv%%=*}" || return 1; done
}
# stat_str POD KEY: a /stats value that may hold ':' (sidecar_stat cuts at the first one)
stat_str() { sidecar_stats "$1" | sed -n "s/^$2: //p" | head -n 1; }
fp() { openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2; } # of the PEM on stdin
# served IP CLIENT BUNDLE: openssl s_client from the host to IP:8080 (a sidecar's inbound, an
# app behind it) with $D/CLIENT's certificate, verifying against $D/BUNDLE, ALPN http/1.1,
# and one GET; FP = the fingerprint of the certificate served, VERIFY = s_client's verify
# result, RESP = the app's status line (none when the handshake or the sidecar failed)
served() {
    printf 'GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n' |
        in_pod h timeout 5 openssl s_client -connect "$1:8080" -alpn http/1.1 -ign_eof \
            -cert "$D/$2/cert-chain.pem" -key "$D/$2/key.pem" -CAfile "$D/$3" >"$OUT/s" 2>&1
    FP=$(fp <"$OUT/s")
    VERIFY=$(grep -o 'Verify return code: .*' "$OUT/s" | head -n 1)
    RESP=$(grep -m1 '^HTTP/1.1 ' "$OUT/s" | tr -d '\r')
}
# check_served NAME IP CLIENT BUNDLE WANT_CERT: the sidecar at IP serves WANT_CERT, verified
# by BUNDLE, takes CLIENT's certificate and passes the request to its app
check_served() {
    local want
    want=$(fp <"$5")
    served "$2" "$3" "$4"
    if [ "$FP" = "$want" ] && [ "$VERIFY" = "Verify return code: 0 (ok)" ] &&
        [ "$RESP" = "HTTP/1.1 200 OK" ]; then
        ok "$RM_LABEL: $1"
    else
        not_ok "$RM_LABEL: $1" "served certificate ${FP:-none}, want $want; ${VERIFY:-no verify result}; app: ${RESP:-no answer}" \
            "served: $(openssl x509 -noout -subject -issuer -ext subjectAltName -enddate <"$OUT/s" 2>&1 | tr '\n' ' ')" \
            "s_client: $(grep -iE 'alert|error|errno' "$OUT/s" | head -n 3 | tr '\n' '|')"
    fi
}
# stat_gt POD KEY N: the counter is above N now
stat_gt() { local v; v=$(sidecar_stat "$1" "$2"); _num "$v" && [ "$v" -gt "$3" ]; }
# reloaded NAME POD OK_BEFORE REJ_BEFORE: one check that tls.reloads_ok grew (waits 3 s) and
# tls.reloads_rejected did not
reloaded() {
    local name=$1 p=$2 ok0=$3 rej0=$4 okn rejn
    wait_until 3 stat_gt "$p" tls.reloads_ok "$ok0"
    sleep 0.3 # a second reload of the same change would show now
    okn=$(sidecar_stat "$p" tls.reloads_ok) rejn=$(sidecar_stat "$p" tls.reloads_rejected)
    if _num "$okn" && [ "$okn" -gt "$ok0" ] && [ "$rejn" = "$rej0" ]; then
        ok "$RM_LABEL: $name: $p reloaded (tls.reloads_ok $ok0 -> $okn, rejected $rejn)"
    else
        not_ok "$RM_LABEL: $name: $p reloaded" \
            "tls.reloads_ok $ok0 -> '$okn', tls.reloads_rejected $rej0 -> '$rejn'" \
            "$p's log: $(grep -E ' (warn|error) |mTLS' "${RM_SIDECAR_LOG[$p]}" | tail -n 3)"
    fi
}
declare -A R0 J0
mark_reloads() { local p; for p in a b; do R0[$p]=$(sidecar_stat $p tls.reloads_ok) J0[$p]=$(sidecar_stat $p tls.reloads_rejected); done; }
# expiry_near POD SECONDS: one check that tls.cert_expiry_seconds is within 10 min of it
expiry_near() {
    local got
    got=$(sidecar_stat "$1" tls.cert_expiry_seconds)
    if _num "$got" && [ $((got > $2 ? got - $2 : $2 - got)) -le 600 ]; then
        ok "$RM_LABEL: $1 tls.cert_expiry_seconds is about $2 ($got)"
    else
        not_ok "$RM_LABEL: $1 tls.cert_expiry_seconds is about $2" "got '$got'"
    fi
}

# all_ok NAME FILE REGEX MIN: every line of FILE matches REGEX, and there are at least MIN
all_ok() {
    local n bad
    n=$(wc -l <"$2") bad=$(grep -Evc -- "$3" "$2")
    if [ "$n" -ge "$4" ] && [ "$bad" = 0 ]; then
        ok "$RM_LABEL: $1: $n, none failed"
    else
        not_ok "$RM_LABEL: $1: $n (want >= $4), none failed" "$bad failed:" \
            "$(grep -Ev -- "$3" "$2" | sort | uniq -c | sort -rn | head -n 5)" \
            "a's error counters: $(bad_stats a)" "b's error counters: $(bad_stats b)" \
            "a's last warnings: $(grep ' warn ' "${RM_SIDECAR_LOG[a]}" | tail -n 3)" \
            "b's last warnings: $(grep ' warn ' "${RM_SIDECAR_LOG[b]}" | tail -n 3)"
    fi
}
# bad_stats POD: the counters of failures that are not 0, on one line
bad_stats() {
    sidecar_stats "$1" | awk -F': *' '$2 != "0" && $1 ~ /(rq_5xx|rq_flag_|_fail|_reset|_timeout|refused|no_healthy|h2_.*error|reloads_rejected)/ { printf "%s=%s ", $1, $2 }'
}
# ---- the load, in pod a, until $OUT/stop exists
load_start() {
    rm -f "$OUT/stop" "$OUT/codes" "$OUT/tcp" "$OUT/ka"
    # curl, a new downstream connection each, HTTP/1.1 and HTTP/2 in turn
    in_pod a bash -c 'while [ ! -e "$1/stop" ]; do
            curl -s -o /dev/null --max-time 5 --http1.1 -w "%{http_code} h1 %{errormsg}\n" "http://$2/"
            curl -s -o /dev/null --max-time 5 --http2-prior-knowledge -w "%{http_code} h2 %{errormsg}\n" "http://$2/"
        done >>"$1/codes" 2>&1' _ "$OUT" "$WEB" &
    LOAD_PIDS=($!)
    # 1 MiB to the TCP Service, a new mTLS tunnel (a new handshake) each
    in_pod a bash -c 'while [ ! -e "$1/stop" ]; do
            "$2" "$3" send "$4" 80 1048576 2>&1 | tail -n 1
        done >>"$1/tcp"' _ "$OUT" "$RM_PY" "$RM_TOOLS/tcptool.py" "$TCP" &
    LOAD_PIDS+=($!)
    # one keep-alive HTTP/1.1 connection for the whole run
    in_pod a "$RM_PY" - "$OUT" "$WEB" >"$OUT/ka" 2>&1 <<'EOF' &
import http.client, os, sys, time
out, host = sys.argv[1], sys.argv[2]
c = http.client.HTTPConnection(host, 80, timeout=5)
ok, bad, conns = 0, [], 1
while not os.path.exists(out + "/stop"):
    try:
        c.request("GET", "/ka")
        r = c.getresponse()
        r.read()
        if r.status == 200:
            ok += 1
        else:
            bad.append(str(r.status))
    except Exception as e:
        bad.append(repr(e))
        c.close()
        c = http.client.HTTPConnection(host, 80, timeout=5)
        conns += 1
    time.sleep(0.005)
print("ok=%d bad=%d conns=%d %s" % (ok, len(bad), conns, " ".join(bad[:5])))
EOF
    LOAD_PIDS+=($!)
}
load_stop() {
    touch "$OUT/stop"
    wait "${LOAD_PIDS[@]}"
}
# up_conns: a's upstream connections to b:8080 as "LOCALPORT BYTES_RECEIVED" lines
up_conns() {
    in_pod_root a ss -Htni state established "dst $B:8080" 2>/dev/null | awk '
        /^[0-9]/ || $1 ~ /:/ { n = split($3, l, ":"); port = l[n]; next }
        { for (i = 1; i <= NF; i++) if ($i ~ /^bytes_received:/) { split($i, v, ":"); print port, v[2] } }'
}

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    D=$C/$io
    mkdir -p "$D"
    chmod 755 "$D"
    if ! { ctl ca init --dir "$D/rootA" && ctl ca init --dir "$D/rootB" &&
        issue rootA a 24 a && issue rootA b 24 b &&
        issue rootA b 48 b-2 &&                      # step 1: b again, root A, 48 h
        issue rootB a 36 a-3 && issue rootB b 12 b-3 && # step 3: from root B
        issue rootB b 24 b-other &&                  # step 5: its key does not match b-3
        issue rootA client 24 clientA "$RM_APP_UID" && issue rootB client 24 clientB "$RM_APP_UID" &&
        cp "$D/rootA/root-cert.pem" "$D/A.pem" && cp "$D/rootB/root-cert.pem" "$D/B.pem" &&
        cat "$D/A.pem" "$D/B.pem" >"$D/AB.pem" && chmod 644 "$D"/*.pem; }; then
        not_ok "$io: certificates: roots A and B, workloads a and b and their successors"
        continue
    fi
    sidecar_up b "$io" --config "$CFG" --pod-ip "$B" --cert-dir "$D/b" || continue
    sidecar_up a "$io" --config "$CFG" --pod-ip "$A" --cert-dir "$D/a" || { sidecar_down b; continue; }
    ID_A=spiffe://cluster.local/ns/default/sa/a ID_B=spiffe://cluster.local/ns/default/sa/b
    check_eq "$io: a tls.identity" "$(stat_str a tls.identity)" $ID_A
    check_eq "$io: b tls.identity" "$(stat_str b tls.identity)" $ID_B
    expiry_near a 86400
    expiry_near b 86400
    code=$(in_pod a curl -s -o /dev/null --max-time 5 -w '%{http_code}' http://$WEB/)
    if [ "$code" != 200 ]; then
        not_ok "$io: a request over mTLS before the rotation gets 200" "status $code"
        sidecars_down
        continue
    fi
    check_served "b serves its first certificate" $B clientA A.pem "$D/b/cert-chain.pem"
    check_served "a serves its first certificate" $A clientA A.pem "$D/a/cert-chain.pem"

    load_start
    sleep 1
    before=$(up_conns)
    hs0=$(sidecar_stat b inbound.tls_handshakes)

    # 1. a new pair for b from the same root, valid 48 h
    mark_reloads
    check "$io: step 1: b's new cert-chain.pem and key.pem moved into place" \
        put b cert-chain.pem="$D/b-2/cert-chain.pem" key.pem="$D/b-2/key.pem"
    reloaded "step 1" b "${R0[b]}" "${J0[b]}"
    check_eq "$io: step 1: b tls.identity unchanged" "$(stat_str b tls.identity)" $ID_B
    expiry_near b 172800
    check_served "step 1: new handshakes get b's new certificate" $B clientA A.pem "$D/b-2/cert-chain.pem"
    sleep 0.5

    # 2. root B joins both bundles
    mark_reloads
    check "$io: step 2: bundles A+B moved into place" \
        eval 'put a root-cert.pem="$D/AB.pem" && put b root-cert.pem="$D/AB.pem"'
    reloaded "step 2" a "${R0[a]}" "${J0[a]}"
    reloaded "step 2" b "${R0[b]}" "${J0[b]}"
    check_served "step 2: b still serves its step-1 certificate, verified by A+B" $B clientB AB.pem \
        "$D/b-2/cert-chain.pem"
    sleep 0.5

    # 3. both workloads reissued from root B (a 36 h, b 12 h)
    mark_reloads
    check "$io: step 3: certificates from root B moved into place" \
        eval 'put a cert-chain.pem="$D/a-3/cert-chain.pem" key.pem="$D/a-3/key.pem" &&
            put b cert-chain.pem="$D/b-3/cert-chain.pem" key.pem="$D/b-3/key.pem"'
    reloaded "step 3" a "${R0[a]}" "${J0[a]}"
    reloaded "step 3" b "${R0[b]}" "${J0[b]}"
    expiry_near a 129600
    expiry_near b 43200
    check_served "step 3: new handshakes get b's certificate from root B" $B clientB B.pem "$D/b-3/cert-chain.pem"
    check_served "step 3: new handshakes get a's certificate from root B" $A clientB B.pem "$D/a-3/cert-chain.pem"
    sleep 0.5

    # 4. root A leaves both bundles
    mark_reloads
    check "$io: step 4: bundles with root B only moved into place" \
        eval 'put a root-cert.pem="$D/B.pem" && put b root-cert.pem="$D/B.pem"'
    reloaded "step 4" a "${R0[a]}" "${J0[a]}"
    reloaded "step 4" b "${R0[b]}" "${J0[b]}"
    snap_fail=$(sidecar_stat b inbound.tls_handshake_failures)
    served $B clientA B.pem
    check_eq "$io: step 4: b no longer takes a client certificate from root A: no answer" "${RESP:-none}" none
    wait_until 2 stat_gt b inbound.tls_handshake_failures "$snap_fail"
    n=$(sidecar_stat b inbound.tls_handshake_failures)
    check "$io: step 4: ... counted in b's inbound.tls_handshake_failures ($snap_fail -> $n)" \
        stat_gt b inbound.tls_handshake_failures "$snap_fail"
    check_served "step 4: a client from root B is served by b" $B clientB B.pem "$D/b-3/cert-chain.pem"
    ao=$(sidecar_stat a outbound.tls_handshakes)
    out=$(pod_tool a send $TCP 80 1048576 2>&1); rc=$?
    check "$io: step 4: a new tunnel from a to b (root B on both ends) works ($out)" [ $rc = 0 ]
    check "$io: step 4: ... and was a new outbound handshake on a" \
        stat_gt a outbound.tls_handshakes "${ao:-999999}"
    sleep 0.5

    # 5. a broken set on b: a key from another issue. Refused; the old credentials serve on.
    mark_reloads
    log0=$(wc -l <"${RM_SIDECAR_LOG[b]}")
    check "$io: step 5: a key.pem that does not match moved into b's directory" \
        put b key.pem="$D/b-other/key.pem"
    wait_until 3 stat_gt b tls.reloads_rejected "${J0[b]}"
    check_stat b tls.reloads_rejected eq $((J0[b] + 1))
    check_stat b tls.reloads_ok eq "${R0[b]}"
    line=$(tail -n +$((log0 + 1)) "${RM_SIDECAR_LOG[b]}" | grep -E ' (error|warn) .*(not reloaded|reject)' | tail -n 1)
    check "$io: step 5: b logs the refused set (${line:-no such line})" [ -n "$line" ]
    check_eq "$io: step 5: b tls.identity unchanged" "$(stat_str b tls.identity)" $ID_B
    expiry_near b 43200
    check_served "step 5: new handshakes still get b's root-B certificate" $B clientB B.pem "$D/b-3/cert-chain.pem"
    out=$(pod_tool a send $TCP 80 1048576 2>&1); rc=$?
    check "$io: step 5: a new tunnel to b still works ($out)" [ $rc = 0 ]
    # and the good key back
    check "$io: step 5: b's own key.pem moved back" put b key.pem="$D/b-3/key.pem"
    reloaded "step 5, the good key back" b "${R0[b]}" "$((J0[b] + 1))"
    sleep 0.5

    # an upstream connection from before the rotation still carries requests after it
    mid=$(up_conns)
    sleep 0.5
    after=$(up_conns)
    span=$(awk 'FILENAME == ARGV[1] { b[$1] = 1; next } FILENAME == ARGV[2] { m[$1] = $2; next }
        ($1 in b) && ($1 in m) && $2 > m[$1] { print $1; exit }' \
        <(echo "$before") <(echo "$mid") <(echo "$after"))
    if [ -n "$span" ]; then
        ok "$io: a's upstream connection from port $span, opened before the rotation, still carries requests"
    else
        not_ok "$io: an upstream connection opened before the rotation still carries requests" \
            "a's connections to $B:8080 before: $(echo $before)" "after: $(echo $mid)" "then: $(echo $after)"
    fi

    load_stop
    check_delta_hs=$(($(sidecar_stat b inbound.tls_handshakes) - hs0))
    # (the steps' s_client checks and two transfers make 7, the TCP load the rest)
    check_ge "$io: b made new inbound handshakes during the rotation" "$check_delta_hs" 10
    all_ok "curl: requests through the rotation (HTTP/1.1 and HTTP/2, a connection each)" \
        "$OUT/codes" '^200 ' 50
    all_ok "TCP: 1 MiB transfers through the rotation (a tunnel each)" "$OUT/tcp" '^send ok' 5
    ka=$(cat "$OUT/ka")
    if [[ $ka =~ ^ok=[0-9]{2,}\ bad=0\ conns=1\  ]]; then
        ok "$io: keep-alive client: all 200 on one connection ($ka)"
    else
        not_ok "$io: keep-alive client: all 200 on one connection" "got: $ka"
    fi
    check_stat b inbound.tls_handshake_failures eq $((snap_fail + 1))
    check_stat a outbound.tls_handshake_failures eq 0
    check_eq "$io: a tls.identity unchanged at the end" "$(stat_str a tls.identity)" $ID_A
    check_eq "$io: b tls.identity unchanged at the end" "$(stat_str b tls.identity)" $ID_B
    check_stat a tls.reloads_ok ge 3
    check_stat b tls.reloads_ok ge 5
    check_stat a tls.reloads_rejected eq 0
    check_stat b tls.reloads_rejected eq 1
    sidecars_down
done
tap_done
