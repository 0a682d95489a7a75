/*
 * policy.c — the whole decision for a packet the fence queued, as pure
 * functions behind one entry point, policy_decide(). It answers:
 *   - a self-check SYN (`smtpguard check`, the probe mark) is refused and
 *     logged, whoever sent it;
 *   - with detect_any_port, a flow to a port nobody fences is followed from
 *     its SYN until inspect_any_packet() tells SMTP from the rest: reset if it
 *     speaks SMTP (or TLS to a name in mail_relays), let go for good if not,
 *     reset if it stays undecided (fails closed). It is never released
 *     unread: a flow the fence cannot follow (no room, its uid's share used
 *     up, met after its SYN) is reset, and so is a packet the kernel queued
 *     as followed (INSPECT in its mark) whose flow the daemon no longer knows;
 *   - any other new flow: an exception that covers its uid and destination
 *     (and is under its cap) allows, audits or redirects it; everything else
 *     gets the configured action. No uid, no exception: the default. A
 *     redirect (to the local MTA) applies to a SYN to port 25 only, before
 *     NAT: any other is reset.
 * and says what the verdict's mark is, what the fence must follow (a trapped
 * flow's report, an audited or probed flow's bytes), and which mark applies
 * when it cannot follow it (an audited flow goes out uninspected: audit
 * means it may go out; a redirected one is reset, never handed to the MTA
 * unnamed).
 *
 * Caps count connections per rolling hour in 60 one-minute buckets: fixed
 * memory whatever the cap, exact to the minute (a connection leaves the count
 * 59 to 60 minutes after it was made). Plain exceptions are normally settled
 * in the kernel; one whose SYN still arrives (a race with a set update) is
 * allowed here too.
 *
 * policy_kernel_refusable() says when the kernel may refuse a uid's SYNs
 * itself (refuse.c): when this function could only ever answer "default,
 * reject" for them, whatever their destination, port or program.
 *
 * Pure: no logging, no clock but the query's now, no I/O. It writes only the
 * decision and the exceptions' hit and cap counters; the caller verdicts,
 * follows, logs and raises the alert.
 */
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtpguard.h"

#define POLICY_MX_PORT	25	/* RFC 5321 5.1: where an MX takes mail */

static bool
covers_uid(const struct exception *x, uid_t uid)
{
	for (size_t i = 0; i < x->nuids; i++)
		if (x->uids[i] == uid)
			return true;
	return false;
}

static bool
covers_dst(const struct exception *x, const struct pkt *p)
{
	bool to = x->nto == 0, port = x->nports == 0;

	for (size_t i = 0; !to && i < x->nto; i++)
		to = cidr_contains(&x->to[i], p->family, p->dst);
	for (size_t i = 0; !port && i < x->nports; i++)
		port = x->ports[i] == p->dport;
	return to && port;
}

/*
 * Connections in the rolling hour ending at now; takes one if under the cap.
 * Buckets stamped in the future (the clock was set back) are not counted,
 * and are reused when their slot comes round again.
 */
static bool
cap_take(struct exception *x, time_t now)
{
	long minute = now > 0 ? (long)(now / 60) : 0;
	uint32_t used = 0;
	size_t slot = (size_t)minute % EXCEPTION_CAP_BUCKETS;

	for (size_t i = 0; i < EXCEPTION_CAP_BUCKETS; i++)
		if (x->cap_minute[i] > minute - EXCEPTION_CAP_BUCKETS &&
		    x->cap_minute[i] <= minute)
			used += x->cap_count[i];
	if (used >= x->cap_per_hour)
		return false;
	if (x->cap_minute[slot] != minute) {
		x->cap_minute[slot] = minute;
		x->cap_count[slot] = 0;
	}
	x->cap_count[slot]++;
	return true;
}

static bool
port_fenced(const struct config *cfg, uint16_t port)
{
	for (size_t i = 0; i < cfg->nports; i++)
		if (cfg->ports[i] == port)
			return true;
	return false;
}

/* "smtp.example.net, *.relay.example": exact names, or any name under a "*." suffix. */
static bool
relay_named(const char *relays, const char *name)
{
	char list[CONFIG_MAX_LIST], *tok, *save = NULL;
	size_t n = strlen(name);

	strlcpy_sg(list, relays, sizeof(list));
	for (tok = strtok_r(list, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		size_t t = strlen(tok);

		if (strcasecmp(tok, name) == 0)
			return true;
		if (t > 2 && tok[0] == '*' && tok[1] == '.' && n > t - 1 &&
		    strcasecmp(name + n - (t - 1), tok + 1) == 0)
			return true;
	}
	return false;
}

static enum mark_state
action_mark(enum action a)
{
	switch (a) {
	case ACTION_ALLOW:
		return MARK_ALLOW;
	case ACTION_TRAP:
		return MARK_TRAP;
	case ACTION_AUDIT:
		return MARK_INSPECT;
	case ACTION_REDIRECT:
		return MARK_REDIRECT;
	case ACTION_REJECT:
	case ACTION_NONE:
		break;
	}
	return MARK_REJECT;
}

/* sniff_relay_fn for sniff.c: CFG is the struct config whose mail_relays name SMTP. */
bool
policy_mail_relay(const char *sni, void *cfg)
{
	const struct config *c = cfg;

	return sni != NULL && sni[0] != '\0' && relay_named(c->mail_relays, sni);
}

/* A probed flow's packet (detect_any_port), as inspect_any_packet() read it. */
static void
decide_probe(const struct policy_query *q, struct decision *d)
{
	strlcpy_sg(d->rule, "any-port", sizeof(d->rule));
	switch (q->probe) {
	case INSPECT_PROBE_MORE:
		d->mark = MARK_NONE;	/* undecided: this packet passes, the next is read */
		return;
	case INSPECT_PROBE_SMTP:
		d->proto = "smtp";
		break;
	case INSPECT_PROBE_TLS:
		d->proto = "smtp-tls";	/* TLS to a host named as a mail relay */
		break;
	case INSPECT_PROBE_UNDECIDED:
		/* Fails closed: what cannot be read, or waited for, is reset. */
		d->action = ACTION_REJECT;
		d->mark = MARK_REJECT;
		strlcpy_sg(d->rule, "any-port-undecided", sizeof(d->rule));
		return;
	case INSPECT_PROBE_NONE:
	case INSPECT_PROBE_OTHER:
		d->mark = MARK_ALLOW;	/* not mail: let go for good */
		return;
	}
	d->action = ACTION_REJECT;
	d->mark = MARK_REJECT;
	strlcpy_sg(d->rule, "smtp-on-any-port", sizeof(d->rule));
}

/* Exceptions, in order; a capped one past its cap lets a later one still cover the flow. */
static void
decide_exceptions(const struct policy_query *q, struct decision *d)
{
	struct exceptions *xs = q->exc;

	d->action = q->cfg->action;
	strlcpy_sg(d->rule, "default", sizeof(d->rule));
	if (!q->has_uid || xs == NULL)
		return;
	for (size_t i = 0; i < xs->n; i++) {
		struct exception *x = &xs->v[i];

		if (!covers_uid(x, q->uid) || !covers_dst(x, q->pkt))
			continue;
		if (x->cap_per_hour > 0 && !cap_take(x, q->now)) {
			d->cap_exceeded = true;
			snprintf(d->rule, sizeof(d->rule), "cap:%s", x->who);
			d->matched = x;
			continue;	/* another exception may still cover it */
		}
		x->hits++;
		x->last_hit = q->now;
		d->action = x->audit ? ACTION_AUDIT : x->redirect ? ACTION_REDIRECT :
		    ACTION_ALLOW;
		d->cap_exceeded = false;
		d->matched = x;
		snprintf(d->rule, sizeof(d->rule), "exception:%s", x->who);
		return;
	}
}

void
policy_decide(const struct policy_query *q, struct decision *d)
{
	const struct pkt *p = q->pkt;
	bool syn = (p->tcp_flags & TH_SYN) != 0;
	bool self_check = syn && mark_state_of(q->cfg->mark_mask, q->mark) == MARK_PROBE;

	memset(d, 0, sizeof(*d));
	d->action = ACTION_NONE;
	if (q->probe != INSPECT_PROBE_NONE) {
		decide_probe(q, d);
		return;
	}
	if (q->cfg->detect_any_port && mark_state_of(q->cfg->mark_mask, q->mark) == MARK_INSPECT) {
		/*
		 * Only the fence's "keep inspecting" rule queues a packet with
		 * this mark (detect_any_port): the daemon followed its flow and
		 * lost it (expired, restarted, out of room). Never released unread.
		 */
		d->mark = MARK_REJECT;
		d->lost = true;
		strlcpy_sg(d->rule, "lost-flow", sizeof(d->rule));
		return;
	}
	if (q->cfg->detect_any_port && !self_check && !port_fenced(q->cfg, p->dport)) {
		strlcpy_sg(d->rule, "any-port", sizeof(d->rule));
		if (syn) {
			d->mark = MARK_INSPECT;
			d->follow = POLICY_FOLLOW_PROBE;
			d->unfollowed = MARK_REJECT;	/* no room to follow it: fails closed */
			return;
		}
		/* Begun before the fence saw its SYN: it cannot be read, so it is reset. */
		d->mark = MARK_REJECT;
		if (!q->named) {
			d->need_sender = true;
			return;
		}
		d->action = ACTION_REJECT;
		strlcpy_sg(d->rule, "established-before-fence", sizeof(d->rule));
		return;
	}
	if (!q->named) {
		/* The rest depends on who sent it; until then, nothing goes out. */
		d->need_sender = true;
		d->mark = MARK_REJECT;
		strlcpy_sg(d->rule, "default", sizeof(d->rule));
		return;
	}
	/*
	 * Exceptions are matched (hits and caps counted) before the self-check
	 * override, as the daemon always did: a self-check from an excepted uid
	 * counts as a hit of that exception.
	 */
	decide_exceptions(q, d);
	/*
	 * A flow met mid-way (begun before the fence, or under an exception
	 * since revoked) can be neither trapped (NAT is bound at its first
	 * packet) nor inspected (the stream is anchored at its SYN), and a SYN
	 * queued after NAT (MARK_NAT) cannot be trapped or audited either:
	 * unless an exception allows them, they are reset, and the rule says why.
	 */
	if (d->action != ACTION_ALLOW && !syn) {
		d->action = ACTION_REJECT;
		strlcpy_sg(d->rule, "established-before-fence", sizeof(d->rule));
	} else if ((d->action == ACTION_TRAP || d->action == ACTION_AUDIT ||
	    d->action == ACTION_REDIRECT) &&
	    mark_state_of(q->cfg->mark_mask, q->mark) == MARK_NAT) {
		d->action = ACTION_REJECT;
		strlcpy_sg(d->rule, "after-nat", sizeof(d->rule));
	} else if (d->action == ACTION_REDIRECT && !q->cfg->mail_gate) {
		/* An exception's redirect with no gate: the MTA would take it unlimited. */
		d->action = ACTION_REJECT;
		strlcpy_sg(d->rule, "redirect-no-gate", sizeof(d->rule));
	} else if (d->action == ACTION_REDIRECT && p->dport != POLICY_MX_PORT) {
		/*
		 * Only direct-MX is the local MTA's to take: implicit TLS (465)
		 * would meet a server in clear, and a submission (587) carries
		 * the remote provider's password. Refused, and the rule says why.
		 */
		d->action = ACTION_REJECT;
		strlcpy_sg(d->rule, "redirect-not-mx", sizeof(d->rule));
	}
	if (self_check) {
		/* `smtpguard check` asks whether the fence holds: refused, always logged. */
		d->action = ACTION_REJECT;
		strlcpy_sg(d->rule, "self-check", sizeof(d->rule));
		d->cap_exceeded = false;
		d->self_check = true;
	}
	d->mark = action_mark(d->action);
	d->unfollowed = d->mark;
	if (d->action == ACTION_TRAP) {
		/* Unfollowed, the trap still answers; its report then lacks the attribution. */
		d->follow = POLICY_FOLLOW_TRAP;
	} else if (d->action == ACTION_REDIRECT) {
		/*
		 * The mail gate names the session by what is kept here; with no
		 * room to keep it the flow is reset (fails closed), never sent
		 * to the MTA unnamed.
		 */
		d->follow = POLICY_FOLLOW_REDIRECT;
		d->unfollowed = MARK_REJECT;
	} else if (d->action == ACTION_AUDIT) {
		/*
		 * Only a SYN gets here (its sequence number anchors the stream);
		 * a flow we cannot follow for lack of room is let through
		 * uninspected: audit means it may go out.
		 */
		d->unfollowed = MARK_ALLOW;
		d->follow = POLICY_FOLLOW_AUDIT;
		d->implicit_tls = p->dport == 465;
	}
}

/*
 * Whether DEC, the decision just made for Q, is one the kernel could have
 * made alone for every later SYN of the same uid to a fenced port, so that
 * @refused_uids may take them (refuse.c): a named SYN, unmarked (neither
 * the self-check's probe nor one queued after NAT), given the default
 * action, that action being reject, and no exception of any kind (plain,
 * narrowed to destinations or ports, capped, audit, redirect) covering the
 * uid: exceptions name uids only (users and groups are resolved to uids
 * when loaded), so nothing else the kernel cannot see (the destination,
 * the port, the program) could change the answer. A change of the
 * exceptions or the configuration flushes the set before it applies.
 */
bool
policy_kernel_refusable(const struct policy_query *q, const struct decision *d)
{
	const struct exceptions *xs = q->exc;

	if (!q->named || !q->has_uid || d->self_check || d->action != ACTION_REJECT ||
	    q->cfg->action != ACTION_REJECT || strcmp(d->rule, "default") != 0 ||
	    !(q->pkt->tcp_flags & TH_SYN) || (q->pkt->tcp_flags & TH_ACK) ||
	    mark_state_of(q->cfg->mark_mask, q->mark) != MARK_NONE ||
	    !port_fenced(q->cfg, q->pkt->dport))
		return false;
	for (size_t i = 0; xs != NULL && i < xs->n; i++)
		if (covers_uid(&xs->v[i], q->uid))
			return false;
	return true;
}

/*
 * Whether DEC, the decision just made for Q, is one the kernel could make
 * alone for every later SYN of the same uid to a fenced port, so that
 * @audited_uids may take them (fence.c): a named SYN, unmarked, given
 * audit, and the uid's policy audit whatever its destination, port or
 * program: the default action audit and no exception of any kind covering
 * the uid, or the first exception covering it a plain audit one (no
 * destinations, no ports, no cap). A change of the exceptions or the
 * configuration empties the set before it applies.
 */
bool
policy_kernel_auditable(const struct policy_query *q, const struct decision *d)
{
	const struct exceptions *xs = q->exc;
	const struct exception *first = NULL;

	if (!q->named || !q->has_uid || d->self_check || d->action != ACTION_AUDIT ||
	    !(q->pkt->tcp_flags & TH_SYN) || (q->pkt->tcp_flags & TH_ACK) ||
	    mark_state_of(q->cfg->mark_mask, q->mark) != MARK_NONE ||
	    !port_fenced(q->cfg, q->pkt->dport))
		return false;
	for (size_t i = 0; xs != NULL && i < xs->n && first == NULL; i++)
		if (covers_uid(&xs->v[i], q->uid))
			first = &xs->v[i];
	if (first == NULL)
		return q->cfg->action == ACTION_AUDIT && strcmp(d->rule, "default") == 0;
	return first == d->matched && first->audit && first->nto == 0 && first->nports == 0 &&
	    first->cap_per_hour == 0;
}
