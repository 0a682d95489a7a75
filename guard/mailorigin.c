/*
 * mailorigin.c — who a message comes from, from what the MTA tells the
 * gate. It fills struct mail_facts from milter (or Exim) input — envelope
 * arguments, header fields — reads the uid of a local submission from the
 * Received field Postfix's cleanup writes into the queue file (milters
 * never see it; the caller reads the file), and names the message's origin
 * in the order mta-report uses: the
 * SASL login; else the null sender (counted as "bounce"); else the local
 * user who submitted it; else the client address. A client on this host is
 * named by its socket's owner, which the caller (smtpguardd, through
 * sock_diag) looks up and passes in: this file does no I/O. Each origin
 * rolls up into a sender domain (the login's, else the envelope sender's).
 *
 * Every input here is the MTA's copy of what a hostile client sent: bounded
 * copies, names kept to printable ASCII without blanks (they are keys in
 * exceptions.conf and the state file). Pure: never logs, never exits.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "smtpguard.h"

#define RECEIVED_UID_TAG	"(Postfix, from userid "
#define UID_DIGITS_MAX		10	/* 4294967294 */

void
mailorigin_reset(struct mail_facts *f, const char *mta)
{
	memset(f, 0, sizeof(*f));
	strlcpy_sg(f->mta, mta, sizeof(f->mta));
}

/*
 * "by host (Postfix, from userid 33)\n\tid 4Xyz; date": the uid that
 * submitted a local message, in the field Postfix's cleanup puts first.
 */
int
mailorigin_received_uid(const char *value, uint32_t *uid)
{
	const char *p = strstr(value, RECEIVED_UID_TAG);
	unsigned long n = 0;
	size_t digits = 0;

	if (p == NULL)
		return -1;
	for (p += strlen(RECEIVED_UID_TAG); *p >= '0' && *p <= '9'; p++) {
		if (++digits > UID_DIGITS_MAX)
			return -1;
		n = n * 10 + (unsigned long)(*p - '0');
	}
	if (digits == 0 || *p != ')' || n >= (uid_t)-1)
		return -1;
	*uid = (uint32_t)n;
	return 0;
}

/*
 * A Postfix queue file (records: a type byte, a length in 7-bit groups,
 * low group first, then the data): the uid in the first line of the
 * message content, which is the Received field cleanup prepends to a local
 * submission. Postfix keeps that field from its milters, so smtpguardd
 * reads it from the queue file the message's queue id names.
 */
#define REC_TYPE_MESG	'M'	/* the message content starts */
#define REC_TYPE_NORM	'N'	/* a line of it */
#define REC_LEN_BYTES	5	/* 7 bits each: more than any record holds */
int
mailorigin_queue_uid(const uint8_t *buf, size_t len, uint32_t *uid)
{
	char line[SMTP_LINE_MAX + 1];
	size_t i = 0;
	bool in_message = false;

	while (i < len) {
		uint8_t type = buf[i++];
		size_t n = 0;
		int shift = 0, k;

		for (k = 0; k < REC_LEN_BYTES && i < len; k++, shift += 7) {
			n |= (size_t)(buf[i] & 0x7f) << shift;
			if (!(buf[i++] & 0x80))
				break;
		}
		if (k == REC_LEN_BYTES || n > len - i)
			return -1;
		if (in_message) {
			/* Only the first line counts: the rest is the sender's to write. */
			if (type != REC_TYPE_NORM || n > SMTP_LINE_MAX || n < 9 ||
			    strncasecmp((const char *)buf + i, "Received:", 9) != 0)
				return -1;
			memcpy(line, buf + i, n);
			line[n] = '\0';
			return mailorigin_received_uid(line, uid);
		}
		in_message = type == REC_TYPE_MESG;
		i += n;
	}
	return -1;
}

/* One header field as the milter hands it: name, and value with its folding. */
void
mailorigin_header(struct mail_facts *f, const char *name, const char *value)
{
	char field[SMTP_HEADER_MAX * 2];
	struct smtp_client cl;
	size_t n = 0;

	/*
	 * Postfix hides its own Received field from milters: every one the
	 * gate sees was written by the sender, so none of them names a uid.
	 */
	if (strcasecmp(name, "Received") == 0) {
		f->received_seen = true;
		return;
	}
	/* "Name: value", unfolded. */
	n = (size_t)snprintf(field, sizeof(field), "%s: ", name);
	if (n >= sizeof(field))
		return;
	for (const char *p = value; *p != '\0' && n + 1 < sizeof(field); p++) {
		if (*p == '\r')
			continue;
		field[n++] = *p == '\n' ? ' ' : *p;
	}
	field[n] = '\0';
	/* One field, then the blank line that flushes it: smtp.c keeps what we log. */
	memset(&cl, 0, sizeof(cl));
	(void)smtp_message_line(&cl, &f->info, field, n);
	(void)smtp_message_line(&cl, &f->info, "", 0);
}

/* A printable copy of an envelope address without its <>, cut at the bound. */
static void
envelope_addr(const char *arg, char *out, size_t len)
{
	size_t n, k = 0;

	while (*arg == ' ')
		arg++;
	if (*arg == '<')
		arg++;
	n = strcspn(arg, ">");
	for (size_t i = 0; i < n && k + 1 < len; i++)
		out[k++] = (unsigned char)arg[i] < 0x20 || arg[i] == 0x7f ? '?' : arg[i];
	out[k] = '\0';
}

void
mailorigin_mail_from(struct mail_facts *f, const char *arg)
{
	f->has_mail_from = true;
	envelope_addr(arg, f->info.mail_from, sizeof(f->info.mail_from));
}

/*
 * The transport Postfix will deliver a recipient with ({rcpt_mailer}):
 * these keep the mail on this host (mailboxes, LMTP to the local IMAP
 * server, refusals), so it is no egress and counts against no limit. Any
 * other (smtp, relay, a custom one) may leave. NULL: not said, so it may.
 */
static const char *const here_mailers[] = { "local", "virtual", "lmtp", "error", "discard" };

bool
mailorigin_mailer_here(const char *mailer)
{
	if (mailer == NULL)
		return false;
	for (size_t i = 0; i < sizeof(here_mailers) / sizeof(here_mailers[0]); i++)
		if (strcmp(mailer, here_mailers[i]) == 0)
			return true;
	return false;
}

void
mailorigin_rcpt(struct mail_facts *f, const char *arg, const char *mailer)
{
	struct smtp_info *m = &f->info;

	if (mailorigin_mailer_here(mailer) && f->nrcpt_here < UINT32_MAX)
		f->nrcpt_here++;

	if (m->nrcpt_kept < SMTP_RCPT_KEEP)
		envelope_addr(arg, m->rcpt_to[m->nrcpt_kept++], SMTP_FIELD_MAX);
	m->nrcpt++;
}

/* A name fit to be a key: printable ASCII without blanks, lower case. */
static int
key_copy(const char *in, char *out, size_t len)
{
	size_t n = strlen(in);

	if (n == 0 || n >= len)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c <= 0x20 || c >= 0x7f)
			return -1;
		out[i] = (char)tolower(c);
	}
	out[n] = '\0';
	return 0;
}

/* "alice@Shop.Example" → "shop.example"; -1 without a usable domain. */
int
mailorigin_domain(const char *addr, char *out, size_t len)
{
	const char *at = strrchr(addr, '@');

	if (at == NULL || at[1] == '\0' || strchr(at + 1, '.') == NULL ||
	    at[strlen(at) - 1] == '.')
		return -1;
	return key_copy(at + 1, out, len);
}

/* An IPv4 or IPv6 address in its canonical text form ("::ffff:1.2.3.4" → "1.2.3.4"). */
int
mailorigin_norm_addr(const char *in, char *out, size_t len)
{
	uint8_t a[16];
	char buf[INET6_ADDRSTRLEN + 1];
	const char *s = in;
	size_t n;

	/* Postfix writes IPv6 clients as "IPv6:2001:db8::1" in some macros. */
	if (strncasecmp(s, "IPv6:", 5) == 0)
		s += 5;
	n = strlen(s);
	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n + 1);
	if (inet_pton(AF_INET, buf, a) == 1)
		return inet_ntop(AF_INET, a, out, (socklen_t)len) != NULL ? 0 : -1;
	if (inet_pton(AF_INET6, buf, a) != 1)
		return -1;
	if (memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0)
		return inet_ntop(AF_INET, a + 12, out, (socklen_t)len) != NULL ? 0 : -1;
	return inet_ntop(AF_INET6, a, out, (socklen_t)len) != NULL ? 0 : -1;
}

/* 127.0.0.0/8 and ::1: this host, whatever its interfaces. */
bool
mailorigin_is_loopback(const char *addr)
{
	uint8_t a[16];

	if (inet_pton(AF_INET, addr, a) == 1)
		return a[0] == 127;
	return inet_pton(AF_INET6, addr, a) == 1 && memcmp(a, &in6addr_loopback, 16) == 0;
}

static void
set_name(struct mail_origin *o, enum mail_origin_kind kind, const char *prefix,
    const char *rest)
{
	char key[MAIL_ORIGIN_MAX - 8];	/* room for the longest prefix, "client:" */

	if (key_copy(rest, key, sizeof(key)) < 0)
		strlcpy_sg(key, "?", sizeof(key));	/* a name we cannot key: one bucket */
	o->kind = kind;
	snprintf(o->name, sizeof(o->name), "%s%s", prefix, key);
}

/*
 * local: who submitted it, when known — the uid the MTA reported (the
 * caller turned it into a user name) or the owner of a local client's
 * socket. NULL or !has_uid: not known.
 */
void
mailorigin_name(const struct mail_facts *f, const struct attrib *local, struct mail_origin *o)
{
	char addr[INET6_ADDRSTRLEN], dom[MAIL_ORIGIN_MAX - 8];

	memset(o, 0, sizeof(*o));
	if (f->sasl_user[0] != '\0')
		set_name(o, MAIL_ORIGIN_SASL, "sasl:", f->sasl_user);
	else if (f->has_mail_from && f->info.mail_from[0] == '\0') {
		o->kind = MAIL_ORIGIN_BOUNCE;
		strlcpy_sg(o->name, "bounce", sizeof(o->name));
	} else if (local != NULL && local->has_uid) {
		char uid[16];

		snprintf(uid, sizeof(uid), "%lu", (unsigned long)local->uid);
		set_name(o, MAIL_ORIGIN_USER, "user:", local->user[0] ? local->user : uid);
	} else if (mailorigin_norm_addr(f->client_addr, addr, sizeof(addr)) == 0)
		set_name(o, MAIL_ORIGIN_CLIENT, "client:", addr);
	else {
		o->kind = MAIL_ORIGIN_UNKNOWN;
		strlcpy_sg(o->name, "unknown", sizeof(o->name));
	}
	/* The roll-up: the login's domain, else the envelope sender's; bounces have none. */
	if (o->kind == MAIL_ORIGIN_BOUNCE)
		return;
	if ((o->kind == MAIL_ORIGIN_SASL && mailorigin_domain(f->sasl_user, dom,
	    sizeof(dom)) == 0) || mailorigin_domain(f->info.mail_from, dom, sizeof(dom)) == 0)
		snprintf(o->domain, sizeof(o->domain), "domain:%s", dom);
}
