/* migrate_params.c against a fake QEMU that starts from the state recorded
 * from QEMU 7.2 (qmp-replies/migrate-parameters.json) and keeps what it is
 * set, through the real QMP path (fake_qemu.h): every performance option is
 * one row, set and read back the same way; and the one-time key's files and
 * text. */
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

#include "fake_qemu.h"
#include "migrate_params.h"
#include "settings.h"
#include "util.h"

static struct {
	json_t *recorded, *caps, *params;
	const char *ignore; /* a parameter this QEMU does not keep */
} qemu;

static struct vm vm;

/* QEMU's side, on the fake's thread */
static int answer(const char *cmd, json_t *args, json_t **ret, char *err, size_t errlen)
{
	const char *key;
	json_t *v;
	size_t i;

	if (!strcmp(cmd, "migrate-set-capabilities")) {
		json_array_foreach(json_object_get(args, "capabilities"), i, v) {
			json_t *c;
			size_t k;
			json_array_foreach(qemu.caps, k, c)
				if (json_equal(json_object_get(c, "capability"), json_object_get(v, "capability")))
					json_object_set(c, "state", json_object_get(v, "state"));
		}
	} else if (!strcmp(cmd, "migrate-set-parameters")) {
		const char *comp = json_string_value(json_object_get(args, "multifd-compression"));
		if (comp && strcmp(comp, "none") && strcmp(comp, "zlib") && strcmp(comp, "zstd")) {
			snprintf(err, errlen, "%s", json_string_value(json_object_get(
				json_object_get(qemu.recorded, "bad-compression-error"), "desc")));
			return -1;
		}
		json_object_foreach(args, key, v)
			if (!qemu.ignore || strcmp(key, qemu.ignore))
				json_object_set(qemu.params, key, v);
	} else if (!strcmp(cmd, "query-migrate-capabilities")) {
		*ret = json_deep_copy(qemu.caps);
	} else if (!strcmp(cmd, "query-migrate-parameters")) {
		*ret = json_deep_copy(qemu.params);
	}
	return 0;
}

static int fresh_qemu(void **state)
{
	(void)state;
	json_decref(qemu.recorded);
	json_decref(qemu.caps);
	json_decref(qemu.params);
	qemu.recorded = json_load_file(QMP_REPLIES "/migrate-parameters.json", 0, NULL);
	if (!qemu.recorded)
		return -1;
	qemu.caps = json_deep_copy(json_object_get(qemu.recorded, "query-migrate-capabilities"));
	qemu.params = json_deep_copy(json_object_get(qemu.recorded, "query-migrate-parameters"));
	qemu.ignore = NULL;
	return 0;
}

static int start(void **state)
{
	(void)state;
	return fake_qemu_start(&vm, "web1", answer) == 0 ? 0 : -1;
}

static int cleanup(void **state)
{
	(void)state;
	fake_qemu_stop(&vm);
	json_decref(qemu.recorded);
	json_decref(qemu.caps);
	json_decref(qemu.params);
	qemu.recorded = qemu.caps = qemu.params = NULL;
	return 0;
}

static bool cap(const char *name)
{
	json_t *c;
	size_t i;

	json_array_foreach(qemu.caps, i, c)
		if (!strcmp(json_string_value(json_object_get(c, "capability")), name))
			return json_is_true(json_object_get(c, "state"));
	fail_msg("no capability %s in the recording", name);
	return false;
}

static json_int_t param_int(const char *name)
{
	return json_integer_value(json_object_get(qemu.params, name));
}

static const char *param_str(const char *name)
{
	return json_string_value(json_object_get(qemu.params, name));
}

static void every_row_is_set_and_read_back(void **state)
{
	size_t n;
	const struct perf_option *rows = perf_options(&n);
	char err[256];

	(void)state;
	for (size_t i = 0; i < n; i++) {
		struct migration_tuning t = {.performance = rows[i].name, .channels = 6, .tls = true, .source = true,
					     .downtime_ms = 250};
		fresh_qemu(NULL);
		assert_int_equal(migration_tune(&vm, &t, err, sizeof(err)), 0);
		assert_int_equal(cap("multifd"), rows[i].multifd);
		assert_true(cap("pause-before-switchover"));
		assert_string_equal(param_str("tls-creds"), TLS_ID);
		assert_int_equal(param_int("downtime-limit"), 250);
		assert_int_equal(param_int("max-bandwidth"), 100LL << 30);
		if (rows[i].multifd) {
			assert_int_equal(param_int("multifd-channels"),
					 rows[i].channels == PERF_CHANNELS_SETTING ? 6 : rows[i].channels);
			assert_string_equal(param_str("multifd-compression"), rows[i].compression);
		}
	}
	/* the stall ladder's throttle: armed, held at 1%; off otherwise */
	{
		struct migration_tuning t = {.performance = "tcpip", .source = true, .downtime_ms = 225,
					     .arm_throttle = true};
		fresh_qemu(NULL);
		assert_int_equal(migration_tune(&vm, &t, err, sizeof(err)), 0);
		assert_true(cap("auto-converge"));
		assert_int_equal(param_int("cpu-throttle-initial"), 1);
		assert_int_equal(param_int("cpu-throttle-increment"), 1);
		assert_int_equal(param_int("max-cpu-throttle"), 1);
		t.arm_throttle = false;
		assert_int_equal(migration_tune(&vm, &t, err, sizeof(err)), 0);
		assert_false(cap("auto-converge"));
	}
	assert_string_equal(perf_option_find("compression")->compression, "zstd");
	assert_int_equal(perf_option_find("multichannel")->channels, PERF_CHANNELS_SETTING);
	assert_false(perf_option_find("tcpip")->multifd);
}

static void destination_sets_no_source_values(void **state)
{
	struct migration_tuning t = {.performance = "tcpip"};
	char err[256];

	(void)state;
	json_object_set_new(qemu.params, "downtime-limit", json_integer(300));
	assert_int_equal(migration_tune(&vm, &t, err, sizeof(err)), 0);
	assert_false(cap("pause-before-switchover"));
	assert_false(cap("multifd"));
	assert_string_equal(param_str("tls-creds"), "");
	assert_int_equal(param_int("downtime-limit"), 300); /* untouched */
}

static void a_value_qemu_did_not_keep_is_an_error(void **state)
{
	struct migration_tuning t = {.performance = "multichannel", .channels = 4, .source = true};
	char err[256];

	(void)state;
	qemu.ignore = "multifd-channels";
	json_object_set_new(qemu.params, "multifd-channels", json_integer(2));
	assert_int_equal(migration_tune(&vm, &t, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "multifd-channels (asked 4, has 2)"));
	t.performance = "lz4";
	assert_int_equal(migration_tune(&vm, &t, err, sizeof(err)), -EINVAL);
}

/* The setting offers exactly the options the table has. */
static void setting_choices_match_the_table(void **state)
{
	const struct setting_def *def = setting_find("performance");
	size_t n, k = 0;

	(void)state;
	perf_options(&n);
	assert_non_null(def);
	for (const char *const *c = def->choices; *c; c++, k++)
		assert_non_null(perf_option_find(*c));
	assert_int_equal(k, n);
}

/* After a restart the source removes the key directories of its moves
 * (tls-JOB), and nothing else in the run directory (review L1). */
static void psk_dirs_removed(void **state)
{
	char dir[64], path[160];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ferry-test-mp-XXXXXX");
	assert_non_null(mkdtemp(dir));
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
	assert_int_equal(remove_tree(dir), 0);
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
		cmocka_unit_test_setup(every_row_is_set_and_read_back, fresh_qemu),
		cmocka_unit_test_setup(destination_sets_no_source_values, fresh_qemu),
		cmocka_unit_test_setup(a_value_qemu_did_not_keep_is_an_error, fresh_qemu),
		cmocka_unit_test(setting_choices_match_the_table),
		cmocka_unit_test(psk_dirs_removed),
		cmocka_unit_test(key_wiped),
	};
	return cmocka_run_group_tests(tests, start, cleanup);
}
