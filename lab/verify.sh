#!/bin/bash
# Verify a running lab (lab.sh up + dc.sh up): networking, Kerberos, and the
# constrained delegation matrix ferry relies on. Prints one line per check;
# exits 1 if any check failed. Leaves HOST1$ with no delegation at the end.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
eval "$("$LAB_DIR/lab.sh" env)"
eval "$("$LAB_DIR/dc.sh" env)"
S=$LAB_STATE_DIR
export KRB5_CONFIG
[[ -r $LAB_HOST1_KEYTAB ]] || { echo "verify.sh: DC not up (dc.sh up)" >&2; exit 1; }

fails=0
# check DESC expect(ok|fail) CMD...
check() {
	local desc=$1 want=$2 out rc=0
	shift 2
	out=$("$@" 2>&1) || rc=$?
	if { [[ $want == ok && $rc == 0 ]] || [[ $want == fail && $rc != 0 ]]; }; then
		[[ $want == ok ]] || out=$(grep -iE 'fail|error|not found|incorrect|denied|unable|no delegated' <<<"$out" || echo "$out")
		printf 'PASS  %-62s %s\n' "$desc" "$(tail -1 <<<"$out" | cut -c1-150)"
	else
		printf 'FAIL  %-62s (rc=%s, wanted %s)\n%s\n' "$desc" "$rc" "$want" "$out" | sed '2,$s/^/      /'
		fails=$((fails + 1))
	fi
}
h1() { "$LAB_DIR/lab.sh" exec host1 "$@"; }
fresh() { rm -f "$S/ccache/v-"*; }
svc_tgt() { h1 kinit -k -t "$LAB_HOST1_KEYTAB" -c "$S/ccache/v-svc" 'HOST1$'; }
# S4U2Self + S4U2Proxy with MIT kvno, from a fresh HOST1$ TGT
kvno_s4u() { fresh && svc_tgt && h1 kvno -c "$S/ccache/v-svc" -U alice -P "$1"; }
evidence() {
	fresh
	printf '%s\n' "$LAB_ALICE_PASSWORD" | h1 kinit -c "$S/ccache/v-alice" alice >/dev/null
	h1 "$S/s4u-check" evidence "$S/ccache/v-alice" "$LAB_HOST1_KEYTAB" "$S/ccache/v-svc" \
		ferry@host1.lab.test "$1" "$LAB_HOST2_KEYTAB"
}
impersonate() { fresh && h1 "$S/s4u-check" impersonate alice@LAB.TEST "$LAB_HOST1_KEYTAB" "$S/ccache/v-svc" "$1" "$LAB_HOST2_KEYTAB"; }
dnsq() {
	"$LAB_DIR/lab.sh" exec client /usr/bin/python3 -c '
import sys, dns.resolver
r = dns.resolver.Resolver(configure=False); r.nameservers = ["'"$LAB_DC_IP"'"]
print(" ".join(str(a) for a in r.resolve(sys.argv[1], sys.argv[2])))' "$@"
}

cc -Wall -O -o "$S/s4u-check" "$LAB_DIR/s4u-check.c" $(krb5-config --libs gssapi)

echo "== network"
check "client -> host1 management ($LAB_HOST1_IP)" ok "$LAB_DIR/lab.sh" exec client ping -c1 -W2 "$LAB_HOST1_IP"
check "host1 -> host2 over mig0 ($LAB_HOST2_MIG_IP)" ok h1 ping -c1 -W2 "$LAB_HOST2_MIG_IP"
check "host2 -> dc ($LAB_DC_IP)" ok "$LAB_DIR/lab.sh" exec host2 ping -c1 -W2 "$LAB_DC_IP"
check "DNS A host1.lab.test from the DC" ok dnsq host1.lab.test A
check "DNS SRV _kerberos._tcp.lab.test" ok dnsq _kerberos._tcp.lab.test SRV
"$LAB_DIR/lab.sh" cut-migration block 2>/dev/null
check "cut-migration block: host1 -/-> host2 mig0" fail h1 ping -c1 -W1 "$LAB_HOST2_MIG_IP"
"$LAB_DIR/lab.sh" restore-migration 2>/dev/null
check "restore-migration: host1 -> host2 mig0" ok h1 ping -c1 -W2 "$LAB_HOST2_MIG_IP"
check "mgmt LAN unaffected by the migration net" ok h1 ping -c1 -W2 "$LAB_HOST2_IP"

echo "== kerberos (KRB5_CONFIG=$KRB5_CONFIG, in $LAB_NS_HOST1)"
fresh
check "kinit alice@LAB.TEST (password on stdin)" ok \
	bash -c 'printf "%s\n" "$1" | ip netns exec "$2" kinit -c "$3" alice@LAB.TEST' _ "$LAB_ALICE_PASSWORD" "$LAB_NS_HOST1" "$S/ccache/v-alice"
check "kvno ferry/host2.lab.test as alice" ok h1 kvno -c "$S/ccache/v-alice" ferry/host2.lab.test
check "ticket to ferry/host2 verifies with host2.keytab" ok h1 kvno -c "$S/ccache/v-alice" -k "$LAB_HOST2_KEYTAB" ferry/host2.lab.test
check "kinit bob@LAB.TEST" ok \
	bash -c 'printf "%s\n" "$1" | ip netns exec "$2" kinit -c "$3" bob' _ "$LAB_BOB_PASSWORD" "$LAB_NS_HOST1" "$S/ccache/v-bob"
check "kinit alice, wrong password" fail \
	bash -c 'echo nope | ip netns exec "$1" kinit -c "$2" alice' _ "$LAB_NS_HOST1" "$S/ccache/v-x"
check "kinit -k -t host1.keytab 'HOST1\$'" ok svc_tgt
check "kinit -k -t host1.keytab ferry/host1.lab.test (SPN as client)" fail \
	h1 kinit -k -t "$LAB_HOST1_KEYTAB" -c "$S/ccache/v-x" ferry/host1.lab.test
check "alice is in ferry-admins, bob is not" ok \
	bash -c '"$1" tool group listmembers ferry-admins | grep -qx alice && ! "$1" tool group listmembers ferry-admins | grep -qx bob' _ "$LAB_DIR/dc.sh"

echo "== delegation: none"
"$LAB_DIR/dc.sh" undelegate HOST1 host2.lab.test 2>/dev/null
check "kvno -U alice -P ferry/host2 (S4U2Self+Proxy)" fail kvno_s4u ferry/host2.lab.test
check "evidence ticket -> ferry@host2 (S4U2Proxy)" fail evidence ferry@host2.lab.test

echo "== delegation: HOST1 -> ferry/host2.lab.test, kerberos-only"
"$LAB_DIR/dc.sh" delegate HOST1 host2.lab.test kerberos-only 2>/dev/null
check "evidence ticket -> ferry@host2 (S4U2Proxy)" ok evidence ferry@host2.lab.test
check "kvno -U alice -P ferry/host2 (needs protocol transition)" fail kvno_s4u ferry/host2.lab.test
check "impersonate alice -> ferry@host2" fail impersonate ferry@host2.lab.test
check "evidence ticket -> host@host2 (not in the list)" fail evidence host@host2.lab.test

echo "== delegation: HOST1 -> ferry/host2.lab.test, any-protocol"
"$LAB_DIR/dc.sh" delegate HOST1 host2.lab.test any-protocol 2>/dev/null
check "kvno -U alice -P ferry/host2.lab.test" ok kvno_s4u ferry/host2.lab.test
check "impersonate alice -> ferry@host2 (gss)" ok impersonate ferry@host2.lab.test
check "evidence ticket -> ferry@host2" ok evidence ferry@host2.lab.test
check "kvno -U alice -P host/host2.lab.test (not in the list)" fail kvno_s4u host/host2.lab.test
check "kvno -U alice -P ferry/client.lab.test (no such SPN)" fail kvno_s4u ferry/client.lab.test
check "HOST2 -> ferry/host1 (reverse, not delegated)" fail \
	bash -c 'rm -f "$1"; ip netns exec "$2" kinit -k -t "$3" -c "$1" "HOST2\$" && ip netns exec "$2" kvno -c "$1" -U alice -P ferry/host1.lab.test' \
	_ "$S/ccache/v-svc2" "$LAB_NS_HOST2" "$LAB_HOST2_KEYTAB"

"$LAB_DIR/dc.sh" undelegate HOST1 host2.lab.test 2>/dev/null
fresh
echo "== $fails failure(s)"
[[ $fails == 0 ]]
