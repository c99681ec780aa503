/* The destination half of a move: another ferryd, authenticated and acting
 * for a user who is an administrator here, asks this host to accept a VM.
 *
 * migrate.addresses  where this host accepts migration traffic
 * migrate.check      every reason the VM cannot come (nothing changes)
 * migrate.prepare    planned VM: disks created, QEMU waiting for the stream
 * migrate.finish     the guest runs here: register it
 * migrate.abort      remove every trace of the planned VM
 * prepare and finish run rows of the destination's phase table
 * (move_dest_phases.c); abort walks its prepare rows back. A planned VM is
 * tied to the connection that prepared it: if that connection drops before
 * finish, the VM and its new disks go away the same way. */
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "ferryd.h"
#include "log.h"
#include "migrate_params.h"
#include "migration_networks.h"
#include "move_endpoint.h"
#include "move_dest.h"
#include "ops.h"
#include "peer_msg.h"
#include "settings.h"
#include "util.h"
#include "vm_qmp.h"
#include "vmconfig.h"

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
	/* clock-ms: the source relates its clock to this host's by the round
	 * trip of this cheap request (a move's pause spans both hosts) */
	return reply_ok(json_pack("{s:o, s:b, s:b, s:I}", "addresses", out, "migration-enabled", enabled,
				  "encryption-required", encrypt, "clock-ms", (json_int_t)realtime_ms()));
}

static json_t *op_check(struct request *req)
{
	struct peer_check chk;
	json_t *cfg, *problems, *room = NULL, *e;
	char err[1024], nets[512];
	int r;

	if ((r = peer_read_check(req->args, &chk, err, sizeof(err))) < 0)
		return reply_error(peer_msg_code(r), NULL, "%s", err);
	cfg = chk.config;
	problems = check_incoming(req->d, cfg, req->args, NULL, &room);
	if (!req->caller->local && !dest_source_accepted(req->d, req->caller->addr, nets, sizeof(nets))) {
		snprintf(err, sizeof(err), "%s does not accept migrations from %s: it accepts only %s",
			 req->d->host_name, req->caller->addr, nets[0] ? nets : "no network at all");
		json_array_append_new(problems, json_string(err));
	}
	e = json_pack("{s:o, s:o, s:o}", "problems", problems, "capabilities", host_capabilities(req->d), "room", room);
	/* what a move would build on: the caller sent its resume bitmaps' tokens */
	if (e && chk.resume_tokens)
		json_object_set_new(e, "reuse", dest_partial_reusable(req->d, req, cfg, chk.resume_tokens));
	json_decref(cfg);
	return reply_ok(e);
}

/* A planned VM a crash left behind (no VM of that name loaded): walked
 * back by the same rows as an abort, from what planned.json and qemu.pid
 * say. Nothing is touched without a readable planned.json. */
static void sweep_one(struct ferryd *d, const char *name)
{
	struct incoming in = {.d = d};
	char path[PATH_MAX + 32], *text = NULL, *pidtext = NULL;
	uint64_t pid = 0;
	size_t len;

	snprintf(in.name, sizeof(in.name), "%s", name);
	snprintf(in.rundir, sizeof(in.rundir), "%s/vms/%s", d->run_dir, name);
	snprintf(path, sizeof(path), "%s/planned.json", in.rundir);
	if (read_file(path, 1 << 20, &text, &len) < 0)
		return;
	in.marker = json_loads(text, 0, NULL);
	snprintf(path, sizeof(path), "%s/qemu.pid", in.rundir);
	if (read_file(path, 64, &pidtext, &len) == 0) {
		pidtext[strcspn(pidtext, "\n")] = 0;
		parse_u64(pidtext, 2, INT32_MAX, &pid);
	}
	in.pid = (pid_t)pid;
	dest_undo_swept(&in);
	log_warn("removed incoming VM %s left behind by an interrupted move", name);
	json_decref(in.marker);
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

void incoming_connection_closed(struct ferryd *d, struct caller *c)
{
	if (!c->planned[0])
		return;
	log_warn("the source of incoming VM %s went away before the move finished: removing it", c->planned);
	dest_abort(d, c->planned);
	c->planned[0] = 0;
}

static json_t *prepare(struct request *req)
{
	struct ferryd *d = req->d;
	struct incoming in = {.d = d, .req = req};
	json_t *result;

	if (dest_prepare_run(&in) < 0) {
		/* refused before the planned VM was registered: with its own reply */
		if (in.reply)
			result = in.reply;
		else
			result = reply_error("failed", NULL, "%s could not prepare the VM: %s", d->host_name, in.err);
		if (in.name[0]) {
			log_info("planned VM %s removed, with the %zu disk file(s) made for it", in.name, in.removed);
			req->caller->planned[0] = 0;
		}
		goto out;
	}
	/* the fault matrix's point in the source's setup phase: all prepared
	 * here, the source not yet told (fault.h) */
	fault_point("dest-prepared");
	result = reply_ok(json_pack("{s:s, s:s, s:i, s:i}", "uri", in.uri, "address", in.addr, "port", in.mig_port,
				    "nbd-port", in.nbd_port));
	if (in.partial)
		json_object_set(json_object_get(result, "result"), "partial", in.partial);
out:
	json_decref(in.partial);
	json_decref(in.pp.check.config);
	json_decref(in.need);
	return result;
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
	struct incoming in = {.d = d, .req = req};
	enum dest_phase failed = DEST_ARRIVED;
	json_t *e = NULL, *res;
	char err[256];

	if (!(in.vm = planned_vm(req, &e)))
		return e;
	if (peer_read_kept_token(req->args, req->op, &in.kept_token, err, sizeof(err)) < 0) {
		dest_abort(d, req->caller->planned);
		req->caller->planned[0] = 0;
		return reply_error("bad_request", NULL, "%s", err);
	}
	in.storage = json_is_true(json_object_get(in.vm->config, "_storage"));
	snprintf(in.name, sizeof(in.name), "%s", vmconfig_name(in.vm->config));
	if (dest_finish_run(&in, &failed) < 0) {
		/* the guest was never resumed here: the source resumes it there
		 * (dispatch logs the refusal: OP_MOVE_STEP) */
		dest_abort(d, req->caller->planned);
		req->caller->planned[0] = 0;
		return reply_error("failed", NULL, "%s", in.err);
	}
	req->caller->planned[0] = 0;
	res = vm_summary(in.vm);
	json_object_set_new(res, "resumed-ms", json_integer(in.resumed_ms));
	if (in.kept_token)
		json_object_set_new(res, "kept-copy-recorded", json_boolean(in.kept_recorded));
	return reply_ok(res);
}

static json_t *op_abort(struct request *req)
{
	json_t *e = NULL;
	struct vm *vm = planned_vm(req, &e);

	if (!vm)
		return e;
	dest_abort(req->d, req->caller->planned);
	req->caller->planned[0] = 0;
	return reply_ok(NULL);
}

const struct op_def incoming_ops[] = {
	{OP_MIGRATE_ADDRESSES, op_addresses, OP_USER | OP_PEER}, {OP_MIGRATE_CHECK, op_check, OP_USER | OP_PEER}, {OP_MIGRATE_PREPARE, op_prepare, OP_ADMIN | OP_REMOTE | OP_PEER | OP_MOVE_STEP},
	{OP_MIGRATE_FINISH, op_finish, OP_ADMIN | OP_REMOTE | OP_PEER | OP_MOVE_STEP},       {OP_MIGRATE_ABORT, op_abort, OP_ADMIN | OP_REMOTE | OP_PEER | OP_MOVE_STEP},  {NULL, NULL, 0},
};
