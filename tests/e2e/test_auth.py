"""Issue 3, must show 3: in the lab domain (a real Samba AD DC), only the users
and hosts that are allowed get a running guest moved, and the destination sees
the user who asked.

Every refusal leaves the guest running on the source and nothing on the
destination. Users: alice (an administrator of both hosts), bob (in the
directory, an administrator of host1 only where a test says so)."""
import os
import re
import subprocess

import pytest

from conftest import (LAB_ENV, dc, define_guest, heartbeat, kinit, make_host, on, qemus_in, remote_ferry,
                      teardown_host, wait_for)

ALICE_PW = "Alice-Passw0rd1"
BOB_PW = "Bob-Passw0rd1"


BASELINE = {"migration-enabled": True, "auth": "kerberos", "use-any-network": False,
            "migration-networks": [{"cidr": "10.78.0.0/24", "priority": 1}]}


@pytest.fixture(scope="module")
def hosts(lab, guest):
    """host1 and host2 for the whole module: booting the guest is the slow part,
    so one guest serves every test (a refused move must not disturb it anyway)."""
    host1 = make_host("host1")
    try:
        host2 = make_host("host2")
    except BaseException:
        teardown_host(host1)
        raise
    try:
        for h in (host1, host2):
            (h.dir / "disks").mkdir(parents=True, exist_ok=True)
        yield host1, host2
    finally:
        teardown_host(host1)
        teardown_host(host2)


def baseline(h):
    """Migration enabled with kerberos on 10.78.0.0/24 only."""
    s = h.ferry("host", "show")["settings"]
    if {k: s[k] for k in BASELINE} == BASELINE:
        return
    for n in s["migration-networks"]:
        h.ferry("migration", "network", "remove", n["cidr"])
    h.ferry("migration", "network", "add", "10.78.0.0/24")
    h.ferry("host", "set", "migration-enabled", "on", "auth", "kerberos", "use-any-network", "off")


@pytest.fixture
def pair(hosts, guest, request, tmp_path):
    """Both hosts at the baseline, the guest running on host1 (booted again only
    if an earlier test left it elsewhere), alice's ticket in the client namespace.
    Indirect parameter: host1's administrators (default alice only)."""
    host1, host2 = hosts
    admins1 = list(getattr(request, "param", ("alice@LAB.TEST",)))
    if host1.admins != admins1:
        host1.stop()            # the guest keeps running; ferryd re-attaches
        host1.admins = admins1
        host1.start()
    for h in (host1, host2):
        baseline(h)
    on1 = host1.vm_names()
    if on1 != ["web1"] or host2.vm_names() or host1.ferry("vm", "show", "web1")["state"] != "running":
        host1.cleanup_vms()
        host2.cleanup_vms()
        for h in (host1, host2):
            for f in (h.dir / "disks").iterdir():
                f.unlink()
        (host1.dir / "web1-data.qcow2").unlink(missing_ok=True)
        define_guest(host1, guest)
        host1.ferry("vm", "start", "web1")
    wait_for(lambda: heartbeat(host1, "web1") > 0, timeout=120, what="guest heartbeat on host1")
    for h in (host1, host2):
        h.mark = h.log.stat().st_size
    cc = tmp_path / "alice.ccache"
    r = kinit("client", "alice", ALICE_PW, cc)
    assert r.returncode == 0, r.stderr
    return host1, host2, cc


def log_since(h):
    """What ferryd on h logged during this test."""
    with open(h.log, errors="replace") as f:
        f.seek(h.mark)
        return f.read()


def unchanged(src, dst, vm="web1"):
    """The refused move changed nothing: the guest runs on src, dst has no trace."""
    info = src.ferry("vm", "show", vm)
    assert info["state"] == "running"
    assert os.path.exists(info["disks"][0]["path"])
    assert dst.vm_names() == []
    assert list((dst.dir / "disks").iterdir()) == []
    assert not (dst.state / "vms" / vm).exists()
    assert qemus_in(dst) == []
    beat = heartbeat(src, vm)
    wait_for(lambda: heartbeat(src, vm) > beat, timeout=90, what=f"{vm} still running on {src.name}")


def remote_move(src, dst, cc, vm="web1"):
    return remote_ferry(src.fqdn, "vm", "move", vm, dst.fqdn, "--include-storage",
                        "--storage-path", dst.dir / "disks", ccache=cc)


def local_move(src, dst, cc, vm="web1"):
    return src.ferry_raw("vm", "move", vm, dst.fqdn, "--include-storage",
                         "--storage-path", dst.dir / "disks", ccache=cc)


def moved(src, dst, vm="web1"):
    assert dst.vm_names() == [vm]
    assert dst.ferry("vm", "show", vm)["state"] == "running"
    assert src.vm_names() == []
    beat = heartbeat(dst, vm)
    wait_for(lambda: heartbeat(dst, vm) > beat, timeout=90, what=f"{vm} running on {dst.name}")


def test_authorized_user_is_carried_by_constrained_delegation(pair):
    host1, host2, cc = pair
    r = remote_move(host1, host2, cc)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "completed" in r.stdout
    moved(host1, host2)
    # host1 saw alice come from the client; host2 saw alice, not HOST1$, come from
    # host1's migration address: the ticket was obtained by S4U2Proxy for her
    log1, log2 = log_since(host1), log_since(host2)
    assert "connection from 10.77.0.2 authenticated as alice@LAB.TEST" in log1
    assert re.search(r"connection from 10\.78\.0\.11 authenticated as alice@LAB\.TEST", log2), log2
    assert not re.search(r"authenticated as (?!alice@LAB\.TEST)", log2), log2

    # and back the same way: HOST2$ may delegate to ferry/host1 too
    r = remote_move(host2, host1, cc)
    assert r.returncode == 0, r.stdout + r.stderr
    moved(host2, host1)
    assert re.search(r"connection from 10\.78\.0\.12 authenticated as alice@LAB\.TEST", log_since(host1))


def test_wrong_password_and_no_ticket(pair, tmp_path):
    host1, host2, _ = pair
    cc = tmp_path / "wrong.ccache"
    r = kinit("client", "alice", "not-her-password", cc)
    assert r.returncode != 0
    assert "Password incorrect" in r.stderr
    for args in (("host", "show"), ("vm", "move", "web1", host2.fqdn, "--include-storage",
                                    "--storage-path", host2.dir / "disks")):
        r = remote_ferry(host1.fqdn, *args, ccache=cc)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "no Kerberos ticket" in r.stderr and "run kinit" in r.stderr, r.stderr
    # nobody got in
    assert "authenticated as" not in log_since(host1)
    unchanged(host1, host2)


def test_unknown_principal_and_user_who_is_no_administrator(pair, tmp_path):
    host1, host2, _ = pair
    cc = tmp_path / "nobody.ccache"
    r = kinit("client", "nosuchuser", "Whatever-1", cc)
    assert r.returncode != 0
    assert "not found in Kerberos database" in r.stderr
    r = remote_ferry(host1.fqdn, "host", "show", ccache=cc)
    assert r.returncode == 1 and "no Kerberos ticket" in r.stderr, r.stderr

    # bob is in the directory but not one of host1's administrators
    cc = tmp_path / "bob.ccache"
    assert kinit("client", "bob", BOB_PW, cc).returncode == 0
    for args in (("host", "show"), ("host", "set", "max-migrations", "9"),
                 ("vm", "move", "web1", host2.fqdn, "--include-storage", "--storage-path", host2.dir / "disks")):
        r = remote_ferry(host1.fqdn, *args, ccache=cc)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "bob@LAB.TEST is not an administrator of host1.lab.test" in r.stderr, r.stderr
    assert host1.ferry("host", "show")["settings"]["max-migrations"] == 2
    assert "bob" not in log_since(host2)
    unchanged(host1, host2)


@pytest.mark.parametrize("pair", [("alice@LAB.TEST", "bob@LAB.TEST")], indirect=True)
def test_administrator_of_the_source_but_not_the_destination(pair, tmp_path):
    host1, host2, _ = pair
    cc = tmp_path / "bob.ccache"
    assert kinit("client", "bob", BOB_PW, cc).returncode == 0
    # bob may run host1 ...
    r = remote_ferry(host1.fqdn, "host", "show", ccache=cc)
    assert r.returncode == 0, r.stderr
    # ... but host2 refuses him: it sees bob, delegated by host1, and he is not its administrator
    r = remote_move(host1, host2, cc)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "bob@LAB.TEST is not an administrator of host2.lab.test" in r.stderr, r.stderr
    assert "connection from 10.77.0.11 authenticated as bob@LAB.TEST" in log_since(host2)
    unchanged(host1, host2)


def test_source_host_without_delegation_to_the_destination(pair):
    host1, host2, cc = pair
    dc("undelegate", "HOST1", "host2.lab.test")
    try:
        assert "ferry/host2.lab.test" not in dc("delegation", "HOST1").stdout
        r = remote_move(host1, host2, cc)
    finally:
        dc("delegate", "HOST1", "host2.lab.test", "kerberos-only")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "refused delegation from HOST1$ to ferry/host2.lab.test" in r.stderr, r.stderr
    assert "samba-tool delegation add-service 'HOST1$' ferry/host2.lab.test" in r.stderr, r.stderr
    assert "authenticated as" not in log_since(host2)
    unchanged(host1, host2)
    assert "msDS-AllowedToDelegateTo: ferry/host2.lab.test" in dc("delegation", "HOST1").stdout


def test_credssp_asked_remotely_fails(pair):
    host1, host2, cc = pair
    host1.ferry("host", "set", "auth", "credssp")
    r = remote_move(host1, host2, cc)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "0x8009030E" in r.stderr, r.stderr
    assert "run the move on host1.lab.test itself" in r.stderr       # sign in to the source
    assert "ferry host set auth kerberos" in r.stderr                # or switch to kerberos
    assert "authenticated as" not in log_since(host2)
    unchanged(host1, host2)


def test_credssp_locally_works_and_moving_back_needs_signing_in_there(pair, tmp_path):
    host1, host2, _ = pair
    for h in (host1, host2):
        h.ferry("host", "set", "auth", "credssp")
    cc1 = tmp_path / "alice-host1.ccache"
    assert kinit("host1", "alice", ALICE_PW, cc1).returncode == 0
    r = local_move(host1, host2, cc1)
    assert r.returncode == 0, r.stdout + r.stderr
    moved(host1, host2)
    assert "uid 0 authenticated as alice@LAB.TEST (forwarded ticket)" in log_since(host1)
    assert re.search(r"connection from 10\.78\.0\.11 authenticated as alice@LAB\.TEST", log_since(host2))

    # back from host2 without signing in to host2: alice's ticket lives on host1 only
    host1.mark = host1.log.stat().st_size
    r = local_move(host2, host1, tmp_path / "none.ccache")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "0x8009030E" in r.stderr and "run kinit on host2.lab.test" in r.stderr, r.stderr
    assert "authenticated as" not in log_since(host1)
    unchanged(host2, host1)

    # signed in to host2, it goes back
    cc2 = tmp_path / "alice-host2.ccache"
    assert kinit("host2", "alice", ALICE_PW, cc2).returncode == 0
    r = local_move(host2, host1, cc2)
    assert r.returncode == 0, r.stdout + r.stderr
    moved(host2, host1)


@pytest.mark.parametrize("side", ["source", "destination"])
def test_migration_disabled_on_either_end(pair, side):
    host1, host2, cc = pair
    off = host1 if side == "source" else host2
    off.ferry("migration", "disable")
    r = remote_move(host1, host2, cc)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"live migrations are disabled on {off.fqdn}" in r.stderr, r.stderr
    assert "ferry migration enable" in r.stderr
    unchanged(host1, host2)
    assert "starting VM" not in log_since(host2)


def test_local_request_uses_protocol_transition_where_allowed(pair, tmp_path):
    """kerberos, asked on host1 itself with a ticket that cannot be delegation
    evidence (not forwardable): host1 obtains alice's ticket by S4U2Self, which
    the directory allows only with "Use any authentication protocol"."""
    host1, host2, _ = pair
    cc = tmp_path / "alice-host1-nofwd.ccache"
    r = subprocess.run(on("host1", "env", f"KRB5CCNAME=FILE:{cc}", "kinit", "-F", "alice@LAB.TEST"),
                       input=ALICE_PW + "\n", capture_output=True, text=True, timeout=30, env=LAB_ENV)
    assert r.returncode == 0, r.stderr
    # "Kerberos only": refused, nothing moves
    r = local_move(host1, host2, cc)
    assert r.returncode == 1, r.stdout
    assert "protocol transition failed too" in r.stdout + r.stderr
    unchanged(host1, host2)
    try:
        dc("delegate", "HOST1", "host2.lab.test", "any-protocol")
        r = local_move(host1, host2, cc)
        assert r.returncode == 0, r.stdout + r.stderr
        moved(host1, host2)
        assert "carried by protocol transition (S4U2Self)" in log_since(host1)
        assert re.search(r"connection from 10\.78\.0\.11 authenticated as alice@LAB\.TEST", log_since(host2))
    finally:
        dc("delegate", "HOST1", "host2.lab.test", "kerberos-only")
