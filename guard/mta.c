/*
 * mta.c — which accounts are the MTA: the uids whose SMTP the fence lets
 * through in the kernel. With mta_users = auto it looks for the accounts
 * the MTAs Debian ships run as; a list names them (or gives uids) itself.
 * The passwd file is a parameter so tests use fixtures. Pure: an error is
 * -1 with a sentence in err; nothing is logged.
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

/*
 * The accounts Debian's MTA packages create: postfix; exim4 (Debian-exim,
 * or exim elsewhere); OpenSMTPD (_smtpd/_smtpq on Debian, smtpd/smtpq on
 * others). "mail" is not here: it exists on every Debian box, MTA or not,
 * and fencing it in would let anything running as "mail" mail out freely.
 * Admins whose MTA runs as mail or mailman name it in mta_users.
 */
static const char *const mta_accounts[] = {
	"postfix", "Debian-exim", "exim", "exim4", "_smtpd", "_smtpq", "smtpd", "smtpq",
	"opensmtpd",
};

static int
add_uid(uid_t *uids, size_t *n, uid_t uid, const char *name, char *found, size_t foundlen)
{
	size_t len = strlen(found);

	for (size_t i = 0; i < *n; i++)
		if (uids[i] == uid)
			return 0;
	if (*n == CONFIG_MAX_UIDS) {
		errno = E2BIG;
		return -1;
	}
	uids[(*n)++] = uid;
	if (name != NULL)
		snprintf(found + len, foundlen - len, "%s%s(uid %lu)", len ? ", " : "", name,
		    (unsigned long)uid);
	else
		snprintf(found + len, foundlen - len, "%suid %lu", len ? ", " : "",
		    (unsigned long)uid);
	return 0;
}

static int
by_name(FILE *fp, const char *name, uid_t *uid)
{
	struct passwd *pw;

	rewind(fp);
	while ((pw = fgetpwent(fp)) != NULL)
		if (strcmp(pw->pw_name, name) == 0) {
			*uid = pw->pw_uid;
			return 0;
		}
	return -1;
}

static int
is_number(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

int
mta_resolve(const struct config *cfg, const char *passwd_path, uid_t *uids, size_t *nuids,
    char *found, size_t foundlen, char *err, size_t errlen)
{
	char list[CONFIG_MAX_LIST], *tok, *save = NULL;
	FILE *fp;
	uid_t uid;
	int rc = -1;

	*nuids = 0;
	found[0] = '\0';
	if ((fp = fopen(passwd_path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", passwd_path, strerror(errno));
		return -1;
	}
	if (strcmp(cfg->mta_users, "auto") == 0) {
		for (size_t i = 0; i < sizeof(mta_accounts) / sizeof(mta_accounts[0]); i++)
			if (by_name(fp, mta_accounts[i], &uid) == 0 &&
			    add_uid(uids, nuids, uid, mta_accounts[i], found, foundlen) < 0)
				goto toomany;
		if (*nuids == 0) {
			snprintf(err, errlen, "no MTA account found in %s (looked for postfix, "
			    "Debian-exim, exim, exim4, _smtpd, _smtpq, smtpd, smtpq, opensmtpd); "
			    "set mta_users in %s to the account(s) your MTA runs as. Refusing to "
			    "fence: it would stop all outgoing mail", passwd_path,
			    cfg->path[0] ? cfg->path : "the configuration");
			goto out;
		}
		rc = 0;
		goto out;
	}
	strlcpy_sg(list, cfg->mta_users, sizeof(list));
	for (tok = strtok_r(list, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (is_number(tok)) {
			unsigned long n = strtoul(tok, NULL, 10);

			if (n >= (uid_t)-1) {
				snprintf(err, errlen, "mta_users: '%s' is not a valid uid", tok);
				goto out;
			}
			if (add_uid(uids, nuids, (uid_t)n, NULL, found, foundlen) < 0)
				goto toomany;
		} else if (by_name(fp, tok, &uid) == 0) {
			if (add_uid(uids, nuids, uid, tok, found, foundlen) < 0)
				goto toomany;
		} else {
			snprintf(err, errlen, "mta_users: no account '%s' in %s", tok, passwd_path);
			goto out;
		}
	}
	if (*nuids == 0) {
		snprintf(err, errlen, "mta_users is empty");
		goto out;
	}
	rc = 0;
	goto out;
toomany:
	snprintf(err, errlen, "mta_users: more than %d accounts", CONFIG_MAX_UIDS);
out:
	fclose(fp);
	return rc;
}
