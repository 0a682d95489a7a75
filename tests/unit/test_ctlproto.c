/* ctlproto.c: the control socket's wire format refuses what it does not understand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpguard.h"

static int
parse(const char *s, struct ctl_request *req, char *err)
{
	return ctl_parse_request(s, strlen(s), req, err, 256);
}

static void
a_status_request_parses(void **state)
{
	struct ctl_request req;
	char err[256];

	(void)state;
	assert_int_equal(parse("{\"v\":1,\"cmd\":\"status\"}", &req, err), 0);
	assert_int_equal(req.cmd, CTL_STATUS);
}

static void
allow_carries_its_exception_line(void **state)
{
	struct ctl_request req;
	char err[256];

	(void)state;
	assert_int_equal(parse("{\"v\":1,\"cmd\":\"allow\",\"line\":\"allow www-data port=587\"}",
	    &req, err), 0);
	assert_int_equal(req.cmd, CTL_ALLOW);
	assert_string_equal(req.arg, "allow www-data port=587");
}

static void
what_the_cli_sends_the_daemon_reads(void **state)
{
	struct ctl_request req;
	char err[256], *s;

	(void)state;
	assert_non_null(s = ctl_format_request(CTL_REVOKE, "newsletter"));
	assert_int_equal(parse(s, &req, err), 0);
	assert_int_equal(req.cmd, CTL_REVOKE);
	assert_string_equal(req.arg, "newsletter");
	free(s);
}

static void
garbage_gets_an_error_not_a_crash(void **state)
{
	static const char *const bad[] = {
		"", "garbage", "[]", "{}", "{\"v\":2,\"cmd\":\"status\"}",
		"{\"v\":\"1\",\"cmd\":\"status\"}", "{\"v\":1}", "{\"v\":1,\"cmd\":\"format-disk\"}",
		"{\"v\":1,\"cmd\":\"allow\"}", "{\"v\":1,\"cmd\":\"allow\",\"line\":7}",
		"{\"v\":1,\"cmd\":\"revoke\",\"who\":\"a\\u0000b\"}",
		"{\"v\":1,\"cmd\":\"status\",\"cmd\":\"reload\"}",
	};
	struct ctl_request req;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(parse(bad[i], &req, err), -1);
		assert_true(strlen(err) > 0);
	}
}

static void
an_oversized_request_is_refused(void **state)
{
	size_t len = CTL_REQUEST_MAX + 1;
	char *big = malloc(len + 1), err[256];
	struct ctl_request req;

	(void)state;
	memset(big, 'a', len);
	big[len] = '\0';
	assert_int_equal(ctl_parse_request(big, len, &req, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too large"));
	free(big);
}

static void
an_argument_longer_than_its_buffer_is_refused(void **state)
{
	char *req_text = malloc(CTL_ARG_MAX + 100), err[256];
	struct ctl_request req;

	(void)state;
	strcpy(req_text, "{\"v\":1,\"cmd\":\"revoke\",\"who\":\"");
	memset(req_text + strlen(req_text), 'x', CTL_ARG_MAX);
	strcpy(req_text + strlen("{\"v\":1,\"cmd\":\"revoke\",\"who\":\"") + CTL_ARG_MAX, "\"}");
	assert_int_equal(parse(req_text, &req, err), -1);
	free(req_text);
}

static void
limit_unlimit_and_mailop_carry_their_argument(void **state)
{
	static const struct { enum ctl_cmd cmd; const char *arg, *key; } cases[] = {
		{ CTL_LIMIT, "limit user:www-data 50/hour", "\"line\"" },
		{ CTL_UNLIMIT, "sasl:info@shop.example", "\"origin\"" },
		{ CTL_MAILOP, "mail: released 20 held messages of user:www-data (postsuper -H)",
		  "\"note\"" },
	};
	struct ctl_request req;
	char err[256], *s;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_non_null(s = ctl_format_request(cases[i].cmd, cases[i].arg));
		assert_non_null(strstr(s, cases[i].key));
		assert_int_equal(parse(s, &req, err), 0);
		assert_int_equal(req.cmd, cases[i].cmd);
		assert_string_equal(req.arg, cases[i].arg);
		free(s);
	}
	/* The argument is required, and a string. */
	assert_int_equal(parse("{\"v\":1,\"cmd\":\"limit\"}", &req, err), -1);
	assert_int_equal(parse("{\"v\":1,\"cmd\":\"unlimit\",\"origin\":5}", &req, err), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_status_request_parses),
		cmocka_unit_test(allow_carries_its_exception_line),
		cmocka_unit_test(what_the_cli_sends_the_daemon_reads),
		cmocka_unit_test(garbage_gets_an_error_not_a_crash),
		cmocka_unit_test(an_oversized_request_is_refused),
		cmocka_unit_test(an_argument_longer_than_its_buffer_is_refused),
		cmocka_unit_test(limit_unlimit_and_mailop_carry_their_argument),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
