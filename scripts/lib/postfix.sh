# A Postfix of the test's own (tests that run a real Postfix source this after
# check.sh and netns.sh). Its main.cf, queue and data are the test's; the
# system's Postfix is never configured, started or replaced.

# The script starts it as `ip netns exec NS unshare -m SCRIPT &` and keeps
# that PID in postfix_pid; SCRIPT execs `postfix start-fg`, a shell whose
# child is master, so master is found, and stopped, by its parent's PID.
postfix_pid=
postfix_master() { pgrep -P "$postfix_pid" | head -n1; }
in_postfix() {	# in_postfix COMMAND...: inside Postfix's namespaces, as root
	nsenter --mount="/proc/$(postfix_master)/ns/mnt" --net="/run/netns/$HOST_NS" "$@"
}
stop_postfix() {
	[ -n "$postfix_pid" ] || return 0
	pkill -TERM -P "$postfix_pid" 2>/dev/null	# master; it stops the rest
	for _ in $(seq 50); do kill -0 "$postfix_pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$postfix_pid" 2>/dev/null
	wait "$postfix_pid" 2>/dev/null
	postfix_pid=
}
# Before the namespaces go (hooks run newest first): a script that stops
# early never leaves its MTA running.
at_exit stop_postfix

# postfix_run SCRIPT LISTEN: runs SCRIPT (which execs postfix start-fg) in
# the host namespace and a mount namespace of its own; returns once
# something listens on LISTEN (ADDR:PORT, as ss prints it).
postfix_run() {
	ip netns exec "$HOST_NS" unshare -m "$1" >>"$T/postfix.log" 2>&1 &
	postfix_pid=$!
	wait_for "postfix listening" sh -c "ip netns exec $HOST_NS ss -ltn | grep -q '$2 '" ||
	    { cat "$T/postfix.log" >&2; return 1; }
}

# postfix_instance PFDIR: $T/postfix.sh, the instance whose whole config
# (main.cf naming its own queue_directory) is PFDIR, seen as /etc/postfix.
postfix_instance() {
	cat >"$T/postfix.sh" <<EOS
#!/bin/sh
set -e
mount --make-rprivate /
mount --bind "$1" /etc/postfix
exec postfix start-fg
EOS
	chmod +x "$T/postfix.sh"
}

# postfix_private MAIN_CF MASTER_CF: $T/postfix.sh, an instance whose
# /etc/postfix is a copy of the system's ($T/pf-etc, made afresh) with
# these two files over it, whose queue is $SPOOL and whose /var/lib/postfix
# is a tmpfs of its own.
postfix_private() {
	cat >"$T/postfix.sh" <<EOS
#!/bin/sh
set -e
mount --make-rprivate /
mkdir -p "$T/pf-etc"
cp -a /etc/postfix/. "$T/pf-etc/"
mount --bind "$T/pf-etc" /etc/postfix
mount --bind "$SPOOL" /var/spool/postfix
mount -t tmpfs -o mode=0755 tmpfs /var/lib/postfix
chown postfix:postfix /var/lib/postfix
cp "$1" /etc/postfix/main.cf
cp "$2" /etc/postfix/master.cf
exec postfix start-fg
EOS
	chmod +x "$T/postfix.sh"
	rm -rf "$T/pf-etc"
}

# postfix_as UID COMMAND...: as UID inside Postfix's namespaces (its
# /etc/postfix), as PHP's mail() and sendmail callers run.
postfix_as() {
	_pa_uid=$1
	shift
	nsenter --mount="/proc/$(postfix_master)/ns/mnt" --net="/run/netns/$HOST_NS" \
	    setpriv --reuid="$_pa_uid" --regid="$_pa_uid" --clear-groups "$@"
}

# postfix_services FILE: the master.cf of a test instance: the daemons the
# tests use, none chrooted (the instance's spool holds no copy of /etc).
postfix_services() {
	printf '%s\n' \
	 'smtp      inet  n - n - - smtpd' 'pickup    unix  n - n 60 1 pickup' \
	 'cleanup   unix  n - n - 0 cleanup' 'qmgr      unix  n - n 300 1 qmgr' \
	 'rewrite   unix  - - n - - trivial-rewrite' 'bounce    unix  - - n - 0 bounce' \
	 'defer     unix  - - n - 0 bounce' 'trace     unix  - - n - 0 bounce' \
	 'verify    unix  - - n - 1 verify' 'proxymap  unix  - - n - - proxymap' \
	 'smtp      unix  - - n - - smtp' 'error     unix  - - n - - error' \
	 'retry     unix  - - n - - error' 'discard   unix  - - n - - discard' \
	 'local     unix  - n n - - local' 'anvil     unix  - - n - 1 anvil' \
	 'scache    unix  - - n - 1 scache' 'postlog   unix-dgram n - n - 1 postlogd' \
	 'showq     unix  n - n - - showq' 'flush     unix  n - n 1000? 0 flush' \
	 >"$1"
}

# postfix_main_cf [KEY = VALUE]...: the main.cf lines every test instance
# shares, on stdout (the caller adds its own: queue directory, milters,
# SASL); a KEY = VALUE given replaces the shared line of that key. It
# listens on the host namespace's 192.0.2.1 and loopback, relays for
# mynetworks (the test's documentation net), sends everything on to the
# stand-in MX ($MX4, netns.sh's), and logs to stdout (postfix start-fg's).
postfix_main_cf() {
	for _pf_kv in 'compatibility_level = 3.6' 'myhostname = web1.example' \
	    'mydestination = localhost' 'inet_interfaces = 192.0.2.1, 127.0.0.1' \
	    'inet_protocols = ipv4' 'mynetworks = 127.0.0.0/8, 192.0.2.0/24' \
	    "relayhost = [$MX4]:25" 'smtpd_relay_restrictions = permit_mynetworks, reject' \
	    'smtpd_peername_lookup = no' 'smtp_host_lookup = native' \
	    'maillog_file = /dev/stdout' 'alias_maps ='; do
		for _pf_arg in "$@"; do
			[ "${_pf_arg%% =*}" = "${_pf_kv%% =*}" ] && _pf_kv=$_pf_arg
		done
		echo "$_pf_kv"
	done
}
