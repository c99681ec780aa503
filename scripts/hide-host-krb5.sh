#!/usr/bin/env bash
# Runs CMD... as a fresh Debian machine would: in a private mount namespace
# whose /etc is a copy of this machine's without krb5.conf and krb5.keytab
# (bind-mounted over /etc), so that anything that still depends on those
# files fails here and not on a new user's machine. Needs root.
#   scripts/hide-host-krb5.sh CMD...
# Packages are installed before, outside (scripts/deps.sh): what apt-get
# wrote into the copy of /etc would be lost with it.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: scripts/hide-host-krb5.sh CMD..." >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "hide-host-krb5: run as root (mount namespaces)" >&2; exit 1; }
tmp=$(mktemp -d /run/ferry-etc.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp -a /etc "$tmp/etc"
rm -f "$tmp/etc/krb5.conf" "$tmp/etc/krb5.keytab"
echo "hide-host-krb5: running '$*' with /etc/krb5.conf and /etc/krb5.keytab hidden"
rc=0
unshare --mount --propagation private \
  bash -c 'mount --bind "$1" /etc && shift && exec "$@"' _ "$tmp/etc" "$@" || rc=$?
exit "$rc"
