/*
 * sniff.c — whether a TCP flow to a port nobody fences speaks SMTP
 * (detect_any_port), read from the in-order bytes of both directions: the
 * caller puts each direction back in order with stream.c and feeds it here
 * as it comes, in any segmentation, the SYN's own payload (TCP Fast Open)
 * included. The answer is SMTP, SMTP over TLS to a name the caller calls a
 * mail relay, OTHER, or MORE (feed more); once given it never changes. It
 * keeps what it saw for the attempt event: the client's first line, HELO,
 * MAIL FROM, RCPT TO (through smtp_client_line), the TLS SNI, the server's greeting.
 *
 * Why the rules are shaped so. The client is the party under suspicion and
 * chooses every byte it sends; an SMTP server answers a line it does not
 * know with 500 and reads the next one (Exim allows 3 such errors, Postfix
 * 20), so nothing a client sends ever proves "not SMTP" — an HTTP request
 * line, a ClientHello, NUL bytes or junk can all be followed by EHLO. What a
 * client sends only ever proves SMTP: a command only SMTP has, anywhere in
 * its first SNIFF_CLIENT_MAX bytes. The server, when it is a real MTA, is
 * not the client's to steer: it speaks first, and its first reply is a
 * greeting: 220, or 554 (RFC 5321 3.1, 4.3.1), or 421 (4.3.2). "Not SMTP" is
 * read from the server alone: first bytes that are no such reply (HTTP/,
 * SSH-, a TLS ServerHello, +OK), or, after a 220 that FTP could also have
 * sent, a reply code only FTP uses (331 to USER, 200 to NOOP). A greeting
 * that names (E)SMTP, or a reply with an RFC 3463 status code, proves SMTP.
 * Undecided at a bound, or when the caller can wait no longer, it fails
 * closed: a greeting nobody refuted, or a command SMTP shares with FTP, is
 * SMTP. A server that lies (an attacker's own relay) is out of reach of any
 * sniffer: it could as well take the mail over HTTPS.
 *
 * It never looks at time, does no I/O and never allocates: pure.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "smtpguard.h"

#define TLS_HANDSHAKE	0x16	/* a TLS record's first byte when it carries a ClientHello */
#define REPLY_PREFIX	4	/* "220 ": three digits and a separator */

_Static_assert(SNIFF_TLS_MAX <= SNIFF_CLIENT_MAX, "a hello is read within the client's bound");

/* What may follow a verb for the line to be that command. */
enum verb_arg {
	ARG_ANY,	/* a token no other protocol's line starts with */
	ARG_NONE,	/* an English word too: the command only when alone on its line */
	ARG_FROM,	/* "FROM:" follows (RFC 5321 4.1.1.2; RFC 821 SEND, SOML, SAML) */
	ARG_TO,		/* "TO:" follows (RFC 5321 4.1.1.3) */
};

/*
 * Client verbs, case-insensitive (RFC 5321 2.4). smtp_only false: FTP has
 * the verb too (RFC 959, RFC 2228 AUTH), so it proves nothing alone.
 */
static const struct {
	const char	*name;
	bool		 smtp_only;
	enum verb_arg	 arg;
} sniff_verbs[] = {
	{ "EHLO", true, ARG_ANY }, { "HELO", true, ARG_ANY },		/* RFC 5321 4.1.1.1 */
	{ "MAIL", true, ARG_FROM }, { "RCPT", true, ARG_TO },
	{ "DATA", true, ARG_NONE }, { "RSET", true, ARG_NONE },
	{ "VRFY", true, ARG_ANY }, { "EXPN", true, ARG_ANY },
	{ "STARTTLS", true, ARG_NONE },					/* RFC 3207 */
	{ "BDAT", true, ARG_ANY },					/* RFC 3030 */
	{ "ETRN", true, ARG_ANY }, { "ATRN", true, ARG_ANY },		/* RFC 1985, 2645 */
	{ "LHLO", true, ARG_ANY },					/* LMTP, RFC 2033 */
	{ "BURL", true, ARG_ANY },					/* RFC 4468 */
	{ "XCLIENT", true, ARG_ANY }, { "XFORWARD", true, ARG_ANY },	/* Postfix */
	{ "TURN", true, ARG_NONE },					/* RFC 821 */
	{ "SEND", true, ARG_FROM }, { "SOML", true, ARG_FROM }, { "SAML", true, ARG_FROM },
	{ "NOOP", false, ARG_ANY }, { "QUIT", false, ARG_ANY },
	{ "HELP", false, ARG_ANY }, { "AUTH", false, ARG_ANY },
};

/* The replies a server may open with (RFC 5321 3.1, 4.3.1, 4.3.2; FTP's are 220 and 421). */
static const char *const greetings[] = { "220", "421", "554" };

/*
 * Reply codes FTP sends (RFC 959 4.2, 2228, 2389, 2428, 3659) and SMTP
 * never does (RFC 5321 4.2.3, 3207, 4954, 1985, 7504), 1yz included: a
 * client cannot make a real MTA send one.
 */
static const int ftp_only_codes[] = {
	200, 202, 212, 213, 215, 225, 226, 227, 228, 229, 230, 232, 234, 257,
	331, 332, 350, 425, 426, 430, 434, 532,
};

static bool
is_space(int c)
{
	/* Servers split a command at any of these (Postfix, Exim), not only at SP. */
	return c == ' ' || c == '\t' || c == '\v' || c == '\f';
}

static bool
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* A peer's line kept for the event: bounded, control bytes (NUL too) as spaces. */
static void
clean_copy(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		len = size - 1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	dst[len] = '\0';
}

static void
decide(struct sniff *s, enum sniff_result r, const char *why)
{
	if (s->result != SNIFF_MORE)
		return;
	s->result = r;
	s->why = why;
	s->info.proto = r == SNIFF_SMTP ? "smtp" : r == SNIFF_SMTP_TLS ? "smtp-tls" : NULL;
}

/* The caller can wait no longer: fail closed on what SMTP-like there was. */
static void
fail_closed(struct sniff *s)
{
	if (s->greeted)
		decide(s, SNIFF_SMTP, "a greeting nothing refuted: fails closed");
	else if (s->shared)
		decide(s, SNIFF_SMTP, "a command SMTP shares with FTP, no greeting: fails closed");
	else
		decide(s, SNIFF_OTHER, "no SMTP command and no greeting");
}

/*
 * The decisions that follow from where the two directions stand. Called
 * after every byte, so that how the bytes were cut never changes the answer.
 */
static void
settle(struct sniff *s)
{
	const struct sniff_side *c = &s->side[SNIFF_CLIENT], *sv = &s->side[SNIFF_SERVER];

	if (s->result != SNIFF_MORE)
		return;
	if (sv->full || sv->closed) {
		fail_closed(s);
		return;
	}
	/*
	 * Past its bound the client's bytes go out unread, and a greeting is
	 * there: waiting for the server to say FTP would let them reach an MTA.
	 */
	if (c->full && s->greeted)
		decide(s, SNIFF_SMTP, "a greeting, then client bytes past the bound: fails closed");
}

/* "FROM" or "TO", then optional white space and ':', after the verb. */
static bool
path_key(const char *p, size_t len, const char *key)
{
	size_t i = 0, k = strlen(key);

	while (i < len && p[i] == ' ')
		i++;
	if (len - i < k || strncasecmp(p + i, key, k) != 0)
		return false;
	i += k;
	while (i < len && p[i] == ' ')
		i++;
	return i < len && p[i] == ':';
}

static bool
verb_arg_ok(enum verb_arg a, const char *rest, size_t len)
{
	switch (a) {
	case ARG_ANY:
		return true;
	case ARG_NONE:
		return len == 0;	/* trailing white space is already gone */
	case ARG_FROM:
		return path_key(rest, len, "FROM");
	case ARG_TO:
		return path_key(rest, len, "TO");
	}
	return false;
}

/* One client line, without its line end; line may be changed in place. */
static void
client_line(struct sniff *s, char *line, size_t len)
{
	size_t n = 0;

	/* Empty lines and leading white space: a server answers 500 or skips them. */
	while (len > 0 && is_space(line[0])) {
		line++;
		len--;
	}
	while (len > 0 && is_space(line[len - 1]))
		len--;
	if (len == 0)
		return;
	if (s->first[0] == '\0' && !s->tls)
		clean_copy(s->first, sizeof(s->first), line, len);	/* not a hello's bytes */
	for (size_t i = 0; i < len; i++)
		if (is_space(line[i]))
			line[i] = ' ';	/* smtp_client_line splits at SP only */
	(void)smtp_client_line(&s->client, &s->info, line, len);
	if (s->result != SNIFF_MORE)
		return;		/* still read for the event: a pipelined MAIL FROM, RCPT TO */
	while (n < len && line[n] != ' ')
		n++;
	for (size_t i = 0; i < sizeof(sniff_verbs) / sizeof(sniff_verbs[0]); i++) {
		if (strlen(sniff_verbs[i].name) != n || strncasecmp(line, sniff_verbs[i].name, n) != 0)
			continue;
		if (!sniff_verbs[i].smtp_only)
			s->shared = true;
		else if (verb_arg_ok(sniff_verbs[i].arg, line + n, len - n)) {
			s->verb = sniff_verbs[i].name;
			decide(s, SNIFF_SMTP, "an SMTP command");
		}
		return;
	}
}

/* "220", "220 text", "220-text": the code, and the byte after it (0 at the end). */
static bool
reply_code(const char *line, size_t len, int *code, char *sep)
{
	if (len < 3 || line[0] < '1' || line[0] > '5' || !is_digit(line[1]) || !is_digit(line[2]))
		return false;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return false;
	*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	*sep = len > 3 ? line[3] : '\0';
	return true;
}

/* RFC 3463 3.1: "class.subject.detail" after the code, class = the code's first digit. */
static bool
enhanced_status(const char *line, size_t len)
{
	size_t i = REPLY_PREFIX, d;

	while (i < len && line[i] == ' ')
		i++;
	if (i >= len || line[i] != line[0] || (line[0] != '2' && line[0] != '4' && line[0] != '5'))
		return false;
	i++;
	for (int part = 0; part < 2; part++) {
		if (i >= len || line[i] != '.')
			return false;
		for (d = 0, i++; i < len && is_digit(line[i]) && d < 4; i++)
			d++;
		if (d == 0 || d > 3)
			return false;
	}
	return i == len || line[i] == ' ';
}

/* Host-name bytes: a word of the greeting is a run of them. */
static bool
word_byte(int c)
{
	return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '.' || c == '-' ||
	    c == '_';
}

/* A word "SMTP" or "ESMTP" (any case); host names like smtp.example.net are not. */
static bool
names_smtp(const char *line, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t start;

		while (i < len && !word_byte(line[i]))
			i++;
		start = i;
		while (i < len && word_byte(line[i]))
			i++;
		if ((i - start == 4 && strncasecmp(line + start, "SMTP", 4) == 0) ||
		    (i - start == 5 && strncasecmp(line + start, "ESMTP", 5) == 0))
			return true;
	}
	return false;
}

static bool
ftp_only(int code)
{
	if (code < 200)
		return true;
	for (size_t i = 0; i < sizeof(ftp_only_codes) / sizeof(ftp_only_codes[0]); i++)
		if (ftp_only_codes[i] == code)
			return true;
	return false;
}

/* One server line; index 0 is the greeting's first. */
static void
server_line(struct sniff *s, const char *line, size_t len, size_t index)
{
	int code = 0;
	char sep = '\0';
	bool reply = reply_code(line, len, &code, &sep);

	if (index == 0)
		clean_copy(s->info.reply, sizeof(s->info.reply), line, len);
	if (!s->greeting_done) {
		/* Every line of a multi-line greeting, FTP's free text lines too. */
		if (names_smtp(line, len))
			decide(s, SNIFF_SMTP, "the greeting names SMTP");
		if (reply && sep != '-')
			s->greeting_done = true;
	}
	if (!reply)
		return;
	if (enhanced_status(line, len))
		decide(s, SNIFF_SMTP, "a reply with an enhanced status code");
	else if (index > 0 && ftp_only(code))
		decide(s, SNIFF_OTHER, "a reply only FTP sends");
}

static void
end_line(struct sniff *s, enum sniff_dir dir)
{
	struct sniff_side *sd = &s->side[dir];

	/* An overlong line is judged by its first SMTP_LINE_MAX bytes: its verb is there. */
	if (dir == SNIFF_CLIENT)
		client_line(s, sd->line, sd->len);
	else
		server_line(s, sd->line, sd->len, sd->lines);
	sd->lines++;
	sd->len = 0;
	sd->overlong = false;
}

/*
 * Lines end at LF, CRLF or a lone CR: a server that splits at any of them
 * (RFC 5321 2.3.8 asks for CRLF, servers take bare LF) never sees a line
 * start this reader missed.
 */
static void
line_byte(struct sniff *s, enum sniff_dir dir, uint8_t c)
{
	struct sniff_side *sd = &s->side[dir];

	if (sd->cr && c == '\n') {
		sd->cr = false;
		return;
	}
	sd->cr = false;
	if (c == '\r' || c == '\n') {
		sd->cr = c == '\r';
		end_line(s, dir);
		return;
	}
	if (sd->len < SMTP_LINE_MAX)
		sd->line[sd->len++] = (char)c;	/* NUL too: it ends nothing and proves nothing */
	else
		sd->overlong = true;
}

/* The ClientHello was read, or never will be: a relay's name decides. */
static void
tls_read(struct sniff *s, int sni)
{
	s->tls_done = true;
	if (sni == 0 && s->relay != NULL && s->relay(s->info.tls_sni, s->relay_arg))
		decide(s, SNIFF_SMTP_TLS, "TLS to a mail relay's name");
}

static bool
tls_answers(struct sniff *s, size_t len)
{
	return tls_sni(s->tls_buf, len, s->info.tls_sni, sizeof(s->info.tls_sni)) == 0 ||
	    errno != EAGAIN;
}

/*
 * A client that opened with a TLS record: its bytes are kept until tls.c can
 * answer. Returns how many of these len bytes it took to answer (the answer
 * is then in *sni), or 0 if it still cannot. The answering byte is found by
 * bisection (a prefix too short always says EAGAIN), so it does not depend
 * on how the hello was cut.
 */
static size_t
tls_take(struct sniff *s, const uint8_t *p, size_t len, int *sni)
{
	size_t old = s->tls_len, lo, hi;

	if (len > SNIFF_TLS_MAX - old)
		len = SNIFF_TLS_MAX - old;
	if (len == 0)
		return 0;
	memcpy(s->tls_buf + old, p, len);
	s->tls_len = old + len;
	if (!tls_answers(s, s->tls_len)) {
		if (s->tls_len < SNIFF_TLS_MAX)
			return 0;
		*sni = -1;	/* longer than any real hello: no name */
		return len;
	}
	for (lo = old + 1, hi = s->tls_len; lo < hi; ) {
		size_t mid = lo + (hi - lo) / 2;

		if (tls_answers(s, mid))
			hi = mid;
		else
			lo = mid + 1;
	}
	s->tls_len = lo;
	*sni = tls_sni(s->tls_buf, lo, s->info.tls_sni, sizeof(s->info.tls_sni));
	return lo - old;
}

/* False when the server's first bytes cannot be a greeting. */
static bool
greeting_byte(struct sniff *s, uint8_t c)
{
	const struct sniff_side *sd = &s->side[SNIFF_SERVER];
	size_t pos = sd->bytes;

	if (pos == REPLY_PREFIX - 1)
		return c == ' ' || c == '-' || c == '\r' || c == '\n';
	for (size_t i = 0; i < sizeof(greetings) / sizeof(greetings[0]); i++)
		if (memcmp(greetings[i], sd->line, pos) == 0 && greetings[i][pos] == (char)c)
			return true;
	return false;
}

static void
server_byte(struct sniff *s, uint8_t c)
{
	if (s->side[SNIFF_SERVER].bytes < REPLY_PREFIX) {
		if (!greeting_byte(s, c)) {
			decide(s, SNIFF_OTHER, "the server's first bytes are no greeting");
			return;
		}
		if (s->side[SNIFF_SERVER].bytes == REPLY_PREFIX - 1)
			s->greeted = true;
	}
	line_byte(s, SNIFF_SERVER, c);
}

void
sniff_init(struct sniff *s, sniff_relay_fn relay, void *relay_arg)
{
	memset(s, 0, sizeof(*s));
	s->relay = relay;
	s->relay_arg = relay_arg;
}

/*
 * In-order bytes of one direction. After a decision the client's lines are
 * still read, within the bound, for the event; nothing else changes.
 */
enum sniff_result
sniff_feed(struct sniff *s, enum sniff_dir dir, const uint8_t *p, size_t len)
{
	struct sniff_side *sd = &s->side[dir];
	size_t bound = dir == SNIFF_CLIENT ? SNIFF_CLIENT_MAX : SNIFF_SERVER_MAX, hello = 0;
	int sni = -1;

	if (dir == SNIFF_CLIENT && sd->bytes == 0 && len > 0 && p[0] == TLS_HANDSHAKE)
		s->tls = true;
	/*
	 * A ClientHello's bytes are read as lines too, and so is what follows
	 * it: a hello does not hide an EHLO after it. Its answer lands on the
	 * byte that completed it, in line with the lines around it.
	 */
	if (dir == SNIFF_CLIENT && s->tls && !s->tls_done && !sd->full && !sd->closed)
		hello = tls_take(s, p, len, &sni);
	for (size_t i = 0; i < len; i++) {
		if (sd->full || sd->closed || (dir == SNIFF_SERVER && s->result != SNIFF_MORE))
			break;
		if (dir == SNIFF_CLIENT)
			line_byte(s, SNIFF_CLIENT, p[i]);
		else
			server_byte(s, p[i]);
		if (i + 1 == hello)
			tls_read(s, sni);
		if (++sd->bytes == bound && !sd->full) {
			if (sd->len > 0 && !(dir == SNIFF_SERVER && s->result != SNIFF_MORE))
				end_line(s, dir);	/* the line the bound cuts */
			sd->full = true;
		}
		settle(s);
	}
	s->info.bytes = s->side[SNIFF_CLIENT].bytes;
	return s->result;
}

/* One direction ended (FIN, RST, or a gap stream.c cannot fill). */
enum sniff_result
sniff_end(struct sniff *s, enum sniff_dir dir)
{
	struct sniff_side *sd = &s->side[dir];

	if (sd->closed)
		return s->result;
	if (sd->len > 0 && !sd->full && !(dir == SNIFF_SERVER && s->result != SNIFF_MORE))
		end_line(s, dir);	/* a last line without its line end */
	if (dir == SNIFF_CLIENT && s->tls && !s->tls_done)
		tls_read(s, tls_sni(s->tls_buf, s->tls_len, s->info.tls_sni,
		    sizeof(s->info.tls_sni)));
	sd->closed = true;
	settle(s);
	return s->result;
}

/* The caller can wait no longer (the flow's state expires): decide now, failing closed. */
enum sniff_result
sniff_finish(struct sniff *s)
{
	fail_closed(s);
	return s->result;
}

/* Whether bytes of this direction can still change the answer. */
bool
sniff_wants(const struct sniff *s, enum sniff_dir dir)
{
	return s->result == SNIFF_MORE && !s->side[dir].full && !s->side[dir].closed;
}

const char *
sniff_result_name(enum sniff_result r)
{
	switch (r) {
	case SNIFF_MORE:
		return "more";
	case SNIFF_SMTP:
		return "smtp";
	case SNIFF_SMTP_TLS:
		return "smtp-tls";
	case SNIFF_OTHER:
		return "other";
	}
	return "?";
}
