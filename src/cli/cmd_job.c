/* ferry job list|show|cancel|watch */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ops.h"
#include "util.h"

int watch_job(struct cli *cli, json_int_t id, bool lines);

static int job_id(int argc, char **argv, json_int_t *ret)
{
	uint64_t v;

	if (argc != 2 || parse_u64(argv[1], 1, INT64_MAX, &v) < 0)
		return usage_error(current_cmd(), "expected a job ID (see 'ferry job list')");
	*ret = (json_int_t)v;
	return 0;
}

static int job_list(struct cli *cli, int argc, char **argv)
{
	static const char *const cols[] = {"id", "kind", "vm", "dest", "stage", "pass", "error", NULL};
	static const char *const heads[] = {"ID", "KIND", "VM", "DESTINATION", "STAGE", "PASS", "ERROR", NULL};
	json_t *r;

	if (argc != 1)
		return usage_error(current_cmd(), "unexpected argument '%s'", argv[1]);
	r = cli_call(cli, OP_JOB_LIST, NULL);
	if (!r)
		return 1;
	if (cli->json)
		print_json(r);
	else
		print_table(json_object_get(r, "jobs"), cols, heads);
	json_decref(r);
	return 0;
}

static int job_show_cancel(struct cli *cli, int argc, char **argv)
{
	json_int_t id = 0;
	json_t *r;
	int rc = job_id(argc, argv, &id);

	if (rc)
		return rc;
	r = cli_call(cli, !strcmp(argv[0], "show") ? OP_JOB_SHOW : OP_JOB_CANCEL, json_pack("{s:I}", "id", id));
	if (!r)
		return 1;
	if (cli->json)
		print_json(r);
	else if (!strcmp(argv[0], "cancel"))
		printf("job %lld: cancel requested; the VM stays where it is\n", (long long)id);
	else
		print_json(r);
	json_decref(r);
	return 0;
}

static int job_watch(struct cli *cli, int argc, char **argv)
{
	json_int_t id = 0;
	int rc = job_id(argc, argv, &id);

	return rc ? rc : watch_job(cli, id, cli->json);
}

const struct cli_cmd job_cmds[] = {
	{"job", "list", "", "List moves: queued, running and finished", "", job_list},
	{"job", "show", "ID", "Show one job's stage and progress", "", job_show_cancel},
	{"job", "cancel", "ID", "Cancel a move before its switchover; the VM stays on the source", "",
	 job_show_cancel},
	{"job", "watch", "ID", "Follow a job's progress until it ends",
	 "A progress bar on a terminal, plain lines otherwise. With --json, one JSON\n"
	 "object a line per event (JSON Lines, docs/events.md): \"stage\" when the stage\n"
	 "changes, \"progress\" about twice a second, and last \"done\" with the outcome\n"
	 "(or \"error\" when the job cannot be followed).\n"
	 "Exit status 0 when the job completed.\n",
	 job_watch},
	{NULL, NULL, NULL, NULL, NULL, NULL},
};
