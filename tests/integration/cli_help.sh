#!/bin/sh
# --help and -h answer cleanly everywhere: for smtpguard, smtpguardd and every
# command smtpguard lists (read from its own usage, so a new command is covered
# as it lands): exit 0, a usage text on stdout, nothing on stderr.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"

SG=$BUILD/smtpguard
helps() {	# helps COMMAND...: exit 0, "usage" on stdout, stderr empty
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	[ "$rc" -eq 0 ] && grep -qi usage "$T/out" && [ ! -s "$T/err" ] ||
	    { echo "exit $rc; stdout: $(head -c 200 "$T/out"); stderr: $(cat "$T/err")"; return 1; }
}
for opt in --help -h help; do
	check "smtpguard $opt" helps "$SG" $opt
done
for opt in --help -h; do
	check "smtpguardd $opt" helps "$BUILD/smtpguardd" $opt
done
commands=$("$SG" --help | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p; s/^  \([a-z][a-z-]*\)$/\1/p')
[ -n "$commands" ] || fail "the usage lists commands"
for cmd in $commands; do
	for opt in --help -h; do
		check "smtpguard $cmd $opt" helps "$SG" -c /nonexistent.conf $cmd $opt
	done
done
unknown() { "$SG" --no-such-option >/dev/null 2>"$T/err"; [ $? -eq 2 ] && grep -q usage "$T/err"; }
check "an unknown option is a usage error (2) with the usage" unknown
finish
