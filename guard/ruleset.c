/*
 * ruleset.c — table inet smtpguard as libnftnl objects, built into an
 * nl_batch separately from sending it, so unit tests can parse it back.
 *
 * The table is replaced in one batch (add, delete, add: the add makes the
 * delete safe when there is no table yet), so there is never a moment
 * without a fence and never two copies. It touches no other table.
 * rules/smtpguard.nft is what `nft list` shows of it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/xt_NFQUEUE.h>
#include <linux/rtnetlink.h>

#include "smtpguard.h"

/* nftables' datatype numbers (its include/datatype.h), so `nft list` prints the sets right. */
#define NFT_TYPE_INET_SERVICE	13
#define NFT_TYPE_UID		24
/* ... and its enum byteorder, kept in set userdata for the same reason. */
#define NFT_BYTEORDER_HOST	1
#define NFT_BYTEORDER_BIG	2

#define PRIO_FENCE		(-150)	/* before NAT (-100): decide, then redirect */
#define PRIO_NAT		(-100)
#define SET_ID_PORTS		1
#define SET_ID_MTA		2
#define SET_ID_ALLOW		3
#define COMMENT_MAX		128

/* One rule under construction: its expressions, then a comment. */
struct rb {
	struct nftnl_rule	*r;
	bool			 oom;
};

static struct nftnl_expr *
rb_expr(struct rb *rb, const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);

	if (e == NULL)
		rb->oom = true;
	else
		nftnl_rule_add_expr(rb->r, e);
	return e;
}

static void
rb_meta_load(struct rb *rb, uint32_t key)
{
	struct nftnl_expr *e = rb_expr(rb, "meta");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	}
}

static void
rb_meta_store(struct rb *rb, uint32_t key)
{
	struct nftnl_expr *e = rb_expr(rb, "meta");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, NFT_REG_1);
	}
}

static void
rb_ct_load(struct rb *rb, uint32_t key)
{
	struct nftnl_expr *e = rb_expr(rb, "ct");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	}
}

static void
rb_ct_store(struct rb *rb, uint32_t key)
{
	struct nftnl_expr *e = rb_expr(rb, "ct");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_SREG, NFT_REG_1);
	}
}

static void
rb_cmp(struct rb *rb, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = rb_expr(rb, "cmp");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
		nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	}
}

/* reg1 = (reg1 & mask) ^ xor, on a 32-bit value in host order (marks, ct state). */
static void
rb_bitwise(struct rb *rb, uint32_t mask, uint32_t xor)
{
	struct nftnl_expr *e = rb_expr(rb, "bitwise");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &xor, sizeof(xor));
	}
}

static void
rb_lookup(struct rb *rb, const char *set, uint32_t set_id)
{
	struct nftnl_expr *e = rb_expr(rb, "lookup");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
		nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
	}
}

static void
rb_verdict(struct rb *rb, int verdict, const char *chain)
{
	struct nftnl_expr *e = rb_expr(rb, "immediate");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
		if (chain != NULL)
			nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
	}
}

static void
rb_reject_tcp_reset(struct rb *rb)
{
	struct nftnl_expr *e = rb_expr(rb, "reject");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
		nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, 0);
	}
}

/*
 * To the NFQUEUE, never with bypass: with no listener the packet is dropped.
 * Native nft_queue where the kernel has it, else the xtables target through
 * nft_compat (revision 3, as iptables-nft builds it).
 */
static void
rb_queue(struct rb *rb, uint16_t num, bool native)
{
	struct nftnl_expr *e;

	if (native) {
		if ((e = rb_expr(rb, "queue")) == NULL)
			return;
		nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_NUM, num);
		nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_TOTAL, 1);
		nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_FLAGS, 0);
	} else {
		struct xt_NFQ_info_v3 *info;

		if ((e = rb_expr(rb, "target")) == NULL)
			return;
		/* libnftnl takes ownership of the info buffer. */
		if ((info = calloc(1, sizeof(*info))) == NULL) {
			rb->oom = true;
			return;
		}
		info->queuenum = num;
		info->queues_total = 1;
		info->flags = 0;
		nftnl_expr_set_str(e, NFTNL_EXPR_TG_NAME, "NFQUEUE");
		nftnl_expr_set_u32(e, NFTNL_EXPR_TG_REV, 3);
		nftnl_expr_set(e, NFTNL_EXPR_TG_INFO, info, sizeof(*info));
	}
}

/* Loads ct mark or meta mark & mask, compares it with a flow state. */
static void
rb_mark_is(struct rb *rb, bool ct, uint32_t mask, enum mark_state st)
{
	uint32_t v = mark_value(mask, st);

	if (ct)
		rb_ct_load(rb, NFT_CT_MARK);
	else
		rb_meta_load(rb, NFT_META_MARK);
	rb_bitwise(rb, mask, 0);
	rb_cmp(rb, NFT_CMP_EQ, &v, sizeof(v));
}

static struct nftnl_rule *
rule_new(const char *table, const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();

	if (r == NULL)
		return NULL;
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	return r;
}

static int
rule_put(struct nl_batch *b, struct rb *rb, const char *chain, int n, const char *comment)
{
	struct nftnl_udata_buf *ud;
	struct nlmsghdr *nlh;
	int rc = -1;

	if (rb->oom || (ud = nftnl_udata_buf_alloc(COMMENT_MAX + 8)) == NULL) {
		errno = ENOMEM;
		goto out;
	}
	if (!nftnl_udata_put_strz(ud, NFTNL_UDATA_RULE_COMMENT, comment)) {
		nftnl_udata_buf_free(ud);
		errno = E2BIG;
		goto out;
	}
	nftnl_rule_set_data(rb->r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(ud),
	    nftnl_udata_buf_len(ud));
	nftnl_udata_buf_free(ud);
	if ((nlh = nl_batch_put(b, NFT_MSG_NEWRULE, NFPROTO_INET, NLM_F_CREATE | NLM_F_APPEND,
	    "add rule %s #%d (%s)", chain, n, comment)) == NULL)
		goto out;
	nftnl_rule_nlmsg_build_payload(nlh, rb->r);
	rc = nl_batch_next(b);
out:
	nftnl_rule_free(rb->r);
	rb->r = NULL;
	return rc;
}

static int
table_put(struct nl_batch *b, const char *name, uint16_t type, uint16_t flags)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;
	int rc = -1;

	if (t == NULL)
		return -1;
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	if ((nlh = nl_batch_put(b, type, NFPROTO_INET, flags, "%s table inet %s",
	    type == NFT_MSG_DELTABLE ? "delete" : "add", name)) != NULL) {
		nftnl_table_nlmsg_build_payload(nlh, t);
		rc = nl_batch_next(b);
	}
	nftnl_table_free(t);
	return rc;
}

static struct nftnl_set *
set_new(const char *table, const char *name)
{
	struct nftnl_set *s = nftnl_set_alloc();

	if (s == NULL)
		return NULL;
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	return s;
}

static int
elems_put(struct nl_batch *b, struct nftnl_set *s, uint16_t type, const char *name,
    const void *keys, size_t n, size_t keylen)
{
	struct nlmsghdr *nlh;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		struct nftnl_set_elem *e = nftnl_set_elem_alloc();

		if (e == NULL)
			return -1;
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, (const char *)keys + i * keylen,
		    (uint32_t)keylen);
		nftnl_set_elem_add(s, e);
	}
	if ((nlh = nl_batch_put(b, type, NFPROTO_INET, type == NFT_MSG_NEWSETELEM ?
	    NLM_F_CREATE : 0, "%s elements of set %s", type == NFT_MSG_NEWSETELEM ? "add" :
	    "delete", name)) == NULL)
		return -1;
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	return nl_batch_next(b);
}

/* A set of uids (key: uid_t in host order, as meta skuid loads it) or of ports. */
static int
set_put(struct nl_batch *b, const char *table, const char *name, uint32_t id,
    uint32_t type, const void *keys, size_t n, size_t keylen)
{
	struct nftnl_set *s = set_new(table, name);
	struct nftnl_udata_buf *ud;
	struct nlmsghdr *nlh;
	int rc = -1;

	if (s == NULL)
		return -1;
	if ((ud = nftnl_udata_buf_alloc(64)) == NULL)
		goto out;
	nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_KEYBYTEORDER,
	    type == NFT_TYPE_UID ? NFT_BYTEORDER_HOST : NFT_BYTEORDER_BIG);
	nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud),
	    nftnl_udata_buf_len(ud));
	nftnl_udata_buf_free(ud);
	nftnl_set_set_u32(s, NFTNL_SET_ID, id);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, type);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, (uint32_t)keylen);
	if ((nlh = nl_batch_put(b, NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE,
	    "add set %s", name)) == NULL)
		goto out;
	nftnl_set_nlmsg_build_payload(nlh, s);
	if (nl_batch_next(b) < 0)
		goto out;
	rc = elems_put(b, s, NFT_MSG_NEWSETELEM, name, keys, n, keylen);
out:
	nftnl_set_free(s);
	return rc;
}

static int
chain_put(struct nl_batch *b, const char *table, const char *name, const char *type,
    int prio)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh;
	int rc = -1;

	if (c == NULL)
		return -1;
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	if (type != NULL) {
		nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_LOCAL_OUT);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	}
	if ((nlh = nl_batch_put(b, NFT_MSG_NEWCHAIN, NFPROTO_INET, NLM_F_CREATE,
	    "add chain %s", name)) != NULL) {
		nftnl_chain_nlmsg_build_payload(nlh, c);
		rc = nl_batch_next(b);
	}
	nftnl_chain_free(c);
	return rc;
}

#define RULE(chain)	do { if ((rb.r = rule_new(s->table, chain)) == NULL) return -1; \
			    rb.oom = false; } while (0)

static int
fence_verdict_rules(struct nl_batch *b, const struct ruleset_spec *s, int *n)
{
	static const struct {
		enum mark_state	 st;
		const char	*comment;
	} verdicts[] = {
		{ MARK_ALLOW, "smtpguardd said allow: remember it for the flow" },
		{ MARK_REJECT, "smtpguardd said reject: reset, and remember it" },
		{ MARK_TRAP, "smtpguardd said trap: the nat chain redirects the flow" },
		{ MARK_INSPECT, "smtpguardd said audit: queue the flow until released" },
	};
	const uint32_t m = s->mark_mask;
	struct rb rb = { 0 };

	/*
	 * A verdict comes back as NF_REPEAT with the decision in our bits of the
	 * packet mark: copy it into the ct mark (other bits kept), clear it from
	 * the packet, and act on it.
	 */
	for (size_t i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++) {
		uint32_t v = mark_value(m, verdicts[i].st);

		RULE("fence");
		rb_mark_is(&rb, false, m, verdicts[i].st);
		rb_ct_load(&rb, NFT_CT_MARK);
		rb_bitwise(&rb, ~m, v);
		rb_ct_store(&rb, NFT_CT_MARK);
		rb_meta_load(&rb, NFT_META_MARK);
		rb_bitwise(&rb, ~m, 0);
		rb_meta_store(&rb, NFT_META_MARK);
		if (verdicts[i].st == MARK_REJECT)
			rb_reject_tcp_reset(&rb);
		else
			rb_verdict(&rb, NF_ACCEPT, NULL);
		if (rule_put(b, &rb, "fence", (*n)++, verdicts[i].comment) < 0)
			return -1;
	}
	return 0;
}

static int
fence_flow_rules(struct nl_batch *b, const struct ruleset_spec *s, int *n, bool native)
{
	const uint32_t m = s->mark_mask;
	struct rb rb = { 0 };

	RULE("fence");
	rb_mark_is(&rb, true, m, MARK_ALLOW);
	rb_verdict(&rb, NF_ACCEPT, NULL);
	if (rule_put(b, &rb, "fence", (*n)++, "flow already allowed") < 0)
		return -1;
	RULE("fence");
	rb_mark_is(&rb, true, m, MARK_REJECT);
	rb_reject_tcp_reset(&rb);
	if (rule_put(b, &rb, "fence", (*n)++, "flow already refused") < 0)
		return -1;
	RULE("fence");
	rb_mark_is(&rb, true, m, MARK_TRAP);
	rb_verdict(&rb, NF_ACCEPT, NULL);
	if (rule_put(b, &rb, "fence", (*n)++, "flow trapped: goes to the local trap") < 0)
		return -1;
	RULE("fence");
	rb_mark_is(&rb, true, m, MARK_INSPECT);
	rb_queue(&rb, s->queue_num, native);
	if (rule_put(b, &rb, "fence", (*n)++, "flow under inspection (audit)") < 0)
		return -1;
	return 0;
}

int
ruleset_build(struct nl_batch *b, const struct ruleset_spec *s, bool native)
{
	uint16_t ports[CONFIG_MAX_PORTS];
	uint32_t state = NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED);
	uint32_t zero = 0, rtn_local = RTN_LOCAL;
	uint8_t tcp = IPPROTO_TCP;
	struct rb rb = { 0 };
	int n = 0;

	if (s->nports == 0 || s->nports > CONFIG_MAX_PORTS ||
	    mark_value(s->mark_mask, MARK_STATE_MAX) == 0) {
		errno = EINVAL;
		return -1;
	}
	for (size_t i = 0; i < s->nports; i++)
		ports[i] = htons(s->ports[i]);

	if (table_put(b, s->table, NFT_MSG_NEWTABLE, NLM_F_CREATE) < 0 ||
	    table_put(b, s->table, NFT_MSG_DELTABLE, 0) < 0 ||
	    table_put(b, s->table, NFT_MSG_NEWTABLE, NLM_F_CREATE) < 0 ||
	    set_put(b, s->table, "ports", SET_ID_PORTS, NFT_TYPE_INET_SERVICE, ports,
	    s->nports, sizeof(uint16_t)) < 0 ||
	    set_put(b, s->table, "mta_uids", SET_ID_MTA, NFT_TYPE_UID, s->mta_uids, s->nmta,
	    sizeof(uid_t)) < 0 ||
	    set_put(b, s->table, "allow_uids", SET_ID_ALLOW, NFT_TYPE_UID, s->allow_uids,
	    s->nallow, sizeof(uid_t)) < 0 ||
	    chain_put(b, s->table, "output", "filter", PRIO_FENCE) < 0 ||
	    chain_put(b, s->table, "fence", NULL, 0) < 0)
		return -1;

	RULE("output");
	rb_meta_load(&rb, NFT_META_L4PROTO);
	rb_cmp(&rb, NFT_CMP_EQ, &tcp, sizeof(tcp));
	{
		struct nftnl_expr *e = rb_expr(&rb, "payload");

		if (e) {	/* tcp dport */
			nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_TRANSPORT_HEADER);
			nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, 2);
			nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, 2);
			nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
		}
	}
	rb_lookup(&rb, "ports", SET_ID_PORTS);
	rb_verdict(&rb, NFT_JUMP, "fence");
	if (rule_put(b, &rb, "output", n++, "SMTP ports: the fence decides") < 0)
		return -1;

	n = 0;
	RULE("fence");
	rb_meta_load(&rb, NFT_META_SKUID);
	rb_lookup(&rb, "mta_uids", SET_ID_MTA);
	rb_verdict(&rb, NF_ACCEPT, NULL);
	if (rule_put(b, &rb, "fence", n++, "the MTA delivers: decided in the kernel") < 0)
		return -1;
	RULE("fence");
	rb_meta_load(&rb, NFT_META_SKUID);
	rb_lookup(&rb, "allow_uids", SET_ID_ALLOW);
	rb_verdict(&rb, NF_ACCEPT, NULL);
	if (rule_put(b, &rb, "fence", n++, "plain exceptions (smtpguard allow)") < 0)
		return -1;
	if (s->allow_local) {
		struct nftnl_expr *e;

		RULE("fence");
		if ((e = rb_expr(&rb, "fib")) != NULL) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
			nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
			nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
		}
		rb_cmp(&rb, NFT_CMP_EQ, &rtn_local, sizeof(rtn_local));
		rb_verdict(&rb, NF_ACCEPT, NULL);
		if (rule_put(b, &rb, "fence", n++,
		    "allow_local: the host's own addresses (its MTA)") < 0)
			return -1;
	}
	if (fence_verdict_rules(b, s, &n) < 0 || fence_flow_rules(b, s, &n, native) < 0)
		return -1;
	RULE("fence");
	rb_ct_load(&rb, NFT_CT_STATE);
	rb_bitwise(&rb, state, 0);
	rb_cmp(&rb, NFT_CMP_NEQ, &zero, sizeof(zero));
	rb_verdict(&rb, NF_ACCEPT, NULL);
	if (rule_put(b, &rb, "fence", n++,
	    "flows begun before the fence or under a revoked exception") < 0)
		return -1;
	RULE("fence");
	rb_queue(&rb, s->queue_num, native);
	if (rule_put(b, &rb, "fence", n++,
	    "everyone else: smtpguardd decides (no bypass: fails closed)") < 0)
		return -1;

	if (s->trap) {
		uint16_t port = htons(s->trap_port);
		struct nftnl_expr *e;

		if (chain_put(b, s->table, "trap", "nat", PRIO_NAT) < 0)
			return -1;
		RULE("trap");
		rb_meta_load(&rb, NFT_META_L4PROTO);
		rb_cmp(&rb, NFT_CMP_EQ, &tcp, sizeof(tcp));
		rb_mark_is(&rb, true, s->mark_mask, MARK_TRAP);
		if ((e = rb_expr(&rb, "immediate")) != NULL) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
			nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &port, sizeof(port));
		}
		if ((e = rb_expr(&rb, "redir")) != NULL)
			nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
		if (rule_put(b, &rb, "trap", 0, "trapped flows go to smtpguardd's trap") < 0)
			return -1;
	}
	return 0;
}

int
ruleset_install(const struct ruleset_spec *s, bool *native_queue, char *err, size_t errlen)
{
	struct nl_batch b;
	int rc;

	for (int native = 1; native >= 0; native--) {
		if (nl_batch_init(&b) < 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (ruleset_build(&b, s, native) < 0) {
			snprintf(err, errlen, "building the ruleset: %s", strerror(errno));
			nl_batch_free(&b);
			return -1;
		}
		rc = nl_batch_send(&b, err, errlen);
		nl_batch_free(&b);
		if (rc == 0) {
			*native_queue = native;
			return 0;
		}
		/* No nft_queue in this kernel: the whole batch was refused; try compat. */
		if (errno != ENOENT && errno != EOPNOTSUPP)
			return -1;
	}
	return -1;
}

int
ruleset_remove(const char *table, char *err, size_t errlen)
{
	struct nl_batch b;
	int rc;

	if (nl_batch_init(&b) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = table_put(&b, table, NFT_MSG_DELTABLE, 0);
	if (rc == 0)
		rc = nl_batch_send(&b, err, errlen);
	else
		snprintf(err, errlen, "building the batch: %s", strerror(errno));
	nl_batch_free(&b);
	return rc;
}

int
ruleset_exists(const char *table)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nftnl_table *t;
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	uint32_t seq = (uint32_t)time(NULL);
	ssize_t n;
	int rc = -1, saved;

	if ((t = nftnl_table_alloc()) == NULL)
		return -1;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, seq);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	if ((nl = nl_open()) == NULL)
		return -1;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		goto out;
	/* Reply: the table, then an ACK; or an error (ENOENT: no such table). */
	while ((n = mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
		int r = mnl_cb_run(buf, (size_t)n, seq, mnl_socket_get_portid(nl), NULL, NULL);

		if (r < 0) {
			rc = errno == ENOENT ? 0 : -1;
			goto out;
		}
		if (r == MNL_CB_STOP) {
			rc = 1;
			goto out;
		}
		rc = 1;
	}
out:
	saved = errno;
	mnl_socket_close(nl);
	errno = saved;
	return rc;
}

int
ruleset_build_set_uids(struct nl_batch *b, const char *table, const char *set, bool add,
    const uid_t *uids, size_t n)
{
	struct nftnl_set *s = set_new(table, set);
	int rc;

	if (s == NULL)
		return -1;
	rc = elems_put(b, s, add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, set, uids, n,
	    sizeof(uid_t));
	nftnl_set_free(s);
	return rc;
}

int
ruleset_set_uids(const char *table, const char *set, bool add, const uid_t *uids, size_t n,
    char *err, size_t errlen)
{
	struct nl_batch b;
	int rc;

	if (nl_batch_init(&b) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((rc = ruleset_build_set_uids(&b, table, set, add, uids, n)) < 0)
		snprintf(err, errlen, "building the batch: %s", strerror(errno));
	else
		rc = nl_batch_send(&b, err, errlen);
	nl_batch_free(&b);
	return rc;
}
