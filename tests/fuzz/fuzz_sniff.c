/*
 * libFuzzer: the two directions of a flow interleaved in random pieces,
 * with ends and a final timeout. Fed once with each run of same-direction
 * pieces joined (one call per run), once with every piece cut again at
 * random: both must give the same answer, for the same reason, with the same
 * record of what was seen; a decided answer must never change or go back to
 * MORE; what is kept must stay within its bounds and be terminated.
 *
 * Input: byte 0 says whether TLS names are relays; then records of a header
 * byte h (bit 0 the direction; bits 1-2: 0-1 feed, 2 end that direction,
 * 3 time out), for a feed one more length byte (length = (h >> 3) << 8 | it),
 * then that many bytes (or what is left).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

#define OPS_MAX		256

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

enum op { FEED, END, FINISH };
struct step {
	enum op		 op;
	enum sniff_dir	 dir;
	const uint8_t	*p;
	size_t		 len;
};

/* A name of odd length is a relay: some names are, some are not. */
static bool
relay_odd(const char *sni, void *arg)
{
	(void)arg;
	return strlen(sni) % 2 == 1;
}

static void
check_bounds(const struct sniff *s)
{
	const char *fields[] = { s->first, s->info.helo, s->info.mail_from, s->info.tls_sni,
	    s->info.reply };

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (memchr(fields[i], '\0', SMTP_FIELD_MAX) == NULL)
			abort();
	if (s->side[SNIFF_CLIENT].bytes > SNIFF_CLIENT_MAX ||
	    s->side[SNIFF_SERVER].bytes > SNIFF_SERVER_MAX || s->tls_len > SNIFF_TLS_MAX ||
	    s->side[SNIFF_CLIENT].len > SMTP_LINE_MAX || s->side[SNIFF_SERVER].len > SMTP_LINE_MAX)
		abort();
	if ((s->result == SNIFF_MORE) != (s->why == NULL))
		abort();
	if (s->result != SNIFF_MORE && (sniff_wants(s, SNIFF_CLIENT) || sniff_wants(s, SNIFF_SERVER)))
		abort();
}

static void
step_result(const struct sniff *s, enum sniff_result *last, enum sniff_result now)
{
	if (now != s->result || (*last != SNIFF_MORE && now != *last))
		abort();	/* decided stays decided, as it was */
	*last = now;
	check_bounds(s);
}

/* Feeds steps; cut != 0: every feed in pieces of 1..cut bytes from a PRNG. */
static enum sniff_result
run(struct sniff *s, const struct step *st, size_t n, bool relay, unsigned int cut,
    uint32_t seed)
{
	enum sniff_result last = SNIFF_MORE;

	sniff_init(s, relay ? relay_odd : NULL, NULL);
	for (size_t i = 0; i < n; i++) {
		if (st[i].op == END) {
			step_result(s, &last, sniff_end(s, st[i].dir));
			continue;
		}
		if (st[i].op == FINISH) {
			step_result(s, &last, sniff_finish(s));
			if (last == SNIFF_MORE)
				abort();	/* timing out always decides */
			continue;
		}
		for (size_t off = 0; off < st[i].len; ) {
			size_t k = st[i].len - off;

			if (cut != 0) {
				seed = seed * 1103515245u + 12345u;
				if (k > 1 + (seed >> 16) % cut)
					k = 1 + (seed >> 16) % cut;
			}
			step_result(s, &last, sniff_feed(s, st[i].dir, st[i].p + off, k));
			off += k;
		}
	}
	return last;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct step given[OPS_MAX], joined[OPS_MAX];
	static struct sniff a, b;
	static uint8_t buf[1 << 17];
	size_t n = 0, nj = 0, at = 1, used = 0;
	bool relay;
	uint32_t seed = 2166136261u;

	if (size < 1 || size > sizeof(buf))
		return 0;
	relay = data[0] & 1;
	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 16777619u;
	while (at < size && n < OPS_MAX) {
		uint8_t h = data[at++];
		struct step *g = &given[n++];

		g->dir = h & 1 ? SNIFF_SERVER : SNIFF_CLIENT;
		g->op = ((h >> 1) & 3) == 2 ? END : ((h >> 1) & 3) == 3 ? FINISH : FEED;
		if (g->op != FEED)
			continue;
		g->len = at < size ? ((size_t)(h >> 3) << 8 | data[at++]) : 0;
		if (g->len > size - at)
			g->len = size - at;
		g->p = data + at;
		at += g->len;
	}
	/* One call per run of same-direction feeds: the bytes joined. */
	for (size_t i = 0; i < n; i++) {
		struct step *j = nj > 0 ? &joined[nj - 1] : NULL;

		if (given[i].op == FEED && j != NULL && j->op == FEED && j->dir == given[i].dir) {
			memcpy(buf + used, given[i].p, given[i].len);
			used += given[i].len;
			j->len += given[i].len;
			continue;
		}
		joined[nj] = given[i];
		if (given[i].op == FEED) {
			memcpy(buf + used, given[i].p, given[i].len);
			joined[nj].p = buf + used;
			used += given[i].len;
		}
		nj++;
	}
	if (run(&a, joined, nj, relay, 0, 0) != run(&b, given, n, relay, 1 + seed % 17, seed))
		abort();
	if (a.why != b.why || a.verb != b.verb || a.shared != b.shared || a.greeted != b.greeted ||
	    strcmp(a.first, b.first) != 0 || strcmp(a.info.helo, b.info.helo) != 0 ||
	    strcmp(a.info.mail_from, b.info.mail_from) != 0 || a.info.nrcpt != b.info.nrcpt ||
	    strcmp(a.info.tls_sni, b.info.tls_sni) != 0 || strcmp(a.info.reply, b.info.reply) != 0 ||
	    a.info.bytes != b.info.bytes)
		abort();
	for (int d = 0; d < 2; d++)
		if (sniff_wants(&a, d) != sniff_wants(&b, d))
			abort();
	return 0;
}
