/*
 * event.c — the event log: one JSON object per line (fields as DESIGN.md
 * §3), each line one write(2) on an O_APPEND descriptor so lines are never
 * torn or interleaved; a one-line summary to syslog where asked. Unknown
 * fields are left out, never invented. Strings from processes and peers are
 * hostile: invalid UTF-8 becomes U+FFFD, the JSON encoder escapes the rest.
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

#include <jansson.h>

#include "smtpguard.h"

#define EVENT_REOPEN_CHECK	1	/* seconds between checks of the path */
#define SYSLOG_LINE_MAX		1024

struct event_log {
	int	 fd;
	bool	 use_syslog;
	time_t	 checked;
	char	 path[PATH_MAX];
};

/*
 * Copies s into a buffer as valid UTF-8: each byte that does not start a
 * well-formed sequence (RFC 3629: no overlongs, no surrogates, ≤ U+10FFFF)
 * becomes U+FFFD. Output is at most 3 × input.
 */
static size_t
event_utf8_clean(const char *in, size_t len, char *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, o = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t need = 0;
		uint32_t min = 0, cp;

		if (c < 0x80) {
			out[o++] = (char)c;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) { need = 1; min = 0x80; cp = c & 0x1f; }
		else if (c >= 0xe0 && c <= 0xef) { need = 2; min = 0x800; cp = c & 0x0f; }
		else if (c >= 0xf0 && c <= 0xf4) { need = 3; min = 0x10000; cp = c & 0x07; }
		else
			cp = 0;
		if (need > 0) {
			size_t k;

			for (k = 1; k <= need && i + k < len && (s[i + k] & 0xc0) == 0x80; k++)
				cp = (cp << 6) | (s[i + k] & 0x3f);
			if (k == need + 1 && cp >= min && cp <= 0x10ffff &&
			    (cp < 0xd800 || cp > 0xdfff)) {
				memcpy(out + o, s + i, need + 1);
				o += need + 1;
				i += need + 1;
				continue;
			}
		}
		memcpy(out + o, "\xef\xbf\xbd", 3);
		o += 3;
		i++;
	}
	out[o] = '\0';
	return o;
}

/* A JSON string of s made valid UTF-8; NULL for a NULL or empty s. */
static json_t *
clean_string(const char *s)
{
	size_t len;
	char *clean;
	json_t *j;

	if (s == NULL || s[0] == '\0')
		return NULL;
	len = strlen(s);
	if ((clean = malloc(len * 3 + 1)) == NULL)
		return NULL;
	len = event_utf8_clean(s, len, clean);
	j = json_stringn(clean, len);
	free(clean);
	return j;
}

static void
set_str(json_t *o, const char *key, const char *s)
{
	json_t *j = clean_string(s);

	if (j != NULL)
		json_object_set_new(o, key, j);
}

static void
set_int(json_t *o, const char *key, json_int_t v)
{
	json_object_set_new(o, key, json_integer(v));
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

static void
set_smtp(json_t *o, const struct smtp_info *m)
{
	set_str(o, "helo", m->helo);
	set_str(o, "mail_from", m->mail_from);
	if (m->nrcpt_kept > 0) {
		json_t *a = json_array();

		for (size_t i = 0; i < m->nrcpt_kept && i < SMTP_RCPT_KEEP; i++) {
			json_t *r = clean_string(m->rcpt_to[i]);

			if (r != NULL)
				json_array_append_new(a, r);
		}
		json_object_set_new(o, "rcpt_to", a);
	}
	if (m->nrcpt > m->nrcpt_kept)
		set_int(o, "rcpt_count", (json_int_t)m->nrcpt);
	set_str(o, "auth_user", m->auth_user);
	if (m->starttls)
		json_object_set_new(o, "starttls", json_true());
	set_str(o, "tls_sni", m->tls_sni);
	set_str(o, "subject", m->subject);
	set_str(o, "header_from", m->header_from);
	set_str(o, "header_to", m->header_to);
	set_str(o, "message_id", m->message_id);
	set_str(o, "x_mailer", m->x_mailer);
	set_str(o, "php_script", m->php_script);
	set_str(o, "reply", m->reply);
	if (m->bytes > 0)
		set_int(o, "bytes", (json_int_t)m->bytes);
	set_str(o, "inspect", m->inspect);
	set_str(o, "proto", m->proto);
}

/*
 * The mail gate's fields (mailgate.c); rcpt_count always, as a mail event's
 * size, but for a summary (its origin, and how many were not written).
 */
static void
set_mail(json_t *o, const struct mail_event *m, bool summary)
{
	set_str(o, "origin", m->origin);
	set_str(o, "domain", m->domain);
	set_str(o, "sasl_user", m->sasl_user);
	set_str(o, "client_ip", m->client_ip);
	set_str(o, "queue_id", m->queue_id);
	set_str(o, "mta", m->mta);
	if (!summary)
		set_int(o, "rcpt_count", (json_int_t)m->rcpt_count);
	if (m->counted)
		set_int(o, "hour_count", m->hour_count);
	if (m->limit != UINT32_MAX)
		set_int(o, "limit", m->limit);
}

int
event_encode(const struct event *e, char *buf, size_t len)
{
	json_t *o = json_object();
	char tmp[INET6_ADDRSTRLEN + 1];
	size_t n;

	if (o == NULL)
		return -1;
	event_time(&e->ts, tmp, sizeof(tmp));
	set_str(o, "ts", tmp);
	set_str(o, "event", e->event);
	set_str(o, "action", e->action);
	set_str(o, "rule", e->rule);
	if (e->who != NULL) {
		const struct attrib *a = e->who;

		if (a->has_uid)
			set_int(o, "uid", a->uid);
		set_str(o, "user", a->user);
		if (a->has_gid)
			set_int(o, "gid", a->gid);
		if (a->has_pid)
			set_int(o, "pid", a->pid);
		if (a->has_ppid)
			set_int(o, "ppid", a->ppid);
		set_str(o, "exe", a->exe);
		set_str(o, "cmdline", a->cmdline);
		set_str(o, "cwd", a->cwd);
		set_str(o, "cgroup", a->cgroup);
	}
	if (e->flow != NULL && (e->flow->family == AF_INET || e->flow->family == AF_INET6)) {
		set_str(o, "family", e->flow->family == AF_INET ? "ipv4" : "ipv6");
		event_addr(e->flow->family, e->flow->src, tmp, sizeof(tmp));
		set_str(o, "src_ip", tmp);
		set_int(o, "src_port", e->flow->sport);
		event_addr(e->flow->family, e->flow->dst, tmp, sizeof(tmp));
		set_str(o, "dst_ip", tmp);
		set_int(o, "dst_port", e->flow->dport);
	}
	if (e->flow_id != 0)
		set_int(o, "flow_id", (json_int_t)e->flow_id);
	if (e->smtp != NULL)
		set_smtp(o, e->smtp);
	if (e->mail != NULL)
		set_mail(o, e->mail, e->suppressed > 0);
	if (e->suppressed > 0) {
		set_int(o, "suppressed", (json_int_t)e->suppressed);
		set_int(o, "window", e->window);
	}
	set_str(o, "msg", e->msg);

	n = json_dumpb(o, buf, len, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (n == 0 || n + 2 > len) {
		errno = ENOSPC;
		return -1;
	}
	buf[n++] = '\n';
	buf[n] = '\0';
	return (int)n;
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
