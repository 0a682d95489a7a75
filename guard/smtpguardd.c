/*
 * smtpguardd.c — the daemon: set-up in a fixed order, one epoll loop, an
 * orderly teardown. It wires the modules (queue → attrib → policy → verdict →
 * event; control → here) and is, with set-up code, the only place that exits.
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
#include <linux/netfilter.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "smtpguard.h"

#define PASSWD_FILE	"/etc/passwd"
#define GROUP_FILE	"/etc/group"
#define PROC_ROOT	"/proc"
#define FLOOD_MAX_KEYS	4096	/* see flood.c for what a full table does */
#define EPOLL_BATCH	32
#define PROBE_EMPTY_MAX	16	/* payload-less packets before a probed flow is let go */

enum tag {
	TAG_QUEUE = 1,
	TAG_SIGNAL,
	TAG_TIMER,
	TAG_CONTROL,
	TAG_TRAP,
};

struct counters {
	uint64_t	 packets;		/* packets read from the queue */
	uint64_t	 self_checks;		/* `smtpguard check` probes refused */
	uint64_t	 packet_bytes;		/* their IP bytes: what crossed into userspace */
	uint64_t	 decisions[ACTION_ALLOW + 1];
	uint64_t	 unparsable;		/* not IPv4/IPv6 TCP: reset */
	uint64_t	 verdict_errors;
	uint64_t	 enobufs;		/* the kernel dropped queue messages */
	uint64_t	 events_lost;		/* event lines that could not be written */
	uint64_t	 alerts;
	uint64_t	 inspected;		/* packets of audited flows read */
};

struct daemon {
	struct config		 cfg;
	uid_t			 mta[CONFIG_MAX_UIDS];
	size_t			 nmta;
	char			 mta_found[512];
	struct exceptions	 exc;
	bool			 foreground;
	bool			 native_queue;
	bool			 table_installed;
	bool			 quit;
	int			 epfd, sigfd, timerfd;
	struct queue		*queue;
	struct attrib_ctx	*attrib;
	struct event_log	*events;
	struct flood		*flood;
	struct alerts		*alerts;	/* counting; the alerter runs the program */
	int			 alert_fd;	/* to the alerter; -1 without [alert] exec */
	pid_t			 alerter_pid;
	struct control		*control;
	struct flow_table	*flows;		/* trapped flows awaiting the trap's report */
	pid_t			 trap_pid;
	int			 trap_fd;
	time_t			 trap_restart;
	uint64_t		 next_flow_id;
	time_t			 started;
	struct counters		 cnt;
	struct hist		 attrib_ns;	/* time to name a sender (attrib_sender) */
	bool			 events_failing;	/* the last event write failed */
};

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: smtpguardd [-fn] [-c file]\n"
	    "  -c file  configuration (default " DEFAULT_CONFIG ")\n"
	    "  -f       stay in the foreground, diagnostics on stderr\n"
	    "  -n       check the configuration and exceptions, then exit\n");
	exit(2);
}

static void
now_ts(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

static void
emit(struct daemon *d, struct event *e)
{
	if (e->ts.tv_sec == 0)
		now_ts(&e->ts);
	if (event_write(d->events, e) < 0) {
		if (!d->events_failing)
			log_warn("cannot write the event log %s; the fence holds, lost lines "
			    "are counted (smtpguard status)", d->cfg.log_file);
		d->events_failing = true;
		d->cnt.events_lost++;
	} else if (d->events_failing) {
		d->events_failing = false;
		log_warnx("the event log %s is written again (%llu lines lost so far)",
		    d->cfg.log_file, (unsigned long long)d->cnt.events_lost);
	}
}

static void
emit_daemon(struct daemon *d, const char *msg)
{
	struct event e = { .event = "daemon", .msg = msg };

	emit(d, &e);
}

static void
epoll_add(int epfd, int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		fatal("epoll_ctl");
}

static enum mark_state
action_mark(enum action a)
{
	switch (a) {
	case ACTION_ALLOW:
		return MARK_ALLOW;
	case ACTION_TRAP:
		return MARK_TRAP;
	case ACTION_AUDIT:
		return MARK_INSPECT;
	case ACTION_REJECT:
	case ACTION_NONE:
		break;
	}
	return MARK_REJECT;
}

/*
 * The verdict: NF_REPEAT with our bits of the packet mark set to the decision;
 * the fence chain runs again and copies them into the conntrack mark.
 */
static void
verdict(struct daemon *d, const struct queue_packet *qp, enum mark_state st)
{
	uint32_t mark = (qp->mark & ~d->cfg.mark_mask) | mark_value(d->cfg.mark_mask, st);

	if (queue_verdict(d->queue, qp->id, NF_REPEAT, true, mark) < 0) {
		if (d->cnt.verdict_errors++ == 0)
			log_warn("verdict for packet %u", qp->id);
	}
}

static void
flood_summary(void *arg, uid_t uid, const char *exe, enum action a, uint64_t suppressed,
    unsigned int window)
{
	struct daemon *d = arg;
	struct attrib who = { .has_uid = uid != (uid_t)-1, .uid = uid };
	struct event e = {
		.event = "summary", .action = action_name(a), .who = &who,
		.suppressed = suppressed, .window = window,
	};

	if (exe != NULL)
		strlcpy_sg(who.exe, exe, sizeof(who.exe));
	emit(d, &e);
}

/* An audited session is over: its smtp event, then the flow is forgotten. */
static void
audit_event(struct daemon *d, struct flow *f)
{
	struct event e = { .event = "smtp", .action = "audit" };

	if (f->inspect == NULL)
		return;
	e.who = &f->who;
	e.flow = &f->addr;
	e.flow_id = f->flow_id;
	e.smtp = &((struct inspect *)f->inspect)->info;
	emit(d, &e);
	inspect_free(f->inspect);
	f->inspect = NULL;
}

static void
flow_done(struct flow *f, void *arg)
{
	struct daemon *d = arg;

	if (f->inspect != NULL && ((struct inspect *)f->inspect)->info.inspect == NULL)
		((struct inspect *)f->inspect)->info.inspect = "idle";
	audit_event(d, f);
}

static void
forget_flow(struct daemon *d, struct flow *f, const char *why)
{
	if (f->inspect != NULL && ((struct inspect *)f->inspect)->info.inspect == NULL)
		((struct inspect *)f->inspect)->info.inspect = why;
	audit_event(d, f);
	flow_remove(d->flows, f);
}

/* Keeps the attempt's attribution for the smtp event that comes later. */
static struct flow *
follow_flow(struct daemon *d, const struct pkt *p, const struct attrib *who, uint64_t flow_id,
    enum action a, time_t now)
{
	struct flow_key k;
	struct flow *f;

	flow_key_of(p, &k);
	if ((f = flow_lookup(d->flows, &k)) != NULL)
		forget_flow(d, f, "replaced");
	if ((f = flow_insert(d->flows, &k, now)) == NULL)
		return NULL;	/* full: bounded; the caller copes */
	f->flow_id = flow_id;
	f->action = a;
	f->who = *who;
	f->addr = *p;
	f->addr.payload = NULL;
	f->addr.payload_len = 0;
	f->last_seen = now;
	return f;
}

/* A trapped session ended: one smtp event, with the attempt's attribution. */
static void
on_trap_report(struct daemon *d)
{
	struct trap_report r;
	struct pkt addr = { 0 };
	struct flow_key k;
	struct flow *f;
	struct event e = { .event = "smtp", .action = "trap" };

	for (int i = 0; i < 64; i++) {
		if (trap_read_report(d->trap_fd, &r) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EPROTO) {
				log_warnx("trap: malformed report ignored");
				continue;
			}
			log_warnx("trap: the trap process is gone; restarting it");
			epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->trap_fd, NULL);
			close(d->trap_fd);
			d->trap_fd = -1;
			return;
		}
		addr.family = r.family;
		memcpy(addr.src, r.src, sizeof(addr.src));
		memcpy(addr.dst, r.dst, sizeof(addr.dst));
		addr.sport = r.sport;
		addr.dport = r.dport;
		flow_key_of(&addr, &k);
		r.info.inspect = r.reason;
		e.ts.tv_sec = 0;
		e.smtp = &r.info;
		e.flow = &addr;
		e.who = NULL;
		e.flow_id = 0;
		if ((f = flow_lookup(d->flows, &k)) != NULL) {
			e.who = &f->who;
			e.flow_id = f->flow_id;
		}
		emit(d, &e);
		if (f != NULL)
			flow_remove(d->flows, f);
	}
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

/*
 * An alert: one event, always written (never flood-limited), and the
 * admin's program run with it on stdin.
 */
static void
raise_alert(struct daemon *d, const struct event *attempt, const char *msg)
{
	static char line[EVENT_LINE_MAX];
	struct event a = *attempt;
	int n;

	a.event = "alert";
	a.msg = msg;
	d->cnt.alerts++;
	emit(d, &a);
	if (d->cfg.alert_exec[0] == '\0')
		return;
	if ((n = event_encode(&a, line, sizeof(line))) < 0 ||
	    send(d->alert_fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_warn("alert program %s not run", d->cfg.alert_exec);
}

static bool
port_fenced(const struct config *cfg, uint16_t port)
{
	for (size_t i = 0; i < cfg->nports; i++)
		if (cfg->ports[i] == port)
			return true;
	return false;
}

/* The length of the first line of a payload, without its CRLF, bounded. */
static size_t
memcspn_line(const uint8_t *p, size_t len)
{
	size_t n = 0;

	while (n < len && n < SMTP_LINE_MAX && p[n] != '\r' && p[n] != '\n')
		n++;
	return n;
}

/* The SYN of a flow to an unfenced port: name its sender now, decide at its first bytes. */
static void
start_probe(struct daemon *d, const struct queue_packet *qp, const struct pkt *p, time_t now)
{
	struct attrib who;
	struct flow *f;
	struct inspect *in;

	if (!(p->tcp_flags & TH_SYN)) {
		verdict(d, qp, MARK_ALLOW);	/* begun before we could see it */
		return;
	}
	attrib_flow(d->attrib, p, qp->has_uid, qp->uid, qp->has_gid, qp->gid, &who);
	if ((f = follow_flow(d, p, &who, d->next_flow_id++, ACTION_NONE, now)) == NULL ||
	    (in = inspect_new(p->seq, d->cfg.inspect_bytes, false)) == NULL) {
		if (f != NULL)
			flow_remove(d->flows, f);
		verdict(d, qp, MARK_ALLOW);	/* no room to follow it: let it be */
		return;
	}
	in->probe = true;
	f->inspect = in;
	verdict(d, qp, MARK_INSPECT);
}

/* "smtp.example.net, *.relay.example": exact names, or any name under a "*." suffix. */
static bool
relay_named(const char *relays, const char *name)
{
	char list[CONFIG_MAX_LIST], *tok, *save = NULL;
	size_t n = strlen(name);

	strlcpy_sg(list, relays, sizeof(list));
	for (tok = strtok_r(list, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		size_t t = strlen(tok);

		if (strcasecmp(tok, name) == 0)
			return true;
		if (t > 2 && tok[0] == '*' && tok[1] == '.' && n > t - 1 &&
		    strcasecmp(name + n - (t - 1), tok + 1) == 0)
			return true;
	}
	return false;
}

static void
forget_probe(struct daemon *d, struct flow *f)
{
	inspect_free(f->inspect);
	f->inspect = NULL;
	flow_remove(d->flows, f);
}

/*
 * detect_any_port: a flow to an unfenced port, followed to its first client
 * bytes. SMTP's greeting there is reset and logged; anything else is let go
 * for good (ct mark "allowed"), so each flow costs a few userspace trips.
 */
static void
probe_packet(struct daemon *d, const struct queue_packet *qp, const struct pkt *p,
    struct flow *f)
{
	struct inspect *in = f->inspect;
	struct event e = { .event = "attempt", .action = "reject", .rule = "smtp-on-any-port" };
	struct smtp_client cl = { 0 };
	const char *proto = NULL;

	if (p->payload_len == 0 && !(p->tcp_flags & (TH_FIN | TH_RST)) &&
	    ++in->empty < PROBE_EMPTY_MAX) {
		if (queue_verdict(d->queue, qp->id, NF_ACCEPT, false, 0) < 0)
			d->cnt.verdict_errors++;
		return;
	}
	if (p->payload_len > 0 && smtp_looks_like_smtp(p->payload, p->payload_len)) {
		smtp_client_line(&cl, &in->info, (const char *)p->payload,
		    memcspn_line(p->payload, p->payload_len));
		proto = "smtp";
	} else if (p->payload_len > 0 && tls_sni(p->payload, p->payload_len, in->info.tls_sni,
	    sizeof(in->info.tls_sni)) == 0 && relay_named(d->cfg.mail_relays, in->info.tls_sni))
		proto = "smtp-tls";	/* TLS to a host named as a mail relay */
	if (proto == NULL) {
		verdict(d, qp, MARK_ALLOW);
		forget_probe(d, f);
		return;
	}
	verdict(d, qp, MARK_REJECT);
	d->cnt.decisions[ACTION_REJECT]++;
	in->info.proto = proto;
	in->info.bytes = p->payload_len;
	e.who = &f->who;
	e.flow = &f->addr;
	e.flow_id = f->flow_id;
	e.smtp = &in->info;
	emit(d, &e);
	forget_probe(d, f);
}

/*
 * A later packet of a flow under audit: read it, let it go on, and once
 * inspection is done release the flow to the kernel. Returns false if the
 * packet belongs to no audited flow.
 */
static bool
audit_packet(struct daemon *d, const struct queue_packet *qp, const struct pkt *p, time_t now)
{
	struct flow_key k;
	struct flow *f;

	flow_key_of(p, &k);
	if ((f = flow_lookup(d->flows, &k)) == NULL || f->inspect == NULL)
		return false;
	d->cnt.inspected++;
	f->last_seen = now;
	if (((struct inspect *)f->inspect)->probe) {
		probe_packet(d, qp, p, f);
		return true;
	}
	if (inspect_segment(f->inspect, p) == INSPECT_MORE) {
		if (queue_verdict(d->queue, qp->id, NF_ACCEPT, false, 0) < 0)
			d->cnt.verdict_errors++;
		return true;
	}
	verdict(d, qp, MARK_ALLOW);
	forget_flow(d, f, "complete");
	return true;
}

static void
on_packet(const struct queue_packet *qp, void *arg)
{
	struct daemon *d = arg;
	struct pkt p;
	struct attrib who;
	struct decision dec;
	struct event e = { .event = "attempt" };
	time_t now = time(NULL);
	uint64_t in_window;
	enum mark_state mark;
	bool written, alert_due, probe;
	uint64_t t0;

	d->cnt.packets++;
	d->cnt.packet_bytes += qp->len;
	if (pkt_parse(qp->payload, qp->len, &p) < 0) {
		/* Cannot tell what it is: the fence fails closed. */
		d->cnt.unparsable++;
		verdict(d, qp, MARK_REJECT);
		return;
	}
	if (!(p.tcp_flags & TH_SYN) && audit_packet(d, qp, &p, now))
		return;
	probe = (p.tcp_flags & TH_SYN) && mark_state_of(d->cfg.mark_mask, qp->mark) == MARK_PROBE;
	if (d->cfg.detect_any_port && !probe && !port_fenced(&d->cfg, p.dport)) {
		start_probe(d, qp, &p, now);
		return;
	}
	/*
	 * Attribute before the verdict: the process still sits in connect().
	 * Uid, pid and exe decide and key the flood limiter; the rest is read
	 * only for an event that will be written, or a flow that is followed.
	 */
	t0 = mono_ns();
	attrib_sender(d->attrib, &p, qp->has_uid, qp->uid, qp->has_gid, qp->gid, &who);
	hist_add(&d->attrib_ns, mono_ns() - t0);
	policy_decide(d->cfg.action, &d->exc, who.uid, who.has_uid, &p, now, &dec);
	/*
	 * A flow met mid-way (begun before the fence, or under an exception
	 * since revoked) can be neither trapped (NAT is bound at its first
	 * packet) nor inspected (the stream is anchored at its SYN), and a SYN
	 * queued after NAT (MARK_NAT) cannot be trapped or audited either:
	 * unless an exception allows them, they are reset, and the rule says why.
	 */
	if (dec.action != ACTION_ALLOW && !(p.tcp_flags & TH_SYN)) {
		dec.action = ACTION_REJECT;
		strlcpy_sg(dec.rule, "established-before-fence", sizeof(dec.rule));
	} else if ((dec.action == ACTION_TRAP || dec.action == ACTION_AUDIT) &&
	    mark_state_of(d->cfg.mark_mask, qp->mark) == MARK_NAT) {
		dec.action = ACTION_REJECT;
		strlcpy_sg(dec.rule, "after-nat", sizeof(dec.rule));
	}
	if (probe) {
		/* `smtpguard check` asks whether the fence holds: refused, always logged. */
		dec.action = ACTION_REJECT;
		strlcpy_sg(dec.rule, "self-check", sizeof(dec.rule));
		dec.cap_exceeded = false;
		d->cnt.self_checks++;
		written = true;
	} else
		written = flood_admit(d->flood, who.has_uid ? who.uid : (uid_t)-1, who.exe,
		    dec.action, now);
	alert_due = who.has_uid && alerts_count(d->alerts, who.uid, now, &in_window);
	if (written || alert_due || dec.cap_exceeded || dec.action == ACTION_TRAP ||
	    dec.action == ACTION_AUDIT)
		attrib_details(d->attrib, &who);
	e.flow_id = d->next_flow_id++;
	mark = action_mark(dec.action);
	if (dec.action == ACTION_TRAP)
		(void)follow_flow(d, &p, &who, e.flow_id, dec.action, now);
	else if (dec.action == ACTION_AUDIT) {
		struct flow *f = NULL;

		/*
		 * Only a SYN gets here (its sequence number anchors the stream);
		 * a flow we cannot follow for lack of room is let through
		 * uninspected: audit means it may go out.
		 */
		if ((p.tcp_flags & TH_SYN) &&
		    (f = follow_flow(d, &p, &who, e.flow_id, dec.action, now)) != NULL &&
		    (f->inspect = inspect_new(p.seq, d->cfg.inspect_bytes, p.dport == 465)) == NULL) {
			flow_remove(d->flows, f);
			f = NULL;
		}
		if (f == NULL)
			mark = MARK_ALLOW;
	}
	verdict(d, qp, mark);
	d->cnt.decisions[dec.action]++;

	now_ts(&e.ts);
	e.action = action_name(dec.action);
	e.rule = dec.rule;
	e.who = &who;
	e.flow = &p;
	if (written)
		emit(d, &e);
	if (dec.cap_exceeded) {
		char msg[256];

		snprintf(msg, sizeof(msg), "exception cap reached (%s): the default action "
		    "applies", dec.rule);
		raise_alert(d, &e, msg);
	}
	if (alert_due) {
		char msg[256];

		snprintf(msg, sizeof(msg), "uid %lu made %llu SMTP attempts in 10 minutes "
		    "(threshold %u)", (unsigned long)who.uid, (unsigned long long)in_window,
		    d->cfg.alert_threshold);
		raise_alert(d, &e, msg);
	}
}

static void
read_queue(struct daemon *d)
{
	/* Drain what is there; each read is one batch of packets. */
	for (int i = 0; i < 64; i++) {
		if (queue_read(d->queue, on_packet, d) == 0)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		if (errno == ENOBUFS) {
			/* The kernel dropped messages for us: counted, not fatal. */
			if (d->cnt.enobufs++ == 0)
				log_warnx("queue socket overrun (ENOBUFS); dropped packets are counted");
			continue;
		}
		log_warn("reading the queue");
		return;
	}
}

static void
ruleset_spec_of(const struct config *cfg, const uid_t *mta,
    size_t nmta, const uid_t *allow, size_t nallow, struct ruleset_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->table = TABLE_NAME;
	spec->ports = cfg->ports;
	spec->nports = cfg->nports;
	spec->mta_uids = mta;
	spec->nmta = nmta;
	spec->allow_uids = allow;
	spec->nallow = nallow;
	spec->allow_local = cfg->allow_local;
	spec->queue_num = cfg->queue_num;
	spec->mark_mask = cfg->mark_mask;
	spec->trap = true;
	spec->detect_any_port = cfg->detect_any_port;
	spec->trap_port = cfg->trap_port;
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
	if (mta_resolve(&l->cfg, PASSWD_FILE, l->mta, &l->nmta, l->mta_found,
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
	return ruleset_install(&spec, &d->native_queue, err, errlen);
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

static int
reload(struct daemon *d, char *err, size_t errlen)
{
	bool trap_changed;
	struct loaded l;
	char msg[PATH_MAX + 600];

	if (load_all(d->cfg.path, &l, err, errlen) < 0) {
		exceptions_free(&l.exc);
		return -1;
	}
	if (l.cfg.queue_num != d->cfg.queue_num ||
	    strcmp(l.cfg.control_socket, d->cfg.control_socket) != 0 ||
	    strcmp(l.cfg.log_file, d->cfg.log_file) != 0 ||
	    strcmp(l.cfg.alert_exec, d->cfg.alert_exec) != 0 ||
	    l.cfg.connect_hook != d->cfg.connect_hook) {
		snprintf(err, errlen, "queue, control_socket, connect_hook, [log] file and "
		    "[alert] exec change only with a restart; nothing applied");
		exceptions_free(&l.exc);
		return -1;
	}
	if (install_table(d, &l, err, errlen) < 0) {
		exceptions_free(&l.exc);
		return -1;
	}
	if (l.cfg.log_rate != d->cfg.log_rate || l.cfg.log_window != d->cfg.log_window) {
		struct flood *f = flood_new(l.cfg.log_rate, l.cfg.log_window, FLOOD_MAX_KEYS);

		if (f != NULL) {
			flood_expire(d->flood, time(NULL) + d->cfg.log_window, flood_summary, d);
			flood_free(d->flood);
			d->flood = f;
		}
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
	adopt(d, &l);
	/* The trap child runs with the settings it was started with: restart it. */
	if (trap_changed) {
		stop_trap(d);
		if (start_trap(d, err, errlen) < 0)
			log_warnx("restarting the trap after reload: %s (retried each second)", err);
	}
	snprintf(msg, sizeof(msg), "reloaded %s; MTA users: %s", d->cfg.path, d->mta_found);
	emit_daemon(d, msg);
	return 0;
}

static void
json_set_uids(json_t *o, const char *key, const uid_t *uids, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(uids[i]));
	json_object_set_new(o, key, a);
}

static char *
reply_ok(json_t *o)
{
	char *s;

	json_object_set_new(o, "v", json_integer(CTL_VERSION));
	json_object_set_new(o, "ok", json_true());
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

static char *
reply_error(const char *msg)
{
	json_t *o = json_pack("{s:i, s:b, s:s}", "v", CTL_VERSION, "ok", 0, "error", msg);
	char *s = json_dumps(o, JSON_COMPACT);

	json_decref(o);
	return s;
}

static char *
status_reply(struct daemon *d)
{
	json_t *o = json_object(), *dec = json_object(), *ports = json_array();
	struct queue_stats qs;

	json_object_set_new(o, "pid", json_integer(getpid()));
	json_object_set_new(o, "version", json_string(SMTPGUARD_VERSION));
	json_object_set_new(o, "started", json_integer(d->started));
	json_object_set_new(o, "config", json_string(d->cfg.path));
	json_object_set_new(o, "mta_users", json_string(d->mta_found));
	json_set_uids(o, "mta_uids", d->mta, d->nmta);
	for (size_t i = 0; i < d->cfg.nports; i++)
		json_array_append_new(ports, json_integer(d->cfg.ports[i]));
	json_object_set_new(o, "ports", ports);
	json_object_set_new(o, "action", json_string(action_name(d->cfg.action)));
	json_object_set_new(o, "allow_local", json_boolean(d->cfg.allow_local));
	json_object_set_new(o, "queue", json_integer(d->cfg.queue_num));
	json_object_set_new(o, "queue_path", json_string(d->native_queue ?
	    "native nft queue" : "xt NFQUEUE (compat)"));
	json_object_set_new(o, "table", json_boolean(ruleset_exists(TABLE_NAME) == 1));
	json_object_set_new(o, "exceptions", json_integer((json_int_t)d->exc.n));
	json_object_set_new(o, "events_file", json_string(d->cfg.log_file));
	json_object_set_new(o, "packets", json_integer((json_int_t)d->cnt.packets));
	json_object_set_new(o, "packet_bytes", json_integer((json_int_t)d->cnt.packet_bytes));
	json_object_set_new(o, "self_checks", json_integer((json_int_t)d->cnt.self_checks));
	for (int a = ACTION_REJECT; a <= ACTION_ALLOW; a++)
		json_object_set_new(dec, action_name(a),
		    json_integer((json_int_t)d->cnt.decisions[a]));
	json_object_set_new(o, "decisions", dec);
	json_object_set_new(o, "unparsable", json_integer((json_int_t)d->cnt.unparsable));
	json_object_set_new(o, "verdict_errors",
	    json_integer((json_int_t)d->cnt.verdict_errors));
	json_object_set_new(o, "socket_overruns", json_integer((json_int_t)d->cnt.enobufs));
	json_object_set_new(o, "events_lost", json_integer((json_int_t)d->cnt.events_lost));
	json_object_set_new(o, "alerts", json_integer((json_int_t)d->cnt.alerts));
	json_object_set_new(o, "inspected", json_integer((json_int_t)d->cnt.inspected));
	json_object_set_new(o, "flows_followed", json_integer((json_int_t)flow_count(d->flows)));
	json_object_set_new(o, "attribution_ns", json_pack("{s:I, s:I, s:I, s:I}",
	    "lookups", (json_int_t)d->attrib_ns.total,
	    "p50", (json_int_t)hist_quantile(&d->attrib_ns, 0.50),
	    "p99", (json_int_t)hist_quantile(&d->attrib_ns, 0.99),
	    "max", (json_int_t)d->attrib_ns.max));
	if (queue_stats(d->cfg.queue_num, &qs) == 0) {
		json_object_set_new(o, "queue_waiting", json_integer(qs.waiting));
		json_object_set_new(o, "queue_dropped", json_integer(qs.queue_dropped));
		json_object_set_new(o, "queue_user_dropped", json_integer(qs.user_dropped));
	}
	return reply_ok(o);
}

/* An exception's destinations or ports as a JSON array (empty: any). */
static json_t *
exception_list(const struct exception *x, bool cidrs)
{
	json_t *a = json_array();
	char buf[INET6_ADDRSTRLEN + 8];

	for (size_t i = 0; cidrs && i < x->nto; i++) {
		cidr_format(&x->to[i], buf, sizeof(buf));
		json_array_append_new(a, json_string(buf));
	}
	for (size_t i = 0; !cidrs && i < x->nports; i++)
		json_array_append_new(a, json_integer(x->ports[i]));
	return a;
}

static char *
exceptions_reply(struct daemon *d)
{
	json_t *o = json_object(), *list = json_array();
	char line[EXCEPTION_LINE_MAX];

	for (size_t i = 0; i < d->exc.n; i++) {
		const struct exception *x = &d->exc.v[i];
		json_t *e;

		if (exception_format(x, line, sizeof(line)) < 0)
			continue;
		e = json_pack("{s:s, s:s, s:I, s:I, s:s, s:I}", "who", x->who, "line", line,
		    "hits", (json_int_t)x->hits, "last_hit", (json_int_t)x->last_hit,
		    "mode", exception_is_plain(x) ? "kernel" : x->audit ? "audit" : "allow",
		    "cap", (json_int_t)x->cap_per_hour);
		json_set_uids(e, "uids", x->uids, x->nuids);
		json_object_set_new(e, "to", exception_list(x, true));
		json_object_set_new(e, "ports", exception_list(x, false));
		if (x->comment[0] != '\0')
			json_object_set_new(e, "comment", json_string(x->comment));
		json_array_append_new(list, e);
	}
	json_object_set_new(o, "exceptions", list);
	return reply_ok(o);
}

/*
 * allow/revoke: validate on a copy, apply the kernel set delta in one batch,
 * then persist; if persisting fails, the kernel change is undone. Either
 * both the kernel and the file change, or neither.
 */
static char *
change_exceptions(struct daemon *d, const struct ctl_request *req)
{
	struct exceptions next = { 0 };
	struct exception x;
	uid_t before[KERNEL_UIDS_MAX], after[KERNEL_UIDS_MAX];
	uid_t add[KERNEL_UIDS_MAX], del[KERNEL_UIDS_MAX];
	size_t nbefore, nafter, nadd = 0, ndel = 0;
	char err[512], msg[CTL_ARG_MAX + 64];
	char *reply;

	if (exceptions_copy(&next, &d->exc) < 0)
		return reply_error("out of memory");
	if (req->cmd == CTL_ALLOW) {
		if (exception_parse(req->arg, PASSWD_FILE, GROUP_FILE, &x, err, sizeof(err)) < 0 ||
		    exceptions_add(&next, &x, err, sizeof(err)) < 0)
			goto fail;
	} else if (exceptions_remove(&next, req->arg, err, sizeof(err)) < 0)
		goto fail;

	nbefore = exceptions_kernel_uids(&d->exc, before, KERNEL_UIDS_MAX);
	nafter = exceptions_kernel_uids(&next, after, KERNEL_UIDS_MAX);
	for (size_t i = 0; i < nafter; i++)
		if (!uid_in_sorted(after[i], before, nbefore))
			add[nadd++] = after[i];
	for (size_t i = 0; i < nbefore; i++)
		if (!uid_in_sorted(before[i], after, nafter))
			del[ndel++] = before[i];
	if (nadd > 0 && ruleset_set_uids(TABLE_NAME, "allow_uids", true, add, nadd,
	    err, sizeof(err)) < 0)
		goto fail;
	if (ndel > 0 && ruleset_set_uids(TABLE_NAME, "allow_uids", false, del, ndel,
	    err, sizeof(err)) < 0) {
		if (nadd > 0)
			(void)ruleset_set_uids(TABLE_NAME, "allow_uids", false, add, nadd,
			    msg, sizeof(msg));
		goto fail;
	}
	if (exceptions_save(d->cfg.exceptions, &next, err, sizeof(err)) < 0) {
		if (nadd > 0)
			(void)ruleset_set_uids(TABLE_NAME, "allow_uids", false, add, nadd,
			    msg, sizeof(msg));
		if (ndel > 0)
			(void)ruleset_set_uids(TABLE_NAME, "allow_uids", true, del, ndel,
			    msg, sizeof(msg));
		goto fail;
	}
	exceptions_free(&d->exc);
	d->exc = next;
	snprintf(msg, sizeof(msg), "%s %s", req->cmd == CTL_ALLOW ? "allowed:" : "revoked:",
	    req->arg);
	emit_daemon(d, msg);
	return reply_ok(json_pack("{s:s}", "done", msg));
fail:
	exceptions_free(&next);
	reply = reply_error(err);
	return reply;
}

static char *
on_control(const struct ctl_request *req, uid_t peer, void *arg)
{
	struct daemon *d = arg;
	char err[1024];

	(void)peer;
	switch (req->cmd) {
	case CTL_STATUS:
		return status_reply(d);
	case CTL_EXCEPTIONS:
		return exceptions_reply(d);
	case CTL_ALLOW:
	case CTL_REVOKE:
		return change_exceptions(d, req);
	case CTL_RELOAD:
		if (reload(d, err, sizeof(err)) < 0) {
			log_warnx("reload refused, running state kept: %s", err);
			return reply_error(err);
		}
		return reply_ok(json_pack("{s:s}", "done", "reloaded"));
	case CTL_NONE:
		break;
	}
	return reply_error("unknown command");
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
	flood_expire(d->flood, now, flood_summary, d);
	control_expire(d->control, now);
	/* A trapped flow whose session never reported (the client never connected). */
	flow_expire(d->flows, now - (time_t)d->cfg.trap_timeout - 60, flow_done, d);
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
	if ((d->flows = flow_table_new(FLOWS_MAX)) == NULL)
		fatal("flow table");
	if (start_trap(d, err, sizeof(err)) < 0)
		fatalx("%s", err);
	if ((d->attrib = attrib_open(PROC_ROOT)) == NULL)
		fatal("opening sock_diag");
	if (d->cfg.connect_hook) {
		char cgroot[PATH_MAX];

		if (attrib_hook(d->attrib, cgroot, sizeof(cgroot)) == 0)
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
	emit_daemon(d, msg);
	snprintf(msg, sizeof(msg), "MTA users detected: %s", d->mta_found);
	emit_daemon(d, msg);
	snprintf(msg, sizeof(msg), "table inet %s installed (%s, queue %u, action %s)",
	    TABLE_NAME, d->native_queue ? "native nft queue" : "xt NFQUEUE compat target",
	    d->cfg.queue_num, action_name(d->cfg.action));
	emit_daemon(d, msg);
	log_info("fence in place: %s", msg);
}

static void
teardown(struct daemon *d)
{
	/*
	 * A stop never opens the fence: a restart, an upgrade or a service
	 * manager's SIGTERM leaves the table, whose SYNs then queue to nobody
	 * and are dropped, and the next start replaces it atomically. Only
	 * `smtpguard disable` removes it, once this process is gone.
	 */
	flood_expire(d->flood, time(NULL) + d->cfg.log_window, flood_summary, d);
	emit_daemon(d, d->table_installed ? "stopped; the table stays (fail closed) until "
	    "smtpguard disable" : "stopped");
	control_close(d->control);
	stop_trap(d);
	flow_table_free(d->flows, flow_done, d);
	queue_close(d->queue);
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
	static struct daemon d = { .trap_fd = -1, .alert_fd = -1 };
	const char *config_path = DEFAULT_CONFIG;
	bool check_only = false;
	struct epoll_event evs[EPOLL_BATCH];
	int ch, n;

	while ((ch = getopt(argc, argv, "c:fhnV")) != -1) {
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
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
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
				read_queue(&d);
			else if (tag == TAG_SIGNAL)
				on_signal(&d);
			else if (tag == TAG_TIMER)
				on_timer(&d);
			else if (tag == TAG_TRAP)
				on_trap_report(&d);
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
