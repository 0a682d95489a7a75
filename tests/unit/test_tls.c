/*
 * test_tls.c — the SNI an audited client sends after STARTTLS (or on 465),
 * from a ClientHello captured from `openssl s_client -servername
 * mx.example.net` on loopback, and every way that record can be cut or lie.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtpguard.h"
#include "tls_hello.h"


#define SNI_EXT_OFF	144	/* extension type 0 (server_name) in tls_client_hello[] */
#define SNI_NAME_LEN_LO	(SNI_EXT_OFF + 8)	/* low byte of the host name length */
#define SNI_NAME_OFF	(SNI_EXT_OFF + 9)

/* tls_sni over an exact-size heap copy, so ASan sees any read past the end. */
static int
sni_of(const uint8_t *p, size_t len, char *out, size_t outlen)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	int r, saved;

	assert_non_null(copy);
	memcpy(copy, p, len);
	r = tls_sni(copy, len, out, outlen);
	saved = errno;
	free(copy);
	errno = saved;
	return r;
}

static void
real_client_hello_names_its_server(void **state)
{
	char name[SMTP_FIELD_MAX];

	(void)state;
	assert_int_equal(sni_of(tls_client_hello, sizeof(tls_client_hello), name, sizeof(name)), 0);
	assert_string_equal(name, "mx.example.net");
}

static void
hello_cut_anywhere_asks_for_more(void **state)
{
	char name[SMTP_FIELD_MAX];

	(void)state;
	for (size_t len = 0; len < sizeof(tls_client_hello); len++) {
		errno = 0;
		assert_int_equal(sni_of(tls_client_hello, len, name, sizeof(name)), -1);
		assert_int_equal(errno, EAGAIN);
	}
}

static void
hello_split_over_two_records_is_joined(void **state)
{
	uint8_t two[sizeof(tls_client_hello) + 5];
	size_t body = sizeof(tls_client_hello) - 5, first = 100;
	char name[SMTP_FIELD_MAX];

	(void)state;
	memcpy(two, tls_client_hello, 5 + first);
	two[3] = (uint8_t)(first >> 8);
	two[4] = (uint8_t)first;
	memcpy(two + 5 + first, tls_client_hello, 5);
	two[5 + first + 3] = (uint8_t)((body - first) >> 8);
	two[5 + first + 4] = (uint8_t)(body - first);
	memcpy(two + 10 + first, tls_client_hello + 5 + first, body - first);
	assert_int_equal(sni_of(two, sizeof(two), name, sizeof(name)), 0);
	assert_string_equal(name, "mx.example.net");
	/* Only the first record: more is needed, not a failure. */
	assert_int_equal(sni_of(two, 5 + first, name, sizeof(name)), -1);
	assert_int_equal(errno, EAGAIN);
}

static void
plain_smtp_is_not_tls(void **state)
{
	const char *ehlo = "EHLO mail.example.com\r\n";
	char name[SMTP_FIELD_MAX];

	(void)state;
	assert_int_equal(sni_of((const uint8_t *)ehlo, strlen(ehlo), name, sizeof(name)), -1);
	assert_int_equal(errno, EINVAL);
	assert_string_equal(name, "");
}

static void
server_hello_is_not_a_client_hello(void **state)
{
	uint8_t h[sizeof(tls_client_hello)];
	char name[SMTP_FIELD_MAX];

	(void)state;
	memcpy(h, tls_client_hello, sizeof(h));
	h[5] = 2;
	assert_int_equal(sni_of(h, sizeof(h), name, sizeof(name)), -1);
	assert_int_equal(errno, EINVAL);
}

static void
lying_name_length_is_refused(void **state)
{
	uint8_t h[sizeof(tls_client_hello)];
	char name[SMTP_FIELD_MAX];

	(void)state;
	memcpy(h, tls_client_hello, sizeof(h));
	assert_int_equal(h[SNI_NAME_LEN_LO], strlen("mx.example.net"));
	h[SNI_NAME_LEN_LO] = 0x40;
	assert_int_equal(sni_of(h, sizeof(h), name, sizeof(name)), -1);
	assert_int_equal(errno, EINVAL);
	memcpy(h, tls_client_hello, sizeof(h));
	h[SNI_EXT_OFF + 3] = 0xff;	/* the extension claims more than the tls_client_hello holds */
	assert_int_equal(sni_of(h, sizeof(h), name, sizeof(name)), -1);
	assert_int_equal(errno, EINVAL);
}

static void
hostile_name_bytes_are_refused(void **state)
{
	uint8_t h[sizeof(tls_client_hello)];
	char name[SMTP_FIELD_MAX];

	(void)state;
	memcpy(h, tls_client_hello, sizeof(h));
	h[SNI_NAME_OFF + 2] = '\n';
	assert_int_equal(sni_of(h, sizeof(h), name, sizeof(name)), -1);
	assert_int_equal(errno, EINVAL);
}

static void
hello_without_server_name_says_so(void **state)
{
	uint8_t h[sizeof(tls_client_hello)];
	char name[SMTP_FIELD_MAX];

	(void)state;
	memcpy(h, tls_client_hello, sizeof(h));
	assert_int_equal(h[SNI_EXT_OFF] << 8 | h[SNI_EXT_OFF + 1], 0);
	h[SNI_EXT_OFF] = 0xfa;		/* a GREASE type: ignored */
	h[SNI_EXT_OFF + 1] = 0xfa;
	assert_int_equal(sni_of(h, sizeof(h), name, sizeof(name)), -1);
	assert_int_equal(errno, ENOENT);
}

static void
name_longer_than_the_buffer_is_not_cut(void **state)
{
	char name[8];

	(void)state;
	assert_int_equal(sni_of(tls_client_hello, sizeof(tls_client_hello), name, sizeof(name)), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	assert_string_equal(name, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(real_client_hello_names_its_server),
		cmocka_unit_test(hello_cut_anywhere_asks_for_more),
		cmocka_unit_test(hello_split_over_two_records_is_joined),
		cmocka_unit_test(plain_smtp_is_not_tls),
		cmocka_unit_test(server_hello_is_not_a_client_hello),
		cmocka_unit_test(lying_name_length_is_refused),
		cmocka_unit_test(hostile_name_bytes_are_refused),
		cmocka_unit_test(hello_without_server_name_says_so),
		cmocka_unit_test(name_longer_than_the_buffer_is_not_cut),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
