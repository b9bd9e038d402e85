#!/usr/bin/env bash
# ringmesh-loadgen against real servers on loopback: a one-thread haproxy with
# bench/haproxy-origin.cfg (HTTP/1.1 and h2c, and the same over TLS with a certificate made
# here by openssl, client certificates required on one port) and tests/tools/lgorigin.py
# (non-2xx statuses, chunked bodies, a server that stalls once). Checks the open loop's exact
# request counts (it sends on schedule: rate x duration, whatever the latency), the --json
# fields, HTTP/2 with -m 10, POSTs (200 kB ones answered early), TLS (HTTP/1.1, h2 by ALPN,
# mTLS, two threads, s_server -www), that a one-second stall at 100 req/s puts the corrected
# p99 near a second (and the closed loop's below it), that non-2xx statuses and chunked
# bodies are handled, that a refused connection is an error and not a hang, and that bad
# flags are refused clearly.
# No assertions on speed.
source "$(dirname "$0")/lib.sh"
integ_ports
LG=$RINGMESH_BIN/ringmesh-loadgen
[ -x "$LG" ] || { not_ok "$LG missing: run make"; tap_done; exit 1; }
command -v haproxy >/dev/null || { skip "haproxy not installed"; tap_done; exit 0; }
H1=$P0 H1_L4=$P1 H2=$P2 H2_L4=$P3 TLS=$P4 MTLS=$P5 SLOW=$P6 SLOW2=$P7 ORIG=$P8 DEAD=$P9 SLOW3=$P10

# the origin: 1 KiB answers; TLS listeners in front of the same answer (ALPN h2 or http/1.1)
head -c 1024 /dev/zero | tr '\0' x >"$IT_TMP/body"
C=$IT_TMP/certs
mkdir -p "$C"
{
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=test-ca -keyout "$C/ca.key" -out "$C/ca.pem" &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
            -keyout "$C/srv.key" -out "$C/srv.csr" &&
        printf 'subjectAltName=DNS:localhost\n' >"$C/srv.ext" &&
        openssl x509 -req -in "$C/srv.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -CAcreateserial \
            -days 2 -extfile "$C/srv.ext" -out "$C/srv.pem" &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=client \
            -keyout "$C/cli.key" -out "$C/cli.csr" &&
        openssl x509 -req -in "$C/cli.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -CAcreateserial \
            -days 2 -out "$C/cli.pem" &&
        cat "$C/srv.pem" "$C/srv.key" >"$C/srv-full.pem"
} >"$IT_TMP/openssl.log" 2>&1 || { not_ok "openssl could not make the test certificates"; tap_done; exit 1; }
cat >"$IT_TMP/tls.cfg" <<CFG
frontend tls
    bind 127.0.0.1:$TLS ssl crt $C/srv-full.pem alpn h2,http/1.1
    bind 127.0.0.1:$MTLS ssl crt $C/srv-full.pem alpn h2,http/1.1 ca-file $C/ca.pem verify required
    http-request return status 200 content-type text/plain file "$IT_TMP/body"
CFG
bg origin env ORIGIN_H1=$H1 ORIGIN_H1_L4=$H1_L4 ORIGIN_H2=$H2 ORIGIN_H2_L4=$H2_L4 \
    ORIGIN_BODY="$IT_TMP/body" haproxy -db -f "$RINGMESH_ROOT/bench/haproxy-origin.cfg" -f "$IT_TMP/tls.cfg"
up() { ss -ltnH "sport = :$1" | grep -q .; }
check "haproxy origin listening (h1, h2c, TLS, mTLS)" wait_until 10 \
    bash -c "$(declare -f up); up $H1 && up $H2 && up $TLS && up $MTLS"
bg lgorigin "$PY" "$RINGMESH_ROOT/tests/tools/lgorigin.py" "$ORIG"
check "lgorigin listening" wait_until 10 up "$ORIG"

# jget FILE EXPR: a python expression over the JSON object d
jget() { "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null; }
# run NAME args...: ringmesh-loadgen --json --quiet; its JSON in $IT_TMP/NAME.json, rc in RC
run() {
    local name=$1; shift
    timeout 60 "$LG" --json --quiet "$@" >"$IT_TMP/$name.json" 2>"$IT_TMP/$name.log"
    RC=$?
}
# expect NAME DESC EXPR: a check that the python expression over d is true
expect() {
    local got
    got=$(jget "$IT_TMP/$1.json" "$3")
    if [ "$got" = True ]; then ok "$2"; else
        not_ok "$2" "expression: $3" "got: $got" "json: $(head -c 600 "$IT_TMP/$1.json")"
    fi
}
NOERR='all(v == 0 for v in d["errors"].values())'

# 1. open loop HTTP/1.1: 200 req/s for 2 s is 400 requests (the schedule is a uniform grid of
# 1/rate over all connections, so the measured window holds rate x duration intended sends)
run h1rate -r 200 -d 2 --warmup 0.5 -c 8 "http://127.0.0.1:$H1/"
check "h1 -r 200 -d 2: exit 0" [ "$RC" = 0 ]
expect h1rate "h1 -r 200 -d 2: 399..401 requests" '399 <= d["requests"] <= 401'
expect h1rate "h1: every one a 200" 'd["status"] == {"200": d["requests"]}'
expect h1rate "h1: no errors" "$NOERR"
expect h1rate "h1: achieved_rate within 1% of 200" 'abs(d["achieved_rate"] - 200) <= 2'
expect h1rate "--json has every field" 'all(k in d for k in ("target_rate", "achieved_rate", "duration_s", "connections", "streams", "requests", "errors", "status", "latency_us", "bytes_in", "bytes_out", "corrected", "histogram", "send_lag_us")) and all(k in d["latency_us"] for k in ("min", "p50", "p90", "p99", "p99_9", "max", "mean", "stdev")) and all(k in d["errors"] for k in ("connect", "read", "timeout", "status_non_2xx"))'
expect h1rate "--json: corrected, target_rate 200, 8 connections" 'd["corrected"] is True and d["target_rate"] == 200 and d["connections"] == 8'
expect h1rate "--json: percentiles ordered, histogram counts sum to requests" '0 < d["latency_us"]["min"] <= d["latency_us"]["p50"] <= d["latency_us"]["p90"] <= d["latency_us"]["p99"] <= d["latency_us"]["p99_9"] <= d["latency_us"]["max"] and sum(c for _, c in d["histogram"]) == d["requests"]'
expect h1rate "--json: bytes_in at least 1 KiB per response" 'd["bytes_in"] >= 1024 * d["requests"] and d["bytes_out"] > 0'

# 2. HTTP/2 (h2c prior knowledge), 10 streams a connection: open loop and closed loop
run h2rate --h2 -m 10 -c 2 -r 500 -d 2 --warmup 0.5 "http://127.0.0.1:$H2/"
expect h2rate "h2 -m 10 -r 500 -d 2: 999..1001 requests, all 200, no errors" \
    "999 <= d['requests'] <= 1001 and d['status'] == {'200': d['requests']} and $NOERR"
run h2max --h2 -m 10 -c 2 -d 1 --warmup 0.2 "http://127.0.0.1:$H2/"
expect h2max "h2 -m 10 closed loop: requests answered, no errors, not corrected" \
    "d['requests'] > 100 and $NOERR and d['corrected'] is False and d['streams'] == 10"
run h2post --h2 -m 4 -c 1 -r 100 -d 1 --warmup 0.2 --body-size 3000 -H 'x-test: 1' "http://127.0.0.1:$H2/"
expect h2post "h2 POST of 3000 bytes with -H: 100 requests, no errors, bytes_out >= 300000" \
    "99 <= d['requests'] <= 101 and $NOERR and d['bytes_out'] >= 300000"
run h1post -c 2 -r 100 -d 1 --warmup 0.2 --body-size 3000 "http://127.0.0.1:$H1/"
expect h1post "h1 POST of 3000 bytes: 100 requests, no errors" "99 <= d['requests'] <= 101 and $NOERR"

# a body larger than haproxy's buffer: it answers early (before reading it all), then resets
# the stream (h2: RST_STREAM CANCEL after the response) or closes (h1): still a 200 each
run h2early --h2 -m 4 -c 2 -r 100 -d 1 --warmup 0.2 --body-size 200000 "http://127.0.0.1:$H2/"
expect h2early "h2 POST of 200 kB answered early, stream then cancelled: 100 OK, no errors" \
    "99 <= d['requests'] <= 101 and $NOERR and d['status'] == {'200': d['requests']}"
run h1early -c 2 -r 100 -d 1 --warmup 0.2 --body-size 200000 "http://127.0.0.1:$H1/"
expect h1early "h1 POST of 200 kB answered early, connection then closed: 100 OK, no errors" \
    "99 <= d['requests'] <= 101 and $NOERR and d['status'] == {'200': d['requests']}"

# 3. TLS: HTTP/1.1 and h2 (ALPN) verified against the test CA, and mTLS with a client cert
run tls1 -c 2 -r 100 -d 1 --warmup 0.3 --cacert "$C/ca.pem" "https://localhost:$TLS/"
expect tls1 "TLS HTTP/1.1 (verified, SNI localhost): 100 requests, no errors" "99 <= d['requests'] <= 101 and $NOERR"
run tls2 --h2 -m 10 -c 2 -r 200 -d 1 --warmup 0.3 --cacert "$C/ca.pem" "https://localhost:$TLS/"
expect tls2 "TLS h2 by ALPN: 200 requests, no errors" "199 <= d['requests'] <= 201 and $NOERR and d['protocol'] == 'h2'"
run mtls --h2 -c 2 -r 100 -d 1 --warmup 0.3 --cacert "$C/ca.pem" --cert "$C/cli.pem" --key "$C/cli.key" \
    --sni localhost "https://127.0.0.1:$MTLS/"
expect mtls "mTLS with --cert/--key/--sni: 100 requests, no errors" "99 <= d['requests'] <= 101 and $NOERR"
run tls2t -t 2 --h2 -m 5 -c 4 -r 400 -d 1 --warmup 0.3 --cacert "$C/ca.pem" "https://localhost:$TLS/"
expect tls2t "TLS h2 on 2 threads (-t 2 -c 4): 400 requests, no errors, histograms merged" \
    "399 <= d['requests'] <= 401 and $NOERR and d['threads'] == 2 and sum(c for _, c in d['histogram']) == d['requests']"
run nocert --h2 -c 1 -r 50 -d 0.5 --warmup 0 --cacert "$C/ca.pem" "https://localhost:$MTLS/"
expect nocert "mTLS port without a client cert: no requests, errors counted" \
    "d['requests'] == 0 and d['errors']['tls'] + d['errors']['read'] + d['errors']['connect'] > 0"
check "  ... and exit status 1 (nothing answered)" [ "$RC" = 1 ]
run badca -c 1 -r 50 -d 0.5 --warmup 0 --cacert "$C/cli.pem" "https://localhost:$TLS/"
expect badca "a server certificate the CA did not sign: TLS errors, no requests" \
    "d['requests'] == 0 and d['errors']['tls'] > 0"
run insecure -c 1 -r 50 -d 0.5 --warmup 0 --insecure "https://127.0.0.1:$TLS/"
expect insecure "--insecure: answered" "24 <= d['requests'] <= 26 and $NOERR"
if command -v openssl >/dev/null; then
    # openssl s_server -www: HTTP/1.0, a body ended by the close (one connection per request)
    bg s_server openssl s_server -accept "$SLOW2" -cert "$C/srv.pem" -key "$C/srv.key" -www -quiet
    if wait_until 10 up "$SLOW2"; then
        run sserver -c 1 -r 20 -d 1 --warmup 0 --cacert "$C/ca.pem" "https://localhost:$SLOW2/"
        expect sserver "openssl s_server -www (HTTP/1.0, close-delimited body): 20 requests, no errors" \
            "19 <= d['requests'] <= 21 and $NOERR and d['reconnects'] >= 19"
    else
        not_ok "openssl s_server did not start"
    fi
fi

# 4. coordinated omission: the server stalls once for 1 s while 100 req/s are sent. The
# open loop's latency runs from the intended send, so the ~100 requests due during the stall
# wait up to a second: p99 near 1 s. The closed loop only sees one slow request per
# connection (it stops sending while it waits).
bg slow "$PY" "$RINGMESH_ROOT/tests/tools/lgorigin.py" "$SLOW" --stall-at-ms 1500 --stall-ms 1000
wait_until 10 up "$SLOW"
run stall -r 100 -c 4 -d 3 --warmup 0.5 "http://127.0.0.1:$SLOW/"
expect stall "stall 1 s at 100 req/s: 299..301 requests, no errors" "299 <= d['requests'] <= 301 and $NOERR"
expect stall "stall: corrected p99 >= 600 ms (it was ~970 ms when written)" "d['latency_us']['p99'] >= 600000"
expect stall "stall: corrected p90 >= 300 ms (a third of the window waited)" "d['latency_us']['p90'] >= 300000"
expect stall "stall: max between 0.9 and 1.5 s" "900000 <= d['latency_us']['max'] <= 1500000"
CO_P99=$(jget "$IT_TMP/stall.json" "d['latency_us']['p99']")
bg slow3 "$PY" "$RINGMESH_ROOT/tests/tools/lgorigin.py" "$SLOW3" --stall-at-ms 1500 --stall-ms 1000
wait_until 10 up "$SLOW3"
run closed -c 4 -d 3 --warmup 0.5 "http://127.0.0.1:$SLOW3/"
expect closed "the same stall in closed loop: seen (max >= 0.9 s), no errors" \
    "d['latency_us']['max'] >= 900000 and $NOERR and d['corrected'] is False"
expect closed "  ... but its p99 is below the corrected one (it stopped sending while it waited)" \
    "d['latency_us']['p99'] < $CO_P99"
echo "# stall: corrected p99 ${CO_P99} us; closed loop p99 $(jget "$IT_TMP/closed.json" "d['latency_us']['p99']") us"

# 5. non-2xx and chunked
run s503 -r 100 -c 2 -d 1 --warmup 0.2 "http://127.0.0.1:$ORIG/status/503"
expect s503 "503s: recorded, counted in status and errors.status_non_2xx" \
    "99 <= d['requests'] <= 101 and d['status'] == {'503': d['requests']} and d['errors']['status_non_2xx'] == d['requests']"
run chunked -r 100 -c 2 -d 1 --warmup 0.2 "http://127.0.0.1:$ORIG/chunked"
expect chunked "chunked bodies (with an extension and trailers): 100 requests, no errors" \
    "99 <= d['requests'] <= 101 and $NOERR and d['status'] == {'200': d['requests']}"

# 6. connection refused: reported, exits 1, no hang
t0=$SECONDS
run refused -r 100 -c 4 -d 1 --warmup 0 "http://127.0.0.1:$DEAD/"
check "connection refused: exit status 1" [ "$RC" = 1 ]
expect refused "connection refused: errors.connect > 0, no requests" "d['errors']['connect'] > 0 and d['requests'] == 0"
check "connection refused: done within 4 s (no wait for --timeout)" [ $((SECONDS - t0)) -le 4 ]

# 7. bad flags: exit 2 and a message naming the problem
bad() { # DESC PATTERN ARGS...
    local desc=$1 pat=$2 out rc; shift 2
    out=$("$LG" "$@" 2>&1 >/dev/null); rc=$?
    if [ "$rc" = 2 ] && grep -q -- "$pat" <<<"$out"; then ok "bad flags: $desc"; else
        not_ok "bad flags: $desc" "rc $rc, said: $out"; fi
}
bad "--rate abc" "--rate: 'abc' is not a number" -r abc "http://127.0.0.1:$H1/"
bad "-c 0" "out of range" -c 0 "http://127.0.0.1:$H1/"
bad "unknown option" "unknown option --frobnicate" --frobnicate "http://127.0.0.1:$H1/"
bad "no URL" "no URL" -r 10
bad "ftp:// URL" "want http://" "ftp://127.0.0.1/"
bad "-m 4 without --h2" "use --h2" -m 4 "http://127.0.0.1:$H1/"
bad "--cert without --key" "go together" --cert x "https://127.0.0.1:$TLS/"
bad "-H without a colon" "want 'name: value'" -H foo "http://127.0.0.1:$H1/"
bad "-d without a value" "needs a value" "http://127.0.0.1:$H1/" -d
tap_done
