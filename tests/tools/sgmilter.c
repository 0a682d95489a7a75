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
 * It judges nothing: the test compares its log with the gate's events.
 */
#include <errno.h>
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

	if (argc != 3) {
		fprintf(stderr, "usage: sgmilter SOCKET LOG\n");
		return 2;
	}
	if ((logf_ = fopen(argv[2], "a")) == NULL) {
		fprintf(stderr, "sgmilter: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	if (smfi_setconn(argv[1]) == MI_FAILURE || smfi_register(desc) == MI_FAILURE ||
	    smfi_opensocket(1) == MI_FAILURE) {
		fprintf(stderr, "sgmilter: cannot listen on %s\n", argv[1]);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
