/*
 * event.c — the event log: one JSON object per line (fields as DESIGN.md
 * §3), each line one write(2) on an O_APPEND descriptor so lines are never
 * torn or interleaved; a one-line summary to syslog where asked. Unknown
 * fields are left out, never invented. Strings from processes and peers are
 * hostile: invalid UTF-8 becomes U+FFFD, the rest is escaped as JSON.
 * A file deleted or rotated away is reopened (checked at most once a second).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "smtpguard.h"

#define EVENT_REOPEN_CHECK	1	/* seconds between checks of the path */
#define SYSLOG_LINE_MAX		1024
#define EVENT_CUT_STRING	512	/* a cut line's strings, escaped, at most */
#define EVENT_STRINGS_MAX	(40 + SMTP_RCPT_KEEP)	/* string fields of one line, at most */

/* A cut line always fits: each string, its key and its punctuation. */
_Static_assert(EVENT_STRINGS_MAX * (EVENT_CUT_STRING + 32) < EVENT_LINE_MAX,
    "a cut event line must fit in EVENT_LINE_MAX");

struct event_log {
	int	 fd;
	bool	 use_syslog;
	time_t	 checked;
	char	 path[PATH_MAX];
};

/*
 * The line is written straight into the caller's buffer, in jansson's
 * compact form (json_dumpb, JSON_COMPACT | JSON_PRESERVE_ORDER): the same
 * bytes the log always had, without building an object per event. Once
 * the buffer is full the writer only notes it (ENOSPC).
 */
struct json_out {
	char	*p, *end;
	bool	 over;
	bool	 first;
	size_t	 string_max;	/* 0, or each string's escaped bytes at most (cut) */
};

static void
put_bytes(struct json_out *w, const char *s, size_t n)
{
	if (w->over || (size_t)(w->end - w->p) < n) {
		w->over = true;
		return;
	}
	memcpy(w->p, s, n);
	w->p += n;
}

/*
 * Length of the well-formed UTF-8 sequence (RFC 3629: no overlongs, no
 * surrogates, <= U+10FFFF) that starts S, or 0: at most LEN bytes.
 */
static size_t
utf8_seq_len(const unsigned char *s, size_t len)
{
	size_t need, k;
	uint32_t min, cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) { need = 1; min = 0x80; cp = s[0] & 0x1f; }
	else if (s[0] >= 0xe0 && s[0] <= 0xef) { need = 2; min = 0x800; cp = s[0] & 0x0f; }
	else if (s[0] >= 0xf0 && s[0] <= 0xf4) { need = 3; min = 0x10000; cp = s[0] & 0x07; }
	else
		return 0;
	for (k = 1; k <= need && k < len && (s[k] & 0xc0) == 0x80; k++)
		cp = (cp << 6) | (s[k] & 0x3f);
	if (k != need + 1 || cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need + 1;
}

/*
 * One piece of a string (N bytes, a whole character or escape unless CAN_CUT):
 * false once the string's cut (w->string_max) is reached. *OUT counts the
 * string's bytes so far.
 */
static bool
put_piece(struct json_out *w, const char *piece, size_t n, bool can_cut, size_t *out)
{
	if (w->string_max > 0 && *out + n > w->string_max) {
		if (can_cut)
			put_bytes(w, piece, w->string_max - *out);
		*out = w->string_max;
		return false;
	}
	put_bytes(w, piece, n);
	*out += n;
	return true;
}

/*
 * S as a JSON string. Strings from processes and peers are hostile: a byte
 * that does not start a well-formed sequence becomes U+FFFD; quotes,
 * backslashes and control characters are escaped as jansson does.
 */
static void
put_string(struct json_out *w, const char *str)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)str;
	size_t len = strlen(str), i = 0, run, out = 0;
	char esc[6];
	bool room = true;

	put_bytes(w, "\"", 1);
	while (i < len && room) {
		for (run = i; run < len && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' &&
		    s[run] != '\\'; run++)
			;
		if (!put_piece(w, str + i, run - i, true, &out) || (i = run) == len)
			break;
		if (s[i] >= 0x80) {
			size_t n = utf8_seq_len(s + i, len - i);

			room = put_piece(w, n > 0 ? str + i : "\xef\xbf\xbd", n > 0 ? n : 3, false,
			    &out);
			i += n > 0 ? n : 1;
			continue;
		}
		esc[0] = '\\';
		switch (s[i]) {
		case '"': case '\\': esc[1] = (char)s[i]; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[s[i] >> 4];
			esc[5] = hex[s[i] & 0xf];
			room = put_piece(w, esc, 6, false, &out);
			i++;
			continue;
		}
		room = put_piece(w, esc, 2, false, &out);
		i++;
	}
	put_bytes(w, "\"", 1);
}

static void
put_key(struct json_out *w, const char *key)
{
	if (!w->first)
		put_bytes(w, ",", 1);
	w->first = false;
	put_bytes(w, "\"", 1);
	put_bytes(w, key, strlen(key));
	put_bytes(w, "\":", 2);
}

/* A string field; left out when S is NULL or empty. */
static void
set_str(struct json_out *w, const char *key, const char *s)
{
	if (s == NULL || s[0] == '\0')
		return;
	put_key(w, key);
	put_string(w, s);
}

/* A flag: written only when true, as jansson's json_true(). */
static void
set_true(struct json_out *w, const char *key)
{
	put_key(w, key);
	put_bytes(w, "true", 4);
}

static void
set_int(struct json_out *w, const char *key, long long v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%lld", v);

	put_key(w, key);
	put_bytes(w, num, (size_t)n);
}

static void
event_addr(int family, const uint8_t *addr, char *out, size_t len)
{
	if (inet_ntop(family, addr, out, (socklen_t)len) == NULL)
		out[0] = '\0';
}

void
event_time(const struct timespec *ts, char *out, size_t len)
{
	struct tm tm;
	char sec[24];

	gmtime_r(&ts->tv_sec, &tm);
	strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, len, "%.20s.%06uZ", sec, (unsigned int)(ts->tv_nsec / 1000) % 1000000);
}

/*
 * A mail event has both parts, and one rcpt_count: where the SMTP part puts
 * it (more recipients than kept), with the mail part's count; else where the
 * mail part does. As jansson's object had it: a key set again keeps its place.
 */
static void
set_smtp(struct json_out *w, const struct smtp_info *m, const struct mail_event *mail,
    bool *rcpt_count_set)
{
	set_str(w, "helo", m->helo);
	set_str(w, "mail_from", m->mail_from);
	if (m->nrcpt_kept > 0) {
		bool first = true;

		put_key(w, "rcpt_to");
		put_bytes(w, "[", 1);
		for (size_t i = 0; i < m->nrcpt_kept && i < SMTP_RCPT_KEEP; i++) {
			if (m->rcpt_to[i][0] == '\0')
				continue;
			if (!first)
				put_bytes(w, ",", 1);
			first = false;
			put_string(w, m->rcpt_to[i]);
		}
		put_bytes(w, "]", 1);
	}
	if (m->nrcpt > m->nrcpt_kept) {
		set_int(w, "rcpt_count", (long long)(mail != NULL ? mail->rcpt_count : m->nrcpt));
		*rcpt_count_set = true;
	}
	set_str(w, "auth_user", m->auth_user);
	if (m->starttls)
		set_true(w, "starttls");
	set_str(w, "tls_sni", m->tls_sni);
	set_str(w, "subject", m->subject);
	set_str(w, "header_from", m->header_from);
	set_str(w, "header_to", m->header_to);
	set_str(w, "message_id", m->message_id);
	set_str(w, "x_mailer", m->x_mailer);
	set_str(w, "php_script", m->php_script);
	set_str(w, "reply", m->reply);
	if (m->bytes > 0)
		set_int(w, "bytes", (long long)m->bytes);
	set_str(w, "inspect", m->inspect);
	set_str(w, "proto", m->proto);
}

/*
 * The mail gate's fields (mailgate.c); rcpt_count always, as a mail event's
 * size, but for a summary (its origin, and how many were not written).
 */
static void
set_mail(struct json_out *w, const struct mail_event *m, bool summary, bool rcpt_count_set)
{
	set_str(w, "origin", m->origin);
	set_str(w, "domain", m->domain);
	set_str(w, "sasl_user", m->sasl_user);
	set_str(w, "client_ip", m->client_ip);
	set_str(w, "queue_id", m->queue_id);
	set_str(w, "mta", m->mta);
	if (!summary && !rcpt_count_set)
		set_int(w, "rcpt_count", (long long)m->rcpt_count);
	if (m->counted)
		set_int(w, "hour_count", m->hour_count);
	if (m->limit != UINT32_MAX)
		set_int(w, "limit", m->limit);
}

static int
encode(const struct event *e, char *buf, size_t len, size_t string_max)
{
	struct json_out w = { .p = buf, .end = buf + len, .first = true,
	    .string_max = string_max };
	const struct mail_event *mail = e->suppressed > 0 ? NULL : e->mail;
	char tmp[INET6_ADDRSTRLEN + 1];
	bool rcpt_count_set = false;

	put_bytes(&w, "{", 1);
	event_time(&e->ts, tmp, sizeof(tmp));
	set_str(&w, "ts", tmp);
	set_str(&w, "event", e->event);
	set_str(&w, "action", e->action);
	set_str(&w, "rule", e->rule);
	if (e->who != NULL) {
		const struct attrib *a = e->who;

		if (a->has_uid)
			set_int(&w, "uid", a->uid);
		set_str(&w, "user", a->user);
		if (a->has_gid)
			set_int(&w, "gid", a->gid);
		if (a->has_pid)
			set_int(&w, "pid", a->pid);
		if (a->has_ppid)
			set_int(&w, "ppid", a->ppid);
		set_str(&w, "exe", a->exe);
		set_str(&w, "cmdline", a->cmdline);
		set_str(&w, "cwd", a->cwd);
		set_str(&w, "cgroup", a->cgroup);
	}
	if (e->flow != NULL && (e->flow->family == AF_INET || e->flow->family == AF_INET6)) {
		set_str(&w, "family", e->flow->family == AF_INET ? "ipv4" : "ipv6");
		event_addr(e->flow->family, e->flow->src, tmp, sizeof(tmp));
		set_str(&w, "src_ip", tmp);
		set_int(&w, "src_port", e->flow->sport);
		event_addr(e->flow->family, e->flow->dst, tmp, sizeof(tmp));
		set_str(&w, "dst_ip", tmp);
		set_int(&w, "dst_port", e->flow->dport);
	}
	if (e->flow_id != 0)
		set_int(&w, "flow_id", (long long)e->flow_id);
	if (e->smtp != NULL)
		set_smtp(&w, e->smtp, mail, &rcpt_count_set);
	if (e->mail != NULL)
		set_mail(&w, e->mail, e->suppressed > 0, rcpt_count_set);
	if (e->suppressed > 0) {
		set_int(&w, "suppressed", (long long)e->suppressed);
		set_int(&w, "window", e->window);
	}
	set_str(&w, "msg", e->msg);
	if (string_max > 0)
		set_true(&w, "cut");
	put_bytes(&w, "}\n", 2);
	if (w.over || w.p == w.end) {
		errno = ENOSPC;
		return -1;
	}
	*w.p = '\0';
	return (int)(w.p - buf);
}

/*
 * A line too long for the buffer is written again with every string cut
 * ("cut": true): a process or a peer can make its own line long (a 4 KiB
 * cmdline of control bytes is 24 KiB escaped), and must not keep its event
 * out of the log that way. A cut line of the full size always fits.
 */
int
event_encode(const struct event *e, char *buf, size_t len)
{
	int n = encode(e, buf, len, 0);

	if (n < 0 && errno == ENOSPC)
		n = encode(e, buf, len, EVENT_CUT_STRING);
	return n;
}

static int
event_reopen(struct event_log *l)
{
	int fd;

	struct group *adm;
	bool created = true;

	if (ensure_parent_dir(l->path, 0750) < 0)
		return -1;
	fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0 && errno == EEXIST) {
		created = false;
		fd = open(l->path, O_WRONLY | O_APPEND | O_CLOEXEC);
	}
	if (fd < 0)
		return -1;
	/* Debian's log readers are group adm; an existing file keeps its owner. */
	if (created && (adm = getgrnam("adm")) != NULL)
		(void)fchown(fd, (uid_t)-1, adm->gr_gid);
	if (l->fd >= 0)
		close(l->fd);
	l->fd = fd;
	return 0;
}

struct event_log *
event_open(const char *path, bool use_syslog, char *err, size_t errlen)
{
	struct event_log *l;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->fd = -1;
	l->use_syslog = use_syslog && access("/dev/log", W_OK) == 0;
	strlcpy_sg(l->path, path, sizeof(l->path));
	if (event_reopen(l) < 0) {
		snprintf(err, errlen, "events file %s: %s", path, strerror(errno));
		free(l);
		return NULL;
	}
	if (l->use_syslog)
		openlog("smtpguardd", LOG_PID | LOG_NDELAY, LOG_MAIL);
	l->checked = time(NULL);
	return l;
}

void
event_close(struct event_log *l)
{
	if (l == NULL)
		return;
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}

/* Rotated (the path names another file) or deleted: start a new file at the path. */
static void
event_check_path(struct event_log *l)
{
	struct stat at_fd, at_path;
	time_t now = time(NULL);

	if (now - l->checked < EVENT_REOPEN_CHECK && l->fd >= 0)
		return;
	l->checked = now;
	if (l->fd >= 0 && fstat(l->fd, &at_fd) == 0 && at_fd.st_nlink > 0 &&
	    stat(l->path, &at_path) == 0 && at_path.st_ino == at_fd.st_ino &&
	    at_path.st_dev == at_fd.st_dev)
		return;
	(void)event_reopen(l);
}

/* Control characters would forge or garble syslog lines: they go out as \xNN. */
static void
syslog_escape(const char *in, char *out, size_t len)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0;

	for (; *p != '\0' && o + 5 < len; p++) {
		if (*p < 0x20 || *p == 0x7f)
			o += (size_t)snprintf(out + o, len - o, "\\x%02x", *p);
		else
			out[o++] = (char)*p;
	}
	out[o] = '\0';
}

/* "reject uid=33(www-data) pid=123 exe=/usr/bin/php8.2 -> 192.0.2.25:25 flow=7" */
static void
syslog_summary(const struct event *e)
{
	char line[SYSLOG_LINE_MAX], safe[SYSLOG_LINE_MAX * 4], dst[INET6_ADDRSTRLEN] = "";
	const struct attrib *a = e->who;
	const struct smtp_info *m = e->smtp;
	int n = 0;

#define PUT(...) do {							\
	if (n >= 0 && (size_t)n < sizeof(line))				\
		n += snprintf(line + n, sizeof(line) - (size_t)n, __VA_ARGS__); \
} while (0)
	PUT("%s", e->action != NULL ? e->action : e->event != NULL ? e->event : "event");
	if (e->action != NULL && e->event != NULL && strcmp(e->event, "attempt") != 0)
		PUT(" %s", e->event);
	if (a != NULL && a->has_uid)
		PUT(" uid=%lu(%s)", (unsigned long)a->uid, a->user[0] ? a->user : "?");
	if (a != NULL && a->has_pid)
		PUT(" pid=%ld", (long)a->pid);
	if (a != NULL && a->exe[0] != '\0')
		PUT(" exe=%.256s", a->exe);
	if (e->flow != NULL && (e->flow->family == AF_INET || e->flow->family == AF_INET6)) {
		event_addr(e->flow->family, e->flow->dst, dst, sizeof(dst));
		PUT(e->flow->family == AF_INET6 ? " -> [%s]:%u" : " -> %s:%u", dst,
		    e->flow->dport);
	}
	if (e->flow_id != 0)
		PUT(" flow=%llu", (unsigned long long)e->flow_id);
	if (e->mail != NULL && e->mail->origin != NULL)
		PUT(" origin=%.256s", e->mail->origin);
	if (e->mail != NULL && e->mail->queue_id != NULL && e->mail->queue_id[0] != '\0')
		PUT(" queue_id=%.64s", e->mail->queue_id);
	if (m != NULL && m->mail_from[0] != '\0')
		PUT(" from=<%.256s>", m->mail_from);
	if (m != NULL && m->nrcpt > 0)
		PUT(" rcpts=%zu", m->nrcpt);
	if (m != NULL && m->subject[0] != '\0')
		PUT(" subject=\"%.200s\"", m->subject);
	if (e->suppressed > 0)
		PUT(" suppressed=%llu in %us", (unsigned long long)e->suppressed, e->window);
	if (e->msg != NULL)
		PUT(": %s", e->msg);
#undef PUT
	syslog_escape(line, safe, sizeof(safe));
	syslog(LOG_NOTICE, "%s", safe);
}

int
event_write(struct event_log *l, const struct event *e)
{
	static char buf[EVENT_LINE_MAX];
	int n;

	if ((n = event_encode(e, buf, sizeof(buf))) < 0)
		return -1;
	event_check_path(l);
	if (l->use_syslog)
		syslog_summary(e);
	if (l->fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (write(l->fd, buf, (size_t)n) != n) {
		/* ENOSPC, EIO: this line is lost; try the path again next second. */
		l->checked = 0;
		return -1;
	}
	return 0;
}
