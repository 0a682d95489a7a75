#!/bin/sh
# smtpguard mta-check against a real Postfix in a namespace of this test's
# own, configured once correctly and once as an open relay; and against a
# stand-in MTA that offers AUTH without TLS. Postfix runs in a private mount
# namespace (its config, queue and data directories are this test's), so
# the host's Postfix files are never touched. Every process is stopped by PID.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"
. "$ROOT/scripts/lib/postfix.sh"
SG="$ROOT/build/smtpguard"

command -v postfix >/dev/null || { fail "mta-check: postfix not installed (scripts/deps check installs it, unless another MTA is installed)"; finish; }
setup_lone_host

# start_postfix MYNETWORKS: Postfix listening on all addresses of the namespace.
start_postfix() {
	postfix_services "$T/master.cf"
	cat >"$T/postfix.sh" <<EOS
#!/bin/sh
set -e
mount --make-rprivate /
cp -a /etc/postfix/. "$T/etc/"
mount --bind "$T/etc" /etc/postfix
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
cp "$T/master.cf" /etc/postfix/master.cf
exec postfix start-fg
EOS
	chmod +x "$T/postfix.sh"
	rm -rf "$T/etc" && mkdir "$T/etc"
	# ip netns exec and unshare exec: $! ends up as postfix-script, master's parent.
	ip netns exec "$HOST_NS" unshare -m "$T/postfix.sh" >"$T/postfix.log" 2>&1 &
	postfix_pid=$!
	for _ in $(seq 100); do
		in_host ss -ltn 2>/dev/null | grep -q ':25 ' && return 0
		sleep 0.1
	done
	cat "$T/postfix.log"
	return 1
}

queued() {	# files in Postfix's queue, seen through master's mount namespace
	m=$(pgrep -P "$postfix_pid" | head -n1)
	[ -d "/proc/$m/root/var/spool/postfix/incoming" ] || { echo "no queue directory"; return; }
	find "/proc/$m/root/var/spool/postfix/incoming" "/proc/$m/root/var/spool/postfix/active" \
	    "/proc/$m/root/var/spool/postfix/deferred" -type f 2>/dev/null | wc -l
}

# 1. Postfix as Debian ships it: relaying only for its own networks.
start_postfix "127.0.0.0/8" || fail "mta-check: postfix starts"
in_host "$SG" mta-check >"$T/closed.txt" 2>&1
rc=$?
cat "$T/closed.txt"
closed() {
	[ $rc -eq 0 ] && grep -q 'verdict  refuses to relay' "$T/closed.txt" &&
	    grep -q 'Relay access denied' "$T/closed.txt" || { echo "rc=$rc"; return 1; }
}
check "mta-check: a correctly configured Postfix is reported as refusing to relay (exit 0)" closed
banner() {
	grep -q 'banner   220 mx-test.example ESMTP Postfix' "$T/closed.txt" &&
	    grep -q 'EHLO     mx-test.example (PIPELINING' "$T/closed.txt"
}
check "mta-check: the MTA's banner and EHLO name are reported" banner
check "mta-check: STARTTLS and AUTH are reported" \
    grep -q 'STARTTLS NOT offered; AUTH before TLS: no' "$T/closed.txt"
check "mta-check: a port nobody listens on is said so" \
    grep -q 'port 587: MTA listens on nothing' "$T/closed.txt"
outside_client() {
	grep -q 'connect from unknown\[192.0.2.254\]' "$T/postfix.log" ||
	    { echo "postfix saw: $(grep connect "$T/postfix.log")"; return 1; }
}
check "mta-check: Postfix saw an outside client address" outside_client
veth_gone() {
	[ "$(in_host ip -o link | grep -c sgchk)" -eq 0 ] || { echo "veth left: $(in_host ip -o link)"; return 1; }
}
check "mta-check: the veth pair is gone afterwards" veth_gone
stop_postfix

# 2. The same Postfix with mynetworks = 0.0.0.0/0: an open relay.
start_postfix "0.0.0.0/0" || fail "mta-check: postfix starts"
in_host "$SG" mta-check --port 25 --json >"$T/open.json" 2>&1
rc=$?
cat "$T/open.json"
open_relay() {
	[ $rc -eq 1 ] && [ "$(jq '.[0].open_relay' "$T/open.json")" = true ] &&
	    [ "$(jq '.[0].rcpt_code' "$T/open.json")" = 250 ] || { echo "rc=$rc"; return 1; }
}
check "mta-check: an open-relay Postfix is reported as OPEN RELAY (exit 1)" open_relay
text_verdict() { in_host "$SG" mta-check --port 25 | grep -q 'verdict  OPEN RELAY'; }
check "mta-check: the text report says OPEN RELAY" text_verdict
nothing_queued() { n=$(queued); [ "$n" = 0 ] || { echo "$n files queued"; return 1; }; }
check "mta-check: nothing was queued (the check never sends DATA)" nothing_queued
stop_postfix

# 3. A stand-in MTA on 587 that offers AUTH before any TLS.
ip netns exec "$HOST_NS" python3 -c '
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
PIDS="$PIDS $!"
wait_for "the stand-in MTA" sh -c "ip netns exec $HOST_NS ss -ltn | grep -q ':587 '"
in_host "$SG" mta-check --port 587 >"$T/auth.txt" 2>&1
rc=$?
cat "$T/auth.txt"
auth_warning() {
	grep -q 'AUTH before TLS: PLAIN LOGIN (WARNING' "$T/auth.txt" && [ $rc -eq 0 ] ||
	    { echo "rc=$rc"; return 1; }
}
check "mta-check: AUTH offered without TLS is a warning" auth_warning

usage_error() { "$@" >/dev/null 2>&1; rc=$?; [ $rc -eq 2 ] || { echo "rc=$rc"; return 1; }; }
check "mta-check: a bad --port is a usage error" usage_error "$SG" mta-check --port 0
check "mta-check: a bad --to is a usage error" usage_error "$SG" mta-check --to 'x y'
non_root() {
	setpriv --reuid=65534 --regid=65534 --clear-groups "$SG" mta-check >/dev/null 2>"$T/err"
	rc=$?
	[ $rc -eq 1 ] && grep -q 'must run as root' "$T/err" || { echo "rc=$rc $(cat "$T/err")"; return 1; }
}
check "mta-check: non-root is told it needs root" non_root
finish
