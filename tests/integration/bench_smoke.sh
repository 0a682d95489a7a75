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
    "5. Audit" "6. Review" "7. mta-report" "8. Memory" "9. detect_any_port" "10. Mail gate" \
    "Over 1 run"; do
	check "the table has '$s'" grep -q "^$s" "$T/out"
done
has() { jq -e "$1" "$json"; }
check "every blocked attempt was refused, by the kernel rule and by smtpguard" \
    has '[.results[] | select(.section == "blocked" and (.name | test("^(kernel rule|smtpguard) sequential$")))
    | .refused == .connects and .connects > 0] | length == 2 and all'
check "every MTA connect got through: no firewall, stateful, smtpguard, without after_nat" \
    has '[.results[] | select(.section == "mta") | .ok == .connects and .connects > 0] |
    length == 8 and all'
check "the flood: no hostile connect succeeded, one decision per attempt, with and without detect_any_port, hook off" \
    has '[.results[] | select(.section == "flood" and (.name | startswith("8 hostile clients")))
    | .ok == 0 and .decisions == .connects and .connects > 0] | length == 3 and all'
check "the kernel rule's flood refused every attempt" \
    has '.results[] | select(.section == "flood" and .name == "kernel rule 8 clients")
    | .refused == .connects and .connects > 0'
check "detect_any_port: every HTTP and TLS flow completed, with and without the fence" \
    has '[.results[] | select(.section == "anyport") | .ok == .connects and .connects > 0] |
    length == 4 and all'
check "detect_any_port: the fence's userspace packets are counted per flow" \
    has '[.results[] | select(.section == "anyport" and (.name | startswith("detect_any_port")))
    | .packets_per_flow > 0] | length == 2 and all'
check "the mail gate: Postfix took every message, without a milter, with the no-op one and with the gate, and the gate passed each gated one" \
    has '[.results[] | select(.section == "mailgate")] | length == 6 and
    all(.per_second > 0) and (.[] | select(.name == "gate per message") |
    .passed == .gate_messages and .gate_messages > 0)'
check "audit counts the packets that crossed userspace" \
    has '[.results[] | select(.section == "audit") | .packets_per_message > 0] | length == 3'
check "audit times the median message of each variant: no firewall, stateful, audited, stopped" \
    has '[.results[] | select(.section == "audit") | .base_p50_us > 0 and .stateful_p50_us > 0
    and .p50_us > 0 and .paused_p50_us > 0] | length == 3 and all'
check "each scaling step reports the daemon's own lookup times" \
    has '[.results[] | select(.section == "scaling") | .lookups > 0] | length == 5'
check "mta-report is timed over a synthetic Postfix log" \
    has '[.results[] | select(.section == "mtalog") | .file_bytes > 0 and .seconds > 0] | length == 1'

# Several runs: min/median/max, and a target met only if every run met it.
# Two copies of this run, the second with the gate at half the ungated rate.
jq '(.results[] | select(.section == "mailgate" and .name == "gate smtp-source") | .per_second) =
    ([.results[] | select(.section == "mailgate" and .name == "no gate smtp-source")][0].per_second)' \
    "$json" >"$T/fast.json"
jq '(.results[] | select(.section == "mailgate" and .name == "gate smtp-source") | .per_second) =
    ([.results[] | select(.section == "mailgate" and .name == "no gate smtp-source")][0].per_second / 2)' \
    "$json" >"$T/slow.json"
gate_row() {	# FILE...: the mail gate's row over those runs
	"$ROOT/scripts/bench-table" "$@" | grep '^  mail gate: messages/s vs no gate'
}
all_met() { gate_row "$T/fast.json" "$T/fast.json" | grep -q ' 1x  *1x  *1x .*\[target met\]'; }
one_missed() {
	"$ROOT/scripts/bench-table" "$T/fast.json" "$T/slow.json" "$T/fast.json" | grep -q '^Over 3 runs' &&
	    gate_row "$T/fast.json" "$T/slow.json" "$T/fast.json" |
	    grep -q ' 0.5x  *1x  *1x .*\[target NOT met\]'
}
check "over runs that all meet it, a target is met" all_met
check "one run misses it: min / median / max, and the target is not met" one_missed
printf 'intro\n<!-- bench-table: begin -->\nold\n<!-- bench-table: end -->\nprose\n' >"$T/README.md"
readme_table() {
	"$ROOT/scripts/bench-table" --readme "$T/README.md" "$json" >/dev/null 2>&1 &&
	    head -n 4 "$T/README.md" | tail -n 1 | grep -q '^smtpguard bench' &&
	    ! grep -q '^old$' "$T/README.md" && tail -n 1 "$T/README.md" | grep -q '^prose$'
}
check "bench-table --readme replaces only what is between its markers" readme_table
finish
