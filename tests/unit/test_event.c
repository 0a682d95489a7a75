/*
 * event.c: every line of the event log is one valid JSON object that says
 * only what is known, survives hostile strings, and keeps being written when
 * the file is rotated away.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
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

#define WRITERS		4
#define LINES_EACH	300

static char dir[] = "/tmp/test_event.XXXXXX";

static int
setup(void **state)
{
	(void)state;
	umask(022);
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[64];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
fill_who(struct attrib *a)
{
	memset(a, 0, sizeof(*a));
	a->has_uid = a->has_gid = a->has_pid = a->has_ppid = true;
	a->uid = 33;
	a->gid = 33;
	a->pid = 4242;
	a->ppid = 4200;
	strcpy(a->user, "www-data");
	strcpy(a->exe, "/usr/bin/php8.2");
	strcpy(a->cmdline, "php-fpm: pool www");
	strcpy(a->cwd, "/var/www/site1");
	strcpy(a->cgroup, "/system.slice/php8.2-fpm.service");
}

static void
fill_flow(struct pkt *p)
{
	memset(p, 0, sizeof(*p));
	p->family = AF_INET;
	memcpy(p->src, "\xc0\x00\x02\x01", 4);
	memcpy(p->dst, "\xc0\x00\x02\x19", 4);
	p->sport = 40000;
	p->dport = 25;
}

static json_t *
encode_and_parse(const struct event *e)
{
	char buf[EVENT_LINE_MAX];
	json_error_t jerr;
	int n;

	n = event_encode(e, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(buf[n - 1], '\n');
	assert_ptr_equal(memchr(buf, '\n', (size_t)n), buf + n - 1);
	return json_loadb(buf, (size_t)n, 0, &jerr);
}

static void
assert_str_field(json_t *o, const char *k, const char *want)
{
	const char *got = json_string_value(json_object_get(o, k));

	if (got == NULL)
		fail_msg("field %s missing", k);
	assert_string_equal(got, want);
}

static void
assert_int_field(json_t *o, const char *k, json_int_t want)
{
	json_t *j = json_object_get(o, k);

	if (!json_is_integer(j))
		fail_msg("field %s missing or not an integer", k);
	assert_int_equal(json_integer_value(j), want);
}

static void
a_trapped_session_logs_every_known_field(void **state)
{
	struct attrib who;
	struct pkt flow;
	struct smtp_info *m = calloc(1, sizeof(*m));
	struct event e = {
		.ts = { 1795341600, 123456789 }, .event = "smtp", .action = "trap",
		.rule = "default", .who = &who, .flow = &flow, .flow_id = 77, .smtp = m,
	};
	json_t *o, *rcpt;

	(void)state;
	assert_non_null(m);
	fill_who(&who);
	fill_flow(&flow);
	strcpy(m->helo, "evil.example");
	strcpy(m->mail_from, "spam@evil.example");
	strcpy(m->rcpt_to[0], "a@example.org");
	strcpy(m->rcpt_to[1], "b@example.org");
	m->nrcpt_kept = 2;
	m->nrcpt = 40;
	strcpy(m->auth_user, "stolen");
	m->starttls = true;
	strcpy(m->tls_sni, "mx.example.org");
	strcpy(m->subject, "You won");
	strcpy(m->header_from, "Bank <bank@example.com>");
	strcpy(m->header_to, "victim@example.org");
	strcpy(m->message_id, "<1@evil>");
	strcpy(m->x_mailer, "PHPMailer 6");
	strcpy(m->php_script, "/var/www/site1/wp-content/x.php");
	strcpy(m->reply, "550 5.7.1 refused");
	m->bytes = 1234;
	m->inspect = "complete";
	m->proto = "smtp";

	assert_non_null(o = encode_and_parse(&e));
	assert_str_field(o, "ts", "2026-11-22T10:00:00.123456Z");
	assert_str_field(o, "event", "smtp");
	assert_str_field(o, "action", "trap");
	assert_str_field(o, "rule", "default");
	assert_int_field(o, "uid", 33);
	assert_str_field(o, "user", "www-data");
	assert_int_field(o, "gid", 33);
	assert_int_field(o, "pid", 4242);
	assert_int_field(o, "ppid", 4200);
	assert_str_field(o, "exe", "/usr/bin/php8.2");
	assert_str_field(o, "cmdline", "php-fpm: pool www");
	assert_str_field(o, "cwd", "/var/www/site1");
	assert_str_field(o, "cgroup", "/system.slice/php8.2-fpm.service");
	assert_str_field(o, "family", "ipv4");
	assert_str_field(o, "src_ip", "192.0.2.1");
	assert_int_field(o, "src_port", 40000);
	assert_str_field(o, "dst_ip", "192.0.2.25");
	assert_int_field(o, "dst_port", 25);
	assert_int_field(o, "flow_id", 77);
	assert_str_field(o, "helo", "evil.example");
	assert_str_field(o, "mail_from", "spam@evil.example");
	rcpt = json_object_get(o, "rcpt_to");
	assert_int_equal(json_array_size(rcpt), 2);
	assert_string_equal(json_string_value(json_array_get(rcpt, 1)), "b@example.org");
	assert_int_field(o, "rcpt_count", 40);
	assert_str_field(o, "auth_user", "stolen");
	assert_true(json_is_true(json_object_get(o, "starttls")));
	assert_str_field(o, "tls_sni", "mx.example.org");
	assert_str_field(o, "subject", "You won");
	assert_str_field(o, "header_from", "Bank <bank@example.com>");
	assert_str_field(o, "header_to", "victim@example.org");
	assert_str_field(o, "message_id", "<1@evil>");
	assert_str_field(o, "x_mailer", "PHPMailer 6");
	assert_str_field(o, "php_script", "/var/www/site1/wp-content/x.php");
	assert_str_field(o, "reply", "550 5.7.1 refused");
	assert_int_field(o, "bytes", 1234);
	assert_str_field(o, "inspect", "complete");
	assert_str_field(o, "proto", "smtp");
	assert_null(json_object_get(o, "msg"));
	assert_null(json_object_get(o, "suppressed"));
	json_decref(o);
	free(m);
}

static void
unknown_fields_are_left_out_not_invented(void **state)
{
	struct attrib who = { .has_uid = true, .uid = 1001 };
	struct smtp_info *m = calloc(1, sizeof(*m));
	struct event e = { .ts = { 1795341600, 0 }, .event = "attempt", .action = "reject",
	    .who = &who };
	const char *key;
	json_t *o, *v;

	(void)state;
	assert_non_null(o = encode_and_parse(&e));
	json_object_foreach(o, key, v)
		if (strcmp(key, "ts") && strcmp(key, "event") && strcmp(key, "action") &&
		    strcmp(key, "uid"))
			fail_msg("unexpected field %s", key);
	json_decref(o);

	/* An smtp event that saw nothing: no empty strings, no false starttls, no rcpt_to. */
	assert_non_null(m);
	m->nrcpt = 0;
	e.event = "smtp";
	e.smtp = m;
	assert_non_null(o = encode_and_parse(&e));
	assert_int_equal(json_object_size(o), 4);
	json_decref(o);
	free(m);
}

static void
daemon_and_summary_events_carry_their_own_fields(void **state)
{
	struct attrib who = { .has_uid = true, .uid = 33 };
	struct event d = { .ts = { 1795341600, 0 }, .event = "daemon", .msg = "started" };
	struct event s = { .ts = { 1795341600, 0 }, .event = "summary", .action = "reject",
	    .who = &who, .suppressed = 512, .window = 60 };
	json_t *o;

	(void)state;
	strcpy(who.exe, "/usr/bin/php8.2");
	assert_non_null(o = encode_and_parse(&d));
	assert_str_field(o, "msg", "started");
	assert_int_equal(json_object_size(o), 3);
	json_decref(o);
	assert_non_null(o = encode_and_parse(&s));
	assert_int_field(o, "suppressed", 512);
	assert_int_field(o, "window", 60);
	assert_str_field(o, "exe", "/usr/bin/php8.2");
	json_decref(o);
}

/* A flood of one origin's mail: its summary names the origin, and is no message of 0 rcpts. */
static void
a_mail_summary_names_its_origin_and_no_message_size(void **state)
{
	struct mail_event m = { .origin = "sasl:info@shop.example", .limit = UINT32_MAX };
	struct event s = { .ts = { 1795341600, 0 }, .event = "summary", .action = "pass",
	    .mail = &m, .suppressed = 4997, .window = 60 };
	struct event one = { .ts = { 1795341600, 0 }, .event = "mail", .action = "pass",
	    .mail = &m };
	json_t *o;

	(void)state;
	assert_non_null(o = encode_and_parse(&s));
	assert_str_field(o, "origin", "sasl:info@shop.example");
	assert_str_field(o, "action", "pass");
	assert_int_field(o, "suppressed", 4997);
	assert_null(json_object_get(o, "rcpt_count"));
	assert_null(json_object_get(o, "limit"));
	json_decref(o);
	m.rcpt_count = 3;
	assert_non_null(o = encode_and_parse(&one));
	assert_int_field(o, "rcpt_count", 3);
	json_decref(o);
}

/* Both parts of a mail event could say rcpt_count: the line says it once. */
static void
a_mail_event_with_recipients_left_out_says_its_count_once(void **state)
{
	static struct smtp_info smtp;
	struct mail_event m = { .origin = "user:www-data", .rcpt_count = 40,
	    .limit = UINT32_MAX };
	struct event e = { .ts = { 1795341600, 0 }, .event = "mail", .action = "hold",
	    .smtp = &smtp, .mail = &m };
	char buf[EVENT_LINE_MAX];
	const char *at;

	(void)state;
	strcpy(smtp.rcpt_to[0], "a@example.net");
	smtp.nrcpt_kept = 1;
	smtp.nrcpt = 40;
	assert_true(event_encode(&e, buf, sizeof(buf)) > 0);
	assert_non_null(at = strstr(buf, "\"rcpt_to\":[\"a@example.net\"],\"rcpt_count\":40,"));
	assert_null(strstr(strstr(at, "rcpt_count") + 1, "rcpt_count"));
}

static void
ipv6_destinations_are_written_in_text_form(void **state)
{
	struct pkt flow;
	struct event e = { .ts = { 1, 0 }, .event = "attempt", .flow = &flow };
	json_t *o;

	(void)state;
	memset(&flow, 0, sizeof(flow));
	flow.family = AF_INET6;
	memcpy(flow.dst, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x25", 16);
	flow.src[15] = 1;
	flow.dport = 587;
	assert_non_null(o = encode_and_parse(&e));
	assert_str_field(o, "family", "ipv6");
	assert_str_field(o, "dst_ip", "2001:db8::25");
	assert_str_field(o, "src_ip", "::1");
	assert_str_field(o, "ts", "1970-01-01T00:00:01.000000Z");
	json_decref(o);
}

static void
hostile_cmdline_is_escaped_into_valid_json(void **state)
{
	struct attrib who;
	struct event e = { .ts = { 1795341600, 0 }, .event = "attempt", .who = &who };
	char buf[EVENT_LINE_MAX];
	json_error_t jerr;
	json_t *o;
	int n;

	(void)state;
	fill_who(&who);
	/* quote, backslash, newline, ESC sequence, a lone 0xff, a cut 2-byte sequence,
	 * an overlong '/', a UTF-16 surrogate, then good UTF-8 */
	strcpy(who.cmdline, "php \"x\\y\"\n{\"event\":\"fake\"}\x1b[2J\xff\xc3" "a\xc0\xaf"
	    "\xed\xa0\x80" "caf\xc3\xa9");
	n = event_encode(&e, buf, sizeof(buf));
	assert_true(n > 0);
	for (int i = 0; i < n - 1; i++)
		if ((unsigned char)buf[i] < 0x20)
			fail_msg("raw control byte 0x%02x at %d", buf[i], i);
	assert_non_null(o = json_loadb(buf, (size_t)n, 0, &jerr));
	assert_str_field(o, "cmdline", "php \"x\\y\"\n{\"event\":\"fake\"}\x1b[2J"
	    "\xef\xbf\xbd\xef\xbf\xbd" "a\xef\xbf\xbd\xef\xbf\xbd"
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "caf\xc3\xa9");
	assert_str_field(o, "event", "attempt");
	json_decref(o);
}

static void
a_line_longer_than_the_buffer_is_refused(void **state)
{
	struct attrib who;
	struct event e = { .ts = { 1795341600, 0 }, .event = "attempt", .who = &who };
	char small[128];

	(void)state;
	fill_who(&who);
	errno = 0;
	assert_int_equal(event_encode(&e, small, sizeof(small)), -1);
	assert_int_equal(errno, ENOSPC);
}

static size_t
count_lines(const char *path, size_t *bad)
{
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, n = 0;
	json_error_t jerr;
	json_t *o;

	*bad = 0;
	if (fp == NULL)
		return 0;
	while (getline(&line, &cap, fp) > 0) {
		n++;
		if ((o = json_loads(line, 0, &jerr)) == NULL)
			(*bad)++;
		json_decref(o);
	}
	free(line);
	fclose(fp);
	return n;
}

static void
the_log_and_its_directory_are_created_private(void **state)
{
	char path[PATH_MAX], err[256];
	struct event e = { .ts = { 1, 0 }, .event = "daemon", .msg = "started" };
	struct event_log *l;
	struct stat st;
	size_t bad;

	(void)state;
	snprintf(path, sizeof(path), "%s/new/dir/events.jsonl", dir);
	assert_non_null(l = event_open(path, false, err, sizeof(err)));
	assert_int_equal(event_write(l, &e), 0);
	event_close(l);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	snprintf(path, sizeof(path), "%s/new/dir", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	snprintf(path, sizeof(path), "%s/new/dir/events.jsonl", dir);
	assert_int_equal(count_lines(path, &bad), 1);
}

static void
an_unwritable_log_path_is_reported(void **state)
{
	char path[PATH_MAX], err[256] = "";

	(void)state;
	snprintf(path, sizeof(path), "%s/file", dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	snprintf(path, sizeof(path), "%s/file/events.jsonl", dir);
	assert_null(event_open(path, false, err, sizeof(err)));
	assert_non_null(strstr(err, path));
}

/* Lines bigger than any stdio buffer, from several processes at once. */
static void
concurrent_writers_never_tear_a_line(void **state)
{
	char path[PATH_MAX], err[256];
	pid_t pids[WRITERS];
	size_t bad;

	(void)state;
	snprintf(path, sizeof(path), "%s/concurrent.jsonl", dir);
	for (int w = 0; w < WRITERS; w++) {
		if ((pids[w] = fork()) == 0) {
			struct attrib who;
			struct event e = { .ts = { 1, 0 }, .event = "attempt", .who = &who };
			struct event_log *l = event_open(path, false, err, sizeof(err));

			fill_who(&who);
			memset(who.cmdline, 'a' + w, CMDLINE_MAX - 1);
			memset(who.cwd, 'A' + w, 3000);
			for (int i = 0; l != NULL && i < LINES_EACH; i++)
				if (event_write(l, &e) < 0)
					_exit(1);
			_exit(l == NULL);
		}
		assert_true(pids[w] > 0);
	}
	for (int w = 0; w < WRITERS; w++) {
		int status;

		assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	assert_int_equal(count_lines(path, &bad), WRITERS * LINES_EACH);
	assert_int_equal(bad, 0);
}

static void
a_rotated_or_deleted_log_is_reopened(void **state)
{
	char path[PATH_MAX], old[PATH_MAX], err[256];
	struct event e = { .ts = { 1, 0 }, .event = "daemon", .msg = "line" };
	struct event_log *l;
	size_t bad;

	(void)state;
	snprintf(path, sizeof(path), "%s/rot/events.jsonl", dir);
	snprintf(old, sizeof(old), "%s/rot/events.jsonl.1", dir);
	assert_non_null(l = event_open(path, false, err, sizeof(err)));
	assert_int_equal(event_write(l, &e), 0);
	assert_int_equal(rename(path, old), 0);
	/* The path is checked at most once a second. */
	usleep(1100 * 1000);
	assert_int_equal(event_write(l, &e), 0);
	assert_int_equal(event_write(l, &e), 0);
	assert_int_equal(count_lines(old, &bad), 1);
	assert_int_equal(count_lines(path, &bad), 2);

	assert_int_equal(unlink(path), 0);
	usleep(1100 * 1000);
	assert_int_equal(event_write(l, &e), 0);
	assert_int_equal(count_lines(path, &bad), 1);
	event_close(l);
}

static void
a_full_disk_fails_the_line_and_the_log_carries_on(void **state)
{
	char err[256];
	struct event e = { .ts = { 1, 0 }, .event = "daemon", .msg = "lost" };
	struct event_log *l;

	(void)state;
	if (access("/dev/full", W_OK) != 0)
		fail_msg("/dev/full is needed for this test");
	assert_non_null(l = event_open("/dev/full", false, err, sizeof(err)));
	errno = 0;
	assert_int_equal(event_write(l, &e), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(event_write(l, &e), -1);
	event_close(l);
}

/*
 * A sender whose exe, cmdline and cwd are control bytes (24 KiB each once
 * escaped) cannot keep its attempt out of the log: the line comes cut, each
 * string at 512 escaped bytes, says so, and names the sender.
 */
static void
a_line_too_long_escaped_is_cut_not_lost(void **state)
{
	static char line[EVENT_LINE_MAX];
	struct attrib who;
	struct event e = { .ts = { 1795341600, 0 }, .event = "attempt", .action = "reject",
	    .who = &who };
	json_error_t jerr;
	json_t *o;
	int n;

	(void)state;
	fill_who(&who);
	memset(who.exe, 1, sizeof(who.exe) - 1);
	who.exe[sizeof(who.exe) - 1] = '\0';
	memset(who.cmdline, 1, sizeof(who.cmdline) - 1);
	who.cmdline[sizeof(who.cmdline) - 1] = '\0';
	memset(who.cwd, 1, sizeof(who.cwd) - 1);
	who.cwd[sizeof(who.cwd) - 1] = '\0';
	assert_true((n = event_encode(&e, line, sizeof(line))) > 0);
	assert_non_null(o = json_loadb(line, (size_t)n, 0, &jerr));
	assert_true(json_is_true(json_object_get(o, "cut")));
	assert_int_equal(json_integer_value(json_object_get(o, "uid")), who.uid);
	assert_string_equal(json_string_value(json_object_get(o, "user")), who.user);
	/* 512 escaped bytes: 85 control bytes of six each. */
	assert_int_equal(strlen(json_string_value(json_object_get(o, "cmdline"))), 85);
	json_decref(o);

	/* A line that fits whole is not cut. */
	fill_who(&who);
	assert_true((n = event_encode(&e, line, sizeof(line))) > 0);
	assert_null(strstr(line, "\"cut\""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_trapped_session_logs_every_known_field),
		cmocka_unit_test(unknown_fields_are_left_out_not_invented),
		cmocka_unit_test(daemon_and_summary_events_carry_their_own_fields),
		cmocka_unit_test(a_mail_summary_names_its_origin_and_no_message_size),
		cmocka_unit_test(a_mail_event_with_recipients_left_out_says_its_count_once),
		cmocka_unit_test(ipv6_destinations_are_written_in_text_form),
		cmocka_unit_test(hostile_cmdline_is_escaped_into_valid_json),
		cmocka_unit_test(a_line_longer_than_the_buffer_is_refused),
		cmocka_unit_test(a_line_too_long_escaped_is_cut_not_lost),
		cmocka_unit_test(the_log_and_its_directory_are_created_private),
		cmocka_unit_test(an_unwritable_log_path_is_reported),
		cmocka_unit_test(concurrent_writers_never_tear_a_line),
		cmocka_unit_test(a_rotated_or_deleted_log_is_reopened),
		cmocka_unit_test(a_full_disk_fails_the_line_and_the_log_carries_on),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
