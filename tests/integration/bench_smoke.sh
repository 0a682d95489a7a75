#!/bin/sh
# make bench's code, run end to end with tiny counts (no figure is judged
# here: timings belong to make bench). Every section must produce its rows
# and the counts must add up.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
CHECK_TAIL=20

run_bench() {
	BENCH_SCALE=0.01 BENCH_REPS=1 BENCH_RESULTS="$T" "$ROOT/scripts/bench" >"$T/out" 2>&1 ||
	    { tail -n 20 "$T/out"; return 1; }
}
check "the bench runs to the end" run_bench
json=$(ls "$T"/bench-*.json 2>/dev/null | head -n 1)
check "it writes its results as JSON" test -n "$json"
json=${json:-$T/no-results.json}
for s in "1. MTA path" "2. Blocked attempt" "3. Flood" "4. Attribution scaling" \
    "5. Audit" "6. Review" "7. mta-report" "8. Memory"; do
	check "the table has '$s'" grep -q "^$s" "$T/out"
done
has() { jq -e "$1" "$json"; }
check "every blocked attempt was refused, by the kernel rule and by smtpguard" \
    has '[.results[] | select(.section == "blocked" and (.name | test("^(kernel rule|smtpguard) sequential$")))
    | .refused == .connects and .connects > 0] | length == 2 and all'
check "every MTA connect got through" \
    has '[.results[] | select(.section == "mta") | .ok == .connects and .connects > 0] | all'
check "the flood: no hostile connect succeeded, one decision per attempt" \
    has '.results[] | select(.section == "flood") | .ok == 0 and .decisions == .connects'
check "audit counts the packets that crossed userspace" \
    has '[.results[] | select(.section == "audit") | .packets_per_message > 0] | length == 3'
check "each scaling step reports the daemon's own lookup times" \
    has '[.results[] | select(.section == "scaling") | .lookups > 0] | length == 5'
check "mta-report is timed over a synthetic Postfix log" \
    has '[.results[] | select(.section == "mtalog") | .file_bytes > 0 and .seconds > 0] | length == 1'
finish
