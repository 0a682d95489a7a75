/*
 * cidr.c — an address prefix as an admin writes it ("192.0.2.0/24",
 * "2001:db8::/32", a bare address meaning the host): parsed, matched against
 * a packet's address, printed back. Used by exceptions (to=), the policy's
 * match and review's filter. Pure: -1 on bad input, never logs; a prefix
 * with host bits set is refused, not rounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "smtpguard.h"

int
cidr_parse(const char *s, struct cidr *c)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	long prefix, max;

	if (strlcpy_sg(buf, s, sizeof(buf)) >= sizeof(buf))
		return -1;
	memset(c, 0, sizeof(*c));
	if ((slash = strchr(buf, '/')) != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1)
		c->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, c->addr) == 1)
		c->family = AF_INET6;
	else
		return -1;
	max = prefix = c->family == AF_INET ? 32 : 128;
	if (slash != NULL) {
		if (slash[1] < '0' || slash[1] > '9')
			return -1;
		errno = 0;
		prefix = strtol(slash + 1, &end, 10);
		if (*end != '\0' || errno != 0 || prefix > max)
			return -1;
	}
	c->prefix = (uint8_t)prefix;
	/* Host bits set ("192.0.2.5/24") are a typo more often than not. */
	for (long bit = prefix; bit < max; bit++)
		if (c->addr[bit / 8] & (0x80 >> (bit % 8)))
			return -1;
	return 0;
}

bool
cidr_contains(const struct cidr *c, int family, const uint8_t *addr)
{
	int full = c->prefix / 8, rest = c->prefix % 8;

	if (c->family != family)
		return false;
	if (memcmp(c->addr, addr, (size_t)full) != 0)
		return false;
	return rest == 0 ||
	    ((c->addr[full] ^ addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

void
cidr_format(const struct cidr *c, char *out, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (inet_ntop(c->family, c->addr, a, sizeof(a)) == NULL)
		strlcpy_sg(a, "?", sizeof(a));
	snprintf(out, len, "%s/%u", a, c->prefix);
}
