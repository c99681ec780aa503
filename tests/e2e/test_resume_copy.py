"""Issue: a disk copy that resumes. A move with storage cut at 60% copied:
the destination keeps its partial copy (partial-copy-retention), the source
keeps a record of what that copy lacks (a persistent dirty bitmap on the
disk), and the next move sends only that, plus what the guest wrote
meanwhile. The byte counts come from the migration switch's counters."""
import json

from conftest import lab_cmd, ns, remote_ferry, run, wait_for
from test_move import disk_records_whole, disk_seq, move, pair, start_guest, xfail_if_qemu_corrupted  # noqa: F401
from test_move_failures import job, start_move, wait_done

GIB = 1 << 30


def wire_bytes():
    """Bytes the hosts sent into the migration switch so far."""
    r = run(["ip", "-n", ns("mig"), "-s", "-j", "link", "show"])
    return sum(link["stats64"]["rx"]["bytes"] for link in json.loads(r.stdout) if link.get("master") == "mig0")


def bitmaps(image):
    info = json.loads(run(["qemu-img", "info", "-U", "--output=json", image]).stdout)
    return [b["name"] for b in info.get("format-specific", {}).get("data", {}).get("bitmaps", [])]


def test_a_cut_copy_resumes_where_it_stopped(pair, guest):
    host1, host2, cc = pair
    host2.ferry("host", "set", "partial-copy-retention", "600")
    host1.ferry("host", "set", "stall-timeout", "5")
    big = host1.dir / "big-web1.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", big, "1G"])
    run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1G", big], timeout=300)
    start_guest(host1, guest, extra=("--disk", f"{big},format=qcow2"))
    dest_disks = host2.dir / "disks"

    lab_cmd("throttle-migration", "200mbit")
    try:
        before = wire_bytes()
        jid = start_move(host1, host2, cc, "--include-storage", "--storage-path", dest_disks)

        def sixty_percent():
            j = job(host1, jid)
            total, left = j["disk-total"], j["disk-remaining"]
            return total >= GIB and total - left >= 0.6 * total and j
        at_cut = wait_for(sixty_percent, timeout=300, interval=0.3, what="60% of the disks copied")
        lab_cmd("cut-migration")
        failed = wait_done(host1, jid, timeout=120)
        first = wire_bytes() - before
    finally:
        lab_cmd("restore-migration")
        lab_cmd("unthrottle-migration")
    assert failed["stage"] == "failed", failed
    assert host1.ferry("vm", "show", "web1")["state"] == "running"
    # host2 keeps the copy; host1 folded the guest's writes back and records
    # what host2's copy lacks
    wait_for(lambda: "web1" not in host2.vm_names() and list((host2.state / "partials").glob("*.json")),
             timeout=60, what="host2 to keep the partial copy")
    assert sorted(p.name for p in dest_disks.iterdir()) == ["big-web1.qcow2", "web1-data.qcow2"]
    assert not list(host1.dir.glob("*.ferry-overlay"))

    seq = disk_seq(host1, "web1")
    wait_for(lambda: disk_seq(host1, "web1") > seq + 10, timeout=60, what="the guest writing on")
    before = wire_bytes()
    r, done = move(host1, "web1", host2, "--include-storage", "--storage-path", dest_disks, ccache=cc)
    second = wire_bytes() - before
    reused = done.get("disk-reused", 0)
    print(f"first move: {at_cut['disk-total'] - at_cut['disk-remaining']} of {at_cut['disk-total']} disk bytes "
          f"copied at the cut, {first} bytes on the wire; second move: {reused} disk bytes reused, "
          f"{second} bytes on the wire")
    assert reused >= 0.55 * GIB, done
    # about 40% of the big disk, the memory, and what the guest wrote
    assert second < 0.65 * GIB, (second, done)

    xfail_if_qemu_corrupted(host2.console("web1"))
    moved = host2.ferry("vm", "show", "web1")["disks"]
    disk_records_whole(host2, guest, "web1", seq, 10)
    # the big disk, built from two moves, is the original byte for byte
    check = run(["qemu-io", "-r", "-f", "qcow2", "-c", "read -P 0x5a 0 1G", moved[1]["path"]], timeout=300)
    assert "verification failed" not in check.stdout + check.stderr, check.stdout
    assert not bitmaps(moved[1]["path"]) or not [b for b in bitmaps(moved[1]["path"]) if b.startswith("ferry-")]
    assert not list((host2.state / "partials").glob("*.json"))


def test_a_move_back_reuses_the_disks_the_source_kept(pair, guest):
    """--keep-source-disks with partial-copy-retention set: host1 keeps its
    disks as the guest left them, host2 records what the guest writes
    there, and the move back sends only that (plus the memory)."""
    host1, host2, cc = pair
    host1.ferry("host", "set", "partial-copy-retention", "600")
    big = host1.dir / "big-web1.qcow2"
    size = GIB // 2
    run(["qemu-img", "create", "-q", "-f", "qcow2", big, str(size)])
    run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0x5a 0 {size}", big], timeout=300)
    start_guest(host1, guest, extra=("--disk", f"{big},format=qcow2"))
    kept = [d["path"] for d in host1.ferry("vm", "show", "web1")["disks"]]

    before = wire_bytes()
    move(host1, "web1", host2, "--include-storage", "--keep-source-disks", "--storage-path", host2.dir / "disks",
         ccache=cc)
    out = wire_bytes() - before
    assert "web1" not in host1.vm_names()
    records = [json.loads(p.read_text()) for p in (host1.state / "partials").glob("*.json")]
    assert [(r["kind"], r["name"], sorted(d["path"] for d in r["disks"])) for r in records] == \
        [("source-disks", "web1", sorted(kept))], records

    xfail_if_qemu_corrupted(host2.console("web1"))
    seq = disk_seq(host2, "web1")
    wait_for(lambda: disk_seq(host2, "web1") > seq + 10, timeout=60, what="the guest writing on host2")
    # vm compare and --what-if say what the move back will reuse, and claim nothing
    r = remote_ferry(host2.fqdn, "--json", "vm", "compare", "web1", host1.fqdn, "--include-storage",
                     "--storage-path", host1.dir, ccache=cc)
    assert r.returncode == 0, r.stdout + r.stderr
    compared = json.loads(r.stdout)
    assert compared["disk-reusable-bytes"] >= 0.9 * size, compared
    # and the prediction counts only what is left to copy
    assert compared["prediction"].get("disk-bytes", size) < 0.1 * size, compared["prediction"]
    r = remote_ferry(host2.fqdn, "vm", "move", "web1", host1.fqdn, "--include-storage", "--storage-path", host1.dir,
                     "--what-if", ccache=cc)
    assert r.returncode == 0 and f"of the disks a copy kept on {host1.fqdn}; copies the rest" in r.stdout, r.stdout
    assert list((host1.state / "partials").glob("*.json"))
    before = wire_bytes()
    r, done = move(host2, "web1", host1, "--include-storage", "--storage-path", host1.dir, ccache=cc)
    back = wire_bytes() - before
    reused = done.get("disk-reused", 0)
    print(f"move out: {out} bytes on the wire; move back: {compared['disk-reusable-bytes']} disk bytes reusable as "
          f"compared, {reused} reused, {done.get('disk-total')} copied, {back} bytes on the wire")
    assert reused >= 0.9 * size, done
    assert done["prediction"].get("disk-bytes", size) < 0.1 * size, done["prediction"]
    # the memory and what the guest wrote on host2, not the disks again
    assert back < out - 0.8 * size, (back, out)
    assert not list((host1.state / "partials").glob("*.json"))
    assert [d["path"] for d in host1.ferry("vm", "show", "web1")["disks"]] == kept

    xfail_if_qemu_corrupted(host1.console("web1"))
    disk_records_whole(host1, guest, "web1", seq, 10)
    # the big disk, written to on the way back only where it changed, is the original
    check = run(["qemu-io", "-r", "-f", "qcow2", "-c", f"read -P 0x5a 0 {size}", big], timeout=300)
    assert "verification failed" not in check.stdout + check.stderr, check.stdout
