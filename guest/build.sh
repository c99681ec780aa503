#!/bin/sh
# Build the ferry test guest from Debian packages.
#
#   guest/build.sh [OUTDIR]        (default: guest/out)
#
# Produces OUTDIR/vmlinuz, OUTDIR/initrd.img and OUTDIR/diskcheck, then prints
# the recommended kernel command line.  Needs: apt (for the kernel package),
# busybox-static, cpio, kmod, gcc, libc6-dev.  Re-running is cheap: the kernel
# package is fetched only when apt offers a different version, and the other
# outputs are rebuilt only when their inputs changed.
#
# Environment:
#   FERRY_KERNEL_PKG   kernel package to use (default: what linux-image-amd64
#                      depends on)
#   FERRY_MODULES      modules to include (default: virtio_pci virtio_blk
#                      virtio_net)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cache=$out/.cache
mkdir -p "$cache"
modules=${FERRY_MODULES:-virtio_pci virtio_blk virtio_net}

log() { echo "build.sh: $*" >&2; }
die() { echo "build.sh: ERROR: $*" >&2; exit 1; }

for tool in busybox cpio gzip gcc depmod modprobe dpkg-deb apt-get apt-cache; do
	command -v "$tool" >/dev/null 2>&1 || die "missing tool '$tool' (apt-get install busybox-static cpio kmod gcc libc6-dev)"
done
busybox=$(command -v busybox)
# the guest needs a static busybox (package busybox-static, not busybox)
if LC_ALL=C readelf -d "$busybox" 2>/dev/null | grep -q NEEDED; then
	die "$busybox is dynamically linked; install busybox-static"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# newer IN... TARGET: true when TARGET is missing or older than any IN
stale() {
	t=$1; shift
	[ -e "$t" ] || return 0
	for f in "$@"; do [ "$f" -nt "$t" ] && return 0; done
	return 1
}

# ------------------------------------------------------------------ kernel
pkg=${FERRY_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1) || true
fi
ver=
[ -n "$pkg" ] && ver=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p' | head -n1)
if [ -z "$pkg" ] || [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
	if [ -f "$cache/kernel.stamp" ]; then
		log "apt does not know linux-image-amd64 (apt-get update?); using cached $(cat "$cache/kernel.stamp")"
		stamp=$(cat "$cache/kernel.stamp")
	else
		die "cannot resolve the kernel package: apt-cache depends linux-image-amd64 gave nothing (run apt-get update)"
	fi
else
	stamp="$pkg=$ver"
fi

kdir=$cache/kernel
if [ "$(cat "$cache/kernel.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -f "$kdir/vmlinuz" ] || [ ! -f "$kdir/load.list" ]; then
	log "fetching $stamp"
	mkdir -p "$tmp/dl" "$tmp/root"
	chmod 755 "$tmp" "$tmp/dl"
	(cd "$tmp/dl" && apt-get -q download -o APT::Sandbox::User="$(id -un)" "$stamp" >&2) ||
		die "apt-get download $stamp failed"
	dpkg-deb -x "$tmp"/dl/*.deb "$tmp/root"
	rm -f "$tmp"/dl/*.deb

	root=$tmp/root
	# merged-/usr packages may ship usr/lib/modules only
	if [ ! -d "$root/lib/modules" ] && [ -d "$root/usr/lib/modules" ]; then
		ln -s usr/lib "$root/lib"
	fi
	kver=$(ls "$root/lib/modules" | head -n1)
	[ -n "$kver" ] || die "no /lib/modules in $pkg"
	vmlinuz=$(ls "$root"/boot/vmlinuz-* 2>/dev/null | head -n1)
	[ -n "$vmlinuz" ] || die "no /boot/vmlinuz-* in $pkg"
	# the package has no modules.dep (postinst makes it): make one
	depmod -b "$root" "$kver"

	rm -rf "$kdir.new"
	mkdir -p "$kdir.new/modules"
	cp "$vmlinuz" "$kdir.new/vmlinuz"
	echo "$kver" >"$kdir.new/kver"
	: >"$kdir.new/load.list"
	: >"$kdir.new/builtin.list"
	for m in $modules; do
		modprobe -d "$root" -S "$kver" --show-depends "$m" >"$tmp/deps" 2>&1 ||
			die "module $m not found for $kver: $(cat "$tmp/deps")"
		while read -r kind path _rest; do
			case "$kind" in
			builtin)
				grep -qx "$path" "$kdir.new/builtin.list" || echo "$path" >>"$kdir.new/builtin.list" ;;
			insmod)
				base=$(basename "$path")
				case "$base" in
				*.ko.xz)  name=${base%.xz};  xz -dc "$path" >"$kdir.new/modules/$name" ;;
				*.ko.zst) name=${base%.zst}; zstd -qdc "$path" >"$kdir.new/modules/$name" ;;
				*.ko.gz)  name=${base%.gz};  gzip -dc "$path" >"$kdir.new/modules/$name" ;;
				*)        name=$base;        cp "$path" "$kdir.new/modules/$name" ;;
				esac
				grep -qx "$name" "$kdir.new/load.list" || echo "$name" >>"$kdir.new/load.list" ;;
			*)
				die "unexpected modprobe output for $m: $kind $path" ;;
			esac
		done <"$tmp/deps"
	done
	rm -rf "$kdir" "$root"
	mv "$kdir.new" "$kdir"
	echo "$stamp" >"$cache/kernel.stamp"
	log "kernel $kver: modules $(tr '\n' ' ' <"$kdir/load.list"); built in: $(tr '\n' ' ' <"$kdir/builtin.list")"
fi
kver=$(cat "$kdir/kver")
if ! cmp -s "$kdir/vmlinuz" "$out/vmlinuz" 2>/dev/null; then
	cp "$kdir/vmlinuz" "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
fi

# ------------------------------------------------------------------ programs
CFLAGS="-O2 -Wall -Wextra -Werror -std=c11"
agent=$cache/ferry-agent
if stale "$agent" "$here/agent.c" "$here/record.h" "$here/build.sh"; then
	log "compiling agent"
	gcc $CFLAGS -static -pthread -o "$agent.tmp" "$here/agent.c" && mv "$agent.tmp" "$agent"
fi
if stale "$out/diskcheck" "$here/diskcheck.c" "$here/record.h" "$here/build.sh"; then
	log "compiling diskcheck"
	gcc $CFLAGS -o "$out/diskcheck.tmp" "$here/diskcheck.c" && mv "$out/diskcheck.tmp" "$out/diskcheck"
fi

# ------------------------------------------------------------------ initramfs
if stale "$out/initrd.img" "$here/init" "$agent" "$busybox" "$cache/kernel.stamp" "$here/build.sh"; then
	log "building initramfs"
	ir=$tmp/initramfs
	mkdir -p "$ir/bin" "$ir/sbin" "$ir/dev" "$ir/proc" "$ir/sys" "$ir/tmp" "$ir/run" \
		"$ir/etc" "$ir/lib/modules"
	cp "$busybox" "$ir/bin/busybox"
	for app in $("$busybox" --list); do
		[ "$app" = busybox ] || ln -s busybox "$ir/bin/$app"
	done
	cp "$here/init" "$ir/init"
	chmod 755 "$ir/init"
	cp "$agent" "$ir/bin/ferry-agent"
	cp "$kdir"/modules/*.ko "$ir/lib/modules/" 2>/dev/null || true
	cp "$kdir/load.list" "$ir/lib/modules/load.list"
	echo "$kver" >"$ir/etc/ferry-kernel"
	# a /dev/console node lets the kernel give /init a console from the start
	mknod -m 600 "$ir/dev/console" c 5 1 2>/dev/null || true
	(cd "$ir" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"$out/initrd.img.tmp"
	mv "$out/initrd.img.tmp" "$out/initrd.img"
fi

log "kernel $kver ($stamp)"
log "outputs: $out/vmlinuz $out/initrd.img $out/diskcheck"
log "recommended kernel command line (adjust ferry.* to taste; see guest/README.md):"
echo "console=ttyS0 clocksource=hpet ferry.ip=10.99.0.10/24 ferry.disk=/dev/vda ferry.dirty=16"
