/* The destination's phases (move_dest.h): each row of dest_phases below
 * runs one step of migrate.prepare or migrate.finish, and its undo removes
 * what the step made. A failure walks back the rows entered, newest first;
 * migrate.abort, a closed connection and the sweep after a restart walk
 * back every prepare row the same way (phases.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "image.h"
#include "log.h"
#include "migrate_params.h"
#include "migration_networks.h"
#include "move_endpoint.h"
#include "move_dest.h"
#include "move_resume.h"
#include "partial.h"
#include "settings.h"
#include "storage.h"
#include "util.h"
#include "vm_qmp.h"
#include "vmconfig.h"

#define FINISH_TIMEOUT_MS 120000

/* A planned VM is not persisted; this marker in its run directory lets a
 * restarted ferryd find and remove what a crash left behind. */
int incoming_marker_write(struct vm *vm)
{
	char path[PATH_MAX + 16];
	json_t *m, *created = json_object_get(vm->config, "_created-disks");
	int r;

	if ((r = mkdir_p(vm->rundir, 0700)) < 0)
		return r;
	m = created ? json_pack("{s:s, s:O}", "id", vmconfig_id(vm->config), "created-disks", created)
		    : json_pack("{s:s, s:[]}", "id", vmconfig_id(vm->config), "created-disks");
	snprintf(path, sizeof(path), "%s/planned.json", vm->rundir);
	r = m ? write_json_atomic(path, m, JSON_COMPACT, 0600) : -ENOMEM;
	json_decref(m);
	return r;
}

void incoming_marker_remove(struct vm *vm)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/planned.json", vm->rundir);
	unlink(path);
}

bool dest_source_accepted(struct ferryd *d, const char *addr, char *nets, size_t len)
{
	bool ok;

	pthread_mutex_lock(&d->lock);
	ok = migration_source_accepted(json_object_get(d->settings, "migration-networks"),
				       settings_bool(d->settings, "use-any-network"), addr, nets, len);
	pthread_mutex_unlock(&d->lock);
	return ok;
}

/* The request read, the source's network, the encryption policy, the
 * address QEMU listens on and its ports. */
static int run_check(void *ctx)
{
	struct incoming *in = ctx;
	struct request *req = in->req;
	struct ferryd *d = in->d;
	char nets[512];
	bool must_encrypt;
	int r;

	if (!req->caller->local && !dest_source_accepted(d, req->caller->addr, nets, sizeof(nets))) {
		in->reply = reply_error("refused", "add the source's network with 'ferry migration network add CIDR' on "
					"the destination", "%s does not accept migrations from %s: it accepts only %s",
					d->host_name, req->caller->addr, nets[0] ? nets : "no network at all");
		return -EPERM;
	}
	if (req->caller->planned[0]) {
		in->reply = reply_error("busy", NULL, "this connection already prepared VM %s", req->caller->planned);
		return -EBUSY;
	}
	/* every field checked (peer_msg.c); the configuration is a normalized copy */
	if ((r = peer_read_prepare(req->args, &in->pp, in->err, sizeof(in->err))) < 0) {
		in->reply = reply_error(peer_msg_code(r), NULL, "%s", in->err);
		return r;
	}
	in->storage = in->pp.check.include_storage;
	in->tls = in->pp.encryption;
	/* either end requiring encryption makes the move encrypted (review M9):
	 * a source cannot make this host open unauthenticated data ports */
	pthread_mutex_lock(&d->lock);
	must_encrypt = settings_bool(d->settings, "encryption");
	pthread_mutex_unlock(&d->lock);
	if (must_encrypt && !in->tls) {
		in->reply = reply_error("refused", "turn encryption on at the source ('ferry host set encryption on')",
					"%s requires encrypted moves (its setting encryption is on): the source asked "
					"for none", d->host_name);
		return -EPERM;
	}
	/* QEMU listens where the source reached this host (over TCP: dispatch
	 * refuses migrate.prepare on the local socket) */
	if ((r = socket_address(req->conn->fd, false, in->addr, sizeof(in->addr))) < 0) {
		in->reply = reply_error("failed", NULL, "cannot read this host's address on the connection: %s",
					strerror(-r));
		return r;
	}
	if (free_tcp_port(in->addr, &in->mig_port) < 0 || (in->storage && free_tcp_port(in->addr, &in->nbd_port) < 0)) {
		in->reply = reply_error("failed", NULL, "no free port on %s for the migration stream", in->addr);
		return -EADDRINUSE;
	}
	return 0;
}

/* An incoming move counts against this host's limits like one it makes
 * (review M7): refused, with the numbers, when they are reached. */
static json_t *limits_refusal(struct ferryd *d, bool storage)
{
	json_t *e = NULL;
	int live, disks;

	pthread_mutex_lock(&d->lock);
	int64_t max_live = settings_int(d->settings, "max-migrations");
	int64_t max_storage = settings_int(d->settings, "max-storage-migrations");
	migrations_active(d, &live, &disks);
	if (live >= max_live)
		e = reply_error("busy", "try again when one has ended, or raise the limit there",
				"%s is making %d live migrations already (max-migrations %lld)", d->host_name, live,
				(long long)max_live);
	else if (storage && disks >= max_storage)
		e = reply_error("busy", "try again when one has ended, or raise the limit there",
				"%s is making %d storage migrations already (max-storage-migrations %lld)",
				d->host_name, disks, (long long)max_storage);
	pthread_mutex_unlock(&d->lock);
	return e;
}

/* Check again (things may have changed since migrate.check), count the
 * limits and register the planned VM, which reserves what it needs, all
 * before another prepare may check (review M7). The name first, then the
 * files: a lost name race deletes nothing. */
static int run_reserve(void *ctx)
{
	struct incoming *in = ctx;
	struct ferryd *d = in->d;
	json_t *cfg = in->pp.check.config, *problems;
	int r;

	pthread_mutex_lock(&d->prepare_lock);
	if ((in->reply = limits_refusal(d, in->storage))) {
		pthread_mutex_unlock(&d->prepare_lock);
		return -EBUSY;
	}
	problems = check_incoming(d, cfg, in->req->args, &in->need, NULL);
	if (json_array_size(problems)) {
		pthread_mutex_unlock(&d->prepare_lock);
		in->reply = reply_error("refused", NULL, "%s cannot take the VM: %s", d->host_name,
					json_string_value(json_array_get(problems, 0)));
		json_object_set_new(json_object_get(in->reply, "error"), "problems", problems);
		return -EPERM;
	}
	json_decref(problems);
	pthread_mutex_lock(&d->lock);
	r = vm_add(d, cfg, false, &in->vm, in->err, sizeof(in->err));
	if (r == 0) {
		in->vm->incoming = true;
		in->vm->busy = "incoming";
		/* private, never persisted: the files made here, the only ones abort deletes */
		json_object_set_new(in->vm->config, "_created-disks", json_array());
		json_object_set_new(in->vm->config, "_storage", json_boolean(in->storage));
		json_object_set(in->vm->config, "_reserve-disk", in->need);
		snprintf(in->name, sizeof(in->name), "%s", vmconfig_name(cfg));
		snprintf(in->req->caller->planned, sizeof(in->req->caller->planned), "%s", in->name);
	} else {
		in->vm = NULL;
	}
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_unlock(&d->prepare_lock);
	if (r < 0)
		in->reply = reply_error("failed", NULL, "%s", in->err);
	return r;
}

/* The walk back has begun: others see the VM going. */
static void stop_reserve(void *ctx)
{
	struct incoming *in = ctx;

	if (!in->vm)
		return;
	pthread_mutex_lock(&in->d->lock);
	in->vm->busy = "aborting";
	pthread_mutex_unlock(&in->d->lock);
}

/* The planned VM unregistered with its directories (after a restart: the
 * directories it left). */
static void undo_reserve(void *ctx)
{
	struct incoming *in = ctx;
	struct ferryd *d = in->d;
	char statedir[PATH_MAX], config[PATH_MAX + 16];

	if (in->vm) {
		pthread_mutex_lock(&d->lock);
		vm_remove(d, in->vm, false);
		jobs_wake(d);
		pthread_mutex_unlock(&d->lock);
		in->vm = NULL;
		return;
	}
	if (!in->swept)
		return; /* refused before it was registered: nothing to remove */
	remove_tree(in->rundir);
	snprintf(statedir, sizeof(statedir), "%s/vms/%s", d->state_dir, in->name);
	snprintf(config, sizeof(config), "%s/config.json", statedir);
	if (!path_exists(config))
		remove_tree_follow(statedir);
}

static int run_record(void *ctx)
{
	struct incoming *in = ctx;
	int r;

	if ((r = incoming_marker_write(in->vm)) < 0)
		snprintf(in->err, sizeof(in->err), "cannot write %s/planned.json: %s", in->vm->rundir, strerror(-r));
	return r;
}

/* Who a partial copy is kept for: the caller's principal, else its address. */
static const char *partial_source(const struct request *req)
{
	return req->caller->principal[0] ? req->caller->principal : req->caller->addr;
}

/* The paths of cfg's disks, in order. */
static json_t *disk_paths(const json_t *cfg)
{
	json_t *paths = json_array(), *dsk;
	size_t i;

	json_array_foreach(json_object_get(cfg, "disks"), i, dsk)
		json_array_append_new(paths, json_string(arg_str(dsk, "path") ?: ""));
	return paths;
}

json_t *dest_partial_reusable(struct ferryd *d, const struct request *req, json_t *cfg, const json_t *tokens)
{
	json_t *paths = disk_paths(cfg), *reuse;

	/* with retention off, nothing kept is offered */
	reuse = partial_reusable(d, vmconfig_id(cfg), partial_source(req), partial_retention_s(d) > 0 ? tokens : NULL,
				 paths);
	json_decref(paths);
	return reuse;
}

/* A move with storage: a copy this host kept of the VM from the same
 * source is claimed (partial.h; one that does not fit goes), and, with
 * partial-copy-retention set, this move's copy gets a token under which it
 * is kept if the move fails. in->partial is the reply's "partial". */
static void partial_plan(struct incoming *in, json_t **ret_reuse, json_t **ret_kept)
{
	struct ferryd *d = in->d;
	json_t *paths = disk_paths(in->vm->config), *reuse;
	const char *source = partial_source(in->req);
	char token[PARTIAL_TOKEN_HEX + 1];
	int64_t keep_s = partial_retention_s(d);
	size_t i;

	partial_sweep(d);
	*ret_reuse = partial_claim(d, vmconfig_id(in->vm->config), source, keep_s > 0 ? in->pp.check.resume_tokens : NULL,
				   paths, ret_kept);
	json_decref(paths);
	if (keep_s <= 0)
		return;
	partial_new_token(token);
	pthread_mutex_lock(&d->lock);
	json_object_set_new(in->vm->config, "_partial-token", json_string(token));
	json_object_set_new(in->vm->config, "_partial-source", json_string(source));
	pthread_mutex_unlock(&d->lock);
	reuse = json_array();
	for (i = 0; i < json_array_size(json_object_get(in->vm->config, "disks")); i++)
		json_array_append_new(reuse, json_boolean(json_is_true(json_array_get(*ret_reuse, i))));
	in->partial = json_pack("{s:b, s:s, s:o}", "keep", 1, "token", token, "reuse", reuse);
}

/* Creates the planned VM's disks, empty and new, under this host's storage
 * roots (O_EXCL, no symbolic link followed), recording each file in
 * "_created-disks" and in planned.json before anything is written to it, so
 * that abort and a restarted ferryd delete exactly these files. */
static int run_disks(void *ctx)
{
	struct incoming *in = ctx;
	struct ferryd *d = in->d;
	struct vm *vm = in->vm;
	char roots[STORAGE_ROOTS_MAX][PATH_MAX];
	json_t *dsk, *created = json_object_get(vm->config, "_created-disks");
	json_t *sizes = json_object_get(in->req->args, "disks");
	json_t *reuse = NULL, *kept = NULL;
	size_t i, n_roots;
	int r;

	pthread_mutex_lock(&d->lock);
	n_roots = storage_roots(d, roots, STORAGE_ROOTS_MAX);
	pthread_mutex_unlock(&d->lock);
	if (in->storage)
		partial_plan(in, &reuse, &kept);
	json_array_foreach(json_object_get(vm->config, "disks"), i, dsk) {
		const char *path = arg_str(dsk, "path"), *fmt = arg_str(dsk, "format");
		const char *root = storage_root_of(roots, n_roots, path);
		struct file_id id;
		json_int_t size;
		if (!root) {
			snprintf(in->err, sizeof(in->err), "disk %s is outside this host's storage roots", path);
			r = -EPERM;
			goto out;
		}
		if (json_is_true(json_array_get(reuse, i))) {
			/* the copy kept from the last move: its file, as it is */
			pthread_mutex_lock(&d->lock);
			json_array_append(created, json_array_get(kept, i));
			pthread_mutex_unlock(&d->lock);
			if ((r = incoming_marker_write(vm)) < 0)
				goto marker;
			log_info("VM %s: disk %s kept from an earlier move is reused", in->name, path);
			continue;
		}
		if ((r = storage_create(root, path, &id, in->err, sizeof(in->err))) < 0)
			return r;
		pthread_mutex_lock(&d->lock);
		json_array_append_new(created, json_pack("{s:s, s:I, s:I}", "path", path, "dev", (json_int_t)id.dev,
							 "ino", (json_int_t)id.ino));
		pthread_mutex_unlock(&d->lock);
		if ((r = incoming_marker_write(vm)) < 0)
			goto marker;
		size = json_integer_value(json_object_get(json_array_get(sizes, i), "size"));
		if ((r = image_create(path, fmt, (uint64_t)size, in->err, sizeof(in->err))) < 0)
			goto out;
	}
	r = 0;
	goto out;
marker:
	snprintf(in->err, sizeof(in->err), "cannot write %s/planned.json: %s", vm->rundir, strerror(-r));
out:
	json_decref(reuse);
	json_decref(kept);
	return r;
}

/* The files stay, recorded as a partial copy (partial.h), when this host
 * keeps them: true if they were kept. */
static bool keep_partial(struct incoming *in)
{
	struct ferryd *d = in->d;
	json_t *cfg = in->vm->config, *created = json_object_get(cfg, "_created-disks");
	const char *token = json_string_value(json_object_get(cfg, "_partial-token"));
	const char *source = json_string_value(json_object_get(cfg, "_partial-source"));
	int64_t keep_s;
	int r;

	keep_s = partial_retention_s(d);
	if (!token || !source || keep_s <= 0 || !json_array_size(created))
		return false;
	if ((r = partial_keep(d, PARTIAL_COPY, vmconfig_id(cfg), vmconfig_name(cfg), source, token, created, keep_s)) < 0) {
		log_warn("VM %s: cannot record its partial copy (%s): deleting it", vmconfig_name(cfg), strerror(-r));
		return false;
	}
	log_info("VM %s: the %zu disk file(s) copied so far are kept for %lld s for the next move from %s",
		 vmconfig_name(cfg), json_array_size(created), (long long)keep_s, source);
	return true;
}

/* Each disk file made here, only if it is still the very file created
 * (review H2). */
static void undo_disks(void *ctx)
{
	struct incoming *in = ctx;
	json_t *created, *f;
	size_t i;

	if (in->vm && in->quit_clean && keep_partial(in))
		return;
	if (in->vm)
		created = json_incref(json_object_get(in->vm->config, "_created-disks"));
	else if (in->swept)
		created = json_incref(json_object_get(in->marker, "created-disks"));
	else
		return;
	json_array_foreach(created, i, f)
		in->removed += created_file_unlink(f);
	json_decref(created);
}

static int run_qemu(void *ctx)
{
	struct incoming *in = ctx;

	return qemu_start(in->d, in->vm, "defer", in->err, sizeof(in->err));
}

/* SIGKILL: the planned guest has nothing worth a clean stop. After a
 * restart, the pid is QEMU's only if its command line names the VM's id. */
static void undo_qemu(void *ctx)
{
	struct incoming *in = ctx;
	char path[64], *cmdline = NULL;
	const char *id = json_string_value(json_object_get(in->marker, "id"));
	size_t len;

	if (in->vm) {
		/* a copy to keep must be closed cleanly: the qcow2 tables QEMU holds */
		if (json_object_get(in->vm->config, "_partial-token"))
			in->quit_clean = qemu_quit(in->vm);
		else
			qemu_kill(in->vm);
		return;
	}
	if (!in->swept || in->pid <= 0 || !id)
		return;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)in->pid);
	/* cmdline has NULs: search the buffer, not a string */
	if (read_file(path, 1 << 16, &cmdline, &len) == 0 && memmem(cmdline, len, id, strlen(id)))
		kill(in->pid, SIGKILL);
	free(cmdline);
}

static void key_dir(const struct incoming *in, char *out, size_t len)
{
	snprintf(out, len, "%s/tls", in->vm ? in->vm->rundir : in->rundir);
}

static int run_key(void *ctx)
{
	struct incoming *in = ctx;
	struct ferryd *d = in->d;
	char pskdir[PATH_MAX + 8];
	int r;

	key_dir(in, pskdir, sizeof(pskdir));
	if ((r = psk_dir_write(pskdir, in->pp.psk_identity, in->pp.psk, d->qemu_drop ? d->qemu_gid : (gid_t)-1)) < 0) {
		snprintf(in->err, sizeof(in->err), "cannot write the one-time key: %s", strerror(-r));
		return r;
	}
	return qmpf(in->vm, in->err, sizeof(in->err), NULL, "object-add", "{s:s, s:s, s:s, s:s}", "qom-type",
		    "tls-creds-psk", "id", TLS_ID, "endpoint", "server", "dir", pskdir);
}

/* The key's files (the object went with QEMU). */
static void undo_key(void *ctx)
{
	struct incoming *in = ctx;
	char pskdir[PATH_MAX + 8];

	if (!in->vm && !in->swept)
		return;
	key_dir(in, pskdir, sizeof(pskdir));
	remove_tree(pskdir);
}

static int run_listen(void *ctx)
{
	struct incoming *in = ctx;
	const char *fmt = strchr(in->addr, ':') ? "tcp:[%s]:%d" : "tcp:%s:%d";
	int r;

	if ((r = migration_tune(in->vm, &(struct migration_tuning){.performance = in->pp.performance,
								     .channels = in->pp.channels, .tls = in->tls},
				in->err, sizeof(in->err))) < 0)
		return r;
	snprintf(in->uri, sizeof(in->uri), fmt, in->addr, in->mig_port);
	return qmpf(in->vm, in->err, sizeof(in->err), NULL, "migrate-incoming", "{s:s}", "uri", in->uri);
}

static int run_export(void *ctx)
{
	struct incoming *in = ctx;
	struct vm *vm = in->vm;
	char port[16];
	json_t *dsk;
	size_t i;
	int r;

	snprintf(port, sizeof(port), "%d", in->nbd_port);
	r = in->tls ? qmpf(vm, in->err, sizeof(in->err), NULL, "nbd-server-start", "{s:{s:s, s:{s:s, s:s}}, s:s}",
			   "addr", "type", "inet", "data", "host", in->addr, "port", port, "tls-creds", TLS_ID)
		    : qmpf(vm, in->err, sizeof(in->err), NULL, "nbd-server-start", "{s:{s:s, s:{s:s, s:s}}}", "addr",
			   "type", "inet", "data", "host", in->addr, "port", port);
	if (r < 0)
		return r;
	json_array_foreach(json_object_get(vm->config, "disks"), i, dsk) {
		char node[16], id[24];
		snprintf(node, sizeof(node), "disk%zu", i);
		snprintf(id, sizeof(id), "exp-disk%zu", i);
		r = qmpf(vm, in->err, sizeof(in->err), NULL, "block-export-add", "{s:s, s:s, s:s, s:s, s:b}", "type",
			 "nbd", "id", id, "node-name", node, "name", node, "writable", 1);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The source saw its migration complete: the stream must be in, the
 * guest paused here (QEMU -S). */
static int run_arrived(void *ctx)
{
	struct incoming *in = ctx;
	struct vm *vm = in->vm;
	uint64_t deadline = now_ms() + FINISH_TIMEOUT_MS;
	const char *status = "";
	json_t *st = NULL;
	int r;

	while (now_ms() < deadline) {
		json_decref(st);
		st = NULL;
		r = vm_qmp(vm, "query-status", NULL, &st, in->err, sizeof(in->err));
		status = r < 0 ? "gone" : arg_str(st, "status");
		if (r < 0 || !status || strcmp(status, "inmigrate") != 0)
			break;
		usleep(5 * 1000); /* the guest is paused: poll closely */
	}
	if (!status || (strcmp(status, "paused") != 0 && strcmp(status, "running") != 0)) {
		snprintf(in->err, sizeof(in->err), "the VM did not arrive complete on %s (QEMU state %s)",
			 in->d->host_name, status ? status : "?");
		json_decref(st);
		return -EIO;
	}
	in->paused = strcmp(status, "paused") == 0;
	json_decref(st);
	if (json_is_true(json_object_get(vm->config, "_storage")))
		vm_qmp(vm, "nbd-server-stop", NULL, NULL, in->err, sizeof(in->err));
	/* the copy is complete and the guest not yet running here: from now on
	 * the bitmap holds what the source's kept disks lack */
	if (in->kept_token && in->storage) {
		char why[256];
		in->kept_recorded = move_resume_mark_kept(vm, in->kept_token, why, sizeof(why)) == 0;
		if (!in->kept_recorded)
			log_warn("VM %s: cannot record its writes for a move back to the disks the source keeps (%s): "
				 "that move copies them in full", in->name, why);
	}
	return 0;
}

/* This host owns the VM from the moment its configuration is on disk
 * (written, fsynced, renamed, directory fsynced), and not before: saved
 * first, resumed after (review M1). A VM that cannot be saved is not
 * resumed here, and the source, told so, resumes it there. */
static int run_save(void *ctx)
{
	struct incoming *in = ctx;
	struct ferryd *d = in->d;
	struct vm *vm = in->vm;
	int r;

	pthread_mutex_lock(&d->lock);
	in->created = json_incref(json_object_get(vm->config, "_created-disks"));
	in->storage_flag = json_incref(json_object_get(vm->config, "_storage"));
	json_object_del(vm->config, "_created-disks");
	json_object_del(vm->config, "_storage");
	json_object_del(vm->config, "_reserve-disk");
	json_object_del(vm->config, "_partial-token"); /* the copy is the VM's disk now */
	json_object_del(vm->config, "_partial-source");
	r = vm_save(d, vm);
	in->saved = r == 0;
	pthread_mutex_unlock(&d->lock);
	if (r < 0)
		snprintf(in->err, sizeof(in->err), "%s could not save the VM's configuration (%s): the guest was not "
			 "resumed there", d->host_name, strerror(-r));
	return r;
}

/* Not running here after all: forget the saved configuration, and give the
 * planned VM back what its removal needs. */
static void undo_save(void *ctx)
{
	struct incoming *in = ctx;

	pthread_mutex_lock(&in->d->lock);
	if (in->saved)
		vm_unsave(in->vm);
	in->saved = false;
	if (in->created)
		json_object_set_new(in->vm->config, "_created-disks", in->created);
	if (in->storage_flag)
		json_object_set_new(in->vm->config, "_storage", in->storage_flag);
	in->created = in->storage_flag = NULL;
	pthread_mutex_unlock(&in->d->lock);
}

/* planned.json goes only once the guest runs: a restart that finds it
 * beside a saved configuration completes the resume (finish_recover). */
static int run_resume(void *ctx)
{
	struct incoming *in = ctx;
	char why[512];

	fault_point("finish-saved");
	if (in->paused && vm_qmp(in->vm, "cont", NULL, NULL, why, sizeof(why)) < 0) {
		snprintf(in->err, sizeof(in->err), "the VM could not resume on %s: %s", in->d->host_name, why);
		return -EIO;
	}
	/* the end of the guest's pause, for the source (after cont: at most late) */
	in->resumed_ms = realtime_ms();
	return 0;
}

static int run_release(void *ctx)
{
	struct incoming *in = ctx;
	struct ferryd *d = in->d;
	struct vm *vm = in->vm;
	char tls[PATH_MAX + 8];

	json_decref(in->created);
	json_decref(in->storage_flag);
	in->created = in->storage_flag = NULL;
	incoming_marker_remove(vm);
	migration_untune(vm);
	snprintf(tls, sizeof(tls), "%s/tls", vm->rundir);
	remove_tree(tls);
	pthread_mutex_lock(&d->lock);
	vm->incoming = false;
	vm->busy = NULL;
	jobs_wake(d); /* an incoming move ended: queued moves may go */
	pthread_mutex_unlock(&d->lock);
	return 0;
}

/* The destination. Each row: what it does and what undoes it, newest first
 * after a failure, a migrate.abort, a closed connection or (the prepare
 * rows) the sweep after a restart. The key, the parameters, the stream and
 * the exports live in QEMU: its kill undoes them. */
static const struct phase_row dest_phases[] = {
	/* id          name       run          stop          undo          cancel */
	{DEST_CHECK,   "check",   run_check,   NULL,         NULL,         false},
	{DEST_RESERVE, "reserve", run_reserve, stop_reserve, undo_reserve, false},
	/* planned.json goes with the run directory (reserve's undo) */
	{DEST_RECORD,  "record",  run_record,  NULL,         NULL,         false},
	{DEST_DISKS,   "disks",   run_disks,   NULL,         undo_disks,   false},
	{DEST_QEMU,    "qemu",    run_qemu,    NULL,         undo_qemu,    false},
	{DEST_KEY,     "key",     run_key,     NULL,         undo_key,     false},
	{DEST_LISTEN,  "listen",  run_listen,  NULL,         NULL,         false},
	{DEST_EXPORT,  "export",  run_export,  NULL,         NULL,         false},
	{DEST_ARRIVED, "arrived", run_arrived, NULL,         NULL,         false},
	{DEST_SAVE,    "save",    run_save,    NULL,         undo_save,    false},
	{DEST_RESUME,  "resume",  run_resume,  NULL,         NULL,         false},
	{DEST_RELEASE, "release", run_release, NULL,         NULL,         false},
};

const struct phase_row *dest_phase_table(size_t *ret_count)
{
	*ret_count = ARRAY_SIZE(dest_phases);
	return dest_phases;
}

/* Without storage there are no disks to create or export; without
 * encryption no key. */
static bool skip_row(void *ctx, const struct phase_row *row)
{
	const struct incoming *in = ctx;

	return ((row->id == DEST_DISKS || row->id == DEST_EXPORT) && !in->storage) ||
	       (row->id == DEST_KEY && !in->tls);
}

static const struct phase_hooks dest_hooks = {.skip = skip_row};

int dest_prepare_run(struct incoming *in)
{
	return phases_run(dest_phases, DEST_PREPARED + 1, &dest_hooks, in, NULL);
}

int dest_finish_run(struct incoming *in, enum dest_phase *ret_failed)
{
	size_t failed = 0;
	int r;

	r = phases_run(dest_phases + DEST_ARRIVED, ARRAY_SIZE(dest_phases) - DEST_ARRIVED, &dest_hooks, in, &failed);
	if (r < 0)
		*ret_failed = (enum dest_phase)dest_phases[DEST_ARRIVED + failed].id;
	return r;
}

void dest_abort(struct ferryd *d, const char *name)
{
	struct incoming in = {.d = d, .tls = true};

	snprintf(in.name, sizeof(in.name), "%s", name); /* name may be the caller's planned[] */
	pthread_mutex_lock(&d->lock);
	in.vm = vm_find(d, in.name);
	if (!in.vm || !in.vm->incoming) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	in.vm->busy = "aborting";
	in.storage = json_is_true(json_object_get(in.vm->config, "_storage"));
	pthread_mutex_unlock(&d->lock);
	phases_undo(dest_phases, DEST_PREPARED, &dest_hooks, &in);
	log_info("planned VM %s removed, with the %zu disk file(s) made for it", in.name, in.removed);
}

void dest_undo_swept(struct incoming *in)
{
	in->swept = true;
	in->vm = NULL;
	in->storage = in->tls = true;
	phases_undo(dest_phases, DEST_PREPARED, &dest_hooks, in);
}
