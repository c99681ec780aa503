/* The plan of 'ferry host evacuate' (evacuate_plan.c): placement from the
 * compare results, counting what the VMs placed before use; skipped VMs
 * with their reasons; the destinations' limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "evacuate.h"

#define MIB (1024 * 1024)

/* A vm.compare result as move_plan.c answers it. */
static json_t *cmp(bool ok, int mem_mib, int64_t avail_mib, int64_t disk_needed, int64_t disk_free, int max_live,
		   int max_storage)
{
	json_t *c = json_pack("{s:b, s:[], s:i, s:I, s:{s:i, s:I, s:[{s:s, s:I, s:I}], s:i, s:i}}", "compatible", ok,
			      "problems", "memory-mib", mem_mib, "disk-bytes", (json_int_t)disk_needed, "destination",
			      "memory-needed-mib", mem_mib + 128, "memory-available-mib", (json_int_t)avail_mib, "disks",
			      "dir", "/srv/vms", "needed", (json_int_t)disk_needed, "free", (json_int_t)disk_free,
			      "max-migrations", max_live, "max-storage-migrations", max_storage);

	assert_non_null(c);
	if (!ok)
		json_array_append_new(json_object_get(c, "problems"),
				      json_string("virtual switch 'External' does not exist on host3"));
	return c;
}

static json_t *vm(const char *name, const char *state, int mem)
{
	return json_pack("{s:s, s:s, s:i}", "name", name, "state", state, "memory-mib", mem);
}

static const char *dest_of(json_t *plan, const char *name)
{
	json_t *m;
	size_t i;

	json_array_foreach(json_object_get(plan, "moves"), i, m)
		if (!strcmp(json_string_value(json_object_get(m, "vm")), name))
			return json_string_value(json_object_get(m, "dest"));
	return NULL;
}

static json_t *skipped(json_t *plan, const char *name)
{
	json_t *s;
	size_t i;

	json_array_foreach(json_object_get(plan, "skipped"), i, s)
		if (!strcmp(json_string_value(json_object_get(s, "vm")), name))
			return s;
	return NULL;
}

/* Four equal VMs, two destinations with room for two each: two each, the
 * first given first on a tie. */
static void test_spread(void **state)
{
	json_t *vms = json_array(), *compares = json_object(), *dests = json_pack("[s, s]", "h2", "h3"), *plan;
	const char *names[] = {"a", "b", "c", "d"};

	(void)state;
	for (int i = 0; i < 4; i++) {
		json_array_append_new(vms, vm(names[i], "running", 128));
		json_object_set_new(compares, names[i],
				    json_pack("{s:o, s:o}", "h2", cmp(true, 128, 600, 10 * MIB, 1000 * MIB, 2, 1), "h3",
					      cmp(true, 128, 600, 10 * MIB, 1000 * MIB, 2, 1)));
	}
	plan = evacuate_plan(vms, compares, dests, true);
	assert_non_null(plan);
	assert_int_equal(json_array_size(json_object_get(plan, "moves")), 4);
	assert_int_equal(json_array_size(json_object_get(plan, "skipped")), 0);
	assert_string_equal(dest_of(plan, "a"), "h2");
	assert_string_equal(dest_of(plan, "b"), "h3");
	assert_string_equal(dest_of(plan, "c"), "h2");
	assert_string_equal(dest_of(plan, "d"), "h3");
	/* with storage the smaller of a destination's two limits counts */
	assert_int_equal(evacuate_dest_limit(plan, "h2"), 1);
	assert_int_equal(evacuate_dest_limit(plan, "nowhere"), 0);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(plan, "destinations"), 0),
							    "memory-planned-mib")),
			 2 * 256);
	json_decref(plan);
	plan = evacuate_plan(vms, compares, dests, false);
	assert_int_equal(evacuate_dest_limit(plan, "h3"), 2);
	json_decref(plan);
	json_decref(vms);
	json_decref(compares);
	json_decref(dests);
}

/* Memory runs out on the only destination that passes: the third VM stays,
 * with both destinations' reasons; an off VM stays too. */
static void test_memory_runs_out(void **state)
{
	json_t *vms = json_array(), *compares = json_object(), *dests = json_pack("[s, s]", "h2", "h3"), *plan, *s;
	const char *names[] = {"a", "b", "c"};

	(void)state;
	for (int i = 0; i < 3; i++) {
		json_array_append_new(vms, vm(names[i], "running", 128));
		json_object_set_new(compares, names[i],
				    json_pack("{s:o, s:o}", "h2", cmp(true, 128, 600, 0, 1000 * MIB, 2, 2), "h3",
					      cmp(false, 128, 9000, 0, 1000 * MIB, 2, 2)));
	}
	json_array_append_new(vms, vm("off1", "off", 4096));
	plan = evacuate_plan(vms, compares, dests, false);
	assert_int_equal(json_array_size(json_object_get(plan, "moves")), 2);
	s = skipped(plan, "c");
	assert_non_null(s);
	assert_string_equal(json_string_value(json_object_get(s, "state")), "running");
	assert_non_null(strstr(json_string_value(json_array_get(json_object_get(json_object_get(s, "problems"), "h2"), 0)),
			       "not enough memory"));
	assert_non_null(strstr(json_string_value(json_array_get(json_object_get(json_object_get(s, "problems"), "h3"), 0)),
			       "virtual switch"));
	s = skipped(plan, "off1");
	assert_non_null(s);
	assert_non_null(strstr(json_string_value(json_object_get(s, "reason")), "not running"));
	/* the move's why names the destination that could not take it */
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(json_object_get(plan, "moves"), 0), "why")),
			       "not h3: virtual switch"));
	json_decref(plan);
	json_decref(vms);
	json_decref(compares);
	json_decref(dests);
}

/* Disk space per directory counts what the copies placed before write;
 * the largest VM is placed first. */
static void test_disk_and_order(void **state)
{
	json_t *vms = json_array(), *compares = json_object(), *dests = json_pack("[s]", "h2"), *plan, *m;

	(void)state;
	json_array_append_new(vms, vm("small", "running", 64));
	json_array_append_new(vms, vm("big", "running", 512));
	json_object_set_new(compares, "small", json_pack("{s:o}", "h2", cmp(true, 64, 10000, 60 * MIB, 100 * MIB, 2, 2)));
	json_object_set_new(compares, "big", json_pack("{s:o}", "h2", cmp(true, 512, 10000, 60 * MIB, 100 * MIB, 2, 2)));
	plan = evacuate_plan(vms, compares, dests, true);
	m = json_array_get(json_object_get(plan, "moves"), 0);
	assert_string_equal(json_string_value(json_object_get(m, "vm")), "big");
	assert_int_equal(json_array_size(json_object_get(plan, "moves")), 1);
	assert_non_null(strstr(json_string_value(json_array_get(
				       json_object_get(json_object_get(skipped(plan, "small"), "problems"), "h2"), 0)),
			       "not enough disk space in /srv/vms"));
	json_decref(plan);
	json_decref(vms);
	json_decref(compares);
	json_decref(dests);
}

/* A destination that sent no numbers (an older ferryd) still takes a VM
 * whose checks pass, after those with numbers. */
static void test_no_numbers(void **state)
{
	json_t *vms = json_pack("[o]", vm("a", "running", 128)), *dests = json_pack("[s, s]", "old", "new");
	json_t *compares = json_pack("{s:{s:{s:b, s:[]}, s:o}}", "a", "old", "compatible", 1, "problems", "new",
				     cmp(true, 128, 300, 0, 0, 1, 1));
	json_t *plan = evacuate_plan(vms, compares, dests, false);

	(void)state;
	assert_string_equal(dest_of(plan, "a"), "new");
	json_decref(plan);
	json_decref(compares);
	compares = json_pack("{s:{s:{s:b, s:[]}}}", "a", "old", "compatible", 1, "problems");
	json_decref(dests);
	dests = json_pack("[s]", "old");
	plan = evacuate_plan(vms, compares, dests, false);
	assert_string_equal(dest_of(plan, "a"), "old");
	assert_int_equal(evacuate_dest_limit(plan, "old"), 0);
	json_decref(plan);
	json_decref(compares);
	json_decref(vms);
	json_decref(dests);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spread),
		cmocka_unit_test(test_memory_runs_out),
		cmocka_unit_test(test_disk_and_order),
		cmocka_unit_test(test_no_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
