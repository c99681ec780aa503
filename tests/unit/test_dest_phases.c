/* The destination's phase table (move_dest_phases.c) without QEMU: its rows
 * and undos as docs/architecture.md lists them, migrate.abort's walk back
 * over a registered planned VM, and the sweep after a restart over what a
 * crash left on disk (planned.json): the disks made here go, and only they. */
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

#include "move_dest.h"
#include "settings.h"
#include "storage.h"
#include "util.h"
#include "vmconfig.h"

/* main.c is not linked: the one function of it the op tables reach */
int ferryd_save_settings(struct ferryd *d)
{
	(void)d;
	return -ENOTSUP;
}

static struct ferryd d;
static char top[64], root[128];

static int start(void **state)
{
	char path[192];

	(void)state;
	snprintf(top, sizeof(top), "/tmp/ferry-test-dp-XXXXXX");
	if (!mkdtemp(top))
		return -1;
	snprintf(d.state_dir, sizeof(d.state_dir), "%s/state", top);
	snprintf(d.run_dir, sizeof(d.run_dir), "%s/run", top);
	snprintf(root, sizeof(root), "%s/disks", top);
	snprintf(path, sizeof(path), "%s/vms", d.run_dir);
	pthread_mutex_init(&d.lock, NULL);
	d.settings = settings_defaults();
	return mkdir_p(path, 0700) || mkdir_p(root, 0700) ? -1 : 0;
}

static int stop(void **state)
{
	(void)state;
	json_decref(d.settings);
	pthread_mutex_destroy(&d.lock);
	return remove_tree(top);
}

/* A disk file made here, as the disks row records it. */
static json_t *made_here(const char *name)
{
	char path[256], err[256];
	struct file_id id;

	snprintf(path, sizeof(path), "%s/%s", root, name);
	assert_int_equal(storage_create(root, path, &id, err, sizeof(err)), 0);
	return json_pack("{s:s, s:I, s:I}", "path", path, "dev", (json_int_t)id.dev, "ino", (json_int_t)id.ino);
}

static void the_table_is_the_documented_one(void **state)
{
	static const char *const names[] = {"check", "reserve", "record", "disks", "qemu", "key",
					    "listen", "export", "arrived", "save", "resume", "release"};
	size_t n;
	const struct phase_row *rows = dest_phase_table(&n);

	(void)state;
	assert_int_equal(n, ARRAY_SIZE(names));
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(rows[i].id, (int)i);
		assert_string_equal(rows[i].name, names[i]);
		assert_false(rows[i].cancel); /* a destination takes no job cancel */
		/* what has an undo: the VM's registration, its disks, its QEMU, the key's files, the save */
		assert_int_equal(rows[i].undo != NULL, i == DEST_RESERVE || i == DEST_DISKS || i == DEST_QEMU ||
							      i == DEST_KEY || i == DEST_SAVE);
		assert_int_equal(rows[i].stop != NULL, i == DEST_RESERVE);
	}
	assert_int_equal(DEST_PREPARED, DEST_EXPORT);
}

/* A crash left planned.json: the sweep deletes the files it lists if they
 * are still the files made here, the run directory, and the state
 * directory unless a configuration was saved there. */
static void the_sweep_walks_back_what_a_crash_left(void **state)
{
	char dir[256], path[300], other[256], statedir[256];
	json_t *mine = made_here("web1.qcow2"), *replaced = made_here("web1-2.qcow2"), *marker;

	(void)state;
	/* web1-2.qcow2 was replaced by another file since (renamed over it):
	 * not ours any more */
	snprintf(other, sizeof(other), "%s", json_string_value(json_object_get(replaced, "path")));
	assert_int_equal(write_file_atomic(other, "x", 1, 0600), 0);
	snprintf(dir, sizeof(dir), "%s/vms/web1", d.run_dir);
	assert_int_equal(mkdir_p(dir, 0700), 0);
	snprintf(statedir, sizeof(statedir), "%s/vms/web1", d.state_dir);
	assert_int_equal(mkdir_p(statedir, 0700), 0);
	marker = json_pack("{s:s, s:[o, o]}", "id", "0b7e3c52-6f0a-4d7e-9a51-2c3d4e5f6a7b", "created-disks", mine,
			   replaced);
	snprintf(path, sizeof(path), "%s/planned.json", dir);
	assert_int_equal(write_json_atomic(path, marker, JSON_COMPACT, 0600), 0);
	json_decref(marker);
	/* a planned VM swept without its own planned.json is left alone */
	snprintf(path, sizeof(path), "%s/vms/stray", d.run_dir);
	assert_int_equal(mkdir_p(path, 0700), 0);

	incoming_sweep(&d);
	snprintf(path, sizeof(path), "%s/web1.qcow2", root);
	assert_false(path_exists(path));
	assert_true(path_exists(other));
	assert_false(path_exists(dir));
	assert_false(path_exists(statedir));
	snprintf(path, sizeof(path), "%s/vms/stray", d.run_dir);
	assert_true(path_exists(path));
	remove_tree(path);
	unlink(other);
}

/* migrate.abort (and a closed connection, a failed finish) walks back the
 * prepare rows over the registered VM: its disks made here, its
 * directories, its registration. */
static void an_abort_removes_the_planned_vm(void **state)
{
	json_t *cfg = json_pack("{s:s, s:i, s:i, s:s, s:[{s:s}], s:[]}", "name", "web1", "memory-mib", 64, "vcpus", 1,
				"kernel", "/srv/vms/vmlinuz", "disks", "path", "/srv/vms/web1.qcow2", "nics");
	json_t *created = json_array();
	char err[256], path[256];
	struct vm *vm = NULL;

	(void)state;
	assert_int_equal(vmconfig_normalize(cfg, err, sizeof(err)), 0);
	pthread_mutex_lock(&d.lock);
	assert_int_equal(vm_add(&d, cfg, false, &vm, err, sizeof(err)), 0);
	vm->incoming = true;
	vm->busy = "incoming";
	json_array_append_new(created, made_here("web1.qcow2"));
	json_object_set_new(vm->config, "_created-disks", created);
	json_object_set_new(vm->config, "_storage", json_true());
	pthread_mutex_unlock(&d.lock);
	assert_int_equal(incoming_marker_write(vm), 0);
	snprintf(path, sizeof(path), "%s/vms/web1/planned.json", d.run_dir);
	assert_true(path_exists(path));

	dest_abort(&d, "web1");
	assert_null(d.vms);
	assert_false(path_exists(path));
	snprintf(path, sizeof(path), "%s/web1.qcow2", root);
	assert_false(path_exists(path));
	snprintf(path, sizeof(path), "%s/vms/web1", d.state_dir);
	assert_false(path_exists(path));
	dest_abort(&d, "web1"); /* gone already: nothing */
	json_decref(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_table_is_the_documented_one),
		cmocka_unit_test(the_sweep_walks_back_what_a_crash_left),
		cmocka_unit_test(an_abort_removes_the_planned_vm),
	};
	return cmocka_run_group_tests(tests, start, stop);
}
