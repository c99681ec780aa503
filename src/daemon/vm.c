/* The VM registry: a list in memory, one directory per VM on disk. */
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferryd.h"
#include "log.h"
#include "qmp.h"
#include "util.h"
#include "vmconfig.h"

#define CONFIG_MAX (256 * 1024)

struct vm *vm_find(struct ferryd *d, const char *name)
{
	for (struct vm *vm = d->vms; vm; vm = vm->next)
		if (strcmp(vmconfig_name(vm->config), name) == 0)
			return vm;
	return NULL;
}

struct vm *vm_find_id(struct ferryd *d, const char *id)
{
	for (struct vm *vm = d->vms; vm; vm = vm->next)
		if (strcasecmp(vmconfig_id(vm->config), id) == 0)
			return vm;
	return NULL;
}

int vm_save(struct ferryd *d, struct vm *vm)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/config.json", vm->dir) >= sizeof(path))
		return -ENAMETOOLONG;
	return write_json_atomic(path, vm->config, JSON_INDENT(2) | JSON_SORT_KEYS, 0600);
}

void vm_unsave(struct vm *vm)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/config.json", vm->dir) < sizeof(path))
		unlink(path);
}

static void vm_free(struct vm *vm)
{
	if (!vm)
		return;
	qmp_close(vm->qmp);
	json_decref(vm->config);
	pthread_mutex_destroy(&vm->qmp_lock);
	free(vm);
}

/* The VM's directory (configuration, console log) is STATE/vms/NAME; with a
 * vm-path (Move-VM -VirtualMachinePath) it lives in VMPATH/NAME and
 * STATE/vms/NAME is a symbolic link to it, so loading finds it as usual. */
static int vm_dir_create(struct vm *vm, const char *vm_path, char *err, size_t errlen)
{
	char real[PATH_MAX];
	int r;

	if (!vm_path || path_exists(vm->dir)) {
		r = mkdir_p(vm->dir, 0700);
		if (r < 0)
			snprintf(err, errlen, "cannot create %s: %s", vm->dir, strerror(-r));
		else
			fsync_parent_dir(vm->dir); /* review L13 */
		return r;
	}
	if ((size_t)snprintf(real, sizeof(real), "%s/%s", vm_path, vmconfig_name(vm->config)) >= sizeof(real)) {
		snprintf(err, errlen, "vm-path too long");
		return -ENAMETOOLONG;
	}
	/* one mkdir, not a check and then a create: a directory someone made
	 * meanwhile is refused, never adopted (review L6) */
	r = mkdir(real, 0700) < 0 ? -errno : 0;
	if (r == -EEXIST) {
		snprintf(err, errlen, "%s already exists: ferry will not reuse it", real);
		return r;
	}
	if (r == 0) {
		char parent[PATH_MAX];
		snprintf(parent, sizeof(parent), "%s", vm->dir);
		*strrchr(parent, '/') = 0;
		mkdir_p(parent, 0700);
		if (symlink(real, vm->dir) < 0) {
			r = -errno;
			remove_tree(real);
		} else {
			/* the new entries survive a power loss (review L13) */
			fsync_parent_dir(real);
			fsync_parent_dir(vm->dir);
		}
	}
	if (r < 0)
		snprintf(err, errlen, "cannot create %s: %s", real, strerror(-r));
	return r;
}

/* config: normalized; the registry takes its own reference. */
int vm_add(struct ferryd *d, json_t *config, bool persist, struct vm **ret, char *err, size_t errlen)
{
	const char *name = vmconfig_name(config), *id = vmconfig_id(config);
	struct vm *vm, *other;
	int r;

	if ((other = vm_find(d, name))) {
		snprintf(err, errlen, "a VM named '%s' already exists on this host", name);
		return -EEXIST;
	}
	if ((other = vm_find_id(d, id))) {
		snprintf(err, errlen, "VM '%s' on this host already has the id %s", vmconfig_name(other->config), id);
		return -EEXIST;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	pthread_mutex_init(&vm->qmp_lock, NULL);
	vm->config = json_incref(config);
	if ((size_t)snprintf(vm->dir, sizeof(vm->dir), "%s/vms/%s", d->state_dir, name) >= sizeof(vm->dir) ||
	    (size_t)snprintf(vm->rundir, sizeof(vm->rundir), "%s/vms/%s", d->run_dir, name) >= sizeof(vm->rundir)) {
		snprintf(err, errlen, "state or run directory path too long for VM '%s'", name);
		r = -ENAMETOOLONG;
		goto out;
	}
	r = vm_dir_create(vm, json_string_value(json_object_get(config, "vm-path")), err, errlen);
	if (r < 0)
		goto out;
	if (persist && (r = vm_save(d, vm)) < 0) {
		snprintf(err, errlen, "cannot save the configuration in %s: %s", vm->dir, strerror(-r));
		goto out;
	}
	vm->next = d->vms;
	d->vms = vm;
	if (ret)
		*ret = vm;
	return 0;
out:
	vm_free(vm);
	return r;
}

void vm_remove(struct ferryd *d, struct vm *vm, bool delete_disks)
{
	struct vm **pp;
	json_t *disk;
	size_t i;

	for (pp = &d->vms; *pp; pp = &(*pp)->next)
		if (*pp == vm) {
			*pp = vm->next;
			break;
		}
	if (delete_disks)
		json_array_foreach(json_object_get(vm->config, "disks"), i, disk) {
			const char *path = json_string_value(json_object_get(disk, "path"));
			if (path && unlink(path) < 0 && errno != ENOENT)
				log_warn("VM %s: cannot delete disk %s: %s", vmconfig_name(vm->config), path,
					 strerror(errno));
		}
	if (remove_tree_follow(vm->dir) < 0) /* and the vm-path directory it may point to */
		log_warn("cannot remove %s: %s", vm->dir, strerror(errno));
	remove_tree(vm->rundir);
	vm_free(vm);
}

const char *vm_state(struct vm *vm)
{
	if (vm->busy)
		return vm->busy;
	if (vm->incoming)
		return "incoming";
	return qemu_alive(vm) ? "running" : "off";
}

json_t *vm_summary(struct vm *vm)
{
	json_t *c = vm->config;

	return json_pack("{s:s, s:s, s:s, s:O, s:O, s:O, s:O, s:o, s:O, s:O}",
			 "name", vmconfig_name(c), "id", vmconfig_id(c), "state", vm_state(vm),
			 "memory-mib", json_object_get(c, "memory-mib"), "vcpus", json_object_get(c, "vcpus"),
			 "disks", json_object_get(c, "disks"), "nics", json_object_get(c, "nics"),
			 "pid", qemu_alive(vm) ? json_integer(vm->pid) : json_null(),
			 "processor-compat", json_object_get(c, "processor-compat"),
			 "config-version", json_object_get(c, "config-version"));
}

static int load_one(struct ferryd *d, const char *name)
{
	char path[PATH_MAX], err[512], *text = NULL;
	json_error_t jerr;
	json_t *cfg = NULL;
	struct vm *vm;
	size_t len;
	int r;

	if ((size_t)snprintf(path, sizeof(path), "%s/vms/%s/config.json", d->state_dir, name) >= sizeof(path))
		return -ENAMETOOLONG;
	r = read_file(path, CONFIG_MAX, &text, &len);
	if (r < 0) {
		log_warn("skipping %s: %s", path, strerror(-r));
		return r;
	}
	cfg = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!cfg) {
		log_warn("skipping %s: line %d: %s", path, jerr.line, jerr.text);
		return -EINVAL;
	}
	r = vmconfig_normalize(cfg, err, sizeof(err));
	if (r == 0 && strcmp(vmconfig_name(cfg), name) != 0) {
		snprintf(err, sizeof(err), "VM name '%s' does not match its directory", vmconfig_name(cfg));
		r = -EINVAL;
	}
	if (r == 0)
		r = vm_add(d, cfg, false, &vm, err, sizeof(err));
	json_decref(cfg);
	if (r < 0) {
		log_warn("skipping %s: %s", path, err);
		return r;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/qemu.pid", vm->rundir) < sizeof(path) && path_exists(path))
		qemu_reattach(d, vm);
	log_info("VM %s loaded: %s", name, vm_state(vm));
	return 0;
}

/* At start-up: every VM under state_dir/vms, reattached to its QEMU if it still runs. */
int vms_load(struct ferryd *d)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *dir;
	int r;

	if ((size_t)snprintf(path, sizeof(path), "%s/vms", d->state_dir) >= sizeof(path))
		return -ENAMETOOLONG;
	r = mkdir_p(path, 0700);
	if (r < 0)
		return r;
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((de = readdir(dir)))
		if (de->d_name[0] != '.' && name_is_valid(de->d_name, VM_NAME_MAX))
			load_one(d, de->d_name);
	closedir(dir);
	return 0;
}
