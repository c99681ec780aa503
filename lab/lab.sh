#!/bin/bash
# ferry test lab: hosts in network namespaces.
#
#   lab.sh up | down | status | env
#   lab.sh cut-migration [block|down] | restore-migration
#   lab.sh throttle-migration RATE | unthrottle-migration
#   lab.sh exec NODE CMD...        (NODE = lan|mig|host1|host2|host3|client|dc)
#
# Every name carries the prefix $FERRY_LAB_PREFIX (default "fl"), so several
# labs can coexist. Nothing is created in the root namespace except the
# namespaces themselves and the state dir $FERRY_LAB_DIR (default
# /run/ferry-lab-$FERRY_LAB_PREFIX); nothing in /etc is created or read.
# `exec` gives a command the lab's names (a hosts file through nss_wrapper)
# and the node's krb5.conf explicitly, in its environment. See lab/README.md.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
P=${FERRY_LAB_PREFIX:-fl}
STATE=${FERRY_LAB_DIR:-/run/ferry-lab-$P}
HOSTS_FILE=$STATE/hosts

die() { echo "lab.sh: error: $*" >&2; exit 1; }
log() { echo "lab.sh: $*" >&2; }

[[ $P =~ ^[a-z][a-z0-9_-]{0,7}$ ]] ||
	die "FERRY_LAB_PREFIX '$P' must be 1-8 chars of [a-z0-9_-], starting with a letter"
[[ $STATE == /* ]] || die "FERRY_LAB_DIR must be an absolute path"

DOMAIN=lab.test
NS_LAN=${P}lan
NS_MIG=${P}mig
NS_HOST1=${P}host1
NS_HOST2=${P}host2
NS_HOST3=${P}host3
NS_CLIENT=${P}client
NS_DC=${P}dc
ALL_NS=("$NS_HOST1" "$NS_HOST2" "$NS_HOST3" "$NS_CLIENT" "$NS_DC" "$NS_MIG" "$NS_LAN")
LAN_NET=10.77.0.0/24
MIG_NET=10.78.0.0/24
HOST1_IP=10.77.0.11 HOST2_IP=10.77.0.12 HOST3_IP=10.77.0.13 CLIENT_IP=10.77.0.2 DC_IP=10.77.0.5
HOST1_MIG_IP=10.78.0.11 HOST2_MIG_IP=10.78.0.12 HOST3_MIG_IP=10.78.0.13
# the hosts' ports on the migration switch (cut, restore, throttle act on all)
MIG_PORTS=(h1-mig0 h2-mig0 h3-mig0)

# the migration switch's host ports that exist (a lab brought up before
# host3 was added has two)
mig_ports() {
	local port
	for port in "${MIG_PORTS[@]}"; do
		ip -n "$NS_MIG" link show "$port" >/dev/null 2>&1 && echo "$port"
	done
	return 0
}
need_root() { [[ $(id -u) == 0 ]] || die "must run as root"; }
ns_exists() { [[ -e /var/run/netns/$1 ]]; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

node_ns() {
	case $1 in
	lan) echo "$NS_LAN" ;; mig) echo "$NS_MIG" ;;
	host1) echo "$NS_HOST1" ;; host2) echo "$NS_HOST2" ;; host3) echo "$NS_HOST3" ;;
	client) echo "$NS_CLIENT" ;; dc) echo "$NS_DC" ;;
	"$NS_LAN" | "$NS_MIG" | "$NS_HOST1" | "$NS_HOST2" | "$NS_HOST3" | "$NS_CLIENT" | "$NS_DC") echo "$1" ;;
	*) die "unknown node '$1' (lan|mig|host1|host2|host3|client|dc)" ;;
	esac
}

cmd_env() {
	local v src
	for v in P:FERRY_LAB_PREFIX DOMAIN:LAB_DOMAIN \
		NS_LAN:LAB_NS_LAN NS_MIG:LAB_NS_MIG NS_HOST1:LAB_NS_HOST1 NS_HOST2:LAB_NS_HOST2 \
		NS_HOST3:LAB_NS_HOST3 NS_CLIENT:LAB_NS_CLIENT NS_DC:LAB_NS_DC LAN_NET:LAB_LAN_NET MIG_NET:LAB_MIG_NET \
		HOST1_IP:LAB_HOST1_IP HOST2_IP:LAB_HOST2_IP HOST3_IP:LAB_HOST3_IP CLIENT_IP:LAB_CLIENT_IP DC_IP:LAB_DC_IP \
		HOST1_MIG_IP:LAB_HOST1_MIG_IP HOST2_MIG_IP:LAB_HOST2_MIG_IP HOST3_MIG_IP:LAB_HOST3_MIG_IP; do
		src=${v%%:*}
		printf '%s=%q\n' "${v#*:}" "${!src}"
	done
	printf '%s=%q\n' LAB_HOST1_FQDN "host1.$DOMAIN" LAB_HOST2_FQDN "host2.$DOMAIN" \
		LAB_HOST3_FQDN "host3.$DOMAIN" LAB_CLIENT_FQDN "client.$DOMAIN" LAB_DC_FQDN "dc.$DOMAIN" \
		LAB_HOST_UPLINK vmnet0 LAB_HOST_MIG_IF mig0 LAB_HOST_MGMT_IF eth0 \
		LAB_STATE_DIR "$STATE" LAB_HOSTS_FILE "$HOSTS_FILE"
}

nss_wrapper() { compgen -G '/usr/lib/*/libnss_wrapper.so' | head -1 | grep .; }

# The environment a command on NODE gets: the lab's names from $HOSTS_FILE
# (nss_wrapper, so that no file in /etc is needed or changed) and the node's
# own krb5.conf, written by dc.sh up (the generic one for lan and mig).
node_env() {
	local conf=$STATE/krb5-$1.conf preload
	preload=$(nss_wrapper) || die "libnss-wrapper is not installed (scripts/deps.sh installs it)"
	[[ -e $conf ]] || conf=$STATE/krb5.conf
	[[ -n ${LD_PRELOAD:-} ]] && preload="$preload:$LD_PRELOAD"
	printf '%s\0' "KRB5_CONFIG=$conf" "NSS_WRAPPER_HOSTS=$HOSTS_FILE" "LD_PRELOAD=$preload"
}

# Kill every process whose network namespace is $1, TERM then KILL.
kill_ns_pids() {
	local ns=$1 pids i
	pids=$(ip netns pids "$ns" 2>/dev/null || true)
	[[ -n $pids ]] || return 0
	log "stopping processes in $ns: $(echo $pids)"
	kill -TERM $pids 2>/dev/null || true
	for i in $(seq 30); do
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		[[ -z $pids ]] && return 0
		sleep 0.1
	done
	kill -KILL $pids 2>/dev/null || true
	sleep 0.2
}

cmd_down() {
	need_root
	local ns
	# The DC's state dir and daemon belong to dc.sh; let it clean up first.
	if [[ -x $LAB_DIR/dc.sh ]]; then "$LAB_DIR/dc.sh" down >/dev/null 2>&1 || true; fi
	for ns in "${ALL_NS[@]}"; do
		if ns_exists "$ns"; then
			kill_ns_pids "$ns"
			ip netns del "$ns" || die "cannot delete namespace $ns"
		fi
	done
	rm -f "$HOSTS_FILE"
	rmdir "$STATE" 2>/dev/null || true
	log "lab '$P' is down"
}

# The lab's names, for nss_wrapper (NSS_WRAPPER_HOSTS): see node_env.
write_hosts() {
	mkdir -p "$STATE"
	chmod 755 "$STATE"
	cat >"$HOSTS_FILE.tmp" <<EOF
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
$HOST1_IP	host1.$DOMAIN host1
$HOST2_IP	host2.$DOMAIN host2
$HOST3_IP	host3.$DOMAIN host3
$CLIENT_IP	client.$DOMAIN client
$DC_IP	dc.$DOMAIN dc
$HOST1_MIG_IP	host1-mig.$DOMAIN host1-mig
$HOST2_MIG_IP	host2-mig.$DOMAIN host2-mig
$HOST3_MIG_IP	host3-mig.$DOMAIN host3-mig
EOF
	mv -f "$HOSTS_FILE.tmp" "$HOSTS_FILE"
}

# veth from the LAN bridge (port $2 in $NS_LAN) to interface $3 in namespace $1
lan_port() {
	local ns=$1 port=$2 ifname=$3
	ip -n "$NS_LAN" link add name "$port" type veth peer name "$ifname" netns "$ns"
	ip -n "$NS_LAN" link set "$port" master lan0 up
	ip -n "$ns" link set "$ifname" up
}

mig_port() {
	local ns=$1 port=$2
	ip -n "$NS_MIG" link add name "$port" type veth peer name mig0 netns "$ns"
	ip -n "$NS_MIG" link set "$port" master mig0 up
	ip -n "$ns" link set mig0 up
}

cmd_up() {
	need_root
	command -v ip >/dev/null || die "iproute2 not installed"
	nss_wrapper >/dev/null || die "libnss-wrapper is not installed (scripts/deps.sh installs it)"
	local t0=$SECONDS ns
	for ns in "${ALL_NS[@]}"; do
		if ns_exists "$ns"; then
			log "leftovers of lab '$P' found, tearing down first"
			cmd_down
			break
		fi
	done
	trap 'log "up failed; run: FERRY_LAB_PREFIX=$P $0 down"' ERR
	for ns in "${ALL_NS[@]}"; do
		ip netns add "$ns" || die "cannot create namespace $ns"
		ip -n "$ns" link set lo up
	done
	# LAN: one bridge; migration network: another bridge, in its own namespace
	# so that it can be cut without touching the hosts' links.
	ip -n "$NS_LAN" link add name lan0 type bridge forward_delay 0 stp_state 0
	ip -n "$NS_LAN" link set lan0 up
	ip -n "$NS_MIG" link add name mig0 type bridge forward_delay 0 stp_state 0
	ip -n "$NS_MIG" link set mig0 up

	lan_port "$NS_HOST1" h1-eth0 eth0
	lan_port "$NS_HOST1" h1-vmnet0 vmnet0
	lan_port "$NS_HOST2" h2-eth0 eth0
	lan_port "$NS_HOST2" h2-vmnet0 vmnet0
	lan_port "$NS_HOST3" h3-eth0 eth0
	lan_port "$NS_HOST3" h3-vmnet0 vmnet0
	lan_port "$NS_CLIENT" client-eth0 eth0
	lan_port "$NS_DC" dc-eth0 eth0
	mig_port "$NS_HOST1" h1-mig0
	mig_port "$NS_HOST2" h2-mig0
	mig_port "$NS_HOST3" h3-mig0

	ip -n "$NS_HOST1" addr add "$HOST1_IP/24" dev eth0
	ip -n "$NS_HOST2" addr add "$HOST2_IP/24" dev eth0
	ip -n "$NS_HOST3" addr add "$HOST3_IP/24" dev eth0
	ip -n "$NS_CLIENT" addr add "$CLIENT_IP/24" dev eth0
	ip -n "$NS_DC" addr add "$DC_IP/24" dev eth0
	ip -n "$NS_HOST1" addr add "$HOST1_MIG_IP/24" dev mig0
	ip -n "$NS_HOST2" addr add "$HOST2_MIG_IP/24" dev mig0
	ip -n "$NS_HOST3" addr add "$HOST3_MIG_IP/24" dev mig0
	# vmnet0 carries only guest traffic: no IP, no IPv6 autoconf noise.
	for ns in "$NS_HOST1" "$NS_HOST2" "$NS_HOST3"; do
		nsx "$ns" sysctl -qw net.ipv6.conf.vmnet0.disable_ipv6=1 || true
	done

	write_hosts
	trap - ERR

	# Smoke test: management LAN and migration network.
	nsx "$NS_CLIENT" ping -c1 -W2 -q "$HOST1_IP" >/dev/null || die "client cannot reach host1 ($HOST1_IP)"
	nsx "$NS_HOST1" ping -c1 -W2 -q "$HOST2_MIG_IP" >/dev/null || die "host1 cannot reach host2 over mig0 ($HOST2_MIG_IP)"
	log "lab '$P' is up ($((SECONDS - t0)) s)"
}

cmd_status() {
	local ns rc=0 pids
	for ns in "${ALL_NS[@]}"; do
		if ! ns_exists "$ns"; then
			printf '%-12s absent\n' "$ns"
			rc=1
			continue
		fi
		pids=$(ip netns pids "$ns" 2>/dev/null | wc -l)
		printf '%-12s present, %s process(es)\n' "$ns" "$pids"
		ip -n "$ns" -br addr show | grep -v '^lo ' | sed 's/^/    /' || true
	done
	if ns_exists "$NS_MIG"; then
		printf 'migration network: %s\n' "$(mig_state)"
	fi
	return $rc
}

mig_state() {
	local s
	s=$(bridge -n "$NS_MIG" link show 2>/dev/null | grep -o 'state [a-z]*' | sort -u | tr '\n' ' ')
	if ip -n "$NS_MIG" link show h1-mig0 2>/dev/null | grep -q 'state DOWN'; then
		echo "cut (links down)"
	elif [[ $s == *disabled* ]]; then
		echo "cut (blocked)"
	else
		echo "connected ($s)"
	fi
}

need_lab() { ns_exists "$NS_MIG" || die "lab '$P' is not up (FERRY_LAB_PREFIX=$P $0 up)"; }

# block: frames are silently dropped by the migration switch; the hosts'
# links stay up (like a failed switch or pulled cable further away).
# down: the switch ports go down; the hosts see NO-CARRIER on mig0.
cmd_cut() {
	need_root; need_lab
	local mode=${1:-block} port
	for port in $(mig_ports); do
		case $mode in
		block) bridge -n "$NS_MIG" link set dev "$port" state 0 ;;
		down) ip -n "$NS_MIG" link set "$port" down ;;
		*) die "cut-migration: mode must be block or down" ;;
		esac
	done
	log "migration network cut ($mode)"
}

cmd_restore() {
	need_root; need_lab
	local port
	local i
	for port in $(mig_ports); do
		ip -n "$NS_MIG" link set "$port" up
	done
	for i in $(seq 50); do
		[[ $(bridge -n "$NS_MIG" link show | grep -c 'state forwarding') == "$(mig_ports | wc -w)" ]] && break
		# a port that was only blocked stays disabled until told otherwise
		for port in $(mig_ports); do
			bridge -n "$NS_MIG" link set dev "$port" state 3 2>/dev/null || true
		done
		sleep 0.1
	done
	[[ $(bridge -n "$NS_MIG" link show | grep -c 'state forwarding') == "$(mig_ports | wc -w)" ]] ||
		die "migration switch ports did not return to forwarding"
	log "migration network restored"
}

# Rate-limit the migration network (both directions), e.g. 20mbit.
cmd_throttle() {
	need_root; need_lab
	local rate=${1:?usage: throttle-migration RATE (e.g. 20mbit)} port
	for port in $(mig_ports); do
		tc -n "$NS_MIG" qdisc replace dev "$port" root tbf rate "$rate" burst 64kb latency 1s
	done
	log "migration network throttled to $rate"
}

cmd_unthrottle() {
	need_root; need_lab
	local port
	for port in $(mig_ports); do
		tc -n "$NS_MIG" qdisc del dev "$port" root 2>/dev/null || true
	done
	log "migration network unthrottled"
}

usage() {
	sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
cut-migration) shift; cmd_cut "$@" ;;
restore-migration) cmd_restore ;;
throttle-migration) shift; cmd_throttle "$@" ;;
unthrottle-migration) cmd_unthrottle ;;
exec)
	shift
	[[ $# -ge 2 ]] || die "usage: exec NODE CMD..."
	ns=$(node_ns "$1"); shift
	mapfile -d '' envs < <(node_env "${ns#"$P"}")
	exec ip netns exec "$ns" env "${envs[@]}" "$@"
	;;
*) usage ;;
esac
