/* krb5_check: each problem with the machine's Kerberos configuration is
 * reported as one line naming the file and the fix; a good setup is silent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <krb5/krb5.h>

#include "krb5_check.h"

struct lines {
	char text[8][1024];
	int n;
};

static void collect(void *ctx, const char *line)
{
	struct lines *l = ctx;

	if (l->n < 8)
		snprintf(l->text[l->n++], sizeof(l->text[0]), "%s", line);
}

static char dir[] = "/tmp/ferry-krb5-check.XXXXXX";

static void write_text(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A few calls may appear in one expression: each gets a buffer of its own. */
static const char *path_of(const char *name)
{
	static char paths[4][256];
	static int next;
	char *p = paths[next++ % 4];

	snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
	return p;
}

/* A keytab with one key for principal, made with the krb5 API. */
static void make_keytab(const char *name, const char *principal)
{
	krb5_context kc;
	krb5_keytab kt;
	krb5_keytab_entry e = {0};
	krb5_octet key[16] = {1, 2, 3};
	char ktname[300];

	snprintf(ktname, sizeof(ktname), "FILE:%s", path_of(name));
	assert_int_equal(krb5_init_context(&kc), 0);
	assert_int_equal(krb5_kt_resolve(kc, ktname, &kt), 0);
	assert_int_equal(krb5_parse_name(kc, principal, &e.principal), 0);
	e.vno = 2;
	e.key.enctype = ENCTYPE_AES128_CTS_HMAC_SHA1_96;
	e.key.length = sizeof(key);
	e.key.contents = key;
	assert_int_equal(krb5_kt_add_entry(kc, kt, &e), 0);
	krb5_free_principal(kc, e.principal);
	krb5_kt_close(kc, kt);
	krb5_free_context(kc);
}

static const char good_conf[] = "[libdefaults]\n default_realm = EXAMPLE.COM\n forwardable = true\n";

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	make_keytab("h1.keytab", "ferry/h1.example.com@EXAMPLE.COM");
	make_keytab("other.keytab", "ferry/h2.example.com@EXAMPLE.COM");
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static int run_check(const char *conf_env, const char *keytab, struct lines *l)
{
	int n;

	memset(l, 0, sizeof(*l));
	setenv("KRB5_CONFIG", conf_env, 1);
	n = krb5_check_setup(keytab, "h1.example.com", collect, l);
	for (int i = 0; i < l->n; i++)
		print_message("krb5_check: %s\n", l->text[i]);
	return n;
}

static void test_good_setup_is_silent(void **state)
{
	struct lines l;

	(void)state;
	write_text("good.conf", good_conf);
	assert_int_equal(run_check(path_of("good.conf"), path_of("h1.keytab"), &l), 0);
}

static void test_missing_config(void **state)
{
	struct lines l;

	(void)state;
	assert_int_equal(run_check(path_of("absent.conf"), path_of("h1.keytab"), &l), 1);
	assert_non_null(strstr(l.text[0], "absent.conf not found; Kerberos moves need it"));
	assert_non_null(strstr(l.text[0], "forwardable = true"));
	assert_non_null(strstr(l.text[0], "docs/security.md"));
}

static void test_not_forwardable(void **state)
{
	struct lines l;

	(void)state;
	write_text("nofwd.conf", "[libdefaults]\n default_realm = EXAMPLE.COM\n");
	assert_int_equal(run_check(path_of("nofwd.conf"), path_of("h1.keytab"), &l), 1);
	assert_non_null(strstr(l.text[0], "does not set forwardable = true"));
	write_text("fwdfalse.conf", "[libdefaults]\n default_realm = EXAMPLE.COM\n forwardable = false\n");
	assert_int_equal(run_check(path_of("fwdfalse.conf"), path_of("h1.keytab"), &l), 1);
}

static void test_no_default_realm(void **state)
{
	struct lines l;

	(void)state;
	write_text("norealm.conf", "[libdefaults]\n forwardable = true\n");
	assert_int_equal(run_check(path_of("norealm.conf"), path_of("h1.keytab"), &l), 1);
	assert_non_null(strstr(l.text[0], "no default_realm"));
}

static void test_keytab_problems(void **state)
{
	struct lines l;

	(void)state;
	write_text("good.conf", good_conf);
	assert_int_equal(run_check(path_of("good.conf"), path_of("absent.keytab"), &l), 1);
	assert_non_null(strstr(l.text[0], "cannot be read"));
	assert_int_equal(run_check(path_of("good.conf"), path_of("other.keytab"), &l), 1);
	assert_non_null(strstr(l.text[0], "holds no key for ferry/h1.example.com"));
}

/* A list in KRB5_CONFIG: the first file that exists is the one read. */
static void test_config_list(void **state)
{
	struct lines l;
	char list[600];

	(void)state;
	write_text("good.conf", good_conf);
	snprintf(list, sizeof(list), "%s:%s", path_of("absent.conf"), path_of("good.conf"));
	assert_int_equal(run_check(list, path_of("h1.keytab"), &l), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_setup_is_silent), cmocka_unit_test(test_missing_config),
		cmocka_unit_test(test_not_forwardable),      cmocka_unit_test(test_no_default_realm),
		cmocka_unit_test(test_keytab_problems),      cmocka_unit_test(test_config_list),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
