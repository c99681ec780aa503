/* The source half of a move (Move-VM): a table of phases (source_phases
 * below; phases.h runs it), each with its undo, and the phase persisted
 * before it runs (move_state.h). Until the destination has the guest
 * running, every failure walks the table back: the guest runs here with all
 * its writes, and the destination removes whatever it prepared. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockjob.h"
#include "fault.h"
#include "ferryd.h"
#include "move.h"
#include "image.h"
#include "log.h"
#include "move_endpoint.h"
#include "move_state.h"
#include "migrate_params.h"
#include "move_util.h"
#include "peer_msg.h"
#include "phases.h"
#include "storage.h"
#include "settings.h"
#include "util.h"
#include "vmconfig.h"

#define POLL_MS 200
/* The guest is paused while these run: every millisecond of polling is downtime. */
#define MEMORY_POLL_MS 25
#define SWITCHOVER_POLL_MS 5
#define MIG_JOBS "mig" /* mirrors mig-mirror<i> to NBD nodes mig-tgt<i> (blockjob.h) */
#define FORCED_DOWNTIME_MS 2000000 /* QEMU's maximum: converge on the next pass */

static int stage_setup(void *ctx)
{
	struct move *m = ctx;
	json_t *sizes, *res = NULL, *args, *problems;
	uint8_t key[32];
	char hex[65], identity[64], connected[64];
	int r;

	if ((r = move_connect_dest(m)) < 0)
		return r;
	m->dest_cfg = move_dest_config(m);
	if (!(sizes = move_disk_sizes(m)))
		return -EIO;
	r = move_peer_call(m, PEER_OP_CHECK, move_check_request(m, json_incref(sizes)), &res);
	if (r == 0)
		r = peer_read_check_reply(res, &problems, m->err, sizeof(m->err));
	if (r < 0) {
		json_decref(res);
		json_decref(sizes);
		return r;
	}
	if (json_array_size(problems)) {
		char list[900];
		move_join_problems(problems, list, sizeof(list));
		snprintf(m->err, sizeof(m->err), "%s cannot take %s: %s", m->j->dest, m->j->vm, list);
		json_decref(res);
		json_decref(sizes);
		return -EPERM;
	}
	json_decref(res);
	res = NULL;
	if (job_cancelled(m->d, m->j)) {
		json_decref(sizes);
		return -ECANCELED;
	}

	random_bytes(key, sizeof(key));
	hex_encode(key, sizeof(key), hex);
	explicit_bzero(key, sizeof(key)); /* the hex form is all that is needed */
	snprintf(identity, sizeof(identity), "ferry-move-%llu", (unsigned long long)m->j->id);
	if (m->tls) {
		snprintf(m->pskdir, sizeof(m->pskdir), "%s/tls-%llu", m->vm->rundir, (unsigned long long)m->j->id);
		if ((r = psk_dir_write(m->pskdir, identity, hex, m->d->qemu_drop ? m->d->qemu_gid : (gid_t)-1)) < 0) {
			snprintf(m->err, sizeof(m->err), "cannot write the one-time key: %s", strerror(-r));
			explicit_bzero(hex, sizeof(hex));
			json_decref(sizes);
			return r;
		}
		r = qmpf(m->vm, m->err, sizeof(m->err), NULL, "object-add", "{s:s, s:s, s:s, s:s, s:s}", "qom-type",
			 "tls-creds-psk", "id", TLS_ID, "endpoint", "client", "dir", m->pskdir, "username", identity);
		if (r < 0) {
			explicit_bzero(hex, sizeof(hex));
			json_decref(sizes);
			return r;
		}
	}
	args = move_check_request(m, sizes);
	json_object_set_new(args, "psk-identity", json_string(identity));
	json_object_set_new(args, "psk", json_string(hex));
	json_object_set_new(args, "encryption", json_boolean(m->tls));
	json_object_set_new(args, "performance", json_string(m->perf));
	json_object_set_new(args, "channels", json_integer(m->channels));
	explicit_bzero(hex, sizeof(hex));
	json_incref(args); /* to wipe the key in it after the call */
	/* A destination at its limits refuses ("busy", with its numbers): no
	 * waiting here, as two hosts moving to each other would wait forever. */
	r = move_peer_call(m, PEER_OP_PREPARE, args, &res);
	json_wipe_string(args, "psk");
	json_decref(args);
	if (r < 0)
		return r;
	/* prepared: from here on a failure aborts the planned VM there */
	m->prepared = true;
	r = socket_address(m->peer.conn.fd, true, connected, sizeof(connected));
	if (r < 0)
		snprintf(m->err, sizeof(m->err), "cannot read the destination's address: %s", strerror(-r));
	else
		r = move_endpoint_from_reply(res, connected, m->storage, &m->ep, m->err, sizeof(m->err));
	json_decref(res);
	return r;
}

/* Each round of the wait for the disk mirrors: progress for the job, and
 * the move's own reasons to stop. */
static int storage_round(void *ctx, const struct blockjob_progress *p)
{
	struct move *m = ctx;

	job_set_disk_progress(m->d, m->j, p->total, p->remaining);
	if (job_cancelled(m->d, m->j))
		return -ECANCELED;
	return move_check_alive(m);
}

static int stage_storage(void *ctx)
{
	struct move *m = ctx;
	const char *addr = m->ep.address;
	char port[16], why[512];
	int r;

	snprintf(port, sizeof(port), "%d", m->ep.nbd_port);
	for (size_t i = 0; i < m->ndisks; i++) {
		char node[64], tgt[32], export[16];
		json_t *a;
		if ((r = blockjob_disk_node(m->vm, i, node, sizeof(node), m->err, sizeof(m->err))) < 0)
			return r;
		snprintf(tgt, sizeof(tgt), MIG_JOBS "-tgt%zu", i);
		snprintf(export, sizeof(export), "disk%zu", i);
		a = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:s}", "driver", "nbd", "node-name", tgt, "server", "type",
			      "inet", "host", addr, "port", port, "export", export);
		if (m->tls)
			json_object_set_new(a, "tls-creds", json_string(TLS_ID));
		r = vm_qmp(m->vm, "blockdev-add", a, NULL, m->err, sizeof(m->err));
		json_decref(a);
		if (r < 0)
			return r;
		if ((r = blockjob_mirror_start(m->vm, MIG_JOBS, i, node, m->err, sizeof(m->err))) < 0)
			return r;
	}
	why[0] = '\0';
	r = blockjob_wait(m->vm, MIG_JOBS, m->ndisks, BLOCKJOB_READY, now_ms() + BLOCKJOB_SYNC_TIMEOUT_MS, POLL_MS,
			  storage_round, m, why, sizeof(why));
	/* the round's own reasons (cancel, the destination gone) wrote m->err */
	if (r == -EIO || r == -ETIMEDOUT || (r < 0 && why[0]))
		snprintf(m->err, sizeof(m->err), "copying the disks failed: %s", why);
	return r;
}

static void update_memory_progress(struct move *m, json_t *info)
{
	json_t *ram = json_object_get(info, "ram");

	pthread_mutex_lock(&m->d->lock);
	m->j->mem_total = (uint64_t)json_integer_value(json_object_get(ram, "total"));
	m->j->mem_remaining = (uint64_t)json_integer_value(json_object_get(ram, "remaining"));
	m->j->mem_transferred = (uint64_t)json_integer_value(json_object_get(ram, "transferred"));
	m->j->mbps = json_number_value(json_object_get(ram, "mbps"));
	m->j->pass = (int)json_integer_value(json_object_get(ram, "dirty-sync-count"));
	if (json_is_integer(json_object_get(info, "downtime")))
		m->j->downtime_ms = json_integer_value(json_object_get(info, "downtime"));
	pthread_mutex_unlock(&m->d->lock);
}

/* One look at the migration, progress updated; a failed or cancelled
 * migration becomes an error that names what was being transferred. */
static int migration_status(struct move *m, const char *what, char *status, size_t len)
{
	json_t *info = NULL;
	const char *st;
	int r;

	if ((r = vm_qmp(m->vm, "query-migrate", NULL, &info, m->err, sizeof(m->err))) < 0)
		return r;
	st = arg_str(info, "status") ? arg_str(info, "status") : "";
	update_memory_progress(m, info);
	snprintf(status, len, "%s", st);
	if (!strcmp(st, "failed") || !strcmp(st, "cancelled")) {
		snprintf(m->err, sizeof(m->err), "%s %s: %s", what, st,
			 arg_str(info, "error-desc") ? arg_str(info, "error-desc") : "no reason given by QEMU");
		r = -EIO;
	}
	json_decref(info);
	return r;
}

/* Pre-copy until QEMU pauses before the switchover. */
static int stage_memory(void *ctx)
{
	struct move *m = ctx;
	int64_t max_passes, downtime;
	bool forced = false;
	char failed[512];
	int r;

	pthread_mutex_lock(&m->d->lock);
	max_passes = settings_int(m->d->settings, "max-passes");
	downtime = settings_int(m->d->settings, "downtime-ms");
	pthread_mutex_unlock(&m->d->lock);
	if ((r = migration_tune(m->vm, &(struct migration_tuning){.performance = m->perf, .channels = m->channels,
								  .tls = m->tls, .source = true,
								  .downtime_ms = downtime},
				m->err, sizeof(m->err))) < 0)
		return r;
	if ((r = qmpf(m->vm, m->err, sizeof(m->err), NULL, "migrate", "{s:s}", "uri", m->ep.uri)) < 0)
		return r;
	m->migrating = true;
	for (;;) {
		char status[32];
		if ((r = migration_status(m, "the memory transfer", status, sizeof(status))) < 0)
			return r;
		if (!strcmp(status, "pre-switchover"))
			break;
		if (m->storage) {
			struct blockjob_progress p;
			if ((r = blockjob_check(m->vm, MIG_JOBS, m->ndisks, &p, failed, sizeof(failed))) < 0) {
				snprintf(m->err, sizeof(m->err), "mirroring the disks failed: %s", failed);
				return r;
			}
			job_set_disk_progress(m->d, m->j, p.total, p.remaining);
		}
		if (job_cancelled(m->d, m->j))
			return -ECANCELED;
		if ((r = move_check_alive(m)) < 0)
			return r;
		if (!forced && m->j->pass > max_passes) {
			/* The guest dirties memory faster than it moves: stop iterating. */
			log_info("job %llu: %lld passes done, forcing the switchover", (unsigned long long)m->j->id,
				 (long long)max_passes);
			qmpf(m->vm, m->err, sizeof(m->err), NULL, "migrate-set-parameters", "{s:I}", "downtime-limit",
			     (json_int_t)FORCED_DOWNTIME_MS);
			forced = true;
		}
		usleep(MEMORY_POLL_MS * 1000);
	}
	return 0;
}

/* The guest is paused: finish the disk mirrors (no pivot: the source keeps
 * its own disks until the end), then let QEMU send the last state. */
static int stage_switchover(void *ctx)
{
	struct move *m = ctx;
	int r;

	/* cancel of a ready mirror: it writes what is left, then ends without a
	 * pivot (the source keeps its own disks until the move is over) */
	if (m->storage) {
		char why[512] = "";
		if ((r = blockjob_finish_all(m->vm, MIG_JOBS, m->ndisks, false, m->err, sizeof(m->err))) < 0)
			return r;
		r = blockjob_wait(m->vm, MIG_JOBS, m->ndisks, BLOCKJOB_GONE, now_ms() + 120000, SWITCHOVER_POLL_MS,
				  NULL, NULL, why, sizeof(why));
		if (r < 0) {
			snprintf(m->err, sizeof(m->err), "the last disk writes did not reach %s: %s", m->j->dest, why);
			return r;
		}
	}
	if (job_cancelled(m->d, m->j))
		return -ECANCELED;
	/* Past this point the destination resumes the guest: it must still be there. */
	m->progress_ms = 0;
	if ((r = move_check_alive(m)) < 0)
		return r;
	pthread_mutex_lock(&m->d->lock);
	m->j->past_cancel_point = true;
	pthread_mutex_unlock(&m->d->lock);
	if ((r = qmpf(m->vm, m->err, sizeof(m->err), NULL, "migrate-continue", "{s:s}", "state", "pre-switchover")) < 0)
		return r;
	/* The guest is paused and cancel refused: a cut network must not keep it
	 * so for the minutes TCP takes to give up (review M6). No progress for
	 * stall-timeout seconds, or the destination gone: roll back; it was not
	 * told to resume the guest, so the source resumes it. */
	m->progress_ms = now_ms();
	for (;;) {
		char status[32];
		if ((r = migration_status(m, "the final state transfer", status, sizeof(status))) < 0)
			return r;
		if (!strcmp(status, "completed"))
			break;
		if ((r = move_check_alive(m)) < 0)
			return r;
		usleep(SWITCHOVER_POLL_MS * 1000);
	}
	m->migrating = false;
	return 0;
}

/* The destination resumes the guest (the record says phase finish: a
 * restart here keeps the guest paused). The answer lost: ask again. */
static int stage_finish(void *ctx)
{
	struct move *m = ctx;
	json_t *res = NULL;
	int r;

	r = move_peer_call(m, PEER_OP_FINISH, json_pack("{s:s}", "name", m->j->vm), &res);
	json_decref(res);
	if (r < 0 && r != -EPERM)
		return move_finish_outcome(m);
	return r;
}

/* One instance at a time: yank refuses the whole list if one is unknown. */
static void yank(struct move *m, json_t *instance)
{
	json_t *a = json_pack("{s:[o]}", "instances", instance);
	char err[256];

	if (vm_qmp_oob(m->vm, "yank", a, err, sizeof(err)) < 0)
		log_debug("yank: %s", err);
	json_decref(a);
}

/* A cut network leaves the migration and NBD sockets hanging until TCP
 * gives up (minutes), and cancelling would wait for them: every stop runs
 * (QMP yank, out of band) before any undo. */
static void stop_storage(void *ctx)
{
	struct move *m = ctx;

	for (size_t i = 0; i < m->ndisks; i++) {
		char tgt[32];
		snprintf(tgt, sizeof(tgt), MIG_JOBS "-tgt%zu", i);
		yank(m, json_pack("{s:s, s:s}", "type", "block-node", "node-name", tgt));
	}
}

static void stop_memory(void *ctx)
{
	struct move *m = ctx;

	if (m->migrating)
		yank(m, json_pack("{s:s}", "type", "migration"));
}

static void undo_storage(void *ctx)
{
	struct move *m = ctx;

	blockjob_abandon(m->vm, MIG_JOBS, m->ndisks, 5000);
}

/* The migration cancelled; the guest, paused by QEMU in pre-switchover or
 * after it completed, resumes here unless the destination may run it. */
static void undo_memory(void *ctx)
{
	struct move *m = ctx;
	char err[256];
	json_t *st = NULL;

	if (m->migrating)
		vm_qmp(m->vm, "migrate_cancel", NULL, NULL, err, sizeof(err));
	for (int tries = 0; tries < 50 && !m->outcome_unknown; tries++) {
		const char *s;
		json_decref(st);
		st = NULL;
		if (vm_qmp(m->vm, "query-status", NULL, &st, err, sizeof(err)) < 0)
			break;
		s = arg_str(st, "status");
		if (s && !strcmp(s, "running"))
			break;
		if (s && (!strcmp(s, "paused") || !strcmp(s, "postmigrate") || !strcmp(s, "finish-migrate")))
			vm_qmp(m->vm, "cont", NULL, NULL, err, sizeof(err));
		usleep(100 * 1000);
	}
	json_decref(st);
}

/* The one-time key dropped, and the destination told to drop its planned
 * VM (it also does when the connection closes). */
static void undo_setup(void *ctx)
{
	struct move *m = ctx;

	if (m->tls)
		migration_untune(m->vm);
	if (m->prepared && m->peer.open && m->j && !m->outcome_unknown) {
		json_t *a = json_pack("{s:s}", "name", m->j->vm);
		json_t *reply = NULL;
		if (conn_call(&m->peer.conn, PEER_OP_ABORT, a, &reply) < 0)
			log_warn("could not tell %s to drop %s; it removes it when the connection closes", m->j->dest,
				 m->j->vm);
		json_decref(a);
		json_decref(reply);
	}
}

/* The guest runs on the destination: the copy here goes (its disks too
 * when they were copied, unless --keep-source-disks). */
static int stage_cleanup(void *ctx)
{
	struct move *m = ctx;
	struct ferryd *d = m->d;
	bool delete_disks = m->storage && !m->keep_disks;

	qemu_stop(d, m->vm, 0, true);
	pthread_mutex_lock(&d->lock);
	vm_remove(d, m->vm, delete_disks);
	pthread_mutex_unlock(&d->lock);
	m->vm = NULL;
	return 0;
}

/* The move at the source. Each row: the phase persisted before it runs,
 * what it does, what stops it at once and what undoes it after a failure
 * (newest first; a restart walks back from the persisted phase the same
 * way: move_recover), and whether job cancel is still honoured. */
static const struct phase_row source_phases[] = {
	/* id               name          run              stop          undo          cancel */
	{MOVE_SETUP,      "setup",      stage_setup,      NULL,         undo_setup,   true},
	{MOVE_STORAGE,    "storage",    stage_storage,    stop_storage, undo_storage, true},
	{MOVE_MEMORY,     "memory",     stage_memory,     stop_memory,  undo_memory,  true},
	/* cancel is refused from migrate-continue on (the run says so) */
	{MOVE_SWITCHOVER, "switchover", stage_switchover, NULL,         NULL,         true},
	{MOVE_FINISH,     "finish",     stage_finish,     NULL,         NULL,         false},
	{MOVE_CLEANUP,    "cleanup",    stage_cleanup,    NULL,         NULL,         false},
};

static const enum job_stage stage_of[] = {
	[MOVE_SETUP] = STAGE_SETUP,           [MOVE_STORAGE] = STAGE_STORAGE, [MOVE_MEMORY] = STAGE_MEMORY,
	[MOVE_SWITCHOVER] = STAGE_SWITCHOVER, [MOVE_FINISH] = STAGE_SWITCHOVER, [MOVE_CLEANUP] = STAGE_CLEANUP,
};

/* Before a phase: its record on disk, then the job's stage. Without the
 * record a restart could resume the guest here while the destination runs
 * it, so a write that fails fails the phase before it runs (review L2). */
static int enter_phase(void *ctx, const struct phase_row *row)
{
	struct move *m = ctx;
	struct move_record rec = {.job = m->j->id, .phase = (enum move_phase)row->id, .storage = m->storage,
				  .keep_disks = m->keep_disks};
	char point[48];
	int r;

	snprintf(rec.dest, sizeof(rec.dest), "%s", m->j->dest);
	if ((r = move_record_write(m->vm->rundir, &rec)) < 0) {
		snprintf(m->err, sizeof(m->err), "cannot record in %s that %s enters its %s phase (%s): the move is "
			 "rolled back and the guest stays here", m->vm->rundir, m->j->vm, row->name, strerror(-r));
		log_err("job %llu: %s", (unsigned long long)m->j->id, m->err);
		return r;
	}
	/* FERRY_FAULT=source-PHASE: the crash tests stop ferryd here, the
	 * phase recorded and not yet run (fault.h) */
	snprintf(point, sizeof(point), "source-%s", row->name);
	fault_point(point);
	if (!row->cancel) {
		pthread_mutex_lock(&m->d->lock);
		m->j->past_cancel_point = true;
		pthread_mutex_unlock(&m->d->lock);
	}
	job_enter_phase(m->d, m->j, stage_of[row->id], row->name);
	return 0;
}

static bool skip_phase(void *ctx, const struct phase_row *row)
{
	const struct move *m = ctx;

	return row->id == MOVE_STORAGE && !m->storage;
}

static const struct phase_hooks source_hooks = {.enter = enter_phase, .skip = skip_phase};

static void move_thread(struct ferryd *d, struct job *j)
{
	struct move m = {.d = d, .j = j};
	int r;

	pthread_mutex_lock(&d->lock);
	m.vm = vm_find(d, j->vm);
	if (!m.vm || m.vm->incoming || strcmp(vm_state(m.vm), "running") != 0) {
		pthread_mutex_unlock(&d->lock);
		job_fail(d, j, "VM %s is not running on %s (state %s): start it, or move it while off by copying", j->vm,
			 d->host_name, m.vm ? vm_state(m.vm) : "unknown");
		return;
	}
	m.vm->busy = "moving";
	m.storage = j->storage;
	m.keep_disks = arg_bool(j->args, "keep-source-disks", false);
	m.tls = settings_bool(d->settings, "encryption");
	snprintf(m.perf, sizeof(m.perf), "%s", settings_str(d->settings, "performance"));
	m.channels = (int)settings_int(d->settings, "channels");
	m.stall_ms = (uint64_t)settings_int(d->settings, "stall-timeout") * 1000;
	m.ndisks = json_array_size(json_object_get(m.vm->config, "disks"));
	if (!settings_bool(d->settings, "migration-enabled")) {
		m.vm->busy = NULL;
		pthread_mutex_unlock(&d->lock);
		job_fail(d, j, "live migrations are disabled on %s: run 'ferry migration enable'", d->host_name);
		return;
	}
	pthread_mutex_unlock(&d->lock);

	r = phases_run(source_phases, ARRAY_SIZE(source_phases), &source_hooks, &m, NULL);
	if (r < 0) {
		if (r == -ECANCELED)
			snprintf(m.err, sizeof(m.err), "cancelled by the administrator");
		if (!m.outcome_unknown)
			move_record_remove(m.vm->rundir);
		pthread_mutex_lock(&d->lock);
		m.vm->busy = NULL;
		pthread_mutex_unlock(&d->lock);
		job_fail(d, j, "%s", m.err);
	} else {
		job_set_stage(d, j, STAGE_COMPLETED);
	}
	if (m.pskdir[0])
		remove_tree(m.pskdir);
	move_peer_close(&m.peer);
	json_decref(m.dest_cfg);
	/* the credential is freed by job.c when this returns: one hop, one move */
}

static json_t *op_move(struct request *req)
{
	struct ferryd *d = req->d;
	const char *name, *dest = arg_str(req->args, "dest");
	json_t *e = NULL, *r;
	struct job *j;
	struct vm *vm;

	if (arg_name(req->args, "name", &name, &e) < 0)
		return e;
	if (!dest || !*dest || strlen(dest) > 253)
		return reply_error("bad_request", NULL, "missing destination host");
	if ((e = move_storage_args_check(req->args)))
		return e;
	pthread_mutex_lock(&d->lock);
	vm = vm_find(d, name);
	if (!vm || vm->incoming)
		e = reply_error("not_found", "see 'ferry vm list'", "no VM named '%s' on %s", name, d->host_name);
	else if (vm->busy)
		e = reply_error("busy", NULL, "VM '%s' is %s", name, vm->busy);
	else
		for (struct job *o = d->jobs; o; o = o->next)
			if (!strcmp(o->vm, name) && (o->stage == STAGE_QUEUED))
				e = reply_error("busy", "see 'ferry job list'", "VM '%s' already waits in job %llu", name,
						(unsigned long long)o->id);
	pthread_mutex_unlock(&d->lock);
	if (e)
		return e;
	if (job_start(d, "move", name, dest, true, arg_bool(req->args, "include-storage", false), req->args,
		      req->caller, move_thread, &j) < 0)
		return reply_error("failed", NULL, "cannot start the move");
	pthread_mutex_lock(&d->lock);
	r = reply_ok(job_json(j));
	pthread_mutex_unlock(&d->lock);
	return r;
}

extern json_t *op_move_storage(struct request *req);

const struct op_def move_ops[] = {
	{"vm.move", op_move, OP_USER},
	{"vm.compare", op_compare, OP_USER},
	{"vm.move-storage", op_move_storage, OP_USER},
	{NULL, NULL, 0},
};

/* After a ferryd restart: a move this host was making died with the old
 * process, but QEMU may still be migrating or paused at the switchover.
 * What happens follows the phase it had reached (move_recovery_for): walk
 * the table back from it, so the guest runs here (the destination drops its
 * planned VM when the old connection closes, and never resumes it: it waits
 * for migrate.finish); keep it paused when the destination may have resumed
 * it; or finish the cleanup when it runs there. Caller holds d->lock;
 * returns true when vm was removed. */
bool move_recover(struct ferryd *d, struct vm *vm)
{
	struct move m = {.d = d, .vm = vm, .tls = true, .migrating = true};
	const char *name = vmconfig_name(vm->config);
	struct move_record rec;
	int i;

	if (move_record_read(vm->rundir, &rec) < 0)
		return false;
	m.storage = rec.storage;
	m.ndisks = json_array_size(json_object_get(vm->config, "disks"));
	switch (move_recovery_for(rec.phase)) {
	case RECOVER_KEEP_PAUSED:
		log_err("VM %s: ferryd stopped while %s was resuming it; it is paused here. If it runs on %s, "
			"remove it here (ferry vm kill %s; ferry vm delete %s --keep-disks); if not, resume it with "
			"'ferry vm start %s --force'", name, rec.dest, rec.dest, name, name, name);
		return false;
	case RECOVER_FINISH_CLEANUP:
		log_warn("VM %s: ferryd stopped after %s had resumed it: removing the copy here", name, rec.dest);
		qemu_stop(d, vm, 0, true);
		vm_remove(d, vm, rec.storage && !rec.keep_disks);
		return true;
	case RECOVER_ROLL_BACK:
		break;
	}
	log_warn("VM %s: its move to %s was interrupted by a ferryd restart in its %s phase: it stays here", name,
		 rec.dest, move_phase_name(rec.phase));
	i = phases_index(source_phases, ARRAY_SIZE(source_phases), rec.phase);
	if (i >= 0)
		phases_undo(source_phases, (size_t)i, &source_hooks, &m);
	/* the old process never removed its one-time key (spent by now) */
	if (psk_dirs_remove(vm->rundir) < 0)
		log_warn("VM %s: cannot remove the one-time key directories in %s", name, vm->rundir);
	move_record_remove(vm->rundir);
	return false;
}
