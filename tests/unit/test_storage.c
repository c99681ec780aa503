/* Storage roots (review H2): a peer names files only under them, by clean
 * paths; nothing is overwritten, no symbolic link below a root is followed,
 * and only the very file created is deleted. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage.h"
#include "util.h"

static char dir[] = "/tmp/ferry-storage-test.XXXXXX";

static const char *at(const char *rel)
{
	static char bufs[4][PATH_MAX];
	static int next;
	char *p = bufs[next++ % 4];

	snprintf(p, PATH_MAX, "%s/%s", dir, rel);
	return p;
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir) || mkdir(at("root"), 0700) < 0 || mkdir(at("root/sub"), 0700) < 0 ||
	    mkdir(at("outside"), 0700) < 0 || symlink(at("outside"), at("root/link")) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static void test_clean_paths(void **state)
{
	(void)state;
	assert_true(path_is_clean("/"));
	assert_true(path_is_clean("/srv/vms/a.qcow2"));
	assert_true(path_is_clean("/srv/..x/.y"));
	assert_false(path_is_clean("srv/vms"));
	assert_false(path_is_clean("/srv/vms/"));
	assert_false(path_is_clean("/srv//vms"));
	assert_false(path_is_clean("/srv/./vms"));
	assert_false(path_is_clean("/srv/vms/.."));
	assert_false(path_is_clean("/srv/../etc/shadow"));
	assert_false(path_is_clean(""));
}

static void test_root_of(void **state)
{
	char roots[2][PATH_MAX] = {"/srv/vms", "/data"};

	(void)state;
	assert_string_equal(storage_root_of(roots, 2, "/srv/vms/a.qcow2"), "/srv/vms");
	assert_string_equal(storage_root_of(roots, 2, "/srv/vms"), "/srv/vms");
	assert_string_equal(storage_root_of(roots, 2, "/data/x/y"), "/data");
	assert_null(storage_root_of(roots, 2, "/srv/vmsX/a"));
	assert_null(storage_root_of(roots, 2, "/srv/vms/../../etc/shadow"));
	assert_null(storage_root_of(roots, 2, "/etc/shadow"));
}

static void test_roots_setting(void **state)
{
	struct ferryd d = {0};
	char roots[STORAGE_ROOTS_MAX][PATH_MAX];

	(void)state;
	snprintf(d.state_dir, sizeof(d.state_dir), "/var/lib/ferry");
	d.settings = json_pack("{s:s}", "storage-roots", "");
	assert_int_equal(storage_roots(&d, roots, STORAGE_ROOTS_MAX), 1);
	assert_string_equal(roots[0], "/var/lib/ferry/disks");
	json_object_set_new(d.settings, "storage-roots", json_string("/a:/b/c"));
	assert_int_equal(storage_roots(&d, roots, STORAGE_ROOTS_MAX), 2);
	assert_string_equal(roots[1], "/b/c");
	json_decref(d.settings);
}

static void test_create_new_only(void **state)
{
	struct file_id id, other;
	char err[512];

	(void)state;
	assert_int_equal(storage_check_new(at("root"), at("root/sub/d0.qcow2"), err, sizeof(err)), 0);
	assert_int_equal(storage_create(at("root"), at("root/sub/d0.qcow2"), &id, err, sizeof(err)), 0);
	/* never overwritten */
	assert_int_equal(storage_check_new(at("root"), at("root/sub/d0.qcow2"), err, sizeof(err)), -EEXIST);
	assert_int_equal(storage_create(at("root"), at("root/sub/d0.qcow2"), &other, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "already exists"));
	/* deleted only while it is the file made */
	assert_true(storage_unlink_created(at("root/sub/d0.qcow2"), &id));
	assert_false(path_exists(at("root/sub/d0.qcow2")));
	/* another file put in its place (renamed over it) is not deleted */
	assert_int_equal(close(open(at("root/sub/other"), O_CREAT | O_WRONLY, 0600)), 0);
	assert_int_equal(storage_create(at("root"), at("root/sub/d1"), &id, err, sizeof(err)), 0);
	assert_int_equal(rename(at("root/sub/other"), at("root/sub/d1")), 0);
	assert_false(storage_unlink_created(at("root/sub/d1"), &id));
	assert_true(path_exists(at("root/sub/d1")));
}

static void test_symlinks_not_followed(void **state)
{
	struct file_id id;
	char err[512];
	int fd;

	(void)state;
	/* a link planted below the root leads outside: refused both ways */
	assert_true(storage_check_new(at("root"), at("root/link/x.qcow2"), err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "symbolic link"));
	assert_true(storage_create(at("root"), at("root/link/x.qcow2"), &id, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "symbolic link"));
	assert_false(path_exists(at("outside/x.qcow2")));
	assert_int_equal(symlink(at("outside/secret"), at("root/sub/file-link")), 0);
	assert_int_equal(close(open(at("outside/secret"), O_CREAT | O_WRONLY, 0600)), 0);
	assert_int_equal(storage_open_existing(at("root"), at("root/sub/file-link"), &fd, err, sizeof(err)), -ELOOP);
	assert_int_equal(storage_check_new(at("root"), at("root/sub/file-link"), err, sizeof(err)), -EEXIST);
}

static void test_existing_must_be_regular(void **state)
{
	char err[512];
	int fd;

	(void)state;
	assert_int_equal(close(open(at("root/sub/disk.raw"), O_CREAT | O_WRONLY, 0600)), 0);
	assert_int_equal(storage_open_existing(at("root"), at("root/sub/disk.raw"), &fd, err, sizeof(err)), 0);
	close(fd);
	assert_int_equal(storage_open_existing(at("root"), at("root/sub"), &fd, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
}

static void test_fingerprint(void **state)
{
	json_t *a = NULL, *b = NULL;
	int fd = open(at("root/sub/fp.raw"), O_CREAT | O_RDWR, 0600);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4096), 0);
	assert_int_equal(disk_fingerprint(fd, "raw", &a), 0);
	assert_int_equal(json_integer_value(json_object_get(a, "file-size")), 4096);
	assert_int_equal(pwrite(fd, "QFI\xfb", 4, 0), 4);
	assert_int_equal(disk_fingerprint(fd, "qcow2", &b), 0);
	assert_int_equal(strncmp(json_string_value(json_object_get(b, "header")), "514649fb", 8), 0);
	json_decref(a);
	json_decref(b);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_paths),          cmocka_unit_test(test_root_of),
		cmocka_unit_test(test_roots_setting),        cmocka_unit_test(test_create_new_only),
		cmocka_unit_test(test_symlinks_not_followed), cmocka_unit_test(test_existing_must_be_regular),
		cmocka_unit_test(test_fingerprint),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
