/*
 * review_log.c, review_top.c: `smtpguard log` and `smtpguard top` tell the admin exactly what
 * the event log holds — exact counts, honest filters, hostile strings shown
 * harmlessly, and a follow mode that survives rotation.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "smtpguard.h"

#define T0		1795341600	/* 2026-11-22T10:00:00Z */
#define OUT_MAX		(4 * 1024 * 1024)	/* the large-log test prints ~2 MiB */
#define MAX_ARGS	16
#define FOLD_KEYS	100003		/* past top's 100,000 groups */
#define BIG_EVENTS	20000		/* ~5 MiB of log */

static char dir[] = "/tmp/test_review.XXXXXX";
static char events[PATH_MAX];
static char out[OUT_MAX], err[OUT_MAX];

/* --- writing events the way the daemon does ------------------------------- */

static void
put(FILE *fp, const struct event *e)
{
	char buf[EVENT_LINE_MAX];
	int n = event_encode(e, buf, sizeof(buf));

	assert_true(n > 0);
	assert_int_equal(fwrite(buf, 1, (size_t)n, fp), (size_t)n);
}

static void
who_of(struct attrib *a, uid_t uid, const char *user, const char *exe, const char *cwd)
{
	memset(a, 0, sizeof(*a));
	a->has_uid = true;
	a->uid = uid;
	a->has_pid = true;
	a->pid = 1000 + (pid_t)uid;
	if (user != NULL)
		strlcpy_sg(a->user, user, sizeof(a->user));
	strlcpy_sg(a->exe, exe, sizeof(a->exe));
	if (cwd != NULL)
		strlcpy_sg(a->cwd, cwd, sizeof(a->cwd));
}

static void
flow_to(struct pkt *p, const char *ip)
{
	memset(p, 0, sizeof(*p));
	p->family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, "192.0.2.1", p->src), 1);
	assert_int_equal(inet_pton(AF_INET, ip, p->dst), 1);
	p->sport = 40000;
	p->dport = 25;
}

static void
put_attempt(FILE *fp, time_t t, const struct attrib *who, const char *ip, const char *action)
{
	struct pkt p;
	struct event e = { .ts = { t, 0 }, .event = "attempt", .action = action,
	    .rule = "default", .who = who, .flow = &p, .flow_id = (uint64_t)t };

	flow_to(&p, ip);
	put(fp, &e);
}

static void
put_summary(FILE *fp, time_t t, uid_t uid, const char *exe, const char *action,
    uint64_t suppressed)
{
	struct attrib who;
	struct event e = { .ts = { t, 0 }, .event = "summary", .action = action, .who = &who,
	    .suppressed = suppressed, .window = 60 };

	/* As the daemon writes them: uid and exe, no user name. */
	who_of(&who, uid, NULL, exe, NULL);
	who.has_pid = false;
	put(fp, &e);
}

static void
put_smtp(FILE *fp, time_t t, const struct attrib *who, const char *ip, const char *from,
    const char *subject, const char *script)
{
	static struct smtp_info m;
	struct pkt p;
	struct event e = { .ts = { t, 0 }, .event = "smtp", .action = "trap",
	    .who = who, .flow = &p, .flow_id = (uint64_t)t, .smtp = &m };

	memset(&m, 0, sizeof(m));
	flow_to(&p, ip);
	strlcpy_sg(m.mail_from, from, sizeof(m.mail_from));
	strlcpy_sg(m.rcpt_to[0], "victim@example.org", sizeof(m.rcpt_to[0]));
	m.nrcpt_kept = 1;
	m.nrcpt = 5;
	strlcpy_sg(m.subject, subject, sizeof(m.subject));
	if (script != NULL)
		strlcpy_sg(m.php_script, script, sizeof(m.php_script));
	put(fp, &e);
}

/*
 * The known log: www-data (uid 33) made 5 attempts to two addresses and 100
 * more were flood-suppressed; alice (uid 1001) made 7 trapped attempts to one
 * address, 3 more suppressed, and 2 trapped SMTP sessions; www-data 1 session.
 */
static void
write_known_log(const char *path)
{
	struct attrib www, alice;
	FILE *fp = fopen(path, "w");
	struct event d = { .ts = { T0 - 10, 0 }, .event = "daemon", .msg = "started" };

	assert_non_null(fp);
	who_of(&www, 33, "www-data", "/usr/bin/php8.2", "/var/www/site1");
	who_of(&alice, 1001, "alice", "/usr/bin/python3", "/home/alice");
	put(fp, &d);
	for (int i = 0; i < 3; i++)
		put_attempt(fp, T0 + i, &www, "192.0.2.25", "reject");
	for (int i = 3; i < 5; i++)
		put_attempt(fp, T0 + i, &www, "192.0.2.26", "reject");
	for (int i = 10; i < 17; i++)
		put_attempt(fp, T0 + i, &alice, "198.51.100.7", "trap");
	put_smtp(fp, T0 + 20, &alice, "198.51.100.7", "a@example.org", "Hi",
	    "/home/alice/mail.php");
	put_smtp(fp, T0 + 21, &alice, "198.51.100.7", "a@example.org", "Hi",
	    "/home/alice/mail.php");
	put_smtp(fp, T0 + 22, &www, "192.0.2.25", "spam@example.com", "Win", NULL);
	put_summary(fp, T0 + 60, 33, "/usr/bin/php8.2", "reject", 100);
	put_summary(fp, T0 + 70, 1001, "/usr/bin/python3", "trap", 3);
	assert_int_equal(fclose(fp), 0);
}

/* A mail gate message, as mailgate.c fills it: uid and user only for local submissions. */
static void
put_mail(FILE *fp, time_t t, const struct attrib *who, const char *origin, const char *action,
    uint64_t nrcpt, uint32_t hour_count)
{
	static struct smtp_info m;
	struct mail_event me = { .origin = origin, .domain = "domain:shop.example",
	    .queue_id = "4XyzQ1", .mta = "postfix", .rcpt_count = nrcpt, .counted = true,
	    .hour_count = hour_count, .limit = 10 };
	struct event e = { .ts = { t, 0 }, .event = "mail", .action = action, .rule = "limit",
	    .who = who, .smtp = &m, .mail = &me };

	memset(&m, 0, sizeof(m));
	strlcpy_sg(m.mail_from, "shop@shop.example", sizeof(m.mail_from));
	strlcpy_sg(m.rcpt_to[0], "buyer@example.org", sizeof(m.rcpt_to[0]));
	m.nrcpt_kept = 1;
	m.nrcpt = nrcpt;
	strlcpy_sg(m.subject, "Offer", sizeof(m.subject));
	if (who == NULL) {
		me.sasl_user = origin + strlen("sasl:");
		me.client_ip = "203.0.113.5";
	}
	put(fp, &e);
}

/*
 * The known log and the mail gate: www-data (uid 33) also sent 12 messages of
 * 2 recipients each through the MTA (10 passed, 2 held), and the stolen SASL
 * login info@shop.example 3 messages of 5 recipients (1 passed, 2 rejected).
 */
static void
write_mail_log(const char *path)
{
	struct attrib www;
	FILE *fp;

	write_known_log(path);
	assert_non_null(fp = fopen(path, "a"));
	who_of(&www, 33, "www-data", "/usr/sbin/sendmail", NULL);
	for (int i = 0; i < 12; i++)
		put_mail(fp, T0 + 100 + i, &www, "user:www-data", i < 10 ? "pass" : "hold", 2,
		    (uint32_t)(2 * (i + 1)));
	for (int i = 0; i < 3; i++)
		put_mail(fp, T0 + 200 + i, NULL, "sasl:info@shop.example", i == 0 ? "pass" :
		    "reject", 5, (uint32_t)(5 * (i + 1)));
	assert_int_equal(fclose(fp), 0);
}

/* --- running a subcommand and capturing what it prints --------------------- */

static int
capture_fd(int fd, const char *name)
{
	char path[PATH_MAX];
	int saved = dup(fd), f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && f >= 0);
	dup2(f, fd);
	close(f);
	return saved;
}

static void
slurp(const char *name, char *buf)
{
	char path[PATH_MAX];
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(fp = fopen(path, "r"));
	n = fread(buf, 1, OUT_MAX - 1, fp);
	buf[n] = '\0';
	fclose(fp);
}

/* Runs log or top with the NULL-terminated arguments; fills out and err. */
static int
run(int (*cmd)(const char *, int, char **), const char *path, ...)
{
	char *argv[MAX_ARGS];
	int argc = 0, rc, so, se;
	va_list ap;

	argv[argc++] = cmd == review_log ? "log" : "top";
	va_start(ap, path);
	while ((argv[argc] = va_arg(ap, char *)) != NULL && argc < MAX_ARGS - 1)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	fflush(stdout);
	fflush(stderr);
	so = capture_fd(STDOUT_FILENO, "stdout");
	se = capture_fd(STDERR_FILENO, "stderr");
	rc = cmd(path, argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, STDOUT_FILENO);
	dup2(se, STDERR_FILENO);
	close(so);
	close(se);
	slurp("stdout", out);
	slurp("stderr", err);
	return rc;
}

static size_t
count_lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(events, sizeof(events), "%s/events.jsonl", dir);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[64];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* --- top -------------------------------------------------------------------- */

struct row {
	const char	*key;
	json_int_t	 attempts;
	json_int_t	 dests;
};

static void
assert_top(const char *by, const struct row *want, size_t nwant)
{
	json_error_t jerr;
	json_t *a;

	assert_int_equal(run(review_top, events, "--json", "--by", by, NULL), 0);
	if ((a = json_loads(out, 0, &jerr)) == NULL)
		fail_msg("top --by %s printed no JSON: %s", by, out);
	assert_int_equal(json_array_size(a), nwant);
	for (size_t i = 0; i < nwant; i++) {
		json_t *r = json_array_get(a, i);

		assert_string_equal(json_string_value(json_object_get(r, by)), want[i].key);
		assert_int_equal(json_integer_value(json_object_get(r, "attempts")),
		    want[i].attempts);
		if (want[i].dests >= 0)
			assert_int_equal(json_integer_value(json_object_get(r, "destinations")),
			    want[i].dests);
	}
	json_decref(a);
}

/* top --json's rows as "key:attempts:mail:rcpts:stopped" lines, for one compare. */
static const char *
top_rows(const char *keys)
{
	static char rows[4096];
	json_error_t jerr;
	json_t *a, *r;
	size_t at = 0, i;

	if ((a = json_loads(out, 0, &jerr)) == NULL)
		fail_msg("top printed no JSON: %s %s", out, err);
	rows[0] = '\0';
	json_array_foreach(a, i, r) {
		char k[64];
		const char *p = keys;

		while (*p != '\0') {
			size_t n = strcspn(p, ",");

			snprintf(k, sizeof(k), "%.*s", (int)n, p);
			at += (size_t)snprintf(rows + at, sizeof(rows) - at, "%s:",
			    json_string_value(json_object_get(r, k)));
			p += n + (p[n] == ',');
		}
		at += (size_t)snprintf(rows + at, sizeof(rows) - at, "%lld:%lld:%lld:%lld\n",
		    (long long)json_integer_value(json_object_get(r, "attempts")),
		    (long long)json_integer_value(json_object_get(r, "mail_messages")),
		    (long long)json_integer_value(json_object_get(r, "mail_recipients")),
		    (long long)json_integer_value(json_object_get(r, "mail_stopped")));
	}
	json_decref(a);
	return rows;
}

static void
mail_events_count_per_origin_and_join_their_user(void **state)
{
	(void)state;
	write_mail_log(events);
	/* one row per user: its attempts beside its mail through the MTA */
	assert_int_equal(run(review_top, events, "--json", NULL), 0);
	assert_string_equal(top_rows("user"), "www-data(33):105:12:24:2\n"
	    "alice(1001):10:0:0:0\n");
	assert_non_null(strstr(out, "\"mail_recipients\":24"));
	/* the table says so, and where the SASL login's mail is */
	assert_int_equal(run(review_top, events, NULL), 0);
	assert_non_null(strstr(out, "MAIL   RCPTS STOPPED"));
	assert_non_null(strstr(out, "3 mail messages came from SASL logins or clients"));
	/* per origin: mail only, no attempt columns */
	assert_int_equal(run(review_top, events, "--json", "--by", "origin", NULL), 0);
	assert_string_equal(top_rows("origin"), "user:www-data:0:12:24:2\n"
	    "sasl:info@shop.example:0:3:15:2\n");
	assert_null(strstr(out, "attempts"));
	assert_int_equal(run(review_top, events, "--by", "origin", NULL), 0);
	assert_null(strstr(out, "ATTEMPTS"));
	assert_non_null(strstr(out, "origin\n"));
	/* --event mail: the mail alone, per user; --event attempt: the attempts alone */
	assert_int_equal(run(review_top, events, "--json", "--event", "mail", NULL), 0);
	assert_string_equal(top_rows("user"), "www-data(33):0:12:24:2\n");
	assert_int_equal(run(review_top, events, "--json", "--event", "attempt", NULL), 0);
	assert_null(strstr(out, "mail_messages"));
	/* the filters that mean something for mail */
	assert_int_equal(run(review_top, events, "--json", "--by", "origin", "--action", "hold",
	    NULL), 0);
	assert_string_equal(top_rows("origin"), "user:www-data:0:2:4:2\n");
	assert_int_equal(run(review_top, events, "--json", "--by", "origin", "--origin",
	    "sasl:info@shop.example", NULL), 0);
	assert_string_equal(top_rows("origin"), "sasl:info@shop.example:0:3:15:2\n");
	/* the sender domain both roll up into */
	assert_int_equal(run(review_top, events, "--json", "--by", "origin", "--origin",
	    "domain:shop.example", NULL), 0);
	assert_int_equal(count_lines(top_rows("origin")), 2);
	/* sender and subject views count mail beside the SMTP sessions */
	assert_int_equal(run(review_top, events, "--json", "--by", "sender", NULL), 0);
	assert_string_equal(top_rows("sender"), "shop@shop.example:0:15:39:4\n"
	    "a@example.org:2:0:0:0\nspam@example.com:1:0:0:0\n");
	/* log shows them */
	assert_int_equal(run(review_log, events, "-n", "0", "--event", "mail", "--action",
	    "reject", NULL), 0);
	assert_int_equal(count_lines(out), 2);
	assert_non_null(strstr(out, "reject  mail sasl:info@shop.example 10/10 per hour  "
	    "shop@shop.example \u2192 buyer@example.org (+4)  \"Offer\"  [postfix 4XyzQ1]"));
	assert_int_equal(run(review_log, events, "-n", "0", "--origin", "user:www-data", NULL), 0);
	assert_int_equal(count_lines(out), 12);
	assert_non_null(strstr(out, "www-data(33)         hold    mail user:www-data 24/10"));
	assert_int_equal(run(review_log, events, "--action", "bounce", NULL), 2);
}

/* Collected events name their host; a local file's are this machine's. */
static void
write_host_file(const char *path, const char *host, uid_t uid, const char *user, int n,
    int t_off)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	for (int i = 0; i < n; i++)
		fprintf(fp, "{\"host\":\"%s\",\"ts\":\"2026-11-22T10:%02d:%02d.000000Z\","
		    "\"event\":\"attempt\",\"action\":\"reject\",\"uid\":%u,\"user\":\"%s\","
		    "\"exe\":\"/usr/bin/php8.2\",\"dst_ip\":\"192.0.2.%d\",\"dst_port\":25}\n",
		    host, (t_off + i) / 60, (t_off + i) % 60, (unsigned)uid, user, 1 + i % 3);
	assert_int_equal(fclose(fp), 0);
}

static void
many_files_and_directories_are_read_with_their_hosts(void **state)
{
	char hosts[PATH_MAX / 2], a[PATH_MAX], b[PATH_MAX], b1[PATH_MAX], junk[PATH_MAX];
	char *local_row;

	(void)state;
	snprintf(hosts, sizeof(hosts), "%s/hosts", dir);
	snprintf(a, sizeof(a), "%s/weba", hosts);
	assert_int_equal(mkdir(hosts, 0700), 0);
	assert_int_equal(mkdir(a, 0700), 0);
	snprintf(b, sizeof(b), "%s/webb", hosts);
	assert_int_equal(mkdir(b, 0700), 0);
	snprintf(a, sizeof(a), "%s/weba/events.jsonl", hosts);
	snprintf(b, sizeof(b), "%s/webb/events.jsonl", hosts);
	snprintf(b1, sizeof(b1), "%s/webb/events.jsonl.1", hosts);
	snprintf(junk, sizeof(junk), "%s/webb/events.jsonl.2.gz", hosts);
	write_host_file(a, "weba", 1001, "alice", 4, 0);
	write_host_file(b1, "webb", 33, "www-data", 30, 1);	/* rotated: older, still read */
	write_host_file(b, "webb", 33, "www-data", 20, 100);
	write_host_file(junk, "webb", 33, "www-data", 1000, 0);	/* compressed: not ours */
	write_known_log(events);
	assert_int_equal(run(review_top, events, "--json", "--by", "host", "--by", "user", hosts,
	    NULL), 0);
	assert_string_equal(top_rows("host,user"), "webb:www-data(33):50:0:0:0\n"
	    "weba:alice(1001):4:0:0:0\n");
	/* files and directories together; the local file's events are this host's */
	assert_int_equal(run(review_top, events, "--json", "--by", "host", hosts, events, NULL), 0);
	assert_non_null(local_row = strstr(top_rows("host"), evread_local_host()));
	assert_int_equal(strncmp(local_row + strlen(evread_local_host()), ":115:", 5), 0);
	/* the text table: a column per key */
	assert_int_equal(run(review_top, events, "--by", "host", "--by", "user", hosts, NULL), 0);
	assert_non_null(strstr(out, "host  user\n"));
	assert_non_null(strstr(out, " webb  www-data(33)\n"));
	assert_non_null(strstr(out, " weba  alice(1001)\n"));
	/* --host, and --since on lines that open with the host */
	assert_int_equal(run(review_top, events, "--json", "--host", "weba", hosts, NULL), 0);
	assert_string_equal(top_rows("user"), "alice(1001):4:0:0:0\n");
	assert_int_equal(run(review_top, events, "--json", "--since", "2026-11-22T10:01:30Z",
	    "--until", "2026-11-22T10:01:50Z", hosts, NULL), 0);
	assert_string_equal(top_rows("user"), "www-data(33):10:0:0:0\n");
	/* log merges the files by time, and shows each event's host */
	assert_int_equal(run(review_log, events, "-n", "3", hosts, NULL), 0);
	assert_int_equal(count_lines(out), 3);
	assert_non_null(strstr(out, "2026-11-22 10:01:59  webb  www-data(33)"));
	assert_int_equal(run(review_log, events, "-n", "0", "--json", "--until",
	    "2026-11-22T10:00:05Z", hosts, NULL), 0);
	assert_int_equal(count_lines(out), 8);
	{
		/* oldest first across the hosts: weba's 4 and webb's first 4, interleaved */
		const char *p = out, *prev = "";

		for (int i = 0; i < 8; i++) {
			const char *ts = strstr(p, "\"ts\":\"");

			assert_non_null(ts);
			assert_true(strncmp(prev, ts + 6, 27) <= 0);
			prev = ts + 6;
			p = strchr(ts, '\n');
		}
	}
	assert_int_equal(run(review_log, events, "-n", "0", "--host", "weba", hosts, NULL), 0);
	assert_int_equal(count_lines(out), 4);
	/* an empty directory is an error, not silence */
	snprintf(a, sizeof(a), "%s/empty", dir);
	assert_int_equal(mkdir(a, 0700), 0);
	assert_int_equal(run(review_top, events, a, NULL), 1);
	assert_non_null(strstr(err, "no event files"));
}

static void
top_counts_are_exact_for_every_grouping(void **state)
{
	const struct row by_user[] = { { "www-data(33)", 105, 2 }, { "alice(1001)", 10, 1 } };
	const struct row by_process[] = { { "/usr/bin/php8.2", 105, 2 },
	    { "/usr/bin/python3", 10, 1 } };
	const struct row by_dst[] = { { "(unknown)", 103, 0 }, { "198.51.100.7", 7, 1 },
	    { "192.0.2.25", 3, 1 }, { "192.0.2.26", 2, 1 } };
	const struct row by_cwd[] = { { "(unknown)", 103, 0 }, { "/home/alice", 7, 1 },
	    { "/var/www/site1", 5, 2 } };
	const struct row by_sender[] = { { "a@example.org", 2, 1 },
	    { "spam@example.com", 1, 1 } };
	const struct row by_script[] = { { "/home/alice/mail.php", 2, 1 }, { "(none)", 1, 1 } };
	const struct row by_subject[] = { { "Hi", 2, 1 }, { "Win", 1, 1 } };

	(void)state;
	write_known_log(events);
	assert_top("user", by_user, 2);
	assert_top("process", by_process, 2);
	assert_top("dst", by_dst, 4);
	assert_top("cwd", by_cwd, 3);
	assert_top("sender", by_sender, 2);
	assert_top("script", by_script, 2);
	assert_top("subject", by_subject, 2);
}

/*
 * top reads the daemon's plain lines without jansson and leaves the rest
 * (\\u escapes, UTF-8, reals) to it: both kinds count the same, and a broken
 * line is still counted as unreadable.
 */
static void
top_fast_and_full_parsers_agree(void **state)
{
	const struct row by_process[] = { { "/usr/bin/php8.2", 4, 1 }, { "/usr/bin/caf\u00e9", 2, 1 } };
	FILE *fp = fopen(events, "w");

	(void)state;
	assert_non_null(fp);
	fputs("{\"event\":\"attempt\",\"uid\":33,\"exe\":\"/usr/bin/php8.2\","
	    "\"dst_ip\":\"192.0.2.25\",\"rcpt\":[\"a\",{\"b\":null}]}\n", fp);
	/* escapes the scanner undoes itself */
	fputs("{\"event\":\"attempt\",\"uid\":33,\"exe\":\"\\/usr\\/bin\\/php8.2\","
	    "\"dst_ip\":\"192.0.2.25\"}\n", fp);
	/* a repeated key (the last counts), and text after the object (ignored) */
	fputs("{\"event\":\"attempt\",\"uid\":1,\"uid\":33,\"exe\":\"/usr/bin/php8.2\","
	    "\"dst_ip\":\"192.0.2.25\"} trailing\n", fp);
	/* a real number elsewhere in the line: left to jansson */
	fputs("{\"event\":\"attempt\",\"uid\":33,\"exe\":\"/usr/bin/php8.2\","
	    "\"dst_ip\":\"192.0.2.25\",\"load\":0.5}\n", fp);
	/* \u escape and raw UTF-8: left to jansson, same name */
	fputs("{\"event\":\"attempt\",\"uid\":34,\"exe\":\"/usr/bin/caf\\u00e9\","
	    "\"dst_ip\":\"192.0.2.26\"}\n", fp);
	fputs("{\"event\":\"attempt\",\"uid\":34,\"exe\":\"/usr/bin/caf\xc3\xa9\","
	    "\"dst_ip\":\"192.0.2.26\"}\n", fp);
	/* broken: cut short, a leading zero, a control character in a string */
	fputs("{\"event\":\"attempt\",\"uid\":33\n", fp);
	fputs("{\"event\":\"attempt\",\"uid\":033}\n", fp);
	fputs("{\"event\":\"attempt\",\"uid\":33,\"exe\":\"a\tb\"}\n", fp);
	fclose(fp);
	assert_top("process", by_process, 2);
	assert_non_null(strstr(err, "3 unreadable lines skipped"));
}

/* evread_flat_scan() of LINE: -1, or 0 with every field as jansson reads it. */
static int
flat_as_jansson(const char *line)
{
	size_t len = strlen(line);
	char *copy = strdup(line);
	struct evread_event flat, full;
	json_error_t jerr;
	json_t *ev;
	int rc;

	assert_non_null(copy);
	if ((rc = evread_flat_scan(copy, len, &flat)) == 0) {
		assert_non_null(ev = json_loadb(line, len, JSON_DISABLE_EOF_CHECK, &jerr));
		evread_from_json(&full, ev);
		for (int i = 0; i < EVREAD_NFIELDS; i++) {
			assert_int_equal(flat.s[i] == NULL, full.s[i] == NULL);
			if (flat.s[i] != NULL)
				assert_string_equal(flat.s[i], full.s[i]);
			assert_int_equal(flat.has_n[i], full.has_n[i]);
			assert_int_equal(flat.n[i], full.n[i]);
		}
		json_decref(ev);
	}
	free(copy);
	return rc;
}

/*
 * The scanner takes sixteen bytes, then eight, then one at a time: a byte
 * that ends a plain run is seen at every offset of each step, and what it
 * takes, it reads as jansson does; what it is unsure of, it leaves.
 */
static void
flat_scanner_sees_every_byte_as_jansson_does(void **state)
{
	static const struct {
		const char	*ins;
		int		 rc;
	} bytes[] = {
		{ "\\\"", 0 }, { "\\\\", 0 }, { "\\/", 0 }, { "\\t", 0 }, { "\\n", 0 },
		{ "\x7f", 0 }, { "\\u0041", -1 }, { "\x01", -1 }, { "\t", -1 },
		{ "\xc3\xa9", -1 }, { "\\x", -1 },
	};
	static const char *const fields[] = { "ts", "event", "action", "user", "uid", "exe", "cwd",
	    "dst_ip", "dst_port", "mail_from", "php_script", "subject", "suppressed", "origin",
	    "domain", "rcpt_count", "host" };
	char line[512], key[64];

	(void)state;
	for (size_t b = 0; b < sizeof(bytes) / sizeof(bytes[0]); b++)
		for (int at = 0; at <= 40; at++) {
			/* in a value, then in a key (an escaped key is always left to jansson) */
			snprintf(line, sizeof(line), "{\"event\":\"attempt\",\"exe\":\"%.*s%s%.*s\","
			    "\"uid\":33}", at, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH", bytes[b].ins,
			    40 - at, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH");
			assert_int_equal(flat_as_jansson(line), bytes[b].rc);
			snprintf(line, sizeof(line), "{\"k%.*s%s\":1,\"uid\":33}", at,
			    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH", bytes[b].ins);
			assert_int_equal(flat_as_jansson(line), bytes[b].ins[0] == '\x7f' ? 0 : -1);
		}
	/* every field by its name, each a string and a number; near misses are none */
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		snprintf(line, sizeof(line), "{\"%s\":\"v\\/%zu\",\"x%s\":1,\"%sx\":2}", fields[i], i,
		    fields[i], fields[i]);
		assert_int_equal(flat_as_jansson(line), 0);
		snprintf(line, sizeof(line), "{ \"%s\" :\t-%zu\r\n}", fields[i], i * 1000003);
		assert_int_equal(flat_as_jansson(line), 0);
		snprintf(key, sizeof(key), "%s", fields[i]);
		key[0] ^= 0x20;	/* another letter case: another key */
		snprintf(line, sizeof(line), "{\"%s\":\"v\"}", key);
		assert_int_equal(flat_as_jansson(line), 0);
	}
	/* structure the scanner refuses, or leaves to jansson */
	assert_int_equal(flat_as_jansson("{\"uid\":33,}"), -1);
	assert_int_equal(flat_as_jansson("{\"uid\":0.5}"), -1);
	assert_int_equal(flat_as_jansson("{\"uid\":1234567890123456789}"), -1);
	assert_int_equal(flat_as_jansson("{\"uid\":123456789012345678}"), 0);
	assert_int_equal(flat_as_jansson("{\"a\":[1,{\"b\":[true,false,null]}],\"uid\":-7}"), 0);
	assert_int_equal(flat_as_jansson("{\"exe\":\"unterminated"), -1);
}

/*
 * top reads its files in blocks: lines that straddle a block are whole, one
 * longer than the bound is counted and skipped wherever it falls, and a last
 * line without its newline (still being written) is not read.
 */
static void
top_reads_whole_lines_across_its_blocks(void **state)
{
	static const char head[] = "{\"ts\":\"2026-11-22T10:00:00.000000Z\",\"event\":\"attempt\","
	    "\"uid\":33,\"user\":\"www-data\",\"dst_ip\":\"192.0.2.25\",\"pad\":\"";
	const size_t sizes[] = { 200, EVREAD_LINE_MAX, EVREAD_LINE_MAX + 1, 3 * EVREAD_LINE_MAX,
	    4000, EVREAD_LINE_MAX - 1 };
	size_t good = 0, bad = 0;
	char *pad = malloc(4 * EVREAD_LINE_MAX);
	char want[64];
	json_error_t jerr;
	json_t *a;
	FILE *fp;

	(void)state;
	assert_non_null(pad);
	memset(pad, 'p', 4 * EVREAD_LINE_MAX);
	assert_non_null(fp = fopen(events, "w"));
	/* ~3.5 MiB: lines of every size fall across the 1 MiB blocks */
	for (size_t i = 0; i < 150; i++) {
		size_t total = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];	/* with the newline */

		fprintf(fp, "%s%.*s\"}\n", head, (int)(total - strlen(head) - 3), pad);
		if (total > EVREAD_LINE_MAX)
			bad++;
		else
			good++;
	}
	fprintf(fp, "%s%.*s\"}", head, 20, pad);	/* no newline yet */
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(run(review_top, events, "--json", NULL), 0);
	assert_non_null(a = json_loads(out, 0, &jerr));
	assert_int_equal(json_array_size(a), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(a, 0), "attempts")),
	    (json_int_t)good);
	json_decref(a);
	snprintf(want, sizeof(want), "%zu unreadable lines skipped", bad);
	assert_non_null(strstr(err, want));
	free(pad);
}

/*
 * Distinct destinations are exact however a user's are kept: a site that
 * sends to thousands of hosts, a site that sends to two far apart in the
 * order they were first seen, each counted once however often repeated.
 */
static void
distinct_destinations_are_exact_dense_or_sparse(void **state)
{
	json_error_t jerr;
	json_t *a, *row;
	FILE *fp;

	(void)state;
	assert_non_null(fp = fopen(events, "w"));
	for (int round = 0; round < 2; round++)
		for (int d = 0; d < 3000; d++)
			fprintf(fp, "{\"event\":\"attempt\",\"uid\":1001,\"dst_ip\":\"10.0.%d.%d\"}\n",
			    d / 256, d % 256);
	for (int round = 0; round < 3; round++) {
		fprintf(fp, "{\"event\":\"attempt\",\"uid\":1002,\"dst_ip\":\"10.0.11.183\"}\n");
		fprintf(fp, "{\"event\":\"attempt\",\"uid\":1002,\"dst_ip\":\"10.0.0.0\"}\n");
		fprintf(fp, "{\"event\":\"attempt\",\"uid\":1002,\"dst_ip\":\"10.0.5.5\"}\n");
	}
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(run(review_top, events, "--json", NULL), 0);
	assert_non_null(a = json_loads(out, 0, &jerr));
	assert_int_equal(json_array_size(a), 2);
	row = json_array_get(a, 0);
	assert_string_equal(json_string_value(json_object_get(row, "user")), "(1001)");
	assert_int_equal(json_integer_value(json_object_get(row, "attempts")), 6000);
	assert_int_equal(json_integer_value(json_object_get(row, "destinations")), 3000);
	row = json_array_get(a, 1);
	assert_string_equal(json_string_value(json_object_get(row, "user")), "(1002)");
	assert_int_equal(json_integer_value(json_object_get(row, "attempts")), 9);
	assert_int_equal(json_integer_value(json_object_get(row, "destinations")), 3);
	assert_false(json_is_true(json_object_get(row, "destinations_capped")));
	json_decref(a);
}

static void
flood_summaries_add_their_suppressed_attempts(void **state)
{
	const struct row late[] = { { "www-data(33)", 100, 0 }, { "alice(1001)", 3, 0 } };
	json_error_t jerr;
	json_t *a, *r;

	(void)state;
	write_known_log(events);
	/* Only the summaries fall after 10:01: the rows are exactly what they suppressed.
	 * Summaries carry no user name, and none is made up: the uid alone shows. */
	assert_int_equal(run(review_top, events, "--json", "--since", "2026-11-22T10:01Z",
	    NULL), 0);
	assert_non_null(a = json_loads(out, 0, &jerr));
	assert_int_equal(json_array_size(a), 2);
	r = json_array_get(a, 0);
	assert_string_equal(json_string_value(json_object_get(r, "user")), "(33)");
	assert_int_equal(json_integer_value(json_object_get(r, "attempts")), late[0].attempts);
	r = json_array_get(a, 1);
	assert_string_equal(json_string_value(json_object_get(r, "user")), "(1001)");
	assert_int_equal(json_integer_value(json_object_get(r, "attempts")), late[1].attempts);
	assert_string_equal(json_string_value(json_object_get(r, "first_seen")),
	    "2026-11-22T10:01:10.000000Z");
	json_decref(a);
}

static void
top_prints_a_readable_table_and_honours_limit(void **state)
{
	char *first, *second;

	(void)state;
	write_known_log(events);
	assert_int_equal(run(review_top, events, "--limit", "1", NULL), 0);
	assert_non_null(strstr(out, "ATTEMPTS"));
	assert_non_null(first = strstr(out, "www-data(33)"));
	assert_non_null(strstr(out, "105"));
	assert_null(strstr(out, "alice(1001)"));
	assert_non_null(second = strstr(out, "1 more rows"));
	assert_true(second > first);
}

static void
more_than_100000_keys_fold_into_other(void **state)
{
	FILE *fp = fopen(events, "w");
	json_error_t jerr;
	json_t *a, *r;

	(void)state;
	assert_non_null(fp);
	for (unsigned int i = 0; i < FOLD_KEYS; i++)
		fprintf(fp, "{\"ts\":\"2026-11-22T10:00:00.000000Z\",\"event\":\"attempt\","
		    "\"dst_ip\":\"10.%u.%u.%u\"}\n", i >> 16, (i >> 8) & 0xff, i & 0xff);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(run(review_top, events, "--json", "--by", "dst", "--limit", "1",
	    NULL), 0);
	assert_non_null(a = json_loads(out, 0, &jerr));
	r = json_array_get(a, 0);
	assert_string_equal(json_string_value(json_object_get(r, "dst")), "(other)");
	assert_int_equal(json_integer_value(json_object_get(r, "attempts")), FOLD_KEYS - 100000);
	json_decref(a);
	assert_int_equal(run(review_top, events, "--by", "dst", "--limit", "1", NULL), 0);
	assert_non_null(strstr(out, "(other)"));
	assert_non_null(strstr(out, "more than 100000 distinct keys"));
}

/* log, top and mta-report read --since/--until/--limit through one parser (cliopt.c). */
static void
log_and_top_read_the_shared_options_alike(void **state)
{
	char *lower;

	(void)state;
	write_known_log(events);
	assert_int_equal(run(review_log, events, "--until", "soon", NULL), 2);
	assert_non_null(strstr(err, "smtpguard log: bad time 'soon'"));
	assert_int_equal(run(review_top, events, "--until", "soon", NULL), 2);
	assert_non_null(strstr(err, "smtpguard top: bad time 'soon'"));
	assert_int_equal(run(review_top, events, "--limit", "x", NULL), 2);
	assert_non_null(strstr(err, "smtpguard top: bad --limit 'x'"));
	/* log shows the last -n events; a --limit is a usage error, not ignored */
	assert_int_equal(run(review_log, events, "--limit", "3", NULL), 2);
	/* --action takes the names action_parse() takes, as the config's action key does */
	assert_int_equal(run(review_log, events, "--json", "-n", "0", "--action", "trap", NULL), 0);
	assert_true(count_lines(out) > 0);
	assert_non_null(lower = strdup(out));
	assert_int_equal(run(review_log, events, "--json", "-n", "0", "--action", "TRAP", NULL), 0);
	assert_string_equal(out, lower);
	free(lower);
}

/* --- log --------------------------------------------------------------------- */

static void
assert_log_count(size_t want, ...)
{
	char *argv[MAX_ARGS];
	size_t argc = 0;
	va_list ap;

	va_start(ap, want);
	while ((argv[argc] = va_arg(ap, char *)) != NULL && argc < 10)
		argc++;
	va_end(ap);
	assert_int_equal(run(review_log, events, "--json", "-n", "0", argv[0], argv[1],
	    argv[2], argv[3], NULL), 0);
	if (count_lines(out) != want)
		fail_msg("log %s %s %s %s: %zu lines, want %zu", argv[0] ? argv[0] : "",
		    argv[1] ? argv[1] : "", argv[2] ? argv[2] : "", argv[3] ? argv[3] : "",
		    count_lines(out), want);
}

static void
log_filters_select_exactly_the_matching_events(void **state)
{
	(void)state;
	write_known_log(events);
	assert_log_count(18, NULL, NULL);
	assert_log_count(10, "--uid", "1001", NULL, NULL);
	assert_log_count(9, "--user", "alice", NULL, NULL);
	assert_log_count(11, "--action", "trap", NULL, NULL);
	assert_log_count(3, "--event", "smtp", NULL, NULL);
	assert_log_count(6, "--dst", "192.0.2.0/24", NULL, NULL);
	assert_log_count(4, "--dst", "192.0.2.25:25", NULL, NULL);
	assert_log_count(0, "--dst", "192.0.2.25:587", NULL, NULL);
	assert_log_count(15, "--dst", ":25", NULL, NULL);
	assert_log_count(12, "--since", "2026-11-22T10:00:10Z", NULL, NULL);
	assert_log_count(6, "--until", "2026-11-22T10:00:10Z", NULL, NULL);
	assert_log_count(7, "--event", "attempt", "--uid", "1001");
	assert_log_count(2, "--since", "2026-11-22T10:00:03Z", "--until",
	    "2026-11-22T10:00:05Z");
}

static void
json_output_passes_lines_through_unchanged(void **state)
{
	FILE *fp;
	char line[EVENT_LINE_MAX];

	(void)state;
	write_known_log(events);
	assert_non_null(fp = fopen(events, "r"));
	assert_non_null(fgets(line, sizeof(line), fp));
	fclose(fp);
	assert_int_equal(run(review_log, events, "--json", "--event", "daemon", NULL), 0);
	assert_string_equal(out, line);
}

static void
log_shows_the_last_n_in_order(void **state)
{
	(void)state;
	write_known_log(events);
	assert_int_equal(run(review_log, events, "--json", "--event", "attempt", "-n", "2",
	    NULL), 0);
	assert_int_equal(count_lines(out), 2);
	assert_non_null(strstr(out, "\"ts\":\"2026-11-22T10:00:15.000000Z\""));
	assert_true(strstr(out, "10:00:15") < strstr(out, "10:00:16"));
	/* Without -n and without --since: the last 50. */
	assert_int_equal(run(review_log, events, NULL), 0);
	assert_int_equal(count_lines(out), 18);
}

static void
human_lines_name_who_what_and_where(void **state)
{
	(void)state;
	setenv("TZ", "UTC0", 1);
	tzset();
	write_known_log(events);
	assert_int_equal(run(review_log, events, "--event", "smtp", "--uid", "33", NULL), 0);
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "2026-11-22 10:00:22"));
	assert_non_null(strstr(out, "www-data(33)"));
	assert_non_null(strstr(out, "trap"));
	assert_non_null(strstr(out, "1033 /usr/bin/php8.2 -> 192.0.2.25:25"));
	assert_non_null(strstr(out, "spam@example.com \u2192 victim@example.org (+4)"));
	assert_non_null(strstr(out, "\"Win\""));
	assert_int_equal(run(review_log, events, "--event", "daemon", NULL), 0);
	assert_non_null(strstr(out, "smtpguardd: started"));
}

static void
hostile_strings_are_printed_escaped(void **state)
{
	const char *fixture = "tests/fixtures/events/hostile.jsonl";

	(void)state;
	if (access(fixture, R_OK) != 0)
		fail_msg("%s: run from the source tree", fixture);
	assert_int_equal(run(review_log, fixture, "-n", "0", NULL), 0);
	for (const unsigned char *p = (const unsigned char *)out; *p != '\0'; p++)
		if ((*p < 0x20 && *p != '\n') || *p == 0x7f)
			fail_msg("raw control byte 0x%02x in: %s", *p, out);
	assert_null(strstr(out, "\xe2\x80\xae"));	/* U+202E right-to-left override */
	assert_null(strstr(out, "\xc2\x9b"));		/* U+009B CSI */
	assert_non_null(strstr(out, "\\x1b[31mred"));
	assert_non_null(strstr(out, "\\u202e"));
	assert_non_null(strstr(out, "restart\\x0a2026-01-01"));
	/* one output line per readable event, no forged extra lines */
	assert_int_equal(count_lines(out), 5);
	assert_non_null(strstr(err, "2 unreadable lines skipped"));
}

static void
since_accepts_relative_and_absolute_times(void **state)
{
	char ts[40];

	(void)state;
	setenv("TZ", "XST+5", 1);	/* a fixed UTC-5 zone without tzdata */
	tzset();
	assert_int_equal(when_parse_ts("10m", T0, ts, sizeof(ts)), 0);
	assert_string_equal(ts, "2026-11-22T09:50:00.000000Z");
	assert_int_equal(when_parse_ts("2h", T0, ts, sizeof(ts)), 0);
	assert_string_equal(ts, "2026-11-22T08:00:00.000000Z");
	assert_int_equal(when_parse_ts("3d", T0, ts, sizeof(ts)), 0);
	assert_string_equal(ts, "2026-11-19T10:00:00.000000Z");
	assert_int_equal(when_parse_ts("45s", T0, ts, sizeof(ts)), 0);
	assert_string_equal(ts, "2026-11-22T09:59:15.000000Z");
	assert_int_equal(when_parse_ts("2026-11-22T10:00Z", T0, ts, sizeof(ts)), 0);
	assert_string_equal(ts, "2026-11-22T10:00:00.000000Z");
	assert_int_equal(when_parse_ts("2026-11-22T10:00:30Z", T0, ts, sizeof(ts)), 0);
	assert_string_equal(ts, "2026-11-22T10:00:30.000000Z");
	/* without Z: the admin's local time */
	assert_int_equal(when_parse_ts("2026-11-22T10:00", T0, ts, sizeof(ts)), 0);
	assert_string_equal(ts, "2026-11-22T15:00:00.000000Z");
	assert_int_equal(when_parse_ts("2026-11-22", T0, ts, sizeof(ts)), 0);
	assert_string_equal(ts, "2026-11-22T05:00:00.000000Z");
	assert_int_equal(when_parse_ts("10x", T0, ts, sizeof(ts)), -1);
	assert_int_equal(when_parse_ts("m", T0, ts, sizeof(ts)), -1);
	assert_int_equal(when_parse_ts("", T0, ts, sizeof(ts)), -1);
	assert_int_equal(when_parse_ts("-5m", T0, ts, sizeof(ts)), -1);
	assert_int_equal(when_parse_ts("2026-11-22T25:00", T0, ts, sizeof(ts)), -1);
	assert_int_equal(when_parse_ts("2026-11-22Tjunk", T0, ts, sizeof(ts)), -1);
	assert_int_equal(when_parse_ts("99999999999d", T0, ts, sizeof(ts)), -1);
	assert_int_equal(when_parse_ts("5000d", T0, ts, sizeof(ts)), -1);
	assert_int_equal(when_parse_ts("3000d", T0, ts, sizeof(ts)), 0);
	setenv("TZ", "UTC0", 1);
	tzset();
}

static void
since_ago_selects_recent_events(void **state)
{
	struct attrib who;
	FILE *fp = fopen(events, "w");
	time_t now = time(NULL);

	(void)state;
	assert_non_null(fp);
	who_of(&who, 33, "www-data", "/usr/bin/php8.2", NULL);
	put_attempt(fp, now - 7200, &who, "192.0.2.25", "reject");
	put_attempt(fp, now - 10, &who, "192.0.2.25", "reject");
	assert_int_equal(fclose(fp), 0);
	assert_log_count(1, "--since", "1h", NULL, NULL);
	assert_log_count(2, "--since", "3h", NULL, NULL);
	assert_log_count(1, "--until", "1h", NULL, NULL);
}

static void
usage_errors_name_the_bad_value(void **state)
{
	(void)state;
	write_known_log(events);
	assert_int_equal(run(review_log, events, "--since", "yesterdayish", NULL), 2);
	assert_non_null(strstr(err, "yesterdayish"));
	assert_int_equal(run(review_log, events, "--uid", "www", NULL), 2);
	assert_non_null(strstr(err, "'www'"));
	assert_int_equal(run(review_log, events, "--action", "drop", NULL), 2);
	assert_non_null(strstr(err, "'drop'"));
	assert_int_equal(run(review_log, events, "--dst", "300.1.1.1", NULL), 2);
	assert_non_null(strstr(err, "300.1.1.1"));
	assert_int_equal(run(review_log, events, "-n", "many", NULL), 2);
	assert_non_null(strstr(err, "many"));
	/* an operand is a file to read: one that is not there is an I/O error that names it */
	assert_int_equal(run(review_log, events, "stray", NULL), 1);
	assert_non_null(strstr(err, "stray"));
	assert_int_equal(run(review_top, events, "--by", "host", "--by", "host", NULL), 2);
	assert_non_null(strstr(err, "--by host given twice"));
	assert_int_equal(run(review_top, events, "--by", "host", "--by", "user", "--by", "dst",
	    "--by", "cwd", NULL), 2);
	assert_int_equal(run(review_top, events, "--by", "host", "--mta", NULL), 2);
	assert_int_equal(run(review_top, events, "--by", "colour", NULL), 2);
	assert_non_null(strstr(err, "colour"));
	assert_int_equal(run(review_top, events, "--limit", "0", NULL), 2);
	assert_int_equal(run(review_top, events, "--bogus", NULL), 2);
	assert_int_equal(run(review_log, events, "--help", NULL), 0);
	assert_non_null(strstr(out, "--follow"));
	assert_int_equal(run(review_top, events, "--help", NULL), 0);
	assert_non_null(strstr(out, "--by script"));
}

static void
a_missing_log_is_an_io_error(void **state)
{
	char path[PATH_MAX];

	(void)state;
	snprintf(path, sizeof(path), "%s/no/such/events.jsonl", dir);
	assert_int_equal(run(review_log, path, NULL), 1);
	assert_non_null(strstr(err, path));
	assert_int_equal(run(review_top, path, NULL), 1);
}

static void
the_last_n_are_found_from_the_end_of_a_large_log(void **state)
{
	static char all[OUT_MAX];
	struct attrib www, alice;
	FILE *fp = fopen(events, "w");
	char *big;
	size_t n, skip;
	const char *p;

	(void)state;
	assert_non_null(fp);
	who_of(&www, 33, "www-data", "/usr/bin/php8.2", "/var/www/site1");
	who_of(&alice, 1001, "alice", "/usr/bin/python3", "/home/alice");
	assert_non_null(big = malloc(3 * EVENT_LINE_MAX));
	memset(big, 'x', 3 * EVENT_LINE_MAX - 1);
	big[3 * EVENT_LINE_MAX - 1] = '\0';
	/* ~5 MiB: the backwards reader crosses several blocks and an overlong line */
	for (int i = 0; i < BIG_EVENTS; i++) {
		put_attempt(fp, T0 + i, i % 3 ? &alice : &www, "192.0.2.25", "reject");
		if (i == BIG_EVENTS - 400)
			fprintf(fp, "%s\n", big);
	}
	fputs("{\"ts\":\"2026-11-22T23:00:00.000000Z\",\"event\":\"attempt\",\"uid\":33", fp);
	assert_int_equal(fclose(fp), 0);
	free(big);

	assert_int_equal(run(review_log, events, "--json", "-n", "0", "--uid", "33", NULL), 0);
	assert_non_null(strstr(err, "1 unreadable lines skipped"));
	memcpy(all, out, sizeof(all));
	n = count_lines(all);
	assert_int_equal(n, (BIG_EVENTS + 2) / 3);
	assert_int_equal(run(review_log, events, "--json", "-n", "500", "--uid", "33", NULL), 0);
	assert_int_equal(count_lines(out), 500);
	assert_non_null(strstr(err, "1 unreadable lines skipped"));
	for (p = all, skip = n - 500; skip > 0; skip--)
		p = strchr(p, '\n') + 1;
	assert_string_equal(out, p);
	/* the line still being written is not shown */
	assert_null(strstr(out, "T23:00"));
}

/* --- follow -------------------------------------------------------------------- */

static void
append(const char *path, const char *line)
{
	FILE *fp = fopen(path, "a");

	assert_non_null(fp);
	fputs(line, fp);
	assert_int_equal(fclose(fp), 0);
}

/* Reads from fd until NEEDLE has arrived in buf, or 5 seconds pass. */
static bool
wait_for(int fd, char *buf, size_t *len, size_t cap, const char *needle)
{
	for (int waited = 0; waited < 5000; waited += 100) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 100) == 1 && (n = read(fd, buf + *len, cap - *len - 1)) > 0) {
			*len += (size_t)n;
			buf[*len] = '\0';
		}
		if (strstr(buf, needle) != NULL)
			return true;
	}
	return false;
}

static void
follow_keeps_reading_across_rotation(void **state)
{
	char rotated[PATH_MAX + 8], buf[8192] = "";
	size_t len = 0;
	int p[2], status;
	pid_t pid;

	(void)state;
	snprintf(rotated, sizeof(rotated), "%s.1", events);
	unlink(rotated);
	fclose(fopen(events, "w"));
	append(events, "{\"ts\":\"2026-11-22T09:00:00.000000Z\",\"event\":\"daemon\","
	    "\"msg\":\"already there\"}\n");
	assert_int_equal(pipe(p), 0);
	fflush(stdout);
	if ((pid = fork()) == 0) {
		char *argv[] = { "log", "--json", "--follow", NULL };

		close(p[0]);
		dup2(p[1], STDOUT_FILENO);
		_exit(review_log(events, 3, argv));
	}
	assert_true(pid > 0);
	close(p[1]);
	append(events, "{\"ts\":\"2026-11-22T10:00:00.000000Z\",\"event\":\"daemon\","
	    "\"msg\":\"before rotation\"}\n");
	assert_true(wait_for(p[0], buf, &len, sizeof(buf), "before rotation"));
	assert_true(strstr(buf, "already there") < strstr(buf, "before rotation"));
	assert_int_equal(rename(events, rotated), 0);
	/* written to the old file after the rename, before the new file exists */
	append(rotated, "{\"ts\":\"2026-11-22T10:00:01.000000Z\",\"event\":\"daemon\","
	    "\"msg\":\"late in old file\"}\n");
	append(events, "{\"ts\":\"2026-11-22T10:00:02.000000Z\",\"event\":\"daemon\","
	    "\"msg\":\"in the new file\"}\n");
	assert_true(wait_for(p[0], buf, &len, sizeof(buf), "in the new file"));
	assert_non_null(strstr(buf, "late in old file"));
	assert_true(strstr(buf, "late in old file") < strstr(buf, "in the new file"));
	/* a log truncated in place is read again from its start */
	assert_int_equal(truncate(events, 0), 0);
	usleep(600 * 1000);
	append(events, "{\"event\":\"daemon\",\"msg\":\"after truncation\"}\n");
	assert_true(wait_for(p[0], buf, &len, sizeof(buf), "after truncation"));
	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(p[0]);
}

/* log -f over a collector's directory: new lines of every host's file. */
static void
follow_reads_every_file_given(void **state)
{
	char a[PATH_MAX / 2], b[PATH_MAX / 2], buf[8192] = "";
	size_t len = 0;
	int p[2], status;
	pid_t pid;

	(void)state;
	snprintf(a, sizeof(a), "%s/fa.jsonl", dir);
	snprintf(b, sizeof(b), "%s/fb.jsonl", dir);
	fclose(fopen(a, "w"));
	fclose(fopen(b, "w"));
	append(a, "{\"host\":\"weba\",\"ts\":\"2026-11-22T09:00:00.000000Z\",\"event\":\"daemon\","
	    "\"msg\":\"a was there\"}\n");
	assert_int_equal(pipe(p), 0);
	fflush(stdout);
	if ((pid = fork()) == 0) {
		char *argv[] = { "log", "--follow", a, b, NULL };

		close(p[0]);
		dup2(p[1], STDOUT_FILENO);
		_exit(review_log(events, 4, argv));
	}
	assert_true(pid > 0);
	close(p[1]);
	assert_true(wait_for(p[0], buf, &len, sizeof(buf), "a was there"));
	append(b, "{\"host\":\"webb\",\"ts\":\"2026-11-22T10:00:00.000000Z\",\"event\":\"daemon\","
	    "\"msg\":\"new in b\"}\n");
	assert_true(wait_for(p[0], buf, &len, sizeof(buf), "new in b"));
	append(a, "{\"host\":\"weba\",\"ts\":\"2026-11-22T10:00:01.000000Z\",\"event\":\"daemon\","
	    "\"msg\":\"new in a\"}\n");
	assert_true(wait_for(p[0], buf, &len, sizeof(buf), "new in a"));
	assert_non_null(strstr(buf, "  webb  -"));
	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(p[0]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(top_fast_and_full_parsers_agree),
		cmocka_unit_test(flat_scanner_sees_every_byte_as_jansson_does),
		cmocka_unit_test(top_reads_whole_lines_across_its_blocks),
		cmocka_unit_test(distinct_destinations_are_exact_dense_or_sparse),
		cmocka_unit_test(top_counts_are_exact_for_every_grouping),
		cmocka_unit_test(mail_events_count_per_origin_and_join_their_user),
		cmocka_unit_test(many_files_and_directories_are_read_with_their_hosts),
		cmocka_unit_test(flood_summaries_add_their_suppressed_attempts),
		cmocka_unit_test(top_prints_a_readable_table_and_honours_limit),
		cmocka_unit_test(more_than_100000_keys_fold_into_other),
		cmocka_unit_test(log_filters_select_exactly_the_matching_events),
		cmocka_unit_test(json_output_passes_lines_through_unchanged),
		cmocka_unit_test(log_shows_the_last_n_in_order),
		cmocka_unit_test(the_last_n_are_found_from_the_end_of_a_large_log),
		cmocka_unit_test(human_lines_name_who_what_and_where),
		cmocka_unit_test(hostile_strings_are_printed_escaped),
		cmocka_unit_test(since_accepts_relative_and_absolute_times),
		cmocka_unit_test(since_ago_selects_recent_events),
		cmocka_unit_test(usage_errors_name_the_bad_value),
		cmocka_unit_test(log_and_top_read_the_shared_options_alike),
		cmocka_unit_test(a_missing_log_is_an_io_error),
		cmocka_unit_test(follow_keeps_reading_across_rotation),
		cmocka_unit_test(follow_reads_every_file_given),
	};

	setenv("TZ", "UTC0", 1);
	tzset();
	return cmocka_run_group_tests(tests, setup, teardown);
}
