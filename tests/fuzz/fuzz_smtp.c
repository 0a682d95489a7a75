/* libFuzzer: a client's bytes, split into lines, through commands and headers. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtpguard.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_client cl = { 0 }, body = { 0 };
	struct smtp_info m = { 0 };
	const char *p = (const char *)data, *end = p + size;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (len > SMTP_LINE_MAX)
			len = SMTP_LINE_MAX;
		smtp_client_line(&cl, &m, p, len);
		smtp_message_line(&body, &m, p, len);
		p = nl ? nl + 1 : end;
	}
	return 0;
}
