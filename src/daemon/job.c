/* Jobs: moves run in their own thread, wait in a queue while the host's
 * simultaneous-migration limits are reached, and report their progress. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferryd.h"
#include "log.h"
#include "ops.h"
#include "settings.h"
#include "util.h"

struct job_start_arg {
	struct ferryd *d;
	struct job *j;
	void (*fn)(struct ferryd *, struct job *);
};

static const char *const stage_names[] = {
	[STAGE_QUEUED] = "queued",         [STAGE_SETUP] = "setup",         [STAGE_STORAGE] = "storage",
	[STAGE_MEMORY] = "memory",         [STAGE_SWITCHOVER] = "switchover", [STAGE_CLEANUP] = "cleanup",
	[STAGE_COMPLETED] = "completed",   [STAGE_FAILED] = "failed",       [STAGE_CANCELLED] = "cancelled",
};

const char *job_stage_name(enum job_stage s) { return stage_names[s]; }

static bool job_done(const struct job *j)
{
	return j->stage == STAGE_COMPLETED || j->stage == STAGE_FAILED || j->stage == STAGE_CANCELLED;
}

static bool job_active(const struct job *j) { return j->stage != STAGE_QUEUED && !job_done(j); }


static void job_mark_end(struct job *j)
{
	j->ended_ms = now_ms();
	j->ended_realtime_ms = (uint64_t)realtime_ms();
}

/* Whether j may leave the queue: the limits hold and every job queued before
 * it that competes for the same limit has gone first (a fair queue). */
static bool may_run(struct ferryd *d, struct job *j)
{
	int64_t max_live = settings_int(d->settings, "max-migrations");
	int64_t max_storage = settings_int(d->settings, "max-storage-migrations");
	int live, storage;

	for (struct job *o = d->jobs; o; o = o->next)
		if (o != j && o->stage == STAGE_QUEUED && o->id < j->id &&
		    ((o->live && j->live) || (o->storage && j->storage)))
			return false;
	migrations_active(d, &live, &storage); /* j is queued: not counted */
	return (!j->live || live < max_live) && (!j->storage || storage < max_storage);
}

void migrations_active(struct ferryd *d, int *ret_live, int *ret_storage)
{
	int live = 0, storage = 0;

	for (struct job *o = d->jobs; o; o = o->next)
		if (job_active(o)) {
			live += o->live;
			storage += o->storage;
		}
	/* incoming moves count too (review M7): each is live, and a storage
	 * migration when it brings its disks */
	for (struct vm *vm = d->vms; vm; vm = vm->next)
		if (vm->incoming) {
			live++;
			storage += json_is_true(json_object_get(vm->config, "_storage"));
		}
	*ret_live = live;
	*ret_storage = storage;
}

static void broadcast_all(struct ferryd *d)
{
	for (struct job *o = d->jobs; o; o = o->next)
		pthread_cond_broadcast(&o->changed);
}

void jobs_wake(struct ferryd *d) { broadcast_all(d); }

/* Finished jobs stay visible for 'ferry job list'; the oldest beyond this go. */
#define JOBS_KEPT 100

/* Frees what a job holds: the user's credential, "one hop, one move"
 * (review L1). Caller holds d->lock. */
static void job_release(struct job *j)
{
	gss_cred_free(j->caller.deleg_cred);
	j->caller.deleg_cred = NULL;
}

static void prune_finished(struct ferryd *d)
{
	size_t seen = 0;

	for (struct job **pp = &d->jobs; *pp;) {
		struct job *j = *pp;
		/* Never one that a thread or a job.watch still uses: its
		 * condition variable would be destroyed under them. */
		if (job_done(j) && ++seen > JOBS_KEPT && now_ms() - j->ended_ms > 60000 && !j->running &&
		    j->watchers == 0) {
			*pp = j->next;
			job_release(j);
			json_decref(j->args);
			json_decref(j->prediction);
			json_decref(j->ladder);
			pthread_cond_destroy(&j->changed);
			free(j);
			continue;
		}
		pp = &j->next;
	}
}

/* Memory and disk bytes a move has sent to the other host so far; a local
 * job (move-storage) sends none. Caller holds d->lock. */
static uint64_t job_bytes_sent(const struct job *j)
{
	if (!j->live)
		return 0;
	return j->mem_transferred + (j->disk_total > j->disk_remaining ? j->disk_total - j->disk_remaining : 0);
}

/* Counts a job that just ended, under the same lock as its end: its bytes
 * move from "under way" to "ended" without a gap or a double count. */
static void job_count_end(struct ferryd *d, struct job *j)
{
	if (j->stage == STAGE_COMPLETED)
		metrics_completed(&d->metrics, j->kind, job_bytes_sent(j), j->downtime_ms);
	else
		metrics_failed(&d->metrics, j->kind, stage_names[j->failed_stage], j->stage == STAGE_CANCELLED,
			       job_bytes_sent(j));
}

void jobs_metrics_now(struct ferryd *d, struct metrics_now *ret)
{
	struct metrics_now now = {0};
	int k;

	for (struct job *o = d->jobs; o; o = o->next) {
		if (o->stage == STAGE_QUEUED)
			now.queued++;
		if (!job_active(o))
			continue;
		if ((k = metrics_kind(o->kind)) >= 0)
			now.active[k]++;
		now.bytes_sending += job_bytes_sent(o);
	}
	for (struct vm *vm = d->vms; vm; vm = vm->next)
		now.incoming += vm->incoming;
	*ret = now;
}

/* Who asked, for the log: the Kerberos principal, or the local user. */
static void caller_text(const struct caller *c, char *buf, size_t len)
{
	if (c->principal[0])
		snprintf(buf, len, "%s", c->principal);
	else
		snprintf(buf, len, "uid %u", (unsigned)c->uid);
}

/* One line per step of a job: a move event (log.c). id, vm and dest do
 * not change after job_start: read without the lock. */
static void job_log(enum log_level level, const struct job *j, const char *phase, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void job_log(enum log_level level, const struct job *j, const char *phase, const char *fmt, ...)
{
	char msg[2560];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_move_event(level, &(struct log_move){.job = j->id, .vm = j->vm, .peer = j->dest, .phase = phase},
		       "%s", msg);
}

void job_set_disk_progress(struct ferryd *d, struct job *j, uint64_t total, uint64_t remaining)
{
	pthread_mutex_lock(&d->lock);
	j->disk_total = total;
	j->disk_remaining = remaining;
	pthread_mutex_unlock(&d->lock);
}

void job_set_disk_reuse(struct ferryd *d, struct job *j, uint64_t reused, uint64_t total)
{
	pthread_mutex_lock(&d->lock);
	j->disk_reused = reused;
	pthread_mutex_unlock(&d->lock);
	if (reused)
		job_log(LOG_INFO, j, "storage", "reusing %llu MiB of %llu MiB of disk that %s kept from an earlier "
			"move: sending the rest", (unsigned long long)(reused >> 20), (unsigned long long)(total >> 20),
			j->dest);
}

void job_set_prediction(struct ferryd *d, struct job *j, json_t *prediction)
{
	pthread_mutex_lock(&d->lock);
	json_decref(j->prediction);
	j->prediction = prediction;
	pthread_mutex_unlock(&d->lock);
}

void job_set_pause(struct ferryd *d, struct job *j, int64_t pause_ms, int64_t uncertainty_ms)
{
	pthread_mutex_lock(&d->lock);
	j->pause_ms = pause_ms;
	j->pause_uncertainty_ms = uncertainty_ms;
	pthread_mutex_unlock(&d->lock);
}

/* A bound on what one job holds: the ladder takes a step at most every few
 * passes, and max-passes is at most 100. */
#define LADDER_STEPS_KEPT 64

void job_ladder_step(struct ferryd *d, struct job *j, const char *rung, int pass, const char *reason)
{
	json_t *step = json_pack("{s:s, s:i, s:s}", "rung", rung, "pass", pass, "reason", reason);

	pthread_mutex_lock(&d->lock);
	if (step && json_array_size(j->ladder) < LADDER_STEPS_KEPT)
		json_array_append(j->ladder, step);
	pthread_mutex_unlock(&d->lock);
	json_decref(step);
	job_log(LOG_INFO, j, "memory", "ladder: %s at pass %d: %s", rung, pass, reason);
}

/* Where j is, for the log. Caller holds d->lock (or is j's own thread). */
static const char *job_phase(const struct job *j) { return j->phase ? j->phase : stage_names[j->stage]; }

static void set_stage(struct ferryd *d, struct job *j, enum job_stage s, const char *phase)
{
	double seconds = 0;
	int64_t downtime, pause;
	bool same, done;

	pthread_mutex_lock(&d->lock);
	same = j->stage == s && (j->phase == phase || (j->phase && phase && !strcmp(j->phase, phase)));
	j->stage = s;
	j->phase = phase;
	/* the span a prediction's total time is compared with */
	if ((s == STAGE_STORAGE || s == STAGE_MEMORY) && !j->copy_started_ms)
		j->copy_started_ms = now_ms();
	if (s == STAGE_CLEANUP)
		j->copy_ended_ms = now_ms();
	done = job_done(j);
	if (done) {
		job_mark_end(j);
		job_count_end(d, j);
		seconds = (double)(j->ended_ms - j->started_ms) / 1000.0;
	}
	downtime = j->downtime_ms;
	pause = j->pause_ms;
	broadcast_all(d); /* a finished job may let a queued one go */
	pthread_mutex_unlock(&d->lock);
	if (same)
		return; /* a stage that goes on: logged when it began */
	if (!done)
		job_log(LOG_INFO, j, job_phase(j), "started");
	else if (downtime >= 0 && pause >= 0)
		job_log(LOG_INFO, j, job_phase(j), "%s %s in %.1f s, the guest paused %lld ms (QEMU's downtime %lld ms)",
			j->kind, stage_names[s], seconds, (long long)pause, (long long)downtime);
	else if (downtime >= 0)
		job_log(LOG_INFO, j, job_phase(j), "%s %s in %.1f s, the guest paused %lld ms", j->kind, stage_names[s],
			seconds, (long long)downtime);
	else
		job_log(LOG_INFO, j, job_phase(j), "%s %s in %.1f s", j->kind, stage_names[s], seconds);
}

void job_set_stage(struct ferryd *d, struct job *j, enum job_stage s) { set_stage(d, j, s, NULL); }

void job_enter_phase(struct ferryd *d, struct job *j, enum job_stage s, const char *phase)
{
	set_stage(d, j, s, phase);
}

void job_fail(struct ferryd *d, struct job *j, const char *fmt, ...)
{
	const char *phase;
	va_list ap;

	pthread_mutex_lock(&d->lock);
	va_start(ap, fmt);
	vsnprintf(j->error, sizeof(j->error), fmt, ap);
	va_end(ap);
	utf8_clean(j->error); /* else job_json would drop it */
	phase = job_phase(j);
	j->failed_stage = j->stage;
	j->stage = j->cancel && !j->past_cancel_point ? STAGE_CANCELLED : STAGE_FAILED;
	job_mark_end(j);
	job_count_end(d, j);
	broadcast_all(d);
	pthread_mutex_unlock(&d->lock);
	/* "cancelled: cancelled by ..." says it once */
	if (!strncmp(j->error, stage_names[j->stage], strlen(stage_names[j->stage])))
		job_log(j->stage == STAGE_CANCELLED ? LOG_INFO : LOG_WARN, j, phase, "%s", j->error);
	else
		job_log(j->stage == STAGE_CANCELLED ? LOG_INFO : LOG_WARN, j, phase, "%s: %s",
			stage_names[j->stage], j->error);
}

bool job_cancelled(struct ferryd *d, struct job *j)
{
	bool c;

	pthread_mutex_lock(&d->lock);
	c = j->cancel && !j->past_cancel_point;
	pthread_mutex_unlock(&d->lock);
	return c;
}

static void *job_thread(void *arg)
{
	struct job_start_arg *a = arg;
	struct ferryd *d = a->d;
	struct job *j = a->j;

	pthread_mutex_lock(&d->lock);
	while (!may_run(d, j) && !j->cancel)
		pthread_cond_wait(&j->changed, &d->lock);
	if (j->cancel) {
		snprintf(j->error, sizeof(j->error), "cancelled while queued");
		j->failed_stage = STAGE_QUEUED;
		j->stage = STAGE_CANCELLED;
		job_mark_end(j);
		job_count_end(d, j);
		broadcast_all(d);
		pthread_mutex_unlock(&d->lock);
		job_log(LOG_INFO, j, stage_names[STAGE_QUEUED], "cancelled while queued");
	} else {
		j->stage = STAGE_SETUP;
		j->started_ms = now_ms();
		j->started_realtime_ms = (uint64_t)realtime_ms();
		metrics_started(&d->metrics, j->kind);
		broadcast_all(d);
		pthread_mutex_unlock(&d->lock);
		a->fn(d, j);
	}
	/* every way out of the job, cancelled while queued or failed early included */
	pthread_mutex_lock(&d->lock);
	job_release(j);
	j->running = false;
	pthread_mutex_unlock(&d->lock);
	free(a);
	return NULL;
}

int job_start(struct ferryd *d, const char *kind, const char *vm, const char *dest, bool live,
	      bool storage, json_t *args, struct caller *caller, void (*fn)(struct ferryd *, struct job *),
	      struct job **ret)
{
	struct job_start_arg *a;
	struct job *j;
	char who[280];
	pthread_t t;

	j = calloc(1, sizeof(*j));
	a = calloc(1, sizeof(*a));
	if (!j || !a) {
		free(j);
		free(a);
		return -ENOMEM;
	}
	snprintf(j->kind, sizeof(j->kind), "%s", kind);
	snprintf(j->vm, sizeof(j->vm), "%s", vm);
	snprintf(j->dest, sizeof(j->dest), "%s", dest ? dest : "");
	j->live = live;
	j->storage = storage;
	j->stage = STAGE_QUEUED;
	j->args = json_incref(args);
	j->caller = *caller;
	caller->deleg_cred = NULL; /* the job owns the credential now */
	j->created_realtime = (uint64_t)time(NULL);
	j->downtime_ms = -1;
	j->pause_ms = j->pause_uncertainty_ms = -1;
	j->ladder = json_array();
	pthread_cond_init(&j->changed, NULL);
	j->running = true;
	a->d = d;
	a->j = j;
	a->fn = fn;

	pthread_mutex_lock(&d->lock);
	prune_finished(d);
	j->id = d->next_job_id++;
	j->next = d->jobs;
	d->jobs = j;
	pthread_mutex_unlock(&d->lock);
	caller_text(&j->caller, who, sizeof(who));
	job_log(LOG_INFO, j, stage_names[STAGE_QUEUED], "%s asked by %s", kind, who);
	if (pthread_create(&t, NULL, job_thread, a) != 0) {
		job_fail(d, j, "cannot start a thread for the job");
		pthread_mutex_lock(&d->lock);
		job_release(j);
		j->running = false;
		pthread_mutex_unlock(&d->lock);
		free(a);
		return -EAGAIN;
	}
	pthread_detach(t);
	*ret = j;
	return 0;
}

json_t *job_json(struct job *j)
{
	uint64_t end = j->ended_ms ? j->ended_ms : now_ms();
	double elapsed = j->started_ms ? (double)(end - j->started_ms) / 1000.0 : 0;
	json_t *o;
	double eta = -1;

	if (j->mbps > 0 && (j->stage == STAGE_MEMORY || j->stage == STAGE_STORAGE))
		eta = (double)(j->mem_remaining + j->disk_remaining) * 8.0 / (j->mbps * 1e6);
	o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:b, s:i, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:I, s:b}",
		      "id", (json_int_t)j->id, "kind", j->kind, "vm", j->vm, "dest", j->dest, "stage",
		      stage_names[j->stage], "include-storage", j->storage, "pass", j->pass, "memory-total",
		      (json_int_t)j->mem_total, "memory-remaining", (json_int_t)j->mem_remaining,
		      "memory-transferred", (json_int_t)j->mem_transferred, "disk-total",
		      (json_int_t)j->disk_total, "disk-remaining", (json_int_t)j->disk_remaining, "mbps",
		      j->mbps, "eta-seconds", eta, "elapsed-seconds", elapsed, "created",
		      (json_int_t)j->created_realtime, "done", job_done(j));
	if (j->downtime_ms >= 0)
		json_object_set_new(o, "downtime-ms", json_integer(j->downtime_ms));
	if (j->disk_reused)
		json_object_set_new(o, "disk-reused", json_integer((json_int_t)j->disk_reused));
	if (j->started_realtime_ms)
		json_object_set_new(o, "started", json_real((double)j->started_realtime_ms / 1000.0));
	if (j->ended_realtime_ms)
		json_object_set_new(o, "ended", json_real((double)j->ended_realtime_ms / 1000.0));
	if (j->prediction)
		json_object_set_new(o, "prediction", json_deep_copy(j->prediction));
	if (j->stage == STAGE_COMPLETED && j->copy_started_ms && j->copy_ended_ms >= j->copy_started_ms) {
		json_t *a = json_pack("{s:f, s:i}", "total-seconds",
				      (double)(j->copy_ended_ms - j->copy_started_ms) / 1000.0, "passes", j->pass);
		if (j->downtime_ms >= 0)
			json_object_set_new(a, "downtime-ms", json_integer(j->downtime_ms));
		json_object_set_new(o, "actual", a);
	}
	if (j->pause_ms >= 0) {
		json_object_set_new(o, "pause-ms", json_integer(j->pause_ms));
		json_object_set_new(o, "pause-uncertainty-ms", json_integer(j->pause_uncertainty_ms));
	}
	if (j->ended_ms && j->started_ms)
		json_object_set_new(o, "total-ms", json_integer((json_int_t)(j->ended_ms - j->started_ms)));
	json_object_set_new(o, "ladder", j->ladder ? json_deep_copy(j->ladder) : json_array());
	if (j->error[0]) {
		json_object_set_new(o, "error", json_string(j->error));
		json_object_set_new(o, "failed-stage", json_string(stage_names[j->failed_stage]));
	}
	return o;
}

static struct job *job_find(struct ferryd *d, json_t *args, json_t **ret_err)
{
	json_t *id = json_object_get(args, "id");

	if (!json_is_integer(id)) {
		*ret_err = reply_error("bad_request", NULL, "missing job 'id' (a number)");
		return NULL;
	}
	for (struct job *j = d->jobs; j; j = j->next)
		if ((json_int_t)j->id == json_integer_value(id))
			return j;
	*ret_err = reply_error("not_found", "see 'ferry job list'", "no job %lld on this host",
			       (long long)json_integer_value(id));
	return NULL;
}

static json_t *op_list(struct request *req)
{
	json_t *arr = json_array();

	pthread_mutex_lock(&req->d->lock);
	for (struct job *j = req->d->jobs; j; j = j->next)
		json_array_insert_new(arr, 0, job_json(j));
	pthread_mutex_unlock(&req->d->lock);
	return reply_ok(json_pack("{s:o}", "jobs", arr));
}

static json_t *op_show(struct request *req)
{
	json_t *err = NULL, *r;
	struct job *j;

	pthread_mutex_lock(&req->d->lock);
	j = job_find(req->d, req->args, &err);
	r = j ? reply_ok(job_json(j)) : err;
	pthread_mutex_unlock(&req->d->lock);
	return r;
}

static json_t *op_cancel(struct request *req)
{
	json_t *err = NULL, *r;
	const char *phase = NULL;
	char who[280];
	struct job *j;

	pthread_mutex_lock(&req->d->lock);
	j = job_find(req->d, req->args, &err);
	if (!j)
		r = err;
	else if (job_done(j))
		r = reply_error("refused", NULL, "job %llu has already %s", (unsigned long long)j->id,
				stage_names[j->stage]);
	else if (j->past_cancel_point)
		r = reply_error("refused", "wait for it to finish",
				"job %llu is past the switchover: the VM is already resuming on %s",
				(unsigned long long)j->id, j->dest);
	else {
		j->cancel = true;
		pthread_cond_broadcast(&j->changed);
		r = reply_ok(job_json(j));
		phase = job_phase(j);
	}
	pthread_mutex_unlock(&req->d->lock);
	/* j is not done: it stays listed (prune_finished) */
	if (phase) {
		caller_text(req->caller, who, sizeof(who));
		job_log(LOG_INFO, j, phase, "cancel asked by %s", who);
	}
	return r;
}

/* Streams a progress event about twice a second until the job ends; the
 * reply is the final state. */
static json_t *op_watch(struct request *req)
{
	struct ferryd *d = req->d;
	json_t *err = NULL, *ev;
	struct job *j;
	int r = 0;

	pthread_mutex_lock(&d->lock);
	j = job_find(d, req->args, &err);
	if (!j) {
		pthread_mutex_unlock(&d->lock);
		return err;
	}
	j->watchers++; /* it is not pruned while the lock is dropped below */
	while (!job_done(j) && r >= 0) {
		struct timespec ts;
		ev = job_json(j);
		json_object_set_new(ev, "event", json_string("progress"));
		pthread_mutex_unlock(&d->lock);
		r = conn_send(req->conn, ev);
		json_decref(ev);
		pthread_mutex_lock(&d->lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 500000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (!job_done(j))
			pthread_cond_timedwait(&j->changed, &d->lock, &ts);
	}
	ev = job_json(j);
	j->watchers--;
	pthread_mutex_unlock(&d->lock);
	return reply_ok(ev);
}

const struct op_def job_ops[] = {
	{OP_JOB_LIST, op_list, OP_USER}, {OP_JOB_SHOW, op_show, OP_USER}, {OP_JOB_CANCEL, op_cancel, OP_USER}, {OP_JOB_WATCH, op_watch, OP_USER},
	{NULL, NULL, 0},
};
