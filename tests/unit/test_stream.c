/*
 * test_stream.c — the audited client's bytes put back in order: what the
 * inspector reads must be exactly what the client sent, whatever the
 * network did to the segments, or the stream must say "incomplete".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "smtpguard.h"

#define REF_LEN		4000	/* a long pipelined command group */

static struct stream st;
static uint8_t ref[REF_LEN];
static uint8_t got[REF_LEN];
static size_t ngot;

static int
setup(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ref); i++)
		ref[i] = (uint8_t)('a' + i % 26);
	ngot = 0;
	return 0;
}

/* Adds ref[off, off+len) as a segment; appends what comes out to got. */
static enum stream_result
seg(uint32_t isn, size_t off, size_t len)
{
	struct stream_chunk out[STREAM_CHUNKS_MAX];
	size_t nout;
	enum stream_result r;

	r = stream_add(&st, isn + 1 + (uint32_t)off, ref + off, len, out, &nout);
	for (size_t i = 0; i < nout; i++) {
		assert_true(ngot + out[i].len <= sizeof(got));
		memcpy(got + ngot, out[i].p, out[i].len);
		ngot += out[i].len;
	}
	return r;
}

static void
assert_got_prefix(size_t n)
{
	assert_int_equal(ngot, n);
	assert_memory_equal(got, ref, n);
}

static void
in_order_segments_come_out_as_sent(void **state)
{
	struct stream_chunk out[STREAM_CHUNKS_MAX];
	size_t nout;

	(void)state;
	stream_init(&st, 1000);
	assert_int_equal(stream_add(&st, 1001, ref, 10, out, &nout), STREAM_OK);
	assert_int_equal(nout, 1);
	assert_ptr_equal(out[0].p, ref);	/* in order: no copy */
	assert_int_equal(out[0].len, 10);
	assert_int_equal(seg(1000, 10, 20), STREAM_OK);
	assert_int_equal(seg(1000, 30, 5), STREAM_OK);
	assert_int_equal(st.delivered, 35);
	assert_memory_equal(got, ref + 10, 25);
}

static void
retransmission_gives_nothing_twice(void **state)
{
	(void)state;
	stream_init(&st, 7);
	assert_int_equal(seg(7, 0, 100), STREAM_OK);
	assert_int_equal(seg(7, 0, 100), STREAM_OK);
	assert_int_equal(seg(7, 50, 50), STREAM_OK);
	assert_got_prefix(100);
}

static void
overlap_delivers_only_the_new_part(void **state)
{
	(void)state;
	stream_init(&st, 7);
	assert_int_equal(seg(7, 0, 100), STREAM_OK);
	assert_int_equal(seg(7, 60, 90), STREAM_OK);
	assert_got_prefix(150);
}

static void
out_of_order_waits_for_the_gap(void **state)
{
	(void)state;
	stream_init(&st, 7);
	assert_int_equal(seg(7, 200, 100), STREAM_OK);
	assert_int_equal(seg(7, 100, 100), STREAM_OK);
	assert_int_equal(ngot, 0);
	assert_int_equal(stream_pending(&st), 200);
	assert_int_equal(seg(7, 0, 100), STREAM_OK);
	assert_got_prefix(300);
	assert_int_equal(stream_pending(&st), 0);
}

static void
held_segments_that_overlap_are_stored_once(void **state)
{
	(void)state;
	stream_init(&st, 7);
	assert_int_equal(seg(7, 100, 100), STREAM_OK);
	assert_int_equal(seg(7, 300, 100), STREAM_OK);
	assert_int_equal(seg(7, 50, 400), STREAM_OK);	/* spans both and the holes */
	assert_int_equal(stream_pending(&st), 400);
	assert_int_equal(seg(7, 0, 120), STREAM_OK);	/* also overlaps the held bytes */
	assert_got_prefix(450);
}

static void
too_many_held_segments_is_incomplete(void **state)
{
	(void)state;
	stream_init(&st, 7);
	for (size_t i = 0; i < STREAM_PENDING_MAX; i++)
		assert_int_equal(seg(7, 10 + i * 20, 10), STREAM_OK);
	assert_int_equal(seg(7, 10 + STREAM_PENDING_MAX * 20, 10), STREAM_INCOMPLETE);
	/* For good: even the missing bytes cannot repair it. */
	assert_int_equal(seg(7, 0, 10), STREAM_INCOMPLETE);
	assert_int_equal(ngot, 0);
}

static void
gap_bigger_than_the_store_is_incomplete(void **state)
{
	static uint8_t big[STREAM_PENDING_BYTES + 1];
	struct stream_chunk out[STREAM_CHUNKS_MAX];
	size_t nout;

	(void)state;
	stream_init(&st, 7);
	assert_int_equal(stream_add(&st, 8 + 1, big, STREAM_PENDING_BYTES, out, &nout),
	    STREAM_OK);
	assert_int_equal(stream_add(&st, 8 + 1 + STREAM_PENDING_BYTES, big, 1, out, &nout),
	    STREAM_INCOMPLETE);
	stream_init(&st, 7);
	assert_int_equal(stream_add(&st, 8 + 1, big, sizeof(big), out, &nout),
	    STREAM_INCOMPLETE);
}

static void
oversized_segment_is_refused(void **state)
{
	static uint8_t big[STREAM_SEGMENT_MAX + 1];
	struct stream_chunk out[STREAM_CHUNKS_MAX];
	size_t nout;

	(void)state;
	stream_init(&st, 7);
	assert_int_equal(stream_add(&st, 8, big, sizeof(big), out, &nout), STREAM_INVALID);
	assert_int_equal(stream_add(&st, 8, big, STREAM_SEGMENT_MAX, out, &nout), STREAM_OK);
	assert_int_equal(nout, 1);
}

static void
sequence_numbers_wrap_past_two_to_the_32(void **state)
{
	uint32_t isn = 0xffffff00u;

	(void)state;
	stream_init(&st, isn);
	assert_int_equal(seg(isn, 0, 200), STREAM_OK);		/* up to 0x000000c8 */
	assert_int_equal(seg(isn, 400, 100), STREAM_OK);	/* held, past the wrap */
	assert_int_equal(seg(isn, 150, 150), STREAM_OK);	/* overlaps across the wrap */
	assert_int_equal(seg(isn, 0, 255), STREAM_OK);		/* old, before the wrap */
	assert_got_prefix(300);
	assert_int_equal(seg(isn, 300, 100), STREAM_OK);
	assert_got_prefix(500);
}

/* Any order, duplicates and overlaps within the bounds: the same bytes, once. */
static void
shuffled_duplicated_segments_rebuild_the_stream(void **state)
{
	uint32_t rng = 12345, isn = 0xfffff000u;

	(void)state;
	for (int round = 0; round < 200; round++) {
		size_t off = 0;

		stream_init(&st, isn + (uint32_t)round * 97);
		ngot = 0;
		while (off < REF_LEN) {
			size_t len, ahead;

			rng = rng * 1103515245u + 12345u;
			len = 1 + (rng >> 16) % 300;
			rng = rng * 1103515245u + 12345u;
			ahead = (rng >> 16) % 3 == 0 ? (rng >> 18) % 600 : 0;
			if (off + ahead + len <= REF_LEN)
				assert_int_equal(seg(isn + (uint32_t)round * 97, off + ahead, len),
				    STREAM_OK);
			/* Then the bytes in order, from a little behind (a retransmission). */
			rng = rng * 1103515245u + 12345u;
			len = 1 + (rng >> 16) % 200;
			if (off + len > REF_LEN)
				len = REF_LEN - off;
			assert_int_equal(seg(isn + (uint32_t)round * 97, off > 10 ? off - 10 : 0,
			    len + (off > 10 ? 10 : off)), STREAM_OK);
			off = ngot;
		}
		assert_got_prefix(REF_LEN);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(in_order_segments_come_out_as_sent, setup),
		cmocka_unit_test_setup(retransmission_gives_nothing_twice, setup),
		cmocka_unit_test_setup(overlap_delivers_only_the_new_part, setup),
		cmocka_unit_test_setup(out_of_order_waits_for_the_gap, setup),
		cmocka_unit_test_setup(held_segments_that_overlap_are_stored_once, setup),
		cmocka_unit_test_setup(too_many_held_segments_is_incomplete, setup),
		cmocka_unit_test_setup(gap_bigger_than_the_store_is_incomplete, setup),
		cmocka_unit_test_setup(oversized_segment_is_refused, setup),
		cmocka_unit_test_setup(sequence_numbers_wrap_past_two_to_the_32, setup),
		cmocka_unit_test_setup(shuffled_duplicated_segments_rebuild_the_stream, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
