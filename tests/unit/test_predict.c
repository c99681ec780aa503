/* The pre-copy model (predict.c), against cases computed by hand, and the
 * reading of the guest's resident RAM from /proc/PID/smaps. */
#include <setjmp.h>
#include <stdarg.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "predict.h"

#define MIB 1048576.0

static void near(double got, double want)
{
	if (fabs(got - want) > 1e-9 * fmax(1.0, fabs(want)))
		fail_msg("got %.12f, want %.12f", got, want);
}

static struct predict_input in_mib(double mem, double dirty, double link, uint32_t limit_ms, uint32_t max)
{
	return (struct predict_input){.memory_bytes = (uint64_t)(mem * MIB), .first_pass_bytes = (uint64_t)(mem * MIB),
				      .dirty_bps = dirty * MIB, .link_bps = link * MIB,
				      .downtime_limit_ms = limit_ms, .max_passes = max};
}

/* 100 MiB at 128 MiB/s: 0.78125 s; meanwhile 16 MiB/s dirty 12.5 MiB, which
 * fits 128 MiB/s x 0.3 s = 38.4 MiB: one pass, 12.5/128 s = 97.65625 ms. */
static void test_light_dirtying_converges_after_one_pass(void **state)
{
	struct predict_input in = in_mib(100, 16, 128, 300, 10);
	struct predict_result r;

	(void)state;
	assert_int_equal(predict_run(&in, &r), 0);
	assert_true(r.converges);
	assert_int_equal(r.passes, 1);
	near(r.memory_seconds, 0.78125);
	near(r.downtime_ms, 97.65625);
	near(r.total_seconds, 0.87890625);
	assert_int_equal(r.last_dirty_bytes, (uint64_t)(12.5 * MIB));
	assert_non_null(strstr(r.reason, "fits the downtime limit of 300 ms"));
}

/* 1 GiB, D/B = 1/2, limit 100 ms (12.8 MiB): passes of 8, 4, 2, 1, 0.5,
 * 0.25, 0.125 s leave 512, 256, 128, 64, 32, 16, 8 MiB; 8 fits: 7 passes,
 * 15.875 s, then 8 MiB in 62.5 ms. The series' sum M/(B-D) is 16 s. */
static void test_geometric_series(void **state)
{
	struct predict_input in = in_mib(1024, 64, 128, 100, 10);
	struct predict_result r;

	(void)state;
	assert_int_equal(predict_run(&in, &r), 0);
	assert_true(r.converges);
	assert_int_equal(r.passes, 7);
	near(r.memory_seconds, 15.875);
	near(r.downtime_ms, 62.5);
	near(r.total_seconds, 15.9375);
	assert_true(r.total_seconds < 1024.0 / (128 - 64));
}

/* The same with max-passes 3: after 8 + 4 + 2 s, 128 MiB are still dirty:
 * forced, a pause of 1 s. */
static void test_max_passes_forces_the_switchover(void **state)
{
	struct predict_input in = in_mib(1024, 64, 128, 100, 3);
	struct predict_result r;

	(void)state;
	assert_int_equal(predict_run(&in, &r), 0);
	assert_false(r.converges);
	assert_int_equal(r.passes, 3);
	near(r.memory_seconds, 14);
	near(r.downtime_ms, 1000);
	near(r.total_seconds, 15);
	assert_non_null(strstr(r.reason, "after max-passes 3 passes 128.0 MiB are still dirty"));
}

/* D >= B: each pass of 256 MiB at 100 MiB/s (2.56 s) dirties all of the
 * 256 MiB again (never more): 3 passes, then 2.56 s paused. */
static void test_dirtying_faster_than_the_link_never_converges(void **state)
{
	struct predict_input in = in_mib(256, 200, 100, 300, 3);
	struct predict_result r;

	(void)state;
	assert_int_equal(predict_run(&in, &r), 0);
	assert_false(r.converges);
	assert_int_equal(r.passes, 3);
	near(r.memory_seconds, 7.68);
	near(r.downtime_ms, 2560);
	near(r.total_seconds, 10.24);
	assert_non_null(strstr(r.reason, "at least as fast as the link"));
}

/* Disks go first at the link's rate: 256 MiB at 128 MiB/s is 2 s; a guest
 * that touched nothing sends nothing more. */
static void test_disks_and_untouched_memory(void **state)
{
	struct predict_input in = in_mib(512, 10, 128, 300, 10);
	struct predict_result r;

	(void)state;
	in.first_pass_bytes = 0;
	in.disk_bytes = 256 * 1048576ull;
	assert_int_equal(predict_run(&in, &r), 0);
	assert_true(r.converges);
	near(r.disk_seconds, 2);
	near(r.memory_seconds, 0);
	near(r.total_seconds, 2);
}

/* The first pass never sends more than the RAM. */
static void test_first_pass_capped_at_memory(void **state)
{
	struct predict_input in = in_mib(64, 0, 64, 300, 10);
	struct predict_result r;

	(void)state;
	in.first_pass_bytes = 1ull << 40;
	assert_int_equal(predict_run(&in, &r), 0);
	near(r.memory_seconds, 1);
	near(r.downtime_ms, 0);
}

static void test_bad_input(void **state)
{
	struct predict_input in = in_mib(64, 1, 0, 300, 10);
	struct predict_result r;

	(void)state;
	assert_int_equal(predict_run(&in, &r), -EINVAL);
	in.link_bps = NAN;
	assert_int_equal(predict_run(&in, &r), -EINVAL);
	in.link_bps = 1e6;
	in.dirty_bps = -1;
	assert_int_equal(predict_run(&in, &r), -EINVAL);
	in.dirty_bps = INFINITY;
	assert_int_equal(predict_run(&in, &r), -EINVAL);
	in.dirty_bps = 0;
	in.max_passes = 0;
	assert_int_equal(predict_run(&in, &r), -EINVAL);
	in.max_passes = PREDICT_PASSES_MAX + 1;
	assert_int_equal(predict_run(&in, &r), -EINVAL);
}

/* Shaped like a QEMU's smaps under TCG with -m 256: the heap, a file, the
 * 1 GiB code buffer (rwx), the guest RAM. */
static const char smaps[] =
	"55d0c0a00000-55d0c1200000 rw-p 00000000 00:00 0                          [heap]\n"
	"Size:             268288 kB\n"
	"Rss:               99000 kB\n"
	"7fcd2a000000-7fcd2a100000 r--p 00000000 08:01 1234                       /usr/share/qemu/bios-256k.bin\n"
	"Size:               1024 kB\n"
	"Rss:                1024 kB\n"
	"7fcd2be00000-7fcd3be00000 rw-p 00000000 00:00 0 \n"
	"Size:             262144 kB\n"
	"KernelPageSize:        4 kB\n"
	"Rss:               98304 kB\n"
	"Pss:               98304 kB\n"
	"VmFlags: rd wr mr mw me ac sd\n"
	"7fcd3c000000-7fcd7bfff000 rwxp 00000000 00:00 0 \n"
	"Size:            1048572 kB\n"
	"Rss:                2048 kB\n";

/* The switchover's learned cost is added to the downtime and the total,
 * not to what must fit the downtime limit. */
static void test_learned_switchover_cost(void **state)
{
	struct predict_input in = in_mib(100, 16, 128, 300, 10);
	struct predict_result r;

	(void)state;
	in.switchover_ms = 250;
	assert_int_equal(predict_run(&in, &r), 0);
	assert_true(r.converges);
	assert_int_equal(r.passes, 1);
	near(r.downtime_ms, 97.65625 + 250);
	near(r.total_seconds, 0.78125 + (97.65625 + 250) / 1000.0);
}

/* 200 MiB in 2.5 s, of which 0.5 s paused: the stream reached 80 MiB/s
 * over all of it (QEMU sends while paused too); QEMU paused 500 ms where
 * the model gave 20: 480 ms of switchover. */
/* A rate learned over whole moves has the switchover in it: the total
 * adds only the last set, the downtime has both. */
static void test_rate_includes_switchover(void **state)
{
	struct predict_input in = in_mib(100, 16, 128, 300, 10);
	struct predict_result r;

	(void)state;
	in.switchover_ms = 250;
	in.rate_includes_switchover = true;
	assert_int_equal(predict_run(&in, &r), 0);
	near(r.downtime_ms, 97.65625 + 250);
	near(r.total_seconds, 0.78125 + 0.09765625);
}

/* Two moves' rates averaged; a link that changed starts over. */
static void test_learn_merge(void **state)
{
	struct predict_learned a = {.stream_bps = 100 * MIB, .probe_bps = 900 * MIB, .switchover_ms = 100};
	struct predict_learned b = {.stream_bps = 140 * MIB, .probe_bps = 700 * MIB, .switchover_ms = 300};
	struct predict_learned c = {.stream_bps = 90 * MIB, .probe_bps = 110 * MIB, .switchover_ms = 50};
	struct predict_learned r;

	(void)state;
	predict_learn_merge(&a, &b, &r);
	near(r.stream_bps, 120 * MIB);
	near(r.switchover_ms, 200);
	near(r.probe_bps, 700 * MIB);
	predict_learn_merge(&r, &c, &r);
	near(r.stream_bps, 90 * MIB);
	near(r.switchover_ms, 50);
	predict_learn_merge(NULL, &a, &r);
	near(r.stream_bps, 100 * MIB);
}

static void test_learn_from_a_move(void **state)
{
	struct predict_learned l;

	(void)state;
	assert_int_equal(predict_learn((uint64_t)(200 * MIB), 2.5, 500, 20, 110 * MIB, &l), 0);
	near(l.stream_bps, 80 * MIB);
	near(l.switchover_ms, 480);
	near(l.probe_bps, 110 * MIB);
	/* a model that gave more than QEMU took: no negative cost */
	assert_int_equal(predict_learn((uint64_t)(200 * MIB), 2.5, 10, 20, NAN, &l), 0);
	near(l.switchover_ms, 0);
	near(l.probe_bps, 0); /* no probe then */
	/* nothing to learn from */
	assert_int_equal(predict_learn(0, 2.5, 10, 0, 0, &l), -EINVAL);
	assert_int_equal(predict_learn((uint64_t)MIB, 0.4, 500, 0, 0, &l), -EINVAL);
	assert_int_equal(predict_learn((uint64_t)MIB, NAN, 5, 0, 0, &l), -EINVAL);
}

/* The rate the model uses. A stream of 80 MiB/s over a 1000 MiB/s probe:
 * QEMU's own time is 1/80 - 1/1000 s per MiB; over a 100 MiB/s link,
 * 1 / (1/80 - 1/1000 + 1/100) = 1/0.0215 = 46.51 MiB/s. */
static void test_link_rate(void **state)
{
	struct predict_learned slow = {.stream_bps = 80 * MIB, .probe_bps = 1000 * MIB};
	struct predict_learned zstd = {.stream_bps = 300 * MIB, .probe_bps = 120 * MIB};
	struct predict_learned old = {.stream_bps = 80 * MIB}; /* probe unknown */

	(void)state;
	near(predict_link_rate(900 * MIB, NULL), 900 * MIB);
	/* the same link: the same stream */
	near(predict_link_rate(1000 * MIB, &slow), 80 * MIB);
	near(predict_link_rate(100 * MIB, &slow), MIB / 0.0215);
	/* 2.5 times the probe's rate with zstd: at half the link, half of it */
	near(predict_link_rate(60 * MIB, &zstd), 150 * MIB);
	/* a faster link does not make the stream faster than it was */
	near(predict_link_rate(1000 * MIB, &zstd), 300 * MIB);
	near(predict_link_rate(1000 * MIB, &old), 80 * MIB);
	near(predict_link_rate(60 * MIB, &old), 60 * MIB);
}

/* Where the rate comes from, best first. Learned for this host: as
 * predict_link_rate. For two others: 80 MiB/s over a 1000 MiB/s probe
 * and 100 over 100 (QEMU's own time per MiB 1/80 - 1/1000 and 0); with a
 * 1000 MiB/s probe now, (80 + 100) / 2 = 90 MiB/s, their switchover costs
 * averaged. Nothing learned: the lower of the default QEMU's 256 MiB/s
 * and the probe's, not spanning the switchover. */
static void test_rate_source(void **state)
{
	struct predict_learned same = {.stream_bps = 80 * MIB, .probe_bps = 1000 * MIB, .switchover_ms = 50};
	struct predict_learned others[2] = {{.stream_bps = 80 * MIB, .probe_bps = 1000 * MIB, .switchover_ms = 40},
					    {.stream_bps = 100 * MIB, .probe_bps = 100 * MIB, .switchover_ms = 100}};
	struct predict_rate r;

	(void)state;
	predict_rate_choose(100 * MIB, &same, others, 2, &r);
	assert_int_equal(r.source, PREDICT_LEARNED);
	near(r.bps, MIB / 0.0215);
	near(r.switchover_ms, 50);
	assert_true(r.includes_switchover);
	assert_string_equal(predict_source_name(r.source), "learned");

	predict_rate_choose(1000 * MIB, NULL, others, 2, &r);
	assert_int_equal(r.source, PREDICT_OTHER_HOST);
	near(r.bps, 90 * MIB);
	near(r.switchover_ms, 70);
	assert_true(r.includes_switchover);
	assert_string_equal(predict_source_name(r.source), "other-host");
	/* one other host: its rate with the link now */
	predict_rate_choose(100 * MIB, NULL, others, 1, &r);
	near(r.bps, MIB / 0.0215);

	predict_rate_choose(1024 * MIB, NULL, NULL, 0, &r);
	assert_int_equal(r.source, PREDICT_DEFAULT);
	near(r.bps, 256 * MIB);
	near(r.switchover_ms, 0);
	assert_false(r.includes_switchover);
	assert_string_equal(predict_source_name(r.source), "default");
	predict_rate_choose(64 * MIB, NULL, NULL, 0, &r);
	near(r.bps, 64 * MIB);
}

/* A sample of 4096 pages, 1024 of them holding data: a quarter of the RAM. */
static void test_zero_pages(void **state)
{
	uint8_t page[4096] = {0};

	(void)state;
	assert_true(predict_page_zero(page, sizeof(page)));
	page[4095] = 1;
	assert_false(predict_page_zero(page, sizeof(page)));
	assert_true(predict_page_zero(page, 0));
	assert_int_equal(predict_nonzero_bytes(256 * 1048576ull, 4096, 1024), 64 * 1048576ull);
	assert_int_equal(predict_nonzero_bytes(256 * 1048576ull, 0, 0), 256 * 1048576ull);
	assert_int_equal(predict_nonzero_bytes(256 * 1048576ull, 10, 20), 256 * 1048576ull);
}

static void test_resident_guest_ram(void **state)
{
	struct predict_ram ram;
	uint64_t rss = 0;

	(void)state;
	assert_int_equal(predict_guest_ram(smaps, strlen(smaps), 256 * 1048576ull, &ram), 0);
	assert_int_equal(ram.start, 0x7fcd2be00000ull);
	assert_int_equal(ram.size, 256 * 1048576ull);
	assert_int_equal(ram.resident, 96 * 1048576ull);
	assert_int_equal(predict_guest_resident(smaps, strlen(smaps), 256 * 1048576ull, &rss), 0);
	assert_int_equal(rss, 96 * 1048576ull);
	/* no mapping of that size: unknown */
	assert_int_equal(predict_guest_resident(smaps, strlen(smaps), 512 * 1048576ull, &rss), -ENOENT);
	assert_int_equal(predict_guest_resident("", 0, 1048576, &rss), -ENOENT);
	/* cut anywhere, it never reads past the end */
	for (size_t n = 0; n < strlen(smaps); n++)
		predict_guest_resident(smaps, n, 256 * 1048576ull, &rss);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_light_dirtying_converges_after_one_pass),
		cmocka_unit_test(test_geometric_series),
		cmocka_unit_test(test_max_passes_forces_the_switchover),
		cmocka_unit_test(test_dirtying_faster_than_the_link_never_converges),
		cmocka_unit_test(test_disks_and_untouched_memory),
		cmocka_unit_test(test_first_pass_capped_at_memory),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_resident_guest_ram),
		cmocka_unit_test(test_learned_switchover_cost),
		cmocka_unit_test(test_learn_from_a_move),
		cmocka_unit_test(test_link_rate),
		cmocka_unit_test(test_rate_source),
		cmocka_unit_test(test_rate_includes_switchover),
		cmocka_unit_test(test_learn_merge),
		cmocka_unit_test(test_zero_pages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
