/*
 * gate_exim.c — the gate's Exim front end, in the gate child ([mail]
 * mta = exim): a unix stream socket that Exim's ACLs reach with
 * ${readsocket} (conf/exim4/), one connection per message. Each
 * connection sends one request (eximreq.c) and shuts its side down; the
 * facts go to smtpguardd over the gate's wire (gate_ask in gate.c) and its
 * verdict goes back as one line, "pass" or "hold|defer|reject TEXT". No
 * verdict in time, or a request it cannot read: what [mail] fail says
 * (pass, or defer). It never decides, counts or logs (the parent does) and
 * runs after the drop: unprivileged, chrooted, one poll loop, no threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "smtpguard.h"

#define EXIM_CONNS_MAX	64	/* Exim processes asking at once; more wait in the backlog */
#define EXIM_BACKLOG	64
#define EXIM_READ_MS	10000	/* a request is a few hundred bytes: 10 s is a stuck peer */

struct exim_conn {
	int		 fd;
	size_t		 len;
	uint64_t	 deadline;
	char		 buf[EXIMREQ_MAX + 2];	/* one byte more than a request may be */
};

/* As root, before the drop: the socket, root:GROUP 0660, no stale one left. */
int
gate_exim_listen(const char *path, gid_t group)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat sb;
	int fd;

	if (strlcpy_sg(sun.sun_path, path, sizeof(sun.sun_path)) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* Only a socket is replaced: a file of another kind there is a mistake. */
	if (lstat(path, &sb) == 0 && (!S_ISSOCK(sb.st_mode) || unlink(path) < 0))
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return -1;
	umask(0117);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    fchownat(AT_FDCWD, path, 0, group, 0) < 0 || fchmodat(AT_FDCWD, path, 0660, 0) < 0 ||
	    listen(fd, EXIM_BACKLOG) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* One request read: ask the parent, answer, and the connection is done. */
static int
answer(struct exim_conn *c, bool fail_tempfail)
{
	static struct gate_request req;
	struct gate_reply rep;
	char line[EXIMREQ_REPLY_MAX], err[256];
	enum mail_action a = fail_tempfail ? MAIL_DEFER : MAIL_PASS;
	const char *reason = "mail gate unavailable, try again later";
	int rc = 0;

	memset(&req, 0, sizeof(req));
	if (eximreq_parse(c->buf, c->len, &req.facts, err, sizeof(err)) < 0)
		reason = "mail gate: request not understood";
	else if ((rc = gate_ask(&req, &rep)) == 0) {
		a = (enum mail_action)rep.action;
		reason = rep.reason[0] ? rep.reason : "sending limit reached";
	}
	if (eximreq_reply(a, reason, line, sizeof(line)) > 0)
		(void)send(c->fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);
	return rc;
}

static void
conn_close(struct exim_conn *c)
{
	close(c->fd);
	c->fd = -1;
	c->len = 0;
}

/* The loop; returns the child's exit status when the parent is gone. */
int
gate_exim_main(int listener, bool fail_tempfail)
{
	static struct exim_conn conns[EXIM_CONNS_MAX];
	struct pollfd pfd[EXIM_CONNS_MAX + 1];

	for (size_t i = 0; i < EXIM_CONNS_MAX; i++)
		conns[i].fd = -1;
	for (;;) {
		size_t np = 0, slot[EXIM_CONNS_MAX + 1], used = 0;
		uint64_t now = mono_ns();
		int wait = -1;

		for (size_t i = 0; i < EXIM_CONNS_MAX; i++) {
			struct exim_conn *c = &conns[i];

			if (c->fd < 0)
				continue;
			if (now >= c->deadline) {
				conn_close(c);	/* Exim's own timeout has given up on it */
				continue;
			}
			used++;
			if (wait < 0 || (c->deadline - now) / 1000000 + 1 < (uint64_t)wait)
				wait = (int)((c->deadline - now) / 1000000 + 1);
			pfd[np] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
			slot[np++] = i;
		}
		/* Full: new peers wait in the backlog until one is done. */
		if (used < EXIM_CONNS_MAX) {
			pfd[np] = (struct pollfd){ .fd = listener, .events = POLLIN };
			slot[np++] = EXIM_CONNS_MAX;
		}
		if (getppid() == 1)
			return 0;	/* the parent is gone; PDEATHSIG is the usual end */
		if (poll(pfd, np, wait < 0 ? 1000 : wait) < 0) {
			if (errno == EINTR)
				continue;
			return 6;
		}
		for (size_t k = 0; k < np; k++) {
			struct exim_conn *c;
			ssize_t n;

			if (pfd[k].revents == 0)
				continue;
			if (slot[k] == EXIM_CONNS_MAX) {
				int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

				for (size_t i = 0; fd >= 0 && i < EXIM_CONNS_MAX; i++)
					if (conns[i].fd < 0) {
						conns[i].fd = fd;
						conns[i].len = 0;
						conns[i].deadline = mono_ns() +
						    (uint64_t)EXIM_READ_MS * 1000000;
						fd = -1;
					}
				if (fd >= 0)
					close(fd);
				continue;
			}
			c = &conns[slot[k]];
			n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n < 0) {
				conn_close(c);
				continue;
			}
			c->len += (size_t)n;
			c->buf[c->len] = '\0';
			/*
			 * The request ends where Exim shut its side down (readsocket's
			 * default), or at a blank line for a peer that keeps it open.
			 */
			if (n == 0 || c->len == sizeof(c->buf) - 1 ||
			    (c->len >= 2 && memcmp(c->buf + c->len - 2, "\n\n", 2) == 0)) {
				int rc = answer(c, fail_tempfail);

				conn_close(c);
				if (rc == -2)
					return 0;	/* the parent is gone: so are we */
			}
		}
	}
}
