/*
 * libFuzzer: any bytes as the first flight of a TLS client. A name comes
 * back only whole, terminated and made of host-name bytes; anything else
 * is -1 with a reason.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[SMTP_FIELD_MAX];
	size_t n;

	if (tls_sni(data, size, name, sizeof(name)) < 0) {
		if (errno != EAGAIN && errno != EINVAL && errno != ENOENT &&
		    errno != ENAMETOOLONG)
			abort();
		return 0;
	}
	n = strlen(name);
	if (n == 0 || n >= sizeof(name))
		abort();
	for (size_t i = 0; i < n; i++)
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._",
		    name[i]) == NULL)
			abort();
	return 0;
}
