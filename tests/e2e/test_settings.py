"""Issue 3, must show 1 and 2: host settings and the migration service.

Every setting is changed locally (control socket) and remotely (ferry -H with
alice's Kerberos ticket from the client namespace), survives a ferryd restart,
and a bad value is refused with its allowed range and changes nothing. The TCP
6600 listener follows the accepted migration networks, and a move from a
source outside them is refused."""
import json
import os
import re
import time

import pytest

from conftest import (qemus_in, GUEST_IP, define_guest, heartbeat, in_ns, kinit, remote_ferry,
                      wait_for)

ALICE_PW = "Alice-Passw0rd1"

DEFAULTS = {
    "migration-enabled": False,
    "max-migrations": 2,
    "max-storage-migrations": 2,
    "use-any-network": False,
    "auth": "credssp",
    "performance": "compression",
    "encryption": True,
    "migration-networks": [],
}


@pytest.fixture
def alice_cc(lab, tmp_path):
    cc = tmp_path / "alice.ccache"
    r = kinit("client", "alice", ALICE_PW, cc)
    assert r.returncode == 0, r.stderr
    return cc


def via(mode, host, cc, *args):
    """ferry --json ARGS on host: on its own socket, or with -H from the client."""
    if mode == "local":
        return host.ferry_raw("--json", *args)
    return remote_ferry(host.fqdn, "--json", *args, ccache=cc, timeout=60)


def ok(mode, host, cc, *args):
    r = via(mode, host, cc, *args)
    assert r.returncode == 0, f"ferry {' '.join(map(str, args))} ({mode}) failed:\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout) if r.stdout.strip() else None


def settings(mode, host, cc):
    return ok(mode, host, cc, "host", "show")["settings"]


def restart(host):
    host.stop()
    host.start()


# ---------------------------------------------------------------- must show 1

@pytest.mark.parametrize("mode", ["local", "remote"])
def test_show_has_the_seed_defaults(host1, alice_cc, mode):
    show = ok(mode, host1, alice_cc, "host", "show")
    assert show["host-name"] == "host1.lab.test"
    assert show["listen"] == ["10.77.0.11"]
    assert show["port"] == 6600
    for name, value in DEFAULTS.items():
        assert show["settings"][name] == value, (name, show["settings"])
    nets = ok(mode, host1, alice_cc, "migration", "network", "list")
    assert nets == {"networks": [], "use-any-network": False}


@pytest.mark.parametrize("mode", ["local", "remote"])
def test_settings_change_and_survive_a_restart(host1, alice_cc, mode):
    other = "remote" if mode == "local" else "local"
    ok(mode, host1, alice_cc, "host", "set", "max-migrations", "5", "max-storage-migrations", "3",
       "auth", "kerberos", "performance", "tcpip", "encryption", "off")
    ok(mode, host1, alice_cc, "migration", "enable")
    ok(mode, host1, alice_cc, "migration", "network", "add", "10.78.0.0/24", "--priority", "2")
    nets = ok(mode, host1, alice_cc, "migration", "network", "add", "fd00:78::/64")
    assert nets["networks"] == [{"cidr": "10.78.0.0/24", "priority": 2},
                                {"cidr": "fd00:78::/64", "priority": 1}]
    ok(mode, host1, alice_cc, "migration", "use-any-network", "on")

    want = dict(DEFAULTS, **{"max-migrations": 5, "max-storage-migrations": 3, "auth": "kerberos",
                             "performance": "tcpip", "encryption": False, "migration-enabled": True,
                             "use-any-network": True,
                             "migration-networks": [{"cidr": "10.78.0.0/24", "priority": 2},
                                                    {"cidr": "fd00:78::/64", "priority": 1}]})
    before = settings(mode, host1, alice_cc)
    for name, value in want.items():
        assert before[name] == value, (name, before)
    # the other way of asking sees the same
    assert settings(other, host1, alice_cc) == before

    restart(host1)
    assert settings("local", host1, alice_cc) == before
    assert settings("remote", host1, alice_cc) == before

    # and back: disable, remove, off; that persists too
    ok(mode, host1, alice_cc, "migration", "disable")
    ok(mode, host1, alice_cc, "migration", "network", "remove", "fd00:78::/64")
    ok(mode, host1, alice_cc, "migration", "use-any-network", "off")
    ok(mode, host1, alice_cc, "host", "set", "auth", "credssp")
    after = settings(mode, host1, alice_cc)
    assert after["migration-enabled"] is False
    assert after["use-any-network"] is False
    assert after["auth"] == "credssp"
    assert after["migration-networks"] == [{"cidr": "10.78.0.0/24", "priority": 2}]
    restart(host1)
    assert settings(other, host1, alice_cc) == after
    assert ok(other, host1, alice_cc, "migration", "network", "list") == {
        "networks": [{"cidr": "10.78.0.0/24", "priority": 2}], "use-any-network": False}


# (arguments, words the refusal must contain, exit status)
BAD = [
    (("host", "set", "max-migrations", "0"), ["max-migrations", "1..64"], 1),
    (("host", "set", "max-migrations", "65"), ["1..64"], 1),
    (("host", "set", "max-storage-migrations", "two"), ["max-storage-migrations", "1..64"], 1),
    (("host", "set", "auth", "ntlm"), ["auth", "credssp|kerberos"], 1),
    (("host", "set", "performance", "smb"), ["tcpip|compression|multichannel"], 1),
    (("host", "set", "encryption", "maybe"), ["encryption", "on|off"], 1),
    (("host", "set", "channels", "1"), ["2..16"], 1),
    (("host", "set", "no-such-setting", "1"), ["unknown host setting 'no-such-setting'", "max-migrations"], 1),
    # several at once: all or none, the good one before the bad one does not stick
    (("host", "set", "max-migrations", "7", "auth", "ntlm"), ["credssp|kerberos"], 1),
    (("host", "set", "max-migrations"), ["NAME VALUE"], 2),
    (("host", "set", "max-migrations", "3", "max-migrations", "4"), ["given twice"], 2),
    (("migration", "network", "add", "10.78.0.0/33"), ["not a network in CIDR notation", "10.78.0.0/24"], 1),
    (("migration", "network", "add", "10.78.0.0"), ["not a network in CIDR notation"], 1),
    (("migration", "network", "add", "bogus/24"), ["not a network in CIDR notation"], 1),
    (("migration", "network", "add", "10.78.0.5/24"), ["host bits", "10.78.0.0/24"], 1),
    (("migration", "network", "add", "10.80.0.0/24", "--priority", "1001"), ["0 to 1000"], 2),
    (("migration", "network", "remove", "10.99.0.0/24"), ["10.99.0.0/24 is not a migration network"], 1),
    (("migration", "use-any-network", "maybe"), ["on or off"], 2),
]


@pytest.mark.parametrize("mode", ["local", "remote"])
def test_bad_values_are_refused_with_the_allowed_range_and_change_nothing(host1, alice_cc, mode):
    # a non-default state, so that "nothing changed" means something
    ok("local", host1, alice_cc, "migration", "enable")
    ok("local", host1, alice_cc, "migration", "network", "add", "10.78.0.0/24")
    before = settings(mode, host1, alice_cc)
    saved = (host1.state / "host.json").read_text()
    wrong = []
    for args, words, status in BAD:
        r = via(mode, host1, alice_cc, *args)
        if r.returncode != status:
            wrong.append(f"{args}: exit {r.returncode}, not {status}: {r.stderr.strip()}")
        missing = [w for w in words if w not in r.stderr]
        if missing:
            wrong.append(f"{args}: message lacks {missing}: {r.stderr.strip()}")
        now = settings(mode, host1, alice_cc)
        if now != before:
            wrong.append(f"{args}: settings changed: {before} -> {now}")
    assert not wrong, "\n".join(wrong)
    assert (host1.state / "host.json").read_text() == saved
    restart(host1)
    assert settings(mode, host1, alice_cc) == before


def test_host_bits_and_spelling_name_one_network(host1):
    """A network has one spelling: a differently written IPv6 network is the same entry."""
    host1.ferry("migration", "network", "add", "fd00:78:0::/64")
    host1.ferry("migration", "network", "add", "fd00:78::/64", "--priority", "3")
    assert host1.ferry("migration", "network", "list")["networks"] == [{"cidr": "fd00:78::/64", "priority": 3}]
    host1.ferry("migration", "network", "remove", "fd00:78:0:0::/64")
    assert host1.ferry("migration", "network", "list")["networks"] == []


# ---------------------------------------------------------------- must show 2

def listening(host):
    """Addresses TCP 6600 is bound to inside the host's namespace."""
    out = in_ns(host.name, ["ss", "-Htln", "sport", "= :6600"]).stdout
    return sorted(l.split()[3].rsplit(":", 1)[0].strip("[]") for l in out.splitlines() if l.strip())


def reachable(from_ns, ip, port=6600):
    r = in_ns(from_ns, ["timeout", "5", "bash", "-c", f"exec 3<>/dev/tcp/{ip}/{port}"], check=False)
    return r.returncode == 0


@pytest.mark.parametrize("mode", ["local", "remote"])
def test_listener_follows_the_accepted_networks(host1, host2, alice_cc, mode):
    # management address only: the migration address is closed
    assert listening(host1) == ["10.77.0.11"]
    assert reachable("host2", "10.77.0.11")
    assert not reachable("host2", "10.78.0.11")

    ok(mode, host1, alice_cc, "migration", "network", "add", "10.78.0.0/24")
    wait_for(lambda: listening(host1) == ["10.77.0.11", "10.78.0.11"], timeout=10,
             what="6600 on 10.78.0.11")
    assert reachable("host2", "10.78.0.11")

    # a network without an address of this host adds nothing; never a wildcard
    ok(mode, host1, alice_cc, "migration", "network", "add", "10.99.0.0/24")
    ok(mode, host1, alice_cc, "migration", "use-any-network", "on")
    # ferryd re-binds within a second of each change; watch it for longer than that
    allowed = {"10.77.0.11", "10.78.0.11"}
    deadline = time.time() + 2.5
    while time.time() < deadline:
        assert set(listening(host1)) <= allowed, listening(host1)
        time.sleep(0.1)
    wait_for(lambda: listening(host1) == sorted(allowed), timeout=10, what="6600 on both addresses")
    ok(mode, host1, alice_cc, "migration", "use-any-network", "off")

    # it persists: a restarted ferryd listens there from the start
    restart(host1)
    assert listening(host1) == ["10.77.0.11", "10.78.0.11"]

    ok(mode, host1, alice_cc, "migration", "network", "remove", "10.78.0.0/24")
    wait_for(lambda: listening(host1) == ["10.77.0.11"], timeout=10, what="6600 gone from 10.78.0.11")
    assert not reachable("host2", "10.78.0.11")
    assert reachable("host2", "10.77.0.11")
    restart(host1)
    assert listening(host1) == ["10.77.0.11"]


def test_source_outside_the_accepted_networks_is_refused(host1, host2, alice_cc, guest):
    for h in (host1, host2):
        h.ferry("migration", "enable")
        h.ferry("host", "set", "auth", "kerberos")
    host1.ferry("migration", "network", "add", "10.78.0.0/24")
    host2.ferry("migration", "network", "add", "10.78.0.12/32")   # not host1's 10.78.0.11
    disks2 = host2.dir / "disks"
    disks2.mkdir(parents=True, exist_ok=True)
    define_guest(host1, guest, ip=GUEST_IP)
    host1.ferry("vm", "start", "web1")
    wait_for(lambda: heartbeat(host1, "web1") > 0, timeout=120, what="guest heartbeat")
    src_disk = host1.ferry("vm", "show", "web1")["disks"][0]["path"]

    def move():
        return remote_ferry(host1.fqdn, "vm", "move", "web1", host2.fqdn, "--include-storage",
                            "--storage-path", disks2, ccache=alice_cc)

    r = move()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "host2.lab.test does not accept migrations from 10.78.0.11" in r.stderr, r.stderr
    assert "10.78.0.12/32" in r.stderr
    # nothing moved, nothing left on host2
    assert host1.ferry("vm", "show", "web1")["state"] == "running"
    assert host2.vm_names() == []
    assert list(disks2.iterdir()) == []
    assert not (host2.state / "vms" / "web1").exists()
    assert qemus_in(host2) == []
    assert listening(host2) == ["10.77.0.12", "10.78.0.12"]
    assert re.search(r"does not accept migrations from 10\.78\.0\.11", host1.log.read_text())
    beat = heartbeat(host1, "web1")
    wait_for(lambda: heartbeat(host1, "web1") > beat, timeout=30, what="guest still running on host1")

    # the same move, once host2 accepts any network: the refusal was the network's
    host2.ferry("migration", "use-any-network", "on")
    r = move()
    assert r.returncode == 0, r.stdout + r.stderr
    assert host2.vm_names() == ["web1"]
    assert host2.ferry("vm", "show", "web1")["state"] == "running"
    assert host1.vm_names() == []
    assert not os.path.exists(src_disk)
