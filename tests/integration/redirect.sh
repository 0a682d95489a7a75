#!/bin/sh
# action = redirect with a real Postfix and the mail gate, in this test's own
# namespaces: a PHP script as www-data speaks SMTP straight to the stand-in
# MX (192.0.2.25, 2001:db8::25); the fence's nat chain sends the session to
# the Postfix on this host (127.0.0.1:25, [::1]:25) instead, the gate names
# it by the attempt's uid, pid and exe (smtpguardd knows the flow by its
# source port) and its limits apply: past the limit the message is held.
# The MX sees Postfix's delivery only, never the direct session. Then the
# same per exception (smtpguard allow www-data --redirect) under action =
# reject, where another user is still refused. Postfix runs in a private
# mount namespace whose /etc/postfix and /var/spool/postfix are this test's
# folders (as in mailgate.sh); every process is stopped by PID.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"
. "$ROOT/scripts/lib/postfix.sh"

WEB_USER=www-data	# Debian's web server user (uid 33): the PHP script runs as it
SPOOL=$T/spool		# Postfix's queue_directory, mounted on /var/spool/postfix
MAILQ=$SPOOL/smtpguard	# the gate's socket directory, seen by Postfix as smtpguard/

for c in postfix php jq; do
	command -v $c >/dev/null || { fail "$c not installed (scripts/deps check installs it)"; finish; }
done
WEB_UID=$(id -u "$WEB_USER") || { fail "no $WEB_USER user"; finish; }
OTHER_UID=3001		# another site user, with no exception

setup_net
start_mx 25
mkdir -p "$SPOOL"

# A PHP spam script's direct-MX session: connect, EHLO ... QUIT. Prints the
# local address and port it used (what the fence saw as the source).
cat >"$T/directmx.php" <<'PHP'
<?php
[$_, $mx, $port, $rcpt, $subject] = $argv;
$s = @stream_socket_client("tcp://$mx:$port", $errno, $errstr, 5);
if ($s === false) { fwrite(STDERR, "connect: $errstr\n"); exit(1); }
echo "local ", stream_socket_get_name($s, false), "\n";
function reply($s) {
	$all = '';
	do { $l = fgets($s, 1024); if ($l === false) break; $all .= $l; } while (strlen($l) > 3 && $l[3] === '-');
	return $all;
}
function say($s, $line, $want) {
	fwrite($s, "$line\r\n");
	$r = reply($s);
	if ((int)substr($r, 0, 3) !== $want) { fwrite(STDERR, "$line: $r"); exit(2); }
}
if (substr(reply($s), 0, 3) !== '220') exit(3);
say($s, "EHLO spam.example", 250);
say($s, "MAIL FROM:<shop@web1.example>", 250);
say($s, "RCPT TO:<$rcpt>", 250);
say($s, "DATA", 354);
fwrite($s, "From: shop@web1.example\r\nTo: $rcpt\r\nSubject: $subject\r\n\r\ncheap pills\r\n");
say($s, ".", 250);
say($s, "QUIT", 221);
echo "sent\n";
PHP
chmod 0644 "$T/directmx.php"

# php_as UID MX PORT RCPT SUBJECT: the script as that uid; its output in $T/php.out
php_as() {
	as_uid "$1" php "$T/directmx.php" "$2" "$3" "$4" "$5" >"$T/php.out" 2>&1
}
sport_of() { sed -n 's/^local .*:\([0-9]*\)$/\1/p' "$T/php.out"; }

start_postfix() {
	postfix_services "$T/master.cf"
	{ postfix_main_cf 'inet_interfaces = 127.0.0.1, [::1]' 'inet_protocols = all' \
	    'mynetworks = 127.0.0.0/8, 192.0.2.0/24, [::1]/128, [2001:db8::]/64'
	  printf '%s\n' 'smtpd_milters = unix:smtpguard/gate.sock' \
	    'non_smtpd_milters = unix:smtpguard/gate.sock' 'milter_default_action = tempfail'
	} >"$T/main.cf"
	postfix_private "$T/main.cf" "$T/master.cf"
	postfix_run "$T/postfix.sh" 127.0.0.1:25
}
mx_accepts() { grep -c '^accept ' "$T/mx.log" 2>/dev/null || echo 0; }
held() { in_postfix postqueue -j 2>/dev/null | jq -s '[.[] | select(.queue_name == "hold")] | length'; }
count() { jq -c "select($1)" "$T/events.jsonl" 2>/dev/null | wc -l; }	# events matching
atleast() { [ "$(count "$1")" -ge "$2" ]; }
exactly() { [ "$(count "$1")" -eq "$2" ]; }
# the attempt of the session from source port $1, and the mail event of the same flow
# (jq 1.6 -e is true on empty input: checks count matches or test -s first)
attempt_of() { jq -c "select(.event == \"attempt\" and .src_port == $1)" "$T/events.jsonl"; }
mail_of_flow() { jq -c "select(.event == \"mail\" and .flow_id == $1)" "$T/events.jsonl"; }

write_config "mta_users = postfix" "action = redirect"
cat >>"$T/smtpguard.conf" <<EOF
[mail]
gate = yes
socket = $MAILQ/gate.sock
postfix_queue = $SPOOL
limit = 200/hour
state = $T/mail.state
EOF
echo "limit user:$WEB_USER 1/hour" >"$T/exceptions.conf"

start_daemon || { fail "smtpguardd did not start" "$(tail -n 5 "$T/daemon.log")"; finish; }
wait_for "the gate's socket" test -S "$MAILQ/gate.sock"
start_postfix || { fail "postfix did not start"; finish; }
check "the to_mta chain is installed, redirecting to the MTA's port" \
    sh -c "ip netns exec $HOST_NS nft list chain inet smtpguard to_mta | grep -q 'redirect to :25'"

# 1. A PHP script's direct-MX session as www-data: redirected, named, passed (1/hour).
php_as "$WEB_UID" "$MX4" 25 bob@remote.example "offer 1" ||
    fail "the PHP direct-MX session completes (redirected to the MTA)" "$(cat "$T/php.out")"
sport1=$(sport_of)
wait_for_long atleast '.event == "mail" and .subject == "offer 1"' 1
wait_for_long sh -c "[ \$(grep -c '^data ' '$T/mx.log') -ge 1 ]"
attempt_of "$sport1" >"$T/attempt1.json"
check "its attempt says action redirect, with uid $WEB_UID, the pid and php's exe" \
    exactly ".event == \"attempt\" and .src_port == ${sport1:-0} and .action == \"redirect\" and .rule == \"default\" and .uid == $WEB_UID and .user == \"$WEB_USER\" and .pid > 0 and (.exe | test(\"php\")) and .dst_ip == \"$MX4\" and .dst_port == 25" 1
flow1=$(jq -r .flow_id "$T/attempt1.json")
mail_of_flow "${flow1:-0}" >"$T/mail1.json"
check "its mail event carries the attempt's attribution: uid, user, pid, exe, cmdline" \
    sh -c "[ -s '$T/mail1.json' ] && jq -e --slurpfile a '$T/attempt1.json' '.origin == \"user:$WEB_USER\" and .uid == \$a[0].uid and .user == \$a[0].user and .pid == \$a[0].pid and .exe == \$a[0].exe and .cmdline == \$a[0].cmdline and (.cmdline | test(\"directmx.php\")) and .subject == \"offer 1\" and .action == \"pass\" and .mta == \"postfix\"' '$T/mail1.json'"
check "under its limit, Postfix delivers it to the MX (its own delivery is not redirected)" \
    [ "$(delivered)" -eq 1 ]

# 2. The second one passes the limit: held in Postfix's hold queue.
php_as "$WEB_UID" "$MX4" 25 carol@remote.example "offer 2" ||
    fail "the second session completes" "$(cat "$T/php.out")"
sport2=$(sport_of)
wait_for_long atleast '.event == "mail" and .subject == "offer 2"' 1
flow2=$(attempt_of "$sport2" | jq -r .flow_id)
check "past the gate's limit the redirected message is held, named by uid $WEB_UID" \
    exactly ".event == \"mail\" and .flow_id == ${flow2:-0} and .action == \"hold\" and .uid == $WEB_UID and .pid > 0 and .hour_count == 2 and .limit == 1" 1
check "Postfix's hold queue holds it" [ "$(held)" -eq 1 ]

# 3. IPv6: the same script to the MX's v6 address goes to [::1]:25.
php_as "$WEB_UID" "[$MX6]" 25 dan@remote.example "offer v6" ||
    fail "the IPv6 session completes" "$(cat "$T/php.out")"
sport6=$(sport_of)
wait_for_long atleast '.event == "mail" and .subject == "offer v6"' 1
flow6=$(attempt_of "$sport6" | jq -r .flow_id)
check "IPv6: redirected to the MTA (::1), named by the attempt, held" \
    exactly ".event == \"mail\" and .flow_id == ${flow6:-0} and .uid == $WEB_UID and .action == \"hold\" and .origin == \"user:$WEB_USER\" and .client_ip == \"2001:db8::1\"" 1

# 4. Submission and implicit TLS are not the MTA's to take: refused, and the rule says why.
php_as "$WEB_UID" "$MX4" 465 erin@remote.example "offer 465"
check "a direct session to port 465 is refused at once (redirect-not-mx)" \
    sh -c "grep -q 'connect: Connection refused' '$T/php.out' && [ \$(jq -c 'select(.event == \"attempt\" and .dst_port == 465 and .action == \"reject\" and .rule == \"redirect-not-mx\")' '$T/events.jsonl' | wc -l) -eq 1 ]"

sleep 1	# anything more that would leave has had time to
check "the MX never saw a direct session: only Postfix's one delivery" \
    sh -c "[ \$(grep -c '^accept ' '$T/mx.log') -eq 1 ] && ! grep -E -q '^accept .* ($sport1|$sport2|$sport6) ' '$T/mx.log'"
check "exactly one message left, the one under the limit" [ "$(delivered)" -eq 1 ]

# 5. Per exception: action = reject, smtpguard allow www-data --redirect (live).
sed -i 's/^action = redirect$/action = reject/' "$T/smtpguard.conf"
sg reload >/dev/null || fail "reload to action = reject"
php_as "$WEB_UID" "$MX4" 25 frank@remote.example "refused"
check "with action = reject a direct session is refused" \
    grep -q 'connect: Connection refused' "$T/php.out"
sg allow "$WEB_USER" --redirect --comment "php direct-MX to the queue" >/dev/null ||
    fail "smtpguard allow $WEB_USER --redirect"
check "the exception is written as a redirect line" \
    grep -q "^allow $WEB_USER redirect comment=" "$T/exceptions.conf"
php_as "$WEB_UID" "$MX4" 25 gina@remote.example "offer exception" ||
    fail "the excepted session completes" "$(cat "$T/php.out")"
sportx=$(sport_of)
wait_for_long atleast '.event == "mail" and .subject == "offer exception"' 1
flowx=$(attempt_of "$sportx" | jq -r .flow_id)
check "allow $WEB_USER --redirect: redirected under its exception, named, held" \
    sh -c "[ \$(jq -c 'select(.event == \"attempt\" and .src_port == ${sportx:-0} and .action == \"redirect\" and .rule == \"exception:$WEB_USER\")' '$T/events.jsonl' | wc -l) -eq 1 ] &&
	[ \$(jq -c 'select(.event == \"mail\" and .flow_id == ${flowx:-0} and .uid == $WEB_UID and .action == \"hold\")' '$T/events.jsonl' | wc -l) -eq 1 ]"
php_as "$OTHER_UID" "$MX4" 25 hank@remote.example "other user" || true
check "another user is still refused" grep -q 'connect: Connection refused' "$T/php.out"
sg status --json >"$T/status.json"
check "status counts the redirects and the messages the gate named by them" \
    jq -e '.decisions.redirect == 4 and .redirect_named == 4 and .redirect_refused == 0' "$T/status.json"
check "the MX still saw only Postfix's one delivery" [ "$(mx_accepts)" -eq 1 ]

echo "--- attempt and mail event of the first session:"
cat "$T/attempt1.json" "$T/mail1.json"
if [ "$FAILS" -gt 0 ]; then
	echo "--- daemon log:"
	tail -n 20 "$T/daemon.log"
	echo "--- mx log:"
	cat "$T/mx.log"
	echo "--- postfix log:"
	grep -i -E 'milter|warning|error|fatal|connect from' "$T/postfix.log" | tail -n 20
fi
stop_postfix
finish
