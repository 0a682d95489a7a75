/*
 * libFuzzer: MTA logs hold strings chosen by whoever sends mail through the
 * host (addresses, SASL names, subjects, remote replies). The first input byte
 * picks the line parser alone or a whole `smtpguard mta-report` (text or
 * JSON); the rest is the log. Output goes to /dev/null; only crashes, leaks
 * and undefined behaviour count.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "smtpguard.h"
#include "harness.h"

int LLVMFuzzerInitialize(int *, char ***);
int LLVMFuzzerTestOneInput(const uint8_t *, size_t);


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return harness_init("mtalog");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[6] = { "mta-report", harness_path, NULL, NULL, NULL, NULL };
	int argc = 2;
	uint8_t pick;

	if (size == 0)
		return 0;
	pick = data[0] % 3;
	data++;
	size--;
	if (pick == 0) {
		struct mtalog_clock clk;
		struct mtalog_line l;
		const uint8_t *p = data, *end = data + size, *nl;

		mtalog_clock_init(&clk, 1795305600);
		for (; p < end; p = nl + 1) {
			size_t n;
			char *line;

			nl = memchr(p, '\n', (size_t)(end - p));
			nl = nl ? nl : end;
			n = (size_t)(nl - p);
			/* an exact-size copy, so ASan sees any read past the line */
			if ((line = malloc(n ? n : 1)) == NULL)
				return 0;
			memcpy(line, p, n);
			if (mtalog_parse(&clk, line, n, &l) == MTALOG_RCPT && l.reply.len > 0)
				(void)mtalog_blacklisted(l.reply.p, l.reply.len);
			free(line);
		}
		return 0;
	}
	if (harness_file(data, size) < 0)
		return 0;
	if (pick == 2) {
		argv[argc++] = "--json";
		argv[argc++] = "--since";
		argv[argc++] = "2026-11-22T10:00Z";
	}
	harness_quiet();
	(void)mtareport_cli(argc, argv);
	harness_loud();
	return 0;
}
