/*
 * smtpguardd.c — the daemon: set-up in a fixed order, one epoll loop, reload,
 * signals, an orderly teardown. It creates the objects the other rooms use
 * (daemon.h) and wires them: queue → fence.c (attrib → policy → verdict →
 * event), control → ctlreply.c, the trap's reports → fence.c, the mail
 * gate's requests → gatewire.c. It is, with
 * set-up code, the only place that exits. It stays one room past 600 lines
 * because set-up, reload and teardown are one story read together: what
 * set-up creates, reload validates and replaces, and teardown undoes in
 * reverse.
 *
 * Set-up order matters: the queue is bound before the ruleset sends packets
 * to it, and the ruleset is installed last, in one atomic batch that replaces
 * any table a previous instance left behind. A crash or a stop leaves that
 * table in place: SYNs of non-exempt users are then queued to nobody and
 * dropped; only `smtpguard disable` removes it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "daemon.h"

#define PROC_ROOT	"/proc"
#define FLOOD_MAX_KEYS	4096	/* see flood.c for what a full table does */
#define EPOLL_BATCH	32

enum tag {
	TAG_QUEUE = 1,
	TAG_SIGNAL,
	TAG_TIMER,
	TAG_CONTROL,
	TAG_TRAP,
	TAG_GATE,
	TAG_AUDIT,
};

static void __attribute__((noreturn))
usage(FILE *fp, int status)
{
	fprintf(fp,
	    "usage: smtpguardd [-fn] [-c file]\n"
	    "  -c file  configuration (default " DEFAULT_CONFIG ")\n"
	    "  -f       stay in the foreground, diagnostics on stderr\n"
	    "  -n       check the configuration and exceptions, then exit\n"
	    "  -V       print the version\n");
	exit(status);
}

static void
epoll_add(int epfd, int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		fatal("epoll_ctl");
}

static void
trap_chroot_dir(const struct config *cfg, char *out, size_t len)
{
	char dir[PATH_MAX];
	char *slash;

	strlcpy_sg(dir, cfg->pid_file, sizeof(dir));
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir)
		*slash = '\0';
	else
		strlcpy_sg(dir, "/run/smtpguard", sizeof(dir));
	snprintf(out, len, "%s/trap-root", dir);
}

static int
start_trap(struct daemon *d, char *err, size_t errlen)
{
	char root[PATH_MAX + 16];

	trap_chroot_dir(&d->cfg, root, sizeof(root));
	if ((d->trap_pid = trap_start(&d->cfg, root, &d->trap_fd, err, errlen)) < 0) {
		d->trap_fd = -1;
		return -1;
	}
	epoll_add(d->epfd, d->trap_fd, TAG_TRAP);
	return 0;
}

static void
stop_trap(struct daemon *d)
{
	if (d->trap_pid > 0) {
		kill(d->trap_pid, SIGKILL);
		(void)waitpid(d->trap_pid, NULL, 0);
		d->trap_pid = 0;
	}
	if (d->trap_fd >= 0) {
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->trap_fd, NULL);
		close(d->trap_fd);
		d->trap_fd = -1;
	}
}

/* The trap's reports; if its process is gone, the timer restarts it. */
static void
on_trap(struct daemon *d)
{
	if (fence_trap_reports(d) == 0)
		return;
	log_warnx("trap: the trap process is gone; restarting it");
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->trap_fd, NULL);
	close(d->trap_fd);
	d->trap_fd = -1;
}

/* Everything a (re)load needs, validated before anything is applied. */
struct loaded {
	struct config		 cfg;
	uid_t			 mta[CONFIG_MAX_UIDS];
	size_t			 nmta;
	char			 mta_found[512];
	struct exceptions	 exc;
};

static int
load_all(const char *path, struct loaded *l, char *err, size_t errlen)
{
	memset(l, 0, sizeof(*l));
	if (config_load(&l->cfg, path, err, errlen) < 0)
		return -1;
	if (mtauser_resolve(&l->cfg, PASSWD_FILE, l->mta, &l->nmta, l->mta_found,
	    sizeof(l->mta_found), err, errlen) < 0)
		return -1;
	if (exceptions_load(l->cfg.exceptions, PASSWD_FILE, GROUP_FILE, &l->exc, err,
	    errlen) < 0)
		return -1;
	return 0;
}

static int
install_table(struct daemon *d, const struct loaded *l, char *err, size_t errlen)
{
	struct ruleset_spec spec;
	uid_t allow[KERNEL_UIDS_MAX];
	size_t nallow = exceptions_kernel_uids(&l->exc, allow, KERNEL_UIDS_MAX);

	ruleset_spec_of(&l->cfg, l->mta, l->nmta, allow, nallow, &spec);
	if (ruleset_install(&spec, &d->native_queue, err, errlen) < 0)
		return -1;
	if (!spec.data_release && !d->table_installed)	/* said once, at start-up */
		log_warnx("this kernel cannot match an inner header (nft @ih): audited flows "
		    "are copied until smtpguardd reads their DATA, body segments included");
	d->data_release = spec.data_release;
	return 0;
}

static void
adopt(struct daemon *d, struct loaded *l)
{
	exceptions_carry_counters(&l->exc, &d->exc);
	exceptions_free(&d->exc);
	d->exc = l->exc;
	d->cfg = l->cfg;
	memcpy(d->mta, l->mta, sizeof(d->mta));
	d->nmta = l->nmta;
	memcpy(d->mta_found, l->mta_found, sizeof(d->mta_found));
}

/*
 * What the connect hook records: connects to the fenced ports (every port
 * under detect_any_port), by anyone but the MTA. A connect to another port
 * that reaches the queue after NAT is found by the /proc scan instead.
 */
static void
hook_filter(const struct daemon *d, struct connhook_filter *f)
{
	f->ports = d->cfg.ports;
	f->nports = d->cfg.detect_any_port ? 0 : d->cfg.nports;
	f->skip = d->mta;
	f->nskip = d->nmta;
}

static int
reload(struct daemon *d, char *err, size_t errlen)
{
	struct connhook_filter hf;
	bool trap_changed, gate_changed, flushed;
	struct loaded l;
	char msg[PATH_MAX + 600];

	if (load_all(d->cfg.path, &l, err, errlen) < 0) {
		exceptions_free(&l.exc);
		return -1;
	}
	if (l.cfg.queue_num != d->cfg.queue_num ||
	    l.cfg.audit_log_group != d->cfg.audit_log_group ||
	    strcmp(l.cfg.control_socket, d->cfg.control_socket) != 0 ||
	    strcmp(l.cfg.log_file, d->cfg.log_file) != 0 ||
	    strcmp(l.cfg.alert_exec, d->cfg.alert_exec) != 0 ||
	    l.cfg.connect_hook != d->cfg.connect_hook) {
		snprintf(err, errlen, "queue, audit_log_group, control_socket, connect_hook, "
		    "[log] file and [alert] exec change only with a restart; nothing applied");
		exceptions_free(&l.exc);
		return -1;
	}
	/*
	 * The uids refused in the kernel were judged under the old exceptions
	 * and configuration: out, counted, before the new ones apply. If the
	 * flush fails, the new table (an empty set) still ends them, uncounted.
	 */
	flushed = fence_kernel_flush(d, msg, sizeof(msg)) == 0;
	if (!flushed)
		log_warnx("reload: reading @refused_uids: %s", msg);
	if (install_table(d, &l, err, errlen) < 0) {
		exceptions_free(&l.exc);
		return -1;
	}
	if (!flushed)
		fence_kernel_lost(d);
	if (l.cfg.log_rate != d->cfg.log_rate || l.cfg.log_window != d->cfg.log_window) {
		struct flood *f = flood_new(l.cfg.log_rate, l.cfg.log_window, FLOOD_MAX_KEYS);

		if (f != NULL) {
			fence_summaries(d, time(NULL) + d->cfg.log_window);
			flood_free(d->flood);
			d->flood = f;
		}
		gatewire_flood_reset(d, l.cfg.log_rate, l.cfg.log_window);
	}
	if (l.cfg.alert_threshold != d->cfg.alert_threshold) {
		struct alerts *a = alerts_new(l.cfg.alert_threshold);

		if (a != NULL) {
			alerts_free(d->alerts);
			d->alerts = a;
		}
	}
	trap_changed = l.cfg.trap_port != d->cfg.trap_port ||
	    l.cfg.trap_sessions != d->cfg.trap_sessions ||
	    l.cfg.trap_timeout != d->cfg.trap_timeout || l.cfg.trap_bytes != d->cfg.trap_bytes ||
	    strcmp(l.cfg.trap_reply, d->cfg.trap_reply) != 0 ||
	    strcmp(l.cfg.trap_user, d->cfg.trap_user) != 0;
	gate_changed = gatewire_child_changed(&l.cfg, &d->cfg);
	adopt(d, &l);
	hook_filter(d, &hf);
	if (attrib_hook_refilter(d->attrib, &hf) < 0)
		log_warn("connect hook keeps its old ports and MTA uids; those the reload "
		    "added are found by scanning /proc");
	/* Mail limits apply at once; the gate child restarts for its own settings. */
	gatewire_reload(d, gate_changed);
	/* The trap child runs with the settings it was started with: restart it. */
	if (trap_changed) {
		stop_trap(d);
		if (start_trap(d, err, errlen) < 0)
			log_warnx("restarting the trap after reload: %s (retried each second)", err);
	}
	snprintf(msg, sizeof(msg), "reloaded %s; MTA users: %s", d->cfg.path, d->mta_found);
	fence_emit_daemon(d, msg);
	return 0;
}

static char *
on_control(const struct ctl_request *req, uid_t peer, void *arg)
{
	struct daemon *d = arg;
	char err[1024];

	(void)peer;
	switch (req->cmd) {
	case CTL_STATUS:
		return ctlreply_status(d);
	case CTL_EXCEPTIONS:
		return ctlreply_exceptions(d);
	case CTL_ALLOW:
	case CTL_REVOKE:
		return ctlreply_change(d, req);
	case CTL_LIMIT:
	case CTL_UNLIMIT:
		return ctlreply_limit(d, req);
	case CTL_MAILOP:
		return ctlreply_mailop(d, req);
	case CTL_RELOAD:
		if (reload(d, err, sizeof(err)) < 0) {
			log_warnx("reload refused, running state kept: %s", err);
			return ctlreply_error(err);
		}
		return ctlreply_ok(json_pack("{s:s}", "done", "reloaded"));
	case CTL_NONE:
		break;
	}
	return ctlreply_error("unknown command");
}

static void
on_signal(struct daemon *d)
{
	struct signalfd_siginfo si;
	char err[1024];

	while (read(d->sigfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			if (reload(d, err, sizeof(err)) < 0)
				log_warnx("reload refused, running state kept: %s", err);
			else
				log_info("reloaded %s", d->cfg.path);
			break;
		case SIGTERM:
		case SIGINT:
			d->quit = true;
			break;
		default:
			break;
		}
	}
}

static void
on_timer(struct daemon *d)
{
	uint64_t ticks;
	time_t now = time(NULL);

	(void)read(d->timerfd, &ticks, sizeof(ticks));
	fence_tick(d, now);
	gatewire_tick(d, now);
	metricsfile_tick(d, now);
	control_expire(d->control, now);
	if (d->trap_fd < 0 && now != d->trap_restart) {
		char err[512];

		d->trap_restart = now;
		stop_trap(d);
		if (start_trap(d, err, sizeof(err)) < 0)
			log_warnx("restarting the trap: %s", err);
	}
}


/*
 * Without -f: fork, and let the parent wait until the child says it is
 * ready (the fence is in place) or why it is not, so `smtpguard enable` and
 * init scripts get a truthful exit code. Until then the child's stderr is
 * the pipe, so fatal() during set-up reaches the admin's terminal.
 */
static int
daemonize(void)
{
	int p[2];
	pid_t pid;
	char buf[4096];
	ssize_t n;
	size_t len = 0;

	if (pipe2(p, O_CLOEXEC) < 0)
		fatal("pipe");
	if ((pid = fork()) < 0)
		fatal("fork");
	if (pid == 0) {
		close(p[0]);
		if (setsid() < 0)
			fatal("setsid");
		if (dup2(p[1], STDERR_FILENO) < 0)
			fatal("dup2");
		close(p[1]);
		/* Whatever our starter left open (its pipes) is not ours to hold. */
		close_range(3, ~0U, 0);
		return 0;
	}
	close(p[1]);
	/* Until READY (the daemon's children may keep the pipe open) or EOF. */
	while (len < sizeof(buf) - 1 &&
	    ((n = read(p[0], buf + len, sizeof(buf) - 1 - len)) > 0 || (n < 0 && errno == EINTR))) {
		if (n > 0)
			len += (size_t)n;
		if (len >= 6 && memcmp(buf + len - 6, "READY\n", 6) == 0)
			break;
	}
	buf[len] = '\0';
	/* What set-up said (its progress, or why it failed), then READY last. */
	if (len >= 6 && strcmp(buf + len - 6, "READY\n") == 0) {
		buf[len - 6] = '\0';
		fputs(buf, stderr);
		exit(0);
	}
	fputs(buf, stderr);
	if (len == 0)
		fprintf(stderr, "smtpguardd: the daemon exited during set-up\n");
	exit(1);
}

static void
detach_ready(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	fputs("READY\n", stderr);
	fflush(stderr);
	log_init(false);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
}

/* The sd_notify(3) protocol, which is one datagram: no libsystemd needed. */
static void
notify_systemd(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sun.sun_path))
		return;
	memcpy(sun.sun_path, path, strlen(path));
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';	/* abstract namespace */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	(void)sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, len);
	close(fd);
}

static void
write_pid_file(const char *path)
{
	char tmp[PATH_MAX + 8];
	FILE *fp;

	if (path[0] == '\0')
		return;
	if (ensure_parent_dir(path, 0755) < 0)
		fatal("creating the directory of %s", path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fp = fopen(tmp, "we")) == NULL)
		fatal("%s", tmp);
	fprintf(fp, "%ld\n", (long)getpid());
	if (fclose(fp) != 0 || rename(tmp, path) < 0)
		fatal("writing %s", path);
}

static void
setup(struct daemon *d, const char *config_path)
{
	struct loaded l;
	sigset_t mask;
	struct itimerspec tick = { .it_interval = { 1, 0 }, .it_value = { 1, 0 } };
	char err[1024], msg[PATH_MAX + 700];

	if (load_all(config_path, &l, err, sizeof(err)) < 0)
		fatalx("%s", err);
	adopt(d, &l);
	log_info("MTA users: %s", d->mta_found);
	/* First, while this process holds nothing worth inheriting. */
	if (d->cfg.alert_exec[0] != '\0' &&
	    (d->alert_fd = alerter_start(d->cfg.alert_exec, &d->alerter_pid)) < 0)
		fatal("starting the alerter");

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGPIPE);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		fatal("sigprocmask");
	if ((d->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		fatal("epoll_create1");
	sigdelset(&mask, SIGPIPE);
	if ((d->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		fatal("signalfd");
	if ((d->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
	    timerfd_settime(d->timerfd, 0, &tick, NULL) < 0)
		fatal("timerfd");
	epoll_add(d->epfd, d->sigfd, TAG_SIGNAL);
	epoll_add(d->epfd, d->timerfd, TAG_TIMER);

	if ((d->events = event_open(d->cfg.log_file, d->cfg.log_syslog, err,
	    sizeof(err))) == NULL)
		fatalx("%s", err);
	if ((d->flood = flood_new(d->cfg.log_rate, d->cfg.log_window, FLOOD_MAX_KEYS)) == NULL)
		fatal("flood_new");
	if ((d->alerts = alerts_new(d->cfg.alert_threshold)) == NULL)
		fatal("alerts_new");
	if ((d->queue = queue_open(d->cfg.queue_num, d->cfg.queue_maxlen)) == NULL)
		fatal("binding NFQUEUE %u (is another smtpguardd running?)", d->cfg.queue_num);
	epoll_add(d->epfd, queue_fd(d->queue), TAG_QUEUE);
	if ((d->audit_tap = nflog_open(d->cfg.audit_log_group)) == NULL)
		fatal("binding nfnetlink_log group %u for audited flows (another program, "
		    "ulogd?, holds it: set audit_log_group)", d->cfg.audit_log_group);
	epoll_add(d->epfd, nflog_fd(d->audit_tap), TAG_AUDIT);
	if ((d->ctmark = ctmark_open()) == NULL)
		fatal("opening ctnetlink");
	if (fence_open(d) < 0)
		fatal("flow table");
	if ((d->users = metrics_users_new()) == NULL)
		fatal("metrics_users_new");
	if (start_trap(d, err, sizeof(err)) < 0)
		fatalx("%s", err);
	if (gatewire_open(d, err, sizeof(err)) < 0)
		fatalx("mail gate: %s", err);
	if ((d->attrib = attrib_open(PROC_ROOT)) == NULL)
		fatal("opening sock_diag");
	if (d->cfg.connect_hook) {
		struct connhook_filter hf;
		char cgroot[PATH_MAX];

		hook_filter(d, &hf);
		if (attrib_hook(d->attrib, cgroot, sizeof(cgroot), &hf) == 0)
			log_info("connect hook attached at %s: senders found by socket cookie",
			    cgroot);
		else
			log_warn("connect hook unavailable; senders are found by scanning /proc");
	}
	if (ensure_parent_dir(d->cfg.control_socket, 0755) < 0)
		fatal("creating the directory of %s", d->cfg.control_socket);
	if ((d->control = control_open(d->cfg.control_socket, d->epfd, TAG_CONTROL,
	    on_control, d, err, sizeof(err))) == NULL)
		fatalx("control socket: %s", err);
	if (install_table(d, &l, err, sizeof(err)) < 0)
		fatalx("installing table inet %s: %s", TABLE_NAME, err);
	d->table_installed = true;
	write_pid_file(d->cfg.pid_file);
	if (sandbox_enter(err, sizeof(err)) < 0)
		fatalx("sandbox: %s", err);

	d->started = time(NULL);
	d->next_flow_id = ((uint64_t)d->started << 20) + 1;
	snprintf(msg, sizeof(msg), "started smtpguardd %s (pid %ld), config %s",
	    SMTPGUARD_VERSION, (long)getpid(), d->cfg.path);
	fence_emit_daemon(d, msg);
	snprintf(msg, sizeof(msg), "MTA users detected: %s", d->mta_found);
	fence_emit_daemon(d, msg);
	snprintf(msg, sizeof(msg), "table inet %s installed (%s, queue %u, action %s)",
	    TABLE_NAME, d->native_queue ? "native nft queue" : "xt NFQUEUE compat target",
	    d->cfg.queue_num, action_name(d->cfg.action));
	fence_emit_daemon(d, msg);
	log_info("fence in place: %s", msg);
}

static void
teardown(struct daemon *d)
{
	char msg[512];

	/*
	 * A stop never opens the fence: a restart, an upgrade or a service
	 * manager's SIGTERM leaves the table, whose SYNs then queue to nobody
	 * and are dropped, and the next start replaces it atomically. Only
	 * `smtpguard disable` removes it, once this process is gone.
	 */
	/* The kernel's counts first: a uid it refused then queues, to nobody (fail closed). */
	if (fence_kernel_flush(d, msg, sizeof(msg)) < 0)
		log_warnx("reading @refused_uids at stop: %s; those counts are lost", msg);
	fence_summaries(d, time(NULL) + d->cfg.log_window);
	gatewire_summaries(d, time(NULL) + d->cfg.log_window);
	fence_emit_daemon(d, d->table_installed ? "stopped; the table stays (fail closed) "
	    "until smtpguard disable" : "stopped");
	control_close(d->control);
	stop_trap(d);
	gatewire_close(d);
	fence_close(d);
	metrics_users_free(d->users);
	queue_close(d->queue);
	nflog_close(d->audit_tap);
	ctmark_close(d->ctmark);
	attrib_close(d->attrib);
	flood_free(d->flood);
	alerts_free(d->alerts);
	if (d->alert_fd >= 0) {
		close(d->alert_fd);	/* the alerter reaps its programs and exits */
		(void)waitpid(d->alerter_pid, NULL, 0);
	}
	event_close(d->events);
	exceptions_free(&d->exc);
	if (d->cfg.pid_file[0] != '\0')
		unlink(d->cfg.pid_file);
}

int
main(int argc, char **argv)
{
	static struct daemon d = { .trap_fd = -1, .alert_fd = -1, .gate_fd = -1,
	    .gate_tag = TAG_GATE };
	const char *config_path = DEFAULT_CONFIG;
	bool check_only = false;
	struct epoll_event evs[EPOLL_BATCH];
	int ch, n;

	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};

	while ((ch = getopt_long(argc, argv, "c:fhnV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case 'f':
			d.foreground = true;
			break;
		case 'n':
			check_only = true;
			break;
		case 'V':
			printf("smtpguardd %s\n", SMTPGUARD_VERSION);
			return 0;
		case 'h':
			usage(stdout, 0);
		default:
			usage(stderr, 2);
		}
	}
	if (optind != argc)
		usage(stderr, 2);
	log_init(true);
	if (check_only) {
		struct loaded l;
		char err[1024];

		if (load_all(config_path, &l, err, sizeof(err)) < 0) {
			exceptions_free(&l.exc);
			fatalx("%s", err);
		}
		printf("%s: configuration OK; MTA users: %s; %zu exceptions\n", config_path,
		    l.mta_found, l.exc.n);
		exceptions_free(&l.exc);
		return 0;
	}
	if (geteuid() != 0)
		fatalx("must run as root (it needs CAP_NET_ADMIN)");
	if (!d.foreground)
		daemonize();
	setup(&d, config_path);
	if (!d.foreground)
		detach_ready();
	notify_systemd("READY=1");

	while (!d.quit) {
		n = epoll_wait(d.epfd, evs, EPOLL_BATCH, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fatal("epoll_wait");
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;

			if (tag == TAG_QUEUE)
				fence_read(&d);
			else if (tag == TAG_AUDIT)
				fence_read_audit(&d);
			else if (tag == TAG_SIGNAL)
				on_signal(&d);
			else if (tag == TAG_TIMER)
				on_timer(&d);
			else if (tag == TAG_TRAP)
				on_trap(&d);
			else if (tag == TAG_GATE)
				gatewire_requests(&d);
			else if (tag == TAG_CONTROL)
				control_accept(d.control);
			else
				control_client_event(d.control, tag);
		}
	}
	notify_systemd("STOPPING=1");
	teardown(&d);
	return 0;
}
