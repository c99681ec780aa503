"""libvirt as a second reference for bench/move_bench.py.

One libvirtd per lab host namespace, each in a private mount namespace of its
own: its own /run (hence /run/libvirt and its sockets), /var (/var/lib/libvirt,
/var/cache/libvirt, /var/log/libvirt) and /etc/libvirt, all bound from
directories under the bench's work directory. So the two daemons neither see
each other's state nor that of a system libvirtd, and nothing on the machine
itself is touched. Each has its own host_uuid (libvirt refuses to migrate to
a host with its own UUID) and listens on its migration address only
(qemu+tcp, auth_tcp "none", no TLS).

The guest has the shape of the bench's other two guests (kernel, initrd,
command line, memory, vCPUs, machine, CPU, qcow2 data disk, virtio NIC on the
same bridge) and moves with

  virsh -c qemu+tcp://SRC/system migrate --live --verbose
        {--unsafe | --copy-storage-all --xml DEST.xml} fblv qemu+tcp://DST/system
        --migrateuri tcp://DST:49160 --listen-address DST [--disks-uri tcp://DST:49161]

run in the source host's namespace. See bench/README.md.
"""
import os
import ctypes
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

VM = "fblv"
VM_IP = "10.77.0.102"
MAC = "52:54:00:fb:00:02"
TAP = "fblv0"
MIG_PORT = 49160
NBD_PORT = 49161
# the guest's serial console, inside the daemon's private /var: every host has its own file
CONSOLE = "/var/log/libvirt/qemu/fblv-console.log"


class LibvirtError(Exception):
    pass


def missing():
    """Why libvirt cannot be used here, or None."""
    for prog in ("libvirtd", "virsh", "unshare"):
        if not shutil.which(prog):
            return f"{prog} is not installed (scripts/deps.sh installs libvirt)"
    if not Path("/etc/libvirt").is_dir():
        return "/etc/libvirt does not exist (libvirt-clients creates it; scripts/deps.sh)"
    return None


LIBVIRTD_CONF = """\
listen_tls = 0
listen_tcp = 1
listen_addr = "{addr}"
auth_tcp = "none"
auth_unix_rw = "none"
host_uuid = "{host_uuid}"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""

# QEMU runs as root, without a security driver (no SELinux/AppArmor labels,
# no chown of the bench's files): the bench owns all the files it uses.
# stdio_handler "file": no virtlogd.
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
"""

# $1 = the daemon's directory, then the command. unshare(1) makes the mount
# namespace private; the binds hide the machine's /run, /var and /etc/libvirt
# from this daemon and its QEMUs only.
START = """\
set -e
D=$1
shift
mount --bind "$D/run" /run
mount --bind "$D/var" /var
mount --bind "$D/etc" /etc/libvirt
exec "$@"
"""
PR_SET_CHILD_SUBREAPER = 36


def reap_main(argv):
    """Runs argv (libvirtd) as the child of a subreaper that reaps at once.

    libvirtd daemonizes its QEMUs, so they are orphans and their parent is
    the nearest subreaper, normally PID 1. libvirt waits for a QEMU it stopped
    until its pid is gone, and a zombie's pid is not gone until it is reaped.
    systemd reaps at once; the PID 1 of some containers only every second or
    two, which added that much to every migration's cleanup. Here, this
    process is that parent. SIGTERM/SIGINT/SIGHUP go to libvirtd; this
    process exits with libvirtd."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    child = os.fork()
    if child == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: os.kill(child, signum))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        if pid == child:
            return os.waitstatus_to_exitcode(status)

DOMAIN_XML = """\
<domain type='{type}'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='{machine}'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  {cpu}
  <devices>
    <emulator>{emulator}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='writeback'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='bridge'>
      <source bridge='{bridge}'/>
      <mac address='{mac}'/>
      <target dev='{tap}'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='{console}'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <video><model type='none'/></video>
  </devices>
</domain>
"""


def xml_escape(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")


def cpu_xml(model):
    if model == "max":
        return "<cpu mode='maximum' migratable='on'/>"
    if model == "host":
        return "<cpu mode='host-passthrough' migratable='on'/>"
    return f"<cpu mode='custom' match='exact' check='none'><model fallback='forbid'>{xml_escape(model)}</model></cpu>"


def pid_has(pid, marker):
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class Daemon:
    """One libvirtd in a lab host's network namespace."""

    def __init__(self, host, netns, mig_ip, root):
        self.host, self.netns, self.mig_ip, self.root = host, netns, mig_ip, Path(root)
        self.uri = f"qemu+tcp://{mig_ip}/system"
        self.host_uuid = str(uuid.uuid4())
        self.proc = None

    def path(self, inside):
        """The bench's view of a path the daemon sees under /run or /var."""
        return self.root / inside.lstrip("/")

    def log_tail(self, n=15):
        try:
            text = self.path("/var/log/libvirt/libvirtd.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-n:])

    def start(self, timeout=60):
        for d in ("etc", "run", "var/lib/libvirt", "var/cache/libvirt", "var/log/libvirt/qemu"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "etc/libvirtd.conf").write_text(
            LIBVIRTD_CONF.format(addr=self.mig_ip, host_uuid=self.host_uuid))
        (self.root / "etc/qemu.conf").write_text(QEMU_CONF)
        with open(self.root / "libvirtd.out", "a") as out:
            # its own session: a Ctrl-C to the bench leaves it to the teardown
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation", "private",
                 "sh", "-c", START, "sh", str(self.root), sys.executable, os.path.abspath(__file__), "reap",
                 "libvirtd", "--listen", "--config", "/etc/libvirt/libvirtd.conf"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise LibvirtError(f"libvirtd on {self.host} exited ({self.proc.returncode}): "
                                   f"{(self.root / 'libvirtd.out').read_text()[-1000:]}\n{self.log_tail()}")
            r = self.virsh(self.netns, "version", check=False, timeout=10)
            if r.returncode == 0 and "Running hypervisor" in r.stdout:
                return
            if time.monotonic() > deadline:
                raise LibvirtError(f"libvirtd on {self.host} did not come up: {r.stderr.strip()}\n{self.log_tail()}")
            time.sleep(0.2)

    def virsh(self, netns, *args, check=True, timeout=120):
        """virsh connected to this daemon, run in namespace netns."""
        cmd = ["ip", "netns", "exec", netns, "virsh", "-q", "-c", self.uri] + [str(a) for a in args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, LC_ALL="C"))
        if check and r.returncode != 0:
            raise LibvirtError(f"virsh -c {self.uri} {' '.join(map(str, args))}: {r.stderr.strip()}")
        return r

    def qemu_pid(self):
        try:
            return int(self.path(f"/run/libvirt/qemu/{VM}.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, marker=None):
        """Stops libvirtd, then kills a QEMU of ours (its cmdline has marker,
        the guest's UUID) that it left behind."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        pid = self.qemu_pid()
        if marker and pid and pid_has(pid, marker):
            os.kill(pid, signal.SIGKILL)


class Guest:
    """The libvirt reference guest, transient (virsh create), on one of the daemons."""

    def __init__(self, daemons, shape, cmdline, kernel, initrd, disk, bridge, emulator, workdir):
        self.daemons = daemons  # host name -> Daemon
        self.shape = shape
        self.cmdline, self.kernel, self.initrd = cmdline, kernel, initrd
        self.disk = Path(disk)
        self.bridge, self.emulator = bridge, emulator
        self.workdir = Path(workdir)
        self.uuid = str(uuid.uuid4())
        self.where = None
        self.last_argv = None

    def xml(self, disk):
        s = self.shape
        return DOMAIN_XML.format(
            type="kvm" if s["accel"].startswith("kvm") else "qemu", name=VM, uuid=self.uuid,
            memory=int(s["m"]), vcpus=int(s["smp"].split(",")[0]), machine=xml_escape(s["machine"].split(",")[0]),
            kernel=xml_escape(self.kernel), initrd=xml_escape(self.initrd), cmdline=xml_escape(self.cmdline),
            cpu=cpu_xml(s["cpu"].split(",")[0]), emulator=xml_escape(self.emulator), disk=xml_escape(disk),
            bridge=xml_escape(self.bridge), mac=MAC, tap=TAP, console=CONSOLE)

    def other(self, host):
        return next(h for h in self.daemons if h != host)

    def console(self):
        try:
            return self.daemons[self.where].path(CONSOLE).read_text(errors="replace")
        except OSError:
            return ""

    def create(self, host):
        d = self.daemons[host]
        d.path(CONSOLE).unlink(missing_ok=True)
        f = self.workdir / f"{VM}.xml"
        f.write_text(self.xml(self.disk))
        d.virsh(d.netns, "create", f)
        self.where = host

    def qemu_argv(self):
        pid = self.daemons[self.where].qemu_pid()
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")
        except (OSError, TypeError):
            return None

    def state(self, host):
        d = self.daemons[host]
        r = d.virsh(d.netns, "domstate", VM, check=False, timeout=30)
        return r.stdout.strip() if r.returncode == 0 else None

    def restart(self):
        """A new QEMU on the same host (the old one crashed or hangs)."""
        d = self.daemons[self.where]
        d.virsh(d.netns, "destroy", VM, check=False, timeout=60)
        self.create(self.where)

    def destroy(self):
        for d in self.daemons.values():
            if d.proc and d.proc.poll() is None:
                d.virsh(d.netns, "destroy", VM, check=False, timeout=30)

    def migrate_argv(self, src, dst, storage, dest_xml):
        s, d = self.daemons[src], self.daemons[dst]
        a = ["migrate", "--live", "--verbose"]
        # memory only: the disk is on the same filesystem on both hosts,
        # which libvirt cannot know (cache='writeback' needs --unsafe)
        a += ["--copy-storage-all", "--xml", dest_xml] if storage else ["--unsafe"]
        a += [VM, d.uri, "--migrateuri", f"tcp://{d.mig_ip}:{MIG_PORT}", "--listen-address", d.mig_ip]
        if storage:
            a += ["--disks-uri", f"tcp://{d.mig_ip}:{NBD_PORT}"]
        return ["virsh", "-c", s.uri] + a

    def migrate(self, storage, new_disk, downtime_ms):
        """One live migration to the other host. Returns the measurements;
        ok=False (and where the guest is) when virsh failed."""
        src, dst = self.where, self.other(self.where)
        s, d = self.daemons[src], self.daemons[dst]
        s.virsh(s.netns, "migrate-setmaxdowntime", VM, downtime_ms)
        d.path(CONSOLE).unlink(missing_ok=True)
        dest_xml = self.workdir / f"{VM}-dest.xml"
        if storage:
            # the same domain with the new disk path (both hosts share one filesystem)
            x = s.virsh(s.netns, "dumpxml", "--migratable", VM).stdout
            old = f"<source file='{xml_escape(self.disk)}'"
            if old not in x:
                raise LibvirtError(f"disk {self.disk} not in the domain XML")
            dest_xml.write_text(x.replace(old, f"<source file='{xml_escape(new_disk)}'"))
        argv = self.migrate_argv(src, dst, storage, dest_xml)
        e0 = time.time()
        t0 = time.monotonic()
        if storage:
            # --copy-storage-all needs the destination image: same size, qcow2
            r = subprocess.run(["ip", "netns", "exec", d.netns, "qemu-img", "create", "-q", "-f", "qcow2",
                                str(new_disk), str(self.disk_size())], capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise LibvirtError(f"qemu-img create {new_disk}: {r.stderr.strip()}")
        r = subprocess.run(["ip", "netns", "exec", s.netns] + [str(a) for a in argv], capture_output=True,
                           text=True, timeout=900, env=dict(os.environ, LC_ALL="C"))
        t_end = time.monotonic()
        e_end = time.time()
        self.last_argv = [str(a) for a in argv]
        res = {"total-s": round(t_end - t0, 3), "wall-s": round(t_end - t0, 3)}
        if r.returncode != 0:
            if self.state(dst) == "running":
                self.where = dst
            elif storage:
                Path(new_disk).unlink(missing_ok=True)
            res.update(ok=False, error=(r.stderr.strip() or r.stdout.strip())[-500:])
            return res
        self.where = dst
        if storage:
            os.unlink(self.disk)
            self.disk = Path(new_disk)
        stats = self.completed_stats(dst)
        res.update(ok=True, **{
            "downtime-ms": stats.get("downtime"), "passes": stats.get("memory_iteration"),
            "ram-transferred": stats.get("memory_processed"), "disk-transferred": stats.get("disk_processed"),
            "libvirt-elapsed-s": stats["time_elapsed"] / 1000 if "time_elapsed" in stats else None,
            "setup-ms": stats.get("setup_time"), "libvirt-stats": stats,
            "stages-s": self.stages(src, dst, e0, e_end)})
        return res

    def qemu_log_events(self, host, since):
        """(epoch seconds, message) of the lines libvirt wrote since then into
        the domain's QEMU log on host (/var/log/libvirt/qemu/VM.log)."""
        try:
            text = self.daemons[host].path(f"/var/log/libvirt/qemu/{VM}.log").read_text(errors="replace")
        except OSError:
            return []
        out = []
        for m in re.finditer(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+\d{4}): (.*)$", text, re.M):
            t = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S.%f%z").timestamp()
            if t >= since:
                out.append((t, m[2]))
        return out

    def stages(self, src, dst, e0, e_end):
        """Stage boundaries from libvirt's QEMU logs, against the bench's
        clock: setup until the source logs 'initiating migration' (for
        --copy-storage-all after the disk mirror is ready), memory from there
        until the source QEMU is shut down as migrated (the switchover and the
        destination's resume included), cleanup until virsh returned;
        dest-prepare: the destination's 'starting up' to 'initiating migration'."""
        se = self.qemu_log_events(src, e0 - 0.5)
        de = self.qemu_log_events(dst, e0 - 0.5)
        init = next((t for t, m in se if m.startswith("initiating migration")), None)
        down = next((t for t, m in se if m.startswith("shutting down, reason=migrated")), None)
        start = next((t for t, m in de if m.startswith("starting up")), None)
        out = {}
        if init:
            out["setup"] = init - e0
            if start:
                out["dest-prepare"] = init - start
            if down:
                out["memory"] = down - init
                out["cleanup"] = max(0.0, e_end - down)
        return {k: round(v, 3) for k, v in out.items()}

    def disk_size(self):
        r = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(self.disk)], capture_output=True, text=True,
                           timeout=30)
        m = re.search(r'"virtual-size":\s*(\d+)', r.stdout)
        if not m:
            raise LibvirtError(f"qemu-img info {self.disk}: {r.stderr.strip()}")
        return int(m.group(1))

    def completed_stats(self, host):
        """virsh domjobinfo --completed on the destination (the incoming
        migration's statistics, downtime included), as numbers."""
        d = self.daemons[host]
        r = d.virsh(d.netns, "domjobinfo", "--completed", "--rawstats", VM, check=False, timeout=30)
        out = {}
        for line in r.stdout.splitlines():
            k, _, v = line.partition(":")
            v = v.strip()
            if re.fullmatch(r"-?\d+", v):
                out[k.strip()] = int(v)
        return out


if __name__ == "__main__":
    if sys.argv[1:2] != ["reap"] or len(sys.argv) < 3:
        sys.exit("usage: libvirt_ref.py reap COMMAND... (used by move_bench.py)")
    sys.exit(reap_main(sys.argv[2:]))
