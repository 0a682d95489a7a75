/*
 * sandbox.c — what smtpguardd may still do once its fence is up. It stays
 * uid 0 (its files are root's) but keeps only the capabilities its steady
 * state uses, sets no_new_privs, and installs a seccomp allow-list: any other
 * system call fails with EPERM (exec among them: alert programs are run by
 * the alerter, forked before this). A missing call fails an operation and is
 * logged; it never kills the daemon, which would leave its queue unserved.
 *
 * Capabilities kept, and why:
 *   NET_ADMIN        verdicts, ruleset changes (allow, revoke, reload)
 *   SYS_PTRACE       /proc/PID/exe, cwd and fd of other users' processes
 *   DAC_READ_SEARCH  /proc files and configs whatever their modes
 *   CHOWN            the events file is created root:adm after rotation
 *   KILL             stopping the trap child, which runs as another user
 *   SETUID, SETGID, SYS_CHROOT, NET_BIND_SERVICE
 *                    restarting the trap: it binds, chroots, drops to its user
 */
#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include <cap-ng.h>
#include <seccomp.h>

#include "smtpguard.h"

static const int kept_caps[] = {
	CAP_NET_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH, CAP_CHOWN, CAP_KILL,
	CAP_SETUID, CAP_SETGID, CAP_SYS_CHROOT, CAP_NET_BIND_SERVICE,
};

/*
 * Every call the daemon, its libraries (glibc, libmnl, libnftnl, jansson,
 * inih) and a restarting trap child make after setup, as traced under the
 * integration tests.
 */
static const char *const allowed_calls[] = {
	/* memory, time, process */
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
	"clock_gettime", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
	"getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid",
	"getrandom", "exit", "exit_group", "rt_sigreturn", "rt_sigprocmask", "rt_sigtimedwait",
	"rt_sigaction", "sigaltstack", "restart_syscall", "prctl", "sched_yield", "futex",
	"set_robust_list", "rseq", "uname", "sysinfo",
	/* refuse.c: the grace period before a refused uid's count is read */
	"membarrier",
	/* the trap child: forked here, then chrooted and unprivileged by trap.c */
	"clone", "clone3", "fork", "vfork", "wait4", "waitid", "kill", "tgkill",
	"setgroups", "setresuid", "setresgid", "setuid", "setgid", "chroot",
	"chdir", "setpgid", "setsid",
	/* files: events, config, exceptions, /proc, pid file, control socket */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "lseek",
	"open", "openat", "close", "close_range", "dup", "dup2", "dup3",
	"fcntl", "fstat", "newfstatat", "stat", "lstat", "statx", "fstatfs",
	"readlink", "readlinkat", "getdents64", "access", "faccessat", "faccessat2",
	"rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat",
	"fchmod", "fchmodat", "chmod", "fchown", "fchownat", "fsync", "fdatasync",
	"ftruncate", "umask", "ioctl",
	/* events and sockets */
	"epoll_wait", "epoll_pwait", "epoll_ctl", "epoll_create1", "poll", "ppoll",
	"select", "pselect6", "timerfd_settime", "timerfd_gettime", "signalfd4",
	"pipe2", "socket", "socketpair", "bind", "listen", "accept", "accept4",
	"connect", "getsockname", "getpeername", "getsockopt", "setsockopt",
	"sendto", "sendmsg", "recvfrom", "recvmsg", "shutdown",
};

int
sandbox_enter(char *err, size_t errlen)
{
	const struct scmp_arg_cmp lookup_only = { .arg = 0, .op = SCMP_CMP_EQ,
	    .datum_a = BPF_MAP_LOOKUP_ELEM, .datum_b = 0 };
	scmp_filter_ctx ctx;
	int rc;

	capng_clear(CAPNG_SELECT_BOTH);
	for (size_t i = 0; i < sizeof(kept_caps) / sizeof(kept_caps[0]); i++)
		if (capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED |
		    CAPNG_BOUNDING_SET, kept_caps[i]) < 0) {
			snprintf(err, errlen, "capng_update: capability %d", kept_caps[i]);
			return -1;
		}
	if ((rc = capng_apply(CAPNG_SELECT_BOTH)) < 0) {
		snprintf(err, errlen, "dropping capabilities (capng_apply %d)", rc);
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "no_new_privs: %s", strerror(errno));
		return -1;
	}
	if ((ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM))) == NULL) {
		snprintf(err, errlen, "seccomp_init failed");
		return -1;
	}
	for (size_t i = 0; i < sizeof(allowed_calls) / sizeof(allowed_calls[0]); i++) {
		int nr = seccomp_syscall_resolve_name(allowed_calls[i]);

		/* A call this architecture does not have (open on arm64) is skipped. */
		if (nr != __NR_SCMP_ERROR &&
		    (rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)) < 0) {
			snprintf(err, errlen, "seccomp rule for %s: %s", allowed_calls[i],
			    strerror(-rc));
			seccomp_release(ctx);
			return -1;
		}
	}
	/* bpf(2) only to read the connect hook's map: never to load a program. */
	if ((rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(bpf), 1,
	    &lookup_only)) < 0) {
		snprintf(err, errlen, "seccomp rule for bpf: %s", strerror(-rc));
		seccomp_release(ctx);
		return -1;
	}
	rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc < 0) {
		snprintf(err, errlen, "loading the seccomp filter: %s", strerror(-rc));
		return -1;
	}
	return 0;
}
