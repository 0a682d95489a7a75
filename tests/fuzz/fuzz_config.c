/*
 * fuzz_config: any bytes as smtpguard.conf. config_load_string() must never
 * read outside the input, and must either refuse with a FILE:LINE error or
 * return a config that keeps every documented bound.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpguard.h"

#define FUZZ_ERR_MAX	1024
#define FUZZ_NAME	"fuzz.conf"

static void
check_path(const char *p, size_t size, bool may_be_empty)
{
	size_t n = strnlen(p, size);

	if (n == size)
		abort();		/* not NUL-terminated */
	if (n == 0 ? !may_be_empty : p[0] != '/')
		abort();
}

static void
check_config(const struct config *c)
{
	if (c->nports < 1 || c->nports > CONFIG_MAX_PORTS)
		abort();
	for (size_t i = 0; i < c->nports; i++)
		if (c->ports[i] == 0)
			abort();
	if (c->action != ACTION_REJECT && c->action != ACTION_TRAP &&
	    c->action != ACTION_AUDIT && c->action != ACTION_REDIRECT)
		abort();
	/* redirect only with the gate that limits it; never to the trap */
	if ((c->action == ACTION_REDIRECT && !c->mail_gate) || c->redirect_to == 0 ||
	    c->redirect_to == c->trap_port)
		abort();
	if (c->trap_port == 0 || c->queue_maxlen == 0 || c->inspect_bytes < 64 ||
	    c->log_rate == 0 || c->log_window == 0)
		abort();
	for (int st = 1; st <= MARK_LAST; st++)
		if (mark_value(c->mark_mask, (enum mark_state)st) == 0)
			abort();
	if (strnlen(c->mta_users, sizeof(c->mta_users)) == 0 ||
	    strnlen(c->mta_users, sizeof(c->mta_users)) == sizeof(c->mta_users))
		abort();
	check_path(c->exceptions, sizeof(c->exceptions), false);
	check_path(c->control_socket, sizeof(c->control_socket), false);
	check_path(c->pid_file, sizeof(c->pid_file), false);
	check_path(c->log_file, sizeof(c->log_file), false);
	check_path(c->alert_exec, sizeof(c->alert_exec), true);
	if (strcmp(c->path, FUZZ_NAME) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config cfg;
	char err[FUZZ_ERR_MAX];

	err[0] = '\0';
	if (config_load_string(&cfg, (const char *)data, size, FUZZ_NAME, err,
	    sizeof(err)) == 0)
		check_config(&cfg);
	else if (strncmp(err, FUZZ_NAME ":", strlen(FUZZ_NAME ":")) != 0 || cfg.nports != 0)
		abort();
	return 0;
}
