/*
 * flood.c — keeps the event log readable and bounded under a flood. Per
 * (uid, exe, action) key, the first `rate` attempts of a `window` are
 * logged in full; the rest are only counted, and when the window ends the
 * caller gets one summary with the exact count. A key's window opens at
 * its first attempt and closes at the first flood_expire() call at least
 * `window` seconds later (the daemon calls it every second). The mail
 * gate's messages are limited the same way per (origin, mail action), in a
 * table of their own (flood_admit_mail, flood_expire_mail): one table
 * holds one kind of key, so the bound below holds for each.
 *
 * Memory is bounded: at most max_keys keys, each at most one PATH_MAX exe
 * long. When the table is full (or malloc fails), new keys share a single
 * overflow key whose summary has no uid and no exe, so counts stay exact.
 *
 * Worst case, log lines per hour (every key flooding at once, each key
 * living one window and logging `rate` lines plus one summary):
 *     (max_keys + 1) × (rate + 1) × (3600 / window + 1)
 * With the defaults (4096 keys, rate 20, window 60) one flooding
 * uid/exe/action adds at most 21 × 61 = 1,281 lines an hour; the bound for
 * 4096 distinct flooders at once is 4097 × 1,281 ≈ 5.2 million. A uid the
 * kernel refuses meanwhile (refuse.c) adds one summary per window of its
 * own: at most REFUSED_UIDS_MAX × (3600 / window + 1) lines an hour more.
 *
 * Pure: no I/O, no logging; the summary goes to the caller's function.
 * Time is the caller's `now`; a clock that steps back closes the windows
 * it would otherwise stretch.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

#define FLOOD_KEYS_LIMIT	(1U << 20)	/* ~4 GiB of exe paths at worst: refuse more */
#define FLOOD_BUCKETS_MIN	64

struct flood_key {
	struct flood_key	*chain;		/* hash bucket */
	struct flood_key	*older, *newer;	/* by window start: expiry order */
	uid_t			 uid;
	int			 code;		/* enum action, or enum mail_action */
	time_t			 start;
	uint64_t		 logged;
	uint64_t		 suppressed;
	size_t			 exelen;
	char			 exe[];
};

struct flood {
	unsigned int		 rate, window;
	size_t			 max_keys, nkeys, nbuckets;
	struct flood_key	**buckets;
	struct flood_key	*oldest, *newest;
	/* the shared key of a full table */
	bool			 overflow_live;
	time_t			 overflow_start;
	uint64_t		 overflow_logged, overflow_suppressed;
};

struct flood *
flood_new(unsigned int rate, unsigned int window, size_t max_keys)
{
	struct flood *f;

	if (window == 0 || max_keys > FLOOD_KEYS_LIMIT) {
		errno = EINVAL;
		return NULL;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->rate = rate;
	f->window = window;
	f->max_keys = max_keys;
	/* a power of two at least max_keys: chains average at most one key */
	for (f->nbuckets = FLOOD_BUCKETS_MIN; f->nbuckets < max_keys; f->nbuckets <<= 1)
		;
	if ((f->buckets = calloc(f->nbuckets, sizeof(*f->buckets))) == NULL) {
		free(f);
		return NULL;
	}
	return f;
}

void
flood_free(struct flood *f)
{
	struct flood_key *k, *next;

	if (f == NULL)
		return;
	for (k = f->oldest; k != NULL; k = next) {
		next = k->newer;
		free(k);
	}
	free(f->buckets);
	free(f);
}

/* FNV-1a over the key's fields. */
static size_t
flood_hash(const struct flood *f, uid_t uid, const char *exe, size_t len, int code)
{
	uint8_t act = (uint8_t)code;
	uint64_t h = fnv1a64(FNV1A64_BASIS, &uid, sizeof(uid));

	h = fnv1a64(h, &act, 1);
	h = fnv1a64(h, exe, len);
	return (size_t)(h ^ (h >> 32)) & (f->nbuckets - 1);
}

static bool
flood_count(const struct flood *f, uint64_t *logged, uint64_t *suppressed)
{
	if (*logged < f->rate) {
		(*logged)++;
		return true;
	}
	(*suppressed)++;
	return false;
}

static struct flood_key *
lookup(const struct flood *f, uid_t uid, const char *exe, size_t len, int a, size_t *bucket)
{
	struct flood_key *k;

	*bucket = flood_hash(f, uid, exe, len, a);
	for (k = f->buckets[*bucket]; k != NULL; k = k->chain)
		if (k->uid == uid && k->code == a && k->exelen == len &&
		    memcmp(k->exe, exe, len) == 0)
			return k;
	return NULL;
}

static bool
admit(struct flood *f, uid_t uid, const char *exe, int a, time_t now)
{
	struct flood_key *k;
	size_t len, b;

	if (exe == NULL)
		exe = "";
	len = strnlen(exe, PATH_MAX - 1);
	if ((k = lookup(f, uid, exe, len, a, &b)) != NULL)
		return flood_count(f, &k->logged, &k->suppressed);

	if (f->nkeys >= f->max_keys || (k = calloc(1, sizeof(*k) + len + 1)) == NULL) {
		if (!f->overflow_live) {
			f->overflow_live = true;
			f->overflow_start = now;
			f->overflow_logged = f->overflow_suppressed = 0;
		}
		return flood_count(f, &f->overflow_logged, &f->overflow_suppressed);
	}
	k->uid = uid;
	k->code = a;
	k->start = now;
	k->exelen = len;
	memcpy(k->exe, exe, len);
	k->exe[len] = '\0';
	k->chain = f->buckets[b];
	f->buckets[b] = k;
	k->older = f->newest;
	if (f->newest != NULL)
		f->newest->newer = k;
	else
		f->oldest = k;
	f->newest = k;
	f->nkeys++;
	return flood_count(f, &k->logged, &k->suppressed);
}

bool
flood_admit(struct flood *f, uid_t uid, const char *exe, enum action a, time_t now)
{
	return admit(f, uid, exe, (int)a, now);
}

/*
 * When the window the attempts of (uid, exe, a) count in ends: their key's,
 * or the overflow key's if the table was full; 0 if neither is open. The
 * kernel's share of a flood (refuse.c) ends with it.
 */
time_t
flood_window_end(const struct flood *f, uid_t uid, const char *exe, enum action a)
{
	const struct flood_key *k;
	size_t len, b;

	if (exe == NULL)
		exe = "";
	len = strnlen(exe, PATH_MAX - 1);
	if ((k = lookup(f, uid, exe, len, (int)a, &b)) != NULL)
		return k->start + (time_t)f->window;
	return f->overflow_live ? f->overflow_start + (time_t)f->window : 0;
}

/* The origin is the key's string (as an attempt's exe), with no uid. */
bool
flood_admit_mail(struct flood *f, const char *origin, enum mail_action a, time_t now)
{
	return admit(f, (uid_t)-1, origin, (int)a, now);
}

static bool
window_over(const struct flood *f, time_t start, time_t now)
{
	return now < start || now - start >= (time_t)f->window;
}

static void
flood_unlink(struct flood *f, struct flood_key *k)
{
	struct flood_key **pp;

	pp = &f->buckets[flood_hash(f, k->uid, k->exe, k->exelen, k->code)];
	while (*pp != k)
		pp = &(*pp)->chain;
	*pp = k->chain;
	if (k->older != NULL)
		k->older->newer = k->newer;
	else
		f->oldest = k->newer;
	if (k->newer != NULL)
		k->newer->older = k->older;
	else
		f->newest = k->older;
	f->nkeys--;
}

/* One ended window with lines suppressed: the key's, or the overflow's (key NULL). */
typedef void (*expire_fn)(void *arg, const struct flood_key *, uint64_t suppressed,
    unsigned int window);

static size_t
expire(struct flood *f, time_t now, expire_fn emit, void *arg)
{
	struct flood_key *k;
	size_t summaries = 0;

	/* Keys were made in time order, so the ended windows are the oldest. */
	while ((k = f->oldest) != NULL && window_over(f, k->start, now)) {
		flood_unlink(f, k);
		if (k->suppressed > 0 && emit != NULL) {
			emit(arg, k, k->suppressed, f->window);
			summaries++;
		}
		free(k);
	}
	if (f->overflow_live && window_over(f, f->overflow_start, now)) {
		f->overflow_live = false;
		if (f->overflow_suppressed > 0 && emit != NULL) {
			emit(arg, NULL, f->overflow_suppressed, f->window);
			summaries++;
		}
	}
	return summaries;
}

struct attempt_emit {
	flood_summary_fn	 fn;
	void			*arg;
};

static void
attempt_summary(void *arg, const struct flood_key *k, uint64_t suppressed, unsigned int window)
{
	const struct attempt_emit *ae = arg;

	if (k == NULL)
		ae->fn(ae->arg, (uid_t)-1, NULL, ACTION_NONE, suppressed, window);
	else
		ae->fn(ae->arg, k->uid, k->exe, (enum action)k->code, suppressed, window);
}

size_t
flood_expire(struct flood *f, time_t now, flood_summary_fn emit, void *arg)
{
	struct attempt_emit ae = { emit, arg };

	return expire(f, now, emit != NULL ? attempt_summary : NULL, &ae);
}

struct mail_emit {
	flood_mail_summary_fn	 fn;
	void			*arg;
};

static void
mail_summary(void *arg, const struct flood_key *k, uint64_t suppressed, unsigned int window)
{
	const struct mail_emit *me = arg;

	if (k == NULL)
		me->fn(me->arg, NULL, MAIL_PASS, suppressed, window);
	else
		me->fn(me->arg, k->exe, (enum mail_action)k->code, suppressed, window);
}

size_t
flood_expire_mail(struct flood *f, time_t now, flood_mail_summary_fn emit, void *arg)
{
	struct mail_emit me = { emit, arg };

	return expire(f, now, emit != NULL ? mail_summary : NULL, &me);
}
