/*
 * flow.c: the table of flows followed after their SYN stays bounded and
 * exact, one uid holds no more than its share, and decided flows kept as
 * markers neither count as followed nor hold a share.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "smtpguard.h"

static struct flow_key
key(uint16_t sport)
{
	struct pkt p = { .family = AF_INET, .sport = sport, .dport = 25 };
	struct flow_key k;

	p.src[0] = 192; p.src[1] = 0; p.src[2] = 2; p.src[3] = 1;
	p.dst[0] = 192; p.dst[1] = 0; p.dst[2] = 2; p.dst[3] = 25;
	flow_key_of(&p, &k);
	return k;
}

static void
count_done(struct flow *f, void *arg)
{
	(void)f;
	(*(int *)arg)++;
}

static void
a_flow_is_found_by_its_four_tuple(void **state)
{
	struct flow_table *t = flow_table_new(8);
	struct flow_key k1 = key(40000), k2 = key(40001);
	struct flow *f;

	(void)state;
	assert_non_null(t);
	assert_non_null(f = flow_insert(t, &k1, 100));
	f->flow_id = 7;
	assert_null(flow_lookup(t, &k2));
	assert_ptr_equal(flow_lookup(t, &k1), f);
	assert_int_equal(flow_lookup(t, &k1)->flow_id, 7);
	flow_remove(t, f);
	assert_null(flow_lookup(t, &k1));
	assert_int_equal(flow_count(t), 0);
	flow_table_free(t, NULL, NULL);
}

static void
the_table_refuses_flows_past_its_bound(void **state)
{
	struct flow_table *t = flow_table_new(4);
	int done = 0;

	(void)state;
	for (uint16_t i = 0; i < 4; i++) {
		struct flow_key k = key(i);

		assert_non_null(flow_insert(t, &k, 1));
	}
	struct flow_key k = key(99);
	errno = 0;
	assert_null(flow_insert(t, &k, 1));
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(flow_count(t), 4);
	flow_table_free(t, count_done, &done);
	assert_int_equal(done, 4);
}

static void
idle_flows_expire_and_their_owner_is_told(void **state)
{
	struct flow_table *t = flow_table_new(16);
	int done = 0;

	(void)state;
	for (uint16_t i = 0; i < 10; i++) {
		struct flow_key k = key(i);
		struct flow *f = flow_insert(t, &k, 100);

		f->last_seen = i < 6 ? 100 : 200;
	}
	flow_expire(t, 150, count_done, &done);
	assert_int_equal(done, 6);
	assert_int_equal(flow_count(t), 4);
	struct flow_key old = key(0), fresh = key(7);
	assert_null(flow_lookup(t, &old));
	assert_non_null(flow_lookup(t, &fresh));
	flow_table_free(t, NULL, NULL);
}

static void
one_uid_holds_only_its_share_and_gets_it_back(void **state)
{
	struct flow_table *t = flow_table_new(16);
	struct flow *f[5];

	(void)state;
	assert_non_null(t);
	for (uint16_t i = 0; i < 4; i++) {
		struct flow_key k = key((uint16_t)(40000 + i));

		assert_non_null(f[i] = flow_insert(t, &k, 100));
		if (i < 3)
			assert_int_equal(flow_share_take(t, f[i], 33, 3), 0);
	}
	errno = 0;
	assert_int_equal(flow_share_take(t, f[3], 33, 3), -1);
	assert_int_equal(errno, EDQUOT);
	assert_int_equal(flow_share_take(t, f[3], 34, 3), 0);	/* another uid: its own share */
	/* A flow leaving, or decided, gives its place back. */
	flow_remove(t, f[0]);
	{
		struct flow_key k = key(40010);

		assert_non_null(f[4] = flow_insert(t, &k, 100));
		assert_int_equal(flow_share_take(t, f[4], 33, 3), 0);
	}
	flow_retire(t, f[1], MARK_ALLOW, 100);
	{
		struct flow_key k = key(40011);
		struct flow *g;

		assert_non_null(g = flow_insert(t, &k, 100));
		assert_int_equal(flow_share_take(t, g, 33, 3), 0);
		assert_int_equal(flow_share_take(t, g, 33, 3), 0);	/* taken once only */
		errno = 0;
		assert_int_equal(flow_share_take(t, f[3], 33, 3), 0);	/* f[3] holds 34's */
	}
	flow_table_free(t, NULL, NULL);
}

static void
decided_flows_stay_as_markers_outside_the_count(void **state)
{
	struct flow_table *t = flow_table_new(2);
	struct flow_key k1 = key(40000), k2 = key(40001), k3 = key(40002), r;
	struct flow *f;
	int done = 0;

	(void)state;
	assert_non_null(f = flow_insert(t, &k1, 100));
	assert_non_null(flow_insert(t, &k2, 100));
	assert_null(flow_insert(t, &k3, 100));	/* full */
	flow_retire(t, f, MARK_REJECT, 200);
	assert_int_equal(flow_count(t), 1);
	assert_int_equal(flow_markers(t), 1);
	assert_null(f->who);	/* its attribution is freed */
	assert_ptr_equal(flow_lookup(t, &k1), f);
	assert_int_equal(flow_lookup(t, &k1)->marker, MARK_REJECT);
	assert_non_null(flow_insert(t, &k3, 100));	/* its room is free again */
	/* A reply's key, reversed, is the flow's. */
	flow_key_reverse(&k1, &r);
	assert_int_equal(r.sport, 25);
	assert_int_equal(r.dport, 40000);
	flow_key_reverse(&r, &r);
	assert_memory_equal(&r, &k1, sizeof(r));
	flow_expire_markers(t, 200);
	assert_int_equal(flow_markers(t), 1);	/* retired at 200: kept */
	flow_expire_markers(t, 201);
	assert_int_equal(flow_markers(t), 0);
	assert_null(flow_lookup(t, &k1));
	assert_int_equal(flow_count(t), 2);
	flow_table_free(t, count_done, &done);
	assert_int_equal(done, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_flow_is_found_by_its_four_tuple),
		cmocka_unit_test(the_table_refuses_flows_past_its_bound),
		cmocka_unit_test(idle_flows_expire_and_their_owner_is_told),
		cmocka_unit_test(one_uid_holds_only_its_share_and_gets_it_back),
		cmocka_unit_test(decided_flows_stay_as_markers_outside_the_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
