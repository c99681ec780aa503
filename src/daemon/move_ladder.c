/* The stall ladder applied to a move (move.h): the rung stall_ladder.c
 * decides, done over QMP, recorded in the job (its "ladder" list and the
 * log), and a cancel that leaves the guest running here. */
#include <errno.h>
#include <stdio.h>

#include "move.h"
#include "settings.h"
#include "stall_ladder.h"
#include "vm_qmp.h"

void move_ladder_init(struct move *m, struct ladder *l)
{
	struct ladder_settings set = {.performance = m->perf};
	int policy;

	pthread_mutex_lock(&m->d->lock);
	policy = ladder_policy_parse(settings_str(m->d->settings, "on-stall"));
	set.downtime_ms = settings_int(m->d->settings, "downtime-ms");
	set.budget_ms = settings_int(m->d->settings, "max-downtime-ms");
	set.max_passes = settings_int(m->d->settings, "max-passes");
	pthread_mutex_unlock(&m->d->lock);
	set.policy = policy < 0 ? LADDER_POLICY_LADDER : (enum ladder_policy)policy;
	ladder_init(l, &set);
}

int move_ladder_step(struct move *m, struct ladder *l, const struct ladder_sample *s)
{
	struct ladder_step step;
	enum ladder_rung rung = ladder_next(l, s, &step);
	int r = 0;

	switch (rung) {
	case RUNG_NONE:
		return 0;
	case RUNG_CHANNELS:
	case RUNG_CANCEL:
		break; /* nothing to tell QEMU */
	case RUNG_DOWNTIME:
	case RUNG_SWITCHOVER:
	case RUNG_FORCE:
		r = qmpf(m->vm, m->err, sizeof(m->err), NULL, "migrate-set-parameters", "{s:I}", "downtime-limit",
			 (json_int_t)step.limit_ms);
		break;
	case RUNG_THROTTLE:
		/* auto-converge was armed at the start, held at 1% (stall_ladder.c) */
		r = qmpf(m->vm, m->err, sizeof(m->err), NULL, "migrate-set-parameters", "{s:i, s:i, s:i}",
			 "max-cpu-throttle", LADDER_THROTTLE_MAX, "cpu-throttle-initial", LADDER_THROTTLE_INCREMENT,
			 "cpu-throttle-increment", LADDER_THROTTLE_INCREMENT);
		break;
	}
	job_ladder_step(m->d, m->j, ladder_rung_name(rung), step.pass, step.reason);
	if (r < 0)
		return r;
	if (rung == RUNG_CANCEL) {
		/* the job ends cancelled, with the ladder's reason; the walk
		 * back resumes the guest here */
		snprintf(m->err, sizeof(m->err), "the stall ladder cancelled the move: %s", step.reason);
		m->gave_up = true;
		pthread_mutex_lock(&m->d->lock);
		m->j->cancel = true;
		pthread_mutex_unlock(&m->d->lock);
		return -ECANCELED;
	}
	return 0;
}
