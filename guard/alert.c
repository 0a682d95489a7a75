/*
 * alert.c — "this uid is hammering the fence": counts attempts per uid in a
 * rolling ten minutes (ten one-minute buckets) and says when one crosses the
 * threshold, once per window. Also runs the admin's alert program: no
 * shell, the alert as JSON on stdin, a time limit, always reaped, never left
 * running, at most ALERT_CHILDREN at once.
 *
 * The program is run by the alerter, a process forked before the daemon
 * gives up its privileges (it may not exec at all afterwards): the daemon
 * sends it each alert over a socketpair, and the program it runs is fixed
 * when it starts. It exits when the daemon's end closes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "smtpguard.h"

#define ALERT_BUCKETS		10	/* minutes in the window */
#define ALERT_UIDS_MAX		4096	/* uids tracked; past that the oldest slot is reused */
#define ALERT_CHILDREN		4
#define ALERT_TIMEOUT		10	/* seconds an alert program may run */
#define ALERTER_FD		3	/* the alerter's end of the socketpair */

struct alert_uid {
	uid_t		 uid;
	bool		 used;
	long		 minute[ALERT_BUCKETS];
	uint32_t	 count[ALERT_BUCKETS];
	long		 alerted_minute;	/* start of the window that alerted */
	long		 last_minute;
};

struct alert_child {
	pid_t		 pid;
	time_t		 deadline;
};

struct alerts {
	unsigned int		 threshold;
	struct alert_uid	*uids;
	size_t			 nuids;
	struct alert_child	 children[ALERT_CHILDREN];
};

struct alerts *
alerts_new(unsigned int threshold)
{
	struct alerts *a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	a->threshold = threshold;
	if (threshold > 0 && (a->uids = calloc(ALERT_UIDS_MAX, sizeof(*a->uids))) == NULL) {
		free(a);
		return NULL;
	}
	return a;
}

static struct alert_uid *
alerts_slot(struct alerts *a, uid_t uid)
{
	struct alert_uid *oldest = NULL;

	for (size_t i = 0; i < a->nuids; i++)
		if (a->uids[i].uid == uid)
			return &a->uids[i];
	if (a->nuids < ALERT_UIDS_MAX) {
		a->uids[a->nuids].uid = uid;
		a->uids[a->nuids].alerted_minute = -ALERT_BUCKETS - 1;
		return &a->uids[a->nuids++];
	}
	for (size_t i = 0; i < a->nuids; i++)
		if (oldest == NULL || a->uids[i].last_minute < oldest->last_minute)
			oldest = &a->uids[i];
	memset(oldest, 0, sizeof(*oldest));
	oldest->uid = uid;
	oldest->alerted_minute = -ALERT_BUCKETS - 1;
	return oldest;
}

bool
alerts_count(struct alerts *a, uid_t uid, time_t now, uint64_t *in_window)
{
	long minute = (long)(now / 60);
	size_t slot = (size_t)(minute % ALERT_BUCKETS);
	struct alert_uid *u;
	uint64_t sum = 0;

	if (a->threshold == 0)
		return false;
	u = alerts_slot(a, uid);
	if (u->minute[slot] != minute) {
		u->minute[slot] = minute;
		u->count[slot] = 0;
	}
	u->count[slot]++;
	u->last_minute = minute;
	for (size_t i = 0; i < ALERT_BUCKETS; i++)
		if (u->minute[i] > minute - ALERT_BUCKETS)
			sum += u->count[i];
	*in_window = sum;
	/* Once per window: not again until ten minutes after the last alert. */
	if (sum < a->threshold || minute - u->alerted_minute < ALERT_BUCKETS)
		return false;
	u->alerted_minute = minute;
	return true;
}

/*
 * Whether no alert can be due for UID from now until UNTIL, whatever it
 * does: alerts are off, or UID alerted recently enough that its next alert
 * cannot come before then. Attempts the daemon does not see one by one
 * (refused in the kernel, refuse.c) are allowed only then, so an alert is
 * never missed for them; they are credited afterwards (alerts_credit).
 */
bool
alerts_quiet(const struct alerts *a, uid_t uid, time_t until)
{
	if (a->threshold == 0)
		return true;
	for (size_t i = 0; i < a->nuids; i++)
		if (a->uids[i].uid == uid)
			return (long)(until / 60) - a->uids[i].alerted_minute < ALERT_BUCKETS;
	return false;
}

/* N attempts of UID counted at NOW without an alert decision (see alerts_quiet). */
void
alerts_credit(struct alerts *a, uid_t uid, time_t now, uint64_t n)
{
	long minute = (long)(now / 60);
	size_t slot = (size_t)(minute % ALERT_BUCKETS);
	struct alert_uid *u;

	if (a->threshold == 0 || n == 0)
		return;
	u = alerts_slot(a, uid);
	if (u->minute[slot] != minute) {
		u->minute[slot] = minute;
		u->count[slot] = 0;
	}
	u->count[slot] = n > UINT32_MAX - u->count[slot] ? UINT32_MAX :
	    u->count[slot] + (uint32_t)n;
	u->last_minute = minute;
}

int
alerts_exec(struct alerts *a, const char *program, const char *json, size_t len)
{
	struct alert_child *slot = NULL;
	int p[2];
	pid_t pid;

	for (size_t i = 0; i < ALERT_CHILDREN; i++)
		if (a->children[i].pid == 0)
			slot = &a->children[i];
	if (slot == NULL) {
		errno = EAGAIN;
		return -1;
	}
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	if ((pid = fork()) < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setpgid(0, 0);
		if (dup2(p[0], STDIN_FILENO) < 0)
			_exit(127);
		execl(program, program, (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	/* An alert is a few KiB: it fits the pipe, so this never blocks. */
	(void)fcntl(p[1], F_SETFL, O_NONBLOCK);
	(void)!write(p[1], json, len);
	close(p[1]);
	slot->pid = pid;
	slot->deadline = time(NULL) + ALERT_TIMEOUT;
	return 0;
}

/* Reaps finished programs, kills those past their time. Returns how many were killed. */
int
alerts_reap(struct alerts *a, time_t now)
{
	int killed = 0;

	for (size_t i = 0; i < ALERT_CHILDREN; i++) {
		struct alert_child *c = &a->children[i];

		if (c->pid == 0)
			continue;
		if (waitpid(c->pid, NULL, WNOHANG) == c->pid) {
			c->pid = 0;
			continue;
		}
		if (now >= c->deadline) {
			kill(-c->pid, SIGKILL);
			kill(c->pid, SIGKILL);
			(void)waitpid(c->pid, NULL, 0);
			c->pid = 0;
			killed++;
		}
	}
	return killed;
}

void
alerts_free(struct alerts *a)
{
	if (a == NULL)
		return;
	alerts_reap(a, (time_t)1 << 62);
	free(a->uids);
	free(a);
}

static _Noreturn void
alerter_main(const char *program, int fd)
{
	static char buf[EVENT_LINE_MAX];
	struct alerts *a;
	sigset_t mask;

	/* SIGPIPE blocked, not ignored: the program must not inherit SIG_IGN. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGPIPE);
	sigprocmask(SIG_SETMASK, &mask, NULL);
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (fd != ALERTER_FD && (dup2(fd, ALERTER_FD) < 0 || close(fd) < 0))
		_exit(1);
	/* Nothing else of the daemon's: a READY pipe held here would hang enable. */
	(void)close_range(ALERTER_FD + 1, ~0U, 0);
	if ((a = alerts_new(1)) == NULL)
		_exit(1);
	for (;;) {
		struct pollfd pfd = { .fd = ALERTER_FD, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 1000) > 0) {
			n = recv(ALERTER_FD, buf, sizeof(buf), 0);
			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
				break;	/* the daemon is gone */
			if (n > 0 && alerts_exec(a, program, buf, (size_t)n) < 0)
				log_warn("alert program %s not run", program);
		}
		if (alerts_reap(a, time(NULL)) > 0)
			log_warnx("alert program %s killed after %d s", program, ALERT_TIMEOUT);
	}
	alerts_free(a);
	_exit(0);
}

int
alerter_start(const char *program, pid_t *pid)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	if ((*pid = fork()) < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (*pid == 0) {
		close(sv[0]);
		alerter_main(program, sv[1]);
	}
	close(sv[1]);
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0) {
		close(sv[0]);
		return -1;
	}
	return sv[0];
}
