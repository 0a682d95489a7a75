/*
 * trap_session.c — one client of the trap, as an SMTP server sees it: the
 * bytes it sends split into lines (bounded: SMTP_LINE_MAX, the session's
 * bytes, TRAP_BAD_COMMANDS bad lines), each command answered from a table by
 * verb, DATA read with dot-unstuffing for its headers, and 550 at its end.
 * It records what the client said in the session's report and says why the
 * session ended; trap.c owns the sockets, the listeners and the reports.
 * Replies go to the session's socket without waiting; a client that does
 * not read them loses them.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "smtpguard.h"

#define TRAP_BAD_COMMANDS	10	/* unknown or malformed commands before we hang up */

void
trap_session_send(struct trap_session *s, const char *text)
{
	/* Replies are short; a client that does not read them loses them. */
	(void)send(s->fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
}


/* What the session does once a command is answered. */
enum trap_next {
	TRAP_NEXT_COMMAND = 0,
	TRAP_NEXT_DATA,		/* the message follows, up to "." */
	TRAP_NEXT_QUIT,		/* the client said goodbye: end the session */
};

#define TRAP_REPLY_OK		"250 2.0.0 Ok\r\n"
#define TRAP_REPLY_NOT_OFFERED	"502 5.5.1 Not implemented\r\n"

/*
 * The answer to each command outside DATA, one row per verb (OpenSMTPD
 * keeps its verbs in a table too). STARTTLS and AUTH are not offered, so a
 * client shows its envelope in the clear or not at all; an unknown verb
 * counts toward TRAP_BAD_COMMANDS.
 */
static const struct trap_answer {
	const char	*reply;
	bool		 bad;		/* counts toward TRAP_BAD_COMMANDS */
	bool		 size;		/* then "250 SIZE <trap_bytes>" (EHLO) */
	const char	*no_rcpt;	/* the reply instead while no RCPT was accepted */
	enum trap_next	 next;
} trap_answers[] = {
	[SMTP_UNKNOWN]	= { .reply = "500 5.5.2 Command not recognized\r\n", .bad = true },
	[SMTP_HELO]	= { .reply = "250 localhost\r\n" },
	[SMTP_EHLO]	= { .reply = "250-localhost\r\n250-PIPELINING\r\n250-8BITMIME\r\n",
			    .size = true },
	[SMTP_MAIL]	= { .reply = "250 2.1.0 Ok\r\n" },
	[SMTP_RCPT]	= { .reply = "250 2.1.5 Ok\r\n" },
	[SMTP_DATA]	= { .reply = "354 End data with <CR><LF>.<CR><LF>\r\n",
			    .no_rcpt = "554 5.5.1 No valid recipients\r\n",
			    .next = TRAP_NEXT_DATA },
	[SMTP_RSET]	= { .reply = TRAP_REPLY_OK },
	[SMTP_NOOP]	= { .reply = TRAP_REPLY_OK },
	[SMTP_QUIT]	= { .reply = "221 2.0.0 Bye\r\n", .next = TRAP_NEXT_QUIT },
	[SMTP_STARTTLS]	= { .reply = TRAP_REPLY_NOT_OFFERED },
	[SMTP_AUTH]	= { .reply = TRAP_REPLY_NOT_OFFERED },
	[SMTP_VRFY]	= { .reply = "252 2.1.5 Cannot VRFY user\r\n" },
	[SMTP_EXPN]	= { .reply = TRAP_REPLY_NOT_OFFERED },
	[SMTP_HELP]	= { .reply = TRAP_REPLY_NOT_OFFERED },
};

static enum trap_next
trap_answer(struct trap_session *s, const struct config *cfg, enum smtp_verb v)
{
	const struct trap_answer *a;
	char buf[256];

	if ((size_t)v >= sizeof(trap_answers) / sizeof(trap_answers[0]) ||
	    trap_answers[v].reply == NULL)
		v = SMTP_UNKNOWN;
	a = &trap_answers[v];
	if (a->no_rcpt != NULL && s->report.info.nrcpt == 0) {
		trap_session_send(s, a->no_rcpt);
		return TRAP_NEXT_COMMAND;
	}
	if (a->bad)
		s->bad++;
	if (a->size) {
		snprintf(buf, sizeof(buf), "%s250 SIZE %zu\r\n", a->reply, cfg->trap_bytes);
		trap_session_send(s, buf);
	} else
		trap_session_send(s, a->reply);
	return a->next;
}

/* One complete line (without CRLF). Returns why the session ended, or NULL. */
static const char *
trap_line(struct trap_session *s, const struct config *cfg, const char *line, size_t len)
{
	struct smtp_info *m = &s->report.info;
	char buf[256];
	enum smtp_verb v;

	if (s->in_data) {
		if (len == 1 && line[0] == '.') {
			smtp_message_line(&s->client, m, "", 0);	/* flush the last header */
			snprintf(buf, sizeof(buf), "550 %s\r\n", cfg->trap_reply);
			strlcpy_sg(m->reply, buf, sizeof(m->reply));
			m->reply[strcspn(m->reply, "\r")] = '\0';
			trap_session_send(s, buf);
			return "complete";
		}
		if (len > 0 && line[0] == '.') {	/* dot-unstuffing */
			line++;
			len--;
		}
		smtp_message_line(&s->client, m, line, len);
		return NULL;
	}
	/* The AUTH dialogue never starts: AUTH is refused, so every line is a command. */
	s->client.auth_step = SMTP_AUTH_NONE;
	v = smtp_client_line(&s->client, m, line, len);
	if (v == SMTP_STARTTLS)
		m->starttls = false;	/* asked for, not done: nothing to log as TLS */
	switch (trap_answer(s, cfg, v)) {
	case TRAP_NEXT_QUIT:
		return "quit";
	case TRAP_NEXT_DATA:
		s->in_data = true;
		break;
	case TRAP_NEXT_COMMAND:
		break;
	}
	if (s->bad >= TRAP_BAD_COMMANDS) {
		trap_session_send(s, "421 4.7.0 Too many errors\r\n");
		return "errors";
	}
	return NULL;
}

/*
 * Bytes from the client: lines split, bounded, answered. Returns why the
 * session ended ("complete", "quit", "errors", "bytes"), or NULL to read on.
 */
const char *
trap_session_feed(struct trap_session *s, const struct config *cfg, const char *buf, size_t n)
{
	const char *why;

	s->last = time(NULL);
	s->bytes += n;
	if (s->bytes > cfg->trap_bytes) {
		trap_session_send(s, "552 5.3.4 Too much data\r\n");
		return "bytes";
	}
	for (size_t i = 0; i < n; i++) {
		char c = buf[i];

		if (c == '\n') {
			size_t len = s->len;
			bool was_overlong = s->overlong;

			if (len > 0 && s->line[len - 1] == '\r')
				len--;
			s->len = 0;
			s->overlong = false;
			if (was_overlong) {
				if (!s->in_data) {
					s->bad++;
					trap_session_send(s, "500 5.5.2 Line too long\r\n");
					if (s->bad >= TRAP_BAD_COMMANDS)
						return "errors";
				}
				continue;
			}
			if ((why = trap_line(s, cfg, s->line, len)) != NULL)
				return why;
			continue;
		}
		if (s->len < SMTP_LINE_MAX)
			s->line[s->len++] = c;
		else
			s->overlong = true;
	}
	return NULL;
}
