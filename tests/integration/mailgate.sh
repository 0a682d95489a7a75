#!/bin/sh
# The mail gate with a real Postfix, in this test's own namespaces: Postfix
# runs in the host namespace (where smtpguardd and the web user live) in a
# private mount namespace whose /etc/postfix and /var/spool/postfix are
# this test's folders (never the system's), and relays everything to the
# stand-in MX on 192.0.2.25. The gate's socket is in that queue directory,
# where Postfix reaches it as unix:smtpguard/gate.sock, and smtpguardd reads
# a local submission's uid from the queue file there. Every process is
# stopped by PID.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"
. "$ROOT/scripts/lib/postfix.sh"

WEB_USER=www-data	# Debian's web server user (uid 33), sending through PHP mail()
SPOOL=$T/spool		# Postfix's queue_directory, mounted on /var/spool/postfix
MAILQ=$SPOOL/smtpguard	# the gate's socket directory, seen by Postfix as smtpguard/

command -v postfix >/dev/null || { fail "postfix not installed (scripts/deps check installs it, unless another MTA is installed)"; finish; }
WEB_UID=$(id -u "$WEB_USER") || { fail "no $WEB_USER user"; finish; }

setup_net
start_mx 25
mkdir -p "$SPOOL"

as_web() { postfix_as "$WEB_UID" "$@"; }	# inside Postfix's namespaces, as the web user

# start_postfix DEFAULT_ACTION: milter_default_action (accept|tempfail).
start_postfix() {
	postfix_services "$T/master.cf"
	{ postfix_main_cf; printf '%s\n' 'smtpd_milters = unix:smtpguard/gate.sock' \
	    'non_smtpd_milters = unix:smtpguard/gate.sock' "milter_default_action = $1"; } >"$T/main.cf"
	postfix_private "$T/main.cf" "$T/master.cf"
	postfix_run "$T/postfix.sh" 192.0.2.1:25
}
# Its smtpd children hold the listener until they see master gone.
stop_postfix_gone() {
	stop_postfix
	wait_for "postfix gone" sh -c "! ip netns exec $HOST_NS ss -ltn | grep -q '192.0.2.1:25 '"
}

held() { in_postfix postqueue -j 2>/dev/null | jq -s '[.[] | select(.queue_name == "hold")] | length'; }
queued() { in_postfix postqueue -j 2>/dev/null | jq -s 'length'; }
mail_events() { jq -c 'select(.event == "mail")' "$T/events.jsonl"; }
count() { jq -c "select($1)" "$T/events.jsonl" 2>/dev/null | wc -l; }	# events matching
atleast() { [ "$(count "$1")" -ge "$2" ]; }
exactly() { [ "$(count "$1")" -eq "$2" ]; }

submit() { web_mail /usr/sbin/sendmail "$2" offer "$1"; }	# submit N SCRIPT: as PHP mail() sends them

# relay N: N messages from a relay client in mynetworks (the MX's namespace).
relay() {
	for i in $(seq "$1"); do
		in_mx swaks --server 192.0.2.1 --port 25 --helo relay.example \
		    --from "news@relay.example" --to "carol@remote.example" \
		    --header "Subject: relayed $i" --body "x" >>"$T/swaks.log" 2>&1 || return 1
	done
}

write_config "mta_users = postfix"
cat >>"$T/smtpguard.conf" <<EOF
[mail]
gate = yes
socket = $MAILQ/gate.sock
postfix_queue = $SPOOL
limit = 200/hour
state = $T/mail.state
EOF
cat >"$T/exceptions.conf" <<EOF
limit user:$WEB_USER 10/hour
limit client:192.0.2.25 3/hour
EOF

start_daemon || { fail "smtpguardd did not start" "$(tail -n 5 "$T/daemon.log")"; finish; }
wait_for "the gate's socket" test -S "$MAILQ/gate.sock"
check "the gate's socket is there for the MTA's group only" \
    sh -c "[ \"\$(stat -c '%a %U %G' '$MAILQ')\" = '750 root postfix' ] &&
	[ \"\$(stat -c '%a %G' '$MAILQ/gate.sock')\" = '660 postfix' ]"
gate_pid=$(gate_pid)
check "the gate runs unprivileged, in an empty root, without capabilities" \
    sh -c "[ -n '$gate_pid' ] && [ \"\$(readlink /proc/$gate_pid/root)\" != / ] &&
	grep -q '^CapEff:	0000000000000000' /proc/$gate_pid/status"

start_postfix accept || { fail "postfix did not start"; finish; }

# 1. A PHP script as the web user: 30 messages, limit 10/hour.
submit 30 contact.php || fail "sendmail as $WEB_USER"
wait_for_long atleast '.event == "mail"' 30
wait_for_long sh -c "[ \$(grep -c '^data ' '$T/mx.log') -ge 10 ]"
sleep 2	# anything more that would leave has had time to
check "exactly 10 of the web user's 30 messages reach the MX" [ "$(delivered)" -eq 10 ]
check "the other 20 sit in Postfix's hold queue" [ "$(held)" -eq 20 ]
in_postfix postqueue -j >"$T/postqueue.json" 2>&1
check "the held messages are the web user's" \
    sh -c "[ \$(jq -s '[.[] | select(.queue_name == \"hold\" and .sender == \"shop@web1.example\")] | length' '$T/postqueue.json') -eq 20 ]"
mail_events >"$T/mail.jsonl"
check "every message has one mail event naming uid $WEB_UID, the user and the script" \
    exactly ".event == \"mail\" and .uid == $WEB_UID and .user == \"$WEB_USER\" and .origin == \"user:$WEB_USER\" and .php_script == \"$WEB_UID:contact.php\" and .mta == \"postfix\" and .rcpt_count == 1 and .limit == 10" 30
check "10 pass and 20 are held" exactly '.event == "mail" and .action == "pass"' 10
check "20 are held" exactly '.event == "mail" and .action == "hold"' 20
check "the last one held counts the hour's 30" exactly '.event == "mail" and .action == "hold" and .hour_count == 30' 1
held_ids() { jq -r 'select(.event == "mail" and .action == "hold") | .queue_id' "$T/events.jsonl" | sort; }
check "the events' queue ids are the ones Postfix holds" \
    [ "$(held_ids)" = "$(jq -r 'select(.queue_name == "hold") | .queue_id' "$T/postqueue.json" | sort)" ]
check "one alert for the web user this hour, with the subject and recipients" \
    exactly ".event == \"alert\" and .origin == \"user:$WEB_USER\" and .subject == \"offer 11\" and .rcpt_to == [\"bob@remote.example\"]" 1

# 2. A relay client in mynetworks, from another namespace: limited by its address.
before=$(delivered)
relay 5 || fail "swaks relay" "$(tail -n 5 "$T/swaks.log")"
wait_for_long atleast '.event == "mail" and .origin == "client:192.0.2.25"' 5
wait_for_long sh -c "[ \$(grep -c '^data ' '$T/mx.log') -ge $((before + 3)) ]"
sleep 2
check "the relay client sends 3 of 5 (limit client:192.0.2.25 3/hour)" [ "$(delivered)" -eq $((before + 3)) ]
check "its other 2 are held" [ "$(held)" -eq 22 ]
check "its events name the client address, the HELO, and no uid" \
    exactly '.event == "mail" and .origin == "client:192.0.2.25" and .client_ip == "192.0.2.25" and .helo == "relay.example" and (has("uid") | not)' 5

# Mail that stays on this host is no egress: past its limit, the client still reaches a mailbox.
in_mx swaks --server 192.0.2.1 --port 25 --from news@relay.example --to postmaster@localhost \
    --header "Subject: for a local mailbox" --body x >>"$T/swaks.log" 2>&1
wait_for_long atleast '.event == "mail" and .subject == "for a local mailbox"' 1
check "a message for a local mailbox passes, uncounted, from a client over its limit" \
    exactly '.subject == "for a local mailbox" and .action == "pass" and .rule == "delivered-here" and (has("hour_count") | not)' 1
sg status --json >"$T/status.json"
# Its decision time is timed (one per message), not judged here: make bench judges it.
check "status shows the gate up, with what it passed and held and its decision times" \
    jq -e '.mail_gate.up == true and .mail_gate.passed == 14 and .mail_gate.held == 22 and
	.mail_gate.fail == "accept" and .mail_gate.decision_ns.messages == 36 and
	.mail_gate.decision_ns.p50 > 0' "$T/status.json"

# 3. A client on this host over SMTP: named by its socket's owner, not 127.0.0.1.
as_web swaks --server 127.0.0.1 --port 25 --from shop@web1.example --to dan@remote.example \
    --header "Subject: via localhost" --body x >>"$T/swaks.log" 2>&1
wait_for_long atleast '.event == "mail" and .subject == "via localhost"' 1
check "a web user's SMTP client on localhost is named by its uid, pid and exe" \
    exactly ".event == \"mail\" and .subject == \"via localhost\" and .origin == \"user:$WEB_USER\" and .uid == $WEB_UID and .pid > 0 and (.exe | test(\"perl\")) and .client_ip == \"127.0.0.1\" and .action == \"hold\"" 1

# 4. The counters survive a restart: no fresh hour.
stop_daemon
check "the counters are saved at exit" grep -q "^user:$WEB_USER " "$T/mail.state"
start_daemon || fail "smtpguardd restart"
before=$(delivered)
submit 1 after-restart.php
wait_for_long atleast ".event == \"mail\" and .php_script == \"$WEB_UID:after-restart.php\"" 1
check "after a restart the web user is still over its limit" \
    exactly ".php_script == \"$WEB_UID:after-restart.php\" and .action == \"hold\" and .hour_count == 32" 1
check "and is not alerted again this hour" exactly ".event == \"alert\" and .origin == \"user:$WEB_USER\"" 1

# A new limit applies on reload, without a restart of the gate.
sed -i "s/^limit user:$WEB_USER 10\/hour/limit user:$WEB_USER 100\/hour/" "$T/exceptions.conf"
sg reload >/dev/null || fail "reload"
submit 1 after-reload.php
wait_for_long atleast ".php_script == \"$WEB_UID:after-reload.php\"" 1
check "a raised limit applies at the next message after reload" \
    exactly ".php_script == \"$WEB_UID:after-reload.php\" and .action == \"pass\" and .limit == 100" 1
sed -i "s/^limit user:$WEB_USER 100\/hour/limit user:$WEB_USER 10\/hour/" "$T/exceptions.conf"
sg reload >/dev/null || fail "reload"

# 5. The gate killed: it is restarted, and meanwhile the MTA's default action applies.
gate_pid=$(gate_pid)
kill -9 "$gate_pid"
old=$gate_pid
for _ in $(seq 100); do
	gate_pid=$(gate_pid)
	[ -n "$gate_pid" ] && [ "$gate_pid" != "$old" ] && break
	sleep 0.05
done
check "the gate was restarted" [ -n "$gate_pid" ] && [ "$gate_pid" != "$old" ]
submit 1 after-gate-restart.php
wait_for_long atleast ".php_script == \"$WEB_UID:after-gate-restart.php\"" 1
check "a restarted gate decides again" \
    exactly ".php_script == \"$WEB_UID:after-gate-restart.php\" and .action == \"hold\"" 1

# smtpguardd killed outright: its gate dies with it, nobody answers on the socket.
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
wait_for "the gate gone with its parent" sh -c "! kill -0 $gate_pid"
before=$(delivered)
submit 1 gate-down.php
wait_for_long sh -c "[ \$(grep -c '^data ' '$T/mx.log') -ge $((before + 1)) ]"
check "with the gate down and fail = accept, mail still flows" [ "$(delivered)" -eq $((before + 1)) ]

stop_postfix_gone
start_postfix tempfail || fail "postfix restart"
before=$(delivered)
in_mx swaks --server 192.0.2.1 --port 25 --from news@relay.example --to carol@remote.example \
    --header "Subject: gate down" --body x >"$T/swaks-down.log" 2>&1
check "with the gate down and fail = tempfail, a client is told to retry (451)" \
    grep -q '<\*\* *4[0-9][0-9]' "$T/swaks-down.log"
sleep 1
check "and nothing left" [ "$(delivered)" -eq "$before" ]

echo "--- status (mail gate):"
jq -c .mail_gate "$T/status.json"
echo "--- mail events:"
mail_events | head -n 3
mail_events | sed -n '29,36p'
echo "--- alerts:"
jq -c 'select(.event == "alert")' "$T/events.jsonl"
echo "--- postqueue -j (hold queue, first 3):"
jq -c 'select(.queue_name == "hold")' "$T/postqueue.json" | head -n 3

if [ "$FAILS" -gt 0 ]; then
	echo "--- daemon log:"
	tail -n 20 "$T/daemon.log"
	echo "--- swaks with the gate down:"
	cat "$T/swaks-down.log"
	echo "--- postfix log:"
	grep -i -E 'milter|warning|error|fatal' "$T/postfix.log" | tail -n 20
fi
stop_postfix_gone
finish
