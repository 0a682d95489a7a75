#!/bin/sh
# doc/events.md is the event schema others map to ECS or OpenTelemetry, so it
# must be the whole truth: every field the encoder (guard/event.c) or the
# shipped collector's template can write is in its field table and every
# field there is one of those;
# every event type the daemon emits is in its event table; and a real run
# (a daemon in a namespace: trap, attempts, an alert, a flood summary, daemon
# events) and the event fixtures carry no field and no event type the
# document leaves out. EVENT_LOGS="FILE..." adds logs of your own to check.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"

DOC=$ROOT/doc/events.md
# The field table rows: "| `name` | type | ...", below "## Fields".
sed -n '/^## Fields/,/^## /p' "$DOC" | sed -n 's/^| `\([a-z_]*\)` | .*/\1/p' | sort -u >"$T/doc_fields"
sed -n '/^## Events/,/^## /p' "$DOC" | sed -n 's/^| `\([a-z]*\)` | .*/\1/p' | sort -u >"$T/doc_events"
# What the encoder can write: each set_str/set_int/set_true/put_key(w, "name"...), w or &w.
grep -o '\(set_str\|set_int\|set_true\|put_key\)(&\?w, "[a-z_]*"' "$ROOT/guard/event.c" |
    sed 's/.*"\(.*\)"/\1/' >"$T/code_fields"
# ... and what the shipped collector adds in front of each line (its template's constants).
grep -o 'constant(value="{\\"[a-z_]*\\"' "$ROOT/conf/rsyslog-smtpguard-collector.conf" |
    sed 's/.*\\"\([a-z_]*\)\\"$/\1/' >>"$T/code_fields"
sort -u -o "$T/code_fields" "$T/code_fields"
# The event types the daemon emits: .event = "name" / ev.event = "name".
grep -ho '\.event = "[a-z]*"' "$ROOT"/guard/*.c | sed 's/.*"\(.*\)"/\1/' | sort -u >"$T/code_events"

differs() {	# differs WHAT A B: lines of A that B lacks, named; true when none
	_missing=$(comm -23 "$2" "$3")
	[ -z "$_missing" ] || { echo "$1:" $_missing; return 1; }
}
check "the document lists fields and events at all" sh -c \
    "[ \$(wc -l <'$T/doc_fields') -ge 40 ] && [ \$(wc -l <'$T/doc_events') -ge 6 ] &&
     [ \$(wc -l <'$T/code_fields') -ge 40 ]"
check "every field the encoder can write is documented" \
    differs "written but not in doc/events.md" "$T/code_fields" "$T/doc_fields"
check "every documented field is one the encoder writes" \
    differs "in doc/events.md but never written" "$T/doc_fields" "$T/code_fields"
check "every event type the daemon emits is documented" \
    differs "emitted but not in doc/events.md" "$T/code_events" "$T/doc_events"

# A real run: trapped mail, attempts, an alert, a flood summary, daemon events.
setup_net
start_mx 25
: >"$T/exceptions.conf"
LOG_LINES="rate = 2
window = 1"
ALERT_LINES="threshold = 3/10min"
write_config "action = trap" "trap_port = 10025"
start_daemon || { fail "smtpguardd starts"; finish; }
sg allow $EXEMPT_UID --port 587 >/dev/null
as_uid $WEB_UID swaks --server $MX4 --port 25 --helo schema.example \
    --from a@example.org --to b@example.net --header "Subject: schema" \
    --header "X-Mailer: schema-test" --body "x" >"$T/swaks.out" 2>&1
for i in 1 2 3 4 5; do
	as_uid $WEB_UID "$T/sgprobe" connect -t 2000 $MX4 25 >/dev/null 2>&1
done
wait_for "the trap's smtp event" grep -q '"event":"smtp"' "$T/events.jsonl"
wait_for "an alert" grep -q '"event":"alert"' "$T/events.jsonl"
wait_for "a flood summary" grep -q '"event":"summary"' "$T/events.jsonl"
stop_daemon
LOGS="$T/events.jsonl $(find "$ROOT/tests/fixtures" -name '*.jsonl') ${EVENT_LOGS:-}"
# The fixtures hold hostile lines that are no JSON at all (evread.c skips them): so do we.
# shellcheck disable=SC2086
jq -rR 'fromjson? | objects | keys_unsorted[]' $LOGS | sort -u >"$T/log_fields"
# shellcheck disable=SC2086
jq -rR 'fromjson? | objects | .event // empty' $LOGS | sort -u >"$T/log_events"
check "every line the daemon wrote is one JSON object" sh -c \
    "test \"\$(jq -cR 'fromjson? | objects' '$T/events.jsonl' | wc -l)\" = \"\$(wc -l <'$T/events.jsonl')\""
check "the run wrote attempt, smtp, alert, summary and daemon events" sh -c \
    "for e in attempt smtp alert summary daemon; do grep -qx \$e '$T/log_events' ||
	{ echo \"no \$e event\"; exit 1; }; done"
check "no field in the logs is missing from doc/events.md" \
    differs "in the logs but not in doc/events.md" "$T/log_fields" "$T/doc_fields"
check "no event type in the logs is missing from doc/events.md" \
    differs "in the logs but not in doc/events.md" "$T/log_events" "$T/doc_events"
finish
