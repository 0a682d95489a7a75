/*
 * mtauser.c: the fence finds the MTA's accounts in passwd fixtures, says what
 * it picked, and refuses to guess when there is nothing to pick. Run from
 * the top of the source tree (fixtures are tests/fixtures/passwd/).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtpguard.h"

#define PASSWD		"tests/fixtures/passwd/"
#define TEXT_MAX	1024

struct result {
	uid_t	 uids[CONFIG_MAX_UIDS];
	size_t	 n;
	char	 found[TEXT_MAX];
	char	 err[TEXT_MAX];
	int	 rc;
};

static void
resolve(const char *mta_users, const char *passwd, struct result *r)
{
	struct config cfg;

	config_defaults(&cfg);
	strlcpy_sg(cfg.path, "/etc/smtpguard/smtpguard.conf", sizeof(cfg.path));
	strlcpy_sg(cfg.mta_users, mta_users, sizeof(cfg.mta_users));
	memset(r, 0, sizeof(*r));
	r->rc = mtauser_resolve(&cfg, passwd, r->uids, &r->n, r->found, sizeof(r->found), r->err,
	    sizeof(r->err));
}

static void
postfix_box_exempts_postfix(void **state)
{
	struct result r;

	(void)state;
	resolve("auto", PASSWD "postfix", &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.uids[0], 101);
	assert_string_equal(r.found, "postfix(uid 101)");
}

static void
exim_box_exempts_debian_exim(void **state)
{
	struct result r;

	(void)state;
	resolve("auto", PASSWD "exim", &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.uids[0], 102);
	assert_string_equal(r.found, "Debian-exim(uid 102)");
}

static void
box_with_both_exempts_both(void **state)
{
	struct result r;

	(void)state;
	resolve("auto", PASSWD "both", &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.uids[0], 101);
	assert_int_equal(r.uids[1], 102);
	assert_string_equal(r.found, "postfix(uid 101), Debian-exim(uid 102)");
}

static void
opensmtpd_box_exempts_its_accounts(void **state)
{
	struct result r;

	(void)state;
	resolve("auto", PASSWD "opensmtpd", &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.found, "_smtpd(uid 103), _smtpq(uid 104)");
}

/* "mail" exists on every Debian box: it is taken only when nothing else is, and said so. */
static void
mail_account_is_a_visible_guess_only(void **state)
{
	struct result r;

	(void)state;
	resolve("auto", PASSWD "postfix", &r);
	assert_null(strstr(r.found, "mail("));
	resolve("auto", PASSWD "debian", &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.uids[0], 8);
	assert_string_equal(r.found, "mail(uid 8) (a guess: no postfix, exim or opensmtpd "
	    "account; set mta_users if your MTA runs as another user)");
}

static void
no_mta_account_refuses_to_fence(void **state)
{
	struct result r;

	(void)state;
	resolve("auto", PASSWD "nomail", &r);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.n, 0);
	assert_string_equal(r.err, "no MTA account found in " PASSWD "nomail (looked for "
	    "postfix, Debian-exim, exim, _smtpd, _smtpq, smtpd, smtpq, opensmtpd, then mail, "
	    "mailman); set mta_users in /etc/smtpguard/smtpguard.conf to the account(s) your "
	    "MTA runs as: a fence that blocks the MTA would stop all outgoing mail");
}

static void
named_accounts_are_looked_up(void **state)
{
	struct result r;

	(void)state;
	resolve("Debian-exim, www-data", PASSWD "both", &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.uids[0], 102);
	assert_int_equal(r.uids[1], 33);
	assert_string_equal(r.found, "Debian-exim(uid 102), www-data(uid 33)");
}

/* A uid need not be in passwd: containers and LDAP accounts are not. */
static void
numeric_uids_are_taken_as_they_are(void **state)
{
	struct result r;

	(void)state;
	resolve("5000 postfix,5000", PASSWD "postfix", &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.uids[0], 5000);
	assert_int_equal(r.uids[1], 101);
	assert_string_equal(r.found, "uid 5000, postfix(uid 101)");
}

static void
unknown_account_is_named(void **state)
{
	struct result r;

	(void)state;
	resolve("postfix exim", PASSWD "postfix", &r);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.n, 0);
	assert_string_equal(r.err, "mta_users: no account 'exim' in " PASSWD "postfix (set in "
	    "/etc/smtpguard/smtpguard.conf)");
}

static void
broken_passwd_lines_do_not_hide_the_mta(void **state)
{
	struct result r;

	(void)state;
	resolve("auto", PASSWD "hostile", &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.found, "postfix(uid 101)");
	resolve("relay", PASSWD "hostile", &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.uids[0], 2525);
}

static void
missing_passwd_file_is_named(void **state)
{
	struct result r;

	(void)state;
	resolve("auto", PASSWD "absent", &r);
	assert_int_equal(r.rc, -1);
	assert_string_equal(r.err, PASSWD "absent: No such file or directory");
}

static void
more_than_the_bound_is_refused(void **state)
{
	char list[CONFIG_MAX_LIST] = "";
	struct result r;

	(void)state;
	for (int i = 0; i <= CONFIG_MAX_UIDS; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%d", i ? "," : "",
		    1000 + i);
	resolve(list, PASSWD "postfix", &r);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.n, 0);
	assert_string_equal(r.err, "mta_users: more than 64 accounts");
}

static void
short_found_buffer_is_cut_visibly(void **state)
{
	struct config cfg;
	uid_t uids[CONFIG_MAX_UIDS];
	size_t n;
	char found[20], err[TEXT_MAX];

	(void)state;
	config_defaults(&cfg);
	assert_int_equal(mtauser_resolve(&cfg, PASSWD "both", uids, &n, found, sizeof(found), err,
	    sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(found, "postfix(uid 101)...");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(postfix_box_exempts_postfix),
		cmocka_unit_test(exim_box_exempts_debian_exim),
		cmocka_unit_test(box_with_both_exempts_both),
		cmocka_unit_test(opensmtpd_box_exempts_its_accounts),
		cmocka_unit_test(mail_account_is_a_visible_guess_only),
		cmocka_unit_test(no_mta_account_refuses_to_fence),
		cmocka_unit_test(named_accounts_are_looked_up),
		cmocka_unit_test(numeric_uids_are_taken_as_they_are),
		cmocka_unit_test(unknown_account_is_named),
		cmocka_unit_test(broken_passwd_lines_do_not_hide_the_mta),
		cmocka_unit_test(missing_passwd_file_is_named),
		cmocka_unit_test(more_than_the_bound_is_refused),
		cmocka_unit_test(short_found_buffer_is_cut_visibly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
