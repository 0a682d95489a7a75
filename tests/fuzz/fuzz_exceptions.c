/*
 * fuzz_exceptions: any bytes as one exception line (the control socket
 * hands the daemon exactly that). exception_parse() must never read outside
 * the line; a refusal must be a non-empty sentence of printable ASCII; an
 * accepted exception must keep every bound, format to a line that parses
 * back to the same exception, and format again to the same line. Resolution
 * uses the unit tests' fixtures (run from the top of the source tree).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

#define FUZZ_ERR_MAX	1024
#define FUZZ_PASSWD	"tests/fixtures/exceptions/passwd"
#define FUZZ_GROUP	"tests/fixtures/exceptions/group"

static void
check_bounds(const struct exception *x)
{
	size_t who = strnlen(x->who, sizeof(x->who));
	size_t comment = strnlen(x->comment, sizeof(x->comment));

	if (who == 0 || who == sizeof(x->who) || comment == sizeof(x->comment))
		abort();
	if (x->nuids < 1 || x->nuids > EXCEPTION_UIDS_MAX || x->nto > EXCEPTION_CIDRS_MAX ||
	    x->nports > EXCEPTION_PORTS_MAX || x->cap_per_hour > EXCEPTION_CAP_MAX)
		abort();
	for (size_t i = 0; i < x->nports; i++)
		if (x->ports[i] == 0)
			abort();
	for (size_t i = 0; i < x->nto; i++)
		if ((x->to[i].family == AF_INET && x->to[i].prefix > 32) ||
		    (x->to[i].family == AF_INET6 && x->to[i].prefix > 128) ||
		    (x->to[i].family != AF_INET && x->to[i].family != AF_INET6))
			abort();
	for (size_t i = 0; i < comment; i++)
		if ((unsigned char)x->comment[i] < 0x20 || x->comment[i] == 0x7f)
			abort();
}

static bool
same(const struct exception *a, const struct exception *b)
{
	return strcmp(a->who, b->who) == 0 && a->nuids == b->nuids &&
	    memcmp(a->uids, b->uids, a->nuids * sizeof(a->uids[0])) == 0 &&
	    a->nto == b->nto && memcmp(a->to, b->to, a->nto * sizeof(a->to[0])) == 0 &&
	    a->nports == b->nports &&
	    memcmp(a->ports, b->ports, a->nports * sizeof(a->ports[0])) == 0 &&
	    a->audit == b->audit && a->cap_per_hour == b->cap_per_hour &&
	    strcmp(a->comment, b->comment) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct exception x, back;
	static char line[2 * EXCEPTION_LINE_MAX], out[EXCEPTION_LINE_MAX],
	    again[EXCEPTION_LINE_MAX];
	char err[FUZZ_ERR_MAX];

	if (size >= sizeof(line))
		size = sizeof(line) - 1;
	memcpy(line, data, size);
	line[size] = '\0';
	err[0] = '\0';
	if (exception_parse(line, FUZZ_PASSWD, FUZZ_GROUP, &x, err, sizeof(err)) < 0) {
		if (err[0] == '\0')
			abort();
		for (const char *p = err; *p != '\0'; p++)
			if (*p < 0x20 || *p >= 0x7f)
				abort();
		return 0;
	}
	check_bounds(&x);
	if (exception_format(&x, out, sizeof(out)) < 0)
		abort();
	if (exception_parse(out, FUZZ_PASSWD, FUZZ_GROUP, &back, err, sizeof(err)) < 0 ||
	    !same(&x, &back))
		abort();
	if (exception_format(&back, again, sizeof(again)) < 0 || strcmp(out, again) != 0)
		abort();
	return 0;
}
