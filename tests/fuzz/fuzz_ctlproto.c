/* libFuzzer: control requests are untrusted bytes (root's, but still parsed). */
#include <stddef.h>
#include <stdint.h>

#include "smtpguard.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_request req;
	char err[256];

	(void)ctl_parse_request((const char *)data, size, &req, err, sizeof(err));
	return 0;
}
