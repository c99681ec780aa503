#!/bin/bash
# ferry test lab: a Samba Active Directory domain controller in ${P}dc.
#
#   dc.sh up | down | status | env
#   dc.sh delegate SRC DSTFQDN [kerberos-only|any-protocol]
#   dc.sh undelegate SRC DSTFQDN
#   dc.sh delegation SRC                (show)
#   dc.sh tool ARGS...                  (samba-tool against the lab DC)
#
# Realm LAB.TEST, domain LAB. State lives in $FERRY_LAB_DIR
# (default /run/ferry-lab-$FERRY_LAB_PREFIX). Needs `lab.sh up` first.
# See lab/README.md.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
P=${FERRY_LAB_PREFIX:-fl}
STATE=${FERRY_LAB_DIR:-/run/ferry-lab-$P}

die() { echo "dc.sh: error: $*" >&2; exit 1; }
log() { echo "dc.sh: $*" >&2; }

[[ $P =~ ^[a-z][a-z0-9_-]{0,7}$ ]] || die "bad FERRY_LAB_PREFIX '$P'"
[[ $STATE == /* ]] || die "FERRY_LAB_DIR must be an absolute path"

REALM=LAB.TEST
DOMAIN=lab.test
NETBIOS=LAB
DC_IP=10.77.0.5
NS_DC=${P}dc
HOSTS=(host1 host2 host3)

ADMIN_USER=Administrator
ADMIN_PW='FerryLab-Admin1'
ALICE_PW='Alice-Passw0rd1'
BOB_PW='Bob-Passw0rd1'
ADMINS_GROUP=ferry-admins
machine_pw() { echo "${1^}-Machine-Passw0rd"; }

SAMBA=$STATE/samba
CONF=$SAMBA/etc/smb.conf
PIDFILE=$SAMBA/run/samba.pid
KRB5_GENERIC=$STATE/krb5.conf

# Every command in the DC namespace gets the lab's krb5.conf explicitly: no
# file of the machine's /etc is read.
nsx() { ip netns exec "$NS_DC" env KRB5_CONFIG="$KRB5_GENERIC" "$@"; }
# samba-tool on the local database
stool() { nsx samba-tool "$@" -s "$CONF"; }

samba_pid() {
	local pid
	[[ -r $PIDFILE ]] || return 1
	pid=$(tr -dc 0-9 <"$PIDFILE")
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

krb5_conf() { # $1 = ccache dir
	cat <<EOF
# ferry lab ($P): Samba AD DC at $DC_IP
[libdefaults]
	default_realm = $REALM
	dns_lookup_kdc = false
	dns_lookup_realm = false
	rdns = false
	dns_canonicalize_hostname = false
	forwardable = true
	udp_preference_limit = 1
	default_ccache_name = FILE:$1/krb5cc_%{uid}

[realms]
	$REALM = {
		kdc = $DC_IP
		admin_server = $DC_IP
		default_domain = $DOMAIN
	}

[domain_realm]
	.$DOMAIN = $REALM
	$DOMAIN = $REALM
EOF
}

write_krb5() {
	local n
	mkdir -p "$STATE/ccache"
	krb5_conf "$STATE/ccache" >"$KRB5_GENERIC"
	for n in "${HOSTS[@]}" client dc; do
		mkdir -p "$STATE/$n/ccache"
		# lab.sh exec NODE gives it to commands as KRB5_CONFIG
		krb5_conf "$STATE/$n/ccache" >"$STATE/krb5-$n.conf"
	done
}

provision() {
	rm -rf "$SAMBA"
	mkdir -p "$SAMBA/run" "$SAMBA/log"
	log "provisioning $REALM (takes ~10 s)"
	nsx samba-tool domain provision \
		--realm="$REALM" --domain="$NETBIOS" --server-role=dc \
		--dns-backend=SAMBA_INTERNAL --host-name=dc --host-ip="$DC_IP" \
		--adminpass="$ADMIN_PW" --use-rfc2307 --targetdir="$SAMBA" \
		--option="interfaces = $DC_IP" \
		--option="bind interfaces only = yes" \
		--option="pid directory = $SAMBA/run" \
		--option="ncalrpc dir = $SAMBA/run/ncalrpc" \
		--option="winbindd socket directory = $SAMBA/run/winbindd" \
		--option="ntp signd socket directory = $SAMBA/run/ntp_signd" \
		--option="log file = $SAMBA/log/samba.log" \
		--option="log level = 1" \
		--option="server services = -s3fs -nbt -wrepl -ntp_signd" \
		--option="load printers = no" \
		--option="disable spoolss = yes" \
		--option="printcap name = /dev/null" \
		>"$SAMBA/log/provision.log" 2>&1 ||
		{ tail -20 "$SAMBA/log/provision.log" >&2; die "provision failed (log: $SAMBA/log/provision.log)"; }
	# provision writes unused defaults for these; keep nothing outside $STATE
	sed -i -e '/^\s*\[homes\]/,$d' "$CONF"
	touch "$SAMBA/.provisioned"
}

start_samba() {
	local i port missing
	if samba_pid >/dev/null; then return 0; fi
	log "starting samba in $NS_DC"
	nsx samba -s "$CONF" -D || die "samba failed to start (log: $SAMBA/log/)"
	for i in $(seq 150); do
		missing=
		for port in 88 389 53 135; do
			nsx ss -ltnH "sport = :$port" | grep -q . || missing+=" $port"
		done
		[[ -z $missing ]] && break
		samba_pid >/dev/null || [[ $i -lt 20 ]] || die "samba exited (log: $SAMBA/log/)"
		sleep 0.1
	done
	[[ -z $missing ]] || die "samba is not listening on$missing after 15 s (log: $SAMBA/log/)"
}

# LDIF on stdin applied to the local sam.ldb; @BASE@ = the domain DN.
# (Debian's samba python modules are for /usr/bin/python3 only.)
ldb_modify() {
	/usr/bin/python3 -c '
import sys
from samba.samdb import SamDB
from samba.param import LoadParm
from samba.auth import system_session
lp = LoadParm(); lp.load(sys.argv[1])
db = SamDB(url=lp.private_path("sam.ldb"), session_info=system_session(), lp=lp)
db.modify_ldif(sys.stdin.read().replace("@BASE@", str(db.domain_dn())))
' "$CONF" || die "ldb modify failed"
}

user_exists() { stool user show "$1" >/dev/null 2>&1; }

ensure_objects() {
	local h H kt pw
	if ! [[ -e $SAMBA/.policy ]]; then
		stool domain passwordsettings set --complexity=off --max-pwd-age=0 \
			--min-pwd-age=0 --history-length=0 >/dev/null
		touch "$SAMBA/.policy"
	fi
	user_exists alice || stool user create alice "$ALICE_PW" --given-name=Alice --surname=Admin >/dev/null
	user_exists bob || stool user create bob "$BOB_PW" --given-name=Bob --surname=User >/dev/null
	stool group show "$ADMINS_GROUP" >/dev/null 2>&1 ||
		stool group add "$ADMINS_GROUP" --description="ferry administrators" >/dev/null
	stool group listmembers "$ADMINS_GROUP" | grep -qx alice ||
		stool group addmembers "$ADMINS_GROUP" alice >/dev/null
	for h in "${HOSTS[@]}"; do
		H=${h^^}
		if ! stool computer show "$H" >/dev/null 2>&1; then
			stool computer create "$H" \
				--service-principal-name="ferry/$h.$DOMAIN" \
				--service-principal-name="host/$h.$DOMAIN" \
				--service-principal-name="host/$H" >/dev/null
			# AES-only service tickets and keys (unset means RC4 for tickets
			# to this account's SPNs, and an RC4-only keytab for ferry/...)
			ldb_modify <<EOF
dn: CN=$H,CN=Computers,@BASE@
changetype: modify
replace: msDS-SupportedEncryptionTypes
msDS-SupportedEncryptionTypes: 24
-
replace: dNSHostName
dNSHostName: $h.$DOMAIN
EOF
		fi
		kt=$STATE/$h.keytab
		if ! [[ -s $kt ]]; then
			# A new computer account has no usable keys until a password is set.
			pw=$(machine_pw "$h")
			stool user setpassword "$H\$" --newpassword="$pw" >/dev/null
			rm -f "$kt"
			mask=$(umask)
			umask 077 # the keytab is never readable by others, not even for a moment
			for p in "$H\$" "ferry/$h.$DOMAIN" "host/$h.$DOMAIN"; do
				stool domain exportkeytab "$kt" --principal="$p" >>"$SAMBA/log/exportkeytab.log" 2>&1 ||
					die "exportkeytab $p failed (log: $SAMBA/log/exportkeytab.log)"
			done
			umask "$mask"
			chmod 600 "$kt"
		fi
		klist -k "$kt" | grep -q "ferry/$h.$DOMAIN@$REALM" || die "keytab $kt has no ferry/$h.$DOMAIN keys"
	done
	# DNS A records (the hosts files already carry them; this is for DNS users)
	for h in host1:10.77.0.11 host2:10.77.0.12 host3:10.77.0.13 client:10.77.0.2; do
		if ! nsx samba-tool dns query "$DC_IP" "$DOMAIN" "${h%%:*}" A \
			-U "$ADMIN_USER%$ADMIN_PW" >/dev/null 2>&1; then
			nsx samba-tool dns add "$DC_IP" "$DOMAIN" "${h%%:*}" A "${h#*:}" \
				-U "$ADMIN_USER%$ADMIN_PW" >/dev/null 2>&1 || log "warning: DNS record for ${h%%:*} not added"
		fi
	done
}

cmd_up() {
	[[ $(id -u) == 0 ]] || die "must run as root"
	command -v samba >/dev/null || die "samba not installed (apt-get install samba samba-ad-dc samba-ad-provision krb5-user)"
	command -v kinit >/dev/null || die "krb5-user not installed"
	[[ -e /var/run/netns/$NS_DC ]] || die "namespace $NS_DC missing: run 'FERRY_LAB_PREFIX=$P $LAB_DIR/lab.sh up' first"
	local t0=$SECONDS
	mkdir -p "$STATE"
	chmod 755 "$STATE"
	write_krb5
	if [[ -e $SAMBA/.provisioned && -e $CONF ]] && samba_pid >/dev/null; then
		log "samba already running (pid $(samba_pid))"
	else
		if [[ -e $SAMBA/.provisioned && -e $CONF ]]; then
			log "reusing provisioned database in $SAMBA"
		else
			provision
		fi
		start_samba
	fi
	ensure_objects
	# smoke test: the KDC answers
	printf '%s\n' "$ADMIN_PW" | KRB5CCNAME=MEMORY: nsx kinit "$ADMIN_USER@$REALM" >/dev/null ||
		die "KDC at $DC_IP does not issue tickets (log: $SAMBA/log/)"
	log "DC for $REALM is up in $NS_DC ($((SECONDS - t0)) s); state in $STATE"
}

cmd_down() {
	local pid i n
	if pid=$(samba_pid); then
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	# any samba children left in the DC namespace
	if [[ -e /var/run/netns/$NS_DC ]]; then
		for pid in $(ip netns pids "$NS_DC" 2>/dev/null); do
			[[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */samba* ]] && kill -KILL "$pid" 2>/dev/null || true
		done
	fi
	# only remove what looks like ours
	if [[ -d $STATE ]]; then
		[[ -d $STATE/samba || -e $KRB5_GENERIC || -e $STATE/hosts || -z $(ls -A "$STATE") ]] ||
			die "$STATE does not look like a lab state dir; not removing it"
		# the hosts file is lab.sh's
		find "$STATE" -mindepth 1 -maxdepth 1 ! -name hosts -exec rm -rf {} +
		rmdir "$STATE" 2>/dev/null || true
	fi
	log "DC for lab '$P' is down"
}

cmd_status() {
	local pid
	if pid=$(samba_pid); then echo "samba running, pid $pid, state $STATE"; else echo "samba not running"; return 1; fi
}

cmd_env() {
	local h
	printf '%s=%q\n' \
		LAB_REALM "$REALM" LAB_NETBIOS_DOMAIN "$NETBIOS" LAB_DC_IP "$DC_IP" \
		LAB_STATE_DIR "$STATE" KRB5_CONFIG "$KRB5_GENERIC" LAB_KRB5_CONFIG "$KRB5_GENERIC" \
		LAB_ADMIN_USER "$ADMIN_USER" LAB_ADMIN_PASSWORD "$ADMIN_PW" \
		LAB_ALICE alice LAB_ALICE_PRINCIPAL "alice@$REALM" LAB_ALICE_PASSWORD "$ALICE_PW" \
		LAB_BOB bob LAB_BOB_PRINCIPAL "bob@$REALM" LAB_BOB_PASSWORD "$BOB_PW" \
		LAB_ADMINS_GROUP "$ADMINS_GROUP"
	if [[ -e $CONF ]] && samba_pid >/dev/null; then
		printf '%s=%q\n' LAB_ADMINS_GROUP_SID \
			"$(stool group show "$ADMINS_GROUP" --attributes=objectSid 2>/dev/null | awk '/^objectSid:/{print $2}')"
	fi
	for h in "${HOSTS[@]}" client dc; do
		printf '%s=%q\n' "LAB_${h^^}_KRB5_CONFIG" "$STATE/krb5-$h.conf"
	done
	for h in "${HOSTS[@]}"; do
		printf '%s=%q\n' "LAB_${h^^}_KEYTAB" "$STATE/$h.keytab" \
			"LAB_${h^^}_SERVICE" "ferry/$h.$DOMAIN@$REALM" \
			"LAB_${h^^}_ACCOUNT" "${h^^}\$@$REALM" \
			"LAB_${h^^}_MACHINE_PASSWORD" "$(machine_pw "$h")"
	done
}

need_dc() { [[ -e $CONF ]] && samba_pid >/dev/null || die "DC for lab '$P' is not up (dc.sh up)"; }

# host1 | HOST1 | HOST1$ | host1.lab.test -> HOST1$
account() {
	local a=${1%%.*}
	a=${a%\$}
	echo "${a^^}\$"
}

fqdn() { [[ $1 == *.* ]] && echo "$1" || echo "$1.$DOMAIN"; }

# Set UF_TRUSTED_TO_AUTHENTICATE_FOR_DELEGATION to on|off (samba-tool
# refuses to set a flag that is already in the wanted state).
set_any_protocol() {
	local acct=$1 want=$2 cur
	cur=$(stool delegation show "$acct" | awk '/^UF_TRUSTED_TO_AUTHENTICATE_FOR_DELEGATION:/{print $2}')
	[[ $cur == True && $want == on ]] || [[ $cur == False && $want == off ]] ||
		stool delegation for-any-protocol "$acct" "$want" >/dev/null
}

# msDS-AllowedToDelegateTo values of $1, one per line
delegates() { stool delegation show "$1" | sed -n 's/^msDS-AllowedToDelegateTo: //p'; }

cmd_delegate() {
	[[ $# -ge 2 && $# -le 3 ]] || die "usage: delegate SRC DSTFQDN [kerberos-only|any-protocol]"
	need_dc
	local acct dst any mode=${3:-kerberos-only}
	acct=$(account "$1")
	dst=$(fqdn "$2")
	case $mode in
	kerberos-only) any=off ;;
	any-protocol) any=on ;;
	*) die "mode must be kerberos-only or any-protocol" ;;
	esac
	if ! delegates "$acct" | grep -qxF "ferry/$dst"; then
		stool delegation add-service "$acct" "ferry/$dst" >/dev/null
	fi
	# protocol transition is a property of the account, not of one service
	set_any_protocol "$acct" "$any"
	log "$acct may delegate to ferry/$dst ($mode)"
}

cmd_undelegate() {
	[[ $# -eq 2 ]] || die "usage: undelegate SRC DSTFQDN"
	need_dc
	local acct dst
	acct=$(account "$1")
	dst=$(fqdn "$2")
	if delegates "$acct" | grep -qxF "ferry/$dst"; then
		stool delegation del-service "$acct" "ferry/$dst" >/dev/null
	fi
	[[ -n $(delegates "$acct") ]] || set_any_protocol "$acct" off
	log "$acct may no longer delegate to ferry/$dst"
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
delegate) shift; cmd_delegate "$@" ;;
undelegate) shift; cmd_undelegate "$@" ;;
delegation) [[ $# -eq 2 ]] || die "usage: delegation SRC"; need_dc; stool delegation show "$(account "$2")" ;;
tool) shift; need_dc; stool "$@" ;;
*) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
