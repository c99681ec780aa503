/* libFuzzer target: what a source does with a destination's prepare reply
 * (move_endpoint.c) and what a destination does with the paths a peer names
 * (storage.c: clean paths, storage roots). Nothing it is fed may reach QMP
 * unless it is a tcp: URI to the connected address. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "move_endpoint.h"
#include "proto.h"
#include "storage.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char roots[2][PATH_MAX] = {"/srv/vms", "/var/lib/ferry/disks"};
	struct move_endpoint e;
	char err[256];
	json_t *msg = NULL;

	if (proto_parse(data, size, &msg, err, sizeof(err)) < 0)
		return 0;
	for (int storage = 0; storage < 2; storage++)
		if (move_endpoint_from_reply(msg, "10.78.0.12", storage, &e, err, sizeof(err)) == 0 &&
		    (strncmp(e.uri, "tcp:10.78.0.12:", 15) != 0 || e.port < 1 || e.port > 65535))
			__builtin_trap();
	for (const char *k = "path"; k; k = NULL) {
		const char *p = json_string_value(json_object_get(msg, k));
		const char *root = p ? storage_root_of(roots, 2, p) : NULL;
		if (root && (!path_is_clean(p) || strstr(p, "/../") || strncmp(p, root, strlen(root)) != 0))
			__builtin_trap();
	}
	json_decref(msg);
	return 0;
}
