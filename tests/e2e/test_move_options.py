"""Move options: performance options, shared storage (no --include-storage),
--disk SRC=DST, --keep-source-disks, --what-if."""
import json
import os

import pytest

from conftest import GUEST_IP, heartbeat, remote_ferry, run, wait_for
from test_move import disk_seq, move, pair, start_guest  # noqa: F401 (pair is a fixture)


@pytest.mark.parametrize("performance", ["tcpip", "multichannel"])
def test_move_with_shared_storage_and_each_performance_option(pair, guest, performance):
    host1, host2, cc = pair
    for h in (host1, host2):
        h.ferry("host", "set", "performance", performance)
    start_guest(host1, guest)
    disk = host1.ferry("vm", "show", "web1")["disks"][0]["path"]
    beat = heartbeat(host1, "web1")
    # no --include-storage: both hosts see the disk at the same path
    move(host1, "web1", host2, ccache=cc)
    assert host2.ferry("vm", "show", "web1")["disks"][0]["path"] == disk
    assert os.path.exists(disk), "shared disks stay where they are"
    wait_for(lambda: heartbeat(host2, "web1") > beat, timeout=90, what="heartbeat on host2")
    seq = disk_seq(host2, "web1")
    wait_for(lambda: disk_seq(host2, "web1") > seq + 20, timeout=60, what="records written on host2")
    assert "CORRUPT" not in host2.console("web1")


def test_disk_not_visible_to_destination_is_reported(pair, guest):
    host1, host2, cc = pair
    shared = host1.dir / "shared"
    shared.mkdir(exist_ok=True)
    start_guest(host1, guest, extra=("--disk", f"{shared}/extra.qcow2,size=16M"))
    # host2 (restarted after the mount) sees an empty directory where host1 has the disk
    run(["mount", "-t", "tmpfs", "-o", "size=1M", "ferry-test-hide", shared])
    try:
        host2.stop()
        host2.start()
        r = remote_ferry(host1.fqdn, "--json", "vm", "compare", "web1", host2.fqdn, ccache=cc)
        assert r.returncode == 1
        problems = json.loads(r.stdout)["problems"]
        assert any("extra.qcow2 is not visible to host2.lab.test at the same path" in p and "--include-storage" in p
                   for p in problems), problems
        r, j = move(host1, "web1", host2, ccache=cc, expect_ok=False)
        assert r.returncode == 1 and "not visible" in j["error"]
        assert host1.ferry("vm", "show", "web1")["state"] == "running"
        assert host2.vm_names() == []
    finally:
        host2.stop()
        run(["umount", shared], check=False)
        host2.start()


def test_disk_mapping_keep_source_disks_and_what_if(pair, guest):
    host1, host2, cc = pair
    start_guest(host1, guest)
    src = host1.ferry("vm", "show", "web1")["disks"][0]["path"]
    dst = str(host2.dir / "disks" / "renamed.qcow2")
    r = remote_ferry(host1.fqdn, "vm", "move", "web1", host2.fqdn, "--include-storage", "--disk", f"{src}={dst}",
                     "--what-if", ccache=cc)
    assert r.returncode == 0, r.stderr
    assert "What if" in r.stdout and "can move" in r.stdout
    assert host2.vm_names() == [] and host1.ferry("vm", "show", "web1")["state"] == "running"
    vmpath = host2.dir / "vmconf"
    vmpath.mkdir()
    move(host1, "web1", host2, "--include-storage", "--disk", f"{src}={dst}", "--keep-source-disks",
         "--vm-path", vmpath, ccache=cc)
    assert host2.ferry("vm", "show", "web1")["disks"][0]["path"] == dst
    assert os.path.exists(dst)
    assert os.path.exists(src), "--keep-source-disks keeps the source's files"
    # -VirtualMachinePath: the VM's files live there, and a restarted ferryd finds them
    assert (vmpath / "web1" / "config.json").exists()
    host2.stop()
    host2.start()
    assert host2.ferry("vm", "show", "web1")["state"] == "running"
    host2.ferry("vm", "kill", "web1")
    host2.ferry("vm", "delete", "web1")
    assert not (vmpath / "web1").exists() and not (host2.state / "vms" / "web1").exists()
