/*
 * util.c — small shared helpers: action names, mark bit packing, string copy.
 * Pure: no I/O, no logging.
 */
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <sys/stat.h>

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

bool
uid_in_sorted(uid_t uid, const uid_t *uids, size_t n)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (uids[mid] == uid)
			return true;
		if (uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* mkdir -p of PATH's parent directory, new levels with MODE. */
int
ensure_parent_dir(const char *path, mode_t mode)
{
	char dir[PATH_MAX];
	char *slash;

	if (strlcpy_sg(dir, path, sizeof(dir)) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(dir, mode) < 0 && errno != EEXIST)
			return -1;
		if (c == '\0')
			break;
		*p = c;
	}
	return 0;
}
