#!/bin/sh
# Every attempt of a flood refused in the kernel is counted, exactly, while
# its uid leaves @refused_uids under traffic: with a one-second flood window
# the uid leaves and comes back every second while 8 clients keep sending,
# and exception changes (of another uid) empty the map mid-flood as well.
# Each removal races the SYNs the kernel is resetting at that moment; the
# attempt lines, the summaries and the kernel's summaries in the log, and
# status's decisions, must add up to exactly the resets the clients saw.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"

setup_net
start_mx 25
: >"$T/exceptions.conf"
FLOOD_UID=3005
OTHER_UID=3006
cp "$BUILD/bench/sgload" "$T/sgload" && chmod 0755 "$T/sgload"
LOG_LINES="rate = 5
window = 1" write_config "allow_local = yes"
start_daemon || { fail "smtpguardd starts"; finish; }

status_num() { sg status --json | jq -r ".$1"; }
is() { [ "$1" = "$2" ] || { echo "got $1, expected $2"; return 1; }; }
logged_attempts() {
	jq -s --argjson uid $FLOOD_UID '[.[] | select(.uid == $uid and .action == "reject") |
	    if .event == "summary" then .suppressed elif .event == "attempt" then 1 else 0 end] |
	    add // 0' "$T/events.jsonl"
}

dec0=$(status_num decisions.reject)
ip netns exec "$HOST_NS" setpriv --reuid=$FLOOD_UID --regid=$FLOOD_UID --clear-groups \
    "$T/sgload" connect -c 8 -d 4 -t 1000 $MX4 25 >"$T/flood.json" &
LOAD_PID=$!
PIDS="$PIDS $LOAD_PID"
# Mid-flood flushes, one after another: each exception change first empties
# @refused_uids, and the flood puts the uid back at its next attempt.
changes=0
while kill -0 $LOAD_PID 2>/dev/null; do
	sg allow $OTHER_UID >/dev/null && sg revoke $OTHER_UID >/dev/null &&
	    changes=$((changes + 2))
done
wait $LOAD_PID
check "the flood ran, with exception changes in the middle of it" test $changes -ge 4
echo "info: $changes exception changes during the flood"
made=$(jq -r '.refused' "$T/flood.json")
check "not one attempt connected or went unanswered, every one was reset" \
    jq -e '.ok == 0 and .timeout == 0 and .other == 0 and .refused > 1000' "$T/flood.json"
check "the kernel took part" test "$(status_num kernel_refused)" -gt 0
out_of_kernel() { is "$(status_num kernel_refusing)" 0; }
check "the uid has left the kernel once its last window is over" wait_for_long out_of_kernel
settled() { is "$(logged_attempts)" "$made"; }
check "the log accounts for exactly the $made attempts made" wait_for_long settled
check "... and so do status's decisions" \
    is "$(( $(status_num decisions.reject) - dec0 ))" "$made"
check "no count was lost" is "$(status_num kernel_lost)" 0
finish
