/*
 * policy.c — the decision for a new flow: an exception that covers its uid
 * and destination (and is under its cap) allows or audits it; everything
 * else gets the configured action. Caps count connections per rolling hour
 * in 60 one-minute buckets: fixed memory whatever the cap, exact to the
 * minute (a connection leaves the count 59 to 60 minutes after it was made).
 * Plain exceptions are normally settled in the kernel; one whose SYN still
 * arrives (a race with a set update) is allowed here too. No uid, no
 * exception: the default. Pure: never logs; the caller raises the alert.
 */
#include <stdio.h>
#include <string.h>

#include "smtpguard.h"

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

void
policy_decide(enum action default_action, struct exceptions *xs, uid_t uid, bool has_uid,
    const struct pkt *p, time_t now, struct decision *d)
{
	memset(d, 0, sizeof(*d));
	d->action = default_action;
	strlcpy_sg(d->rule, "default", sizeof(d->rule));
	if (!has_uid)
		return;
	for (size_t i = 0; i < xs->n; i++) {
		struct exception *x = &xs->v[i];

		if (!covers_uid(x, uid) || !covers_dst(x, p))
			continue;
		if (x->cap_per_hour > 0 && !cap_take(x, now)) {
			d->cap_exceeded = true;
			snprintf(d->rule, sizeof(d->rule), "cap:%s", x->who);
			d->matched = x;
			continue;	/* another exception may still cover it */
		}
		x->hits++;
		x->last_hit = now;
		d->action = x->audit ? ACTION_AUDIT : ACTION_ALLOW;
		d->cap_exceeded = false;
		d->matched = x;
		snprintf(d->rule, sizeof(d->rule), "exception:%s", x->who);
		return;
	}
}
