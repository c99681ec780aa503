/* move_util.c without QEMU: the key directories and the key text (review L1). */
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
		cmocka_unit_test(psk_dirs_removed),
		cmocka_unit_test(key_wiped),
	};
	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
