/*
 * util.c — small shared helpers: action names, mark bit packing, string copy.
 * Pure: no I/O, no logging.
 */
#include <string.h>
#include <strings.h>

#include "smtpguard.h"

static const char *const action_names[] = {
	[ACTION_NONE] = "none",
	[ACTION_REJECT] = "reject",
	[ACTION_TRAP] = "trap",
	[ACTION_AUDIT] = "audit",
	[ACTION_ALLOW] = "allow",
};

const char *
action_name(enum action a)
{
	if ((size_t)a >= sizeof(action_names) / sizeof(action_names[0]))
		return "none";
	return action_names[a];
}

int
action_parse(const char *s, enum action *a)
{
	for (size_t i = ACTION_REJECT; i < sizeof(action_names) / sizeof(action_names[0]); i++)
		if (strcasecmp(s, action_names[i]) == 0) {
			*a = (enum action)i;
			return 0;
		}
	return -1;
}

/* The state shifted to the mask's lowest set bit; 0 if the mask cannot hold it. */
uint32_t
mark_value(uint32_t mask, enum mark_state st)
{
	if (mask == 0)
		return 0;
	uint32_t v = (uint32_t)st << __builtin_ctz(mask);
	return (v & mask) == v ? v : 0;
}

enum mark_state
mark_state_of(uint32_t mask, uint32_t mark)
{
	if (mask == 0)
		return MARK_NONE;
	uint32_t v = (mark & mask) >> __builtin_ctz(mask);
	return v <= MARK_STATE_MAX ? (enum mark_state)v : MARK_NONE;
}

size_t
strlcpy_sg(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size > 0) {
		size_t k = n < size - 1 ? n : size - 1;
		memcpy(dst, src, k);
		dst[k] = '\0';
	}
	return n;
}
