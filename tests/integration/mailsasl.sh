#!/bin/sh
# A stolen mailbox password, through the mail gate: SMTP AUTH (Cyrus SASL,
# a sasldb of this test's own) by one account from several addresses is
# counted and held as one origin, sasl:LOGIN, whatever address it comes
# from; beside it a PHP script of the web user hits its own limit, and
# `held` names both. The test's Postfix (mailcli.sh's shape: /etc/postfix
# is this test's folder in a private mount namespace, the queue under $T)
# runs its smtpd unchrooted (postfix_services), so its SASL config and the
# sasldb are plain paths under $T: Debian's smtpd reads smtpd.conf from
# /etc/postfix/sasl (it did not follow cyrus_sasl_config_path here), which
# in Postfix's mount namespace is $PF/sasl. A chrooted smtpd, as Debian's
# default master.cf has it, would need the sasldb inside /var/spool/postfix.
# The SASL clients are a namespace of their own on documentation addresses
# outside mynetworks, joined to the host by a veth: without AUTH they may
# not relay. Never the system's Postfix or sasldb; every process is
# stopped by PID.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"
. "$ROOT/scripts/lib/postfix.sh"

WEB_USER=www-data	# Debian's web server user, sending through PHP mail()
PF=$T/pf-etc		# the instance's config directory (--postfix-config)
SPOOL=$T/spool		# its queue_directory
GATE_DIR=$SPOOL/smtpguard	# the gate's socket, unix:smtpguard/gate.sock to Postfix
SASL=$PF/sasl		# /etc/postfix/sasl to Postfix: smtpd.conf and the sasldb
LOGIN=info@shop.example	# the mailbox whose password was stolen
PASSWORD=correct-horse	# ... and that password
CLIENT_NS=sg-cl-$$	# the namespace the stolen password is used from
CLIENTS="192.0.2.10 192.0.2.11 192.0.2.12"	# its addresses, not in mynetworks
SCRIPT=wp-content/plugins/contact/mailer.php	# the PHP script that spams

command -v postfix >/dev/null || { fail "mailsasl: postfix not installed (scripts/deps check installs it)"; finish; }
command -v saslpasswd2 >/dev/null || { fail "mailsasl: saslpasswd2 missing (sasl2-bin: scripts/deps check installs it)"; finish; }
WEB_UID=$(id -u "$WEB_USER") || { fail "mailsasl: no $WEB_USER user"; finish; }

setup_net
start_mx 25
# The clients' namespace: /32 routes both ways, so the host's 192.0.2.0/24
# towards the MX stays as it is and 192.0.2.1 is reached over this veth.
netns_add "$CLIENT_NS"
ip link add sg-c$$ netns "$HOST_NS" type veth peer name sg-d$$ netns "$CLIENT_NS" ||
    { fail "mailsasl: the clients' veth"; finish; }
ip -n "$HOST_NS" link set sg-c$$ up
ip -n "$CLIENT_NS" link set sg-d$$ up
for a in $CLIENTS; do
	ip -n "$CLIENT_NS" addr add "$a/32" dev sg-d$$
	ip -n "$HOST_NS" route add "$a/32" dev sg-c$$
done
ip -n "$CLIENT_NS" route add 192.0.2.1/32 dev sg-d$$

mkdir -p "$PF" "$SPOOL" "$T/pf-data"
cp -a /etc/postfix/. "$PF/"
mkdir -p "$SASL"
chown postfix:postfix "$T/pf-data"
printf '%s\n' 'pwcheck_method: auxprop' 'auxprop_plugin: sasldb' 'mech_list: PLAIN LOGIN' \
    "sasldb_path: $SASL/sasldb2" >"$SASL/smtpd.conf"
for u in info news; do	# news@: a newsletter account, for the flood limit
	printf '%s' "$PASSWORD" | saslpasswd2 -p -c -f "$SASL/sasldb2" -u shop.example "$u" ||
	    { fail "mailsasl: saslpasswd2 makes the test's sasldb"; finish; }
done
chown -R root:postfix "$SASL"
chmod 0750 "$SASL"
chmod 0640 "$SASL/sasldb2" "$SASL/smtpd.conf"
{
	printf '%s\n' "queue_directory = $SPOOL" "data_directory = $T/pf-data"
	postfix_main_cf 'mynetworks = 127.0.0.0/8' \
	    'smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject'
	printf '%s\n' 'smtpd_sasl_auth_enable = yes' 'smtpd_sasl_type = cyrus' \
	    'smtpd_sasl_path = smtpd' \
	    'smtpd_milters = unix:smtpguard/gate.sock' 'non_smtpd_milters = unix:smtpguard/gate.sock' \
	    'milter_default_action = accept'
} >"$PF/main.cf"
postfix_services "$PF/master.cf"
postfix_instance "$PF"
start_postfix() { postfix_run "$T/postfix.sh" 192.0.2.1:25; }
as_web() { postfix_as "$WEB_UID" "$@"; }	# the web user, where /etc/postfix is the test's
submit() { web_mail /usr/sbin/sendmail "$SCRIPT" "cheap pills" "$1"; }	# submit N: the PHP script's mail
# auth_send FROM_ADDR N [LOGIN]: N messages over SMTP AUTH (as $LOGIN) from that address.
auth_send() {
	for i in $(seq "$2"); do
		ip netns exec "$CLIENT_NS" swaks --server 192.0.2.1 --port 25 --local-interface "$1" \
		    --helo "pc-$1.example" --auth PLAIN --auth-user "${3:-$LOGIN}" --auth-password "$PASSWORD" \
		    --from "${3:-$LOGIN}" --to "victim$i@remote.example" --header "Subject: invoice $1 $i" \
		    --body x >>"$T/swaks.log" 2>&1 || return 1
	done
}
held_n() { in_host postqueue -c "$PF" -j >"$T/pq.json" && jq -s '[.[] | select(.queue_name == "hold")] | length' "$T/pq.json"; }
count() { jq -c "select($1)" "$T/events.jsonl" 2>/dev/null | wc -l; }
atleast() { [ "$(count "$1")" -ge "$2" ]; }
exactly() { [ "$(count "$1")" -eq "$2" ]; }
sgpf() { sg "$@" --postfix-config "$PF"; }

FLOOD_RATE=5	# [log] rate: mail events per origin and action per window
LOG_LINES="rate = $FLOOD_RATE
window = 5" write_config "mta_users = postfix"
cat >>"$T/smtpguard.conf" <<EOF
[mail]
gate = yes
socket = $GATE_DIR/gate.sock
postfix_queue = $SPOOL
limit = 200/hour
state = $T/mail.state
EOF
cat >"$T/exceptions.conf" <<EOF
limit sasl:$LOGIN 4/hour
limit user:$WEB_USER 3/hour
limit sasl:news@shop.example 100/hour
EOF

start_daemon || { fail "mailsasl: smtpguardd starts" "$(tail -n 5 "$T/daemon.log")"; finish; }
wait_for "the gate's socket" test -S "$GATE_DIR/gate.sock"
start_postfix || { fail "mailsasl: postfix starts"; finish; }

# 0. The clients are no relay clients: without AUTH, Postfix refuses them.
ip netns exec "$CLIENT_NS" swaks --server 192.0.2.1 --port 25 --local-interface 192.0.2.10 \
    --from "$LOGIN" --to nobody@remote.example --body x >"$T/noauth.log" 2>&1
check "without AUTH the clients' addresses may not relay (554 5.7.1 access denied)" \
    sh -c "grep -q '<\\*\\* *554 5\\.7\\.1 .*Access denied' '$T/noauth.log' || { grep '<' '$T/noauth.log'; false; }"
ip netns exec "$CLIENT_NS" swaks --server 192.0.2.1 --port 25 --local-interface 192.0.2.10 \
    --auth PLAIN --auth-user "$LOGIN" --auth-password wrong --from "$LOGIN" \
    --to nobody@remote.example --body x >"$T/badauth.log" 2>&1
check "a wrong password is refused by the sasldb (535)" grep -q '<\*\* *535' "$T/badauth.log"

# 1. The stolen password, from three addresses, three messages each: limit 4/hour.
for a in $CLIENTS; do
	auth_send "$a" 3 || { fail "mailsasl: swaks AUTH PLAIN from $a" "$(tail -n 5 "$T/swaks.log")"; break; }
done
wait_for_long atleast ".event == \"mail\" and .origin == \"sasl:$LOGIN\"" 9
wait_for_long sh -c "[ \$(grep -c '^data ' '$T/mx.log') -ge 4 ]"
sleep 2	# anything more that would leave has had time to
check "4 of the account's 9 messages reach the MX, from whichever address" [ "$(delivered)" -eq 4 ]
check "the other 5 sit in Postfix's hold queue" [ "$(held_n)" -eq 5 ]
check "every message's event names the SASL user as origin, with no uid" \
    exactly ".event == \"mail\" and .origin == \"sasl:$LOGIN\" and .sasl_user == \"$LOGIN\" and .domain == \"domain:shop.example\" and .limit == 4 and .mta == \"postfix\" and (has(\"uid\") | not)" 9
check "the events come from three client addresses" \
    [ "$(jq -r "select(.event == \"mail\" and .origin == \"sasl:$LOGIN\") | .client_ip" "$T/events.jsonl" | sort -u | tr '\n' ' ')" = "$CLIENTS " ]
check "the first 4 pass and the rest are held, across addresses" \
    sh -c "[ \"\$(jq -r 'select(.event == \"mail\" and .origin == \"sasl:$LOGIN\") | .action' '$T/events.jsonl' | tr '\n' ' ')\" = 'pass pass pass pass hold hold hold hold hold ' ]"
check "the hour's count runs on across the addresses (the last held is the 9th)" \
    exactly ".event == \"mail\" and .origin == \"sasl:$LOGIN\" and .action == \"hold\" and .hour_count == 9 and .client_ip == \"192.0.2.12\"" 1
check "one alert for the account, naming its origin" \
    exactly ".event == \"alert\" and .origin == \"sasl:$LOGIN\" and .sasl_user == \"$LOGIN\"" 1

# 2. Beside it, the web user's PHP script: 5 messages, limit 3/hour.
submit 5 || fail "mailsasl: sendmail as $WEB_USER"
wait_for_long atleast ".event == \"mail\" and .origin == \"user:$WEB_USER\"" 5
wait_for_long sh -c "[ \$(grep -c '^data ' '$T/mx.log') -ge 7 ]"
sleep 1
check "3 of the script's 5 leave, 2 more are held" sh -c "[ $(delivered) -eq 7 ] && [ $(held_n) -eq 7 ]"
check "the script's events name uid $WEB_UID and the script, not the SASL account" \
    exactly ".event == \"mail\" and .origin == \"user:$WEB_USER\" and .uid == $WEB_UID and .php_script == \"$WEB_UID:$SCRIPT\" and (has(\"sasl_user\") | not)" 5

sgpf held >"$T/held.txt" 2>&1
check "held names both origins with their held mail" \
    sh -c "grep -q '^7 held messages in Postfix' '$T/held.txt' && grep -qx 'sasl:$LOGIN: 5 held' '$T/held.txt' &&
	grep -qx 'user:$WEB_USER: 2 held' '$T/held.txt'"

# 3. status: the gate up, the MTA that asks it, what it passed and held today.
gate_today() {	# gate_today FILE: status --json's mail gate holds 7 passed, 7 held today
	jq -e '.mail_gate | .up == true and .mta == "postfix" and .passed == 7 and .held == 7 and
	    .deferred == 0 and .rejected == 0 and .wired == null and .unguarded == false' "$1" >/dev/null &&
	[ "$(date -d "@$(jq .mail_gate.day_start "$1")" +%H:%M:%S)" = 00:00:00 ] &&
	[ "$(jq .mail_gate.day_start "$1")" -le "$(date +%s)" ] &&
	[ $(($(date +%s) - $(jq .mail_gate.day_start "$1"))) -lt 90000 ]
}
sg status --json >"$T/status.json"
check "status --json: the gate up, MTA postfix, 7 passed and 7 held today (since local midnight)" \
    gate_today "$T/status.json"
sg status >"$T/status.txt"
check "status says the same in words" sh -c "grep -q '^  mail gate:   up, MTA: postfix (asks the gate' '$T/status.txt' &&
	grep -q '^  mail:        7 passed, 7 held, 0 deferred, 0 rejected today' '$T/status.txt'"
stop_daemon
check "the day's tally is saved with the counters" grep -q '^@today [0-9]* 7 7 0 0$' "$T/mail.state"
start_daemon || fail "mailsasl: smtpguardd restarts"
auth_send 192.0.2.11 1 || fail "mailsasl: swaks after the restart"
wait_for_long atleast ".event == \"mail\" and .origin == \"sasl:$LOGIN\"" 10
sg status --json >"$T/status2.json"
check "after a restart today's tally goes on (7 passed, 8 held): no fresh day" \
    jq -e '.mail_gate.passed == 7 and .mail_gate.held == 8 and .mail_gate.mta == "postfix"' "$T/status2.json"

# 4. A flood of mail from one origin is flood-limited as attempts are: $FLOOD_RATE
# events per window written in full, then one summary with the exact rest.
auth_send 192.0.2.10 12 news@shop.example || fail "mailsasl: swaks as news@"
wait_for_long sh -c "[ \$(grep -c '^data ' '$T/mx.log') -ge 19 ]"
news='.origin == "sasl:news@shop.example"'
suppressed() { jq -s "[.[] | select(.event == \"summary\" and $news)] | map(.suppressed) | add // 0" "$T/events.jsonl"; }
flood_ok() {	# fewer than 12 written, and the summaries count exactly the rest
	_w=$(count ".event == \"mail\" and $news")
	[ "$_w" -lt 12 ] && [ $((_w + $(suppressed))) -eq 12 ] &&
	    atleast ".event == \"summary\" and $news and .action == \"pass\" and .window == 5 and (has(\"rcpt_count\") | not)" 1 ||
	    { echo "$_w written, $(suppressed) in summaries"; false; }
}
wait_for_long flood_ok
check "12 mails of one origin: $FLOOD_RATE events a window, a summary counts the rest" flood_ok
check "all 12 still reached the MX (the flood limit is the log's, not the mail's)" [ "$(delivered)" -eq 19 ]
check "held mail is never flood-limited: every held message has its event" \
    exactly ".event == \"mail\" and .action == \"hold\"" "$(held_n)"

echo "--- mail events and alerts (JSON lines):"
jq -c 'select(.event == "mail" or .event == "alert" or .event == "summary")' "$T/events.jsonl"
echo "--- smtpguard log:"
sg log -n 100 2>&1
echo "--- smtpguard held (before the restart):"
cat "$T/held.txt"
echo "--- smtpguard status (mail gate lines, before the restart):"
grep -i 'mail' "$T/status.txt"
echo "--- smtpguard status --json | jq .mail_gate (after the restart):"
jq -c .mail_gate "$T/status2.json"

if [ "$FAILS" -gt 0 ]; then
	echo "--- daemon log:"
	tail -n 20 "$T/daemon.log"
	echo "--- swaks:"
	tail -n 30 "$T/swaks.log"
	echo "--- postfix log:"
	grep -i -E 'sasl|milter|warning|error|fatal|hold' "$T/postfix.log" | tail -n 20
fi
finish
