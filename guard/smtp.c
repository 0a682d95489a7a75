/*
 * smtp.c — the client's side of an SMTP session, fed as it arrives in
 * chunks of any size: lines framed by CRLF (or a bare LF) under a hard
 * maximum, commands dispatched through a verb table (OpenSMTPD's way), the
 * envelope recorded into struct smtp_info. Audit mode reads a session
 * passively and stops where inspection must end (DATA, STARTTLS, QUIT);
 * it assumes the real server accepted every well-formed command. Trap mode
 * plays the server's part: every complete command becomes an event (verb +
 * what to answer), the AUTH dialogue and DATA are followed, and the message
 * headers worth logging are decoded (RFC 5322 unfolding, RFC 2047 words,
 * dot-unstuffing) up to the "." that ends the message.
 *
 * It never keeps a password: AUTH lines are decoded into a scratch buffer,
 * only the user name is copied out, and every line buffer is wiped once
 * read. It never answers, logs or allocates: pure, no I/O.
 */
#include <string.h>
#include <strings.h>

#include "smtpguard.h"

#define SMTP_VERB_MAX		8	/* "STARTTLS", the longest verb we know */
#define SMTP_MECH_MAX		20	/* RFC 4422 3.1: SASL mechanism names */
#define SMTP_B64_MAX		(SMTP_LINE_MAX / 4 * 3 + 3)	/* one line of base64, decoded */
#define SMTP_CHARSET_MAX	40	/* "windows-1252*en"; IANA names are shorter */
#define UTF8_REPLACEMENT	0xfffd

typedef enum smtp_status (*smtp_handler)(struct smtp_parser *, const char *, size_t);

static enum smtp_status	cmd_helo(struct smtp_parser *, const char *, size_t);
static enum smtp_status	cmd_mail(struct smtp_parser *, const char *, size_t);
static enum smtp_status	cmd_rcpt(struct smtp_parser *, const char *, size_t);
static enum smtp_status	cmd_data(struct smtp_parser *, const char *, size_t);
static enum smtp_status	cmd_rset(struct smtp_parser *, const char *, size_t);
static enum smtp_status	cmd_noop(struct smtp_parser *, const char *, size_t);
static enum smtp_status	cmd_quit(struct smtp_parser *, const char *, size_t);
static enum smtp_status	cmd_starttls(struct smtp_parser *, const char *, size_t);
static enum smtp_status	cmd_auth(struct smtp_parser *, const char *, size_t);

static const struct {
	const char	*name;
	enum smtp_verb	 verb;
	smtp_handler	 handler;
} smtp_verbs[] = {
	{ "HELO",	SMTP_HELO,	cmd_helo },
	{ "EHLO",	SMTP_EHLO,	cmd_helo },
	{ "MAIL",	SMTP_MAIL,	cmd_mail },
	{ "RCPT",	SMTP_RCPT,	cmd_rcpt },
	{ "DATA",	SMTP_DATA,	cmd_data },
	{ "RSET",	SMTP_RSET,	cmd_rset },
	{ "NOOP",	SMTP_NOOP,	cmd_noop },
	{ "QUIT",	SMTP_QUIT,	cmd_quit },
	{ "STARTTLS",	SMTP_STARTTLS,	cmd_starttls },
	{ "AUTH",	SMTP_AUTH,	cmd_auth },
	/* Answered, never acted on. */
	{ "VRFY",	SMTP_VRFY,	cmd_noop },
	{ "EXPN",	SMTP_EXPN,	cmd_noop },
	{ "HELP",	SMTP_HELP,	cmd_noop },
};

/* The message headers kept; the first occurrence of each wins. */
static const struct {
	const char	*name;
	size_t		 offset;
} smtp_headers[] = {
	{ "Subject",			offsetof(struct smtp_info, subject) },
	{ "From",			offsetof(struct smtp_info, header_from) },
	{ "To",				offsetof(struct smtp_info, header_to) },
	{ "Message-ID",			offsetof(struct smtp_info, message_id) },
	{ "X-Mailer",			offsetof(struct smtp_info, x_mailer) },
	{ "X-PHP-Originating-Script",	offsetof(struct smtp_info, php_script) },
};

/* windows-1252's 0x80-0x9f; 0 where it defines nothing. */
static const uint16_t cp1252_high[32] = {
	0x20ac, 0, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017d, 0,
	0, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0, 0x017e, 0x0178,
};

void
smtp_parser_init(struct smtp_parser *p, enum smtp_mode mode)
{
	memset(p, 0, sizeof(*p));
	p->mode = mode;
	p->phase = SMTP_PH_COMMAND;
}

bool
smtp_event_next(struct smtp_parser *p, struct smtp_event *ev)
{
	if (p->nev == 0)
		return false;
	*ev = p->ev[p->ev_first];
	p->ev_first = (p->ev_first + 1) % SMTP_EVENTS_MAX;
	p->nev--;
	return true;
}

/* smtp_feed() reads no byte while the queue is full, so there is always room. */
static void
push_event(struct smtp_parser *p, enum smtp_event_type type, enum smtp_verb verb,
    enum smtp_status status)
{
	struct smtp_event *ev;

	if (p->mode != SMTP_MODE_TRAP)
		return;
	ev = &p->ev[(p->ev_first + p->nev) % SMTP_EVENTS_MAX];
	ev->type = type;
	ev->verb = verb;
	ev->status = status;
	p->nev++;
}

static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static bool
is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Copies a peer's string, cut to size, control bytes shown as '?'. */
static void
copy_clean(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		len = size - 1;
	for (size_t i = 0; i < len; i++)
		dst[i] = is_ctl((unsigned char)src[i]) ? '?' : src[i];
	dst[len] = '\0';
}

static size_t
skip_spaces(const char *s, size_t len, size_t i)
{
	while (i < len && s[i] == ' ')
		i++;
	return i;
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict base64 (padding optional, nothing after it); the length, or -1. */
static long
b64_decode(const char *in, size_t len, uint8_t *out, size_t outlen)
{
	uint32_t acc = 0;
	unsigned int bits = 0;
	size_t o = 0, i;

	for (i = 0; i < len && in[i] != '='; i++) {
		int v = b64_value((unsigned char)in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == outlen)
				return -1;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	for (size_t pad = 0; i < len; i++, pad++)
		if (in[i] != '=' || pad >= 2)
			return -1;
	return (long)o;
}

/* --- commands ------------------------------------------------------------- */

/*
 * "FROM:<a@b> SIZE=10" → a@b and "SIZE=10". The brackets are required by
 * RFC 5321 but spam tools drop them, so a bare address up to a space is taken.
 */
static int
path_arg(const char *arg, size_t len, const char *key, const char **addr, size_t *alen,
    const char **params, size_t *plen)
{
	size_t k = strlen(key), i, start;

	if (len < k || strncasecmp(arg, key, k) != 0)
		return -1;
	i = skip_spaces(arg, len, k);
	if (i < len && arg[i] == '<') {
		start = ++i;
		while (i < len && arg[i] != '>')
			i++;
		if (i == len)
			return -1;
		*addr = arg + start;
		*alen = i - start;
		i++;
		if (i < len && arg[i] != ' ')
			return -1;
	} else {
		start = i;
		while (i < len && arg[i] != ' ')
			i++;
		if (i == start)
			return -1;
		*addr = arg + start;
		*alen = i - start;
	}
	i = skip_spaces(arg, len, i);
	*params = arg + i;
	*plen = len - i;
	return 0;
}

static enum smtp_status
cmd_helo(struct smtp_parser *p, const char *arg, size_t len)
{
	if (len == 0)
		return SMTP_ST_SYNTAX;
	copy_clean(p->info.helo, sizeof(p->info.helo), arg, len);
	p->greeted = true;
	p->in_mail = p->has_rcpt = false;	/* RFC 5321 4.1.4: EHLO resets the transaction */
	return SMTP_ST_OK;
}

/* The latest MAIL is kept: that is the one a DATA would have sent. */
static enum smtp_status
cmd_mail(struct smtp_parser *p, const char *arg, size_t len)
{
	const char *addr, *params;
	size_t alen, plen;

	if (path_arg(arg, len, "FROM:", &addr, &alen, &params, &plen) < 0)
		return SMTP_ST_SYNTAX;
	copy_clean(p->info.mail_from, sizeof(p->info.mail_from), addr, alen);
	copy_clean(p->info.mail_params, sizeof(p->info.mail_params), params, plen);
	if (alen >= SMTP_FIELD_MAX)
		return SMTP_ST_SYNTAX;
	if (!p->greeted || p->in_mail)
		return SMTP_ST_SEQUENCE;
	p->in_mail = true;
	return SMTP_ST_OK;
}

/* Every recipient is counted, across RSETs too: the log says what was tried. */
static enum smtp_status
cmd_rcpt(struct smtp_parser *p, const char *arg, size_t len)
{
	const char *addr, *params;
	size_t alen, plen;
	struct smtp_info *m = &p->info;

	if (path_arg(arg, len, "TO:", &addr, &alen, &params, &plen) < 0 || alen == 0)
		return SMTP_ST_SYNTAX;
	m->nrcpt++;
	if (m->nrcpt_kept < SMTP_RCPT_KEEP)
		copy_clean(m->rcpt_to[m->nrcpt_kept++], sizeof(m->rcpt_to[0]), addr, alen);
	if (alen >= SMTP_FIELD_MAX)
		return SMTP_ST_SYNTAX;
	if (!p->in_mail)
		return SMTP_ST_SEQUENCE;
	p->has_rcpt = true;
	return SMTP_ST_OK;
}

static enum smtp_status
cmd_data(struct smtp_parser *p, const char *arg, size_t len)
{
	(void)arg;
	if (len != 0)
		return SMTP_ST_SYNTAX;
	p->info.data = true;
	if (p->mode == SMTP_MODE_AUDIT) {
		p->state = SMTP_STOP_DATA;
		return SMTP_ST_OK;
	}
	if (!p->in_mail || !p->has_rcpt)
		return SMTP_ST_SEQUENCE;
	p->phase = SMTP_PH_HEADERS;
	p->crlf_before = true;
	p->hlen = 0;
	return SMTP_ST_MORE;
}

static enum smtp_status
cmd_rset(struct smtp_parser *p, const char *arg, size_t len)
{
	(void)arg;
	if (len != 0)
		return SMTP_ST_SYNTAX;
	p->in_mail = p->has_rcpt = false;
	return SMTP_ST_OK;
}

static enum smtp_status
cmd_noop(struct smtp_parser *p, const char *arg, size_t len)
{
	(void)p;
	(void)arg;
	(void)len;
	return SMTP_ST_OK;
}

static enum smtp_status
cmd_quit(struct smtp_parser *p, const char *arg, size_t len)
{
	(void)arg;
	if (len != 0)
		return SMTP_ST_SYNTAX;
	p->state = SMTP_STOP_QUIT;
	return SMTP_ST_OK;
}

/* The trap has no TLS to offer: it answers 454 and the session stays plain. */
static enum smtp_status
cmd_starttls(struct smtp_parser *p, const char *arg, size_t len)
{
	(void)arg;
	if (len != 0)
		return SMTP_ST_SYNTAX;
	p->info.starttls = true;
	if (p->mode == SMTP_MODE_AUDIT)
		p->state = SMTP_STOP_STARTTLS;
	return SMTP_ST_OK;
}

/* RFC 4616 "authzid NUL authcid NUL passwd": authcid is kept, the rest wiped. */
static enum smtp_status
auth_plain(struct smtp_parser *p, const char *b64, size_t len)
{
	uint8_t buf[SMTP_B64_MAX];
	enum smtp_status st = SMTP_ST_SYNTAX;
	const uint8_t *user, *end;
	long n;

	if ((n = b64_decode(b64, len, buf, sizeof(buf))) <= 0)
		goto done;
	if ((user = memchr(buf, '\0', (size_t)n)) == NULL)
		goto done;
	user++;
	if ((end = memchr(user, '\0', (size_t)(buf + n - user))) == NULL || end == user)
		goto done;
	copy_clean(p->info.auth_user, sizeof(p->info.auth_user), (const char *)user,
	    (size_t)(end - user));
	st = SMTP_ST_OK;
done:
	explicit_bzero(buf, sizeof(buf));
	return st;
}

static enum smtp_status
auth_login_user(struct smtp_parser *p, const char *b64, size_t len)
{
	uint8_t buf[SMTP_B64_MAX];
	long n;

	n = b64_decode(b64, len, buf, sizeof(buf));
	if (n > 0)
		copy_clean(p->info.auth_user, sizeof(p->info.auth_user), (const char *)buf,
		    (size_t)n);
	explicit_bzero(buf, sizeof(buf));
	return n > 0 ? SMTP_ST_MORE : SMTP_ST_SYNTAX;
}

static enum smtp_status
cmd_auth(struct smtp_parser *p, const char *arg, size_t len)
{
	size_t n = 0, ir;
	enum smtp_status st;

	while (n < len && arg[n] != ' ') {
		unsigned char c = (unsigned char)arg[n];

		if (!is_alpha(c) && !(c >= '0' && c <= '9') && c != '-' && c != '_')
			return SMTP_ST_SYNTAX;
		n++;
	}
	if (n == 0 || n > SMTP_MECH_MAX)
		return SMTP_ST_SYNTAX;
	copy_clean(p->info.auth_mech, sizeof(p->info.auth_mech), arg, n);
	ir = skip_spaces(arg, len, n);
	/* RFC 4954 4: AUTH after EHLO, never inside a transaction. */
	if (p->mode == SMTP_MODE_TRAP && (!p->greeted || p->in_mail))
		return SMTP_ST_SEQUENCE;
	if (n == 5 && strncasecmp(arg, "PLAIN", n) == 0) {
		if (ir < len)
			return auth_plain(p, arg + ir, len - ir);
		p->phase = SMTP_PH_AUTH_PLAIN;
		return SMTP_ST_MORE;
	}
	if (n == 5 && strncasecmp(arg, "LOGIN", n) == 0) {
		if (ir == len) {
			p->phase = SMTP_PH_AUTH_LOGIN_USER;
			return SMTP_ST_MORE;
		}
		if ((st = auth_login_user(p, arg + ir, len - ir)) == SMTP_ST_MORE)
			p->phase = SMTP_PH_AUTH_LOGIN_PASS;
		return st;
	}
	/* A passive reader cannot know how many lines another mechanism takes. */
	if (p->mode == SMTP_MODE_AUDIT)
		p->phase = SMTP_PH_AUTH_OTHER;
	return SMTP_ST_UNSUPPORTED;
}

/* A line answering a 334. The LOGIN password line is read and dropped. */
static void
auth_line(struct smtp_parser *p, const char *line, size_t len)
{
	enum smtp_phase ph = p->phase;
	enum smtp_status st = SMTP_ST_OK;

	p->phase = SMTP_PH_COMMAND;
	if (len == 1 && line[0] == '*')
		st = SMTP_ST_SYNTAX;	/* RFC 4954 4: the client cancelled */
	else if (ph == SMTP_PH_AUTH_PLAIN)
		st = auth_plain(p, line, len);
	else if (ph == SMTP_PH_AUTH_LOGIN_USER) {
		if ((st = auth_login_user(p, line, len)) == SMTP_ST_MORE)
			p->phase = SMTP_PH_AUTH_LOGIN_PASS;
	}
	push_event(p, SMTP_EV_AUTH_RESPONSE, SMTP_AUTH, st);
}

static int
find_verb(const char *line, size_t n)
{
	for (size_t i = 0; i < sizeof(smtp_verbs) / sizeof(smtp_verbs[0]); i++)
		if (strlen(smtp_verbs[i].name) == n && strncasecmp(line, smtp_verbs[i].name, n) == 0)
			return (int)i;
	return -1;
}

static void
command_line(struct smtp_parser *p, const char *line, size_t len)
{
	size_t n = 0;
	int v;

	for (size_t i = 0; i < len; i++)
		if (is_ctl((unsigned char)line[i]) && line[i] != '\t') {
			p->state = SMTP_ERROR_NOT_SMTP;	/* no command carries one */
			return;
		}
	while (n < len && line[n] != ' ')
		n++;
	v = find_verb(line, n);
	if (p->phase == SMTP_PH_AUTH_OTHER) {
		if (v < 0)
			return;		/* an answer to the server's challenge: never kept */
		p->phase = SMTP_PH_COMMAND;
	}
	p->nlines++;
	if (v < 0) {
		if (p->nlines == 1 || ++p->unknown_run > SMTP_UNKNOWN_MAX) {
			p->state = SMTP_ERROR_NOT_SMTP;
			return;
		}
		push_event(p, SMTP_EV_COMMAND, SMTP_UNKNOWN, SMTP_ST_UNKNOWN);
		return;
	}
	p->unknown_run = 0;
	n = skip_spaces(line, len, n);
	push_event(p, SMTP_EV_COMMAND, smtp_verbs[v].verb,
	    smtp_verbs[v].handler(p, line + n, len - n));
}

/* --- message headers (trap) ------------------------------------------------ */

/*
 * A header value being written: whole characters or nothing, and nothing
 * more once one did not fit, so a cut value is a prefix of the real one.
 */
struct text {
	char	*p;
	size_t	 o, size;
	bool	 full;
};

/* One character's bytes. Header text is one line: tabs become spaces, other controls '?'. */
static void
put_char(struct text *t, const uint8_t *s, size_t n)
{
	if (t->full || t->o + n >= t->size) {
		t->full = true;
		return;
	}
	for (size_t i = 0; i < n; i++)
		t->p[t->o++] = s[i] == '\t' ? ' ' : is_ctl(s[i]) ? '?' : (char)s[i];
}

/* The bytes of the UTF-8 character s starts, as its lead byte says (validity is event.c's). */
static size_t
utf8_len(const uint8_t *s, size_t left)
{
	size_t n = s[0] < 0xc0 ? 1 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;

	return n < left ? n : left;
}

static void
put_text(struct text *t, const uint8_t *s, size_t n)
{
	for (size_t i = 0, k; i < n; i += k) {
		k = utf8_len(s + i, n - i);
		put_char(t, s + i, k);
	}
}

static void
put_code_point(struct text *t, uint32_t cp)
{
	uint8_t b[3];

	if (cp < 0x80) {
		b[0] = (uint8_t)cp;
		put_char(t, b, 1);
	} else if (cp < 0x800) {
		b[0] = (uint8_t)(0xc0 | cp >> 6);
		b[1] = (uint8_t)(0x80 | (cp & 0x3f));
		put_char(t, b, 2);
	} else {
		b[0] = (uint8_t)(0xe0 | cp >> 12);
		b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
		b[2] = (uint8_t)(0x80 | (cp & 0x3f));
		put_char(t, b, 3);
	}
}

static int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool
charset_is(const char *cs, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(cs, name, len) == 0;
}

/*
 * One RFC 2047 encoded word at in[0..len): "=?charset?B|Q?text?=". On
 * success returns its length and appends its text to out; 0 if in does not
 * start with a word we decode. us-ascii and utf-8 bytes are kept as they
 * are; iso-8859-1, latin1 and windows-1252 become UTF-8 (all three read as
 * windows-1252, as browsers do); a word in any other charset is kept raw.
 */
static size_t
encoded_word(const char *in, size_t len, struct text *t)
{
	uint8_t dec[SMTP_UNFOLD_MAX];
	size_t i = 2, cs, cslen, text, n = 0;
	char enc;
	bool utf8, cp1252;

	if (len < 2 || in[0] != '=' || in[1] != '?')
		return 0;
	cs = i;
	while (i < len && in[i] != '?' && in[i] != ' ' && in[i] != '\t')
		i++;
	cslen = i - cs;
	if (i + 2 >= len || cslen == 0 || cslen > SMTP_CHARSET_MAX || in[i + 2] != '?')
		return 0;
	enc = in[i + 1];
	text = i + 3;
	for (i = text; i + 1 < len && !(in[i] == '?' && in[i + 1] == '='); i++)
		if (in[i] == ' ' || in[i] == '\t' || in[i] == '?')
			return 0;
	if (i + 1 >= len)
		return 0;
	for (size_t k = 0; k < cslen; k++)
		if (in[cs + k] == '*')
			cslen = k;	/* RFC 2231 5: "charset*language" */
	if (enc == 'B' || enc == 'b') {
		long r = b64_decode(in + text, i - text, dec, sizeof(dec));

		if (r < 0)
			return 0;
		n = (size_t)r;
	} else if (enc == 'Q' || enc == 'q') {
		for (size_t k = text; k < i && n < sizeof(dec); k++) {
			if (in[k] == '_')
				dec[n++] = ' ';
			else if (in[k] == '=') {
				int hi, lo;

				if (k + 2 >= i || (hi = hex_value((unsigned char)in[k + 1])) < 0 ||
				    (lo = hex_value((unsigned char)in[k + 2])) < 0)
					return 0;
				dec[n++] = (uint8_t)(hi << 4 | lo);
				k += 2;
			} else
				dec[n++] = (uint8_t)in[k];
		}
	} else
		return 0;
	utf8 = charset_is(in + cs, cslen, "utf-8") || charset_is(in + cs, cslen, "us-ascii");
	cp1252 = charset_is(in + cs, cslen, "iso-8859-1") ||
	    charset_is(in + cs, cslen, "latin1") || charset_is(in + cs, cslen, "windows-1252");
	if (utf8)
		put_text(t, dec, n);
	else if (cp1252) {
		for (size_t k = 0; k < n; k++)
			put_code_point(t, dec[k] < 0x80 || dec[k] >= 0xa0 ? dec[k] :
			    cp1252_high[dec[k] - 0x80] != 0 ? cp1252_high[dec[k] - 0x80] :
			    UTF8_REPLACEMENT);
	} else
		put_text(t, (const uint8_t *)in, i + 2);
	return i + 2;
}

/*
 * A header value made readable: encoded words decoded, the white space
 * between two adjacent encoded words dropped (RFC 2047 6.2), cut to size.
 * Returns the length written; out is always terminated.
 */
size_t
smtp_decode_words(const char *in, size_t len, char *out, size_t size)
{
	struct text t = { out, 0, size, false };
	size_t i = 0, ws_at = 0, w, k;
	bool after_word = false, in_ws = false;

	if (size == 0)
		return 0;
	while (i < len) {
		size_t mark = t.o;

		if (in[i] == '=' && (w = encoded_word(in + i, len - i, &t)) > 0) {
			if (after_word && in_ws) {
				/* Drop the white space: move the word back over it. */
				memmove(out + ws_at, out + mark, t.o - mark);
				t.o = ws_at + (t.o - mark);
			}
			after_word = true;
			in_ws = false;
			i += w;
			continue;
		}
		if (in[i] == ' ' || in[i] == '\t') {
			if (!in_ws)
				ws_at = t.o;
			in_ws = true;
		} else {
			after_word = false;
			in_ws = false;
		}
		k = utf8_len((const uint8_t *)in + i, len - i);
		put_char(&t, (const uint8_t *)in + i, k);
		i += k;
	}
	out[t.o] = '\0';
	return t.o;
}

static void
flush_header(struct smtp_parser *p)
{
	const char *f = p->hbuf, *colon;
	size_t len = p->hlen, nlen, v;

	p->hlen = 0;
	if ((colon = memchr(f, ':', len)) == NULL)
		return;
	nlen = (size_t)(colon - f);
	while (nlen > 0 && (f[nlen - 1] == ' ' || f[nlen - 1] == '\t'))
		nlen--;
	v = (size_t)(colon - f) + 1;
	while (v < len && (f[v] == ' ' || f[v] == '\t'))
		v++;
	while (len > v && (f[len - 1] == ' ' || f[len - 1] == '\t'))
		len--;
	for (size_t i = 0; i < sizeof(smtp_headers) / sizeof(smtp_headers[0]); i++) {
		char *dst = (char *)&p->info + smtp_headers[i].offset;

		if (strlen(smtp_headers[i].name) == nlen &&
		    strncasecmp(f, smtp_headers[i].name, nlen) == 0 && dst[0] == '\0') {
			smtp_decode_words(f + v, len - v, dst, SMTP_HEADER_MAX);
			return;
		}
	}
}

static void
header_append(struct smtp_parser *p, const char *s, size_t len)
{
	size_t room = sizeof(p->hbuf) - p->hlen;

	if (len > room)
		len = room;
	memcpy(p->hbuf + p->hlen, s, len);
	p->hlen += len;
}

/*
 * A message line after DATA's 354, CR LF removed. Only CRLF "." CRLF ends
 * the message (RFC 5321 4.1.1.4): a "." after a bare LF is message text,
 * so a client cannot end the message in one reading and not in another.
 */
static void
message_line(struct smtp_parser *p, const char *line, size_t len, bool whole, bool crlf)
{
	bool end = p->crlf_before && crlf && whole && len == 1 && line[0] == '.';

	p->crlf_before = crlf;
	if (end) {
		if (p->phase == SMTP_PH_HEADERS)
			flush_header(p);
		p->phase = SMTP_PH_COMMAND;
		p->in_mail = p->has_rcpt = false;
		push_event(p, SMTP_EV_MESSAGE_END, SMTP_DATA, SMTP_ST_OK);
		return;
	}
	if (p->phase == SMTP_PH_BODY)
		return;
	if (len > 0 && line[0] == '.') {	/* RFC 5321 4.5.2: transparency */
		line++;
		len--;
	}
	if (len > 0 && (line[0] == ' ' || line[0] == '\t')) {
		if (p->hlen > 0)
			header_append(p, line, len);	/* RFC 5322 2.2.3: unfolding */
		return;
	}
	flush_header(p);
	if (len == 0) {
		p->phase = SMTP_PH_BODY;
		return;
	}
	header_append(p, line, len);
}

/* --- framing --------------------------------------------------------------- */

static bool
command_phase(const struct smtp_parser *p)
{
	return p->phase != SMTP_PH_HEADERS && p->phase != SMTP_PH_BODY;
}

/* The first line must open with a verb: letters, then a space or the line end. */
static bool
first_line_plausible(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ' || (s[i] == '\r' && i == n - 1))
			return i > 0;
		if (i >= SMTP_VERB_MAX || !is_alpha((unsigned char)s[i]))
			return false;
	}
	return true;
}

static void
line_end(struct smtp_parser *p)
{
	size_t stored = p->len < SMTP_LINE_MAX - 1 ? p->len : SMTP_LINE_MAX - 1;
	size_t n = stored;
	bool whole = p->len == stored, crlf = p->last_cr;

	if (crlf && whole)
		n--;
	p->line[n] = '\0';
	switch (p->phase) {
	case SMTP_PH_COMMAND:
	case SMTP_PH_AUTH_OTHER:
		command_line(p, p->line, n);
		break;
	case SMTP_PH_AUTH_PLAIN:
	case SMTP_PH_AUTH_LOGIN_USER:
	case SMTP_PH_AUTH_LOGIN_PASS:
		auth_line(p, p->line, n);
		break;
	case SMTP_PH_HEADERS:
	case SMTP_PH_BODY:
		message_line(p, p->line, n, whole, crlf);
		break;
	}
	/* The line may have held credentials. */
	explicit_bzero(p->line, stored);
	p->len = 0;
	p->last_cr = false;
}

/*
 * Reads data until it ends, the session reaches a state where reading
 * stops, or (trap) SMTP_EVENTS_MAX events wait to be answered. p->used says
 * how many bytes were read; the caller drains the events and feeds the rest.
 */
enum smtp_state
smtp_feed(struct smtp_parser *p, const uint8_t *data, size_t len)
{
	size_t i;

	p->used = 0;
	if (p->state != SMTP_CONTINUE)
		return p->state;
	for (i = 0; i < len && p->state == SMTP_CONTINUE; i++) {
		uint8_t c = data[i];

		if (p->nev == SMTP_EVENTS_MAX)
			break;
		if (c == '\n') {
			line_end(p);
			continue;
		}
		if (p->len < SMTP_LINE_MAX - 1)
			p->line[p->len] = (char)c;
		else if (command_phase(p)) {
			/* RFC 5321 4.5.3.1.6: 1000 bytes with CRLF; nothing longer is SMTP. */
			p->state = SMTP_ERROR_OVERLONG;
			explicit_bzero(p->line, sizeof(p->line));
		}
		if (p->len < SIZE_MAX)
			p->len++;
		p->last_cr = c == '\r';
		if (p->nlines == 0 && p->phase == SMTP_PH_COMMAND && p->len <= SMTP_VERB_MAX + 1 &&
		    !first_line_plausible(p->line, p->len))
			p->state = SMTP_ERROR_NOT_SMTP;
	}
	p->used = i;
	p->info.bytes += i;
	return p->state;
}
