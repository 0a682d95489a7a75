/*
 * refuse.c — the kernel's share of a flood. A uid whose attempts the flood
 * limiter is only counting, and whose every SYN smtpguardd would refuse
 * whatever it named (policy_kernel_refusable), is put in @refused_uids
 * until its flood window ends; the fence's rule before the queue resets its
 * SYNs there and counts them on the uid's element, so they no longer cross
 * into userspace one by one. At the window's end, and before any change of
 * the exceptions or the configuration, the element is deleted with
 * NLM_F_ECHO: the kernel's notice of the deletion carries the element's
 * counter as it was when it stopped counting, in the same transaction, and
 * that count goes to the caller, so the attempts stay counted exactly;
 * meanwhile refuse_live() reads the counters of the windows still open.
 *
 * Bounded: at most REFUSED_UIDS_MAX uids at once (the set's size too);
 * past that, refuse_add() says ENOSPC and the caller stays on the queue
 * path. An element's timeout (its window plus REFUSE_SLACK_S) is a safety
 * net for a daemon that is gone or stuck, never relied on: an element found
 * gone at its window's end (ENOENT, or missing from a flush's echo) is
 * reported lost, and the attempts it counted are not invented. A failed
 * add changes nothing (the SYNs keep going to the queue, refused there)
 * and is not retried before the window ends.
 *
 * It never decides who is refused (the caller asks policy.c), never logs,
 * and changes nothing in the kernel but this one set, in its own batches.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter/nf_tables.h>

#include "smtpguard.h"

/* Past the window: the tick that removes the element comes within a second of its end. */
#define REFUSE_SLACK_S	10

struct refuse_uid {
	uid_t		 uid;
	time_t		 start, end;	/* added, and its window's end */
	bool		 in_kernel;	/* false: the add failed; no retry before end */
	bool		 echoed;	/* seen in a deletion's echo */
	uint64_t	 refused;	/* the echo's count */
};

struct refuse {
	const char		*table;		/* the caller's: outlives this */
	struct refuse_uid	 v[REFUSED_UIDS_MAX];
	size_t			 n;
};

struct refuse *
refuse_new(const char *table)
{
	struct refuse *r;

	if (table == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->table = table;
	return r;
}

void
refuse_free(struct refuse *r)
{
	free(r);
}

static struct refuse_uid *
find(struct refuse *r, uid_t uid)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].uid == uid)
			return &r->v[i];
	return NULL;
}

bool
refuse_known(const struct refuse *r, uid_t uid)
{
	return find((struct refuse *)r, uid) != NULL;
}

size_t
refuse_count(const struct refuse *r)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n; i++)
		n += r->v[i].in_kernel;
	return n;
}

/*
 * UID into the set until END (its flood window's end). 0; or -1 with
 * ENOSPC (full: nothing recorded), or with the kernel's errno and ERR (the
 * add failed: recorded as not in the kernel, so it is not retried before
 * END).
 */
int
refuse_add(struct refuse *r, uid_t uid, time_t now, time_t end, char *err, size_t errlen)
{
	struct refuse_uid *u;
	struct nl_batch b;
	int rc, saved;

	if (find(r, uid) != NULL)
		return 0;
	if (r->n == REFUSED_UIDS_MAX) {
		snprintf(err, errlen, "%d uids refused in the kernel already", REFUSED_UIDS_MAX);
		errno = ENOSPC;
		return -1;
	}
	if (end <= now) {
		errno = EINVAL;
		snprintf(err, errlen, "window already over");
		return -1;
	}
	u = &r->v[r->n++];
	memset(u, 0, sizeof(*u));
	u->uid = uid;
	u->start = now;
	u->end = end;
	if (nl_batch_init(&b) < 0) {
		saved = errno;
		snprintf(err, errlen, "netlink batch: %s", strerror(saved));
		errno = saved;
		return -1;
	}
	if ((rc = ruleset_build_refused_add(&b, r->table, uid,
	    (uint64_t)(end - now + REFUSE_SLACK_S) * 1000)) < 0)
		snprintf(err, errlen, "building the batch: %s", strerror(errno));
	else
		rc = nl_batch_send(&b, err, errlen);
	saved = errno;
	nl_batch_free(&b);
	u->in_kernel = rc == 0;
	errno = saved;
	return rc;
}

static void
echoed(void *arg, uid_t uid, uint64_t n)
{
	struct refuse_uid *u;

	if ((u = find(arg, uid)) != NULL) {
		u->echoed = true;
		u->refused = n;
	}
}

static void
on_echo(const struct nlmsghdr *nlh, void *arg)
{
	struct refuse *r = arg;

	/* An element without its counter stays unechoed: reported lost, never as 0. */
	(void)ruleset_refused_elems(nlh, r->table, NFT_MSG_DELSETELEM, echoed, r);
}

struct live {
	const struct refuse	*r;
	uint64_t		 sum;
};

static void
live_count(void *arg, uid_t uid, uint64_t n)
{
	struct live *l = arg;
	const struct refuse_uid *u = find((struct refuse *)l->r, uid);

	if (u != NULL && u->in_kernel)
		l->sum += n;
}

/*
 * What the kernel has reset so far for the uids in the set, their windows
 * still open: status and the metrics add it, so their counts are exact at
 * any moment (refuse_expire hands the same counts over when the windows
 * end, and they leave this sum at once). 0, or -1 with errno (*SUM 0).
 */
int
refuse_live(const struct refuse *r, uint64_t *sum)
{
	struct live l = { .r = r };

	*sum = 0;
	if (refuse_count(r) == 0)
		return 0;
	if (ruleset_refused_dump(r->table, live_count, &l) < 0)
		return -1;
	*sum = l.sum;
	return 0;
}

/* One batch: UID's element deleted, or (UID NULL) the whole set flushed; echoes recorded. */
static int
delete(struct refuse *r, const uid_t *uid, char *err, size_t errlen)
{
	struct nl_batch b;
	int rc, saved;

	for (size_t i = 0; i < r->n; i++)
		r->v[i].echoed = false;
	if (nl_batch_init(&b) < 0) {
		saved = errno;
		snprintf(err, errlen, "netlink batch: %s", strerror(saved));
		errno = saved;
		return -1;
	}
	b.echo = on_echo;
	b.echo_arg = r;
	if ((rc = ruleset_build_refused_del(&b, r->table, uid)) < 0)
		snprintf(err, errlen, "building the batch: %s", strerror(errno));
	else
		rc = nl_batch_send(&b, err, errlen);
	saved = errno;
	nl_batch_free(&b);
	errno = saved;
	return rc;
}

/* Entry I is done: its count (or its loss) to FN, and it leaves the table. */
static void
settle(struct refuse *r, size_t i, refuse_fn fn, void *arg)
{
	struct refuse_uid u = r->v[i];

	r->v[i] = r->v[--r->n];
	if (u.in_kernel && fn != NULL)
		fn(arg, u.uid, u.refused, !u.echoed);
}

/*
 * The elements whose window has ended by NOW (or began after it: the clock
 * stepped back) are deleted, one batch each, and reported to FN. An element
 * already gone (ENOENT: its timeout struck) is reported lost. Another
 * failure keeps it, to be tried again at the next call; -1 with ERR then,
 * after the others were tried.
 */
int
refuse_expire(struct refuse *r, time_t now, refuse_fn fn, void *arg, char *err,
    size_t errlen)
{
	int rc = 0;

	for (size_t i = 0; i < r->n;) {
		struct refuse_uid *u = &r->v[i];

		if (now < u->end && now >= u->start) {
			i++;
			continue;
		}
		if (u->in_kernel && delete(r, &u->uid, err, errlen) < 0 && errno != ENOENT) {
			rc = -1;
			i++;
			continue;
		}
		settle(r, i, fn, arg);
	}
	return rc;
}

/*
 * Every element out of the set in one batch, each reported to FN (an
 * element missing from the kernel's echo, expired already, as lost). On
 * failure nothing is reported and the table stays as it was: -1 with ERR.
 */
int
refuse_flush(struct refuse *r, refuse_fn fn, void *arg, char *err, size_t errlen)
{
	if (refuse_count(r) > 0 && delete(r, NULL, err, errlen) < 0)
		return -1;
	while (r->n > 0)
		settle(r, r->n - 1, fn, arg);
	return 0;
}

/* The set is gone with its counts (the table was replaced): all reported lost. */
void
refuse_forget(struct refuse *r, refuse_fn fn, void *arg)
{
	for (size_t i = 0; i < r->n; i++)
		r->v[i].echoed = false;
	while (r->n > 0)
		settle(r, r->n - 1, fn, arg);
}
