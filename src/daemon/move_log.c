/* The log line of each step of an incoming move (migrate.prepare, finish,
 * abort): dispatch calls it with the reply, so that every way out of the
 * handler is logged once. The source's steps are its job's (job.c). */
#include <string.h>

#include "ferryd.h"
#include "log.h"
#include "ops.h"
#include "util.h"

void incoming_log_step(const struct request *req, json_t *reply)
{
	const char *dot = strchr(req->op, '.'), *phase = dot ? dot + 1 : req->op;
	json_t *cfg = json_object_get(req->args, "config"), *err = json_object_get(reply, "error");
	/* the name as sent: checked or not, log.c keeps it on one line */
	const char *vm = json_string_value(json_object_get(json_is_object(cfg) ? cfg : req->args, "name"));
	struct log_move ev = {.vm = vm, .peer = req->caller->addr, .phase = phase};
	const char *uri;

	if (err) {
		log_move_event(LOG_WARN, &ev, "%s: %s", arg_str(err, "code") ? arg_str(err, "code") : "error",
			       arg_str(err, "message") ? arg_str(err, "message") : "");
		return;
	}
	if (!strcmp(req->op, OP_MIGRATE_PREPARE)) {
		uri = arg_str(json_object_get(reply, "result"), "uri");
		log_move_event(LOG_INFO, &ev, "planned here, waiting for the migration at %s", uri ? uri : "?");
	} else if (!strcmp(req->op, OP_MIGRATE_FINISH)) {
		log_move_event(LOG_INFO, &ev, "arrived: runs here now");
	} else if (!strcmp(req->op, OP_MIGRATE_ABORT)) {
		log_move_event(LOG_INFO, &ev, "aborted by the source: the planned VM is removed");
	} else {
		log_move_event(LOG_INFO, &ev, "done");
	}
}
