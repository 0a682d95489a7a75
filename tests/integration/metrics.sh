#!/bin/sh
# Metrics, end to end with the real thing: smtpguardd in a namespace refuses
# a web user's attempts and writes its [metrics] textfile; Debian's
# prometheus-node-exporter (textfile collector) and prometheus run in the
# same namespace on its loopback, as nobody, with their storage under $T;
# prometheus scrapes node_exporter every second, and a query over its HTTP
# API returns the attempts this test made; a reload to action = trap and
# one trapped message show in both, as do a reload to action = audit and a
# connect audited in the kernel; a reload to top_users = 1 leaves
# only the busiest user's series. The shipped alert rules pass promtool
# check rules and promtool test rules. The host's own prometheus services
# are never started or touched.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
. "$ROOT/scripts/lib/netns.sh"

NODE_EXPORTER=/usr/bin/prometheus-node-exporter
PROMETHEUS=/usr/bin/prometheus
NOBODY=65534
WEB2_UID=3003		# a second site user, quieter
ATTEMPTS=7		# by WEB_UID
ATTEMPTS2=2		# by WEB2_UID

check "promtool: the shipped alert rules are valid" \
    promtool check rules "$ROOT/conf/smtpguard.rules.yml"
check "promtool: the alert rules fire when they should and only then" \
    promtool test rules "$ROOT/tests/fixtures/metrics/rules_test.yml"

for b in "$NODE_EXPORTER" "$PROMETHEUS"; do
	[ -x "$b" ] || { fail "$b is installed" "run scripts/deps"; finish; }
done

setup_net
start_mx 25
: >"$T/exceptions.conf"
write_config
mkdir -p "$T/textfile"
printf '[metrics]\ntextfile = %s\ninterval = 1\ntop_users = 5\n' \
    "$T/textfile/smtpguard.prom" >>"$T/smtpguard.conf"
start_daemon || { fail "smtpguardd starts"; finish; }
pass "smtpguardd starts with [metrics] textfile"

refused_at_once() {	# refused with a reset, not a timeout
	out=$(as_uid "$1" "$T/sgprobe" connect -t 2000 "$2" "$3")
	case $out in refused*) return 0 ;; esac
	echo "$out"
	return 1
}
made=0
for i in $(seq $ATTEMPTS); do
	refused_at_once $WEB_UID $MX4 25 && made=$((made + 1))
done
for i in $(seq $ATTEMPTS2); do
	refused_at_once $WEB2_UID $MX6 25 && made=$((made + 1))
done
check "the web users' $((ATTEMPTS + ATTEMPTS2)) attempts were refused" \
    test $made -eq $((ATTEMPTS + ATTEMPTS2))

PROM=$T/textfile/smtpguard.prom
file_counts() { grep -qx "smtpguard_attempts_total{action=\"reject\"} $((ATTEMPTS + ATTEMPTS2))" "$PROM"; }
check "the textfile counts the attempts" wait_for "textfile" file_counts
check "promtool check metrics: the file is valid exposition format" \
    sh -c 'promtool check metrics <"$1"' sh "$PROM"
check "the fence is up in the file" grep -qx 'smtpguard_fence_up 1' "$PROM"
user_line() { grep -qx "smtpguard_user_attempts_total{uid=\"$1\"} $2" "$PROM"; }
check "per-user attempts: the busier user" user_line $WEB_UID $ATTEMPTS
check "per-user attempts: the quieter one" user_line $WEB2_UID $ATTEMPTS2
check "the attribution histogram counted every attempt" \
    grep -qx "smtpguard_attribution_duration_seconds_count $((ATTEMPTS + ATTEMPTS2))" "$PROM"
# The temporary file is renamed over the real one; none is left behind, and
# its name (smtpguard.prom.XXXXXX) is not one the collector reads (*.prom).
no_temp() { [ -z "$(find "$T/textfile" -name 'smtpguard.prom.*')" ]; }
check "no temporary file is left beside the textfile" no_temp

# node_exporter and prometheus as nobody, on the namespace's loopback only. The
# textfile directory stays root's, mode 0755, as Debian ships
# /var/lib/prometheus/node-exporter: the daemon (no CAP_DAC_OVERRIDE) writes
# it, the collector only reads.
mkdir -p "$T/prom-data"
chown $NOBODY "$T/prom-data"
cat >"$T/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/conf/smtpguard.rules.yml
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:9100']
EOF
ip netns exec "$HOST_NS" setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups \
    "$NODE_EXPORTER" --web.listen-address=127.0.0.1:9100 --collector.disable-defaults \
    --collector.textfile --collector.textfile.directory="$T/textfile" \
    >"$T/node_exporter.log" 2>&1 &
PIDS="$PIDS $!"
ip netns exec "$HOST_NS" setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups \
    "$PROMETHEUS" --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/prom-data" \
    --web.listen-address=127.0.0.1:9090 --web.console.templates="$T" \
    --web.console.libraries="$T" >"$T/prometheus.log" 2>&1 &
PIDS="$PIDS $!"

exporter_serves() {
	in_host curl -sf http://127.0.0.1:9100/metrics | grep -q '^smtpguard_attempts_total'
}
check "node_exporter's textfile collector serves smtpguard's metrics" \
    wait_for "node_exporter" exporter_serves
textfile_ok() {	# the collector read our file, and nothing failed
	in_host curl -sf http://127.0.0.1:9100/metrics >"$T/scrape.txt" &&
	    grep -q '^node_textfile_mtime_seconds{file=".*smtpguard.prom"}' "$T/scrape.txt" &&
	    grep -qx 'node_textfile_scrape_error 0' "$T/scrape.txt"
}
check "node_exporter read the file without error" textfile_ok

# QUERY: an instant query over the HTTP API; prints the first value.
query() {
	in_host curl -sf --data-urlencode "query=$1" http://127.0.0.1:9090/api/v1/query |
	    tee "$T/query.json" | jq -er '.data.result[0].value[1]'
}
query_is() {	# query_is EXPR WANT
	got=$(query "$1") && [ "$got" = "$2" ] || { echo "$1: got '${got:-}', want '$2'"; return 1; }
}
check "prometheus is up and scraped node_exporter" \
    wait_for_long query_is 'up{job="node"}' 1
check "prometheus returns the attempts the test made" \
    wait_for_long query_is 'smtpguard_attempts_total{action="reject"}' $((ATTEMPTS + ATTEMPTS2))
echo "query: smtpguard_attempts_total{action=\"reject\"} -> $(cat "$T/query.json")"
check "prometheus returns the busier user's attempts, labelled by uid" \
    query_is "smtpguard_user_attempts_total{uid=\"$WEB_UID\"}" $ATTEMPTS
check "prometheus: the fence is up" query_is 'smtpguard_fence_up' 1
rules_loaded() {
	in_host curl -sf http://127.0.0.1:9090/api/v1/rules |
	    jq -e '[.data.groups[].rules[] | select(.health == "ok")] | length == 4'
}
check "prometheus loaded and evaluates the four shipped rules" wait_for_long rules_loaded

# A trapped session: action = trap by a reload, one message by swaks.
sed -i 's/^action = reject$/action = trap/' "$T/smtpguard.conf"
check "smtpguard reload to action = trap" sg reload
as_uid $WEB2_UID swaks --server $MX4 --port 25 --helo spambot.example \
    --from promo@example.org --to victim@example.net >"$T/swaks.out" 2>&1
check "swaks was trapped (550 at the end of DATA)" grep -q '<\*\* 550 5.7.1' "$T/swaks.out"
trapped() {
	grep -qx 'smtpguard_trap_sessions_total 1' "$PROM" &&
	    grep -qx 'smtpguard_attempts_total{action="trap"} 1' "$PROM"
}
check "the textfile counts the trapped attempt and its session" wait_for "trap" trapped
check "prometheus returns the trapped session" \
    wait_for_long query_is 'smtpguard_trap_sessions_total' 1

# Audit in the kernel: after a reload to action = audit the quieter user's
# first connect is queued and decided, its uid goes to @audited_uids, and its
# second connect is audited by the fence itself: both show in the file.
sed -i 's/^action = trap$/action = audit/' "$T/smtpguard.conf"
check "smtpguard reload to action = audit" sg reload
audited=0
for i in 1 2; do
	out=$(as_uid $WEB2_UID "$T/sgprobe" connect -t 2000 $MX4 25)
	case $out in connected*) audited=$((audited + 1)) ;; *) echo "$out" ;; esac
done
check "the audited user's two connects went through" test $audited -eq 2
in_kernel() {
	grep -qx 'smtpguard_kernel_audited_total 1' "$PROM" &&
	    grep -qx 'smtpguard_kernel_auditing 1' "$PROM" &&
	    grep -qx 'smtpguard_attempts_total{action="audit"} 2' "$PROM"
}
check "the textfile counts the SYN audited in the kernel and its uid" wait_for "audit" in_kernel
check "the textfile: no uid fell back to the queue path" \
    grep -qx 'smtpguard_kernel_fallbacks_total{reason="set_full"} 0' "$PROM"
check "prometheus returns the SYN audited in the kernel" \
    wait_for_long query_is 'smtpguard_kernel_audited_total' 1
check "promtool check metrics: still valid with the kernel's audit" \
    sh -c 'promtool check metrics <"$1"' sh "$PROM"

# The bound on label cardinality, changed by a reload: top_users = 1 shows
# only the busiest user.
sed -i 's/^top_users = 5$/top_users = 1/' "$T/smtpguard.conf"
check "smtpguard reload applies [metrics]" sg reload
only_busiest() {
	user_line $WEB_UID $ATTEMPTS && ! grep -q "uid=\"$WEB2_UID\"" "$PROM" &&
	    [ "$(grep -c '^smtpguard_user_attempts_total{' "$PROM")" -eq 1 ]
}
check "top_users = 1: only the busiest user has a series" wait_for "top_users" only_busiest
check "the daemon logged no metrics error" sh -c '! grep -q "metrics:" "$1"' sh "$T/daemon.log"
finish
