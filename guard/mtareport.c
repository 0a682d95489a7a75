/*
 * mtareport.c — `smtpguard mta-report`: the mail that did go through the MTA.
 * Reads Postfix and Exim logs (plain or gzip), joins each message's lines by
 * queue id, and counts its outbound recipients under the message's origin:
 * the SASL user, else (for the null sender) the bounce generator, else the
 * local user who submitted it, else the client address, else the envelope
 * sender. Origins that look like abuse are flagged, with the queue ids that
 * show it. Memory grows with the messages in flight and the distinct keys,
 * each under a named cap; never with the size of the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zlib.h>

#include "smtpguard.h"

#define READ_CHUNK		(1 << 18)
#define MTA_LINE_MAX		8192	/* Postfix cuts at 2048 by default; syslog at 8 KiB */
#define INFLIGHT_MAX		1000000	/* messages open at once; past it, new ones are not followed */
#define ORIGINS_MAX		100000	/* past this, origins fold into "(other)" */
#define PAIRS_MAX		4000000	/* (origin, domain|address|sender|hour) pairs remembered */
#define MSG_RCPTS_MAX		10000	/* recipients followed per message; the rest are counted only */
#define EVIDENCE_MAX		3	/* queue ids shown per flag */
#define BAD_EXAMPLES		3	/* unparseable lines shown by file:line */
#define DEFAULT_LIMIT		10

/* What makes an origin a likely culprit; every threshold is in --help and the README. */
#define SPIKE_RCPTS_HOUR	100	/* recipients in one clock hour */
#define MANY_DOMAINS		20	/* distinct recipient domains */
#define RATIO_MIN_RCPTS		10	/* bounce and deferral ratios need this many recipients */
#define BOUNCE_RATIO		0.20
#define DEFER_RATIO		0.30
#define BACKSCATTER_MSGS	20	/* null-sender messages */
#define MANY_IPS		5	/* client addresses of one SASL user */

static const char *const default_logs[] = {
	"/var/log/mail.log", "/var/log/maillog", "/var/log/exim4/mainlog", "/var/log/exim/main.log",
};

enum origin_kind { ORIGIN_SASL, ORIGIN_BOUNCE, ORIGIN_USER, ORIGIN_IP, ORIGIN_SENDER,
    ORIGIN_UNKNOWN, ORIGIN_OTHER };
static const char *const origin_kind_names[] = { "sasl", "bounce", "user", "ip", "sender",
    "unknown", "other" };

enum flag { FLAG_VOLUME, FLAG_DOMAINS, FLAG_BOUNCES, FLAG_DEFERRALS, FLAG_BLOCKLISTED,
    FLAG_BACKSCATTER, FLAG_MANY_IPS, FLAG_COUNT };
static const char *const flag_names[FLAG_COUNT] = { "volume", "domains", "bounces",
    "deferrals", "blocklisted", "backscatter", "many-ips" };

struct evidence {
	char	 qid[MTALOG_QID_MAX + 1];
	char	 text[200];
};

struct origin {
	struct hnode	 node;
	enum origin_kind kind;
	char		 key[256];		/* what rows are told apart by */
	char		 name[256];		/* what the admin reads */
	bool		 labelled;		/* a user's name(uid) was looked up */
	char		 user[USER_NAME_MAX];	/* that name; empty if this host lacks it */
	long		 uid;
	uint64_t	 messages, recipients, sent, bounced, deferred, pending, blocklisted;
	uint64_t	 domains, ips, senders;
	bool		 capped;		/* PAIRS_MAX reached: distinct counts are lower bounds */
	char		 sender[256];		/* the first envelope sender seen */
	int64_t		 first, last, peak_hour;
	uint64_t	 peak;
	unsigned	 flags;
	struct evidence	 ev[FLAG_COUNT][EVIDENCE_MAX];
	unsigned	 nev[FLAG_COUNT];
};

/* One (origin, thing) pair seen: distinct domains, IPs and senders, and per-hour counts. */
enum pair_what { PAIR_DOMAIN, PAIR_IP, PAIR_SENDER, PAIR_HOUR };
struct pair {
	struct hnode	 node;
	struct origin	*o;
	uint64_t	 key;		/* a 64-bit hash, or the hour */
	uint64_t	 count;
	enum pair_what	 what;
	char		 qid[MTALOG_QID_MAX + 1];	/* PAIR_HOUR: the first message of the hour */
};

struct rcpt {
	uint64_t	 hash, domain;
	enum mtalog_status	 status;
	bool		 deferred;	/* deferred at least once */
	bool		 remote;
};

struct msg {
	struct hnode	 node;
	char		 qid[MTALOG_QID_MAX + 1];
	int64_t		 first;
	char		 sasl[256], user[USER_NAME_MAX], ip[48], sender[256];
	long		 uid;
	bool		 has_sender, has_origin, local;
	struct rcpt	*rcpts;
	size_t		 nrcpts, cap;
	uint64_t	 more_rcpts;	/* beyond MSG_RCPTS_MAX */
	char		 bl_text[200];	/* the first blocklist reply */
	bool		 blocklisted;
};

struct report {
	struct htab	 msgs, origins, pairs;
	struct origin	*other;
	int64_t		 since, until;		/* 0: open */
	uint64_t	 files, lines, used, other_lines, bad, untracked, outbound_msgs,
			 local_only, undelivered;
	int64_t		 first, last;
	char		 bad_where[BAD_EXAMPLES][PATH_MAX + 24];
};

/* --- small helpers ------------------------------------------------------------ */

static void
copy_str(char *dst, size_t size, struct mtalog_str s)
{
	size_t n = s.len < size - 1 ? s.len : size - 1;

	memcpy(dst, s.p, n);
	dst[n] = '\0';
}

static uint64_t
hash_lower(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
		h *= 1099511628211ULL;
	}
	return h;
}

static size_t
mix(uint64_t a, uint64_t b)
{
	return (size_t)((a ^ (b * 0x9e3779b97f4a7c15ULL)) * 0xff51afd7ed558ccdULL >> 7);
}

/* A remote reply from its SMTP code on ("host mx[..] said: 554 ..." -> "554 ..."). */
static struct mtalog_str
reply_from_code(struct mtalog_str s)
{
	for (size_t i = 0; i + 4 <= s.len; i++)
		if ((i == 0 || s.p[i - 1] == ' ') && s.p[i] >= '2' && s.p[i] <= '5' &&
		    s.p[i + 1] >= '0' && s.p[i + 1] <= '9' && s.p[i + 2] >= '0' &&
		    s.p[i + 2] <= '9' && (s.p[i + 3] == ' ' || s.p[i + 3] == '-'))
			return (struct mtalog_str){ s.p + i, s.len - i };
	return s;
}

/* --- messages in flight ------------------------------------------------------- */

static struct msg *
msg_find(struct report *r, struct mtalog_str qid, size_t *hash)
{
	char key[MTALOG_QID_MAX + 1];

	copy_str(key, sizeof(key), qid);
	*hash = str_hash(key);
	for (struct hnode *x = r->msgs.b[*hash & (r->msgs.nb - 1)]; x != NULL; x = x->next)
		if (x->hash == *hash && strcmp(((struct msg *)x)->qid, key) == 0)
			return (struct msg *)x;
	return NULL;
}

static struct msg *
msg_get(struct report *r, const struct mtalog_line *l)
{
	size_t h;
	struct msg *m = msg_find(r, l->qid, &h);

	if (m != NULL)
		return m;
	if (r->msgs.n >= INFLIGHT_MAX || (m = calloc(1, sizeof(*m))) == NULL) {
		r->untracked++;
		return NULL;
	}
	copy_str(m->qid, sizeof(m->qid), l->qid);
	m->uid = -1;
	m->first = l->ts;
	m->node.hash = h;
	htab_insert(&r->msgs, &m->node);
	return m;
}

static void
msg_rcpt(struct msg *m, const struct mtalog_line *l)
{
	uint64_t h = hash_lower(l->rcpt.p, l->rcpt.len);
	const char *at = memrchr(l->rcpt.p, '@', l->rcpt.len);
	struct rcpt *rc = NULL;

	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].hash == h) {
			rc = &m->rcpts[i];
			break;
		}
	if (rc == NULL) {
		if (m->nrcpts == m->cap) {
			size_t cap = m->cap ? m->cap * 2 : 4;
			struct rcpt *n;

			if (cap > MSG_RCPTS_MAX || (n = realloc(m->rcpts, cap * sizeof(*n))) == NULL) {
				m->more_rcpts++;
				return;
			}
			m->rcpts = n;
			m->cap = cap;
		}
		rc = &m->rcpts[m->nrcpts++];
		memset(rc, 0, sizeof(*rc));
		rc->hash = h;
		rc->domain = at ? hash_lower(at + 1, (size_t)(l->rcpt.p + l->rcpt.len - at - 1)) :
		    hash_lower("", 0);
	}
	/* A later sent or bounced outcome is final; a deferral after one is noise. */
	if (rc->status != MTALOG_SENT && rc->status != MTALOG_BOUNCED)
		rc->status = l->status;
	rc->deferred |= l->status == MTALOG_DEFERRED;
	rc->remote |= l->remote;
	if (l->status != MTALOG_SENT && !m->blocklisted && l->reply.len > 0 &&
	    mtalog_blacklisted(l->reply.p, l->reply.len)) {
		m->blocklisted = true;
		copy_str(m->bl_text, sizeof(m->bl_text), reply_from_code(l->reply));
	}
}

/* --- origins -------------------------------------------------------------------- */

/* The origin of KIND and KEY; a new one is labelled NAME (NULL: the key). */
static struct origin *
origin_get(struct report *r, enum origin_kind kind, const char *key, const char *name,
    long uid)
{
	size_t h = str_hash(key) ^ (size_t)kind;
	struct origin *o;

	for (struct hnode *x = r->origins.b[h & (r->origins.nb - 1)]; x; x = x->next) {
		o = (struct origin *)x;
		if (x->hash == h && o->kind == kind && strcmp(o->key, key) == 0)
			return o;
	}
	if (r->origins.n >= ORIGINS_MAX) {
		if (r->other == NULL && (r->other = calloc(1, sizeof(*r->other))) != NULL) {
			r->other->kind = ORIGIN_OTHER;
			strlcpy_sg(r->other->name, "(other)", sizeof(r->other->name));
			r->other->uid = -1;
		}
		return r->other;
	}
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return NULL;
	o->kind = kind;
	strlcpy_sg(o->key, key, sizeof(o->key));
	strlcpy_sg(o->name, name ? name : key, sizeof(o->name));
	o->uid = uid;
	o->node.hash = h;
	htab_insert(&r->origins, &o->node);
	return o;
}

/* Counts a pair once; returns the pair (for hours, whose count grows), or NULL. */
static struct pair *
pair_add(struct report *r, struct origin *o, enum pair_what what, uint64_t key, bool *fresh)
{
	size_t h = mix(key + what, (uint64_t)(uintptr_t)o);
	struct pair *p;

	*fresh = false;
	for (struct hnode *x = r->pairs.b[h & (r->pairs.nb - 1)]; x; x = x->next) {
		p = (struct pair *)x;
		if (x->hash == h && p->o == o && p->what == what && p->key == key)
			return p;
	}
	if (r->pairs.n >= PAIRS_MAX || (p = calloc(1, sizeof(*p))) == NULL) {
		o->capped = true;
		return NULL;
	}
	p->o = o;
	p->what = what;
	p->key = key;
	p->node.hash = h;
	htab_insert(&r->pairs, &p->node);
	*fresh = true;
	return p;
}

static void
evidence_add(struct origin *o, enum flag f, const char *qid, const char *text)
{
	struct evidence *e;

	if (o->nev[f] >= EVIDENCE_MAX)
		return;
	/* one queue id per flag; for many-ips, one per address */
	for (unsigned i = 0; i < o->nev[f]; i++)
		if (f == FLAG_MANY_IPS ? strcmp(o->ev[f][i].text, text) == 0 :
		    strcmp(o->ev[f][i].qid, qid) == 0)
			return;
	e = &o->ev[f][o->nev[f]++];
	strlcpy_sg(e->qid, qid, sizeof(e->qid));
	strlcpy_sg(e->text, text ? text : "", sizeof(e->text));
}

/* A local user's row, labelled name(uid); the password file is read once per user. */
static struct origin *
user_origin(struct report *r, long uid, const char *user)
{
	char key[USER_NAME_MAX + 24];
	struct origin *o;
	struct passwd *pw;

	if (uid >= 0)
		snprintf(key, sizeof(key), "#%ld", uid);
	else
		snprintf(key, sizeof(key), "%s", user);
	if ((o = origin_get(r, ORIGIN_USER, key, NULL, uid)) == NULL || o->labelled ||
	    o->kind == ORIGIN_OTHER)
		return o;
	o->labelled = true;
	if (uid >= 0) {
		pw = getpwuid((uid_t)uid);
		strlcpy_sg(o->user, pw ? pw->pw_name : "", sizeof(o->user));
		snprintf(o->name, sizeof(o->name), "%s(%ld)", pw ? pw->pw_name : "?", uid);
	} else {
		strlcpy_sg(o->user, user, sizeof(o->user));
		if ((pw = getpwnam(user)) != NULL) {
			snprintf(o->name, sizeof(o->name), "%s(%ld)", user, (long)pw->pw_uid);
			o->uid = (long)pw->pw_uid;
		}
	}
	return o;
}

static struct origin *
msg_origin(struct report *r, const struct msg *m)
{
	if (m->sasl[0] != '\0')
		return origin_get(r, ORIGIN_SASL, m->sasl, NULL, -1);
	if (m->has_sender && m->sender[0] == '\0')
		return origin_get(r, ORIGIN_BOUNCE, "<>", NULL, -1);
	if (m->uid >= 0 || (m->user[0] != '\0' && (m->local || m->ip[0] == '\0')))
		return user_origin(r, m->uid, m->user);
	if (m->ip[0] != '\0')
		return origin_get(r, ORIGIN_IP, m->ip, NULL, -1);
	if (m->has_sender)
		return origin_get(r, ORIGIN_SENDER, m->sender, NULL, -1);
	return origin_get(r, ORIGIN_UNKNOWN, "(origin not in the log)", NULL, -1);
}

/* A message is done (or the log ended): count its outbound recipients under its origin. */
static void
msg_close(struct report *r, struct msg *m)
{
	struct origin *o;
	struct pair *p;
	uint64_t remote = 0;
	bool fresh;

	for (size_t i = 0; i < m->nrcpts; i++)
		remote += m->rcpts[i].remote;
	if (remote == 0) {
		if (m->nrcpts > 0)
			r->local_only++;
		else
			r->undelivered++;
		goto out;
	}
	r->outbound_msgs++;
	if ((o = msg_origin(r, m)) == NULL)
		goto out;
	o->messages++;
	if (o->first == 0 || m->first < o->first)
		o->first = m->first;
	if (m->first > o->last)
		o->last = m->first;
	if (o->sender[0] == '\0' && m->has_sender)
		strlcpy_sg(o->sender, m->sender[0] ? m->sender : "<>", sizeof(o->sender));
	if (m->has_sender && pair_add(r, o, PAIR_SENDER, hash_lower(m->sender,
	    strlen(m->sender)), &fresh) != NULL && fresh)
		o->senders++;
	if (m->ip[0] != '\0' && pair_add(r, o, PAIR_IP, hash_lower(m->ip, strlen(m->ip)),
	    &fresh) != NULL && fresh)
		o->ips++;
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct rcpt *rc = &m->rcpts[i];

		if (!rc->remote)
			continue;
		o->recipients++;
		o->sent += rc->status == MTALOG_SENT;
		o->bounced += rc->status == MTALOG_BOUNCED;
		o->pending += rc->status == MTALOG_DEFERRED;
		o->deferred += rc->deferred;
		if (rc->status == MTALOG_BOUNCED)
			evidence_add(o, FLAG_BOUNCES, m->qid, NULL);
		if (rc->deferred)
			evidence_add(o, FLAG_DEFERRALS, m->qid, NULL);
		if (pair_add(r, o, PAIR_DOMAIN, rc->domain, &fresh) != NULL && fresh) {
			o->domains++;
			if (o->domains >= MANY_DOMAINS - EVIDENCE_MAX + 1)
				evidence_add(o, FLAG_DOMAINS, m->qid, NULL);
		}
	}
	o->recipients += m->more_rcpts;
	if (m->blocklisted) {
		o->blocklisted++;
		evidence_add(o, FLAG_BLOCKLISTED, m->qid, m->bl_text);
	}
	if (o->kind == ORIGIN_BOUNCE)
		evidence_add(o, FLAG_BACKSCATTER, m->qid, NULL);
	if (m->ip[0] != '\0' && o->kind == ORIGIN_SASL)
		evidence_add(o, FLAG_MANY_IPS, m->qid, m->ip);
	/* The busiest clock hour, and the first message in it. */
	if ((p = pair_add(r, o, PAIR_HOUR, (uint64_t)(m->first - (m->first % 3600 + 3600) % 3600),
	    &fresh)) != NULL) {
		if (fresh)
			strlcpy_sg(p->qid, m->qid, sizeof(p->qid));
		p->count += remote;
		if (p->count > o->peak) {
			o->peak = p->count;
			o->peak_hour = (int64_t)p->key;
			o->nev[FLAG_VOLUME] = 0;
			evidence_add(o, FLAG_VOLUME, p->qid, NULL);
		}
	}
out:
	htab_remove(&r->msgs, &m->node);
	free(m->rcpts);
	free(m);
}

/* --- lines ---------------------------------------------------------------------- */

/* An unparseable line: counted, and the first few named by file:line. */
static void
report_bad(struct report *r, const char *path, uint64_t lineno)
{
	if (r->bad < BAD_EXAMPLES)
		snprintf(r->bad_where[r->bad], sizeof(r->bad_where[0]), "%s:%llu", path,
		    (unsigned long long)lineno);
	r->bad++;
}

static void
report_line(struct report *r, struct mtalog_clock *clock, const char *line, size_t len,
    const char *path, uint64_t lineno)
{
	struct mtalog_line l;
	struct msg *m, *child;
	size_t h;

	r->lines++;
	if (len > MTA_LINE_MAX || mtalog_parse(clock, line, len, &l) == MTALOG_BAD) {
		report_bad(r, path, lineno);
		return;
	}
	if (l.kind == MTALOG_OTHER || (r->since && l.ts < r->since) ||
	    (r->until && l.ts >= r->until)) {
		r->other_lines++;
		return;
	}
	r->used++;
	if (r->first == 0 || l.ts < r->first)
		r->first = l.ts;
	if (l.ts > r->last)
		r->last = l.ts;
	if (l.kind == MTALOG_DONE) {
		if ((m = msg_find(r, l.qid, &h)) != NULL)
			msg_close(r, m);
		return;
	}
	if ((m = msg_get(r, &l)) == NULL)
		return;
	if (l.has_sender) {	/* Postfix qmgr and pickup, Exim "<=" */
		copy_str(m->sender, sizeof(m->sender), l.sender);
		m->has_sender = true;
	}
	switch (l.kind) {
	case MTALOG_ORIGIN:
		m->has_origin = true;
		if (l.client_ip.len)
			copy_str(m->ip, sizeof(m->ip), l.client_ip);
		if (l.sasl_user.len)
			copy_str(m->sasl, sizeof(m->sasl), l.sasl_user);
		if (l.local_user.len)
			copy_str(m->user, sizeof(m->user), l.local_user);
		if (l.uid >= 0)
			m->uid = l.uid;
		m->local |= l.local;
		break;
	case MTALOG_RCPT:
		msg_rcpt(m, &l);
		break;
	case MTALOG_NDR:
		/* The report Postfix generated is a null-sender message of its own. */
		l.qid = l.child_qid;
		if ((child = msg_get(r, &l)) != NULL) {
			child->has_sender = true;
			child->sender[0] = '\0';
		}
		break;
	default:
		break;
	}
}

/* Reads one log, plain or gzip (zlib reads both), line by line. */
static int
report_file(struct report *r, const char *path)
{
	struct mtalog_clock clock;
	struct stat st;
	gzFile gz;
	char *buf;
	size_t have = 0;
	uint64_t lineno = 0;
	bool skipping = false;	/* inside an over-long line */
	int n, fd, zerr;

	fd = strcmp(path, "-") == 0 ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "smtpguard mta-report: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* Syslog stamps carry no year: the file's own time says which year they mean. */
	mtalog_clock_init(&clock, S_ISREG(st.st_mode) ? st.st_mtime : time(NULL));
	if ((gz = gzdopen(fd, "rb")) == NULL || (buf = malloc(READ_CHUNK + 1)) == NULL) {
		fprintf(stderr, "smtpguard mta-report: %s: out of memory\n", path);
		if (gz != NULL)
			gzclose(gz);
		else
			close(fd);
		return -1;
	}
	gzbuffer(gz, READ_CHUNK);
	r->files++;
	while ((n = gzread(gz, buf + have, (unsigned)(READ_CHUNK - have))) > 0) {
		char *p = buf, *end = buf + have + n, *nl;

		while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
			lineno++;
			if (!skipping)
				report_line(r, &clock, p, (size_t)(nl - p), path, lineno);
			skipping = false;
			p = nl + 1;
		}
		have = (size_t)(end - p);
		if (have == READ_CHUNK) {
			/* a line longer than the buffer: counted as unreadable, then skipped */
			if (!skipping) {
				r->lines++;
				report_bad(r, path, lineno + 1);
			}
			skipping = true;
			have = 0;
		} else
			memmove(buf, p, have);
	}
	/* zlib hands out a cut gzip file's data, then says Z_BUF_ERROR. */
	const char *zmsg = gzerror(gz, &zerr);

	if (n < 0 || zerr == Z_BUF_ERROR) {
		fprintf(stderr, "smtpguard mta-report: %s: %s\n", path,
		    zerr == Z_ERRNO ? strerror(errno) : zerr == Z_BUF_ERROR ?
		    "gzip data cut short (the lines before the cut are counted)" : zmsg);
		free(buf);
		gzclose(gz);
		return -1;
	}
	if (have > 0 && !skipping)
		report_line(r, &clock, buf, have, path, lineno + 1);
	free(buf);
	gzclose(gz);
	return 0;
}

/* --- judging and printing --------------------------------------------------------- */

static void
judge(struct origin *o)
{
	if (o->peak >= SPIKE_RCPTS_HOUR)
		o->flags |= 1u << FLAG_VOLUME;
	if (o->domains >= MANY_DOMAINS)
		o->flags |= 1u << FLAG_DOMAINS;
	if (o->recipients >= RATIO_MIN_RCPTS && o->bounced >= BOUNCE_RATIO * o->recipients)
		o->flags |= 1u << FLAG_BOUNCES;
	if (o->recipients >= RATIO_MIN_RCPTS && o->deferred >= DEFER_RATIO * o->recipients)
		o->flags |= 1u << FLAG_DEFERRALS;
	if (o->blocklisted > 0)
		o->flags |= 1u << FLAG_BLOCKLISTED;
	if (o->kind == ORIGIN_BOUNCE && o->messages >= BACKSCATTER_MSGS)
		o->flags |= 1u << FLAG_BACKSCATTER;
	if (o->kind == ORIGIN_SASL && o->ips >= MANY_IPS)
		o->flags |= 1u << FLAG_MANY_IPS;
}

static int
nflags(const struct origin *o)
{
	return __builtin_popcount(o->flags);
}

/* Culprits first (more flags first), then by outbound recipients. */
static int
cmp_origins(const void *a, const void *b)
{
	const struct origin *x = *(struct origin *const *)a, *y = *(struct origin *const *)b;

	if (nflags(x) != nflags(y))
		return nflags(x) > nflags(y) ? -1 : 1;
	if (x->recipients != y->recipients)
		return x->recipients > y->recipients ? -1 : 1;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void
format_time(int64_t t, char *out, size_t len, bool utc)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (utc)
		strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&tt, &tm));
	else
		strftime(out, len, "%Y-%m-%d %H:%M", localtime_r(&tt, &tm));
}

static unsigned
percent(uint64_t n, uint64_t of)
{
	return of ? (unsigned)((n * 100 + of / 2) / of) : 0;
}

static json_t *
origin_json(const struct origin *o)
{
	json_t *j, *flags = json_array(), *ev = json_object();
	char first[32], last[32], peak[32];

	format_time(o->first, first, sizeof(first), true);
	format_time(o->last, last, sizeof(last), true);
	format_time(o->peak_hour, peak, sizeof(peak), true);
	for (int f = 0; f < FLAG_COUNT; f++) {
		json_t *a;

		if (!(o->flags & (1u << f)))
			continue;
		json_array_append_new(flags, json_string(flag_names[f]));
		a = json_array();
		for (unsigned i = 0; i < o->nev[f]; i++)
			json_array_append_new(a, o->ev[f][i].text[0] ?
			    json_pack("{s:s, s:s}", "qid", o->ev[f][i].qid, "text", o->ev[f][i].text) :
			    json_pack("{s:s}", "qid", o->ev[f][i].qid));
		json_object_set_new(ev, flag_names[f], a);
	}
	j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b,"
	    " s:s, s:s, s:s, s:I, s:o, s:o}",
	    "kind", origin_kind_names[o->kind], "origin", o->name,
	    "messages", (json_int_t)o->messages, "recipients", (json_int_t)o->recipients,
	    "domains", (json_int_t)o->domains, "sent", (json_int_t)o->sent,
	    "deferred", (json_int_t)o->deferred, "bounced", (json_int_t)o->bounced,
	    "pending", (json_int_t)o->pending, "blocklisted", (json_int_t)o->blocklisted,
	    "client_ips", (json_int_t)o->ips, "senders", (json_int_t)o->senders,
	    "distinct_capped", o->capped, "first_seen", first, "last_seen", last,
	    "peak_hour", peak, "peak_recipients", (json_int_t)o->peak, "flags", flags,
	    "evidence", ev);
	if (j != NULL && o->uid >= 0)
		json_object_set_new(j, "uid", json_integer(o->uid));
	if (j != NULL && o->sender[0] != '\0')
		json_object_set_new(j, "sender", json_string(o->sender));
	return j;
}

/* The outbound totals over every origin. */
struct totals {
	uint64_t	 rcpts, sent, bounced, deferred, blocklisted, culprits;
};

static struct totals
sum_origins(struct origin **rows, size_t n)
{
	struct totals t = { 0 };

	for (size_t i = 0; i < n; i++) {
		t.rcpts += rows[i]->recipients;
		t.sent += rows[i]->sent;
		t.bounced += rows[i]->bounced;
		t.deferred += rows[i]->deferred;
		t.blocklisted += rows[i]->blocklisted;
		t.culprits += rows[i]->flags != 0;
	}
	return t;
}

static void
print_json(const struct report *r, struct origin **rows, size_t n, size_t limit)
{
	json_t *a = json_array(), *top;
	struct totals t = sum_origins(rows, n);

	for (size_t i = 0; i < n && i < limit; i++)
		json_array_append_new(a, origin_json(rows[i]));
	top = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
	    " s:o}",
	    "files", (json_int_t)r->files, "lines", (json_int_t)r->lines,
	    "used", (json_int_t)r->used, "other", (json_int_t)r->other_lines,
	    "unparseable", (json_int_t)r->bad, "outbound_messages", (json_int_t)r->outbound_msgs,
	    "recipients", (json_int_t)t.rcpts, "sent", (json_int_t)t.sent,
	    "deferred", (json_int_t)t.deferred, "bounced", (json_int_t)t.bounced,
	    "blocklisted", (json_int_t)t.blocklisted, "untracked", (json_int_t)r->untracked,
	    "local_only_messages", (json_int_t)r->local_only,
	    "undelivered_messages", (json_int_t)r->undelivered, "origins", a);
	json_dumpf(top, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(top);
}

static const char *
origin_label(const struct origin *o, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s", origin_kind_names[o->kind], o->name);
	return buf;
}

static void
print_culprit(const struct origin *o, size_t rank)
{
	char label[300], when[32];
	const char *sep = "";

	printf("%zu. ", rank);
	put_safe(stdout, origin_label(o, label, sizeof(label)), 200);
	printf(" [");
	for (int f = 0; f < FLAG_COUNT; f++)
		if (o->flags & (1u << f)) {
			printf("%s%s", sep, flag_names[f]);
			sep = " ";
		}
	printf("]\n   %llu messages, %llu recipients in %llu%s domains",
	    (unsigned long long)o->messages, (unsigned long long)o->recipients,
	    (unsigned long long)o->domains, o->capped ? "+" : "");
	if (o->kind == ORIGIN_SASL)
		printf(" from %llu client address%s", (unsigned long long)o->ips,
		    o->ips == 1 ? "" : "es");
	format_time(o->peak_hour, when, sizeof(when), false);
	printf("; sent %u%%, deferred %u%%, bounced %u%%; peak %llu in the hour from %s\n",
	    percent(o->sent, o->recipients), percent(o->deferred, o->recipients),
	    percent(o->bounced, o->recipients), (unsigned long long)o->peak, when);
	if (o->sender[0] != '\0') {
		printf("   sender ");
		put_safe(stdout, o->sender, 200);
		if (o->senders > 1)
			printf(" (and %llu more)", (unsigned long long)(o->senders - 1));
		putchar('\n');
	}
	for (int f = 0; f < FLAG_COUNT; f++) {
		if (!(o->flags & (1u << f)) || o->nev[f] == 0)
			continue;
		printf("   %-12s", flag_names[f]);
		for (unsigned i = 0; i < o->nev[f]; i++) {
			printf(" %s", o->ev[f][i].qid);
			if (f == FLAG_MANY_IPS) {
				putchar('(');
				put_safe(stdout, o->ev[f][i].text, 48);
				putchar(')');
			}
		}
		if (o->ev[f][0].text[0] != '\0' && f == FLAG_BLOCKLISTED) {
			printf(": ");
			put_safe(stdout, o->ev[f][0].text, 160);
		}
		putchar('\n');
	}
}

static void
print_text(const struct report *r, struct origin **rows, size_t n, size_t limit)
{
	struct totals t = sum_origins(rows, n);
	char a[32], b[32], label[300];

	printf("%llu file%s, %llu lines: %llu used, %llu other, %llu unparseable",
	    (unsigned long long)r->files, r->files == 1 ? "" : "s", (unsigned long long)r->lines,
	    (unsigned long long)r->used, (unsigned long long)r->other_lines,
	    (unsigned long long)r->bad);
	for (uint64_t i = 0; i < r->bad && i < BAD_EXAMPLES; i++)
		printf("%s%s", i ? ", " : " (", r->bad_where[i]);
	printf("%s\n", r->bad ? r->bad > BAD_EXAMPLES ? ", ...)" : ")" : "");
	if (r->used > 0) {
		format_time(r->first, a, sizeof(a), false);
		format_time(r->last, b, sizeof(b), false);
		printf("from %s to %s\n", a, b);
	}
	printf("outbound: %llu messages to %llu recipients: sent %u%%, deferred %u%%, "
	    "bounced %u%%; %llu blocklist rejections\n", (unsigned long long)r->outbound_msgs,
	    (unsigned long long)t.rcpts, percent(t.sent, t.rcpts), percent(t.deferred, t.rcpts),
	    percent(t.bounced, t.rcpts), (unsigned long long)t.blocklisted);
	if (r->local_only + r->undelivered > 0)
		printf("not counted: %llu messages delivered only on this host, %llu with no "
		    "delivery in the log\n", (unsigned long long)r->local_only,
		    (unsigned long long)r->undelivered);
	if (r->untracked > 0)
		printf("(%llu lines of messages past the %d followed at once were not joined)\n",
		    (unsigned long long)r->untracked, INFLIGHT_MAX);
	if (t.culprits > 0) {
		printf("\nLIKELY CULPRITS\n");
		for (size_t i = 0; i < n && rows[i]->flags != 0; i++)
			print_culprit(rows[i], i + 1);
	} else if (n > 0)
		printf("\nno likely culprits\n");
	if (n == 0) {
		printf("\nno outbound mail in the log\n");
		return;
	}
	printf("\nOUTBOUND BY ORIGIN\n%7s %7s %7s %5s %5s %6s %5s  %s\n", "MSGS", "RCPTS",
	    "DOMAINS", "SENT", "DEFER", "BOUNCE", "BLOCK", "ORIGIN");
	for (size_t i = 0; i < n && i < limit; i++) {
		const struct origin *o = rows[i];

		printf("%7llu %7llu %6llu%s %4u%% %4u%% %5u%% %5llu  ",
		    (unsigned long long)o->messages, (unsigned long long)o->recipients,
		    (unsigned long long)o->domains, o->capped ? "+" : " ",
		    percent(o->sent, o->recipients), percent(o->deferred, o->recipients),
		    percent(o->bounced, o->recipients), (unsigned long long)o->blocklisted);
		put_safe(stdout, origin_label(o, label, sizeof(label)), 120);
		putchar('\n');
	}
	if (n > limit)
		printf("(%zu more origins; --limit N shows them)\n", n - limit);
}

/* --- the command -------------------------------------------------------------------- */

/* The default logs and their rotations, oldest first: mail.log.3.gz, mail.log.2.gz, ... */
static size_t
find_default_logs(char ***out)
{
	char **v = NULL, path[PATH_MAX];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(default_logs) / sizeof(default_logs[0]); i++) {
		for (int k = 99; k >= 0; k--) {
			const char *suffix[] = { "", ".gz" };

			for (int s = 0; s < 2; s++) {
				char **nv;

				if (k == 0 && s == 1)
					continue;
				if (k == 0)
					snprintf(path, sizeof(path), "%s", default_logs[i]);
				else
					snprintf(path, sizeof(path), "%s.%d%s", default_logs[i], k,
					    suffix[s]);
				if (access(path, R_OK) != 0 ||
				    (nv = realloc(v, (n + 1) * sizeof(*v))) == NULL)
					continue;
				v = nv;
				if ((v[n] = strdup(path)) != NULL)
					n++;
			}
		}
	}
	*out = v;
	return n;
}

static void
free_msg(struct hnode *x)
{
	free(((struct msg *)x)->rcpts);
	free(x);
}

static void
report_free(struct report *r)
{
	htab_free(&r->msgs, free_msg);
	htab_free(&r->origins, hnode_free);
	htab_free(&r->pairs, hnode_free);
	free(r->other);
}

/* Reads every log in order; the number that could not be read (each named on stderr). */
static int
report_read(struct report *r, char **logs, size_t nlogs)
{
	int failed = 0;

	for (size_t i = 0; i < nlogs; i++)
		failed += report_file(r, logs[i]) < 0;
	/* Messages still queued when the log ends count with what they did so far. */
	for (size_t b = 0; b < r->msgs.nb; b++)
		while (r->msgs.b[b] != NULL)
			msg_close(r, (struct msg *)r->msgs.b[b]);
	return failed;
}

/*
 * Reads LOGS, or when there are none the default logs (and their rotations);
 * -1 if there was nothing to read or no memory (said on stderr after WHO),
 * else how many files could not be read. OPTION is the flag that names a log.
 */
static int
report_run(struct report *r, char **logs, size_t nlogs, const char *who, const char *option)
{
	char **found = NULL;
	int failed = -1;

	if (nlogs == 0 && (nlogs = find_default_logs(&found)) == 0) {
		fprintf(stderr, "%s: no MTA log found (%s, ...); name one with %s FILE\n", who,
		    default_logs[0], option);
		return -1;
	}
	if (htab_init(&r->msgs) < 0 || htab_init(&r->origins) < 0 || htab_init(&r->pairs) < 0)
		fprintf(stderr, "%s: out of memory\n", who);
	else
		failed = report_read(r, found ? found : logs, nlogs);
	for (size_t i = 0; found != NULL && i < nlogs; i++)
		free(found[i]);
	free(found);
	return failed;
}

/*
 * Outbound volume per local user (Postfix pickup uid=, Exim U=) in LOGS (none:
 * the default logs), between SINCE and UNTIL (0: open), for `smtpguard top
 * --mta`. Calls FN once per user; -1 if a log could not be read (named on
 * stderr), the rest still counted.
 */
int
mta_user_volume(char **logs, size_t nlogs, time_t since, time_t until,
    void (*fn)(const struct mta_user *, void *), void *arg)
{
	struct report r;
	int failed;

	memset(&r, 0, sizeof(r));
	r.since = since;
	r.until = until;
	if ((failed = report_run(&r, logs, nlogs, "smtpguard", "--mta-log")) < 0) {
		report_free(&r);
		return -1;
	}
	for (size_t b = 0; b < r.origins.nb; b++)
		for (struct hnode *x = r.origins.b[b]; x != NULL; x = x->next) {
			const struct origin *o = (const struct origin *)x;
			struct mta_user u = { .uid = o->uid, .messages = o->messages,
			    .recipients = o->recipients };

			if (o->kind != ORIGIN_USER)
				continue;
			strlcpy_sg(u.name, o->user, sizeof(u.name));
			fn(&u, arg);
		}
	report_free(&r);
	return failed > 0 ? -1 : 0;
}

static const char help[] =
"usage: smtpguard mta-report [--log FILE]... [FILE...] [--since T] [--until T]\n"
"                            [--limit N] [--json]\n"
"Outbound mail that went through Postfix or Exim, by origin: the SASL user,\n"
"the null sender (bounces), the local user who submitted it (pickup uid=,\n"
"Exim U=), the client address, else the envelope sender. Lines are joined by\n"
"queue id; only recipients handed to a remote host count. Plain and gzip\n"
"files are read; without --log: /var/log/mail.log, maillog, exim4/mainlog and\n"
"their rotations (.1, .2.gz, ...), oldest first. \"-\" reads standard input.\n"
"  --since T, --until T   10m, 2h, 3d, or 2026-11-22[T10:00[:SS]][Z]; lines\n"
"                         outside are skipped, so a message that began before\n"
"                         --since counts with the lines inside (its origin may\n"
"                         then show as its sender, or as not in the log)\n"
"  --limit N              origins listed (default 10)\n"
"  --json                 one JSON object: totals and every origin listed\n"
"An origin is flagged as a likely culprit for: volume (>= 100 recipients in\n"
"one clock hour), domains (>= 20 distinct recipient domains), bounces (>= 20%\n"
"of >= 10 recipients bounced), deferrals (>= 30% of >= 10 deferred at least\n"
"once), blocklisted (a remote reply naming a blocklist, TS0x, \"blocked\",\n"
"\"not allowed to send\", ...), backscatter (>= 20 null-sender messages),\n"
"many-ips (one SASL user from >= 5 client addresses). Each flag shows up to\n"
"three queue ids to grep for. Unparseable lines are counted, never fatal.\n";

enum { OPT_LOG = 256, OPT_SINCE, OPT_UNTIL, OPT_LIMIT, OPT_JSON, OPT_HELP };

int
mta_report(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "log", required_argument, NULL, OPT_LOG },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "until", required_argument, NULL, OPT_UNTIL },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct report r;
	struct origin **rows = NULL;
	char **logs = NULL, *end;
	size_t nlogs = 0, n = 0;
	bool json = false;
	long limit = DEFAULT_LIMIT;
	time_t t;
	int ch, rc = 2, failed = 0;	/* 2 until the arguments are good */

	memset(&r, 0, sizeof(r));
	if ((logs = calloc((size_t)argc + 1, sizeof(*logs))) == NULL)
		return 1;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_LOG:
			logs[nlogs++] = optarg;
			break;
		case OPT_SINCE:
		case OPT_UNTIL:
			if (review_parse_when(optarg, time(NULL), &t) < 0) {
				fprintf(stderr, "smtpguard mta-report: bad time '%s' (10m, 2h, 3d, "
				    "2026-11-22T10:00)\n", optarg);
				goto out;
			}
			*(ch == OPT_SINCE ? &r.since : &r.until) = t;
			break;
		case OPT_LIMIT:
			limit = strtol(optarg, &end, 10);
			if (*end != '\0' || optarg[0] == '\0' || limit < 1) {
				fprintf(stderr, "smtpguard mta-report: bad --limit '%s'\n", optarg);
				goto out;
			}
			break;
		case OPT_JSON:
			json = true;
			break;
		case OPT_HELP:
		case 'h':
			fputs(help, stdout);
			rc = 0;
			goto out;
		default:
			fprintf(stderr, "smtpguard mta-report: see smtpguard mta-report --help\n");
			goto out;
		}
	}
	while (optind < argc)
		logs[nlogs++] = argv[optind++];
	rc = 1;
	if ((failed = report_run(&r, logs, nlogs, "smtpguard mta-report", "--log")) < 0)
		goto out_free;
	if ((rows = calloc(r.origins.n + 1, sizeof(*rows))) == NULL) {
		fprintf(stderr, "smtpguard mta-report: out of memory\n");
		goto out_free;
	}
	for (size_t b = 0; b < r.origins.nb; b++)
		for (struct hnode *x = r.origins.b[b]; x != NULL; x = x->next)
			rows[n++] = (struct origin *)x;
	if (r.other != NULL)
		rows[n++] = r.other;
	for (size_t i = 0; i < n; i++)
		judge(rows[i]);
	qsort(rows, n, sizeof(*rows), cmp_origins);
	if (json)
		print_json(&r, rows, n, (size_t)limit);
	else
		print_text(&r, rows, n, (size_t)limit);
	fflush(stdout);
	/* A file that could not be read fails the command, after reporting the rest. */
	rc = ferror(stdout) || failed ? 1 : 0;
out_free:
	free(rows);
	report_free(&r);
out:
	free(logs);
	return rc;
}
