/*
 * sgload — the benchmark's load generator.
 *
 *   sgload connect [-n N | -d SECONDS] [-c CLIENTS] [-qFH] [-t MS] HOST PORT
 *	CLIENTS threads connect one after another, N connects in all or for
 *	SECONDS; with -q each reads the banner and sends QUIT; with -H each
 *	sends an HTTP GET (the client speaks first) and reads the answer to
 *	its end (an HTTP flow for detect_any_port to look at). Prints one JSON
 *	object: counts by outcome, seconds, rate, and the latency percentiles
 *	(microseconds) of connect() alone, or of connect+banner+QUIT with -q.
 *	-t bounds each connect and each reply (default 5000 ms). With -F each
 *	connect is made by a new child process: a first-time sender every time
 *	(its latency then includes the fork).
 *   sgload mail -n N -s BYTES HOST PORT [PORT...]
 *	N SMTP transactions of one message of BYTES each, one after another;
 *	prints JSON: messages sent, seconds, bytes/s, and the percentiles of
 *	one transaction's time (connect to 221, microseconds). With more ports, N
 *	to each port, alternating, and one JSON line per port (its seconds:
 *	the sum of its own transactions).
 *   sgload procs -n N [-u UID] [-f FDS]
 *	N idle processes (as UID if given), each holding FDS extra descriptors;
 *	prints "ready" once all exist, and lives until killed; they die with it.
 *   sgload serve [-H BYTES] PORT
 *	a stand-in mail exchanger on [::]:PORT for the other modes: SERVE_THREADS
 *	threads accept from one listener with a deep backlog; each session gets
 *	a banner, 250 to commands, 354 to DATA, 250 after the dot, 221 to QUIT.
 *	With -H it is a web server instead: it waits for a request's blank line
 *	and answers 200 with BYTES of body, then closes. Prints "ready" once
 *	listening; runs until killed.
 *   sgload events -n N
 *   sgload mtalog -b BYTES
 *	N realistic event lines (attempts of 200 users, 50 scripts) on stdout,
 *	one per second of time backwards from now.
 * Only used against the benchmark's own namespaces.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CLIENTS_MAX	64
#define SERVE_THREADS	16
#define SERVE_BACKLOG	4096
#define SAMPLES_MAX	(4 * 1000 * 1000)	/* per run; later samples are counted, not kept */

enum outcome { OUT_OK, OUT_REFUSED, OUT_TIMEOUT, OUT_OTHER, OUT_COUNT };

struct run {
	struct sockaddr_storage	 addr;
	socklen_t		 addrlen;
	bool			 quit;		/* banner + QUIT after connect */
	bool			 http;		/* GET, then read to the end */
	bool			 fork_each;	/* each connect from a new process */
	int			 timeout_ms;
	uint64_t		 total;		/* connects to make; 0: until deadline */
	uint64_t		 deadline_ns;
	uint64_t		 started;	/* connects claimed so far */
	uint64_t		 counts[OUT_COUNT];
	uint64_t		*samples;
	size_t			 nsamples;
	pthread_mutex_t		 mu;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
usage(void)
{
	fprintf(stderr, "usage: sgload connect [-n N | -d S] [-c C] [-qFH] [-t MS] HOST PORT\n"
	    "       sgload mail -n N -s BYTES HOST PORT [PORT...]\n"
	    "       sgload procs -n N [-u UID] [-f FDS]\n"
	    "       sgload serve [-H BYTES] PORT\n"
	    "       sgload events -n N\n"
	    "       sgload mtalog -b BYTES\n");
	exit(2);
}

static void
resolve(const char *host, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST |
	    AI_NUMERICSERV }, *res;

	if (getaddrinfo(host, port, &hints, &res) != 0) {
		fprintf(stderr, "sgload: bad address %s port %s\n", host, port);
		exit(2);
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
}

/* Reads until a line ending in CRLF that is a final reply (no '-' after the code). */
static int
read_reply(int s, int timeout_ms)
{
	char buf[4096];
	size_t have = 0;

	for (;;) {
		struct pollfd pfd = { .fd = s, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -1;
		if ((n = read(s, buf + have, sizeof(buf) - 1 - have)) <= 0)
			return -1;
		have += (size_t)n;
		buf[have] = '\0';
		for (char *line = buf, *eol; (eol = strstr(line, "\r\n")) != NULL; line = eol + 2)
			if (eol - line >= 4 && line[3] == ' ')
				return atoi(line);
		if (have == sizeof(buf) - 1)
			have = 0;	/* a reply longer than the buffer: keep reading its end */
	}
}

/* Reads to the end of the stream; -1 on a reset, a timeout or no byte at all. */
static int
read_to_end(int s, int timeout_ms)
{
	char buf[16384];
	size_t got = 0;

	for (;;) {
		struct pollfd pfd = { .fd = s, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -1;
		if ((n = read(s, buf, sizeof(buf))) < 0)
			return -1;
		if (n == 0)
			return got > 0 ? 0 : -1;
		got += (size_t)n;
	}
}

static enum outcome
one_connect(struct run *r)
{
	int s = socket(r->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	enum outcome o = OUT_OK;

	struct timeval tv = { .tv_sec = r->timeout_ms / 1000,
	    .tv_usec = (r->timeout_ms % 1000) * 1000 };

	if (s < 0)
		return OUT_OTHER;
	/* Bounds connect() too: a dropped SYN ends in EINPROGRESS, not minutes of retries. */
	(void)setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(s, (struct sockaddr *)&r->addr, r->addrlen) < 0)
		o = errno == ECONNREFUSED ? OUT_REFUSED :
		    errno == ETIMEDOUT || errno == EINPROGRESS ? OUT_TIMEOUT : OUT_OTHER;
	else if (r->quit) {
		if (read_reply(s, r->timeout_ms) != 220 || write(s, "QUIT\r\n", 6) != 6 ||
		    read_reply(s, r->timeout_ms) != 221)
			o = OUT_OTHER;
	} else if (r->http) {
		static const char get[] = "GET /bench HTTP/1.0\r\nHost: mx.example\r\n\r\n";

		if (write(s, get, sizeof(get) - 1) != (ssize_t)sizeof(get) - 1 ||
		    read_to_end(s, r->timeout_ms) < 0)
			o = OUT_OTHER;
	}
	close(s);
	return o;
}

/* The connect in a child of its own; the outcome comes back as its exit status. */
static enum outcome
forked_connect(struct run *r)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return OUT_OTHER;
	if (pid == 0)
		_exit(one_connect(r));
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) >= OUT_COUNT)
		return OUT_OTHER;
	return (enum outcome)WEXITSTATUS(status);
}

static void *
client(void *arg)
{
	struct run *r = arg;

	for (;;) {
		uint64_t t0, dt;
		enum outcome o;

		pthread_mutex_lock(&r->mu);
		if ((r->total && r->started >= r->total) ||
		    (r->deadline_ns && now_ns() >= r->deadline_ns)) {
			pthread_mutex_unlock(&r->mu);
			return NULL;
		}
		r->started++;
		pthread_mutex_unlock(&r->mu);
		t0 = now_ns();
		o = r->fork_each ? forked_connect(r) : one_connect(r);
		dt = now_ns() - t0;
		pthread_mutex_lock(&r->mu);
		r->counts[o]++;
		if (r->nsamples < SAMPLES_MAX)
			r->samples[r->nsamples++] = dt;
		pthread_mutex_unlock(&r->mu);
	}
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
percentile_us(const uint64_t *sorted, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return (double)sorted[i] / 1000.0;
}

static int
cmd_connect(int argc, char **argv)
{
	struct run r = { .timeout_ms = 5000 };
	pthread_t th[CLIENTS_MAX];
	unsigned clients = 1;
	double seconds = 0, elapsed;
	uint64_t t0;
	int ch;

	while ((ch = getopt(argc, argv, "n:d:c:qt:FH")) != -1) {
		switch (ch) {
		case 'F': r.fork_each = true; break;
		case 'H': r.http = true; break;
		case 'n': r.total = strtoull(optarg, NULL, 10); break;
		case 'd': seconds = strtod(optarg, NULL); break;
		case 'c': clients = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'q': r.quit = true; break;
		case 't': r.timeout_ms = atoi(optarg); break;
		default: usage();
		}
	}
	if (argc - optind != 2 || clients == 0 || clients > CLIENTS_MAX ||
	    (r.total == 0) == (seconds <= 0) || (r.quit && r.http))
		usage();
	resolve(argv[optind], argv[optind + 1], &r.addr, &r.addrlen);
	if ((r.samples = malloc(SAMPLES_MAX * sizeof(*r.samples))) == NULL) {
		perror("sgload");
		return 1;
	}
	pthread_mutex_init(&r.mu, NULL);
	t0 = now_ns();
	if (seconds > 0)
		r.deadline_ns = t0 + (uint64_t)(seconds * 1e9);
	for (unsigned i = 0; i < clients; i++)
		if (pthread_create(&th[i], NULL, client, &r) != 0) {
			perror("sgload: thread");
			return 1;
		}
	for (unsigned i = 0; i < clients; i++)
		pthread_join(th[i], NULL);
	elapsed = (double)(now_ns() - t0) / 1e9;
	qsort(r.samples, r.nsamples, sizeof(*r.samples), cmp_u64);
	printf("{\"clients\":%u,\"connects\":%llu,\"ok\":%llu,\"refused\":%llu,"
	    "\"timeout\":%llu,\"other\":%llu,\"seconds\":%.3f,\"per_second\":%.0f,"
	    "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f}\n", clients,
	    (unsigned long long)r.started, (unsigned long long)r.counts[OUT_OK],
	    (unsigned long long)r.counts[OUT_REFUSED], (unsigned long long)r.counts[OUT_TIMEOUT],
	    (unsigned long long)r.counts[OUT_OTHER], elapsed, (double)r.started / elapsed,
	    percentile_us(r.samples, r.nsamples, 50), percentile_us(r.samples, r.nsamples, 99),
	    percentile_us(r.samples, r.nsamples, 99.9));
	free(r.samples);
	return 0;
}

static int
send_all(int s, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(s, buf, len);

		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One message: the headers, then BYTES of 76-column text, dot-terminated. */
static char *
make_message(size_t bytes, size_t *len)
{
	static const char head[] = "From: bench@example.org\r\nTo: rcpt@example.net\r\n"
	    "Subject: bench\r\n\r\n";
	char *m = malloc(sizeof(head) + bytes + 80);
	size_t n = sizeof(head) - 1;

	if (m == NULL)
		return NULL;
	memcpy(m, head, n);
	while (n < sizeof(head) - 1 + bytes) {
		memset(m + n, 'x', 76);
		memcpy(m + n + 76, "\r\n", 2);
		n += 78;
	}
	memcpy(m + n, ".\r\n", 3);
	*len = n + 3;
	return m;
}

/*
 * One message in its own session. NULL when it was accepted, else the step
 * that failed (errno as it was: 0 for a wrong reply).
 */
static const char *
one_mail(const struct sockaddr_storage *ss, socklen_t sslen, const char *msg, size_t len)
{
	static const char *const cmds[] = { "EHLO bench.example\r\n",
	    "MAIL FROM:<bench@example.org>\r\n", "RCPT TO:<rcpt@example.net>\r\n",
	    "DATA\r\n" };
	static const char *const steps[] = { "the reply to EHLO", "the reply to MAIL",
	    "the reply to RCPT", "the reply to DATA" };
	static const int want[] = { 250, 250, 250, 354 };
	int s = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	const char *failed = NULL;

	errno = 0;
	if (s < 0)
		failed = "socket";
	else if (connect(s, (const struct sockaddr *)ss, sslen) < 0)
		failed = "connect";
	else if (read_reply(s, 5000) != 220)
		failed = "the banner";
	for (size_t i = 0; failed == NULL && i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (send_all(s, cmds[i], strlen(cmds[i])) < 0 || read_reply(s, 5000) != want[i])
			failed = steps[i];
	if (failed == NULL && (send_all(s, msg, len) < 0 || read_reply(s, 5000) != 250))
		failed = "the reply to the message";
	if (failed == NULL && (send_all(s, "QUIT\r\n", 6) < 0 || read_reply(s, 5000) != 221))
		failed = "the reply to QUIT";
	if (s >= 0) {
		int saved = errno;

		close(s);
		errno = saved;
	}
	return failed;
}

/* One port's messages in a mail run: their times and the outcome. */
struct mail_side {
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	const char		*port;
	unsigned long		 sent;
	size_t			 n;
	uint64_t		*took;
	uint64_t		 busy_ns;	/* the sum of its transactions' times */
};

#define MAIL_SIDES_MAX	4	/* the bench compares three smtpd ports */

static int
cmd_mail(int argc, char **argv)
{
	struct mail_side side[MAIL_SIDES_MAX] = { 0 };
	unsigned long n = 0;
	size_t bytes = 0, len, nsides;
	char *msg;
	uint64_t t0;
	double elapsed;
	const char *failed;
	int ch, rc = 0;

	while ((ch = getopt(argc, argv, "n:s:")) != -1) {
		switch (ch) {
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 's': bytes = strtoul(optarg, NULL, 10); break;
		default: usage();
		}
	}
	nsides = (size_t)(argc - optind - 1);
	if (argc - optind < 2 || nsides > MAIL_SIDES_MAX || n == 0 || bytes == 0)
		usage();
	if ((msg = make_message(bytes, &len)) == NULL)
		return 1;
	for (size_t k = 0; k < nsides; k++) {
		side[k].port = argv[optind + 1 + k];
		resolve(argv[optind], side[k].port, &side[k].ss, &side[k].sslen);
		if ((side[k].took = calloc(n, sizeof(*side[k].took))) == NULL)
			return 1;
	}
	/* With more ports, messages go to each in turn: drift on a shared
	 * machine falls on all alike, and the differences are their costs. */
	t0 = now_ns();
	for (unsigned long i = 0; i < n * nsides; i++) {
		struct mail_side *m = &side[i % nsides];
		uint64_t m0 = now_ns(), dt;

		failed = one_mail(&m->ss, m->sslen, msg, len);
		dt = now_ns() - m0;
		if (failed == NULL)
			m->sent++;
		else if (m->sent == m->n)	/* its first failure is said, the rest counted */
			fprintf(stderr, "sgload mail: port %s, message %zu: %s failed%s%s\n",
			    m->port, m->n + 1, failed, errno ? ": " : "", errno ? strerror(errno) : "");
		m->took[m->n++] = dt;
		m->busy_ns += dt;
	}
	elapsed = (double)(now_ns() - t0) / 1e9;
	for (size_t k = 0; k < nsides; k++) {
		struct mail_side *m = &side[k];
		double busy = (double)m->busy_ns / 1e9;

		qsort(m->took, m->n, sizeof(*m->took), cmp_u64);
		printf("{\"port\":%s,\"messages\":%lu,\"sent\":%lu,\"message_bytes\":%zu,"
		    "\"seconds\":%.3f,\"bytes_per_second\":%.0f,\"per_second\":%.1f,"
		    "\"p50_us\":%.1f,\"p99_us\":%.1f}\n", m->port, n, m->sent, len,
		    nsides == 1 ? elapsed : busy, (double)(m->sent * len) / (nsides == 1 ? elapsed : busy),
		    (double)m->sent / (nsides == 1 ? elapsed : busy),
		    percentile_us(m->took, m->n, 50), percentile_us(m->took, m->n, 99));
		if (m->sent != n)
			rc = 1;
		free(m->took);
	}
	free(msg);
	return rc;
}

static int
cmd_procs(int argc, char **argv)
{
	unsigned long n = 0, fds = 0;
	long uid = -1;
	int ch, devnull;
	pid_t parent;

	while ((ch = getopt(argc, argv, "n:u:f:")) != -1) {
		switch (ch) {
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 'u': uid = strtol(optarg, NULL, 10); break;
		case 'f': fds = strtoul(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (argc != optind)
		usage();
	if ((devnull = open("/dev/null", O_RDONLY)) < 0)
		return 1;
	parent = getpid();
	for (unsigned long i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("sgload: fork");
			return 1;
		}
		if (pid == 0) {
			if (uid >= 0 && (setgid((gid_t)uid) < 0 || setuid((uid_t)uid) < 0))
				_exit(1);
			/* After setuid, which clears it; then make sure the parent still lives. */
			if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
				_exit(1);
			close(STDIN_FILENO);
			for (unsigned long k = 0; k < fds; k++)
				(void)dup(devnull);
			for (;;)
				pause();
		}
	}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}

/* One SMTP session; the end of DATA is found across reads by a 5-byte window. */
static void
serve_session(int s)
{
	char buf[65536], tail[5] = { 0 };
	size_t have = 0;
	bool data = false;

	if (send_all(s, "220 sgload ESMTP\r\n", 18) < 0)
		return;
	for (;;) {
		ssize_t n = read(s, buf + have, sizeof(buf) - have);

		if (n <= 0)
			return;
		if (data) {
			for (ssize_t i = 0; i < n; i++) {
				memmove(tail, tail + 1, 4);
				tail[4] = buf[have + (size_t)i];
				if (memcmp(tail, "\r\n.\r\n", 5) == 0) {
					data = false;
					if (send_all(s, "250 queued\r\n", 12) < 0)
						return;
				}
			}
			continue;	/* a command pipelined after the dot is not supported */
		}
		have += (size_t)n;
		for (char *eol; (eol = memchr(buf, '\n', have)) != NULL;) {
			const char *reply = "250 ok\r\n";
			size_t len = (size_t)(eol - buf) + 1;

			if (strncasecmp(buf, "DATA", 4) == 0) {
				reply = "354 go ahead\r\n";
				data = true;
				memcpy(tail, "\0\0\0\r\n", 5);	/* DATA's own CRLF */
			} else if (strncasecmp(buf, "QUIT", 4) == 0) {
				(void)send_all(s, "221 bye\r\n", 9);
				return;
			}
			if (send_all(s, reply, strlen(reply)) < 0)
				return;
			memmove(buf, buf + len, have - len);
			have -= len;
			if (data)
				break;
		}
		if (data && have > 0) {
			/* Bytes after DATA's line are message text: scan them too. */
			for (size_t i = 0; i < have; i++) {
				memmove(tail, tail + 1, 4);
				tail[4] = buf[i];
				if (memcmp(tail, "\r\n.\r\n", 5) == 0) {
					data = false;
					if (send_all(s, "250 queued\r\n", 12) < 0)
						return;
				}
			}
			have = 0;
		}
		if (have == sizeof(buf))
			have = 0;	/* an endless line: drop it */
	}
}

static size_t http_body;	/* serve -H: the body's bytes; 0: SMTP */

/* One HTTP exchange: the request up to its blank line, then the answer. */
static void
serve_http(int s)
{
	static char body[65536];
	char buf[4096], head[128];
	size_t have = 0, left = http_body;
	int n;

	for (;;) {
		ssize_t got = read(s, buf + have, sizeof(buf) - 1 - have);

		if (got <= 0)
			return;
		have += (size_t)got;
		buf[have] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL)
			break;
		if (have == sizeof(buf) - 1)
			return;
	}
	if (body[0] == '\0')
		memset(body, 'x', sizeof(body));
	n = snprintf(head, sizeof(head), "HTTP/1.0 200 OK\r\nContent-Length: %zu\r\n\r\n", http_body);
	if (send_all(s, head, (size_t)n) < 0)
		return;
	while (left > 0) {
		size_t chunk = left < sizeof(body) ? left : sizeof(body);

		if (send_all(s, body, chunk) < 0)
			return;
		left -= chunk;
	}
}

static void *
serve_thread(void *arg)
{
	int ls = *(int *)arg;

	for (;;) {
		int s = accept4(ls, NULL, NULL, SOCK_CLOEXEC);

		if (s < 0)
			continue;
		if (http_body > 0)
			serve_http(s);
		else
			serve_session(s);
		close(s);
	}
	return NULL;
}

static int
cmd_serve(int argc, char **argv)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	pthread_t th;
	int ls, on = 1, off = 0, ch;

	while ((ch = getopt(argc, argv, "H:")) != -1) {
		if (ch != 'H')
			usage();
		http_body = strtoul(optarg, NULL, 10);
	}
	if (argc - optind != 1)
		usage();
	sa.sin6_port = htons((uint16_t)atoi(argv[optind]));
	if ((ls = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	    setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) < 0 ||
	    bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, SERVE_BACKLOG) < 0) {
		perror("sgload: listen");
		return 1;
	}
	for (int i = 0; i < SERVE_THREADS; i++)
		if (pthread_create(&th, NULL, serve_thread, &ls) != 0) {
			perror("sgload: thread");
			return 1;
		}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}

static int
cmd_events(int argc, char **argv)
{
	static const char *const actions[] = { "reject", "reject", "reject", "trap", "audit" };
	unsigned long n = 0;
	time_t now = time(NULL);
	int ch;

	while ((ch = getopt(argc, argv, "n:")) != -1) {
		if (ch != 'n')
			usage();
		n = strtoul(optarg, NULL, 10);
	}
	if (argc != optind || n == 0)
		usage();
	srandom(1);
	for (unsigned long i = 0; i < n; i++) {
		time_t t = now - (time_t)(n - i);
		struct tm tm;
		char ts[32];
		long r = random(), user = r % 200, script = (r / 200) % 50;

		gmtime_r(&t, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		printf("{\"ts\":\"%s.%06luZ\",\"event\":\"attempt\",\"action\":\"%s\","
		    "\"uid\":%ld,\"gid\":%ld,\"user\":\"site%ld\",\"pid\":%lu,\"ppid\":1,"
		    "\"exe\":\"/usr/bin/php8.2\",\"cmdline\":\"php-fpm: pool site%ld\","
		    "\"cwd\":\"/var/www/site%ld/wp-content/uploads\",\"cgroup\":\"/\","
		    "\"family\":\"ipv4\",\"src_ip\":\"192.0.2.1\",\"src_port\":%lu,"
		    "\"dst_ip\":\"192.0.2.%ld\",\"dst_port\":25,\"flow_id\":%lu,"
		    "\"php_script\":\"%ld:wp-content/uploads/s%ld.php\"}\n",
		    ts, i % 1000000, actions[r % 5], 3000 + user, 3000 + user, user, 1000 + i % 30000,
		    user, user, 30000 + i % 30000, 1 + (r >> 8) % 250, i, 3000 + user, script);
	}
	return 0;
}

/*
 * A synthetic Postfix log of about BYTES bytes, as mta-report reads it: per
 * message a smtpd (some with SASL) or pickup origin, cleanup, qmgr, one to
 * three remote deliveries (some deferred first, some bounced), removed.
 */
static int
cmd_mtalog(int argc, char **argv)
{
	static const char *const status[] = { "sent (250 2.0.0 OK)", "sent (250 2.0.0 OK)",
	    "sent (250 2.0.0 OK)", "deferred (host mx said: 450 4.7.1 greylisted)",
	    "bounced (host mx said: 550 5.1.1 User unknown)" };
	unsigned long long want = 0, written = 0;
	time_t t0 = time(NULL) - 86400;
	int ch, n;

	while ((ch = getopt(argc, argv, "b:")) != -1) {
		if (ch != 'b')
			usage();
		want = strtoull(optarg, NULL, 10);
	}
	if (argc != optind || want == 0)
		usage();
	srandom(1);
	for (unsigned long i = 0; written < want; i++) {
		time_t t = t0 + (time_t)(i / 20);
		struct tm tm;
		char ts[48], qid[16];
		long r = random(), nrcpt = 1 + r % 3;

		gmtime_r(&t, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(qid, sizeof(qid), "%lX", 0x10000000UL + i);
		if (r % 4 == 0)
			n = printf("%s.%06lu+00:00 mx1 postfix/pickup[%lu]: %s: uid=%ld from=<site%ld>\n",
			    ts, i % 1000000, 1000 + i % 30000, qid, 3000 + (r >> 4) % 200, (r >> 4) % 200);
		else
			n = printf("%s.%06lu+00:00 mx1 postfix/submission/smtpd[%lu]: %s: "
			    "client=unknown[203.0.113.%ld], sasl_method=PLAIN, "
			    "sasl_username=user%ld@example.com\n", ts, i % 1000000, 1000 + i % 30000,
			    qid, (r >> 4) % 250, (r >> 8) % 500);
		written += (unsigned long long)n;
		written += (unsigned long long)printf("%s.%06lu+00:00 mx1 postfix/cleanup[%lu]: %s: "
		    "message-id=<%lu.%s@example.com>\n", ts, i % 1000000, 2000 + i % 30000, qid, i, qid);
		written += (unsigned long long)printf("%s.%06lu+00:00 mx1 postfix/qmgr[700]: %s: "
		    "from=<user%ld@example.com>, size=%ld, nrcpt=%ld (queue active)\n", ts,
		    i % 1000000, qid, (r >> 8) % 500, 1000 + r % 50000, nrcpt);
		for (long k = 0; k < nrcpt; k++) {
			long d = (r >> (12 + k)) % 5000;

			written += (unsigned long long)printf("%s.%06lu+00:00 mx1 postfix/smtp[%lu]: %s: "
			    "to=<rcpt%ld@dom%ld.example>, relay=mx.dom%ld.example[198.51.100.%ld]:25, "
			    "delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=%s\n", ts, i % 1000000,
			    3000 + i % 30000, qid, k, d, d, d % 250, status[(r >> (4 + k)) % 5]);
		}
		written += (unsigned long long)printf("%s.%06lu+00:00 mx1 postfix/qmgr[700]: %s: "
		    "removed\n", ts, i % 1000000, qid);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(argv[1], "connect") == 0)
		return cmd_connect(argc - 1, argv + 1);
	if (strcmp(argv[1], "mail") == 0)
		return cmd_mail(argc - 1, argv + 1);
	if (strcmp(argv[1], "procs") == 0)
		return cmd_procs(argc - 1, argv + 1);
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "events") == 0)
		return cmd_events(argc - 1, argv + 1);
	if (strcmp(argv[1], "mtalog") == 0)
		return cmd_mtalog(argc - 1, argv + 1);
	usage();
}
