"""The destination decides where files go (review H2, M2, M9): only under its
storage roots, never through a symbolic link, never over an existing file;
paths are rewritten only when disks are copied; and either end requiring
encryption makes the move encrypted."""
import os

from conftest import GUEST_RUN, remote_ferry, run
from test_move import move, no_trace, pair, start_guest  # noqa: F401 (pair is a fixture)


def only_root(host, root):
    root.mkdir(parents=True, exist_ok=True)
    host.ferry("host", "set", "storage-roots", f"{root}:{GUEST_RUN}")


def refused(host1, host2, cc, *opts):
    r = remote_ferry(host1.fqdn, "--json", "vm", "move", "web1", host2.fqdn, *opts, ccache=cc)
    assert r.returncode != 0, r.stdout
    assert host1.ferry("vm", "show", "web1")["state"] == "running"
    assert host2.vm_names() == []
    return r.stdout + r.stderr


def test_storage_path_outside_the_roots_is_refused(pair, guest):
    host1, host2, cc = pair
    only_root(host2, host2.dir / "disks")
    outside = host2.dir.parent / "outside-roots"
    outside.mkdir()
    start_guest(host1, guest)
    out = refused(host1, host2, cc, "--include-storage", "--storage-path", outside)
    assert f"disk 0: {outside}/web1-data.qcow2 is outside the storage roots of host2.lab.test" in out, out
    assert f"storage path {outside} is outside the storage roots" in out
    assert list(outside.iterdir()) == []
    # VM files too (-VirtualMachinePath)
    out = refused(host1, host2, cc, "--include-storage", "--storage-path", host2.dir / "disks", "--vm-path", outside)
    assert f"VM path {outside} is outside the storage roots" in out, out
    assert list(outside.iterdir()) == []
    no_trace(host2, "web1", host2.dir / "disks")


def test_symbolic_link_in_a_root_is_not_followed(pair, guest):
    host1, host2, cc = pair
    root = host2.dir / "disks"
    only_root(host2, root)
    elsewhere = host2.dir.parent / "elsewhere"
    elsewhere.mkdir()
    (root / "evil").symlink_to(elsewhere)
    start_guest(host1, guest)
    out = refused(host1, host2, cc, "--include-storage", "--storage-path", root / "evil")
    assert "symbolic link" in out, out
    assert list(elsewhere.iterdir()) == []
    # a file link where the disk would go: not overwritten, not followed
    sentinel = elsewhere / "sentinel"
    sentinel.write_text("keep me\n")
    (root / "web1-data.qcow2").symlink_to(sentinel)
    out = refused(host1, host2, cc, "--include-storage", "--storage-path", root)
    assert "already exists; ferry will not overwrite it" in out, out
    assert sentinel.read_text() == "keep me\n"
    assert os.path.islink(root / "web1-data.qcow2")


def test_paths_are_not_rewritten_without_storage(pair, guest):
    host1, host2, cc = pair
    start_guest(host1, guest)
    r = remote_ferry(host1.fqdn, "vm", "move", "web1", host2.fqdn, "--storage-path", host2.dir / "disks",
                     ccache=cc)
    assert r.returncode != 0
    assert "without --include-storage the disks are not copied" in r.stderr, r.stderr
    assert host1.ferry("vm", "show", "web1")["state"] == "running" and host2.vm_names() == []


def test_destination_requiring_encryption_wins(pair, guest):
    host1, host2, cc = pair
    host1.ferry("host", "set", "encryption", "off")
    start_guest(host1, guest)
    r, job = move(host1, "web1", host2, "--include-storage", "--storage-path", host2.dir / "disks", ccache=cc)
    assert "host2.lab.test requires encryption: this move is encrypted" in host1.log.read_text()
    assert host2.ferry("vm", "show", "web1")["state"] == "running"


def test_another_file_at_the_same_path_is_refused(pair, guest):
    """Without storage the destination proves it sees the very file the source
    uses (review M2): here host2 sees another image at the same path."""
    host1, host2, cc = pair
    shared = host1.dir / "shared"
    shared.mkdir()
    start_guest(host1, guest, extra=("--disk", f"{shared}/extra.qcow2,size=16M"))
    run(["mount", "-t", "tmpfs", "-o", "size=4M", "ferry-test-other", shared])
    try:
        run(["qemu-img", "create", "-q", "-f", "qcow2", shared / "extra.qcow2", "32M"])
        host2.stop()
        host2.start()   # ferryd has its own mount namespace: it sees the tmpfs from its start
        out = refused(host1, host2, cc)
        assert f"{shared}/extra.qcow2 on host2.lab.test is not the file the source uses (another image header)" in out, out
    finally:
        host2.stop()
        run(["umount", shared], check=False)
        host2.start()


def test_start_gives_qemu_only_disks_under_the_roots(host1, guest, tmp_path):
    """QEMU runs as ferry-qemu and owns its disks: ferryd gives it a file only
    under the storage roots, so an administrator's typo or malice cannot hand
    a system file to QEMU's user (review H3)."""
    sentinel = tmp_path / "system-file.raw"
    sentinel.write_bytes(b"\0" * 4096)
    host1.ferry("vm", "define", "odd", "--memory", "64M", "--kernel", guest / "vmlinuz",
                "--initrd", guest / "initrd.img", "--disk", f"{sentinel},format=raw")
    r = host1.ferry_raw("vm", "start", "odd")
    assert r.returncode != 0
    assert f"disk {sentinel} is outside the storage roots" in r.stderr, r.stderr
    assert os.stat(sentinel).st_uid == 0 and host1.ferry("vm", "show", "odd")["state"] == "off"
