#!/bin/bash
# Resource bounds under hostile input: a process with a 1 MiB command line
# is named with its cmdline cut at CMDLINE_MAX; 100,000 attempts, cycling
# through every ephemeral source port, leave the daemon deciding, its memory flat and its log
# bounded by the flood limiter. (The trap's slowloris and session bounds are
# trap.sh's.) Processes are signalled by PID only.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"
cp "$BUILD/bench/sgload" "$T/sgload" && chmod 0755 "$T/sgload"
setup_net
start_mx 25
write_config "action = reject"
start_daemon || { fail "smtpguardd starts"; finish; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$DAEMON_PID/status"; }
rss0=$(rss_kib)

# Eight arguments of 128 KiB: execve's per-string limit, 1 MiB in all.
big=$(head -c 131000 /dev/zero | tr '\0' x)
as_uid $WEB_UID /usr/bin/python3 -c '
import socket, sys
s = socket.socket()
s.settimeout(2)
try:
    s.connect(("192.0.2.25", 25))
    print("connected")
except ConnectionRefusedError:
    print("refused")
' "$big" "$big" "$big" "$big" "$big" "$big" "$big" "$big" >"$T/big.out" 2>&1
check "a 1 MiB command line is refused like any other" grep -q '^refused$' "$T/big.out"
check "its event names python3 with the cmdline cut at 4096 bytes" \
    jq_any 'select(.event == "attempt" and (.exe | test("python3")) and
        (.cmdline | length) <= 4096 and (.cmdline | length) > 4000)' "$T/events.jsonl"

log0=$(stat -c %s "$T/events.jsonl")
as_uid $WEB_UID "$T/sgload" connect -c 8 -n 100000 -t 2000 $MX4 25 >"$T/flood.json"
check "100,000 attempts over every ephemeral source port: every one refused" \
    jq -e '.refused == 100000' "$T/flood.json"
check "every one decided and counted" \
    test "$(sg status --json | jq '.decisions.reject')" -ge 100001
check "the daemon still decides at once afterwards" \
    sh -c "ip netns exec $HOST_NS setpriv --reuid=$WEB_UID --regid=$WEB_UID --clear-groups \
    $T/sgprobe connect -t 2000 $MX4 25 | grep -q ^refused"
rss1=$(rss_kib)
check "its memory stayed flat: $rss0 KiB before, $rss1 KiB after (bound: +8 MiB)" \
    test "$rss1" -le $((rss0 + 8192))
check "the flood limiter kept the log small: $(( $(stat -c %s "$T/events.jsonl") - log0 )) bytes" \
    test $(( $(stat -c %s "$T/events.jsonl") - log0 )) -lt 200000
finish
