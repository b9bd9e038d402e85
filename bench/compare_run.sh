#!/usr/bin/env bash
# bench/compare_run.sh - ringmesh against no proxy, HAProxy and nghttpx as sidecar pairs, in one
# run on one machine (bench/run.sh compare; make bench; by hand, as root; never a test).
#
# Two netns pods on the tests/mesh bridge: a (the client: the load generator and a's proxy)
# and b (the origin: two one-thread haproxy origins, bench/haproxy-origin.cfg, answering
# every request with 1 KiB or 64 KiB, and b's proxy). Scenarios, all against the same
# origins, interleaved per repetition so that drift on the machine hits them alike:
#   direct        no proxy, no iptables: the client -> b's pod address, the origin's port
#   rm-uring      ringmesh-sidecar pair, --io uring, no certificates: the client's HTTP/1.1
#                 goes to Service VIP 10.96.0.70 (1 KiB) or .71 (64 KiB), appProtocol http,
#                 a's sidecar sends it over pooled HTTP/2 (h2c) to b's, which forwards
#                 HTTP/1.1 to the origin
#   rm-epoll      the same, --io epoll
#   rm-uring-mtls, rm-epoll-mtls   the same with --cert-dir (HTTP/2 over TLS 1.3 with
#                 client certificates, ChaCha20-Poly1305; certs from ringmeshctl ca)
#   rm-uring-mtls-nometrics   rm-uring-mtls with --no-metrics (per-request labeled metrics
#                 off); skipped, with a note in the report, while the sidecar lacks the flag
#   haproxy       HAProxy 2.6 pair as sidecars: bench/haproxy-sidecar-out.cfg in a,
#                 bench/haproxy-sidecar-in.cfg in b (HTTP/2 over TLS 1.3, mutual auth)
#   nghttpx       nghttpx pair (nghttp2-proxy): a's forwards HTTP/2 over TLS 1.3 with a client
#                 certificate to b's, which verifies it and forwards HTTP/1.1 to the origin
# Every proxy runs with one worker thread, no access log, pooled keep-alive upstream
# connections, as uid 1337 behind the same ringmesh-init rules (outbound capture in a,
# inbound capture in b), each pair on ports of its own and up for the whole run; switching
# scenario is one ringmesh-init rerun per pod. The peers' certificates (ECDSA P-256, one CA,
# DNS and SPIFFE URI SANs) are made with openssl; each peer checks the other's.
#
# Tests per scenario and repetition (BENCH_SIZES x BENCH_CONNS, HTTP/1.1 GET):
#   lat-SIZE-CONNS  open loop at BENCH_RATE (1000) req/s for BENCH_LAT_SECONDS: latency
#   max-SIZE-CONNS  closed loop (-r 0) for BENCH_MAX_SECONDS: max req/s
# each after BENCH_WARMUP seconds of the same load that is not counted. Per run: the load
# generator's JSON (rate, errors, latency percentiles, histogram); CPU of every proxy process
# over the measured interval (on-CPU ns of all threads, /proc/PID/task/*/schedstat, and
# utime+stime from /proc/PID/stat), read at the start and the end of the interval; busy % of
# each CPU; CPU used by processes outside the pods (a run with more than BENCH_OTHER_MAX % of
# a core is redone, up to 4 attempts). After the run: VmRSS and VmHWM of every proxy.
# Before the pods come up, bench/run.sh tls measures the mTLS handshakes/s (briefly: 2 s per
# test, one rep; BENCH_COMPARE_TLS=0 skips it and the report quotes the newest
# bench/results/*-tls.jsonl). With perf installed, one more closed-loop run per proxy pair
# (1 KiB, the largest BENCH_CONNS) under perf record gives the top symbols (BENCH_PERF=0 skips).
#
# CPUs: the load generator and a's proxy on CPU 0, the origins and b's proxy on CPU 1 (taskset),
# as bench/run.sh and http_run.sh; so a pod is "one core" shared by its app and its proxy.
#
# The load generator: bin/ringmesh-loadgen (open loop, coordinated-omission corrected); while
# it is not built, bench/loadgen_h2load.py (h2load underneath, not open loop: see that file),
# and the report says which ran. LOADGEN=PATH picks one.
#
# Writes bench/results/<date>-compare.md (tables, goals, machine, configurations),
# <date>-compare.jsonl (every raw run) and <date>-compare-*.png (gnuplot).
# Knobs: BENCH_REPS (3), BENCH_LAT_SECONDS (4), BENCH_MAX_SECONDS (3), BENCH_WARMUP (1),
# BENCH_RATE (1000), BENCH_SIZES ("1k 64k"), BENCH_CONNS ("16 64"), BENCH_LOADS ("lat max"),
# BENCH_SCENARIOS (all of the above), BENCH_OUT (results dir), BENCH_OTHER_MAX (10),
# BENCH_COMPARE_TLS (1), BENCH_PERF (1), LOADGEN.
# The defaults: per scenario and repetition 4 fixed-rate runs of 1 + 4 s and 4 closed-loop
# ones of 1 + 3 s, plus about 1.6 s of bookkeeping each (measured on this 2-CPU machine
# while it was busy) = 49 s; 7 scenarios (while the sidecar has no --no-metrics) x 3
# repetitions = 17 minutes, 8 scenarios 20 minutes, plus about a minute for set-up,
# tlsbench and perf; runs redone for load from outside add about 7 s each. Shorter:
# BENCH_REPS=1 BENCH_LAT_SECONDS=1 BENCH_MAX_SECONDS=1 BENCH_WARMUP=0.5 runs every test in
# under 4 minutes (a smoke run); BENCH_SCENARIOS, BENCH_SIZES, BENCH_CONNS, BENCH_LOADS cut it.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
RINGMESH_ROOT=$(cd "$HERE/.." && pwd)
: "${RINGMESH_BIN:=$RINGMESH_ROOT/bin}"
RINGMESH_BIN=$(realpath -m "$RINGMESH_BIN")
REPS=${BENCH_REPS:-3}
LAT_SECS=${BENCH_LAT_SECONDS:-4}
MAX_SECS=${BENCH_MAX_SECONDS:-3}
WARMUP=${BENCH_WARMUP:-1}
RATE=${BENCH_RATE:-1000}
read -r -a SIZES <<<"${BENCH_SIZES:-1k 64k}"
read -r -a CONNS <<<"${BENCH_CONNS:-16 64}"
read -r -a LOADS <<<"${BENCH_LOADS:-lat max}"
ALL_SCENARIOS="direct rm-uring rm-epoll rm-uring-mtls rm-epoll-mtls rm-uring-mtls-nometrics haproxy nghttpx"
read -r -a SCENARIOS <<<"${BENCH_SCENARIOS:-$ALL_SCENARIOS}"
OUT=${BENCH_OUT:-$HERE/results}
OTHER_MAX=${BENCH_OTHER_MAX:-10}
CPU_A=0
CPU_B=1
DATE=$(date +%F)
ORIGIN_1K=8080 ORIGIN_64K=8180 # HTTP/1.1 ports of the two origins (h2c and L4 ones unused)
VIP_1K=10.96.0.70
VIP_64K=10.96.0.71
HA_OUT=15401 HA_IN=15406
NGX_OUT=15501 NGX_IN=15506

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (netns pods, iptables): sudo bench/run.sh compare"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (pods a and b are pinned to CPUs $CPU_A and $CPU_B)"
for b in ringmesh-sidecar ringmesh-init ringmeshctl; do
    [ -x "$RINGMESH_BIN/$b" ] || die "$RINGMESH_BIN/$b missing: run make"
done
for c in taskset python3 curl haproxy openssl; do
    command -v $c >/dev/null || die "needs $c (make deps)"
done
for s in "${SCENARIOS[@]}"; do
    [[ " $ALL_SCENARIOS " == *" $s "* ]] || die "BENCH_SCENARIOS: unknown scenario '$s'"
done
for s in "${SIZES[@]}"; do case $s in 1k | 64k) ;; *) die "BENCH_SIZES: 1k or 64k, not '$s'" ;; esac; done
for l in "${LOADS[@]}"; do case $l in lat | max) ;; *) die "BENCH_LOADS: lat or max, not '$l'" ;; esac; done
if [ -z "${LOADGEN:-}" ]; then
    LOADGEN=$RINGMESH_BIN/ringmesh-loadgen
    [ -x "$LOADGEN" ] || LOADGEN=$HERE/loadgen_h2load.py
fi
[ -x "$LOADGEN" ] || die "LOADGEN=$LOADGEN is not executable"
[ "${LOADGEN##*/}" != loadgen_h2load.py ] || command -v h2load >/dev/null ||
    die "the stand-in load generator needs h2load (nghttp2-client)"
NOTES=() # lines for the report: what was skipped and why
has_scenario() { [[ " ${SCENARIOS[*]} " == *" $1 "* ]]; }
drop_scenario() { # NAME WHY
    local s keep=()
    for s in "${SCENARIOS[@]}"; do [ "$s" = "$1" ] || keep+=("$s"); done
    SCENARIOS=("${keep[@]}")
    NOTES+=("$1 not run: $2")
}
if has_scenario rm-uring-mtls-nometrics &&
    ! "$RINGMESH_BIN/ringmesh-sidecar" --help 2>&1 | grep -q -- --no-metrics; then
    drop_scenario rm-uring-mtls-nometrics "this ringmesh-sidecar has no --no-metrics flag yet"
fi
if has_scenario nghttpx && ! command -v nghttpx >/dev/null; then
    drop_scenario nghttpx "nghttpx is not installed (Debian package nghttp2-proxy)"
fi
if [ "$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)" != 0 ]; then
    for s in rm-uring rm-uring-mtls rm-uring-mtls-nometrics; do
        has_scenario $s && drop_scenario $s "io_uring is disabled here (kernel.io_uring_disabled)"
    done
fi

say() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

# ---- mTLS handshakes/s, before the pods (tlsbench pinned to CPU 0, nothing else running) ---
TLS_RAW=
if [ "${BENCH_COMPARE_TLS:-1}" != 0 ]; then
    TLS_OUT=$(mktemp -d /tmp/ringmesh-compare-tls.XXXXXX) || die "cannot make a temp dir"
    say "mTLS handshakes/s: bench/run.sh tls (2 s per test, 1 rep)"
    if BENCH_OUT=$TLS_OUT BENCH_REPS=1 BENCH_TLS_SECONDS=2 "$HERE/run.sh" tls >"$TLS_OUT/log" 2>&1; then
        TLS_RAW=$(ls "$TLS_OUT"/*.jsonl 2>/dev/null | head -n 1)
    else
        NOTES+=("bench/run.sh tls failed in this run; its log ends: $(tail -n 1 "$TLS_OUT/log")")
    fi
fi
if [ -z "$TLS_RAW" ]; then
    for f in "$HERE"/results/*-tls.jsonl; do [ -f "$f" ] && TLS_RAW=$f; done # the newest date
    [ -z "$TLS_RAW" ] || NOTES+=("handshakes/s quoted from ${TLS_RAW##*/} (not measured in this run)")
fi

# shellcheck source=../tests/mesh/lib.sh
source "$RINGMESH_ROOT/tests/mesh/lib.sh"
# shellcheck disable=SC2034 # lib.sh's in_pod bounds each client by it
RM_CMD_TIMEOUT=$(awk -v w="$WARMUP" -v l="$LAT_SECS" -v m="$MAX_SECS" \
    'BEGIN { printf "%d", w + (l > m ? l : m) + 30 }')
mesh_up
trap 'rc=$?; [ -z "${TLS_OUT:-}" ] || rm -rf "$TLS_OUT"; (exit $rc); mesh_down' EXIT
# Run private copies: other people's "make" in this tree must not swap binaries mid-run.
mkdir -p "$RM_TMP/bin" && chmod 755 "$RM_TMP/bin" &&
    cp "$RINGMESH_BIN/ringmesh-sidecar" "$RINGMESH_BIN/ringmesh-init" "$RINGMESH_BIN/ringmeshctl" \
        "$LOADGEN" "$RM_TMP/bin/" || die "cannot copy the binaries to $RM_TMP/bin"
RINGMESH_BIN=$RM_TMP/bin
LOADGEN_NAME=${LOADGEN##*/}
LOADGEN=$RM_TMP/bin/$LOADGEN_NAME

# ---- the pods, the origins, the config --------------------------------------------------
pod a 10.233.1.2
pod b 10.233.1.3
B=$(pod_ip b)
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0 # the client reaches VIPs through its route
mkdir -p "$OUT"
RAW=$OUT/$DATE-compare.jsonl
MD=$OUT/$DATE-compare.md
: >"$RAW"

CFG=$RM_TMP/mesh.yaml
svc() { # NAME VIP PORT
    printf 'apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\n' "$1"
    printf 'spec:\n  clusterIP: %s\n  ports:\n' "$2"
    printf '  - {name: http, port: 80, targetPort: %s, appProtocol: http}\n---\n' "$3"
    printf 'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n'
    printf 'metadata: {name: %s-1, namespace: default, labels: {kubernetes.io/service-name: %s}}\n' "$1" "$1"
    printf 'addressType: IPv4\nports: [{name: http, port: %s}]\n' "$3"
    printf 'endpoints:\n- {addresses: [%s]}\n' "$B"
}
{ svc origin "$VIP_1K" $ORIGIN_1K; printf -- '---\n'; svc origin-64k "$VIP_64K" $ORIGIN_64K; } >"$CFG"
chmod 644 "$CFG"

# ringmesh's mTLS credentials (ringmeshctl ca), as http_run.sh: default/client in a, default/origin in b
CERTS=$RM_TMP/certs
mkdir -p "$CERTS" && chmod 755 "$CERTS"
{ "$RINGMESH_BIN/ringmeshctl" ca init --dir "$CERTS/root" &&
    "$RINGMESH_BIN/ringmeshctl" ca issue --dir "$CERTS/root" --ns default --sa client --out "$CERTS/a" &&
    "$RINGMESH_BIN/ringmeshctl" ca issue --dir "$CERTS/root" --ns default --sa origin --out "$CERTS/b" &&
    chown -R "$RM_PROXY_UID:$RM_PROXY_UID" "$CERTS/a" "$CERTS/b" &&
    chmod 700 "$CERTS/a" "$CERTS/b"; } >"$RM_TMP/ringmeshctl.log" 2>&1 ||
    { cat "$RM_TMP/ringmeshctl.log"; die "cannot make the mTLS credentials"; }
# the peers' credentials (openssl): one P-256 CA; a = client, b = origin.default.svc; both
# with the SPIFFE URI SAN ringmesh's carry; PEM bundles for haproxy, key + cert for nghttpx
PEER_CERTS=$RM_TMP/peer-certs
mkdir -p "$PEER_CERTS" && (
    cd "$PEER_CERTS" || exit 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -keyout ca.key -out ca.pem -subj /CN=bench-peer-ca \
        -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign || exit 1
    for w in a:client b:origin; do
        n=${w%%:*} sa=${w#*:}
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key \
            -out $n.csr -subj "/CN=$sa.default.svc" || exit 1
        printf 'subjectAltName=DNS:%s.default.svc,URI:spiffe://cluster.local/ns/default/sa/%s\nextendedKeyUsage=serverAuth,clientAuth\n' \
            "$sa" "$sa" >$n.ext
        openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile $n.ext -out $n.crt || exit 1
        cat $n.crt $n.key >$n.pem
    done
    chown -R "$RM_PROXY_UID:$RM_PROXY_UID" . && chmod 700 .
) >"$RM_TMP/openssl.log" 2>&1 || { cat "$RM_TMP/openssl.log"; die "cannot make the peers' certificates"; }

# the origins: 1 KiB and 64 KiB, one haproxy thread each on CPU 1 (as http_run.sh)
head -c 1024 /dev/zero | tr '\0' x >"$RM_TMP/body-1k"
head -c 65536 /dev/zero | tr '\0' y >"$RM_TMP/body-64k"
printf 'global\n    tune.bufsize 131072\n' >"$RM_TMP/haproxy-64k.cfg"
cp "$HERE/haproxy-origin.cfg" "$RM_TMP/" && chmod 644 "$RM_TMP"/body-* "$RM_TMP"/haproxy-*.cfg
pod_app b env ORIGIN_H1=$ORIGIN_1K ORIGIN_H2=8081 ORIGIN_H1_L4=8090 ORIGIN_H2_L4=8091 \
    ORIGIN_BODY="$RM_TMP/body-1k" taskset -c $CPU_B haproxy -db -f "$RM_TMP/haproxy-origin.cfg"
ORIGIN_PIDS=("$RM_APP_PID")
pod_app b env ORIGIN_H1=$ORIGIN_64K ORIGIN_H2=8181 ORIGIN_H1_L4=8190 ORIGIN_H2_L4=8191 \
    ORIGIN_BODY="$RM_TMP/body-64k" taskset -c $CPU_B \
    haproxy -db -f "$RM_TMP/haproxy-64k.cfg" -f "$RM_TMP/haproxy-origin.cfg"
ORIGIN_PIDS+=("$RM_APP_PID")
for p in $ORIGIN_1K $ORIGIN_64K; do wait_port b $p || die "the origin on :$p did not start"; done
for w in 1k:1024:$ORIGIN_1K 64k:65536:$ORIGIN_64K; do
    IFS=: read -r n len port <<<"$w"
    got=$(in_pod a curl -s --max-time 5 "http://$B:$port/" | wc -c)
    [ "$got" = "$len" ] || die "the $n origin answered $got bytes, want $len"
done

# ---- the proxies ------------------------------------------------------------------------
# Each proxy pair: PX_PIDS[POD.SCENARIO] is the list of its processes (nghttpx: master and
# worker), PX_ADMIN the ringmesh admin port; all start as uid 1337 pinned to the pod's CPU.
declare -A PX_PIDS PX_ADMIN PX_LOG
as_proxy() { # POD CPU LOG cmd...: start cmd in POD as uid 1337 on CPU; sets PX_PID
    local ns=${RM_NS[$1]} cpu=$2 log=$3; shift 3
    (
        ulimit -n 65536 2>/dev/null
        exec ip netns exec "$ns" taskset -c "$cpu" setpriv --reuid $RM_PROXY_UID \
            --regid $RM_PROXY_UID --clear-groups -- "$@"
    ) >>"$log" 2>&1 &
    PX_PID=$!
    RM_PIDS+=("$PX_PID")
}
pod_cpu() { [ "$1" = a ] && echo $CPU_A || echo $CPU_B; }
# scenario -> ports: out in [admin stats health]
sc_ports() {
    case $1 in
    rm-uring) echo 15001 15006 15000 15090 15021 ;;
    rm-epoll) echo 15101 15106 15100 15190 15121 ;;
    rm-uring-mtls) echo 15201 15206 15200 15290 15221 ;;
    rm-epoll-mtls) echo 15301 15306 15300 15390 15321 ;;
    rm-uring-mtls-nometrics) echo 15601 15606 15600 15690 15621 ;;
    haproxy) echo $HA_OUT $HA_IN ;;
    nghttpx) echo $NGX_OUT $NGX_IN ;;
    esac
}
start_ringmesh() { # POD SCENARIO
    local p=$1 sc=$2 ports io flags=() log code i
    read -r -a ports <<<"$(sc_ports "$sc")"
    io=uring
    [[ $sc == *epoll* ]] && io=epoll
    [[ $sc == *mtls* ]] && flags+=(--cert-dir "$CERTS/$p")
    [[ $sc == *nometrics* ]] && flags+=(--no-metrics)
    log=$RM_TMP/$p.$sc.log
    # --max-request-rate 0: the per-connection limit (50000/s) would cap the one pooled HTTP/2
    # connection between the sidecars; the peers have no such limit
    as_proxy "$p" "$(pod_cpu "$p")" "$log" "$RINGMESH_BIN/ringmesh-sidecar" --io $io \
        --concurrency 1 --max-request-rate 0 --outbound-port "${ports[0]}" \
        --inbound-port "${ports[1]}" --admin-port "${ports[2]}" --stats-port "${ports[3]}" \
        --health-port "${ports[4]}" --config "$CFG" --pod-name "origin-$p" \
        --pod-ip "$(pod_ip "$p")" "${flags[@]}"
    PX_PIDS[$p.$sc]=$PX_PID PX_ADMIN[$p.$sc]=${ports[2]} PX_LOG[$p.$sc]=$log
    for ((i = 0; i < 100; i++)); do
        kill -0 "$PX_PID" 2>/dev/null || { tail -n 20 "$log" >&2; die "sidecar $p/$sc exited"; }
        code=$(ip netns exec "${RM_NS[$p]}" curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
            "http://127.0.0.1:${ports[2]}/ready" 2>/dev/null)
        [ "$code" = 200 ] && break
        sleep 0.1
    done
    [ "$code" = 200 ] || die "sidecar $p/$sc not ready after 10 s"
    got=$(rm_stat "$p" "$sc" server.io_backend)
    [ "$got" = "$([ $io = uring ] && echo io_uring || echo epoll)" ] ||
        die "sidecar $p/$sc asked for --io $io runs '$got'"
}
rm_stats() { ip netns exec "${RM_NS[$1]}" curl -s --max-time 2 "http://127.0.0.1:${PX_ADMIN[$1.$2]}/stats"; }
rm_stat() { rm_stats "$1" "$2" | awk -F': *' -v k="$3" '$1 == k { print $2; exit }'; }
start_haproxy() { # POD
    local p=$1 cfg log=$RM_TMP/$1.haproxy.log
    cfg=$([ "$p" = a ] && echo haproxy-sidecar-out.cfg || echo haproxy-sidecar-in.cfg)
    cp "$HERE/$cfg" "$RM_TMP/$cfg" && chmod 644 "$RM_TMP/$cfg"
    local reason=()
    [ "$LOADGEN_NAME" != loadgen_h2load.py ] || reason=(HA_REASON_OK=1) # see the .cfg
    as_proxy "$p" "$(pod_cpu "$p")" "$log" env "${reason[@]}" HA_OUT_PORT=$HA_OUT HA_IN_PORT=$HA_IN \
        VIP_64K=$VIP_64K PEER_IP="$B" ORIGIN_IP=127.0.0.1 ORIGIN_1K=$ORIGIN_1K ORIGIN_64K=$ORIGIN_64K \
        PEER_CERTS="$PEER_CERTS" haproxy -db -f "$RM_TMP/$cfg"
    PX_PIDS[$p.haproxy]=$PX_PID PX_LOG[$p.haproxy]=$log
    wait_port "$p" "$([ "$p" = a ] && echo $HA_OUT || echo $HA_IN)" ||
        { cat "$log" >&2; die "haproxy in $p did not start"; }
}
start_nghttpx() { # POD
    local p=$1 log=$RM_TMP/$1.nghttpx.log args kid
    # both: one worker thread in one worker process (-n1 --single-thread), no access log (none
    # unless --accesslog-* is given), errors only, no Via, no config file, keep-alive 60 s
    args=(--conf /dev/null -n1 --single-thread --log-level=ERROR --no-via --no-ocsp
        --frontend-keep-alive-timeout=60s --backend-keep-alive-timeout=60s)
    if [ "$p" = a ]; then
        # HTTP/1.1 from the client; HTTP/2 over TLS with a client certificate to b, pooled
        args+=(-f "*,$NGX_OUT;no-tls"
            -b "$B,$ORIGIN_1K;/;tls;proto=h2;sni=origin.default.svc"
            -b "$B,$ORIGIN_64K;$VIP_64K;tls;proto=h2;sni=origin.default.svc"
            --cacert "$PEER_CERTS/ca.pem" --client-private-key-file "$PEER_CERTS/a.key"
            --client-cert-file "$PEER_CERTS/a.crt")
    else
        # TLS with a required client certificate, ALPN h2; HTTP/1.1 keep-alive to the origin
        args+=(-f "*,$NGX_IN" --verify-client --verify-client-cacert "$PEER_CERTS/ca.pem"
            -b "127.0.0.1,$ORIGIN_1K;/" -b "127.0.0.1,$ORIGIN_64K;$VIP_64K"
            "$PEER_CERTS/b.key" "$PEER_CERTS/b.crt")
    fi
    as_proxy "$p" "$(pod_cpu "$p")" "$log" nghttpx "${args[@]}"
    wait_port "$p" "$([ "$p" = a ] && echo $NGX_OUT || echo $NGX_IN)" ||
        { cat "$log" >&2; die "nghttpx in $p did not start"; }
    kid=$(pgrep -P "$PX_PID" | xargs)
    PX_PIDS[$p.nghttpx]="$PX_PID $kid" PX_LOG[$p.nghttpx]=$log
}
pair_up() {
    local sc=$1 p
    for p in a b; do
        case $sc in
        rm-*) start_ringmesh $p "$sc" ;;
        haproxy) start_haproxy $p ;;
        nghttpx) start_nghttpx $p ;;
        esac
        say "$sc in pod $p: pid ${PX_PIDS[$p.$sc]}(CPU $(pod_cpu $p))"
    done
}
use_scenario() {
    local p ports
    [ "$1" = direct ] && { pod_init_cleanup a && pod_init_cleanup b; return; }
    read -r -a ports <<<"$(sc_ports "$1")"
    for p in a b; do pod_init $p -p "${ports[0]}" -z "${ports[1]}" || return 1; done
}
pair_alive() { local p pid; for p in a b; do for pid in ${PX_PIDS[$p.$1]}; do
    kill -0 "$pid" 2>/dev/null || { say "$1 in $p (pid $pid) is gone; its log ends:"
        tail -n 5 "${PX_LOG[$p.$1]}" >&2; return 1; }; done; done; }

for sc in "${SCENARIOS[@]}"; do [ "$sc" = direct ] || pair_up "$sc"; done
# one request through each pair for each origin before anything is measured
for sc in "${SCENARIOS[@]}"; do
    use_scenario "$sc" || die "ringmesh-init for $sc failed (see $RM_TMP/*.init.log)"
    for w in 1k:1024:$VIP_1K:$ORIGIN_1K 64k:65536:$VIP_64K:$ORIGIN_64K; do
        IFS=: read -r n len vip port <<<"$w"
        url=http://$vip/
        [ "$sc" = direct ] && url=http://$B:$port/
        got=$(in_pod a curl -s --max-time 5 -o /dev/null -w '%{http_code} %{size_download}' \
            -H "Host: $vip" "$url")
        [ "$got" = "200 $len" ] || { in_pod a curl -sv --max-time 5 -H "Host: $vip" "$url" 2>&1 | tail -n 12 >&2
            for f in "$RM_TMP"/?."$sc".log; do [ -f "$f" ] && tail -n 5 "$f" >&2; done
            die "$sc: the $n origin answered '$got' (status, bytes), want '200 $len'"; }
    done
done

# ---- measuring --------------------------------------------------------------------------
# on-CPU ns (schedstat, all threads) and utime+stime ticks of a list of pids: "ns ticks"
px_cpu() {
    local pid ns=0 ticks=0 t a b
    for pid in "$@"; do
        for t in /proc/"$pid"/task/*/schedstat; do
            read -r a _ <"$t" 2>/dev/null && ns=$((ns + a))
        done
        read -r a <"/proc/$pid/stat" 2>/dev/null || continue
        a=${a##*) }
        read -r -a b <<<"$a"
        ticks=$((ticks + b[11] + b[12]))
    done
    echo "$ns $ticks"
}
px_mem() { # pids -> "rss_kb hwm_kb" summed
    local pid rss=0 hwm=0 k v _
    for pid in "$@"; do
        while read -r k v _; do
            case $k in VmRSS:) rss=$((rss + v)) ;; VmHWM:) hwm=$((hwm + v)) ;; esac
        done <"/proc/$pid/status"
    done
    echo "$rss $hwm"
}
cpu_line() { awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= 9; i++) t += $i;
    print t - $5 - $6 - $9, $9, t }' /proc/stat; }
CLK_TCK=$(getconf CLK_TCK)
NETNS_LIST=$(IFS=,; echo "${RM_NETNS[*]}")

# measure_once SCENARIO TEST REP ATTEMPT: one load generator run; prints the raw record
measure_once() {
    local sc=$1 test=$2 rep=$3 attempt=$4 load size conns secs rate url host port T=$RM_TMP/run
    local lpid pa=() pb=() a0 a1 b0 b1 ca0 ca1 cb0 cb1 fticks rc w0 w1
    IFS=- read -r load size conns <<<"$test"
    secs=$([ "$load" = lat ] && echo "$LAT_SECS" || echo "$MAX_SECS")
    rate=$([ "$load" = lat ] && echo "$RATE" || echo 0)
    host=$([ "$size" = 1k ] && echo $VIP_1K || echo $VIP_64K)
    port=$([ "$size" = 1k ] && echo $ORIGIN_1K || echo $ORIGIN_64K)
    url=http://$host/
    [ "$sc" = direct ] && url=http://$B:$port/
    if [ "$sc" != direct ]; then
        read -r -a pa <<<"${PX_PIDS[a.$sc]}"
        read -r -a pb <<<"${PX_PIDS[b.$sc]}"
    fi
    w0=$(date +%s%N)
    python3 "$HERE/l4_report.py" --snap "$NETNS_LIST" >"$T.snap0"
    in_pod a taskset -c $CPU_A "$LOADGEN" -r "$rate" -c "$conns" -d "$secs" --warmup "$WARMUP" \
        -t 1 --json --quiet "$url" >"$T.json" 2>"$T.err" &
    lpid=$!
    # the measured interval: the proxies' CPU and each core's busy time from the end of the
    # warm-up to the end of the run (the load generator's own interval, give or take the few
    # ms it takes to start in the pod)
    sleep "$WARMUP"
    a0=$(px_cpu "${pa[@]}") b0=$(px_cpu "${pb[@]}")
    read -r -a ca0 < <(cpu_line $CPU_A)
    read -r -a cb0 < <(cpu_line $CPU_B)
    sleep "$secs"
    a1=$(px_cpu "${pa[@]}") b1=$(px_cpu "${pb[@]}")
    read -r -a ca1 < <(cpu_line $CPU_A)
    read -r -a cb1 < <(cpu_line $CPU_B)
    wait "$lpid"
    rc=$?
    python3 "$HERE/l4_report.py" --snap "$NETNS_LIST" >"$T.snap1"
    w1=$(date +%s%N)
    fticks=$(python3 "$HERE/l4_report.py" --foreign "$T.snap0" "$T.snap1")
    if [ "$rc" != 0 ] || ! grep -q '^{' "$T.json"; then
        echo "bench: $sc $test: the load generator failed (exit $rc):" >&2
        tail -n 20 "$T.err" "$T.json" | sed 's/^/    /' >&2
        return 1
    fi
    python3 "$HERE/compare_report.py" --record --scenario "$sc" --test "$test" --rep "$rep" \
        --attempt "$attempt" --seconds "$secs" --foreign-ticks "${fticks:-0}" \
        --foreign-window-ms $(((w1 - w0) / 1000000)) \
        --clk-tck "$CLK_TCK" --cpu-a0 "$a0" --cpu-a1 "$a1" --cpu-b0 "$b0" --cpu-b1 "$b1" \
        --core-a "$((ca1[0] - ca0[0])) $((ca1[1] - ca0[1])) $((ca1[2] - ca0[2]))" \
        --core-b "$((cb1[0] - cb0[0])) $((cb1[1] - cb0[1])) $((cb1[2] - cb0[2]))" \
        --loadgen "$LOADGEN_NAME" --url "$url" --json "$T.json"
}
# measure SCENARIO TEST REP: a run during which processes outside the pods used more than
# OTHER_MAX % of one core, or a proxy died, is done again (4 attempts; the last is kept
# either way and the report shows the load). A proxy that died is restarted.
measure() {
    local sc=$1 test=$2 rep=$3 attempt rec other
    for attempt in 1 2 3 4; do
        for pid in "${ORIGIN_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "an origin is gone"; done
        rec=$(measure_once "$sc" "$test" "$rep" "$attempt") || die "$sc $test: no result"
        if [ "$sc" != direct ] && ! pair_alive "$sc"; then
            RESTARTS=$((RESTARTS + 1))
            for p in a b; do for pid in ${PX_PIDS[$p.$sc]}; do kill -KILL "$pid" 2>/dev/null; done; done
            pair_up "$sc"
            [ "$attempt" = 4 ] && die "$sc: a proxy died in 4 attempts"
            continue
        fi
        # CPU of processes outside the pods, in % of one core over the run's wall time
        other=$(sed 's/.*"foreign_pct":\([0-9.]*\).*/\1/' <<<"$rec")
        if [ "$attempt" = 4 ] || [ "$(awk -v o="$other" -v m="$OTHER_MAX" 'BEGIN { print o <= m }')" = 1 ]; then
            break
        fi
        REDONE=$((REDONE + 1))
        say "rep $rep $sc $test: other processes used ${other}% of a core; again"
        sleep 2
    done
    echo "$rec" >>"$RAW"
    DONE=$((DONE + 1))
    python3 "$HERE/compare_report.py" --progress "$rec" --done "$DONE" --total "$TOTAL" \
        --started "$STARTED" >&2
}

TESTS=()
for load in "${LOADS[@]}"; do for size in "${SIZES[@]}"; do for c in "${CONNS[@]}"; do
    TESTS+=("$load-$size-$c"); done; done; done
TOTAL=$((REPS * ${#SCENARIOS[@]} * ${#TESTS[@]}))
DONE=0 RESTARTS=0 REDONE=0 STARTED=$(date +%s)
say "pods a=$(pod_ip a) (CPU $CPU_A) b=$B (CPU $CPU_B); load generator $LOADGEN_NAME;" \
    "scenarios: ${SCENARIOS[*]}; tests: ${TESTS[*]}; $REPS reps, $TOTAL runs; raw -> $RAW"
for ((rep = 1; rep <= REPS; rep++)); do
    for sc in "${SCENARIOS[@]}"; do
        use_scenario "$sc" || die "ringmesh-init for $sc failed (see $RM_TMP/*.init.log)"
        for test in "${TESTS[@]}"; do measure "$sc" "$test" "$rep"; done
    done
done

# perf: one more closed-loop run per proxy pair, each proxy recorded on its own (self time)
PERF_DIR=$OUT/$DATE-compare-perf
rm -rf "$PERF_DIR"
if [ "${BENCH_PERF:-1}" != 0 ] && command -v perf >/dev/null; then
    c=${CONNS[-1]}
    mkdir -p "$PERF_DIR"
    for sc in "${SCENARIOS[@]}"; do
        [ "$sc" = direct ] && continue
        use_scenario "$sc" || die "ringmesh-init for $sc failed"
        say "perf record: $sc, max-1k-$c"
        perf_pids=()
        for p in a b; do
            perf record -q -F 999 -p "$(tr ' ' , <<<"${PX_PIDS[$p.$sc]}")" \
                -o "$RM_TMP/perf.$sc.$p.data" -- sleep "$(awk -v w="$WARMUP" -v d="$MAX_SECS" \
                'BEGIN { print w + d }')" >/dev/null 2>"$RM_TMP/perf.$sc.$p.err" &
            perf_pids+=($!)
        done
        in_pod a taskset -c $CPU_A "$LOADGEN" -r 0 -c "$c" -d "$MAX_SECS" --warmup "$WARMUP" -t 1 \
            --json --quiet "http://$VIP_1K/" >/dev/null 2>&1
        wait "${perf_pids[@]}"
        for p in a b; do
            perf report -q -i "$RM_TMP/perf.$sc.$p.data" --no-children --sort dso --stdio \
                --percent-limit 1 2>/dev/null | grep -v '^$' | head -n 8 >"$PERF_DIR/$sc.$p.dso.txt"
            perf report -q -i "$RM_TMP/perf.$sc.$p.data" --no-children --sort dso,sym --stdio \
                --percent-limit 0.5 2>/dev/null | grep -v '^$' | head -n 30 >"$PERF_DIR/$sc.$p.txt"
        done
    done
fi
use_scenario direct

# after the run: memory of every proxy (processes summed: nghttpx's master and worker)
{
    printf '{"after":{"restarts":%s,"redone":%s,"loadgen":"%s","notes":%s,"tls_raw":"%s","proxies":{' \
        "$RESTARTS" "$REDONE" "$LOADGEN_NAME" \
        "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "${NOTES[@]}")" "${TLS_RAW:-}"
    sep=
    for sc in "${SCENARIOS[@]}"; do
        [ "$sc" = direct ] && continue
        for p in a b; do
            read -r rss hwm <<<"$(px_mem ${PX_PIDS[$p.$sc]})"
            printf '%s"%s.%s":{"rss_kb":%s,"hwm_kb":%s,"procs":%s}' "$sep" "$p" "$sc" "$rss" "$hwm" \
                "$(wc -w <<<"${PX_PIDS[$p.$sc]}")"
            sep=,
        done
    done
    printf '}}}\n'
} >>"$RAW"

python3 "$HERE/compare_report.py" --raw "$RAW" --out "$MD" --perf-dir "$PERF_DIR" \
    --cpu-a-id $CPU_A --cpu-b-id $CPU_B --other-max "$OTHER_MAX" || die "report failed"
say "wrote $MD, $RAW and the plots next to them ($(($(date +%s) - STARTED)) s of runs)"
