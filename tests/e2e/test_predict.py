"""Issue 10, prediction: `vm move --what-if` measures the guest's dirty rate
and the migration link and predicts the move; the move records its
prediction beside what happened. The test asserts the prediction exists and
is sane, never how long anything took (bench/move_bench.py reports the
prediction's error)."""
import json

import pytest

from conftest import lab_cmd, ns, remote_ferry, run, wait_for
from test_move import move, pair, start_guest  # noqa: F401 (pair is a fixture)

MIB = 1 << 20
LINK_BPS = 1e9 / 8  # the shaped migration network, bytes per second


@pytest.fixture
def gigabit():
    lab_cmd("throttle-migration", "1gbit")
    yield
    lab_cmd("unthrottle-migration")


def listeners(host):
    """The TCP ports the host's namespace listens on."""
    out = run(["ip", "netns", "exec", ns(host.name), "ss", "-Htln"]).stdout
    return {line.split()[3].rsplit(":", 1)[1] for line in out.splitlines() if line.strip()}


def check_prediction(p, dirty_mib):
    assert "unavailable" not in p, p
    # inputs: measured and plausible
    assert 0 < p["memory-to-send-bytes"] <= p["memory-bytes"] == 256 * MIB, p
    assert p["disk-bytes"] > 0, p
    assert 1e6 < p["link-bytes-per-second"] <= 1.2 * LINK_BPS, p
    # page sampling is noisy and the guest's dirtying is paced by a TCG
    # guest on a busy machine: within a wide band of what it was told
    assert dirty_mib * MIB / 8 <= p["dirty-bytes-per-second"] <= dirty_mib * MIB * 4, p
    assert p["downtime-limit-ms"] == 300 and p["max-passes"] == 10, p
    assert p["rate-source"] in ("learned", "other-host", "default"), p
    assert p["rate-bytes-per-second"] > 0, p
    # outputs: positive, consistent
    assert p["total-seconds"] > 0 and p["memory-seconds"] > 0 and p["disk-seconds"] > 0, p
    assert p["total-seconds"] >= p["disk-seconds"] + p["memory-seconds"], p
    assert p["downtime-ms"] >= 0 and p["passes"] >= 1, p
    assert isinstance(p["converges"], bool) and p["reason"], p
    if p["converges"]:
        assert p["downtime-ms"] <= p["downtime-limit-ms"], p


@pytest.mark.parametrize("dirty", [16, 64])
def test_what_if_predicts_and_the_move_records_it(pair, guest, gigabit, dirty):
    host1, host2, cc = pair
    start_guest(host1, guest, dirty=dirty)
    where = ("--include-storage", "--storage-path", host2.dir / "disks")

    r = remote_ferry(host1.fqdn, "--json", "vm", "move", "web1", host2.fqdn, "--what-if", *where, ccache=cc)
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)["prediction"]
    print(f"\nprediction at {dirty} MiB/s: {json.dumps(p, sort_keys=True)}")
    check_prediction(p, dirty)
    # nothing learned on a fresh ferryd: the lower of QEMU's default pace
    # (256 MiB/s) and the probe's, on this link the probe's
    assert p["rate-source"] == "default", p
    assert p["rate-bytes-per-second"] == min(p["link-bytes-per-second"], 256 * MIB), p
    if dirty == 16:
        # 16 MiB/s against about 119 MiB/s: each pass an eighth of the one before
        assert p["converges"] is True, p
    # the probe's listener went with the probe; nothing moved
    wait_for(lambda: listeners(host2) <= {"6600"}, timeout=10, what="only 6600 listening on host2")
    assert host2.vm_names() == []

    r = remote_ferry(host1.fqdn, "vm", "compare", "web1", host2.fqdn, *where, ccache=cc)
    assert r.returncode == 0, r.stderr
    for line in ("Prediction:", "to send:", "link:", "dirty rate:", "rate:", "total time:", "downtime:", "converges:"):
        assert line in r.stdout, r.stdout

    _, job = move(host1, "web1", host2, *where, ccache=cc)
    recorded, actual = job["prediction"], job["actual"]
    print(f"move: predicted {recorded['total-seconds']:.2f} s / {recorded['downtime-ms']} ms, "
          f"actual {actual['total-seconds']:.2f} s / {actual.get('downtime-ms')} ms")
    check_prediction(recorded, dirty)
    assert actual["total-seconds"] > 0 and actual["passes"] >= 1, actual
    # a sanity bound, not a benchmark: the prediction is of the right order
    assert 0.1 <= recorded["total-seconds"] / actual["total-seconds"] <= 10, (recorded, actual)
    shown = host1.ferry("job", "show", str(job["id"]))
    assert shown["prediction"] == recorded and shown["actual"] == actual, shown
    wait_for(lambda: listeners(host2) <= {"6600"}, timeout=10, what="only 6600 listening on host2")
    if dirty != 16:
        return
    # what the move taught host1 is on disk, and a restarted ferryd predicts from it
    learned = json.loads((host1.state / "learned.json").read_text())
    assert [e["dest"] for e in learned] == [host2.fqdn], learned
    host1.stop()
    host1.start()
    move(host2, "web1", host1, "--include-storage", "--storage-path", host1.dir, ccache=cc)
    r = remote_ferry(host1.fqdn, "--json", "vm", "compare", "web1", host2.fqdn, *where, ccache=cc)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["prediction"]["rate-source"] == "learned", r.stdout
