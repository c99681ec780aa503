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
	/* link_bps is a learned stream's: bytes over the whole time from the
	 * first byte to the guest running there, the switchover's cost
	 * included, so the total does not add it again */
	bool rate_includes_switchover;
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

/* The guest's RAM mapping in the QEMU process, from the text of its
 * /proc/PID/smaps: the private writable anonymous mapping of ram_bytes (up
 * to 4 MiB more); its Rss is what the guest touched. */
struct predict_ram {
	uint64_t start;    /* its address in QEMU */
	uint64_t size;     /* the mapping's size */
	uint64_t resident; /* Rss, at most ram_bytes */
};

/* 0, or -ENOENT when no such mapping is there. */
int predict_guest_ram(const char *smaps, size_t len, uint64_t ram_bytes, struct predict_ram *ret);

/* The same, only its resident bytes. Pages never touched are zero and cost
 * QEMU almost nothing to send. */
int predict_guest_resident(const char *smaps, size_t len, uint64_t ram_bytes, uint64_t *ret_bytes);

/* Whether a page holds only zeros: QEMU sends it as a flag, not its bytes. */
bool predict_page_zero(const uint8_t *page, size_t len);

/* What the first pass puts on the stream, from a sample of the guest's
 * pages: ram_bytes x nonzero / sampled (all of it when nothing was sampled). */
uint64_t predict_nonzero_bytes(uint64_t ram_bytes, uint32_t sampled, uint32_t nonzero);

/* What the last completed move to a host showed (move_predict.c keeps one
 * per destination): the rate QEMU's stream really reached (bytes QEMU
 * counted sent, over the time it streamed with the guest running), the
 * probe's rate then, and the switchover's cost beyond the model. */
struct predict_learned {
	double stream_bps;
	double probe_bps; /* 0: unknown */
	double switchover_ms;
};

/* From a completed move: bytes sent (memory as QEMU counts it, and disks),
 * seconds from the first byte to the guest running there, QEMU's downtime,
 * what the model had given for sending the last dirty set, and the probe's
 * rate of that move (0 when unknown). The stream's rate is bytes over all
 * of those seconds: QEMU sends during the pause too, as much as it decides
 * fits, so a rate over the time outside the pause would count those bytes
 * in too little time. -EINVAL when the numbers cannot be learned from. */
int predict_learn(uint64_t bytes, double seconds, double downtime_ms, double model_last_set_ms, double probe_bps,
		  struct predict_learned *ret);

/* The rate the model uses, from the probe's and what was learned (NULL:
 * nothing). A probe measures the network, not how fast QEMU fills it
 * (under emulation, much slower), and the two do not overlap: a QEMU short
 * of CPU leaves the link idle while it prepares pages, a token bucket does
 * not save up for it. So 1/stream = 1/QEMU + 1/link: QEMU's own time per
 * byte is what the learned stream took beyond its probe's, and the rate is
 * 1 / (that + 1/probe now). A stream faster than its probe (compression:
 * QEMU counts the bytes before zstd) is scaled by how the link changed
 * since, probe now / probe then, never above itself. Without the probe of
 * then: the lower of the two. */
double predict_link_rate(double probe_bps, const struct predict_learned *learned);

/* The next entry from the one kept (NULL: none) and a move just learned
 * from: the mean of the two, which halves one move's noise on a busy host;
 * the new one alone when the link changed (probes apart by more than 2x). */
void predict_learn_merge(const struct predict_learned *old, const struct predict_learned *add,
			 struct predict_learned *ret);

/* QEMU's own rate when nothing is learned: the pace of one QEMU stream
 * with the network out of the way. On the development machine (QEMU 7.2,
 * TCG, 2 cores, a running 256 MiB guest) it was about 340 MB/s into a
 * QEMU over loopback TCP, where QEMU's sending alone ran at 0.9 to 1.9 GB/s
 * and the probe at 1.1 to 1.5 GiB/s: QEMU to QEMU over TCP with a guest
 * running sets the pace, which nothing cheap measures before a move (the
 * destination's QEMU waits for the one stream).
 * Rounded down: a first prediction had better err long than short. */
#define PREDICT_QEMU_DEFAULT_BPS (256.0 * 1048576)

/* Where the rate of a prediction comes from, best first. */
enum predict_source {
	PREDICT_LEARNED,    /* moves to this destination, this kind of stream */
	PREDICT_OTHER_HOST, /* moves from here to other destinations, this kind */
	PREDICT_DEFAULT,    /* nothing learned of this kind: PREDICT_QEMU_DEFAULT_BPS or the probe */
};

/* Its name in the prediction's JSON (rate-source). */
const char *predict_source_name(enum predict_source s);

struct predict_rate {
	double bps;
	double switchover_ms;          /* learned, 0 otherwise */
	bool includes_switchover;      /* predict_input.rate_includes_switchover */
	enum predict_source source;
};

/* The rate for a move, from the first of: what was learned for its
 * destination (same; NULL: nothing); else for other destinations from here
 * (others, n of them: the mean of what each gives with the probe now, as
 * QEMU's time per byte is this host's); else the lower of the default
 * QEMU's and the probe's, as for a stream learned without its probe (how
 * much of QEMU's time the link overlaps is what a learned stream tells). */
void predict_rate_choose(double probe_bps, const struct predict_learned *same, const struct predict_learned *others,
			 size_t n, struct predict_rate *ret);
