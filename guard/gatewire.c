/*
 * gatewire.c — the daemon's room for the mail gate: it starts and stops
 * the gate child (gate.c), answers its requests from the epoll loop with
 * mailgate.c's decision, writes the mail events and alerts through
 * fence.c's writer, flood-limited per origin as attempts are per sender
 * ([log] rate and window; a summary counts the rest), saves the counters
 * every few seconds and at exit,
 * restarts a gate that died, and reports it in status. It never decides
 * (mailgate.c does) and never speaks to the MTA (gate.c and gate_exim.c do).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"

#define GATEWIRE_BATCH	64	/* requests answered per wake-up before others get a turn */
#define GATEWIRE_FLOOD_KEYS	4096	/* (origin, action) keys; see flood.c when full */

/* A flood's summary of mail events not written: how many, from which origin. */
static void
mail_flood_summary(void *arg, const char *origin, enum mail_action a, uint64_t suppressed,
    unsigned int window)
{
	struct daemon *d = arg;
	struct mail_event m = { .origin = origin, .limit = UINT32_MAX };
	struct event e = {
		.event = "summary", .action = origin != NULL ? maillimit_action_name(a) : NULL,
		.mail = &m, .suppressed = suppressed, .window = window,
		.msg = origin != NULL ? "mail events of this origin not written (flood limit)" :
		    "mail events not written (flood limit; its origin table was full)",
	};

	fence_emit(d, &e);
}

/* The windows that end by UNTIL are summed up (at exit: all, before "stopped"). */
void
gatewire_summaries(struct daemon *d, time_t until)
{
	if (d->mail_flood != NULL)
		flood_expire_mail(d->mail_flood, until, mail_flood_summary, d);
}

/* [log] rate or window changed: the windows open now are summed up first. */
void
gatewire_flood_reset(struct daemon *d, unsigned int rate, unsigned int window)
{
	struct flood *f = flood_new(rate, window, GATEWIRE_FLOOD_KEYS);

	if (f == NULL)
		return;	/* the old limits stay */
	gatewire_summaries(d, time(NULL) + (time_t)d->cfg.log_window);
	flood_free(d->mail_flood);
	d->mail_flood = f;
}

/* The counters exist even with the gate off: a reload may turn it on. */
int
gatewire_open(struct daemon *d, char *err, size_t errlen)
{
	if ((d->mailgate = mailgate_new(MAILLIMIT_ORIGINS)) == NULL ||
	    (d->mail_flood = flood_new(d->cfg.log_rate, d->cfg.log_window,
	    GATEWIRE_FLOOD_KEYS)) == NULL) {
		snprintf(err, errlen, "mail gate counters: %s", strerror(errno));
		return -1;
	}
	if (mailgate_load(d->mailgate, d->cfg.mail_state, time(NULL), err, errlen) < 0)
		log_warnx("mail gate counters not (all) restored: %s", err);
	err[0] = '\0';
	return d->cfg.mail_gate ? gatewire_start(d, err, errlen) : 0;
}

/* The gate's child, in an empty root of its own beside the trap's. */
int
gatewire_start(struct daemon *d, char *err, size_t errlen)
{
	char root[PATH_MAX + 16], *slash;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = d->gate_tag };

	strlcpy_sg(root, d->cfg.pid_file, sizeof(root));
	if ((slash = strrchr(root, '/')) != NULL && slash != root)
		*slash = '\0';
	else
		strlcpy_sg(root, "/run/smtpguard", sizeof(root));
	strlcpy_sg(root + strlen(root), "/gate-root", sizeof(root) - strlen(root));
	if ((d->gate_pid = gate_start(&d->cfg, root, &d->gate_fd, err, errlen)) < 0) {
		d->gate_fd = -1;
		return -1;
	}
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->gate_fd, &ev) < 0) {
		snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
		gatewire_stop(d);
		return -1;
	}
	return 0;
}

void
gatewire_stop(struct daemon *d)
{
	if (d->gate_pid > 0) {
		kill(d->gate_pid, SIGKILL);
		(void)waitpid(d->gate_pid, NULL, 0);
		d->gate_pid = 0;
	}
	if (d->gate_fd >= 0) {
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->gate_fd, NULL);
		close(d->gate_fd);
		d->gate_fd = -1;
	}
}

void
gatewire_close(struct daemon *d)
{
	char err[PATH_MAX + 128];

	gatewire_stop(d);
	gatewire_summaries(d, time(NULL) + (time_t)d->cfg.log_window);
	flood_free(d->mail_flood);
	d->mail_flood = NULL;
	if (d->mailgate != NULL && mailgate_save(d->mailgate, d->cfg.mail_state, time(NULL),
	    true, err, sizeof(err)) < 0)
		log_warnx("mail gate counters: %s", err);
	mailgate_free(d->mailgate);
	d->mailgate = NULL;
}

/* The gate asks about messages: decide, answer at once, then log. */
/* mailgate_redirected_fn: a session the fence redirected to the MTA. */
static const struct attrib *
redirected(void *arg, int family, const uint8_t *src, uint16_t sport, uint64_t *flow_id,
    time_t now)
{
	const struct flow *f = fence_redirected(arg, family, src, sport, now);

	if (f == NULL)
		return NULL;
	*flow_id = f->flow_id;
	return f->who;
}

void
gatewire_requests(struct daemon *d)
{
	static struct gate_request req;
	static struct mailgate_result res;
	static char buf[sizeof(struct gate_request) + 1];

	for (int i = 0; i < GATEWIRE_BATCH; i++) {
		ssize_t n = recv(d->gate_fd, buf, sizeof(buf), MSG_DONTWAIT);
		uint64_t t0;

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0) {
			log_warnx("gate: the mail gate process is gone; restarting it (the MTA "
			    "applies %s meanwhile)", d->cfg.mail_exim ? "the snippet's "
			    "SMTPGUARD_FALLBACK" : "milter_default_action");
			gatewire_stop(d);
			return;
		}
		if (gateproto_check_request(buf, (size_t)n, &req) < 0) {
			log_warnx("gate: malformed request ignored");
			continue;
		}
		t0 = mono_ns();
		mailgate_decide(d->mailgate, &d->cfg, &d->exc, d->attrib, redirected, d, &req,
		    time(NULL), &res);
		d->cnt.redirect_named += res.redirected;
		if (send(d->gate_fd, &res.reply, sizeof(res.reply), MSG_DONTWAIT |
		    MSG_NOSIGNAL) != (ssize_t)sizeof(res.reply))
			log_warn("gate: verdict for queue id %s not sent", req.facts.queue_id);
		hist_add(&d->gate_ns, mono_ns() - t0);
		/*
		 * A held message's event is always written: it is what names the
		 * origin of the message in the MTA's hold queue (held, release
		 * ORIGIN), and the message itself takes more room than its line.
		 */
		if (res.dec.action == MAIL_HOLD || flood_admit_mail(d->mail_flood,
		    res.origin.name, res.dec.action, time(NULL)))
			fence_emit(d, &res.ev);
		if (res.alert) {
			struct event a = res.ev;

			a.smtp = &res.alert_smtp;
			fence_alert(d, &a, res.alert_msg);
		}
	}
}

/* Each second: counters to disk now and then, and a gate that died restarted. */
void
gatewire_tick(struct daemon *d, time_t now)
{
	char err[PATH_MAX + 128];

	if (d->mailgate == NULL)
		return;
	gatewire_summaries(d, now);
	if (mailgate_save(d->mailgate, d->cfg.mail_state, now, false, err, sizeof(err)) < 0)
		log_warnx("mail gate counters: %s", err);
	if (d->cfg.mail_gate && d->gate_fd < 0 && now != d->gate_restart) {
		d->gate_restart = now;
		gatewire_stop(d);
		if (gatewire_start(d, err, sizeof(err)) < 0)
			log_warnx("restarting the mail gate: %s", err);
	}
}

/* After a reload adopted cfg: the child restarts only for its own settings. */
void
gatewire_reload(struct daemon *d, bool child_changed)
{
	char err[PATH_MAX + 128];

	if (!child_changed)
		return;
	gatewire_stop(d);
	if (d->cfg.mail_gate && gatewire_start(d, err, sizeof(err)) < 0)
		log_warnx("starting the mail gate after reload: %s (retried each second)", err);
}

bool
gatewire_child_changed(const struct config *a, const struct config *b)
{
	return a->mail_gate != b->mail_gate || a->mail_fail_tempfail != b->mail_fail_tempfail ||
	    a->mail_exim != b->mail_exim ||
	    strcmp(a->mail_socket, b->mail_socket) != 0 ||
	    strcmp(a->mail_user, b->mail_user) != 0 || strcmp(a->mail_group, b->mail_group) != 0;
}

void
gatewire_status(const struct daemon *d, json_t *o)
{
	struct mail_tally t = { 0 };
	const char *mta = NULL;

	if (d->mailgate != NULL) {
		mailgate_today(d->mailgate, time(NULL), &t);
		mta = mailgate_last_mta(d->mailgate);
	}
	/* passed..rejected: today, since local midnight (day_start), kept over restarts */
	json_object_set_new(o, "mail_gate", json_pack("{s:b, s:b, s:s, s:s, s:s?, s:I, s:I, s:I, "
	    "s:I, s:I, s:{s:I, s:I, s:I, s:I}}", "enabled", d->cfg.mail_gate, "up",
	    d->gate_fd >= 0, "socket", d->cfg.mail_socket, "fail", d->cfg.mail_fail_tempfail ?
	    "tempfail" : "accept", "mta", mta, "day_start", (json_int_t)t.day,
	    "passed", (json_int_t)t.n[MAIL_PASS], "held", (json_int_t)t.n[MAIL_HOLD],
	    "deferred", (json_int_t)t.n[MAIL_DEFER], "rejected", (json_int_t)t.n[MAIL_REJECT],
	    "decision_ns", "messages", (json_int_t)d->gate_ns.total,
	    "p50", (json_int_t)hist_quantile(&d->gate_ns, 0.50),
	    "p99", (json_int_t)hist_quantile(&d->gate_ns, 0.99),
	    "max", (json_int_t)d->gate_ns.max));
}
