/* blockjob.c against query-block-jobs replies recorded from QEMU 7.2
 * (qmp-replies/query-block-jobs.json), replayed by a fake QEMU over QMP
 * (fake_qemu.h, through the real vm_qmp.c and qmp.c): the one
 * polling loop, its ends (ready, gone, failed, cancelled, timed out), and
 * the cleanup. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blockjob.h"
#include "fake_qemu.h"
#include "util.h"

#define MAX_STEPS 16

/* The script a test plays: the replies to successive query-block-jobs, by
 * name in the recorded file; every other command is logged and answered {}. */
static struct {
	json_t *recorded;
	const char *replies[MAX_STEPS];
	size_t n, next;
	char log[4096];
} qemu;

static struct vm vm;

/* QEMU's side, on the fake's thread (no cmocka assertions here) */
static int answer(const char *cmd, json_t *args, json_t **ret, char *err, size_t errlen)
{
	if (!strcmp(cmd, "query-block-jobs")) {
		const char *name = qemu.replies[qemu.next < qemu.n ? qemu.next++ : qemu.n - 1];
		*ret = json_deep_copy(json_object_get(qemu.recorded, name));
		if (!*ret) {
			snprintf(err, errlen, "no recorded reply %s", name);
			return -1;
		}
		return 0;
	}
	char *a = args ? json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	snprintf(qemu.log + strlen(qemu.log), sizeof(qemu.log) - strlen(qemu.log), "%s %s\n", cmd, a ? a : "");
	free(a);
	return 0;
}

static void play(const char *first, ...)
{
	va_list ap;

	qemu.n = qemu.next = 0;
	qemu.log[0] = '\0';
	va_start(ap, first);
	for (const char *s = first; s && qemu.n < MAX_STEPS; s = va_arg(ap, const char *))
		qemu.replies[qemu.n++] = s;
	va_end(ap);
}

static int load(void **state)
{
	(void)state;
	qemu.recorded = json_load_file(QMP_REPLIES "/query-block-jobs.json", 0, NULL);
	return qemu.recorded && fake_qemu_start(&vm, "web1", answer) == 0 ? 0 : -1;
}

static int unload(void **state)
{
	(void)state;
	fake_qemu_stop(&vm);
	json_decref(qemu.recorded);
	return 0;
}

struct seen {
	int rounds;
	uint64_t remaining[MAX_STEPS];
	int stop_after; /* 0: never */
};

static int count_round(void *ctx, const struct blockjob_progress *p)
{
	struct seen *s = ctx;

	s->remaining[s->rounds++] = p->remaining;
	return s->stop_after && s->rounds >= s->stop_after ? -ECANCELED : 0;
}

static void ready_after_progress(void **state)
{
	struct seen s = {0};
	char err[256] = "";

	(void)state;
	play("running", "half", "ready", NULL);
	assert_int_equal(blockjob_wait(&vm, "ms", 1, BLOCKJOB_READY, now_ms() + 10000, 1, count_round, &s, err,
				       sizeof(err)), 0);
	assert_int_equal(s.rounds, 2);
	assert_int_equal(s.remaining[0], 64ULL << 20);
	assert_int_equal(s.remaining[1], 16ULL << 20);
	assert_string_equal(qemu.log, ""); /* a wait for sync changes nothing */
}

static void failed_copy_is_reported(void **state)
{
	char err[256] = "";

	(void)state;
	play("running", "concluded-error", NULL);
	assert_int_equal(blockjob_wait(&vm, "ms", 1, BLOCKJOB_READY, now_ms() + 10000, 1, NULL, NULL, err,
				       sizeof(err)), -EIO);
	assert_string_equal(err, "No space left on device");
	play("concluded-error", NULL);
	assert_int_equal(blockjob_wait(&vm, "ms", 1, BLOCKJOB_GONE, now_ms() + 10000, 1, NULL, NULL, err,
				       sizeof(err)), -EIO);
	assert_string_equal(err, "No space left on device");
	assert_null(strstr(qemu.log, "job-dismiss")); /* kept for the error */
}

static void vanished_or_foreign_jobs_are_missing(void **state)
{
	char err[256] = "";

	(void)state;
	play("none", NULL);
	assert_int_equal(blockjob_wait(&vm, "ms", 1, BLOCKJOB_READY, now_ms() + 10000, 1, NULL, NULL, err,
				       sizeof(err)), -EIO);
	assert_non_null(strstr(err, "stopped unexpectedly"));
	/* ms-mirror0 is not of the family "mig" */
	play("ready", NULL);
	assert_int_equal(blockjob_wait(&vm, "mig", 1, BLOCKJOB_READY, now_ms() + 10000, 1, NULL, NULL, err,
				       sizeof(err)), -EIO);
}

static void gone_dismisses_concluded(void **state)
{
	char err[256] = "";

	(void)state;
	play("ready", "concluded", "none", NULL);
	assert_int_equal(blockjob_finish_all(&vm, "ms", 1, true, err, sizeof(err)), 0);
	assert_int_equal(blockjob_wait(&vm, "ms", 1, BLOCKJOB_GONE, now_ms() + 10000, 1, NULL, NULL, err,
				       sizeof(err)), 0);
	assert_string_equal(qemu.log, "block-job-complete {\"device\":\"ms-mirror0\"}\n"
				      "job-dismiss {\"id\":\"ms-mirror0\"}\n");
}

static void round_and_deadline_end_the_wait(void **state)
{
	struct seen s = {.stop_after = 1};
	char err[256] = "";

	(void)state;
	play("running", NULL);
	assert_int_equal(blockjob_wait(&vm, "ms", 1, BLOCKJOB_READY, now_ms() + 10000, 1, count_round, &s, err,
				       sizeof(err)), -ECANCELED);
	play("running", NULL);
	assert_int_equal(blockjob_wait(&vm, "ms", 1, BLOCKJOB_READY, now_ms() - 1, 1, NULL, NULL, err, sizeof(err)),
			 -ETIMEDOUT);
}

static void abandon_cancels_dismisses_and_deletes(void **state)
{
	char err[256] = "";

	(void)state;
	(void)err;
	play("running", "concluded-error", "none", NULL);
	blockjob_abandon(&vm, "ms", 1, 5000);
	assert_string_equal(qemu.log, "block-job-cancel {\"device\":\"ms-mirror0\",\"force\":true}\n"
				      "job-dismiss {\"id\":\"ms-mirror0\"}\n"
				      "blockdev-del {\"node-name\":\"ms-tgt0\"}\n");
}

static void mirror_names_job_and_target(void **state)
{
	char err[256] = "";

	(void)state;
	play("none", NULL);
	assert_int_equal(blockjob_mirror_start(&vm, "mig", 2, "disk2", "full", err, sizeof(err)), 0);
	assert_string_equal(qemu.log, "blockdev-mirror {\"auto-dismiss\":false,\"device\":\"disk2\",\"job-id\":"
				      "\"mig-mirror2\",\"sync\":\"full\",\"target\":\"mig-tgt2\"}\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ready_after_progress),
		cmocka_unit_test(failed_copy_is_reported),
		cmocka_unit_test(vanished_or_foreign_jobs_are_missing),
		cmocka_unit_test(gone_dismisses_concluded),
		cmocka_unit_test(round_and_deadline_end_the_wait),
		cmocka_unit_test(abandon_cancels_dismisses_and_deletes),
		cmocka_unit_test(mirror_names_job_and_target),
	};
	return cmocka_run_group_tests(tests, load, unload);
}
