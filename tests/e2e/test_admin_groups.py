"""Administrators by Active Directory group: ferryd --admin-group-sid.

Both hosts are started without any --admin-principal, only with the SID of the
lab's ferry-admins group (LAB_ADMINS_GROUP_SID). alice is a member, bob is not.
ferryd reads the groups from the PAC (MS-PAC logon info) of the service ticket
the user presents; for a move, host2 reads them from the ticket host1 obtained
for alice by constrained delegation (S4U2Proxy), so the destination applies
the same rule to the same user."""
import re
import subprocess

import pytest

from conftest import (teardown_host, FERRYD, define_guest, enable_migration, heartbeat, kinit, make_host, remote_ferry,
                      wait_for)

ALICE_PW = "Alice-Passw0rd1"
BOB_PW = "Bob-Passw0rd1"


def restart(h, admins):
    """ferryd again with other --admin-principal values (the VMs keep running)."""
    if h.admins != list(admins):
        h.stop()
        h.admins = list(admins)
        h.start()


@pytest.fixture(scope="module")
def hosts(lab):
    sid = lab["LAB_ADMINS_GROUP_SID"]
    assert re.fullmatch(r"S-1-5-21-\d+-\d+-\d+-\d+", sid), sid
    extra = ["--admin-group-sid", sid]
    host1 = make_host("host1", admins=(), extra_args=extra)
    try:
        host2 = make_host("host2", admins=(), extra_args=extra)
    except BaseException:
        teardown_host(host1)
        raise
    try:
        enable_migration(host1, host2)
        for h in (host1, host2):
            (h.dir / "disks").mkdir(parents=True, exist_ok=True)
        yield host1, host2, sid
    finally:
        teardown_host(host1)
        teardown_host(host2)


@pytest.fixture
def tickets(hosts, tmp_path):
    host1, host2, _ = hosts
    restart(host1, ())
    restart(host2, ())
    for h in (host1, host2):
        h.mark = h.log.stat().st_size
    out = {}
    for user, pw in (("alice", ALICE_PW), ("bob", BOB_PW)):
        cc = tmp_path / f"{user}.ccache"
        r = kinit("client", user, pw, cc)
        assert r.returncode == 0, r.stderr
        out[user] = cc
    return out


def log_since(h):
    with open(h.log, errors="replace") as f:
        f.seek(h.mark)
        return f.read()


def test_bad_sid_is_refused_at_start():
    r = subprocess.run([str(FERRYD), "--admin-group-sid", "S-1-5-21-x"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2, r.stderr
    assert "admin-group-sid: 'S-1-5-21-x' is not a SID" in r.stderr, r.stderr


def test_member_administers_both_hosts_and_non_member_is_refused(hosts, tickets):
    host1, host2, sid = hosts
    for h in (host1, host2):
        r = remote_ferry(h.fqdn, "--json", "host", "show", ccache=tickets["alice"])
        assert r.returncode == 0, r.stdout + r.stderr
        assert '"settings"' in r.stdout
        r = remote_ferry(h.fqdn, "host", "show", ccache=tickets["bob"])
        assert r.returncode == 1, r.stdout + r.stderr
        assert (f"bob@LAB.TEST is not an administrator of {h.fqdn}: add it with admin-principal or "
                f"admin-group-sid in") in r.stderr, r.stderr
        # bob has a PAC too, just not that group
        assert "carried no group memberships" not in r.stderr
        log = log_since(h)
        assert re.search(r"connection from 10\.77\.0\.2 authenticated as alice@LAB\.TEST( \([a-z ]+\))?, "
                         r"[1-9]\d* group SIDs",
                         log), log
        assert re.search(r"connection from 10\.77\.0\.2 authenticated as bob@LAB\.TEST( \([a-z ]+\))?, "
                         r"[1-9]\d* group SIDs",
                         log), log
    r = remote_ferry(host1.fqdn, "host", "set", "max-migrations", "9", ccache=tickets["bob"])
    assert r.returncode == 1 and "bob@LAB.TEST is not an administrator" in r.stderr, r.stderr
    assert host1.ferry("host", "show")["settings"]["max-migrations"] == 2


def test_member_moves_a_running_guest_destination_checks_the_delegated_groups(hosts, tickets, guest):
    host1, host2, _ = hosts
    for h in (host1, host2):
        h.cleanup_vms()
        for f in (h.dir / "disks").iterdir():
            f.unlink()
    (host1.dir / "web1-data.qcow2").unlink(missing_ok=True)
    define_guest(host1, guest)
    host1.ferry("vm", "start", "web1")
    wait_for(lambda: heartbeat(host1, "web1") > 0, timeout=120, what="guest heartbeat on host1")

    r = remote_ferry(host1.fqdn, "vm", "compare", "web1", host2.fqdn, ccache=tickets["alice"])
    assert r.returncode == 0, r.stdout + r.stderr
    r = remote_ferry(host1.fqdn, "vm", "move", "web1", host2.fqdn, "--include-storage",
                     "--storage-path", host2.dir / "disks", ccache=tickets["alice"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "completed" in r.stdout
    assert host2.vm_names() == ["web1"] and host1.vm_names() == []
    beat = heartbeat(host2, "web1")
    wait_for(lambda: heartbeat(host2, "web1") > beat, timeout=30, what="web1 running on host2")
    # host2, with no admin-principal at all, let alice in from host1's migration
    # address: by the group SIDs in the PAC of the ticket host1 got for her
    log2 = log_since(host2)
    assert re.search(r"connection from 10\.78\.0\.11 authenticated as alice@LAB\.TEST( \([a-z ]+\))?, "
                     r"[1-9]\d* group SIDs", log2), log2
    assert not re.search(r"authenticated as (?!alice@LAB\.TEST)", log2), log2
    assert "not an administrator" not in log2


def test_destination_refuses_a_non_member_delegated_by_the_source(hosts, tickets, guest):
    """bob is an administrator of host1 by name; host2 knows only the group."""
    host1, host2, _ = hosts
    src = host2 if host2.vm_names() == ["web1"] else host1
    dst = host1 if src is host2 else host2
    if src.vm_names() != ["web1"]:
        define_guest(src, guest)
        src.ferry("vm", "start", "web1")
    restart(src, ("bob@LAB.TEST",))
    try:
        src.mark = src.log.stat().st_size
        dst.mark = dst.log.stat().st_size
        r = remote_ferry(src.fqdn, "host", "show", ccache=tickets["bob"])
        assert r.returncode == 0, r.stderr
        r = remote_ferry(src.fqdn, "vm", "move", "web1", dst.fqdn, "--include-storage",
                         "--storage-path", dst.dir / "disks", ccache=tickets["bob"])
        assert r.returncode == 1, r.stdout + r.stderr
        assert (f"bob@LAB.TEST is not an administrator of {dst.fqdn}: add it with admin-principal or "
                f"admin-group-sid in") in r.stderr, r.stderr
        assert re.search(r"authenticated as bob@LAB\.TEST.*, [1-9]\d* group SIDs", log_since(dst))
        assert src.ferry("vm", "show", "web1")["state"] == "running"
        assert dst.vm_names() == []
    finally:
        restart(src, ())
