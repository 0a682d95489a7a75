# A Postfix of the test's own (tests that run a real Postfix source this after
# check.sh and netns.sh). Its main.cf, queue and data are the test's; the
# system's Postfix is never configured, started or replaced.

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
