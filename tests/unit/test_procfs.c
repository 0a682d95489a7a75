/*
 * test_procfs.c — from a socket inode to the process and what /proc says
 * about it, on a fixture tree (tests/fixtures/proc/: a systemd, a PHP-FPM
 * master and its www-data worker, a spam script with a hostile comm and a
 * 5000-byte cmdline, a non-dumpable sendmail, a process that vanished).
 * Git keeps the symlinks (fd/N -> socket:[INODE], exe, cwd) but not owners,
 * so the group setup copies the tree and chowns each PID directory to the
 * uid that process runs as; procfs reads owners with fstat on the open PID
 * directory, exactly as on /proc. Run from the top of the source tree, as
 * root (chown); without root the owner-order tests say so and skip.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "smtpguard.h"

#define FIXTURE		"tests/fixtures/proc"
#define UID_WWW		33
#define UID_SITE	1001	/* the shop's hosting account */
#define UID_CRON	1002	/* owns the non-dumpable sendmail's socket */
#define UID_OTHER	1003

static char root[PATH_MAX];	/* the copy of the fixture, owners set */
static bool owned;		/* the copy's owners could be set (root) */

static const struct {
	const char	*pid;
	uid_t		 uid;
} owners[] = {
	{ "4242", UID_WWW }, { "5150", UID_SITE }, { "7000", UID_SITE },
	{ "9000", UID_OTHER }, { "04242", UID_OTHER },
};

static int
copy_fixture(void **state)
{
	char tmpl[] = "/tmp/test_procfs.XXXXXX", cmd[2 * PATH_MAX + 16], path[PATH_MAX + 16];

	(void)state;
	if (mkdtemp(tmpl) == NULL)
		return -1;
	snprintf(root, sizeof(root), "%s/proc", tmpl);
	snprintf(cmd, sizeof(cmd), "cp -a %s %s", FIXTURE, root);
	if (system(cmd) != 0)
		return -1;
	owned = true;
	for (size_t i = 0; i < sizeof(owners) / sizeof(owners[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", root, owners[i].pid);
		if (chown(path, owners[i].uid, owners[i].uid) < 0)
			owned = false;
	}
	if (!owned)
		fprintf(stderr, "test_procfs: cannot chown the fixture copy (%s): "
		    "owner-order tests need root\n", strerror(errno));
	return 0;
}

static int
remove_fixture(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	*strrchr(root, '/') = '\0';
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	return system(cmd) == 0 ? 0 : -1;
}

static void
need_owners(void)
{
	if (!owned)
		skip();
}

static int found_fd;	/* the fd find() found the socket at */

/*
 * The full search's answer, which the index (procfs_index_find) must give
 * too, pid and fd: it only changes the order in which fd tables are read.
 */
static pid_t
find(uid_t uid, ino_t inode)
{
	struct procfs_index *x;
	struct procfs_holder full = { -1, -1 }, indexed = { -1, -1 };
	int saved;

	assert_non_null(x = procfs_index_open(root, 0));
	errno = 0;
	if (procfs_index_find(x, uid, inode, &indexed) < 0)
		indexed.pid = -errno;
	procfs_index_close(x);
	errno = 0;
	if (procfs_find_socket(root, uid, inode, &full) < 0)
		full.pid = -errno;
	saved = errno;
	assert_int_equal(indexed.pid, full.pid);
	if (full.pid > 0)
		assert_int_equal(indexed.fd, full.fd);
	found_fd = full.fd;
	errno = saved;
	return full.pid;
}

static int
open_fixture_pid(pid_t pid)
{
	int piddir = procfs_open_pid(root, pid);

	assert_true(piddir >= 0);
	return piddir;
}

static void
php_worker_holding_the_smtp_socket_is_found(void **state)
{
	(void)state;
	need_owners();
	assert_int_equal(find(UID_WWW, 424242), 4242);
	/* Which fd: where it is asked again, and a looping sender first next time. */
	assert_int_equal(found_fd, 9);
}

/* Through the open directory: at one fd or in the whole table, the whole inode or nothing. */
static void
socket_is_asked_again_through_the_open_directory(void **state)
{
	int worker = open_fixture_pid(4242), master = open_fixture_pid(812);

	(void)state;
	assert_int_equal(procfs_socket_fd_at(worker, 424242), 9);
	assert_int_equal(procfs_socket_fd_at(master, 424242), -1);
	assert_true(procfs_fd_is_socket_at(worker, 9, 424242));
	/* fd 12 is socket:[4242420]: the whole inode must match, not a prefix. */
	assert_false(procfs_fd_is_socket_at(worker, 12, 424242));
	assert_false(procfs_fd_is_socket_at(worker, 12, 424242 / 10));
	assert_false(procfs_fd_is_socket_at(worker, 9, 42424));
	assert_false(procfs_fd_is_socket_at(worker, 63, 424242));
	assert_false(procfs_fd_is_socket_at(worker, 0, 424242));	/* /dev/null */
	close(worker);
	close(master);
	assert_int_equal(procfs_open_pid(root, 31337), -1);
}

static void
shared_socket_is_named_for_its_owner_first(void **state)
{
	(void)state;
	need_owners();
	/* The FPM master (root) and its worker (www-data) both hold 30303. */
	assert_int_equal(find(UID_WWW, 30303), 4242);
	assert_int_equal(find(0, 30303), 812);
}

static void
non_dumpable_sender_shown_as_root_is_still_found(void **state)
{
	(void)state;
	need_owners();
	/* No process of uid 1002 holds it: the search goes on to root's processes. */
	assert_int_equal(find(UID_CRON, 600600), 6000);
	/* Root's first: 30303 is also held by an unrelated uid's process. */
	assert_int_equal(find(UID_CRON, 30303), 812);
	/* and then to everyone's: the socket's uid need not be the process owner's now. */
	assert_int_equal(find(UID_OTHER, 515151), 5150);
}

static void
inode_is_matched_whole_not_by_prefix(void **state)
{
	(void)state;
	assert_int_equal(find(UID_WWW, 42424), -ESRCH);
	assert_int_equal(find(UID_WWW, 4242420), 4242);
	assert_int_equal(find(UID_WWW, 42424200), -ESRCH);
}

static void
socket_nobody_holds_is_not_found(void **state)
{
	(void)state;
	assert_int_equal(find(UID_OTHER, 999999), -ESRCH);
	/* "04242" is no pid directory, though it holds a socket link. */
	assert_int_equal(find(UID_OTHER, 777), -ESRCH);
}

static void
missing_proc_root_is_an_error(void **state)
{
	struct procfs_holder h = { 0, -1 };

	(void)state;
	errno = 0;
	assert_int_equal(procfs_find_socket("/nonexistent/proc", 0, 1111, &h), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(h.pid, 0);
}

/*
 * stat's 22nd field is the start, in ticks since boot (4242: 1000, 5150
 * behind a comm of spaces and ')': 2000). Started by a time means in its
 * tick or before; a stat that does not parse never passes. The same read
 * gives the ppid, only when it passes.
 */
static void
start_is_read_from_stat_in_ticks(void **state)
{
	const uint64_t tick = 1000000000ULL / (uint64_t)sysconf(_SC_CLK_TCK);
	int worker = open_fixture_pid(4242), hostile = open_fixture_pid(5150),
	    garbled = open_fixture_pid(9000);
	struct attrib a;

	(void)state;
	memset(&a, 0, sizeof(a));
	assert_false(procfs_started_by_at(worker, 1000 * tick - 1, 0, &a));
	assert_false(a.has_ppid);
	assert_true(procfs_started_by_at(worker, 1000 * tick, 0, &a));
	assert_true(a.has_ppid);
	assert_int_equal(a.ppid, 812);
	assert_true(procfs_started_by_at(worker, 1000 * tick + tick - 1, 0, &a));
	assert_true(procfs_started_by_at(hostile, 2000 * tick, 0, &a));
	assert_int_equal(a.ppid, 4242);
	assert_false(procfs_started_by_at(hostile, 1999 * tick, 0, &a));
	memset(&a, 0, sizeof(a));
	assert_false(procfs_started_by_at(garbled, UINT64_MAX, 0, &a));
	assert_false(a.has_ppid);
	close(worker);
	close(hostile);
	close(garbled);
}

/*
 * A reader in a time namespace (self is 4242 in the fixture: 4.75 s behind
 * the host) sees starts on its own clock: a connect at host time T is asked
 * at T - 4.75 s, and one before the reader's zero started nobody.
 */
static void
start_is_asked_on_the_readers_clock(void **state)
{
	const uint64_t tick = 1000000000ULL / (uint64_t)sysconf(_SC_CLK_TCK);
	const int64_t offset = -5000000000LL + 250000000LL;
	int worker = open_fixture_pid(4242);
	struct attrib a;

	(void)state;
	memset(&a, 0, sizeof(a));
	assert_int_equal(procfs_boottime_offset(root), offset);
	assert_int_equal(procfs_boottime_offset("/nonexistent/proc"), 0);
	/* Started at 1000 ticks of the reader's clock: host time 1000 ticks + 4.75 s. */
	assert_false(procfs_started_by_at(worker, 1000 * tick, offset, &a));
	assert_true(procfs_started_by_at(worker, 1000 * tick + (uint64_t)-offset, offset, &a));
	/* A reader ahead of the host, as far. */
	assert_false(procfs_started_by_at(worker, 1000 * tick - (uint64_t)-offset - 1, -offset, &a));
	assert_true(procfs_started_by_at(worker, 1000 * tick - (uint64_t)-offset, -offset, &a));
	assert_false(procfs_started_by_at(worker, (uint64_t)-offset - 1, offset, &a));
	close(worker);
}

static void
php_worker_is_described_in_full(void **state)
{
	struct attrib a;

	(void)state;
	memset(&a, 0, sizeof(a));
	assert_int_equal(procfs_read(root, 4242, &a), 0);
	assert_true(a.has_pid);
	assert_int_equal(a.pid, 4242);
	assert_string_equal(a.exe, "/usr/sbin/php-fpm8.2");
	/* The title PHP-FPM writes over its argv ends in padding NULs: dropped. */
	assert_string_equal(a.cmdline, "php-fpm: pool www");
	assert_string_equal(a.cwd, "/var/www/shop");
	assert_true(a.has_ppid);
	assert_int_equal(a.ppid, 812);
	/* A hybrid host lists v1 hierarchies first; the v2 line wins. */
	assert_string_equal(a.cgroup, "/system.slice/php8.2-fpm.service/pool-www");
}

static void
hostile_comm_does_not_shift_the_ppid(void **state)
{
	struct attrib a;

	(void)state;
	memset(&a, 0, sizeof(a));
	/* comm is "evil) (x y": only the last ')' ends it. */
	assert_int_equal(procfs_read(root, 5150, &a), 0);
	assert_true(a.has_ppid);
	assert_int_equal(a.ppid, 4242);
}

static void
long_cmdline_is_cut_at_its_bound(void **state)
{
	struct attrib a;
	const char *head = "/usr/bin/php8.2 -r AAAA";

	(void)state;
	memset(&a, 0, sizeof(a));
	assert_int_equal(procfs_read(root, 5150, &a), 0);
	assert_int_equal(strlen(a.cmdline), CMDLINE_MAX - 1);
	assert_memory_equal(a.cmdline, head, strlen(head));
	for (size_t i = strlen("/usr/bin/php8.2 -r "); i < CMDLINE_MAX - 1; i++)
		assert_int_equal(a.cmdline[i], 'A');
	/* A deleted binary is named as the kernel names it. */
	assert_string_equal(a.exe, "/tmp/.x/php (deleted)");
	/* No v2 line: the first line's path. */
	assert_string_equal(a.cgroup, "/user.slice/user-1001.slice/session-7.scope");
}

static void
unreadable_cwd_stays_empty(void **state)
{
	struct attrib a;

	(void)state;
	memset(&a, 0, sizeof(a));
	strlcpy_sg(a.cwd, "stale", sizeof(a.cwd));
	assert_int_equal(procfs_read(root, 5150, &a), 0);
	assert_string_equal(a.cwd, "");
}

static void
vanished_process_keeps_what_was_read(void **state)
{
	struct attrib a;

	(void)state;
	memset(&a, 0, sizeof(a));
	/* Only cmdline was read before it went: the rest stays unknown. */
	assert_int_equal(procfs_read(root, 7000, &a), 0);
	assert_int_equal(a.pid, 7000);
	assert_string_equal(a.cmdline, "perl spam.pl");
	assert_string_equal(a.exe, "");
	assert_string_equal(a.cwd, "");
	assert_false(a.has_ppid);
	assert_string_equal(a.cgroup, "");
}

static void
garbled_stat_and_cgroup_are_left_unknown(void **state)
{
	struct attrib a;

	(void)state;
	memset(&a, 0, sizeof(a));
	assert_int_equal(procfs_read(root, 9000, &a), 0);
	assert_false(a.has_ppid);
	assert_string_equal(a.cgroup, "");
	assert_string_equal(a.cmdline, "");
}

static void
process_gone_before_the_read_is_an_error(void **state)
{
	struct attrib a;

	(void)state;
	memset(&a, 0, sizeof(a));
	errno = 0;
	assert_int_equal(procfs_read(root, 31337, &a), -1);
	assert_int_equal(errno, ENOENT);
	assert_false(a.has_pid);
}

static uint64_t
boottime_ns(void)
{
	struct timespec ts;

	assert_int_equal(clock_gettime(CLOCK_BOOTTIME, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * On the real /proc: a directory opened while the process lived names that
 * process only, and says when it started (as CLOCK_BOOTTIME counts). A
 * zombie keeps its pid (no exe, still listed); once reaped, the directory
 * answers nothing, even if the pid went to someone else.
 */
static pid_t paused_child;	/* killed and reaped by its test's teardown */

static int
reap_paused_child(void **state)
{
	(void)state;
	if (paused_child > 0) {
		(void)kill(paused_child, SIGKILL);
		(void)waitpid(paused_child, NULL, 0);
	}
	paused_child = 0;
	return 0;
}

static void
opened_directory_names_one_process_only(void **state)
{
	struct attrib a;
	pid_t child;
	int piddir;
	uint64_t before = boottime_ns();

	(void)state;
	/* Two ticks later: the child's start cannot share the tick of BEFORE. */
	(void)nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
	if ((paused_child = child = fork()) == 0) {
		pause();
		_exit(0);
	}
	assert_true(child > 0);
	piddir = procfs_open_pid("/proc", child);
	assert_true(piddir >= 0);
	memset(&a, 0, sizeof(a));
	assert_int_equal(procfs_read_exe_at(piddir, child, &a), 0);
	assert_true(a.exe[0] == '/');
	assert_int_equal(procfs_owner_at(piddir), getuid());
	assert_false(procfs_started_by_at(piddir, before, 0, &a));
	assert_true(procfs_started_by_at(piddir, boottime_ns(), 0, &a));
	assert_true(a.has_ppid);
	assert_int_equal(a.ppid, getpid());

	assert_int_equal(kill(child, SIGKILL), 0);
	assert_int_equal(waitid(P_PID, (id_t)child, NULL, WEXITED | WNOWAIT), 0);
	memset(&a, 0, sizeof(a));
	assert_int_equal(procfs_read_exe_at(piddir, child, &a), 0);	/* a zombie */
	assert_string_equal(a.exe, "");
	assert_int_equal(a.pid, child);

	assert_int_equal(waitpid(child, NULL, 0), child);
	paused_child = 0;
	memset(&a, 0, sizeof(a));
	assert_int_equal(procfs_read_exe_at(piddir, child, &a), -1);
	assert_false(a.has_pid);
	procfs_read_rest_at(piddir, &a);
	assert_string_equal(a.cmdline, "");
	assert_string_equal(a.cwd, "");
	close(piddir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(php_worker_holding_the_smtp_socket_is_found),
		cmocka_unit_test(socket_is_asked_again_through_the_open_directory),
		cmocka_unit_test(shared_socket_is_named_for_its_owner_first),
		cmocka_unit_test(non_dumpable_sender_shown_as_root_is_still_found),
		cmocka_unit_test(inode_is_matched_whole_not_by_prefix),
		cmocka_unit_test(socket_nobody_holds_is_not_found),
		cmocka_unit_test(missing_proc_root_is_an_error),
		cmocka_unit_test(start_is_read_from_stat_in_ticks),
		cmocka_unit_test(start_is_asked_on_the_readers_clock),
		cmocka_unit_test(php_worker_is_described_in_full),
		cmocka_unit_test(hostile_comm_does_not_shift_the_ppid),
		cmocka_unit_test(long_cmdline_is_cut_at_its_bound),
		cmocka_unit_test(unreadable_cwd_stays_empty),
		cmocka_unit_test(vanished_process_keeps_what_was_read),
		cmocka_unit_test(garbled_stat_and_cgroup_are_left_unknown),
		cmocka_unit_test(process_gone_before_the_read_is_an_error),
		cmocka_unit_test_teardown(opened_directory_names_one_process_only,
		    reap_paused_child),
	};

	return cmocka_run_group_tests(tests, copy_fixture, remove_fixture);
}
