/*
 * review_top.c — `smtpguard top`: who is sending. Counts the attempts in
 * the event log per user, process, destination, working directory, or (from
 * smtp events) per sender, script or subject; attempts suppressed by flood
 * limiting count too (from summary events), so counts are exact. With --mta,
 * each user's mail through the MTA (mtareport.c) joins their row. Memory
 * grows with the distinct keys, each under a named cap, never with the log.
 * Reading and filtering are evread.c's.
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

struct group {
	struct hnode	 node;
	char		*key;
	char		 name[USER_NAME_MAX];	/* --by user: the name seen with the uid */
	char		 label[USER_NAME_MAX + 24];
	uint64_t	 count;
	uint64_t	 ndests;
	bool		 dests_capped;
	uint64_t	 mta_msgs, mta_rcpts;	/* top --mta: outbound through the MTA */
	char		 first[40], last[40];
};

/* One (group, destination) pair seen, so distinct destinations cost one lookup. */
struct pair {
	struct hnode	 node;
	struct group	*g;
	char		 dst[];
};

#define TOP_PAIRS_MAX	1000000	/* past this, new destinations are counted as "N+" */

struct top {
	const char	*by;
	bool		 mta;		/* MTA columns (--by user --mta) */
	uint64_t	 mta_unknown;	/* MTA messages of users this host does not know */
	struct htab	 groups, pairs;
	struct group	*other;
	uint64_t	 folded;	/* events counted in "(other)" */
};

static struct group *
group_new(const char *key)
{
	struct group *g;

	if ((g = calloc(1, sizeof(*g))) == NULL || (g->key = strdup(key)) == NULL) {
		free(g);
		return NULL;
	}
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
			t->other = group_new("(other)");
		if (t->other != NULL)
			t->folded++;
		return t->other;
	}
	if ((g = group_new(key)) == NULL)
		return NULL;
	g->node.hash = h;
	htab_insert(&t->groups, &g->node);
	return g;
}

static void
top_dest(struct top *t, struct group *g, const char *dst)
{
	size_t h = str_hash(dst) ^ ((uintptr_t)g * 0x9e3779b97f4a7c15ULL);
	size_t len = strlen(dst);
	struct pair *p;

	for (struct hnode *x = t->pairs.b[h & (t->pairs.nb - 1)]; x; x = x->next)
		if (x->hash == h && (p = (struct pair *)x)->g == g && strcmp(p->dst, dst) == 0)
			return;
	if (t->pairs.n >= TOP_PAIRS_MAX || (p = malloc(sizeof(*p) + len + 1)) == NULL) {
		g->dests_capped = true;
		return;
	}
	p->g = g;
	memcpy(p->dst, dst, len + 1);
	p->node.hash = h;
	htab_insert(&t->pairs, &p->node);
	g->ndests++;
}

static void
group_add(struct top *t, struct group *g, uint64_t n, const struct evread_event *e)
{
	const char *ts = e->s[EVREAD_TS], *dst = e->s[EVREAD_DST_IP], *user;

	g->count += n;
	if (ts != NULL) {
		if (g->first[0] == '\0' || strcmp(ts, g->first) < 0)
			strlcpy_sg(g->first, ts, sizeof(g->first));
		if (strcmp(ts, g->last) > 0)
			strlcpy_sg(g->last, ts, sizeof(g->last));
	}
	if (strcmp(t->by, "user") == 0 && g != t->other && g->name[0] == '\0' &&
	    (user = e->s[EVREAD_USER]) != NULL)
		strlcpy_sg(g->name, user, sizeof(g->name));
	if (dst != NULL)
		top_dest(t, g, dst);
}

static const char *const top_by[] = { "user", "process", "dst", "cwd", "sender", "script",
    "subject" };

/*
 * The row an event counts in, and how many attempts it stands for; NULL: not
 * counted. Rows of --by user are keyed by uid alone, because summary events
 * carry the uid but not the name.
 */
static const char *
top_key(const struct evread_event *e, const char *by, char *buf, size_t len, uint64_t *n)
{
	const char *event = e->s[EVREAD_EVENT], *s;
	bool smtp_view = strcmp(by, "sender") == 0 || strcmp(by, "script") == 0 ||
	    strcmp(by, "subject") == 0;

	if (event == NULL)
		return NULL;
	*n = 1;
	if (smtp_view) {
		if (strcmp(event, "smtp") != 0)
			return NULL;
		s = e->s[strcmp(by, "sender") == 0 ? EVREAD_MAIL_FROM :
		    strcmp(by, "script") == 0 ? EVREAD_PHP_SCRIPT : EVREAD_SUBJECT];
		return s ? s : "(none)";
	}
	if (strcmp(event, "summary") == 0) {
		if (!e->has_n[EVREAD_SUPPRESSED] || e->n[EVREAD_SUPPRESSED] < 0)
			return NULL;
		*n = (uint64_t)e->n[EVREAD_SUPPRESSED];
	} else if (strcmp(event, "attempt") != 0)
		return NULL;
	if (strcmp(by, "user") == 0) {
		if (!e->has_n[EVREAD_UID])
			return "(unknown)";
		snprintf(buf, len, "%lld", e->n[EVREAD_UID]);
		return buf;
	}
	if (strcmp(by, "process") == 0)
		return (s = e->s[EVREAD_EXE]) ? s : "(unknown)";
	if (strcmp(by, "cwd") == 0)
		return (s = e->s[EVREAD_CWD]) ? s : "(unknown)";
	return (s = e->s[EVREAD_DST_IP]) ? s : "(unknown)";
}

static void
free_group(struct hnode *x)
{
	free(((struct group *)x)->key);
	free(x);
}

static const char *
group_label(struct group *g, const char *by)
{
	if (strcmp(by, "user") != 0 || g->key[0] == '(')
		return g->key;
	snprintf(g->label, sizeof(g->label), "%s(%s)", g->name, g->key);
	return g->label;
}

static int
cmp_groups(const void *a, const void *b)
{
	const struct group *x = *(struct group *const *)a, *y = *(struct group *const *)b;

	/* With --mta, guard attempts and MTA recipients count alike: both are mail tried. */
	if (x->count + x->mta_rcpts != y->count + y->mta_rcpts)
		return x->count + x->mta_rcpts > y->count + y->mta_rcpts ? -1 : 1;
	return strcmp(x->label, y->label);
}

static void
print_top(struct top *t, struct group **rows, size_t n, size_t limit, bool json)
{
	uint64_t maxc = n > 0 ? rows[0]->count + rows[0]->mta_rcpts : 0;

	if (json) {
		json_t *a = json_array();

		for (size_t i = 0; i < n && i < limit; i++) {
			json_t *row = json_pack("{s:s, s:I, s:I, s:b, s:s?, s:s?}",
			    t->by, rows[i]->label, "attempts", (json_int_t)rows[i]->count,
			    "destinations", (json_int_t)rows[i]->ndests,
			    "destinations_capped", rows[i]->dests_capped,
			    "first_seen", rows[i]->first[0] ? rows[i]->first : NULL,
			    "last_seen", rows[i]->last[0] ? rows[i]->last : NULL);

			if (row != NULL && t->mta) {
				json_object_set_new(row, "mta_messages",
				    json_integer((json_int_t)rows[i]->mta_msgs));
				json_object_set_new(row, "mta_recipients",
				    json_integer((json_int_t)rows[i]->mta_rcpts));
			}
			json_array_append_new(a, row);
		}
		json_dumpf(a, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(a);
		return;
	}
	if (n == 0) {
		printf("no matching events\n");
		return;
	}
	printf("%9s %6s  ", "ATTEMPTS", "DESTS");
	if (t->mta)
		printf("%8s %9s  ", "MTA MSGS", "MTA RCPTS");
	printf("%-19s  %-19s  %-*s %s\n", "FIRST SEEN", "LAST SEEN", TOP_BAR_WIDTH, "", t->by);
	for (size_t i = 0; i < n && i < limit; i++) {
		struct group *g = rows[i];
		uint64_t bar = maxc ? ((g->count + g->mta_rcpts) * TOP_BAR_WIDTH + maxc - 1) /
		    maxc : 0;
		char dests[24], when[32];

		snprintf(dests, sizeof(dests), "%llu%s", (unsigned long long)g->ndests,
		    g->dests_capped ? "+" : "");
		printf("%9llu %6s  ", (unsigned long long)g->count, dests);
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
		put_safe(stdout, g->label, 120);
		putchar('\n');
	}
	if (n > limit)
		printf("(%zu more rows; --limit N shows them)\n", n - limit);
	if (t->other != NULL)
		printf("(more than %d distinct keys: %llu events of the rest are counted "
		    "under \"(other)\")\n", TOP_GROUPS_MAX, (unsigned long long)t->folded);
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
	const char		*by;
	bool			 mta;
	char			**mta_logs;	/* argc + 1 slots */
	size_t			 nmta_logs;
};

static int
top_option(void *ctx, int ch, const char *arg, char *err, size_t errlen)
{
	struct top_args *a = ctx;
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
		if ((a->by = cliopt_word(arg, top_by, sizeof(top_by) / sizeof(top_by[0]))) == NULL) {
			snprintf(err, errlen, "bad --by '%s' (user, process, dst, cwd, sender, "
			    "script, subject)", arg);
			return -1;
		}
		return 1;
	}
	return 0;
}

static const char top_help[] =
    "usage: smtpguard top [--by KEY] [--limit N] [filters]\n"
    "Who is sending: one row per KEY, most attempts first, with distinct\n"
    "destinations, first and last seen. Attempts suppressed by flood\n"
    "limiting are counted (from summary events), so counts are exact.\n"
    "  --by user      attempts per user(uid) (default)\n"
    "  --by process   attempts per executable\n"
    "  --by dst       attempts per destination address\n"
    "  --by cwd       attempts per working directory (PHP: the site)\n"
    "  --by sender    SMTP sessions (trap/audit) per MAIL FROM\n"
    "  --by script    SMTP sessions per X-PHP-Originating-Script\n"
    "  --by subject   SMTP sessions per Subject\n"
    "  --limit N      rows shown (default 10)\n"
    "  --mta          with --by user: also each user's outbound mail through\n"
    "                 Postfix/Exim (messages, recipients) from the MTA logs\n"
    "                 mta-report reads; --since/--until/--user/--uid apply\n"
    "  --mta-log FILE that MTA log instead (repeatable; implies --mta)\n";

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
	struct cliopt o = { .cmd = "top", .help = help,
	    .takes = CLIOPT_WANT_TIME | CLIOPT_WANT_LIMIT | CLIOPT_WANT_JSON, .limit = TOP_DEFAULT_LIMIT };
	struct top_args a = { .f = EVREAD_FILTER_INIT, .by = "user" };
	struct top t = { 0 };
	struct evread r;
	struct group **rows = NULL;
	bool mta_failed = false;
	struct evread_event e;
	json_t *owner;
	size_t n = 0;
	char keybuf[128];
	int rc;

	if ((a.mta_logs = calloc((size_t)argc + 1, sizeof(*a.mta_logs))) == NULL)
		return 1;
	if ((rc = cliopt_parse(&o, argc, argv, "h", opts, top_option, &a)) != 0) {
		rc = rc == 1 ? 0 : 2;
		goto err0;
	}
	evread_filter_window(&a.f, &o);
	rc = 2;
	if (a.mta && strcmp(a.by, "user") != 0) {
		fprintf(stderr, "smtpguard top: --mta goes with --by user (MTA logs name users, "
		    "not processes or scripts)\n");
		goto err0;
	}
	rc = 1;
	if (evread_open(&r, path) < 0) {
		fprintf(stderr, "smtpguard top: %s: %s\n", path, strerror(errno));
		goto err0;
	}
	t.by = a.by;
	t.mta = a.mta;
	if (htab_init(&t.groups) < 0)
		goto err1;
	if (htab_init(&t.pairs) < 0)
		goto err2;
	while (evread_next_event(&r, &a.f, &e, &owner)) {
		const char *key;
		uint64_t count;
		struct group *g;

		if (evread_matches(&a.f, &e) && (key = top_key(&e, a.by, keybuf, sizeof(keybuf),
		    &count)) != NULL && (g = top_group(&t, key)) != NULL)
			group_add(&t, g, count, &e);
		json_decref(owner);
	}
	if (ferror(r.fp)) {
		fprintf(stderr, "smtpguard top: %s: %s\n", path, strerror(errno));
		goto err3;
	}
	/* An MTA log that cannot be read fails the command, after the rest is shown. */
	if (a.mta && mtareport_cli_users(a.mta_logs, a.nmta_logs, o.since, o.until, merge_mta_user,
	    &(struct mta_merge){ &t, &a.f }) < 0)
		mta_failed = true;
	if ((rows = calloc(t.groups.n + 1, sizeof(*rows))) == NULL) {
		fprintf(stderr, "smtpguard top: out of memory\n");
		goto err3;
	}
	for (size_t b = 0; b < t.groups.nb; b++)
		for (struct hnode *x = t.groups.b[b]; x != NULL; x = x->next)
			rows[n++] = (struct group *)x;
	if (t.other != NULL)
		rows[n++] = t.other;
	for (size_t i = 0; i < n; i++)
		strlcpy_sg(rows[i]->label, group_label(rows[i], a.by), sizeof(rows[i]->label));
	qsort(rows, n, sizeof(*rows), cmp_groups);
	print_top(&t, rows, n, (size_t)o.limit, o.json);
	fflush(stdout);
	rc = ferror(stdout) || mta_failed ? 1 : 0;
	free(rows);
err3:
	htab_free(&t.pairs, hnode_free);
err2:
	htab_free(&t.groups, free_group);
	if (t.other != NULL)
		free_group(&t.other->node);
err1:
	if (r.unreadable > 0)
		fprintf(stderr, "smtpguard top: %llu unreadable lines skipped\n",
		    (unsigned long long)r.unreadable);
	evread_close(&r);
err0:
	free(a.mta_logs);
	return rc;
}
