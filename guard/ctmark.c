/*
 * ctmark.c — sets our bits of one connection's conntrack mark through
 * ctnetlink, for a flow whose packets no longer come through the queue (an
 * audited flow, tapped by nflog.c): the flow is found by its original
 * tuple, and every bit outside the mask stays as other software set it
 * (the kernel computes (mark & ~mask) ^ value). It never creates an entry.
 * No logging; errors return -1 + errno (ENOENT: the entry is gone).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "smtpguard.h"

struct ctmark {
	struct mnl_socket	*nl;
	uint32_t		 seq;
};

struct ctmark *
ctmark_open(void)
{
	struct ctmark *c;
	int saved;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->nl = nl_open()) == NULL) {
		saved = errno;
		free(c);
		errno = saved;
		return NULL;
	}
	return c;
}

void
ctmark_close(struct ctmark *c)
{
	if (c == NULL)
		return;
	if (c->nl != NULL)
		mnl_socket_close(c->nl);
	free(c);
}

/* The original direction's tuple: the client's packet as it left the host. */
static void
put_tuple(struct nlmsghdr *nlh, const struct pkt *p)
{
	struct nlattr *tuple = mnl_attr_nest_start(nlh, CTA_TUPLE_ORIG);
	struct nlattr *ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
	struct nlattr *proto;

	if (p->family == AF_INET) {
		mnl_attr_put(nlh, CTA_IP_V4_SRC, 4, p->src);
		mnl_attr_put(nlh, CTA_IP_V4_DST, 4, p->dst);
	} else {
		mnl_attr_put(nlh, CTA_IP_V6_SRC, 16, p->src);
		mnl_attr_put(nlh, CTA_IP_V6_DST, 16, p->dst);
	}
	mnl_attr_nest_end(nlh, ip);
	proto = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
	mnl_attr_put_u8(nlh, CTA_PROTO_NUM, IPPROTO_TCP);
	mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(p->sport));
	mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(p->dport));
	mnl_attr_nest_end(nlh, proto);
	mnl_attr_nest_end(nlh, tuple);
}

int
ctmark_set(struct ctmark *c, const struct pkt *flow, uint32_t mask, uint32_t value)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
	/* No NLM_F_CREATE: an entry that is gone stays gone (ENOENT). */
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = ++c->seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = (uint8_t)flow->family;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	put_tuple(nlh, flow);
	mnl_attr_put_u32(nlh, CTA_MARK, htonl(value & mask));
	mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(mask));
	return nl_talk(c->nl, nlh);
}
