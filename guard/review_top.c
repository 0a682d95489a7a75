/*
 * review_top.c — `smtpguard top`: who is sending. Counts the attempts in
 * the event logs per user, process, destination, working directory or host,
 * or (from smtp events) per sender, script or subject; attempts suppressed by
 * flood limiting count too (from summary events), so counts are exact. The
 * mail gate's messages (mail events) count per origin, and join their user's
 * and host's row beside the attempts; --by may be given up to TOP_BY_MAX
 * times (--by host --by user), a row per combination. With --mta, each
 * user's mail through the MTA as its logs tell it (mtareport.c) joins their
 * row. Memory grows with the distinct keys, each under a named cap, never
 * with the logs. Reading and filtering are evread.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "smtpguard.h"

#define TOP_GROUPS_MAX		100000	/* past this, rows fold into "(other)" */
#define TOP_BAR_WIDTH		24
#define TOP_DEFAULT_LIMIT	10
#define TOP_BY_MAX		3	/* --by keys of one table: host, user, and one more */
#define TOP_SEP			'\x1f'	/* between the parts of a key of several --by */
#define TOP_KEY_MAX		1024	/* a row's key: its parts, each cut to fit */
#define TOP_PART_WIDTH_MAX	40	/* a part's column in the text table, but the last */

struct group {
	struct hnode	 node;
	uint32_t	 id;		/* its number in pair keys */
	char		*key;
	char		 name[USER_NAME_MAX];	/* --by user: the name seen with the uid */
	char		*label;		/* as shown: the key, the user part as name(uid) */
	uint64_t	 count;
	uint64_t	 ndests;
	bool		 dests_capped;
	uint64_t	*dbits;		/* its destinations, a bit per number, while dense */
	size_t		 dwords;
	bool		 dsparse;	/* too sparse for bits: its pairs are in the pair set */
	uint64_t	 mta_msgs, mta_rcpts;	/* top --mta: outbound through the MTA */
	uint64_t	 mail_msgs, mail_rcpts, mail_stopped;	/* mail events: the gate's */
	char		 first[40], last[40];
};

/*
 * The destinations seen, each once, numbered: a (group, destination) pair is
 * then two numbers. A group keeps the numbers of its destinations as bits
 * while they are dense (a host's hundreds of sites send to the same few
 * hundred MXes: a few words each, in cache); a group whose bits would be
 * mostly empty moves its pairs into a flat set that a lookup probes once or
 * twice. Either way memory follows the pairs, never the log.
 */
struct dstname {
	struct hnode	 node;
	uint32_t	 id;
	char		 s[];
};

#define TOP_PAIRS_MAX	1000000	/* past this, new destinations are counted as "N+" */
#define PAIRS_INITIAL	4096	/* slots of the pair set, a power of two; doubled at half full */
#define DBITS_MIN_WORDS	4	/* 256 destinations: a bitmap that small needs no excuse */
#define DBITS_PER_DEST	2	/* words a group's bitmap may have per destination: 1 bit in 128 */

struct pairset {
	uint64_t	*slot;		/* (group id << 32 | destination id) + 1; 0: empty */
	size_t		 nslot, n;
};

/* What a row can count: the classes of events, as bits. */
enum { CL_ATTEMPT = 1, CL_SMTP = 2, CL_MAIL = 4 };

enum top_by { BY_USER, BY_PROCESS, BY_DST, BY_CWD, BY_SENDER, BY_SCRIPT, BY_SUBJECT, BY_ORIGIN,
    BY_HOST, BY_N };
static const char *const top_by[BY_N] = { "user", "process", "dst", "cwd", "sender", "script",
    "subject", "origin", "host" };
/* The classes each key can count (a host has them all, so it leaves the others to say). */
static const unsigned by_classes[BY_N] = {
	[BY_USER] = CL_ATTEMPT | CL_MAIL, [BY_PROCESS] = CL_ATTEMPT, [BY_DST] = CL_ATTEMPT,
	[BY_CWD] = CL_ATTEMPT, [BY_SENDER] = CL_SMTP | CL_MAIL, [BY_SCRIPT] = CL_SMTP | CL_MAIL,
	[BY_SUBJECT] = CL_SMTP | CL_MAIL, [BY_ORIGIN] = CL_MAIL,
	[BY_HOST] = CL_ATTEMPT | CL_SMTP | CL_MAIL,
};

struct top {
	enum top_by	 by[TOP_BY_MAX];
	size_t		 nby;
	int		 user_part;	/* by[user_part] == BY_USER, or -1 */
	unsigned	 classes;	/* what this table counts (CL_*) */
	bool		 mail_seen;	/* a mail event was counted: its columns are shown */
	uint64_t	 mail_no_user;	/* --by user: mail of SASL logins and clients */
	bool		 mta;		/* MTA columns (--by user --mta) */
	uint64_t	 mta_unknown;	/* MTA messages of users this host does not know */
	struct htab	 groups, dsts;
	struct pairset	 pairs;
	uint64_t	 npairs;	/* (group, destination) pairs, bits and set */
	struct group	*other;
	uint64_t	 folded;	/* events counted in "(other)" */
};

static struct group *
group_new(const char *key, uint32_t id)
{
	struct group *g;

	if ((g = calloc(1, sizeof(*g))) == NULL || (g->key = strdup(key)) == NULL) {
		free(g);
		return NULL;
	}
	g->id = id;
	return g;
}

static struct group *
top_group(struct top *t, const char *key)
{
	size_t h = str_hash(key);
	struct group *g;

	for (struct hnode *x = t->groups.b[h & (t->groups.nb - 1)]; x; x = x->next)
		if (x->hash == h && strcmp((g = (struct group *)x)->key, key) == 0)
			return g;
	if (t->groups.n >= TOP_GROUPS_MAX) {
		if (t->other == NULL)
			t->other = group_new("(other)", TOP_GROUPS_MAX);
		if (t->other != NULL)
			t->folded++;
		return t->other;
	}
	if ((g = group_new(key, (uint32_t)t->groups.n)) == NULL)
		return NULL;
	g->node.hash = h;
	htab_insert(&t->groups, &g->node);
	return g;
}

/* The number of destination DST; -1: a new one past the cap (a new pair too) or no memory. */
static int
top_dst_id(struct top *t, const char *dst, uint32_t *id)
{
	size_t h = str_hash(dst), len;
	struct dstname *d;

	for (struct hnode *x = t->dsts.b[h & (t->dsts.nb - 1)]; x; x = x->next)
		if (x->hash == h && strcmp((d = (struct dstname *)x)->s, dst) == 0) {
			*id = d->id;
			return 0;
		}
	len = strlen(dst);
	if (t->npairs >= TOP_PAIRS_MAX || (d = malloc(sizeof(*d) + len + 1)) == NULL)
		return -1;
	memcpy(d->s, dst, len + 1);
	d->id = *id = (uint32_t)t->dsts.n;
	d->node.hash = h;
	htab_insert(&t->dsts, &d->node);
	return 0;
}

/* splitmix64's finaliser: every bit of a pair's two numbers moves the slot. */
static size_t
pair_hash(uint64_t k)
{
	k = (k ^ (k >> 30)) * 0xbf58476d1ce4e5b9ULL;
	k = (k ^ (k >> 27)) * 0x94d049bb133111ebULL;
	return (size_t)(k ^ (k >> 31));
}

static int
pairs_init(struct pairset *ps)
{
	ps->n = 0;
	ps->nslot = (ps->slot = calloc(PAIRS_INITIAL, sizeof(*ps->slot))) == NULL ? 0 : PAIRS_INITIAL;
	return ps->nslot == 0 ? -1 : 0;
}

/* Doubles the set; -1: no memory (the old one stays). */
static int
pairs_grow(struct pairset *ps)
{
	size_t nslot = ps->nslot * 2;
	uint64_t *slot = calloc(nslot, sizeof(*slot));

	if (slot == NULL)
		return -1;
	for (size_t i = 0; i < ps->nslot; i++) {
		size_t j;

		if (ps->slot[i] == 0)
			continue;
		for (j = pair_hash(ps->slot[i]) & (nslot - 1); slot[j] != 0; j = (j + 1) & (nslot - 1))
			;
		slot[j] = ps->slot[i];
	}
	free(ps->slot);
	ps->slot = slot;
	ps->nslot = nslot;
	return 0;
}

/* 1: KEY was new and is now in; 0: seen before; -1: new, but not MAY_ADD or no memory. */
static int
pairs_add(struct pairset *ps, uint64_t key, bool may_add)
{
	size_t j;

	for (j = pair_hash(key) & (ps->nslot - 1); ps->slot[j] != 0; j = (j + 1) & (ps->nslot - 1))
		if (ps->slot[j] == key)
			return 0;
	if (!may_add)
		return -1;
	if (ps->n + 1 > ps->nslot / 2) {
		if (pairs_grow(ps) < 0)
			return -1;
		for (j = pair_hash(key) & (ps->nslot - 1); ps->slot[j] != 0;
		    j = (j + 1) & (ps->nslot - 1))
			;
	}
	ps->slot[j] = key;
	ps->n++;
	return 1;
}

static uint64_t
pair_key(const struct group *g, uint32_t id)
{
	return ((uint64_t)g->id << 32 | id) + 1;
}

/* G's bitmap, grown to hold bit ID; -1: it would be too sparse (or no memory). */
static int
dbits_grow(struct group *g, uint32_t id)
{
	size_t need = (size_t)id / 64 + 1, words = DBITS_MIN_WORDS;
	uint64_t *bits;

	while (words < need)
		words *= 2;
	if (words > DBITS_MIN_WORDS + (g->ndests + 1) * DBITS_PER_DEST ||
	    (bits = realloc(g->dbits, words * sizeof(*bits))) == NULL)
		return -1;
	memset(bits + g->dwords, 0, (words - g->dwords) * sizeof(*bits));
	g->dbits = bits;
	g->dwords = words;
	return 0;
}

/* G's bits into the pair set (they are counted already); -1: no memory, the bits stay. */
static int
dbits_to_set(struct top *t, struct group *g)
{
	for (size_t w = 0; w < g->dwords; w++)
		for (uint64_t b = g->dbits[w]; b != 0; b &= b - 1)
			if (pairs_add(&t->pairs, pair_key(g, (uint32_t)(w * 64 +
			    (size_t)__builtin_ctzll(b))), true) < 0)
				return -1;
	free(g->dbits);
	g->dbits = NULL;
	g->dwords = 0;
	g->dsparse = true;
	return 0;
}

/* 1: G's pair with destination ID is new and kept; 0: seen before; -1: not kept. */
static int
dest_mark(struct top *t, struct group *g, uint32_t id)
{
	bool may_add = t->npairs < TOP_PAIRS_MAX;

	if (!g->dsparse) {
		if ((size_t)id / 64 < g->dwords && (g->dbits[id / 64] >> (id % 64) & 1))
			return 0;
		if (!may_add)
			return -1;
		if ((size_t)id / 64 < g->dwords || dbits_grow(g, id) == 0) {
			g->dbits[id / 64] |= 1ULL << (id % 64);
			return 1;
		}
		if (dbits_to_set(t, g) < 0)
			return -1;
	}
	return pairs_add(&t->pairs, pair_key(g, id), may_add);
}

static void
top_dest(struct top *t, struct group *g, const char *dst)
{
	uint32_t id;
	int rc = -1;

	if (top_dst_id(t, dst, &id) == 0 && (rc = dest_mark(t, g, id)) > 0) {
		g->ndests++;
		t->npairs++;
	} else if (rc < 0)
		g->dests_capped = true;
}

static void
group_add(struct top *t, struct group *g, unsigned cl, uint64_t n, const struct evread_event *e)
{
	const char *ts = e->s[EVREAD_TS], *dst = e->s[EVREAD_DST_IP], *user;

	if (cl == CL_MAIL) {
		g->mail_msgs++;
		if (e->has_n[EVREAD_RCPT_COUNT] && e->n[EVREAD_RCPT_COUNT] > 0)
			g->mail_rcpts += (uint64_t)e->n[EVREAD_RCPT_COUNT];
		if (e->s[EVREAD_ACTION] != NULL && strcmp(e->s[EVREAD_ACTION], "pass") != 0)
			g->mail_stopped++;
		t->mail_seen = true;
		dst = NULL;	/* the MTA's next hop is not a destination the guard saw */
	} else
		g->count += n;
	if (ts != NULL) {
		if (g->first[0] == '\0' || strcmp(ts, g->first) < 0)
			strlcpy_sg(g->first, ts, sizeof(g->first));
		if (strcmp(ts, g->last) > 0)
			strlcpy_sg(g->last, ts, sizeof(g->last));
	}
	if (t->user_part >= 0 && g != t->other && g->name[0] == '\0' &&
	    (user = e->s[EVREAD_USER]) != NULL)
		strlcpy_sg(g->name, user, sizeof(g->name));
	if (dst != NULL)
		top_dest(t, g, dst);
}

/* The class of an event, and how many attempts it stands for; 0: top never counts it. */
static unsigned
event_class(const struct evread_event *e, uint64_t *n)
{
	const char *event = e->s[EVREAD_EVENT];

	*n = 1;
	if (event == NULL)
		return 0;
	switch (event[0]) {
	case 'a':
		return strcmp(event, "attempt") == 0 ? CL_ATTEMPT : 0;
	case 's':
		if (strcmp(event, "smtp") == 0)
			return CL_SMTP;
		if (strcmp(event, "summary") != 0 || !e->has_n[EVREAD_SUPPRESSED] ||
		    e->n[EVREAD_SUPPRESSED] < 0)
			return 0;
		*n = (uint64_t)e->n[EVREAD_SUPPRESSED];
		return CL_ATTEMPT;
	case 'm':
		return strcmp(event, "mail") == 0 ? CL_MAIL : 0;
	}
	return 0;
}

/* "%lld" of V into BUF (LEN >= 21), without snprintf's cost on every event. */
static const char *
fmt_lld(long long v, char *buf, size_t len)
{
	unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
	char digits[24], *d = digits + sizeof(digits);
	size_t n;

	do
		*--d = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--d = '-';
	n = (size_t)(digits + sizeof(digits) - d);
	if (n >= len)
		n = len - 1;
	memcpy(buf, d, n);
	buf[n] = '\0';
	return buf;
}

/*
 * One part of the row an event counts in; NULL: not counted. Rows of --by
 * user are keyed by uid alone, because summary events carry the uid but not
 * the name.
 */
static const char *
top_part(struct top *t, const struct evread_event *e, enum top_by by, unsigned cl, char *buf,
    size_t len)
{
	const char *s;

	switch (by) {
	case BY_USER:
		if (!e->has_n[EVREAD_UID]) {
			if (cl == CL_MAIL) {
				t->mail_no_user++;
				return NULL;
			}
			return "(unknown)";
		}
		return fmt_lld(e->n[EVREAD_UID], buf, len);
	case BY_SENDER:
	case BY_SCRIPT:
	case BY_SUBJECT:
		s = e->s[by == BY_SENDER ? EVREAD_MAIL_FROM : by == BY_SCRIPT ? EVREAD_PHP_SCRIPT :
		    EVREAD_SUBJECT];
		return s ? s : "(none)";
	case BY_ORIGIN:
		return (s = e->s[EVREAD_ORIGIN]) ? s : "(none)";
	case BY_HOST:
		return e->s[EVREAD_HOST];
	case BY_PROCESS:
		return (s = e->s[EVREAD_EXE]) ? s : "(unknown)";
	case BY_CWD:
		return (s = e->s[EVREAD_CWD]) ? s : "(unknown)";
	case BY_DST:
	case BY_N:
		break;
	}
	return (s = e->s[EVREAD_DST_IP]) ? s : "(unknown)";
}

/* The row's key: one part as it is, several joined by TOP_SEP in BUF; NULL: not counted. */
static const char *
top_key(struct top *t, const struct evread_event *e, unsigned cl, char *buf, size_t len)
{
	char part[TOP_KEY_MAX / TOP_BY_MAX];
	const char *p;
	size_t at = 0;

	if (t->nby == 1)
		return top_part(t, e, t->by[0], cl, buf, len);
	for (size_t i = 0; i < t->nby; i++) {
		if ((p = top_part(t, e, t->by[i], cl, part, sizeof(part))) == NULL)
			return NULL;
		at += (size_t)snprintf(buf + at, len - at, "%s%.*s", i ? "\x1f" : "",
		    (int)(sizeof(part) - 1), p);
		if (at >= len)
			at = len - 1;
	}
	return buf;
}

static void
free_group(struct hnode *x)
{
	free(((struct group *)x)->key);
	free(((struct group *)x)->label);
	free(((struct group *)x)->dbits);
	free(x);
}

/* The row's label: its key, with the user part as name(uid); -1: out of memory. */
static int
group_label(struct top *t, struct group *g)
{
	size_t len = strlen(g->key) + sizeof(g->name) + 4, at = 0;
	const char *p = g->key;

	if ((g->label = malloc(len)) == NULL)
		return -1;
	if (g == t->other) {
		strlcpy_sg(g->label, g->key, len);
		return 0;
	}
	for (size_t i = 0; i < t->nby; i++) {
		const char *sep = strchr(p, TOP_SEP);
		int plen = sep != NULL ? (int)(sep - p) : (int)strlen(p);

		if ((int)i == t->user_part && p[0] != '(')
			at += (size_t)snprintf(g->label + at, len - at, "%s%s(%.*s)", i ? "\x1f" : "",
			    g->name, plen, p);
		else
			at += (size_t)snprintf(g->label + at, len - at, "%s%.*s", i ? "\x1f" : "",
			    plen, p);
		if (at >= len || sep == NULL)
			break;
		p = sep + 1;
	}
	return 0;
}

/*
 * Guard attempts and recipients through the MTA count alike: mail tried. The
 * gate (mail events) and the MTA's logs (--mta) see the same messages, so
 * the larger of the two counts, not their sum.
 */
static uint64_t
group_total(const struct group *g)
{
	return g->count + (g->mta_rcpts > g->mail_rcpts ? g->mta_rcpts : g->mail_rcpts);
}

static int
cmp_groups(const void *a, const void *b)
{
	const struct group *x = *(struct group *const *)a, *y = *(struct group *const *)b;

	if (group_total(x) != group_total(y))
		return group_total(x) > group_total(y) ? -1 : 1;
	return strcmp(x->label, y->label);
}

/* Part I of LABEL (parts split by TOP_SEP), its length in *LEN. */
static const char *
label_part(const char *label, size_t i, int *len)
{
	const char *sep;

	for (; i > 0 && (sep = strchr(label, TOP_SEP)) != NULL; i--)
		label = sep + 1;
	if (i > 0) {
		*len = 0;
		return "";
	}
	sep = strchr(label, TOP_SEP);
	*len = sep != NULL ? (int)(sep - label) : (int)strlen(label);
	return label;
}

/* Which columns a table has: attempts (and destinations), the gate's mail. */
static bool
shows_attempts(const struct top *t)
{
	return t->classes & (CL_ATTEMPT | CL_SMTP);
}

static bool
shows_mail(const struct top *t)
{
	return (t->classes & CL_MAIL) && (t->mail_seen || t->classes == CL_MAIL);
}

static void
print_json(struct top *t, struct group **rows, size_t n, size_t limit)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n && i < limit; i++) {
		struct group *g = rows[i];
		json_t *row = json_object();

		if (row == NULL)
			continue;
		for (size_t k = 0; k < t->nby; k++) {
			int len;
			const char *p = g == t->other ? g->label : label_part(g->label, k, &len);

			if (g == t->other)
				len = (int)strlen(p);
			json_object_set_new(row, top_by[t->by[k]], json_stringn(p, (size_t)len));
		}
		if (shows_attempts(t)) {
			json_object_set_new(row, "attempts", json_integer((json_int_t)g->count));
			json_object_set_new(row, "destinations", json_integer((json_int_t)g->ndests));
			json_object_set_new(row, "destinations_capped", json_boolean(g->dests_capped));
		}
		if (shows_mail(t)) {
			json_object_set_new(row, "mail_messages",
			    json_integer((json_int_t)g->mail_msgs));
			json_object_set_new(row, "mail_recipients",
			    json_integer((json_int_t)g->mail_rcpts));
			json_object_set_new(row, "mail_stopped",
			    json_integer((json_int_t)g->mail_stopped));
		}
		if (g->first[0])
			json_object_set_new(row, "first_seen", json_string(g->first));
		if (g->last[0])
			json_object_set_new(row, "last_seen", json_string(g->last));
		if (t->mta) {
			json_object_set_new(row, "mta_messages", json_integer((json_int_t)g->mta_msgs));
			json_object_set_new(row, "mta_recipients",
			    json_integer((json_int_t)g->mta_rcpts));
		}
		json_array_append_new(a, row);
	}
	json_dumpf(a, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(a);
}

static void
print_top(struct top *t, struct group **rows, size_t n, size_t limit, bool json)
{
	uint64_t maxc = n > 0 ? group_total(rows[0]) : 0;
	int width[TOP_BY_MAX] = { 0 };

	if (json) {
		print_json(t, rows, n, limit);
		return;
	}
	if (n == 0) {
		printf("no matching events\n");
		return;
	}
	/* every part but the last in a column as wide as its widest shown value */
	for (size_t k = 0; k + 1 < t->nby; k++) {
		width[k] = (int)strlen(top_by[t->by[k]]);
		for (size_t i = 0; i < n && i < limit; i++) {
			int len;

			(void)label_part(rows[i]->label, k, &len);
			if (len > width[k])
				width[k] = len > TOP_PART_WIDTH_MAX ? TOP_PART_WIDTH_MAX : len;
		}
	}
	if (shows_attempts(t))
		printf("%9s %6s  ", "ATTEMPTS", "DESTS");
	if (shows_mail(t))
		printf("%7s %7s %7s  ", "MAIL", "RCPTS", "STOPPED");
	if (t->mta)
		printf("%8s %9s  ", "MTA MSGS", "MTA RCPTS");
	printf("%-19s  %-19s  %-*s ", "FIRST SEEN", "LAST SEEN", TOP_BAR_WIDTH, "");
	for (size_t k = 0; k + 1 < t->nby; k++)
		printf("%-*s  ", width[k], top_by[t->by[k]]);
	printf("%s\n", top_by[t->by[t->nby - 1]]);
	for (size_t i = 0; i < n && i < limit; i++) {
		struct group *g = rows[i];
		uint64_t bar = maxc ? (group_total(g) * TOP_BAR_WIDTH + maxc - 1) / maxc : 0;
		char dests[24], when[32];

		snprintf(dests, sizeof(dests), "%llu%s", (unsigned long long)g->ndests,
		    g->dests_capped ? "+" : "");
		if (shows_attempts(t))
			printf("%9llu %6s  ", (unsigned long long)g->count, dests);
		if (shows_mail(t))
			printf("%7llu %7llu %7llu  ", (unsigned long long)g->mail_msgs,
			    (unsigned long long)g->mail_rcpts, (unsigned long long)g->mail_stopped);
		if (t->mta)
			printf("%8llu %9llu  ", (unsigned long long)g->mta_msgs,
			    (unsigned long long)g->mta_rcpts);
		printf("%s  ", evread_local_time(g->first[0] ? g->first : NULL, when,
		    sizeof(when)));
		printf("%s  ", evread_local_time(g->last[0] ? g->last : NULL, when,
		    sizeof(when)));
		for (uint64_t k = 0; k < TOP_BAR_WIDTH; k++)
			fputs(k < bar ? "\u2588" : " ", stdout);
		putchar(' ');
		if (g == t->other || t->nby == 1)
			put_safe(stdout, g->label, 120);
		else
			for (size_t k = 0; k < t->nby; k++) {
				char part[TOP_KEY_MAX];
				int len;
				const char *p = label_part(g->label, k, &len);

				snprintf(part, sizeof(part), "%.*s", len, p);
				put_safe(stdout, part, 120);
				if (k + 1 < t->nby)
					printf("%*s", 2 + (width[k] > len ? width[k] - len : 0), "");
			}
		putchar('\n');
	}
	if (n > limit)
		printf("(%zu more rows; --limit N shows them)\n", n - limit);
	if (t->other != NULL)
		printf("(more than %d distinct keys: %llu events of the rest are counted "
		    "under \"(other)\")\n", TOP_GROUPS_MAX, (unsigned long long)t->folded);
	if (t->mail_no_user > 0)
		printf("(%llu mail messages came from SASL logins or clients, not from a local "
		    "user; top --by origin shows them)\n", (unsigned long long)t->mail_no_user);
	if (t->mta_unknown > 0)
		printf("(%llu MTA messages of users unknown to this host are not shown; "
		    "smtpguard mta-report lists them)\n", (unsigned long long)t->mta_unknown);
}

struct mta_merge {
	struct top		*t;
	const struct evread_filter	*f;
};

/* One local user's MTA volume into its --by user row (made if the guard never saw it). */
static void
merge_mta_user(const struct mtareport_user *u, void *arg)
{
	struct mta_merge *m = arg;
	char key[24];
	struct group *g;

	if (u->uid < 0) {
		m->t->mta_unknown += u->messages;
		return;
	}
	if ((m->f->uid >= 0 && u->uid != m->f->uid) ||
	    (m->f->user != NULL && strcmp(m->f->user, u->name) != 0))
		return;
	snprintf(key, sizeof(key), "%ld", u->uid);
	if ((g = top_group(m->t, key)) == NULL)
		return;
	g->mta_msgs += u->messages;
	g->mta_rcpts += u->recipients;
	if (g != m->t->other && g->name[0] == '\0')
		strlcpy_sg(g->name, u->name[0] ? u->name : "?", sizeof(g->name));
}

enum { OPT_BY = EVREAD_OPT_END, OPT_MTA, OPT_MTA_LOG };

struct top_args {
	struct evread_filter	 f;
	enum top_by		 by[TOP_BY_MAX];
	size_t			 nby;
	bool			 mta;
	char			**mta_logs;	/* argc + 1 slots */
	size_t			 nmta_logs;
};

static int
top_option(void *ctx, int ch, const char *arg, char *err, size_t errlen)
{
	struct top_args *a = ctx;
	const char *word;
	int rc;

	if ((rc = evread_filter_option(&a->f, ch, arg, err, errlen)) != 0)
		return rc;
	switch (ch) {
	case OPT_MTA_LOG:
		a->mta_logs[a->nmta_logs++] = (char *)arg;
		a->mta = true;
		return 1;
	case OPT_MTA:
		a->mta = true;
		return 1;
	case OPT_BY:
		if ((word = cliopt_word(arg, top_by, BY_N)) == NULL) {
			snprintf(err, errlen, "bad --by '%s' (user, process, dst, cwd, sender, "
			    "script, subject, origin, host)", arg);
			return -1;
		}
		for (size_t i = 0; i < a->nby; i++)
			if (top_by[a->by[i]] == word) {
				snprintf(err, errlen, "--by %s given twice", arg);
				return -1;
			}
		if (a->nby == TOP_BY_MAX) {
			snprintf(err, errlen, "at most %d --by keys", TOP_BY_MAX);
			return -1;
		}
		for (int b = 0; b < BY_N; b++)
			if (top_by[b] == word)
				a->by[a->nby++] = (enum top_by)b;
		return 1;
	}
	return 0;
}

static const char top_help[] =
    "usage: smtpguard top [--by KEY]... [--limit N] [filters] [FILE|DIR...]\n"
    "Who is sending: one row per KEY, most attempts first, with distinct\n"
    "destinations, first and last seen. Attempts suppressed by flood\n"
    "limiting are counted (from summary events), so counts are exact. The mail\n"
    "gate's messages (mail events) are counted beside them: MAIL messages, their\n"
    "RCPTS, and how many were STOPPED (held, deferred or rejected).\n"
    "Reads the configured event log, or the FILEs and DIRs given (a DIR: every\n"
    "*.jsonl and *.jsonl.N under it, as a central rsyslog writes them per host).\n"
    "  --by user      attempts and mail per user(uid) (default)\n"
    "  --by process   attempts per executable\n"
    "  --by dst       attempts per destination address\n"
    "  --by cwd       attempts per working directory (PHP: the site)\n"
    "  --by sender    SMTP sessions (trap/audit) and mail per MAIL FROM\n"
    "  --by script    SMTP sessions and mail per X-PHP-Originating-Script\n"
    "  --by subject   SMTP sessions and mail per Subject\n"
    "  --by origin    mail per origin (sasl:LOGIN, user:NAME, client:ADDRESS, bounce)\n"
    "  --by host      attempts and mail per host (the collector's host field)\n"
    "                 --by twice or three times: a row per combination, e.g.\n"
    "                 --by host --by user\n"
    "  --limit N      rows shown (default 10)\n"
    "  --mta          with --by user: also each user's outbound mail through\n"
    "                 Postfix/Exim (messages, recipients) from the MTA logs\n"
    "                 mta-report reads; --since/--until/--user/--uid apply\n"
    "  --mta-log FILE that MTA log instead (repeatable; implies --mta)\n";

/* The classes an --event filter leaves (an event top never counts: none). */
static unsigned
filter_classes(const char *event)
{
	if (event == NULL)
		return CL_ATTEMPT | CL_SMTP | CL_MAIL;
	if (strcmp(event, "attempt") == 0 || strcmp(event, "summary") == 0)
		return CL_ATTEMPT;
	if (strcmp(event, "smtp") == 0)
		return CL_SMTP;
	return strcmp(event, "mail") == 0 ? CL_MAIL : 0;
}

/* Counts one file's events; -1: a read error (said). */
static int
top_file(struct top *t, const struct evread_filter *f, const char *path, uint64_t *unreadable)
{
	struct evread r;
	struct evread_event e;
	json_t *owner;
	char keybuf[TOP_KEY_MAX];
	int rc = 0;

	if (evread_open(&r, path) < 0) {
		fprintf(stderr, "smtpguard top: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (evread_next_event(&r, f, &e, &owner)) {
		const char *key;
		uint64_t count;
		unsigned cl = event_class(&e, &count) & t->classes;
		struct group *g;

		if (cl != 0 && evread_matches(f, &e) &&
		    (key = top_key(t, &e, cl, keybuf, sizeof(keybuf))) != NULL &&
		    (g = top_group(t, key)) != NULL)
			group_add(t, g, cl, count, &e);
		json_decref(owner);
	}
	if (ferror(r.fp) || r.blk_err) {
		fprintf(stderr, "smtpguard top: %s: %s\n", path, strerror(errno));
		rc = -1;
	}
	*unreadable += r.unreadable;
	evread_close(&r);
	return rc;
}

int
review_top(const char *path, int argc, char **argv)
{
	static const struct cliopt_option opts[] = {
		EVREAD_FILTER_OPTIONS,
		{ "by", true, OPT_BY },
		{ "mta", false, OPT_MTA },
		{ "mta-log", true, OPT_MTA_LOG },
		{ NULL, false, 0 },
	};
	static const char *const help[] = { top_help, evread_filter_help, NULL };
	struct cliopt o = { .cmd = "top", .help = help, .operands = true,
	    .takes = CLIOPT_WANT_TIME | CLIOPT_WANT_LIMIT | CLIOPT_WANT_JSON, .limit = TOP_DEFAULT_LIMIT };
	struct top_args a = { .f = EVREAD_FILTER_INIT };
	struct top t = { .user_part = -1 };
	struct evread_files files;
	struct group **rows = NULL;
	bool failed = false;
	uint64_t unreadable = 0;
	char err[PATH_MAX + 64];
	size_t n = 0;
	int rc;

	if ((a.mta_logs = calloc((size_t)argc + 1, sizeof(*a.mta_logs))) == NULL)
		return 1;
	if ((rc = cliopt_parse(&o, argc, argv, "h", opts, top_option, &a)) != 0) {
		rc = rc == 1 ? 0 : 2;
		goto err0;
	}
	evread_filter_window(&a.f, &o);
	if (a.nby == 0)
		a.by[a.nby++] = BY_USER;
	rc = 2;
	if (a.mta && (a.nby != 1 || a.by[0] != BY_USER)) {
		fprintf(stderr, "smtpguard top: --mta goes with --by user (MTA logs name users, "
		    "not processes, scripts or hosts)\n");
		goto err0;
	}
	rc = 1;
	if (evread_files_expand(&files, argv + o.next, (size_t)(argc - o.next), path, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "smtpguard top: %s\n", err);
		goto err0;
	}
	memcpy(t.by, a.by, sizeof(t.by));
	t.nby = a.nby;
	t.mta = a.mta;
	t.classes = filter_classes(a.f.event);
	for (size_t i = 0; i < t.nby; i++) {
		if (t.by[i] == BY_USER)
			t.user_part = (int)i;
		if (t.by[i] != BY_HOST || t.nby == 1)
			t.classes &= by_classes[t.by[i]];
	}
	/* a host alone counts attempts and mail; the smtp events detail attempts already */
	if (t.nby == 1 && t.by[0] == BY_HOST && (t.classes & (CL_ATTEMPT | CL_MAIL)))
		t.classes &= ~(unsigned)CL_SMTP;
	if (htab_init(&t.groups) < 0)
		goto err1;
	if (htab_init(&t.dsts) < 0)
		goto err2;
	if (pairs_init(&t.pairs) < 0)
		goto err3;
	for (size_t i = 0; i < files.n; i++)
		if (top_file(&t, &a.f, files.paths[i], &unreadable) < 0)
			failed = true;	/* the rest is still shown, and the command fails */
	/* An MTA log that cannot be read fails the command, after the rest is shown. */
	if (a.mta && mtareport_cli_users(a.mta_logs, a.nmta_logs, o.since, o.until, merge_mta_user,
	    &(struct mta_merge){ &t, &a.f }) < 0)
		failed = true;
	if ((rows = calloc(t.groups.n + 1, sizeof(*rows))) == NULL) {
		fprintf(stderr, "smtpguard top: out of memory\n");
		goto err4;
	}
	for (size_t b = 0; b < t.groups.nb; b++)
		for (struct hnode *x = t.groups.b[b]; x != NULL; x = x->next)
			rows[n++] = (struct group *)x;
	if (t.other != NULL)
		rows[n++] = t.other;
	for (size_t i = 0; i < n; i++)
		if (group_label(&t, rows[i]) < 0) {
			fprintf(stderr, "smtpguard top: out of memory\n");
			goto err5;
		}
	qsort(rows, n, sizeof(*rows), cmp_groups);
	print_top(&t, rows, n, (size_t)o.limit, o.json);
	fflush(stdout);
	rc = ferror(stdout) || failed ? 1 : 0;
err5:
	free(rows);
err4:
	free(t.pairs.slot);
err3:
	htab_free(&t.dsts, hnode_free);
err2:
	htab_free(&t.groups, free_group);
	if (t.other != NULL)
		free_group(&t.other->node);
err1:
	if (unreadable > 0)
		fprintf(stderr, "smtpguard top: %llu unreadable lines skipped\n",
		    (unsigned long long)unreadable);
	evread_files_free(&files);
err0:
	free(a.mta_logs);
	return rc;
}
