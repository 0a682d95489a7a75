/*
 * cidr.c: the prefixes an admin writes after to= match the addresses they
 * cover and no others, are refused when mistyped, and print back as written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "smtpguard.h"

static void
cidr_matching_respects_family_and_prefix(void **state)
{
	struct cidr c;
	uint8_t a[16] = { 0 };

	(void)state;
	assert_int_equal(cidr_parse("192.0.2.128/25", &c), 0);
	memcpy(a, (uint8_t[]){ 192, 0, 2, 200 }, 4);
	assert_true(cidr_contains(&c, AF_INET, a));
	a[3] = 127;
	assert_false(cidr_contains(&c, AF_INET, a));
	a[3] = 200;
	assert_false(cidr_contains(&c, AF_INET6, a));
	assert_int_equal(cidr_parse("0.0.0.0/0", &c), 0);
	assert_true(cidr_contains(&c, AF_INET, a));
	assert_int_equal(cidr_parse("2001:db8::1", &c), 0);
	assert_int_equal(c.prefix, 128);
	assert_int_equal(cidr_parse("2001:db8::/-1", &c), -1);
	assert_int_equal(cidr_parse("2001:db8::/", &c), -1);
	assert_int_equal(cidr_parse("192.0.2.0/24/1", &c), -1);
}

static void
prefix_with_host_bits_is_a_typo_and_refused(void **state)
{
	struct cidr c;

	(void)state;
	assert_int_equal(cidr_parse("192.0.2.5/24", &c), -1);
	assert_int_equal(cidr_parse("2001:db8::1/32", &c), -1);
	assert_int_equal(cidr_parse("192.0.2.0/33", &c), -1);
	assert_int_equal(cidr_parse("example.org/24", &c), -1);
	assert_int_equal(cidr_parse("192.0.2.0/24", &c), 0);
}

static void
prefix_prints_back_as_written(void **state)
{
	struct cidr c;
	char buf[64];

	(void)state;
	assert_int_equal(cidr_parse("192.0.2.0/24", &c), 0);
	cidr_format(&c, buf, sizeof(buf));
	assert_string_equal(buf, "192.0.2.0/24");
	assert_int_equal(cidr_parse("2001:db8::", &c), 0);
	cidr_format(&c, buf, sizeof(buf));
	assert_string_equal(buf, "2001:db8::/128");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cidr_matching_respects_family_and_prefix),
		cmocka_unit_test(prefix_with_host_bits_is_a_typo_and_refused),
		cmocka_unit_test(prefix_prints_back_as_written),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
