#!/usr/bin/env bash
# The generated man pages render without groff warnings and the generated
# bash completion loads and completes from ferry's command table.
# meson test runs it: check_docs.sh BUILD_DIR
set -euo pipefail
build=$1
fail() { echo "check_docs: $*" >&2; exit 1; }

if command -v man >/dev/null; then
  for page in ferry.1 ferryd.8 ferryd.conf.5; do
    out=$(MANWIDTH=80 man --warnings -l "$build/man/$page" 2>&1 >/dev/null) || fail "man -l $page failed"
    [ -z "$out" ] || fail "man -l $page warns: $out"
    MANWIDTH=80 man -l "$build/man/$page" 2>/dev/null | grep -q "^SEE ALSO" || fail "$page has no SEE ALSO"
  done
  MANWIDTH=80 man -l "$build/man/ferry.1" | grep -q "ferry vm move-storage NAME DIR" || fail "ferry.1 lacks vm move-storage"
  MANWIDTH=80 man -l "$build/man/ferryd.conf.5" | grep -q "storage-roots" || fail "ferryd.conf.5 lacks the host settings"
else
  echo "check_docs: man is not installed: pages not rendered"
fi

# no daemon answers on this socket: names complete to nothing, quietly
PATH="$build/src/cli:$PATH" FERRY_SOCKET=/nonexistent/control.sock bash -c '
  set -e
  source "$1/man/ferry"
  complete -p ferry | grep -q "_ferry ferry"
  c() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _ferry; echo "${COMPREPLY[*]}"; }
  [ "$(c ferry "")" = "host job migration switch vm" ]
  [ "$(c ferry vm mo)" = "move move-storage" ]
  [ "$(c ferry vm stop --)" = "--force --help --json --quiet --timeout" ]
  [ "$(c ferry host set auth "")" = "credssp kerberos" ]
  [ "$(c ferry vm move web1 host2 --storage-path /us)" = "/usr" ]
  [ -z "$(c ferry vm start "")" ]
' check "$build" || fail "bash completion does not complete as expected"
echo "check_docs: ok"
