/*
 * mtareport_cli.c — `smtpguard mta-report`: its options, and the report
 * mtareport.c counted, shown as text for the admin or as one JSON object.
 * Also the MTA volume per local user that `smtpguard top --mta` adds to its
 * rows. Every field from a log is printed with control characters escaped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "smtpguard.h"

#define DEFAULT_LIMIT		10

static const char *const origin_kind_names[] = { "sasl", "bounce", "user", "ip", "sender",
    "unknown", "other" };
static const char *const flag_names[MTAREPORT_NFLAGS] = { "volume", "domains", "bounces",
    "deferrals", "blocklisted", "backscatter", "many-ips" };

/* --- printing ------------------------------------------------------------------------ */

static void
format_time(int64_t t, char *out, size_t len, bool utc)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (utc)
		strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&tt, &tm));
	else
		strftime(out, len, "%Y-%m-%d %H:%M", localtime_r(&tt, &tm));
}

static unsigned
percent(uint64_t n, uint64_t of)
{
	return of ? (unsigned)((n * 100 + of / 2) / of) : 0;
}

static json_t *
origin_json(const struct mtareport_origin *o)
{
	json_t *j, *flags = json_array(), *ev = json_object();
	char first[32], last[32], peak[32];

	format_time(o->first, first, sizeof(first), true);
	format_time(o->last, last, sizeof(last), true);
	format_time(o->peak_hour, peak, sizeof(peak), true);
	for (int f = 0; f < MTAREPORT_NFLAGS; f++) {
		json_t *a;

		if (!(o->flags & (1u << f)))
			continue;
		json_array_append_new(flags, json_string(flag_names[f]));
		a = json_array();
		for (unsigned i = 0; i < o->nev[f]; i++)
			json_array_append_new(a, o->ev[f][i].text[0] ?
			    json_pack("{s:s, s:s}", "qid", o->ev[f][i].qid, "text", o->ev[f][i].text) :
			    json_pack("{s:s}", "qid", o->ev[f][i].qid));
		json_object_set_new(ev, flag_names[f], a);
	}
	j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b,"
	    " s:s, s:s, s:s, s:I, s:o, s:o}",
	    "kind", origin_kind_names[o->kind], "origin", o->name,
	    "messages", (json_int_t)o->messages, "recipients", (json_int_t)o->recipients,
	    "domains", (json_int_t)o->domains, "sent", (json_int_t)o->sent,
	    "deferred", (json_int_t)o->deferred, "bounced", (json_int_t)o->bounced,
	    "pending", (json_int_t)o->pending, "blocklisted", (json_int_t)o->blocklisted,
	    "client_ips", (json_int_t)o->ips, "senders", (json_int_t)o->senders,
	    "distinct_capped", o->capped, "first_seen", first, "last_seen", last,
	    "peak_hour", peak, "peak_recipients", (json_int_t)o->peak, "flags", flags,
	    "evidence", ev);
	if (j != NULL && o->uid >= 0)
		json_object_set_new(j, "uid", json_integer(o->uid));
	if (j != NULL && o->sender[0] != '\0')
		json_object_set_new(j, "sender", json_string(o->sender));
	return j;
}

/* The outbound totals over every origin. */
struct totals {
	uint64_t	 rcpts, sent, bounced, deferred, blocklisted, culprits;
};

static struct totals
sum_origins(struct mtareport_origin **rows, size_t n)
{
	struct totals t = { 0 };

	for (size_t i = 0; i < n; i++) {
		t.rcpts += rows[i]->recipients;
		t.sent += rows[i]->sent;
		t.bounced += rows[i]->bounced;
		t.deferred += rows[i]->deferred;
		t.blocklisted += rows[i]->blocklisted;
		t.culprits += rows[i]->flags != 0;
	}
	return t;
}

static void
print_json(const struct mtareport *r, struct mtareport_origin **rows, size_t n, size_t limit)
{
	json_t *a = json_array(), *top;
	struct totals t = sum_origins(rows, n);

	for (size_t i = 0; i < n && i < limit; i++)
		json_array_append_new(a, origin_json(rows[i]));
	top = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
	    " s:o}",
	    "files", (json_int_t)r->files, "lines", (json_int_t)r->lines,
	    "used", (json_int_t)r->used, "other", (json_int_t)r->other_lines,
	    "unparseable", (json_int_t)r->bad, "outbound_messages", (json_int_t)r->outbound_msgs,
	    "recipients", (json_int_t)t.rcpts, "sent", (json_int_t)t.sent,
	    "deferred", (json_int_t)t.deferred, "bounced", (json_int_t)t.bounced,
	    "blocklisted", (json_int_t)t.blocklisted, "untracked", (json_int_t)r->untracked,
	    "local_only_messages", (json_int_t)r->local_only,
	    "undelivered_messages", (json_int_t)r->undelivered, "origins", a);
	json_dumpf(top, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(top);
}

static const char *
origin_label(const struct mtareport_origin *o, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s", origin_kind_names[o->kind], o->name);
	return buf;
}

static void
print_culprit(const struct mtareport_origin *o, size_t rank)
{
	char label[300], when[32];
	const char *sep = "";

	printf("%zu. ", rank);
	put_safe(stdout, origin_label(o, label, sizeof(label)), 200);
	printf(" [");
	for (int f = 0; f < MTAREPORT_NFLAGS; f++)
		if (o->flags & (1u << f)) {
			printf("%s%s", sep, flag_names[f]);
			sep = " ";
		}
	printf("]\n   %llu messages, %llu recipients in %llu%s domains",
	    (unsigned long long)o->messages, (unsigned long long)o->recipients,
	    (unsigned long long)o->domains, o->capped ? "+" : "");
	if (o->kind == MTAREPORT_SASL)
		printf(" from %llu client address%s", (unsigned long long)o->ips,
		    o->ips == 1 ? "" : "es");
	format_time(o->peak_hour, when, sizeof(when), false);
	printf("; sent %u%%, deferred %u%%, bounced %u%%; peak %llu in the hour from %s\n",
	    percent(o->sent, o->recipients), percent(o->deferred, o->recipients),
	    percent(o->bounced, o->recipients), (unsigned long long)o->peak, when);
	if (o->sender[0] != '\0') {
		printf("   sender ");
		put_safe(stdout, o->sender, 200);
		if (o->senders > 1)
			printf(" (and %llu more)", (unsigned long long)(o->senders - 1));
		putchar('\n');
	}
	for (int f = 0; f < MTAREPORT_NFLAGS; f++) {
		if (!(o->flags & (1u << f)) || o->nev[f] == 0)
			continue;
		printf("   %-12s", flag_names[f]);
		for (unsigned i = 0; i < o->nev[f]; i++) {
			printf(" %s", o->ev[f][i].qid);
			if (f == MTAREPORT_FLAG_MANY_IPS) {
				putchar('(');
				put_safe(stdout, o->ev[f][i].text, 48);
				putchar(')');
			}
		}
		if (o->ev[f][0].text[0] != '\0' && f == MTAREPORT_FLAG_BLOCKLISTED) {
			printf(": ");
			put_safe(stdout, o->ev[f][0].text, 160);
		}
		putchar('\n');
	}
}

static void
print_text(const struct mtareport *r, struct mtareport_origin **rows, size_t n, size_t limit)
{
	struct totals t = sum_origins(rows, n);
	char a[32], b[32], label[300];

	printf("%llu file%s, %llu lines: %llu used, %llu other, %llu unparseable",
	    (unsigned long long)r->files, r->files == 1 ? "" : "s", (unsigned long long)r->lines,
	    (unsigned long long)r->used, (unsigned long long)r->other_lines,
	    (unsigned long long)r->bad);
	for (uint64_t i = 0; i < r->bad && i < MTAREPORT_BAD_EXAMPLES; i++)
		printf("%s%s", i ? ", " : " (", r->bad_where[i]);
	printf("%s\n", r->bad ? r->bad > MTAREPORT_BAD_EXAMPLES ? ", ...)" : ")" : "");
	if (r->used > 0) {
		format_time(r->first, a, sizeof(a), false);
		format_time(r->last, b, sizeof(b), false);
		printf("from %s to %s\n", a, b);
	}
	printf("outbound: %llu messages to %llu recipients: sent %u%%, deferred %u%%, "
	    "bounced %u%%; %llu blocklist rejections\n", (unsigned long long)r->outbound_msgs,
	    (unsigned long long)t.rcpts, percent(t.sent, t.rcpts), percent(t.deferred, t.rcpts),
	    percent(t.bounced, t.rcpts), (unsigned long long)t.blocklisted);
	if (r->local_only + r->undelivered > 0)
		printf("not counted: %llu messages delivered only on this host, %llu with no "
		    "delivery in the log\n", (unsigned long long)r->local_only,
		    (unsigned long long)r->undelivered);
	if (r->untracked > 0)
		printf("(%llu lines of messages past the %d followed at once were not joined)\n",
		    (unsigned long long)r->untracked, MTAREPORT_INFLIGHT_MAX);
	if (t.culprits > 0) {
		printf("\nLIKELY CULPRITS\n");
		for (size_t i = 0; i < n && rows[i]->flags != 0; i++)
			print_culprit(rows[i], i + 1);
	} else if (n > 0)
		printf("\nno likely culprits\n");
	if (n == 0) {
		printf("\nno outbound mail in the log\n");
		return;
	}
	printf("\nOUTBOUND BY ORIGIN\n%7s %7s %7s %5s %5s %6s %5s  %s\n", "MSGS", "RCPTS",
	    "DOMAINS", "SENT", "DEFER", "BOUNCE", "BLOCK", "ORIGIN");
	for (size_t i = 0; i < n && i < limit; i++) {
		const struct mtareport_origin *o = rows[i];

		printf("%7llu %7llu %6llu%s %4u%% %4u%% %5u%% %5llu  ",
		    (unsigned long long)o->messages, (unsigned long long)o->recipients,
		    (unsigned long long)o->domains, o->capped ? "+" : " ",
		    percent(o->sent, o->recipients), percent(o->deferred, o->recipients),
		    percent(o->bounced, o->recipients), (unsigned long long)o->blocklisted);
		put_safe(stdout, origin_label(o, label, sizeof(label)), 120);
		putchar('\n');
	}
	if (n > limit)
		printf("(%zu more origins; --limit N shows them)\n", n - limit);
}

/* --- reading ------------------------------------------------------------------------- */

/*
 * Reads LOGS, or when there are none the default logs (and their rotations),
 * into R; -1 if there was nothing to read or no memory (said on stderr after
 * WHO), else how many files could not be read (each named on stderr). OPTION
 * is the flag that names a log. R is for mtareport_free() in every case.
 */
static int
read_logs(struct mtareport *r, char **logs, size_t nlogs, time_t since, time_t until,
    const char *who, const char *option)
{
	char **found = NULL, err[PATH_MAX + 128];
	int failed = 0;

	memset(r, 0, sizeof(*r));
	if (nlogs == 0 && (nlogs = mtareport_default_logs(&found)) == 0) {
		fprintf(stderr, "%s: no MTA log found (%s, ...); name one with %s FILE\n", who,
		    mtareport_logs[0], option);
		return -1;
	}
	if (mtareport_init(r, since, until) < 0) {
		fprintf(stderr, "%s: out of memory\n", who);
		failed = -1;
	} else {
		for (size_t i = 0; i < nlogs; i++)
			if (mtareport_file(r, found ? found[i] : logs[i], err, sizeof(err)) < 0) {
				fprintf(stderr, "smtpguard mta-report: %s\n", err);
				failed++;
			}
		mtareport_end(r);
	}
	for (size_t i = 0; found != NULL && i < nlogs; i++)
		free(found[i]);
	free(found);
	return failed;
}

/*
 * Outbound volume per local user (Postfix pickup uid=, Exim U=) in LOGS (none:
 * the default logs), between SINCE and UNTIL (0: open), for `smtpguard top
 * --mta`. Calls FN once per user; -1 if a log could not be read (named on
 * stderr), the rest still counted.
 */
int
mtareport_cli_users(char **logs, size_t nlogs, time_t since, time_t until,
    void (*fn)(const struct mtareport_user *, void *), void *arg)
{
	struct mtareport r;
	int failed;

	if ((failed = read_logs(&r, logs, nlogs, since, until, "smtpguard", "--mta-log")) < 0) {
		mtareport_free(&r);
		return -1;
	}
	for (size_t b = 0; b < r.origins.nb; b++)
		for (struct hnode *x = r.origins.b[b]; x != NULL; x = x->next) {
			const struct mtareport_origin *o = (const struct mtareport_origin *)x;
			struct mtareport_user u = { .uid = o->uid, .messages = o->messages,
			    .recipients = o->recipients };

			if (o->kind != MTAREPORT_USER)
				continue;
			strlcpy_sg(u.name, o->user, sizeof(u.name));
			fn(&u, arg);
		}
	mtareport_free(&r);
	return failed > 0 ? -1 : 0;
}

/* --- the command ------------------------------------------------------------------------ */

static const char help[] =
"usage: smtpguard mta-report [--log FILE]... [FILE...] [--since T] [--until T]\n"
"                            [--limit N] [--json]\n"
"Outbound mail that went through Postfix or Exim, by origin: the SASL user,\n"
"the null sender (bounces), the local user who submitted it (pickup uid=,\n"
"Exim U=), the client address, else the envelope sender. Lines are joined by\n"
"queue id; only recipients handed to a remote host count. Plain and gzip\n"
"files are read; without --log: /var/log/mail.log, maillog, exim4/mainlog and\n"
"their rotations (.1, .2.gz, ...), oldest first. \"-\" reads standard input.\n"
"  --since T, --until T   10m, 2h, 3d, or 2026-11-22[T10:00[:SS]][Z]; lines\n"
"                         outside are skipped, so a message that began before\n"
"                         --since counts with the lines inside (its origin may\n"
"                         then show as its sender, or as not in the log)\n"
"  --limit N              origins listed (default 10)\n"
"  --json                 one JSON object: totals and every origin listed\n"
"An origin is flagged as a likely culprit for: volume (>= 100 recipients in\n"
"one clock hour), domains (>= 20 distinct recipient domains), bounces (>= 20%\n"
"of >= 10 recipients bounced), deferrals (>= 30% of >= 10 deferred at least\n"
"once), blocklisted (a remote reply naming a blocklist, TS0x, \"blocked\",\n"
"\"not allowed to send\", ...), backscatter (>= 20 null-sender messages),\n"
"many-ips (one SASL user from >= 5 client addresses). Each flag shows up to\n"
"three queue ids to grep for. Unparseable lines are counted, never fatal.\n";

enum { OPT_LOG = CLIOPT_OWN };

struct report_args {
	char		**logs;		/* argc + 1 slots */
	size_t		 nlogs;
};

static int
report_option(void *ctx, int ch, const char *arg, char *err, size_t errlen)
{
	struct report_args *a = ctx;

	(void)err;
	(void)errlen;
	if (ch != OPT_LOG)
		return 0;
	a->logs[a->nlogs++] = (char *)arg;
	return 1;
}

int
mtareport_cli(int argc, char **argv)
{
	static const struct cliopt_option opts[] = {
		{ "log", true, OPT_LOG },
		{ NULL, false, 0 },
	};
	static const char *const helps[] = { help, NULL };
	struct cliopt o = { .cmd = "mta-report", .help = helps,
	    .takes = CLIOPT_WANT_TIME | CLIOPT_WANT_LIMIT | CLIOPT_WANT_JSON, .operands = true,
	    .limit = DEFAULT_LIMIT };
	struct report_args a = { 0 };
	struct mtareport r;
	struct mtareport_origin **rows = NULL;
	size_t n = 0;
	int rc, failed;

	if ((a.logs = calloc((size_t)argc + 1, sizeof(*a.logs))) == NULL)
		return 1;
	if ((rc = cliopt_parse(&o, argc, argv, "h", opts, report_option, &a)) != 0) {
		rc = rc == 1 ? 0 : 2;
		goto out;
	}
	while (o.next < argc)
		a.logs[a.nlogs++] = argv[o.next++];
	rc = 1;
	if ((failed = read_logs(&r, a.logs, a.nlogs, o.since, o.until, "smtpguard mta-report",
	    "--log")) < 0)
		goto out_free;
	if ((rows = mtareport_rows(&r, &n)) == NULL) {
		fprintf(stderr, "smtpguard mta-report: out of memory\n");
		goto out_free;
	}
	if (o.json)
		print_json(&r, rows, n, (size_t)o.limit);
	else
		print_text(&r, rows, n, (size_t)o.limit);
	fflush(stdout);
	/* A file that could not be read fails the command, after reporting the rest. */
	rc = ferror(stdout) || failed ? 1 : 0;
out_free:
	free(rows);
	mtareport_free(&r);
out:
	free(a.logs);
	return rc;
}
