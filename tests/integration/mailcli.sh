#!/bin/sh
# The admin's mail commands against a real Postfix of this test's own:
# mail enable/disable edit its main.cf with postconf and leave it byte for
# byte as it was (an OpenDKIM-like milter kept first, and still seeing every
# SMTP message: a stand-in milter logs them), limit/unlimit change
# the gate's limits live and in exceptions.conf, held lists what the gate
# held by origin from Postfix's own queue, release sends it on to the MX and
# purge deletes it, and status says when mail would flow unguarded.
# Postfix runs in a private mount namespace where /etc/postfix is this
# test's folder (its sendmail and postdrop read it there); its main.cf names
# the queue directory by its real path under $T, so smtpguard reaches the
# same instance from outside with --postfix-config. Never the system's
# Postfix, nothing installed; every process is stopped by PID.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"
. "$ROOT/scripts/lib/postfix.sh"

WEB_USER=www-data	# Debian's web server user, sending through PHP mail()
PF=$T/pf-etc		# the instance's config directory (--postfix-config)
SPOOL=$T/spool		# its queue_directory
GATE_DIR=$SPOOL/smtpguard	# the gate's socket, unix:smtpguard/gate.sock to Postfix
DKIM=inet:127.0.0.1:8891	# an existing milter (OpenDKIM's usual socket)

command -v postfix >/dev/null || { fail "mailcli: postfix not installed (scripts/deps check installs it, unless another MTA is installed)"; finish; }
WEB_UID=$(id -u "$WEB_USER") || { fail "mailcli: no $WEB_USER user"; finish; }

setup_net
start_mx 25
mkdir -p "$PF" "$SPOOL" "$T/pf-data" "$T/state"
cp -a /etc/postfix/. "$PF/"
chown postfix:postfix "$T/pf-data"
{
	echo "# main.cf of the test's Postfix instance"
	printf '%s\n' "queue_directory = $SPOOL" "data_directory = $T/pf-data"
	postfix_main_cf
	echo "smtpd_milters = $DKIM"
} >"$PF/main.cf"
postfix_services "$PF/master.cf"
cp "$PF/main.cf" "$T/main.cf.before"

postfix_instance "$PF"
start_postfix() { postfix_run "$T/postfix.sh" 192.0.2.1:25; }
as_web() { postfix_as "$WEB_UID" "$@"; }	# the web user, where /etc/postfix is the test's
submit() { web_mail /usr/sbin/sendmail "$2" offer "$1"; }	# submit N SCRIPT: as PHP mail() sends them
relay() {	# relay N: N messages from a relay client in mynetworks (the MX's namespace)
	for i in $(seq "$1"); do
		in_mx swaks --server 192.0.2.1 --port 25 --helo relay.example --from news@relay.example \
		    --to carol@remote.example --header "Subject: relayed $i" --body x >>"$T/swaks.log" 2>&1 ||
		    return 1
	done
}
# Postfix's commands read inet_interfaces: they run where its addresses are.
pq() { in_host postqueue -c "$PF" -j; }
held_n() { pq >"$T/pq.json" && jq -s '[.[] | select(.queue_name == "hold")] | length' "$T/pq.json"; }
count() { jq -c "select($1)" "$T/events.jsonl" 2>/dev/null | wc -l; }
atleast() { [ "$(count "$1")" -ge "$2" ]; }
sgpf() { sg "$@" --postfix-config "$PF"; }
SGC="ip netns exec $HOST_NS $BUILD/smtpguard -c $T/smtpguard.conf"	# for sh -c
rc_is() {	# rc_is N COMMAND...: the command exits N (its stderr kept in $T/err)
	_want=$1
	shift
	"$@" >"$T/out" 2>"$T/err"
	_rc=$?
	[ "$_rc" -eq "$_want" ] || { echo "exit $_rc, not $_want: $(cat "$T/out" "$T/err")"; return 1; }
}

write_config "mta_users = postfix"
cat >>"$T/smtpguard.conf" <<EOF
[mail]
gate = yes
socket = $GATE_DIR/gate.sock
postfix_queue = $SPOOL
limit = 200/hour
state = $T/state/mail.state
EOF
: >"$T/exceptions.conf"

start_daemon || { fail "mailcli: smtpguardd starts" "$(tail -n 5 "$T/daemon.log")"; finish; }
# The milter the admin already had (OpenDKIM's socket): a stand-in that logs each message.
ip netns exec "$HOST_NS" "$BUILD/tools/sgmilter" "inet:${DKIM##*:}@127.0.0.1" "$T/milter.log" \
    >"$T/milter.out" 2>&1 &
PIDS="$PIDS $!"
wait_for "the existing milter listening" grep -q ready "$T/milter.out" ||
    { fail "mailcli: the stand-in milter starts" "$(cat "$T/milter.out")"; finish; }
start_postfix || { fail "mailcli: postfix starts"; finish; }

# 1. mail enable: the gate after the existing milter, with postconf.
sgpf mail enable >"$T/enable.txt" 2>&1
cat "$T/enable.txt"
check "mail enable adds the gate to the test's Postfix" grep -q "^mail gate added to $PF/main.cf" "$T/enable.txt"
pf_get() { postconf -c "$PF" -h "$1"; }
check "smtpd_milters keeps the existing milter first, then the gate" \
    [ "$(pf_get smtpd_milters)" = "$DKIM, unix:smtpguard/gate.sock" ]
check "non_smtpd_milters (sendmail, PHP mail()) asks the gate" \
    [ "$(pf_get non_smtpd_milters)" = "unix:smtpguard/gate.sock" ]
check "milter_default_action follows [mail] fail = accept" [ "$(pf_get milter_default_action)" = accept ]
check "mail enable twice changes nothing" sh -c "cp '$PF/main.cf' '$T/m1' &&
	$SGC mail enable --postfix-config '$PF' | grep -q 'already' &&
	cmp '$PF/main.cf' '$T/m1'"
check "the running Postfix was reloaded" sh -c "grep -q 'reload: done' '$T/enable.txt' &&
	grep -q 'reload -- version' '$T/postfix.log'"

# 2. limit / unlimit: live, persistent, malformed ones refused.
check "limit user:$WEB_USER 10/hour is accepted" sg limit "user:$WEB_USER" 10/hour
check "limit client:192.0.2.25 2/hour is accepted" sg limit client:192.0.2.25 2/hour --comment "relay box"
check "the limits are in exceptions.conf" sh -c "grep -qx 'limit user:$WEB_USER 10/hour' '$T/exceptions.conf' &&
	grep -qx 'limit client:192.0.2.25 2/hour comment=\"relay box\"' '$T/exceptions.conf'"
check "exceptions lists the limits" sh -c "$SGC exceptions |
	grep -Eq '^user:$WEB_USER +10/hour'"
check "exceptions --json lists them too" sh -c "$SGC exceptions --json |
	jq -e '.limits | map(.origin) == [\"user:$WEB_USER\", \"client:192.0.2.25\"] and .[0].per_hour == 10' >/dev/null"
check "a limit on no known kind of origin is a usage error (exit 2)" rc_is 2 sg limit nobody:x 5/hour
check "... and says what an origin is" grep -q 'sasl:LOGIN, user:NAME, domain:DOMAIN, client:ADDR' "$T/err"
check "a malformed limit is a usage error (exit 2)" rc_is 2 sg limit user:alice ten/hour
check "a second limit for one origin is refused (exit 1)" rc_is 1 sg limit "user:$WEB_USER" 20/hour
check "... saying why" grep -q 'already has a limit' "$T/err"
check "limit 0/hour (hold everything) for a domain" sg limit domain:spam.example 0/hour
check "unlimit finds the origin whatever its case" sg unlimit DOMAIN:Spam.Example
check "unlimit leaves the file without it" sh -c "! grep -q spam.example '$T/exceptions.conf'"
check "unlimit of an origin with no limit is refused (exit 1)" rc_is 1 sg unlimit user:nobody
check "the limit changes are logged as daemon events" \
    atleast '.event == "daemon" and .msg == "limited: user:'$WEB_USER' 10/hour"' 1

# 3. The gate holds past the live limit: 30 local submissions, 10 pass.
submit 30 contact.php || fail "mailcli: sendmail as $WEB_USER"
wait_for_long atleast '.event == "mail" and .origin == "user:'$WEB_USER'"' 30
wait_for_long sh -c "[ \$(grep -c '^data ' '$T/mx.log') -ge 10 ]"
relay 4 || fail "mailcli: swaks relay" "$(tail -n 5 "$T/swaks.log")"
wait_for_long atleast '.event == "mail" and .origin == "client:192.0.2.25"' 4
sleep 2	# anything more that would leave has had time to
check "10 of the web user's 30 and 2 of the relay's 4 reach the MX" [ "$(delivered)" -eq 12 ]
check "22 sit in Postfix's hold queue" [ "$(held_n)" -eq 22 ]
relay_ids() { jq -r 'select(.event == "mail" and .origin == "client:192.0.2.25") | .queue_id' "$T/events.jsonl" | sort; }
milter_ids() { sed -n 's/^eom \([0-9A-F]*\) relayed [0-9]*$/\1/p' "$T/milter.log" | sort; }
check "the existing milter still sees each SMTP message beside the gate (the same 4 queue ids)" \
    sh -c "[ -n \"\$1\" ] && [ \"\$1\" = \"\$2\" ] && [ \$(printf '%s\n' \"\$1\" | wc -l) -eq 4 ] ||
	{ echo \"gate: \$1 / milter: \$2\"; false; }" - "$(relay_ids)" "$(milter_ids)"

sgpf held >"$T/held.txt" 2>&1
echo "--- smtpguard held:"
cat "$T/held.txt"
check "held counts them all" grep -q '^22 held messages in Postfix' "$T/held.txt"
check "held groups them by origin" sh -c "grep -qx 'user:$WEB_USER: 20 held' '$T/held.txt' &&
	grep -qx 'client:192.0.2.25: 2 held' '$T/held.txt'"
held_ids() { jq -r 'select(.event == "mail" and .action == "hold") | .queue_id' "$T/events.jsonl" | sort; }
listed_ids() { sed -n 's/^  \([0-9A-Za-z]\{6,\}\) .*/\1/p' "$T/held.txt" | sort; }
check "held lists exactly the queue ids the gate held" [ "$(listed_ids)" = "$(held_ids)" ]
one_row() {	# the row of the 11th message: its queue id, sender, 1 recipient, its subject
	qid=$(jq -r 'select(.event == "mail" and .subject == "offer 11") | .queue_id' "$T/events.jsonl")
	grep -Eq "^  $qid +[0-9-]+ [0-9:]+ +1  shop@web1.example +offer 11\$" "$T/held.txt"
}
check "a held message's row: queue id, arrival, 1 recipient, from, subject" one_row
sgpf held --json >"$T/held.json"
check "held --json: 22 messages with origin, sender, recipient count and subject" \
    jq -e 'length == 22 and (map(select(.origin == "user:'$WEB_USER'" and .sender == "shop@web1.example" and .rcpt_count == 1 and (.subject | startswith("offer ")))) | length) == 20' "$T/held.json"
check "held ORIGIN lists only that origin" sh -c "$SGC held client:192.0.2.25 --postfix-config '$PF' |
	grep -q '^2 held messages' && ! $SGC held client:192.0.2.25 --postfix-config '$PF' | grep -q 'offer'"
check "held of an origin with nothing held says so" sh -c "$SGC held sasl:nobody@x.example --postfix-config '$PF' | grep -qx 'no held mail of sasl:nobody@x.example'"
# Without the event log, the same messages are of unknown origin (never invented).
sed "s|^file = .*|file = $T/none.jsonl|" "$T/smtpguard.conf" >"$T/nolog.conf"
check "held mail with no mail event is listed as origin unknown" sh -c "ip netns exec $HOST_NS $BUILD/smtpguard -c $T/nolog.conf held --postfix-config '$PF' |
	grep -q '^origin unknown: 22 held'"
check "held --bogus is a usage error (exit 2)" rc_is 2 sgpf held --bogus
check "release of a malformed queue id is a usage error (exit 2)" rc_is 2 sgpf release 'AB;rm'
check "release of a queue id that is not held is refused (exit 1)" rc_is 1 sgpf release ABCDEF123

# 4. release and purge, by queue id and by origin.
qid=$(jq -r 'select(.event == "mail" and .subject == "offer 11") | .queue_id' "$T/events.jsonl")
check "release QUEUE_ID releases one" sh -c "$SGC release $qid --postfix-config '$PF' | grep -qx 'released 1 message of $qid (delivery scheduled)'"
wait_for_long sh -c "[ \$(grep -c '^data ' '$T/mx.log') -ge 13 ]"
check "the released message reaches the MX" [ "$(delivered)" -eq 13 ]
check "release is logged by smtpguardd" grep -q "mail: released 1 held message of $qid (postsuper -H)" "$T/events.jsonl"
qid2=$(jq -r 'select(.event == "mail" and .subject == "offer 12") | .queue_id' "$T/events.jsonl")
check "purge QUEUE_ID deletes one" sh -c "$SGC purge $qid2 --postfix-config '$PF' | grep -qx 'purged 1 message of $qid2'"
check "... gone from the queue" sh -c "ip netns exec $HOST_NS postqueue -c '$PF' -j >'$T/pq2.json' && ! grep -q '\"$qid2\"' '$T/pq2.json'"
check "release ORIGIN releases the rest of the web user's" \
    sh -c "$SGC release user:$WEB_USER --postfix-config '$PF' | grep -qx 'released 18 messages of user:$WEB_USER (delivery scheduled)'"
wait_for_long sh -c "[ \$(grep -c '^data ' '$T/mx.log') -ge 31 ]"
check "the 18 released reach the MX" [ "$(delivered)" -eq 31 ]
check "status shows the gate up, the MTA it is wired into and what it did" \
    sh -c "$SGC status >'$T/status.txt'; grep -q '^  mail gate:   up, MTA: postfix $PF (milter_default_action = accept)' '$T/status.txt' &&
	grep -q '^  mail:        12 passed, 22 held' '$T/status.txt'"
grep 'mail' "$T/status.txt"

# smtpguardd stopped: the gate is down, Postfix passes mail unguarded, and status says so.
stop_daemon
sg status >"$T/status-down.txt" 2>&1
cat "$T/status-down.txt"
check "status says LOUDLY that mail flows unguarded while the gate is down" \
    grep -q 'MAIL IS FLOWING UNGUARDED' "$T/status-down.txt"
check "purge ORIGIN without the daemon acts directly and says so" \
    sh -c "$SGC purge client:192.0.2.25 --postfix-config '$PF' >'$T/purge.txt';
	grep -qx 'purged 2 messages of client:192.0.2.25' '$T/purge.txt' && grep -q 'smtpguardd is not running: done directly' '$T/purge.txt'"
check "nothing is held any more" [ "$(held_n)" -eq 0 ]
check "the purged never reached the MX" [ "$(delivered)" -eq 31 ]
check "release with nothing held is refused (exit 1)" rc_is 1 sgpf release user:$WEB_USER

# 5. mail disable: main.cf byte for byte as it was.
check "mail disable" sgpf mail disable
check "main.cf is byte-identical to before mail enable" cmp "$PF/main.cf" "$T/main.cf.before"
check "mail disable twice has nothing to undo" sh -c "$SGC mail disable --postfix-config '$PF' | grep -q 'nothing to undo'"
sg status >"$T/status-unwired.txt" 2>&1
check "once unwired, status no longer warns of unguarded mail" \
    sh -c "grep -qi 'not running' '$T/status-unwired.txt' && ! grep -q 'UNGUARDED' '$T/status-unwired.txt'"

# ... and if the admin edited main.cf in between: only our entries are undone.
check "mail enable again" sgpf mail enable
postconf -c "$PF" -e "myorigin = web1.example"
sgpf mail disable >"$T/disable.txt" 2>&1
cat "$T/disable.txt"
check "mail disable after an edit removes only the gate's entries, and says so" \
    grep -q "^$PF/main.cf changed since mail enable: removed only the gate" "$T/disable.txt"
check "the existing milter is back alone" [ "$(pf_get smtpd_milters)" = "$DKIM" ]
check "non_smtpd_milters and milter_default_action are unset again" \
    sh -c "[ -z \"\$(postconf -c '$PF' -n non_smtpd_milters milter_default_action)\" ]"
check "the admin's edit is kept" [ "$(pf_get myorigin)" = web1.example ]

# enable --mail: the fence first, then the gate; undone by disable and mail disable.
at_exit 'p=$(cat "$T/smtpguardd.pid" 2>/dev/null) && kill -9 "$p" 2>/dev/null'
cp "$PF/main.cf" "$T/main.cf.before2"
# nsenter, as start_daemon does: the daemon it starts sees the host's /sys.
nsenter --net="/run/netns/$HOST_NS" "$BUILD/smtpguard" -c "$T/smtpguard.conf" enable --mail \
    --postfix-config "$PF" >"$T/enable-mail.txt" 2>&1
cat "$T/enable-mail.txt"
check "enable --mail starts the fence, passes the self-check, then wires the gate" \
    sh -c "grep -q '^smtpguard enabled' '$T/enable-mail.txt' && grep -q 'the fence holds' '$T/enable-mail.txt' &&
	grep -q '^mail gate added to $PF/main.cf' '$T/enable-mail.txt'"
check "... and the gate is in main.cf" [ "$(pf_get non_smtpd_milters)" = "unix:smtpguard/gate.sock" ]
check "enable --postfix-config without --mail is a usage error (exit 2)" rc_is 2 sg enable --postfix-config "$PF"
check "disable stops the daemon" sg disable
check "mail disable after enable --mail restores main.cf byte for byte" \
    sh -c "$SGC mail disable --postfix-config '$PF' >/dev/null && cmp '$PF/main.cf' '$T/main.cf.before2'"

# fail = tempfail: with the gate down, status says the MTA defers (and does not cry "unguarded").
sed 's/^\[mail\]$/[mail]\nfail = tempfail/' "$T/smtpguard.conf" >"$T/tempfail.conf"
SGT="ip netns exec $HOST_NS $BUILD/smtpguard -c $T/tempfail.conf"
cp "$PF/main.cf" "$T/main.cf.before3"
check "mail enable with fail = tempfail sets milter_default_action = tempfail" \
    sh -c "$SGT mail enable --postfix-config '$PF' >/dev/null && [ \"\$(postconf -c '$PF' -h milter_default_action)\" = tempfail ]"
$SGT status >"$T/status-tempfail.txt" 2>&1
check "with the gate down and fail = tempfail, status says the MTA defers mail" \
    sh -c "grep -q '^  mail gate:   DOWN (smtpguardd is not running), MTA: postfix $PF (milter_default_action = tempfail)' '$T/status-tempfail.txt' &&
	grep -q 'the MTA defers mail until it is back' '$T/status-tempfail.txt' && ! grep -q UNGUARDED '$T/status-tempfail.txt'"
check "... and mail disable restores main.cf byte for byte again" \
    sh -c "$SGT mail disable --postfix-config '$PF' >/dev/null && cmp '$PF/main.cf' '$T/main.cf.before3'"

check "mail enable for Exim while the gate speaks milter refuses clearly (exit 1)" rc_is 1 sg mail enable --exim-config /etc/exim4/exim4.conf.template
check "... saying to set [mail] mta = exim" grep -q 'mta = exim' "$T/err"
check "mail with no verb is a usage error (exit 2)" rc_is 2 sg mail

if [ "$FAILS" -gt 0 ]; then
	echo "--- daemon log:"
	tail -n 20 "$T/daemon.log"
	echo "--- postfix log:"
	grep -i -E 'milter|warning|error|fatal|hold' "$T/postfix.log" | tail -n 20
fi
finish
