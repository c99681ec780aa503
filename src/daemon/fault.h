/* Fault injection for the end-to-end tests, at named points of a move
 * (listed in docs/architecture.md):
 * - FERRY_FAULT=NAME: ferryd kills itself (SIGKILL, as a crash or a power
 *   cut would stop it) when it reaches the point NAME.
 * - FERRY_PAUSE_DIR=DIR: when the file DIR/NAME exists as the point is
 *   reached, the thread there creates DIR/NAME.reached and waits until
 *   DIR/NAME is gone (at most 10 minutes). The fault matrix
 *   (tests/e2e/test_fault_matrix.py) breaks something in that pause: kills
 *   a process, cuts the network, fills a disk, cancels the job.
 * Both are read from ferryd's own environment, which only whoever starts it
 * (root) sets. Unset, a point costs two getenv. */
#pragma once
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static inline void fault_pause(const char *dir, const char *name)
{
	char path[PATH_MAX], reached[PATH_MAX];
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path) ||
	    (size_t)snprintf(reached, sizeof(reached), "%s.reached", path) >= sizeof(reached) ||
	    access(path, F_OK) != 0)
		return;
	log_warn("FERRY_PAUSE_DIR: paused at %s until %s is removed", name, path);
	if ((fd = open(reached, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) >= 0)
		close(fd);
	for (int i = 0; i < 10 * 60 * 20 && access(path, F_OK) == 0; i++)
		usleep(50 * 1000);
	log_warn("FERRY_PAUSE_DIR: going on from %s", name);
}

static inline void fault_point(const char *name)
{
	const char *want = getenv("FERRY_FAULT"), *dir = getenv("FERRY_PAUSE_DIR");

	if (dir && *dir)
		fault_pause(dir, name);
	if (want && strcmp(want, name) == 0) {
		log_err("FERRY_FAULT=%s: ferryd stops here, as if it had crashed", name);
		raise(SIGKILL);
	}
}
