/*
 * attrib.c — names the sender of a queued SYN: uid/gid from the queue, the
 * socket from one exact sock_diag lookup, its process from /proc, the user
 * from passwd. Runs before the verdict, while the process still sits in
 * connect(). Fields it cannot find stay unknown: it never guesses and never
 * fails the decision. It does not log.
 *
 * The process comes from the connect hook (connhook.c) when it is attached:
 * one map lookup by the socket's cookie, the answer checked against the
 * socket's owner and the connect's time. Without it, or when it does not
 * know the socket, /proc is searched. Senders repeat (a spam script loops; a
 * PHP-FPM worker serves request after request), so the last pids found are
 * asked first, at the fd numbers their sockets had before and then in their
 * whole fd table, and only if one of them holds this very socket inode: a
 * hint is checked exactly, never trusted. Then procfs.c's index (new
 * processes first, then the owner's) spares the listing of /proc; without it
 * (it could not be built), the full search.
 *
 * A pid is only a number until its /proc directory is open, and the process
 * may exit and its pid go to another between the two. So every answer is
 * checked again through the open directory, and all details are read
 * through it: the hook's process must have started by the connect, and the
 * searched process must still hold the socket at the fd it was found at.
 */
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "smtpguard.h"

#define ATTRIB_PW_BUF		4096	/* getpwuid_r scratch; passwd lines are short */
#define ATTRIB_RECENT_MAX	16	/* pids remembered across flows */
#define ATTRIB_HINTS_ASKED	4	/* recent pids of the same uid tried per flow */
#define ATTRIB_NAMES		256	/* uid -> user name cache, direct-mapped */
#define PASSWD_PATH		"/etc/passwd"

struct attrib_name {
	bool	 known;
	uid_t	 uid;
	char	 name[USER_NAME_MAX];	/* "" if the uid has no name */
};

struct attrib_recent {
	uid_t	 uid;
	pid_t	 pid;	/* 0: empty slot */
	uint64_t fds;	/* bit N: its fd N held a socket it sent from (N < 64) */
};

struct attrib_ctx {
	struct diag		*diag;
	struct connhook		*hook;	/* NULL: /proc search only */
	struct procfs_index	*index;	/* NULL: the full search, listing /proc */
	char			 proc_root[PATH_MAX];
	struct attrib_recent	 recent[ATTRIB_RECENT_MAX];
	size_t			 next;	/* slot the next new pid goes to */
	struct attrib_name	 names[ATTRIB_NAMES];
	time_t			 passwd_checked;
	struct timespec		 passwd_mtime;
	ino_t			 passwd_ino;
	int			 piddir;	/* the last sender's /proc/PID, open; -1: none */
	pid_t			 piddir_pid;
	int64_t			 boot_offset;	/* our CLOCK_BOOTTIME minus the hook's */
};

struct attrib_ctx *
attrib_open(const char *proc_root)
{
	struct attrib_ctx *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->piddir = -1;
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
	/* Built now, not on the first SYN: listing /proc is the cost it spares. */
	c->index = procfs_index_open(proc_root, 0);
	return c;
}

static void
drop_piddir(struct attrib_ctx *c)
{
	if (c->piddir >= 0)
		close(c->piddir);
	c->piddir = -1;
}

/*
 * PID's /proc directory, kept open from the sender's first reads to its
 * details: one path walk, and all of them of the same process.
 */
static int
open_piddir(struct attrib_ctx *c, pid_t pid)
{
	drop_piddir(c);
	c->piddir = procfs_open_pid(c->proc_root, pid);
	c->piddir_pid = pid;
	return c->piddir;
}

/* PID's directory: the sender's, still open, or opened now. */
static int
piddir_of(struct attrib_ctx *c, pid_t pid)
{
	return c->piddir >= 0 && c->piddir_pid == pid ? c->piddir : open_piddir(c, pid);
}

void
attrib_close(struct attrib_ctx *c)
{
	if (c == NULL)
		return;
	drop_piddir(c);
	diag_close(c->diag);
	connhook_close(c->hook);
	procfs_index_close(c->index);
	free(c);
}

int
attrib_hook(struct attrib_ctx *c, char *cgroup_root, size_t len, const struct connhook_filter *f)
{
	if ((c->hook = connhook_open(cgroup_root, len, f)) == NULL)
		return -1;
	c->boot_offset = procfs_boottime_offset(c->proc_root);
	return 0;
}

/* Without a hook there is nothing to filter: 0. */
int
attrib_hook_refilter(struct attrib_ctx *c, const struct connhook_filter *f)
{
	return c->hook == NULL ? 0 : connhook_refilter(c->hook, f);
}

static void
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
	c->recent[c->next].fds = 0;
	c->next = (c->next + 1) % ATTRIB_RECENT_MAX;
}

/*
 * Does R hold the socket? Asked through its directory, opened first: the
 * fd numbers its sockets had before (a flood recycles a handful: one
 * readlink each), then its whole fd table.
 */
static bool
hint_holds(struct attrib_ctx *c, struct attrib_recent *r, ino_t inode)
{
	int fd;

	if (open_piddir(c, r->pid) < 0)
		return false;
	for (uint64_t bits = r->fds; bits != 0; bits &= bits - 1)
		if (procfs_fd_is_socket_at(c->piddir, __builtin_ctzll(bits), inode))
			return true;
	if ((fd = procfs_socket_fd_at(c->piddir, inode)) < 0)
		return false;
	if (fd < 64)
		r->fds |= 1ULL << fd;
	return true;
}

/* The newest remembered pid of this uid that holds the socket; its directory left open. */
static bool
from_hints(struct attrib_ctx *c, uid_t uid, ino_t inode, pid_t *pid)
{
	size_t asked = 0;

	for (size_t k = 1; k <= ATTRIB_RECENT_MAX && asked < ATTRIB_HINTS_ASKED; k++) {
		struct attrib_recent *r =
		    &c->recent[(c->next + ATTRIB_RECENT_MAX - k) % ATTRIB_RECENT_MAX];

		if (r->pid == 0 || r->uid != uid)
			continue;
		asked++;
		if (hint_holds(c, r, inode)) {
			*pid = r->pid;
			return true;
		}
	}
	return false;
}

static bool
from_proc(struct attrib_ctx *c, uid_t uid, ino_t inode, struct procfs_holder *h)
{
	if (c->index != NULL)
		return procfs_index_find(c->index, uid, inode, h) == 0;
	return procfs_find_socket(c->proc_root, uid, inode, h) == 0;
}

/*
 * The hook's answer, if its directory is of the process that called
 * connect(): the socket's owner's, started by then. A's ppid comes from the
 * same read of stat.
 */
static bool
from_hook(struct attrib_ctx *c, const struct diag_sock *ds, pid_t *pid, struct attrib *a)
{
	uint64_t connected;

	return c->hook != NULL && connhook_pid(c->hook, ds->cookie, pid, &connected) == 0 &&
	    open_piddir(c, *pid) >= 0 && procfs_owner_at(c->piddir) == ds->uid &&
	    procfs_started_by_at(c->piddir, connected, c->boot_offset, a);
}

/*
 * /proc searched by the socket's owner: whose process holds it. A hint is
 * asked through its open directory; a pid the search found, once its
 * directory is open, must still hold it at the same fd.
 */
static bool
from_search(struct attrib_ctx *c, const struct diag_sock *ds, pid_t *pid)
{
	struct procfs_holder h;

	if (ds->inode == 0)
		return false;
	if (from_hints(c, ds->uid, ds->inode, pid))
		return true;
	if (!from_proc(c, ds->uid, ds->inode, &h))
		return false;
	remember(c, ds->uid, h.pid);
	*pid = h.pid;
	return open_piddir(c, h.pid) >= 0 && procfs_fd_is_socket_at(c->piddir, h.fd, ds->inode);
}

/* How the index answered; NULL if there is none. */
const struct procfs_index_stats *
attrib_index_stats(const struct attrib_ctx *c)
{
	return c->index != NULL ? procfs_index_stats(c->index) : NULL;
}

/*
 * Who sent it, cheaply: uid, gid, socket, pid and executable. Enough to
 * decide and to tell whether the event will be written (flood limiting).
 */
void
attrib_sender(struct attrib_ctx *c, const struct pkt *p, bool has_uid, uid_t uid, bool has_gid,
    gid_t gid, struct attrib *a)
{
	struct diag_sock ds;
	pid_t pid;

	drop_piddir(c);
	memset(a, 0, sizeof(*a));
	a->has_uid = has_uid;
	a->uid = has_uid ? uid : 0;
	a->has_gid = has_gid;
	a->gid = has_gid ? gid : 0;
	if (diag_lookup(c->diag, p, &ds) < 0)
		return;
	a->inode = ds.inode;
	if (!a->has_uid) {
		a->has_uid = true;
		a->uid = ds.uid;
	}
	if ((from_hook(c, &ds, &pid, a) || from_search(c, &ds, &pid)) &&
	    procfs_read_exe_at(c->piddir, pid, a) == 0)
		return;
	a->has_ppid = false;	/* of no process named */
	drop_piddir(c);
}

/* The uid's name, from a small cache emptied when /etc/passwd changes. */
static void
cached_user(struct attrib_ctx *c, struct attrib *a)
{
	struct stat sb;
	time_t now = time(NULL);
	struct attrib_name *slot;

	if (!a->has_uid)
		return;
	if (now != c->passwd_checked) {
		c->passwd_checked = now;
		if (stat(PASSWD_PATH, &sb) == 0 && (sb.st_mtim.tv_sec != c->passwd_mtime.tv_sec ||
		    sb.st_mtim.tv_nsec != c->passwd_mtime.tv_nsec || sb.st_ino != c->passwd_ino)) {
			c->passwd_mtime = sb.st_mtim;
			c->passwd_ino = sb.st_ino;
			memset(c->names, 0, sizeof(c->names));
		}
	}
	slot = &c->names[a->uid % ATTRIB_NAMES];
	if (slot->known && slot->uid == a->uid) {
		memcpy(a->user, slot->name, sizeof(a->user));
		return;
	}
	attrib_user(a);
	slot->known = true;
	slot->uid = a->uid;
	memcpy(slot->name, a->user, sizeof(slot->name));
}

/* What only a written event needs: cmdline, cwd, ppid, cgroup, user name. */
void
attrib_details(struct attrib_ctx *c, struct attrib *a)
{
	if (a->has_pid && piddir_of(c, a->pid) >= 0)
		procfs_read_rest_at(c->piddir, a);
	drop_piddir(c);
	cached_user(c, a);
}

void
attrib_flow(struct attrib_ctx *c, const struct pkt *p, bool has_uid, uid_t uid, bool has_gid,
    gid_t gid, struct attrib *a)
{
	attrib_sender(c, p, has_uid, uid, has_gid, gid, a);
	attrib_details(c, a);
}
