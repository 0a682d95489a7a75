/*
 * procfs.c — from a socket inode to the process that holds it, and what
 * /proc says about that process. The proc root is a parameter (iproute2 ss's
 * PROC_ROOT trick) so tests run on a fixture tree. Processes owned by the
 * sender's uid are searched first; the rest only if that fails (a
 * non-dumpable process shows as root). A process that vanishes mid-read
 * keeps what was read; nothing is guessed. Pure: no logging.
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

#define PROC_STAT_MAX	1024	/* comm is 16 bytes; the fields we need come early */
#define PROC_CGROUP_MAX	4096

static pid_t
pid_of(const char *name)
{
	long pid = 0;

	for (const char *p = name; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || pid > 4194304)	/* PID_MAX_LIMIT */
			return 0;
		pid = pid * 10 + (*p - '0');
	}
	return (pid_t)pid;
}

/* Does /proc/PID/fd hold socket:[inode]? */
static bool
holds_socket(int procfd, const char *pid, const char *want, size_t wantlen)
{
	char path[64], link[64];
	struct dirent *de;
	DIR *dir;
	int fd;
	bool found = false;

	snprintf(path, sizeof(path), "%s/fd", pid);
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
		n = readlinkat(dirfd(dir), de->d_name, link, sizeof(link));
		found = n == (ssize_t)wantlen && memcmp(link, want, wantlen) == 0;
	}
	closedir(dir);
	return found;
}

int
procfs_find_socket(const char *proc_root, uid_t uid, ino_t inode, pid_t *pid)
{
	char want[64];
	size_t wantlen, nothers = 0, cap = 0;
	pid_t *others = NULL, *grown;
	struct dirent *de;
	struct stat sb;
	DIR *dir;
	int procfd, rc = -1;

	wantlen = (size_t)snprintf(want, sizeof(want), "socket:[%lu]", (unsigned long)inode);
	if ((procfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	if ((dir = fdopendir(dup(procfd))) == NULL) {
		close(procfd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		pid_t p = pid_of(de->d_name);

		if (p <= 0 || fstatat(procfd, de->d_name, &sb, 0) < 0)
			continue;
		if (sb.st_uid == uid) {
			if (holds_socket(procfd, de->d_name, want, wantlen)) {
				*pid = p;
				rc = 0;
				goto out;
			}
			continue;
		}
		if (nothers == cap) {
			cap = cap ? cap * 2 : 1024;
			if ((grown = realloc(others, cap * sizeof(*others))) == NULL)
				goto out;
			others = grown;
		}
		others[nothers++] = p;
	}
	for (size_t i = 0; i < nothers; i++) {
		char name[16];

		snprintf(name, sizeof(name), "%ld", (long)others[i]);
		if (holds_socket(procfd, name, want, wantlen)) {
			*pid = others[i];
			rc = 0;
			goto out;
		}
	}
	errno = ESRCH;
out:
	free(others);
	closedir(dir);
	close(procfd);
	return rc;
}

static ssize_t
read_file_at(int dfd, const char *name, char *buf, size_t len)
{
	ssize_t n, total = 0;
	int fd;

	if ((fd = openat(dfd, name, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	while ((size_t)total < len &&
	    ((n = read(fd, buf + total, len - (size_t)total)) > 0 || (n < 0 && errno == EINTR)))
		if (n > 0)
			total += n;
	close(fd);
	return total;
}

static void
link_at(int dfd, const char *name, char *out, size_t len)
{
	ssize_t n = readlinkat(dfd, name, out, len - 1);

	out[n > 0 ? n : 0] = '\0';
}

/* stat's 4th field, after "pid (comm) state": comm may hold spaces and ')'. */
static int
parse_ppid(const char *stat, pid_t *ppid)
{
	const char *p = strrchr(stat, ')');
	char state;
	long v;

	if (p == NULL || sscanf(p + 1, " %c %ld", &state, &v) != 2 || v < 0)
		return -1;
	*ppid = (pid_t)v;
	return 0;
}

/* The cgroup v2 line ("0::/path"), else the first line's path. */
static void
parse_cgroup(const char *text, char *out, size_t len)
{
	const char *line = strstr(text, "0::");
	const char *start, *end;

	if (line != NULL && (line == text || line[-1] == '\n'))
		start = line + 3;
	else if ((start = strchr(text, ':')) != NULL && (start = strchr(start + 1, ':')) != NULL)
		start++;
	else
		return;
	end = strchr(start, '\n');
	if (end == NULL)
		end = start + strlen(start);
	if ((size_t)(end - start) < len) {
		memcpy(out, start, (size_t)(end - start));
		out[end - start] = '\0';
	}
}

int
procfs_read(const char *proc_root, pid_t pid, struct attrib *a)
{
	char path[PATH_MAX], buf[PROC_CGROUP_MAX + 1];
	ssize_t n;
	int dfd;

	snprintf(path, sizeof(path), "%s/%ld", proc_root, (long)pid);
	if ((dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	a->pid = pid;
	a->has_pid = true;
	link_at(dfd, "exe", a->exe, sizeof(a->exe));
	link_at(dfd, "cwd", a->cwd, sizeof(a->cwd));
	if ((n = read_file_at(dfd, "cmdline", a->cmdline, sizeof(a->cmdline) - 1)) > 0) {
		/* argv is NUL-separated and NUL-terminated: join with spaces, drop the last. */
		while (n > 0 && a->cmdline[n - 1] == '\0')
			n--;
		for (ssize_t i = 0; i < n; i++)
			if (a->cmdline[i] == '\0')
				a->cmdline[i] = ' ';
		a->cmdline[n] = '\0';
	} else
		a->cmdline[0] = '\0';
	if ((n = read_file_at(dfd, "stat", buf, PROC_STAT_MAX)) > 0) {
		buf[n] = '\0';
		a->has_ppid = parse_ppid(buf, &a->ppid) == 0;
	}
	if ((n = read_file_at(dfd, "cgroup", buf, PROC_CGROUP_MAX)) > 0) {
		buf[n] = '\0';
		parse_cgroup(buf, a->cgroup, sizeof(a->cgroup));
	}
	close(dfd);
	return 0;
}
