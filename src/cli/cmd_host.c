/* host and migration commands: Set-VMHost, Enable-/Disable-VMMigration,
 * Add-/Remove-/Get-VMMigrationNetwork. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ops.h"
#include "settings.h"
#include "util.h"

int simple_call(struct cli *cli, const char *op, json_t *args)
{
	json_t *r = cli_call(cli, op, args);

	if (!r)
		return 1;
	if (cli->json)
		print_json(r);
	json_decref(r);
	return 0;
}

static void print_settings(json_t *settings)
{
	size_t n;
	const struct setting_def *t = settings_table(&n);

	for (size_t i = 0; i < n; i++) {
		json_t *v = json_object_get(settings, t[i].name);
		if (json_is_boolean(v))
			printf("  %-24s %s\n", t[i].name, json_is_true(v) ? "on" : "off");
		else if (json_is_integer(v))
			printf("  %-24s %lld\n", t[i].name, (long long)json_integer_value(v));
		else
			printf("  %-24s %s\n", t[i].name, json_string_value(v) ? json_string_value(v) : "-");
	}
}

static void print_networks(json_t *nets, bool any)
{
	size_t i;
	json_t *n;

	if (any)
		printf("  any available network (use-any-network on)\n");
	json_array_foreach(nets, i, n)
		printf("  %-24s priority %lld%s\n", jstr(n, "cidr"),
		       (long long)json_integer_value(json_object_get(n, "priority")), any ? " (not enforced)" : "");
	if (!any && json_array_size(nets) == 0)
		printf("  none: incoming migrations are refused until a network is added\n");
}

static int host_show(struct cli *cli, int argc, char **argv)
{
	json_t *r, *s;

	if (argc > 1)
		return usage_error(current_cmd(), "unexpected argument '%s'", argv[1]);
	r = cli_call(cli, OP_HOST_SHOW, NULL);
	if (!r)
		return 1;
	if (cli->json) {
		print_json(r);
	} else {
		s = json_object_get(r, "settings");
		printf("host:         %s\nversion:      %s\naccelerator:  %s\nvms:          %lld\n",
		       jstr(r, "host-name"), jstr(r, "version"), jstr(r, "accelerator"),
		       (long long)json_integer_value(json_object_get(r, "vms")));
		printf("settings:\n");
		print_settings(s);
		printf("migration networks:\n");
		print_networks(json_object_get(s, "migration-networks"),
			       json_is_true(json_object_get(s, "use-any-network")));
	}
	json_decref(r);
	return 0;
}

static int host_set(struct cli *cli, int argc, char **argv)
{
	json_t *r, *settings;

	if (argc < 3 || (argc - 1) % 2)
		return usage_error(current_cmd(), "expected NAME VALUE pairs");
	/* One request: ferryd checks every value first and changes all or none. */
	settings = json_object();
	for (int i = 1; i + 1 < argc; i += 2) {
		if (json_object_get(settings, argv[i])) {
			json_decref(settings);
			return usage_error(current_cmd(), "'%s' is given twice", argv[i]);
		}
		if (json_object_set_new(settings, argv[i], json_string(argv[i + 1])) < 0) {
			json_decref(settings);
			return usage_error(current_cmd(), "'%s %s' is not valid UTF-8", argv[i], argv[i + 1]);
		}
	}
	r = cli_call(cli, OP_HOST_SET, json_pack("{s:o}", "settings", settings));
	if (!r)
		return 1;
	if (cli->json)
		print_json(r);
	else if (!cli->quiet)
		for (int i = 1; i + 1 < argc; i += 2)
			printf("%s = %s\n", argv[i], argv[i + 1]);
	json_decref(r);
	return 0;
}

static int migration_toggle(struct cli *cli, int argc, char **argv)
{
	bool on = !strcmp(argv[0], "enable");
	int rc;

	if (argc > 1)
		return usage_error(current_cmd(), "unexpected argument '%s'", argv[1]);
	rc = simple_call(cli, on ? OP_MIGRATION_ENABLE : OP_MIGRATION_DISABLE, NULL);
	if (rc == 0 && !cli->json && !cli->quiet)
		printf("live migrations %s\n", on ? "enabled" : "disabled");
	return rc;
}

static int migration_any(struct cli *cli, int argc, char **argv)
{
	if (argc != 2 || (strcmp(argv[1], "on") && strcmp(argv[1], "off")))
		return usage_error(current_cmd(), "expected on or off");
	int rc = simple_call(cli, OP_HOST_SET, json_pack("{s:s, s:s}", "name", "use-any-network", "value", argv[1]));

	if (rc == 0 && !cli->json && !cli->quiet)
		printf("use-any-network = %s\n", argv[1]);
	return rc;
}

static int migration_network(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {{"priority", required_argument, NULL, 'p'}, {NULL, 0, NULL, 0}};
	json_t *args = json_object(), *r;
	const char *sub = argc > 1 ? argv[1] : "";
	uint64_t prio;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
		if (opt != 'p' || parse_u64(optarg, 0, 1000, &prio) < 0) {
			json_decref(args);
			return usage_error(current_cmd(), "--priority needs a number from 0 to 1000");
		}
		json_object_set_new(args, "priority", json_integer((json_int_t)prio));
	}
	optind += 1;
	if (!strcmp(sub, "list") && optind == argc) {
		json_decref(args);
		r = cli_call(cli, OP_MIGRATION_NETWORK_LIST, NULL);
	} else if ((!strcmp(sub, "add") || !strcmp(sub, "remove")) && optind + 1 == argc) {
		json_object_set_new(args, "cidr", json_string(argv[optind]));
		r = cli_call(cli, !strcmp(sub, "add") ? OP_MIGRATION_NETWORK_ADD : OP_MIGRATION_NETWORK_REMOVE, args);
	} else {
		json_decref(args);
		return usage_error(current_cmd(), "expected add CIDR, remove CIDR or list");
	}
	if (!r)
		return 1;
	if (cli->json)
		print_json(r);
	else
		print_networks(json_object_get(r, "networks"), json_is_true(json_object_get(r, "use-any-network")));
	json_decref(r);
	return 0;
}

/* 'ferry host set --help' lists the settings from their one table. */
void print_settings_help(FILE *f)
{
	size_t n;
	const struct setting_def *t = settings_table(&n);
	char allowed[256];

	fprintf(f, "\nSettings:\n");
	for (size_t i = 0; i < n; i++) {
		setting_allowed(&t[i], allowed, sizeof(allowed));
		fprintf(f, "  %s %s (default %s)\n      %s\n", t[i].name, allowed, *t[i].def ? t[i].def : "\"\"",
			t[i].help);
	}
}

const struct cli_cmd host_cmds[] = {
	{"host", "show", "", "Show this host's settings and migration networks (Get-VMHost)",
	 "Options:\n  --json   print the settings as JSON\n", host_show},
	{"host", "set", "NAME VALUE [NAME VALUE...]", "Change host settings (Set-VMHost)",
	 "Each value is checked against its allowed range; a bad value changes nothing.\n",
	 host_set},
	{"host", "evacuate", "--to HOST [--to HOST...] [OPTIONS]",
	 "Move every running VM of this host to other hosts (drain)",
	 "Every running VM of this host moves live to one of the destinations, as\n"
	 "'ferry vm move' would move it. Hyper-V has no single cmdlet for this; a\n"
	 "failover cluster drains a node with Suspend-ClusterNode -Drain.\n\n"
	 "First the plan: each VM is checked against each destination as 'ferry vm\n"
	 "compare' checks it (memory, disk space, switch names, processor\n"
	 "compatibility, machine type), then placed, largest first, where the most\n"
	 "memory stays free once the VMs placed there before it are counted. The plan\n"
	 "is printed; with --what-if nothing more happens. Otherwise the moves run as\n"
	 "jobs: never more at once than this host's max-migrations (and\n"
	 "max-storage-migrations with --include-storage) or --max-parallel, nor more\n"
	 "towards one destination than its own limits. At the end one summary: moved,\n"
	 "failed (with the reason; a VM whose move fails keeps running here) and\n"
	 "skipped (VMs that are not running, running VMs no destination can take).\n\n"
	 "Options:\n"
	 "  --to HOST[,storage-path=DIR]  a destination; repeatable (up to 16); with\n"
	 "                           storage-path= the disks copied there go to DIR\n"
	 "  --what-if                print the plan, move nothing\n"
	 "  --max-parallel N         at most N moves at once (lowers the host's limit)\n"
	 "  --include-storage        copy the disks too (shared-nothing)\n"
	 "  --storage-path DIR       where the copied disks go on every destination\n"
	 "  --keep-source-disks      leave the source's disk files in place afterwards\n\n"
	 "Exit status 0 when every running VM moved (with --what-if: when each has a\n"
	 "destination), 1 otherwise. Each move carries your credentials as 'ferry vm\n"
	 "move' does: with auth credssp run it on this host after kinit, with\n"
	 "kerberos also with -H from anywhere. Interrupting ferry lets the moves\n"
	 "already started finish ('ferry job list'); the others stay here.\n\n"
	 "Examples:\n"
	 "  ferry host evacuate --to host2.example.com --to host3.example.com --what-if\n"
	 "  ferry host evacuate --to host2.example.com --to host3.example.com --include-storage --storage-path /srv/vms\n",
	 host_evacuate},
	{"migration", "enable", "", "Allow incoming and outgoing live migrations (Enable-VMMigration)", "",
	 migration_toggle},
	{"migration", "disable", "", "Refuse live migrations (Disable-VMMigration)", "", migration_toggle},
	{"migration", "network", "add|remove|list [CIDR] [--priority N]",
	 "Networks on which this host accepts migrations (Add-/Remove-/Get-VMMigrationNetwork)",
	 "The migration listener binds only to addresses in these networks and refuses\n"
	 "sources outside them. Lower priority numbers are preferred.\n\n"
	 "Examples:\n  ferry migration network add 10.78.0.0/24 --priority 1\n"
	 "  ferry migration network remove 10.78.0.0/24\n",
	 migration_network},
	{"migration", "use-any-network", "on|off", "Accept migrations on any available network", "",
	 migration_any},
	{NULL, NULL, NULL, NULL, NULL, NULL},
};
