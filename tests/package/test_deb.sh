#!/usr/bin/env bash
# Builds the Debian package from a copy of the tree (dpkg-buildpackage),
# installs it, checks what it installed (man pages render without
# warnings, the bash completion loads, ferryd starts by hand and answers
# ferry), purges it and checks that nothing of it is left. Needs root,
# dpkg-dev and debhelper; no lab, no systemd. The machine is left as it
# was, on failure too: the package purged, a ferry-qemu user that the
# package made removed. Exit 0 when every check passed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/ferry-deb.XXXXXX)
installed= ferryd_pid=
user_before=$(getent passwd ferry-qemu >/dev/null && echo yes || echo no)
groups_before=$(id -nG ferry-qemu 2>/dev/null || true)

say() { echo "test_deb: $*"; }
fail() { echo "test_deb: FAIL: $*" >&2; exit 1; }

cleanup() {
  local rc=$?
  [ -n "$ferryd_pid" ] && kill "$ferryd_pid" 2>/dev/null && wait "$ferryd_pid" 2>/dev/null
  if [ -n "$installed" ] && dpkg-query -W ferry >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq ferry >/dev/null 2>&1 || dpkg -P ferry >/dev/null 2>&1 || true
  fi
  if [ "$user_before" = no ] && getent passwd ferry-qemu >/dev/null; then
    userdel ferry-qemu 2>/dev/null || true
    getent group ferry-qemu >/dev/null && groupdel ferry-qemu 2>/dev/null || true
  elif [ "$user_before" = yes ] && [[ " $groups_before " != *" kvm "* ]] && id -nG ferry-qemu | grep -qw kvm; then
    gpasswd -d ferry-qemu kvm >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || fail "needs root (it installs a package)"
for t in dpkg-buildpackage dh man; do command -v $t >/dev/null || fail "$t is missing: run scripts/deps.sh"; done
dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -q "installed" &&
  fail "a ferry package is installed already; this test would replace it"

say "copying the tree (tracked and untracked files git does not ignore)"
mkdir "$WORK/src"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - 2>/dev/null) |
  tar -xf - -C "$WORK/src"
# a repository in the copy, to see what the build leaves that git would see
git -C "$WORK/src" init -q && git -C "$WORK/src" add -A &&
  git -C "$WORK/src" -c user.name=t -c user.email=t@t commit -qm copy

say "building: dpkg-buildpackage -us -uc -b"
(cd "$WORK/src" && dpkg-buildpackage -us -uc -b >"$WORK/build.log" 2>&1) ||
  { tail -40 "$WORK/build.log" >&2; fail "dpkg-buildpackage failed"; }
deb=$(ls "$WORK"/ferry_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || fail "no ferry_*.deb built"
left=$(git -C "$WORK/src" status --porcelain)
[ -z "$left" ] || fail "the build leaves files git sees: $left"

contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/ferry ./usr/sbin/ferryd ./usr/share/man/man1/ferry.1.gz ./usr/share/man/man8/ferryd.8.gz \
  ./usr/share/man/man5/ferryd.conf.5.gz ./usr/share/bash-completion/completions/ferry \
  ./lib/systemd/system/ferryd.service ./etc/ferry/ferryd.conf ./usr/share/doc/ferry/json.md.gz; do
  grep -q " $f\$" <<<"$contents" || grep -q " $f " <<<"$contents" || fail "the package lacks $f"
done

say "installing $(basename "$deb")"
installed=1
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" >"$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log" >&2; fail "apt-get install failed"; }
dpkg-query -W -f='${Status}' ferry | grep -q "install ok installed" || fail "ferry is not installed"
getent passwd ferry-qemu >/dev/null || fail "postinst did not create the user ferry-qemu"
dpkg -L ferry >"$WORK/files"

for page in /usr/share/man/man1/ferry.1.gz /usr/share/man/man8/ferryd.8.gz /usr/share/man/man5/ferryd.conf.5.gz; do
  warn=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null) || fail "man -l $page failed"
  [ -z "$warn" ] || fail "man -l $page warns: $warn"
  MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q "^SEE ALSO" || fail "$page renders without SEE ALSO"
done
MANWIDTH=80 man ferry 2>/dev/null | grep -q "ferry vm move NAME HOST" || fail "'man ferry' does not show the commands"
say "man pages render without warnings"

comp=$(bash -c 'source /usr/share/bash-completion/completions/ferry; complete -p ferry') ||
  fail "the completion does not load"
[ "$comp" = "complete -F _ferry ferry" ] || fail "complete -p ferry says: $comp"
say "completion: $comp"

[ -e /etc/systemd/system/multi-user.target.wants/ferryd.service ] || fail "ferryd.service is not enabled"
grep -q "^ExecStart=/usr/sbin/ferryd --config /etc/ferry/ferryd.conf " /lib/systemd/system/ferryd.service ||
  fail "ferryd.service does not start /usr/sbin/ferryd with /etc/ferry/ferryd.conf"

say "starting /usr/sbin/ferryd by hand with the installed configuration"
/usr/sbin/ferryd --config /etc/ferry/ferryd.conf --state-dir "$WORK/state" --run-dir "$WORK/run" \
  >"$WORK/ferryd.log" 2>&1 &
ferryd_pid=$!
for _ in $(seq 50); do [ -S "$WORK/run/control.sock" ] && break; sleep 0.1; done
out=$(ferry --socket "$WORK/run/control.sock" host show 2>&1) ||
  { cat "$WORK/ferryd.log" >&2; fail "ferry host show failed: $out"; }
grep -q "^version: *0" <<<"$out" || fail "host show says: $out"
ferry --socket "$WORK/run/control.sock" --json vm list | grep -q '"vms": \[\]' || fail "vm list --json is not {\"vms\": []}"
kill "$ferryd_pid"
wait "$ferryd_pid" || true
ferryd_pid=
grep -q "exiting" "$WORK/ferryd.log" || fail "ferryd did not stop on SIGTERM"
say "ferryd answered host show and stopped"

say "purging"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq ferry >"$WORK/purge.log" 2>&1 ||
  { cat "$WORK/purge.log" >&2; fail "apt-get purge failed"; }
installed=
! dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -q "installed" || fail "ferry is still installed"
while read -r f; do
  [ -d "$f" ] && continue
  [ -e "$f" ] && fail "$f is left after the purge"
done <"$WORK/files"
[ ! -e /etc/ferry ] || fail "/etc/ferry is left after the purge"
# the unit's enablement (deb-systemd-helper records it even without systemd)
left=$(ls -d /etc/systemd/system/*/ferryd.service /var/lib/systemd/deb-systemd-helper-enabled/*ferryd* \
  /var/lib/systemd/deb-systemd-helper-enabled/*/ferryd.service 2>/dev/null || true)
[ -z "$left" ] || fail "the purge leaves the unit enabled: $left"
say "ok: built, installed, ran, purged"
