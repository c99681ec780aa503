/* A disk copy that can resume (the source's half; partial.h is the
 * destination's). When the destination keeps partial copies, a move with
 * storage copies each disk in two steps that tell, after a failure, exactly
 * what reached the destination:
 *   1. The guest's writes go to a new overlay (DISK.ferry-overlay,
 *      blockdev-snapshot); the disk itself stops changing. A backup job
 *      sends it (sync=full, or sync=bitmap with what a kept copy lacks),
 *      with bitmap-mode=always: if it stops, its bitmap holds what it did
 *      not send.
 *   2. A mirror with sync=top sends the overlay's writes, then follows the
 *      guest until the switchover, as a full mirror would.
 * A failed move folds the overlay back (active commit) and leaves on the
 * disk a persistent bitmap ferry-resume-TOKEN: what was not sent, plus
 * every write since. The destination keeps its files under the same token. */
#pragma once
#include <jansson.h>
#include <stdbool.h>

#include "blockjob.h"
#include "move.h"

#define OVERLAY_SUFFIX ".ferry-overlay"

/* The token of each disk's resume bitmap (a JSON string, or null where
 * there is none or QEMU marks it inconsistent), for migrate.check and
 * migrate.prepare. */
json_t *move_resume_tokens(struct move *m);
/* The same for vm.compare, whose m->vm is a copy of the configuration: read
 * from the VM named while it runs and nothing else owns it (marked
 * "measuring" meanwhile, as move_predict_compare does); NULL when it
 * cannot be read. m->disk_size and m->to_copy get per disk its virtual
 * size and the bytes its resume bitmap marks (all of it without one). */
json_t *move_resume_compare_tokens(struct move *m, const char *name);
/* The "partial" field of the destination's migrate.prepare reply, checked:
 * {"keep": bool, "token": 32 hex digits, "reuse": [bool per disk]}, a disk
 * reused only where this host sent a token. Absent: no resumable copy.
 * Sets m->resumable (when kept and every disk is qcow2), token, reuse.
 * 0, or -EPROTO with m->err. */
int move_resume_read_reply(struct move *m, const json_t *reply);
/* What the destination need not be sent again: of each disk it builds on
 * (m->reuse), the virtual size less what the resume bitmap marks
 * (m->disk_size, m->to_copy, as move_resume_tokens or the copy set them). */
uint64_t move_resume_reused_bytes(const struct move *m);
/* Step 1 for every disk, to the NBD nodes MIG_JOBS-tgt<i>, until every
 * backup ended (round: progress and the move's own reasons to stop). */
int move_resume_copy(struct move *m, blockjob_round_fn round);
/* After a failure: the backups stopped, the overlays folded back, and
 * where a backup had begun, the resume bitmap recorded. */
void move_resume_undo(struct move *m);
/* --keep-source-disks: the token under which this host keeps the disks
 * for the move back (migrate.finish's kept-copy-token), or NULL when it
 * keeps no record (partial-copy-retention 0, a disk not qcow2). */
const char *move_resume_offer_kept(struct move *m);
/* The destination records the guest's writes under m->kept_token, and
 * QEMU here has stopped: the disks are recorded as kept (partial.h). */
void move_resume_keep_source(struct move *m);
/* The destination of a move whose source keeps its disks under token (the
 * guest paused here, the copy complete): each disk gets the persistent
 * resume bitmap of that token, which records the guest's writes from now
 * on, for the move back (partial.h, source disks). All disks or none.
 * 0, or -errno with err. */
int move_resume_mark_kept(struct vm *vm, const char *token, char *err, size_t len);
/* Overlays a stopped move left in a running QEMU (a restarted ferryd):
 * folded back, without a resume bitmap. */
void move_resume_fold_running(struct vm *vm);
/* The guest runs elsewhere and QEMU here has stopped: each overlay file
 * goes, folded into its disk first when the disks are kept. */
void move_resume_drop_overlays(struct vm *vm, bool keep_disks);
/* Before QEMU starts: an overlay a crash left next to disk path is folded
 * into it (qemu-img commit), so that no write of the guest is lost. */
int overlay_fold_offline(const char *path, char *err, size_t errlen);
