/*
 * review.c — reading the event log for the admin: `smtpguard log` (filtered
 * lines, human or JSON, optionally followed across rotation) and
 * `smtpguard top` (who is sending: counts per user, process, destination,
 * sender, script, subject). The log holds attacker-chosen strings, so every
 * field is printed with control characters escaped; lines that are not JSON
 * are counted and skipped. Timestamps are RFC 3339 UTC strings, so time
 * filters compare strings and never parse a date per line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "smtpguard.h"

#define REVIEW_LINE_MAX		(EVENT_LINE_MAX + 1)
#define REVIEW_TAIL_DEFAULT	50
#define REVIEW_TAIL_MAX		100000
#define TOP_GROUPS_MAX		100000	/* past this, rows fold into "(other)" */
#define TOP_BAR_WIDTH		24
#define FOLLOW_POLL_NS		(250 * 1000 * 1000)
#define READ_BUF		(1 << 20)	/* stdio buffer: few read(2)s over a big log */
#define AGO_MAX			(10L * 366 * 86400)	/* "--since 5000d" is a typo */

struct filter {
	char	 since[40], until[40];	/* RFC 3339 UTC, compared as strings */
	time_t	 since_t, until_t;	/* the same, for the MTA logs of top --mta */
	const char *user, *action, *event, *dst;
	long	 uid;			/* -1: any */
	struct cidr dst_net;
	bool	 dst_is_net;
	long	 dst_port;		/* -1: any */
};

/* --- time ------------------------------------------------------------------ */

/* "10m", "2h", "3d", "45s", or "2026-11-22[T10:00[:SS]][Z]" (local time unless Z). */
int
review_parse_when(const char *s, time_t now, time_t *when)
{
	struct tm tm;
	char *end;
	time_t t;

	if (s[0] >= '0' && s[0] <= '9' && strchr(s, '-') == NULL) {
		unsigned long n = strtoul(s, &end, 10);
		long mult = 0;

		if (strcmp(end, "s") == 0)
			mult = 1;
		else if (strcmp(end, "m") == 0)
			mult = 60;
		else if (strcmp(end, "h") == 0)
			mult = 3600;
		else if (strcmp(end, "d") == 0)
			mult = 86400;
		if (mult == 0 || end == s || n > (unsigned long)(AGO_MAX / mult))
			return -1;
		t = now - (time_t)n * mult;
	} else {
		bool utc;

		memset(&tm, 0, sizeof(tm));
		if ((end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL &&
		    (end = strptime(s, "%Y-%m-%dT%H:%M", &tm)) == NULL &&
		    (end = strptime(s, "%Y-%m-%d", &tm)) == NULL)
			return -1;
		utc = strcmp(end, "Z") == 0;
		if (*end != '\0' && !utc)
			return -1;
		tm.tm_isdst = -1;
		t = utc ? timegm(&tm) : mktime(&tm);
		if (t == (time_t)-1)
			return -1;
	}
	*when = t;
	return 0;
}

/* The same, as the RFC 3339 UTC string the event log's "ts" is compared with. */
int
review_parse_time(const char *s, time_t now, char *out, size_t len)
{
	time_t t;

	if (review_parse_when(s, now, &t) < 0)
		return -1;
	struct timespec ts = { .tv_sec = t };
	event_time(&ts, out, len);
	return 0;
}

static const char *
jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* --- the fields the filters and top read ------------------------------------- */

enum ev_field { EV_TS, EV_EVENT, EV_ACTION, EV_USER, EV_UID, EV_EXE, EV_CWD, EV_DST_IP,
    EV_DST_PORT, EV_MAIL_FROM, EV_PHP_SCRIPT, EV_SUBJECT, EV_SUPPRESSED, EV_NFIELDS };
static const char *const ev_names[EV_NFIELDS] = { "ts", "event", "action", "user", "uid",
    "exe", "cwd", "dst_ip", "dst_port", "mail_from", "php_script", "subject", "suppressed" };

/* An event as the filters see it: each field a string, an integer, or absent. */
struct ev {
	const char	*s[EV_NFIELDS];
	long long	 n[EV_NFIELDS];
	bool		 has_n[EV_NFIELDS];
};

static void
ev_from_json(struct ev *e, json_t *o)
{
	for (int i = 0; i < EV_NFIELDS; i++) {
		json_t *v = json_object_get(o, ev_names[i]);

		e->s[i] = json_string_value(v);
		e->has_n[i] = json_is_integer(v);
		e->n[i] = e->has_n[i] ? (long long)json_integer_value(v) : 0;
	}
}

/*
 * The fast path of `top`: the daemon's lines are flat JSON objects of ASCII
 * strings and integers, and a full parse (jansson builds a hash table and
 * copies every string) is most of top's time. flat_scan() validates the line
 * without allocating and keeps the fields above; anything it is not sure of
 * (\u escapes, bytes >= 0x80, reals, big integers, deep nesting) makes it
 * answer -1, and jansson decides that line as before.
 */
#define FLAT_DEPTH_MAX	16

static const char *
flat_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Past a string's closing quote, or NULL; *escaped says whether it held escapes. */
static const char *
flat_string(const char *p, const char *end, bool *escaped)
{
	*escaped = false;
	for (p++; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"')
			return p + 1;
		if (c < 0x20 || c >= 0x80)
			return NULL;
		if (c == '\\') {
			if (++p >= end || strchr("\"\\/bfnrt", *p) == NULL || *p == '\0')
				return NULL;
			*escaped = true;
		}
	}
	return NULL;
}

/* Past an integer, or NULL (reals and integers of 19+ digits are left to jansson). */
static const char *
flat_integer(const char *p, const char *end)
{
	const char *d;

	if (p < end && *p == '-')
		p++;
	d = p;
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	if (p == d || p - d > 18 || (*d == '0' && p - d > 1))
		return NULL;
	if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
		return NULL;
	return p;
}

static const char *
flat_value(const char *p, const char *end, int depth)
{
	bool escaped;

	if (p >= end)
		return NULL;
	switch (*p) {
	case '"':
		return flat_string(p, end, &escaped);
	case 't':
		return end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
	case 'f':
		return end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
	case 'n':
		return end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
	case '[':
	case '{': {
		char close = *p == '[' ? ']' : '}';

		if (depth >= FLAT_DEPTH_MAX)
			return NULL;
		p = flat_ws(p + 1, end);
		if (p < end && *p == close)
			return p + 1;
		for (;;) {
			if (close == '}') {
				if (p >= end || *p != '"' || (p = flat_string(p, end, &escaped)) == NULL)
					return NULL;
				p = flat_ws(p, end);
				if (p >= end || *p != ':')
					return NULL;
				p = flat_ws(p + 1, end);
			}
			if ((p = flat_value(p, end, depth + 1)) == NULL)
				return NULL;
			p = flat_ws(p, end);
			if (p < end && *p == close)
				return p + 1;
			if (p >= end || *p != ',')
				return NULL;
			p = flat_ws(p + 1, end);
		}
	}
	default:
		return flat_integer(p, end);
	}
}

static int
ev_field_of(const char *k, size_t n)
{
	for (int i = 0; i < EV_NFIELDS; i++)
		if (ev_names[i][0] == k[0] && strlen(ev_names[i]) == n &&
		    memcmp(ev_names[i], k, n) == 0)
			return i;
	return -1;
}

/* Unescapes a validated string in place and ends it with NUL where its quote was. */
static const char *
flat_unescape(char *p, char *close)
{
	char *w = p;

	for (char *r = p; r < close; r++) {
		if (*r == '\\') {
			r++;
			*w++ = *r == 'b' ? '\b' : *r == 'f' ? '\f' : *r == 'n' ? '\n' :
			    *r == 'r' ? '\r' : *r == 't' ? '\t' : *r;
		} else
			*w++ = *r;
	}
	*w = '\0';
	return p;
}

/* 0: the line is a valid object and e holds its fields (strings now NUL-ended in the line). */
static int
flat_scan(char *line, size_t len, struct ev *e)
{
	const char *p = line, *end = line + len;
	char *str_start[EV_NFIELDS], *str_close[EV_NFIELDS];
	bool escaped;

	memset(e, 0, sizeof(*e));
	memset(str_start, 0, sizeof(str_start));
	p = flat_ws(p, end);
	if (p >= end || *p != '{')
		return -1;
	p = flat_ws(p + 1, end);
	if (p < end && *p == '}')
		return 0;
	for (;;) {
		const char *k = p, *v;
		int field;

		if (p >= end || *p != '"' || (p = flat_string(p, end, &escaped)) == NULL ||
		    escaped)
			return -1;
		field = ev_field_of(k + 1, (size_t)(p - k - 2));
		p = flat_ws(p, end);
		if (p >= end || *p != ':')
			return -1;
		v = p = flat_ws(p + 1, end);
		if ((p = flat_value(p, end, 1)) == NULL)
			return -1;
		if (field >= 0) {
			/* a repeated key: the last one counts, as in jansson */
			str_start[field] = NULL;
			e->has_n[field] = false;
			e->n[field] = 0;
			if (*v == '"') {
				str_start[field] = (char *)v + 1;
				str_close[field] = (char *)p - 1;
			} else if (*v == '-' || (*v >= '0' && *v <= '9')) {
				/* at most 18 digits (flat_integer): no overflow, and no
				 * strtoll reading past a line that is not NUL-ended */
				bool neg = *v == '-';

				e->has_n[field] = true;
				for (v += neg; v < p && *v >= '0' && *v <= '9'; v++)
					e->n[field] = e->n[field] * 10 + (*v - '0');
				if (neg)
					e->n[field] = -e->n[field];
			}
		}
		p = flat_ws(p, end);
		if (p < end && *p == '}')
			break;
		if (p >= end || *p != ',')
			return -1;
		p = flat_ws(p + 1, end);
	}
	/* Valid: only now is the line written to. What follows the object is ignored. */
	for (int i = 0; i < EV_NFIELDS; i++)
		if (str_start[i] != NULL)
			e->s[i] = flat_unescape(str_start[i], str_close[i]);
	return 0;
}

/* --- filters ---------------------------------------------------------------- */

static bool
dst_matches(const struct filter *f, const struct ev *e)
{
	const char *ip = e->s[EV_DST_IP];
	uint8_t addr[16];
	int family;

	if (ip == NULL)
		return false;
	if (f->dst_port >= 0 && e->n[EV_DST_PORT] != f->dst_port)
		return false;
	if (f->dst_is_net) {
		family = strchr(ip, ':') ? AF_INET6 : AF_INET;
		return inet_pton(family, ip, addr) == 1 &&
		    cidr_contains(&f->dst_net, family, addr);
	}
	return true;
}

static bool
matches(const struct filter *f, const struct ev *e)
{
	const char *ts = e->s[EV_TS], *s;

	if ((f->since[0] || f->until[0]) && ts == NULL)
		return false;
	if (f->since[0] && strcmp(ts, f->since) < 0)
		return false;
	if (f->until[0] && strcmp(ts, f->until) >= 0)
		return false;
	if (f->user && ((s = e->s[EV_USER]) == NULL || strcmp(s, f->user) != 0))
		return false;
	if (f->uid >= 0 && (!e->has_n[EV_UID] || e->n[EV_UID] != f->uid))
		return false;
	if (f->action && ((s = e->s[EV_ACTION]) == NULL || strcmp(s, f->action) != 0))
		return false;
	if (f->event && ((s = e->s[EV_EVENT]) == NULL || strcmp(s, f->event) != 0))
		return false;
	if (f->dst && !dst_matches(f, e))
		return false;
	return true;
}

static bool
matches_json(const struct filter *f, json_t *ev)
{
	struct ev e;

	ev_from_json(&e, ev);
	return matches(f, &e);
}

/* "192.0.2.25", "192.0.2.0/24", "192.0.2.25:25", "[2001:db8::25]:25", ":25" */
static int
parse_dst(const char *s, struct filter *f)
{
	char buf[INET6_ADDRSTRLEN + 16], *colon, *end;

	f->dst = s;
	f->dst_port = -1;
	if (strlcpy_sg(buf, s, sizeof(buf)) >= sizeof(buf))
		return -1;
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');

		if (close == NULL || (close[1] != '\0' && close[1] != ':'))
			return -1;
		*close = '\0';
		if (close[1] == ':') {
			f->dst_port = strtol(close + 2, &end, 10);
			if (*end != '\0' || f->dst_port < 1 || f->dst_port > 65535)
				return -1;
		}
		memmove(buf, buf + 1, strlen(buf));
	} else if ((colon = strchr(buf, ':')) != NULL && strchr(colon + 1, ':') == NULL) {
		*colon = '\0';
		f->dst_port = strtol(colon + 1, &end, 10);
		if (*end != '\0' || f->dst_port < 1 || f->dst_port > 65535)
			return -1;
	}
	if (buf[0] == '\0')
		return f->dst_port > 0 ? 0 : -1;
	f->dst_is_net = true;
	return cidr_parse(buf, &f->dst_net);
}

enum { OPT_SINCE = 256, OPT_UNTIL, OPT_USER, OPT_UID, OPT_ACTION, OPT_EVENT, OPT_DST,
    OPT_JSON, OPT_BY, OPT_LIMIT, OPT_HELP, OPT_MTA, OPT_MTA_LOG };

static const struct option filter_options[] = {
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "until", required_argument, NULL, OPT_UNTIL },
	{ "user", required_argument, NULL, OPT_USER },
	{ "uid", required_argument, NULL, OPT_UID },
	{ "action", required_argument, NULL, OPT_ACTION },
	{ "event", required_argument, NULL, OPT_EVENT },
	{ "dst", required_argument, NULL, OPT_DST },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "follow", no_argument, NULL, 'f' },
	{ "by", required_argument, NULL, OPT_BY },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "mta", no_argument, NULL, OPT_MTA },
	{ "mta-log", required_argument, NULL, OPT_MTA_LOG },
	{ NULL, 0, NULL, 0 },
};

static const char filter_help[] =
    "  --since T      only events at or after T: 10m, 2h, 3d, 45s ago, or\n"
    "                 2026-11-22, 2026-11-22T10:00[:SS] (local time; add Z for UTC)\n"
    "  --until T      only events before T (same forms)\n"
    "  --user NAME    only this user      --uid N     only this uid\n"
    "  --action A     reject|trap|audit|allow\n"
    "  --event E      attempt|smtp|summary|alert|daemon\n"
    "  --dst D        destination: 192.0.2.25, 192.0.2.0/24, 192.0.2.25:25,\n"
    "                 [2001:db8::25]:25 or :25\n"
    "  --json         JSON lines instead of text\n";

/* Handles a filter option; 1 if it was one, 0 if not, -1 on a bad value (printed). */
static int
filter_option(int ch, const char *arg, struct filter *f, const char *cmd)
{
	char *end;
	time_t now = time(NULL);

	switch (ch) {
	case OPT_SINCE:
	case OPT_UNTIL:
		if (review_parse_time(arg, now, ch == OPT_SINCE ? f->since : f->until,
		    sizeof(f->since)) < 0 ||
		    review_parse_when(arg, now, ch == OPT_SINCE ? &f->since_t : &f->until_t) < 0) {
			fprintf(stderr, "smtpguard %s: bad time '%s' (10m, 2h, 3d, or "
			    "2026-11-22T10:00)\n", cmd, arg);
			return -1;
		}
		return 1;
	case OPT_USER:
		f->user = arg;
		return 1;
	case OPT_UID:
		f->uid = strtol(arg, &end, 10);
		if (*end != '\0' || arg[0] == '\0' || f->uid < 0) {
			fprintf(stderr, "smtpguard %s: bad uid '%s'\n", cmd, arg);
			return -1;
		}
		return 1;
	case OPT_ACTION:
		if (strcmp(arg, "reject") && strcmp(arg, "trap") && strcmp(arg, "audit") &&
		    strcmp(arg, "allow")) {
			fprintf(stderr, "smtpguard %s: bad action '%s' (reject, trap, audit, "
			    "allow)\n", cmd, arg);
			return -1;
		}
		f->action = arg;
		return 1;
	case OPT_EVENT:
		if (strcmp(arg, "attempt") && strcmp(arg, "smtp") && strcmp(arg, "summary") &&
		    strcmp(arg, "alert") && strcmp(arg, "daemon")) {
			fprintf(stderr, "smtpguard %s: bad event '%s' (attempt, smtp, summary, "
			    "alert, daemon)\n", cmd, arg);
			return -1;
		}
		f->event = arg;
		return 1;
	case OPT_DST:
		if (parse_dst(arg, f) < 0) {
			fprintf(stderr, "smtpguard %s: bad destination '%s'\n", cmd, arg);
			return -1;
		}
		return 1;
	}
	return 0;
}

/* --- reading ---------------------------------------------------------------- */

struct reader {
	FILE		*fp;
	char		*line;
	size_t		 cap;
	uint64_t	 unreadable;
};

static int
reader_open(struct reader *r, const char *path)
{
	memset(r, 0, sizeof(*r));
	if ((r->fp = fopen(path, "re")) == NULL)
		return -1;
	setvbuf(r->fp, NULL, _IOFBF, READ_BUF);
	return 0;
}

/*
 * Lines as the daemon writes them open with {"ts":"<27 characters>": such a
 * line outside --since/--until is skipped without being parsed. Any other
 * line is parsed and judged by matches().
 */
#define TS_PREFIX	"{\"ts\":\""
#define TS_LEN		27	/* 2026-11-22T10:00:00.123456Z */

static bool
outside_window(const struct filter *f, const char *line, size_t len)
{
	const char *ts = line + sizeof(TS_PREFIX) - 1;

	if ((!f->since[0] && !f->until[0]) || len < sizeof(TS_PREFIX) + TS_LEN ||
	    memcmp(line, TS_PREFIX, sizeof(TS_PREFIX) - 1) != 0 || ts[TS_LEN] != '"' ||
	    memchr(ts, '\\', TS_LEN) != NULL)
		return false;
	if (f->since[0] && strncmp(ts, f->since, TS_LEN) < 0)
		return true;
	return f->until[0] && strncmp(ts, f->until, TS_LEN) >= 0;
}

/* The next line worth parsing (within the time window), or -1 at EOF. */
static ssize_t
reader_line(struct reader *r, const struct filter *f)
{
	ssize_t n;

	while ((n = getline(&r->line, &r->cap, r->fp)) > 0) {
		if (r->line[n - 1] != '\n') {
			/* A line still being written: leave it for the next read. */
			if (fseeko(r->fp, -n, SEEK_CUR) == 0)
				break;
		}
		if (n > REVIEW_LINE_MAX) {
			r->unreadable++;
			continue;
		}
		if (f != NULL && outside_window(f, r->line, (size_t)n))
			continue;
		return n;
	}
	/* At EOF, forget it so --follow can read on; keep a read error for the caller. */
	if (!ferror(r->fp))
		clearerr(r->fp);
	return -1;
}

static json_t *
reader_parse(struct reader *r, size_t n)
{
	json_error_t jerr;
	json_t *ev = json_loadb(r->line, n, JSON_DISABLE_EOF_CHECK, &jerr);

	if (ev == NULL || !json_is_object(ev)) {
		json_decref(ev);
		r->unreadable++;
		return NULL;
	}
	return ev;
}

/* Next event, or NULL at EOF. The JSON text stays in r->line. */
static json_t *
reader_next(struct reader *r, const struct filter *f, size_t *len)
{
	ssize_t n;
	json_t *ev;

	while ((n = reader_line(r, f)) > 0)
		if ((ev = reader_parse(r, (size_t)n)) != NULL) {
			*len = (size_t)n;
			return ev;
		}
	return NULL;
}

/*
 * Next event as its fields, false at EOF: by flat_scan() when it can (the
 * strings then live in r->line), else by jansson (*owner then holds them;
 * the caller drops it).
 */
static bool
reader_next_ev(struct reader *r, const struct filter *f, struct ev *e, json_t **owner)
{
	ssize_t n;

	*owner = NULL;
	while ((n = reader_line(r, f)) > 0) {
		if (flat_scan(r->line, (size_t)n, e) == 0)
			return true;
		if ((*owner = reader_parse(r, (size_t)n)) != NULL) {
			ev_from_json(e, *owner);
			return true;
		}
	}
	return false;
}

static void
reader_close(struct reader *r, const char *cmd)
{
	if (r->unreadable > 0)
		fprintf(stderr, "smtpguard %s: %llu unreadable lines skipped\n", cmd,
		    (unsigned long long)r->unreadable);
	if (r->fp != NULL)
		fclose(r->fp);
	free(r->line);
}

/* --- smtpguard log ------------------------------------------------------------ */

static void
print_local_time(const char *ts)
{
	struct tm tm;
	char out[32];
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (ts == NULL || strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm) == NULL) {
		printf("%-19s", "?");
		return;
	}
	t = timegm(&tm);
	strftime(out, sizeof(out), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
	printf("%s", out);
}

#define COL_WHO		20	/* "www-data(33)" and most site users fit */
#define COL_ACTION	7

/* put_safe, then spaces up to WIDTH columns (escapes widen a hostile field: fine). */
static void
put_col(const char *s, size_t max, int width)
{
	int n = 0;

	put_safe(stdout, s, max);
	for (const unsigned char *p = (const unsigned char *)s; *p && (size_t)n < max; p++)
		if ((*p & 0xc0) != 0x80)
			n++;
	printf("%*s", n < width ? width - n : 0, "");
	putchar(' ');
}

static const char *
jstr_or(json_t *o, const char *k, const char *dflt)
{
	const char *s = jstr(o, k);

	return s != NULL ? s : dflt;
}

static void
print_event(json_t *ev)
{
	const char *event = jstr_or(ev, "event", "?"), *s;
	json_t *uid = json_object_get(ev, "uid"), *pid = json_object_get(ev, "pid");
	char who[USER_NAME_MAX + 24];

	print_local_time(jstr(ev, "ts"));
	printf("  ");
	if (json_is_integer(uid))
		snprintf(who, sizeof(who), "%.63s(%lld)", jstr_or(ev, "user", ""),
		    (long long)json_integer_value(uid));
	else
		snprintf(who, sizeof(who), "-");
	put_col(who, sizeof(who), COL_WHO);
	put_col(jstr_or(ev, "action", event), 16, COL_ACTION);
	if (strcmp(event, "daemon") == 0) {
		printf("smtpguardd: ");
		put_safe(stdout, jstr_or(ev, "msg", ""), 400);
		putchar('\n');
		return;
	}
	if (json_is_integer(pid))
		printf("%lld ", (long long)json_integer_value(pid));
	put_safe(stdout, jstr_or(ev, "exe", "?"), 120);
	if ((s = jstr(ev, "dst_ip")) != NULL) {
		bool v6 = strchr(s, ':') != NULL;

		printf(" -> %s", v6 ? "[" : "");
		put_safe(stdout, s, INET6_ADDRSTRLEN);
		printf("%s:%lld", v6 ? "]" : "",
		    (long long)json_integer_value(json_object_get(ev, "dst_port")));
	}
	if (strcmp(event, "smtp") == 0) {
		json_t *rcpt = json_object_get(ev, "rcpt_to");
		json_t *count = json_object_get(ev, "rcpt_count");
		json_int_t n = json_is_integer(count) ? json_integer_value(count) :
		    (json_int_t)json_array_size(rcpt);

		printf("  ");
		put_safe(stdout, jstr_or(ev, "mail_from", "<>"), 120);
		if ((s = json_string_value(json_array_get(rcpt, 0))) != NULL) {
			printf(" \u2192 ");
			put_safe(stdout, s, 120);
			if (n > 1)
				printf(" (+%lld)", (long long)n - 1);
		}
		if ((s = jstr(ev, "subject")) != NULL) {
			printf("  \"");
			put_safe(stdout, s, 120);
			putchar('"');
		}
		if ((s = jstr(ev, "inspect")) != NULL) {
			printf("  [");
			put_safe(stdout, s, 32);
			putchar(']');
		}
	} else if (strcmp(event, "summary") == 0)
		printf("  %lld more not logged in %llds",
		    (long long)json_integer_value(json_object_get(ev, "suppressed")),
		    (long long)json_integer_value(json_object_get(ev, "window")));
	else if (strcmp(event, "alert") == 0) {
		printf("  ALERT: ");
		put_safe(stdout, jstr_or(ev, "msg", ""), 400);
	}
	putchar('\n');
}

static void
emit_line(json_t *ev, const char *raw, size_t len, bool json)
{
	if (json)
		fwrite(raw, 1, len, stdout);
	else
		print_event(ev);
}

static int
log_follow(const char *path, struct reader *r, const struct filter *f, bool json)
{
	struct stat at_path, at_fd;
	json_t *ev;
	size_t len;

	for (;;) {
		while ((ev = reader_next(r, f, &len)) != NULL) {
			if (matches_json(f, ev))
				emit_line(ev, r->line, len, json);
			json_decref(ev);
		}
		fflush(stdout);
		if (ferror(stdout))
			return 1;
		nanosleep(&(struct timespec){ 0, FOLLOW_POLL_NS }, NULL);
		if (fstat(fileno(r->fp), &at_fd) < 0)
			return 1;
		if (stat(path, &at_path) == 0 &&
		    (at_path.st_ino != at_fd.st_ino || at_path.st_dev != at_fd.st_dev)) {
			/* Rotated: finish the old file, then read the new one from its start. */
			while ((ev = reader_next(r, f, &len)) != NULL) {
				if (matches_json(f, ev))
					emit_line(ev, r->line, len, json);
				json_decref(ev);
			}
			FILE *fp = fopen(path, "re");

			if (fp != NULL) {
				fclose(r->fp);
				r->fp = fp;
				setvbuf(r->fp, NULL, _IOFBF, READ_BUF);
			}
		} else if (ftello(r->fp) > at_fd.st_size)
			fseeko(r->fp, 0, SEEK_SET);	/* truncated in place */
	}
}

/*
 * The last WANT matching events, found by reading the file backwards in
 * blocks, so `smtpguard log` on a large log reads only its end. A line
 * still being written (no newline yet) is left for --follow. On return the
 * reader stands after the last complete line.
 */
#define TAIL_BLOCK	(1 << 20)	/* read backwards this much at a time */

static int
log_tail(struct reader *r, const struct filter *f, size_t want, bool json)
{
	char **found, *buf = NULL, *grown;
	size_t *foundlen, nfound = 0, have = 0;
	bool trailing = true, skipping = false;
	struct stat st;
	off_t pos, end;
	int rc = -1;

	if (fstat(fileno(r->fp), &st) < 0)
		return -1;
	pos = end = st.st_size;
	if ((found = calloc(want, sizeof(*found))) == NULL)
		return -1;
	if ((foundlen = calloc(want, sizeof(*foundlen))) == NULL)
		goto err1;
	while (nfound < want) {
		char *nl = have > 1 ? memrchr(buf, '\n', have - 1) : NULL;
		size_t start = nl != NULL ? (size_t)(nl - buf) + 1 : 0;

		if (trailing && have > 0) {
			/* Drop a last line without its newline; it is still being written. */
			if (buf[have - 1] != '\n') {
				nl = memrchr(buf, '\n', have);
				if (nl == NULL && pos > 0)
					goto more;
				end -= (off_t)(have - (nl != NULL ? (size_t)(nl - buf) + 1 : 0));
				have = nl != NULL ? (size_t)(nl - buf) + 1 : 0;
			}
			trailing = false;
			continue;
		}
		if (skipping && have > 0 && buf[have - 1] == '\n') {
			/* the overlong line began exactly at a block boundary */
			skipping = false;
			continue;
		}
		if (have > 0 && (nl != NULL || pos == 0)) {
			size_t len = have - start;
			json_error_t jerr;
			json_t *ev;

			have = start;
			if (skipping) {
				/* the rest of an overlong line, already counted */
				skipping = false;
				continue;
			}
			if (outside_window(f, buf + start, len))
				continue;
			ev = json_loadb(buf + start, len, JSON_DISABLE_EOF_CHECK, &jerr);
			if (ev == NULL || !json_is_object(ev))
				r->unreadable++;
			else if (matches_json(f, ev)) {
				if ((found[nfound] = malloc(len)) == NULL) {
					json_decref(ev);
					goto err2;
				}
				memcpy(found[nfound], buf + start, len);
				foundlen[nfound++] = len;
			}
			json_decref(ev);
			continue;
		}
		if (pos == 0)
			break;
more:
		if (have > REVIEW_LINE_MAX && trailing) {
			/* an overlong line still being written: not ours to show */
			end -= (off_t)have;
			have = 0;
		} else if (have > REVIEW_LINE_MAX) {
			/* No newline within a line's bound: unreadable; skip to its start. */
			if (!skipping)
				r->unreadable++;
			skipping = true;
			have = 0;
		}
		{
			size_t chunk = pos > TAIL_BLOCK ? TAIL_BLOCK : (size_t)pos;

			if ((grown = malloc(chunk + have)) == NULL)
				goto err2;
			if (pread(fileno(r->fp), grown, chunk, pos - (off_t)chunk) != (ssize_t)chunk) {
				free(grown);
				goto err2;
			}
			if (have > 0)
				memcpy(grown + chunk, buf, have);
			free(buf);
			buf = grown;
			have += chunk;
			pos -= (off_t)chunk;
		}
	}
	for (size_t i = nfound; i > 0; i--) {
		json_error_t jerr;
		json_t *ev = json_loadb(found[i - 1], foundlen[i - 1], JSON_DISABLE_EOF_CHECK,
		    &jerr);

		emit_line(ev, found[i - 1], foundlen[i - 1], json);
		json_decref(ev);
	}
	rc = fseeko(r->fp, end, SEEK_SET);
err2:
	free(buf);
	for (size_t i = 0; i < nfound; i++)
		free(found[i]);
	free(foundlen);
err1:
	free(found);
	return rc;
}

int
review_log(const char *path, int argc, char **argv)
{
	struct filter f = { .uid = -1, .dst_port = -1 };
	struct reader r;
	bool json = false, follow = false;
	long tail = -1;
	json_t *ev;
	size_t len;
	int ch, rc;
	char *end;

	optind = 0;	/* glibc: a full reset, as the tests call us repeatedly */
	while ((ch = getopt_long(argc, argv, "fn:h", filter_options, NULL)) != -1) {
		if ((rc = filter_option(ch, optarg, &f, "log")) < 0)
			return 2;
		if (rc == 1)
			continue;
		switch (ch) {
		case OPT_JSON:
			json = true;
			break;
		case 'f':
			follow = true;
			break;
		case 'n':
			tail = strtol(optarg, &end, 10);
			if (*end != '\0' || optarg[0] == '\0' || tail < 0 || tail > REVIEW_TAIL_MAX) {
				fprintf(stderr, "smtpguard log: bad -n '%s' (0-%d; 0 = all)\n",
				    optarg, REVIEW_TAIL_MAX);
				return 2;
			}
			break;
		case OPT_HELP:
		case 'h':
			printf("usage: smtpguard log [options]\n"
			    "Shows events from the event log, oldest first.\n%s"
			    "  -n N           only the last N matching events (default %d without\n"
			    "                 --since/--until; 0 = all)\n"
			    "  -f, --follow   keep printing new events; survives log rotation\n",
			    filter_help, REVIEW_TAIL_DEFAULT);
			return 0;
		default:
			fprintf(stderr, "smtpguard log: see smtpguard log --help\n");
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "smtpguard log: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (tail < 0)
		tail = f.since[0] || f.until[0] ? 0 : REVIEW_TAIL_DEFAULT;
	if (reader_open(&r, path) < 0) {
		fprintf(stderr, "smtpguard log: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (tail == 0) {
		while ((ev = reader_next(&r, &f, &len)) != NULL) {
			if (matches_json(&f, ev))
				emit_line(ev, r.line, len, json);
			json_decref(ev);
		}
		rc = ferror(r.fp) ? 1 : 0;
	} else
		rc = log_tail(&r, &f, (size_t)tail, json) < 0 ? 1 : 0;
	if (rc != 0)
		fprintf(stderr, "smtpguard log: %s: %s\n", path, strerror(errno));
	else
		rc = follow ? log_follow(path, &r, &f, json) : 0;
	fflush(stdout);
	reader_close(&r, "log");
	return rc;
}

/* --- smtpguard top ------------------------------------------------------------ */

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
group_add(struct top *t, struct group *g, uint64_t n, const struct ev *e)
{
	const char *ts = e->s[EV_TS], *dst = e->s[EV_DST_IP], *user;

	g->count += n;
	if (ts != NULL) {
		if (g->first[0] == '\0' || strcmp(ts, g->first) < 0)
			strlcpy_sg(g->first, ts, sizeof(g->first));
		if (strcmp(ts, g->last) > 0)
			strlcpy_sg(g->last, ts, sizeof(g->last));
	}
	if (strcmp(t->by, "user") == 0 && g != t->other && g->name[0] == '\0' &&
	    (user = e->s[EV_USER]) != NULL)
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
top_key(const struct ev *e, const char *by, char *buf, size_t len, uint64_t *n)
{
	const char *event = e->s[EV_EVENT], *s;
	bool smtp_view = strcmp(by, "sender") == 0 || strcmp(by, "script") == 0 ||
	    strcmp(by, "subject") == 0;

	if (event == NULL)
		return NULL;
	*n = 1;
	if (smtp_view) {
		if (strcmp(event, "smtp") != 0)
			return NULL;
		s = e->s[strcmp(by, "sender") == 0 ? EV_MAIL_FROM :
		    strcmp(by, "script") == 0 ? EV_PHP_SCRIPT : EV_SUBJECT];
		return s ? s : "(none)";
	}
	if (strcmp(event, "summary") == 0) {
		if (!e->has_n[EV_SUPPRESSED] || e->n[EV_SUPPRESSED] < 0)
			return NULL;
		*n = (uint64_t)e->n[EV_SUPPRESSED];
	} else if (strcmp(event, "attempt") != 0)
		return NULL;
	if (strcmp(by, "user") == 0) {
		if (!e->has_n[EV_UID])
			return "(unknown)";
		snprintf(buf, len, "%lld", e->n[EV_UID]);
		return buf;
	}
	if (strcmp(by, "process") == 0)
		return (s = e->s[EV_EXE]) ? s : "(unknown)";
	if (strcmp(by, "cwd") == 0)
		return (s = e->s[EV_CWD]) ? s : "(unknown)";
	return (s = e->s[EV_DST_IP]) ? s : "(unknown)";
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
		char dests[24];

		snprintf(dests, sizeof(dests), "%llu%s", (unsigned long long)g->ndests,
		    g->dests_capped ? "+" : "");
		printf("%9llu %6s  ", (unsigned long long)g->count, dests);
		if (t->mta)
			printf("%8llu %9llu  ", (unsigned long long)g->mta_msgs,
			    (unsigned long long)g->mta_rcpts);
		print_local_time(g->first[0] ? g->first : NULL);
		printf("  ");
		print_local_time(g->last[0] ? g->last : NULL);
		printf("  ");
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
	const struct filter	*f;
};

/* One local user's MTA volume into its --by user row (made if the guard never saw it). */
static void
merge_mta_user(const struct mta_user *u, void *arg)
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

int
review_top(const char *path, int argc, char **argv)
{
	struct filter f = { .uid = -1, .dst_port = -1 };
	struct top t = { 0 };
	struct reader r;
	struct group **rows = NULL;
	const char *by = "user";
	char **mta_logs;
	size_t nmta_logs = 0;
	bool json = false, mta = false, mta_failed = false;
	long limit = 10;
	struct ev e;
	json_t *owner;
	size_t n = 0;
	char keybuf[128], *end;
	int ch, rc;

	if ((mta_logs = calloc((size_t)argc + 1, sizeof(*mta_logs))) == NULL)
		return 1;
	rc = 2;
	optind = 0;	/* glibc: a full reset, as the tests call us repeatedly */
	while ((ch = getopt_long(argc, argv, "h", filter_options, NULL)) != -1) {
		int used = filter_option(ch, optarg, &f, "top");

		if (used < 0)
			goto err0;
		if (used == 1)
			continue;
		switch (ch) {
		case OPT_JSON:
			json = true;
			break;
		case OPT_MTA_LOG:
			mta_logs[nmta_logs++] = optarg;
			mta = true;
			break;
		case OPT_MTA:
			mta = true;
			break;
		case OPT_BY:
			by = NULL;
			for (size_t i = 0; i < sizeof(top_by) / sizeof(top_by[0]); i++)
				if (strcmp(optarg, top_by[i]) == 0)
					by = top_by[i];
			if (by == NULL) {
				fprintf(stderr, "smtpguard top: bad --by '%s' (user, process, dst, "
				    "cwd, sender, script, subject)\n", optarg);
				goto err0;
			}
			break;
		case OPT_LIMIT:
			limit = strtol(optarg, &end, 10);
			if (*end != '\0' || optarg[0] == '\0' || limit < 1) {
				fprintf(stderr, "smtpguard top: bad --limit '%s'\n", optarg);
				goto err0;
			}
			break;
		case OPT_HELP:
		case 'h':
			printf("usage: smtpguard top [--by KEY] [--limit N] [filters]\n"
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
			    "  --mta-log FILE that MTA log instead (repeatable; implies --mta)\n%s",
			    filter_help);
			rc = 0;
			goto err0;
		default:
			fprintf(stderr, "smtpguard top: see smtpguard top --help\n");
			goto err0;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "smtpguard top: unexpected argument '%s'\n", argv[optind]);
		goto err0;
	}
	if (mta && strcmp(by, "user") != 0) {
		fprintf(stderr, "smtpguard top: --mta goes with --by user (MTA logs name users, "
		    "not processes or scripts)\n");
		goto err0;
	}
	rc = 1;
	if (reader_open(&r, path) < 0) {
		fprintf(stderr, "smtpguard top: %s: %s\n", path, strerror(errno));
		goto err0;
	}
	t.by = by;
	t.mta = mta;
	if (htab_init(&t.groups) < 0)
		goto err1;
	if (htab_init(&t.pairs) < 0)
		goto err2;
	while (reader_next_ev(&r, &f, &e, &owner)) {
		const char *key;
		uint64_t count;
		struct group *g;

		if (matches(&f, &e) && (key = top_key(&e, by, keybuf, sizeof(keybuf),
		    &count)) != NULL && (g = top_group(&t, key)) != NULL)
			group_add(&t, g, count, &e);
		json_decref(owner);
	}
	if (ferror(r.fp)) {
		fprintf(stderr, "smtpguard top: %s: %s\n", path, strerror(errno));
		goto err3;
	}
	/* An MTA log that cannot be read fails the command, after the rest is shown. */
	if (mta && mta_user_volume(mta_logs, nmta_logs, f.since_t, f.until_t, merge_mta_user,
	    &(struct mta_merge){ &t, &f }) < 0)
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
		strlcpy_sg(rows[i]->label, group_label(rows[i], by), sizeof(rows[i]->label));
	qsort(rows, n, sizeof(*rows), cmp_groups);
	print_top(&t, rows, n, (size_t)limit, json);
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
	reader_close(&r, "top");
err0:
	free(mta_logs);
	return rc;
}
