#!/bin/sh
# action = trap: a site user's direct-MX session is redirected to the local
# trap, which records envelope and headers, answers 550 and closes; nothing
# reaches the MX. Hostile clients hit the trap's limits; it carries on.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"

setup_net
start_mx 25 465 587
: >"$T/exceptions.conf"
write_config "action = trap" "trap_port = 10025"
cat >>"$T/smtpguard.conf" <<TRAP
[trap]
sessions = 16
timeout = 3
bytes = 65536
TRAP
start_daemon || { cat "$T/daemon.log"; fail "smtpguardd starts in trap mode"; finish; }

as_uid $WEB_UID swaks --server $MX4 --port 25 --helo spambot.example \
    --from spammer@example.org --to a@example.net,b@example.net,c@example.com \
    --header "Subject: =?UTF-8?B?Q2hlYXAgcGlsbHMg4pyT?=" \
    --header "Message-Id: <trap-test-1@example.org>" \
    --header "X-Mailer: PHPMailer 6.0" \
    --body "Buy now" >"$T/swaks.out" 2>&1
check "swaks sees the 550 at the end of DATA" grep -q '<\*\* 550 5.7.1' "$T/swaks.out"
trapped_event() {
	jq_any --arg uid $WEB_UID 'select(.event == "smtp" and .action == "trap" and
	    .uid == ($uid | tonumber) and .helo == "spambot.example" and
	    .mail_from == "spammer@example.org" and
	    .rcpt_to == ["a@example.net", "b@example.net", "c@example.com"] and
	    .subject == "Cheap pills \u2713" and .message_id == "<trap-test-1@example.org>" and
	    .x_mailer == "PHPMailer 6.0" and .dst_ip == "192.0.2.25" and .dst_port == 25 and
	    (.exe | endswith("perl")) and .inspect == "complete" and
	    (.reply | startswith("550 5.7.1")))' "$T/events.jsonl"
}
check "the smtp event holds helo, envelope, decoded subject, message-id, x-mailer" \
    wait_for "smtp event" trapped_event
same_flow() {
	id=$(jq -r 'select(.event == "smtp") | .flow_id' "$T/events.jsonl" | head -n1)
	[ -n "$id" ] && [ "$id" != null ] &&
	    jq_any --argjson id "$id" 'select(.event == "attempt" and .flow_id == $id and .action == "trap")' \
	    "$T/events.jsonl" >/dev/null
}
check "the smtp event shares its flow_id with the attempt" same_flow
# The mx writes an "accept" line per connection to mx.log, which it creates
# when it starts: a missing log, or an mx no longer running, proves nothing.
nothing_reached_mx() {
	[ -f "$T/mx.log" ] || { echo "no mx.log: the mx never started"; return 1; }
	kill -0 "$MX_PID" 2>/dev/null || { echo "the mx is not running"; return 1; }
	! grep accept "$T/mx.log"
}
check "nothing reached the mx" nothing_reached_mx

# IPv6 to 587, and a PHP script speaking SMTP with fsockopen().
as_uid $WEB_UID swaks --server $MX6 --port 587 --from v6@example.org --to x@example.net \
    --header "Subject: over six" >"$T/swaks6.out" 2>&1
check "IPv6 on 587 is trapped too" grep -q '<\*\* 550 5.7.1' "$T/swaks6.out"
cat >"$T/mailer.php" <<'PHP'
<?php
$s = fsockopen($argv[1], 25, $errno, $errstr, 5);
if (!$s) { fwrite(STDERR, "connect: $errstr\n"); exit(1); }
function say($s, $l) { fwrite($s, $l . "\r\n"); return fgets($s); }
fgets($s);
say($s, "EHLO wp.example"); while (($l = fgets($s)) && substr($l, 3, 1) == '-');
say($s, "MAIL FROM:<wordpress@wp.example>");
say($s, "RCPT TO:<victim@example.net>");
say($s, "DATA");
fwrite($s, "X-PHP-Originating-Script: 1000:wp-content/uploads/mailer.php\r\n");
fwrite($s, "Subject: You won\r\nFrom: Lottery <win@wp.example>\r\n\r\n..dot line\r\nbody\r\n.\r\n");
echo fgets($s);
say($s, "QUIT");
PHP
chmod 0644 "$T/mailer.php"
as_uid $WEB_UID php "$T/mailer.php" $MX4 >"$T/php.out" 2>&1
check "the PHP script gets the 550" grep -q '^550 5.7.1' "$T/php.out"
php_logged() {
	jq_any 'select(.event == "smtp" and .php_script == "1000:wp-content/uploads/mailer.php"
	    and .header_from == "Lottery <win@wp.example>" and .subject == "You won"
	    and (.exe | test("php")))' "$T/events.jsonl"
}
check "X-PHP-Originating-Script is logged as php_script" wait_for "php event" php_logged

# Hostile clients: the limits hold and the trap answers the next normal client.
head -c 10000 /dev/zero | tr '\0' 'A' >"$T/long"
printf '\r\n' >>"$T/long"
as_uid $WEB_UID "$T/sgprobe" send $MX4 25 "$T/long" >"$T/long.out" 2>&1
check "a 10,000-byte command line gets 500 Line too long" grep -q '500 5.5.2 Line too long' "$T/long.out"
{
	printf 'EHLO x\r\nMAIL FROM:<a@b>\r\n'
	i=0; while [ $i -lt 1000 ]; do printf 'RCPT TO:<r%d@example.net>\r\n' $i; i=$((i + 1)); done
	printf 'DATA\r\nSubject: many\r\n\r\nx\r\n.\r\nQUIT\r\n'
} >"$T/rcpts"
as_uid $WEB_UID "$T/sgprobe" send $MX4 25 "$T/rcpts" >"$T/rcpts.out" 2>&1
rcpts_logged() {
	jq_any 'select(.event == "smtp" and .subject == "many" and .rcpt_count == 1000 and
	    (.rcpt_to | length) == 32)' "$T/events.jsonl"
}
check "1,000 RCPTs: 32 kept, 1,000 counted" wait_for "rcpt event" rcpts_logged
silent_cut() { jq_any 'select(.event == "smtp" and .inspect == "timeout")' "$T/events.jsonl"; }
as_uid $WEB_UID "$T/sgprobe" connect -t 2000 $MX4 25 >/dev/null
ip netns exec "$HOST_NS" setpriv --reuid=$WEB_UID --regid=$WEB_UID --clear-groups \
    "$T/sgprobe" hold -t 3000 $MX4 25 "$T/never" >/dev/null 2>&1 &
SILENT=$!
PIDS="$PIDS $SILENT"
check "a client that never speaks is cut at the idle timeout and logged" wait_for_long silent_cut
ip netns exec "$HOST_NS" setpriv --reuid=$WEB_UID --regid=$WEB_UID --clear-groups \
    "$T/sgprobe" many -n 500 $MX4 25 >"$T/many.out" 2>&1
check "500 sessions at once: the excess is told 421" grep -q '^busy [1-9]' "$T/many.out"
check "the trap still serves a normal client afterwards" sh -c \
    "ip netns exec $HOST_NS setpriv --reuid=$WEB_UID --regid=$WEB_UID --clear-groups swaks --server $MX4 --to z@example.net --from y@example.org 2>&1 | grep -q '<\*\* 550 5.7.1'"
check "the daemon is alive" sg status
sed -i 's/^bytes = 65536$/bytes = 65536\nreply = 5.7.1 Policy of example hosting: use the local MTA/' "$T/smtpguard.conf"
check "reload takes a new [trap] reply" sg reload
new_reply() {
	ip netns exec $HOST_NS setpriv --reuid=$WEB_UID --regid=$WEB_UID --clear-groups \
	    swaks --server $MX4 --to z@example.net --from y@example.org 2>&1 |
	    grep -q '<\*\* 550 5.7.1 Policy of example hosting'
}
check "the next trapped session gets it" wait_for "new reply" new_reply
check "still nothing reached the mx" nothing_reached_mx

finish
