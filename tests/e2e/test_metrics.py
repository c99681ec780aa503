"""Issue 10, event stream and metrics: a Prometheus scrape during a move
shows the move's bytes growing, and `ferry job watch --json` prints events
that parse line by line. The metrics are scraped with a real HTTP client
(urllib) from the client namespace, as a monitoring system on the management
network would; ferryd serves them only on the address --metrics names."""
import json
import subprocess
import time

import pytest

from conftest import (FERRY, HOSTS, LAB_ENV, enable_migration, in_ns, kinit, lab_cmd, make_host, ns, on, run,
                      teardown_host)
from test_move import ALICE_PW, start_guest
from test_move_failures import slow_network, start_move, wait_done  # noqa: F401 (slow_network is a fixture)

PORT = 9477
METRICS_ADDR = f"{HOSTS['host1']['ip']}:{PORT}"  # host1's management address
URL = f"http://{METRICS_ADDR}/metrics"

# Prints the status, the content type and the body; an HTTP error status is
# an answer too (urllib raises it).
SCRAPE = r'''
import sys, urllib.error, urllib.request
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=10)
    print(r.status); print(r.headers["Content-Type"]); sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.headers["Content-Type"])
'''

# Sends raw bytes, prints what came back (its first line), or "refused".
RAW = r'''
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
except OSError as e:
    print("refused" if isinstance(e, ConnectionRefusedError) else f"error {e}"); sys.exit(0)
s.sendall(sys.argv[3].encode().decode("unicode_escape").encode("latin-1"))
out = b""
while chunk := s.recv(65536):
    out += chunk
print(out.split(b"\r\n")[0].decode())
'''


def scrape(url=URL):
    """(status, content type, {sample: value}) of one scrape from the client namespace."""
    r = in_ns("client", ["/usr/bin/python3", "-c", SCRAPE, url], timeout=30)
    lines = r.stdout.split("\n")
    status, ctype, body = int(lines[0]), lines[1], lines[2:]
    samples = {}
    for line in body:
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return status, ctype, samples


def raw(addr, data, node="client"):
    return in_ns(node, ["/usr/bin/python3", "-c", RAW, addr, str(PORT), data], timeout=30).stdout.strip()


def listeners_on_port(host):
    out = run(["ip", "netns", "exec", ns(host.name), "ss", "-Htln"]).stdout
    return [line.split()[3] for line in out.splitlines() if line.split()[3].endswith(f":{PORT}")]


def bytes_sent(samples):
    return samples["ferry_move_bytes_sent_total"]


@pytest.fixture
def metrics_host1(lab):
    """host1 with --metrics on its management address."""
    h = make_host("host1", extra_args=["--metrics", METRICS_ADDR])
    yield h
    teardown_host(h)


@pytest.fixture
def metrics_pair(metrics_host1, host2, tmp_path):
    enable_migration(metrics_host1, host2)
    cc = tmp_path / "alice.ccache"
    r = kinit("client", "alice", ALICE_PW, cc)
    assert r.returncode == 0, r.stderr
    (host2.dir / "disks").mkdir(parents=True, exist_ok=True)
    return metrics_host1, host2, cc


def test_scrape_during_a_move_and_its_event_stream(metrics_pair, guest, slow_network):
    host1, host2, cc = metrics_pair
    status, ctype, before = scrape()
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, ctype)
    assert before['ferry_moves_active{kind="move"}'] == 0
    assert bytes_sent(before) == 0

    start_guest(host1, guest, dirty=4)
    # a slow migration network (16 Mbit/s) makes the move last long enough to scrape twice
    jid = start_move(host1, host2, cc, "--include-storage", "--storage-path", host2.dir / "disks")
    watch = subprocess.Popen(on("host1", FERRY, "--socket", host1.socket, "--json", "job", "watch", str(jid)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=LAB_ENV)
    try:
        deadline = time.time() + 120
        first = None
        while time.time() < deadline:
            _, _, first = scrape()
            if bytes_sent(first) > 0:
                break
            time.sleep(0.5)
        assert bytes_sent(first) > 0, first
        time.sleep(3)
        _, _, second = scrape()
        print(f"\nbytes sent: {bytes_sent(first):.0f}, 3 s later {bytes_sent(second):.0f}")
        assert bytes_sent(second) > bytes_sent(first), (first, second)
        for s in (first, second):
            assert s['ferry_moves_active{kind="move"}'] == 1, s
            assert s['ferry_moves_started_total{kind="move"}'] == 1, s
            assert s['ferry_moves_completed_total{kind="move"}'] == 0, s

        # full speed again: the move completes
        lab_cmd("unthrottle-migration")
        job = wait_done(host1, jid, timeout=600)
        assert job["stage"] == "completed", job
        out, err = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
    assert watch.returncode == 0, err

    _, _, after = scrape()
    assert after['ferry_moves_completed_total{kind="move"}'] == 1, after
    assert after['ferry_moves_active{kind="move"}'] == 0, after
    assert after["ferry_move_pause_seconds_count"] == 1, after
    assert after['ferry_move_pause_seconds_bucket{le="+Inf"}'] == 1, after
    assert after["ferry_move_pause_seconds_sum"] == pytest.approx(job["downtime-ms"] / 1000, abs=0.001)
    assert bytes_sent(after) >= bytes_sent(second)
    assert bytes_sent(after) >= job["memory-transferred"]
    assert all(v == 0 for k, v in after.items() if k.startswith("ferry_moves_failed_total")), after

    # the event stream: every line one JSON object, stages in order, done last
    events = [json.loads(line) for line in out.splitlines()]
    assert events, err
    assert all(e["job"] == jid and isinstance(e["time"], int) for e in events), events
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    assert events[0]["event"] == "stage"
    assert events[-1]["event"] == "done" and events[-1]["outcome"] == "completed", events[-1]
    assert events[-1]["downtime-ms"] == job["downtime-ms"]
    assert [e for e in events if e["event"] == "done"] == [events[-1]]
    stages = [e["stage"] for e in events if e["event"] == "stage"]
    assert "memory" in stages and stages[-1] == "completed", stages
    assert len(stages) == len(set(stages)), stages  # one event per change
    progress = [e for e in events if e["event"] == "progress"]
    assert any(e["stage"] == "memory" and e["memory-transferred"] > 0 for e in progress), progress


def test_only_the_address_given(metrics_host1):
    assert listeners_on_port(metrics_host1) == [METRICS_ADDR]
    # not on host1's migration address, asked from host1 itself
    assert raw(HOSTS["host1"]["mig"], "GET /metrics HTTP/1.0\\r\\n\\r\\n", node="host1") == "refused"
    # GET /metrics only, strictly
    assert scrape(f"http://{METRICS_ADDR}/")[0] == 404
    assert raw(HOSTS["host1"]["ip"], "GET /metrics HTTP/1.0\\r\\n\\r\\n") == "HTTP/1.0 200 OK"
    assert raw(HOSTS["host1"]["ip"], "POST /metrics HTTP/1.0\\r\\n\\r\\n") == "HTTP/1.0 405 Method Not Allowed"
    assert raw(HOSTS["host1"]["ip"], "garbage\\n\\n") == "HTTP/1.0 400 Bad Request"


def test_nothing_listens_without_metrics(host1):
    assert listeners_on_port(host1) == []
    assert raw(HOSTS["host1"]["ip"], "GET /metrics HTTP/1.0\\r\\n\\r\\n") == "refused"
