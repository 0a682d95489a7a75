/*
 * mailenable.c — `smtpguard mail enable|disable`: the gate wired into the
 * MTA with its own tools (postconf -e, postfix reload). mail enable appends
 * the gate to smtpd_milters and non_smtpd_milters (keeping milters already
 * there, such as OpenDKIM, in order), sets milter_default_action from
 * [mail] fail, and keeps a byte copy of main.cf in smtpguard's state
 * directory, so that mail disable puts it back exactly, or, if the admin
 * edited main.cf since, undoes only our own entries. For Exim
 * (--exim-config FILE, or /etc/exim4/exim4.conf) it puts eximconf.c's
 * lines into the one config file, checked with exim -bV first, and keeps
 * the same two copies for a byte-identical disable. status asks
 * mailenable_wired() which instances are wired.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "smtpguard.h"

#define POSTFIX_DIR	"/etc/postfix"
#define MAIN_CF_MAX	(16 * 1024 * 1024)	/* a main.cf is a few KiB */
#define STATE_PREFIX	"mta-postfix-"		/* mail enable's records in the state dir */

/* --- mail enable / disable: Postfix -------------------------------------------- */

struct pfstate {
	char	 dir[PATH_MAX];		/* the instance's config directory */
	char	 entry[PATH_MAX + 8];	/* "unix:smtpguard/gate.sock" */
	char	 action[16];		/* milter_default_action we set */
	/* the three parameters as main.cf had them before: set? value */
	bool	 was_set[3];
	char	 was[3][4096];
};

static const char *const pf_params[3] = { "smtpd_milters", "non_smtpd_milters",
    "milter_default_action" };

/* The state directory: the folder of [mail] state. */
static void
state_dir(const struct config *cfg, char *out, size_t len)
{
	char *slash;

	strlcpy_sg(out, cfg->mail_state, len);
	if ((slash = strrchr(out, '/')) != NULL && slash != out)
		*slash = '\0';
}

/* STATEDIR/mta-postfix-HASH.{state,orig,after}: one record per Postfix instance. */
static void
state_path(const struct config *cfg, const char *dir, const char *ext, char *out, size_t len)
{
	char sd[PATH_MAX];

	state_dir(cfg, sd, sizeof(sd));
	snprintf(out, len, "%s/" STATE_PREFIX "%016llx.%s", sd,
	    (unsigned long long)fnv1a64(FNV1A64_BASIS, dir, strlen(dir)), ext);
}

/* postconf -c DIR ARGS...: stdout in r; -1 with the reason said. */
static int
postconf(const char *dir, struct mailrun *r, const char *a1, const char *a2, const char *a3,
    const char *a4)
{
	char *argv[] = { "postconf", "-c", (char *)dir, (char *)a1, (char *)a2, (char *)a3,
	    (char *)a4, NULL };

	return mailrun_ok(argv, r);
}

/* One parameter as main.cf sets it (postconf -n), or not set. */
static int
pf_get_explicit(const char *dir, const char *name, bool *set, char *val, size_t len)
{
	struct mailrun r;
	size_t nl = strlen(name);

	if (postconf(dir, &r, "-n", name, NULL, NULL) < 0)
		return -1;
	*set = false;
	val[0] = '\0';
	if (strncmp(r.out, name, nl) == 0 && strncmp(r.out + nl, " = ", 3) == 0) {
		*set = true;
		r.out[strcspn(r.out, "\n")] = '\0';
		if (strlcpy_sg(val, r.out + nl + 3, len) >= len) {
			cli_say("%s in %s/main.cf is longer than %zu bytes", name, dir, len - 1);
			free(r.out);
			return -1;
		}
	}
	free(r.out);
	return 0;
}

static int
pf_get(const char *dir, const char *name, char *val, size_t len)
{
	struct mailrun r;

	if (postconf(dir, &r, "-h", name, NULL, NULL) < 0)
		return -1;
	r.out[strcspn(r.out, "\n")] = '\0';
	strlcpy_sg(val, r.out, len);
	free(r.out);
	return 0;
}

static int
pf_set(const char *dir, const char *name, const char *value)
{
	char kv[8192];
	struct mailrun r;

	if ((size_t)snprintf(kv, sizeof(kv), "%s=%s", name, value) >= sizeof(kv)) {
		cli_say("%s: value too long", name);
		return -1;
	}
	if (postconf(dir, &r, "-e", kv, NULL, NULL) < 0)
		return -1;
	free(r.out);
	return 0;
}

static int
pf_unset(const char *dir, const char *name)
{
	struct mailrun r;

	if (postconf(dir, &r, "-X", name, NULL, NULL) < 0)
		return -1;
	free(r.out);
	return 0;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0, n;
	char chunk[65536];

	*len = 0;
	if (fp == NULL)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		if (mailrun_append(&buf, len, &cap, chunk, n, MAIN_CF_MAX) < 0) {
			free(buf);
			fclose(fp);
			return NULL;
		}
	if (ferror(fp) || (buf == NULL && mailrun_append(&buf, len, &cap, "", 0, MAIN_CF_MAX) < 0)) {
		free(buf);
		buf = NULL;
	}
	fclose(fp);
	return buf;
}

static int
copy_file(const char *from, const char *to)
{
	size_t len;
	char *data = slurp(from, &len);
	int rc;

	if (data == NULL)
		return -1;
	rc = ensure_parent_dir(to, 0755) < 0 ? -1 : file_replace_bytes(to, 0600, 0, 0, data, len);
	free(data);
	return rc;
}

static int
state_save(const struct config *cfg, const struct pfstate *s)
{
	char path[PATH_MAX + 64];
	json_t *o = json_pack("{s:s, s:s, s:s}", "config_dir", s->dir, "entry", s->entry,
	    "milter_default_action", s->action), *was = json_object();
	char *text;
	int rc;

	for (int i = 0; i < 3; i++)
		json_object_set_new(was, pf_params[i], s->was_set[i] ? json_string(s->was[i]) :
		    json_null());
	json_object_set_new(o, "before", was);
	text = json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(o);
	if (text == NULL)
		return -1;
	state_path(cfg, s->dir, "state", path, sizeof(path));
	rc = file_replace_bytes(path, 0600, 0, 0, text, strlen(text));
	free(text);
	return rc;
}

/* 1 if a record was read, 0 if there is none, -1 if it is unreadable. */
static int
state_load_path(const char *path, struct pfstate *s)
{
	json_t *o, *was;
	int rc = -1;

	memset(s, 0, sizeof(*s));
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return 0;
	if ((o = json_load_file(path, 0, NULL)) == NULL)
		return -1;
	if (!json_is_string(json_object_get(o, "config_dir")) ||
	    !json_is_string(json_object_get(o, "entry")) ||
	    !json_is_string(json_object_get(o, "milter_default_action")) ||
	    !json_is_object(was = json_object_get(o, "before")))
		goto out;
	strlcpy_sg(s->dir, json_string_value(json_object_get(o, "config_dir")), sizeof(s->dir));
	strlcpy_sg(s->entry, json_string_value(json_object_get(o, "entry")), sizeof(s->entry));
	strlcpy_sg(s->action, json_string_value(json_object_get(o, "milter_default_action")),
	    sizeof(s->action));
	for (int i = 0; i < 3; i++) {
		json_t *v = json_object_get(was, pf_params[i]);

		s->was_set[i] = json_is_string(v);
		if (s->was_set[i])
			strlcpy_sg(s->was[i], json_string_value(v), sizeof(s->was[i]));
	}
	rc = 1;
out:
	json_decref(o);
	return rc;
}

static void
pf_reload(const char *dir)
{
	char *status[] = { "postfix", "-c", (char *)dir, "status", NULL };
	char *reload[] = { "postfix", "-c", (char *)dir, "reload", NULL };
	struct mailrun r;

	if (mailrun(status, &r) < 0 || r.status != 0) {
		if (r.out != NULL)
			free(r.out);
		printf("Postfix (%s) is not running: the change applies when it starts\n", dir);
		return;
	}
	free(r.out);
	if (mailrun_ok(reload, &r) == 0) {
		free(r.out);
		printf("postfix -c %s reload: done\n", dir);
	}
}

/* The gate's socket as Postfix names it: relative to its queue directory if inside. */
static int
pf_entry(const struct config *cfg, const char *dir, char *out, size_t len)
{
	char q[PATH_MAX];
	size_t n;

	if (pf_get(dir, "queue_directory", q, sizeof(q)) < 0)
		return -1;
	n = strlen(q);
	while (n > 1 && q[n - 1] == '/')
		q[--n] = '\0';
	if (strncmp(cfg->mail_socket, q, n) == 0 && cfg->mail_socket[n] == '/')
		snprintf(out, len, "unix:%s", cfg->mail_socket + n + 1);
	else {
		snprintf(out, len, "unix:%s", cfg->mail_socket);
		printf("note: the gate's socket %s is outside Postfix's queue directory %s: a "
		    "chrooted smtpd (master.cf chroot = y) cannot reach it; [mail] socket belongs "
		    "under %s\n", cfg->mail_socket, q, q);
	}
	return 0;
}

static int
pf_enable(const struct config *cfg, const char *dir)
{
	char main_cf[PATH_MAX + 16], orig[PATH_MAX + 64], after[PATH_MAX + 64], spath[PATH_MAX + 64];
	char cur[4096];
	struct pfstate s, old;
	int loaded;

	snprintf(main_cf, sizeof(main_cf), "%s/main.cf", dir);
	if (access(main_cf, R_OK) < 0) {
		cli_say("%s: %s (is Postfix installed there? --postfix-config DIR names another "
		    "instance)", main_cf, strerror(errno));
		return 1;
	}
	if (!cfg->mail_gate) {
		cli_say("the gate is off ([mail] gate = no in the config): turn it on (gate = yes, then "
		    "smtpguard reload) before wiring it into Postfix, or Postfix would %s every "
		    "message while nothing answers", cfg->mail_fail_tempfail ? "defer" : "pass");
		return 1;
	}
	memset(&s, 0, sizeof(s));
	strlcpy_sg(s.dir, dir, sizeof(s.dir));
	strlcpy_sg(s.action, cfg->mail_fail_tempfail ? "tempfail" : "accept", sizeof(s.action));
	if (pf_entry(cfg, dir, s.entry, sizeof(s.entry)) < 0)
		return 1;
	state_path(cfg, dir, "state", spath, sizeof(spath));
	state_path(cfg, dir, "orig", orig, sizeof(orig));
	state_path(cfg, dir, "after", after, sizeof(after));
	if ((loaded = state_load_path(spath, &old)) < 0) {
		cli_say("%s is unreadable: remove it after checking %s by hand", spath, main_cf);
		return 1;
	}
	if (pf_get(dir, "smtpd_milters", cur, sizeof(cur)) < 0)
		return 1;
	if (loaded == 1 && mailq_list_has(cur, old.entry)) {
		printf("the mail gate is already in %s (%s); nothing changed\n", main_cf, old.entry);
		return 0;
	}
	for (int i = 0; i < 3; i++)
		if (pf_get_explicit(dir, pf_params[i], &s.was_set[i], s.was[i],
		    sizeof(s.was[i])) < 0)
			return 1;
	for (int i = 0; i < 2; i++)
		if (mailq_list_has(s.was[i], s.entry)) {
			cli_say("%s already names %s, but smtpguard did not put it there: remove it "
			    "(postconf -c %s -e) and run mail enable again", pf_params[i], s.entry,
			    dir);
			return 1;
		}
	if (copy_file(main_cf, orig) < 0) {
		cli_say("keeping a copy of %s in %s: %s", main_cf, orig, strerror(errno));
		return 1;
	}
	if (state_save(cfg, &s) < 0) {
		cli_say("writing %s: %s", spath, strerror(errno));
		unlink(orig);
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		char v[sizeof(s.was[i]) + sizeof(s.entry) + 4];

		snprintf(v, sizeof(v), "%s%s%s", s.was[i], s.was[i][0] ? ", " : "", s.entry);
		if (pf_set(dir, pf_params[i], v) < 0)
			goto undo;
	}
	if (pf_set(dir, pf_params[2], s.action) < 0)
		goto undo;
	if (copy_file(main_cf, after) < 0) {
		cli_say("keeping a copy of the new %s: %s", main_cf, strerror(errno));
		goto undo;
	}
	printf("mail gate added to %s: smtpd_milters and non_smtpd_milters end with %s%s; "
	    "milter_default_action = %s%s\n", main_cf, s.entry, s.was[0][0] || s.was[1][0] ?
	    " (the milters already there come first, in their order)" : "", s.action,
	    s.action[0] == 'a' ? " (if the gate is down, mail flows unguarded; [mail] fail = "
	    "tempfail defers it instead)" : " (if the gate is down, mail waits)");
	printf("the original main.cf is kept in %s; smtpguard mail disable puts it back\n", orig);
	pf_reload(dir);
	return 0;
undo:
	{
		size_t len;
		char *data = slurp(orig, &len);
		struct stat sb;

		if (data != NULL && stat(main_cf, &sb) == 0 &&
		    file_replace_bytes(main_cf, sb.st_mode & 07777, sb.st_uid, sb.st_gid, data,
		    len) == 0)
			cli_say("%s left as it was", main_cf);
		else
			cli_say("could not put %s back: its original is in %s", main_cf, orig);
		free(data);
	}
	unlink(spath);
	unlink(after);
	return 1;
}

static int
pf_disable(const struct config *cfg, const char *dir)
{
	char main_cf[PATH_MAX + 16], orig[PATH_MAX + 64], after[PATH_MAX + 64], spath[PATH_MAX + 64];
	struct pfstate s;
	char *now, *then, *first;
	size_t nnow, nthen, nfirst;
	struct stat sb;
	int loaded, rc = 1;

	snprintf(main_cf, sizeof(main_cf), "%s/main.cf", dir);
	state_path(cfg, dir, "state", spath, sizeof(spath));
	state_path(cfg, dir, "orig", orig, sizeof(orig));
	state_path(cfg, dir, "after", after, sizeof(after));
	if ((loaded = state_load_path(spath, &s)) <= 0) {
		if (loaded < 0)
			cli_say("%s is unreadable: check %s by hand", spath, main_cf);
		else
			printf("the mail gate was not added to %s by smtpguard: nothing to undo\n",
			    main_cf);
		return loaded < 0 ? 1 : 0;
	}
	now = slurp(main_cf, &nnow);
	then = slurp(after, &nthen);
	first = slurp(orig, &nfirst);
	if (now == NULL || stat(main_cf, &sb) < 0) {
		cli_say("%s: %s", main_cf, strerror(errno));
		goto out;
	}
	if (then != NULL && first != NULL && nnow == nthen && memcmp(now, then, nnow) == 0) {
		if (file_replace_bytes(main_cf, sb.st_mode & 07777, sb.st_uid, sb.st_gid, first,
		    nfirst) < 0) {
			cli_say("restoring %s: %s", main_cf, strerror(errno));
			goto out;
		}
		printf("restored %s as it was before mail enable (byte for byte)\n", main_cf);
	} else {
		/* The admin changed main.cf since: take back only what we put in. */
		for (int i = 0; i < 2; i++) {
			bool set;
			char cur[4096], rest[4096], was_rest[4096];

			if (pf_get_explicit(dir, pf_params[i], &set, cur, sizeof(cur)) < 0)
				goto out;
			if (!set || !mailq_list_has(cur, s.entry))
				continue;
			mailq_list_without(cur, s.entry, rest, sizeof(rest));
			mailq_list_without(s.was[i], s.entry, was_rest, sizeof(was_rest));
			/* Left as enable found it: its own words back (or unset again). */
			if (strcmp(rest, was_rest) == 0)
				rc = s.was_set[i] ? pf_set(dir, pf_params[i], s.was[i]) :
				    pf_unset(dir, pf_params[i]);
			else
				rc = pf_set(dir, pf_params[i], rest);	/* the admin's other edits kept */
			if (rc < 0) {
				rc = 1;
				goto out;
			}
		}
		rc = 1;
		{
			bool set;
			char cur[4096];

			if (pf_get_explicit(dir, pf_params[2], &set, cur, sizeof(cur)) < 0)
				goto out;
			/* Ours only if it still says what we set. */
			if (set && strcmp(cur, s.action) == 0 && (s.was_set[2] ?
			    pf_set(dir, pf_params[2], s.was[2]) : pf_unset(dir, pf_params[2])) < 0)
				goto out;
		}
		printf("%s changed since mail enable: removed only the gate (%s) and its "
		    "milter_default_action with postconf; the other changes are kept\n", main_cf,
		    s.entry);
	}
	unlink(spath);
	unlink(orig);
	unlink(after);
	pf_reload(dir);
	rc = 0;
out:
	free(now);
	free(then);
	free(first);
	return rc;
}

/* --- mail enable / disable: Exim (one config file) ------------------------------ */

#define EXIM_CONF	"/etc/exim4/exim4.conf"
#define EXIM_PREFIX	"mta-exim-"	/* mail enable's copies of an Exim config */

static void
ex_state_path(const struct config *cfg, const char *file, const char *ext, char *out,
    size_t len)
{
	char sd[PATH_MAX];

	state_dir(cfg, sd, sizeof(sd));
	snprintf(out, len, "%s/" EXIM_PREFIX "%016llx.%s", sd,
	    (unsigned long long)fnv1a64(FNV1A64_BASIS, file, strlen(file)), ext);
}

/* exim -C TMP -bV on the new text before it replaces the file; 0 if no exim to ask. */
static int
ex_check(const char *file, const char *text, size_t len)
{
	char tmp[PATH_MAX + 32];
	const char *exim = mailrun_in_path("exim4") ? "exim4" : "exim";
	char *argv[] = { (char *)exim, "-C", tmp, "-bV", NULL };
	struct mailrun r;
	int rc;

	if (!mailrun_in_path(exim)) {
		printf("note: no exim in PATH: the new config was not checked with exim -bV\n");
		return 0;
	}
	snprintf(tmp, sizeof(tmp), "%s.smtpguard-check", file);
	if (file_replace_bytes(tmp, 0644, 0, 0, text, len) < 0) {
		cli_say("%s: %s", tmp, strerror(errno));
		return -1;
	}
	rc = mailrun_ok(argv, &r);
	unlink(tmp);
	if (rc == 0)
		free(r.out);
	else
		cli_say("exim refuses the config with the gate in it: %s left as it was", file);
	return rc;
}

static int
ex_enable(const struct config *cfg, const char *file)
{
	char orig[PATH_MAX + 64], after[PATH_MAX + 64], spath[PATH_MAX + 64], err[1024] = "";
	char *now, *wired = NULL, *text = NULL;
	json_t *st = NULL;
	size_t nnow, nwired;
	struct stat sb;
	int rc = 1;

	if (!cfg->mail_gate || !cfg->mail_exim) {
		cli_say("the gate does not answer Exim: set [mail] gate = yes and mta = exim in the "
		    "config (then smtpguard reload) before wiring it into %s, or Exim would %s "
		    "every message while nothing answers", file, cfg->mail_fail_tempfail ?
		    "defer" : "pass");
		return 1;
	}
	if ((now = slurp(file, &nnow)) == NULL || stat(file, &sb) < 0) {
		cli_say("%s: %s (--exim-config FILE names Exim's config file)", file,
		    strerror(errno));
		free(now);
		return 1;
	}
	ex_state_path(cfg, file, "orig", orig, sizeof(orig));
	ex_state_path(cfg, file, "after", after, sizeof(after));
	if (eximconf_wired(now, nnow)) {
		printf("the mail gate is already in %s; nothing changed\n", file);
		free(now);
		return access(orig, F_OK) == 0 ? 0 : 1;
	}
	if (eximconf_wire(now, nnow, cfg->mail_socket, cfg->mail_fail_tempfail, &wired,
	    &nwired, err, sizeof(err)) < 0) {
		cli_say("%s: %s", file, err);
		goto out;
	}
	if (ex_check(file, wired, nwired) < 0)
		goto out;
	if (ensure_parent_dir(orig, 0755) < 0 ||
	    file_replace_bytes(orig, 0600, 0, 0, now, nnow) < 0 ||
	    file_replace_bytes(after, 0600, 0, 0, wired, nwired) < 0) {
		cli_say("keeping copies of %s in %s: %s", file, orig, strerror(errno));
		unlink(orig);
		goto out;
	}
	if (file_replace_bytes(file, sb.st_mode & 07777, sb.st_uid, sb.st_gid, wired,
	    nwired) < 0) {
		cli_say("writing %s: %s (left as it was)", file, strerror(errno));
		unlink(orig);
		unlink(after);
		goto out;
	}
	ex_state_path(cfg, file, "state", spath, sizeof(spath));
	if ((st = json_pack("{s:s, s:s}", "config_file", file, "fallback",
	    cfg->mail_fail_tempfail ? "defer" : "pass")) == NULL ||
	    (text = json_dumps(st, JSON_INDENT(1) | JSON_SORT_KEYS)) == NULL ||
	    file_replace_bytes(spath, 0600, 0, 0, text, strlen(text)) < 0)
		printf("note: %s not written: status will not show this Exim\n", spath);
	json_decref(st);
	free(text);
	printf("mail gate added to %s: its statements open the data ACL and the not-SMTP ACL "
	    "(SMTPGUARD_SOCKET = %s); if the gate is down Exim %s\n", file, cfg->mail_socket,
	    cfg->mail_fail_tempfail ? "defers the message ([mail] fail = tempfail)" :
	    "lets mail through unguarded ([mail] fail = accept; tempfail defers it instead)");
	printf("the original is kept in %s; smtpguard mail disable puts it back\n", orig);
	printf("Exim's daemon reads its config when it starts and on SIGHUP: reload it "
	    "(systemctl reload exim4); local submissions see the change at once\n");
	rc = 0;
out:
	free(now);
	free(wired);
	return rc;
}

static int
ex_disable(const struct config *cfg, const char *file)
{
	char orig[PATH_MAX + 64], after[PATH_MAX + 64];
	char *now, *then, *first, *rest = NULL;
	size_t nnow, nthen = 0, nfirst = 0, nrest;
	struct stat sb;
	int rc = 1, blocks;

	ex_state_path(cfg, file, "orig", orig, sizeof(orig));
	ex_state_path(cfg, file, "after", after, sizeof(after));
	if ((now = slurp(file, &nnow)) == NULL || stat(file, &sb) < 0) {
		cli_say("%s: %s", file, strerror(errno));
		free(now);
		return 1;
	}
	then = slurp(after, &nthen);
	first = slurp(orig, &nfirst);
	if (then != NULL && first != NULL && nnow == nthen && memcmp(now, then, nnow) == 0) {
		if (file_replace_bytes(file, sb.st_mode & 07777, sb.st_uid, sb.st_gid, first,
		    nfirst) < 0) {
			cli_say("restoring %s: %s", file, strerror(errno));
			goto out;
		}
		printf("restored %s as it was before mail enable (byte for byte)\n", file);
	} else {
		/* Edited since (or enabled by hand): take out only the marked lines. */
		if ((blocks = eximconf_unwire(now, nnow, &rest, &nrest)) < 0) {
			cli_say("%s: %s", file, strerror(errno));
			goto out;
		}
		if (blocks == 0) {
			printf("the mail gate is not in %s: nothing to undo\n", file);
			unlink(orig);
			unlink(after);
			rc = 0;
			goto out;
		}
		if (file_replace_bytes(file, sb.st_mode & 07777, sb.st_uid, sb.st_gid, rest,
		    nrest) < 0) {
			cli_say("writing %s: %s", file, strerror(errno));
			goto out;
		}
		printf("%s changed since mail enable: took out only the gate's %d marked "
		    "block%s; the other changes are kept\n", file, blocks, blocks == 1 ? "" : "s");
	}
	unlink(orig);
	unlink(after);
	ex_state_path(cfg, file, "state", orig, sizeof(orig));
	unlink(orig);
	printf("reload Exim's daemon (systemctl reload exim4) for SMTP to stop asking the gate\n");
	rc = 0;
out:
	free(now);
	free(then);
	free(first);
	free(rest);
	return rc;
}

int
mailenable_cmd(const struct config *cfg, int argc, char **argv)
{
	struct mailrun_opts o;
	bool enable;

	if (mailrun_opts(argc, argv, false, &o,
	    "enable|disable [--postfix-config DIR | --exim-config FILE]") < 0)
		return 2;
	if (o.arg == NULL || (strcmp(o.arg, "enable") != 0 && strcmp(o.arg, "disable") != 0)) {
		cli_say("usage: smtpguard mail enable|disable [--postfix-config DIR | "
		    "--exim-config FILE]");
		return 2;
	}
	enable = strcmp(o.arg, "enable") == 0;
	if (o.postfix_dir != NULL && o.exim_conf != NULL) {
		cli_say("--postfix-config and --exim-config name two MTAs; give one");
		return 2;
	}
	if (geteuid() != 0) {
		cli_say("mail %s must run as root (it edits the MTA's configuration)", o.arg);
		return 1;
	}
	if (o.exim_conf != NULL || (o.postfix_dir == NULL && !mailrun_in_path("postconf"))) {
		const char *file = o.exim_conf ? o.exim_conf : EXIM_CONF;

		if (o.exim_conf == NULL && access(file, F_OK) < 0) {
			cli_say("no Postfix (postconf) and no %s: for Debian's split Exim config "
			    "install the conf.d snippet (conf/exim4/, see smtpguard(8)); for another "
			    "single-file config name it with --exim-config FILE", file);
			return 1;
		}
		return enable ? ex_enable(cfg, file) : ex_disable(cfg, file);
	}
	return enable ? pf_enable(cfg, o.postfix_dir ? o.postfix_dir : POSTFIX_DIR) :
	    pf_disable(cfg, o.postfix_dir ? o.postfix_dir : POSTFIX_DIR);
}

/*
 * For status: the MTA instances mail enable wired the gate into, as
 * "postfix /etc/postfix (milter_default_action = accept)"; how many. Sets
 * *unguarded when one of them lets mail through while the gate is down.
 */
int
mailenable_wired(const struct config *cfg, char *out, size_t len, bool *unguarded)
{
	char sd[PATH_MAX], path[PATH_MAX * 2];
	struct pfstate s;
	struct dirent *de;
	DIR *dir;
	int n = 0;

	out[0] = '\0';
	*unguarded = false;
	state_dir(cfg, sd, sizeof(sd));
	if ((dir = opendir(sd)) == NULL)
		return 0;
	while ((de = readdir(dir)) != NULL) {
		size_t k = strlen(de->d_name);

		if (k < 6 || strcmp(de->d_name + k - 6, ".state") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", sd, de->d_name);
		if (strncmp(de->d_name, EXIM_PREFIX, strlen(EXIM_PREFIX)) == 0) {
			json_t *o = json_load_file(path, 0, NULL);
			const char *file = json_string_value(json_object_get(o, "config_file"));
			const char *fb = json_string_value(json_object_get(o, "fallback"));

			if (file != NULL && fb != NULL) {
				snprintf(out + strlen(out), len - strlen(out), "%sexim %s "
				    "(SMTPGUARD_FALLBACK = %s)", n ? "; " : "", file, fb);
				*unguarded |= strcmp(fb, "pass") == 0;
				n++;
			}
			json_decref(o);
			continue;
		}
		if (strncmp(de->d_name, STATE_PREFIX, strlen(STATE_PREFIX)) != 0)
			continue;
		if (state_load_path(path, &s) != 1)
			continue;
		snprintf(out + strlen(out), len - strlen(out), "%spostfix %s "
		    "(milter_default_action = %s)", n ? "; " : "", s.dir, s.action);
		*unguarded |= strcmp(s.action, "accept") == 0;
		n++;
	}
	closedir(dir);
	return n;
}
