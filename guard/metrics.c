/*
 * metrics.c — the daemon's counters as the Prometheus text exposition format
 * (version 0.0.4), for node_exporter's textfile collector: a snapshot struct
 * in, text out into the caller's buffer. Also the two tallies the daemon's
 * counters do not keep: the attribution latency in fixed Prometheus buckets
 * (util.c's histogram has no exact bucket edges and no sum), and attempts
 * per uid, of which only the busiest METRICS_TOP_MAX at most are ever shown
 * (a label per uid of a host with thousands of users would be thousands of
 * series). Pure: no I/O, no logging; errors are -1 with errno.
 *
 * Names follow Prometheus conventions: a smtpguard_ prefix, base units
 * (seconds, bytes) in the name, counters end in _total, an _info gauge
 * carries text as labels. Label values are escaped as the format says
 * (backslash, double quote, newline); a user name that is not UTF-8 is left
 * out rather than sent mangled (the uid label always names the user).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

/* Seconds, as Prometheus' le labels; a sock_diag lookup takes ~10-100 us, a /proc scan ms. */
static const struct {
	uint64_t	 ns;
	const char	*le;
} latency_bounds[METRICS_LATENCY_BOUNDS] = {
	{ 10000, "1e-05" }, { 25000, "2.5e-05" }, { 50000, "5e-05" },
	{ 100000, "0.0001" }, { 250000, "0.00025" }, { 500000, "0.0005" },
	{ 1000000, "0.001" }, { 2500000, "0.0025" }, { 5000000, "0.005" },
	{ 10000000, "0.01" }, { 25000000, "0.025" }, { 100000000, "0.1" },
	{ 1000000000, "1" },
};

void
metrics_latency_add(struct metrics_latency *l, uint64_t ns)
{
	unsigned b = 0;

	while (b < METRICS_LATENCY_BOUNDS && ns > latency_bounds[b].ns)
		b++;
	l->bucket[b]++;
	l->count++;
	l->sum_ns += ns;
}

/* --- attempts per uid ------------------------------------------------------ */

struct metrics_uid {
	uid_t		 uid;
	uint64_t	 total;
	long		 minute[METRICS_WINDOW];	/* which minute each count is of */
	uint32_t	 count[METRICS_WINDOW];
	time_t		 last;
};

struct metrics_users {
	struct metrics_uid	*v;
	size_t			 n;
};

struct metrics_users *
metrics_users_new(void)
{
	struct metrics_users *u;

	if ((u = calloc(1, sizeof(*u))) == NULL)
		return NULL;
	if ((u->v = calloc(METRICS_UIDS_MAX, sizeof(*u->v))) == NULL) {
		free(u);
		return NULL;
	}
	return u;
}

void
metrics_users_free(struct metrics_users *u)
{
	if (u == NULL)
		return;
	free(u->v);
	free(u);
}

/* A full table reuses the slot of the uid seen least recently: its count starts again. */
void
metrics_users_count(struct metrics_users *u, uid_t uid, time_t now)
{
	metrics_users_add(u, uid, now, 1);
}

/* N attempts at once: those the kernel reset for UID (refuse.c), at their window's end. */
void
metrics_users_add(struct metrics_users *u, uid_t uid, time_t now, uint64_t n)
{
	struct metrics_uid *s = NULL;
	long minute = (long)(now / 60);
	unsigned b = (unsigned)(minute % METRICS_WINDOW);

	for (size_t i = 0; i < u->n && s == NULL; i++)
		if (u->v[i].uid == uid)
			s = &u->v[i];
	if (s == NULL && u->n < METRICS_UIDS_MAX)
		s = &u->v[u->n++];
	if (s == NULL) {
		s = &u->v[0];
		for (size_t i = 1; i < u->n; i++)
			if (u->v[i].last < s->last)
				s = &u->v[i];
	}
	if (s->uid != uid || s->total == 0) {
		memset(s, 0, sizeof(*s));
		s->uid = uid;
	}
	if (s->minute[b] != minute) {
		s->minute[b] = minute;
		s->count[b] = 0;
	}
	s->count[b] = n > UINT32_MAX - s->count[b] ? UINT32_MAX : s->count[b] + (uint32_t)n;
	s->total += n;
	s->last = now;
}

static uint64_t
recent(const struct metrics_uid *s, time_t now)
{
	long minute = (long)(now / 60);
	uint64_t n = 0;

	for (unsigned b = 0; b < METRICS_WINDOW; b++)
		if (s->minute[b] > minute - METRICS_WINDOW && s->minute[b] <= minute)
			n += s->count[b];
	return n;
}

static bool
busier(const struct metrics_user *a, const struct metrics_user *b)
{
	if (a->recent != b->recent)
		return a->recent > b->recent;
	if (a->total != b->total)
		return a->total > b->total;
	return a->uid < b->uid;
}

/*
 * The MAX busiest uids into OUT, busiest first: by attempts in the last
 * METRICS_WINDOW minutes (a spammer who starts now is shown now), then by
 * attempts since the daemon started. Names are left empty (the caller's).
 */
size_t
metrics_users_top(const struct metrics_users *u, time_t now, struct metrics_user *out,
    size_t max)
{
	size_t n = 0;

	if (max > METRICS_TOP_MAX)
		max = METRICS_TOP_MAX;
	for (size_t i = 0; i < u->n; i++) {
		struct metrics_user c = { .uid = u->v[i].uid, .total = u->v[i].total,
		    .recent = recent(&u->v[i], now) };
		size_t at;

		if (c.total == 0)
			continue;
		/* Insertion into a sorted list of at most METRICS_TOP_MAX. */
		for (at = n; at > 0 && busier(&c, &out[at - 1]); at--)
			;
		if (at >= max)
			continue;
		if (n < max)
			n++;
		memmove(&out[at + 1], &out[at], (n - 1 - at) * sizeof(*out));
		out[at] = c;
	}
	return n;
}

/* --- the text -------------------------------------------------------------- */

struct out {
	char	*buf;
	size_t	 len, used;
	bool	 full;
};

static void __attribute__((format(printf, 2, 3)))
put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->used) {
		o->full = true;
		return;
	}
	o->used += (size_t)n;
}

/* A label value: \ " and newline escaped, as the exposition format wants. */
static void
put_label(struct out *o, const char *s)
{
	for (; *s != '\0' && !o->full; s++) {
		if (*s == '\\')
			put(o, "\\\\");
		else if (*s == '"')
			put(o, "\\\"");
		else if (*s == '\n')
			put(o, "\\n");
		else
			put(o, "%c", *s);
	}
}

static void
family(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
one(struct out *o, const char *name, const char *type, const char *help, uint64_t v)
{
	family(o, name, type, help);
	put(o, "%s %llu\n", name, (unsigned long long)v);
}

static void
by_action(struct out *o, const char *name, const char *help, const uint64_t *v)
{
	family(o, name, "counter", help);
	for (int a = ACTION_REJECT; a <= ACTION_ALLOW; a++)
		put(o, "%s{action=\"%s\"} %llu\n", name, action_name(a), (unsigned long long)v[a]);
}

static void
latency(struct out *o, const struct metrics_latency *l)
{
	static const char name[] = "smtpguard_attribution_duration_seconds";
	uint64_t cum = 0;

	family(o, name, "histogram", "Time to name the sender of a new SMTP flow "
	    "(sock_diag and /proc).");
	for (unsigned b = 0; b < METRICS_LATENCY_BOUNDS; b++) {
		cum += l->bucket[b];
		put(o, "%s_bucket{le=\"%s\"} %llu\n", name, latency_bounds[b].le,
		    (unsigned long long)cum);
	}
	put(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)l->count);
	put(o, "%s_sum %llu.%09llu\n", name, (unsigned long long)(l->sum_ns / 1000000000u),
	    (unsigned long long)(l->sum_ns % 1000000000u));
	put(o, "%s_count %llu\n", name, (unsigned long long)l->count);
}

static void
user_labels(struct out *o, const struct metrics_user *u)
{
	put(o, "{uid=\"%lu\"", (unsigned long)u->uid);
	if (u->user[0] != '\0' && utf8_valid((const unsigned char *)u->user)) {
		put(o, ",user=\"");
		put_label(o, u->user);
		put(o, "\"");
	}
	put(o, "}");
}

static void
users(struct out *o, const struct metrics *m)
{
	static const char tot[] = "smtpguard_user_attempts_total";
	static const char win[] = "smtpguard_user_recent_attempts";
	char help[160];

	snprintf(help, sizeof(help), "SMTP attempts since the daemon started, of the %u "
	    "busiest users only (top_users).", m->top_users);
	family(o, tot, "counter", help);
	for (size_t i = 0; i < m->nusers; i++) {
		put(o, "%s", tot);
		user_labels(o, &m->users[i]);
		put(o, " %llu\n", (unsigned long long)m->users[i].total);
	}
	snprintf(help, sizeof(help), "SMTP attempts in the last %d minutes, of the %u "
	    "busiest users only (top_users).", METRICS_WINDOW, m->top_users);
	family(o, win, "gauge", help);
	for (size_t i = 0; i < m->nusers; i++) {
		put(o, "%s", win);
		user_labels(o, &m->users[i]);
		put(o, " %llu\n", (unsigned long long)m->users[i].recent);
	}
}

static void
mail_gate(struct out *o, const struct metrics *m)
{
	static const char *const names[MAIL_REJECT + 1] = {
		[MAIL_PASS] = "pass", [MAIL_HOLD] = "hold", [MAIL_DEFER] = "defer",
		[MAIL_REJECT] = "reject",
	};
	static const char msg[] = "smtpguard_mail_messages_total";

	one(o, "smtpguard_mail_gate_up", "gauge", "1 if the mail gate's process is running.",
	    m->mail_up);
	family(o, msg, "counter", "Messages the mail gate decided, by what it did.");
	for (int a = MAIL_PASS; a <= MAIL_REJECT; a++)
		put(o, "%s{action=\"%s\"} %llu\n", msg, names[a], (unsigned long long)m->mail[a]);
}

/*
 * The whole text into BUF (NUL-terminated); returns its length, or -1 with
 * ENOBUFS if it does not fit (nothing useful is half-written: the caller
 * writes all or nothing).
 */
int
metrics_format(const struct metrics *m, char *buf, size_t len)
{
	struct out o = { .buf = buf, .len = len };

	if (len == 0 || len > INT32_MAX) {
		errno = EINVAL;
		return -1;
	}
	buf[0] = '\0';
	one(&o, "smtpguard_fence_up", "gauge", "1 if the table inet smtpguard is in the kernel.",
	    m->fence_up);
	family(&o, "smtpguard_queue_info", "gauge", "The queue the fence sends new flows to, "
	    "and how (native nft queue or the xt NFQUEUE compat target).");
	put(&o, "smtpguard_queue_info{path=\"%s\",queue=\"%u\"} 1\n",
	    m->native_queue ? "native" : "compat", m->queue_num);
	one(&o, "smtpguard_start_time_seconds", "gauge", "When the daemon started, in seconds "
	    "since the epoch.", (uint64_t)m->started);
	one(&o, "smtpguard_last_write_timestamp_seconds", "gauge", "When the daemon wrote this "
	    "file, in seconds since the epoch.", (uint64_t)m->now);
	one(&o, "smtpguard_packets_total", "counter", "Packets read from the queue.", m->packets);
	one(&o, "smtpguard_packet_bytes_total", "counter", "IP bytes of the packets read from "
	    "the queue.", m->packet_bytes);
	by_action(&o, "smtpguard_decisions_total", "Flows decided, by action (SMTP attempts, "
	    "self-checks, flows refused for want of room).", m->decisions);
	by_action(&o, "smtpguard_attempts_total", "SMTP attempts by the fenced users, by "
	    "action.", m->attempts);
	if (m->has_queue_stats) {
		family(&o, "smtpguard_queue_dropped_total", "counter", "Packets the kernel dropped "
		    "from the queue: queue_full (queue_maxlen) or socket_full (the daemon's "
		    "socket buffer).");
		put(&o, "smtpguard_queue_dropped_total{reason=\"queue_full\"} %u\n",
		    m->qs.queue_dropped);
		put(&o, "smtpguard_queue_dropped_total{reason=\"socket_full\"} %u\n",
		    m->qs.user_dropped);
		one(&o, "smtpguard_queue_waiting", "gauge", "Packets in the queue without a "
		    "verdict yet.", m->qs.waiting);
	}
	one(&o, "smtpguard_queue_overruns_total", "counter", "Times the daemon found the "
	    "kernel had dropped queue messages (ENOBUFS).", m->socket_overruns);
	one(&o, "smtpguard_verdict_errors_total", "counter", "Verdicts the kernel refused.",
	    m->verdict_errors);
	one(&o, "smtpguard_unparsable_packets_total", "counter", "Queued packets that were not "
	    "IPv4/IPv6 TCP (reset).", m->unparsable);
	one(&o, "smtpguard_events_lost_total", "counter", "Event lines that could not be "
	    "written to the event log.", m->events_lost);
	one(&o, "smtpguard_alerts_total", "counter", "Alerts raised.", m->alerts);
	one(&o, "smtpguard_trap_sessions_total", "counter", "Trapped SMTP sessions that "
	    "ended.", m->trap_sessions);
	one(&o, "smtpguard_trap_direct_total", "counter", "Connections to the trap port that "
	    "the fence did not send there (reset).", m->trap_direct);
	one(&o, "smtpguard_kernel_refused_total", "counter", "Flood attempts reset in the kernel "
	    "(@refused_uids); also in decisions and attempts.", m->kernel_refused);
	one(&o, "smtpguard_kernel_refusing", "gauge", "Uids refused in the kernel now, for the "
	    "rest of their flood window.", m->kernel_refusing);
	one(&o, "smtpguard_kernel_audited_total", "counter", "SYNs audited in the kernel "
	    "(@audited_uids); also in decisions and attempts.", m->kernel_audited);
	one(&o, "smtpguard_kernel_auditing", "gauge", "Uids audited in the kernel now.",
	    m->kernel_auditing);
	family(&o, "smtpguard_kernel_fallbacks_total", "counter", "Uids kept on the queue "
	    "path (never accepted): set_full (@refused_uids or @audited_uids full) or refused "
	    "(a change the kernel refused).");
	put(&o, "smtpguard_kernel_fallbacks_total{reason=\"set_full\"} %llu\n",
	    (unsigned long long)m->kernel_full);
	put(&o, "smtpguard_kernel_fallbacks_total{reason=\"refused\"} %llu\n",
	    (unsigned long long)m->kernel_errors);
	latency(&o, m->attrib);
	if (m->mail_gate)
		mail_gate(&o, m);
	users(&o, m);
	if (o.full) {
		errno = ENOBUFS;
		return -1;
	}
	return (int)o.used;
}
