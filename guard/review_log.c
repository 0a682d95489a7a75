/*
 * review_log.c — `smtpguard log`: the event log's lines that pass the
 * filters, oldest first, as text for the admin or as the JSON lines
 * themselves; by default only the last few, found by reading the file
 * backwards; with --follow, new lines as they come, across rotation. Several
 * files (or a directory of them, a collector's) are merged by time. The log
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

/* from → first recipient (+N more)  "subject" */
static void
print_envelope(json_t *ev)
{
	json_t *rcpt = json_object_get(ev, "rcpt_to");
	json_t *count = json_object_get(ev, "rcpt_count");
	json_int_t n = json_is_integer(count) ? json_integer_value(count) :
	    (json_int_t)json_array_size(rcpt);
	const char *s;

	printf("  ");
	put_safe(stdout, jstr_or(ev, "mail_from", "<>"), 120);
	if ((s = json_string_value(json_array_get(rcpt, 0))) != NULL) {
		printf(" \u2192 ");
		put_safe(stdout, s, 120);
		if (n > 1)
			printf(" (+%lld)", (long long)n - 1);
	} else if (n > 0)
		printf(" \u2192 %lld recipients", (long long)n);
	if ((s = jstr(ev, "subject")) != NULL) {
		printf("  \"");
		put_safe(stdout, s, 120);
		putchar('"');
	}
}

/* The mail gate's message: origin, its hour's count against the limit, envelope, queue id. */
static void
print_mail(json_t *ev)
{
	json_t *hc = json_object_get(ev, "hour_count"), *lim = json_object_get(ev, "limit");
	const char *s;

	printf("mail ");
	put_safe(stdout, jstr_or(ev, "origin", "?"), 120);
	if (json_is_integer(hc) && json_is_integer(lim))
		printf(" %lld/%lld per hour", (long long)json_integer_value(hc),
		    (long long)json_integer_value(lim));
	else if (json_is_integer(hc))
		printf(" %lld this hour", (long long)json_integer_value(hc));
	if ((s = jstr(ev, "php_script")) != NULL) {
		printf(" script=");
		put_safe(stdout, s, 120);
	}
	print_envelope(ev);
	if ((s = jstr(ev, "queue_id")) != NULL) {
		printf("  [%s ", jstr_or(ev, "mta", "mta"));
		put_safe(stdout, s, 32);
		putchar(']');
	}
	putchar('\n');
}

static void
print_event(json_t *ev)
{
	const char *event = jstr_or(ev, "event", "?"), *s;
	json_t *uid = json_object_get(ev, "uid"), *pid = json_object_get(ev, "pid");
	char who[USER_NAME_MAX + 24], when[32];

	fputs(evread_local_time(jstr(ev, "ts"), when, sizeof(when)), stdout);
	printf("  ");
	if ((s = jstr(ev, "host")) != NULL) {
		/* a collected event: its host first */
		put_safe(stdout, s, 64);
		printf("  ");
	}
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
	if (strcmp(event, "mail") == 0) {
		print_mail(ev);
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
		print_envelope(ev);
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

/* One file being read: its path and reader. */
struct src {
	const char	*path;
	struct evread	 r;
	json_t		*ev;		/* the merge's current event (r.line holds its text) */
	size_t		 len;
};

static void
drain(struct src *sr, const struct evread_filter *f, bool json)
{
	json_t *ev;
	size_t len;

	while ((ev = evread_next(&sr->r, f, &len)) != NULL) {
		if (evread_matches_json(f, ev))
			emit_line(ev, sr->r.line, len, json);
		json_decref(ev);
	}
}

/* New lines of every file as they come (file by file each poll, not merged by time). */
static int
log_follow(struct src *srcs, size_t nsrc, const struct evread_filter *f, bool json)
{
	struct stat at_path, at_fd;

	for (;;) {
		for (size_t i = 0; i < nsrc; i++)
			drain(&srcs[i], f, json);
		fflush(stdout);
		if (ferror(stdout))
			return 1;
		nanosleep(&(struct timespec){ 0, FOLLOW_POLL_NS }, NULL);
		for (size_t i = 0; i < nsrc; i++) {
			struct src *sr = &srcs[i];

			if (fstat(fileno(sr->r.fp), &at_fd) < 0)
				return 1;
			if (stat(sr->path, &at_path) == 0 && (at_path.st_ino != at_fd.st_ino ||
			    at_path.st_dev != at_fd.st_dev)) {
				/* Rotated: finish the old file, then read the new one from its start. */
				drain(sr, f, json);
				(void)evread_reopen(&sr->r, sr->path);	/* not there yet: poll on */
			} else if (ftello(sr->r.fp) > at_fd.st_size)
				fseeko(sr->r.fp, 0, SEEK_SET);	/* truncated in place */
		}
	}
}

/*
 * The last WANT matching events, found by reading the file backwards in
 * blocks, so `smtpguard log` on a large log reads only its end. A line
 * still being written (no newline yet) is left for --follow. On return the
 * reader stands after the last complete line.
 */
#define TAIL_BLOCK	(1 << 20)	/* read backwards this much at a time */

struct found {
	char		**line;		/* newest first */
	size_t		 *len, n;
};

static void
found_free(struct found *fd)
{
	for (size_t i = 0; i < fd->n; i++)
		free(fd->line[i]);
	free(fd->line);
	free(fd->len);
}

static int
log_tail(struct evread *r, const struct evread_filter *f, size_t want, struct found *out)
{
	char **found, *buf = NULL, *grown;
	size_t *foundlen, nfound = 0, have = 0;
	bool trailing = true, skipping = false;
	struct stat st;
	off_t pos, end;
	int rc = -1;

	memset(out, 0, sizeof(*out));
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
	if ((rc = fseeko(r->fp, end, SEEK_SET)) == 0) {
		*out = (struct found){ found, foundlen, nfound };
		free(buf);
		return 0;
	}
err2:
	free(buf);
	for (size_t i = 0; i < nfound; i++)
		free(found[i]);
	free(foundlen);
err1:
	free(found);
	return -1;
}

/* A found line with its time, for the merge of several files' last lines. */
struct dated {
	json_t		*ev;
	const char	*ts;
	const char	*line;
	size_t		 len, seq;	/* seq: the order read, which breaks ties */
};

static int
cmp_dated(const void *a, const void *b)
{
	const struct dated *x = a, *y = b;
	int c = strcmp(x->ts, y->ts);

	return c != 0 ? c : x->seq < y->seq ? -1 : 1;
}

static const char *
ts_of(json_t *ev)
{
	const char *ts = ev != NULL ? jstr(ev, "ts") : NULL;

	return ts != NULL ? ts : "";
}

/* The last WANT events of all the files, oldest first. */
static int
tail_many(struct src *srcs, size_t nsrc, const struct evread_filter *f, size_t want, bool json)
{
	struct found *fd;
	struct dated *all = NULL;
	size_t n = 0, total = 0;
	int rc = -1;

	if ((fd = calloc(nsrc, sizeof(*fd))) == NULL)
		return -1;
	for (size_t i = 0; i < nsrc; i++) {
		if (log_tail(&srcs[i].r, f, want, &fd[i]) < 0) {
			fprintf(stderr, "smtpguard log: %s: %s\n", srcs[i].path, strerror(errno));
			goto out;
		}
		total += fd[i].n;
	}
	if ((all = calloc(total + 1, sizeof(*all))) == NULL)
		goto out;
	for (size_t i = 0; i < nsrc; i++)
		for (size_t k = fd[i].n; k > 0; k--) {
			json_error_t jerr;
			json_t *ev = json_loadb(fd[i].line[k - 1], fd[i].len[k - 1],
			    JSON_DISABLE_EOF_CHECK, &jerr);

			all[n] = (struct dated){ ev, ts_of(ev), fd[i].line[k - 1], fd[i].len[k - 1],
			    n };
			n++;
		}
	qsort(all, n, sizeof(*all), cmp_dated);
	for (size_t i = n > want ? n - want : 0; i < n; i++)
		emit_line(all[i].ev, all[i].line, all[i].len, json);
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		json_decref(all[i].ev);
	free(all);
	for (size_t i = 0; i < nsrc; i++)
		found_free(&fd[i]);
	free(fd);
	return rc;
}

/* Every matching event of all the files, merged by time as they are read. */
static int
merge_all(struct src *srcs, size_t nsrc, const struct evread_filter *f, bool json)
{
	int rc = 0;

	for (;;) {
		struct src *next = NULL;

		for (size_t i = 0; i < nsrc; i++) {
			struct src *sr = &srcs[i];

			while (sr->ev == NULL && sr->r.fp != NULL) {
				if ((sr->ev = evread_next(&sr->r, f, &sr->len)) == NULL) {
					if (ferror(sr->r.fp)) {
						fprintf(stderr, "smtpguard log: %s: %s\n", sr->path,
						    strerror(errno));
						rc = 1;
					}
					break;	/* at its end (follow reads on from here) */
				}
				if (!evread_matches_json(f, sr->ev)) {
					json_decref(sr->ev);
					sr->ev = NULL;
				}
			}
			if (sr->ev != NULL && (next == NULL ||
			    strcmp(ts_of(sr->ev), ts_of(next->ev)) < 0))
				next = sr;
		}
		if (next == NULL)
			return rc;
		emit_line(next->ev, next->r.line, next->len, json);
		json_decref(next->ev);
		next->ev = NULL;
	}
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
    "usage: smtpguard log [options] [FILE|DIR...]\n"
    "Shows events from the event log, oldest first: the configured one, or the\n"
    "FILEs and DIRs given (a DIR: every *.jsonl and *.jsonl.N under it, as a\n"
    "central rsyslog writes them per host), merged by time. A collected event\n"
    "shows its host after the time.\n";
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
	struct cliopt o = { .cmd = "log", .help = help, .operands = true,
	    .takes = CLIOPT_WANT_TIME | CLIOPT_WANT_JSON };
	struct log_args a = { .f = EVREAD_FILTER_INIT, .tail = -1 };
	struct evread_files files;
	struct src *srcs;
	uint64_t unreadable = 0;
	char err[PATH_MAX + 64];
	size_t nsrc = 0;
	struct found fd;
	int rc;

	if ((rc = cliopt_parse(&o, argc, argv, "fn:h", opts, log_option, &a)) != 0)
		return rc == 1 ? 0 : 2;
	evread_filter_window(&a.f, &o);
	if (a.tail < 0)
		a.tail = a.f.since[0] || a.f.until[0] ? 0 : LOG_TAIL_DEFAULT;
	if (evread_files_expand(&files, argv + o.next, (size_t)(argc - o.next), path, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "smtpguard log: %s\n", err);
		return 1;
	}
	rc = 1;
	if ((srcs = calloc(files.n, sizeof(*srcs))) == NULL)
		goto err0;
	for (; nsrc < files.n; nsrc++) {
		srcs[nsrc].path = files.paths[nsrc];
		if (evread_open(&srcs[nsrc].r, files.paths[nsrc]) < 0) {
			fprintf(stderr, "smtpguard log: %s: %s\n", files.paths[nsrc], strerror(errno));
			goto err1;
		}
	}
	if (a.tail == 0)
		rc = merge_all(srcs, nsrc, &a.f, o.json);
	else if (nsrc > 1)
		rc = tail_many(srcs, nsrc, &a.f, (size_t)a.tail, o.json) < 0 ? 1 : 0;
	else if ((rc = log_tail(&srcs[0].r, &a.f, (size_t)a.tail, &fd) < 0 ? 1 : 0) != 0)
		fprintf(stderr, "smtpguard log: %s: %s\n", srcs[0].path, strerror(errno));
	else {
		/* one file: its lines as they are, without sorting by time */
		for (size_t i = fd.n; i > 0; i--) {
			json_error_t jerr;
			json_t *ev = json_loadb(fd.line[i - 1], fd.len[i - 1],
			    JSON_DISABLE_EOF_CHECK, &jerr);

			emit_line(ev, fd.line[i - 1], fd.len[i - 1], o.json);
			json_decref(ev);
		}
		found_free(&fd);
	}
	if (rc == 0 && a.follow)
		rc = log_follow(srcs, nsrc, &a.f, o.json);
	fflush(stdout);
err1:
	for (size_t i = 0; i < nsrc; i++) {
		unreadable += srcs[i].r.unreadable;
		json_decref(srcs[i].ev);
		evread_close(&srcs[i].r);
	}
	if (unreadable > 0)
		fprintf(stderr, "smtpguard log: %llu unreadable lines skipped\n",
		    (unsigned long long)unreadable);
	free(srcs);
err0:
	evread_files_free(&files);
	return rc;
}
