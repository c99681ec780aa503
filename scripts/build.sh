#!/usr/bin/env bash
# Builds ferry (build/) and the test guest (guest/out/).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build
guest/build.sh guest/out >/dev/null
echo "build: ferry in build/, guest in guest/out/"
