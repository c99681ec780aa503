/* The destination half of a move: another ferryd, authenticated and acting
 * for a user who is an administrator here, asks this host to accept a VM.
 *
 * migrate.addresses  where this host accepts migration traffic
 * migrate.check      every reason the VM cannot come (nothing changes)
 * migrate.prepare    planned VM: disks created, QEMU waiting for the stream
 * migrate.finish     the guest runs here: register it
 * migrate.abort      remove every trace of the planned VM
 * A planned VM is tied to the connection that prepared it: if that
 * connection drops before finish, the VM and its new disks go away. */
#include <arpa/inet.h>
#include <dirent.h>
#include <signal.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault.h"
#include "ferryd.h"
#include "migration_networks.h"
#include "image.h"
#include "log.h"
#include "move_endpoint.h"
#include "migrate_params.h"
#include "move_util.h"
#include "peer_msg.h"
#include "settings.h"
#include "storage.h"
#include "util.h"
#include "vmconfig.h"

#define FINISH_TIMEOUT_MS 120000

static bool addr_accepted(struct ferryd *d, const char *addr, char *nets, size_t len)
{
	bool ok;

	pthread_mutex_lock(&d->lock);
	ok = migration_source_accepted(json_object_get(d->settings, "migration-networks"),
				       settings_bool(d->settings, "use-any-network"), addr, nets, len);
	pthread_mutex_unlock(&d->lock);
	return ok;
}

/* Refuses migration requests from a source outside the accepted networks. */
static json_t *check_source(struct request *req)
{
	char nets[512];

	if (req->caller->local)
		return NULL;
	if (addr_accepted(req->d, req->caller->addr, nets, sizeof(nets)))
		return NULL;
	return reply_error("refused", "add the source's network with 'ferry migration network add CIDR' on the destination",
			   "%s does not accept migrations from %s: it accepts only %s", req->d->host_name,
			   req->caller->addr, nets[0] ? nets : "no network at all");
}

/* This host's addresses in its migration networks, best priority first. */
static json_t *op_addresses(struct request *req)
{
	struct ferryd *d = req->d;
	struct ifaddrs *ifa = NULL;
	json_t *out;
	bool enabled, encrypt;

	if (getifaddrs(&ifa) < 0)
		return reply_error("failed", NULL, "cannot list this host's addresses: %s", strerror(errno));
	pthread_mutex_lock(&d->lock);
	out = migration_addresses(json_object_get(d->settings, "migration-networks"), ifa);
	if (settings_bool(d->settings, "use-any-network") && req->conn) {
		char buf[64];
		if (socket_address(req->conn->fd, false, buf, sizeof(buf)) == 0)
			json_array_append_new(out, json_pack("{s:s, s:I}", "address", buf, "priority", (json_int_t)1001));
	}
	enabled = settings_bool(d->settings, "migration-enabled");
	encrypt = settings_bool(d->settings, "encryption");
	pthread_mutex_unlock(&d->lock);
	freeifaddrs(ifa);
	return reply_ok(json_pack("{s:o, s:b, s:b}", "addresses", out, "migration-enabled", enabled,
				  "encryption-required", encrypt));
}

static json_t *op_check(struct request *req)
{
	struct peer_check chk;
	json_t *cfg, *problems, *e;
	char err[1024], nets[512];
	int r;

	if ((r = peer_read_check(req->args, &chk, err, sizeof(err))) < 0)
		return reply_error(peer_msg_code(r), NULL, "%s", err);
	cfg = chk.config;
	problems = check_incoming(req->d, cfg, req->args, NULL);
	if (!req->caller->local && !addr_accepted(req->d, req->caller->addr, nets, sizeof(nets))) {
		snprintf(err, sizeof(err), "%s does not accept migrations from %s: it accepts only %s",
			 req->d->host_name, req->caller->addr, nets[0] ? nets : "no network at all");
		json_array_append_new(problems, json_string(err));
	}
	json_decref(cfg);
	e = json_pack("{s:o, s:o}", "problems", problems, "capabilities", host_capabilities(req->d));
	return reply_ok(e);
}

/* A planned VM is not persisted; this marker in its run directory lets a
 * restarted ferryd find and remove what a crash left behind. */
static int incoming_marker_write(struct vm *vm)
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

static void sweep_one(struct ferryd *d, const char *name)
{
	char rundir[PATH_MAX], path[PATH_MAX + 32], statedir[PATH_MAX], *text = NULL, *pidtext = NULL;
	json_t *m = NULL, *dsk;
	uint64_t pid = 0;
	size_t len, i;

	snprintf(rundir, sizeof(rundir), "%s/vms/%s", d->run_dir, name);
	snprintf(path, sizeof(path), "%s/planned.json", rundir);
	if (read_file(path, 1 << 20, &text, &len) < 0)
		return;
	m = json_loads(text, 0, NULL);
	snprintf(path, sizeof(path), "%s/qemu.pid", rundir);
	if (read_file(path, 64, &pidtext, &len) == 0) {
		pidtext[strcspn(pidtext, "\n")] = 0;
		parse_u64(pidtext, 2, INT32_MAX, &pid);
	}
	if (pid) {
		char *cmdline = NULL;
		snprintf(path, sizeof(path), "/proc/%llu/cmdline", (unsigned long long)pid);
		/* cmdline has NULs: search the buffer, not a string */
		if (read_file(path, 1 << 16, &cmdline, &len) == 0 && arg_str(m, "id") &&
		    memmem(cmdline, len, arg_str(m, "id"), strlen(arg_str(m, "id"))))
			kill((pid_t)pid, SIGKILL);
		free(cmdline);
	}
	json_array_foreach(json_object_get(m, "created-disks"), i, dsk)
		created_file_unlink(dsk);
	remove_tree(rundir);
	snprintf(statedir, sizeof(statedir), "%s/vms/%s", d->state_dir, name);
	snprintf(path, sizeof(path), "%s/config.json", statedir);
	if (!path_exists(path))
		remove_tree_follow(statedir);
	log_warn("removed incoming VM %s left behind by an interrupted move", name);
	json_decref(m);
	free(text);
	free(pidtext);
}

/* A VM defined here (migrate.finish saved its configuration) with
 * planned.json still beside it: ferryd died between that save and the
 * resume. The guest is this host's since the save (review M1), and the
 * source keeps its copy paused unless told "not here": resume it here. */
static void finish_recover(struct vm *vm)
{
	char err[256], tls[PATH_MAX + 8];
	const char *name = vmconfig_name(vm->config), *status;
	json_t *st = NULL;

	if (vm->pid <= 0 || vm_qmp(vm, "query-status", NULL, &st, err, sizeof(err)) < 0) {
		log_warn("VM %s arrived here before ferryd stopped, but its QEMU is gone: it is defined here, "
			 "stopped; start it with 'ferry vm start %s'", name, name);
	} else if ((status = arg_str(st, "status")) && strcmp(status, "paused") == 0) {
		if (vm_qmp(vm, "cont", NULL, NULL, err, sizeof(err)) == 0)
			log_warn("VM %s: ferryd stopped while resuming it after its move here; resumed now", name);
		else
			log_err("VM %s arrived here but could not be resumed: %s; try 'ferry vm start %s'", name, err,
				name);
		migration_untune(vm);
	}
	json_decref(st);
	snprintf(tls, sizeof(tls), "%s/tls", vm->rundir);
	remove_tree(tls);
	incoming_marker_remove(vm);
}

void incoming_sweep(struct ferryd *d)
{
	char dir[PATH_MAX], marker[PATH_MAX * 2];
	struct dirent *de;
	struct vm *vm;
	DIR *dh;

	snprintf(dir, sizeof(dir), "%s/vms", d->run_dir);
	dh = opendir(dir);
	if (!dh)
		return;
	while ((de = readdir(dh))) {
		if (de->d_name[0] == '.')
			continue;
		vm = vm_find(d, de->d_name);
		snprintf(marker, sizeof(marker), "%s/%s/planned.json", dir, de->d_name);
		if (!vm)
			sweep_one(d, de->d_name);
		else if (path_exists(marker))
			finish_recover(vm);
	}
	closedir(dh);
}

/* Removes a planned VM and the disks this host created for it, each only if
 * it is still the very file created (review H2). */
static void abort_planned(struct ferryd *d, const char *name)
{
	json_t *created, *f;
	struct vm *vm;
	size_t i, n = 0;

	pthread_mutex_lock(&d->lock);
	vm = vm_find(d, name);
	if (!vm || !vm->incoming) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	vm->busy = "aborting";
	pthread_mutex_unlock(&d->lock);
	created = json_incref(json_object_get(vm->config, "_created-disks"));
	qemu_kill(vm);
	json_array_foreach(created, i, f)
		n += created_file_unlink(f);
	json_decref(created);
	pthread_mutex_lock(&d->lock);
	vm_remove(d, vm, false);
	jobs_wake(d);
	pthread_mutex_unlock(&d->lock);
	log_info("planned VM %s removed, with the %zu disk file(s) made for it", name, n);
}

void incoming_connection_closed(struct ferryd *d, struct caller *c)
{
	if (!c->planned[0])
		return;
	log_warn("the source of incoming VM %s went away before the move finished: removing it", c->planned);
	abort_planned(d, c->planned);
	c->planned[0] = 0;
}

/* Creates the planned VM's disks, empty and new, under this host's storage
 * roots (O_EXCL, no symbolic link followed), recording each file in
 * "_created-disks" and in planned.json before anything is written to it, so
 * that abort and a restarted ferryd delete exactly these files. */
static int create_disks(struct ferryd *d, struct vm *vm, json_t *sizes, char *err, size_t errlen)
{
	char roots[STORAGE_ROOTS_MAX][PATH_MAX];
	json_t *dsk, *created = json_object_get(vm->config, "_created-disks");
	size_t i, n_roots;
	int r;

	pthread_mutex_lock(&d->lock);
	n_roots = storage_roots(d, roots, STORAGE_ROOTS_MAX);
	pthread_mutex_unlock(&d->lock);
	json_array_foreach(json_object_get(vm->config, "disks"), i, dsk) {
		const char *path = arg_str(dsk, "path"), *fmt = arg_str(dsk, "format");
		const char *root = storage_root_of(roots, n_roots, path);
		struct file_id id;
		json_int_t size;
		if (!root) {
			snprintf(err, errlen, "disk %s is outside this host's storage roots", path);
			return -EPERM;
		}
		if ((r = storage_create(root, path, &id, err, errlen)) < 0)
			return r;
		pthread_mutex_lock(&d->lock);
		json_array_append_new(created, json_pack("{s:s, s:I, s:I}", "path", path, "dev", (json_int_t)id.dev,
							 "ino", (json_int_t)id.ino));
		pthread_mutex_unlock(&d->lock);
		if ((r = incoming_marker_write(vm)) < 0) {
			snprintf(err, errlen, "cannot write %s/planned.json: %s", vm->rundir, strerror(-r));
			return r;
		}
		size = json_integer_value(json_object_get(json_array_get(sizes, i), "size"));
		if ((r = image_create(path, fmt, (uint64_t)size, err, errlen)) < 0)
			return r;
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

static json_t *prepare(struct request *req)
{
	struct ferryd *d = req->d;
	json_t *args = req->args, *cfg, *problems, *e = NULL, *result = NULL, *need = NULL;
	struct peer_prepare pp;
	bool storage, tls;
	const char *identity, *psk, *perf;
	int channels;
	char err[1024], addr[64], pskdir[PATH_MAX + 8], uri[128];
	int mig_port, nbd_port = 0, r;
	struct vm *vm = NULL;
	json_t *dsk;
	size_t i;

	if ((e = check_source(req)))
		return e;
	if (req->caller->planned[0])
		return reply_error("busy", NULL, "this connection already prepared VM %s", req->caller->planned);
	/* every field checked (peer_msg.c); cfg is a normalized copy */
	if ((r = peer_read_prepare(args, &pp, err, sizeof(err))) < 0)
		return reply_error(peer_msg_code(r), NULL, "%s", err);
	cfg = pp.check.config;
	storage = pp.check.include_storage;
	tls = pp.encryption;
	identity = pp.psk_identity;
	psk = pp.psk;
	perf = pp.performance;
	channels = pp.channels;
	/* either end requiring encryption makes the move encrypted (review M9):
	 * a source cannot make this host open unauthenticated data ports */
	pthread_mutex_lock(&d->lock);
	bool must_encrypt = settings_bool(d->settings, "encryption");
	pthread_mutex_unlock(&d->lock);
	if (must_encrypt && !tls) {
		json_decref(cfg);
		return reply_error("refused", "turn encryption on at the source ('ferry host set encryption on')",
				   "%s requires encrypted moves (its setting encryption is on): the source asked for "
				   "none", d->host_name);
	}
	/* QEMU listens where the source reached this host (over TCP: dispatch
	 * refuses migrate.prepare on the local socket) */
	if ((r = socket_address(req->conn->fd, false, addr, sizeof(addr))) < 0) {
		json_decref(cfg);
		return reply_error("failed", NULL, "cannot read this host's address on the connection: %s",
				   strerror(-r));
	}
	if (free_tcp_port(addr, &mig_port) < 0 || (storage && free_tcp_port(addr, &nbd_port) < 0)) {
		json_decref(cfg);
		return reply_error("failed", NULL, "no free port on %s for the migration stream", addr);
	}
	/* Check again (things may have changed since migrate.check), count the
	 * limits and register the planned VM, which reserves what it needs,
	 * all before another prepare may check (review M7). */
	pthread_mutex_lock(&d->prepare_lock);
	if ((e = limits_refusal(d, storage))) {
		pthread_mutex_unlock(&d->prepare_lock);
		json_decref(cfg);
		return e;
	}
	problems = check_incoming(d, cfg, args, &need);
	if (json_array_size(problems)) {
		pthread_mutex_unlock(&d->prepare_lock);
		e = reply_error("refused", NULL, "%s cannot take the VM: %s", d->host_name,
				json_string_value(json_array_get(problems, 0)));
		json_object_set_new(json_object_get(e, "error"), "problems", problems);
		json_decref(cfg);
		json_decref(need);
		return e;
	}
	json_decref(problems);
	/* the name first, then the files: a lost name race deletes nothing */
	pthread_mutex_lock(&d->lock);
	r = vm_add(d, cfg, false, &vm, err, sizeof(err));
	if (r == 0) {
		vm->incoming = true;
		vm->busy = "incoming";
		/* private, never persisted: the files made here, the only ones abort deletes */
		json_object_set_new(vm->config, "_created-disks", json_array());
		json_object_set_new(vm->config, "_storage", json_boolean(storage));
		json_object_set(vm->config, "_reserve-disk", need);
		snprintf(req->caller->planned, sizeof(req->caller->planned), "%s", vmconfig_name(cfg));
	}
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_unlock(&d->prepare_lock);
	json_decref(cfg);
	json_decref(need);
	if (r < 0)
		return reply_error("failed", NULL, "%s", err);

	if ((r = incoming_marker_write(vm)) < 0) {
		snprintf(err, sizeof(err), "cannot write %s/planned.json: %s", vm->rundir, strerror(-r));
		goto fail;
	}
	if (storage && (r = create_disks(d, vm, json_object_get(args, "disks"), err, sizeof(err))) < 0)
		goto fail;
	r = qemu_start(d, vm, "defer", err, sizeof(err));
	if (r < 0)
		goto fail;
	if (tls) {
		snprintf(pskdir, sizeof(pskdir), "%s/tls", vm->rundir);
		if ((r = psk_dir_write(pskdir, identity, psk, d->qemu_drop ? d->qemu_gid : (gid_t)-1)) < 0) {
			snprintf(err, sizeof(err), "cannot write the one-time key: %s", strerror(-r));
			goto fail;
		}
		r = qmpf(vm, err, sizeof(err), NULL, "object-add", "{s:s, s:s, s:s, s:s}", "qom-type",
			 "tls-creds-psk", "id", TLS_ID, "endpoint", "server", "dir", pskdir);
		if (r < 0)
			goto fail;
	}
	if ((r = migration_tune(vm, &(struct migration_tuning){.performance = perf, .channels = channels, .tls = tls},
				err, sizeof(err))) < 0)
		goto fail;
	snprintf(uri, sizeof(uri), strchr(addr, ':') ? "tcp:[%s]:%d" : "tcp:%s:%d", addr, mig_port);
	if ((r = qmpf(vm, err, sizeof(err), NULL, "migrate-incoming", "{s:s}", "uri", uri)) < 0)
		goto fail;
	if (storage) {
		char port[16];
		snprintf(port, sizeof(port), "%d", nbd_port);
		r = tls ? qmpf(vm, err, sizeof(err), NULL, "nbd-server-start", "{s:{s:s, s:{s:s, s:s}}, s:s}", "addr",
			       "type", "inet", "data", "host", addr, "port", port, "tls-creds", TLS_ID)
			: qmpf(vm, err, sizeof(err), NULL, "nbd-server-start", "{s:{s:s, s:{s:s, s:s}}}", "addr",
			       "type", "inet", "data", "host", addr, "port", port);
		if (r < 0)
			goto fail;
		json_array_foreach(json_object_get(vm->config, "disks"), i, dsk) {
			char node[16], id[24];
			snprintf(node, sizeof(node), "disk%zu", i);
			snprintf(id, sizeof(id), "exp-disk%zu", i);
			r = qmpf(vm, err, sizeof(err), NULL, "block-export-add", "{s:s, s:s, s:s, s:s, s:b}", "type",
				 "nbd", "id", id, "node-name", node, "name", node, "writable", 1);
			if (r < 0)
				goto fail;
		}
	}
	result = json_pack("{s:s, s:s, s:i, s:i}", "uri", uri, "address", addr, "port", mig_port, "nbd-port",
			   nbd_port);
	return reply_ok(result);
fail:
	abort_planned(d, req->caller->planned);
	req->caller->planned[0] = 0;
	return reply_error("failed", NULL, "%s could not prepare the VM: %s", d->host_name, err);
}

static json_t *op_prepare(struct request *req)
{
	json_t *r = prepare(req);

	/* the one-time key is in keys.psk now (or not needed): not in freed memory */
	json_wipe_string(req->args, "psk");
	return r;
}

static struct vm *planned_vm(struct request *req, json_t **ret_err)
{
	const char *name;
	struct vm *vm;
	char err[256];
	int r;

	if ((r = peer_read_name(req->args, req->op, &name, err, sizeof(err))) < 0) {
		*ret_err = reply_error(peer_msg_code(r), NULL, "%s", err);
		return NULL;
	}
	if (strcmp(name, req->caller->planned) != 0) {
		*ret_err = reply_error("bad_request", NULL, "VM '%s' was not prepared on this connection", name);
		return NULL;
	}
	pthread_mutex_lock(&req->d->lock);
	vm = vm_find(req->d, name);
	pthread_mutex_unlock(&req->d->lock);
	if (!vm || !vm->incoming) {
		*ret_err = reply_error("not_found", NULL, "planned VM '%s' is gone", name);
		return NULL;
	}
	return vm;
}

/* The source saw its migration complete: the guest, paused here, resumes. */
static json_t *op_finish(struct request *req)
{
	struct ferryd *d = req->d;
	json_t *e = NULL, *st = NULL, *created = NULL, *storage = NULL;
	uint64_t deadline = now_ms() + FINISH_TIMEOUT_MS;
	char err[768] = "", why[512], tls[PATH_MAX + 8];
	struct vm *vm = planned_vm(req, &e);
	const char *status = "";
	bool paused;
	int r;

	if (!vm)
		return e;
	while (now_ms() < deadline) {
		json_decref(st);
		st = NULL;
		r = vm_qmp(vm, "query-status", NULL, &st, err, sizeof(err));
		status = r < 0 ? "gone" : arg_str(st, "status");
		if (r < 0 || !status || strcmp(status, "inmigrate") != 0)
			break;
		usleep(5 * 1000); /* the guest is paused: poll closely */
	}
	if (!status || (strcmp(status, "paused") != 0 && strcmp(status, "running") != 0)) {
		snprintf(err, sizeof(err), "the VM did not arrive complete on %s (QEMU state %s)", d->host_name,
			 status ? status : "?");
		json_decref(st);
		abort_planned(d, req->caller->planned);
		req->caller->planned[0] = 0;
		return reply_error("failed", NULL, "%s", err);
	}
	paused = strcmp(status, "paused") == 0;
	json_decref(st);
	if (json_is_true(json_object_get(vm->config, "_storage")))
		vm_qmp(vm, "nbd-server-stop", NULL, NULL, err, sizeof(err));
	/* This host owns the VM from the moment its configuration is on disk
	 * (written, fsynced, renamed, directory fsynced), and not before: saved
	 * first, resumed after (review M1). A VM that cannot be saved is not
	 * resumed here, and the source, told so, resumes it there. */
	pthread_mutex_lock(&d->lock);
	created = json_incref(json_object_get(vm->config, "_created-disks"));
	storage = json_incref(json_object_get(vm->config, "_storage"));
	json_object_del(vm->config, "_created-disks");
	json_object_del(vm->config, "_storage");
	json_object_del(vm->config, "_reserve-disk");
	r = vm_save(d, vm);
	if (r < 0) {
		json_object_set_new(vm->config, "_created-disks", created);
		json_object_set_new(vm->config, "_storage", storage);
		created = storage = NULL;
	}
	pthread_mutex_unlock(&d->lock);
	if (r < 0) {
		snprintf(err, sizeof(err), "%s could not save the VM's configuration (%s): the guest was not resumed there",
			 d->host_name, strerror(-r));
		goto refuse;
	}
	fault_point("finish-saved");
	/* planned.json goes only once the guest runs: a restart that finds it
	 * beside a saved configuration completes the resume (finish_recover) */
	if (paused && vm_qmp(vm, "cont", NULL, NULL, why, sizeof(why)) < 0) {
		snprintf(err, sizeof(err), "the VM could not resume on %s: %s", d->host_name, why);
		/* not running here after all: forget the saved configuration */
		pthread_mutex_lock(&d->lock);
		vm_unsave(vm);
		json_object_set_new(vm->config, "_created-disks", created);
		json_object_set_new(vm->config, "_storage", storage);
		created = storage = NULL;
		pthread_mutex_unlock(&d->lock);
		goto refuse;
	}
	json_decref(created);
	json_decref(storage);
	incoming_marker_remove(vm);
	migration_untune(vm);
	snprintf(tls, sizeof(tls), "%s/tls", vm->rundir);
	remove_tree(tls);
	pthread_mutex_lock(&d->lock);
	vm->incoming = false;
	vm->busy = NULL;
	jobs_wake(d); /* an incoming move ended: queued moves may go */
	pthread_mutex_unlock(&d->lock);
	req->caller->planned[0] = 0;
	return reply_ok(vm_summary(vm));
refuse:
	abort_planned(d, req->caller->planned);
	req->caller->planned[0] = 0;
	return reply_error("failed", NULL, "%s", err);
}

static json_t *op_abort(struct request *req)
{
	json_t *e = NULL;
	struct vm *vm = planned_vm(req, &e);

	if (!vm)
		return e;
	abort_planned(req->d, req->caller->planned);
	req->caller->planned[0] = 0;
	return reply_ok(NULL);
}

const struct op_def incoming_ops[] = {
	{PEER_OP_ADDRESSES, op_addresses, OP_USER | OP_PEER}, {PEER_OP_CHECK, op_check, OP_USER | OP_PEER}, {PEER_OP_PREPARE, op_prepare, OP_ADMIN | OP_REMOTE | OP_PEER | OP_MOVE_STEP},
	{PEER_OP_FINISH, op_finish, OP_ADMIN | OP_REMOTE | OP_PEER | OP_MOVE_STEP},       {PEER_OP_ABORT, op_abort, OP_ADMIN | OP_REMOTE | OP_PEER | OP_MOVE_STEP},  {NULL, NULL, 0},
};
