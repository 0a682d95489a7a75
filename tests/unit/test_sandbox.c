/*
 * sandbox.c: after sandbox_enter a process cannot exec, cannot load a BPF
 * program, has no_new_privs and only the capabilities listed in sandbox.c,
 * yet still does the daemon's steady-state work (files, sockets, a BPF map
 * lookup). Each case runs in a forked child, as the sandbox is one-way.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cap-ng.h>
#include <cmocka.h>

#include "smtpguard.h"

/* Runs CHECK in a sandboxed child; its exit code is the failing step (0: all held). */
static int
in_sandbox(int (*check)(void))
{
	char err[256];
	pid_t pid;
	int status;

	if ((pid = fork()) == 0) {
		if (sandbox_enter(err, sizeof(err)) < 0) {
			fprintf(stderr, "sandbox_enter: %s\n", err);
			_exit(100);
		}
		_exit(check());
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static int
exec_fails(void)
{
	char *const argv[] = { "false", NULL }, *const envp[] = { NULL };

	/* Should exec work after all, false's exit status fails the test. */
	execve("/bin/false", argv, envp);
	return errno == EPERM ? 0 : 1;
}

static int
bpf_program_load_fails(void)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	if (syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof(a)) != -1 || errno != EPERM)
		return 1;
	/* A map lookup is allowed through: a bad fd answers EBADF, not EPERM. */
	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)-1;
	if (syscall(SYS_bpf, BPF_MAP_LOOKUP_ELEM, &a, sizeof(a)) != -1 || errno != EBADF)
		return 2;
	return 0;
}

static int
privileges_are_reduced(void)
{
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return 1;
	capng_get_caps_process();
	if (capng_have_capability(CAPNG_EFFECTIVE, CAP_SYS_ADMIN) ||
	    capng_have_capability(CAPNG_EFFECTIVE, CAP_DAC_OVERRIDE) ||
	    capng_have_capability(CAPNG_EFFECTIVE, CAP_BPF) ||
	    capng_have_capability(CAPNG_BOUNDING_SET, CAP_SYS_ADMIN))
		return 2;
	if (!capng_have_capability(CAPNG_EFFECTIVE, CAP_NET_ADMIN) ||
	    !capng_have_capability(CAPNG_EFFECTIVE, CAP_SYS_PTRACE))
		return 3;
	return 0;
}

static int
steady_state_work_still_works(void)
{
	char buf[64];
	int fd, sv[2];

	if ((fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)) < 0 || read(fd, buf, 64) <= 0)
		return 1;
	close(fd);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
	    send(sv[0], "x", 1, 0) != 1 || recv(sv[1], buf, 1, 0) != 1)
		return 2;
	if (socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0) < 0)
		return 3;
	return 0;
}

static void
exec_is_refused(void **state)
{
	(void)state;
	assert_int_equal(in_sandbox(exec_fails), 0);
}

static void
only_map_lookups_reach_bpf(void **state)
{
	(void)state;
	assert_int_equal(in_sandbox(bpf_program_load_fails), 0);
}

static void
no_new_privs_and_few_capabilities(void **state)
{
	(void)state;
	assert_int_equal(in_sandbox(privileges_are_reduced), 0);
}

static void
files_sockets_and_netlink_still_work(void **state)
{
	(void)state;
	assert_int_equal(in_sandbox(steady_state_work_still_works), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exec_is_refused),
		cmocka_unit_test(only_map_lookups_reach_bpf),
		cmocka_unit_test(no_new_privs_and_few_capabilities),
		cmocka_unit_test(files_sockets_and_netlink_still_work),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
