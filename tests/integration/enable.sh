#!/bin/sh
# smtpguard enable/disable as an admin runs them: a fresh host with postfix
# and no config gets one written with the detected MTA, the daemon is
# daemonised and confirmed by the self-check (which fails when the fence is
# broken on purpose), a second enable changes nothing, disable stops
# it and removes the table but keeps the config (--purge removes it and the
# event log); the admin's own iptables-nft
# rule and nft table stay byte-identical through two cycles. Runs in a private mount
# namespace (tmpfs over /run and /var/log, a fake /etc/passwd) inside the
# test's network namespace: nothing on the host changes.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"

setup_net
start_mx 25
cat >"$T/passwd" <<PW
root:x:0:0:root:/root:/bin/bash
postfix:x:$MTA_UID:$MTA_UID::/var/spool/postfix:/usr/sbin/nologin
www-data:x:$WEB_UID:$WEB_UID:www-data:/var/www:/usr/sbin/nologin
PW
CONF=$T/etc/smtpguard.conf

# One shell in the private mount namespace runs the whole admin session.
cat >"$T/session.sh" <<SESSION
set -u
# Whatever happens below, no daemon outlives the session (killed by its pid).
trap 'p=\$(cat /run/smtpguard/smtpguardd.pid 2>/dev/null) && kill -9 "\$p" 2>/dev/null' EXIT
mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/log || exit 90
mount --bind "$T/passwd" /etc/passwd || exit 91
# The written config names /etc/smtpguard/exceptions.conf: a real one is hidden.
if [ -d /etc/smtpguard ]; then mount -t tmpfs tmpfs /etc/smtpguard || exit 94; fi
sg() { "$BUILD/smtpguard" -c "$CONF" "\$@"; }
# The admin's own firewall: an iptables-nft rule and an nft table of theirs.
iptables -A OUTPUT -p tcp --dport 8080 -j ACCEPT || exit 92
nft -f - <<NFT || exit 93
table inet admin {
	chain out {
		type filter hook output priority 0; policy accept;
		tcp dport 9999 drop
	}
}
NFT
foreign() { iptables -S; nft list table ip filter; nft list table inet admin; }
foreign >"$T/foreign.before"
echo "== enable"; sg enable; echo "rc=\$?"
foreign >"$T/foreign.enabled"
echo "== enable again"; sg enable; echo "rc=\$?"
echo "== check"; sg check; echo "rc=\$?"
echo "== broken: chain flushed"; nft flush chain inet smtpguard fence; sg check; echo "rc=\$?"
echo "== repaired"; sg reload; sg check; echo "rc=\$?"
echo "== ruleset"; nft list table inet smtpguard 2>/dev/null
echo "== probe"; setpriv --reuid=$WEB_UID --regid=$WEB_UID --clear-groups "$T/sgprobe" connect -t 2000 $MX4 25
echo "== pid"; cat /run/smtpguard/smtpguardd.pid
echo "== log"; sg log -n 1
echo "== disable"; sg disable; echo "rc=\$?"
echo "== tables"; nft list tables
echo "== status"; sg status; echo "rc=\$?"
echo "== disable again"; sg disable; echo "rc=\$?"
foreign >"$T/foreign.disabled"
echo "== second cycle"; sg enable >/dev/null; echo "rc=\$?"; foreign >"$T/foreign.enabled2"
sg disable >/dev/null; echo "rc=\$?"; foreign >"$T/foreign.disabled2"
echo "== events file"; stat -c "%a %U:%G" /var/log/smtpguard/events.jsonl
cp "$CONF" "$T/conf.kept"
echo "== purge"; sg enable >/dev/null; sg disable --purge; echo "rc=\$?"
echo "== after purge"; ls "$CONF" /var/log/smtpguard 2>&1
echo "== bad argument"; sg disable --bogus; echo "rc=\$?"
echo "== end"
SESSION
ip netns exec "$HOST_NS" unshare -m sh "$T/session.sh" >"$T/session.out" 2>&1
section() { sed -n "/^== $1\$/,/^== /p" "$T/session.out" | sed '1d;$d'; }
has() { section "$1" | grep -Eq -- "$2"; }
lacks() {	# (an empty or missing section proves nothing: it fails)
	section "$1" >"$T/section"
	[ -s "$T/section" ] || { echo "no output in section '$1'"; return 1; }
	! grep -- "$2" "$T/section"
}

check "enable writes a config naming the detected MTA" grep -q "^mta_users = postfix$" "$T/conf.kept"
check "enable says what it detected" has enable "MTA users detected: postfix\(uid $MTA_UID\)"
check "enable confirms the table is installed" has enable "table inet smtpguard installed"
check "enable exits 0" has enable "^rc=0$"
check "a second enable changes nothing and says so" has "enable again" "already enabled; nothing changed"
check "a second enable exits 0" has "enable again" "^rc=0$"
check "enable ends with the self-check: the fence holds" \
    has enable "self-check: connects as nobody to 127.0.0.1:25 and \[::1\]:25 were refused by smtpguardd"
check "smtpguard check passes on a working fence" has check "^rc=0$"
check "the self-check fails loudly when the fence is broken on purpose" \
    has "broken: chain flushed" "SELF-CHECK FAILED: .* without reaching smtpguardd"
check "and exits 1" has "broken: chain flushed" "^rc=1$"
check "after a reload the self-check passes again" has repaired "^rc=0$"
golden_matches() {
	grep -v '^#' "$ROOT/rules/smtpguard.nft" >"$T/golden"
	section ruleset >"$T/installed"
	diff -u "$T/golden" "$T/installed"
}
check "the table the daemon installed matches rules/smtpguard.nft" golden_matches
check "the daemonised fence refuses a web user" has probe "^refused"
check "the daemon writes a pid file" has pid "^[0-9]+$"
check "log shows the refused attempt" has log "reject"
check "disable says the configuration is kept" has disable "configuration kept"
check "disable exits 0" has disable "^rc=0$"
check "the config file is still there" test -f "$T/conf.kept"
check "after disable no table is left" lacks tables smtpguard
check "status after disable says not running" has status "not running; no fence"
check "status after disable exits 1" has status "^rc=1$"
check "a second disable is harmless" has "disable again" "^rc=0$"
check "the events file is mode 0640 root:adm" has "events file" "^640 root:adm$"
check "the admin's iptables-nft rule and nft table exist" grep -q 'dport 8080' "$T/foreign.before"
for when in enabled disabled enabled2 disabled2; do
	check "the admin's iptables-nft rule and nft table are byte-identical ($when)" \
	    cmp "$T/foreign.before" "$T/foreign.$when"
done
check "a second enable/disable cycle succeeds" test "$(section 'second cycle' | grep -c '^rc=0$')" = 2
check "disable --purge says what it removed" has purge "^removed $CONF$"
check "disable --purge removes the event log too" has purge "^removed /var/log/smtpguard/events.jsonl$"
check "disable --purge exits 0" has purge "^rc=0$"
check "after --purge the config is gone" has "after purge" "cannot access '$CONF'"
check "disable refuses an unknown argument with exit 2" has "bad argument" "^rc=2$"
[ "$FAILS" -eq 0 ] || cat "$T/session.out"
finish
