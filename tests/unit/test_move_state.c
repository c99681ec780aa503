/* move_state.c: the record a source keeps of a move's phase (moving.json),
 * and what a restart does at each phase. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "move_state.h"
#include "util.h"

static char dir[64];

static int make_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ferry-test-ms-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
	(void)state;
	return remove_tree(dir);
}

/* A destination name with quotes and backslashes stays one JSON string
 * (review L2), and every field comes back. */
static void record_round_trip(void **state)
{
	struct move_record rec = {.job = 17, .phase = MOVE_SWITCHOVER, .storage = true, .keep_disks = true}, back;
	const char *dest = "h\"2\\\", \"finish-sent\": true, \"x\": \"";

	(void)state;
	snprintf(rec.dest, sizeof(rec.dest), "%s", dest);
	assert_int_equal(move_record_write(dir, &rec), 0);
	assert_int_equal(move_record_read(dir, &back), 0);
	assert_string_equal(back.dest, dest);
	assert_int_equal(back.job, 17);
	assert_int_equal(back.phase, MOVE_SWITCHOVER);
	assert_true(back.storage && back.keep_disks);
	assert_int_equal(move_record_remove(dir), 0);
	assert_int_equal(move_record_read(dir, &back), -ENOENT);
	assert_int_equal(move_record_remove(dir), 0); /* already gone: fine */
}

#define OLD_SENT "{\"dest\": \"h2\", \"finish-sent\": true}"
#define OLD_NOT_SENT "{\"dest\": \"h2\", \"finish-sent\": false}"

/* A record written before phases were kept says only finish-sent. */
static void old_record_is_understood(void **state)
{
	char path[128];
	struct move_record back;

	(void)state;
	snprintf(path, sizeof(path), "%s/moving.json", dir);
	assert_int_equal(write_file_atomic(path, OLD_SENT, strlen(OLD_SENT), 0600), 0);
	assert_int_equal(move_record_read(dir, &back), 0);
	assert_int_equal(back.phase, MOVE_FINISH);
	assert_int_equal(write_file_atomic(path, OLD_NOT_SENT, strlen(OLD_NOT_SENT), 0600), 0);
	assert_int_equal(move_record_read(dir, &back), 0);
	assert_int_equal(move_recovery_for(back.phase), RECOVER_ROLL_BACK);
	assert_int_equal(write_file_atomic(path, "[1]", 3, 0600), 0);
	assert_int_equal(move_record_read(dir, &back), -EBADMSG);
}

static void write_error_is_reported(void **state)
{
	struct move_record rec = {.phase = MOVE_FINISH};
	char gone[128];

	(void)state;
	snprintf(gone, sizeof(gone), "%s/no-such-dir", dir);
	snprintf(rec.dest, sizeof(rec.dest), "host2");
	assert_int_equal(move_record_write(gone, &rec), -ENOENT);
}

/* Only a move that had not told the destination to resume the guest is
 * rolled back; one that may have, stays paused; one that had, is removed. */
static void recovery_per_phase(void **state)
{
	enum move_phase p;

	(void)state;
	assert_int_equal(move_recovery_for(MOVE_SETUP), RECOVER_ROLL_BACK);
	assert_int_equal(move_recovery_for(MOVE_STORAGE), RECOVER_ROLL_BACK);
	assert_int_equal(move_recovery_for(MOVE_MEMORY), RECOVER_ROLL_BACK);
	assert_int_equal(move_recovery_for(MOVE_SWITCHOVER), RECOVER_ROLL_BACK);
	assert_int_equal(move_recovery_for(MOVE_FINISH), RECOVER_KEEP_PAUSED);
	assert_int_equal(move_recovery_for(MOVE_CLEANUP), RECOVER_FINISH_CLEANUP);
	for (int i = MOVE_SETUP; i <= MOVE_CLEANUP; i++) {
		assert_true(move_phase_parse(move_phase_name((enum move_phase)i), &p));
		assert_int_equal(p, i);
	}
	assert_false(move_phase_parse("nap", &p));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(record_round_trip),
		cmocka_unit_test(old_record_is_understood),
		cmocka_unit_test(write_error_is_reported),
		cmocka_unit_test(recovery_per_phase),
	};
	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
