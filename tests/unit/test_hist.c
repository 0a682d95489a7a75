/*
 * util.c's latency histogram: quantiles are within a quarter of the true
 * value and never below it, the maximum is exact, and any uint64 fits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtpguard.h"

static struct hist h;

static void
empty_histogram_answers_zero(void **state)
{
	(void)state;
	memset(&h, 0, sizeof(h));
	assert_int_equal(hist_quantile(&h, 0.5), 0);
}

static void
quantiles_bound_the_true_value_within_a_quarter(void **state)
{
	(void)state;
	memset(&h, 0, sizeof(h));
	/* 1..10000 us in ns: the true p50 is 5000 us, p99 9900 us. */
	for (uint64_t us = 1; us <= 10000; us++)
		hist_add(&h, us * 1000);
	assert_true(hist_quantile(&h, 0.50) >= 5000000);
	assert_true(hist_quantile(&h, 0.50) <= 5000000 * 5 / 4);
	assert_true(hist_quantile(&h, 0.99) >= 9900000);
	assert_true(hist_quantile(&h, 0.99) <= 10000000);	/* capped by the max */
	assert_int_equal(h.max, 10000000);
	assert_int_equal(h.total, 10000);
}

static void
small_values_are_exact(void **state)
{
	(void)state;
	memset(&h, 0, sizeof(h));
	for (int i = 0; i < 10; i++)
		hist_add(&h, 3);
	hist_add(&h, 7);
	assert_int_equal(hist_quantile(&h, 0.5), 3);
	assert_int_equal(hist_quantile(&h, 1.0), 7);
}

static void
the_largest_values_fit(void **state)
{
	(void)state;
	memset(&h, 0, sizeof(h));
	hist_add(&h, UINT64_MAX);
	hist_add(&h, (uint64_t)1 << 63);
	assert_int_equal(hist_quantile(&h, 1.0), UINT64_MAX);
	assert_true(hist_quantile(&h, 0.0) >= (uint64_t)1 << 63);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty_histogram_answers_zero),
		cmocka_unit_test(quantiles_bound_the_true_value_within_a_quarter),
		cmocka_unit_test(small_values_are_exact),
		cmocka_unit_test(the_largest_values_fit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
