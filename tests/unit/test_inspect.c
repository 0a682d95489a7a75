/*
 * test_inspect.c — detect_any_port's reading of a probed flow's first client
 * bytes (inspect_probe), then what policy_decide makes of them: an SMTP
 * greeting is reset, TLS to a host named in mail_relays is reset, TLS to any
 * other name and HTTP pass. The ClientHello is test_tls.c's, captured from
 * `openssl s_client -servername mx.example.net`.
 */
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

static struct inspect	*in;
static struct config	 cfg;

static int
setup(void **state)
{
	(void)state;
	config_defaults(&cfg);
	cfg.detect_any_port = true;
	in = inspect_new(1000, cfg.inspect_bytes, false);
	assert_non_null(in);
	in->probe = true;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	inspect_free(in);
	return 0;
}

/* One client segment to port 2525, from an exact-size heap copy (ASan sees overreads). */
static enum inspect_probe
segment(const void *payload, size_t len, uint8_t flags)
{
	struct pkt p = { .family = AF_INET, .sport = 40000, .dport = 2525, .seq = 1001,
	    .tcp_flags = flags };
	uint8_t *copy = malloc(len > 0 ? len : 1);
	enum inspect_probe r;

	assert_non_null(copy);
	memcpy(copy, payload, len);
	p.payload = copy;
	p.payload_len = len;
	r = inspect_probe(in, &p);
	free(copy);
	return r;
}

static void
decide(enum inspect_probe what, const char *relays, struct decision *d)
{
	struct pkt p = { .family = AF_INET, .dport = 2525, .tcp_flags = TH_ACK };
	struct policy_query q = { .cfg = &cfg, .pkt = &p, .probe = what,
	    .sni = in->info.tls_sni };

	strlcpy_sg(cfg.mail_relays, relays, sizeof(cfg.mail_relays));
	policy_decide(&q, d);
}

static void
smtp_greeting_on_another_port_is_read_and_reset(void **state)
{
	static const char ehlo[] = "EHLO spambot.example\r\nMAIL FROM:<x@example.org>\r\n";
	struct decision d;

	(void)state;
	assert_int_equal(segment(ehlo, sizeof(ehlo) - 1, TH_ACK | TH_PUSH),
	    INSPECT_PROBE_SMTP);
	assert_string_equal(in->info.helo, "spambot.example");
	assert_string_equal(in->info.mail_from, "");	/* only the first line is read */
	assert_int_equal(in->info.bytes, sizeof(ehlo) - 1);
	decide(INSPECT_PROBE_SMTP, "", &d);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_string_equal(d.proto, "smtp");
}

static void
tls_to_a_named_relay_is_reset(void **state)
{
	struct decision d;

	(void)state;
	assert_int_equal(segment(hello, sizeof(hello), TH_ACK | TH_PUSH), INSPECT_PROBE_TLS);
	assert_string_equal(in->info.tls_sni, "mx.example.net");
	decide(INSPECT_PROBE_TLS, "smtp.relay.example, *.example.net", &d);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_int_equal(d.mark, MARK_REJECT);
	assert_string_equal(d.proto, "smtp-tls");
}

static void
tls_to_another_name_passes(void **state)
{
	struct decision d;

	(void)state;
	assert_int_equal(segment(hello, sizeof(hello), TH_ACK | TH_PUSH), INSPECT_PROBE_TLS);
	decide(INSPECT_PROBE_TLS, "smtp.relay.example, *.mailer.example", &d);
	assert_int_equal(d.action, ACTION_NONE);
	assert_int_equal(d.mark, MARK_ALLOW);
}

static void
http_passes_for_good(void **state)
{
	static const char get[] = "GET / HTTP/1.1\r\nHost: www.example.net\r\n\r\n";
	struct decision d;

	(void)state;
	assert_int_equal(segment(get, sizeof(get) - 1, TH_ACK | TH_PUSH), INSPECT_PROBE_OTHER);
	assert_string_equal(in->info.helo, "");
	decide(INSPECT_PROBE_OTHER, "*.example.net", &d);
	assert_int_equal(d.mark, MARK_ALLOW);
}

static void
empty_packets_are_waited_out_up_to_a_bound(void **state)
{
	(void)state;
	for (int i = 1; i < INSPECT_PROBE_EMPTY_MAX; i++)
		if (segment("", 0, TH_ACK) != INSPECT_PROBE_MORE)
			fail_msg("empty packet %d ended the probe", i);
	assert_int_equal(segment("", 0, TH_ACK), INSPECT_PROBE_OTHER);
}

static void
flow_closed_before_sending_anything_passes(void **state)
{
	(void)state;
	assert_int_equal(segment("", 0, TH_ACK), INSPECT_PROBE_MORE);
	assert_int_equal(segment("", 0, TH_ACK | TH_FIN), INSPECT_PROBE_OTHER);
}

int
main(void)
{
#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(smtp_greeting_on_another_port_is_read_and_reset),
		T(tls_to_a_named_relay_is_reset),
		T(tls_to_another_name_passes),
		T(http_passes_for_good),
		T(empty_packets_are_waited_out_up_to_a_bound),
		T(flow_closed_before_sending_anything_passes),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
