/*
 * control.c — the control socket: a unix stream socket, mode 0600, root peers
 * only (SO_PEERCRED), one request line per connection, bounded clients and
 * bytes. Like OpenSMTPD's control.c it refuses to start over a live listener.
 * The daemon side never blocks on a slow client for long (non-blocking reads,
 * a send timeout) and never crashes on bad input: it replies with an error.
 * control_call() is the CLI side.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "smtpguard.h"

#define CTL_SEND_TIMEOUT_MS	1000	/* a client that will not read is cut */
#define CTL_REPLY_MAX		(4 * 1024 * 1024)	/* the CLI refuses longer replies */
/*
 * How long the CLI waits on the daemon for each step (connect, send, each read).
 * A reload of 4,096 exception uids answers in well under a second; a daemon
 * that is stopped (SIGSTOP, a debugger) or wedged never does.
 */
#define CTL_CALL_TIMEOUT_S	5

struct ctl_client {
	int	 fd;		/* -1: slot free */
	uid_t	 peer;
	time_t	 since;
	size_t	 len;
	char	 buf[CTL_REQUEST_MAX + 1];
};

struct control {
	int			 fd;
	int			 epfd;
	ctl_handler		 handler;
	void			*arg;
	char			 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct ctl_client	 clients[CTL_MAX_CLIENTS];
};

static int
control_addr(const char *path, struct sockaddr_un *sun, char *err, size_t errlen)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlcpy_sg(sun->sun_path, path, sizeof(sun->sun_path)) >= sizeof(sun->sun_path)) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

struct control *
control_open(const char *path, int epfd, uint64_t listen_tag, ctl_handler handler,
    void *arg, char *err, size_t errlen)
{
	struct control *c;
	struct sockaddr_un sun;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = listen_tag };
	mode_t old_umask;
	int probe, saved;

	if (control_addr(path, &sun, err, errlen) < 0)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
		c->clients[i].fd = -1;
	c->epfd = epfd;
	c->handler = handler;
	c->arg = arg;
	strlcpy_sg(c->path, path, sizeof(c->path));

	/* A daemon already answering here: do not steal its socket. */
	if ((probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0) {
		if (connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(probe);
			snprintf(err, errlen, "%s: another smtpguardd is listening", path);
			errno = EADDRINUSE;
			goto err1;
		}
		close(probe);
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "unlink %s: %s", path, strerror(errno));
		goto err1;
	}
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto err1;
	}
	old_umask = umask(S_IXUSR | S_IRWXG | S_IRWXO);
	if (bind(c->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		saved = errno;
		umask(old_umask);
		snprintf(err, errlen, "bind %s: %s", path, strerror(saved));
		goto err2;
	}
	umask(old_umask);
	if (chmod(path, S_IRUSR | S_IWUSR) < 0 || listen(c->fd, CTL_MAX_CLIENTS) < 0 ||
	    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto err3;
	}
	return c;

err3:
	unlink(path);
err2:
	close(c->fd);
err1:
	saved = errno;
	free(c);
	errno = saved;
	return NULL;
}

static void
control_drop(struct control *c, struct ctl_client *cl)
{
	epoll_ctl(c->epfd, EPOLL_CTL_DEL, cl->fd, NULL);
	close(cl->fd);
	cl->fd = -1;
	cl->len = 0;
}

void
control_close(struct control *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
		if (c->clients[i].fd >= 0)
			control_drop(c, &c->clients[i]);
	close(c->fd);
	unlink(c->path);
	free(c);
}

/* Writes all of it or gives up after CTL_SEND_TIMEOUT_MS without progress. */
static int
control_send_all(int fd, const char *p, size_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };

	while (len > 0) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w > 0) {
			p += w;
			len -= (size_t)w;
		} else if (w < 0 && errno == EINTR)
			continue;
		else if (w < 0 && errno != EAGAIN)
			return -1;
		else if (poll(&pfd, 1, CTL_SEND_TIMEOUT_MS) <= 0)
			return -1;
	}
	return 0;
}

static void
control_send(int fd, const char *line)
{
	if (control_send_all(fd, line, strlen(line)) == 0)
		(void)control_send_all(fd, "\n", 1);
}

static void
control_reply_error(int fd, const char *msg)
{
	json_t *o = json_pack("{s:i, s:b, s:s}", "v", CTL_VERSION, "ok", 0, "error", msg);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	if (s != NULL)
		control_send(fd, s);
	free(s);
	json_decref(o);
}

void
control_accept(struct control *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct epoll_event ev = { .events = EPOLLIN };
	struct ctl_client *cl = NULL;
	int fd;

	while ((fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
		    cred.uid != 0) {
			control_reply_error(fd, "permission denied: the control socket is for root");
			log_warnx("control: refused peer uid %ld pid %ld",
			    (long)cred.uid, (long)cred.pid);
			close(fd);
			continue;
		}
		cl = NULL;
		for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
			if (c->clients[i].fd < 0) {
				cl = &c->clients[i];
				ev.data.u64 = CTL_TAG_CLIENT + i;
				break;
			}
		if (cl == NULL) {
			control_reply_error(fd, "too many control clients, try again");
			close(fd);
			continue;
		}
		if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			log_warn("control: epoll_ctl");
			close(fd);
			continue;
		}
		cl->fd = fd;
		cl->peer = cred.uid;
		cl->len = 0;
		cl->since = time(NULL);
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		log_warn("control: accept");
}

void
control_client_event(struct control *c, uint64_t tag)
{
	struct ctl_client *cl;
	struct ctl_request req;
	char err[256], *nl, *reply;
	ssize_t n;

	if (tag < CTL_TAG_CLIENT || tag - CTL_TAG_CLIENT >= CTL_MAX_CLIENTS)
		return;
	cl = &c->clients[tag - CTL_TAG_CLIENT];
	if (cl->fd < 0)
		return;
	for (;;) {
		if (cl->len == CTL_REQUEST_MAX) {
			snprintf(err, sizeof(err), "request too large (at most %d bytes)",
			    CTL_REQUEST_MAX);
			control_reply_error(cl->fd, err);
			control_drop(c, cl);
			return;
		}
		n = recv(cl->fd, cl->buf + cl->len, CTL_REQUEST_MAX - cl->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {	/* gone before finishing its line */
			control_drop(c, cl);
			return;
		}
		cl->len += (size_t)n;
		cl->buf[cl->len] = '\0';
		if ((nl = memchr(cl->buf, '\n', cl->len)) != NULL)
			break;
	}
	if (ctl_parse_request(cl->buf, (size_t)(nl - cl->buf), &req, err, sizeof(err)) < 0) {
		control_reply_error(cl->fd, err);
		control_drop(c, cl);
		return;
	}
	reply = c->handler(&req, cl->peer, c->arg);
	if (reply != NULL)
		control_send(cl->fd, reply);
	else
		control_reply_error(cl->fd, "internal error");
	free(reply);
	control_drop(c, cl);
}

void
control_expire(struct control *c, time_t now)
{
	for (size_t i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct ctl_client *cl = &c->clients[i];

		if (cl->fd >= 0 && now - cl->since > CTL_CLIENT_TIMEOUT) {
			control_reply_error(cl->fd, "timed out waiting for the request");
			control_drop(c, cl);
		}
	}
}

/* Says so in err and leaves errno ETIMEDOUT, which callers tell from "not running". */
static void
control_timed_out(const char *path, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: smtpguardd did not answer within %d s (is it stopped or "
	    "hung? see `systemctl status smtpguard`); the fence stays as it is",
	    path, CTL_CALL_TIMEOUT_S);
	errno = ETIMEDOUT;
}

static int
control_connect(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct timeval tv = { .tv_sec = CTL_CALL_TIMEOUT_S };
	int fd;

	if (control_addr(path, &sun, err, errlen) < 0)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* Unix stream connect() waits on a full backlog with the send timeout. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int saved = errno;

		if (saved == EAGAIN || saved == EWOULDBLOCK) {
			control_timed_out(path, err, errlen);
			saved = ETIMEDOUT;
		} else
			snprintf(err, errlen, "%s: %s", path, strerror(saved));
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

char *
control_call(const char *path, enum ctl_cmd cmd, const char *arg, char *err, size_t errlen)
{
	char *req, *buf = NULL, *nbuf;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd, saved;

	if ((req = ctl_format_request(cmd, arg)) == NULL) {
		snprintf(err, errlen, "cannot encode the request");
		return NULL;
	}
	if ((fd = control_connect(path, err, errlen)) < 0) {
		free(req);
		return NULL;
	}
	if (write(fd, req, strlen(req)) < 0 || write(fd, "\n", 1) < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			control_timed_out(path, err, errlen);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	for (;;) {
		if (len + 4096 + 1 > cap) {
			if (cap >= CTL_REPLY_MAX) {
				snprintf(err, errlen, "reply too large");
				goto fail;
			}
			cap = cap ? cap * 2 : 16384;
			if ((nbuf = realloc(buf, cap)) == NULL) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			buf = nbuf;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			control_timed_out(path, err, errlen);
			goto fail;
		}
		if (n < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len == 0) {
		snprintf(err, errlen, "%s: the daemon closed without replying", path);
		goto fail;
	}
	buf[len] = '\0';
	close(fd);
	free(req);
	return buf;
fail:
	saved = errno;
	close(fd);
	free(req);
	free(buf);
	errno = saved;
	return NULL;
}
