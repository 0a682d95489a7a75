/*
 * exceptions.c — who may send SMTP besides the MTA. One exception per line,
 * in exceptions.conf and on the control socket alike:
 *
 *   allow WHO [to=CIDR,...] [port=N,...] [audit] [cap=N/hour] [comment="..."]
 *
 * WHO is a user name, a numeric uid or @group (its members and the users
 * whose primary group it is), resolved through passwd/group files given by
 * path. An exception with no narrowing is "plain": its uids go into the
 * kernel set. The file is replaced atomically (temp file, fsync, rename).
 * Pure: errors are sentences in err (with FILE:LINE when loading).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smtpguard.h"

#define EXC_FILE_MAX	(1024 * 1024)

static int
valid_who(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= EXCEPTION_WHO_MAX || (s[0] == '@' && n == 1))
		return 0;
	for (size_t i = s[0] == '@'; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("._-$", s[i]) == NULL)
			return 0;
	return 1;
}

int
cidr_parse(const char *s, struct cidr *c)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	long prefix;

	if (strlcpy_sg(buf, s, sizeof(buf)) >= sizeof(buf))
		return -1;
	memset(c, 0, sizeof(*c));
	if ((slash = strchr(buf, '/')) != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1)
		c->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, c->addr) == 1)
		c->family = AF_INET6;
	else
		return -1;
	prefix = c->family == AF_INET ? 32 : 128;
	if (slash != NULL) {
		long max = prefix;

		if (!isdigit((unsigned char)slash[1]))
			return -1;
		prefix = strtol(slash + 1, &end, 10);
		if (*end != '\0' || prefix < 0 || prefix > max)
			return -1;
	}
	c->prefix = (uint8_t)prefix;
	/* Host bits set ("192.0.2.5/24") are a typo more often than not. */
	for (int bit = prefix; bit < (c->family == AF_INET ? 32 : 128); bit++)
		if (c->addr[bit / 8] & (0x80 >> (bit % 8)))
			return -1;
	return 0;
}

bool
cidr_contains(const struct cidr *c, int family, const uint8_t *addr)
{
	int full = c->prefix / 8, rest = c->prefix % 8;

	if (c->family != family)
		return false;
	if (memcmp(c->addr, addr, (size_t)full) != 0)
		return false;
	return rest == 0 ||
	    ((c->addr[full] ^ addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static void
cidr_format(const struct cidr *c, char *out, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(c->family, c->addr, a, sizeof(a));
	snprintf(out, len, "%s/%u", a, c->prefix);
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
resolve_who(struct exception *x, const char *passwd, const char *group, char *err,
    size_t errlen)
{
	struct passwd *pw;
	struct group *gr;
	FILE *fp;
	gid_t gid = 0;
	bool found = false;

	if (isdigit((unsigned char)x->who[0])) {
		char *end;
		unsigned long n = strtoul(x->who, &end, 10);

		if (*end != '\0' || n >= (uid_t)-1) {
			snprintf(err, errlen, "'%s' is not a user, uid or @group", x->who);
			return -1;
		}
		return add_uid(x, (uid_t)n);
	}
	if (x->who[0] != '@') {
		if ((fp = fopen(passwd, "re")) == NULL) {
			snprintf(err, errlen, "%s: %s", passwd, strerror(errno));
			return -1;
		}
		while ((pw = fgetpwent(fp)) != NULL)
			if (strcmp(pw->pw_name, x->who) == 0) {
				found = true;
				add_uid(x, pw->pw_uid);
				break;
			}
		fclose(fp);
		if (!found)
			snprintf(err, errlen, "unknown user '%s'", x->who);
		return found ? 0 : -1;
	}
	if ((fp = fopen(group, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", group, strerror(errno));
		return -1;
	}
	char members[EXCEPTION_UIDS_MAX][USER_NAME_MAX];
	size_t nmembers = 0;

	while ((gr = fgetgrent(fp)) != NULL) {
		if (strcmp(gr->gr_name, x->who + 1) != 0)
			continue;
		found = true;
		gid = gr->gr_gid;
		for (char **m = gr->gr_mem; *m != NULL && nmembers < EXCEPTION_UIDS_MAX; m++)
			strlcpy_sg(members[nmembers++], *m, USER_NAME_MAX);
		break;
	}
	fclose(fp);
	if (!found) {
		snprintf(err, errlen, "unknown group '%s'", x->who + 1);
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
			fclose(fp);
			snprintf(err, errlen, "group '%s' has more than %d users", x->who + 1,
			    EXCEPTION_UIDS_MAX);
			return -1;
		}
	}
	fclose(fp);
	if (x->nuids == 0) {
		snprintf(err, errlen, "group '%s' has no users", x->who + 1);
		return -1;
	}
	return 0;
}

static int
parse_list(const char *v, char *err, size_t errlen, struct exception *x, bool cidrs)
{
	char buf[EXCEPTION_LINE_MAX], *tok, *save = NULL;

	strlcpy_sg(buf, v, sizeof(buf));
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (cidrs) {
			if (x->nto == EXCEPTION_CIDRS_MAX) {
				snprintf(err, errlen, "more than %d destinations", EXCEPTION_CIDRS_MAX);
				return -1;
			}
			if (cidr_parse(tok, &x->to[x->nto]) < 0) {
				snprintf(err, errlen, "bad destination '%s' (an IPv4 or IPv6 "
				    "address or CIDR such as 192.0.2.0/24)", tok);
				return -1;
			}
			x->nto++;
		} else {
			char *end;
			unsigned long p = strtoul(tok, &end, 10);

			if (!isdigit((unsigned char)tok[0]) || *end != '\0' || p < 1 || p > 65535) {
				snprintf(err, errlen, "bad port '%s' (1-65535)", tok);
				return -1;
			}
			if (x->nports == EXCEPTION_PORTS_MAX) {
				snprintf(err, errlen, "more than %d ports", EXCEPTION_PORTS_MAX);
				return -1;
			}
			x->ports[x->nports++] = (uint16_t)p;
		}
	}
	if ((cidrs && x->nto == 0) || (!cidrs && x->nports == 0)) {
		snprintf(err, errlen, "empty %s list", cidrs ? "to=" : "port=");
		return -1;
	}
	return 0;
}

static int
parse_cap(const char *v, unsigned int *cap, char *err, size_t errlen)
{
	char *end;
	unsigned long n = strtoul(v, &end, 10);

	if (!isdigit((unsigned char)v[0]) || strcmp(end, "/hour") != 0 || n < 1 ||
	    n > EXCEPTION_CAP_MAX) {
		snprintf(err, errlen, "bad cap '%s' (N/hour, N from 1 to %d)", v,
		    EXCEPTION_CAP_MAX);
		return -1;
	}
	*cap = (unsigned int)n;
	return 0;
}

/* comment="..." with \" and \\ escapes; printable characters only. */
static const char *
parse_comment(const char *p, char *out, char *err, size_t errlen)
{
	size_t n = 0;

	if (*p++ != '"') {
		snprintf(err, errlen, "comment must be in double quotes");
		return NULL;
	}
	for (; *p != '"'; p++) {
		if (*p == '\0') {
			snprintf(err, errlen, "unterminated comment");
			return NULL;
		}
		if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
			p++;
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			snprintf(err, errlen, "comment holds a control character");
			return NULL;
		}
		if (n == EXCEPTION_COMMENT_MAX) {
			snprintf(err, errlen, "comment longer than %d bytes", EXCEPTION_COMMENT_MAX);
			return NULL;
		}
		out[n++] = *p;
	}
	out[n] = '\0';
	return p + 1;
}

int
exception_parse(const char *line, const char *passwd, const char *group,
    struct exception *x, char *err, size_t errlen)
{
	char word[EXCEPTION_LINE_MAX];
	const char *p = line;
	bool seen_to = false, seen_port = false, seen_cap = false, seen_comment = false;

	memset(x, 0, sizeof(*x));
	if (strlen(line) >= EXCEPTION_LINE_MAX) {
		snprintf(err, errlen, "line longer than %d bytes", EXCEPTION_LINE_MAX - 1);
		return -1;
	}
	for (int i = 0; ; i++) {
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '\n')
			break;
		if (strncmp(p, "comment=", 8) == 0) {
			if (seen_comment) {
				snprintf(err, errlen, "comment given twice");
				return -1;
			}
			seen_comment = true;
			if ((p = parse_comment(p + 8, x->comment, err, errlen)) == NULL)
				return -1;
			if (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n') {
				snprintf(err, errlen, "text after the comment's closing quote");
				return -1;
			}
			continue;
		}
		n = strcspn(p, " \t\n");
		memcpy(word, p, n);
		word[n] = '\0';
		p += n;
		if (i == 0) {
			if (strcmp(word, "allow") != 0) {
				snprintf(err, errlen, "expected 'allow WHO ...', got '%s'", word);
				return -1;
			}
		} else if (i == 1) {
			if (!valid_who(word)) {
				snprintf(err, errlen, "'%s' is not a user, uid or @group", word);
				return -1;
			}
			strlcpy_sg(x->who, word, sizeof(x->who));
		} else if (strncmp(word, "to=", 3) == 0 && !seen_to) {
			seen_to = true;
			if (parse_list(word + 3, err, errlen, x, true) < 0)
				return -1;
		} else if (strncmp(word, "port=", 5) == 0 && !seen_port) {
			seen_port = true;
			if (parse_list(word + 5, err, errlen, x, false) < 0)
				return -1;
		} else if (strncmp(word, "cap=", 4) == 0 && !seen_cap) {
			seen_cap = true;
			if (parse_cap(word + 4, &x->cap_per_hour, err, errlen) < 0)
				return -1;
		} else if (strcmp(word, "audit") == 0 && !x->audit)
			x->audit = true;
		else {
			snprintf(err, errlen, "unknown or repeated option '%s' (to=, port=, "
			    "audit, cap=, comment=)", word);
			return -1;
		}
	}
	if (x->who[0] == '\0') {
		snprintf(err, errlen, "expected 'allow WHO ...'");
		return -1;
	}
	return resolve_who(x, passwd, group, err, errlen);
}

bool
exception_is_plain(const struct exception *x)
{
	return x->nto == 0 && x->nports == 0 && x->cap_per_hour == 0 && !x->audit;
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

	PUT("allow %s", x->who);
	for (size_t i = 0; i < x->nto; i++) {
		cidr_format(&x->to[i], c, sizeof(c));
		PUT("%s%s", i ? "," : " to=", c);
	}
	for (size_t i = 0; i < x->nports; i++)
		PUT("%s%u", i ? "," : " port=", x->ports[i]);
	if (x->audit)
		PUT(" audit");
	if (x->cap_per_hour)
		PUT(" cap=%u/hour", x->cap_per_hour);
	if (x->comment[0] != '\0') {
		PUT(" comment=\"");
		for (const char *p = x->comment; *p != '\0'; p++)
			PUT("%s%c", *p == '"' || *p == '\\' ? "\\" : "", *p);
		PUT("\"");
	}
#undef PUT
	return (int)off;
}

int
exception_from_argv(int argc, char **argv, char *line, size_t len, char *err, size_t errlen)
{
	struct exception x = { 0 };
	const char *to = NULL, *port = NULL, *cap = NULL, *comment = NULL;
	bool audit = false;
	int i;

	if (argc < 2 || argv[1][0] == '-') {
		snprintf(err, errlen, "usage: smtpguard allow USER|UID|@GROUP [--to CIDR,...] "
		    "[--port N,...] [--audit] [--cap N/hour] [--comment TEXT]");
		return -1;
	}
	if (!valid_who(argv[1])) {
		snprintf(err, errlen, "'%s' is not a user, uid or @group", argv[1]);
		return -1;
	}
	strlcpy_sg(x.who, argv[1], sizeof(x.who));
	for (i = 2; i < argc; i++) {
		const char **slot = NULL;

		if (strcmp(argv[i], "--audit") == 0) {
			audit = true;
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
		if (slot == NULL || i + 1 == argc || *slot != NULL) {
			snprintf(err, errlen, slot == NULL ? "unknown option '%s'" :
			    "'%s' needs one value, given once", argv[i]);
			return -1;
		}
		*slot = argv[++i];
	}
	if ((to && parse_list(to, err, errlen, &x, true) < 0) ||
	    (port && parse_list(port, err, errlen, &x, false) < 0) ||
	    (cap && parse_cap(cap, &x.cap_per_hour, err, errlen) < 0))
		return -1;
	x.audit = audit;
	if (comment != NULL) {
		if (strlen(comment) > EXCEPTION_COMMENT_MAX) {
			snprintf(err, errlen, "comment longer than %d bytes", EXCEPTION_COMMENT_MAX);
			return -1;
		}
		for (const char *p = comment; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				snprintf(err, errlen, "comment holds a control character");
				return -1;
			}
		strlcpy_sg(x.comment, comment, sizeof(x.comment));
	}
	if (exception_format(&x, line, len) < 0) {
		snprintf(err, errlen, "exception too long");
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
}

int
exceptions_copy(struct exceptions *dst, const struct exceptions *src)
{
	dst->n = 0;
	dst->v = NULL;
	if (src->n == 0)
		return 0;
	if ((dst->v = calloc(src->n, sizeof(*dst->v))) == NULL)
		return -1;
	memcpy(dst->v, src->v, src->n * sizeof(*dst->v));
	dst->n = src->n;
	return 0;
}

int
exceptions_add(struct exceptions *xs, const struct exception *x, char *err, size_t errlen)
{
	struct exception *grown;

	for (size_t i = 0; i < xs->n; i++) {
		const struct exception *o = &xs->v[i];

		if (strcmp(o->who, x->who) == 0) {
			snprintf(err, errlen, "%s already has an exception; revoke it first to "
			    "change it", x->who);
			return -1;
		}
		if (!exception_is_plain(o) && !exception_is_plain(x))
			continue;
		for (size_t a = 0; a < o->nuids; a++)
			for (size_t b = 0; b < x->nuids; b++)
				if (o->uids[a] == x->uids[b]) {
					snprintf(err, errlen, "conflicts with 'allow %s': uid %lu "
					    "would be allowed %s", o->who, (unsigned long)x->uids[b],
					    exception_is_plain(o) ? "everywhere already" :
					    "everywhere, making that narrowed exception moot");
					return -1;
				}
	}
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
	size_t i;

	for (i = 0; i < xs->n; i++)
		if (strcmp(xs->v[i].who, who) == 0)
			break;
	if (i == xs->n && isdigit((unsigned char)who[0])) {
		unsigned long uid = strtoul(who, NULL, 10);

		for (i = 0; i < xs->n; i++)
			if (xs->v[i].nuids == 1 && xs->v[i].uids[0] == uid && xs->v[i].who[0] != '@')
				break;
	}
	if (i == xs->n) {
		snprintf(err, errlen, "no exception for '%s' (smtpguard exceptions lists them)",
		    who);
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

int
exceptions_load(const char *path, const char *passwd, const char *group,
    struct exceptions *xs, char *err, size_t errlen)
{
	char line[EXCEPTION_LINE_MAX + 2], why[512];
	struct exception x;
	FILE *fp;
	int lineno = 0;

	xs->v = NULL;
	xs->n = 0;
	if ((fp = fopen(path, "re")) == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *p = line;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			snprintf(err, errlen, "%s:%d: line longer than %d bytes", path, lineno,
			    EXCEPTION_LINE_MAX - 1);
			goto fail;
		}
		line[strcspn(line, "\n")] = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		if (exception_parse(p, passwd, group, &x, why, sizeof(why)) < 0 ||
		    exceptions_add(xs, &x, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			goto fail;
		}
	}
	fclose(fp);
	return 0;
fail:
	fclose(fp);
	exceptions_free(xs);
	return -1;
}

int
exceptions_save(const char *path, const struct exceptions *xs, char *err, size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX], line[EXCEPTION_LINE_MAX];
	FILE *fp;
	int fd, dfd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
	    sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	if (ensure_parent_dir(path, 0755) < 0 ||
	    (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	if ((fp = fdopen(fd, "w")) == NULL) {
		close(fd);
		goto fail;
	}
	fprintf(fp, "# smtpguard exceptions: written by `smtpguard allow/revoke`; hand edits\n"
	    "# are fine (then: smtpguard reload). One per line:\n"
	    "#   allow USER|UID|@GROUP [to=CIDR,...] [port=N,...] [audit] [cap=N/hour] "
	    "[comment=\"...\"]\n");
	for (size_t i = 0; i < xs->n; i++) {
		if (exception_format(&xs->v[i], line, sizeof(line)) < 0) {
			fclose(fp);
			goto fail;
		}
		fprintf(fp, "%s\n", line);
	}
	if (fflush(fp) != 0 || fsync(fileno(fp)) < 0) {
		fclose(fp);
		goto fail;
	}
	if (fclose(fp) != 0 || rename(tmp, path) < 0)
		goto fail;
	strlcpy_sg(dir, path, sizeof(dir));
	if ((dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
fail:
	snprintf(err, errlen, "writing %s: %s", path, strerror(errno));
	unlink(tmp);
	return -1;
}
