/*
 * mailrun.c — what the mail commands (mailcli.c: held, release, purge;
 * mailenable.c: mail enable|disable) share: running one of the MTA's own
 * tools with both outputs kept and bounded, finding it in PATH, the options
 * every mail command takes (--postfix-config DIR, --exim-config FILE,
 * --json). It decides nothing about mail and never touches the MTA's files
 * itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "smtpguard.h"

#define RUN_OUT_MAX	(256 * 1024 * 1024)	/* a queue listing: ~1 M held messages */

extern char **environ;

/* --- running the MTA's tools ---------------------------------------------------- */

int
mailrun_append(char **buf, size_t *len, size_t *cap, const char *p, size_t n, size_t max)
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
int
mailrun(char *const argv[], struct mailrun *r)
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
			if (i == 0 && !big && mailrun_append(&r->out, &r->outlen, &cap, buf, (size_t)n,
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
	if (r->out == NULL && mailrun_append(&r->out, &r->outlen, &cap, "", 0, RUN_OUT_MAX) < 0)
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
int
mailrun_ok(char *const argv[], struct mailrun *r)
{
	if (mailrun(argv, r) < 0) {
		cli_say("cannot run %s: %s", argv[0], strerror(errno));
		return -1;
	}
	if (r->status != 0) {
		cli_say("%s failed (exit %d): %s", argv[0], r->status, first_line(r->err));
		free(r->out);
		r->out = NULL;
		return -1;
	}
	return 0;
}

bool
mailrun_in_path(const char *name)
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


/* The flags every mail command takes: the MTA instance, and --json where JSON_OK. */
int
mailrun_opts(int argc, char **argv, bool json_ok, struct mailrun_opts *o, const char *usage)
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
			cli_say("%s: unexpected argument '%s' (usage: smtpguard %s %s)", argv[0],
			    argv[i], argv[0], usage);
			return -1;
		}
	}
	if ((o->postfix_dir != NULL && o->postfix_dir[0] != '/') ||
	    (o->exim_conf != NULL && o->exim_conf[0] != '/')) {
		cli_say("%s: the MTA's configuration is an absolute path", argv[0]);
		return -1;
	}
	return 0;
}
