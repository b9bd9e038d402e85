#!/usr/bin/env bash
# mTLS between sidecars (client pod a -> Service VIPs -> server pod b, both with --cert-dir
# from one root): HTTP/1.1 and HTTP/2 requests, 1 MiB uploads, gRPC and a TCP Service (a
# long and a short transfer) all arrive intact over mTLS and are counted as such
# (handshakes, cx_mtls, no plaintext); the identities and expiry in /stats. Interop with
# OpenSSL from a host outside the mesh: s_client with a workload cert of another SA
# completes the handshake and sees b's SPIFFE ID; curl over TLS with ALPN http/1.1 reaches
# the app. Refusals, each counted and logged with the peer and the reason: no client
# certificate, a certificate from another CA, an expired certificate (made with openssl ca:
# ringmeshctl's --hours starts at 1), and on the outbound side a sidecar whose bundle does
# not trust b (503; b logs a's side of it too). PERMISSIVE takes plaintext (counted); a
# DestinationPolicy tls DISABLE sends one Service's requests in plaintext; STRICT (a
# PeerAuthentication, SIGHUP) refuses plaintext, from outside and from a's DISABLE Service,
# while mTLS goes on, also for a client whose ClientHello comes late; its portLevelMtls
# DISABLE on 8443 passes an app's own TLS through. On both I/O backends.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
command -v openssl >/dev/null || mesh_skip "no openssl"
[ -x "$RINGMESH_BIN/ringmeshctl" ] || { not_ok "binary $RINGMESH_BIN/ringmeshctl exists (run make)"; tap_done; exit 1; }
pod a 10.233.1.2
pod b 10.233.1.3
host h 10.233.1.9 # outside the mesh: no init, no sidecar
A=$(pod_ip a) B=$(pod_ip b) H=$(pod_ip h)
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0 # pods reach VIPs through their route
for p in a b; do check "ringmesh-init in $p" pod_init "$p"; done
pod_app b "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name web; log_web=$RM_APP_LOG
pod_app b "$RM_PY" "$RM_TOOLS/grpcapp.py" server 50051 --name g
pod_tool_bg b hash-server 9000; log_hash=$RM_APP_LOG
# an app that terminates TLS itself, with its own self-signed certificate (CN app-tls)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=app-tls -days 2 \
    -keyout "$RM_TMP/app-tls.key" -out "$RM_TMP/app-tls.pem" >/dev/null 2>&1
chown "$RM_APP_UID" "$RM_TMP/app-tls.key" "$RM_TMP/app-tls.pem"
pod_app b openssl s_server -accept 8443 -cert "$RM_TMP/app-tls.pem" -key "$RM_TMP/app-tls.key" -www
for port in 8080 50051 9000 8443; do wait_port b $port; done

WEB=10.96.0.20   # appProtocol http  -> b:8080, mTLS
GRPC=10.96.0.21  # appProtocol grpc  -> b:50051, mTLS
TCP=10.96.0.22   # appProtocol tcp   -> b:9000, mTLS (ALPN ringmesh-tcp)
PLAIN=10.96.0.23 # appProtocol http  -> b:8080, DestinationPolicy tls DISABLE: plaintext
WEBOK=10.96.0.24 # -> b:8080, endpoints' service account b (b's identity)
WEBBAD=10.96.0.25 # -> b:8080, endpoints' service account web-v2: b is not it
CFG=$RM_TMP/mesh.yaml
service() { # NAME VIP PORT TARGETPORT APPPROTOCOL [SERVICE-ACCOUNTS]
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default%s}\n' "$1" \
        "${6:+, annotations: {ringmesh.io/service-accounts: \"$6\"\}}"
    printf 'spec:\n  clusterIP: %s\n  ports: [{name: p, port: %s, targetPort: %s, appProtocol: %s}]\n' \
        "$2" "$3" "$4" "$5"
    printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n'
    printf 'metadata: {name: %s-1, namespace: default, labels: {kubernetes.io/service-name: %s}}\n' "$1" "$1"
    printf 'addressType: IPv4\nports: [{name: p, port: %s}]\nendpoints: [{addresses: [%s]}]\n' "$4" "$B"
}
config() { # [STRICT]: the mesh, with a PeerAuthentication for namespace default if asked:
    # STRICT, but DISABLE on port 8443 (the app's own TLS)
    {
        service web $WEB 80 8080 http
        service grpc $GRPC 50051 50051 grpc
        service tcp $TCP 80 9000 tcp
        service plain $PLAIN 80 8080 http
        service webok $WEBOK 80 8080 http "web-v1, b"
        service webbad $WEBBAD 80 8080 http web-v2
        cat <<'YAML'
---
apiVersion: ringmesh.io/v1alpha1
kind: DestinationPolicy
metadata: {name: plain, namespace: default}
spec:
  targetRef: {group: "", kind: Service, name: plain}
  tls: {mode: DISABLE}
YAML
        if [ "${1:-}" = STRICT ]; then
            cat <<'YAML'
---
apiVersion: ringmesh.io/v1alpha1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
  portLevelMtls: {"8443": {mode: DISABLE}}
YAML
        fi
    } >"$CFG.tmp"
    chmod 644 "$CFG.tmp"
    mv "$CFG.tmp" "$CFG"
}
config

# ---- credentials. Root A is the mesh's; root X another CA of the same trust domain.
C=$RM_TMP/certs
mkdir -p "$C"
chmod 755 "$C"
ctl() { "$RINGMESH_BIN/ringmeshctl" "$@" >>"$RM_TMP/ringmeshctl.log" 2>&1; }
# issue ROOT SA OUT [OWNER]: a workload cert of ns default, SA, signed by ROOT, in OUT (owned
# by OWNER: 1337 for a sidecar, the app uid for a client)
issue() {
    ctl ca issue --dir "$C/$1" --ns default --sa "$2" --out "$C/$3" &&
        chown -R "${4:-$RM_PROXY_UID}:${4:-$RM_PROXY_UID}" "$C/$3" && chmod 700 "$C/$3"
}
# expired ROOT SA OUT: like issue, but valid only on 2025-01-01 (ringmeshctl's --hours is
# at least 1 and starts 5 minutes ago, so openssl ca makes it, with the SVID's extensions)
expired() {
    local d=$C/$3.ca
    mkdir -p "$d" "$C/$3" && : >"$d/index.txt" && echo 01 >"$d/serial" &&
        cat >"$d/ca.cnf" <<EOF &&
[ca]
default_ca = c
[c]
database = $d/index.txt
new_certs_dir = $d
serial = $d/serial
default_md = sha256
policy = p
x509_extensions = ext
unique_subject = no
[p]
organizationName = optional
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = URI:spiffe://cluster.local/ns/default/sa/$2
EOF
        openssl ecparam -name prime256v1 -genkey -noout -out "$C/$3/key.pem" 2>>"$d/log" &&
        openssl req -new -key "$C/$3/key.pem" -subj /O=ringmesh -out "$d/req.csr" 2>>"$d/log" &&
        openssl ca -batch -notext -config "$d/ca.cnf" -cert "$C/$1/root-cert.pem" \
            -keyfile "$C/$1/root-key.pem" -in "$d/req.csr" -out "$C/$3/cert-chain.pem" \
            -startdate 20250101000000Z -enddate 20250102000000Z >>"$d/log" 2>&1 &&
        cp "$C/$1/root-cert.pem" "$C/$3/root-cert.pem" &&
        chown -R "$RM_APP_UID:$RM_APP_UID" "$C/$3" && chmod 700 "$C/$3"
}
mkcerts() {
    ctl ca init --dir "$C/rootA" && ctl ca init --dir "$C/rootX" &&
        issue rootA a a && issue rootA b b &&
        issue rootA client client "$RM_APP_UID" &&   # another SA, same root: the host's client
        issue rootX a xclient "$RM_APP_UID" &&       # sa a, but from root X
        expired rootA old expired &&                 # root A, expired
        issue rootA a a-untrusting &&                # a's cert, but a bundle with root X only
        cp "$C/rootX/root-cert.pem" "$C/a-untrusting/root-cert.pem" &&
        chown "$RM_PROXY_UID:$RM_PROXY_UID" "$C/a-untrusting/root-cert.pem" &&
        # what the host's clients verify b with: root A, and b's public key to pin
        cp "$C/rootA/root-cert.pem" "$C/rootA.pem" && chmod 644 "$C/rootA.pem" &&
        openssl pkey -in "$C/b/key.pem" -pubout -out "$C/b.pub" 2>/dev/null && chmod 644 "$C/b.pub"
}
check "certificates: roots A and X, workloads a, b, client, another CA's, an expired one" mkcerts
check_q "the expired certificate chains to root A but has expired" \
    bash -c "openssl verify -CAfile '$C/rootA.pem' '$C/expired/cert-chain.pem' 2>&1 | grep -q 'certificate has expired'"

# Files the clients (uid 1000) write and read
OUT=$RM_TMP/out
mkdir -m 777 "$OUT"
head -c 1048576 /dev/urandom >"$OUT/f1"
chmod 644 "$OUT/f1"
SHA_F1=$(sha256sum <"$OUT/f1" | cut -c1-64)

# fetch POD CURL_ARGS...: one request by curl as the app user; CODE = the status (000: none);
# the response head in $OUT/h, the body in $OUT/b, curl's complaint in $OUT/e.
fetch() {
    local p=$1 out; shift
    rm -f "$OUT/h" "$OUT/b" "$OUT/e"
    out=$(in_pod "$p" curl -sS --max-time "${MAXT:-5}" -D "$OUT/h" -o "$OUT/b" \
        -w '%{http_code}' "$@" 2>"$OUT/e")
    CODE=${out:-000}
}
hdr() {
    tr -d '\r' <"$OUT/h" 2>/dev/null | awk -v k="${1,,}" '
        /^HTTP\// { v = ""; next }
        { i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == k) { v = substr($0, i + 1); sub(/^ +/, "", v) } }
        END { print v }'
}
# expect NAME COND...: one TAP check on the last fetch; COND is code=N, hdr:NAME=VALUE,
# body=TEXT or head=REGEX. The detail shows the status, curl's error, head and body.
expect() {
    local name=$1 c k v got why=; shift
    for c in "$@"; do
        case $c in
        code=*) [ "$CODE" = "${c#code=}" ] || why+="status $CODE, want ${c#code=}; " ;;
        hdr:*) k=${c#hdr:} k=${k%%=*} v=${c#hdr:*=} got=$(hdr "$k")
            [ "$got" = "$v" ] || why+="$k: '$got', want '$v'; " ;;
        body=*) got=$(cat "$OUT/b" 2>/dev/null)
            [ "$got" = "${c#body=}" ] || why+="body differs, want '${c#body=}'; " ;;
        head=*) grep -Eq "${c#head=}" "$OUT/h" 2>/dev/null || why+="no head line /${c#head=}/; " ;;
        esac
    done
    if [ -z "$why" ]; then ok "$RM_LABEL: $name"; return 0; fi
    not_ok "$RM_LABEL: $name" "$why" "status $CODE; curl: $(head -c 300 "$OUT/e" 2>/dev/null)" \
        "head: $(tr -d '\r' <"$OUT/h" 2>/dev/null | tr '\n' '|')" \
        "body: $(head -c 300 "$OUT/b" 2>/dev/null | tr -c '[:print:]' '.')"
    return 1
}
# check_delta POD KEY BEFORE OP N: the counter's growth since BEFORE (polled up to 3 s)
check_delta() {
    local pod=$1 key=$2 before=$3 op=$4 want=$5 got='' now i
    for ((i = 0; i <= 30; i++)); do
        now=$(sidecar_stat "$pod" "$key")
        if _num "$now" && _num "$before"; then
            got=$((now - before))
            case $op in
            eq) [ "$got" -eq "$want" ] && break ;;
            ge) [ "$got" -ge "$want" ] && break ;;
            le) [ "$got" -le "$want" ] && break ;;
            esac
        else
            got="(counter was '$before', now '$now')"
        fi
        sleep 0.1
    done
    "check_$op" "$RM_LABEL: $pod $key grew by $op $want" "$got" "$want"
}
# stat_str POD KEY: a /stats value that may hold ':' (sidecar_stat cuts at the first one)
stat_str() { sidecar_stats "$1" | sed -n "s/^$2: //p" | head -n 1; }
# snap POD KEY...: the counters now, in S[POD:KEY]
declare -A S
snap() { local p=$1 k; shift; for k; do S[$p:$k]=$(sidecar_stat "$p" "$k"); done; }
TLS_KEYS=(inbound.tls_handshakes inbound.tls_handshake_failures inbound.cx_mtls
    inbound.cx_plaintext inbound.cx_plaintext_refused outbound.tls_handshakes
    outbound.tls_handshake_failures)
# log_mark POD: remember where the sidecar's log ends; warned POD REGEX NAME [NOT]: one check
# that a warn line after the mark matches REGEX (and not the regex NOT); the detail: the warn
# lines that were there
declare -A MARK
log_mark() { MARK[$1]=$(wc -l <"${RM_SIDECAR_LOG[$1]}"); }
_warns() { # POD REGEX NOT
    tail -n +$((MARK[$1] + 1)) "${RM_SIDECAR_LOG[$1]}" | grep ' warn ' | grep -E -- "$2" |
        grep -Ev -- "${3:-^\$}"
}
warned() {
    local p=$1 re=$2 name=$3 not=${4:-} lines
    wait_until 2 eval '_warns "$p" "$re" "$not" | grep -q .'
    lines=$(_warns "$p" "$re" "$not")
    if [ -n "$lines" ]; then
        ok "$RM_LABEL: $name"
        rm_log "  $(tail -n 1 <<<"$lines" | cut -c1-300)"
    else
        not_ok "$RM_LABEL: $name" "no warn line in $p's log matches /$re/${not:+ but not /$not/}; its last warn lines:" \
            "$(tail -n +$((MARK[$p] + 1)) "${RM_SIDECAR_LOG[$p]}" | grep ' warn ' | tail -n 5)"
    fi
}
alive() {
    local p pid st
    for p; do
        pid=$(sidecar_pid "$p")
        if [ -n "$pid" ] && [ -e "/proc/$pid" ] && ! grep -q '^State:.*zombie' "/proc/$pid/status"; then
            ok "$RM_LABEL: sidecar in $p still runs"
        else
            wait "$pid" 2>/dev/null; st=$?
            not_ok "$RM_LABEL: sidecar in $p still runs" \
                "it exited with status $st$( ((st > 128)) && echo " (signal $((st - 128)))")"
        fi
    done
}
# tls_get ARGS...: curl from the host straight to b's app port over TLS, HTTP/1.1 (ALPN
# http/1.1). The SVID has only a URI SAN and curl can check only DNS names and addresses,
# so -k turns off curl's name and chain checks; --pinnedpubkey then requires b's own key
# (the s_client checks verify the chain to root A). ARGS: the client's --cert/--key.
tls_get() {
    fetch h --http1.1 -k --pinnedpubkey "$C/b.pub" "$@" "https://$B:8080/"
}
cert_of() { CERT=(--cert "$C/$1/cert-chain.pem" --key "$C/$1/key.pem"); } # sets CERT
# sclient ARGS...: openssl s_client from the host to b:8080, verifying b against root A,
# sending one HTTP/1.1 request when ALPN http/1.1 was asked for; output in $OUT/s
sclient() {
    { [[ " $* " == *" http/1.1 "* ]] && printf 'GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n'; } |
        in_pod h timeout 5 openssl s_client -connect "$B:8080" -servername web.default.svc.cluster.local \
            -CAfile "$C/rootA.pem" -verify_return_error -ign_eof "$@" >"$OUT/s" 2>&1
}
# refused NAME SCLIENT_ARGS...: the TLS client gets no HTTP answer from b's app
refused() {
    local name=$1; shift
    sclient -alpn http/1.1 "$@"
    if grep -q '^HTTP/1.1 ' "$OUT/s"; then
        not_ok "$RM_LABEL: $name" "the app answered: $(grep -m1 '^HTTP/1.1 ' "$OUT/s")"
    else
        ok "$RM_LABEL: $name"
        rm_log "  client saw: $(grep -iE 'alert|error|errno' "$OUT/s" | head -n 2 | tr '\n' '|' | cut -c1-200)"
    fi
}
# late_tls SECS [N]: from the host, N times (1) 130 ms apart: connect to b:8080, wait SECS,
# then TLS (client cert of SA client, b verified against root A, ALPN http/1.1) and one
# GET; prints one line each, the status line or the error
late_tls() {
    in_pod h "$RM_PY" - "$1" "${2:-1}" "$B" "$C" <<'EOF'
import socket, ssl, sys, time
delay, n, host, c = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False  # the SVID names no host, only its SPIFFE ID
ctx.load_verify_locations(c + "/rootA.pem")
ctx.load_cert_chain(c + "/client/cert-chain.pem", c + "/client/key.pem")
ctx.set_alpn_protocols(["http/1.1"])
for i in range(n):
    if i:
        time.sleep(0.13)
    s = socket.create_connection((host, 8080), timeout=5)
    time.sleep(delay)
    try:
        t = ctx.wrap_socket(s)
        t.sendall(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        print(t.recv(200).split(b"\r\n")[0].decode(), flush=True)
        t.close()
    except Exception as e:
        print("error:", e, flush=True)
        s.close()
EOF
}

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    config
    sidecar_up b "$io" --config "$CFG" --pod-ip "$B" --cert-dir "$C/b" || continue
    sidecar_up a "$io" --config "$CFG" --pod-ip "$A" --cert-dir "$C/a" || { sidecar_down b; continue; }
    check_stat a tls.enabled eq 1
    check_stat b tls.enabled eq 1
    check_eq "$io: a tls.identity" "$(stat_str a tls.identity)" spiffe://cluster.local/ns/default/sa/a
    check_eq "$io: b tls.identity" "$(stat_str b tls.identity)" spiffe://cluster.local/ns/default/sa/b
    exp=$(sidecar_stat b tls.cert_expiry_seconds)
    check "$io: b's tls.cert_expiry_seconds is about 24 h ($exp)" \
        bash -c "[ '${exp:-0}' -gt 86000 ] && [ '${exp:-0}' -le 86700 ]"

    # ---- both sidecars on mTLS: HTTP/1.1, HTTP/2, a 1 MiB upload, gRPC, TCP
    fetch a --http1.1 http://$WEB/
    if ! expect "HTTP/1.1 GET over mTLS to the app" code=200 hdr:x-app=web body=web &&
        [ "$CODE" = 000 ]; then
        not_ok "$io: (skipping the rest of this round: no response at all)"
        sidecars_down
        continue
    fi
    fetch a --http2-prior-knowledge http://$WEB/
    expect "HTTP/2 GET over mTLS to the app" code=200 hdr:x-app=web head='^HTTP/2 200' body=web
    MAXT=20 fetch a --http1.1 --data-binary @"$OUT/f1" http://$WEB/hash
    expect "POST 1 MiB over mTLS arrives intact" code=200 body="$SHA_F1"
    MAXT=20 fetch a --http2-prior-knowledge --data-binary @"$OUT/f1" http://$WEB/hash
    expect "HTTP/2 POST 1 MiB over mTLS arrives intact" code=200 body="$SHA_F1"
    out=$(in_pod a nghttp -v http://$WEB/1 http://$WEB/2 http://$WEB/3 2>&1)
    check_eq "$io: nghttp: 3 requests on one HTTP/2 connection over mTLS all 200" \
        "$(grep -c 'recv (stream_id=[0-9]*) :status: 200' <<<"$out")" 3
    out=$(in_pod a "$RM_PY" "$RM_TOOLS/grpcapp.py" client $GRPC:50051 unary --count 3 --expect-name g 2>&1); rc=$?
    check "$io: gRPC unary (3 calls) over mTLS ($(tail -n 1 <<<"$out"))" [ $rc = 0 ]
    out=$(in_pod a "$RM_PY" "$RM_TOOLS/grpcapp.py" client $GRPC:50051 unary --size 1048576 --expect-name g 2>&1); rc=$?
    check "$io: gRPC unary of 1 MiB over mTLS ($(tail -n 1 <<<"$out"))" [ $rc = 0 ]
    snap a outbound.tls_handshakes
    snap b inbound.cx_mtls
    conns=$(grep -c '^conn ' "$log_hash")
    out=$(pod_tool a send $TCP 80 1048576 2>&1); rc=$?
    check "$io: 1 MiB to the TCP Service over mTLS arrives intact ($out)" [ $rc = 0 ]
    check_eq "$io: the TCP app got one connection" $(($(grep -c '^conn ' "$log_hash") - conns)) 1
    check_delta a outbound.tls_handshakes "${S[a:outbound.tls_handshakes]}" ge 1
    check_delta b inbound.cx_mtls "${S[b:inbound.cx_mtls]}" ge 1
    check_stat a outbound.tls_handshakes ge 2
    check_stat a outbound.tls_handshake_failures eq 0
    check_stat b inbound.tls_handshakes ge 2
    check_stat b inbound.cx_mtls ge 2
    check_stat b inbound.cx_plaintext eq 0
    check_stat b inbound.tls_handshake_failures eq 0
    # a short transfer: the client's bytes and FIN come before the tunnel's handshake is done
    snap b inbound.tls_handshake_failures
    out=$(pod_tool a send $TCP 80 1000 2>&1); rc=$?
    check "$io: 1000 bytes to the TCP Service over mTLS arrive intact ($out)" [ $rc = 0 ]
    check_delta b inbound.tls_handshake_failures "${S[b:inbound.tls_handshake_failures]}" eq 0

    # ---- the server's identity must be one the Service allows (its service accounts)
    fetch a --http1.1 http://$WEBOK/
    expect "a Service whose service accounts include b's reaches b" code=200 hdr:x-app=web
    snap a outbound.tls_handshake_failures outbound.tls_fail_wrong_identity
    log_mark a
    fetch a --http1.1 http://$WEBBAD/
    expect "a Service whose service accounts do not include b's: 503, no connection to b used" \
        code=503
    check_delta a outbound.tls_handshake_failures "${S[a:outbound.tls_handshake_failures]}" ge 1
    check_delta a outbound.tls_fail_wrong_identity "${S[a:outbound.tls_fail_wrong_identity]}" ge 1
    warned a "mTLS to $B:8080: handshake failed: the peer spiffe://cluster.local/ns/default/sa/b is not an identity of the service" \
        "the wrong identity: a logs the peer and why"
    fetch a --http1.1 http://$WEBOK/
    expect "(control) the allowed Service still works after the refusal" code=200 hdr:x-app=web

    # ---- interop: OpenSSL outside the mesh with a workload cert of another SA
    snap b "${TLS_KEYS[@]}"
    cert_of client
    sclient -alpn h2 "${CERT[@]}"
    san=$(openssl x509 -noout -ext subjectAltName <"$OUT/s" 2>/dev/null | tr -d ' ' | grep -v Alternative)
    if grep -q 'Verify return code: 0 (ok)' "$OUT/s" && grep -q 'ALPN protocol: h2' "$OUT/s" &&
        grep -q 'TLSv1.3' "$OUT/s"; then
        ok "$io: openssl s_client -alpn h2 with a client cert: TLS 1.3, h2, b verified by root A"
    else
        not_ok "$io: openssl s_client -alpn h2 with a client cert: TLS 1.3, h2, b verified by root A" \
            "$(grep -E 'Verify return|ALPN|Protocol|New,|alert|error' "$OUT/s" | head -n 6)"
    fi
    check_eq "$io: s_client sees b's SAN" "$san" URI:spiffe://cluster.local/ns/default/sa/b
    check_delta b inbound.tls_handshakes "${S[b:inbound.tls_handshakes]}" ge 1
    tls_get "${CERT[@]}"
    expect "curl over TLS (ALPN http/1.1) with a client cert gets the app's 200" code=200 \
        hdr:x-app=web head='^HTTP/1.1 200' body=web
    check_delta b inbound.tls_handshakes "${S[b:inbound.tls_handshakes]}" ge 2
    check_delta b inbound.tls_handshake_failures "${S[b:inbound.tls_handshake_failures]}" eq 0
    check_delta b inbound.cx_plaintext "${S[b:inbound.cx_plaintext]}" eq 0

    # ---- refusals, each counted on b and logged with its reason
    snap b inbound.tls_handshake_failures inbound.tls_fail_no_cert
    log_mark b
    refused "a client without a certificate is refused"
    check_delta b inbound.tls_handshake_failures "${S[b:inbound.tls_handshake_failures]}" eq 1
    check_delta b inbound.tls_fail_no_cert "${S[b:inbound.tls_fail_no_cert]}" eq 1
    warned b "mTLS from $H:[0-9]+: handshake failed: .*(no cert|certificate required|sent no certificate|NO_PEER_CERT|peer did not return)" \
        "no client certificate: b logs a warning with the peer and the reason"
    tls_get
    expect "curl without a client certificate gets no answer" code=000

    snap b inbound.tls_handshake_failures inbound.tls_fail_untrusted
    log_mark b
    cert_of xclient
    refused "a certificate from another CA is refused" "${CERT[@]}"
    check_delta b inbound.tls_handshake_failures "${S[b:inbound.tls_handshake_failures]}" eq 1
    check_delta b inbound.tls_fail_untrusted "${S[b:inbound.tls_fail_untrusted]}" eq 1
    warned b "mTLS from $H:[0-9]+: handshake failed: certificate verify failed" \
        "another CA: b logs 'certificate verify failed' with the peer"

    snap b inbound.tls_handshake_failures inbound.tls_fail_expired
    log_mark b
    cert_of expired
    refused "an expired certificate is refused" "${CERT[@]}"
    check_delta b inbound.tls_handshake_failures "${S[b:inbound.tls_handshake_failures]}" eq 1
    check_delta b inbound.tls_fail_expired "${S[b:inbound.tls_fail_expired]}" eq 1
    warned b "mTLS from $H:[0-9]+: handshake failed: certificate verify failed: .*(expired|date)" \
        "an expired certificate: b logs 'certificate verify failed' naming the expiry"
    # the control: the same client with a good certificate still gets through
    cert_of client
    refused_ctl=$(sclient -alpn http/1.1 "${CERT[@]}"; grep -m1 '^HTTP/1.1 ' "$OUT/s")
    check_eq "$io: (control) s_client with root A's client cert gets the app's answer" \
        "$(tr -d '\r' <<<"$refused_ctl")" "HTTP/1.1 200 OK"

    # ---- PERMISSIVE (no PeerAuthentication): plaintext is served and counted
    snap b "${TLS_KEYS[@]}"
    fetch h --http1.1 "http://$B:8080/"
    expect "PERMISSIVE: a plaintext client outside the mesh gets the app's 200" code=200 hdr:x-app=web
    check_delta b inbound.cx_plaintext "${S[b:inbound.cx_plaintext]}" eq 1
    # a ClientHello 30 ms after connect is well inside --sniff-timeout-ms (100 ms): each of
    # 10 such clients (130 ms apart, so they land at every phase of the sidecar's 100 ms
    # tick) must be terminated as TLS, none taken for plaintext and relayed to the app
    snap b "${TLS_KEYS[@]}"
    out=$(late_tls 0.03 10 2>&1 | tr -d '\r')
    n=$(grep -c '^HTTP/1.1 200 OK$' <<<"$out")
    if [ "$n" = 10 ]; then
        ok "$io: 10 ClientHellos 30 ms after connect all reach the app over TLS"
    else
        not_ok "$io: 10 ClientHellos 30 ms after connect all reach the app over TLS" \
            "$n of 10 did; the clients saw: $(sort <<<"$out" | uniq -c | tr '\n' '|')" \
            "b's app answered 400 to $(grep -c 'code 400' "$log_web") requests so far (TLS records relayed to it as plaintext)"
    fi
    check_delta b inbound.cx_plaintext "${S[b:inbound.cx_plaintext]}" eq 0
    # DestinationPolicy tls DISABLE: a's requests to that Service go in plaintext
    snap a "${TLS_KEYS[@]}"
    snap b "${TLS_KEYS[@]}"
    fetch a --http1.1 http://$PLAIN/
    expect "tls DISABLE: a request to that Service succeeds" code=200 hdr:x-app=web
    fetch a --http2-prior-knowledge http://$PLAIN/
    expect "tls DISABLE: an HTTP/2 request to that Service succeeds" code=200 hdr:x-app=web
    check_delta b inbound.cx_plaintext "${S[b:inbound.cx_plaintext]}" ge 1
    check_delta b inbound.cx_mtls "${S[b:inbound.cx_mtls]}" eq 0
    check_delta a outbound.tls_handshakes "${S[a:outbound.tls_handshakes]}" eq 0

    # ---- outbound: a's bundle holds only root X, so b's certificate is not trusted: 503
    sidecar_down a
    if sidecar_up a "$io" --config "$CFG" --pod-ip "$A" --cert-dir "$C/a-untrusting"; then
        log_mark a
        log_mark b
        fetch a --http1.1 http://$WEB/
        expect "a sidecar whose bundle does not trust b answers 503" code=503
        check_stat a outbound.tls_handshake_failures ge 1
        check_stat a outbound.tls_handshakes eq 0
        warned a "mTLS to $B:8080: handshake failed: certificate verify failed" \
            "a logs the outbound failure: 'mTLS to $B:8080: handshake failed: certificate verify failed'"
        # b sees a give up: logged with a's address and why (not "?" and "no error")
        warned b "mTLS from $A:[0-9]+: handshake failed: " \
            "b logs the failed handshake with a's address and a reason" "handshake failed: no error"
        sidecar_down a
    fi
    sidecar_up a "$io" --config "$CFG" --pod-ip "$A" --cert-dir "$C/a" || { sidecar_down b; continue; }

    # ---- STRICT: a PeerAuthentication for namespace default, loaded by SIGHUP
    v=$(sidecar_stat b config.version)
    config STRICT
    kill -HUP "$(sidecar_pid b)"
    check_stat b config.version eq $((v + 1))
    snap b "${TLS_KEYS[@]}"
    fetch h --http1.1 "http://$B:8080/"
    expect "STRICT: a plaintext client outside the mesh is refused" code=000
    check_delta b inbound.cx_plaintext_refused "${S[b:inbound.cx_plaintext_refused]}" eq 1
    check_delta b inbound.cx_plaintext "${S[b:inbound.cx_plaintext]}" eq 0
    fetch a --http1.1 http://$PLAIN/
    expect "STRICT: a's plaintext (tls DISABLE) request is not served" code=503
    check_delta b inbound.cx_plaintext_refused "${S[b:inbound.cx_plaintext_refused]}" ge 2
    fetch a --http1.1 http://$WEB/
    expect "STRICT: a's mTLS HTTP/1.1 request still works" code=200 hdr:x-app=web
    fetch a --http2-prior-knowledge http://$WEB/
    expect "STRICT: a's mTLS HTTP/2 request still works" code=200 hdr:x-app=web
    out=$(pod_tool a send $TCP 80 100000 2>&1); rc=$?
    check "$io: STRICT: the TCP Service over mTLS still works ($out)" [ $rc = 0 ]
    tls_get "${CERT[@]}"
    expect "STRICT: TLS with a client cert from outside the mesh still reaches the app" code=200 hdr:x-app=web
    # a client whose ClientHello comes late (past --sniff-timeout-ms, 100 ms) is still a TLS
    # client: STRICT has no plaintext to wait for, so it must not be refused as plaintext
    snap b inbound.cx_plaintext_refused
    check_eq "$io: STRICT: a ClientHello 300 ms after connect still reaches the app" \
        "$(late_tls 0.3 2>&1 | tr -d '\r')" "HTTP/1.1 200 OK"
    check_delta b inbound.cx_plaintext_refused "${S[b:inbound.cx_plaintext_refused]}" eq 0
    check_delta b inbound.cx_plaintext "${S[b:inbound.cx_plaintext]}" eq 0
    # portLevelMtls 8443 DISABLE: the client's TLS reaches the app untouched (its certificate)
    snap b "${TLS_KEYS[@]}"
    out=$(printf 'GET / HTTP/1.0\r\n\r\n' | in_pod h timeout 5 openssl s_client -connect "$B:8443" \
        -ign_eof 2>&1 | tr -d '\r')
    if grep -q '^subject=CN = app-tls' <<<"$out" && grep -q '^HTTP/1.0 200 ok' <<<"$out"; then
        ok "$io: STRICT with port 8443 DISABLE: TLS passes through to the app's own TLS server"
    else
        not_ok "$io: STRICT with port 8443 DISABLE: TLS passes through to the app's own TLS server" \
            "$(grep -E '^subject=|^HTTP/|alert|errno|error' <<<"$out" | head -n 4)"
    fi
    check_delta b inbound.tls_handshakes "${S[b:inbound.tls_handshakes]}" eq 0
    check_delta b inbound.cx_plaintext_refused "${S[b:inbound.cx_plaintext_refused]}" eq 0
    check_stat b inbound.cx_mtls ge 5
    alive a b
    sidecars_down
done
tap_done
