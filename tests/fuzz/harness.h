/*
 * harness.h — for fuzz targets that run a whole CLI command: the input goes
 * to a memfd the command reads as a file, and the command's output to
 * /dev/null, so only crashes, leaks and undefined behaviour show.
 */
#ifndef FUZZ_HARNESS_H
#define FUZZ_HARNESS_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int harness_devnull = -1, harness_memfd = -1, harness_out = -1, harness_err = -1;
static char harness_path[64];	/* the memfd, as a path */

static int
harness_init(const char *name)
{
	setenv("TZ", "UTC0", 1);
	harness_devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	harness_memfd = memfd_create(name, MFD_CLOEXEC);
	snprintf(harness_path, sizeof(harness_path), "/proc/self/fd/%d", harness_memfd);
	return harness_devnull < 0 || harness_memfd < 0 ? -1 : 0;
}

/* The file the command will read; -1 if it could not be written. */
static int
harness_file(const void *data, size_t size)
{
	if (ftruncate(harness_memfd, 0) < 0 ||
	    pwrite(harness_memfd, data, size, 0) != (ssize_t)size)
		return -1;
	return 0;
}

static void
harness_quiet(void)
{
	fflush(stdout);
	fflush(stderr);
	harness_out = dup(STDOUT_FILENO);
	harness_err = dup(STDERR_FILENO);
	dup2(harness_devnull, STDOUT_FILENO);
	dup2(harness_devnull, STDERR_FILENO);
}

static void
harness_loud(void)
{
	fflush(stdout);
	fflush(stderr);
	dup2(harness_out, STDOUT_FILENO);
	dup2(harness_err, STDERR_FILENO);
	close(harness_out);
	close(harness_err);
}

#endif
