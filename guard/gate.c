/*
 * gate.c — the mail gate: a libmilter process that Postfix consults for
 * every message (smtpd_milters and non_smtpd_milters). Per message it
 * collects what it needs to name the origin — the client, the SASL login,
 * the envelope, the first Received field, the headers worth logging — and
 * at end of message sends the facts to smtpguardd over a socketpair and
 * waits, at most GATE_VERDICT_WAIT_MS, for the verdict: pass, hold
 * (smfi_quarantine: Postfix's hold queue), defer (4xx) or reject (5xx).
 * With no verdict in time it does what [mail] fail says (accept or
 * tempfail); it never decides itself, never counts and never logs: the
 * parent does all three.
 *
 * It runs in a child of smtpguardd, like the trap: the listening socket is
 * made as root (mode 0660, group [mail] group, in a directory of the same
 * mode), then the child chroots into an empty directory and drops to
 * [mail] user with no capabilities before libmilter's threads start. Its
 * threads live here, never in the daemon's epoll loop. One request is in
 * flight at a time (a mutex): the parent answers in microseconds, and ids
 * tie a late reply to nothing rather than to the wrong message.
 * With [mail] mta = exim the same child runs gate_exim.c's listener
 * instead of libmilter, with the same socket rules, drop and wire.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "smtpguard.h"

#define GATE_MTA_TIMEOUT	60	/* seconds libmilter waits on a quiet MTA */
#define GATE_BACKLOG		64

/* The macros we ask Postfix for, per stage (smfi_setsymlist). */
#define MACROS_CONNECT	"{client_addr} {client_port} {client_name} {daemon_addr} " \
			"{daemon_port} {daemon_name} j _"
#define MACROS_ENVFROM	"{auth_authen} {auth_type} i"
#define MACROS_EOM	"i {auth_authen}"

struct gate_conn {
	struct mail_facts	 conn;	/* what the connection said (client, HELO) */
	struct gate_request	 req;	/* the message being received */
	unsigned long		 no_reply;	/* the SMFIP_NR_* stages the MTA waits for no answer */
};

/*
 * Stages the gate only reads: it asks the MTA not to wait for an answer
 * there, so a message costs one round trip (end of message) and not one per
 * command and header. A connection the gate had no memory for at
 * negotiation asks for none of it and is answered at every stage.
 */
#define GATE_NO_REPLY	(SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR)

static struct {
	int		 parent;
	bool		 fail_tempfail;
	uint64_t	 next_id;
	pthread_mutex_t	 lock;
} gate = { .parent = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

static void
copy_macro(SMFICTX *ctx, const char *name, char *out, size_t len)
{
	const char *v = smfi_getsymval(ctx, (char *)name);

	if (v != NULL && out[0] == '\0')
		strlcpy_sg(out, v, len);
}

static uint16_t
macro_port(SMFICTX *ctx, const char *name)
{
	const char *v = smfi_getsymval(ctx, (char *)name);
	long p;
	char *end;

	if (v == NULL)
		return 0;
	p = strtol(v, &end, 10);
	return *end == '\0' && p > 0 && p <= 65535 ? (uint16_t)p : 0;
}

static struct gate_conn *
conn_of(SMFICTX *ctx)
{
	struct gate_conn *c = smfi_getpriv(ctx);

	if (c == NULL && (c = calloc(1, sizeof(*c))) != NULL) {
		mailorigin_reset(&c->conn, "postfix");
		(void)smfi_setpriv(ctx, c);
	}
	return c;
}

/* SMFIS_CONTINUE, or SMFIS_NOREPLY where the MTA waits for no answer at STAGE. */
static sfsistat
read_on(const struct gate_conn *c, unsigned long stage)
{
	return c != NULL && (c->no_reply & stage) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat
gate_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
    unsigned long f3, unsigned long *pf0, unsigned long *pf1, unsigned long *pf2,
    unsigned long *pf3)
{
	(void)f2;
	(void)f3;
	struct gate_conn *c = conn_of(ctx);

	*pf0 = f0 & (SMFIF_QUARANTINE | SMFIF_SETSYMLIST);
	/* Bodies, unknown commands and the end of headers are not ours to see. */
	*pf1 = f1 & (SMFIP_NOBODY | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_NOEOH);
	if (c != NULL) {
		c->no_reply = f1 & GATE_NO_REPLY;
		*pf1 |= c->no_reply;
	}
	*pf2 = 0;
	*pf3 = 0;
	if (f0 & SMFIF_SETSYMLIST) {
		(void)smfi_setsymlist(ctx, SMFIM_CONNECT, MACROS_CONNECT);
		(void)smfi_setsymlist(ctx, SMFIM_ENVFROM, MACROS_ENVFROM);
		(void)smfi_setsymlist(ctx, SMFIM_EOM, MACROS_EOM);
	}
	return SMFIS_CONTINUE;
}


static sfsistat
gate_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *sa)
{
	struct gate_conn *c = conn_of(ctx);
	struct mail_facts *f;

	if (c == NULL)
		return gate.fail_tempfail ? SMFIS_TEMPFAIL : SMFIS_ACCEPT;
	f = &c->conn;
	if (hostname != NULL)
		strlcpy_sg(f->client_name, hostname, sizeof(f->client_name));
	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, f->client_addr, sizeof(f->client_addr));
		f->client_port = ntohs(sin->sin_port);
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, f->client_addr, sizeof(f->client_addr));
		f->client_port = ntohs(sin6->sin6_port);
	}
	copy_macro(ctx, "{client_addr}", f->client_addr, sizeof(f->client_addr));
	copy_macro(ctx, "{daemon_addr}", f->daemon_addr, sizeof(f->daemon_addr));
	copy_macro(ctx, "{daemon_name}", f->daemon_name, sizeof(f->daemon_name));
	f->daemon_port = macro_port(ctx, "{daemon_port}");
	if (f->client_port == 0)
		f->client_port = macro_port(ctx, "{client_port}");
	/*
	 * Postfix hands non-SMTP mail (sendmail, pickup) to its milters as a
	 * made-up connection from localhost with port 0: no TCP client can
	 * have port 0, so that is what tells a local submission apart.
	 */
	f->local_submit = f->client_port == 0 && mailorigin_is_loopback(f->client_addr);
	return SMFIS_CONTINUE;
}

static sfsistat
gate_helo(SMFICTX *ctx, char *helo)
{
	struct gate_conn *c = conn_of(ctx);

	if (c != NULL && helo != NULL)
		strlcpy_sg(c->conn.info.helo, helo, sizeof(c->conn.info.helo));
	return read_on(c, SMFIP_NR_HELO);
}

static sfsistat
gate_envfrom(SMFICTX *ctx, char **argv)
{
	struct gate_conn *c = conn_of(ctx);
	struct mail_facts *f;

	if (c == NULL)	/* never negotiated "no reply" either: it can answer */
		return gate.fail_tempfail ? SMFIS_TEMPFAIL : SMFIS_ACCEPT;
	/* A new message on this connection: the connection's facts, nothing else. */
	memset(&c->req, 0, sizeof(c->req));
	f = &c->req.facts;
	*f = c->conn;
	if (argv != NULL && argv[0] != NULL)
		mailorigin_mail_from(f, argv[0]);
	copy_macro(ctx, "{auth_authen}", f->sasl_user, sizeof(f->sasl_user));
	copy_macro(ctx, "{auth_type}", f->info.auth_mech, sizeof(f->info.auth_mech));
	copy_macro(ctx, "i", f->queue_id, sizeof(f->queue_id));
	return read_on(c, SMFIP_NR_MAIL);
}

static sfsistat
gate_envrcpt(SMFICTX *ctx, char **argv)
{
	struct gate_conn *c = conn_of(ctx);

	if (c != NULL && argv != NULL && argv[0] != NULL)
		mailorigin_rcpt(&c->req.facts, argv[0], smfi_getsymval(ctx, "{rcpt_mailer}"));
	return read_on(c, SMFIP_NR_RCPT);
}

static sfsistat
gate_header(SMFICTX *ctx, char *name, char *value)
{
	struct gate_conn *c = conn_of(ctx);

	if (c != NULL && name != NULL && value != NULL)
		mailorigin_header(&c->req.facts, name, value);
	return read_on(c, SMFIP_NR_HDR);
}

/*
 * One round trip to the parent: 0 with its verdict in rep; -1 when it
 * does not answer in time; -2 when it is gone (so is the gate, then).
 */
int
gate_ask(struct gate_request *req, struct gate_reply *rep)
{
	struct pollfd pfd = { .events = POLLIN };
	uint64_t deadline = mono_ns() + (uint64_t)GATE_VERDICT_WAIT_MS * 1000000;
	static struct gate_reply buf;
	int rc = -1;

	pthread_mutex_lock(&gate.lock);
	pfd.fd = gate.parent;
	req->version = GATEPROTO_VERSION;
	req->len = sizeof(*req);
	req->id = ++gate.next_id;
	if (send(gate.parent, req, sizeof(*req), MSG_NOSIGNAL) != (ssize_t)sizeof(*req))
		goto out;
	for (;;) {
		uint64_t now = mono_ns();
		ssize_t n;

		if (now >= deadline)
			goto out;
		if (poll(&pfd, 1, (int)((deadline - now) / 1000000) + 1) <= 0)
			continue;
		if ((n = recv(gate.parent, &buf, sizeof(buf), MSG_DONTWAIT)) <= 0) {
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			rc = -2;
			goto out;
		}
		/* A reply to a request that timed out earlier belongs to nothing. */
		if (gateproto_check_reply(&buf, (size_t)n, rep) == 0 && rep->id == req->id) {
			rc = 0;
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&gate.lock);
	return rc;
}

/* libmilter's side of gate_ask: a parent gone stops the milter. */
static int
ask_parent(struct gate_request *req, struct gate_reply *rep)
{
	int rc = gate_ask(req, rep);

	if (rc == -2)
		(void)smfi_stop();	/* the parent is gone: so are we */
	return rc < 0 ? -1 : 0;
}

static sfsistat
gate_eom(SMFICTX *ctx)
{
	struct gate_conn *c = conn_of(ctx);
	struct gate_reply rep;
	char reason[SMTP_FIELD_MAX + 32];

	if (c == NULL)
		return gate.fail_tempfail ? SMFIS_TEMPFAIL : SMFIS_CONTINUE;
	copy_macro(ctx, "i", c->req.facts.queue_id, sizeof(c->req.facts.queue_id));
	copy_macro(ctx, "{auth_authen}", c->req.facts.sasl_user,
	    sizeof(c->req.facts.sasl_user));
	if (ask_parent(&c->req, &rep) < 0) {
		if (!gate.fail_tempfail)
			return SMFIS_CONTINUE;
		(void)smfi_setreply(ctx, "451", "4.3.0", "mail gate unavailable, try again later");
		return SMFIS_TEMPFAIL;
	}
	snprintf(reason, sizeof(reason), "%s", rep.reason[0] ? rep.reason :
	    "sending limit reached");
	switch ((enum mail_action)rep.action) {
	case MAIL_PASS:
		return SMFIS_CONTINUE;
	case MAIL_HOLD:
		/* Postfix puts a quarantined message on hold: kept, not delivered. */
		if (smfi_quarantine(ctx, reason) != MI_SUCCESS && gate.fail_tempfail)
			return SMFIS_TEMPFAIL;
		return SMFIS_CONTINUE;
	case MAIL_DEFER:
		(void)smfi_setreply(ctx, "451", "4.7.1", reason);
		return SMFIS_TEMPFAIL;
	case MAIL_REJECT:
		(void)smfi_setreply(ctx, "550", "5.7.1", reason);
		return SMFIS_REJECT;
	}
	return SMFIS_CONTINUE;
}

static sfsistat
gate_abort(SMFICTX *ctx)
{
	struct gate_conn *c = smfi_getpriv(ctx);

	if (c != NULL)
		memset(&c->req, 0, sizeof(c->req));
	return SMFIS_CONTINUE;
}

static sfsistat
gate_close(SMFICTX *ctx)
{
	free(smfi_getpriv(ctx));
	(void)smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

static struct smfiDesc gate_desc = {
	.xxfi_name = "smtpguard",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_QUARANTINE,
	.xxfi_connect = gate_connect,
	.xxfi_helo = gate_helo,
	.xxfi_envfrom = gate_envfrom,
	.xxfi_envrcpt = gate_envrcpt,
	.xxfi_header = gate_header,
	.xxfi_eom = gate_eom,
	.xxfi_abort = gate_abort,
	.xxfi_close = gate_close,
	.xxfi_negotiate = gate_negotiate,
};

static void __attribute__((noreturn))
gate_child(const struct config *cfg, const char *chroot_dir, int parent, gid_t group)
{
	struct passwd *pw = getpwnam(cfg->mail_user);
	uid_t uid = pw ? pw->pw_uid : 65534;
	gid_t gid = pw ? pw->pw_gid : 65534;
	pid_t ppid = getppid();
	char conn[PATH_MAX + 8];
	sigset_t none;
	int listener = -1;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* 0-2 on /dev/null, and nothing of the parent's but our socketpair end. */
	if (close_inherited(&parent, 1) < 0)
		_exit(1);
	gate.parent = parent;
	gate.fail_tempfail = cfg->mail_fail_tempfail;
	/* The socket is made here, as root, before anything is dropped. */
	if (cfg->mail_exim) {
		if ((listener = gate_exim_listen(cfg->mail_socket, group)) < 0)
			_exit(2);
	} else {
		snprintf(conn, sizeof(conn), "unix:%s", cfg->mail_socket);
		umask(0117);
		if (smfi_register(gate_desc) != MI_SUCCESS || smfi_setconn(conn) != MI_SUCCESS ||
		    smfi_settimeout(GATE_MTA_TIMEOUT) != MI_SUCCESS ||
		    smfi_setbacklog(GATE_BACKLOG) != MI_SUCCESS ||
		    smfi_opensocket(true) != MI_SUCCESS)
			_exit(2);
		if (fchownat(AT_FDCWD, cfg->mail_socket, 0, group, 0) < 0 ||
		    fchmodat(AT_FDCWD, cfg->mail_socket, 0660, 0) < 0)
			_exit(3);
	}
	/*
	 * The parent-death signal is set after the drop, which clears it; and
	 * a parent that died before it was set is caught by getppid().
	 */
	if (chroot(chroot_dir) < 0 || chdir("/") < 0 || setgroups(0, NULL) < 0 ||
	    setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != ppid)
		_exit(4);
	if (cfg->mail_exim)
		_exit(gate_exim_main(listener, cfg->mail_fail_tempfail));
	_exit(smfi_main() == MI_SUCCESS ? 0 : 5);
}

pid_t
gate_start(const struct config *cfg, const char *chroot_dir, int *parent_fd, char *err,
    size_t errlen)
{
	struct sockaddr_un sun;
	struct group *gr = getgrnam(cfg->mail_group);
	char dir[PATH_MAX];
	int sp[2];
	pid_t pid;

	if (gr == NULL) {
		snprintf(err, errlen, "[mail] group %s: no such group (the MTA's group, which "
		    "may use the gate's socket)", cfg->mail_group);
		return -1;
	}
	if (strlen(cfg->mail_socket) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "[mail] socket %s: longer than a unix socket path may be",
		    cfg->mail_socket);
		return -1;
	}
	strlcpy_sg(dir, cfg->mail_socket, sizeof(dir));
	dirname(dir);
	/* Its directory: only root and the MTA's group get in. */
	/* fchownat/fchmodat: what the sandbox allows a restart after set-up. */
	if (ensure_parent_dir(cfg->mail_socket, 0755) < 0 ||
	    fchownat(AT_FDCWD, dir, 0, gr->gr_gid, 0) < 0 ||
	    fchmodat(AT_FDCWD, dir, 0750, 0) < 0) {
		snprintf(err, errlen, "gate socket directory %s: %s", dir, strerror(errno));
		return -1;
	}
	if (ensure_parent_dir(chroot_dir, 0755) < 0 ||
	    (mkdir(chroot_dir, 0755) < 0 && errno != EEXIST)) {
		snprintf(err, errlen, "gate chroot %s: %s", chroot_dir, strerror(errno));
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -1;
	}
	if ((pid = fork()) < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	if (pid == 0) {
		close(sp[0]);
		gate_child(cfg, chroot_dir, sp[1], gr->gr_gid);
	}
	close(sp[1]);
	*parent_fd = sp[0];
	return pid;
}
