/* The stall ladder: what a move does when the guest dirties its memory
 * faster than the migration moves it, so that pre-copy never ends. A pure
 * decision (no QEMU, no clock, no lock): the memory loop feeds it one look
 * at the migration at a time and applies the rung it returns
 * (move_ladder.c). Each rung is a row of a table in stall_ladder.c: its
 * name, when it applies, what it does, what it says. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A stall: the memory left at the start of a pass has not shrunk by
 * LADDER_SHRINK_PERCENT over LADDER_STALL_PASSES passes. Two passes: one
 * pass alone is noise (a pass that began just after a burst of writes);
 * more would leave max-passes (10 by default) too few passes for the rungs
 * to show an effect, since each rung waits as many passes again. */
#define LADDER_STALL_PASSES 2
#define LADDER_SHRINK_PERCENT 10
/* QEMU's downtime-limit counts only the memory left, sent at QEMU's own
 * estimate of the bandwidth; the device state, the disks' last writes and
 * the hand-over to the destination (save, resume) come on top. The limit
 * given to QEMU stays within this share of the budget. */
#define LADDER_BUDGET_SHARE_PERCENT 75
/* on-stall force (Hyper-V's behaviour): QEMU's largest downtime-limit, so
 * that the next pass ends pre-copy whatever the pause. */
#define LADDER_FORCED_LIMIT_MS 2000000
/* The throttle rung: QEMU raises the vCPU throttle by this much each time
 * it sees the guest dirty more than half of what was sent, twice, up to
 * LADDER_THROTTLE_MAX percent of the vCPUs' time. */
#define LADDER_THROTTLE_INCREMENT 20
#define LADDER_THROTTLE_MAX 99
/* Before that rung the throttle is armed but held at this (QEMU's minimum):
 * auto-converge can only be set before the migration starts (below). */
#define LADDER_THROTTLE_DORMANT 1

/* The on-stall setting. */
enum ladder_policy {
	LADDER_POLICY_LADDER,  /* the rungs below, within max-downtime-ms */
	LADDER_POLICY_CANCEL,  /* a stall, or max-passes, cancels the move */
	LADDER_POLICY_FORCE,   /* after max-passes, switch over whatever the pause */
};

enum ladder_rung {
	RUNG_NONE,
	RUNG_CHANNELS,    /* more streams or compression: QEMU 7.2 cannot, said once */
	RUNG_DOWNTIME,    /* downtime-limit doubled, up to the budget's share */
	RUNG_THROTTLE,    /* the vCPU throttle woken (auto-converge) */
	RUNG_SWITCHOVER,  /* the predicted pause fits: downtime-limit = the budget's share */
	RUNG_CANCEL,      /* past max-passes and no fit: the guest stays on the source */
	RUNG_FORCE,       /* on-stall force, past max-passes: downtime-limit unbounded */
};

struct ladder_settings {
	enum ladder_policy policy;
	int64_t downtime_ms;       /* downtime-ms: QEMU's downtime-limit at the start */
	int64_t budget_ms;         /* max-downtime-ms: the longest pause the user accepts */
	int64_t max_passes;        /* max-passes: the last rung's trigger */
	const char *performance;   /* the performance option in use, for the words */
};

/* One look at the migration (query-migrate). */
struct ladder_sample {
	int pass;                  /* ram.dirty-sync-count */
	uint64_t remaining;        /* ram.remaining, bytes */
	double mbps;               /* ram.mbps, Mbit/s */
	double dirty_bytes_per_s;  /* ram.dirty-pages-rate x ram.page-size; 0 unknown */
};

struct ladder {
	struct ladder_settings set;
	int64_t limit_ms;          /* the downtime-limit QEMU has */
	int last_pass;
	/* the memory left at the start of each pass since the last rung acted */
	uint64_t starts[LADDER_STALL_PASSES + 1];
	size_t nstarts;
	uint64_t last_start;       /* the memory left at the latest pass's start */
	double mbps, dirty;        /* the latest non-zero rates */
	bool stalled, channels_said, throttled, ended;
};

/* The ladder before the migration starts: l->limit_ms is the downtime-limit
 * to start with (downtime-ms, within the budget's share unless force). */
void ladder_init(struct ladder *l, const struct ladder_settings *set);
/* Whether the migration must start with auto-converge armed (dormant). */
bool ladder_arms_throttle(const struct ladder_settings *set);
/* The largest downtime-limit the ladder gives QEMU within budget_ms. */
int64_t ladder_limit_ceiling(int64_t budget_ms);

struct ladder_step {
	enum ladder_rung rung;
	int pass;
	int64_t limit_ms;          /* DOWNTIME, SWITCHOVER, FORCE: the new downtime-limit */
	char reason[512];          /* why, and what is done, in words */
};

/* Feeds one look at the migration; returns the rung to take now (and fills
 * *ret), or RUNG_NONE. At most one rung per call; the state moves on as if
 * the rung were taken. */
enum ladder_rung ladder_next(struct ladder *l, const struct ladder_sample *s, struct ladder_step *ret);
const char *ladder_rung_name(enum ladder_rung rung);
/* "ladder", "cancel", "force": -1 if unknown. */
int ladder_policy_parse(const char *text);
