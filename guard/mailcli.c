/*
 * mailcli.c — the admin's commands for mail the gate holds, and for wiring
 * the gate into the MTA: `held`, `release`, `purge`, `mail enable|disable`.
 * Every change goes through the MTA's own tools (postqueue, postsuper,
 * postconf, postfix; exim -bp/-Mt/-Mrm), never by writing its queue; the
 * listing is the MTA's (postqueue -j), joined by queue id with the gate's
 * mail events for the origin and subject. mail enable keeps a byte copy of
 * main.cf in smtpguard's state directory so that mail disable can put it
 * back exactly, or, if the admin edited main.cf since, undo only our own
 * entries. It never parses the MTA's queue files and never decides what is
 * held (the gate does). Called from smtpguard.c with the loaded config.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "smtpguard.h"

#define RUN_OUT_MAX	(256 * 1024 * 1024)	/* a queue listing: ~1 M held messages */
#define RUN_ERR_MAX	(64 * 1024)		/* what a tool says on stderr */
#define HELD_MAX	(1024 * 1024)		/* messages listed or acted on at once */
#define IDS_PER_RUN	500			/* queue ids per postsuper/exim command line */
#define FLUSH_EACH_MAX	100			/* more released: one postqueue -f, not -i each */
#define POSTFIX_DIR	"/etc/postfix"
#define MAIN_CF_MAX	(16 * 1024 * 1024)	/* a main.cf is a few KiB */
#define STATE_PREFIX	"mta-postfix-"		/* mail enable's records in the state dir */

extern char **environ;

enum mq_kind { MQ_POSTFIX, MQ_EXIM };

struct mq_mta {
	enum mq_kind	 kind;
	const char	*config;	/* --postfix-config DIR / --exim-config FILE, or NULL */
	char		 exim[PATH_MAX];	/* the exim binary */
};

static void
say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
	va_list ap;

	fputs("smtpguard: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* --- running the MTA's tools ---------------------------------------------------- */

struct run {
	char	*out;	/* stdout, NUL-terminated */
	size_t	 outlen;
	char	 err[RUN_ERR_MAX];	/* stderr, NUL-terminated, cut */
	int	 status;	/* exit status; -1: killed or not run */
};

static int
append(char **buf, size_t *len, size_t *cap, const char *p, size_t n, size_t max)
{
	if (*len + n + 1 > max) {
		errno = EFBIG;
		return -1;
	}
	if (*len + n + 1 > *cap) {
		size_t ncap = *cap ? *cap * 2 : 65536;
		char *grown;

		while (ncap < *len + n + 1)
			ncap *= 2;
		if ((grown = realloc(*buf, ncap)) == NULL)
			return -1;
		*buf = grown;
		*cap = ncap;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/* Runs argv (found in PATH) with stdin from /dev/null; both outputs kept. */
static int
run(char *const argv[], struct run *r)
{
	posix_spawn_file_actions_t fa;
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, rc, status;
	size_t cap = 0, elen = 0;
	pid_t pid;
	char buf[65536];
	bool big = false;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0)
		goto fail;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	po[1] = pe[1] = -1;
	if (rc != 0) {
		errno = rc;
		goto fail;
	}
	for (int open_fds = 2; open_fds > 0;) {
		struct pollfd pf[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
		ssize_t n;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || pf[i].revents == 0)
				continue;
			n = read(pf[i].fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(i == 0 ? po[0] : pe[0]);
				if (i == 0)
					po[0] = -1;
				else
					pe[0] = -1;
				open_fds--;
				continue;
			}
			if (i == 0 && !big && append(&r->out, &r->outlen, &cap, buf, (size_t)n,
			    RUN_OUT_MAX) < 0)
				big = true;	/* keep draining; refused below */
			if (i == 1 && elen + 1 < sizeof(r->err)) {
				size_t k = (size_t)n < sizeof(r->err) - elen - 1 ? (size_t)n :
				    sizeof(r->err) - elen - 1;

				memcpy(r->err + elen, buf, k);
				elen += k;
				r->err[elen] = '\0';
			}
		}
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			goto fail;
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (big) {
		errno = EFBIG;
		goto fail;
	}
	if (r->out == NULL && append(&r->out, &r->outlen, &cap, "", 0, RUN_OUT_MAX) < 0)
		goto fail;
	return 0;
fail:
	rc = errno;
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	free(r->out);
	r->out = NULL;
	errno = rc;
	return -1;
}

/* The first line of a tool's complaint, for one-line messages. */
static const char *
first_line(char *s)
{
	s[strcspn(s, "\n")] = '\0';
	return s[0] ? s : "(it said nothing)";
}

/* Runs argv; 0 if it exited 0, else -1 with what went wrong said. */
static int
run_ok(char *const argv[], struct run *r)
{
	if (run(argv, r) < 0) {
		say("cannot run %s: %s", argv[0], strerror(errno));
		return -1;
	}
	if (r->status != 0) {
		say("%s failed (exit %d): %s", argv[0], r->status, first_line(r->err));
		free(r->out);
		r->out = NULL;
		return -1;
	}
	return 0;
}

static bool
in_path(const char *name)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (path == NULL)
		path = "/usr/sbin:/usr/bin:/sbin:/bin";
	for (const char *p = path; *p != '\0';) {
		size_t n = strcspn(p, ":");

		if (n > 0 && (size_t)snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, name) <
		    sizeof(buf) && access(buf, X_OK) == 0)
			return true;
		p += n + (p[n] == ':');
	}
	return false;
}

/*
 * Which MTA: the one named by --postfix-config / --exim-config, else the
 * one installed (Postfix first: Debian installs one MTA at a time).
 */
static int
mta_pick(struct mq_mta *m, const char *postfix_dir, const char *exim_conf)
{
	memset(m, 0, sizeof(*m));
	if (postfix_dir != NULL && exim_conf != NULL) {
		say("--postfix-config and --exim-config name two MTAs; give one");
		return -1;
	}
	if (postfix_dir != NULL || (exim_conf == NULL && in_path("postqueue"))) {
		m->kind = MQ_POSTFIX;
		m->config = postfix_dir;
		return 0;
	}
	m->kind = MQ_EXIM;
	m->config = exim_conf;
	strlcpy_sg(m->exim, in_path("exim4") ? "exim4" : "exim", sizeof(m->exim));
	if (!in_path(m->exim)) {
		say("no MTA found: neither Postfix (postqueue) nor Exim (exim4, exim) is in PATH");
		return -1;
	}
	return 0;
}

/* --- the held list ---------------------------------------------------------------- */

struct held {
	struct mailq_msg	*v;
	size_t			 n, cap;
};

static int
held_add(struct held *h, const struct mailq_msg *m)
{
	if (h->n == HELD_MAX) {
		errno = E2BIG;
		return -1;
	}
	if (h->n == h->cap) {
		size_t ncap = h->cap ? h->cap * 2 : 256;
		struct mailq_msg *grown = realloc(h->v, ncap * sizeof(*grown));

		if (grown == NULL)
			return -1;
		h->v = grown;
		h->cap = ncap;
	}
	h->v[h->n++] = *m;
	return 0;
}

static int
by_qid(const void *a, const void *b)
{
	return strcmp(((const struct mailq_msg *)a)->queue_id,
	    ((const struct mailq_msg *)b)->queue_id);
}

/* The held messages, as the MTA lists them; -1 with the reason said. */
static int
list_held(const struct mq_mta *m, struct held *h)
{
	char *argv[8], err[256];
	int argc = 0, rc = -1;
	struct run r;
	struct mailq_msg msg, cur = { 0 };
	size_t bad = 0;

	memset(h, 0, sizeof(*h));
	if (m->kind == MQ_POSTFIX) {
		argv[argc++] = "postqueue";
		if (m->config != NULL) {
			argv[argc++] = "-c";
			argv[argc++] = (char *)m->config;
		}
		argv[argc++] = "-j";
	} else {
		argv[argc++] = (char *)m->exim;
		if (m->config != NULL) {
			argv[argc++] = "-C";
			argv[argc++] = (char *)m->config;
		}
		argv[argc++] = "-bp";
	}
	argv[argc] = NULL;
	if (run_ok(argv, &r) < 0)
		return -1;
	for (char *line = r.out, *nl, *next; *line != '\0'; line = next) {
		int k;

		nl = line + strcspn(line, "\n");
		next = nl + (*nl == '\n');
		*nl = '\0';
		if (m->kind == MQ_POSTFIX) {
			if (line[0] == '\0')
				continue;
			if (mailq_postqueue_line(line, (size_t)(nl - line), &msg, err,
			    sizeof(err)) < 0) {
				bad++;
				continue;
			}
			if (msg.held && held_add(h, &msg) < 0)
				goto out;
			continue;
		}
		msg = cur;	/* the message so far: a head line replaces it */
		if ((k = mailq_exim_line(line, &cur, err, sizeof(err))) < 0) {
			bad++;
			continue;
		}
		if (k == 1 && msg.held && held_add(h, &msg) < 0)
			goto out;
	}
	if (m->kind == MQ_EXIM && cur.held && held_add(h, &cur) < 0)
		goto out;
	if (bad > 0)
		say("warning: %zu lines of the queue listing were not understood and are left out",
		    bad);
	qsort(h->v, h->n, sizeof(*h->v), by_qid);
	rc = 0;
out:
	if (rc < 0)
		say("listing the queue: %s", strerror(errno));
	free(r.out);
	return rc;
}

/* Origin and subject from the mail events of the log (and its last rotation). */
static void
join_events(const struct config *cfg, struct held *h)
{
	char path[PATH_MAX + 4], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	struct mailq_event ev;

	if (h->n == 0)
		return;
	for (int pass = 0; pass < 2; pass++) {
		FILE *fp;

		snprintf(path, sizeof(path), "%s%s", cfg->log_file, pass == 0 ? ".1" : "");
		if ((fp = fopen(path, "re")) == NULL) {
			if (pass == 1 && errno != ENOENT)
				say("warning: %s: %s (origins unknown)", path, strerror(errno));
			continue;
		}
		while ((n = getline(&line, &cap, fp)) > 0) {
			struct mailq_msg key, *m;

			if (mailq_event_line(line, (size_t)n, &ev) != 1)
				continue;
			strlcpy_sg(key.queue_id, ev.queue_id, sizeof(key.queue_id));
			if ((m = bsearch(&key, h->v, h->n, sizeof(*h->v), by_qid)) == NULL)
				continue;
			/* The newest event wins: Postfix's short queue ids come back. */
			strlcpy_sg(m->origin, ev.origin, sizeof(m->origin));
			strlcpy_sg(m->domain, ev.domain, sizeof(m->domain));
			strlcpy_sg(m->subject, ev.subject, sizeof(m->subject));
		}
		fclose(fp);
	}
	free(line);
}

static int
by_origin(const void *a, const void *b)
{
	const struct mailq_msg *x = a, *y = b;
	int c;

	/* Known origins by name, the unknown last; inside one, oldest first. */
	if ((x->origin[0] == '\0') != (y->origin[0] == '\0'))
		return x->origin[0] == '\0' ? 1 : -1;
	if ((c = strcmp(x->origin, y->origin)) != 0)
		return c;
	if (x->arrival != y->arrival)
		return x->arrival < y->arrival ? -1 : 1;
	return strcmp(x->queue_id, y->queue_id);
}

/* "ORIGIN" on the command line: an origin key, "unknown", or NULL if it is a queue id. */
static int
selector(const char *arg, bool exim, char *origin, size_t len, bool *is_qid)
{
	char err[512];

	*is_qid = false;
	if (strcmp(arg, "unknown") == 0) {
		strlcpy_sg(origin, arg, len);
		return 0;
	}
	if (strchr(arg, ':') != NULL || strcmp(arg, "bounce") == 0) {
		if (mailq_origin_key(arg, origin, len, err, sizeof(err)) < 0) {
			say("%s", err);
			return -1;
		}
		return 0;
	}
	if (!mailq_valid_qid(arg, exim)) {
		say("'%s' is neither an origin (sasl:LOGIN, user:NAME, domain:DOMAIN, "
		    "client:ADDR, bounce, unknown) nor a queue id", arg);
		return -1;
	}
	strlcpy_sg(origin, arg, len);
	*is_qid = true;
	return 0;
}

static void
print_held_json(const struct held *h, const char *origin)
{
	json_t *a = json_array();

	for (size_t i = 0; i < h->n; i++) {
		const struct mailq_msg *m = &h->v[i];
		json_t *o;

		if (origin != NULL && !mailq_matches(m, origin))
			continue;
		o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "queue_id", m->queue_id,
		    "queue_name", m->queue_name, "sender", m->sender, "rcpt_count",
		    (json_int_t)m->nrcpt, "arrival_time", (json_int_t)m->arrival, "size",
		    (json_int_t)m->size);
		if (o == NULL)
			continue;	/* not UTF-8: jansson refuses it */
		if (m->origin[0] != '\0')
			json_object_set_new(o, "origin", json_string(m->origin));
		if (m->domain[0] != '\0')
			json_object_set_new(o, "domain", json_string(m->domain));
		if (m->subject[0] != '\0')
			json_object_set_new(o, "subject", json_string(m->subject));
		json_array_append_new(a, o);
	}
	json_dumpf(a, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(a);
}

static void
print_held(const struct held *h, const char *origin, const struct mq_mta *m)
{
	size_t shown = 0;
	const char *group = NULL;

	for (size_t i = 0; i < h->n; i++)
		shown += origin == NULL || mailq_matches(&h->v[i], origin);
	if (shown == 0) {
		printf("no held mail%s%s\n", origin ? " of " : "", origin ? origin : "");
		return;
	}
	printf("%zu held message%s in %s%s%s\n", shown, shown == 1 ? "" : "s",
	    m->kind == MQ_POSTFIX ? "Postfix's hold queue" : "Exim's queue (frozen)",
	    m->config ? " of " : "", m->config ? m->config : "");
	for (size_t i = 0; i < h->n; i++) {
		const struct mailq_msg *x = &h->v[i];
		char when[32] = "-";
		time_t t = (time_t)x->arrival;
		size_t k = 0;

		if (origin != NULL && !mailq_matches(x, origin))
			continue;
		if (group == NULL || strcmp(group, x->origin) != 0) {
			group = x->origin;
			for (size_t j = i; j < h->n && strcmp(h->v[j].origin, group) == 0; j++)
				k += origin == NULL || mailq_matches(&h->v[j], origin);
			if (group[0] != '\0')
				printf("\n%s: %zu held\n", group, k);
			else
				printf("\norigin unknown: %zu held (no mail event names them: held "
				    "by hand, or before the gate logged)\n", k);
			printf("  %-16s %-19s %5s  %-32s %s\n", "QUEUE ID", "ARRIVED", "RCPTS",
			    "FROM", "SUBJECT");
		}
		if (t > 0)
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&t));
		printf("  %-16s %-19s %5lu  ", x->queue_id, when, (unsigned long)x->nrcpt);
		put_safe(stdout, x->sender[0] ? x->sender : "<>", 32);
		for (size_t pad = strlen(x->sender[0] ? x->sender : "<>"); pad < 32; pad++)
			putchar(' ');
		putchar(' ');
		put_safe(stdout, x->subject[0] ? x->subject : "-", 80);
		putchar('\n');
	}
	printf("\n(smtpguard release|purge ORIGIN|QUEUE_ID)\n");
}

/* The flags every mail command takes: the MTA instance. */
struct mailopts {
	const char	*postfix_dir, *exim_conf;
	bool		 json;
	const char	*arg;	/* the one positional argument */
};

static int
parse_opts(int argc, char **argv, bool json_ok, struct mailopts *o, const char *usage)
{
	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--postfix-config") == 0 && i + 1 < argc)
			o->postfix_dir = argv[++i];
		else if (strcmp(argv[i], "--exim-config") == 0 && i + 1 < argc)
			o->exim_conf = argv[++i];
		else if (json_ok && strcmp(argv[i], "--json") == 0)
			o->json = true;
		else if (argv[i][0] != '-' && o->arg == NULL)
			o->arg = argv[i];
		else {
			say("%s: unexpected argument '%s' (usage: smtpguard %s %s)", argv[0],
			    argv[i], argv[0], usage);
			return -1;
		}
	}
	if ((o->postfix_dir != NULL && o->postfix_dir[0] != '/') ||
	    (o->exim_conf != NULL && o->exim_conf[0] != '/')) {
		say("%s: the MTA's configuration is an absolute path", argv[0]);
		return -1;
	}
	return 0;
}

int
mailcli_held(const struct config *cfg, int argc, char **argv)
{
	struct mailopts o;
	struct mq_mta m;
	struct held h;
	char origin[MAIL_ORIGIN_MAX];
	bool is_qid;

	if (parse_opts(argc, argv, true, &o,
	    "[ORIGIN] [--json] [--postfix-config DIR | --exim-config FILE]") < 0)
		return 2;
	if (o.arg != NULL && (selector(o.arg, o.exim_conf != NULL, origin, sizeof(origin),
	    &is_qid) < 0 || is_qid)) {
		if (is_qid)
			say("held takes an origin, not a queue id (postqueue -j lists one message)");
		return 2;
	}
	if (mta_pick(&m, o.postfix_dir, o.exim_conf) < 0 || list_held(&m, &h) < 0)
		return 1;
	join_events(cfg, &h);
	qsort(h.v, h.n, sizeof(*h.v), by_origin);
	if (o.json)
		print_held_json(&h, o.arg ? origin : NULL);
	else
		print_held(&h, o.arg ? origin : NULL, &m);
	free(h.v);
	return 0;
}

/* --- release and purge ------------------------------------------------------------ */

/* postsuper -H|-d / exim -Mt|-Mrm over the ids, IDS_PER_RUN at a time. */
static int
act_on(const struct mq_mta *m, bool release, char **ids, size_t n)
{
	char *argv[IDS_PER_RUN * 2 + 8];

	for (size_t done = 0; done < n;) {
		int argc = 0;
		struct run r;

		if (m->kind == MQ_POSTFIX) {
			argv[argc++] = "postsuper";
			if (m->config != NULL) {
				argv[argc++] = "-c";
				argv[argc++] = (char *)m->config;
			}
			for (size_t i = 0; i < IDS_PER_RUN && done < n; i++, done++) {
				argv[argc++] = release ? "-H" : "-d";
				argv[argc++] = ids[done];
			}
			argv[argc++] = "hold";	/* only from the hold queue */
		} else {
			argv[argc++] = (char *)m->exim;
			if (m->config != NULL) {
				argv[argc++] = "-C";
				argv[argc++] = (char *)m->config;
			}
			argv[argc++] = release ? "-Mt" : "-Mrm";
			for (size_t i = 0; i < IDS_PER_RUN && done < n; i++, done++)
				argv[argc++] = ids[done];
		}
		argv[argc] = NULL;
		if (run_ok(argv, &r) < 0)
			return -1;
		free(r.out);
	}
	return 0;
}

/* Released Postfix mail sits in the deferred queue: ask for its delivery now. */
static void
flush_released(const struct mq_mta *m, char **ids, size_t n)
{
	char *argv[8];
	int base = 0;
	struct run r;

	argv[base++] = "postqueue";
	if (m->config != NULL) {
		argv[base++] = "-c";
		argv[base++] = (char *)m->config;
	}
	if (n > FLUSH_EACH_MAX) {
		argv[base] = "-f";
		argv[base + 1] = NULL;
		if (run_ok(argv, &r) == 0)
			free(r.out);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		argv[base] = "-i";
		argv[base + 1] = ids[i];
		argv[base + 2] = NULL;
		if (run(argv, &r) == 0)
			free(r.out);	/* gone already (delivered): nothing to schedule */
	}
}

/* Tells the daemon what was done, for its event log; false if it is not running. */
static bool
note_daemon(const struct config *cfg, const char *note)
{
	char err[512], *reply;

	if ((reply = control_call(cfg->control_socket, CTL_MAILOP, note, err,
	    sizeof(err))) == NULL)
		return false;
	free(reply);
	return true;
}

int
mailcli_act(const struct config *cfg, int argc, char **argv)
{
	bool release = strcmp(argv[0], "release") == 0, is_qid;
	struct mailopts o;
	struct mq_mta m;
	struct held h, after;
	char sel[MAIL_ORIGIN_MAX], note[512];
	char **ids = NULL;
	size_t n = 0, still = 0;
	int rc = 1;

	if (parse_opts(argc, argv, false, &o,
	    "ORIGIN|QUEUE_ID [--postfix-config DIR | --exim-config FILE]") < 0)
		return 2;
	if (o.arg == NULL) {
		say("usage: smtpguard %s ORIGIN|QUEUE_ID [--postfix-config DIR | "
		    "--exim-config FILE]", argv[0]);
		return 2;
	}
	if (selector(o.arg, o.exim_conf != NULL || (o.postfix_dir == NULL &&
	    !in_path("postqueue")), sel, sizeof(sel), &is_qid) < 0)
		return 2;
	if (geteuid() != 0) {
		say("%s must run as root (it changes the MTA's queue)", argv[0]);
		return 1;
	}
	if (mta_pick(&m, o.postfix_dir, o.exim_conf) < 0 || list_held(&m, &h) < 0)
		return 1;
	join_events(cfg, &h);
	if ((ids = calloc(h.n + 1, sizeof(*ids))) == NULL) {
		say("out of memory");
		goto out;
	}
	for (size_t i = 0; i < h.n; i++)
		if (is_qid ? strcmp(h.v[i].queue_id, sel) == 0 : mailq_matches(&h.v[i], sel))
			ids[n++] = h.v[i].queue_id;
	if (n == 0) {
		if (is_qid)
			say("%s is not held (smtpguard held lists what is)", sel);
		else
			say("no held mail of %s (smtpguard held lists what is)", sel);
		goto out;
	}
	if (act_on(&m, release, ids, n) < 0)
		goto out;
	if (release && m.kind == MQ_POSTFIX)
		flush_released(&m, ids, n);
	/* What the MTA did, counted by listing again: ours that are still held. */
	if (list_held(&m, &after) == 0) {
		for (size_t i = 0; i < n; i++) {
			struct mailq_msg key;

			strlcpy_sg(key.queue_id, ids[i], sizeof(key.queue_id));
			still += bsearch(&key, after.v, after.n, sizeof(*after.v), by_qid) != NULL;
		}
		free(after.v);
	} else
		still = 0;	/* said above; the tool itself reported success */
	snprintf(note, sizeof(note), "%s%s %zu held message%s of %s (%s)", CTL_MAILOP_PREFIX,
	    release ? "released" : "purged", n - still, n - still == 1 ? "" : "s", sel,
	    m.kind == MQ_POSTFIX ? (release ? "postsuper -H" : "postsuper -d") :
	    (release ? "exim -Mt" : "exim -Mrm"));
	printf("%s %zu message%s of %s%s\n", release ? "released" : "purged", n - still,
	    n - still == 1 ? "" : "s", sel, release ? (m.kind == MQ_POSTFIX ?
	    " (delivery scheduled)" : " (thawed: delivered at the next queue run)") : "");
	if (still > 0)
		printf("warning: %zu of them are still held (the MTA refused or was busy; "
		    "smtpguard held shows them)\n", still);
	if (note_daemon(cfg, note))
		printf("logged by smtpguardd\n");
	else
		printf("(smtpguardd is not running: done directly with the MTA's tools, not in "
		    "the event log)\n");
	rc = still > 0 ? 1 : 0;
out:
	free(ids);
	free(h.v);
	return rc;
}

/* --- mail enable / disable: Postfix -------------------------------------------- */

struct pfstate {
	char	 dir[PATH_MAX];		/* the instance's config directory */
	char	 entry[PATH_MAX + 8];	/* "unix:smtpguard/gate.sock" */
	char	 action[16];		/* milter_default_action we set */
	/* the three parameters as main.cf had them before: set? value */
	bool	 was_set[3];
	char	 was[3][4096];
};

static const char *const pf_params[3] = { "smtpd_milters", "non_smtpd_milters",
    "milter_default_action" };

/* The state directory: the folder of [mail] state. */
static void
state_dir(const struct config *cfg, char *out, size_t len)
{
	char *slash;

	strlcpy_sg(out, cfg->mail_state, len);
	if ((slash = strrchr(out, '/')) != NULL && slash != out)
		*slash = '\0';
}

/* STATEDIR/mta-postfix-HASH.{state,orig,after}: one record per Postfix instance. */
static void
state_path(const struct config *cfg, const char *dir, const char *ext, char *out, size_t len)
{
	char sd[PATH_MAX];

	state_dir(cfg, sd, sizeof(sd));
	snprintf(out, len, "%s/" STATE_PREFIX "%016llx.%s", sd,
	    (unsigned long long)fnv1a64(FNV1A64_BASIS, dir, strlen(dir)), ext);
}

/* postconf -c DIR ARGS...: stdout in r; -1 with the reason said. */
static int
postconf(const char *dir, struct run *r, const char *a1, const char *a2, const char *a3,
    const char *a4)
{
	char *argv[] = { "postconf", "-c", (char *)dir, (char *)a1, (char *)a2, (char *)a3,
	    (char *)a4, NULL };

	return run_ok(argv, r);
}

/* One parameter as main.cf sets it (postconf -n), or not set. */
static int
pf_get_explicit(const char *dir, const char *name, bool *set, char *val, size_t len)
{
	struct run r;
	size_t nl = strlen(name);

	if (postconf(dir, &r, "-n", name, NULL, NULL) < 0)
		return -1;
	*set = false;
	val[0] = '\0';
	if (strncmp(r.out, name, nl) == 0 && strncmp(r.out + nl, " = ", 3) == 0) {
		*set = true;
		r.out[strcspn(r.out, "\n")] = '\0';
		if (strlcpy_sg(val, r.out + nl + 3, len) >= len) {
			say("%s in %s/main.cf is longer than %zu bytes", name, dir, len - 1);
			free(r.out);
			return -1;
		}
	}
	free(r.out);
	return 0;
}

static int
pf_get(const char *dir, const char *name, char *val, size_t len)
{
	struct run r;

	if (postconf(dir, &r, "-h", name, NULL, NULL) < 0)
		return -1;
	r.out[strcspn(r.out, "\n")] = '\0';
	strlcpy_sg(val, r.out, len);
	free(r.out);
	return 0;
}

static int
pf_set(const char *dir, const char *name, const char *value)
{
	char kv[8192];
	struct run r;

	if ((size_t)snprintf(kv, sizeof(kv), "%s=%s", name, value) >= sizeof(kv)) {
		say("%s: value too long", name);
		return -1;
	}
	if (postconf(dir, &r, "-e", kv, NULL, NULL) < 0)
		return -1;
	free(r.out);
	return 0;
}

static int
pf_unset(const char *dir, const char *name)
{
	struct run r;

	if (postconf(dir, &r, "-X", name, NULL, NULL) < 0)
		return -1;
	free(r.out);
	return 0;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0, n;
	char chunk[65536];

	*len = 0;
	if (fp == NULL)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		if (append(&buf, len, &cap, chunk, n, MAIN_CF_MAX) < 0) {
			free(buf);
			fclose(fp);
			return NULL;
		}
	if (ferror(fp) || (buf == NULL && append(&buf, len, &cap, "", 0, MAIN_CF_MAX) < 0)) {
		free(buf);
		buf = NULL;
	}
	fclose(fp);
	return buf;
}

/* Writes data to path through a temporary file and rename, with mode and owner. */
static int
write_atomic(const char *path, const char *data, size_t len, mode_t mode, uid_t uid, gid_t gid)
{
	char tmp[PATH_MAX + 16];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.sgtmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		return -1;
	if (write(fd, data, len) != (ssize_t)len || fchown(fd, uid, gid) < 0 ||
	    fchmod(fd, mode) < 0 || fsync(fd) < 0 || close(fd) < 0) {
		int e = errno;

		close(fd);
		unlink(tmp);
		errno = e;
		return -1;
	}
	if (rename(tmp, path) < 0) {
		int e = errno;

		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

static int
copy_file(const char *from, const char *to)
{
	size_t len;
	char *data = slurp(from, &len);
	int rc;

	if (data == NULL)
		return -1;
	rc = ensure_parent_dir(to, 0755) < 0 ? -1 : write_atomic(to, data, len, 0600, 0, 0);
	free(data);
	return rc;
}

static int
state_save(const struct config *cfg, const struct pfstate *s)
{
	char path[PATH_MAX + 64];
	json_t *o = json_pack("{s:s, s:s, s:s}", "config_dir", s->dir, "entry", s->entry,
	    "milter_default_action", s->action), *was = json_object();
	char *text;
	int rc;

	for (int i = 0; i < 3; i++)
		json_object_set_new(was, pf_params[i], s->was_set[i] ? json_string(s->was[i]) :
		    json_null());
	json_object_set_new(o, "before", was);
	text = json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(o);
	if (text == NULL)
		return -1;
	state_path(cfg, s->dir, "state", path, sizeof(path));
	rc = write_atomic(path, text, strlen(text), 0600, 0, 0);
	free(text);
	return rc;
}

/* 1 if a record was read, 0 if there is none, -1 if it is unreadable. */
static int
state_load_path(const char *path, struct pfstate *s)
{
	json_t *o, *was;
	int rc = -1;

	memset(s, 0, sizeof(*s));
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return 0;
	if ((o = json_load_file(path, 0, NULL)) == NULL)
		return -1;
	if (!json_is_string(json_object_get(o, "config_dir")) ||
	    !json_is_string(json_object_get(o, "entry")) ||
	    !json_is_string(json_object_get(o, "milter_default_action")) ||
	    !json_is_object(was = json_object_get(o, "before")))
		goto out;
	strlcpy_sg(s->dir, json_string_value(json_object_get(o, "config_dir")), sizeof(s->dir));
	strlcpy_sg(s->entry, json_string_value(json_object_get(o, "entry")), sizeof(s->entry));
	strlcpy_sg(s->action, json_string_value(json_object_get(o, "milter_default_action")),
	    sizeof(s->action));
	for (int i = 0; i < 3; i++) {
		json_t *v = json_object_get(was, pf_params[i]);

		s->was_set[i] = json_is_string(v);
		if (s->was_set[i])
			strlcpy_sg(s->was[i], json_string_value(v), sizeof(s->was[i]));
	}
	rc = 1;
out:
	json_decref(o);
	return rc;
}

static void
pf_reload(const char *dir)
{
	char *status[] = { "postfix", "-c", (char *)dir, "status", NULL };
	char *reload[] = { "postfix", "-c", (char *)dir, "reload", NULL };
	struct run r;

	if (run(status, &r) < 0 || r.status != 0) {
		if (r.out != NULL)
			free(r.out);
		printf("Postfix (%s) is not running: the change applies when it starts\n", dir);
		return;
	}
	free(r.out);
	if (run_ok(reload, &r) == 0) {
		free(r.out);
		printf("postfix -c %s reload: done\n", dir);
	}
}

/* The gate's socket as Postfix names it: relative to its queue directory if inside. */
static int
pf_entry(const struct config *cfg, const char *dir, char *out, size_t len)
{
	char q[PATH_MAX];
	size_t n;

	if (pf_get(dir, "queue_directory", q, sizeof(q)) < 0)
		return -1;
	n = strlen(q);
	while (n > 1 && q[n - 1] == '/')
		q[--n] = '\0';
	if (strncmp(cfg->mail_socket, q, n) == 0 && cfg->mail_socket[n] == '/')
		snprintf(out, len, "unix:%s", cfg->mail_socket + n + 1);
	else {
		snprintf(out, len, "unix:%s", cfg->mail_socket);
		printf("note: the gate's socket %s is outside Postfix's queue directory %s: a "
		    "chrooted smtpd (master.cf chroot = y) cannot reach it; [mail] socket belongs "
		    "under %s\n", cfg->mail_socket, q, q);
	}
	return 0;
}

static int
pf_enable(const struct config *cfg, const char *dir)
{
	char main_cf[PATH_MAX + 16], orig[PATH_MAX + 64], after[PATH_MAX + 64], spath[PATH_MAX + 64];
	char cur[4096];
	struct pfstate s, old;
	int loaded;

	snprintf(main_cf, sizeof(main_cf), "%s/main.cf", dir);
	if (access(main_cf, R_OK) < 0) {
		say("%s: %s (is Postfix installed there? --postfix-config DIR names another "
		    "instance)", main_cf, strerror(errno));
		return 1;
	}
	if (!cfg->mail_gate) {
		say("the gate is off ([mail] gate = no in the config): turn it on (gate = yes, then "
		    "smtpguard reload) before wiring it into Postfix, or Postfix would %s every "
		    "message while nothing answers", cfg->mail_fail_tempfail ? "defer" : "pass");
		return 1;
	}
	memset(&s, 0, sizeof(s));
	strlcpy_sg(s.dir, dir, sizeof(s.dir));
	strlcpy_sg(s.action, cfg->mail_fail_tempfail ? "tempfail" : "accept", sizeof(s.action));
	if (pf_entry(cfg, dir, s.entry, sizeof(s.entry)) < 0)
		return 1;
	state_path(cfg, dir, "state", spath, sizeof(spath));
	state_path(cfg, dir, "orig", orig, sizeof(orig));
	state_path(cfg, dir, "after", after, sizeof(after));
	if ((loaded = state_load_path(spath, &old)) < 0) {
		say("%s is unreadable: remove it after checking %s by hand", spath, main_cf);
		return 1;
	}
	if (pf_get(dir, "smtpd_milters", cur, sizeof(cur)) < 0)
		return 1;
	if (loaded == 1 && mailq_list_has(cur, old.entry)) {
		printf("the mail gate is already in %s (%s); nothing changed\n", main_cf, old.entry);
		return 0;
	}
	for (int i = 0; i < 3; i++)
		if (pf_get_explicit(dir, pf_params[i], &s.was_set[i], s.was[i],
		    sizeof(s.was[i])) < 0)
			return 1;
	for (int i = 0; i < 2; i++)
		if (mailq_list_has(s.was[i], s.entry)) {
			say("%s already names %s, but smtpguard did not put it there: remove it "
			    "(postconf -c %s -e) and run mail enable again", pf_params[i], s.entry,
			    dir);
			return 1;
		}
	if (copy_file(main_cf, orig) < 0) {
		say("keeping a copy of %s in %s: %s", main_cf, orig, strerror(errno));
		return 1;
	}
	if (state_save(cfg, &s) < 0) {
		say("writing %s: %s", spath, strerror(errno));
		unlink(orig);
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		char v[sizeof(s.was[i]) + sizeof(s.entry) + 4];

		snprintf(v, sizeof(v), "%s%s%s", s.was[i], s.was[i][0] ? ", " : "", s.entry);
		if (pf_set(dir, pf_params[i], v) < 0)
			goto undo;
	}
	if (pf_set(dir, pf_params[2], s.action) < 0)
		goto undo;
	if (copy_file(main_cf, after) < 0) {
		say("keeping a copy of the new %s: %s", main_cf, strerror(errno));
		goto undo;
	}
	printf("mail gate added to %s: smtpd_milters and non_smtpd_milters end with %s%s; "
	    "milter_default_action = %s%s\n", main_cf, s.entry, s.was[0][0] || s.was[1][0] ?
	    " (the milters already there come first, in their order)" : "", s.action,
	    s.action[0] == 'a' ? " (if the gate is down, mail flows unguarded; [mail] fail = "
	    "tempfail defers it instead)" : " (if the gate is down, mail waits)");
	printf("the original main.cf is kept in %s; smtpguard mail disable puts it back\n", orig);
	pf_reload(dir);
	return 0;
undo:
	{
		size_t len;
		char *data = slurp(orig, &len);
		struct stat sb;

		if (data != NULL && stat(main_cf, &sb) == 0 &&
		    write_atomic(main_cf, data, len, sb.st_mode & 07777, sb.st_uid, sb.st_gid) == 0)
			say("%s left as it was", main_cf);
		else
			say("could not put %s back: its original is in %s", main_cf, orig);
		free(data);
	}
	unlink(spath);
	unlink(after);
	return 1;
}

static int
pf_disable(const struct config *cfg, const char *dir)
{
	char main_cf[PATH_MAX + 16], orig[PATH_MAX + 64], after[PATH_MAX + 64], spath[PATH_MAX + 64];
	struct pfstate s;
	char *now, *then, *first;
	size_t nnow, nthen, nfirst;
	struct stat sb;
	int loaded, rc = 1;

	snprintf(main_cf, sizeof(main_cf), "%s/main.cf", dir);
	state_path(cfg, dir, "state", spath, sizeof(spath));
	state_path(cfg, dir, "orig", orig, sizeof(orig));
	state_path(cfg, dir, "after", after, sizeof(after));
	if ((loaded = state_load_path(spath, &s)) <= 0) {
		if (loaded < 0)
			say("%s is unreadable: check %s by hand", spath, main_cf);
		else
			printf("the mail gate was not added to %s by smtpguard: nothing to undo\n",
			    main_cf);
		return loaded < 0 ? 1 : 0;
	}
	now = slurp(main_cf, &nnow);
	then = slurp(after, &nthen);
	first = slurp(orig, &nfirst);
	if (now == NULL || stat(main_cf, &sb) < 0) {
		say("%s: %s", main_cf, strerror(errno));
		goto out;
	}
	if (then != NULL && first != NULL && nnow == nthen && memcmp(now, then, nnow) == 0) {
		if (write_atomic(main_cf, first, nfirst, sb.st_mode & 07777, sb.st_uid,
		    sb.st_gid) < 0) {
			say("restoring %s: %s", main_cf, strerror(errno));
			goto out;
		}
		printf("restored %s as it was before mail enable (byte for byte)\n", main_cf);
	} else {
		/* The admin changed main.cf since: take back only what we put in. */
		for (int i = 0; i < 2; i++) {
			bool set;
			char cur[4096], rest[4096], was_rest[4096];

			if (pf_get_explicit(dir, pf_params[i], &set, cur, sizeof(cur)) < 0)
				goto out;
			if (!set || !mailq_list_has(cur, s.entry))
				continue;
			mailq_list_without(cur, s.entry, rest, sizeof(rest));
			mailq_list_without(s.was[i], s.entry, was_rest, sizeof(was_rest));
			/* Left as enable found it: its own words back (or unset again). */
			if (strcmp(rest, was_rest) == 0)
				rc = s.was_set[i] ? pf_set(dir, pf_params[i], s.was[i]) :
				    pf_unset(dir, pf_params[i]);
			else
				rc = pf_set(dir, pf_params[i], rest);	/* the admin's other edits kept */
			if (rc < 0) {
				rc = 1;
				goto out;
			}
		}
		rc = 1;
		{
			bool set;
			char cur[4096];

			if (pf_get_explicit(dir, pf_params[2], &set, cur, sizeof(cur)) < 0)
				goto out;
			/* Ours only if it still says what we set. */
			if (set && strcmp(cur, s.action) == 0 && (s.was_set[2] ?
			    pf_set(dir, pf_params[2], s.was[2]) : pf_unset(dir, pf_params[2])) < 0)
				goto out;
		}
		printf("%s changed since mail enable: removed only the gate (%s) and its "
		    "milter_default_action with postconf; the other changes are kept\n", main_cf,
		    s.entry);
	}
	unlink(spath);
	unlink(orig);
	unlink(after);
	pf_reload(dir);
	rc = 0;
out:
	free(now);
	free(then);
	free(first);
	return rc;
}

int
mailcli_mail(const struct config *cfg, int argc, char **argv)
{
	struct mailopts o;
	bool enable;

	if (parse_opts(argc, argv, false, &o,
	    "enable|disable [--postfix-config DIR | --exim-config FILE]") < 0)
		return 2;
	if (o.arg == NULL || (strcmp(o.arg, "enable") != 0 && strcmp(o.arg, "disable") != 0)) {
		say("usage: smtpguard mail enable|disable [--postfix-config DIR | "
		    "--exim-config FILE]");
		return 2;
	}
	enable = strcmp(o.arg, "enable") == 0;
	if (o.postfix_dir != NULL && o.exim_conf != NULL) {
		say("--postfix-config and --exim-config name two MTAs; give one");
		return 2;
	}
	if (geteuid() != 0) {
		say("mail %s must run as root (it edits the MTA's configuration)", o.arg);
		return 1;
	}
	if (o.exim_conf != NULL || (o.postfix_dir == NULL && !in_path("postconf"))) {
		say("Exim support is not built yet: the gate has no Exim ACL to install (for "
		    "Postfix: smtpguard mail %s --postfix-config DIR)", o.arg);
		return 1;
	}
	return enable ? pf_enable(cfg, o.postfix_dir ? o.postfix_dir : POSTFIX_DIR) :
	    pf_disable(cfg, o.postfix_dir ? o.postfix_dir : POSTFIX_DIR);
}

/*
 * For status: the MTA instances mail enable wired the gate into, as
 * "postfix /etc/postfix (milter_default_action = accept)"; how many. Sets
 * *unguarded when one of them lets mail through while the gate is down.
 */
int
mailcli_wired(const struct config *cfg, char *out, size_t len, bool *unguarded)
{
	char sd[PATH_MAX], path[PATH_MAX * 2];
	struct pfstate s;
	struct dirent *de;
	DIR *dir;
	int n = 0;

	out[0] = '\0';
	*unguarded = false;
	state_dir(cfg, sd, sizeof(sd));
	if ((dir = opendir(sd)) == NULL)
		return 0;
	while ((de = readdir(dir)) != NULL) {
		size_t k = strlen(de->d_name);

		if (strncmp(de->d_name, STATE_PREFIX, strlen(STATE_PREFIX)) != 0 || k < 6 ||
		    strcmp(de->d_name + k - 6, ".state") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", sd, de->d_name);
		if (state_load_path(path, &s) != 1)
			continue;
		snprintf(out + strlen(out), len - strlen(out), "%spostfix %s "
		    "(milter_default_action = %s)", n ? "; " : "", s.dir, s.action);
		*unguarded |= strcmp(s.action, "accept") == 0;
		n++;
	}
	closedir(dir);
	return n;
}
