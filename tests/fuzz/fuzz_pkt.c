/*
 * libFuzzer: any bytes as a queued packet, and as the audit tap's copy (cut
 * anywhere in its payload). A decode either fails with EINVAL and leaves
 * nothing behind, or gives a TCP segment of a known family whose payload lies
 * wholly inside the input; what decodes whole decodes the same as a copy.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "smtpguard.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const struct pkt zero;

static void
check(const uint8_t *data, size_t size, const struct pkt *p)
{
	if (p->family != AF_INET && p->family != AF_INET6)
		abort();
	/* The smallest decode: a 20-byte IPv4 header and a 20-byte TCP header. */
	if (p->payload < data + 40 || p->payload > data + size ||
	    p->payload_len > (size_t)(data + size - p->payload))
		abort();
	if (p->family == AF_INET && (memcmp(p->src + 4, zero.src, 12) != 0 ||
	    memcmp(p->dst + 4, zero.dst, 12) != 0))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pkt p, c;
	int whole = pkt_parse(data, size, &p), copy;

	if (whole < 0 && (errno != EINVAL || memcmp(&p, &zero, sizeof(p)) != 0))
		abort();
	copy = pkt_parse_copy(data, size, &c);
	if (copy < 0 && (errno != EINVAL || memcmp(&c, &zero, sizeof(c)) != 0))
		abort();
	if (copy == 0)
		check(data, size, &c);
	if (whole < 0)
		return 0;
	if (copy < 0 || memcmp(&p, &c, sizeof(p)) != 0)
		abort();
	return 0;
}
