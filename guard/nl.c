/*
 * nl.c — nf_tables transactions: a batch built in one buffer, each message
 * labelled with the object it changes, sent at once, and every ACK read and
 * tied back to its sequence number (as nftables' mnl_batch_talk does), so a
 * refusal is reported as "add rule fence #12 (queue): No such file or
 * directory" and not as a bare errno. The kernel applies a batch whole or
 * not at all. Building never touches the kernel (unit tests parse batches
 * back); sending needs CAP_NET_ADMIN. Never logs, never retries. It also
 * opens the netfilter netlink sockets the other rooms use (nl_open) and
 * sends their single requests (nl_talk).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include "smtpguard.h"

/*
 * The batch stops at NL_BATCH_LIMIT; the slack behind it must hold the one
 * message that crossed the limit (libmnl's contract), and no message we
 * build is larger than NL_MSG_MAX (ruleset.c bounds set elements for that).
 */
#define NL_MSG_MAX	(64 * 1024)
#define NL_BATCH_LIMIT	(256 * 1024)
#define NL_BATCH_BUF	(NL_BATCH_LIMIT + NL_MSG_MAX)
/* The kernel answers before sendmsg returns; waiting is only a safety net. */
#define NL_ACK_WAIT_MS	2000
#define NL_RECV_BUF	(MNL_SOCKET_BUFFER_SIZE * 4)

int
nl_batch_init(struct nl_batch *b)
{
	memset(b, 0, sizeof(*b));
	b->failed = -1;
	if ((b->buf = malloc(NL_BATCH_BUF)) == NULL)
		return -1;
	if ((b->mnl = mnl_nlmsg_batch_start(b->buf, NL_BATCH_LIMIT)) == NULL) {
		free(b->buf);
		b->buf = NULL;
		return -1;
	}
	/* Sequence numbers only need to be unique on the socket that sends them. */
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
	b->failed = -1;
}

struct nlmsghdr *
nl_batch_put(struct nl_batch *b, uint16_t type, uint16_t family, uint16_t flags,
    const char *fmt, ...)
{
	va_list ap;

	if (b->finished || b->nlabels == NL_BATCH_MAX_MSGS) {
		errno = E2BIG;
		return NULL;
	}
	va_start(ap, fmt);
	vsnprintf(b->labels[b->nlabels], sizeof(b->labels[0]), fmt, ap);
	va_end(ap);
	b->nlabels++;
	/* NLM_F_ACK on every message: each one is answered, so each can be blamed. */
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

int
nl_batch_finish(struct nl_batch *b, const void **data, size_t *len)
{
	if (!b->finished) {
		nftnl_batch_end(mnl_nlmsg_batch_current(b->mnl), b->seq++);
		if (nl_batch_next(b) < 0)
			return -1;
		b->finished = true;
	}
	*data = mnl_nlmsg_batch_head(b->mnl);
	*len = mnl_nlmsg_batch_size(b->mnl);
	return 0;
}

const char *
nl_batch_label(const struct nl_batch *b, int i)
{
	return i >= 0 && (size_t)i < b->nlabels ? b->labels[i] : "batch";
}

/* The labelled message SEQ was sent as; -1 for BEGIN, END or a stranger. */
static int
nl_index(const struct nl_batch *b, uint32_t seq)
{
	uint32_t i = seq - b->seq0 - 1;

	return i < b->nlabels ? (int)i : -1;
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
	/* Errors without a copy of the request: a whole batch's answers stay small. */
	(void)mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one));
	return nl;
}

/*
 * A receive buffer of SIZE bytes for a socket the kernel fills at its own
 * pace (queued packets, log copies): past the system's limit with
 * CAP_NET_ADMIN, else as large as the limit allows. Best effort: the
 * overruns that remain are the caller's to count.
 */
void
nl_rcvbuf(struct mnl_socket *nl, int size)
{
	int fd = mnl_socket_get_fd(nl);

	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

/*
 * One request that is not a batch (a queue's or a log group's config, a
 * conntrack update): sent, and its answer read and checked against its
 * sequence number. 0, or -1 + errno (the kernel's, for a refusal).
 */
int
nl_talk(struct mnl_socket *nl, struct nlmsghdr *nlh)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	ssize_t n;

	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -1;
	if ((n = mnl_socket_recvfrom(nl, buf, sizeof(buf))) < 0)
		return -1;
	return mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, mnl_socket_get_portid(nl), NULL,
	    NULL) < 0 ? -1 : 0;
}

/*
 * Reads answers until every labelled message has one. After the first error
 * only what is already queued is drained: a failed batch may leave some
 * messages unanswered, and that must not cost the wait.
 */
static int
nl_read_acks(struct nl_batch *b, struct mnl_socket *nl, int *error, size_t *answered)
{
	char *rbuf;
	uint32_t portid = mnl_socket_get_portid(nl);
	struct pollfd pfd = { .fd = mnl_socket_get_fd(nl), .events = POLLIN };

	if ((rbuf = malloc(NL_RECV_BUF)) == NULL)
		return -1;
	*error = 0;
	*answered = 0;
	while (*answered < b->nlabels &&
	    poll(&pfd, 1, *error != 0 ? 0 : NL_ACK_WAIT_MS) > 0) {
		ssize_t n = mnl_socket_recvfrom(nl, rbuf, NL_RECV_BUF);
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)rbuf;
		int remain = (int)n;

		if (n < 0) {
			if (*error == 0)
				*error = errno;
			break;
		}
		for (; mnl_nlmsg_ok(nlh, remain); nlh = mnl_nlmsg_next(nlh, &remain)) {
			const struct nlmsgerr *e;

			if (nlh->nlmsg_pid != portid)
				continue;
			if (nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
				continue;
			e = mnl_nlmsg_get_payload(nlh);
			if (nl_index(b, nlh->nlmsg_seq) >= 0)
				(*answered)++;
			if (e->error != 0 && *error == 0) {
				*error = -e->error;
				b->failed = nl_index(b, nlh->nlmsg_seq);
			}
		}
	}
	free(rbuf);
	return 0;
}

int
nl_batch_send(struct nl_batch *b, char *err, size_t errlen)
{
	struct mnl_socket *nl;
	const void *data;
	size_t len, answered;
	int error;

	b->failed = -1;
	if (nl_batch_finish(b, &data, &len) < 0) {
		snprintf(err, errlen, "netlink batch larger than %d bytes", NL_BATCH_LIMIT);
		return -1;
	}
	if ((nl = nl_open()) == NULL) {
		error = errno;
		snprintf(err, errlen, "netlink socket: %s", strerror(error));
		errno = error;
		return -1;
	}
	if (mnl_socket_sendto(nl, data, len) < 0) {
		error = errno;
		snprintf(err, errlen, "sending the netlink batch: %s", strerror(error));
		goto fail;
	}
	if (nl_read_acks(b, nl, &error, &answered) < 0) {
		error = errno;
		snprintf(err, errlen, "reading netlink answers: %s", strerror(error));
		goto fail;
	}
	if (error != 0) {
		snprintf(err, errlen, "%s: %s", nl_batch_label(b, b->failed), strerror(error));
		goto fail;
	}
	if (answered < b->nlabels) {
		error = ETIMEDOUT;
		snprintf(err, errlen, "the kernel answered %zu of %zu messages", answered,
		    b->nlabels);
		goto fail;
	}
	mnl_socket_close(nl);
	return 0;
fail:
	mnl_socket_close(nl);
	errno = error;
	return -1;
}
