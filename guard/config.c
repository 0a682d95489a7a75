/*
 * config.c — smtpguard.conf (INI, parsed by libinih) into struct config.
 *
 * Every key is in one table with its section, type and bounds; an error
 * names FILE:LINE, the section and key, and the offending value. Nothing is
 * truncated silently and nothing half-applied: on error the caller keeps
 * its old config. Pure: no logging, no exit.
 */
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smtpguard.h"

/* libinih's compiled-in line buffer; longer lines would be split silently. */
#define CONFIG_LINE_MAX		(200 - 2)
#define CONFIG_FILE_MAX		(256 * 1024)

enum key_type { K_LIST, K_PORTS, K_ACTION, K_BOOL, K_U16, K_U32, K_SIZE, K_MASK, K_PATH,
    K_RATE, K_STRING };

struct key {
	const char	*section;
	const char	*name;
	enum key_type	 type;
	size_t		 offset;
	size_t		 size;		/* buffer size for strings and paths */
	unsigned long	 min, max;	/* numbers */
};

#define STR(field)	offsetof(struct config, field), sizeof(((struct config *)0)->field)
#define NUM(field)	offsetof(struct config, field), 0

static const struct key keys[] = {
	{ "guard", "mta_users", K_LIST, STR(mta_users), 0, 0 },
	{ "guard", "ports", K_PORTS, NUM(ports), 1, 65535 },
	{ "guard", "action", K_ACTION, NUM(action), 0, 0 },
	{ "guard", "allow_local", K_BOOL, NUM(allow_local), 0, 0 },
	{ "guard", "queue", K_U16, NUM(queue_num), 0, 65535 },
	{ "guard", "queue_maxlen", K_U32, NUM(queue_maxlen), 1, 1048576 },
	{ "guard", "trap_port", K_U16, NUM(trap_port), 1, 65535 },
	{ "guard", "inspect_bytes", K_SIZE, NUM(inspect_bytes), 64, 1048576 },
	{ "guard", "detect_any_port", K_BOOL, NUM(detect_any_port), 0, 0 },
	{ "guard", "mark_mask", K_MASK, NUM(mark_mask), 0, 0 },
	{ "guard", "exceptions", K_PATH, STR(exceptions), 0, 0 },
	{ "guard", "control_socket", K_PATH, STR(control_socket), 0, 0 },
	{ "guard", "pid_file", K_PATH, STR(pid_file), 0, 0 },
	{ "log", "file", K_PATH, STR(log_file), 0, 0 },
	{ "log", "syslog", K_BOOL, NUM(log_syslog), 0, 0 },
	{ "log", "rate", K_U32, NUM(log_rate), 1, 100000 },
	{ "log", "window", K_U32, NUM(log_window), 1, 86400 },
	{ "alert", "threshold", K_RATE, NUM(alert_threshold), 0, 1000000 },
	{ "alert", "exec", K_PATH, STR(alert_exec), 0, 0 },
};
#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

struct parse {
	struct config	*cfg;
	const char	*name;
	const char	*text;		/* the whole file, to find a key's line */
	bool		 seen[NKEYS];
	bool		 failed;
	char		*err;
	size_t		 errlen;
};

void
config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	strlcpy_sg(cfg->mta_users, "auto", sizeof(cfg->mta_users));
	cfg->ports[0] = 25;
	cfg->ports[1] = 465;
	cfg->ports[2] = 587;
	cfg->nports = 3;
	cfg->action = ACTION_REJECT;
	cfg->allow_local = true;
	cfg->queue_num = 0;
	cfg->queue_maxlen = 4096;
	cfg->trap_port = 10025;
	cfg->inspect_bytes = 4096;
	cfg->detect_any_port = false;
	cfg->mark_mask = 0x00700000;
	strlcpy_sg(cfg->exceptions, "/etc/smtpguard/exceptions.conf", sizeof(cfg->exceptions));
	strlcpy_sg(cfg->control_socket, "/run/smtpguard/control.sock",
	    sizeof(cfg->control_socket));
	strlcpy_sg(cfg->pid_file, "/run/smtpguard/smtpguardd.pid", sizeof(cfg->pid_file));
	strlcpy_sg(cfg->log_file, "/var/log/smtpguard/events.jsonl", sizeof(cfg->log_file));
	cfg->log_syslog = true;
	cfg->log_rate = 20;
	cfg->log_window = 60;
	cfg->alert_threshold = 0;
}

/*
 * libinih (as Debian builds it) does not pass line numbers to the handler,
 * so find the first line that sets this key in this section ourselves.
 */
static int
key_line(const char *text, const char *section, const char *name)
{
	char cur[64] = "";
	int line = 1;

	for (const char *p = text; *p != '\0'; line++) {
		const char *end = strchr(p, '\n'), *s = p;

		if (end == NULL)
			end = p + strlen(p);
		while (s < end && isspace((unsigned char)*s))
			s++;
		if (*s == '[') {
			const char *close = memchr(s, ']', (size_t)(end - s));
			size_t n = close ? (size_t)(close - s - 1) : 0;

			if (n < sizeof(cur)) {
				memcpy(cur, s + 1, n);
				cur[n] = '\0';
			}
		} else if (strcmp(cur, section) == 0 && strncmp(s, name, strlen(name)) == 0) {
			const char *q = s + strlen(name);

			while (q < end && (*q == ' ' || *q == '\t'))
				q++;
			if (q < end && (*q == '=' || *q == ':'))
				return line;
		}
		p = *end ? end + 1 : end;
	}
	return 0;
}

static int __attribute__((format(printf, 5, 6)))
fail(struct parse *ps, const char *section, const char *name, const char *value,
    const char *fmt, ...)
{
	char what[256];
	va_list ap;

	if (ps->failed)
		return 0;
	ps->failed = true;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(ps->err, ps->errlen, "%s:%d: [%s] %s: %s (got '%s')", ps->name,
	    key_line(ps->text, section, name), section, name, what, value);
	return 0;
}

static int
parse_ulong(const char *v, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long n;

	if (!isdigit((unsigned char)v[0]))
		return -1;
	errno = 0;
	n = strtoul(v, &end, 0);
	if (errno != 0 || *end != '\0' || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

static int
parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static int
parse_ports(struct parse *ps, const struct key *k, const char *v)
{
	struct config *cfg = ps->cfg;
	char buf[CONFIG_MAX_LIST], *tok, *save = NULL;
	unsigned long n;

	if (strlcpy_sg(buf, v, sizeof(buf)) >= sizeof(buf))
		return fail(ps, k->section, k->name, v, "list too long");
	cfg->nports = 0;
	for (tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (parse_ulong(tok, k->min, k->max, &n) < 0)
			return fail(ps, k->section, k->name, v, "'%s' is not a port (1-65535)",
			    tok);
		for (size_t i = 0; i < cfg->nports; i++)
			if (cfg->ports[i] == n)
				return fail(ps, k->section, k->name, v, "port %lu listed twice", n);
		if (cfg->nports == CONFIG_MAX_PORTS)
			return fail(ps, k->section, k->name, v, "more than %d ports",
			    CONFIG_MAX_PORTS);
		cfg->ports[cfg->nports++] = (uint16_t)n;
	}
	if (cfg->nports == 0)
		return fail(ps, k->section, k->name, v, "at least one port is needed");
	return 1;
}

/* "N" or "N/10min": the window is fixed at ten minutes (DESIGN.md §3). */
static int
parse_rate(struct parse *ps, const struct key *k, const char *v, unsigned int *out)
{
	char num[32];
	const char *slash = strchr(v, '/');
	size_t n = slash ? (size_t)(slash - v) : strlen(v);
	unsigned long r;

	if (n >= sizeof(num))
		return fail(ps, k->section, k->name, v, "not a number");
	memcpy(num, v, n);
	num[n] = '\0';
	if (parse_ulong(num, k->min, k->max, &r) < 0 ||
	    (slash != NULL && strcmp(slash, "/10min") != 0))
		return fail(ps, k->section, k->name, v,
		    "expected N or N/10min, N from %lu to %lu (0 = off)", k->min, k->max);
	*out = (unsigned int)r;
	return 1;
}

static int
set_key(struct parse *ps, const struct key *k, const char *v)
{
	char *field = (char *)ps->cfg + k->offset;
	unsigned long n;
	bool b;

	switch (k->type) {
	case K_LIST:
	case K_STRING:
		if (v[0] == '\0')
			return fail(ps, k->section, k->name, v, "empty value");
		if (strlcpy_sg(field, v, k->size) >= k->size)
			return fail(ps, k->section, k->name, v, "longer than %zu bytes",
			    k->size - 1);
		return 1;
	case K_PATH:
		if (v[0] == '\0' && strcmp(k->name, "exec") == 0) {
			field[0] = '\0';
			return 1;
		}
		if (v[0] != '/')
			return fail(ps, k->section, k->name, v, "must be an absolute path");
		if (strlcpy_sg(field, v, k->size) >= k->size)
			return fail(ps, k->section, k->name, v, "path too long");
		return 1;
	case K_PORTS:
		return parse_ports(ps, k, v);
	case K_ACTION:
		if (action_parse(v, &ps->cfg->action) < 0 || ps->cfg->action == ACTION_ALLOW)
			return fail(ps, k->section, k->name, v, "expected reject, trap or audit");
		return 1;
	case K_BOOL:
		if (parse_bool(v, &b) < 0)
			return fail(ps, k->section, k->name, v, "expected yes or no");
		*(bool *)field = b;
		return 1;
	case K_U16:
	case K_U32:
	case K_SIZE:
		if (parse_ulong(v, k->min, k->max, &n) < 0)
			return fail(ps, k->section, k->name, v, "expected a number from %lu to %lu",
			    k->min, k->max);
		if (k->type == K_U16)
			*(uint16_t *)field = (uint16_t)n;
		else if (k->type == K_U32)
			*(uint32_t *)field = (uint32_t)n;
		else
			*(size_t *)field = n;
		return 1;
	case K_MASK:
		if (parse_ulong(v, 1, 0xffffffffUL, &n) < 0 ||
		    mark_value((uint32_t)n, MARK_STATE_MAX) == 0)
			return fail(ps, k->section, k->name, v,
			    "expected a mask whose lowest bits can hold the values 1-%d, e.g. "
			    "0x00700000", MARK_STATE_MAX);
		*(uint32_t *)field = (uint32_t)n;
		return 1;
	case K_RATE:
		return parse_rate(ps, k, v, (unsigned int *)field);
	}
	return fail(ps, k->section, k->name, v, "unknown key type");
}

static int
on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse *ps = user;
	bool known_section = false;

	if (ps->failed)
		return 0;
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) != 0)
			continue;
		known_section = true;
		if (strcmp(keys[i].name, name) != 0)
			continue;
		if (ps->seen[i])
			return fail(ps, section, name, value, "set twice");
		ps->seen[i] = true;
		return set_key(ps, &keys[i], value);
	}
	if (!known_section)
		return fail(ps, section, name, value, "unknown section [%s]", section);
	return fail(ps, section, name, value, "unknown key");
}

int
config_load_string(struct config *cfg, const char *text, const char *name, char *err,
    size_t errlen)
{
	struct parse ps = { .cfg = cfg, .name = name, .text = text, .err = err,
	    .errlen = errlen };
	int line = 1, rc;

	config_defaults(cfg);
	for (const char *p = text; *p != '\0'; line++) {
		const char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n > CONFIG_LINE_MAX) {
			snprintf(err, errlen, "%s:%d: line longer than %d characters", name, line,
			    CONFIG_LINE_MAX);
			return -1;
		}
		if (memchr(p, '\0', n) != NULL)
			break;
		p += n + (end != NULL);
	}
	rc = ini_parse_string(text, on_key, &ps);
	if (ps.failed)
		return -1;
	if (rc != 0) {
		snprintf(err, errlen, "%s:%d: not a [section] or key = value line", name, rc);
		return -1;
	}
	strlcpy_sg(cfg->path, name, sizeof(cfg->path));
	return 0;
}

int
config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	char *text;
	struct stat sb;
	ssize_t n;
	size_t len = 0;
	int fd, rc;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > CONFIG_FILE_MAX) {
		snprintf(err, errlen, "%s: not a regular file of at most %d bytes", path,
		    CONFIG_FILE_MAX);
		close(fd);
		return -1;
	}
	if ((text = malloc((size_t)sb.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		close(fd);
		return -1;
	}
	while (len < (size_t)sb.st_size &&
	    ((n = read(fd, text + len, (size_t)sb.st_size - len)) > 0 || (n < 0 && errno == EINTR)))
		if (n > 0)
			len += (size_t)n;
	close(fd);
	text[len] = '\0';
	if (strlen(text) != len) {
		snprintf(err, errlen, "%s: holds a NUL byte: not a text file", path);
		free(text);
		return -1;
	}
	rc = config_load_string(cfg, text, path, err, errlen);
	free(text);
	return rc;
}
