/*
 * fence.c — the daemon's packet path: a queued packet is parsed, attributed,
 * decided (policy.c), given exactly one verdict, followed if the decision says
 * so (a trapped flow until the trap reports, an audited flow until inspect.c
 * is done, a probed flow until its first bytes), and logged. The trap's
 * reports are joined here to the flows they belong to, and alerts are raised
 * from the attempts. It is also the parent's one writer of the event log
 * (fence_emit), so a failing log is noticed and counted in one place.
 *
 * Every verdict goes through verdict(), and an internal error gives the
 * default: an unparsable packet is reset, a flow that cannot be followed gets
 * the decision's unfollowed mark. It never changes the configuration, the
 * exceptions' list or the ruleset, never calls back into smtpguardd.c, and
 * never exits. The state it shares is described in daemon.h.
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
		r = queue_verdict(d->queue, qp->id, NF_ACCEPT, false, 0);
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

/* An audited session is over: its smtp event, then the flow is forgotten. */
static void
audit_event(struct daemon *d, struct flow *f)
{
	struct event e = { .event = "smtp", .action = "audit" };

	if (f->inspect == NULL)
		return;
	e.who = &f->who;
	e.flow = &f->addr;
	e.flow_id = f->flow_id;
	e.smtp = &((struct inspect *)f->inspect)->info;
	fence_emit(d, &e);
	inspect_free(f->inspect);
	f->inspect = NULL;
}

static void
flow_done(struct flow *f, void *arg)
{
	struct daemon *d = arg;

	if (f->inspect != NULL && ((struct inspect *)f->inspect)->info.inspect == NULL)
		((struct inspect *)f->inspect)->info.inspect = "idle";
	audit_event(d, f);
}

static void
forget_flow(struct daemon *d, struct flow *f, const char *why)
{
	if (f->inspect != NULL && ((struct inspect *)f->inspect)->info.inspect == NULL)
		((struct inspect *)f->inspect)->info.inspect = why;
	audit_event(d, f);
	flow_remove(d->flows, f);
}

static void
forget_probe(struct daemon *d, struct flow *f)
{
	inspect_free(f->inspect);
	f->inspect = NULL;
	flow_remove(d->flows, f);
}

int
fence_open(struct daemon *d)
{
	if ((d->flows = flow_table_new(FLOWS_MAX)) == NULL)
		return -1;
	return 0;
}

/* The flows still followed get their smtp event ("idle"). */
void
fence_close(struct daemon *d)
{
	flow_table_free(d->flows, flow_done, d);
	d->flows = NULL;
}

void
fence_tick(struct daemon *d, time_t now)
{
	flood_expire(d->flood, now, flood_summary, d);
	/* A trapped flow whose session never reported (the client never connected). */
	flow_expire(d->flows, now - (time_t)d->cfg.trap_timeout - 60, flow_done, d);
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
	f->who = *who;
	f->addr = *p;
	f->addr.payload = NULL;
	f->addr.payload_len = 0;
	f->last_seen = now;
	return f;
}

/* What the decision says to follow; the mark to give, or the unfollowed one. */
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
	if ((in = inspect_new(p->seq, d->cfg.inspect_bytes, dec->implicit_tls)) == NULL) {
		flow_remove(d->flows, f);
		return dec->unfollowed;
	}
	in->probe = dec->follow == POLICY_FOLLOW_PROBE;
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
	q->mark = qp->mark;
	q->now = now;
}

/*
 * detect_any_port: a probed flow's packet. SMTP's greeting there is reset and
 * logged; anything else is let go for good (ct mark "allowed"), so each flow
 * costs a few userspace trips.
 */
static void
probe_packet(struct daemon *d, const struct queue_packet *qp, const struct pkt *p,
    struct flow *f, time_t now)
{
	struct inspect *in = f->inspect;
	struct event e = { .event = "attempt" };
	struct policy_query q;
	struct decision dec;

	query_of(d, qp, p, now, &q);
	q.probe = inspect_probe(in, p);
	q.sni = in->info.tls_sni;
	policy_decide(&q, &dec);
	verdict(d, qp, dec.mark);
	if (dec.mark == MARK_NONE)
		return;
	if (dec.action != ACTION_NONE) {
		d->cnt.decisions[dec.action]++;
		in->info.proto = dec.proto;
		e.action = action_name(dec.action);
		e.rule = dec.rule;
		e.who = &f->who;
		e.flow = &f->addr;
		e.flow_id = f->flow_id;
		e.smtp = &in->info;
		fence_emit(d, &e);
	}
	forget_probe(d, f);
}

/*
 * A later packet of a followed flow: read it, let it go on, and once
 * inspection is done release the flow to the kernel. Returns false if the
 * packet belongs to no flow under inspection.
 */
static bool
inspected_packet(struct daemon *d, const struct queue_packet *qp, const struct pkt *p,
    time_t now)
{
	struct flow_key k;
	struct flow *f;

	flow_key_of(p, &k);
	if ((f = flow_lookup(d->flows, &k)) == NULL || f->inspect == NULL)
		return false;
	d->cnt.inspected++;
	f->last_seen = now;
	if (((struct inspect *)f->inspect)->probe) {
		probe_packet(d, qp, p, f, now);
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

/* The SYN of a flow to an unfenced port: name its sender now, decide at its first bytes. */
static void
start_probe(struct daemon *d, const struct queue_packet *qp, const struct pkt *p,
    const struct decision *dec, time_t now)
{
	struct attrib who;

	attrib_flow(d->attrib, p, qp->has_uid, qp->uid, qp->has_gid, qp->gid, &who);
	verdict(d, qp, follow(d, p, &who, d->next_flow_id++, dec, now));
}

/* A new flow whose sender is named: the attempt, its verdict, its event and alerts. */
static void
attempt(struct daemon *d, const struct queue_packet *qp, const struct pkt *p,
    struct policy_query *q, time_t now)
{
	struct attrib who;
	struct decision dec;
	struct event e = { .event = "attempt" };
	uint64_t in_window, t0;
	enum mark_state mark;
	bool written, alert_due;

	/*
	 * Attribute before the verdict: the process still sits in connect().
	 * Uid, pid and exe decide and key the flood limiter; the rest is read
	 * only for an event that will be written, or a flow that is followed.
	 */
	t0 = mono_ns();
	attrib_sender(d->attrib, p, qp->has_uid, qp->uid, qp->has_gid, qp->gid, &who);
	hist_add(&d->attrib_ns, mono_ns() - t0);
	q->named = true;
	q->has_uid = who.has_uid;
	q->uid = who.uid;
	policy_decide(q, &dec);
	if (dec.self_check) {
		d->cnt.self_checks++;
		written = true;
	} else
		written = flood_admit(d->flood, who.has_uid ? who.uid : (uid_t)-1, who.exe,
		    dec.action, now);
	alert_due = who.has_uid && alerts_count(d->alerts, who.uid, now, &in_window);
	if (written || alert_due || dec.cap_exceeded || dec.follow != POLICY_FOLLOW_NONE)
		attrib_details(d->attrib, &who);
	e.flow_id = d->next_flow_id++;
	mark = dec.mark;
	if (dec.follow != POLICY_FOLLOW_NONE)
		mark = follow(d, p, &who, e.flow_id, &dec, now);
	verdict(d, qp, mark);
	d->cnt.decisions[dec.action]++;

	now_ts(&e.ts);
	e.action = action_name(dec.action);
	e.rule = dec.rule;
	e.who = &who;
	e.flow = p;
	if (written)
		fence_emit(d, &e);
	if (dec.cap_exceeded) {
		char msg[ALERT_MSG_MAX];

		snprintf(msg, sizeof(msg), "exception cap reached (%s): the default action "
		    "applies", dec.rule);
		fence_alert(d, &e, msg);
	}
	if (alert_due) {
		char msg[ALERT_MSG_MAX];

		snprintf(msg, sizeof(msg), "uid %lu made %llu SMTP attempts in 10 minutes "
		    "(threshold %u)", (unsigned long)who.uid, (unsigned long long)in_window,
		    d->cfg.alert_threshold);
		fence_alert(d, &e, msg);
	}
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
	if (!(p.tcp_flags & TH_SYN) && inspected_packet(d, qp, &p, now))
		return;
	/* Asked first without the sender: a packet that needs none costs no lookup. */
	query_of(d, qp, &p, now, &q);
	policy_decide(&q, &dec);
	if (dec.need_sender)
		attempt(d, qp, &p, &q, now);
	else if (dec.follow == POLICY_FOLLOW_PROBE)
		start_probe(d, qp, &p, &dec, now);
	else
		verdict(d, qp, dec.mark);
}

void
fence_read(struct daemon *d)
{
	/* Drain what is there; each read is one batch of packets. */
	for (int i = 0; i < QUEUE_READS_MAX; i++) {
		if (queue_read(d->queue, on_packet, d) == 0)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		if (errno == ENOBUFS) {
			/* The kernel dropped messages for us: counted, not fatal. */
			if (d->cnt.enobufs++ == 0)
				log_warnx("queue socket overrun (ENOBUFS); dropped packets are "
				    "counted");
			continue;
		}
		log_warn("reading the queue");
		return;
	}
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
		if ((f = flow_lookup(d->flows, &k)) != NULL) {
			e.who = &f->who;
			e.flow_id = f->flow_id;
		}
		fence_emit(d, &e);
		if (f != NULL)
			flow_remove(d->flows, f);
	}
	return 0;
}
