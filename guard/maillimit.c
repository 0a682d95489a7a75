/*
 * maillimit.c — recipients per origin and per sender domain over a sliding
 * hour, the limits that apply to them, and the decision for one message:
 * within its origin's and its domain's limits it passes and is counted;
 * past either it gets the configured action (hold, defer, reject), is
 * counted as seen but not as sent, and the first time in an hour an alert
 * is due. The limit lines of exceptions.conf are parsed and written here
 * (their comment="..." by exceptions.c's reader and writer, shared with
 * the allow lines):
 *
 *   limit ORIGIN N/hour [comment="..."]
 *
 * ORIGIN is sasl:LOGIN, user:NAME, domain:DOMAIN, client:ADDR or bounce;
 * N = 0 holds everything from it.
 *
 * Memory is fixed: at most MAILLIMIT_ORIGINS counted keys (origins and
 * domains), each 60 one-minute buckets (~1 KiB). A key whose hour is empty
 * is reused. When every slot holds a key with mail in the last hour, a new
 * key is counted in one shared "overflow" bucket under the limit the caller
 * gives: the keys already counted keep their counts (evicting one would
 * hand a spammer a fresh hour — the attack the table must survive is "mint
 * origins until the culprit's counter is pushed out"), and the newcomers
 * share one limit, so a flood of fresh origins is held once it sends as
 * much as one origin may, while genuine new senders are not all held at
 * once as a fail-closed table would. The decision says it was an overflow,
 * so the event and the alert tell the admin.
 *
 * The counters are saved to a state file (temp file, fsync, rename) and
 * loaded at start, so a restart does not start a fresh hour; the file also
 * carries the caller's day tally (status: passed/held today). Pure: never
 * logs, never exits; errors go to err. One room past 600 lines: the table,
 * its state file and the limit lines name the same keys and must agree.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smtpguard.h"

#define HOUR			3600
#define STATE_MAGIC		"smtpguard-mail-state 1"
#define STATE_TALLY		"@today"	/* no origin starts with '@' */
#define STATE_LINE_MAX		4096	/* a key and 60 "minute:passed:seen" triples */

struct ml_bucket {
	int32_t		 minute;	/* now / 60; far beyond 2038 */
	uint32_t	 passed;	/* recipients let through */
	uint32_t	 seen;		/* recipients asked for, held ones too */
};

struct ml_entry {
	struct hnode	 node;		/* first: the hash table's */
	bool		 used;
	char		 key[MAIL_ORIGIN_MAX];
	time_t		 alerted;	/* the last alert, 0: none */
	time_t		 last;		/* the last message counted */
	struct ml_bucket b[MAILLIMIT_BUCKETS];
};

struct maillimit {
	struct ml_entry	*v;
	size_t		 max, n;
	struct htab	 h;
	struct ml_entry	 overflow;
};

static const char *const action_names[] = { "pass", "hold", "defer", "reject" };

const char *
maillimit_action_name(enum mail_action a)
{
	return (unsigned int)a < sizeof(action_names) / sizeof(action_names[0]) ?
	    action_names[a] : "?";
}

/* "N/hour" (N from 0 to MAILLIMIT_MAX), or "off" where allowed. */
int
maillimit_parse_rate(const char *s, bool allow_off, uint32_t *out)
{
	char *end;
	unsigned long n;

	if (allow_off && strcasecmp(s, "off") == 0) {
		*out = MAILLIMIT_OFF;
		return 0;
	}
	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	n = strtoul(s, &end, 10);
	if (errno != 0 || strcmp(end, "/hour") != 0 || n > MAILLIMIT_MAX)
		return -1;
	*out = (uint32_t)n;
	return 0;
}

/* The part after a kind's prefix, as mailorigin.c makes keys: lower case, no blanks. */
static int
origin_key(const char *in, char *out, size_t len)
{
	static const char *const kinds[] = { "sasl:", "user:", "domain:", "client:" };
	size_t n = strlen(in);

	if (strcmp(in, "bounce") == 0) {
		strlcpy_sg(out, in, len);
		return 0;
	}
	if (n >= len)
		return -1;
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		size_t p = strlen(kinds[k]);

		if (strncasecmp(in, kinds[k], p) != 0 || in[p] == '\0')
			continue;
		if (k == 3) {	/* client: one canonical form per address */
			memcpy(out, kinds[k], p);
			return mailorigin_norm_addr(in + p, out + p, len - p);
		}
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)in[i];

			if (c <= 0x20 || c >= 0x7f || (i >= p && strchr("\"\\", c)))
				return -1;
			out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		out[n] = '\0';
		return 0;
	}
	return -1;
}

int
maillimit_rule_parse(const char *line, struct mail_limit_rule *r, char *err, size_t errlen)
{
	char word[EXCEPTION_LINE_MAX], q[ERR_QUOTE_MAX + 4];
	const char *p = line;
	size_t n;

	memset(r, 0, sizeof(*r));
	if (strlen(line) >= EXCEPTION_LINE_MAX) {
		snprintf(err, errlen, "line longer than %d bytes", EXCEPTION_LINE_MAX - 1);
		return -1;
	}
	for (int w = 0; w < 3; w++) {
		p += strspn(p, " \t");
		n = strcspn(p, " \t");
		memcpy(word, p, n);
		word[n] = '\0';
		p += n;
		if (w == 0 && strcmp(word, "limit") != 0) {
			snprintf(err, errlen, "expected 'limit ORIGIN N/hour', got '%s'",
			    err_quote(word, q, sizeof(q)));
			return -1;
		}
		if (w == 1 && origin_key(word, r->origin, sizeof(r->origin)) < 0) {
			snprintf(err, errlen, word[0] == '\0' ? "limit what? (sasl:LOGIN, "
			    "user:NAME, domain:DOMAIN, client:ADDR or bounce)" : "'%s' is not "
			    "an origin (sasl:LOGIN, user:NAME, domain:DOMAIN, client:ADDR or "
			    "bounce)", err_quote(word, q, sizeof(q)));
			return -1;
		}
		if (w == 2 && maillimit_parse_rate(word, false, &r->per_hour) < 0) {
			snprintf(err, errlen, "bad limit '%s' (N/hour, N from 0 to %d; 0 holds "
			    "everything)", err_quote(word, q, sizeof(q)), MAILLIMIT_MAX);
			return -1;
		}
	}
	p += strspn(p, " \t");
	if (strncmp(p, "comment=", 8) == 0) {
		if ((p = exception_comment_parse(p + 8, r->comment, sizeof(r->comment), err,
		    errlen)) == NULL)
			return -1;
		p += strspn(p, " \t");
	}
	if (*p != '\0') {
		snprintf(err, errlen, "unexpected '%s' after the limit (only comment=\"...\" "
		    "may follow)", err_quote(p, q, sizeof(q)));
		return -1;
	}
	if (maillimit_rule_format(r, word, sizeof(word)) < 0) {
		snprintf(err, errlen, "line longer than %d bytes once written out",
		    EXCEPTION_LINE_MAX - 1);
		return -1;
	}
	return 0;
}

int
maillimit_rule_format(const struct mail_limit_rule *r, char *buf, size_t len)
{
	int w = snprintf(buf, len, "limit %s %lu/hour", r->origin, (unsigned long)r->per_hour);
	size_t off;

	if (w < 0 || (size_t)w >= len) {
		errno = ENOSPC;
		return -1;
	}
	off = (size_t)w;
	if (exception_comment_format(r->comment, buf, len, &off) < 0)
		return -1;
	return (int)off;
}

/* `smtpguard limit ORIGIN N/hour [--comment TEXT]` → the line it asks for. */
int
maillimit_rule_from_argv(int argc, char **argv, char *line, size_t len, char *err,
    size_t errlen)
{
	struct mail_limit_rule r;
	char q[ERR_QUOTE_MAX + 4];

	if (argc != 3 && !(argc == 5 && strcmp(argv[3], "--comment") == 0)) {
		snprintf(err, errlen, "usage: smtpguard limit ORIGIN N/hour [--comment TEXT]");
		return -1;
	}
	memset(&r, 0, sizeof(r));
	if (origin_key(argv[1], r.origin, sizeof(r.origin)) < 0) {
		snprintf(err, errlen, "'%s' is not an origin (sasl:LOGIN, user:NAME, "
		    "domain:DOMAIN, client:ADDR or bounce)", err_quote(argv[1], q, sizeof(q)));
		return -1;
	}
	if (maillimit_parse_rate(argv[2], false, &r.per_hour) < 0) {
		snprintf(err, errlen, "bad limit '%s' (N/hour, N from 0 to %d)",
		    err_quote(argv[2], q, sizeof(q)), MAILLIMIT_MAX);
		return -1;
	}
	if (argc == 5) {
		if (exception_check_comment(argv[4], err, errlen) < 0)
			return -1;
		strlcpy_sg(r.comment, argv[4], sizeof(r.comment));
	}
	if (maillimit_rule_format(&r, line, len) < 0 || strlen(line) >= EXCEPTION_LINE_MAX) {
		snprintf(err, errlen, "limit longer than %d bytes", EXCEPTION_LINE_MAX - 1);
		return -1;
	}
	return 0;
}

uint32_t
maillimit_limit_for(const struct mail_limit_rule *rules, size_t n, const char *origin,
    uint32_t fallback)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(rules[i].origin, origin) == 0)
			return rules[i].per_hour;
	return fallback;
}

struct maillimit *
maillimit_new(size_t max_origins)
{
	struct maillimit *ml;

	if (max_origins == 0 || (ml = calloc(1, sizeof(*ml))) == NULL)
		return NULL;
	if ((ml->v = calloc(max_origins, sizeof(*ml->v))) == NULL)
		goto err1;
	if (htab_init(&ml->h) < 0)
		goto err2;
	ml->max = max_origins;
	strlcpy_sg(ml->overflow.key, MAILLIMIT_OVERFLOW, sizeof(ml->overflow.key));
	return ml;
err2:
	free(ml->v);
err1:
	free(ml);
	return NULL;
}

/* The entries live in ml->v: the table's nodes own nothing. */
static void
node_keep(struct hnode *x)
{
	(void)x;
}

void
maillimit_free(struct maillimit *ml)
{
	if (ml == NULL)
		return;
	htab_free(&ml->h, node_keep);
	free(ml->v);
	free(ml);
}

size_t
maillimit_count(const struct maillimit *ml)
{
	return ml->n;
}

static uint32_t
sum(const struct ml_entry *e, time_t now, bool passed)
{
	int32_t minute = (int32_t)(now / 60);
	uint32_t total = 0;

	for (size_t i = 0; i < MAILLIMIT_BUCKETS; i++) {
		const struct ml_bucket *b = &e->b[i];

		/* The hour: this minute and the 59 before it. */
		if (b->minute > minute - MAILLIMIT_BUCKETS && b->minute <= minute) {
			uint32_t v = passed ? b->passed : b->seen;

			total = total > UINT32_MAX - v ? UINT32_MAX : total + v;
		}
	}
	return total;
}

static void
add(struct ml_entry *e, time_t now, uint32_t n, bool passed)
{
	int32_t minute = (int32_t)(now / 60);
	struct ml_bucket *b = &e->b[(uint32_t)minute % MAILLIMIT_BUCKETS];

	if (b->minute != minute) {
		b->minute = minute;
		b->passed = b->seen = 0;
	}
	b->seen = b->seen > UINT32_MAX - n ? UINT32_MAX : b->seen + n;
	if (passed)
		b->passed = b->passed > UINT32_MAX - n ? UINT32_MAX : b->passed + n;
	e->last = now;
}

/* Nothing in its hour and no alert standing: the slot may hold another key. */
static bool
stale(const struct ml_entry *e, time_t now)
{
	return now - e->last >= HOUR && (e->alerted == 0 || now - e->alerted >= HOUR);
}

static struct ml_entry *
lookup(struct maillimit *ml, const char *key)
{
	size_t h = str_hash(key);

	for (struct hnode *x = ml->h.b[h & (ml->h.nb - 1)]; x != NULL; x = x->next)
		if (x->hash == h && strcmp(((struct ml_entry *)x)->key, key) == 0)
			return (struct ml_entry *)x;
	return NULL;
}

/* The key's entry, a new one, or NULL when every slot is in use this hour. */
static struct ml_entry *
get(struct maillimit *ml, const char *key, time_t now)
{
	struct ml_entry *e = lookup(ml, key);
	size_t i;

	if (e != NULL)
		return e;
	if (ml->n == ml->max) {
		/* Full: free the slots of keys whose hour is over (rare: O(max) once). */
		for (i = 0; i < ml->max; i++)
			if (ml->v[i].used && stale(&ml->v[i], now)) {
				htab_remove(&ml->h, &ml->v[i].node);
				ml->v[i].used = false;
				ml->n--;
			}
		if (ml->n == ml->max)
			return NULL;
	}
	for (i = 0; i < ml->max && ml->v[i].used; i++)
		;
	e = &ml->v[i];
	memset(e, 0, sizeof(*e));
	e->used = true;
	strlcpy_sg(e->key, key, sizeof(e->key));
	e->node.hash = str_hash(key);
	htab_insert(&ml->h, &e->node);
	ml->n++;
	return e;
}

static bool
alert_due(struct ml_entry *e, time_t now)
{
	if (e->alerted != 0 && now - e->alerted < HOUR)
		return false;
	e->alerted = now;
	return true;
}

void
maillimit_decide(struct maillimit *ml, const struct mail_origin *o, uint32_t nrcpt,
    uint32_t limit, uint32_t domain_limit, enum mail_action over_action, time_t now,
    struct mail_decision *d)
{
	struct ml_entry *e, *de = NULL;
	uint32_t oc, dc = 0;
	bool over_o, over_d;

	memset(d, 0, sizeof(*d));
	if ((e = get(ml, o->name, now)) == NULL) {
		e = &ml->overflow;
		d->overflow = true;
	}
	if (o->domain[0] != '\0' && (de = get(ml, o->domain, now)) == NULL) {
		de = &ml->overflow;
		d->overflow = true;
	}
	if (de == e)	/* both in the overflow bucket: count it once */
		de = NULL;
	oc = sum(e, now, true);
	over_o = limit != MAILLIMIT_OFF && (nrcpt > limit || oc > limit - nrcpt);
	if (de != NULL) {
		dc = sum(de, now, true);
		over_d = domain_limit != MAILLIMIT_OFF &&
		    (nrcpt > domain_limit || dc > domain_limit - nrcpt);
	} else
		over_d = false;
	d->over = over_o || over_d;
	add(e, now, nrcpt, !d->over);
	if (de != NULL)
		add(de, now, nrcpt, !d->over);
	d->action = d->over ? over_action : MAIL_PASS;
	d->hour_count = sum(e, now, false);
	d->limit = limit;
	d->domain_count = de != NULL ? sum(de, now, false) : 0;
	d->domain_limit = de != NULL ? domain_limit : MAILLIMIT_OFF;
	if (over_o) {
		d->alert = alert_due(e, now);
		snprintf(d->rule, sizeof(d->rule), "limit:%s", e->key);
	} else if (over_d) {
		d->alert = alert_due(de, now);
		snprintf(d->rule, sizeof(d->rule), "domain_limit:%s", de->key);
	} else
		snprintf(d->rule, sizeof(d->rule), "%s", d->overflow ? "within:overflow" :
		    "within");
}

static int
write_entry(FILE *fp, const struct ml_entry *e, time_t now)
{
	int32_t minute = (int32_t)(now / 60);

	if (stale(e, now))
		return 0;
	fprintf(fp, "%s %lld", e->key, (long long)e->alerted);
	for (size_t i = 0; i < MAILLIMIT_BUCKETS; i++) {
		const struct ml_bucket *b = &e->b[i];

		if (b->minute > minute - MAILLIMIT_BUCKETS && b->minute <= minute &&
		    b->seen > 0)
			fprintf(fp, " %ld:%lu:%lu", (long)b->minute, (unsigned long)b->passed,
			    (unsigned long)b->seen);
	}
	return fputc('\n', fp) == EOF ? -1 : 0;
}

struct ml_saving {
	const struct maillimit	*ml;
	const struct mail_tally	*tally;
	time_t			 now;
};

static int
fill_state(FILE *fp, void *arg)
{
	const struct ml_saving *sv = arg;

	fprintf(fp, "%s %lld\n", STATE_MAGIC, (long long)sv->now);
	if (sv->tally != NULL && sv->tally->day != 0)
		fprintf(fp, "%s %lld %llu %llu %llu %llu\n", STATE_TALLY,
		    (long long)sv->tally->day, (unsigned long long)sv->tally->n[MAIL_PASS],
		    (unsigned long long)sv->tally->n[MAIL_HOLD],
		    (unsigned long long)sv->tally->n[MAIL_DEFER],
		    (unsigned long long)sv->tally->n[MAIL_REJECT]);
	for (size_t i = 0; i < sv->ml->max; i++)
		if (sv->ml->v[i].used)
			(void)write_entry(fp, &sv->ml->v[i], sv->now);
	(void)write_entry(fp, &sv->ml->overflow, sv->now);
	return 0;
}

int
maillimit_save(const struct maillimit *ml, const struct mail_tally *tally, const char *path,
    time_t now, char *err, size_t errlen)
{
	struct ml_saving sv = { .ml = ml, .tally = tally, .now = now };

	if (file_replace(path, 0600, fill_state, &sv) < 0) {
		snprintf(err, errlen, "writing %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* One "KEY ALERTED MIN:PASSED:SEEN..." line into its entry; -1 if malformed. */
static int
load_entry(struct maillimit *ml, char *line, time_t now)
{
	char *save = NULL, *key = strtok_r(line, " ", &save), *tok, *end;
	int32_t minute = (int32_t)(now / 60);
	struct ml_entry *e;
	long long alerted;

	if (key == NULL || strlen(key) >= MAIL_ORIGIN_MAX || (tok = strtok_r(NULL, " ",
	    &save)) == NULL)
		return -1;
	errno = 0;
	alerted = strtoll(tok, &end, 10);
	if (*end != '\0' || errno != 0 || alerted < 0)
		return -1;
	e = strcmp(key, MAILLIMIT_OVERFLOW) == 0 ? &ml->overflow : get(ml, key, now);
	if (e == NULL)
		return 0;	/* a full table: the rest of the file cannot be counted */
	e->alerted = (time_t)alerted;
	while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
		long m;
		unsigned long passed, seen;
		struct ml_bucket *b;

		if (sscanf(tok, "%ld:%lu:%lu", &m, &passed, &seen) != 3 ||
		    passed > UINT32_MAX || seen > UINT32_MAX || passed > seen)
			return -1;
		if (m <= minute - MAILLIMIT_BUCKETS || m > minute)
			continue;	/* out of the hour (or a clock that went back) */
		b = &e->b[(uint32_t)m % MAILLIMIT_BUCKETS];
		b->minute = (int32_t)m;
		b->passed = (uint32_t)passed;
		b->seen = (uint32_t)seen;
		if ((time_t)m * 60 > e->last)
			e->last = (time_t)m * 60;
	}
	return 0;
}

/* "DAY PASSED HELD DEFERRED REJECTED": the day's tally, for the caller to judge. */
static int
load_tally(struct mail_tally *tally, const char *s)
{
	struct mail_tally t = { 0 };
	long long day;
	int end = 0;

	if (sscanf(s, "%lld %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 "%n", &day,
	    &t.n[MAIL_PASS], &t.n[MAIL_HOLD], &t.n[MAIL_DEFER], &t.n[MAIL_REJECT], &end) != 5 ||
	    s[end] != '\0' || day <= 0)
		return -1;
	t.day = (time_t)day;
	if (tally != NULL)
		*tally = t;
	return 0;
}

int
maillimit_load(struct maillimit *ml, struct mail_tally *tally, const char *path, time_t now,
    char *err, size_t errlen)
{
	char line[STATE_LINE_MAX];
	FILE *fp;
	int lineno = 0;

	if ((fp = fopen(path, "re")) == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		size_t n = strlen(line);

		lineno++;
		if (n == 0 || line[n - 1] != '\n') {
			snprintf(err, errlen, "%s:%d: line too long or cut", path, lineno);
			goto fail;
		}
		line[n - 1] = '\0';
		if (lineno == 1) {
			if (strncmp(line, STATE_MAGIC " ", strlen(STATE_MAGIC) + 1) != 0) {
				snprintf(err, errlen, "%s: not a smtpguard mail state file", path);
				goto fail;
			}
			continue;
		}
		if (strncmp(line, STATE_TALLY " ", strlen(STATE_TALLY) + 1) == 0) {
			if (load_tally(tally, line + strlen(STATE_TALLY) + 1) < 0) {
				snprintf(err, errlen, "%s:%d: malformed %s line", path, lineno,
				    STATE_TALLY);
				goto fail;
			}
			continue;
		}
		if (load_entry(ml, line, now) < 0) {
			snprintf(err, errlen, "%s:%d: malformed counter line", path, lineno);
			goto fail;
		}
	}
	fclose(fp);
	return 0;
fail:
	fclose(fp);
	return -1;
}
