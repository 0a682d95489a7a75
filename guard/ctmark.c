/*
 * ctmark.c — sets our bits of one connection's conntrack mark through
 * ctnetlink, for a flow whose packets no longer come through the queue (an
 * audited flow, tapped by nflog.c): the flow is found by its original
 * tuple, and every bit outside the mask stays as other software set it
 * (the kernel computes (mark & ~mask) ^ value). It never creates an entry.
 * It also lists the entries whose mark says something (ctmark_each): the
 * flows the fence still copies to the audit tap.
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

#define CTMARK_DUMP_BUF	(32 * 1024)	/* one read of a dump: the kernel's largest part */

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

struct each_ctx {
	void	(*fn)(const struct pkt *, void *);
	void	*arg;
};

static int
tuple_attr(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	uint16_t type = mnl_attr_get_type(attr);

	/* Every nested kind (tuple, ip, proto) has fewer types than CTA_MAX. */
	if (type <= CTA_MAX)
		tb[type] = attr;
	return MNL_CB_OK;
}

/* The attributes nested in NEST, by type (up to MAX): 0, or -1 if malformed. */
static int
nested(const struct nlattr *nest, const struct nlattr **tb, size_t max)
{
	memset(tb, 0, (max + 1) * sizeof(*tb));
	return mnl_attr_parse_nested(nest, tuple_attr, tb) < 0 ? -1 : 0;
}

/* One entry of the dump: its original tuple, if it is TCP and whole. */
static int
each_entry(const struct nlmsghdr *nlh, void *data)
{
	struct each_ctx *x = data;
	const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *ct[CTA_MAX + 1] = { 0 }, *tuple[CTA_MAX + 1], *ip[CTA_MAX + 1],
	    *proto[CTA_MAX + 1];
	struct pkt p = { 0 };
	uint16_t src_type, dst_type;
	size_t alen;

	if (mnl_attr_parse(nlh, sizeof(*nfg), tuple_attr, ct) < 0 || ct[CTA_TUPLE_ORIG] == NULL ||
	    nested(ct[CTA_TUPLE_ORIG], tuple, CTA_MAX) < 0 || tuple[CTA_TUPLE_IP] == NULL ||
	    tuple[CTA_TUPLE_PROTO] == NULL || nested(tuple[CTA_TUPLE_IP], ip, CTA_MAX) < 0 ||
	    nested(tuple[CTA_TUPLE_PROTO], proto, CTA_MAX) < 0)
		return MNL_CB_OK;
	if (proto[CTA_PROTO_NUM] == NULL || mnl_attr_get_payload_len(proto[CTA_PROTO_NUM]) < 1 ||
	    mnl_attr_get_u8(proto[CTA_PROTO_NUM]) != IPPROTO_TCP ||
	    proto[CTA_PROTO_SRC_PORT] == NULL || proto[CTA_PROTO_DST_PORT] == NULL ||
	    mnl_attr_get_payload_len(proto[CTA_PROTO_SRC_PORT]) != 2 ||
	    mnl_attr_get_payload_len(proto[CTA_PROTO_DST_PORT]) != 2)
		return MNL_CB_OK;
	p.family = nfg->nfgen_family;
	if (p.family == AF_INET) {
		src_type = CTA_IP_V4_SRC;
		dst_type = CTA_IP_V4_DST;
		alen = 4;
	} else if (p.family == AF_INET6) {
		src_type = CTA_IP_V6_SRC;
		dst_type = CTA_IP_V6_DST;
		alen = 16;
	} else
		return MNL_CB_OK;
	if (ip[src_type] == NULL || ip[dst_type] == NULL ||
	    mnl_attr_get_payload_len(ip[src_type]) != alen ||
	    mnl_attr_get_payload_len(ip[dst_type]) != alen)
		return MNL_CB_OK;
	memcpy(p.src, mnl_attr_get_payload(ip[src_type]), alen);
	memcpy(p.dst, mnl_attr_get_payload(ip[dst_type]), alen);
	p.sport = ntohs(mnl_attr_get_u16(proto[CTA_PROTO_SRC_PORT]));
	p.dport = ntohs(mnl_attr_get_u16(proto[CTA_PROTO_DST_PORT]));
	x->fn(&p, x->arg);
	return MNL_CB_OK;
}

/*
 * Every conntrack entry, of both families, whose mark under MASK is VALUE
 * (the kernel filters the dump): FN gets its original tuple. A socket of its
 * own, so that a dump cut short leaves nothing behind for ctmark_set to
 * read. 0, or -1 + errno; FN may have seen some entries before an error.
 */
int
ctmark_each(uint32_t mask, uint32_t value, void (*fn)(const struct pkt *, void *), void *arg)
{
	static char buf[CTMARK_DUMP_BUF];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct each_ctx x = { .fn = fn, .arg = arg };
	struct mnl_socket *nl;
	struct nfgenmsg *nfg;
	ssize_t n;
	int rc = -1, saved;

	if ((nl = nl_open()) == NULL)
		return -1;
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = 1;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_UNSPEC;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	mnl_attr_put_u32(nlh, CTA_MARK, htonl(value & mask));
	mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(mask));
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) >= 0) {
		do {
			if ((n = mnl_socket_recvfrom(nl, buf, sizeof(buf))) < 0) {
				rc = -1;
				break;
			}
			rc = mnl_cb_run(buf, (size_t)n, 1, mnl_socket_get_portid(nl), each_entry,
			    &x);
		} while (rc > 0);
	}
	saved = errno;
	mnl_socket_close(nl);
	errno = saved;
	return rc < 0 ? -1 : 0;
}
