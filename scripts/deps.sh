#!/usr/bin/env bash
# Installs what ferry needs to build, run and test on Debian 12 (apt-get).
set -euo pipefail

PACKAGES=(
  build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
  libjansson-dev libcmocka-dev libkrb5-dev libsystemd-dev
  qemu-system-x86 qemu-utils busybox-static cpio kmod
  iproute2 iputils-ping util-linux procps
  samba samba-ad-dc samba-ad-provision krb5-user libnss-wrapper
  python3 python3-pytest python3-gssapi
  dpkg-dev debhelper man-db groff-base git
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# QEMU runs as this unprivileged user (ferryd --qemu-user; docs/security.md)
qemu_user() {
  id ferry-qemu >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || { echo "deps: user ferry-qemu is missing; run as root (sudo) to create it" >&2; exit 1; }
  echo "deps: creating the system user ferry-qemu (QEMU runs as it)"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ferry-qemu
  if getent group kvm >/dev/null; then usermod -a -G kvm ferry-qemu; fi
}
# libvirt's QEMU driver (bench/move_bench.py's libvirt reference) will not
# start unless its built-in user libvirt-qemu exists, although the bench runs
# QEMU as root. libvirt-daemon-system would create it, but it also starts a
# system libvirtd, which the bench does not need.
libvirt_user() {
  getent passwd libvirt-qemu >/dev/null && getent group libvirt-qemu >/dev/null && return 0
  [ "$(id -u)" = 0 ] || { echo "deps: user libvirt-qemu is missing; run as root (sudo) to create it" >&2; exit 1; }
  echo "deps: creating the system user libvirt-qemu (libvirt's QEMU driver needs it)"
  getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
  getent passwd libvirt-qemu >/dev/null ||
    useradd --system --gid libvirt-qemu --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
}
if [ ${#missing[@]} -eq 0 ]; then
  qemu_user
  libvirt_user
  echo "deps: everything is installed"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing ${missing[*]}; run as root (sudo) to install them" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The samba packages may start their own daemons; the lab runs its own DC.
for s in samba-ad-dc smbd nmbd winbind; do
  if command -v systemctl >/dev/null && systemctl is-active -q "$s" 2>/dev/null; then
    systemctl disable --now "$s" >/dev/null 2>&1 || true
  fi
done
qemu_user
libvirt_user
