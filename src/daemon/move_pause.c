/* The guest's pause in a move as ferry measures it (move.h): from the
 * moment QEMU stopped it on the source (its STOP event, in the source's wall
 * clock) to the moment the destination's `cont` returned (in the
 * destination's wall clock, sent back in migrate.finish's reply). The two
 * clocks are related by the round trip of migrate.addresses, whose answer
 * carries the destination's clock: offset = dest - (send + receive) / 2,
 * known within half the round trip (NTP-synchronized hosts differ by far
 * less, but nothing here assumes it). QEMU's own "downtime" ends when the
 * source has sent the last state; this pause also covers the destination's
 * finish (save, resume), which is what the guest sees. */
#include <stdio.h>

#include "log.h"
#include "move.h"
#include "peer_msg.h"
#include "util.h"
#include "vm_qmp.h"

void move_clock_sample(struct move *m, int64_t t_send, int64_t t_recv, int64_t dest_clock_ms)
{
	if (dest_clock_ms <= 0 || t_recv < t_send)
		return; /* an older destination, or this clock stepped back: unknown */
	m->clock_offset_ms = dest_clock_ms - (t_send + t_recv) / 2;
	/* half the round trip, and a millisecond for each clock's rounding */
	m->clock_uncertainty_ms = (t_recv - t_send + 1) / 2 + 1;
	m->clock_known = true;
}

/* QEMU stamps events with the host's wall clock: {"seconds", "microseconds"}. */
static int64_t event_ms(json_t *ev)
{
	json_t *ts = json_object_get(ev, "timestamp");
	json_int_t s = json_integer_value(json_object_get(ts, "seconds"));
	json_int_t us = json_integer_value(json_object_get(ts, "microseconds"));

	if (s <= 0 || us < 0)
		return 0;
	return (int64_t)s * 1000 + (int64_t)us / 1000;
}

void move_note_stop(struct move *m)
{
	json_t *ev = NULL;
	int64_t t = 0;

	if (vm_qmp_take_event(m->vm, "STOP", &ev) == 0)
		t = event_ms(ev);
	json_decref(ev);
	/* the event read with every reply since the migration began (qmp.c
	 * keeps them); without it, when the memory loop saw the guest paused */
	if (t > 0 && t <= m->stop_seen_ms) {
		m->stop_ms = t;
		m->stop_late_ms = 0;
	} else {
		m->stop_ms = m->stop_seen_ms;
		m->stop_late_ms = MOVE_MEMORY_POLL_MS;
	}
}

void move_note_resume(struct move *m, json_t *finish_reply)
{
	int64_t resumed = 0, pause, uncertainty;
	char err[256];

	if (peer_read_finish_reply(finish_reply, &resumed, err, sizeof(err)) < 0) {
		/* the guest runs there: a bad number costs the measure, not the move */
		log_warn("job %llu: %s", (unsigned long long)m->j->id, err);
		return;
	}
	if (!resumed || !m->clock_known || !m->stop_ms)
		return;
	pause = resumed - m->clock_offset_ms - m->stop_ms;
	uncertainty = m->clock_uncertainty_ms + m->stop_late_ms;
	job_set_pause(m->d, m->j, pause < 0 ? 0 : pause, uncertainty);
}
