/*
 * mailq.c: what `held` reads from the MTA — a postqueue -j line becomes a
 * held message with its queue id, sender and recipient count; anything
 * else in a line (a hostile sender, a wrong type, an id postsuper would
 * take as an option) is refused or cut, never passed on; Exim's -bp
 * listing marks frozen messages; a mail event of our log gives the origin
 * and subject of its queue id; origins are keyed as the limit lines key them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpguard.h"

static int
pq(const char *line, struct mailq_msg *m, char *err)
{
	return mailq_postqueue_line(line, strlen(line), m, err, 256);
}

static void
a_held_message_of_postqueue_j_is_read(void **state)
{
	struct mailq_msg m;
	char err[256];

	(void)state;
	assert_int_equal(pq("{\"queue_name\": \"hold\", \"queue_id\": \"85D44A726CC\", "
	    "\"arrival_time\": 1795000000, \"message_size\": 412, \"forced_expire\": false, "
	    "\"sender\": \"shop@web1.example\", \"recipients\": [{\"address\": "
	    "\"bob@remote.example\"}, {\"address\": \"eve@remote.example\", \"delay_reason\": "
	    "\"x\"}]}", &m, err), 0);
	assert_true(m.held);
	assert_string_equal(m.queue_id, "85D44A726CC");
	assert_string_equal(m.queue_name, "hold");
	assert_string_equal(m.sender, "shop@web1.example");
	assert_int_equal(m.nrcpt, 2);
	assert_int_equal(m.arrival, 1795000000);
	assert_int_equal(m.size, 412);
	assert_string_equal(m.origin, "");
}

static void
a_deferred_message_is_not_held(void **state)
{
	struct mailq_msg m;
	char err[256];

	(void)state;
	assert_int_equal(pq("{\"queue_name\":\"deferred\",\"queue_id\":\"4Xyz9k1bQzz2mNp\","
	    "\"sender\":\"\",\"recipients\":[]}", &m, err), 0);
	assert_false(m.held);
	assert_string_equal(m.sender, "");	/* the null sender */
	assert_int_equal(m.nrcpt, 0);
}

static void
a_bad_line_is_refused_with_a_reason(void **state)
{
	static const char *const bad[] = {
		"",
		"not json",
		"[1,2]",
		"{\"queue_name\":\"hold\"}",				/* no id */
		"{\"queue_name\":\"hold\",\"queue_id\":7}",		/* id not a string */
		"{\"queue_name\":\"hold\",\"queue_id\":\"-d\"}",	/* postsuper would see an option */
		"{\"queue_name\":\"hold\",\"queue_id\":\"AB CD\"}",
		"{\"queue_name\":\"hold\",\"queue_id\":\"ABC;rm\"}",
		"{\"queue_id\":\"ABCDEF\"}",				/* no queue */
		"{\"queue_name\":\"hold\",\"queue_id\":\"ABCDEF\",\"sender\":5}",
		"{\"queue_name\":\"hold\",\"queue_id\":\"ABCDEF\",\"recipients\":\"x\"}",
		"{\"queue_name\":\"hold\",\"queue_id\":\"A\",\"queue_id\":\"B\"}",	/* which one? */
	};
	struct mailq_msg m;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(pq(bad[i], &m, err), -1);
		assert_true(err[0] != '\0');
	}
}

static void
a_long_sender_is_cut_on_a_character(void **state)
{
	char line[4096], err[256];
	struct mailq_msg m;
	size_t off;

	(void)state;
	off = (size_t)snprintf(line, sizeof(line), "{\"queue_name\":\"hold\",\"queue_id\":\"ABC\","
	    "\"sender\":\"");
	for (int i = 0; i < 300; i++)
		off += (size_t)snprintf(line + off, sizeof(line) - off, "\xc3\xa9");	/* é */
	snprintf(line + off, sizeof(line) - off, "\"}");
	assert_int_equal(pq(line, &m, err), 0);
	assert_true(strlen(m.sender) < sizeof(m.sender));
	assert_int_equal(strlen(m.sender) % 2, 0);	/* whole characters only */
}

static void
queue_ids_are_the_mtas_characters_only(void **state)
{
	(void)state;
	assert_true(mailq_valid_qid("85D44A726CC", false));
	assert_true(mailq_valid_qid("4Xyz9k1bQzz2mNp", false));
	assert_false(mailq_valid_qid("1tXyZa-000123-AB", false));
	assert_true(mailq_valid_qid("1tXyZa-000123-AB", true));	/* Exim */
	assert_false(mailq_valid_qid("", true));
	assert_false(mailq_valid_qid("../x", true));
	assert_false(mailq_valid_qid("0123456789012345678901234567890123", false));
}

static void
exim_bp_marks_frozen_messages_and_counts_undelivered_recipients(void **state)
{
	static const char *const listing[] = {
		"25m  2.9K 1tXyZa-000123-AB <alice@shop.example> *** frozen ***",
		"          bob@remote.example",
		"        D carol@remote.example",
		"          dan@remote.example",
		"",
		" 3h   812 1tXyZb-000124-CD <>",
		"          postmaster@remote.example",
		"",
	};
	struct mailq_msg m = { 0 }, first;
	char err[256];
	int starts = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(listing) / sizeof(listing[0]); i++) {
		struct mailq_msg before = m;
		int k = mailq_exim_line(listing[i], &m, err, sizeof(err));

		assert_true(k >= 0);
		if (k == 1 && ++starts == 2)
			first = before;
	}
	assert_int_equal(starts, 2);
	assert_string_equal(first.queue_id, "1tXyZa-000123-AB");
	assert_string_equal(first.sender, "alice@shop.example");
	assert_true(first.held);
	assert_int_equal(first.nrcpt, 2);	/* carol is delivered */
	assert_string_equal(m.queue_id, "1tXyZb-000124-CD");
	assert_false(m.held);
	assert_string_equal(m.sender, "");
	assert_int_equal(m.nrcpt, 1);
	assert_int_equal(mailq_exim_line("garbage", &m, err, sizeof(err)), -1);
}

static void
a_mail_event_gives_its_queue_ids_origin_and_subject(void **state)
{
	static const char line[] = "{\"ts\":\"2026-12-01T23:19:37.5Z\",\"event\":\"mail\","
	    "\"action\":\"hold\",\"origin\":\"user:www-data\",\"domain\":\"domain:web1.example\","
	    "\"queue_id\":\"85D44A726CC\",\"subject\":\"offer 11\",\"uid\":33}";
	struct mailq_event ev;

	(void)state;
	assert_int_equal(mailq_event_line(line, strlen(line), &ev), 1);
	assert_string_equal(ev.queue_id, "85D44A726CC");
	assert_string_equal(ev.origin, "user:www-data");
	assert_string_equal(ev.domain, "domain:web1.example");
	assert_string_equal(ev.subject, "offer 11");
	assert_string_equal(ev.action, "hold");
}

static void
other_lines_of_the_log_name_no_message(void **state)
{
	static const char *const lines[] = {
		"{\"event\":\"attempt\",\"action\":\"reject\",\"queue_id\":\"ABC\"}",
		"{\"event\":\"mail\",\"action\":\"pass\"}",			/* no queue id */
		"{\"event\":\"mail\",\"queue_id\":\"-rf\"}",
		"{\"event\":\"mail\",\"queue_id\":\"ABC\",\"subject\":[1]}",
		"{\"event\":\"mail\"",						/* cut */
		"\"mail\"",
	};
	struct mailq_event ev;

	(void)state;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		assert_int_equal(mailq_event_line(lines[i], strlen(lines[i]), &ev), 0);
		assert_string_equal(ev.queue_id, "");
	}
}

static void
origins_are_keyed_as_the_limit_lines_key_them(void **state)
{
	char out[MAIL_ORIGIN_MAX], err[512];

	(void)state;
	assert_int_equal(mailq_origin_key("User:WWW-Data", out, sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, "user:www-data");
	assert_int_equal(mailq_origin_key("bounce", out, sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, "bounce");
	assert_int_equal(mailq_origin_key("domain:shop.example", out, sizeof(out), err,
	    sizeof(err)), 0);
	assert_string_equal(out, "domain:shop.example");
	assert_int_equal(mailq_origin_key("nobody:x", out, sizeof(out), err, sizeof(err)), -1);
	assert_int_equal(mailq_origin_key("user:a b", out, sizeof(out), err, sizeof(err)), -1);
	assert_int_equal(mailq_origin_key("", out, sizeof(out), err, sizeof(err)), -1);
	assert_true(err[0] != '\0');
}

static void
held_origin_selects_by_origin_domain_or_unknown(void **state)
{
	struct mailq_msg m = { 0 };

	(void)state;
	assert_true(mailq_matches(&m, "unknown"));
	strlcpy_sg(m.origin, "sasl:info@shop.example", sizeof(m.origin));
	strlcpy_sg(m.domain, "domain:shop.example", sizeof(m.domain));
	assert_true(mailq_matches(&m, "sasl:info@shop.example"));
	assert_true(mailq_matches(&m, "domain:shop.example"));
	assert_false(mailq_matches(&m, "unknown"));
	assert_false(mailq_matches(&m, "sasl:info"));
}

static void
the_gate_is_taken_out_of_a_milter_list_leaving_the_others_in_order(void **state)
{
	char out[256];

	(void)state;
	assert_true(mailq_list_has("inet:127.0.0.1:8891, unix:smtpguard/gate.sock",
	    "unix:smtpguard/gate.sock"));
	assert_false(mailq_list_has("unix:smtpguard/gate.sock.old", "unix:smtpguard/gate.sock"));
	assert_false(mailq_list_has("", "unix:smtpguard/gate.sock"));
	mailq_list_without("inet:127.0.0.1:8891, unix:smtpguard/gate.sock,inet:[::1]:8893",
	    "unix:smtpguard/gate.sock", out, sizeof(out));
	assert_string_equal(out, "inet:127.0.0.1:8891, inet:[::1]:8893");
	mailq_list_without("unix:smtpguard/gate.sock", "unix:smtpguard/gate.sock", out,
	    sizeof(out));
	assert_string_equal(out, "");
	mailq_list_without(" a\tb ,, c ", "x", out, sizeof(out));
	assert_string_equal(out, "a, b, c");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_held_message_of_postqueue_j_is_read),
		cmocka_unit_test(a_deferred_message_is_not_held),
		cmocka_unit_test(a_bad_line_is_refused_with_a_reason),
		cmocka_unit_test(a_long_sender_is_cut_on_a_character),
		cmocka_unit_test(queue_ids_are_the_mtas_characters_only),
		cmocka_unit_test(exim_bp_marks_frozen_messages_and_counts_undelivered_recipients),
		cmocka_unit_test(a_mail_event_gives_its_queue_ids_origin_and_subject),
		cmocka_unit_test(other_lines_of_the_log_name_no_message),
		cmocka_unit_test(origins_are_keyed_as_the_limit_lines_key_them),
		cmocka_unit_test(held_origin_selects_by_origin_domain_or_unknown),
		cmocka_unit_test(the_gate_is_taken_out_of_a_milter_list_leaving_the_others_in_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
