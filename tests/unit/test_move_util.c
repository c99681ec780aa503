/* move_util.c without QEMU: the moving.json record (review L2), the key
 * directories and the key text (review L1). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "move_util.h"
#include "util.h"

/* move_util.c talks to QEMU only through this; these tests never do. */
int vm_qmp(struct vm *vm, const char *cmd, json_t *args, json_t **ret, char *err, size_t errlen)
{
	(void)vm, (void)cmd, (void)args, (void)ret;
	snprintf(err, errlen, "no QEMU in unit tests");
	return -ENOTSUP;
}

static char dir[64];

static int make_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ferry-test-mu-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
	(void)state;
	return remove_tree(dir);
}

static json_t *load_marker(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/moving.json", dir);
	return json_load_file(path, 0, NULL);
}

/* A destination name with quotes and backslashes stays one JSON string. */
static void marker_is_json(void **state)
{
	const char *dest = "h\"2\\\", \"finish-sent\": true, \"x\": \"";
	json_t *m;

	(void)state;
	assert_int_equal(moving_marker(dir, dest, false), 0);
	m = load_marker();
	assert_non_null(m);
	assert_string_equal(json_string_value(json_object_get(m, "dest")), dest);
	assert_true(json_is_false(json_object_get(m, "finish-sent")));
	assert_int_equal(json_object_size(m), 2);
	json_decref(m);
	assert_int_equal(moving_marker(dir, "host2.example.com", true), 0);
	m = load_marker();
	assert_true(json_is_true(json_object_get(m, "finish-sent")));
	json_decref(m);
	assert_int_equal(moving_marker(dir, NULL, false), 0);
	assert_null(load_marker());
	assert_int_equal(moving_marker(dir, NULL, false), 0); /* already gone: fine */
}

/* A write that fails is reported, so the move can stop before "finish". */
static void marker_write_error(void **state)
{
	char gone[128];

	(void)state;
	snprintf(gone, sizeof(gone), "%s/no-such-dir", dir);
	assert_int_equal(moving_marker(gone, "host2.example.com", true), -ENOENT);
}

/* After a restart the source removes the key directories of its moves
 * (tls-JOB), and nothing else in the run directory (review L1). */
static void psk_dirs_removed(void **state)
{
	char path[160];

	(void)state;
	snprintf(path, sizeof(path), "%s/tls-17", dir);
	assert_int_equal(mkdir_p(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/tls-17/keys.psk", dir);
	assert_int_equal(write_file_atomic(path, "ferry-move-17:00112233\n", 23, 0600), 0);
	snprintf(path, sizeof(path), "%s/qmp.sock", dir);
	assert_int_equal(write_file_atomic(path, "x", 1, 0600), 0);
	assert_int_equal(psk_dirs_remove(dir), 0);
	snprintf(path, sizeof(path), "%s/tls-17", dir);
	assert_false(path_exists(path));
	snprintf(path, sizeof(path), "%s/qmp.sock", dir);
	assert_true(path_exists(path));
	assert_int_equal(psk_dirs_remove("/nonexistent/ferry"), 0);
}

/* The key text in a request is overwritten before jansson frees it. */
static void key_wiped(void **state)
{
	json_t *o = json_pack("{s:s}", "psk", "00112233445566778899");
	const char *s = json_string_value(json_object_get(o, "psk"));

	(void)state;
	json_wipe_string(o, "psk");
	for (size_t i = 0; i < 20; i++)
		assert_int_equal(s[i], 0);
	json_wipe_string(o, "absent");
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(marker_is_json),
		cmocka_unit_test(marker_write_error),
		cmocka_unit_test(psk_dirs_removed),
		cmocka_unit_test(key_wiped),
	};
	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
