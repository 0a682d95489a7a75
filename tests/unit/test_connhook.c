/*
 * connhook.c: the eBPF connect hook names the process that called connect()
 * on a TCP socket, by the socket's cookie, for IPv4 and IPv6, from any
 * thread; it ignores UDP and lets every connect proceed. Needs root (CAP_BPF
 * and CAP_NET_ADMIN) and cgroup v2, as make check has. Connects go to a
 * listener of its own on loopback.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "smtpguard.h"

static struct connhook *hook;
static char where[PATH_MAX];

static uint64_t
cookie_of(int fd)
{
	uint64_t cookie;
	socklen_t len = sizeof(cookie);

	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len), 0);
	return cookie;
}

/* A listener on LOOPBACK; the client socket connected to it is returned. */
static int
connect_loopback(int family, int type, int *listener)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6);
	int c;

	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	assert_true((*listener = socket(family, type, 0)) >= 0);
	assert_int_equal(bind(*listener, (struct sockaddr *)&ss, len), 0);
	if (type == SOCK_STREAM)
		assert_int_equal(listen(*listener, 4), 0);
	assert_int_equal(getsockname(*listener, (struct sockaddr *)&ss, &len), 0);
	assert_true((c = socket(family, type, 0)) >= 0);
	assert_int_equal(connect(c, (struct sockaddr *)&ss, len), 0);
	return c;
}

static void
tcp_connects_are_named_for_both_families(void **state)
{
	int families[] = { AF_INET, AF_INET6 };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		int l, c = connect_loopback(families[i], SOCK_STREAM, &l);
		pid_t pid = 0;

		assert_int_equal(connhook_pid(hook, cookie_of(c), &pid), 0);
		assert_int_equal(pid, getpid());
		close(c);
		close(l);
	}
}

static void *
connect_in_thread(void *arg)
{
	int *fds = arg;

	fds[0] = connect_loopback(AF_INET, SOCK_STREAM, &fds[1]);
	return NULL;
}

static void
a_thread_is_named_by_its_process(void **state)
{
	pthread_t th;
	int fds[2];
	pid_t pid = 0;

	(void)state;
	assert_int_equal(pthread_create(&th, NULL, connect_in_thread, fds), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(connhook_pid(hook, cookie_of(fds[0]), &pid), 0);
	assert_int_equal(pid, getpid());
	close(fds[0]);
	close(fds[1]);
}

static void
udp_and_unknown_sockets_are_not_recorded(void **state)
{
	int l, c = connect_loopback(AF_INET, SOCK_DGRAM, &l);
	pid_t pid = 0;

	(void)state;
	errno = 0;
	assert_int_equal(connhook_pid(hook, cookie_of(c), &pid), -1);
	assert_int_equal(errno, ENOENT);
	/* A socket that never called connect() */
	assert_int_equal(connhook_pid(hook, cookie_of(l), &pid), -1);
	close(c);
	close(l);
}

static int
attach(void **state)
{
	(void)state;
	if ((hook = connhook_open(where, sizeof(where))) == NULL) {
		fprintf(stderr, "connhook_open: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static int
detach(void **state)
{
	(void)state;
	connhook_close(hook);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tcp_connects_are_named_for_both_families),
		cmocka_unit_test(a_thread_is_named_by_its_process),
		cmocka_unit_test(udp_and_unknown_sockets_are_not_recorded),
	};

	return cmocka_run_group_tests(tests, attach, detach);
}
