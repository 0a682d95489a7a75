#!/bin/sh
# make bench's code, run end to end with tiny counts (no figure is judged
# here: timings belong to make bench). Every section must produce its rows
# and the counts must add up.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
R=$(mktemp -d /tmp/smtpguard-bench.XXXXXX) || exit 1
trap 'rm -rf "$R"' EXIT
FAILS=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1"; FAILS=$((FAILS + 1)); }

if BENCH_SCALE=0.01 BENCH_REPS=1 BENCH_RESULTS="$R" "$ROOT/scripts/bench" >"$R/out" 2>&1; then
	pass "the bench runs to the end"
else
	fail "the bench runs to the end"
	tail -n 20 "$R/out"
fi
json=$(ls "$R"/bench-*.json 2>/dev/null | head -n 1)
[ -n "$json" ] && pass "it writes its results as JSON" || fail "it writes its results as JSON"
for s in "1. MTA path" "2. Blocked attempt" "3. Flood" "4. Attribution scaling" \
    "5. Audit" "6. Review" "7. mta-report" "8. Memory"; do
	grep -q "^$s" "$R/out" && pass "the table has '$s'" || fail "the table has '$s'"
done
has() { jq -e "$1" "$json" >/dev/null 2>&1; }
has '[.results[] | select(.section == "blocked" and (.name | test("^(kernel rule|smtpguard) sequential$")))
    | .refused == .connects and .connects > 0] | length == 2 and all' &&
    pass "every blocked attempt was refused, by the kernel rule and by smtpguard" ||
    fail "every blocked attempt was refused, by the kernel rule and by smtpguard"
has '[.results[] | select(.section == "mta") | .ok == .connects and .connects > 0] | all' &&
    pass "every MTA connect got through" || fail "every MTA connect got through"
has '.results[] | select(.section == "flood") | .ok == 0 and .decisions == .connects' &&
    pass "the flood: no hostile connect succeeded, one decision per attempt" ||
    fail "the flood: no hostile connect succeeded, one decision per attempt"
has '[.results[] | select(.section == "audit") | .packets_per_message > 0] | length == 3' &&
    pass "audit counts the packets that crossed userspace" ||
    fail "audit counts the packets that crossed userspace"
has '[.results[] | select(.section == "scaling") | .lookups > 0] | length == 5' &&
    pass "each scaling step reports the daemon's own lookup times" ||
    fail "each scaling step reports the daemon's own lookup times"
has '[.results[] | select(.section == "mtalog") | .file_bytes > 0 and .seconds > 0] | length == 1' &&
    pass "mta-report is timed over a synthetic Postfix log" ||
    fail "mta-report is timed over a synthetic Postfix log"
[ "$FAILS" -eq 0 ]
