/*
 * attrib.c — names the sender of a queued SYN: uid/gid from the queue, the
 * socket from one exact sock_diag lookup, its process from /proc, the user
 * from passwd. Runs before the verdict, while the process still sits in
 * connect(). Fields it cannot find stay unknown: it never guesses and never
 * fails the decision. It does not log.
 *
 * A /proc scan costs one stat per process. Senders repeat (a spam script
 * loops; a PHP-FPM worker serves request after request), so the last pids
 * found are asked first, and only if one of them holds this very socket
 * inode: a hint is checked exactly, never trusted.
 */
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

#define ATTRIB_PW_BUF		4096	/* getpwuid_r scratch; passwd lines are short */
#define ATTRIB_RECENT_MAX	16	/* pids remembered across flows */
#define ATTRIB_HINTS_ASKED	4	/* recent pids of the same uid tried per flow */

struct attrib_recent {
	uid_t	 uid;
	pid_t	 pid;	/* 0: empty slot */
};

struct attrib_ctx {
	struct diag		*diag;
	char			 proc_root[PATH_MAX];
	struct attrib_recent	 recent[ATTRIB_RECENT_MAX];
	size_t			 next;	/* slot the next new pid goes to */
};

struct attrib_ctx *
attrib_open(const char *proc_root)
{
	struct attrib_ctx *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if (strlcpy_sg(c->proc_root, proc_root, sizeof(c->proc_root)) >=
	    sizeof(c->proc_root)) {
		free(c);
		errno = ENAMETOOLONG;
		return NULL;
	}
	if ((c->diag = diag_open()) == NULL) {
		free(c);
		return NULL;
	}
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
	char buf[ATTRIB_PW_BUF];

	if (a->has_uid && getpwuid_r(a->uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		strlcpy_sg(a->user, pw.pw_name, sizeof(a->user));
}

static void
remember(struct attrib_ctx *c, uid_t uid, pid_t pid)
{
	for (size_t i = 0; i < ATTRIB_RECENT_MAX; i++)
		if (c->recent[i].pid == pid) {
			c->recent[i].uid = uid;
			return;
		}
	c->recent[c->next].uid = uid;
	c->recent[c->next].pid = pid;
	c->next = (c->next + 1) % ATTRIB_RECENT_MAX;
}

/* The newest remembered pids of this uid that hold the socket. */
static bool
from_hints(struct attrib_ctx *c, uid_t uid, ino_t inode, pid_t *pid)
{
	size_t asked = 0;

	for (size_t k = 1; k <= ATTRIB_RECENT_MAX && asked < ATTRIB_HINTS_ASKED; k++) {
		const struct attrib_recent *r =
		    &c->recent[(c->next + ATTRIB_RECENT_MAX - k) % ATTRIB_RECENT_MAX];

		if (r->pid == 0 || r->uid != uid)
			continue;
		asked++;
		if (procfs_holds_socket(c->proc_root, r->pid, inode)) {
			*pid = r->pid;
			return true;
		}
	}
	return false;
}

void
attrib_flow(struct attrib_ctx *c, const struct pkt *p, bool has_uid, uid_t uid, bool has_gid,
    gid_t gid, struct attrib *a)
{
	uid_t sock_uid;
	pid_t pid;

	memset(a, 0, sizeof(*a));
	a->has_uid = has_uid;
	a->uid = has_uid ? uid : 0;
	a->has_gid = has_gid;
	a->gid = has_gid ? gid : 0;
	if (diag_lookup(c->diag, p, &a->inode, &sock_uid) == 0) {
		if (!a->has_uid) {
			a->has_uid = true;
			a->uid = sock_uid;
		}
		/* /proc is searched by the socket's owner: that is whose process holds it. */
		if (a->inode != 0 && (from_hints(c, sock_uid, a->inode, &pid) ||
		    procfs_find_socket(c->proc_root, sock_uid, a->inode, &pid) == 0)) {
			remember(c, sock_uid, pid);
			a->pid = pid;
			a->has_pid = true;
			(void)procfs_read(c->proc_root, pid, a);
		}
	} else
		a->inode = 0;
	attrib_user(a);
}
