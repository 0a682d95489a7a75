/*
 * attrib.c — names the sender of a queued SYN: uid/gid from the queue, the
 * socket from sock_diag, its process from /proc, the user from passwd. Runs
 * before the verdict, while the process still sits in connect(). Fields it
 * cannot find stay unknown; it never guesses and never fails the decision.
 */
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

#define PW_BUF		4096

struct attrib_ctx {
	struct diag	*diag;
	char		 proc_root[PATH_MAX];
};

struct attrib_ctx *
attrib_open(const char *proc_root)
{
	struct attrib_ctx *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->diag = diag_open()) == NULL) {
		free(c);
		return NULL;
	}
	strlcpy_sg(c->proc_root, proc_root, sizeof(c->proc_root));
	return c;
}

void
attrib_close(struct attrib_ctx *c)
{
	if (c == NULL)
		return;
	diag_close(c->diag);
	free(c);
}

void
attrib_user(struct attrib *a)
{
	struct passwd pw, *res = NULL;
	char buf[PW_BUF];

	if (a->has_uid && getpwuid_r(a->uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		strlcpy_sg(a->user, pw.pw_name, sizeof(a->user));
}

void
attrib_flow(struct attrib_ctx *c, const struct pkt *p, bool has_uid, uid_t uid, bool has_gid,
    gid_t gid, struct attrib *a)
{
	uid_t sock_uid;
	pid_t pid;

	memset(a, 0, sizeof(*a));
	a->has_uid = has_uid;
	a->uid = uid;
	a->has_gid = has_gid;
	a->gid = gid;
	if (diag_lookup(c->diag, p, &a->inode, &sock_uid) == 0) {
		if (!a->has_uid) {
			a->has_uid = true;
			a->uid = sock_uid;
		}
		if (a->inode != 0 &&
		    procfs_find_socket(c->proc_root, a->uid, a->inode, &pid) == 0)
			(void)procfs_read(c->proc_root, pid, a);
	}
	attrib_user(a);
}
