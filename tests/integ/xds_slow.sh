#!/usr/bin/env bash
# A sidecar that stops reading must cost ringmesh-xds bounded memory and delay nobody: one
# xDS client is stopped (SIGSTOP) after its first push while ten big EndpointSlices (500
# endpoints each, about 160 kB a round) change 120 times; another client keeps ACKing. The
# live client gets every round's last state as it happens; ringmesh-xds's RSS grows by far
# less than what the stopped client was owed (coalescing: one pending response per type,
# the next computed only when it is read); when the stopped client continues it catches up
# with fewer responses than changes and ends on the same versions as the live one.
source "$(dirname "$0")/lib.sh"
integ_ports
PYH2=${RINGMESH_PYTHON:-/usr/bin/python3}
"$PYH2" -c 'import h2' 2>/dev/null || { skip "python3-h2 not installed"; tap_done; exit 0; }
CFG=$IT_TMP/cfg CA=$IT_TMP/ca
mkdir -p "$CFG"
N_SLICES=10 N_EP=500 ROUNDS=120 # a round is about 160 kB (the API takes 256 KiB)
slices() { # ROUND: the ten slices, endpoint addresses shifted by the round
    "$PYH2" - "$1" "$N_SLICES" "$N_EP" <<'PY'
import json, sys
r, ns, ne = map(int, sys.argv[1:])
items = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "big", "namespace": "default"},
          "spec": {"clusterIP": "10.96.0.50", "ports": [{"name": "http", "port": 80}]}}]
for s in range(ns):
    eps = [{"addresses": ["10.%d.%d.%d" % (s + 1, (i + r) // 250, (i + r) % 250 + 1)]} for i in range(ne)]
    items.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                  "metadata": {"name": "big-%d" % s, "namespace": "default",
                               "labels": {"kubernetes.io/service-name": "big"}},
                  "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                  "endpoints": eps})
print(json.dumps({"kind": "List", "items": items}))
PY
}
slices 0 >"$CFG/big.json"
bg xds "$RINGMESH_BIN/ringmesh-xds" --config-dir "$CFG" --ca-dir "$CA" --xds-port "$P0" \
    --xds-tls-port 0 --api-port "$P2" --listen 127.0.0.1
XDS_PID=$BG_PID
check "ringmesh-xds ready with 10 slices of 500 endpoints" wait_until 10 \
    curl -sf -o /dev/null "http://127.0.0.1:$P2/ready"
client() { # NAME: an auto-ACKing client; its lines in $IT_TMP/NAME.out
    mkfifo "$IT_TMP/$1.in"
    bg "$1" bash -c "exec \"$PYH2\" \"$RINGMESH_ROOT/tests/tools/xdsclient.py\" --port $P0 --pod $1 \
        --auto-ack <\"$IT_TMP/$1.in\" >\"$IT_TMP/$1.out\""
    eval "exec {fd_$1}>\"$IT_TMP/$1.in\""
}
nresp() { grep -c '"nonce"' "$IT_TMP/$1.out" 2>/dev/null || echo 0; }
client live
LIVE_PID=$BG_PID
client slow
SLOW_PID=$BG_PID
check "both clients got the initial push (6 responses each)" wait_until 10 \
    bash -c "[ \$(grep -c '\"nonce\"' '$IT_TMP/live.out') -ge 6 ] && [ \$(grep -c '\"nonce\"' '$IT_TMP/slow.out') -ge 6 ]"
slow_py=$(pgrep -P "$SLOW_PID" -f xdsclient.py || echo "$SLOW_PID")
kill -STOP $slow_py
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$XDS_PID/status"; }
rss0=$(rss)
bytes=0
late=0
done_rounds=0
for ((r = 1; r <= ROUNDS; r++)); do
    slices "$r" >"$IT_TMP/round.json"
    bytes=$((bytes + $(wc -c <"$IT_TMP/round.json")))
    "$RINGMESH_BIN/ringmeshctl" apply --server "http://127.0.0.1:$P2" -f "$IT_TMP/round.json" >/dev/null 2>&1 ||
        not_ok "round $r applied"
    # the live client has this round's first slice within 3 s, whatever the stopped one does
    want="10.1.$((r / 250)).$((r % 250 + 1))"
    wait_until 3 grep -q "\"$want\"" "$IT_TMP/live.out" || late=$((late + 1))
    done_rounds=$((done_rounds + 1))
done
check_eq() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi; }
check_eq "the live client had every round within 3 s while the other was stopped" \
    "$done_rounds rounds, $late late" "$ROUNDS rounds, 0 late"
rss1=$(rss)
grown=$(((rss1 - rss0) / 1024))
owed=$((bytes / 1048576))
check "ringmesh-xds grew ${grown} MB while the stopped client was owed ${owed} MB (bounded: < 8 MB)" \
    [ "$owed" -ge 15 ] && [ "$grown" -lt 8 ]
kill -CONT $slow_py
final=$(grep -o '"system_version_info":"[0-9]*"' "$IT_TMP/live.out" | tail -n 1)
check "the stopped client catches up to the live one's last version ($final)" wait_until 15 \
    grep -q "$final" "$IT_TMP/slow.out"
ns=$(nresp slow) nl=$(nresp live)
check "it caught up with fewer responses than the live client ($ns < $nl): coalesced" [ "$ns" -lt "$nl" ]
eval "exec {fd_live}>&- {fd_slow}>&-"
kill "$XDS_PID"
wait_exit "$XDS_PID" 5
tap_done
