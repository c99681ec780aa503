/* ferry: command line for ferryd. "ferry [OPTIONS] GROUP COMMAND [ARGS]" */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "settings.h"
#include "util.h"

static const struct cli_cmd *const tables[] = {host_cmds, switch_cmds, vm_cmds, move_cmds, job_cmds};
static const struct cli_cmd *running;

const struct cli_cmd *current_cmd(void) { return running; }

/* ferry's own options, before GROUP: --help, ferry(1) and the completion
 * are made from this table (ferry --dump-commands). */
struct cli_opt {
	const char *flags;
	const char *arg;
	const char *help;
};

static const struct cli_opt global_opts[] = {
	{"-H, --host", "FQDN", "talk to ferryd on another host (TCP 6600, Kerberos)"},
	{"--socket", "PATH", "local control socket (default $FERRY_SOCKET or " FERRY_DEFAULT_RUN_DIR "/control.sock)"},
	{"--port", "N", "TCP port of a remote ferryd (default 6600)"},
	{"--json", NULL, "machine-readable output (docs/json.md)"},
	{"-q, --quiet", NULL, "no progress output"},
	{"-h, --help", NULL, "this help; 'ferry GROUP COMMAND --help' for one command"},
	{"--version", NULL, "print the version"},
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ferry [OPTIONS] GROUP COMMAND [ARGS...]\n"
		"\n"
		"Live migration of running virtual machines between standalone Linux hosts:\n"
		"memory, device state and disks move over the network while the guest runs.\n"
		"\n"
		"Options:\n");
	for (size_t i = 0; i < ARRAY_SIZE(global_opts); i++) {
		char syn[64];
		snprintf(syn, sizeof(syn), "%s%s%s", global_opts[i].flags, global_opts[i].arg ? " " : "",
			 global_opts[i].arg ? global_opts[i].arg : "");
		fprintf(f, "  %-17s %s\n", syn, global_opts[i].help);
	}
	fprintf(f, "\nCommands:\n");
	for (size_t t = 0; t < ARRAY_SIZE(tables); t++)
		for (const struct cli_cmd *c = tables[t]; c->group; c++) {
			char syn[96];
			snprintf(syn, sizeof(syn), "%s %s %s", c->group, c->name, c->args);
			if (strlen(syn) > 44) /* a long synopsis gets its own line */
				fprintf(f, "  %s\n  %-44s %s\n", syn, "", c->summary);
			else
				fprintf(f, "  %-44s %s\n", syn, c->summary);
		}
	fprintf(f,
		"\nExit status: 0 success, 1 the operation failed (the message says why),\n"
		"2 bad usage. Errors go to standard error; with --json the error object\n"
		"is also printed on standard output.\n");
}

/* Hidden: the tables as JSON, from which meson generates ferry(1) and the
 * bash completion (man/gen.py), so that they cannot drift from --help. */
static int dump_commands(void)
{
	json_t *opts = json_array(), *cmds = json_array(), *out;
	size_t n;
	const struct setting_def *st = settings_table(&n);
	json_t *settings = json_array();
	int rc = 1;

	for (size_t i = 0; i < ARRAY_SIZE(global_opts); i++)
		json_array_append_new(opts, json_pack("{s:s, s:s?, s:s}", "flags", global_opts[i].flags, "arg",
						      global_opts[i].arg, "help", global_opts[i].help));
	for (size_t t = 0; t < ARRAY_SIZE(tables); t++)
		for (const struct cli_cmd *c = tables[t]; c->group; c++)
			json_array_append_new(cmds, json_pack("{s:s, s:s, s:s, s:s, s:s}", "group", c->group, "name",
							      c->name, "args", c->args, "summary", c->summary, "help",
							      c->help ? c->help : ""));
	for (size_t i = 0; i < n; i++) {
		char allowed[256];
		setting_allowed(&st[i], allowed, sizeof(allowed));
		json_array_append_new(settings, json_pack("{s:s, s:s, s:s, s:s}", "name", st[i].name, "allowed",
							  allowed, "default", st[i].def, "help", st[i].help));
	}
	out = json_pack("{s:s, s:o, s:o, s:o}", "version", FERRY_VERSION, "options", opts, "commands", cmds,
			"settings", settings);
	if (out) {
		print_json(out);
		rc = 0;
	}
	json_decref(out);
	return rc;
}

static void cmd_help(const struct cli_cmd *c)
{
	printf("Usage: ferry %s %s %s\n\n%s.\n", c->group, c->name, c->args, c->summary);
	if (c->help && *c->help)
		printf("\n%s", c->help);
	if (!strcmp(c->group, "host") && !strcmp(c->name, "set"))
		print_settings_help(stdout);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"host", required_argument, NULL, 'H'}, {"socket", required_argument, NULL, 's'},
		{"port", required_argument, NULL, 'p'}, {"json", no_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'},      {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},    {"dump-commands", no_argument, NULL, 'D'},
		{NULL, 0, NULL, 0}};
	static char default_socket[256];
	struct cli cli = {.port = 6600};
	const char *group, *name;
	uint64_t port;
	int opt, rc;

	snprintf(default_socket, sizeof(default_socket), "%s/control.sock", FERRY_DEFAULT_RUN_DIR);
	cli.socket = getenv("FERRY_SOCKET") ? getenv("FERRY_SOCKET") : default_socket;
	while ((opt = getopt_long(argc, argv, "+H:qh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'H': cli.host = optarg; break;
		case 's': cli.socket = optarg; break;
		case 'p':
			if (parse_u64(optarg, 1, 65535, &port) < 0) {
				fprintf(stderr, "ferry: --port needs a number from 1 to 65535\n");
				return 2;
			}
			cli.port = (int)port;
			break;
		case 'j': cli.json = true; break;
		case 'q': cli.quiet = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("ferry %s\n", FERRY_VERSION); return 0;
		case 'D': return dump_commands();
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	/* --json and --quiet are accepted after the command too. */
	for (int i = optind + 1; i < argc && strcmp(argv[i], "--"); i++) {
		bool json = !strcmp(argv[i], "--json");
		if (!json && strcmp(argv[i], "--quiet"))
			continue;
		if (json)
			cli.json = true;
		else
			cli.quiet = true;
		memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof(char *)); /* keeps argv[argc] NULL */
		argc--;
		i--;
	}
	group = argv[optind];
	name = optind + 1 < argc ? argv[optind + 1] : "";
	for (size_t t = 0; t < ARRAY_SIZE(tables); t++)
		for (const struct cli_cmd *c = tables[t]; c->group; c++) {
			if (strcmp(c->group, group) || strcmp(c->name, name))
				continue;
			for (int i = optind + 2; i < argc; i++) {
				if (!strcmp(argv[i], "--"))
					break;
				if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
					cmd_help(c);
					return 0;
				}
			}
			running = c;
			optind += 1; /* the command sees argv[0] = its name */
			rc = c->fn(&cli, argc - optind, argv + optind);
			cli_close(&cli);
			return rc;
		}
	fprintf(stderr, "ferry: unknown command '%s%s%s'\n", group, *name ? " " : "", name);
	for (size_t t = 0; t < ARRAY_SIZE(tables); t++)
		for (const struct cli_cmd *c = tables[t]; c->group; c++)
			if (!strcmp(c->group, group))
				fprintf(stderr, "  ferry %s %s %s\n", c->group, c->name, c->args);
	fprintf(stderr, "see 'ferry --help'\n");
	return 2;
}
