/*
 * exceptions.c: what an admin writes with `smtpguard allow` or by hand in
 * exceptions.conf is parsed, resolved through fixture passwd/group files,
 * written back unchanged, and refused with a sentence when it is wrong,
 * leaving the set as it was. Run from the top of the source tree.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "smtpguard.h"

#define FIX		"tests/fixtures/exceptions/"
#define PASSWD		FIX "passwd"
#define GROUP		FIX "group"
#define ERR_MAX		1024
#define DIR_BUF		64	/* "/tmp/test_exceptions.XXXXXX" */

static struct exception	 x;	/* ~3 KiB: kept off the test stacks */
static char		 err[ERR_MAX];

static int
parse(const char *line)
{
	err[0] = '\0';
	return exception_parse(line, PASSWD, GROUP, &x, err, sizeof(err));
}

static void
add_line(struct exceptions *xs, const char *line)
{
	assert_int_equal(parse(line), 0);
	assert_int_equal(exceptions_add(xs, &x, err, sizeof(err)), 0);
}

static void
assert_round_trip(const char *line)
{
	char out[EXCEPTION_LINE_MAX];

	assert_int_equal(parse(line), 0);
	assert_int_equal(exception_format(&x, out, sizeof(out)), (int)strlen(line));
	assert_string_equal(out, line);
}

static void
plain_user_is_one_uid_for_the_kernel(void **state)
{
	(void)state;
	assert_round_trip("allow www-data");
	assert_string_equal(x.who, "www-data");
	assert_int_equal(x.nuids, 1);
	assert_int_equal(x.uids[0], 33);
	assert_true(exception_is_plain(&x));
}

static void
narrowed_exception_round_trips(void **state)
{
	static const uint8_t net6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	static const uint8_t net4[4] = { 192, 0, 2, 0 };

	(void)state;
	assert_round_trip("allow 1005 to=192.0.2.0/24,2001:db8::/32 port=587,2525 "
	    "cap=100/hour comment=\"newsletter plugin\"");
	assert_int_equal(x.uids[0], 1005);
	assert_int_equal(x.nto, 2);
	assert_int_equal(x.to[0].family, AF_INET);
	assert_int_equal(x.to[0].prefix, 24);
	assert_memory_equal(x.to[0].addr, net4, sizeof(net4));
	assert_int_equal(x.to[1].family, AF_INET6);
	assert_int_equal(x.to[1].prefix, 32);
	assert_memory_equal(x.to[1].addr, net6, sizeof(net6));
	assert_int_equal(x.nports, 2);
	assert_int_equal(x.ports[0], 587);
	assert_int_equal(x.ports[1], 2525);
	assert_int_equal(x.cap_per_hour, 100);
	assert_false(x.audit);
	assert_string_equal(x.comment, "newsletter plugin");
	assert_false(exception_is_plain(&x));
}

static void
options_in_any_order_are_written_in_one_order(void **state)
{
	char out[EXCEPTION_LINE_MAX];

	(void)state;
	assert_int_equal(parse("allow\t@wpsites  comment=\"wp\"  audit port=587  "
	    "to=198.51.100.7"), 0);
	assert_true(x.audit);
	assert_true(exception_format(&x, out, sizeof(out)) > 0);
	assert_string_equal(out, "allow @wpsites to=198.51.100.7/32 port=587 audit "
	    "comment=\"wp\"");
	assert_round_trip(out);
}

/* allow X --redirect: a line of its own kind, decided in userspace, written back the same. */
static void
redirect_exception_round_trips_and_is_not_plain(void **state)
{
	char *argv[] = { "allow", "www-data", "--redirect", "--comment", "php direct-MX" };
	char line[EXCEPTION_LINE_MAX], out[EXCEPTION_LINE_MAX];

	(void)state;
	assert_int_equal(exception_from_argv(5, argv, line, sizeof(line), err,
	    sizeof(err)), 0);
	assert_string_equal(line, "allow www-data redirect comment=\"php direct-MX\"");
	assert_int_equal(parse(line), 0);
	assert_true(x.redirect);
	assert_false(x.audit);
	assert_false(exception_is_plain(&x));
	assert_true(exception_format(&x, out, sizeof(out)) > 0);
	assert_string_equal(out, line);
	assert_round_trip(out);
}

static void
comment_quotes_and_backslashes_round_trip(void **state)
{
	(void)state;
	assert_round_trip("allow www-data comment=\"say \\\"hi\\\" from C:\\\\mail, "
	    "caf\xc3\xa9\"");
	assert_string_equal(x.comment, "say \"hi\" from C:\\mail, caf\xc3\xa9");
	assert_round_trip("allow www-data comment=\"\\\\\"");
	assert_string_equal(x.comment, "\\");
}

static void
comment_of_exactly_the_limit_is_kept(void **state)
{
	char line[EXCEPTION_LINE_MAX], text[EXCEPTION_COMMENT_MAX + 2];

	(void)state;
	memset(text, 'c', EXCEPTION_COMMENT_MAX);
	text[EXCEPTION_COMMENT_MAX] = '\0';
	snprintf(line, sizeof(line), "allow www-data comment=\"%s\"", text);
	assert_round_trip(line);
	assert_int_equal(strlen(x.comment), EXCEPTION_COMMENT_MAX);
	text[EXCEPTION_COMMENT_MAX] = 'c';
	text[EXCEPTION_COMMENT_MAX + 1] = '\0';
	snprintf(line, sizeof(line), "allow www-data comment=\"%s\"", text);
	assert_int_equal(parse(line), -1);
	assert_string_equal(err, "comment longer than 200 bytes");
}

static void
group_means_listed_members_and_primary_group_users(void **state)
{
	(void)state;
	/* site1, site3 listed; site2's primary group; "ghost" has no account. */
	assert_int_equal(parse("allow @wpsites"), 0);
	assert_string_equal(x.who, "@wpsites");
	assert_int_equal(x.nuids, 3);
	assert_int_equal(x.uids[0], 1001);
	assert_int_equal(x.uids[1], 1002);
	assert_int_equal(x.uids[2], 1003);
}

static void
numeric_uid_is_taken_as_is_and_digit_names_are_names(void **state)
{
	(void)state;
	assert_int_equal(parse("allow 4242"), 0);
	assert_int_equal(x.nuids, 1);
	assert_int_equal(x.uids[0], 4242);
	assert_int_equal(parse("allow 9lives"), 0);
	assert_int_equal(x.uids[0], 1009);
}

static const struct {
	const char	*line;
	const char	*err;
} bad_lines[] = {
	{ "allow www-data to=192.0.2.0/33", "bad destination '192.0.2.0/33' (an IPv4 "
	    "or IPv6 address or network such as 192.0.2.0/24 or 2001:db8::/32, host "
	    "bits clear)" },
	{ "allow www-data to=192.0.2.5/24", "bad destination '192.0.2.5/24'" },
	{ "allow www-data to=2001:db8::/129", "bad destination '2001:db8::/129'" },
	{ "allow www-data to=example.org", "bad destination 'example.org'" },
	{ "allow www-data to=192.0.2.1,192.0.2.1", "destination '192.0.2.1' given twice" },
	{ "allow www-data to=", "empty item in the to list" },
	{ "allow nosuchuser", "unknown user 'nosuchuser' (not in " PASSWD ")" },
	{ "allow @nosuchgroup", "unknown group 'nosuchgroup' (not in " GROUP ")" },
	{ "allow @empty", "group 'empty' has no users in " PASSWD },
	{ "allow 4294967295", "uid 4294967295 is out of range" },
	{ "allow 99999999999999999999", "uid 99999999999999999999 is out of range" },
	{ "allow www-data port=0", "bad port '0' (1-65535)" },
	{ "allow www-data port=65536", "bad port '65536' (1-65535)" },
	{ "allow www-data port=smtp", "bad port 'smtp' (1-65535)" },
	{ "allow www-data port=+25", "bad port '+25' (1-65535)" },
	{ "allow www-data port=587,,25", "empty item in the port list" },
	{ "allow www-data port=587,", "empty item in the port list" },
	{ "allow www-data port=25,25", "port 25 given twice" },
	{ "allow www-data port=25 port=587", "'port' given twice" },
	{ "allow www-data cap=0/hour", "bad cap '0/hour' (N/hour, N from 1 to 100000)" },
	{ "allow www-data cap=100001/hour", "bad cap '100001/hour'" },
	{ "allow www-data cap=5/day", "bad cap '5/day'" },
	{ "allow www-data cap=/hour", "bad cap '/hour'" },
	{ "allow www-data cap=-1/hour", "bad cap '-1/hour'" },
	{ "allow www-data audit audit", "'audit' given twice" },
	{ "allow www-data redirect redirect", "'redirect' given twice" },
	{ "allow www-data audit redirect", "'audit' and 'redirect' exclude each other" },
	{ "allow www-data redirect audit", "'audit' and 'redirect' exclude each other" },
	{ "allow www-data redirect=yes", "unknown option 'redirect=yes'" },
	{ "allow www-data audit=yes", "unknown option 'audit=yes'" },
	{ "allow www-data ports=25", "unknown option 'ports=25' (to=, port=, audit, redirect, cap=, "
	    "comment=)" },
	{ "allow www-data comment=\"two\nlines\"", "comment holds a control character" },
	{ "allow www-data comment=\"tab\there\"", "comment holds a control character" },
	{ "allow www-data comment=\"open", "comment has no closing quote" },
	{ "allow www-data comment=bare", "comment must be in double quotes" },
	{ "allow www-data comment=\"a\\nb\"", "comment: only \\\" and \\\\ may follow a "
	    "backslash" },
	{ "allow www-data comment=\"\xc3\x28\"", "comment is not valid UTF-8" },
	{ "allow www-data comment=\"\xed\xa0\x80\"", "comment is not valid UTF-8" },
	{ "allow www-data comment=\"a\"b", "text right after the comment's closing quote" },
	{ "allow www-data comment=\"a\" comment=\"b\"", "'comment' given twice" },
	{ "deny www-data", "expected 'allow USER|UID|@GROUP [options]', got 'deny'" },
	{ "", "expected 'allow USER|UID|@GROUP [options]', got ''" },
	{ "allow", "allow whom? (USER, UID or @GROUP)" },
	{ "allow comment=\"x\"", "'comment=\"x\"' is not a user name, uid or @group" },
	{ "allow @", "'@' is not a user name, uid or @group" },
	{ "allow www;rm", "'www;rm' is not a user name, uid or @group" },
};

static void
every_bad_line_is_refused_with_its_reason(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
		if (parse(bad_lines[i].line) != -1 ||
		    strncmp(err, bad_lines[i].err, strlen(bad_lines[i].err)) != 0)
			fail_msg("line %zu \"%s\": got error \"%s\", want \"%s\"", i,
			    bad_lines[i].line, err, bad_lines[i].err);
	}
}

static void
line_too_long_is_refused(void **state)
{
	char line[EXCEPTION_LINE_MAX + 1];

	(void)state;
	memset(line, ' ', sizeof(line));
	memcpy(line, "allow www-data", 14);
	line[EXCEPTION_LINE_MAX - 1] = '\0';
	assert_int_equal(parse(line), 0);
	line[EXCEPTION_LINE_MAX - 1] = ' ';
	line[EXCEPTION_LINE_MAX] = '\0';
	assert_int_equal(parse(line), -1);
	assert_string_equal(err, "line longer than 1023 bytes");
}

static void
more_destinations_or_ports_than_the_bound_are_refused(void **state)
{
	char line[EXCEPTION_LINE_MAX];
	int off;

	(void)state;
	off = snprintf(line, sizeof(line), "allow www-data to=");
	for (int i = 0; i <= EXCEPTION_CIDRS_MAX; i++)
		off += snprintf(line + off, sizeof(line) - (size_t)off, "%s198.51.100.%d",
		    i ? "," : "", i);
	assert_int_equal(parse(line), -1);
	assert_string_equal(err, "more than 16 destinations");

	off = snprintf(line, sizeof(line), "allow www-data port=");
	for (int i = 0; i <= EXCEPTION_PORTS_MAX; i++)
		off += snprintf(line + off, sizeof(line) - (size_t)off, "%s%d", i ? "," : "",
		    2500 + i);
	assert_int_equal(parse(line), -1);
	assert_string_equal(err, "more than 16 ports");
}

static void
line_that_would_not_fit_once_written_out_is_refused(void **state)
{
	char line[EXCEPTION_LINE_MAX];
	int off;

	(void)state;
	/* Each "::ffff:fffN:ffff" is written "::ffff:255.24N.255.255/128". */
	off = snprintf(line, sizeof(line), "allow %0*d to=", USER_NAME_MAX, 7);
	for (int i = 0; i < EXCEPTION_CIDRS_MAX; i++)
		off += snprintf(line + off, sizeof(line) - (size_t)off, "%s::ffff:fff%x:ffff",
		    i ? "," : "", i);
	off += snprintf(line + off, sizeof(line) - (size_t)off, " port=");
	for (int i = 0; i < EXCEPTION_PORTS_MAX; i++)
		off += snprintf(line + off, sizeof(line) - (size_t)off, "%s%d", i ? "," : "",
		    60000 + i);
	off += snprintf(line + off, sizeof(line) - (size_t)off, " audit cap=100000/hour "
	    "comment=\"");
	for (int i = 0; i < EXCEPTION_COMMENT_MAX; i++)
		off += snprintf(line + off, sizeof(line) - (size_t)off, "\\\"");
	snprintf(line + off, sizeof(line) - (size_t)off, "\"");
	assert_true(strlen(line) < EXCEPTION_LINE_MAX - 1);
	assert_int_equal(parse(line), -1);
	assert_string_equal(err, "line longer than 1023 bytes once written out");
}

static void
hostile_input_is_echoed_as_short_printable_ascii(void **state)
{
	char line[EXCEPTION_LINE_MAX];

	(void)state;
	assert_int_equal(parse("allow www-data \x1b[31mred=\xff"), -1);
	assert_string_equal(err, "unknown option '?[31mred=?' (to=, port=, audit, redirect, cap=, "
	    "comment=)");
	memset(line, 0, sizeof(line));
	memcpy(line, "allow www-data port=", 20);
	memset(line + 20, '9', 500);
	assert_int_equal(parse(line), -1);
	assert_non_null(strstr(err, "99999...' (1-65535)"));
	assert_true(strlen(err) < 120);
}

static void
cli_options_become_one_parseable_line(void **state)
{
	char *argv[] = { "allow", "1005", "--to", "192.0.2.0/24,2001:db8::/32", "--port",
	    "587", "--audit", "--cap", "100/hour", "--comment", "the \"news\" plugin" };
	char line[EXCEPTION_LINE_MAX];

	(void)state;
	assert_int_equal(exception_from_argv(11, argv, line, sizeof(line), err,
	    sizeof(err)), 0);
	assert_string_equal(line, "allow 1005 to=192.0.2.0/24,2001:db8::/32 port=587 "
	    "audit cap=100/hour comment=\"the \\\"news\\\" plugin\"");
	assert_int_equal(parse(line), 0);
	assert_string_equal(x.comment, "the \"news\" plugin");
	assert_int_equal(exception_from_argv(2, argv, line, sizeof(line), err,
	    sizeof(err)), 0);
	assert_string_equal(line, "allow 1005");
}

static void
cli_mistakes_are_refused_before_reaching_the_daemon(void **state)
{
	static const struct {
		int		 argc;
		const char	*argv[6];
		const char	*err;
	} cases[] = {
		{ 1, { "allow" }, "usage: smtpguard allow USER|UID|@GROUP" },
		{ 2, { "allow", "--to" }, "usage: smtpguard allow" },
		{ 3, { "allow", "www-data", "--from" }, "unknown option '--from'" },
		{ 3, { "allow", "www-data", "--to" }, "'--to' needs one value, given once" },
		{ 5, { "allow", "www-data", "--port", "25", "--port" },
		    "'--port' needs one value, given once" },
		{ 4, { "allow", "www-data", "--to", "192.0.2.0/33" },
		    "bad destination '192.0.2.0/33'" },
		{ 4, { "allow", "www-data", "--cap", "3" }, "bad cap '3'" },
		{ 4, { "allow", "www-data", "--comment", "line\nbreak" },
		    "comment holds a control character" },
		{ 4, { "allow", "www-data", "--audit", "--audit" }, "'--audit' given twice" },
		{ 4, { "allow", "www-data", "--redirect", "--redirect" },
		    "'--redirect' given twice" },
		{ 4, { "allow", "www-data", "--redirect", "--audit" },
		    "'--audit' and '--redirect' exclude each other" },
		{ 2, { "allow", "a b" }, "'a b' is not a user name, uid or @group" },
	};
	char line[EXCEPTION_LINE_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		if (exception_from_argv(cases[i].argc, (char **)cases[i].argv, line,
		    sizeof(line), err, sizeof(err)) != -1 ||
		    strncmp(err, cases[i].err, strlen(cases[i].err)) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, cases[i].err);
	}
}

static void
duplicate_is_already_allowed_and_set_is_unchanged(void **state)
{
	struct exceptions xs = { 0 };

	(void)state;
	add_line(&xs, "allow www-data port=587");
	assert_int_equal(parse("allow www-data port=587 comment=\"again\""), 0);
	assert_int_equal(exceptions_add(&xs, &x, err, sizeof(err)), -1);
	assert_string_equal(err, "www-data is already allowed");
	assert_int_equal(parse("allow www-data port=25"), 0);
	assert_int_equal(exceptions_add(&xs, &x, err, sizeof(err)), -1);
	assert_string_equal(err, "www-data already has an exception (allow www-data "
	    "port=587); revoke it first to change it");
	assert_int_equal(xs.n, 1);
	assert_int_equal(xs.v[0].ports[0], 587);
	exceptions_free(&xs);
}

static void
plain_and_narrowed_for_one_uid_conflict_either_way(void **state)
{
	struct exceptions xs = { 0 };

	(void)state;
	add_line(&xs, "allow @wpsites");
	assert_int_equal(parse("allow site2 port=587"), 0);
	assert_int_equal(exceptions_add(&xs, &x, err, sizeof(err)), -1);
	assert_string_equal(err, "conflicts with 'allow @wpsites': uid 1002 is already "
	    "allowed everywhere, so this narrowing would never apply");
	assert_int_equal(parse("allow 1003"), 0);
	assert_int_equal(exceptions_add(&xs, &x, err, sizeof(err)), -1);
	assert_string_equal(err, "conflicts with 'allow @wpsites': uid 1003 is already "
	    "allowed everywhere");
	exceptions_free(&xs);

	add_line(&xs, "allow newsletter cap=10/hour");
	assert_int_equal(parse("allow 1005"), 0);
	assert_int_equal(exceptions_add(&xs, &x, err, sizeof(err)), -1);
	assert_string_equal(err, "conflicts with 'allow newsletter cap=10/hour': uid 1005 "
	    "would be allowed everywhere, making that narrowed exception moot");
	/* Two narrowed ones may overlap: the first that matches decides. */
	add_line(&xs, "allow 1005 port=587 audit");
	assert_int_equal(xs.n, 2);
	exceptions_free(&xs);
}

static void
revoke_by_name_or_by_uid_of_a_single_user(void **state)
{
	struct exceptions xs = { 0 };

	(void)state;
	add_line(&xs, "allow www-data");
	add_line(&xs, "allow @wpsites port=587");
	add_line(&xs, "allow newsletter cap=5/hour");
	assert_int_equal(exceptions_remove(&xs, "1002", err, sizeof(err)), -1);
	assert_string_equal(err, "no exception for '1002' (smtpguard exceptions lists them)");
	assert_int_equal(exceptions_remove(&xs, "33", err, sizeof(err)), 0);
	assert_int_equal(xs.n, 2);
	assert_string_equal(xs.v[0].who, "@wpsites");
	assert_int_equal(exceptions_remove(&xs, "@wpsites", err, sizeof(err)), 0);
	assert_int_equal(exceptions_remove(&xs, "www-data", err, sizeof(err)), -1);
	assert_string_equal(err, "no exception for 'www-data' (smtpguard exceptions lists "
	    "them)");
	assert_int_equal(xs.n, 1);
	assert_string_equal(xs.v[0].who, "newsletter");
	exceptions_free(&xs);
}

static void
kernel_set_holds_only_plain_uids_sorted_once(void **state)
{
	struct exceptions xs = { 0 };
	uid_t uids[8];

	(void)state;
	add_line(&xs, "allow @wpsites");
	add_line(&xs, "allow 1005 port=587");
	add_line(&xs, "allow 4242 audit");
	add_line(&xs, "allow www-data");
	add_line(&xs, "allow 9lives cap=1/hour");
	add_line(&xs, "allow 2");
	assert_int_equal(exceptions_kernel_uids(&xs, uids, 8), 5);
	assert_int_equal(uids[0], 2);
	assert_int_equal(uids[1], 33);
	assert_int_equal(uids[2], 1001);
	assert_int_equal(uids[3], 1002);
	assert_int_equal(uids[4], 1003);
	assert_int_equal(exceptions_kernel_uids(&xs, uids, 2), 2);
	exceptions_free(&xs);
}

static void
hand_edited_file_loads_with_comments_and_crlf(void **state)
{
	struct exceptions xs;

	(void)state;
	assert_int_equal(exceptions_load(FIX "hand.conf", PASSWD, GROUP, &xs, err,
	    sizeof(err)), 0);
	assert_int_equal(xs.n, 4);
	assert_string_equal(xs.v[0].who, "www-data");
	assert_string_equal(xs.v[1].comment, "newsletter plugin");
	assert_string_equal(xs.v[2].who, "@wpsites");
	assert_true(xs.v[2].audit);
	assert_int_equal(xs.v[2].nuids, 3);
	assert_string_equal(xs.v[3].comment, "legacy \"cron\" job, C:\\mail");
	exceptions_free(&xs);
}

static void
missing_file_is_an_empty_set(void **state)
{
	struct exceptions xs = { .n = 99 };

	(void)state;
	assert_int_equal(exceptions_load(FIX "no-such.conf", PASSWD, GROUP, &xs, err,
	    sizeof(err)), 0);
	assert_int_equal(xs.n, 0);
	assert_null(xs.v);
}

static void
load_errors_name_file_and_line_and_keep_nothing(void **state)
{
	struct exceptions xs;

	(void)state;
	assert_int_equal(exceptions_load(FIX "conflict.conf", PASSWD, GROUP, &xs, err,
	    sizeof(err)), -1);
	assert_string_equal(err, FIX "conflict.conf:3: conflicts with 'allow www-data': "
	    "uid 33 is already allowed everywhere, so this narrowing would never apply");
	assert_int_equal(xs.n, 0);
	assert_null(xs.v);
	assert_int_equal(exceptions_load(FIX "badport.conf", PASSWD, GROUP, &xs, err,
	    sizeof(err)), -1);
	assert_string_equal(err, FIX "badport.conf:3: bad port '0' (1-65535)");
	assert_int_equal(exceptions_load(FIX, PASSWD, GROUP, &xs, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "Is a directory"));
}

static void
make_dir(char *dir, size_t len)
{
	snprintf(dir, len, "/tmp/test_exceptions.XXXXXX");
	assert_non_null(mkdtemp(dir));
}

static void
remove_dir(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) < 0)
			assert_int_equal(rmdir(path), 0);
	}
	closedir(d);
	assert_int_equal(rmdir(dir), 0);
}

static size_t
count_entries(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

static void
lines_of(const char *path, char *buf, size_t len)
{
	FILE *fp = fopen(path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, len - 1, fp);
	buf[n] = '\0';
	fclose(fp);
}

static void
save_replaces_the_file_whole_readable_and_parseable(void **state)
{
	char dir[DIR_BUF], path[PATH_MAX], text[4096];
	struct exceptions xs = { 0 }, back;
	struct stat st;
	mode_t old_umask;

	(void)state;
	make_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/etc/exceptions.conf", dir);
	add_line(&xs, "allow www-data");
	add_line(&xs, "allow 1005 to=2001:db8::/32 port=587 cap=3/hour comment=\"a \\\"b\\\"\"");
	/* A daemon's strict umask must not make the file unreadable to admins. */
	old_umask = umask(077);
	assert_int_equal(exceptions_save(path, &xs, err, sizeof(err)), 0);
	umask(old_umask);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	lines_of(path, text, sizeof(text));
	assert_non_null(strstr(text, "\nallow www-data\nallow 1005 to=2001:db8::/32 "
	    "port=587 cap=3/hour comment=\"a \\\"b\\\"\"\n"));
	assert_int_equal(exceptions_load(path, PASSWD, GROUP, &back, err, sizeof(err)), 0);
	assert_int_equal(back.n, 2);
	assert_string_equal(back.v[1].comment, "a \"b\"");
	exceptions_free(&back);

	assert_int_equal(exceptions_remove(&xs, "www-data", err, sizeof(err)), 0);
	assert_int_equal(exceptions_save(path, &xs, err, sizeof(err)), 0);
	lines_of(path, text, sizeof(text));
	assert_null(strstr(text, "allow www-data"));
	snprintf(path, sizeof(path), "%s/etc", dir);
	assert_int_equal(count_entries(path), 1);	/* no temp file left */
	exceptions_free(&xs);
	remove_dir(path);
	remove_dir(dir);
}

static void
failed_save_leaves_no_temp_file_and_says_so(void **state)
{
	char dir[DIR_BUF], path[PATH_MAX];
	struct exceptions xs = { 0 };

	(void)state;
	make_dir(dir, sizeof(dir));
	/* A directory where the file should be: the final rename must fail. */
	snprintf(path, sizeof(path), "%s/exceptions.conf", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	add_line(&xs, "allow www-data");
	assert_int_equal(exceptions_save(path, &xs, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "exceptions.conf: Is a directory; the old file is "
	    "unchanged"));
	assert_int_equal(count_entries(dir), 1);
	assert_int_equal(count_entries(path), 0);
	exceptions_free(&xs);
	assert_int_equal(rmdir(path), 0);
	remove_dir(dir);
}

static void
overlong_or_nul_lines_in_the_file_are_refused(void **state)
{
	char dir[DIR_BUF], path[PATH_MAX];
	struct exceptions xs;
	FILE *fp;

	(void)state;
	make_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/exceptions.conf", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "allow www-data\n# %*s\n", EXCEPTION_LINE_MAX, "long");
	fclose(fp);
	assert_int_equal(exceptions_load(path, PASSWD, GROUP, &xs, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "exceptions.conf:2: too long"));
	fp = fopen(path, "w");
	assert_non_null(fp);
	fwrite("allow www-data\0 port=587\n", 1, 25, fp);
	fclose(fp);
	assert_int_equal(exceptions_load(path, PASSWD, GROUP, &xs, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "exceptions.conf:1: a NUL byte"));
	remove_dir(dir);
}

/* A file Ansible or Salt owns is loaded, but the CLI's writer never touches it. */
static void
managed_file_is_loaded_but_never_rewritten(void **state)
{
	static const char *const headers[] = {
		"# managed by ansible (roles/smtpguard)\n",
		"\n#   Ansible managed\n",
		"# fleet policy\n# This file is managed by Salt: edit it in the pillar\n",
	};
	char dir[DIR_BUF], path[PATH_MAX], text[4096], before[4096];
	struct exceptions xs = { 0 }, back;
	FILE *fp;

	(void)state;
	make_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/exceptions.conf", dir);
	add_line(&xs, "allow site1");
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		fp = fopen(path, "w");
		assert_non_null(fp);
		fprintf(fp, "%sallow www-data\nlimit sasl:bob 10/hour\n", headers[i]);
		fclose(fp);
		lines_of(path, before, sizeof(before));
		assert_int_equal(exceptions_load(path, PASSWD, GROUP, &back, err,
		    sizeof(err)), 0);
		assert_int_equal(back.n, 1);
		assert_int_equal(back.nlimits, 1);
		exceptions_free(&back);
		err[0] = '\0';
		assert_int_equal(exceptions_save(path, &xs, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "exceptions.conf:"));
		assert_non_null(strstr(err, "managed elsewhere"));
		assert_non_null(strstr(err, "smtpguard reload"));
		lines_of(path, text, sizeof(text));
		assert_string_equal(text, before);
	}
	assert_non_null(strstr(err, "exceptions.conf:2: "));	/* the marker's own line */
	assert_int_equal(count_entries(dir), 1);		/* and no temp file */
	exceptions_free(&xs);
	remove_dir(dir);
}

/* Only a header marks a file: the word in a rule's comment, or below a rule, does not. */
static void
managed_in_a_rule_or_the_cli_header_is_no_marker(void **state)
{
	char dir[DIR_BUF], path[PATH_MAX];
	struct exceptions xs = { 0 };
	FILE *fp;

	(void)state;
	make_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/exceptions.conf", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "#   # managed by NAME  (how a managed file starts)\n"
	    "allow www-data comment=\"managed by ops\"\n# managed by ansible\n");
	fclose(fp);
	assert_int_equal(exceptions_check_unmanaged(path, err, sizeof(err)), 0);
	add_line(&xs, "allow site1");
	assert_int_equal(exceptions_save(path, &xs, err, sizeof(err)), 0);
	/* What the CLI writes is never taken for a managed file. */
	assert_int_equal(exceptions_save(path, &xs, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/absent.conf", dir);
	assert_int_equal(exceptions_check_unmanaged(path, err, sizeof(err)), 0);
	exceptions_free(&xs);
	remove_dir(dir);
}

static void
reload_keeps_hits_and_cap_state_by_who(void **state)
{
	struct exceptions old = { 0 }, next = { 0 };

	(void)state;
	add_line(&old, "allow www-data");
	add_line(&old, "allow 1005 cap=3/hour");
	old.v[1].hits = 7;
	old.v[1].last_hit = 1700000000;
	old.v[1].cap_minute[5] = 28333333;
	old.v[1].cap_count[5] = 3;
	add_line(&next, "allow site1");
	add_line(&next, "allow 1005 cap=5/hour");
	exceptions_carry_counters(&next, &old);
	assert_int_equal(next.v[0].hits, 0);
	assert_int_equal(next.v[1].hits, 7);
	assert_int_equal(next.v[1].last_hit, 1700000000);
	assert_int_equal(next.v[1].cap_minute[5], 28333333);
	assert_int_equal(next.v[1].cap_count[5], 3);
	assert_int_equal(next.v[1].cap_per_hour, 5);
	exceptions_free(&old);
	exceptions_free(&next);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plain_user_is_one_uid_for_the_kernel),
		cmocka_unit_test(narrowed_exception_round_trips),
		cmocka_unit_test(options_in_any_order_are_written_in_one_order),
		cmocka_unit_test(redirect_exception_round_trips_and_is_not_plain),
		cmocka_unit_test(comment_quotes_and_backslashes_round_trip),
		cmocka_unit_test(comment_of_exactly_the_limit_is_kept),
		cmocka_unit_test(managed_file_is_loaded_but_never_rewritten),
		cmocka_unit_test(managed_in_a_rule_or_the_cli_header_is_no_marker),
		cmocka_unit_test(group_means_listed_members_and_primary_group_users),
		cmocka_unit_test(numeric_uid_is_taken_as_is_and_digit_names_are_names),
		cmocka_unit_test(every_bad_line_is_refused_with_its_reason),
		cmocka_unit_test(line_too_long_is_refused),
		cmocka_unit_test(more_destinations_or_ports_than_the_bound_are_refused),
		cmocka_unit_test(line_that_would_not_fit_once_written_out_is_refused),
		cmocka_unit_test(hostile_input_is_echoed_as_short_printable_ascii),
		cmocka_unit_test(cli_options_become_one_parseable_line),
		cmocka_unit_test(cli_mistakes_are_refused_before_reaching_the_daemon),
		cmocka_unit_test(duplicate_is_already_allowed_and_set_is_unchanged),
		cmocka_unit_test(plain_and_narrowed_for_one_uid_conflict_either_way),
		cmocka_unit_test(revoke_by_name_or_by_uid_of_a_single_user),
		cmocka_unit_test(kernel_set_holds_only_plain_uids_sorted_once),
		cmocka_unit_test(hand_edited_file_loads_with_comments_and_crlf),
		cmocka_unit_test(missing_file_is_an_empty_set),
		cmocka_unit_test(load_errors_name_file_and_line_and_keep_nothing),
		cmocka_unit_test(save_replaces_the_file_whole_readable_and_parseable),
		cmocka_unit_test(failed_save_leaves_no_temp_file_and_says_so),
		cmocka_unit_test(overlong_or_nul_lines_in_the_file_are_refused),
		cmocka_unit_test(reload_keeps_hits_and_cap_state_by_who),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
