/*
 * policy.c: a SYN from an excepted uid to a covered destination goes out
 * (or is audited), up to the exception's hourly cap; past it, or with no
 * uid, or anywhere else, the configured action applies and the rule says
 * why. Every rule the decision owns is here, without a kernel: the
 * self-check, detect_any_port's unfenced ports and the bytes read there,
 * the mark of each action, what is followed and what a flow that cannot be
 * followed gets. Exceptions come from fixture passwd/group files; time is
 * passed in.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "smtpguard.h"

#define FIX		"tests/fixtures/exceptions/"
#define ERR_MAX		512
#define HOUR		3600
#define T0		1700000040	/* the first second of a minute */

static struct exceptions	 xs;
static struct decision		 d;
static struct config		 cfg;

static void
with(const char *const *lines)
{
	struct exception x;
	char err[ERR_MAX];

	exceptions_free(&xs);
	for (; *lines != NULL; lines++) {
		if (exception_parse(*lines, FIX "passwd", FIX "group", &x, err,
		    sizeof(err)) < 0 || exceptions_add(&xs, &x, err, sizeof(err)) < 0)
			fail_msg("%s: %s", *lines, err);
	}
}

static const struct pkt *
pkt_to(const char *dst, uint16_t dport, uint8_t flags)
{
	static struct pkt p;

	memset(&p, 0, sizeof(p));
	p.family = strchr(dst, ':') != NULL ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(p.family, dst, p.dst), 1);
	p.dport = dport;
	p.sport = 40000;
	p.tcp_flags = flags;
	return &p;
}

static const struct pkt *
syn(const char *dst, uint16_t dport)
{
	return pkt_to(dst, dport, TH_SYN);
}

/* The query the fence asks once the sender is named. */
static struct policy_query
named(uid_t uid, bool has_uid, const struct pkt *p, time_t now)
{
	return (struct policy_query){
		.cfg = &cfg, .exc = &xs, .pkt = p, .named = true, .has_uid = has_uid,
		.uid = uid, .now = now,
	};
}

static void
decide_as(enum action action, uid_t uid, bool has_uid, const struct pkt *p, time_t now)
{
	struct policy_query q = named(uid, has_uid, p, now);

	cfg.action = action;
	policy_decide(&q, &d);
}

static void
decide(uid_t uid, const char *dst, uint16_t dport, time_t now)
{
	decide_as(ACTION_REJECT, uid, true, syn(dst, dport), now);
}

static int
setup(void **state)
{
	(void)state;
	config_defaults(&cfg);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	exceptions_free(&xs);
	return 0;
}

static void
narrowed_v4_exception_allows_only_its_net_and_port(void **state)
{
	(void)state;
	with((const char *[]){ "allow 1005 to=192.0.2.0/24 port=587", NULL });
	decide(1005, "192.0.2.10", 587, T0);
	assert_int_equal(d.action, ACTION_ALLOW);
	assert_string_equal(d.rule, "exception:1005");
	assert_ptr_equal(d.matched, &xs.v[0]);
	assert_false(d.cap_exceeded);
	assert_int_equal(xs.v[0].hits, 1);
	assert_int_equal(xs.v[0].last_hit, T0);

	decide(1005, "192.0.2.10", 25, T0 + 1);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_string_equal(d.rule, "default");
	assert_null(d.matched);
	decide(1005, "198.51.100.1", 587, T0 + 2);
	assert_int_equal(d.action, ACTION_REJECT);
	decide(33, "192.0.2.10", 587, T0 + 3);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_int_equal(xs.v[0].hits, 1);
	assert_int_equal(xs.v[0].last_hit, T0);
}

static void
narrowed_v6_exception_allows_only_its_net(void **state)
{
	(void)state;
	with((const char *[]){ "allow newsletter to=2001:db8::/32", NULL });
	decide(1005, "2001:db8:1::25", 25, T0);
	assert_int_equal(d.action, ACTION_ALLOW);
	assert_string_equal(d.rule, "exception:newsletter");
	decide(1005, "2001:db9::25", 25, T0);
	assert_int_equal(d.action, ACTION_REJECT);
	/* 32.1.13.184 has the same first four bytes as 2001:db8::. */
	decide(1005, "32.1.13.184", 25, T0);
	assert_int_equal(d.action, ACTION_REJECT);
}

static void
v4_network_never_matches_a_v6_destination(void **state)
{
	(void)state;
	with((const char *[]){ "allow 1005 to=192.0.2.0/24", NULL });
	/* Its first four bytes are 192.0.2.1. */
	decide(1005, "c000:201::", 25, T0);
	assert_int_equal(d.action, ACTION_REJECT);
	decide(1005, "192.0.2.1", 25, T0);
	assert_int_equal(d.action, ACTION_ALLOW);
}

static void
cap_of_three_lets_three_through_then_the_default_and_an_alert(void **state)
{
	(void)state;
	with((const char *[]){ "allow newsletter cap=3/hour", NULL });
	for (int i = 0; i < 3; i++) {
		decide(1005, "198.51.100.1", 25, T0 + i);
		assert_int_equal(d.action, ACTION_ALLOW);
		assert_false(d.cap_exceeded);
	}
	decide(1005, "198.51.100.1", 25, T0 + 3);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_true(d.cap_exceeded);
	assert_string_equal(d.rule, "cap:newsletter");
	assert_ptr_equal(d.matched, &xs.v[0]);
	assert_int_equal(xs.v[0].hits, 3);
	assert_int_equal(xs.v[0].last_hit, T0 + 2);

	/* Past the cap the configured action applies, whatever it is. */
	decide_as(ACTION_TRAP, 1005, true, syn("198.51.100.1", 25), T0 + 4);
	assert_int_equal(d.action, ACTION_TRAP);
	assert_true(d.cap_exceeded);
}

static void
cap_window_rolls_an_hour_after_each_connection(void **state)
{
	(void)state;
	with((const char *[]){ "allow newsletter cap=3/hour", NULL });
	decide(1005, "198.51.100.1", 25, T0);
	decide(1005, "198.51.100.1", 25, T0 + 1800);
	decide(1005, "198.51.100.1", 25, T0 + 1801);
	assert_int_equal(d.action, ACTION_ALLOW);
	decide(1005, "198.51.100.1", 25, T0 + HOUR - 60);
	assert_true(d.cap_exceeded);
	/* The first connection has left the hour: one more goes through. */
	decide(1005, "198.51.100.1", 25, T0 + HOUR);
	assert_int_equal(d.action, ACTION_ALLOW);
	decide(1005, "198.51.100.1", 25, T0 + HOUR + 1);
	assert_true(d.cap_exceeded);
	/* Refused attempts do not use up the cap. */
	decide(1005, "198.51.100.1", 25, T0 + 1800 + HOUR);
	assert_int_equal(d.action, ACTION_ALLOW);
	decide(1005, "198.51.100.1", 25, T0 + 1800 + HOUR + 1);
	assert_int_equal(d.action, ACTION_ALLOW);
	decide(1005, "198.51.100.1", 25, T0 + 1800 + HOUR + 2);
	assert_true(d.cap_exceeded);
	assert_int_equal(xs.v[0].hits, 6);
}

static void
cap_at_its_maximum_keeps_fixed_memory_and_counts_exactly(void **state)
{
	(void)state;
	with((const char *[]){ "allow newsletter cap=100000/hour", NULL });
	for (int i = 0; i < EXCEPTION_CAP_MAX; i++) {
		decide(1005, "198.51.100.1", 25, T0 + i / 30);
		if (d.action != ACTION_ALLOW)
			fail_msg("connection %d refused under the cap", i);
	}
	decide(1005, "198.51.100.1", 25, T0 + HOUR - 1);
	assert_true(d.cap_exceeded);
}

static void
audit_exception_audits_instead_of_allowing(void **state)
{
	(void)state;
	with((const char *[]){ "allow @wpsites port=587 audit", NULL });
	decide(1002, "203.0.113.5", 587, T0);
	assert_int_equal(d.action, ACTION_AUDIT);
	assert_string_equal(d.rule, "exception:@wpsites");
	decide(1002, "203.0.113.5", 25, T0);
	assert_int_equal(d.action, ACTION_REJECT);
}

static void
plain_exception_seen_in_userspace_during_an_update_is_allowed(void **state)
{
	(void)state;
	with((const char *[]){ "allow www-data", NULL });
	decide(33, "2001:db8::25", 465, T0);
	assert_int_equal(d.action, ACTION_ALLOW);
	assert_string_equal(d.rule, "exception:www-data");
}

static void
unknown_uid_gets_the_default_even_if_its_number_is_excepted(void **state)
{
	(void)state;
	with((const char *[]){ "allow 0", NULL });
	decide_as(ACTION_TRAP, 0, false, syn("192.0.2.1", 25), T0);
	assert_int_equal(d.action, ACTION_TRAP);
	assert_string_equal(d.rule, "default");
	assert_false(d.cap_exceeded);
	assert_int_equal(xs.v[0].hits, 0);
}

static void
capped_exception_overflow_still_meets_the_next_exception(void **state)
{
	(void)state;
	with((const char *[]){ "allow newsletter cap=1/hour", "allow 1005 port=587 audit",
	    NULL });
	decide(1005, "192.0.2.1", 587, T0);
	assert_int_equal(d.action, ACTION_ALLOW);
	assert_string_equal(d.rule, "exception:newsletter");
	decide(1005, "192.0.2.1", 587, T0 + 1);
	assert_int_equal(d.action, ACTION_AUDIT);
	assert_string_equal(d.rule, "exception:1005");
	assert_false(d.cap_exceeded);
	decide(1005, "192.0.2.1", 25, T0 + 2);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_string_equal(d.rule, "cap:newsletter");
	assert_true(d.cap_exceeded);
}

static void
reload_carries_hits_and_an_exhausted_cap(void **state)
{
	struct exceptions old;

	(void)state;
	with((const char *[]){ "allow newsletter cap=2/hour", NULL });
	decide(1005, "192.0.2.1", 25, T0);
	decide(1005, "192.0.2.1", 25, T0 + 1);
	old = xs;
	xs.v = NULL;
	xs.n = 0;
	with((const char *[]){ "allow www-data", "allow newsletter cap=2/hour", NULL });
	exceptions_carry_counters(&xs, &old);
	exceptions_free(&old);
	assert_int_equal(xs.v[1].hits, 2);
	assert_int_equal(xs.v[1].last_hit, T0 + 1);
	decide(1005, "192.0.2.1", 25, T0 + 2);
	assert_true(d.cap_exceeded);
}

static void
clock_set_back_does_not_lock_the_exception_out(void **state)
{
	(void)state;
	with((const char *[]){ "allow newsletter cap=2/hour", NULL });
	decide(1005, "192.0.2.1", 25, T0 + 5 * HOUR);
	decide(1005, "192.0.2.1", 25, T0 + 5 * HOUR);
	decide(1005, "192.0.2.1", 25, T0 + 5 * HOUR);
	assert_true(d.cap_exceeded);
	/* Minutes stamped in the "future" are not held against the present. */
	decide(1005, "192.0.2.1", 25, T0);
	assert_int_equal(d.action, ACTION_ALLOW);
}

static void
self_check_syn_is_refused_and_logged_whoever_sends_it(void **state)
{
	struct policy_query q;

	(void)state;
	with((const char *[]){ "allow 1005", NULL });
	cfg.action = ACTION_TRAP;
	cfg.detect_any_port = true;
	q = named(1005, true, syn("192.0.2.1", 25), T0);
	q.mark = 0x0f000000 | mark_value(cfg.mark_mask, MARK_PROBE);	/* other bits kept */
	policy_decide(&q, &d);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_string_equal(d.rule, "self-check");
	assert_true(d.self_check);
	assert_int_equal(d.mark, MARK_REJECT);
	assert_int_equal(d.follow, POLICY_FOLLOW_NONE);
	assert_false(d.need_sender);
	/* As the daemon always did: the exception it matched counts the hit. */
	assert_int_equal(xs.v[0].hits, 1);

	/* On a port nobody fences it is still an attempt, never a probe. */
	q.pkt = syn("192.0.2.1", 2525);
	q.named = false;
	policy_decide(&q, &d);
	assert_true(d.need_sender);
	assert_int_equal(d.follow, POLICY_FOLLOW_NONE);

	/* Only a SYN is the self-check: a later packet with the mark is not. */
	q = named(33, true, pkt_to("192.0.2.1", 25, TH_ACK), T0);
	q.mark = mark_value(cfg.mark_mask, MARK_PROBE);
	policy_decide(&q, &d);
	assert_false(d.self_check);
	/* ...and a flow met mid-way can be neither trapped nor inspected: reset. */
	assert_int_equal(d.action, ACTION_REJECT);
	assert_string_equal(d.rule, "established-before-fence");
}

static void
self_check_past_a_cap_raises_no_alert(void **state)
{
	struct policy_query q;

	(void)state;
	with((const char *[]){ "allow 1005 cap=1/hour", NULL });
	decide(1005, "192.0.2.1", 25, T0);
	q = named(1005, true, syn("192.0.2.1", 25), T0 + 1);
	q.mark = mark_value(cfg.mark_mask, MARK_PROBE);
	policy_decide(&q, &d);
	assert_string_equal(d.rule, "self-check");
	assert_false(d.cap_exceeded);
}

static void
sender_is_asked_for_only_when_the_answer_needs_it(void **state)
{
	struct policy_query q = { .cfg = &cfg, .exc = &xs, .now = T0 };

	(void)state;
	q.pkt = syn("192.0.2.1", 587);
	policy_decide(&q, &d);
	assert_true(d.need_sender);
	assert_int_equal(d.mark, MARK_REJECT);	/* nothing goes out until it is known */
	assert_int_equal(d.follow, POLICY_FOLLOW_NONE);

	/* Without detect_any_port every queued port is fenced: 2525 is decided the same. */
	q.pkt = syn("192.0.2.1", 2525);
	policy_decide(&q, &d);
	assert_true(d.need_sender);
}

static void
unfenced_port_is_probed_with_detect_any_port(void **state)
{
	struct policy_query q = { .cfg = &cfg, .exc = &xs, .now = T0 };

	(void)state;
	cfg.detect_any_port = true;
	q.pkt = syn("192.0.2.1", 2525);
	policy_decide(&q, &d);
	assert_false(d.need_sender);
	assert_int_equal(d.action, ACTION_NONE);	/* no attempt yet */
	assert_int_equal(d.mark, MARK_INSPECT);
	assert_int_equal(d.follow, POLICY_FOLLOW_PROBE);
	assert_int_equal(d.unfollowed, MARK_REJECT);	/* no room to follow: fails closed */
	assert_false(d.implicit_tls);

	/* A flow begun before its SYN was seen cannot be read: reset, as an attempt. */
	q.pkt = pkt_to("192.0.2.1", 2525, TH_ACK);
	policy_decide(&q, &d);
	assert_true(d.need_sender);
	assert_int_equal(d.mark, MARK_REJECT);
	q.named = true;
	policy_decide(&q, &d);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_int_equal(d.mark, MARK_REJECT);
	assert_string_equal(d.rule, "established-before-fence");

	/* A packet queued as followed ("inspect" in its mark) whose flow is lost: reset. */
	q.named = false;
	q.mark = 0x0f000000 | mark_value(cfg.mark_mask, MARK_INSPECT);
	policy_decide(&q, &d);
	assert_true(d.lost);
	assert_false(d.need_sender);
	assert_int_equal(d.mark, MARK_REJECT);
	q.pkt = syn("192.0.2.1", 2525);	/* its SYN again, too */
	policy_decide(&q, &d);
	assert_true(d.lost);
	assert_int_equal(d.mark, MARK_REJECT);
	assert_int_equal(d.follow, POLICY_FOLLOW_NONE);
	assert_int_equal(d.action, ACTION_NONE);
	q.mark = 0;

	/* A fenced port still needs its sender, then the configured action. */
	q.pkt = syn("192.0.2.1", 465);
	policy_decide(&q, &d);
	assert_true(d.need_sender);
	q.named = true;
	q.has_uid = true;
	q.uid = 33;
	policy_decide(&q, &d);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_int_equal(d.mark, MARK_REJECT);
}

static void
every_action_has_its_mark_and_what_to_follow(void **state)
{
	(void)state;
	with((const char *[]){ "allow www-data port=587", NULL });
	decide_as(ACTION_REJECT, 1005, true, syn("192.0.2.1", 25), T0);
	assert_int_equal(d.mark, MARK_REJECT);
	assert_int_equal(d.follow, POLICY_FOLLOW_NONE);

	decide_as(ACTION_TRAP, 1005, true, syn("192.0.2.1", 25), T0);
	assert_int_equal(d.action, ACTION_TRAP);
	assert_int_equal(d.mark, MARK_TRAP);
	assert_int_equal(d.follow, POLICY_FOLLOW_TRAP);
	/* Unfollowed (no room), the trap still answers it. */
	assert_int_equal(d.unfollowed, MARK_TRAP);

	decide_as(ACTION_AUDIT, 1005, true, syn("192.0.2.1", 587), T0);
	assert_int_equal(d.action, ACTION_AUDIT);
	assert_int_equal(d.mark, MARK_INSPECT);
	assert_int_equal(d.follow, POLICY_FOLLOW_AUDIT);
	assert_false(d.implicit_tls);
	decide_as(ACTION_AUDIT, 1005, true, syn("192.0.2.1", 465), T0);
	assert_true(d.implicit_tls);	/* 465 speaks TLS from its first byte */

	decide_as(ACTION_REJECT, 33, true, syn("192.0.2.1", 587), T0);
	assert_int_equal(d.action, ACTION_ALLOW);
	assert_int_equal(d.mark, MARK_ALLOW);
	assert_int_equal(d.follow, POLICY_FOLLOW_NONE);
	assert_false(d.need_sender);
}

static void
audit_that_cannot_be_followed_goes_out_uninspected(void **state)
{
	(void)state;
	with((const char *[]){ "allow 1005 audit", NULL });
	decide(1005, "192.0.2.1", 25, T0);
	assert_int_equal(d.action, ACTION_AUDIT);
	assert_int_equal(d.follow, POLICY_FOLLOW_AUDIT);
	/* No room to follow it: audit means it may go out. */
	assert_int_equal(d.unfollowed, MARK_ALLOW);

	/*
	 * No SYN to anchor the stream (a flow begun before the fence, or a
	 * restart mid-session): reset, and the rule says why; the retry is audited.
	 */
	decide_as(ACTION_REJECT, 1005, true, pkt_to("192.0.2.1", 25, TH_ACK), T0);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_string_equal(d.rule, "established-before-fence");
	assert_int_equal(d.mark, MARK_REJECT);
	assert_int_equal(d.follow, POLICY_FOLLOW_NONE);

	/* A plain allow still lets a flow met mid-way go on. */
	with((const char *[]){ "allow 1006 to=192.0.2.0/24", NULL });
	decide_as(ACTION_REJECT, 1006, true, pkt_to("192.0.2.1", 25, TH_ACK), T0);
	assert_int_equal(d.action, ACTION_ALLOW);
	assert_int_equal(d.mark, MARK_ALLOW);
}

/* A SYN queued after NAT (the admin's DNAT took it to an SMTP port): allow or reject only. */
static void
syn_after_nat_is_never_trapped_or_audited(void **state)
{
	struct policy_query q;

	(void)state;
	with((const char *[]){ "allow 1005 audit", NULL });
	cfg.action = ACTION_REJECT;
	q = named(1005, true, syn("192.0.2.1", 25), T0);
	q.mark = mark_value(cfg.mark_mask, MARK_NAT);
	policy_decide(&q, &d);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_string_equal(d.rule, "after-nat");
	assert_int_equal(d.follow, POLICY_FOLLOW_NONE);
	decide_as(ACTION_TRAP, 33, true, syn("192.0.2.1", 25), T0);
	assert_int_equal(d.action, ACTION_TRAP);	/* before NAT: trapped */
}

/*
 * action redirect: a direct-MX SYN goes to the local MTA, its sender kept
 * for the mail gate; no room to keep it and it is reset. Only port 25 and
 * only before NAT, only with the gate that limits it; per exception too.
 */
static void
redirect_sends_direct_mx_to_the_mta_and_nothing_else(void **state)
{
	struct policy_query q;

	(void)state;
	cfg.mail_gate = true;
	with((const char *[]){ "allow 1005 redirect", "allow www-data port=587", NULL });
	decide_as(ACTION_REDIRECT, 1001, true, syn("192.0.2.1", 25), T0);
	assert_int_equal(d.action, ACTION_REDIRECT);
	assert_string_equal(d.rule, "default");
	assert_int_equal(d.mark, MARK_REDIRECT);
	assert_int_equal(d.follow, POLICY_FOLLOW_REDIRECT);
	/* No room to keep its name for the gate: reset, never handed over unnamed. */
	assert_int_equal(d.unfollowed, MARK_REJECT);
	decide_as(ACTION_REDIRECT, 1001, true, syn("2001:db8::25", 25), T0);
	assert_int_equal(d.mark, MARK_REDIRECT);

	/* 465 would meet a server in clear, 587 carries another provider's password. */
	decide_as(ACTION_REDIRECT, 1001, true, syn("192.0.2.1", 465), T0);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_string_equal(d.rule, "redirect-not-mx");
	assert_int_equal(d.mark, MARK_REJECT);
	assert_int_equal(d.follow, POLICY_FOLLOW_NONE);
	decide_as(ACTION_REDIRECT, 1001, true, syn("192.0.2.1", 587), T0);
	assert_string_equal(d.rule, "redirect-not-mx");
	/* ... but an exception still allows its own port. */
	decide_as(ACTION_REDIRECT, 33, true, syn("192.0.2.1", 587), T0);
	assert_int_equal(d.action, ACTION_ALLOW);

	/* Met mid-way, or after the admin's NAT: NAT cannot be bound again, reset. */
	decide_as(ACTION_REDIRECT, 1001, true, pkt_to("192.0.2.1", 25, TH_ACK), T0);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_string_equal(d.rule, "established-before-fence");
	q = named(1001, true, syn("192.0.2.1", 25), T0);
	q.mark = mark_value(cfg.mark_mask, MARK_NAT);
	policy_decide(&q, &d);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_string_equal(d.rule, "after-nat");

	/* Per exception: the default is reject, this user's direct-MX goes to the MTA. */
	decide_as(ACTION_REJECT, 1005, true, syn("192.0.2.1", 25), T0);
	assert_int_equal(d.action, ACTION_REDIRECT);
	assert_string_equal(d.rule, "exception:1005");
	assert_int_equal(d.mark, MARK_REDIRECT);
	assert_int_equal(xs.v[0].hits, 1);
	decide_as(ACTION_REJECT, 1001, true, syn("192.0.2.1", 25), T0);
	assert_int_equal(d.action, ACTION_REJECT);

	/* The self-check is refused, redirect or not. */
	q = named(1001, true, syn("192.0.2.1", 25), T0);
	q.mark = mark_value(cfg.mark_mask, MARK_PROBE);
	cfg.action = ACTION_REDIRECT;
	policy_decide(&q, &d);
	assert_string_equal(d.rule, "self-check");
	assert_int_equal(d.mark, MARK_REJECT);

	/* No gate (an exception's redirect with [mail] gate = no): nothing unlimited, reset. */
	cfg.mail_gate = false;
	decide_as(ACTION_REJECT, 1005, true, syn("192.0.2.1", 25), T0);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_string_equal(d.rule, "redirect-no-gate");
	assert_int_equal(d.follow, POLICY_FOLLOW_NONE);
}

static void
no_uid_gets_the_default_action_and_its_mark(void **state)
{
	(void)state;
	with((const char *[]){ "allow 0 audit", NULL });
	decide_as(ACTION_AUDIT, 0, false, syn("192.0.2.1", 25), T0);
	assert_string_equal(d.rule, "default");
	assert_int_equal(d.mark, MARK_INSPECT);
	assert_int_equal(d.follow, POLICY_FOLLOW_AUDIT);
	decide_as(ACTION_TRAP, 0, false, syn("192.0.2.1", 25), T0);
	assert_int_equal(d.mark, MARK_TRAP);
	assert_int_equal(xs.v[0].hits, 0);
}

/* A probed flow's bytes, as inspect_any_packet() classified them. */
static void
probe(enum inspect_probe what)
{
	struct policy_query q = {
		.cfg = &cfg, .exc = &xs, .pkt = pkt_to("192.0.2.1", 2465, TH_ACK | TH_PUSH),
		.probe = what, .now = T0,
	};

	cfg.detect_any_port = true;
	policy_decide(&q, &d);
	assert_false(d.need_sender);
	assert_int_equal(d.follow, POLICY_FOLLOW_NONE);
}

static void
probed_flow_speaking_smtp_is_reset_and_anything_else_let_go(void **state)
{
	(void)state;
	probe(INSPECT_PROBE_MORE);
	assert_int_equal(d.mark, MARK_NONE);	/* pass it, keep reading */
	assert_int_equal(d.action, ACTION_NONE);

	probe(INSPECT_PROBE_SMTP);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_int_equal(d.mark, MARK_REJECT);
	assert_string_equal(d.rule, "smtp-on-any-port");
	assert_string_equal(d.proto, "smtp");

	probe(INSPECT_PROBE_TLS);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_string_equal(d.rule, "smtp-on-any-port");
	assert_string_equal(d.proto, "smtp-tls");

	probe(INSPECT_PROBE_OTHER);
	assert_int_equal(d.action, ACTION_NONE);
	assert_int_equal(d.mark, MARK_ALLOW);
	assert_null(d.proto);

	/* Unreadable, or still undecided when its time is up: fails closed, an attempt. */
	probe(INSPECT_PROBE_UNDECIDED);
	assert_int_equal(d.action, ACTION_REJECT);
	assert_int_equal(d.mark, MARK_REJECT);
	assert_string_equal(d.rule, "any-port-undecided");
}

static void
tls_to_a_named_relay_is_reset_by_exact_name_or_star_suffix(void **state)
{
	static const char *const reset[] = {
		"smtp.relay.example", "SMTP.Relay.Example", "out.mailer.example",
		"a.b.mailer.example",
	};
	static const char *const passes[] = {
		"www.example.net", "mailer.example", "xmailer.example", "a.smtp.relay.example",
		"relay.example", "",
	};

	(void)state;
	strlcpy_sg(cfg.mail_relays, "smtp.relay.example, *.mailer.example",
	    sizeof(cfg.mail_relays));
	for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
		if (!policy_mail_relay(reset[i], &cfg))
			fail_msg("TLS to %s is not a relay's", reset[i]);
	for (size_t i = 0; i < sizeof(passes) / sizeof(passes[0]); i++)
		if (policy_mail_relay(passes[i], &cfg))
			fail_msg("TLS to \"%s\" is a relay's", passes[i]);
	/* No relays configured: TLS is never mail. */
	cfg.mail_relays[0] = '\0';
	assert_false(policy_mail_relay("smtp.relay.example", &cfg));
}

static bool
kernel_may_refuse(uid_t uid, const struct pkt *p, uint32_t mark)
{
	struct policy_query q = named(uid, true, p, T0);

	q.mark = mark;
	policy_decide(&q, &d);
	return policy_kernel_refusable(&q, &d);
}

/*
 * The kernel may refuse a flooding uid alone only where this file could
 * never answer anything but "default, reject" for it: no exception of any
 * kind names it (plain, narrowed, capped, audit, redirect, by group), the
 * configured action is reject, and the packet is an unmarked new SYN to a
 * fenced port, whatever its destination or family.
 */
static void
only_a_uid_no_exception_could_ever_match_may_be_refused_in_the_kernel(void **state)
{
	uint32_t probe = mark_value(cfg.mark_mask, MARK_PROBE);
	uint32_t nat = mark_value(cfg.mark_mask, MARK_NAT);

	(void)state;
	with((const char *[]){ "allow 1005 to=192.0.2.0/24 port=587", "allow 1006 cap=1/hour",
	    "allow 1007 audit", "allow @wpsites", "allow 1008 redirect", NULL });
	cfg.action = ACTION_REJECT;
	assert_true(kernel_may_refuse(33, syn("198.51.100.1", 25), 0));
	assert_true(kernel_may_refuse(33, syn("2001:db8::25", 587), 0));
	/* Narrowed elsewhere: this SYN is refused, but the next may not be. */
	assert_false(kernel_may_refuse(1005, syn("198.51.100.1", 25), 0));
	assert_false(kernel_may_refuse(1006, syn("198.51.100.1", 25), 0));
	assert_false(kernel_may_refuse(1007, syn("198.51.100.1", 25), 0));
	assert_false(kernel_may_refuse(1001, syn("198.51.100.1", 25), 0));	/* in @wpsites */
	assert_false(kernel_may_refuse(1003, syn("198.51.100.1", 25), 0));
	assert_false(kernel_may_refuse(1008, syn("198.51.100.1", 25), 0));
	/* The self-check, a SYN after NAT, a flow met mid-way, an unfenced port: never. */
	assert_false(kernel_may_refuse(33, syn("198.51.100.1", 25), probe));
	assert_false(kernel_may_refuse(33, syn("198.51.100.1", 25), nat));
	assert_false(kernel_may_refuse(33, pkt_to("198.51.100.1", 25, TH_ACK), 0));
	assert_false(kernel_may_refuse(33, pkt_to("198.51.100.1", 25, TH_SYN | TH_ACK), 0));
	assert_false(kernel_may_refuse(33, syn("198.51.100.1", 2526), 0));
	/* Another default action: the daemon traps or audits; the kernel cannot. */
	cfg.action = ACTION_TRAP;
	assert_false(kernel_may_refuse(33, syn("198.51.100.1", 25), 0));
	cfg.action = ACTION_REJECT;
	/* No uid: nothing for the kernel to match. */
	{
		struct policy_query q = named(0, false, syn("198.51.100.1", 25), T0);

		policy_decide(&q, &d);
		assert_false(policy_kernel_refusable(&q, &d));
	}
}

static bool
kernel_may_audit(uid_t uid, const struct pkt *p, uint32_t mark)
{
	struct policy_query q = named(uid, true, p, T0);

	q.mark = mark;
	policy_decide(&q, &d);
	return policy_kernel_auditable(&q, &d);
}

/*
 * The kernel may audit a uid alone only where this file would audit every
 * SYN of it whatever its destination: the default action audit and no
 * exception naming the uid, or a plain audit exception the first to name
 * it; never the self-check, a SYN after NAT, a flow met mid-way or an
 * unfenced port.
 */
static void
only_a_uid_audited_whatever_it_names_may_be_audited_in_the_kernel(void **state)
{
	uint32_t probe = mark_value(cfg.mark_mask, MARK_PROBE);
	uint32_t nat = mark_value(cfg.mark_mask, MARK_NAT);

	(void)state;
	with((const char *[]){ "allow 1005 to=192.0.2.0/24 port=587", "allow 1006 cap=1/hour",
	    "allow 1007 audit", "allow 1008 audit port=587", "allow @wpsites port=465",
	    "allow 1001 audit", "allow 1010 audit cap=5/hour", NULL });
	cfg.action = ACTION_REJECT;
	assert_false(kernel_may_audit(33, syn("198.51.100.1", 25), 0));	/* rejected */
	assert_true(kernel_may_audit(1007, syn("198.51.100.1", 25), 0));
	assert_true(kernel_may_audit(1007, syn("2001:db8::25", 587), 0));
	assert_false(kernel_may_audit(1008, syn("198.51.100.1", 587), 0));	/* narrowed */
	assert_false(kernel_may_audit(1001, syn("198.51.100.1", 25), 0));	/* @wpsites first */
	assert_false(kernel_may_audit(1010, syn("198.51.100.1", 25), 0));	/* capped */
	cfg.action = ACTION_AUDIT;
	assert_true(kernel_may_audit(33, syn("198.51.100.1", 25), 0));
	assert_false(kernel_may_audit(1005, syn("198.51.100.1", 25), 0));
	assert_false(kernel_may_audit(1006, syn("198.51.100.1", 25), 0));
	assert_false(kernel_may_audit(33, syn("198.51.100.1", 25), probe));
	assert_false(kernel_may_audit(33, syn("198.51.100.1", 25), nat));
	assert_false(kernel_may_audit(33, pkt_to("198.51.100.1", 25, TH_ACK), 0));
	assert_false(kernel_may_audit(33, syn("198.51.100.1", 2526), 0));
	{
		struct policy_query q = named(0, false, syn("198.51.100.1", 25), T0);

		policy_decide(&q, &d);
		assert_false(policy_kernel_auditable(&q, &d));
	}
}

int
main(void)
{
#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(only_a_uid_no_exception_could_ever_match_may_be_refused_in_the_kernel),
		T(only_a_uid_audited_whatever_it_names_may_be_audited_in_the_kernel),
		T(narrowed_v4_exception_allows_only_its_net_and_port),
		T(narrowed_v6_exception_allows_only_its_net),
		T(v4_network_never_matches_a_v6_destination),
		T(cap_of_three_lets_three_through_then_the_default_and_an_alert),
		T(cap_window_rolls_an_hour_after_each_connection),
		T(cap_at_its_maximum_keeps_fixed_memory_and_counts_exactly),
		T(audit_exception_audits_instead_of_allowing),
		T(plain_exception_seen_in_userspace_during_an_update_is_allowed),
		T(unknown_uid_gets_the_default_even_if_its_number_is_excepted),
		T(capped_exception_overflow_still_meets_the_next_exception),
		T(reload_carries_hits_and_an_exhausted_cap),
		T(clock_set_back_does_not_lock_the_exception_out),
		T(self_check_syn_is_refused_and_logged_whoever_sends_it),
		T(self_check_past_a_cap_raises_no_alert),
		T(sender_is_asked_for_only_when_the_answer_needs_it),
		T(unfenced_port_is_probed_with_detect_any_port),
		T(every_action_has_its_mark_and_what_to_follow),
		T(audit_that_cannot_be_followed_goes_out_uninspected),
		T(syn_after_nat_is_never_trapped_or_audited),
		T(redirect_sends_direct_mx_to_the_mta_and_nothing_else),
		T(no_uid_gets_the_default_action_and_its_mark),
		T(probed_flow_speaking_smtp_is_reset_and_anything_else_let_go),
		T(tls_to_a_named_relay_is_reset_by_exact_name_or_star_suffix),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
