/*
 * trap.c — the local SMTP server that trapped flows are redirected to: its
 * process, listeners, sessions' sockets and reports. What each session says
 * and hears (enough RFC 5321 for real clients, the envelope and headers
 * recorded, 550 at the end of DATA) is trap_session.c's. It serves only
 * connections the fence redirected to it (their conntrack record says so):
 * one made to the trap port directly is reset without a banner and reported
 * as "direct", so nobody can write forged trap evidence into the log.
 *
 * It runs in a child of smtpguardd that holds nothing worth stealing: an
 * unprivileged user, an empty chroot, no capabilities; it only accepts on
 * the two listeners it inherits and sends one report per session to the
 * parent over a socketpair. Every session is bounded (bytes, idle time,
 * line length, errors) and the number of sessions too; a client that
 * breaks a bound is cut and reported, and the trap carries on.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smtpguard.h"

#define TRAP_EPOLL_BATCH	64
#define TRAP_TAG_LISTEN4	((uint64_t)-1)
#define TRAP_TAG_LISTEN6	((uint64_t)-2)

struct trap {
	const struct config	*cfg;
	int			 lfd4, lfd6, parent, epfd;
	struct trap_session	*sessions;
	char			 banner[128];
};

static int
trap_listen(int family, uint16_t port, char *err, size_t errlen)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	int fd, one = 1;

	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = in6addr_loopback;
		len = sizeof(*sin6);
	}
	if ((fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0) {
		snprintf(err, errlen, "trap listener on %s port %u: %s",
		    family == AF_INET ? "127.0.0.1" : "::1", port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void
trap_end(struct trap *t, struct trap_session *s, const char *reason)
{
	strlcpy_sg(s->report.reason, reason, sizeof(s->report.reason));
	s->report.info.bytes = s->bytes;
	(void)send(t->parent, &s->report, sizeof(s->report), MSG_NOSIGNAL);
	epoll_ctl(t->epfd, EPOLL_CTL_DEL, s->fd, NULL);
	close(s->fd);
	s->fd = -1;
}

/*
 * The original destination, from conntrack's NAT record. Returns false when
 * the connection was not redirected here by the fence (no record, or the
 * record's destination is the listener itself): somebody connected to the
 * trap port directly, and what they say is no evidence of anything.
 */
static bool
trap_original_dst(struct trap_session *s, int family)
{
	struct sockaddr_storage ss, self;
	socklen_t len = sizeof(ss), slen = sizeof(self);

	if (getsockname(s->fd, (struct sockaddr *)&self, &slen) < 0)
		return false;
	if (family == AF_INET &&
	    getsockopt(s->fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len) == 0) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		struct sockaddr_in *me = (struct sockaddr_in *)&self;

		memcpy(s->report.dst, &sin->sin_addr, 4);
		s->report.dport = ntohs(sin->sin_port);
		return sin->sin_port != me->sin_port ||
		    sin->sin_addr.s_addr != me->sin_addr.s_addr;
	}
	if (family == AF_INET6 &&
	    getsockopt(s->fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len) == 0) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		struct sockaddr_in6 *me = (struct sockaddr_in6 *)&self;

		memcpy(s->report.dst, &sin6->sin6_addr, 16);
		s->report.dport = ntohs(sin6->sin6_port);
		return sin6->sin6_port != me->sin6_port ||
		    memcmp(&sin6->sin6_addr, &me->sin6_addr, 16) != 0;
	}
	return false;
}

/* A direct connection: reset at once, no banner, reported so the parent can count it. */
static void
trap_refuse(struct trap *t, struct trap_session *s)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	strlcpy_sg(s->report.reason, "direct", sizeof(s->report.reason));
	(void)send(t->parent, &s->report, sizeof(s->report), MSG_NOSIGNAL);
	close(s->fd);
	s->fd = -1;
}

static void
trap_accept(struct trap *t, int lfd, int family)
{
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	struct epoll_event ev = { .events = EPOLLIN };
	struct trap_session *s = NULL;
	int fd;

	while ((fd = accept4(lfd, (struct sockaddr *)&peer, &plen,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		size_t i;

		for (i = 0; i < t->cfg->trap_sessions; i++)
			if (t->sessions[i].fd < 0) {
				s = &t->sessions[i];
				break;
			}
		if (s == NULL) {
			(void)send(fd, "421 4.3.2 Too busy, try later\r\n", 31, MSG_NOSIGNAL |
			    MSG_DONTWAIT);
			close(fd);
			plen = sizeof(peer);
			continue;
		}
		memset(s, 0, sizeof(*s));
		s->fd = fd;
		s->last = time(NULL);
		s->report.family = family;
		if (family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&peer;

			memcpy(s->report.src, &sin->sin_addr, 4);
			s->report.sport = ntohs(sin->sin_port);
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&peer;

			memcpy(s->report.src, &sin6->sin6_addr, 16);
			s->report.sport = ntohs(sin6->sin6_port);
		}
		if (!trap_original_dst(s, family)) {
			trap_refuse(t, s);
			s = NULL;
			plen = sizeof(peer);
			continue;
		}
		ev.data.u64 = i;
		if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			s->fd = -1;
		} else
			trap_session_send(s, t->banner);
		s = NULL;
		plen = sizeof(peer);
	}
}

static void
trap_read(struct trap *t, struct trap_session *s)
{
	const char *reason;
	char buf[8192];
	ssize_t n;

	while ((n = recv(s->fd, buf, sizeof(buf), 0)) > 0)
		if ((reason = trap_session_feed(s, t->cfg, buf, (size_t)n)) != NULL) {
			trap_end(t, s, reason);
			return;
		}
	if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		trap_end(t, s, "closed");
}

static void
trap_expire(struct trap *t, time_t now)
{
	for (size_t i = 0; i < t->cfg->trap_sessions; i++) {
		struct trap_session *s = &t->sessions[i];

		if (s->fd >= 0 && now - s->last >= (time_t)t->cfg->trap_timeout) {
			trap_session_send(s, "421 4.4.2 Idle too long\r\n");
			trap_end(t, s, "timeout");
		}
	}
}

/* The child: no privileges, an empty root, then serve until the parent goes. */
static void __attribute__((noreturn))
trap_child(struct trap *t, const char *chroot_dir)
{
	struct epoll_event evs[TRAP_EPOLL_BATCH], ev = { .events = EPOLLIN };
	struct passwd *pw = getpwnam(t->cfg->trap_user);
	uid_t uid = pw ? pw->pw_uid : 65534;
	gid_t gid = pw ? pw->pw_gid : 65534;
	pid_t ppid = getppid();
	/* The two listeners and the report socket; nothing else of the parent's. */
	int keep[] = { t->lfd4, t->lfd6, t->parent };
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (close_inherited(keep, sizeof(keep) / sizeof(keep[0])) < 0)
		_exit(1);
	if ((t->sessions = calloc(t->cfg->trap_sessions, sizeof(*t->sessions))) == NULL)
		_exit(1);
	for (size_t i = 0; i < t->cfg->trap_sessions; i++)
		t->sessions[i].fd = -1;
	if (chroot(chroot_dir) < 0 || chdir("/") < 0 || setgroups(0, NULL) < 0 ||
	    setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		_exit(1);
	/*
	 * After the uid change, which clears the death signal; a parent that
	 * died before it was set is caught by getppid().
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != ppid)
		_exit(1);
	if ((t->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		_exit(1);
	ev.data.u64 = TRAP_TAG_LISTEN4;
	epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->lfd4, &ev);
	ev.data.u64 = TRAP_TAG_LISTEN6;
	epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->lfd6, &ev);
	ev.data.u64 = TRAP_TAG_LISTEN6 - 1;	/* the parent: EOF means it is gone */
	epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->parent, &ev);
	for (;;) {
		int n = epoll_wait(t->epfd, evs, TRAP_EPOLL_BATCH, 1000);

		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;

			if (tag == TRAP_TAG_LISTEN4)
				trap_accept(t, t->lfd4, AF_INET);
			else if (tag == TRAP_TAG_LISTEN6)
				trap_accept(t, t->lfd6, AF_INET6);
			else if (tag == TRAP_TAG_LISTEN6 - 1)
				_exit(0);
			else if (tag < t->cfg->trap_sessions && t->sessions[tag].fd >= 0)
				trap_read(t, &t->sessions[tag]);
		}
		trap_expire(t, time(NULL));
	}
}

pid_t
trap_start(const struct config *cfg, const char *chroot_dir, int *report_fd, char *err,
    size_t errlen)
{
	struct trap t = { .cfg = cfg, .lfd4 = -1, .lfd6 = -1 };
	int sp[2];
	pid_t pid;

	if (ensure_parent_dir(chroot_dir, 0755) < 0 ||
	    (mkdir(chroot_dir, 0755) < 0 && errno != EEXIST)) {
		snprintf(err, errlen, "trap chroot %s: %s", chroot_dir, strerror(errno));
		return -1;
	}
	if ((t.lfd4 = trap_listen(AF_INET, cfg->trap_port, err, errlen)) < 0)
		return -1;
	if ((t.lfd6 = trap_listen(AF_INET6, cfg->trap_port, err, errlen)) < 0) {
		close(t.lfd4);
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		goto fail;
	}
	snprintf(t.banner, sizeof(t.banner), "220 localhost ESMTP\r\n");
	if ((pid = fork()) < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		goto fail;
	}
	if (pid == 0) {
		close(sp[0]);
		t.parent = sp[1];
		trap_child(&t, chroot_dir);
	}
	close(sp[1]);
	close(t.lfd4);
	close(t.lfd6);
	*report_fd = sp[0];
	return pid;
fail:
	close(t.lfd4);
	close(t.lfd6);
	return -1;
}

/* A report from the child: less trusted than us, so every string is re-terminated. */
int
trap_read_report(int fd, struct trap_report *r)
{
	ssize_t n = recv(fd, r, sizeof(*r), MSG_DONTWAIT);
	struct smtp_info *m = &r->info;

	if (n < 0)
		return -1;
	if (n != (ssize_t)sizeof(*r) || (r->family != AF_INET && r->family != AF_INET6)) {
		errno = n == 0 ? EPIPE : EPROTO;
		return -1;
	}
#define TERM(f)	((f)[sizeof(f) - 1] = '\0')
	TERM(r->reason); TERM(m->helo); TERM(m->mail_from); TERM(m->mail_params);
	TERM(m->auth_mech); TERM(m->auth_user); TERM(m->tls_sni); TERM(m->subject);
	TERM(m->header_from); TERM(m->header_to); TERM(m->message_id); TERM(m->x_mailer);
	TERM(m->php_script); TERM(m->reply);
	for (size_t i = 0; i < SMTP_RCPT_KEEP; i++)
		TERM(m->rcpt_to[i]);
#undef TERM
	if (m->nrcpt_kept > SMTP_RCPT_KEEP)
		m->nrcpt_kept = SMTP_RCPT_KEEP;
	m->inspect = NULL;
	m->proto = NULL;
	return 0;
}
