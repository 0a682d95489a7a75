/*
 * metricsfile.c — the daemon's side of the metrics: every [metrics] interval
 * it takes a snapshot of the counters (daemon.h), the queue's kernel
 * counters and whether the table is in place, names the busiest users, has
 * metrics.c write the text, and replaces [metrics] textfile with it
 * atomically (util.c's file_replace), so node_exporter never reads half a
 * file. It only reads the daemon's state and writes its own fields; a failed
 * write is logged once, retried at the next interval, and never touches the
 * fence. Nothing is written without a textfile.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"

#define METRICS_FILE_MODE	0644	/* counters, no names beyond the busiest users' */

struct text {
	const char	*buf;
	size_t		 len;
};

static int
fill(FILE *fp, void *arg)
{
	const struct text *t = arg;

	return fwrite(t->buf, 1, t->len, fp) == t->len ? 0 : -1;
}

static void
user_name(uid_t uid, char *out, size_t len)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	out[0] = '\0';
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		strlcpy_sg(out, pw.pw_name, len);
}

static void
snapshot(const struct daemon *d, time_t now, struct metrics *m, struct metrics_user *top)
{
	uint64_t live;

	memset(m, 0, sizeof(*m));
	m->fence_up = ruleset_exists(TABLE_NAME) == 1;
	m->native_queue = d->native_queue;
	m->queue_num = d->cfg.queue_num;
	m->started = d->started;
	m->now = now;
	m->packets = d->cnt.packets;
	m->packet_bytes = d->cnt.packet_bytes;
	memcpy(m->decisions, d->cnt.decisions, sizeof(m->decisions));
	memcpy(m->attempts, d->cnt.attempts, sizeof(m->attempts));
	m->has_queue_stats = queue_stats(d->cfg.queue_num, &m->qs) == 0;
	m->socket_overruns = d->cnt.enobufs;
	m->verdict_errors = d->cnt.verdict_errors;
	m->unparsable = d->cnt.unparsable;
	m->events_lost = d->cnt.events_lost;
	m->alerts = d->cnt.alerts;
	m->trap_sessions = d->cnt.trap_sessions;
	m->trap_direct = d->cnt.trap_direct;
	/* Attempts the kernel reset in windows still open count now, not at their end. */
	(void)refuse_live(d->refuse, &live);
	m->decisions[ACTION_REJECT] += live;
	m->attempts[ACTION_REJECT] += live;
	m->kernel_refused = d->cnt.kernel_refused + live;
	m->kernel_refusing = (unsigned int)refuse_count(d->refuse);
	m->kernel_audited = d->cnt.kernel_audited;
	m->kernel_auditing = (unsigned int)fence_auditing(d, now);
	m->kernel_full = d->cnt.kernel_full;
	m->kernel_errors = d->cnt.kernel_errors;
	m->attrib = &d->attrib_le;
	m->mail_gate = d->cfg.mail_gate;
	m->mail_up = d->gate_fd >= 0;
	if (d->mailgate != NULL)
		mailgate_counts(d->mailgate, m->mail);
	m->top_users = d->cfg.metrics_top_users;
	m->users = top;
	if (d->users != NULL)
		m->nusers = metrics_users_top(d->users, now, top, d->cfg.metrics_top_users);
	for (size_t i = 0; i < m->nusers; i++)
		user_name(top[i].uid, top[i].user, sizeof(top[i].user));
}

void
metricsfile_tick(struct daemon *d, time_t now)
{
	static char buf[METRICS_TEXT_MAX];
	static struct metrics_user top[METRICS_TOP_MAX];
	struct metrics m;
	struct text t = { .buf = buf };
	int n;

	if (d->cfg.metrics_textfile[0] == '\0' || now < d->metrics_next)
		return;
	d->metrics_next = now + d->cfg.metrics_interval;
	snapshot(d, now, &m, top);
	if ((n = metrics_format(&m, buf, sizeof(buf))) >= 0) {
		t.len = (size_t)n;
		n = file_replace(d->cfg.metrics_textfile, METRICS_FILE_MODE, fill, &t);
	}
	if (n < 0) {
		if (!d->metrics_failing)
			log_warn("metrics: writing %s (retried every %u s)",
			    d->cfg.metrics_textfile, d->cfg.metrics_interval);
		d->metrics_failing = true;
		return;
	}
	if (d->metrics_failing)
		log_info("metrics: %s written again", d->cfg.metrics_textfile);
	d->metrics_failing = false;
}
