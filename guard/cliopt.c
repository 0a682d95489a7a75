/*
 * cliopt.c — the one option parser of the review commands (log, top,
 * mta-report, mta-check): --since/--until (when.c's forms), --limit and
 * --json and --help/-h are read here, with one wording of their errors, and
 * each command adds its own options through a callback, whose errors it says. It prints only what a
 * command line parser must (--help, usage errors on stderr); it never reads
 * a log and never exits.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smtpguard.h"

#define CLIOPT_MAX	32	/* long options of one command; the richest (top) has 15 */

static const struct option shared[] = {
	{ "since", required_argument, NULL, CLIOPT_SINCE },
	{ "until", required_argument, NULL, CLIOPT_UNTIL },
	{ "limit", required_argument, NULL, CLIOPT_LIMIT },
	{ "json", no_argument, NULL, CLIOPT_JSON },
	{ "help", no_argument, NULL, CLIOPT_HELP },
};

static bool
takes(const struct cliopt *o, int code)
{
	switch (code) {
	case CLIOPT_SINCE:
	case CLIOPT_UNTIL:
		return o->takes & CLIOPT_WANT_TIME;
	case CLIOPT_LIMIT:
		return o->takes & CLIOPT_WANT_LIMIT;
	case CLIOPT_JSON:
		return o->takes & CLIOPT_WANT_JSON;
	default:
		return true;
	}
}

/* 0: taken; -1: a bad value (said). */
static int
shared_option(struct cliopt *o, int ch, const char *arg)
{
	time_t now = time(NULL);
	char *end;

	if (ch == CLIOPT_LIMIT) {
		o->limit = strtol(arg, &end, 10);
		if (*end != '\0' || arg[0] == '\0' || o->limit < 1) {
			fprintf(stderr, "smtpguard %s: bad --limit '%s'\n", o->cmd, arg);
			return -1;
		}
		return 0;
	}
	/* Both forms from one NOW, so the string and the number mean the same second. */
	if (when_parse(arg, now, ch == CLIOPT_SINCE ? &o->since : &o->until) < 0 ||
	    when_parse_ts(arg, now, ch == CLIOPT_SINCE ? o->since_ts : o->until_ts,
	    sizeof(o->since_ts)) < 0) {
		fprintf(stderr, "smtpguard %s: bad time '%s' (10m, 2h, 3d, or "
		    "2026-11-22T10:00)\n", o->cmd, arg);
		return -1;
	}
	return 0;
}

int
cliopt_parse(struct cliopt *o, int argc, char **argv, const char *shortopts,
    const struct cliopt_option *own, cliopt_fn *fn, void *ctx)
{
	struct option opts[CLIOPT_MAX + 1];
	char err[PATH_MAX + 128];
	size_t n = 0;
	int ch, rc;

	for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
		if (takes(o, shared[i].val))
			opts[n++] = shared[i];
	for (size_t i = 0; own != NULL && own[i].name != NULL && n < CLIOPT_MAX; i++)
		opts[n++] = (struct option){ own[i].name,
		    own[i].arg ? required_argument : no_argument, NULL, own[i].code };
	memset(&opts[n], 0, sizeof(opts[n]));
	optind = 0;	/* glibc: a full reset, as the tests call the commands repeatedly */
	while ((ch = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		switch (ch) {
		case CLIOPT_SINCE:
		case CLIOPT_UNTIL:
		case CLIOPT_LIMIT:
			if (shared_option(o, ch, optarg) < 0)
				return 2;
			continue;
		case CLIOPT_JSON:
			o->json = true;
			continue;
		case CLIOPT_HELP:
		case 'h':
			for (size_t i = 0; o->help[i] != NULL; i++)
				fputs(o->help[i], stdout);
			return 1;
		}
		if (fn != NULL && (rc = fn(ctx, ch, optarg, err, sizeof(err))) != 0) {
			if (rc > 0)
				continue;
			fprintf(stderr, "smtpguard %s: %s\n", o->cmd, err);
			return 2;
		}
		fprintf(stderr, "smtpguard %s: see smtpguard %s --help\n", o->cmd, o->cmd);
		return 2;
	}
	if (!o->operands && optind != argc) {
		fprintf(stderr, "smtpguard %s: unexpected argument '%s'\n", o->cmd, argv[optind]);
		return 2;
	}
	o->next = optind;
	return 0;
}

/* The one of WORDS that ARG is (the table's own string), or NULL. */
const char *
cliopt_word(const char *arg, const char *const *words, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(arg, words[i]) == 0)
			return words[i];
	return NULL;
}
