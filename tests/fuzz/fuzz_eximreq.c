/*
 * fuzz_eximreq: any bytes as a request on the gate's Exim socket (what a
 * broken snippet or anyone in the MTA's group could send). Nothing may
 * read outside the input; every string that comes out is NUL-terminated
 * inside its buffer and holds no NUL-cut surprise; an accepted request has
 * an Exim message id exim -Mt/-Mrm can take as an argument, a uid only for
 * a local submission, and no more recipients kept than named; a refusal
 * says why; every answer is one printable line.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

static void
terminated(const char *s, size_t size)
{
	if (strnlen(s, size) == size)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mail_facts f;
	char err[256], out[EXIMREQ_REPLY_MAX];
	const struct smtp_info *m = &f.info;
	int rc;

	err[0] = '\0';
	rc = eximreq_parse((const char *)data, size, &f, err, sizeof(err));
	if (rc < 0 && err[0] == '\0')
		abort();
	terminated(f.mta, sizeof(f.mta));
	terminated(f.queue_id, sizeof(f.queue_id));
	terminated(f.sasl_user, sizeof(f.sasl_user));
	terminated(f.client_addr, sizeof(f.client_addr));
	terminated(f.client_name, sizeof(f.client_name));
	terminated(f.daemon_addr, sizeof(f.daemon_addr));
	terminated(m->helo, sizeof(m->helo));
	terminated(m->mail_from, sizeof(m->mail_from));
	terminated(m->subject, sizeof(m->subject));
	terminated(m->php_script, sizeof(m->php_script));
	terminated(m->message_id, sizeof(m->message_id));
	if (m->nrcpt_kept > SMTP_RCPT_KEEP || m->nrcpt < m->nrcpt_kept)
		abort();
	for (size_t i = 0; i < m->nrcpt_kept; i++)
		terminated(m->rcpt_to[i], sizeof(m->rcpt_to[i]));
	if (rc == 0) {
		if (f.queue_id[0] == '\0' || !mailq_valid_qid(f.queue_id, true))
			abort();
		if (f.has_uid && !f.local_submit)
			abort();
		if (strcmp(f.mta, "exim") != 0)
			abort();
	}
	/* The answer, with whatever text came in as the reason. */
	if (eximreq_reply((enum mail_action)(size % 4), m->subject, out, sizeof(out)) <= 0)
		abort();
	terminated(out, sizeof(out));
	if (out[strlen(out) - 1] != '\n' || strchr(out, '\n') != out + strlen(out) - 1)
		abort();
	for (const char *p = out; *p != '\n'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			abort();
	return 0;
}
