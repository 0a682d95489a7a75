/*
 * when.c — the times an admin types after --since and --until: "10m", "2h",
 * "3d", "45s" ago, or a date "2026-11-22[T10:00[:SS]][Z]" (local time unless
 * Z). Pure: it reads the clock only through the NOW it is given, and never
 * prints; log, top and mta-report share it, so the forms are the same
 * everywhere.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smtpguard.h"

#define AGO_MAX		(10L * 366 * 86400)	/* "--since 5000d" is a typo */

/* S as seconds since the epoch; -1 if it is none of the forms above. */
int
when_parse(const char *s, time_t now, time_t *when)
{
	struct tm tm;
	char *end;
	time_t t;

	if (s[0] >= '0' && s[0] <= '9' && strchr(s, '-') == NULL) {
		unsigned long n = strtoul(s, &end, 10);
		long mult = 0;

		if (strcmp(end, "s") == 0)
			mult = 1;
		else if (strcmp(end, "m") == 0)
			mult = 60;
		else if (strcmp(end, "h") == 0)
			mult = 3600;
		else if (strcmp(end, "d") == 0)
			mult = 86400;
		if (mult == 0 || end == s || n > (unsigned long)(AGO_MAX / mult))
			return -1;
		t = now - (time_t)n * mult;
	} else {
		bool utc;

		memset(&tm, 0, sizeof(tm));
		if ((end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL &&
		    (end = strptime(s, "%Y-%m-%dT%H:%M", &tm)) == NULL &&
		    (end = strptime(s, "%Y-%m-%d", &tm)) == NULL)
			return -1;
		utc = strcmp(end, "Z") == 0;
		if (*end != '\0' && !utc)
			return -1;
		tm.tm_isdst = -1;
		t = utc ? timegm(&tm) : mktime(&tm);
		if (t == (time_t)-1)
			return -1;
	}
	*when = t;
	return 0;
}

/* The same, as the RFC 3339 UTC string the event log's "ts" is compared with. */
int
when_parse_ts(const char *s, time_t now, char *out, size_t len)
{
	time_t t;

	if (when_parse(s, now, &t) < 0)
		return -1;
	struct timespec ts = { .tv_sec = t };
	event_time(&ts, out, len);
	return 0;
}
