/*
 * Every packet leaves the fence with one final verdict within two passes
 * through the queue, whatever its conntrack state, socket, marks and flags
 * (issue 14, items 1 and 7). The real ruleset (ruleset_build, both queue
 * paths, with and without detect_any_port, with a plain exception in
 * @allow_uids) runs in a model of the kernel's datapath (tests/fuzz/
 * nftmodel.h), queued packets are answered by the real policy_decide() the
 * way fence.c answers them (tests/fuzz/fencemodel.h), and the properties
 * are checked over an exhaustive grid of packets and daemon answers. Then
 * the same model is shown to catch the bugs it is there for: a verdict rule
 * joined again with its ct-copy rule loops, a queue rule without its socket
 * guard queues socketless packets, a redirect without its after-NAT guards
 * leaves the host. No kernel, no root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../fuzz/fencemodel.h"

#define WHY_MAX		2048

struct grid_stats {
	unsigned long	 packets, runs, queued, twice, redirected;
	unsigned long	 final[NM_ERROR + 1];
};

/* The daemon variants a queued packet is tried with, after the plain one. */
static const struct fm_case daemon_variants[] = {
	{ .down = 1 },
	{ .full = 1 },
	{ .follow = FM_FOLLOW_AUDIT },
	{ .follow = FM_FOLLOW_AUDIT, .inspect_done = 1 },
	{ .follow = FM_FOLLOW_PROBE, .probe = INSPECT_PROBE_MORE },
	{ .follow = FM_FOLLOW_PROBE, .probe = INSPECT_PROBE_SMTP },
	{ .follow = FM_FOLLOW_PROBE, .probe = INSPECT_PROBE_TLS },
	{ .follow = FM_FOLLOW_PROBE, .probe = INSPECT_PROBE_OTHER },
};
#define NVARIANTS	(sizeof(daemon_variants) / sizeof(daemon_variants[0]))

static const enum action actions[] = { ACTION_REJECT, ACTION_TRAP, ACTION_AUDIT,
    ACTION_REDIRECT };

/* Runs one case; the first property that fails ends the test with its story. */
static unsigned long
one(struct fm_world *w, const struct fm_case *c, struct grid_stats *st)
{
	char why[WHY_MAX];
	struct nm_result res;

	if (fm_check(w, c, &res, why, sizeof(why)) != NULL)
		fail_msg("%s", why);
	st->runs++;
	st->final[res.final]++;
	st->twice += res.queued == 2;
	st->redirected += res.redirected;
	return res.queued;
}

/* Every daemon answer for one packet: each action, then each variant. */
static void
packet(struct fm_world *w, struct fm_case *c, struct grid_stats *st)
{
	st->packets++;
	w->cfg.action = actions[0];
	if (one(w, c, st) == 0)
		return;	/* never queued: the daemon cannot change anything */
	st->queued++;
	for (size_t a = 1; a < sizeof(actions) / sizeof(actions[0]); a++) {
		w->cfg.action = actions[a];
		one(w, c, st);
	}
	w->cfg.action = actions[0];
	for (size_t v = 0; v < NVARIANTS; v++) {
		struct fm_case d = *c;

		d.down = daemon_variants[v].down;
		d.full = daemon_variants[v].full;
		d.follow = daemon_variants[v].follow;
		d.inspect_done = daemon_variants[v].inspect_done;
		d.probe = daemon_variants[v].probe;
		one(w, &d, st);
	}
}

/* The rest of a packet: socket, marks, flags, payload, destination. */
static void
packets_for_ct(struct fm_world *w, struct fm_case *c, bool inbound_too, struct grid_stats *st)
{
	for (c->inbound = 0; c->inbound <= (inbound_too ? 1 : 0); c->inbound++)
	for (c->sock = 0; c->sock < FM_SOCK_N; c->sock++)
	for (c->probe_mark = 0; c->probe_mark <= 1; c->probe_mark++)
	for (c->pmark_foreign = 0; c->pmark_foreign <= 1; c->pmark_foreign++)
	for (c->flags = 0; c->flags < FM_FLAGS_N; c->flags++)
	for (c->payload = 0; c->payload <= 1; c->payload++)
	for (c->dport = 0; c->dport < FM_DPORTS_N; c->dport++)
	for (c->local = 0; c->local <= 1; c->local++) {
		c->ct_foreign = c->pmark_foreign;
		packet(w, c, st);
	}
}

static void
grid(bool native, bool any_port, bool v6)
{
	struct fm_world w;
	struct fm_case c;
	struct grid_stats st = { 0 };
	char err[NM_ERR_MAX + 64];
	bool inbound;

	if (fm_world_init(&w, native, any_port, ACTION_REJECT, ruleset_build, err,
	    sizeof(err)) < 0)
		fail_msg("%s", err);
	inbound = nm_has_hook(w.rs, NF_INET_PRE_ROUTING) || nm_has_hook(w.rs, NF_INET_LOCAL_IN);
	memset(&c, 0, sizeof(c));
	c.v6 = v6;
	for (c.ct = 0; c.ct < FM_CT_N; c.ct++) {
		bool entry = c.ct >= FM_CT_NEW;
		bool first = c.ct == FM_CT_NEW || c.ct == FM_CT_RELATED ||
		    c.ct == FM_CT_RELATED_REPLY;

		if (!entry) {
			c.ctmark = c.nat = c.nat_done = c.admin_first = 0;
			packets_for_ct(&w, &c, inbound, &st);
			continue;
		}
		for (c.ctmark = 0; c.ctmark <= 7; c.ctmark++)
		for (c.nat = NM_NAT_NONE; c.nat < FM_NAT_N; c.nat++)
		for (c.nat_done = !first; c.nat_done <= 1; c.nat_done++)
		for (c.admin_first = 0; c.admin_first <= (c.nat == NM_NAT_ADMIN &&
		    !c.nat_done ? 1 : 0); c.admin_first++) {
			if ((c.nat == NM_NAT_TRAP || c.nat == FM_NAT_MTA) && !c.nat_done)
				continue;	/* only our own chains bind those */
			packets_for_ct(&w, &c, inbound, &st);
		}
	}
	/* A grid that never queued, never rejected or never accepted tested nothing. */
	assert_true(st.queued > 0);
	assert_true(st.final[NM_ACCEPT] > 0 && st.final[NM_REJECT] > 0 && st.final[NM_DROP] > 0);
	/* ... and one that never went through the queue twice (after NAT) or to the trap. */
	assert_true(st.twice > 0 && st.redirected > 0);
	print_message("%s queue, detect_any_port %s, %s: %lu packets, %lu runs (%lu queued "
	    "packets, %lu runs queued twice, %lu redirected); accept %lu, reject %lu, "
	    "drop %lu\n", native ? "native" : "xt", any_port ? "on" : "off",
	    v6 ? "IPv6" : "IPv4", st.packets, st.runs, st.queued, st.twice, st.redirected,
	    st.final[NM_ACCEPT], st.final[NM_REJECT], st.final[NM_DROP]);
	/* Every kind of expression the ruleset holds was evaluated. */
	for (size_t i = 0; i < w.rs->npool; i++)
		for (size_t k = 0; k < w.rs->pool[i].n; k++)
			if (w.rs->used[w.rs->pool[i].e[k].op] == 0)
				fail_msg("expression kind %d never evaluated", w.rs->pool[i].e[k].op);
	fm_world_free(&w);
}

static void
every_packet_leaves_on_its_second_pass_xt_queue(void **state)
{
	(void)state;
	grid(false, false, false);
}

static void
every_packet_leaves_on_its_second_pass_native_queue(void **state)
{
	(void)state;
	grid(true, false, false);
}

static void
every_packet_leaves_on_its_second_pass_any_port_xt_queue(void **state)
{
	(void)state;
	grid(false, true, false);
}

static void
every_packet_leaves_on_its_second_pass_any_port_native_queue(void **state)
{
	(void)state;
	grid(true, true, false);
}

static void
ipv6_packets_leave_on_their_second_pass_too(void **state)
{
	(void)state;
	grid(false, true, true);
}

/* ---- the model catches what it is there for ---- */

static bool
is_ct_copy(const struct nm_rule *r)
{
	return r->n >= 2 && r->e[r->n - 1].op == NM_CT_SET;
}

/*
 * The old fence (before efe98f4): each ct-copy rule and its verdict rule
 * were one rule, so a packet without conntrack broke it at "ct mark" and
 * went back to the queue.
 */
static void
join_verdicts(struct nm_ruleset *rs)
{
	for (size_t ci = 0; ci < rs->nchains; ci++) {
		struct nm_chain *ch = &rs->chains[ci];

		for (size_t i = 0; i + 1 < ch->nrules; i++) {
			struct nm_rule *a = &rs->pool[ch->rule[i]], *b = &rs->pool[ch->rule[i + 1]];

			if (!is_ct_copy(a))
				continue;
			assert_true(a->n + b->n - 3 <= NM_EXPRS_MAX);
			/* b repeats a's "meta mark & M == X" (three expressions) */
			memcpy(&a->e[a->n], &b->e[3], (b->n - 3) * sizeof(b->e[0]));
			a->n += b->n - 3;
			memmove(&ch->rule[i + 1], &ch->rule[i + 2],
			    (ch->nrules - i - 2) * sizeof(ch->rule[0]));
			ch->nrules--;
		}
	}
}

/* The queue rules lose their "meta skuid >= 0": as the old fence queued. */
static void
drop_socket_guard(struct nm_ruleset *rs)
{
	for (size_t i = 0; i < rs->npool; i++) {
		struct nm_rule *r = &rs->pool[i];

		if (r->n >= 3 && r->e[r->n - 1].op == NM_QUEUE && r->e[0].op == NM_META &&
		    r->e[0].key == NFT_META_SKUID) {
			memmove(&r->e[0], &r->e[2], (r->n - 2) * sizeof(r->e[0]));
			r->n -= 2;
		}
	}
}

static const char *
first_failure(struct fm_world *w, const struct fm_case *c, char *why, size_t len)
{
	struct nm_result res;

	return fm_check(w, c, &res, why, len);
}

static void
a_verdict_joined_with_its_ct_copy_loops_on_packets_without_conntrack(void **state)
{
	struct fm_world w;
	char err[NM_ERR_MAX + 64], why[WHY_MAX];
	/* the reset to port 25: no socket, no conntrack entry */
	struct fm_case rst = { .ct = FM_CT_NONE, .sock = FM_SOCK_NONE, .flags = 4 };
	/* a web user's SYN on an untracked flow */
	struct fm_case syn = { .ct = FM_CT_UNTRACKED, .sock = FM_SOCK_WEB, .flags = 0 };
	const char *bad;

	(void)state;
	assert_int_equal(fm_world_init(&w, false, false, ACTION_REJECT, ruleset_build, err,
	    sizeof(err)), 0);
	assert_null(first_failure(&w, &rst, why, sizeof(why)));
	assert_null(first_failure(&w, &syn, why, sizeof(why)));
	join_verdicts(w.rs);
	assert_non_null(bad = first_failure(&w, &syn, why, sizeof(why)));
	print_message("joined verdict rules: %s\n", why);
	assert_int_equal(bad[0], '1');
	drop_socket_guard(w.rs);
	assert_non_null(bad = first_failure(&w, &rst, why, sizeof(why)));
	assert_int_equal(bad[0], '1');
	fm_world_free(&w);
}

static void
a_queue_rule_without_its_socket_guard_queues_the_kernels_resets(void **state)
{
	struct fm_world w;
	char err[NM_ERR_MAX + 64], why[WHY_MAX];
	struct fm_case rst = { .ct = FM_CT_ESTABLISHED, .sock = FM_SOCK_NONE, .flags = 4 };
	const char *bad;

	(void)state;
	assert_int_equal(fm_world_init(&w, true, true, ACTION_REJECT, ruleset_build, err,
	    sizeof(err)), 0);
	assert_null(first_failure(&w, &rst, why, sizeof(why)));
	drop_socket_guard(w.rs);
	assert_non_null(bad = first_failure(&w, &rst, why, sizeof(why)));
	print_message("no socket guard: %s\n", why);
	assert_int_equal(bad[0], '5');
	fm_world_free(&w);
}

/* The rule of CHAIN whose comment holds TEXT leaves the chain (it must be there). */
static void
drop_rule(struct nm_ruleset *rs, const char *chain, const char *text)
{
	for (size_t ci = 0; ci < rs->nchains; ci++) {
		struct nm_chain *ch = &rs->chains[ci];

		if (strcmp(ch->name, chain) != 0)
			continue;
		for (size_t i = 0; i < ch->nrules; i++) {
			if (strstr(rs->pool[ch->rule[i]].comment, text) == NULL)
				continue;
			memmove(&ch->rule[i], &ch->rule[i + 1],
			    (ch->nrules - i - 1) * sizeof(ch->rule[0]));
			ch->nrules--;
			return;
		}
	}
	fail_msg("no rule '%s' in chain %s", text, chain);
}

/*
 * A SYN that takes over an old flow's conntrack entry (one reset by the far
 * side, or cut by a verdict) is decided afresh: without the rule for it,
 * the old flow's "allow" lets a web user's new connection out undecided.
 */
static void
a_syn_on_an_old_flows_entry_is_decided_afresh(void **state)
{
	struct fm_world w;
	char err[NM_ERR_MAX + 64], why[WHY_MAX];
	struct fm_case taken = { .ct = FM_CT_ESTABLISHED, .ctmark = MARK_ALLOW, .nat_done = 1,
	    .sock = FM_SOCK_WEB, .flags = 0 };
	struct fm_case retransmitted = { .ct = FM_CT_NEW, .ctmark = MARK_ALLOW, .nat_done = 1,
	    .sock = FM_SOCK_WEB, .flags = 0 };
	struct nm_result res;
	const char *bad;

	(void)state;
	assert_int_equal(fm_world_init(&w, false, false, ACTION_REJECT, ruleset_build, err,
	    sizeof(err)), 0);
	assert_null(fm_check(&w, &taken, &res, why, sizeof(why)));
	assert_int_equal(res.queued, 1);
	assert_int_equal(res.final, NM_REJECT);
	/* Its own SYN again, before any answer: the flow's verdict, in the kernel. */
	assert_null(fm_check(&w, &retransmitted, &res, why, sizeof(why)));
	assert_int_equal(res.queued, 0);
	assert_int_equal(res.final, NM_ACCEPT);
	drop_rule(w.rs, "fence", "a SYN on an old flow's conntrack entry");
	assert_non_null(bad = first_failure(&w, &taken, why, sizeof(why)));
	print_message("no rule for a taken-over SYN: %s\n", why);
	assert_int_equal(bad[0], '2');
	fm_world_free(&w);
}

/*
 * A trapped flow never leaves the host: without after_nat's rule, a SYN the
 * daemon traps on a flow whose NAT was bound untranslated (its first SYN
 * passed before the fence was there) goes to the mx.
 */
static void
a_trap_without_its_after_nat_guard_leaves_the_host(void **state)
{
	struct fm_world w;
	char err[NM_ERR_MAX + 64], why[WHY_MAX];
	struct fm_case unbound = { .ct = FM_CT_NEW, .nat = NM_NAT_NONE, .nat_done = 1,
	    .sock = FM_SOCK_WEB, .flags = 0 };
	struct fm_case fresh = { .ct = FM_CT_NEW, .nat = NM_NAT_NONE, .sock = FM_SOCK_WEB,
	    .flags = 0 };
	struct nm_result res;
	const char *bad;

	(void)state;
	assert_int_equal(fm_world_init(&w, false, false, ACTION_TRAP, ruleset_build, err,
	    sizeof(err)), 0);
	/* A new flow is trapped: to the trap's port on this host. */
	assert_null(fm_check(&w, &fresh, &res, why, sizeof(why)));
	assert_int_equal(res.final, NM_ACCEPT);
	assert_int_equal(res.queued, 1);
	assert_null(fm_check(&w, &unbound, &res, why, sizeof(why)));
	assert_int_equal(res.final, NM_REJECT);
	drop_rule(w.rs, "after_nat", "trapped flows that NAT left untranslated");
	assert_non_null(bad = first_failure(&w, &unbound, why, sizeof(why)));
	print_message("no after_nat guard for the trap: %s\n", why);
	assert_int_equal(bad[0], '8');
	fm_world_free(&w);
}

/*
 * A redirected flow never leaves the host: without after_nat's rule, a SYN
 * the daemon redirects on a flow whose NAT was bound untranslated goes to
 * the mx; without nat_fence's, the socketless tail of a redirected flow
 * another NAT rule took to a remote SMTP port does.
 */
static void
a_redirect_without_its_after_nat_guards_leaves_the_host(void **state)
{
	struct fm_world w;
	char err[NM_ERR_MAX + 64], why[WHY_MAX];
	struct fm_case unbound = { .ct = FM_CT_NEW, .nat = NM_NAT_NONE, .nat_done = 1,
	    .sock = FM_SOCK_WEB, .flags = 0 };
	struct fm_case taken = { .ct = FM_CT_ESTABLISHED, .ctmark = MARK_REDIRECT,
	    .nat = NM_NAT_ADMIN, .nat_done = 1, .sock = FM_SOCK_NONE, .flags = 6 };
	struct fm_case to_mta = { .ct = FM_CT_ESTABLISHED, .ctmark = MARK_REDIRECT,
	    .nat = FM_NAT_MTA, .nat_done = 1, .sock = FM_SOCK_WEB, .flags = 6 };
	struct nm_result res;
	const char *bad;

	(void)state;
	assert_int_equal(fm_world_init(&w, false, false, ACTION_REDIRECT, ruleset_build, err,
	    sizeof(err)), 0);
	/* Our own redirect's packets go on to the MTA, in the kernel. */
	assert_null(fm_check(&w, &to_mta, &res, why, sizeof(why)));
	assert_int_equal(res.final, NM_ACCEPT);
	assert_int_equal(res.queued, 0);
	assert_null(fm_check(&w, &unbound, &res, why, sizeof(why)));
	assert_int_equal(res.final, NM_REJECT);
	assert_null(fm_check(&w, &taken, &res, why, sizeof(why)));
	assert_int_equal(res.final, NM_REJECT);
	drop_rule(w.rs, "after_nat", "redirected flows that NAT left untranslated");
	assert_non_null(bad = first_failure(&w, &unbound, why, sizeof(why)));
	print_message("no after_nat guard: %s\n", why);
	assert_int_equal(bad[0], '7');
	drop_rule(w.rs, "nat_fence", "another NAT rule took the flow before ours");
	assert_non_null(bad = first_failure(&w, &taken, why, sizeof(why)));
	print_message("no nat_fence guard: %s\n", why);
	assert_int_equal(bad[0], '7');
	fm_world_free(&w);
}

/* The model refuses what it does not know, so a new rule cannot slip past it. */
static void
an_expression_the_model_does_not_know_fails_loudly(void **state)
{
	struct nm_ruleset *rs = calloc(1, sizeof(*rs));
	struct nl_batch b;
	struct nlmsghdr *nlh;
	struct nftnl_rule *r;
	struct nftnl_chain *c;
	struct nftnl_table *t;
	struct nftnl_expr *e;
	const void *data;
	size_t len;

	(void)state;
	assert_non_null(rs);
	assert_int_equal(nl_batch_init(&b), 0);
	assert_non_null(t = nftnl_table_alloc());
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, "t");
	assert_non_null(nlh = nl_batch_put(&b, NFT_MSG_NEWTABLE, NFPROTO_INET, NLM_F_CREATE,
	    "add table"));
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	assert_int_equal(nl_batch_next(&b), 0);
	assert_non_null(c = nftnl_chain_alloc());
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, "t");
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, "c");
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_LOCAL_OUT);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, 0);
	assert_non_null(nlh = nl_batch_put(&b, NFT_MSG_NEWCHAIN, NFPROTO_INET, NLM_F_CREATE,
	    "add chain"));
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nftnl_chain_free(c);
	assert_int_equal(nl_batch_next(&b), 0);
	assert_non_null(r = nftnl_rule_alloc());
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, "t");
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, "c");
	assert_non_null(e = nftnl_expr_alloc("limit"));
	nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, 10);
	nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, 1);
	nftnl_rule_add_expr(r, e);
	assert_non_null(nlh = nl_batch_put(&b, NFT_MSG_NEWRULE, NFPROTO_INET,
	    NLM_F_CREATE | NLM_F_APPEND, "add rule"));
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	assert_int_equal(nl_batch_next(&b), 0);
	assert_int_equal(nl_batch_finish(&b, &data, &len), 0);
	assert_int_equal(nm_load(rs, data, len), -1);
	assert_non_null(strstr(rs->err, "'limit' is not modeled"));
	nl_batch_free(&b);
	free(rs);
}

/*
 * A uid in @audited_uids: its new flow's SYN to a fenced port goes on in the
 * kernel, audited (its ct mark) and copied to the daemon, both families;
 * the self-check's probe from it, a SYN that took over an old flow's entry,
 * a SYN to an unfenced port (detect_any_port) and another web user's SYN
 * are still queued.
 */
static void
an_audited_uid_is_audited_in_the_kernel_and_nothing_else_is(void **state)
{
	struct fm_world w;
	char err[NM_ERR_MAX + 64], why[WHY_MAX];
	struct fm_case syn = { .ct = FM_CT_NEW, .sock = FM_SOCK_AUDITED, .flags = 0 };
	struct fm_case c;
	struct nm_result res;

	(void)state;
	assert_int_equal(fm_world_init(&w, false, true, ACTION_AUDIT, ruleset_build, err,
	    sizeof(err)), 0);
	for (syn.v6 = 0; syn.v6 <= 1; syn.v6++) {
		c = syn;
		assert_null(fm_check(&w, &c, &res, why, sizeof(why)));
		assert_int_equal(res.final, NM_ACCEPT);
		assert_int_equal(res.queued, 0);
		assert_int_equal(res.logged, 1);
	}
	c = syn;
	c.probe_mark = 1;
	assert_null(fm_check(&w, &c, &res, why, sizeof(why)));
	assert_int_equal(res.queued, 1);
	c = syn;
	c.ct = FM_CT_ESTABLISHED;	/* took over an old flow's entry */
	assert_null(fm_check(&w, &c, &res, why, sizeof(why)));
	assert_int_equal(res.queued, 1);
	c = syn;
	c.dport = 2;	/* unfenced: detect_any_port's to read */
	assert_null(fm_check(&w, &c, &res, why, sizeof(why)));
	assert_int_equal(res.queued, 1);
	assert_int_equal(res.logged, 0);
	c = syn;
	c.sock = FM_SOCK_WEB;
	assert_null(fm_check(&w, &c, &res, why, sizeof(why)));
	assert_int_equal(res.queued, 1);
	assert_int_equal(res.logged, 0);
	fm_world_free(&w);
}

/*
 * An audited flow's segment that begins with the DATA line (lower case
 * here): copied, accepted, and the flow released in the kernel (ct mark
 * allow), both families; any other segment of it stays audited and copied.
 */
static void
an_audited_flow_is_released_in_the_kernel_at_its_data_line(void **state)
{
	struct fm_world w;
	char err[NM_ERR_MAX + 64], why[WHY_MAX];
	struct fm_case c = { .ct = FM_CT_ESTABLISHED, .ctmark = MARK_INSPECT, .ct_foreign = 1,
	    .sock = FM_SOCK_WEB, .flags = 6, .payload = 1 };
	struct fm_daemon d = { .w = &w, .c = &c, .last = MARK_NONE };
	struct nm_packet p;
	struct nm_result res;

	(void)state;
	assert_int_equal(fm_flags[c.flags], TH_PUSH | TH_ACK);
	assert_int_equal(fm_world_init(&w, false, false, ACTION_AUDIT, ruleset_build, err,
	    sizeof(err)), 0);
	for (c.v6 = 0; c.v6 <= 1; c.v6++)
		for (c.data_line = 0; c.data_line <= 1; c.data_line++) {
			assert_null(fm_check(&w, &c, &res, why, sizeof(why)));
			fm_packet(&c, &p);
			nm_run(w.rs, &p, fm_answer, &d, &res);
			assert_int_equal(res.final, NM_ACCEPT);
			assert_int_equal(res.queued, 0);
			assert_int_equal(res.logged, 1);
			assert_int_equal((p.ctmark & FM_MASK) >> 20,
			    c.data_line ? MARK_ALLOW : MARK_INSPECT);
			assert_int_equal(p.ctmark & ~FM_MASK, FM_FOREIGN);
		}
	fm_world_free(&w);
}

/*
 * A flooding uid in @refused_uids: its SYNs to a fenced port are reset in
 * the kernel, both families, never queued; the self-check's probe from it,
 * its SYNs to this host (allow_local) and its packets of a flow already
 * allowed are not its to take, and neither are an MTA's or another web
 * user's SYNs.
 */
static void
a_refused_uid_is_reset_in_the_kernel_and_nothing_else_is(void **state)
{
	struct fm_world w;
	char err[NM_ERR_MAX + 64], why[WHY_MAX];
	struct fm_case syn = { .ct = FM_CT_NEW, .sock = FM_SOCK_REFUSED, .flags = 0 };
	struct fm_case c;
	struct nm_result res;

	(void)state;
	assert_int_equal(fm_world_init(&w, false, false, ACTION_REJECT, ruleset_build, err,
	    sizeof(err)), 0);
	for (syn.v6 = 0; syn.v6 <= 1; syn.v6++) {
		c = syn;
		assert_null(fm_check(&w, &c, &res, why, sizeof(why)));
		assert_int_equal(res.final, NM_REJECT);
		assert_int_equal(res.queued, 0);
		c.dport = 1;	/* 587 */
		assert_null(fm_check(&w, &c, &res, why, sizeof(why)));
		assert_int_equal(res.final, NM_REJECT);
		assert_int_equal(res.queued, 0);
	}
	c = syn;
	c.probe_mark = 1;
	assert_null(fm_check(&w, &c, &res, why, sizeof(why)));
	assert_int_equal(res.queued, 1);	/* the daemon decides and logs it */
	c = syn;
	c.sock = FM_SOCK_WEB;
	assert_null(fm_check(&w, &c, &res, why, sizeof(why)));
	assert_int_equal(res.queued, 1);
	c = syn;
	c.sock = FM_SOCK_MTA;
	assert_null(fm_check(&w, &c, &res, why, sizeof(why)));
	assert_int_equal(res.final, NM_ACCEPT);
	assert_int_equal(res.queued, 0);
	c = syn;
	c.local = 1;
	assert_null(fm_check(&w, &c, &res, why, sizeof(why)));
	assert_int_equal(res.final, NM_ACCEPT);
	c = syn;
	c.ct = FM_CT_ESTABLISHED;
	c.ctmark = MARK_ALLOW;
	c.flags = 6;	/* PSH|ACK of a flow allowed before the flood */
	assert_null(fm_check(&w, &c, &res, why, sizeof(why)));
	assert_int_equal(res.final, NM_ACCEPT);
	c = syn;
	c.dport = 2;	/* a port nobody fences */
	assert_null(fm_check(&w, &c, &res, why, sizeof(why)));
	assert_int_equal(res.final, NM_ACCEPT);
	fm_world_free(&w);
}

/* A batch of the golden ruleset, then what STEPS adds to it, as the model loads it. */
static int
load_with(struct nm_ruleset *rs, int (*steps)(struct nl_batch *))
{
	static const uint16_t ports[] = { 25, 465, 587 };
	static const uid_t mta[] = { FM_UID_MTA };
	struct ruleset_spec sp = {
		.table = TABLE_NAME, .ports = ports, .nports = 3, .mta_uids = mta, .nmta = 1,
		.allow_local = true, .queue_num = 0, .audit_group = 2525, .audit_snaplen = 4608,
		.data_release = true,
		.mark_mask = 0x00700000, .trap = true, .redirect = true, .trap_port = 10025,
		.redirect_port = 25,
	};
	struct nl_batch b;
	const void *data;
	size_t len;
	int rc;

	assert_int_equal(nl_batch_init(&b), 0);
	assert_int_equal(ruleset_build(&b, &sp, false), 0);
	assert_int_equal(ruleset_build_refused_add(&b, TABLE_NAME, FM_UID_REFUSED, 70000), 0);
	assert_int_equal(steps(&b), 0);
	assert_int_equal(nl_batch_finish(&b, &data, &len), 0);
	rc = nm_load(rs, data, len);
	nl_batch_free(&b);
	return rc;
}

static int
element_then_object(struct nl_batch *b)
{
	uid_t uid = FM_UID_REFUSED;

	return ruleset_build_refused_del(b, TABLE_NAME, &uid) < 0 ? -1 :
	    ruleset_build_refused_forget(b, TABLE_NAME, FM_UID_REFUSED);
}

static int
flush_then_object(struct nl_batch *b)
{
	return ruleset_build_refused_del(b, TABLE_NAME, NULL) < 0 ? -1 :
	    ruleset_build_refused_forget(b, TABLE_NAME, FM_UID_REFUSED);
}

static int
object_first(struct nl_batch *b)
{
	return ruleset_build_refused_forget(b, TABLE_NAME, FM_UID_REFUSED);
}

/*
 * A refused uid leaves as refuse.c takes it out: its element first (alone
 * or by a flush of the map), its counter object after; the object cannot
 * go while the element names it (the kernel's EBUSY), so its count can
 * never vanish under a packet the element still matched.
 */
static void
a_refused_uid_leaves_by_its_element_then_its_object(void **state)
{
	struct nm_ruleset *rs = calloc(1, sizeof(*rs));
	int si;

	(void)state;
	assert_non_null(rs);
	assert_int_equal(load_with(rs, element_then_object), 0);
	assert_true((si = nm_set_find(rs, "refused_uids", 0)) >= 0);
	assert_int_equal(rs->sets[si].n, 0);
	assert_int_equal(rs->nobjs, 0);
	assert_int_equal(load_with(rs, flush_then_object), 0);
	assert_int_equal(rs->sets[si].n, 0);
	assert_int_equal(rs->nobjs, 0);
	assert_int_equal(load_with(rs, object_first), -1);
	assert_non_null(strstr(rs->err, "deleted while an element names it"));
	free(rs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_packet_leaves_on_its_second_pass_xt_queue),
		cmocka_unit_test(every_packet_leaves_on_its_second_pass_native_queue),
		cmocka_unit_test(every_packet_leaves_on_its_second_pass_any_port_xt_queue),
		cmocka_unit_test(every_packet_leaves_on_its_second_pass_any_port_native_queue),
		cmocka_unit_test(ipv6_packets_leave_on_their_second_pass_too),
		cmocka_unit_test(a_verdict_joined_with_its_ct_copy_loops_on_packets_without_conntrack),
		cmocka_unit_test(a_queue_rule_without_its_socket_guard_queues_the_kernels_resets),
		cmocka_unit_test(a_syn_on_an_old_flows_entry_is_decided_afresh),
		cmocka_unit_test(a_trap_without_its_after_nat_guard_leaves_the_host),
		cmocka_unit_test(a_redirect_without_its_after_nat_guards_leaves_the_host),
		cmocka_unit_test(an_expression_the_model_does_not_know_fails_loudly),
		cmocka_unit_test(a_refused_uid_is_reset_in_the_kernel_and_nothing_else_is),
		cmocka_unit_test(an_audited_uid_is_audited_in_the_kernel_and_nothing_else_is),
		cmocka_unit_test(an_audited_flow_is_released_in_the_kernel_at_its_data_line),
		cmocka_unit_test(a_refused_uid_leaves_by_its_element_then_its_object),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
