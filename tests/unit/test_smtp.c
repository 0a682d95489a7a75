/*
 * test_smtp.c — what an audited or trapped client said, however its bytes
 * were cut: the envelope, AUTH without its password, the headers worth
 * logging, and the reply the trap owes each command.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtpguard.h"

#define EVENTS_SEEN_MAX	2048

static struct smtp_event seen[EVENTS_SEEN_MAX];
static size_t nseen;

/* Feeds len bytes as the trap would: drain the events whenever the parser waits. */
static enum smtp_state
feed(struct smtp_parser *p, const void *data, size_t len)
{
	const uint8_t *d = data;
	enum smtp_state st;
	struct smtp_event ev;

	for (;;) {
		st = smtp_feed(p, d, len);
		while (smtp_event_next(p, &ev)) {
			assert_true(nseen < EVENTS_SEEN_MAX);
			seen[nseen++] = ev;
		}
		d += p->used;
		len -= p->used;
		if (st != SMTP_CONTINUE || len == 0)
			return st;
	}
}

static enum smtp_state
feed_str(struct smtp_parser *p, const char *s)
{
	return feed(p, s, strlen(s));
}

static int
setup(void **state)
{
	(void)state;
	nseen = 0;
	return 0;
}

static void
assert_event(size_t i, enum smtp_event_type type, enum smtp_verb verb, enum smtp_status st)
{
	assert_true(i < nseen);
	assert_int_equal(seen[i].type, type);
	assert_int_equal(seen[i].verb, verb);
	assert_int_equal(seen[i].status, st);
}

/* True if needle occurs anywhere in the parser's bytes. */
static bool
parser_holds(const struct smtp_parser *p, const char *needle)
{
	return memmem(p, sizeof(*p), needle, strlen(needle)) != NULL;
}

static void
audit_records_the_envelope_and_stops_at_data(void **state)
{
	struct smtp_parser p;
	const char *s = "EHLO web1.example.com\r\n"
	    "MAIL FROM:<www-data@web1.example.com> SIZE=1200 BODY=8BITMIME\r\n"
	    "RCPT TO:<victim@example.org>\r\n"
	    "RCPT TO:<other@example.net> NOTIFY=NEVER\r\n"
	    "DATA\r\n";
	const char *body = "Subject: buy now\r\n";
	char all[512];

	(void)state;
	snprintf(all, sizeof(all), "%s%s", s, body);
	smtp_parser_init(&p, SMTP_MODE_AUDIT);
	assert_int_equal(smtp_feed(&p, (const uint8_t *)all, strlen(all)), SMTP_STOP_DATA);
	assert_int_equal(p.used, strlen(s));	/* the message is not read */
	assert_int_equal(p.info.bytes, strlen(s));
	assert_string_equal(p.info.helo, "web1.example.com");
	assert_string_equal(p.info.mail_from, "www-data@web1.example.com");
	assert_string_equal(p.info.mail_params, "SIZE=1200 BODY=8BITMIME");
	assert_int_equal(p.info.nrcpt, 2);
	assert_int_equal(p.info.nrcpt_kept, 2);
	assert_string_equal(p.info.rcpt_to[0], "victim@example.org");
	assert_string_equal(p.info.rcpt_to[1], "other@example.net");
	assert_true(p.info.data);
	assert_string_equal(p.info.subject, "");
	assert_int_equal(nseen, 0);	/* audit owes no replies */
	/* Stopped for good. */
	assert_int_equal(smtp_feed(&p, (const uint8_t *)"QUIT\r\n", 6), SMTP_STOP_DATA);
	assert_int_equal(p.used, 0);
}

static const char trap_session[] =
    "ehlo spammer.example\r\n"
    "AUTH LOGIN\r\n"
    "YWxpY2U=\r\n"				/* alice */
    "aHVudGVyMg==\r\n"				/* hunter2 */
    "Mail From: <alice@example.com>\r\n"
    "RCPT TO:<a@example.org>\r\n"
    "rcpt to:<b@example.org>\r\n"
    "DATA\r\n"
    "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"
    " =?iso-8859-1?Q?_aus_M=FCnchen?=\r\n"
    "From: Alice <alice@example.com>\r\n"
    "X-PHP-Originating-Script: 1000:mailer.php\r\n"
    "\r\n"
    "..hidden\r\n"
    "body\r\n"
    ".\r\n"
    "QUIT\r\n";

/* The same bytes, cut anywhere, in both modes: the same record, the same replies. */
static void
every_split_point_gives_the_same_result(void **state)
{
	static struct smtp_parser whole, cut;
	static struct smtp_event want[64];
	size_t len = strlen(trap_session), nwant;
	enum smtp_mode modes[] = { SMTP_MODE_AUDIT, SMTP_MODE_TRAP };

	(void)state;
	for (size_t m = 0; m < 2; m++) {
		enum smtp_state st;

		nseen = 0;
		smtp_parser_init(&whole, modes[m]);
		st = feed(&whole, trap_session, len);
		assert_int_equal(st, modes[m] == SMTP_MODE_TRAP ? SMTP_STOP_QUIT : SMTP_STOP_DATA);
		nwant = nseen;
		memcpy(want, seen, nseen * sizeof(seen[0]));
		for (size_t at = 0; at <= len; at++) {
			nseen = 0;
			smtp_parser_init(&cut, modes[m]);
			if (feed(&cut, trap_session, at) == SMTP_CONTINUE)
				feed(&cut, trap_session + at, len - at);
			assert_int_equal(cut.state, whole.state);
			assert_memory_equal(&cut.info, &whole.info, sizeof(cut.info));
			assert_int_equal(nseen, nwant);
			assert_memory_equal(seen, want, nseen * sizeof(seen[0]));
		}
		/* One byte at a time. */
		nseen = 0;
		smtp_parser_init(&cut, modes[m]);
		for (size_t i = 0; i < len && feed(&cut, trap_session + i, 1) == SMTP_CONTINUE; i++)
			continue;
		assert_memory_equal(&cut.info, &whole.info, sizeof(cut.info));
		assert_int_equal(nseen, nwant);
	}
	assert_string_equal(whole.info.subject, "Grüße aus München");
	assert_string_equal(whole.info.auth_user, "alice");
	assert_string_equal(whole.info.mail_from, "alice@example.com");
}

static void
pipelined_commands_get_one_reply_each_in_order(void **state)
{
	struct smtp_parser p;

	(void)state;
	smtp_parser_init(&p, SMTP_MODE_TRAP);
	assert_int_equal(feed_str(&p, "EHLO client\r\n"), SMTP_CONTINUE);
	assert_int_equal(feed_str(&p, "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"
	    "RCPT TO:<e@f.example>\r\nDATA\r\n"), SMTP_CONTINUE);
	assert_int_equal(nseen, 5);
	assert_event(0, SMTP_EV_COMMAND, SMTP_EHLO, SMTP_ST_OK);
	assert_event(1, SMTP_EV_COMMAND, SMTP_MAIL, SMTP_ST_OK);
	assert_event(2, SMTP_EV_COMMAND, SMTP_RCPT, SMTP_ST_OK);
	assert_event(3, SMTP_EV_COMMAND, SMTP_RCPT, SMTP_ST_OK);
	assert_event(4, SMTP_EV_COMMAND, SMTP_DATA, SMTP_ST_MORE);	/* 354 */
	assert_int_equal(feed_str(&p, "Subject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n"), SMTP_STOP_QUIT);
	assert_event(5, SMTP_EV_MESSAGE_END, SMTP_DATA, SMTP_ST_OK);
	assert_event(6, SMTP_EV_COMMAND, SMTP_QUIT, SMTP_ST_OK);
	assert_int_equal(nseen, 7);
}

/* One chunk of 1,000 RCPTs: the queue fills, the trap drains it, nothing is lost. */
static void
thousand_recipients_are_all_counted_and_32_kept(void **state)
{
	static char buf[64 * 1024];
	struct smtp_parser p;
	size_t n = 0;

	(void)state;
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "HELO x\r\nMAIL FROM:<s@x.example>\r\n");
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "RCPT TO:<r%d@y.example>\r\n", i);
	for (int m = 0; m < 2; m++) {
		nseen = 0;
		smtp_parser_init(&p, m == 0 ? SMTP_MODE_AUDIT : SMTP_MODE_TRAP);
		assert_int_equal(feed(&p, buf, n), SMTP_CONTINUE);
		assert_int_equal(p.info.nrcpt, 1000);
		assert_int_equal(p.info.nrcpt_kept, SMTP_RCPT_KEEP);
		assert_string_equal(p.info.rcpt_to[0], "r0@y.example");
		assert_string_equal(p.info.rcpt_to[SMTP_RCPT_KEEP - 1], "r31@y.example");
		assert_int_equal(nseen, m == 0 ? 0 : 1002);
	}
	assert_event(1001, SMTP_EV_COMMAND, SMTP_RCPT, SMTP_ST_OK);
}

static void
auth_plain_keeps_the_user_never_the_password(void **state)
{
	struct smtp_parser p;
	/* "boss\0alice\0Tr0ub4dor&3" and "\0bob\0Tr0ub4dor&3" */
	const char *b64a = "Ym9zcwBhbGljZQBUcjB1YjRkb3ImMw==";
	const char *b64b = "AGJvYgBUcjB1YjRkb3ImMw==";
	char line[128];

	(void)state;
	smtp_parser_init(&p, SMTP_MODE_TRAP);
	snprintf(line, sizeof(line), "EHLO x\r\nAUTH PLAIN %s\r\n", b64a);
	assert_int_equal(feed_str(&p, line), SMTP_CONTINUE);
	assert_event(1, SMTP_EV_COMMAND, SMTP_AUTH, SMTP_ST_OK);
	assert_string_equal(p.info.auth_mech, "PLAIN");
	assert_string_equal(p.info.auth_user, "alice");
	assert_false(parser_holds(&p, "Tr0ub4dor"));
	assert_false(parser_holds(&p, b64a));

	/* Without an initial response: 334, then the credentials on their own line. */
	snprintf(line, sizeof(line), "AUTH PLAIN\r\n%s\r\n", b64b);
	assert_int_equal(feed_str(&p, line), SMTP_CONTINUE);
	assert_event(2, SMTP_EV_COMMAND, SMTP_AUTH, SMTP_ST_MORE);
	assert_event(3, SMTP_EV_AUTH_RESPONSE, SMTP_AUTH, SMTP_ST_OK);
	assert_string_equal(p.info.auth_user, "bob");
	assert_false(parser_holds(&p, "Tr0ub4dor"));
	assert_false(parser_holds(&p, b64b));
}

static void
auth_login_keeps_the_user_never_the_password(void **state)
{
	struct smtp_parser p;

	(void)state;
	smtp_parser_init(&p, SMTP_MODE_TRAP);
	/* alice / correct-horse-battery */
	assert_int_equal(feed_str(&p, "EHLO x\r\nAUTH LOGIN\r\nYWxpY2U=\r\n"
	    "Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5\r\n"), SMTP_CONTINUE);
	assert_false(parser_holds(&p, "Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5"));
	assert_int_equal(feed_str(&p, "NOOP\r\n"), SMTP_CONTINUE);
	assert_event(1, SMTP_EV_COMMAND, SMTP_AUTH, SMTP_ST_MORE);		/* 334 Username */
	assert_event(2, SMTP_EV_AUTH_RESPONSE, SMTP_AUTH, SMTP_ST_MORE);	/* 334 Password */
	assert_event(3, SMTP_EV_AUTH_RESPONSE, SMTP_AUTH, SMTP_ST_OK);		/* 235/535 */
	assert_event(4, SMTP_EV_COMMAND, SMTP_NOOP, SMTP_ST_OK);
	assert_string_equal(p.info.auth_user, "alice");
	assert_false(parser_holds(&p, "correct-horse"));
	assert_false(parser_holds(&p, "Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5"));

	/* The user name as an initial response; audit mode reads the same way. */
	smtp_parser_init(&p, SMTP_MODE_AUDIT);
	assert_int_equal(feed_str(&p, "EHLO x\r\nAUTH LOGIN Ym9i\r\nY29ycmVjdC1ob3JzZS1iYXR0ZXJ5\r\n"
	    "MAIL FROM:<bob@x.example>\r\n"), SMTP_CONTINUE);
	assert_string_equal(p.info.auth_user, "bob");
	assert_string_equal(p.info.mail_from, "bob@x.example");
	assert_false(parser_holds(&p, "Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5"));
}

static void
auth_the_parser_cannot_follow_is_refused_or_skipped(void **state)
{
	struct smtp_parser p;

	(void)state;
	smtp_parser_init(&p, SMTP_MODE_TRAP);
	assert_int_equal(feed_str(&p, "EHLO x\r\nAUTH CRAM-MD5\r\n"), SMTP_CONTINUE);
	assert_event(1, SMTP_EV_COMMAND, SMTP_AUTH, SMTP_ST_UNSUPPORTED);	/* 504 */
	assert_string_equal(p.info.auth_mech, "CRAM-MD5");
	/* Audit: the real server may accept it; its answer lines are skipped, not kept. */
	smtp_parser_init(&p, SMTP_MODE_AUDIT);
	assert_int_equal(feed_str(&p, "EHLO x\r\nAUTH CRAM-MD5\r\n"
	    "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\nMAIL FROM:<t@x.example>\r\n"),
	    SMTP_CONTINUE);
	assert_string_equal(p.info.mail_from, "t@x.example");
	assert_false(parser_holds(&p, "dGltIGI5MTNhNjAy"));
	/* "*" cancels an exchange: 501. */
	smtp_parser_init(&p, SMTP_MODE_TRAP);
	nseen = 0;
	assert_int_equal(feed_str(&p, "EHLO x\r\nAUTH LOGIN\r\n*\r\n"), SMTP_CONTINUE);
	assert_event(2, SMTP_EV_AUTH_RESPONSE, SMTP_AUTH, SMTP_ST_SYNTAX);
}

static void
overlong_command_line_stops_the_parser(void **state)
{
	static char line[SMTP_LINE_MAX + 8];
	struct smtp_parser p;

	(void)state;
	/* 998 bytes and CRLF: the longest legal line. */
	memcpy(line, "NOOP ", 5);
	memset(line + 5, 'x', SMTP_LINE_MAX - 2 - 5);
	memcpy(line + SMTP_LINE_MAX - 2, "\r\n", 3);
	smtp_parser_init(&p, SMTP_MODE_TRAP);
	assert_int_equal(feed_str(&p, "HELO x\r\n"), SMTP_CONTINUE);
	assert_int_equal(feed_str(&p, line), SMTP_CONTINUE);
	assert_event(1, SMTP_EV_COMMAND, SMTP_NOOP, SMTP_ST_OK);
	/* One byte more. */
	memset(line + 5, 'x', SMTP_LINE_MAX - 1 - 5);
	memcpy(line + SMTP_LINE_MAX - 1, "\r\n", 3);
	assert_int_equal(feed_str(&p, line), SMTP_ERROR_OVERLONG);
	assert_int_equal(nseen, 2);
}

static void
binary_and_other_protocols_are_not_smtp(void **state)
{
	static const uint8_t tls[] = { 0x16, 0x03, 0x01, 0x01, 0x3b, 0x01, 0x00 };
	struct smtp_parser p;
	const char *nul = "EHLO x\r\nMAIL FROM:<a\0b>\r\n";

	(void)state;
	smtp_parser_init(&p, SMTP_MODE_AUDIT);
	assert_int_equal(smtp_feed(&p, tls, sizeof(tls)), SMTP_ERROR_NOT_SMTP);
	assert_int_equal(p.used, 1);		/* decided at the first byte */
	smtp_parser_init(&p, SMTP_MODE_AUDIT);
	assert_int_equal(feed_str(&p, "GET / HTTP/1.1\r\nHost: x\r\n"), SMTP_ERROR_NOT_SMTP);
	smtp_parser_init(&p, SMTP_MODE_AUDIT);
	assert_int_equal(feed(&p, nul, 26), SMTP_ERROR_NOT_SMTP);
	assert_string_equal(p.info.mail_from, "");
	/* A few typos are answered 500; a stream of unknown lines is not a client. */
	smtp_parser_init(&p, SMTP_MODE_TRAP);
	assert_int_equal(feed_str(&p, "EHLO x\r\n"), SMTP_CONTINUE);
	for (int i = 0; i < SMTP_UNKNOWN_MAX; i++)
		assert_int_equal(feed_str(&p, "XYZZY\r\n"), SMTP_CONTINUE);
	assert_event(SMTP_UNKNOWN_MAX, SMTP_EV_COMMAND, SMTP_UNKNOWN, SMTP_ST_UNKNOWN);
	assert_int_equal(feed_str(&p, "XYZZY\r\n"), SMTP_ERROR_NOT_SMTP);
}

static void
headers_are_unfolded_and_decoded(void **state)
{
	struct smtp_parser p;

	(void)state;
	smtp_parser_init(&p, SMTP_MODE_TRAP);
	assert_int_equal(feed_str(&p, "HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<u@x.example>\r\nDATA\r\n"
	    "Received: from localhost\r\n"
	    "To: =?utf-8?Q?J=C3=BCrgen?= <j@x.example>,\r\n"
	    "\tOther <o@x.example>\r\n"
	    "subject: =?windows-1252?Q?=93Invoice=94?=   =?us-ascii?B?IG5vdw==?=\r\n"
	    "Message-ID: <1234@web1.example.com>\r\n"
	    "X-Mailer: PHPMailer 6.8.0 (https://github.com/PHPMailer/PHPMailer)\r\n"
	    "X-PHP-Originating-Script: 1000:mailer.php\r\n"
	    "From: =?koi8-r?B?8NLJ18XU?= <spam@x.example>\r\n"
	    "Subject: the second subject is ignored\r\n"
	    "\r\n"
	    "X-Mailer: in the body, not a header\r\n"
	    ".\r\n"), SMTP_CONTINUE);
	assert_string_equal(p.info.mail_from, "");
	assert_string_equal(p.info.header_to, "Jürgen <j@x.example>, Other <o@x.example>");
	assert_string_equal(p.info.subject, "\u201cInvoice\u201d now");
	assert_string_equal(p.info.message_id, "<1234@web1.example.com>");
	assert_string_equal(p.info.x_mailer,
	    "PHPMailer 6.8.0 (https://github.com/PHPMailer/PHPMailer)");
	assert_string_equal(p.info.php_script, "1000:mailer.php");
	/* A charset we do not convert stays as the sender wrote it. */
	assert_string_equal(p.info.header_from, "=?koi8-r?B?8NLJ18XU?= <spam@x.example>");
	assert_event(4, SMTP_EV_MESSAGE_END, SMTP_DATA, SMTP_ST_OK);
}

static void
encoded_words_decode_alone(void **state)
{
	char out[SMTP_HEADER_MAX], tiny[6];
	const char *bad = "=?utf-8?B?not base64?= =?utf-8?X?abc?= =?utf-8?Q?=ZZ?=";

	(void)state;
	smtp_decode_words("a =?ISO-8859-1?Q?caf=E9?= b", 27, out, sizeof(out));
	assert_string_equal(out, "a café b");
	/* Malformed words are left as written. */
	smtp_decode_words(bad, strlen(bad), out, sizeof(out));
	assert_string_equal(out, bad);
	/* Control bytes never reach the log line; the cut keeps a terminator. */
	smtp_decode_words("=?utf-8?Q?a=0Db=00c?=", 21, out, sizeof(out));
	assert_string_equal(out, "a?b?c");
	assert_int_equal(smtp_decode_words("=?utf-8?B?w7zDvMO8?=", 20, tiny, sizeof(tiny)), 4);
	assert_string_equal(tiny, "üü");
}

static void
dot_stuffed_lines_are_unstuffed_and_only_crlf_dot_crlf_ends(void **state)
{
	struct smtp_parser p;

	(void)state;
	smtp_parser_init(&p, SMTP_MODE_TRAP);
	assert_int_equal(feed_str(&p, "HELO x\r\nMAIL FROM:<a@x.example>\r\n"
	    "RCPT TO:<b@x.example>\r\nDATA\r\n"
	    "Subject: first\r\n"
	    ". part\r\n"		/* unstuffed: " part", a folded line */
	    "\r\n"
	    "text\n.\nRCPT TO:<smuggled@x.example>\r\n"	/* bare LF: not the end */
	    "..\r\n"
	    ".\r\n"
	    "RSET\r\n"), SMTP_CONTINUE);
	assert_string_equal(p.info.subject, "first part");
	assert_int_equal(p.info.nrcpt, 1);
	assert_int_equal(nseen, 6);
	assert_event(4, SMTP_EV_MESSAGE_END, SMTP_DATA, SMTP_ST_OK);
	assert_event(5, SMTP_EV_COMMAND, SMTP_RSET, SMTP_ST_OK);
}

static void
commands_out_of_order_get_503(void **state)
{
	struct smtp_parser p;

	(void)state;
	smtp_parser_init(&p, SMTP_MODE_TRAP);
	assert_int_equal(feed_str(&p, "MAIL FROM:<a@x.example>\r\nHELO x\r\n"
	    "RCPT TO:<b@x.example>\r\nDATA\r\nSubject: not a header\r\n"
	    "MAIL FROM:<a@x.example>\r\nMAIL FROM:<c@x.example>\r\n"
	    "RCPT TO:<>\r\nRCPT TO:b@x.example\r\nHELO\r\nDATA now\r\n"), SMTP_CONTINUE);
	assert_event(0, SMTP_EV_COMMAND, SMTP_MAIL, SMTP_ST_SEQUENCE);	/* before HELO */
	assert_event(1, SMTP_EV_COMMAND, SMTP_HELO, SMTP_ST_OK);
	assert_event(2, SMTP_EV_COMMAND, SMTP_RCPT, SMTP_ST_SEQUENCE);	/* before MAIL */
	assert_event(3, SMTP_EV_COMMAND, SMTP_DATA, SMTP_ST_SEQUENCE);	/* no recipient */
	assert_event(4, SMTP_EV_COMMAND, SMTP_UNKNOWN, SMTP_ST_UNKNOWN);	/* still commands */
	assert_event(5, SMTP_EV_COMMAND, SMTP_MAIL, SMTP_ST_OK);
	assert_event(6, SMTP_EV_COMMAND, SMTP_MAIL, SMTP_ST_SEQUENCE);	/* nested */
	assert_event(7, SMTP_EV_COMMAND, SMTP_RCPT, SMTP_ST_SYNTAX);	/* empty path */
	assert_event(8, SMTP_EV_COMMAND, SMTP_RCPT, SMTP_ST_OK);	/* brackets forgotten */
	assert_event(9, SMTP_EV_COMMAND, SMTP_HELO, SMTP_ST_SYNTAX);
	assert_event(10, SMTP_EV_COMMAND, SMTP_DATA, SMTP_ST_SYNTAX);
	/* What was tried is what the log shows. */
	assert_string_equal(p.info.mail_from, "c@x.example");
	assert_int_equal(p.info.nrcpt, 2);
	assert_string_equal(p.info.rcpt_to[1], "b@x.example");
}

static void
starttls_ends_audit_and_is_declined_by_the_trap(void **state)
{
	struct smtp_parser p;
	const char *s = "EHLO x\r\nSTARTTLS\r\n";
	char buf[64];

	(void)state;
	snprintf(buf, sizeof(buf), "%s\x16\x03\x01", s);
	smtp_parser_init(&p, SMTP_MODE_AUDIT);
	assert_int_equal(feed_str(&p, buf), SMTP_STOP_STARTTLS);
	assert_int_equal(p.used, strlen(s));	/* the rest is for tls_sni() */
	assert_true(p.info.starttls);
	smtp_parser_init(&p, SMTP_MODE_TRAP);
	assert_int_equal(feed_str(&p, "EHLO x\r\nSTARTTLS\r\nMAIL FROM:<a@x.example>\r\n"),
	    SMTP_CONTINUE);
	assert_event(1, SMTP_EV_COMMAND, SMTP_STARTTLS, SMTP_ST_OK);
	assert_true(p.info.starttls);
	assert_string_equal(p.info.mail_from, "a@x.example");
}

static void
verbs_are_case_insensitive_and_bare_lf_ends_a_command(void **state)
{
	struct smtp_parser p;

	(void)state;
	smtp_parser_init(&p, SMTP_MODE_TRAP);
	assert_int_equal(feed_str(&p, "hElO x\nmAiL fRoM:<a@x.example>\nvrfy root\nhelp\n"
	    "noop\nquit\n"), SMTP_STOP_QUIT);
	assert_event(0, SMTP_EV_COMMAND, SMTP_HELO, SMTP_ST_OK);
	assert_event(1, SMTP_EV_COMMAND, SMTP_MAIL, SMTP_ST_OK);
	assert_event(2, SMTP_EV_COMMAND, SMTP_VRFY, SMTP_ST_OK);
	assert_event(3, SMTP_EV_COMMAND, SMTP_HELP, SMTP_ST_OK);
	assert_event(5, SMTP_EV_COMMAND, SMTP_QUIT, SMTP_ST_OK);
	assert_string_equal(p.info.mail_from, "a@x.example");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(audit_records_the_envelope_and_stops_at_data, setup),
		cmocka_unit_test_setup(every_split_point_gives_the_same_result, setup),
		cmocka_unit_test_setup(pipelined_commands_get_one_reply_each_in_order, setup),
		cmocka_unit_test_setup(thousand_recipients_are_all_counted_and_32_kept, setup),
		cmocka_unit_test_setup(auth_plain_keeps_the_user_never_the_password, setup),
		cmocka_unit_test_setup(auth_login_keeps_the_user_never_the_password, setup),
		cmocka_unit_test_setup(auth_the_parser_cannot_follow_is_refused_or_skipped, setup),
		cmocka_unit_test_setup(overlong_command_line_stops_the_parser, setup),
		cmocka_unit_test_setup(binary_and_other_protocols_are_not_smtp, setup),
		cmocka_unit_test_setup(headers_are_unfolded_and_decoded, setup),
		cmocka_unit_test_setup(encoded_words_decode_alone, setup),
		cmocka_unit_test_setup(dot_stuffed_lines_are_unstuffed_and_only_crlf_dot_crlf_ends,
		    setup),
		cmocka_unit_test_setup(commands_out_of_order_get_503, setup),
		cmocka_unit_test_setup(starttls_ends_audit_and_is_declined_by_the_trap, setup),
		cmocka_unit_test_setup(verbs_are_case_insensitive_and_bare_lf_ends_a_command, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
