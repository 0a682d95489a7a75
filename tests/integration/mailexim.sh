#!/bin/sh
# The mail gate with a real Exim, never installed: Debian's exim4 packages
# are fetched with apt-get download (kept in build/exim-debs) and unpacked
# with dpkg-deb -x into this test's folder. Exim runs in the host
# namespace in a private mount namespace whose /etc is an overlay of the
# host's (so Debian-exim exists there, and /etc/exim4/exim4.conf is this
# test's config, which `smtpguard mail enable --exim-config` wires), with
# its spool in the test's folder; it relays everything to the stand-in MX
# on 192.0.2.25. smtpguardd runs with [mail] mta = exim: its gate child
# answers the ACL's ${readsocket}. Every process is stopped by PID.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"

WEB_USER=www-data	# Debian's web server user (uid 33), sending through PHP mail()
DEBS=$ROOT/build/exim-debs	# the downloaded packages, re-used when present
X=$T/exim			# the unpacked packages
EXIM=$X/usr/sbin/exim4
CONF=/etc/exim4/exim4.conf	# inside Exim's mount namespace; $T/etc-up/exim4/exim4.conf outside
CONF_OUT=$T/etc-up/exim4/exim4.conf
GATE=$T/gate/gate.sock
MAIL_GROUP=mail		# a host group: the gate's socket is root:mail 0660, Debian-exim is in it

WEB_UID=$(id -u "$WEB_USER") || { fail "no $WEB_USER user"; finish; }
MAIL_GID=$(getent group "$MAIL_GROUP" | cut -d: -f3) || { fail "no $MAIL_GROUP group"; finish; }

# The packages: downloaded once, unpacked for every run.
if ! ls "$DEBS"/exim4-daemon-light_*.deb "$DEBS"/exim4-base_*.deb >/dev/null 2>&1; then
	mkdir -p "$DEBS"
	(cd "$DEBS" && apt-get download exim4-base exim4-daemon-light >"$T/apt.log" 2>&1) ||
	    { fail "apt-get download exim4-base exim4-daemon-light" "$(tail -n 3 "$T/apt.log")"; finish; }
fi
for d in "$DEBS"/exim4-base_*.deb "$DEBS"/exim4-daemon-light_*.deb; do
	dpkg-deb -x "$d" "$X" || { fail "dpkg-deb -x $d"; finish; }
done
"$EXIM" --version >/dev/null 2>"$T/exim-version.err"
grep -q "error while loading" "$T/exim-version.err" &&
    { fail "the unpacked exim cannot run (scripts/deps check installs its libraries)" "$(cat "$T/exim-version.err")"; finish; }

setup_net
start_mx 25
mkdir -p "$T/spool" "$T/eximlog" "$T/etc-up/exim4" "$T/etc-work"
chmod 0755 "$T" "$T/exim"

# The test's Exim config: an AUTH user with a test-only password, relay for
# the test's own network, everything to the MX. acl_smtp_data exists (mail
# enable must put the gate at its start); acl_not_smtp does not (mail
# enable must add one).
cat >"$CONF_OUT" <<EOC
# Exim of smtpguard's mailexim.sh (a test; never a system's config)
primary_hostname = web1.example
exim_path = $EXIM
spool_directory = $T/spool
log_file_path = $T/eximlog/%slog
tls_advertise_hosts =
daemon_smtp_ports = 25
local_interfaces = 192.0.2.1 : 127.0.0.1
host_lookup =
rfc1413_hosts =
keep_environment =
auth_advertise_hosts = *
untrusted_set_sender = *
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_data = acl_check_data

begin acl

acl_check_rcpt:
  accept authenticated = *
  accept hosts = 127.0.0.1 : 192.0.2.0/24
  deny   message = relay not permitted

acl_check_data:
  accept

begin routers

mx:
  driver = manualroute
  route_list = * $MX4
  transport = remote_smtp
  self = send

begin transports

remote_smtp:
  driver = smtp
  port = 25

begin retry

* * F,1h,1m

begin authenticators

plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = \${if and {{eq{\$auth2}{info@shop.example}}{eq{\$auth3}{test-only-secret}}}}
  server_set_id = \$auth2
EOC
chmod 0644 "$CONF_OUT"

exim_pid=
in_exim() {	# in_exim COMMAND...: inside Exim's namespaces, as root
	nsenter --mount="/proc/$exim_pid/ns/mnt" --net="/run/netns/$HOST_NS" "$@"
}
as_web() {	# as_web COMMAND...: inside Exim's namespaces, as the web user
	in_exim setpriv --reuid="$WEB_UID" --regid="$WEB_UID" --clear-groups "$@"
}
exim_cmd() { in_exim "$EXIM" -C "$CONF" "$@"; }

start_exim() {
	cat >"$T/exim.sh" <<EOS2
#!/bin/sh
set -e
mount --make-rprivate /
mount -t overlay overlay -o lowerdir=/etc,upperdir=$T/etc-up,workdir=$T/etc-work /etc
grep -q '^Debian-exim:' /etc/passwd ||
    echo 'Debian-exim:x:980:$MAIL_GID:Exim of mailexim.sh:$T/spool:/usr/sbin/nologin' >>/etc/passwd
grep -q '^Debian-exim:' /etc/group || echo 'Debian-exim:x:$MAIL_GID:' >>/etc/group
chown -R 980:$MAIL_GID $T/spool $T/eximlog
exec $EXIM -bdf -q3s -oX 25
EOS2
	chmod +x "$T/exim.sh"
	ip netns exec "$HOST_NS" unshare -m "$T/exim.sh" >>"$T/exim.out" 2>&1 &
	exim_pid=$!
	PIDS="$PIDS $exim_pid"
	wait_for "exim listening" sh -c "ip netns exec $HOST_NS ss -ltn | grep -q '192.0.2.1:25 '" ||
	    { cat "$T/exim.out" "$T"/eximlog/* >&2 2>/dev/null; return 1; }
}
stop_exim() {
	[ -n "$exim_pid" ] || return 0
	kill -TERM "$exim_pid" 2>/dev/null
	wait "$exim_pid" 2>/dev/null
	exim_pid=
}
at_exit stop_exim	# a script that stops early must not leave the MTA running
# sgx ARGS...: smtpguard inside Exim's namespaces, the unpacked exim first in PATH
sgx() { in_exim env PATH="$X/usr/sbin:$PATH" "$BUILD/smtpguard" -c "$T/smtpguard.conf" "$@"; }
reload_exim() {	# SIGHUP: Exim's daemon re-executes itself with the new config
	kill -HUP "$exim_pid"
	sleep 0.3
	wait_for "exim listening again" sh -c "ip netns exec $HOST_NS ss -ltn | grep -q '192.0.2.1:25 '"
}

frozen() { exim_cmd -bp 2>/dev/null | grep -c '\*\*\* frozen \*\*\*'; }
queued() { exim_cmd -bpc 2>/dev/null; }
count() { jq -c "select($1)" "$T/events.jsonl" 2>/dev/null | wc -l; }	# events matching
atleast() { [ "$(count "$1")" -ge "$2" ]; }
exactly() { [ "$(count "$1")" -eq "$2" ]; }
until_delivered() {	# until_delivered N: the MX has N messages (up to 30 s)
	wait_for_long sh -c "[ \$(grep -c '^data ' '$T/mx.log') -ge $1 ]"
}

submit() { web_mail "$EXIM" "$2" "$2" "$1"; }	# submit N SCRIPT: through Exim's sendmail, as PHP mail() does
# auth N SUBJECT: N messages by the SASL account, from the MX's namespace (another host).
auth() {
	for i in $(seq "$1"); do
		in_mx swaks --server 192.0.2.1 --port 25 --helo client.example --auth PLAIN \
		    --auth-user info@shop.example --auth-password test-only-secret \
		    --from info@shop.example --to carol@remote.example \
		    --header "Subject: $2 $i" --body x >>"$T/swaks.log" 2>&1 || return 1
	done
}

# gate_config FAIL [OVER]: smtpguard's config, [mail] fail = FAIL, over_limit = OVER (hold).
gate_config() {
	write_config "mta_users = 980"
	cat >>"$T/smtpguard.conf" <<EOC
[mail]
gate = yes
mta = exim
socket = $GATE
group = $MAIL_GROUP
fail = $1
over_limit = ${2:-hold}
limit = 200/hour
state = $T/mail.state
EOC
}
gate_config accept
cat >"$T/exceptions.conf" <<EOF
limit user:$WEB_USER 3/hour
limit sasl:info@shop.example 1/hour
EOF
cp "$CONF_OUT" "$T/exim.conf.orig"

start_daemon || { fail "smtpguardd did not start" "$(tail -n 5 "$T/daemon.log")"; finish; }
wait_for "the gate's socket" test -S "$GATE"
check "the gate's socket is for the MTA's group only" \
    sh -c "[ \"\$(stat -c '%a %U %G' '$T/gate')\" = '750 root $MAIL_GROUP' ] &&
	[ \"\$(stat -c '%a %G' '$GATE')\" = '660 $MAIL_GROUP' ]"
gate_pid=$(gate_pid)
check "the gate runs unprivileged, in an empty root, without capabilities" \
    sh -c "[ -n '$gate_pid' ] && [ \"\$(readlink /proc/$gate_pid/root)\" != / ] &&
	grep -q '^CapEff:	0000000000000000' /proc/$gate_pid/status"

start_exim || { fail "exim did not start"; finish; }
sgx mail enable --exim-config "$CONF" >"$T/enable.out" 2>&1
check "mail enable --exim-config wires the gate into Exim's config (checked with exim -bV)" \
    sh -c "grep -q 'mail gate added' '$T/enable.out' && grep -q 'SMTPGUARD_SOCKET = $GATE' '$CONF_OUT' &&
	[ \$(grep -c 'readsocket{SMTPGUARD_SOCKET}' '$CONF_OUT') -eq 2 ] && grep -q '^acl_not_smtp = smtpguard_not_smtp' '$CONF_OUT'"
check "and keeps the file's mode" [ "$(stat -c %a "$CONF_OUT")" = 644 ]
reload_exim

# 1. A PHP script as the web user: 5 messages, limit 3/hour.
submit 5 offer || fail "sendmail as $WEB_USER"
wait_for_long atleast '.event == "mail" and .mta == "exim"' 5
until_delivered 3
sleep 1	# anything more that would leave has had time to
check "exactly 3 of the web user's 5 messages reach the MX" [ "$(delivered)" -eq 3 ]
check "the other 2 are frozen in Exim's queue (exim -bp)" [ "$(frozen)" -eq 2 ]
check "Exim logs the gate's one-line answer for them" \
    sh -c "[ \$(grep -c 'Warning: smtpguard: hold held: sending limit reached (user:$WEB_USER) *\$' '$T/eximlog/mainlog') -eq 2 ]"
check "every local message has one mail event naming uid $WEB_UID, the user and the script" \
    exactly ".event == \"mail\" and .uid == $WEB_UID and .user == \"$WEB_USER\" and .origin == \"user:$WEB_USER\" and .php_script == \"$WEB_UID:offer\" and .mta == \"exim\" and .rcpt_count == 1 and .limit == 3 and (has(\"sasl_user\") | not) and (has(\"client_ip\") | not)" 5
check "3 pass" exactly ".event == \"mail\" and .origin == \"user:$WEB_USER\" and .action == \"pass\"" 3
check "2 are held" exactly ".event == \"mail\" and .origin == \"user:$WEB_USER\" and .action == \"hold\"" 2
held_ids() { jq -r "select(.event == \"mail\" and .action == \"hold\" and .origin == \"$1\") | .queue_id" "$T/events.jsonl" | sort; }
frozen_ids() { exim_cmd -bp | awk '/\*\*\* frozen \*\*\*/ { print $3 }' | sort; }
check "the events' queue ids are Exim's ids of the frozen messages" [ "$(held_ids "user:$WEB_USER")" = "$(frozen_ids)" ]
check "one alert for the web user, with the subject and recipients" \
    exactly ".event == \"alert\" and .origin == \"user:$WEB_USER\" and .subject == \"offer 4\" and .rcpt_to == [\"bob@remote.example\"]" 1

# 2. A SASL account over SMTP AUTH from another host: named by its login.
auth 2 stolen || fail "swaks AUTH" "$(tail -n 5 "$T/swaks.log")"
wait_for_long atleast '.event == "mail" and .origin == "sasl:info@shop.example"' 2
until_delivered 4
sleep 1
check "the AUTH user's events name sasl:info@shop.example, its address and HELO, no uid" \
    exactly '.event == "mail" and .origin == "sasl:info@shop.example" and .sasl_user == "info@shop.example" and .client_ip == "192.0.2.25" and .helo == "client.example" and .mta == "exim" and (has("uid") | not)' 2
check "its first passes (limit 1/hour)" [ "$(delivered)" -eq 4 ]
check "and its second is frozen" [ "$(frozen)" -eq 3 ]
check "held, by its event" exactly '.event == "mail" and .origin == "sasl:info@shop.example" and .action == "hold"' 1

# 3. held, release, purge through Exim's own tools.
sgx held --exim-config "$CONF" >"$T/held.out" 2>&1
check "held lists the frozen messages by origin" \
    sh -c "grep -q '3 held messages in Exim' '$T/held.out' && grep -q '^user:$WEB_USER: 2 held' '$T/held.out' &&
	grep -q '^sasl:info@shop.example: 1 held' '$T/held.out' && grep -q 'offer 5' '$T/held.out'"
sgx held "user:$WEB_USER" --json --exim-config "$CONF" >"$T/held.json" 2>&1
check "held ORIGIN --json gives that origin's messages only" \
    jq -e "length == 2 and all(.[]; .origin == \"user:$WEB_USER\" and .queue_name == \"frozen\" and .sender == \"shop@web1.example\")" "$T/held.json"
sgx release "user:$WEB_USER" --exim-config "$CONF" >"$T/release.out" 2>&1
until_delivered 6
check "release thaws the web user's 2 and they reach the MX" \
    sh -c "[ \$(grep -c '^data ' '$T/mx.log') -eq 6 ] && grep -q 'released 2 messages' '$T/release.out'"
check "the AUTH user's message is still frozen" [ "$(frozen)" -eq 1 ]
sgx purge "$(held_ids sasl:info@shop.example)" --exim-config "$CONF" >"$T/purge.out" 2>&1
check "purge by queue id removes it (exim -Mrm)" grep -q 'purged 1 message' "$T/purge.out"
check "the queue is empty and nothing more left" sh -c "[ '$(queued)' = 0 ] && [ $(delivered) -eq 6 ]"
check "release and purge are in the event log" \
    sh -c "grep -q 'released 2 held messages of user:$WEB_USER' '$T/events.jsonl' && grep -q 'purged 1 held message' '$T/events.jsonl'"

# The gate child killed: smtpguardd starts another, which makes its socket anew.
old=$gate_pid
kill -9 "$old"
for _ in $(seq 100); do
	gate_pid=$(gate_pid)
	[ -n "$gate_pid" ] && [ "$gate_pid" != "$old" ] && break
	sleep 0.05
done
check "the gate was restarted" sh -c "[ -n '$gate_pid' ] && [ '$gate_pid' != '$old' ]"
submit 1 after-restart || fail "sendmail after the gate's restart"
wait_for_long atleast ".php_script == \"$WEB_UID:after-restart\"" 1
check "a restarted gate decides again (the web user is still over its limit)" \
    exactly ".php_script == \"$WEB_UID:after-restart\" and .action == \"hold\"" 1
exim_cmd -Mrm "$(jq -r "select(.php_script == \"$WEB_UID:after-restart\") | .queue_id" "$T/events.jsonl")" >/dev/null 2>&1	# out of the way of the counts below

# 4. The gate down: fail = accept lets mail through.
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
wait_for "the gate gone with its parent" sh -c "! kill -0 $gate_pid"
submit 1 gate-down || fail "sendmail with the gate down"
until_delivered 7
check "with the gate down and fail = accept, mail still flows" [ "$(delivered)" -eq 7 ]
sgx status >"$T/status-down.out" 2>&1
check "status names the wired Exim and says loudly that mail flows unguarded" \
    sh -c "grep -q 'MTA: exim $CONF (SMTPGUARD_FALLBACK = pass)' '$T/status-down.out' && grep -q 'MAIL IS FLOWING UNGUARDED' '$T/status-down.out'"

# 5. mail disable restores the file byte for byte; fail = tempfail wires a deferring fallback.
sgx mail disable --exim-config "$CONF" >"$T/disable.out" 2>&1
check "mail disable --exim-config restores Exim's config byte for byte" cmp -s "$T/exim.conf.orig" "$CONF_OUT"
gate_config tempfail
sgx mail enable --exim-config "$CONF" >"$T/enable2.out" 2>&1
check "with fail = tempfail the fallback defers" grep -q '^SMTPGUARD_FALLBACK = defer' "$CONF_OUT"
reload_exim
in_mx swaks --server 192.0.2.1 --port 25 --from news@relay.example --to carol@remote.example \
    --header "Subject: gate down" --body x >"$T/swaks-down.log" 2>&1
check "with the gate down and fail = tempfail, an SMTP client is told to retry (451)" \
    grep -q '<\*\* *451' "$T/swaks-down.log"
submit 1 tempfail >"$T/submit-down.log" 2>&1; submit_rc=$?
check "and a local submission is refused (sendmail fails), nothing queued" \
    sh -c "[ $submit_rc -ne 0 ] && [ '$(queued)' = 0 ] && grep -q 'rejected by non-SMTP ACL: mail gate unavailable' '$T/eximlog/mainlog'"
sleep 1
check "and nothing left" [ "$(delivered)" -eq 7 ]

# 6. over_limit = reject: the gate's own text reaches the client.
gate_config tempfail reject
sed -i 's|^limit sasl:info@shop.example 1/hour|limit sasl:info@shop.example 0/hour|' "$T/exceptions.conf"
start_daemon || fail "smtpguardd restart"
for _ in $(seq 100); do [ -n "$(gate_pid)" ] && break; sleep 0.05; done	# the new gate child
auth 1 rejected
check "past its limit with over_limit = reject, the AUTH user is refused with the gate's text (550)" \
    grep -q '<\*\* *550 refused: sending limit reached (sasl:info@shop.example)' "$T/swaks.log"
check "and its event says reject" exactly '.event == "mail" and .origin == "sasl:info@shop.example" and .action == "reject" and .limit == 0' 1
check "still nothing left" [ "$(delivered)" -eq 7 ]
sgx mail disable --exim-config "$CONF" >"$T/disable2.out" 2>&1
check "disable again: byte for byte" cmp -s "$T/exim.conf.orig" "$CONF_OUT"

echo "--- mail events (first 2, the AUTH user's):"
jq -c 'select(.event == "mail")' "$T/events.jsonl" | head -n 2
jq -c 'select(.event == "mail" and .origin == "sasl:info@shop.example")' "$T/events.jsonl"
echo "--- held:"
cat "$T/held.out"
if [ "$FAILS" -gt 0 ]; then
	echo "--- daemon log:"
	tail -n 20 "$T/daemon.log"
	echo "--- enable:"
	cat "$T/enable.out" "$T/enable2.out" 2>/dev/null
	echo "--- release/purge:"
	cat "$T/release.out" "$T/purge.out"
	echo "--- swaks with the gate down:"
	tail -n 8 "$T/swaks-down.log"
	echo "--- exim log:"
	tail -n 30 "$T/eximlog/mainlog"
	cat "$T/eximlog/paniclog" 2>/dev/null
fi
stop_exim
finish
