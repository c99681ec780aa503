/* A job as a table of phases, each with its undo (libvirt's migration
 * phases, OpenBSD vmd's message table): run the rows in order; when one
 * fails, first stop() every row entered so far (urgent and non-blocking, such
 * as shutting a hung socket), then undo() them, newest first. A restart walks
 * back from the persisted phase the same way (phases_undo). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct phase_row {
	int id;                       /* what the enter hook persists */
	const char *name;
	int (*run)(void *ctx);        /* 0, or -errno with the reason in ctx */
	void (*stop)(void *ctx);      /* may be NULL */
	void (*undo)(void *ctx);      /* may be NULL */
	bool cancel;                  /* a job cancel is honoured when the row begins */
};

struct phase_hooks {
	/* Before a row runs: persist it, report it. A failure fails the row
	 * before it ran (it is still stopped and undone). May be NULL. */
	int (*enter)(void *ctx, const struct phase_row *row);
	/* Rows that do not apply (storage without disks to copy): not entered,
	 * not undone. May be NULL. */
	bool (*skip)(void *ctx, const struct phase_row *row);
};

/* Runs rows[0..n-1]. Returns 0, or the error of the row that failed, whose
 * index goes to *ret_failed (when not NULL), after the walk back. */
int phases_run(const struct phase_row *rows, size_t n, const struct phase_hooks *h, void *ctx, size_t *ret_failed);
/* The walk back alone, over rows[0..upto] (not skipped): stops, then undoes,
 * newest first. */
void phases_undo(const struct phase_row *rows, size_t upto, const struct phase_hooks *h, void *ctx);
/* The index of the row with that id, or -1. */
int phases_index(const struct phase_row *rows, size_t n, int id);
