/*
 * log.c — the daemon's diagnostics (not the event log): stderr in the
 * foreground, syslog(LOG_DAEMON) once detached. fatal() ends the process and
 * is for main and set-up only (STYLE.md, rule 3).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "smtpguard.h"

static bool log_to_stderr = true;

void
log_init(bool foreground)
{
	log_to_stderr = foreground;
	if (!foreground)
		openlog("smtpguardd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

static void __attribute__((format(printf, 3, 0)))
log_vemit(int pri, const char *errstr, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_to_stderr) {
		if (errstr != NULL)
			fprintf(stderr, "smtpguardd: %s: %s\n", msg, errstr);
		else
			fprintf(stderr, "smtpguardd: %s\n", msg);
		fflush(stderr);
	} else if (errstr != NULL)
		syslog(pri, "%s: %s", msg, errstr);
	else
		syslog(pri, "%s", msg);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_INFO, NULL, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	const char *errstr = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_WARNING, errstr, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_WARNING, NULL, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	const char *errstr = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, errstr, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}
