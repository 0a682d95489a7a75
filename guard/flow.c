/*
 * flow.c — per-flow state for the flows userspace still follows after their
 * SYN (audit inspection, trapped sessions waiting for the trap's report),
 * keyed by the client's 4-tuple, bounded in number, expired when idle.
 *
 * It never decides and never frees what callers hang on a flow: the expiry
 * callback gets each flow before it is freed, so its owner can release it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

struct flow_table {
	struct flow	**buckets;
	size_t		  nbuckets;	/* a power of two */
	size_t		  count;
	size_t		  max;
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

	while (n < max)
		n <<= 1;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if ((t->buckets = calloc(n, sizeof(*t->buckets))) == NULL) {
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
	f->key = *k;
	f->created = f->last_seen = now;
	b = flow_hash(k, t->nbuckets);
	f->next = t->buckets[b];
	t->buckets[b] = f;
	t->count++;
	return f;
}

void
flow_remove(struct flow_table *t, struct flow *f)
{
	struct flow **pp = &t->buckets[flow_hash(&f->key, t->nbuckets)];

	for (; *pp != NULL; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			t->count--;
			free(f);
			return;
		}
}

size_t
flow_count(const struct flow_table *t)
{
	return t->count;
}

void
flow_expire(struct flow_table *t, time_t idle_before, void (*done)(struct flow *, void *),
    void *arg)
{
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct flow **pp = &t->buckets[b];

		while (*pp != NULL) {
			struct flow *f = *pp;

			if (idle_before != 0 && f->last_seen >= idle_before) {
				pp = &f->next;
				continue;
			}
			*pp = f->next;
			t->count--;
			if (done != NULL)
				done(f, arg);
			free(f);
		}
	}
}

void
flow_table_free(struct flow_table *t, void (*done)(struct flow *, void *), void *arg)
{
	if (t == NULL)
		return;
	flow_expire(t, 0, done, arg);
	free(t->buckets);
	free(t);
}
