#!/bin/sh
# The ruleset as the kernel holds it, in a network namespace of its own:
# what `nft list` prints matches rules/smtpguard.nft, a restart replaces the
# table instead of adding a second one, remove deletes it, live exception
# changes land in @allow_uids, and a foreign table is left byte for byte
# as it was. Needs root; the host's own ruleset is never touched.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

if [ "${SG_GOLDEN_NETNS:-}" != 1 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "FAIL: golden ruleset: needs root (for unshare -n)"
		exit 1
	fi
	make -s -C "$ROOT" build/tools/nftapply >/dev/null || {
		echo "FAIL: golden ruleset: building build/tools/nftapply"
		exit 1
	}
	SG_GOLDEN_NETNS=1 exec unshare -n "$0" "$@"
fi

APPLY=$ROOT/build/tools/nftapply
GOLDEN=$ROOT/rules/smtpguard.nft
FAILS=0
T=$(mktemp -d /tmp/smtpguard-golden.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' INT TERM

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1${2:+: $2}"; FAILS=$((FAILS + 1)); }

# The listing without nft's own comment lines (the iptables-nft warning).
listing() { nft list table inet smtpguard 2>/dev/null | grep -v '^#'; }
count_tables() { nft list tables 2>/dev/null | grep -c '^table inet smtpguard$'; }

nft -f - <<'NFT' || { echo "FAIL: golden ruleset: cannot create the foreign table"; exit 1; }
table inet other {
	set keep { type ipv4_addr; elements = { 192.0.2.7 } }
	chain out {
		type filter hook output priority 10; policy accept;
		tcp dport 25 ip daddr @keep counter accept comment "the admin's own"
	}
}
NFT
nft list table inet other >"$T/other.before" 2>&1

if out=$("$APPLY" install 2>&1); then
	pass "the table installs ($out)"
else
	fail "the table installs" "$out"
fi

grep -v '^#' "$GOLDEN" >"$T/golden"
listing >"$T/listed"
if diff -u "$T/golden" "$T/listed" >"$T/diff"; then
	pass "nft list matches rules/smtpguard.nft"
else
	fail "nft list matches rules/smtpguard.nft" "$(head -n 40 "$T/diff")"
fi

out=$("$APPLY" install 2>&1)
n=$(count_tables)
if [ "$n" -eq 1 ] && listing | cmp -s - "$T/golden"; then
	pass "installing twice leaves exactly one table"
else
	fail "installing twice leaves exactly one table" "$n tables; $out"
fi

"$APPLY" allow 3002 3003 >"$T/out" 2>&1 && "$APPLY" revoke 3003 >>"$T/out" 2>&1
set_line=$(nft list set inet smtpguard allow_uids 2>/dev/null | grep elements)
case $set_line in
*"elements = { 3002 }"*) pass "a live exception lands in @allow_uids and is revoked" ;;
*) fail "a live exception lands in @allow_uids and is revoked" "$(cat "$T/out") $set_line" ;;
esac

if out=$("$APPLY" revoke 4242 2>&1); then
	fail "revoking an absent uid is refused and named" "it succeeded"
else
	case $out in
	*"delete elements from set allow_uids (1): No such file or directory"*)
		pass "revoking an absent uid is refused and named" ;;
	*) fail "revoking an absent uid is refused and named" "$out" ;;
	esac
fi

listing >"$T/current"
if out=$("$APPLY" install -M 0x1 2>&1); then
	fail "a bad mask is refused and the installed fence stays" "it installed"
elif listing | cmp -s - "$T/current"; then
	pass "a bad mask is refused and the installed fence stays"
else
	fail "a bad mask is refused and the installed fence stays" "$out"
fi

"$APPLY" exists >/dev/null 2>&1 && pass "exists says present" || fail "exists says present"

if out=$("$APPLY" remove 2>&1) && [ "$(count_tables)" -eq 0 ]; then
	pass "remove deletes the table"
else
	fail "remove deletes the table" "$out"
fi

"$APPLY" exists >/dev/null 2>&1
[ $? -eq 1 ] && pass "exists says absent" || fail "exists says absent"

if out=$("$APPLY" remove 2>&1); then
	fail "removing an absent table is an error" "it succeeded"
else
	case $out in
	*"No such file or directory"*) pass "removing an absent table is an error (ENOENT)" ;;
	*) fail "removing an absent table is an error" "$out" ;;
	esac
fi

nft list table inet other >"$T/other.after" 2>&1
if cmp -s "$T/other.before" "$T/other.after"; then
	pass "a foreign table is left byte for byte as it was"
else
	fail "a foreign table is left byte for byte as it was" \
	    "$(diff -u "$T/other.before" "$T/other.after" | head -n 20)"
fi

[ "$FAILS" -eq 0 ]
