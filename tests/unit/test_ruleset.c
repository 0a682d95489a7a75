/*
 * ruleset.c and nl.c without a kernel: every batch is built, then parsed back
 * with libnftnl and checked object by object, as libnftnl's own tests do.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
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

#define MAX_MSGS	(NL_BATCH_MAX_MSGS + 2)
#define MAX_KEYS	16
#define GOLDEN_MASK	0x00700000u
/* A SYN on an old flow's conntrack entry, with a socket: queued, the self-check's as it is, */
#define TAKEN_OVER	"meta,cmp,payload,bitwise,cmp,ct,bitwise,cmp,meta,cmp,"
#define TAKEN_OVER_PROBE TAKEN_OVER "meta,bitwise,cmp,"
/* any other marked "after NAT". */
#define TAKEN_OVER_SYN	TAKEN_OVER "meta,bitwise,meta,"
/* The kernel's audit of @audited_uids: the one other rule that reads ct state (new only). */
#define AUDITED_RULE	"meta,bitwise,cmp,meta,cmp,payload,bitwise,cmp,payload,lookup," \
			"ct,bitwise,cmp,meta,lookup,ct,bitwise,ct,log,immediate"

static const uint16_t golden_ports[] = { 25, 465, 587 };
static const uid_t golden_mta[] = { 101 };

/* One message of a batch, parsed back. */
struct msg {
	uint16_t		 type;		/* NFT_MSG_*, or the batch BEGIN/END type */
	uint16_t		 flags;
	uint32_t		 seq;
	struct nftnl_table	*table;
	struct nftnl_chain	*chain;
	struct nftnl_set	*set;		/* NEWSET, or the elements' set */
	struct nftnl_rule	*rule;
	char			 exprs[256];	/* "meta,lookup,immediate" */
	uint32_t		 keys[MAX_KEYS];	/* element keys, widened to u32 */
	size_t			 nkeys;		/* all the message's keys */
};

struct parsed {
	struct nl_batch	 b;
	struct msg	 m[MAX_MSGS];
	size_t		 n;
};

/* rules/smtpguard.nft's spec, with both nat chains (the trap's, to_mta's) as well. */
static struct ruleset_spec
golden_spec(void)
{
	return (struct ruleset_spec){
		.table = TABLE_NAME,
		.ports = golden_ports, .nports = 3,
		.mta_uids = golden_mta, .nmta = 1,
		.allow_uids = NULL, .nallow = 0,
		.allow_local = true,
		.queue_num = 0,
		.audit_group = 2525,
		.audit_snaplen = 4608,	/* the default inspect_bytes, 4096, and 512 of headers */
		.data_release = true,
		.mark_mask = GOLDEN_MASK,
		.trap = true,
		.redirect = true,
		.trap_port = 10025,
		.redirect_port = 25,
	};
}

static void
expr_names(struct nftnl_rule *r, char *out, size_t len)
{
	struct nftnl_expr_iter *it = nftnl_expr_iter_create(r);
	struct nftnl_expr *e;

	out[0] = '\0';
	assert_non_null(it);
	while ((e = nftnl_expr_iter_next(it)) != NULL) {
		if (out[0] != '\0')
			strncat(out, ",", len - strlen(out) - 1);
		strncat(out, nftnl_expr_get_str(e, NFTNL_EXPR_NAME), len - strlen(out) - 1);
	}
	nftnl_expr_iter_destroy(it);
}

/*
 * Element messages are walked with libmnl: libnftnl 1.2.4's
 * nftnl_set_elems_nlmsg_parse() refuses any message with more than one
 * element, even one it built itself.
 */
static void
parse_elems(const struct nlmsghdr *nlh, struct msg *m)
{
	const struct nlattr *a, *elem, *k, *v;

	assert_non_null(m->set = nftnl_set_alloc());
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		switch (mnl_attr_get_type(a)) {
		case NFTA_SET_ELEM_LIST_TABLE:
			nftnl_set_set_str(m->set, NFTNL_SET_TABLE, mnl_attr_get_str(a));
			break;
		case NFTA_SET_ELEM_LIST_SET:
			nftnl_set_set_str(m->set, NFTNL_SET_NAME, mnl_attr_get_str(a));
			break;
		case NFTA_SET_ELEM_LIST_ELEMENTS:
			mnl_attr_for_each_nested(elem, a) mnl_attr_for_each_nested(k, elem) {
				assert_int_equal(mnl_attr_get_type(k), NFTA_SET_ELEM_KEY);
				v = mnl_attr_get_payload(k);
				assert_int_equal(mnl_attr_get_type(v), NFTA_DATA_VALUE);
				/* All are counted; the first MAX_KEYS are kept. */
				if (m->nkeys < MAX_KEYS)
					m->keys[m->nkeys] = mnl_attr_get_payload_len(v) ==
					    sizeof(uint16_t) ? mnl_attr_get_u16(v) :
					    mnl_attr_get_u32(v);
				m->nkeys++;
			}
			break;
		}
	}
}

/* Finishes the batch and parses every message of it into P. */
static void
parse(struct parsed *p)
{
	const void *data;
	size_t len;
	const struct nlmsghdr *nlh;
	int remain;

	assert_int_equal(nl_batch_finish(&p->b, &data, &len), 0);
	nlh = data;
	remain = (int)len;
	p->n = 0;
	for (; mnl_nlmsg_ok(nlh, remain); nlh = mnl_nlmsg_next(nlh, &remain)) {
		struct msg *m = &p->m[p->n++];

		assert_true(p->n <= MAX_MSGS);
		memset(m, 0, sizeof(*m));
		m->flags = nlh->nlmsg_flags;
		m->seq = nlh->nlmsg_seq;
		if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_NFTABLES) {
			m->type = nlh->nlmsg_type;
			continue;
		}
		m->type = NFNL_MSG_TYPE(nlh->nlmsg_type);
		switch (m->type) {
		case NFT_MSG_NEWTABLE:
		case NFT_MSG_DELTABLE:
			assert_non_null(m->table = nftnl_table_alloc());
			assert_int_equal(nftnl_table_nlmsg_parse(nlh, m->table), 0);
			break;
		case NFT_MSG_NEWCHAIN:
			assert_non_null(m->chain = nftnl_chain_alloc());
			assert_int_equal(nftnl_chain_nlmsg_parse(nlh, m->chain), 0);
			break;
		case NFT_MSG_NEWSET:
			assert_non_null(m->set = nftnl_set_alloc());
			assert_int_equal(nftnl_set_nlmsg_parse(nlh, m->set), 0);
			break;
		case NFT_MSG_NEWSETELEM:
		case NFT_MSG_DELSETELEM:
			parse_elems(nlh, m);
			break;
		case NFT_MSG_NEWRULE:
			assert_non_null(m->rule = nftnl_rule_alloc());
			assert_int_equal(nftnl_rule_nlmsg_parse(nlh, m->rule), 0);
			expr_names(m->rule, m->exprs, sizeof(m->exprs));
			break;
		default:
			fail_msg("unexpected message type %u", m->type);
		}
	}
	assert_int_equal(remain, 0);
}

static void
build(struct parsed *p, const struct ruleset_spec *sp, bool native)
{
	memset(p, 0, sizeof(*p));
	assert_int_equal(nl_batch_init(&p->b), 0);
	assert_int_equal(ruleset_build(&p->b, sp, native), 0);
	parse(p);
}

static void
release(struct parsed *p)
{
	for (size_t i = 0; i < p->n; i++) {
		/* libnftnl's free functions do not take NULL. */
		if (p->m[i].table != NULL)
			nftnl_table_free(p->m[i].table);
		if (p->m[i].chain != NULL)
			nftnl_chain_free(p->m[i].chain);
		if (p->m[i].set != NULL)
			nftnl_set_free(p->m[i].set);
		if (p->m[i].rule != NULL)
			nftnl_rule_free(p->m[i].rule);
	}
	nl_batch_free(&p->b);
}

/* The rules of CHAIN in order; returns how many. */
static size_t
rules_of(struct parsed *p, const char *chain, struct msg **out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < p->n; i++)
		if (p->m[i].rule != NULL &&
		    strcmp(nftnl_rule_get_str(p->m[i].rule, NFTNL_RULE_CHAIN), chain) == 0) {
			assert_true(n < max);
			out[n++] = &p->m[i];
		}
	return n;
}

static struct msg *
find(struct parsed *p, uint16_t type, const char *name)
{
	for (size_t i = 0; i < p->n; i++) {
		struct msg *m = &p->m[i];

		if (m->type != type)
			continue;
		if (m->chain != NULL &&
		    strcmp(nftnl_chain_get_str(m->chain, NFTNL_CHAIN_NAME), name) == 0)
			return m;
		if (m->set != NULL &&
		    strcmp(nftnl_set_get_str(m->set, NFTNL_SET_NAME), name) == 0)
			return m;
	}
	return NULL;
}

/* The I-th expression of a rule. */
static struct nftnl_expr *
expr_at(struct nftnl_rule *r, size_t i)
{
	struct nftnl_expr_iter *it = nftnl_expr_iter_create(r);
	struct nftnl_expr *e = NULL;

	assert_non_null(it);
	for (size_t k = 0; k <= i; k++)
		assert_non_null(e = nftnl_expr_iter_next(it));
	nftnl_expr_iter_destroy(it);
	return e;
}

static uint32_t
expr_u32_data(struct nftnl_expr *e, uint16_t attr)
{
	uint32_t len, v;
	const void *d = nftnl_expr_get(e, attr, &len);

	assert_non_null(d);
	assert_int_equal(len, sizeof(v));
	memcpy(&v, d, sizeof(v));
	return v;
}

static uint16_t
expr_u16_data(struct nftnl_expr *e, uint16_t attr)
{
	uint32_t len;
	uint16_t v;
	const void *d = nftnl_expr_get(e, attr, &len);

	assert_non_null(d);
	assert_int_equal(len, sizeof(v));
	memcpy(&v, d, sizeof(v));
	return v;
}

static const char *
label_of(const struct parsed *p, const struct msg *m)
{
	return nl_batch_label(&p->b, (int)(m->seq - p->b.seq0 - 1));
}

static void
restart_replaces_the_table_in_one_transaction(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct parsed p;

	(void)state;
	build(&p, &sp, true);
	assert_int_equal(p.m[0].type, NFNL_MSG_BATCH_BEGIN);
	assert_int_equal(p.m[p.n - 1].type, NFNL_MSG_BATCH_END);
	/* Create-if-absent, delete, create: never two copies, never no fence. */
	assert_int_equal(p.m[1].type, NFT_MSG_NEWTABLE);
	assert_int_equal(p.m[1].flags & NLM_F_EXCL, 0);
	assert_int_equal(p.m[2].type, NFT_MSG_DELTABLE);
	assert_int_equal(p.m[3].type, NFT_MSG_NEWTABLE);
	for (size_t i = 1; i <= 3; i++) {
		assert_string_equal(nftnl_table_get_str(p.m[i].table, NFTNL_TABLE_NAME),
		    "smtpguard");
		assert_int_equal(nftnl_table_get_u32(p.m[i].table, NFTNL_TABLE_FAMILY),
		    NFPROTO_INET);
	}
	/* Every message asks for its own ACK, and its seq maps back to its label. */
	assert_int_equal(p.b.nlabels, p.n - 2);
	for (size_t i = 1; i < p.n - 1; i++) {
		assert_true(p.m[i].flags & NLM_F_ACK);
		assert_int_equal(p.m[i].seq, p.b.seq0 + i);
	}
	assert_string_equal(label_of(&p, &p.m[2]), "delete table smtpguard");
	release(&p);
}

static void
no_other_table_is_ever_named(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct parsed p;

	(void)state;
	build(&p, &sp, false);
	for (size_t i = 1; i < p.n - 1; i++) {
		const struct msg *m = &p.m[i];
		const char *t = m->table ? nftnl_table_get_str(m->table, NFTNL_TABLE_NAME) :
		    m->chain ? nftnl_chain_get_str(m->chain, NFTNL_CHAIN_TABLE) :
		    m->set ? nftnl_set_get_str(m->set, NFTNL_SET_TABLE) :
		    nftnl_rule_get_str(m->rule, NFTNL_RULE_TABLE);

		assert_string_equal(t, "smtpguard");
	}
	release(&p);
}

static void
sets_list_as_ports_and_uids(void **state)
{
	struct ruleset_spec sp = golden_spec();
	const uint8_t be_order[] = { NFTNL_UDATA_SET_KEYBYTEORDER, 4 };
	uint32_t len;
	const uint8_t *ud;
	struct parsed p;
	struct msg *m;

	(void)state;
	build(&p, &sp, true);
	assert_non_null(m = find(&p, NFT_MSG_NEWSET, "ports"));
	assert_int_equal(nftnl_set_get_u32(m->set, NFTNL_SET_KEY_TYPE), 13);	/* inet_service */
	assert_int_equal(nftnl_set_get_u32(m->set, NFTNL_SET_KEY_LEN), 2);
	ud = nftnl_set_get_data(m->set, NFTNL_SET_USERDATA, &len);
	assert_int_equal(len, 6);
	assert_memory_equal(ud, be_order, 2);
	assert_int_equal(ud[2] | ud[3] << 8 | ud[4] << 16 | (uint32_t)ud[5] << 24, 2);

	assert_non_null(m = find(&p, NFT_MSG_NEWSETELEM, "ports"));
	assert_int_equal(m->nkeys, 3);
	assert_int_equal(ntohs((uint16_t)m->keys[0]), 25);
	assert_int_equal(ntohs((uint16_t)m->keys[1]), 465);
	assert_int_equal(ntohs((uint16_t)m->keys[2]), 587);

	assert_non_null(m = find(&p, NFT_MSG_NEWSET, "mta_uids"));
	assert_int_equal(nftnl_set_get_u32(m->set, NFTNL_SET_KEY_TYPE), 24);	/* uid */
	assert_int_equal(nftnl_set_get_u32(m->set, NFTNL_SET_KEY_LEN), 4);
	ud = nftnl_set_get_data(m->set, NFTNL_SET_USERDATA, &len);
	assert_int_equal(ud[2] | ud[3] << 8 | ud[4] << 16 | (uint32_t)ud[5] << 24, 1);
	assert_non_null(m = find(&p, NFT_MSG_NEWSETELEM, "mta_uids"));
	assert_int_equal(m->nkeys, 1);
	assert_int_equal(m->keys[0], 101);

	/* No exceptions yet: the set exists (the daemon adds to it live), empty. */
	assert_non_null(find(&p, NFT_MSG_NEWSET, "allow_uids"));
	assert_null(find(&p, NFT_MSG_NEWSETELEM, "allow_uids"));
	release(&p);
}

static void
only_tcp_to_smtp_ports_enters_the_fence(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct msg *r[4];
	struct parsed p;
	struct msg *c;

	(void)state;
	build(&p, &sp, true);
	assert_non_null(c = find(&p, NFT_MSG_NEWCHAIN, "output"));
	assert_string_equal(nftnl_chain_get_str(c->chain, NFTNL_CHAIN_TYPE), "filter");
	assert_int_equal(nftnl_chain_get_u32(c->chain, NFTNL_CHAIN_HOOKNUM), NF_INET_LOCAL_OUT);
	assert_int_equal(nftnl_chain_get_s32(c->chain, NFTNL_CHAIN_PRIO), -150);
	assert_int_equal(nftnl_chain_get_u32(c->chain, NFTNL_CHAIN_POLICY), NF_ACCEPT);
	assert_non_null(c = find(&p, NFT_MSG_NEWCHAIN, "fence"));
	assert_false(nftnl_chain_is_set(c->chain, NFTNL_CHAIN_HOOKNUM));

	assert_int_equal(rules_of(&p, "output", r, 4), 1);
	assert_string_equal(r[0]->exprs, "meta,cmp,payload,lookup,immediate");
	assert_string_equal(nftnl_expr_get_str(expr_at(r[0]->rule, 3), NFTNL_EXPR_LOOKUP_SET),
	    "ports");
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[0]->rule, 4), NFTNL_EXPR_IMM_VERDICT),
	    (uint32_t)NFT_JUMP);
	assert_string_equal(nftnl_expr_get_str(expr_at(r[0]->rule, 4), NFTNL_EXPR_IMM_CHAIN),
	    "fence");
	release(&p);
}

static void
mta_and_exceptions_are_accepted_before_anything_is_queued(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct msg *r[32];
	struct parsed p;
	size_t n;

	(void)state;
	build(&p, &sp, true);
	n = rules_of(&p, "fence", r, 32);
	assert_int_equal(n, 26);
	assert_string_equal(r[0]->exprs, "meta,lookup,immediate");
	assert_string_equal(nftnl_expr_get_str(expr_at(r[0]->rule, 1), NFTNL_EXPR_LOOKUP_SET),
	    "mta_uids");
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[0]->rule, 0), NFTNL_EXPR_META_KEY),
	    NFT_META_SKUID);
	assert_string_equal(nftnl_expr_get_str(expr_at(r[1]->rule, 1), NFTNL_EXPR_LOOKUP_SET),
	    "allow_uids");
	/*
	 * Nothing is queued before every accept that could apply; audit is
	 * never queued: before the last rules, only a SYN on an old flow's
	 * conntrack entry is.
	 */
	for (size_t i = 0; i < n - 2; i++)
		if (strstr(r[i]->exprs, "queue") != NULL) {
			assert_true(i > 1);
			if (strcmp(r[i]->exprs, TAKEN_OVER_PROBE "queue") != 0)
				assert_string_equal(r[i]->exprs, TAKEN_OVER_SYN "queue");
		}
	release(&p);
}

/*
 * An audited flow's later packets (fenced ports) are copied to the audit
 * group and accepted, never queued; a segment that begins with the DATA line
 * also ends the copies (ct mark allow); without detect_any_port nothing else
 * has the audit ct mark, and with it, only flows on other ports are queued.
 */
static void
audited_flows_are_copied_never_queued(void **state)
{
	struct ruleset_spec sp = golden_spec();
	const struct nftnl_expr *e;
	struct msg *r[32];
	struct parsed p;
	uint32_t len;
	size_t n;

	(void)state;
	sp.audit_group = 4242;
	build(&p, &sp, true);
	n = rules_of(&p, "fence", r, 32);
	/* Its DATA line first: copied, and the flow released in the kernel. */
	assert_string_equal(r[18]->exprs,
	    "ct,bitwise,cmp,meta,cmp,payload,lookup,payload,bitwise,cmp,ct,bitwise,ct,log,immediate");
	e = expr_at(r[18]->rule, 7);
	assert_int_equal(nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_BASE), NFT_PAYLOAD_INNER_HEADER);
	assert_int_equal(nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET), 0);
	assert_int_equal(nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN), 6);
	assert_memory_equal(nftnl_expr_get(expr_at(r[18]->rule, 8), NFTNL_EXPR_BITWISE_MASK,
	    &len), "\xdf\xdf\xdf\xdf\xff\xff", 6);
	assert_memory_equal(nftnl_expr_get(expr_at(r[18]->rule, 9), NFTNL_EXPR_CMP_DATA, &len),
	    "DATA\r\n", 6);
	assert_int_equal(*(const uint32_t *)nftnl_expr_get(expr_at(r[18]->rule, 11),
	    NFTNL_EXPR_BITWISE_XOR, &len), mark_value(GOLDEN_MASK, MARK_ALLOW));
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[18]->rule, 12), NFTNL_EXPR_CT_KEY),
	    NFT_CT_MARK);
	assert_int_equal(nftnl_expr_get_u16(expr_at(r[18]->rule, 13), NFTNL_EXPR_LOG_GROUP), 4242);
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[18]->rule, 13), NFTNL_EXPR_LOG_SNAPLEN),
	    4608);
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[18]->rule, 14), NFTNL_EXPR_IMM_VERDICT),
	    NF_ACCEPT);
	assert_string_equal(r[19]->exprs, "ct,bitwise,cmp,meta,cmp,payload,lookup,log,immediate");
	assert_string_equal(nftnl_expr_get_str(expr_at(r[19]->rule, 6), NFTNL_EXPR_LOOKUP_SET),
	    "ports");
	assert_int_equal(nftnl_expr_get_u16(expr_at(r[19]->rule, 7), NFTNL_EXPR_LOG_GROUP), 4242);
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[19]->rule, 7), NFTNL_EXPR_LOG_SNAPLEN), 4608);
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[19]->rule, 8), NFTNL_EXPR_IMM_VERDICT),
	    NF_ACCEPT);
	for (size_t i = 0; i < n; i++)
		assert_null(strstr(r[i]->exprs, "ct,bitwise,cmp,queue"));
	release(&p);

	sp.detect_any_port = true;
	build(&p, &sp, true);
	n = rules_of(&p, "fence", r, 32);
	assert_string_equal(r[21]->exprs, "ct,bitwise,cmp,meta,bitwise,meta,queue");
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[21]->rule, 2), NFTNL_EXPR_CMP_OP),
	    NFT_CMP_EQ);
	release(&p);
}

/*
 * No "ct state established accept" any more: a flow begun before the fence
 * or under a revoked exception is queued at its next packet and decided.
 * The ct state is read in one rule only, and that one queues: a SYN on an
 * old flow's entry.
 */
static void
no_flow_passes_for_being_established(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct parsed p;

	(void)state;
	build(&p, &sp, false);
	for (size_t i = 0; i < p.n; i++) {
		struct nftnl_expr_iter *it;
		struct nftnl_expr *e;

		if (p.m[i].rule == NULL)
			continue;
		assert_non_null(it = nftnl_expr_iter_create(p.m[i].rule));
		while ((e = nftnl_expr_iter_next(it)) != NULL)
			if (strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "ct") == 0 &&
			    nftnl_expr_is_set(e, NFTNL_EXPR_CT_DREG) &&
			    nftnl_expr_get_u32(e, NFTNL_EXPR_CT_KEY) == NFT_CT_STATE)
				if (strncmp(p.m[i].exprs, TAKEN_OVER, strlen(TAKEN_OVER)) != 0)
					assert_string_equal(p.m[i].exprs, AUDITED_RULE);
		nftnl_expr_iter_destroy(it);
	}
	release(&p);
}

/*
 * What a local server answers in a flow the far side opened goes on in the
 * kernel, except a bare SYN: a simultaneous open against a spoofed SYN
 * "from the mx" would make our own session look like a reply.
 */
static void
replies_pass_but_not_a_syn(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct msg *r[32];
	struct parsed p;
	struct nftnl_expr *e;
	size_t n;

	(void)state;
	build(&p, &sp, false);
	n = rules_of(&p, "fence", r, 32);
	assert_string_equal(r[n - 5]->exprs, "ct,cmp,meta,cmp,payload,bitwise,cmp,immediate");
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[n - 5]->rule, 0), NFTNL_EXPR_CT_KEY),
	    NFT_CT_DIRECTION);
	assert_int_equal(*(const uint8_t *)nftnl_expr_get(expr_at(r[n - 5]->rule, 1),
	    NFTNL_EXPR_CMP_DATA, &(uint32_t){ 0 }), IP_CT_DIR_REPLY);
	e = expr_at(r[n - 5]->rule, 4);
	assert_int_equal(nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET), 13);
	assert_int_equal(*(const uint8_t *)nftnl_expr_get(expr_at(r[n - 5]->rule, 5),
	    NFTNL_EXPR_BITWISE_MASK, &(uint32_t){ 0 }), 0x12);	/* SYN|ACK */
	e = expr_at(r[n - 5]->rule, 6);
	assert_int_equal(nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP), NFT_CMP_NEQ);
	assert_int_equal(*(const uint8_t *)nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA,
	    &(uint32_t){ 0 }), 0x02);	/* a bare SYN is decided */
	release(&p);
}

/*
 * Each decision smtpguardd can send back is two rules: one copies it into
 * the ct mark and gives no verdict (with no conntrack entry the ct
 * expression breaks it), the next matches the same mark with no ct
 * expression at all and ends in accept or reset: a packet without
 * conntrack still leaves on its second pass.
 */
static void
every_verdict_is_final_without_conntrack(void **state)
{
	const struct { const char *chain; size_t first, pairs; } chains[] = {
		{ "fence", 2, 4 }, { "nat_fence", 2, 2 },
	};
	struct ruleset_spec sp = golden_spec();
	struct parsed p;

	(void)state;
	build(&p, &sp, false);
	for (size_t c = 0; c < sizeof(chains) / sizeof(chains[0]); c++) {
		struct msg *r[32];
		size_t n = rules_of(&p, chains[c].chain, r, 32);

		assert_true(n >= chains[c].first + 2 * chains[c].pairs);
		for (size_t k = 0; k < chains[c].pairs; k++) {
			struct msg *copy = r[chains[c].first + 2 * k];
			struct msg *final = r[chains[c].first + 2 * k + 1];
			uint32_t v = expr_u32_data(expr_at(copy->rule, 2), NFTNL_EXPR_CMP_DATA);

			assert_string_equal(copy->exprs, "meta,bitwise,cmp,ct,bitwise,ct");
			assert_true(nftnl_expr_is_set(expr_at(copy->rule, 5), NFTNL_EXPR_CT_SREG));
			assert_true(strcmp(final->exprs,
			    "meta,bitwise,cmp,meta,bitwise,meta,immediate") == 0 ||
			    strcmp(final->exprs, "meta,bitwise,cmp,meta,bitwise,meta,reject") == 0);
			assert_int_equal(expr_u32_data(expr_at(final->rule, 2), NFTNL_EXPR_CMP_DATA),
			    v);
			if (strstr(final->exprs, "immediate") != NULL)
				assert_int_equal(nftnl_expr_get_u32(expr_at(final->rule, 6),
				    NFTNL_EXPR_IMM_VERDICT), NF_ACCEPT);
			/* Allow first, then reject, in both chains. */
			assert_int_equal(mark_state_of(GOLDEN_MASK, v), k + 1);
		}
	}
	release(&p);
}

/*
 * The queue takes only packets with a socket owner (meta skuid >= 0 holds
 * for every uid and breaks the rule when there is no socket); the rule
 * after it, the chain's last, lets the socketless rest go.
 */
static void
only_packets_with_a_socket_owner_are_queued(void **state)
{
	const char *chains[] = { "fence", "nat_fence" };
	struct ruleset_spec sp = golden_spec();
	struct parsed p;

	(void)state;
	build(&p, &sp, false);
	for (size_t c = 0; c < 2; c++) {
		struct msg *r[32];
		size_t n = rules_of(&p, chains[c], r, 32);
		struct nftnl_expr *cmp;

		assert_int_equal(strncmp(r[n - 2]->exprs, "meta,cmp,", 9), 0);
		assert_non_null(strstr(r[n - 2]->exprs, "target"));
		assert_int_equal(nftnl_expr_get_u32(expr_at(r[n - 2]->rule, 0),
		    NFTNL_EXPR_META_KEY), NFT_META_SKUID);
		cmp = expr_at(r[n - 2]->rule, 1);
		assert_int_equal(nftnl_expr_get_u32(cmp, NFTNL_EXPR_CMP_OP), NFT_CMP_GTE);
		assert_int_equal(expr_u32_data(cmp, NFTNL_EXPR_CMP_DATA), 0);
		assert_string_equal(r[n - 1]->exprs, "immediate");
		assert_int_equal(nftnl_expr_get_u32(expr_at(r[n - 1]->rule, 0),
		    NFTNL_EXPR_IMM_VERDICT), NF_ACCEPT);
		/*
		 * Every other queue rule is the audited flows' ct mark rule, or
		 * a SYN's on an old flow's entry, which asks for its owner too.
		 */
		for (size_t i = 0; i < n - 2; i++) {
			if (strstr(r[i]->exprs, "target") == NULL)
				continue;
			if (strcmp(r[i]->exprs, "ct,bitwise,cmp,target") == 0)
				continue;
			if (strcmp(r[i]->exprs, TAKEN_OVER_PROBE "target") != 0)
				assert_string_equal(r[i]->exprs, TAKEN_OVER_SYN "target");
			assert_int_equal(nftnl_expr_get_u32(expr_at(r[i]->rule, 8),
			    NFTNL_EXPR_META_KEY), NFT_META_SKUID);
			cmp = expr_at(r[i]->rule, 9);
			assert_int_equal(nftnl_expr_get_u32(cmp, NFTNL_EXPR_CMP_OP), NFT_CMP_GTE);
			assert_int_equal(expr_u32_data(cmp, NFTNL_EXPR_CMP_DATA), 0);
		}
	}
	release(&p);
}

static void
flows_dnatted_to_smtp_ports_are_judged_after_nat(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct msg *r[32], *c;
	struct parsed p;
	size_t n;

	(void)state;
	build(&p, &sp, true);
	assert_non_null(c = find(&p, NFT_MSG_NEWCHAIN, "after_nat"));
	assert_string_equal(nftnl_chain_get_str(c->chain, NFTNL_CHAIN_TYPE), "filter");
	assert_int_equal(nftnl_chain_get_u32(c->chain, NFTNL_CHAIN_HOOKNUM), NF_INET_LOCAL_OUT);
	/* After the nat chains of the usual priorities (ours and iptables' at -100). */
	assert_true(nftnl_chain_get_s32(c->chain, NFTNL_CHAIN_PRIO) > 0);
	assert_int_equal(nftnl_chain_get_u32(c->chain, NFTNL_CHAIN_POLICY), NF_ACCEPT);
	assert_non_null(c = find(&p, NFT_MSG_NEWCHAIN, "nat_fence"));
	assert_false(nftnl_chain_is_set(c->chain, NFTNL_CHAIN_HOOKNUM));

	assert_int_equal(rules_of(&p, "after_nat", r, 32), 3);
	/* A trapped or redirected flow NAT left untranslated: reset, it never leaves for the mx. */
	for (size_t i = 1; i < 3; i++) {
		assert_string_equal(r[i]->exprs, "ct,bitwise,cmp,ct,bitwise,cmp,meta,cmp,reject");
		assert_int_equal(expr_u32_data(expr_at(r[i]->rule, 2), NFTNL_EXPR_CMP_DATA),
		    mark_value(GOLDEN_MASK, i == 1 ? MARK_TRAP : MARK_REDIRECT));
		assert_int_equal(nftnl_expr_get_u32(expr_at(r[i]->rule, 3), NFTNL_EXPR_CT_KEY),
		    NFT_CT_STATUS);
		assert_int_equal(expr_u32_data(expr_at(r[i]->rule, 4), NFTNL_EXPR_BITWISE_MASK),
		    IPS_DST_NAT);
		assert_int_equal(expr_u32_data(expr_at(r[i]->rule, 5), NFTNL_EXPR_CMP_DATA), 0);
	}
	assert_string_equal(r[0]->exprs, "ct,bitwise,cmp,meta,cmp,payload,lookup,immediate");
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[0]->rule, 0), NFTNL_EXPR_CT_KEY),
	    NFT_CT_STATUS);
	assert_int_equal(expr_u32_data(expr_at(r[0]->rule, 1), NFTNL_EXPR_BITWISE_MASK),
	    IPS_DST_NAT);
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[0]->rule, 2), NFTNL_EXPR_CMP_OP),
	    NFT_CMP_NEQ);
	assert_string_equal(nftnl_expr_get_str(expr_at(r[0]->rule, 6), NFTNL_EXPR_LOOKUP_SET),
	    "ports");
	assert_string_equal(nftnl_expr_get_str(expr_at(r[0]->rule, 7), NFTNL_EXPR_IMM_CHAIN),
	    "nat_fence");

	n = rules_of(&p, "nat_fence", r, 32);
	assert_int_equal(n, 15);
	assert_string_equal(nftnl_expr_get_str(expr_at(r[0]->rule, 1), NFTNL_EXPR_LOOKUP_SET),
	    "mta_uids");
	assert_string_equal(nftnl_expr_get_str(expr_at(r[1]->rule, 1), NFTNL_EXPR_LOOKUP_SET),
	    "allow_uids");
	assert_string_equal(r[6]->exprs, "meta,bitwise,cmp,fib,cmp,immediate");
	/* A SYN on an old flow's entry, the probe's too: queued, marked "after NAT". */
	assert_string_equal(r[7]->exprs, TAKEN_OVER_SYN "queue");
	/* Decided before NAT: allowed and audited go on, trapped ones never reach the trap. */
	assert_string_equal(r[8]->exprs, "ct,bitwise,cmp,immediate");
	assert_int_equal(expr_u32_data(expr_at(r[8]->rule, 2), NFTNL_EXPR_CMP_DATA),
	    mark_value(GOLDEN_MASK, MARK_ALLOW));
	assert_string_equal(r[9]->exprs, "ct,bitwise,cmp,reject");
	assert_int_equal(expr_u32_data(expr_at(r[9]->rule, 2), NFTNL_EXPR_CMP_DATA),
	    mark_value(GOLDEN_MASK, MARK_TRAP));
	assert_string_equal(r[10]->exprs, "ct,bitwise,cmp,immediate");
	assert_int_equal(expr_u32_data(expr_at(r[10]->rule, 2), NFTNL_EXPR_CMP_DATA),
	    mark_value(GOLDEN_MASK, MARK_INSPECT));
	/* Redirected: to this host's own address on the MTA's port goes on, else reset. */
	assert_string_equal(r[11]->exprs, "ct,bitwise,cmp,fib,cmp,meta,cmp,payload,cmp,immediate");
	assert_int_equal(expr_u32_data(expr_at(r[11]->rule, 2), NFTNL_EXPR_CMP_DATA),
	    mark_value(GOLDEN_MASK, MARK_REDIRECT));
	assert_int_equal(expr_u32_data(expr_at(r[11]->rule, 4), NFTNL_EXPR_CMP_DATA), RTN_LOCAL);
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[11]->rule, 7), NFTNL_EXPR_PAYLOAD_OFFSET),
	    2);
	assert_int_equal(expr_u16_data(expr_at(r[11]->rule, 8), NFTNL_EXPR_CMP_DATA), htons(25));
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[11]->rule, 9), NFTNL_EXPR_IMM_VERDICT),
	    NF_ACCEPT);
	assert_string_equal(r[12]->exprs, "ct,bitwise,cmp,reject");
	assert_int_equal(expr_u32_data(expr_at(r[12]->rule, 2), NFTNL_EXPR_CMP_DATA),
	    mark_value(GOLDEN_MASK, MARK_REDIRECT));
	/* Queued with MARK_NAT, every bit outside the mask kept. */
	assert_string_equal(r[13]->exprs, "meta,cmp,meta,bitwise,meta,queue");
	assert_int_equal(expr_u32_data(expr_at(r[13]->rule, 3), NFTNL_EXPR_BITWISE_MASK),
	    ~GOLDEN_MASK);
	assert_int_equal(expr_u32_data(expr_at(r[13]->rule, 3), NFTNL_EXPR_BITWISE_XOR),
	    mark_value(GOLDEN_MASK, MARK_NAT));
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[13]->rule, 4), NFTNL_EXPR_META_KEY),
	    NFT_META_MARK);
	assert_true(nftnl_expr_is_set(expr_at(r[13]->rule, 4), NFTNL_EXPR_META_SREG));
	release(&p);
}

/* The largest table smtpguardd builds still goes in one batch. */
static void
a_full_allow_set_fits_in_one_transaction(void **state)
{
	static uid_t uids[KERNEL_UIDS_MAX];
	struct ruleset_spec sp = golden_spec();
	uint16_t ports[CONFIG_MAX_PORTS];
	struct parsed p;

	(void)state;
	for (size_t i = 0; i < KERNEL_UIDS_MAX; i++)
		uids[i] = (uid_t)(20000 + i);
	for (size_t i = 0; i < CONFIG_MAX_PORTS; i++)
		ports[i] = (uint16_t)(2500 + i);
	sp.allow_uids = uids;
	sp.nallow = KERNEL_UIDS_MAX;
	sp.ports = ports;
	sp.nports = CONFIG_MAX_PORTS;
	sp.detect_any_port = true;
	build(&p, &sp, false);
	assert_true(p.n <= NL_BATCH_MAX_MSGS + 2);
	release(&p);
}

/*
 * detect_any_port: the replies of a flow smtpguardd still reads come to the
 * queue from an input chain that runs after the reply's de-NAT, whose
 * verdicts (first, as NF_REPEAT reruns it) are final without conntrack and
 * never reset a reply; an audited flow's replies (an SMTP port) stay out.
 * Followed packets, both ways, carry "inspect" in our bits of their mark,
 * so one whose flow the daemon lost is told from a new flow's. Without
 * detect_any_port none of it is there (the golden ruleset is unchanged).
 */
static void
detect_any_port_queues_replies_of_followed_flows_marked(void **state)
{
	struct ruleset_spec sp = golden_spec();
	uint32_t m = GOLDEN_MASK, inspect = mark_value(GOLDEN_MASK, MARK_INSPECT);
	struct msg *r[32], *c;
	struct parsed p;
	size_t n;

	(void)state;
	build(&p, &sp, false);
	assert_null(find(&p, NFT_MSG_NEWCHAIN, "input"));
	n = rules_of(&p, "fence", r, 32);
	/* No packet is queued as followed: the one queue rule that marks says "after NAT". */
	for (size_t i = 0; i < n; i++)
		if (strstr(r[i]->exprs, "meta,bitwise,meta,target") != NULL) {
			assert_string_equal(r[i]->exprs, TAKEN_OVER_SYN "target");
			assert_int_equal(expr_u32_data(expr_at(r[i]->rule, 11),
			    NFTNL_EXPR_BITWISE_XOR), mark_value(m, MARK_NAT));
		}
	release(&p);

	sp.detect_any_port = true;
	build(&p, &sp, false);
	assert_non_null(c = find(&p, NFT_MSG_NEWCHAIN, "input"));
	assert_string_equal(nftnl_chain_get_str(c->chain, NFTNL_CHAIN_TYPE), "filter");
	assert_int_equal(nftnl_chain_get_u32(c->chain, NFTNL_CHAIN_HOOKNUM), NF_INET_LOCAL_IN);
	assert_int_equal(nftnl_chain_get_s32(c->chain, NFTNL_CHAIN_PRIO), 150);
	assert_int_equal(nftnl_chain_get_u32(c->chain, NFTNL_CHAIN_POLICY), NF_ACCEPT);

	assert_int_equal(rules_of(&p, "input", r, 32), 6);
	/* allow, reject: ct mark := it; then the mark cleared and accept, both. */
	for (size_t i = 0; i < 4; i += 2) {
		enum mark_state st = i == 0 ? MARK_ALLOW : MARK_REJECT;

		assert_string_equal(r[i]->exprs, "meta,bitwise,cmp,ct,bitwise,ct");
		assert_int_equal(expr_u32_data(expr_at(r[i]->rule, 2), NFTNL_EXPR_CMP_DATA),
		    mark_value(m, st));
		assert_string_equal(r[i + 1]->exprs,
		    "meta,bitwise,cmp,meta,bitwise,meta,immediate");
		assert_int_equal(nftnl_expr_get_u32(expr_at(r[i + 1]->rule, 6),
		    NFTNL_EXPR_IMM_VERDICT), NF_ACCEPT);	/* a reply is never reset */
	}
	/* Any other answer is final: our bits cleared, accepted. */
	assert_string_equal(r[4]->exprs, "meta,bitwise,cmp,meta,bitwise,meta,immediate");
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[4]->rule, 2), NFTNL_EXPR_CMP_OP),
	    NFT_CMP_NEQ);
	assert_string_equal(r[5]->exprs,
	    "meta,cmp,ct,bitwise,cmp,payload,lookup,meta,bitwise,meta,target");
	assert_int_equal(expr_u32_data(expr_at(r[5]->rule, 4), NFTNL_EXPR_CMP_DATA), inspect);
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[5]->rule, 5), NFTNL_EXPR_PAYLOAD_OFFSET),
	    0);	/* the reply's source port: the server's */
	assert_string_equal(nftnl_expr_get_str(expr_at(r[5]->rule, 6), NFTNL_EXPR_LOOKUP_SET),
	    "ports");
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[5]->rule, 6), NFTNL_EXPR_LOOKUP_FLAGS),
	    NFT_LOOKUP_F_INV);
	assert_int_equal(expr_u32_data(expr_at(r[5]->rule, 8), NFTNL_EXPR_BITWISE_MASK), ~m);
	assert_int_equal(expr_u32_data(expr_at(r[5]->rule, 8), NFTNL_EXPR_BITWISE_XOR), inspect);
	assert_non_null(strstr(label_of(&p, r[5]), " (queue)"));

	/* The fence's "keep inspecting" queue rule marks its packets too. */
	n = rules_of(&p, "fence", r, 32);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(r[i]->exprs, "ct,bitwise,cmp,meta,bitwise,meta,target") != 0)
			continue;
		assert_int_equal(expr_u32_data(expr_at(r[i]->rule, 2), NFTNL_EXPR_CMP_DATA),
		    inspect);
		assert_int_equal(expr_u32_data(expr_at(r[i]->rule, 4), NFTNL_EXPR_BITWISE_XOR),
		    inspect);
		release(&p);
		return;
	}
	fail_msg("no marked audit queue rule in the fence");
}

static void
native_path_queues_without_bypass(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct nftnl_expr *q;
	struct msg *r[32];
	struct parsed p;
	size_t n;

	(void)state;
	sp.queue_num = 7;
	build(&p, &sp, true);
	n = rules_of(&p, "fence", r, 32);
	assert_string_equal(r[n - 2]->exprs, "meta,cmp,queue");
	q = expr_at(r[n - 2]->rule, 2);
	assert_int_equal(nftnl_expr_get_u16(q, NFTNL_EXPR_QUEUE_NUM), 7);
	assert_int_equal(nftnl_expr_get_u16(q, NFTNL_EXPR_QUEUE_TOTAL), 1);
	assert_int_equal(nftnl_expr_get_u16(q, NFTNL_EXPR_QUEUE_FLAGS) & NFT_QUEUE_FLAG_BYPASS,
	    0);
	assert_int_equal(nftnl_expr_get_u16(q, NFTNL_EXPR_QUEUE_FLAGS), 0);
	for (size_t i = 0; i < p.n; i++)
		assert_null(strstr(p.m[i].exprs, "target"));
	release(&p);
}

static void
compat_path_is_xt_nfqueue_v3_without_bypass(void **state)
{
	struct ruleset_spec sp = golden_spec();
	const struct xt_NFQ_info_v3 *info;
	struct nftnl_expr *t;
	struct msg *r[32];
	struct parsed p;
	uint32_t len;
	size_t n;

	(void)state;
	sp.queue_num = 7;
	build(&p, &sp, false);
	n = rules_of(&p, "fence", r, 32);
	assert_string_equal(r[n - 2]->exprs, "meta,cmp,target");
	t = expr_at(r[n - 2]->rule, 2);
	assert_string_equal(nftnl_expr_get_str(t, NFTNL_EXPR_TG_NAME), "NFQUEUE");
	assert_int_equal(nftnl_expr_get_u32(t, NFTNL_EXPR_TG_REV), 3);
	info = nftnl_expr_get(t, NFTNL_EXPR_TG_INFO, &len);
	assert_int_equal(len, sizeof(*info));
	assert_int_equal(info->queuenum, 7);
	assert_int_equal(info->queues_total, 1);
	assert_int_equal(info->flags & NFQ_FLAG_BYPASS, 0);
	assert_int_equal(info->flags, 0);
	for (size_t i = 0; i < p.n; i++)
		assert_null(strstr(p.m[i].exprs, "queue"));
	release(&p);
}

/* ruleset_install falls back only when the refused message is a queue rule. */
static void
queue_rules_are_labelled_for_the_fallback(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct parsed p;
	size_t nq = 0;

	(void)state;
	build(&p, &sp, true);
	for (size_t i = 1; i < p.n - 1; i++) {
		const char *l = label_of(&p, &p.m[i]);
		bool labelled = strlen(l) > 8 && strcmp(l + strlen(l) - 8, " (queue)") == 0;

		assert_int_equal(labelled, strstr(p.m[i].exprs, "queue") != NULL);
		nq += labelled;
	}
	/* fence: a SYN on an old flow's entry (the probe's, any other), the rest; nat_fence: 2 */
	assert_int_equal(nq, 5);
	release(&p);
}

static void
allow_local_off_drops_the_fib_rule(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct msg *r[32];
	struct parsed p;
	size_t n;

	(void)state;
	build(&p, &sp, true);
	n = rules_of(&p, "fence", r, 32);
	/* After the mta, allow and 5 x 2 verdict rules; the self-check's probe mark is not local. */
	assert_string_equal(r[12]->exprs, "meta,bitwise,cmp,fib,cmp,immediate");
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[12]->rule, 0), NFTNL_EXPR_META_KEY),
	    NFT_META_MARK);
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[12]->rule, 2), NFTNL_EXPR_CMP_OP),
	    NFT_CMP_NEQ);
	assert_int_equal(expr_u32_data(expr_at(r[12]->rule, 2), NFTNL_EXPR_CMP_DATA),
	    mark_value(sp.mark_mask, MARK_PROBE));
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[12]->rule, 3), NFTNL_EXPR_FIB_FLAGS),
	    NFTA_FIB_F_DADDR);
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[12]->rule, 3), NFTNL_EXPR_FIB_RESULT),
	    NFT_FIB_RESULT_ADDRTYPE);
	assert_int_equal(expr_u32_data(expr_at(r[12]->rule, 4), NFTNL_EXPR_CMP_DATA), RTN_LOCAL);
	release(&p);

	sp.allow_local = false;
	build(&p, &sp, true);
	assert_int_equal(rules_of(&p, "fence", r, 32), n - 1);
	/* The one fib left is nat_fence's check that a redirect went to this host. */
	for (size_t i = 0; i < p.n; i++)
		if (strstr(p.m[i].exprs, "fib") != NULL)
			assert_string_equal(p.m[i].exprs,
			    "ct,bitwise,cmp,fib,cmp,meta,cmp,payload,cmp,immediate");
	release(&p);
}

/* Every mark rule reads and writes only the configured bits, in both fence chains. */
static void
verdict_marks_never_touch_bits_outside_the_mask(void **state)
{
	const uint32_t masks[] = { GOLDEN_MASK, 0x0000f000, 0x7, 0xe0000000 };
	const char *chains[] = { "fence", "nat_fence" };
	/* The states each chain copies into the ct mark, in order; after NAT allow and reject. */
	static const enum mark_state states[] = { MARK_ALLOW, MARK_REJECT, MARK_TRAP,
	    MARK_INSPECT, MARK_REDIRECT };
	const uint32_t copies[] = { sizeof(states) / sizeof(states[0]), 2 };

	(void)state;
	for (size_t k = 0; k < sizeof(masks) / sizeof(masks[0]); k++) {
		struct ruleset_spec sp = golden_spec();
		const uint32_t m = masks[k];
		struct parsed p;

		sp.mark_mask = m;
		build(&p, &sp, false);
		for (size_t c = 0; c < 2; c++) {
			uint32_t seen = 0, finals = 0;
			struct msg *r[32];
			size_t n = rules_of(&p, chains[c], r, 32);

			for (size_t i = 0; i < n; i++) {
				struct nftnl_rule *rule = r[i]->rule;
				uint32_t v;

				if (strcmp(r[i]->exprs, "meta,bitwise,cmp,ct,bitwise,ct") == 0) {
					/* meta mark & M == V  ct mark set ct mark & ~M ^ V */
					assert_int_equal(nftnl_expr_get_u32(expr_at(rule, 0),
					    NFTNL_EXPR_META_KEY), NFT_META_MARK);
					assert_int_equal(expr_u32_data(expr_at(rule, 1),
					    NFTNL_EXPR_BITWISE_MASK), m);
					v = expr_u32_data(expr_at(rule, 2), NFTNL_EXPR_CMP_DATA);
					assert_int_not_equal(v, 0);
					assert_int_equal(v & ~m, 0);
					assert_int_equal(expr_u32_data(expr_at(rule, 4),
					    NFTNL_EXPR_BITWISE_MASK), ~m);
					assert_int_equal(expr_u32_data(expr_at(rule, 4),
					    NFTNL_EXPR_BITWISE_XOR), v);
					assert_int_equal(mark_state_of(m, v), states[seen]);
					seen++;
				} else if (strncmp(r[i]->exprs, "meta,bitwise,cmp,meta,bitwise,meta",
				    34) == 0) {
					/* meta mark & M == V  meta mark set meta mark & ~M  verdict */
					assert_int_equal(expr_u32_data(expr_at(rule, 1),
					    NFTNL_EXPR_BITWISE_MASK), m);
					v = expr_u32_data(expr_at(rule, 2), NFTNL_EXPR_CMP_DATA);
					assert_int_equal(v & ~m, 0);
					assert_int_equal(expr_u32_data(expr_at(rule, 4),
					    NFTNL_EXPR_BITWISE_MASK), ~m);
					assert_int_equal(expr_u32_data(expr_at(rule, 4),
					    NFTNL_EXPR_BITWISE_XOR), 0);
					finals++;
				} else if (strncmp(r[i]->exprs, "ct,bitwise,cmp", 14) == 0 &&
				    nftnl_expr_get_u32(expr_at(rule, 0), NFTNL_EXPR_CT_KEY) ==
				    NFT_CT_MARK) {
					assert_int_equal(expr_u32_data(expr_at(rule, 1),
					    NFTNL_EXPR_BITWISE_MASK), m);
					v = expr_u32_data(expr_at(rule, 2), NFTNL_EXPR_CMP_DATA);
					assert_int_not_equal(v, 0);
					assert_int_equal(v & ~m, 0);
				} else if (strcmp(r[i]->exprs, "meta,cmp,meta,bitwise,meta,target") == 0) {
					/* queued after NAT: meta mark set meta mark & ~M ^ NAT */
					assert_int_equal(expr_u32_data(expr_at(rule, 3),
					    NFTNL_EXPR_BITWISE_MASK), ~m);
					assert_int_equal(expr_u32_data(expr_at(rule, 3),
					    NFTNL_EXPR_BITWISE_XOR), mark_value(m, MARK_NAT));
				}
			}
			assert_int_equal(seen, copies[c]);
			assert_int_equal(finals, copies[c]);
		}
		release(&p);
	}
}

static void
a_mask_too_small_for_every_state_is_refused(void **state)
{
	const uint32_t bad[] = { 0, 0x1, 0x3, 0x00500000, 0x80000000 };
	struct ruleset_spec sp = golden_spec();
	struct nl_batch b;

	(void)state;
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		sp.mark_mask = bad[k];
		assert_int_equal(nl_batch_init(&b), 0);
		errno = 0;
		assert_int_equal(ruleset_build(&b, &sp, true), -1);
		assert_int_equal(errno, EINVAL);
		assert_int_equal(b.nlabels, 0);
		nl_batch_free(&b);
	}
}

static void
a_fence_on_no_ports_is_refused(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct nl_batch b;

	(void)state;
	sp.nports = 0;
	assert_int_equal(nl_batch_init(&b), 0);
	assert_int_equal(ruleset_build(&b, &sp, true), -1);
	assert_int_equal(errno, EINVAL);
	nl_batch_free(&b);
}

/*
 * action redirect: the to_mta nat chain sends flows with the redirect ct
 * mark to the MTA's port on this host; without a port, or on the trap's,
 * nothing is built (redirected mail would be refused, or trapped).
 */
static void
redirected_flows_go_to_the_mta_port_and_a_bad_port_is_refused(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct msg *r[4], *nf[32], *c;
	struct nl_batch b;
	struct parsed p;
	uint16_t port;
	uint32_t len;
	const void *d;

	(void)state;
	sp.redirect_port = 2525;
	build(&p, &sp, true);
	assert_non_null(c = find(&p, NFT_MSG_NEWCHAIN, "to_mta"));
	assert_string_equal(nftnl_chain_get_str(c->chain, NFTNL_CHAIN_TYPE), "nat");
	assert_int_equal(nftnl_chain_get_u32(c->chain, NFTNL_CHAIN_HOOKNUM), NF_INET_LOCAL_OUT);
	assert_int_equal(nftnl_chain_get_s32(c->chain, NFTNL_CHAIN_PRIO), -100);
	assert_int_equal(rules_of(&p, "to_mta", r, 4), 1);
	assert_string_equal(r[0]->exprs, "meta,cmp,ct,bitwise,cmp,immediate,redir");
	assert_int_equal(expr_u32_data(expr_at(r[0]->rule, 4), NFTNL_EXPR_CMP_DATA),
	    mark_value(GOLDEN_MASK, MARK_REDIRECT));
	d = nftnl_expr_get(expr_at(r[0]->rule, 5), NFTNL_EXPR_IMM_DATA, &len);
	assert_int_equal(len, sizeof(port));
	memcpy(&port, d, sizeof(port));
	assert_int_equal(ntohs(port), 2525);
	/* nat_fence lets our own redirect by on that port only */
	assert_int_equal(rules_of(&p, "nat_fence", nf, 32), 15);
	assert_int_equal(expr_u16_data(expr_at(nf[11]->rule, 8), NFTNL_EXPR_CMP_DATA),
	    htons(2525));
	release(&p);

	for (int k = 0; k < 2; k++) {
		sp.redirect_port = k == 0 ? 0 : sp.trap_port;
		assert_int_equal(nl_batch_init(&b), 0);
		errno = 0;
		assert_int_equal(ruleset_build(&b, &sp, true), -1);
		assert_int_equal(errno, EINVAL);
		assert_int_equal(b.nlabels, 0);
		nl_batch_free(&b);
	}
}

static void
trapped_flows_are_redirected_to_the_trap_port(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct msg *r[4], *c;
	struct parsed p;
	uint16_t port;
	uint32_t len;
	const void *d;

	(void)state;
	build(&p, &sp, true);
	assert_non_null(c = find(&p, NFT_MSG_NEWCHAIN, "trap"));
	assert_string_equal(nftnl_chain_get_str(c->chain, NFTNL_CHAIN_TYPE), "nat");
	assert_int_equal(nftnl_chain_get_u32(c->chain, NFTNL_CHAIN_HOOKNUM), NF_INET_LOCAL_OUT);
	assert_int_equal(nftnl_chain_get_s32(c->chain, NFTNL_CHAIN_PRIO), -100);
	assert_int_equal(rules_of(&p, "trap", r, 4), 1);
	assert_string_equal(r[0]->exprs, "meta,cmp,ct,bitwise,cmp,immediate,redir");
	assert_int_equal(expr_u32_data(expr_at(r[0]->rule, 4), NFTNL_EXPR_CMP_DATA),
	    mark_value(GOLDEN_MASK, MARK_TRAP));
	d = nftnl_expr_get(expr_at(r[0]->rule, 5), NFTNL_EXPR_IMM_DATA, &len);
	assert_int_equal(len, sizeof(port));
	memcpy(&port, d, sizeof(port));
	assert_int_equal(ntohs(port), 10025);
	release(&p);

	sp.trap = false;
	build(&p, &sp, true);
	assert_null(find(&p, NFT_MSG_NEWCHAIN, "trap"));
	assert_int_equal(rules_of(&p, "trap", r, 4), 0);
	release(&p);
}

/*
 * A nat chain is registered only when its decision can be made: with one,
 * conntrack binds NAT for every new flow on the host, the MTA's too.
 */
static void
nat_chains_only_for_the_decisions_that_need_them(void **state)
{
	static const uid_t mta[] = { 101 };
	static const struct {
		enum action	 action;
		bool		 gate, trap, to_mta;
	} cases[] = {
		{ ACTION_REJECT, false, false, false },
		{ ACTION_TRAP, false, true, false },
		{ ACTION_AUDIT, true, false, true },
	};
	struct ruleset_spec sp;
	struct config cfg;
	struct parsed p;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		config_defaults(&cfg);
		cfg.action = cases[i].action;
		cfg.mail_gate = cases[i].gate;
		ruleset_spec_of(&cfg, mta, 1, NULL, 0, &sp);
		build(&p, &sp, true);
		assert_int_equal(find(&p, NFT_MSG_NEWCHAIN, "trap") != NULL, cases[i].trap);
		assert_int_equal(find(&p, NFT_MSG_NEWCHAIN, "to_mta") != NULL, cases[i].to_mta);
		/* after_nat still resets a trapped or redirected flow NAT left untranslated. */
		assert_non_null(find(&p, NFT_MSG_NEWCHAIN, "after_nat"));
		release(&p);
	}
}

/*
 * An audited packet is copied as far as inspection reads it (inspect_bytes)
 * plus room for its headers, at most what one log copy can hold.
 */
static void
audit_copies_end_where_inspection_does(void **state)
{
	static const uid_t mta[] = { 101 };
	static const struct {
		size_t	 inspect_bytes;
		uint32_t snaplen;
	} cases[] = {
		{ 4096, 4608 }, { 64, 576 }, { 65023, 65535 }, { 65024, 65535 }, { 1048576, 65535 },
	};
	struct ruleset_spec sp;
	struct config cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		config_defaults(&cfg);
		cfg.inspect_bytes = cases[i].inspect_bytes;
		ruleset_spec_of(&cfg, mta, 1, NULL, 0, &sp);
		assert_int_equal(sp.audit_snaplen, cases[i].snaplen);
		assert_true(sp.data_release);
	}
}

/* Where the kernel refuses the DATA rule, the table goes in without it, the rest the same. */
static void
without_the_data_rule_the_tap_rule_stays(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct msg *r[32];
	struct parsed p;

	(void)state;
	sp.data_release = false;
	build(&p, &sp, true);
	assert_int_equal(rules_of(&p, "fence", r, 32), 25);
	assert_string_equal(r[18]->exprs, "ct,bitwise,cmp,meta,cmp,payload,lookup,log,immediate");
	for (size_t i = 0; i < p.n; i++)
		assert_null(strstr(nl_batch_label(&p.b, (int)i), "(DATA)"));
	release(&p);
}

static void
rules_carry_comments_for_nft_list(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct msg *r[32];
	struct parsed p;
	const uint8_t *ud;
	uint32_t len;

	(void)state;
	build(&p, &sp, true);
	rules_of(&p, "fence", r, 32);
	ud = nftnl_rule_get_data(r[0]->rule, NFTNL_RULE_USERDATA, &len);
	assert_non_null(ud);
	assert_int_equal(ud[0], NFTNL_UDATA_RULE_COMMENT);
	assert_int_equal(ud[1], len - 2);
	assert_string_equal((const char *)ud + 2, "the MTA: decided in the kernel");
	release(&p);
}

static void
an_exception_is_one_element_batch(void **state)
{
	const uid_t uids[] = { 3001, 3002 };
	struct parsed p;

	(void)state;
	memset(&p, 0, sizeof(p));
	assert_int_equal(nl_batch_init(&p.b), 0);
	assert_int_equal(ruleset_build_set_uids(&p.b, TABLE_NAME, "allow_uids", true, uids, 2),
	    0);
	parse(&p);
	assert_int_equal(p.n, 3);
	assert_int_equal(p.m[1].type, NFT_MSG_NEWSETELEM);
	assert_string_equal(nftnl_set_get_str(p.m[1].set, NFTNL_SET_TABLE), "smtpguard");
	assert_string_equal(nftnl_set_get_str(p.m[1].set, NFTNL_SET_NAME), "allow_uids");
	assert_int_equal(p.m[1].nkeys, 2);
	assert_int_equal(p.m[1].keys[0], 3001);
	assert_int_equal(p.m[1].keys[1], 3002);
	release(&p);

	memset(&p, 0, sizeof(p));
	assert_int_equal(nl_batch_init(&p.b), 0);
	assert_int_equal(ruleset_build_set_uids(&p.b, TABLE_NAME, "allow_uids", false, uids, 1),
	    0);
	parse(&p);
	assert_int_equal(p.m[1].type, NFT_MSG_DELSETELEM);
	assert_string_equal(label_of(&p, &p.m[1]), "delete elements from set allow_uids (1)");
	release(&p);

	assert_int_equal(nl_batch_init(&p.b), 0);
	assert_int_equal(ruleset_build_set_uids(&p.b, TABLE_NAME, "allow_uids", true, uids, 0),
	    -1);
	assert_int_equal(errno, EINVAL);
	nl_batch_free(&p.b);
}

static void
thousands_of_exceptions_fit_in_one_transaction(void **state)
{
	const size_t n = 2500;
	uid_t *uids = calloc(n, sizeof(*uids));
	size_t total = 0, msgs = 0;
	struct parsed p;

	(void)state;
	assert_non_null(uids);
	for (size_t i = 0; i < n; i++)
		uids[i] = (uid_t)(10000 + i);
	memset(&p, 0, sizeof(p));
	assert_int_equal(nl_batch_init(&p.b), 0);
	assert_int_equal(ruleset_build_set_uids(&p.b, TABLE_NAME, "allow_uids", true, uids, n),
	    0);
	parse(&p);
	for (size_t i = 1; i < p.n - 1; i++) {
		assert_int_equal(p.m[i].type, NFT_MSG_NEWSETELEM);
		assert_true(p.m[i].nkeys > 0);
		total += p.m[i].nkeys;
		msgs++;
	}
	assert_int_equal(total, n);
	assert_true(msgs > 1);
	assert_int_equal(p.m[1].keys[0], 10000);
	release(&p);
	free(uids);
}

static void
a_batch_refuses_more_messages_than_it_can_label(void **state)
{
	struct nl_batch b;

	(void)state;
	assert_int_equal(nl_batch_init(&b), 0);
	for (int i = 0; i < NL_BATCH_MAX_MSGS; i++) {
		assert_non_null(nl_batch_put(&b, NFT_MSG_DELTABLE, NFPROTO_INET, 0, "m%d", i));
		assert_int_equal(nl_batch_next(&b), 0);
	}
	assert_null(nl_batch_put(&b, NFT_MSG_DELTABLE, NFPROTO_INET, 0, "one too many"));
	assert_int_equal(errno, E2BIG);
	assert_string_equal(nl_batch_label(&b, 5), "m5");
	assert_string_equal(nl_batch_label(&b, -1), "batch");
	assert_string_equal(nl_batch_label(&b, NL_BATCH_MAX_MSGS), "batch");
	nl_batch_free(&b);
}

static int
count_counters(struct nftnl_expr *e, void *arg)
{
	if (strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "counter") == 0)
		(*(int *)arg)++;
	return 0;
}

/*
 * A fresh table refuses nobody in the kernel: the map is there, empty,
 * bounded, each uid to a counter object; no object yet (parse() would
 * fail on a NEWOBJ).
 */
static void
the_refused_map_starts_empty_bounded_and_maps_to_counters(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct parsed p;
	struct msg *m;
	int counters = 0;

	(void)state;
	build(&p, &sp, false);
	assert_non_null(m = find(&p, NFT_MSG_NEWSET, "refused_uids"));
	assert_int_equal(nftnl_set_get_u32(m->set, NFTNL_SET_KEY_TYPE), 24);	/* uid */
	assert_int_equal(nftnl_set_get_u32(m->set, NFTNL_SET_KEY_LEN), 4);
	assert_int_equal(nftnl_set_get_u32(m->set, NFTNL_SET_FLAGS),
	    NFT_SET_TIMEOUT | NFT_SET_OBJECT);
	assert_int_equal(nftnl_set_get_u32(m->set, NFTNL_SET_OBJ_TYPE), NFT_OBJECT_COUNTER);
	assert_int_equal(nftnl_set_get_u32(m->set, NFTNL_SET_DESC_SIZE), REFUSED_UIDS_MAX);
	/* The counting is the objects': no per-element counter besides. */
	assert_int_equal(nftnl_set_expr_foreach(m->set, count_counters, &counters), 0);
	assert_int_equal(counters, 0);
	assert_null(find(&p, NFT_MSG_NEWSETELEM, "refused_uids"));
	release(&p);
}

/*
 * The refused uids' rule comes just before the audited uids' and the queue rule: after
 * the MTA, the exceptions, the verdicts, allow_local and the decided flows.
 * It takes what the queue rule would (a socket owner's SYN to @ports),
 * never the self-check's probe, counts on the uid's object and resets.
 * NAT's second look has none.
 */
static void
refused_uids_are_reset_just_before_the_queue_rule(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct parsed p;
	struct msg *r[32];
	size_t n;
	struct nftnl_expr *e;

	(void)state;
	build(&p, &sp, false);
	n = rules_of(&p, "fence", r, 32);
	assert_true(n > 3);
	assert_string_equal(r[n - 4]->exprs, "meta,bitwise,cmp,meta,cmp,payload,bitwise,cmp,"
	    "payload,lookup,meta,objref,reject");
	e = expr_at(r[n - 4]->rule, 2);
	assert_int_equal(nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP), NFT_CMP_NEQ);
	assert_int_equal(expr_u32_data(e, NFTNL_EXPR_CMP_DATA), mark_value(GOLDEN_MASK,
	    MARK_PROBE));
	e = expr_at(r[n - 4]->rule, 7);
	assert_int_equal(nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP), NFT_CMP_EQ);
	assert_string_equal(nftnl_expr_get_str(expr_at(r[n - 4]->rule, 9),
	    NFTNL_EXPR_LOOKUP_SET), "ports");
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[n - 4]->rule, 10), NFTNL_EXPR_META_KEY),
	    NFT_META_SKUID);
	/*
	 * libnftnl 1.2.4 sends the objref's set name without its NUL (the
	 * kernel takes the attribute's length) and parses it back with strdup:
	 * only the name's own bytes are compared.
	 */
	e = expr_at(r[n - 4]->rule, 11);
	assert_memory_equal(nftnl_expr_get_str(e, NFTNL_EXPR_OBJREF_SET_NAME), "refused_uids",
	    strlen("refused_uids"));
	assert_int_equal(nftnl_expr_get_u32(e, NFTNL_EXPR_OBJREF_SET_SREG), NFT_REG_1);
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[n - 4]->rule, 12),
	    NFTNL_EXPR_REJECT_TYPE), NFT_REJECT_TCP_RST);
	/* The MTA and the exceptions come first. */
	assert_string_equal(nftnl_expr_get_str(expr_at(r[0]->rule, 1), NFTNL_EXPR_LOOKUP_SET),
	    "mta_uids");
	assert_string_equal(nftnl_expr_get_str(expr_at(r[1]->rule, 1), NFTNL_EXPR_LOOKUP_SET),
	    "allow_uids");
	n = rules_of(&p, "nat_fence", r, 32);
	for (size_t i = 0; i < n; i++)
		assert_null(strstr(r[i]->exprs, "objref"));
	release(&p);
}

/*
 * The audited uids' rule is the fence's last before the queue rule: an
 * unmarked SYN to @ports in ct state new (no other) from a uid in
 * @audited_uids gets the audit ct mark, is copied to the audit group at
 * once (queue threshold 1) and accepted. NAT's second look has none, and
 * the set's elements time out.
 */
static void
audited_uids_are_audited_in_the_kernel_just_before_the_queue_rule(void **state)
{
	struct ruleset_spec sp = golden_spec();
	struct parsed p;
	struct msg *r[32];
	size_t n;
	struct nftnl_expr *e;

	(void)state;
	build(&p, &sp, false);
	n = rules_of(&p, "fence", r, 32);
	assert_true(n > 3);
	assert_string_equal(r[n - 3]->exprs, AUDITED_RULE);
	assert_int_equal(expr_u32_data(expr_at(r[n - 3]->rule, 2), NFTNL_EXPR_CMP_DATA), 0);
	assert_string_equal(nftnl_expr_get_str(expr_at(r[n - 3]->rule, 9),
	    NFTNL_EXPR_LOOKUP_SET), "ports");
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[n - 3]->rule, 10), NFTNL_EXPR_CT_KEY),
	    NFT_CT_STATE);
	assert_int_equal(nftnl_expr_get_u32(expr_at(r[n - 3]->rule, 11),
	    NFTNL_EXPR_BITWISE_LEN), 4);
	assert_int_equal(*(const uint32_t *)nftnl_expr_get(expr_at(r[n - 3]->rule, 11),
	    NFTNL_EXPR_BITWISE_MASK, &(uint32_t){ 0 }), NF_CT_STATE_BIT(IP_CT_NEW));
	assert_string_equal(nftnl_expr_get_str(expr_at(r[n - 3]->rule, 14),
	    NFTNL_EXPR_LOOKUP_SET), "audited_uids");
	assert_int_equal(*(const uint32_t *)nftnl_expr_get(expr_at(r[n - 3]->rule, 16),
	    NFTNL_EXPR_BITWISE_XOR, &(uint32_t){ 0 }), mark_value(GOLDEN_MASK, MARK_INSPECT));
	e = expr_at(r[n - 3]->rule, 18);
	assert_int_equal(nftnl_expr_get_u16(e, NFTNL_EXPR_LOG_GROUP), sp.audit_group);
	assert_int_equal(nftnl_expr_get_u16(e, NFTNL_EXPR_LOG_QTHRESHOLD), 1);
	assert_int_equal(nftnl_expr_get_u32(e, NFTNL_EXPR_LOG_SNAPLEN), 4608);
	n = rules_of(&p, "nat_fence", r, 32);
	for (size_t i = 0; i < n; i++)
		assert_null(strstr(r[i]->exprs, "log"));
	release(&p);
}

/* The messages of a batch of refuse.c's, between BEGIN and END: how many (up to MAX). */
static size_t
batch_msgs(struct nl_batch *b, const struct nlmsghdr **out, size_t max)
{
	const struct nlmsghdr *nlh;
	const void *data;
	size_t len, n = 0;
	int remain;

	assert_int_equal(nl_batch_finish(b, &data, &len), 0);
	nlh = data;
	remain = (int)len;
	assert_int_equal(nlh->nlmsg_type, NFNL_MSG_BATCH_BEGIN);
	for (nlh = mnl_nlmsg_next(nlh, &remain); mnl_nlmsg_ok(nlh, remain) &&
	    nlh->nlmsg_type != NFNL_MSG_BATCH_END; nlh = mnl_nlmsg_next(nlh, &remain)) {
		assert_true(n < max);
		assert_true(nlh->nlmsg_flags & NLM_F_ACK);
		out[n++] = nlh;
	}
	assert_true(mnl_nlmsg_ok(nlh, remain));
	assert_int_equal(nlh->nlmsg_type, NFNL_MSG_BATCH_END);
	return n;
}

static void
assert_msg(const struct nlmsghdr *nlh, uint16_t type, uint16_t flags)
{
	assert_int_equal(NFNL_MSG_TYPE(nlh->nlmsg_type), type);
	assert_int_equal(nlh->nlmsg_flags & (NLM_F_ECHO | NLM_F_CREATE | NLM_F_EXCL), flags);
}

/* An element message of @refused_uids, parsed back by libnftnl (one element at most). */
static struct nftnl_set *
refused_elems(const struct nlmsghdr *nlh)
{
	struct nftnl_set *s;

	assert_non_null(s = nftnl_set_alloc());
	assert_int_equal(nftnl_set_elems_nlmsg_parse(nlh, s), 0);
	assert_string_equal(nftnl_set_get_str(s, NFTNL_SET_TABLE), "smtpguard");
	assert_string_equal(nftnl_set_get_str(s, NFTNL_SET_NAME), "refused_uids");
	return s;
}

/* A counter object's message: its name. */
static void
assert_refused_obj(const struct nlmsghdr *nlh, const char *name)
{
	struct nftnl_obj *o;

	assert_non_null(o = nftnl_obj_alloc());
	assert_int_equal(nftnl_obj_nlmsg_parse(nlh, o), 0);
	assert_string_equal(nftnl_obj_get_str(o, NFTNL_OBJ_TABLE), "smtpguard");
	assert_string_equal(nftnl_obj_get_str(o, NFTNL_OBJ_NAME), name);
	assert_int_equal(nftnl_obj_get_u32(o, NFTNL_OBJ_TYPE), NFT_OBJECT_COUNTER);
	nftnl_obj_free(o);
}

static int
count_elem(struct nftnl_set_elem *e, void *arg)
{
	(void)e;
	(*(int *)arg)++;
	return 0;
}

/* The only element of S: its key, timeout (0: none) and object (NULL: none). */
static uint32_t
only_elem(struct nftnl_set *s, uint64_t *timeout, const char **obj)
{
	struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
	struct nftnl_set_elem *e;
	const void *k;
	uint32_t len, key;
	int n = 0;

	assert_non_null(it);
	assert_non_null(e = nftnl_set_elems_iter_cur(it));
	assert_non_null(k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len));
	assert_int_equal(len, 4);
	memcpy(&key, k, sizeof(key));
	*timeout = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_TIMEOUT) ?
	    nftnl_set_elem_get_u64(e, NFTNL_SET_ELEM_TIMEOUT) : 0;
	*obj = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_OBJREF) ?
	    nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_OBJREF) : NULL;
	nftnl_set_elems_iter_destroy(it);
	assert_int_equal(nftnl_set_elem_foreach(s, count_elem, &n), 0);
	assert_int_equal(n, 1);
	return key;
}

/*
 * A uid goes in as its counter object and its element to it, in one batch,
 * with a timeout (the safety net); its element comes out alone or with the
 * whole map, and its object later, by its own message.
 */
static void
a_refused_uid_goes_in_with_its_counter_and_out_in_steps(void **state)
{
	const struct nlmsghdr *m[4];
	struct nl_batch b;
	struct nftnl_set *s;
	const char *obj;
	uint64_t timeout;
	uid_t uid = 3001;
	int n = 0;

	(void)state;
	assert_int_equal(nl_batch_init(&b), 0);
	assert_int_equal(ruleset_build_refused_add(&b, TABLE_NAME, 3001, 70000), 0);
	assert_int_equal(batch_msgs(&b, m, 4), 2);
	/* New, both: a stale object would bring another window's count. */
	assert_msg(m[0], NFT_MSG_NEWOBJ, NLM_F_CREATE | NLM_F_EXCL);
	assert_refused_obj(m[0], "refused_3001");
	assert_msg(m[1], NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL);
	s = refused_elems(m[1]);
	assert_int_equal(only_elem(s, &timeout, &obj), 3001);
	assert_int_equal(timeout, 70000);
	assert_string_equal(obj, "refused_3001");
	nftnl_set_free(s);
	nl_batch_free(&b);

	assert_int_equal(nl_batch_init(&b), 0);
	assert_int_equal(ruleset_build_refused_del(&b, TABLE_NAME, &uid), 0);
	assert_int_equal(batch_msgs(&b, m, 4), 1);
	assert_msg(m[0], NFT_MSG_DELSETELEM, 0);
	s = refused_elems(m[0]);
	assert_int_equal(only_elem(s, &timeout, &obj), 3001);
	assert_int_equal(timeout, 0);
	assert_null(obj);
	nftnl_set_free(s);
	nl_batch_free(&b);

	/* No element list: the kernel flushes the map. */
	assert_int_equal(nl_batch_init(&b), 0);
	assert_int_equal(ruleset_build_refused_del(&b, TABLE_NAME, NULL), 0);
	assert_int_equal(batch_msgs(&b, m, 4), 1);
	assert_msg(m[0], NFT_MSG_DELSETELEM, 0);
	s = refused_elems(m[0]);
	assert_int_equal(nftnl_set_elem_foreach(s, count_elem, &n), 0);
	assert_int_equal(n, 0);
	nftnl_set_free(s);
	nl_batch_free(&b);

	assert_int_equal(nl_batch_init(&b), 0);
	assert_int_equal(ruleset_build_refused_forget(&b, TABLE_NAME, 3001), 0);
	assert_int_equal(batch_msgs(&b, m, 4), 1);
	assert_msg(m[0], NFT_MSG_DELOBJ, 0);
	assert_refused_obj(m[0], "refused_3001");
	nl_batch_free(&b);

	assert_int_equal(nl_batch_init(&b), 0);
	assert_int_equal(ruleset_build_refused_add(&b, TABLE_NAME, 3001, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(ruleset_build_refused_add(&b, "", 3001, 1000), -1);
	assert_int_equal(ruleset_build_refused_forget(&b, "", 3001), -1);
	nl_batch_free(&b);
}

/*
 * A counter object as a dump sends it (NEWOBJ); PACKETS UINT64_MAX: one
 * with no counter data.
 */
static struct nlmsghdr *
obj_of(char *buf, uint16_t type, const char *table, const char *name, uint32_t objtype,
    uint64_t packets)
{
	struct nftnl_obj *o = nftnl_obj_alloc();
	struct nlmsghdr *nlh;

	assert_non_null(o);
	nftnl_obj_set_u32(o, NFTNL_OBJ_FAMILY, NFPROTO_INET);
	nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, table);
	nftnl_obj_set_str(o, NFTNL_OBJ_NAME, name);
	nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, objtype);
	if (packets != UINT64_MAX && objtype == NFT_OBJECT_COUNTER) {
		nftnl_obj_set_u64(o, NFTNL_OBJ_CTR_PKTS, packets);
		nftnl_obj_set_u64(o, NFTNL_OBJ_CTR_BYTES, 60);
	} else if (objtype == NFT_OBJECT_QUOTA) {
		nftnl_obj_set_u64(o, NFTNL_OBJ_QUOTA_BYTES, 1000);
	}
	nlh = nftnl_nlmsg_build_hdr(buf, type, NFPROTO_INET, 0, 0);
	nftnl_obj_nlmsg_build_payload(nlh, o);
	nftnl_obj_free(o);
	return nlh;
}

struct counts {
	uid_t		 uid[4];
	uint64_t	 n[4];
	size_t		 k;
};

static void
count_into(void *arg, uid_t uid, uint64_t n)
{
	struct counts *c = arg;

	assert_true(c->k < 4);
	c->uid[c->k] = uid;
	c->n[c->k++] = n;
}

static void
the_kernels_counter_objects_give_each_uid_its_exact_count(void **state)
{
	static const char *const strangers[] = {
		"refused_", "refused_x", "refused_007", "refused_-1", "refused_4294967296",
		"refused_12a", "other_3001", "refused",
	};
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct counts c = { .k = 0 };

	(void)state;
	assert_int_equal(ruleset_refused_obj(obj_of(buf, NFT_MSG_NEWOBJ, "smtpguard",
	    "refused_3001", NFT_OBJECT_COUNTER, 3001000007ULL), TABLE_NAME, count_into, &c), 1);
	assert_int_equal(c.uid[0], 3001);
	assert_int_equal(c.n[0], 3001000007ULL);
	assert_int_equal(ruleset_refused_obj(obj_of(buf, NFT_MSG_NEWOBJ, "smtpguard",
	    "refused_4294967295", NFT_OBJECT_COUNTER, 0), TABLE_NAME, count_into, &c), 1);
	assert_int_equal(c.uid[1], (uid_t)4294967295U);
	assert_int_equal(c.n[1], 0);
	/* Another table's, another type, a name not ours, or a deletion's notice: not ours. */
	c.k = 0;
	assert_int_equal(ruleset_refused_obj(obj_of(buf, NFT_MSG_NEWOBJ, "other",
	    "refused_3001", NFT_OBJECT_COUNTER, 5), TABLE_NAME, count_into, &c), 0);
	assert_int_equal(ruleset_refused_obj(obj_of(buf, NFT_MSG_NEWOBJ, "smtpguard",
	    "refused_3001", NFT_OBJECT_QUOTA, 5), TABLE_NAME, count_into, &c), 0);
	assert_int_equal(ruleset_refused_obj(obj_of(buf, NFT_MSG_DELOBJ, "smtpguard",
	    "refused_3001", NFT_OBJECT_COUNTER, 5), TABLE_NAME, count_into, &c), 0);
	for (size_t i = 0; i < sizeof(strangers) / sizeof(strangers[0]); i++)
		assert_int_equal(ruleset_refused_obj(obj_of(buf, NFT_MSG_NEWOBJ, "smtpguard",
		    strangers[i], NFT_OBJECT_COUNTER, 5), TABLE_NAME, count_into, &c), 0);
	assert_int_equal(c.k, 0);
	/* Ours without its count: refused, never read as zero. */
	assert_int_equal(ruleset_refused_obj(obj_of(buf, NFT_MSG_NEWOBJ, "smtpguard",
	    "refused_3001", NFT_OBJECT_COUNTER, UINT64_MAX), TABLE_NAME, count_into, &c), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(c.k, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(restart_replaces_the_table_in_one_transaction),
		cmocka_unit_test(no_other_table_is_ever_named),
		cmocka_unit_test(sets_list_as_ports_and_uids),
		cmocka_unit_test(only_tcp_to_smtp_ports_enters_the_fence),
		cmocka_unit_test(mta_and_exceptions_are_accepted_before_anything_is_queued),
		cmocka_unit_test(audited_flows_are_copied_never_queued),
		cmocka_unit_test(no_flow_passes_for_being_established),
		cmocka_unit_test(every_verdict_is_final_without_conntrack),
		cmocka_unit_test(replies_pass_but_not_a_syn),
		cmocka_unit_test(only_packets_with_a_socket_owner_are_queued),
		cmocka_unit_test(flows_dnatted_to_smtp_ports_are_judged_after_nat),
		cmocka_unit_test(a_full_allow_set_fits_in_one_transaction),
		cmocka_unit_test(detect_any_port_queues_replies_of_followed_flows_marked),
		cmocka_unit_test(native_path_queues_without_bypass),
		cmocka_unit_test(compat_path_is_xt_nfqueue_v3_without_bypass),
		cmocka_unit_test(queue_rules_are_labelled_for_the_fallback),
		cmocka_unit_test(allow_local_off_drops_the_fib_rule),
		cmocka_unit_test(verdict_marks_never_touch_bits_outside_the_mask),
		cmocka_unit_test(a_mask_too_small_for_every_state_is_refused),
		cmocka_unit_test(a_fence_on_no_ports_is_refused),
		cmocka_unit_test(trapped_flows_are_redirected_to_the_trap_port),
		cmocka_unit_test(redirected_flows_go_to_the_mta_port_and_a_bad_port_is_refused),
		cmocka_unit_test(nat_chains_only_for_the_decisions_that_need_them),
		cmocka_unit_test(audit_copies_end_where_inspection_does),
		cmocka_unit_test(without_the_data_rule_the_tap_rule_stays),
		cmocka_unit_test(rules_carry_comments_for_nft_list),
		cmocka_unit_test(an_exception_is_one_element_batch),
		cmocka_unit_test(thousands_of_exceptions_fit_in_one_transaction),
		cmocka_unit_test(a_batch_refuses_more_messages_than_it_can_label),
		cmocka_unit_test(the_refused_map_starts_empty_bounded_and_maps_to_counters),
		cmocka_unit_test(refused_uids_are_reset_just_before_the_queue_rule),
		cmocka_unit_test(audited_uids_are_audited_in_the_kernel_just_before_the_queue_rule),
		cmocka_unit_test(a_refused_uid_goes_in_with_its_counter_and_out_in_steps),
		cmocka_unit_test(the_kernels_counter_objects_give_each_uid_its_exact_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
