/*
 * pkt.c — decodes a queued packet (from its IP header on) into addresses,
 * ports, TCP sequence, flags and payload. Pure: every length is checked
 * against the buffer; anything that is not a whole IPv4/IPv6 TCP segment is
 * -1 with errno EINVAL. Payload points into the caller's buffer. The audit
 * tap's copies are cut at its snaplen (ruleset.c): pkt_parse_copy takes a
 * segment whose payload the copy ends inside, its headers still whole.
 */
#include <errno.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "smtpguard.h"

/* Extension headers walked before TCP; locally generated TCP carries none. */
#define PKT_MAX_EXT_HEADERS	8

static int
pkt_tcp(const uint8_t *buf, size_t len, struct pkt *p)
{
	struct tcphdr th;
	size_t off;

	if (len < sizeof(th))
		return -1;
	memcpy(&th, buf, sizeof(th));
	off = (size_t)th.th_off * 4;
	if (off < sizeof(th) || off > len)
		return -1;
	p->sport = ntohs(th.th_sport);
	p->dport = ntohs(th.th_dport);
	p->seq = ntohl(th.th_seq);
	p->tcp_flags = th.th_flags;
	p->payload = buf + off;
	p->payload_len = len - off;
	return 0;
}

static int
pkt_ipv4(const uint8_t *buf, size_t len, bool cut_ok, struct pkt *p)
{
	struct ip ih;
	size_t hlen, total;

	if (len < sizeof(ih))
		return -1;
	memcpy(&ih, buf, sizeof(ih));
	hlen = (size_t)ih.ip_hl * 4;
	total = ntohs(ih.ip_len);
	/* GSO packets queued with NFQA_CFG_F_GSO may carry ip_len 0. */
	if (total == 0 || (cut_ok && total > len))
		total = len;
	if (hlen < sizeof(ih) || total < hlen || total > len || ih.ip_p != IPPROTO_TCP)
		return -1;
	if ((ntohs(ih.ip_off) & (IP_MF | IP_OFFMASK)) != 0)
		return -1;	/* a fragment: no whole TCP header to trust */
	p->family = AF_INET;
	memcpy(p->src, &ih.ip_src, 4);
	memcpy(p->dst, &ih.ip_dst, 4);
	return pkt_tcp(buf + hlen, total - hlen, p);
}

static int
pkt_ipv6(const uint8_t *buf, size_t len, bool cut_ok, struct pkt *p)
{
	struct ip6_hdr ih;
	size_t off = sizeof(ih), end;
	uint8_t next;

	if (len < sizeof(ih))
		return -1;
	memcpy(&ih, buf, sizeof(ih));
	end = sizeof(ih) + ntohs(ih.ip6_plen);
	if (ntohs(ih.ip6_plen) == 0 || (cut_ok && end > len))	/* GSO, as above */
		end = len;
	if (end > len)
		return -1;
	next = ih.ip6_nxt;
	for (int i = 0; next != IPPROTO_TCP; i++) {
		struct ip6_ext ext;

		if (i == PKT_MAX_EXT_HEADERS)
			return -1;
		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING &&
		    next != IPPROTO_DSTOPTS)
			return -1;	/* fragments, ESP, anything else: not ours to parse */
		if (off + sizeof(ext) > end)
			return -1;
		memcpy(&ext, buf + off, sizeof(ext));
		next = ext.ip6e_nxt;
		off += ((size_t)ext.ip6e_len + 1) * 8;
		if (off > end)
			return -1;
	}
	p->family = AF_INET6;
	memcpy(p->src, &ih.ip6_src, 16);
	memcpy(p->dst, &ih.ip6_dst, 16);
	return pkt_tcp(buf + off, end - off, p);
}

static int
parse(const uint8_t *buf, size_t len, bool cut_ok, struct pkt *p)
{
	int rc = -1;

	memset(p, 0, sizeof(*p));
	if (buf != NULL && len > 0) {
		if (buf[0] >> 4 == 4)
			rc = pkt_ipv4(buf, len, cut_ok, p);
		else if (buf[0] >> 4 == 6)
			rc = pkt_ipv6(buf, len, cut_ok, p);
	}
	if (rc < 0) {
		memset(p, 0, sizeof(*p));
		errno = EINVAL;
	}
	return rc;
}

int
pkt_parse(const uint8_t *buf, size_t len, struct pkt *p)
{
	return parse(buf, len, false, p);
}

/* payload_len is what the copy holds of the payload, maybe less than was sent. */
int
pkt_parse_copy(const uint8_t *buf, size_t len, struct pkt *p)
{
	return parse(buf, len, true, p);
}
