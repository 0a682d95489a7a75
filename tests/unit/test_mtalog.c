/*
 * test_mtalog.c — single Postfix and Exim log lines taken apart: every kind
 * mta-report joins on, the three time stamp formats, and the lines that try
 * to fool the parser (a subject that fakes fields, junk, cut lines).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtpguard.h"

static struct mtalog_clock clk;
static struct mtalog_line l;

static enum mtalog_kind
parse(const char *s)
{
	return mtalog_parse(&clk, s, strlen(s), &l);
}

#define assert_str(span, want) do {					\
	assert_int_equal((span).len, strlen(want));			\
	assert_memory_equal((span).p, (want), strlen(want));		\
} while (0)

static int
setup(void **state)
{
	(void)state;
	setenv("TZ", "UTC0", 1);
	tzset();
	mtalog_clock_init(&clk, 1795305600);	/* 2026-11-22T00:00:00Z */
	return 0;
}

static void
postfix_smtpd_sasl_client(void **state)
{
	(void)state;
	assert_int_equal(parse("2026-11-22T10:00:01.123456+01:00 mx1 postfix/submission/smtpd[2000]: "
	    "4F9D21A2B3C: client=unknown[203.0.113.7], sasl_method=LOGIN, "
	    "sasl_username=alice@example.com"), MTALOG_ORIGIN);
	assert_str(l.qid, "4F9D21A2B3C");
	assert_str(l.client_ip, "203.0.113.7");
	assert_str(l.sasl_user, "alice@example.com");
	assert_int_equal(l.ts, 1795305600 + 9 * 3600 + 1);	/* +01:00 */
}

static void
postfix_pickup_uid(void **state)
{
	(void)state;
	assert_int_equal(parse("2026-11-22T10:00:01Z mx1 postfix/pickup[3000]: 6B7C8D9E0F: "
	    "uid=33 from=<www-data>"), MTALOG_ORIGIN);
	assert_int_equal(l.uid, 33);
	assert_true(l.has_sender);
	assert_str(l.sender, "www-data");
}

static void
postfix_qmgr_and_null_sender(void **state)
{
	(void)state;
	assert_int_equal(parse("2026-11-22T10:00:01Z mx1 postfix/qmgr[701]: 6B7C8D9E0F: "
	    "from=<>, size=4000, nrcpt=1 (queue active)"), MTALOG_QUEUED);
	assert_true(l.has_sender);
	assert_int_equal(l.sender.len, 0);
	assert_int_equal(l.size, 4000);
	assert_int_equal(l.nrcpt, 1);
	assert_int_equal(parse("2026-11-22T10:00:01Z mx1 postfix/qmgr[701]: 6B7C8D9E0F: removed"),
	    MTALOG_DONE);
	/* expiry is announced, then the bounce daemon speaks: nothing to join here */
	assert_int_equal(parse("2026-11-22T10:00:01Z mx1 postfix/qmgr[701]: 6B7C8D9E0F: "
	    "from=<a@example.com>, status=expired, returned to sender"), MTALOG_OTHER);
}

static void
postfix_delivery_outcomes(void **state)
{
	(void)state;
	assert_int_equal(parse("2026-11-22T10:00:02Z mx1 postfix/smtp[1236]: 4F9D21A2B3C: "
	    "to=<c@example.org>, orig_to=<alias@example.com>, relay=mx.example.org[198.51.100.6]:25, "
	    "delay=1.2, delays=0.1/0/0.5/0.6, dsn=5.7.1, status=bounced (host "
	    "mx.example.org[198.51.100.6] said: 554 5.7.1 blocked, see spamhaus (in reply to "
	    "RCPT TO command))"), MTALOG_RCPT);
	assert_str(l.rcpt, "c@example.org");
	assert_int_equal(l.status, MTALOG_BOUNCED);
	assert_true(l.remote);
	assert_true(mtalog_blacklisted(l.reply.p, l.reply.len));
	assert_int_equal(parse("2026-11-22T10:00:02Z mx1 postfix/smtp[1]: 4F9D21A2B3C: "
	    "to=<d@example.net>, relay=mx[198.51.100.7]:25, dsn=4.7.1, status=deferred "
	    "(host said: 450 greylisted)"), MTALOG_RCPT);
	assert_int_equal(l.status, MTALOG_DEFERRED);
	assert_false(mtalog_blacklisted(l.reply.p, l.reply.len));
	/* local delivery is not outbound */
	assert_int_equal(parse("2026-11-22T10:00:02Z mx1 postfix/local[1]: 4F9D21A2B3C: "
	    "to=<root@mx1>, relay=local, dsn=2.0.0, status=sent (delivered to mailbox)"), MTALOG_RCPT);
	assert_false(l.remote);
	/* a recipient line without its outcome is damaged */
	assert_int_equal(parse("2026-11-22T10:00:02Z mx1 postfix/smtp[1]: 4F9D21A2B3C: "
	    "to=<d@example.net>, relay=none, delay=0"), MTALOG_BAD);
}

static void
postfix_bounce_creates_ndr(void **state)
{
	(void)state;
	assert_int_equal(parse("Nov 22 10:00:02 mx1 postfix/bounce[1237]: 4F9D21A2B3C: sender "
	    "non-delivery notification: 5A1B2C3D4E5"), MTALOG_NDR);
	assert_str(l.child_qid, "5A1B2C3D4E5");
}

static void
postfix_lines_without_queue_id(void **state)
{
	(void)state;
	assert_int_equal(parse("2026-11-22T10:00:01Z mx1 postfix/smtpd[1]: connect from "
	    "unknown[192.0.2.7]"), MTALOG_OTHER);
	assert_int_equal(parse("2026-11-22T10:00:01Z mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT "
	    "from unknown[192.0.2.9]: 554 5.7.1 Relay access denied"), MTALOG_OTHER);
	assert_int_equal(parse("2026-11-22T10:00:01Z mx1 dovecot: imap-login: Login"), MTALOG_OTHER);
}

static void
traditional_stamp_takes_the_year_of_the_file(void **state)
{
	struct mtalog_clock jan;

	(void)state;
	assert_int_equal(parse("Nov  2 03:04:05 mx1 postfix/qmgr[1]: ABCDE1: removed"), MTALOG_DONE);
	assert_int_equal(l.ts, 1793588645);	/* 2026-11-02T03:04:05Z */
	/* a file written on New Year's Day: December is last year's */
	mtalog_clock_init(&jan, 1798761600);	/* 2027-01-01T00:00:00Z */
	assert_int_equal(mtalog_parse(&jan, "Dec 31 23:59:59 mx1 postfix/qmgr[1]: ABCDE1: removed",
	    52, &l), MTALOG_DONE);
	assert_int_equal(l.ts, 1798761599);
	assert_int_equal(parse("Foo 22 10:00:00 mx1 postfix/qmgr[1]: ABCDE1: removed"), MTALOG_BAD);
	assert_int_equal(parse("Nov 22 25:00:00 mx1 postfix/qmgr[1]: ABCDE1: removed"), MTALOG_BAD);
}

static void
exim_arrival_fields(void **state)
{
	(void)state;
	assert_int_equal(parse("2026-11-22 09:00:00.123 +0000 [1234] 1vAbC0-000001-X0 <= "
	    "carol@example.org H=(WIN-001) [203.0.113.200]:40000 P=esmtpa "
	    "A=dovecot_login:carol@example.org S=4100 id=x@example.org T=\"Invoice\" from "
	    "<carol@example.org> for a@example.net"), MTALOG_ORIGIN);
	assert_str(l.qid, "1vAbC0-000001-X0");
	assert_str(l.sender, "carol@example.org");
	assert_str(l.client_ip, "203.0.113.200");
	assert_str(l.sasl_user, "carol@example.org");
	assert_int_equal(l.size, 4100);
	assert_false(l.local);
	assert_int_equal(l.ts, 1795305600 + 9 * 3600);
}

static void
exim_subject_cannot_fake_fields(void **state)
{
	(void)state;
	assert_int_equal(parse("2026-11-22 10:00:00 1vAbC0-00000000001-AB01 <= www-data@web "
	    "U=www-data P=local S=1800 T=\"Hi H=x [6.6.6.6] A=a:evil U=root\" from <www-data@web> "
	    "for b@example.net"), MTALOG_ORIGIN);
	assert_str(l.qid, "1vAbC0-00000000001-AB01");
	assert_int_equal(l.client_ip.len, 0);
	assert_int_equal(l.sasl_user.len, 0);
	assert_str(l.local_user, "www-data");
	assert_true(l.local);
}

static void
exim_deliveries(void **state)
{
	(void)state;
	assert_int_equal(parse("2026-11-22 10:00:01 1vAbC0-000001-X0 => b@example.net "
	    "R=dnslookup T=remote_smtp H=mx.example.net [198.51.100.1] C=\"250 OK\""), MTALOG_RCPT);
	assert_int_equal(l.status, MTALOG_SENT);
	assert_true(l.remote);
	assert_str(l.rcpt, "b@example.net");
	assert_int_equal(parse("2026-11-22 10:00:01 1vAbC0-000001-X0 ** c@example.net "
	    "R=dnslookup T=remote_smtp H=mx.example.net [198.51.100.1]: SMTP error from remote "
	    "mail server after RCPT TO:<c@example.net>: 550 5.7.1 not allowed to send"), MTALOG_RCPT);
	assert_int_equal(l.status, MTALOG_BOUNCED);
	assert_true(mtalog_blacklisted(l.reply.p, l.reply.len));
	assert_int_equal(parse("2026-11-22 10:00:01 1vAbC0-000001-X0 == d@example.net "
	    "R=dnslookup T=remote_smtp defer (-44) H=mx [198.51.100.1]: 421 4.7.0 TS03"), MTALOG_RCPT);
	assert_int_equal(l.status, MTALOG_DEFERRED);
	assert_int_equal(parse("2026-11-22 10:00:01 1vAbC0-000001-X0 => dave <dave@example.org> "
	    "R=local_user T=mail_spool"), MTALOG_RCPT);
	assert_false(l.remote);
	assert_int_equal(parse("2026-11-22 10:00:01 1vAbC0-000001-X0 Completed"), MTALOG_DONE);
	assert_int_equal(parse("2026-11-22 10:00:01 1vAbC0-000001-X0 => "), MTALOG_BAD);
	assert_int_equal(parse("2026-11-22 10:00:01 Start queue run: pid=901"), MTALOG_OTHER);
}

static void
junk_is_bad_not_fatal(void **state)
{
	static const char *const junk[] = { "", "\n", "2026", "Nov", "2026-11-22T10:00:01",
	    "2026-13-45 99:00:00 x", "\x01\x02\x03 garbage", "Nov 22 garbage" };

	(void)state;
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		assert_int_equal(mtalog_parse(&clk, junk[i], strlen(junk[i]), &l), MTALOG_BAD);
	/* cut anywhere, a real line never reads past its end (ASan watches) */
	static const char full[] = "2026-11-22T10:00:02Z mx1 postfix/smtp[1]: 4F9D21A2B3C: "
	    "to=<d@example.net>, relay=mx[198.51.100.7]:25, dsn=4.7.1, status=deferred (x)";
	for (size_t n = 0; n <= sizeof(full) - 1; n++) {
		char *cut = malloc(n ? n : 1);

		memcpy(cut, full, n);
		(void)mtalog_parse(&clk, cut, n, &l);
		free(cut);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(postfix_smtpd_sasl_client),
		cmocka_unit_test(postfix_pickup_uid),
		cmocka_unit_test(postfix_qmgr_and_null_sender),
		cmocka_unit_test(postfix_delivery_outcomes),
		cmocka_unit_test(postfix_bounce_creates_ndr),
		cmocka_unit_test(postfix_lines_without_queue_id),
		cmocka_unit_test(traditional_stamp_takes_the_year_of_the_file),
		cmocka_unit_test(exim_arrival_fields),
		cmocka_unit_test(exim_subject_cannot_fake_fields),
		cmocka_unit_test(exim_deliveries),
		cmocka_unit_test(junk_is_bad_not_fatal),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
