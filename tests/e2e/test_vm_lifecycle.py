"""Issue: a host that runs VMs. A real guest boots on a lab host, answers
ping from the client, survives a ferryd restart, and leaves nothing behind."""
import os
import re
import signal
import subprocess

import pwd

from conftest import (GUEST_IP, define_guest, diskcheck, heartbeat, ping, qemu_uids, run, wait_for)


def qemu_pids(vm_id):
    r = subprocess.run(["pgrep", "-f", vm_id], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def test_guest_boots_answers_ping_and_survives_ferryd_restart(host1, guest):
    vm = define_guest(host1, guest)
    assert vm["state"] == "off"
    host1.ferry("vm", "start", "web1")
    wait_for(lambda: heartbeat(host1, "web1") >= 2, timeout=90, what="guest heartbeat")
    wait_for(lambda: ping("client", GUEST_IP), timeout=30, what="ping from client")

    pids = qemu_pids(vm["id"])
    assert len(pids) == 1
    # QEMU is not root: it runs as ferry-qemu, sandboxed, and owns its disk
    assert qemu_uids(host1) == [pwd.getpwnam("ferry-qemu").pw_uid]
    assert os.stat(vm["disks"][0]["path"]).st_uid == pwd.getpwnam("ferry-qemu").pw_uid
    with open(f"/proc/{pids[0]}/status") as f:
        assert re.search(r"^Seccomp:\s*2", f.read(), re.M), "QEMU runs without its seccomp sandbox"
    before = heartbeat(host1, "web1")

    # ferryd is killed and comes back: the guest does not notice.
    host1.stop(signal.SIGKILL)
    assert qemu_pids(vm["id"]) == pids
    host1.start()
    listed = {v["name"]: v for v in host1.ferry("vm", "list")["vms"]}
    assert listed["web1"]["state"] == "running"
    wait_for(lambda: heartbeat(host1, "web1") > before + 2, timeout=30, what="heartbeat after restart")
    assert ping("client", GUEST_IP)

    host1.ferry("vm", "stop", "web1", "--timeout", "5")
    assert host1.ferry("vm", "show", "web1")["state"] == "off"
    assert qemu_pids(vm["id"]) == []
    assert not ping("client", GUEST_IP, timeout=1)

    disk = vm["disks"][0]["path"]
    report = diskcheck(guest, disk)
    assert report["ok"], report
    assert report["records"] > 0

    host1.ferry("vm", "delete", "web1")
    assert host1.vm_names() == []
    assert not os.path.exists(disk)
    assert not (host1.state / "vms" / "web1").exists()
    # no tap left on the host
    links = run(["ip", "netns", "exec", f"{os.environ.get('FERRY_LAB_PREFIX', 'ft')}host1",
                 "ip", "-o", "link"]).stdout
    assert "fy" + vm["id"][:8] not in links


def test_kill_and_delete_keep_disks(host1, guest):
    vm = define_guest(host1, guest, name="db1", ip="10.77.0.101")
    host1.ferry("vm", "start", "db1")
    wait_for(lambda: heartbeat(host1, "db1") >= 1, timeout=90, what="guest heartbeat")
    host1.ferry("vm", "kill", "db1")
    assert host1.ferry("vm", "show", "db1")["state"] == "off"
    host1.ferry("vm", "delete", "db1", "--keep-disks")
    assert os.path.exists(vm["disks"][0]["path"])
    os.unlink(vm["disks"][0]["path"])


def test_define_refuses_bad_input_and_changes_nothing(host1, guest):
    r = host1.ferry_raw("vm", "define", "blk", "--kernel", guest / "vmlinuz", "--disk", "/dev/null,format=raw")
    assert r.returncode == 1
    assert "cannot be a VM disk" in r.stderr or "block device" in r.stderr or "not an image" in r.stderr
    r = host1.ferry_raw("vm", "define", "bad/name", "--kernel", guest / "vmlinuz")
    assert r.returncode == 1 and "name" in r.stderr
    r = host1.ferry_raw("vm", "define", "v4", "--kernel", guest / "vmlinuz", "--config-version", "4")
    assert r.returncode == 1 and "version 5" in r.stderr
    r = host1.ferry_raw("vm", "define", "nokernel", "--kernel", "/nonexistent/vmlinuz")
    assert r.returncode == 1
    r = host1.ferry_raw("vm", "start", "ghost")
    assert r.returncode == 1 and "ghost" in r.stderr
    define_guest(host1, guest, name="dup", ip="10.77.0.102")
    r = host1.ferry_raw("vm", "define", "dup", "--kernel", guest / "vmlinuz")
    assert r.returncode == 1 and "exists" in r.stderr
    assert host1.vm_names() == ["dup"]


def test_start_refuses_missing_switch(host1, guest):
    host1.ferry("vm", "define", "lonely", "--kernel", guest / "vmlinuz", "--initrd", guest / "initrd.img",
                "--nic", "Internal")
    r = host1.ferry_raw("vm", "start", "lonely")
    assert r.returncode == 1
    assert "Internal" in r.stderr and "switch create" in r.stderr
    assert host1.ferry("vm", "show", "lonely")["state"] == "off"


def test_non_administrator_is_refused(host1):
    r = host1.ferry_raw("vm", "list", user=65534)
    assert r.returncode == 1
    assert "not an administrator" in r.stderr
