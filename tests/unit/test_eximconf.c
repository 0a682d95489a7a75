/*
 * eximconf.c: mail enable --exim-config puts the gate at the start of the
 * ACLs an Exim config names, adds the ones it does not, and mail disable
 * takes out exactly those lines; the statements are conf/exim4/smtpguard_acl's
 * byte for byte; a setting it cannot follow is refused with a reason.
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

static const char conf[] =
    "# test\n"
    "primary_hostname = web1.example\n"
    "acl_smtp_rcpt = acl_check_rcpt\n"
    "acl_smtp_data = acl_check_data\n"
    "\n"
    "begin acl\n"
    "\n"
    "acl_check_rcpt:\n"
    "  accept\n"
    "\n"
    "acl_check_data:\n"
    "  deny condition = ${if eq{$h_x-spam:}{yes}}\n"
    "  accept\n"
    "\n"
    "begin routers\n"
    "\n"
    "mx:\n"
    "  driver = manualroute\n";

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void
the_shipped_snippet_is_what_mail_enable_writes(void **state)
{
	FILE *fp = fopen("conf/exim4/smtpguard_acl", "r");
	static char buf[65536];
	size_t n;

	(void)state;
	assert_non_null(fp);	/* tests run from the top of the tree */
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	assert_string_equal(buf, eximconf_statements());
}

static void
the_gate_goes_first_in_the_data_acl_and_gets_a_not_smtp_acl(void **state)
{
	char *out, *back, err[512] = "";
	size_t len, blen;
	const char *data, *first;

	(void)state;
	assert_int_equal(eximconf_wire(conf, strlen(conf), "/run/smtpguard-gate/gate.sock",
	    false, &out, &len, err, sizeof(err)), 0);
	assert_true(eximconf_wired(out, len));
	assert_non_null(strstr(out, "SMTPGUARD_SOCKET = /run/smtpguard-gate/gate.sock\n"));
	assert_non_null(strstr(out, "SMTPGUARD_FALLBACK = pass\n"));
	assert_non_null(strstr(out, "acl_not_smtp = smtpguard_not_smtp\n"));
	assert_null(strstr(out, "acl_smtp_data = smtpguard"));	/* the file's own is kept */
	/* The macros before the first begin; the statements right after acl_check_data:. */
	assert_true(strstr(out, "SMTPGUARD_SOCKET") < strstr(out, "begin acl"));
	data = strstr(out, "acl_check_data:\n");
	assert_non_null(data);
	first = strstr(data, "\n") + 1;
	assert_memory_equal(first, "# smtpguard mail gate: begin\n", 29);
	assert_true(strstr(data, "readsocket") < strstr(data, "$h_x-spam:"));
	assert_non_null(strstr(out, "smtpguard_not_smtp:\n"));
	assert_int_equal(count(out, "${readsocket{SMTPGUARD_SOCKET}"), 2);
	assert_int_equal(eximconf_unwire(out, len, &back, &blen), 3);
	assert_int_equal(blen, strlen(conf));
	assert_memory_equal(back, conf, blen);
	free(back);
	/* Twice is refused: the gate would ask twice per message. */
	assert_int_equal(eximconf_wire(out, len, "/s", false, &back, &blen, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "already"));
	free(out);
}

static void
a_config_without_acls_gets_them_and_tempfail_defers(void **state)
{
	static const char bare[] = "primary_hostname = x.example\nbegin routers\nr:\n  "
	    "driver = accept\n";
	char *out, *back, err[512] = "";
	size_t len, blen;

	(void)state;
	assert_int_equal(eximconf_wire(bare, strlen(bare), "/s/gate.sock", true, &out, &len,
	    err, sizeof(err)), 0);
	assert_non_null(strstr(out, "SMTPGUARD_FALLBACK = defer mail gate unavailable"));
	assert_non_null(strstr(out, "acl_smtp_data = smtpguard_check_data\n"));
	assert_non_null(strstr(out, "\nbegin acl\n"));
	assert_non_null(strstr(out, "smtpguard_check_data:\n"));
	assert_true(strstr(out, "begin acl") < strstr(out, "begin routers"));
	assert_int_equal(eximconf_unwire(out, len, &back, &blen), 1);
	assert_int_equal(blen, strlen(bare));
	assert_memory_equal(back, bare, blen);
	free(out);
	free(back);
}

static void
settings_it_cannot_follow_are_refused_with_a_reason(void **state)
{
	char *out, err[512];
	size_t len;

	(void)state;
	err[0] = '\0';
	assert_int_equal(eximconf_wire("acl_smtp_data = ${if def:x{a}{b}}\nbegin acl\n", 44,
	    "/s", false, &out, &len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "by hand"));
	err[0] = '\0';
	assert_int_equal(eximconf_wire("acl_not_smtp = \\\n  mine\nbegin acl\nmine:\n", 39,
	    "/s", false, &out, &len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "continued"));
	err[0] = '\0';
	assert_int_equal(eximconf_wire("acl_smtp_data = gone\nbegin acl\nother:\n  accept\n",
	    46, "/s", false, &out, &len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no ACL gone:"));
	err[0] = '\0';
	assert_int_equal(eximconf_wire("x = y\n", 6, "/s/${run{x}}", false, &out, &len, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "expands"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_shipped_snippet_is_what_mail_enable_writes),
		cmocka_unit_test(the_gate_goes_first_in_the_data_acl_and_gets_a_not_smtp_acl),
		cmocka_unit_test(a_config_without_acls_gets_them_and_tempfail_defers),
		cmocka_unit_test(settings_it_cannot_follow_are_refused_with_a_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
