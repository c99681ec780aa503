/* Helpers shared by the source and destination halves of a move. */
#pragma once
#include <jansson.h>
#include <stddef.h>

#include "ferryd.h"

/* vm_qmp with arguments built by json_pack. */
int qmpf(struct vm *vm, char *err, size_t errlen, json_t **ret, const char *cmd, const char *fmt, ...);
/* Overwrites the text of the string obj[key] (a key) before it is freed. */
void json_wipe_string(json_t *obj, const char *key);
/* Removes the one-time key directories (tls-JOB) a source's moves left in
 * the VM's run directory (after a restart: review L1). */
int psk_dirs_remove(const char *rundir);
