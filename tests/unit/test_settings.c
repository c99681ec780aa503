/* Host settings: one table, bounds, defaults, CIDR matching. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "settings.h"

static void defaults(void **state)
{
	json_t *s = settings_defaults();

	(void)state;
	assert_false(settings_bool(s, "migration-enabled"));
	assert_int_equal(settings_int(s, "max-migrations"), 2);
	assert_int_equal(settings_int(s, "max-storage-migrations"), 2);
	assert_string_equal(settings_str(s, "auth"), "credssp");
	assert_string_equal(settings_str(s, "performance"), "compression");
	assert_true(settings_bool(s, "encryption"));
	assert_int_equal(settings_int(s, "max-passes"), 10);
	assert_true(json_is_array(json_object_get(s, "migration-networks")));
	json_decref(s);
}

/* storage-roots: clean absolute paths, never / or a system directory */
static void storage_roots(void **state)
{
	const struct setting_def *def = setting_find("storage-roots");
	static const char *const bad[] = {"/", "srv", "/srv/", "/srv//x", "/srv/../etc", "/etc", "/etc/ferry",
					  "/usr/local/vms", "/dev", "/srv:", ":/srv", "/a::/b", "/a,b"};
	char err[256];
	json_t *v = NULL;

	(void)state;
	assert_non_null(def);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(setting_parse(def, bad[i], &v, err, sizeof(err)), -EINVAL);
	assert_int_equal(setting_parse(def, "/srv/vms:/data/vms", &v, err, sizeof(err)), 0);
	assert_string_equal(json_string_value(v), "/srv/vms:/data/vms");
	json_decref(v);
	assert_int_equal(setting_parse(def, "", &v, err, sizeof(err)), 0);
	json_decref(v);
	assert_int_equal(setting_parse(def, "/etcetera/vms", &v, err, sizeof(err)), 0);
	json_decref(v);
}

static void parse_bounds(void **state)
{
	char err[256];
	json_t *v = NULL;

	(void)state;
	assert_int_equal(setting_parse(setting_find("max-migrations"), "0", &v, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "1..64"));
	assert_int_equal(setting_parse(setting_find("max-migrations"), "65", &v, err, sizeof(err)), -EINVAL);
	assert_int_equal(setting_parse(setting_find("max-migrations"), "2x", &v, err, sizeof(err)), -EINVAL);
	assert_int_equal(setting_parse(setting_find("max-migrations"), "64", &v, err, sizeof(err)), 0);
	assert_int_equal(json_integer_value(v), 64);
	json_decref(v);
	assert_int_equal(setting_parse(setting_find("auth"), "ntlm", &v, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "credssp|kerberos"));
	assert_int_equal(setting_parse(setting_find("auth"), "kerberos", &v, err, sizeof(err)), 0);
	json_decref(v);
	assert_int_equal(setting_parse(setting_find("encryption"), "maybe", &v, err, sizeof(err)), -EINVAL);
	assert_null(setting_find("no-such-setting"));
}

static void sanitize(void **state)
{
	char err[256];
	json_t *s = json_pack("{s:i, s:s, s:i}", "max-migrations", 1000, "auth", "kerberos", "performance", 7);

	(void)state;
	assert_int_equal(settings_sanitize(s, err, sizeof(err)), 2);
	assert_int_equal(settings_int(s, "max-migrations"), 2);
	assert_string_equal(settings_str(s, "auth"), "kerberos");
	json_decref(s);
}

static void cidrs(void **state)
{
	int fam, prefix;
	uint8_t a[16];

	(void)state;
	assert_true(cidr_contains("10.78.0.0/24", "10.78.0.12"));
	assert_false(cidr_contains("10.78.0.0/24", "10.77.0.12"));
	assert_true(cidr_contains("0.0.0.0/0", "192.0.2.1"));
	assert_true(cidr_contains("10.78.0.11/32", "10.78.0.11"));
	assert_true(cidr_contains("fd00::/64", "fd00::5"));
	assert_false(cidr_contains("fd00::/64", "10.78.0.1"));
	assert_int_equal(cidr_parse("10.0.0.0/33", &fam, a, &prefix), -EINVAL);
	assert_int_equal(cidr_parse("10.0.0.0", &fam, a, &prefix), -EINVAL);
	assert_int_equal(cidr_parse("nonsense/8", &fam, a, &prefix), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults), cmocka_unit_test(parse_bounds),
		cmocka_unit_test(sanitize), cmocka_unit_test(cidrs), cmocka_unit_test(storage_roots),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
