/* 'ferry job watch --json': one JSON object a line per event (docs/events.md). */
#pragma once
#include <jansson.h>
#include <stdint.h>

struct event_stream {
	json_int_t job;
	char stage[32];        /* the last stage shown: a change is a "stage" event */
	size_t ladder_seen;    /* the stall ladder's steps shown: each new one is a "ladder" event */
};

/* The event name about job id from a job object (a job.watch event or the
 * final state), stamped time_ms (unix ms). */
json_t *job_event(const char *name, json_int_t id, json_t *job, uint64_t time_ms);
/* The stall ladder's step (an element of the job's "ladder") as an event. */
json_t *ladder_event(json_int_t id, json_t *job, json_t *step, uint64_t time_ms);
/* These print to stdout, one line each, flushed. */
void events_progress(struct event_stream *es, json_t *job);
void events_done(struct event_stream *es, json_t *job);
void events_error(struct event_stream *es, const char *code, const char *message);
