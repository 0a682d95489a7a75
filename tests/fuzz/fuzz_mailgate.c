/*
 * fuzz_mailgate: any bytes as what an MTA hands the gate, one item per line
 * ("H name<TAB>value" header, "F" MAIL FROM, "R" RCPT TO, "S" SASL login,
 * "C" client address, "L" a limit line of exceptions.conf, "P" the whole
 * rest as a gate request from the child, "Q" the whole rest as the head of
 * a Postfix queue file). Nothing may read outside its
 * input; an origin is always named, as a key of printable ASCII without
 * blanks; an accepted limit line formats to a line that parses back to the
 * same rule; a request the parent accepts has every string terminated.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

#define FUZZ_LINE_MAX	4096

static void
check_key(const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	if (n == max)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			abort();
}

static void
limit_line(const char *line)
{
	static struct mail_limit_rule r, back;
	static char out[EXCEPTION_LINE_MAX], again[EXCEPTION_LINE_MAX], err[512];

	if (maillimit_rule_parse(line, &r, err, sizeof(err)) < 0) {
		if (err[0] == '\0')
			abort();
		for (const char *p = err; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				abort();
		return;
	}
	check_key(r.origin, sizeof(r.origin));
	if (maillimit_rule_format(&r, out, sizeof(out)) < 0 ||
	    maillimit_rule_parse(out, &back, err, sizeof(err)) < 0 ||
	    memcmp(&r, &back, sizeof(r)) != 0 ||
	    maillimit_rule_format(&back, again, sizeof(again)) < 0 || strcmp(out, again) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mail_facts f;
	static struct gate_request req;
	static char line[FUZZ_LINE_MAX];
	struct mail_origin o;
	struct attrib who = { .has_uid = true, .uid = 33, .user = "www-data" };
	size_t i = 0;

	mailorigin_reset(&f, "postfix");
	while (i < size) {
		size_t n = 0;
		char *tab;

		if (data[i] == 'Q') {
			uint32_t uid;

			if (mailorigin_queue_uid(data + i + 1, size - i - 1, &uid) == 0 &&
			    uid == (uint32_t)-1)
				abort();
			break;
		}
		if (data[i] == 'P') {
			if (gateproto_check_request(data + i + 1, size - i - 1, &req) == 0) {
				mailorigin_name(&req.facts, NULL, &o);
				check_key(o.name, sizeof(o.name));
				if (strnlen(req.facts.info.subject, SMTP_HEADER_MAX) ==
				    SMTP_HEADER_MAX)
					abort();
			}
			break;
		}
		for (; i < size && data[i] != '\n' && n + 1 < sizeof(line); i++)
			line[n++] = data[i] == '\0' ? ' ' : (char)data[i];
		line[n] = '\0';
		i++;
		if (n < 1)
			continue;
		switch (line[0]) {
		case 'H':
			if ((tab = strchr(line + 1, '\t')) != NULL) {
				*tab = '\0';
				mailorigin_header(&f, line + 1, tab + 1);
			}
			break;
		case 'F':
			mailorigin_mail_from(&f, line + 1);
			break;
		case 'R':
			mailorigin_rcpt(&f, line + 1, line[1] == 'l' ? "local" : "smtp");
			break;
		case 'S':
			strlcpy_sg(f.sasl_user, line + 1, sizeof(f.sasl_user));
			break;
		case 'C':
			strlcpy_sg(f.client_addr, line + 1, sizeof(f.client_addr));
			break;
		case 'L':
			limit_line(line + 1);
			break;
		default:
			break;
		}
	}
	mailorigin_name(&f, f.has_uid ? &who : NULL, &o);
	check_key(o.name, sizeof(o.name));
	if (o.domain[0] != '\0')
		check_key(o.domain, sizeof(o.domain));
	if (f.info.nrcpt_kept > SMTP_RCPT_KEEP || strnlen(f.info.mail_from, SMTP_FIELD_MAX) ==
	    SMTP_FIELD_MAX)
		abort();
	return 0;
}
