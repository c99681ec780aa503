"""What ferryd needs from the machine's Kerberos configuration, said at
start-up in one line each (docs/security.md), not as a KDC error at move time."""
import os
import subprocess
import time

from conftest import FERRYD, LAB_STATE, WORK


def start_log(tmp_path, env, *args):
    """Starts ferryd (local only) with env, waits until it is ready, stops it
    and returns what it logged."""
    run = tmp_path / "run"
    p = subprocess.Popen([str(FERRYD), "--state-dir", str(tmp_path / "state"), "--run-dir", str(run),
                          "--host-name", "h1.example.com", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.time() + 15
        while time.time() < deadline and not (run / "control.sock").exists():
            assert p.poll() is None, p.stdout.read()
            time.sleep(0.05)
    finally:
        p.terminate()
        out = p.communicate(timeout=10)[0]
    assert "ready" in out, out
    return out


def base_env(**kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}
    env.update(kw)
    return env


def test_missing_krb5_conf_is_one_clear_line(tmp_path):
    conf = tmp_path / "absent" / "krb5.conf"
    out = start_log(tmp_path, base_env(KRB5_CONFIG=str(conf)), "--keytab", str(tmp_path / "none.keytab"))
    lines = [line for line in out.splitlines() if "krb5.conf" in line]
    assert len(lines) == 1, out
    assert f"{conf} not found; Kerberos moves need it" in lines[0]
    assert "forwardable = true" in lines[0] and "(docs/security.md)" in lines[0]


def test_not_forwardable_and_missing_key(tmp_path):
    conf = tmp_path / "krb5.conf"
    conf.write_text("[libdefaults]\n default_realm = EXAMPLE.COM\n")
    out = start_log(tmp_path, base_env(KRB5_CONFIG=str(conf)), "--keytab", str(LAB_STATE / "absent.keytab"))
    assert f"{conf} does not set forwardable = true in [libdefaults]" in out
    assert "absent.keytab cannot be read (not found)" in out


def test_lab_hosts_start_without_kerberos_warnings(host1):
    """The lab gives ferryd a complete configuration explicitly (KRB5_CONFIG
    and --keytab): nothing to warn about, whatever the machine's /etc holds."""
    log = (WORK / "host1" / "ferryd.log").read_text()
    assert "ready" in log
    assert "docs/security.md" not in log, log
