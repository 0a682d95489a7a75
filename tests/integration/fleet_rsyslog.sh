#!/bin/sh
# Events of a fleet, collected by real rsyslog with the shipped configuration
# (conf/rsyslog-smtpguard-forward.conf, conf/rsyslog-smtpguard-collector.conf)
# in this test's own namespaces: web host B is netns.sh's host namespace,
# where a real smtpguardd refuses a spammer's direct-MX connections; web host
# A is a namespace of its own whose event log the test writes in the daemon's
# format; the collector is a third namespace. Each host's rsyslog forwards its
# events file over RELP (through a disk-assisted queue) to the collector,
# which writes them per host. Checks: `top --by host --by user` on the
# collector names B's spammer; with the collector down for 10 s while both
# hosts go on, every event arrives, once. Every rsyslogd runs with its own
# config (-f), pid file (-i) and work directory, listens only on this test's
# documentation addresses, and is stopped by its PID; the host's own syslog is
# never touched.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"

RSYSLOGD=/usr/sbin/rsyslogd
[ -x "$RSYSLOGD" ] && find /usr/lib -name omrelp.so 2>/dev/null | grep -q . ||
    { fail "rsyslog and rsyslog-relp not installed (scripts/deps check installs them)"; finish; }

A_NS=sg-weba-$$
C_NS=sg-coll-$$
C_B=192.0.2.130		# the collector, on its link to host B (192.0.2.129)
C_A=192.0.2.134		# the collector, on its link to host A (192.0.2.133)
OUTAGE=10		# seconds the collector is down
SPAM_FIRST=30		# the spammer's attempts before the outage, and during it
SPAM_DURING=20
HOSTS=$T/coll/hosts	# where the collector writes, one folder per host

# --- the three hosts and their links ---------------------------------------
setup_net		# host B (HOST_NS, 192.0.2.1) and the stand-in MX
netns_add "$A_NS"
netns_add "$C_NS"
ip link add sg-b$$ netns "$HOST_NS" type veth peer name sg-cb$$ netns "$C_NS" &&
    ip link add sg-a$$ netns "$A_NS" type veth peer name sg-ca$$ netns "$C_NS" ||
    { fail "veth pairs to the collector"; finish; }
in_host ip addr add 192.0.2.129/30 dev sg-b$$
ip netns exec "$C_NS" ip addr add $C_B/30 dev sg-cb$$
ip netns exec "$A_NS" ip addr add 192.0.2.133/30 dev sg-a$$
ip netns exec "$C_NS" ip addr add $C_A/30 dev sg-ca$$
for l in "$HOST_NS sg-b$$" "$C_NS sg-cb$$" "$A_NS sg-a$$" "$C_NS sg-ca$$"; do
	set -- $l
	ip netns exec "$1" ip link set "$2" up
done

# --- rsyslog: the shipped files, with this test's paths and addresses -------
# main FILE WORKDIR HOSTNAME SNIPPET: a whole rsyslog.conf around a snippet.
main_conf() {
	mkdir -p "$2"
	printf 'global(workDirectory="%s" localHostname="%s")\ninclude(file="%s")\n' \
	    "$2" "$3" "$4" >"$1"
}
forward_conf() {	# forward_conf EVENTS COLLECTOR OUT
	sed -e "s|/var/log/smtpguard/events.jsonl|$1|" -e "s|collector.example|$2|" \
	    "$ROOT/conf/rsyslog-smtpguard-forward.conf" >"$3"
}
forward_conf "$T/events.jsonl" $C_B "$T/fwd-b.conf"
main_conf "$T/rs-b.conf" "$T/rs-b" webb "$T/fwd-b.conf"
mkdir -p "$T/a"
: >"$T/a/events.jsonl"
forward_conf "$T/a/events.jsonl" $C_A "$T/fwd-a.conf"
main_conf "$T/rs-a.conf" "$T/rs-a" weba "$T/fwd-a.conf"
# the collector: one listener per link address, nowhere else
sed -e "s|/var/log/smtpguard/hosts/|$HOSTS/|" \
    -e "s|^input(type=\"imrelp\" port=\"2514\"\(.*\))|input(type=\"imrelp\" port=\"2514\" address=\"$C_B\"\1)\ninput(type=\"imrelp\" port=\"2514\" address=\"$C_A\"\1)|" \
    "$ROOT/conf/rsyslog-smtpguard-collector.conf" >"$T/coll.conf"
mkdir -p "$HOSTS"
main_conf "$T/rs-c.conf" "$T/rs-c" collector "$T/coll.conf"

for c in rs-a rs-b rs-c; do
	check "rsyslogd accepts the $c configuration" "$RSYSLOGD" -N1 -f "$T/$c.conf"
done

# start_rsyslog NS NAME: rsyslogd -n in the namespace; its PID in NAME_PID.
start_rsyslog() {
	ip netns exec "$1" "$RSYSLOGD" -n -f "$T/$2.conf" -i "$T/$2.pid" \
	    >>"$T/$2.log" 2>&1 &
	eval "${2#rs-}_PID=$!"
	PIDS="$PIDS $!"
}
stop_rsyslog() {	# stop_rsyslog PID: SIGTERM, and wait for it
	kill -TERM "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
listening() { ip netns exec "$C_NS" ss -Htln "sport = :2514" | grep -c . | grep -qx 2; }

start_rsyslog "$C_NS" rs-c
wait_for "the collector listening on both links" listening ||
    { fail "the collector starts" "$(cat "$T/rs-c.log")"; finish; }
check "the collector listens only on its link addresses" sh -c \
    "ip netns exec $C_NS ss -Htln 'sport = :2514' | awk '{print \$4}' | sort |
    tr '\n' ' ' | grep -qx '$C_B:2514 $C_A:2514 '"

# --- host B: a real smtpguardd, and a spammer it refuses --------------------
LOG_LINES="rate = 1000" write_config
start_daemon || { fail "smtpguardd starts"; finish; }
start_rsyslog "$HOST_NS" rs-b
start_rsyslog "$A_NS" rs-a

spam() {	# spam N: N direct-MX connections by the web user, each refused
	for _ in $(seq "$1"); do
		as_uid $WEB_UID "$T/sgprobe" connect -q -t 1000 $MX4 25 >/dev/null 2>&1
	done
}
# host A: a quiet site user's attempts, as its smtpguardd writes them
A_N=0
a_events() {	# a_events N
	for _ in $(seq "$1"); do
		A_N=$((A_N + 1))
		printf '{"ts":"%s","event":"attempt","action":"reject","rule":"default","uid":1001,"user":"shop","pid":%d,"exe":"/usr/bin/php8.2","family":"ipv4","src_ip":"192.0.2.133","src_port":%d,"dst_ip":"192.0.2.25","dst_port":25,"flow_id":%d}\n' \
		    "$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)" $((2000 + A_N)) $((40000 + A_N)) "$A_N" \
		    >>"$T/a/events.jsonl"
	done
}

spam $SPAM_FIRST
a_events 3
# a full event can be 9 KiB and more (rsyslog cuts at 8 KiB unless told)
printf '{"ts":"%s","event":"daemon","msg":"%s"}\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)" \
    "$(head -c 15000 /dev/zero | tr '\0' x)" >>"$T/a/events.jsonl"
attempts_b() { grep -c '"event":"attempt"' "$T/events.jsonl"; }
check "host B's smtpguardd logged the spammer's $SPAM_FIRST attempts" \
    sh -c "[ \$(grep -c '\"uid\":$WEB_UID,' '$T/events.jsonl') -ge $SPAM_FIRST ]"

# collected FILE LOCAL: the collected lines, with the host field taken out, equal
# the local ones (sorted: none lost, none extra, none twice)
same_lines() {
	[ -f "$1" ] || return 1
	sed 's/^{"host":"[^"]*",/{/' "$1" | sort >"$T/got"
	sort "$2" >"$T/want"
	cmp -s "$T/got" "$T/want"
}
wait_for_long same_lines "$HOSTS/webb/events.jsonl" "$T/events.jsonl"
wait_for_long same_lines "$HOSTS/weba/events.jsonl" "$T/a/events.jsonl"

# The collector runs no smtpguardd: a config for the CLI alone, its log never read.
printf '[guard]\nmta_users = %s\n[log]\nfile = %s/none.jsonl\nsyslog = no\n' $MTA_UID "$T" \
    >"$T/collector.conf"
SG_C() { ip netns exec "$C_NS" "$BUILD/smtpguard" -c "$T/collector.conf" "$@"; }
top_names_spammer() {
	SG_C top --by host --by user --json "$HOSTS" >"$T/top.json" || return 1
	jq -e '.[0].host == "webb" and (.[0].user | endswith("('$WEB_UID')")) and
	    .[0].attempts >= '$SPAM_FIRST' and
	    ([.[] | select(.host == "weba")] == [.[] | select(.host == "weba" and
	    .user == "shop(1001)" and .attempts == 3)]) and
	    ([.[] | select(.host == "weba")] | length) == 1' "$T/top.json" >/dev/null ||
	    { cat "$T/top.json"; return 1; }
}
check "the collector's top --by host --by user names the spammer on host B" top_names_spammer
# Nor does it need a config at all: with none installed, log and top read the files given.
if [ -e /etc/smtpguard/smtpguard.conf ]; then
	echo "info: /etc/smtpguard/smtpguard.conf exists here: the no-config check is not run"
else
	check "with no smtpguard.conf installed, the collector's top reads the files it is given" sh -c \
	    "ip netns exec $C_NS '$BUILD/smtpguard' top --by host --json '$HOSTS' | jq -e 'any(.[]; .host == \"webb\")' >/dev/null"
fi
check "log on the collector shows each event with its host" sh -c \
    "ip netns exec $C_NS '$BUILD/smtpguard' -c '$T/collector.conf' log -n 3 --host weba --event attempt '$HOSTS' |
    grep -c '  weba  shop(1001) ' | grep -qx 3"

# --- the collector down for $OUTAGE s while both hosts go on ----------------
stop_rsyslog "$c_PID"
check "the collector is down" sh -c "! kill -0 $c_PID 2>/dev/null && ! ip netns exec $C_NS ss -Htln 'sport = :2514' | grep -q ."
t0=$(date +%s)
spam $SPAM_DURING
a_events 5
sleep $((OUTAGE - ($(date +%s) - t0)))
check "the collector was down for ${OUTAGE}s" sh -c "[ $(($(date +%s) - t0)) -ge $OUTAGE ]"
start_rsyslog "$C_NS" rs-c
wait_for "the collector back" listening
arrived() {
	wait_for_long same_lines "$1" "$2" && return 0
	echo "lines missing (<) or extra/doubled (>) on the collector:"
	diff "$T/want" "$T/got" | grep '^[<>]' | cut -c1-160 | head -n 5
	return 1
}
check "host B's rsyslog found the collector gone, and kept the events" \
    grep -q "forwarding to server $C_B:2514 - suspending" "$T/rs-b.log"
check "host B: every event of the outage arrives, once" \
    arrived "$HOSTS/webb/events.jsonl" "$T/events.jsonl"
check "host A: every event of the outage arrives, once" \
    arrived "$HOSTS/weba/events.jsonl" "$T/a/events.jsonl"
check "top on the collector counts the outage's attempts too" sh -c \
    "ip netns exec $C_NS '$BUILD/smtpguard' -c '$T/collector.conf' top --by host --by user \
    --json '$HOSTS' | jq -e '.[0].host == \"webb\" and .[0].attempts == $(attempts_b)' >/dev/null"
SG_C top --by host --by user "$HOSTS" >"$T/top.txt" 2>&1
sed 's/^/    /' "$T/top.txt"
[ -z "${KEEP_LOGS:-}" ] || cp "$T"/rs-*.log "$KEEP_LOGS"/
finish
