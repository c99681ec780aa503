/* How long a move will take, before it starts: the pre-copy model.
 *
 * The disks are copied first (storage stage), at the link's rate. Then the
 * memory: the first pass sends what the guest holds; while a pass of t
 * seconds runs, the guest dirties D x t bytes, which the next pass sends,
 * so each pass lasts D/B of the one before (a geometric series: about
 * M/(B-D) in all). Pre-copy stops when what is left fits B x downtime-limit
 * (QEMU then pauses the guest and sends it: the downtime), or when ferry
 * forces the switchover after max-passes passes. It converges only if
 * D < B and the last dirty set fits the downtime limit.
 *
 * Pure: no I/O, no locks; the numbers come from move_predict.c. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PREDICT_PASSES_MAX 100 /* the bound of the max-passes setting */

struct predict_input {
	uint64_t memory_bytes;     /* the guest's RAM: a dirty set never exceeds it */
	uint64_t first_pass_bytes; /* what the first pass sends (the RAM the guest ever touched); capped at memory_bytes */
	uint64_t disk_bytes;       /* disk data copied (0 without storage) */
	double dirty_bps;          /* bytes per second the guest dirties */
	double link_bps;           /* bytes per second the migration link carries */
	uint32_t downtime_limit_ms;
	uint32_t max_passes;       /* 1..PREDICT_PASSES_MAX */
	/* the switchover's own cost, beyond sending the last dirty set (device
	 * state, the hand-over): learned from the last move to the same host,
	 * 0 when unknown */
	double switchover_ms;
};

struct predict_result {
	double disk_seconds;       /* storage stage */
	double memory_seconds;     /* pre-copy passes, guest running */
	double downtime_ms;        /* the last dirty set, sent with the guest paused */
	double total_seconds;      /* disks + passes + downtime: first byte sent to the guest running there */
	uint32_t passes;           /* pre-copy passes with the guest running */
	uint64_t last_dirty_bytes; /* sent during the downtime */
	bool converges;            /* the downtime limit is met without forcing */
	char reason[320];          /* why, in plain words */
};

/* 0, or -EINVAL when the input cannot be modelled (no link throughput,
 * a negative or non-finite rate, max_passes out of range). */
int predict_run(const struct predict_input *in, struct predict_result *ret);

/* The guest RAM the QEMU process holds resident, from the text of its
 * /proc/PID/smaps: the private writable anonymous mapping of ram_bytes (up
 * to 4 MiB more) is the guest's RAM, and its Rss what the guest touched.
 * Pages never touched are zero and cost QEMU almost nothing to send.
 * 0, or -ENOENT when no such mapping is there. */
int predict_guest_resident(const char *smaps, size_t len, uint64_t ram_bytes, uint64_t *ret_bytes);

/* What the last completed move to a host showed (move_predict.c keeps one
 * per destination): the rate QEMU's stream really reached, and the
 * switchover's cost beyond the model. The next prediction to that host
 * takes the lower of the probed and the reached rate: a probe measures the
 * network, not how fast QEMU fills it (under emulation, much slower). */
struct predict_learned {
	double stream_bps;
	double switchover_ms;
};

/* From a completed move: bytes sent (memory and disks), seconds from the
 * first byte to the guest running there, QEMU's downtime, and what the
 * model had given for sending the last dirty set. -EINVAL when the numbers
 * cannot be learned from. */
int predict_learn(uint64_t bytes, double seconds, double downtime_ms, double model_last_set_ms,
		  struct predict_learned *ret);
