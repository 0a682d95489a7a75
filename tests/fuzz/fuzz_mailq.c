/*
 * fuzz_mailq: any bytes as what `held` reads from the MTA and our log: the
 * first byte picks the reader (postqueue -j lines, exim -bp lines, event
 * log lines), the rest is split into lines. Nothing may read outside its
 * input; every field that comes out is NUL-terminated inside its buffer; a
 * message that comes out has a queue id postsuper/exim can take as an
 * argument (never an option, only the MTA's characters); a refusal says why.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

#define FUZZ_LINE_MAX	(MAILQ_LINE_MAX + 16)

static void
terminated(const char *s, size_t size)
{
	if (strnlen(s, size) == size)
		abort();
}

static void
check_msg(const struct mailq_msg *m)
{
	terminated(m->queue_id, sizeof(m->queue_id));
	terminated(m->queue_name, sizeof(m->queue_name));
	terminated(m->sender, sizeof(m->sender));
	terminated(m->origin, sizeof(m->origin));
	if (m->queue_id[0] != '\0' && !mailq_valid_qid(m->queue_id, true))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char line[FUZZ_LINE_MAX];
	static struct mailq_msg m, cur;
	static struct mailq_event ev;
	char err[512];
	int mode;

	if (size == 0)
		return 0;
	mode = data[0] % 3;
	memset(&cur, 0, sizeof(cur));
	for (size_t off = 1; off < size;) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t n = nl ? (size_t)(nl - (data + off)) : size - off;
		size_t k = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
		int rc;

		memcpy(line, data + off, k);
		line[k] = '\0';
		off += n + 1;
		err[0] = '\0';
		switch (mode) {
		case 0:
			/* As mailcli.c hands it over: the bytes up to the newline, NULs and all. */
			rc = mailq_postqueue_line(line, k, &m, err, sizeof(err));
			if (rc < 0 && err[0] == '\0')
				abort();
			if (rc == 0) {
				check_msg(&m);
				if (!mailq_valid_qid(m.queue_id, false) || m.queue_name[0] == '\0' ||
				    m.held != (strcmp(m.queue_name, "hold") == 0))
					abort();
			}
			break;
		case 1:
			rc = mailq_exim_line(line, &cur, err, sizeof(err));
			if (rc < 0 && err[0] == '\0')
				abort();
			check_msg(&cur);
			if (rc == 1 && cur.queue_id[0] == '\0')
				abort();
			break;
		default:
			rc = mailq_event_line(line, k, &ev);
			terminated(ev.queue_id, sizeof(ev.queue_id));
			terminated(ev.origin, sizeof(ev.origin));
			terminated(ev.domain, sizeof(ev.domain));
			terminated(ev.subject, sizeof(ev.subject));
			terminated(ev.action, sizeof(ev.action));
			if (rc == 1 && !mailq_valid_qid(ev.queue_id, true))
				abort();
			if (rc == 0 && ev.queue_id[0] != '\0')
				abort();
			break;
		}
	}
	return 0;
}
