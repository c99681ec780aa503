#!/usr/bin/python3
"""ferry live-move benchmark, relative to plain QEMU migration and to libvirt
in the same run.

Sets up its own lab (prefix $FERRY_LAB_PREFIX, default "fb"), a ferryd and a
libvirtd per host namespace and three copies of the test guest: one owned by
ferry, one (the QEMU reference) run by this script as bare QEMU processes with
the command line ferryd would use, one (the libvirt reference) run by
libvirt. Then, interleaved, it moves the QEMU reference with plain
QEMU-to-QEMU migration over QMP (no TLS, no ferry), the libvirt reference
with `virsh migrate --live`, and the ferry guest with `ferry -H ... vm move`
(Kerberos, from the client namespace), once per performance option and per
migration link (unshaped, or shaped with tc), and reports medians,
bytes on the migration network and candidate/reference ratios. It never
asserts on times. See bench/README.md.

Run as root:  /usr/bin/python3 bench/move_bench.py [--reps 3] [--json]
"""
import argparse
import fcntl
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import libvirt_ref  # noqa: E402  (bench/libvirt_ref.py)

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("FERRY_BUILD", ROOT / "build"))
FERRYD = BUILD / "src/daemon/ferryd"
FERRY = BUILD / "src/cli/ferry"
GUEST = Path(os.environ.get("FERRY_GUEST", ROOT / "guest/out"))
PREFIX = os.environ.get("FERRY_LAB_PREFIX", "fb")
# a private directory (mode 0700) made fresh for each run, never a fixed name
# in a world-writable place
WORK = Path(os.environ.get("FERRY_BENCH_DIR") or tempfile.mkdtemp(prefix="ferry-bench."))
LAB = ROOT / "lab/lab.sh"
LAB_ENV = dict(os.environ, FERRY_LAB_PREFIX=PREFIX)
LAB_ENV.pop("FERRY_LAB_DIR", None)
LAB_STATE = Path(f"/run/ferry-lab-{PREFIX}")
QEMU = os.environ.get("FERRY_QEMU", "qemu-system-x86_64")

HOSTS = {
    "host1": {"ip": "10.77.0.11", "mig": "10.78.0.11", "fqdn": "host1.lab.test"},
    "host2": {"ip": "10.77.0.12", "mig": "10.78.0.12", "fqdn": "host2.lab.test"},
}
ALICE = ("alice", "Alice-Passw0rd1")
FERRY_VM = "fbvm"
FERRY_VM_IP = "10.77.0.100"
REF_VM = "fbref"
REF_VM_IP = "10.77.0.101"
REF_MAC = "52:54:00:fb:00:01"
REF_TAP = "fbref0"
SWITCH = "External"
REF_MIG_PORT = 49152
REF_NBD_PORT = 49153
DISK_MIB = 64
POLL_S = 0.2  # query-migrate for pass counting (max-passes); the reference reacts to QMP events
FORCED_DOWNTIME_MS = 2000000


class BenchError(Exception):
    pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ns(name):
    return PREFIX + name


def run(cmd, check=True, timeout=120, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise BenchError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def on(node, *cmd):
    """argv for cmd on a lab node, with the lab's names and krb5.conf given
    explicitly (lab.sh exec): nothing in the machine's /etc is used."""
    return [str(LAB), "exec", node] + [str(c) for c in cmd]


def in_ns(name, cmd, **kw):
    return run(on(name, *cmd), env=LAB_ENV, **kw)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def mig_wire():
    """Byte counters of the hosts' ports on the lab's migration switch (bridge
    mig0 in namespace PREFIXmig): port -> (bytes the host sent into the
    switch, bytes the switch delivered to the host)."""
    r = run(["ip", "-n", ns("mig"), "-s", "-j", "link", "show"], timeout=30)
    return {link["ifname"]: (link["stats64"]["rx"]["bytes"], link["stats64"]["tx"]["bytes"])
            for link in json.loads(r.stdout) if link.get("master") == "mig0"}


def wire_delta(before):
    """Bytes on the migration network since mig_wire() returned before: sent by
    all hosts (both directions; with a shaped link this includes what the
    shaper dropped) and delivered to them. The counters count a GSO frame of
    the veth once, with one set of headers: unshaped, both sides count those;
    shaped, tbf cuts them into MTU-sized frames before delivery, so delivered
    is a few percent above sent."""
    after = mig_wire()
    return {"wire-bytes": sum(a[0] - before.get(p, (0, 0))[0] for p, a in after.items()),
            "wire-bytes-delivered": sum(a[1] - before.get(p, (0, 0))[1] for p, a in after.items())}


# ---------------------------------------------------------------- QMP client

class QMPError(Exception):
    def __init__(self, cmd, err):
        super().__init__(f"{cmd}: {err.get('class')}: {err.get('desc')}")
        self.err = err


class QMP:
    """Line-delimited JSON over the QEMU monitor socket; events are queued."""

    def __init__(self, path, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise BenchError(f"cannot connect to QMP at {path}")
                time.sleep(0.05)
        self.buf = b""
        self.events = []
        if self._read(timeout) is None:
            raise BenchError(f"no QMP greeting on {path}")
        self.cmd("qmp_capabilities")

    def _read(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                raise ConnectionError("QMP connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, args=None, timeout=30):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read(max(0.0, deadline - time.monotonic()))
            if m is None:
                raise BenchError(f"QMP {name}: no answer within {timeout} s")
            if "event" in m:
                self.events.append(m)
                continue
            if "error" in m:
                raise QMPError(name, m["error"])
            return m.get("return")

    def wait_event(self, pred, timeout):
        """The first queued or arriving event for which pred(event) holds, or None."""
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if pred(e):
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            m = self._read(left)
            if m is None:
                return None
            if "event" in m:
                self.events.append(m)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def mig_event(*states):
    return lambda e: e["event"] == "MIGRATION" and e["data"]["status"] in states


# ---------------------------------------------------------------- ferryd hosts

class Host:
    def __init__(self, name):
        self.name = name
        self.fqdn = HOSTS[name]["fqdn"]
        self.ip = HOSTS[name]["ip"]
        self.mig_ip = HOSTS[name]["mig"]
        self.dir = WORK / name
        self.state = self.dir / "state"
        self.rundir = self.dir / "run"
        self.socket = self.rundir / "control.sock"
        self.log = self.dir / "ferryd.log"
        self.proc = None

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        logf = open(self.log, "a")
        cmd = on(self.name, FERRYD, "--state-dir", self.state,
                 "--run-dir", self.rundir, "--host-name", self.fqdn, "--listen", self.ip,
                 "--keytab", LAB_STATE / f"{self.name}.keytab",
                 "--admin-principal", f"{ALICE[0]}@LAB.TEST")
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=LAB_ENV)
        logf.close()
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"ferryd on {self.name} exited: {self.log.read_text()[-2000:]}")
            if self.socket.exists() and self.ferry_raw("host", "show").returncode == 0:
                return
            time.sleep(0.1)
        raise BenchError(f"ferryd on {self.name} did not come up")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def ferry_raw(self, *args, timeout=120):
        cmd = on(self.name, FERRY, "--socket", self.socket, *args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=LAB_ENV)

    def ferry(self, *args, timeout=120):
        r = self.ferry_raw("--json", *args, timeout=timeout)
        if r.returncode != 0:
            raise BenchError(f"ferry {' '.join(map(str, args))} on {self.name}: {r.stderr.strip()}")
        return json.loads(r.stdout) if r.stdout.strip() else None

    def log_tail(self, n=30):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


LOG_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) ferryd\[\d+\]: \w+: (.*)$", re.M)


def log_events(text):
    """(seconds of the day, message) per ferryd log line."""
    return [(int(h) * 3600 + int(m) * 60 + int(sec) + int(ms) / 1000, msg)
            for h, m, sec, ms, msg in LOG_LINE.findall(text)]


def stage_times(src_log, dst_log, vm, elapsed):
    """Per-stage seconds of one move from the two ferryd logs: the source logs
    'job N vm VM peer HOST: phase PHASE: started' when a phase starts and
    'phase completed' at the end; each stage lasts until the next one starts
    (the finish phase counts as switchover, the job's stage; the queue is left
    out). On the destination: 'starting VM' -> 'phase prepare: planned here'
    (QEMU start + preparation)."""
    step = re.compile(rf"job \d+ vm {re.escape(vm)} peer \S+: phase (\w+): (?:started|\w+ completed)")
    ev = []
    for t, m in log_events(src_log):
        hit = step.match(m)
        phase = hit and ("switchover" if hit[1] == "finish" else hit[1])
        if phase and phase != "queued" and (not ev or ev[-1][1] != phase):
            ev.append((t, phase))
    out = {}
    if not ev or ev[-1][1] != "completed":
        return out
    if elapsed is not None:
        out["setup"] = round(elapsed - (ev[-1][0] - ev[0][0]), 3)
    for (t, st), (t2, _) in zip(ev, ev[1:]):
        out[st] = round(t2 - t, 3)
    d = log_events(dst_log)
    start = [t for t, m in d if m.startswith(f"starting VM {vm}:")]
    ready = [t for t, m in d if m.startswith(f"vm {vm} ") and ": phase prepare: planned here" in m]
    if start and ready:
        out["dest-prepare"] = round(ready[-1] - start[-1], 3)
    return out


def remote_ferry(fqdn, *args, ccache, timeout=600):
    cmd = on("client", "env", f"KRB5CCNAME=FILE:{ccache}", FERRY, "-H", fqdn, *args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=LAB_ENV)


# ---------------------------------------------------------------- observed pause

class Pinger:
    """ping -D -i 0.01 from the client namespace; the longest gap between two
    replies is the pause the network saw (guest paused + re-learning)."""

    def __init__(self, ip, interval=0.01):
        self.replies = []
        self.p = subprocess.Popen(["ip", "netns", "exec", ns("client"), "ping", "-D", "-n", "-i", str(interval),
                                   "-W", "1", ip], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.t = threading.Thread(target=self._reader, daemon=True)
        self.t.start()

    def _reader(self):
        for line in self.p.stdout:
            m = re.match(r"\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)", line)
            if m:
                self.replies.append(float(m.group(1)))

    def wait_reply_after(self, t, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.replies and self.replies[-1] > t:
                return True
            time.sleep(0.02)
        return False

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.t.join(2)

    def max_gap_ms(self, start, end):
        """Longest gap between two replies that ends after start (the move's
        start); if no reply came after the last one, the gap up to end (a lower
        bound). None if the guest did not answer just before start."""
        ts = self.replies
        before = [t for t in ts if t <= start]
        if not before or start - before[-1] > 0.5:
            return None
        gaps = [b - a for a, b in zip(ts, ts[1:]) if b > start]
        gaps.append(end - ts[-1])
        return round(max(gaps) * 1000)


# ---------------------------------------------------------------- reference guest

class RefVM:
    """The reference guest: bare QEMU processes in the host namespaces, with
    the command line ferryd builds (qemu.c build_argv), driven over QMP."""

    def __init__(self, shape, cmdline):
        self.uuid = str(uuid.uuid4())
        self.shape = shape  # accel, machine, cpu, m, smp from ferry's own QEMU
        self.cmdline = cmdline
        self.where = None  # host name
        self.disk = None
        self.qmp = None
        self.pids = {}

    def dir(self, host):
        return WORK / "ref" / host

    def argv(self, host, incoming):
        d = self.dir(host)
        a = [QEMU, "-daemonize", "-pidfile", f"{d}/qemu.pid", "-nodefaults", "-no-user-config",
             "-display", "none", "-vga", "none", "-msg", "timestamp=on",
             "-accel", self.shape["accel"], "-machine", self.shape["machine"], "-cpu", self.shape["cpu"],
             "-m", self.shape["m"], "-smp", self.shape["smp"],
             "-name", f"{REF_VM},process=bench-{REF_VM}", "-uuid", self.uuid,
             "-qmp", f"unix:{d}/qmp.sock,server=on,wait=off",
             "-chardev", f"file,id=con0,path={d}/console.log,append=on", "-serial", "chardev:con0",
             "-kernel", str(GUEST / "vmlinuz"), "-initrd", str(GUEST / "initrd.img"), "-append", self.cmdline,
             "-blockdev", f"driver=file,filename={self.disk if not incoming else incoming[1]},node-name=file0,cache.direct=off",
             "-blockdev", "driver=qcow2,file=file0,node-name=disk0",
             "-device", "virtio-blk-pci,drive=disk0,id=vd0",
             "-netdev", f"tap,id=net0,ifname={REF_TAP},script=no,downscript=no",
             "-device", f"virtio-net-pci,netdev=net0,mac={REF_MAC},id=nic0"]
        if incoming:
            a += ["-S", "-incoming", "defer"]
        return a

    def launch(self, host, incoming=None):
        """Starts QEMU in host's namespace; incoming = (True, disk path) for a destination."""
        d = self.dir(host)
        d.mkdir(parents=True, exist_ok=True)
        for f in ("qmp.sock", "qemu.pid", "console.log"):
            (d / f).unlink(missing_ok=True)
        with open(d / "qemu.log", "w") as lf:
            r = subprocess.run(["ip", "netns", "exec", ns(host)] + self.argv(host, incoming),
                               stdout=lf, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise BenchError(f"reference QEMU on {host} failed: {(d / 'qemu.log').read_text()[-1000:]}")
        self.pids[host] = int((d / "qemu.pid").read_text().split()[0])
        return QMP(d / "qmp.sock")

    def console(self):
        try:
            return (self.dir(self.where) / "console.log").read_text(errors="replace")
        except OSError:
            return ""

    def kill(self, host):
        pid = self.pids.pop(host, None)
        if pid and pid_is(pid, self.uuid):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, self.uuid, 5)

    def kill_all(self):
        if self.qmp:
            self.qmp.close()
            self.qmp = None
        for h in list(self.pids):
            self.kill(h)


def last_beat(text):
    beats = re.findall(r"ferry-heartbeat (\d+)", text)
    return int(beats[-1]) if beats else 0


def guest_ready(text, records=50):
    """Booted, the memory dirtier did a full pass, N disk records written."""
    text = text[text.rfind("ferry-guest: ready"):] if "ferry-guest: ready" in text else ""
    seqs = [int(x) for x in re.findall(r"ferry-disk seq=(\d+)", text)]
    return "ferry-memory ok" in text and (records == 0 or (bool(seqs) and seqs[-1] >= records))


GUEST_ERRORS = re.compile(r"(Kernel panic[^\r\n]*|BUG:[^\r\n]*|Oops[^\r\n]*|general protection[^\r\n]*|"
                          r"ferry-[a-z]+ (?:CORRUPT|ERROR)[^\r\n]*)")


def read_text(path):
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def pid_is(pid, marker):
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def wait_gone(pid, marker, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not pid_is(pid, marker):
            return True
        time.sleep(0.01)
    return False


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, opts):
        self.o = opts
        self.hosts = {n: Host(n) for n in HOSTS}
        self.ccache = WORK / "client" / "alice.ccache"
        self.ref = None
        self.lv = None  # libvirt_ref.Guest
        self.lv_daemons = {}  # host name -> libvirt_ref.Daemon
        self.libvirt_meta = None
        self.link = None
        self.ferry_at = "host1"
        self.ferry_disk_dir = WORK / "disks-a"
        self.ref_disk_dir = WORK / "disks-a"
        self.results = []
        self.settings = {}
        self.pingers = []
        self.lab_up = False

    # ---- setup
    def setup(self):
        if os.geteuid() != 0:
            raise BenchError("must run as root")
        for f in (FERRYD, FERRY, GUEST / "vmlinuz", GUEST / "initrd.img"):
            if not f.exists():
                raise BenchError(f"{f} is missing (build with scripts/build.sh; guest with guest/build.sh)")
        if self.o.libvirt and (why := libvirt_ref.missing()):
            raise BenchError(f"libvirt reference: {why}; or run with --no-libvirt")
        t0 = time.monotonic()
        WORK.mkdir(mode=0o700, exist_ok=True)
        WORK.chmod(0o711)  # QEMU runs as ferry-qemu: it passes through to the disks
        for d in ("client", "disks-a", "disks-b", "ref"):
            (WORK / d).mkdir(exist_ok=True)
        log(f"lab '{PREFIX}' up")
        self.lab_up = True
        run([ROOT / "lab/lab.sh", "up"], env=LAB_ENV, timeout=120)
        run([ROOT / "lab/dc.sh", "up"], env=LAB_ENV, timeout=300)
        for src, dst in (("HOST1", "host2.lab.test"), ("HOST2", "host1.lab.test")):
            run([ROOT / "lab/dc.sh", "delegate", src, dst, "kerberos-only"], env=LAB_ENV, timeout=60)
        log("ferryd on host1 and host2")
        for h in self.hosts.values():
            h.start()
            h.ferry("switch", "create", SWITCH, "--uplink", "vmnet0")
            h.ferry("migration", "enable")
            h.ferry("migration", "network", "add", "10.78.0.0/24")
            h.ferry("host", "set", "auth", "kerberos", "encryption", self.o.encryption)
            h.ferry("host", "set", "storage-roots", str(WORK))
            # the reference guest's tap, on the same switch bridge
            in_ns(h.name, ["ip", "tuntap", "add", "dev", REF_TAP, "mode", "tap"])
            in_ns(h.name, ["ip", "link", "set", REF_TAP, "master", SWITCH, "up"])
        self.settings = self.hosts["host1"].ferry("host", "show")["settings"]
        r = subprocess.run(on("client", "env", f"KRB5CCNAME=FILE:{self.ccache}", "kinit", f"{ALICE[0]}@LAB.TEST"),
                           input=ALICE[1] + "\n", capture_output=True, text=True, timeout=30, env=LAB_ENV)
        if r.returncode != 0:
            raise BenchError(f"kinit alice: {r.stderr}")

        log(f"guests: {self.o.memory} MiB, ferry.dirty={self.o.dirty}")
        h1 = self.hosts["host1"]
        cmdline = ("console=ttyS0 clocksource=hpet panic=-1 ferry.ip={ip}/24 "
                   f"ferry.disk=/dev/vda ferry.dirty={self.o.dirty}")
        # ferry's QEMU runs as ferry-qemu: it reads the kernel from WORK, not
        # from the clone, whose parent directories it may not pass through
        kdir = WORK / "guest"
        kdir.mkdir(mode=0o755, exist_ok=True)
        for f in ("vmlinuz", "initrd.img"):
            shutil.copy2(GUEST / f, kdir / f)
        h1.ferry("vm", "define", FERRY_VM, "--memory", f"{self.o.memory}M", "--kernel", kdir / "vmlinuz",
                 "--initrd", kdir / "initrd.img", "--cmdline", cmdline.format(ip=FERRY_VM_IP),
                 "--disk", f"{self.ferry_disk_dir}/{FERRY_VM}.qcow2,size={DISK_MIB}M", "--nic", SWITCH)
        h1.ferry("vm", "start", FERRY_VM)
        # ferry's own QEMU command line gives the reference its accel/machine/cpu
        pid = int((h1.rundir / "vms" / FERRY_VM / "qemu.pid").read_text().split()[0])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")
        self.ferry_argv = argv
        shape = {k: argv[argv.index("-" + k) + 1] for k in ("accel", "machine", "cpu", "m", "smp")}
        self.shape = shape
        self.ref = RefVM(shape, cmdline.format(ip=REF_VM_IP))
        self.ref.disk = self.ref_disk_dir / f"{REF_VM}.qcow2"
        run(["qemu-img", "create", "-q", "-f", "qcow2", self.ref.disk, f"{DISK_MIB}M"])
        self.ref.qmp = self.ref.launch("host1")
        self.ref.where = "host1"
        if self.o.libvirt:
            self.setup_libvirt(shape, cmdline.format(ip=libvirt_ref.VM_IP), kdir)

        deadline = time.time() + 180
        while not (guest_ready(self.ferry_console(h1)) and guest_ready(self.ref.console()) and
                   (not self.lv or guest_ready(self.lv.console()))):
            if time.time() > deadline:
                raise BenchError("the guests did not become ready within 180 s")
            time.sleep(1)
        for ip in (FERRY_VM_IP, REF_VM_IP) + ((libvirt_ref.VM_IP,) if self.lv else ()):
            if in_ns("client", ["ping", "-c", "3", "-W", "2", ip], check=False).returncode != 0:
                raise BenchError(f"guest {ip} does not answer ping from the client")
        log(f"setup done in {time.monotonic() - t0:.0f} s; reference QEMU: -accel {shape['accel']} "
            f"-machine {shape['machine']} -cpu {shape['cpu']} -m {shape['m']} -smp {shape['smp']}")

    def setup_libvirt(self, shape, cmdline, kdir):
        """A libvirtd per host namespace (private mount namespaces, see
        libvirt_ref.py) and the libvirt reference guest on host1."""
        log("libvirtd on host1 and host2")
        (WORK / "libvirt").mkdir(exist_ok=True)
        for name, h in HOSTS.items():
            d = libvirt_ref.Daemon(name, ns(name), h["mig"], WORK / "libvirt" / name)
            self.lv_daemons[name] = d
            d.start()
        emulator = shutil.which(QEMU) or QEMU
        self.lv = libvirt_ref.Guest(self.lv_daemons, shape, cmdline, kdir / "vmlinuz", kdir / "initrd.img",
                                    WORK / "disks-a" / f"{libvirt_ref.VM}.qcow2", SWITCH, emulator,
                                    WORK / "libvirt")
        run(["qemu-img", "create", "-q", "-f", "qcow2", self.lv.disk, f"{DISK_MIB}M"])
        self.lv.create("host1")
        d = self.lv_daemons["host1"]
        self.libvirt_meta = {
            "version": run(["libvirtd", "--version"], check=False).stdout.strip(),
            "libvirtd.conf": (d.root / "etc/libvirtd.conf").read_text(),
            "qemu.conf": (d.root / "etc/qemu.conf").read_text(),
            "domain-xml": self.lv.xml(self.lv.disk), "qemu-argv": self.lv.qemu_argv(), "virsh-migrate": {}}

    def set_link(self, link):
        """The migration network unshaped, or shaped to a rate by tc (lab.sh)."""
        if link == "unshaped":
            run([LAB, "unthrottle-migration"], env=LAB_ENV, timeout=60)
        else:
            run([LAB, "throttle-migration", link], env=LAB_ENV, timeout=60)
        self.link = link
        log(f"migration network: {link}")

    # ---- reference: plain QEMU migration over QMP
    def ref_move(self, storage):
        ref = self.ref
        src = ref.where
        dst = "host2" if src == "host1" else "host1"
        dst_ip = HOSTS[dst]["mig"]
        sq = ref.qmp
        new_dir = WORK / ("disks-b" if self.ref_disk_dir.name == "disks-a" else "disks-a")
        dst_disk = new_dir / f"{REF_VM}.qcow2" if storage else ref.disk
        pinger = self._pinger(REF_VM_IP)
        beat = last_beat(ref.console())
        w0 = time.time()
        wire0 = mig_wire()
        t0 = time.monotonic()
        if storage:
            in_ns(dst, ["qemu-img", "create", "-q", "-f", "qcow2", dst_disk, f"{DISK_MIB}M"])
        t_launch = time.monotonic()
        dq = ref.launch(dst, incoming=(True, dst_disk))
        t_dest_up = time.monotonic()
        dq.cmd("migrate-incoming", {"uri": f"tcp:{dst_ip}:{REF_MIG_PORT}"})
        t_pre = None
        if storage:
            dq.cmd("nbd-server-start", {"addr": {"type": "inet",
                                                 "data": {"host": dst_ip, "port": str(REF_NBD_PORT)}}})
            dq.cmd("block-export-add", {"type": "nbd", "id": "exp-disk0", "node-name": "disk0",
                                        "name": "disk0", "writable": True})
        t_prepared = time.monotonic()
        if storage:
            sq.cmd("blockdev-add", {"driver": "nbd", "node-name": "mig-tgt0", "export": "disk0",
                                    "server": {"type": "inet", "host": dst_ip, "port": str(REF_NBD_PORT)}})
            t_storage_start = time.monotonic()
            sq.cmd("blockdev-mirror", {"job-id": "mig-mirror0", "device": "disk0", "target": "mig-tgt0",
                                       "sync": "full", "auto-dismiss": False})
            ev = sq.wait_event(lambda e: e["event"] == "BLOCK_JOB_READY", 600)
            if ev is None:
                raise BenchError("reference mirror not ready within 600 s")
        t_storage = time.monotonic() if storage else None
        sq.cmd("migrate-set-capabilities", {"capabilities": [
            {"capability": "events", "state": True},
            {"capability": "pause-before-switchover", "state": storage}]})
        sq.cmd("migrate-set-parameters", {"max-bandwidth": 100 << 30,
                                          "downtime-limit": int(self.settings["downtime-ms"])})
        sq.events.clear()
        t_migrate = time.monotonic()
        sq.cmd("migrate", {"uri": f"tcp:{dst_ip}:{REF_MIG_PORT}"})
        forced = False
        max_passes = int(self.settings["max-passes"])
        deadline = time.monotonic() + 600
        while True:
            ev = sq.wait_event(mig_event("pre-switchover", "completed", "failed", "cancelled"), POLL_S)
            if ev is None:
                info = sq.cmd("query-migrate")
                st = info.get("status")
                if st in ("completed", "pre-switchover", "failed", "cancelled"):
                    ev = {"data": {"status": st}}
                elif not forced and info.get("ram", {}).get("dirty-sync-count", 0) > max_passes:
                    # the same safety net as ferry (max-passes): never needed with the defaults
                    sq.cmd("migrate-set-parameters", {"downtime-limit": FORCED_DOWNTIME_MS})
                    forced = True
                if time.monotonic() > deadline:
                    raise BenchError("reference migration did not finish within 600 s")
                if ev is None:
                    continue
            st = ev["data"]["status"]
            if st in ("failed", "cancelled"):
                info = sq.cmd("query-migrate")
                raise BenchError(f"reference migration {st}: {info.get('error-desc')}")
            if st == "pre-switchover":
                if t_pre is not None:
                    continue  # seen by query-migrate first, then as the event (or the other way)
                t_pre = time.monotonic()
                # the guest is paused: finish the mirror without pivot, then continue
                sq.cmd("block-job-cancel", {"device": "mig-mirror0"})
                if sq.wait_event(lambda e: e["event"] == "JOB_STATUS_CHANGE" and
                                 e["data"]["status"] == "concluded", 120) is None:
                    raise BenchError("reference mirror did not conclude")
                sq.cmd("job-dismiss", {"id": "mig-mirror0"})
                sq.cmd("migrate-continue", {"state": "pre-switchover"})
                continue
            t_completed = time.monotonic()
            break
        if storage:
            dq.cmd("nbd-server-stop")
        dq.cmd("cont")  # while still 'inmigrate', QEMU starts it when the stream ends
        t_cont = time.monotonic()
        info = sq.cmd("query-migrate")
        try:
            sq.cmd("quit", timeout=5)
        except (ConnectionError, BenchError, OSError):
            pass
        sq.close()
        pid = ref.pids.pop(src)
        if not wait_gone(pid, ref.uuid, 5):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, ref.uuid, 5)
        if storage:
            os.unlink(ref.disk)
            ref.disk = dst_disk
            self.ref_disk_dir = new_dir
        t_end = time.monotonic()
        wire = wire_delta(wire0)
        ref.qmp, ref.where = dq, dst
        st = dq.cmd("query-status")["status"]
        deadline = time.time() + 30
        while st != "running" and time.time() < deadline:
            time.sleep(0.05)
            st = dq.cmd("query-status")["status"]
        if st != "running":
            raise BenchError(f"reference guest is {st} on {dst} after the migration")
        health = self._after_move(ref.console, beat, w0, pinger, self.restart_ref)
        return {**health, **wire, "case": "reference+storage" if storage else "reference", "kind": "reference",
                "storage": storage, "from": src, "to": dst, "ok": True,
                "total-s": round(t_end - t0, 3), "wall-s": round(t_end - t0, 3),
                "dest-start-s": round(t_dest_up - t0, 3),
                # the same stage boundaries as ferry's job: setup (destination QEMU, migrate-incoming,
                # NBD), storage (mirror until ready), memory (migrate until pre-switchover or
                # completed), switchover (mirror completion, rest of the stream, cont), cleanup (quit)
                "stages-s": {k: round(v, 3) for k, v in {
                    "setup": (t_storage or t_migrate) - t0 - ((t_storage - t_storage_start) if storage else 0),
                    "storage": (t_storage - t_storage_start) if storage else None,
                    "memory": (t_pre or t_completed) - t_migrate,
                    "switchover": t_cont - (t_pre or t_completed),
                    "cleanup": t_end - t_cont,
                    "dest-prepare": t_prepared - t_launch}.items() if v is not None},
                "migrate-total-ms": info.get("total-time"), "downtime-ms": info.get("downtime"),
                "setup-ms": info.get("setup-time"), "passes": info.get("ram", {}).get("dirty-sync-count"),
                "ram-transferred": info.get("ram", {}).get("transferred"), "forced": forced}

    def _pinger(self, ip):
        if not self.o.ping:
            return None
        p = Pinger(ip)
        self.pingers.append(p)
        time.sleep(0.3)  # a few replies before the move starts
        return p

    def ferry_console(self, host):
        # ferryd's serial console file of the VM (what 'ferry vm console' shows)
        return read_text(host.state / "vms" / FERRY_VM / "console.log")

    def _after_move(self, console, beat, start, pinger, restart):
        """Not timing: does the guest run on after the move? QEMU 7.2 under TCG
        corrupts guest memory in some migrations (see README). A guest that
        crashed, hangs or logged kernel errors is restarted (restart()) and
        waited for, so that every measurement moves a healthy guest in its
        steady state."""
        end = time.time()
        deadline = end + 3  # the guest logs a heartbeat every second
        alive = False
        while time.time() < deadline:
            text = console()
            if last_beat(text) > beat:
                alive = True
                break
            if "Kernel panic" in text:
                break
            time.sleep(0.1)
        text = console()
        errors = GUEST_ERRORS.findall(text)
        gap = None
        if pinger:
            if alive:
                pinger.wait_reply_after(end, 5)
            pinger.stop()
            self.pingers.remove(pinger)
            gap = pinger.max_gap_ms(start, time.time()) if alive else None
        res = {"guest": "ok" if alive and not errors else "error" if alive else "crashed", "ping-gap-ms": gap}
        if errors:
            res["guest-messages"] = errors[:3]
        if not alive or errors:
            log(f"  guest {res['guest']} after the move: {errors[:2] or 'no heartbeat'}; restarting it")
        if not alive or errors:
            mark = len(console())
            restart()
            deadline = time.time() + 120
            # ferry's console file is appended to on a restart, the reference's starts anew
            while not guest_ready(text[mark:] if len(text := console()) >= mark else text, records=0):
                if time.time() > deadline:
                    raise BenchError("the guest did not come up again within 120 s after a restart")
                time.sleep(0.5)
        return res

    def restart_ref(self):
        ref = self.ref
        ref.qmp.close()
        ref.kill(ref.where)
        ref.qmp = ref.launch(ref.where)

    def restart_ferry(self):
        h = self.hosts[self.ferry_at]
        h.ferry("vm", "kill", FERRY_VM)
        h.ferry("vm", "start", FERRY_VM)

    # ---- second reference: virsh migrate between two libvirtds
    def libvirt_move(self, storage):
        lv = self.lv
        src, dst = lv.where, lv.other(lv.where)
        new_dir = WORK / ("disks-b" if lv.disk.parent.name == "disks-a" else "disks-a")
        pinger = self._pinger(libvirt_ref.VM_IP)
        beat = last_beat(lv.console())
        w0 = time.time()
        wire0 = mig_wire()
        m = lv.migrate(storage, new_dir / f"{libvirt_ref.VM}.qcow2", int(self.settings["downtime-ms"]))
        wire = wire_delta(wire0)
        res = {"case": "libvirt+storage" if storage else "libvirt", "kind": "libvirt", "storage": storage,
               "from": src, "to": dst, **m, **wire}
        self.libvirt_meta["virsh-migrate"]["storage" if storage else "memory"] = lv.last_argv
        if not m["ok"]:
            if pinger:
                pinger.stop()
                self.pingers.remove(pinger)
            log(f"  FAILED: {m['error']}")
            for name, d in self.lv_daemons.items():
                log(f"  libvirtd {name}:\n{d.log_tail(10)}")
            if lv.state(lv.where) != "running":
                lv.restart()
            return res
        res.update(self._after_move(lv.console, beat, w0, pinger, lv.restart))
        return res

    # ---- candidate: ferry vm move
    def ferry_move(self, perf, storage):
        src = self.hosts[self.ferry_at]
        dst = self.hosts["host2" if self.ferry_at == "host1" else "host1"]
        for h in self.hosts.values():
            h.ferry("host", "set", "performance", perf)
        args = ["--json", "vm", "move", FERRY_VM, dst.fqdn]
        new_dir = WORK / ("disks-b" if self.ferry_disk_dir.name == "disks-a" else "disks-a")
        if storage:
            args += ["--include-storage", "--storage-path", new_dir]
        pinger = self._pinger(FERRY_VM_IP)
        logpos = {h.name: h.log.stat().st_size for h in (src, dst)}
        beat = last_beat(self.ferry_console(src))
        w0 = time.time()
        wire0 = mig_wire()
        t0 = time.monotonic()
        r = remote_ferry(src.fqdn, *args, ccache=self.ccache)
        wall = time.monotonic() - t0
        wire = wire_delta(wire0)
        try:
            job = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
        except ValueError:
            job = {}
        case = f"ferry {perf}" + ("+storage" if storage else "")
        res = {"case": case, "kind": "ferry", "performance": perf, "storage": storage,
               "from": src.name, "to": dst.name, "wall-s": round(wall, 3), **wire}
        if r.returncode != 0 or job.get("stage") != "completed":
            if pinger:
                pinger.stop()
                self.pingers.remove(pinger)
            res.update(ok=False, error=(job.get("error") or r.stderr.strip() or r.stdout.strip())[:500],
                       job=job)
            log(f"  FAILED: {res['error']}")
            log(f"  ferryd {src.name}:\n{src.log_tail(15)}\n  ferryd {dst.name}:\n{dst.log_tail(15)}")
            # where is the VM now? (a failed move rolls back to the source)
            if FERRY_VM in [v["name"] for v in dst.ferry("vm", "list")["vms"]]:
                self.ferry_at = dst.name
            return res
        self.ferry_at = dst.name
        if storage:
            self.ferry_disk_dir = new_dir
        logs = {}
        for h in (src, dst):
            with open(h.log, errors="replace") as f:
                f.seek(logpos[h.name])
                logs[h.name] = f.read()
        res.update(ok=True, **{"total-s": job.get("elapsed-seconds"), "downtime-ms": job.get("downtime-ms"),
                               "passes": job.get("pass"), "ram-transferred": job.get("memory-transferred"),
                               "stages-s": stage_times(logs[src.name], logs[dst.name], FERRY_VM,
                                                       job.get("elapsed-seconds"))})
        res.update(prediction_error(job))
        res.update(self._after_move(lambda: self.ferry_console(dst), beat, w0, pinger, self.restart_ferry))
        return res

    # ---- the run
    def plan(self):
        cands = [(p, False) for p in self.o.performance]
        if self.o.storage_perf != "none":
            cands.append((self.o.storage_perf, True))
        return cands

    def measure(self):
        """Per link (all repetitions on one link, so that ferry's prediction
        learns from moves on the same link), per repetition and case: the
        QEMU reference, the libvirt reference, then ferry."""
        plan = self.plan()
        for link in self.o.links:
            self.set_link(link)
            for rep in range(1, self.o.reps + 1):
                for perf, storage in plan:
                    sfx = "+storage" if storage else ""
                    moves = [(lambda: self.ref_move(storage), "reference" + sfx)]
                    if self.lv:
                        moves.append((lambda: self.libvirt_move(storage), "libvirt" + sfx))
                    moves.append((lambda: self.ferry_move(perf, storage), f"ferry {perf}" + sfx))
                    for fn, what in moves:
                        r = fn()
                        r["rep"] = rep
                        r["link"] = link
                        self.results.append(r)
                        if r.get("ok"):
                            log(f"{link} rep {rep} {what:26} {r['from']}->{r['to']}: total {r['total-s']:.2f} s, "
                                f"wall {r['wall-s']:.2f} s, downtime {r.get('downtime-ms')} ms, "
                                f"ping gap {r.get('ping-gap-ms')} ms, wire {r.get('wire-bytes', 0) / 1e6:.1f} MB, "
                                f"passes {r.get('passes')}, guest {r.get('guest')}")

    # ---- teardown
    def teardown(self):
        for p in self.pingers:
            p.stop()
        if self.ref:
            self.ref.kill_all()
        if self.lv:
            self.lv.destroy()
        for d in self.lv_daemons.values():
            d.stop(self.lv.uuid if self.lv else None)
        for h in self.hosts.values():
            if h.proc and h.proc.poll() is None:
                for vm in (FERRY_VM,):
                    h.ferry_raw("vm", "kill", vm, timeout=30)
                h.stop()
        if self.lab_up:
            log(f"lab '{PREFIX}' down")
            run([ROOT / "lab/lab.sh", "down"], env=LAB_ENV, check=False, timeout=120)
        if not self.o.keep_work and WORK.exists():
            shutil.rmtree(WORK, ignore_errors=True)


# ---------------------------------------------------------------- report

def prediction_error(job):
    """The move's recorded prediction against what happened (job JSON:
    prediction, actual); error = predicted / actual - 1, in percent."""
    p, a = job.get("prediction") or {}, job.get("actual") or {}
    out = {"predicted-s": p.get("total-seconds"), "actual-s": a.get("total-seconds"),
           "predicted-downtime-ms": p.get("downtime-ms"), "actual-downtime-ms": a.get("downtime-ms"),
           "converges": p.get("converges"), "prediction-unavailable": p.get("unavailable"),
           "prediction": p}
    if out["predicted-s"] is not None and out["actual-s"]:
        out["prediction-error-pct"] = round((out["predicted-s"] / out["actual-s"] - 1) * 100, 1)
    if out["predicted-downtime-ms"] is not None and out["actual-downtime-ms"]:
        out["downtime-error-pct"] = round((out["predicted-downtime-ms"] / out["actual-downtime-ms"] - 1) * 100, 1)
    return out


RATIO_KEYS = ("total-s", "wall-s", "downtime-ms", "ping-gap-ms", "wire-bytes")
# summary key holding the reference's case name, ratio key: per reference
REFERENCES = (("reference", "ratio", "QEMU"), ("libvirt", "ratio-libvirt", "libvirt"))


def summarize(results, o):
    """Medians per (link, case); for ferry's cases the ratios to the QEMU
    reference ('ratio', as before) and to the libvirt reference
    ('ratio-libvirt') of the same link."""
    keys = []
    for r in results:
        k = (r.get("link", "unshaped"), r["case"])
        if k not in keys:
            keys.append(k)
    rows = {}
    for link, c in keys:
        rs = [r for r in results if r.get("link", "unshaped") == link and r["case"] == c]
        ok = [r for r in rs if r.get("ok")]
        row = rows[(link, c)] = {"link": link, "case": c, "kind": rs[0]["kind"], "storage": rs[0]["storage"],
                                 "runs": len(rs), "failed": len(rs) - len(ok),
                                 "guest-ok": sum(1 for r in ok if r.get("guest") == "ok")}
        for k in ("total-s", "wall-s", "downtime-ms", "ping-gap-ms", "passes", "wire-bytes",
                  "wire-bytes-delivered", "predicted-s", "actual-s", "prediction-error-pct",
                  "predicted-downtime-ms", "actual-downtime-ms", "downtime-error-pct"):
            row[k] = median([r.get(k) for r in ok])
        row["stages-s"] = {k: median([r.get("stages-s", {}).get(k) for r in ok]) for k in STAGES}
        # the case's first move on this link: on the first link, nothing learned yet
        first = next((r for r in ok if r.get("prediction-error-pct") is not None), None)
        if first:
            row["first-prediction-error-pct"] = first["prediction-error-pct"]
            row["first-downtime-error-pct"] = first.get("downtime-error-pct")
            row["first-rate-source"] = (first.get("prediction") or {}).get("rate-source")

    def ratio(a, b):
        return round(a / b, 2) if a is not None and b not in (None, 0) else None

    for (link, c), row in rows.items():
        if row["kind"] != "ferry":
            continue
        for name, key, _ in REFERENCES:
            mem, sto = rows.get((link, name)), rows.get((link, name + "+storage"))
            base = sto if row["storage"] and sto else mem
            row["reference" if name == "reference" else f"{name}-reference"] = base["case"] if base else None
            row[key] = {k: ratio(row[k], base[k]) if base else None for k in RATIO_KEYS}
            if row["storage"] and mem:
                row.setdefault("ratio-vs-memory-reference", {})["total-s" if name == "reference"
                                                                 else f"total-s-{name}"] = \
                    ratio(row["total-s"], mem["total-s"])
    return list(rows.values())


STAGES = ("setup", "storage", "memory", "switchover", "cleanup", "dest-prepare")


def onoff(v):
    return {True: "on", False: "off"}.get(v, v)


def fmt(v, spec):
    """format(v, spec), or '-' right-aligned to the field's width."""
    if v is not None:
        return format(v, spec)
    width = re.match(r"\d*", spec.lstrip("+- ")).group(0)
    return format("-", f">{width}") if width else "-"


def table(rows, meta):
    out = []
    out.append(f"ferry move bench, {meta['date']}, {meta['machine']}")
    out.append(f"guest {meta['memory-mib']} MiB, ferry.dirty={meta['dirty']} MiB/s, {meta['reps']} reps "
               f"interleaved; ferry: encryption {onoff(meta['ferry-settings'].get('encryption'))}, "
               f"downtime-ms {meta['ferry-settings'].get('downtime-ms')}, "
               f"max-passes {meta['ferry-settings'].get('max-passes')}, "
               f"channels {meta['ferry-settings'].get('channels')}")
    out.append("reference: plain QEMU migrate over QMP, no TLS, same downtime-limit, "
               "max-bandwidth 100 GiB/s; +storage: NBD + blockdev-mirror")
    if meta.get("libvirt"):
        out.append(f"libvirt: {meta['libvirt']['version']}, virsh migrate --live over qemu+tcp, no TLS, "
                   "same max downtime; memory only --unsafe (shared disk), +storage --copy-storage-all")
    out.append("medians; wire MB: bytes the hosts sent on the migration network during the move (1 MB = 10^6 B)")
    for link in dict.fromkeys(r["link"] for r in rows):
        lrows = [r for r in rows if r["link"] == link]
        out.append("")
        out.append(f"=== migration link: {link} ===")
        hdr = (f"{'case':28} {'ok':>5} {'total s':>8} {'wall s':>7} {'downtime ms':>11} {'ping gap ms':>11} "
               f"{'wire MB':>8} {'passes':>6} {'guest ok':>8}")
        out.append(hdr)
        out.append("-" * len(hdr))
        for r in lrows:
            out.append(f"{r['case']:28} {r['runs'] - r['failed']:>2}/{r['runs']:<2} {fmt(r['total-s'], '8.2f')} "
                       f"{fmt(r['wall-s'], '7.2f')} {fmt(r['downtime-ms'], '11.0f')} "
                       f"{fmt(r['ping-gap-ms'], '11.0f')} "
                       f"{fmt(r['wire-bytes'] / 1e6 if r['wire-bytes'] is not None else None, '8.1f')} "
                       f"{fmt(r['passes'], '6.0f')} {r['guest-ok']:>5}/{r['runs'] - r['failed']:<2}")
        out.append("")
        refs = [(key, label) for name, key, label in REFERENCES
                if any(r["kind"] == ("reference" if name == "reference" else name) for r in lrows)]
        cols = ("total", "wall", "down", "ping", "wire")
        out.append(f"{'ratios, ferry / reference':28} " + "   ".join(f"{'vs ' + label:^34}" for _, label in refs)
                   + f"   {'prediction error %':^18}")
        out.append(f"{'case':28} " + "   ".join(" ".join(f"{c:>6}" for c in cols) for _ in refs)
                   + f"   {'median':>8} {'first':>8}")
        for r in lrows:
            if r["kind"] == "ferry":
                out.append(f"{r['case']:28} " + "   ".join(
                    " ".join(fmt((r.get(key) or {}).get(k), "6.2f") for k in RATIO_KEYS) for key, _ in refs)
                    + f"   {fmt(r['prediction-error-pct'], '+8.0f')} {fmt(r.get('first-prediction-error-pct'), '+8.0f')}")
        out.append("")
        out.append("stage medians, s (ferry: ferryd's log; reference: the bench's QMP timestamps; "
                   "dest-prepare: destination QEMU start to migrate-incoming issued; "
                   "libvirt: its QEMU logs, memory includes storage and switchover, see bench/README.md)")
        out.append(f"{'case':28} " + " ".join(f"{k:>12}" for k in STAGES))
        for r in lrows:
            if any(v is not None for v in r["stages-s"].values()):
                out.append(f"{r['case']:28} " + " ".join(fmt(r["stages-s"].get(k), "12.2f") for k in STAGES))
        out.append("")
        out.append("prediction medians (ferry: the job's prediction against its actual; total: first byte "
                   "sent to the guest running there; error = predicted / actual - 1; first: the case's first "
                   "move on this link, and where its rate came from)")
        out.append(f"{'case':28} {'predicted s':>11} {'actual s':>9} {'error %':>8} {'pred. down ms':>13} "
                   f"{'actual down ms':>14} {'error %':>8} {'first %':>8} {'first down %':>12} {'first rate':>12}")
        for r in lrows:
            if r["kind"] == "ferry":
                out.append(f"{r['case']:28} {fmt(r['predicted-s'], '11.2f')} {fmt(r['actual-s'], '9.2f')} "
                           f"{fmt(r['prediction-error-pct'], '+8.0f')} {fmt(r['predicted-downtime-ms'], '13.0f')} "
                           f"{fmt(r['actual-downtime-ms'], '14.0f')} {fmt(r['downtime-error-pct'], '+8.0f')} "
                           f"{fmt(r.get('first-prediction-error-pct'), '+8.0f')} "
                           f"{fmt(r.get('first-downtime-error-pct'), '+12.0f')} {r.get('first-rate-source') or '-':>12}")
        for r in lrows:
            q = r.get("ratio-vs-memory-reference")
            if q:
                out.append("")
                out.append(f"({r['case']}: total / memory-only reference = {fmt(q.get('total-s'), '.2f')}x"
                           + (f", / memory-only libvirt = {fmt(q.get('total-s-libvirt'), '.2f')}x"
                              if "total-s-libvirt" in q else "") + ")")
    return "\n".join(out)


def machine_notes(shape):
    cpu = ""
    try:
        m = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        cpu = m.group(1).strip() if m else ""
    except OSError:
        pass
    qv = run([QEMU, "--version"], check=False).stdout.splitlines()
    return (f"{os.cpu_count()} cores ({cpu}), accel {shape.get('accel', '?')}, "
            f"{qv[0] if qv else 'QEMU ?'}, kernel {platform.release()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="repetitions per case (default 3)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    ap.add_argument("--performance", default="tcpip,compression,multichannel",
                    help="ferry performance options to run without storage (comma list)")
    ap.add_argument("--storage-perf", default="compression",
                    help="performance option for the --include-storage case, or 'none' (default compression)")
    ap.add_argument("--encryption", choices=("on", "off"), default="on",
                    help="ferry's encryption setting (default on, ferry's default; the reference never uses TLS)")
    ap.add_argument("--memory", type=int, default=256, help="guest MiB (default 256)")
    ap.add_argument("--dirty", type=int, default=16, help="guest ferry.dirty, MiB/s (default 16)")
    ap.add_argument("--link", default="unshaped,1gbit",
                    help="migration network for each case (comma list): 'unshaped', or a tc rate such as "
                         "1gbit to shape it to (lab.sh throttle-migration); default unshaped,1gbit")
    ap.add_argument("--no-libvirt", dest="libvirt", action="store_false",
                    help="leave out the libvirt reference (virsh migrate)")
    ap.add_argument("--no-ping", dest="ping", action="store_false", help="do not measure the ping gap")
    ap.add_argument("--keep-work", action="store_true", help="keep the work directory (logs) after the run")
    o = ap.parse_args()
    o.performance = [p for p in o.performance.split(",") if p]
    for p in o.performance + ([o.storage_perf] if o.storage_perf != "none" else []):
        if p not in ("tcpip", "compression", "multichannel"):
            ap.error(f"unknown performance option {p}")
    o.links = list(dict.fromkeys(x.strip().lower() for x in o.link.split(",") if x.strip()))
    for x in o.links:
        if x != "unshaped" and not re.fullmatch(r"\d+(\.\d+)?[kmgt]?(bit|bps)", x):
            ap.error(f"--link {x}: 'unshaped' or a tc rate such as 1gbit, 500mbit")
    if not o.links:
        ap.error("--link: at least one")

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if os.geteuid() != 0:
        ap.error("must run as root")
    # one run per lab prefix: a second one would tear this lab down (lab.sh up does)
    lock_path = Path(f"/run/lock/ferry-bench-{PREFIX}.lock")
    lock = open(lock_path, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        ap.error(f"another move_bench.py runs with lab prefix '{PREFIX}' ({lock_path})")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        return run_bench(o, t0=time.monotonic())
    finally:
        lock_path.unlink(missing_ok=True)
        lock.close()


def run_bench(o, t0):
    b = Bench(o)
    rc = 0
    try:
        b.setup()
        b.measure()
    except BaseException as e:
        log(f"bench failed: {e!r}")
        for h in b.hosts.values():
            if h.log.exists():
                log(f"ferryd {h.name} log tail:\n{h.log_tail()}")
        rc = 1
    finally:
        b.teardown()
    if rc:
        return rc
    meta = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine_notes(b.shape),
            "memory-mib": o.memory, "dirty": o.dirty, "reps": o.reps, "ferry-settings": b.settings,
            "reference-argv": b.ref.argv("host2", (True, "DISK")) if b.ref else None,
            "ferry-argv": b.ferry_argv, "links": o.links, "libvirt": b.libvirt_meta,
            "duration-s": round(time.monotonic() - t0, 1)}
    rows = summarize(b.results, o)
    if o.json:
        print(json.dumps({"meta": meta, "summary": rows, "runs": b.results}, indent=2))
    else:
        print(table(rows, meta))
        bad = [r for r in b.results if r.get("guest") not in (None, "ok")]
        if bad:
            print(f"NOTE: {len(bad)} of {len(b.results)} moves left the guest crashed or with kernel errors "
                  f"(column 'guest'); known QEMU 7.2 TCG bug, see bench/README.md")
        print(f"(whole run {meta['duration-s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
