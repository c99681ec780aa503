/* The stall ladder's decision (stall_ladder.c), pure: passes, the memory
 * left at each, the rates and the settings in, the rung out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "settings.h"
#include "stall_ladder.h"

#define MIB (1024ULL * 1024ULL)

static const struct ladder_settings defaults = {
	.policy = LADDER_POLICY_LADDER, .downtime_ms = 300, .budget_ms = 300, .max_passes = 10,
	.performance = "tcpip",
};

/* 48 Mbit/s = 6 MB/s; the guest dirties 60 MiB/s */
static struct ladder_sample at(int pass, uint64_t remaining)
{
	return (struct ladder_sample){.pass = pass, .remaining = remaining, .mbps = 48.0,
				      .dirty_bytes_per_s = 60.0 * MIB};
}

/* Feeds passes first..last, each with the memory left remaining(pass), a
 * few looks per pass; records the rungs taken, "name@pass ". */
static void run(struct ladder *l, int first, int last, uint64_t (*remaining)(int), char *log, size_t len,
		struct ladder_step *ret_last)
{
	for (int p = first; p <= last; p++)
		for (int look = 0; look < 3; look++) {
			struct ladder_sample s = at(p, remaining(p));
			struct ladder_step step;
			enum ladder_rung r = ladder_next(l, &s, &step);
			if (r == RUNG_NONE)
				continue;
			size_t used = strlen(log);
			snprintf(log + used, len - used, "%s@%d ", ladder_rung_name(r), step.pass);
			if (ret_last)
				*ret_last = step;
		}
}

static uint64_t plateau_64m(int pass) { return pass == 1 ? 400 * MIB : 64 * MIB; }
static uint64_t shrinking(int pass) { return (400 * MIB) >> pass; }
static uint64_t plateau_1m(int pass) { return pass == 1 ? 400 * MIB : 1 * MIB; }

static void converging_guest_takes_no_rung(void **state)
{
	struct ladder l;
	char log[256] = "";

	(void)state;
	ladder_init(&l, &defaults);
	assert_int_equal(l.limit_ms, 225); /* within the budget's share */
	run(&l, 1, 9, shrinking, log, sizeof(log), NULL);
	assert_string_equal(log, "");
}

/* Budget 300 ms, 64 MiB left at 6 MB/s (11 s): every rung but the
 * switchover, then the cancel past max-passes, with the numbers. */
static void small_budget_climbs_then_cancels(void **state)
{
	struct ladder l;
	struct ladder_step last;
	char log[256] = "";

	(void)state;
	ladder_init(&l, &defaults);
	run(&l, 1, 12, plateau_64m, log, sizeof(log), &last);
	/* a stall is seen 2 passes after the first plateau; each rung that acts
	 * waits 2 more; the limit starts at the share: nothing to raise */
	assert_string_equal(log, "channels@4 throttle@4 cancel@11 ");
	assert_int_equal(last.rung, RUNG_CANCEL);
	assert_non_null(strstr(last.reason, "the guest dirties 60.0 MiB/s, the link moves 5.7 MiB/s"));
	assert_non_null(strstr(last.reason, "cannot converge within the 300 ms budget"));
	assert_non_null(strstr(last.reason, "keeps running on the source"));
	assert_true(l.ended);
	assert_true(l.limit_ms <= 300);
}

/* A budget of 60 s: 64 MiB at 6 MB/s (11.2 s) fits at the first stall,
 * so the switchover rung goes straight to the share, without the steps. */
static void generous_budget_switches_over(void **state)
{
	struct ladder_settings set = defaults;
	struct ladder l;
	struct ladder_step last;
	char log[256] = "";

	(void)state;
	set.budget_ms = 60000;
	ladder_init(&l, &set);
	assert_int_equal(l.limit_ms, 300); /* downtime-ms, within the share */
	run(&l, 1, 8, plateau_64m, log, sizeof(log), &last);
	assert_string_equal(log, "channels@4 switchover@4 ");
	assert_int_equal(last.limit_ms, 45000);
	assert_int_equal(l.limit_ms, 45000);
	assert_non_null(strstr(last.reason, "fits the budget of 60000 ms"));
}

/* Budget 4 s (share 3 s), 64 MiB needs 11 s: the limit doubles up to the
 * share, then the throttle, then the cancel; never above the share. */
static void downtime_doubles_up_to_the_share(void **state)
{
	struct ladder_settings set = defaults;
	struct ladder l;
	char log[256] = "";

	(void)state;
	set.budget_ms = 4000;
	set.max_passes = 20;
	ladder_init(&l, &set);
	run(&l, 1, 22, plateau_64m, log, sizeof(log), NULL);
	assert_string_equal(log, "channels@4 downtime@4 downtime@7 downtime@10 downtime@13 throttle@16 cancel@21 ");
	assert_int_equal(l.limit_ms, 3000); /* 300, 600, 1200, 2400 -> 3000 */
}

/* After the throttle the memory left shrinks to 1 MiB (0.17 s): it fits,
 * and the limit already is the share: QEMU switches over by itself; past
 * max-passes the ladder waits 2 passes before it gives up. */
static uint64_t throttled_later(int pass) { return pass < 6 ? plateau_64m(pass) : plateau_1m(pass); }

static void fits_after_throttle_waits_for_qemu(void **state)
{
	struct ladder l;
	char log[256] = "";

	(void)state;
	ladder_init(&l, &defaults);
	run(&l, 1, 14, throttled_later, log, sizeof(log), NULL);
	assert_string_equal(log, "channels@4 throttle@4 cancel@13 ");
}

static void policy_cancel_and_force(void **state)
{
	struct ladder_settings set = defaults;
	struct ladder l;
	struct ladder_step last;
	char log[256] = "";

	(void)state;
	set.policy = LADDER_POLICY_CANCEL;
	ladder_init(&l, &set);
	run(&l, 1, 12, plateau_64m, log, sizeof(log), &last);
	assert_string_equal(log, "cancel@4 ");
	assert_false(ladder_arms_throttle(&set));

	log[0] = '\0';
	set.policy = LADDER_POLICY_FORCE;
	set.downtime_ms = 5000; /* not capped: force ignores the budget */
	ladder_init(&l, &set);
	assert_int_equal(l.limit_ms, 5000);
	run(&l, 1, 14, plateau_64m, log, sizeof(log), &last);
	assert_string_equal(log, "force@11 ");
	assert_int_equal(last.limit_ms, LADDER_FORCED_LIMIT_MS);
	assert_false(ladder_arms_throttle(&set));
	assert_true(ladder_arms_throttle(&defaults));
}

/* Without a rate (mbps 0) nothing fits: the ladder never switches over on
 * a guess, and cancels past max-passes. */
static void unknown_rate_never_fits(void **state)
{
	struct ladder_settings set = defaults;
	struct ladder l;
	int cancels = 0, switchovers = 0;

	(void)state;
	set.budget_ms = 60000;
	ladder_init(&l, &set);
	for (int p = 1; p <= 12; p++) {
		struct ladder_sample s = {.pass = p, .remaining = 64 * MIB};
		struct ladder_step step;
		enum ladder_rung r = ladder_next(&l, &s, &step);
		cancels += r == RUNG_CANCEL;
		switchovers += r == RUNG_SWITCHOVER;
	}
	assert_int_equal(cancels, 1);
	assert_int_equal(switchovers, 0);
	assert_true(l.limit_ms <= ladder_limit_ceiling(60000));
}

/* Whatever the inputs, with on-stall ladder the limit never passes the
 * budget, and a cancel ends the ladder. */
static void never_above_the_budget(void **state)
{
	static const int64_t budgets[] = {10, 100, 300, 1000, 60000};
	static const int64_t downtimes[] = {1, 50, 300, 60000};
	uint64_t seed = 42;

	(void)state;
	for (size_t b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++)
		for (size_t d = 0; d < sizeof(downtimes) / sizeof(downtimes[0]); d++) {
			struct ladder_settings set = defaults;
			struct ladder l;
			bool ended = false;
			set.budget_ms = budgets[b];
			set.downtime_ms = downtimes[d];
			ladder_init(&l, &set);
			assert_true(l.limit_ms <= budgets[b]);
			for (int p = 1; p <= 40; p++) {
				struct ladder_step step;
				seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
				struct ladder_sample s = {.pass = p, .remaining = (seed >> 33) % (512 * MIB),
							  .mbps = (double)((seed >> 20) % 1000)};
				enum ladder_rung r = ladder_next(&l, &s, &step);
				assert_true(l.limit_ms <= budgets[b]);
				if (ended)
					assert_int_equal(r, RUNG_NONE);
				ended = ended || r == RUNG_CANCEL;
			}
			assert_true(ended);
		}
}

/* The on-stall setting offers exactly the policies the ladder knows. */
static void setting_choices_match(void **state)
{
	const struct setting_def *def = setting_find("on-stall");
	size_t n = 0;

	(void)state;
	assert_non_null(def);
	for (const char *const *c = def->choices; *c; c++, n++)
		assert_int_equal(ladder_policy_parse(*c), (int)n);
	assert_int_equal(n, 3);
	assert_int_equal(ladder_policy_parse("sometimes"), -1);
	assert_string_equal(def->def, "ladder");
	assert_string_equal(setting_find("max-downtime-ms")->def, "300");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(converging_guest_takes_no_rung),
		cmocka_unit_test(small_budget_climbs_then_cancels),
		cmocka_unit_test(generous_budget_switches_over),
		cmocka_unit_test(downtime_doubles_up_to_the_share),
		cmocka_unit_test(fits_after_throttle_waits_for_qemu),
		cmocka_unit_test(policy_cancel_and_force),
		cmocka_unit_test(unknown_rate_never_fits),
		cmocka_unit_test(never_above_the_budget),
		cmocka_unit_test(setting_choices_match),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
