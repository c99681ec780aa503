/* 'ferry job watch ID --json': the job's events as JSON Lines, one compact
 * object a line, flushed at once, in the shape docs/events.md describes.
 * The shape is the CLI's, built here from job.watch's progress events and
 * final state: the wire may grow fields without changing it. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"

/* The numbers a job has, named as in 'ferry job show'; copied when present. */
static const char *const numbers[] = {
	"pass", "memory-total", "memory-remaining", "memory-transferred", "disk-total", "disk-remaining", "disk-reused",
	"mbps", "eta-seconds", "elapsed-seconds", "downtime-ms", "pause-ms", "pause-uncertainty-ms", "total-ms", NULL,
};

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static uint64_t unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

json_t *job_event(const char *name, json_int_t id, json_t *job, uint64_t time_ms)
{
	json_t *ev = json_pack("{s:s, s:I, s:I, s:s}", "event", name, "job", id, "time", (json_int_t)time_ms, "stage",
			       str(job, "stage"));
	bool numbered = !strcmp(name, "progress") || !strcmp(name, "done");

	if (!ev)
		return NULL;
	for (size_t i = 0; numbered && numbers[i]; i++) {
		json_t *v = json_object_get(job, numbers[i]);
		/* no estimate is -1 on the wire: left out here */
		if (json_is_number(v) && !(!strcmp(numbers[i], "eta-seconds") && json_number_value(v) < 0))
			json_object_set(ev, numbers[i], v);
	}
	if (!strcmp(name, "done")) {
		json_object_set_new(ev, "outcome", json_string(str(job, "stage")));
		if (json_is_string(json_object_get(job, "error"))) {
			json_object_set(ev, "error", json_object_get(job, "error"));
			json_object_set(ev, "failed-stage", json_object_get(job, "failed-stage"));
		}
	}
	return ev;
}

json_t *ladder_event(json_int_t id, json_t *job, json_t *step, uint64_t time_ms)
{
	json_t *ev = json_pack("{s:s, s:I, s:I, s:s, s:s, s:I, s:s}", "event", "ladder", "job", id, "time",
			       (json_int_t)time_ms, "stage", str(job, "stage"), "rung", str(step, "rung"), "pass",
			       json_integer_value(json_object_get(step, "pass")), "reason", str(step, "reason"));
	return ev;
}

static void emit(json_t *ev)
{
	char *s = ev ? json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	if (s) {
		printf("%s\n", s);
		fflush(stdout); /* a reader sees each event when it happens */
	}
	free(s);
	json_decref(ev);
}

/* A "stage" event first when the stage changed (the first event included). */
static void stage_change(struct event_stream *es, json_t *job, uint64_t t)
{
	const char *stage = str(job, "stage");

	if (!strcmp(stage, es->stage))
		return;
	snprintf(es->stage, sizeof(es->stage), "%s", stage);
	emit(job_event("stage", es->job, job, t));
}

/* A "ladder" event for each step of the stall ladder not shown yet. */
static void ladder_steps(struct event_stream *es, json_t *job, uint64_t t)
{
	json_t *steps = json_object_get(job, "ladder");

	for (; es->ladder_seen < json_array_size(steps); es->ladder_seen++)
		emit(ladder_event(es->job, job, json_array_get(steps, es->ladder_seen), t));
}

void events_progress(struct event_stream *es, json_t *job)
{
	uint64_t t = unix_ms();

	stage_change(es, job, t);
	ladder_steps(es, job, t);
	emit(job_event("progress", es->job, job, t));
}

void events_done(struct event_stream *es, json_t *job)
{
	uint64_t t = unix_ms();

	stage_change(es, job, t);
	ladder_steps(es, job, t);
	emit(job_event("done", es->job, job, t));
}

void events_error(struct event_stream *es, const char *code, const char *message)
{
	emit(json_pack("{s:s, s:I, s:I, s:s, s:s}", "event", "error", "job", es->job, "time", (json_int_t)unix_ms(),
		       "code", code, "message", message));
}
