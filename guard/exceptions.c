/*
 * exceptions.c — who may send SMTP besides the MTA. One exception per line,
 * in exceptions.conf and on the control socket alike:
 *
 *   allow WHO [to=CIDR,...] [port=N,...] [audit|redirect] [cap=N/hour] [comment="..."]
 *   limit ORIGIN N/hour [comment="..."]
 *
 * (limit lines are the mail gate's, parsed and written by maillimit.c; they
 * are kept here, in file order after the allow lines, so one file and one
 * atomic save serve both.)
 *
 * WHO is a user name, a numeric uid or @group (its listed members and the
 * users whose primary group it is), resolved through passwd/group files given
 * by path; it is kept as written for display and revoke. An exception with no
 * narrowing is "plain": its uids go into the kernel set. The comment is
 * double-quoted, with \" and \\ as its only escapes, valid UTF-8 and no
 * control characters. The file is replaced atomically (temp file, fsync,
 * rename, fsync of the directory). Pure: never logs, never exits; errors are
 * printable ASCII sentences in err (with FILE:LINE when loading), so they
 * travel safely in a JSON reply and on a terminal. It stays one room past
 * 600 lines because the line grammar, its writer and the atomic file update
 * must agree byte for byte (a line written out parses back to the same
 * exception or limit), so they are read and changed together.
 *
 * A file that configuration management owns (Ansible, Salt, ...) says so in
 * a comment above its first rule: "# managed by NAME", Ansible's
 * "# Ansible managed" ({{ ansible_managed }}) or "# This file is managed by
 * NAME". Such a file is loaded as any other, but never written:
 * exceptions_save refuses, naming the file and the marker's line, so the CLI
 * never fights the tool that deploys it (that tool's copy wins at its next
 * run); the admin changes its source and runs `smtpguard reload`.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smtpguard.h"

#define BLANKS		" \t"
#define DIGITS		"0123456789"

static bool
all_digits(const char *s)
{
	return s[0] != '\0' && s[strspn(s, DIGITS)] == '\0';
}

static bool
valid_who(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= EXCEPTION_WHO_MAX || (s[0] == '@' && n == 1))
		return false;
	for (size_t i = s[0] == '@'; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || strchr("._-$", s[i]) != NULL))
			return false;
	return true;
}

int
exception_check_comment(const char *s, char *err, size_t errlen)
{
	if (strlen(s) > EXCEPTION_COMMENT_MAX) {
		snprintf(err, errlen, "comment longer than %d bytes", EXCEPTION_COMMENT_MAX);
		return -1;
	}
	for (const char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			snprintf(err, errlen, "comment holds a control character (a newline, "
			    "tab, ...): keep it to one line of text");
			return -1;
		}
	if (!utf8_valid((const unsigned char *)s)) {
		snprintf(err, errlen, "comment is not valid UTF-8");
		return -1;
	}
	return 0;
}

static int
add_uid(struct exception *x, uid_t uid)
{
	for (size_t i = 0; i < x->nuids; i++)
		if (x->uids[i] == uid)
			return 0;
	if (x->nuids == EXCEPTION_UIDS_MAX)
		return -1;
	x->uids[x->nuids++] = uid;
	return 0;
}

static int
resolve_user(struct exception *x, const char *passwd, char *err, size_t errlen)
{
	struct passwd *pw;
	FILE *fp;
	int found = 0;

	if ((fp = fopen(passwd, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", passwd, strerror(errno));
		return -1;
	}
	while (!found && (pw = fgetpwent(fp)) != NULL)
		if (strcmp(pw->pw_name, x->who) == 0) {
			found = 1;
			(void)add_uid(x, pw->pw_uid);
		}
	fclose(fp);
	if (!found) {
		snprintf(err, errlen, "unknown user '%s' (not in %s)", x->who, passwd);
		return -1;
	}
	return 0;
}

/* @group: its listed members plus every user whose primary group it is. */
static int
resolve_group(struct exception *x, const char *passwd, const char *group, char *err,
    size_t errlen)
{
	char members[EXCEPTION_UIDS_MAX][USER_NAME_MAX];
	size_t nmembers = 0;
	const char *name = x->who + 1;
	struct passwd *pw;
	struct group *gr;
	FILE *fp;
	gid_t gid = 0;
	int found = 0, rc = -1;

	if ((fp = fopen(group, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", group, strerror(errno));
		return -1;
	}
	while (!found && (gr = fgetgrent(fp)) != NULL) {
		if (strcmp(gr->gr_name, name) != 0)
			continue;
		found = 1;
		gid = gr->gr_gid;
		for (char **m = gr->gr_mem; *m != NULL; m++) {
			if (nmembers == EXCEPTION_UIDS_MAX ||
			    strlen(*m) >= USER_NAME_MAX) {
				fclose(fp);
				snprintf(err, errlen, "group '%s' has more than %d members "
				    "or a member name longer than %d bytes", name,
				    EXCEPTION_UIDS_MAX, USER_NAME_MAX - 1);
				return -1;
			}
			strlcpy_sg(members[nmembers++], *m, USER_NAME_MAX);
		}
	}
	fclose(fp);
	if (!found) {
		snprintf(err, errlen, "unknown group '%s' (not in %s)", name, group);
		return -1;
	}
	if ((fp = fopen(passwd, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", passwd, strerror(errno));
		return -1;
	}
	while ((pw = fgetpwent(fp)) != NULL) {
		bool member = pw->pw_gid == gid;

		for (size_t i = 0; !member && i < nmembers; i++)
			member = strcmp(members[i], pw->pw_name) == 0;
		if (member && add_uid(x, pw->pw_uid) < 0) {
			snprintf(err, errlen, "group '%s' has more than %d users", name,
			    EXCEPTION_UIDS_MAX);
			goto out;
		}
	}
	if (x->nuids == 0) {
		snprintf(err, errlen, "group '%s' has no users in %s", name, passwd);
		goto out;
	}
	rc = 0;
out:
	fclose(fp);
	return rc;
}

static int
resolve_who(struct exception *x, const char *passwd, const char *group, char *err,
    size_t errlen)
{
	if (all_digits(x->who)) {
		char *end;
		unsigned long n;

		errno = 0;
		n = strtoul(x->who, &end, 10);
		/* (uid_t)-1 means "no uid" to the kernel and to chown(2). */
		if (errno != 0 || n >= (uid_t)-1) {
			snprintf(err, errlen, "uid %s is out of range", x->who);
			return -1;
		}
		return add_uid(x, (uid_t)n);
	}
	if (x->who[0] == '@')
		return resolve_group(x, passwd, group, err, errlen);
	return resolve_user(x, passwd, err, errlen);
}

static int
add_cidr(struct exception *x, const char *s, char *err, size_t errlen)
{
	char q[ERR_QUOTE_MAX + 4];
	struct cidr c;

	if (cidr_parse(s, &c) < 0) {
		snprintf(err, errlen, "bad destination '%s' (an IPv4 or IPv6 address or "
		    "network such as 192.0.2.0/24 or 2001:db8::/32, host bits clear)",
		    err_quote(s, q, sizeof(q)));
		return -1;
	}
	for (size_t i = 0; i < x->nto; i++)
		if (memcmp(&x->to[i], &c, sizeof(c)) == 0) {
			snprintf(err, errlen, "destination '%s' given twice",
			    err_quote(s, q, sizeof(q)));
			return -1;
		}
	if (x->nto == EXCEPTION_CIDRS_MAX) {
		snprintf(err, errlen, "more than %d destinations", EXCEPTION_CIDRS_MAX);
		return -1;
	}
	x->to[x->nto++] = c;
	return 0;
}

static int
add_port(struct exception *x, const char *s, char *err, size_t errlen)
{
	char q[ERR_QUOTE_MAX + 4], *end;
	unsigned long p;

	errno = 0;
	p = all_digits(s) ? strtoul(s, &end, 10) : 0;
	if (errno != 0 || p < 1 || p > 65535) {
		snprintf(err, errlen, "bad port '%s' (1-65535)", err_quote(s, q, sizeof(q)));
		return -1;
	}
	for (size_t i = 0; i < x->nports; i++)
		if (x->ports[i] == p) {
			snprintf(err, errlen, "port %lu given twice", p);
			return -1;
		}
	if (x->nports == EXCEPTION_PORTS_MAX) {
		snprintf(err, errlen, "more than %d ports", EXCEPTION_PORTS_MAX);
		return -1;
	}
	x->ports[x->nports++] = (uint16_t)p;
	return 0;
}

/* "a,b,c": every item non-empty (a stray comma is a typo, not "any"). */
static int
parse_list(const char *v, bool cidrs, struct exception *x, char *err, size_t errlen)
{
	char item[EXCEPTION_LINE_MAX];
	const char *what = cidrs ? "to" : "port";

	for (;;) {
		size_t n = strcspn(v, ",");

		if (n == 0) {
			snprintf(err, errlen, "empty item in the %s list", what);
			return -1;
		}
		if (n >= sizeof(item)) {
			snprintf(err, errlen, "%s list too long", what);
			return -1;
		}
		memcpy(item, v, n);
		item[n] = '\0';
		if ((cidrs ? add_cidr(x, item, err, errlen) : add_port(x, item, err, errlen)) < 0)
			return -1;
		if (v[n] == '\0')
			return 0;
		v += n + 1;
	}
}

static int
parse_cap(const char *v, unsigned int *cap, char *err, size_t errlen)
{
	char q[ERR_QUOTE_MAX + 4], *end = NULL;
	unsigned long n = 0;

	errno = 0;
	if (v[0] >= '0' && v[0] <= '9')
		n = strtoul(v, &end, 10);
	if (end == NULL || errno != 0 || strcmp(end, "/hour") != 0 || n < 1 ||
	    n > EXCEPTION_CAP_MAX) {
		snprintf(err, errlen, "bad cap '%s' (N/hour, N from 1 to %d)",
		    err_quote(v, q, sizeof(q)), EXCEPTION_CAP_MAX);
		return -1;
	}
	*cap = (unsigned int)n;
	return 0;
}

/*
 * The quoted value after "comment=" (P points at its opening quote) into OUT
 * (OUTLEN bytes, EXCEPTION_COMMENT_MAX + 1 is enough); returns what follows
 * the closing quote. The allow and limit lines share it, and
 * exception_comment_format, so a comment reads back as it was written.
 */
const char *
exception_comment_parse(const char *p, char *out, size_t outlen, char *err, size_t errlen)
{
	char raw[EXCEPTION_LINE_MAX];
	size_t n = 0;

	if (*p++ != '"') {
		snprintf(err, errlen, "comment must be in double quotes: comment=\"...\"");
		return NULL;
	}
	for (; *p != '"'; p++) {
		if (*p == '\0') {
			snprintf(err, errlen, "comment has no closing quote");
			return NULL;
		}
		if (*p == '\\') {
			if (p[1] != '"' && p[1] != '\\') {
				snprintf(err, errlen, "comment: only \\\" and \\\\ may follow "
				    "a backslash");
				return NULL;
			}
			p++;
		}
		if (n == sizeof(raw) - 1) {
			snprintf(err, errlen, "comment longer than %d bytes",
			    EXCEPTION_COMMENT_MAX);
			return NULL;
		}
		raw[n++] = *p;
	}
	raw[n] = '\0';
	if (exception_check_comment(raw, err, errlen) < 0)
		return NULL;
	strlcpy_sg(out, raw, outlen);
	return p + 1;
}

/*
 * Appends ' comment="..."' (\" and \\ escaped) to BUF at *OFF, nothing for an
 * empty comment; -1 + ENOSPC when it does not fit.
 */
int
exception_comment_format(const char *comment, char *buf, size_t len, size_t *off)
{
	size_t o = *off;

#define PUT(...) do { \
	int w_ = snprintf(buf + o, len - o, __VA_ARGS__); \
	if (w_ < 0 || (size_t)w_ >= len - o) { errno = ENOSPC; return -1; } \
	o += (size_t)w_; } while (0)

	if (comment[0] == '\0')
		return 0;
	if (o >= len) {
		errno = ENOSPC;
		return -1;
	}
	PUT(" comment=\"");
	for (const char *p = comment; *p != '\0'; p++)
		PUT("%s%c", *p == '"' || *p == '\\' ? "\\" : "", *p);
	PUT("\"");
#undef PUT
	*off = o;
	return 0;
}

/* The next blank-separated word into word; returns what follows it. */
static const char *
next_word(const char *p, char *word)
{
	size_t n;

	p += strspn(p, BLANKS);
	n = strcspn(p, BLANKS);
	memcpy(word, p, n);
	word[n] = '\0';
	return p + n;
}

enum option { OPT_TO, OPT_PORT, OPT_CAP, OPT_AUDIT, OPT_REDIRECT, OPT_COUNT };

/*
 * One of to=, port=, cap=, audit, redirect; each at most once (seen: a bit
 * per option), and audit or redirect, not both: a flow is inspected on its
 * way to the mx or sent to the local MTA instead.
 */
static int
parse_option(const char *word, struct exception *x, unsigned int *seen, char *err,
    size_t errlen)
{
	static const char *const names[OPT_COUNT] = { "to", "port", "cap", "audit",
	    "redirect" };
	const char *eq = strchr(word, '=');
	size_t n = eq != NULL ? (size_t)(eq - word) : strlen(word);
	char q[ERR_QUOTE_MAX + 4];
	int o;

	for (o = 0; o < OPT_COUNT; o++)
		if (strlen(names[o]) == n && strncmp(word, names[o], n) == 0)
			break;
	if (o == OPT_COUNT || (o == OPT_AUDIT || o == OPT_REDIRECT) != (eq == NULL)) {
		snprintf(err, errlen, "unknown option '%s' (to=, port=, audit, redirect, cap=, "
		    "comment=)", err_quote(word, q, sizeof(q)));
		return -1;
	}
	if (*seen & 1u << o) {
		snprintf(err, errlen, "'%s' given twice", names[o]);
		return -1;
	}
	if ((o == OPT_AUDIT && (*seen & 1u << OPT_REDIRECT)) ||
	    (o == OPT_REDIRECT && (*seen & 1u << OPT_AUDIT))) {
		snprintf(err, errlen, "'audit' and 'redirect' exclude each other");
		return -1;
	}
	*seen |= 1u << o;
	switch (o) {
	case OPT_TO:
		return parse_list(eq + 1, true, x, err, errlen);
	case OPT_PORT:
		return parse_list(eq + 1, false, x, err, errlen);
	case OPT_CAP:
		return parse_cap(eq + 1, &x->cap_per_hour, err, errlen);
	case OPT_REDIRECT:
		x->redirect = true;
		return 0;
	default:
		x->audit = true;
		return 0;
	}
}

int
exception_parse(const char *line, const char *passwd, const char *group,
    struct exception *x, char *err, size_t errlen)
{
	char word[EXCEPTION_LINE_MAX], q[ERR_QUOTE_MAX + 4];
	const char *p;
	unsigned int seen = 0;
	bool seen_comment = false;

	memset(x, 0, sizeof(*x));
	if (strlen(line) >= EXCEPTION_LINE_MAX) {
		snprintf(err, errlen, "line longer than %d bytes", EXCEPTION_LINE_MAX - 1);
		return -1;
	}
	p = next_word(line, word);
	if (strcmp(word, "allow") != 0) {
		snprintf(err, errlen, "expected 'allow USER|UID|@GROUP [options]', got '%s'",
		    err_quote(word, q, sizeof(q)));
		return -1;
	}
	p = next_word(p, word);
	if (!valid_who(word)) {
		snprintf(err, errlen, word[0] == '\0' ? "allow whom? (USER, UID or @GROUP)" :
		    "'%s' is not a user name, uid or @group",
		    err_quote(word, q, sizeof(q)));
		return -1;
	}
	strlcpy_sg(x->who, word, sizeof(x->who));
	for (;;) {
		p += strspn(p, BLANKS);
		if (*p == '\0')
			break;
		if (strncmp(p, "comment=", 8) == 0) {
			if (seen_comment) {
				snprintf(err, errlen, "'comment' given twice");
				return -1;
			}
			seen_comment = true;
			if ((p = exception_comment_parse(p + 8, x->comment, sizeof(x->comment),
			    err, errlen)) == NULL)
				return -1;
			if (*p != '\0' && strchr(BLANKS, *p) == NULL) {
				snprintf(err, errlen, "text right after the comment's closing "
				    "quote");
				return -1;
			}
			continue;
		}
		p = next_word(p, word);
		if (parse_option(word, x, &seen, err, errlen) < 0)
			return -1;
	}
	/*
	 * Written out, "192.0.2.1" gains "/32" and "::ffff:0:1" becomes
	 * "::ffff:0.0.0.1": what is accepted must also fit when saved.
	 */
	if (exception_format(x, word, sizeof(word)) < 0) {
		snprintf(err, errlen, "line longer than %d bytes once written out",
		    EXCEPTION_LINE_MAX - 1);
		return -1;
	}
	return resolve_who(x, passwd, group, err, errlen);
}

bool
exception_is_plain(const struct exception *x)
{
	return x->nto == 0 && x->nports == 0 && x->cap_per_hour == 0 && !x->audit &&
	    !x->redirect;
}

int
exception_format(const struct exception *x, char *buf, size_t len)
{
	size_t off = 0;
	char c[INET6_ADDRSTRLEN + 8];

#define PUT(...) do { \
	int w_ = snprintf(buf + off, len - off, __VA_ARGS__); \
	if (w_ < 0 || (size_t)w_ >= len - off) { errno = ENOSPC; return -1; } \
	off += (size_t)w_; } while (0)

	if (len == 0) {
		errno = ENOSPC;
		return -1;
	}
	PUT("allow %s", x->who);
	for (size_t i = 0; i < x->nto; i++) {
		cidr_format(&x->to[i], c, sizeof(c));
		PUT("%s%s", i ? "," : " to=", c);
	}
	for (size_t i = 0; i < x->nports; i++)
		PUT("%s%u", i ? "," : " port=", x->ports[i]);
	if (x->audit)
		PUT(" audit");
	if (x->redirect)
		PUT(" redirect");
	if (x->cap_per_hour)
		PUT(" cap=%u/hour", x->cap_per_hour);
#undef PUT
	if (exception_comment_format(x->comment, buf, len, &off) < 0)
		return -1;
	return (int)off;
}

int
exception_from_argv(int argc, char **argv, char *line, size_t len, char *err, size_t errlen)
{
	struct exception x = { 0 };
	const char *to = NULL, *port = NULL, *cap = NULL, *comment = NULL;
	char q[ERR_QUOTE_MAX + 4];

	if (argc < 2 || argv[1][0] == '-') {
		snprintf(err, errlen, "usage: smtpguard allow USER|UID|@GROUP [--to CIDR,...] "
		    "[--port N,...] [--audit|--redirect] [--cap N/hour] [--comment TEXT]");
		return -1;
	}
	if (!valid_who(argv[1])) {
		snprintf(err, errlen, "'%s' is not a user name, uid or @group",
		    err_quote(argv[1], q, sizeof(q)));
		return -1;
	}
	strlcpy_sg(x.who, argv[1], sizeof(x.who));
	for (int i = 2; i < argc; i++) {
		const char **slot = NULL;

		if (strcmp(argv[i], "--audit") == 0 || strcmp(argv[i], "--redirect") == 0) {
			bool *flag = argv[i][2] == 'a' ? &x.audit : &x.redirect;

			if (*flag) {
				snprintf(err, errlen, "'%s' given twice", argv[i]);
				return -1;
			}
			if (x.audit || x.redirect) {
				snprintf(err, errlen, "'--audit' and '--redirect' exclude each other");
				return -1;
			}
			*flag = true;
			continue;
		}
		if (strcmp(argv[i], "--to") == 0)
			slot = &to;
		else if (strcmp(argv[i], "--port") == 0)
			slot = &port;
		else if (strcmp(argv[i], "--cap") == 0)
			slot = &cap;
		else if (strcmp(argv[i], "--comment") == 0)
			slot = &comment;
		if (slot == NULL) {
			snprintf(err, errlen, "unknown option '%s' (--to, --port, --audit, "
			    "--redirect, --cap, --comment)", err_quote(argv[i], q, sizeof(q)));
			return -1;
		}
		if (i + 1 == argc || *slot != NULL) {
			snprintf(err, errlen, "'%s' needs one value, given once", argv[i]);
			return -1;
		}
		*slot = argv[++i];
	}
	if ((to != NULL && parse_list(to, true, &x, err, errlen) < 0) ||
	    (port != NULL && parse_list(port, false, &x, err, errlen) < 0) ||
	    (cap != NULL && parse_cap(cap, &x.cap_per_hour, err, errlen) < 0) ||
	    (comment != NULL && exception_check_comment(comment, err, errlen) < 0))
		return -1;
	if (comment != NULL)
		strlcpy_sg(x.comment, comment, sizeof(x.comment));
	if (exception_format(&x, line, len) < 0 || strlen(line) >= EXCEPTION_LINE_MAX) {
		snprintf(err, errlen, "exception longer than %d bytes", EXCEPTION_LINE_MAX - 1);
		return -1;
	}
	return 0;
}

void
exceptions_free(struct exceptions *xs)
{
	free(xs->v);
	xs->v = NULL;
	xs->n = 0;
	free(xs->limits);
	xs->limits = NULL;
	xs->nlimits = 0;
}

/* A second limit for the same origin would be ambiguous: refused. */
int
exceptions_add_limit(struct exceptions *xs, const struct mail_limit_rule *r, char *err,
    size_t errlen)
{
	struct mail_limit_rule *grown;

	for (size_t i = 0; i < xs->nlimits; i++)
		if (strcmp(xs->limits[i].origin, r->origin) == 0) {
			snprintf(err, errlen, "%s already has a limit (%lu/hour); unlimit it "
			    "first to change it", r->origin, (unsigned long)xs->limits[i].per_hour);
			return -1;
		}
	if (xs->nlimits == MAILLIMIT_RULES_MAX) {
		snprintf(err, errlen, "more than %d limits", MAILLIMIT_RULES_MAX);
		return -1;
	}
	if ((grown = realloc(xs->limits, (xs->nlimits + 1) * sizeof(*grown))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	xs->limits = grown;
	xs->limits[xs->nlimits++] = *r;
	return 0;
}

int
exceptions_remove_limit(struct exceptions *xs, const char *origin, char *err, size_t errlen)
{
	char q[ERR_QUOTE_MAX + 4];

	for (size_t i = 0; i < xs->nlimits; i++)
		if (strcmp(xs->limits[i].origin, origin) == 0) {
			memmove(&xs->limits[i], &xs->limits[i + 1],
			    (xs->nlimits - i - 1) * sizeof(*xs->limits));
			xs->nlimits--;
			return 0;
		}
	snprintf(err, errlen, "no limit for '%s'", err_quote(origin, q, sizeof(q)));
	return -1;
}

int
exceptions_copy(struct exceptions *dst, const struct exceptions *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src->nlimits > 0) {
		if ((dst->limits = calloc(src->nlimits, sizeof(*dst->limits))) == NULL)
			return -1;
		memcpy(dst->limits, src->limits, src->nlimits * sizeof(*dst->limits));
		dst->nlimits = src->nlimits;
	}
	if (src->n == 0)
		return 0;
	if ((dst->v = calloc(src->n, sizeof(*dst->v))) == NULL) {
		exceptions_free(dst);
		return -1;
	}
	memcpy(dst->v, src->v, src->n * sizeof(*dst->v));
	dst->n = src->n;
	return 0;
}

static bool
same_narrowing(const struct exception *a, const struct exception *b)
{
	return a->nto == b->nto && a->nports == b->nports && a->audit == b->audit &&
	    a->redirect == b->redirect &&
	    a->cap_per_hour == b->cap_per_hour &&
	    memcmp(a->to, b->to, a->nto * sizeof(a->to[0])) == 0 &&
	    memcmp(a->ports, b->ports, a->nports * sizeof(a->ports[0])) == 0;
}

static int
check_conflict(const struct exception *o, const struct exception *x, char *err,
    size_t errlen)
{
	char line[EXCEPTION_LINE_MAX];

	if (exception_format(o, line, sizeof(line)) < 0)
		strlcpy_sg(line, o->who, sizeof(line));
	if (strcmp(o->who, x->who) == 0) {
		if (same_narrowing(o, x))
			snprintf(err, errlen, "%s is already allowed", x->who);
		else
			snprintf(err, errlen, "%s already has an exception (%s); revoke it "
			    "first to change it", x->who, line);
		return -1;
	}
	/*
	 * A plain exception is decided in the kernel, so a narrowed one for the
	 * same uid would never be consulted: the two cannot both stand.
	 */
	if (!exception_is_plain(o) && !exception_is_plain(x))
		return 0;
	for (size_t a = 0; a < o->nuids; a++)
		for (size_t b = 0; b < x->nuids; b++) {
			if (o->uids[a] != x->uids[b])
				continue;
			snprintf(err, errlen, "conflicts with '%s': uid %lu %s", line,
			    (unsigned long)x->uids[b], exception_is_plain(o) ?
			    (exception_is_plain(x) ? "is already allowed everywhere" :
			    "is already allowed everywhere, so this narrowing would never "
			    "apply") : "would be allowed everywhere, making that narrowed "
			    "exception moot");
			return -1;
		}
	return 0;
}

int
exceptions_add(struct exceptions *xs, const struct exception *x, char *err, size_t errlen)
{
	struct exception *grown;

	for (size_t i = 0; i < xs->n; i++)
		if (check_conflict(&xs->v[i], x, err, errlen) < 0)
			return -1;
	if (xs->n == EXCEPTIONS_MAX) {
		snprintf(err, errlen, "more than %d exceptions", EXCEPTIONS_MAX);
		return -1;
	}
	if ((grown = realloc(xs->v, (xs->n + 1) * sizeof(*xs->v))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	xs->v = grown;
	xs->v[xs->n++] = *x;
	return 0;
}

int
exceptions_remove(struct exceptions *xs, const char *who, char *err, size_t errlen)
{
	char q[ERR_QUOTE_MAX + 4];
	size_t i;

	for (i = 0; i < xs->n; i++)
		if (strcmp(xs->v[i].who, who) == 0)
			break;
	/* "revoke 33" also finds "allow www-data" when that is uid 33 alone. */
	if (i == xs->n && all_digits(who)) {
		unsigned long uid;

		errno = 0;
		uid = strtoul(who, NULL, 10);
		for (i = 0; errno == 0 && i < xs->n; i++)
			if (xs->v[i].who[0] != '@' && xs->v[i].nuids == 1 &&
			    xs->v[i].uids[0] == uid)
				break;
		if (errno != 0)
			i = xs->n;
	}
	if (i == xs->n) {
		snprintf(err, errlen, "no exception for '%s' (smtpguard exceptions lists them)",
		    err_quote(who, q, sizeof(q)));
		return -1;
	}
	memmove(&xs->v[i], &xs->v[i + 1], (xs->n - i - 1) * sizeof(*xs->v));
	xs->n--;
	return 0;
}

static int
cmp_uid(const void *a, const void *b)
{
	uid_t x = *(const uid_t *)a, y = *(const uid_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Uids past max stay out of the kernel set; policy_decide() still allows
 * them at the SYN, so the cut costs speed, never correctness.
 */
size_t
exceptions_kernel_uids(const struct exceptions *xs, uid_t *out, size_t max)
{
	size_t n = 0, w = 0;

	for (size_t i = 0; i < xs->n; i++)
		if (exception_is_plain(&xs->v[i]))
			for (size_t k = 0; k < xs->v[i].nuids && n < max; k++)
				out[n++] = xs->v[i].uids[k];
	qsort(out, n, sizeof(*out), cmp_uid);
	for (size_t i = 0; i < n; i++)
		if (w == 0 || out[w - 1] != out[i])
			out[w++] = out[i];
	return w;
}

void
exceptions_carry_counters(struct exceptions *next, const struct exceptions *old)
{
	for (size_t i = 0; i < next->n; i++)
		for (size_t k = 0; k < old->n; k++)
			if (strcmp(next->v[i].who, old->v[k].who) == 0) {
				next->v[i].hits = old->v[k].hits;
				next->v[i].last_hit = old->v[k].last_hit;
				memcpy(next->v[i].cap_minute, old->v[k].cap_minute,
				    sizeof(next->v[i].cap_minute));
				memcpy(next->v[i].cap_count, old->v[k].cap_count,
				    sizeof(next->v[i].cap_count));
				break;
			}
}

/*
 * The whole file, NUL-terminated, in a malloc'd buffer: lines are then cut
 * by text_line(). -1 with errno past EXCEPTIONS_FILE_MAX (EFBIG) or on a
 * read error.
 */
static char *
read_text(FILE *fp, size_t *len)
{
	char *text, *bigger;
	size_t size = 4096, n = 0, got;

	if ((text = malloc(size)) == NULL)
		return NULL;
	while ((got = fread(text + n, 1, size - n - 1, fp)) > 0) {
		n += got;
		if (n + 1 < size)
			continue;
		if (size >= EXCEPTIONS_FILE_MAX) {
			errno = EFBIG;
			goto fail;
		}
		if ((bigger = realloc(text, size * 2)) == NULL)
			goto fail;
		text = bigger;
		size *= 2;
	}
	if (ferror(fp))
		goto fail;
	text[n] = '\0';
	*len = n;
	return text;
fail:
	free(text);
	return NULL;
}

int
exceptions_load(const char *path, const char *passwd, const char *group,
    struct exceptions *xs, char *err, size_t errlen)
{
	char line[EXCEPTION_LINE_MAX], why[512];
	const char *p, *end, *s;
	struct exception x;
	char *text;
	size_t len, n;
	FILE *fp;
	int lineno = 0, rc;

	memset(xs, 0, sizeof(*xs));
	if ((fp = fopen(path, "re")) == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	text = read_text(fp, &len);
	if (text == NULL) {
		if (errno == EFBIG)
			snprintf(err, errlen, "%s: longer than %d bytes", path,
			    EXCEPTIONS_FILE_MAX - 1);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		fclose(fp);
		return -1;
	}
	fclose(fp);
	p = text;
	end = text + len;
	while ((rc = text_line(&p, end, sizeof(line) - 1, &s, &n)) == 1) {
		lineno++;
		memcpy(line, s, n);
		line[n] = '\0';
		s = line + strspn(line, BLANKS);
		if (*s == '\0' || *s == '#')
			continue;
		if (strncmp(s, "limit", 5) == 0 && (s[5] == ' ' || s[5] == '\t')) {
			struct mail_limit_rule r;

			if (maillimit_rule_parse(s, &r, why, sizeof(why)) < 0 ||
			    exceptions_add_limit(xs, &r, why, sizeof(why)) < 0) {
				snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
				goto fail;
			}
			continue;
		}
		if (exception_parse(s, passwd, group, &x, why, sizeof(why)) < 0 ||
		    exceptions_add(xs, &x, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			goto fail;
		}
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s:%d: %s", path, lineno + 1,
		    errno == EILSEQ ? "a NUL byte" : "too long");
		goto fail;
	}
	free(text);
	return 0;
fail:
	free(text);
	exceptions_free(xs);
	return -1;
}

/* How a comment above the first rule says another tool owns the file (case aside). */
static const char *const managed_marks[] = {
	"managed by ",			/* # managed by ansible */
	"ansible managed",		/* {{ ansible_managed }}'s default text */
	"this file is managed by ",	/* Salt's and Puppet's habit */
};

int
exceptions_check_unmanaged(const char *path, char *err, size_t errlen)
{
	char line[EXCEPTION_LINE_MAX], q[ERR_QUOTE_MAX + 4];
	FILE *fp;
	int lineno = 0, rc = 0;

	if ((fp = fopen(path, "re")) == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* Only the comments above the first rule: a marker is a file's header. */
	while (rc == 0 && fgets(line, sizeof(line), fp) != NULL) {
		const char *s = line + strspn(line, BLANKS);

		lineno++;
		if (*s == '\n' || *s == '\0')
			continue;
		if (*s != '#')
			break;
		s += 1 + strspn(s + 1, BLANKS);
		for (size_t i = 0; i < sizeof(managed_marks) / sizeof(managed_marks[0]); i++)
			if (strncasecmp(s, managed_marks[i], strlen(managed_marks[i])) == 0) {
				line[strcspn(line, "\r\n")] = '\0';
				snprintf(err, errlen, "%s:%d: the file is managed elsewhere "
				    "('%s'): change it at its source, deploy it, and run "
				    "'smtpguard reload'; allow, revoke, limit and unlimit do "
				    "not edit it", path, lineno, err_quote(line, q, sizeof(q)));
				rc = -1;
				break;
			}
		/* A longer line is a rule's, or no header comment of this kind. */
		if (strchr(line, '\n') == NULL && !feof(fp))
			break;
	}
	fclose(fp);
	return rc;
}

static int
write_all(FILE *fp, const struct exceptions *xs)
{
	char line[EXCEPTION_LINE_MAX];

	fprintf(fp, "# smtpguard exceptions: written by `smtpguard allow/revoke`; hand edits\n"
	    "# are fine (then: smtpguard reload), comments are not kept. One per line:\n"
	    "#   allow USER|UID|@GROUP [to=CIDR,...] [port=N,...] [audit|redirect] "
	    "[cap=N/hour] [comment=\"...\"]\n");
	for (size_t i = 0; i < xs->n; i++) {
		if (exception_format(&xs->v[i], line, sizeof(line)) < 0)
			return -1;
		fprintf(fp, "%s\n", line);
	}
	if (xs->nlimits > 0)
		fprintf(fp, "# mail gate limits (smtpguard limit/unlimit):\n"
		    "#   limit sasl:LOGIN|user:NAME|domain:DOMAIN|client:ADDR|bounce N/hour\n");
	for (size_t i = 0; i < xs->nlimits; i++) {
		if (maillimit_rule_format(&xs->limits[i], line, sizeof(line)) < 0)
			return -1;
		fprintf(fp, "%s\n", line);
	}
	if (fflush(fp) != 0 || ferror(fp)) {
		if (errno == 0)
			errno = EIO;
		return -1;
	}
	return fsync(fileno(fp));
}

static int
fill_exceptions(FILE *fp, void *arg)
{
	return write_all(fp, arg);
}

int
exceptions_save(const char *path, const struct exceptions *xs, char *err, size_t errlen)
{
	if (exceptions_check_unmanaged(path, err, errlen) < 0)
		return -1;
	/* 0644: the file holds no secret, and admins read it. */
	if (file_replace(path, 0644, fill_exceptions, (void *)xs) < 0) {
		snprintf(err, errlen, "writing %s: %s; the old file is unchanged", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}
