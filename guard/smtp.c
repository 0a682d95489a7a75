/*
 * smtp.c — what an SMTP client says, one line at a time: commands by a
 * verb table (OpenSMTPD's way), the envelope they carry recorded into
 * struct smtp_info, and the message headers worth logging (RFC 5322
 * folding, RFC 2047 encoded words). Used by the trap (a server) and by
 * audit inspection (a passive reader of the client's bytes). It keeps no
 * password: AUTH PLAIN's and LOGIN's secrets are decoded into a scratch
 * buffer that is wiped. Pure: no I/O.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "smtpguard.h"

/* One command line taken apart: its verb and the argument after it. */
struct smtp_cmd {
	enum smtp_verb	 verb;
	const char	*arg;		/* into the caller's line */
	size_t		 arglen;
};

#define B64_MAX		768	/* an AUTH argument decoded; RFC 4954 lines are ≤ 12288 but a name is short */

static const struct {
	const char	*name;
	enum smtp_verb	 verb;
} verbs[] = {
	{ "HELO", SMTP_HELO }, { "EHLO", SMTP_EHLO }, { "MAIL", SMTP_MAIL },
	{ "RCPT", SMTP_RCPT }, { "DATA", SMTP_DATA }, { "RSET", SMTP_RSET },
	{ "NOOP", SMTP_NOOP }, { "QUIT", SMTP_QUIT }, { "STARTTLS", SMTP_STARTTLS },
	{ "AUTH", SMTP_AUTH }, { "VRFY", SMTP_VRFY }, { "EXPN", SMTP_EXPN },
	{ "HELP", SMTP_HELP },
};

bool
smtp_looks_like_smtp(const uint8_t *p, size_t len)
{
	return len >= 5 && (strncasecmp((const char *)p, "EHLO ", 5) == 0 ||
	    strncasecmp((const char *)p, "HELO ", 5) == 0);
}

static void
copy_field(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		len = size - 1;
	for (size_t i = 0; i < len; i++)
		dst[i] = src[i] == '\0' ? ' ' : src[i];
	dst[len] = '\0';
}

static int
smtp_parse_cmd(const char *line, size_t len, struct smtp_cmd *c)
{
	size_t n = 0;

	memset(c, 0, sizeof(*c));
	while (n < len && line[n] != ' ')
		n++;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strlen(verbs[i].name) == n && strncasecmp(line, verbs[i].name, n) == 0) {
			c->verb = verbs[i].verb;
			break;
		}
	while (n < len && line[n] == ' ')
		n++;
	c->arg = line + n;
	c->arglen = len - n;
	return c->verb == SMTP_UNKNOWN ? -1 : 0;
}

/* "FROM:<a@b> SIZE=10" → address "a@b", params "SIZE=10"; -1 if not that shape. */
static int
path_arg(const char *arg, size_t len, const char *key, char *addr, size_t addrlen,
    char *params, size_t paramslen)
{
	size_t k = strlen(key), i, start, end;

	if (len < k || strncasecmp(arg, key, k) != 0)
		return -1;
	i = k;
	while (i < len && arg[i] == ' ')
		i++;
	if (i < len && arg[i] == '<') {
		start = ++i;
		while (i < len && arg[i] != '>')
			i++;
		if (i == len)
			return -1;
		end = i++;
	} else {	/* lenient: clients that omit the brackets */
		start = i;
		while (i < len && arg[i] != ' ')
			i++;
		end = i;
	}
	copy_field(addr, addrlen, arg + start, end - start);
	while (i < len && arg[i] == ' ')
		i++;
	if (params != NULL)
		copy_field(params, paramslen, arg + i, len - i);
	return 0;
}

static int
b64_value(int c)
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

/* Returns the decoded length, or -1. Stops at '=' or the end. */
static long
b64_decode(const char *in, size_t len, uint8_t *out, size_t outlen)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < len && in[i] != '='; i++) {
		int v = b64_value((unsigned char)in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		if ((bits += 6) >= 8) {
			bits -= 8;
			if (o == outlen)
				return -1;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	return (long)o;
}

/* AUTH PLAIN's "authzid\0authcid\0password": keep authcid only. */
static void
auth_plain(struct smtp_info *m, const char *b64, size_t len)
{
	uint8_t buf[B64_MAX];
	long n = b64_decode(b64, len, buf, sizeof(buf));
	const uint8_t *user, *end;

	if (n > 0 && (user = memchr(buf, '\0', (size_t)n)) != NULL) {
		user++;
		end = memchr(user, '\0', (size_t)(buf + n - user));
		if (end != NULL)
			copy_field(m->auth_user, sizeof(m->auth_user), (const char *)user,
			    (size_t)(end - user));
	}
	explicit_bzero(buf, sizeof(buf));
}

static void
auth_login_user(struct smtp_info *m, const char *b64, size_t len)
{
	uint8_t buf[B64_MAX];
	long n = b64_decode(b64, len, buf, sizeof(buf));

	if (n > 0)
		copy_field(m->auth_user, sizeof(m->auth_user), (const char *)buf, (size_t)n);
	explicit_bzero(buf, sizeof(buf));
}

enum smtp_verb
smtp_client_line(struct smtp_client *cl, struct smtp_info *m, const char *line, size_t len)
{
	struct smtp_cmd c;

	/* Lines after AUTH are its responses, not commands. */
	if (cl->auth_step == SMTP_AUTH_LOGIN_USER) {
		auth_login_user(m, line, len);
		cl->auth_step = SMTP_AUTH_LOGIN_PASS;
		return SMTP_UNKNOWN;
	}
	if (cl->auth_step == SMTP_AUTH_LOGIN_PASS || cl->auth_step == SMTP_AUTH_PLAIN_NEXT) {
		if (cl->auth_step == SMTP_AUTH_PLAIN_NEXT)
			auth_plain(m, line, len);
		cl->auth_step = SMTP_AUTH_NONE;	/* the password line: never kept */
		return SMTP_UNKNOWN;
	}
	if (smtp_parse_cmd(line, len, &c) < 0)
		return SMTP_UNKNOWN;
	switch (c.verb) {
	case SMTP_HELO:
	case SMTP_EHLO:
		copy_field(m->helo, sizeof(m->helo), c.arg, c.arglen);
		break;
	case SMTP_MAIL:
		if (path_arg(c.arg, c.arglen, "FROM:", m->mail_from, sizeof(m->mail_from),
		    m->mail_params, sizeof(m->mail_params)) < 0)
			return SMTP_UNKNOWN;
		m->nrcpt = m->nrcpt_kept = 0;
		break;
	case SMTP_RCPT:
		if (m->nrcpt_kept < SMTP_RCPT_KEEP) {
			if (path_arg(c.arg, c.arglen, "TO:", m->rcpt_to[m->nrcpt_kept],
			    sizeof(m->rcpt_to[0]), NULL, 0) < 0)
				return SMTP_UNKNOWN;
			m->nrcpt_kept++;
		} else if (c.arglen < 3 || strncasecmp(c.arg, "TO:", 3) != 0)
			return SMTP_UNKNOWN;
		m->nrcpt++;
		break;
	case SMTP_AUTH: {
		size_t n = 0;

		while (n < c.arglen && c.arg[n] != ' ')
			n++;
		copy_field(m->auth_mech, sizeof(m->auth_mech), c.arg, n);
		while (n < c.arglen && c.arg[n] == ' ')
			n++;
		if (strcasecmp(m->auth_mech, "PLAIN") == 0) {
			/* "=" alone is an empty initial response (RFC 4954). */
			if (n < c.arglen && !(c.arglen - n == 1 && c.arg[n] == '='))
				auth_plain(m, c.arg + n, c.arglen - n);
			else
				cl->auth_step = SMTP_AUTH_PLAIN_NEXT;
		} else if (strcasecmp(m->auth_mech, "LOGIN") == 0) {
			if (n < c.arglen) {
				auth_login_user(m, c.arg + n, c.arglen - n);
				cl->auth_step = SMTP_AUTH_LOGIN_PASS;
			} else
				cl->auth_step = SMTP_AUTH_LOGIN_USER;
		}
		break;
	}
	case SMTP_STARTTLS:
		m->starttls = true;
		break;
	case SMTP_DATA:
		m->data = true;
		break;
	case SMTP_RSET:
		m->mail_from[0] = m->mail_params[0] = '\0';
		m->nrcpt = m->nrcpt_kept = 0;
		break;
	default:
		break;
	}
	return c.verb;
}

/* --- headers ----------------------------------------------------------------- */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = toupper(c);
	return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Appends one code point as UTF-8. */
static size_t
put_utf8(char *out, size_t o, size_t size, unsigned int cp)
{
	if (cp < 0x80 && o + 1 < size)
		out[o++] = (char)cp;
	else if (cp < 0x800 && o + 2 < size) {
		out[o++] = (char)(0xc0 | (cp >> 6));
		out[o++] = (char)(0x80 | (cp & 0x3f));
	} else if (o + 3 < size) {
		out[o++] = (char)(0xe0 | (cp >> 12));
		out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[o++] = (char)(0x80 | (cp & 0x3f));
	}
	return o;
}

/* One encoded word's text, decoded into out; false if it is not one we decode. */
static bool
decode_word(const char *charset, size_t cslen, char enc, const char *text, size_t tlen,
    char *out, size_t *o, size_t size)
{
	uint8_t buf[SMTP_HEADER_MAX];
	size_t n = 0;
	bool utf8, latin1;

	utf8 = (cslen == 5 && strncasecmp(charset, "utf-8", 5) == 0) ||
	    (cslen == 8 && strncasecmp(charset, "us-ascii", 8) == 0);
	latin1 = (cslen == 10 && strncasecmp(charset, "iso-8859-1", 10) == 0) ||
	    (cslen == 12 && strncasecmp(charset, "windows-1252", 12) == 0) ||
	    (cslen == 6 && strncasecmp(charset, "latin1", 6) == 0);
	if (!utf8 && !latin1)
		return false;
	if (enc == 'B' || enc == 'b') {
		long r = b64_decode(text, tlen, buf, sizeof(buf));

		if (r < 0)
			return false;
		n = (size_t)r;
	} else {
		for (size_t i = 0; i < tlen && n < sizeof(buf); i++) {
			if (text[i] == '_')
				buf[n++] = ' ';
			else if (text[i] == '=' && i + 2 < tlen && hexval(text[i + 1]) >= 0 &&
			    hexval(text[i + 2]) >= 0) {
				buf[n++] = (uint8_t)(hexval(text[i + 1]) * 16 + hexval(text[i + 2]));
				i += 2;
			} else
				buf[n++] = (uint8_t)text[i];
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (utf8 || buf[i] < 0x80) {
			if (*o + 1 < size)
				out[(*o)++] = (char)buf[i];
		} else
			*o = put_utf8(out, *o, size, buf[i]);
	}
	return true;
}

/* RFC 2047: =?charset?B|Q?text?= words decoded; white space between two words dropped. */
void
smtp_decode_header(const char *in, size_t len, char *out, size_t size)
{
	size_t i = 0, o = 0, pending_ws = 0, ws_at = 0;
	bool last_was_word = false;

	while (i < len && o + 1 < size) {
		if (in[i] == '=' && i + 1 < len && in[i + 1] == '?') {
			const char *cs = in + i + 2, *q1, *q2, *end;
			size_t rest = len - i - 2;

			q1 = memchr(cs, '?', rest);
			if (q1 != NULL && (size_t)(q1 - in) + 3 < len && q1[2] == '?' &&
			    (end = strstr(q1 + 3, "?=")) != NULL && end < in + len) {
				size_t keep_o = o;

				q2 = q1 + 3;
				if (last_was_word && pending_ws > 0)
					o = ws_at;	/* between encoded words, white space goes */
				if (decode_word(cs, (size_t)(q1 - cs), q1[1], q2, (size_t)(end - q2),
				    out, &o, size)) {
					i = (size_t)(end - in) + 2;
					last_was_word = true;
					pending_ws = 0;
					continue;
				}
				o = keep_o;
			}
		}
		if (in[i] == ' ' || in[i] == '\t') {
			if (pending_ws == 0)
				ws_at = o;
			pending_ws++;
		} else {
			pending_ws = 0;
			last_was_word = false;
		}
		out[o++] = in[i] == '\t' ? ' ' : in[i];
		i++;
	}
	out[o] = '\0';
}

static const struct {
	const char	*name;
	size_t		 offset;
} headers[] = {
	{ "Subject", offsetof(struct smtp_info, subject) },
	{ "From", offsetof(struct smtp_info, header_from) },
	{ "To", offsetof(struct smtp_info, header_to) },
	{ "Message-ID", offsetof(struct smtp_info, message_id) },
	{ "X-Mailer", offsetof(struct smtp_info, x_mailer) },
	{ "X-PHP-Originating-Script", offsetof(struct smtp_info, php_script) },
	{ "X-PHP-Script", offsetof(struct smtp_info, php_script) },
};

/* One whole (unfolded) header field "Name: value". */
static void
smtp_header(struct smtp_info *m, const char *field, size_t len)
{
	const char *colon = memchr(field, ':', len);
	size_t nlen, vstart;

	if (colon == NULL)
		return;
	nlen = (size_t)(colon - field);
	while (nlen > 0 && (field[nlen - 1] == ' ' || field[nlen - 1] == '\t'))
		nlen--;
	vstart = (size_t)(colon - field) + 1;
	while (vstart < len && (field[vstart] == ' ' || field[vstart] == '\t'))
		vstart++;
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		char *dst = (char *)m + headers[i].offset;

		if (strlen(headers[i].name) != nlen ||
		    strncasecmp(field, headers[i].name, nlen) != 0 || dst[0] != '\0')
			continue;	/* the first occurrence wins */
		smtp_decode_header(field + vstart, len - vstart, dst, SMTP_HEADER_MAX);
		return;
	}
}

/*
 * Message lines after DATA (already dot-unstuffed, without CRLF): headers
 * are collected with their continuation lines until the blank line.
 * Returns false once the header block has ended.
 */
bool
smtp_message_line(struct smtp_client *cl, struct smtp_info *m, const char *line, size_t len)
{
	if (cl->body)
		return false;
	if (len > 0 && (line[0] == ' ' || line[0] == '\t') && cl->hlen > 0) {
		/* folding: the continuation joins the field with one space */
		size_t n = len < sizeof(cl->hbuf) - cl->hlen - 1 ? len : sizeof(cl->hbuf) - cl->hlen - 1;

		memcpy(cl->hbuf + cl->hlen, line, n);
		cl->hlen += n;
		return true;
	}
	if (cl->hlen > 0)
		smtp_header(m, cl->hbuf, cl->hlen);
	cl->hlen = 0;
	if (len == 0) {
		cl->body = true;
		return false;
	}
	cl->hlen = len < sizeof(cl->hbuf) - 1 ? len : sizeof(cl->hbuf) - 1;
	memcpy(cl->hbuf, line, cl->hlen);
	return true;
}
