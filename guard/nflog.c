/*
 * nflog.c — the audit tap: binds one nfnetlink_log group, which the
 * fence's "ct mark audit" rule copies an audited flow's packets to, and
 * hands each copy (the IP packet, as it left) to its caller. The packets
 * themselves were accepted in the kernel before the copy arrives, each
 * with its socket's uid and gid when it had one: nothing
 * here holds, answers or decides anything. A copy the kernel could not
 * deliver (socket full) is lost, not retried: the caller counts ENOBUFS.
 * No logging; errors return -1 + errno.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>

#include "smtpguard.h"

#define NFLOG_RECV_BUF		(256 * 1024)	/* one recv: a batch of copies */
#define NFLOG_COPY_RANGE	0xffff		/* a whole GSO segment */
#define NFLOG_SOCKET_BUF	(8 * 1024 * 1024)
/* The kernel gathers copies into one message until either bound is met. */
#define NFLOG_NLBUFSIZ		(128 * 1024)
#define NFLOG_FLUSH_CS		1		/* 10 ms */
#define NFLOG_QTHRESH		64
/* Read empty this long after a mark, the socket has given every copy before it: ten batch waits. */
#define NFLOG_SETTLE_NS		(10 * NFLOG_FLUSH_CS * 10 * 1000 * 1000ULL)

struct nflog {
	struct mnl_socket	*nl;
	uint16_t		 group;
	uint64_t		 bytes_read;	/* of copies, since open */
	uint64_t		 backlog_max;	/* the most that can wait unread */
	uint64_t		 drained_ns;	/* when the socket last read empty (mono) */
	uint8_t			*buf;
	nflog_packet_cb		 cb;
	void			*cb_arg;
};

static struct nlmsghdr *
config_msg(char *buf, uint16_t group)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;

	nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_UNSPEC;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = htons(group);
	return nlh;
}

struct nflog *
nflog_open(uint16_t group)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nfulnl_msg_config_cmd cmd = { .command = NFULNL_CFG_CMD_BIND };
	struct nfulnl_msg_config_mode mode = { .copy_range = htonl(NFLOG_COPY_RANGE),
	    .copy_mode = NFULNL_COPY_PACKET };
	struct nlmsghdr *nlh;
	struct nflog *l;
	socklen_t len = sizeof(int);
	int rcvbuf, saved;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->group = group;
	if ((l->buf = malloc(NFLOG_RECV_BUF)) == NULL)
		goto err;
	if ((l->nl = nl_open()) == NULL)
		goto err;
	nl_rcvbuf(l->nl, NFLOG_SOCKET_BUF);
	if (getsockopt(nflog_fd(l), SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len) < 0)
		goto err;
	/* The socket's bound, which one message may pass, and the batch being filled. */
	l->backlog_max = (uint64_t)rcvbuf + 2 * NFLOG_NLBUFSIZ;
	/* EBUSY: another program (ulogd?) holds the group. */
	nlh = config_msg(buf, group);
	mnl_attr_put(nlh, NFULA_CFG_CMD, sizeof(cmd), &cmd);
	if (nl_talk(l->nl, nlh) < 0)
		goto err;
	nlh = config_msg(buf, group);
	mnl_attr_put(nlh, NFULA_CFG_MODE, sizeof(mode), &mode);
	mnl_attr_put_u32(nlh, NFULA_CFG_NLBUFSIZ, htonl(NFLOG_NLBUFSIZ));
	mnl_attr_put_u32(nlh, NFULA_CFG_TIMEOUT, htonl(NFLOG_FLUSH_CS));
	mnl_attr_put_u32(nlh, NFULA_CFG_QTHRESH, htonl(NFLOG_QTHRESH));
	if (nl_talk(l->nl, nlh) < 0)
		goto err;
	return l;
err:
	saved = errno;
	nflog_close(l);
	errno = saved;
	return NULL;
}

void
nflog_close(struct nflog *l)
{
	if (l == NULL)
		return;
	if (l->nl != NULL)
		mnl_socket_close(l->nl);	/* the kernel unbinds the group with it */
	free(l->buf);
	free(l);
}

int
nflog_fd(const struct nflog *l)
{
	return mnl_socket_get_fd(l->nl);
}

static int
packet_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, NFULA_MAX) < 0)
		return MNL_CB_OK;	/* newer kernels' attributes: not ours */
	tb[type] = a;
	return MNL_CB_OK;
}

static int
on_msg(const struct nlmsghdr *nlh, void *arg)
{
	struct nflog *l = arg;
	const struct nlattr *tb[NFULA_MAX + 1] = { 0 };
	struct nflog_packet p = { 0 };

	if ((nlh->nlmsg_type & 0xff) != NFULNL_MSG_PACKET)
		return MNL_CB_OK;
	if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), packet_attr, tb) < 0)
		return MNL_CB_OK;	/* a copy we cannot read: lost to the audit, not fatal */
	if (tb[NFULA_PAYLOAD] == NULL)
		return MNL_CB_OK;
	p.payload = mnl_attr_get_payload(tb[NFULA_PAYLOAD]);
	p.len = mnl_attr_get_payload_len(tb[NFULA_PAYLOAD]);
	if (tb[NFULA_UID] != NULL && mnl_attr_get_payload_len(tb[NFULA_UID]) == 4) {
		p.has_uid = true;
		p.uid = ntohl(mnl_attr_get_u32(tb[NFULA_UID]));
	}
	if (tb[NFULA_GID] != NULL && mnl_attr_get_payload_len(tb[NFULA_GID]) == 4) {
		p.has_gid = true;
		p.gid = ntohl(mnl_attr_get_u32(tb[NFULA_GID]));
	}
	l->cb(&p, l->cb_arg);
	return MNL_CB_OK;
}

int
nflog_read(struct nflog *l, nflog_packet_cb cb, void *arg)
{
	ssize_t n = recv(nflog_fd(l), l->buf, NFLOG_RECV_BUF, MSG_DONTWAIT);

	if (n < 0) {
		if (errno == EAGAIN)
			l->drained_ns = mono_ns();
		return -1;	/* EAGAIN, or ENOBUFS: copies lost, the caller counts it */
	}
	l->bytes_read += (uint64_t)n;
	l->cb = cb;
	l->cb_arg = arg;
	return mnl_cb_run(l->buf, (size_t)n, 0, 0, on_msg, l) < 0 ? -1 : 0;
}

/* Now, in the stream of copies: what has been read so far. */
void
nflog_mark(const struct nflog *l, struct nflog_mark *m)
{
	m->bytes = l->bytes_read;
	m->ns = mono_ns();
}

/*
 * Has every copy the kernel made before M been read (or lost to an
 * overrun)? The socket read empty well after M (the kernel's batch waits
 * 10 ms at most), or a whole backlog's worth (the socket and the batch) was
 * read since: copies that never stop leave the socket never empty.
 */
bool
nflog_read_past(struct nflog *l, const struct nflog_mark *m)
{
	struct pollfd unread = { .fd = nflog_fd(l), .events = POLLIN };

	if (poll(&unread, 1, 0) == 0)
		l->drained_ns = mono_ns();
	return l->drained_ns >= m->ns + NFLOG_SETTLE_NS ||
	    l->bytes_read - m->bytes >= l->backlog_max;
}
