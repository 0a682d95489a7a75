/*
 * sgprobe — the tests' client and stand-in mail exchanger.
 *
 *   sgprobe connect [-t MS] [-q] HOST PORT
 *	connect once; print "connected", "refused", "timeout" or "error: why",
 *	and the time connect() took. With -q, also read the banner and QUIT.
 *	Exit 0 connected, 1 refused, 3 timeout, 4 anything else.
 *   sgprobe hold [-t MS] HOST PORT FILE
 *	connect, print "connected", then keep the flow open and, each time FILE
 *	appears, send a NOOP, expect a reply, print "alive" and remove FILE;
 *	exits 0 when the server closes after QUIT is asked for by a FILE holding "quit".
 *   sgprobe send HOST PORT FILE
 *	connect, send FILE's bytes, print every reply until the server closes
 *	or is quiet for 2 s. Exit 0 if connected.
 *   sgprobe many -n N HOST PORT
 *	hold N connections at once, print "ok K" (banner 220), "busy K" (421)
 *	and "other K", then close them all.
 *   sgprobe flood -n N HOST PORT
 *	N connects one after another; prints "refused K", "connected K",
 *	"other K" and "seconds S". Exit 0.
 *   sgprobe ctl SOCKET FILE
 *	send FILE's bytes to a unix stream socket, print the reply; exit 0 if
 *	any reply came, 1 if connect failed (errno printed), 4 otherwise.
 *   sgprobe listen [-b BANNER] LOG ADDR PORT [PORT...]
 *	a tiny SMTP server on each port: a banner ("220 mx.test ESMTP
 *	sgprobe", or BANNER), 250 to everything, 354 to DATA, 221 to QUIT.
 *	Appends "accept ADDR PORT" per connection to LOG, "data N" per message.
 *	Prints "ready" once listening. Runs until killed.
 * Only ever used against loopback or the tests' own namespaces.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PORTS 16

static int
resolve(const char *host, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST |
	    AI_NUMERICSERV }, *res;

	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static double
elapsed_us(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) * 1e6 + (double)(b.tv_nsec - a->tv_nsec) / 1e3;
}

/* Returns the connected fd, or -1 with *outcome set to the exit code. */
static int
do_connect(const char *host, const char *port, int timeout_ms, int *outcome)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct timespec t0;
	struct pollfd pfd;
	int fd, err = 0;
	socklen_t elen = sizeof(err);

	if (resolve(host, port, &ss, &len) < 0) {
		printf("error: bad address %s port %s\n", host, port);
		*outcome = 4;
		return -1;
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0) {
		printf("error: socket: %s\n", strerror(errno));
		*outcome = 4;
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS)
		err = errno;
	else {
		pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
		if (poll(&pfd, 1, timeout_ms) == 0)
			err = ETIMEDOUT;
		else
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
	}
	if (err == 0) {
		printf("connected %.0f us\n", elapsed_us(&t0));
		*outcome = 0;
		fcntl(fd, F_SETFL, 0);
		return fd;
	}
	close(fd);
	if (err == ECONNREFUSED) {
		printf("refused %.0f us\n", elapsed_us(&t0));
		*outcome = 1;
	} else if (err == ETIMEDOUT) {
		printf("timeout %.0f us\n", elapsed_us(&t0));
		*outcome = 3;
	} else {
		printf("error: %s\n", strerror(err));
		*outcome = 4;
	}
	return -1;
}

static int
read_reply(int fd, char *buf, size_t len, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return -1;
	if ((n = read(fd, buf, len - 1)) <= 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

static int
cmd_connect(int argc, char **argv)
{
	int timeout_ms = 3000, quit = 0, ch, outcome, fd;
	char buf[512];

	while ((ch = getopt(argc, argv, "t:q")) != -1) {
		if (ch == 't')
			timeout_ms = atoi(optarg);
		else if (ch == 'q')
			quit = 1;
		else
			return 4;
	}
	if (argc - optind != 2)
		return 4;
	if ((fd = do_connect(argv[optind], argv[optind + 1], timeout_ms, &outcome)) < 0)
		return outcome;
	if (quit) {
		if (read_reply(fd, buf, sizeof(buf), timeout_ms) < 0 || strncmp(buf, "220", 3)) {
			printf("error: no banner\n");
			return 4;
		}
		if (write(fd, "QUIT\r\n", 6) != 6 ||
		    read_reply(fd, buf, sizeof(buf), timeout_ms) < 0 || strncmp(buf, "221", 3)) {
			printf("error: no reply to QUIT\n");
			return 4;
		}
	}
	close(fd);
	return 0;
}

static int
cmd_hold(int argc, char **argv)
{
	int timeout_ms = 3000, outcome, fd;
	char buf[512], what[16];
	FILE *fp;

	if (argc == 6 && strcmp(argv[1], "-t") == 0) {
		timeout_ms = atoi(argv[2]);
		argv += 2;
		argc -= 2;
	}
	if (argc != 4)
		return 4;
	if ((fd = do_connect(argv[1], argv[2], timeout_ms, &outcome)) < 0)
		return outcome;
	fflush(stdout);
	if (read_reply(fd, buf, sizeof(buf), timeout_ms) < 0)
		return 4;
	for (;;) {
		if ((fp = fopen(argv[3], "r")) == NULL) {
			nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
			continue;
		}
		what[0] = '\0';
		if (fgets(what, sizeof(what), fp) == NULL)
			what[0] = '\0';
		fclose(fp);
		unlink(argv[3]);
		if (strncmp(what, "quit", 4) == 0) {
			if (write(fd, "QUIT\r\n", 6) != 6 ||
			    read_reply(fd, buf, sizeof(buf), timeout_ms) < 0)
				return 4;
			printf("closed\n");
			return 0;
		}
		if (write(fd, "NOOP\r\n", 6) != 6 ||
		    read_reply(fd, buf, sizeof(buf), timeout_ms) < 0) {
			printf("dead\n");
			fflush(stdout);
			return 4;
		}
		printf("alive\n");
		fflush(stdout);
	}
}

static FILE *listen_log;
static const char *listen_banner = "220 mx.test ESMTP sgprobe";

static void
serve(int fd)
{
	char buf[4096];
	size_t len = 0, data_bytes = 0;
	ssize_t n;
	int in_data = 0;

	snprintf(buf, sizeof(buf), "%s\r\n", listen_banner);
	if (write(fd, buf, strlen(buf)) < 0)
		_exit(0);
	while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0) {
		char *line, *nl;

		len += (size_t)n;
		buf[len] = '\0';
		line = buf;
		while ((nl = strstr(line, "\r\n")) != NULL) {
			const char *r;

			*nl = '\0';
			if (in_data) {
				if (strcmp(line, ".") == 0) {
					in_data = 0;
					fprintf(listen_log, "data %zu\n", data_bytes);
					r = "250 2.0.0 queued\r\n";
				} else {
					data_bytes += strlen(line) + 2;
					r = NULL;
				}
			} else if (strncasecmp(line, "DATA", 4) == 0) {
				in_data = 1;
				data_bytes = 0;
				r = "354 go ahead\r\n";
			} else if (strncasecmp(line, "QUIT", 4) == 0) {
				(void)!write(fd, "221 bye\r\n", 9);
				_exit(0);
			} else if (strncasecmp(line, "EHLO", 4) == 0)
				r = "250-mx.test\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n"
				    "250 8BITMIME\r\n";
			else if (strncasecmp(line, "AUTH", 4) == 0)
				r = "235 2.7.0 Authentication successful\r\n";
			else
				r = "250 ok\r\n";
			if (r != NULL && write(fd, r, strlen(r)) < 0)
				_exit(0);
			line = nl + 2;
		}
		len -= (size_t)(line - buf);
		memmove(buf, line, len);
		if (len == sizeof(buf) - 1)
			len = 0;
	}
	_exit(0);
}

static int
cmd_listen(int argc, char **argv)
{
	struct pollfd pfd[MAX_PORTS];
	int nfd = 0, one = 1;
	FILE *log;

	if (argc >= 3 && strcmp(argv[1], "-b") == 0) {
		listen_banner = argv[2];
		argv += 2;
		argc -= 2;
	}
	if (argc < 4 || argc - 3 > MAX_PORTS)
		return 4;
	if ((log = fopen(argv[1], "a")) == NULL)
		return 4;
	setvbuf(log, NULL, _IOLBF, 0);
	listen_log = log;
	signal(SIGCHLD, SIG_IGN);
	for (int i = 3; i < argc; i++) {
		struct sockaddr_storage ss;
		socklen_t len;
		int fd;

		if (resolve(argv[2], argv[i], &ss, &len) < 0 ||
		    (fd = socket(ss.ss_family, SOCK_STREAM, 0)) < 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0) {
			fprintf(stderr, "sgprobe: listen %s %s: %s\n", argv[2], argv[i],
			    strerror(errno));
			return 4;
		}
		pfd[nfd++] = (struct pollfd){ .fd = fd, .events = POLLIN };
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		if (poll(pfd, (nfds_t)nfd, -1) < 0 && errno != EINTR)
			return 4;
		for (int i = 0; i < nfd; i++) {
			struct sockaddr_storage peer;
			socklen_t plen = sizeof(peer);
			char host[64], port[16];
			int c;

			if (!(pfd[i].revents & POLLIN))
				continue;
			if ((c = accept(pfd[i].fd, (struct sockaddr *)&peer, &plen)) < 0)
				continue;
			getnameinfo((struct sockaddr *)&peer, plen, host, sizeof(host), port,
			    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
			fprintf(log, "accept %s %s -> port %s\n", host, port, argv[3 + i]);
			if (fork() == 0) {
				/* A session whose client was reset by the fence never ends by
				 * itself: die with the listener, or after a quiet 20 s. */
				struct timeval quiet = { 20, 0 };

				prctl(PR_SET_PDEATHSIG, SIGKILL);
				setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &quiet, sizeof(quiet));
				for (int k = 0; k < nfd; k++)
					close(pfd[k].fd);
				serve(c);
			}
			close(c);
		}
	}
}

static int
cmd_send(int argc, char **argv)
{
	char buf[65536];
	struct pollfd pfd;
	ssize_t n;
	FILE *in;
	int fd, outcome;

	if (argc != 4)
		return 4;
	if ((fd = do_connect(argv[1], argv[2], 3000, &outcome)) < 0)
		return outcome;
	if ((in = fopen(argv[3], "r")) == NULL)
		return 4;
	signal(SIGPIPE, SIG_IGN);
	while ((n = (ssize_t)fread(buf, 1, sizeof(buf), in)) > 0)
		if (write(fd, buf, (size_t)n) < 0)
			break;
	fclose(in);
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	while (poll(&pfd, 1, 2000) > 0 && (n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	close(fd);
	return 0;
}

static int
cmd_many(int argc, char **argv)
{
	long n, ok = 0, busy = 0, other = 0;
	int *fds, outcome;
	char buf[256];

	if (argc != 5 || strcmp(argv[1], "-n") != 0 || (n = atol(argv[2])) <= 0 || n > 4096)
		return 4;
	if ((fds = calloc((size_t)n, sizeof(*fds))) == NULL)
		return 4;
	FILE *saved = stdout;
	stdout = fopen("/dev/null", "w");
	for (long i = 0; i < n; i++)
		fds[i] = do_connect(argv[3], argv[4], 3000, &outcome);
	fclose(stdout);
	stdout = saved;
	for (long i = 0; i < n; i++) {
		if (fds[i] < 0 || read_reply(fds[i], buf, sizeof(buf), 3000) < 0)
			other++;
		else if (strncmp(buf, "220", 3) == 0)
			ok++;
		else if (strncmp(buf, "421", 3) == 0)
			busy++;
		else
			other++;
	}
	for (long i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	printf("ok %ld\nbusy %ld\nother %ld\n", ok, busy, other);
	return 0;
}

static int
cmd_flood(int argc, char **argv)
{
	long n, refused = 0, connected = 0, other = 0;
	struct timespec t0;
	int outcome, fd;

	if (argc != 5 || strcmp(argv[1], "-n") != 0 || (n = atol(argv[2])) <= 0)
		return 4;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* do_connect prints a line per attempt: keep them out of the summary. */
	FILE *saved = stdout;
	stdout = fopen("/dev/null", "w");
	for (long i = 0; i < n; i++) {
		if ((fd = do_connect(argv[3], argv[4], 2000, &outcome)) >= 0)
			close(fd);
		if (outcome == 0)
			connected++;
		else if (outcome == 1)
			refused++;
		else
			other++;
	}
	fclose(stdout);
	stdout = saved;
	printf("refused %ld\nconnected %ld\nother %ld\nseconds %.0f\n", refused, connected,
	    other, elapsed_us(&t0) / 1e6);
	return 0;
}

static int
cmd_ctl(int argc, char **argv)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char buf[65536];
	ssize_t n;
	FILE *in;
	int fd, got = 0;

	if (argc != 3 || strlen(argv[1]) >= sizeof(sun.sun_path))
		return 4;
	strcpy(sun.sun_path, argv[1]);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
		return 4;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		printf("connect: %s\n", strerror(errno));
		return 1;
	}
	if ((in = fopen(argv[2], "r")) == NULL)
		return 4;
	signal(SIGPIPE, SIG_IGN);
	while ((n = (ssize_t)fread(buf, 1, sizeof(buf), in)) > 0)
		if (write(fd, buf, (size_t)n) < 0)
			break;	/* the daemon may cut us off mid-request: read its reply */
	fclose(in);
	shutdown(fd, SHUT_WR);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		fwrite(buf, 1, (size_t)n, stdout);
		got = 1;
	}
	return got ? 0 : 4;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "send") == 0)
		return cmd_send(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "many") == 0)
		return cmd_many(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "flood") == 0)
		return cmd_flood(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
		return cmd_ctl(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "connect") == 0)
		return cmd_connect(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "hold") == 0)
		return cmd_hold(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "listen") == 0)
		return cmd_listen(argc - 1, argv + 1);
	fprintf(stderr, "usage: sgprobe connect|hold|ctl|listen ...\n");
	return 4;
}
