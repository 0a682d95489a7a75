# scripts/lib/check.sh — how a test script says what it found, and the
# temporary folder and exit hooks every script here shares. Sourced first by
# each tests/integration/*.sh, and by scripts/bench and scripts/demo (for $T,
# at_exit and wait_for), by path from the repository root:
#   ROOT=$(cd "$(dirname "$0")/../.." && pwd)
#   . "$ROOT/scripts/lib/check.sh"
# It owns ROOT/BUILD, $T (a fresh folder, removed on exit), the one EXIT trap
# (at_exit hooks, newest first, then $T goes), the PASS/FAIL counters and the
# only lines tests/run counts:
#   PASS: name
#   FAIL: name: why          (the why's further lines are indented, so one
#                             failed check is one counted line)
# and polling (wait_for). It never creates a namespace or starts a daemon:
# that is netns.sh's, which the namespace tests, the bench and the demo add.
# It lives under scripts/lib/, not tests/: make bench and make demo use it as
# well, and tests/integration/ holds only executable tests (tests/run refuses
# a *.sh there without its run bit, so a library there would be a failure).
set -u

: "${ROOT:?set ROOT to the repository root before sourcing check.sh}"
BUILD=$ROOT/build
PASSES=0
FAILS=0

T=$(mktemp -d /tmp/smtpguard-test.XXXXXX) || exit 1

# at_exit COMMAND: run COMMAND when the script ends, however it ends; the
# last registered runs first (a namespace goes before the folder it used).
AT_EXIT=""
at_exit() {
	AT_EXIT="$1${AT_EXIT:+
$AT_EXIT}"
}
run_at_exit() {
	_rc=$?
	eval "$AT_EXIT"
	rm -rf "$T"
	exit "$_rc"
}
trap run_at_exit EXIT
trap 'exit 1' INT TERM

pass() { echo "PASS: $1"; PASSES=$((PASSES + 1)); }
fail() {	# fail NAME [WHY]
	if [ -n "${2:-}" ]; then
		printf 'FAIL: %s: %s\n' "$1" "$(printf '%s\n' "$2" | sed '2,$s/^/    /')"
	else
		echo "FAIL: $1"
	fi
	FAILS=$((FAILS + 1))
}

# check NAME COMMAND...: passes when the command succeeds; on failure the
# last CHECK_TAIL (5) lines of its output say why.
check() {
	_check_name=$1
	shift
	if _check_out=$("$@" 2>&1); then
		pass "$_check_name"
	else
		fail "$_check_name" "$(printf '%s\n' "$_check_out" | tail -n "${CHECK_TAIL:-5}")"
	fi
}

# finish: the script's exit status. A script in which no check ran at all
# has tested nothing: that is a failure, not a pass.
finish() {
	[ $((PASSES + FAILS)) -gt 0 ] || fail "${0##*/}" "no check ran"
	[ "$FAILS" -eq 0 ]
	exit $?
}

wait_for() {	# wait_for WHAT COMMAND...: up to 5 s (WAIT_TICKS of 50 ms)
	WAIT_TICKS=${WAIT_TICKS:-100} wait_ticks "$@"
}
wait_for_long() {	# wait_for_long COMMAND...: up to 30 s
	WAIT_TICKS=600 wait_ticks "long wait" "$@"
}
wait_ticks() {
	_wait_what=$1
	shift
	_wait_i=0
	while ! "$@" >/dev/null 2>&1; do
		_wait_i=$((_wait_i + 1))
		if [ "$_wait_i" -ge "$WAIT_TICKS" ]; then
			echo "timed out waiting for $_wait_what" >&2
			return 1
		fi
		sleep 0.05
	done
}

# jq -e judges only the last input line: "does any line match?" needs this.
jq_any() { jq -c "$@" | grep -q .; }
