/* ferryd.conf parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "conffile.h"

struct seen {
	int n;
	char last_key[64], last_value[256];
};

static int collect(void *ctx, const char *key, const char *value, int line, char *err, size_t errlen)
{
	struct seen *s = ctx;

	if (!strcmp(key, "refuse")) {
		snprintf(err, errlen, "line %d: refused", line);
		return -EINVAL;
	}
	s->n++;
	snprintf(s->last_key, sizeof(s->last_key), "%s", key);
	snprintf(s->last_value, sizeof(s->last_value), "%s", value);
	return 0;
}

static void parses(void **state)
{
	const char *t = "# comment\n\nhost-name = h1.lab.test # trailing\n  listen=10.0.0.1  \nadmin-principal = alice@LAB.TEST";
	struct seen s = {0};
	char err[256];

	(void)state;
	assert_int_equal(conffile_parse(t, strlen(t), collect, &s, err, sizeof(err)), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.last_key, "admin-principal");
	assert_string_equal(s.last_value, "alice@LAB.TEST");
	assert_int_equal(conffile_parse("host-name = h1.lab.test # x\n", 27, collect, &s, err, sizeof(err)), 0);
	assert_string_equal(s.last_value, "h1.lab.test");
}

static void refuses(void **state)
{
	struct seen s = {0};
	char err[256], longline[2000];

	(void)state;
	assert_int_equal(conffile_parse("a = 1\nnonsense\n", 16, collect, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "line 2"));
	assert_int_equal(conffile_parse(" = 1\n", 5, collect, &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(conffile_parse("refuse = 1\n", 11, collect, &s, err, sizeof(err)), -EINVAL);
	memset(longline, 'a', sizeof(longline));
	assert_int_equal(conffile_parse(longline, sizeof(longline), collect, &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(conffile_parse("a = \0b\n", 7, collect, &s, err, sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(parses), cmocka_unit_test(refuses)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
