/* The plan of 'ferry host evacuate' (evacuate.h): which destination takes
 * each running VM, counting what the VMs placed before it will use there.
 * Pure, so that the placement is tested without hosts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evacuate.h"

struct dest {
	const char *host;
	int64_t planned_mib;   /* memory (with QEMU's share) of the VMs placed here */
	json_t *planned_disk;  /* {DIR: bytes} the copies placed here will write */
	int vms;
	json_t *room;          /* the last room this destination reported (borrowed) */
};

static int64_t ival(json_t *o, const char *key) { return json_integer_value(json_object_get(o, key)); }

static const char *sval(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

/* Why d cannot take the VM compared in c, NULL when it can. *ret_left: the
 * memory d keeps free afterwards (INT64_MAX when d sent no numbers). */
static char *misfit(struct dest *d, json_t *c, int64_t *ret_left)
{
	json_t *room = json_object_get(c, "destination"), *dsk, *p;
	char *why = NULL;
	size_t i;

	*ret_left = INT64_MAX;
	if (!json_is_true(json_object_get(c, "compatible"))) {
		p = json_array_get(json_object_get(c, "problems"), 0);
		return strdup(p ? json_string_value(p) : "its checks failed");
	}
	if (!room) /* an older ferryd: its check passed, numbers unknown */
		return NULL;
	*ret_left = ival(room, "memory-available-mib") - d->planned_mib - ival(room, "memory-needed-mib");
	if (*ret_left < 0) {
		if (asprintf(&why, "not enough memory on %s once the VMs placed before are counted: %lld MiB needed, %lld MiB left",
			     d->host, (long long)ival(room, "memory-needed-mib"),
			     (long long)(ival(room, "memory-available-mib") - d->planned_mib)) < 0)
			why = NULL;
		return why ? why : strdup("not enough memory");
	}
	json_array_foreach(json_object_get(room, "disks"), i, dsk) {
		int64_t left = ival(dsk, "free") - ival(d->planned_disk, sval(dsk, "dir"));
		if (ival(dsk, "needed") <= left)
			continue;
		if (asprintf(&why, "not enough disk space in %s on %s once the VMs placed before are counted: %lld MiB needed, %lld MiB left",
			     sval(dsk, "dir"), d->host, (long long)(ival(dsk, "needed") >> 20),
			     (long long)((left > 0 ? left : 0) >> 20)) < 0)
			why = NULL;
		return why ? why : strdup("not enough disk space");
	}
	return NULL;
}

static void place(struct dest *d, json_t *c)
{
	json_t *room = json_object_get(c, "destination"), *dsk;
	size_t i;

	d->vms++;
	if (!room)
		return;
	d->room = room;
	d->planned_mib += ival(room, "memory-needed-mib");
	json_array_foreach(json_object_get(room, "disks"), i, dsk)
		json_object_set_new(d->planned_disk, sval(dsk, "dir"),
				    json_integer(ival(d->planned_disk, sval(dsk, "dir")) + ival(dsk, "needed")));
}

/* Largest first, then by name: the same plan for the same hosts. */
static int by_memory_desc(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int64_t mx = ival(x, "memory-mib"), my = ival(y, "memory-mib");

	if (mx != my)
		return mx > my ? -1 : 1;
	return strcmp(sval(x, "name"), sval(y, "name"));
}

static json_t *why_text(struct dest *best, int64_t left, int candidates, json_t *refused)
{
	char buf[2048];
	const char *host;
	json_t *list;
	int n;

	if (left == INT64_MAX)
		n = snprintf(buf, sizeof(buf), "its checks pass (%s reported no numbers)", best->host);
	else
		n = snprintf(buf, sizeof(buf), "%s, %lld MiB memory free after", candidates > 1 ? "most memory left" : "fits",
			     (long long)left);
	json_object_foreach(refused, host, list)
		if (n >= 0 && (size_t)n < sizeof(buf))
			n += snprintf(buf + n, sizeof(buf) - (size_t)n, "; not %s: %s", host,
				      json_string_value(json_array_get(list, 0)));
	return json_string(buf);
}

static json_t *skipped_entry(json_t *vm, const char *reason, json_t *problems)
{
	return json_pack("{s:s, s:s, s:s, s:o}", "vm", sval(vm, "name"), "state", sval(vm, "state"), "reason", reason,
			 "problems", problems ? problems : json_object());
}

/* One running VM: its move, or why it stays. */
static json_t *place_vm(struct dest *ds, size_t nd, json_t *vm, json_t *compares, json_t *skipped)
{
	json_t *cmp = json_object_get(compares, sval(vm, "name")), *refused = json_object(), *c, *move;
	struct dest *best = NULL;
	int64_t best_left = 0, left = 0;
	int candidates = 0;
	char *why;

	for (size_t k = 0; k < nd; k++) {
		c = json_object_get(cmp, ds[k].host);
		why = c ? misfit(&ds[k], c, &left) : strdup("not compared");
		if (why) {
			json_object_set_new(refused, ds[k].host, json_pack("[s]", why));
			free(why);
			continue;
		}
		candidates++;
		/* a destination with numbers before one without; then the most left */
		if (!best || (best_left == INT64_MAX && left != INT64_MAX) ||
		    (left != INT64_MAX && left > best_left)) {
			best = &ds[k];
			best_left = left;
		}
	}
	if (!best) {
		json_array_append_new(skipped, skipped_entry(vm, "no destination can take it", refused));
		return NULL;
	}
	c = json_object_get(cmp, best->host);
	place(best, c);
	move = json_pack("{s:s, s:I, s:I, s:s, s:o}", "vm", sval(vm, "name"), "memory-mib", ival(vm, "memory-mib"),
			 "disk-bytes", ival(c, "disk-bytes"), "dest", best->host, "why",
			 why_text(best, best_left, candidates, refused));
	json_decref(refused);
	return move;
}

static int dest_limit(json_t *room, bool storage)
{
	int64_t live = ival(room, "max-migrations"), st = ival(room, "max-storage-migrations");

	return (int)(storage && st < live ? st : live);
}

static json_t *dest_entry(struct dest *d, bool storage)
{
	json_t *o = json_pack("{s:s, s:i, s:I}", "host", d->host, "vms", d->vms, "memory-planned-mib",
			      (json_int_t)d->planned_mib);

	if (o && d->room) {
		json_object_set_new(o, "memory-available-mib", json_integer(ival(d->room, "memory-available-mib")));
		json_object_set_new(o, "max-parallel", json_integer(dest_limit(d->room, storage)));
	}
	return o;
}

json_t *evacuate_plan(json_t *vms, json_t *compares, json_t *dests, bool storage)
{
	struct dest ds[EVAC_DESTS_MAX] = {0};
	size_t nd = json_array_size(dests), nrun = 0, i;
	json_t **running = calloc(json_array_size(vms) + 1, sizeof(*running));
	json_t *moves = json_array(), *skipped = json_array(), *dlist = json_array(), *vm, *m, *plan = NULL;

	if (!running || !moves || !skipped || !dlist || nd > EVAC_DESTS_MAX)
		goto out;
	for (i = 0; i < nd; i++) {
		ds[i].host = json_string_value(json_array_get(dests, i));
		ds[i].planned_disk = json_object();
	}
	json_array_foreach(vms, i, vm) {
		if (!strcmp(sval(vm, "state"), "running"))
			running[nrun++] = vm;
		else
			json_array_append_new(skipped, skipped_entry(vm, "not running: only a running VM moves live", NULL));
	}
	qsort(running, nrun, sizeof(*running), by_memory_desc);
	for (i = 0; i < nrun; i++)
		if ((m = place_vm(ds, nd, running[i], compares, skipped)))
			json_array_append_new(moves, m);
	/* the room each destination reported for any VM: their limits, at least */
	for (i = 0; i < nd; i++) {
		json_t *per_vm, *c;
		const char *name;
		json_object_foreach(compares, name, per_vm)
			if (!ds[i].room && (c = json_object_get(per_vm, ds[i].host)))
				ds[i].room = json_object_get(c, "destination");
		json_array_append_new(dlist, dest_entry(&ds[i], storage));
	}
	plan = json_pack("{s:O, s:O, s:O}", "moves", moves, "skipped", skipped, "destinations", dlist);
out:
	for (i = 0; i < nd && i < EVAC_DESTS_MAX; i++)
		json_decref(ds[i].planned_disk);
	json_decref(moves);
	json_decref(skipped);
	json_decref(dlist);
	free(running);
	return plan;
}

int evacuate_dest_limit(json_t *plan, const char *host)
{
	json_t *d;
	size_t i;

	json_array_foreach(json_object_get(plan, "destinations"), i, d)
		if (!strcmp(sval(d, "host"), host))
			return (int)ival(d, "max-parallel");
	return 0;
}
