/*
 * fencemodel.h — the fence's world for nftmodel.h: the real ruleset
 * (ruleset_build) loaded into the model, a model daemon that answers queued
 * packets with the real policy_decide() the way fence.c's on_packet() and
 * verdict() do, the packet cases both the cmocka grid and the fuzzer walk,
 * and the properties every packet must keep. Test-only; shared by
 * tests/unit/test_fence_passes.c and tests/fuzz/fuzz_fence_passes.c.
 *
 * The daemon model mirrors on_packet(): an unparsable packet is rejected;
 * a non-SYN of a flow fence.c follows (audit or detect_any_port probe) is
 * inspected (keep reading: NF_ACCEPT, no mark; done: allow); anything else
 * is asked of policy_decide(), first without the sender, then with the
 * queue's uid if it needs one; a flow it cannot follow (table full) gets the
 * decision's unfollowed mark. A decided state is NF_REPEAT with
 * (mark & ~mask) | state, MARK_NONE is NF_ACCEPT. If fence.c changes that
 * shape, change fm_answer() with it.
 */
#ifndef FENCEMODEL_H
#define FENCEMODEL_H

#include <netinet/tcp.h>
#include <sys/socket.h>

#include "smtpguard.h"
#include "nftmodel.h"

#define FM_MASK			0x00700000u
#define FM_FOREIGN		0xa58a5a5au	/* bits outside the mask, set by other software */
#define FM_UID_MTA		101
#define FM_UID_PLAIN		2000	/* a plain exception: in @allow_uids */
#define FM_UID_NARROW		2001	/* an exception to port 587 only: decided in userspace */
#define FM_UID_WEB		33
#define FM_UID_REFUSED		34	/* a flooding web user, in @refused_uids */
#define FM_UID_AUDITED		35	/* a user audited whatever it names, in @audited_uids */
#define FM_TRAP_PORT		10025
#define FM_PORT_UNFENCED	2526
#define FM_MTA_PORT		25	/* redirect_to: the local MTA */
/* fm_case.nat: nm_nat's values, and a flow our redirect chain bound to the MTA */
#define FM_NAT_MTA		(NM_NAT_TRAP + 1)
#define FM_NAT_N		(FM_NAT_MTA + 1)

struct fm_world {
	struct config		 cfg;
	struct exception	 xv[2];
	struct exceptions	 exc;
	uid_t			 mta[1];
	uid_t			 allow[4];
	size_t			 nallow;
	bool			 native;
	struct nm_ruleset	*rs;
};

/* Builds the batch with the real ruleset_build() and loads it; NULL and ERR on failure. */
static int __attribute__((unused))
fm_world_init(struct fm_world *w, bool native, bool any_port, enum action action,
    int (*build)(struct nl_batch *, const struct ruleset_spec *, bool), char *err,
    size_t errlen)
{
	struct ruleset_spec sp;
	struct nl_batch b;
	const void *data;
	size_t len;
	int rc = -1;

	memset(w, 0, sizeof(*w));
	config_defaults(&w->cfg);
	w->cfg.action = action;
	w->cfg.detect_any_port = any_port;
	w->cfg.mark_mask = FM_MASK;
	w->cfg.trap_port = FM_TRAP_PORT;
	w->cfg.redirect_to = FM_MTA_PORT;
	w->cfg.mail_gate = true;	/* action redirect needs the gate */
	w->native = native;
	snprintf(w->xv[0].who, sizeof(w->xv[0].who), "plain");
	w->xv[0].uids[0] = FM_UID_PLAIN;
	w->xv[0].nuids = 1;
	snprintf(w->xv[1].who, sizeof(w->xv[1].who), "narrow");
	w->xv[1].uids[0] = FM_UID_NARROW;
	w->xv[1].nuids = 1;
	w->xv[1].ports[0] = 587;
	w->xv[1].nports = 1;
	w->xv[1].audit = true;
	w->exc.v = w->xv;
	w->exc.n = 2;
	w->mta[0] = FM_UID_MTA;
	/* As smtpguardd does: plain exceptions are the kernel's @allow_uids. */
	w->nallow = exceptions_kernel_uids(&w->exc, w->allow, 4);

	/* As smtpguardd asks for it: the trap's nat chain only with action = trap. */
	ruleset_spec_of(&w->cfg, w->mta, 1, w->allow, w->nallow, &sp);

	if ((w->rs = calloc(1, sizeof(*w->rs))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (nl_batch_init(&b) < 0) {
		snprintf(err, errlen, "nl_batch_init failed");
		return -1;
	}
	/*
	 * As refuse.c does under a flood: one uid refused in the kernel; and as
	 * fence.c does after its first SYN: one uid audited in the kernel.
	 */
	if (build(&b, &sp, native) < 0 ||
	    ruleset_build_refused_add(&b, TABLE_NAME, FM_UID_REFUSED, 70000) < 0 ||
	    ruleset_build_audited(&b, TABLE_NAME, true, FM_UID_AUDITED, 30000) < 0)
		snprintf(err, errlen, "ruleset_build failed");
	else if (nl_batch_finish(&b, &data, &len) < 0)
		snprintf(err, errlen, "nl_batch_finish failed");
	else if (nm_load(w->rs, data, len) < 0)
		snprintf(err, errlen, "model: %s", w->rs->err);
	else
		rc = 0;
	nl_batch_free(&b);
	return rc;
}

static void __attribute__((unused))
fm_world_free(struct fm_world *w)
{
	free(w->rs);
	w->rs = NULL;
}

/* ---- the cases ---- */

enum fm_ct { FM_CT_NONE, FM_CT_INVALID, FM_CT_UNTRACKED, FM_CT_NEW, FM_CT_ESTABLISHED,
    FM_CT_RELATED, FM_CT_ESTABLISHED_REPLY, FM_CT_RELATED_REPLY, FM_CT_N };
enum fm_sock { FM_SOCK_NONE, FM_SOCK_MTA, FM_SOCK_PLAIN, FM_SOCK_NARROW, FM_SOCK_WEB,
    FM_SOCK_ROOT, FM_SOCK_REFUSED, FM_SOCK_AUDITED, FM_SOCK_N };
enum fm_follow { FM_FOLLOW_NONE, FM_FOLLOW_AUDIT, FM_FOLLOW_PROBE, FM_FOLLOW_N };
static const uint8_t fm_flags[] = {
	TH_SYN, TH_SYN | TH_ACK, TH_ACK, TH_FIN | TH_ACK, TH_RST, TH_RST | TH_ACK,
	TH_PUSH | TH_ACK,
};
#define FM_FLAGS_N	(sizeof(fm_flags) / sizeof(fm_flags[0]))
static const uint16_t fm_dports[] = { 25, 587, FM_PORT_UNFENCED };
#define FM_DPORTS_N	(sizeof(fm_dports) / sizeof(fm_dports[0]))
static const char *const fm_ct_names[] = {
	"none", "invalid", "untracked", "new", "established", "related",
	"established-reply", "related-reply",
};
static const char *const fm_sock_names[] = { "none", "mta", "plain", "narrow", "web", "root",
    "refused", "audited" };

struct fm_case {
	uint8_t	 v6, udp, inbound;
	uint8_t	 ct;		/* enum fm_ct */
	uint8_t	 ctmark;	/* our state in the ct mark, 0..7 */
	uint8_t	 ct_foreign;
	uint8_t	 nat;		/* enum nm_nat or FM_NAT_MTA: the flow's binding, or the admin's rule */
	uint8_t	 nat_done;	/* new/related only: bound by an earlier packet */
	uint8_t	 admin_first;
	uint8_t	 sock;		/* enum fm_sock */
	uint8_t	 probe_mark;	/* the self-check's SYN */
	uint8_t	 pmark_foreign;
	uint8_t	 flags;		/* index into fm_flags */
	uint8_t	 payload;
	uint8_t	 data_line;	/* the payload begins "data\r\n" (TCP) */
	uint8_t	 dport;		/* index into fm_dports (inbound: the server's port, sport) */
	uint8_t	 local;
	/* the daemon */
	uint8_t	 down;
	uint8_t	 full;		/* its flow table is full */
	uint8_t	 follow;	/* enum fm_follow: it follows this flow */
	uint8_t	 inspect_done;
	uint8_t	 probe;		/* enum inspect_probe for a probed flow's bytes */
	/*
	 * Scripted: the daemon answers from SCRIPT (3 bits a visit) instead of
	 * policy, anything verdict() can send: accept, or repeat with allow,
	 * reject, trap, audit or redirect; a packet the fence queued after NAT (MARK_NAT)
	 * only accept, allow or reject, as policy_decide() promises.
	 */
	uint8_t	 scripted;
	uint16_t script;
};

static const uint32_t fm_uids[] = { 0, FM_UID_MTA, FM_UID_PLAIN, FM_UID_NARROW, FM_UID_WEB, 0,
    FM_UID_REFUSED, FM_UID_AUDITED };

static void __attribute__((unused))
fm_packet(const struct fm_case *c, struct nm_packet *p)
{
	static const uint8_t ctinfo[] = {
		[FM_CT_NEW] = IP_CT_NEW, [FM_CT_ESTABLISHED] = IP_CT_ESTABLISHED,
		[FM_CT_RELATED] = IP_CT_RELATED,
		[FM_CT_ESTABLISHED_REPLY] = IP_CT_ESTABLISHED_REPLY,
		[FM_CT_RELATED_REPLY] = IP_CT_RELATED_REPLY,
	};
	uint8_t flags = fm_flags[c->flags % FM_FLAGS_N];

	nm_packet_init(p, c->v6 ? AF_INET6 : AF_INET, c->udp ? IPPROTO_UDP : IPPROTO_TCP,
	    !c->inbound, c->local || c->inbound,
	    c->inbound ? fm_dports[c->dport % FM_DPORTS_N] : 40000,
	    c->inbound ? 40000 : fm_dports[c->dport % FM_DPORTS_N], flags, c->payload ? 24 : 0);
	if (c->data_line && c->payload && !c->udp)
		memcpy(p->buf + p->thoff + 20, "data\r\n", 6);
	p->mark = (c->pmark_foreign ? FM_FOREIGN : 0) |
	    (c->probe_mark ? mark_value(FM_MASK, MARK_PROBE) : 0);
	p->sock = c->sock != FM_SOCK_NONE;
	p->uid = p->gid = fm_uids[c->sock % FM_SOCK_N];
	p->trap_port = FM_TRAP_PORT;
	p->admin_nat_first = c->admin_first;
	switch (c->ct % FM_CT_N) {
	case FM_CT_NONE:
	case FM_CT_INVALID:	/* to nf_tables the same: no entry */
		p->ct = NM_CT_NONE;
		return;
	case FM_CT_UNTRACKED:
		p->ct = NM_CT_UNTRACKED;
		return;
	default:
		p->ct = NM_CT_ENTRY;
		p->ctinfo = ctinfo[c->ct % FM_CT_N];
	}
	p->ctmark = (c->ct_foreign ? FM_FOREIGN : 0) | ((uint32_t)(c->ctmark & 7) << 20);
	p->nat = (enum nm_nat)(c->nat % FM_NAT_N);
	if (c->nat % FM_NAT_N == FM_NAT_MTA) {
		p->nat = NM_NAT_TRAP;	/* our redirect, to the MTA's port on this host */
		p->trap_port = FM_MTA_PORT;
	}
	/* Only a flow's first packets can still be unbound. */
	p->nat_done = c->nat_done || (p->ctinfo != IP_CT_NEW && p->ctinfo != IP_CT_RELATED &&
	    p->ctinfo != IP_CT_RELATED_REPLY);
	if (!p->nat_done && p->nat == NM_NAT_TRAP)
		p->nat = NM_NAT_NONE;	/* our redirect binds a flow only from our chain */
	if (p->nat_done && p->nat != NM_NAT_NONE)
		p->ctstatus |= IPS_DST_NAT | IPS_DST_NAT_DONE;
}

/* ---- the daemon ---- */

struct fm_daemon {
	struct fm_world		*w;
	const struct fm_case	*c;
	enum mark_state		 last;		/* its last answer's state */
	unsigned int		 asked;
};

static enum mark_state
fm_decide(struct fm_daemon *d, const struct nm_packet *np)
{
	const struct fm_case *c = d->c;
	struct policy_query q;
	struct decision dec;
	struct pkt p;

	if (pkt_parse(np->buf, np->len, &p) < 0)
		return MARK_REJECT;	/* on_packet(): unparsable, fails closed */
	memset(&q, 0, sizeof(q));
	q.cfg = &d->w->cfg;
	q.exc = &d->w->exc;
	q.pkt = &p;
	q.mark = np->mark;
	q.now = 1700000040;
	if (!(p.tcp_flags & TH_SYN) && c->follow == FM_FOLLOW_AUDIT)
		return c->inspect_done ? MARK_ALLOW : MARK_NONE;	/* inspected_packet() */
	if (!(p.tcp_flags & TH_SYN) && c->follow == FM_FOLLOW_PROBE) {
		q.probe = c->probe % (INSPECT_PROBE_OTHER + 1);
		if (q.probe == INSPECT_PROBE_NONE)
			q.probe = INSPECT_PROBE_MORE;
		policy_decide(&q, &dec);	/* probe_packet() */
		return dec.mark;
	}
	policy_decide(&q, &dec);
	if (dec.need_sender) {
		/* attempt(): the queue's NFQA_UID comes from the same socket meta skuid reads */
		q.named = true;
		q.has_uid = np->sock;
		q.uid = np->uid;
		policy_decide(&q, &dec);
		if (dec.follow != POLICY_FOLLOW_NONE && c->full)
			return dec.unfollowed;
		return dec.mark;
	}
	if (dec.follow == POLICY_FOLLOW_PROBE && c->full)
		return dec.unfollowed;	/* start_probe() */
	return dec.mark;
}

static enum nm_answer __attribute__((unused))
fm_answer(void *arg, const struct nm_packet *np, unsigned int visit, uint32_t *mark)
{
	struct fm_daemon *d = arg;
	enum mark_state st;

	if (d->c->down)
		return NM_ANS_NOLISTENER;
	d->asked++;
	if (d->c->scripted) {
		static const enum mark_state any[] = { MARK_NONE, MARK_ALLOW, MARK_REJECT,
		    MARK_TRAP, MARK_INSPECT, MARK_REDIRECT };
		unsigned int pick = (d->c->script >> (3 * ((visit - 1) % 5))) & 7;

		if (mark_state_of(d->w->cfg.mark_mask, np->mark) == MARK_NAT)
			st = any[pick % 3];
		else
			st = any[pick % 6];
		d->last = st;
	} else
		st = d->last = fm_decide(d, np);
	if (st == MARK_NONE)
		return NM_ANS_ACCEPT;	/* verdict(): accept, keep inspecting */
	*mark = (np->mark & ~d->w->cfg.mark_mask) | mark_value(d->w->cfg.mark_mask, st);
	return NM_ANS_REPEAT;
}

/* ---- the properties ---- */

static bool
fm_port_fenced(const struct fm_world *w, uint16_t port)
{
	for (size_t i = 0; i < w->cfg.nports; i++)
		if (w->cfg.ports[i] == port)
			return true;
	return false;
}

/* The flow is given ST: by its own ct mark (OWN_CTMARK), or by the daemon's answer now. */
static bool
fm_given(const struct fm_case *c, const struct nm_result *res, const struct fm_daemon *d,
    bool own_ctmark, enum mark_state st)
{
	return (own_ctmark && (c->ctmark & 7) == st) || (res->answered > 0 && d->last == st);
}

/*
 * One packet through the model; NULL if every property held, else which one
 * failed (in WHY, with the trace).
 */
static const char *__attribute__((unused))
fm_check(struct fm_world *w, const struct fm_case *c, struct nm_result *res, char *why,
    size_t whylen)
{
	struct nm_packet p, p0;
	struct fm_daemon d = { .w = w, .c = c, .last = MARK_NONE };
	uint8_t flags;
	bool syn, fenced_uid, mta, out_fenced, own_ctmark, decided_flow, inspected, probed,
	    nat_ours, redirected, trapped, kernel_audited;

	/*
	 * Property 6 is for packets leaving: a received reply of a rejected
	 * flow may pass (it carries no mail); the client's next packet is reset.
	 * A received reply of a flow under inspection may be queued whoever
	 * owns it: an MTA flow never gets that ct mark (property 3 on its way
	 * out sees to it).
	 */
	const char *bad = NULL;

	fm_packet(c, &p);
	p0 = p;
	nm_run(w->rs, &p, fm_answer, &d, res);
	flags = c->udp ? 0 : fm_flags[c->flags % FM_FLAGS_N];
	syn = (flags & (TH_SYN | TH_ACK)) == TH_SYN;
	mta = p0.sock && (p0.uid == FM_UID_MTA || p0.uid == FM_UID_PLAIN);
	fenced_uid = p0.sock && !mta;
	/* Where it was going, and where it really leaves for after NAT. */
	out_fenced = !c->udp && !c->inbound &&
	    ((fm_port_fenced(w, nm_dport(&p0)) && !nm_local(&p0)) ||
	    (fm_port_fenced(w, nm_dport(&p)) && !nm_local(&p)));
	/*
	 * The ct mark is this flow's own, but on a SYN that takes over the
	 * entry of another (one that has seen a reply, or was expected): a
	 * SYN is its flow's own only retransmitted before any answer (ct
	 * state new).
	 */
	own_ctmark = p0.ct == NM_CT_ENTRY && (!syn || p0.ctinfo == IP_CT_NEW);
	decided_flow = own_ctmark && ((c->ctmark & 7) == MARK_ALLOW ||
	    (c->ctmark & 7) == MARK_TRAP || (c->ctmark & 7) == MARK_INSPECT ||
	    (c->ctmark & 7) == MARK_REDIRECT);
	/*
	 * Sent to the local MTA, or to the trap. Never an MTA's or plain
	 * exception's flow: those are accepted before any verdict, so they
	 * never carry that ct mark (property 3).
	 */
	nat_ours = !c->udp && !c->inbound && !mta && p0.ct == NM_CT_ENTRY;
	redirected = nat_ours && fm_given(c, res, &d, own_ctmark, MARK_REDIRECT);
	trapped = nat_ours && fm_given(c, res, &d, own_ctmark, MARK_TRAP);

	/*
	 * An audited flow (a fenced port) is copied, never queued: its tail
	 * without a socket is let go like any socketless packet. A flow
	 * detect_any_port still reads (the same ct mark on a port nobody
	 * fences) has every packet queued, its tail without a socket too: what
	 * a closed socket still sends must be read before it leaves (never
	 * released unread), and with a conntrack entry its verdict sticks, so
	 * it cannot loop. Only those, and a received reply of a flow being
	 * read (the input chain: no socket in that hook), may reach the queue.
	 */
	/*
	 * A new flow's SYN from @audited_uids, audited in the kernel: it leaves
	 * undecided by the daemon only as audited (its ct mark) and copied to it.
	 */
	kernel_audited = syn && p0.sock && p0.uid == FM_UID_AUDITED && p0.ct == NM_CT_ENTRY &&
	    p0.ctinfo == IP_CT_NEW && res->answered == 0 && res->logged > 0 &&
	    ((p.ctmark & FM_MASK) >> 20) == MARK_INSPECT;
	inspected = p0.ct == NM_CT_ENTRY && (c->ctmark & 7) == MARK_INSPECT;
	probed = inspected && w->cfg.detect_any_port && !c->udp &&
	    !fm_port_fenced(w, nm_dport(&p0));
	if (res->final == NM_ERROR)
		bad = "model error";
	else if (res->final == NM_LOOP || res->queued > 2)
		bad = "1: no final verdict within two passes through the queue";
	else if (syn && fenced_uid && out_fenced && !decided_flow && !kernel_audited &&
	    res->final == NM_ACCEPT && (res->answered == 0 || d.last == MARK_REJECT))
		bad = "2: a fenced SYN was accepted without the daemon allowing it";
	else if (mta && res->queued > 0 && !(c->inbound && inspected))
		bad = "3: an MTA or plain-exception packet reached the queue";
	else if ((p.mark & ~FM_MASK) != (p0.mark & ~FM_MASK) ||
	    (p.ctmark & ~FM_MASK) != (p0.ctmark & ~FM_MASK))
		bad = "4: mark bits outside the mask changed";
	else if (!p0.sock && !c->inbound && res->queued > 0 && !probed)
		bad = "5: a socketless packet reached the queue";
	else if (!c->inbound && res->answered > 0 && d.last == MARK_REJECT &&
	    res->final == NM_ACCEPT)
		bad = "6: the daemon's reject was not carried out";
	else if (redirected && res->final == NM_ACCEPT && !nm_local(&p))
		bad = "7: a flow redirected to the local MTA left the host";
	else if (trapped && res->final == NM_ACCEPT && !nm_local(&p))
		bad = "8: a trapped flow left the host";
	if (bad == NULL)
		return NULL;
	snprintf(why, whylen, "property %s: %s%s tcp flags %#x payload %u dport %u%s, ct %s "
	    "mark %u%s nat %u%s, socket %s, packet mark %s%s, daemon %s%s follow %u "
	    "inspect_done %u probe %u, action %s, any_port %u, %s queue => %s, queued %u, "
	    "asked %u, last answer %u; trace: %s%s",
	    bad, c->v6 ? "IPv6" : "IPv4", c->udp ? " udp" : "", flags, c->payload,
	    fm_dports[c->dport % FM_DPORTS_N], c->local ? " (local)" : "",
	    fm_ct_names[c->ct % FM_CT_N], c->ctmark & 7, c->ct_foreign ? "+foreign" : "",
	    c->nat % FM_NAT_N, c->nat_done ? " bound" : "", fm_sock_names[c->sock % FM_SOCK_N],
	    c->probe_mark ? "probe" : "0", c->pmark_foreign ? "+foreign" : "",
	    c->down ? "down" : "up", c->full ? " full" : "", c->follow % FM_FOLLOW_N,
	    c->inspect_done, c->probe, action_name(w->cfg.action), w->cfg.detect_any_port,
	    w->native ? "native" : "xt", nm_final_name(res->final), res->queued, d.asked,
	    d.last, res->trace, res->final == NM_ERROR ? w->rs->err : "");
	return bad;
}

#endif
