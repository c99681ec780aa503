/* What the prediction learned from completed moves (ferryd.h, learned[]),
 * kept in STATE_DIR/learned.json so that a restarted or upgraded ferryd
 * predicts its next move as well as the one before the restart. */
#pragma once
#include "ferryd.h"

/* Reads the file into d->learned; a missing, unreadable or malformed file
 * or entry leaves that part empty (the prediction then falls back, it does
 * not fail). Call with d->lock held. */
void learned_load(struct ferryd *d);
/* Writes d->learned (atomically); a failure is logged, nothing else. Call
 * with d->lock held. */
void learned_save(struct ferryd *d);
