#!/bin/sh
# Fleet policy as plain files: the shipped Ansible playbook passes
# ansible-playbook --syntax-check; its policy part, run for real against this
# host (connection local), writes an exceptions file marked "# managed by
# ansible" and applies it with `smtpguard reload` to a running smtpguardd in a
# namespace; the fence obeys it; allow/revoke/limit/unlimit then refuse to
# edit the file, naming it and the marker's line, and change neither the file
# nor the kernel set; the next run of the play changes the policy; a bad
# policy fails the play and the running state stays.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"
CHECK_TAIL=15	# ansible explains a failure in more than five lines

PLAY=$ROOT/conf/ansible/smtpguard.yml
mkdir -p "$T/ansible"
ansible() {	# ansible ARGS...: ansible-playbook with its state kept under $T
	HOME=$T/ansible ANSIBLE_LOCAL_TEMP=$T/ansible ANSIBLE_NOCOLOR=1 \
	    ANSIBLE_RETRY_FILES_ENABLED=0 ansible-playbook "$@"
}
check "the Ansible example passes ansible-playbook --syntax-check" \
    ansible --syntax-check -i localhost, "$PLAY"

setup_net
start_mx 25 465 587
: >"$T/exceptions.conf"
write_config
start_daemon || { fail "smtpguardd starts"; finish; }

refused() {
	out=$(as_uid "$1" "$T/sgprobe" connect -t 2000 "$2" "$3")
	case $out in refused*) return 0 ;; esac
	echo "$out"
	return 1
}
connects() {
	out=$(as_uid "$1" "$T/sgprobe" connect -q "$2" "$3") && case $out in connected*) ;; *) false ;; esac
}
policy() {	# policy VARS_JSON: the play's policy tag, for real, on this host
	printf '%s\n' "$1" >"$T/vars.json"
	ansible -i localhost, -c local --tags policy -e smtpguard_hosts=localhost \
	    -e ansible_become=false -e "smtpguard_etc=$T" \
	    -e "smtpguard_cli='$BUILD/smtpguard -c $T/smtpguard.conf'" -e "@$T/vars.json" "$PLAY"
}

check "before the play: the web user is refused" refused $WEB_UID $MX4 25
check "the play writes the policy and reloads smtpguardd" policy "{
  \"smtpguard_exceptions\": [ { \"who\": \"$WEB_UID\", \"comment\": \"a \\\"quoted\\\" plugin\" },
                              { \"who\": \"$EXEMPT_UID\", \"port\": 587 } ],
  \"smtpguard_limits\": [ { \"origin\": \"sasl:newsletter\", \"rate\": \"500/hour\" } ] }"
check "the file it writes starts with the managed marker" sh -c \
    "head -1 '$T/exceptions.conf' | grep -q '^# managed by ansible'"
check "reload applied it: the exceptions and the limit are in force" sh -c \
    "out=\$('$BUILD/smtpguard' -c '$T/smtpguard.conf' exceptions) && echo \"\$out\" &&
     echo \"\$out\" | grep -q '$WEB_UID' && echo \"\$out\" | grep -q 'a \"quoted\" plugin' &&
     echo \"\$out\" | grep -q 'sasl:newsletter'"
check "the fence obeys it: the web user connects" connects $WEB_UID $MX4 25
check "the narrowed one connects on port 587" connects $EXEMPT_UID $MX4 587
check "the narrowed one is refused on port 25" refused $EXEMPT_UID $MX4 25

cp "$T/exceptions.conf" "$T/before.conf"
in_host nft list set inet smtpguard allow_uids >"$T/set.before" 2>&1
refuses() {	# refuses CMD...: exit 1, naming the file and line 1 and what to do
	out=$(sg "$@" 2>&1)
	rc=$?
	[ $rc -eq 1 ] && case $out in
	*"$T/exceptions.conf:1: the file is managed elsewhere"*"smtpguard reload"*) ;;
	*) false ;; esac || { echo "exit $rc: $out"; return 1; }
}
check "allow refuses to edit the managed file, naming file:line" refuses allow 3003
check "revoke refuses too" refuses revoke $WEB_UID
check "limit refuses too" refuses limit sasl:bob 5/hour
check "unlimit refuses too" refuses unlimit sasl:newsletter
check "the file is byte for byte what the play wrote" cmp "$T/before.conf" "$T/exceptions.conf"
check "the kernel set did not change" sh -c \
    "in_host() { ip netns exec '$HOST_NS' \"\$@\"; };
     in_host nft list set inet smtpguard allow_uids 2>&1 | diff -u '$T/set.before' -"
check "the web user still connects" connects $WEB_UID $MX4 25

check "the next run of the play changes the policy" policy \
    "{ \"smtpguard_exceptions\": [ { \"who\": \"$EXEMPT_UID\" } ], \"smtpguard_limits\": [] }"
check "after it: the web user is refused again" refused $WEB_UID $MX4 25
check "after it: the other user connects on port 25" connects $EXEMPT_UID $MX4 25

bad_policy_fails() {
	! policy '{ "smtpguard_exceptions": [ { "who": "no-such-user-sg" } ], "smtpguard_limits": [] }' \
	    >"$T/bad.out" 2>&1 || { cat "$T/bad.out"; return 1; }
	grep -q "exceptions.conf:3: unknown user 'no-such-user-sg'" "$T/bad.out" ||
	    { tail -n 15 "$T/bad.out"; return 1; }
}
check "a play with an unknown user fails on the host, naming file:line" bad_policy_fails
check "and the running state stays: the other user still connects" connects $EXEMPT_UID $MX4 25
finish
