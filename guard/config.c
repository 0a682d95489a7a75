/*
 * config.c — smtpguard.conf (INI, split into key = value by libinih) into
 * struct config.
 *
 * Every key is in one table with its section, type and bounds. An error
 * names FILE:LINE, the section and key, and the offending value; nothing is
 * truncated silently and nothing is half-applied: on error the struct is
 * zeroed (unusable) and the caller keeps its old config. Pure: no logging,
 * no exit; the only I/O is reading the file in config_load(). It stays one
 * room past 600 lines because the key table, the parser of each value type
 * and the checks across keys are read together: a key's bounds and its
 * message live beside the table row that names it.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smtpguard.h"

/*
 * libinih as Debian builds it reads lines into a 200-byte buffer that must
 * also hold "\r\n\0", and would split a longer line silently.
 */
#define CONFIG_LINE_MAX		197
#define CONFIG_FILE_MAX		(256 * 1024)	/* the documented file is ~5 KiB */
#define CONFIG_ERR_WHAT_MAX	256
#define CONFIG_ERR_QUOTE_MAX	40	/* of an overlong line, quoted in its error */
#define UTF8_BOM		"\xef\xbb\xbf"

enum key_type {
	K_USERS,	/* "auto" or names/uids */
	K_PORTS,
	K_ACTION,
	K_BOOL,
	K_U16,
	K_U32,
	K_SIZE,
	K_MASK,
	K_PATH,		/* absolute path */
	K_OPT_PATH,	/* absolute path or empty */
	K_RATE,		/* N or N/10min */
	K_TEXT,		/* printable text, not empty */
	K_MAIL_RATE,	/* N/hour; "off" too where max is MAILLIMIT_OFF */
	K_MAIL_OVER,	/* hold|defer|reject */
	K_MAIL_FAIL,	/* accept|tempfail */
	K_MAIL_MTA,	/* postfix|exim */
};

struct key {
	const char	*section;
	const char	*name;
	enum key_type	 type;
	size_t		 offset;
	size_t		 size;		/* buffer size of strings and paths */
	unsigned long	 min, max;	/* numbers */
};

#define STR(field)	offsetof(struct config, field), sizeof(((struct config *)0)->field)
#define NUM(field)	offsetof(struct config, field), 0

static const struct key keys[] = {
	{ "guard", "mta_users", K_USERS, STR(mta_users), 0, 0 },
	{ "guard", "ports", K_PORTS, NUM(ports), 1, 65535 },
	{ "guard", "action", K_ACTION, NUM(action), 0, 0 },
	{ "guard", "allow_local", K_BOOL, NUM(allow_local), 0, 0 },
	{ "guard", "connect_hook", K_BOOL, NUM(connect_hook), 0, 0 },
	{ "guard", "queue", K_U16, NUM(queue_num), 0, 65535 },
	{ "guard", "queue_maxlen", K_U32, NUM(queue_maxlen), 1, 1048576 },
	{ "guard", "audit_log_group", K_U16, NUM(audit_log_group), 0, 65535 },
	{ "guard", "trap_port", K_U16, NUM(trap_port), 1, 65535 },
	{ "guard", "redirect_to", K_U16, NUM(redirect_to), 1, 65535 },
	{ "guard", "inspect_bytes", K_SIZE, NUM(inspect_bytes), 64, 1048576 },
	{ "guard", "detect_any_port", K_BOOL, NUM(detect_any_port), 0, 0 },
	{ "guard", "any_port_timeout", K_U32, NUM(any_port_timeout), 1, 3600 },
	{ "guard", "mail_relays", K_TEXT, STR(mail_relays), 0, 0 },
	{ "guard", "mark_mask", K_MASK, NUM(mark_mask), 1, 0xffffffffUL },
	{ "guard", "exceptions", K_PATH, STR(exceptions), 0, 0 },
	{ "guard", "control_socket", K_PATH, STR(control_socket), 0, 0 },
	{ "guard", "pid_file", K_PATH, STR(pid_file), 0, 0 },
	{ "log", "file", K_PATH, STR(log_file), 0, 0 },
	{ "log", "syslog", K_BOOL, NUM(log_syslog), 0, 0 },
	{ "log", "rate", K_U32, NUM(log_rate), 1, 100000 },
	{ "log", "window", K_U32, NUM(log_window), 1, 86400 },
	{ "alert", "threshold", K_RATE, NUM(alert_threshold), 0, 1000000 },
	{ "alert", "exec", K_OPT_PATH, STR(alert_exec), 0, 0 },
	{ "trap", "sessions", K_U32, NUM(trap_sessions), 1, 4096 },
	{ "trap", "timeout", K_U32, NUM(trap_timeout), 1, 3600 },
	{ "trap", "bytes", K_SIZE, NUM(trap_bytes), 1024, 64 * 1024 * 1024 },
	{ "trap", "reply", K_TEXT, STR(trap_reply), 0, 0 },
	{ "trap", "user", K_TEXT, STR(trap_user), 0, 0 },
	{ "mail", "gate", K_BOOL, NUM(mail_gate), 0, 0 },
	{ "mail", "mta", K_MAIL_MTA, NUM(mail_exim), 0, 0 },
	{ "mail", "socket", K_PATH, STR(mail_socket), 0, 0 },
	{ "mail", "postfix_queue", K_PATH, STR(mail_queue), 0, 0 },
	{ "mail", "limit", K_MAIL_RATE, NUM(mail_limit), 0, MAILLIMIT_MAX },
	{ "mail", "domain_limit", K_MAIL_RATE, NUM(mail_domain_limit), 0, MAILLIMIT_OFF },
	{ "mail", "over_limit", K_MAIL_OVER, NUM(mail_over), 0, 0 },
	{ "mail", "fail", K_MAIL_FAIL, NUM(mail_fail_tempfail), 0, 0 },
	{ "mail", "state", K_PATH, STR(mail_state), 0, 0 },
	{ "mail", "user", K_TEXT, STR(mail_user), 0, 0 },
	{ "mail", "group", K_TEXT, STR(mail_group), 0, 0 },
	{ "metrics", "textfile", K_OPT_PATH, STR(metrics_textfile), 0, 0 },
	{ "metrics", "interval", K_U32, NUM(metrics_interval), 1, 3600 },
	{ "metrics", "top_users", K_U32, NUM(metrics_top_users), 0, METRICS_TOP_MAX },
};
#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

static const char *const sections[] = { "guard", "log", "alert", "trap", "mail", "metrics" };
#define NSECTIONS	(sizeof(sections) / sizeof(sections[0]))

struct parse {
	struct config	*cfg;
	const char	*name;		/* the file's name, for errors */
	const char	*p, *end;	/* text not yet read */
	int		 line;		/* of the line libinih is working on */
	int		 seen[NKEYS];	/* the line a key was set on; 0: not set */
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
	cfg->connect_hook = true;
	cfg->queue_num = 0;
	cfg->queue_maxlen = 4096;
	cfg->audit_log_group = 2525;
	cfg->trap_port = 10025;
	cfg->redirect_to = 25;	/* the MTA's smtpd, on 127.0.0.1 and ::1 */
	cfg->inspect_bytes = 4096;
	cfg->detect_any_port = false;
	cfg->any_port_timeout = 300;	/* RFC 5321 4.5.3.2.1: a client waits 5 min for the greeting */
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
	cfg->alert_exec[0] = '\0';
	cfg->trap_sessions = 64;
	cfg->trap_timeout = 30;
	cfg->trap_bytes = 1024 * 1024;
	strlcpy_sg(cfg->trap_reply, "5.7.1 This host does not send mail directly to remote "
	    "servers; hand it to the local MTA", sizeof(cfg->trap_reply));
	strlcpy_sg(cfg->trap_user, "nobody", sizeof(cfg->trap_user));
	cfg->mail_gate = false;
	/* Inside Postfix's queue directory, where its chrooted smtpd and cleanup reach. */
	strlcpy_sg(cfg->mail_socket, "/var/spool/postfix/smtpguard/gate.sock",
	    sizeof(cfg->mail_socket));
	strlcpy_sg(cfg->mail_queue, "/var/spool/postfix", sizeof(cfg->mail_queue));
	cfg->mail_limit = 200;
	cfg->mail_domain_limit = MAILLIMIT_OFF;
	cfg->mail_over = MAIL_HOLD;
	cfg->mail_fail_tempfail = false;
	cfg->mail_exim = false;
	strlcpy_sg(cfg->mail_state, "/var/lib/smtpguard/mail.state", sizeof(cfg->mail_state));
	strlcpy_sg(cfg->mail_user, "nobody", sizeof(cfg->mail_user));
	strlcpy_sg(cfg->mail_group, "postfix", sizeof(cfg->mail_group));
	cfg->metrics_textfile[0] = '\0';
	cfg->metrics_interval = 15;	/* node_exporter's scrapes are 15 s by default */
	cfg->metrics_top_users = 10;
}

/* "FILE:LINE: [section] key: what (got 'value')"; the first error wins. */
static int __attribute__((format(printf, 5, 6)))
fail_key(struct parse *ps, const char *section, const char *name, const char *value,
    const char *fmt, ...)
{
	char what[CONFIG_ERR_WHAT_MAX];
	va_list ap;

	if (ps->failed)
		return 0;
	ps->failed = true;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(ps->err, ps->errlen, "%s:%d: [%s] %s: %s (got '%s')", ps->name, ps->line,
	    section, name, what, value);
	return 0;
}

/* "FILE:LINE: what (got 'text')", for lines that are not a key at all. */
static void
fail_line(struct parse *ps, const char *what, const char *text, size_t len)
{
	if (ps->failed)
		return;
	ps->failed = true;
	snprintf(ps->err, ps->errlen, "%s:%d: %s (got '%.*s')", ps->name, ps->line, what,
	    (int)len, text);
}

static bool
known_section(const char *s, size_t len)
{
	for (size_t i = 0; i < NSECTIONS; i++)
		if (strlen(sections[i]) == len && strncmp(sections[i], s, len) == 0)
			return true;
	return false;
}

/*
 * Checks one line (leading blanks already gone) before libinih sees it, so
 * that every error carries our file:line and the text, and libinih is only
 * ever given comments, known [section]s and key = value lines.
 */
static int
check_line(struct parse *ps, const char *s, size_t n)
{
	const char *sep;
	size_t k;

	if (n == 0 || s[0] == '#' || s[0] == ';')
		return 0;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);
		const char *rest;

		if (close == NULL) {
			fail_line(ps, "a [section] line without ']'", s, n);
			return -1;
		}
		for (rest = close + 1; rest < s + n && isspace((unsigned char)*rest); rest++)
			;
		if (rest < s + n && *rest != ';' && *rest != '#') {
			fail_line(ps, "text after a [section]", s, n);
			return -1;
		}
		if (!known_section(s + 1, (size_t)(close - s - 1))) {
			fail_line(ps, "unknown section (known: [guard], [log], [alert], [trap], "
			    "[mail], [metrics])", s, n);
			return -1;
		}
		return 0;
	}
	for (k = 0; k < n && s[k] != '=' && s[k] != ':'; k++)
		/* libinih ends the line at an inline ';' comment */
		if (s[k] == ';' && k > 0 && isspace((unsigned char)s[k - 1]))
			break;
	sep = k < n && (s[k] == '=' || s[k] == ':') ? s + k : NULL;
	if (sep == NULL) {
		fail_line(ps, "not a [section] or key = value line", s, n);
		return -1;
	}
	if (sep == s) {
		fail_line(ps, "a value without a key", s, n);
		return -1;
	}
	return 0;
}

/*
 * libinih's fgets-like reader, one line per call: counts lines, refuses
 * lines it would split and NUL bytes, and drops leading blanks, because
 * libinih would read an indented line as the continuation of the previous
 * key's value. (A UTF-8 BOM was skipped before the first line.)
 */
static char *
read_line(char *buf, int size, void *arg)
{
	struct parse *ps = arg;
	const char *s;
	size_t n;
	int rc;

	if (ps->failed)
		return NULL;
	if ((rc = text_line(&ps->p, ps->end, CONFIG_LINE_MAX, &s, &n)) == 0)
		return NULL;
	ps->line++;
	if (rc < 0 && errno == EILSEQ) {
		fail_line(ps, "a NUL byte: not a text file", "", 0);
		return NULL;
	}
	if (rc < 0 || n + 3 > (size_t)size) {
		char what[64];

		snprintf(what, sizeof(what), "line longer than %d characters", CONFIG_LINE_MAX);
		fail_line(ps, what, s, CONFIG_ERR_QUOTE_MAX);
		return NULL;
	}
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	if (check_line(ps, s, n) < 0)
		return NULL;
	memcpy(buf, s, n);
	buf[n] = '\n';
	buf[n + 1] = '\0';
	return buf;
}

/* Decimal only: a leading 0 must not turn 025 into octal 21. */
static int
parse_ulong(const char *v, int base, unsigned long min, unsigned long max,
    unsigned long *out)
{
	char *end;
	unsigned long n;

	if (!isdigit((unsigned char)v[0]))
		return -1;
	errno = 0;
	n = strtoul(v, &end, base);
	if (errno != 0 || end == v || *end != '\0' || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

static int
parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
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

/* A user name as useradd(8) and Debian's adduser accept it, or a uid. */
static bool
valid_user(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= USER_NAME_MAX || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && c != '_' && c != '-' && c != '.' &&
		    !(c == '$' && i == n - 1))
			return false;
	}
	return true;
}

static int
parse_users(struct parse *ps, const struct key *k, const char *v)
{
	char buf[CONFIG_MAX_LIST], *tok, *save = NULL;
	size_t n = 0;
	bool has_auto = false;

	if (strlcpy_sg(buf, v, sizeof(buf)) >= sizeof(buf))
		return fail_key(ps, k->section, k->name, v, "longer than %d bytes",
		    CONFIG_MAX_LIST - 1);
	for (tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		unsigned long uid;

		if (strcmp(tok, "auto") == 0)
			has_auto = true;
		else if (strcmp(tok, "root") == 0 || strspn(tok, "0") == strlen(tok))
			return fail_key(ps, k->section, k->name, v, "'%s' is root: root is fenced "
			    "like every user, and exempting it would exempt anything running as "
			    "root; name the MTA's own account(s)", tok);
		else if (isdigit((unsigned char)tok[0])) {
			if (parse_ulong(tok, 10, 0, (uid_t)-1 - 1, &uid) < 0)
				return fail_key(ps, k->section, k->name, v,
				    "'%s' is not a uid (0-%lu)", tok,
				    (unsigned long)((uid_t)-1 - 1));
		} else if (!valid_user(tok))
			return fail_key(ps, k->section, k->name, v,
			    "'%s' is not a user name", tok);
		if (++n > CONFIG_MAX_UIDS)
			return fail_key(ps, k->section, k->name, v,
			    "list too long: more than %d accounts", CONFIG_MAX_UIDS);
	}
	if (n == 0)
		return fail_key(ps, k->section, k->name, v,
		    "expected auto or a list of user names and uids");
	if (has_auto && n > 1)
		return fail_key(ps, k->section, k->name, v,
		    "auto cannot be mixed with names: list every account instead");
	strlcpy_sg(ps->cfg->mta_users, v, sizeof(ps->cfg->mta_users));
	ps->cfg->mta_users_line = ps->line;
	return 1;
}

static int
parse_ports(struct parse *ps, const struct key *k, const char *v)
{
	struct config *cfg = ps->cfg;
	char buf[CONFIG_MAX_LIST], *tok, *save = NULL;
	unsigned long n;

	if (strlcpy_sg(buf, v, sizeof(buf)) >= sizeof(buf))
		return fail_key(ps, k->section, k->name, v, "longer than %d bytes",
		    CONFIG_MAX_LIST - 1);
	cfg->nports = 0;
	for (tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (parse_ulong(tok, 10, k->min, k->max, &n) < 0)
			return fail_key(ps, k->section, k->name, v,
			    "'%s' is not a port (%lu-%lu)", tok, k->min, k->max);
		for (size_t i = 0; i < cfg->nports; i++)
			if (cfg->ports[i] == n)
				return fail_key(ps, k->section, k->name, v,
				    "port %lu listed twice", n);
		if (cfg->nports == CONFIG_MAX_PORTS)
			return fail_key(ps, k->section, k->name, v,
			    "list too long: more than %d ports", CONFIG_MAX_PORTS);
		cfg->ports[cfg->nports++] = (uint16_t)n;
	}
	if (cfg->nports == 0)
		return fail_key(ps, k->section, k->name, v, "at least one port is needed");
	return 1;
}

/* "N" or "N/10min": the alert window is fixed at ten minutes (DESIGN.md §3). */
static int
parse_rate(struct parse *ps, const struct key *k, const char *v, unsigned int *out)
{
	char num[32];
	const char *slash = strchr(v, '/');
	size_t n = slash ? (size_t)(slash - v) : strlen(v);
	unsigned long r;

	if (n >= sizeof(num) || (slash != NULL && strcmp(slash, "/10min") != 0))
		goto bad;
	memcpy(num, v, n);
	num[n] = '\0';
	if (parse_ulong(num, 10, k->min, k->max, &r) < 0)
		goto bad;
	*out = (unsigned int)r;
	return 1;
bad:
	return fail_key(ps, k->section, k->name, v,
	    "expected N or N/10min, N from %lu to %lu (0 = off)", k->min, k->max);
}

/*
 * The states are stored from the mask's lowest set bit up (util.c), so each
 * of them must fit under the mask once shifted there.
 */
static bool
mask_holds_states(uint32_t mask)
{
	for (int st = 1; st <= MARK_LAST; st++)
		if (mark_value(mask, (enum mark_state)st) == 0)
			return false;
	return true;
}

static int
set_key(struct parse *ps, const struct key *k, const char *v)
{
	char *field = (char *)ps->cfg + k->offset;
	unsigned long n;
	bool b;

	switch (k->type) {
	case K_USERS:
		return parse_users(ps, k, v);
	case K_PORTS:
		return parse_ports(ps, k, v);
	case K_ACTION:
		if (action_parse(v, &ps->cfg->action) < 0 || ps->cfg->action == ACTION_ALLOW)
			return fail_key(ps, k->section, k->name, v,
			    "expected reject, trap, audit or redirect");
		return 1;
	case K_BOOL:
		if (parse_bool(v, &b) < 0)
			return fail_key(ps, k->section, k->name, v,
			    "expected yes or no (also true/false, on/off, 1/0)");
		*(bool *)field = b;
		return 1;
	case K_U16:
	case K_U32:
	case K_SIZE:
		if (parse_ulong(v, 10, k->min, k->max, &n) < 0)
			return fail_key(ps, k->section, k->name, v,
			    "expected a number from %lu to %lu", k->min, k->max);
		if (k->type == K_U16)
			*(uint16_t *)field = (uint16_t)n;
		else if (k->type == K_U32)
			*(uint32_t *)field = (uint32_t)n;
		else
			*(size_t *)field = n;
		return 1;
	case K_MASK:
		if (parse_ulong(v, 0, k->min, k->max, &n) < 0 ||
		    !mask_holds_states((uint32_t)n))
			return fail_key(ps, k->section, k->name, v,
			    "expected a mask whose lowest set bits can hold the values 1-%d "
			    "(3 contiguous bits), e.g. 0x00700000", MARK_LAST);
		*(uint32_t *)field = (uint32_t)n;
		return 1;
	case K_OPT_PATH:
	case K_PATH:
		if (v[0] == '\0' && k->type == K_OPT_PATH) {
			field[0] = '\0';
			return 1;
		}
		if (v[0] != '/')
			return fail_key(ps, k->section, k->name, v,
			    "must be an absolute path");
		if (strlcpy_sg(field, v, k->size) >= k->size)
			return fail_key(ps, k->section, k->name, v,
			    "path longer than %zu bytes", k->size - 1);
		return 1;
	case K_RATE:
		return parse_rate(ps, k, v, (unsigned int *)field);
	case K_TEXT:
		if (v[0] == '\0')
			return fail_key(ps, k->section, k->name, v, "must not be empty");
		for (const char *c = v; *c != '\0'; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				return fail_key(ps, k->section, k->name, v,
				    "holds a control character");
		if (strlcpy_sg(field, v, k->size) >= k->size)
			return fail_key(ps, k->section, k->name, v, "longer than %zu bytes",
			    k->size - 1);
		return 1;
	case K_MAIL_RATE:
		if (maillimit_parse_rate(v, k->max == MAILLIMIT_OFF, (uint32_t *)field) < 0)
			return fail_key(ps, k->section, k->name, v, "expected N/hour, N from 0 "
			    "to %d%s", MAILLIMIT_MAX, k->max == MAILLIMIT_OFF ? ", or off" : "");
		return 1;
	case K_MAIL_OVER:
		if (strcmp(v, "hold") == 0)
			ps->cfg->mail_over = MAIL_HOLD;
		else if (strcmp(v, "defer") == 0)
			ps->cfg->mail_over = MAIL_DEFER;
		else if (strcmp(v, "reject") == 0)
			ps->cfg->mail_over = MAIL_REJECT;
		else
			return fail_key(ps, k->section, k->name, v,
			    "expected hold, defer or reject");
		return 1;
	case K_MAIL_FAIL:
		if (strcmp(v, "accept") != 0 && strcmp(v, "tempfail") != 0)
			return fail_key(ps, k->section, k->name, v, "expected accept or tempfail");
		ps->cfg->mail_fail_tempfail = strcmp(v, "tempfail") == 0;
		return 1;
	case K_MAIL_MTA:
		if (strcmp(v, "postfix") != 0 && strcmp(v, "exim") != 0)
			return fail_key(ps, k->section, k->name, v, "expected postfix or exim");
		ps->cfg->mail_exim = strcmp(v, "exim") == 0;
		return 1;
	}
	return fail_key(ps, k->section, k->name, v, "no parser for this key");
}

static int
on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse *ps = user;

	if (ps->failed)
		return 0;
	if (section[0] == '\0') {
		char what[CONFIG_ERR_WHAT_MAX];

		snprintf(what, sizeof(what), "%s: key before any [section]", name);
		fail_line(ps, what, value, strlen(value));
		return 0;
	}
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) != 0 || strcmp(keys[i].name, name) != 0)
			continue;
		if (ps->seen[i])
			return fail_key(ps, section, name, value, "duplicate key");
		ps->seen[i] = ps->line;
		return set_key(ps, &keys[i], value);
	}
	return fail_key(ps, section, name, value, "unknown key");
}

static int
key_line(const struct parse *ps, const char *section, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
			return ps->seen[i];
	return 0;
}

/* Values each fine alone that together would open the fence. */
static int
check_fence(struct parse *ps)
{
	const struct config *cfg = ps->cfg;
	char got[8];

	for (size_t i = 0; i < cfg->nports; i++) {
		if (cfg->ports[i] != cfg->trap_port)
			continue;
		snprintf(got, sizeof(got), "%u", (unsigned int)cfg->trap_port);
		/* Blame the key the admin wrote: trap_port if set, else ports. */
		if ((ps->line = key_line(ps, "guard", "trap_port")) > 0)
			return fail_key(ps, "guard", "trap_port", got, "%s is a fenced port: "
			    "trapped flows would be sent to an SMTP port; choose one outside "
			    "ports", got) - 1;
		ps->line = key_line(ps, "guard", "ports");
		return fail_key(ps, "guard", "ports", got, "%s is the trap's port "
		    "(trap_port): fencing it would send trapped flows back to the fence; "
		    "set trap_port to a port outside ports", got) - 1;
	}
	if (cfg->action == ACTION_REDIRECT && !cfg->mail_gate) {
		ps->line = key_line(ps, "guard", "action");
		return fail_key(ps, "guard", "action", "redirect", "redirected mail would enter "
		    "the MTA's queue with no limit on it: set [mail] gate = yes (and `smtpguard "
		    "mail enable`), or choose reject, trap or audit") - 1;
	}
	if (cfg->redirect_to == cfg->trap_port) {
		snprintf(got, sizeof(got), "%u", (unsigned int)cfg->redirect_to);
		if ((ps->line = key_line(ps, "guard", "redirect_to")) > 0)
			return fail_key(ps, "guard", "redirect_to", got, "%s is the trap's port: "
			    "redirected mail would be refused by the trap instead of queued by "
			    "the MTA; give the MTA's smtpd port (25)", got) - 1;
		ps->line = key_line(ps, "guard", "trap_port");
		return fail_key(ps, "guard", "trap_port", got, "%s is the port redirected "
		    "flows go to (redirect_to): choose another trap port", got) - 1;
	}
	return 0;
}

int
config_load_string(struct config *cfg, const char *text, size_t len, const char *name,
    char *err, size_t errlen)
{
	struct parse ps = { .cfg = cfg, .name = name, .p = text, .end = text + len,
	    .err = err, .errlen = errlen };
	int rc;

	config_defaults(cfg);
	if (strlcpy_sg(cfg->path, name, sizeof(cfg->path)) >= sizeof(cfg->path)) {
		snprintf(err, errlen, "%.64s...: file name longer than %d bytes", name,
		    PATH_MAX - 1);
		goto fail;
	}
	if (len >= 3 && memcmp(text, UTF8_BOM, 3) == 0)
		ps.p += 3;
	rc = ini_parse_stream(read_line, &ps, on_key, &ps);
	if (ps.failed)
		goto fail;
	if (check_fence(&ps) < 0)
		goto fail;
	/* The Postfix defaults mean nothing to Exim: Debian's Exim has its own user. */
	if (cfg->mail_exim && key_line(&ps, "mail", "socket") == 0)
		strlcpy_sg(cfg->mail_socket, CONFIG_EXIM_SOCKET, sizeof(cfg->mail_socket));
	if (cfg->mail_exim && key_line(&ps, "mail", "group") == 0)
		strlcpy_sg(cfg->mail_group, "Debian-exim", sizeof(cfg->mail_group));
	if (rc != 0) {
		/* check_line() should have caught it; keep libinih's verdict anyway */
		snprintf(err, errlen, "%s:%d: not a [section] or key = value line", name, rc);
		goto fail;
	}
	return 0;
fail:
	memset(cfg, 0, sizeof(*cfg));
	return -1;
}

int
config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct stat sb;
	char *text;
	size_t len = 0;
	ssize_t n;
	int fd, rc = -1;

	memset(cfg, 0, sizeof(*cfg));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > CONFIG_FILE_MAX) {
		snprintf(err, errlen, "%s: not a regular file of at most %d bytes", path,
		    CONFIG_FILE_MAX);
		goto err1;
	}
	if ((text = malloc((size_t)sb.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto err1;
	}
	while (len < (size_t)sb.st_size) {
		n = read(fd, text + len, (size_t)sb.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto err2;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	text[len] = '\0';
	rc = config_load_string(cfg, text, len, path, err, errlen);
err2:
	free(text);
err1:
	close(fd);
	return rc;
}
