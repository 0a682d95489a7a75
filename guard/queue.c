/*
 * queue.c — the NFQUEUE consumer: binds one queue with uid/gid metadata,
 * reads packets in batches and gives each exactly one verdict. Verdicts
 * given while a batch is read go out together, in one send per
 * QUEUE_VERDICT_BATCH and at the batch's end; any other is sent at once.
 *
 * It never decides anything and never accepts on its own: the caller answers
 * every packet id it is handed (the ruleset has no bypass, so a packet the
 * caller never answers stays queued until the queue is torn down, and is
 * then dropped: the fence fails closed). No logging; errors return -1 + errno.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#include "smtpguard.h"

/*
 * One recv() returns as many queued packets as fit: a SYN is ~100 bytes of
 * netlink, a GSO segment under inspection up to 64 KiB, so 256 KiB holds a
 * useful batch either way.
 */
#define QUEUE_RECV_BUF		(256 * 1024)
#define QUEUE_COPY_RANGE	0xffff
/* Room for a burst of SYNs while the loop attributes one; drops are counted. */
#define QUEUE_SOCKET_BUF	(8 * 1024 * 1024)
/*
 * Verdicts per send within a batch: the first packet of a batch waits for
 * at most this many decisions after its own (a few hundred microseconds).
 */
#define QUEUE_VERDICT_BATCH	32
#define QUEUE_VERDICT_MSG_MAX	64	/* a verdict with its mark: 44 bytes of netlink */

struct queue {
	struct mnl_socket	*nl;
	unsigned int		 portid;
	uint16_t		 num;
	uint8_t			*buf;
	queue_packet_cb		 cb;
	void			*cb_arg;
	bool			 reading;	/* verdicts wait in vbuf */
	uint8_t			 vbuf[QUEUE_VERDICT_BATCH * QUEUE_VERDICT_MSG_MAX];
	size_t			 vlen;
	size_t			 vcount;
	uint64_t		 verdicts_lost;	/* in sends that failed */
};

static int
queue_config(struct queue *q, uint8_t cmd_or_zero, uint32_t maxlen, int params)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->num);
	if (cmd_or_zero)
		nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, cmd_or_zero);
	if (params) {
		nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, QUEUE_COPY_RANGE);
		nfq_nlmsg_cfg_put_qmaxlen(nlh, maxlen);
		/* No NFQA_CFG_F_FAIL_OPEN, ever: see DESIGN.md, failure policy. */
		mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS,
		    htonl(NFQA_CFG_F_UID_GID | NFQA_CFG_F_GSO));
		mnl_attr_put_u32(nlh, NFQA_CFG_MASK,
		    htonl(NFQA_CFG_F_UID_GID | NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN));
	}
	nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = 0;
	return nl_talk(q->nl, nlh);
}

struct queue *
queue_open(uint16_t num, uint32_t maxlen)
{
	struct queue *q;
	int one = 1, saved;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->num = num;
	if ((q->buf = malloc(QUEUE_RECV_BUF)) == NULL)
		goto err1;
	if ((q->nl = nl_open()) == NULL)
		goto err2;
	q->portid = mnl_socket_get_portid(q->nl);
	nl_rcvbuf(q->nl, QUEUE_SOCKET_BUF);
	/* Tell us about ENOBUFS instead of silently losing verdict errors. */
	(void)setsockopt(mnl_socket_get_fd(q->nl), SOL_NETLINK, NETLINK_NO_ENOBUFS,
	    &(int){0}, sizeof(int));
	(void)setsockopt(mnl_socket_get_fd(q->nl), SOL_NETLINK, NETLINK_EXT_ACK,
	    &one, sizeof(one));

	if (queue_config(q, NFQNL_CFG_CMD_BIND, 0, 0) < 0)
		goto err3;
	if (queue_config(q, 0, maxlen, 1) < 0)
		goto err3;
	return q;

err3:
	saved = errno;
	mnl_socket_close(q->nl);
	errno = saved;
err2:
	free(q->buf);
err1:
	saved = errno;
	free(q);
	errno = saved;
	return NULL;
}

void
queue_close(struct queue *q)
{
	if (q == NULL)
		return;
	mnl_socket_close(q->nl);
	free(q->buf);
	free(q);
}

int
queue_fd(const struct queue *q)
{
	return mnl_socket_get_fd(q->nl);
}

static int
queue_packet_attr(const struct nlmsghdr *nlh, void *arg)
{
	struct queue *q = arg;
	struct nlattr *attr[NFQA_MAX + 1] = { 0 };
	struct nfqnl_msg_packet_hdr *ph;
	struct queue_packet p = { 0 };

	if (nfq_nlmsg_parse(nlh, attr) < 0)
		return MNL_CB_ERROR;
	if (attr[NFQA_PACKET_HDR] == NULL ||
	    mnl_attr_get_payload_len(attr[NFQA_PACKET_HDR]) < sizeof(*ph))
		return MNL_CB_OK;	/* no id: nothing we could answer */
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	p.id = ntohl(ph->packet_id);
	p.hw_protocol = ntohs(ph->hw_protocol);
	if (attr[NFQA_PAYLOAD] != NULL) {
		p.payload = mnl_attr_get_payload(attr[NFQA_PAYLOAD]);
		p.len = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
	}
	if (attr[NFQA_MARK] != NULL &&
	    mnl_attr_validate(attr[NFQA_MARK], MNL_TYPE_U32) == 0)
		p.mark = ntohl(mnl_attr_get_u32(attr[NFQA_MARK]));
	if (attr[NFQA_UID] != NULL &&
	    mnl_attr_validate(attr[NFQA_UID], MNL_TYPE_U32) == 0) {
		p.has_uid = true;
		p.uid = ntohl(mnl_attr_get_u32(attr[NFQA_UID]));
	}
	if (attr[NFQA_GID] != NULL &&
	    mnl_attr_validate(attr[NFQA_GID], MNL_TYPE_U32) == 0) {
		p.has_gid = true;
		p.gid = ntohl(mnl_attr_get_u32(attr[NFQA_GID]));
	}
	q->cb(&p, q->cb_arg);
	return MNL_CB_OK;
}

/* The waiting verdicts in one send; if it fails, all of them are counted lost. */
static int
flush_verdicts(struct queue *q)
{
	int r = 0;

	if (q->vcount == 0)
		return 0;
	if (mnl_socket_sendto(q->nl, q->vbuf, q->vlen) < 0) {
		q->verdicts_lost += q->vcount;
		r = -1;
	}
	q->vlen = q->vcount = 0;
	return r;
}

int
queue_read(struct queue *q, queue_packet_cb cb, void *arg)
{
	ssize_t n;
	int r;

	n = recv(queue_fd(q), q->buf, QUEUE_RECV_BUF, MSG_DONTWAIT);
	if (n < 0)
		return -1;	/* EAGAIN, or ENOBUFS: the caller counts it */
	q->cb = cb;
	q->cb_arg = arg;
	q->reading = true;
	r = mnl_cb_run(q->buf, (size_t)n, 0, q->portid, queue_packet_attr, q);
	q->reading = false;
	(void)flush_verdicts(q);	/* a failure is counted: queue_verdicts_lost */
	return r < 0 ? -1 : 0;
}

int
queue_verdict(struct queue *q, uint32_t id, int verdict, bool set_mark, uint32_t mark)
{
	char one[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;

	nlh = nfq_nlmsg_put(q->reading ? (char *)q->vbuf + q->vlen : one, NFQNL_MSG_VERDICT,
	    q->num);
	nfq_nlmsg_verdict_put(nlh, (int)id, verdict);
	if (set_mark)
		nfq_nlmsg_verdict_put_mark(nlh, mark);
	if (!q->reading)
		return mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) < 0 ? -1 : 0;
	q->vlen += NLMSG_ALIGN(nlh->nlmsg_len);
	if (++q->vcount == QUEUE_VERDICT_BATCH)
		(void)flush_verdicts(q);	/* a failure is counted: queue_verdicts_lost */
	return 0;
}

uint64_t
queue_verdicts_lost(const struct queue *q)
{
	return q->verdicts_lost;
}

int
queue_stats(uint16_t num, struct queue_stats *st)
{
	char line[256];
	FILE *fp;
	int found = -1;

	if ((fp = fopen("/proc/net/netfilter/nfnetlink_queue", "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL) {
		unsigned int qnum, portid, total, mode, range, qdropped, udropped, idseq;

		if (sscanf(line, "%u %u %u %u %u %u %u %u", &qnum, &portid, &total,
		    &mode, &range, &qdropped, &udropped, &idseq) != 8 || qnum != num)
			continue;
		st->waiting = total;
		st->queue_dropped = qdropped;
		st->user_dropped = udropped;
		st->id_sequence = idseq;
		found = 0;
	}
	fclose(fp);
	if (found < 0)
		errno = ENOENT;
	return found;
}
