# Shared set-up for the namespace tests. Source it; it creates, and on exit
# removes, two network namespaces joined by a veth:
#   host (192.0.2.1, 2001:db8::1): smtpguardd and the senders run here
#   mx   (192.0.2.25, 2001:db8::25): plays the remote mail exchanger
# on documentation addresses with no route anywhere else. Nothing on the
# host's own network stack is touched; processes are killed by PID only.
set -u

ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=$ROOT/build
MTA_UID=101		# the golden ruleset's MTA uid
WEB_UID=3001		# a site user: must be fenced
EXEMPT_UID=3002		# a site user with a plain exception
HOST_NS=sg-host-$$
MX_NS=sg-mx-$$
MX4=192.0.2.25
MX6=2001:db8::25
PIDS=""
PASSES=0
FAILS=0

T=$(mktemp -d /tmp/smtpguard-test.XXXXXX) || exit 1
chmod 0755 "$T"
cp "$BUILD/tools/sgprobe" "$T/sgprobe"
chmod 0755 "$T/sgprobe"

cleanup() {
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	ip netns del "$HOST_NS" 2>/dev/null
	ip netns del "$MX_NS" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

pass() { echo "PASS: $1"; PASSES=$((PASSES + 1)); }
fail() { echo "FAIL: $1${2:+: $2}"; FAILS=$((FAILS + 1)); }

# check NAME COMMAND...: passes when the command succeeds.
check() {
	name=$1
	shift
	if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$(echo "$out" | tail -n 5)"; fi
}

finish() {
	[ "$FAILS" -eq 0 ]
	exit $?
}

in_host() { ip netns exec "$HOST_NS" "$@"; }
in_mx() { ip netns exec "$MX_NS" "$@"; }
as_uid() {	# as_uid UID COMMAND...: run in the host namespace as that uid
	u=$1
	shift
	ip netns exec "$HOST_NS" setpriv --reuid="$u" --regid="$u" --clear-groups "$@"
}

setup_net() {
	ip netns add "$HOST_NS" && ip netns add "$MX_NS" || exit 1
	ip link add sg-h$$ netns "$HOST_NS" type veth peer name sg-m$$ netns "$MX_NS" || exit 1
	in_host ip link set lo up
	in_mx ip link set lo up
	in_host ip addr add 192.0.2.1/24 dev sg-h$$
	in_mx ip addr add "$MX4/24" dev sg-m$$
	in_host ip addr add 2001:db8::1/64 dev sg-h$$ nodad
	in_mx ip addr add "$MX6/64" dev sg-m$$ nodad
	in_host ip link set sg-h$$ up
	in_mx ip link set sg-m$$ up
}

# start_mx PORT...: the stand-in MX listens on both addresses.
start_mx() {
	# Background jobs are started with ip netns exec itself, never through a
	# shell function: $! must be the process's own PID, to kill it by PID.
	ip netns exec "$MX_NS" "$T/sgprobe" listen "$T/mx.log" :: "$@" >"$T/mx.out" 2>&1 &
	PIDS="$PIDS $!"
	wait_for "mx listening" grep -q ready "$T/mx.out"
}

wait_for() {	# wait_for WHAT COMMAND...: up to 5 s
	WAIT_TICKS=${WAIT_TICKS:-100} wait_ticks "$@"
}
wait_for_long() {	# up to 30 s
	WAIT_TICKS=600 wait_ticks "long wait" "$@"
}
wait_ticks() {
	what=$1
	shift
	i=0
	while ! "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -ge "$WAIT_TICKS" ]; then
			echo "timed out waiting for $what" >&2
			return 1
		fi
		sleep 0.05
	done
}

# write_config [KEY=VALUE in [guard]]...: a whole instance under $T.
write_config() {
	{
		echo "[guard]"
		for kv in "mta_users = $MTA_UID" "ports = 25, 465, 587" "action = reject" \
		    "queue = 0" "exceptions = $T/exceptions.conf" \
		    "control_socket = $T/control.sock" "pid_file = $T/smtpguardd.pid"; do
			overridden=no
			for arg in "$@"; do
				[ "${arg%% =*}" = "${kv%% =*}" ] && overridden=yes
			done
			[ $overridden = yes ] || echo "$kv"
		done
		for kv in "$@"; do echo "$kv"; done
		echo "[log]"
		echo "file = $T/events.jsonl"
		echo "syslog = no"
		[ -z "${LOG_LINES:-}" ] || printf '%s\n' "$LOG_LINES"
		[ -z "${ALERT_LINES:-}" ] || printf '[alert]\n%s\n' "$ALERT_LINES"
	} >"$T/smtpguard.conf"
}

sg() { in_host "$BUILD/smtpguard" -c "$T/smtpguard.conf" "$@"; }

# nsenter, not ip netns exec: only the network namespace changes, and the
# daemon sees the host's /sys, where its connect hook attaches (cgroup v2).
start_daemon() {
	nsenter --net="/run/netns/$HOST_NS" "$BUILD/smtpguardd" -f -c "$T/smtpguard.conf" \
	    >>"$T/daemon.log" 2>&1 &
	DAEMON_PID=$!
	PIDS="$PIDS $DAEMON_PID"
	wait_for "smtpguardd ready" sg status || { cat "$T/daemon.log" >&2; return 1; }
}

stop_daemon() {	# SIGTERM, and wait for it
	kill -TERM "$DAEMON_PID" 2>/dev/null
	wait "$DAEMON_PID" 2>/dev/null
}

tables() { in_host nft list tables 2>/dev/null; }

# jq -e judges only the last input line: "does any line match?" needs this.
jq_any() { jq -c "$@" | grep -q .; }
