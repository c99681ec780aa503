/* What the source asks of the destination (move.h): the VM's configuration
 * there, its disks' sizes, and vm.compare (Compare-VM), which asks
 * migrate.check without moving anything. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"
#include "log.h"
#include "move.h"
#include "move_resume.h"
#include "ops.h"
#include "peer_msg.h"
#include "settings.h"
#include "storage.h"
#include "util.h"
#include "vmconfig.h"

/* Destination disk paths: --disk SRC=DST, else --storage-path DIR/basename, else the same path. */
json_t *move_dest_config(struct move *m)
{
	json_t *cfg = json_deep_copy(m->vm->config), *dsk, *map = json_object_get(m->j->args, "disks");
	const char *dir = arg_str(m->j->args, "storage-path"), *vm_path = arg_str(m->j->args, "vm-path");
	size_t i;

	/* where the VM's own files go there; none given: the destination's default */
	if (vm_path)
		json_object_set_new(cfg, "vm-path", json_string(vm_path));
	else
		json_object_del(cfg, "vm-path");

	json_array_foreach(json_object_get(cfg, "disks"), i, dsk) {
		const char *src = arg_str(dsk, "path"), *dst = map ? arg_str(map, src) : NULL;
		char buf[PATH_MAX], base[PATH_MAX];
		if (dst) {
			json_object_set_new(dsk, "path", json_string(dst));
		} else if (dir) {
			snprintf(base, sizeof(base), "%s", src);
			snprintf(buf, sizeof(buf), "%s/%s", dir, basename(base));
			json_object_set_new(dsk, "path", json_string(buf));
		}
	}
	return cfg;
}

json_t *move_check_request(struct move *m, json_t *sizes)
{
	json_t *req = json_pack("{s:O, s:b, s:o, s:O}", "config", m->dest_cfg, "include-storage", m->storage,
				"source", host_capabilities(m->d), "disks", sizes);
	const char *sp = arg_str(m->j->args, "storage-path"), *vp = arg_str(m->j->args, "vm-path");

	if (sp)
		json_object_set_new(req, "storage-path", json_string(sp));
	if (vp)
		json_object_set_new(req, "vm-path", json_string(vp));
	return req;
}

static int fingerprint(struct move *m, json_t *dsk, json_t *entry)
{
	json_t *fp = NULL;
	int fd = open(arg_str(dsk, "path"), O_RDONLY | O_CLOEXEC), r;

	r = fd < 0 ? -errno : disk_fingerprint(fd, arg_str(dsk, "format"), &fp);
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		snprintf(m->err, sizeof(m->err), "cannot read disk %s: %s", arg_str(dsk, "path"), strerror(-r));
		return r;
	}
	json_object_set_new(entry, "fingerprint", fp);
	return 0;
}

json_t *move_disk_sizes(struct move *m)
{
	json_t *sizes = json_array(), *dsk, *ddsk;
	size_t i;

	json_array_foreach(json_object_get(m->vm->config, "disks"), i, dsk) {
		uint64_t size = 0, used = 0;
		ddsk = json_array_get(json_object_get(m->dest_cfg, "disks"), i);
		if (image_sizes(arg_str(dsk, "path"), arg_str(dsk, "format"), &size, &used, m->err, sizeof(m->err)) < 0) {
			json_decref(sizes);
			return NULL;
		}
		json_array_append_new(sizes, json_pack("{s:s, s:I, s:I}", "path", arg_str(ddsk, "path"), "size",
						       (json_int_t)size, "allocated", (json_int_t)used));
		/* without storage the destination proves it sees this very file */
		if (!m->storage && fingerprint(m, dsk, json_array_get(sizes, i)) < 0) {
			json_decref(sizes);
			return NULL;
		}
	}
	return sizes;
}

void move_join_problems(json_t *problems, char *out, size_t len)
{
	size_t i, n = 0;
	json_t *p;

	json_array_foreach(problems, i, p)
		n += (size_t)snprintf(out + n, n < len ? len - n : 0, "%s%s", i ? "; " : "", json_string_value(p));
}

/* vm.move {name, dest, include-storage, storage-path, vm-path, disks {SRC: DST},
 *          keep-source-disks, port} -> {job} */
/* Paths are rewritten only when the disks are copied: without storage the
 * destination opens the very files the source uses (review M2). */
json_t *move_storage_args_check(json_t *args)
{
	if (!arg_bool(args, "include-storage", false) &&
	    (arg_str(args, "storage-path") || json_object_size(json_object_get(args, "disks"))))
		return reply_error("bad_request", "add --include-storage to copy the disks there",
				   "--storage-path and --disk choose where copied disks go: without --include-storage "
				   "the disks are not copied and the destination uses them where they are");
	return NULL;
}

static void add_problem(json_t *problems, char *text)
{
	utf8_clean(text); /* a cut multi-byte character would lose the problem */
	json_array_append_new(problems, json_string(text));
}

/* What the copies of the disks write: the bytes the source images hold. */
static uint64_t sizes_allocated(json_t *sizes)
{
	uint64_t sum = 0;
	json_t *s;
	size_t i;

	json_array_foreach(sizes, i, s)
		sum += (uint64_t)json_integer_value(json_object_get(s, "allocated"));
	return sum;
}

/* vm.compare {name, dest, storage-path, vm-path, include-storage, disks, predict}: every
 * reason the VM cannot move there, nothing moved (Compare-VM), with the
 * VM's size, the destination's room (peer_read_check_room), what it would
 * not copy again (move_resume.h) and the prediction of the move
 * (move_predict.c). */
json_t *op_compare(struct request *req)
{
	struct ferryd *d = req->d;
	struct job j = {0};
	struct vm snap = {0};
	struct move m = {.d = d, .j = &j};
	json_t *e = NULL, *problems = json_array(), *res = NULL, *sizes, *found, *room = NULL, *reply;
	json_t *prediction = NULL, *args, *tokens = NULL, *reuse = NULL;
	const char *name, *dest = arg_str(req->args, "dest");
	uint64_t disk_bytes = 0, reusable = 0;

	if (arg_name(req->args, "name", &name, &e) < 0) {
		json_decref(problems);
		return e;
	}
	if (!dest || !*dest || strlen(dest) > 253) {
		json_decref(problems);
		return reply_error("bad_request", NULL, "missing destination host");
	}
	if ((e = move_storage_args_check(req->args))) {
		json_decref(problems);
		return e;
	}
	pthread_mutex_lock(&d->lock);
	m.vm = vm_find(d, name);
	if (!m.vm || m.vm->incoming) {
		pthread_mutex_unlock(&d->lock);
		json_decref(problems);
		return reply_error("not_found", "see 'ferry vm list'", "no VM named '%s' on %s", name, d->host_name);
	}
	if (!settings_bool(d->settings, "migration-enabled"))
		json_array_append_new(problems, json_sprintf("live migrations are disabled on %s: run 'ferry migration enable'",
							     d->host_name));
	if (strcmp(vm_state(m.vm), "running") != 0)
		json_array_append_new(problems, json_sprintf("VM %s is %s: only a running VM can be moved live", name,
							     vm_state(m.vm)));
	/* The checks below go over the network without the lock, while the VM
	 * may be deleted or moved away: they read a copy of its configuration
	 * (review M8). */
	snap.config = json_deep_copy(m.vm->config);
	m.vm = &snap;
	m.ndisks = json_array_size(json_object_get(snap.config, "disks"));
	m.tls = settings_bool(d->settings, "encryption");
	pthread_mutex_unlock(&d->lock);
	snprintf(j.dest, sizeof(j.dest), "%s", dest);
	snprintf(j.vm, sizeof(j.vm), "%s", name);
	j.args = req->args;
	j.caller = *req->caller;
	m.storage = arg_bool(req->args, "include-storage", false);
	/* Borrowed for the check: the credential stays with the connection. */
	if (move_connect_dest(&m) < 0) {
		add_problem(problems, m.err);
		goto out;
	}
	m.dest_cfg = move_dest_config(&m);
	if (!(sizes = move_disk_sizes(&m))) {
		add_problem(problems, m.err);
		goto out;
	}
	disk_bytes = sizes_allocated(sizes);
	args = move_check_request(&m, json_incref(sizes));
	/* with the tokens the move would send, the destination says which
	 * disks it would build on */
	if (m.storage && (tokens = move_resume_compare_tokens(&m, name)))
		json_object_set_new(args, "resume-tokens", tokens);
	if (move_peer_call(&m, OP_MIGRATE_CHECK, args, &res) < 0 ||
	    peer_read_check_reply(res, &found, m.err, sizeof(m.err)) < 0 ||
	    peer_read_check_room(res, &room, m.err, sizeof(m.err)) < 0 ||
	    peer_read_check_reuse(res, m.ndisks, &reuse, m.err, sizeof(m.err)) < 0)
		add_problem(problems, m.err);
	else
		json_array_extend(problems, found);
	/* the disks the destination would build on (no tokens read: none) */
	for (size_t i = 0; i < m.ndisks && i < VM_MAX_DISKS; i++)
		m.reuse[i] = json_is_true(json_array_get(reuse, i));
	reusable = move_resume_reused_bytes(&m);
	/* a plan of several moves (host evacuate) needs only the room: the
	 * prediction measures the guest and the link, about a second each */
	if (m.peer.open && arg_bool(req->args, "predict", true))
		prediction = move_predict_compare(&m, name, sizes);
	else if (m.peer.open)
		prediction = json_pack("{s:s}", "unavailable", "not asked for (predict false)");
	json_decref(sizes);
out:
	move_peer_close(&m.peer);
	json_decref(m.dest_cfg);
	reply = json_pack("{s:s, s:s, s:b, s:o, s:I, s:I, s:I}", "vm", name, "dest", dest, "compatible",
			  json_array_size(problems) == 0, "problems", problems, "memory-mib",
			  json_integer_value(json_object_get(snap.config, "memory-mib")), "disk-bytes",
			  (json_int_t)disk_bytes, "disk-reusable-bytes", (json_int_t)reusable);
	/* the destination's numbers, for a plan of several moves (host evacuate) */
	if (reply && room)
		json_object_set_new(reply, "destination", room);
	else
		json_decref(room);
	if (!prediction)
		prediction = json_pack("{s:s}", "unavailable", "nothing measured: see the problems");
	if (reply)
		json_object_set_new(reply, "prediction", prediction);
	else
		json_decref(prediction);
	json_decref(snap.config);
	json_decref(res);
	return reply_ok(reply);
}
