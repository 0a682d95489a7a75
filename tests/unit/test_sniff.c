/*
 * test_sniff.c — detect_any_port's recogniser: every way issue 14 carried
 * mail past "first segment begins EHLO" is SMTP now, HTTP, TLS, SSH and FTP
 * are not, and how the bytes are cut never changes the answer: each case
 * runs fed whole, a byte at a time and in odd pieces, and must agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpguard.h"
#include "tls_hello.h"


/* The first bytes of a TLS 1.3 ServerHello record. */
static const uint8_t server_hello[] = { 0x16, 0x03, 0x03, 0x00, 0x7a, 0x02, 0x00, 0x00, 0x76 };

/* A MySQL server's first bytes: packet length, sequence 0, protocol 10. */
static const uint8_t mysql_greeting[] = { 0x4a, 0x00, 0x00, 0x00, 0x0a };

enum op { FEED, END, FINISH };
struct step {
	enum op		 op;
	enum sniff_dir	 dir;
	const void	*p;
	size_t		 len;
};
#define C(s)		{ FEED, SNIFF_CLIENT, s, sizeof(s) - 1 }
#define S(s)		{ FEED, SNIFF_SERVER, s, sizeof(s) - 1 }
#define CB(a)		{ FEED, SNIFF_CLIENT, a, sizeof(a) }
#define SB(a)		{ FEED, SNIFF_SERVER, a, sizeof(a) }
#define C_END		{ END, SNIFF_CLIENT, NULL, 0 }
#define S_END		{ END, SNIFF_SERVER, NULL, 0 }
#define TIMEOUT		{ FINISH, SNIFF_CLIENT, NULL, 0 }
#define RUN(s, steps, relay) run_all(s, steps, sizeof(steps) / sizeof(steps[0]), relay)

static bool
relay_example(const char *sni, void *arg)
{
	(void)arg;
	return strcmp(sni, "mx.example.net") == 0;
}

/* Feeds every step in pieces of `piece` bytes (0: whole), from a heap copy ASan watches. */
static enum sniff_result
run(struct sniff *s, const struct step *st, size_t n, size_t piece, sniff_relay_fn relay)
{
	enum sniff_result r = SNIFF_MORE;

	sniff_init(s, relay, NULL);
	for (size_t i = 0; i < n; i++) {
		if (st[i].op == END) {
			r = sniff_end(s, st[i].dir);
			continue;
		}
		if (st[i].op == FINISH) {
			r = sniff_finish(s);
			continue;
		}
		for (size_t off = 0; off < st[i].len; ) {
			size_t k = piece == 0 || piece > st[i].len - off ? st[i].len - off : piece;
			uint8_t *copy = malloc(k);
			enum sniff_result now;

			assert_non_null(copy);
			memcpy(copy, (const uint8_t *)st[i].p + off, k);
			now = sniff_feed(s, st[i].dir, copy, k);
			free(copy);
			/* Decided stays decided. */
			assert_true(r == SNIFF_MORE || now == r);
			r = now;
			off += k;
		}
	}
	assert_int_equal(r, s->result);
	return r;
}

/* Whole, a byte at a time, and cut in 2, 3 and 7: one answer, one record of what was seen. */
static enum sniff_result
run_all(struct sniff *s, const struct step *st, size_t n, sniff_relay_fn relay)
{
	static const size_t pieces[] = { 1, 2, 3, 7 };
	static struct sniff other;
	enum sniff_result r = run(s, st, n, 0, relay);

	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		assert_int_equal(run(&other, st, n, pieces[i], relay), r);
		assert_ptr_equal(other.why, s->why);
		assert_ptr_equal(other.verb, s->verb);
		assert_string_equal(other.first, s->first);
		assert_string_equal(other.info.helo, s->info.helo);
		assert_string_equal(other.info.mail_from, s->info.mail_from);
		assert_string_equal(other.info.tls_sni, s->info.tls_sni);
		assert_string_equal(other.info.reply, s->info.reply);
		assert_int_equal(other.info.nrcpt, s->info.nrcpt);
		assert_int_equal(other.info.bytes, s->info.bytes);
		assert_int_equal(other.side[SNIFF_SERVER].bytes, s->side[SNIFF_SERVER].bytes);
		for (int d = 0; d < 2; d++)
			assert_int_equal(sniff_wants(&other, d), sniff_wants(s, d));
	}
	return r;
}

static void
noop_first_is_smtp(void **state)
{
	static const struct step named[] = {
		S("220 mx.test ESMTP sgprobe\r\n"), C("NOOP\r\nEHLO x\r\n"),
	};
	/* A bare banner: the MTA's answer to NOOP carries an RFC 3463 code. */
	static const struct step bare[] = {
		C("NOOP\r\n"), S("220 mx.test\r\n"), S("250 2.0.0 Ok\r\n"),
	};
	/* Exim answers NOOP with a plain 250: then its next command tells. */
	static const struct step exim[] = {
		S("220 mx.test\r\n"), C("NOOP\r\n"), S("250 OK\r\n"),
		C("MAIL FROM:<bot@example.org>\r\n"),
	};
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, named, NULL), SNIFF_SMTP);
	assert_string_equal(s.why, "the greeting names SMTP");
	assert_string_equal(s.info.proto, "smtp");
	assert_string_equal(s.info.reply, "220 mx.test ESMTP sgprobe");
	assert_int_equal(RUN(&s, bare, NULL), SNIFF_SMTP);
	assert_string_equal(s.why, "a reply with an enhanced status code");
	assert_string_equal(s.first, "NOOP");
	assert_int_equal(RUN(&s, exim, NULL), SNIFF_SMTP);
	assert_string_equal(s.verb, "MAIL");
	assert_string_equal(s.info.mail_from, "bot@example.org");
}

static void
empty_lines_and_white_space_first_are_smtp(void **state)
{
	static const struct step st[] = { C("\r\n\n\r  \t\r\n   EHLO spam.example\r\n") };
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, st, NULL), SNIFF_SMTP);
	assert_string_equal(s.verb, "EHLO");
	assert_string_equal(s.info.helo, "spam.example");
	assert_string_equal(s.first, "EHLO spam.example");
}

static void
ehlo_split_over_two_segments_is_smtp(void **state)
{
	static const struct step st[] = {
		C("EH"), S("220 mx.test\r\n"), C("LO x\r\n"),
	};
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, st, NULL), SNIFF_SMTP);
	assert_string_equal(s.info.helo, "x");
}

static void
a_tab_after_the_verb_and_any_case_are_smtp(void **state)
{
	static const struct step tab[] = { C("EHLO\tx\r\n") };
	static const struct step lower[] = { C("mail\tfrom :<a@example.org>\n") };
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, tab, NULL), SNIFF_SMTP);
	assert_string_equal(s.info.helo, "x");
	assert_int_equal(RUN(&s, lower, NULL), SNIFF_SMTP);
	assert_string_equal(s.verb, "MAIL");
}

static void
a_bare_cr_or_lf_ends_a_line(void **state)
{
	/* Servers that split at a lone CR or LF see EHLO at a line start: so does this. */
	static const struct step cr[] = { C("junk\rEHLO x\r") };
	static const struct step lf[] = { C("junk\nRCPT TO:<v@example.net>\n") };
	static const struct step mid[] = { C("junk EHLO x\r\n") };
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, cr, NULL), SNIFF_SMTP);
	assert_int_equal(RUN(&s, lf, NULL), SNIFF_SMTP);
	assert_int_equal(RUN(&s, mid, NULL), SNIFF_MORE);	/* not at a line start: no command */
}

static void
mail_from_without_greeting_or_helo_is_smtp(void **state)
{
	static const struct step st[] = { C("MAIL FROM:<bot@example.org>\r\n") };
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, st, NULL), SNIFF_SMTP);
	assert_string_equal(s.info.mail_from, "bot@example.org");
	assert_true(!sniff_wants(&s, SNIFF_CLIENT) && !sniff_wants(&s, SNIFF_SERVER));
}

static void
a_pipelined_burst_is_smtp_and_its_envelope_kept(void **state)
{
	static const struct step st[] = {
		C("EHLO bot.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
		    "RCPT TO:<c@example.net>\r\nDATA\r\nSubject: hi\r\n\r\nbuy\r\n.\r\nQUIT\r\n"),
	};
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, st, NULL), SNIFF_SMTP);
	assert_string_equal(s.verb, "EHLO");
	assert_string_equal(s.info.helo, "bot.example");
	assert_string_equal(s.info.mail_from, "a@example.org");
	assert_int_equal(s.info.nrcpt, 2);
	assert_string_equal(s.info.rcpt_to[1], "c@example.net");
}

static void
ehlo_in_the_syn_payload_is_smtp(void **state)
{
	/* TCP Fast Open: the SYN's payload is the client's first bytes, before any reply. */
	static const struct step st[] = { C("EHLO tfo.example\r\n") };
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, st, NULL), SNIFF_SMTP);
	assert_int_equal(s.info.bytes, 18);
}

static void
a_greeting_alone_decides_or_fails_closed(void **state)
{
	static const struct step named[] = { S("220-mx.test\r\n220-\r\n220 ready, Esmtp here\r\n") };
	static const struct step refused[] = { S("554 5.7.1 no service for you\r\n") };
	static const struct step bare[] = { S("220 mx.test\r\n") };
	static const struct step idle[] = { S("220 mx.test\r\n"), TIMEOUT };
	static const struct step hangup[] = { S("421 mx.test busy\r\n"), S_END };
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, named, NULL), SNIFF_SMTP);
	assert_int_equal(RUN(&s, refused, NULL), SNIFF_SMTP);
	/* keepalive and idle before EHLO: undecided, then the state expires */
	assert_int_equal(RUN(&s, bare, NULL), SNIFF_MORE);
	assert_true(sniff_wants(&s, SNIFF_CLIENT) && sniff_wants(&s, SNIFF_SERVER));
	assert_int_equal(RUN(&s, idle, NULL), SNIFF_SMTP);
	assert_string_equal(s.why, "a greeting nothing refuted: fails closed");
	assert_int_equal(RUN(&s, hangup, NULL), SNIFF_SMTP);
}

static void
a_host_named_smtp_is_not_a_greeting_naming_smtp(void **state)
{
	static const struct step st[] = { S("220 smtp.example.net FTP server (gsmtp-ftpd) ready\r\n") };
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, st, NULL), SNIFF_MORE);
}

static void
ftp_server_and_ftp_client_pass(void **state)
{
	static const struct step st[] = {
		S("220 (vsFTPd 3.0.5)\r\n"), C("USER anonymous\r\n"),
		S("331 Please specify the password.\r\n"),
	};
	static const struct step feat[] = {
		S("220-FileZilla Server 1.8\r\n220 Please visit https://filezilla-project.org/\r\n"),
		C("AUTH TLS\r\n"), S("234 Using authentication type TLS.\r\n"),
	};
	/* The client's FTP verbs prove nothing: only the server's answer does. */
	static const struct step mta[] = {
		S("220 mx.test\r\n"), C("USER anonymous\r\n"), S("502 command not implemented\r\n"),
		C("EHLO x\r\n"),
	};
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, st, NULL), SNIFF_OTHER);
	assert_string_equal(s.why, "a reply only FTP sends");
	assert_null(s.info.proto);
	assert_int_equal(RUN(&s, feat, NULL), SNIFF_OTHER);
	assert_int_equal(RUN(&s, mta, NULL), SNIFF_SMTP);
}

static void
http_passes_at_the_first_byte_of_its_response(void **state)
{
	static const struct step req[] = {
		C("GET /blob HTTP/1.1\r\nHost: 192.0.2.25\r\nUser-Agent: Python-urllib/3.11\r\n\r\n"),
	};
	static const struct step st[] = {
		C("GET /blob HTTP/1.1\r\nHost: 192.0.2.25\r\n\r\n"), S("HTTP/1.0 200 OK\r\n"),
	};
	/* Data as a word is no DATA command, a Mail header no MAIL. */
	static const struct step post[] = {
		C("POST /upload HTTP/1.1\r\nMail: x\r\nContent-Length: 40\r\n\r\nData for 2024\r\n"
		    "mail from the admin\r\n"), S("HTTP/1.1 100 Continue\r\n"),
	};
	/* An HTTP request line does not hide the EHLO after it. */
	static const struct step prefixed[] = { C("GET / HTTP/1.0\r\n\r\nEHLO x\r\n") };
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, req, NULL), SNIFF_MORE);
	/* Still read: an EHLO could follow the request. */
	assert_true(sniff_wants(&s, SNIFF_CLIENT) && sniff_wants(&s, SNIFF_SERVER));
	assert_int_equal(RUN(&s, st, NULL), SNIFF_OTHER);
	assert_string_equal(s.why, "the server's first bytes are no greeting");
	assert_string_equal(s.first, "GET /blob HTTP/1.1");
	assert_int_equal(RUN(&s, post, NULL), SNIFF_OTHER);
	assert_int_equal(RUN(&s, prefixed, NULL), SNIFF_SMTP);
}

static void
an_http_upload_past_the_bound_waits_for_the_server(void **state)
{
	static char body[SNIFF_CLIENT_MAX + 3000];
	struct step st[] = {
		C("POST /upload HTTP/1.1\r\nHost: x\r\n\r\n"), { FEED, SNIFF_CLIENT, body, sizeof(body) },
		S("HTTP/1.1 201 Created\r\n"),
	};
	struct sniff s;

	(void)state;
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)('a' + i % 26);
	/* No greeting: past its bound the client is no longer read, the server decides. */
	assert_int_equal(run_all(&s, st, 2, NULL), SNIFF_MORE);
	assert_false(sniff_wants(&s, SNIFF_CLIENT));
	assert_true(sniff_wants(&s, SNIFF_SERVER));
	assert_int_equal(s.info.bytes, SNIFF_CLIENT_MAX);
	assert_int_equal(run_all(&s, st, 3, NULL), SNIFF_OTHER);
}

static void
tls_passes_at_the_server_hello_and_its_sni_is_kept(void **state)
{
	static const struct step hello_only[] = { CB(tls_client_hello) };
	static const struct step st[] = { CB(tls_client_hello), SB(server_hello) };
	/* A ClientHello does not hide the commands after it... */
	static const struct step ehlo_after[] = { CB(tls_client_hello), C("\r\nEHLO x\r\n") };
	/* ...nor from an MTA's greeting. */
	static const struct step to_mta[] = { CB(tls_client_hello), S("220 mx.test\r\n"), S("500 5.5.2 what?\r\n") };
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, hello_only, NULL), SNIFF_MORE);
	assert_string_equal(s.info.tls_sni, "mx.example.net");
	assert_true(s.tls_done);
	assert_true(sniff_wants(&s, SNIFF_SERVER));
	assert_int_equal(RUN(&s, st, NULL), SNIFF_OTHER);
	assert_string_equal(s.info.tls_sni, "mx.example.net");
	assert_string_equal(s.first, "");
	assert_int_equal(RUN(&s, ehlo_after, NULL), SNIFF_SMTP);
	assert_string_equal(s.verb, "EHLO");
	assert_int_equal(RUN(&s, to_mta, NULL), SNIFF_SMTP);
	assert_string_equal(s.why, "a reply with an enhanced status code");
}

static void
tls_to_a_mail_relay_is_smtp_tls_at_its_hello(void **state)
{
	static const struct step st[] = { CB(tls_client_hello) };
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, st, relay_example), SNIFF_SMTP_TLS);
	assert_string_equal(s.info.proto, "smtp-tls");
	assert_string_equal(s.info.tls_sni, "mx.example.net");
}

static void
ssh_and_other_server_first_protocols_pass(void **state)
{
	static const struct step ssh[] = { C("SSH-2.0-OpenSSH_9.2\r\n"), S("SSH-2.0-OpenSSH_9.2\r\n") };
	static const struct step pop[] = { S("+OK POP3 ready\r\n") };
	static const struct step mysql[] = { SB(mysql_greeting) };
	static const struct step cut[] = { S("22"), S_END };
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, ssh, NULL), SNIFF_OTHER);
	assert_int_equal(RUN(&s, pop, NULL), SNIFF_OTHER);
	assert_int_equal(RUN(&s, mysql, NULL), SNIFF_OTHER);
	assert_int_equal(RUN(&s, cut, NULL), SNIFF_OTHER);
}

static void
nul_bytes_and_overlong_lines_hide_no_command(void **state)
{
	static char overlong[SMTP_LINE_MAX + 500];
	static const struct step nul[] = { C("\0\0\0junk\0\r\nEHLO x\r\n") };
	struct step longline[] = {
		{ FEED, SNIFF_CLIENT, overlong, sizeof(overlong) }, C("\r\nRCPT TO:<v@example.net>\r\n"),
	};
	struct sniff s;

	(void)state;
	memset(overlong, 'x', sizeof(overlong));
	assert_int_equal(RUN(&s, nul, NULL), SNIFF_SMTP);
	assert_string_equal(s.first, "   junk ");	/* NULs kept as spaces */
	assert_int_equal(run_all(&s, longline, 2, NULL), SNIFF_SMTP);
	assert_string_equal(s.verb, "RCPT");
}

static void
junk_past_the_bound_after_a_greeting_fails_closed(void **state)
{
	static char junk[SNIFF_CLIENT_MAX + 10];
	struct step st[] = { S("220 mx.test\r\n"), { FEED, SNIFF_CLIENT, junk, sizeof(junk) } };
	struct step later[] = { { FEED, SNIFF_CLIENT, junk, sizeof(junk) }, S("220 mx.test\r\n") };
	/* Decided at the greeting's fourth byte: an FTP code after it comes too late. */
	struct step ftp_late[] = {
		{ FEED, SNIFF_CLIENT, junk, sizeof(junk) }, S("220 ftp\r\n331 ok\r\n"),
	};
	struct sniff s;

	(void)state;
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = i % 60 == 59 ? '\n' : 'q';
	assert_int_equal(run_all(&s, st, 2, NULL), SNIFF_SMTP);
	assert_string_equal(s.why, "a greeting, then client bytes past the bound: fails closed");
	assert_int_equal(run_all(&s, later, 2, NULL), SNIFF_SMTP);
	assert_int_equal(run_all(&s, ftp_late, 2, NULL), SNIFF_SMTP);
	assert_int_equal(s.side[SNIFF_SERVER].bytes, 4);
}

static void
a_greeting_longer_than_the_bound_fails_closed(void **state)
{
	static char banner[SNIFF_SERVER_MAX + 10];
	struct step st[] = { { FEED, SNIFF_SERVER, banner, sizeof(banner) } };
	struct sniff s;

	(void)state;
	for (size_t i = 0; i < sizeof(banner); i++)
		banner[i] = i % 40 < 4 ? "220-"[i % 40] : i % 40 == 39 ? '\n' : 'w';
	assert_int_equal(run_all(&s, st, 1, NULL), SNIFF_SMTP);
	assert_int_equal(s.side[SNIFF_SERVER].bytes, SNIFF_SERVER_MAX);
}

static void
silence_and_a_shared_verb_fail_closed(void **state)
{
	static const struct step silent[] = { TIMEOUT };
	static const struct step quit[] = { C("QUIT\r\n"), C_END, TIMEOUT };
	static const struct step http[] = { C("GET / HTTP/1.1\r\n\r\n"), C_END, S_END };
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, silent, NULL), SNIFF_OTHER);
	assert_int_equal(RUN(&s, quit, NULL), SNIFF_SMTP);
	assert_int_equal(RUN(&s, http, NULL), SNIFF_OTHER);
	assert_string_equal(s.why, "no SMTP command and no greeting");
}

static void
a_last_line_without_its_end_is_read_at_the_close(void **state)
{
	static const struct step st[] = { C("HELO x"), C_END };
	static const struct step open[] = { C("HELO x") };
	struct sniff s;

	(void)state;
	assert_int_equal(RUN(&s, open, NULL), SNIFF_MORE);
	assert_int_equal(RUN(&s, st, NULL), SNIFF_SMTP);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(noop_first_is_smtp),
		cmocka_unit_test(empty_lines_and_white_space_first_are_smtp),
		cmocka_unit_test(ehlo_split_over_two_segments_is_smtp),
		cmocka_unit_test(a_tab_after_the_verb_and_any_case_are_smtp),
		cmocka_unit_test(a_bare_cr_or_lf_ends_a_line),
		cmocka_unit_test(mail_from_without_greeting_or_helo_is_smtp),
		cmocka_unit_test(a_pipelined_burst_is_smtp_and_its_envelope_kept),
		cmocka_unit_test(ehlo_in_the_syn_payload_is_smtp),
		cmocka_unit_test(a_greeting_alone_decides_or_fails_closed),
		cmocka_unit_test(a_host_named_smtp_is_not_a_greeting_naming_smtp),
		cmocka_unit_test(ftp_server_and_ftp_client_pass),
		cmocka_unit_test(http_passes_at_the_first_byte_of_its_response),
		cmocka_unit_test(an_http_upload_past_the_bound_waits_for_the_server),
		cmocka_unit_test(tls_passes_at_the_server_hello_and_its_sni_is_kept),
		cmocka_unit_test(tls_to_a_mail_relay_is_smtp_tls_at_its_hello),
		cmocka_unit_test(ssh_and_other_server_first_protocols_pass),
		cmocka_unit_test(nul_bytes_and_overlong_lines_hide_no_command),
		cmocka_unit_test(junk_past_the_bound_after_a_greeting_fails_closed),
		cmocka_unit_test(a_greeting_longer_than_the_bound_fails_closed),
		cmocka_unit_test(silence_and_a_shared_verb_fail_closed),
		cmocka_unit_test(a_last_line_without_its_end_is_read_at_the_close),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
