/*
 * refuse.c — the kernel's share of a flood. A uid whose attempts the flood
 * limiter is only counting, and whose every SYN smtpguardd would refuse
 * whatever it named (policy_kernel_refusable), is put in @refused_uids
 * until its flood window ends; the fence's rule before the queue resets its
 * SYNs there and counts them on the uid's own counter object (the map
 * gives it: "refused_UID"), so they no longer cross into userspace one by
 * one. At the window's end, and before any change of the exceptions or the
 * configuration, the uid leaves in three steps:
 *   1. its map element is deleted: from that commit on no packet matches;
 *   2. a grace period (membarrier MEMBARRIER_CMD_GLOBAL, synchronize_rcu in
 *      the kernel, 8 to 16 ms here) passes: a packet that matched the
 *      element before the commit runs its whole rule inside an RCU read
 *      section (nf_hook), so by then its increment is in the object, which
 *      outlives the element. With one CPU online the kernel skips the wait:
 *      no reader can be midway while we run, unless the kernel preempts
 *      RCU readers (preempt=full, PREEMPT_RT), the one case not covered;
 *   3. the object's count is read (one dump of the objects: nothing can
 *      change it any more), then the object is deleted.
 * The count goes to the caller: every attempt counted exactly, however
 * hard the uid is flooding while it leaves. Meanwhile refuse_live() reads
 * the objects of the uids whose counts are not settled yet.
 *
 * Bounded: at most REFUSED_UIDS_MAX uids at once (the map's size, and so
 * many objects); past that, refuse_add() says ENOSPC and the caller stays
 * on the queue path. An element's timeout (its window plus REFUSE_SLACK_S)
 * is a safety net for a daemon that is gone or stuck, never relied on: its
 * object stays, and is read exactly at the window's end all the same. A
 * uid is reported lost only when its object is gone (the table was
 * replaced). A failed add changes nothing (object and element go in one
 * batch; the SYNs keep going to the queue, refused there) and is not
 * retried before the window ends. Without the grace period (a kernel
 * without membarrier's global command, or nohz_full) nothing is put in the
 * kernel at all: the queue refuses and counts every SYN.
 *
 * It never decides who is refused (the caller asks policy.c), never logs,
 * and changes nothing in the kernel but this map and its objects, in its
 * own batches.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/membarrier.h>
#include <linux/netfilter/nf_tables.h>

#include "smtpguard.h"

/* Past the window: the tick that removes the element comes within a second of its end. */
#define REFUSE_SLACK_S	10

struct refuse_uid {
	uid_t		 uid;
	time_t		 start, end;	/* added, and its window's end */
	bool		 in_kernel;	/* object and element added; false: the add failed */
	bool		 stopped;	/* its element is out of the map: nothing matches */
	bool		 read;		/* its final count is read */
	uint64_t	 refused;	/* that count */
};

struct refuse {
	const char		*table;		/* the caller's: outlives this */
	bool			 grace;		/* membarrier's global command works */
	struct refuse_uid	 v[REFUSED_UIDS_MAX];
	size_t			 n;
};

static int
membarrier(int cmd)
{
	return (int)syscall(SYS_membarrier, cmd, 0, 0);
}

struct refuse *
refuse_new(const char *table)
{
	struct refuse *r;
	int cmds;

	if (table == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->table = table;
	cmds = membarrier(MEMBARRIER_CMD_QUERY);
	r->grace = cmds >= 0 && (cmds & MEMBARRIER_CMD_GLOBAL) != 0;
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

/* The uids the kernel is refusing now (their elements in the map). */
size_t
refuse_count(const struct refuse *r)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n; i++)
		n += r->v[i].in_kernel && !r->v[i].stopped;
	return n;
}

static int
send_batch(struct nl_batch *b, int built, char *err, size_t errlen)
{
	int rc = built, saved;

	if (rc < 0)
		snprintf(err, errlen, "building the batch: %s", strerror(errno));
	else
		rc = nl_batch_send(b, err, errlen);
	saved = errno;
	nl_batch_free(b);
	errno = saved;
	return rc;
}

static int
batch_init(struct nl_batch *b, char *err, size_t errlen)
{
	int saved;

	if (nl_batch_init(b) == 0)
		return 0;
	saved = errno;
	snprintf(err, errlen, "netlink batch: %s", strerror(saved));
	errno = saved;
	return -1;
}

/*
 * UID into the map until END (its flood window's end). 0; or -1 with
 * ENOSPC (full: nothing recorded), EOPNOTSUPP (no grace period to read its
 * count exactly by: nothing recorded), or with the kernel's errno and ERR
 * (the add failed: recorded as not in the kernel, so it is not retried
 * before END).
 */
int
refuse_add(struct refuse *r, uid_t uid, time_t now, time_t end, char *err, size_t errlen)
{
	struct refuse_uid *u;
	struct nl_batch b;
	int rc;

	if (find(r, uid) != NULL)
		return 0;
	if (!r->grace) {
		snprintf(err, errlen, "membarrier(MEMBARRIER_CMD_GLOBAL) unavailable: the kernel's "
		    "counts could not be read exactly");
		errno = EOPNOTSUPP;
		return -1;
	}
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
	if (batch_init(&b, err, errlen) < 0)
		return -1;
	rc = send_batch(&b, ruleset_build_refused_add(&b, r->table, uid,
	    (uint64_t)(end - now + REFUSE_SLACK_S) * 1000), err, errlen);
	u->in_kernel = rc == 0;
	return rc;
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
 * What the kernel has reset so far for the uids whose counts are not
 * settled yet (in the map, or out of it and their objects not yet read):
 * status and the metrics add it, so their counts are exact at any moment
 * (refuse_expire hands the same counts over when the windows end, and they
 * leave this sum at once). 0, or -1 with errno (*SUM 0).
 */
int
refuse_live(const struct refuse *r, uint64_t *sum)
{
	struct live l = { .r = r };
	bool any = false;

	*sum = 0;
	for (size_t i = 0; i < r->n; i++)
		any |= r->v[i].in_kernel;
	if (!any)
		return 0;
	if (ruleset_refused_dump(r->table, live_count, &l) < 0)
		return -1;
	*sum = l.sum;
	return 0;
}

/* Step 1: UID's element out of the map, or (UID NULL) the map flushed. */
static int
stop(struct refuse *r, const uid_t *uid, char *err, size_t errlen)
{
	struct nl_batch b;

	if (batch_init(&b, err, errlen) < 0)
		return -1;
	return send_batch(&b, ruleset_build_refused_del(&b, r->table, uid), err, errlen);
}

/*
 * Step 2: every packet that could still see an element deleted before
 * this call has left its rule, its increment made (a synchronize_rcu in
 * the kernel; one CPU online: see the top of this file).
 */
static int
grace(char *err, size_t errlen)
{
	int saved;

	if (membarrier(MEMBARRIER_CMD_GLOBAL) == 0)
		return 0;
	saved = errno;
	snprintf(err, errlen, "membarrier: %s", strerror(saved));
	errno = saved;
	return -1;
}

static void
final_count(void *arg, uid_t uid, uint64_t n)
{
	struct refuse_uid *u = find(arg, uid);

	if (u != NULL && u->stopped) {
		u->read = true;
		u->refused = n;
	}
}

/* Step 3, the end: U's object, read already, deleted. */
static int
forget(struct refuse *r, const struct refuse_uid *u, char *err, size_t errlen)
{
	struct nl_batch b;

	if (batch_init(&b, err, errlen) < 0)
		return -1;
	return send_batch(&b, ruleset_build_refused_forget(&b, r->table, u->uid), err, errlen);
}

/* Entry I is done: its count (or its loss) to FN, and it leaves the table. */
static void
settle(struct refuse *r, size_t i, refuse_fn fn, void *arg)
{
	struct refuse_uid u = r->v[i];

	r->v[i] = r->v[--r->n];
	if (u.in_kernel && fn != NULL)
		fn(arg, u.uid, u.refused, !u.read);
}

/*
 * Steps 2 and 3 for every stopped entry (ALL) or the stopped ones whose
 * window is over by NOW; each is settled to FN, an object missing from the
 * dump (gone: the table was replaced) as lost. A failed dump keeps them
 * all, a failed deletion its entry (its count read again, the same, at a
 * later call); -1 with ERR then, after the others were tried.
 */
static int
read_stopped(struct refuse *r, time_t now, bool all, refuse_fn fn, void *arg, char *err,
    size_t errlen)
{
	bool any = false;
	int rc = 0;

	/* Only when one is due: a grace period stalls the daemon's loop for some ms. */
	for (size_t i = 0; i < r->n; i++)
		any |= r->v[i].stopped && (all || now >= r->v[i].end || now < r->v[i].start);
	if (!any)
		return 0;
	if (grace(err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < r->n; i++)
		r->v[i].read = false;
	if (ruleset_refused_dump(r->table, final_count, r) < 0) {
		snprintf(err, errlen, "reading the counters of @refused_uids: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < r->n;) {
		struct refuse_uid *u = &r->v[i];

		if (!u->stopped || (!all && now < u->end && now >= u->start)) {
			i++;
			continue;
		}
		if (u->read && forget(r, u, err, errlen) < 0 && errno != ENOENT) {
			rc = -1;
			i++;
			continue;
		}
		settle(r, i, fn, arg);
	}
	return rc;
}

/*
 * The uids whose window has ended by NOW (or began after it: the clock
 * stepped back) leave the kernel, their elements one batch each, then
 * their objects read after one grace period, and are reported to FN. An
 * element already gone (ENOENT: its timeout struck) is no matter: its
 * object still holds the count. A failure keeps the uid, to be tried again
 * at the next call; -1 with ERR then, after the others were tried.
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
		if (!u->in_kernel) {
			settle(r, i, fn, arg);
			continue;
		}
		if (!u->stopped && stop(r, &u->uid, err, errlen) < 0 && errno != ENOENT)
			rc = -1;
		else
			u->stopped = true;
		i++;
	}
	if (read_stopped(r, now, false, fn, arg, err, errlen) < 0)
		rc = -1;
	return rc;
}

/*
 * Every uid out of the kernel: the map flushed in one batch (if that
 * fails, nothing changed and nothing is reported: -1 with ERR), then every
 * object read after one grace period, each reported to FN. An object that
 * cannot be read keeps its uid, out of the map, to be read at its window's
 * end: -1 with ERR.
 */
int
refuse_flush(struct refuse *r, refuse_fn fn, void *arg, char *err, size_t errlen)
{
	if (refuse_count(r) > 0) {
		if (stop(r, NULL, err, errlen) < 0)
			return -1;
		for (size_t i = 0; i < r->n; i++)
			r->v[i].stopped = r->v[i].in_kernel;
	}
	for (size_t i = 0; i < r->n;) {
		if (!r->v[i].in_kernel)
			settle(r, i, fn, arg);
		else
			i++;
	}
	return read_stopped(r, 0, true, fn, arg, err, errlen);
}

/* The map and the objects are gone with their counts (the table was replaced): all lost. */
void
refuse_forget(struct refuse *r, refuse_fn fn, void *arg)
{
	for (size_t i = 0; i < r->n; i++)
		r->v[i].read = false;
	while (r->n > 0)
		settle(r, r->n - 1, fn, arg);
}
