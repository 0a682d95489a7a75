/*
 * nftmodel.h — a test-only model of the nf_tables datapath the fence runs in,
 * shared by tests/unit/test_fence_passes.c and tests/fuzz/fuzz_fence_passes.c.
 *
 * It reads the batch ruleset_build() made (parsed back with libnftnl and
 * libmnl, no kernel, no root), and runs a model packet through every base
 * chain of its hooks in priority order, with the kernel's semantics for the
 * expressions the fence uses (net/netfilter/nft_*.c): payload, meta and ct
 * loads (meta skuid/skgid without a full socket that has a file, and any ct
 * key but state without a conntrack entry, BREAK the rule; ct state yields
 * the invalid or untracked bit), cmp (memcmp, as the kernel does), bitwise,
 * lookup, objref through an object map of counters (a key not in the map
 * BREAKs the rule; counting is a no-op), immediate data and verdicts
 * (accept, drop, jump, goto, return, continue), counter (a no-op), log (counted),
 * meta mark set, ct mark set (a no-op
 * without conntrack), fib daddr type, reject (final), the native queue
 * expression and the xt NFQUEUE target (queued: the model daemon answers),
 * and redir in output nat chains (bound once per flow, as nf_nat does). A
 * queued packet answered NF_REPEAT runs the same base chain again
 * (nf_reinject); NF_ACCEPT goes on with the next hook entry.
 *
 * Named counter objects are kept by name, as the kernel keeps them: an
 * element may name only one that exists, and one an element names cannot
 * be deleted (EBUSY).
 *
 * Anything it does not know — an expression, a key, an attribute, a hook,
 * a set flag, a rule position — is an error (rs->err), never a guess, so a
 * future rule cannot slip past the model. It never touches the kernel.
 */
#ifndef NFTMODEL_H
#define NFTMODEL_H

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
#include <netinet/in.h>

#define NM_FN			static __attribute__((unused))
#define NM_CHAINS_MAX		16
#define NM_RULES_MAX		64	/* per chain; the fence has 18 */
#define NM_RULEPOOL_MAX		256
#define NM_EXPRS_MAX		24	/* per rule; the longest has 19 */
#define NM_SETS_MAX		8
#define NM_ELEMS_MAX		64	/* per set; the tests put a few uids in */
#define NM_KEY_MAX		16
#define NM_OBJS_MAX		8	/* named counter objects; the tests add one or two */
#define NM_OBJNAME_MAX		32	/* "refused_" and a uid */
#define NM_ERR_MAX		512
#define NM_NAME_MAX		NFT_NAME_MAXLEN
#define NM_REGS32		20	/* struct nft_regs: verdict + 4 x 16 bytes */
#define NM_JUMP_STACK		16	/* NFT_JUMP_STACK_SIZE */
#define NM_STEPS_MAX		4096	/* rules evaluated per packet: a model bug guard */
#define NM_QUEUE_VISITS_MAX	8	/* past two passes it is a loop; stop well after */
#define NM_PKT_MAX		160
#define NM_TRACE_MAX		1024
#define NM_ENTRIES_MAX		(NM_CHAINS_MAX + 1)
#define NM_PRIO_CONNTRACK	(-200)	/* NF_IP_PRI_CONNTRACK: chains after it see the ct */
#define NM_PRIO_NAT_DST		(-100)	/* NF_IP_PRI_NAT_DST: where output nat chains run */

/* One compiled expression. */
enum nm_op {
	NM_PAYLOAD, NM_META, NM_META_SET, NM_CT, NM_CT_SET, NM_CMP, NM_BITWISE,
	NM_LOOKUP, NM_IMM_DATA, NM_VERDICT, NM_NOP, NM_LOG, NM_FIB, NM_REJECT_EXPR, NM_QUEUE,
	NM_REDIR, NM_OBJREF,
};

struct nm_expr {
	enum nm_op	 op;
	uint32_t	 key, base, offset, len, cmp_op;
	int		 dreg, sreg;	/* u32 indexes into the registers */
	uint8_t		 data[NM_KEY_MAX], mask[NM_KEY_MAX], xor[NM_KEY_MAX];
	int		 verdict;
	char		 chain[NM_NAME_MAX];
	int		 target;	/* chain index, resolved at the end */
	int		 set;
	bool		 invert;
	bool		 bypass;
};

struct nm_rule {
	struct nm_expr	 e[NM_EXPRS_MAX];
	size_t		 n;
	char		 comment[128];
};

struct nm_chain {
	char		 name[NM_NAME_MAX];
	bool		 base;
	char		 type[16];	/* filter, nat, route */
	uint32_t	 hook;
	int32_t		 prio;
	uint32_t	 policy;
	int		 rule[NM_RULES_MAX];	/* into the rule pool, in order */
	size_t		 nrules;
};

struct nm_set {
	char		 name[NM_NAME_MAX];
	uint32_t	 id;
	uint32_t	 klen;
	bool		 objmap;	/* each key to a counter object (NFT_SET_OBJECT) */
	size_t		 n;
	uint8_t		 keys[NM_ELEMS_MAX][NM_KEY_MAX];
	char		 obj[NM_ELEMS_MAX][NM_OBJNAME_MAX];	/* objmap: each key's */
};

struct nm_ruleset {
	char		 table[NM_NAME_MAX];
	struct nm_chain	 chains[NM_CHAINS_MAX];
	size_t		 nchains;
	struct nm_set	 sets[NM_SETS_MAX];
	size_t		 nsets;
	char		 objs[NM_OBJS_MAX][NM_OBJNAME_MAX];	/* counter objects */
	size_t		 nobjs;
	struct nm_rule	 pool[NM_RULEPOOL_MAX];
	size_t		 npool;
	char		 err[NM_ERR_MAX];
	/* what the expressions met so far (coverage, for the report) */
	unsigned long	 used[NM_OBJREF + 1];
};

/* The conntrack side of a packet. */
enum nm_ct_kind { NM_CT_NONE, NM_CT_UNTRACKED, NM_CT_ENTRY };
/* A flow's destination NAT: none, an admin's DNAT to the remote mx, our own redirect (to trap_port: the trap, or the MTA). */
enum nm_nat { NM_NAT_NONE, NM_NAT_ADMIN, NM_NAT_TRAP };

struct nm_packet {
	uint8_t		 buf[NM_PKT_MAX];	/* from the IP header on */
	size_t		 len, thoff;
	int		 family;		/* AF_INET, AF_INET6 */
	uint8_t		 l4proto;
	bool		 outbound;		/* locally generated (output path) */
	uint32_t	 mark;
	bool		 sock;			/* a full socket with a file: skuid works */
	uint32_t	 uid, gid;
	enum nm_ct_kind	 ct;
	uint8_t		 ctinfo;		/* IP_CT_* with an entry */
	uint32_t	 ctmark, ctstatus;
	enum nm_nat	 nat;		/* bound (nat_done) or, for a new flow, the admin's rule */
	bool		 nat_done;	/* the flow's NAT is bound already */
	bool		 admin_nat_first;	/* the admin's nat chain runs before ours */
	uint16_t	 trap_port;	/* where a trap binding sends it */
};

enum nm_final { NM_ACCEPT, NM_DROP, NM_REJECT, NM_LOOP, NM_ERROR };

/* The daemon's answer to a queued packet. */
enum nm_answer { NM_ANS_ACCEPT, NM_ANS_REPEAT, NM_ANS_DROP, NM_ANS_NOLISTENER };
typedef enum nm_answer (*nm_daemon_fn)(void *arg, const struct nm_packet *, unsigned int visit,
    uint32_t *mark);

struct nm_result {
	enum nm_final	 final;
	unsigned int	 queued;	/* times the packet went to the queue */
	unsigned int	 answered;	/* times the daemon decided it */
	unsigned int	 logged;	/* copies sent to nfnetlink_log */
	bool		 redirected;
	char		 trace[NM_TRACE_MAX];
};

static inline const char *
nm_final_name(enum nm_final f)
{
	static const char *const names[] = { "accept", "drop", "reject", "loop", "error" };

	return names[f];
}

static void __attribute__((format(printf, 2, 3)))
nm_fail(struct nm_ruleset *rs, const char *fmt, ...)
{
	va_list ap;

	if (rs->err[0] != '\0')
		return;	/* the first error is the one to read */
	va_start(ap, fmt);
	vsnprintf(rs->err, sizeof(rs->err), fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 2, 3)))
nm_trace(struct nm_result *r, const char *fmt, ...)
{
	size_t n = strlen(r->trace);
	va_list ap;

	if (n + 1 >= sizeof(r->trace))
		return;
	va_start(ap, fmt);
	vsnprintf(r->trace + n, sizeof(r->trace) - n, fmt, ap);
	va_end(ap);
}

/* ---- the ruleset, from the batch ---- */

static int
nm_chain_find(const struct nm_ruleset *rs, const char *name)
{
	for (size_t i = 0; i < rs->nchains; i++)
		if (strcmp(rs->chains[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int
nm_set_find(const struct nm_ruleset *rs, const char *name, uint32_t id)
{
	for (size_t i = 0; i < rs->nsets; i++)
		if (name != NULL && strcmp(rs->sets[i].name, name) == 0)
			return (int)i;
	for (size_t i = 0; i < rs->nsets; i++)
		if (id != 0 && rs->sets[i].id == id)
			return (int)i;
	return -1;
}

static int
nm_obj_find(const struct nm_ruleset *rs, const char *name)
{
	for (size_t i = 0; i < rs->nobjs; i++)
		if (strcmp(rs->objs[i], name) == 0)
			return (int)i;
	return -1;
}

/* nft_parse_register(): NFT_REG_1..4 are 16-byte registers, NFT_REG32_00.. 4-byte ones. */
static int
nm_reg(struct nm_ruleset *rs, uint32_t reg, uint32_t len)
{
	int idx;

	if (reg >= NFT_REG_1 && reg <= NFT_REG_4)
		idx = (int)(reg * 4);
	else if (reg >= NFT_REG32_00 && reg <= NFT_REG32_15)
		idx = (int)(reg - NFT_REG32_00) + 4;
	else {
		nm_fail(rs, "register %u is not a data register", reg);
		return -1;
	}
	if (len == 0 || len > NM_KEY_MAX || idx + (int)((len + 3) / 4) > NM_REGS32) {
		nm_fail(rs, "register %u cannot hold %u bytes", reg, len);
		return -1;
	}
	return idx;
}

/* Every attribute an expression has must be one the model reads. */
static bool
nm_attrs_known(struct nm_ruleset *rs, const struct nftnl_expr *e, const char *name,
    uint32_t known)
{
	for (uint16_t a = NFTNL_EXPR_BASE; a < NFTNL_EXPR_BASE + 24; a++)
		if (nftnl_expr_is_set(e, a) && !(known & (1u << (a - NFTNL_EXPR_BASE)))) {
			nm_fail(rs, "expression %s: attribute %u is not modeled", name,
			    a - NFTNL_EXPR_BASE);
			return false;
		}
	return true;
}

#define NM_A(x)		(1u << ((x) - NFTNL_EXPR_BASE))

static void
nm_copy_data(struct nm_ruleset *rs, const struct nftnl_expr *e, uint16_t attr, uint8_t *out,
    uint32_t *lenp)
{
	uint32_t len = 0;
	const void *d = nftnl_expr_get(e, attr, &len);

	memset(out, 0, NM_KEY_MAX);
	if (d == NULL || len == 0 || len > NM_KEY_MAX) {
		nm_fail(rs, "expression data of %u bytes is not modeled", len);
		return;
	}
	memcpy(out, d, len);
	if (lenp != NULL)
		*lenp = len;
}

static uint32_t
nm_u32(const struct nftnl_expr *e, uint16_t a)
{
	return nftnl_expr_is_set(e, a) ? nftnl_expr_get_u32(e, a) : 0;
}

static int
nm_compile(struct nm_ruleset *rs, struct nftnl_expr *e, void *arg)
{
	struct nm_rule *r = arg;
	const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
	struct nm_expr *x;
	uint32_t len = 0;

	if (r->n == NM_EXPRS_MAX) {
		nm_fail(rs, "rule with more than %d expressions", NM_EXPRS_MAX);
		return -1;
	}
	x = &r->e[r->n++];
	memset(x, 0, sizeof(*x));
	x->dreg = x->sreg = x->set = x->target = -1;
	if (strcmp(name, "payload") == 0) {
		if (!nm_attrs_known(rs, e, name, NM_A(NFTNL_EXPR_PAYLOAD_DREG) |
		    NM_A(NFTNL_EXPR_PAYLOAD_BASE) | NM_A(NFTNL_EXPR_PAYLOAD_OFFSET) |
		    NM_A(NFTNL_EXPR_PAYLOAD_LEN)))
			return -1;
		x->op = NM_PAYLOAD;
		x->base = nm_u32(e, NFTNL_EXPR_PAYLOAD_BASE);
		x->offset = nm_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET);
		x->len = nm_u32(e, NFTNL_EXPR_PAYLOAD_LEN);
		x->dreg = nm_reg(rs, nm_u32(e, NFTNL_EXPR_PAYLOAD_DREG), x->len);
		if (x->base != NFT_PAYLOAD_NETWORK_HEADER &&
		    x->base != NFT_PAYLOAD_TRANSPORT_HEADER && x->base != NFT_PAYLOAD_LL_HEADER &&
		    x->base != NFT_PAYLOAD_INNER_HEADER)
			nm_fail(rs, "payload base %u is not modeled", x->base);
	} else if (strcmp(name, "meta") == 0 || strcmp(name, "ct") == 0) {
		bool ct = name[0] == 'c';
		uint16_t dreg = ct ? NFTNL_EXPR_CT_DREG : NFTNL_EXPR_META_DREG;
		uint16_t sreg = ct ? NFTNL_EXPR_CT_SREG : NFTNL_EXPR_META_SREG;
		uint16_t key = ct ? NFTNL_EXPR_CT_KEY : NFTNL_EXPR_META_KEY;

		/* ct DIR (ct original saddr ...) is not set: it is not modeled. */
		if (!nm_attrs_known(rs, e, name, NM_A(dreg) | NM_A(sreg) | NM_A(key)))
			return -1;
		x->key = nm_u32(e, key);
		if (nftnl_expr_is_set(e, dreg) == nftnl_expr_is_set(e, sreg)) {
			nm_fail(rs, "%s needs exactly one of dreg and sreg", name);
			return -1;
		}
		if (nftnl_expr_is_set(e, dreg)) {
			x->op = ct ? NM_CT : NM_META;
			x->dreg = nm_reg(rs, nm_u32(e, dreg), 4);
			if (ct ? x->key != NFT_CT_STATE && x->key != NFT_CT_DIRECTION &&
			    x->key != NFT_CT_STATUS && x->key != NFT_CT_MARK :
			    x->key != NFT_META_MARK && x->key != NFT_META_SKUID &&
			    x->key != NFT_META_SKGID && x->key != NFT_META_L4PROTO &&
			    x->key != NFT_META_NFPROTO && x->key != NFT_META_LEN)
				nm_fail(rs, "%s key %u is not modeled", name, x->key);
		} else {
			x->op = ct ? NM_CT_SET : NM_META_SET;
			x->sreg = nm_reg(rs, nm_u32(e, sreg), 4);
			if (x->key != (ct ? (uint32_t)NFT_CT_MARK : (uint32_t)NFT_META_MARK))
				nm_fail(rs, "%s set key %u is not modeled", name, x->key);
		}
	} else if (strcmp(name, "cmp") == 0) {
		if (!nm_attrs_known(rs, e, name, NM_A(NFTNL_EXPR_CMP_SREG) |
		    NM_A(NFTNL_EXPR_CMP_OP) | NM_A(NFTNL_EXPR_CMP_DATA)))
			return -1;
		x->op = NM_CMP;
		x->cmp_op = nm_u32(e, NFTNL_EXPR_CMP_OP);
		nm_copy_data(rs, e, NFTNL_EXPR_CMP_DATA, x->data, &x->len);
		x->sreg = nm_reg(rs, nm_u32(e, NFTNL_EXPR_CMP_SREG), x->len);
		if (x->cmp_op > NFT_CMP_GTE)
			nm_fail(rs, "cmp op %u is not modeled", x->cmp_op);
	} else if (strcmp(name, "bitwise") == 0) {
		if (!nm_attrs_known(rs, e, name, NM_A(NFTNL_EXPR_BITWISE_SREG) |
		    NM_A(NFTNL_EXPR_BITWISE_DREG) | NM_A(NFTNL_EXPR_BITWISE_LEN) |
		    NM_A(NFTNL_EXPR_BITWISE_MASK) | NM_A(NFTNL_EXPR_BITWISE_XOR) |
		    NM_A(NFTNL_EXPR_BITWISE_OP)))
			return -1;
		if (nm_u32(e, NFTNL_EXPR_BITWISE_OP) != NFT_BITWISE_BOOL) {
			nm_fail(rs, "bitwise shifts are not modeled");
			return -1;
		}
		x->op = NM_BITWISE;
		x->len = nm_u32(e, NFTNL_EXPR_BITWISE_LEN);
		nm_copy_data(rs, e, NFTNL_EXPR_BITWISE_MASK, x->mask, &len);
		if (len != x->len)
			nm_fail(rs, "bitwise mask of %u bytes for %u", len, x->len);
		nm_copy_data(rs, e, NFTNL_EXPR_BITWISE_XOR, x->xor, &len);
		if (len != x->len)
			nm_fail(rs, "bitwise xor of %u bytes for %u", len, x->len);
		x->sreg = nm_reg(rs, nm_u32(e, NFTNL_EXPR_BITWISE_SREG), x->len);
		x->dreg = nm_reg(rs, nm_u32(e, NFTNL_EXPR_BITWISE_DREG), x->len);
	} else if (strcmp(name, "lookup") == 0) {
		/* No DREG: a map is not modeled. */
		if (!nm_attrs_known(rs, e, name, NM_A(NFTNL_EXPR_LOOKUP_SREG) |
		    NM_A(NFTNL_EXPR_LOOKUP_SET) | NM_A(NFTNL_EXPR_LOOKUP_SET_ID) |
		    NM_A(NFTNL_EXPR_LOOKUP_FLAGS)))
			return -1;
		x->op = NM_LOOKUP;
		x->set = nm_set_find(rs, nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_SET) ?
		    nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET) : NULL,
		    nm_u32(e, NFTNL_EXPR_LOOKUP_SET_ID));
		if (x->set < 0) {
			nm_fail(rs, "lookup in a set that does not exist");
			return -1;
		}
		x->invert = (nm_u32(e, NFTNL_EXPR_LOOKUP_FLAGS) & NFT_LOOKUP_F_INV) != 0;
		if (nm_u32(e, NFTNL_EXPR_LOOKUP_FLAGS) & ~(uint32_t)NFT_LOOKUP_F_INV)
			nm_fail(rs, "lookup flags %#x", nm_u32(e, NFTNL_EXPR_LOOKUP_FLAGS));
		x->sreg = nm_reg(rs, nm_u32(e, NFTNL_EXPR_LOOKUP_SREG),
		    rs->sets[x->set].klen);
	} else if (strcmp(name, "objref") == 0) {
		/* Only through a map: an object named in the rule itself is not modeled. */
		if (!nm_attrs_known(rs, e, name, NM_A(NFTNL_EXPR_OBJREF_SET_SREG) |
		    NM_A(NFTNL_EXPR_OBJREF_SET_NAME) | NM_A(NFTNL_EXPR_OBJREF_SET_ID)))
			return -1;
		x->op = NM_OBJREF;
		x->set = nm_set_find(rs, nftnl_expr_is_set(e, NFTNL_EXPR_OBJREF_SET_NAME) ?
		    nftnl_expr_get_str(e, NFTNL_EXPR_OBJREF_SET_NAME) : NULL,
		    nm_u32(e, NFTNL_EXPR_OBJREF_SET_ID));
		if (x->set < 0 || !rs->sets[x->set].objmap) {
			nm_fail(rs, "objref through a set that is no object map");
			return -1;
		}
		x->sreg = nm_reg(rs, nm_u32(e, NFTNL_EXPR_OBJREF_SET_SREG),
		    rs->sets[x->set].klen);
	} else if (strcmp(name, "immediate") == 0) {
		if (!nm_attrs_known(rs, e, name, NM_A(NFTNL_EXPR_IMM_DREG) |
		    NM_A(NFTNL_EXPR_IMM_DATA) | NM_A(NFTNL_EXPR_IMM_VERDICT) |
		    NM_A(NFTNL_EXPR_IMM_CHAIN)))
			return -1;
		if (nm_u32(e, NFTNL_EXPR_IMM_DREG) == NFT_REG_VERDICT) {
			x->op = NM_VERDICT;
			x->verdict = (int)nm_u32(e, NFTNL_EXPR_IMM_VERDICT);
			if (nftnl_expr_is_set(e, NFTNL_EXPR_IMM_CHAIN))
				snprintf(x->chain, sizeof(x->chain), "%s",
				    nftnl_expr_get_str(e, NFTNL_EXPR_IMM_CHAIN));
			switch (x->verdict) {
			case NF_ACCEPT: case NF_DROP: case NFT_CONTINUE: case NFT_RETURN:
				break;
			case NFT_JUMP: case NFT_GOTO:
				if (x->chain[0] == '\0')
					nm_fail(rs, "jump without a chain name");
				break;
			default:
				nm_fail(rs, "verdict %d is not modeled", x->verdict);
			}
		} else {
			x->op = NM_IMM_DATA;
			nm_copy_data(rs, e, NFTNL_EXPR_IMM_DATA, x->data, &x->len);
			x->dreg = nm_reg(rs, nm_u32(e, NFTNL_EXPR_IMM_DREG), x->len);
		}
	} else if (strcmp(name, "counter") == 0) {
		x->op = NM_NOP;
	} else if (strcmp(name, "log") == 0) {
		x->op = NM_LOG;	/* a copy to nfnetlink_log: counted, the packet goes on */
	} else if (strcmp(name, "fib") == 0) {
		if (!nm_attrs_known(rs, e, name, NM_A(NFTNL_EXPR_FIB_DREG) |
		    NM_A(NFTNL_EXPR_FIB_RESULT) | NM_A(NFTNL_EXPR_FIB_FLAGS)))
			return -1;
		x->op = NM_FIB;
		if (nm_u32(e, NFTNL_EXPR_FIB_RESULT) != NFT_FIB_RESULT_ADDRTYPE ||
		    nm_u32(e, NFTNL_EXPR_FIB_FLAGS) != NFTA_FIB_F_DADDR)
			nm_fail(rs, "fib other than daddr type is not modeled");
		x->dreg = nm_reg(rs, nm_u32(e, NFTNL_EXPR_FIB_DREG), 4);
	} else if (strcmp(name, "reject") == 0) {
		if (!nm_attrs_known(rs, e, name, NM_A(NFTNL_EXPR_REJECT_TYPE) |
		    NM_A(NFTNL_EXPR_REJECT_CODE)))
			return -1;
		x->op = NM_REJECT_EXPR;
	} else if (strcmp(name, "queue") == 0) {
		/* No SREG_QNUM: a queue number from a register is not modeled. */
		if (!nm_attrs_known(rs, e, name, NM_A(NFTNL_EXPR_QUEUE_NUM) |
		    NM_A(NFTNL_EXPR_QUEUE_TOTAL) | NM_A(NFTNL_EXPR_QUEUE_FLAGS)))
			return -1;
		x->op = NM_QUEUE;
		x->bypass = (nm_u32(e, NFTNL_EXPR_QUEUE_FLAGS) & NFT_QUEUE_FLAG_BYPASS) != 0;
	} else if (strcmp(name, "target") == 0) {
		const struct xt_NFQ_info_v3 *info;

		if (!nm_attrs_known(rs, e, name, NM_A(NFTNL_EXPR_TG_NAME) |
		    NM_A(NFTNL_EXPR_TG_REV) | NM_A(NFTNL_EXPR_TG_INFO)))
			return -1;
		info = nftnl_expr_get(e, NFTNL_EXPR_TG_INFO, &len);
		if (strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_TG_NAME), "NFQUEUE") != 0 ||
		    nm_u32(e, NFTNL_EXPR_TG_REV) != 3 || info == NULL ||
		    len != sizeof(*info)) {
			nm_fail(rs, "xt target %s rev %u is not modeled",
			    nftnl_expr_get_str(e, NFTNL_EXPR_TG_NAME),
			    nm_u32(e, NFTNL_EXPR_TG_REV));
			return -1;
		}
		x->op = NM_QUEUE;
		x->bypass = (info->flags & NFQ_FLAG_BYPASS) != 0;
	} else if (strcmp(name, "redir") == 0) {
		if (!nm_attrs_known(rs, e, name, NM_A(NFTNL_EXPR_REDIR_REG_PROTO_MIN) |
		    NM_A(NFTNL_EXPR_REDIR_REG_PROTO_MAX) | NM_A(NFTNL_EXPR_REDIR_FLAGS)))
			return -1;
		x->op = NM_REDIR;
		x->sreg = nm_reg(rs, nm_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN), 2);
		if (nftnl_expr_is_set(e, NFTNL_EXPR_REDIR_REG_PROTO_MAX) &&
		    nm_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MAX) !=
		    nm_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN))
			nm_fail(rs, "redir to a port range is not modeled");
	} else {
		nm_fail(rs, "expression '%s' is not modeled", name);
		return -1;
	}
	return rs->err[0] != '\0' ? -1 : 0;
}

struct nm_compile_arg {
	struct nm_ruleset	*rs;
	struct nm_rule		*r;
};

static int
nm_compile_cb(struct nftnl_expr *e, void *arg)
{
	struct nm_compile_arg *a = arg;

	return nm_compile(a->rs, e, a->r) < 0 ? -1 : 0;
}

static void
nm_comment(const struct nftnl_rule *r, char *out, size_t len)
{
	const struct nftnl_udata *attr;
	const void *ud;
	uint32_t udlen = 0;

	out[0] = '\0';
	if ((ud = nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &udlen)) == NULL)
		return;
	nftnl_udata_for_each_data(ud, udlen, attr)
		if (nftnl_udata_type(attr) == NFTNL_UDATA_RULE_COMMENT)
			snprintf(out, len, "%s", (const char *)nftnl_udata_get(attr));
}

static int
nm_new_rule(struct nm_ruleset *rs, const struct nlmsghdr *nlh)
{
	struct nftnl_rule *r;
	struct nm_compile_arg a = { rs, NULL };
	struct nm_chain *c;
	int ci, rc = -1;

	if ((r = nftnl_rule_alloc()) == NULL || nftnl_rule_nlmsg_parse(nlh, r) < 0) {
		nm_fail(rs, "rule message does not parse");
		goto out;
	}
	if (nftnl_rule_get_u32(r, NFTNL_RULE_FAMILY) != NFPROTO_INET ||
	    strcmp(nftnl_rule_get_str(r, NFTNL_RULE_TABLE), rs->table) != 0) {
		nm_fail(rs, "rule outside table inet %s", rs->table);
		goto out;
	}
	if (nftnl_rule_is_set(r, NFTNL_RULE_POSITION) ||
	    nftnl_rule_is_set(r, NFTNL_RULE_POSITION_ID) || nftnl_rule_is_set(r, NFTNL_RULE_HANDLE)) {
		nm_fail(rs, "rule positions and handles are not modeled");
		goto out;
	}
	if ((ci = nm_chain_find(rs, nftnl_rule_get_str(r, NFTNL_RULE_CHAIN))) < 0) {
		nm_fail(rs, "rule in unknown chain %s", nftnl_rule_get_str(r, NFTNL_RULE_CHAIN));
		goto out;
	}
	c = &rs->chains[ci];
	if (rs->npool == NM_RULEPOOL_MAX || c->nrules == NM_RULES_MAX) {
		nm_fail(rs, "more rules than the model holds");
		goto out;
	}
	a.r = &rs->pool[rs->npool];
	memset(a.r, 0, sizeof(*a.r));
	nm_comment(r, a.r->comment, sizeof(a.r->comment));
	if (nftnl_expr_foreach(r, nm_compile_cb, &a) < 0) {
		if (rs->err[0] == '\0')
			nm_fail(rs, "rule could not be walked");
		nm_fail(rs, "(chain %s)", c->name);
		goto out;
	}
	if (rs->err[0] != '\0')
		goto out;
	/* Without NLM_F_APPEND the kernel puts a new rule first. */
	if (nlh->nlmsg_flags & NLM_F_APPEND)
		c->rule[c->nrules++] = (int)rs->npool++;
	else {
		memmove(&c->rule[1], &c->rule[0], c->nrules * sizeof(c->rule[0]));
		c->rule[0] = (int)rs->npool++;
		c->nrules++;
	}
	rc = 0;
out:
	if (r != NULL)
		nftnl_rule_free(r);
	return rc;
}

static int
nm_new_chain(struct nm_ruleset *rs, const struct nlmsghdr *nlh)
{
	struct nftnl_chain *c;
	struct nm_chain *m;
	int rc = -1;

	if ((c = nftnl_chain_alloc()) == NULL || nftnl_chain_nlmsg_parse(nlh, c) < 0) {
		nm_fail(rs, "chain message does not parse");
		goto out;
	}
	if (rs->nchains == NM_CHAINS_MAX ||
	    nm_chain_find(rs, nftnl_chain_get_str(c, NFTNL_CHAIN_NAME)) >= 0) {
		nm_fail(rs, "chain %s: too many or twice", nftnl_chain_get_str(c, NFTNL_CHAIN_NAME));
		goto out;
	}
	m = &rs->chains[rs->nchains++];
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", nftnl_chain_get_str(c, NFTNL_CHAIN_NAME));
	m->policy = NF_ACCEPT;
	if (nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM)) {
		m->base = true;
		m->hook = nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM);
		m->prio = nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO);
		snprintf(m->type, sizeof(m->type), "%s",
		    nftnl_chain_is_set(c, NFTNL_CHAIN_TYPE) ?
		    nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE) : "filter");
		if (nftnl_chain_is_set(c, NFTNL_CHAIN_POLICY))
			m->policy = nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY);
		if (m->hook != NF_INET_LOCAL_OUT && m->hook != NF_INET_POST_ROUTING &&
		    m->hook != NF_INET_PRE_ROUTING && m->hook != NF_INET_LOCAL_IN) {
			nm_fail(rs, "chain %s: hook %u is not modeled", m->name, m->hook);
			goto out;
		}
		if (strcmp(m->type, "nat") == 0 ? m->hook != NF_INET_LOCAL_OUT :
		    strcmp(m->type, "filter") != 0 && strcmp(m->type, "route") != 0) {
			nm_fail(rs, "chain %s: type %s on hook %u is not modeled", m->name,
			    m->type, m->hook);
			goto out;
		}
		/* Before conntrack (raw) a packet has no ct yet: not modeled. */
		if (m->prio <= NM_PRIO_CONNTRACK) {
			nm_fail(rs, "chain %s: priority %d before conntrack is not modeled",
			    m->name, m->prio);
			goto out;
		}
		if (m->policy != NF_ACCEPT && m->policy != NF_DROP) {
			nm_fail(rs, "chain %s: policy %u", m->name, m->policy);
			goto out;
		}
	}
	rc = 0;
out:
	if (c != NULL)
		nftnl_chain_free(c);
	return rc;
}

static int
nm_new_set(struct nm_ruleset *rs, const struct nlmsghdr *nlh)
{
	struct nftnl_set *s;
	struct nm_set *m;
	int rc = -1;

	if ((s = nftnl_set_alloc()) == NULL || nftnl_set_nlmsg_parse(nlh, s) < 0) {
		nm_fail(rs, "set message does not parse");
		goto out;
	}
	if (rs->nsets == NM_SETS_MAX) {
		nm_fail(rs, "too many sets");
		goto out;
	}
	/*
	 * Only sets of exact keys, and maps of exact keys to counter objects:
	 * intervals, data maps, concatenations are not modeled. A timeout is
	 * taken and never strikes: the model has no clock, and an element
	 * leaves only when it is deleted.
	 */
	if ((nftnl_set_is_set(s, NFTNL_SET_FLAGS) &&
	    (nftnl_set_get_u32(s, NFTNL_SET_FLAGS) & ~(uint32_t)(NFT_SET_CONSTANT |
	    NFT_SET_ANONYMOUS | NFT_SET_TIMEOUT | NFT_SET_OBJECT))) ||
	    nftnl_set_is_set(s, NFTNL_SET_DATA_TYPE) ||
	    (nftnl_set_is_set(s, NFTNL_SET_FLAGS) &&
	    (nftnl_set_get_u32(s, NFTNL_SET_FLAGS) & NFT_SET_OBJECT) &&
	    nftnl_set_get_u32(s, NFTNL_SET_OBJ_TYPE) != NFT_OBJECT_COUNTER) ||
	    nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN) == 0 ||
	    nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN) > NM_KEY_MAX) {
		nm_fail(rs, "set %s: flags or key not modeled", nftnl_set_get_str(s, NFTNL_SET_NAME));
		goto out;
	}
	m = &rs->sets[rs->nsets++];
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", nftnl_set_get_str(s, NFTNL_SET_NAME));
	if (nftnl_set_is_set(s, NFTNL_SET_ID))
		m->id = nftnl_set_get_u32(s, NFTNL_SET_ID);
	m->klen = nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN);
	m->objmap = nftnl_set_is_set(s, NFTNL_SET_FLAGS) &&
	    (nftnl_set_get_u32(s, NFTNL_SET_FLAGS) & NFT_SET_OBJECT) != 0;
	rc = 0;
out:
	if (s != NULL)
		nftnl_set_free(s);
	return rc;
}

/*
 * Walked with libmnl: libnftnl 1.2.4's nftnl_set_elems_nlmsg_parse() refuses
 * a message with more than one element (see test_ruleset.c).
 */
static int
nm_set_elems(struct nm_ruleset *rs, const struct nlmsghdr *nlh, bool add)
{
	const struct nlattr *a, *elem, *k, *v;
	const char *name = NULL;
	uint32_t id = 0;
	bool listed;
	int si;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) == NFTA_SET_ELEM_LIST_SET)
			name = mnl_attr_get_str(a);
		else if (mnl_attr_get_type(a) == NFTA_SET_ELEM_LIST_SET_ID)
			id = ntohl(mnl_attr_get_u32(a));
	}
	if ((si = nm_set_find(rs, name, id)) < 0) {
		nm_fail(rs, "elements for an unknown set");
		return -1;
	}
	/* A deletion with no element list flushes the set (nf_tables_delsetelem). */
	listed = false;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
		listed |= mnl_attr_get_type(a) == NFTA_SET_ELEM_LIST_ELEMENTS;
	if (!add && !listed) {
		rs->sets[si].n = 0;
		return 0;
	}
	/* A deletion with no element list flushes the set (nf_tables_delsetelem). */
	listed = false;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
		listed |= mnl_attr_get_type(a) == NFTA_SET_ELEM_LIST_ELEMENTS;
	if (!add && !listed) {
		rs->sets[si].n = 0;
		return 0;
	}
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		mnl_attr_for_each_nested(elem, a) {
			struct nm_set *s = &rs->sets[si];
			uint8_t key[NM_KEY_MAX] = { 0 };
			char obj[NM_OBJNAME_MAX] = "";
			bool keyed = false;
			size_t i;

			mnl_attr_for_each_nested(k, elem) {
				if (mnl_attr_get_type(k) == NFTA_SET_ELEM_TIMEOUT)
					continue;	/* no clock: see nm_new_set */
				if (mnl_attr_get_type(k) == NFTA_SET_ELEM_OBJREF && s->objmap) {
					if (mnl_attr_get_payload_len(k) >= sizeof(obj)) {
						nm_fail(rs, "set %s: object name too long",
						    s->name);
						return -1;
					}
					memcpy(obj, mnl_attr_get_payload(k),
					    mnl_attr_get_payload_len(k));
					continue;
				}
				if (mnl_attr_get_type(k) != NFTA_SET_ELEM_KEY) {
					nm_fail(rs, "set %s: element attribute %u is not modeled",
					    s->name, mnl_attr_get_type(k));
					return -1;
				}
				v = mnl_attr_get_payload(k);
				if (mnl_attr_get_type(v) != NFTA_DATA_VALUE ||
				    mnl_attr_get_payload_len(v) != s->klen) {
					nm_fail(rs, "set %s: key of the wrong size", s->name);
					return -1;
				}
				memcpy(key, mnl_attr_get_payload(v), s->klen);
				keyed = true;
			}
			if (!keyed) {
				nm_fail(rs, "set %s: an element without a key", s->name);
				return -1;
			}
			/* The kernel: an object map's new element names an object that exists. */
			if (add && s->objmap && nm_obj_find(rs, obj) < 0) {
				nm_fail(rs, "set %s: element for a missing object \"%s\"", s->name, obj);
				return -1;
			}
			for (i = 0; i < s->n && memcmp(s->keys[i], key, s->klen) != 0; i++)
				;
			if (add && i == s->n) {
				if (s->n == NM_ELEMS_MAX) {
					nm_fail(rs, "set %s: too many elements", s->name);
					return -1;
				}
				memcpy(s->obj[s->n], obj, sizeof(obj));
				memcpy(s->keys[s->n++], key, NM_KEY_MAX);
			} else if (!add && i < s->n) {
				--s->n;
				memmove(s->keys[i], s->keys[i + 1], (s->n - i) * NM_KEY_MAX);
				memmove(s->obj[i], s->obj[i + 1], (s->n - i) * NM_OBJNAME_MAX);
			}
		}
	}
	return 0;
}

/*
 * A counter object added or deleted. Deleting one an element still names
 * is what the kernel refuses (EBUSY): an error here too.
 */
static int
nm_obj(struct nm_ruleset *rs, const struct nlmsghdr *nlh, bool add)
{
	struct nftnl_obj *o;
	const char *name;
	int rc = -1, i;

	if ((o = nftnl_obj_alloc()) == NULL || nftnl_obj_nlmsg_parse(nlh, o) < 0) {
		nm_fail(rs, "object message does not parse");
		goto out;
	}
	name = nftnl_obj_get_str(o, NFTNL_OBJ_NAME);
	if (name == NULL || strlen(name) >= NM_OBJNAME_MAX ||
	    nftnl_obj_get_u32(o, NFTNL_OBJ_TYPE) != NFT_OBJECT_COUNTER) {
		nm_fail(rs, "object: type or name not modeled");
		goto out;
	}
	i = nm_obj_find(rs, name);
	if (add) {
		if (i >= 0 || rs->nobjs == NM_OBJS_MAX) {
			nm_fail(rs, "object %s: exists already, or too many", name);
			goto out;
		}
		snprintf(rs->objs[rs->nobjs++], NM_OBJNAME_MAX, "%s", name);
	} else {
		if (i < 0) {
			nm_fail(rs, "object %s: deleted but absent", name);
			goto out;
		}
		for (size_t si = 0; si < rs->nsets; si++)
			for (size_t e = 0; e < rs->sets[si].n; e++)
				if (strcmp(rs->sets[si].obj[e], name) == 0) {
					nm_fail(rs, "object %s: deleted while an element names it", name);
					goto out;
				}
		rs->nobjs--;
		memmove(rs->objs[i], rs->objs[i + 1], (rs->nobjs - (size_t)i) * NM_OBJNAME_MAX);
	}
	rc = 0;
out:
	if (o != NULL)
		nftnl_obj_free(o);
	return rc;
}

static int
nm_table(struct nm_ruleset *rs, const struct nlmsghdr *nlh, bool add)
{
	struct nftnl_table *t;
	int rc = -1;

	if ((t = nftnl_table_alloc()) == NULL || nftnl_table_nlmsg_parse(nlh, t) < 0) {
		nm_fail(rs, "table message does not parse");
		goto out;
	}
	if (nftnl_table_get_u32(t, NFTNL_TABLE_FAMILY) != NFPROTO_INET ||
	    (nftnl_table_is_set(t, NFTNL_TABLE_FLAGS) &&
	    nftnl_table_get_u32(t, NFTNL_TABLE_FLAGS) != 0)) {
		nm_fail(rs, "table: family or flags not modeled");
		goto out;
	}
	if (rs->table[0] != '\0' && strcmp(rs->table, nftnl_table_get_str(t, NFTNL_TABLE_NAME)))
		nm_fail(rs, "a second table %s", nftnl_table_get_str(t, NFTNL_TABLE_NAME));
	snprintf(rs->table, sizeof(rs->table), "%s", nftnl_table_get_str(t, NFTNL_TABLE_NAME));
	if (!add) {
		/* delete table: everything in it goes; the name stays for the next add */
		rs->nchains = rs->nsets = rs->npool = 0;
	}
	rc = rs->err[0] != '\0' ? -1 : 0;
out:
	if (t != NULL)
		nftnl_table_free(t);
	return rc;
}

static int
nm_resolve(struct nm_ruleset *rs)
{
	for (size_t i = 0; i < rs->npool; i++)
		for (size_t k = 0; k < rs->pool[i].n; k++) {
			struct nm_expr *x = &rs->pool[i].e[k];

			if (x->op != NM_VERDICT || x->chain[0] == '\0')
				continue;
			if ((x->target = nm_chain_find(rs, x->chain)) < 0 ||
			    rs->chains[x->target].base) {
				nm_fail(rs, "jump to %s: no such regular chain", x->chain);
				return -1;
			}
		}
	return 0;
}

/* The whole batch (BEGIN ... END), message by message, as the kernel would commit it. */
NM_FN int
nm_load(struct nm_ruleset *rs, const void *data, size_t len)
{
	const struct nlmsghdr *nlh = data;
	int remain = (int)len;

	memset(rs, 0, sizeof(*rs));
	for (; mnl_nlmsg_ok(nlh, remain); nlh = mnl_nlmsg_next(nlh, &remain)) {
		int rc = 0;

		if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_NFTABLES) {
			if (nlh->nlmsg_type != NFNL_MSG_BATCH_BEGIN &&
			    nlh->nlmsg_type != NFNL_MSG_BATCH_END) {
				nm_fail(rs, "message type %#x", nlh->nlmsg_type);
				return -1;
			}
			continue;
		}
		switch (NFNL_MSG_TYPE(nlh->nlmsg_type)) {
		case NFT_MSG_NEWTABLE:
			rc = nm_table(rs, nlh, true);
			break;
		case NFT_MSG_DELTABLE:
			rc = nm_table(rs, nlh, false);
			break;
		case NFT_MSG_NEWCHAIN:
			rc = nm_new_chain(rs, nlh);
			break;
		case NFT_MSG_NEWSET:
			rc = nm_new_set(rs, nlh);
			break;
		case NFT_MSG_NEWSETELEM:
		case NFT_MSG_DELSETELEM:
			rc = nm_set_elems(rs, nlh,
			    NFNL_MSG_TYPE(nlh->nlmsg_type) == NFT_MSG_NEWSETELEM);
			break;
		case NFT_MSG_NEWRULE:
			rc = nm_new_rule(rs, nlh);
			break;
		case NFT_MSG_NEWOBJ:
		case NFT_MSG_DELOBJ:
			rc = nm_obj(rs, nlh, NFNL_MSG_TYPE(nlh->nlmsg_type) == NFT_MSG_NEWOBJ);
			break;
		default:
			nm_fail(rs, "nf_tables message %u is not modeled",
			    NFNL_MSG_TYPE(nlh->nlmsg_type));
			rc = -1;
		}
		if (rc < 0)
			return -1;
	}
	if (remain != 0) {
		nm_fail(rs, "%d trailing bytes in the batch", remain);
		return -1;
	}
	return nm_resolve(rs);
}

NM_FN bool
nm_has_hook(const struct nm_ruleset *rs, uint32_t hook)
{
	for (size_t i = 0; i < rs->nchains; i++)
		if (rs->chains[i].base && rs->chains[i].hook == hook)
			return true;
	return false;
}

/* ---- packets ---- */

/* This host's addresses: loopback and its own public one (documentation ranges). */
static const uint8_t nm_host4[4] = { 192, 0, 2, 1 }, nm_mx4[4] = { 192, 0, 2, 25 };
static const uint8_t nm_host6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
static const uint8_t nm_mx6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 0x25 };
static const uint8_t nm_lo4[4] = { 127, 0, 0, 1 }, nm_lo6[16] = { [15] = 1 };

static uint8_t *
nm_daddr(struct nm_packet *p)
{
	return p->buf + (p->family == AF_INET ? 16 : 24);
}

static bool
nm_is_local(const struct nm_packet *p)
{
	const uint8_t *d = nm_daddr((struct nm_packet *)p);

	if (p->family == AF_INET)
		return d[0] == 127 || memcmp(d, nm_host4, 4) == 0;
	return memcmp(d, nm_lo6, 16) == 0 || memcmp(d, nm_host6, 16) == 0;
}

NM_FN uint16_t
nm_dport(const struct nm_packet *p)
{
	return (uint16_t)(p->buf[p->thoff + 2] << 8 | p->buf[p->thoff + 3]);
}

NM_FN bool
nm_local(const struct nm_packet *p)
{
	return nm_is_local(p);
}

static void
nm_set_dst(struct nm_packet *p, bool local_lo, uint16_t port)
{
	if (p->family == AF_INET)
		memcpy(nm_daddr(p), local_lo ? nm_lo4 : nm_mx4, 4);
	else
		memcpy(nm_daddr(p), local_lo ? nm_lo6 : nm_mx6, 16);
	if (port != 0) {
		p->buf[p->thoff + 2] = (uint8_t)(port >> 8);
		p->buf[p->thoff + 3] = (uint8_t)port;
	}
}

/*
 * A whole IPv4/IPv6 packet: TCP (with FLAGS and PAYLOAD bytes) or UDP, from
 * this host (outbound) or to it. Checksums are not modeled (nothing reads them).
 */
NM_FN void
nm_packet_init(struct nm_packet *p, int family, uint8_t l4proto, bool outbound, bool dst_local,
    uint16_t sport, uint16_t dport, uint8_t tcp_flags, size_t payload)
{
	size_t ih = family == AF_INET ? 20 : 40, th = l4proto == IPPROTO_TCP ? 20 : 8;
	uint8_t *b = p->buf, *t;
	const uint8_t *src, *dst;

	memset(p, 0, sizeof(*p));
	if (payload > NM_PKT_MAX - 60)
		payload = NM_PKT_MAX - 60;
	p->family = family;
	p->l4proto = l4proto;
	p->outbound = outbound;
	p->thoff = ih;
	p->len = ih + th + payload;
	if (family == AF_INET) {
		src = outbound ? nm_host4 : nm_mx4;
		dst = dst_local ? nm_host4 : nm_mx4;
		b[0] = 0x45;
		b[2] = (uint8_t)(p->len >> 8);
		b[3] = (uint8_t)p->len;
		b[8] = 64;
		b[9] = l4proto;
		memcpy(b + 12, src, 4);
		memcpy(b + 16, dst, 4);
	} else {
		src = outbound ? nm_host6 : nm_mx6;
		dst = dst_local ? nm_host6 : nm_mx6;
		b[0] = 0x60;
		b[4] = (uint8_t)((p->len - 40) >> 8);
		b[5] = (uint8_t)(p->len - 40);
		b[6] = l4proto;
		b[7] = 64;
		memcpy(b + 8, src, 16);
		memcpy(b + 24, dst, 16);
	}
	t = b + ih;
	t[0] = (uint8_t)(sport >> 8);
	t[1] = (uint8_t)sport;
	t[2] = (uint8_t)(dport >> 8);
	t[3] = (uint8_t)dport;
	if (l4proto == IPPROTO_TCP) {
		t[4] = 0x12;	/* some sequence number */
		t[12] = 5 << 4;
		t[13] = tcp_flags;
		t[15] = 0xff;
	} else {
		t[4] = (uint8_t)((th + payload) >> 8);
		t[5] = (uint8_t)(th + payload);
	}
	for (size_t i = 0; i < payload; i++)
		t[th + i] = (uint8_t)"EHLO x\r\n"[i % 8];
}

/* ---- evaluation ---- */

struct nm_regs {
	uint32_t	 d[NM_REGS32];
	uint32_t	 written;	/* words loaded in this rule */
};

static void
nm_store(struct nm_regs *g, int idx, const void *v, uint32_t len)
{
	/* As nft_reg_store8/16 and payload do: the last partial word is zeroed first. */
	if (len % 4)
		g->d[idx + len / 4] = 0;
	memcpy(&g->d[idx], v, len);
	for (uint32_t i = 0; i < (len + 3) / 4; i++)
		g->written |= 1u << (idx + i);
}

static bool
nm_loaded(struct nm_ruleset *rs, const struct nm_regs *g, int idx, uint32_t len,
    const char *chain)
{
	for (uint32_t i = 0; i < (len + 3) / 4; i++)
		if (!(g->written & (1u << (idx + i)))) {
			/* The kernel would read what an earlier rule left: a builder bug. */
			nm_fail(rs, "chain %s: a rule reads register word %d it never loaded",
			    chain, idx + (int)i);
			return false;
		}
	return true;
}

struct nm_run {
	struct nm_ruleset	*rs;
	struct nm_packet	*p;
	struct nm_result	*res;
	const struct nm_chain	*basechain;
	bool			 rejected;	/* the drop came from reject */
	bool			 bypass;	/* the queue verdict carries the bypass flag */
	unsigned int		 steps;
};

/* One expression; returns NFT_CONTINUE, NFT_BREAK or a verdict. */
static int
nm_eval(struct nm_run *run, const struct nm_expr *x, struct nm_regs *g, const char *chain,
    const struct nm_expr **jump)
{
	struct nm_ruleset *rs = run->rs;
	struct nm_packet *p = run->p;
	uint32_t v32 = 0;
	uint8_t v8;

	rs->used[x->op]++;
	switch (x->op) {
	case NM_PAYLOAD: {
		size_t off = x->offset;

		if (x->base == NFT_PAYLOAD_LL_HEADER) {
			if (!p->outbound) {
				nm_fail(rs, "link-layer payload of a received packet is not modeled");
				return NF_DROP;
			}
			return NFT_BREAK;	/* no mac header on a locally generated packet */
		}
		if (x->base == NFT_PAYLOAD_TRANSPORT_HEADER)
			off += p->thoff;
		if (x->base == NFT_PAYLOAD_INNER_HEADER) {
			/* __nft_payload_inner_offset(): after the TCP header, as its data offset says */
			if (p->l4proto != IPPROTO_TCP || p->thoff + 13 > p->len)
				return NFT_BREAK;
			off += p->thoff + (size_t)(p->buf[p->thoff + 12] >> 4) * 4;
		}
		if (off + x->len > p->len)
			return NFT_BREAK;
		nm_store(g, x->dreg, p->buf + off, x->len);
		return NFT_CONTINUE;
	}
	case NM_META:
		switch (x->key) {
		case NFT_META_MARK:
			v32 = p->mark;
			break;
		case NFT_META_SKUID:
		case NFT_META_SKGID:
			/* nft_meta_get_eval_skugid(): a full socket with a file, else BREAK */
			if (!p->sock)
				return NFT_BREAK;
			v32 = x->key == NFT_META_SKUID ? p->uid : p->gid;
			break;
		case NFT_META_L4PROTO:
			v8 = p->l4proto;
			nm_store(g, x->dreg, &v8, 1);
			return NFT_CONTINUE;
		case NFT_META_NFPROTO:
			v8 = p->family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6;
			nm_store(g, x->dreg, &v8, 1);
			return NFT_CONTINUE;
		case NFT_META_LEN:
			v32 = (uint32_t)p->len;
			break;
		}
		nm_store(g, x->dreg, &v32, 4);
		return NFT_CONTINUE;
	case NM_META_SET:
		if (!nm_loaded(rs, g, x->sreg, 4, chain))
			return NF_DROP;
		p->mark = g->d[x->sreg];
		return NFT_CONTINUE;
	case NM_CT:
		if (x->key == NFT_CT_STATE) {
			/* nft_ct_get_eval(): the one key defined without an entry */
			if (p->ct == NM_CT_ENTRY)
				v32 = NF_CT_STATE_BIT(p->ctinfo);
			else if (p->ct == NM_CT_UNTRACKED)
				v32 = NF_CT_STATE_UNTRACKED_BIT;
			else
				v32 = NF_CT_STATE_INVALID_BIT;
			nm_store(g, x->dreg, &v32, 4);
			return NFT_CONTINUE;
		}
		if (p->ct != NM_CT_ENTRY)
			return NFT_BREAK;
		if (x->key == NFT_CT_DIRECTION) {
			v8 = p->ctinfo >= IP_CT_IS_REPLY ? IP_CT_DIR_REPLY : IP_CT_DIR_ORIGINAL;
			nm_store(g, x->dreg, &v8, 1);
			return NFT_CONTINUE;
		}
		v32 = x->key == NFT_CT_MARK ? p->ctmark : p->ctstatus;
		nm_store(g, x->dreg, &v32, 4);
		return NFT_CONTINUE;
	case NM_CT_SET:
		if (!nm_loaded(rs, g, x->sreg, 4, chain))
			return NF_DROP;
		/* nft_ct_set_eval(): no entry (or untracked), nothing to set, no BREAK */
		if (p->ct == NM_CT_ENTRY)
			p->ctmark = g->d[x->sreg];
		return NFT_CONTINUE;
	case NM_CMP: {
		int d;

		if (!nm_loaded(rs, g, x->sreg, x->len, chain))
			return NF_DROP;
		d = memcmp(&g->d[x->sreg], x->data, x->len);	/* as nft_cmp_eval() */
		switch (x->cmp_op) {
		case NFT_CMP_EQ: return d == 0 ? NFT_CONTINUE : NFT_BREAK;
		case NFT_CMP_NEQ: return d != 0 ? NFT_CONTINUE : NFT_BREAK;
		case NFT_CMP_LT: return d < 0 ? NFT_CONTINUE : NFT_BREAK;
		case NFT_CMP_LTE: return d <= 0 ? NFT_CONTINUE : NFT_BREAK;
		case NFT_CMP_GT: return d > 0 ? NFT_CONTINUE : NFT_BREAK;
		default: return d >= 0 ? NFT_CONTINUE : NFT_BREAK;
		}
	}
	case NM_BITWISE: {
		uint32_t m[NM_KEY_MAX / 4], xo[NM_KEY_MAX / 4], out[NM_KEY_MAX / 4];
		uint32_t words = (x->len + 3) / 4;

		if (!nm_loaded(rs, g, x->sreg, x->len, chain))
			return NF_DROP;
		memcpy(m, x->mask, sizeof(m));
		memcpy(xo, x->xor, sizeof(xo));
		for (uint32_t i = 0; i < words; i++)
			out[i] = (g->d[x->sreg + (int)i] & m[i]) ^ xo[i];
		memcpy(&g->d[x->dreg], out, words * 4);
		for (uint32_t i = 0; i < words; i++)
			g->written |= 1u << (x->dreg + (int)i);
		return NFT_CONTINUE;
	}
	case NM_LOOKUP:
	case NM_OBJREF: {
		const struct nm_set *s = &rs->sets[x->set];
		bool found = false;

		if (!nm_loaded(rs, g, x->sreg, s->klen, chain))
			return NF_DROP;
		for (size_t i = 0; i < s->n && !found; i++)
			found = memcmp(s->keys[i], &g->d[x->sreg], s->klen) == 0;
		/* objref (nft_objref_map_eval): no key, BREAK; else its counter counts. */
		return found != x->invert ? NFT_CONTINUE : NFT_BREAK;
	}
	case NM_IMM_DATA:
		nm_store(g, x->dreg, x->data, x->len);
		return NFT_CONTINUE;
	case NM_VERDICT:
		*jump = x;
		return x->verdict;
	case NM_NOP:
		return NFT_CONTINUE;
	case NM_LOG:
		run->res->logged++;
		return NFT_CONTINUE;
	case NM_FIB:
		v32 = nm_is_local(p) ? RTN_LOCAL : RTN_UNICAST;
		nm_store(g, x->dreg, &v32, 4);
		return NFT_CONTINUE;
	case NM_REJECT_EXPR:
		run->rejected = true;
		return NF_DROP;
	case NM_QUEUE:
		if (strcmp(run->basechain->type, "filter") != 0) {
			nm_fail(rs, "queue from a %s chain is not modeled", run->basechain->type);
			return NF_DROP;
		}
		run->bypass = x->bypass;
		return NF_QUEUE;
	case NM_REDIR: {
		uint16_t port;

		if (strcmp(run->basechain->type, "nat") != 0) {
			nm_fail(rs, "redir outside a nat chain");
			return NF_DROP;
		}
		if (!nm_loaded(rs, g, x->sreg, 2, chain))
			return NF_DROP;
		memcpy(&port, &g->d[x->sreg], 2);
		p->trap_port = ntohs(port);
		p->nat = NM_NAT_TRAP;
		return NF_ACCEPT;	/* nf_nat_redirect_ipv4/6() */
	}
	}
	nm_fail(rs, "op %d", x->op);
	return NF_DROP;
}

/* One base chain, as nft_do_chain() runs it: NF_ACCEPT, NF_DROP or NF_QUEUE. */
static int
nm_chain_run(struct nm_run *run, int base)
{
	struct nm_ruleset *rs = run->rs;
	struct { int chain; size_t rule; } stack[NM_JUMP_STACK];
	size_t sp = 0, r = 0;
	int c = base;

	run->basechain = &rs->chains[base];
	run->rejected = run->bypass = false;
	for (;;) {
		const struct nm_chain *ch = &rs->chains[c];
		const struct nm_rule *rule;
		const struct nm_expr *jump = NULL;
		struct nm_regs g;
		int v = NFT_CONTINUE;

		if (r >= ch->nrules) {
			if (sp == 0) {
				nm_trace(run->res, "%s:policy ", rs->chains[base].name);
				return (int)rs->chains[base].policy;
			}
			sp--;
			c = stack[sp].chain;
			r = stack[sp].rule;
			continue;
		}
		if (++run->steps > NM_STEPS_MAX) {
			nm_fail(rs, "more than %d rules for one packet", NM_STEPS_MAX);
			return NF_DROP;
		}
		rule = &rs->pool[ch->rule[r]];
		memset(&g, 0, sizeof(g));
		for (size_t i = 0; i < rule->n && v == NFT_CONTINUE; i++)
			v = nm_eval(run, &rule->e[i], &g, ch->name, &jump);
		if (rs->err[0] != '\0')
			return NF_DROP;
		switch (v) {
		case NFT_CONTINUE:
		case NFT_BREAK:
			r++;
			continue;
		case NF_ACCEPT:
		case NF_DROP:
		case NF_QUEUE:
			nm_trace(run->res, "%s#%zu:%s ", ch->name, r + 1,
			    v == NF_ACCEPT ? "accept" : v == NF_QUEUE ? "queue" :
			    run->rejected ? "reject" : "drop");
			return v;
		case NFT_JUMP:
			if (sp == NM_JUMP_STACK) {
				nm_fail(rs, "jump stack overflow");
				return NF_DROP;
			}
			stack[sp].chain = c;
			stack[sp++].rule = r + 1;
			__attribute__((fallthrough));
		case NFT_GOTO:
			c = jump->target;
			r = 0;
			continue;
		case NFT_RETURN:
			if (sp == 0) {
				nm_trace(run->res, "%s:policy ", rs->chains[base].name);
				return (int)rs->chains[base].policy;
			}
			sp--;
			c = stack[sp].chain;
			r = stack[sp].rule;
			continue;
		default:
			nm_fail(rs, "verdict %d", v);
			return NF_DROP;
		}
	}
}

/* The admin's own output DNAT (another table): new flows to the remote mx, port 25. */
static void
nm_bind(struct nm_packet *p, enum nm_nat nat)
{
	p->nat = nat;
	p->nat_done = true;
	if (nat == NM_NAT_NONE)
		return;	/* a null binding: no IPS_DST_NAT */
	p->ctstatus |= IPS_DST_NAT | IPS_DST_NAT_DONE;
}

static void
nm_apply_nat(struct nm_packet *p)
{
	if (p->nat == NM_NAT_ADMIN)
		nm_set_dst(p, false, 25);
	else if (p->nat == NM_NAT_TRAP)
		nm_set_dst(p, true, p->trap_port);
}

/*
 * The output nat hook (nf_nat_inet_fn at NF_IP_PRI_NAT_DST): with a
 * conntrack entry, a flow's first packet (new, related) not bound yet runs
 * the nat chains in priority order until one binds it; a bound flow's
 * packets are translated without running any chain.
 */
static int
nm_nat_hook(struct nm_run *run, const int *nat, size_t nnat)
{
	struct nm_packet *p = run->p;
	enum nm_nat admin = p->nat;

	if (p->ct != NM_CT_ENTRY)
		return NF_ACCEPT;
	if (!p->nat_done && (p->ctinfo == IP_CT_NEW || p->ctinfo == IP_CT_RELATED ||
	    p->ctinfo == IP_CT_RELATED_REPLY)) {
		p->nat = NM_NAT_NONE;
		if (admin == NM_NAT_ADMIN && p->admin_nat_first) {
			nm_trace(run->res, "admin-dnat ");
			nm_bind(p, NM_NAT_ADMIN);
		}
		for (size_t i = 0; i < nnat && !p->nat_done; i++) {
			int v = nm_chain_run(run, nat[i]);

			if (v != NF_ACCEPT)
				return v;
			if (p->nat == NM_NAT_TRAP) {
				nm_trace(run->res, "redirect:%u ", p->trap_port);
				run->res->redirected = true;
				nm_bind(p, NM_NAT_TRAP);
			}
		}
		if (!p->nat_done && admin == NM_NAT_ADMIN) {
			nm_trace(run->res, "admin-dnat ");
			nm_bind(p, NM_NAT_ADMIN);
		}
		if (!p->nat_done)
			nm_bind(p, NM_NAT_NONE);
	}
	nm_apply_nat(p);
	return NF_ACCEPT;
}

/* Hook entries: each filter chain at its priority, and the nat chains as one entry. */
struct nm_entry {
	int32_t	 prio;
	int	 chain;		/* -1: the nat hook */
};

static size_t
nm_entries(const struct nm_ruleset *rs, uint32_t hook, struct nm_entry *e, int *nat,
    size_t *nnat)
{
	size_t n = 0;
	bool nat_seen = false;

	*nnat = 0;
	for (size_t i = 0; i < rs->nchains; i++) {
		const struct nm_chain *c = &rs->chains[i];

		if (!c->base || c->hook != hook)
			continue;
		if (strcmp(c->type, "nat") == 0) {
			nat[(*nnat)++] = (int)i;
			if (nat_seen)
				continue;
			nat_seen = true;
			e[n++] = (struct nm_entry){ NM_PRIO_NAT_DST, -1 };
		} else
			e[n++] = (struct nm_entry){ c->prio, (int)i };
	}
	/* A stable sort: the kernel puts a chain after those of equal priority. */
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && e[k - 1].prio > e[k].prio; k--) {
			struct nm_entry t = e[k];

			e[k] = e[k - 1];
			e[k - 1] = t;
		}
	for (size_t i = 1; i < *nnat; i++)
		for (size_t k = i; k > 0 && rs->chains[nat[k - 1]].prio > rs->chains[nat[k]].prio;
		    k--) {
			int t = nat[k];

			nat[k] = nat[k - 1];
			nat[k - 1] = t;
		}
	return n;
}

/*
 * The packet's whole way through the hooks of its path. A queued packet goes
 * to the daemon; NF_REPEAT (with the mark it gives) runs the same base chain
 * again, NF_ACCEPT goes on after it, no listener drops it (or accepts it with
 * the bypass flag).
 */
NM_FN void
nm_run(struct nm_ruleset *rs, struct nm_packet *p, nm_daemon_fn daemon, void *arg,
    struct nm_result *res)
{
	static const uint32_t out_hooks[] = { NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING };
	static const uint32_t in_hooks[] = { NF_INET_PRE_ROUTING, NF_INET_LOCAL_IN };
	const uint32_t *hooks = p->outbound ? out_hooks : in_hooks;
	struct nm_run run = { .rs = rs, .p = p, .res = res };
	bool admin_nat_pending = p->ct == NM_CT_ENTRY && p->nat == NM_NAT_ADMIN && !p->nat_done;

	memset(res, 0, sizeof(*res));
	/* A bound flow's translation is applied where its hook is, even with no chain of ours. */
	for (size_t h = 0; h < 2; h++) {
		struct nm_entry e[NM_ENTRIES_MAX];
		int nat[NM_CHAINS_MAX];
		size_t nnat, n = nm_entries(rs, hooks[h], e, nat, &nnat);
		bool nat_done_here = false;

		if (p->outbound && hooks[h] == NF_INET_LOCAL_OUT && nnat == 0 &&
		    (admin_nat_pending || p->nat_done)) {
			/* no nat chain of ours: the admin's, or the binding, at -100 */
			e[n++] = (struct nm_entry){ NM_PRIO_NAT_DST, -1 };
			for (size_t k = n - 1; k > 0 && e[k - 1].prio > e[k].prio; k--) {
				struct nm_entry t = e[k];

				e[k] = e[k - 1];
				e[k - 1] = t;
			}
		}
		for (size_t i = 0; i < n; i++) {
			int v;

			if (e[i].chain < 0) {
				if (nat_done_here)
					continue;
				nat_done_here = true;
				v = nm_nat_hook(&run, nat, nnat);
				if (rs->err[0] != '\0')
					goto error;
				if (v == NF_DROP) {
					res->final = run.rejected ? NM_REJECT : NM_DROP;
					return;
				}
				continue;
			}
			for (;;) {
				uint32_t mark = p->mark;
				enum nm_answer a;

				v = nm_chain_run(&run, e[i].chain);
				if (rs->err[0] != '\0')
					goto error;
				if (v == NF_ACCEPT)
					break;
				if (v == NF_DROP) {
					res->final = run.rejected ? NM_REJECT : NM_DROP;
					return;
				}
				/* NF_QUEUE */
				if (++res->queued > NM_QUEUE_VISITS_MAX) {
					res->final = NM_LOOP;
					return;
				}
				a = daemon(arg, p, res->queued, &mark);
				if (a == NM_ANS_NOLISTENER) {
					nm_trace(res, "no-listener%s ", run.bypass ? ":bypass" : "");
					if (run.bypass)
						break;
					res->final = NM_DROP;
					return;
				}
				res->answered++;
				if (a == NM_ANS_DROP) {
					nm_trace(res, "daemon:drop ");
					res->final = NM_DROP;
					return;
				}
				if (a == NM_ANS_ACCEPT) {
					nm_trace(res, "daemon:accept ");
					break;
				}
				nm_trace(res, "daemon:repeat(%#x) ", mark);
				p->mark = mark;
			}
		}
	}
	res->final = NM_ACCEPT;
	return;
error:
	res->final = NM_ERROR;
}

#endif
