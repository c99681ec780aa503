/* VM lifecycle requests (New-VM, Get-VM, Start-/Stop-VM, Remove-VM, Set-VMProcessor). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferryd.h"
#include "move.h"
#include "image.h"
#include "log.h"
#include "move_state.h"
#include "ops.h"
#include "settings.h"
#include "util.h"
#include "vm_qmp.h"
#include "vmconfig.h"

#define CONSOLE_DEFAULT (64 * 1024)
#define CONSOLE_MAX (1024 * 1024)
#define DISK_MAX_MIB (64ull * 1024 * 1024)

static json_t *no_vm(const char *name)
{
	return reply_error("not_found", "see 'ferry vm list'", "no VM named '%s' on this host", name);
}

/* Finds the VM and, when it is free, marks it busy with what; caller clears busy. */
static json_t *claim(struct ferryd *d, const char *name, const char *what, struct vm **ret)
{
	struct vm *vm;
	json_t *e = NULL;

	pthread_mutex_lock(&d->lock);
	vm = vm_find(d, name);
	if (!vm || vm->incoming)
		e = no_vm(name);
	else if (vm->busy)
		e = reply_error("busy", "wait for it to finish", "VM '%s' is %s", name, vm->busy);
	else
		vm->busy = what;
	pthread_mutex_unlock(&d->lock);
	*ret = vm;
	return e;
}

static void release(struct ferryd *d, struct vm *vm)
{
	pthread_mutex_lock(&d->lock);
	vm->busy = NULL;
	pthread_mutex_unlock(&d->lock);
}

static json_t *find_create(json_t *create, const char *path)
{
	size_t i;
	json_t *c;

	json_array_foreach(create, i, c)
		if (json_is_string(json_object_get(c, "path")) &&
		    strcmp(json_string_value(json_object_get(c, "path")), path) == 0)
			return c;
	return NULL;
}

/* Checks each disk; creates the ones listed in create. created collects new files for undo. */
static json_t *check_disks(json_t *cfg, json_t *create, json_t *created)
{
	json_t *disk;
	size_t i;

	json_array_foreach(json_object_get(cfg, "disks"), i, disk) {
		const char *path = json_string_value(json_object_get(disk, "path"));
		const char *want = json_string_value(json_object_get(disk, "format"));
		char err[512];
		json_t *c = find_create(create, path), *sz;
		struct stat st;

		if (stat(path, &st) == 0) {
			if (S_ISBLK(st.st_mode) || S_ISCHR(st.st_mode))
				return reply_error("invalid", NULL,
						   "host block device %s cannot be a VM disk: ferry moves only image "
						   "files (qcow2, raw); copy it into an image with qemu-img convert", path);
			if (!S_ISREG(st.st_mode))
				return reply_error("invalid", NULL, "disk %s is not a regular file", path);
			if (c)
				return reply_error("exists", "drop it from the disks to create, or pick a new path",
						   "disk %s already exists", path);
		} else if (errno != ENOENT) {
			return reply_error("invalid", NULL, "disk %s: %s", path, strerror(errno));
		} else if (!c) {
			return reply_error("not_found", "give a size to create it (--disk PATH,size=SIZE)",
					   "disk %s does not exist", path);
		} else {
			uint64_t mib = 0;
			const char *cf = json_string_value(json_object_get(c, "format"));
			sz = json_object_get(c, "size-mib");
			if (json_is_integer(sz) && json_integer_value(sz) > 0)
				mib = (uint64_t)json_integer_value(sz);
			if (mib == 0 || mib > DISK_MAX_MIB)
				return reply_error("invalid", NULL, "size-mib of new disk %s must be 1..%llu", path,
						   (unsigned long long)DISK_MAX_MIB);
			if (cf && strcmp(cf, want) != 0)
				return reply_error("invalid", NULL, "disk %s: create format %s differs from disk format %s",
						   path, cf, want);
			if (image_create(path, want, mib << 20, err, sizeof(err)) < 0)
				return reply_error("failed", NULL, "%s", err);
			json_array_append_new(created, json_string(path));
		}
		if (image_check_format(path, want, err, sizeof(err)) < 0)
			return reply_error("invalid", NULL, "%s", err);
	}
	return NULL;
}

static json_t *check_boot_files(json_t *cfg)
{
	static const char *const keys[] = {"kernel", "initrd"};
	struct stat st;

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const char *p = json_string_value(json_object_get(cfg, keys[i]));
		if (p && (stat(p, &st) < 0 || !S_ISREG(st.st_mode)))
			return reply_error("not_found", NULL, "%s %s is not a file on this host", keys[i], p);
	}
	return NULL;
}

static void undo_created(json_t *created)
{
	size_t i;
	json_t *p;

	json_array_foreach(created, i, p)
		unlink(json_string_value(p));
}

static json_t *vm_define(struct request *req)
{
	struct ferryd *d = req->d;
	json_t *cfg, *create = json_object_get(req->args, "create"), *created = json_array(), *e, *res;
	char err[512];
	struct vm *vm;
	int r;

	if (!json_is_object(json_object_get(req->args, "config")))
		return reply_error("bad_request", NULL, OP_VM_DEFINE " needs a 'config' object");
	if (create && !json_is_array(create))
		return reply_error("bad_request", NULL, "'create' must be a list of {path, size-mib, format}");
	cfg = json_deep_copy(json_object_get(req->args, "config"));
	if (vmconfig_normalize(cfg, err, sizeof(err)) < 0) {
		e = reply_error("invalid", NULL, "%s", err);
		goto out;
	}
	pthread_mutex_lock(&d->lock);
	vm = vm_find(d, vmconfig_name(cfg));
	pthread_mutex_unlock(&d->lock);
	if (vm) {
		e = reply_error("exists", NULL, "a VM named '%s' already exists on this host", vmconfig_name(cfg));
		goto out;
	}
	if ((e = check_boot_files(cfg)) || (e = check_disks(cfg, create, created)))
		goto out;
	pthread_mutex_lock(&d->lock);
	r = vm_add(d, cfg, true, &vm, err, sizeof(err));
	res = r == 0 ? vm_summary(vm) : NULL;
	pthread_mutex_unlock(&d->lock);
	if (r < 0)
		e = reply_error(r == -EEXIST ? "exists" : "failed", NULL, "%s", err);
	else
		e = reply_ok(res);
out:
	if (!json_is_true(json_object_get(e, "ok")))
		undo_created(created);
	json_decref(created);
	json_decref(cfg);
	return e;
}

static json_t *vm_list(struct request *req)
{
	json_t *list = json_array();

	pthread_mutex_lock(&req->d->lock);
	for (struct vm *vm = req->d->vms; vm; vm = vm->next)
		if (!vm->incoming)
			json_array_append_new(list, vm_summary(vm));
	pthread_mutex_unlock(&req->d->lock);
	return reply_ok(json_pack("{s:o}", "vms", list));
}

static json_t *vm_show(struct request *req)
{
	const char *name;
	json_t *e, *res = NULL;
	struct vm *vm;
	char path[PATH_MAX + 16];

	if (arg_name(req->args, "name", &name, &e) < 0)
		return e;
	pthread_mutex_lock(&req->d->lock);
	vm = vm_find(req->d, name);
	if (vm && vm->incoming) {
		/* arriving: "incoming", not "no such VM", which a source whose
		 * finish went unanswered takes as leave to resume its copy */
		res = json_pack("{s:s, s:s}", "name", name, "state", "incoming");
	} else if (vm) {
		json_t *st = NULL;
		const char *status;
		res = vm_summary(vm);
		/* QEMU runs but the guest may not: say so (a source that handed it
		 * over, or a guest paused by QEMU itself) */
		if (!vm->busy && qemu_alive(vm) && vm_qmp(vm, "query-status", NULL, &st, path, sizeof(path)) == 0 &&
		    (status = json_string_value(json_object_get(st, "status")))) {
			json_object_set_new(res, "qemu-status", json_string(status));
			if (!strcmp(status, "paused") || !strcmp(status, "postmigrate") ||
			    !strcmp(status, "finish-migrate") || !strcmp(status, "prelaunch") || !strcmp(status, "io-error"))
				json_object_set_new(res, "state", json_string("paused"));
		}
		json_decref(st);
		snprintf(path, sizeof(path), "%s/console.log", vm->dir);
		json_object_set_new(res, "config", json_deep_copy(vm->config));
		json_object_set_new(res, "console-log", json_string(path));
		json_object_set_new(res, "dir", json_string(vm->dir));
	}
	pthread_mutex_unlock(&req->d->lock);
	return res ? reply_ok(res) : no_vm(name);
}

static json_t *summary_locked(struct ferryd *d, struct vm *vm)
{
	json_t *s;

	pthread_mutex_lock(&d->lock);
	s = vm_summary(vm);
	pthread_mutex_unlock(&d->lock);
	return s;
}

/* The destination of a move that had reached its finish phase (the
 * destination was told, or about to be told, to resume the guest), else "". */
static void handed_over_to(struct vm *vm, char *ret_dest, size_t len)
{
	struct move_record rec;

	ret_dest[0] = '\0';
	if (move_record_read(vm->rundir, &rec) == 0 && rec.phase >= MOVE_FINISH)
		snprintf(ret_dest, len, "%s", rec.dest);
}

/* A VM suspended, left paused by an interrupted move, or paused by QEMU on
 * a disk error (a full disk, werror=enospc: free space first) resumes; a
 * running one is refused. NULL when it runs now. */
static json_t *resume_paused(struct vm *vm, const char *name, bool force)
{
	json_t *st = NULL, *e = NULL;
	const char *status;
	char err[1024], dest[256];

	if (vm_qmp(vm, "query-status", NULL, &st, err, sizeof(err)) == 0 &&
	    (status = json_string_value(json_object_get(st, "status"))) &&
	    (!strcmp(status, "paused") || !strcmp(status, "postmigrate") || !strcmp(status, "io-error"))) {
		/* the destination may run it already: two copies only on purpose (review L15) */
		handed_over_to(vm, dest, sizeof(dest));
		if (dest[0] && !force) {
			snprintf(err, sizeof(err), "if %s does not run it, 'ferry vm start %s --force'; if it does, "
				 "'ferry vm kill %s; ferry vm delete %s --keep-disks'", dest, name, name, name);
			e = reply_error("refused", err, "VM '%s' was handed over to %s, which was told to resume "
					"it: starting it here too could run it twice", name, dest);
		} else if (vm_qmp(vm, "cont", NULL, NULL, err, sizeof(err)) < 0) {
			e = reply_error("failed", NULL, "cannot resume VM '%s': %s", name, err);
		} else if (dest[0]) {
			/* what the interrupted move left in QEMU goes with its record */
			move_drop_leftovers(vm);
			move_record_remove(vm->rundir);
			log_warn("VM %s resumed here with --force after its move to %s", name, dest);
		}
	} else {
		e = reply_error("refused", NULL, "VM '%s' is already running", name);
	}
	json_decref(st);
	return e;
}

/* Suspend-VM: the guest stops where it is, in memory; QEMU writes out
 * what it holds of the disks first (a consistent image to copy or check).
 * Resume-VM (vm.resume) or vm.start goes on. */
static json_t *vm_suspend(struct request *req)
{
	const char *name;
	json_t *e, *st = NULL;
	struct vm *vm;
	char err[1024];

	if (arg_name(req->args, "name", &name, &e) < 0)
		return e;
	if ((e = claim(req->d, name, "suspending", &vm)))
		return e;
	if (!qemu_alive(vm))
		e = reply_error("refused", NULL, "VM '%s' is not running", name);
	else if (vm_qmp(vm, "query-status", NULL, &st, err, sizeof(err)) < 0)
		e = reply_error("failed", NULL, "cannot ask QEMU about VM '%s': %s", name, err);
	else if (!json_is_string(json_object_get(st, "status")) ||
		 strcmp(json_string_value(json_object_get(st, "status")), "running") != 0)
		e = reply_error("refused", NULL, "VM '%s' is not running (%s)", name,
				json_is_string(json_object_get(st, "status")) ? json_string_value(json_object_get(st, "status")) : "?");
	else if (vm_qmp(vm, "stop", NULL, NULL, err, sizeof(err)) < 0)
		e = reply_error("failed", NULL, "cannot suspend VM '%s': %s", name, err);
	json_decref(st);
	release(req->d, vm);
	return e ? e : reply_ok(summary_locked(req->d, vm));
}

static json_t *vm_resume(struct request *req)
{
	const char *name;
	json_t *e;
	struct vm *vm;

	if (arg_name(req->args, "name", &name, &e) < 0)
		return e;
	if ((e = claim(req->d, name, "resuming", &vm)))
		return e;
	if (!qemu_alive(vm))
		e = reply_error("refused", "ferry vm start", "VM '%s' is off: start it with 'ferry vm start %s'", name,
				name);
	else
		e = resume_paused(vm, name, arg_bool(req->args, "force", false));
	release(req->d, vm);
	return e ? e : reply_ok(summary_locked(req->d, vm));
}

static json_t *vm_start(struct request *req)
{
	struct ferryd *d = req->d;
	const char *name;
	json_t *e, *nic;
	struct vm *vm;
	char err[1024];
	size_t i;

	if (arg_name(req->args, "name", &name, &e) < 0)
		return e;
	if ((e = claim(d, name, "starting", &vm)))
		return e;
	if (qemu_alive(vm)) {
		e = resume_paused(vm, name, arg_bool(req->args, "force", false));
		goto out;
	}
	if (vm->pid > 0)
		qemu_kill(vm); /* QEMU went away by itself: forget its taps and socket */
	json_array_foreach(json_object_get(vm->config, "nics"), i, nic) {
		const char *sw = json_string_value(json_object_get(nic, "switch"));
		if (!switch_exists(sw)) {
			snprintf(err, sizeof(err), "ferry switch create %s --uplink IFACE", sw);
			e = reply_error("not_found", err,
					"virtual switch '%s' does not exist on this host: create it with "
					"'ferry switch create %s --uplink IFACE'", sw, sw);
			goto out;
		}
	}
	if ((e = check_boot_files(vm->config)))
		goto out;
	if (qemu_start(d, vm, NULL, err, sizeof(err)) < 0)
		e = reply_error("failed", NULL, "cannot start VM '%s': %s", name, err);
out:
	release(d, vm);
	return e ? e : reply_ok(summary_locked(d, vm));
}

static json_t *vm_stop(struct request *req)
{
	struct ferryd *d = req->d;
	json_t *e, *t = json_object_get(req->args, "timeout");
	bool force = arg_bool(req->args, "force", false);
	const char *name;
	struct vm *vm;
	int timeout, r;

	if (arg_name(req->args, "name", &name, &e) < 0)
		return e;
	if (t && (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > 3600))
		return reply_error("invalid", NULL, "timeout must be 0..3600 seconds");
	if ((e = claim(d, name, "stopping", &vm)))
		return e;
	pthread_mutex_lock(&d->lock);
	timeout = t ? (int)json_integer_value(t) : (int)settings_int(d->settings, "stop-timeout");
	pthread_mutex_unlock(&d->lock);
	if (!qemu_alive(vm)) {
		qemu_kill(vm);
		release(d, vm);
		return reply_error("refused", NULL, "VM '%s' is not running", name);
	}
	r = qemu_stop(d, vm, timeout, force);
	release(d, vm);
	if (r < 0)
		return reply_error("failed", NULL, "VM '%s' could not be stopped: %s", name, strerror(-r));
	return reply_ok(summary_locked(d, vm));
}

static json_t *vm_kill(struct request *req)
{
	const char *name;
	json_t *e;
	struct vm *vm;

	if (arg_name(req->args, "name", &name, &e) < 0)
		return e;
	if ((e = claim(req->d, name, "stopping", &vm)))
		return e;
	qemu_kill(vm);
	release(req->d, vm);
	return reply_ok(summary_locked(req->d, vm));
}

static json_t *vm_delete(struct request *req)
{
	struct ferryd *d = req->d;
	bool keep = arg_bool(req->args, "keep-disks", false);
	const char *name;
	struct vm *vm;
	json_t *e = NULL;

	if (arg_name(req->args, "name", &name, &e) < 0)
		return e;
	pthread_mutex_lock(&d->lock);
	vm = vm_find(d, name);
	if (!vm || vm->incoming)
		e = no_vm(name);
	else if (vm->busy)
		e = reply_error("busy", NULL, "VM '%s' is %s", name, vm->busy);
	else if (qemu_alive(vm))
		e = reply_error("refused", NULL, "VM '%s' is running: stop it first (ferry vm stop %s)", name, name);
	else {
		qemu_kill(vm); /* only cleans up: QEMU is gone */
		vm_remove(d, vm, !keep);
	}
	pthread_mutex_unlock(&d->lock);
	return e ? e : reply_ok(json_pack("{s:s, s:b}", "deleted", name, "disks-deleted", !keep));
}

static json_t *vm_console(struct request *req)
{
	json_t *e, *b = json_object_get(req->args, "bytes");
	char path[PATH_MAX + 16], *buf = NULL;
	const char *name;
	struct vm *vm;
	struct stat st;
	size_t want = CONSOLE_DEFAULT;
	ssize_t n;
	off_t from;
	int fd;

	if (arg_name(req->args, "name", &name, &e) < 0)
		return e;
	if (b) {
		if (!json_is_integer(b) || json_integer_value(b) < 1 || json_integer_value(b) > CONSOLE_MAX)
			return reply_error("invalid", NULL, "bytes must be 1..%d", CONSOLE_MAX);
		want = (size_t)json_integer_value(b);
	}
	pthread_mutex_lock(&req->d->lock);
	vm = vm_find(req->d, name);
	if (vm)
		snprintf(path, sizeof(path), "%s/console.log", vm->dir);
	pthread_mutex_unlock(&req->d->lock);
	if (!vm)
		return no_vm(name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return reply_ok(json_pack("{s:s}", "log", ""));
	if (fstat(fd, &st) < 0 || !(buf = malloc(want + 1))) {
		close(fd);
		return reply_error("failed", NULL, "cannot read %s", path);
	}
	from = st.st_size > (off_t)want ? st.st_size - (off_t)want : 0;
	n = pread(fd, buf, want, from);
	close(fd);
	if (n < 0)
		n = 0;
	/* a guest may print anything; jansson takes only UTF-8 (and the tail may start mid-character) */
	utf8_sanitize(buf, (size_t)n);
	e = reply_ok(json_pack("{s:s%}", "log", buf, (size_t)n));
	free(buf);
	return e;
}

static json_t *vm_set(struct request *req)
{
	struct ferryd *d = req->d;
	static const char *const keys[] = {"processor-compat", "memory-mib", "vcpus"};
	const char *name;
	json_t *e = NULL, *cfg = NULL, *old;
	struct vm *vm;
	char err[512];
	int r;

	if (arg_name(req->args, "name", &name, &e) < 0)
		return e;
	pthread_mutex_lock(&d->lock);
	vm = vm_find(d, name);
	if (!vm || vm->incoming) {
		e = no_vm(name);
		goto out;
	}
	if (vm->busy || qemu_alive(vm)) {
		snprintf(err, sizeof(err), "ferry vm stop %s", name);
		e = reply_error("refused", err,
				"processor compatibility, memory and processors can be changed only while the VM "
				"is off: ferry vm stop %s", name);
		goto out;
	}
	cfg = json_deep_copy(vm->config);
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (json_object_get(req->args, keys[i]))
			json_object_set(cfg, keys[i], json_object_get(req->args, keys[i]));
	if (vmconfig_normalize(cfg, err, sizeof(err)) < 0) {
		e = reply_error("invalid", NULL, "%s", err);
		goto out;
	}
	old = vm->config;
	vm->config = cfg;
	r = vm_save(d, vm);
	if (r < 0) {
		vm->config = old;
		e = reply_error("failed", NULL, "cannot save the configuration: %s", strerror(-r));
		goto out;
	}
	cfg = old;
	e = reply_ok(vm_summary(vm));
out:
	pthread_mutex_unlock(&d->lock);
	json_decref(cfg);
	return e;
}

const struct op_def vm_ops[] = {
	{OP_VM_DEFINE, vm_define, OP_USER},
	{OP_VM_LIST, vm_list, OP_USER},
	{OP_VM_SHOW, vm_show, OP_USER},
	{OP_VM_START, vm_start, OP_USER},
	{OP_VM_STOP, vm_stop, OP_USER},
	{OP_VM_KILL, vm_kill, OP_USER},
	{OP_VM_SUSPEND, vm_suspend, OP_USER},
	{OP_VM_RESUME, vm_resume, OP_USER},
	{OP_VM_DELETE, vm_delete, OP_USER},
	{OP_VM_CONSOLE, vm_console, OP_USER},
	{OP_VM_SET, vm_set, OP_USER},
	{NULL, NULL, 0},
};
