"""Issue 10, part 2: a guest that dirties its memory faster than the
migration network moves it (lab.sh throttle-migration) cannot converge.
The stall ladder either moves it within max-downtime-ms or cancels the
move with the reason, the guest running on the source; it never pauses the
guest longer than the budget and never loses it."""
import time

import pytest

from conftest import QEMU_OOPS, heartbeat, lab_cmd, wait_for
from test_move import disk_records_whole, disk_seq, guest_went_on, move, pair, start_guest  # noqa: F401

# 100 Mbit/s: 12.5 MB/s, while the guest rewrites its 64 MiB at 64 MiB/s;
# each pass then takes about 5 s.
LINK = "100mbit"


@pytest.fixture
def slow_pair(pair):
    host1, host2, cc = pair
    for h in (host1, host2):
        h.ferry("host", "set", "performance", "tcpip")  # one stream: the link is the limit
    lab_cmd("throttle-migration", LINK)
    yield host1, host2, cc
    lab_cmd("unthrottle-migration")


def rungs(job):
    return [s["rung"] for s in job["ladder"]]


def test_small_budget_cancels_with_the_reason(slow_pair, guest):
    host1, host2, cc = slow_pair
    # downtime-limit starts at 50 ms and may grow to 150 (3/4 of 200)
    for name, value in (("downtime-ms", 50), ("max-downtime-ms", 200), ("max-passes", 12)):
        host1.ferry("host", "set", name, value)
    start_guest(host1, guest, dirty=64, memory="384M")
    before_beat, before_seq = heartbeat(host1, "web1"), disk_seq(host1, "web1")
    t0 = time.time()
    r, job = move(host1, "web1", host2, ccache=cc, expect_ok=False)
    print(f"\nafter {time.time() - t0:.0f} s: {job['stage']}: {job.get('error')}")
    for s in job["ladder"]:
        print(f"  pass {s['pass']}: {s['rung']}: {s['reason']}")

    assert r.returncode != 0
    assert job["stage"] == "cancelled", job
    assert job["failed-stage"] == "memory"
    assert "cannot converge within the 200 ms budget" in job["error"]
    assert "MiB/s, the link moves" in job["error"]
    # each rung in order: said, raised twice to the share, throttled, cancelled
    assert rungs(job) == ["channels", "downtime", "downtime", "throttle", "cancel"], rungs(job)
    assert "raised from 50 to 100 ms" in job["ladder"][1]["reason"]
    assert "raised from 100 to 150 ms" in job["ladder"][2]["reason"]
    assert job["ladder"][-1]["pass"] > 12
    # never paused: QEMU reports a downtime only for a switchover
    assert "downtime-ms" not in job and "pause-ms" not in job
    # never lost: it runs on the source, its heartbeat and records go on
    lab_cmd("unthrottle-migration")
    assert host1.ferry("vm", "show", "web1")["state"] == "running"
    assert host2.vm_names() == []
    wait_for(lambda: heartbeat(host1, "web1") > before_beat + 3, timeout=60, what="heartbeat on host1")
    assert "CORRUPT" not in host1.console("web1")
    disk_records_whole(host1, guest, "web1", before_seq, 20)


def test_generous_budget_moves_within_it(slow_pair, guest):
    host1, host2, cc = slow_pair
    budget = 10000  # 64 MiB at 12.5 MB/s: about 5.4 s
    host1.ferry("host", "set", "max-downtime-ms", budget)
    start_guest(host1, guest, dirty=64, memory="384M")
    before_beat, before_seq = heartbeat(host1, "web1"), disk_seq(host1, "web1")
    r, job = move(host1, "web1", host2, ccache=cc)
    print(f"\nmoved: QEMU downtime {job.get('downtime-ms')} ms, ferry's pause {job.get('pause-ms')} ms "
          f"(+- {job.get('pause-uncertainty-ms')}), {job['pass']} passes, {job['total-ms']} ms in all")
    for s in job["ladder"]:
        print(f"  pass {s['pass']}: {s['rung']}: {s['reason']}")

    assert "switchover" in rungs(job) and "cancel" not in rungs(job), rungs(job)
    # QEMU was given at most 3/4 of the budget for the memory left; the
    # rest covers the device state and the hand-over, so both pauses stay
    # within the budget (ferry's within its measuring uncertainty)
    assert job["downtime-ms"] <= budget, job
    assert job["pause-ms"] <= budget + job["pause-uncertainty-ms"], job
    assert host1.vm_names() == []
    lab_cmd("unthrottle-migration")
    guest_went_on(host2, "web1", before_beat)
    if QEMU_OOPS.search(host2.console("web1")):
        pytest.xfail("QEMU 7.2 TCG migration memory corruption")
    disk_records_whole(host2, guest, "web1", before_seq, 20)
