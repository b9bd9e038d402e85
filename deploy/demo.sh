#!/usr/bin/env bash
# deploy/demo.sh - `make demo`: a five-pod mesh on this machine, with real traffic.
#
# Each "pod" is a network namespace on a private bridge (itself in its own namespace, so the
# host's network is never touched). In each pod ringmesh-init writes the iptables rules,
# ringmesh-sidecar runs as uid 1337, and an HTTP app (tests/tools/httpapp.py, which answers
# its own name) runs as uid 1000. curl in one pod talks to another pod's app; both sidecars
# carry the connection. Then the Service "reviews" is routed by an HTTPRoute
# (deploy/examples/canary.yaml): a header route and a 90/10 canary split between its two
# versions. At the end the demo prints what every sidecar counted, then tears everything
# down. Needs root. Exits non-zero if any step fails. DEMO_IO=uring|epoll picks the
# sidecars' I/O backend (default: the sidecar's own choice, --io auto).
set -u
if [ "$(id -u)" != 0 ]; then
    echo "demo: needs root (network namespaces and iptables)" >&2
    exit 1
fi
RINGMESH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${RINGMESH_BIN:=$RINGMESH_ROOT/bin}"
export RINGMESH_ROOT RINGMESH_BIN
source "$RINGMESH_ROOT/tests/mesh/lib.sh"
for b in ringmesh-init ringmesh-sidecar; do
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
PORT=9080
BLOB=$((4 << 20))
blob_sha=$("$RM_PY" "$RM_TOOLS/httpapp.py" --bytes-sha "$BLOB")

# Every sidecar gets the same config: the Services reviews (VIP 10.96.0.20, routed by the
# HTTPRoute), reviews-v1 (10.96.0.21) and reviews-v2 (10.96.0.22) from
# deploy/examples/canary.yaml, and the EndpointSlices naming this demo's pods.
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
    slice reviews reviews-v1-1 reviews-v1-2 reviews-v2-1
    slice reviews-v1 reviews-v1-1 reviews-v1-2
    slice reviews-v2 reviews-v2-1
} >"$MESH"
chmod 644 "$MESH"
declare -A APPLOG

say "ringmesh demo: ${#PODS[@]} pods on a private bridge, sidecars as uid 1337, apps as uid $RM_APP_UID"
say "every sidecar: --io ${DEMO_IO:-auto} --config mesh.yaml (deploy/examples/canary.yaml + EndpointSlices)"
say ""
say "bring-up:"
for p in "${PODS[@]}"; do
    pod "$p" "${IP[$p]}" >/dev/null
    ip -n "${RM_NS[$p]}" route add 10.96.0.0/16 dev eth0 # the Service network
    step "pod $p ${IP[$p]}: ringmesh-init (iptables)" pod_init "$p"
    # productpage, the client, runs one worker so that round robin is exact in the demo
    extra=()
    [ "$p" = productpage ] && extra=(--concurrency 1)
    step "pod $p: ringmesh-sidecar ready" pod_sidecar "$p" \
        --io "${DEMO_IO:-auto}" --config "$MESH" "${extra[@]}"
    pod_app "$p" "$RM_PY" "$RM_TOOLS/httpapp.py" "$PORT" --name "${APP[$p]}"
    APPLOG[$p]=$RM_APP_LOG
    step "pod $p: app httpapp.py :$PORT --name ${APP[$p]}" wait_port "$p" "$PORT"
done
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
v() { awk -F': *' -v k="$1" '$1 == k { print $2; exit }' <<<"$s"; }
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
say "tear-down:"
for p in "${PODS[@]}"; do step "pod $p: sidecar SIGTERM, exits" sidecar_stop "$p" TERM 8; done
say ""
if [ "$FAILS" = 0 ]; then say "demo: all good"; else say "demo: $FAILS step(s) failed"; fi
[ "$FAILS" = 0 ]
