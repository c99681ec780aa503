/* vm.move-storage {name, dir}: the VM's disks move to another directory on
 * this host while the guest runs (Move-VMStorage): QEMU mirrors each disk to
 * a new image and then switches the guest over to it. */
#include <errno.h>
#include <stddef.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockjob.h"
#include "ferryd.h"
#include "image.h"
#include "log.h"
#include "storage.h"
#include "util.h"
#include "vm_qmp.h"
#include "vmconfig.h"

#define MS_JOBS "ms" /* mirrors ms-mirror<i> to file nodes ms-tgt<i> (blockjob.h) */

/* DIR/<basename> for each disk; two disks with one basename (/a/d.qcow2 and
 * /b/d.qcow2) get d.qcow2 and d-2.qcow2 rather than one file for both. */
static int new_paths(json_t *cfg, const char *dir, json_t **ret, char *err, size_t errlen)
{
	json_t *paths = json_array(), *dsk;
	size_t i;

	json_array_foreach(json_object_get(cfg, "disks"), i, dsk) {
		char base[PATH_MAX], path[PATH_MAX];
		const char *name, *dot;
		bool taken = true;

		snprintf(base, sizeof(base), "%s", arg_str(dsk, "path"));
		name = basename(base);
		dot = strrchr(name, '.');
		for (unsigned k = 1; taken && k < 100; k++) {
			size_t j;
			json_t *p;
			int n = k == 1 ? snprintf(path, sizeof(path), "%s/%s", dir, name)
				       : snprintf(path, sizeof(path), "%s/%.*s-%u%s", dir,
						  (int)(dot && dot != name ? dot - name : (ptrdiff_t)strlen(name)), name, k,
						  dot && dot != name ? dot : "");
			if (n < 0 || (size_t)n >= sizeof(path))
				break;
			taken = false;
			json_array_foreach(paths, j, p)
				taken |= strcmp(json_string_value(p), path) == 0;
		}
		if (taken || path_exists(path)) {
			snprintf(err, errlen, "%s already exists: ferry will not overwrite it", path);
			json_decref(paths);
			return -EEXIST;
		}
		json_array_append_new(paths, json_string(path));
	}
	*ret = paths;
	return 0;
}

/* Cancels the first n mirrors and deletes the new files this move created
 * (ids[i].ino != 0), and only if they are still those files. */
static void drop_targets(struct vm *vm, size_t n, json_t *paths, const struct file_id *ids)
{
	blockjob_abandon(vm, MS_JOBS, n, 2000);
	for (size_t i = 0; i < json_array_size(paths); i++)
		if (ids[i].ino)
			storage_unlink_created(json_string_value(json_array_get(paths, i)), &ids[i]);
}

struct round_ctx {
	struct ferryd *d;
	struct job *j;
};

static int copy_round(void *ctx, const struct blockjob_progress *p)
{
	struct round_ctx *c = ctx;

	job_set_disk_progress(c->d, c->j, p->total, p->remaining);
	return job_cancelled(c->d, c->j) ? -ECANCELED : 0;
}

static int move_running(struct ferryd *d, struct job *j, struct vm *vm, const char *dir, json_t *paths,
			char *err, size_t errlen)
{
	json_t *dsk;
	size_t i, n = json_array_size(paths), started = 0;
	struct file_id *ids = calloc(n ? n : 1, sizeof(*ids));
	struct round_ctx rc = {.d = d, .j = j};
	char why[512] = "";
	int r = 0;

	if (!ids)
		return -ENOMEM;

	json_array_foreach(json_object_get(vm->config, "disks"), i, dsk) {
		char node[64], tgt[32];
		const char *fmt = arg_str(dsk, "format"), *path = json_string_value(json_array_get(paths, i));
		uint64_t bytes;

		if ((r = image_sizes(arg_str(dsk, "path"), fmt, &bytes, NULL, err, errlen)) < 0 ||
		    (r = blockjob_disk_node(vm, i, node, sizeof(node), err, errlen)) < 0)
			goto fail;
		/* O_EXCL, no link followed: a file that appeared since new_paths is not overwritten */
		if ((r = storage_create(dir, path, &ids[i], err, errlen)) < 0 ||
		    (r = image_create(path, fmt, bytes, err, errlen)) < 0)
			goto fail;
		/* the running QEMU opens it: as its own user */
		if ((r = qemu_file_own(d, path, err, errlen)) < 0)
			goto fail;
		snprintf(tgt, sizeof(tgt), MS_JOBS "-tgt%zu", i);
		r = qmpf(vm, err, errlen, NULL, "blockdev-add", "{s:s, s:s, s:{s:s, s:s}}", "driver", fmt, "node-name",
			 tgt, "file", "driver", "file", "filename", path);
		if (r < 0)
			goto fail;
		started = i + 1;
		if ((r = blockjob_mirror_start(vm, MS_JOBS, i, node, "full", err, errlen)) < 0)
			goto fail;
	}
	r = blockjob_wait(vm, MS_JOBS, n, BLOCKJOB_READY, now_ms() + BLOCKJOB_SYNC_TIMEOUT_MS, 200, copy_round, &rc, why,
			  sizeof(why));
	if (r < 0) {
		if (r != -ECANCELED)
			snprintf(err, errlen, "copying a disk failed: %s", why);
		goto fail;
	}
	pthread_mutex_lock(&d->lock);
	j->past_cancel_point = true;
	pthread_mutex_unlock(&d->lock);
	/* the pivot: the guest writes to the new files from here on */
	if ((r = blockjob_finish_all(vm, MS_JOBS, n, true, err, errlen)) == 0 &&
	    (r = blockjob_wait(vm, MS_JOBS, n, BLOCKJOB_GONE, now_ms() + 60000, 100, NULL, NULL, why, sizeof(why))) < 0)
		snprintf(err, errlen, "switching to the new disks failed: %s", why);
	free(ids);
	return r;
fail:
	drop_targets(vm, started, paths, ids);
	free(ids);
	return r;
}

static void move_storage_thread(struct ferryd *d, struct job *j)
{
	const char *dir = arg_str(j->args, "dir");
	json_t *paths = NULL, *old = NULL, *dsk;
	char err[1024] = "";
	struct vm *vm;
	size_t i;
	int r;

	pthread_mutex_lock(&d->lock);
	vm = vm_find(d, j->vm);
	if (!vm || vm->busy || vm->incoming || strcmp(vm_state(vm), "running")) {
		pthread_mutex_unlock(&d->lock);
		job_fail(d, j, "VM %s is not running here (or is busy)", j->vm);
		return;
	}
	vm->busy = "moving-storage";
	r = new_paths(vm->config, dir, &paths, err, sizeof(err));
	pthread_mutex_unlock(&d->lock);
	job_set_stage(d, j, STAGE_STORAGE);
	if (r == 0)
		r = move_running(d, j, vm, dir, paths, err, sizeof(err));
	if (r == 0) {
		pthread_mutex_lock(&d->lock);
		old = json_deep_copy(json_object_get(vm->config, "disks"));
		json_array_foreach(json_object_get(vm->config, "disks"), i, dsk)
			json_object_set(dsk, "path", json_array_get(paths, i));
		r = vm_save(d, vm);
		pthread_mutex_unlock(&d->lock);
		if (r < 0) {
			/* The guest writes to the new files now, and the saved
			 * configuration still names the old ones: keep both, and
			 * say so (the next successful save records the new paths). */
			snprintf(err, sizeof(err), "VM %s now uses its disks in %s, but its configuration could not be "
				 "saved (%s): the old disks are kept; free space in the state directory: the next change to the "
				 "VM (ferry vm set %s ...) saves the new paths", j->vm, dir, strerror(-r), j->vm);
			log_err("%s", err);
		} else {
			job_set_stage(d, j, STAGE_CLEANUP);
			json_array_foreach(old, i, dsk)
				unlink(arg_str(dsk, "path"));
		}
	}
	pthread_mutex_lock(&d->lock);
	vm->busy = NULL;
	pthread_mutex_unlock(&d->lock);
	if (r < 0)
		job_fail(d, j, "%s", r == -ECANCELED ? "cancelled by the administrator" : err);
	else
		job_set_stage(d, j, STAGE_COMPLETED);
	json_decref(paths);
	json_decref(old);
}

json_t *op_move_storage(struct request *req)
{
	struct ferryd *d = req->d;
	const char *name, *dir = arg_str(req->args, "dir");
	char roots[STORAGE_ROOTS_MAX][PATH_MAX], roots_text[1024];
	size_t n_roots;
	struct stat st;
	struct job *j;
	json_t *e = NULL, *r;

	if (arg_name(req->args, "name", &name, &e) < 0)
		return e;
	if (!dir || !path_is_clean(dir) || strchr(dir, ','))
		return reply_error("invalid", NULL, "the destination directory must be an absolute path without "
				   "'.', '..', '//', a trailing '/' or a comma");
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return reply_error("invalid", "create it first", "%s is not a directory on %s", dir, d->host_name);
	pthread_mutex_lock(&d->lock);
	n_roots = storage_roots(d, roots, STORAGE_ROOTS_MAX);
	storage_roots_text(roots, n_roots, roots_text, sizeof(roots_text));
	if (!vm_find(d, name) || vm_find(d, name)->incoming)
		e = reply_error("not_found", "see 'ferry vm list'", "no VM named '%s' on %s", name, d->host_name);
	else if (!storage_root_of(roots, n_roots, dir))
		e = reply_error("invalid", "choose a directory under them, or add it with 'ferry host set storage-roots "
			       "DIR[:DIR...]'", "%s is outside the storage roots of %s (%s)", dir, d->host_name,
			       roots_text);
	pthread_mutex_unlock(&d->lock);
	if (e)
		return e;
	if (job_start(d, "move-storage", name, dir, false, true, req->args, req->caller, move_storage_thread, &j) < 0)
		return reply_error("failed", NULL, "cannot start the storage move");
	pthread_mutex_lock(&d->lock);
	r = reply_ok(job_json(j));
	pthread_mutex_unlock(&d->lock);
	return r;
}
