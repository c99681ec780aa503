/* What a source persists of a move: its phase, before each phase runs
 * (RUN/vms/NAME/moving.json, written atomically), so that a restarted
 * ferryd knows what to do with the guest (move_recovery_for). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The phases of a move at the source, in order (move_source.c's table). */
enum move_phase {
	MOVE_SETUP,      /* connect, check, one-time key, prepare the destination */
	MOVE_STORAGE,    /* disk mirrors to the destination's NBD export */
	MOVE_MEMORY,     /* pre-copy of memory, until QEMU pauses before the switchover */
	MOVE_SWITCHOVER, /* guest paused: last disk writes and device state */
	MOVE_FINISH,     /* the destination is told to resume the guest */
	MOVE_CLEANUP,    /* the guest runs there: the source's copy goes */
};

const char *move_phase_name(enum move_phase p);
bool move_phase_parse(const char *name, enum move_phase *ret);

struct move_record {
	char dest[256];
	uint64_t job;
	enum move_phase phase;
	bool storage;      /* disks were copied: cleanup deletes the source's */
	bool keep_disks;   /* --keep-source-disks */
};

int move_record_write(const char *rundir, const struct move_record *rec);
/* 0 also when there was none. */
int move_record_remove(const char *rundir);
/* -ENOENT when there is none, -EBADMSG when it cannot be understood. */
int move_record_read(const char *rundir, struct move_record *ret);

/* What a restarted source does with a move it finds at a phase. */
enum move_recovery {
	RECOVER_ROLL_BACK,      /* the destination never resumes it: undo, the guest runs here */
	RECOVER_KEEP_PAUSED,    /* the destination may run it: keep it paused, the administrator decides */
	RECOVER_FINISH_CLEANUP, /* it runs there: remove the copy here */
};
enum move_recovery move_recovery_for(enum move_phase p);
