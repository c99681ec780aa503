#!/usr/bin/env bash
# The ferry demo: two standalone hosts and an Active Directory domain in
# network namespaces, a real guest started on host1, and a live move with its
# disks to host2 while a client pings the guest. Run as root after
# scripts/build.sh (scripts/setup-and-demo.sh does both).
#   --keep   leave the lab running at the end (tear down with: scripts/demo.sh --down)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export FERRY_LAB_PREFIX=${FERRY_LAB_PREFIX:-fd}
P=$FERRY_LAB_PREFIX
# root's own directory (under /run, mode 0711): no other user can plant files
# in it or list it (never a fixed name in world-writable /tmp or /var/tmp);
# QEMU, as ferry-qemu, passes through to the disks
WORK=/run/ferry-demo-$P
LAB=$ROOT/lab/lab.sh
FERRY=$ROOT/build/src/cli/ferry
FERRYD=$ROOT/build/src/daemon/ferryd
GUEST=$ROOT/guest/out
GUEST_IP=10.77.0.100
KEEP=0

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

down() {
  # every process of the lab (ferryd, QEMU, ping) lives in its namespaces:
  # lab.sh down stops them all and removes the namespaces and bridges
  "$LAB" down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}

case "${1:-}" in
  --keep) KEEP=1 ;;
  --down) down; exit 0 ;;
  "") ;;
  *) echo "usage: scripts/demo.sh [--keep|--down]" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespaces, bridges, QEMU)" >&2; exit 1; }
[ -x "$FERRYD" ] && [ -f "$GUEST/vmlinuz" ] || { echo "demo: build first: scripts/build.sh" >&2; exit 1; }
if [ "$KEEP" = 0 ]; then trap down EXIT; fi

say "A lab: host1 and host2 (LAN 10.77.0.0/24, migration network 10.78.0.0/24), a client, a domain controller"
down
install -d -m 0711 "$WORK"
"$LAB" up >/dev/null
lab/dc.sh up >/dev/null
eval "$("$LAB" env)"
eval "$(lab/dc.sh env)"
lab/dc.sh delegate HOST1 host2.lab.test kerberos-only >/dev/null
lab/dc.sh delegate HOST2 host1.lab.test kerberos-only >/dev/null
echo "realm $LAB_REALM on dc.lab.test; HOST1\$ may delegate to ferry/host2.lab.test and back (Kerberos only)"

start_host() { # name ip keytab
  mkdir -p "$WORK/$1"
  "$LAB" exec "$1" "$FERRYD" --state-dir "$WORK/$1/state" --run-dir "$WORK/$1/run" \
    --host-name "$1.lab.test" --listen "$2" --keytab "$3" \
    --admin-principal alice@LAB.TEST >"$WORK/$1/ferryd.log" 2>&1 &
  for _ in $(seq 50); do [ -S "$WORK/$1/run/control.sock" ] && break; sleep 0.1; done
}
on() { local h=$1; shift; "$LAB" exec "$h" "$FERRY" --socket "$WORK/$h/run/control.sock" "$@"; }

say "ferryd on both hosts; the same settings Hyper-V needs (Enable-VMMigration, Set-VMMigrationNetwork, Set-VMHost)"
start_host host1 "$LAB_HOST1_IP" "$LAB_HOST1_KEYTAB"
start_host host2 "$LAB_HOST2_IP" "$LAB_HOST2_KEYTAB"
for h in host1 host2; do
  on $h -q switch create External --uplink vmnet0
  on $h -q migration enable
  on $h -q migration network add 10.78.0.0/24 --priority 1 >/dev/null
  on $h -q host set auth kerberos performance compression
  # where incoming moves may put disks, and read the guest's kernel from
  on $h -q host set storage-roots "$WORK"
done
if ! { grep -qE '\b(vmx|svm)\b' /proc/cpuinfo && [ -e /dev/kvm ]; }; then
  # Measured with bench/move_bench.py on such a machine: 11 of 12 moves over
  # TLS left the guest oopsing on the destination, 0 of 16 without
  # (README, Status / limitations).
  echo "demo: no hardware virtualization here: QEMU 7.2 under TCG damages guests migrated over TLS;"
  echo "      the demo's migration network lives inside its own namespaces: encryption off on both hosts"
  for h in host1 host2; do on $h -q host set encryption off; done
fi
run on host1 host show

say "A guest on host1: the stock Debian kernel, a data disk it writes numbered records to"
mkdir -p "$WORK/host1/disks" "$WORK/host2/disks"
# QEMU runs as ferry-qemu: it reads the kernel from the demo's directory, not
# from the clone, whose parent directories it may not pass through
install -d -m 0755 "$WORK/guest"
install -m 0644 "$GUEST/vmlinuz" "$GUEST/initrd.img" "$WORK/guest/"
on host1 -q vm define web1 --memory 256M --kernel "$WORK/guest/vmlinuz" --initrd "$WORK/guest/initrd.img" \
  --cmdline "console=ttyS0 clocksource=hpet panic=-1 ferry.ip=$GUEST_IP/24 ferry.disk=/dev/vda ferry.dirty=8" \
  --disk "$WORK/host1/disks/web1-data.qcow2,size=64M" --nic External
run on host1 vm start web1
printf 'waiting for the guest to boot'
for _ in $(seq 120); do
  on host1 vm console web1 | grep -q 'ferry-heartbeat 2' && break
  printf '.'; sleep 1
done
echo
run "$LAB" exec client ping -c 3 -W 2 "$GUEST_IP"
echo "QEMU runs unprivileged and sandboxed (user, seccomp mode 2 = filter):"
for pid in $(ip netns pids "${P}host1"); do
  case "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" in
  qemu-system*) ps -o user=,uid=,pid=,comm= -p "$pid"; grep '^Seccomp:' "/proc/$pid/status" ;;
  esac
done

say "alice signs in on the client and moves the running VM with its disks: host1 -> host2"
CC="FILE:$WORK/alice.ccache"
printf '%s\n' "$LAB_ALICE_PASSWORD" | "$LAB" exec client env KRB5CCNAME="$CC" kinit alice@LAB.TEST >/dev/null
"$LAB" exec client ping -i 0.1 -W 1 "$GUEST_IP" >"$WORK/ping.log" 2>&1 &
PING=$!
sleep 1
run "$LAB" exec client env KRB5CCNAME="$CC" "$FERRY" -H host1.lab.test \
  vm move web1 host2.lab.test --include-storage --storage-path "$WORK/host2/disks"
sleep 1
kill -INT $PING; wait $PING 2>/dev/null || true

say "The guest answered throughout (the client pinged it every 100 ms):"
tail -2 "$WORK/ping.log"
say "It runs on host2 now; its heartbeat counter went on without a reset:"
run on host2 vm list
if on host2 vm console web1 | grep -aqE 'BUG: unable|kernel BUG at|list_(add|del) corruption|Oops: '; then
  # the guest's memory arrived damaged (QEMU 7.2, TCG)
  on host2 vm console web1 | grep -aE 'BUG|Oops|corruption' | head -3
  echo "demo: ferry completed the move, but the guest's kernel oopsed right after it resumed on host2:"
  echo "      QEMU 7.2 without hardware virtualization (TCG) sometimes corrupts a guest's memory in a"
  echo "      live migration (README, Status / limitations). Run the demo again; with KVM it does not arise."
  exit 3
fi
for _ in $(seq 10); do on host2 vm console web1 | grep -aq 'ferry-heartbeat' && break; sleep 1; done
on host2 vm console web1 | grep -a 'ferry-heartbeat' | tail -2
run on host1 vm list
ls "$WORK/host1/disks"
echo "(host1 kept no VM and no disk files)"
if [ "$KEEP" = 1 ]; then
  echo; echo "lab left running (prefix $P); tear down with: scripts/demo.sh --down"
fi
