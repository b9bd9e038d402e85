"""starve.py UP FRONT ADMIN SEG SECONDS - one relay whose upstream never reads, fed small
segments, must not take the worker's buffer pool: a second relay through the same
sidecar still delivers. Prints 'in_use N' (peak buffers.in_use) and 'second N' (bytes the
second connection delivered upstream); exits 0 when the second one got its 12 bytes."""
import socket, sys, threading, time, urllib.request

UP, FRONT, ADMIN, SEG, DUR = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                              int(sys.argv[4]), float(sys.argv[5]))
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
srv.bind(("127.0.0.1", UP))
srv.listen(16)
got = {}
held = []


def accept_loop():
    i = 0
    while True:
        c, _ = srv.accept()
        held.append(c)
        if i > 0:  # the first connection is never read: its relay stalls
            def rd(c=c, i=i):
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    got[i] = got.get(i, 0) + len(d)
            threading.Thread(target=rd, daemon=True).start()
        i += 1


def in_use():
    s = urllib.request.urlopen("http://127.0.0.1:%d/stats" % ADMIN).read().decode()
    for line in s.splitlines():
        if line.startswith("buffers.in_use:"):
            return int(line.split()[1])
    return -1


threading.Thread(target=accept_loop, daemon=True).start()
a = socket.create_connection(("127.0.0.1", FRONT))
a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
a.setblocking(False)
peak, t0 = 0, time.time()
while time.time() - t0 < DUR:
    try:
        a.send(b"y" * SEG)
    except BlockingIOError:
        pass
    time.sleep(0.002)
time.sleep(1.2)  # the tick samples buffers.in_use every 100 ms
peak = in_use()
b = socket.create_connection(("127.0.0.1", FRONT))
b.sendall(b"hello-from-b")
deadline = time.time() + 3
while got.get(1, 0) < 12 and time.time() < deadline:
    time.sleep(0.05)
print("in_use", peak)
print("second", got.get(1, 0))
sys.exit(0 if got.get(1, 0) == 12 else 1)
