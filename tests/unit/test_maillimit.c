/*
 * maillimit.c: an origin sends exactly its hourly limit and no more; the
 * hour slides; a domain caps its mailboxes together; a full table never
 * hands an origin a fresh hour; the counters survive a restart; limit lines
 * live beside allow lines in exceptions.conf and round-trip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "smtpguard.h"

#define T0		1800000000	/* any start time, on a minute */
#define PASSWD		"tests/fixtures/exceptions/passwd"
#define GROUP		"tests/fixtures/exceptions/group"

static struct mail_origin
origin(const char *name, const char *domain)
{
	struct mail_origin o = { .kind = MAIL_ORIGIN_USER };

	strlcpy_sg(o.name, name, sizeof(o.name));
	strlcpy_sg(o.domain, domain, sizeof(o.domain));
	return o;
}

static unsigned int
send_n(struct maillimit *ml, const struct mail_origin *o, unsigned int n, uint32_t limit,
    uint32_t dlimit, time_t now, unsigned int *alerts)
{
	struct mail_decision d;
	unsigned int passed = 0;

	for (unsigned int i = 0; i < n; i++) {
		maillimit_decide(ml, o, 1, limit, dlimit, MAIL_HOLD, now, &d);
		passed += d.action == MAIL_PASS;
		if (alerts != NULL)
			*alerts += d.alert;
	}
	return passed;
}

static void
test_web_user_sends_exactly_its_limit_then_is_held(void **state)
{
	struct maillimit *ml = maillimit_new(16);
	struct mail_origin o = origin("user:www-data", "domain:web1.example");
	struct mail_decision d;
	unsigned int alerts = 0;

	(void)state;
	assert_non_null(ml);
	assert_int_equal(send_n(ml, &o, 30, 10, MAILLIMIT_OFF, T0, &alerts), 10);
	assert_int_equal(alerts, 1);	/* once per origin per hour */
	maillimit_decide(ml, &o, 1, 10, MAILLIMIT_OFF, MAIL_DEFER, T0 + 5, &d);
	assert_int_equal(d.action, MAIL_DEFER);
	assert_true(d.over);
	assert_false(d.alert);
	assert_int_equal(d.hour_count, 31);
	assert_int_equal(d.limit, 10);
	assert_string_equal(d.rule, "limit:user:www-data");
	maillimit_free(ml);
}

static void
test_a_message_over_the_limit_alone_is_held_and_not_counted_as_sent(void **state)
{
	struct maillimit *ml = maillimit_new(16);
	struct mail_origin o = origin("sasl:a@b.example", "");
	struct mail_decision d;

	(void)state;
	maillimit_decide(ml, &o, 300, 200, MAILLIMIT_OFF, MAIL_HOLD, T0, &d);
	assert_int_equal(d.action, MAIL_HOLD);
	/* The held 300 do not count against what may still leave. */
	assert_int_equal(send_n(ml, &o, 250, 200, MAILLIMIT_OFF, T0 + 1, NULL), 200);
	maillimit_free(ml);
}

static void
test_zero_holds_everything_off_holds_nothing(void **state)
{
	struct maillimit *ml = maillimit_new(16);
	struct mail_origin o = origin("client:203.0.113.5", "");

	(void)state;
	assert_int_equal(send_n(ml, &o, 5, 0, MAILLIMIT_OFF, T0, NULL), 0);
	o = origin("client:203.0.113.6", "");
	assert_int_equal(send_n(ml, &o, 500, MAILLIMIT_OFF, MAILLIMIT_OFF, T0, NULL), 500);
	maillimit_free(ml);
}

static void
test_the_hour_slides(void **state)
{
	struct maillimit *ml = maillimit_new(16);
	struct mail_origin o = origin("user:alice", "");
	unsigned int alerts = 0;

	(void)state;
	assert_int_equal(send_n(ml, &o, 6, 10, MAILLIMIT_OFF, T0, NULL), 6);
	assert_int_equal(send_n(ml, &o, 6, 10, MAILLIMIT_OFF, T0 + 30 * 60, &alerts), 4);
	/* 59 minutes after the first six: they still count. */
	assert_int_equal(send_n(ml, &o, 1, 10, MAILLIMIT_OFF, T0 + 59 * 60, NULL), 0);
	/* An hour after: the first six are gone, the next four are not. */
	assert_int_equal(send_n(ml, &o, 10, 10, MAILLIMIT_OFF, T0 + 60 * 60, &alerts), 6);
	assert_int_equal(alerts, 1);
	/* An hour after the alert, another one is due. */
	assert_int_equal(send_n(ml, &o, 10, 10, MAILLIMIT_OFF, T0 + 91 * 60, &alerts), 4);
	assert_int_equal(alerts, 2);
	maillimit_free(ml);
}

static void
test_domain_caps_its_mailboxes_together(void **state)
{
	struct maillimit *ml = maillimit_new(16);
	struct mail_origin a = origin("sasl:a@shop.example", "domain:shop.example");
	struct mail_origin b = origin("sasl:b@shop.example", "domain:shop.example");
	struct mail_decision d;

	(void)state;
	assert_int_equal(send_n(ml, &a, 8, 10, 12, T0, NULL), 8);
	assert_int_equal(send_n(ml, &b, 8, 10, 12, T0, NULL), 4);
	maillimit_decide(ml, &b, 1, 10, 12, MAIL_HOLD, T0, &d);
	assert_string_equal(d.rule, "domain_limit:domain:shop.example");
	assert_int_equal(d.domain_limit, 12);
	assert_int_equal(d.domain_count, 17);
	maillimit_free(ml);
}

static void
test_full_table_shares_one_overflow_bucket_and_keeps_counts(void **state)
{
	struct maillimit *ml = maillimit_new(4);
	struct mail_origin spammer = origin("client:192.0.2.66", "");
	struct mail_decision d;
	char name[64];

	(void)state;
	assert_int_equal(send_n(ml, &spammer, 5, 5, MAILLIMIT_OFF, T0, NULL), 5);
	/* Fresh origins fill the table, then share one bucket and one limit. */
	for (int i = 0; i < 20; i++) {
		struct mail_origin o;

		snprintf(name, sizeof(name), "client:198.51.100.%d", i);
		o = origin(name, "");
		maillimit_decide(ml, &o, 1, 5, MAILLIMIT_OFF, MAIL_HOLD, T0 + 1, &d);
		if (i >= 3) {
			assert_true(d.overflow);
			assert_int_equal(d.action, i < 3 + 5 ? MAIL_PASS : MAIL_HOLD);
		}
	}
	assert_int_equal(maillimit_count(ml), 4);
	/* The spammer was not pushed out: still over. */
	maillimit_decide(ml, &spammer, 1, 5, MAILLIMIT_OFF, MAIL_HOLD, T0 + 2, &d);
	assert_int_equal(d.action, MAIL_HOLD);
	assert_false(d.overflow);
	/* An hour later the idle slots are reused. */
	maillimit_decide(ml, &spammer, 1, 5, MAILLIMIT_OFF, MAIL_HOLD, T0 + 3 * 3600, &d);
	assert_int_equal(d.action, MAIL_PASS);
	spammer = origin("client:192.0.2.67", "");
	maillimit_decide(ml, &spammer, 1, 5, MAILLIMIT_OFF, MAIL_HOLD, T0 + 3 * 3600, &d);
	assert_false(d.overflow);
	maillimit_free(ml);
}

static void
test_restart_does_not_give_a_fresh_hour(void **state)
{
	struct maillimit *ml = maillimit_new(16), *back = maillimit_new(16);
	struct mail_origin o = origin("user:www-data", "domain:web1.example");
	char path[] = "/tmp/test_maillimit.XXXXXX", err[256];
	unsigned int alerts = 0;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(send_n(ml, &o, 12, 10, MAILLIMIT_OFF, T0, &alerts), 10);
	assert_int_equal(maillimit_save(ml, NULL, path, T0 + 60, err, sizeof(err)), 0);
	assert_int_equal(maillimit_load(back, NULL, path, T0 + 120, err, sizeof(err)), 0);
	/* Still over, and the alert already raised this hour is not raised again. */
	assert_int_equal(send_n(back, &o, 3, 10, MAILLIMIT_OFF, T0 + 120, &alerts), 0);
	assert_int_equal(alerts, 1);
	maillimit_free(back);
	/* Loaded an hour later: nothing left of it. */
	back = maillimit_new(16);
	assert_int_equal(maillimit_load(back, NULL, path, T0 + 3600, err, sizeof(err)), 0);
	assert_int_equal(send_n(back, &o, 10, 10, MAILLIMIT_OFF, T0 + 3600, NULL), 10);
	maillimit_free(back);
	maillimit_free(ml);
	unlink(path);
}

static void
test_state_file_garbage_is_refused(void **state)
{
	struct maillimit *ml = maillimit_new(16);
	char path[] = "/tmp/test_maillimit.XXXXXX", err[256];
	int fd = mkstemp(path);
	FILE *fp = fdopen(fd, "w");

	(void)state;
	fprintf(fp, "smtpguard-mail-state 1 %d\nuser:x 0 %d:5:3\n", T0, T0 / 60);
	fclose(fp);
	assert_int_equal(maillimit_load(ml, NULL, path, T0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: malformed"));
	fp = fopen(path, "w");
	fprintf(fp, "smtpguard-mail-state 1 %d\n@today %d 1 2 x 4\n", T0, T0);
	fclose(fp);
	assert_int_equal(maillimit_load(ml, NULL, path, T0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: malformed @today line"));
	fp = fopen(path, "w");
	fprintf(fp, "something else\n");
	fclose(fp);
	assert_int_equal(maillimit_load(ml, NULL, path, T0, err, sizeof(err)), -1);
	unlink(path);
	/* No file yet: an empty hour. */
	assert_int_equal(maillimit_load(ml, NULL, path, T0, err, sizeof(err)), 0);
	maillimit_free(ml);
}

static void
test_limit_lines_parse_and_round_trip(void **state)
{
	struct mail_limit_rule r, back;
	char line[EXCEPTION_LINE_MAX], err[256];

	(void)state;
	assert_int_equal(maillimit_rule_parse("limit sasl:Info@Shop.Example 1000/hour", &r,
	    err, sizeof(err)), 0);
	assert_string_equal(r.origin, "sasl:info@shop.example");
	assert_int_equal(r.per_hour, 1000);
	assert_int_equal(maillimit_rule_parse("limit client:2001:DB8::5 0/hour "
	    "comment=\"a \\\"bad\\\" relay\"", &r, err, sizeof(err)), 0);
	assert_string_equal(r.origin, "client:2001:db8::5");
	assert_int_equal(r.per_hour, 0);
	assert_string_equal(r.comment, "a \"bad\" relay");
	assert_true(maillimit_rule_format(&r, line, sizeof(line)) > 0);
	assert_string_equal(line, "limit client:2001:db8::5 0/hour comment=\"a \\\"bad\\\" relay\"");
	assert_int_equal(maillimit_rule_parse(line, &back, err, sizeof(err)), 0);
	assert_memory_equal(&r, &back, sizeof(r));
	assert_int_equal(maillimit_rule_parse("limit bounce 5/hour", &r, err, sizeof(err)), 0);
	assert_int_equal(maillimit_rule_parse("limit user:www-data 50/day", &r, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "bad limit"));
	assert_int_equal(maillimit_rule_parse("limit www-data 50/hour", &r, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "not an origin"));
	assert_int_equal(maillimit_rule_parse("limit client:nope 5/hour", &r, err,
	    sizeof(err)), -1);
	assert_int_equal(maillimit_rule_parse("limit user:a 5/hour extra", &r, err,
	    sizeof(err)), -1);
	assert_int_equal(maillimit_rule_parse("limit user:a 10000001/hour", &r, err,
	    sizeof(err)), -1);
}

static void
test_config_rates(void **state)
{
	uint32_t v;

	(void)state;
	assert_int_equal(maillimit_parse_rate("200/hour", false, &v), 0);
	assert_int_equal(v, 200);
	assert_int_equal(maillimit_parse_rate("off", false, &v), -1);
	assert_int_equal(maillimit_parse_rate("off", true, &v), 0);
	assert_int_equal(v, MAILLIMIT_OFF);
	assert_int_equal(maillimit_parse_rate("-1/hour", false, &v), -1);
	assert_int_equal(maillimit_parse_rate("200", false, &v), -1);
}

static void
test_limits_live_beside_allow_lines(void **state)
{
	char path[] = "/tmp/test_maillimit.XXXXXX", err[512];
	struct exceptions xs, back, copy;
	struct mail_limit_rule r;
	int fd = mkstemp(path);
	FILE *fp = fdopen(fd, "w");

	(void)state;
	fprintf(fp, "# old file\nallow 3001\nlimit user:www-data 10/hour\n"
	    "allow 3002 to=192.0.2.0/24\nlimit domain:shop.example 5000/hour\n");
	fclose(fp);
	assert_int_equal(exceptions_load(path, PASSWD, GROUP, &xs, err, sizeof(err)), 0);
	assert_int_equal(xs.n, 2);
	assert_int_equal(xs.nlimits, 2);
	assert_int_equal(maillimit_limit_for(xs.limits, xs.nlimits, "user:www-data", 200), 10);
	assert_int_equal(maillimit_limit_for(xs.limits, xs.nlimits, "user:other", 200), 200);
	assert_int_equal(maillimit_rule_parse("limit user:www-data 20/hour", &r, err,
	    sizeof(err)), 0);
	assert_int_equal(exceptions_add_limit(&xs, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "already has a limit"));
	assert_int_equal(exceptions_copy(&copy, &xs), 0);
	assert_int_equal(copy.nlimits, 2);
	assert_int_equal(exceptions_save(path, &xs, err, sizeof(err)), 0);
	assert_int_equal(exceptions_load(path, PASSWD, GROUP, &back, err, sizeof(err)), 0);
	assert_int_equal(back.n, 2);
	assert_int_equal(back.nlimits, 2);
	assert_memory_equal(back.limits, xs.limits, 2 * sizeof(*xs.limits));
	assert_int_equal(exceptions_remove_limit(&back, "user:www-data", err, sizeof(err)), 0);
	assert_int_equal(back.nlimits, 1);
	assert_int_equal(exceptions_remove_limit(&back, "user:www-data", err, sizeof(err)), -1);
	exceptions_free(&back);
	exceptions_free(&copy);
	exceptions_free(&xs);
	/* A bad limit line is refused with its line number, like a bad allow line. */
	fp = fopen(path, "w");
	fprintf(fp, "allow 3001\nlimit user:www-data lots\n");
	fclose(fp);
	assert_int_equal(exceptions_load(path, PASSWD, GROUP, &xs, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: bad limit"));
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_web_user_sends_exactly_its_limit_then_is_held),
		cmocka_unit_test(test_a_message_over_the_limit_alone_is_held_and_not_counted_as_sent),
		cmocka_unit_test(test_zero_holds_everything_off_holds_nothing),
		cmocka_unit_test(test_the_hour_slides),
		cmocka_unit_test(test_domain_caps_its_mailboxes_together),
		cmocka_unit_test(test_full_table_shares_one_overflow_bucket_and_keeps_counts),
		cmocka_unit_test(test_restart_does_not_give_a_fresh_hour),
		cmocka_unit_test(test_state_file_garbage_is_refused),
		cmocka_unit_test(test_limit_lines_parse_and_round_trip),
		cmocka_unit_test(test_config_rates),
		cmocka_unit_test(test_limits_live_beside_allow_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
