/* Kept disk copies (partial.c): which file a move may write into, for whom,
 * and which files a record may delete. A failed move's copy is ferry's own
 * and goes when not reused; the disks a move with --keep-source-disks left
 * are the user's and stay whatever becomes of their record. */
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

#include "partial.h"
#include "settings.h"
#include "storage.h"
#include "util.h"

/* main.c is not linked: the one function of it the op tables reach */
int ferryd_save_settings(struct ferryd *d)
{
	(void)d;
	return -ENOTSUP;
}

#define VM_ID "0123456789abcdef0123456789abcdef"
#define TOKEN "00112233445566778899aabbccddeeff"
#define OTHER "ffeeddccbbaa99887766554433221100"

static struct ferryd d;
static char top[64], root[128], disk[192];

static int start(void **state)
{
	(void)state;
	snprintf(top, sizeof(top), "/tmp/ferry-test-partial-XXXXXX");
	if (!mkdtemp(top))
		return -1;
	snprintf(d.state_dir, sizeof(d.state_dir), "%s/state", top);
	snprintf(root, sizeof(root), "%s/disks", top);
	snprintf(disk, sizeof(disk), "%s/web1.qcow2", root);
	pthread_mutex_init(&d.lock, NULL);
	return mkdir_p(d.state_dir, 0700) || mkdir_p(root, 0700) ? -1 : 0;
}

static int stop(void **state)
{
	(void)state;
	pthread_mutex_destroy(&d.lock);
	return remove_tree(top);
}

/* The disk file, new, as a move records it: {path, dev, ino} in a list. */
static json_t *new_disk(void)
{
	struct file_id id;
	char err[256];

	unlink(disk);
	assert_int_equal(storage_create(root, disk, &id, err, sizeof(err)), 0);
	return json_pack("[{s:s, s:I, s:I}]", "path", disk, "dev", (json_int_t)id.dev, "ino", (json_int_t)id.ino);
}

static void keep(enum partial_kind kind, const char *source, int64_t retention_s)
{
	json_t *files = new_disk();

	assert_int_equal(partial_keep(&d, kind, VM_ID, "web1", source, TOKEN, files, retention_s), 0);
	json_decref(files);
}

/* partial_claim with one disk at disk, the source's token tok (NULL: none) */
static json_t *claim(const char *source, const char *tok, json_t **ret_created)
{
	json_t *tokens = json_pack("[s?]", tok), *paths = json_pack("[s]", disk);
	json_t *reuse = partial_claim(&d, VM_ID, source, tokens, paths, ret_created);

	json_decref(tokens);
	json_decref(paths);
	return reuse;
}

/* partial_reusable for the same: whether the one disk would be reused */
static bool reusable(const char *source, const char *tok)
{
	json_t *tokens = json_pack("[s?]", tok), *paths = json_pack("[s]", disk);
	json_t *reuse = partial_reusable(&d, VM_ID, source, tokens, paths);
	bool yes;

	assert_int_equal(json_array_size(reuse), 1);
	yes = json_is_true(json_array_get(reuse, 0));
	json_decref(reuse);
	json_decref(tokens);
	json_decref(paths);
	return yes;
}

static bool record_exists(void)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/partials/%s.json", d.state_dir, VM_ID);
	return path_exists(path);
}

static void a_failed_moves_copy_is_for_its_caller_only(void **state)
{
	json_t *created = NULL, *reuse;

	(void)state;
	keep(PARTIAL_COPY, "alice@EXAMPLE.TEST", 600);
	assert_true(partial_holds(&d, VM_ID, disk, false, NULL));
	assert_true(partial_holds(&d, VM_ID, disk, true, OTHER)); /* claim decides, and deletes */
	assert_false(partial_holds(&d, VM_ID, "/elsewhere/web1.qcow2", false, NULL));
	/* what a claim would do, said without doing it */
	assert_false(reusable("mallory@EXAMPLE.TEST", TOKEN));
	assert_false(reusable("alice@EXAMPLE.TEST", OTHER));
	assert_false(reusable("alice@EXAMPLE.TEST", NULL));
	assert_true(reusable("alice@EXAMPLE.TEST", TOKEN));
	assert_true(record_exists());
	assert_true(path_exists(disk));
	assert_null(claim("mallory@EXAMPLE.TEST", TOKEN, &created));
	assert_false(path_exists(disk)); /* not reused: the new move makes its own */
	assert_false(record_exists());

	keep(PARTIAL_COPY, "alice@EXAMPLE.TEST", 600);
	reuse = claim("alice@EXAMPLE.TEST", TOKEN, &created);
	assert_non_null(reuse);
	assert_true(json_is_true(json_array_get(reuse, 0)));
	assert_string_equal(json_string_value(json_object_get(json_array_get(created, 0), "path")), disk);
	assert_true(path_exists(disk));
	assert_false(record_exists()); /* the file is the new move's now */
	json_decref(reuse);
	json_decref(created);
}

static void a_replaced_file_is_not_reused(void **state)
{
	json_t *created = NULL;
	char other[256];
	FILE *f;

	(void)state;
	keep(PARTIAL_COPY, "alice@EXAMPLE.TEST", 600);
	/* same path, another file (made first: its inode cannot be the old one's) */
	snprintf(other, sizeof(other), "%s/other", root);
	assert_non_null(f = fopen(other, "w"));
	fclose(f);
	assert_int_equal(rename(other, disk), 0);
	assert_false(reusable("alice@EXAMPLE.TEST", TOKEN));
	assert_null(claim("alice@EXAMPLE.TEST", TOKEN, &created));
	assert_true(path_exists(disk)); /* not the kept one: not ours to delete */
}

static void source_disks_go_to_whoever_holds_the_token(void **state)
{
	json_t *created = NULL, *reuse;

	(void)state;
	keep(PARTIAL_SOURCE_DISKS, "host2.example.test", 600);
	/* without tokens (vm compare that cannot read them) the file is no
	 * obstacle; with them, only the right one passes */
	assert_true(partial_holds(&d, VM_ID, disk, false, NULL));
	assert_true(partial_holds(&d, VM_ID, disk, true, TOKEN));
	assert_false(partial_holds(&d, VM_ID, disk, true, OTHER));
	assert_false(partial_holds(&d, VM_ID, disk, true, NULL));
	assert_true(reusable("bob@EXAMPLE.TEST", TOKEN));
	assert_false(reusable("bob@EXAMPLE.TEST", OTHER));
	assert_true(record_exists());
	assert_null(claim("bob@EXAMPLE.TEST", OTHER, &created));
	assert_true(path_exists(disk)); /* the user's file stays */
	assert_false(record_exists());

	keep(PARTIAL_SOURCE_DISKS, "host2.example.test", 600);
	reuse = claim("bob@EXAMPLE.TEST", TOKEN, &created);
	assert_non_null(reuse);
	assert_true(json_is_true(json_array_get(reuse, 0)));
	json_decref(reuse);
	json_decref(created);
}

static void expiry_deletes_only_a_failed_moves_files(void **state)
{
	(void)state;
	keep(PARTIAL_SOURCE_DISKS, "host2.example.test", -1);
	partial_sweep(&d);
	assert_false(record_exists());
	assert_true(path_exists(disk));

	/* past its time: offered no more, and only the sweep deletes it */
	keep(PARTIAL_COPY, "alice@EXAMPLE.TEST", -1);
	assert_false(reusable("alice@EXAMPLE.TEST", TOKEN));
	assert_true(record_exists());
	assert_true(path_exists(disk));
	partial_sweep(&d);
	assert_false(record_exists());
	assert_false(path_exists(disk));
}

static void a_disk_a_vm_here_uses_is_never_reused(void **state)
{
	struct vm vm = {0};
	json_t *created = NULL;

	(void)state;
	keep(PARTIAL_SOURCE_DISKS, "host2.example.test", 600);
	/* the planned copy of the VM itself names the path: no obstacle */
	vm.config = json_pack("{s:s, s:[{s:s}]}", "id", VM_ID, "disks", "path", disk);
	d.vms = &vm;
	assert_true(partial_holds(&d, VM_ID, disk, true, TOKEN));
	json_decref(vm.config);
	vm.config = json_pack("{s:s, s:[{s:s}]}", "id", OTHER, "disks", "path", disk);
	assert_false(partial_holds(&d, VM_ID, disk, true, TOKEN));
	assert_false(reusable("bob@EXAMPLE.TEST", TOKEN));
	assert_null(claim("bob@EXAMPLE.TEST", TOKEN, &created));
	assert_true(path_exists(disk));
	d.vms = NULL;
	json_decref(vm.config);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_failed_moves_copy_is_for_its_caller_only),
		cmocka_unit_test(a_replaced_file_is_not_reused),
		cmocka_unit_test(source_disks_go_to_whoever_holds_the_token),
		cmocka_unit_test(expiry_deletes_only_a_failed_moves_files),
		cmocka_unit_test(a_disk_a_vm_here_uses_is_never_reused),
	};

	return cmocka_run_group_tests(tests, start, stop);
}
