#!/bin/sh
# detect_any_port = yes: SMTP spoken to a port nobody fences (2525) is reset
# and logged with proto "smtp"; the same user's HTTP passes byte-identical.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"

setup_net
start_mx 25 2525 2465
mkdir -p "$T/www"
head -c 300000 /dev/urandom >"$T/www/blob"
ip netns exec "$MX_NS" /usr/bin/python3 -m http.server --bind 192.0.2.25 --directory "$T/www" 80 \
    >"$T/http.out" 2>&1 &
PIDS="$PIDS $!"
: >"$T/exceptions.conf"
write_config "detect_any_port = yes" "mail_relays = smtp.relay.example, *.mailer.example"
start_daemon || { cat "$T/daemon.log"; fail "smtpguardd starts with detect_any_port"; finish; }
wait_for "http server" sh -c "ip netns exec $HOST_NS /usr/bin/python3 -c 'import socket; socket.create_connection((\"192.0.2.25\", 80), 1)'"

as_uid $WEB_UID swaks --server $MX4 --port 2525 --from bot@example.org --to x@example.net \
    >"$T/swaks.out" 2>&1
check "SMTP on port 2525 is reset at the greeting" sh -c \
    "! grep -q '<-  250 2.0.0 queued' '$T/swaks.out' && ! grep -q 'MAIL FROM' '$T/swaks.out'"
anyport_logged() {
	jq_any --arg uid $WEB_UID 'select(.event == "attempt" and .action == "reject" and
	    .proto == "smtp" and .uid == ($uid | tonumber) and .dst_port == 2525 and
	    (.exe | endswith("perl")))' "$T/events.jsonl"
}
check "it is logged with proto smtp and its attribution" wait_for "anyport event" anyport_logged
before=$(sg status --json | jq .packets)
as_uid $WEB_UID /usr/bin/python3 -c "
import hashlib, sys, urllib.request
data = urllib.request.urlopen('http://192.0.2.25/blob', timeout=5).read()
print(hashlib.sha256(data).hexdigest())" >"$T/http.sum" 2>&1
after=$(sg status --json | jq .packets)
check "HTTP to port 80 passes byte-identical" \
    [ "$(cat "$T/http.sum")" = "$(sha256sum <"$T/www/blob" | cut -d' ' -f1)" ]
echo "info: userspace packets for one HTTP flow of 300 KB: $((after - before))"
check "an HTTP flow costs a bounded number of userspace trips ($((after - before)))" \
    [ $((after - before)) -le 8 ]
mta_direct() { out=$(as_uid $MTA_UID "$T/sgprobe" connect -q $MX4 2525) && case $out in connected*) ;; *) false ;; esac; }
check "the MTA reaches port 2525 untouched" mta_direct


# TLS: passes, unless its SNI names a configured mail relay.
tls_to() { as_uid $WEB_UID timeout 5 openssl s_client -connect $MX4:2465 -servername "$1" </dev/null >/dev/null 2>&1; }
tls_to smtp.relay.example
tls_to out.mailer.example
tls_to www.example.net
relay_logged() {
	[ "$(jq -c 'select(.event == "attempt" and .proto == "smtp-tls")' "$T/events.jsonl" | wc -l)" -eq 2 ] &&
	    jq_any 'select(.proto == "smtp-tls" and .tls_sni == "smtp.relay.example" and .dst_port == 2465)' "$T/events.jsonl" &&
	    jq_any 'select(.proto == "smtp-tls" and .tls_sni == "out.mailer.example")' "$T/events.jsonl"
}
check "TLS to a named mail relay is reset and logged with its SNI" wait_for "relay events" relay_logged
check "TLS to any other name passes unlogged" sh -c "! grep -q www.example.net '$T/events.jsonl'"
finish
