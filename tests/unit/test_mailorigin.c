/*
 * mailorigin.c: every message is named by who sent it — the SASL login, a
 * bounce, the local user pickup saw (never a uid a client wrote into its own
 * headers), or the client address — and rolls up into its sender domain.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtpguard.h"

#define PICKUP_RECEIVED	"by web1.example (Postfix, from userid 33)\n\tid 4Xyz1; " \
			"Tue,  1 Dec 2026 22:00:00 +0000 (UTC)"

static void
facts(struct mail_facts *f, const char *from, const char *client)
{
	mailorigin_reset(f, "postfix");
	if (from != NULL)
		mailorigin_mail_from(f, from);
	strlcpy_sg(f->client_addr, client, sizeof(f->client_addr));
	mailorigin_rcpt(f, "<bob@remote.example>", NULL);
}

static void
test_received_uid_from_pickup_line(void **state)
{
	uint32_t uid = 0;

	(void)state;
	assert_int_equal(mailorigin_received_uid(PICKUP_RECEIVED, &uid), 0);
	assert_int_equal(uid, 33);
	assert_int_equal(mailorigin_received_uid("from mx (mx [192.0.2.1]) by h (Postfix) "
	    "with ESMTP id X", &uid), -1);
	assert_int_equal(mailorigin_received_uid("(Postfix, from userid )", &uid), -1);
	assert_int_equal(mailorigin_received_uid("(Postfix, from userid 33x)", &uid), -1);
	assert_int_equal(mailorigin_received_uid("(Postfix, from userid 99999999999)", &uid),
	    -1);
	assert_int_equal(mailorigin_received_uid("(Postfix, from userid 4294967295)", &uid),
	    -1);
}

static void
test_no_received_field_a_milter_sees_names_a_uid(void **state)
{
	struct mail_facts f;

	(void)state;
	/* Postfix hides its own: every Received field the gate sees is the sender's. */
	facts(&f, "<www-data@web1.example>", "127.0.0.1");
	mailorigin_header(&f, "Received", PICKUP_RECEIVED);
	assert_false(f.has_uid);
	assert_true(f.received_seen);
}

/* A queue file as Postfix's cleanup writes one: records, then the content. */
static size_t
record(uint8_t *buf, size_t off, char type, const char *data)
{
	size_t n = strlen(data);

	buf[off++] = (uint8_t)type;
	do {
		buf[off++] = (uint8_t)((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
		n >>= 7;
	} while (n > 0);
	memcpy(buf + off, data, strlen(data));
	return off + strlen(data);
}

static void
test_local_uid_read_from_the_queue_file(void **state)
{
	static uint8_t q[4096];
	char long_sender[300];
	size_t n = 0;
	uint32_t uid = 0;

	(void)state;
	memset(long_sender, 'a', sizeof(long_sender) - 1);
	long_sender[sizeof(long_sender) - 1] = '\0';
	n = record(q, n, 'C', "             353             292               1");
	n = record(q, n, 'S', long_sender);	/* a length in two 7-bit groups */
	n = record(q, n, 'R', "bob@remote.example");
	n = record(q, n, 'M', "");
	n = record(q, n, 'N', "Received: by web1.example (Postfix, from userid 33)");
	n = record(q, n, 'N', "\tid 5DA5429; Tue,  1 Dec 2026 22:40:28 +0000 (UTC)");
	n = record(q, n, 'N', "Received: by forged (Postfix, from userid 0)");
	assert_int_equal(mailorigin_queue_uid(q, n, &uid), 0);
	assert_int_equal(uid, 33);
	/* Cut inside a record, or a message whose first line is not Postfix's: no uid. */
	assert_int_equal(mailorigin_queue_uid(q, 10, &uid), -1);
	n = 0;
	n = record(q, n, 'M', "");
	n = record(q, n, 'N', "Subject: (Postfix, from userid 0)");
	assert_int_equal(mailorigin_queue_uid(q, n, &uid), -1);
	n = 0;
	n = record(q, n, 'N', "Received: by x (Postfix, from userid 0)");	/* before M */
	assert_int_equal(mailorigin_queue_uid(q, n, &uid), -1);
	memset(q, 0xff, 16);	/* a length that never ends */
	assert_int_equal(mailorigin_queue_uid(q, 16, &uid), -1);
}

static void
test_headers_kept_for_the_event(void **state)
{
	struct mail_facts f;

	(void)state;
	facts(&f, "<a@b.example>", "192.0.2.9");
	mailorigin_header(&f, "Subject", "Cheap\r\n\tpills");
	mailorigin_header(&f, "X-PHP-Originating-Script", "33:contact.php");
	mailorigin_header(&f, "Message-ID", "<1@b.example>");
	assert_string_equal(f.info.subject, "Cheap  pills");
	assert_string_equal(f.info.php_script, "33:contact.php");
	assert_string_equal(f.info.message_id, "<1@b.example>");
}

static void
test_envelope_addresses_lose_brackets_and_control_bytes(void **state)
{
	struct mail_facts f;

	(void)state;
	mailorigin_reset(&f, "postfix");
	mailorigin_mail_from(&f, "<ev\til@x.example>");
	assert_string_equal(f.info.mail_from, "ev?il@x.example");
	for (int i = 0; i < SMTP_RCPT_KEEP + 5; i++)
		mailorigin_rcpt(&f, "<r@y.example>", "smtp");
	assert_int_equal(f.info.nrcpt, SMTP_RCPT_KEEP + 5);
	assert_int_equal(f.info.nrcpt_kept, SMTP_RCPT_KEEP);
	assert_string_equal(f.info.rcpt_to[0], "r@y.example");
}

static void
test_sasl_login_comes_first(void **state)
{
	struct mail_facts f;
	struct mail_origin o;
	struct attrib who = { .has_uid = true, .uid = 33, .user = "www-data" };

	(void)state;
	facts(&f, "<>", "203.0.113.5");
	strlcpy_sg(f.sasl_user, "Info@Shop.Example", sizeof(f.sasl_user));
	mailorigin_name(&f, &who, &o);
	assert_int_equal(o.kind, MAIL_ORIGIN_SASL);
	assert_string_equal(o.name, "sasl:info@shop.example");
	assert_string_equal(o.domain, "domain:shop.example");
}

static void
test_null_sender_is_a_bounce(void **state)
{
	struct mail_facts f;
	struct mail_origin o;

	(void)state;
	facts(&f, "<>", "203.0.113.5");
	mailorigin_name(&f, NULL, &o);
	assert_int_equal(o.kind, MAIL_ORIGIN_BOUNCE);
	assert_string_equal(o.name, "bounce");
	assert_string_equal(o.domain, "");
}

static void
test_local_user_named_by_name_else_uid(void **state)
{
	struct mail_facts f;
	struct mail_origin o;
	struct attrib who = { .has_uid = true, .uid = 33, .user = "www-data" };
	struct attrib nameless = { .has_uid = true, .uid = 4001 };

	(void)state;
	facts(&f, "<www-data@Web1.Example>", "127.0.0.1");
	mailorigin_name(&f, &who, &o);
	assert_int_equal(o.kind, MAIL_ORIGIN_USER);
	assert_string_equal(o.name, "user:www-data");
	assert_string_equal(o.domain, "domain:web1.example");
	mailorigin_name(&f, &nameless, &o);
	assert_string_equal(o.name, "user:4001");
}

static void
test_client_address_canonical(void **state)
{
	struct mail_facts f;
	struct mail_origin o;

	(void)state;
	facts(&f, "<x@relay.example>", "IPv6:2001:DB8:0:0::5");
	mailorigin_name(&f, NULL, &o);
	assert_int_equal(o.kind, MAIL_ORIGIN_CLIENT);
	assert_string_equal(o.name, "client:2001:db8::5");
	facts(&f, "<x@relay.example>", "::ffff:192.0.2.7");
	mailorigin_name(&f, NULL, &o);
	assert_string_equal(o.name, "client:192.0.2.7");
	facts(&f, "<x@relay.example>", "not an address");
	mailorigin_name(&f, NULL, &o);
	assert_int_equal(o.kind, MAIL_ORIGIN_UNKNOWN);
	assert_string_equal(o.name, "unknown");
}

static void
test_unkeyable_login_falls_in_one_bucket(void **state)
{
	struct mail_facts f;
	struct mail_origin o;

	(void)state;
	facts(&f, "<x@y.example>", "192.0.2.1");
	strlcpy_sg(f.sasl_user, "two words", sizeof(f.sasl_user));
	mailorigin_name(&f, NULL, &o);
	assert_string_equal(o.name, "sasl:?");
	assert_string_equal(o.domain, "domain:y.example");
}

static void
test_domains_and_loopback(void **state)
{
	char d[64];

	(void)state;
	assert_int_equal(mailorigin_domain("a@b", d, sizeof(d)), -1);
	assert_int_equal(mailorigin_domain("a@b.example.", d, sizeof(d)), -1);
	assert_int_equal(mailorigin_domain("nobody", d, sizeof(d)), -1);
	assert_int_equal(mailorigin_domain("a@x@B.example", d, sizeof(d)), 0);
	assert_string_equal(d, "b.example");
	assert_true(mailorigin_is_loopback("127.0.0.1"));
	assert_true(mailorigin_is_loopback("127.1.2.3"));
	assert_true(mailorigin_is_loopback("::1"));
	assert_false(mailorigin_is_loopback("192.0.2.1"));
	assert_false(mailorigin_is_loopback("localhost"));
}

static void
test_gateproto_terminates_what_a_child_sent(void **state)
{
	static struct gate_request in, out;

	(void)state;
	memset(&in, 'A', sizeof(in));
	in.version = GATEPROTO_VERSION;
	in.len = sizeof(in);
	in.facts.info.nrcpt_kept = 1000;
	in.facts.info.nrcpt = 0;
	assert_int_equal(gateproto_check_request(&in, sizeof(in), &out), 0);
	assert_int_equal(strlen(out.facts.sasl_user), sizeof(out.facts.sasl_user) - 1);
	assert_int_equal(strlen(out.facts.info.rcpt_to[SMTP_RCPT_KEEP - 1]),
	    SMTP_FIELD_MAX - 1);
	assert_int_equal(out.facts.info.nrcpt_kept, SMTP_RCPT_KEEP);
	assert_int_equal(out.facts.info.nrcpt, SMTP_RCPT_KEEP);
	assert_null(out.facts.info.inspect);
	assert_int_equal(gateproto_check_request(&in, sizeof(in) - 1, &out), -1);
	in.version = 99;
	assert_int_equal(gateproto_check_request(&in, sizeof(in), &out), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_received_uid_from_pickup_line),
		cmocka_unit_test(test_no_received_field_a_milter_sees_names_a_uid),
		cmocka_unit_test(test_local_uid_read_from_the_queue_file),
		cmocka_unit_test(test_headers_kept_for_the_event),
		cmocka_unit_test(test_envelope_addresses_lose_brackets_and_control_bytes),
		cmocka_unit_test(test_sasl_login_comes_first),
		cmocka_unit_test(test_null_sender_is_a_bounce),
		cmocka_unit_test(test_local_user_named_by_name_else_uid),
		cmocka_unit_test(test_client_address_canonical),
		cmocka_unit_test(test_unkeyable_login_falls_in_one_bucket),
		cmocka_unit_test(test_domains_and_loopback),
		cmocka_unit_test(test_gateproto_terminates_what_a_child_sent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
