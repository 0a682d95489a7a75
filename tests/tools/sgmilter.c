/*
 * sgmilter — a stand-in for a milter the admin already runs (OpenDKIM,
 * a virus scanner), so the tests can show it keeps working beside the gate.
 *
 *   sgmilter SOCKET LOG
 *	serve the milter protocol (libmilter) on SOCKET (e.g.
 *	inet:8891@127.0.0.1); for each message, at end of message, append
 *	"eom QUEUE_ID SUBJECT" to LOG and add the header "X-Stand-In-Milter:
 *	seen"; accept everything. Prints "ready" once listening. Runs until
 *	killed.
 *   sgmilter --noop SOCKET
 *	a milter that does nothing: it negotiates every stage away but the
 *	end of message and accepts there. What any milter costs the MTA
 *	(the connection, the negotiation, one round trip per message): the
 *	bench's floor for the gate.
 * It judges nothing: the test compares its log with the gate's events.
 */
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libmilter/mfapi.h>

#define SUBJECT_MAX	256	/* the test's subjects are short: the rest is cut */

struct message {
	char	subject[SUBJECT_MAX];
};

static FILE *logf_;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static struct message *
message_of(SMFICTX *ctx)
{
	struct message *m = smfi_getpriv(ctx);

	if (m == NULL && (m = calloc(1, sizeof(*m))) != NULL)
		smfi_setpriv(ctx, m);
	return m;
}

static sfsistat
on_envfrom(SMFICTX *ctx, char **argv)
{
	struct message *m = message_of(ctx);

	(void)argv;
	if (m != NULL)
		m->subject[0] = '\0';
	return SMFIS_CONTINUE;
}

static sfsistat
on_header(SMFICTX *ctx, char *name, char *value)
{
	struct message *m = message_of(ctx);

	if (m != NULL && strcasecmp(name, "Subject") == 0)
		snprintf(m->subject, sizeof(m->subject), "%s", value);
	return SMFIS_CONTINUE;
}

static sfsistat
on_eom(SMFICTX *ctx)
{
	struct message *m = message_of(ctx);
	const char *qid = smfi_getsymval(ctx, "i");

	pthread_mutex_lock(&log_lock);
	fprintf(logf_, "eom %s %s\n", qid != NULL ? qid : "?", m != NULL ? m->subject : "");
	fflush(logf_);
	pthread_mutex_unlock(&log_lock);
	(void)smfi_addheader(ctx, "X-Stand-In-Milter", "seen");
	return SMFIS_ACCEPT;
}

static sfsistat
noop_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
    unsigned long f3, unsigned long *pf0, unsigned long *pf1, unsigned long *pf2,
    unsigned long *pf3)
{
	(void)ctx;
	(void)f0;
	(void)f2;
	(void)f3;
	*pf0 = 0;
	*pf1 = f1 & (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT |
	    SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NOUNKNOWN | SMFIP_NODATA);
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

static sfsistat
noop_eom(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_ACCEPT;
}

static sfsistat
on_close(SMFICTX *ctx)
{
	free(smfi_getpriv(ctx));
	smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

int
main(int argc, char **argv)
{
	struct smfiDesc desc = {
		.xxfi_name = "sgmilter",
		.xxfi_version = SMFI_VERSION,
		.xxfi_flags = SMFIF_ADDHDRS,
		.xxfi_envfrom = on_envfrom,
		.xxfi_header = on_header,
		.xxfi_eom = on_eom,
		.xxfi_close = on_close,
	};
	struct smfiDesc noop = {
		.xxfi_name = "sgmilter-noop",
		.xxfi_version = SMFI_VERSION,
		.xxfi_eom = noop_eom,
		.xxfi_negotiate = noop_negotiate,
	};
	bool do_nothing = argc == 3 && strcmp(argv[1], "--noop") == 0;
	const char *sock = do_nothing ? argv[2] : argv[1];

	if (argc != 3) {
		fprintf(stderr, "usage: sgmilter SOCKET LOG | sgmilter --noop SOCKET\n");
		return 2;
	}
	if (do_nothing)
		desc = noop;
	else if ((logf_ = fopen(argv[2], "a")) == NULL) {
		fprintf(stderr, "sgmilter: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	if (smfi_setconn((char *)sock) == MI_FAILURE || smfi_register(desc) == MI_FAILURE ||
	    smfi_opensocket(1) == MI_FAILURE) {
		fprintf(stderr, "sgmilter: cannot listen on %s\n", sock);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
