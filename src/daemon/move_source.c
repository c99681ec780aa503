/* The source half of a move (Move-VM): a table of phases (source_phases
 * below; phases.h runs it, move_stages.c has the runs), each with its stop
 * and undo, and the phase persisted before it runs (move_state.h). Until
 * the destination has the guest running, every failure walks the table
 * back: the guest runs here with all its writes, and the destination
 * removes whatever it prepared. A restarted ferryd walks back from the
 * persisted phase with the same rows (move_recover). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "blockjob.h"
#include "fault.h"
#include "ferryd.h"
#include "log.h"
#include "migrate_params.h"
#include "move.h"
#include "move_resume.h"
#include "move_state.h"
#include "ops.h"
#include "phases.h"
#include "settings.h"
#include "util.h"
#include "vm_qmp.h"
#include "vmconfig.h"

/* One instance at a time: yank refuses the whole list if one is unknown. */
static void yank(struct move *m, json_t *instance)
{
	json_t *a = json_pack("{s:[o]}", "instances", instance);
	char err[256];

	if (vm_qmp_oob(m->vm, "yank", a, err, sizeof(err)) < 0)
		log_debug("yank: %s", err);
	json_decref(a);
}

/* Whether QEMU has a migration under way: then it refuses another. */
static bool migration_busy(struct vm *vm, char *status, size_t len)
{
	json_t *info = NULL;
	char err[256];
	const char *s;
	bool busy;

	if (vm_qmp(vm, "query-migrate", NULL, &info, err, sizeof(err)) < 0) {
		json_decref(info);
		snprintf(status, len, "unknown");
		return false; /* QEMU is gone or deaf: nothing to wait for here */
	}
	s = arg_str(info, "status") ?: "none";
	snprintf(status, len, "%s", s);
	busy = strcmp(s, "none") && strcmp(s, "completed") && strcmp(s, "failed") && strcmp(s, "cancelled");
	json_decref(info);
	return busy;
}

int move_wait_migration_idle(struct move *m, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms, next_yank = 0;
	char status[32];

	while (migration_busy(m->vm, status, sizeof(status))) {
		if (now_ms() >= deadline) {
			snprintf(m->err, sizeof(m->err), "QEMU still has a migration of %s %s after %d s (its sockets "
				 "wait for the network): try again once 'ferry job list' shows no move of it",
				 vmconfig_name(m->vm->config), status, timeout_ms / 1000);
			return -EBUSY;
		}
		if (now_ms() >= next_yank) {
			yank(m, json_pack("{s:s}", "type", "migration"));
			next_yank = now_ms() + 1000;
		}
		usleep(50 * 1000);
	}
	return 0;
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

	/* the mirrors stop first: they hold the overlays the undo folds back */
	if (m->resumable) {
		blockjob_cancel_kind(m->vm, MIG_JOBS, "mirror", m->ndisks, 5000);
		move_resume_undo(m);
	}
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
	/* the guest runs, but QEMU ends a cancelled migration only when its
	 * threads let go of the sockets: the job ends after, so that the next
	 * move of the VM is not refused ("a migration process in progress") */
	if (m->migrating && !m->outcome_unknown && move_wait_migration_idle(m, MIGRATION_IDLE_WAIT_MS) < 0)
		log_warn("job %llu: %s", (unsigned long long)m->j->id, m->err);
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
		if (conn_call(&m->peer.conn, OP_MIGRATE_ABORT, a, &reply) < 0)
			log_warn("could not tell %s to drop %s; it removes it when the connection closes", m->j->dest,
				 m->j->vm);
		json_decref(a);
		json_decref(reply);
	}
}

/* The move at the source. Each row: the phase persisted before it runs,
 * what it does, what stops it at once and what undoes it after a failure
 * (newest first; a restart walks back from the persisted phase the same
 * way: move_recover), and whether job cancel is still honoured. */
static const struct phase_row source_phases[] = {
	/* id               name          run              stop          undo          cancel */
	{MOVE_SETUP,      "setup",      move_stage_setup,      NULL,         undo_setup,   true},
	{MOVE_STORAGE,    "storage",    move_stage_storage,    stop_storage, undo_storage, true},
	{MOVE_MEMORY,     "memory",     move_stage_memory,     stop_memory,  undo_memory,  true},
	/* cancel is refused from migrate-continue on (the run says so) */
	{MOVE_SWITCHOVER, "switchover", move_stage_switchover, NULL,         NULL,         true},
	{MOVE_FINISH,     "finish",     move_stage_finish,     NULL,         NULL,         false},
	{MOVE_CLEANUP,    "cleanup",    move_stage_cleanup,    NULL,         NULL,         false},
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

const struct phase_row *source_phase_table(size_t *ret_count)
{
	*ret_count = ARRAY_SIZE(source_phases);
	return source_phases;
}

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
		if (r == -ECANCELED && !m.gave_up)
			snprintf(m.err, sizeof(m.err), "cancelled by the administrator");
		if (!m.outcome_unknown)
			move_record_remove(m.vm->rundir);
		pthread_mutex_lock(&d->lock);
		m.vm->busy = NULL;
		pthread_mutex_unlock(&d->lock);
		job_fail(d, j, "%s", m.err);
	} else {
		move_predict_learn(&m);
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
	{OP_VM_MOVE, op_move, OP_USER},
	{OP_VM_COMPARE, op_compare, OP_USER},
	{OP_VM_MOVE_STORAGE, op_move_storage, OP_USER},
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

void move_drop_leftovers(struct vm *vm)
{
	blockjob_cancel_kind(vm, MIG_JOBS, "mirror", json_array_size(json_object_get(vm->config, "disks")), 2000);
	move_resume_fold_running(vm);
	blockjob_abandon(vm, MIG_JOBS, json_array_size(json_object_get(vm->config, "disks")), 2000);
	migration_untune(vm);
	if (psk_dirs_remove(vm->rundir) < 0)
		log_warn("VM %s: cannot remove the one-time key directories in %s", vmconfig_name(vm->config),
			 vm->rundir);
}
