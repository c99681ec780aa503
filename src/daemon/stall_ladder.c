/* The stall ladder's decision (stall_ladder.h): pure, one table row per rung.
 *
 * What QEMU 7.2 lets a running migration change, which shapes the rungs:
 * - multifd channels and compression are fixed when `migrate` starts (the
 *   channels are opened then; migrate-set-capabilities is refused while a
 *   migration runs): the first rung can only say so.
 * - downtime-limit is read again at every iteration: raising it lets QEMU
 *   end pre-copy with more memory left.
 * - auto-converge is a capability, refused once the migration runs. Armed
 *   at the start, QEMU throttles the vCPUs by itself whenever the guest
 *   dirties more than throttle-trigger-threshold (50%) of what was sent in
 *   a period, twice in a row, starting at cpu-throttle-initial and adding
 *   cpu-throttle-increment each time, up to max-cpu-throttle. Those three
 *   parameters can change at any time. So ferry arms it at the start with
 *   initial = increment = max = 1% (QEMU's minimum: a guest that stalls
 *   loses at most 1% of its vCPU time before the ladder decides), and the
 *   throttle rung raises max-cpu-throttle to 99% and the increment to 20:
 *   QEMU then climbs 1, 21, 41, ... on its own while the guest keeps up.
 * - nothing forces a switchover but downtime-limit itself: the switchover
 *   rung sets it to the budget's share when the memory left would go within
 *   it; above that only on-stall force goes. */
#include "stall_ladder.h"

#include <stdio.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)

int64_t ladder_limit_ceiling(int64_t budget_ms)
{
	int64_t c = budget_ms * LADDER_BUDGET_SHARE_PERCENT / 100;

	return c > 0 ? c : 1;
}

bool ladder_arms_throttle(const struct ladder_settings *set) { return set->policy == LADDER_POLICY_LADDER; }

void ladder_init(struct ladder *l, const struct ladder_settings *set)
{
	int64_t ceiling = ladder_limit_ceiling(set->budget_ms);

	memset(l, 0, sizeof(*l));
	l->set = *set;
	l->limit_ms = set->downtime_ms;
	if (set->policy != LADDER_POLICY_FORCE && l->limit_ms > ceiling)
		l->limit_ms = ceiling;
}

/* The pause the memory left at this pass's start would take at the rate
 * seen, in ms; -1 when the rate is unknown. */
static int64_t predicted_ms(const struct ladder *l)
{
	if (l->mbps <= 0 || l->last_pass == 0)
		return -1;
	return (int64_t)((double)l->last_start * 8.0 / (l->mbps * 1000.0));
}

static bool fits(const struct ladder *l)
{
	int64_t p = predicted_ms(l);

	return p >= 0 && p <= ladder_limit_ceiling(l->set.budget_ms);
}

/* "the guest dirties 61.0 MiB/s, the link moves 6.0 MiB/s" */
static void rates(const struct ladder *l, char *out, size_t len)
{
	char dirty[64];

	if (l->dirty > 0)
		snprintf(dirty, sizeof(dirty), "the guest dirties %.1f MiB/s", l->dirty / MIB);
	else
		snprintf(dirty, sizeof(dirty), "the guest dirties memory as fast as it moves");
	snprintf(out, len, "%s, the link moves %.1f MiB/s", dirty, l->mbps * 1e6 / 8.0 / MIB);
}

/* "the memory left stopped shrinking (301.0 MiB, then 298.5 MiB over 2 passes; ...)" */
static void stall_words(const struct ladder *l, char *out, size_t len)
{
	char r[160];

	rates(l, r, sizeof(r));
	snprintf(out, len, "the memory left stopped shrinking (%.1f MiB, then %.1f MiB %d passes later; %s)",
		 (double)l->starts[0] / MIB, (double)l->starts[l->nstarts - 1] / MIB, LADDER_STALL_PASSES, r);
}

/* Each rung: when it applies, and what it does (state and words). */
struct rung_row {
	enum ladder_rung rung;
	const char *name;
	enum ladder_policy policy;
	bool (*applies)(const struct ladder *l, const struct ladder_sample *s);
	void (*take)(struct ladder *l, struct ladder_step *step);
};

static bool channels_applies(const struct ladder *l, const struct ladder_sample *s)
{
	(void)s;
	return l->stalled && !l->channels_said;
}

static void channels_take(struct ladder *l, struct ladder_step *step)
{
	char why[400];

	stall_words(l, why, sizeof(why));
	l->channels_said = true; /* no action: the stall stands for the next rung */
	snprintf(step->reason, sizeof(step->reason),
		 "%s: more channels or compression would need a new migration, QEMU cannot change them during one "
		 "(performance is %s; 'ferry host set performance compression' or 'multichannel' applies to the "
		 "next move): skipped", why, l->set.performance ? l->set.performance : "?");
}

static bool downtime_applies(const struct ladder *l, const struct ladder_sample *s)
{
	(void)s;
	return l->stalled && !fits(l) && l->limit_ms < ladder_limit_ceiling(l->set.budget_ms);
}

static void downtime_take(struct ladder *l, struct ladder_step *step)
{
	int64_t ceiling = ladder_limit_ceiling(l->set.budget_ms), old = l->limit_ms;
	char why[400];

	stall_words(l, why, sizeof(why));
	l->limit_ms = old * 2 < ceiling ? old * 2 : ceiling;
	snprintf(step->reason, sizeof(step->reason), "%s: downtime-limit raised from %lld to %lld ms (budget %lld ms)",
		 why, (long long)old, (long long)l->limit_ms, (long long)l->set.budget_ms);
}

static bool throttle_applies(const struct ladder *l, const struct ladder_sample *s)
{
	(void)s;
	return l->stalled && !fits(l) && !l->throttled;
}

static void throttle_take(struct ladder *l, struct ladder_step *step)
{
	char why[400];

	stall_words(l, why, sizeof(why));
	l->throttled = true;
	snprintf(step->reason, sizeof(step->reason),
		 "%s, downtime-limit already %lld ms: the vCPUs are throttled (auto-converge, up to %d%% of their "
		 "time, %d%% more each time QEMU sees the guest keep up)", why, (long long)l->limit_ms,
		 LADDER_THROTTLE_MAX, LADDER_THROTTLE_INCREMENT);
}

static bool switchover_applies(const struct ladder *l, const struct ladder_sample *s)
{
	(void)s;
	return l->stalled && fits(l) && l->limit_ms < ladder_limit_ceiling(l->set.budget_ms);
}

static void switchover_take(struct ladder *l, struct ladder_step *step)
{
	char why[400];

	stall_words(l, why, sizeof(why));
	l->limit_ms = ladder_limit_ceiling(l->set.budget_ms);
	snprintf(step->reason, sizeof(step->reason),
		 "%s: the predicted pause of %lld ms fits the budget of %lld ms: downtime-limit %lld ms, QEMU switches "
		 "over at the next pass", why, (long long)predicted_ms(l), (long long)l->set.budget_ms,
		 (long long)l->limit_ms);
}

/* Past max-passes: cancel unless the memory left fits, and then too when
 * QEMU has had LADDER_STALL_PASSES more passes to switch over and did not. */
static bool cancel_applies(const struct ladder *l, const struct ladder_sample *s)
{
	if (l->set.policy == LADDER_POLICY_CANCEL && l->stalled)
		return true;
	return s->pass > l->set.max_passes && (!fits(l) || s->pass > l->set.max_passes + LADDER_STALL_PASSES);
}

static void cancel_take(struct ladder *l, struct ladder_step *step)
{
	char r[160], left[96] = "";
	int64_t p = predicted_ms(l);

	rates(l, r, sizeof(r));
	if (p >= 0)
		snprintf(left, sizeof(left), "; the %.1f MiB left would pause it %lld ms",
			 (double)l->last_start / MIB, (long long)p);
	l->ended = true;
	snprintf(step->reason, sizeof(step->reason),
		 "%s: cannot converge within the %lld ms budget (max-downtime-ms) after %d passes%s; the guest keeps "
		 "running on the source", r, (long long)l->set.budget_ms, step->pass, left);
}

static bool force_applies(const struct ladder *l, const struct ladder_sample *s)
{
	return s->pass > l->set.max_passes;
}

static void force_take(struct ladder *l, struct ladder_step *step)
{
	l->ended = true;
	l->limit_ms = LADDER_FORCED_LIMIT_MS;
	snprintf(step->reason, sizeof(step->reason),
		 "%d passes done (max-passes %lld), on-stall force: switching over whatever the pause "
		 "(downtime-limit %d ms)", step->pass - 1, (long long)l->set.max_passes, LADDER_FORCED_LIMIT_MS);
}

/* In order: the first that applies is taken. */
static const struct rung_row rungs[] = {
	/* rung            name          policy                 applies             take */
	{RUNG_CHANNELS,   "channels",   LADDER_POLICY_LADDER, channels_applies,   channels_take},
	{RUNG_DOWNTIME,   "downtime",   LADDER_POLICY_LADDER, downtime_applies,   downtime_take},
	{RUNG_THROTTLE,   "throttle",   LADDER_POLICY_LADDER, throttle_applies,   throttle_take},
	{RUNG_SWITCHOVER, "switchover", LADDER_POLICY_LADDER, switchover_applies, switchover_take},
	{RUNG_CANCEL,     "cancel",     LADDER_POLICY_LADDER, cancel_applies,     cancel_take},
	{RUNG_CANCEL,     "cancel",     LADDER_POLICY_CANCEL, cancel_applies,     cancel_take},
	{RUNG_FORCE,      "force",      LADDER_POLICY_FORCE,  force_applies,      force_take},
};

const char *ladder_rung_name(enum ladder_rung rung)
{
	for (size_t i = 0; i < sizeof(rungs) / sizeof(rungs[0]); i++)
		if (rungs[i].rung == rung)
			return rungs[i].name;
	return "none";
}

int ladder_policy_parse(const char *text)
{
	static const char *const names[] = {[LADDER_POLICY_LADDER] = "ladder", [LADDER_POLICY_CANCEL] = "cancel",
					    [LADDER_POLICY_FORCE] = "force"};

	for (size_t i = 0; text && i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(names[i], text))
			return (int)i;
	return -1;
}

/* A new pass began: its start joins the window, and the window says
 * whether the memory left stopped shrinking. */
static void pass_began(struct ladder *l, const struct ladder_sample *s)
{
	if (l->nstarts == LADDER_STALL_PASSES + 1) {
		memmove(l->starts, l->starts + 1, LADDER_STALL_PASSES * sizeof(l->starts[0]));
		l->nstarts--;
	}
	l->starts[l->nstarts++] = s->remaining;
	l->last_start = s->remaining;
	l->stalled = l->nstarts == LADDER_STALL_PASSES + 1 &&
		     l->starts[LADDER_STALL_PASSES] * 100 > l->starts[0] * (100 - LADDER_SHRINK_PERCENT);
}

enum ladder_rung ladder_next(struct ladder *l, const struct ladder_sample *s, struct ladder_step *ret)
{
	if (s->mbps > 0)
		l->mbps = s->mbps;
	if (s->dirty_bytes_per_s > 0)
		l->dirty = s->dirty_bytes_per_s;
	if (s->pass > l->last_pass) {
		l->last_pass = s->pass;
		pass_began(l, s);
	}
	if (l->ended)
		return RUNG_NONE;
	for (size_t i = 0; i < sizeof(rungs) / sizeof(rungs[0]); i++) {
		const struct rung_row *row = &rungs[i];
		if (row->policy != l->set.policy || !row->applies(l, s))
			continue;
		memset(ret, 0, sizeof(*ret));
		ret->rung = row->rung;
		ret->pass = s->pass;
		row->take(l, ret);
		ret->limit_ms = l->limit_ms;
		/* a rung that acted gets LADDER_STALL_PASSES passes to show it */
		if (row->rung != RUNG_CHANNELS) {
			l->nstarts = 0;
			l->stalled = false;
		}
		return row->rung;
	}
	return RUNG_NONE;
}
