#!/usr/bin/env bash
# Does what a new user does, as a fresh Debian 12 machine would see it: a new
# clone of this repository's HEAD in a private directory, then the README's
# two commands (scripts/setup-and-demo.sh, scripts/test.sh), both with the
# machine's /etc/krb5.conf and /etc/krb5.keytab hidden
# (scripts/hide-host-krb5.sh). Needs root; ~15 minutes on 2 CPUs.
#   scripts/fresh-check.sh [--keep] [PYTEST-ARGS...]
# --keep leaves the clone (its path is printed). Commit first: the clone
# holds what is committed, not the work tree.
set -euo pipefail
cd "$(dirname "$0")/.."
KEEP=0
if [ "${1:-}" = --keep ]; then KEEP=1; shift; fi
[ "$(id -u)" = 0 ] || { echo "fresh-check: run as root" >&2; exit 1; }
if ! git diff --quiet HEAD 2>/dev/null; then
  echo "fresh-check: note: uncommitted changes are not in the clone" >&2
fi
clone=$(mktemp -d /var/tmp/ferry-fresh.XXXXXX)
chmod 0711 "$clone"   # QEMU (user ferry-qemu) reads the guest's kernel in it
[ "$KEEP" = 1 ] || trap 'rm -rf "$clone"' EXIT
git clone -q . "$clone/ferry"
cd "$clone/ferry"
# apt-get writes configuration files into /etc: install before hiding it
scripts/deps.sh
step() { # name cmd...
  local t0=$SECONDS rc=0
  echo "== fresh-check: $1"
  shift
  scripts/hide-host-krb5.sh "$@" || rc=$?
  echo "== fresh-check: exit $rc after $((SECONDS - t0)) s"
  return "$rc"
}
rc=0
step "scripts/setup-and-demo.sh (README, first command)" scripts/setup-and-demo.sh || rc=1
step "scripts/test.sh (README, second command)" scripts/test.sh "$@" || rc=1
[ "$KEEP" = 1 ] && echo "fresh-check: clone kept in $clone/ferry"
if [ "$rc" = 0 ]; then echo "fresh-check: both README commands passed"; else echo "fresh-check: FAILED"; fi
exit "$rc"
