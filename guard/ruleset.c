/*
 * ruleset.c — the fence as nf_tables objects: table inet smtpguard, its sets
 * (ports, mta_uids, allow_uids, and refused_uids: the map from the flooding
 * uids refused in the kernel to their counter objects, refuse.c), the
 * output/fence chains before NAT, the trap nat chain and the to_mta nat
 * chain (action redirect: to the local MTA),
 * the after_nat/nat_fence chains that judge a flow NAT sent to an SMTP port,
 * and with detect_any_port the input chain that queues the replies of the
 * flows smtpguardd is still reading, built as libnftnl messages in an
 * nl_batch (pure, no kernel) and sent as one atomic transaction. Every packet the fence queues gets a
 * final verdict on its second pass, with or without a conntrack entry.
 * Installing replaces our table whole, so there is never a moment without
 * the fence and never two copies of it. It never names any other table,
 * never logs, and never falls back to anything that lets traffic bypass
 * the queue.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/xt_NFQUEUE.h>
#include <linux/rtnetlink.h>

#include "smtpguard.h"

#define SET_PORTS		"ports"
#define SET_MTA			"mta_uids"
#define SET_ALLOW		"allow_uids"
#define SET_REFUSED		"refused_uids"
#define SET_AUDITED		"audited_uids"
/* A refused uid's counter object: "refused_" and its decimal uid. */
#define OBJ_REFUSED_PREFIX	"refused_"
#define CHAIN_OUTPUT		"output"
#define CHAIN_FENCE		"fence"
#define CHAIN_TRAP		"trap"
#define CHAIN_REDIRECT		"to_mta"
#define CHAIN_AFTER_NAT		"after_nat"
#define CHAIN_NAT_FENCE		"nat_fence"
#define CHAIN_INPUT		"input"
/* Before NAT (-100): the verdict must be in the ct mark when the trap chain looks. */
#define FENCE_PRIORITY		(-150)
#define TRAP_PRIORITY		(-100)	/* NF_IP_PRI_NAT_DST: where nat output chains sit */
/* After the output nat chains of every usual priority (dstnat -100 up to filter 0). */
#define AFTER_NAT_PRIORITY	100
/*
 * detect_any_port's replies: after NF_IP_PRI_NAT_SRC (100), where the reply
 * of a flow an output DNAT rule translated gets its original source back,
 * so it carries the addresses the client's own packets were queued with.
 */
#define INPUT_PRIORITY		150
/* nftables' datatype and byte order numbers (include/datatype.h), so `nft list` prints them. */
#define NFT_TYPE_INET_SERVICE	13
#define NFT_TYPE_UID		24
#define NFT_BYTEORDER_HOST	1
#define NFT_BYTEORDER_BIG	2
#define RULESET_NAME_MAX	NFT_NAME_MAXLEN
/* Elements per message: 16 bytes each on the wire, well inside nl.c's NL_MSG_MAX. */
#define RULESET_ELEMS_PER_MSG	1024
/* The label suffix of rules that carry a queue expression (see ruleset_install). */
#define QUEUE_LABEL		" (queue)"
#define DATA_LABEL		" (DATA)"
#define ANSWER_WAIT_MS		2000
#define TCP_FLAGS_OFFSET	13	/* RFC 9293: the flags byte of the TCP header */
#define TCP_FLAG_SYN		0x02
#define TH_SYN_ACK_MASK		0x12	/* SYN | ACK */
/*
 * An audited packet is copied to inspect_bytes past its headers (IPv4 or
 * IPv6 and TCP, options and a few extension headers): the inspection never
 * reads further into a flow, so a long segment (a GSO one carrying the
 * message body) costs the sender a short copy. Headers longer than that
 * leave a gap in what is read, which ends inspection "incomplete".
 */
#define AUDIT_COPY_HEADROOM	512
#define AUDIT_COPY_MAX		65535	/* nflog.c's copy range: a whole GSO segment */

/* A rule being built; any failed allocation is remembered and reported once. */
struct rb {
	struct nftnl_rule	*r;
	bool			 oom;
};

static struct nftnl_expr *
x_new(struct rb *rb, const char *name)
{
	struct nftnl_expr *e;

	if ((e = nftnl_expr_alloc(name)) == NULL)
		rb->oom = true;
	return e;
}

static void
x_add(struct rb *rb, struct nftnl_expr *e)
{
	if (e != NULL)
		nftnl_rule_add_expr(rb->r, e);
}

/* A meta or ct key loaded into register 1, or stored from it. */
static void
x_key(struct rb *rb, bool ct, uint32_t key, bool load)
{
	struct nftnl_expr *e;

	if ((e = x_new(rb, ct ? "ct" : "meta")) == NULL)
		return;
	nftnl_expr_set_u32(e, ct ? NFTNL_EXPR_CT_KEY : NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, ct ? (load ? NFTNL_EXPR_CT_DREG : NFTNL_EXPR_CT_SREG) :
	    (load ? NFTNL_EXPR_META_DREG : NFTNL_EXPR_META_SREG), NFT_REG_1);
	x_add(rb, e);
}

static void
x_meta_load(struct rb *rb, uint32_t key)
{
	x_key(rb, false, key, true);
}

static void
x_meta_store(struct rb *rb, uint32_t key)
{
	x_key(rb, false, key, false);
}

static void
x_ct_load(struct rb *rb, uint32_t key)
{
	x_key(rb, true, key, true);
}

static void
x_ct_store(struct rb *rb, uint32_t key)
{
	x_key(rb, true, key, false);
}

static void
x_cmp(struct rb *rb, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e;

	if ((e = x_new(rb, "cmp")) == NULL)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	x_add(rb, e);
}

static void
x_cmp_u32(struct rb *rb, uint32_t op, uint32_t v)
{
	x_cmp(rb, op, &v, sizeof(v));
}

static void
x_cmp_u8(struct rb *rb, uint32_t op, uint8_t v)
{
	x_cmp(rb, op, &v, sizeof(v));
}

/* reg1 = (reg1 & MASK) ^ XOR over LEN bytes, in register order. */
static void
x_bitwise_bytes(struct rb *rb, const void *mask, const void *xor, uint32_t len)
{
	struct nftnl_expr *e;

	if ((e = x_new(rb, "bitwise")) == NULL)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, xor, len);
	x_add(rb, e);
}

/* reg1 = (reg1 & mask) ^ xor, on a 32-bit host-order value (marks, ct state). */
static void
x_bitwise(struct rb *rb, uint32_t mask, uint32_t xor)
{
	x_bitwise_bytes(rb, &mask, &xor, sizeof(mask));
}

/* LEN bytes at OFFSET into the packet's header BASE, into reg1. */
static void
x_payload(struct rb *rb, uint32_t base, uint32_t offset, uint32_t len)
{
	struct nftnl_expr *e;

	if ((e = x_new(rb, "payload")) == NULL)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	x_add(rb, e);
}

/* The TCP header's port at OFFSET (0: source, 2: destination) into reg1. */
static void
x_tcp_port(struct rb *rb, uint32_t offset)
{
	x_payload(rb, NFT_PAYLOAD_TRANSPORT_HEADER, offset, sizeof(uint16_t));
}

static void
x_tcp_dport(struct rb *rb)
{
	x_tcp_port(rb, 2);
}

/* The TCP flags byte, masked, in register 1. */
static void
x_tcp_flags(struct rb *rb, uint8_t mask)
{
	uint8_t zero = 0;

	x_payload(rb, NFT_PAYLOAD_TRANSPORT_HEADER, TCP_FLAGS_OFFSET, sizeof(uint8_t));
	x_bitwise_bytes(rb, &mask, &zero, sizeof(mask));
}

/*
 * reg1 = the first bytes of the TCP payload, letters folded to upper case;
 * the rule goes on if they are the DATA line (a payload shorter breaks it).
 */
static void
x_data_line(struct rb *rb)
{
	uint8_t mask[INSPECT_DATA_LEN], zero[INSPECT_DATA_LEN] = { 0 };

	for (size_t i = 0; i < INSPECT_DATA_LEN; i++)
		mask[i] = i < INSPECT_DATA_LETTERS ? INSPECT_CASE_MASK : 0xff;
	x_payload(rb, NFT_PAYLOAD_INNER_HEADER, 0, INSPECT_DATA_LEN);
	x_bitwise_bytes(rb, mask, zero, INSPECT_DATA_LEN);
	x_cmp(rb, NFT_CMP_EQ, INSPECT_DATA_LINE, INSPECT_DATA_LEN);
}

/* reg1 in SET; with INV, not in it. */
static void
x_lookup_in(struct rb *rb, const char *set, uint32_t set_id, bool inv)
{
	struct nftnl_expr *e;

	if ((e = x_new(rb, "lookup")) == NULL)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
	if (inv)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
	x_add(rb, e);
}

static void
x_lookup(struct rb *rb, const char *set, uint32_t set_id)
{
	x_lookup_in(rb, set, set_id, false);
}

/* The object the map SET gives for reg1's key acts on the packet; no key there: break. */
static void
x_objref_map(struct rb *rb, const char *set, uint32_t set_id)
{
	struct nftnl_expr *e;

	if ((e = x_new(rb, "objref")) == NULL)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_OBJREF_SET_SREG, NFT_REG_1);
	nftnl_expr_set_str(e, NFTNL_EXPR_OBJREF_SET_NAME, set);
	nftnl_expr_set_u32(e, NFTNL_EXPR_OBJREF_SET_ID, set_id);
	x_add(rb, e);
}

static void
x_verdict(struct rb *rb, int verdict, const char *chain)
{
	struct nftnl_expr *e;

	if ((e = x_new(rb, "immediate")) == NULL)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
	if (chain != NULL)
		nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
	x_add(rb, e);
}

static void
x_reject_rst(struct rb *rb)
{
	struct nftnl_expr *e;

	if ((e = x_new(rb, "reject")) == NULL)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
	nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, 0);
	x_add(rb, e);
}

/*
 * One queue, no bypass and no fanout flag on either path: with no listener
 * the kernel drops the packet (fails closed).
 */
/*
 * A copy of the packet's first SNAPLEN bytes (0: the group's copy range, a
 * whole segment) to nfnetlink_log GROUP; the packet goes on. QTHRESHOLD 1
 * sends it, and the copies gathered before it, at once; 0 leaves them to the
 * group's own bounds (nflog.c).
 */
static void
x_log_group(struct rb *rb, uint16_t group, uint32_t snaplen, uint16_t qthreshold)
{
	struct nftnl_expr *e;

	if ((e = x_new(rb, "log")) == NULL)
		return;
	nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP, group);
	if (snaplen > 0)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOG_SNAPLEN, snaplen);
	if (qthreshold > 0)
		nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_QTHRESHOLD, qthreshold);
	x_add(rb, e);
}

static void
x_queue(struct rb *rb, uint16_t num, bool native)
{
	struct xt_NFQ_info_v3 *info;
	struct nftnl_expr *e;

	if (native) {
		if ((e = x_new(rb, "queue")) == NULL)
			return;
		nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_NUM, num);
		nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_TOTAL, 1);
		nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_FLAGS, 0);
		x_add(rb, e);
		return;
	}
	if ((e = x_new(rb, "target")) == NULL)
		return;
	/* libnftnl takes ownership of the info block and frees it with the expression. */
	if ((info = calloc(1, sizeof(*info))) == NULL) {
		nftnl_expr_free(e);
		rb->oom = true;
		return;
	}
	info->queuenum = num;
	info->queues_total = 1;
	info->flags = 0;
	nftnl_expr_set_str(e, NFTNL_EXPR_TG_NAME, "NFQUEUE");
	nftnl_expr_set_u32(e, NFTNL_EXPR_TG_REV, 3);
	nftnl_expr_set(e, NFTNL_EXPR_TG_INFO, info, sizeof(*info));
	x_add(rb, e);
}

static void
x_fib_daddr_local(struct rb *rb)
{
	struct nftnl_expr *e;

	if ((e = x_new(rb, "fib")) == NULL)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
	x_add(rb, e);
	x_cmp_u32(rb, NFT_CMP_EQ, RTN_LOCAL);
}

static void
x_redirect(struct rb *rb, uint16_t port)
{
	uint16_t be = htons(port);
	struct nftnl_expr *e;

	if ((e = x_new(rb, "immediate")) == NULL)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
	nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &be, sizeof(be));
	x_add(rb, e);
	if ((e = x_new(rb, "redir")) == NULL)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
	x_add(rb, e);
}

static void
x_l4proto_tcp(struct rb *rb)
{
	uint8_t tcp = IPPROTO_TCP;

	x_meta_load(rb, NFT_META_L4PROTO);
	x_cmp(rb, NFT_CMP_EQ, &tcp, sizeof(tcp));
}

/* A fresh rule appended to TABLE/CHAIN; COMMENT is what `nft list` shows. */
static int
rb_start(struct rb *rb, const char *table, const char *chain, const char *comment)
{
	struct nftnl_udata_buf *ud;

	rb->oom = false;
	if ((rb->r = nftnl_rule_alloc()) == NULL)
		return -1;
	nftnl_rule_set_u32(rb->r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(rb->r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(rb->r, NFTNL_RULE_CHAIN, chain);
	if (comment == NULL)
		return 0;
	if ((ud = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN)) == NULL)
		goto fail;
	if (!nftnl_udata_put_strz(ud, NFTNL_UDATA_RULE_COMMENT, comment)) {
		nftnl_udata_buf_free(ud);
		errno = E2BIG;
		goto fail;
	}
	nftnl_rule_set_data(rb->r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(ud),
	    nftnl_udata_buf_len(ud));
	nftnl_udata_buf_free(ud);
	return 0;
fail:
	nftnl_rule_free(rb->r);
	rb->r = NULL;
	return -1;
}

/* Puts the finished rule in the batch and frees it, whatever happens. */
static int __attribute__((format(printf, 3, 4)))
rb_put(struct nl_batch *b, struct rb *rb, const char *fmt, ...)
{
	char label[NL_LABEL_MAX];
	struct nlmsghdr *nlh;
	va_list ap;
	int rc = -1;

	va_start(ap, fmt);
	vsnprintf(label, sizeof(label), fmt, ap);
	va_end(ap);
	if (rb->oom) {
		errno = ENOMEM;
		goto out;
	}
	if ((nlh = nl_batch_put(b, NFT_MSG_NEWRULE, NFPROTO_INET,
	    NLM_F_CREATE | NLM_F_APPEND, "add rule %s", label)) == NULL)
		goto out;
	nftnl_rule_nlmsg_build_payload(nlh, rb->r);
	rc = nl_batch_next(b);
out:
	nftnl_rule_free(rb->r);
	rb->r = NULL;
	return rc;
}

static int
put_table(struct nl_batch *b, uint16_t type, uint16_t flags, const char *table,
    const char *verb)
{
	struct nftnl_table *t;
	struct nlmsghdr *nlh;

	if ((t = nftnl_table_alloc()) == NULL)
		return -1;
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
	if ((nlh = nl_batch_put(b, type, NFPROTO_INET, flags, "%s table %s", verb,
	    table)) == NULL) {
		nftnl_table_free(t);
		return -1;
	}
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	return nl_batch_next(b);
}

/* HOOK < 0: a regular chain, reached only by jump. */
static int
put_chain(struct nl_batch *b, const char *table, const char *name, const char *type,
    int hook, int prio)
{
	struct nftnl_chain *c;
	struct nlmsghdr *nlh;

	if ((c = nftnl_chain_alloc()) == NULL)
		return -1;
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	if (hook >= 0) {
		nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, (uint32_t)hook);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	}
	if ((nlh = nl_batch_put(b, NFT_MSG_NEWCHAIN, NFPROTO_INET,
	    NLM_F_CREATE | NLM_F_EXCL, "add chain %s", name)) == NULL) {
		nftnl_chain_free(c);
		return -1;
	}
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nftnl_chain_free(c);
	return nl_batch_next(b);
}

static struct nftnl_set *
set_new(const char *table, const char *name, uint32_t id)
{
	struct nftnl_set *s;

	if ((s = nftnl_set_alloc()) == NULL)
		return NULL;
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	if (id != 0)
		nftnl_set_set_u32(s, NFTNL_SET_ID, id);
	return s;
}

static int
put_set(struct nl_batch *b, const char *table, const char *name, uint32_t id,
    uint32_t dtype, uint32_t keylen, uint32_t byteorder, uint32_t flags)
{
	struct nftnl_udata_buf *ud = NULL;
	struct nftnl_set *s;
	struct nlmsghdr *nlh;
	int rc = -1;

	if ((s = set_new(table, name, id)) == NULL)
		return -1;
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, dtype);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, keylen);
	if (flags != 0)
		nftnl_set_set_u32(s, NFTNL_SET_FLAGS, flags);
	/* nft reads the key's byte order from here to print 25, not 6400. */
	if ((ud = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN)) == NULL)
		goto out;
	if (!nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_KEYBYTEORDER, byteorder)) {
		errno = E2BIG;
		goto out;
	}
	nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud),
	    nftnl_udata_buf_len(ud));
	if ((nlh = nl_batch_put(b, NFT_MSG_NEWSET, NFPROTO_INET,
	    NLM_F_CREATE | NLM_F_EXCL, "add set %s", name)) == NULL)
		goto out;
	nftnl_set_nlmsg_build_payload(nlh, s);
	rc = nl_batch_next(b);
out:
	nftnl_udata_buf_free(ud);
	nftnl_set_free(s);
	return rc;
}

/* N keys of KEYLEN bytes each, already in the set's byte order; one message. */
static int
put_elems(struct nl_batch *b, uint16_t type, const char *table, const char *name,
    uint32_t id, const void *keys, size_t keylen, size_t n)
{
	const uint8_t *k = keys;
	struct nftnl_set *s;
	struct nlmsghdr *nlh;
	int rc = -1;

	if ((s = set_new(table, name, id)) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct nftnl_set_elem *e;

		if ((e = nftnl_set_elem_alloc()) == NULL)
			goto out;
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, k + i * keylen, (uint32_t)keylen);
		nftnl_set_elem_add(s, e);
	}
	if ((nlh = nl_batch_put(b, type, NFPROTO_INET, NLM_F_CREATE, "%s set %s (%zu)",
	    type == NFT_MSG_NEWSETELEM ? "add elements to" : "delete elements from", name,
	    n)) == NULL)
		goto out;
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	rc = nl_batch_next(b);
out:
	nftnl_set_free(s);
	return rc;
}

static int
put_uid_elems(struct nl_batch *b, uint16_t type, const char *table, const char *name,
    uint32_t id, const uid_t *uids, size_t n)
{
	uint32_t *keys;
	int rc = 0;

	if (n == 0)
		return 0;
	/* The kernel's meta skuid is a host-order u32, whatever uid_t is here. */
	if ((keys = calloc(n, sizeof(*keys))) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		keys[i] = (uint32_t)uids[i];
	/* Long lists go in several messages of the same batch: still one transaction. */
	for (size_t i = 0; i < n && rc == 0; i += RULESET_ELEMS_PER_MSG)
		rc = put_elems(b, type, table, name, id, keys + i, sizeof(*keys),
		    n - i < RULESET_ELEMS_PER_MSG ? n - i : RULESET_ELEMS_PER_MSG);
	free(keys);
	return rc;
}

static int
check_name(const char *name)
{
	if (name == NULL || *name == '\0') {
		errno = EINVAL;
		return -1;
	}
	if (strlen(name) >= RULESET_NAME_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

enum set_ids { ID_PORTS = 1, ID_MTA, ID_ALLOW, ID_REFUSED, ID_AUDITED };

/*
 * The flooding uids smtpguardd refuses in the kernel (refuse.c): a map of
 * at most REFUSED_UIDS_MAX uids, each to its own named counter object,
 * which the rule before the queue rule increments for each SYN it resets.
 * An element has a timeout (a safety net only: smtpguardd deletes every
 * element at the end of its window); its counter is an object of its own
 * so that it outlives the element, and is read only once no packet can
 * still be counting on it (refuse.c).
 */
static int
put_refused_set(struct nl_batch *b, const char *table)
{
	struct nftnl_udata_buf *ud = NULL;
	struct nftnl_set *s;
	struct nlmsghdr *nlh;
	int rc = -1;

	if ((s = set_new(table, SET_REFUSED, ID_REFUSED)) == NULL)
		return -1;
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, NFT_TYPE_UID);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, sizeof(uint32_t));
	/* An object map (nft's "type uid : counter"): NFT_SET_OBJECT, not NFT_SET_MAP. */
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_TIMEOUT | NFT_SET_OBJECT);
	nftnl_set_set_u32(s, NFTNL_SET_OBJ_TYPE, NFT_OBJECT_COUNTER);
	nftnl_set_set_u32(s, NFTNL_SET_DESC_SIZE, REFUSED_UIDS_MAX);
	if ((ud = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN)) == NULL)
		goto out;
	if (!nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_KEYBYTEORDER, NFT_BYTEORDER_HOST)) {
		errno = E2BIG;
		goto out;
	}
	nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud),
	    nftnl_udata_buf_len(ud));
	if ((nlh = nl_batch_put(b, NFT_MSG_NEWSET, NFPROTO_INET,
	    NLM_F_CREATE | NLM_F_EXCL, "add map %s", SET_REFUSED)) == NULL)
		goto out;
	nftnl_set_nlmsg_build_payload(nlh, s);
	rc = nl_batch_next(b);
out:
	nftnl_udata_buf_free(ud);
	nftnl_set_free(s);
	return rc;
}

static int
build_sets(struct nl_batch *b, const struct ruleset_spec *sp)
{
	uint16_t ports[CONFIG_MAX_PORTS];

	for (size_t i = 0; i < sp->nports; i++)
		ports[i] = htons(sp->ports[i]);
	if (put_set(b, sp->table, SET_PORTS, ID_PORTS, NFT_TYPE_INET_SERVICE,
	    sizeof(uint16_t), NFT_BYTEORDER_BIG, 0) < 0 ||
	    put_elems(b, NFT_MSG_NEWSETELEM, sp->table, SET_PORTS, ID_PORTS, ports,
	    sizeof(ports[0]), sp->nports) < 0)
		return -1;
	if (put_set(b, sp->table, SET_MTA, ID_MTA, NFT_TYPE_UID, sizeof(uint32_t),
	    NFT_BYTEORDER_HOST, 0) < 0 ||
	    put_uid_elems(b, NFT_MSG_NEWSETELEM, sp->table, SET_MTA, ID_MTA, sp->mta_uids,
	    sp->nmta) < 0)
		return -1;
	if (put_set(b, sp->table, SET_ALLOW, ID_ALLOW, NFT_TYPE_UID, sizeof(uint32_t),
	    NFT_BYTEORDER_HOST, 0) < 0 ||
	    put_uid_elems(b, NFT_MSG_NEWSETELEM, sp->table, SET_ALLOW, ID_ALLOW,
	    sp->allow_uids, sp->nallow) < 0)
		return -1;
	/*
	 * Always empty in a new table: a fresh daemon refuses and audits nobody
	 * in the kernel yet. An audited uid's element times out (fence.c), so a
	 * daemon gone for good stops its audit in the kernel within that time.
	 */
	if (put_set(b, sp->table, SET_AUDITED, ID_AUDITED, NFT_TYPE_UID, sizeof(uint32_t),
	    NFT_BYTEORDER_HOST, NFT_SET_TIMEOUT) < 0)
		return -1;
	return put_refused_set(b, sp->table);
}

/* What each verdict carried in the packet mark does to the flow. */
struct verdict_rule {
	enum mark_state	 state;
	const char	*name;
	int		 verdict;	/* NF_ACCEPT, or NF_DROP meaning "reset" */
	bool		 queue;		/* (ct mark rules) later packets visit smtpguardd */
	bool		 tap;		/* (ct mark rules) copied to the audit log group */
	const char	*comment;
};

static const struct verdict_rule verdicts[] = {
	{ MARK_ALLOW, "allow", NF_ACCEPT, false, false, "verdict: allow" },
	{ MARK_REJECT, "reject", NF_DROP, false, false, "verdict: reject" },
	{ MARK_TRAP, "trap", NF_ACCEPT, false, false, "verdict: trap" },
	{ MARK_INSPECT, "audit", NF_ACCEPT, false, false, "verdict: audit, keep inspecting" },
	{ MARK_REDIRECT, "redirect", NF_ACCEPT, false, false,
	    "verdict: redirect to the local MTA" },
};

/*
 * A decided flow's later packets, before NAT. An audited flow (a fenced
 * port) is copied to smtpguardd and goes on at once: audit holds nothing.
 * A flow detect_any_port still reads has the same ct mark on another port;
 * its packets wait in the queue (put_probed).
 */
static const struct verdict_rule decided[] = {
	{ MARK_ALLOW, "allow", NF_ACCEPT, false, false, NULL },
	{ MARK_REJECT, "reject", NF_DROP, false, false, NULL },
	{ MARK_TRAP, "trap", NF_ACCEPT, false, false, NULL },
	{ MARK_INSPECT, "audit", NF_ACCEPT, false, true,
	    "audited: a copy to smtpguardd, never held" },
	{ MARK_REDIRECT, "redirect", NF_ACCEPT, false, false, NULL },
};

/*
 * After NAT only allow and reject can be carried out: the trap's redirect
 * is NAT, bound at the flow's first packet, and smtpguardd answers a SYN
 * queued there (MARK_NAT) with one of these two.
 */
static const struct verdict_rule nat_verdicts[] = {
	{ MARK_ALLOW, "allow", NF_ACCEPT, false, false, "verdict after NAT: allow" },
	{ MARK_REJECT, "reject", NF_DROP, false, false, "verdict after NAT: reject" },
};

/*
 * What a flow already decided before NAT gets after it, when it was
 * translated to a fenced port (a rejected one never gets this far): a
 * trapped flow there was taken by another NAT rule before our redirect, so
 * it would never reach the trap: reset.
 */
static const struct verdict_rule nat_decided[] = {
	{ MARK_ALLOW, "allow", NF_ACCEPT, false, false, NULL },
	{ MARK_TRAP, "trap", NF_DROP, false, false,
	    "trapped, but another NAT rule took the flow before the trap's redirect" },
	{ MARK_INSPECT, "audit", NF_ACCEPT, false, false, NULL },
};

/*
 * detect_any_port's input chain: a reply smtpguardd decided. A rejected
 * flow's reply is accepted: it carries no mail, and the client's next
 * packet meets "ct mark reject" on its way out and is reset.
 */
static const struct verdict_rule input_verdicts[] = {
	{ MARK_ALLOW, "allow", NF_ACCEPT, false, false, "reply verdict: allow" },
	{ MARK_REJECT, "reject", NF_ACCEPT, false, false,
	    "reply verdict: reject; the client's next packet is reset" },
};

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* Our bits of the packet mark := ST (MARK_NONE: cleared), every bit outside the mask M kept. */
static void
x_mark_set(struct rb *rb, uint32_t m, enum mark_state st)
{
	x_meta_load(rb, NFT_META_MARK);
	x_bitwise(rb, ~m, mark_value(m, st));
	x_meta_store(rb, NFT_META_MARK);
}

/*
 * detect_any_port: a followed flow's packet goes to the queue with "inspect"
 * in our bits of its mark, so smtpguardd tells it from a new flow's: one
 * whose flow it no longer knows (expired, evicted, restarted) is reset,
 * never released unread.
 */
static void
x_mark_followed(struct rb *rb, uint32_t m)
{
	x_mark_set(rb, m, MARK_INSPECT);
}

static void
x_final(struct rb *rb, const struct verdict_rule *v, const struct ruleset_spec *sp,
    bool native)
{
	if (v->queue)
		x_queue(rb, sp->queue_num, native);
	else if (v->verdict == NF_DROP)
		x_reject_rst(rb);
	else
		x_verdict(rb, v->verdict, NULL);
}

/* reg1 = our bits of the packet mark; the rule goes on if they hold ST. */
static void
x_mark_is(struct rb *rb, uint32_t mask, enum mark_state st)
{
	x_meta_load(rb, NFT_META_MARK);
	x_bitwise(rb, mask, 0);
	x_cmp_u32(rb, NFT_CMP_EQ, mark_value(mask, st));
}

/*
 * smtpguardd answers NF_REPEAT with its decision in the packet mark, and
 * the chain that queued the packet runs again. Per decision, two rules:
 * the first copies it into the ct mark (leaving every bit outside the mask
 * as other software set it) so the rest of the flow stays in the kernel;
 * with no conntrack entry (untracked, invalid: the stack's own resets) the
 * ct expression breaks that rule and nothing else. The second gives the
 * verdict whatever the first did, so a packet leaves the fence on its
 * second pass and never goes back to the queue.
 */
static int
put_verdicts(struct nl_batch *b, const struct ruleset_spec *sp, const char *chain,
    const struct verdict_rule *vs, size_t nv, unsigned int *n)
{
	uint32_t m = sp->mark_mask;
	struct rb rb;

	for (size_t i = 0; i < nv; i++) {
		uint32_t v = mark_value(m, vs[i].state);

		if (rb_start(&rb, sp->table, chain, NULL) < 0)
			return -1;
		x_mark_is(&rb, m, vs[i].state);
		x_ct_load(&rb, NFT_CT_MARK);
		x_bitwise(&rb, ~m, v);
		x_ct_store(&rb, NFT_CT_MARK);
		if (rb_put(b, &rb, "%s #%u (ct mark := %s)", chain, ++*n, vs[i].name) < 0)
			return -1;

		if (rb_start(&rb, sp->table, chain, vs[i].comment) < 0)
			return -1;
		x_mark_is(&rb, m, vs[i].state);
		x_mark_set(&rb, m, MARK_NONE);
		/* Final, even for audit: "keep inspecting" lives in the ct mark. */
		x_final(&rb, &vs[i], sp, false);
		if (rb_put(b, &rb, "%s #%u (verdict %s)", chain, ++*n, vs[i].name) < 0)
			return -1;
	}
	return 0;
}

/*
 * An audited flow's segment that begins with the DATA line: copied, and the
 * flow released here (ct mark allow), so its message body is never copied
 * and smtpguardd need not set the mark itself. A DATA that is not at the
 * start of a segment (pipelined behind MAIL and RCPT) is left to smtpguardd.
 */
static int
put_data_release(struct nl_batch *b, const struct ruleset_spec *sp, const char *chain,
    unsigned int *n)
{
	uint32_t m = sp->mark_mask;
	struct rb rb;

	if (rb_start(&rb, sp->table, chain,
	    "audited: its DATA, copied, and the flow released in the kernel") < 0)
		return -1;
	x_ct_load(&rb, NFT_CT_MARK);
	x_bitwise(&rb, m, 0);
	x_cmp_u32(&rb, NFT_CMP_EQ, mark_value(m, MARK_INSPECT));
	x_l4proto_tcp(&rb);
	x_tcp_dport(&rb);
	x_lookup(&rb, SET_PORTS, ID_PORTS);
	x_data_line(&rb);
	x_ct_load(&rb, NFT_CT_MARK);
	x_bitwise(&rb, ~m, mark_value(m, MARK_ALLOW));
	x_ct_store(&rb, NFT_CT_MARK);
	x_log_group(&rb, sp->audit_group, sp->audit_snaplen, 0);
	x_verdict(&rb, NF_ACCEPT, NULL);
	return rb_put(b, &rb, "%s #%u (ct mark audit)" DATA_LABEL, chain, ++*n);
}

/* The kernel's part of a decided flow: its later packets never leave the kernel. */
static int
put_decided(struct nl_batch *b, const struct ruleset_spec *sp, const char *chain,
    const struct verdict_rule *vs, size_t nv, bool native, unsigned int *n)
{
	struct rb rb;

	for (size_t i = 0; i < nv; i++) {
		if (vs[i].tap && sp->data_release && put_data_release(b, sp, chain, n) < 0)
			return -1;
		if (rb_start(&rb, sp->table, chain, vs[i].comment) < 0)
			return -1;
		x_ct_load(&rb, NFT_CT_MARK);
		x_bitwise(&rb, sp->mark_mask, 0);
		x_cmp_u32(&rb, NFT_CMP_EQ, mark_value(sp->mark_mask, vs[i].state));
		if (vs[i].tap) {
			x_l4proto_tcp(&rb);	/* lets nft print "tcp dport" */
			x_tcp_dport(&rb);
			x_lookup(&rb, SET_PORTS, ID_PORTS);
			x_log_group(&rb, sp->audit_group, sp->audit_snaplen, 0);
		}
		if (vs[i].queue && sp->detect_any_port)
			x_mark_followed(&rb, sp->mark_mask);
		x_final(&rb, &vs[i], sp, native);
		if (rb_put(b, &rb, "%s #%u (ct mark %s)%s", chain, ++*n, vs[i].name,
		    vs[i].queue ? QUEUE_LABEL : "") < 0)
			return -1;
	}
	return 0;
}

static int
put_uid_accepts(struct nl_batch *b, const struct ruleset_spec *sp, const char *chain,
    unsigned int *n)
{
	struct rb rb;

	if (rb_start(&rb, sp->table, chain, "the MTA: decided in the kernel") < 0)
		return -1;
	x_meta_load(&rb, NFT_META_SKUID);
	x_lookup(&rb, SET_MTA, ID_MTA);
	x_verdict(&rb, NF_ACCEPT, NULL);
	if (rb_put(b, &rb, "%s #%u (mta_uids)", chain, ++*n) < 0)
		return -1;

	if (rb_start(&rb, sp->table, chain, "plain exceptions") < 0)
		return -1;
	x_meta_load(&rb, NFT_META_SKUID);
	x_lookup(&rb, SET_ALLOW, ID_ALLOW);
	x_verdict(&rb, NF_ACCEPT, NULL);
	return rb_put(b, &rb, "%s #%u (allow_uids)", chain, ++*n);
}

/* The self-check's SYN (`smtpguard check`, probe mark) is never local. */
static int
put_allow_local(struct nl_batch *b, const struct ruleset_spec *sp, const char *chain,
    const char *comment, unsigned int *n)
{
	struct rb rb;

	if (!sp->allow_local)
		return 0;
	if (rb_start(&rb, sp->table, chain, comment) < 0)
		return -1;
	x_meta_load(&rb, NFT_META_MARK);
	x_bitwise(&rb, sp->mark_mask, 0);
	x_cmp_u32(&rb, NFT_CMP_NEQ, mark_value(sp->mark_mask, MARK_PROBE));
	x_fib_daddr_local(&rb);
	x_verdict(&rb, NF_ACCEPT, NULL);
	return rb_put(b, &rb, "%s #%u (allow_local)", chain, ++*n);
}

/*
 * The queue takes only packets that have a socket owner: `meta skuid` is
 * defined for every full socket a process holds, and breaks the rule on
 * the rest (the stack's resets and TIME_WAIT acks, the tail of a socket
 * its process already closed), which the rule after it accepts. Those carry
 * no process to name and no decision to wait for, and would otherwise go
 * round the queue for ever. MARK: the packet mark state to queue with
 * (MARK_NONE: leave the mark as it is).
 */
static int
put_queue_and_socketless(struct nl_batch *b, const struct ruleset_spec *sp,
    const char *chain, enum mark_state mark, const char *comment, bool native,
    unsigned int *n)
{
	uint32_t m = sp->mark_mask;
	struct rb rb;

	if (rb_start(&rb, sp->table, chain, comment) < 0)
		return -1;
	x_meta_load(&rb, NFT_META_SKUID);
	x_cmp_u32(&rb, NFT_CMP_GTE, 0);
	if (mark != MARK_NONE)
		x_mark_set(&rb, m, mark);
	x_queue(&rb, sp->queue_num, native);
	if (rb_put(b, &rb, "%s #%u" QUEUE_LABEL, chain, ++*n) < 0)
		return -1;

	if (rb_start(&rb, sp->table, chain,
	    "no socket: the kernel's own resets and acks carry no mail") < 0)
		return -1;
	x_verdict(&rb, NF_ACCEPT, NULL);
	return rb_put(b, &rb, "%s #%u (no socket)", chain, ++*n);
}

/*
 * detect_any_port: a flow still being read (ct mark inspect, not a fenced
 * port) goes to the queue, marked as followed, so that one smtpguardd no
 * longer knows is reset, never released unread.
 */
static int
put_probed(struct nl_batch *b, const struct ruleset_spec *sp, bool native, unsigned int *n)
{
	uint32_t m = sp->mark_mask;
	struct rb rb;

	if (rb_start(&rb, sp->table, CHAIN_FENCE,
	    "detect_any_port: flows still being read go to smtpguardd") < 0)
		return -1;
	x_ct_load(&rb, NFT_CT_MARK);
	x_bitwise(&rb, m, 0);
	x_cmp_u32(&rb, NFT_CMP_EQ, mark_value(m, MARK_INSPECT));
	x_mark_followed(&rb, m);
	x_queue(&rb, sp->queue_num, native);
	return rb_put(b, &rb, "%s #%u (probed)" QUEUE_LABEL, CHAIN_FENCE, ++*n);
}

/*
 * Before the decided flows: a bare SYN on a conntrack entry that has seen a
 * reply, or was expected (related), is a new connection on another flow's
 * entry, and conntrack hands it that flow's ct mark. A flow reset by the far
 * side leaves its entry behind (closed, 10 s), one cut by a verdict leaves it
 * established (the reset goes to the local socket only), and an expected
 * connection inherits its master's mark; a SYN from the same ports takes the
 * entry over. It goes to smtpguardd, decided afresh by its own sender, never
 * by the old flow's mark. A SYN retransmitted before any answer (ct state
 * new) is its own flow's, and keeps its verdict. It is queued marked as
 * after NAT (the old flow bound the entry's NAT: allow or reject only).
 * In the fence chain (PROBE) the self-check's probe keeps its own mark, so
 * it is still refused and counted as the self-check; nat_fence marks every
 * packet it queues after NAT, the probe's too, as its last rule does: only
 * allow and reject can be carried out there.
 */
static void
x_taken_over_syn(struct rb *rb)
{
	x_l4proto_tcp(rb);
	x_tcp_flags(rb, TH_SYN_ACK_MASK);
	x_cmp_u8(rb, NFT_CMP_EQ, TCP_FLAG_SYN);
	x_ct_load(rb, NFT_CT_STATE);
	x_bitwise(rb, NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED), 0);
	x_cmp_u32(rb, NFT_CMP_NEQ, 0);
	x_meta_load(rb, NFT_META_SKUID);
	x_cmp_u32(rb, NFT_CMP_GTE, 0);
}

static int
put_taken_over_syn(struct nl_batch *b, const struct ruleset_spec *sp, const char *chain,
    bool probe, bool native, unsigned int *n)
{
	uint32_t m = sp->mark_mask;
	struct rb rb;

	if (probe) {
		if (rb_start(&rb, sp->table, chain, "the self-check's SYN on an old flow's "
		    "conntrack entry: smtpguardd refuses it") < 0)
			return -1;
		x_taken_over_syn(&rb);
		x_mark_is(&rb, m, MARK_PROBE);
		x_queue(&rb, sp->queue_num, native);
		if (rb_put(b, &rb, "%s #%u (taken-over probe)" QUEUE_LABEL, chain, ++*n) < 0)
			return -1;
	}

	if (rb_start(&rb, sp->table, chain,
	    "a SYN on an old flow's conntrack entry: smtpguardd decides it afresh") < 0)
		return -1;
	x_taken_over_syn(&rb);
	x_mark_set(&rb, m, MARK_NAT);
	x_queue(&rb, sp->queue_num, native);
	return rb_put(b, &rb, "%s #%u (taken-over SYN)" QUEUE_LABEL, chain, ++*n);
}

/*
 * Just before the queue rule, so the MTA, the exceptions, the verdicts and
 * the decided flows are all settled first: a new flow's SYN to a fenced port
 * from a uid in @refused_uids (one smtpguardd would refuse whatever it
 * named, refuse.c) is reset here and counted on the uid's counter object
 * (objref: a uid not in the map breaks the rule), instead
 * of crossing into userspace. It matches what the queue rule would take (a
 * socket owner: skuid breaks the rule without one; both families), never
 * the self-check's probe, which is always decided and logged by smtpguardd.
 */
static int
put_refused_rule(struct nl_batch *b, const struct ruleset_spec *sp, unsigned int *n)
{
	struct rb rb;

	if (rb_start(&rb, sp->table, CHAIN_FENCE,
	    "flooding senders smtpguardd refuses anyway: reset and counted in the kernel") < 0)
		return -1;
	x_meta_load(&rb, NFT_META_MARK);
	x_bitwise(&rb, sp->mark_mask, 0);
	x_cmp_u32(&rb, NFT_CMP_NEQ, mark_value(sp->mark_mask, MARK_PROBE));
	x_l4proto_tcp(&rb);
	x_tcp_flags(&rb, TH_SYN_ACK_MASK);
	x_cmp_u8(&rb, NFT_CMP_EQ, TCP_FLAG_SYN);
	x_tcp_dport(&rb);
	x_lookup(&rb, SET_PORTS, ID_PORTS);
	x_meta_load(&rb, NFT_META_SKUID);
	x_objref_map(&rb, SET_REFUSED, ID_REFUSED);
	x_reject_rst(&rb);
	return rb_put(b, &rb, "%s #%u (refused_uids)", CHAIN_FENCE, ++*n);
}

/*
 * After the refused rule: a new flow's SYN to a fenced port from a uid in
 * @audited_uids (one smtpguardd audits whatever it names, policy.c) is
 * audited here: its ct mark becomes audit, the SYN itself is copied to
 * smtpguardd at once (queue threshold 1: the copies gathered before it go
 * with it) and goes on. smtpguardd names the sender from that copy, while
 * the socket is still open, and reads the flow from the copies that follow,
 * as for a flow it audited itself. Only an unmarked SYN in ct state new: not
 * the self-check's probe, not one queued after NAT, not one that took over
 * an old flow's entry (queued before this, put_taken_over_syn); with no
 * conntrack entry the ct expressions break the rule and the queue decides.
 */
static int
put_audited_rule(struct nl_batch *b, const struct ruleset_spec *sp, unsigned int *n)
{
	uint32_t m = sp->mark_mask;
	struct rb rb;

	if (rb_start(&rb, sp->table, CHAIN_FENCE,
	    "senders smtpguardd audits whatever they name: audited in the kernel, named from the copy") < 0)
		return -1;
	x_mark_is(&rb, m, MARK_NONE);
	x_l4proto_tcp(&rb);
	x_tcp_flags(&rb, TH_SYN_ACK_MASK);
	x_cmp_u8(&rb, NFT_CMP_EQ, TCP_FLAG_SYN);
	x_tcp_dport(&rb);
	x_lookup(&rb, SET_PORTS, ID_PORTS);
	x_ct_load(&rb, NFT_CT_STATE);
	x_bitwise(&rb, NF_CT_STATE_BIT(IP_CT_NEW), 0);
	x_cmp_u32(&rb, NFT_CMP_NEQ, 0);
	x_meta_load(&rb, NFT_META_SKUID);
	x_lookup(&rb, SET_AUDITED, ID_AUDITED);
	x_ct_load(&rb, NFT_CT_MARK);
	x_bitwise(&rb, ~m, mark_value(m, MARK_INSPECT));
	x_ct_store(&rb, NFT_CT_MARK);
	x_log_group(&rb, sp->audit_group, sp->audit_snaplen, 1);
	x_verdict(&rb, NF_ACCEPT, NULL);
	return rb_put(b, &rb, "%s #%u (audited_uids)", CHAIN_FENCE, ++*n);
}

static int
build_fence(struct nl_batch *b, const struct ruleset_spec *sp, bool native)
{
	unsigned int n = 0;
	struct rb rb;

	if (put_uid_accepts(b, sp, CHAIN_FENCE, &n) < 0 ||
	    put_verdicts(b, sp, CHAIN_FENCE, verdicts, NELEM(verdicts), &n) < 0 ||
	    /* After the verdicts: a repeated packet never needs it. */
	    put_allow_local(b, sp, CHAIN_FENCE, "allow_local: this host's own addresses",
	    &n) < 0 ||
	    put_taken_over_syn(b, sp, CHAIN_FENCE, true, native, &n) < 0 ||
	    put_decided(b, sp, CHAIN_FENCE, decided, NELEM(decided), native, &n) < 0 ||
	    (sp->detect_any_port && put_probed(b, sp, native, &n) < 0))
		return -1;
	/*
	 * No "ct state established accept": a flow that began before the fence
	 * (or under an exception since revoked) is queued at its next packet
	 * and decided like a new one. What a local server answers in a flow
	 * the far side opened is no outbound mail and goes on; the one reply
	 * that could start a session of our own, a bare SYN (a simultaneous
	 * open against a spoofed SYN "from the mx"), is still decided.
	 */
	if (rb_start(&rb, sp->table, CHAIN_FENCE,
	    "answers in flows the far side opened, but a SYN") < 0)
		return -1;
	x_ct_load(&rb, NFT_CT_DIRECTION);	/* one byte */
	x_cmp_u8(&rb, NFT_CMP_EQ, IP_CT_DIR_REPLY);
	x_l4proto_tcp(&rb);	/* all TCP here; it lets nft print "tcp flags" */
	x_tcp_flags(&rb, TH_SYN_ACK_MASK);
	x_cmp_u8(&rb, NFT_CMP_NEQ, TCP_FLAG_SYN);
	x_verdict(&rb, NF_ACCEPT, NULL);
	if (rb_put(b, &rb, "%s #%u (replies)", CHAIN_FENCE, ++n) < 0)
		return -1;
	if (put_refused_rule(b, sp, &n) < 0 || put_audited_rule(b, sp, &n) < 0)
		return -1;
	return put_queue_and_socketless(b, sp, CHAIN_FENCE, MARK_NONE,
	    "everyone else: smtpguardd decides (no bypass: fails closed)", native, &n);
}

/*
 * A flow redirected to the local MTA reaches nat_fence when the MTA's port
 * is fenced (25 is): going to this host's own address on that port, it is
 * our redirect's and local delivery, and goes on. Anywhere else, another
 * NAT rule took the flow before ours (nat chains bind at the first that
 * translates): reset, as for the trap.
 */
static int
put_nat_redirected(struct nl_batch *b, const struct ruleset_spec *sp, unsigned int *n)
{
	uint16_t port = htons(sp->redirect_port);
	struct rb rb;

	if (rb_start(&rb, sp->table, CHAIN_NAT_FENCE,
	    "redirected by our own chain: the local MTA") < 0)
		return -1;
	x_ct_load(&rb, NFT_CT_MARK);
	x_bitwise(&rb, sp->mark_mask, 0);
	x_cmp_u32(&rb, NFT_CMP_EQ, mark_value(sp->mark_mask, MARK_REDIRECT));
	x_fib_daddr_local(&rb);
	x_l4proto_tcp(&rb);
	x_tcp_dport(&rb);
	x_cmp(&rb, NFT_CMP_EQ, &port, sizeof(port));
	x_verdict(&rb, NF_ACCEPT, NULL);
	if (rb_put(b, &rb, "%s #%u (ct mark redirect, local)", CHAIN_NAT_FENCE, ++*n) < 0)
		return -1;
	if (rb_start(&rb, sp->table, CHAIN_NAT_FENCE,
	    "redirected, but another NAT rule took the flow before ours") < 0)
		return -1;
	x_ct_load(&rb, NFT_CT_MARK);
	x_bitwise(&rb, sp->mark_mask, 0);
	x_cmp_u32(&rb, NFT_CMP_EQ, mark_value(sp->mark_mask, MARK_REDIRECT));
	x_reject_rst(&rb);
	return rb_put(b, &rb, "%s #%u (ct mark redirect)", CHAIN_NAT_FENCE, ++*n);
}

/*
 * After NAT: a flow an output NAT rule (the admin's, not our trap) sent to
 * a fenced port is judged again on the destination it really leaves for.
 * Undecided ones are queued marked MARK_NAT, so smtpguardd sees the
 * translated address and knows a trap or audit cannot apply there.
 */
static int
build_nat_fence(struct nl_batch *b, const struct ruleset_spec *sp, bool native)
{
	unsigned int n = 0;

	if (put_uid_accepts(b, sp, CHAIN_NAT_FENCE, &n) < 0 ||
	    put_verdicts(b, sp, CHAIN_NAT_FENCE, nat_verdicts, NELEM(nat_verdicts), &n) < 0 ||
	    put_allow_local(b, sp, CHAIN_NAT_FENCE,
	    "allow_local: translated to this host's own addresses", &n) < 0 ||
	    put_taken_over_syn(b, sp, CHAIN_NAT_FENCE, false, native, &n) < 0 ||
	    put_decided(b, sp, CHAIN_NAT_FENCE, nat_decided, NELEM(nat_decided), native,
	    &n) < 0 ||
	    put_nat_redirected(b, sp, &n) < 0)
		return -1;
	return put_queue_and_socketless(b, sp, CHAIN_NAT_FENCE, MARK_NAT,
	    "translated to an SMTP port: smtpguardd judges the real destination", native, &n);
}

/*
 * detect_any_port: the replies of a flow smtpguardd is still reading (ct
 * mark inspect) from a port nobody fences go to the queue, marked as
 * followed: sniff.c needs the server's side, its greeting above all. An
 * audited flow (an SMTP port) is read on its client's side only. The
 * verdicts come first: NF_REPEAT runs this chain again from the top.
 */
static int
build_input(struct nl_batch *b, const struct ruleset_spec *sp, bool native)
{
	uint32_t m = sp->mark_mask;
	unsigned int n = 0;
	struct rb rb;

	if (put_verdicts(b, sp, CHAIN_INPUT, input_verdicts, NELEM(input_verdicts), &n) < 0)
		return -1;
	/* Any other answer to a reply is final too: it never goes round the queue again. */
	if (rb_start(&rb, sp->table, CHAIN_INPUT, "any other answer to a reply: accept") < 0)
		return -1;
	x_meta_load(&rb, NFT_META_MARK);
	x_bitwise(&rb, m, 0);
	x_cmp_u32(&rb, NFT_CMP_NEQ, 0);
	x_mark_set(&rb, m, MARK_NONE);
	x_verdict(&rb, NF_ACCEPT, NULL);
	if (rb_put(b, &rb, "%s #%u (other answers)", CHAIN_INPUT, ++n) < 0)
		return -1;
	if (rb_start(&rb, sp->table, CHAIN_INPUT,
	    "detect_any_port: replies of flows still being read go to smtpguardd") < 0)
		return -1;
	x_l4proto_tcp(&rb);
	x_ct_load(&rb, NFT_CT_MARK);
	x_bitwise(&rb, m, 0);
	x_cmp_u32(&rb, NFT_CMP_EQ, mark_value(m, MARK_INSPECT));
	x_tcp_port(&rb, 0);
	x_lookup_in(&rb, SET_PORTS, ID_PORTS, true);
	x_mark_followed(&rb, m);
	x_queue(&rb, sp->queue_num, native);
	return rb_put(b, &rb, "%s #%u (replies)" QUEUE_LABEL, CHAIN_INPUT, ++n);
}

/*
 * The table CFG asks for, with the MTA's uids and the plain exceptions'
 * (the caller's arrays: they must outlive SPEC). A nat chain is registered
 * only when its decision can be made: the trap's with action = trap, the
 * local MTA's with the mail gate on (an exception's redirect is refused
 * without it). With any nat chain, conntrack binds NAT (a null binding) for
 * every new flow on the host, the MTA's too.
 */
void
ruleset_spec_of(const struct config *cfg, const uid_t *mta, size_t nmta, const uid_t *allow,
    size_t nallow, struct ruleset_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->table = TABLE_NAME;
	spec->ports = cfg->ports;
	spec->nports = cfg->nports;
	spec->mta_uids = mta;
	spec->nmta = nmta;
	spec->allow_uids = allow;
	spec->nallow = nallow;
	spec->allow_local = cfg->allow_local;
	spec->queue_num = cfg->queue_num;
	spec->audit_group = cfg->audit_log_group;
	spec->data_release = true;
	spec->audit_snaplen = cfg->inspect_bytes + AUDIT_COPY_HEADROOM < AUDIT_COPY_MAX ?
	    (uint32_t)(cfg->inspect_bytes + AUDIT_COPY_HEADROOM) : AUDIT_COPY_MAX;
	spec->mark_mask = cfg->mark_mask;
	spec->trap = cfg->action == ACTION_TRAP;
	spec->redirect = cfg->mail_gate;
	spec->detect_any_port = cfg->detect_any_port;
	spec->trap_port = cfg->trap_port;
	spec->redirect_port = cfg->redirect_to;
}

static int
check_spec(const struct ruleset_spec *sp)
{
	if (check_name(sp->table) < 0)
		return -1;
	/* An empty port set would fence nothing while looking installed. */
	if (sp->nports == 0 || sp->nports > CONFIG_MAX_PORTS ||
	    (sp->nmta > 0 && sp->mta_uids == NULL) ||
	    (sp->nallow > 0 && sp->allow_uids == NULL)) {
		errno = EINVAL;
		return -1;
	}
	/* A state the mask cannot hold would read as 0, "undecided", and match everyone. */
	for (int st = MARK_NONE + 1; st <= MARK_LAST; st++)
		if (mark_value(sp->mark_mask, (enum mark_state)st) == 0) {
			errno = EINVAL;
			return -1;
		}
	if (sp->trap && sp->trap_port == 0) {
		errno = EINVAL;
		return -1;
	}
	/* No redirect target, or the trap's port: redirected mail would be refused. */
	if (sp->redirect_port == 0 || (sp->trap && sp->redirect_port == sp->trap_port)) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* The decisions carried out by our own NAT, at a flow's first packet. */
static const struct {
	enum mark_state	 state;
	const char	*name, *comment;
} nat_carried[] = {
	{ MARK_TRAP, "trap", "trapped flows that NAT left untranslated never leave" },
	{ MARK_REDIRECT, "redirect", "redirected flows that NAT left untranslated never leave" },
};

int
ruleset_build(struct nl_batch *b, const struct ruleset_spec *sp, bool native_queue)
{
	struct rb rb;

	if (check_spec(sp) < 0)
		return -1;
	/* Create-if-absent, then delete: the delete cannot fail, and the kernel swaps both at commit. */
	if (put_table(b, NFT_MSG_NEWTABLE, NLM_F_CREATE, sp->table, "add") < 0 ||
	    put_table(b, NFT_MSG_DELTABLE, 0, sp->table, "delete") < 0 ||
	    put_table(b, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, sp->table,
	    "create") < 0)
		return -1;
	if (build_sets(b, sp) < 0)
		return -1;
	if (put_chain(b, sp->table, CHAIN_OUTPUT, "filter", NF_INET_LOCAL_OUT,
	    FENCE_PRIORITY) < 0 ||
	    put_chain(b, sp->table, CHAIN_FENCE, NULL, -1, 0) < 0)
		return -1;
	if (sp->trap && put_chain(b, sp->table, CHAIN_TRAP, "nat", NF_INET_LOCAL_OUT,
	    TRAP_PRIORITY) < 0)
		return -1;
	if (sp->redirect && put_chain(b, sp->table, CHAIN_REDIRECT, "nat", NF_INET_LOCAL_OUT,
	    TRAP_PRIORITY) < 0)
		return -1;
	if (put_chain(b, sp->table, CHAIN_AFTER_NAT, "filter", NF_INET_LOCAL_OUT,
	    AFTER_NAT_PRIORITY) < 0 ||
	    put_chain(b, sp->table, CHAIN_NAT_FENCE, NULL, -1, 0) < 0)
		return -1;
	if (sp->detect_any_port && put_chain(b, sp->table, CHAIN_INPUT, "filter",
	    NF_INET_LOCAL_IN, INPUT_PRIORITY) < 0)
		return -1;

	if (sp->detect_any_port) {
		/*
		 * detect_any_port: every TCP flow of a fenced user meets the fence;
		 * smtpguardd follows the ones to other ports up to their first
		 * client bytes, and resets those that speak SMTP.
		 */
		if (rb_start(&rb, sp->table, CHAIN_OUTPUT,
		    "detect_any_port: all TCP goes through the fence") < 0)
			return -1;
		x_l4proto_tcp(&rb);
		x_verdict(&rb, NFT_JUMP, CHAIN_FENCE);
		if (rb_put(b, &rb, "output #1 (any port)") < 0)
			return -1;
	} else {
		if (rb_start(&rb, sp->table, CHAIN_OUTPUT, "SMTP ports go through the fence") < 0)
			return -1;
		x_l4proto_tcp(&rb);
		x_tcp_dport(&rb);
		x_lookup(&rb, SET_PORTS, ID_PORTS);
		x_verdict(&rb, NFT_JUMP, CHAIN_FENCE);
		if (rb_put(b, &rb, "output #1 (ports)") < 0)
			return -1;
	}

	if (build_fence(b, sp, native_queue) < 0)
		return -1;
	if (sp->detect_any_port && build_input(b, sp, native_queue) < 0)
		return -1;

	/*
	 * Our own redirects are DNAT too: the trap's to a port never fenced, the
	 * MTA's to its port on this host, which nat_fence lets by (put_nat_redirected).
	 */
	if (rb_start(&rb, sp->table, CHAIN_AFTER_NAT,
	    "flows output NAT sent to an SMTP port meet the fence again") < 0)
		return -1;
	x_ct_load(&rb, NFT_CT_STATUS);
	x_bitwise(&rb, IPS_DST_NAT, 0);
	x_cmp_u32(&rb, NFT_CMP_NEQ, 0);
	x_l4proto_tcp(&rb);
	x_tcp_dport(&rb);
	x_lookup(&rb, SET_PORTS, ID_PORTS);
	x_verdict(&rb, NFT_JUMP, CHAIN_NAT_FENCE);
	if (rb_put(b, &rb, "after_nat #1 (dnat to ports)") < 0)
		return -1;
	/*
	 * A flow given "trap" or "redirect" whose NAT was bound untranslated
	 * before our chain could act (its first SYN passed before the fence
	 * was there, and this is a retransmission) would leave for the mx:
	 * reset, never out.
	 */
	for (size_t i = 0; i < NELEM(nat_carried); i++) {
		if (rb_start(&rb, sp->table, CHAIN_AFTER_NAT, nat_carried[i].comment) < 0)
			return -1;
		x_ct_load(&rb, NFT_CT_MARK);
		x_bitwise(&rb, sp->mark_mask, 0);
		x_cmp_u32(&rb, NFT_CMP_EQ, mark_value(sp->mark_mask, nat_carried[i].state));
		x_ct_load(&rb, NFT_CT_STATUS);
		x_bitwise(&rb, IPS_DST_NAT, 0);
		x_cmp_u32(&rb, NFT_CMP_EQ, 0);
		x_l4proto_tcp(&rb);	/* reject with tcp reset needs TCP */
		x_reject_rst(&rb);
		if (rb_put(b, &rb, "after_nat #%zu (%s untranslated)", i + 2,
		    nat_carried[i].name) < 0)
			return -1;
	}
	if (build_nat_fence(b, sp, native_queue) < 0)
		return -1;

	if (sp->trap) {
		if (rb_start(&rb, sp->table, CHAIN_TRAP,
		    "trapped flows meet smtpguardd's trap") < 0)
			return -1;
		x_l4proto_tcp(&rb);
		x_ct_load(&rb, NFT_CT_MARK);
		x_bitwise(&rb, sp->mark_mask, 0);
		x_cmp_u32(&rb, NFT_CMP_EQ, mark_value(sp->mark_mask, MARK_TRAP));
		x_redirect(&rb, sp->trap_port);
		if (rb_put(b, &rb, "trap #1 (redirect)") < 0)
			return -1;
	}
	/*
	 * action redirect: the flow goes to the MTA on this host (127.0.0.1 or
	 * ::1: what redirect means on the output hook) instead of the mx. The
	 * MTA's own delivery never gets here: its uids are accepted before any
	 * verdict, so its flows never carry this ct mark.
	 */
	if (!sp->redirect)
		return 0;
	if (rb_start(&rb, sp->table, CHAIN_REDIRECT,
	    "redirected flows go to the local MTA, under the mail gate's limits") < 0)
		return -1;
	x_l4proto_tcp(&rb);
	x_ct_load(&rb, NFT_CT_MARK);
	x_bitwise(&rb, sp->mark_mask, 0);
	x_cmp_u32(&rb, NFT_CMP_EQ, mark_value(sp->mark_mask, MARK_REDIRECT));
	x_redirect(&rb, sp->redirect_port);
	return rb_put(b, &rb, "to_mta #1 (redirect)");
}

/* The kernel refused the batch at a rule whose label ends in WHICH. */
static bool
refused_rule(const struct nl_batch *b, const char *which)
{
	const char *label = nl_batch_label(b, b->failed);
	size_t n = strlen(label), k = strlen(which);

	return (errno == ENOENT || errno == EOPNOTSUPP) && b->failed >= 0 && n >= k &&
	    strcmp(label + n - k, which) == 0;
}

/*
 * Installs SP's table: with the native queue where the kernel has it, and
 * with the DATA rule where it can match an inner header (else
 * sp->data_release is cleared: smtpguardd releases every audited flow).
 */
int
ruleset_install(struct ruleset_spec *sp, bool *native_queue, char *err, size_t errlen)
{
	struct nl_batch b;
	bool native = true;
	int rc, saved;

	for (;;) {
		if (nl_batch_init(&b) < 0) {
			snprintf(err, errlen, "netlink batch: %s", strerror(errno));
			return -1;
		}
		if (ruleset_build(&b, sp, native) < 0) {
			saved = errno;
			snprintf(err, errlen, "building table %s: %s",
			    sp->table != NULL ? sp->table : "(none)", strerror(saved));
			nl_batch_free(&b);
			errno = saved;
			return -1;
		}
		rc = nl_batch_send(&b, err, errlen);
		saved = errno;
		/* No native nft queue in this kernel: the xt NFQUEUE target does the same. */
		if (rc < 0 && native && refused_rule(&b, QUEUE_LABEL)) {
			nl_batch_free(&b);
			native = false;
			continue;
		}
		if (rc < 0 && sp->data_release && refused_rule(&b, DATA_LABEL)) {
			nl_batch_free(&b);
			sp->data_release = false;
			continue;
		}
		nl_batch_free(&b);
		if (rc < 0) {
			errno = saved;
			return -1;
		}
		*native_queue = native;
		return 0;
	}
}

int
ruleset_remove(const char *table, char *err, size_t errlen)
{
	struct nl_batch b;
	int rc, saved;

	if (check_name(table) < 0) {
		snprintf(err, errlen, "table name: %s", strerror(errno));
		return -1;
	}
	if (nl_batch_init(&b) < 0) {
		snprintf(err, errlen, "netlink batch: %s", strerror(errno));
		return -1;
	}
	if ((rc = put_table(&b, NFT_MSG_DELTABLE, 0, table, "delete")) < 0)
		snprintf(err, errlen, "building the batch: %s", strerror(errno));
	else
		rc = nl_batch_send(&b, err, errlen);
	saved = errno;
	nl_batch_free(&b);
	errno = saved;
	return rc;
}

int
ruleset_build_set_uids(struct nl_batch *b, const char *table, const char *set, bool add,
    const uid_t *uids, size_t n)
{
	if (check_name(table) < 0 || check_name(set) < 0)
		return -1;
	if (n == 0 || uids == NULL) {
		errno = EINVAL;
		return -1;
	}
	return put_uid_elems(b, add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, table, set,
	    0, uids, n);
}

/*
 * @audited_uids: UID in, for TIMEOUT_MS (an element already there is no
 * error), or every element out (UID ignored).
 */
int
ruleset_build_audited(struct nl_batch *b, const char *table, bool add, uid_t uid,
    uint64_t timeout_ms)
{
	uint32_t key = (uint32_t)uid;
	struct nftnl_set_elem *e;
	struct nftnl_set *s;
	struct nlmsghdr *nlh;
	int rc = -1;

	if (check_name(table) < 0)
		return -1;
	if (add && timeout_ms == 0) {
		errno = EINVAL;
		return -1;
	}
	if ((s = set_new(table, SET_AUDITED, 0)) == NULL)
		return -1;
	if (add) {
		if ((e = nftnl_set_elem_alloc()) == NULL)
			goto out;
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, &key, sizeof(key));
		nftnl_set_elem_set_u64(e, NFTNL_SET_ELEM_TIMEOUT, timeout_ms);
		nftnl_set_elem_add(s, e);
	}
	/* A delete with no elements flushes the set: timed-out ones are no error. */
	if (add)
		nlh = nl_batch_put(b, NFT_MSG_NEWSETELEM, NFPROTO_INET, NLM_F_CREATE,
		    "add uid %lu to set %s", (unsigned long)uid, SET_AUDITED);
	else
		nlh = nl_batch_put(b, NFT_MSG_DELSETELEM, NFPROTO_INET, 0, "flush set %s",
		    SET_AUDITED);
	if (nlh == NULL)
		goto out;
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	rc = nl_batch_next(b);
out:
	nftnl_set_free(s);
	return rc;
}

/*
 * After BUILT (the builder's result) for SET: the batch sent, or ERR saying
 * which step failed; the batch freed either way, errno kept.
 */
static int
send_set_batch(struct nl_batch *b, int built, const char *set, char *err, size_t errlen)
{
	int rc = built, saved;

	if (rc < 0)
		snprintf(err, errlen, "building the batch for set %s: %s",
		    set != NULL ? set : "(none)", strerror(errno));
	else
		rc = nl_batch_send(b, err, errlen);
	saved = errno;
	nl_batch_free(b);
	errno = saved;
	return rc;
}

static int
set_batch_init(struct nl_batch *b, char *err, size_t errlen)
{
	if (nl_batch_init(b) < 0) {
		snprintf(err, errlen, "netlink batch: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int
ruleset_audited(const char *table, bool add, uid_t uid, uint64_t timeout_ms, char *err,
    size_t errlen)
{
	struct nl_batch b;

	if (set_batch_init(&b, err, errlen) < 0)
		return -1;
	return send_set_batch(&b, ruleset_build_audited(&b, table, add, uid, timeout_ms),
	    SET_AUDITED, err, errlen);
}

int
ruleset_set_uids(const char *table, const char *set, bool add, const uid_t *uids,
    size_t n, char *err, size_t errlen)
{
	struct nl_batch b;

	if (set_batch_init(&b, err, errlen) < 0)
		return -1;
	return send_set_batch(&b, ruleset_build_set_uids(&b, table, set, add, uids, n), set,
	    err, errlen);
}

/*
 * One request NLH (built in BUF) on a socket of its own, and every answer
 * to CB until the one that ends the exchange (the ACK, NLMSG_DONE, or an
 * error): 0, or -1 with errno (the kernel's error, or ETIMEDOUT).
 */
static int
ask_kernel(char *buf, size_t len, struct nlmsghdr *nlh, mnl_cb_t cb, void *arg)
{
	struct mnl_socket *nl;
	struct pollfd pfd;
	uint32_t seq = nlh->nlmsg_seq, portid;	/* the answers overwrite BUF */
	int rc, saved;

	if ((nl = nl_open()) == NULL)
		return -1;
	portid = mnl_socket_get_portid(nl);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		goto fail;
	pfd = (struct pollfd){ .fd = mnl_socket_get_fd(nl), .events = POLLIN };
	do {
		ssize_t n;

		if ((rc = poll(&pfd, 1, ANSWER_WAIT_MS)) <= 0) {
			if (rc == 0)
				errno = ETIMEDOUT;
			goto fail;
		}
		if ((n = mnl_socket_recvfrom(nl, buf, len)) < 0)
			goto fail;
		rc = mnl_cb_run(buf, (size_t)n, seq, portid, cb, arg);
	} while (rc > 0);
	if (rc < 0)
		goto fail;
	mnl_socket_close(nl);
	return 0;
fail:
	saved = errno;
	mnl_socket_close(nl);
	errno = saved;
	return -1;
}

static int
table_seen(const struct nlmsghdr *nlh, void *arg)
{
	if (NFNL_MSG_TYPE(nlh->nlmsg_type) == NFT_MSG_NEWTABLE)
		*(int *)arg = 1;
	return MNL_CB_OK;
}

int
ruleset_exists(const char *table)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nftnl_table *t;
	struct nlmsghdr *nlh;
	uint32_t seq = (uint32_t)time(NULL);
	int found = 0;

	if (check_name(table) < 0)
		return -1;
	if ((t = nftnl_table_alloc()) == NULL)
		return -1;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, seq);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	/* The table (if any), then the ACK or the error that ends the exchange. */
	if (ask_kernel(buf, sizeof(buf), nlh, table_seen, &found) < 0 && errno != ENOENT)
		return -1;
	return found;
}

/*
 * refuse.c's messages on @refused_uids. A uid is added as its counter
 * object ("refused_UID", new: a stale one would carry another window's
 * count) and its map element to it, with a timeout that is only a safety
 * net, in one batch: both or neither. Removing it is two steps, as refuse.c
 * does them: the element deleted (one uid, or UID NULL: the map flushed),
 * so no new packet matches; then, once no packet can still be counting on
 * the object, its final count read (ruleset_refused_dump) and the object
 * deleted.
 */
static struct nftnl_obj *
refused_obj(const char *table, uid_t uid)
{
	char name[sizeof(OBJ_REFUSED_PREFIX) + 20];
	struct nftnl_obj *o;

	if ((o = nftnl_obj_alloc()) == NULL)
		return NULL;
	snprintf(name, sizeof(name), OBJ_REFUSED_PREFIX "%lu", (unsigned long)uid);
	nftnl_obj_set_u32(o, NFTNL_OBJ_FAMILY, NFPROTO_INET);
	nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, table);
	nftnl_obj_set_str(o, NFTNL_OBJ_NAME, name);
	nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
	return o;
}

int
ruleset_build_refused_add(struct nl_batch *b, const char *table, uid_t uid,
    uint64_t timeout_ms)
{
	char name[sizeof(OBJ_REFUSED_PREFIX) + 20];
	uint32_t key = (uint32_t)uid;
	struct nftnl_set_elem *e;
	struct nftnl_set *s = NULL;
	struct nftnl_obj *o;
	struct nlmsghdr *nlh;
	int rc = -1;

	if (check_name(table) < 0)
		return -1;
	if (timeout_ms == 0) {
		errno = EINVAL;
		return -1;
	}
	if ((o = refused_obj(table, uid)) == NULL)
		return -1;
	if ((nlh = nl_batch_put(b, NFT_MSG_NEWOBJ, NFPROTO_INET, NLM_F_CREATE | NLM_F_EXCL,
	    "add counter %s%lu", OBJ_REFUSED_PREFIX, (unsigned long)uid)) == NULL)
		goto out;
	nftnl_obj_nlmsg_build_payload(nlh, o);
	if (nl_batch_next(b) < 0)
		goto out;
	if ((s = set_new(table, SET_REFUSED, 0)) == NULL ||
	    (e = nftnl_set_elem_alloc()) == NULL)
		goto out;
	snprintf(name, sizeof(name), OBJ_REFUSED_PREFIX "%lu", (unsigned long)uid);
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, &key, sizeof(key));
	nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_OBJREF, name);
	nftnl_set_elem_set_u64(e, NFTNL_SET_ELEM_TIMEOUT, timeout_ms);
	nftnl_set_elem_add(s, e);
	if ((nlh = nl_batch_put(b, NFT_MSG_NEWSETELEM, NFPROTO_INET, NLM_F_CREATE | NLM_F_EXCL,
	    "add uid %lu to map %s", (unsigned long)uid, SET_REFUSED)) == NULL)
		goto out;
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	rc = nl_batch_next(b);
out:
	if (s != NULL)
		nftnl_set_free(s);
	nftnl_obj_free(o);
	return rc;
}

int
ruleset_build_refused_del(struct nl_batch *b, const char *table, const uid_t *uid)
{
	struct nftnl_set_elem *e;
	struct nftnl_set *s;
	struct nlmsghdr *nlh;
	uint32_t key;
	int rc = -1;

	if (check_name(table) < 0)
		return -1;
	if ((s = set_new(table, SET_REFUSED, 0)) == NULL)
		return -1;
	if (uid != NULL) {
		key = (uint32_t)*uid;
		if ((e = nftnl_set_elem_alloc()) == NULL)
			goto out;
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, &key, sizeof(key));
		nftnl_set_elem_add(s, e);
	}
	/* No element list: the kernel flushes the map (nft flush map). */
	if (uid != NULL)
		nlh = nl_batch_put(b, NFT_MSG_DELSETELEM, NFPROTO_INET, 0,
		    "delete uid %lu from map %s", (unsigned long)*uid, SET_REFUSED);
	else
		nlh = nl_batch_put(b, NFT_MSG_DELSETELEM, NFPROTO_INET, 0,
		    "flush map %s", SET_REFUSED);
	if (nlh == NULL)
		goto out;
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	rc = nl_batch_next(b);
out:
	nftnl_set_free(s);
	return rc;
}

int
ruleset_build_refused_forget(struct nl_batch *b, const char *table, uid_t uid)
{
	struct nftnl_obj *o;
	struct nlmsghdr *nlh;
	int rc = -1;

	if (check_name(table) < 0)
		return -1;
	if ((o = refused_obj(table, uid)) == NULL)
		return -1;
	if ((nlh = nl_batch_put(b, NFT_MSG_DELOBJ, NFPROTO_INET, 0,
	    "delete counter %s%lu", OBJ_REFUSED_PREFIX, (unsigned long)uid)) != NULL) {
		nftnl_obj_nlmsg_build_payload(nlh, o);
		rc = nl_batch_next(b);
	}
	nftnl_obj_free(o);
	return rc;
}

/* "refused_UID" with UID decimal, no sign, no leading zero, within uid_t: UID; else -1. */
static int
refused_name_uid(const char *name, uid_t *uid)
{
	const char *d = name + strlen(OBJ_REFUSED_PREFIX);
	unsigned long long v = 0;

	if (strncmp(name, OBJ_REFUSED_PREFIX, strlen(OBJ_REFUSED_PREFIX)) != 0 || *d == '\0' ||
	    (d[0] == '0' && d[1] != '\0'))
		return -1;
	for (; *d != '\0'; d++) {
		if (*d < '0' || *d > '9' || (v = v * 10 + (unsigned long long)(*d - '0')) >
		    UINT32_MAX)
			return -1;
	}
	*uid = (uid_t)v;
	return 0;
}

/*
 * The counter object of TABLE's refused uids that NLH carries, as a dump
 * of objects sends it (NFT_MSG_NEWOBJ). It goes to FN with its uid and
 * packets.
 * Returns 1; 0 if NLH is some other message or object (another table's,
 * another type, a name not ours); -1 (EPROTO) if it is ours but cannot be
 * parsed or lacks its count.
 */
int
ruleset_refused_obj(const struct nlmsghdr *nlh, const char *table, ruleset_count_fn fn,
    void *arg)
{
	const char *t, *name;
	struct nftnl_obj *o;
	int rc = 0;
	uid_t uid;

	if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_NFTABLES ||
	    NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWOBJ ||
	    nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct nfgenmsg)))
		return 0;
	if ((o = nftnl_obj_alloc()) == NULL)
		return -1;
	if (nftnl_obj_nlmsg_parse(nlh, o) < 0) {
		rc = -1;
		errno = EPROTO;
		goto out;
	}
	t = nftnl_obj_get_str(o, NFTNL_OBJ_TABLE);
	name = nftnl_obj_get_str(o, NFTNL_OBJ_NAME);
	if (t == NULL || name == NULL || strcmp(t, table) != 0 ||
	    !nftnl_obj_is_set(o, NFTNL_OBJ_TYPE) ||
	    nftnl_obj_get_u32(o, NFTNL_OBJ_TYPE) != NFT_OBJECT_COUNTER ||
	    refused_name_uid(name, &uid) < 0)
		goto out;
	if (!nftnl_obj_is_set(o, NFTNL_OBJ_CTR_PKTS)) {
		rc = -1;
		errno = EPROTO;
		goto out;
	}
	fn(arg, uid, nftnl_obj_get_u64(o, NFTNL_OBJ_CTR_PKTS));
	rc = 1;
out:
	nftnl_obj_free(o);
	return rc;
}

struct dump {
	const char		*table;
	ruleset_count_fn	 fn;
	void			*arg;
	bool			 bad;
};

static int
dump_cb(const struct nlmsghdr *nlh, void *arg)
{
	struct dump *dp = arg;

	if (ruleset_refused_obj(nlh, dp->table, dp->fn, dp->arg) < 0)
		dp->bad = true;
	return MNL_CB_OK;
}

/*
 * Every counter object of TABLE's refused uids as it is now, each to FN
 * with its packets: what the kernel has reset so far for the uids whose
 * counts are not read yet. 0, or -1 with errno.
 */
int
ruleset_refused_dump(const char *table, ruleset_count_fn fn, void *arg)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct dump dp = { .table = table, .fn = fn, .arg = arg };
	struct nftnl_obj *o;
	struct nlmsghdr *nlh;
	uint32_t seq = (uint32_t)time(NULL);

	if (check_name(table) < 0)
		return -1;
	if ((o = nftnl_obj_alloc()) == NULL)
		return -1;
	/* The kernel filters a dump by table and type. */
	nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, table);
	nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETOBJ, NFPROTO_INET, NLM_F_DUMP, seq);
	nftnl_obj_nlmsg_build_payload(nlh, o);
	nftnl_obj_free(o);
	/* Object messages, then NLMSG_DONE (or the error) ends the dump. */
	if (ask_kernel(buf, sizeof(buf), nlh, dump_cb, &dp) < 0)
		return -1;
	if (dp.bad) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}
