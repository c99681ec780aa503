/* QEMU block jobs of a move: the disk mirrors of a live move ("mig-") and of
 * a storage move ("ms-"). Job i of a family is PREFIX-mirror<i> and writes
 * to the node PREFIX-tgt<i>. One polling loop serves every wait. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferryd.h"

/* A full copy reaches sync within this, or the move gives up. */
#define BLOCKJOB_SYNC_TIMEOUT_MS (60 * 60 * 1000)

struct blockjob_progress {
	size_t found;        /* jobs of the family QEMU still has */
	size_t ready;        /* of which in sync (a mirror's "ready") */
	uint64_t total, remaining;  /* bytes, summed */
	char error[512];     /* a job that failed or stopped by itself, else "" */
};

enum blockjob_until {
	BLOCKJOB_READY, /* every job is in sync; one that concludes is a failure */
	BLOCKJOB_GONE,  /* every job concluded (and dismissed here) without error */
};

/* Called each round with the progress; a negative return ends the wait
 * with it (cancel, a peer gone, ...). May be NULL. */
typedef int (*blockjob_round_fn)(void *ctx, const struct blockjob_progress *p);

/* The QEMU node currently backing the VM's disk i (vd<i>; after a storage
 * move it is not disk<i>). */
int blockjob_disk_node(struct vm *vm, size_t i, char *out, size_t len, char *err, size_t errlen);
/* blockdev-mirror of node to PREFIX-tgt<i>, job PREFIX-mirror<i>; sync
 * "full", or "top" (only what node itself holds: move_resume.h). */
int blockjob_mirror_start(struct vm *vm, const char *prefix, size_t i, const char *node, const char *sync, char *err,
			  size_t errlen);
/* block-job-complete (pivot to the target) or block-job-cancel (a ready
 * mirror then completes without a pivot) for jobs 0..n-1. */
int blockjob_finish_all(struct vm *vm, const char *prefix, size_t n, bool pivot, char *err, size_t errlen);
/* One look at n running jobs: their progress, or -EIO with err when one
 * failed, stopped by itself or is gone. */
int blockjob_check(struct vm *vm, const char *prefix, size_t n, struct blockjob_progress *ret, char *err,
		   size_t errlen);
/* Polls every poll_ms until the n jobs of the family reach until, a job
 * fails (-EIO, err says why), round() says stop, or deadline_ms
 * (now_ms() clock) passes (-ETIMEDOUT). */
int blockjob_wait(struct vm *vm, const char *prefix, size_t n, enum blockjob_until until, uint64_t deadline_ms,
		  unsigned poll_ms, blockjob_round_fn round, void *ctx, char *err, size_t errlen);
/* The same for jobs PREFIX-KIND<i> of another kind ("backup", "commit"). */
int blockjob_wait_kind(struct vm *vm, const char *prefix, const char *kind, size_t n, enum blockjob_until until,
		       uint64_t deadline_ms, unsigned poll_ms, blockjob_round_fn round, void *ctx, char *err,
		       size_t errlen);
/* Force-cancels jobs PREFIX-KIND<i>, i < n, and waits up to wait_ms for them
 * to go (dismissing them), errors ignored. */
void blockjob_cancel_kind(struct vm *vm, const char *prefix, const char *kind, size_t n, unsigned wait_ms);
/* Cleanup, errors ignored: force-cancels jobs 0..n-1, waits up to wait_ms for
 * them to go (dismissing), and deletes their target nodes. */
void blockjob_abandon(struct vm *vm, const char *prefix, size_t n, unsigned wait_ms);
