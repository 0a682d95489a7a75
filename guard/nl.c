/*
 * nl.c — nf_tables transactions: a batch built in one buffer, each message
 * labelled with the object it changes, sent at once, and every ACK read and
 * tied back to its sequence number (as nftables' mnl_batch_talk does), so a
 * refusal is reported as "add rule fence #9 (queue): No such file or
 * directory" and not as a bare errno. The kernel applies a batch whole or
 * not at all. Building never touches the kernel (unit tests parse batches
 * back); sending needs CAP_NET_ADMIN. No logging.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include "smtpguard.h"

/* A full ruleset with EXCEPTIONS_MAX uids is ~60 KiB; leave room for one more message. */
#define NL_BATCH_BUF	(512 * 1024)
#define NL_MSG_MAX	(64 * 1024)
#define NL_ACK_WAIT_MS	2000	/* the kernel answers during sendmsg; this is a safety net */

int
nl_batch_init(struct nl_batch *b)
{
	memset(b, 0, sizeof(*b));
	if ((b->buf = malloc(NL_BATCH_BUF)) == NULL)
		return -1;
	b->mnl = mnl_nlmsg_batch_start(b->buf, NL_BATCH_BUF - NL_MSG_MAX);
	if (b->mnl == NULL) {
		free(b->buf);
		return -1;
	}
	/* Sequence numbers only need to be unique among our own pending requests. */
	b->seq0 = b->seq = (uint32_t)time(NULL);
	nftnl_batch_begin(mnl_nlmsg_batch_current(b->mnl), b->seq++);
	mnl_nlmsg_batch_next(b->mnl);
	return 0;
}

void
nl_batch_free(struct nl_batch *b)
{
	if (b->mnl != NULL)
		mnl_nlmsg_batch_stop(b->mnl);
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

struct nlmsghdr *
nl_batch_put(struct nl_batch *b, uint16_t type, uint16_t family, uint16_t flags,
    const char *fmt, ...)
{
	va_list ap;

	if (b->nlabels == NL_BATCH_MAX_MSGS) {
		errno = E2BIG;
		return NULL;
	}
	va_start(ap, fmt);
	vsnprintf(b->labels[b->nlabels], sizeof(b->labels[0]), fmt, ap);
	va_end(ap);
	b->nlabels++;
	return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b->mnl), type, family,
	    flags | NLM_F_ACK, b->seq++);
}

int
nl_batch_next(struct nl_batch *b)
{
	if (!mnl_nlmsg_batch_next(b->mnl)) {
		errno = E2BIG;
		return -1;
	}
	return 0;
}

/* The batch as sent: BEGIN, the messages, END. */
int
nl_batch_finish(struct nl_batch *b, const void **data, size_t *len)
{
	nftnl_batch_end(mnl_nlmsg_batch_current(b->mnl), b->seq++);
	if (nl_batch_next(b) < 0)
		return -1;
	*data = mnl_nlmsg_batch_head(b->mnl);
	*len = mnl_nlmsg_batch_size(b->mnl);
	return 0;
}

static const char *
nl_label(const struct nl_batch *b, uint32_t seq)
{
	/* seq0 is BEGIN; labelled messages follow it. */
	uint32_t i = seq - b->seq0 - 1;

	return i < b->nlabels ? b->labels[i] : "batch";
}

struct mnl_socket *
nl_open(void)
{
	struct mnl_socket *nl;
	int one = 1;

	if ((nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC)) == NULL)
		return NULL;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int saved = errno;

		mnl_socket_close(nl);
		errno = saved;
		return NULL;
	}
	/* ACKs without a copy of the request: a batch's ACKs then fit the buffer. */
	(void)mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one));
	return nl;
}

int
nl_batch_send(struct nl_batch *b, char *err, size_t errlen)
{
	struct mnl_socket *nl;
	const void *data;
	size_t len, answered = 0;
	char rbuf[MNL_SOCKET_BUFFER_SIZE * 4];
	int first_error = 0;
	uint32_t first_seq = 0;
	struct pollfd pfd;

	if (nl_batch_finish(b, &data, &len) < 0) {
		snprintf(err, errlen, "batch too large");
		return -1;
	}
	if ((nl = nl_open()) == NULL) {
		snprintf(err, errlen, "netlink socket: %s", strerror(errno));
		return -1;
	}
	if (mnl_socket_sendto(nl, data, len) < 0) {
		int saved = errno;

		snprintf(err, errlen, "sending the batch: %s", strerror(saved));
		mnl_socket_close(nl);
		errno = saved;
		return -1;
	}
	pfd = (struct pollfd){ .fd = mnl_socket_get_fd(nl), .events = POLLIN };
	/* One answer per labelled message: every ACK is read, not just the first error. */
	while (answered < b->nlabels && poll(&pfd, 1, NL_ACK_WAIT_MS) > 0) {
		ssize_t n = mnl_socket_recvfrom(nl, rbuf, sizeof(rbuf));
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)rbuf;
		int remain = (int)n;

		if (n < 0) {
			if (first_error == 0)
				first_error = errno;
			break;
		}
		for (; mnl_nlmsg_ok(nlh, remain); nlh = mnl_nlmsg_next(nlh, &remain)) {
			const struct nlmsgerr *e;

			if (nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			e = mnl_nlmsg_get_payload(nlh);
			answered++;
			if (e->error != 0 && first_error == 0) {
				first_error = -e->error;
				first_seq = nlh->nlmsg_seq;
			}
		}
	}
	mnl_socket_close(nl);
	if (first_error != 0) {
		snprintf(err, errlen, "%s: %s", first_seq ? nl_label(b, first_seq) : "batch",
		    strerror(first_error));
		errno = first_error;
		return -1;
	}
	if (answered < b->nlabels) {
		snprintf(err, errlen, "the kernel answered %zu of %zu messages", answered,
		    b->nlabels);
		errno = ETIMEDOUT;
		return -1;
	}
	return 0;
}
