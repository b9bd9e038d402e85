#!/usr/bin/env bash
# Tracing headers through two sidecars (client pod a -> Service VIP -> server pod b; an
# HTTP/1.1 app and an h2c app that echo the request headers), HTTP/1.1 and HTTP/2 from the
# client: a request without x-request-id arrives with a UUIDv4 one, one with it arrives
# with the same value; a valid traceparent arrives with the same trace id and flags and a
# new parent id, different per request and per hop (the two sidecars' access logs show
# each hop's span); tracestate and the b3 headers arrive unchanged; an invalid traceparent
# arrives as it was sent and none is invented when absent. On both I/O backends.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
pod a 10.233.1.2
pod b 10.233.1.3
ip -n "${RM_NS[a]}" route add 10.96.0.0/16 dev eth0 # pods reach VIPs through their route
for p in a b; do check "ringmesh-init in $p" pod_init "$p"; done
pod_app b "$RM_PY" "$RM_TOOLS/httpapp.py" 8080 --name web
pod_app b "$RM_PY" "$RM_TOOLS/httpapp.py" 8081 --name web2 --h2c
for port in 8080 8081; do wait_port b $port; done

WEB=10.96.0.10  # appProtocol http -> b:8080 (HTTP/1.1 app)
WEB2=10.96.0.11 # appProtocol h2c  -> b:8081 (h2c app)
source "$RINGMESH_ROOT/tests/lib/http.sh"
CFG=$RM_TMP/mesh.yaml
{
    service web $WEB
    service web2 $WEB2 target=8081 proto=h2c
} >"$CFG"
chmod 644 "$CFG"
OUT=$RM_TMP/out
mkdir -m 777 "$OUT"
LOGS=$RM_TMP/alog
mkdir -m 777 "$LOGS"

UUID4='^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
TRACE=4bf92f3577b34da6a3ce929d0e0e4736
PARENT=00f067aa0ba902b7
STATE='congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'
B3='80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90'
# field KEY: a request field the app saw (last fetch)
field() { jq -r --arg k "$1" '.[$k] // empty' "$OUT/b" 2>/dev/null; }
# b_logged N: b's access log holds N lines of request tp-1
b_logged() { [ "$(grep -c '"x_request_id":"tp-1"' "$LOGS/b.log" 2>/dev/null)" -ge "$1" ]; }

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    rm -f "$LOGS"/*.log
    sidecar_up a "$io" --config "$CFG" --pod-ip 10.233.1.2 --access-log "$LOGS/a.log" || continue
    sidecar_up b "$io" --config "$CFG" --pod-ip 10.233.1.3 --access-log "$LOGS/b.log" ||
        { sidecar_down a; continue; }
    for proto in --http1.1 --http2-prior-knowledge; do
        p=${proto#--}
        for vip in $WEB $WEB2; do
            app=$([ $vip = $WEB ] && echo "HTTP/1.1 app" || echo "h2c app")
            l="$p to the $app"
            fetch a $proto http://$vip/headers
            expect "$l: no x-request-id: one arrives, a UUIDv4" code=200 jre:x-request-id="$UUID4" \
                nojson:traceparent
            first=$(field x-request-id)
            fetch a $proto http://$vip/headers
            second=$(field x-request-id)
            if [ -n "$first" ] && [ "$first" != "$second" ]; then
                ok "$io: $l: a new x-request-id per request"
            else
                not_ok "$io: $l: a new x-request-id per request" "got '$first' and '$second'"
            fi
            fetch a $proto -H 'x-request-id: keep-me-42' http://$vip/headers
            expect "$l: an x-request-id arrives unchanged" code=200 json:x-request-id=keep-me-42

            fetch a $proto -H "traceparent: 00-$TRACE-$PARENT-01" -H "tracestate: $STATE" \
                -H "b3: $B3" -H "x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7" \
                -H 'x-b3-spanid: e457b5a2e4d86bd1' -H 'x-b3-parentspanid: 05e3ac9a4f6e3b90' \
                -H 'x-b3-sampled: 1' -H 'x-b3-flags: 1' -H 'x-request-id: tp-1' \
                http://$vip/headers
            expect "$l: traceparent: same trace id and flags, tracestate and b3 unchanged" \
                code=200 jre:traceparent="^00-$TRACE-[0-9a-f]{16}-01\$" json:tracestate="$STATE" \
                json:b3="$B3" json:x-b3-traceid=80f198ee56343ba864fe8b2a57d3eff7 \
                json:x-b3-spanid=e457b5a2e4d86bd1 json:x-b3-parentspanid=05e3ac9a4f6e3b90 \
                json:x-b3-sampled=1 json:x-b3-flags=1
            tp1=$(field traceparent)
            fetch a $proto -H "traceparent: 00-$TRACE-$PARENT-00" http://$vip/headers
            expect "$l: traceparent flags 00 kept" code=200 \
                jre:traceparent="^00-$TRACE-[0-9a-f]{16}-00\$"
            tp2=$(field traceparent)
            par1=$(cut -d- -f3 <<<"$tp1") par2=$(cut -d- -f3 <<<"$tp2")
            if [ -n "$par1" ] && [ "$par1" != $PARENT ] && [ "$par1" != 0000000000000000 ] &&
                [ -n "$par2" ] && [ "$par2" != "$par1" ] && [ "$par2" != $PARENT ]; then
                ok "$io: $l: a new parent id, another per request ($par1, $par2)"
            else
                not_ok "$io: $l: a new parent id, another per request" "got '$tp1' and '$tp2'"
            fi
            for bad in "00-$(tr a-f A-F <<<$TRACE)-$PARENT-01" "00-00000000000000000000000000000000-$PARENT-01" \
                "01-$TRACE-$PARENT-01-later" "garbage"; do
                fetch a $proto -H "traceparent: $bad" -H "tracestate: $STATE" http://$vip/headers
                expect "$l: traceparent '$bad' passes unchanged" code=200 json:traceparent="$bad" \
                    json:tracestate="$STATE"
            done
        done
    done
    # per hop: a's line for request tp-1 logs the span it sent, b's the one it sent the app
    wait_until 3 b_logged 4
    hops=$("$RM_PY" - "$LOGS/a.log" "$LOGS/b.log" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
ta = [x["traceparent"] for x in a if x["x_request_id"] == "tp-1"]
tb = [x["traceparent"] for x in b if x["x_request_id"] == "tp-1"]
spans = set(t.split("-")[2] for t in ta + tb)
same = all(t.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736" for t in ta + tb)
print(len(ta), len(tb), len(spans), same)
EOF
    )
    check_eq "$io: per hop: 4 requests x 2 sidecars, 8 distinct parent ids, one trace id" \
        "$hops" "4 4 8 True"
    alive a b
    sidecars_down
done
tap_done
