/*
 * procfs.c — from a socket inode to the process that holds it, and what
 * /proc says about that process. The proc root is a parameter (iproute2 ss's
 * PROC_ROOT trick) so tests run on a fixture tree. Processes owned by the
 * socket's uid are searched first; root's next (a non-dumpable process shows
 * as root); everyone else's last, within a time budget. A process that
 * vanishes mid-read keeps what was read, and a field that cannot be read
 * stays empty: nothing is guessed. Pure: no logging, no exit.
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
#define PROC_STAT_MAX		1024	/* comm is at most 64 bytes; ppid comes right after */
#define PROC_CGROUP_MAX		4096	/* a v1 host lists ~13 hierarchies on one page */
#define PROC_SOCKLINK_MAX	32	/* "socket:[" + 20 digits + "]" */
#define PROC_NAME_MAX		16	/* a pid in decimal */
#define PROC_OTHERS_FIRST	1024	/* first allocation of the deferred pid list */
/*
 * Opening a process's fd table costs ~30 us: 150 ms at 5,000 processes, with
 * every queued packet waiting. A user running thousands of processes, or a
 * socket no process holds (an fd in flight over a unix socket), would cost
 * that on every SYN; past this budget the sender stays unknown instead. (The
 * connect hook makes the search rare: connhook.c.)
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
 * Does procfd/NAME/fd hold the socket? Only readlinkat on each entry: a stat
 * would follow the link into sockfs for nothing. The buffer is one byte longer
 * than the wanted text, so any longer target (a path) differs in length.
 */
static bool
holds_socket(int procfd, const char *name, const char *want, size_t wantlen)
{
	char path[PROC_NAME_MAX + 4], link[PROC_SOCKLINK_MAX + 1];
	struct dirent *de;
	DIR *dir;
	int fd;
	bool found = false;

	if ((size_t)snprintf(path, sizeof(path), "%s/fd", name) >= sizeof(path))
		return false;
	if ((fd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return false;
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		return false;
	}
	while (!found && (de = readdir(dir)) != NULL) {
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		n = readlinkat(dirfd(dir), de->d_name, link, wantlen + 1);
		found = n == (ssize_t)wantlen && memcmp(link, want, wantlen) == 0;
	}
	closedir(dir);
	return found;
}

static size_t
socket_link(ino_t inode, char *want, size_t len)
{
	return (size_t)snprintf(want, len, "socket:[%llu]", (unsigned long long)inode);
}

bool
procfs_holds_socket(const char *proc_root, pid_t pid, ino_t inode)
{
	char want[PROC_SOCKLINK_MAX + 1], name[PROC_NAME_MAX];
	size_t wantlen;
	bool found;
	int procfd;

	wantlen = socket_link(inode, want, sizeof(want));
	snprintf(name, sizeof(name), "%ld", (long)pid);
	if ((procfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return false;
	found = holds_socket(procfd, name, want, wantlen);
	close(procfd);
	return found;
}

/* Whose /proc/PID it is (the process's euid, root if non-dumpable); -1 if gone. */
uid_t
procfs_owner(const char *proc_root, pid_t pid)
{
	char path[PATH_MAX];
	struct stat sb;

	if ((size_t)snprintf(path, sizeof(path), "%s/%ld", proc_root, (long)pid) >=
	    sizeof(path) || stat(path, &sb) < 0)
		return (uid_t)-1;
	return sb.st_uid;
}

/* Pass 2 and 3 of the search: root-owned first, then everyone else. */
static int
search_others(int procfd, const struct proc_pid *others, size_t n, const char *want,
    size_t wantlen, uint64_t deadline, pid_t *pid)
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
			if (holds_socket(procfd, name, want, wantlen)) {
				*pid = others[i].pid;
				return 0;
			}
		}
	errno = ESRCH;
	return -1;
}

int
procfs_find_socket(const char *proc_root, uid_t uid, ino_t inode, pid_t *pid)
{
	char want[PROC_SOCKLINK_MAX + 1];
	size_t wantlen, nothers = 0, cap = 0;
	struct proc_pid *others = NULL, *grown;
	struct dirent *de;
	struct stat sb;
	DIR *dir;
	int procfd, rc = -1, saved;
	uint64_t deadline = mono_ns() + PROC_SEARCH_BUDGET_NS;

	wantlen = socket_link(inode, want, sizeof(want));
	if ((procfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
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
			if (holds_socket(procfd, de->d_name, want, wantlen)) {
				*pid = p;
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
	rc = search_others(procfd, others, nothers, want, wantlen, deadline, pid);
out:
	saved = errno;
	free(others);
	closedir(dir);
	errno = saved;
	return rc;
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

/* stat's 4th field, after "pid (comm) state": comm may hold spaces and ')'. */
static bool
parse_ppid(const char *stat, pid_t *ppid)
{
	const char *p = strrchr(stat, ')');
	char *end;
	long v;

	if (p == NULL || p[1] != ' ' || p[2] == '\0' || p[3] != ' ')
		return false;
	errno = 0;
	v = strtol(p + 4, &end, 10);
	if (errno != 0 || end == p + 4 || *end != ' ' || v < 0 || v > PROC_PID_MAX)
		return false;
	*ppid = (pid_t)v;
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
procfs_read_exe(const char *proc_root, pid_t pid, struct attrib *a)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/%ld/exe", proc_root, (long)pid) >=
	    sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	errno = 0;
	link_at(AT_FDCWD, path, a->exe, sizeof(a->exe));
	if (a->exe[0] == '\0' && errno == ENOENT) {
		/* No exe link: gone, or going (an exiting process loses it first). */
		path[strlen(path) - 4] = '\0';
		if (access(path, F_OK) < 0)
			return -1;
	}
	a->pid = pid;
	a->has_pid = true;
	return 0;
}

/* The rest, read only for an event that will be written. */
int
procfs_read_rest(const char *proc_root, pid_t pid, struct attrib *a)
{
	char path[PATH_MAX], buf[PROC_CGROUP_MAX + 1];
	ssize_t n;
	int dfd;

	if ((size_t)snprintf(path, sizeof(path), "%s/%ld", proc_root, (long)pid) >=
	    sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	read_cmdline(dfd, a->cmdline, sizeof(a->cmdline));
	link_at(dfd, "cwd", a->cwd, sizeof(a->cwd));
	if ((n = read_at(dfd, "stat", buf, PROC_STAT_MAX)) > 0) {
		buf[n] = '\0';
		a->has_ppid = parse_ppid(buf, &a->ppid);
	}
	a->cgroup[0] = '\0';
	if ((n = read_at(dfd, "cgroup", buf, PROC_CGROUP_MAX)) > 0) {
		buf[n] = '\0';
		parse_cgroup(buf, a->cgroup, sizeof(a->cgroup));
	}
	close(dfd);
	return 0;
}

int
procfs_read(const char *proc_root, pid_t pid, struct attrib *a)
{
	if (procfs_read_exe(proc_root, pid, a) < 0)
		return -1;
	return procfs_read_rest(proc_root, pid, a);
}
