/* ferry host evacuate: the plan (evacuate_plan.c, pure) and the command
 * that makes it and carries it out (cmd_evacuate.c). */
#pragma once
#include <jansson.h>
#include <stdbool.h>

#define EVAC_DESTS_MAX 16

/* Where each VM of the source goes. Pure: no I/O.
 *   vms       the source's vm.list array ({"name", "state", "memory-mib"})
 *   compares  {VM: {HOST: vm.compare result}} for each running VM and each
 *             destination ({"compatible", "problems", "memory-mib",
 *             "disk-bytes", "destination": room}, move_plan.c)
 *   dests     the destinations, as given (array of strings, at most
 *             EVAC_DESTS_MAX)
 *   storage   the disks are copied: a destination's max-storage-migrations
 *             limits it too
 * Running VMs are placed largest first, each on the destination whose
 * checks pass and that keeps the most memory free once the VMs placed
 * before it are counted (memory and disk space per directory, from the
 * numbers each destination reported); ties go to the destination given
 * first. Returns {"moves": [{"vm", "memory-mib", "disk-bytes", "dest",
 * "why"}], "skipped": [{"vm", "state", "reason", "problems": {HOST:
 * [string]}}], "destinations": [{"host", "vms", "memory-planned-mib",
 * "memory-available-mib", "max-parallel"}]} (docs/json.md), or NULL when out
 * of memory. */
json_t *evacuate_plan(json_t *vms, json_t *compares, json_t *dests, bool storage);

/* How many moves may run at once towards one destination of the plan
 * ("max-parallel" of its entry), 0 when it reported no limits. */
int evacuate_dest_limit(json_t *plan, const char *host);
