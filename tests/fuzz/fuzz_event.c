/*
 * libFuzzer: the event log's encoder (event.c), which writes strings chosen
 * by whoever made the connection (cmdline, cwd, HELO, Subject, ...). The
 * input is cut at NUL bytes into the event's strings; the first bytes pick
 * which parts the event has, its numbers and the buffer's size. Every line
 * written must be what jansson writes for the same object: parsed and
 * dumped again (compact, in order) it comes back byte for byte. A line too
 * long for its buffer comes back cut ("cut": true) or, when even that does
 * not fit, is refused (ENOSPC); a full-size buffer always takes it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>

#include "smtpguard.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FIELDS	28

/* The next NUL-ended piece of the input, copied into OUT (at most CAP - 1 bytes). */
static const char *
take(const uint8_t **p, const uint8_t *end, char *out, size_t cap)
{
	const uint8_t *nul = memchr(*p, '\0', (size_t)(end - *p));
	size_t n = (size_t)((nul != NULL ? nul : end) - *p);

	if (n >= cap)
		n = cap - 1;
	memcpy(out, *p, n);
	out[n] = '\0';
	*p = nul != NULL ? nul + 1 : end;
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char line[EVENT_LINE_MAX], again[EVENT_LINE_MAX], s[FIELDS][SMTP_HEADER_MAX];
	static struct attrib who;
	static struct smtp_info smtp;
	struct mail_event mail = { .limit = UINT32_MAX };
	struct event e = { .ts = { .tv_sec = 1795000000, .tv_nsec = 123456789 } };
	const uint8_t *p = data + 8, *end = data + size;
	struct pkt flow = { 0 };
	json_error_t jerr;
	json_t *o;
	size_t len, k = 0, n;
	int got;

	if (size < 8)
		return 0;
	memset(&who, 0, sizeof(who));
	memset(&smtp, 0, sizeof(smtp));
	for (size_t i = 0; i < FIELDS; i++)
		take(&p, end, s[i], sizeof(s[i]));
	e.event = s[k++];
	e.action = data[0] & 1 ? s[k] : NULL;
	k++;
	e.rule = s[k++];
	e.msg = data[0] & 2 ? s[k] : NULL;
	k++;
	if (data[0] & 4) {
		who.has_uid = data[1] & 1;
		who.uid = (uid_t)data[2] << 24 | data[3];
		who.has_gid = data[1] & 2;
		who.has_pid = data[1] & 4;
		who.pid = -(pid_t)data[3];
		who.has_ppid = data[1] & 8;
		strlcpy_sg(who.user, s[k++], sizeof(who.user));
		strlcpy_sg(who.exe, s[k++], sizeof(who.exe));
		strlcpy_sg(who.cmdline, s[k++], sizeof(who.cmdline));
		strlcpy_sg(who.cwd, s[k++], sizeof(who.cwd));
		strlcpy_sg(who.cgroup, s[k++], sizeof(who.cgroup));
		e.who = &who;
	} else
		k += 5;
	if (data[0] & 8) {
		flow.family = data[1] & 16 ? AF_INET6 : data[1] & 32 ? AF_INET : AF_UNIX;
		memcpy(flow.src, data, 8);
		memcpy(flow.dst + 8, data, 8);
		flow.sport = (uint16_t)(data[4] << 8 | data[5]);
		e.flow = &flow;
	}
	e.flow_id = data[1] & 64 ? UINT64_MAX - data[6] : data[6];
	if (data[0] & 16) {
		strlcpy_sg(smtp.helo, s[k++], sizeof(smtp.helo));
		strlcpy_sg(smtp.mail_from, s[k++], sizeof(smtp.mail_from));
		smtp.nrcpt_kept = data[4] % 4;
		for (size_t i = 0; i < smtp.nrcpt_kept; i++)
			strlcpy_sg(smtp.rcpt_to[i], s[k + i], sizeof(smtp.rcpt_to[i]));
		k += 3;
		smtp.nrcpt = smtp.nrcpt_kept + data[5] % 3;
		smtp.starttls = data[1] & 128;
		strlcpy_sg(smtp.subject, s[k++], sizeof(smtp.subject));
		strlcpy_sg(smtp.header_to, s[k++], sizeof(smtp.header_to));
		strlcpy_sg(smtp.php_script, s[k++], sizeof(smtp.php_script));
		strlcpy_sg(smtp.reply, s[k++], sizeof(smtp.reply));
		smtp.bytes = data[6];
		smtp.inspect = s[k++];
		e.smtp = &smtp;
	} else
		k += 10;
	if (data[0] & 32) {
		mail.origin = s[k++];
		mail.domain = s[k++];
		mail.sasl_user = s[k++];
		mail.client_ip = data[2] & 1 ? s[k] : NULL;
		k++;
		mail.rcpt_count = data[5];
		mail.counted = data[2] & 2;
		mail.limit = data[2] & 4 ? data[7] : UINT32_MAX;
		e.mail = &mail;
	}
	if (data[0] & 64) {
		e.suppressed = data[7];
		e.window = 600;
	}
	/* Now and then a buffer too small for the line. */
	len = data[0] & 128 ? (size_t)data[7] * 8 + 1 : sizeof(line);
	got = event_encode(&e, line, len);
	if (got < 0) {
		if (errno != ENOSPC || len == sizeof(line))
			abort();
		return 0;
	}
	if ((size_t)got >= len || line[got - 1] != '\n' || line[got] != '\0' ||
	    memchr(line, '\n', (size_t)got - 1) != NULL)
		abort();
	if ((o = json_loadb(line, (size_t)got - 1, 0, &jerr)) == NULL)
		abort();
	n = json_dumpb(o, again, sizeof(again), JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (n != (size_t)got - 1 || memcmp(again, line, n) != 0)
		abort();
	return 0;
}
