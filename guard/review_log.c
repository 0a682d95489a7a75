/*
 * review_log.c — `smtpguard log`: the event log's lines that pass the
 * filters, oldest first, as text for the admin or as the JSON lines
 * themselves; by default only the last few, found by reading the file
 * backwards; with --follow, new lines as they come, across rotation. The log
 * holds attacker-chosen strings, so every field is printed with control
 * characters escaped. Reading and filtering are evread.c's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "smtpguard.h"

#define LOG_TAIL_DEFAULT	50
#define LOG_TAIL_MAX		100000
#define FOLLOW_POLL_NS		(250 * 1000 * 1000)
#define STR(x)			#x
#define XSTR(x)			STR(x)

static const char *
jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
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
	char who[USER_NAME_MAX + 24], when[32];

	fputs(evread_local_time(jstr(ev, "ts"), when, sizeof(when)), stdout);
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
log_follow(const char *path, struct evread *r, const struct evread_filter *f, bool json)
{
	struct stat at_path, at_fd;
	json_t *ev;
	size_t len;

	for (;;) {
		while ((ev = evread_next(r, f, &len)) != NULL) {
			if (evread_matches_json(f, ev))
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
			while ((ev = evread_next(r, f, &len)) != NULL) {
				if (evread_matches_json(f, ev))
					emit_line(ev, r->line, len, json);
				json_decref(ev);
			}
			(void)evread_reopen(r, path);	/* not there yet: poll on */
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
log_tail(struct evread *r, const struct evread_filter *f, size_t want, bool json)
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
			if (evread_outside(f, buf + start, len))
				continue;
			ev = json_loadb(buf + start, len, JSON_DISABLE_EOF_CHECK, &jerr);
			if (ev == NULL || !json_is_object(ev))
				r->unreadable++;
			else if (evread_matches_json(f, ev)) {
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
		if (have > EVREAD_LINE_MAX && trailing) {
			/* an overlong line still being written: not ours to show */
			end -= (off_t)have;
			have = 0;
		} else if (have > EVREAD_LINE_MAX) {
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

struct log_args {
	struct evread_filter	 f;
	bool			 follow;
	long			 tail;		/* -1: by default */
};

static int
log_option(void *ctx, int ch, const char *arg, char *err, size_t errlen)
{
	struct log_args *a = ctx;
	char *end;
	int rc;

	if ((rc = evread_filter_option(&a->f, ch, arg, err, errlen)) != 0)
		return rc;
	switch (ch) {
	case 'f':
		a->follow = true;
		return 1;
	case 'n':
		a->tail = strtol(arg, &end, 10);
		if (*end != '\0' || arg[0] == '\0' || a->tail < 0 || a->tail > LOG_TAIL_MAX) {
			snprintf(err, errlen, "bad -n '%s' (0-%d; 0 = all)", arg, LOG_TAIL_MAX);
			return -1;
		}
		return 1;
	}
	return 0;
}

static const char log_help[] =
    "usage: smtpguard log [options]\n"
    "Shows events from the event log, oldest first.\n";
static const char log_help_more[] =
    "  -n N           only the last N matching events (default " XSTR(LOG_TAIL_DEFAULT)
    " without\n"
    "                 --since/--until; 0 = all)\n"
    "  -f, --follow   keep printing new events; survives log rotation\n";

int
review_log(const char *path, int argc, char **argv)
{
	static const struct cliopt_option opts[] = {
		EVREAD_FILTER_OPTIONS,
		{ "follow", false, 'f' },
		{ NULL, false, 0 },
	};
	static const char *const help[] = { log_help, evread_filter_help, log_help_more, NULL };
	struct cliopt o = { .cmd = "log", .help = help,
	    .takes = CLIOPT_WANT_TIME | CLIOPT_WANT_JSON };
	struct log_args a = { .f = EVREAD_FILTER_INIT, .tail = -1 };
	struct evread r;
	json_t *ev;
	size_t len;
	int rc;

	if ((rc = cliopt_parse(&o, argc, argv, "fn:h", opts, log_option, &a)) != 0)
		return rc == 1 ? 0 : 2;
	evread_filter_window(&a.f, &o);
	if (a.tail < 0)
		a.tail = a.f.since[0] || a.f.until[0] ? 0 : LOG_TAIL_DEFAULT;
	if (evread_open(&r, path) < 0) {
		fprintf(stderr, "smtpguard log: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (a.tail == 0) {
		while ((ev = evread_next(&r, &a.f, &len)) != NULL) {
			if (evread_matches_json(&a.f, ev))
				emit_line(ev, r.line, len, o.json);
			json_decref(ev);
		}
		rc = ferror(r.fp) ? 1 : 0;
	} else
		rc = log_tail(&r, &a.f, (size_t)a.tail, o.json) < 0 ? 1 : 0;
	if (rc != 0)
		fprintf(stderr, "smtpguard log: %s: %s\n", path, strerror(errno));
	else
		rc = a.follow ? log_follow(path, &r, &a.f, o.json) : 0;
	fflush(stdout);
	if (r.unreadable > 0)
		fprintf(stderr, "smtpguard log: %llu unreadable lines skipped\n",
		    (unsigned long long)r.unreadable);
	evread_close(&r);
	return rc;
}
