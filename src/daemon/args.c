/* Reading request arguments: every handler gets the same clear errors. */
#include <string.h>

#include "ferryd.h"
#include "util.h"
#include "vmconfig.h"

const char *arg_str(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

int arg_name(json_t *args, const char *key, const char **ret, json_t **ret_err)
{
	const char *s = arg_str(args, key);

	if (!s) {
		*ret_err = reply_error("bad_request", NULL, "missing argument '%s'", key);
		return -1;
	}
	if (!name_is_valid(s, VM_NAME_MAX)) {
		*ret_err = reply_error("invalid", NULL,
				       "'%s' is not a valid name: use 1-%d letters, digits, '-', '_' or '.'", s,
				       VM_NAME_MAX);
		return -1;
	}
	*ret = s;
	return 0;
}

bool arg_bool(json_t *args, const char *key, bool def)
{
	json_t *v = json_object_get(args, key);
	return json_is_boolean(v) ? json_is_true(v) : def;
}
