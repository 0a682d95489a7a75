/*
 * mailgate.c: smtpguardd decides each message the gate asks about. A local
 * submission is named by the uid in Postfix's own queue file, never by
 * what the (less trusted) gate child claims; past the limit the verdict is
 * the configured action and the reply says so; the event carries the
 * origin, the counts and the limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "smtpguard.h"

#define T0	1800000000

static char queue_dir[64];

static size_t
record(uint8_t *buf, size_t off, char type, const char *data)
{
	size_t n = strlen(data);

	buf[off++] = (uint8_t)type;
	buf[off++] = (uint8_t)n;	/* short records: one length byte */
	memcpy(buf + off, data, n);
	return off + n;
}

/* incoming/QID as cleanup leaves it when it asks its milters. */
static void
queue_file(const char *qid, const char *first_line)
{
	uint8_t q[512];
	char path[128];
	size_t n = 0;
	FILE *fp;

	n = record(q, n, 'S', "shop@web1.example");
	n = record(q, n, 'M', "");
	n = record(q, n, 'N', first_line);
	snprintf(path, sizeof(path), "%s/incoming/%s", queue_dir, qid);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fwrite(q, 1, n, fp), n);
	fclose(fp);
}

static int
setup(void **state)
{
	char path[128];

	(void)state;
	strlcpy_sg(queue_dir, "/tmp/test_mailgate.XXXXXX", sizeof(queue_dir));
	assert_non_null(mkdtemp(queue_dir));
	snprintf(path, sizeof(path), "%s/incoming", queue_dir);
	assert_int_equal(mkdir(path, 0700), 0);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[160];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", queue_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
request(struct gate_request *req, const char *qid, bool local)
{
	memset(req, 0, sizeof(*req));
	req->id = 7;
	mailorigin_reset(&req->facts, "postfix");
	strlcpy_sg(req->facts.queue_id, qid, sizeof(req->facts.queue_id));
	strlcpy_sg(req->facts.client_addr, local ? "127.0.0.1" : "192.0.2.9",
	    sizeof(req->facts.client_addr));
	req->facts.local_submit = local;
	mailorigin_mail_from(&req->facts, "<shop@web1.example>");
	mailorigin_rcpt(&req->facts, "<bob@remote.example>", "smtp");
	mailorigin_header(&req->facts, "X-PHP-Originating-Script", "0:contact.php");
}

static void
config(struct config *cfg)
{
	config_defaults(cfg);
	strlcpy_sg(cfg->mail_queue, queue_dir, sizeof(cfg->mail_queue));
	cfg->mail_limit = 2;
}

static void
test_php_mail_is_named_by_the_queue_files_uid(void **state)
{
	static struct gate_request req;
	static struct mailgate_result r;
	struct mailgate *g = mailgate_new(64);
	struct exceptions xs = { 0 };
	struct config cfg;

	(void)state;
	config(&cfg);
	queue_file("4AbC1", "Received: by web1.example (Postfix, from userid 0)");
	for (int i = 0; i < 3; i++) {
		request(&req, "4AbC1", true);
		mailgate_decide(g, &cfg, &xs, NULL, NULL, NULL, &req, T0, &r);
	}
	assert_string_equal(r.origin.name, "user:root");
	assert_true(r.who.has_uid);
	assert_int_equal(r.who.uid, 0);
	assert_string_equal(r.ev.event, "mail");
	assert_string_equal(r.ev.action, "hold");
	assert_string_equal(r.ev.smtp->php_script, "0:contact.php");
	assert_null(r.mail.client_ip);	/* a local submission has no client */
	assert_int_equal(r.mail.hour_count, 3);
	assert_int_equal(r.mail.limit, 2);
	assert_int_equal(r.reply.id, 7);
	assert_int_equal(r.reply.action, MAIL_HOLD);
	assert_non_null(strstr(r.reply.reason, "user:root"));
	assert_true(r.alert);
	{
		static char line[EVENT_LINE_MAX];

		r.ev.ts.tv_sec = T0;
		assert_true(event_encode(&r.ev, line, sizeof(line)) > 0);
		assert_non_null(strstr(line, "\"event\":\"mail\",\"action\":\"hold\","
		    "\"rule\":\"limit:user:root\",\"uid\":0,\"user\":\"root\""));
		assert_non_null(strstr(line, "\"php_script\":\"0:contact.php\",\"origin\":"
		    "\"user:root\",\"domain\":\"domain:web1.example\",\"queue_id\":\"4AbC1\","
		    "\"mta\":\"postfix\",\"rcpt_count\":1,\"hour_count\":3,\"limit\":2}"));
	}
	mailgate_free(g);
}

static void
test_the_gate_child_cannot_claim_a_uid(void **state)
{
	static struct gate_request req;
	static struct mailgate_result r;
	struct mailgate *g = mailgate_new(64);
	struct exceptions xs = { 0 };
	struct config cfg;

	(void)state;
	config(&cfg);
	/* An SMTP client: no queue file read, whatever the child says. */
	queue_file("5XyZ2", "Received: by web1.example (Postfix, from userid 0)");
	request(&req, "5XyZ2", false);
	req.facts.has_uid = true;
	req.facts.uid = 0;
	mailgate_decide(g, &cfg, &xs, NULL, NULL, NULL, &req, T0, &r);
	assert_string_equal(r.origin.name, "client:192.0.2.9");
	assert_false(r.who.has_uid);
	/* A local submission with no queue file, or a queue id that is a path: unnamed. */
	request(&req, "NoSuchFile", true);
	req.facts.has_uid = true;
	mailgate_decide(g, &cfg, &xs, NULL, NULL, NULL, &req, T0, &r);
	assert_false(r.who.has_uid);
	assert_string_equal(r.origin.name, "client:127.0.0.1");
	request(&req, "../incoming/5XyZ2", true);
	mailgate_decide(g, &cfg, &xs, NULL, NULL, NULL, &req, T0, &r);
	assert_false(r.who.has_uid);
	mailgate_free(g);
}

static void
test_mail_that_stays_here_is_neither_limited_nor_counted(void **state)
{
	static struct gate_request req;
	static struct mailgate_result r;
	struct mailgate *g = mailgate_new(64);
	struct exceptions xs = { 0 };
	struct config cfg;

	(void)state;
	config(&cfg);
	for (int i = 0; i < 3; i++) {
		request(&req, "7A", false);
		mailgate_decide(g, &cfg, &xs, NULL, NULL, NULL, &req, T0, &r);
	}
	assert_string_equal(r.ev.action, "hold");
	/* Over its limit, the client still reaches a mailbox on this host. */
	request(&req, "7B", false);
	memset(&req.facts.info.rcpt_to, 0, sizeof(req.facts.info.rcpt_to));
	req.facts.info.nrcpt = req.facts.info.nrcpt_kept = 0;
	mailorigin_rcpt(&req.facts, "<postmaster@web1.example>", "local");
	mailorigin_rcpt(&req.facts, "<info@web1.example>", "lmtp");
	mailgate_decide(g, &cfg, &xs, NULL, NULL, NULL, &req, T0, &r);
	assert_string_equal(r.ev.action, "pass");
	assert_string_equal(r.ev.rule, "delivered-here");
	assert_false(r.mail.counted);
	/* One remote recipient among local ones: the remote one counts. */
	mailorigin_rcpt(&req.facts, "<bob@remote.example>", "smtp");
	mailgate_decide(g, &cfg, &xs, NULL, NULL, NULL, &req, T0, &r);
	assert_string_equal(r.ev.action, "hold");
	assert_int_equal(r.mail.hour_count, 4);
	assert_int_equal(r.mail.rcpt_count, 3);
	mailgate_free(g);
}

static void
test_limit_lines_apply_per_origin(void **state)
{
	static struct gate_request req;
	static struct mailgate_result r;
	struct mailgate *g = mailgate_new(64);
	struct mail_limit_rule rule = { .origin = "client:192.0.2.9", .per_hour = 0 };
	struct exceptions xs = { .limits = &rule, .nlimits = 1 };
	struct config cfg;

	(void)state;
	config(&cfg);
	cfg.mail_over = MAIL_DEFER;
	request(&req, "6Q", false);
	mailgate_decide(g, &cfg, &xs, NULL, NULL, NULL, &req, T0, &r);
	assert_string_equal(r.ev.action, "defer");
	assert_string_equal(r.ev.rule, "limit:client:192.0.2.9");
	assert_int_equal(r.mail.limit, 0);
	assert_string_equal(r.mail.client_ip, "192.0.2.9");
	mailgate_free(g);
}

/* status's "today": a tally from local midnight, kept over a restart, zero the next day. */
static void
test_todays_tally_survives_a_restart_and_ends_at_midnight(void **state)
{
	static struct gate_request req;
	static struct mailgate_result r;
	struct mailgate *g = mailgate_new(64), *back = mailgate_new(64);
	struct exceptions xs = { 0 };
	struct mail_tally t;
	struct config cfg;
	char path[128], err[256];
	time_t day;

	(void)state;
	setenv("TZ", "Europe/Berlin", 1);	/* a zone whose midnight is not UTC's */
	tzset();
	config(&cfg);
	day = mailgate_day_start(T0);
	assert_true(day <= T0 && T0 - day < 86400);
	assert_int_equal((day + 3600) % 86400, 0);	/* 1800000000 is in CET: UTC+1 */
	assert_int_equal(mailgate_day_start(day), day);
	assert_int_equal(mailgate_day_start(day - 1), day - 86400);
	mailgate_today(g, T0, &t);
	assert_int_equal(t.day, day);
	assert_int_equal(t.n[MAIL_PASS] + t.n[MAIL_HOLD], 0);
	assert_null(mailgate_last_mta(g));
	for (int i = 0; i < 5; i++) {
		request(&req, "8T", false);
		mailgate_decide(g, &cfg, &xs, NULL, NULL, NULL, &req, T0, &r);
	}
	mailgate_today(g, T0, &t);
	assert_int_equal(t.n[MAIL_PASS], 2);
	assert_int_equal(t.n[MAIL_HOLD], 3);
	assert_string_equal(mailgate_last_mta(g), "postfix");

	snprintf(path, sizeof(path), "%s/mail.state", queue_dir);
	assert_int_equal(mailgate_save(g, path, T0 + 10, true, err, sizeof(err)), 0);
	assert_int_equal(mailgate_load(back, path, T0 + 20, err, sizeof(err)), 0);
	mailgate_today(back, T0 + 20, &t);
	assert_int_equal(t.day, day);
	assert_int_equal(t.n[MAIL_PASS], 2);
	assert_int_equal(t.n[MAIL_HOLD], 3);
	/* The next local day: nothing yet, and a message starts the count again. */
	mailgate_today(back, day + 86400, &t);
	assert_int_equal(t.day, day + 86400);
	assert_int_equal(t.n[MAIL_PASS] + t.n[MAIL_HOLD], 0);
	request(&req, "8U", false);
	mailgate_decide(back, &cfg, &xs, NULL, NULL, NULL, &req, day + 86400 + 5, &r);
	mailgate_today(back, day + 86400 + 5, &t);
	assert_int_equal(t.n[MAIL_PASS], 1);
	assert_int_equal(t.n[MAIL_HOLD], 0);
	unsetenv("TZ");
	tzset();
	mailgate_free(back);
	mailgate_free(g);
}

/* What fence_redirected() knows: one flow redirected to the MTA, from 192.0.2.9:40123. */
static const struct attrib *
redirected_one(void *arg, int family, const uint8_t *src, uint16_t sport, uint64_t *flow_id,
    time_t now)
{
	static const uint8_t client[4] = { 192, 0, 2, 9 };
	static struct attrib a;
	int *asked = arg;

	(void)now;
	++*asked;
	if (family != AF_INET || sport != 40123 || memcmp(src, client, 4) != 0)
		return NULL;
	memset(&a, 0, sizeof(a));
	a.has_uid = a.has_pid = true;
	a.uid = 33;
	a.pid = 4242;
	strlcpy_sg(a.user, "www-data", sizeof(a.user));
	strlcpy_sg(a.exe, "/usr/bin/php8.2", sizeof(a.exe));
	strlcpy_sg(a.cmdline, "php /var/www/shop/spam.php", sizeof(a.cmdline));
	*flow_id = 77;
	return &a;
}

/*
 * A session the fence redirected to the MTA has no socket the MTA's view
 * finds (it was opened to the mx): the fence names it by the client's
 * address and port, with the attempt's attribution and flow id; any other
 * client stays a client address, and a SASL login is asked about nothing.
 */
static void
test_a_redirected_session_is_named_as_its_attempt(void **state)
{
	static struct gate_request req;
	static struct mailgate_result r;
	struct mailgate *g = mailgate_new(64);
	struct exceptions xs = { 0 };
	struct config cfg;
	int asked = 0;

	(void)state;
	config(&cfg);
	request(&req, "5RdR1", false);
	req.facts.client_port = 40123;
	strlcpy_sg(req.facts.daemon_addr, "127.0.0.1", sizeof(req.facts.daemon_addr));
	req.facts.daemon_port = 25;
	mailgate_decide(g, &cfg, &xs, NULL, redirected_one, &asked, &req, T0, &r);
	assert_int_equal(asked, 1);
	assert_true(r.redirected);
	assert_string_equal(r.origin.name, "user:www-data");
	assert_non_null(r.ev.who);
	assert_int_equal(r.ev.who->uid, 33);
	assert_int_equal(r.ev.who->pid, 4242);
	assert_string_equal(r.ev.who->exe, "/usr/bin/php8.2");
	assert_string_equal(r.ev.who->cmdline, "php /var/www/shop/spam.php");
	assert_int_equal(r.ev.flow_id, 77);
	assert_string_equal(r.mail.client_ip, "192.0.2.9");

	/* another port: not the redirected flow, named by its address */
	request(&req, "5RdR2", false);
	req.facts.client_port = 40124;
	strlcpy_sg(req.facts.daemon_addr, "127.0.0.1", sizeof(req.facts.daemon_addr));
	req.facts.daemon_port = 25;
	mailgate_decide(g, &cfg, &xs, NULL, redirected_one, &asked, &req, T0, &r);
	assert_int_equal(asked, 2);
	assert_false(r.redirected);
	assert_string_equal(r.origin.name, "client:192.0.2.9");
	assert_null(r.ev.who);
	assert_int_equal(r.ev.flow_id, 0);

	/* a SASL login is its own origin: nobody is asked */
	request(&req, "5RdR3", false);
	req.facts.client_port = 40123;
	strlcpy_sg(req.facts.daemon_addr, "127.0.0.1", sizeof(req.facts.daemon_addr));
	req.facts.daemon_port = 25;
	strlcpy_sg(req.facts.sasl_user, "info@shop.example", sizeof(req.facts.sasl_user));
	mailgate_decide(g, &cfg, &xs, NULL, redirected_one, &asked, &req, T0, &r);
	assert_int_equal(asked, 2);
	assert_false(r.redirected);
	mailgate_free(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_php_mail_is_named_by_the_queue_files_uid),
		cmocka_unit_test(test_the_gate_child_cannot_claim_a_uid),
		cmocka_unit_test(test_mail_that_stays_here_is_neither_limited_nor_counted),
		cmocka_unit_test(test_limit_lines_apply_per_origin),
		cmocka_unit_test(test_todays_tally_survives_a_restart_and_ends_at_midnight),
		cmocka_unit_test(test_a_redirected_session_is_named_as_its_attempt),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
