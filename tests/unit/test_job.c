/* job.c without QEMU: the user's credential is freed on every way out of a
 * job (review L1), pruning spares a job that a thread or a job.watch still
 * uses (review L7), and jobs count themselves for the metrics. gss_cred_free is wrapped (-Wl,--wrap) to count. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "ferryd.h"
#include "log.h"
#include "settings.h"
#include "util.h"

static int creds_freed;

void __wrap_gss_cred_free(void *cred);
void __wrap_gss_cred_free(void *cred)
{
	if (cred) {
		creds_freed++;
		free(cred);
	}
}

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;

static void fn_return(struct ferryd *d, struct job *j)
{
	job_fail(d, j, "VM %s is not running", j->vm); /* like move_thread's early returns */
}

static void fn_wait_gate(struct ferryd *d, struct job *j)
{
	pthread_mutex_lock(&gate_lock);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
	job_set_stage(d, j, STAGE_COMPLETED);
}

/* A move under way: bytes sent, then (gate open) completed with a pause. */
static void fn_progress_gate(struct ferryd *d, struct job *j)
{
	pthread_mutex_lock(&d->lock);
	j->mem_transferred = 1000;
	j->disk_total = 500;
	j->disk_remaining = 200;
	j->downtime_ms = 42;
	pthread_mutex_unlock(&d->lock);
	job_set_pause(d, j, 57, 3);
	job_ladder_step(d, j, "downtime", 4, "raised");
	fn_wait_gate(d, j);
}

/* The source's phase table: two rows share the switchover stage. */
static void fn_phases_then_fail(struct ferryd *d, struct job *j)
{
	job_enter_phase(d, j, STAGE_SETUP, "setup");
	job_enter_phase(d, j, STAGE_SWITCHOVER, "switchover");
	job_enter_phase(d, j, STAGE_SWITCHOVER, "finish");
	job_enter_phase(d, j, STAGE_SWITCHOVER, "finish"); /* again: no second line */
	job_fail(d, j, "the destination did not answer");
}

static int setup(void **state)
{
	struct ferryd *d = calloc(1, sizeof(*d));

	if (!d)
		return -1;
	pthread_mutex_init(&d->lock, NULL);
	d->settings = settings_defaults();
	d->next_job_id = 1;
	creds_freed = 0;
	gate_open = false;
	*state = d;
	return 0;
}

static int teardown(void **state)
{
	struct ferryd *d = *state;

	while (d->jobs) {
		struct job *j = d->jobs;
		d->jobs = j->next;
		json_decref(j->args);
		json_decref(j->prediction);
		json_decref(j->ladder);
		pthread_cond_destroy(&j->changed);
		free(j);
	}
	json_decref(d->settings);
	pthread_mutex_destroy(&d->lock);
	free(d);
	return 0;
}

static struct job *start(struct ferryd *d, void (*fn)(struct ferryd *, struct job *), bool with_cred)
{
	struct caller c = {.local = true};
	json_t *args = json_object();
	struct job *j = NULL;

	if (with_cred)
		c.deleg_cred = malloc(16);
	assert_int_equal(job_start(d, "move", "web1", "host2", true, false, args, &c, fn, &j), 0);
	assert_null(c.deleg_cred); /* the job owns it */
	json_decref(args);
	return j;
}

static void wait_thread_end(struct ferryd *d, struct job *j)
{
	for (int i = 0; i < 2000; i++) {
		bool running;
		pthread_mutex_lock(&d->lock);
		running = j->running;
		pthread_mutex_unlock(&d->lock);
		if (!running)
			return;
		usleep(1000);
	}
	fail_msg("job %llu did not end", (unsigned long long)j->id);
}

static void early_failure_frees_credential(void **state)
{
	struct ferryd *d = *state;
	struct job *j = start(d, fn_return, true);

	wait_thread_end(d, j);
	assert_int_equal(j->stage, STAGE_FAILED);
	assert_null(j->caller.deleg_cred);
	assert_int_equal(creds_freed, 1);
	assert_int_equal(d->metrics.started[METRICS_MOVE], 1);
	assert_int_equal(d->metrics.failed[METRICS_MOVE][1], 1); /* at setup */
}

static void cancelled_while_queued_frees_credential(void **state)
{
	struct ferryd *d = *state;
	struct job *j;

	json_object_set_new(d->settings, "max-migrations", json_integer(0)); /* it stays queued */
	j = start(d, fn_return, true);
	pthread_mutex_lock(&d->lock);
	assert_int_equal(j->stage, STAGE_QUEUED);
	j->cancel = true;
	pthread_cond_broadcast(&j->changed);
	pthread_mutex_unlock(&d->lock);
	wait_thread_end(d, j);
	assert_int_equal(j->stage, STAGE_CANCELLED);
	assert_int_equal(creds_freed, 1);
	assert_int_equal(d->metrics.started[METRICS_MOVE], 0); /* it never began */
	assert_int_equal(d->metrics.cancelled[METRICS_MOVE], 1);
}

static struct metrics_now metrics_now(struct ferryd *d)
{
	struct metrics_now now;

	pthread_mutex_lock(&d->lock);
	jobs_metrics_now(d, &now);
	pthread_mutex_unlock(&d->lock);
	return now;
}

/* The bytes of a move under way count as sent; when it ends they move to the
 * counter of ended moves, so the sum never goes back. */
static void jobs_are_counted(void **state)
{
	struct ferryd *d = *state;
	struct metrics_now now;
	struct job *j, *queued;
	int i;

	json_object_set_new(d->settings, "max-migrations", json_integer(1));
	j = start(d, fn_progress_gate, false);
	queued = start(d, fn_return, false); /* waits for the first */
	for (i = 0; i < 2000; i++) {
		now = metrics_now(d);
		if (now.bytes_sending == 1300)
			break;
		usleep(1000);
	}
	assert_int_equal(now.bytes_sending, 1300);
	assert_int_equal(now.active[METRICS_MOVE], 1);
	assert_int_equal(now.queued, 1);
	assert_int_equal(d->metrics.bytes_sent, 0);
	pthread_mutex_lock(&gate_lock);
	gate_open = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
	wait_thread_end(d, j);
	wait_thread_end(d, queued);
	now = metrics_now(d);
	assert_int_equal(now.bytes_sending, 0);
	assert_int_equal(now.active[METRICS_MOVE] + now.queued, 0);
	assert_int_equal(d->metrics.bytes_sent, 1300);
	assert_int_equal(d->metrics.started[METRICS_MOVE], 2);
	assert_int_equal(d->metrics.completed[METRICS_MOVE], 1);
	assert_int_equal(d->metrics.pause_count, 1);
	assert_int_equal(d->metrics.pause_sum_ms, 42);
	/* job show: QEMU's downtime, ferry's pause, the total time, the ladder */
	{
		json_t *o, *step;
		pthread_mutex_lock(&d->lock);
		o = job_json(j);
		pthread_mutex_unlock(&d->lock);
		assert_int_equal(json_integer_value(json_object_get(o, "downtime-ms")), 42);
		assert_int_equal(json_integer_value(json_object_get(o, "pause-ms")), 57);
		assert_int_equal(json_integer_value(json_object_get(o, "pause-uncertainty-ms")), 3);
		assert_true(json_is_integer(json_object_get(o, "total-ms")));
		assert_int_equal(json_array_size(json_object_get(o, "ladder")), 1);
		step = json_array_get(json_object_get(o, "ladder"), 0);
		assert_string_equal(json_string_value(json_object_get(step, "rung")), "downtime");
		assert_int_equal(json_integer_value(json_object_get(step, "pass")), 4);
		json_decref(o);
		/* the job that never moved: no pause, an empty ladder, no total until it ends */
		pthread_mutex_lock(&d->lock);
		o = job_json(queued);
		pthread_mutex_unlock(&d->lock);
		assert_null(json_object_get(o, "pause-ms"));
		assert_int_equal(json_array_size(json_object_get(o, "ladder")), 0);
		json_decref(o);
	}
}

static bool listed(struct ferryd *d, uint64_t id)
{
	for (struct job *j = d->jobs; j; j = j->next)
		if (j->id == id)
			return true;
	return false;
}

/* 102 finished jobs, the two oldest beyond the 100 kept: pruned only once
 * neither a job.watch (watchers) nor its thread (running) uses it. */
static void prune_spares_used_jobs(void **state)
{
	struct ferryd *d = *state;
	struct job *oldest = NULL, *second = NULL, *j;

	if (now_ms() < 70000)
		skip(); /* ended_ms is on the monotonic clock: the machine must be up for a minute */
	for (int i = 0; i < 102; i++) {
		j = start(d, fn_return, false);
		wait_thread_end(d, j);
		if (i == 0)
			oldest = j;
		if (i == 1)
			second = j;
	}
	pthread_mutex_lock(&d->lock);
	for (j = d->jobs; j; j = j->next)
		j->ended_ms = 1;
	oldest->watchers = 1;
	second->running = true;
	pthread_mutex_unlock(&d->lock);
	j = start(d, fn_return, false); /* job_start prunes */
	wait_thread_end(d, j);
	assert_true(listed(d, 1));
	assert_true(listed(d, 2));
	pthread_mutex_lock(&d->lock);
	oldest->watchers = 0;
	second->running = false;
	pthread_mutex_unlock(&d->lock);
	j = start(d, fn_return, false);
	wait_thread_end(d, j);
	assert_false(listed(d, 1));
	assert_false(listed(d, 2));
}

/* A move with a prediction, through its stages to completed. */
static void fn_predicted(struct ferryd *d, struct job *j)
{
	job_set_prediction(d, j, json_pack("{s:f, s:i}", "total-seconds", 1.5, "downtime-ms", 90));
	job_set_stage(d, j, STAGE_MEMORY);
	usleep(20 * 1000);
	pthread_mutex_lock(&d->lock);
	j->pass = 3;
	j->downtime_ms = 120;
	pthread_mutex_unlock(&d->lock);
	job_set_stage(d, j, STAGE_SWITCHOVER);
	job_set_stage(d, j, STAGE_CLEANUP);
	job_set_stage(d, j, STAGE_COMPLETED);
}

/* job show: the prediction as recorded, and beside it what happened, from
 * the memory stage to cleanup; a job that did not complete has no actual. */
static void prediction_and_actual(void **state)
{
	struct ferryd *d = *state;
	struct job *j = start(d, fn_predicted, false), *failed;
	json_t *o, *a;

	wait_thread_end(d, j);
	pthread_mutex_lock(&d->lock);
	o = job_json(j);
	pthread_mutex_unlock(&d->lock);
	assert_true(json_number_value(json_object_get(json_object_get(o, "prediction"), "total-seconds")) == 1.5);
	a = json_object_get(o, "actual");
	assert_non_null(a);
	assert_true(json_number_value(json_object_get(a, "total-seconds")) >= 0.02);
	assert_true(json_number_value(json_object_get(a, "total-seconds")) < 10);
	assert_int_equal(json_integer_value(json_object_get(a, "downtime-ms")), 120);
	assert_int_equal(json_integer_value(json_object_get(a, "passes")), 3);
	json_decref(o);
	failed = start(d, fn_return, false);
	wait_thread_end(d, failed);
	pthread_mutex_lock(&d->lock);
	o = job_json(failed);
	pthread_mutex_unlock(&d->lock);
	assert_null(json_object_get(o, "actual"));
	assert_null(json_object_get(o, "prediction"));
	json_decref(o);
}

struct watch_arg {
	struct request req;
	json_t *reply;
};

static void *watch_thread(void *p)
{
	struct watch_arg *w = p;

	for (const struct op_def *op = job_ops; op->name; op++)
		if (!strcmp(op->name, "job.watch"))
			w->reply = op->fn(&w->req);
	return NULL;
}

static void watch_is_counted(void **state)
{
	struct ferryd *d = *state;
	struct caller c = {.local = true};
	struct watch_arg w = {0};
	struct conn conn;
	struct job *j = start(d, fn_wait_gate, false);
	pthread_t t;
	int sv[2], watchers = 0;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	conn_init(&conn, sv[0], PROTO_MAX_MSG);
	w.req = (struct request){.d = d, .op = "job.watch", .caller = &c, .conn = &conn};
	w.req.args = json_pack("{s:I}", "id", (json_int_t)j->id);
	assert_int_equal(pthread_create(&t, NULL, watch_thread, &w), 0);
	for (int i = 0; i < 2000 && watchers == 0; i++) {
		pthread_mutex_lock(&d->lock);
		watchers = j->watchers;
		pthread_mutex_unlock(&d->lock);
		usleep(1000);
	}
	assert_int_equal(watchers, 1);
	pthread_mutex_lock(&gate_lock);
	gate_open = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
	pthread_join(t, NULL);
	wait_thread_end(d, j);
	assert_int_equal(j->watchers, 0);
	assert_true(json_is_true(json_object_get(w.reply, "ok")));
	json_decref(w.reply);
	json_decref(w.req.args);
	close(sv[0]);
	close(sv[1]);
}

/* One line per step, with the job, VM, destination and phase (log.c). */
static void each_step_is_logged_once(void **state)
{
	struct ferryd *d = *state;
	char path[] = "/tmp/test_job.XXXXXX", out[4096];
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	struct job *j;
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	unsetenv("JOURNAL_STREAM");
	log_setup("ferryd");
	dup2(fd, STDERR_FILENO);
	j = start(d, fn_phases_then_fail, false);
	wait_thread_end(d, j);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, out, sizeof(out) - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);

	assert_non_null(strstr(out, "info: job 1 vm web1 peer host2: phase queued: move asked by uid 0\n"));
	assert_non_null(strstr(out, "info: job 1 vm web1 peer host2: phase setup: started\n"));
	assert_non_null(strstr(out, "info: job 1 vm web1 peer host2: phase switchover: started\n"));
	assert_non_null(strstr(out, "info: job 1 vm web1 peer host2: phase finish: started\n"));
	assert_null(strstr(strstr(out, "phase finish: started") + 1, "phase finish: started"));
	assert_non_null(strstr(out, "warning: job 1 vm web1 peer host2: phase finish: failed: the destination did "
				    "not answer\n"));
	assert_int_equal(j->failed_stage, STAGE_SWITCHOVER); /* the job's stage, for job show */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(early_failure_frees_credential, setup, teardown),
		cmocka_unit_test_setup_teardown(cancelled_while_queued_frees_credential, setup, teardown),
		cmocka_unit_test_setup_teardown(prune_spares_used_jobs, setup, teardown),
		cmocka_unit_test_setup_teardown(watch_is_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(jobs_are_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(each_step_is_logged_once, setup, teardown),
		cmocka_unit_test_setup_teardown(prediction_and_actual, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
