/*
 * mtauser.c — which accounts are the MTA: the uids whose SMTP the fence lets
 * through in the kernel. With mta_users = auto it looks in a passwd file
 * for the accounts the usual MTAs run as; an explicit list names them (or
 * gives uids) itself. What was picked is also returned as a sentence, so a
 * wrong guess shows in `smtpguard status` and the daemon's start-up line.
 * The passwd file is a parameter so tests use fixtures. Pure: an error is
 * -1 with a sentence in err; nothing is logged, no NSS lookup is made.
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

#define MTA_LIST_TEXT_MAX	256	/* "postfix, Debian-exim, ..." in the error */

/* The accounts whose processes open outbound SMTP in each MTA. */
static const char *const mta_accounts[] = {
	"postfix",				/* Postfix's smtp(8) client */
	"Debian-exim", "exim",			/* Exim (Debian's name, others') */
	"_smtpd", "_smtpq", "smtpd", "smtpq",	/* OpenSMTPD (Debian's, others') */
	"opensmtpd",
};

/*
 * Taken only when none of the above exists. "mail" is in every Debian
 * passwd, MTA or not, so it cannot prove an MTA; but the MTAs that have no
 * account of their own (nullmailer, for one) run as mail, and nothing else
 * runs as mail unless root makes it. Exempting it on a box without an MTA
 * opens nothing a web user can reach, while refusing to start would leave
 * no fence at all. The guess is marked in `found` so it is never silent.
 */
static const char *const fallback_accounts[] = { "mail", "mailman" };

#define NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

struct found {
	uid_t	*uids;
	size_t	*n;
	char	*text;		/* "postfix(uid 101), Debian-exim(uid 102)" */
	size_t	 textlen;
	bool	 cut;
};

/* Appends to the human list; a display string may be cut, but says so. */
static void
found_say(struct found *f, const char *sep, const char *item)
{
	size_t len = strlen(f->text);

	if (f->cut)
		return;
	if (len + strlen(sep) + strlen(item) < f->textlen) {
		snprintf(f->text + len, f->textlen - len, "%s%s", len ? sep : "", item);
		return;
	}
	f->cut = true;
	if (f->textlen >= sizeof("..."))
		strlcpy_sg(f->text + (len + sizeof("...") <= f->textlen ? len :
		    f->textlen - sizeof("...")), "...", sizeof("..."));
}

static int
found_add(struct found *f, uid_t uid, const char *name)
{
	char item[USER_NAME_MAX + 32];

	for (size_t i = 0; i < *f->n; i++)
		if (f->uids[i] == uid)
			return 0;
	if (*f->n == CONFIG_MAX_UIDS)
		return -1;
	f->uids[(*f->n)++] = uid;
	if (name != NULL)
		snprintf(item, sizeof(item), "%s(uid %lu)", name, (unsigned long)uid);
	else
		snprintf(item, sizeof(item), "uid %lu", (unsigned long)uid);
	found_say(f, ", ", item);
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

static bool
is_uid(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static void
join(const char *const *names, size_t n, char *buf, size_t len)
{
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? ", " : "",
		    names[i]);
}

static int
resolve_auto(const struct config *cfg, FILE *fp, const char *passwd_path, struct found *f,
    char *err, size_t errlen)
{
	char looked[MTA_LIST_TEXT_MAX];
	uid_t uid;

	/* Both tables are far shorter than CONFIG_MAX_UIDS: found_add() cannot fail. */
	for (size_t i = 0; i < NITEMS(mta_accounts); i++)
		if (by_name(fp, mta_accounts[i], &uid) == 0)
			(void)found_add(f, uid, mta_accounts[i]);
	if (*f->n > 0)
		return 0;
	for (size_t i = 0; i < NITEMS(fallback_accounts); i++)
		if (by_name(fp, fallback_accounts[i], &uid) == 0)
			(void)found_add(f, uid, fallback_accounts[i]);
	if (*f->n > 0) {
		found_say(f, " ", "(a guess: no postfix, exim or opensmtpd account; set "
		    "mta_users if your MTA runs as another user)");
		return 0;
	}
	join(mta_accounts, NITEMS(mta_accounts), looked, sizeof(looked));
	snprintf(err, errlen, "no MTA account found in %s (looked for %s, then mail, "
	    "mailman); set mta_users in %s to the account(s) your MTA runs as: a fence "
	    "that blocks the MTA would stop all outgoing mail", passwd_path, looked,
	    cfg->path[0] ? cfg->path : DEFAULT_CONFIG);
	return -1;
}

int
mtauser_resolve(const struct config *cfg, const char *passwd_path, uid_t *uids, size_t *nuids,
    char *found, size_t foundlen, char *err, size_t errlen)
{
	struct found f = { .uids = uids, .n = nuids, .text = found, .textlen = foundlen };
	char list[CONFIG_MAX_LIST], *tok, *save = NULL;
	FILE *fp;
	uid_t uid;
	int rc = -1;

	*nuids = 0;
	if (foundlen > 0)
		found[0] = '\0';
	if ((fp = fopen(passwd_path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", passwd_path, strerror(errno));
		return -1;
	}
	if (strcmp(cfg->mta_users, "auto") == 0) {
		rc = resolve_auto(cfg, fp, passwd_path, &f, err, errlen);
		goto out;
	}
	if (strlcpy_sg(list, cfg->mta_users, sizeof(list)) >= sizeof(list)) {
		snprintf(err, errlen, "mta_users: longer than %d bytes", CONFIG_MAX_LIST - 1);
		goto out;
	}
	for (tok = strtok_r(list, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (is_uid(tok)) {
			char *end;
			unsigned long n;

			errno = 0;
			n = strtoul(tok, &end, 10);
			if (errno != 0 || n >= (uid_t)-1) {
				snprintf(err, errlen, "mta_users: '%s' is not a valid uid", tok);
				goto out;
			}
			if (found_add(&f, (uid_t)n, NULL) < 0)
				goto toomany;
		} else if (by_name(fp, tok, &uid) == 0) {
			if (found_add(&f, uid, tok) < 0)
				goto toomany;
		} else {
			snprintf(err, errlen, "mta_users: no account '%s' in %s (set in %s)", tok,
			    passwd_path, cfg->path[0] ? cfg->path : DEFAULT_CONFIG);
			goto out;
		}
	}
	if (*nuids == 0) {
		snprintf(err, errlen, "mta_users is empty (set in %s)",
		    cfg->path[0] ? cfg->path : DEFAULT_CONFIG);
		goto out;
	}
	rc = 0;
	goto out;
toomany:
	snprintf(err, errlen, "mta_users: more than %d accounts", CONFIG_MAX_UIDS);
	rc = -1;
out:
	fclose(fp);
	if (rc < 0)
		*nuids = 0;
	return rc;
}
