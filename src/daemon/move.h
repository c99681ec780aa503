/* The source half of a move, shared by its files: move_source.c (the
 * phase table, its stops and undos, restart recovery), move_stages.c (the
 * runs of the phases), move_connect.c (the
 * connection to the destination: credential, addresses, calls, the answer
 * to a lost finish) and move_plan.c (what is asked of the destination: its
 * configuration, disk sizes, vm.compare). */
#pragma once
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferryd.h"
#include "move_endpoint.h"
#include "partial.h"
#include "phases.h"
#include "stall_ladder.h"
#include "vmconfig.h"

/* The guest is paused at pre-switchover until the memory loop, polling at
 * this interval, notices: every millisecond of it is downtime. */
#define MOVE_MEMORY_POLL_MS 25
#define MIG_JOBS "mig" /* mirrors mig-mirror<i> to NBD nodes mig-tgt<i> (blockjob.h) */

struct peer {
	struct conn conn;
	struct gss_session *sess;
	bool open;
};

struct move {
	struct ferryd *d;
	struct job *j;
	struct vm *vm;
	json_t *dest_cfg;
	bool storage, keep_disks, tls, migrating, prepared;
	struct move_endpoint ep;  /* where QEMU sends the guest: checked, built here */
	bool outcome_unknown;   /* the destination may be running the guest: never resume it here */
	size_t ndisks;
	char perf[16];
	char auth[16];          /* the auth setting, copied under the lock (review L8) */
	int channels;
	struct peer peer;
	char pskdir[PATH_MAX + 16];
	char err[2048];
	/* the prediction (move_predict.c): QEMU measures the dirty rate from
	 * the start of setup, while the destination is asked and prepared */
	bool dirty_measuring;
	char predict_why[512];  /* what could not be measured, so far */
	/* stall detection: the last time the byte counters moved */
	uint64_t progress_bytes, progress_ms, stall_ms;
	/* the guest's pause, source stop to destination resume (move_pause.c):
	 * the destination's clock minus this one's, known within +- uncertainty */
	bool clock_known;
	int64_t clock_offset_ms, clock_uncertainty_ms;
	int64_t stop_seen_ms;   /* wall clock when the memory loop saw pre-switchover */
	int64_t stop_ms;        /* when QEMU stopped the guest (its STOP event), or stop_seen_ms */
	int64_t stop_late_ms;   /* how late stop_ms may be: the poll interval without the event */
	bool gave_up;           /* the stall ladder cancelled the move: m->err says why */
	/* the resumable disk copy (move_resume.h): on when the destination
	 * keeps partial copies; per disk, what the source holds and did */
	bool resumable;
	char partial_token[PARTIAL_TOKEN_HEX + 1];  /* the destination's name for this move's copy */
	char resume_name[VM_MAX_DISKS][48];          /* the disk's resume bitmap, or "" */
	bool reuse[VM_MAX_DISKS];                    /* the destination kept a copy to build on */
	char base_node[VM_MAX_DISKS][64];
	uint64_t disk_size[VM_MAX_DISKS], to_copy[VM_MAX_DISKS];
	bool overlaid[VM_MAX_DISKS], snapped[VM_MAX_DISKS], backed_up[VM_MAX_DISKS];
	/* --keep-source-disks: the disks stay here under kept_token for the
	 * move back when the destination records its writes (kept_recorded) */
	char kept_token[PARTIAL_TOKEN_HEX + 1];
	bool kept_recorded;
};

/* move_source.c */
/* The source's table, read-only (tests, documentation); row i is phase i
 * (enum move_phase). */
const struct phase_row *source_phase_table(size_t *ret_count);
/* What a move interrupted by a restart can leave at the source: the NBD
 * target nodes and mirrors in QEMU, its TLS object, the one-time key
 * directories. Removed before a forced resume and before a new move. */
void move_drop_leftovers(struct vm *vm);
/* How long a move waits for QEMU to end an earlier, cancelled migration. */
#define MIGRATION_IDLE_WAIT_MS 30000
/* Waits up to timeout_ms, yanking its sockets every second, until QEMU has
 * no migration under way. 0, or -EBUSY with m->err. */
int move_wait_migration_idle(struct move *m, int timeout_ms);

/* move_stages.c: the run of each phase (struct move * as ctx); 0, or
 * -errno with m->err saying why (-ECANCELED: a job cancel). */
int move_stage_setup(void *ctx);
int move_stage_storage(void *ctx);
int move_stage_memory(void *ctx);
int move_stage_switchover(void *ctx);
int move_stage_finish(void *ctx);
int move_stage_cleanup(void *ctx);

/* move_connect.c */
/* Fails the move when the destination went away or nothing moved for
 * stall-timeout seconds (a cut migration network stalls QEMU, it does not fail it). */
int move_check_alive(struct move *m);
void move_peer_close(struct peer *p);
/* One request to the destination (args consumed); a refusal becomes m->err
 * with the peer's words and -EPERM. */
int move_peer_call(struct move *m, const char *op, json_t *args, json_t **ret);
/* Connects m->peer to the destination's best migration address. */
int move_connect_dest(struct move *m);
/* The answer to migrate.finish was lost: 0 if the guest runs there, -EIO
 * (and m->outcome_unknown when nobody can tell) otherwise. */
int move_finish_outcome(struct move *m);

/* move_predict.c */
/* The prediction of moving the VM to the destination m->peer is connected
 * to: the dirty rate measured on vm's QEMU (vm NULL: not measured), the
 * link probed on that connection, the disks' allocated bytes (sizes, as
 * move_disk_sizes made them) when m->storage; then the model (predict.h).
 * Always an object; what could not be measured is named in "unavailable".
 * Takes the probe's second, the dirty rate measured meanwhile. */
json_t *move_predict(struct move *m, struct vm *vm, json_t *sizes);
/* A move's setup: QEMU starts measuring the dirty rate now; move_predict
 * at the end of setup reads it (and probes the link only briefly), so the
 * measurement overlaps the calls to the destination. */
void move_predict_begin(struct move *m);
/* A completed move: what it showed (the rate QEMU's stream reached, the
 * switchover's cost) for the next prediction to the same host. */
void move_predict_learn(struct move *m);
/* The same for vm.compare: the VM named is measured when it runs and
 * nothing else owns it. */
json_t *move_predict_compare(struct move *m, const char *name, json_t *sizes);
/* move_ladder.c: the stall ladder (stall_ladder.h) applied to the move */
/* The ladder from the host settings (on-stall, downtime-ms,
 * max-downtime-ms, max-passes). */
void move_ladder_init(struct move *m, struct ladder *l);
/* One look at the migration: the rung the ladder takes, done over QMP and
 * recorded in the job. 0, or -errno with m->err; -ECANCELED with
 * m->gave_up when the ladder cancelled the move. */
int move_ladder_step(struct move *m, struct ladder *l, const struct ladder_sample *s);

/* move_pause.c: the guest's pause as the two hosts' clocks see it */
/* The destination's clock from the round trip of a request that began at
 * t_send and was answered at t_recv (this host's wall clock), dest_clock_ms
 * in the answer (0: the destination does not say). */
void move_clock_sample(struct move *m, int64_t t_send, int64_t t_recv, int64_t dest_clock_ms);
/* After the switchover: when QEMU stopped the guest, from its STOP event. */
void move_note_stop(struct move *m);
/* From migrate.finish's reply: pause-ms in the job, when both ends are known. */
void move_note_resume(struct move *m, json_t *finish_reply);

/* move_plan.c */
/* The VM's configuration as the destination will hold it (paths rewritten). */
json_t *move_dest_config(struct move *m);
/* migrate.check's arguments (takes sizes). */
json_t *move_check_request(struct move *m, json_t *sizes);
/* Each disk's size there and the room it needs (and a fingerprint without
 * storage); NULL with m->err. */
json_t *move_disk_sizes(struct move *m);
void move_join_problems(json_t *problems, char *out, size_t len);
/* --storage-path and --disk without --include-storage: refused (review M2). */
json_t *move_storage_args_check(json_t *args);
json_t *op_compare(struct request *req);
