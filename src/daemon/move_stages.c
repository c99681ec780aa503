/* The runs of the source's phases (the table is in move_source.c): what
 * each phase of a move does at the source, from connecting to the
 * destination to removing the copy here once the guest runs there. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockjob.h"
#include "ferryd.h"
#include "log.h"
#include "migrate_params.h"
#include "move.h"
#include "move_endpoint.h"
#include "move_resume.h"
#include "net.h"
#include "ops.h"
#include "peer_msg.h"
#include "settings.h"
#include "util.h"
#include "vm_qmp.h"

#define POLL_MS 200
/* The guest is paused while this runs: every millisecond of polling is downtime. */
#define SWITCHOVER_POLL_MS 5

int move_stage_setup(void *ctx)
{
	struct move *m = ctx;
	json_t *sizes, *res = NULL, *args, *problems;
	uint8_t key[32];
	char hex[65], identity[64], connected[64];
	int r;

	move_predict_begin(m);
	if ((r = move_connect_dest(m)) < 0)
		return r;
	m->dest_cfg = move_dest_config(m);
	if (!(sizes = move_disk_sizes(m)))
		return -EIO;
	args = move_check_request(m, json_incref(sizes));
	if (m->storage) /* a disk the destination kept for this VM may be written to under its token */
		json_object_set_new(args, "resume-tokens", move_resume_tokens(m));
	r = move_peer_call(m, OP_MIGRATE_CHECK, args, &res);
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
	/* what an earlier move left when its ferryd stopped (job ids start
	 * again at 1) goes first: the VM is ours now */
	move_drop_leftovers(m->vm);
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
	args = move_check_request(m, json_incref(sizes));
	json_object_set_new(args, "psk-identity", json_string(identity));
	json_object_set_new(args, "psk", json_string(hex));
	json_object_set_new(args, "encryption", json_boolean(m->tls));
	json_object_set_new(args, "performance", json_string(m->perf));
	json_object_set_new(args, "channels", json_integer(m->channels));
	if (m->storage)
		json_object_set_new(args, "resume-tokens", move_resume_tokens(m));
	explicit_bzero(hex, sizeof(hex));
	json_incref(args); /* to wipe the key in it after the call */
	/* A destination at its limits refuses ("busy", with its numbers): no
	 * waiting here, as two hosts moving to each other would wait forever. */
	r = move_peer_call(m, OP_MIGRATE_PREPARE, args, &res);
	json_wipe_string(args, "psk");
	json_decref(args);
	if (r < 0) {
		json_decref(sizes);
		return r;
	}
	/* prepared: from here on a failure aborts the planned VM there */
	m->prepared = true;
	r = socket_address(m->peer.conn.fd, true, connected, sizeof(connected));
	if (r < 0)
		snprintf(m->err, sizeof(m->err), "cannot read the destination's address: %s", strerror(-r));
	else
		r = move_endpoint_from_reply(res, connected, m->storage, &m->ep, m->err, sizeof(m->err));
	if (r == 0)
		r = move_resume_read_reply(m, res);
	json_decref(res);
	/* the dirty rate QEMU measured meanwhile, a short probe of the link,
	 * the model (move_predict.c), knowing what a kept copy spares */
	if (r == 0)
		job_set_prediction(m->d, m->j, move_predict(m, m->vm, sizes));
	json_decref(sizes);
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

#define EXPORT_CONNECT_MS 5000

static int reach_export(struct move *m)
{
	char why[256];
	int fd, r;

	if ((r = net_connect(m->ep.address, m->ep.nbd_port, EXPORT_CONNECT_MS, &fd, why, sizeof(why))) < 0) {
		snprintf(m->err, sizeof(m->err), "cannot reach %s's disk export at %s port %d over the migration "
			 "network: %s", m->j->dest, m->ep.address, m->ep.nbd_port, why);
		return r;
	}
	close(fd);
	return 0;
}

int move_stage_storage(void *ctx)
{
	struct move *m = ctx;
	const char *addr = m->ep.address;
	char port[16], why[512];
	int r;

	snprintf(port, sizeof(port), "%d", m->ep.nbd_port);
	/* QEMU's blockdev-add connects while it holds the monitor, for as long
	 * as TCP tries (two minutes on a cut network): reach the export first,
	 * within seconds */
	if ((r = reach_export(m)) < 0)
		return r;
	for (size_t i = 0; i < m->ndisks; i++) {
		char tgt[32], export[16];
		json_t *a;
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
	}
	/* a destination that keeps partial copies: the disks first, as they
	 * were, then the mirrors follow only the guest's writes since */
	if (m->resumable && (r = move_resume_copy(m, storage_round)) < 0)
		return r;
	for (size_t i = 0; i < m->ndisks; i++) {
		char node[64];
		if ((r = blockjob_disk_node(m->vm, i, node, sizeof(node), m->err, sizeof(m->err))) < 0)
			return r;
		if ((r = blockjob_mirror_start(m->vm, MIG_JOBS, i, node, m->resumable ? "top" : "full", m->err,
					       sizeof(m->err))) < 0)
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

/* The job's numbers from query-migrate, and the ladder's look at it. */
static void update_memory_progress(struct move *m, json_t *info, struct ladder_sample *ret)
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
	*ret = (struct ladder_sample){
		.pass = m->j->pass, .remaining = m->j->mem_remaining, .mbps = m->j->mbps,
		.dirty_bytes_per_s = json_number_value(json_object_get(ram, "dirty-pages-rate")) *
				     json_number_value(json_object_get(ram, "page-size")),
	};
	pthread_mutex_unlock(&m->d->lock);
}

/* One look at the migration, progress updated; a failed or cancelled
 * migration becomes an error that names what was being transferred. */
static int migration_status(struct move *m, const char *what, char *status, size_t len,
			    struct ladder_sample *ret_sample)
{
	struct ladder_sample sample;
	json_t *info = NULL;
	const char *st;
	int r;

	if ((r = vm_qmp(m->vm, "query-migrate", NULL, &info, m->err, sizeof(m->err))) < 0)
		return r;
	st = arg_str(info, "status") ? arg_str(info, "status") : "";
	update_memory_progress(m, info, ret_sample ? ret_sample : &sample);
	snprintf(status, len, "%s", st);
	if (!strcmp(st, "failed") || !strcmp(st, "cancelled")) {
		snprintf(m->err, sizeof(m->err), "%s %s: %s", what, st,
			 arg_str(info, "error-desc") ? arg_str(info, "error-desc") : "no reason given by QEMU");
		r = -EIO;
	}
	json_decref(info);
	return r;
}

/* Pre-copy until QEMU pauses before the switchover. A guest that dirties
 * memory faster than it moves climbs the stall ladder (stall_ladder.h). */
int move_stage_memory(void *ctx)
{
	struct move *m = ctx;
	struct ladder ladder;
	char failed[512];
	int r;

	move_ladder_init(m, &ladder);
	if ((r = migration_tune(m->vm, &(struct migration_tuning){.performance = m->perf, .channels = m->channels,
								  .tls = m->tls, .source = true,
								  .downtime_ms = ladder.limit_ms,
								  .arm_throttle = ladder_arms_throttle(&ladder.set)},
				m->err, sizeof(m->err))) < 0)
		return r;
	/* an earlier move's cancelled migration may still hold QEMU (a cut network) */
	if ((r = move_wait_migration_idle(m, MIGRATION_IDLE_WAIT_MS)) < 0)
		return r;
	vm_qmp_clear_events(m->vm); /* the STOP event that follows marks the pause's start */
	if ((r = qmpf(m->vm, m->err, sizeof(m->err), NULL, "migrate", "{s:s}", "uri", m->ep.uri)) < 0)
		return r;
	m->migrating = true;
	for (;;) {
		struct ladder_sample sample;
		char status[32];
		if ((r = migration_status(m, "the memory transfer", status, sizeof(status), &sample)) < 0)
			return r;
		if (!strcmp(status, "pre-switchover")) {
			m->stop_seen_ms = realtime_ms();
			break;
		}
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
		if (!strcmp(status, "active") && (r = move_ladder_step(m, &ladder, &sample)) < 0)
			return r;
		usleep(MOVE_MEMORY_POLL_MS * 1000);
	}
	return 0;
}

/* The guest is paused: finish the disk mirrors (no pivot: the source keeps
 * its own disks until the end), then let QEMU send the last state. */
int move_stage_switchover(void *ctx)
{
	struct move *m = ctx;
	int r;

	/* cancel of a ready mirror: it writes what is left, then ends without a
	 * pivot (the source keeps its own disks until the move is over) */
	if (m->storage) {
		char why[512] = "";
		if ((r = blockjob_finish_all(m->vm, MIG_JOBS, m->ndisks, false, m->err, sizeof(m->err))) < 0)
			return r;
		/* the guest is paused: a cut network must not hold it for the
		 * deadline, so the rounds check for stalls as storage's do */
		m->progress_ms = 0;
		r = blockjob_wait(m->vm, MIG_JOBS, m->ndisks, BLOCKJOB_GONE, now_ms() + 120000, SWITCHOVER_POLL_MS,
				  storage_round, m, why, sizeof(why));
		if (r < 0) {
			/* without a reason from the jobs, the round's (stall, cancel) is in m->err */
			if (why[0] || !m->err[0])
				snprintf(m->err, sizeof(m->err), "the last disk writes did not reach %s: %s", m->j->dest,
					 why[0] ? why : "no reason given");
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
		if ((r = migration_status(m, "the final state transfer", status, sizeof(status), NULL)) < 0)
			return r;
		if (!strcmp(status, "completed"))
			break;
		if ((r = move_check_alive(m)) < 0)
			return r;
		usleep(SWITCHOVER_POLL_MS * 1000);
	}
	m->migrating = false;
	move_note_stop(m);
	return 0;
}

/* The destination resumes the guest (the record says phase finish: a
 * restart here keeps the guest paused). The answer lost: ask again. */
int move_stage_finish(void *ctx)
{
	struct move *m = ctx;
	json_t *res = NULL, *args = json_pack("{s:s}", "name", m->j->vm);
	const char *kept = move_resume_offer_kept(m);
	char err[256];
	int r;

	if (kept)
		json_object_set_new(args, "kept-copy-token", json_string(kept));
	r = move_peer_call(m, OP_MIGRATE_FINISH, args, &res);
	if (r == 0) {
		move_note_resume(m, res);
		if (kept && peer_read_kept_recorded(res, &m->kept_recorded, err, sizeof(err)) < 0)
			log_warn("job %llu: %s", (unsigned long long)m->j->id, err);
	}
	json_decref(res);
	if (r < 0 && r != -EPERM)
		return move_finish_outcome(m);
	return r;
}

/* The guest runs on the destination: the copy here goes (its disks too
 * when they were copied, unless --keep-source-disks). */
int move_stage_cleanup(void *ctx)
{
	struct move *m = ctx;
	struct ferryd *d = m->d;
	bool delete_disks = m->storage && !m->keep_disks;

	qemu_stop(d, m->vm, 0, true);
	move_resume_drop_overlays(m->vm, !delete_disks);
	if (m->kept_recorded)
		move_resume_keep_source(m);
	pthread_mutex_lock(&d->lock);
	vm_remove(d, m->vm, delete_disks);
	pthread_mutex_unlock(&d->lock);
	m->vm = NULL;
	return 0;
}
