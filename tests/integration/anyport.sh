#!/bin/sh
# detect_any_port = yes: SMTP spoken to a port nobody fences (2525) is reset
# and logged with proto "smtp"; the same user's HTTP passes byte-identical;
# TLS whose SNI names a configured mail relay is reset and logged, TLS to any
# other name completes its handshake, unlogged.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"

setup_net
start_mx 25 2525
# A real TLS server on 2465, so that "passes" means a completed handshake.
# One thread per connection: a flow the fence reset at its ClientHello stays
# open on the server's side and must not hold up the next.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 1 \
    -subj /CN=mx.example.net >/dev/null 2>&1
ip netns exec "$MX_NS" /usr/bin/python3 -c '
import socket, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = socket.create_server((sys.argv[3], 2465))
print("ready", flush=True)
def serve(c):
    try:
        with ctx.wrap_socket(c, server_side=True) as t:
            t.recv(1)
    except (OSError, ssl.SSLError):
        pass
while True:
    c, _ = srv.accept()
    c.settimeout(10)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
' "$T/cert.pem" "$T/key.pem" $MX4 >"$T/tls.out" 2>&1 &
PIDS="$PIDS $!"
wait_for "tls server" grep -q ready "$T/tls.out"
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
swaks_rc=$?
# It connected (a swaks that never ran must not pass), then failed before MAIL.
reset_at_greeting() {
	grep -q '^=== Connected to' "$T/swaks.out" && [ "$swaks_rc" -ne 0 ] &&
	    ! grep -q '<-  250 2.0.0 queued' "$T/swaks.out" && ! grep -q 'MAIL FROM' "$T/swaks.out" ||
	    { echo "swaks exit $swaks_rc"; tail -n 4 "$T/swaks.out"; return 1; }
}
check "SMTP on port 2525 is reset at the greeting" reset_at_greeting
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
# tls_to NAME: a handshake with that SNI; its exit status and output are
# kept (s_client exits 0 only once the handshake completed).
tls_to() {
	as_uid $WEB_UID timeout 5 openssl s_client -connect $MX4:2465 -servername "$1" \
	    </dev/null >"$T/tls-$1.out" 2>&1
	echo $? >"$T/tls-$1.rc"
}
tls_to smtp.relay.example
tls_to out.mailer.example
tls_to www.example.net
tls_reset() {	# tls_reset NAME: the client failed on a reset, never completed
	[ "$(cat "$T/tls-$1.rc")" -ne 0 ] && grep -q 'errno=104' "$T/tls-$1.out" ||
	    { echo "$1: exit $(cat "$T/tls-$1.rc")"; tail -n 3 "$T/tls-$1.out"; return 1; }
}
relay_logged() {
	[ "$(jq -c 'select(.event == "attempt" and .proto == "smtp-tls")' "$T/events.jsonl" | wc -l)" -eq 2 ] &&
	    jq_any 'select(.proto == "smtp-tls" and .tls_sni == "smtp.relay.example" and .dst_port == 2465)' "$T/events.jsonl" &&
	    jq_any 'select(.proto == "smtp-tls" and .tls_sni == "out.mailer.example")' "$T/events.jsonl"
}
relay_reset() {
	tls_reset smtp.relay.example && tls_reset out.mailer.example &&
	    wait_for "relay events" relay_logged
}
check "TLS to a named mail relay is reset and logged with its SNI" relay_reset
other_passes() {
	[ "$(cat "$T/tls-www.example.net.rc")" -eq 0 ] ||
	    { echo "the handshake failed: exit $(cat "$T/tls-www.example.net.rc")"
	      tail -n 3 "$T/tls-www.example.net.out"; return 1; }
	[ -f "$T/events.jsonl" ] || { echo "no events file"; return 1; }
	! grep www.example.net "$T/events.jsonl"
}
check "TLS to any other name passes unlogged" other_passes
finish
