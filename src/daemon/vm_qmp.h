/* The one way ferryd talks to a VM's QEMU: vm_qmp (arguments as JSON) and
 * qmpf (arguments built by json_pack), both over the VM's QMP client
 * (qmp.c), which they (re)connect as needed under vm->qmp_lock. */
#pragma once
#include <jansson.h>
#include <stddef.h>

#include "ferryd.h"

/* QEMU answers its QMP greeting within this once its socket accepts. */
#define QMP_CONNECT_MS 5000

/* Runs one QMP command on the VM's QEMU (args borrowed, may be NULL); ret
 * gets a new reference to "return" or NULL. err says why. Reconnects QMP if
 * needed. */
int vm_qmp(struct vm *vm, const char *cmd, json_t *args, json_t **ret, char *err, size_t errlen);
/* vm_qmp with arguments built by json_pack(fmt, ...); fmt NULL: none. */
int qmpf(struct vm *vm, char *err, size_t errlen, json_t **ret, const char *cmd, const char *fmt, ...);
/* The same, out of band: answered even while QEMU's main loop is blocked
 * (yank). Uses the connection as it is: never reconnects. */
int vm_qmp_oob(struct vm *vm, const char *cmd, json_t *args, char *err, size_t errlen);
/* QEMU's events kept by the VM's QMP client (qmp.h): the newest named
 * name, taken with the older ones of that name, or -ENOENT. */
int vm_qmp_take_event(struct vm *vm, const char *name, json_t **ret);
/* Forgets the kept events (before what is to be watched). */
void vm_qmp_clear_events(struct vm *vm);
