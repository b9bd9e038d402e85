#!/usr/bin/env bash
# HTTP through two sidecars (client pod a -> Service VIP -> server pod b): curl HTTP/1.1 and
# HTTP/2 prior knowledge, keep-alive, chunked and 100-continue uploads, 1 MiB and 20 MiB
# bodies both ways, nghttp, h2load, pipelining, an HTTP/1.1 app (appProtocol http) and an
# h2c app (appProtocol h2c), protocol sniffing when appProtocol is unset (HTTP goes as HTTP,
# a server-first protocol stays TCP), the proxy headers the app sees, and the counters of
# both sidecars. On both I/O backends. Written against the HTTP engine while it is built.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
pod a 10.233.1.2
pod b 10.233.1.3
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0 # pods reach VIPs through their route
for p in a b; do check "ringmesh-init in $p" pod_init "$p"; done
pod_app b "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name web; log_web=$RM_APP_LOG
pod_app b "$RM_PY" "$RM_TOOLS/httpapp.py" 8081 --name web2 --h2c
pod_tool_bg b fin-first-server 9000 1000
for port in 8080 8081 9000; do wait_port b $port; done

WEB=10.96.0.10   # appProtocol http  -> b:8080 (HTTP/1.1 app)
WEB2=10.96.0.11  # appProtocol h2c   -> b:8081 (h2c app)
SNIFF=10.96.0.12 # no appProtocol    -> b:8080 (sniffed)
BANNER=10.96.0.13 # no appProtocol   -> b:9000 (server speaks first: stays TCP)
source "$RINGMESH_ROOT/tests/lib/http.sh" # fetch, expect, service, check_delta, alive, codes
CFG=$RM_TMP/mesh.yaml
{
    service web $WEB
    service web2 $WEB2 target=8081 proto=h2c
    service sniff $SNIFF proto=
    service banner $BANNER target=9000 proto=
} >"$CFG"
chmod 644 "$CFG"

# Files the clients (uid 1000) write and read
OUT=$RM_TMP/out
mkdir -m 777 "$OUT"
head -c 1048576 /dev/urandom >"$OUT/f1"
head -c 20971520 /dev/urandom >"$OUT/f20"
chmod 644 "$OUT/f1" "$OUT/f20"
SHA_F1=$(sha256sum <"$OUT/f1" | cut -c1-64)
SHA_F20=$(sha256sum <"$OUT/f20" | cut -c1-64)
SHA_B1=$("$RM_PY" "$RM_TOOLS/httpapp.py" --bytes-sha 1048576)
SHA_B20=$("$RM_PY" "$RM_TOOLS/httpapp.py" --bytes-sha 20971520)

# bodies PROTO_FLAG LABEL: 1 MiB and 20 MiB up (/hash), down (/bytes) and both (/echo)
bodies() {
    local f=$1 l=$2
    MAXT=20 fetch a "$f" --data-binary @"$OUT/f1" http://$WEB/hash
    expect "$l: POST 1 MiB arrives intact" code=200 body="$SHA_F1"
    MAXT=20 fetch a "$f" --data-binary @"$OUT/f20" http://$WEB/hash
    expect "$l: POST 20 MiB arrives intact" code=200 body="$SHA_F20"
    MAXT=20 fetch a "$f" http://$WEB/bytes/1048576
    expect "$l: GET 1 MiB comes back intact" code=200 sha="$SHA_B1"
    MAXT=20 fetch a "$f" http://$WEB/bytes/20971520
    expect "$l: GET 20 MiB comes back intact" code=200 sha="$SHA_B20"
    MAXT=20 fetch a "$f" --data-binary @"$OUT/f20" http://$WEB/echo
    expect "$l: 20 MiB echoed by the HTTP/1.1 app intact" code=200 sha="$SHA_F20"
    MAXT=20 fetch a "$f" --data-binary @"$OUT/f20" http://$WEB2/echo
    expect "$l: 20 MiB echoed by the h2c app intact" code=200 sha="$SHA_F20"
}
# pipelined: two HTTP/1.1 requests in one write; prints each response's status and x-path
pipelined() {
    in_pod a "$RM_PY" - "$1" <<'EOF'
import socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=5)
s.sendall(b"GET /delay/300 HTTP/1.1\r\nHost: web\r\n\r\nGET /second HTTP/1.1\r\nHost: web\r\n\r\n")
buf, out = b"", []
while len(out) < 2:
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            sys.exit("eof after %d responses: %r" % (len(out), buf[:200]))
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    f = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    n = int(f.get("content-length", 0))
    while len(buf) < n:
        d = s.recv(65536)
        if not d:
            sys.exit("eof in a body")
        buf += d
    buf = buf[n:]
    out.append("%s %s" % (lines[0].split()[1], f.get("x-path")))
print(", ".join(out))
EOF
}

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    sidecar_up a "$io" --config "$CFG" --pod-ip 10.233.1.2 || continue
    sidecar_up b "$io" --config "$CFG" --pod-ip 10.233.1.3 || { sidecar_down a; continue; }

    fetch a --http1.1 http://$WEB/
    if ! expect "HTTP/1.1 GET through two sidecars to the HTTP/1.1 app" code=200 hdr:x-app=web \
        hdr:x-seen-proto=HTTP/1.1 body=web && [ "$CODE" = 000 ]; then
        not_ok "$io: (skipping the rest of this round: no response at all)"
        sidecars_down
        continue
    fi
    fetch a --http2-prior-knowledge http://$WEB/
    expect "HTTP/2 GET to the HTTP/1.1 app (the app gets HTTP/1.1)" code=200 hdr:x-app=web \
        hdr:x-seen-proto=HTTP/1.1 head='^HTTP/2 200' body=web
    fetch a --http1.1 http://$WEB2/
    expect "HTTP/1.1 GET to the h2c app (the app gets HTTP/2)" code=200 hdr:x-app=web2 \
        hdr:x-seen-proto=h2 head='^HTTP/1.1 200' body=web2
    fetch a --http2-prior-knowledge http://$WEB2/
    expect "HTTP/2 GET to the h2c app" code=200 hdr:x-app=web2 hdr:x-seen-proto=h2 body=web2
    fetch a --http2-prior-knowledge -I http://$WEB/bytes/12345
    expect "HEAD keeps the app's Content-Length" code=200 hdr:content-length=12345

    # appProtocol unset: HTTP is sniffed and proxied as HTTP (cx_http1 / cx_http2 count it)
    h1_0=$(sidecar_stat a outbound.cx_http1) h2_0=$(sidecar_stat a outbound.cx_http2)
    fetch a --http1.1 http://$SNIFF/headers
    expect "HTTP/1.1 to a Service without appProtocol is sniffed as HTTP" code=200 \
        hdr:x-app=web json:x-forwarded-proto=http
    check_delta a outbound.cx_http1 "$h1_0" eq 1
    fetch a --http2-prior-knowledge http://$SNIFF/headers
    expect "HTTP/2 preface to a Service without appProtocol is sniffed as HTTP/2" code=200 \
        hdr:x-app=web json:x-forwarded-proto=http
    check_delta a outbound.cx_http2 "$h2_0" eq 1
    # a server-first protocol: no client bytes within the sniff timeout, so it stays TCP
    tcp_0=$(sidecar_stat a outbound.cx_tcp)
    check_q "$io: a server-first protocol through a Service without appProtocol relays" \
        pod_tool a fin-first-client $BANNER 80 1000
    check_delta a outbound.cx_tcp "$tcp_0" eq 1

    # keep-alive: three requests, one downstream connection
    h1_0=$(sidecar_stat a outbound.cx_http1) rq_0=$(sidecar_stat a outbound.rq_total)
    out=$(in_pod a curl -sS --max-time 5 --http1.1 -o /dev/null -o /dev/null -o /dev/null \
        -w '%{http_code} %{num_connects} %header{x-app}\n' http://$WEB/1 http://$WEB/2 http://$WEB/3 2>&1)
    check_eq "$io: HTTP/1.1 keep-alive: 3 requests on one connection" "$(echo $out)" \
        "200 1 web 200 0 web 200 0 web"
    check_delta a outbound.cx_http1 "$h1_0" eq 1
    check_delta a outbound.rq_total "$rq_0" eq 3
    h2_0=$(sidecar_stat a outbound.cx_http2)
    # (nghttp: curl 7.88's --http2-prior-knowledge fails on a reused connection, curl#10634)
    out=$(in_pod a nghttp -v http://$WEB/1 http://$WEB/2 http://$WEB/3 2>&1)
    if [ "$(grep -c 'recv (stream_id=[0-9]*) :status: 200' <<<"$out")" = 3 ] &&
        [ "$(grep -c 'recv (stream_id=[0-9]*) x-app: web$' <<<"$out")" = 3 ]; then
        ok "$io: HTTP/2: 3 requests on one connection (nghttp): 3 x 200 from web"
    else
        not_ok "$io: HTTP/2: 3 requests on one connection (nghttp): 3 x 200 from web" \
            "$(grep -E ':status|x-app|GOAWAY|RST_STREAM|rror' <<<"$out" | head -n 12)"
    fi
    check_delta a outbound.cx_http2 "$h2_0" eq 1

    # chunked upload (unknown length: chunked on HTTP/1.1, DATA without content-length on h2)
    fetch a --http1.1 -H 'Transfer-Encoding: chunked' --data-binary @"$OUT/f1" http://$WEB/hash
    expect "HTTP/1.1 chunked upload of 1 MiB arrives intact" code=200 body="$SHA_F1"
    fetch a --http2-prior-knowledge -X POST -T - http://$WEB/hash <"$OUT/f1"
    expect "HTTP/2 upload of unknown length arrives intact" code=200 body="$SHA_F1"
    fetch a --http1.1 -H 'Transfer-Encoding: chunked' --data-binary @"$OUT/f1" http://$WEB2/hash
    expect "HTTP/1.1 chunked upload to the h2c app arrives intact" code=200 body="$SHA_F1"
    # 100-continue: the 100 comes at once (not after curl's 8 s expect timeout)
    MAXT=6 fetch a --http1.1 -H 'Expect: 100-continue' --expect100-timeout 8 \
        --data-binary @"$OUT/f1" http://$WEB/hash
    expect "Expect: 100-continue gets a 100, then the upload arrives intact" code=200 \
        head='^HTTP/1.1 100' body="$SHA_F1"

    bodies --http1.1 HTTP/1.1
    bodies --http2-prior-knowledge HTTP/2

    out=$(in_pod a nghttp -v http://$WEB/ 2>&1)
    if grep -q ':status: 200' <<<"$out" && grep -q 'x-app: web' <<<"$out"; then
        ok "$io: nghttp GET: 200 from web"
    else
        not_ok "$io: nghttp GET: 200 from web" "$(tail -n 15 <<<"$out")"
    fi
    out=$(RM_CMD_TIMEOUT=30 in_pod a h2load -n 2000 -c 4 -m 10 http://$WEB/ 2>&1)
    if grep -q '2000 succeeded' <<<"$out" && grep -q 'status codes: 2000 2xx' <<<"$out"; then
        ok "$io: h2load -n 2000 -c 4 -m 10: all 2xx"
    else
        not_ok "$io: h2load -n 2000 -c 4 -m 10: all 2xx" "$(grep -E 'requests:|status codes|error' <<<"$out" | head -n 5)"
    fi
    out=$(RM_CMD_TIMEOUT=30 in_pod a h2load --h1 -n 1000 -c 4 http://$WEB2/ 2>&1)
    if grep -q '1000 succeeded' <<<"$out" && grep -q 'status codes: 1000 2xx' <<<"$out"; then
        ok "$io: h2load --h1 -n 1000 -c 4 to the h2c app: all 2xx"
    else
        not_ok "$io: h2load --h1 -n 1000 -c 4 to the h2c app: all 2xx" "$(grep -E 'requests:|status codes|error' <<<"$out" | head -n 5)"
    fi
    out=$(pipelined $WEB 2>&1)
    check_eq "$io: two pipelined HTTP/1.1 requests are answered in order" "$out" \
        "200 /delay/300, 200 /second"

    # what the app sees: proxy headers, a kept x-request-id, requests from 127.0.0.6
    fetch a --http1.1 http://$WEB/headers
    expect "the app sees x-forwarded-proto and an x-request-id" code=200 \
        json:x-forwarded-proto=http jre:x-request-id='^[0-9a-f-]{36}$'
    fetch a --http2-prior-knowledge -H 'x-request-id: test-id-42' http://$WEB2/headers
    expect "an x-request-id from the client reaches the h2c app unchanged" code=200 \
        json:x-request-id=test-id-42 json:x-forwarded-proto=http
    check_eq "$io: the app's requests come from 127.0.0.6" \
        "$(grep '^req GET /headers' "$log_web" | tail -n 1 | sed 's/.*peer=//')" 127.0.0.6

    # counters: the client's outbound, the server's inbound (sidecar to sidecar is HTTP/2);
    # a round makes 3034 requests, 3000 of them by h2load
    check_stat a outbound.rq_total ge 3030
    check_stat a outbound.rq_2xx ge 3030
    check_stat a outbound.rq_5xx eq 0
    check_stat a outbound.cx_http1 ge 1
    check_stat a outbound.cx_http2 ge 1
    check_stat a outbound.upstream_cx_http ge 1
    check_stat a outbound.upstream_cx_http le 16 # pooled and multiplexed: not one per request
    check_stat b inbound.rq_total ge 3030
    check_stat b inbound.cx_http2 ge 1
    check_stat b inbound.cx_http1 eq 0
    alive a b
    sidecars_down
done
tap_done
