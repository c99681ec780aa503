/* Disk copies kept for the next move of a VM (Issue: resumable storage
 * copy), of two kinds, each under a token that the host now running the VM
 * names a persistent dirty bitmap after (move_resume.h):
 *   - a partial copy: a move with storage failed here, at the destination,
 *     after its disk copy began; this host keeps the files it made. The
 *     next move of the same VM from the same caller reuses them.
 *   - source disks: a move from here with --keep-source-disks completed;
 *     this host keeps a record of its disks as the guest left them. The
 *     move back reuses them. They are the user's files: this record never
 *     deletes them.
 * Either way the moving host sends only what its bitmap marks, and only
 * while partial-copy-retention lasts. One record per VM id:
 * STATE_DIR/partials/ID.json. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ferryd.h"
#include "peer_msg.h"

#define PARTIAL_TOKEN_HEX PEER_RESUME_TOKEN_HEX

/* The setting partial-copy-retention, in seconds (0: off). Takes d->lock. */
int64_t partial_retention_s(struct ferryd *d);
/* A new random token (PARTIAL_TOKEN_HEX hex digits and a NUL). */
void partial_new_token(char out[PARTIAL_TOKEN_HEX + 1]);

enum partial_kind { PARTIAL_COPY, PARTIAL_SOURCE_DISKS };

/* Keeps the files of created (the "_created-disks" records: path, dev, ino)
 * for retention_s seconds under token. source: for a partial copy the
 * caller that may reuse it (partial_claim), for source disks the host the
 * VM went to (for the logs). 0 or -errno. */
int partial_keep(struct ferryd *d, enum partial_kind kind, const char *vm_id, const char *vm_name, const char *source,
		 const char *token, const json_t *created, int64_t retention_s);

/* The kept copy of vm_id that a move from source with tokens (one per disk,
 * JSON strings or null, as the source sent them) to paths (the planned
 * disks' paths, in order) can reuse: a new array of booleans, one per disk,
 * true where the file is the very one kept, at the same path and under the
 * token the source names; NULL when nothing can be reused. *ret_created
 * gets the reused files' records. The record goes either way; the files
 * of a partial copy that are not reused go with it (the new move makes its
 * own), source disks stay. A file a VM of this host uses is never reused. */
json_t *partial_claim(struct ferryd *d, const char *vm_id, const char *source, const json_t *tokens,
		      const json_t *paths, json_t **ret_created);

/* What partial_claim would reuse, for migrate.check: a new array of
 * booleans, one per path, all false when nothing is kept. Changes nothing:
 * no record goes, no file, not even one past its time. */
json_t *partial_reusable(struct ferryd *d, const char *vm_id, const char *source, const json_t *tokens,
			 const json_t *paths);

/* Whether the file at path, there already, is a kept copy of vm_id that a
 * move may write to: any partial copy's file (partial_claim deletes it if
 * not reused), a source disk only under token (when tokens_known: the
 * caller sent its tokens; vm compare does not when it cannot read them). */
bool partial_holds(struct ferryd *d, const char *vm_id, const char *path, bool tokens_known, const char *token);
/* The record of vm_id goes; its files stay (they are the VM's disks now). */
void partial_forget(struct ferryd *d, const char *vm_id);
/* Kept copies past their time go: records, and a partial copy's files. */
void partial_sweep(struct ferryd *d);
