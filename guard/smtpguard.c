/*
 * smtpguard.c — the admin's command: a table of subcommands, each a small
 * function. It talks to the daemon over the control socket, reads the event
 * log directly, and starts/stops the daemon. Exit codes: 0 ok, 1 the
 * operation failed (stderr says why and what to do), 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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

#define PASSWD_FILE	"/etc/passwd"
#define STOP_WAIT_MS	10000	/* the daemon removes its table and exits well within this */
#define SYSTEMCTL	"/bin/systemctl"
#define SYSTEMD_UNIT	"smtpguard.service"
#define PROBE_ID	65534	/* nobody / nogroup: the self-check's sender */
#define PROBE_WAIT_S	3	/* a SYN unanswered this long: the daemon does not answer */

enum probe_result { PROBE_REFUSED, PROBE_CONNECTED, PROBE_UNANSWERED, PROBE_ERROR,
    PROBE_NO_FAMILY };

extern char **environ;

static const char default_conf[] =
#include "default_conf.inc"
;

struct cli {
	const char	*config_path;
	struct config	 cfg;
	bool		 cfg_loaded;
};

struct command {
	const char	*name;
	int		(*run)(struct cli *, int, char **);
	const char	*args;
	const char	*help;
	bool		 own_help;	/* parses --help itself */
};

static int	cmd_enable(struct cli *, int, char **);
static int	cmd_disable(struct cli *, int, char **);
static int	cmd_status(struct cli *, int, char **);
static int	cmd_check(struct cli *, int, char **);
static int	cmd_reload(struct cli *, int, char **);
static int	cmd_allow(struct cli *, int, char **);
static int	cmd_revoke(struct cli *, int, char **);
static int	cmd_exceptions(struct cli *, int, char **);
static int	cmd_log(struct cli *, int, char **);
static int	cmd_top(struct cli *, int, char **);
static int	cmd_mta_report(struct cli *, int, char **);
static int	cmd_mta_check(struct cli *, int, char **);
static int	cmd_limit(struct cli *, int, char **);
static int	cmd_unlimit(struct cli *, int, char **);
static int	cmd_held(struct cli *, int, char **);
static int	cmd_release(struct cli *, int, char **);
static int	cmd_mail(struct cli *, int, char **);

static const struct command commands[] = {
	{ "enable", cmd_enable, "[--mail [--postfix-config DIR]]",
	  "write a default config if none, start smtpguardd, confirm the fence; --mail also "
	  "adds the mail gate to the MTA (mail enable)", false },
	{ "disable", cmd_disable, "[--purge]",
	  "stop smtpguardd and remove its table; the config is kept unless --purge, which "
	  "also removes the config, the exceptions and the event log", false },
	{ "status", cmd_status, "[--json]",
	  "is the fence up? MTA users, ports, action, counters, queue drops", false },
	{ "check", cmd_check, "",
	  "prove the fence holds: probes as nobody to this host's loopback must be "
	  "refused by smtpguardd", false },
	{ "reload", cmd_reload, "",
	  "re-read config and exceptions; on any error keep the running state", false },
	{ "allow", cmd_allow,
	  "USER|UID|@GROUP [--to CIDR,..] [--port N,..] [--audit|--redirect] [--cap N/hour] "
	  "[--comment TEXT]",
	  "add an exception, live and persistent", false },
	{ "revoke", cmd_revoke, "USER|UID|@GROUP", "remove an exception", false },
	{ "exceptions", cmd_exceptions, "[--json]",
	  "list exceptions with their hits, and the mail gate's limits", false },
	{ "limit", cmd_limit, "ORIGIN N/hour [--comment TEXT]",
	  "a mail gate limit for sasl:LOGIN, user:NAME, domain:DOMAIN, client:ADDR or bounce "
	  "(0/hour holds everything), live and persistent", false },
	{ "unlimit", cmd_unlimit, "ORIGIN", "remove a mail gate limit (the [mail] limit applies)",
	  false },
	{ "held", cmd_held, "[ORIGIN] [--json] [--postfix-config DIR | --exim-config FILE]",
	  "mail the gate holds, by origin: queue id, from, recipients, subject", false },
	{ "release", cmd_release, "ORIGIN|QUEUE_ID [--postfix-config DIR | --exim-config FILE]",
	  "let held mail go (postsuper -H / exim -Mt)", false },
	{ "purge", cmd_release, "ORIGIN|QUEUE_ID [--postfix-config DIR | --exim-config FILE]",
	  "delete held mail (postsuper -d / exim -Mrm)", false },
	{ "mail", cmd_mail, "enable|disable [--postfix-config DIR | --exim-config FILE]",
	  "add the mail gate to the MTA's config, or take it out (main.cf restored)", false },
	{ "log", cmd_log, "[--since T] [--user U] [--action A] [-f] [--json] ...",
	  "show events (smtpguard log --help)", true },
	{ "top", cmd_top, "[--by user|process|dst|sender|script|subject] [--since T] ...",
	  "who is sending: counts per user, process, ... (smtpguard top --help)", true },
	{ "mta-report", cmd_mta_report, "[--log FILE]... [--since T] [--json] ...",
	  "mail sent through Postfix/Exim per origin, culprits flagged (mta-report --help)",
	  true },
	{ "mta-check", cmd_mta_check, "[--port N]... [--to ADDRESS] [--json]",
	  "is this host's MTA an open relay? asked as an outside client (mta-check --help)",
	  true },
};

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: smtpguard [-c file] command [args]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(fp, "  %-11s %s\n  %-11s   %s\n", commands[i].name, commands[i].args,
		    "", commands[i].help);
	fprintf(fp, "\n  -c file     configuration (default %s)\n"
	    "\nexit status: 0 ok, 1 the operation failed, 2 usage error\n", DEFAULT_CONFIG);
}

static int
load_config(struct cli *c)
{
	char err[1024];

	if (c->cfg_loaded)
		return 0;
	if (config_load(&c->cfg, c->config_path, err, sizeof(err)) < 0) {
		cli_say("%s", err);
		return -1;
	}
	c->cfg_loaded = true;
	return 0;
}

static bool
want_json(int argc, char **argv, const char *cmd)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			continue;
		cli_say("%s: unknown argument '%s' (usage: smtpguard %s [--json])", cmd, argv[i],
		    cmd);
		exit(2);
	}
	return argc > 1;
}

static void
no_extra_args(int argc, char **argv, const char *cmd)
{
	if (argc > 1) {
		cli_say("%s: unexpected argument '%s'", cmd, argv[1]);
		exit(2);
	}
}

/* Calls the daemon; returns the parsed reply if it says ok, else NULL (error printed). */
static json_t *
call(struct cli *c, enum ctl_cmd cmd, const char *arg, bool quiet_if_down)
{
	char err[1024], *raw;
	json_t *reply;
	json_error_t jerr;

	if ((raw = control_call(c->cfg.control_socket, cmd, arg, err, sizeof(err))) == NULL) {
		int saved = errno;

		/* A daemon that does not answer is not "down": always say so. */
		if (saved == ETIMEDOUT)
			cli_say("%s", err);
		else if (!quiet_if_down)
			cli_say("cannot reach smtpguardd: %s\n  is it running? "
			    "(smtpguard status; smtpguard enable)", err);
		errno = saved;
		return NULL;
	}
	reply = json_loads(raw, 0, &jerr);
	free(raw);
	if (reply == NULL) {
		cli_say("unreadable reply from smtpguardd: %s", jerr.text);
		return NULL;
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		const char *e = json_string_value(json_object_get(reply, "error"));

		cli_say("%s", e ? e : "the daemon refused the request");
		json_decref(reply);
		return NULL;
	}
	return reply;
}

static const char *
jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "?";
}

static long long
jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void
print_status(json_t *st)
{
	char since[64];
	time_t t = (time_t)jint(st, "started");
	json_t *ports = json_object_get(st, "ports"), *dec = json_object_get(st, "decisions"), *att;
	size_t i;
	json_t *v;

	strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
	printf("smtpguard: running (pid %lld, since %s)\n", jint(st, "pid"), since);
	printf("  fence:       %s (%s, queue %lld)\n",
	    json_is_true(json_object_get(st, "table")) ? "table inet " TABLE_NAME " installed" :
	    "TABLE MISSING: the fence is open", jstr(st, "queue_path"), jint(st, "queue"));
	printf("  MTA users:   %s\n", jstr(st, "mta_users"));
	printf("  ports:      ");
	json_array_foreach(ports, i, v)
		printf("%s %lld", i ? "," : "", (long long)json_integer_value(v));
	printf("\n  action:      %s (allow_local: %s)\n", jstr(st, "action"),
	    json_is_true(json_object_get(st, "allow_local")) ? "yes" : "no");
	printf("  exceptions:  %lld\n", jint(st, "exceptions"));
	printf("  decisions:   reject %lld, trap %lld, audit %lld, redirect %lld, allow %lld "
	    "(%lld packets queued, %lld alerts)\n",
	    jint(dec, "reject"), jint(dec, "trap"), jint(dec, "audit"), jint(dec, "redirect"),
	    jint(dec, "allow"), jint(st, "packets"), jint(st, "alerts"));
	if (jint(dec, "redirect") > 0 || jint(st, "redirect_refused") > 0)
		printf("  redirect:    to the MTA on port %lld: %lld messages named through the "
		    "gate, %lld refused for want of room\n", jint(st, "redirect_to"),
		    jint(st, "redirect_named"), jint(st, "redirect_refused"));
	if (jint(st, "kernel_refused") > 0 || jint(st, "kernel_refusing") > 0 ||
	    jint(st, "kernel_lost") > 0 || jint(st, "kernel_errors") > 0 ||
	    jint(st, "kernel_full") > 0)
		printf("  flood:       %lld uids reset in the kernel now; %lld attempts reset there "
		    "(in decisions), %lld counts lost, %lld map errors, %lld past its %d uids\n",
		    jint(st, "kernel_refusing"), jint(st, "kernel_refused"), jint(st, "kernel_lost"),
		    jint(st, "kernel_errors"), jint(st, "kernel_full"), REFUSED_UIDS_MAX);
	if (jint(st, "kernel_audited") > 0 || jint(st, "kernel_auditing") > 0)
		printf("  audit:       %lld uids audited in the kernel now; %lld SYNs audited "
		    "there (in decisions)\n", jint(st, "kernel_auditing"),
		    jint(st, "kernel_audited"));
	if ((att = json_object_get(st, "attribution_ns")) != NULL &&
	    jint(att, "lookups") > 0)
		printf("  attribution: p50 %.0f us, p99 %.0f us, max %.0f us (%lld senders named)\n",
		    (double)jint(att, "p50") / 1000, (double)jint(att, "p99") / 1000,
		    (double)jint(att, "max") / 1000, jint(att, "lookups"));
	if (json_object_get(st, "queue_dropped") != NULL)
		printf("  queue:       %lld waiting, %lld dropped (queue full), "
		    "%lld dropped (socket full), %lld socket overruns\n",
		    jint(st, "queue_waiting"), jint(st, "queue_dropped"),
		    jint(st, "queue_user_dropped"), jint(st, "socket_overruns"));
	printf("  events:      %s (%lld lines lost)\n", jstr(st, "events_file"),
	    jint(st, "events_lost"));
}

/*
 * The mail gate's part of status: whether it answers, which MTA asks it,
 * what it did today (since local midnight; the daemon keeps the tally over
 * restarts); and, loudly, when the MTA is told to pass mail while the gate
 * is down. gate is NULL when the daemon is not running (then the gate is
 * down too).
 */
static void
print_gate(const struct config *cfg, json_t *gate)
{
	char wired[2048], asked[128];
	bool unguarded, up = gate != NULL && json_is_true(json_object_get(gate, "up"));
	int n = mailenable_wired(cfg, wired, sizeof(wired), &unguarded);
	json_t *dns = gate ? json_object_get(gate, "decision_ns") : NULL;
	const char *mta = json_string_value(json_object_get(gate, "mta"));

	if (gate != NULL && !json_is_true(json_object_get(gate, "enabled")) && n == 0)
		return;	/* no gate, none wired: nothing to say */
	if (gate == NULL && n == 0)
		return;
	/* Wired by hand (not mail enable): the MTA that asks is all there is to show. */
	snprintf(asked, sizeof(asked), "%s (asks the gate; not wired by smtpguard mail enable)",
	    mta != NULL ? mta : "");
	printf("  mail gate:   %s, MTA: %s\n", up ? "up" : gate == NULL ?
	    "DOWN (smtpguardd is not running)" : json_is_true(json_object_get(gate, "enabled")) ?
	    "DOWN (smtpguardd restarts it each second)" : "off ([mail] gate = no)",
	    n > 0 ? wired : mta != NULL ? asked : "none recorded (smtpguard mail enable "
	    "wires Postfix; a hand-made milter entry is not seen here)");
	if (gate != NULL)
		printf("  mail:        %lld passed, %lld held, %lld deferred, %lld rejected today "
		    "(since 00:00; smtpguard held lists the held)\n", jint(gate, "passed"),
		    jint(gate, "held"), jint(gate, "deferred"), jint(gate, "rejected"));
	if (dns != NULL && jint(dns, "messages") > 0)
		printf("  mail gate:   decision p50 %.0f us, p99 %.0f us\n",
		    (double)jint(dns, "p50") / 1000, (double)jint(dns, "p99") / 1000);
	if (!up && n > 0 && unguarded)
		printf("\n  !!! MAIL IS FLOWING UNGUARDED: the mail gate is down and the MTA is told\n"
		    "  !!! to accept without it (milter_default_action = accept, [mail] fail = accept):\n"
		    "  !!! no limits, nothing held, no mail events. %s\n\n", gate == NULL ?
		    "Start smtpguardd (smtpguard enable)." : "See the daemon's log.");
	else if (!up && n > 0)
		printf("  mail gate:   down: the MTA defers mail until it is back ([mail] fail = "
		    "tempfail)\n");
}

/* --json: what the CLI reads from the MTA's config beside the daemon's counts. */
static void
status_json_wired(const struct config *cfg, json_t *gate)
{
	char wired[2048];
	bool unguarded = false;
	int n;

	if (gate == NULL)
		return;
	n = mailenable_wired(cfg, wired, sizeof(wired), &unguarded);
	json_object_set_new(gate, "wired", n > 0 ? json_string(wired) : json_null());
	json_object_set_new(gate, "unguarded", json_boolean(n > 0 && unguarded &&
	    !json_is_true(json_object_get(gate, "up"))));
}

static int
cmd_status(struct cli *c, int argc, char **argv)
{
	bool json = want_json(argc, argv, "status");
	json_t *st;
	int table;

	if (load_config(c) < 0)
		return 1;
	if ((st = call(c, CTL_STATUS, NULL, true)) != NULL) {
		if (json) {
			status_json_wired(&c->cfg, json_object_get(st, "mail_gate"));
			json_dumpf(st, stdout, JSON_COMPACT | JSON_SORT_KEYS);
			putchar('\n');
		} else {
			print_status(st);
			print_gate(&c->cfg, json_object_get(st, "mail_gate"));
		}
		json_decref(st);
		return 0;
	}
	if (errno == ETIMEDOUT) {
		/* call() said why on stderr: running, but not answering. */
		if (json)
			printf("{\"running\":true,\"answering\":false}\n");
		return 1;
	}
	table = ruleset_exists(TABLE_NAME);
	if (json)
		printf("{\"running\":false,\"table\":%s}\n", table == 1 ? "true" : "false");
	else if (table == 1)
		printf("smtpguard: NOT running, but the fence is closed: table inet %s is still\n"
		    "  installed (the daemon was stopped, crashed or was killed). SMTP\n"
		    "  connections of non-MTA users are dropped, and nothing is logged.\n"
		    "  Restart it with: smtpguard enable (smtpguard disable removes the fence)\n",
		    TABLE_NAME);
	else if (table == 0)
		printf("smtpguard: not running; no fence installed (smtpguard enable turns it on)\n");
	else
		printf("smtpguard: not running; cannot read the ruleset: %s\n", strerror(errno));
	if (!json)
		print_gate(&c->cfg, NULL);
	return 1;
}

static int
run_program(char *const argv[])
{
	pid_t pid;
	int status, rc;

	if ((rc = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ)) != 0) {
		cli_say("cannot run %s: %s", argv[0], strerror(rc));
		return -1;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The daemon binary beside this one: build/ in a checkout, sbin/ once installed. */
static int
daemon_path(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n < 0)
		return -1;
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) == NULL)
		return -1;
	*slash = '\0';
	if ((size_t)snprintf(buf, len, "%s/smtpguardd", self) >= len)
		return -1;
	return 0;
}

static int
write_default_config(struct cli *c)
{
	struct config cfg;
	uid_t uids[CONFIG_MAX_UIDS];
	size_t n;
	char found[512], err[1024], names[512] = "", tmp[PATH_MAX + 8];
	const char *line, *end;
	FILE *fp;

	config_defaults(&cfg);
	if (mtauser_resolve(&cfg, PASSWD_FILE, uids, &n, found, sizeof(found), err,
	    sizeof(err)) < 0) {
		cli_say("%s", err);
		return -1;
	}
	/* "postfix(uid 101), exim(uid 102)" → "postfix, exim" */
	for (const char *p = found; *p != '\0';) {
		const char *paren = strchr(p, '(');
		size_t k = paren ? (size_t)(paren - p) : strlen(p);

		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%.*s",
		    names[0] ? ", " : "", (int)k, p);
		if ((p = strstr(p, "), ")) == NULL)
			break;
		p += 3;
	}
	if (ensure_parent_dir(c->config_path, 0755) < 0) {
		cli_say("creating the directory of %s: %s", c->config_path, strerror(errno));
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", c->config_path);
	if ((fp = fopen(tmp, "wxe")) == NULL) {
		cli_say("%s: %s", tmp, strerror(errno));
		return -1;
	}
	for (line = default_conf; *line != '\0'; line = end + (*end != '\0')) {
		end = strchr(line, '\n');
		if (end == NULL)
			end = line + strlen(line);
		if (strncmp(line, "mta_users", 9) == 0 && strchr(" =", line[9]) != NULL)
			fprintf(fp, "mta_users = %s\n", names);
		else
			fprintf(fp, "%.*s\n", (int)(end - line), line);
	}
	if (fflush(fp) != 0 || fsync(fileno(fp)) < 0 || fclose(fp) != 0 ||
	    rename(tmp, c->config_path) < 0) {
		cli_say("writing %s: %s", c->config_path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	printf("wrote %s (MTA users detected: %s)\n", c->config_path, found);
	return 0;
}

/*
 * systemd runs the daemon when it is PID 1 and our unit is installed, for
 * the default config only (the unit names no -c).
 */
static bool
under_systemd(const struct cli *c)
{
	static const char *const units[] = { "/etc/systemd/system/" SYSTEMD_UNIT,
	    "/lib/systemd/system/" SYSTEMD_UNIT, "/usr/lib/systemd/system/" SYSTEMD_UNIT };

	if (access("/run/systemd/system", F_OK) != 0 ||
	    strcmp(c->config_path, DEFAULT_CONFIG) != 0 || access(SYSTEMCTL, X_OK) != 0)
		return false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (access(units[i], F_OK) == 0)
			return true;
	return false;
}

/*
 * One self-check probe, from a child: a socket owned by nobody (it is
 * created with that effective uid), marked as the probe (root sets SO_MARK),
 * connecting to loopback on a fenced port. The probe mark makes the ruleset
 * skip allow_local for it and smtpguardd refuse and count it, whatever the
 * action; nothing leaves the host even if the fence is broken.
 */
static enum probe_result
probe_once(int family, uint16_t port, uint32_t mark)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return PROBE_ERROR;
	if (pid == 0) {
		struct sockaddr_storage ss = { .ss_family = (sa_family_t)family };
		struct timeval tv = { .tv_sec = PROBE_WAIT_S };
		socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) :
		    sizeof(struct sockaddr_in6);
		int s;

		if (family == AF_INET) {
			((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			((struct sockaddr_in *)&ss)->sin_port = htons(port);
		} else {
			((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
			((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
		}
		if (setegid(PROBE_ID) < 0 || seteuid(PROBE_ID) < 0)
			_exit(PROBE_ERROR);
		s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (seteuid(0) < 0)
			_exit(PROBE_ERROR);
		if (s < 0)
			_exit(errno == EAFNOSUPPORT ? PROBE_NO_FAMILY : PROBE_ERROR);
		if (setsockopt(s, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0 ||
		    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
			_exit(PROBE_ERROR);
		if (connect(s, (struct sockaddr *)&ss, len) == 0)
			_exit(PROBE_CONNECTED);
		if (errno == ECONNREFUSED)
			_exit(PROBE_REFUSED);
		if (errno == EINPROGRESS || errno == ETIMEDOUT)
			_exit(PROBE_UNANSWERED);
		_exit(errno == EADDRNOTAVAIL || errno == ENETUNREACH ? PROBE_NO_FAMILY :
		    PROBE_ERROR);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return PROBE_ERROR;
	return (enum probe_result)WEXITSTATUS(status);
}

/* 0 if the fence holds; otherwise -1, with SELF-CHECK FAILED and why on stderr. */
static int
self_check(struct cli *c)
{
	static const struct { int family; const char *addr; } probes[] = {
		{ AF_INET, "127.0.0.1" }, { AF_INET6, "[::1]" },
	};
	uint16_t port = c->cfg.ports[0];
	uint32_t mark = mark_value(c->cfg.mark_mask, MARK_PROBE);
	long long before, after, refused = 0;
	char tried[64] = "";
	json_t *st;

	if ((st = call(c, CTL_STATUS, NULL, false)) == NULL)
		return -1;
	before = jint(st, "self_checks");
	json_decref(st);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		switch (probe_once(probes[i].family, port, mark)) {
		case PROBE_REFUSED:
			refused++;
			snprintf(tried + strlen(tried), sizeof(tried) - strlen(tried), "%s%s:%u",
			    refused > 1 ? " and " : "", probes[i].addr, port);
			break;
		case PROBE_NO_FAMILY:
			break;	/* no IPv6 on this host: nothing to fence there */
		case PROBE_CONNECTED:
			cli_say("SELF-CHECK FAILED: a connection as nobody to %s:%u got through: "
			    "the fence does NOT hold (nft list table inet %s)", probes[i].addr,
			    port, TABLE_NAME);
			return -1;
		case PROBE_UNANSWERED:
			cli_say("SELF-CHECK FAILED: the probe to %s:%u was never answered: "
			    "smtpguardd is not deciding (fenced users' connections hang)",
			    probes[i].addr, port);
			return -1;
		case PROBE_ERROR:
			cli_say("SELF-CHECK FAILED: the probe to %s:%u could not run",
			    probes[i].addr, port);
			return -1;
		}
	}
	if ((st = call(c, CTL_STATUS, NULL, false)) == NULL)
		return -1;
	after = jint(st, "self_checks");
	json_decref(st);
	if (refused == 0) {
		cli_say("SELF-CHECK FAILED: no probe could be sent (is loopback up?)");
		return -1;
	}
	if (after - before != refused) {
		cli_say("SELF-CHECK FAILED: %lld of %lld probes were refused by the kernel "
		    "without reaching smtpguardd: the fence did not see them", refused -
		    (after - before), refused);
		return -1;
	}
	printf("self-check: connects as nobody to %s were refused by smtpguardd: the fence "
	    "holds.\n", tried);
	return 0;
}

static int
cmd_check(struct cli *c, int argc, char **argv)
{
	no_extra_args(argc, argv, "check");
	if (geteuid() != 0) {
		cli_say("check must run as root (it marks its probe with SO_MARK)");
		return 1;
	}
	if (load_config(c) < 0)
		return 1;
	return self_check(c) == 0 ? 0 : 1;
}

static int
cmd_enable(struct cli *c, int argc, char **argv)
{
	const char *how = "daemonised";
	char dpath[PATH_MAX];
	json_t *st;
	struct stat sb;
	char *mail_argv[8] = { "mail", "enable" };
	int mail_argc = 2;
	bool mail = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--mail") == 0)
			mail = true;
		else if ((strcmp(argv[i], "--postfix-config") == 0 ||
		    strcmp(argv[i], "--exim-config") == 0) && i + 1 < argc && mail_argc < 6) {
			mail_argv[mail_argc++] = argv[i];
			mail_argv[mail_argc++] = argv[++i];
		} else {
			cli_say("enable: unexpected argument '%s' (usage: smtpguard enable [--mail "
			    "[--postfix-config DIR | --exim-config FILE]])", argv[i]);
			return 2;
		}
	}
	if (!mail && mail_argc > 2) {
		cli_say("enable: %s goes with --mail", mail_argv[2]);
		return 2;
	}
	if (geteuid() != 0) {
		cli_say("enable must run as root");
		return 1;
	}
	if (stat(c->config_path, &sb) < 0 && errno == ENOENT &&
	    write_default_config(c) < 0)
		return 1;
	if (load_config(c) < 0)
		return 1;
	if ((st = call(c, CTL_STATUS, NULL, true)) != NULL) {
		printf("smtpguard is already enabled; nothing changed.\n");
		print_status(st);
		json_decref(st);
		if (self_check(c) < 0)
			return 1;
		return mail ? mailenable_cmd(&c->cfg, mail_argc, mail_argv) : 0;
	}
	if (under_systemd(c)) {
		char *args[] = { SYSTEMCTL, "enable", "--now", SYSTEMD_UNIT, NULL };

		printf("starting %s through systemd (systemctl enable --now)\n", SYSTEMD_UNIT);
		if (run_program(args) != 0) {
			cli_say("systemctl could not start %s (journalctl -u %s says why); "
			    "the fence is NOT up", SYSTEMD_UNIT, SYSTEMD_UNIT);
			return 1;
		}
		how = "by systemd";
	} else {
		if (daemon_path(dpath, sizeof(dpath)) < 0) {
			cli_say("cannot find smtpguardd beside this program");
			return 1;
		}
		printf("starting %s -c %s\n", dpath, c->config_path);
		char *args[] = { dpath, "-c", (char *)c->config_path, NULL };
		if (run_program(args) != 0) {
			cli_say("smtpguardd did not start (see the message above); the fence is "
			    "NOT up");
			return 1;
		}
	}
	if ((st = call(c, CTL_STATUS, NULL, false)) == NULL)
		return 1;
	if (!json_is_true(json_object_get(st, "table"))) {
		cli_say("smtpguardd runs but table inet %s is missing: the fence is NOT up",
		    TABLE_NAME);
		json_decref(st);
		return 1;
	}
	printf("smtpguard enabled (%s; pid file %s).\n", how, c->cfg.pid_file);
	print_status(st);
	json_decref(st);
	if (self_check(c) < 0)
		return 1;
	/* The fence first: the gate is wired into the MTA only once the daemon answers. */
	return mail ? mailenable_cmd(&c->cfg, mail_argc, mail_argv) : 0;
}

#define EXE_DELETED	" (deleted)"	/* what /proc/PID/exe adds for a replaced file */

/* The pid in the pid file, if that process is really an smtpguardd. */
static pid_t
running_daemon(const struct config *cfg)
{
	char buf[64], link[64], exe[PATH_MAX];
	FILE *fp;
	long pid;
	ssize_t n;
	const char *base;

	if ((fp = fopen(cfg->pid_file, "re")) == NULL)
		return -1;
	if (fgets(buf, sizeof(buf), fp) == NULL || sscanf(buf, "%ld", &pid) != 1 || pid <= 1) {
		fclose(fp);
		return -1;
	}
	fclose(fp);
	snprintf(link, sizeof(link), "/proc/%ld/exe", pid);
	if ((n = readlink(link, exe, sizeof(exe) - 1)) < 0)
		return -1;
	exe[n] = '\0';
	/* A package upgrade replaced the binary under it: "/usr/sbin/smtpguardd (deleted)". */
	if ((size_t)n > strlen(EXE_DELETED) &&
	    strcmp(exe + n - strlen(EXE_DELETED), EXE_DELETED) == 0)
		exe[n - strlen(EXE_DELETED)] = '\0';
	base = strrchr(exe, '/');
	base = base ? base + 1 : exe;
	return strcmp(base, "smtpguardd") == 0 ? (pid_t)pid : -1;
}

/* disable --purge: the files smtpguard wrote, then their directories if empty. */
static int
purge_files(struct cli *c)
{
	const char *files[] = { c->config_path, c->cfg.exceptions, c->cfg.log_file };
	int rc = 0;

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char dir[PATH_MAX], *slash;

		if (files[i][0] == '\0')
			continue;
		if (unlink(files[i]) == 0)
			printf("removed %s\n", files[i]);
		else if (errno != ENOENT) {
			cli_say("removing %s: %s", files[i], strerror(errno));
			rc = 1;
		}
		strlcpy_sg(dir, files[i], sizeof(dir));
		if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
			*slash = '\0';
			if (rmdir(dir) == 0)
				printf("removed %s/\n", dir);
		}
	}
	return rc;
}

static int
cmd_disable(struct cli *c, int argc, char **argv)
{
	pid_t pid;
	char proc[64], err[512];
	int table;

	bool purge = false;

	if (argc == 2 && strcmp(argv[1], "--purge") == 0)
		purge = true;
	else if (argc > 1) {
		cli_say("disable: unknown argument '%s' (usage: smtpguard disable [--purge])",
		    argv[1]);
		return 2;
	}
	if (geteuid() != 0) {
		cli_say("disable must run as root");
		return 1;
	}
	if (load_config(c) < 0)
		return 1;
	if (under_systemd(c)) {
		char *args[] = { SYSTEMCTL, "disable", "--now", SYSTEMD_UNIT, NULL };

		printf("stopping %s through systemd (systemctl disable --now)\n", SYSTEMD_UNIT);
		if (run_program(args) != 0) {
			cli_say("systemctl could not stop %s", SYSTEMD_UNIT);
			return 1;
		}
	} else if ((pid = running_daemon(&c->cfg)) > 0) {
		printf("stopping smtpguardd (pid %ld)\n", (long)pid);
		if (kill(pid, SIGTERM) < 0) {
			cli_say("kill %ld: %s", (long)pid, strerror(errno));
			return 1;
		}
		snprintf(proc, sizeof(proc), "/proc/%ld", (long)pid);
		for (int waited = 0; access(proc, F_OK) == 0; waited += 50) {
			if (waited >= STOP_WAIT_MS) {
				cli_say("smtpguardd (pid %ld) did not stop within %d s",
				    (long)pid, STOP_WAIT_MS / 1000);
				return 1;
			}
			nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
		}
	} else
		printf("smtpguardd is not running\n");
	table = ruleset_exists(TABLE_NAME);
	if (table == 1) {
		if (ruleset_remove(TABLE_NAME, err, sizeof(err)) < 0) {
			cli_say("removing table inet %s: %s", TABLE_NAME, err);
			return 1;
		}
		/* The daemon never removes it: a stop must not open the fence. */
		printf("removed table inet %s\n", TABLE_NAME);
	}
	if (!purge) {
		printf("smtpguard disabled: no fence; configuration kept in %s\n", c->config_path);
		return 0;
	}
	printf("smtpguard disabled: no fence\n");
	return purge_files(c);
}

static int
cmd_reload(struct cli *c, int argc, char **argv)
{
	json_t *r;

	no_extra_args(argc, argv, "reload");
	if (load_config(c) < 0 || (r = call(c, CTL_RELOAD, NULL, false)) == NULL)
		return 1;
	printf("reloaded\n");
	json_decref(r);
	return 0;
}

static int
cmd_allow(struct cli *c, int argc, char **argv)
{
	char line[EXCEPTION_LINE_MAX], err[512];
	json_t *r;

	if (exception_from_argv(argc, argv, line, sizeof(line), err, sizeof(err)) < 0) {
		cli_say("allow: %s", err);
		return 2;
	}
	if (load_config(c) < 0 || (r = call(c, CTL_ALLOW, line, false)) == NULL)
		return 1;
	printf("%s\n", jstr(r, "done"));
	json_decref(r);
	return 0;
}

static int
cmd_revoke(struct cli *c, int argc, char **argv)
{
	json_t *r;

	if (argc != 2) {
		cli_say("usage: smtpguard revoke USER|UID|@GROUP");
		return 2;
	}
	if (load_config(c) < 0 || (r = call(c, CTL_REVOKE, argv[1], false)) == NULL)
		return 1;
	printf("%s\n", jstr(r, "done"));
	json_decref(r);
	return 0;
}

static int
cmd_exceptions(struct cli *c, int argc, char **argv)
{
	bool json = want_json(argc, argv, "exceptions");
	json_t *r, *list, *x, *limits;
	size_t i;
	char when[32];

	if (load_config(c) < 0 || (r = call(c, CTL_EXCEPTIONS, NULL, false)) == NULL)
		return 1;
	list = json_object_get(r, "exceptions");
	limits = json_object_get(r, "limits");
	if (json) {
		json_t *both = json_pack("{s:O, s:O}", "exceptions", list, "limits",
		    limits ? limits : json_array());

		json_dumpf(both, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(both);
	} else if (json_array_size(list) == 0)
		printf("no exceptions (smtpguard allow USER adds one)\n");
	else {
		printf("%-16s %-22s %-10s %-6s %-10s %6s  %-19s %s\n", "WHO", "TO", "PORTS",
		    "MODE", "CAP", "HITS", "LAST HIT", "COMMENT");
		json_array_foreach(list, i, x) {
			time_t t = (time_t)jint(x, "last_hit");
			char to[256] = "", ports[128] = "", cap[32] = "-";
			size_t k;
			json_t *v;

			json_array_foreach(json_object_get(x, "to"), k, v)
				snprintf(to + strlen(to), sizeof(to) - strlen(to), "%s%s", k ? "," : "",
				    json_string_value(v));
			json_array_foreach(json_object_get(x, "ports"), k, v)
				snprintf(ports + strlen(ports), sizeof(ports) - strlen(ports), "%s%lld",
				    k ? "," : "", (long long)json_integer_value(v));
			if (jint(x, "cap") > 0)
				snprintf(cap, sizeof(cap), "%lld/hour", jint(x, "cap"));
			if (t > 0)
				strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&t));
			else
				strlcpy_sg(when, "-", sizeof(when));
			printf("%-16s %-22s %-10s %-6s %-10s %6lld  %-19s %s\n", jstr(x, "who"),
			    to[0] ? to : "any", ports[0] ? ports : "any", jstr(x, "mode"), cap,
			    jint(x, "hits"), when, json_object_get(x, "comment") ?
			    jstr(x, "comment") : "");
		}
	}
	if (!json && json_array_size(limits) > 0) {
		printf("\nmail gate limits (recipients per hour; past them: [mail] over_limit):\n");
		printf("%-40s %12s  %s\n", "ORIGIN", "LIMIT", "COMMENT");
		json_array_foreach(limits, i, x) {
			char lim[32];

			snprintf(lim, sizeof(lim), "%lld/hour", jint(x, "per_hour"));
			printf("%-40s %12s  %s\n", jstr(x, "origin"),
			    jint(x, "per_hour") == 0 ? "0 (hold all)" : lim,
			    json_object_get(x, "comment") ? jstr(x, "comment") : "");
		}
	}
	json_decref(r);
	return 0;
}

static int
cmd_limit(struct cli *c, int argc, char **argv)
{
	char line[EXCEPTION_LINE_MAX], err[512];
	json_t *r;

	if (maillimit_rule_from_argv(argc, argv, line, sizeof(line), err, sizeof(err)) < 0) {
		cli_say("limit: %s", err);
		return 2;
	}
	if (load_config(c) < 0 || (r = call(c, CTL_LIMIT, line, false)) == NULL)
		return 1;
	printf("%s\n", jstr(r, "done"));
	json_decref(r);
	return 0;
}

static int
cmd_unlimit(struct cli *c, int argc, char **argv)
{
	char origin[MAIL_ORIGIN_MAX], err[512];
	json_t *r;

	if (argc != 2) {
		cli_say("usage: smtpguard unlimit ORIGIN");
		return 2;
	}
	if (mailq_origin_key(argv[1], origin, sizeof(origin), err, sizeof(err)) < 0) {
		cli_say("unlimit: '%s': %s", argv[1], err);
		return 2;
	}
	if (load_config(c) < 0 || (r = call(c, CTL_UNLIMIT, origin, false)) == NULL)
		return 1;
	printf("%s\n", jstr(r, "done"));
	json_decref(r);
	return 0;
}

static int
cmd_held(struct cli *c, int argc, char **argv)
{
	if (load_config(c) < 0)
		return 1;
	return mailcli_held(&c->cfg, argc, argv);
}

/* release and purge */
static int
cmd_release(struct cli *c, int argc, char **argv)
{
	if (load_config(c) < 0)
		return 1;
	return mailcli_act(&c->cfg, argc, argv);
}

static int
cmd_mail(struct cli *c, int argc, char **argv)
{
	if (load_config(c) < 0)
		return 1;
	return mailenable_cmd(&c->cfg, argc, argv);
}

/* log and top answer --help even where no config exists yet. */
static bool
wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

/*
 * log and top need the config only for the default event log: on a
 * collector that runs no smtpguardd (files given, no config installed) the
 * built-in defaults serve. A config that exists, or one named with -c,
 * must load.
 */
static int
load_review_config(struct cli *c)
{
	if (strcmp(c->config_path, DEFAULT_CONFIG) == 0 && access(c->config_path, F_OK) < 0 &&
	    errno == ENOENT) {
		config_defaults(&c->cfg);
		c->cfg_loaded = true;
		return 0;
	}
	return load_config(c);
}

static int
cmd_log(struct cli *c, int argc, char **argv)
{
	if (!wants_help(argc, argv) && load_review_config(c) < 0)
		return 1;
	return review_log(c->cfg.log_file, argc, argv);
}

static int
cmd_top(struct cli *c, int argc, char **argv)
{
	if (!wants_help(argc, argv) && load_review_config(c) < 0)
		return 1;
	return review_top(c->cfg.log_file, argc, argv);
}

/* The MTA's logs, not smtpguard's: no config needed. */
static int
cmd_mta_report(struct cli *c, int argc, char **argv)
{
	(void)c;
	return mtareport_cli(argc, argv);
}

static int
cmd_mta_check(struct cli *c, int argc, char **argv)
{
	(void)c;
	return mta_check(argc, argv);
}

int
main(int argc, char **argv)
{
	struct cli c = { .config_path = DEFAULT_CONFIG };
	int ch;

	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};

	/* Options before the command only; the command parses its own. */
	while ((ch = getopt_long(argc, argv, "+c:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			c.config_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("smtpguard %s\n", SMTPGUARD_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[0], commands[i].name) == 0) {
			if (!commands[i].own_help && argc > 1 &&
			    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
				printf("usage: smtpguard [-c file] %s %s\n  %s\n", commands[i].name,
				    commands[i].args, commands[i].help);
				return 0;
			}
			optind = 1;
			return commands[i].run(&c, argc, argv);
		}
	cli_say("unknown command '%s' (smtpguard --help lists them)", argv[0]);
	return 2;
}
