/* QMP per VM (vm_qmp.h). */
#include "vm_qmp.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "qmp.h"
#include "vmconfig.h"

#define OOB_TIMEOUT_MS 5000

int vm_qmp(struct vm *vm, const char *cmd, json_t *args, json_t **ret, char *err, size_t errlen)
{
	char path[PATH_MAX + 16];
	int r;

	if (ret)
		*ret = NULL;
	pthread_mutex_lock(&vm->qmp_lock);
	if (vm->qmp && qmp_broken(vm->qmp)) {
		qmp_close(vm->qmp);
		vm->qmp = NULL;
	}
	if (!vm->qmp && vm->pid > 0) {
		snprintf(path, sizeof(path), "%s/qmp.sock", vm->rundir);
		qmp_connect(path, QMP_CONNECT_MS, &vm->qmp);
	}
	if (!vm->qmp) {
		snprintf(err, errlen, vm->pid > 0 ? "QEMU of VM %s is not answering on QMP" : "VM %s is not running",
			 vmconfig_name(vm->config));
		r = -ENOTCONN;
	} else {
		r = qmp_execute(vm->qmp, cmd, args, ret, err, errlen);
	}
	pthread_mutex_unlock(&vm->qmp_lock);
	return r;
}

int qmpf(struct vm *vm, char *err, size_t errlen, json_t **ret, const char *cmd, const char *fmt, ...)
{
	json_error_t jerr;
	json_t *args = NULL;
	va_list ap;
	int r;

	if (fmt) {
		va_start(ap, fmt);
		args = json_vpack_ex(&jerr, 0, fmt, ap);
		va_end(ap);
		if (!args) {
			if (ret)
				*ret = NULL;
			snprintf(err, errlen, "internal error building %s: %s", cmd, jerr.text);
			return -EINVAL;
		}
	}
	r = vm_qmp(vm, cmd, args, ret, err, errlen);
	json_decref(args);
	return r;
}

int vm_qmp_oob(struct vm *vm, const char *cmd, json_t *args, char *err, size_t errlen)
{
	int r = -ENOTCONN;

	pthread_mutex_lock(&vm->qmp_lock);
	if (vm->qmp && !qmp_broken(vm->qmp))
		r = qmp_execute_oob(vm->qmp, cmd, args, OOB_TIMEOUT_MS, err, errlen);
	else
		snprintf(err, errlen, "no QMP connection");
	pthread_mutex_unlock(&vm->qmp_lock);
	return r;
}

int vm_qmp_take_event(struct vm *vm, const char *name, json_t **ret)
{
	json_t *ev = NULL, *newer;
	int r = -ENOENT;

	pthread_mutex_lock(&vm->qmp_lock);
	while (vm->qmp && qmp_take_event(vm->qmp, name, &newer) == 0) {
		json_decref(ev);
		ev = newer;
		r = 0;
	}
	pthread_mutex_unlock(&vm->qmp_lock);
	*ret = ev;
	return r;
}

void vm_qmp_clear_events(struct vm *vm)
{
	pthread_mutex_lock(&vm->qmp_lock);
	if (vm->qmp)
		qmp_clear_events(vm->qmp);
	pthread_mutex_unlock(&vm->qmp_lock);
}
