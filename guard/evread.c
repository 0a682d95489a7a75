/*
 * evread.c — the event log as `log` and `top` read it: the files named on
 * the command line (a directory stands for the event files under it, as a
 * central rsyslog writes them per host); lines under a bound, each parsed by
 * jansson or, for top's hot loop, by a flat scanner that allocates nothing
 * over lines read in blocks and left where they lie;
 * the fields the filters and top look at; the filters (--user, --uid,
 * --action, --event, --dst, --origin, --host, and the time window, which is
 * compared as RFC 3339 strings so no date is parsed per line). An event
 * without a "host" field (a local file; only the collector adds it) is this
 * machine's. Lines that are not JSON objects are counted, never fatal. It
 * prints nothing: the commands (review_log.c, review_top.c) say what is wrong
 * and show what is found.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "smtpguard.h"

#define READ_BUF	(1 << 20)	/* stdio buffer: few read(2)s over a big log */

/* --- the fields the filters and top read ------------------------------------- */

/* The names of enum evread_field, in its order. */
static const char *const ev_names[EVREAD_NFIELDS] = { "ts", "event", "action", "user", "uid",
    "exe", "cwd", "dst_ip", "dst_port", "mail_from", "php_script", "subject", "suppressed",
    "origin", "domain", "rcpt_count", "host" };

#define HOST_NAME_LEN	64	/* HOST_NAME_MAX on Linux */

/*
 * The host of an event that does not name one: this machine, by its short
 * name, as rsyslog names a sender by default (%hostname%, without the domain).
 */
const char *
evread_local_host(void)
{
	static char host[HOST_NAME_LEN + 1];
	char *dot;

	if (host[0] == '\0') {
		if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
			strlcpy_sg(host, "localhost", sizeof(host));
		if ((dot = strchr(host, '.')) != NULL && dot != host)
			*dot = '\0';
	}
	return host;
}

void
evread_from_json(struct evread_event *e, json_t *o)
{
	for (int i = 0; i < EVREAD_NFIELDS; i++) {
		json_t *v = json_object_get(o, ev_names[i]);

		e->s[i] = json_string_value(v);
		e->has_n[i] = json_is_integer(v);
		e->n[i] = e->has_n[i] ? (long long)json_integer_value(v) : 0;
	}
	if (e->s[EVREAD_HOST] == NULL)
		e->s[EVREAD_HOST] = evread_local_host();
}

/*
 * The fast path of `top`: the daemon's lines are flat JSON objects of ASCII
 * strings and integers, and a full parse (jansson builds a hash table and
 * copies every string) is most of top's time. evread_flat_scan() validates the line
 * without allocating and keeps the fields above; anything it is not sure of
 * (\u escapes, bytes >= 0x80, reals, big integers, deep nesting) makes it
 * answer -1, and jansson decides that line as before.
 */
#define FLAT_DEPTH_MAX	16

#define SWAR_ONES	0x0101010101010101ULL	/* one in each byte of a word */
#define SWAR_LOW7	0x7f7f7f7f7f7f7f7fULL
#define SWAR_HIGH	0x8080808080808080ULL

/* The high bit of each byte of X that equals C (exact: no carry crosses bytes). */
static uint64_t
swar_eq(uint64_t x, unsigned char c)
{
	uint64_t y = x ^ (SWAR_ONES * c);

	return ~(((y & SWAR_LOW7) + SWAR_LOW7) | y) & SWAR_HIGH;
}

/*
 * The high bit of each byte of X that ends a plain run inside a string: a
 * quote, a backslash, a control character or a byte >= 0x80.
 */
static uint64_t
swar_special(uint64_t x)
{
	uint64_t ctl = ~((x & SWAR_LOW7) + SWAR_ONES * (0x80 - 0x20)) & SWAR_HIGH;

	return (x | ctl | swar_eq(x, '"') | swar_eq(x, '\\')) & SWAR_HIGH;
}

/* Inlined into the scanner's loop: a call per string was a third of its cost. */
#define FLAT_INLINE	static inline __attribute__((always_inline))

/*
 * The first byte of P..END that swar_special() marks (END if none): sixteen
 * at a time where SSE2 is (x86-64 always has it; a signed compare with 0x20
 * catches control characters and bytes >= 0x80 at once), then eight at a time.
 */

FLAT_INLINE const char *
flat_plain_run(const char *p, const char *end)
{
	uint64_t x, m;

#ifdef __SSE2__
	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i stop = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
		    _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
		    _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
		int bits = _mm_movemask_epi8(stop);

		if (bits != 0)
			return p + __builtin_ctz((unsigned)bits);
		p += 16;
	}
#endif
	while (end - p >= 8) {
		memcpy(&x, p, sizeof(x));
		if ((m = swar_special(x)) != 0) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			return p + (__builtin_ctzll(m) >> 3);
#else
			return p + (__builtin_clzll(m) >> 3);
#endif
		}
		p += 8;
	}
	while (p < end && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x80 && *p != '"' &&
	    *p != '\\')
		p++;
	return p;
}

FLAT_INLINE const char *
flat_ws(const char *p, const char *end)
{
	if (p < end && (unsigned char)*p > ' ')
		return p;	/* the daemon writes no whitespace: one test */
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Past a string's closing quote, or NULL; *escaped says whether it held escapes. */
FLAT_INLINE const char *
flat_string(const char *p, const char *end, bool *escaped)
{
	*escaped = false;
	for (p++; (p = flat_plain_run(p, end)) < end; p++) {
		if (*p == '"')
			return p + 1;
		if (*p != '\\')
			return NULL;	/* a control character or a byte >= 0x80 */
		if (++p >= end || strchr("\"\\/bfnrt", *p) == NULL || *p == '\0')
			return NULL;
		*escaped = true;
	}
	return NULL;
}

/* Past an integer, or NULL (reals and integers of 19+ digits are left to jansson). */
FLAT_INLINE const char *
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

/*
 * The field a key names (ev_names[]), or -1: its length and a letter or two
 * pick the one candidate, then one compare with a literal the compiler
 * unrolls. The fuzz target checks the result against jansson's lookup.
 */
#define EV_KEY(name, field)	(memcmp(k, name, sizeof(name) - 1) == 0 ? (field) : -1)

static int
ev_field_of(const char *k, size_t n)
{
	switch (n) {
	case 2:
		return EV_KEY("ts", EVREAD_TS);
	case 3:
		return k[0] == 'u' ? EV_KEY("uid", EVREAD_UID) : k[0] == 'e' ?
		    EV_KEY("exe", EVREAD_EXE) : EV_KEY("cwd", EVREAD_CWD);
	case 4:
		return k[0] == 'u' ? EV_KEY("user", EVREAD_USER) : EV_KEY("host", EVREAD_HOST);
	case 5:
		return EV_KEY("event", EVREAD_EVENT);
	case 6:
		return k[0] == 'a' ? EV_KEY("action", EVREAD_ACTION) : k[0] == 'o' ?
		    EV_KEY("origin", EVREAD_ORIGIN) : k[1] == 's' ? EV_KEY("dst_ip", EVREAD_DST_IP) :
		    EV_KEY("domain", EVREAD_DOMAIN);
	case 7:
		return EV_KEY("subject", EVREAD_SUBJECT);
	case 8:
		return EV_KEY("dst_port", EVREAD_DST_PORT);
	case 9:
		return EV_KEY("mail_from", EVREAD_MAIL_FROM);
	case 10:
		return k[0] == 'p' ? EV_KEY("php_script", EVREAD_PHP_SCRIPT) : k[0] == 's' ?
		    EV_KEY("suppressed", EVREAD_SUPPRESSED) : EV_KEY("rcpt_count", EVREAD_RCPT_COUNT);
	}
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
int
evread_flat_scan(char *line, size_t len, struct evread_event *e)
{
	const char *p = line, *end = line + len;
	char *str_start[EVREAD_NFIELDS], *str_close[EVREAD_NFIELDS];
	bool str_escaped[EVREAD_NFIELDS], escaped = false;

	memset(e, 0, sizeof(*e));
	memset(str_start, 0, sizeof(str_start));
	p = flat_ws(p, end);
	if (p >= end || *p != '{')
		return -1;
	p = flat_ws(p + 1, end);
	if (p < end && *p == '}') {
		e->s[EVREAD_HOST] = evread_local_host();
		return 0;
	}
	for (;;) {
		const char *k = p, *v;
		int field;

		/* a key with an escape is left to jansson, so its end is the first stop */
		if (p >= end || *p != '"' || (p = flat_plain_run(p + 1, end)) >= end || *p++ != '"')
			return -1;
		field = ev_field_of(k + 1, (size_t)(p - k - 2));
		if (p < end && *p == ':')
			p++;	/* as the daemon writes it: no whitespace to skip */
		else if ((p = flat_ws(p, end)) < end && *p == ':')
			p++;
		else
			return -1;
		v = p = flat_ws(p, end);
		if (p < end && *p == '"') {
			/* the common value, without flat_value()'s dispatch */
			if ((p = flat_string(p, end, &escaped)) == NULL)
				return -1;
		} else if (p < end && (*p == '-' || (*p >= '0' && *p <= '9'))) {
			/* an integer, validated as flat_integer() does and read in the same pass */
			bool neg = *p == '-';
			unsigned long long num = 0;	/* wraps past 18 digits, then refused */
			const char *d = p += neg;

			while (p < end && *p >= '0' && *p <= '9')
				num = num * 10 + (unsigned)(*p++ - '0');
			if (p == d || p - d > 18 || (*d == '0' && p - d > 1) ||
			    (p < end && (*p == '.' || *p == 'e' || *p == 'E')))
				return -1;
			if (field >= 0) {
				str_start[field] = NULL;
				e->has_n[field] = true;
				e->n[field] = neg ? -(long long)num : (long long)num;
				field = -1;	/* stored */
			}
		} else if ((p = flat_value(p, end, 1)) == NULL)
			return -1;
		if (field >= 0) {
			/* a repeated key: the last one counts, as in jansson */
			str_start[field] = NULL;
			e->has_n[field] = false;
			e->n[field] = 0;
			if (*v == '"') {
				str_start[field] = (char *)v + 1;
				str_close[field] = (char *)p - 1;
				str_escaped[field] = escaped;
			}
		}
		if (p < end && *p == ',') {
			p = flat_ws(p + 1, end);
			continue;
		}
		p = flat_ws(p, end);
		if (p < end && *p == '}')
			break;
		if (p >= end || *p != ',')
			return -1;
		p = flat_ws(p + 1, end);
	}
	/* Valid: only now is the line written to. What follows the object is ignored. */
	for (int i = 0; i < EVREAD_NFIELDS; i++) {
		if (str_start[i] == NULL)
			continue;
		if (str_escaped[i])
			e->s[i] = flat_unescape(str_start[i], str_close[i]);
		else {
			*str_close[i] = '\0';
			e->s[i] = str_start[i];
		}
	}
	if (e->s[EVREAD_HOST] == NULL)
		e->s[EVREAD_HOST] = evread_local_host();
	return 0;
}

/* --- filters ---------------------------------------------------------------- */

static bool
dst_matches(const struct evread_filter *f, const struct evread_event *e)
{
	const char *ip = e->s[EVREAD_DST_IP];
	uint8_t addr[16];
	int family;

	if (ip == NULL)
		return false;
	if (f->dst_port >= 0 && e->n[EVREAD_DST_PORT] != f->dst_port)
		return false;
	if (f->dst_is_net) {
		family = strchr(ip, ':') ? AF_INET6 : AF_INET;
		return inet_pton(family, ip, addr) == 1 &&
		    cidr_contains(&f->dst_net, family, addr);
	}
	return true;
}

bool
evread_matches(const struct evread_filter *f, const struct evread_event *e)
{
	const char *ts = e->s[EVREAD_TS], *s;

	if ((f->since[0] || f->until[0]) && ts == NULL)
		return false;
	if (f->since[0] && strcmp(ts, f->since) < 0)
		return false;
	if (f->until[0] && strcmp(ts, f->until) >= 0)
		return false;
	if (f->user && ((s = e->s[EVREAD_USER]) == NULL || strcmp(s, f->user) != 0))
		return false;
	if (f->uid >= 0 && (!e->has_n[EVREAD_UID] || e->n[EVREAD_UID] != f->uid))
		return false;
	if (f->action && ((s = e->s[EVREAD_ACTION]) == NULL || strcmp(s, f->action) != 0))
		return false;
	if (f->event && ((s = e->s[EVREAD_EVENT]) == NULL || strcmp(s, f->event) != 0))
		return false;
	if (f->dst && !dst_matches(f, e))
		return false;
	/* --origin names the origin or the sender domain it rolls up into */
	if (f->origin && ((s = e->s[EVREAD_ORIGIN]) == NULL || strcmp(s, f->origin) != 0) &&
	    ((s = e->s[EVREAD_DOMAIN]) == NULL || strcmp(s, f->origin) != 0))
		return false;
	if (f->host && strcmp(e->s[EVREAD_HOST] ? e->s[EVREAD_HOST] : "", f->host) != 0)
		return false;
	return true;
}

bool
evread_matches_json(const struct evread_filter *f, json_t *ev)
{
	struct evread_event e;

	evread_from_json(&e, ev);
	return evread_matches(f, &e);
}

/* "192.0.2.25", "192.0.2.0/24", "192.0.2.25:25", "[2001:db8::25]:25", ":25" */
static int
parse_dst(const char *s, struct evread_filter *f)
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

/* The --event names, as event.c writes them ("mail": the mail gate's, mailgate.c). */
static const char *const event_names[] = { "attempt", "smtp", "summary", "alert", "daemon",
    "mail" };
/* The mail gate's actions (maillimit.c), which --action takes beside the guard's. */
static const char *const mail_actions[] = { "pass", "hold", "defer", "reject" };

const char evread_filter_help[] =
    "  --since T      only events at or after T: 10m, 2h, 3d, 45s ago, or\n"
    "                 2026-11-22, 2026-11-22T10:00[:SS] (local time; add Z for UTC)\n"
    "  --until T      only events before T (same forms)\n"
    "  --user NAME    only this user      --uid N     only this uid\n"
    "  --action A     reject|trap|audit|allow; of mail events pass|hold|defer|reject\n"
    "  --event E      attempt|smtp|summary|alert|daemon|mail\n"
    "  --dst D        destination: 192.0.2.25, 192.0.2.0/24, 192.0.2.25:25,\n"
    "                 [2001:db8::25]:25 or :25\n"
    "  --origin O     mail events of this origin (sasl:LOGIN, user:NAME,\n"
    "                 client:ADDRESS, bounce) or sender domain (domain:NAME)\n"
    "  --host H       only events of host H (as the collector names it; events\n"
    "                 that name no host are this machine's)\n"
    "  --json         JSON lines instead of text\n";

/* A filter option (EVREAD_FILTER_OPTIONS) into the struct evread_filter CTX. */
int
evread_filter_option(void *ctx, int ch, const char *arg, char *err, size_t errlen)
{
	struct evread_filter *f = ctx;
	enum action a;
	char *end;

	switch (ch) {
	case EVREAD_OPT_USER:
		f->user = arg;
		return 1;
	case EVREAD_OPT_UID:
		f->uid = strtol(arg, &end, 10);
		if (*end != '\0' || arg[0] == '\0' || f->uid < 0) {
			snprintf(err, errlen, "bad uid '%s'", arg);
			return -1;
		}
		return 1;
	case EVREAD_OPT_ACTION:
		if (action_parse(arg, &a) == 0) {
			f->action = action_name(a);	/* as the daemon writes it */
			return 1;
		}
		for (size_t i = 0; i < sizeof(mail_actions) / sizeof(mail_actions[0]); i++)
			if (strcasecmp(arg, mail_actions[i]) == 0) {
				f->action = mail_actions[i];
				return 1;
			}
		snprintf(err, errlen, "bad action '%s' (reject, trap, audit, allow; pass, hold, "
		    "defer)", arg);
		return -1;
	case EVREAD_OPT_EVENT:
		f->event = cliopt_word(arg, event_names, sizeof(event_names) / sizeof(event_names[0]));
		if (f->event == NULL) {
			snprintf(err, errlen, "bad event '%s' (attempt, smtp, summary, alert, "
			    "daemon, mail)", arg);
			return -1;
		}
		return 1;
	case EVREAD_OPT_ORIGIN:
		f->origin = arg;
		return 1;
	case EVREAD_OPT_HOST:
		f->host = arg;
		return 1;
	case EVREAD_OPT_DST:
		if (parse_dst(arg, f) < 0) {
			snprintf(err, errlen, "bad destination '%s'", arg);
			return -1;
		}
		return 1;
	}
	return 0;
}

/* The time window of a parsed command line (cliopt.c), as the filter compares it. */
void
evread_filter_window(struct evread_filter *f, const struct cliopt *o)
{
	strlcpy_sg(f->since, o->since_ts, sizeof(f->since));
	strlcpy_sg(f->until, o->until_ts, sizeof(f->until));
}

/* An event's "ts" in local time as "2026-11-22 11:00:00", or "?" padded to the same width. */
const char *
evread_local_time(const char *ts, char *out, size_t len)
{
	struct tm tm;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (ts == NULL || strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm) == NULL) {
		snprintf(out, len, "%-19s", "?");
		return out;
	}
	t = timegm(&tm);
	strftime(out, len, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
	return out;
}

/* --- reading ---------------------------------------------------------------- */

int
evread_open(struct evread *r, const char *path)
{
	memset(r, 0, sizeof(*r));
	if ((r->fp = fopen(path, "re")) == NULL)
		return -1;
	setvbuf(r->fp, NULL, _IOFBF, READ_BUF);
	return 0;
}

/* Reads PATH from its start from now on (log --follow after a rotation); -1: keeps the old. */
int
evread_reopen(struct evread *r, const char *path)
{
	FILE *fp = fopen(path, "re");

	if (fp == NULL)
		return -1;
	fclose(r->fp);
	r->fp = fp;
	setvbuf(r->fp, NULL, _IOFBF, READ_BUF);
	return 0;
}

/*
 * Lines as the daemon writes them open with {"ts":"<27 characters>", and as
 * the collector writes them with {"host":"<name>","ts":"<27 characters>"
 * (conf/rsyslog-collector.conf): such a line outside --since/--until is
 * skipped without being parsed. Any other line is parsed and judged by
 * evread_matches().
 */
#define TS_PREFIX	"{\"ts\":\""
#define HOST_PREFIX	"{\"host\":\""
#define HOST_TS		"\",\"ts\":\""
#define TS_LEN		27	/* 2026-11-22T10:00:00.123456Z */

bool
evread_outside(const struct evread_filter *f, const char *line, size_t len)
{
	const char *ts = line + sizeof(TS_PREFIX) - 1, *close;

	if (!f->since[0] && !f->until[0])
		return false;
	if (len > sizeof(HOST_PREFIX) && memcmp(line, HOST_PREFIX, sizeof(HOST_PREFIX) - 1) == 0) {
		/* the host has no quote or backslash in it, or the line is parsed */
		close = memchr(line + sizeof(HOST_PREFIX) - 1, '"',
		    len - (sizeof(HOST_PREFIX) - 1) < HOST_NAME_LEN * 6 ?
		    len - (sizeof(HOST_PREFIX) - 1) : HOST_NAME_LEN * 6);
		if (close == NULL || memchr(line, '\\', (size_t)(close - line)) != NULL ||
		    (size_t)(line + len - close) < sizeof(HOST_TS) + TS_LEN ||
		    memcmp(close, HOST_TS, sizeof(HOST_TS) - 1) != 0)
			return false;
		ts = close + sizeof(HOST_TS) - 1;
	} else if (len < sizeof(TS_PREFIX) + TS_LEN ||
	    memcmp(line, TS_PREFIX, sizeof(TS_PREFIX) - 1) != 0)
		return false;
	if (ts[TS_LEN] != '"' || memchr(ts, '\\', TS_LEN) != NULL)
		return false;
	if (f->since[0] && strncmp(ts, f->since, TS_LEN) < 0)
		return true;
	return f->until[0] && strncmp(ts, f->until, TS_LEN) >= 0;
}

/* The next line worth parsing (within the time window), or -1 at EOF. */
static ssize_t
reader_line(struct evread *r, const struct evread_filter *f)
{
	ssize_t n;

	while ((n = getline(&r->line, &r->cap, r->fp)) > 0) {
		if (r->line[n - 1] != '\n') {
			/* A line still being written: leave it for the next read. */
			if (fseeko(r->fp, -n, SEEK_CUR) == 0)
				break;
		}
		if (n > EVREAD_LINE_MAX) {
			r->unreadable++;
			continue;
		}
		if (f != NULL && evread_outside(f, r->line, (size_t)n))
			continue;
		return n;
	}
	/* At EOF, forget it so --follow can read on; keep a read error for the caller. */
	if (!ferror(r->fp))
		clearerr(r->fp);
	return -1;
}

static json_t *
reader_parse(struct evread *r, const char *line, size_t n)
{
	json_error_t jerr;
	json_t *ev = json_loadb(line, n, JSON_DISABLE_EOF_CHECK, &jerr);

	if (ev == NULL || !json_is_object(ev)) {
		json_decref(ev);
		r->unreadable++;
		return NULL;
	}
	return ev;
}

/* Next event, or NULL at EOF. The JSON text stays in r->line. */
json_t *
evread_next(struct evread *r, const struct evread_filter *f, size_t *len)
{
	ssize_t n;
	json_t *ev;

	while ((n = reader_line(r, f)) > 0)
		if ((ev = reader_parse(r, r->line, (size_t)n)) != NULL) {
			*len = (size_t)n;
			return ev;
		}
	return NULL;
}

/*
 * The lines of top's one pass, read in blocks and left where they lie (no
 * copy per line, as getline() makes): the next whole line within the time
 * window, or NULL at EOF or a read error (ferror(r->fp) tells). The lines
 * are those reader_line() would give: one longer than EVREAD_LINE_MAX is
 * skipped and counted, and a last line without its newline (still being
 * written) is not read, unless the file cannot seek (a pipe), where
 * reader_line() takes it as it is. The buffer holds a block and the longest
 * line, never more.
 */
#define BLOCK_READ	(1 << 20)
#define BLOCK_CAP	(BLOCK_READ + EVREAD_LINE_MAX)

static char *
block_line(struct evread *r, const struct evread_filter *f, size_t *len)
{
	bool skipping = false;	/* inside a line too long to keep: until its newline */

	if (r->blk == NULL && (r->blk = malloc(BLOCK_CAP)) == NULL) {
		r->blk_err = true;
		return NULL;
	}
	for (;;) {
		char *line = r->blk + r->blk_at;
		size_t avail = r->blk_len - r->blk_at, got;
		char *nl = memchr(line, '\n', avail);

		if (nl != NULL) {
			size_t n = (size_t)(nl - line) + 1;

			r->blk_at += n;
			if (skipping || n > EVREAD_LINE_MAX) {
				skipping = false;
				r->unreadable++;
				continue;
			}
			if (f != NULL && evread_outside(f, line, n))
				continue;
			*len = n;
			return line;
		}
		if (avail > EVREAD_LINE_MAX) {
			skipping = true;
			r->blk_at = r->blk_len;	/* what is kept of it: nothing */
			avail = 0;
		}
		memmove(r->blk, line, avail);
		r->blk_at = 0;
		r->blk_len = avail;
		if ((got = fread(r->blk + avail, 1, BLOCK_CAP - avail, r->fp)) == 0)
			break;
		r->blk_len += got;
	}
	/* EOF or a read error: a partial last line is the writer's, on a file that seeks */
	if (ferror(r->fp) || (r->blk_len == 0 && !skipping) ||
	    lseek(fileno(r->fp), 0, SEEK_CUR) >= 0)
		return NULL;
	*len = r->blk_len;
	r->blk_at = r->blk_len;
	if (skipping || *len > EVREAD_LINE_MAX) {
		r->unreadable++;
		return NULL;
	}
	return f != NULL && evread_outside(f, r->blk, *len) ? NULL : r->blk;
}

/*
 * Next event as its fields, false at EOF: by evread_flat_scan() when it can (the
 * strings then live in r's buffer), else by jansson (*owner then holds them;
 * the caller drops it).
 */
bool
evread_next_event(struct evread *r, const struct evread_filter *f, struct evread_event *e,
    json_t **owner)
{
	char *line;
	size_t n;

	*owner = NULL;
	while ((line = block_line(r, f, &n)) != NULL) {
		if (evread_flat_scan(line, n, e) == 0)
			return true;
		if ((*owner = reader_parse(r, line, n)) != NULL) {
			evread_from_json(e, *owner);
			return true;
		}
	}
	return false;
}

/* The caller says how many lines were unreadable (r->unreadable) before or after. */
void
evread_close(struct evread *r)
{
	if (r->fp != NULL)
		fclose(r->fp);
	free(r->line);
	free(r->blk);
}

/* --- the files to read ------------------------------------------------------ */

#define FILES_MAX	100000	/* event files of one command line: a fleet's, rotated */
#define DIR_DEPTH_MAX	4	/* hosts/<host>/events.jsonl is two deep */

/* events.jsonl, and its rotations as logrotate names them (events.jsonl.1), not .gz */
static bool
is_event_file(const char *name)
{
	const char *j = strstr(name, ".jsonl");

	if (name[0] == '.' || j == NULL)
		return false;
	j += strlen(".jsonl");
	if (*j == '\0')
		return true;
	if (*j++ != '.' || *j == '\0')
		return false;
	return strspn(j, "0123456789") == strlen(j);
}

static int
files_add(struct evread_files *fl, const char *path)
{
	char **grown;

	if (fl->n >= FILES_MAX) {
		errno = E2BIG;
		return -1;
	}
	if (fl->n == fl->cap) {
		size_t cap = fl->cap ? fl->cap * 2 : 16;

		if ((grown = realloc(fl->paths, cap * sizeof(*grown))) == NULL)
			return -1;
		fl->paths = grown;
		fl->cap = cap;
	}
	if ((fl->paths[fl->n] = strdup(path)) == NULL)
		return -1;
	fl->n++;
	return 0;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The event files under DIR, in name order, each subdirectory in its place. */
static int
files_walk(struct evread_files *fl, const char *dir, int depth, char *err, size_t errlen)
{
	struct dirent **ents = NULL;
	char path[PATH_MAX];
	struct stat st;
	int n, rc = 0;

	if ((n = scandir(dir, &ents, NULL, alphasort)) < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n && rc == 0; i++) {
		const char *name = ents[i]->d_name;

		if (name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
			snprintf(err, errlen, "%s/%s: path too long", dir, name);
			rc = -1;
		} else if (stat(path, &st) < 0)
			continue;	/* gone since the listing, or a dangling link */
		else if (S_ISDIR(st.st_mode) && depth < DIR_DEPTH_MAX)
			rc = files_walk(fl, path, depth + 1, err, errlen);
		else if (S_ISREG(st.st_mode) && is_event_file(name) && files_add(fl, path) < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			rc = -1;
		}
	}
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	return rc;
}

/*
 * The files the NARGS ARGS name (DEFLT if none): a file as it is, a directory
 * as the event files under it (*.jsonl and *.jsonl.N, a few levels deep).
 * A path that cannot be read, or a directory without event files, is an error.
 */
int
evread_files_expand(struct evread_files *fl, char *const *args, size_t nargs, const char *deflt,
    char *err, size_t errlen)
{
	char *const one[] = { (char *)deflt };
	struct stat st;
	size_t before;

	memset(fl, 0, sizeof(*fl));
	if (nargs == 0) {
		args = one;
		nargs = 1;
	}
	for (size_t i = 0; i < nargs; i++) {
		if (stat(args[i], &st) < 0) {
			snprintf(err, errlen, "%s: %s", args[i], strerror(errno));
			goto err;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (files_add(fl, args[i]) < 0) {
				snprintf(err, errlen, "%s: %s", args[i], strerror(errno));
				goto err;
			}
			continue;
		}
		before = fl->n;
		if (files_walk(fl, args[i], 1, err, errlen) < 0)
			goto err;
		if (fl->n == before) {
			snprintf(err, errlen, "%s: no event files (*.jsonl) in it", args[i]);
			goto err;
		}
		qsort(fl->paths + before, fl->n - before, sizeof(*fl->paths), cmp_names);
	}
	return 0;
err:
	evread_files_free(fl);
	return -1;
}

void
evread_files_free(struct evread_files *fl)
{
	for (size_t i = 0; i < fl->n; i++)
		free(fl->paths[i]);
	free(fl->paths);
	memset(fl, 0, sizeof(*fl));
}
