"""Issue 11, drain: 'ferry host evacuate' plans where each running VM of
host1 goes (host2 or host3), prints the plan with --what-if and changes
nothing, then moves them all, never more at once than the limit, and every
guest goes on where it landed with its disk records whole. A VM that is off
stays, with the reason."""
import json

import pytest

from conftest import dc, define_guest, enable_migration, heartbeat, kinit, remote_ferry, wait_for
from test_move import ALICE_PW, disk_records_whole, disk_seq, guest_went_on

# four small guests, each with its own address and data disk
GUESTS = {f"vm{i}": f"10.77.0.{110 + i}" for i in range(1, 5)}


@pytest.fixture
def trio(host1, host2, host3, lab, tmp_path):
    enable_migration(host1, host2, host3)
    # host1 carries alice to host3 as it does to host2 (conftest's lab)
    dc("delegate", "HOST1", "host3.lab.test", "kerberos-only")
    cc = tmp_path / "alice.ccache"
    r = kinit("client", "alice", ALICE_PW, cc)
    assert r.returncode == 0, r.stderr
    for h in (host2, host3):
        (h.dir / "disks").mkdir(parents=True, exist_ok=True)
    yield host1, host2, host3, cc
    dc("undelegate", "HOST1", "host3.lab.test")


def most_at_once(jobs):
    """The largest number of jobs that ran at the same time, from their
    start and end times (an end before a start at the same instant)."""
    events = sorted([(j["started"], 1) for j in jobs] + [(j["ended"], -1) for j in jobs])
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_evacuate_four_guests_to_two_hosts(trio, guest):
    host1, host2, host3, cc = trio
    by_fqdn = {h.fqdn: h for h in (host2, host3)}
    for name, ip in GUESTS.items():
        define_guest(host1, guest, name=name, ip=ip, memory="128M", disk_mib=32)
        host1.ferry("vm", "start", name)
    # and one that is off: it stays, with the reason
    define_guest(host1, guest, name="idle", ip="10.77.0.119", memory="128M", disk_mib=8)
    for name in GUESTS:
        wait_for(lambda: disk_seq(host1, name) >= 50, timeout=180, what=f"{name} writing records")
    evacuate = ["host", "evacuate", "--include-storage",
                "--to", f"{host2.fqdn},storage-path={host2.dir / 'disks'}",
                "--to", f"{host3.fqdn},storage-path={host3.dir / 'disks'}"]

    # the plan: every guest has a place, and nothing changes
    r = remote_ferry(host1.fqdn, *evacuate, "--what-if", ccache=cc)
    assert r.returncode == 0, r.stdout + r.stderr
    print("\n" + r.stdout)
    assert r.stdout.startswith("Plan: evacuate host1.lab.test, at most 2 moves at a time")
    r = remote_ferry(host1.fqdn, "--json", *evacuate, "--what-if", ccache=cc)
    assert r.returncode == 0, r.stdout + r.stderr
    plan = json.loads(r.stdout)["plan"]
    assert sorted(m["vm"] for m in plan["moves"]) == sorted(GUESTS)
    assert [(s["vm"], s["state"]) for s in plan["skipped"]] == [("idle", "off")], plan["skipped"]
    assert "not running" in plan["skipped"][0]["reason"]
    for m in plan["moves"]:
        assert m["dest"] in by_fqdn and m["memory-mib"] == 128 and m["disk-bytes"] > 0, m
    for d in plan["destinations"]:
        assert d["max-parallel"] == 2 and d["memory-available-mib"] > 0, d
    assert sorted(host1.vm_names()) == sorted([*GUESTS, "idle"])
    assert host2.vm_names() == [] and host3.vm_names() == []
    assert host1.ferry("job", "list")["jobs"] == []

    # the moves: host1 allows two at once, --max-parallel lowers it to one
    before = {name: (heartbeat(host1, name), disk_seq(host1, name)) for name in GUESTS}
    r = remote_ferry(host1.fqdn, "--json", *evacuate, "--max-parallel", "1", ccache=cc, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["failed"] == [] and [s["vm"] for s in out["skipped"]] == ["idle"], out
    assert sorted(m["vm"] for m in out["moved"]) == sorted(GUESTS)
    assert out["plan"]["max-parallel"] == 1
    jobs = [j for j in host1.ferry("job", "list")["jobs"] if j["kind"] == "move"]
    assert len(jobs) == 4 and all(j["stage"] == "completed" for j in jobs), jobs
    assert most_at_once(jobs) == 1, [(j["vm"], j["started"], j["ended"]) for j in jobs]

    # each guest runs on exactly one destination, the one of the plan;
    # host1 keeps only the VM that was off
    assert host1.vm_names() == ["idle"]
    where = {m["vm"]: m["dest"] for m in out["plan"]["moves"]}
    on2, on3 = set(host2.vm_names()), set(host3.vm_names())
    assert on2 | on3 == set(GUESTS) and not on2 & on3
    for name, fqdn in where.items():
        assert name in by_fqdn[fqdn].vm_names(), (name, fqdn)
    print(f"host2: {sorted(on2)}, host3: {sorted(on3)}; "
          + ", ".join(f"{m['vm']} {m['elapsed-seconds']:.1f} s" for m in out["moved"]))
    for name, fqdn in where.items():
        dest = by_fqdn[fqdn]
        assert dest.ferry("vm", "show", name)["state"] == "running"
        guest_went_on(dest, name, before[name][0])
        disk_records_whole(dest, guest, name, before[name][1], 20)
