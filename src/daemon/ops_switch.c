/* Virtual switches (New-/Remove-/Get-VMSwitch). */
#include <errno.h>

#include "ferryd.h"
#include "ops.h"

static const char *code_for(int r)
{
	switch (r) {
	case -EEXIST: return "exists";
	case -ENOENT: case -ENODEV: return "not_found";
	case -EBUSY: return "busy";
	case -EINVAL: return "invalid";
	case -EPERM: return "refused";
	default: return "failed";
	}
}

static json_t *sw_create(struct request *req)
{
	const char *name = arg_str(req->args, "name"), *uplink = arg_str(req->args, "uplink");
	char err[512];
	int r;

	if (!name)
		return reply_error("bad_request", NULL, "missing argument 'name'");
	r = switch_create(name, uplink, err, sizeof(err));
	if (r < 0)
		return reply_error(code_for(r), NULL, "%s", err);
	return reply_ok(json_pack("{s:s, s:s?}", "name", name, "uplink", uplink));
}

static json_t *sw_delete(struct request *req)
{
	const char *name = arg_str(req->args, "name");
	char err[512];
	int r;

	if (!name)
		return reply_error("bad_request", NULL, "missing argument 'name'");
	r = switch_delete(name, err, sizeof(err));
	if (r < 0)
		return reply_error(code_for(r), NULL, "%s", err);
	return reply_ok(json_pack("{s:s}", "deleted", name));
}

static json_t *sw_list(struct request *req)
{
	return reply_ok(json_pack("{s:o}", "switches", switch_list()));
}

const struct op_def switch_ops[] = {
	{OP_SWITCH_CREATE, sw_create, OP_USER},
	{OP_SWITCH_DELETE, sw_delete, OP_USER},
	{OP_SWITCH_LIST, sw_list, OP_USER},
	{NULL, NULL, 0},
};
