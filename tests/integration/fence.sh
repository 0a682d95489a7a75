#!/bin/sh
# The fence, end to end in two namespaces: the MTA delivers, site users are
# refused at once and named, exceptions and non-SMTP ports pass, allow_local
# works both ways, the fence holds while the daemon is dead or stopped, and
# only smtpguard disable removes it.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"

setup_net
start_mx 25 465 587 2525
echo "allow $EXEMPT_UID" >"$T/exceptions.conf"
write_config "allow_local = yes"
start_daemon || { fail "smtpguardd starts"; finish; }
pass "smtpguardd starts and installs its table"

# Least privilege once the fence is up: seccomp filter, no_new_privs, and
# only the capabilities sandbox.c lists (CapEff of NET_ADMIN, SYS_PTRACE,
# DAC_READ_SEARCH, CHOWN, KILL, SETUID, SETGID, SYS_CHROOT, NET_BIND_SERVICE).
status_field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$DAEMON_PID/status"; }
check "the daemon runs under a seccomp filter" test "$(status_field Seccomp)" = 2
check "the daemon has no_new_privs" test "$(status_field NoNewPrivs)" = 1
check "the daemon keeps only its nine capabilities" \
    test "$(status_field CapEff)" = 00000000000c14e5
check "the daemon's bounding set is as small" test "$(status_field CapBnd)" = 00000000000c14e5

connects() {	# connects UID ADDR PORT: expect "connected"
	out=$(as_uid "$1" "$T/sgprobe" connect -q "$2" "$3") && case $out in connected*) ;; *) false ;; esac
}
refused_at_once() {	# refused with a reset, not a timeout
	out=$(as_uid "$1" "$T/sgprobe" connect -t 2000 "$2" "$3")
	case $out in refused*) return 0 ;; esac
	echo "$out"
	return 1
}

for port in 25 465 587; do
	for addr in $MX4 $MX6; do
		check "MTA uid delivers to $addr port $port" connects $MTA_UID $addr $port
		check "web user is refused at once on $addr port $port" \
		    refused_at_once $WEB_UID $addr $port
	done
done

# The attempt is logged with the culprit's uid, pid, exe and cmdline.
ip netns exec "$HOST_NS" setpriv --reuid=$WEB_UID --regid=$WEB_UID --clear-groups \
    "$T/sgprobe" connect -t 2000 $MX4 25 >/dev/null &
probe_pid=$!
wait $probe_pid
names_culprit() {
	jq_any --argjson pid "$probe_pid" --arg exe "$T/sgprobe" \
	    --arg cmd "$T/sgprobe connect -t 2000 $MX4 25" --argjson uid $WEB_UID \
	    'select(.event == "attempt" and .pid == $pid) |
	     select(.uid == $uid and .exe == $exe and .cmdline == $cmd and .action == "reject"
	            and .dst_ip == "192.0.2.25" and .dst_port == 25 and .family == "ipv4"
	            and (.flow_id | type) == "number" and .rule == "default")' \
	    "$T/events.jsonl" >/dev/null
}
check "the event names the web user's uid, pid, exe and cmdline" wait_for "event" names_culprit

check "an exempt uid connects" connects $EXEMPT_UID $MX4 25
check "an exempt uid connects over IPv6" connects $EXEMPT_UID $MX6 587
check "a port outside the fence is untouched for a web user" connects $WEB_UID $MX4 2525
check "a port outside the fence is untouched over IPv6" connects $WEB_UID $MX6 2525

# allow_local: the host's own MTA on 127.0.0.1:25 and on its own address.
ip netns exec "$HOST_NS" "$T/sgprobe" listen "$T/local.log" :: 25 >"$T/local.out" 2>&1 &
PIDS="$PIDS $!"
wait_for "local listener" grep -q ready "$T/local.out"
check "allow_local: a web user may hand mail to 127.0.0.1:25" connects $WEB_UID 127.0.0.1 25
check "allow_local: ... and to ::1 port 25" connects $WEB_UID ::1 25
check "allow_local: ... and to the host's own address" connects $WEB_UID 192.0.2.1 25
stop_daemon
write_config "allow_local = no"
start_daemon || fail "smtpguardd restarts with allow_local = no"
check "allow_local off: 127.0.0.1:25 is refused for a web user" \
    refused_at_once $WEB_UID 127.0.0.1 25
check "allow_local off: the MTA still reaches 127.0.0.1:25" connects $MTA_UID 127.0.0.1 25

# kill -9: the table stays, the fence holds, the MTA keeps delivering.
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
# With no daemon on the queue the kernel drops the SYN (no bypass, fail
# closed): the client times out. "refused" would be some other rule, and an
# error from the probe is no evidence at all: both fail.
dropped() {	# expect "timeout", exit 3
	out=$(as_uid $WEB_UID "$T/sgprobe" connect -t 1000 $MX4 25)
	rc=$?
	case $rc:$out in 3:timeout*) return 0 ;; esac
	echo "expected a timeout (SYN dropped), got exit $rc: $out"
	return 1
}
check "daemon killed: a web user still cannot connect" dropped
check "daemon killed: the MTA still delivers" connects $MTA_UID $MX4 25
says_unattended() { sg status | grep -q 'NOT running, but the fence is closed'; }
check "daemon killed: status says the fence is closed but unattended" says_unattended
start_daemon || fail "smtpguardd restarts over its own table"
one_table() { [ "$(tables | grep -c 'table inet smtpguard')" -eq 1 ]; }
check "a restart leaves exactly one table" one_table
check "after the restart a web user is refused again" refused_at_once $WEB_UID $MX6 25
# SIGTERM (a restart, an upgrade, a service manager) never opens the fence.
stop_daemon
check "SIGTERM leaves the table: a stop never opens the fence" one_table
check "stopped: a web user still cannot connect" dropped
check "stopped: the MTA still delivers" connects $MTA_UID $MX4 25
says_stopped() { sg status | grep -q 'NOT running, but the fence is closed'; }
check "stopped: status says the fence is closed but unattended" says_stopped
no_table() {	# (nft failing to list is no evidence: it fails)
	listed=$(in_host nft list tables) || return 1
	! printf '%s\n' "$listed" | grep 'table inet smtpguard'
}
check "smtpguard disable removes the table" sg disable
check "after disable no table is left" no_table
finish
