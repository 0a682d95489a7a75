/*
 * util.c: the one FNV-1a hash gives the published 64-bit values (so every
 * table hashes alike), and the one line reader cuts config and exception
 * files the way both expect.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpguard.h"

/* From the FNV reference test suite (Noll's test_fnv.c, FNV-1a 64). */
static void
fnv1a64_matches_the_published_vectors(void **state)
{
	static const struct { const char *in; uint64_t out; } v[] = {
		{ "", 0xcbf29ce484222325ULL },
		{ "a", 0xaf63dc4c8601ec8cULL },
		{ "foobar", 0x85944171f73967e8ULL },
	};

	(void)state;
	assert_int_equal(FNV1A64_BASIS, 0xcbf29ce484222325ULL);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		assert_int_equal(fnv1a64(FNV1A64_BASIS, v[i].in, strlen(v[i].in)), v[i].out);
	/* fed in pieces, the same hash as in one call */
	assert_int_equal(fnv1a64(fnv1a64(FNV1A64_BASIS, "foo", 3), "bar", 3),
	    0x85944171f73967e8ULL);
	/* the string and case-folding forms are the same hash */
	assert_int_equal(str_hash("foobar"), (size_t)0x85944171f73967e8ULL);
	assert_int_equal(fnv1a64_lower(FNV1A64_BASIS, "FooBAR", 6), 0x85944171f73967e8ULL);
}

/* A literal backslash is doubled, so "\\x1b" typed by an attacker is not an escaped ESC. */
static void
put_safe_tells_a_backslash_from_an_escape(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	(void)state;
	assert_non_null(fp);
	put_safe(fp, "a\\x1bb\x1b" "c", 100);
	fclose(fp);
	assert_string_equal(buf, "a\\\\x1bb\\x1bc");
	free(buf);
}

static void
lines_lose_their_crlf_and_the_last_needs_no_newline(void **state)
{
	static const char text[] = "one\r\ntwo\n\nthree";
	static const char *const want[] = { "one", "two", "", "three" };
	const char *p = text, *end = text + sizeof(text) - 1, *s;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_int_equal(text_line(&p, end, 16, &s, &n), 1);
		assert_int_equal(n, strlen(want[i]));
		assert_memory_equal(s, want[i], n);
	}
	assert_int_equal(text_line(&p, end, 16, &s, &n), 0);
}

static void
long_lines_and_nul_bytes_are_refused_and_still_quoted(void **state)
{
	const char text[] = "12345\n123456\nab\0c\n";
	const char *p = text, *end = text + sizeof(text) - 1, *s;
	size_t n;

	(void)state;
	assert_int_equal(text_line(&p, end, 5, &s, &n), 1);
	errno = 0;
	assert_int_equal(text_line(&p, end, 5, &s, &n), -1);
	assert_int_equal(errno, E2BIG);
	assert_int_equal(n, 6);
	assert_memory_equal(s, "123456", 6);
	assert_int_equal(text_line(&p, end, 5, &s, &n), -1);
	assert_int_equal(errno, EILSEQ);
	assert_int_equal(text_line(&p, end, 5, &s, &n), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fnv1a64_matches_the_published_vectors),
		cmocka_unit_test(put_safe_tells_a_backslash_from_an_escape),
		cmocka_unit_test(lines_lose_their_crlf_and_the_last_needs_no_newline),
		cmocka_unit_test(long_lines_and_nul_bytes_are_refused_and_still_quoted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
