/* The persisted phase of a move (move_state.h). */
#include "move_state.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static const char *const names[] = {
	[MOVE_SETUP] = "setup",         [MOVE_STORAGE] = "storage", [MOVE_MEMORY] = "memory",
	[MOVE_SWITCHOVER] = "switchover", [MOVE_FINISH] = "finish",   [MOVE_CLEANUP] = "cleanup",
};

const char *move_phase_name(enum move_phase p)
{
	return (size_t)p < ARRAY_SIZE(names) ? names[p] : "?";
}

bool move_phase_parse(const char *name, enum move_phase *ret)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(names); i++)
		if (!strcmp(names[i], name)) {
			*ret = (enum move_phase)i;
			return true;
		}
	return false;
}

static void record_path(const char *rundir, char *out, size_t len)
{
	snprintf(out, len, "%s/moving.json", rundir);
}

int move_record_write(const char *rundir, const struct move_record *rec)
{
	char path[PATH_MAX + 16];
	json_t *o;
	int r;

	record_path(rundir, path, sizeof(path));
	o = json_pack("{s:s, s:I, s:s, s:b, s:b}", "dest", rec->dest, "job", (json_int_t)rec->job, "phase",
		      move_phase_name(rec->phase), "storage", rec->storage, "keep-disks", rec->keep_disks);
	r = o ? write_json_atomic(path, o, JSON_COMPACT, 0600) : -ENOMEM;
	json_decref(o);
	return r;
}

int move_record_remove(const char *rundir)
{
	char path[PATH_MAX + 16];

	record_path(rundir, path, sizeof(path));
	if (unlink(path) < 0 && errno != ENOENT) {
		/* harmless: recovery would only cancel a migration that is not there */
		log_warn("cannot remove %s: %s", path, strerror(errno));
		return -errno;
	}
	return 0;
}

int move_record_read(const char *rundir, struct move_record *ret)
{
	char path[PATH_MAX + 16], *text = NULL;
	const char *dest, *phase;
	json_t *o;
	size_t len;
	int r;

	record_path(rundir, path, sizeof(path));
	if ((r = read_file(path, 4096, &text, &len)) < 0)
		return r;
	o = json_loads(text, 0, NULL);
	free(text);
	memset(ret, 0, sizeof(*ret));
	dest = json_string_value(json_object_get(o, "dest"));
	phase = json_string_value(json_object_get(o, "phase"));
	if (!dest || strlen(dest) >= sizeof(ret->dest)) {
		json_decref(o);
		return -EBADMSG;
	}
	snprintf(ret->dest, sizeof(ret->dest), "%s", dest);
	ret->job = (uint64_t)json_integer_value(json_object_get(o, "job"));
	ret->storage = json_is_true(json_object_get(o, "storage"));
	ret->keep_disks = json_is_true(json_object_get(o, "keep-disks"));
	/* a record without a phase (written before phases were kept) says
	 * only whether the destination had been told to resume the guest */
	if (!move_phase_parse(phase, &ret->phase))
		ret->phase = json_is_true(json_object_get(o, "finish-sent")) ? MOVE_FINISH : MOVE_MEMORY;
	json_decref(o);
	return 0;
}

enum move_recovery move_recovery_for(enum move_phase p)
{
	switch (p) {
	case MOVE_SETUP:
	case MOVE_STORAGE:
	case MOVE_MEMORY:
	case MOVE_SWITCHOVER:
		/* the destination resumes only on migrate.finish, not yet sent */
		return RECOVER_ROLL_BACK;
	case MOVE_FINISH:
		/* sent, or about to be: only the destination knows */
		return RECOVER_KEEP_PAUSED;
	case MOVE_CLEANUP:
		return RECOVER_FINISH_CLEANUP;
	}
	return RECOVER_KEEP_PAUSED;
}
