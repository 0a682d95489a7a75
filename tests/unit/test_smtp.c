/* smtp.c: what a spamming client says is recorded, and its password never is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtpguard.h"

static void
feed(struct smtp_client *cl, struct smtp_info *m, const char *lines)
{
	const char *p = lines;

	while (*p != '\0') {
		const char *nl = strstr(p, "\r\n");
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		smtp_client_line(cl, m, p, len);
		p += len + (nl ? 2 : 0);
	}
}

static void
the_envelope_is_recorded(void **state)
{
	struct smtp_client cl = { 0 };
	struct smtp_info m = { 0 };

	(void)state;
	feed(&cl, &m, "EHLO spambot.example\r\nMAIL FROM:<a@example.org> SIZE=120 BODY=8BITMIME\r\n"
	    "RCPT TO:<b@example.net>\r\nrcpt to:<c@example.net> NOTIFY=NEVER\r\nDATA\r\n");
	assert_string_equal(m.helo, "spambot.example");
	assert_string_equal(m.mail_from, "a@example.org");
	assert_string_equal(m.mail_params, "SIZE=120 BODY=8BITMIME");
	assert_int_equal(m.nrcpt, 2);
	assert_int_equal(m.nrcpt_kept, 2);
	assert_string_equal(m.rcpt_to[1], "c@example.net");
	assert_true(m.data);
}

static void
a_thousand_recipients_are_counted_and_32_kept(void **state)
{
	struct smtp_client cl = { 0 };
	struct smtp_info m = { 0 };
	char line[64];

	(void)state;
	smtp_client_line(&cl, &m, "MAIL FROM:<>", 12);
	for (int i = 0; i < 1000; i++) {
		int n = snprintf(line, sizeof(line), "RCPT TO:<r%d@example.net>", i);

		smtp_client_line(&cl, &m, line, (size_t)n);
	}
	assert_int_equal(m.nrcpt, 1000);
	assert_int_equal(m.nrcpt_kept, SMTP_RCPT_KEEP);
	assert_string_equal(m.rcpt_to[31], "r31@example.net");
	assert_string_equal(m.mail_from, "");
}

static bool
holds(const void *hay, size_t len, const char *needle)
{
	return memmem(hay, len, needle, strlen(needle)) != NULL;
}

static void
auth_plain_keeps_the_user_never_the_password(void **state)
{
	struct smtp_client cl = { 0 };
	struct smtp_info m = { 0 };

	(void)state;
	/* base64("\0stolen@example.org\0hunter2") */
	feed(&cl, &m, "AUTH PLAIN AHN0b2xlbkBleGFtcGxlLm9yZwBodW50ZXIy\r\n");
	assert_string_equal(m.auth_mech, "PLAIN");
	assert_string_equal(m.auth_user, "stolen@example.org");
	assert_false(holds(&m, sizeof(m), "hunter2"));
	assert_false(holds(&cl, sizeof(cl), "hunter2"));
}

static void
auth_login_keeps_the_user_never_the_password(void **state)
{
	struct smtp_client cl = { 0 };
	struct smtp_info m = { 0 };

	(void)state;
	/* base64("webmaster") then base64("hunter2") */
	feed(&cl, &m, "AUTH LOGIN\r\nd2VibWFzdGVy\r\naHVudGVyMg==\r\nMAIL FROM:<x@y>\r\n");
	assert_string_equal(m.auth_user, "webmaster");
	assert_false(holds(&m, sizeof(m), "hunter2"));
	assert_false(holds(&m, sizeof(m), "aHVudGVyMg"));
	assert_string_equal(m.mail_from, "x@y");	/* back to commands after the password */
}

static void
headers_are_unfolded_and_decoded(void **state)
{
	struct smtp_client cl = { 0 };
	struct smtp_info m = { 0 };
	static const char *const msg[] = {
		"Subject: =?UTF-8?B?Q2hlYXAgcGlsbHMg4pyT?=",
		"From: =?iso-8859-1?Q?Andr=E9?= <andre@example.org>",
		"To: a@example.net,",
		"\tb@example.net",
		"X-PHP-Originating-Script: 1000:mailer.php",
		"Message-ID: <1@example.org>",
		"",
		"Subject: not a header: body",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(msg) / sizeof(msg[0]); i++)
		smtp_message_line(&cl, &m, msg[i], strlen(msg[i]));
	assert_string_equal(m.subject, "Cheap pills \xe2\x9c\x93");
	assert_string_equal(m.header_from, "Andr\xc3\xa9 <andre@example.org>");
	assert_string_equal(m.header_to, "a@example.net, b@example.net");
	assert_string_equal(m.php_script, "1000:mailer.php");
	assert_string_equal(m.message_id, "<1@example.org>");
}

static void
adjacent_encoded_words_join_without_the_space(void **state)
{
	char out[128];
	const char *in = "=?utf-8?q?Hello_?= =?utf-8?q?World?= and =?x-unknown?q?raw?=";

	(void)state;
	smtp_decode_header(in, strlen(in), out, sizeof(out));
	assert_string_equal(out, "Hello World and =?x-unknown?q?raw?=");
}

static void
smtp_is_recognised_by_its_greeting(void **state)
{
	(void)state;
	assert_true(smtp_looks_like_smtp((const uint8_t *)"EHLO x\r\n", 8));
	assert_true(smtp_looks_like_smtp((const uint8_t *)"helo x\r\n", 8));
	assert_false(smtp_looks_like_smtp((const uint8_t *)"GET / HTTP/1.1\r\n", 16));
	assert_false(smtp_looks_like_smtp((const uint8_t *)"EHL", 3));
}

static void
garbage_is_no_command(void **state)
{
	struct smtp_client cl = { 0 };
	struct smtp_info m = { 0 };

	(void)state;
	assert_int_equal(smtp_client_line(&cl, &m, "\x16\x03\x01\x02", 4), SMTP_UNKNOWN);
	assert_int_equal(smtp_client_line(&cl, &m, "MAIL FROM:<unterminated", 23), SMTP_UNKNOWN);
	assert_int_equal(smtp_client_line(&cl, &m, "", 0), SMTP_UNKNOWN);
	assert_string_equal(m.mail_from, "");
}

static void
auth_plain_at_the_end_of_an_unterminated_line_is_read_in_bounds(void **state)
{
	struct smtp_client cl = { 0 };
	struct smtp_info m = { 0 };
	char line[] = { 'A', 'U', 'T', 'H', ' ', 'P', 'L', 'A', 'I', 'N', ' ', '=' };

	(void)state;
	/* found by fuzz_smtp: the line is not NUL-terminated */
	smtp_client_line(&cl, &m, line, sizeof(line));
	assert_int_equal(cl.auth_step, SMTP_AUTH_PLAIN_NEXT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_envelope_is_recorded),
		cmocka_unit_test(a_thousand_recipients_are_counted_and_32_kept),
		cmocka_unit_test(auth_plain_keeps_the_user_never_the_password),
		cmocka_unit_test(auth_login_keeps_the_user_never_the_password),
		cmocka_unit_test(headers_are_unfolded_and_decoded),
		cmocka_unit_test(adjacent_encoded_words_join_without_the_space),
		cmocka_unit_test(smtp_is_recognised_by_its_greeting),
		cmocka_unit_test(garbage_is_no_command),
		cmocka_unit_test(auth_plain_at_the_end_of_an_unterminated_line_is_read_in_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
