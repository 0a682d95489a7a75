/*
 * gateproto.c — the wire between the gate child and smtpguardd: one
 * SOCK_SEQPACKET message per request (struct gate_request: the facts of
 * one message, with the gate's id) and one per reply (struct gate_reply:
 * the verdict for that id). Both ends are built from the same source, so
 * the structs are sent as they are; what is checked is what a compromised
 * gate could get wrong: the size, the version, and every string, which is
 * re-terminated at its bound before the parent reads it. The facts are
 * MTA-neutral: an Exim front end fills the same request. Pure: no I/O.
 */
#include <errno.h>
#include <string.h>

#include "smtpguard.h"

#define TERM(f)	((f)[sizeof(f) - 1] = '\0')

void
gateproto_terminate(struct mail_facts *f)
{
	struct smtp_info *m = &f->info;

	TERM(f->mta); TERM(f->queue_id); TERM(f->sasl_user); TERM(f->client_addr);
	TERM(f->client_name); TERM(f->daemon_addr); TERM(f->daemon_name);
	TERM(m->helo); TERM(m->mail_from); TERM(m->mail_params); TERM(m->auth_mech);
	TERM(m->auth_user); TERM(m->tls_sni); TERM(m->subject); TERM(m->header_from);
	TERM(m->header_to); TERM(m->message_id); TERM(m->x_mailer); TERM(m->php_script);
	TERM(m->reply);
	for (size_t i = 0; i < SMTP_RCPT_KEEP; i++)
		TERM(m->rcpt_to[i]);
	if (m->nrcpt_kept > SMTP_RCPT_KEEP)
		m->nrcpt_kept = SMTP_RCPT_KEEP;
	if (m->nrcpt < m->nrcpt_kept)
		m->nrcpt = m->nrcpt_kept;
	if (f->nrcpt_here > m->nrcpt)
		f->nrcpt_here = (uint32_t)(m->nrcpt > UINT32_MAX ? UINT32_MAX : m->nrcpt);
	/* Pointers mean nothing across a process boundary. */
	m->inspect = NULL;
	m->proto = NULL;
}

int
gateproto_check_request(const void *buf, size_t n, struct gate_request *r)
{
	if (n != sizeof(*r)) {
		errno = EPROTO;
		return -1;
	}
	memcpy(r, buf, sizeof(*r));
	if (r->version != GATEPROTO_VERSION || r->len != sizeof(*r)) {
		errno = EPROTO;
		return -1;
	}
	gateproto_terminate(&r->facts);
	return 0;
}

int
gateproto_check_reply(const void *buf, size_t n, struct gate_reply *r)
{
	if (n != sizeof(*r)) {
		errno = EPROTO;
		return -1;
	}
	memcpy(r, buf, sizeof(*r));
	if (r->version != GATEPROTO_VERSION || r->len != sizeof(*r) ||
	    r->action > MAIL_REJECT) {
		errno = EPROTO;
		return -1;
	}
	TERM(r->reason);
	return 0;
}
