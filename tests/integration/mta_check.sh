#!/bin/sh
# smtpguard mta-check against a real Postfix in a namespace of this test's
# own, configured once correctly and once as an open relay; and against a
# stand-in MTA that offers AUTH without TLS. Postfix runs in a private mount
# namespace (its config, queue and data directories are this test's), so
# the host's Postfix files are never touched. Every process is stopped by PID.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SG="$ROOT/build/smtpguard"
NS=sgmc$$
work=$(mktemp -d) || exit 1
fails=0
pass() { echo "PASS: mta-check: $1"; }
fail() { echo "FAIL: mta-check: $1"; fails=$((fails + 1)); }
in_ns() { ip netns exec "$NS" "$@"; }

postfix_pid=
stop_postfix() {
	[ -n "$postfix_pid" ] || return 0
	# postfix start-fg is a shell whose child is master; master stops the rest.
	pkill -TERM -P "$postfix_pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$postfix_pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$postfix_pid" 2>/dev/null
	wait "$postfix_pid" 2>/dev/null
	postfix_pid=
}
cleanup() {
	stop_postfix
	[ -n "${fake_pid:-}" ] && kill "$fake_pid" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

command -v postfix >/dev/null || { echo "FAIL: mta-check: postfix not installed (scripts/deps check installs it, unless another MTA is installed)"; exit 1; }
ip netns add "$NS" && in_ns ip link set lo up || { echo "FAIL: mta-check: netns"; exit 1; }

# start_postfix MYNETWORKS: Postfix listening on all addresses of the namespace.
start_postfix() {
	cat >"$work/postfix.sh" <<EOS
#!/bin/sh
set -e
mount --make-rprivate /
cp -a /etc/postfix/. "$work/etc/"
mount --bind "$work/etc" /etc/postfix
mount -t tmpfs -o mode=0755 tmpfs /var/spool/postfix
mount -t tmpfs -o mode=0755 tmpfs /var/lib/postfix
chown postfix:postfix /var/lib/postfix
cat >/etc/postfix/main.cf <<'EOC'
compatibility_level = 3.6
myhostname = mx-test.example
mydestination = mx-test.example, localhost
inet_interfaces = all
inet_protocols = ipv4
mynetworks = $1
smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination
smtpd_banner = \$myhostname ESMTP Postfix
smtpd_peername_lookup = no
maillog_file = /dev/stdout
alias_maps =
EOC
printf '%s\n' \
 'smtp      inet  n - n - - smtpd' 'pickup    unix  n - n 60 1 pickup' \
 'cleanup   unix  n - n - 0 cleanup' 'qmgr      unix  n - n 300 1 qmgr' \
 'rewrite   unix  - - n - - trivial-rewrite' 'bounce    unix  - - n - 0 bounce' \
 'defer     unix  - - n - 0 bounce' 'trace     unix  - - n - 0 bounce' \
 'verify    unix  - - n - 1 verify' 'proxymap  unix  - - n - - proxymap' \
 'smtp      unix  - - n - - smtp' 'error     unix  - - n - - error' \
 'retry     unix  - - n - - error' 'discard   unix  - - n - - discard' \
 'local     unix  - n n - - local' 'anvil     unix  - - n - 1 anvil' \
 'scache    unix  - - n - 1 scache' 'postlog   unix-dgram n - n - 1 postlogd' \
 >/etc/postfix/master.cf
exec postfix start-fg
EOS
	chmod +x "$work/postfix.sh"
	rm -rf "$work/etc" && mkdir "$work/etc"
	# ip netns exec and unshare exec: $! ends up as postfix-script, master's parent.
	ip netns exec "$NS" unshare -m "$work/postfix.sh" >"$work/postfix.log" 2>&1 &
	postfix_pid=$!
	for _ in $(seq 100); do
		in_ns ss -ltn 2>/dev/null | grep -q ':25 ' && return 0
		sleep 0.1
	done
	cat "$work/postfix.log"
	return 1
}

queued() {	# files in Postfix's queue, seen through master's mount namespace
	m=$(pgrep -P "$postfix_pid" | head -n1)
	[ -d "/proc/$m/root/var/spool/postfix/incoming" ] || { echo "no queue directory"; return; }
	find "/proc/$m/root/var/spool/postfix/incoming" "/proc/$m/root/var/spool/postfix/active" \
	    "/proc/$m/root/var/spool/postfix/deferred" -type f 2>/dev/null | wc -l
}

# 1. Postfix as Debian ships it: relaying only for its own networks.
start_postfix "127.0.0.0/8" || fail "postfix did not start"
in_ns "$SG" mta-check >"$work/closed.txt" 2>&1
rc=$?
cat "$work/closed.txt"
if [ $rc -eq 0 ] && grep -q 'verdict  refuses to relay' "$work/closed.txt" &&
    grep -q 'Relay access denied' "$work/closed.txt"; then
	pass "a correctly configured Postfix is reported as refusing to relay (exit 0)"
else
	fail "closed relay: rc=$rc"
fi
grep -q 'banner   220 mx-test.example ESMTP Postfix' "$work/closed.txt" &&
    grep -q 'EHLO     mx-test.example (PIPELINING' "$work/closed.txt" &&
    pass "the MTA's banner and EHLO name are reported" || fail "banner/EHLO"
grep -q 'STARTTLS NOT offered; AUTH before TLS: no' "$work/closed.txt" &&
    pass "STARTTLS and AUTH are reported" || fail "STARTTLS/AUTH line"
grep -q 'port 587: MTA listens on nothing' "$work/closed.txt" &&
    pass "a port nobody listens on is said so" || fail "port 587"
grep -q 'connect from unknown\[192.0.2.254\]' "$work/postfix.log" &&
    pass "Postfix saw an outside client address" || fail "postfix saw: $(grep connect "$work/postfix.log")"
[ "$(in_ns ip -o link | grep -c sgchk)" -eq 0 ] &&
    pass "the veth pair is gone afterwards" || fail "veth left: $(in_ns ip -o link)"
stop_postfix

# 2. The same Postfix with mynetworks = 0.0.0.0/0: an open relay.
start_postfix "0.0.0.0/0" || fail "postfix did not start"
in_ns "$SG" mta-check --port 25 --json >"$work/open.json" 2>&1
rc=$?
cat "$work/open.json"
if [ $rc -eq 1 ] && [ "$(jq '.[0].open_relay' "$work/open.json")" = true ] &&
    [ "$(jq '.[0].rcpt_code' "$work/open.json")" = 250 ]; then
	pass "an open-relay Postfix is reported as OPEN RELAY (exit 1)"
else
	fail "open relay: rc=$rc"
fi
in_ns "$SG" mta-check --port 25 | grep -q 'verdict  OPEN RELAY' &&
    pass "the text report says OPEN RELAY" || fail "text verdict"
[ "$(queued)" = 0 ] && pass "nothing was queued (the check never sends DATA)" ||
    fail "$(queued) files queued"
stop_postfix

# 3. A stand-in MTA on 587 that offers AUTH before any TLS.
ip netns exec "$NS" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 587)); s.listen(4)
while True:
    c, _ = s.accept(); f = c.makefile("rwb")
    def say(t): f.write(t.encode() + b"\r\n"); f.flush()
    say("220 sub.example ESMTP")
    for line in f:
        v = line[:4].upper()
        if v == b"EHLO": say("250-sub.example"); say("250 AUTH PLAIN LOGIN")
        elif v == b"MAIL": say("250 ok")
        elif v == b"RCPT": say("550 5.7.1 relaying denied")
        elif v == b"QUIT": say("221 bye"); break
        else: say("250 ok")
    c.close()
' &
fake_pid=$!
for _ in $(seq 50); do in_ns ss -ltn | grep -q ':587 ' && break; sleep 0.1; done
in_ns "$SG" mta-check --port 587 >"$work/auth.txt" 2>&1
rc=$?
cat "$work/auth.txt"
grep -q 'AUTH before TLS: PLAIN LOGIN (WARNING' "$work/auth.txt" && [ $rc -eq 0 ] &&
    pass "AUTH offered without TLS is a warning" || fail "AUTH warning: rc=$rc"

"$SG" mta-check --port 0 >/dev/null 2>&1; [ $? -eq 2 ] && pass "a bad --port is a usage error" ||
    fail "bad --port"
"$SG" mta-check --to 'x y' >/dev/null 2>&1; [ $? -eq 2 ] && pass "a bad --to is a usage error" ||
    fail "bad --to"
setpriv --reuid=65534 --regid=65534 --clear-groups "$SG" mta-check >/dev/null 2>"$work/err"
[ $? -eq 1 ] && grep -q 'must run as root' "$work/err" && pass "non-root is told it needs root" ||
    fail "non-root: $(cat "$work/err")"
[ $fails -eq 0 ]
