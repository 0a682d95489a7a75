/*
 * test_attrib.c — live: this test connects to itself over loopback (IPv4,
 * IPv6, and IPv4 from a dual-stack socket), builds the struct pkt the queue
 * would have seen for the client's SYN, and checks that sock_diag and /proc
 * name this very process. Read-only sock_diag on loopback: no namespace and
 * no netfilter needed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "smtpguard.h"

#define UNUSED_PORT	9	/* discard: nothing listens on it in the test */

struct conn {
	int		 lfd, cfd, afd;	/* listener, client, accepted */
	struct pkt	 syn;		/* what the client's SYN looked like */
};

static void
addr_of(const struct sockaddr_storage *ss, uint8_t *out, uint16_t *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		memcpy(out, &sin->sin_addr, 4);
		*port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		memcpy(out, &sin6->sin6_addr, 16);
		*port = ntohs(sin6->sin6_port);
	}
}

/*
 * A listener on LADDR, a client of CFAMILY connected to CADDR. The pkt is
 * built by hand as pkt_parse would give it for the SYN, in PFAMILY.
 */
static void
connect_to_self(struct conn *c, int family, const char *laddr, int cfamily, const char *caddr,
    int pfamily)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	uint8_t a[16];
	int off = 0;

	memset(c, 0, sizeof(*c));
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, laddr, &sin->sin_addr), 1);
		sl = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, laddr, &sin6->sin6_addr), 1);
		sl = sizeof(*sin6);
	}
	assert_true((c->lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	if (family == AF_INET6)
		assert_int_equal(setsockopt(c->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &off,
		    sizeof(off)), 0);
	assert_int_equal(bind(c->lfd, (struct sockaddr *)&ss, sl), 0);
	assert_int_equal(listen(c->lfd, 4), 0);
	sl = sizeof(ss);
	assert_int_equal(getsockname(c->lfd, (struct sockaddr *)&ss, &sl), 0);

	/* The client dials CADDR on the listener's port. */
	uint16_t port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
	    ((struct sockaddr_in6 *)&ss)->sin6_port);
	memset(&ss, 0, sizeof(ss));
	if (cfamily == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		assert_int_equal(inet_pton(AF_INET, caddr, &sin->sin_addr), 1);
		sl = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		assert_int_equal(inet_pton(AF_INET6, caddr, &sin6->sin6_addr), 1);
		sl = sizeof(*sin6);
	}
	assert_true((c->cfd = socket(cfamily, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	assert_int_equal(connect(c->cfd, (struct sockaddr *)&ss, sl), 0);
	assert_true((c->afd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0);

	c->syn.family = pfamily;
	c->syn.tcp_flags = 0x02;	/* SYN */
	sl = sizeof(ss);
	assert_int_equal(getsockname(c->cfd, (struct sockaddr *)&ss, &sl), 0);
	addr_of(&ss, a, &c->syn.sport);
	/* A dual-stack socket's IPv4 packet carries the address inside ::ffff:a.b.c.d. */
	memcpy(c->syn.src, pfamily == cfamily ? a : a + 12, pfamily == AF_INET ? 4 : 16);
	sl = sizeof(ss);
	assert_int_equal(getpeername(c->cfd, (struct sockaddr *)&ss, &sl), 0);
	addr_of(&ss, a, &c->syn.dport);
	memcpy(c->syn.dst, pfamily == cfamily ? a : a + 12, pfamily == AF_INET ? 4 : 16);
}

static void
conn_close(struct conn *c)
{
	close(c->afd);
	close(c->cfd);
	close(c->lfd);
}

static ino_t
inode_of(int fd)
{
	struct stat sb;

	assert_int_equal(fstat(fd, &sb), 0);
	return sb.st_ino;
}

static uint64_t
cookie_of(int fd)
{
	uint64_t cookie;
	socklen_t len = sizeof(cookie);

	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len), 0);
	return cookie;
}

/* Everything the daemon logs about this test process, checked field by field. */
static void
assert_names_this_process(const struct attrib *a, int cfd)
{
	char exe[PATH_MAX];
	struct passwd *pw;
	ssize_t n;

	assert_true(a->has_uid);
	assert_int_equal(a->uid, geteuid());
	assert_int_equal(a->inode, inode_of(cfd));
	assert_true(a->has_pid);
	assert_int_equal(a->pid, getpid());
	assert_true(a->has_ppid);
	assert_int_equal(a->ppid, getppid());
	assert_true((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0);
	exe[n] = '\0';
	assert_string_equal(a->exe, exe);
	assert_non_null(strstr(a->cmdline, "test_attrib"));
	assert_true(getcwd(exe, sizeof(exe)) != NULL);
	assert_string_equal(a->cwd, exe);
	assert_true(a->cgroup[0] == '/');
	assert_non_null(pw = getpwuid(geteuid()));
	assert_string_equal(a->user, pw->pw_name);
}

static void
ipv4_sender_is_named_down_to_its_pid(void **state)
{
	struct attrib_ctx *ctx;
	struct attrib a;
	struct conn c;

	(void)state;
	connect_to_self(&c, AF_INET, "127.0.0.1", AF_INET, "127.0.0.1", AF_INET);
	assert_non_null(ctx = attrib_open("/proc"));
	attrib_flow(ctx, &c.syn, false, 0, false, 0, &a);
	assert_names_this_process(&a, c.cfd);
	assert_false(a.has_gid);
	attrib_close(ctx);
	conn_close(&c);
}

static void
ipv6_sender_is_named_down_to_its_pid(void **state)
{
	struct attrib_ctx *ctx;
	struct attrib a;
	struct conn c;

	(void)state;
	connect_to_self(&c, AF_INET6, "::1", AF_INET6, "::1", AF_INET6);
	assert_non_null(ctx = attrib_open("/proc"));
	attrib_flow(ctx, &c.syn, false, 0, false, 0, &a);
	assert_names_this_process(&a, c.cfd);
	attrib_close(ctx);
	conn_close(&c);
}

static void
ipv4_packet_from_a_dual_stack_socket_is_named(void **state)
{
	struct attrib_ctx *ctx;
	struct attrib a;
	struct conn c;
	struct diag_sock ds;

	(void)state;
	connect_to_self(&c, AF_INET6, "::", AF_INET6, "::ffff:127.0.0.1", AF_INET);
	assert_non_null(ctx = attrib_open("/proc"));
	attrib_flow(ctx, &c.syn, false, 0, false, 0, &a);
	assert_names_this_process(&a, c.cfd);
	attrib_close(ctx);

	struct diag *d = diag_open();

	assert_non_null(d);
	assert_int_equal(diag_lookup(d, &c.syn, &ds), 0);
	assert_int_equal(ds.inode, inode_of(c.cfd));
	diag_close(d);
	conn_close(&c);
}

static void
queue_ids_win_and_the_process_is_still_found(void **state)
{
	struct attrib_ctx *ctx;
	struct attrib a;
	struct conn c;

	(void)state;
	connect_to_self(&c, AF_INET, "127.0.0.1", AF_INET, "127.0.0.1", AF_INET);
	assert_non_null(ctx = attrib_open("/proc"));
	/* The queue's uid is the packet's skuid: kept as given, even if it differs. */
	attrib_flow(ctx, &c.syn, true, 4242, true, 4343, &a);
	assert_true(a.has_uid);
	assert_int_equal(a.uid, 4242);
	assert_true(a.has_gid);
	assert_int_equal(a.gid, 4343);
	assert_true(a.has_pid);
	assert_int_equal(a.pid, getpid());
	assert_int_equal(a.inode, inode_of(c.cfd));
	attrib_close(ctx);
	conn_close(&c);
}

static void
repeat_sender_is_named_on_every_flow(void **state)
{
	struct attrib_ctx *ctx;
	struct attrib a;
	struct conn c;

	(void)state;
	assert_non_null(ctx = attrib_open("/proc"));
	/*
	 * The second and third flows go through the remembered pid first, and
	 * its remembered fd numbers: a closed fd number is reused by the next
	 * socket, and a socket on a new number is still found.
	 */
	for (int i = 0; i < 4; i++) {
		int spare = i == 3 ? open("/dev/null", O_RDONLY) : -1;

		connect_to_self(&c, AF_INET, "127.0.0.1", AF_INET, "127.0.0.1", AF_INET);
		if (spare >= 0)
			close(spare);
		attrib_flow(ctx, &c.syn, false, 0, false, 0, &a);
		assert_names_this_process(&a, c.cfd);
		conn_close(&c);
	}
	/* Only the first flow went to /proc's index; the others were hints. */
	assert_non_null(attrib_index_stats(ctx));
	assert_int_equal(attrib_index_stats(ctx)->lookups, 1);
	attrib_close(ctx);
}

static void
vanished_connection_leaves_the_process_unknown(void **state)
{
	struct attrib_ctx *ctx;
	struct attrib a;
	struct pkt p = { .family = AF_INET, .sport = 40000, .dport = UNUSED_PORT };

	(void)state;
	p.src[0] = p.dst[0] = 127;
	p.src[3] = p.dst[3] = 1;
	assert_non_null(ctx = attrib_open("/proc"));
	attrib_flow(ctx, &p, true, 33, false, 0, &a);
	assert_true(a.has_uid);
	assert_int_equal(a.uid, 33);
	assert_int_equal(a.inode, 0);
	assert_false(a.has_pid);
	assert_false(a.has_ppid);
	assert_string_equal(a.exe, "");
	assert_string_equal(a.cmdline, "");
	attrib_flow(ctx, &p, false, 0, false, 0, &a);
	assert_false(a.has_uid);
	assert_string_equal(a.user, "");
	attrib_close(ctx);
}

static void
diag_asks_from_the_senders_side(void **state)
{
	struct diag *d;
	struct conn c;
	struct pkt back;
	struct diag_sock ds;

	(void)state;
	connect_to_self(&c, AF_INET, "127.0.0.1", AF_INET, "127.0.0.1", AF_INET);
	assert_non_null(d = diag_open());
	assert_int_equal(diag_lookup(d, &c.syn, &ds), 0);
	assert_int_equal(ds.inode, inode_of(c.cfd));
	assert_int_equal(ds.uid, geteuid());
	assert_int_equal(ds.cookie, cookie_of(c.cfd));
	/* The same tuple read the other way is the accepting socket, not the client. */
	back = c.syn;
	memcpy(back.src, c.syn.dst, 4);
	memcpy(back.dst, c.syn.src, 4);
	back.sport = c.syn.dport;
	back.dport = c.syn.sport;
	assert_int_equal(diag_lookup(d, &back, &ds), 0);
	assert_int_equal(ds.inode, inode_of(c.afd));
	conn_close(&c);
	errno = 0;
	assert_int_equal(diag_lookup(d, &c.syn, &ds), -1);
	assert_int_equal(errno, ENOENT);
	diag_close(d);
}

static void
diag_refuses_a_packet_of_no_known_family(void **state)
{
	struct diag *d;
	struct pkt p = { .family = AF_UNIX };
	struct diag_sock ds;

	(void)state;
	assert_non_null(d = diag_open());
	errno = 0;
	assert_int_equal(diag_lookup(d, &p, &ds), -1);
	assert_int_equal(errno, EAFNOSUPPORT);
	diag_close(d);
}

/* clone3 with CLONE_SET_TID: a child given PID, as a recycled pid would be. */
static pid_t
fork_at_pid(pid_t pid)
{
	struct clone_args args;

	memset(&args, 0, sizeof(args));
	args.exit_signal = SIGCHLD;
	args.set_tid = (uintptr_t)&pid;
	args.set_tid_size = 1;
	return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}

static void
wait_on(int fd)
{
	char c;

	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
}

/*
 * The connect hook names the process that called connect(); that process
 * exits, its pid goes to another process of the same user, and only then is
 * the SYN attributed (a queue that is behind, a sender that forks and
 * exits). The newcomer started after the connect: it is not named. The
 * socket's holder, the sender's child, is found by the /proc search instead.
 */
static void
recycled_pid_is_not_named_for_the_hooks_process(void **state)
{
	static const struct connhook_filter everything = { 0 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct attrib_ctx *ctx;
	struct attrib a;
	struct conn c;
	struct pkt syn = { .family = AF_INET, .tcp_flags = 0x02 };
	char where[PATH_MAX];
	socklen_t sl = sizeof(sin);
	int lfd, afd, hold[2], told[2];
	pid_t sender, holder, newcomer;

	(void)state;
	assert_non_null(ctx = attrib_open("/proc"));
	if (attrib_hook(ctx, where, sizeof(where), &everything) < 0) {
		fprintf(stderr, "attrib_hook: %s: needs root and cgroup v2\n", strerror(errno));
		attrib_close(ctx);
		skip();
	}
	/* The hook names a sender of its own: /proc is not searched. */
	connect_to_self(&c, AF_INET, "127.0.0.1", AF_INET, "127.0.0.1", AF_INET);
	attrib_flow(ctx, &c.syn, false, 0, false, 0, &a);
	assert_names_this_process(&a, c.cfd);
	conn_close(&c);
	assert_non_null(attrib_index_stats(ctx));
	assert_int_equal(attrib_index_stats(ctx)->lookups, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
	assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
	assert_int_equal(pipe2(told, O_CLOEXEC), 0);
	if ((sender = fork()) == 0) {
		int s = socket(AF_INET, SOCK_STREAM, 0);

		if (s < 0 || connect(s, (struct sockaddr *)&sin, sizeof(sin)) < 0)
			_exit(1);
		if ((holder = fork()) == 0) {
			close(hold[1]);
			wait_on(hold[0]);
			_exit(0);
		}
		_exit(write(told[1], &holder, sizeof(holder)) == sizeof(holder) ? 0 : 1);
	}
	assert_true(sender > 0);
	close(told[1]);
	assert_int_equal(read(told[0], &holder, sizeof(holder)), sizeof(holder));
	close(told[0]);
	assert_int_equal(waitpid(sender, NULL, 0), sender);
	/* Two clock ticks on: the newcomer's start cannot share the connect's tick. */
	(void)nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
	if ((newcomer = fork_at_pid(sender)) == 0) {
		close(hold[1]);
		wait_on(hold[0]);
		_exit(0);
	}
	assert_int_equal(newcomer, sender);

	assert_true((afd = accept4(lfd, (struct sockaddr *)&sin, &sl, SOCK_CLOEXEC)) >= 0);
	memcpy(syn.src, &sin.sin_addr, 4);
	syn.sport = ntohs(sin.sin_port);
	assert_int_equal(getsockname(afd, (struct sockaddr *)&sin, &sl), 0);
	memcpy(syn.dst, &sin.sin_addr, 4);
	syn.dport = ntohs(sin.sin_port);
	attrib_flow(ctx, &syn, false, 0, false, 0, &a);
	assert_true(a.has_pid);
	assert_int_equal(a.pid, holder);
	/* Searched: the hook, which named the first sender, did not name this one. */
	assert_int_equal(attrib_index_stats(ctx)->lookups, 1);

	close(hold[1]);
	assert_int_equal(waitpid(newcomer, NULL, 0), newcomer);
	/* The holder is the sender's child, reparented: not ours to reap. */
	close(hold[0]);
	close(afd);
	close(lfd);
	attrib_close(ctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ipv4_sender_is_named_down_to_its_pid),
		cmocka_unit_test(ipv6_sender_is_named_down_to_its_pid),
		cmocka_unit_test(ipv4_packet_from_a_dual_stack_socket_is_named),
		cmocka_unit_test(queue_ids_win_and_the_process_is_still_found),
		cmocka_unit_test(repeat_sender_is_named_on_every_flow),
		cmocka_unit_test(vanished_connection_leaves_the_process_unknown),
		cmocka_unit_test(diag_asks_from_the_senders_side),
		cmocka_unit_test(diag_refuses_a_packet_of_no_known_family),
		cmocka_unit_test(recycled_pid_is_not_named_for_the_hooks_process),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
