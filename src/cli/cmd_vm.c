/* VM commands: define, start, stop, list, show, console, set, delete. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ops.h"
#include "util.h"

/* ferryd needs absolute paths: resolve relative ones against our cwd. */
static int abs_path(const char *p, char *out, size_t len)
{
	char cwd[PATH_MAX];

	if (p[0] == '/')
		return snprintf(out, len, "%s", p) < (int)len ? 0 : -ENAMETOOLONG;
	if (!getcwd(cwd, sizeof(cwd)))
		return -errno;
	return snprintf(out, len, "%s/%s", cwd, p) < (int)len ? 0 : -ENAMETOOLONG;
}

/* --disk PATH[,size=SIZE][,format=qcow2|raw] */
static int parse_disk(const char *spec, json_t *disks, json_t *create)
{
	char buf[PATH_MAX], path[PATH_MAX], *opt, *save = NULL;
	const char *format = NULL;
	uint64_t size = 0;
	json_t *d;

	snprintf(buf, sizeof(buf), "%s", spec);
	opt = strtok_r(buf, ",", &save);
	if (!opt || abs_path(opt, path, sizeof(path)) < 0)
		return -EINVAL;
	while ((opt = strtok_r(NULL, ",", &save))) {
		if (!strncmp(opt, "size=", 5)) {
			if (parse_size_mib(opt + 5, &size) < 0)
				return -EINVAL;
		} else if (!strcmp(opt, "format=qcow2") || !strcmp(opt, "format=raw")) {
			format = opt + 7;
		} else {
			return -EINVAL;
		}
	}
	if (!format)
		format = strstr(path, ".raw") || strstr(path, ".img") ? "raw" : "qcow2";
	d = json_pack("{s:s, s:s}", "path", path, "format", format);
	json_array_append_new(disks, d);
	if (size)
		json_array_append_new(create, json_pack("{s:s, s:s, s:I}", "path", path, "format", format,
							"size-mib", (json_int_t)size));
	return 0;
}

static int parse_nic(const char *spec, json_t *nics)
{
	char buf[128], *mac;

	if (strlen(spec) >= sizeof(buf))
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", spec);
	mac = strstr(buf, ",mac=");
	if (mac)
		*mac = 0;
	json_array_append_new(nics, json_pack("{s:s}", "switch", buf));
	if (mac)
		json_object_set_new(json_array_get(nics, json_array_size(nics) - 1), "mac", json_string(mac + 5));
	return 0;
}

static int onoff(const char *s, json_t **ret)
{
	if (!strcmp(s, "on") || !strcmp(s, "true")) {
		*ret = json_true();
		return 0;
	}
	if (!strcmp(s, "off") || !strcmp(s, "false")) {
		*ret = json_false();
		return 0;
	}
	return -EINVAL;
}

static void print_summary(json_t *vm)
{
	size_t i;
	json_t *x;

	printf("name:              %s\nid:                %s\nstate:             %s\n", jstr(vm, "name"),
	       jstr(vm, "id"), jstr(vm, "state"));
	printf("memory:            %lld MiB\nvcpus:             %lld\n",
	       (long long)json_integer_value(json_object_get(vm, "memory-mib")),
	       (long long)json_integer_value(json_object_get(vm, "vcpus")));
	printf("processor-compat:  %s\nconfig-version:    %lld\n",
	       json_is_true(json_object_get(vm, "processor-compat")) ? "on" : "off",
	       (long long)json_integer_value(json_object_get(vm, "config-version")));
	json_array_foreach(json_object_get(vm, "disks"), i, x)
		printf("disk %zu:            %s (%s)\n", i, jstr(x, "path"), jstr(x, "format"));
	json_array_foreach(json_object_get(vm, "nics"), i, x)
		printf("nic %zu:             switch %s, mac %s\n", i, jstr(x, "switch"), jstr(x, "mac"));
}

/* Options shared by define and set. Returns 0, or 2 after a usage error. */
static int vm_options(int argc, char **argv, json_t *cfg, json_t *create, bool define)
{
	static const struct option opts[] = {
		{"memory", required_argument, NULL, 'm'},   {"vcpus", required_argument, NULL, 'c'},
		{"kernel", required_argument, NULL, 'k'},   {"initrd", required_argument, NULL, 'i'},
		{"cmdline", required_argument, NULL, 'a'},  {"disk", required_argument, NULL, 'd'},
		{"nic", required_argument, NULL, 'n'},      {"processor-compat", required_argument, NULL, 'p'},
		{"config-version", required_argument, NULL, 'v'}, {NULL, 0, NULL, 0}};
	char path[PATH_MAX];
	uint64_t v;
	json_t *b;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (!define && strchr("kiadnv", opt))
			return usage_error(current_cmd(), "this option can only be given to 'vm define'");
		switch (opt) {
		case 'm':
			if (parse_size_mib(optarg, &v) < 0)
				return usage_error(current_cmd(), "--memory takes a size like 512M or 2G");
			json_object_set_new(cfg, "memory-mib", json_integer((json_int_t)v));
			break;
		case 'c':
			if (parse_u64(optarg, 1, 64, &v) < 0)
				return usage_error(current_cmd(), "--vcpus takes a number from 1 to 64");
			json_object_set_new(cfg, "vcpus", json_integer((json_int_t)v));
			break;
		case 'k':
		case 'i':
			if (abs_path(optarg, path, sizeof(path)) < 0)
				return usage_error(current_cmd(), "path too long");
			json_object_set_new(cfg, opt == 'k' ? "kernel" : "initrd", json_string(path));
			break;
		case 'a':
			json_object_set_new(cfg, "cmdline", json_string(optarg));
			break;
		case 'd':
			if (parse_disk(optarg, json_object_get(cfg, "disks"), create) < 0)
				return usage_error(current_cmd(), "--disk takes PATH[,size=SIZE][,format=qcow2|raw]");
			break;
		case 'n':
			if (parse_nic(optarg, json_object_get(cfg, "nics")) < 0)
				return usage_error(current_cmd(), "--nic takes SWITCH[,mac=52:54:00:xx:xx:xx]");
			break;
		case 'p':
			if (onoff(optarg, &b) < 0)
				return usage_error(current_cmd(), "--processor-compat takes on or off");
			json_object_set_new(cfg, "processor-compat", b);
			break;
		case 'v':
			if (parse_u64(optarg, 0, 1000, &v) < 0)
				return usage_error(current_cmd(), "--config-version takes a number");
			json_object_set_new(cfg, "config-version", json_integer((json_int_t)v));
			break;
		default:
			return 2;
		}
	}
	return 0;
}

static int vm_define(struct cli *cli, int argc, char **argv)
{
	json_t *cfg = json_pack("{s:[], s:[]}", "disks", "nics"), *create = json_array(), *r;
	int rc;

	rc = vm_options(argc, argv, cfg, create, true);
	if (rc == 0 && optind + 1 != argc)
		rc = usage_error(current_cmd(), "expected one VM NAME");
	if (rc) {
		json_decref(cfg);
		json_decref(create);
		return rc;
	}
	json_object_set_new(cfg, "name", json_string(argv[optind]));
	r = cli_call(cli, OP_VM_DEFINE, json_pack("{s:o, s:o}", "config", cfg, "create", create));
	if (!r)
		return 1;
	if (cli->json)
		print_json(r);
	else if (!cli->quiet)
		print_summary(r);
	json_decref(r);
	return 0;
}

static int vm_set(struct cli *cli, int argc, char **argv)
{
	json_t *args = json_object(), *r;
	int rc = vm_options(argc, argv, args, NULL, false);

	if (rc == 0 && optind + 1 != argc)
		rc = usage_error(current_cmd(), "expected one VM NAME");
	if (rc == 0 && json_object_size(args) == 0)
		rc = usage_error(current_cmd(), "nothing to change");
	if (rc) {
		json_decref(args);
		return rc;
	}
	json_object_set_new(args, "name", json_string(argv[optind]));
	r = cli_call(cli, OP_VM_SET, args);
	if (!r)
		return 1;
	if (cli->json)
		print_json(r);
	else if (!cli->quiet)
		print_summary(r);
	json_decref(r);
	return 0;
}

static int vm_list(struct cli *cli, int argc, char **argv)
{
	static const char *const cols[] = {"name", "state", "memory-mib", "vcpus", "id", NULL};
	static const char *const heads[] = {"NAME", "STATE", "MEMORY(MiB)", "VCPUS", "ID", NULL};
	json_t *r;

	if (argc != 1)
		return usage_error(current_cmd(), "unexpected argument '%s'", argv[1]);
	r = cli_call(cli, OP_VM_LIST, NULL);
	if (!r)
		return 1;
	if (cli->json)
		print_json(r);
	else
		print_table(json_object_get(r, "vms"), cols, heads);
	json_decref(r);
	return 0;
}

static int vm_show(struct cli *cli, int argc, char **argv)
{
	json_t *r;

	if (argc != 2)
		return usage_error(current_cmd(), "expected one VM NAME");
	r = cli_call(cli, OP_VM_SHOW, json_pack("{s:s}", "name", argv[1]));
	if (!r)
		return 1;
	if (cli->json)
		print_json(r);
	else
		print_summary(r);
	json_decref(r);
	return 0;
}

/* start [--force], resume [--force], suspend, kill: a name */
static int vm_named(struct cli *cli, int argc, char **argv)
{
	static const struct {
		const char *cmd, *op, *done;
		bool force;
	} named[] = {
		{"start", OP_VM_START, "started", true},
		{"resume", OP_VM_RESUME, "resumed", true},
		{"suspend", OP_VM_SUSPEND, "suspended", false},
		{"kill", OP_VM_KILL, "killed", false},
	};
	size_t i;
	bool force;
	int rc;

	for (i = 0; i < ARRAY_SIZE(named) - 1 && strcmp(argv[0], named[i].cmd); i++)
		;
	force = argc == 3 && named[i].force && !strcmp(argv[2], "--force");
	if (argc != 2 && !force)
		return usage_error(current_cmd(), "expected one VM NAME");
	rc = simple_call(cli, named[i].op,
			 force ? json_pack("{s:s, s:b}", "name", argv[1], "force", 1) : json_pack("{s:s}", "name", argv[1]));
	if (rc == 0 && !cli->json && !cli->quiet)
		printf("%s: %s\n", argv[1], named[i].done);
	return rc;
}

static int vm_stop(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {{"force", no_argument, NULL, 'f'},
					     {"timeout", required_argument, NULL, 't'},
					     {NULL, 0, NULL, 0}};
	json_t *args = json_object();
	uint64_t t;
	int opt, rc;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'f')
			json_object_set_new(args, "force", json_true());
		else if (opt == 't' && parse_u64(optarg, 1, 3600, &t) == 0)
			json_object_set_new(args, "timeout", json_integer((json_int_t)t));
		else {
			json_decref(args);
			return usage_error(current_cmd(), "--timeout takes seconds from 1 to 3600");
		}
	}
	if (optind + 1 != argc) {
		json_decref(args);
		return usage_error(current_cmd(), "expected one VM NAME");
	}
	json_object_set_new(args, "name", json_string(argv[optind]));
	rc = simple_call(cli, OP_VM_STOP, args);
	if (rc == 0 && !cli->json && !cli->quiet)
		printf("%s: stopped\n", argv[optind]);
	return rc;
}

static int vm_delete(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {{"keep-disks", no_argument, NULL, 'k'}, {NULL, 0, NULL, 0}};
	bool keep = false;
	int opt, rc;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'k')
			return usage_error(current_cmd(), "unknown option");
		keep = true;
	}
	if (optind + 1 != argc)
		return usage_error(current_cmd(), "expected one VM NAME");
	rc = simple_call(cli, OP_VM_DELETE, json_pack("{s:s, s:b}", "name", argv[optind], "keep-disks", keep));
	if (rc == 0 && !cli->json && !cli->quiet)
		printf("%s: deleted%s\n", argv[optind], keep ? " (disks kept)" : " with its disks");
	return rc;
}

static int vm_console(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {{"bytes", required_argument, NULL, 'b'}, {"raw", no_argument, NULL, 'r'},
					     {NULL, 0, NULL, 0}};
	json_t *args = json_object(), *r, *log;
	bool raw = false;
	uint64_t n;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'r') {
			raw = true;
			continue;
		}
		if (opt != 'b' || parse_u64(optarg, 1, 1 << 20, &n) < 0) {
			json_decref(args);
			return usage_error(current_cmd(), "--bytes takes a number from 1 to 1048576");
		}
		json_object_set_new(args, "bytes", json_integer((json_int_t)n));
	}
	if (optind + 1 != argc) {
		json_decref(args);
		return usage_error(current_cmd(), "expected one VM NAME");
	}
	json_object_set_new(args, "name", json_string(argv[optind]));
	r = cli_call(cli, OP_VM_CONSOLE, args);
	if (!r)
		return 1;
	log = json_object_get(r, "log");
	if (cli->json)
		print_json(r);
	else if (raw && !isatty(STDOUT_FILENO)) /* into a file or pipe: the bytes as they are */
		fwrite(json_string_value(log), 1, json_string_length(log), stdout);
	else
		fput_visible(json_string_value(log), json_string_length(log), stdout);
	json_decref(r);
	return 0;
}

const struct cli_cmd vm_cmds[] = {
	{"vm", "define", "NAME [OPTIONS]", "Define a new VM on this host (New-VM)",
	 "Options:\n"
	 "  --memory SIZE              memory, e.g. 512M or 2G (default 512M)\n"
	 "  --vcpus N                  virtual processors (default 1)\n"
	 "  --kernel FILE              boot this kernel directly (else the first disk boots)\n"
	 "  --initrd FILE              initial ramdisk for --kernel\n"
	 "  --cmdline TEXT             kernel command line; without hardware virtualization\n"
	 "                             ferry adds clocksource=hpet unless one is given (a\n"
	 "                             Linux guest's TSC clock does not survive a live\n"
	 "                             move under emulation)\n"
	 "  --disk PATH[,size=SIZE][,format=qcow2|raw]\n"
	 "                             a disk image; with size= it is created when missing.\n"
	 "                             Host block devices are refused: they cannot move.\n"
	 "  --nic SWITCH[,mac=MAC]     a network adapter on the named virtual switch\n"
	 "  --processor-compat on|off  baseline CPU model every host offers (default off)\n"
	 "  --config-version N         configuration version 5..7 (default 7); it picks\n"
	 "                             the QEMU machine type the destination must offer\n",
	 vm_define},
	{"vm", "list", "", "List VMs and their state (Get-VM)", "", vm_list},
	{"vm", "show", "NAME", "Show one VM's configuration and state", "", vm_show},
	{"vm", "start", "NAME [--force]", "Start a VM (Start-VM)",
	 "A VM left paused by an interrupted move is resumed. If ferryd had already\n"
	 "told the destination to resume it, start refuses (the guest may run there):\n"
	 "--force resumes it here all the same.\n",
	 vm_named},
	{"vm", "stop", "NAME [--force] [--timeout SECONDS]", "Shut a VM down (Stop-VM)",
	 "Asks the guest to power off and waits up to --timeout seconds (host setting\n"
	 "stop-timeout, default 30), then turns it off. --force turns it off at once.\n",
	 vm_stop},
	{"vm", "kill", "NAME", "Turn a VM off at once (Stop-VM -TurnOff)", "", vm_named},
	{"vm", "suspend", "NAME", "Pause a running VM in memory (Suspend-VM)",
	 "The guest stops where it is; QEMU first writes out what it holds of the\n"
	 "disks, so the disk images are consistent while it is suspended (a copy or\n"
	 "a check may read them). 'ferry vm resume' goes on.\n",
	 vm_named},
	{"vm", "resume", "NAME [--force]", "Resume a suspended or paused VM (Resume-VM)",
	 "Resumes a VM suspended, paused by QEMU on a disk error (free space first),\n"
	 "or left paused by an interrupted move; --force as for 'ferry vm start'.\n",
	 vm_named},
	{"vm", "delete", "NAME [--keep-disks]", "Delete a stopped VM and its disks (Remove-VM)", "", vm_delete},
	{"vm", "console", "NAME [--bytes N] [--raw]", "Print the end of the VM's serial console log",
	 "--bytes N   the last N bytes (default 64 KiB, at most 1 MiB)\n"
	 "--raw       write the guest's bytes as they are, when the output is not a\n"
	 "            terminal (a file or a pipe); on a terminal --raw is ignored.\n"
	 "Otherwise control characters and escape sequences the guest printed are\n"
	 "shown harmlessly: ESC as ^[, other controls as ^X or \\x9b; newlines, carriage\n"
	 "returns and tabs are kept. Bytes that are not UTF-8 arrive as '?'.\n",
	 vm_console},
	{"vm", "set", "NAME [--processor-compat on|off] [--memory SIZE] [--vcpus N]",
	 "Change a stopped VM (Set-VMProcessor, Set-VMMemory)",
	 "--processor-compat on gives the VM a baseline CPU model (" "qemu64" ") that every\n"
	 "host can offer, so it can move between hosts with different processors\n"
	 "(Set-VMProcessor -CompatibilityForMigrationEnabled). Only while the VM is off.\n",
	 vm_set},
	{NULL, NULL, NULL, NULL, NULL, NULL},
};
