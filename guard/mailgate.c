/*
 * mailgate.c — smtpguardd's half of the mail gate, MTA-neutral: given the
 * facts of one message (from the milter child today, from Exim's
 * readsocket later) it names the sender, applies the limits and says what
 * the MTA is to do. The local sender is found here, not in the gate: the
 * uid a local submission carries is turned into its user, and an SMTP
 * client on this host is named by its socket's owner through the same
 * sock_diag attribution as an attempt (a remote client has no socket on
 * this host, so the lookup itself tells them apart); a session the fence
 * redirected here (action redirect) is named by the caller's callback with
 * its attempt's attribution and flow id. The decision comes
 * with the mail event (and, once per origin per hour, the alert) filled in
 * for the caller to write: this file never logs and never exits. It also
 * keeps what it did today (since local midnight, for status), saved with
 * the hour's counters so a restart keeps both.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "smtpguard.h"

struct mailgate {
	struct maillimit	*ml;
	bool			 dirty;		/* counted since the last save */
	time_t			 saved;
	struct mail_tally	 today;		/* since local midnight, saved with the counters */
	uint64_t		 since_start[MAIL_REJECT + 1];	/* by action: the metrics' counters */
	char			 mta[MAIL_NAME_MAX];	/* the MTA that asked last */
};

struct mailgate *
mailgate_new(size_t max_origins)
{
	struct mailgate *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	if ((g->ml = maillimit_new(max_origins)) == NULL) {
		free(g);
		return NULL;
	}
	return g;
}

void
mailgate_free(struct mailgate *g)
{
	if (g == NULL)
		return;
	maillimit_free(g->ml);
	free(g);
}

int
mailgate_load(struct mailgate *g, const char *path, time_t now, char *err, size_t errlen)
{
	g->saved = now;
	return maillimit_load(g->ml, &g->today, path, now, err, errlen);
}

/* Every MAILGATE_SAVE_EVERY seconds while mail flows, and when forced (at exit). */
int
mailgate_save(struct mailgate *g, const char *path, time_t now, bool force, char *err,
    size_t errlen)
{
	if (!g->dirty || (!force && now - g->saved < MAILGATE_SAVE_EVERY))
		return 0;
	g->saved = now;
	if (maillimit_save(g->ml, &g->today, path, now, err, errlen) < 0)
		return -1;
	g->dirty = false;
	return 0;
}

/* The local midnight that began NOW's day (a DST day is 23 or 25 hours long). */
time_t
mailgate_day_start(time_t now)
{
	struct tm tm;

	if (localtime_r(&now, &tm) == NULL)
		return now - now % 86400;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	return mktime(&tm);
}

/* A tally of another day (before a restart, or yesterday's) starts again at zero. */
static void
roll_day(struct mailgate *g, time_t now)
{
	time_t day = mailgate_day_start(now);

	if (g->today.day != day) {
		memset(&g->today, 0, sizeof(g->today));
		g->today.day = day;
	}
}

/* Messages by action since this daemon started (never reset: a counter's). */
void
mailgate_counts(const struct mailgate *g, uint64_t by_action[MAIL_REJECT + 1])
{
	memcpy(by_action, g->since_start, sizeof(g->since_start));
}

void
mailgate_today(const struct mailgate *g, time_t now, struct mail_tally *t)
{
	time_t day = mailgate_day_start(now);

	if (g->today.day == day)
		*t = g->today;
	else {
		memset(t, 0, sizeof(*t));
		t->day = day;
	}
}

const char *
mailgate_last_mta(const struct mailgate *g)
{
	return g->mta[0] != '\0' ? g->mta : NULL;
}

#define QUEUE_FILE_HEAD	8192	/* the envelope records and the first line, with room */
#define PW_BUF		4096	/* getpwuid_r scratch; passwd lines are short */

static void
user_name(struct attrib *a)
{
	struct passwd pw, *res = NULL;
	char buf[PW_BUF];

	if (getpwuid_r(a->uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		strlcpy_sg(a->user, pw.pw_name, sizeof(a->user));
}

/*
 * A local submission's uid: Postfix's cleanup wrote it into the message's
 * queue file (incoming/QUEUE_ID) before asking its milters, and keeps it
 * from them. The queue id comes from the gate: letters and digits only.
 */
static int
queue_file_uid(const char *queue_dir, const char *qid, uint32_t *uid)
{
	static uint8_t buf[QUEUE_FILE_HEAD];
	char path[PATH_MAX];
	struct stat sb;
	ssize_t n;
	int fd, rc = -1;

	if (qid[0] == '\0' || qid[strspn(qid, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz")] != '\0' ||
	    (size_t)snprintf(path, sizeof(path), "%s/incoming/%s", queue_dir, qid) >=
	    sizeof(path))
		return -1;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)) < 0)
		return -1;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    (n = read(fd, buf, sizeof(buf))) > 0)
		rc = mailorigin_queue_uid(buf, (size_t)n, uid);
	close(fd);
	return rc;
}

/*
 * An SMTP client's own socket on this host, if it has one: then it is a
 * local sender. A session the fence redirected here has none that points at
 * the MTA (it was opened to the mx): the fence knows it by the client's
 * address and port, and names it as its attempt was named.
 */
static void
local_client(struct attrib_ctx *ac, mailgate_redirected_fn redirected, void *rarg,
    const struct mail_facts *f, time_t now, struct mailgate_result *r)
{
	char c[INET6_ADDRSTRLEN], s[INET6_ADDRSTRLEN];
	struct attrib *who = &r->who;
	const struct attrib *a;
	struct pkt p = { 0 };

	if (f->client_port == 0 || f->daemon_port == 0 ||
	    mailorigin_norm_addr(f->client_addr, c, sizeof(c)) < 0 ||
	    mailorigin_norm_addr(f->daemon_addr, s, sizeof(s)) < 0)
		return;
	if (inet_pton(AF_INET, c, p.src) == 1 && inet_pton(AF_INET, s, p.dst) == 1)
		p.family = AF_INET;
	else if (inet_pton(AF_INET6, c, p.src) == 1 && inet_pton(AF_INET6, s, p.dst) == 1)
		p.family = AF_INET6;
	else
		return;
	p.sport = f->client_port;
	p.dport = f->daemon_port;
	if (ac != NULL)
		attrib_flow(ac, &p, false, 0, false, 0, who);
	if (who->has_uid || redirected == NULL ||
	    (a = redirected(rarg, p.family, p.src, p.sport, &r->ev.flow_id, now)) == NULL)
		return;
	*who = *a;
	r->redirected = true;
}

void
mailgate_decide(struct mailgate *g, const struct config *cfg, const struct exceptions *xs,
    struct attrib_ctx *ac, mailgate_redirected_fn redirected, void *redirected_arg,
    struct gate_request *req, time_t now, struct mailgate_result *r)
{
	static const char *const done[] = { "passed", "held in the MTA's hold queue",
	    "deferred", "rejected" };
	const struct mail_facts *f = &req->facts;
	uint32_t limit, dlimit, nrcpt;

	memset(r, 0, sizeof(*r));
	/*
	 * Only the MTA's record of a local submission names its uid, never a
	 * header: Postfix's queue file, or Exim's $originator_uid in its request.
	 */
	if (cfg->mail_exim) {
		strlcpy_sg(req->facts.mta, "exim", sizeof(req->facts.mta));
		req->facts.has_uid = f->local_submit && f->has_uid;
	} else {
		strlcpy_sg(req->facts.mta, "postfix", sizeof(req->facts.mta));
		req->facts.has_uid = false;
		if (f->local_submit && queue_file_uid(cfg->mail_queue, f->queue_id,
		    &req->facts.uid) == 0)
			req->facts.has_uid = true;
	}
	if (f->local_submit && f->has_uid) {
		r->who.has_uid = true;
		r->who.uid = f->uid;
		user_name(&r->who);
	} else if (f->sasl_user[0] == '\0')
		local_client(ac, redirected, redirected_arg, f, now, r);
	mailorigin_name(f, &r->who, &r->origin);
	limit = maillimit_limit_for(xs->limits, xs->nlimits, r->origin.name, cfg->mail_limit);
	dlimit = r->origin.domain[0] == '\0' ? MAILLIMIT_OFF :
	    maillimit_limit_for(xs->limits, xs->nlimits, r->origin.domain,
	    cfg->mail_domain_limit);
	/* What stays on this host is no egress: it is neither limited nor counted. */
	nrcpt = f->info.nrcpt > UINT32_MAX ? UINT32_MAX : (uint32_t)f->info.nrcpt;
	nrcpt -= f->nrcpt_here < nrcpt ? f->nrcpt_here : nrcpt;
	if (nrcpt > 0)
		maillimit_decide(g->ml, &r->origin, nrcpt, limit, dlimit, cfg->mail_over, now,
		    &r->dec);
	else {
		r->dec.limit = limit;
		strlcpy_sg(r->dec.rule, "delivered-here", sizeof(r->dec.rule));
	}
	g->dirty = true;
	roll_day(g, now);
	g->today.n[r->dec.action]++;
	g->since_start[r->dec.action]++;
	strlcpy_sg(g->mta, f->mta, sizeof(g->mta));

	r->reply.version = GATEPROTO_VERSION;
	r->reply.len = sizeof(r->reply);
	r->reply.id = req->id;
	r->reply.action = r->dec.action;
	if (r->dec.over)
		snprintf(r->reply.reason, sizeof(r->reply.reason), "%s: sending limit "
		    "reached (%.200s)", r->dec.action == MAIL_HOLD ? "held" : "refused",
		    r->origin.name);

	if (mailorigin_norm_addr(f->client_addr, r->client_ip, sizeof(r->client_ip)) < 0)
		r->client_ip[0] = '\0';
	r->mail.origin = r->origin.name;
	r->mail.domain = r->origin.domain;
	r->mail.sasl_user = f->sasl_user;
	r->mail.client_ip = f->local_submit ? NULL : r->client_ip;
	r->mail.queue_id = f->queue_id;
	r->mail.mta = f->mta;
	r->mail.rcpt_count = f->info.nrcpt;
	r->mail.counted = nrcpt > 0;
	r->mail.hour_count = r->dec.hour_count;
	r->mail.limit = r->dec.limit;
	r->ev.event = "mail";
	r->ev.action = maillimit_action_name(r->dec.action);
	r->ev.rule = r->dec.rule;
	r->ev.who = r->who.has_uid ? &r->who : NULL;
	r->ev.smtp = &f->info;
	r->ev.mail = &r->mail;
	if (!r->dec.alert)
		return;
	r->alert = true;
	r->alert_smtp = f->info;
	if (r->alert_smtp.nrcpt_kept > MAILGATE_ALERT_RCPTS)
		r->alert_smtp.nrcpt_kept = MAILGATE_ALERT_RCPTS;
	if (r->dec.rule[0] == 'd')
		snprintf(r->alert_msg, sizeof(r->alert_msg), "sender domain %s passed its "
		    "limit of %lu recipients/hour (%s): its mail is %s", r->origin.domain,
		    (unsigned long)r->dec.domain_limit, r->origin.name, done[r->dec.action]);
	else
		snprintf(r->alert_msg, sizeof(r->alert_msg), "origin %s passed its limit of "
		    "%lu recipients/hour%s: its mail is %s", r->origin.name,
		    (unsigned long)r->dec.limit, r->dec.overflow ? " (counted in the shared "
		    "overflow bucket: the origin table is full)" : "", done[r->dec.action]);
}
