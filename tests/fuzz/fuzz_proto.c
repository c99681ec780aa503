/* libFuzzer target: everything ferryd does with bytes from a client before
 * dispatching: frame header, JSON payload, request shape, VM configuration. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto.h"
#include "settings.h"
#include "vmconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	uint32_t len;
	json_t *msg = NULL, *args = NULL;
	const char *op;

	if (size >= PROTO_HEADER_LEN && proto_header_decode(data, PROTO_MAX_MSG, &len) == 0) {
		data += PROTO_HEADER_LEN;
		size -= PROTO_HEADER_LEN;
	}
	if (proto_parse(data, size, &msg, err, sizeof(err)) < 0)
		return 0;
	if (proto_check_request(msg, &op, &args, err, sizeof(err)) == 0 && args) {
		json_t *cfg = json_object_get(args, "config");
		const char *v = json_string_value(json_object_get(args, "value"));
		const char *n = json_string_value(json_object_get(args, "name"));
		if (cfg) {
			json_t *copy = json_deep_copy(cfg);
			vmconfig_normalize(copy, err, sizeof(err));
			json_decref(copy);
		}
		if (n && v && setting_find(n)) {
			json_t *out = NULL;
			if (setting_parse(setting_find(n), v, &out, err, sizeof(err)) == 0)
				json_decref(out);
		}
		if (v)
			cidr_contains(v, "10.0.0.1");
	}
	json_decref(msg);
	return 0;
}
