/* move_util.c without QEMU: the moving.json record (review L2). */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(marker_is_json),
		cmocka_unit_test(marker_write_error),
	};
	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
