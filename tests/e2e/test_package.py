"""The Debian package: built from the tree, installed, run, purged
(tests/package/test_deb.sh). Needs root, dpkg-dev and debhelper; not the
lab. About a minute on 2 CPUs. It fails, rather than skips, when a tool
is missing: scripts/deps.sh installs them."""
import subprocess

from conftest import ROOT

SCRIPT = ROOT / "tests/package/test_deb.sh"


def test_debian_package_builds_installs_runs_and_purges():
    r = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"test_deb.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    assert "ok: built, installed, ran, purged" in r.stdout
