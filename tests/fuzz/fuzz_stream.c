/*
 * libFuzzer: a client's stream cut into segments in any order, with
 * duplicates and overlaps. Whatever comes out must be the stream's own
 * bytes, in order, each once; "incomplete" must be for good; the store
 * must stay within its bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

#define REF_LEN		8192	/* the stream the segments are cut from */
#define OP_LEN		4	/* offset (2 bytes), length (2 bytes) */

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static uint8_t
ref_byte(size_t i)
{
	return (uint8_t)(i * 7 + (i >> 8));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct stream st;
	static uint8_t ref[REF_LEN];
	struct stream_chunk out[STREAM_CHUNKS_MAX];
	size_t nout, done = 0;
	bool incomplete = false;
	uint32_t isn;

	if (size < 4)
		return 0;
	for (size_t i = 0; i < REF_LEN; i++)
		ref[i] = ref_byte(i);
	isn = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
	stream_init(&st, isn);
	for (size_t k = 4; k + OP_LEN <= size; k += OP_LEN) {
		size_t off = ((size_t)data[k] << 8 | data[k + 1]) % REF_LEN;
		size_t len = ((size_t)data[k + 2] << 8 | data[k + 3]) % 2048;
		enum stream_result r;

		if (off + len > REF_LEN)
			len = REF_LEN - off;
		r = stream_add(&st, isn + 1 + (uint32_t)off, ref + off, len, out, &nout);
		if (incomplete && r != STREAM_INCOMPLETE)
			abort();
		if (r == STREAM_INCOMPLETE)
			incomplete = true;
		else if (r != STREAM_OK)
			abort();
		for (size_t i = 0; i < nout; i++) {
			if (done + out[i].len > REF_LEN || memcmp(out[i].p, ref + done, out[i].len) != 0)
				abort();
			done += out[i].len;
		}
		if (st.delivered != done || stream_pending(&st) > STREAM_PENDING_BYTES ||
		    st.npend > STREAM_PENDING_MAX)
			abort();
	}
	return 0;
}
