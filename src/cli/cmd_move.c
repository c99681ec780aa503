/* Moving VMs: vm move (Move-VM), vm move-storage (Move-VMStorage),
 * vm compare (Compare-VM), and the jobs that carry them out. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "events.h"
#include "ops.h"
#include "util.h"

/* Hands the user's Kerberos credentials to the local ferryd before a move:
 * forwarded (credssp) or as evidence for constrained delegation (kerberos).
 * auth.kerberos itself says which (its first reply carries the auth
 * setting): host.show would need an administrator, and a user outside the
 * local group becomes one only through this very step (review L18). */
void cli_authenticate_for_move(struct cli *cli)
{
	char err[512];

	if (cli->host)
		return; /* remote: the TCP connection is already Kerberos-authenticated */
	if (cli_local_kerberos(cli, err, sizeof(err)) < 0 && !cli->quiet && !cli->json)
		fprintf(stderr, "ferry: note: %s\n", err);
}

static void print_problems(json_t *r)
{
	size_t i;
	json_t *p;

	if (json_is_true(json_object_get(r, "compatible"))) {
		printf("%s can move to %s: no incompatibilities found\n", jstr(r, "vm"), jstr(r, "dest"));
		return;
	}
	printf("%s cannot move to %s:\n", jstr(r, "vm"), jstr(r, "dest"));
	json_array_foreach(json_object_get(r, "problems"), i, p)
		printf("  - %s\n", json_string_value(p));
}

/* What a copy the destination kept spares (vm compare --include-storage). */
static void print_reuse(json_t *r)
{
	json_int_t reusable = json_integer_value(json_object_get(r, "disk-reusable-bytes"));
	char b[32];

	if (reusable <= 0)
		return;
	format_bytes((unsigned long long)reusable, b, sizeof(b));
	printf("reuses %s of the disks a copy kept on %s; copies the rest\n", b, jstr(r, "dest"));
}

static double jnum(json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

/* The prediction of vm compare and vm move --what-if (docs/json.md). */
static void print_prediction(json_t *p)
{
	char mem[32], ram[32], disk[32];

	if (!json_is_object(p))
		return;
	format_bytes((unsigned long long)jnum(p, "memory-to-send-bytes"), mem, sizeof(mem));
	format_bytes((unsigned long long)jnum(p, "memory-bytes"), ram, sizeof(ram));
	format_bytes((unsigned long long)jnum(p, "disk-bytes"), disk, sizeof(disk));
	printf("Prediction:\n");
	if (json_object_get(p, "memory-bytes"))
		printf("  to send:     memory %s (of %s), disks %s\n", mem, ram, disk);
	if (json_object_get(p, "link-bytes-per-second"))
		printf("  link:        %.1f Mbit/s (measured unencrypted; the move is %s)\n",
		       jnum(p, "link-bytes-per-second") * 8 / 1e6,
		       json_is_true(json_object_get(p, "encryption")) ? "encrypted" : "not encrypted");
	if (json_object_get(p, "dirty-bytes-per-second"))
		printf("  dirty rate:  %.1f MiB/s\n", jnum(p, "dirty-bytes-per-second") / 1048576);
	if (json_object_get(p, "rate-source"))
		printf("  rate:        %.1f MiB/s (%s)\n", jnum(p, "rate-bytes-per-second") / 1048576,
		       jstr(p, "rate-source"));
	if (json_object_get(p, "unavailable")) {
		printf("  not available: %s\n", jstr(p, "unavailable"));
		return;
	}
	printf("  total time:  %.1f s (disks %.1f s, memory %.1f s in %lld passes, then the downtime)\n",
	       jnum(p, "total-seconds"), jnum(p, "disk-seconds"), jnum(p, "memory-seconds"),
	       (long long)jnum(p, "passes"));
	printf("  downtime:    %lld ms (limit %lld ms)\n", (long long)jnum(p, "downtime-ms"),
	       (long long)jnum(p, "downtime-limit-ms"));
	printf("  converges:   %s: %s\n", json_is_true(json_object_get(p, "converges")) ? "yes" : "no",
	       jstr(p, "reason"));
}

static int move_options(int argc, char **argv, json_t *args, bool *what_if, bool *async)
{
	static const struct option opts[] = {
		{"include-storage", no_argument, NULL, 'i'}, {"storage-path", required_argument, NULL, 's'},
		{"vm-path", required_argument, NULL, 'v'},   {"disk", required_argument, NULL, 'd'},
		{"keep-source-disks", no_argument, NULL, 'k'}, {"what-if", no_argument, NULL, 'w'},
		{"async", no_argument, NULL, 'a'},           {"port", required_argument, NULL, 'p'},
		{NULL, 0, NULL, 0}};
	json_t *disks = json_object();
	char *eq;
	uint64_t port;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'i': json_object_set_new(args, "include-storage", json_true()); break;
		case 'k': json_object_set_new(args, "keep-source-disks", json_true()); break;
		case 'w': *what_if = true; break;
		case 'a': *async = true; break;
		case 's':
		case 'v':
			if (optarg[0] != '/')
				goto bad;
			json_object_set_new(args, opt == 's' ? "storage-path" : "vm-path", json_string(optarg));
			break;
		case 'd':
			eq = strchr(optarg, '=');
			if (!eq || optarg[0] != '/' || eq[1] != '/')
				goto bad;
			*eq = 0;
			json_object_set_new(disks, optarg, json_string(eq + 1));
			break;
		case 'p':
			if (parse_u64(optarg, 1, 65535, &port) < 0)
				goto bad;
			json_object_set_new(args, "port", json_integer((json_int_t)port));
			break;
		default:
			goto bad;
		}
	}
	if (json_object_size(disks))
		json_object_set_new(args, "disks", disks);
	else
		json_decref(disks);
	return 0;
bad:
	json_decref(disks);
	return usage_error(current_cmd(), "bad option (paths must be absolute; --disk takes /SRC=/DST)");
}

static void progress_line(json_t *ev, bool tty)
{
	static char last_stage[32];
	static uint64_t last_print;
	const char *stage = jstr(ev, "stage");
	unsigned long long total = (unsigned long long)(json_integer_value(json_object_get(ev, "memory-total")) +
							json_integer_value(json_object_get(ev, "disk-total")));
	unsigned long long left = (unsigned long long)(json_integer_value(json_object_get(ev, "memory-remaining")) +
						       json_integer_value(json_object_get(ev, "disk-remaining")));
	double eta = json_number_value(json_object_get(ev, "eta-seconds"));
	char lb[32], line[256];
	/* what the server sends is bounded here: a stage name of any length or
	 * more bytes left than in all must not overrun line or bar (review L9) */
	int pct = total && left <= total ? (int)(100 - left * 100 / total) : 0, n;

	format_bytes(left, lb, sizeof(lb));
	n = snprintf(line, sizeof(line), "%-10.32s", stage);
	if (!strcmp(stage, "memory") || !strcmp(stage, "switchover"))
		n += snprintf(line + n, sizeof(line) - (size_t)n, " pass %lld",
			      (long long)json_integer_value(json_object_get(ev, "pass")));
	if (total)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "  %s left  %.1f Mbit/s", lb,
			      json_number_value(json_object_get(ev, "mbps")));
	if (eta >= 0)
		snprintf(line + n, sizeof(line) - (size_t)n, "  eta %.0fs", eta);
	if (tty) {
		char bar[31];
		int fill = pct * 30 / 100;
		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '.', (size_t)(30 - fill));
		bar[30] = 0;
		fprintf(stderr, "\r[%s] %3d%% %-60s", bar, pct, line);
		fflush(stderr);
	} else if (strcmp(stage, last_stage) || now_ms() - last_print > 2000) {
		fprintf(stderr, "%s\n", line);
		last_print = now_ms();
	}
	snprintf(last_stage, sizeof(last_stage), "%s", stage);
}

/* A move's prediction beside what happened (job show, the end of a move). */
static void print_predicted_actual(json_t *p, json_t *a)
{
	double want = jnum(p, "total-seconds"), got = jnum(a, "total-seconds");

	if (json_object_get(p, "unavailable"))
		printf("  predicted: not available: %s\n", jstr(p, "unavailable"));
	else if (json_object_get(p, "total-seconds"))
		printf("  predicted: %.1f s, downtime %lld ms, %s%s\n", want, (long long)jnum(p, "downtime-ms"),
		       json_is_true(json_object_get(p, "converges")) ? "converges" : "does not converge",
		       json_object_get(p, "learned-stream-bytes-per-second")
			       ? ""
			       : " (no earlier move to this host to learn QEMU's rate from: the network's rate)");
	if (json_is_object(a)) {
		printf("  actual: %.1f s", got);
		if (json_object_get(a, "downtime-ms"))
			printf(", downtime %lld ms", (long long)jnum(a, "downtime-ms"));
		if (json_object_get(p, "total-seconds") && got > 0)
			printf(" (prediction off by %+.0f%%)", (want / got - 1) * 100);
		printf("\n");
	}
}

static void print_job(json_t *j)
{
	json_t *step;
	size_t i;
	char a[32];

	printf("job %lld: %s %s -> %s: %s\n", (long long)json_integer_value(json_object_get(j, "id")), jstr(j, "kind"),
	       jstr(j, "vm"), jstr(j, "dest"), jstr(j, "stage"));
	if (json_object_get(j, "error"))
		printf("  failed at stage %s: %s\n", jstr(j, "failed-stage"), jstr(j, "error"));
	if (json_integer_value(json_object_get(j, "memory-total"))) {
		format_bytes((unsigned long long)json_integer_value(json_object_get(j, "memory-transferred")), a, sizeof(a));
		printf("  memory: %s sent in %lld passes\n", a, (long long)json_integer_value(json_object_get(j, "pass")));
	}
	if (json_object_get(j, "downtime-ms"))
		printf("  downtime: %lld ms (QEMU's)\n", (long long)json_integer_value(json_object_get(j, "downtime-ms")));
	if (json_object_get(j, "pause-ms"))
		printf("  guest paused: %lld ms, source stop to destination resume (+- %lld ms)\n",
		       (long long)json_integer_value(json_object_get(j, "pause-ms")),
		       (long long)json_integer_value(json_object_get(j, "pause-uncertainty-ms")));
	json_array_foreach(json_object_get(j, "ladder"), i, step)
		printf("  stall ladder, pass %lld: %s: %s\n", (long long)json_integer_value(json_object_get(step, "pass")),
		       jstr(step, "rung"), jstr(step, "reason"));
	printf("  elapsed: %.1f s\n", json_number_value(json_object_get(j, "elapsed-seconds")));
	print_predicted_actual(json_object_get(j, "prediction"), json_object_get(j, "actual"));
}

/* Follows a job until it ends; exit status 0 only when it completed. With
 * lines (job watch --json), every event is a JSON line on stdout. */
int watch_job(struct cli *cli, json_int_t id, bool lines)
{
	json_t *req = json_pack("{s:s, s:{s:I}}", "op", OP_JOB_WATCH, "args", "id", id), *msg = NULL, *res;
	bool tty = isatty(2) && !cli->quiet && !cli->json, shown = false, reuse_said = false;
	struct event_stream es = {.job = id};
	char err[256];
	int r;

	if (cli_connect(cli) < 0 || conn_send(&cli->conn, req) < 0) {
		json_decref(req);
		if (lines)
			events_error(&es, "unavailable", "lost the connection to ferryd");
		print_error("unavailable", "lost the connection to ferryd", NULL);
		return 1;
	}
	json_decref(req);
	for (;;) {
		r = conn_recv(&cli->conn, &msg, err, sizeof(err));
		if (r < 0) {
			if (lines)
				events_error(&es, "unavailable", "lost the connection to ferryd while watching the job");
			print_error("unavailable", "lost the connection to ferryd while watching the job",
				    "see 'ferry job show' for its state");
			return 1;
		}
		if (!json_object_get(msg, "event"))
			break;
		if (lines)
			events_progress(&es, msg);
		else if (!cli->quiet && !cli->json) {
			json_int_t reused = json_integer_value(json_object_get(msg, "disk-reused"));
			if (reused > 0 && !reuse_said) {
				char b[32];
				format_bytes((unsigned long long)reused, b, sizeof(b));
				fprintf(stderr, "%sreusing %s of disk that %.64s kept from an earlier move: only the rest is "
					"sent\n", tty && shown ? "\n" : "", b, jstr(msg, "dest"));
				reuse_said = true;
			}
			progress_line(msg, tty);
			shown = true;
		}
		json_decref(msg);
	}
	if (tty && shown)
		fprintf(stderr, "\n");
	if (!json_is_true(json_object_get(msg, "ok"))) {
		json_t *e = json_object_get(msg, "error");
		if (lines)
			events_error(&es, jstr(e, "code"), jstr(e, "message"));
		print_error(jstr(e, "code"), jstr(e, "message"), jstr(e, "hint"));
		json_decref(msg);
		return 1;
	}
	res = json_object_get(msg, "result");
	if (lines)
		events_done(&es, res);
	else if (cli->json)
		print_json(res);
	else if (!cli->quiet || strcmp(jstr(res, "stage"), "completed"))
		print_job(res);
	r = strcmp(jstr(res, "stage"), "completed") == 0 ? 0 : 1;
	if (r && !cli->json)
		fprintf(stderr, "ferry: %s %s %s at stage %s: %s\n", jstr(res, "kind"), jstr(res, "vm"), jstr(res, "stage"),
			jstr(res, "failed-stage"), jstr(res, "error"));
	json_decref(msg);
	return r;
}

static int start_and_follow(struct cli *cli, const char *op, json_t *args, bool async)
{
	json_t *r = cli_call(cli, op, args);
	json_int_t id;

	if (!r)
		return 1;
	id = json_integer_value(json_object_get(r, "id"));
	if (async) {
		if (cli->json)
			print_json(r);
		else
			printf("job %lld started: follow it with 'ferry job watch %lld'\n", (long long)id, (long long)id);
		json_decref(r);
		return 0;
	}
	json_decref(r);
	return watch_job(cli, id, false);
}

/* vm move and vm compare share their arguments; compare is move --what-if. */
static int move_or_compare(struct cli *cli, int argc, char **argv, bool compare)
{
	json_t *args = json_object(), *r;
	bool what_if = compare, async = false;
	int rc = move_options(argc, argv, args, &what_if, &async);

	if (rc == 0 && optind + 2 != argc)
		rc = usage_error(current_cmd(), "expected a VM NAME and a destination HOST");
	if (rc) {
		json_decref(args);
		return rc;
	}
	json_object_set_new(args, "name", json_string(argv[optind]));
	json_object_set_new(args, "dest", json_string(argv[optind + 1]));
	cli_authenticate_for_move(cli);
	if (!what_if)
		return start_and_follow(cli, OP_VM_MOVE, args, async);
	r = cli_call(cli, OP_VM_COMPARE, args);
	if (!r)
		return 1;
	if (cli->json) {
		print_json(r);
	} else {
		if (!compare)
			printf("What if: ");
		print_problems(r);
		print_reuse(r);
		print_prediction(json_object_get(r, "prediction"));
	}
	rc = json_is_true(json_object_get(r, "compatible")) ? 0 : 1;
	json_decref(r);
	return rc;
}

static int vm_move(struct cli *cli, int argc, char **argv) { return move_or_compare(cli, argc, argv, false); }
static int vm_compare(struct cli *cli, int argc, char **argv) { return move_or_compare(cli, argc, argv, true); }

static int vm_move_storage(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {{"async", no_argument, NULL, 'a'}, {NULL, 0, NULL, 0}};
	bool async = false;
	char dir[PATH_MAX];
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'a')
			return usage_error(current_cmd(), "unknown option");
		async = true;
	}
	if (optind + 2 != argc)
		return usage_error(current_cmd(), "expected a VM NAME and a directory");
	/* a directory of this machine only when ferryd runs here; with -H it is
	 * the server's, as given, and the server checks it (review L18) */
	if (cli->host) {
		snprintf(dir, sizeof(dir), "%s", argv[optind + 1]);
	} else if (!realpath(argv[optind + 1], dir)) {
		fprintf(stderr, "ferry: %s: no such directory\n", argv[optind + 1]);
		return 1;
	}
	return start_and_follow(cli, OP_VM_MOVE_STORAGE, json_pack("{s:s, s:s}", "name", argv[optind], "dir", dir), async);
}

const struct cli_cmd move_cmds[] = {
	{"vm", "move", "NAME HOST [OPTIONS]", "Move a running VM to another host (Move-VM)",
	 "The guest keeps running while its memory (and with --include-storage its\n"
	 "disks) is copied to HOST; then it pauses briefly and resumes there.\n\n"
	 "Options:\n"
	 "  --include-storage        copy the disks too (shared-nothing); without it the\n"
	 "                           disks must be visible to HOST at the same paths\n"
	 "  --storage-path DIR       put the disks in DIR on HOST (-DestinationStoragePath)\n"
	 "  --vm-path DIR            VM configuration directory on HOST (-VirtualMachinePath)\n"
	 "  --disk /SRC=/DST         place one disk at DST on HOST (-Vhds); repeatable\n"
	 "  --keep-source-disks      leave the source's disk files in place afterwards\n"
	 "  --what-if                run every check and predict the move's time and\n"
	 "                           downtime (as 'vm compare'), move nothing\n"
	 "  --async                  print the job id and return; see 'ferry job watch'\n"
	 "  --port N                 HOST's ferryd port (default 6600)\n\n"
	 "Progress shows the stage (setup, storage, memory, switchover, cleanup), the\n"
	 "memory pass, bytes left, rate and estimated time; the end, the predicted and\n"
	 "actual total time and downtime. On any failure before the guest resumes on\n"
	 "HOST it keeps running here, and HOST keeps nothing.\n"
	 "Authentication follows the host setting auth: with credssp run this on the\n"
	 "source host with a Kerberos ticket (kinit); with kerberos, from anywhere\n"
	 "(-H SOURCE), given constrained delegation from SOURCE to ferry/HOST.\n",
	 vm_move},
	{"vm", "move-storage", "NAME DIR [--async]", "Move a running VM's disks to DIR on this host (Move-VMStorage)",
	 "Each disk is mirrored to DIR while the guest writes; then the guest switches\n"
	 "to the new files and the old ones are deleted.\n",
	 vm_move_storage},
	{"vm", "compare", "NAME HOST [--include-storage] [--storage-path DIR] [--disk /SRC=/DST]",
	 "Report every reason NAME cannot move to HOST (Compare-VM)",
	 "Nothing is moved. Exit status 0 when the VM can move, 1 otherwise.\n"
	 "The prediction measures the guest's dirty rate and the migration link\n"
	 "(about a second each, at once) and prints the bytes to send, the link's\n"
	 "throughput, the predicted total time and downtime, and whether the\n"
	 "pre-copy converges under the current settings. With --include-storage it\n"
	 "also says how much of the disks HOST would not receive again: a copy it\n"
	 "kept (an earlier failed move's, or the disks --keep-source-disks left).\n", vm_compare},
	{NULL, NULL, NULL, NULL, NULL, NULL},
};
