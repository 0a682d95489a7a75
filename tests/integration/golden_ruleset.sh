#!/bin/sh
# The ruleset as the kernel holds it, in a network namespace of its own
# (netns.sh's lone host): what `nft list` prints matches rules/smtpguard.nft,
# a restart replaces the table instead of adding a second one, remove deletes
# it, live exception changes land in @allow_uids, and a foreign table is left
# byte for byte as it was. Needs root; the host's own ruleset is never touched.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"

make -s -C "$ROOT" build/tools/nftapply >/dev/null ||
    { fail "golden ruleset: building build/tools/nftapply"; finish; }
setup_lone_host
APPLY=$ROOT/build/tools/nftapply
GOLDEN=$ROOT/rules/smtpguard.nft
apply() { in_host "$APPLY" "$@"; }

# The listing without nft's own comment lines (the iptables-nft warning).
listing() { in_host nft list table inet smtpguard 2>/dev/null | grep -v '^#'; }
count_tables() { tables | grep -c '^table inet smtpguard$'; }

in_host nft -f - <<'NFT' || { fail "golden ruleset: cannot create the foreign table"; finish; }
table inet other {
	set keep { type ipv4_addr; elements = { 192.0.2.7 } }
	chain out {
		type filter hook output priority 10; policy accept;
		tcp dport 25 ip daddr @keep counter accept comment "the admin's own"
	}
}
NFT
in_host nft list table inet other >"$T/other.before" 2>&1

if out=$(apply install 2>&1); then
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

out=$(apply install 2>&1)
n=$(count_tables)
if [ "$n" -eq 1 ] && listing | cmp -s - "$T/golden"; then
	pass "installing twice leaves exactly one table"
else
	fail "installing twice leaves exactly one table" "$n tables; $out"
fi

apply allow 3002 3003 >"$T/out" 2>&1 && apply revoke 3003 >>"$T/out" 2>&1
set_line=$(in_host nft list set inet smtpguard allow_uids 2>/dev/null | grep elements)
case $set_line in
*"elements = { 3002 }"*) pass "a live exception lands in @allow_uids and is revoked" ;;
*) fail "a live exception lands in @allow_uids and is revoked" "$(cat "$T/out") $set_line" ;;
esac

if out=$(apply revoke 4242 2>&1); then
	fail "revoking an absent uid is refused and named" "it succeeded"
else
	case $out in
	*"delete elements from set allow_uids (1): No such file or directory"*)
		pass "revoking an absent uid is refused and named" ;;
	*) fail "revoking an absent uid is refused and named" "$out" ;;
	esac
fi

listing >"$T/current"
if out=$(apply install -M 0x1 2>&1); then
	fail "a bad mask is refused and the installed fence stays" "it installed"
elif listing | cmp -s - "$T/current"; then
	pass "a bad mask is refused and the installed fence stays"
else
	fail "a bad mask is refused and the installed fence stays" "$out"
fi

apply exists >/dev/null 2>&1 && pass "exists says present" || fail "exists says present"

if out=$(apply remove 2>&1) && [ "$(count_tables)" -eq 0 ]; then
	pass "remove deletes the table"
else
	fail "remove deletes the table" "$out"
fi

apply exists >/dev/null 2>&1
[ $? -eq 1 ] && pass "exists says absent" || fail "exists says absent"

if out=$(apply remove 2>&1); then
	fail "removing an absent table is an error" "it succeeded"
else
	case $out in
	*"No such file or directory"*) pass "removing an absent table is an error (ENOENT)" ;;
	*) fail "removing an absent table is an error" "$out" ;;
	esac
fi

in_host nft list table inet other >"$T/other.after" 2>&1
if cmp -s "$T/other.before" "$T/other.after"; then
	pass "a foreign table is left byte for byte as it was"
else
	fail "a foreign table is left byte for byte as it was" \
	    "$(diff -u "$T/other.before" "$T/other.after" | head -n 20)"
fi

finish
