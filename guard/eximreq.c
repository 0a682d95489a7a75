/*
 * eximreq.c — the Exim request: what conf/exim4's ACL snippet sends to
 * the gate with ${readsocket}, parsed into the same struct mail_facts the
 * milter fills for Postfix, and the one-line answer the ACL reads back.
 * The request is "smtpguard-exim 1" and then one "key=value" per line,
 * every value of the sender's making passed through Exim's ${escape:} (so
 * it holds no newline); the escapes are undone here. Exim computed every
 * field, but the text inside them (addresses, HELO, headers) is the
 * client's: each is bounded, cut on a UTF-8 boundary by the helpers it is
 * handed to, and checked for the characters its field allows. Unknown keys
 * are skipped (a newer snippet talks to an older gate). Pure: no I/O, no
 * logging; errors in the caller's buffer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

#define EXIMREQ_MAGIC	"smtpguard-exim 1"

/* \n \r \t \\ and \ooo back to bytes; an unknown escape is kept as it is. */
static size_t
unescape(const char *in, size_t n, char *out, size_t len)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k + 1 < len; i++) {
		char c = in[i];

		if (c == '\\' && i + 1 < n) {
			char e = in[i + 1];

			if (e == 'n' || e == 'r' || e == 't' || e == '\\') {
				c = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : '\\';
				i++;
			} else if (i + 3 < n && e >= '0' && e <= '3' && in[i + 2] >= '0' &&
			    in[i + 2] <= '7' && in[i + 3] >= '0' && in[i + 3] <= '7') {
				c = (char)((e - '0') * 64 + (in[i + 2] - '0') * 8 + (in[i + 3] - '0'));
				i += 3;
			}
		}
		/* A NUL would end the string early: it is no part of any field. */
		out[k++] = c == '\0' ? '?' : c;
	}
	out[k] = '\0';
	return k;
}

static int
number(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

/* An address for a field of INET6_ADDRSTRLEN: digits, hex, '.', ':' only. */
static int
ip_text(const char *s, char *out, size_t len)
{
	size_t n = strlen(s);

	if (n >= len || strspn(s, "0123456789abcdefABCDEF.:") != n)
		return -1;
	memcpy(out, s, n + 1);
	return 0;
}

/* $recipients: "a@x, b@y"; the first SMTP_RCPT_KEEP are kept by name. */
static void
recipients(struct mail_facts *f, const char *list)
{
	for (const char *p = list; *p != '\0';) {
		char one[SMTP_FIELD_MAX];
		size_t k;

		p += strspn(p, ", ");
		k = strcspn(p, ",");
		while (k > 0 && p[k - 1] == ' ')
			k--;
		if (k > 0) {
			snprintf(one, sizeof(one), "%.*s", (int)(k < sizeof(one) ? k : sizeof(one) - 1),
			    p);
			mailorigin_rcpt(f, one, NULL);
		}
		p += strcspn(p, ",");
	}
}

static void
header(struct mail_facts *f, const char *name, const char *v)
{
	if (v[0] != '\0')
		mailorigin_header(f, name, v);
}

int
eximreq_parse(const char *buf, size_t len, struct mail_facts *f, char *err, size_t errlen)
{
	static char val[EXIMREQ_MAX + 1];
	uint64_t rcpt_count = 0, n;
	bool have_count = false, local = false;
	size_t off, ml = strlen(EXIMREQ_MAGIC);

	mailorigin_reset(f, "exim");
	if (len > EXIMREQ_MAX) {
		snprintf(err, errlen, "request longer than %d bytes", EXIMREQ_MAX);
		return -1;
	}
	if (len < ml || memcmp(buf, EXIMREQ_MAGIC, ml) != 0 ||
	    (len > ml && buf[ml] != '\n' && buf[ml] != '\r')) {
		snprintf(err, errlen, "not a request of the smtpguard Exim snippet (it begins "
		    "\"%s\")", EXIMREQ_MAGIC);
		return -1;
	}
	for (off = ml; off < len;) {
		const char *line = buf + off, *eq, *nl = memchr(line, '\n', len - off);
		size_t ll = nl ? (size_t)(nl - line) : len - off, kl;

		off += ll + 1;
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		if (ll == 0)
			continue;
		if ((eq = memchr(line, '=', ll)) == NULL) {
			snprintf(err, errlen, "line without '=': not key=value");
			return -1;
		}
		kl = (size_t)(eq - line);
		unescape(eq + 1, ll - kl - 1, val, sizeof(val));
#define KEY(s)	(kl == sizeof(s) - 1 && memcmp(line, s, kl) == 0)
		if (KEY("id")) {
			if (val[0] != '\0' && (strlen(val) >= sizeof(f->queue_id) ||
			    strspn(val, "0123456789abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ-") != strlen(val) || val[0] == '-')) {
				snprintf(err, errlen, "id: not an Exim message id");
				return -1;
			}
			strlcpy_sg(f->queue_id, val, sizeof(f->queue_id));
		} else if (KEY("local")) {
			if (strcmp(val, "0") != 0 && strcmp(val, "1") != 0) {
				snprintf(err, errlen, "local: 0 or 1");
				return -1;
			}
			local = val[0] == '1';
		} else if (KEY("uid")) {
			if (val[0] == '\0')
				continue;
			if (number(val, UINT32_MAX - 1, &n) < 0) {
				snprintf(err, errlen, "uid: not a number");
				return -1;
			}
			f->has_uid = true;
			f->uid = (uint32_t)n;
		} else if (KEY("auth")) {
			strlcpy_sg(f->sasl_user, val, sizeof(f->sasl_user));
		} else if (KEY("from")) {
			char arg[SMTP_FIELD_MAX + 2];

			snprintf(arg, sizeof(arg), "<%.*s>", (int)(sizeof(arg) - 3), val);
			mailorigin_mail_from(f, arg);
		} else if (KEY("rcpt-count")) {
			if (number(val, UINT32_MAX, &rcpt_count) < 0) {
				snprintf(err, errlen, "rcpt-count: not a number");
				return -1;
			}
			have_count = true;
		} else if (KEY("rcpt")) {
			recipients(f, val);
		} else if (KEY("ip")) {
			if (val[0] != '\0' && ip_text(val, f->client_addr, sizeof(f->client_addr)) < 0) {
				snprintf(err, errlen, "ip: not an address");
				return -1;
			}
		} else if (KEY("port")) {
			if (val[0] != '\0' && number(val, 65535, &n) == 0)
				f->client_port = (uint16_t)n;
		} else if (KEY("daemon-ip")) {
			if (val[0] != '\0' && ip_text(val, f->daemon_addr, sizeof(f->daemon_addr)) < 0) {
				snprintf(err, errlen, "daemon-ip: not an address");
				return -1;
			}
		} else if (KEY("daemon-port")) {
			if (val[0] != '\0' && number(val, 65535, &n) == 0)
				f->daemon_port = (uint16_t)n;
		} else if (KEY("host")) {
			strlcpy_sg(f->client_name, val, sizeof(f->client_name));
		} else if (KEY("helo")) {
			strlcpy_sg(f->info.helo, val, sizeof(f->info.helo));
		} else if (KEY("mech")) {
			strlcpy_sg(f->info.auth_mech, val, sizeof(f->info.auth_mech));
		} else if (KEY("subject")) {
			header(f, "Subject", val);
		} else if (KEY("message-id")) {
			header(f, "Message-ID", val);
		} else if (KEY("php")) {
			header(f, "X-PHP-Originating-Script", val);
		} else if (KEY("header-from")) {
			header(f, "From", val);
		}
#undef KEY
	}
	if (f->queue_id[0] == '\0') {
		snprintf(err, errlen, "no id (the snippet sends $message_exim_id)");
		return -1;
	}
	/* Local only when Exim says so and no host sent it (-bs has none either). */
	f->local_submit = local && f->client_addr[0] == '\0';
	/*
	 * For mail submitted locally Exim sets $authenticated_id to the
	 * caller's login: that is the uid's name, not a SASL login; only an
	 * authenticator ($sender_host_authenticated) makes one.
	 */
	if (f->local_submit && f->info.auth_mech[0] == '\0')
		f->sasl_user[0] = '\0';
	if (!f->local_submit) {
		f->has_uid = false;	/* $originator_uid of an SMTP client is Exim's own */
		f->uid = 0;
	}
	if (have_count && rcpt_count > f->info.nrcpt)
		f->info.nrcpt = rcpt_count;
	return 0;
}

/* The answer: "pass", or "hold|defer|reject TEXT", one line of printable ASCII. */
int
eximreq_reply(enum mail_action a, const char *reason, char *out, size_t len)
{
	static const char *const word[] = { "pass", "hold", "defer", "reject" };
	size_t k;

	if ((unsigned)a > MAIL_REJECT || len < 8) {
		errno = EINVAL;
		return -1;
	}
	k = (size_t)snprintf(out, len, "%s", word[a]);
	if (a != MAIL_PASS && reason != NULL && reason[0] != '\0' && k + 2 < len) {
		out[k++] = ' ';
		for (const char *p = reason; *p != '\0' && k + 2 < len; p++)
			out[k++] = (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f ? *p : '?';
	}
	out[k++] = '\n';
	out[k] = '\0';
	return (int)k;
}
