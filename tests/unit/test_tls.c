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

/* OpenSSL 3.0 s_client, one TLS record, 320 bytes. */
static const uint8_t hello[] = {
	0x16, 0x03, 0x01, 0x01, 0x3b, 0x01, 0x00, 0x01, 0x37, 0x03, 0x03, 0x1d,
	0x95, 0x62, 0x28, 0xff, 0xb7, 0xe3, 0xd4, 0xc7, 0xd5, 0x0f, 0xa4, 0x34,
	0x47, 0xcb, 0x0b, 0xae, 0x9b, 0x28, 0xae, 0x80, 0x7b, 0x34, 0x63, 0xd8,
	0x9c, 0x2a, 0x72, 0xab, 0x90, 0x19, 0xfd, 0x20, 0xcd, 0xe3, 0x5e, 0xaa,
	0x5e, 0x74, 0xd1, 0x0b, 0xc1, 0x9a, 0xdc, 0xe9, 0x09, 0x5d, 0x1a, 0xc5,
	0x20, 0x20, 0x5a, 0xb1, 0xb6, 0xbe, 0x0c, 0x3a, 0x86, 0xa6, 0xb3, 0x70,
	0xf8, 0x1d, 0xd2, 0x51, 0x00, 0x3e, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01,
	0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
	0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b,
	0xc0, 0x23, 0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39,
	0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d,
	0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0xb0,
	0x00, 0x00, 0x00, 0x13, 0x00, 0x11, 0x00, 0x00, 0x0e, 0x6d, 0x78, 0x2e,
	0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6e, 0x65, 0x74, 0x00,
	0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02, 0x00, 0x0a, 0x00, 0x16, 0x00,
	0x14, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x01,
	0x00, 0x01, 0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x04, 0x00, 0x23, 0x00,
	0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d, 0x00,
	0x2a, 0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08,
	0x08, 0x08, 0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08, 0x05, 0x08,
	0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x03, 0x03, 0x03, 0x01, 0x03,
	0x02, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02, 0x00, 0x2b, 0x00, 0x09, 0x08,
	0x03, 0x04, 0x03, 0x03, 0x03, 0x02, 0x03, 0x01, 0x00, 0x2d, 0x00, 0x02,
	0x01, 0x01, 0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20,
	0xfb, 0xcc, 0x35, 0x4c, 0x89, 0xdf, 0x81, 0x6f, 0x52, 0x36, 0x43, 0xaf,
	0x4c, 0xfa, 0x06, 0x6f, 0x20, 0xed, 0x4b, 0xaa, 0x47, 0x93, 0x5b, 0x18,
	0x5b, 0x23, 0x86, 0x8f, 0xcd, 0x7d, 0x6d, 0x4b,
};

#define SNI_EXT_OFF	144	/* extension type 0 (server_name) in hello[] */
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
	assert_int_equal(sni_of(hello, sizeof(hello), name, sizeof(name)), 0);
	assert_string_equal(name, "mx.example.net");
}

static void
hello_cut_anywhere_asks_for_more(void **state)
{
	char name[SMTP_FIELD_MAX];

	(void)state;
	for (size_t len = 0; len < sizeof(hello); len++) {
		errno = 0;
		assert_int_equal(sni_of(hello, len, name, sizeof(name)), -1);
		assert_int_equal(errno, EAGAIN);
	}
}

static void
hello_split_over_two_records_is_joined(void **state)
{
	uint8_t two[sizeof(hello) + 5];
	size_t body = sizeof(hello) - 5, first = 100;
	char name[SMTP_FIELD_MAX];

	(void)state;
	memcpy(two, hello, 5 + first);
	two[3] = (uint8_t)(first >> 8);
	two[4] = (uint8_t)first;
	memcpy(two + 5 + first, hello, 5);
	two[5 + first + 3] = (uint8_t)((body - first) >> 8);
	two[5 + first + 4] = (uint8_t)(body - first);
	memcpy(two + 10 + first, hello + 5 + first, body - first);
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
	uint8_t h[sizeof(hello)];
	char name[SMTP_FIELD_MAX];

	(void)state;
	memcpy(h, hello, sizeof(h));
	h[5] = 2;
	assert_int_equal(sni_of(h, sizeof(h), name, sizeof(name)), -1);
	assert_int_equal(errno, EINVAL);
}

static void
lying_name_length_is_refused(void **state)
{
	uint8_t h[sizeof(hello)];
	char name[SMTP_FIELD_MAX];

	(void)state;
	memcpy(h, hello, sizeof(h));
	assert_int_equal(h[SNI_NAME_LEN_LO], strlen("mx.example.net"));
	h[SNI_NAME_LEN_LO] = 0x40;
	assert_int_equal(sni_of(h, sizeof(h), name, sizeof(name)), -1);
	assert_int_equal(errno, EINVAL);
	memcpy(h, hello, sizeof(h));
	h[SNI_EXT_OFF + 3] = 0xff;	/* the extension claims more than the hello holds */
	assert_int_equal(sni_of(h, sizeof(h), name, sizeof(name)), -1);
	assert_int_equal(errno, EINVAL);
}

static void
hostile_name_bytes_are_refused(void **state)
{
	uint8_t h[sizeof(hello)];
	char name[SMTP_FIELD_MAX];

	(void)state;
	memcpy(h, hello, sizeof(h));
	h[SNI_NAME_OFF + 2] = '\n';
	assert_int_equal(sni_of(h, sizeof(h), name, sizeof(name)), -1);
	assert_int_equal(errno, EINVAL);
}

static void
hello_without_server_name_says_so(void **state)
{
	uint8_t h[sizeof(hello)];
	char name[SMTP_FIELD_MAX];

	(void)state;
	memcpy(h, hello, sizeof(h));
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
	assert_int_equal(sni_of(hello, sizeof(hello), name, sizeof(name)), -1);
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
