/* image.c with a fake qemu-img on PATH: every call carries -f and the
 * configured format (review L5), and the format check never probes. */
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

#include "image.h"
#include "util.h"

static char dir[64];

/* Records its arguments; "info" answers like qemu-img info, except that a
 * file whose name ends in .notqcow2 is refused as qcow2 would be. */
static int make_fake(void **state)
{
	char path[128], env[4096];
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ferry-test-image-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/qemu-img", dir);
	if (!(f = fopen(path, "w")))
		return -1;
	fprintf(f, "#!/bin/sh\necho \"$*\" > %s/args\n"
		   "case \"$*\" in *'-f qcow2'*.notqcow2) echo 'Image is not in qcow2 format' >&2; exit 1;; esac\n"
		   "echo '{\"virtual-size\": 1048576, \"actual-size\": 4096}'\n", dir);
	fclose(f);
	chmod(path, 0755);
	snprintf(env, sizeof(env), "%s:%s", dir, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	setenv("PATH", env, 1);
	return 0;
}

static int remove_dir(void **state)
{
	(void)state;
	return remove_tree(dir);
}

static void assert_args(const char *want)
{
	char path[128], *args = NULL;
	size_t len;

	snprintf(path, sizeof(path), "%s/args", dir);
	assert_int_equal(read_file(path, 4096, &args, &len), 0);
	assert_non_null(strstr(args, want));
	free(args);
}

static void sizes_use_configured_format(void **state)
{
	char err[256];
	uint64_t size = 0, used = 0;

	(void)state;
	assert_int_equal(image_sizes("/srv/vm/web1.raw", "raw", &size, &used, err, sizeof(err)), 0);
	assert_int_equal(size, 1048576);
	assert_int_equal(used, 4096);
	assert_args("info -U -f raw --output=json /srv/vm/web1.raw");
	assert_int_equal(image_sizes("/srv/vm/web1.raw", NULL, &size, NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(image_sizes("/srv/vm/web1.vmdk", "vmdk", &size, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not qcow2 or raw"));
}

static void create_gives_format_and_bytes(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(image_create("/srv/vm/new.qcow2", "qcow2", 64ULL << 20, err, sizeof(err)), 0);
	assert_args("create -q -f qcow2 /srv/vm/new.qcow2 67108864");
}

static void write_file(const char *name, const void *data, size_t len, char *path, size_t pathlen)
{
	snprintf(path, pathlen, "%s/%s", dir, name);
	assert_int_equal(write_file_atomic(path, data, len, 0600), 0);
}

/* A raw disk that starts with a qcow2 header is refused (the administrator
 * meant qcow2, or the guest wrote it); a qcow2 claim on another file too. */
static void format_checked_without_probing(void **state)
{
	char path[160], err[512];

	(void)state;
	write_file("plain.raw", "hello, world", 12, path, sizeof(path));
	assert_int_equal(image_check_format(path, "raw", err, sizeof(err)), 0);
	assert_args("-f raw");
	write_file("header.raw", "QFI\xfb\0\0\0\3", 8, path, sizeof(path));
	assert_int_equal(image_check_format(path, "raw", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "a qcow2 image, not raw: give format=qcow2"));
	write_file("disk.notqcow2", "raw bytes", 9, path, sizeof(path));
	assert_int_equal(image_check_format(path, "qcow2", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "is not a qcow2 image"));
	assert_args("-f qcow2");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sizes_use_configured_format),
		cmocka_unit_test(create_gives_format_and_bytes),
		cmocka_unit_test(format_checked_without_probing),
	};
	return cmocka_run_group_tests(tests, make_fake, remove_dir);
}
