#!/usr/bin/env bash
# deploy/demo.sh - `make demo`: a five-pod mesh on this machine, with real traffic.
#
# Each "pod" is a network namespace on a private bridge (itself in its own namespace, so the
# host's network is never touched). In each pod ringmesh-init writes the iptables rules,
# ringmesh-sidecar runs as uid 1337, and an HTTP app (tests/tools/httpapp.py, which answers
# its own name) runs as uid 1000. curl in one pod talks to another pod's app; both sidecars
# carry the connection. Then the Service "reviews" is routed by an HTTPRoute
# (deploy/examples/canary.yaml): a header route and a 90/10 canary split between its two
# versions. The control plane, ringmesh-xds, runs in its own pod: the demo's manifests are
# applied to it with ringmeshctl, and every sidecar gets its configuration from it over
# delta xDS (https://ringmesh-xds.ringmesh-system.svc:15012) and its X.509-SVID from its CA
# (a bootstrap token per pod; one root): what goes to a Service VIP travels between
# sidecars over mTLS (a connection straight to a pod IP passes through as it came, in
# plaintext). The demo shows proxy-status, prints what every sidecar counted, then shows
# mTLS: each sidecar's identity and handshakes, the caller's identity reaching the app
# (x-forwarded-client-cert) and, from deploy/examples/mtls.yaml applied with ringmeshctl,
# an AuthorizationPolicy letting only productpage call ratings and PeerAuthentication STRICT
# refusing plaintext. It ends with `ringmeshctl stat`: golden metrics per Service from the
# sidecars' Prometheus metrics, under a few seconds of load. Then it tears everything down. Needs root. Exits non-zero if any step
# fails. DEMO_IO=uring|epoll picks the sidecars' I/O backend (default: the sidecar's own
# choice, --io auto).
set -u
if [ "$(id -u)" != 0 ]; then
    echo "demo: needs root (network namespaces and iptables)" >&2
    exit 1
fi
RINGMESH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${RINGMESH_BIN:=$RINGMESH_ROOT/bin}"
export RINGMESH_ROOT RINGMESH_BIN
source "$RINGMESH_ROOT/tests/mesh/lib.sh"
for b in ringmesh-init ringmesh-sidecar ringmeshctl ringmesh-xds; do
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
# bookinfo's reviews in two versions: v1 with two replicas, v2 with one
PODS=(productpage reviews-v1-1 reviews-v1-2 reviews-v2-1 ratings)
IPS=(10.233.1.2 10.233.1.3 10.233.1.4 10.233.1.5 10.233.1.6)
declare -A IP APP
for i in "${!PODS[@]}"; do IP[${PODS[$i]}]=${IPS[$i]}; done
APP=([productpage]=productpage [reviews-v1-1]=reviews-v1 [reviews-v1-2]=reviews-v1
    [reviews-v2-1]=reviews-v2 [ratings]=ratings)
# each pod's service account, which its SVID names: spiffe://cluster.local/ns/default/sa/<sa>
declare -A SA=([productpage]=productpage [reviews-v1-1]=reviews [reviews-v1-2]=reviews
    [reviews-v2-1]=reviews [ratings]=ratings)
TD=cluster.local
PORT=9080
BLOB=$((4 << 20))
blob_sha=$("$RM_PY" "$RM_TOOLS/httpapp.py" --bytes-sha "$BLOB")

# Every sidecar gets the same config: the Services reviews (VIP 10.96.0.20, routed by the
# HTTPRoute), reviews-v1 (10.96.0.21) and reviews-v2 (10.96.0.22) from
# deploy/examples/canary.yaml, the Service ratings (10.96.0.23; the AuthorizationPolicy of
# deploy/examples/mtls.yaml targets it) and the EndpointSlices naming this demo's pods.
MESH=$RM_TMP/mesh.yaml
slice() { # SERVICE POD...
    local s=$1 p; shift
    printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n'
    printf 'metadata: {name: %s-1, namespace: default, labels: {kubernetes.io/service-name: %s}}\n' "$s" "$s"
    printf 'addressType: IPv4\nports: [{name: http, port: %s}]\nendpoints:\n' "$PORT"
    for p in "$@"; do printf -- '- {addresses: [%s]}\n' "${IP[$p]}"; done
}
{
    cat "$RINGMESH_ROOT/deploy/examples/canary.yaml"
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: ratings, namespace: default}\n'
    printf 'spec:\n  clusterIP: 10.96.0.23\n  ports: [{name: http, port: %s, appProtocol: http}]\n' "$PORT"
    slice ratings ratings
    slice reviews reviews-v1-1 reviews-v1-2 reviews-v2-1
    slice reviews-v1 reviews-v1-1 reviews-v1-2
    slice reviews-v2 reviews-v2-1
} >"$MESH"
chmod 644 "$MESH"
declare -A APPLOG

# the control plane: its own pod, a manifests directory (empty: the demo applies to it),
# the mesh CA; each sidecar gets a bootstrap token and the root (the bundle a pod mounts)
CA=$RM_TMP/ca CP_IP=10.233.1.10 XDS_HOST=ringmesh-xds.ringmesh-system.svc
mkdir -p "$RM_TMP/manifests"
ctl() { # COMMAND ARGS...: ringmeshctl in the control plane's pod (mutations from loopback)
    local c=$1; shift
    ip netns exec "${RM_NS[ringmesh-xds]}" "$RINGMESH_BIN/ringmeshctl" "$c" \
        --server http://127.0.0.1:15014 "$@"
}
xds_ready() {
    wait_until 5 ip netns exec "${RM_NS[ringmesh-xds]}" curl -sf -o /dev/null \
        http://127.0.0.1:15014/ready
}
creds() { # POD: a token for its service account, the root, owned by the sidecar's uid
    local d=$RM_TMP/certs/$1
    mkdir -p "$d" && cp "$CA/root-cert.pem" "$d/" &&
        "$RINGMESH_BIN/ringmeshctl" ca token --dir "$CA" --ns default --sa "${SA[$1]}" \
            >"$RM_TMP/$1.token" && chown -R "$RM_PROXY_UID:$RM_PROXY_UID" "$d" "$RM_TMP/$1.token"
}

say "ringmesh demo: ${#PODS[@]} pods on a private bridge, sidecars as uid 1337, apps as uid $RM_APP_UID,"
say "  the control plane ringmesh-xds in pod ringmesh-xds $CP_IP"
say "every sidecar: --io ${DEMO_IO:-auto} --xds https://$XDS_HOST:15012 --xds-token <pod>.token"
say "  --cert-dir certs/<pod> (its SVID comes from ringmesh-xds's CA; the root was put there)"
say ""
say "bring-up:"
pod ringmesh-xds "$CP_IP" >/dev/null
step "mesh CA for ringmesh-xds: ringmeshctl ca init" "$RINGMESH_BIN/ringmeshctl" ca init --dir "$CA"
ip netns exec "${RM_NS[ringmesh-xds]}" "$RINGMESH_BIN/ringmesh-xds" \
    --config-dir "$RM_TMP/manifests" --ca-dir "$CA" >"$RM_TMP/ringmesh-xds.log" 2>&1 &
RM_PIDS+=($!)
step "pod ringmesh-xds $CP_IP: the control plane ready on :15014" xds_ready
applied=$(ctl apply -f "$MESH" 2>&1)
step "ringmeshctl apply -f mesh.yaml: $(grep -c created <<<"$applied") objects created" \
    test "$(grep -c created <<<"$applied")" = 9
for p in "${PODS[@]}"; do
    pod "$p" "${IP[$p]}" >/dev/null
    ip -n "${RM_NS[$p]}" route add 10.96.0.0/16 dev eth0 # the Service network
    pod_hosts "$p" "$CP_IP $XDS_HOST"                    # cluster DNS, for the control plane
    step "pod $p ${IP[$p]}: ringmesh-init (iptables)" pod_init "$p"
    # productpage, the client, runs one worker so that round robin is exact in the demo
    extra=()
    [ "$p" = productpage ] && extra=(--concurrency 1)
    creds "$p"
    step "pod $p: ringmesh-sidecar ready (config and SVID from ringmesh-xds)" pod_sidecar "$p" \
        --io "${DEMO_IO:-auto}" --xds "https://$XDS_HOST:15012" --xds-token "$RM_TMP/$p.token" \
        --cert-dir "$RM_TMP/certs/$p" --pod-name "$p" --pod-ip "${IP[$p]}" \
        --service-account "${SA[$p]}" "${extra[@]}"
    pod_app "$p" "$RM_PY" "$RM_TOOLS/httpapp.py" "$PORT" --name "${APP[$p]}"
    APPLOG[$p]=$RM_APP_LOG
    step "pod $p: app httpapp.py :$PORT --name ${APP[$p]}" wait_port "$p" "$PORT"
done
say ""
say "the control plane's view (ringmeshctl proxy-status, in pod ringmesh-xds):"
ps_out=$(ctl proxy-status 2>&1)
awk 'NR == 1 || $3 == "v1/Service" || $3 ~ /HTTPRoute/' <<<"$ps_out" | sed 's/^/  /'
acked=$(awk '$4 ~ /^[0-9]+$/ && $6 == "-"' <<<"$ps_out" | wc -l)
step "${#PODS[@]} sidecars x 6 types ACKed, none NACKed: $acked" test "$acked" = $((6 * ${#PODS[@]}))
[ "$FAILS" = 0 ] || { say ""; say "demo: bring-up failed"; exit 1; }

# curl_ok POD URL: the body must come back with 200
curl_ok() { in_pod "$1" curl -sSf --max-time 5 -o /dev/null "$2"; }
curl_n() { # POD URL N
    local i
    for ((i = 0; i < $3; i++)); do curl_ok "$1" "$2" || return 1; done
}
curl_blob() { # POD URL: 4 MiB, sha256 compared
    local got
    got=$(in_pod "$1" curl -sSf --max-time 10 "$2" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$blob_sha" ] || { echo "sha256 $got, want $blob_sha"; return 1; }
}
CONNS=0 DIRECT=0 # client connections made: all of them, and those to pod IPs

say ""
say "traffic (curl as uid $RM_APP_UID, through both sidecars):"
step "productpage  -> reviews-v1-1  10 x GET /" curl_n productpage "http://${IP[reviews-v1-1]}:$PORT/" 10
step "productpage  -> ratings        5 x GET /" curl_n productpage "http://${IP[ratings]}:$PORT/" 5
step "reviews-v2-1 -> ratings      GET 4 MiB, sha256 checked" \
    curl_blob reviews-v2-1 "http://${IP[ratings]}:$PORT/bytes/$BLOB"
step "ratings      -> productpage  GET 4 MiB, sha256 checked" \
    curl_blob ratings "http://${IP[productpage]}:$PORT/bytes/$BLOB"
CONNS=$((CONNS + 17)) DIRECT=$((DIRECT + 17))

say ""
say "a Service VIP (productpage's sidecar balances reviews-v1 over its two pods):"
gets() { grep -c '^req GET / ' "${APPLOG[$1]}"; }
a0=$(gets reviews-v1-1) b0=$(gets reviews-v1-2)
step "productpage  -> reviews-v1 VIP 10.96.0.21:$PORT  10 x GET /" \
    curl_n productpage "http://10.96.0.21:$PORT/" 10
a1=$(($(gets reviews-v1-1) - a0)) b1=$(($(gets reviews-v1-2) - b0))
step "round robin: reviews-v1-1 served $a1, reviews-v1-2 served $b1" test "$a1" = 5 -a "$b1" = 5
CONNS=$((CONNS + 10))

# routing: curl in productpage; "reviews" resolves to its VIP as cluster DNS would make it
HOSTS=(--resolve "reviews:$PORT:10.96.0.20")
URL=http://reviews:$PORT
show() { # show CMD-AS-SHOWN OUTPUT: the command and its output, indented
    say "  \$ $1"
    printf '%s\n' "$2" | tr -d '\r' | sed '/^$/d; s/^/    /'
}
heads() { # the response head and body of one curl -si, less its Date and Server lines
    in_pod productpage curl -si --max-time 5 "${HOSTS[@]}" "$@" | tr -d '\r' |
        grep -v -i '^date:\|^server:'
}
say ""
say "routing: Service reviews 10.96.0.20, HTTPRoute reviews (deploy/examples/canary.yaml):"
say "  /reviews/* with x-canary: true -> reviews-v2; other /reviews/* -> 90% v1, 10% v2"
say "  (curl in productpage; --resolve reviews:$PORT:10.96.0.20 stands in for cluster DNS;"
say "   Date and Server lines left out)"
say ""
out=$(heads -H 'x-canary: true' "$URL/reviews/1")
show "curl -si -H 'x-canary: true' $URL/reviews/1" "$out"
grep -q '^x-app: reviews-v2$' <<<"$out"; canary1=$?
say ""
canary=$(in_pod productpage curl -s --max-time 10 "${HOSTS[@]}" -H 'x-canary: true' \
    "$URL/reviews/[1-20]" | sort | uniq -c)
show "curl -s -H 'x-canary: true' '$URL/reviews/[1-20]' | sort | uniq -c" "$canary"
say ""
split=$(in_pod productpage curl -s --max-time 10 "${HOSTS[@]}" "$URL/reviews/[1-100]" |
    sort | uniq -c)
show "curl -s '$URL/reviews/[1-100]' | sort | uniq -c" "$split"
say ""
nr=$(heads "$URL/ratings/1")
show "curl -si $URL/ratings/1" "$nr"
CONNS=$((CONNS + 4))
say ""
count_of() { awk -v n="$1" '$2 == n { c = $1 } END { print c + 0 }' <<<"$2"; }
v1=$(count_of reviews-v1 "$split") v2=$(count_of reviews-v2 "$split")
step "x-canary: true -> reviews-v2, 21 of 21" \
    test "$canary1" = 0 -a "$(count_of reviews-v2 "$canary")" = 20 -a "$(wc -l <<<"$canary")" = 1
# the split is random per request: v2's share of 100 is 10 +- 3 (outside 2..22: < 1 in 1000)
step "90/10 split: reviews-v1 $v1 + reviews-v2 $v2 = 100, v2 in 2..22" \
    test $((v1 + v2)) = 100 -a "$v2" -ge 2 -a "$v2" -le 22
nr_ok() { [[ "$nr" == "HTTP/1.1 404 "* ]] && grep -q '^x-ringmesh-flags: NR$' <<<"$nr"; }
step "no route for /ratings/1: 404 with x-ringmesh-flags: NR" nr_ok

say ""
say "productpage's sidecar, its outbound.rq_* counters not 0 (GET http://127.0.0.1:15000/stats):"
# 10 to reviews-v1's VIP, 1 + 20 + 100 + 1 to reviews'; a request is counted at its end
RQ=132
rq_settled() { [ "$(sidecar_stat productpage outbound.rq_total)" = "$RQ" ]; }
wait_until 2 rq_settled
s=$(sidecar_stats productpage)
v() { awk -v k="$1: " 'index($0, k) == 1 { print substr($0, length(k) + 1); exit }' <<<"$s"; }
grep -E '^outbound\.rq_' <<<"$s" | awk -F': *' '$2 != 0' | sed 's/^/  /'
step "$RQ requests to VIPs: rq_total $(v outbound.rq_total), 2xx $(v outbound.rq_2xx), 4xx NR $(v outbound.rq_flag_NR)" \
    test "$(v outbound.rq_total)" = "$RQ" -a "$(v outbound.rq_2xx)" = $((RQ - 1)) \
    -a "$(v outbound.rq_4xx)" = 1 -a "$(v outbound.rq_flag_NR)" = 1

say ""
say "what each sidecar counted (GET http://127.0.0.1:15000/stats in the pod):"
row() { printf '  %-12s %-8s | %6s %6s %6s %6s | %6s %6s %6s\n' "$@"; }
row pod backend "out cx" "h2 up" "out rq" 2xx "in cx" "in rq" 2xx
out_total=0 in_total=0 pooled=0
for p in "${PODS[@]}"; do
    s=$(sidecar_stats "$p")
    row "$p" "$(v server.io_backend)" \
        "$(v outbound.cx_total)" "$(v outbound.upstream_cx_http)" "$(v outbound.rq_total)" \
        "$(v outbound.rq_2xx)" "$(v inbound.cx_total)" "$(v inbound.rq_total)" "$(v inbound.rq_2xx)"
    out_total=$((out_total + $(v outbound.cx_total)))
    in_total=$((in_total + $(v inbound.cx_total)))
    pooled=$((pooled + $(v outbound.upstream_cx_http)))
done
say "  out cx: connections from the app (to a VIP, or straight to a pod IP: then relayed);"
say "  h2 up: pooled HTTP/2 connections to peer sidecars, carrying every request to a VIP;"
say "  in cx: connections from peer sidecars; rq: HTTP requests"
say ""
step "$CONNS connections made, $CONNS counted outbound ($out_total)" test "$out_total" = "$CONNS"
step "inbound: $DIRECT direct + $pooled pooled HTTP/2 = $((DIRECT + pooled)) ($in_total)" \
    test "$in_total" = $((DIRECT + pooled))

say ""
say "mTLS: who talked to whom, by identity (each sidecar's --cert-dir holds its SVID):"
RT=(--resolve "ratings:$PORT:10.96.0.23") # Service ratings, as cluster DNS would resolve it
mrow() { printf '  %-12s %-47s | %7s %14s %12s\n' "$@"; }
printf '  %-60s | %s\n' "" inbound:
mrow pod tls.identity cx_mtls tls_handshakes cx_plaintext
ids_ok=0 mtls=0 hs=0 plain=0
for p in "${PODS[@]}"; do
    s=$(sidecar_stats "$p")
    mrow "$p" "$(v tls.identity)" "$(v inbound.cx_mtls)" "$(v inbound.tls_handshakes)" \
        "$(v inbound.cx_plaintext)"
    [ "$(v tls.identity)" = "spiffe://$TD/ns/default/sa/${SA[$p]}" ] && ids_ok=$((ids_ok + 1))
    mtls=$((mtls + $(v inbound.cx_mtls))) hs=$((hs + $(v inbound.tls_handshakes)))
    plain=$((plain + $(v inbound.cx_plaintext)))
done
say "  mTLS: what went to a Service VIP (the pooled HTTP/2 connections above); plaintext: the"
say "  connections made straight to a pod IP (no VIP: passthrough, relayed as they came)"
say ""
step "identities spiffe://$TD/ns/default/sa/<sa>: $ids_ok of ${#PODS[@]}" \
    test "$ids_ok" = "${#PODS[@]}"
step "mTLS $mtls ($hs handshakes) = $pooled pooled; plaintext $plain = $DIRECT direct" \
    test "$mtls" = "$pooled" -a "$hs" = "$pooled" -a "$plain" = "$DIRECT"

# xfcc POD: the x-forwarded-client-cert that ratings' app received from POD's request
xfcc() {
    in_pod "$1" curl -sS --max-time 5 "${RT[@]}" "http://ratings:$PORT/headers" |
        "$RM_PY" -c 'import json, sys; print(json.load(sys.stdin).get("x-forwarded-client-cert", "(none)"))'
}
say ""
say "  the app learns its caller: ratings' sidecar sets x-forwarded-client-cert: By=<its own"
say "  ID>;URI=<the caller's> (GET /headers answers the app's request headers as JSON; shown:"
say "  that header's value)"
x1=$(xfcc productpage) x2=$(xfcc reviews-v2-1)
show "curl -s http://ratings:$PORT/headers      # in productpage" "$x1"
show "curl -s http://ratings:$PORT/headers      # in reviews-v2-1" "$x2"
say ""
step "ratings' app saw productpage's, then reviews' identity" \
    test "$x1" = "By=spiffe://$TD/ns/default/sa/ratings;URI=spiffe://$TD/ns/default/sa/productpage" \
    -a "$x2" = "By=spiffe://$TD/ns/default/sa/ratings;URI=spiffe://$TD/ns/default/sa/reviews"
# a client outside the mesh (no init, no sidecar) speaks plaintext: PERMISSIVE takes it
host outside 10.233.1.9 >/dev/null
pre=$(sidecar_stat reviews-v1-1 inbound.cx_plaintext)
code=$(in_pod outside curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://${IP[reviews-v1-1]}:$PORT/")
plain_counted() { [ "$(sidecar_stat reviews-v1-1 inbound.cx_plaintext)" = $((pre + 1)) ]; }
wait_until 2 plain_counted
step "PERMISSIVE: outside 10.233.1.9 -> reviews-v1-1 plaintext: $code" \
    test "$code" = 200 -a "$(sidecar_stat reviews-v1-1 inbound.cx_plaintext)" = $((pre + 1))

say ""
say "  policy: ringmeshctl apply -f deploy/examples/mtls.yaml; ringmesh-xds pushes it to every"
say "  sidecar: AuthorizationPolicy ratings-callers (ALLOW, Service ratings, principals"
say "  [cluster.local/ns/default/sa/productpage]); PeerAuthentication default, mtls STRICT"
declare -A UPD
for p in "${PODS[@]}"; do UPD[$p]=$(sidecar_stat "$p" xds.updates_accepted); done
reloaded() { # every sidecar took both pushes, every worker runs the new snapshot
    local p s
    for p in "${PODS[@]}"; do
        s=$(sidecar_stats "$p")
        [ "$(v xds.updates_accepted)" -ge $((UPD[$p] + 2)) ] &&
            [ "$(v config.oldest_worker_version)" = "$(v config.version)" ] || return 1
    done
}
reload_all() {
    ctl apply -f "$RINGMESH_ROOT/deploy/examples/mtls.yaml" || return 1
    wait_until 5 reloaded || { echo "not every sidecar took the new config"; return 1; }
}
step "applied: every sidecar ACKed it, every worker runs it" reload_all
say ""
heads_in() { # POD CURL_ARGS...: the response head and body, less Date and Server
    local p=$1; shift
    in_pod "$p" curl -si --max-time 5 "$@" 2>&1 | tr -d '\r' | grep -v -i '^date:\|^server:'
}
d0=$(sidecar_stat ratings inbound.rq_authz_denied)
a1=$(heads_in productpage "${RT[@]}" "http://ratings:$PORT/")
show "curl -si http://ratings:$PORT/      # in productpage" "$a1"
a2=$(heads_in reviews-v2-1 "${RT[@]}" "http://ratings:$PORT/")
show "curl -si http://ratings:$PORT/      # in reviews-v2-1" "$a2"
a3=$(in_pod outside curl -sS --max-time 5 "http://${IP[reviews-v1-1]}:$PORT/" 2>&1)
show "curl -sS http://${IP[reviews-v1-1]}:$PORT/      # in outside (10.233.1.9, not in the mesh)" "$a3"
a4=$(in_pod productpage curl -sS --max-time 5 "http://${IP[reviews-v1-1]}:$PORT/" 2>&1)
show "curl -sS http://${IP[reviews-v1-1]}:$PORT/      # in productpage: a pod IP, passthrough" "$a4"
a5=$(in_pod productpage curl -sS --max-time 5 "http://10.96.0.21:$PORT/" 2>&1)
show "curl -sS http://10.96.0.21:$PORT/      # in productpage: reviews-v1's VIP, mTLS" "$a5"
say ""
denied() { [ "$(sidecar_stat ratings inbound.rq_authz_denied)" = $((d0 + 1)) ]; }
refused() { [ "$(sidecar_stat reviews-v1-1 inbound.cx_plaintext_refused)" = 2 ]; }
wait_until 2 denied
wait_until 2 refused
step "productpage -> ratings: 200 from ratings" \
    grep -q '^HTTP/1.1 200 ' <<<"$a1"
rbac_ok() { [[ "$a2" == "HTTP/1.1 403 "* ]] && grep -q '^x-ringmesh-flags: RBAC$' <<<"$a2"; }
step "reviews-v2-1 -> ratings: 403 RBAC, ratings' rq_authz_denied $(sidecar_stat ratings inbound.rq_authz_denied)" \
    eval 'rbac_ok && denied'
step "STRICT: both plaintext connections refused, counted" \
    eval '! grep -q "^HTTP/" <<<"$a3$a4" && refused'
step "STRICT: productpage -> reviews-v1 VIP over mTLS still answers" test "$a5" = reviews-v1

# Golden metrics per Service, as `linkerd viz stat` shows them: ringmeshctl stat in the
# control plane's pod finds the sidecars through proxy-status (their pod IPs) and scrapes
# their :15090/stats/prometheus (ringmesh-init leaves 15090 out of the capture) twice, 2 s
# apart, while productpage calls reviews (the HTTPRoute) and ratings. Rows need the
# sidecars' per-request metrics (ringmesh_requests_total with destination_service ...);
# until a sidecar exports them the table is empty: printed, said so, not a failure.
say ""
say "golden metrics: ringmeshctl stat -o wide --interval 2 (in pod ringmesh-xds; every sidecar's"
say "  :15090/stats/prometheus on the pod IP proxy-status lists, scraped 2 s apart while"
say "  productpage calls reviews and ratings):"
stat_load() { # 4 s of GETs from productpage: 20 to reviews (HTTPRoute), 1 to ratings, again
    in_pod productpage bash -c 'end=$((SECONDS + 4)); while [ $SECONDS -lt $end ]; do
        curl -s --max-time 5 "$@" >/dev/null || sleep 0.1; done' _ "${HOSTS[@]}" "${RT[@]}" \
        "$URL/reviews/[1-20]" "http://ratings:$PORT/"
}
stat_load >/dev/null 2>&1 &
load_pid=$!
sleep 0.5
st=$(ctl stat -o wide --interval 2 2>"$RM_TMP/stat.err")
st_rc=$?
wait "$load_pid"
printf '%s\n' "$st" | sed 's/^/  /'
sed 's/^/  stderr: /' "$RM_TMP/stat.err"
st_rows=$(awk 'NR > 1' <<<"$st" | grep -c .)
if [ "$st_rc" = 0 ] && [ "$st_rows" -gt 0 ]; then
    step "ringmeshctl stat: $st_rows Service(s) with golden metrics" true
else
    say "  (no Service rows (exit $st_rc): the sidecars do not export per-request metrics with"
    say "   destination labels yet; not counted as a failure)"
fi

say ""
say "tear-down:"
for p in "${PODS[@]}"; do step "pod $p: sidecar SIGTERM, exits" sidecar_stop "$p" TERM 8; done
say ""
if [ "$FAILS" = 0 ]; then say "demo: all good"; else say "demo: $FAILS step(s) failed"; fi
[ "$FAILS" = 0 ]
