/* Both sides speak the same op names: every name in ops.h is served by
 * exactly one row of the daemon's op tables (control.c), every row's name is
 * in ops.h, and every OP_ name the CLI's sources use is one of them. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ferryd.h"
#include "ops.h"
#include "util.h"

/* main.c is not linked: the one function of it the tables reach */
int ferryd_save_settings(struct ferryd *d)
{
	(void)d;
	return -ENOTSUP;
}

struct known {
	const char *constant, *name;
};
#define KNOWN(c) {#c, c},
static const struct known known[] = {FERRY_OPS(KNOWN)};

static int rows_named(const char *name)
{
	int n = 0;

	for (size_t t = 0; t < n_op_tables; t++)
		for (const struct op_def *op = op_tables[t]; op->name; op++)
			n += !strcmp(op->name, name);
	return n;
}

static void every_name_is_served_once(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(known); i++) {
		if (rows_named(known[i].name) != 1)
			fail_msg("%s (%s) is served by %d rows", known[i].constant, known[i].name,
				 rows_named(known[i].name));
	}
}

static void every_row_is_in_ops_h(void **state)
{
	(void)state;
	for (size_t t = 0; t < n_op_tables; t++)
		for (const struct op_def *op = op_tables[t]; op->name; op++) {
			bool found = false;
			for (size_t i = 0; i < ARRAY_SIZE(known) && !found; i++)
				found = !strcmp(op->name, known[i].name);
			if (!found)
				fail_msg("the daemon serves %s, which ops.h does not list in FERRY_OPS", op->name);
		}
}

static bool is_known_constant(const char *id)
{
	for (size_t i = 0; i < ARRAY_SIZE(known); i++)
		if (!strcmp(id, known[i].constant))
			return true;
	return false;
}

/* Each OP_NAME token in the CLI sources (src/cli) is a constant of ops.h (so the daemon
 * serves it: above). String literals there are kept out by review. */
static void the_cli_uses_known_names(void **state)
{
	struct dirent *e;
	DIR *dir = opendir(CLI_SRC);
	int tokens = 0;

	(void)state;
	assert_non_null(dir);
	while ((e = readdir(dir))) {
		char path[512], *text = NULL;
		size_t len;
		if (!strstr(e->d_name, ".c") || e->d_name[strlen(e->d_name) - 1] != 'c')
			continue;
		snprintf(path, sizeof(path), "%s/%s", CLI_SRC, e->d_name);
		assert_int_equal(read_file(path, 1 << 20, &text, &len), 0);
		for (char *p = text; (p = strstr(p, "OP_")); p++) {
			char id[64];
			size_t n = 0;
			if (p > text && (p[-1] == '_' || (p[-1] >= 'A' && p[-1] <= 'Z')))
				continue;
			while (n + 1 < sizeof(id) && ((p[n] >= 'A' && p[n] <= 'Z') || p[n] == '_' ||
						      (p[n] >= '0' && p[n] <= '9')))
				id[n] = p[n], n++;
			id[n] = 0;
			if (!is_known_constant(id))
				fail_msg("%s uses %s, which ops.h does not define", e->d_name, id);
			tokens++;
		}
		free(text);
	}
	closedir(dir);
	assert_true(tokens >= 20); /* the scan saw the CLI's calls */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_name_is_served_once),
		cmocka_unit_test(every_row_is_in_ops_h),
		cmocka_unit_test(the_cli_uses_known_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
