"""A slowloris on TCP 6600 (review M3): 200 connections from one address
that never finish the Kerberos handshake, each sending a byte every second.
The destination cuts each one at its handshake deadline, refuses more than a
few at once from that address, and a legitimate move still completes."""
import json
import subprocess
import time

from conftest import LAB_ENV, on
from test_move import move, pair, start_guest  # noqa: F401 (pair is a fixture)

SLOW_CLIENT = r'''
import json, socket, sys, time
host, n, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
FRAME = b"FRY\x01" + (1000).to_bytes(4, "big") + b"\x60" * 1000
start = time.time()
conns = []   # [socket, opened at, closed at or None, bytes sent]
for _ in range(n):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, 6600))
        s.setblocking(False)
        conns.append([s, time.time(), None, 0])
    except OSError:
        pass
while time.time() - start < duration:
    for c in conns:
        if c[2] is not None:
            continue
        try:
            # a valid frame header announcing a 1000-byte token, one byte a
            # second, then the token as slowly: each read is quick, the whole never ends
            c[0].send(FRAME[min(c[3], len(FRAME) - 1):][:1])
            c[3] += 1
            if c[0].recv(4096) == b"":
                c[2] = time.time()
        except BlockingIOError:
            pass
        except OSError:
            c[2] = time.time()
    time.sleep(1)
lifetimes = [(c[2] or time.time()) - c[1] for c in conns]
print(json.dumps({"opened": len(conns), "still_open": sum(c[2] is None for c in conns),
                  "longest": max(lifetimes) if lifetimes else 0}))
'''


def test_slow_handshakes_do_not_lock_out_a_move(pair, guest):
    host1, host2, cc = pair
    start_guest(host1, guest)
    attack = subprocess.Popen(on("client", "/usr/bin/python3", "-c", SLOW_CLIENT, host2.ip, "200", "45"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=LAB_ENV)
    try:
        time.sleep(5)
        assert attack.poll() is None, attack.communicate()
        t0 = time.time()
        r, job = move(host1, "web1", host2, "--include-storage", "--storage-path", host2.dir / "disks", ccache=cc)
        print(f"\nmove under a slowloris: {time.time() - t0:.1f} s")
        assert host2.ferry("vm", "show", "web1")["state"] == "running"
        # the host still answers its administrators
        assert host2.ferry("host", "show")["settings"]["migration-enabled"] is True
    finally:
        out, err = attack.communicate(timeout=120)
    result = json.loads(out)
    print(f"slowloris: {result}")
    assert result["opened"] >= 100, (result, err)
    # every slow connection was cut: none outlived the 10 s handshake deadline by much
    assert result["still_open"] == 0, result
    assert result["longest"] < 20, result
    log = host2.log.read_text()
    assert "no Kerberos handshake within 10 s, closed" in log
