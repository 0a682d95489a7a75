/*
 * mailcli.c — the admin's commands for mail the gate holds: `held`,
 * `release`, `purge`. Every change goes through the MTA's own tools
 * (postqueue, postsuper; exim -bp/-Mt/-Mrm), never by writing its queue; the
 * listing is the MTA's (postqueue -j, exim -bp, read by mailq.c), joined by
 * queue id with the gate's mail events for the origin and subject. It never
 * parses the MTA's queue files and never decides what is held (the gate
 * does). Called from smtpguard.c with the loaded config.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "smtpguard.h"

#define HELD_MAX	(1024 * 1024)		/* messages listed or acted on at once */
#define IDS_PER_RUN	500			/* queue ids per postsuper/exim command line */
#define FLUSH_EACH_MAX	100			/* more released: one postqueue -f, not -i each */

enum mq_kind { MQ_POSTFIX, MQ_EXIM };

struct mq_mta {
	enum mq_kind	 kind;
	const char	*config;	/* --postfix-config DIR / --exim-config FILE, or NULL */
	char		 exim[PATH_MAX];	/* the exim binary */
};

/*
 * Which MTA: the one named by --postfix-config / --exim-config, else the
 * one installed (Postfix first: Debian installs one MTA at a time).
 */
static int
mta_pick(struct mq_mta *m, const char *postfix_dir, const char *exim_conf)
{
	memset(m, 0, sizeof(*m));
	if (postfix_dir != NULL && exim_conf != NULL) {
		cli_say("--postfix-config and --exim-config name two MTAs; give one");
		return -1;
	}
	if (postfix_dir != NULL || (exim_conf == NULL && mailrun_in_path("postqueue"))) {
		m->kind = MQ_POSTFIX;
		m->config = postfix_dir;
		return 0;
	}
	m->kind = MQ_EXIM;
	m->config = exim_conf;
	strlcpy_sg(m->exim, mailrun_in_path("exim4") ? "exim4" : "exim", sizeof(m->exim));
	if (!mailrun_in_path(m->exim)) {
		cli_say("no MTA found: neither Postfix (postqueue) nor Exim (exim4, exim) is in PATH");
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
	struct mailrun r;
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
	if (mailrun_ok(argv, &r) < 0)
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
		cli_say("warning: %zu lines of the queue listing were not understood and are left out",
		    bad);
	qsort(h->v, h->n, sizeof(*h->v), by_qid);
	rc = 0;
out:
	if (rc < 0)
		cli_say("listing the queue: %s", strerror(errno));
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
				cli_say("warning: %s: %s (origins unknown)", path, strerror(errno));
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
			cli_say("%s", err);
			return -1;
		}
		return 0;
	}
	if (!mailq_valid_qid(arg, exim)) {
		cli_say("'%s' is neither an origin (sasl:LOGIN, user:NAME, domain:DOMAIN, "
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


int
mailcli_held(const struct config *cfg, int argc, char **argv)
{
	struct mailrun_opts o;
	struct mq_mta m;
	struct held h;
	char origin[MAIL_ORIGIN_MAX];
	bool is_qid;

	if (mailrun_opts(argc, argv, true, &o,
	    "[ORIGIN] [--json] [--postfix-config DIR | --exim-config FILE]") < 0)
		return 2;
	if (o.arg != NULL && (selector(o.arg, o.exim_conf != NULL, origin, sizeof(origin),
	    &is_qid) < 0 || is_qid)) {
		if (is_qid)
			cli_say("held takes an origin, not a queue id (postqueue -j lists one message)");
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
		struct mailrun r;

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
		if (mailrun_ok(argv, &r) < 0)
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
	struct mailrun r;

	argv[base++] = "postqueue";
	if (m->config != NULL) {
		argv[base++] = "-c";
		argv[base++] = (char *)m->config;
	}
	if (n > FLUSH_EACH_MAX) {
		argv[base] = "-f";
		argv[base + 1] = NULL;
		if (mailrun_ok(argv, &r) == 0)
			free(r.out);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		argv[base] = "-i";
		argv[base + 1] = ids[i];
		argv[base + 2] = NULL;
		if (mailrun(argv, &r) == 0)
			free(r.out);	/* gone already (delivered): nothing to schedule */
	}
}

/* Thawed Exim mail waits for the next queue run: deliver it now (exim -M). */
static void
deliver_thawed(const struct mq_mta *m, char **ids, size_t n)
{
	char *argv[IDS_PER_RUN + 8];
	struct mailrun r;

	for (size_t done = 0; done < n;) {
		int argc = 0;

		argv[argc++] = (char *)m->exim;
		if (m->config != NULL) {
			argv[argc++] = "-C";
			argv[argc++] = (char *)m->config;
		}
		argv[argc++] = "-M";
		for (size_t i = 0; i < IDS_PER_RUN && done < n; i++, done++)
			argv[argc++] = ids[done];
		argv[argc] = NULL;
		/* A failed attempt stays queued for Exim's retry rules: not ours to report. */
		if (mailrun(argv, &r) == 0)
			free(r.out);
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
	struct mailrun_opts o;
	struct mq_mta m;
	struct held h, after;
	char sel[MAIL_ORIGIN_MAX], note[512];
	char **ids = NULL;
	size_t n = 0, still = 0;
	int rc = 1;

	if (mailrun_opts(argc, argv, false, &o,
	    "ORIGIN|QUEUE_ID [--postfix-config DIR | --exim-config FILE]") < 0)
		return 2;
	if (o.arg == NULL) {
		cli_say("usage: smtpguard %s ORIGIN|QUEUE_ID [--postfix-config DIR | "
		    "--exim-config FILE]", argv[0]);
		return 2;
	}
	if (selector(o.arg, o.exim_conf != NULL || (o.postfix_dir == NULL &&
	    !mailrun_in_path("postqueue")), sel, sizeof(sel), &is_qid) < 0)
		return 2;
	if (geteuid() != 0) {
		cli_say("%s must run as root (it changes the MTA's queue)", argv[0]);
		return 1;
	}
	if (mta_pick(&m, o.postfix_dir, o.exim_conf) < 0 || list_held(&m, &h) < 0)
		return 1;
	join_events(cfg, &h);
	if ((ids = calloc(h.n + 1, sizeof(*ids))) == NULL) {
		cli_say("out of memory");
		goto out;
	}
	for (size_t i = 0; i < h.n; i++)
		if (is_qid ? strcmp(h.v[i].queue_id, sel) == 0 : mailq_matches(&h.v[i], sel))
			ids[n++] = h.v[i].queue_id;
	if (n == 0) {
		if (is_qid)
			cli_say("%s is not held (smtpguard held lists what is)", sel);
		else
			cli_say("no held mail of %s (smtpguard held lists what is)", sel);
		goto out;
	}
	if (act_on(&m, release, ids, n) < 0)
		goto out;
	if (release && m.kind == MQ_POSTFIX)
		flush_released(&m, ids, n);
	else if (release)
		deliver_thawed(&m, ids, n);
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
	    (release ? "exim -Mt, exim -M" : "exim -Mrm"));
	printf("%s %zu message%s of %s%s\n", release ? "released" : "purged", n - still,
	    n - still == 1 ? "" : "s", sel, release ? (m.kind == MQ_POSTFIX ?
	    " (delivery scheduled)" : " (thawed, delivery started: exim -M)") : "");
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
