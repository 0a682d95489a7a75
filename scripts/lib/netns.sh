# scripts/lib/netns.sh — the network namespaces and the smtpguard instance
# that a namespace test, make bench and make demo run in. Source check.sh
# first (this file uses its $T, at_exit and wait_for), then this:
#   . "$ROOT/scripts/lib/check.sh"
#   . "$ROOT/scripts/lib/netns.sh"
# setup_net creates, and on exit removes, two namespaces joined by a veth:
#   host (192.0.2.1, 2001:db8::1): smtpguardd and the senders run here
#   mx   (192.0.2.25, 2001:db8::25): plays the remote mail exchanger
# on documentation addresses with no route anywhere else; setup_lone_host
# creates the host namespace alone, with only its loopback (for a test whose
# program brings its own links, or that only needs a ruleset of its own).
# Nothing on the host's own network stack is touched. Every process started
# in the background is put in PIDS and killed by its PID on exit, never by
# name. It judges nothing: pass/fail are check.sh's.
command -v wait_for >/dev/null 2>&1 ||
    { echo "netns.sh: source scripts/lib/check.sh first" >&2; exit 1; }

MTA_UID=101		# the golden ruleset's MTA uid
WEB_UID=3001		# a site user: must be fenced
EXEMPT_UID=3002		# a site user with a plain exception
HOST_NS=sg-host-$$
MX_NS=sg-mx-$$
MX4=192.0.2.25
MX6=2001:db8::25
PIDS=""			# background processes, killed by PID on exit
NETNS_MADE=""		# the namespaces this script created

netns_cleanup() {
	for _p in $PIDS; do kill -9 "$_p" 2>/dev/null; done
	for _p in $PIDS; do wait "$_p" 2>/dev/null; done
	for _ns in $NETNS_MADE; do ip netns del "$_ns" 2>/dev/null; done
}
at_exit netns_cleanup

netns_add() {	# netns_add NAME: a namespace with its loopback up
	ip netns add "$1" || { echo "netns.sh: cannot create namespace $1 (needs root)" >&2; exit 1; }
	NETNS_MADE="$NETNS_MADE $1"
	ip netns exec "$1" ip link set lo up
}

in_host() { ip netns exec "$HOST_NS" "$@"; }
in_mx() { ip netns exec "$MX_NS" "$@"; }
as_uid() {	# as_uid UID COMMAND...: run in the host namespace as that uid
	_as_u=$1
	shift
	ip netns exec "$HOST_NS" setpriv --reuid="$_as_u" --regid="$_as_u" --clear-groups "$@"
}

setup_lone_host() {
	netns_add "$HOST_NS"
}

setup_net() {
	# The probe runs as every test uid: a copy in a folder they may all enter.
	cp "$BUILD/tools/sgprobe" "$T/sgprobe" 2>/dev/null ||
	    { echo "netns.sh: build/tools/sgprobe missing (make tests builds it)" >&2; exit 1; }
	chmod 0755 "$T" "$T/sgprobe"
	netns_add "$HOST_NS"
	netns_add "$MX_NS"
	ip link add sg-h$$ netns "$HOST_NS" type veth peer name sg-m$$ netns "$MX_NS" ||
	    { echo "netns.sh: cannot create the veth pair" >&2; exit 1; }
	in_host ip addr add 192.0.2.1/24 dev sg-h$$
	in_mx ip addr add "$MX4/24" dev sg-m$$
	in_host ip addr add 2001:db8::1/64 dev sg-h$$ nodad
	in_mx ip addr add "$MX6/64" dev sg-m$$ nodad
	in_host ip link set sg-h$$ up
	in_mx ip link set sg-m$$ up
}

# start_mx PORT...: the stand-in MX listens on both addresses; every
# connection it accepts is an "accept" line in $T/mx.log (created at once).
start_mx() {
	# Background jobs are started with ip netns exec itself, never through a
	# shell function: $! must be the process's own PID, to kill it by PID.
	ip netns exec "$MX_NS" "$T/sgprobe" listen "$T/mx.log" :: "$@" >"$T/mx.out" 2>&1 &
	MX_PID=$!
	PIDS="$PIDS $MX_PID"
	wait_for "mx listening" grep -q ready "$T/mx.out"
}

# delivered: how many messages the stand-in MX took (its "data" lines).
delivered() { grep -c '^data ' "$T/mx.log" 2>/dev/null || echo 0; }

# web_mail SENDMAIL SCRIPT SUBJECT N: N messages through the MTA's SENDMAIL,
# as PHP mail() in SCRIPT sends them (X-PHP-Originating-Script), subjects
# "SUBJECT 1" to "SUBJECT N"; run by the script's own as_web (the web user
# inside the MTA's namespaces).
web_mail() {
	for _wm_i in $(seq "$4"); do
		printf 'To: bob@remote.example\nFrom: shop@web1.example\nSubject: %s %s\nX-PHP-Originating-Script: %s:%s\n\nhello\n' \
		    "$3" "$_wm_i" "$WEB_UID" "$2" | as_web "$1" -f shop@web1.example bob@remote.example ||
		    return 1
	done
}

# write_config [KEY=VALUE in [guard]]...: a whole instance under $T.
# LOG_LINES and ALERT_LINES, when set, go into [log] and [alert].
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

gate_pid() {	# the daemon's child whose root is the gate's (the trap runs as nobody too)
	for _gp in $(pgrep -P "$DAEMON_PID" -u nobody); do
		case $(readlink "/proc/$_gp/root") in *gate-root) echo "$_gp" ;; esac
	done
}

tables() { in_host nft list tables 2>/dev/null; }
