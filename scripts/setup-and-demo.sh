#!/usr/bin/env bash
# The first command of the README: installs dependencies, builds ferry and
# the test guest, and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
exec scripts/demo.sh "$@"
