/* 'ferry job watch --json': the shape of each event and the order of the
 * stream (a "stage" line on each change, "done" last), one object a line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "events.h"

static json_t *job(const char *stage, double eta)
{
	return json_pack("{s:I, s:s, s:s, s:i, s:I, s:I, s:I, s:f, s:f, s:f, s:b}", "id", (json_int_t)3, "kind", "move",
			 "stage", stage, "pass", 2, "memory-total", (json_int_t)1000, "memory-remaining",
			 (json_int_t)400, "memory-transferred", (json_int_t)700, "mbps", 16.5, "eta-seconds", eta,
			 "elapsed-seconds", 4.5, "done", 0);
}

static void test_progress_shape(void **state)
{
	json_t *j = job("memory", 2.5), *ev = job_event("progress", 3, j, 1700000000123);

	(void)state;
	assert_string_equal(json_string_value(json_object_get(ev, "event")), "progress");
	assert_int_equal(json_integer_value(json_object_get(ev, "job")), 3);
	assert_int_equal(json_integer_value(json_object_get(ev, "time")), 1700000000123);
	assert_string_equal(json_string_value(json_object_get(ev, "stage")), "memory");
	assert_int_equal(json_integer_value(json_object_get(ev, "pass")), 2);
	assert_int_equal(json_integer_value(json_object_get(ev, "memory-transferred")), 700);
	assert_true(json_number_value(json_object_get(ev, "mbps")) == 16.5);
	assert_true(json_number_value(json_object_get(ev, "eta-seconds")) == 2.5);
	/* only the documented fields: nothing of the wire's others */
	assert_null(json_object_get(ev, "kind"));
	assert_null(json_object_get(ev, "done"));
	assert_null(json_object_get(ev, "id"));
	json_decref(ev);
	json_decref(j);
	/* no estimate (-1 on the wire): no field */
	j = job("setup", -1);
	ev = job_event("progress", 3, j, 1);
	assert_null(json_object_get(ev, "eta-seconds"));
	json_decref(ev);
	/* a stage event carries no numbers */
	ev = job_event("stage", 3, j, 1);
	assert_null(json_object_get(ev, "pass"));
	assert_int_equal(json_object_size(ev), 4);
	json_decref(ev);
	json_decref(j);
}

static void test_done_shape(void **state)
{
	json_t *j = job("failed", -1), *ev;

	(void)state;
	json_object_set_new(j, "error", json_string("lost the connection to host2"));
	json_object_set_new(j, "failed-stage", json_string("memory"));
	json_object_set_new(j, "downtime-ms", json_integer(40));
	ev = job_event("done", 3, j, 1);
	assert_string_equal(json_string_value(json_object_get(ev, "outcome")), "failed");
	assert_string_equal(json_string_value(json_object_get(ev, "error")), "lost the connection to host2");
	assert_string_equal(json_string_value(json_object_get(ev, "failed-stage")), "memory");
	assert_int_equal(json_integer_value(json_object_get(ev, "downtime-ms")), 40);
	json_decref(ev);
	json_decref(j);
	/* the pause as ferry measured it, and the total time */
	j = job("completed", -1);
	json_object_set_new(j, "pause-ms", json_integer(85));
	json_object_set_new(j, "pause-uncertainty-ms", json_integer(2));
	json_object_set_new(j, "total-ms", json_integer(9000));
	ev = job_event("done", 3, j, 1);
	assert_int_equal(json_integer_value(json_object_get(ev, "pause-ms")), 85);
	assert_int_equal(json_integer_value(json_object_get(ev, "pause-uncertainty-ms")), 2);
	assert_int_equal(json_integer_value(json_object_get(ev, "total-ms")), 9000);
	json_decref(ev);
	json_decref(j);
}

static void test_ladder_shape(void **state)
{
	json_t *j = job("memory", 1), *step = json_pack("{s:s, s:i, s:s}", "rung", "throttle", "pass", 6, "reason",
							"why"), *ev = ladder_event(3, j, step, 5);

	(void)state;
	assert_string_equal(json_string_value(json_object_get(ev, "event")), "ladder");
	assert_string_equal(json_string_value(json_object_get(ev, "rung")), "throttle");
	assert_int_equal(json_integer_value(json_object_get(ev, "pass")), 6);
	assert_string_equal(json_string_value(json_object_get(ev, "reason")), "why");
	assert_string_equal(json_string_value(json_object_get(ev, "stage")), "memory");
	assert_int_equal(json_integer_value(json_object_get(ev, "time")), 5);
	assert_int_equal(json_object_size(ev), 7);
	json_decref(ev);
	json_decref(step);
	json_decref(j);
}

/* The stream as stdout carries it, captured through a pipe. */
static void test_stream(void **state)
{
	const char *const want[] = {"stage", "progress", "progress", "stage", "ladder", "progress", "progress",
				    "stage", "done", NULL};
	struct event_stream es = {.job = 3};
	json_t *setup = job("setup", -1), *memory = job("memory", 1), *done = job("completed", -1);
	char buf[65536], *line, *save = NULL;
	int p[2], saved;
	ssize_t n;
	size_t i = 0;

	(void)state;
	assert_int_equal(pipe(p), 0);
	fflush(stdout);
	saved = dup(1);
	dup2(p[1], 1);
	events_progress(&es, setup);
	events_progress(&es, setup);
	/* a step of the stall ladder: one "ladder" line, shown once */
	json_object_set_new(memory, "ladder", json_pack("[{s:s, s:i, s:s}]", "rung", "downtime", "pass", 4, "reason",
							"raised"));
	json_object_set_new(done, "ladder", json_deep_copy(json_object_get(memory, "ladder")));
	events_progress(&es, memory);
	events_progress(&es, memory);
	events_done(&es, done);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	close(p[1]);
	n = read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	assert_true(n > 0);
	buf[n] = 0;
	assert_int_equal(buf[n - 1], '\n');
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
		json_t *ev = json_loads(line, 0, NULL);
		assert_non_null(ev); /* every line parses alone */
		assert_non_null(want[i]);
		assert_string_equal(json_string_value(json_object_get(ev, "event")), want[i]);
		json_decref(ev);
	}
	assert_null(want[i]);
	json_decref(setup);
	json_decref(memory);
	json_decref(done);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_progress_shape),
		cmocka_unit_test(test_done_shape),
		cmocka_unit_test(test_ladder_shape),
		cmocka_unit_test(test_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
