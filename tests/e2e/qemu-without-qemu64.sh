#!/bin/sh
# The real QEMU, except that it does not offer the qemu64 CPU model: stands
# for a destination whose QEMU lacks a model the VM needs.
if [ "$1" = "-cpu" ] && [ "$2" = "help" ]; then
  qemu-system-x86_64 -cpu help | grep -v '^x86 qemu64 '
  exit 0
fi
exec qemu-system-x86_64 "$@"
