#!/bin/sh
# make demo runs to completion and tells the story it promises.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"

"$ROOT/scripts/demo" >"$T/out" 2>&1
rc=$?
[ "$rc" -eq 0 ] && pass "demo: runs to completion" || fail "demo: runs to completion" "exit $rc"
expect() {	# expect NAME PATTERN: the demo's output has it
	check "demo: $1" grep -Eq -- "$2" "$T/out"
}
expect "postfix delivers" "postfix: connected"
expect "the WordPress script is trapped with 550" "wp-mail-helper.php: server said 550 5.7.1"
expect "the log names the script's user, process and envelope" \
    "www-data\(33\) +trap +[0-9]+ /usr/bin/php[0-9.]* -> 192.0.2.25:25  wordpress@shop.example"
expect "the bot's envelope and subject are logged" "shop-example\(1001\) +trap .*promo@pills.example .*\"Cheap pills\""
expect "the whitelisted newsletter is allowed" "newsletter\(1002\) +allow"
expect "top puts the bot first" "^ +5 +1 .*shop-example\(1001\)$"
expect "top --by script names the PHP script" "33:wp-mail-helper.php$"
expect "nothing but postfix and the newsletter left the host" "the MX saw 2 connections"
[ "$FAILS" -eq 0 ] || cat "$T/out"
finish
