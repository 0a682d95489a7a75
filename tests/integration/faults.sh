#!/bin/bash
# Faults injected into a running fence, in the tests' namespaces:
#   kill -9 under a flood and live MTA traffic, then a restart;
#   kill -STOP with a tiny queue (drops counted, nothing leaks), then -CONT;
#   the events file deleted, then its disk full, then room again.
# Processes are signalled by PID only.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"
cp "$BUILD/bench/sgload" "$T/sgload" && chmod 0755 "$T/sgload"

setup_net
start_mx 25
write_config "action = reject" "queue_maxlen = 8"

QUIET_UID=3004	# a web user who is not flooding
connects() { out=$(as_uid "$1" "$T/sgprobe" connect -q -t 2000 $MX4 25) && case $out in connected*) ;; *) false ;; esac; }
refused() { out=$(as_uid "$1" "$T/sgprobe" connect -t 2000 $MX4 25); case $out in refused*) ;; *) echo "$out"; false ;; esac; }
# With no daemon on the queue the kernel drops the SYN (no bypass, fail
# closed): the client times out. "refused" would be some other rule, and an
# error from the probe is no evidence at all: both fail.
dropped() {
	out=$(as_uid "$1" "$T/sgprobe" connect -t 700 $MX4 25)
	rc=$?
	case $rc:$out in 3:timeout*) return 0 ;; esac
	echo "expected a timeout (SYN dropped), got exit $rc: $out"
	return 1
}
status_num() { sg status --json | jq -r ".$1"; }
smtpguard_tables() { tables | grep -c 'smtpguard'; }
trap_listeners() { in_host ss -Hltn "sport = :10025" | wc -l; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat"; }

# --- kill -9 under a flood, with an MTA flow open --------------------------
start_daemon || { fail "smtpguardd starts"; finish; }
ip netns exec "$HOST_NS" setpriv --reuid=$MTA_UID --regid=$MTA_UID --clear-groups \
    "$T/sgprobe" hold -t 3000 $MX4 25 "$T/poke" >"$T/hold.out" 2>&1 &
HOLD_PID=$!
PIDS="$PIDS $HOLD_PID"
wait_for "the MTA flow" grep -q connected "$T/hold.out"
ip netns exec "$HOST_NS" setpriv --reuid=$WEB_UID --regid=$WEB_UID --clear-groups \
    "$T/sgload" connect -c 4 -d 6 -t 1000 $MX4 25 >"$T/flood.json" 2>&1 &
FLOOD_PID=$!
PIDS="$PIDS $FLOOD_PID"
sleep 1
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
check "with the daemon dead the table stays (fail closed)" test "$(smtpguard_tables)" = 1
check "with the daemon dead the MTA still delivers" connects $MTA_UID
# The flooder was put in @refused_uids before the kill: the kernel still
# resets it until its element's timeout; any other web user is dropped.
check "with the daemon dead a web user does not get through" dropped $QUIET_UID
check "with the daemon dead the flooding uid is still reset in the kernel" refused $WEB_UID
touch "$T/poke"
check "with the daemon dead an established MTA flow lives on" \
    wait_for "the MTA flow's NOOP" grep -q alive "$T/hold.out"
wait_for "the trap to follow its parent" test "$(trap_listeners)" = 0
check "the trap dies with the daemon: no listener left" test "$(trap_listeners)" = 0
start_daemon || fail "smtpguardd restarts over its own table"
check "after the restart there is one smtpguard table" test "$(smtpguard_tables)" = 1
check "after the restart one trap listener per family (nothing leaked)" \
    test "$(trap_listeners)" = 2
check "after the restart a web user is refused at once" refused $WEB_UID
check "after the restart decisions are counted again" test "$(status_num decisions.reject)" -ge 1
wait "$FLOOD_PID"
check "not one flood attempt connected, before, during or after" \
    jq -e '.ok == 0 and .connects > 0' "$T/flood.json"
echo quit >"$T/poke"
wait "$HOLD_PID"
check "the MTA flow opened before the crash ends cleanly" grep -q alive "$T/hold.out"

# --- kill -STOP with an 8-packet queue -----------------------------------------
# The flooder is still reset in the kernel for the rest of its window; the
# queue is tested with a user who was not flooding.
kill -STOP "$DAEMON_PID"
check "with the daemon stopped the flooding uid is still reset in the kernel" refused $WEB_UID
ip netns exec "$HOST_NS" setpriv --reuid=$QUIET_UID --regid=$QUIET_UID --clear-groups \
    "$T/sgload" connect -c 16 -n 48 -t 700 $MX4 25 >"$T/many.json" 2>&1 &
MANY_PID=$!
PIDS="$PIDS $MANY_PID"
check "with the daemon stopped the MTA still delivers" connects $MTA_UID
sleep 1
kill -CONT "$DAEMON_PID"
wait "$MANY_PID"
check "no connection got through while the daemon was stopped" \
    jq -e '.ok == 0 and .connects == 48' "$T/many.json"
check "the kernel's queue drops are counted in status" test "$(status_num queue_dropped)" -gt 0
check "after SIGCONT the daemon decides again" refused $QUIET_UID

# --- the events file deleted; then a full disk; then room again --------------
rm -f "$T/events.jsonl"
check "with the events file deleted the fence holds" refused $QUIET_UID
sleep 1.1	# the path is checked at most once a second
refused $QUIET_UID >/dev/null
check "the events file is created again and written" \
    wait_for "a new events file" grep -q '"event":"attempt"' "$T/events.jsonl"
stop_daemon
# A 64 KiB tmpfs in a mount namespace of the daemon's own; seen through /proc.
mkdir -p "$T/small"
write_config "action = reject"
sed -i "s|^file = .*|file = $T/small/events.jsonl|" "$T/smtpguard.conf"
nsenter --net="/run/netns/$HOST_NS" unshare -m --propagation private sh -c \
    "mount -t tmpfs -o size=64k tmpfs '$T/small' && exec '$BUILD/smtpguardd' -f -c '$T/smtpguard.conf'" \
    >>"$T/daemon.log" 2>&1 &
DAEMON_PID=$!
PIDS="$PIDS $DAEMON_PID"
wait_for "smtpguardd on a small disk" sg status || fail "smtpguardd starts with its log on a small tmpfs"
SMALL=/proc/$DAEMON_PID/root$T/small
dd if=/dev/zero of="$SMALL/fill" bs=4k count=64 2>/dev/null	# stops at ENOSPC
# Lines go on filling the events file's last page first: a few attempts more.
for _ in 1 2 3 4 5 6 7 8 9 10 11 12; do refused $WEB_UID >/dev/null; done
check "with the disk full the fence holds" refused $WEB_UID
check "lost event lines are counted" test "$(status_num events_lost)" -ge 1
check "the daemon warns that the event log cannot be written" \
    grep -q 'cannot write the event log' "$T/daemon.log"
before=$(cpu_ticks)
sleep 2
check "with the disk full the daemon does not spin (under 0.1 s of CPU in 2 s)" \
    test $(( $(cpu_ticks) - before )) -lt 10
rm -f "$SMALL/fill"
sleep 1.1
refused $WEB_UID >/dev/null
check "with room again, attempts are written again" \
    wait_for "a written attempt" grep -q '"event":"attempt"' "$SMALL/events.jsonl"
check "the daemon says the log is written again" grep -q 'written again' "$T/daemon.log"
stop_daemon
finish
