/* VM configuration validation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmconfig.h"

static json_t *base(void)
{
	return json_pack("{s:s, s:s}", "name", "web1", "kernel", "/boot/vmlinuz");
}

static void fills_defaults(void **state)
{
	json_t *c = base();
	char err[256];

	(void)state;
	assert_int_equal(vmconfig_normalize(c, err, sizeof(err)), 0);
	assert_int_equal(strlen(vmconfig_id(c)), 36);
	assert_int_equal(json_integer_value(json_object_get(c, "memory-mib")), 512);
	assert_int_equal(json_integer_value(json_object_get(c, "config-version")), VM_CONFIG_VERSION_DEFAULT);
	assert_string_equal(vmconfig_machine_type(7), "pc-q35-7.2");
	assert_string_equal(vmconfig_cpu_model(c, false), "max");
	json_object_set_new(c, "processor-compat", json_true());
	assert_string_equal(vmconfig_cpu_model(c, true), VM_COMPAT_CPU_MODEL);
	json_decref(c);
}

static void refuses(void **state)
{
	static const char *const bad[] = {
		"{\"name\":\"web1\"}",
		"{\"name\":\"-x\",\"kernel\":\"/k\"}",
		"{\"name\":\"a/b\",\"kernel\":\"/k\"}",
		"{\"name\":\"web1\",\"kernel\":\"k\"}",
		"{\"name\":\"web1\",\"kernel\":\"/k\",\"memory-mib\":1}",
		"{\"name\":\"web1\",\"kernel\":\"/k\",\"config-version\":4}",
		"{\"name\":\"web1\",\"kernel\":\"/k\",\"bogus\":1}",
		"{\"name\":\"web1\",\"kernel\":\"/k\",\"disks\":[{\"path\":\"/a,b\"}]}",
		"{\"name\":\"web1\",\"kernel\":\"/k\",\"disks\":[{\"path\":\"/a\",\"format\":\"vmdk\"}]}",
		"{\"name\":\"web1\",\"kernel\":\"/k\",\"disks\":[{\"path\":\"/a\"},{\"path\":\"/a\"}]}",
		"{\"name\":\"web1\",\"kernel\":\"/k\",\"nics\":[{\"switch\":\"bad name\"}]}",
		"{\"name\":\"web1\",\"kernel\":\"/k\",\"nics\":[{\"switch\":\"External\",\"mac\":\"01:00:00:00:00:01\"}]}",
		"{\"name\":\"web1\",\"kernel\":\"/k\",\"id\":\"x\"}",
		"{\"name\":\"web1\",\"initrd\":\"/i\",\"disks\":[{\"path\":\"/a\"}]}",
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *c = json_loads(bad[i], 0, NULL);
		assert_non_null(c);
		err[0] = 0;
		assert_int_equal(vmconfig_normalize(c, err, sizeof(err)), -EINVAL);
		assert_true(strlen(err) > 0);
		json_decref(c);
	}
}

static void version_message(void **state)
{
	json_t *c = base();
	char err[256];

	(void)state;
	json_object_set_new(c, "config-version", json_integer(4));
	assert_int_equal(vmconfig_normalize(c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "version 5"));
	json_decref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fills_defaults), cmocka_unit_test(refuses), cmocka_unit_test(version_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
