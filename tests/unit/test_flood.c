/*
 * flood.c: a spam run fills the event log with `rate` full lines per
 * window and one exact summary, never more, whatever the attacker does.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtpguard.h"

#define SUMMARIES_MAX	16
#define T0		1000000	/* any start time */
#define PHP		"/usr/bin/php8.2"

struct summary {
	uid_t		 uid;
	char		 exe[PATH_MAX];
	bool		 has_exe;
	enum action	 action;
	uint64_t	 suppressed;
	unsigned int	 window;
};

struct sink {
	struct summary	 s[SUMMARIES_MAX];
	size_t		 n;
};

static void
collect(void *arg, uid_t uid, const char *exe, enum action a, uint64_t suppressed,
    unsigned int window)
{
	struct sink *k = arg;
	struct summary *s;

	assert_true(k->n < SUMMARIES_MAX);
	s = &k->s[k->n++];
	s->uid = uid;
	s->has_exe = exe != NULL;
	strlcpy_sg(s->exe, exe ? exe : "", sizeof(s->exe));
	s->action = a;
	s->suppressed = suppressed;
	s->window = window;
}

static unsigned int
admit_n(struct flood *f, unsigned int n, uid_t uid, const char *exe, enum action a,
    time_t now)
{
	unsigned int admitted = 0;

	for (unsigned int i = 0; i < n; i++)
		admitted += flood_admit(f, uid, exe, a, now);
	return admitted;
}

static void
first_attempts_are_logged_in_full_then_suppressed(void **state)
{
	struct flood *f = flood_new(3, 60, 16);

	(void)state;
	assert_non_null(f);
	assert_true(flood_admit(f, 33, PHP, ACTION_REJECT, T0));
	assert_true(flood_admit(f, 33, PHP, ACTION_REJECT, T0));
	assert_true(flood_admit(f, 33, PHP, ACTION_REJECT, T0 + 1));
	assert_false(flood_admit(f, 33, PHP, ACTION_REJECT, T0 + 2));
	assert_false(flood_admit(f, 33, PHP, ACTION_REJECT, T0 + 59));
	flood_free(f);
}

static void
one_summary_per_window_with_the_exact_count(void **state)
{
	struct flood *f = flood_new(3, 60, 16);
	struct sink k = { .n = 0 };

	(void)state;
	assert_int_equal(admit_n(f, 10, 33, PHP, ACTION_REJECT, T0), 3);
	assert_int_equal(flood_expire(f, T0 + 59, collect, &k), 0);
	assert_int_equal(k.n, 0);
	assert_int_equal(flood_expire(f, T0 + 60, collect, &k), 1);
	assert_int_equal(k.n, 1);
	assert_int_equal(k.s[0].uid, 33);
	assert_string_equal(k.s[0].exe, PHP);
	assert_int_equal(k.s[0].action, ACTION_REJECT);
	assert_int_equal(k.s[0].suppressed, 7);
	assert_int_equal(k.s[0].window, 60);
	assert_int_equal(flood_expire(f, T0 + 61, collect, &k), 0);
	assert_int_equal(flood_expire(f, T0 + 600, collect, &k), 0);
	assert_int_equal(k.n, 1);
	flood_free(f);
}

static void
next_window_logs_in_full_again(void **state)
{
	struct flood *f = flood_new(2, 60, 16);
	struct sink k = { .n = 0 };

	(void)state;
	assert_int_equal(admit_n(f, 5, 33, PHP, ACTION_REJECT, T0), 2);
	flood_expire(f, T0 + 60, collect, &k);
	assert_int_equal(admit_n(f, 5, 33, PHP, ACTION_REJECT, T0 + 60), 2);
	flood_expire(f, T0 + 120, collect, &k);
	assert_int_equal(k.n, 2);
	assert_int_equal(k.s[0].suppressed, 3);
	assert_int_equal(k.s[1].suppressed, 3);
	flood_free(f);
}

static void
quiet_sender_gets_no_summary(void **state)
{
	struct flood *f = flood_new(5, 60, 16);
	struct sink k = { .n = 0 };

	(void)state;
	assert_int_equal(admit_n(f, 5, 33, PHP, ACTION_REJECT, T0), 5);
	assert_int_equal(flood_expire(f, T0 + 60, collect, &k), 0);
	assert_int_equal(k.n, 0);
	flood_free(f);
}

static void
uid_exe_and_action_each_make_their_own_key(void **state)
{
	struct flood *f = flood_new(1, 60, 16);

	(void)state;
	assert_true(flood_admit(f, 33, PHP, ACTION_REJECT, T0));
	assert_false(flood_admit(f, 33, PHP, ACTION_REJECT, T0));
	assert_true(flood_admit(f, 1001, PHP, ACTION_REJECT, T0));
	assert_true(flood_admit(f, 33, "/usr/bin/perl", ACTION_REJECT, T0));
	assert_true(flood_admit(f, 33, PHP, ACTION_TRAP, T0));
	assert_true(flood_admit(f, 33, NULL, ACTION_REJECT, T0));
	assert_false(flood_admit(f, 33, "", ACTION_REJECT, T0));
	flood_free(f);
}

/* Twenty thousand connections from one script: twenty lines and one summary. */
static void
spam_run_of_20000_is_twenty_lines_and_one_summary(void **state)
{
	struct flood *f = flood_new(20, 60, 4096);
	struct sink k = { .n = 0 };
	unsigned int admitted = 0;

	(void)state;
	for (int i = 0; i < 20000; i++) {
		time_t now = T0 + i * 59 / 20000;

		admitted += flood_admit(f, 1001, "/home/site1/public_html/wp-x.php",
		    ACTION_REJECT, now);
		flood_expire(f, now, collect, &k);
	}
	assert_int_equal(admitted, 20);
	assert_int_equal(k.n, 0);
	assert_int_equal(flood_expire(f, T0 + 60, collect, &k), 1);
	assert_int_equal(k.s[0].suppressed, 20000 - 20);
	flood_free(f);
}

/* A script that renames itself for every message cannot grow the table. */
static void
full_table_shares_one_key_and_counts_stay_exact(void **state)
{
	struct flood *f = flood_new(1, 60, 2);
	struct sink k = { .n = 0 };
	char exe[64];
	unsigned int admitted = 0;
	uint64_t suppressed = 0;

	(void)state;
	for (int i = 0; i < 5; i++) {
		snprintf(exe, sizeof(exe), "/tmp/.x/%d", i);
		admitted += admit_n(f, 3, 1001, exe, ACTION_REJECT, T0);
	}
	/* two keys of their own (1 logged each), the other three share one (1 logged) */
	assert_int_equal(admitted, 3);
	assert_int_equal(flood_expire(f, T0 + 60, collect, &k), 3);
	for (size_t i = 0; i < k.n; i++)
		suppressed += k.s[i].suppressed;
	assert_int_equal(admitted + suppressed, 15);
	assert_int_equal(k.s[0].uid, 1001);
	assert_string_equal(k.s[0].exe, "/tmp/.x/0");
	assert_int_equal(k.s[0].suppressed, 2);
	assert_string_equal(k.s[1].exe, "/tmp/.x/1");
	assert_int_equal(k.s[1].suppressed, 2);
	assert_int_equal(k.s[2].uid, (uid_t)-1);
	assert_false(k.s[2].has_exe);
	assert_int_equal(k.s[2].action, ACTION_NONE);
	assert_int_equal(k.s[2].suppressed, 8);
	flood_free(f);
}

/* The kernel's share of a flood ends with the window its key (or the overflow) counts in. */
static void
a_window_end_is_its_keys_or_the_overflows(void **state)
{
	struct flood *f = flood_new(1, 60, 1);

	(void)state;
	assert_int_equal(flood_window_end(f, 1001, PHP, ACTION_REJECT), 0);
	admit_n(f, 2, 1001, PHP, ACTION_REJECT, T0 + 5);
	assert_int_equal(flood_window_end(f, 1001, PHP, ACTION_REJECT), T0 + 65);
	assert_int_equal(flood_window_end(f, 1001, PHP, ACTION_TRAP), 0);
	admit_n(f, 2, 1002, PHP, ACTION_REJECT, T0 + 9);	/* table full: the overflow key */
	assert_int_equal(flood_window_end(f, 1002, PHP, ACTION_REJECT), T0 + 69);
	flood_expire(f, T0 + 69, NULL, NULL);
	assert_int_equal(flood_window_end(f, 1001, PHP, ACTION_REJECT), 0);
	assert_int_equal(flood_window_end(f, 1002, PHP, ACTION_REJECT), 0);
	flood_free(f);
}

static void
expired_keys_free_their_slots(void **state)
{
	struct flood *f = flood_new(1, 60, 1);
	struct sink k = { .n = 0 };

	(void)state;
	assert_int_equal(admit_n(f, 2, 33, PHP, ACTION_REJECT, T0), 1);
	flood_expire(f, T0 + 60, collect, &k);
	assert_int_equal(admit_n(f, 2, 1001, PHP, ACTION_REJECT, T0 + 60), 1);
	flood_expire(f, T0 + 120, collect, &k);
	assert_int_equal(k.n, 2);
	assert_int_equal(k.s[1].uid, 1001);
	assert_true(k.s[1].has_exe);
	flood_free(f);
}

static void
keys_expire_in_the_order_they_started(void **state)
{
	struct flood *f = flood_new(0, 60, 16);
	struct sink k = { .n = 0 };

	(void)state;
	flood_admit(f, 1, PHP, ACTION_REJECT, T0);
	flood_admit(f, 2, PHP, ACTION_REJECT, T0 + 10);
	flood_admit(f, 3, PHP, ACTION_REJECT, T0 + 20);
	flood_admit(f, 1, PHP, ACTION_REJECT, T0 + 30);
	assert_int_equal(flood_expire(f, T0 + 70, collect, &k), 2);
	assert_int_equal(k.s[0].uid, 1);
	assert_int_equal(k.s[0].suppressed, 2);
	assert_int_equal(k.s[1].uid, 2);
	assert_int_equal(flood_expire(f, T0 + 80, collect, &k), 1);
	assert_int_equal(k.s[2].uid, 3);
	flood_free(f);
}

/* An admin setting the clock back must not hold summaries for hours. */
static void
clock_stepping_back_ends_the_window(void **state)
{
	struct flood *f = flood_new(1, 60, 16);
	struct sink k = { .n = 0 };

	(void)state;
	admit_n(f, 4, 33, PHP, ACTION_REJECT, T0);
	assert_int_equal(flood_expire(f, T0 - 3600, collect, &k), 1);
	assert_int_equal(k.s[0].suppressed, 3);
	flood_free(f);
}

static void
longest_exe_is_a_key_of_its_own(void **state)
{
	static char a[PATH_MAX], b[PATH_MAX];
	struct flood *f = flood_new(1, 60, 16);
	struct sink k = { .n = 0 };

	(void)state;
	memset(a, 'a', sizeof(a) - 1);
	memset(b, 'a', sizeof(b) - 1);
	b[sizeof(b) - 2] = 'b';
	assert_true(flood_admit(f, 33, a, ACTION_REJECT, T0));
	assert_true(flood_admit(f, 33, b, ACTION_REJECT, T0));
	assert_false(flood_admit(f, 33, a, ACTION_REJECT, T0));
	flood_expire(f, T0 + 60, collect, &k);
	assert_int_equal(k.n, 1);
	assert_string_equal(k.s[0].exe, a);
	flood_free(f);
}

static void
nonsense_limits_are_refused(void **state)
{
	(void)state;
	errno = 0;
	assert_null(flood_new(20, 0, 16));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(flood_new(20, 60, (size_t)1 << 40));
	assert_int_equal(errno, EINVAL);
}

static void
freeing_with_live_keys_leaks_nothing(void **state)
{
	struct flood *f = flood_new(1, 60, 8);

	(void)state;
	for (uid_t u = 0; u < 20; u++)
		flood_admit(f, u, PHP, ACTION_REJECT, T0);
	flood_free(f);
	flood_free(NULL);
}

struct mail_summary {
	char			 origin[MAIL_ORIGIN_MAX];
	bool			 has_origin;
	enum mail_action	 action;
	uint64_t		 suppressed;
};

struct mail_sink {
	struct mail_summary	 s[SUMMARIES_MAX];
	size_t			 n;
};

static void
collect_mail(void *arg, const char *origin, enum mail_action a, uint64_t suppressed,
    unsigned int window)
{
	struct mail_sink *k = arg;
	struct mail_summary *s;

	assert_true(k->n < SUMMARIES_MAX);
	assert_int_equal(window, 60);
	s = &k->s[k->n++];
	s->has_origin = origin != NULL;
	strlcpy_sg(s->origin, origin ? origin : "", sizeof(s->origin));
	s->action = a;
	s->suppressed = suppressed;
}

/* A stolen account's 5000 messages: rate lines per (origin, action), one summary each. */
static void
mail_floods_are_limited_per_origin_and_action(void **state)
{
	struct flood *f = flood_new(3, 60, 16);
	struct mail_sink k = { 0 };
	unsigned int pass = 0, held = 0, other = 0;

	(void)state;
	for (int i = 0; i < 5000; i++) {
		pass += flood_admit_mail(f, "sasl:info@shop.example", MAIL_PASS, T0 + i % 30);
		held += flood_admit_mail(f, "sasl:info@shop.example", MAIL_HOLD, T0 + i % 30);
	}
	for (int i = 0; i < 3; i++)
		other += flood_admit_mail(f, "user:www-data", MAIL_PASS, T0 + 1);
	assert_int_equal(pass, 3);
	assert_int_equal(held, 3);
	assert_int_equal(other, 3);	/* another origin: a key of its own */
	assert_int_equal(flood_expire_mail(f, T0 + 59, collect_mail, &k), 0);
	assert_int_equal(flood_expire_mail(f, T0 + 60, collect_mail, &k), 2);
	assert_string_equal(k.s[0].origin, "sasl:info@shop.example");
	assert_int_equal(k.s[0].action, MAIL_PASS);
	assert_int_equal(k.s[0].suppressed, 4997);
	assert_int_equal(k.s[1].action, MAIL_HOLD);
	assert_int_equal(k.s[1].suppressed, 4997);
	/* The quiet origin's window ends with nothing to sum up. */
	assert_int_equal(flood_expire_mail(f, T0 + 61, collect_mail, &k), 0);
	/* The next window logs in full again. */
	assert_true(flood_admit_mail(f, "sasl:info@shop.example", MAIL_PASS, T0 + 120));
	flood_free(f);
}

/* Origins minted to escape the limit share the overflow key: counts stay exact. */
static void
minted_origins_share_one_mail_summary(void **state)
{
	struct flood *f = flood_new(1, 60, 4);
	struct mail_sink k = { 0 };
	char origin[64];
	unsigned int logged = 0;

	(void)state;
	for (int i = 0; i < 100; i++) {
		snprintf(origin, sizeof(origin), "sasl:u%d@spam.example", i);
		logged += flood_admit_mail(f, origin, MAIL_PASS, T0);
	}
	assert_int_equal(logged, 4 + 1);	/* one per key, one for the shared key */
	assert_int_equal(flood_expire_mail(f, T0 + 60, collect_mail, &k), 1);
	assert_false(k.s[0].has_origin);
	assert_int_equal(k.s[0].suppressed, 100 - 4 - 1);
	flood_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(first_attempts_are_logged_in_full_then_suppressed),
		cmocka_unit_test(one_summary_per_window_with_the_exact_count),
		cmocka_unit_test(next_window_logs_in_full_again),
		cmocka_unit_test(quiet_sender_gets_no_summary),
		cmocka_unit_test(uid_exe_and_action_each_make_their_own_key),
		cmocka_unit_test(spam_run_of_20000_is_twenty_lines_and_one_summary),
		cmocka_unit_test(full_table_shares_one_key_and_counts_stay_exact),
		cmocka_unit_test(a_window_end_is_its_keys_or_the_overflows),
		cmocka_unit_test(expired_keys_free_their_slots),
		cmocka_unit_test(keys_expire_in_the_order_they_started),
		cmocka_unit_test(clock_stepping_back_ends_the_window),
		cmocka_unit_test(longest_exe_is_a_key_of_its_own),
		cmocka_unit_test(nonsense_limits_are_refused),
		cmocka_unit_test(freeing_with_live_keys_leaks_nothing),
		cmocka_unit_test(mail_floods_are_limited_per_origin_and_action),
		cmocka_unit_test(minted_origins_share_one_mail_summary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
