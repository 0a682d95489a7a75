/*
 * test_pkt.c — what the queue hands over (a packet from its IP header on)
 * decoded into addresses, ports and payload: IPv4 with options, IPv6 with
 * extension headers, and every way a packet can be cut short or lie about
 * its lengths, each refused with EINVAL. Packets are built byte by byte here
 * and parsed from exact-size heap copies, so ASan sees any read past the end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtpguard.h"

#define PKT_BUF		256
#define PROTO_TCP	6
#define PROTO_UDP	17
#define PROTO_HOPOPTS	0
#define PROTO_ROUTING	43
#define PROTO_FRAGMENT	44
#define PROTO_DSTOPTS	60
#define PROTO_ICMPV6	58
#define FLAG_SYN	0x02
#define FLAG_PSH_ACK	0x18

static const char ehlo[] = "EHLO shop.example\r\n";

static const uint8_t v4src[4] = { 192, 0, 2, 10 };
static const uint8_t v4dst[4] = { 203, 0, 113, 5 };
static const uint8_t v6src[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 0x0a };
static const uint8_t v6dst[16] = { 0x20, 0x01, 0x0d, 0xb8, 0xff, [15] = 0x19 };

struct built {
	uint8_t	 b[PKT_BUF];
	size_t	 len;
	size_t	 tcp_off;	/* where the TCP header starts */
};

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* A TCP header of doff words (options: NOPs) then the payload, at b->len. */
static void
add_tcp(struct built *b, unsigned int doff, uint8_t flags, const void *payload, size_t plen)
{
	uint8_t *t = b->b + b->len;

	b->tcp_off = b->len;
	memset(t, 0, doff * 4);
	put16(t, 40001);
	put16(t + 2, 25);
	t[4] = 0x01; t[5] = 0x02; t[6] = 0x03; t[7] = 0x04;	/* seq */
	t[12] = (uint8_t)(doff << 4);
	t[13] = flags;
	put16(t + 14, 65535);
	memset(t + 20, 1, doff * 4 - 20);	/* NOP options */
	if (plen > 0)
		memcpy(t + doff * 4, payload, plen);
	b->len += doff * 4 + plen;
}

/* IPv4 with ihl words of header; the total length is fixed up by finish_v4. */
static void
start_v4(struct built *b, unsigned int ihl, uint8_t proto)
{
	memset(b, 0, sizeof(*b));
	b->b[0] = (uint8_t)(0x40 | ihl);
	b->b[8] = 64;
	b->b[9] = proto;
	memcpy(b->b + 12, v4src, 4);
	memcpy(b->b + 16, v4dst, 4);
	memset(b->b + 20, 1, ihl * 4 - 20);	/* NOP options */
	b->len = ihl * 4;
}

static void
finish_v4(struct built *b)
{
	put16(b->b + 2, (uint16_t)b->len);
}

static void
start_v6(struct built *b, uint8_t next)
{
	memset(b, 0, sizeof(*b));
	b->b[0] = 0x60;
	b->b[6] = next;
	b->b[7] = 64;
	memcpy(b->b + 8, v6src, 16);
	memcpy(b->b + 24, v6dst, 16);
	b->len = 40;
}

/* An extension header of (hdrlen + 1) * 8 bytes, padded with PadN. */
static void
add_ext(struct built *b, uint8_t next, uint8_t hdrlen)
{
	uint8_t *e = b->b + b->len;

	memset(e, 0, ((size_t)hdrlen + 1) * 8);
	e[0] = next;
	e[1] = hdrlen;
	b->len += ((size_t)hdrlen + 1) * 8;
}

static void
finish_v6(struct built *b)
{
	put16(b->b + 4, (uint16_t)(b->len - 40));
}

/* DECODE on an exact-size heap copy of P, its payload rebased onto P. */
static int
parse_with(int (*decode)(const uint8_t *, size_t, struct pkt *), const uint8_t *p, size_t len,
    struct pkt *out)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	int r, saved;

	assert_non_null(copy);
	memcpy(copy, p, len);
	errno = 0;
	r = decode(copy, len, out);
	saved = errno;
	/* payload points into the buffer: rebase it onto the caller's */
	if (r == 0)
		out->payload = p + (out->payload - copy);
	free(copy);
	errno = saved;
	return r;
}

static int
parse(const uint8_t *p, size_t len, struct pkt *out)
{
	return parse_with(pkt_parse, p, len, out);
}

/* EHLO in a segment with IP and TCP options, over IPv4 and over IPv6 with a hop-by-hop header. */
static void
ehlo_segments(struct built *v4, struct built *v6)
{
	start_v4(v4, 6, PROTO_TCP);
	add_tcp(v4, 8, FLAG_PSH_ACK, ehlo, strlen(ehlo));
	finish_v4(v4);
	start_v6(v6, PROTO_HOPOPTS);
	add_ext(v6, PROTO_TCP, 1);
	add_tcp(v6, 8, FLAG_PSH_ACK, ehlo, strlen(ehlo));
	finish_v6(v6);
}

static void
assert_refused(const uint8_t *p, size_t len)
{
	struct pkt out;

	assert_int_equal(parse(p, len, &out), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(out.family, 0);
	assert_null(out.payload);
}

static void
ipv4_syn_to_port_25_is_decoded(void **state)
{
	struct built b;
	struct pkt p;

	(void)state;
	start_v4(&b, 5, PROTO_TCP);
	add_tcp(&b, 10, FLAG_SYN, NULL, 0);	/* MSS, SACK, timestamps, wscale: 40 bytes */
	finish_v4(&b);
	assert_int_equal(parse(b.b, b.len, &p), 0);
	assert_int_equal(p.family, AF_INET);
	assert_memory_equal(p.src, v4src, 4);
	assert_memory_equal(p.dst, v4dst, 4);
	assert_int_equal(p.sport, 40001);
	assert_int_equal(p.dport, 25);
	assert_int_equal(p.seq, 0x01020304);
	assert_int_equal(p.tcp_flags, FLAG_SYN);
	assert_int_equal(p.payload_len, 0);
	assert_ptr_equal(p.payload, b.b + 60);
}

static void
ipv4_payload_starts_after_ip_and_tcp_options(void **state)
{
	struct built b;
	struct pkt p;

	(void)state;
	start_v4(&b, 6, PROTO_TCP);
	add_tcp(&b, 8, FLAG_PSH_ACK, ehlo, strlen(ehlo));
	finish_v4(&b);
	assert_int_equal(parse(b.b, b.len, &p), 0);
	assert_ptr_equal(p.payload, b.b + 24 + 32);
	assert_int_equal(p.payload_len, strlen(ehlo));
	assert_memory_equal(p.payload, ehlo, strlen(ehlo));
	assert_int_equal(p.tcp_flags, FLAG_PSH_ACK);
}

static void
ipv4_bytes_past_total_length_are_not_payload(void **state)
{
	struct built b;
	struct pkt p;

	(void)state;
	start_v4(&b, 5, PROTO_TCP);
	add_tcp(&b, 5, FLAG_PSH_ACK, ehlo, strlen(ehlo));
	finish_v4(&b);
	memset(b.b + b.len, 0xee, 6);	/* link-layer padding */
	assert_int_equal(parse(b.b, b.len + 6, &p), 0);
	assert_int_equal(p.payload_len, strlen(ehlo));
}

static void
gso_packet_with_zero_total_length_spans_the_buffer(void **state)
{
	struct built b;
	struct pkt p;

	(void)state;
	start_v4(&b, 5, PROTO_TCP);
	add_tcp(&b, 5, FLAG_PSH_ACK, ehlo, strlen(ehlo));
	assert_int_equal(parse(b.b, b.len, &p), 0);
	assert_int_equal(p.payload_len, strlen(ehlo));

	start_v6(&b, PROTO_TCP);
	add_tcp(&b, 5, FLAG_PSH_ACK, ehlo, strlen(ehlo));
	assert_int_equal(parse(b.b, b.len, &p), 0);
	assert_int_equal(p.payload_len, strlen(ehlo));
}

static void
ipv6_syn_is_decoded(void **state)
{
	struct built b;
	struct pkt p;

	(void)state;
	start_v6(&b, PROTO_TCP);
	add_tcp(&b, 10, FLAG_SYN, NULL, 0);
	finish_v6(&b);
	assert_int_equal(parse(b.b, b.len, &p), 0);
	assert_int_equal(p.family, AF_INET6);
	assert_memory_equal(p.src, v6src, 16);
	assert_memory_equal(p.dst, v6dst, 16);
	assert_int_equal(p.sport, 40001);
	assert_int_equal(p.dport, 25);
	assert_int_equal(p.tcp_flags, FLAG_SYN);
	assert_int_equal(p.payload_len, 0);
	assert_ptr_equal(p.payload, b.b + 80);
}

static void
ipv6_extension_headers_are_walked_to_tcp(void **state)
{
	struct built b;
	struct pkt p;

	(void)state;
	start_v6(&b, PROTO_HOPOPTS);
	add_ext(&b, PROTO_ROUTING, 0);	/* 8 bytes */
	add_ext(&b, PROTO_DSTOPTS, 2);	/* 24 bytes */
	add_ext(&b, PROTO_TCP, 1);	/* 16 bytes */
	add_tcp(&b, 6, FLAG_PSH_ACK, ehlo, strlen(ehlo));
	finish_v6(&b);
	assert_int_equal(parse(b.b, b.len, &p), 0);
	assert_int_equal(p.dport, 25);
	assert_ptr_equal(p.payload, b.b + 40 + 8 + 24 + 16 + 24);
	assert_int_equal(p.payload_len, strlen(ehlo));
	assert_memory_equal(p.payload, ehlo, strlen(ehlo));
}

static void
endless_extension_header_chain_is_refused(void **state)
{
	struct built b;
	struct pkt p;

	(void)state;
	/* Eight headers are walked; a ninth is refused. */
	for (int n = 8; n <= 9; n++) {
		start_v6(&b, PROTO_DSTOPTS);
		for (int i = 1; i < n; i++)
			add_ext(&b, PROTO_DSTOPTS, 0);
		add_ext(&b, PROTO_TCP, 0);
		add_tcp(&b, 5, FLAG_SYN, NULL, 0);
		finish_v6(&b);
		if (n == 8)
			assert_int_equal(parse(b.b, b.len, &p), 0);
		else
			assert_refused(b.b, b.len);
	}
}

static void
fragments_are_refused(void **state)
{
	struct built b;

	(void)state;
	start_v4(&b, 5, PROTO_TCP);
	add_tcp(&b, 5, FLAG_SYN, NULL, 0);
	finish_v4(&b);
	b.b[6] = 0x20;	/* more fragments */
	assert_refused(b.b, b.len);
	b.b[6] = 0x00;
	b.b[7] = 0x10;	/* a later fragment: offset 128 */
	assert_refused(b.b, b.len);
	b.b[7] = 0x00;
	b.b[6] = 0x40;	/* don't fragment is fine */
	struct pkt p;
	assert_int_equal(parse(b.b, b.len, &p), 0);

	start_v6(&b, PROTO_FRAGMENT);
	add_ext(&b, PROTO_TCP, 0);
	add_tcp(&b, 5, FLAG_SYN, NULL, 0);
	finish_v6(&b);
	assert_refused(b.b, b.len);
}

static void
non_tcp_is_refused(void **state)
{
	struct built b;

	(void)state;
	start_v4(&b, 5, PROTO_UDP);
	add_tcp(&b, 5, 0, NULL, 0);	/* 20 bytes that would parse as TCP */
	finish_v4(&b);
	assert_refused(b.b, b.len);
	start_v6(&b, PROTO_ICMPV6);
	add_tcp(&b, 5, 0, NULL, 0);
	finish_v6(&b);
	assert_refused(b.b, b.len);
	start_v6(&b, PROTO_HOPOPTS);
	add_ext(&b, PROTO_UDP, 0);
	add_tcp(&b, 5, 0, NULL, 0);
	finish_v6(&b);
	assert_refused(b.b, b.len);
}

static void
every_truncation_is_refused(void **state)
{
	struct built v4, v6;

	(void)state;
	ehlo_segments(&v4, &v6);
	for (size_t n = 0; n < v4.len; n++)
		assert_refused(v4.b, n);
	for (size_t n = 0; n < v6.len; n++)
		assert_refused(v6.b, n);
}

/*
 * The audit tap's copies end at its snaplen: cut anywhere in the payload,
 * a copy decodes to the payload it holds; cut in a header, it is refused.
 * A queued packet is never taken cut.
 */
static void
copies_cut_in_the_payload_decode_to_what_they_hold(void **state)
{
	struct built v4, v6, *all[] = { &v4, &v6 };
	struct pkt p;

	(void)state;
	ehlo_segments(&v4, &v6);
	for (size_t k = 0; k < 2; k++) {
		struct built *b = all[k];
		size_t headers = b->tcp_off + 32;

		for (size_t n = 0; n <= b->len; n++) {
			int r = parse_with(pkt_parse_copy, b->b, n, &p);

			if (n < headers) {
				assert_int_equal(r, -1);
				assert_int_equal(errno, EINVAL);
				continue;
			}
			assert_int_equal(r, 0);
			assert_int_equal(p.sport, 40001);
			assert_int_equal(p.dport, 25);
			assert_int_equal(p.payload_len, n - headers);
			assert_ptr_equal(p.payload, b->b + headers);
			assert_memory_equal(p.payload, ehlo, p.payload_len);
			if (n < b->len)
				assert_int_equal(parse(b->b, n, &p), -1);
		}
	}
}

static void
lying_lengths_are_refused(void **state)
{
	struct built b;

	(void)state;
	start_v4(&b, 5, PROTO_TCP);
	add_tcp(&b, 5, FLAG_SYN, NULL, 0);
	finish_v4(&b);
	b.b[0] = 0x44;		/* IHL 4: shorter than the fixed header */
	assert_refused(b.b, b.len);
	b.b[0] = 0x4f;		/* IHL 15: past the total length */
	assert_refused(b.b, b.len);
	b.b[0] = 0x45;
	put16(b.b + 2, 30);	/* total length inside the TCP header */
	assert_refused(b.b, b.len);
	put16(b.b + 2, 10);	/* total length inside the IP header */
	assert_refused(b.b, b.len);
	finish_v4(&b);
	b.b[b.tcp_off + 12] = 0x40;	/* data offset 4 */
	assert_refused(b.b, b.len);
	b.b[b.tcp_off + 12] = 0x60;	/* data offset 6: past the end */
	assert_refused(b.b, b.len);

	start_v6(&b, PROTO_TCP);
	add_tcp(&b, 5, FLAG_SYN, NULL, 0);
	finish_v6(&b);
	put16(b.b + 4, 21);	/* payload length one byte past the buffer */
	assert_refused(b.b, b.len);
	put16(b.b + 4, 19);	/* payload length inside the TCP header */
	assert_refused(b.b, b.len);

	start_v6(&b, PROTO_DSTOPTS);
	add_ext(&b, PROTO_TCP, 0);
	add_tcp(&b, 5, FLAG_SYN, NULL, 0);
	finish_v6(&b);
	b.b[41] = 4;		/* extension header claims 40 bytes of 28 */
	assert_refused(b.b, b.len);
}

static void
garbage_is_refused(void **state)
{
	static const uint8_t zeros[64];
	uint8_t junk[64];
	struct pkt p;

	(void)state;
	assert_refused(zeros, sizeof(zeros));
	memset(junk, 0x55, sizeof(junk));	/* version 5 */
	assert_refused(junk, sizeof(junk));
	errno = 0;
	assert_int_equal(pkt_parse(NULL, 0, &p), -1);
	assert_int_equal(errno, EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ipv4_syn_to_port_25_is_decoded),
		cmocka_unit_test(ipv4_payload_starts_after_ip_and_tcp_options),
		cmocka_unit_test(ipv4_bytes_past_total_length_are_not_payload),
		cmocka_unit_test(gso_packet_with_zero_total_length_spans_the_buffer),
		cmocka_unit_test(ipv6_syn_is_decoded),
		cmocka_unit_test(ipv6_extension_headers_are_walked_to_tcp),
		cmocka_unit_test(endless_extension_header_chain_is_refused),
		cmocka_unit_test(fragments_are_refused),
		cmocka_unit_test(non_tcp_is_refused),
		cmocka_unit_test(every_truncation_is_refused),
		cmocka_unit_test(copies_cut_in_the_payload_decode_to_what_they_hold),
		cmocka_unit_test(lying_lengths_are_refused),
		cmocka_unit_test(garbage_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
