/*
 * fuzz_fence_passes — bytes become a packet (family, protocol, direction,
 * conntrack state, ct mark and NAT, socket, marks, TCP flags, payload,
 * destination) and a daemon (up or down, its flow table, what it follows,
 * or a scripted sequence of any answers verdict() can give), run through
 * the real ruleset in tests/fuzz/nftmodel.h; any property fencemodel.h
 * checks that fails (no final verdict within two passes, a fenced SYN
 * accepted undecided, the MTA queued, foreign mark bits changed, a
 * socketless packet queued, a reject not carried out) aborts with the story.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fencemodel.h"

#define WHY_MAX	2048

/* native/xt queue x detect_any_port off/on, built once */
static struct fm_world worlds[4];
static bool built[4];

static uint8_t
take(const uint8_t **p, size_t *n)
{
	uint8_t v = 0;

	if (*n > 0) {
		v = **p;
		(*p)++;
		(*n)--;
	}
	return v;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum action actions[] = { ACTION_REJECT, ACTION_TRAP, ACTION_AUDIT,
	    ACTION_REDIRECT };
	char why[WHY_MAX], err[NM_ERR_MAX + 64];
	struct nm_result res;
	struct fm_case c;
	struct fm_world *w;
	unsigned int k;

	k = take(&data, &size) % 4;
	w = &worlds[k];
	if (!built[k]) {
		if (fm_world_init(w, k & 1, k & 2, ACTION_REJECT, ruleset_build, err,
		    sizeof(err)) < 0) {
			fprintf(stderr, "fuzz_fence_passes: %s\n", err);
			abort();
		}
		built[k] = true;
	}
	w->cfg.action = actions[take(&data, &size) % 4];
	memset(&c, 0, sizeof(c));
	c.v6 = take(&data, &size) & 1;
	c.udp = take(&data, &size) % 8 == 7;	/* mostly TCP */
	c.inbound = take(&data, &size) % 4 == 3;
	c.ct = take(&data, &size) % FM_CT_N;
	c.ctmark = take(&data, &size) & 7;
	c.ct_foreign = take(&data, &size) & 1;
	c.nat = take(&data, &size) % FM_NAT_N;
	c.nat_done = take(&data, &size) & 1;
	c.admin_first = take(&data, &size) & 1;
	c.sock = take(&data, &size) % FM_SOCK_N;
	c.probe_mark = take(&data, &size) % 4 == 3;
	c.pmark_foreign = take(&data, &size) & 1;
	c.flags = take(&data, &size) % FM_FLAGS_N;
	c.payload = take(&data, &size) & 1;
	c.dport = take(&data, &size) % FM_DPORTS_N;
	c.local = take(&data, &size) & 1;
	c.down = take(&data, &size) % 8 == 7;
	c.full = take(&data, &size) & 1;
	c.follow = take(&data, &size) % FM_FOLLOW_N;
	c.inspect_done = take(&data, &size) & 1;
	c.probe = take(&data, &size) % (INSPECT_PROBE_OTHER + 1);
	c.scripted = take(&data, &size) & 1;
	c.script = take(&data, &size);
	c.script |= (uint16_t)(take(&data, &size) << 8);
	c.data_line = take(&data, &size) & 1;
	if (fm_check(w, &c, &res, why, sizeof(why)) != NULL) {
		fprintf(stderr, "fuzz_fence_passes: %s\n", why);
		abort();
	}
	return 0;
}
