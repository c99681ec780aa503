/* The phase machine with rows that only write down what happened. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "phases.h"

struct trace {
	char log[512];
	int fail_at;          /* row id whose run fails, -1: none */
	int enter_fails_at;   /* row id whose enter fails, -1: none */
	int skip;             /* row id skipped, -1: none */
};

static void say(struct trace *t, const char *what, int id)
{
	snprintf(t->log + strlen(t->log), sizeof(t->log) - strlen(t->log), "%s%d ", what, id);
}

#define ROW_FNS(N)                                                                                                 \
	static int run##N(void *c) { say(c, "run", N); return ((struct trace *)c)->fail_at == N ? -EIO : 0; }      \
	__attribute__((unused)) static void stop##N(void *c) { say(c, "stop", N); }                                 \
	__attribute__((unused)) static void undo##N(void *c) { say(c, "undo", N); }
ROW_FNS(0)
ROW_FNS(1)
ROW_FNS(2)
ROW_FNS(3)

static const struct phase_row rows[] = {
	{0, "setup", run0, NULL, undo0, true},
	{1, "storage", run1, stop1, undo1, true},
	{2, "memory", run2, stop2, undo2, true},
	{3, "cleanup", run3, NULL, NULL, false},
};

static int enter_row(void *c, const struct phase_row *row)
{
	struct trace *t = c;

	say(t, "enter", row->id);
	return t->enter_fails_at == row->id ? -ENOSPC : 0;
}

static bool skip_row(void *c, const struct phase_row *row)
{
	return ((struct trace *)c)->skip == row->id;
}

static const struct phase_hooks hooks = {.enter = enter_row, .skip = skip_row};

static void all_rows_run_in_order(void **state)
{
	struct trace t = {.fail_at = -1, .enter_fails_at = -1, .skip = -1};

	(void)state;
	assert_int_equal(phases_run(rows, 4, &hooks, &t, NULL), 0);
	assert_string_equal(t.log, "enter0 run0 enter1 run1 enter2 run2 enter3 run3 ");
}

/* stops first (all of them), then undoes, newest first, the failed row too */
static void a_failure_walks_back(void **state)
{
	struct trace t = {.fail_at = 2, .enter_fails_at = -1, .skip = -1};
	size_t failed = 99;

	(void)state;
	assert_int_equal(phases_run(rows, 4, &hooks, &t, &failed), -EIO);
	assert_int_equal(failed, 2);
	assert_string_equal(t.log, "enter0 run0 enter1 run1 enter2 run2 stop2 stop1 undo2 undo1 undo0 ");
}

static void a_skipped_row_is_neither_run_nor_undone(void **state)
{
	struct trace t = {.fail_at = 2, .enter_fails_at = -1, .skip = 1};

	(void)state;
	assert_int_equal(phases_run(rows, 4, &hooks, &t, NULL), -EIO);
	assert_string_equal(t.log, "enter0 run0 enter2 run2 stop2 undo2 undo0 ");
}

/* a row whose record cannot be written does not run, and is undone */
static void enter_failure_fails_the_row_before_it_runs(void **state)
{
	struct trace t = {.fail_at = -1, .enter_fails_at = 2, .skip = -1};
	size_t failed = 99;

	(void)state;
	assert_int_equal(phases_run(rows, 4, &hooks, &t, &failed), -ENOSPC);
	assert_int_equal(failed, 2);
	assert_string_equal(t.log, "enter0 run0 enter1 run1 enter2 stop2 stop1 undo2 undo1 undo0 ");
}

/* recovery after a restart: the walk back from a persisted phase */
static void recovery_walks_back_from_the_persisted_row(void **state)
{
	struct trace t = {.fail_at = -1, .enter_fails_at = -1, .skip = -1};

	(void)state;
	phases_undo(rows, (size_t)phases_index(rows, 4, 1), &hooks, &t);
	assert_string_equal(t.log, "stop1 undo1 undo0 ");
	assert_int_equal(phases_index(rows, 4, 3), 3);
	assert_int_equal(phases_index(rows, 4, 7), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(all_rows_run_in_order),
		cmocka_unit_test(a_failure_walks_back),
		cmocka_unit_test(a_skipped_row_is_neither_run_nor_undone),
		cmocka_unit_test(enter_failure_fails_the_row_before_it_runs),
		cmocka_unit_test(recovery_walks_back_from_the_persisted_row),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
