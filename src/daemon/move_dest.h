/* The destination half of a move, shared by its files: move_dest.c (the
 * migrate.* requests, the sweep after a restart) and move_dest_phases.c
 * (the table of the destination's phases, each with its undo). */
#pragma once
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "ferryd.h"
#include "peer_msg.h"
#include "phases.h"

/* The destination's phases, in order: migrate.prepare runs the first rows
 * (DEST_CHECK..DEST_EXPORT), migrate.finish the others. */
enum dest_phase {
	DEST_CHECK,    /* the request, the source's network, encryption, address and ports */
	DEST_RESERVE,  /* limits, every check again, the planned VM registered (its name) */
	DEST_RECORD,   /* planned.json, so that a restart finds what follows */
	DEST_DISKS,    /* new disk files, each recorded in planned.json first */
	DEST_QEMU,     /* QEMU started with -S -incoming defer */
	DEST_KEY,      /* the one-time key, tls-creds-psk */
	DEST_LISTEN,   /* migration parameters, migrate-incoming */
	DEST_EXPORT,   /* the NBD server and one export per disk */
	DEST_ARRIVED,  /* finish: the stream is in, the guest paused */
	DEST_SAVE,     /* the configuration saved: from here this host owns the VM */
	DEST_RESUME,   /* the guest resumed */
	DEST_RELEASE,  /* planned VM no more: key and marker gone, limits freed */
};
#define DEST_PREPARED DEST_EXPORT /* the last row of migrate.prepare */

/* One planned VM, as the rows see it: while a request runs, or rebuilt from
 * the VM (migrate.abort, a closed connection) or from planned.json (the
 * sweep after a restart) for the walk back. */
struct incoming {
	struct ferryd *d;
	struct request *req;       /* prepare and finish; NULL for a walk back alone */
	struct peer_prepare pp;    /* prepare: the checked request (cfg owned) */
	json_t *need;              /* prepare: the disk space to reserve */
	bool storage, tls;
	char addr[64], uri[128];
	int mig_port, nbd_port;
	bool paused, saved;        /* finish */
	int64_t resumed_ms;        /* finish: the wall clock when the guest resumed here */
	json_t *created, *storage_flag; /* finish: the private fields, out of the saved configuration */
	const char *kept_token;    /* finish: the source keeps its disks under it (peer_msg.h) */
	bool kept_recorded;        /* finish: this host records the guest's writes under kept_token */

	struct vm *vm;             /* the planned VM; NULL before it is registered and in the sweep */
	char name[64];             /* its name, once registered */
	/* the sweep: what a crash left in RUN/vms/NAME */
	bool swept;
	char rundir[PATH_MAX];
	json_t *marker;            /* planned.json */
	pid_t pid;                 /* from qemu.pid */
	size_t removed;            /* disk files the walk back removed */
	/* a partial copy (partial.h): kept if the move fails; the prepare reply's "partial" */
	json_t *partial;
	bool quit_clean;           /* the walk back ended QEMU with quit: its disks are whole */

	json_t *reply;             /* a refusal with its own code, or NULL: "failed" with err */
	char err[1024];
};

/* move_dest_phases.c */
/* The table, read-only (for tests and documentation). */
const struct phase_row *dest_phase_table(size_t *ret_count);
/* migrate.prepare's rows; on a failure they are walked back. 0 or -errno. */
int dest_prepare_run(struct incoming *in);
/* migrate.finish's rows; on a failure they are walked back (the VM is
 * still planned: the caller then removes it) and *ret_failed says which
 * row failed. 0 or -errno. */
int dest_finish_run(struct incoming *in, enum dest_phase *ret_failed);
/* migrate.check with resume-tokens: per disk of cfg, whether the move of
 * the caller would reuse a copy kept here (partial.h), nothing claimed:
 * a new array of booleans. */
json_t *dest_partial_reusable(struct ferryd *d, const struct request *req, json_t *cfg, const json_t *tokens);
/* Whether this host accepts migrations from addr; nets gets the networks
 * it accepts. */
bool dest_source_accepted(struct ferryd *d, const char *addr, char *nets, size_t len);
/* Removes a planned VM by its prepare rows, newest first: the walk of a
 * failed prepare, migrate.abort, a closed connection, a failed finish. */
void dest_abort(struct ferryd *d, const char *name);
/* The same walk over what a crash left of a planned VM with no registered
 * VM (in->swept, name, rundir, marker, pid set). */
void dest_undo_swept(struct incoming *in);
/* planned.json of a planned VM. */
int incoming_marker_write(struct vm *vm);
void incoming_marker_remove(struct vm *vm);
