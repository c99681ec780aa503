/* A fake QEMU for unit tests: a thread on the other end of a socketpair
 * speaks QMP (greeting, capabilities with oob) to the real client (qmp.c),
 * so tests go through the one call path of ferryd (vm_qmp.c). Every command
 * (execute or exec-oob) is answered by the test's function. */
#pragma once
#include <jansson.h>
#include <stddef.h>

#include "ferryd.h"

/* 0 with *ret (may stay NULL: {}) as the "return", or -1 with err as
 * QEMU's error description. */
typedef int (*fake_qemu_fn)(const char *cmd, json_t *args, json_t **ret, char *err, size_t errlen);

/* vm (zeroed by the caller) gets a name, a QMP lock and a connected QMP
 * client whose QEMU is fn. 0 or -errno. */
int fake_qemu_start(struct vm *vm, const char *name, fake_qemu_fn fn);
/* Closes the client and waits for the thread. */
void fake_qemu_stop(struct vm *vm);
