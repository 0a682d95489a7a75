/*
 * connhook.c: the eBPF connect hook names the process that called connect()
 * on a TCP socket, by the socket's cookie, for IPv4 and IPv6, from any
 * thread; it ignores UDP, records only the ports and callers its filter
 * lets through, and lets every connect proceed. Needs root (CAP_BPF
 * and CAP_NET_ADMIN) and cgroup v2, as make check has. Connects go to a
 * listener of its own on loopback.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
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

static uint64_t
boottime_ns(void)
{
	struct timespec ts;

	assert_int_equal(clock_gettime(CLOCK_BOOTTIME, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Named with the time of the connect, on the clock process starts are counted by. */
static void
tcp_connects_are_named_for_both_families(void **state)
{
	int families[] = { AF_INET, AF_INET6 };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		uint64_t before = boottime_ns(), at = 0;
		int l, c = connect_loopback(families[i], SOCK_STREAM, &l);
		pid_t pid = 0;

		assert_int_equal(connhook_pid(hook, cookie_of(c), &pid, &at), 0);
		assert_int_equal(pid, getpid());
		assert_true(at >= before);
		assert_true(at <= boottime_ns());
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
	uint64_t at;

	(void)state;
	assert_int_equal(pthread_create(&th, NULL, connect_in_thread, fds), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(connhook_pid(hook, cookie_of(fds[0]), &pid, &at), 0);
	assert_int_equal(pid, getpid());
	close(fds[0]);
	close(fds[1]);
}

static void
udp_and_unknown_sockets_are_not_recorded(void **state)
{
	int l, c = connect_loopback(AF_INET, SOCK_DGRAM, &l);
	pid_t pid = 0;
	uint64_t at;

	(void)state;
	errno = 0;
	assert_int_equal(connhook_pid(hook, cookie_of(c), &pid, &at), -1);
	assert_int_equal(errno, ENOENT);
	/* A socket that never called connect() */
	assert_int_equal(connhook_pid(hook, cookie_of(l), &pid, &at), -1);
	close(c);
	close(l);
}

static uint16_t
port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	assert_int_equal(getpeername(fd, (struct sockaddr *)&ss, &len), 0);
	return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
	    ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static bool
recorded(int fd)
{
	pid_t pid = 0;
	uint64_t at;

	return connhook_pid(hook, cookie_of(fd), &pid, &at) == 0 && pid == getpid();
}

static const struct connhook_filter everything = { 0 };

/* Only connects to a filtered port are recorded, in both families. */
static void
ports_filter_what_is_recorded(void **state)
{
	int families[] = { AF_INET, AF_INET6 };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		int l1, l2, c1, c2;
		uint16_t port;
		struct connhook_filter f = { .ports = &port, .nports = 1 };

		/* Learn a free port first, then filter on it and connect again. */
		c1 = connect_loopback(families[i], SOCK_STREAM, &l1);
		port = port_of(c1);
		close(c1);
		assert_int_equal(connhook_refilter(hook, &f), 0);
		assert_true((c1 = socket(families[i], SOCK_STREAM, 0)) >= 0);
		{
			struct sockaddr_storage ss;
			socklen_t len = sizeof(ss);

			assert_int_equal(getsockname(l1, (struct sockaddr *)&ss, &len), 0);
			assert_int_equal(connect(c1, (struct sockaddr *)&ss, len), 0);
		}
		c2 = connect_loopback(families[i], SOCK_STREAM, &l2);	/* another port */
		assert_true(recorded(c1));
		assert_false(recorded(c2));
		assert_int_equal(connhook_refilter(hook, &everything), 0);
		close(c1);
		close(c2);
		close(l1);
		close(l2);
	}
}

/* A skipped uid (ours) is never recorded; back to no filter, it is again. */
static void
skipped_uids_are_not_recorded(void **state)
{
	uid_t me = getuid();
	struct connhook_filter f = { .skip = &me, .nskip = 1 };
	int l, c;

	(void)state;
	assert_int_equal(connhook_refilter(hook, &f), 0);
	c = connect_loopback(AF_INET6, SOCK_STREAM, &l);
	assert_false(recorded(c));
	close(c);
	close(l);
	assert_int_equal(connhook_refilter(hook, &everything), 0);
	c = connect_loopback(AF_INET6, SOCK_STREAM, &l);
	assert_true(recorded(c));
	close(c);
	close(l);
}

/* Past its bounds a filter is refused and the hook keeps the one it had. */
static void
an_oversized_filter_is_refused(void **state)
{
	uid_t many[CONNHOOK_SKIP_MAX + 1] = { 0 };
	struct connhook_filter f = { .skip = many, .nskip = CONNHOOK_SKIP_MAX + 1 };
	int l, c;

	(void)state;
	errno = 0;
	assert_int_equal(connhook_refilter(hook, &f), -1);
	assert_int_equal(errno, E2BIG);
	c = connect_loopback(AF_INET, SOCK_STREAM, &l);
	assert_true(recorded(c));
	close(c);
	close(l);
}

/* The largest filter loads: every port and uid bound at once. */
static void
the_largest_filter_loads(void **state)
{
	uint16_t ports[CONNHOOK_PORTS_MAX];
	uid_t skip[CONNHOOK_SKIP_MAX];
	struct connhook_filter f = { .ports = ports, .nports = CONNHOOK_PORTS_MAX,
	    .skip = skip, .nskip = CONNHOOK_SKIP_MAX };

	(void)state;
	for (size_t i = 0; i < CONNHOOK_PORTS_MAX; i++)
		ports[i] = (uint16_t)(25 + i);
	for (size_t i = 0; i < CONNHOOK_SKIP_MAX; i++)
		skip[i] = (uid_t)(60000 + i);
	assert_int_equal(connhook_refilter(hook, &f), 0);
	assert_int_equal(connhook_refilter(hook, &everything), 0);
}

static int
attach(void **state)
{
	(void)state;
	if ((hook = connhook_open(where, sizeof(where), &everything)) == NULL) {
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
		cmocka_unit_test(ports_filter_what_is_recorded),
		cmocka_unit_test(skipped_uids_are_not_recorded),
		cmocka_unit_test(an_oversized_filter_is_refused),
		cmocka_unit_test(the_largest_filter_loads),
	};

	return cmocka_run_group_tests(tests, attach, detach);
}
