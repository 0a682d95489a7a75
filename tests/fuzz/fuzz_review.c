/*
 * libFuzzer: the event log is read back by root's CLI, and it holds strings
 * chosen by whoever made the connections. The first input byte picks a
 * `smtpguard log` / `smtpguard top` command line, the --since parser, or the
 * check of top's flat scanner against jansson; the rest is the log file (or
 * the one line). "@" in a command line stands for the file again (log and top
 * reading and merging several files). Output goes to /dev/null; crashes,
 * leaks, undefined behaviour and any line the two parsers read differently
 * count.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "smtpguard.h"
#include "harness.h"

#define TIME_ARG_MAX	64

int LLVMFuzzerInitialize(int *, char ***);
int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char *const cmds[][12] = {
	{ "log", "-n", "0", NULL },
	{ "log", "--json", "-n", "0", NULL },
	{ "log", NULL },
	{ "log", "-n", "3", "--uid", "33", "--dst", "192.0.2.0/24", NULL },
	{ "log", "-n", "0", "--since", "2026-11-22T10:00Z", "--event", "smtp", NULL },
	{ "log", "--until", "2026-11-22T10:00:05Z", "--user", "www-data", "--dst", ":25", NULL },
	{ "log", "--action", "trap", "--dst", "[2001:db8::25]:25", NULL },
	{ "top", NULL },
	{ "top", "--json", "--by", "user", NULL },
	{ "top", "--by", "process", "--limit", "2", NULL },
	{ "top", "--by", "dst", "--since", "2026-11-22T10:00Z", NULL },
	{ "top", "--by", "cwd", NULL },
	{ "top", "--json", "--by", "sender", NULL },
	{ "top", "--by", "script", NULL },
	{ "top", "--by", "subject", "--event", "smtp", NULL },
	{ "top", "--by", "origin", NULL },
	{ "top", "--json", "--event", "mail", "--action", "hold", NULL },
	{ "top", "--by", "host", "--by", "user", "@", "@", NULL },
	{ "top", "--json", "--by", "host", "--by", "origin", "--by", "sender", NULL },
	{ "top", "--since", "2026-11-22T10:00Z", "--host", "webb", "--origin", "domain:x", NULL },
	{ "log", "-n", "0", "--event", "mail", "--origin", "sasl:a@x", NULL },
	{ "log", "-n", "3", "@", "@", NULL },
	{ "log", "-n", "0", "--since", "2026-11-22T10:00Z", "--host", "webb", "@", "@", NULL },
};
#define NCMDS	(sizeof(cmds) / sizeof(cmds[0]))
#define PICK_TIME	NCMDS
#define PICK_FLAT	(NCMDS + 1)


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return harness_init("events");
}

/* Whatever evread_flat_scan() accepts, jansson must accept and read the same way. */
static void
check_flat(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1);
	json_error_t jerr;
	json_t *ev;
	struct evread_event flat, full;

	if (copy == NULL)
		return;
	memcpy(copy, data, size);
	if (evread_flat_scan(copy, size, &flat) == 0) {
		ev = json_loadb((const char *)data, size, JSON_DISABLE_EOF_CHECK, &jerr);
		if (ev == NULL || !json_is_object(ev))
			abort();	/* the scanner took a line jansson refuses */
		evread_from_json(&full, ev);
		for (int i = 0; i < EVREAD_NFIELDS; i++)
			if ((flat.s[i] == NULL) != (full.s[i] == NULL) ||
			    (flat.s[i] != NULL && strcmp(flat.s[i], full.s[i]) != 0) ||
			    flat.has_n[i] != full.has_n[i] || flat.n[i] != full.n[i])
				abort();
		json_decref(ev);
	}
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[12];
	int argc = 0;
	size_t pick;

	if (size == 0)
		return 0;
	pick = data[0] % (NCMDS + 2);
	data++;
	size--;
	if (pick == PICK_FLAT) {
		check_flat(data, size);
		return 0;
	}
	if (pick == PICK_TIME) {
		char s[TIME_ARG_MAX], ts[40];

		if (size >= sizeof(s))
			size = sizeof(s) - 1;
		memcpy(s, data, size);
		s[size] = '\0';
		(void)when_parse_ts(s, 1795341600, ts, sizeof(ts));
		return 0;
	}
	if (harness_file(data, size) < 0)
		return 0;
	for (; cmds[pick][argc] != NULL; argc++)
		argv[argc] = strcmp(cmds[pick][argc], "@") == 0 ? (char *)harness_path :
		    cmds[pick][argc];
	argv[argc] = NULL;
	harness_quiet();
	if (argv[0][0] == 'l')
		(void)review_log(harness_path, argc, argv);
	else
		(void)review_top(harness_path, argc, argv);
	harness_loud();
	return 0;
}
