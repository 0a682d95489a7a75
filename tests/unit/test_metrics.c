/*
 * metrics.c: the counters as Prometheus text. The text is compared with a
 * golden file (tests/fixtures/metrics/golden.prom), and read back by a
 * checker of the exposition format: every sample's family has HELP and TYPE
 * first, names and label names are valid, label values are escaped, counters
 * end in _total, a histogram's buckets are cumulative and end at +Inf. Run
 * from the top of the source tree. SMTPGUARD_GOLDEN_UPDATE=1 rewrites it.
 */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpguard.h"

#define GOLDEN		"tests/fixtures/metrics/golden.prom"
#define T0		1700000000

static char text[METRICS_TEXT_MAX];

static void
sample(struct metrics *m, struct metrics_latency *l, struct metrics_user *u)
{
	memset(m, 0, sizeof(*m));
	memset(l, 0, sizeof(*l));
	m->fence_up = true;
	m->native_queue = false;
	m->queue_num = 3;
	m->started = T0 - 3600;
	m->now = T0;
	m->packets = 41;
	m->packet_bytes = 2460;
	m->decisions[ACTION_REJECT] = 30;
	m->decisions[ACTION_TRAP] = 5;
	m->decisions[ACTION_ALLOW] = 2;
	m->attempts[ACTION_REJECT] = 29;
	m->attempts[ACTION_TRAP] = 5;
	m->attempts[ACTION_ALLOW] = 2;
	m->has_queue_stats = true;
	m->qs.queue_dropped = 7;
	m->qs.user_dropped = 1;
	m->events_lost = 4;
	m->alerts = 2;
	m->trap_sessions = 5;
	m->kernel_refused = 123456;
	m->kernel_refusing = 2;
	m->kernel_audited = 77;
	m->kernel_auditing = 3;
	m->kernel_full = 5;
	m->kernel_errors = 1;
	metrics_latency_add(l, 8000);		/* 8 us */
	metrics_latency_add(l, 10000);		/* exactly on the 10 us edge: le is <= */
	metrics_latency_add(l, 300000);		/* 0.3 ms */
	metrics_latency_add(l, 2000000000);	/* 2 s: only in +Inf */
	m->attrib = l;
	m->mail_gate = true;
	m->mail_up = true;
	m->mail[MAIL_PASS] = 100;
	m->mail[MAIL_HOLD] = 3;
	m->top_users = 10;
	u[0] = (struct metrics_user){ .uid = 1001, .total = 120, .recent = 90 };
	strcpy(u[0].user, "web\"shop\\1\nx");	/* hostile: each escape in one name */
	u[1] = (struct metrics_user){ .uid = 33, .total = 400, .recent = 3 };
	strcpy(u[1].user, "www-data");
	u[2] = (struct metrics_user){ .uid = 5000, .total = 9, .recent = 0 };
	strcpy(u[2].user, "bad\xff");		/* not UTF-8: only the uid */
	m->users = u;
	m->nusers = 3;
}

static bool
valid_name(const char *s, size_t n, bool colon)
{
	if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || (colon && s[0] == ':')))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || (colon && s[i] == ':')))
			return false;
	return true;
}

/* The family a sample belongs to: histograms' _bucket, _sum, _count suffixes off. */
static bool
of_family(const char *name, size_t n, const char *fam, const char *type)
{
	size_t f = strlen(fam);

	if (n == f && memcmp(name, fam, f) == 0)
		return true;
	if (strcmp(type, "histogram") != 0 || n <= f || memcmp(name, fam, f) != 0)
		return false;
	return strncmp(name + f, "_bucket", n - f) == 0 || strncmp(name + f, "_sum", n - f) == 0 ||
	    strncmp(name + f, "_count", n - f) == 0;
}

/*
 * Reads TEXT as the exposition format; fails the test at the first line that
 * breaks it. Returns the number of samples.
 */
static int
check_exposition(const char *t)
{
	char fam[128] = "", type[16] = "", help_of[128] = "";
	char line[1024];
	int samples = 0;
	double last_bucket = -1;

	while (*t != '\0') {
		const char *nl = strchr(t, '\n'), *p;
		size_t n;

		assert_non_null(nl);		/* every line ends in \n, the last too */
		n = (size_t)(nl - t);
		assert_true(n < sizeof(line));
		memcpy(line, t, n);
		line[n] = '\0';
		t = nl + 1;
		if (strncmp(line, "# HELP ", 7) == 0) {
			p = strchr(line + 7, ' ');
			assert_non_null(p);
			assert_true(valid_name(line + 7, (size_t)(p - line - 7), true));
			snprintf(help_of, sizeof(help_of), "%.*s", (int)(p - line - 7), line + 7);
			assert_true(strlen(p + 1) > 0);
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			p = strchr(line + 7, ' ');
			assert_non_null(p);
			snprintf(fam, sizeof(fam), "%.*s", (int)(p - line - 7), line + 7);
			assert_string_equal(fam, help_of);	/* HELP first, then TYPE */
			snprintf(type, sizeof(type), "%s", p + 1);
			assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
			    strcmp(type, "histogram") == 0);
			if (strcmp(type, "counter") == 0)
				assert_true(strlen(fam) > 6 &&
				    strcmp(fam + strlen(fam) - 6, "_total") == 0);
			last_bucket = -1;
			continue;
		}
		assert_true(line[0] != '#');
		/* name{label="value",...} value */
		for (p = line; *p != '\0' && *p != '{' && *p != ' '; p++)
			;
		assert_true(valid_name(line, (size_t)(p - line), true));
		if (!of_family(line, (size_t)(p - line), fam, type))
			fail_msg("sample '%s' outside its family (last TYPE: %s)", line, fam);
		if (*p == '{') {
			p++;
			while (*p != '}') {
				const char *eq = strchr(p, '=');

				assert_non_null(eq);
				assert_true(valid_name(p, (size_t)(eq - p), false));
				assert_true(eq[1] == '"');
				for (p = eq + 2; *p != '"'; p++) {
					assert_true(*p != '\0' && *p != '\n');
					if (*p == '\\') {
						p++;
						assert_true(*p == '\\' || *p == '"' || *p == 'n');
					}
				}
				p++;
				if (*p == ',')
					p++;
				else
					assert_true(*p == '}');
			}
			p++;
		}
		assert_true(*p == ' ');
		{
			char *end;
			double v;

			errno = 0;
			v = strtod(p + 1, &end);
			assert_int_equal(errno, 0);
			assert_true(*end == '\0');	/* no timestamp: the textfile forbids them */
			if (strstr(line, "_bucket{") != NULL) {
				assert_true(v >= last_bucket);	/* cumulative */
				last_bucket = v;
			}
		}
		samples++;
	}
	return samples;
}

static void
counters_match_the_golden_text(void **state)
{
	struct metrics m;
	struct metrics_latency l;
	struct metrics_user u[3];
	int n;

	(void)state;
	sample(&m, &l, u);
	n = metrics_format(&m, text, sizeof(text));
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(text));
	if (getenv("SMTPGUARD_GOLDEN_UPDATE") != NULL) {
		FILE *fp = fopen(GOLDEN, "w");

		assert_non_null(fp);
		fputs(text, fp);
		fclose(fp);
	}
	{
		static char want[METRICS_TEXT_MAX];
		FILE *fp = fopen(GOLDEN, "r");
		size_t got;

		if (fp == NULL)
			fail_msg("%s: %s", GOLDEN, strerror(errno));
		got = fread(want, 1, sizeof(want) - 1, fp);
		fclose(fp);
		want[got] = '\0';
		assert_string_equal(text, want);
	}
}

static void
text_is_valid_exposition_format(void **state)
{
	struct metrics m;
	struct metrics_latency l;
	struct metrics_user u[3];

	(void)state;
	sample(&m, &l, u);
	assert_true(metrics_format(&m, text, sizeof(text)) > 0);
	assert_true(check_exposition(text) > 40);
	/* Each escape, and the name that is not UTF-8 left out. */
	assert_non_null(strstr(text, "smtpguard_user_attempts_total{uid=\"1001\","
	    "user=\"web\\\"shop\\\\1\\nx\"} 120\n"));
	assert_non_null(strstr(text, "smtpguard_user_attempts_total{uid=\"5000\"} 9\n"));
	/* The edge belongs to its bucket, 2 s only to +Inf; the sum is exact. */
	assert_non_null(strstr(text, "smtpguard_attribution_duration_seconds_bucket{le=\"1e-05\"} 2\n"));
	assert_non_null(strstr(text, "smtpguard_attribution_duration_seconds_bucket{le=\"1\"} 3\n"));
	assert_non_null(strstr(text, "smtpguard_attribution_duration_seconds_bucket{le=\"+Inf\"} 4\n"));
	assert_non_null(strstr(text, "smtpguard_attribution_duration_seconds_sum 2.000318000\n"));
}

static void
without_gate_or_queue_stats_those_families_are_absent(void **state)
{
	struct metrics m;
	struct metrics_latency l;
	struct metrics_user u[3];

	(void)state;
	sample(&m, &l, u);
	m.mail_gate = false;
	m.has_queue_stats = false;
	m.nusers = 0;
	assert_true(metrics_format(&m, text, sizeof(text)) > 0);
	check_exposition(text);
	assert_null(strstr(text, "smtpguard_mail_"));
	assert_null(strstr(text, "smtpguard_queue_dropped_total"));
	/* The user families stay, empty: HELP and TYPE say what would be there. */
	assert_non_null(strstr(text, "# TYPE smtpguard_user_attempts_total counter\n"));
}

static void
a_buffer_too_small_is_an_error_not_a_cut_text(void **state)
{
	struct metrics m;
	struct metrics_latency l;
	struct metrics_user u[3];
	char small[512];

	(void)state;
	sample(&m, &l, u);
	errno = 0;
	assert_int_equal(metrics_format(&m, small, sizeof(small)), -1);
	assert_int_equal(errno, ENOBUFS);
}

static void
busiest_users_are_ranked_by_the_last_ten_minutes(void **state)
{
	struct metrics_users *us = metrics_users_new();
	struct metrics_user top[METRICS_TOP_MAX];
	size_t n;

	(void)state;
	assert_non_null(us);
	/* uid 33 was busy an hour ago; uid 1001 starts now, with fewer in all. */
	for (int i = 0; i < 500; i++)
		metrics_users_count(us, 33, T0 - 3600);
	for (int i = 0; i < 120; i++)
		metrics_users_count(us, 1001, T0 - 60);
	metrics_users_count(us, 1002, T0);
	n = metrics_users_top(us, T0, top, 2);
	assert_int_equal(n, 2);
	assert_int_equal(top[0].uid, 1001);
	assert_int_equal(top[0].recent, 120);
	assert_int_equal(top[0].total, 120);
	assert_int_equal(top[1].uid, 1002);
	/* With room for all, the quiet one comes last, by its total. */
	n = metrics_users_top(us, T0, top, 10);
	assert_int_equal(n, 3);
	assert_int_equal(top[2].uid, 33);
	assert_int_equal(top[2].recent, 0);
	assert_int_equal(top[2].total, 500);
	/* Ten minutes later, 1001's minute is out of the window. */
	n = metrics_users_top(us, T0 - 60 + 10 * 60, top, 10);
	assert_int_equal(top[0].uid, 1002);
	assert_int_equal(top[0].recent, 1);
	metrics_users_free(us);
}

static void
the_bound_holds_however_many_users_send(void **state)
{
	struct metrics_users *us = metrics_users_new();
	static struct metrics_user top[METRICS_TOP_MAX];
	size_t n;

	(void)state;
	assert_non_null(us);
	/* More uids than are tracked: every one counted, the oldest slots reused. */
	for (uid_t uid = 10000; uid < 10000 + METRICS_UIDS_MAX + 50; uid++)
		metrics_users_count(us, uid, T0 + (time_t)(uid - 10000) / 100);
	n = metrics_users_top(us, T0 + 100, top, METRICS_TOP_MAX + 50);
	assert_int_equal(n, METRICS_TOP_MAX);
	/* All tie at one attempt, so the lowest uid still tracked leads: the first 50 are gone. */
	assert_int_equal(top[0].uid, 10050);
	assert_int_equal(top[0].total, 1);
	metrics_users_free(us);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(counters_match_the_golden_text),
		cmocka_unit_test(text_is_valid_exposition_format),
		cmocka_unit_test(without_gate_or_queue_stats_those_families_are_absent),
		cmocka_unit_test(a_buffer_too_small_is_an_error_not_a_cut_text),
		cmocka_unit_test(busiest_users_are_ranked_by_the_last_ten_minutes),
		cmocka_unit_test(the_bound_holds_however_many_users_send),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
