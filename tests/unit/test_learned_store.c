/* The prediction's learned rates on disk (learned_store.c): what a ferryd
 * learned is there after a restart, and a damaged file costs only what it
 * damaged. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "learned_store.h"
#include "util.h"

/* main.c is not linked: the one function of it the op tables reach */
int ferryd_save_settings(struct ferryd *d)
{
	(void)d;
	return -ENOTSUP;
}

static struct ferryd d;
static char top[64];

static int start(void **state)
{
	(void)state;
	snprintf(top, sizeof(top), "/tmp/ferry-test-learned-XXXXXX");
	if (!mkdtemp(top))
		return -1;
	snprintf(d.state_dir, sizeof(d.state_dir), "%s", top);
	return 0;
}

static int stop(void **state)
{
	(void)state;
	return remove_tree(top);
}

static void write_file(const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/learned.json", top);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
}

static void what_was_learned_survives_a_restart(void **state)
{
	(void)state;
	memset(d.learned, 0, sizeof(d.learned));
	snprintf(d.learned[0].dest, sizeof(d.learned[0].dest), "host2.example.test");
	snprintf(d.learned[0].kind, sizeof(d.learned[0].kind), "tcpip/tls");
	d.learned[0].l = (struct predict_learned){.stream_bps = 2.5e8, .probe_bps = 1.2e9, .switchover_ms = 41.5};
	snprintf(d.learned[3].dest, sizeof(d.learned[3].dest), "host3.example.test");
	snprintf(d.learned[3].kind, sizeof(d.learned[3].kind), "compression/plain");
	d.learned[3].l = (struct predict_learned){.stream_bps = 9e7};
	learned_save(&d);

	memset(d.learned, 0, sizeof(d.learned)); /* a new ferryd */
	learned_load(&d);
	assert_string_equal(d.learned[0].dest, "host2.example.test");
	assert_string_equal(d.learned[0].kind, "tcpip/tls");
	assert_true(d.learned[0].l.stream_bps == 2.5e8 && d.learned[0].l.probe_bps == 1.2e9 &&
		    d.learned[0].l.switchover_ms == 41.5);
	assert_string_equal(d.learned[1].dest, "host3.example.test");
	assert_true(d.learned[1].l.stream_bps == 9e7 && d.learned[1].l.probe_bps == 0);
	assert_string_equal(d.learned[2].dest, "");
}

static void a_damaged_file_costs_only_what_it_damaged(void **state)
{
	(void)state;
	memset(d.learned, 0, sizeof(d.learned));
	write_file("[{\"dest\":\"a\",\"kind\":\"k\",\"stream-bytes-per-second\":-1,\"probe-bytes-per-second\":0,"
		   "\"switchover-ms\":0},"
		   "{\"dest\":\"b\",\"kind\":\"k\",\"stream-bytes-per-second\":\"fast\",\"probe-bytes-per-second\":0,"
		   "\"switchover-ms\":0},"
		   "{\"dest\":\"\",\"kind\":\"k\",\"stream-bytes-per-second\":1,\"probe-bytes-per-second\":0,"
		   "\"switchover-ms\":0},"
		   "{\"dest\":\"c\",\"kind\":\"k\",\"stream-bytes-per-second\":1e9,\"probe-bytes-per-second\":0,"
		   "\"switchover-ms\":1e12},"
		   "7,"
		   "{\"dest\":\"good\",\"kind\":\"k\",\"stream-bytes-per-second\":1e8,\"probe-bytes-per-second\":1e9,"
		   "\"switchover-ms\":20}]");
	learned_load(&d);
	assert_string_equal(d.learned[0].dest, "good");
	assert_string_equal(d.learned[1].dest, "");

	memset(d.learned, 0, sizeof(d.learned));
	write_file("{not json");
	learned_load(&d);
	assert_string_equal(d.learned[0].dest, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(what_was_learned_survives_a_restart),
		cmocka_unit_test(a_damaged_file_costs_only_what_it_damaged),
	};

	return cmocka_run_group_tests(tests, start, stop);
}
