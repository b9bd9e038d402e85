#!/usr/bin/env bash
# init_apply.sh - ringmesh-init against a real kernel, inside a throwaway network namespace.
#
# Checks: --dry-run output is what iptables-save shows after apply; apply twice leaves one
# copy; unrelated rules survive apply and cleanup; cleanup leaves no RINGMESH_ chain or
# jump; bad flags exit 2 naming the flag and change nothing; without NET_ADMIN it exits 1
# and changes nothing; IPv6 is programmed when the netns has a ULA address; the legacy
# backend works when forced; a missing iptables is reported; outbound capture and the
# proxy-uid exclusion really steer packets.
# Needs root; skips otherwise. Every iptables command here runs inside netns rm-init-$$,
# never in the root namespace, and the netns is deleted on exit whatever happens.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/tap.sh

INIT=$(realpath -m "${RINGMESH_BIN:-bin}/ringmesh-init")
GOLDEN=tests/unit/golden/init

if [ "$(id -u)" != 0 ]; then
    skip "ringmesh-init apply tests need root (network namespaces, iptables)"
    tap_done; exit
fi
if [ ! -x "$INIT" ]; then
    not_ok "ringmesh-init binary at $INIT" "build it first (make, or set RINGMESH_BIN)"
    tap_done; exit
fi

ns=rm-init-$$
tmp=$(mktemp -d /tmp/rm-init.XXXXXX)
pids=()
teardown() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
    [ -n "${KEEP_TMP:-}" ] && echo "# kept $tmp" || rm -rf "$tmp"
}
trap teardown EXIT
if ! ip netns add "$ns"; then
    skip "cannot create a network namespace"
    tap_done; exit
fi

in_ns() { ip netns exec "$ns" "$@"; }
# Our rules as iptables-save prints them, grouped per chain (stable sort keeps each
# chain's rule order, which is what matters): from save output or from dry-run text.
ours() {
    grep -E '^(:RINGMESH_|-A RINGMESH_|-A [A-Z_]+ .*-j RINGMESH_)' |
        sed 's/ \[[0-9]*:[0-9]*\]$//' | sort -s -k1,1 -k2,2
}
save4() { in_ns iptables-save "$@" | grep -v '^#'; }
save6() { in_ns ip6tables-save "$@" | grep -v '^#'; }
# Everything that is not ours, all tables, both families: must never change.
others() { { save4; save6; } | grep -v RINGMESH_ | sed 's/\[[0-9]*:[0-9]*\]//'; }
# The v4 or v6 part of dry-run output.
section() { awk -v want="# $1 --noflush" '/^# ip6?tables-restore --noflush$/ {on = ($0 == want); next} on'; }
run_init() { in_ns "$INIT" "$@" >"$tmp/out" 2>"$tmp/err"; echo $? >"$tmp/rc"; }
rc() { cat "$tmp/rc"; }
same() { # name, file a, file b
    if cmp -s "$2" "$3"; then ok "$1"; else not_ok "$1" "$(diff "$2" "$3" | head -20)"; fi
}

# ---- a pod with unrelated rules already in place ----------------------------------
in_ns ip link set lo up
# Any write creates the (empty) nat table of its family, and so does ours; an empty
# table with ACCEPT policies is no change worth flagging below, so create both now.
for t in iptables ip6tables; do in_ns $t -t nat -N RM_TMP && in_ns $t -t nat -X RM_TMP; done
in_ns iptables -t nat -A OUTPUT -p tcp --dport 9 -j ACCEPT
in_ns iptables -t nat -N KEEP_ME
in_ns iptables -t nat -A KEEP_ME -p udp -j RETURN
in_ns iptables -t nat -A PREROUTING -p udp -j KEEP_ME
in_ns iptables -A INPUT -p tcp --dport 22 -j ACCEPT
others >"$tmp/others.0"

# ---- dry run ----------------------------------------------------------------------
run_init --dry-run --ipv6 off
check "dry run exits 0" [ "$(rc)" = 0 ]
same "dry run in a fresh pod prints the defaults golden" "$GOLDEN/defaults.rules" "$tmp/out"
cp "$tmp/out" "$tmp/dry4"
others >"$tmp/others.1"
same "dry run changes nothing" "$tmp/others.0" "$tmp/others.1"
check "dry run leaves no RINGMESH_ chain" bash -c "! ip netns exec $ns iptables-save | grep -q RINGMESH_"

# ---- apply, apply again -----------------------------------------------------------
run_init --ipv6 off
check "apply exits 0" [ "$(rc)" = 0 ]
check "apply says which backend it used" grep -q "backend nft" "$tmp/err"
save4 -t nat | ours >"$tmp/live.1"
section iptables-restore <"$tmp/dry4" | ours >"$tmp/dry4.ours"
same "iptables-save after apply == dry-run rules" "$tmp/dry4.ours" "$tmp/live.1"
check "four RINGMESH_ chains" [ "$(grep -c '^:RINGMESH_' "$tmp/live.1")" = 4 ]

run_init --ipv6 off
check "second apply exits 0" [ "$(rc)" = 0 ]
check "second apply reports replacing the first copy" grep -q "replacing them" "$tmp/err"
save4 -t nat | ours >"$tmp/live.2"
same "second apply leaves exactly one copy" "$tmp/live.1" "$tmp/live.2"
check "one OUTPUT jump" [ "$(save4 -t nat | grep -c '^-A OUTPUT -j RINGMESH_OUTPUT$')" = 1 ]
check "one PREROUTING jump" \
    [ "$(save4 -t nat | grep -c '^-A PREROUTING -p tcp -j RINGMESH_INBOUND$')" = 1 ]
others >"$tmp/others.2"
same "unrelated rules survive apply" "$tmp/others.0" "$tmp/others.2"

run_init --dry-run --ipv6 off
check "dry run over applied rules shows the atomic replace" \
    grep -qx -- "-D OUTPUT -j RINGMESH_OUTPUT" "$tmp/out"

# ---- bad flags: exit 2, named, nothing changed ------------------------------------
{ save4; save6; } >"$tmp/all.before"
bad_flag() { # name, expected text in stderr, flags...
    local name=$1 want=$2; shift 2
    run_init "$@"
    if [ "$(rc)" = 2 ] && grep -qF -- "$want" "$tmp/err"; then ok "$name: exit 2, names $want"
    else not_ok "$name: exit 2, names $want" "rc=$(rc)" "$(cat "$tmp/err")"; fi
}
bad_flag "port 70000" "--envoy-port: '70000'" --envoy-port 70000
bad_flag "short port flag" "-z/--inbound-capture-port: '0'" -z 0
bad_flag "CIDR /33" "--service-cidr: '10.0.0.0/33'" --service-cidr 10.0.0.0/33
bad_flag "v6 CIDR /129" "-x/--service-exclude-cidr: 'fd00::/129'" -x fd00::/129
bad_flag "unknown flag" "unknown flag '--frobnicate'" --frobnicate
bad_flag "bad port list" "--local-exclude-ports: '99999'" --local-exclude-ports 22,99999
{ save4; save6; } >"$tmp/all.after"
same "bad flags changed nothing" "$tmp/all.before" "$tmp/all.after"

# ---- no NET_ADMIN: exit 1, clear, nothing changed ---------------------------------
in_ns setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all \
    "$INIT" --ipv6 off >"$tmp/out" 2>"$tmp/err"; r=$?
if [ $r = 1 ] && grep -q "no CAP_NET_ADMIN" "$tmp/err"; then ok "as nobody: exit 1, says no CAP_NET_ADMIN"
else not_ok "as nobody: exit 1, says no CAP_NET_ADMIN" "rc=$r" "$(cat "$tmp/err")"; fi
in_ns setpriv --inh-caps=-net_admin --bounding-set=-net_admin \
    "$INIT" --cleanup >"$tmp/out" 2>"$tmp/err"; r=$?
if [ $r = 1 ] && grep -q "no CAP_NET_ADMIN" "$tmp/err"; then ok "root without NET_ADMIN: exit 1, clear error"
else not_ok "root without NET_ADMIN: exit 1, clear error" "rc=$r" "$(cat "$tmp/err")"; fi
in_ns setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all \
    "$INIT" --dry-run --ipv6 off >"$tmp/out" 2>"$tmp/err"; r=$?
check "dry run works without root" [ $r = 0 ]
same "... and prints the fresh-pod input" "$GOLDEN/defaults.rules" "$tmp/out"
{ save4; save6; } >"$tmp/all.after"
same "no NET_ADMIN changed nothing" "$tmp/all.before" "$tmp/all.after"

# ---- traffic really follows the rules ---------------------------------------------
in_ns ip link add rm-v0 type veth peer name rm-v1
in_ns ip link set rm-v0 up; in_ns ip link set rm-v1 up
in_ns ip addr add 10.77.0.2/24 dev rm-v0
# The system python: uid 1337 must be able to run it (a per-user pyenv shim is not).
PY=/usr/bin/python3
if [ -x "$PY" ]; then
    # Not through in_ns: $! must be the listener itself so teardown can kill it.
    ip netns exec "$ns" "$PY" -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 15001)); s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(b"captured\n"); c.close()' >"$tmp/listener.log" 2>&1 &
    pids+=($!)
    probe='
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect(("10.77.0.99", 80)); print(s.recv(64).decode().strip())
except OSError as e:
    print("not captured:", e)'
    for _ in $(seq 50); do
        in_ns "$PY" -c 'import socket; socket.create_connection(("127.0.0.1", 15001), 1)' \
            2>/dev/null && break
        sleep 0.1
    done
    got=$(in_ns "$PY" -c "$probe" 2>&1)
    check "app connection to 10.77.0.99:80 lands on 15001" [ "$got" = captured ]
    got=$(in_ns setpriv --reuid 1337 --regid 1337 --clear-groups "$PY" -c "$probe" 2>&1)
    check "uid 1337's connection is not captured" [ "${got#not captured}" != "$got" ]
    got=$(in_ns setpriv --reuid 4242 --regid 1337 --clear-groups "$PY" -c "$probe" 2>&1)
    check "gid 1337's connection is not captured" [ "${got#not captured}" != "$got" ]
    got=$(in_ns setpriv --reuid 4242 --regid 4242 --clear-groups "$PY" -c "$probe" 2>&1)
    check "another uid's connection is captured" [ "$got" = captured ]
else
    skip "$PY missing: no traffic checks"
fi

# ---- cleanup ------------------------------------------------------------------------
run_init --cleanup
check "cleanup exits 0" [ "$(rc)" = 0 ]
check "cleanup leaves no RINGMESH_ anything (v4, all tables)" \
    bash -c "! ip netns exec $ns iptables-save | grep -q RINGMESH_"
others >"$tmp/others.3"
same "cleanup leaves unrelated rules exactly as they were" "$tmp/others.0" "$tmp/others.3"
run_init --cleanup-only
check "cleanup with nothing to do exits 0" [ "$(rc)" = 0 ]
check "... and says so" grep -q "nothing of ringmesh's to remove" "$tmp/err"

# ---- IPv6 ---------------------------------------------------------------------------
in_ns ip addr add fd00:77::2/64 dev rm-v0 nodad
run_init --dry-run
section ip6tables-restore <"$tmp/out" >"$tmp/dry6"
check "auto: dry run includes IPv6 when the pod has a ULA address" grep -q '^\*nat' "$tmp/dry6"
run_init
check "apply with IPv6 exits 0" [ "$(rc)" = 0 ]
save6 -t nat | ours >"$tmp/live6"
ours <"$tmp/dry6" >"$tmp/dry6.ours"
same "ip6tables-save after apply == dry-run v6 rules" "$tmp/dry6.ours" "$tmp/live6"
check "v6 passthrough rule uses ::6/128" grep -q -- '-s ::6/128 -o lo -j RETURN' "$tmp/live6"
check "::6/128 added to lo" bash -c "ip netns exec $ns ip -6 addr show dev lo | grep -q 'inet6 ::6/128'"
run_init
save6 -t nat | ours >"$tmp/live6.2"
same "second IPv6 apply leaves one copy" "$tmp/live6" "$tmp/live6.2"
run_init --cleanup
check "IPv6 cleanup exits 0" [ "$(rc)" = 0 ]
check "no RINGMESH_ left in ip6tables" bash -c "! ip netns exec $ns ip6tables-save | grep -q RINGMESH_"
run_init --ipv6 off
check "--ipv6 off with a v6 address exits 0" [ "$(rc)" = 0 ]
check "... and leaves ip6tables alone" bash -c "! ip netns exec $ns ip6tables-save | grep -q RINGMESH_"
run_init --cleanup

# ---- legacy backend ---------------------------------------------------------------
if in_ns iptables-legacy-save >/dev/null 2>&1 && in_ns iptables-legacy -t nat -L >/dev/null 2>&1; then
    run_init --iptables-mode legacy --ipv6 off
    check "legacy: apply exits 0 and says so" \
        bash -c "[ $(rc) = 0 ] && grep -q 'backend legacy' $tmp/err"
    in_ns iptables-legacy-save -t nat | ours >"$tmp/legacy"
    same "legacy: rules equal the dry run" "$tmp/dry4.ours" "$tmp/legacy"
    check "legacy: nothing written to nft" bash -c "! ip netns exec $ns iptables-nft-save | grep -q RINGMESH_"
    run_init --iptables-mode legacy --ipv6 off
    in_ns iptables-legacy-save -t nat | ours >"$tmp/legacy.2"
    same "legacy: second apply leaves one copy" "$tmp/legacy" "$tmp/legacy.2"
    run_init --iptables-mode legacy --cleanup
    check "legacy: cleanup leaves nothing" \
        bash -c "! ip netns exec $ns iptables-legacy-save | grep -q RINGMESH_"
else
    skip "iptables-legacy unusable on this kernel"
fi

# ---- iptables missing ---------------------------------------------------------------
# Hide the sbin directories in a private mount namespace (never visible outside it).
in_ns unshare --mount --propagation private sh -c \
    'mount -t tmpfs none /usr/sbin && exec "$0" --ipv6 off' "$INIT" >"$tmp/out" 2>"$tmp/err"; r=$?
if [ $r = 1 ] && grep -q "not found" "$tmp/err"; then ok "iptables missing: exit 1, says not found"
else not_ok "iptables missing: exit 1, says not found" "rc=$r" "$(cat "$tmp/err")"; fi

others >"$tmp/others.4"
same "after everything, unrelated rules are as they were" "$tmp/others.0" "$tmp/others.4"
tap_done
