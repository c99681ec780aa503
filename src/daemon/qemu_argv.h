/* QEMU's command line for a VM (docs/architecture.md lists it): built
 * from the VM's configuration and the host; descriptors by number. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "ferryd.h"

#define MAX_ARGS 160
/* descriptors QEMU gets, by number (argv names them) */
#define FD_QMP 3
#define FD_CONSOLE 4
#define FD_TAP0 5     /* one per network adapter, FD_TAP0 + i */

struct argv_buf {
	char *v[MAX_ARGS + 1];
	size_t n;
	bool oom;
};

/* With incoming: a planned VM (-S -incoming INCOMING). 0, -EINVAL (no
 * machine type for the configuration version) or -ENOMEM. */
int qemu_argv_build(struct ferryd *d, struct vm *vm, const char *incoming, struct argv_buf *a);
void qemu_argv_free(struct argv_buf *a);
