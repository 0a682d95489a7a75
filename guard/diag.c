/*
 * diag.c — which socket sent this SYN: one exact inet_diag lookup by
 * 4-tuple (NETLINK_SOCK_DIAG), answering the socket's inode, owner uid and
 * cookie (the key of the connect hook's record).
 * The connecting socket is in SYN_SENT, hashed by its 4-tuple, so this is a
 * hash lookup in the kernel, not a dump. Read-only; no logging.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>

#include "smtpguard.h"

#define DIAG_WAIT_MS	100	/* the kernel answers synchronously; this bounds a bug */
#define DIAG_READS_MAX	4	/* stale answers skipped before giving up */

struct diag {
	struct mnl_socket	*nl;
	uint32_t		 seq;
};

struct diag *
diag_open(void)
{
	struct diag *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	if ((d->nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC)) == NULL)
		goto err;
	if (mnl_socket_bind(d->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int saved = errno;

		mnl_socket_close(d->nl);
		errno = saved;
		goto err;
	}
	return d;
err:
	free(d);
	return NULL;
}

void
diag_close(struct diag *d)
{
	if (d == NULL)
		return;
	mnl_socket_close(d->nl);
	free(d);
}

/*
 * Is this the answer about the socket asked for? The kernel fills the id from
 * the socket it found: the same ports and addresses (an AF_INET6 socket found
 * by an AF_INET question writes them v4-mapped).
 */
static bool
diag_same(const struct inet_diag_msg *msg, int family, const uint8_t *src,
    const uint8_t *dst, size_t alen, uint16_t sport, uint16_t dport)
{
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };
	const uint8_t *s = (const uint8_t *)msg->id.idiag_src;
	const uint8_t *d = (const uint8_t *)msg->id.idiag_dst;

	if (ntohs(msg->id.idiag_sport) != sport || ntohs(msg->id.idiag_dport) != dport)
		return false;
	if (msg->idiag_family == family)
		return memcmp(s, src, alen) == 0 && memcmp(d, dst, alen) == 0;
	if (family != AF_INET || msg->idiag_family != AF_INET6)
		return false;
	return memcmp(s, v4mapped, 12) == 0 && memcmp(d, v4mapped, 12) == 0 &&
	    memcmp(s + 12, src, 4) == 0 && memcmp(d + 12, dst, 4) == 0;
}

static int
diag_ask(struct diag *d, int family, const uint8_t *src, const uint8_t *dst, size_t alen,
    uint16_t sport, uint16_t dport, struct diag_sock *out)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct inet_diag_req_v2 *r;
	struct pollfd pfd = { .fd = mnl_socket_get_fd(d->nl), .events = POLLIN };
	uint32_t seq = ++d->seq, portid = mnl_socket_get_portid(d->nl);
	ssize_t n;

	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_REQUEST;	/* no NLM_F_DUMP: one socket, by hash */
	nlh->nlmsg_seq = seq;
	r = mnl_nlmsg_put_extra_header(nlh, sizeof(*r));
	r->sdiag_family = (uint8_t)family;
	r->sdiag_protocol = IPPROTO_TCP;
	r->idiag_states = ~0U;
	/* The id is the socket's own view: src is the local end, i.e. the packet's source. */
	r->id.idiag_sport = htons(sport);
	r->id.idiag_dport = htons(dport);
	memcpy(r->id.idiag_src, src, alen);
	memcpy(r->id.idiag_dst, dst, alen);
	r->id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	r->id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

	if (mnl_socket_sendto(d->nl, nlh, nlh->nlmsg_len) < 0)
		return -1;
	for (int reads = 0; reads < DIAG_READS_MAX; reads++) {
		const struct nlmsghdr *m;
		int remain;

		if (poll(&pfd, 1, DIAG_WAIT_MS) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if ((n = mnl_socket_recvfrom(d->nl, buf, sizeof(buf))) < 0)
			return -1;
		remain = (int)n;
		for (m = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(m, remain);
		    m = mnl_nlmsg_next(m, &remain)) {
			const struct inet_diag_msg *msg;

			if (m->nlmsg_seq != seq || m->nlmsg_pid != portid)
				continue;	/* a late answer to an earlier question */
			switch (m->nlmsg_type) {
			case NLMSG_ERROR: {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(m);

				if (mnl_nlmsg_get_payload_len(m) < sizeof(*e)) {
					errno = EPROTO;
					return -1;
				}
				errno = e->error != 0 ? -e->error : ENOENT;
				return -1;
			}
			case NLMSG_DONE:
				errno = ENOENT;
				return -1;
			case SOCK_DIAG_BY_FAMILY:
				if (mnl_nlmsg_get_payload_len(m) < sizeof(*msg)) {
					errno = EPROTO;
					return -1;
				}
				msg = mnl_nlmsg_get_payload(m);
				if (!diag_same(msg, family, src, dst, alen, sport, dport)) {
					errno = EPROTO;
					return -1;
				}
				out->inode = msg->idiag_inode;
				out->uid = msg->idiag_uid;
				out->cookie = (uint64_t)msg->id.idiag_cookie[1] << 32 |
				    msg->id.idiag_cookie[0];
				return 0;
			default:
				errno = EPROTO;
				return -1;
			}
		}
	}
	errno = EPROTO;
	return -1;
}

int
diag_lookup(struct diag *d, const struct pkt *p, struct diag_sock *out)
{
	uint8_t src6[16], dst6[16];

	if (p->family == AF_INET6)
		return diag_ask(d, AF_INET6, p->src, p->dst, 16, p->sport, p->dport, out);
	if (p->family != AF_INET) {
		errno = EAFNOSUPPORT;
		return -1;
	}
	if (diag_ask(d, AF_INET, p->src, p->dst, 4, p->sport, p->dport, out) == 0)
		return 0;
	if (errno != ENOENT)
		return -1;
	/* An IPv4 connection from an AF_INET6 socket: the socket sees ::ffff:a.b.c.d. */
	memset(src6, 0, sizeof(src6));
	memset(dst6, 0, sizeof(dst6));
	src6[10] = src6[11] = dst6[10] = dst6[11] = 0xff;
	memcpy(src6 + 12, p->src, 4);
	memcpy(dst6 + 12, p->dst, 4);
	return diag_ask(d, AF_INET6, src6, dst6, 16, p->sport, p->dport, out);
}
