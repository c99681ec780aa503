/* Virtual switches: a Linux bridge per switch; VM NICs are taps on it. */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "ops.h"

static int switch_create(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {{"uplink", required_argument, NULL, 'u'}, {NULL, 0, NULL, 0}};
	const char *uplink = NULL;
	json_t *args;
	int opt, rc;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'u')
			return usage_error(current_cmd(), "unknown option");
		uplink = optarg;
	}
	if (optind + 1 != argc)
		return usage_error(current_cmd(), "expected one switch NAME");
	args = json_pack("{s:s}", "name", argv[optind]);
	if (uplink)
		json_object_set_new(args, "uplink", json_string(uplink));
	rc = simple_call(cli, OP_SWITCH_CREATE, args);
	if (rc == 0 && !cli->json && !cli->quiet)
		printf("switch %s created%s%s\n", argv[optind], uplink ? " on uplink " : "", uplink ? uplink : "");
	return rc;
}

static int switch_delete(struct cli *cli, int argc, char **argv)
{
	int rc;

	if (argc != 2)
		return usage_error(current_cmd(), "expected one switch NAME");
	rc = simple_call(cli, OP_SWITCH_DELETE, json_pack("{s:s}", "name", argv[1]));
	if (rc == 0 && !cli->json && !cli->quiet)
		printf("switch %s deleted\n", argv[1]);
	return rc;
}

static int switch_list(struct cli *cli, int argc, char **argv)
{
	static const char *const cols[] = {"name", "uplink", "ports", NULL};
	static const char *const heads[] = {"NAME", "UPLINK", "PORTS", NULL};
	json_t *r;

	if (argc != 1)
		return usage_error(current_cmd(), "unexpected argument '%s'", argv[1]);
	r = cli_call(cli, OP_SWITCH_LIST, NULL);
	if (!r)
		return 1;
	if (cli->json)
		print_json(r);
	else
		print_table(json_object_get(r, "switches"), cols, heads);
	json_decref(r);
	return 0;
}

const struct cli_cmd switch_cmds[] = {
	{"switch", "create", "NAME [--uplink IFACE]", "Create a virtual switch (New-VMSwitch)",
	 "A virtual switch is a Linux bridge. With --uplink the host interface IFACE\n"
	 "joins it, so VMs reach the network outside (an external switch). A VM can\n"
	 "move only to a host that has a switch of the same name.\n",
	 switch_create},
	{"switch", "delete", "NAME", "Delete a virtual switch no running VM uses (Remove-VMSwitch)", "",
	 switch_delete},
	{"switch", "list", "", "List virtual switches (Get-VMSwitch)", "", switch_list},
	{NULL, NULL, NULL, NULL, NULL, NULL},
};
