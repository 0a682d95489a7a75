/*
 * test_inspect.c — detect_any_port's reading of a probed flow in both
 * directions (inspect_any_*), packet by packet as the fence gets them, then
 * what policy_decide makes of it. Each way round issue 14 found (NOOP first,
 * an empty line first, EH|LO cut in two, a tab after EHLO, MAIL FROM with no
 * greeting, a pipelined burst, EHLO in the SYN, a long wait) is SMTP; HTTP
 * and TLS to other names are not; what cannot be read or waited for fails
 * closed. The ClientHello is test_tls.c's, captured from
 * `openssl s_client -servername mx.example.net`. Last, an audited session's
 * reading (inspect_new) against the segment at which the fence's rule
 * releases the flow in the kernel: a DATA line at a segment's start.
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
#include "tls_hello.h"


#define CLIENT_ISN	1000u
#define SERVER_ISN	0xfffffff0u	/* the server's stream crosses 2^32 */

static struct inspect_any	*a;
static struct config		 cfg;
static uint32_t			 cnext, snext;	/* next byte of each direction */

static int
setup(void **state)
{
	(void)state;
	config_defaults(&cfg);
	cfg.detect_any_port = true;
	strlcpy_sg(cfg.mail_relays, "smtp.relay.example, *.example.net", sizeof(cfg.mail_relays));
	a = inspect_any_new(CLIENT_ISN, policy_mail_relay, &cfg);
	assert_non_null(a);
	cnext = CLIENT_ISN + 1;
	snext = SERVER_ISN + 1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	inspect_any_free(a);
	return 0;
}

/* One packet at SEQ, from an exact-size heap copy (ASan sees overreads). */
static enum inspect_probe
packet(enum sniff_dir dir, uint32_t seq, uint8_t flags, const char *payload, size_t len)
{
	struct pkt p = { .family = AF_INET, .sport = 40000, .dport = 2525, .seq = seq,
	    .tcp_flags = flags };
	uint8_t *copy = malloc(len > 0 ? len : 1);
	enum inspect_probe r;

	assert_non_null(copy);
	memcpy(copy, payload, len);
	if (dir == SNIFF_SERVER) {
		p.sport = 2525;
		p.dport = 40000;
	}
	p.payload = copy;
	p.payload_len = len;
	r = inspect_any_packet(a, dir, &p);
	free(copy);
	return r;
}

/* The next in-order segment of a direction, a C string. */
static enum inspect_probe
say(enum sniff_dir dir, const char *text)
{
	uint32_t *next = dir == SNIFF_CLIENT ? &cnext : &snext;
	size_t len = strlen(text);
	uint32_t seq = *next;

	*next += (uint32_t)len;
	return packet(dir, seq, TH_ACK | (len > 0 ? TH_PUSH : 0), text, len);
}

/* SYN (without payload), SYN-ACK, ACK: the fence has read each, undecided. */
static void
handshake(void)
{
	assert_int_equal(packet(SNIFF_CLIENT, CLIENT_ISN, TH_SYN, "", 0), INSPECT_PROBE_MORE);
	assert_int_equal(packet(SNIFF_SERVER, SERVER_ISN, TH_SYN | TH_ACK, "", 0),
	    INSPECT_PROBE_MORE);
	assert_int_equal(say(SNIFF_CLIENT, ""), INSPECT_PROBE_MORE);
}

static enum mark_state
verdict_of(enum inspect_probe r, struct decision *d)
{
	struct pkt p = { .family = AF_INET, .dport = 2525, .tcp_flags = TH_ACK };
	struct policy_query q = { .cfg = &cfg, .pkt = &p, .probe = r };

	policy_decide(&q, d);
	return d->mark;
}

static void
the_mx_greeting_decides_before_any_client_command(void **state)
{
	struct decision d;

	(void)state;
	handshake();
	/* A keepalive, idle: nothing released after any number of empty packets. */
	for (int i = 0; i < 100; i++)
		if (packet(SNIFF_CLIENT, cnext - 1, TH_ACK, "", 0) != INSPECT_PROBE_MORE)
			fail_msg("empty packet %d decided the flow", i);
	assert_int_equal(say(SNIFF_SERVER, "220 mx.test ESMTP sgprobe\r\n"), INSPECT_PROBE_SMTP);
	assert_string_equal(a->sniff.info.reply, "220 mx.test ESMTP sgprobe");
	assert_int_equal(verdict_of(a->result, &d), MARK_REJECT);
	assert_string_equal(d.rule, "smtp-on-any-port");
	assert_string_equal(d.proto, "smtp");
	assert_non_null(a->sniff.info.inspect);	/* why: said in the event */
}

/* Against a server whose greeting names nothing: the client's commands decide. */
static enum inspect_probe
after_plain_greeting(const char *const *segments, size_t n)
{
	enum inspect_probe r = INSPECT_PROBE_MORE;

	handshake();
	assert_int_equal(say(SNIFF_SERVER, "220 welcome\r\n"), INSPECT_PROBE_MORE);
	for (size_t i = 0; i < n && r == INSPECT_PROBE_MORE; i++)
		r = say(SNIFF_CLIENT, segments[i]);
	return r;
}

static void
noop_first_then_ehlo_is_smtp(void **state)
{
	static const char *const s[] = { "NOOP\r\n", "EHLO bot.example\r\n" };

	(void)state;
	assert_int_equal(after_plain_greeting(s, 2), INSPECT_PROBE_SMTP);
	assert_string_equal(a->sniff.info.helo, "bot.example");
}

static void
empty_line_first_is_smtp(void **state)
{
	static const char *const s[] = { "\r\n", "\r\nHELO bot.example\r\n" };

	(void)state;
	assert_int_equal(after_plain_greeting(s, 2), INSPECT_PROBE_SMTP);
}

static void
ehlo_cut_in_two_segments_is_smtp(void **state)
{
	static const char *const s[] = { "EH", "LO x\r\n" };

	(void)state;
	assert_int_equal(after_plain_greeting(s, 1), INSPECT_PROBE_MORE);
	assert_int_equal(say(SNIFF_CLIENT, s[1]), INSPECT_PROBE_SMTP);
}

static void
tab_after_ehlo_is_smtp(void **state)
{
	static const char *const s[] = { "ehlo\tbot.example\r\n" };

	(void)state;
	assert_int_equal(after_plain_greeting(s, 1), INSPECT_PROBE_SMTP);
}

static void
mail_from_with_no_greeting_is_smtp(void **state)
{
	struct decision d;

	(void)state;
	handshake();	/* the server has not spoken */
	assert_int_equal(say(SNIFF_CLIENT, "MAIL FROM:<bot@example.org>\r\n"),
	    INSPECT_PROBE_SMTP);
	assert_string_equal(a->sniff.info.mail_from, "bot@example.org");
	assert_int_equal(verdict_of(a->result, &d), MARK_REJECT);
}

static void
pipelined_burst_is_read_in_full_for_the_event(void **state)
{
	(void)state;
	handshake();
	assert_int_equal(say(SNIFF_CLIENT, "EHLO bot.example\r\nMAIL FROM:<a@example.org>\r\n"
	    "RCPT TO:<b@example.net>\r\nDATA\r\n"), INSPECT_PROBE_SMTP);
	assert_string_equal(a->sniff.info.helo, "bot.example");
	assert_string_equal(a->sniff.info.mail_from, "a@example.org");
}

static void
ehlo_inside_the_syn_is_smtp_at_the_syn(void **state)
{
	static const char ehlo[] = "EHLO bot.example\r\n";

	(void)state;
	/* TCP Fast Open: the SYN's payload is the client's first bytes. */
	assert_int_equal(packet(SNIFF_CLIENT, CLIENT_ISN, TH_SYN, ehlo, sizeof(ehlo) - 1),
	    INSPECT_PROBE_SMTP);
	assert_string_equal(a->sniff.info.helo, "bot.example");
}

static void
retransmitted_and_reordered_segments_read_once_in_order(void **state)
{
	(void)state;
	handshake();
	assert_int_equal(say(SNIFF_SERVER, "220 welcome\r\n"), INSPECT_PROBE_MORE);
	/* "NOOP\r\n" then "EH" "LO x\r\n", the last two swapped, and each sent twice. */
	assert_int_equal(packet(SNIFF_CLIENT, cnext + 8, TH_ACK, "LO x\r\n", 6),
	    INSPECT_PROBE_MORE);
	assert_int_equal(packet(SNIFF_CLIENT, cnext, TH_ACK, "NOOP\r\n", 6), INSPECT_PROBE_MORE);
	assert_int_equal(packet(SNIFF_CLIENT, cnext, TH_ACK, "NOOP\r\n", 6), INSPECT_PROBE_MORE);
	assert_int_equal(packet(SNIFF_CLIENT, cnext + 6, TH_ACK, "EH", 2), INSPECT_PROBE_SMTP);
	assert_string_equal(a->sniff.info.helo, "x");
}

static void
a_reply_before_the_syn_ack_fails_closed(void **state)
{
	struct decision d;

	(void)state;
	assert_int_equal(packet(SNIFF_CLIENT, CLIENT_ISN, TH_SYN, "", 0), INSPECT_PROBE_MORE);
	assert_int_equal(packet(SNIFF_SERVER, SERVER_ISN + 1, TH_ACK, "HTTP/1.0 200 OK\r\n",
	    17), INSPECT_PROBE_UNDECIDED);
	assert_int_equal(verdict_of(a->result, &d), MARK_REJECT);
	assert_string_equal(d.rule, "any-port-undecided");
	/* Sticky: nothing after it changes the answer. */
	assert_int_equal(say(SNIFF_CLIENT, "GET / HTTP/1.0\r\n"), INSPECT_PROBE_UNDECIDED);
}

static void
a_closed_port_refusing_the_syn_is_no_attempt(void **state)
{
	struct decision d;

	(void)state;
	assert_int_equal(packet(SNIFF_CLIENT, CLIENT_ISN, TH_SYN, "", 0), INSPECT_PROBE_MORE);
	assert_int_equal(packet(SNIFF_SERVER, 0, TH_RST | TH_ACK, "", 0), INSPECT_PROBE_OTHER);
	assert_int_equal(verdict_of(a->result, &d), MARK_ALLOW);
	assert_int_equal(d.action, ACTION_NONE);
}

static void
client_bytes_with_no_syn_ack_seen_fail_closed(void **state)
{
	(void)state;
	/* The replies are not being read (no conntrack mark on them): never release. */
	assert_int_equal(packet(SNIFF_CLIENT, CLIENT_ISN, TH_SYN, "", 0), INSPECT_PROBE_MORE);
	assert_int_equal(say(SNIFF_CLIENT, "GET / HTTP/1.0\r\n"), INSPECT_PROBE_UNDECIDED);
}

static void
http_passes_at_the_servers_first_bytes(void **state)
{
	struct decision d;

	(void)state;
	handshake();
	assert_int_equal(say(SNIFF_CLIENT, "GET / HTTP/1.1\r\nHost: www.example.net\r\n\r\n"),
	    INSPECT_PROBE_MORE);
	assert_int_equal(say(SNIFF_SERVER, "HTTP/1.1 200 OK\r\n"), INSPECT_PROBE_OTHER);
	assert_int_equal(verdict_of(a->result, &d), MARK_ALLOW);
	assert_int_equal(d.action, ACTION_NONE);
}

static void
tls_to_a_named_relay_is_reset(void **state)
{
	struct decision d;

	(void)state;
	handshake();
	assert_int_equal(packet(SNIFF_CLIENT, cnext, TH_ACK | TH_PUSH, (const char *)tls_client_hello,
	    sizeof(tls_client_hello)), INSPECT_PROBE_TLS);
	assert_string_equal(a->sniff.info.tls_sni, "mx.example.net");
	assert_int_equal(verdict_of(a->result, &d), MARK_REJECT);
	assert_string_equal(d.proto, "smtp-tls");
}

static void
tls_to_another_name_passes_at_the_server_hello(void **state)
{
	static const char server_hello[] = "\x16\x03\x03\x00\x5a\x02";

	(void)state;
	cfg.mail_relays[0] = '\0';
	handshake();
	assert_int_equal(packet(SNIFF_CLIENT, cnext, TH_ACK | TH_PUSH, (const char *)tls_client_hello,
	    sizeof(tls_client_hello)), INSPECT_PROBE_MORE);
	assert_int_equal(say(SNIFF_SERVER, server_hello), INSPECT_PROBE_OTHER);
}

static void
undecided_when_time_is_up_fails_closed(void **state)
{
	struct decision d;

	(void)state;
	handshake();
	assert_int_equal(say(SNIFF_SERVER, "220 welcome\r\n"), INSPECT_PROBE_MORE);
	assert_int_equal(inspect_any_finish(a, "time up"), INSPECT_PROBE_UNDECIDED);
	assert_string_equal(a->sniff.info.inspect, "time up");
	assert_string_equal(a->sniff.info.proto, "smtp");	/* a greeting nobody refuted */
	assert_int_equal(verdict_of(a->result, &d), MARK_REJECT);
	assert_string_equal(d.rule, "any-port-undecided");
}

static void
silent_flow_when_time_is_up_is_reset_too(void **state)
{
	(void)state;
	handshake();
	assert_int_equal(inspect_any_finish(a, "time up"), INSPECT_PROBE_UNDECIDED);
	assert_null(a->sniff.info.proto);
}

static void
client_closing_first_waits_for_the_server(void **state)
{
	(void)state;
	handshake();
	assert_int_equal(packet(SNIFF_CLIENT, cnext, TH_ACK | TH_FIN, "", 0), INSPECT_PROBE_MORE);
	assert_int_equal(say(SNIFF_SERVER, "SSH-2.0-OpenSSH_9.2\r\n"), INSPECT_PROBE_OTHER);
}

/* A client segment of an audited session, at the stream's next byte. */
static enum inspect_result
audited(struct inspect *in, uint32_t *next, const char *text, struct pkt *p)
{
	memset(p, 0, sizeof(*p));
	p->seq = *next;
	p->tcp_flags = TH_ACK | TH_PUSH;
	p->payload = (const uint8_t *)text;
	p->payload_len = strlen(text);
	*next += (uint32_t)p->payload_len;
	return inspect_segment(in, p);
}

static void
the_kernel_releases_at_a_data_line_beginning_a_segment(void **state)
{
	static const char *const released[] = {
		"DATA\r\n", "data\r\n", "DaTa\r\nSubject: hi\r\n",
	};
	static const char *const not_released[] = {
		"DATA\r", "DATA \r\n", "DATAX\r\n", "MAIL FROM:<a@shop.example>\r\nDATA\r\n",
		"\x04\x01\x14\x01\r\n", "",
	};
	struct pkt p = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(released) / sizeof(released[0]); i++) {
		p.payload = (const uint8_t *)released[i];
		p.payload_len = strlen(released[i]);
		assert_true(inspect_released_in_kernel(&p));
	}
	for (size_t i = 0; i < sizeof(not_released) / sizeof(not_released[0]); i++) {
		p.payload = (const uint8_t *)not_released[i];
		p.payload_len = strlen(not_released[i]);
		assert_false(inspect_released_in_kernel(&p));
	}
}

/*
 * Where the reading and the kernel agree (DATA on a line and a segment of
 * its own), inspection is complete at the segment the kernel released; where
 * a DATA line is only the tail of a longer line (a client that split it off),
 * the reading goes on though the kernel stops copying: fence.c ends it there
 * as incomplete.
 */
static void
an_audited_reading_ends_where_the_kernel_releases_the_flow(void **state)
{
	struct inspect *in;
	struct pkt p;
	uint32_t next = CLIENT_ISN + 1;

	(void)state;
	assert_non_null(in = inspect_new(CLIENT_ISN, 4096, false));
	assert_int_equal(audited(in, &next, "EHLO shop.example\r\n", &p), INSPECT_MORE);
	assert_false(inspect_released_in_kernel(&p));
	assert_int_equal(audited(in, &next, "MAIL FROM:<a@shop.example>\r\n", &p), INSPECT_MORE);
	assert_int_equal(audited(in, &next, "DATA\r\n", &p), INSPECT_DONE);
	assert_true(inspect_released_in_kernel(&p));
	assert_string_equal(in->info.inspect, "complete");
	inspect_free(in);

	next = CLIENT_ISN + 1;
	assert_non_null(in = inspect_new(CLIENT_ISN, 4096, false));
	assert_int_equal(audited(in, &next, "NOOP ", &p), INSPECT_MORE);
	assert_int_equal(audited(in, &next, "DATA\r\n", &p), INSPECT_MORE);
	assert_true(inspect_released_in_kernel(&p));
	assert_null(in->info.inspect);
	inspect_free(in);
}

int
main(void)
{
#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(the_mx_greeting_decides_before_any_client_command),
		cmocka_unit_test(the_kernel_releases_at_a_data_line_beginning_a_segment),
		cmocka_unit_test(an_audited_reading_ends_where_the_kernel_releases_the_flow),
		T(noop_first_then_ehlo_is_smtp),
		T(empty_line_first_is_smtp),
		T(ehlo_cut_in_two_segments_is_smtp),
		T(tab_after_ehlo_is_smtp),
		T(mail_from_with_no_greeting_is_smtp),
		T(pipelined_burst_is_read_in_full_for_the_event),
		T(ehlo_inside_the_syn_is_smtp_at_the_syn),
		T(retransmitted_and_reordered_segments_read_once_in_order),
		T(a_reply_before_the_syn_ack_fails_closed),
		T(a_closed_port_refusing_the_syn_is_no_attempt),
		T(client_bytes_with_no_syn_ack_seen_fail_closed),
		T(http_passes_at_the_servers_first_bytes),
		T(tls_to_a_named_relay_is_reset),
		T(tls_to_another_name_passes_at_the_server_hello),
		T(undecided_when_time_is_up_fails_closed),
		T(silent_flow_when_time_is_up_is_reset_too),
		T(client_closing_first_waits_for_the_server),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
