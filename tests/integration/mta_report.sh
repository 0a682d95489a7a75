#!/bin/sh
# smtpguard mta-report over committed Postfix and Exim log excerpts: exact
# reports, gzip rotations joined across files, unparseable lines counted and
# never fatal. Pure file reading: no namespace, no root needed.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
CHECK_TAIL=40	# a report's diff says why
SG="$ROOT/build/smtpguard"
FIX="$ROOT/tests/fixtures/mta"
TZ=UTC0
export TZ
same() {	# same NAME EXPECTED ACTUAL
	check "mta-report: $1" diff -u "$2" "$3"
}
# exits CODE COMMAND...: the command exits CODE (its output is kept in
# $T/out and $T/err for the checks that follow)
exits() {
	want=$1
	shift
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	[ "$rc" -eq "$want" ] || { echo "exit $rc, not $want"; cat "$T/err"; return 1; }
}

# Syslog stamps carry no year: the file's time supplies it.
cp "$FIX/mail.log" "$FIX/mail.log.1" "$T/"
gzip -n "$T/mail.log.1"
touch -d '2027-01-01 00:10:00Z' "$T/mail.log" "$T/mail.log.1.gz"

(cd "$FIX" && "$SG" mta-report postfix.log) >"$T/postfix.txt" 2>&1
same "Postfix: the abused SASL account and the PHP mail() user top the report" \
    "$FIX/postfix.expected" "$T/postfix.txt"
(cd "$FIX" && "$SG" mta-report --json --limit 100 --log postfix.log) >"$T/postfix.json" 2>&1
same "Postfix: the JSON report" "$FIX/postfix.json.expected" "$T/postfix.json"
(cd "$FIX" && "$SG" mta-report exim-mainlog) >"$T/exim.txt" 2>&1
same "Exim: the abused SASL account and the PHP mail() user top the report" \
    "$FIX/exim.expected" "$T/exim.txt"
(cd "$T" && "$SG" mta-report --log mail.log.1.gz --log mail.log) >"$T/rot.txt" 2>&1
same "a message that spans a gzip rotation and New Year is joined" \
    "$FIX/rotated.expected" "$T/rot.txt"

since() {
	"$SG" mta-report --since 2026-11-22T11:00Z --json "$FIX/postfix.log" >"$T/since.json"
	[ "$(jq -r '[.origins[].origin] | join(" ")' "$T/since.json")" = "www-data(33) <>" ] ||
	    { cat "$T/since.json"; return 1; }
}
check "mta-report: --since leaves out what came before" since
"$SG" mta-report - <"$FIX/exim-mainlog" | sed 's/^1 file,.*//' >"$T/stdin.txt"
sed 's/^1 file,.*//' "$FIX/exim.expected" >"$T/stdin.expected"
same "- reads standard input" "$T/stdin.expected" "$T/stdin.txt"

# A missing file fails the command, after the others are reported.
unreadable() {
	exits 1 "$SG" mta-report "$FIX/exim-mainlog" "$T/nonexistent" &&
	    grep -q 'nonexistent: No such file' "$T/err" && grep -q 'carol@example.org' "$T/out" ||
	    { cat "$T/err"; return 1; }
}
check "mta-report: an unreadable file is named, exit 1, the rest still reported" unreadable
# Junk, a 2 MiB line, NULs and a truncated gzip: counted, never fatal.
{
	head -n 5 "$FIX/postfix.log"
	head -c 2097152 /dev/zero | tr '\0' 'x'
	printf '\n'
	printf 'Nov 22 10:00:00 mx1 postfix/qmgr[1]: 3AAA: from=<a\0b>, size=1, nrcpt=1\n'
	tail -n 5 "$FIX/postfix.log"
} >"$T/junk.log"
head -c 300 "$T/mail.log.1.gz" >"$T/cut.gz"
junk() {
	exits 0 "$SG" mta-report --json "$T/junk.log" &&
	    [ "$(jq .unparseable "$T/out")" -ge 1 ] && [ "$(jq .lines "$T/out")" -eq 12 ] ||
	    { cat "$T/out"; return 1; }
}
check "mta-report: an over-long line is counted as unparseable and skipped" junk
cut_gzip() { exits 1 "$SG" mta-report "$T/cut.gz" && grep 'cut.gz' "$T/err"; }
check "mta-report: a truncated gzip file is named, exit 1" cut_gzip

# top --by user --mta: the guard's attempts and the MTA's volume on one row per user.
printf '[guard]\nmta_users = 0\n[log]\nfile = %s\nsyslog = no\n' \
    "$ROOT/tests/fixtures/events/hostile.jsonl" >"$T/top.conf"
top_mta() {
	"$SG" -c "$T/top.conf" top --by user --json --mta-log "$FIX/postfix.log" >"$T/top.json" 2>/dev/null
	[ "$(jq -c '.[0] | [.user, .attempts, .mta_messages, .mta_recipients]' "$T/top.json")" = \
	    '["www-data(33)",1001,35,140]' ] || { cat "$T/top.json"; return 1; }
}
check "mta-report: top --by user --mta puts guard attempts and MTA volume on one row" top_mta
check "mta-report: top --mta refuses views the MTA log cannot fill" \
    exits 2 "$SG" -c "$T/top.conf" top --by dst --mta

check "mta-report: a bad --limit is a usage error (2)" exits 2 "$SG" mta-report --limit 0 "$FIX/postfix.log"
bad_since() {
	exits 2 "$SG" mta-report --since yesterday "$FIX/postfix.log" &&
	    grep "bad time 'yesterday'" "$T/err" || { cat "$T/err"; return 1; }
}
check "mta-report: a bad --since names the value" bad_since
help_flags() { "$SG" mta-report --help | grep -q 'likely culprit'; }
check "mta-report: --help explains the flags" help_flags
finish
