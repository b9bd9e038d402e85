# tests/lib/http.sh - helpers of the HTTP and mTLS mesh scenarios (tests/mesh/http_*.sh,
# tests/mesh/mtls_*.sh); source it after tests/mesh/lib.sh. It lives outside tests/mesh/
# because tests/run runs every tests/mesh/*.sh.
#
#   service NAME VIP [KEY=VALUE...] [ENDPOINT_IP...]   a Service and its EndpointSlice (YAML)
#   fetch POD CURL_ARGS...     one curl as the app user: CODE, TIME, $OUT/h, $OUT/b, $OUT/e
#   hdr NAME                   a field of the last response head of the last fetch
#   expect NAME COND...        one TAP check on the last fetch
#   check_delta POD KEY BEFORE OP N   a check on a counter's growth since BEFORE
#   alive POD...               one check per pod that its sidecar still runs
#   codes POD CURL_ARGS...     "status x-app" of sequential requests, counted
#   mesh_certs SA...           one check: a root in $C/root and a workload SVID of namespace
#                              default per SA in $C/SA, owned by the sidecars' uid
#
# fetch, expect and codes use $OUT, a directory the app user (uid 1000) can write. Check
# names get a "$RM_LABEL: " prefix when RM_LABEL is set.

# service NAME VIP [KEY=VALUE...] [ENDPOINT_IP...]: on stdout, a Service with one port and its
# EndpointSlice. KEYs: ns (namespace, default), pname (the port's name, http), port (80),
# target (targetPort, also the endpoints' port, 8080), proto (appProtocol, http; "proto=" for
# none). The endpoints: 10.233.1.3 if none is given.
service() {
    local n=$1 vip=$2 ns=default pname=http port=80 target=8080 proto=http a ips=(); shift 2
    for a; do
        case $a in
        ns=* | pname=* | port=* | target=* | proto=*) local "$a" ;;
        *) ips+=("$a") ;;
        esac
    done
    [ ${#ips[@]} -gt 0 ] || ips=(10.233.1.3)
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\n' "$n" "$ns"
    printf 'spec:\n  clusterIP: %s\n  ports: [{name: %s, port: %s, targetPort: %s%s}]\n' \
        "$vip" "$pname" "$port" "$target" "${proto:+, appProtocol: $proto}"
    printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n'
    printf 'metadata: {name: %s-1, namespace: %s, labels: {kubernetes.io/service-name: %s}}\n' "$n" "$ns" "$n"
    printf 'addressType: IPv4\nports: [{name: %s, port: %s}]\n' "$pname" "$target"
    if [ ${#ips[@]} -eq 1 ]; then
        printf 'endpoints: [{addresses: [%s]}]\n' "${ips[0]}"
    else
        printf 'endpoints:\n'
        printf -- '- {addresses: [%s]}\n' "${ips[@]}"
    fi
}

# fetch POD CURL_ARGS...: one request by curl as the app user; CODE = the status (000: none),
# TIME = seconds it took; the response head(s) in $OUT/h, the body in $OUT/b, curl's
# complaint in $OUT/e. MAXT: curl's --max-time (5).
fetch() {
    local p=$1 out; shift
    rm -f "$OUT/h" "$OUT/b" "$OUT/e"
    out=$(in_pod "$p" curl -sS --max-time "${MAXT:-5}" -D "$OUT/h" -o "$OUT/b" \
        -w '%{http_code} %{time_total}' "$@" 2>"$OUT/e")
    CODE=${out% *} TIME=${out#* }
    CODE=${CODE:-000} # curl did not run at all
}
# hdr NAME: the field's value in the last response head of the last fetch
hdr() {
    tr -d '\r' <"$OUT/h" 2>/dev/null | awk -v k="${1,,}" '
        /^HTTP\// { v = ""; next }
        { i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == k) { v = substr($0, i + 1); sub(/^ +/, "", v) } }
        END { print v }'
}
# expect NAME COND...: one TAP check on the last fetch. COND is code=N, hdr:NAME=VALUE,
# hre:NAME=REGEX, nohdr:NAME, body=TEXT (trailing newlines ignored), sha=HEX (the body's
# sha256), head=REGEX (on the raw heads, 1xx included), json:KEY=VALUE, jre:KEY=REGEX or
# nojson:KEY (a field of a JSON body), time<SECS. The failure detail shows what differed,
# the status, the time, curl's error, the head and the body.
expect() {
    local name=$1 c k v got why=; shift
    for c in "$@"; do
        case $c in
        code=*) [ "$CODE" = "${c#code=}" ] || why+="status $CODE, want ${c#code=}; " ;;
        hdr:*) k=${c#hdr:} k=${k%%=*} v=${c#hdr:*=} got=$(hdr "$k")
            [ "$got" = "$v" ] || why+="$k: '$got', want '$v'; " ;;
        hre:*) k=${c#hre:} k=${k%%=*} v=${c#hre:*=} got=$(hdr "$k")
            [[ "$got" =~ $v ]] || why+="$k: '$got', want /$v/; " ;;
        nohdr:*) got=$(hdr "${c#nohdr:}"); [ -z "$got" ] || why+="${c#nohdr:}: '$got', want none; " ;;
        body=*) got=$(cat "$OUT/b" 2>/dev/null)
            [ "$got" = "${c#body=}" ] || why+="body differs, want '${c#body=}'; " ;;
        sha=*) got=$(sha256sum <"$OUT/b" 2>/dev/null | cut -c1-64)
            [ "$got" = "${c#sha=}" ] ||
                why+="body of $(stat -c %s "$OUT/b" 2>/dev/null || echo no) bytes has sha256 $got; " ;;
        head=*) grep -Eq "${c#head=}" "$OUT/h" 2>/dev/null || why+="no head line /${c#head=}/; " ;;
        nojson:*) got=$(jq -r --arg k "${c#nojson:}" '.[$k] // empty' "$OUT/b" 2>/dev/null)
            [ -z "$got" ] || why+="request field ${c#nojson:}: '$got', want none; " ;;
        time\<*) awk -v t="$TIME" -v m="${c#time<}" 'BEGIN { exit !(t + 0 < m + 0) }' ||
            why+="took ${TIME}s, want < ${c#time<}s; " ;;
        json:* | jre:*) k=${c#*:} k=${k%%=*} v=${c#*:*=}
            got=$(jq -r --arg k "$k" '.[$k] // empty' "$OUT/b" 2>/dev/null)
            if [[ $c == json:* ]]; then [ "$got" = "$v" ]; else [[ "$got" =~ $v ]]; fi ||
                why+="request field $k: '$got', want '$v'; " ;;
        esac
    done
    if [ -z "$why" ]; then ok "${RM_LABEL:+$RM_LABEL: }$name"; return 0; fi
    not_ok "${RM_LABEL:+$RM_LABEL: }$name" "$why" "status $CODE in ${TIME}s; curl: $(head -c 300 "$OUT/e" 2>/dev/null)" \
        "head: $(tr -d '\r' <"$OUT/h" 2>/dev/null | tr '\n' '|')" \
        "body: $(head -c 300 "$OUT/b" 2>/dev/null | tr -c '[:print:]' '.')"
    return 1
}
# check_delta POD KEY BEFORE OP N: check_stat on the counter's growth since BEFORE (polled up
# to 3 s)
check_delta() {
    local pod=$1 key=$2 before=$3 op=$4 want=$5 got= now i
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
    "check_$op" "${RM_LABEL:+$RM_LABEL: }$pod $key grew by $op $want" "$got" "$want"
}
# alive POD...: one check per pod that its sidecar still runs (a crash otherwise only shows
# as the failures after it); a dead one's exit status is reaped and shown
alive() {
    local p pid st
    for p; do
        pid=$(sidecar_pid "$p")
        if [ -n "$pid" ] && [ -e "/proc/$pid" ] && ! grep -q '^State:.*zombie' "/proc/$pid/status"; then
            ok "${RM_LABEL:+$RM_LABEL: }sidecar in $p still runs"
        else
            wait "$pid" 2>/dev/null; st=$?
            not_ok "${RM_LABEL:+$RM_LABEL: }sidecar in $p still runs" \
                "it exited with status $st$( ((st > 128)) && echo " (signal $((st - 128)))")"
        fi
    done
}
# codes POD CURL_ARGS...: "status x-app" of sequential requests on one connection, counted.
# MAXT: curl's --max-time for all of them (30).
codes() {
    local p=$1; shift
    in_pod "$p" curl -sS --max-time "${MAXT:-30}" -o /dev/null -w '%{http_code} %header{x-app}\n' "$@" 2>&1 |
        sort | uniq -c | sed 's/^ *//' | cut -c1-120
}

# mesh_certs SA...: one check that a mesh root (in $C/root, C defaulting to $RM_TMP/certs) and
# a workload certificate of namespace default for each SA (in $C/SA, owned by uid 1337, as a
# sidecar's --cert-dir) were made with ringmeshctl; its output goes to $RM_TMP/ringmeshctl.log.
mesh_certs() {
    local sa log=$RM_TMP/ringmeshctl.log ok=1
    C=${C:-$RM_TMP/certs}
    mkdir -p "$C" && chmod 755 "$C"
    "$RINGMESH_BIN/ringmeshctl" ca init --dir "$C/root" >>"$log" 2>&1 || ok=
    for sa; do
        [ -n "$ok" ] && "$RINGMESH_BIN/ringmeshctl" ca issue --dir "$C/root" --ns default \
            --sa "$sa" --out "$C/$sa" >>"$log" 2>&1 &&
            chown -R "$RM_PROXY_UID:$RM_PROXY_UID" "$C/$sa" && chmod 700 "$C/$sa" || ok=
    done
    if [ -n "$ok" ]; then
        ok "certificates: a root, workloads $*"
    else
        not_ok "certificates: a root, workloads $*" "$(tail -n 5 "$log")"
    fi
}
