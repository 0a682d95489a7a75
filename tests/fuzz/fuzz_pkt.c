/*
 * libFuzzer: any bytes as a queued packet. A decode either fails with
 * EINVAL and leaves nothing behind, or gives a TCP segment of a known family
 * whose payload lies wholly inside the input.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "smtpguard.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct pkt zero;
	struct pkt p;

	if (pkt_parse(data, size, &p) < 0) {
		if (errno != EINVAL || memcmp(&p, &zero, sizeof(p)) != 0)
			abort();
		return 0;
	}
	if (p.family != AF_INET && p.family != AF_INET6)
		abort();
	/* The smallest decode: a 20-byte IPv4 header and a 20-byte TCP header. */
	if (p.payload < data + 40 || p.payload > data + size ||
	    p.payload_len > (size_t)(data + size - p.payload))
		abort();
	if (p.family == AF_INET && (memcmp(p.src + 4, zero.src, 12) != 0 ||
	    memcmp(p.dst + 4, zero.dst, 12) != 0))
		abort();
	return 0;
}
