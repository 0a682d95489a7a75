/*
 * mtareport.c — the engine of `smtpguard mta-report` (and of top --mta): the
 * mail that did go through the MTA. Reads Postfix and Exim logs (plain or
 * gzip, lines parsed by mtalog.c), joins each message's lines by queue id,
 * and counts its outbound recipients under the message's origin: the SASL
 * user, else (for the null sender) the bounce generator, else the local user
 * who submitted it, else the client address, else the envelope sender.
 * Origins that look like abuse are flagged, with the queue ids that show it.
 * Memory grows with the messages in flight and the distinct keys, each under
 * a named cap; never with the size of the log. It never prints: errors come
 * back in the caller's buffer, and mtareport_cli.c shows the report. One
 * room past 600 lines: the join by queue id, the origin tables and the
 * culprit flags share the in-flight message and the caps that bound it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "smtpguard.h"

#define READ_CHUNK		(1 << 18)
#define MTA_LINE_MAX		8192	/* Postfix cuts at 2048 by default; syslog at 8 KiB */
#define ORIGINS_MAX		100000	/* past this, origins fold into "(other)" */
#define PAIRS_MAX		4000000	/* (origin, domain|address|sender|hour) pairs remembered */
#define MSG_RCPTS_MAX		10000	/* recipients followed per message; the rest are counted only */

/* What makes an origin a likely culprit; every threshold is in --help and the README. */
#define SPIKE_RCPTS_HOUR	100	/* recipients in one clock hour */
#define MANY_DOMAINS		20	/* distinct recipient domains */
#define RATIO_MIN_RCPTS		10	/* bounce and deferral ratios need this many recipients */
#define BOUNCE_RATIO		0.20
#define DEFER_RATIO		0.30
#define BACKSCATTER_MSGS	20	/* null-sender messages */
#define MANY_IPS		5	/* client addresses of one SASL user */

const char *const mtareport_logs[MTAREPORT_NLOGS] = {
	"/var/log/mail.log", "/var/log/maillog", "/var/log/exim4/mainlog", "/var/log/exim/main.log",
};

/* One (origin, thing) pair seen: distinct domains, IPs and senders, and per-hour counts. */
enum pair_what { PAIR_DOMAIN, PAIR_IP, PAIR_SENDER, PAIR_HOUR };
struct pair {
	struct hnode	 node;
	struct mtareport_origin	*o;
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
	uint64_t	 seq;		/* first seen: the logs' order, not the table's */
	char		 sasl[256], user[USER_NAME_MAX], ip[48], sender[256];
	long		 uid;
	bool		 has_sender, has_origin, local;
	struct rcpt	*rcpts;
	size_t		 nrcpts, cap;
	uint64_t	 more_rcpts;	/* beyond MSG_RCPTS_MAX */
	char		 bl_text[200];	/* the first blocklist reply */
	bool		 blocklisted;
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
	return fnv1a64_lower(FNV1A64_BASIS, p, n);
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
msg_find(struct mtareport *r, struct mtalog_str qid, size_t *hash)
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
msg_get(struct mtareport *r, const struct mtalog_line *l)
{
	size_t h;
	struct msg *m = msg_find(r, l->qid, &h);

	if (m != NULL)
		return m;
	if (r->msgs.n >= MTAREPORT_INFLIGHT_MAX || (m = calloc(1, sizeof(*m))) == NULL) {
		r->untracked++;
		return NULL;
	}
	copy_str(m->qid, sizeof(m->qid), l->qid);
	m->uid = -1;
	m->first = l->ts;
	m->seq = r->next_seq++;
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
static struct mtareport_origin *
origin_get(struct mtareport *r, enum mtareport_kind kind, const char *key, const char *name,
    long uid)
{
	size_t h = str_hash(key) ^ (size_t)kind;
	struct mtareport_origin *o;

	for (struct hnode *x = r->origins.b[h & (r->origins.nb - 1)]; x; x = x->next) {
		o = (struct mtareport_origin *)x;
		if (x->hash == h && o->kind == kind && strcmp(o->key, key) == 0)
			return o;
	}
	if (r->origins.n >= ORIGINS_MAX) {
		if (r->other == NULL && (r->other = calloc(1, sizeof(*r->other))) != NULL) {
			r->other->kind = MTAREPORT_OTHER;
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
pair_add(struct mtareport *r, struct mtareport_origin *o, enum pair_what what, uint64_t key, bool *fresh)
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
evidence_add(struct mtareport_origin *o, enum mtareport_flag f, const char *qid, const char *text)
{
	struct mtareport_evidence *e;

	if (o->nev[f] >= MTAREPORT_EVIDENCE_MAX)
		return;
	/* one queue id per flag; for many-ips, one per address */
	for (unsigned i = 0; i < o->nev[f]; i++)
		if (f == MTAREPORT_FLAG_MANY_IPS ? strcmp(o->ev[f][i].text, text) == 0 :
		    strcmp(o->ev[f][i].qid, qid) == 0)
			return;
	e = &o->ev[f][o->nev[f]++];
	strlcpy_sg(e->qid, qid, sizeof(e->qid));
	strlcpy_sg(e->text, text ? text : "", sizeof(e->text));
}

/* A local user's row, labelled name(uid); the password file is read once per user. */
static struct mtareport_origin *
user_origin(struct mtareport *r, long uid, const char *user)
{
	char key[USER_NAME_MAX + 24];
	struct mtareport_origin *o;
	struct passwd *pw;

	if (uid >= 0)
		snprintf(key, sizeof(key), "#%ld", uid);
	else
		snprintf(key, sizeof(key), "%s", user);
	if ((o = origin_get(r, MTAREPORT_USER, key, NULL, uid)) == NULL || o->labelled ||
	    o->kind == MTAREPORT_OTHER)
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

static struct mtareport_origin *
msg_origin(struct mtareport *r, const struct msg *m)
{
	if (m->sasl[0] != '\0')
		return origin_get(r, MTAREPORT_SASL, m->sasl, NULL, -1);
	if (m->has_sender && m->sender[0] == '\0')
		return origin_get(r, MTAREPORT_BOUNCE, "<>", NULL, -1);
	if (m->uid >= 0 || (m->user[0] != '\0' && (m->local || m->ip[0] == '\0')))
		return user_origin(r, m->uid, m->user);
	if (m->ip[0] != '\0')
		return origin_get(r, MTAREPORT_IP, m->ip, NULL, -1);
	if (m->has_sender)
		return origin_get(r, MTAREPORT_SENDER, m->sender, NULL, -1);
	return origin_get(r, MTAREPORT_UNKNOWN, "(origin not in the log)", NULL, -1);
}

/* A message is done (or the log ended): count its outbound recipients under its origin. */
static void
msg_close(struct mtareport *r, struct msg *m)
{
	struct mtareport_origin *o;
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
			evidence_add(o, MTAREPORT_FLAG_BOUNCES, m->qid, NULL);
		if (rc->deferred)
			evidence_add(o, MTAREPORT_FLAG_DEFERRALS, m->qid, NULL);
		if (pair_add(r, o, PAIR_DOMAIN, rc->domain, &fresh) != NULL && fresh) {
			o->domains++;
			if (o->domains >= MANY_DOMAINS - MTAREPORT_EVIDENCE_MAX + 1)
				evidence_add(o, MTAREPORT_FLAG_DOMAINS, m->qid, NULL);
		}
	}
	o->recipients += m->more_rcpts;
	if (m->blocklisted) {
		o->blocklisted++;
		evidence_add(o, MTAREPORT_FLAG_BLOCKLISTED, m->qid, m->bl_text);
	}
	if (o->kind == MTAREPORT_BOUNCE)
		evidence_add(o, MTAREPORT_FLAG_BACKSCATTER, m->qid, NULL);
	if (m->ip[0] != '\0' && o->kind == MTAREPORT_SASL)
		evidence_add(o, MTAREPORT_FLAG_MANY_IPS, m->qid, m->ip);
	/* The busiest clock hour, and the first message in it. */
	if ((p = pair_add(r, o, PAIR_HOUR, (uint64_t)(m->first - (m->first % 3600 + 3600) % 3600),
	    &fresh)) != NULL) {
		if (fresh)
			strlcpy_sg(p->qid, m->qid, sizeof(p->qid));
		p->count += remote;
		if (p->count > o->peak) {
			o->peak = p->count;
			o->peak_hour = (int64_t)p->key;
			o->nev[MTAREPORT_FLAG_VOLUME] = 0;
			evidence_add(o, MTAREPORT_FLAG_VOLUME, p->qid, NULL);
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
report_bad(struct mtareport *r, const char *path, uint64_t lineno)
{
	if (r->bad < MTAREPORT_BAD_EXAMPLES)
		snprintf(r->bad_where[r->bad], sizeof(r->bad_where[0]), "%s:%llu", path,
		    (unsigned long long)lineno);
	r->bad++;
}

static void
report_line(struct mtareport *r, struct mtalog_clock *clock, const char *line, size_t len,
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

/* Reads one log, plain or gzip (zlib reads both), line by line; -1: not (all) read, see err. */
int
mtareport_file(struct mtareport *r, const char *path, char *err, size_t errlen)
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
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* Syslog stamps carry no year: the file's own time says which year they mean. */
	mtalog_clock_init(&clock, S_ISREG(st.st_mode) ? st.st_mtime : time(NULL));
	if ((gz = gzdopen(fd, "rb")) == NULL || (buf = malloc(READ_CHUNK + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
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
		snprintf(err, errlen, "%s: %s", path,
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

/* --- judging --------------------------------------------------------------------- */

static void
judge(struct mtareport_origin *o)
{
	if (o->peak >= SPIKE_RCPTS_HOUR)
		o->flags |= 1u << MTAREPORT_FLAG_VOLUME;
	if (o->domains >= MANY_DOMAINS)
		o->flags |= 1u << MTAREPORT_FLAG_DOMAINS;
	if (o->recipients >= RATIO_MIN_RCPTS && o->bounced >= BOUNCE_RATIO * o->recipients)
		o->flags |= 1u << MTAREPORT_FLAG_BOUNCES;
	if (o->recipients >= RATIO_MIN_RCPTS && o->deferred >= DEFER_RATIO * o->recipients)
		o->flags |= 1u << MTAREPORT_FLAG_DEFERRALS;
	if (o->blocklisted > 0)
		o->flags |= 1u << MTAREPORT_FLAG_BLOCKLISTED;
	if (o->kind == MTAREPORT_BOUNCE && o->messages >= BACKSCATTER_MSGS)
		o->flags |= 1u << MTAREPORT_FLAG_BACKSCATTER;
	if (o->kind == MTAREPORT_SASL && o->ips >= MANY_IPS)
		o->flags |= 1u << MTAREPORT_FLAG_MANY_IPS;
}

static int
nflags(const struct mtareport_origin *o)
{
	return __builtin_popcount(o->flags);
}

static int
cmp_origins(const void *a, const void *b)
{
	const struct mtareport_origin *x = *(struct mtareport_origin *const *)a, *y = *(struct mtareport_origin *const *)b;

	if (nflags(x) != nflags(y))
		return nflags(x) > nflags(y) ? -1 : 1;
	if (x->recipients != y->recipients)
		return x->recipients > y->recipients ? -1 : 1;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return strcmp(x->name, y->name);
}


/* --- the report ------------------------------------------------------------------ */

/* An empty report of the lines between SINCE and UNTIL (0: open); -1 and errno: no memory. */
int
mtareport_init(struct mtareport *r, time_t since, time_t until)
{
	memset(r, 0, sizeof(*r));
	r->since = since;
	r->until = until;
	if (htab_init(&r->msgs) < 0 || htab_init(&r->origins) < 0 || htab_init(&r->pairs) < 0) {
		mtareport_free(r);
		return -1;
	}
	return 0;
}

static int
cmp_seq(const void *a, const void *b)
{
	const struct msg *x = *(struct msg *const *)a, *y = *(struct msg *const *)b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * The logs are read: messages still queued count with what they did so far,
 * closed in the order they were first seen, so the evidence a report shows
 * follows the logs and not the hash table's layout.
 */
void
mtareport_end(struct mtareport *r)
{
	struct msg **left;
	size_t n = 0;

	if ((left = calloc(r->msgs.n + 1, sizeof(*left))) != NULL) {
		for (size_t b = 0; b < r->msgs.nb; b++)
			for (struct hnode *x = r->msgs.b[b]; x != NULL; x = x->next)
				left[n++] = (struct msg *)x;
		qsort(left, n, sizeof(*left), cmp_seq);
		for (size_t i = 0; i < n; i++)
			msg_close(r, left[i]);
		free(left);
	}
	/* Out of memory for the list: the table's order, every message still counted. */
	for (size_t b = 0; b < r->msgs.nb; b++)
		while (r->msgs.b[b] != NULL)
			msg_close(r, (struct msg *)r->msgs.b[b]);
}

/*
 * Every origin, judged, culprits first (more flags first), then by outbound
 * recipients: an array of *N the caller frees, or NULL (no memory).
 */
struct mtareport_origin **
mtareport_rows(struct mtareport *r, size_t *n)
{
	struct mtareport_origin **rows;

	*n = 0;
	if ((rows = calloc(r->origins.n + 1, sizeof(*rows))) == NULL)
		return NULL;
	for (size_t b = 0; b < r->origins.nb; b++)
		for (struct hnode *x = r->origins.b[b]; x != NULL; x = x->next)
			rows[(*n)++] = (struct mtareport_origin *)x;
	if (r->other != NULL)
		rows[(*n)++] = r->other;
	for (size_t i = 0; i < *n; i++)
		judge(rows[i]);
	qsort(rows, *n, sizeof(*rows), cmp_origins);
	return rows;
}

/* --- logs and memory ---------------------------------------------------------------- */

/* The default logs and their rotations, oldest first: mail.log.3.gz, mail.log.2.gz, ... */
size_t
mtareport_default_logs(char ***out)
{
	char **v = NULL, path[PATH_MAX];
	size_t n = 0;

	for (size_t i = 0; i < MTAREPORT_NLOGS; i++) {
		for (int k = 99; k >= 0; k--) {
			const char *suffix[] = { "", ".gz" };

			for (int s = 0; s < 2; s++) {
				char **nv;

				if (k == 0 && s == 1)
					continue;
				if (k == 0)
					snprintf(path, sizeof(path), "%s", mtareport_logs[i]);
				else
					snprintf(path, sizeof(path), "%s.%d%s", mtareport_logs[i], k,
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

void
mtareport_free(struct mtareport *r)
{
	htab_free(&r->msgs, free_msg);
	htab_free(&r->origins, hnode_free);
	htab_free(&r->pairs, hnode_free);
	free(r->other);
}
