/*
 * eximreq.c: what Exim's ACL snippet sends the gate — a local submission
 * names its uid and PHP script, an AUTH login its SASL user, an SMTP
 * client its address (and never a uid, whatever $originator_uid says);
 * ${escape:}'d text comes back as it was; a request that is not the
 * snippet's, or has a field no MTA would write, is refused with a reason;
 * the answer is one printable line.
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

static struct mail_facts f;
static char err[256];

static int
parse(const char *req)
{
	err[0] = '\0';
	return eximreq_parse(req, strlen(req), &f, err, sizeof(err));
}

static void
a_php_mail_is_named_by_its_uid_and_script(void **state)
{
	(void)state;
	assert_int_equal(parse("smtpguard-exim 1\nid=1tXyZa-000123-AB\nlocal=1\nuid=33\n"
	    "auth=www-data\nfrom=shop@web1.example\nrcpt-count=2\nrcpt=bob@remote.example, "
	    "eve@remote.example\nip=\nport=\nhelo=\nsubject=offer 1\nmessage-id=<x@web1>\n"
	    "php=33:contact.php\n"), 0);
	assert_string_equal(f.mta, "exim");
	assert_string_equal(f.queue_id, "1tXyZa-000123-AB");
	assert_true(f.local_submit);
	assert_true(f.has_uid);
	assert_int_equal(f.uid, 33);
	assert_string_equal(f.sasl_user, "");	/* Exim's $authenticated_id: the caller's login */
	assert_string_equal(f.info.mail_from, "shop@web1.example");
	assert_true(f.has_mail_from);
	assert_int_equal(f.info.nrcpt, 2);
	assert_int_equal(f.info.nrcpt_kept, 2);
	assert_string_equal(f.info.rcpt_to[0], "bob@remote.example");
	assert_string_equal(f.info.rcpt_to[1], "eve@remote.example");
	assert_string_equal(f.info.subject, "offer 1");
	assert_string_equal(f.info.php_script, "33:contact.php");
	assert_string_equal(f.info.message_id, "<x@web1>");
}

static void
an_smtp_client_is_named_by_address_and_never_by_a_uid(void **state)
{
	(void)state;
	/* $originator_uid of an SMTP message is Exim's own user: it names no one. */
	assert_int_equal(parse("smtpguard-exim 1\r\nid=1tXyZa-000124-AB\r\nlocal=1\r\nuid=101\r\n"
	    "auth=info@shop.example\r\nmech=PLAIN\r\nfrom=\r\nrcpt-count=1\r\nrcpt=a@b.example\r\n"
	    "ip=192.0.2.25\r\nport=41000\r\ndaemon-ip=192.0.2.1\r\ndaemon-port=25\r\n"
	    "helo=relay.example\r\n"), 0);
	assert_false(f.local_submit);
	assert_false(f.has_uid);
	assert_string_equal(f.sasl_user, "info@shop.example");
	assert_string_equal(f.info.auth_mech, "PLAIN");
	assert_string_equal(f.client_addr, "192.0.2.25");
	assert_int_equal(f.client_port, 41000);
	assert_string_equal(f.daemon_addr, "192.0.2.1");
	assert_int_equal(f.daemon_port, 25);
	assert_string_equal(f.info.helo, "relay.example");
	assert_true(f.has_mail_from);
	assert_string_equal(f.info.mail_from, "");	/* the null sender */
}

static void
escaped_text_comes_back_and_unknown_keys_are_skipped(void **state)
{
	(void)state;
	assert_int_equal(parse("smtpguard-exim 1\nid=1tXyZa-000125-AB\nlocal=0\nip=::1\n"
	    "future-key=whatever\nsubject=caf\\303\\251 \\\\o/\\tend\n"), 0);
	/* The header reader keeps what it logs: a tab is a blank there, as in folding. */
	assert_string_equal(f.info.subject, "caf\xc3\xa9 \\o/ end");
	assert_string_equal(f.client_addr, "::1");
	/* More recipients than are kept by name: counted, the first kept. */
	{
		char req[EXIMREQ_MAX], *p = req;

		p += sprintf(p, "smtpguard-exim 1\nid=1tXyZa-000126-AB\nrcpt-count=1000\nrcpt=");
		for (int i = 0; i < 40; i++)
			p += sprintf(p, "%su%d@x.example", i ? ", " : "", i);
		assert_int_equal(parse(req), 0);
		assert_int_equal(f.info.nrcpt, 1000);
		assert_int_equal(f.info.nrcpt_kept, SMTP_RCPT_KEEP);
		assert_string_equal(f.info.rcpt_to[SMTP_RCPT_KEEP - 1], "u31@x.example");
	}
}

static void
a_request_not_of_the_snippet_is_refused_with_a_reason(void **state)
{
	static char big[EXIMREQ_MAX + 2];

	(void)state;
	assert_int_equal(parse("GET / HTTP/1.0\n"), -1);
	assert_non_null(strstr(err, "smtpguard-exim 1"));
	assert_int_equal(parse("smtpguard-exim 12\nid=a-b\n"), -1);
	assert_int_equal(parse("smtpguard-exim 1\nlocal=1\n"), -1);
	assert_non_null(strstr(err, "no id"));
	assert_int_equal(parse("smtpguard-exim 1\nid=-oX\n"), -1);	/* never an option */
	assert_int_equal(parse("smtpguard-exim 1\nid=a/../b\n"), -1);
	assert_int_equal(parse("smtpguard-exim 1\nid=a-b\nuid=x33\n"), -1);
	assert_int_equal(parse("smtpguard-exim 1\nid=a-b\nuid=99999999999\n"), -1);
	assert_int_equal(parse("smtpguard-exim 1\nid=a-b\nlocal=yes\n"), -1);
	assert_int_equal(parse("smtpguard-exim 1\nid=a-b\nip=192.0.2.1; rm\n"), -1);
	assert_int_equal(parse("smtpguard-exim 1\nid=a-b\nrcpt-count=-1\n"), -1);
	assert_int_equal(parse("smtpguard-exim 1\nid=a-b\njust words\n"), -1);
	memset(big, 'a', sizeof(big));
	memcpy(big, "smtpguard-exim 1\n", 17);
	assert_int_equal(eximreq_parse(big, sizeof(big), &f, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer"));
	/* An escaped NUL cannot cut a field short or hide what follows. */
	assert_int_equal(parse("smtpguard-exim 1\nid=a-b\nhelo=x\\000y\n"), 0);
	assert_string_equal(f.info.helo, "x?y");
}

static void
the_answer_is_one_printable_line(void **state)
{
	char out[EXIMREQ_REPLY_MAX];

	(void)state;
	assert_int_equal(eximreq_reply(MAIL_PASS, "ignored", out, sizeof(out)), 5);
	assert_string_equal(out, "pass\n");
	eximreq_reply(MAIL_HOLD, "held: sending limit reached (user:www-data)", out, sizeof(out));
	assert_string_equal(out, "hold held: sending limit reached (user:www-data)\n");
	eximreq_reply(MAIL_REJECT, "a\nb\x01\xc3", out, sizeof(out));
	assert_string_equal(out, "reject a?b??\n");
	eximreq_reply(MAIL_DEFER, NULL, out, sizeof(out));
	assert_string_equal(out, "defer\n");
	assert_int_equal(eximreq_reply((enum mail_action)9, "", out, sizeof(out)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_php_mail_is_named_by_its_uid_and_script),
		cmocka_unit_test(an_smtp_client_is_named_by_address_and_never_by_a_uid),
		cmocka_unit_test(escaped_text_comes_back_and_unknown_keys_are_skipped),
		cmocka_unit_test(a_request_not_of_the_snippet_is_refused_with_a_reason),
		cmocka_unit_test(the_answer_is_one_printable_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
