/* Fault injection for the end-to-end tests: with FERRY_FAULT=NAME in its
 * environment, ferryd kills itself (SIGKILL, as a crash or a power cut
 * would stop it) when it reaches the point called NAME. Unset, a point costs
 * one getenv. The points are listed in docs/architecture.md. */
#pragma once
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static inline void fault_point(const char *name)
{
	const char *want = getenv("FERRY_FAULT");

	if (want && strcmp(want, name) == 0) {
		log_err("FERRY_FAULT=%s: ferryd stops here, as if it had crashed", name);
		raise(SIGKILL);
	}
}
