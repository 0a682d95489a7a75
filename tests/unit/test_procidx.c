/*
 * test_procidx.c — procfs.c's index of processes, on a /proc tree built in a
 * temporary directory: PID directories owned by their uid, status with a Tgid
 * line, fd/N links to socket:[INODE], sys/kernel/ns_last_pid. The index only
 * orders the search: whatever it remembers, the answer is a process whose
 * fd table holds the socket now, or none. Needs root (chown), as
 * test_procfs does; without it every test says so and skips.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <cmocka.h>

#include "smtpguard.h"

#define UID_SITE	1001	/* the hosting account that sends */
#define UID_OTHER	1003
#define MANY		300	/* processes in the add-and-drop test */

static char root[PATH_MAX];

static void
put(const char *rel, const char *text)
{
	char path[PATH_MAX + 64];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_non_null(fp = fopen(path, "w"));
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

static void
last_pid(pid_t pid)
{
	char text[32];

	snprintf(text, sizeof(text), "%ld\n", (long)pid);
	put("sys/kernel/ns_last_pid", text);
}

/* A process (TGID == PID) or thread, owned by UID, holding the sockets (0 ends). */
static void
mkproc_tgid(pid_t pid, pid_t tgid, uid_t uid, ...)
{
	char path[PATH_MAX + 64], link[64], text[128];
	va_list ap;
	int fd = 0;
	unsigned long ino;

	snprintf(path, sizeof(path), "%s/%ld", root, (long)pid);
	assert_int_equal(mkdir(path, 0555 | S_IWUSR), 0);
	snprintf(path, sizeof(path), "%s/%ld/fd", root, (long)pid);
	assert_int_equal(mkdir(path, 0700), 0);
	/* Every process holds something that is not a socket. */
	snprintf(path, sizeof(path), "%s/%ld/fd/%d", root, (long)pid, fd++);
	assert_int_equal(symlink("/dev/null", path), 0);
	va_start(ap, uid);
	while ((ino = va_arg(ap, unsigned long)) != 0) {
		snprintf(path, sizeof(path), "%s/%ld/fd/%d", root, (long)pid, fd++);
		snprintf(link, sizeof(link), "socket:[%lu]", ino);
		assert_int_equal(symlink(link, path), 0);
	}
	va_end(ap);
	snprintf(path, sizeof(path), "%ld/status", (long)pid);
	snprintf(text, sizeof(text), "Name:\tphp\nUmask:\t0022\nState:\tS (sleeping)\n"
	    "Tgid:\t%ld\nNgid:\t0\nPid:\t%ld\n", (long)tgid, (long)pid);
	put(path, text);
	snprintf(path, sizeof(path), "%s/%ld", root, (long)pid);
	assert_int_equal(chown(path, uid, uid), 0);
}

#define mkproc(pid, uid, ...)	mkproc_tgid((pid), (pid), (uid), __VA_ARGS__)

static void
rmproc(pid_t pid)
{
	char cmd[PATH_MAX + 64];

	snprintf(cmd, sizeof(cmd), "rm -rf %s/%ld", root, (long)pid);
	assert_int_equal(system(cmd), 0);
}

static void
chproc(pid_t pid, uid_t uid)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%ld", root, (long)pid);
	assert_int_equal(chown(path, uid, uid), 0);
}

/* The socket moves: FROM closes its fd, TO holds it now (passed, or inherited). */
static void
move_socket(pid_t from, int fd, pid_t to, unsigned long ino)
{
	char path[PATH_MAX + 64], link[64];

	snprintf(path, sizeof(path), "%s/%ld/fd/%d", root, (long)from, fd);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/%ld/fd/%d", root, (long)to, 100 + fd);
	snprintf(link, sizeof(link), "socket:[%lu]", ino);
	assert_int_equal(symlink(link, path), 0);
}

/*
 * Ten processes of the site, 101..110, each holding one socket 5000 + pid,
 * and init, in a folder under DIR.
 */
static int
make_tree_in(const char *dir)
{
	char path[PATH_MAX + 64];

	if (geteuid() != 0) {
		fprintf(stderr, "test_procidx: not root: the owners cannot be set\n");
		return 0;
	}
	snprintf(root, sizeof(root), "%s/test_procidx.XXXXXX", dir);
	if (mkdtemp(root) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/sys", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/sys/kernel", root);
	mkdir(path, 0755);
	for (pid_t p = 101; p <= 110; p++)
		mkproc(p, UID_SITE, (unsigned long)(5000 + p), 0UL);
	mkproc(1, 0, 11UL, 0UL);
	last_pid(110);
	snprintf(path, sizeof(path), "%s/self", root);
	return symlink("101", path);
}

static int
make_tree(void **state)
{
	(void)state;
	return make_tree_in("/tmp");
}

/*
 * On tmpfs a directory's size grows with its entries, as /proc/PID/fd's does
 * with the open fds (Linux 6.2+): the fd count pass can be seen at work.
 */
static int
make_tree_tmpfs(void **state)
{
	struct statfs sf;

	(void)state;
	if (statfs("/dev/shm", &sf) < 0 || sf.f_type != TMPFS_MAGIC) {
		fprintf(stderr, "test_procidx: /dev/shm is not tmpfs: no tree with fd counts\n");
		root[0] = '\0';
		return 0;
	}
	return make_tree_in("/dev/shm");
}

static int
remove_tree(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	if (root[0] == '\0')
		return 0;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	root[0] = '\0';
	return system(cmd) == 0 ? 0 : -1;
}

static void
need_tree(void)
{
	if (geteuid() != 0 || root[0] == '\0')
		skip();
}

static pid_t
find(struct procfs_index *x, uid_t uid, ino_t inode)
{
	struct procfs_holder h = { -1, -1 };

	errno = 0;
	if (procfs_index_find(x, uid, inode, &h) < 0)
		return -errno;
	return h.pid;
}

static struct procfs_index *
open_index(void)
{
	struct procfs_index *x;

	need_tree();
	assert_non_null(x = procfs_index_open(root, 0));
	assert_int_equal(procfs_index_size(x), 11);
	assert_int_equal(procfs_index_stats(x)->listings, 1);
	return x;
}

static void
cron_job_started_after_the_index_is_found_without_listing_proc(void **state)
{
	struct procfs_index *x;

	(void)state;
	x = open_index();
	mkproc(111, UID_SITE, 9001UL, 0UL);
	last_pid(111);
	assert_int_equal(find(x, UID_SITE, 9001), 111);
	assert_int_equal(procfs_index_stats(x)->by_new, 1);
	assert_int_equal(procfs_index_stats(x)->probed, 1);
	assert_int_equal(procfs_index_stats(x)->listings, 1);
	/* One fd table read: the new process's, not the ten old ones. */
	assert_int_equal(procfs_index_stats(x)->fd_tables, 1);
	procfs_index_close(x);
}

static void
thread_is_never_named_its_process_is(void **state)
{
	struct procfs_index *x;

	(void)state;
	x = open_index();
	/* /proc/TID answers for a thread; its fd table is its process's. */
	mkproc(111, UID_SITE, 9001UL, 0UL);
	mkproc_tgid(112, 111, UID_SITE, 9001UL, 0UL);
	last_pid(112);
	assert_int_equal(find(x, UID_SITE, 9001), 111);
	assert_int_equal(procfs_index_stats(x)->probed, 1);
	procfs_index_close(x);
}

static void
old_worker_of_the_site_is_found_among_the_sites_processes(void **state)
{
	struct procfs_index *x;

	(void)state;
	x = open_index();
	assert_int_equal(find(x, UID_SITE, 5103), 103);
	assert_int_equal(procfs_index_stats(x)->by_owner, 1);
	/* Found without listing /proc again, and without reading root's fd table. */
	assert_int_equal(procfs_index_stats(x)->listings, 1);
	assert_true(procfs_index_stats(x)->fd_tables <= 10);
	procfs_index_close(x);
}

static void
socket_passed_to_another_process_is_not_named_for_the_old_holder(void **state)
{
	struct procfs_index *x;

	(void)state;
	x = open_index();
	assert_int_equal(find(x, UID_SITE, 5104), 104);
	/* 104 hands the socket to 107 and closes it: the remembered 104 is wrong now. */
	move_socket(104, 1, 107, 5104);
	assert_int_equal(find(x, UID_SITE, 5104), 107);
	assert_int_equal(procfs_index_stats(x)->by_inode, 0);
	/* Asked again, the remembered holder is right, and is checked. */
	assert_int_equal(find(x, UID_SITE, 5104), 107);
	assert_int_equal(procfs_index_stats(x)->by_inode, 1);
	procfs_index_close(x);
}

static void
reused_pid_never_inherits_the_old_processs_socket(void **state)
{
	struct procfs_index *x;

	(void)state;
	x = open_index();
	assert_int_equal(find(x, UID_SITE, 5105), 105);
	/* 105 exits; the pids wrap and another user's process gets 105. */
	rmproc(105);
	mkproc(105, UID_OTHER, 7777UL, 0UL);
	last_pid(20);
	assert_int_equal(find(x, UID_SITE, 5105), -ESRCH);
	assert_int_equal(find(x, UID_SITE, 7777), 105);	/* the one that holds it */
	procfs_index_close(x);
}

static void
worker_that_became_the_site_after_fork_is_searched_as_new(void **state)
{
	struct procfs_index *x;

	(void)state;
	x = open_index();
	/* Apache or PHP-FPM's master, root, forks; the child changes uid later. */
	mkproc(111, 0, 9001UL, 0UL);
	last_pid(111);
	assert_int_equal(find(x, UID_SITE, 5101), 101);	/* probes 111 as root's */
	chproc(111, UID_SITE);
	assert_int_equal(find(x, UID_SITE, 9001), 111);
	assert_int_equal(procfs_index_stats(x)->by_new, 1);
	procfs_index_close(x);
}

static void
process_that_changed_uid_long_ago_is_found_after_a_listing(void **state)
{
	struct procfs_index *x;

	(void)state;
	x = open_index();
	/* 1 (root, indexed as root's) now runs as the site: the index does not know. */
	chproc(1, UID_SITE);
	assert_int_equal(find(x, UID_SITE, 11), 1);
	assert_int_equal(procfs_index_stats(x)->listings, 2);
	procfs_index_close(x);
}

static void
many_new_pids_at_once_are_listed_not_probed(void **state)
{
	struct procfs_index *x;

	(void)state;
	x = open_index();
	mkproc(2000, UID_SITE, 9001UL, 0UL);
	last_pid(2000);
	assert_int_equal(find(x, UID_SITE, 9001), 2000);
	assert_int_equal(procfs_index_stats(x)->probed, 0);
	assert_int_equal(procfs_index_stats(x)->listings, 2);
	assert_int_equal(procfs_index_stats(x)->by_new, 1);
	procfs_index_close(x);
}

static void
without_ns_last_pid_every_lookup_lists_proc_and_still_finds(void **state)
{
	char path[PATH_MAX + 64];
	struct procfs_index *x;

	(void)state;
	snprintf(path, sizeof(path), "%s/sys/kernel/ns_last_pid", root);
	if (geteuid() != 0)
		skip();
	assert_int_equal(unlink(path), 0);
	x = open_index();
	mkproc(111, UID_SITE, 9001UL, 0UL);
	assert_int_equal(find(x, UID_SITE, 9001), 111);
	assert_int_equal(find(x, UID_SITE, 5102), 102);
	assert_int_equal(procfs_index_stats(x)->listings, 3);
	procfs_index_close(x);
}

static void
gone_processes_are_forgotten_and_the_rest_still_found(void **state)
{
	struct procfs_index *x;
	pid_t first = 3000;

	(void)state;
	x = open_index();
	for (pid_t p = first; p < first + MANY; p++)
		mkproc(p, p % 3 ? UID_SITE : UID_OTHER, (unsigned long)(100000 + p), 0UL);
	last_pid(first + MANY);
	assert_int_equal(find(x, UID_SITE, 5101), 101);	/* lists: > PROCFS_PROBE_MAX new */
	assert_int_equal(procfs_index_size(x), 11 + MANY);
	/* Two in three exit, scattered over the hash. */
	for (pid_t p = first; p < first + MANY; p++)
		if (p % 3 != 1)
			rmproc(p);
	last_pid(first + MANY - 1);	/* a wrap: everything listed again */
	assert_int_equal(find(x, UID_SITE, 5102), 102);
	assert_int_equal(procfs_index_size(x), 11 + MANY / 3);
	for (pid_t p = first; p < first + MANY; p++)
		assert_int_equal(find(x, p % 3 ? UID_SITE : UID_OTHER, (ino_t)(100000 + p)),
		    p % 3 == 1 ? p : -ESRCH);
	procfs_index_close(x);
}

/* The index's hash: kept in step with procfs.c's slot_of and PROCFS_INDEX_SLOTS. */
#define SLOTS		131072u
static uint32_t
home(pid_t pid)
{
	return ((uint32_t)pid * 2654435761u) & (SLOTS - 1);
}

static void
pids_that_share_a_hash_slot_survive_each_others_exit(void **state)
{
	struct procfs_index *x;
	pid_t base = 0, chain[16];
	size_t n = sizeof(chain) / sizeof(chain[0]);

	(void)state;
	x = open_index();
	/* A chain of pids with one home slot, 3 before the table's end: it wraps. */
	for (pid_t p = 1; p <= (pid_t)SLOTS && base == 0; p++)
		if (home(p) == SLOTS - 3 && p > 200)
			base = p;
	assert_true(base != 0);
	for (size_t k = 0; k < n; k++) {
		chain[k] = base + (pid_t)(k * SLOTS);
		assert_int_equal(home(chain[k]), SLOTS - 3);
		mkproc(chain[k], UID_SITE, (unsigned long)(200000 + k), 0UL);
	}
	/* and one whose home is slot 0, where the chain wrapped to. */
	for (pid_t p = 200; home(p) != 0; p++)
		base = p + 1;
	mkproc(base, UID_SITE, 300000UL, 0UL);
	last_pid(chain[n - 1]);
	assert_int_equal(find(x, UID_SITE, 300000), base);
	assert_int_equal(procfs_index_size(x), 11 + n + 1);
	for (size_t k = 0; k < n; k += 3)
		rmproc(chain[k]);
	last_pid(10);	/* a wrap: listed, the gone ones dropped */
	assert_int_equal(find(x, UID_SITE, 5101), 101);
	assert_int_equal(procfs_index_size(x), 11 + n + 1 - (n + 2) / 3);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(find(x, UID_SITE, (ino_t)(200000 + k)),
		    k % 3 == 0 ? -ESRCH : chain[k]);
	assert_int_equal(find(x, UID_SITE, 300000), base);
	/* Each miss listed /proc again: no process was indexed twice. */
	assert_int_equal(procfs_index_size(x), 11 + n + 1 - (n + 2) / 3);
	/* and every one left is still found by its pid (the remembered sockets' check). */
	for (size_t k = 1; k < n; k++) {
		uint64_t before = procfs_index_stats(x)->by_inode;

		if (k % 3 == 0)
			continue;
		assert_int_equal(find(x, UID_SITE, (ino_t)(200000 + k)), chain[k]);
		assert_int_equal(procfs_index_stats(x)->by_inode, before + 1);
	}
	procfs_index_close(x);
}

static void
old_worker_that_opened_a_socket_is_read_first(void **state)
{
	char path[PATH_MAX + 64];
	struct procfs_index *x;
	uint64_t tables;

	(void)state;
	x = open_index();
	/* 106 opens a socket; the other nine sit still. */
	snprintf(path, sizeof(path), "%s/106/fd/7", root);
	assert_int_equal(symlink("socket:[9001]", path), 0);
	assert_int_equal(find(x, UID_SITE, 9001), 106);
	assert_int_equal(procfs_index_stats(x)->by_fd_count, 1);
	assert_int_equal(procfs_index_stats(x)->fd_tables, 1);
	/* 108 opens one and closes another: the count tells nothing, all are read. */
	snprintf(path, sizeof(path), "%s/108/fd/7", root);
	assert_int_equal(symlink("socket:[9002]", path), 0);
	snprintf(path, sizeof(path), "%s/108/fd/0", root);
	assert_int_equal(unlink(path), 0);
	tables = procfs_index_stats(x)->fd_tables;
	assert_int_equal(find(x, UID_SITE, 9002), 108);
	assert_int_equal(procfs_index_stats(x)->by_fd_count, 1);
	assert_int_equal(procfs_index_stats(x)->by_owner, 1);
	assert_true(procfs_index_stats(x)->fd_tables > tables);
	procfs_index_close(x);
}

static void
processes_past_the_bound_are_counted_and_still_found(void **state)
{
	struct procfs_index *x;

	(void)state;
	need_tree();
	/* Room for 4 of the 11: 7 left out, and counted. */
	assert_non_null(x = procfs_index_open(root, 4));
	assert_int_equal(procfs_index_size(x), 4);
	assert_int_equal(procfs_index_stats(x)->full, 7);
	for (pid_t p = 101; p <= 110; p++)
		assert_int_equal(find(x, UID_SITE, (ino_t)(5000 + p)), p);
	assert_int_equal(find(x, UID_SITE, 11), 1);
	assert_int_equal(find(x, UID_SITE, 4242), -ESRCH);
	assert_true(procfs_index_stats(x)->full_searches >= 1);
	assert_int_equal(procfs_index_size(x), 4);
	procfs_index_close(x);
}

static void
missing_proc_root_cannot_be_indexed(void **state)
{
	(void)state;
	assert_null(procfs_index_open("/nonexistent/proc", 0));
	assert_int_equal(errno, ENOENT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    cron_job_started_after_the_index_is_found_without_listing_proc,
		    make_tree, remove_tree),
		cmocka_unit_test_setup_teardown(thread_is_never_named_its_process_is,
		    make_tree, remove_tree),
		cmocka_unit_test_setup_teardown(
		    old_worker_of_the_site_is_found_among_the_sites_processes,
		    make_tree, remove_tree),
		cmocka_unit_test_setup_teardown(
		    socket_passed_to_another_process_is_not_named_for_the_old_holder,
		    make_tree, remove_tree),
		cmocka_unit_test_setup_teardown(
		    reused_pid_never_inherits_the_old_processs_socket,
		    make_tree, remove_tree),
		cmocka_unit_test_setup_teardown(
		    worker_that_became_the_site_after_fork_is_searched_as_new,
		    make_tree, remove_tree),
		cmocka_unit_test_setup_teardown(
		    process_that_changed_uid_long_ago_is_found_after_a_listing,
		    make_tree, remove_tree),
		cmocka_unit_test_setup_teardown(many_new_pids_at_once_are_listed_not_probed,
		    make_tree, remove_tree),
		cmocka_unit_test_setup_teardown(
		    without_ns_last_pid_every_lookup_lists_proc_and_still_finds,
		    make_tree, remove_tree),
		cmocka_unit_test_setup_teardown(
		    gone_processes_are_forgotten_and_the_rest_still_found,
		    make_tree, remove_tree),
		cmocka_unit_test_setup_teardown(
		    pids_that_share_a_hash_slot_survive_each_others_exit,
		    make_tree, remove_tree),
		cmocka_unit_test_setup_teardown(old_worker_that_opened_a_socket_is_read_first,
		    make_tree_tmpfs, remove_tree),
		cmocka_unit_test_setup_teardown(
		    processes_past_the_bound_are_counted_and_still_found,
		    make_tree, remove_tree),
		cmocka_unit_test(missing_proc_root_cannot_be_indexed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
