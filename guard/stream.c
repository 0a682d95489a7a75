/*
 * stream.c — one direction of a TCP connection put back in order by
 * sequence number, within fixed bounds. Bytes already delivered
 * (retransmissions, overlaps) are trimmed away; segments that arrive ahead
 * of a gap wait in a small store until the gap fills. When they would
 * overflow the store, the stream is "incomplete" for good and the caller
 * stops reading it. Sequence numbers compare in serial-number arithmetic
 * (RFC 1982), so a stream may cross 2^32. It never allocates, never reads
 * TCP flags and never guesses a missing byte: pure, no I/O.
 */
#include <string.h>

#include "smtpguard.h"

/* d > 0: a is after b, in serial arithmetic over 32 bits. */
static int32_t
seq_diff(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

void
stream_init(struct stream *s, uint32_t isn)
{
	memset(s, 0, sizeof(*s));
	s->next = isn + 1;	/* the SYN takes one sequence number */
}

size_t
stream_pending(const struct stream *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->npend; i++)
		n += s->pend[i].len;
	return n;
}

/*
 * Segments delivered by the previous call were left in the store so the
 * chunks handed out stayed valid; close the holes they left now.
 */
static void
compact(struct stream *s)
{
	bool done[STREAM_PENDING_MAX] = { false };
	size_t at = 0;

	for (size_t k = 0; k < s->npend; k++) {
		size_t low = STREAM_PENDING_MAX;

		/* Move the lowest offset first, so no move overwrites a segment still to move. */
		for (size_t i = 0; i < s->npend; i++)
			if (!done[i] && (low == STREAM_PENDING_MAX ||
			    s->pend[i].off < s->pend[low].off))
				low = i;
		done[low] = true;
		memmove(s->store + at, s->store + s->pend[low].off, s->pend[low].len);
		s->pend[low].off = at;
		at += s->pend[low].len;
	}
	s->used = at;
	s->stale = false;
}

/* Adds [seq, seq+len) to the store where it is not there yet; false if it does not fit. */
static bool
hold(struct stream *s, uint32_t seq, const uint8_t *data, size_t len)
{
	struct stream_seg piece[STREAM_PENDING_MAX + 1];
	size_t npiece = 0, bytes = 0;
	uint32_t cur = seq, end = seq + (uint32_t)len;

	/* The parts of the segment no held segment covers yet (pend is in order). */
	for (size_t i = 0; i < s->npend && seq_diff(cur, end) < 0; i++) {
		uint32_t ps = s->pend[i].seq, pe = ps + s->pend[i].len;

		if (seq_diff(pe, cur) <= 0)
			continue;
		if (seq_diff(ps, end) >= 0)
			break;
		if (seq_diff(ps, cur) > 0) {
			piece[npiece].seq = cur;
			piece[npiece++].len = ps - cur;
		}
		cur = pe;
	}
	if (seq_diff(end, cur) > 0) {
		piece[npiece].seq = cur;
		piece[npiece++].len = end - cur;
	}
	for (size_t i = 0; i < npiece; i++)
		bytes += piece[i].len;
	if (s->npend + npiece > STREAM_PENDING_MAX || s->used + bytes > STREAM_PENDING_BYTES)
		return false;
	for (size_t i = 0; i < npiece; i++) {
		size_t j = s->npend;

		memcpy(s->store + s->used, data + (piece[i].seq - seq), piece[i].len);
		piece[i].off = s->used;
		s->used += piece[i].len;
		/* Insertion keeps pend in sequence order. */
		while (j > 0 && seq_diff(s->pend[j - 1].seq, piece[i].seq) > 0) {
			s->pend[j] = s->pend[j - 1];
			j--;
		}
		s->pend[j] = piece[i];
		s->npend++;
	}
	return true;
}

enum stream_result
stream_add(struct stream *s, uint32_t seq, const uint8_t *data, size_t len,
    struct stream_chunk out[STREAM_CHUNKS_MAX], size_t *nout)
{
	int32_t ahead;
	size_t n = 0, keep = 0;

	*nout = 0;
	if (s->stale)
		compact(s);
	if (s->incomplete)
		return STREAM_INCOMPLETE;
	if (len > STREAM_SEGMENT_MAX)
		return STREAM_INVALID;
	if (len == 0)
		return STREAM_OK;
	ahead = seq_diff(seq, s->next);
	if (ahead < 0) {
		size_t seen = (size_t)-(int64_t)ahead;

		if (seen >= len)
			return STREAM_OK;	/* a retransmission of delivered bytes */
		data += seen;
		len -= seen;
		seq = s->next;
		ahead = 0;
	}
	if (ahead > 0) {
		if (!hold(s, seq, data, len)) {
			s->incomplete = true;
			return STREAM_INCOMPLETE;
		}
		return STREAM_OK;
	}
	out[n].p = data;
	out[n++].len = len;
	s->next += (uint32_t)len;
	s->delivered += len;
	/* Held segments the new bytes reach: deliver their tails, drop the rest. */
	for (size_t i = 0; i < s->npend; i++) {
		struct stream_seg *g = &s->pend[i];
		uint32_t end = g->seq + g->len;

		if (seq_diff(g->seq, s->next) > 0) {
			s->pend[keep++] = *g;
			continue;
		}
		if (seq_diff(end, s->next) > 0) {
			size_t skip = s->next - g->seq;

			out[n].p = s->store + g->off + skip;
			out[n++].len = g->len - skip;
			s->delivered += g->len - skip;
			s->next = end;
		}
		s->stale = true;
	}
	s->npend = keep;
	*nout = n;
	return STREAM_OK;
}
