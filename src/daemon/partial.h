/* Partial disk copies kept at the destination (Issue: resumable storage
 * copy). When a move with storage fails after its disk copy began and this
 * host's partial-copy-retention is not 0, the destination keeps the disk
 * files it made, under a token the source also names its dirty bitmap after
 * (move_resume.h). The next move of the same VM from the same host to the
 * same paths reuses them: the source sends only what the bitmap marks.
 * One record per VM id: STATE_DIR/partials/ID.json. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ferryd.h"
#include "peer_msg.h"

#define PARTIAL_TOKEN_HEX PEER_RESUME_TOKEN_HEX

/* A new random token (PARTIAL_TOKEN_HEX hex digits and a NUL). */
void partial_new_token(char out[PARTIAL_TOKEN_HEX + 1]);

/* Keeps the files of created (the "_created-disks" records: path, dev, ino)
 * for retention_s seconds under token. 0 or -errno. */
int partial_keep(struct ferryd *d, const char *vm_id, const char *vm_name, const char *source, const char *token,
		 const json_t *created, int64_t retention_s);

/* The kept copy of vm_id that a move from source with tokens (one per disk,
 * JSON strings or null, as the source sent them) to paths (the planned
 * disks' paths, in order) can reuse: a new array of booleans, one per disk,
 * true where the file is the very one kept, at the same path and under the
 * token the source names; NULL when nothing can be reused. *ret_created
 * gets the reused files' records. A kept copy that does not fit (other
 * paths, other source, expired) is deleted. */
json_t *partial_claim(struct ferryd *d, const char *vm_id, const char *source, const json_t *tokens,
		      const json_t *paths, json_t **ret_created);

/* Whether a kept copy of vm_id has a file at path. */
bool partial_holds(struct ferryd *d, const char *vm_id, const char *path);
/* The record of vm_id goes; its files stay (they are the VM's disks now). */
void partial_forget(struct ferryd *d, const char *vm_id);
/* Kept copies past their time go, files and records. */
void partial_sweep(struct ferryd *d);
