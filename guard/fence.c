/*
 * fence.c — the daemon's packet path: a queued packet is parsed, attributed,
 * decided (policy.c), given exactly one verdict, followed if the decision says
 * so (a trapped flow until the trap reports, a redirected flow while the
 * mail gate may ask who it is, an audited flow until inspect.c is done, a probed flow in both directions until sniff.c tells SMTP from the
 * rest), and logged. The trap's reports are joined here to the flows they
 * belong to, and alerts are raised from the attempts. It is also the
 * parent's one writer of the event log (fence_emit), so a failing log is
 * noticed and counted in one place.
 *
 * Every verdict goes through verdict(), and an internal error gives the
 * default: an unparsable packet is reset, a flow that cannot be followed gets
 * the decision's unfollowed mark. A probed flow (detect_any_port) is never
 * released unread: no room for it, its time up undecided, or its state lost,
 * and it is reset. A decided probed flow stays a few seconds as a marker, so
 * the packets queued before its verdict landed get the same one. It never
 * changes the configuration, the exceptions' list or the ruleset (but for
 * the flooding uids it puts in @refused_uids through refuse.c, and takes
 * out with their counts), never calls back into smtpguardd.c, and never exits. The state it shares is described
 * in daemon.h. It stays one room past 600 lines because every path a queued
 * packet can take ends in the one verdict() and the one attempt_emit() here:
 * split, the "exactly one verdict, every attempt flood-limited and counted"
 * rule would have to be kept in two places.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/netfilter.h>	/* after netinet/in.h: it brings linux/in.h */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "daemon.h"

#define QUEUE_READS_MAX		64	/* queue batches per wakeup: the loop stays fair */
#define TRAP_REPORTS_MAX	64	/* trap reports read per wakeup, likewise */
#define ALERT_MSG_MAX		256
/*
 * How long a decided probed flow is remembered: packets queued before its
 * verdict reached the kernel are read within milliseconds, seconds at worst
 * under load; later ones meet the ct mark and never come here.
 */
#define MARKER_KEEP_S		5
/*
 * How long a redirected flow's name is kept after its SYN or its last
 * message through the gate: past Postfix's smtpd_timeout (300 s), so a
 * session the MTA still holds open is still named.
 */
#define REDIRECT_KEEP_S		330

static void
now_ts(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

void
fence_emit(struct daemon *d, struct event *e)
{
	if (e->ts.tv_sec == 0)
		now_ts(&e->ts);
	if (event_write(d->events, e) < 0) {
		if (!d->events_failing)
			log_warn("cannot write the event log %s; the fence holds, lost lines "
			    "are counted (smtpguard status)", d->cfg.log_file);
		d->events_failing = true;
		d->cnt.events_lost++;
	} else if (d->events_failing) {
		d->events_failing = false;
		log_warnx("the event log %s is written again (%llu lines lost so far)",
		    d->cfg.log_file, (unsigned long long)d->cnt.events_lost);
	}
}

void
fence_emit_daemon(struct daemon *d, const char *msg)
{
	struct event e = { .event = "daemon", .msg = msg };

	fence_emit(d, &e);
}

/*
 * The one verdict. A decided state: NF_REPEAT with our bits of the packet
 * mark set to it; the fence chain runs again and copies them into the
 * conntrack mark. MARK_NONE: accept this packet as it is; the flow's ct mark
 * (inspect) already brings its next packet back here. Failures are counted
 * (status: verdict_errors); the first is logged.
 */
static void
verdict(struct daemon *d, const struct queue_packet *qp, enum mark_state st)
{
	uint32_t mark = (qp->mark & ~d->cfg.mark_mask) | mark_value(d->cfg.mark_mask, st);
	int r;

	if (st == MARK_NONE)
		/* A probed flow's packets come marked "inspect": they leave without it. */
		r = queue_verdict(d->queue, qp->id, NF_ACCEPT, (qp->mark & d->cfg.mark_mask) != 0,
		    mark);
	else
		r = queue_verdict(d->queue, qp->id, NF_REPEAT, true, mark);
	if (r < 0 && d->cnt.verdict_errors++ == 0)
		log_warn("verdict for packet %u", qp->id);
}

static void
flood_summary(void *arg, uid_t uid, const char *exe, enum action a, uint64_t suppressed,
    unsigned int window)
{
	struct daemon *d = arg;
	struct attrib who = { .has_uid = uid != (uid_t)-1, .uid = uid };
	struct event e = {
		.event = "summary", .action = action_name(a), .who = &who,
		.suppressed = suppressed, .window = window,
	};

	if (exe != NULL)
		strlcpy_sg(who.exe, exe, sizeof(who.exe));
	fence_emit(d, &e);
}

void
fence_summaries(struct daemon *d, time_t until)
{
	flood_expire(d->flood, until, flood_summary, d);
}

/*
 * A uid left @refused_uids and its counter object was read: the SYNs the
 * kernel reset for it are attempts like the rest, counted now (status,
 * metrics, the alert threshold) and summarised in one event with no exe
 * (the kernel never saw one: it may have been any program of that uid). A
 * uid whose object was gone (the table replaced) lost its count: counted
 * and logged, never guessed.
 */
static void
kernel_summary(void *arg, uid_t uid, uint64_t refused, bool lost)
{
	struct daemon *d = arg;
	struct attrib who = { .has_uid = true, .uid = uid };
	struct event e = {
		.event = "summary", .action = action_name(ACTION_REJECT), .rule = "kernel",
		.who = &who, .suppressed = refused, .window = d->cfg.log_window,
	};
	time_t now = time(NULL);

	if (lost) {
		if (d->cnt.kernel_lost++ == 0)
			log_warnx("uid %lu's counter in @refused_uids was gone before it was read: "
			    "its count is lost (counted in kernel_lost)", (unsigned long)uid);
		return;
	}
	if (refused == 0)
		return;
	d->cnt.kernel_refused += refused;
	d->cnt.decisions[ACTION_REJECT] += refused;
	d->cnt.attempts[ACTION_REJECT] += refused;
	alerts_credit(d->alerts, uid, now, refused);
	if (d->users != NULL)
		metrics_users_add(d->users, uid, now, refused);
	fence_emit(d, &e);
}

/*
 * Every uid out of @refused_uids, its count settled, and out of
 * @audited_uids, before a change of the exceptions or the configuration
 * applies: with one loop and no packet read in between, no SYN is refused
 * or audited in the kernel under a rule that no longer holds. -1 with ERR
 * if the kernel refused (the audited uids stay if only their delete failed).
 */
int
fence_kernel_flush(struct daemon *d, char *err, size_t errlen)
{
	if (refuse_flush(d->refuse, kernel_summary, d, err, errlen) < 0)
		return -1;
	/* The SYNs the kernel audited meanwhile are decided afresh from their copies. */
	if (d->naudited > 0 && ruleset_audited(TABLE_NAME, false, 0, 0, err, errlen) < 0)
		return -1;
	d->naudited = 0;
	return 0;
}

/* The table was replaced without a flush that worked: the set went with it. */
void
fence_kernel_lost(struct daemon *d)
{
	refuse_forget(d->refuse, kernel_summary, d);
	d->naudited = 0;
}

/*
 * A suppressed attempt the kernel could have refused alone: its uid goes
 * to @refused_uids until its flood window ends, unless an alert could be
 * due meanwhile (the kernel does not count toward it one by one). A full
 * set, or a failed add, leaves it on the queue path: counted, the failure
 * logged once; never accepted.
 */
static void
refuse_in_kernel(struct daemon *d, const struct attrib *who, time_t now)
{
	char err[256];
	time_t end;

	if (refuse_known(d->refuse, who->uid))
		return;
	end = flood_window_end(d->flood, who->uid, who->exe, ACTION_REJECT);
	if (end <= now || !alerts_quiet(d->alerts, who->uid, end + 1))
		return;
	if (refuse_add(d->refuse, who->uid, now, end, err, sizeof(err)) == 0)
		return;
	if (errno == ENOSPC)
		d->cnt.kernel_full++;
	else if (d->cnt.kernel_errors++ == 0)
		log_warnx("adding uid %lu to @refused_uids: %s; its SYNs are refused through "
		    "the queue (counted in kernel_errors)", (unsigned long)who->uid, err);
}

/* An audited session is over: its smtp event, then the flow is forgotten. */
static void
audit_event(struct daemon *d, struct flow *f)
{
	struct event e = { .event = "smtp", .action = "audit" };

	if (f->inspect == NULL || f->probe)
		return;
	e.who = f->who;
	e.flow = &f->addr;
	e.flow_id = f->flow_id;
	e.smtp = &((struct inspect *)f->inspect)->info;
	fence_emit(d, &e);
	inspect_free(f->inspect);
	f->inspect = NULL;
}

/* A probed flow's state goes: it never had an smtp event to give (no audit). */
static void
drop_probe(struct flow *f)
{
	if (!f->probe)
		return;
	inspect_any_free(f->inspect);
	f->inspect = NULL;
}

/*
 * A followed flow is over: a probe's state goes; an audited flow's smtp event
 * is written, its inspect field WHY when inspection itself did not say.
 */
static void
flow_over(struct daemon *d, struct flow *f, const char *why)
{
	drop_probe(f);
	if (f->inspect != NULL && ((struct inspect *)f->inspect)->info.inspect == NULL)
		((struct inspect *)f->inspect)->info.inspect = why;
	audit_event(d, f);
}

static void
flow_done(struct flow *f, void *arg)
{
	flow_over(arg, f, "idle");
}

static void
forget_flow(struct daemon *d, struct flow *f, const char *why)
{
	flow_over(d, f, why);
	flow_remove(d->flows, f);
}

int
fence_open(struct daemon *d)
{
	if ((d->flows = flow_table_new(FLOWS_MAX)) == NULL)
		return -1;
	if ((d->refuse = refuse_new(TABLE_NAME)) == NULL) {
		flow_table_free(d->flows, NULL, NULL);
		d->flows = NULL;
		return -1;
	}
	return 0;
}

/* The flows still followed get their smtp event ("idle"). */
void
fence_close(struct daemon *d)
{
	flow_table_free(d->flows, flow_done, d);
	d->flows = NULL;
	refuse_free(d->refuse);
	d->refuse = NULL;
}

static void probe_decided(struct daemon *, const struct queue_packet *, struct flow *,
    enum inspect_probe, time_t now);

struct sweep {
	struct daemon	*d;
	time_t		 now;
};

/*
 * What leaves the table at a tick: markers past their keep, trapped or
 * audited flows idle too long (a trap session that never reported). A probed
 * flow still undecided when its time is up is reset: it becomes a "reject"
 * marker, and once that is gone too its packets come back marked "inspect"
 * and are reset as lost (policy.c). Keepalives do not make it younger.
 */
static bool
sweep_gone(struct flow *f, void *arg)
{
	struct sweep *w = arg;
	struct daemon *d = w->d;

	if (f->marker != MARK_NONE)
		return f->last_seen < w->now - MARKER_KEEP_S;
	if (f->action == ACTION_REDIRECT)
		return f->last_seen < w->now - REDIRECT_KEEP_S;
	if (!f->probe)
		return f->last_seen < w->now - (time_t)d->cfg.trap_timeout - 60;
	if (f->created + (time_t)d->cfg.any_port_timeout > w->now)
		return false;
	d->cnt.any_port_expired++;
	probe_decided(d, NULL, f, inspect_any_finish(f->inspect,
	    "undecided when its time was up (any_port_timeout): fails closed"), w->now);
	return false;
}

static void
sweep_done(struct flow *f, void *arg)
{
	flow_done(f, ((struct sweep *)arg)->d);
}

static void census_after_overrun(struct daemon *);

void
fence_tick(struct daemon *d, time_t now)
{
	struct sweep w = { .d = d, .now = now };
	char err[256];

	flood_expire(d->flood, now, flood_summary, d);
	/* Tried again each tick while the kernel refuses: the element keeps counting. */
	if (refuse_expire(d->refuse, now, kernel_summary, d, err, sizeof(err)) < 0 &&
	    d->cnt.kernel_errors++ == 0)
		log_warnx("deleting from @refused_uids: %s (retried each second; counted in "
		    "kernel_errors)", err);
	flow_sweep(d->flows, sweep_gone, sweep_done, &w);
	if (d->tap_overran)
		census_after_overrun(d);
}

/* Keeps the attempt's attribution for the smtp event that comes later. */
static struct flow *
follow_flow(struct daemon *d, const struct pkt *p, const struct attrib *who, uint64_t flow_id,
    enum action a, time_t now)
{
	struct flow_key k;
	struct flow *f;

	flow_key_of(p, &k);
	if ((f = flow_lookup(d->flows, &k)) != NULL)
		forget_flow(d, f, "replaced");
	if ((f = flow_insert(d->flows, &k, now)) == NULL)
		return NULL;	/* full: bounded; the caller copes */
	f->flow_id = flow_id;
	f->action = a;
	*f->who = *who;
	f->addr = *p;
	f->addr.payload = NULL;
	f->addr.payload_len = 0;
	f->last_seen = now;
	return f;
}

/*
 * What the decision says to follow; the mark to give, or the unfollowed one.
 * A redirected flow is kept for the mail gate within its uid's share, so
 * one user's sessions cannot take the room audited and trapped flows need.
 */
static enum mark_state
follow(struct daemon *d, const struct pkt *p, const struct attrib *who, uint64_t flow_id,
    const struct decision *dec, time_t now)
{
	struct flow *f;
	struct inspect *in;

	if ((f = follow_flow(d, p, who, flow_id, dec->action, now)) == NULL)
		return dec->unfollowed;
	if (dec->follow == POLICY_FOLLOW_TRAP)
		return dec->mark;
	if (dec->follow == POLICY_FOLLOW_REDIRECT) {
		if (flow_share_take(d->flows, f, who->has_uid ? who->uid : (uid_t)-1,
		    FLOW_SHARE_MAX) < 0) {
			flow_remove(d->flows, f);
			return dec->unfollowed;
		}
		return dec->mark;
	}
	if ((in = inspect_new(p->seq, d->cfg.inspect_bytes, dec->implicit_tls)) == NULL) {
		flow_remove(d->flows, f);
		return dec->unfollowed;
	}
	f->inspect = in;
	return dec->mark;
}

/*
 * An alert: one event, always written (never flood-limited), and the
 * admin's program run with it on stdin.
 */
void
fence_alert(struct daemon *d, const struct event *attempt, const char *msg)
{
	static char line[EVENT_LINE_MAX];
	struct event a = *attempt;
	int n;

	a.event = "alert";
	a.msg = msg;
	d->cnt.alerts++;
	fence_emit(d, &a);
	if (d->cfg.alert_exec[0] == '\0')
		return;
	if ((n = event_encode(&a, line, sizeof(line))) < 0 ||
	    send(d->alert_fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_warn("alert program %s not run", d->cfg.alert_exec);
}

static void
query_of(struct daemon *d, const struct queue_packet *qp, const struct pkt *p, time_t now,
    struct policy_query *q)
{
	memset(q, 0, sizeof(*q));
	q->cfg = &d->cfg;
	q->exc = &d->exc;
	q->pkt = p;
	q->mark = qp != NULL ? qp->mark : 0;
	q->now = now;
}

/*
 * An attempt's event and alerts, for every attempt alike (a new flow's, a
 * probed flow's once it is found to speak SMTP, one refused for lack of
 * room): the flood limiter decides whether the line is written (a
 * self-check's always is), and each SMTP attempt (SMTP) counts toward the
 * uid's alert threshold. E carries the attempt; who is complete (attrib_details) when
 * WRITTEN or ALERT_DUE say it will be read: the caller asks attempt_admit
 * first.
 */
struct admit {
	bool	 written, alert_due;
	uint64_t in_window;
};

static void
attempt_admit(struct daemon *d, const struct attrib *who, const struct decision *dec,
    bool smtp, time_t now, struct admit *ad)
{
	if (dec->self_check) {
		d->cnt.self_checks++;
		ad->written = true;
	} else
		ad->written = flood_admit(d->flood, who->has_uid ? who->uid : (uid_t)-1, who->exe,
		    dec->action, now);
	/* A flow refused for want of room, or reset undecided, is no SMTP attempt to alert on. */
	ad->alert_due = smtp && who->has_uid &&
	    alerts_count(d->alerts, who->uid, now, &ad->in_window);
	if (smtp && !dec->self_check) {
		d->cnt.attempts[dec->action]++;
		if (who->has_uid && d->users != NULL)
			metrics_users_count(d->users, who->uid, now);
	}
}

static void
attempt_emit(struct daemon *d, struct event *e, const struct attrib *who,
    const struct decision *dec, const struct admit *ad)
{
	if (e->ts.tv_sec == 0)
		now_ts(&e->ts);
	e->action = action_name(dec->action);
	e->rule = dec->rule;
	e->who = who;
	if (ad->written)
		fence_emit(d, e);
	if (dec->cap_exceeded) {
		char msg[ALERT_MSG_MAX];

		snprintf(msg, sizeof(msg), "exception cap reached (%s): the default action "
		    "applies", dec->rule);
		fence_alert(d, e, msg);
	}
	if (ad->alert_due) {
		char msg[ALERT_MSG_MAX];

		snprintf(msg, sizeof(msg), "uid %lu made %llu SMTP attempts in 10 minutes "
		    "(threshold %u)", (unsigned long)who->uid, (unsigned long long)ad->in_window,
		    d->cfg.alert_threshold);
		fence_alert(d, e, msg);
	}
}

/*
 * A probed flow's reading reached R (QP: the packet that brought it there,
 * or NULL when its time ran out). MORE: the packet passes. Otherwise the
 * verdict, the attempt if it is one (SMTP, or reset undecided), and the
 * flow becomes a marker that gives the same verdict to its packets still
 * queued.
 */
static void
probe_decided(struct daemon *d, const struct queue_packet *qp, struct flow *f,
    enum inspect_probe r, time_t now)
{
	struct inspect_any *a = f->inspect;
	struct event e = { .event = "attempt" };
	struct policy_query q;
	struct decision dec;
	struct admit ad;

	query_of(d, qp, &f->addr, now, &q);
	q.probe = r;
	policy_decide(&q, &dec);
	if (qp != NULL)
		verdict(d, qp, dec.mark);
	if (dec.mark == MARK_NONE)
		return;
	if (dec.action != ACTION_NONE) {
		d->cnt.decisions[dec.action]++;
		attempt_admit(d, f->who, &dec, dec.proto != NULL, now, &ad);
		if (dec.proto != NULL)
			a->sniff.info.proto = dec.proto;
		e.flow = &f->addr;
		e.flow_id = f->flow_id;
		e.smtp = &a->sniff.info;
		attempt_emit(d, &e, f->who, &dec, &ad);
	}
	inspect_any_free(a);
	f->inspect = NULL;
	flow_retire(d->flows, f, dec.mark, now);
}

/*
 * A packet of a followed flow, found by its 4-tuple (a probed flow's replies
 * by the reversed one): read it, let it go on, and once inspection is done
 * release the flow to the kernel. A marker repeats its verdict. Returns
 * false if the packet belongs to no flow the daemon follows.
 */
static bool
inspected_packet(struct daemon *d, const struct queue_packet *qp, const struct pkt *p,
    time_t now)
{
	enum sniff_dir dir = SNIFF_CLIENT;
	struct flow_key k, r;
	struct flow *f;

	flow_key_of(p, &k);
	if ((f = flow_lookup(d->flows, &k)) == NULL && d->cfg.detect_any_port) {
		flow_key_reverse(&k, &r);
		if ((f = flow_lookup(d->flows, &r)) != NULL && !f->probe && f->marker == MARK_NONE)
			f = NULL;	/* only a probed flow's replies are queued */
		dir = SNIFF_SERVER;
	}
	if (f == NULL)
		return false;
	if ((p->tcp_flags & TH_SYN) && dir == SNIFF_CLIENT && p->seq != f->addr.seq)
		return false;	/* a new connection on the same ports: start it afresh */
	if (f->marker != MARK_NONE) {
		verdict(d, qp, f->marker);	/* queued before its verdict landed */
		return true;
	}
	if (f->inspect == NULL)
		return false;
	d->cnt.inspected++;
	f->last_seen = now;
	if (f->probe) {
		probe_decided(d, qp, f, inspect_any_packet(f->inspect, dir, p), now);
		return true;
	}
	if (p->tcp_flags & TH_SYN) {
		verdict(d, qp, MARK_NONE);	/* its SYN again: the stream trims it */
		return true;
	}
	if (inspect_segment(f->inspect, p) == INSPECT_MORE) {
		verdict(d, qp, MARK_NONE);
		return true;
	}
	verdict(d, qp, MARK_ALLOW);
	forget_flow(d, f, "complete");
	return true;
}

/*
 * A SYN that cannot be followed (detect_any_port): the table is full or its
 * uid holds its share of it. Refused at once and counted; the attempt is
 * logged, flood-limited, under a rule that says which.
 */
static void
probe_refused(struct daemon *d, const struct queue_packet *qp, const struct pkt *p,
    const struct attrib *who, uint64_t flow_id, const char *rule, time_t now)
{
	struct event e = { .event = "attempt", .flow = p, .flow_id = flow_id };
	struct decision dec = { .action = ACTION_REJECT, .mark = MARK_REJECT };
	struct admit ad;

	d->cnt.any_port_refused++;
	d->cnt.decisions[ACTION_REJECT]++;
	strlcpy_sg(dec.rule, rule, sizeof(dec.rule));
	verdict(d, qp, MARK_REJECT);
	attempt_admit(d, who, &dec, false, now, &ad);
	attempt_emit(d, &e, who, &dec, &ad);
}

/*
 * The SYN of a flow to an unfenced port: name its sender now (it still sits
 * in connect()), then read both directions from here on; the SYN's own
 * payload (TCP Fast Open) is the client's first bytes.
 */
static void
start_probe(struct daemon *d, const struct queue_packet *qp, const struct pkt *p,
    const struct decision *dec, time_t now)
{
	struct attrib who;
	struct flow *f;
	uint64_t id = d->next_flow_id++;

	attrib_flow(d->attrib, p, qp->has_uid, qp->uid, qp->has_gid, qp->gid, &who);
	if ((f = follow_flow(d, p, &who, id, dec->action, now)) == NULL) {
		probe_refused(d, qp, p, &who, id, "flow-table-full", now);
		return;
	}
	if (flow_share_take(d->flows, f, who.has_uid ? who.uid : (uid_t)-1,
	    FLOW_SHARE_MAX) < 0) {
		flow_remove(d->flows, f);
		probe_refused(d, qp, p, &who, id, "flow-share", now);
		return;
	}
	if ((f->inspect = inspect_any_new(p->seq, policy_mail_relay, &d->cfg)) == NULL) {
		flow_remove(d->flows, f);
		probe_refused(d, qp, p, &who, id, "flow-table-full", now);
		return;
	}
	f->probe = true;
	switch (inspect_any_packet(f->inspect, SNIFF_CLIENT, p)) {
	case INSPECT_PROBE_MORE:
		verdict(d, qp, dec->mark);	/* inspect: its packets, both ways, come here */
		break;
	default:
		/* Decided by the SYN's payload: never let it out, whatever it is. */
		probe_decided(d, qp, f, ((struct inspect_any *)f->inspect)->result, now);
		break;
	}
}

/*
 * Every later SYN of the uid is audited in the kernel (@audited_uids) for
 * AUDITED_TIMEOUT_S, after this one's verdict; then its next SYN is queued
 * and it goes in again. A full set, or a failed add, leaves it on the queue
 * path: counted, the failure logged once.
 */
static void
audit_in_kernel(struct daemon *d, uid_t uid, time_t now)
{
	struct audited_uid *slot = NULL;
	char err[256];

	for (size_t i = 0; i < d->naudited; i++) {
		if (d->audited[i].uid == uid) {
			slot = &d->audited[i];
			break;
		}
		if (slot == NULL && d->audited[i].until <= now)
			slot = &d->audited[i];	/* timed out: its room is free */
	}
	if (slot != NULL && slot->uid == uid && slot->until > now)
		return;
	if (slot == NULL && d->naudited == AUDITED_UIDS_MAX) {
		d->cnt.kernel_full++;
		return;
	}
	if (ruleset_audited(TABLE_NAME, true, uid, AUDITED_TIMEOUT_S * 1000ULL, err,
	    sizeof(err)) < 0) {
		if (d->cnt.kernel_errors++ == 0)
			log_warnx("adding uid %lu to @audited_uids: %s; its SYNs are audited "
			    "through the queue (counted in kernel_errors)", (unsigned long)uid, err);
		return;
	}
	if (slot == NULL)
		slot = &d->audited[d->naudited++];
	slot->uid = uid;
	slot->until = now + AUDITED_TIMEOUT_S;
}

/* The uids audited in the kernel now. */
size_t
fence_auditing(const struct daemon *d, time_t now)
{
	size_t n = 0;

	for (size_t i = 0; i < d->naudited; i++)
		n += d->audited[i].until > now;
	return n;
}

/*
 * What the kernel's audit of a SYN becomes when smtpguardd decides
 * otherwise (the policy changed after the kernel took it, before its copy
 * was read): it went out, so only the flow's next packets can still get
 * the decision. Allow stays allow; anything else is reset, as a flow met
 * mid-way is.
 */
static void
kernel_audit_overruled(struct decision *dec)
{
	if (dec->action == ACTION_AUDIT)
		return;
	dec->follow = POLICY_FOLLOW_NONE;
	if (dec->action != ACTION_ALLOW) {
		dec->action = ACTION_REJECT;
		dec->mark = MARK_REJECT;
	}
	dec->unfollowed = dec->mark;
}

/*
 * A new flow whose sender is named: the attempt, its verdict, its event and
 * alerts. QP is its SYN waiting in the queue; NULL for a SYN the kernel
 * audited (@audited_uids), read from its copy (IDS: the socket's owner): the
 * SYN went on, and a verdict other than audit goes into the flow's ct mark.
 */
static void
attempt(struct daemon *d, const struct queue_packet *qp, const struct nflog_packet *copy,
    const struct pkt *p, struct policy_query *q, time_t now)
{
	struct attrib who;
	struct decision dec;
	struct event e = { .event = "attempt" };
	struct admit ad;
	uint64_t t0, took;
	enum mark_state mark;
	bool refusable, auditable;

	/*
	 * Attribute before the verdict: the process still sits in connect().
	 * Uid, pid and exe decide and key the flood limiter; the rest is read
	 * only for an event that will be written, or a flow that is followed.
	 */
	t0 = mono_ns();
	if (qp != NULL)
		attrib_sender(d->attrib, p, qp->has_uid, qp->uid, qp->has_gid, qp->gid, &who);
	else
		attrib_sender(d->attrib, p, copy->has_uid, copy->uid, copy->has_gid, copy->gid,
		    &who);
	took = mono_ns() - t0;
	hist_add(&d->attrib_ns, took);
	metrics_latency_add(&d->attrib_le, took);
	q->named = true;
	q->has_uid = who.has_uid;
	q->uid = who.uid;
	policy_decide(q, &dec);
	if (qp == NULL)
		kernel_audit_overruled(&dec);
	attempt_admit(d, &who, &dec, true, now, &ad);
	refusable = qp != NULL && !ad.written && policy_kernel_refusable(q, &dec);
	auditable = qp != NULL && policy_kernel_auditable(q, &dec);
	if (ad.written || ad.alert_due || dec.cap_exceeded || dec.follow != POLICY_FOLLOW_NONE)
		attrib_details(d->attrib, &who);
	e.flow_id = d->next_flow_id++;
	mark = dec.mark;
	if (dec.follow != POLICY_FOLLOW_NONE)
		mark = follow(d, p, &who, e.flow_id, &dec, now);
	if (dec.action == ACTION_REDIRECT && mark != dec.mark) {
		/* No room to keep its name for the gate: reset, and the event says so. */
		d->cnt.redirect_refused++;
		dec.action = ACTION_REJECT;
		strlcpy_sg(dec.rule, "redirect-no-room", sizeof(dec.rule));
	}
	if (qp != NULL)
		verdict(d, qp, mark);
	else if (mark != MARK_INSPECT && ctmark_set(d->ctmark, p, d->cfg.mark_mask,
	    mark_value(d->cfg.mark_mask, mark)) < 0 && d->cnt.audit_unreleased++ == 0)
		log_warn("setting a flow's conntrack mark after the kernel audited its SYN");
	d->cnt.decisions[dec.action]++;
	e.flow = p;
	attempt_emit(d, &e, &who, &dec, &ad);
	/* After its verdict: this SYN does not wait for the set's batch. */
	if (refusable)
		refuse_in_kernel(d, &who, now);
	if (auditable)
		audit_in_kernel(d, who.uid, now);
}

static void
on_packet(const struct queue_packet *qp, void *arg)
{
	struct daemon *d = arg;
	struct policy_query q;
	struct decision dec;
	struct pkt p;
	time_t now = time(NULL);

	d->cnt.packets++;
	d->cnt.packet_bytes += qp->len;
	if (pkt_parse(qp->payload, qp->len, &p) < 0) {
		/* Cannot tell what it is: the fence fails closed. */
		d->cnt.unparsable++;
		verdict(d, qp, MARK_REJECT);
		return;
	}
	if (inspected_packet(d, qp, &p, now))
		return;
	/* Asked first without the sender: a packet that needs none costs no lookup. */
	query_of(d, qp, &p, now, &q);
	policy_decide(&q, &dec);
	if (dec.lost) {
		/* Followed once, unknown now: reset, counted, never released. */
		d->cnt.any_port_lost++;
		verdict(d, qp, dec.mark);
	} else if (dec.need_sender)
		attempt(d, qp, NULL, &p, &q, now);
	else if (dec.follow == POLICY_FOLLOW_PROBE)
		start_probe(d, qp, &p, &dec, now);
	else
		verdict(d, qp, dec.mark);
}

/*
 * After a netlink read that failed with ERR: whether to read on. An
 * overrun (the kernel dropped messages for us) is counted in *OVERRUNS,
 * logged the first time as OVERRUN, and not fatal; nothing left to read,
 * or an error (logged as WHAT), ends this turn.
 */
static bool
read_again(int err, uint64_t *overruns, const char *overrun, const char *what)
{
	if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
		return false;
	if (err == ENOBUFS) {
		if ((*overruns)++ == 0)
			log_warnx("%s", overrun);
		return true;
	}
	errno = err;
	log_warn("%s", what);
	return false;
}

void
fence_read(struct daemon *d)
{
	/* Drain what is there; each read is one batch of packets. */
	for (int i = 0; i < QUEUE_READS_MAX; i++) {
		uint64_t lost = queue_verdicts_lost(d->queue);
		int r = queue_read(d->queue, on_packet, d), err = errno;

		if (lost == 0 && queue_verdicts_lost(d->queue) > 0 && d->cnt.verdict_errors == 0)
			log_warnx("a batch of verdicts could not be sent; counted in "
			    "verdict_errors");
		if (r < 0 && !read_again(err, &d->cnt.enobufs,
		    "queue socket overrun (ENOBUFS); dropped packets are counted",
		    "reading the queue"))
			return;
	}
}

/*
 * The mail gate's question about an SMTP client on this host whose socket
 * it cannot find: a session the fence redirected to the MTA, known here by
 * the client's address and port. Its attribution is the attempt's (uid, pid,
 * exe, cmdline, ...), and its flow id joins the two events. NULL if none.
 */
const struct flow *
fence_redirected(struct daemon *d, int family, const uint8_t *src, uint16_t sport,
    time_t now)
{
	struct flow *f = flow_find_source(d->flows, ACTION_REDIRECT, family, src, sport);

	if (f == NULL)
		return NULL;
	f->last_seen = now;	/* the session goes on: keep its name */
	return f;
}

/*
 * An audited flow read to its end (WHY, if inspection did not say): the
 * kernel stops copying it, its ct mark becoming allow through ctnetlink
 * unless the fence's DATA rule set it already (IN_KERNEL), and its smtp
 * event is written. If the mark cannot be set the flow only goes on being
 * copied, and its copies are ignored: counted.
 * The flow stays a while as an allow marker: a packet of it can still meet
 * the queue right after the mark changed (one audited flow in 10,000 or so
 * in the bench's namespaces, its QUIT or FIN, cause in the kernel not found),
 * and it gets the flow's verdict, not a reset as established-before-fence.
 */
static void
release_audited(struct daemon *d, struct flow *f, const char *why, bool in_kernel)
{
	if (!in_kernel && ctmark_set(d->ctmark, &f->addr, d->cfg.mark_mask,
	    mark_value(d->cfg.mark_mask, MARK_ALLOW)) < 0 && d->cnt.audit_unreleased++ == 0)
		log_warn("setting an audited flow's conntrack mark (its copies go on, ignored)");
	flow_over(d, f, why);
	flow_retire(d->flows, f, MARK_ALLOW, f->last_seen);
}

/*
 * A copy of an audited flow's packet (nflog.c), which itself went on in the
 * kernel: read on the client's side until inspection is done. A copy of a
 * flow no longer followed (read already, swept) is ignored. A SYN's copy
 * is one the kernel audited itself (@audited_uids): a new flow, decided
 * and followed here as if it had been queued, unless it is a followed
 * flow's SYN again.
 */
static void
on_audit_copy(const struct nflog_packet *np, void *arg)
{
	struct daemon *d = arg;
	struct policy_query q;
	struct flow_key k;
	struct flow *f;
	struct pkt p;
	bool more, in_kernel;
	time_t now = time(NULL);

	d->cnt.audit_copies++;
	d->cnt.audit_copy_bytes += np->len;
	if (pkt_parse_copy(np->payload, np->len, &p) < 0) {
		d->cnt.unparsable++;
		return;
	}
	flow_key_of(&p, &k);
	f = flow_lookup(d->flows, &k);
	if ((p.tcp_flags & (TH_SYN | TH_ACK)) == TH_SYN) {
		if (f != NULL && f->addr.seq == p.seq)
			return;	/* retransmitted */
		d->cnt.kernel_audited++;
		query_of(d, NULL, &p, now, &q);
		attempt(d, NULL, np, &p, &q, now);
		return;
	}
	if (f == NULL || f->probe || f->marker != MARK_NONE || f->inspect == NULL ||
	    (p.tcp_flags & TH_SYN))
		return;
	d->cnt.inspected++;
	f->last_seen = now;
	more = inspect_segment(f->inspect, &p) == INSPECT_MORE;
	in_kernel = d->data_release && inspect_released_in_kernel(&p);
	/*
	 * A DATA line the reading did not take as one (split from the line
	 * before it, sent as an AUTH answer) still ends the copies: what
	 * follows goes unread, and the event says so ("split-data").
	 */
	if (!more || in_kernel)
		release_audited(d, f, more ? "split-data" : "complete", in_kernel);
}

void
fence_read_audit(struct daemon *d)
{
	uint64_t overruns = d->cnt.audit_overruns;

	/* An overrun loses copies only: the packets themselves went on. */
	for (int i = 0; i < QUEUE_READS_MAX; i++)
		if (nflog_read(d->audit_tap, on_audit_copy, d) < 0 &&
		    !read_again(errno, &d->cnt.audit_overruns, "audit tap overrun (ENOBUFS): "
		    "copies were lost, some smtp events may be incomplete; counted",
		    "reading the audit tap"))
			break;
	if (d->cnt.audit_overruns != overruns)
		d->tap_overran = true;
}

/* A flow the kernel still copies to the tap: stamped, if it is followed. */
static void
still_tapped(const struct pkt *p, void *arg)
{
	struct daemon *d = arg;
	struct flow_key k;
	struct flow *f;

	flow_key_of(p, &k);
	if ((f = flow_lookup(d->flows, &k)) != NULL)
		f->tap_seen = d->tap_census;
}

/*
 * A followed audited flow missing from two censuses running ends: every copy
 * made before the first was read before the second began (nflog_read_past),
 * and a SYN whose entry was not yet in the table at the first is in it at
 * the second.
 */
static bool
lost_to_overrun(struct flow *f, void *arg)
{
	struct daemon *d = arg;

	if (f->marker != MARK_NONE || f->probe || f->action != ACTION_AUDIT ||
	    f->inspect == NULL || f->tap_seen == d->tap_census)
		return false;
	if (f->tap_missed == 0 || f->tap_missed != d->tap_census - 1) {
		f->tap_missed = d->tap_census;
		d->tap_overran = true;	/* a census again, next tick */
		return false;
	}
	d->cnt.audit_lost++;
	release_audited(d, f, "lost", true);
	return false;
}

/*
 * After the tap overran: a followed audited flow the kernel no longer copies
 * (its DATA rule released it, or its entry is gone) will never have another
 * copy read; the overrun took its last. It would wait for the idle sweep and
 * end "idle"; it ends now, "lost", with what was read of it. One dump of the
 * entries the kernel still copies, filtered by their mark in the kernel,
 * each tick (once the one before has settled) until no followed flow is
 * missing from it.
 */
static void
census_after_overrun(struct daemon *d)
{
	if (!nflog_read_past(d->audit_tap, &d->census_end))
		return;	/* copies made before the last census still to read: the next tick */
	d->tap_census++;
	if (ctmark_each(d->cfg.mark_mask, mark_value(d->cfg.mark_mask, MARK_INSPECT), still_tapped,
	    d) < 0) {
		if (!d->census_failing)
			log_warn("listing the audited flows after a tap overrun (tried again "
			    "each second; meanwhile they end at the idle sweep)");
		d->census_failing = true;
		return;
	}
	/* Marked after the dump: a flow missing from it made its last copy before. */
	nflog_mark(d->audit_tap, &d->census_end);
	d->census_failing = false;
	d->tap_overran = false;
	flow_sweep(d->flows, lost_to_overrun, NULL, d);
}

/*
 * Trapped sessions that ended: one smtp event each, with the attempt's
 * attribution. Returns -1 when the trap process is gone (the caller
 * restarts it), else 0.
 */
/*
 * Somebody connected to the trap port itself, not redirected by the fence:
 * the trap reset it without a banner. Counted, and logged (flood-limited) as
 * a refused attempt, never as trap evidence: its envelope would be forged.
 */
static void
trap_direct(struct daemon *d, const struct pkt *addr)
{
	struct event e = { .event = "attempt", .action = "reject", .rule = "trap-direct",
	    .flow = addr };

	d->cnt.trap_direct++;
	if (flood_admit(d->flood, (uid_t)-1, "trap-direct", ACTION_REJECT, time(NULL)))
		fence_emit(d, &e);
}

int
fence_trap_reports(struct daemon *d)
{
	struct trap_report r;
	struct pkt addr = { 0 };
	struct flow_key k;
	struct flow *f;
	struct event e = { .event = "smtp", .action = "trap" };

	for (int i = 0; i < TRAP_REPORTS_MAX; i++) {
		if (trap_read_report(d->trap_fd, &r) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EPROTO) {
				log_warnx("trap: malformed report ignored");
				continue;
			}
			return -1;
		}
		addr.family = r.family;
		memcpy(addr.src, r.src, sizeof(addr.src));
		memcpy(addr.dst, r.dst, sizeof(addr.dst));
		addr.sport = r.sport;
		addr.dport = r.dport;
		if (strcmp(r.reason, "direct") == 0) {
			trap_direct(d, &addr);
			continue;
		}
		flow_key_of(&addr, &k);
		r.info.inspect = r.reason;
		e.ts.tv_sec = 0;
		e.smtp = &r.info;
		e.flow = &addr;
		e.who = NULL;
		e.flow_id = 0;
		if ((f = flow_lookup(d->flows, &k)) != NULL && f->marker == MARK_NONE) {
			e.who = f->who;
			e.flow_id = f->flow_id;
		}
		fence_emit(d, &e);
		d->cnt.trap_sessions++;
		if (f != NULL && f->marker == MARK_NONE)
			flow_remove(d->flows, f);
	}
	return 0;
}
