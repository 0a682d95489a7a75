/* alert.c: a uid hammering the fence raises one alert per window, and the admin's program runs once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "smtpguard.h"

static void
the_threshold_raises_one_alert_per_ten_minutes(void **state)
{
	struct alerts *a = alerts_new(5);
	time_t t = 1700000000;
	uint64_t n;
	int alerts = 0;

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_false(alerts_count(a, 33, t + i, &n));
	assert_int_equal(n, 4);
	assert_true(alerts_count(a, 33, t + 10, &n));
	assert_int_equal(n, 5);
	for (int i = 0; i < 500; i++)
		alerts += alerts_count(a, 33, t + 20 + i, &n);
	assert_int_equal(alerts, 0);
	/* another uid counts on its own */
	for (int i = 0; i < 4; i++)
		assert_false(alerts_count(a, 34, t + 30, &n));
	/* ten minutes after the alert, a flood that goes on alerts again */
	assert_true(alerts_count(a, 33, t + 10 + 600, &n));
	alerts_free(a);
}

/*
 * The kernel may count a uid's attempts in bulk only while no alert can be
 * due for it; what it counted is credited afterwards and shows in the next
 * alert's count.
 */
static void
attempts_counted_in_bulk_never_hide_an_alert(void **state)
{
	struct alerts *a = alerts_new(5), *off = alerts_new(0);
	time_t t = 1700000000;
	uint64_t n;

	(void)state;
	assert_true(alerts_quiet(off, 33, t + 86400));
	assert_false(alerts_quiet(a, 33, t));	/* never seen: its first alert may be due */
	for (int i = 0; i < 4; i++)
		assert_false(alerts_count(a, 33, t, &n));
	assert_false(alerts_quiet(a, 33, t + 1));	/* one more attempt alerts */
	assert_true(alerts_count(a, 33, t + 1, &n));
	assert_true(alerts_quiet(a, 33, t + 61));
	assert_false(alerts_quiet(a, 33, t + 600));	/* its next alert may be due by then */
	alerts_credit(a, 33, t + 61, 1000);
	assert_false(alerts_count(a, 33, t + 62, &n));
	assert_int_equal(n, 1006);
	assert_true(alerts_count(a, 33, t + 601, &n));
	alerts_free(a);
	alerts_free(off);
}

static void
a_threshold_of_zero_never_alerts(void **state)
{
	struct alerts *a = alerts_new(0);
	uint64_t n = 0;

	(void)state;
	for (int i = 0; i < 1000; i++)
		assert_false(alerts_count(a, 33, 1700000000, &n));
	alerts_free(a);
}

static void
the_alert_program_gets_the_json_on_stdin_and_is_reaped(void **state)
{
	char dir[] = "/tmp/sg-alert-XXXXXX", prog[128], out[128], buf[256] = "";
	struct alerts *a = alerts_new(1);
	const char *json = "{\"event\":\"alert\",\"uid\":33}\n";
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(prog, sizeof(prog), "%s/alert.sh", dir);
	snprintf(out, sizeof(out), "%s/got", dir);
	fp = fopen(prog, "w");
	fprintf(fp, "#!/bin/sh\ncat > %s.tmp && mv %s.tmp %s\n", out, out, out);
	fclose(fp);
	chmod(prog, 0755);
	assert_int_equal(alerts_exec(a, prog, json, strlen(json)), 0);
	for (int i = 0; i < 200 && access(out, F_OK) != 0; i++)
		usleep(10000);
	fp = fopen(out, "r");
	assert_non_null(fp);
	assert_non_null(fgets(buf, sizeof(buf), fp));
	fclose(fp);
	assert_string_equal(buf, json);
	for (int i = 0; i < 200; i++) {
		alerts_reap(a, time(NULL));
		usleep(5000);
	}
	unlink(out);
	unlink(prog);
	rmdir(dir);
	alerts_free(a);
}

static void
a_program_that_hangs_is_killed_at_its_deadline(void **state)
{
	char dir[] = "/tmp/sg-alert-XXXXXX", prog[128];
	struct alerts *a = alerts_new(1);
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(prog, sizeof(prog), "%s/hang.sh", dir);
	fp = fopen(prog, "w");
	fprintf(fp, "#!/bin/sh\nexec sleep 600\n");
	fclose(fp);
	chmod(prog, 0755);
	assert_int_equal(alerts_exec(a, prog, "{}", 2), 0);
	assert_int_equal(alerts_reap(a, time(NULL)), 0);
	assert_int_equal(alerts_reap(a, time(NULL) + 3600), 1);
	unlink(prog);
	rmdir(dir);
	alerts_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_threshold_raises_one_alert_per_ten_minutes),
		cmocka_unit_test(a_threshold_of_zero_never_alerts),
		cmocka_unit_test(attempts_counted_in_bulk_never_hide_an_alert),
		cmocka_unit_test(the_alert_program_gets_the_json_on_stdin_and_is_reaped),
		cmocka_unit_test(a_program_that_hangs_is_killed_at_its_deadline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
