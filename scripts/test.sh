#!/usr/bin/env bash
# The whole test suite: unit tests (plain and under AddressSanitizer+UBSan),
# a fuzz smoke run, and the end-to-end tests in the lab (real QEMU guests,
# network namespaces, a Samba AD DC). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh

echo "== unit tests"
meson test -C build --print-errorlogs

echo "== unit tests under AddressSanitizer and UBSan"
[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
ninja -C build-asan >/dev/null
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-asan --print-errorlogs

echo "== fuzz smoke (libFuzzer, 20 s per target)"
[ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true >/dev/null
ninja -C build-fuzz >/dev/null
for f in build-fuzz/tests/fuzz/fuzz_*; do
  [ -f "$f" ] && [ -x "$f" ] || continue
  name=$(basename "$f" | sed 's/^fuzz_//')
  case "$name" in *.p) continue ;; esac
  mkdir -p "build-fuzz/corpus/$name"
  cp -n tests/fuzz/corpus/"$name"/* "build-fuzz/corpus/$name/"
  "$f" -max_total_time=20 "build-fuzz/corpus/$name" 2>&1 | tail -1
done

echo "== end-to-end tests"
exec /usr/bin/python3 -m pytest -v --durations=25 tests/e2e "$@"
