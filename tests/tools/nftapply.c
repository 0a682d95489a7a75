/*
 * nftapply — drives ruleset.c against the running kernel for the namespace
 * tests: install the table from a spec given on the command line (defaults:
 * the golden spec of rules/smtpguard.nft), remove it, ask whether it exists,
 * add or delete allow_uids elements. Run it only inside a namespace the test
 * made: it changes that namespace's ruleset.
 *
 * usage: nftapply install [-p PORT,...] [-m UID,...] [-a UID,...] [-l yes|no]
 *                         [-q NUM] [-M MASK] [-T PORT|-T no] [-R PORT] [-t TABLE]
 *        (-T PORT: the trap's nat chain, to PORT; -R PORT: to_mta's. Without
 *        them, neither: the golden table, action reject and no mail gate.)
 *        nftapply remove [-t TABLE]
 *        nftapply exists [-t TABLE]          exit 0 if present, 1 if absent
 *        nftapply allow|revoke [-t TABLE] UID...
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtpguard.h"

#define LIST_MAX	64	/* ports or uids on one command line */
#define GOLDEN_MASK	0x00700000
#define GOLDEN_TRAP	10025
#define GOLDEN_REDIRECT	25
#define GOLDEN_MTA_UID	101

static void
usage(void)
{
	fprintf(stderr, "usage: nftapply install [-p ports] [-m uids] [-a uids] "
	    "[-l yes|no] [-q num] [-M mask] [-T port|no] [-R port] [-t table]\n"
	    "       nftapply remove|exists [-t table]\n"
	    "       nftapply allow|revoke [-t table] uid...\n");
	exit(2);
}

static unsigned long
number(const char *s, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || v > max) {
		fprintf(stderr, "nftapply: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

/* "25,465,587" or "" (an empty list). */
static size_t
list(const char *s, unsigned long max, unsigned long *out)
{
	char buf[1024], *p, *tok;
	size_t n = 0;

	if (strlen(s) >= sizeof(buf))
		usage();
	strcpy(buf, s);
	for (p = buf; (tok = strsep(&p, ",")) != NULL; ) {
		if (*tok == '\0')
			continue;
		if (n == LIST_MAX)
			usage();
		out[n++] = number(tok, max);
	}
	return n;
}

int
main(int argc, char **argv)
{
	struct ruleset_spec spec = {
		.table = TABLE_NAME,
		.allow_local = true,
		.queue_num = 0,
		.audit_group = 2525,
		.audit_snaplen = 4608,	/* the default inspect_bytes, 4096, and 512 of headers */
		.data_release = true,
		.mark_mask = GOLDEN_MASK,
		.trap_port = GOLDEN_TRAP,
		.redirect_port = GOLDEN_REDIRECT,
	};
	uint16_t ports[LIST_MAX] = { 25, 465, 587 };
	uid_t mta[LIST_MAX] = { GOLDEN_MTA_UID }, allow[LIST_MAX];
	unsigned long v[LIST_MAX];
	char err[256];
	const char *cmd;
	bool native;
	size_t n;
	int c, rc;

	if (argc < 2)
		usage();
	cmd = argv[1];
	spec.ports = ports;
	spec.nports = 3;
	spec.mta_uids = mta;
	spec.nmta = 1;
	spec.allow_uids = allow;
	optind = 2;
	while ((c = getopt(argc, argv, "p:m:a:l:q:M:T:R:t:")) != -1) {
		switch (c) {
		case 'p':
			spec.nports = list(optarg, UINT16_MAX, v);
			for (size_t i = 0; i < spec.nports; i++)
				ports[i] = (uint16_t)v[i];
			break;
		case 'm':
			spec.nmta = list(optarg, UINT32_MAX, v);
			for (size_t i = 0; i < spec.nmta; i++)
				mta[i] = (uid_t)v[i];
			break;
		case 'a':
			spec.nallow = list(optarg, UINT32_MAX, v);
			for (size_t i = 0; i < spec.nallow; i++)
				allow[i] = (uid_t)v[i];
			break;
		case 'l':
			spec.allow_local = strcmp(optarg, "yes") == 0;
			break;
		case 'q':
			spec.queue_num = (uint16_t)number(optarg, UINT16_MAX);
			break;
		case 'M':
			spec.mark_mask = (uint32_t)number(optarg, UINT32_MAX);
			break;
		case 'T':
			spec.trap = strcmp(optarg, "no") != 0;
			if (spec.trap)
				spec.trap_port = (uint16_t)number(optarg, UINT16_MAX);
			break;
		case 'R':
			spec.redirect = true;
			spec.redirect_port = (uint16_t)number(optarg, UINT16_MAX);
			break;
		case 't':
			spec.table = optarg;
			break;
		default:
			usage();
		}
	}

	if (strcmp(cmd, "install") == 0) {
		if (ruleset_install(&spec, &native, err, sizeof(err)) < 0) {
			fprintf(stderr, "nftapply: install: %s\n", err);
			return 1;
		}
		printf("installed (%s)\n", native ? "native queue" : "compat NFQUEUE");
		return 0;
	}
	if (strcmp(cmd, "remove") == 0) {
		if (ruleset_remove(spec.table, err, sizeof(err)) < 0) {
			fprintf(stderr, "nftapply: remove: %s\n", err);
			return 1;
		}
		return 0;
	}
	if (strcmp(cmd, "exists") == 0) {
		if ((rc = ruleset_exists(spec.table)) < 0) {
			fprintf(stderr, "nftapply: exists: %s\n", strerror(errno));
			return 2;
		}
		printf("%s\n", rc ? "present" : "absent");
		return rc ? 0 : 1;
	}
	if (strcmp(cmd, "allow") == 0 || strcmp(cmd, "revoke") == 0) {
		for (n = 0; optind < argc && n < LIST_MAX; optind++)
			allow[n++] = (uid_t)number(argv[optind], UINT32_MAX);
		if (n == 0 || optind < argc)
			usage();
		if (ruleset_set_uids(spec.table, "allow_uids", cmd[0] == 'a', allow, n, err,
		    sizeof(err)) < 0) {
			fprintf(stderr, "nftapply: %s: %s\n", cmd, err);
			return 1;
		}
		return 0;
	}
	usage();
}
