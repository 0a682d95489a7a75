#!/bin/sh
# The fence under attack, in the tests' namespaces:
#   a session a web user opened before the fence is cut and logged once it
#   starts, and so is an excepted user's session when the exception is revoked;
#   raw SYN-ACKs from "port 25" make the host's stack answer with resets that
#   own no socket and no conntrack entry: they must not loop through the
#   daemon; an untracked (notrack) flow still gets a final verdict;
#   a sender retrying every 20 ms across a stop and a start never connects;
#   an admin's output DNAT (the host's own address, or port 2526, to the mx)
#   never carries a web user's session there, while the MTA still delivers;
#   a connection the far side opens to a site user's server is answered;
#   and a flood is refused in the kernel with every attempt still counted.
# The admin tables are the test's own, in the host namespace it made.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"

setup_net
start_mx 25
: >"$T/exceptions.conf"
write_config "allow_local = yes"

status_num() { sg status --json | jq -r ".$1"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat"; }
connects() {	# connects UID ADDR PORT
	out=$(as_uid "$1" "$T/sgprobe" connect -q -t 2000 "$2" "$3") &&
	    case $out in connected*) ;; *) false ;; esac
}
refused_at_once() {	# a reset within the timeout, not a silent drop
	out=$(as_uid "$1" "$T/sgprobe" connect -t 1000 "$2" "$3")
	case $out in refused*) return 0 ;; esac
	echo "$out"
	return 1
}
# hold NAME UID ADDR PORT: a session kept open. Once $T/NAME exists it sends a
# NOOP every 20 ms (the uid cannot remove the file) until the server stops answering.
hold() {
	ip netns exec "$HOST_NS" setpriv --reuid="$2" --regid="$2" --clear-groups \
	    "$T/sgprobe" hold -t 1500 "$3" "$4" "$T/$1" >"$T/$1.out" 2>&1 &
	PIDS="$PIDS $!"
	wait_for "$1 connected" grep -q connected "$T/$1.out"
}
poke() { echo noop >"$T/$1.tmp" && mv "$T/$1.tmp" "$T/$1"; }
answered() { wait_for "$1 answers" grep -q '^alive' "$T/$1.out"; }
cut() { wait_for "$1 is cut" grep -q '^dead' "$T/$1.out"; }
logged_rule() {	# logged_rule UID RULE
	jq_any --argjson uid "$1" --arg rule "$2" \
	    'select(.event == "attempt" and .uid == $uid and .rule == $rule and .action == "reject")' \
	    "$T/events.jsonl"
}

# --- a session opened before the fence -----------------------------------------
# Conntrack already runs, as on any host with ufw, firewalld or docker: the
# session is tracked as established before the fence exists.
in_host nft -f - <<'NFT' || fail "the admin's conntrack table is added"
table inet sgtest_ct {
	chain out {
		type filter hook output priority 0; policy accept;
		ct state established counter
	}
}
NFT
hold early $WEB_UID $MX4 25	# not under check: $! must reach PIDS
check "with no fence yet a web user's session opens" grep -q connected "$T/early.out"
poke early
check "... and is answered" answered early
start_daemon || { fail "smtpguardd starts"; finish; }
poke early
check "once the fence is up, the session opened before it is cut at its next packet" cut early
check "... and logged as established-before-fence, with the web user's uid" \
    wait_for "event" logged_rule $WEB_UID established-before-fence

# --- a plain exception revoked while its session is open -------------------------
sg allow $EXEMPT_UID >/dev/null
hold revoked $EXEMPT_UID $MX4 25
check "an excepted user's session opens" grep -q connected "$T/revoked.out"
poke revoked
check "... and lives while the exception holds" answered revoked
sg revoke $EXEMPT_UID >/dev/null
poke revoked
check "revoking the exception cuts its live session" cut revoked

# --- a new connection on an old flow's conntrack entry ----------------------------
# Conntrack hands a SYN from the same ports the entry an earlier flow left
# behind, with its ct mark: one the far side reset (closed, 10 s), one a
# verdict cut (still established). The SYN is decided afresh, by its own
# sender, and counted.
cat >"$T/takeover.py" <<'PY'
import socket, struct, sys

if sys.argv[1] == "reset-server":	# reset-server PORT: reset each client at its first byte
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", int(sys.argv[2])))
    s.listen(16)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        print("accept", flush=True)
        c.settimeout(5)
        try:
            c.recv(1)
        except OSError:
            pass
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
else:	# connect SPORT HOST PORT: from that source port
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind(("0.0.0.0", int(sys.argv[2])))
    c.settimeout(2)
    try:
        c.connect((sys.argv[3], int(sys.argv[4])))
    except ConnectionRefusedError:
        print("refused")
        sys.exit(1)
    except socket.timeout:
        print("timeout")
        sys.exit(3)
    print("connected")
    try:
        c.sendall(b"x")
        c.recv(1)
        print("closed")
    except ConnectionResetError:
        print("reset")
PY
ip netns exec "$MX_NS" /usr/bin/python3 "$T/takeover.py" reset-server 465 >"$T/reset.out" 2>&1 &
RESET_PID=$!
PIDS="$PIDS $RESET_PID"
wait_for "the resetting mx" grep -q ready "$T/reset.out"
sg allow $EXEMPT_UID --port 465 >/dev/null	# narrowed: decided by the daemon, ct mark allow
as_uid $EXEMPT_UID /usr/bin/python3 "$T/takeover.py" connect 47001 $MX4 465 >"$T/takeover1.out" 2>&1
check "an excepted user's flow is allowed, then reset by the far side" \
    grep -qx reset "$T/takeover1.out"
dec0=$(status_num decisions.reject)
as_uid $WEB_UID /usr/bin/python3 "$T/takeover.py" connect 47001 $MX4 465 >"$T/takeover2.out" 2>&1
check "a web user's SYN from the same ports, on that entry and its allow, is refused at once" \
    grep -qx refused "$T/takeover2.out"
check "... never reaching the mx" test "$(grep -c accept "$T/reset.out")" = 1
kill "$RESET_PID"
check "... and decided as its own attempt, logged with the web user's uid" \
    wait_for "event" logged_rule $WEB_UID default
check "... counted once" test "$(( $(status_num decisions.reject) - dec0 ))" = 1
sg revoke $EXEMPT_UID >/dev/null
# The session the revoke cut above left its entry behind, marked reject
# (established; closed, if the mx has given up on it since).
cut_port=$(in_host conntrack -L -p tcp -d $MX4 --dport 25 --mark $((2 << 20))/$((7 << 20)) \
    2>/dev/null | sed -n 's/.* sport=\([0-9]*\) dport=25 .*/\1/p' | head -n 1)
check "the cut session's entry is still there, marked reject" test -n "$cut_port"
dec0=$(status_num decisions.reject)
as_uid $WEB_UID /usr/bin/python3 "$T/takeover.py" connect "${cut_port:-1}" $MX4 25 >"$T/takeover3.out" 2>&1
check "a SYN on a cut session's entry is refused at once" grep -qx refused "$T/takeover3.out"
check "... and counted as an attempt, not reset unseen by its old mark" \
    test "$(( $(status_num decisions.reject) - dec0 ))" = 1

# --- raw SYN-ACKs from port 25: the host answers with socketless resets ----------
cat >"$T/synack.py" <<'PY'
import socket, struct, sys

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

def tcp(sport, dport, seq):	# SYN+ACK, no options
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 5 << 4, 0x12, 65535, 0, 0)

n = int(sys.argv[1])
s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)
s6.setsockopt(socket.IPPROTO_IPV6, 7, 16)	# IPV6_CHECKSUM: the kernel sums at offset 16
src4, dst4 = socket.inet_aton("192.0.2.25"), socket.inet_aton("192.0.2.1")
for i in range(n):
    dport = 40000 + i
    h = tcp(25, dport, 1000 + i)
    pseudo = src4 + dst4 + struct.pack("!BBH", 0, 6, len(h))
    c = csum(pseudo + h)
    s4.sendto(h[:16] + struct.pack("!H", c) + h[18:], ("192.0.2.1", 0))
    s6.sendto(tcp(25, dport, 1000 + i), ("2001:db8::1", 0))
print("sent", 2 * n)
PY
N=100
packets0=$(status_num packets)
ticks0=$(cpu_ticks)
in_mx python3 "$T/synack.py" $N >"$T/synack.out" 2>&1
check "the mx sent $N IPv4 and $N IPv6 SYN-ACKs from port 25" grep -q "^sent $((2 * N))" "$T/synack.out"
sleep 2
packets=$(( $(status_num packets) - packets0 ))
ticks=$(( $(cpu_ticks) - ticks0 ))
echo "info: after $((2 * N)) spoofed SYN-ACKs: $packets packets through the daemon, $ticks CPU ticks in 2 s"
check "the host's resets do not loop through the daemon ($packets queued for $((2 * N)) SYN-ACKs)" \
    test "$packets" -le $((2 * N))
check "the daemon does not spin ($ticks ticks of CPU in 2 s, under 20)" test "$ticks" -lt 20
check "after the SYN-ACKs a web user is still refused at once" refused_at_once $WEB_UID $MX4 25
check "after the SYN-ACKs the MTA still delivers" connects $MTA_UID $MX4 25

# A connection the far side opens (here from its port 587) to a site user's
# server is answered in the kernel: no outbound mail, no attempt, no reset.
: >"$T/web.log" && chmod 0666 "$T/web.log"	# the server, as the web user, appends to it
ip netns exec "$HOST_NS" setpriv --reuid=$WEB_UID --regid=$WEB_UID --clear-groups \
    "$T/sgprobe" listen "$T/web.log" :: 8080 >"$T/web.out" 2>&1 &
PIDS="$PIDS $!"
wait_for "the web user's server" grep -q ready "$T/web.out"
packets0=$(status_num packets)
inbound() {
	in_mx python3 -c '
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.0.2.25", 587))
s.settimeout(2)
s.connect(("192.0.2.1", 8080))
print(s.recv(100).decode().strip())
s.sendall(b"QUIT\r\n")
s.recv(100)
s.close()' | grep -q '^220'
}
check "a connection opened from the mx's port 587 to a web user's server is answered" inbound
check "... and none of it went through the daemon" test "$(status_num packets)" = "$packets0"

# --- untracked flows: no conntrack entry to carry a decision ---------------------
in_host nft -f - <<'NFT' || fail "the admin's notrack table is added"
table inet sgtest_notrack {
	chain out {
		type filter hook output priority raw; policy accept;
		tcp dport 25 notrack
	}
}
NFT
packets0=$(status_num packets)
check "untracked: a web user is refused at once" refused_at_once $WEB_UID $MX4 25
check "untracked: ... over IPv6 too" refused_at_once $WEB_UID $MX6 25
check "untracked: the MTA delivers" connects $MTA_UID $MX4 25
sg allow $EXEMPT_UID --port 25 >/dev/null	# narrowed: decided by the daemon, per packet here
check "untracked: a flow the daemon allows gets through, each packet decided" \
    connects $EXEMPT_UID $MX4 25
sg revoke $EXEMPT_UID >/dev/null
sleep 1
packets=$(( $(status_num packets) - packets0 ))
check "untracked: every queued packet got a final verdict ($packets queued)" test "$packets" -le 40
in_host nft delete table inet sgtest_notrack

# --- a sender retrying every 20 ms across a stop and a start ---------------------
mx_accepts() { grep -c '^accept' "$T/mx.log" 2>/dev/null || echo 0; }
accepts0=$(mx_accepts)
cat >"$T/retry.sh" <<RETRY
while [ ! -f "$T/retry.stop" ]; do
	"$T/sgprobe" hold -t 20 $MX4 25 "$T/retry" && break
	sleep 0.02
done
RETRY
ip netns exec "$HOST_NS" setpriv --reuid=$WEB_UID --regid=$WEB_UID --clear-groups \
    sh "$T/retry.sh" >"$T/retry.out" 2>&1 &
RETRY_PID=$!
PIDS="$PIDS $RETRY_PID"
sleep 0.5
stop_daemon
check "stopped by SIGTERM: the table stays" test "$(tables | grep -c 'table inet smtpguard')" = 1
sleep 0.5
start_daemon || fail "smtpguardd starts again over its table"
sleep 0.5
poke retry	# a session that got in during the gap would now send its NOOP
sleep 0.5
touch "$T/retry.stop"
wait "$RETRY_PID"
check "the retrying sender never connected, before, during or after the restart" \
    sh -c "! grep -q -e connected -e alive '$T/retry.out'"
check "the mx saw no connection from it" test "$(mx_accepts)" = "$accepts0"
check "after the restart it is refused at once" refused_at_once $WEB_UID $MX4 25

# --- the admin's output DNAT in front of the fence -------------------------------
in_host nft -f - <<'NFT' || fail "the admin's dnat table is added"
table ip sgtest_nat {
	chain out {
		type nat hook output priority -100; policy accept;
		ip daddr 192.0.2.1 tcp dport 25 dnat to 192.0.2.25
		tcp dport 2526 dnat to 192.0.2.25:25
	}
}
NFT
to_mx_events() {
	jq -c --argjson uid $WEB_UID 'select(.event == "attempt" and .uid == $uid and
	    .action == "reject" and .dst_ip == "192.0.2.25" and .dst_port == 25)' \
	    "$T/events.jsonl" | wc -l
}
mx_events_grew() { [ "$(to_mx_events)" -ge $((events0 + 2)) ]; }
accepts0=$(mx_accepts)
events0=$(to_mx_events)
check "dnat of the host's own address: a web user is refused at once" \
    refused_at_once $WEB_UID 192.0.2.1 25
check "dnat of port 2526 to the mx's port 25: a web user is refused at once" \
    refused_at_once $WEB_UID $MX4 2526
check "the mx saw neither" test "$(mx_accepts)" = "$accepts0"
check "both attempts are logged with the destination they would have reached" \
    wait_for "events" mx_events_grew
check "the MTA delivers through the dnat of the host's own address" connects $MTA_UID 192.0.2.1 25
check "the MTA delivers through the dnat of port 2526" connects $MTA_UID $MX4 2526
sg allow $EXEMPT_UID >/dev/null
exempt_through_dnat() { connects $EXEMPT_UID 192.0.2.1 25 && connects $EXEMPT_UID $MX4 2526; }
check "a plain exception delivers through both" exempt_through_dnat
sg revoke $EXEMPT_UID >/dev/null

# action = trap: a trap is NAT itself; after the admin's NAT it is a reset.
stop_daemon
write_config "allow_local = yes" "action = trap" "trap_port = 10025"
start_daemon || fail "smtpguardd restarts with action = trap"
accepts0=$(mx_accepts)
check "trap mode, dnat of the host's own address: refused at once" \
    refused_at_once $WEB_UID 192.0.2.1 25
check "trap mode, dnat of port 2526: refused at once" refused_at_once $WEB_UID $MX4 2526
check "trap mode: the mx saw neither" test "$(mx_accepts)" = "$accepts0"
check "trap mode: logged with rule after-nat" wait_for "event" logged_rule $WEB_UID after-nat
trapped() { out=$(as_uid $WEB_UID "$T/sgprobe" connect -q -t 2000 $MX4 25) && case $out in connected*) ;; *) false ;; esac; }
check "trap mode: a direct connection to the mx is still trapped, not refused" trapped
check "trap mode: ... and never reaches the mx" test "$(mx_accepts)" = "$accepts0"
check "trap mode: the MTA delivers through the dnat" connects $MTA_UID 192.0.2.1 25
# --- the trap answers only what the fence sent it ---------------------------------
# Connecting to the trap port yourself must not write "evidence" with a chosen envelope.
as_uid $WEB_UID swaks --server 127.0.0.1 --port 10025 --from forged@example.org \
    --to victim@example.net --timeout 3 >"$T/direct.out" 2>&1
no_banner() { ! grep -q '<-  220' "$T/direct.out" && grep -q 'Connected to\|Trying' "$T/direct.out"; }
check "a direct connection to the trap port gets no banner" no_banner
direct_counted() { [ "$(status_num trap_direct)" -ge 1 ]; }
check "... is counted as trap_direct" wait_for "trap_direct" direct_counted
direct_logged() {
	jq_any 'select(.event == "attempt" and .rule == "trap-direct" and .action == "reject" and
	    .dst_port == 10025)' "$T/events.jsonl"
}
check "... and logged as a refused attempt with rule trap-direct" wait_for "event" direct_logged
check "... never as trap evidence with the chosen envelope" \
    sh -c "! grep -q forged@example.org '$T/events.jsonl'"

# --- values that would open the fence are refused on reload, with file:line --------
conf_line() { grep -n "^$1 = " "$T/smtpguard.conf" | cut -d: -f1; }
reload_refused() {	# reload_refused KEY=VALUE PATTERN: the reload fails naming the line
	cp "$T/smtpguard.conf" "$T/good.conf"
	sed -i "/^\[guard\]/a $1" "$T/smtpguard.conf"
	out=$(sg reload 2>&1); rc=$?
	cp "$T/good.conf" "$T/smtpguard.conf"
	[ "$rc" -eq 1 ] && printf '%s\n' "$out" | grep -q "$2" || { echo "rc $rc: $out"; return 1; }
}
sed -i '/^trap_port = /d' "$T/smtpguard.conf"	# the reload tests set it themselves
sg reload >/dev/null || fail "reload without trap_port"
check "reload: trap_port = 25 (a fenced port) is refused with file:line" \
    reload_refused "trap_port = 25" "smtpguard.conf:2: \[guard\] trap_port: 25 is a fenced port"
check "reload: mta_users = 0 (root) is refused with file:line" \
    reload_refused "mta_users = 0" "smtpguard.conf:2: \[guard\] mta_users: '0' is root"
sed -i '/^mta_users = /d' "$T/smtpguard.conf"
check "reload: an unknown mta_users account is named with its line" \
    reload_refused "mta_users = $MTA_UID nosuchmta" \
    "smtpguard.conf:2: \[guard\] mta_users: no account 'nosuchmta'"
write_config "allow_local = yes" "action = trap" "trap_port = 10025"
check "the running state survived the refused reloads" trapped

# --- a literal backslash in a name is not an escape ---------------------------------
cp "$T/sgprobe" "$T/evil\\x1bname"
as_uid $WEB_UID "$T/evil\\x1bname" connect -t 1000 $MX4 25 >/dev/null 2>&1
shows_backslash() { sg log -n 50 | grep -qF 'evil\\x1bname'; }
check "log doubles a literal backslash (\\x1b typed in a name is not an ESC)" \
    wait_for "log line" shows_backslash

# --- a flood is refused in the kernel, and every attempt is still counted -----------
# Past the flood limit a uid the daemon would refuse anyway goes to
# @refused_uids for the rest of its window: its SYNs are reset there, both
# families, and counted on its counter object, whose count the daemon reads
# once the uid has left the map. The log's lines and summaries must add up
# to exactly the attempts the clients made; an exception added mid-flood
# lets the next connect through at once. (kernel_count.sh races the uid's
# removals against a flood still sending.)
FLOOD_UID=3005
cp "$BUILD/bench/sgload" "$T/sgload" && chmod 0755 "$T/sgload"
stop_daemon
LOG_LINES="rate = 5
window = 10" write_config "allow_local = yes"
start_daemon || fail "smtpguardd starts for the flood"
refused_map() { in_host nft list map inet smtpguard refused_uids 2>/dev/null; }
counters() { in_host nft list counters table inet smtpguard 2>/dev/null; }
# The packets counted for FLOOD_UID while it is in the map; nothing if it is not.
element_packets() {
	refused_map | grep -q "elements = { $FLOOD_UID .*: \"refused_$FLOOD_UID\"" &&
	    in_host nft list counter inet smtpguard refused_$FLOOD_UID 2>/dev/null |
	    sed -n 's/.*packets \([0-9]*\) .*/\1/p'
}
# No uid in the map, and no counter object left unread.
no_element() { ! refused_map | grep -q 'elements = ' && ! counters | grep -q 'counter refused_'; }
# Attempts of FLOOD_UID the log accounts for: one per attempt line, and each
# summary's count (its flood key's, and the kernel's).
logged_attempts() {
	jq -s --argjson uid $FLOOD_UID '[.[] | select(.uid == $uid and .action == "reject") |
	    if .event == "summary" then .suppressed elif .event == "attempt" then 1 else 0 end] |
	    add // 0' "$T/events.jsonl"
}
check "a fresh daemon refuses nobody in the kernel" no_element
dec0=$(status_num decisions.reject)
as_uid $FLOOD_UID "$T/sgload" connect -c 4 -n 3000 -t 1000 $MX4 25 >"$T/kflood4.json"
check "flood: not one IPv4 attempt connected, every one refused at once" \
    jq -e '.ok == 0 and .refused == 3000' "$T/kflood4.json"
check "flood: the uid is in @refused_uids" test -n "$(element_packets)"
is() { [ "$1" = "$2" ] || { echo "got $1, expected $2"; return 1; }; }
check "flood: status shows one uid refused in the kernel" is "$(status_num kernel_refusing)" 1
check "flood: status counts every attempt at once, the kernel's too" \
    is "$(( $(status_num decisions.reject) - dec0 ))" 3000
p4=$(element_packets)
as_uid $FLOOD_UID "$T/sgload" connect -c 2 -n 500 -t 1000 $MX6 25 >"$T/kflood6.json"
check "flood: not one IPv6 attempt connected" jq -e '.ok == 0 and .refused == 500' "$T/kflood6.json"
check "flood: every IPv6 attempt was reset in the kernel, counted on the uid's counter" \
    test "$(( $(element_packets) - p4 ))" = 500
check "flood: the element is gone once the uid's window ends" wait_for_long no_element
kernel_summary() {
	jq_any --argjson uid $FLOOD_UID 'select(.event == "summary" and .rule == "kernel" and
	    .uid == $uid and .suppressed > 0 and (has("exe") | not))' "$T/events.jsonl"
}
check "flood: the kernel's share is summarised, with no exe (it saw none)" \
    wait_for "kernel summary" kernel_summary
check "flood: the log accounts for exactly the 3500 attempts made" \
    is "$(logged_attempts)" 3500
check "flood: decisions count every attempt, the kernel's too" \
    is "$(( $(status_num decisions.reject) - dec0 ))" 3500
check "flood: kernel_refused counts the kernel's share" \
    test "$(status_num kernel_refused)" -ge $((3500 - 2 * 5))
check "flood: no count was lost" test "$(status_num kernel_lost)" = 0
as_uid $FLOOD_UID "$T/sgload" connect -c 4 -n 2000 -t 1000 $MX4 25 >"$T/kflood4b.json"
check "flood again: the uid is back in @refused_uids" test -n "$(element_packets)"
sg reload >/dev/null || fail "reload mid-flood"
check "a reload mid-flood empties @refused_uids" no_element
as_uid $FLOOD_UID "$T/sgload" connect -c 4 -n 2000 -t 1000 $MX4 25 >"$T/kflood4c.json"
check "... and the flood puts the uid back" test -n "$(element_packets)"
sg allow $FLOOD_UID --port 25 >/dev/null || fail "an exception for the flooding uid"
check "an exception added mid-flood empties @refused_uids at once" no_element
check "... and the uid's next connect goes through" connects $FLOOD_UID $MX4 25
sg revoke $FLOOD_UID >/dev/null || fail "the flooding uid's exception is revoked"
check "... and once revoked it is refused at once again" refused_at_once $FLOOD_UID $MX4 25
accounted() { is "$(logged_attempts)" $((3500 + 4000 + 1)); }
check "flood: across the reload and the exception every refused attempt is in the log" \
    wait_for_long accounted
check "flood: none of it connected" jq -e -s 'all(.ok == 0)' "$T/kflood4b.json" "$T/kflood4c.json"
as_uid $FLOOD_UID "$T/sgload" connect -c 4 -n 2000 -t 1000 $MX4 25 >/dev/null
check "flood once more: the uid is back in @refused_uids" test -n "$(element_packets)"
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
check "killed mid-flood: its element outlives it (reset in the kernel, fails closed)" \
    refused_at_once $FLOOD_UID $MX4 25
LOG_LINES="rate = 1
window = 300" write_config "allow_local = yes"
start_daemon || fail "smtpguardd starts after a kill mid-flood"
check "a daemon started after a kill mid-flood begins with @refused_uids empty" no_element
# More flooders than the map holds: the one past it stays on the queue path.
u=4000
while [ $u -lt $((4000 + 256 + 1)) ]; do
	as_uid $u "$T/sgload" connect -n 2 -t 1000 $MX4 25 >/dev/null
	u=$((u + 1))
done
check "256 uids flooding at once fill @refused_uids" is "$(status_num kernel_refusing)" 256
check "... the one past them stays on the queue path, counted" \
    test "$(status_num kernel_full)" -ge 1
check "... and is refused there all the same" refused_at_once 4256 $MX4 25

# --- the CLI does not hang on a stopped daemon ---------------------------------------
kill -STOP "$DAEMON_PID"
t0=$(date +%s)
sg status >"$T/stopped.out" 2>&1; rc=$?
t1=$(date +%s)
kill -CONT "$DAEMON_PID"
gives_up() {
	[ "$rc" -eq 1 ] && [ $((t1 - t0)) -le 8 ] && grep -q 'did not answer within 5 s' "$T/stopped.out" ||
	    { echo "rc $rc after $((t1 - t0)) s: $(cat "$T/stopped.out")"; return 1; }
}
check "status gives up on a stopped daemon within its timeout and says why" gives_up
check "... and answers again once it runs" sg status
finish
