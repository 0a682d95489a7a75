/*
 * procfs.c — from a socket inode to the process that holds it, and what
 * /proc says about that process. The proc root is a parameter (iproute2 ss's
 * PROC_ROOT trick) so tests run on a fixture tree. Processes owned by the
 * socket's uid are searched first; root's next (a non-dumpable process shows
 * as root); everyone else's last, within a time budget. The index
 * (procfs_index_*) keeps the processes and their owners between searches so
 * that a search need not list /proc; it only chooses the order: every answer,
 * from either, is a process whose fd table held the socket when it was read.
 * A process that vanishes mid-read keeps what was read, and a field that
 * cannot be read stays empty: nothing is guessed. Pure: no logging, no exit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smtpguard.h"

#define PROC_PID_MAX		4194304	/* PID_MAX_LIMIT: larger names are not pids */
#define PROC_STAT_MAX		1024	/* comm is at most 64 bytes; the start is field 22 */
#define PROC_CGROUP_MAX		4096	/* a v1 host lists ~13 hierarchies on one page */
#define PROC_SOCKLINK_MAX	32	/* "socket:[" + 20 digits + "]" */
#define PROC_NAME_MAX		16	/* a pid in decimal */
#define PROC_TIMENS_SEC_MAX	(INT64_MAX / 1000000000LL)	/* seconds that fit in int64 ns */
#define PROC_OTHERS_FIRST	1024	/* first allocation of the deferred pid list */
/*
 * Opening a process's fd table costs ~30 us: 150 ms at 5,000 processes, with
 * every queued packet waiting. A user running thousands of processes, or a
 * socket no process holds (an fd in flight over a unix socket), would cost
 * that on every SYN; past this budget the sender stays unknown instead. (The
 * connect hook makes the search rare: connhook.c; the index makes it short.)
 */
#define PROC_SEARCH_BUDGET_NS	(100 * 1000 * 1000)

struct proc_pid {
	pid_t	 pid;
	uid_t	 owner;
};

static pid_t
pid_of(const char *name)
{
	long pid = 0;

	if (*name == '\0' || *name == '0')
		return 0;
	for (const char *p = name; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		pid = pid * 10 + (*p - '0');
		if (pid > PROC_PID_MAX)
			return 0;
	}
	return (pid_t)pid;
}

/*
 * Which fd in the fd table DFD/FDDIR holds the socket; -1 if none. Only
 * readlinkat on each entry: a stat would follow the link into sockfs for
 * nothing. The buffer is one byte longer than the wanted text, so any longer
 * target (a path) differs in length.
 */
static int
socket_fd_in(int dfd, const char *fddir, const char *want, size_t wantlen)
{
	char link[PROC_SOCKLINK_MAX + 1];
	struct dirent *de;
	DIR *dir;
	int fd, found = -1;

	if ((fd = openat(dfd, fddir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while (found < 0 && (de = readdir(dir)) != NULL) {
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		n = readlinkat(dirfd(dir), de->d_name, link, wantlen + 1);
		if (n == (ssize_t)wantlen && memcmp(link, want, wantlen) == 0)
			found = (int)strtol(de->d_name, NULL, 10);
	}
	closedir(dir);
	return found;
}

/* Which fd of procfd/NAME holds the socket; -1 if none. */
static int
socket_fd(int procfd, const char *name, const char *want, size_t wantlen)
{
	char path[PROC_NAME_MAX + 4];

	if ((size_t)snprintf(path, sizeof(path), "%s/fd", name) >= sizeof(path))
		return -1;
	return socket_fd_in(procfd, path, want, wantlen);
}

static size_t
socket_link(ino_t inode, char *want, size_t len)
{
	return (size_t)snprintf(want, len, "socket:[%llu]", (unsigned long long)inode);
}

/* The fd of PIDDIR's process that holds the socket, -1 if none: its whole table. */
int
procfs_socket_fd_at(int piddir, ino_t inode)
{
	char want[PROC_SOCKLINK_MAX + 1];
	size_t wantlen = socket_link(inode, want, sizeof(want));

	return socket_fd_in(piddir, "fd", want, wantlen);
}

/*
 * Is fd FD of PIDDIR's process the socket? One readlink, no listing: for a
 * sender that reuses its fd numbers (a loop that closes and connects again).
 */
bool
procfs_fd_is_socket_at(int piddir, int fd, ino_t inode)
{
	char want[PROC_SOCKLINK_MAX + 1], name[PROC_NAME_MAX + 4], link[PROC_SOCKLINK_MAX + 1];
	size_t wantlen = socket_link(inode, want, sizeof(want));
	ssize_t n;

	snprintf(name, sizeof(name), "fd/%d", fd);
	n = readlinkat(piddir, name, link, wantlen + 1);
	return n == (ssize_t)wantlen && memcmp(link, want, wantlen) == 0;
}

/*
 * /proc/PID, open: every read through it is of that one process, and fails
 * once it is gone, even if its pid is given to another. -1 if gone.
 */
int
procfs_open_pid(const char *proc_root, pid_t pid)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/%ld", proc_root, (long)pid) >=
	    sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/*
 * Whose process it is (its euid, root if non-dumpable); -1 if unreadable.
 * One reaped since reads as root: its next read through PIDDIR fails.
 */
uid_t
procfs_owner_at(int piddir)
{
	struct stat sb;

	if (fstat(piddir, &sb) < 0)
		return (uid_t)-1;
	return sb.st_uid;
}

/* Pass 2 and 3 of the search: root-owned first, then everyone else. */
static int
search_others(int procfd, const struct proc_pid *others, size_t n, const char *want,
    size_t wantlen, uint64_t deadline, struct procfs_holder *h)
{
	char name[PROC_NAME_MAX];

	for (int root = 1; root >= 0; root--)
		for (size_t i = 0; i < n; i++) {
			if ((others[i].owner == 0) != root)
				continue;
			if (mono_ns() > deadline) {
				errno = ETIMEDOUT;
				return -1;
			}
			snprintf(name, sizeof(name), "%ld", (long)others[i].pid);
			if ((h->fd = socket_fd(procfd, name, want, wantlen)) >= 0) {
				h->pid = others[i].pid;
				return 0;
			}
		}
	errno = ESRCH;
	return -1;
}

/* The full search, in the proc root PROCFD (closed here), until DEADLINE. */
static int
find_socket(int procfd, uid_t uid, ino_t inode, uint64_t deadline, struct procfs_holder *h)
{
	char want[PROC_SOCKLINK_MAX + 1];
	size_t wantlen, nothers = 0, cap = 0;
	struct proc_pid *others = NULL, *grown;
	struct dirent *de;
	struct stat sb;
	DIR *dir;
	int rc = -1, saved;

	wantlen = socket_link(inode, want, sizeof(want));
	if ((dir = fdopendir(procfd)) == NULL) {
		saved = errno;
		close(procfd);
		errno = saved;
		return -1;
	}
	/* Pass 1, during the listing: only the owner's processes are opened. */
	while ((de = readdir(dir)) != NULL) {
		pid_t p = pid_of(de->d_name);

		if (p == 0 || fstatat(procfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(sb.st_mode))
			continue;
		if (sb.st_uid == uid) {
			if (mono_ns() > deadline) {
				errno = ETIMEDOUT;
				goto out;
			}
			if ((h->fd = socket_fd(procfd, de->d_name, want, wantlen)) >= 0) {
				h->pid = p;
				rc = 0;
				goto out;
			}
			continue;
		}
		if (nothers == cap) {
			cap = cap ? cap * 2 : PROC_OTHERS_FIRST;
			if ((grown = reallocarray(others, cap, sizeof(*others))) == NULL)
				goto out;
			others = grown;
		}
		others[nothers].pid = p;
		others[nothers].owner = sb.st_uid;
		nothers++;
	}
	rc = search_others(procfd, others, nothers, want, wantlen, deadline, h);
out:
	saved = errno;
	free(others);
	closedir(dir);
	errno = saved;
	return rc;
}

int
procfs_find_socket(const char *proc_root, uid_t uid, ino_t inode, struct procfs_holder *h)
{
	int procfd;

	if ((procfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	return find_socket(procfd, uid, inode, mono_ns() + PROC_SEARCH_BUDGET_NS, h);
}

/* Reads up to len bytes of dfd/NAME; -1 if it cannot be opened. */
static ssize_t
read_at(int dfd, const char *name, char *buf, size_t len)
{
	ssize_t n, total = 0;
	int fd;

	if ((fd = openat(dfd, name, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	while ((size_t)total < len) {
		n = read(fd, buf + total, len - (size_t)total);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		total += n;
	}
	close(fd);
	return total;
}

/* A link's target, or "" when it cannot be read or does not fit. */
static void
link_at(int dfd, const char *name, char *out, size_t len)
{
	ssize_t n = readlinkat(dfd, name, out, len);

	if (n < 0 || (size_t)n >= len)
		n = 0;
	out[n] = '\0';
}

/* argv is NUL-separated and NUL-terminated: join with spaces, drop the end. */
static void
read_cmdline(int dfd, char *out, size_t len)
{
	ssize_t n = read_at(dfd, "cmdline", out, len - 1);

	if (n < 0)
		n = 0;
	while (n > 0 && out[n - 1] == '\0')
		n--;
	for (ssize_t i = 0; i < n; i++)
		if (out[i] == '\0')
			out[i] = ' ';
	out[n] = '\0';
}

/*
 * stat's field N (the 4th or later), a number. They follow "pid (comm)
 * state", and comm may hold spaces and ')': the last ')' ends it.
 */
static bool
stat_field(const char *stat, int n, unsigned long long *v)
{
	const char *p = strrchr(stat, ')');
	char *end;

	if (p == NULL || p[1] != ' ' || p[2] == '\0' || p[3] != ' ')
		return false;
	p += 4;
	for (int field = 4; field < n; field++) {
		if ((p = strchr(p, ' ')) == NULL)
			return false;
		p++;
	}
	if (*p < '0' || *p > '9')
		return false;
	errno = 0;
	*v = strtoull(p, &end, 10);
	return errno == 0 && (*end == ' ' || *end == '\n' || *end == '\0');
}

static bool
parse_ppid(const char *stat, pid_t *ppid)
{
	unsigned long long v;

	if (!stat_field(stat, 4, &v) || v > PROC_PID_MAX)
		return false;
	*ppid = (pid_t)v;
	return true;
}

/*
 * How far this process's time namespace moves CLOCK_BOOTTIME from the host's
 * (timens_offsets: "boottime SECONDS NANOSECONDS"); 0 where there is none,
 * or past the kernel's own bounds. The file tells the namespace of our
 * children, ours unless we unshared one ourselves (smtpguardd never does).
 */
int64_t
procfs_boottime_offset(const char *proc_root)
{
	char path[PATH_MAX], line[128];
	long long sec, nsec;
	int64_t offset = 0;
	FILE *fp;

	if ((size_t)snprintf(path, sizeof(path), "%s/self/timens_offsets", proc_root) >=
	    sizeof(path) || (fp = fopen(path, "re")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "boottime %lld %lld", &sec, &nsec) == 2 && nsec >= 0 &&
		    nsec < 1000000000LL && sec > -PROC_TIMENS_SEC_MAX && sec < PROC_TIMENS_SEC_MAX)
			offset = (int64_t)sec * 1000000000LL + nsec;
	fclose(fp);
	return offset;
}

/*
 * Had PIDDIR's process started by HOST_NS (CLOCK_BOOTTIME on the host's
 * clock, as the connect hook stamps a connect)? /proc/PID/stat counts on the
 * reader's, OFFSET (procfs_boottime_offset) later. Its 22nd field, in clock
 * ticks: one that started later in the same tick passes; a time before the
 * reader's zero, nothing. If so, the same read gives A its ppid
 * (procfs_read_rest_at then skips stat).
 */
bool
procfs_started_by_at(int piddir, uint64_t host_ns, int64_t offset, struct attrib *a)
{
	char buf[PROC_STAT_MAX + 1];
	unsigned long long ticks;
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t here_ns;
	ssize_t n;

	if (offset < 0 && (uint64_t)-offset > host_ns)
		return false;
	here_ns = host_ns + (uint64_t)offset;	/* wraps back for a negative OFFSET */
	if (hz <= 0 || (n = read_at(piddir, "stat", buf, PROC_STAT_MAX)) <= 0)
		return false;
	buf[n] = '\0';
	if (!stat_field(buf, 22, &ticks) || ticks > here_ns / (1000000000ULL / (uint64_t)hz))
		return false;
	a->has_ppid = parse_ppid(buf, &a->ppid);
	return true;
}

/*
 * The cgroup v2 line ("0::/path"), else the first line's path (v1:
 * "ID:controllers:/path"). A path longer than the field stays unknown:
 * a cut path would name another cgroup.
 */
static void
parse_cgroup(const char *text, char *out, size_t len)
{
	const char *line, *next, *first = NULL, *v2 = NULL, *path, *end;

	for (line = text; *line != '\0' && v2 == NULL; line = next) {
		const char *c1, *c2;

		if ((end = strchr(line, '\n')) == NULL)
			end = line + strlen(line);
		next = *end == '\n' ? end + 1 : end;
		if ((c1 = memchr(line, ':', (size_t)(end - line))) == NULL ||
		    (c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1))) == NULL)
			break;	/* not a cgroup line: the rest cannot be trusted */
		if (c1 == line + 1 && line[0] == '0' && c2 == c1 + 1)
			v2 = c2 + 1;
		else if (first == NULL)
			first = c2 + 1;
	}
	if ((path = v2 != NULL ? v2 : first) == NULL)
		return;
	if ((end = strchr(path, '\n')) == NULL)
		end = path + strlen(path);
	if ((size_t)(end - path) < len) {
		memcpy(out, path, (size_t)(end - path));
		out[end - path] = '\0';
	}
}

/* The cheap part: the pid and its executable, for the decision and the flood limiter. */
int
procfs_read_exe_at(int piddir, pid_t pid, struct attrib *a)
{
	char ents[256];

	errno = 0;
	link_at(piddir, "exe", a->exe, sizeof(a->exe));
	/*
	 * No exe link: gone (ESRCH once reaped), or going (an exiting process
	 * loses it first). The directory of one that is gone cannot be listed.
	 */
	if (a->exe[0] == '\0' && (errno == ESRCH ||
	    (errno == ENOENT && getdents64(piddir, ents, sizeof(ents)) < 0)))
		return -1;
	a->pid = pid;
	a->has_pid = true;
	return 0;
}

/* The rest, read only for an event that will be written; ppid unless known. */
void
procfs_read_rest_at(int piddir, struct attrib *a)
{
	char buf[PROC_CGROUP_MAX + 1];
	ssize_t n;

	read_cmdline(piddir, a->cmdline, sizeof(a->cmdline));
	link_at(piddir, "cwd", a->cwd, sizeof(a->cwd));
	if (!a->has_ppid && (n = read_at(piddir, "stat", buf, PROC_STAT_MAX)) > 0) {
		buf[n] = '\0';
		a->has_ppid = parse_ppid(buf, &a->ppid);
	}
	a->cgroup[0] = '\0';
	if ((n = read_at(piddir, "cgroup", buf, PROC_CGROUP_MAX)) > 0) {
		buf[n] = '\0';
		parse_cgroup(buf, a->cgroup, sizeof(a->cgroup));
	}
}

int
procfs_read(const char *proc_root, pid_t pid, struct attrib *a)
{
	int piddir, rc;

	if ((piddir = procfs_open_pid(proc_root, pid)) < 0)
		return -1;
	if ((rc = procfs_read_exe_at(piddir, pid, a)) == 0)
		procfs_read_rest_at(piddir, a);
	close(piddir);
	return rc;
}

/*
 * The index: which processes exist and whose they are, kept so that a lookup
 * does not list /proc. It is only an order to search in: every answer is a
 * process whose fd table holds socket:[INODE] when it is read, exactly as the
 * full search's. New processes are found from the pid namespace's last pid
 * (sys/kernel/ns_last_pid): the pids allocated since the last lookup are
 * probed one by one, and the newest processes are searched first, because a
 * sender that forks per attempt (a cron job, a spam loop) is new each time.
 * Then the owner's processes whose number of open fds changed since it was
 * last looked at (a socket() adds one; Linux 6.2+ gives the number as the
 * size of /proc/PID/fd, one stat instead of reading the table), then the rest
 * of the owner's; only when none of them holds the socket is /proc listed
 * again, which also brings the owners up to date (a process that changed uid)
 * and forgets the processes that have gone.
 */
/*
 * Processes indexed, at most (a crowded host has ~10,000): 2 MiB of entries
 * and 512 KiB of hash slots, kept at most half full. Past the bound the
 * processes left out are counted, and a search that the index cannot answer
 * ends in the full search, which sees them.
 */
#define PROCFS_INDEX_PIDS	65536
#define PROCFS_INODE_SLOTS	4096	/* socket inode -> pid, direct-mapped */
/*
 * Pids allocated since the last lookup that are probed one by one (a stat and
 * a read of status each, ~5 us); more than that, or a wrap, and /proc is
 * listed instead (~1 us a process).
 */
#define PROCFS_PROBE_MAX	256
/*
 * A new process's owner is looked at again on every lookup for this long, and
 * it is searched first once it is the socket's owner: a root parent (Apache,
 * PHP-FPM's master) forks a worker that changes uid only afterwards.
 */
#define PROCFS_FRESH_NS		(2ULL * 1000 * 1000 * 1000)
#define PROCFS_LASTPID_MAX	16	/* a pid in decimal and a newline */
#define PROCFS_STATUS_MAX	512	/* Tgid is on status's 4th line */
#define PROCFS_NFDS_UNKNOWN	UINT32_MAX

struct procfs_proc {
	pid_t		 pid;
	uid_t		 owner;		/* /proc/PID's owner when last looked at */
	uint32_t	 searched;	/* the lookup that last read its fd table */
	uint32_t	 listed;	/* the listing that last saw it */
	uint32_t	 nfds;		/* open fds when last looked at, or PROCFS_NFDS_UNKNOWN */
	uint64_t	 born;		/* mono_ns when probed as new; 0: not new */
};

struct procfs_inode {
	ino_t		 inode;		/* 0: empty */
	pid_t		 pid;
};

struct procfs_index {
	int			 procfd;
	struct procfs_proc	*procs;		/* dense, max of them */
	size_t			 nprocs;
	size_t			 max;
	uint32_t		*slots;		/* pid hash: index into procs + 1; 0 empty */
	size_t			 mask;		/* slots - 1: a power of two >= 2 * max */
	struct procfs_inode	 inodes[PROCFS_INODE_SLOTS];
	pid_t			 last_pid;	/* ns_last_pid at the last look; 0 unknown */
	bool			 fd_counts;	/* stat of PID/fd gives the number of fds */
	uint32_t		 lookup;
	uint32_t		 listing;
	struct procfs_index_stats stats;
};

static size_t
slot_of(const struct procfs_index *x, pid_t pid)
{
	return ((uint32_t)pid * 2654435761u) & x->mask;
}

/* The slot holding PID, or the empty slot where it would go. */
static size_t
slot_find(const struct procfs_index *x, pid_t pid)
{
	size_t s = slot_of(x, pid);

	while (x->slots[s] != 0 && x->procs[x->slots[s] - 1].pid != pid)
		s = (s + 1) & x->mask;
	return s;
}

static struct procfs_proc *
proc_find(struct procfs_index *x, pid_t pid)
{
	size_t s = slot_find(x, pid);

	return x->slots[s] == 0 ? NULL : &x->procs[x->slots[s] - 1];
}

static struct procfs_proc *
proc_add(struct procfs_index *x, pid_t pid, uid_t owner, uint64_t born)
{
	size_t s = slot_find(x, pid);
	struct procfs_proc *p;

	if (x->slots[s] != 0)
		return &x->procs[x->slots[s] - 1];
	if (x->nprocs == x->max) {
		x->stats.full++;
		return NULL;
	}
	p = &x->procs[x->nprocs];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->owner = owner;
	p->born = born;
	p->listed = x->listing;
	p->nfds = PROCFS_NFDS_UNKNOWN;
	x->slots[s] = (uint32_t)++x->nprocs;
	return p;
}

/*
 * Forgets procs[i]: its slot is emptied by backward shift (linear probing
 * keeps no tombstones), and the last entry moves into its place.
 */
static void
proc_drop(struct procfs_index *x, size_t i)
{
	size_t s = slot_find(x, x->procs[i].pid), j = s, last = x->nprocs - 1;

	for (;;) {
		size_t home;

		j = (j + 1) & x->mask;
		if (x->slots[j] == 0)
			break;
		home = slot_of(x, x->procs[x->slots[j] - 1].pid);
		/* Move j back to s unless its home lies cyclically in (s, j]. */
		if (s <= j ? (home <= s || home > j) : (home <= s && home > j)) {
			x->slots[s] = x->slots[j];
			s = j;
		}
	}
	x->slots[s] = 0;
	if (i != last) {
		x->slots[slot_find(x, x->procs[last].pid)] = (uint32_t)i + 1;
		x->procs[i] = x->procs[last];
	}
	x->nprocs--;
}

/* "socket:[N]" -> N; 0 if LINK is anything else. */
static ino_t
link_inode(const char *link, size_t len)
{
	unsigned long long v = 0;

	if (len < 10 || memcmp(link, "socket:[", 8) != 0 || link[len - 1] != ']')
		return 0;
	for (size_t i = 8; i < len - 1; i++) {
		if (link[i] < '0' || link[i] > '9' || v > (~0ULL - 9) / 10)
			return 0;
		v = v * 10 + (unsigned long long)(link[i] - '0');
	}
	return (ino_t)v;
}

/*
 * Reads P's fd table: 1 if it holds INODE (at *FD), 0 if not, -1 if P is gone. Every
 * socket seen on the way is remembered, so a second look at the same socket
 * (a retransmitted SYN, the mail gate's client) costs one fd table.
 */
static int
read_fds(struct procfs_index *x, struct procfs_proc *p, ino_t inode, int *fd_held)
{
	char path[PROC_NAME_MAX + 4], link[PROC_SOCKLINK_MAX + 1];
	struct dirent *de;
	DIR *dir;
	int fd, found = 0;
	uint32_t nfds = 0;

	p->searched = x->lookup;
	x->stats.fd_tables++;
	snprintf(path, sizeof(path), "%ld/fd", (long)p->pid);
	if ((fd = openat(x->procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? -1 : 0;
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		return 0;
	}
	while ((de = readdir(dir)) != NULL) {
		ssize_t n;
		ino_t ino;

		if (de->d_name[0] == '.')
			continue;
		nfds++;
		n = readlinkat(dirfd(dir), de->d_name, link, sizeof(link));
		if (n <= 0 || (size_t)n >= sizeof(link) || (ino = link_inode(link, (size_t)n)) == 0)
			continue;
		x->inodes[ino % PROCFS_INODE_SLOTS].inode = ino;
		x->inodes[ino % PROCFS_INODE_SLOTS].pid = p->pid;
		if (ino == inode && !found) {
			*fd_held = (int)strtol(de->d_name, NULL, 10);
			found = 1;
		}
	}
	closedir(dir);
	p->nfds = nfds;
	return found;
}

/* NAME's number of open fds (Linux 6.2+); PROCFS_NFDS_UNKNOWN if it cannot tell. */
static uint32_t
fd_count_at(int procfd, const char *name)
{
	char path[PROC_NAME_MAX + 4];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/fd", name);
	if (fstatat(procfd, path, &sb, 0) < 0 || sb.st_size < 0 ||
	    sb.st_size >= PROCFS_NFDS_UNKNOWN)
		return PROCFS_NFDS_UNKNOWN;
	return (uint32_t)sb.st_size;
}

static uint32_t
fd_count(const struct procfs_index *x, pid_t pid)
{
	char name[PROC_NAME_MAX];

	if (!x->fd_counts)
		return PROCFS_NFDS_UNKNOWN;
	snprintf(name, sizeof(name), "%ld", (long)pid);
	return fd_count_at(x->procfd, name);
}

/* Searches P; a process found gone is forgotten (*I then names the next one). */
static bool
search(struct procfs_index *x, size_t i, ino_t inode, struct procfs_holder *h)
{
	int r = read_fds(x, &x->procs[i], inode, &h->fd);

	if (r < 0) {
		proc_drop(x, i);
		return false;
	}
	if (r == 1)
		h->pid = x->procs[i].pid;
	return r == 1;
}

/* Whose NAME is; false if it is gone or not a pid directory. */
static bool
owner_at(int procfd, const char *name, uid_t *owner)
{
	struct stat sb;

	if (fstatat(procfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(sb.st_mode))
		return false;
	*owner = sb.st_uid;
	return true;
}

static pid_t
read_last_pid(int procfd)
{
	char buf[PROCFS_LASTPID_MAX + 1];
	ssize_t n = read_at(procfd, "sys/kernel/ns_last_pid", buf, PROCFS_LASTPID_MAX);

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return pid_of(buf);
}

/*
 * Lists /proc: every pid's owner brought up to date, new ones added (as new,
 * born at BORN, unless BORN is 0), the ones gone forgotten.
 */
static int
list_all(struct procfs_index *x, uint64_t born)
{
	struct dirent *de;
	DIR *dir;
	int fd;

	if ((fd = openat(x->procfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	/* After 2^32 listings the numbers come round: none may look current. */
	if (++x->listing == 0) {
		for (size_t i = 0; i < x->nprocs; i++)
			x->procs[i].listed = 0;
		x->listing = 1;
	}
	x->stats.listings++;
	x->last_pid = read_last_pid(x->procfd);
	while ((de = readdir(dir)) != NULL) {
		pid_t pid = pid_of(de->d_name);
		struct procfs_proc *p;
		uid_t owner;

		if (pid == 0 || !owner_at(x->procfd, de->d_name, &owner))
			continue;
		if ((p = proc_find(x, pid)) == NULL)
			p = proc_add(x, pid, owner, born);
		if (p != NULL) {
			p->owner = owner;
			p->listed = x->listing;
		}
	}
	closedir(dir);
	for (size_t i = x->nprocs; i-- > 0;)
		if (x->procs[i].listed != x->listing)
			proc_drop(x, i);
	return 0;
}

/* A process, not a thread: /proc/TID answers for a thread too, unlisted. */
static bool
is_process(int procfd, pid_t pid)
{
	char path[PROC_NAME_MAX + 8], buf[PROCFS_STATUS_MAX + 1];
	const char *t;
	ssize_t n;

	snprintf(path, sizeof(path), "%ld/status", (long)pid);
	if ((n = read_at(procfd, path, buf, PROCFS_STATUS_MAX)) <= 0)
		return false;
	buf[n] = '\0';
	if ((t = strstr(buf, "\nTgid:\t")) == NULL)
		return false;
	return strtol(t + 7, NULL, 10) == (long)pid;
}

/* The processes started since the last look, added as new. */
static void
add_new(struct procfs_index *x, uint64_t now)
{
	pid_t last = read_last_pid(x->procfd);

	/* Without ns_last_pid (no CONFIG_CHECKPOINT_RESTORE), a listing each time. */
	if (last != 0 && last == x->last_pid)
		return;
	if (last == 0 || x->last_pid == 0 || last < x->last_pid ||
	    last - x->last_pid > PROCFS_PROBE_MAX) {
		(void)list_all(x, now);
		return;
	}
	for (pid_t p = x->last_pid + 1; p <= last; p++) {
		char name[PROC_NAME_MAX];
		uid_t owner;

		snprintf(name, sizeof(name), "%ld", (long)p);
		if (proc_find(x, p) == NULL && owner_at(x->procfd, name, &owner) &&
		    is_process(x->procfd, p)) {
			(void)proc_add(x, p, owner, now);
			x->stats.probed++;
		}
	}
	x->last_pid = last;
}

/* MAX: the processes it may hold, at most PROCFS_INDEX_PIDS; 0 for that. */
struct procfs_index *
procfs_index_open(const char *proc_root, size_t max)
{
	struct procfs_index *x;
	size_t slots = 2;
	uint32_t n;
	int saved;

	if (max == 0 || max > PROCFS_INDEX_PIDS)
		max = PROCFS_INDEX_PIDS;
	while (slots < 2 * max)
		slots *= 2;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return NULL;
	x->procfd = -1;
	x->max = max;
	x->mask = slots - 1;
	if ((x->procs = calloc(max, sizeof(*x->procs))) == NULL ||
	    (x->slots = calloc(slots, sizeof(*x->slots))) == NULL ||
	    (x->procfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    list_all(x, 0) < 0)
		goto err;
	/* Older kernels say 0, and this process holds at least three fds. */
	n = fd_count_at(x->procfd, "self");
	x->fd_counts = n != 0 && n != PROCFS_NFDS_UNKNOWN;
	for (size_t i = 0; i < x->nprocs && x->fd_counts; i++)
		x->procs[i].nfds = fd_count(x, x->procs[i].pid);
	return x;
err:
	saved = errno;
	procfs_index_close(x);
	errno = saved;
	return NULL;
}

void
procfs_index_close(struct procfs_index *x)
{
	if (x == NULL)
		return;
	if (x->procfd >= 0)
		close(x->procfd);
	free(x->slots);
	free(x->procs);
	free(x);
}

const struct procfs_index_stats *
procfs_index_stats(const struct procfs_index *x)
{
	return &x->stats;
}

size_t
procfs_index_size(const struct procfs_index *x)
{
	return x->nprocs;
}

/*
 * Pass 1 of the search from the index: the new processes, newest first
 * (added last, so at the end of the array, bar the moves of proc_drop).
 * Their owner is looked at again, since it may have changed since the probe.
 */
static bool
search_new(struct procfs_index *x, uid_t uid, ino_t inode, uint64_t now, uint64_t deadline,
    struct procfs_holder *h)
{
	char name[PROC_NAME_MAX];

	for (size_t i = x->nprocs; i-- > 0;) {
		struct procfs_proc *p = &x->procs[i];

		if (p->born == 0)
			continue;
		if (mono_ns() > deadline)
			return false;
		if (now - p->born > PROCFS_FRESH_NS) {
			p->born = 0;
			continue;
		}
		snprintf(name, sizeof(name), "%ld", (long)p->pid);
		if (!owner_at(x->procfd, name, &p->owner)) {
			proc_drop(x, i);
			continue;
		}
		if (p->owner != uid)
			continue;
		p->born = 0;	/* its fd table is known now: a new socket is the owner pass's */
		if (search(x, i, inode, h))
			return true;
	}
	return false;
}

/*
 * The owner's processes whose fd count changed since it was last looked at
 * (one stat each, ~2 us, against ~25 us for a table), newest first, each read
 * as soon as its count is seen changed. Every count seen is kept for the next
 * lookup; a process seen for the first time tells nothing and waits for the
 * owner pass.
 */
static bool
search_changed(struct procfs_index *x, uid_t uid, ino_t inode, uint64_t deadline,
    struct procfs_holder *h)
{
	if (!x->fd_counts)
		return false;
	for (size_t i = x->nprocs; i-- > 0;) {
		struct procfs_proc *p = &x->procs[i];
		uint32_t n, was = p->nfds;

		if (p->owner != uid || p->searched == x->lookup)
			continue;
		if (mono_ns() > deadline)
			return false;
		p->nfds = n = fd_count(x, p->pid);
		if (n != was && was != PROCFS_NFDS_UNKNOWN && n != PROCFS_NFDS_UNKNOWN &&
		    search(x, i, inode, h))
			return true;
	}
	return false;
}

/*
 * Processes owned by OWNER (or, with ANY, by anyone) not yet searched in this
 * lookup. -1 with ETIMEDOUT past the deadline.
 */
static int
search_owned(struct procfs_index *x, bool any, uid_t owner, ino_t inode, uint64_t deadline,
    struct procfs_holder *h)
{
	for (size_t i = x->nprocs; i-- > 0;) {
		if (x->procs[i].searched == x->lookup || (!any && x->procs[i].owner != owner))
			continue;
		if (mono_ns() > deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (search(x, i, inode, h))
			return 1;
	}
	return 0;
}

int
procfs_index_find(struct procfs_index *x, uid_t uid, ino_t inode, struct procfs_holder *h)
{
	const struct procfs_inode *hint = &x->inodes[inode % PROCFS_INODE_SLOTS];
	uint64_t now = mono_ns(), deadline = now + PROC_SEARCH_BUDGET_NS;
	struct procfs_proc *p;
	int r;

	if (++x->lookup == 0) {	/* as for the listings */
		for (size_t i = 0; i < x->nprocs; i++)
			x->procs[i].searched = 0;
		x->lookup = 1;
	}
	x->stats.lookups++;
	/* Only the owner's: the full search prefers the owner's process too. */
	if (hint->inode == inode && (p = proc_find(x, hint->pid)) != NULL && p->owner == uid &&
	    read_fds(x, p, inode, &h->fd) == 1) {
		h->pid = p->pid;
		x->stats.by_inode++;
		return 0;
	}
	add_new(x, now);
	if (search_new(x, uid, inode, now, deadline, h)) {
		x->stats.by_new++;
		return 0;
	}
	if (search_changed(x, uid, inode, deadline, h)) {
		x->stats.by_fd_count++;
		return 0;
	}
	if ((r = search_owned(x, false, uid, inode, deadline, h)) != 0)
		goto done;
	/*
	 * Not among the owner's: list /proc again (owners change, processes
	 * come and go), then the owner's again, root's (a non-dumpable process
	 * shows as root), everyone else's.
	 */
	if (list_all(x, now) < 0)
		return -1;
	if ((r = search_owned(x, false, uid, inode, deadline, h)) != 0 ||
	    (r = search_owned(x, false, 0, inode, deadline, h)) != 0 ||
	    (r = search_owned(x, true, 0, inode, deadline, h)) != 0)
		goto done;
	/* Full: some processes were left out. Only the full search sees them. */
	if (x->nprocs == x->max) {
		int fd = openat(x->procfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		x->stats.full_searches++;
		if (fd < 0)
			return -1;
		if (find_socket(fd, uid, inode, deadline, h) == 0) {
			x->stats.by_owner++;
			return 0;
		}
		if (errno == ETIMEDOUT)
			x->stats.timed_out++;
		else
			x->stats.not_found++;
		return -1;
	}
	x->stats.not_found++;
	errno = ESRCH;
	return -1;
done:
	if (r < 0) {
		x->stats.timed_out++;
		return -1;
	}
	x->stats.by_owner++;
	return 0;
}
