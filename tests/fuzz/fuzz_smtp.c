/*
 * libFuzzer: any bytes as an SMTP client, in audit or trap mode (first
 * byte). The session is read twice, whole and cut in three at points the
 * input picks: both readings must give the same record and the same
 * replies, every string must stay terminated inside its field, and a
 * stopped parser must stay stopped.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

#define EVENTS_KEPT	4096	/* replies compared per input; the rest only counted */

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct run {
	struct smtp_parser	 p;
	struct smtp_event	 ev[EVENTS_KEPT];
	size_t			 nev;
};

static void
feed(struct run *r, const uint8_t *d, size_t len)
{
	struct smtp_event ev;

	for (;;) {
		enum smtp_state st = smtp_feed(&r->p, d, len);

		if (r->p.used > len)
			abort();
		while (smtp_event_next(&r->p, &ev)) {
			if (r->nev < EVENTS_KEPT)
				r->ev[r->nev] = ev;
			r->nev++;
		}
		d += r->p.used;
		len -= r->p.used;
		if (st != SMTP_CONTINUE) {
			if (smtp_feed(&r->p, (const uint8_t *)"NOOP\r\n", 6) != st || r->p.used != 0)
				abort();
			return;
		}
		if (len == 0)
			return;
	}
}

static void
check_field(const char *s, size_t size)
{
	if (memchr(s, '\0', size) == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run whole, cut;
	enum smtp_mode mode;
	size_t a, b;
	const struct smtp_info *m = &whole.p.info;

	if (size < 3)
		return 0;
	mode = data[0] & 1 ? SMTP_MODE_TRAP : SMTP_MODE_AUDIT;
	a = data[1];
	b = data[2];
	data += 3;
	size -= 3;
	a %= size + 1;
	b = a + b % (size - a + 1);

	smtp_parser_init(&whole.p, mode);
	whole.nev = 0;
	feed(&whole, data, size);
	smtp_parser_init(&cut.p, mode);
	cut.nev = 0;
	feed(&cut, data, a);
	feed(&cut, data + a, b - a);
	feed(&cut, data + b, size - b);

	if (whole.p.state != cut.p.state || whole.nev != cut.nev ||
	    memcmp(&whole.p.info, &cut.p.info, sizeof(whole.p.info)) != 0 ||
	    memcmp(whole.ev, cut.ev, (whole.nev < EVENTS_KEPT ? whole.nev : EVENTS_KEPT) *
	    sizeof(whole.ev[0])) != 0)
		abort();
	if (mode == SMTP_MODE_AUDIT && whole.nev != 0)
		abort();
	if (m->nrcpt_kept > SMTP_RCPT_KEEP || m->nrcpt_kept > m->nrcpt || m->bytes > size)
		abort();
	check_field(m->helo, sizeof(m->helo));
	check_field(m->mail_from, sizeof(m->mail_from));
	check_field(m->mail_params, sizeof(m->mail_params));
	for (size_t i = 0; i < m->nrcpt_kept; i++)
		check_field(m->rcpt_to[i], sizeof(m->rcpt_to[i]));
	check_field(m->auth_mech, sizeof(m->auth_mech));
	check_field(m->auth_user, sizeof(m->auth_user));
	check_field(m->subject, sizeof(m->subject));
	check_field(m->header_from, sizeof(m->header_from));
	check_field(m->header_to, sizeof(m->header_to));
	check_field(m->message_id, sizeof(m->message_id));
	check_field(m->x_mailer, sizeof(m->x_mailer));
	check_field(m->php_script, sizeof(m->php_script));
	return 0;
}
