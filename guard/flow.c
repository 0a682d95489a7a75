/*
 * flow.c — per-flow state for the flows userspace still follows after their
 * SYN (audit inspection, trapped sessions waiting for the trap's report,
 * flows redirected to the local MTA waiting for the mail gate to name them,
 * detect_any_port's probed flows), keyed by the client's 4-tuple, bounded in
 * number and in what one uid may hold at once (its share), swept by the
 * owner's rule. A decided flow can be kept a while as a marker: its key and
 * the mark it got, without its attribution, counted apart from the followed
 * flows, so packets queued before the verdict landed get the same one.
 *
 * It never decides and never frees what callers hang on a flow (inspect):
 * the sweep and expiry callbacks get each flow before it is freed, so its
 * owner can release it. It owns the flow and its attribution (who).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>

#include "smtpguard.h"

struct flow_share {
	uid_t		  uid;
	size_t		  n;
};

struct flow_table {
	struct flow	**buckets;
	size_t		  nbuckets;	/* a power of two */
	size_t		  count;	/* followed flows, markers not included */
	size_t		  max;
	size_t		  nmarkers;
	/* Flows held per uid; at most one entry per followed flow, so max entries. */
	struct flow_share *shares;
	size_t		  nshares;
};

void
flow_key_of(const struct pkt *p, struct flow_key *k)
{
	memset(k, 0, sizeof(*k));
	k->family = (uint8_t)p->family;
	memcpy(k->src, p->src, sizeof(k->src));
	memcpy(k->dst, p->dst, sizeof(k->dst));
	k->sport = p->sport;
	k->dport = p->dport;
}

/* The key a reply packet of the flow K gives (flow_key_of on the server's packet). */
void
flow_key_reverse(const struct flow_key *key, struct flow_key *r)
{
	struct flow_key copy = *key, *k = &copy;	/* r may be key */

	memset(r, 0, sizeof(*r));
	r->family = k->family;
	memcpy(r->src, k->dst, sizeof(r->src));
	memcpy(r->dst, k->src, sizeof(r->dst));
	r->sport = k->dport;
	r->dport = k->sport;
}

/* FNV-1a over the key: flows come from one host, so the key is not attacker-spread. */
static size_t
flow_hash(const struct flow_key *k, size_t nbuckets)
{
	uint64_t h = fnv1a64(FNV1A64_BASIS, k, sizeof(*k));

	return (size_t)(h ^ (h >> 32)) & (nbuckets - 1);
}

struct flow_table *
flow_table_new(size_t max)
{
	struct flow_table *t;
	size_t n = 16;

	while (n < max + FLOW_MARKERS_MAX)
		n <<= 1;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if ((t->buckets = calloc(n, sizeof(*t->buckets))) == NULL ||
	    (t->shares = calloc(max > 0 ? max : 1, sizeof(*t->shares))) == NULL) {
		free(t->buckets);
		free(t);
		return NULL;
	}
	t->nbuckets = n;
	t->max = max;
	return t;
}

struct flow *
flow_lookup(struct flow_table *t, const struct flow_key *k)
{
	for (struct flow *f = t->buckets[flow_hash(k, t->nbuckets)]; f != NULL; f = f->next)
		if (memcmp(&f->key, k, sizeof(*k)) == 0)
			return f;
	return NULL;
}

/*
 * A followed flow (not a marker) given ACTION by its client's address and
 * port alone: what the local MTA sees of a flow the fence redirected to it
 * (the destination it asked for is gone). A scan of the table, bounded by
 * its size: one per message through the gate, not per packet. The source
 * port is the client's, in use by one of its sockets at a time.
 */
struct flow *
flow_find_source(struct flow_table *t, enum action a, int family, const uint8_t *src,
    uint16_t sport)
{
	size_t alen = family == AF_INET6 ? 16 : 4;

	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct flow *f = t->buckets[i]; f != NULL; f = f->next)
			if (f->marker == MARK_NONE && f->action == a &&
			    f->key.family == family && f->key.sport == sport &&
			    memcmp(f->key.src, src, alen) == 0)
				return f;
	return NULL;
}

struct flow *
flow_insert(struct flow_table *t, const struct flow_key *k, time_t now)
{
	struct flow *f;
	size_t b;

	if (t->count >= t->max) {
		errno = ENOSPC;
		return NULL;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	if ((f->who = calloc(1, sizeof(*f->who))) == NULL) {
		free(f);
		return NULL;
	}
	f->key = *k;
	f->created = f->last_seen = now;
	b = flow_hash(k, t->nbuckets);
	f->next = t->buckets[b];
	t->buckets[b] = f;
	t->count++;
	return f;
}

static struct flow_share *
share_of(struct flow_table *t, uid_t uid)
{
	for (size_t i = 0; i < t->nshares; i++)
		if (t->shares[i].uid == uid)
			return &t->shares[i];
	return NULL;
}

/*
 * Counts F in UID's share; -1 with EDQUOT if UID already holds MAX flows.
 * The entries are few (the uids holding flows right now): a scan is enough.
 */
int
flow_share_take(struct flow_table *t, struct flow *f, uid_t uid, size_t max)
{
	struct flow_share *sh = share_of(t, uid);

	if (f->shared)
		return 0;
	if (sh != NULL && sh->n >= max) {
		errno = EDQUOT;
		return -1;
	}
	if (sh == NULL) {
		if (t->nshares >= t->max) {
			errno = ENOSPC;
			return -1;
		}
		sh = &t->shares[t->nshares++];
		*sh = (struct flow_share){ .uid = uid };
	}
	sh->n++;
	f->shared = true;
	f->share_uid = uid;
	return 0;
}

static void
share_give_back(struct flow_table *t, struct flow *f)
{
	struct flow_share *sh;

	if (!f->shared)
		return;
	f->shared = false;
	if ((sh = share_of(t, f->share_uid)) == NULL || --sh->n > 0)
		return;
	*sh = t->shares[--t->nshares];
}

/* F leaves the table's counts (it is being unlinked). */
static void
uncount(struct flow_table *t, struct flow *f)
{
	share_give_back(t, f);
	if (f->marker != MARK_NONE)
		t->nmarkers--;
	else
		t->count--;
}

static void
flow_free(struct flow *f)
{
	free(f->who);
	free(f);
}

void
flow_remove(struct flow_table *t, struct flow *f)
{
	struct flow **pp = &t->buckets[flow_hash(&f->key, t->nbuckets)];

	for (; *pp != NULL; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			uncount(t, f);
			flow_free(f);
			return;
		}
}

/*
 * F is decided (MARK): keep its key and mark only, out of the followed
 * flows' count and its uid's share. The caller has released F->inspect.
 * It stays linked (a sweep may be walking its chain): with
 * FLOW_MARKERS_MAX kept already it is dated so the next sweep forgets it.
 */
void
flow_retire(struct flow_table *t, struct flow *f, enum mark_state mark, time_t now)
{
	if (f->marker != MARK_NONE || mark == MARK_NONE)
		return;
	if (t->nmarkers >= FLOW_MARKERS_MAX)
		now = 0;
	share_give_back(t, f);
	t->count--;
	t->nmarkers++;
	f->marker = mark;
	f->inspect = NULL;
	free(f->who);
	f->who = NULL;
	f->last_seen = now;
}

size_t
flow_count(const struct flow_table *t)
{
	return t->count;
}

size_t
flow_markers(const struct flow_table *t)
{
	return t->nmarkers;
}

/* Markers retired before BEFORE are forgotten. */
void
flow_expire_markers(struct flow_table *t, time_t before)
{
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct flow **pp = &t->buckets[b];

		while (*pp != NULL) {
			struct flow *f = *pp;

			if (f->marker == MARK_NONE || f->last_seen >= before) {
				pp = &f->next;
				continue;
			}
			*pp = f->next;
			uncount(t, f);
			flow_free(f);
		}
	}
}

/*
 * Each flow (markers too) for which GONE says true is unlinked, handed to
 * DONE (if any) and freed.
 */
void
flow_sweep(struct flow_table *t, bool (*gone)(struct flow *, void *),
    void (*done)(struct flow *, void *), void *arg)
{
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct flow **pp = &t->buckets[b];

		while (*pp != NULL) {
			struct flow *f = *pp;

			if (gone != NULL && !gone(f, arg)) {
				pp = &f->next;
				continue;
			}
			*pp = f->next;
			uncount(t, f);
			if (done != NULL)
				done(f, arg);
			flow_free(f);
		}
	}
}

struct expire_ctx {
	time_t	 before;
	void	(*done)(struct flow *, void *);
	void	*arg;
};

static bool
expire_gone(struct flow *f, void *arg)
{
	struct expire_ctx *x = arg;

	return x->before == 0 || f->last_seen < x->before;
}

static void
expire_done(struct flow *f, void *arg)
{
	struct expire_ctx *x = arg;

	if (x->done != NULL)
		x->done(f, x->arg);
}

/* Flows idle since before IDLE_BEFORE (0: all) are handed to DONE and freed. */
void
flow_expire(struct flow_table *t, time_t idle_before, void (*done)(struct flow *, void *),
    void *arg)
{
	struct expire_ctx x = { .before = idle_before, .done = done, .arg = arg };

	flow_sweep(t, expire_gone, expire_done, &x);
}

void
flow_table_free(struct flow_table *t, void (*done)(struct flow *, void *), void *arg)
{
	if (t == NULL)
		return;
	flow_expire(t, 0, done, arg);
	free(t->shares);
	free(t->buckets);
	free(t);
}
