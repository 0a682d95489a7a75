/*
 * mtalog.c — one line of an MTA's log, taken apart: Postfix through syslog
 * (RFC 3339 or traditional "Nov 22 10:00:01" stamps) and Exim's main log.
 * The result points into the caller's line; nothing is copied or allocated,
 * and a line is never trusted: any byte sequence gives MTALOG_OTHER or MTALOG_BAD.
 * What a line means for a message (the join by queue id) is mtareport.c's.
 * One room past 600 lines: the Postfix and Exim grammars share the stamp
 * parser and the field scanner, and are fuzzed as one.
 */
#include <string.h>
#include <time.h>

#include "smtpguard.h"

static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

/* --- small scanners over (p, end) ----------------------------------------- */

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* n digits at p as a number, or -1. */
static int
digits(const char *p, const char *end, int n)
{
	int v = 0;

	if (end - p < n)
		return -1;
	for (int i = 0; i < n; i++) {
		if (!is_digit(p[i]))
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

static bool
starts(const char *p, const char *end, const char *s)
{
	size_t n = strlen(s);

	return (size_t)(end - p) >= n && memcmp(p, s, n) == 0;
}

/* The first occurrence of s in [p, end), or NULL (memchr: needles here are short). */
static const char *
find(const char *p, const char *end, const char *s)
{
	size_t n = strlen(s);

	while (p < end && (size_t)(end - p) >= n) {
		if ((p = memchr(p, s[0], (size_t)(end - p) - n + 1)) == NULL)
			return NULL;
		if (memcmp(p, s, n) == 0)
			return p;
		p++;
	}
	return NULL;
}

static struct mtalog_str
span(const char *p, const char *q)
{
	return (struct mtalog_str){ p, (size_t)(q - p) };
}

/* --- time ----------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

static bool
valid_date(int y, int mo, int d, int h, int mi, int s)
{
	return y >= 1970 && y <= 9999 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 &&
	    h >= 0 && h <= 23 && mi >= 0 && mi <= 59 && s >= 0 && s <= 60;
}

static int64_t
civil_seconds(int y, int mo, int d, int h, int mi, int s)
{
	return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}

/*
 * Local wall-clock seconds to real seconds. The offset is asked of mktime()
 * once per hour of log (logs are in time order, so the cache almost always hits).
 */
static int64_t
local_to_utc(struct mtalog_clock *c, int64_t wall)
{
	int64_t hour = wall - (wall % 3600 + 3600) % 3600;

	if (hour != c->hour_key || !c->hour_valid) {
		struct tm tm;
		time_t t = (time_t)hour;

		gmtime_r(&t, &tm);
		tm.tm_isdst = -1;
		t = mktime(&tm);
		c->hour_off = t == (time_t)-1 ? 0 : hour - (int64_t)t;
		c->hour_key = hour;
		c->hour_valid = true;
	}
	return wall - c->hour_off;
}

void
mtalog_clock_init(struct mtalog_clock *c, time_t ref)
{
	struct tm tm;

	memset(c, 0, sizeof(*c));
	localtime_r(&ref, &tm);
	c->ref_year = tm.tm_year + 1900;
	c->ref_mon = tm.tm_mon + 1;
	c->ref_mday = tm.tm_mday;
}

/* "2026-11-22T10:00:01[.123456](Z|+01:00|+0100) ": p moves past the space. */
static int
stamp_rfc3339(struct mtalog_clock *c, const char **pp, const char *end, int64_t *ts)
{
	const char *p = *pp;
	int y = digits(p, end, 4), mo = digits(p + 5, end, 2), d = digits(p + 8, end, 2);
	int h = digits(p + 11, end, 2), mi = digits(p + 14, end, 2), s = digits(p + 17, end, 2);
	int64_t wall;

	if (end - p < 20 || p[4] != '-' || p[7] != '-' || p[13] != ':' || p[16] != ':' ||
	    !valid_date(y, mo, d, h, mi, s))
		return -1;
	wall = civil_seconds(y, mo, d, h, mi, s);
	p += 19;
	if (p < end && *p == '.')
		for (p++; p < end && is_digit(*p); p++)
			;
	if (p < end && *p == 'Z') {
		*ts = wall;
		p++;
	} else if (p < end && (*p == '+' || *p == '-')) {
		int sign = *p == '-' ? -1 : 1, oh = digits(p + 1, end, 2), om;

		p += 3;
		if (p < end && *p == ':')
			p++;
		om = digits(p, end, 2);
		if (oh < 0 || om < 0 || oh > 23 || om > 59)
			return -1;
		p += 2;
		*ts = wall - sign * (oh * 3600 + om * 60);
	} else
		*ts = local_to_utc(c, wall);
	if (p >= end || *p != ' ')
		return -1;
	*pp = p + 1;
	return 0;
}

/*
 * "Nov 22 10:00:01 ": the year is not written; it is the clock's reference
 * year (the file's modification time), or the one before when the date lies
 * more than a day after the reference (a log that spans New Year).
 */
static int
stamp_traditional(struct mtalog_clock *c, const char **pp, const char *end, int64_t *ts)
{
	const char *p = *pp, *m;
	int mo, d, h, mi, s, y;

	if (end - p < 16 || p[3] != ' ' || p[6] != ' ' || p[9] != ':' || p[12] != ':' ||
	    p[15] != ' ')
		return -1;
	if ((m = memmem(months, sizeof(months) - 1, p, 3)) == NULL || (m - months) % 3 != 0)
		return -1;
	mo = (int)(m - months) / 3 + 1;
	d = p[4] == ' ' ? digits(p + 5, end, 1) : digits(p + 4, end, 2);
	h = digits(p + 7, end, 2);
	mi = digits(p + 10, end, 2);
	s = digits(p + 13, end, 2);
	y = c->ref_year;
	if (mo > c->ref_mon || (mo == c->ref_mon && d > c->ref_mday + 1))
		y--;
	if (!valid_date(y, mo, d, h, mi, s))
		return -1;
	*ts = local_to_utc(c, civil_seconds(y, mo, d, h, mi, s));
	*pp = p + 16;
	return 0;
}

/* --- Postfix --------------------------------------------------------------- */

/* The value of "key=" up to the next ", " (or end), searched from p. */
static bool
pf_field(const char *p, const char *end, const char *key, struct mtalog_str *out)
{
	const char *v, *e;

	for (v = p; (v = find(v, end, key)) != NULL; v++)
		if (v == p || v[-1] == ' ')
			break;
	if (v == NULL)
		return false;
	v += strlen(key);
	if ((e = find(v, end, ", ")) == NULL)
		e = end;
	*out = span(v, e);
	return true;
}

/* "<addr>" without its brackets. */
static struct mtalog_str
unbracket(struct mtalog_str s)
{
	if (s.len >= 2 && s.p[0] == '<' && s.p[s.len - 1] == '>')
		return (struct mtalog_str){ s.p + 1, s.len - 2 };
	return s;
}

/* "name[192.0.2.7]" or "name[192.0.2.7]:25": the address in brackets. */
static bool
bracketed_ip(struct mtalog_str s, struct mtalog_str *ip)
{
	const char *end = s.p + s.len, *o = memchr(s.p, '[', s.len), *c;

	if (o == NULL || (c = memchr(o, ']', (size_t)(end - o))) == NULL || c == o + 1)
		return false;
	for (const char *q = o + 1; q < c; q++)
		if (!is_alnum(*q) && *q != '.' && *q != ':' && *q != '%')
			return false;
	*ip = span(o + 1, c);
	return true;
}

static long long
number(struct mtalog_str s)
{
	long long v = 0;

	if (s.len == 0 || s.len > 18)
		return -1;
	for (size_t i = 0; i < s.len; i++) {
		if (!is_digit(s.p[i]))
			return -1;
		v = v * 10 + (s.p[i] - '0');
	}
	return v;
}

static int
pf_status(struct mtalog_str s, struct mtalog_line *l, const char *end)
{
	const char *word_end = s.p;

	while (word_end < end && is_alnum(*word_end))
		word_end++;
	s = span(s.p, word_end);
	if (s.len == 4 && memcmp(s.p, "sent", 4) == 0)
		l->status = MTALOG_SENT;
	else if (s.len == 8 && memcmp(s.p, "deferred", 8) == 0)
		l->status = MTALOG_DEFERRED;
	else if (s.len == 7 && memcmp(s.p, "bounced", 7) == 0)
		l->status = MTALOG_BOUNCED;
	else
		return -1;
	/* " (remote reply or reason)" */
	if (word_end + 2 <= end && word_end[0] == ' ' && word_end[1] == '(') {
		const char *r = word_end + 2, *e = end;

		if (e > r && e[-1] == ')')
			e--;
		l->reply = span(r, e);
	}
	return 0;
}

/*
 * "postfix/smtpd[1]: 4F9D21A2B3C: client=..." and the rest of the queue-id
 * lines that say where a message came from, where it went and when it left.
 * Lines without a queue id (connect, disconnect, NOQUEUE, warnings) are OTHER.
 */
static void
postfix_line(const char *daemon, size_t dlen, const char *p, const char *end, struct mtalog_line *l)
{
	const char *q = p;
	struct mtalog_str v;

	while (q < end && is_alnum(*q))
		q++;
	if (q - p < 5 || q - p > MTALOG_QID_MAX || !starts(q, end, ": ") ||
	    (q - p == 7 && memcmp(p, "NOQUEUE", 7) == 0))
		return;
	l->qid = span(p, q);
	p = q + 2;
#define DAEMON(s)	(dlen == sizeof(s) - 1 && memcmp(daemon, s, dlen) == 0)
	if (DAEMON("smtpd") && starts(p, end, "client=")) {
		l->kind = MTALOG_ORIGIN;
		if (pf_field(p, end, "client=", &v) && !bracketed_ip(v, &l->client_ip))
			l->kind = MTALOG_BAD;
		if (pf_field(p, end, "sasl_username=", &v))
			l->sasl_user = v;
	} else if (DAEMON("pickup") && starts(p, end, "uid=")) {
		const char *u = p + 4, *ue = u;

		while (ue < end && is_digit(*ue))
			ue++;
		l->uid = number(span(u, ue));
		if (l->uid < 0 || !starts(ue, end, " from=<") || end[-1] != '>') {
			l->kind = MTALOG_BAD;
			return;
		}
		l->kind = MTALOG_ORIGIN;
		l->sender = unbracket(span(ue + 6, end));
		l->has_sender = true;
	} else if (DAEMON("cleanup") && starts(p, end, "message-id=")) {
		l->kind = MTALOG_MSGID;
		l->msgid = unbracket(span(p + 11, end));
	} else if (DAEMON("qmgr") && starts(p, end, "from=<")) {
		if (find(p, end, ", size=") == NULL) {
			return;	/* "from=<...>, status=expired, returned to sender" */
		}
		l->kind = MTALOG_QUEUED;
		if (!pf_field(p, end, "from=", &v) || v.len < 2 || v.p[0] != '<' ||
		    v.p[v.len - 1] != '>') {
			l->kind = MTALOG_BAD;
			return;
		}
		l->sender = unbracket(v);
		l->has_sender = true;
		if (pf_field(p, end, "size=", &v))
			l->size = number(v);
		if (pf_field(p, end, "nrcpt=", &v)) {
			const char *sp = memchr(v.p, ' ', v.len);

			l->nrcpt = number(sp ? span(v.p, sp) : v);
		}
	} else if ((DAEMON("qmgr") || DAEMON("postsuper")) && starts(p, end, "removed")) {
		l->kind = MTALOG_DONE;
	} else if (DAEMON("bounce") && starts(p, end, "sender non-delivery notification: ")) {
		const char *c = p + 34, *ce = c;

		while (ce < end && is_alnum(*ce))
			ce++;
		if (ce == c || ce - c > MTALOG_QID_MAX) {
			l->kind = MTALOG_BAD;
			return;
		}
		l->kind = MTALOG_NDR;
		l->child_qid = span(c, ce);
	} else if (starts(p, end, "to=<")) {
		struct mtalog_str status;

		if (!pf_field(p, end, "to=", &v) || !pf_field(p, end, "status=", &status) ||
		    pf_status(status, l, end) < 0) {
			l->kind = MTALOG_BAD;
			l->reply = (struct mtalog_str){ 0 };
			return;
		}
		l->kind = MTALOG_RCPT;
		l->rcpt = unbracket(v);
		if (pf_field(p, end, "relay=", &v))
			l->relay = v;
		/* Only the SMTP client (and its "relay" clone) takes mail off the host. */
		l->remote = DAEMON("smtp") || DAEMON("relay");
	}
#undef DAEMON
}

/* --- Exim ----------------------------------------------------------------- */

/* 1sXyZa-000123-Ab (before 4.97) or 1sXyZa-00000000012-ABCD (4.97 on). */
static const char *
exim_qid(const char *p, const char *end)
{
	static const int part_min[3] = { 6, 6, 2 }, part_max[3] = { 6, 11, 4 };

	for (int i = 0; i < 3; i++) {
		const char *s = p;

		while (p < end && is_alnum(*p))
			p++;
		if (p - s < part_min[i] || p - s > part_max[i])
			return NULL;
		if (i < 2) {
			if (p >= end || *p != '-')
				return NULL;
			p++;
		}
	}
	return p < end && *p == ' ' ? p : NULL;
}

/*
 * The value of " KEY=" in an Exim line, searched from p: to the next space,
 * or the whole "quoted string". Quoted values (T="subject") are stepped over
 * when searching, so a subject cannot fake a field.
 */
static bool
exim_field(const char *p, const char *end, const char *key, struct mtalog_str *out)
{
	size_t klen = strlen(key);

	while (p < end) {
		const char *tok = p, *e;

		if (*p == '"' || (end - p > 2 && p[1] == '=' && p[2] == '"') ||
		    (end - p > 3 && p[2] == '=' && p[3] == '"')) {
			/* a quoted token: skip to its closing quote */
			e = memchr(p, '"', (size_t)(end - p));
			for (e = e + 1; e < end && *e != '"'; e++)
				if (*e == '\\' && e + 1 < end)
					e++;
			p = e < end ? e + 1 : end;
		} else {
			e = memchr(p, ' ', (size_t)(end - p));
			p = e ? e : end;
		}
		if ((size_t)(p - tok) > klen && memcmp(tok, key, klen) == 0) {
			const char *v = tok + klen;

			if (v < p && *v == '"')
				*out = span(v + 1, p > v + 1 && p[-1] == '"' ? p - 1 : p);
			else
				*out = span(v, p);
			return true;
		}
		while (p < end && *p == ' ')
			p++;
	}
	return false;
}

/* H=name (helo) [192.0.2.7]:25: the name, and the bracketed address. */
static bool
exim_host(const char *p, const char *end, struct mtalog_str *ip, struct mtalog_str *name)
{
	struct mtalog_str h;
	const char *o, *c;

	if (!exim_field(p, end, "H=", &h))
		return false;
	if (name != NULL)
		*name = h;
	if ((o = memchr(h.p, '[', (size_t)(end - h.p))) == NULL ||
	    (c = memchr(o, ']', (size_t)(end - o))) == NULL)
		return false;
	return bracketed_ip(span(o, c + 1), ip);
}

static void
exim_line(const char *p, const char *end, struct mtalog_line *l)
{
	const char *q;
	struct mtalog_str v;

	/* optional "+0100 " (log_timezone) and "[1234] " (log_selector +pid) */
	if (p < end && (*p == '+' || *p == '-') && digits(p + 1, end, 4) >= 0 &&
	    starts(p + 5, end, " "))
		p += 6;
	if (p < end && *p == '[' && (q = memchr(p, ']', (size_t)(end - p))) != NULL &&
	    starts(q, end, "] "))
		p = q + 2;
	if ((q = exim_qid(p, end)) == NULL)
		return;
	l->qid = span(p, q);
	p = q + 1;
	if (starts(p, end, "<= ")) {
		const char *s = p + 3, *se = memchr(s, ' ', (size_t)(end - s));

		se = se ? se : end;
		l->kind = MTALOG_ORIGIN;
		l->sender = span(s, se);
		if (l->sender.len == 2 && memcmp(s, "<>", 2) == 0)
			l->sender.len = 0;
		l->has_sender = true;
		(void)exim_host(se, end, &l->client_ip, NULL);
		if (exim_field(se, end, "A=", &v)) {
			/* A=authenticator:user (authenticator names have no colon) */
			const char *colon = memchr(v.p, ':', v.len);

			if (colon != NULL)
				l->sasl_user = span(colon + 1, v.p + v.len);
		}
		if (exim_field(se, end, "U=", &v))
			l->local_user = v;
		if (exim_field(se, end, "P=", &v))
			l->local = v.len == 5 && memcmp(v.p, "local", 5) == 0;
		if (exim_field(se, end, "S=", &v))
			l->size = number(v);
		if (exim_field(se, end, "id=", &v))
			l->msgid = v;
		if (exim_field(se, end, "R=", &v))
			l->child_qid = v;	/* a bounce: the message it reports on */
	} else if (starts(p, end, "=> ") || starts(p, end, "-> ") || starts(p, end, "** ") ||
	    starts(p, end, "== ")) {
		const char *r = p + 3, *re = r, *colon;
		struct mtalog_str t;

		while (re < end && *re != ' ' && *re != ':')
			re++;
		if (re == r) {
			l->kind = MTALOG_BAD;
			return;
		}
		l->kind = MTALOG_RCPT;
		l->rcpt = unbracket(span(r, re));
		l->status = p[0] == '*' ? MTALOG_BOUNCED : p[0] == '=' && p[1] == '=' ?
		    MTALOG_DEFERRED : MTALOG_SENT;
		l->remote = exim_host(re, end, &v, &l->relay) ||
		    (exim_field(re, end, "T=", &t) && memmem(t.p, t.len, "smtp", 4) != NULL);
		if (l->status != MTALOG_SENT && (colon = find(re, end, ": ")) != NULL)
			l->reply = span(colon + 2, end);
		else if (exim_field(re, end, "C=", &v))
			l->reply = v;
	} else if (starts(p, end, "Completed"))
		l->kind = MTALOG_DONE;
}

/* --- one line ---------------------------------------------------------------- */

enum mtalog_kind
mtalog_parse(struct mtalog_clock *c, const char *line, size_t len, struct mtalog_line *l)
{
	const char *p = line, *end = line + len, *tag, *colon, *bracket, *daemon;

	memset(l, 0, sizeof(*l));
	l->uid = -1;
	l->size = -1;
	l->nrcpt = -1;
	while (end > p && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	l->kind = MTALOG_BAD;
	if (end - p >= 20 && is_digit(p[0]) && p[10] == ' ') {
		/* Exim: "2026-11-22 10:00:01 " in local time */
		int y = digits(p, end, 4), mo = digits(p + 5, end, 2), d = digits(p + 8, end, 2);
		int h = digits(p + 11, end, 2), mi = digits(p + 14, end, 2);
		int s = digits(p + 17, end, 2);
		const char *q = p + 19;

		if (p[4] != '-' || p[7] != '-' || p[13] != ':' || p[16] != ':' ||
		    !valid_date(y, mo, d, h, mi, s))
			return MTALOG_BAD;
		if (*q == '.')	/* log_selector +millisec */
			for (q++; q < end && is_digit(*q); q++)
				;
		if (q >= end || *q != ' ')
			return MTALOG_BAD;
		l->ts = local_to_utc(c, civil_seconds(y, mo, d, h, mi, s));
		l->kind = MTALOG_OTHER;
		exim_line(q + 1, end, l);
		return l->kind;
	}
	if (p == end || (is_digit(p[0]) ? stamp_rfc3339(c, &p, end, &l->ts) < 0 :
	    stamp_traditional(c, &p, end, &l->ts) < 0))
		return MTALOG_BAD;
	/* "host program[pid]: message" */
	l->kind = MTALOG_OTHER;
	if ((tag = memchr(p, ' ', (size_t)(end - p))) == NULL)
		return MTALOG_OTHER;
	tag++;
	if ((colon = find(tag, end, ": ")) == NULL || !starts(tag, colon, "postfix"))
		return MTALOG_OTHER;
	bracket = memchr(tag, '[', (size_t)(colon - tag));
	bracket = bracket ? bracket : colon;
	/* postfix/smtpd, postfix/submission/smtpd, postfix-out/smtp: the last part */
	for (daemon = bracket; daemon > tag && daemon[-1] != '/'; daemon--)
		;
	if (daemon == tag)
		return MTALOG_OTHER;
	postfix_line(daemon, (size_t)(bracket - daemon), colon + 2, end, l);
	return l->kind;
}

/*
 * Remote replies that mean "your host is on a blocklist or its reputation
 * is bad": RBL names, Microsoft's S3140/TS0x codes, the usual wordings.
 */
static const char *const blacklist_words[] = {
	"blacklist", "blocklist", "block list", "black list", "blocked", "spamhaus",
	"spamcop", "barracuda", "sorbs", "not allowed to send", "reputation", "ts01", "ts02", "ts03", "ts04", "tss04",
	"s3140", "5.7.606", "listed at", "listed in", "listed by", "rbl",
};

bool
mtalog_blacklisted(const char *reply, size_t len)
{
	char low[512];

	if (len >= sizeof(low))
		len = sizeof(low) - 1;
	for (size_t i = 0; i < len; i++)
		low[i] = (char)(reply[i] >= 'A' && reply[i] <= 'Z' ? reply[i] + 32 : reply[i]);
	low[len] = '\0';
	for (size_t i = 0; i < sizeof(blacklist_words) / sizeof(blacklist_words[0]); i++)
		if (strstr(low, blacklist_words[i]) != NULL)
			return true;
	return false;
}
