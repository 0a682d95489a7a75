#!/bin/sh
# make demo runs to completion and tells the story it promises.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT
"$ROOT/scripts/demo" >"$out" 2>&1
rc=$?
fails=0
expect() {	# expect NAME PATTERN
	if grep -Eq -- "$2" "$out"; then echo "PASS: demo: $1"; else echo "FAIL: demo: $1"; fails=$((fails + 1)); fi
}
[ $rc -eq 0 ] && echo "PASS: demo: runs to completion" || { echo "FAIL: demo: exit $rc"; fails=$((fails + 1)); }
expect "postfix delivers" "postfix: connected"
expect "the WordPress script is trapped with 550" "wp-mail-helper.php: server said 550 5.7.1"
expect "the log names the script's user, process and envelope" \
    "www-data\(33\) +trap +[0-9]+ /usr/bin/php[0-9.]* -> 192.0.2.25:25  wordpress@shop.example"
expect "the bot's envelope and subject are logged" "shop-example\(1001\) +trap .*promo@pills.example .*\"Cheap pills\""
expect "the whitelisted newsletter is allowed" "newsletter\(1002\) +allow"
expect "top puts the bot first" "^ +5 +1 .*shop-example\(1001\)$"
expect "top --by script names the PHP script" "33:wp-mail-helper.php$"
expect "nothing but postfix and the newsletter left the host" "the MX saw 2 connections"
[ $fails -eq 0 ] || cat "$out"
[ $fails -eq 0 ]
