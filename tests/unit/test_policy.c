/*
 * policy.c: a SYN from an excepted uid to a covered destination goes out
 * (or is audited), up to the exception's hourly cap; past it, or with no
 * uid, or anywhere else, the configured action applies and the rule says
 * why. Exceptions come from fixture passwd/group files; time is passed in.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "smtpguard.h"

#define FIX		"tests/fixtures/exceptions/"
#define ERR_MAX		512
#define HOUR		3600
#define T0		1700000040	/* the first second of a minute */

static struct exceptions	 xs;
static struct decision		 d;

static void
with(const char *const *lines)
{
	struct exception x;
	char err[ERR_MAX];

	exceptions_free(&xs);
	for (; *lines != NULL; lines++) {
		if (exception_parse(*lines, FIX "passwd", FIX "group", &x, err,
		    sizeof(err)) < 0 || exceptions_add(&xs, &x, err, sizeof(err)) < 0)
			fail_msg("%s: %s", *lines, err);
	}
}

static const struct pkt *
syn(const char *dst, uint16_t dport)
{
	static struct pkt p;

	memset(&p, 0, sizeof(p));
	p.family = strchr(dst, ':') != NULL ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(p.family, dst, p.dst), 1);
	p.dport = dport;
	p.sport = 40000;
	p.tcp_flags = 0x02;
	return &p;
}

static void
decide(uid_t uid, const char *dst, uint16_t dport, time_t now)
{
	policy_decide(ACTION_REJECT, &xs, uid, true, syn(dst, dport), now, &d);
}

static int
teardown(void **state)
{
	(void)state;
	exceptions_free(&xs);
	return 0;
}

static void
narrowed_v4_exception_allows_only_its_net_and_port(void **state)
{
	(void)state;
	with((const char *[]){ "allow 1005 to=192.0.2.0/24 port=587", NULL });
	decide(1005, "192.0.2.10", 587, T0);
	assert_int_equal(d.action, ACTION_ALLOW);
	assert_string_equal(d.rule, "exception:1005");
	assert_ptr_equal(d.matched, &xs.v[0]);
	assert_false(d.cap_exceeded);
	assert_int_equal(xs.v[0].hits, 1);
	assert_int_equal(xs.v[0].last_hit, T0);

	decide(1005, "192.0.2.10", 25, T0 + 1);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_string_equal(d.rule, "default");
	assert_null(d.matched);
	decide(1005, "198.51.100.1", 587, T0 + 2);
	assert_int_equal(d.action, ACTION_REJECT);
	decide(33, "192.0.2.10", 587, T0 + 3);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_int_equal(xs.v[0].hits, 1);
	assert_int_equal(xs.v[0].last_hit, T0);
}

static void
narrowed_v6_exception_allows_only_its_net(void **state)
{
	(void)state;
	with((const char *[]){ "allow newsletter to=2001:db8::/32", NULL });
	decide(1005, "2001:db8:1::25", 25, T0);
	assert_int_equal(d.action, ACTION_ALLOW);
	assert_string_equal(d.rule, "exception:newsletter");
	decide(1005, "2001:db9::25", 25, T0);
	assert_int_equal(d.action, ACTION_REJECT);
	/* 32.1.13.184 has the same first four bytes as 2001:db8::. */
	decide(1005, "32.1.13.184", 25, T0);
	assert_int_equal(d.action, ACTION_REJECT);
}

static void
v4_network_never_matches_a_v6_destination(void **state)
{
	(void)state;
	with((const char *[]){ "allow 1005 to=192.0.2.0/24", NULL });
	/* Its first four bytes are 192.0.2.1. */
	decide(1005, "c000:201::", 25, T0);
	assert_int_equal(d.action, ACTION_REJECT);
	decide(1005, "192.0.2.1", 25, T0);
	assert_int_equal(d.action, ACTION_ALLOW);
}

static void
cap_of_three_lets_three_through_then_the_default_and_an_alert(void **state)
{
	(void)state;
	with((const char *[]){ "allow newsletter cap=3/hour", NULL });
	for (int i = 0; i < 3; i++) {
		decide(1005, "198.51.100.1", 25, T0 + i);
		assert_int_equal(d.action, ACTION_ALLOW);
		assert_false(d.cap_exceeded);
	}
	decide(1005, "198.51.100.1", 25, T0 + 3);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_true(d.cap_exceeded);
	assert_string_equal(d.rule, "cap:newsletter");
	assert_ptr_equal(d.matched, &xs.v[0]);
	assert_int_equal(xs.v[0].hits, 3);
	assert_int_equal(xs.v[0].last_hit, T0 + 2);

	/* Past the cap the configured action applies, whatever it is. */
	policy_decide(ACTION_TRAP, &xs, 1005, true, syn("198.51.100.1", 25), T0 + 4, &d);
	assert_int_equal(d.action, ACTION_TRAP);
	assert_true(d.cap_exceeded);
}

static void
cap_window_rolls_an_hour_after_each_connection(void **state)
{
	(void)state;
	with((const char *[]){ "allow newsletter cap=3/hour", NULL });
	decide(1005, "198.51.100.1", 25, T0);
	decide(1005, "198.51.100.1", 25, T0 + 1800);
	decide(1005, "198.51.100.1", 25, T0 + 1801);
	assert_int_equal(d.action, ACTION_ALLOW);
	decide(1005, "198.51.100.1", 25, T0 + HOUR - 60);
	assert_true(d.cap_exceeded);
	/* The first connection has left the hour: one more goes through. */
	decide(1005, "198.51.100.1", 25, T0 + HOUR);
	assert_int_equal(d.action, ACTION_ALLOW);
	decide(1005, "198.51.100.1", 25, T0 + HOUR + 1);
	assert_true(d.cap_exceeded);
	/* Refused attempts do not use up the cap. */
	decide(1005, "198.51.100.1", 25, T0 + 1800 + HOUR);
	assert_int_equal(d.action, ACTION_ALLOW);
	decide(1005, "198.51.100.1", 25, T0 + 1800 + HOUR + 1);
	assert_int_equal(d.action, ACTION_ALLOW);
	decide(1005, "198.51.100.1", 25, T0 + 1800 + HOUR + 2);
	assert_true(d.cap_exceeded);
	assert_int_equal(xs.v[0].hits, 6);
}

static void
cap_at_its_maximum_keeps_fixed_memory_and_counts_exactly(void **state)
{
	(void)state;
	with((const char *[]){ "allow newsletter cap=100000/hour", NULL });
	for (int i = 0; i < EXCEPTION_CAP_MAX; i++) {
		decide(1005, "198.51.100.1", 25, T0 + i / 30);
		if (d.action != ACTION_ALLOW)
			fail_msg("connection %d refused under the cap", i);
	}
	decide(1005, "198.51.100.1", 25, T0 + HOUR - 1);
	assert_true(d.cap_exceeded);
}

static void
audit_exception_audits_instead_of_allowing(void **state)
{
	(void)state;
	with((const char *[]){ "allow @wpsites port=587 audit", NULL });
	decide(1002, "203.0.113.5", 587, T0);
	assert_int_equal(d.action, ACTION_AUDIT);
	assert_string_equal(d.rule, "exception:@wpsites");
	decide(1002, "203.0.113.5", 25, T0);
	assert_int_equal(d.action, ACTION_REJECT);
}

static void
plain_exception_seen_in_userspace_during_an_update_is_allowed(void **state)
{
	(void)state;
	with((const char *[]){ "allow www-data", NULL });
	decide(33, "2001:db8::25", 465, T0);
	assert_int_equal(d.action, ACTION_ALLOW);
	assert_string_equal(d.rule, "exception:www-data");
}

static void
unknown_uid_gets_the_default_even_if_its_number_is_excepted(void **state)
{
	(void)state;
	with((const char *[]){ "allow 0", NULL });
	policy_decide(ACTION_TRAP, &xs, 0, false, syn("192.0.2.1", 25), T0, &d);
	assert_int_equal(d.action, ACTION_TRAP);
	assert_string_equal(d.rule, "default");
	assert_false(d.cap_exceeded);
	assert_int_equal(xs.v[0].hits, 0);
}

static void
capped_exception_overflow_still_meets_the_next_exception(void **state)
{
	(void)state;
	with((const char *[]){ "allow newsletter cap=1/hour", "allow 1005 port=587 audit",
	    NULL });
	decide(1005, "192.0.2.1", 587, T0);
	assert_int_equal(d.action, ACTION_ALLOW);
	assert_string_equal(d.rule, "exception:newsletter");
	decide(1005, "192.0.2.1", 587, T0 + 1);
	assert_int_equal(d.action, ACTION_AUDIT);
	assert_string_equal(d.rule, "exception:1005");
	assert_false(d.cap_exceeded);
	decide(1005, "192.0.2.1", 25, T0 + 2);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_string_equal(d.rule, "cap:newsletter");
	assert_true(d.cap_exceeded);
}

static void
reload_carries_hits_and_an_exhausted_cap(void **state)
{
	struct exceptions old;

	(void)state;
	with((const char *[]){ "allow newsletter cap=2/hour", NULL });
	decide(1005, "192.0.2.1", 25, T0);
	decide(1005, "192.0.2.1", 25, T0 + 1);
	old = xs;
	xs.v = NULL;
	xs.n = 0;
	with((const char *[]){ "allow www-data", "allow newsletter cap=2/hour", NULL });
	exceptions_carry_counters(&xs, &old);
	exceptions_free(&old);
	assert_int_equal(xs.v[1].hits, 2);
	assert_int_equal(xs.v[1].last_hit, T0 + 1);
	decide(1005, "192.0.2.1", 25, T0 + 2);
	assert_true(d.cap_exceeded);
}

static void
clock_set_back_does_not_lock_the_exception_out(void **state)
{
	(void)state;
	with((const char *[]){ "allow newsletter cap=2/hour", NULL });
	decide(1005, "192.0.2.1", 25, T0 + 5 * HOUR);
	decide(1005, "192.0.2.1", 25, T0 + 5 * HOUR);
	decide(1005, "192.0.2.1", 25, T0 + 5 * HOUR);
	assert_true(d.cap_exceeded);
	/* Minutes stamped in the "future" are not held against the present. */
	decide(1005, "192.0.2.1", 25, T0);
	assert_int_equal(d.action, ACTION_ALLOW);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(narrowed_v4_exception_allows_only_its_net_and_port,
		    teardown),
		cmocka_unit_test_teardown(narrowed_v6_exception_allows_only_its_net, teardown),
		cmocka_unit_test_teardown(v4_network_never_matches_a_v6_destination, teardown),
		cmocka_unit_test_teardown(
		    cap_of_three_lets_three_through_then_the_default_and_an_alert, teardown),
		cmocka_unit_test_teardown(cap_window_rolls_an_hour_after_each_connection,
		    teardown),
		cmocka_unit_test_teardown(
		    cap_at_its_maximum_keeps_fixed_memory_and_counts_exactly, teardown),
		cmocka_unit_test_teardown(audit_exception_audits_instead_of_allowing, teardown),
		cmocka_unit_test_teardown(
		    plain_exception_seen_in_userspace_during_an_update_is_allowed, teardown),
		cmocka_unit_test_teardown(
		    unknown_uid_gets_the_default_even_if_its_number_is_excepted, teardown),
		cmocka_unit_test_teardown(
		    capped_exception_overflow_still_meets_the_next_exception, teardown),
		cmocka_unit_test_teardown(reload_carries_hits_and_an_exhausted_cap, teardown),
		cmocka_unit_test_teardown(clock_set_back_does_not_lock_the_exception_out,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
