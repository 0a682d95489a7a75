#!/bin/sh
# Whitelisting and reviewing: live exceptions (allow/revoke/narrowing/caps),
# the control socket's defences, reload keeping the running state, flood
# limiting with exact counters, the alert program.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"

setup_net
start_mx 25 465 587
ALERT_OUT=$T/alert.json
cat >"$T/alert.sh" <<ALERT
#!/bin/sh
cat >>"$ALERT_OUT"
ALERT
chmod 0755 "$T/alert.sh"
: >"$T/exceptions.conf"
# Flood limiting over 5-second windows (quick to test); alerts past 30 attempts per uid.
LOG_LINES="rate = 20
window = 5"
ALERT_LINES="threshold = 30/10min
exec = $T/alert.sh"
write_config
start_daemon || { fail "smtpguardd starts"; finish; }

connects() {
	out=$(as_uid "$1" "$T/sgprobe" connect -q "$2" "$3") && case $out in connected*) ;; *) false ;; esac
}
refused() {
	out=$(as_uid "$1" "$T/sgprobe" connect -t 2000 "$2" "$3")
	case $out in refused*) return 0 ;; esac
	echo "$out"
	return 1
}

# A flow in progress (the MTA's) while exceptions change.
ip netns exec "$HOST_NS" setpriv --reuid=$MTA_UID --regid=$MTA_UID --clear-groups \
    "$T/sgprobe" hold -t 3000 $MX4 25 "$T/poke" >"$T/hold.out" 2>&1 &
HOLD_PID=$!
PIDS="$PIDS $HOLD_PID"
wait_for "held flow" grep -q connected "$T/hold.out"

check "before allow: the web user is refused" refused $WEB_UID $MX4 25
check "allow UID is accepted" sg allow $WEB_UID --comment "newsletter plugin"
check "after allow: the web user connects at once" connects $WEB_UID $MX4 25
check "after allow: also over IPv6" connects $WEB_UID $MX6 587
in_kernel() { in_host nft list set inet smtpguard allow_uids | grep -q "$WEB_UID"; }
check "a plain exception lives in the kernel set" in_kernel
poke_alive() {
	echo noop >"$T/poke.tmp" && mv "$T/poke.tmp" "$T/poke"
	wait_for "held flow answers" sh -c "[ \$(grep -c alive '$T/hold.out') -ge $1 ]"
}
check "a flow in progress is untouched by allow" poke_alive 1
dup_refused() {	# refused as a duplicate (exit 1), not failing for any other reason
	out=$(sg allow $WEB_UID 2>&1)
	rc=$?
	[ $rc -eq 1 ] && case $out in *"$WEB_UID is already allowed"*) ;; *) false ;; esac ||
	    { echo "exit $rc: $out"; return 1; }
}
check "a duplicate allow is refused" dup_refused
check "the exception is persisted" grep -q "^allow $WEB_UID comment=\"newsletter plugin\"" "$T/exceptions.conf"
stop_daemon
start_daemon || fail "restart with the exception"
check "the exception survives a restart" connects $WEB_UID $MX4 25
check "revoke is accepted" sg revoke $WEB_UID
check "after revoke: refused again" refused $WEB_UID $MX4 25
check "revoke is persisted" sh -c "[ -f '$T/exceptions.conf' ] && ! grep '^allow $WEB_UID' '$T/exceptions.conf'"
stop_daemon
start_daemon || fail "restart after revoke"
check "the revoke survives a restart" refused $WEB_UID $MX6 25
check "unknown users are refused with a clear error" \
    sh -c "ip netns exec $HOST_NS '$BUILD/smtpguard' -c '$T/smtpguard.conf' allow no-such-user-xyz 2>&1 | grep -q \"unknown user 'no-such-user-xyz'\""
check "bad CIDRs are refused" \
    sh -c "ip netns exec $HOST_NS '$BUILD/smtpguard' -c '$T/smtpguard.conf' allow $WEB_UID --to 192.0.2.0/33 2>&1 | grep -q 'bad destination'"

# Narrowed exceptions: decided in userspace at the SYN.
check "allow narrowed to an IPv4 net and port 587" \
    sg allow $WEB_UID --to 192.0.2.0/24 --port 587
check "narrowed: 587 to the allowed net connects" connects $WEB_UID $MX4 587
check "narrowed: port 25 to the same net is refused" refused $WEB_UID $MX4 25
check "narrowed: IPv6 is not in the allowed net" refused $WEB_UID $MX6 587
not_in_set() {	# (a set that cannot be listed fails)
	set_list=$(in_host nft list set inet smtpguard allow_uids) || return 1
	! printf '%s\n' "$set_list" | grep "$WEB_UID"
}
check "narrowed: not in the kernel set" not_in_set
sg revoke $WEB_UID >/dev/null
check "allow narrowed to an IPv6 net" sg allow $WEB_UID --to 2001:db8::/32
check "narrowed v6: IPv6 connects on any fenced port" connects $WEB_UID $MX6 465
check "narrowed v6: IPv4 is refused" refused $WEB_UID $MX4 465
sg revoke $WEB_UID >/dev/null

# A cap: 3 an hour, the 4th gets the default action and one alert event.
check "allow with a cap of 3/hour" sg allow $EXEMPT_UID --cap 3/hour
for i in 1 2 3; do
	check "capped: connection $i of 3 passes" connects $EXEMPT_UID $MX4 25
done
check "capped: the 4th is refused" refused $EXEMPT_UID $MX4 25
one_cap_alert() {
	[ "$(jq -c "select(.event == \"alert\" and .uid == $EXEMPT_UID and (.rule | startswith(\"cap:\")))" "$T/events.jsonl" | wc -l)" -eq 1 ]
}
check "capped: exactly one alert event" wait_for "cap alert" one_cap_alert
exceptions_table() { sg exceptions | grep -Eq "^$EXEMPT_UID +any +any +allow +3/hour +3  [0-9]{4}-"; }
check "exceptions shows who, to, ports, mode, cap, hits and last hit" exceptions_table
sg revoke $EXEMPT_UID >/dev/null

# The control socket.
echo '{"v":1,"cmd":"status"}' >"$T/req.status"
check "the control socket is mode 0600" sh -c "[ \$(stat -c %a '$T/control.sock') = 600 ]"
non_root_cannot_connect() { as_uid $WEB_UID "$T/sgprobe" ctl "$T/control.sock" "$T/req.status" | grep -q 'Permission denied'; }
check "a non-root user cannot open the control socket" non_root_cannot_connect
chmod 0666 "$T/control.sock"
non_root_refused() { as_uid $WEB_UID "$T/sgprobe" ctl "$T/control.sock" "$T/req.status" | grep -q 'for root'; }
check "a non-root peer is refused by SO_PEERCRED even when the mode lets it in" non_root_refused
chmod 0600 "$T/control.sock"
printf 'garbage\n' >"$T/req.garbage"
garbage_error() { in_host "$T/sgprobe" ctl "$T/control.sock" "$T/req.garbage" | grep -q '"ok":false'; }
check "garbage on the control socket gets an error reply" garbage_error
head -c 1048576 /dev/zero | tr '\0' 'a' >"$T/req.big"
big_error() { in_host "$T/sgprobe" ctl "$T/control.sock" "$T/req.big" | grep -q 'too large'; }
check "a 1 MiB request gets an error reply" big_error
check "the daemon still answers after that" sg status

# Reload with a broken config keeps the old rules.
in_host nft list table inet smtpguard >"$T/before.nft" 2>/dev/null
cp "$T/smtpguard.conf" "$T/good.conf"
sed -i 's/^ports = .*/ports = 25, 99999/' "$T/smtpguard.conf"
reload_refused() { sg reload 2>&1 | grep -q "smtpguard.conf:[0-9]*: \[guard\] ports"; }
check "reload of a broken config names file:line:key" reload_refused
in_host nft list table inet smtpguard >"$T/after.nft" 2>/dev/null
check "a refused reload leaves the ruleset byte-identical" cmp -s "$T/before.nft" "$T/after.nft"
check "... and the fence still holds" refused $WEB_UID $MX4 25
cp "$T/good.conf" "$T/smtpguard.conf"

# A flood of 20,000 attempts from one uid: log lines bounded, counters exact.
: >"$T/flood.before"
before=$(sg status --json | jq '.decisions.reject')
lines_before=$(wc -l <"$T/events.jsonl")
as_uid $WEB_UID "$T/sgprobe" flood -n 20000 $MX4 25 >"$T/flood.out" 2>&1
check "the flood ran: 20000 refused" grep -q "^refused 20000" "$T/flood.out"
after=$(sg status --json | jq '.decisions.reject')
check "status counts every one of the 20000 decisions" [ $((after - before)) -eq 20000 ]
lines=$(( $(wc -l <"$T/events.jsonl") - lines_before ))
# rate 20 per 5 s window: (windows the flood spans + 1) x 21 lines, plus alerts
secs=$(sed -n 's/^seconds //p' "$T/flood.out")
bound=$(( (secs / 5 + 2) * 21 + 5 ))
check "log lines stay bounded under the flood ($lines lines, bound $bound)" [ "$lines" -le "$bound" ]
summary_exact() {
	logged=$(jq -c "select(.event == \"attempt\" and .uid == $WEB_UID and .exe == \"$T/sgprobe\")" "$T/events.jsonl" | wc -l)
	supp=$(jq -s "[.[] | select(.event == \"summary\" and .uid == $WEB_UID) | .suppressed] | add // 0" "$T/events.jsonl")
	[ $((logged + supp)) -ge 20000 ]
}
# summaries come when each window ends: wait for it
check "logged attempts + summaries add up exactly (after the window)" wait_for_long summary_exact
top_exact() {
	n=$(sg top --by user --json | jq ".[] | select(.user == \"($WEB_UID)\") | .attempts")
	[ "$n" -ge 20000 ]
}
check "top counts the suppressed attempts too" top_exact
one_flood_alert() {
	[ "$(jq -c "select(.event == \"alert\" and .uid == $WEB_UID)" "$T/events.jsonl" | wc -l)" -eq 1 ]
}
check "the flood raised exactly one alert event" one_flood_alert
alert_ran_once() {	# (the cap alert above ran it too: the same path)
	[ -f "$ALERT_OUT" ] &&
	    [ "$(jq -c "select(.event == \"alert\" and .uid == $WEB_UID)" "$ALERT_OUT" | wc -l)" -eq 1 ]
}
check "the alert program ran once with the flood's alert as JSON" wait_for "alert program" alert_ran_once
cap_alert_ran() { [ "$(jq -c "select(.uid == $EXEMPT_UID)" "$ALERT_OUT" | wc -l)" -eq 1 ]; }
check "the cap alert went through the alert program too" cap_alert_ran

echo quit >"$T/poke.tmp" && mv "$T/poke.tmp" "$T/poke"
check "the held MTA flow survived everything" wait_for "hold exit" sh -c "grep -q closed '$T/hold.out'"
finish
