#!/bin/sh
# smtpguard mta-report over committed Postfix and Exim log excerpts: exact
# reports, gzip rotations joined across files, unparseable lines counted and
# never fatal. Pure file reading: no namespace, no root needed.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SG="$ROOT/build/smtpguard"
FIX="$ROOT/tests/fixtures/mta"
TZ=UTC0
export TZ
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
fails=0
pass() { echo "PASS: mta-report: $1"; }
fail() { echo "FAIL: mta-report: $1"; fails=$((fails + 1)); }
same() {	# same NAME EXPECTED ACTUAL
	if diff -u "$2" "$3" >"$work/diff"; then pass "$1"; else fail "$1"; cat "$work/diff"; fi
}

# Syslog stamps carry no year: the file's time supplies it.
cp "$FIX/mail.log" "$FIX/mail.log.1" "$work/"
gzip -n "$work/mail.log.1"
touch -d '2027-01-01 00:10:00Z' "$work/mail.log" "$work/mail.log.1.gz"

(cd "$FIX" && "$SG" mta-report postfix.log) >"$work/postfix.txt" 2>&1
same "Postfix: the abused SASL account and the PHP mail() user top the report" \
    "$FIX/postfix.expected" "$work/postfix.txt"
(cd "$FIX" && "$SG" mta-report --json --limit 100 --log postfix.log) >"$work/postfix.json" 2>&1
same "Postfix: the JSON report" "$FIX/postfix.json.expected" "$work/postfix.json"
(cd "$FIX" && "$SG" mta-report exim-mainlog) >"$work/exim.txt" 2>&1
same "Exim: the abused SASL account and the PHP mail() user top the report" \
    "$FIX/exim.expected" "$work/exim.txt"
(cd "$work" && "$SG" mta-report --log mail.log.1.gz --log mail.log) >"$work/rot.txt" 2>&1
same "a message that spans a gzip rotation and New Year is joined" \
    "$FIX/rotated.expected" "$work/rot.txt"

"$SG" mta-report --since 2026-11-22T11:00Z --json "$FIX/postfix.log" >"$work/since.json"
if [ "$(jq -r '[.origins[].origin] | join(" ")' "$work/since.json")" = "www-data(33) <>" ]; then
	pass "--since leaves out what came before"
else
	fail "--since leaves out what came before: $(cat "$work/since.json")"
fi
"$SG" mta-report - <"$FIX/exim-mainlog" | sed 's/^1 file,.*//' >"$work/stdin.txt"
sed 's/^1 file,.*//' "$FIX/exim.expected" | diff -q - "$work/stdin.txt" >/dev/null &&
    pass "- reads standard input" || fail "- reads standard input"

# A missing file fails the command, after the others are reported.
"$SG" mta-report "$FIX/exim-mainlog" "$work/nonexistent" >"$work/out" 2>"$work/err"
rc=$?
if [ $rc -eq 1 ] && grep -q 'nonexistent: No such file' "$work/err" &&
    grep -q 'carol@example.org' "$work/out"; then
	pass "an unreadable file is named, exit 1, the rest still reported"
else
	fail "an unreadable file: rc=$rc $(cat "$work/err")"
fi
# Junk, a 2 MiB line, NULs and a truncated gzip: counted, never fatal.
{
	head -n 5 "$FIX/postfix.log"
	head -c 2097152 /dev/zero | tr '\0' 'x'
	printf '\n'
	printf 'Nov 22 10:00:00 mx1 postfix/qmgr[1]: 3AAA: from=<a\0b>, size=1, nrcpt=1\n'
	tail -n 5 "$FIX/postfix.log"
} >"$work/junk.log"
head -c 300 "$work/mail.log.1.gz" >"$work/cut.gz"
"$SG" mta-report --json "$work/junk.log" >"$work/junk.json" 2>&1
if [ $? -eq 0 ] && [ "$(jq .unparseable "$work/junk.json")" -ge 1 ] &&
    [ "$(jq .lines "$work/junk.json")" -eq 12 ]; then
	pass "an over-long line is counted as unparseable and skipped"
else
	fail "junk log: $(cat "$work/junk.json")"
fi
"$SG" mta-report "$work/cut.gz" >"$work/out" 2>"$work/err"
[ $? -eq 1 ] && grep -q 'cut.gz' "$work/err" && pass "a truncated gzip file is named, exit 1" ||
    fail "truncated gzip: $(cat "$work/err")"

# top --by user --mta: the guard's attempts and the MTA's volume on one row per user.
printf '[guard]\nmta_users = 0\n[log]\nfile = %s\nsyslog = no\n' \
    "$ROOT/tests/fixtures/events/hostile.jsonl" >"$work/top.conf"
"$SG" -c "$work/top.conf" top --by user --json --mta-log "$FIX/postfix.log" >"$work/top.json" 2>/dev/null
if [ "$(jq -c '.[0] | [.user, .attempts, .mta_messages, .mta_recipients]' "$work/top.json")" = \
    '["www-data(33)",1001,35,140]' ]; then
	pass "top --by user --mta puts guard attempts and MTA volume on one row"
else
	fail "top --mta: $(cat "$work/top.json")"
fi
"$SG" -c "$work/top.conf" top --by dst --mta >/dev/null 2>&1
[ $? -eq 2 ] && pass "top --mta refuses views the MTA log cannot fill" || fail "top --by dst --mta"

"$SG" mta-report --limit 0 "$FIX/postfix.log" >/dev/null 2>&1
[ $? -eq 2 ] && pass "a bad --limit is a usage error (2)" || fail "bad --limit"
"$SG" mta-report --since yesterday "$FIX/postfix.log" >/dev/null 2>"$work/err"
[ $? -eq 2 ] && grep -q "bad time 'yesterday'" "$work/err" && pass "a bad --since names the value" ||
    fail "bad --since"
"$SG" mta-report --help | grep -q 'likely culprit' && pass "--help explains the flags" ||
    fail "--help"
[ $fails -eq 0 ]
