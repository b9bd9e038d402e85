#!/usr/bin/env bash
# IPv6 end to end: pods with ULA addresses, ringmesh-init programs ip6tables (auto: the pod
# has a v6 address) and adds ::6 to lo, the sidecars capture on [::]:15001/15006, read
# IP6T_SO_ORIGINAL_DST, and the inbound side reaches the app from ::6. A 16 MiB transfer
# from a to b's app over IPv6 must arrive intact and be counted by both sidecars.
source "$(dirname "$0")/lib.sh"
mesh_up
mesh_require_bins
mesh_ios
pod a 10.233.1.2
pod b 10.233.1.3
A6=fd00:233::2 B6=fd00:233::3
ip -n "${RM_NS[a]}" addr add $A6/64 dev eth0 nodad
ip -n "${RM_NS[b]}" addr add $B6/64 dev eth0 nodad
check "ringmesh-init in a (v6 auto)" pod_init a
check "ringmesh-init in b (v6 auto)" pod_init b
check "b: ip6tables has the RINGMESH chains" bash -c "ip netns exec ${RM_NS[b]} ip6tables-save -t nat | grep -q ':RINGMESH_INBOUND'"
check "b: ::6 is on lo" bash -c "ip -n ${RM_NS[b]} -6 addr show dev lo | grep -q '::6/128'"

# a v6 hash server as the app: reads to EOF, answers "<n> <sha256>", logs the peer
cat >"$RM_TMP/v6srv.py" <<'PY'
import hashlib, socket, sys, threading
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1]))); s.listen(16)
print("listening", flush=True)
def h(c, peer):
    m, n = hashlib.sha256(), 0
    while True:
        d = c.recv(65536)
        if not d: break
        m.update(d); n += len(d)
    c.sendall(b"%d %s\n" % (n, m.hexdigest().encode())); c.close()
    print("conn peer=%s bytes=%d" % (peer[0], n), flush=True)
while True:
    c, peer = s.accept(); threading.Thread(target=h, args=(c, peer), daemon=True).start()
PY
cat >"$RM_TMP/v6send.py" <<'PY'
import hashlib, os, socket, sys
data = os.urandom(int(sys.argv[3]))
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
c.sendall(data); c.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = c.recv(4096)
    if not d: break
    got += d
want = b"%d %s\n" % (len(data), hashlib.sha256(data).hexdigest().encode())
print("send", "ok" if got == want else "MISMATCH got=%r" % got)
sys.exit(0 if got == want else 1)
PY
chmod 644 "$RM_TMP"/v6*.py
pod_app b "$RM_PY" "$RM_TMP/v6srv.py" 9000
srv_log=$RM_APP_LOG
wait_port b 9000

for io in "${RM_IOS[@]}"; do
    RM_LABEL=$io
    sidecar_up a "$io" || continue
    sidecar_up b "$io" || { sidecar_down a; continue; }
    check "$io: 16 MiB a -> [b]:9000 over IPv6 arrive intact" in_pod a "$RM_PY" "$RM_TMP/v6send.py" $B6 9000 16777216
    check_stat a outbound.cx_total ge 1
    check_stat a outbound.bytes_rx ge 16777216
    check_stat b inbound.cx_total ge 1
    check_stat b inbound.bytes_rx ge 16777216
    check "$io: the app saw the peer as ::6 (inbound passthrough source)" grep -q "peer=::6 bytes=16777216" "$srv_log"
    sidecars_down
    : >"$srv_log"
done
tap_done
