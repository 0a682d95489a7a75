/*
 * procscan — what finding a socket's process through /proc costs when the
 * connect hook is off, at a given number of processes: the full search
 * (procfs_find_socket) against the index (procfs_index_find), on the same
 * sockets, and whether both name the process that made the socket.
 *
 *   procscan [-n PROCS] [-a ATTEMPTS] [-u UID] [-o UID] [-k new|old] [-r ROOT]
 *	starts PROCS sleepers holding 8 fds each, half as -u (the sender's
 *	uid, default 3002), half as -o (default 3003), then makes ATTEMPTS
 *	sockets as -u: each from a process forked for it (-k new: a sender
 *	that forks per attempt) or from one of the sleepers that has been
 *	there since before the index was built (-k old: its worst case).
 *	Prints one JSON object: p50/p99/max in microseconds for each way,
 *	how many answers named another process (wrong: must be 0) or none
 *	(missed: the 100 ms budget ran out), and the index's counters.
 *	Exit 3 if the index named a wrong process.
 *
 * Needs root (setuid). Every process it starts dies with it (PDEATHSIG) and
 * is killed by its pid at the end.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "smtpguard.h"

#define PROCSCAN_FDS	8	/* what sgload procs gives each sleeper */

struct worker {
	pid_t	 pid;
	int	 go[2];		/* a byte written: make the socket */
	int	 back[2];	/* the socket's inode comes back here */
};

static pid_t	*sleepers;
static size_t	 nsleepers;

static void
kill_all(void)
{
	for (size_t i = 0; i < nsleepers; i++)
		if (sleepers[i] > 0) {
			kill(sleepers[i], SIGKILL);
			waitpid(sleepers[i], NULL, 0);
		}
}

/*
 * A child as UID. With GO >= 0 it waits for a byte on GO, then makes a TCP
 * socket and writes its inode to BACK; either way it then waits to be killed.
 */
static pid_t
spawn(uid_t uid, int go, int back)
{
	pid_t parent = getpid(), pid = fork();

	if (pid != 0)
		return pid;
	if (setgid(uid) < 0 || setuid(uid) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
	    getppid() != parent)
		_exit(1);
	/* Only its own two pipe ends: every sleeper's fd table the same size. */
	if (go >= 0 && (dup2(go, 3) < 0 || dup2(back, 4) < 0))
		_exit(1);
	go = go >= 0 ? 3 : -1;
	back = 4;
	if (close_range(go >= 0 ? 5 : 3, ~0U, 0) < 0)
		_exit(1);
	for (int k = 0; k < PROCSCAN_FDS; k++)
		(void)dup(STDERR_FILENO);
	if (go >= 0) {
		char c;
		struct stat sb;
		int s;
		uint64_t ino;

		if (read(go, &c, 1) != 1 || (s = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
		    fstat(s, &sb) < 0)
			_exit(1);
		ino = sb.st_ino;
		if (write(back, &ino, sizeof(ino)) != sizeof(ino))
			_exit(1);
	}
	for (;;)
		pause();
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
print_quantiles(const char *name, uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	printf("\"%s\":{\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}", name,
	    v[n / 2] / 1e3, v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1e3, v[n - 1] / 1e3);
}

int
main(int argc, char **argv)
{
	const char *root = "/proc";
	size_t n = 5000, attempts = 200, wrong_scan = 0, wrong_index = 0, missed_scan = 0,
	    missed_index = 0;
	uid_t uid = 3002, other = 3003;
	bool old = false;
	struct procfs_index *x;
	struct worker *w;
	uint64_t *t_scan, *t_index;
	const struct procfs_index_stats *st;
	int ch;

	while ((ch = getopt(argc, argv, "n:a:u:o:k:r:")) != -1) {
		switch (ch) {
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 'a': attempts = strtoul(optarg, NULL, 10); break;
		case 'u': uid = (uid_t)strtoul(optarg, NULL, 10); break;
		case 'o': other = (uid_t)strtoul(optarg, NULL, 10); break;
		case 'k': old = strcmp(optarg, "old") == 0; break;
		case 'r': root = optarg; break;
		default:
			fprintf(stderr, "usage: procscan [-n PROCS] [-a ATTEMPTS] [-u UID] "
			    "[-o UID] [-k new|old] [-r ROOT]\n");
			return 2;
		}
	}
	if (attempts == 0 || (old && attempts > n / 2)) {
		fprintf(stderr, "procscan: -a must be 1..PROCS/2 with -k old\n");
		return 2;
	}
	if ((sleepers = calloc(n + attempts, sizeof(*sleepers))) == NULL ||
	    (w = calloc(attempts, sizeof(*w))) == NULL ||
	    (t_scan = calloc(attempts, sizeof(*t_scan))) == NULL ||
	    (t_index = calloc(attempts, sizeof(*t_index))) == NULL)
		return 1;
	atexit(kill_all);
	for (size_t i = 0; i < attempts; i++)
		if (pipe(w[i].go) < 0 || pipe(w[i].back) < 0)
			return 1;
	/*
	 * With -k old, the senders are spread among the sleepers (every
	 * PROCS/ATTEMPTS-th of the sender's uid), and asked in a shuffled order:
	 * neither pid order nor listing order favours a way.
	 */
	for (size_t i = 0, k = 0; i < n; i++) {
		pid_t pid;

		if (old && i % 2 == 0 && k < attempts && i / 2 % (n / 2 / attempts) == 0) {
			pid = w[k].pid = spawn(uid, w[k].go[0], w[k].back[1]);
			k++;
		} else
			pid = spawn(i % 2 ? other : uid, -1, -1);
		if ((sleepers[nsleepers++] = pid) < 0)
			return 1;
	}
	srandom((unsigned)getpid());
	for (size_t i = attempts; old && i > 1; i--) {
		size_t j = (size_t)random() % i;
		struct worker t = w[i - 1];

		w[i - 1] = w[j];
		w[j] = t;
	}
	if ((x = procfs_index_open(root, 0)) == NULL) {
		perror("procscan: procfs_index_open");
		return 1;
	}
	for (size_t i = 0; i < attempts; i++) {
		uint64_t ino, t0;
		pid_t want;
		struct procfs_holder got;

		if (!old && (w[i].pid = sleepers[nsleepers++] = spawn(uid, w[i].go[0],
		    w[i].back[1])) < 0)
			return 1;
		want = w[i].pid;
		if (write(w[i].go[1], "x", 1) != 1 ||
		    read(w[i].back[0], &ino, sizeof(ino)) != sizeof(ino)) {
			fprintf(stderr, "procscan: sender %ld did not answer\n", (long)want);
			return 1;
		}
		/* Alternate which goes first: the first warms the dentries for the second. */
		for (int k = 0; k < 2; k++) {
			bool scan = (k == 0) == (i % 2 == 0);

			t0 = mono_ns();
			got.pid = 0;
			if (scan) {
				if (procfs_find_socket(root, uid, (ino_t)ino, &got) < 0)
					got.pid = 0;
				t_scan[i] = mono_ns() - t0;
				missed_scan += got.pid == 0;
				wrong_scan += got.pid != 0 && got.pid != want;
			} else {
				if (procfs_index_find(x, uid, (ino_t)ino, &got) < 0)
					got.pid = 0;
				t_index[i] = mono_ns() - t0;
				missed_index += got.pid == 0;
				wrong_index += got.pid != 0 && got.pid != want;
			}
		}
	}
	st = procfs_index_stats(x);
	printf("{\"procs\":%zu,\"attempts\":%zu,\"kind\":\"%s\",", n, attempts,
	    old ? "old" : "new");
	print_quantiles("scan", t_scan, attempts);
	putchar(',');
	print_quantiles("index", t_index, attempts);
	printf(",\"wrong_scan\":%zu,\"wrong_index\":%zu,\"missed_scan\":%zu,"
	    "\"missed_index\":%zu,\"indexed\":%zu,"
	    "\"by_inode\":%llu,\"by_new\":%llu,\"by_fd_count\":%llu,\"by_owner\":%llu,\"not_found\":%llu,"
	    "\"timed_out\":%llu,\"listings\":%llu,\"probed\":%llu,\"fd_tables\":%llu,"
	    "\"full\":%llu,\"full_searches\":%llu}\n", wrong_scan, wrong_index, missed_scan, missed_index,
	    procfs_index_size(x),
	    (unsigned long long)st->by_inode, (unsigned long long)st->by_new,
	    (unsigned long long)st->by_fd_count,	    (unsigned long long)st->by_owner, (unsigned long long)st->not_found,
	    (unsigned long long)st->timed_out, (unsigned long long)st->listings,
	    (unsigned long long)st->probed, (unsigned long long)st->fd_tables,
	    (unsigned long long)st->full, (unsigned long long)st->full_searches);
	procfs_index_close(x);
	return wrong_index == 0 ? 0 : 3;
}
