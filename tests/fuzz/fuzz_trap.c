/*
 * libFuzzer: a trap session fed a client's bytes in pieces of varying size
 * (the first byte picks them): line splitting across reads, the overlong
 * and bad-command bounds, DATA with dot-unstuffing, the byte bound, through
 * trap_session.c's one entry point; nothing is sent (the session has no
 * socket).
 */
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config cfg;
	struct trap_session *s;
	size_t piece, off = 1;

	if (size == 0)
		return 0;
	cfg.trap_bytes = 16384;
	strlcpy_sg(cfg.trap_reply, "5.7.1 fuzzing", sizeof(cfg.trap_reply));
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return 0;
	s->fd = -1;
	piece = 1 + data[0] % 97;
	while (off < size) {
		size_t n = size - off < piece ? size - off : piece;

		if (trap_session_feed(s, &cfg, (const char *)data + off, n) != NULL)
			break;
		off += n;
		piece = 1 + (piece * 31 + data[off - 1]) % 97;
	}
	free(s);
	return 0;
}
