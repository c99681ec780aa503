/* ferry host evacuate: every running VM of this host to other hosts. The
 * plan comes from vm.compare (each VM against each destination, with the
 * numbers each destination reports) and evacuate_plan.c; the moves are
 * ordinary vm.move jobs, each sent on a connection of its own, so that each
 * carries its own credential: a forwarded ticket (credssp) is spent by one
 * move (job.c), and with kerberos each connection brings its own evidence
 * ticket. Nothing new runs in ferryd: the command works wherever vm move
 * works, locally or with -H. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "evacuate.h"
#include "ops.h"
#include "util.h"

#define POLL_MS 500
#define LOST_POLLS_MAX 20 /* 10 s without an answer from ferryd: give up following */

struct evac {
	json_t *dests;        /* [HOST] as given */
	json_t *paths;        /* {HOST: storage directory there} */
	const char *storage_path;
	bool what_if, storage, keep_disks;
	int max_parallel;     /* --max-parallel, 0 = not given */
	/* from the source */
	const char *source;
	int limit;            /* moves at once: the source's limits, lowered by --max-parallel */
};

/* --to HOST[,storage-path=DIR] */
static int add_dest(struct evac *e, char *arg)
{
	char *comma = strchr(arg, ','), *dir = NULL;
	size_t i;
	json_t *h;

	if (comma) {
		*comma = 0;
		if (strncmp(comma + 1, "storage-path=", 13) != 0)
			return -1;
		dir = comma + 14;
		if (dir[0] != '/')
			return -1;
	}
	if (!*arg || strlen(arg) > 253 || json_array_size(e->dests) >= EVAC_DESTS_MAX)
		return -1;
	json_array_foreach(e->dests, i, h)
		if (!strcmp(json_string_value(h), arg))
			return -1;
	json_array_append_new(e->dests, json_string(arg));
	if (dir)
		json_object_set_new(e->paths, arg, json_string(dir));
	return 0;
}

static int evac_options(struct evac *e, int argc, char **argv)
{
	static const struct option opts[] = {
		{"to", required_argument, NULL, 't'},	   {"what-if", no_argument, NULL, 'w'},
		{"max-parallel", required_argument, NULL, 'm'}, {"include-storage", no_argument, NULL, 'i'},
		{"storage-path", required_argument, NULL, 's'}, {"keep-source-disks", no_argument, NULL, 'k'},
		{NULL, 0, NULL, 0}};
	uint64_t n;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (add_dest(e, optarg) < 0)
				return usage_error(current_cmd(), "--to takes HOST or HOST,storage-path=/DIR, each host once, at most %d",
						   EVAC_DESTS_MAX);
			break;
		case 'w': e->what_if = true; break;
		case 'i': e->storage = true; break;
		case 'k': e->keep_disks = true; break;
		case 'm':
			if (parse_u64(optarg, 1, 64, &n) < 0)
				return usage_error(current_cmd(), "--max-parallel needs a number from 1 to 64");
			e->max_parallel = (int)n;
			break;
		case 's':
			if (optarg[0] != '/')
				return usage_error(current_cmd(), "--storage-path needs an absolute path");
			e->storage_path = optarg;
			break;
		default:
			return usage_error(current_cmd(), "unknown option");
		}
	}
	if (optind != argc)
		return usage_error(current_cmd(), "unexpected argument '%s'", argv[optind]);
	if (json_array_size(e->dests) == 0)
		return usage_error(current_cmd(), "name at least one destination with --to HOST");
	if (!e->storage && (e->storage_path || json_object_size(e->paths)))
		return usage_error(current_cmd(), "add --include-storage to copy the disks: a storage path chooses where "
						  "copied disks go");
	return 0;
}

/* The arguments of vm.compare and vm.move for one VM and one destination. */
static json_t *move_args(struct evac *e, const char *vm, const char *dest, bool move)
{
	json_t *a = json_pack("{s:s, s:s}", "name", vm, "dest", dest);
	const char *dir = json_string_value(json_object_get(e->paths, dest));

	if (!dir)
		dir = e->storage_path;
	if (e->storage)
		json_object_set_new(a, "include-storage", json_true());
	if (dir)
		json_object_set_new(a, "storage-path", json_string(dir));
	if (move && e->keep_disks)
		json_object_set_new(a, "keep-source-disks", json_true());
	if (!move) /* the plan uses the room, not the time: no measuring */
		json_object_set_new(a, "predict", json_false());
	return a;
}

/* {VM: {HOST: compare result}}: a check that could not be asked counts as
 * an incompatibility with its reason. */
static json_t *compare_all(struct cli *cli, struct evac *e, json_t *vms)
{
	json_t *all = json_object(), *vm, *h, *res, *err;
	size_t i, k;

	json_array_foreach(vms, i, vm) {
		const char *name = jstr(vm, "name");
		json_t *per = json_object();
		if (strcmp(jstr(vm, "state"), "running") != 0) {
			json_decref(per);
			continue;
		}
		json_array_foreach(e->dests, k, h) {
			const char *dest = json_string_value(h);
			if (cli_try_call(cli, OP_VM_COMPARE, move_args(e, name, dest, false), &res, &err) < 0) {
				res = json_pack("{s:b, s:[s]}", "compatible", 0, "problems", jstr(err, "message"));
				json_decref(err);
			}
			json_object_set_new(per, dest, res);
		}
		json_object_set_new(all, name, per);
	}
	return all;
}

static void print_plan(json_t *plan)
{
	static const char *const cols[] = {"vm", "memory", "disks", "dest", "why", NULL};
	static const char *const heads[] = {"VM", "MEMORY", "DISKS", "DESTINATION", "WHY", NULL};
	json_t *rows = json_array(), *m, *s, *list;
	const char *host;
	size_t i, k;
	char mem[32], dsk[32];

	printf("Plan: evacuate %s, at most %lld move%s at a time\n", jstr(plan, "source"),
	       (long long)json_integer_value(json_object_get(plan, "max-parallel")),
	       json_integer_value(json_object_get(plan, "max-parallel")) == 1 ? "" : "s");
	json_array_foreach(json_object_get(plan, "moves"), i, m) {
		format_bytes((unsigned long long)json_integer_value(json_object_get(m, "memory-mib")) << 20, mem, sizeof(mem));
		format_bytes((unsigned long long)json_integer_value(json_object_get(m, "disk-bytes")), dsk, sizeof(dsk));
		json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:s, s:s}", "vm", jstr(m, "vm"), "memory", mem,
						      "disks", dsk, "dest", jstr(m, "dest"), "why", jstr(m, "why")));
	}
	if (json_array_size(rows))
		print_table(rows, cols, heads);
	else
		printf("No VM to move.\n");
	json_decref(rows);
	json_array_foreach(json_object_get(plan, "skipped"), i, s) {
		if (i == 0)
			printf("Skipped (they stay here):\n");
		printf("  %s (%s): %s\n", jstr(s, "vm"), jstr(s, "state"), jstr(s, "reason"));
		json_object_foreach(json_object_get(s, "problems"), host, list)
			json_array_foreach(list, k, m)
				printf("    %s: %s\n", host, json_string_value(m));
	}
}

/* A running VM the plan could not place is not evacuated. */
static bool plan_leaves_running(json_t *plan)
{
	json_t *s;
	size_t i;

	json_array_foreach(json_object_get(plan, "skipped"), i, s)
		if (!strcmp(jstr(s, "state"), "running"))
			return true;
	return false;
}

/* ---- running the plan */

struct slot {
	json_t *move;         /* the plan's entry (borrowed) */
	json_int_t job;
};

struct run {
	struct cli *cli;
	struct evac *e;
	json_t *plan;
	json_t *moved, *failed;
	struct slot slots[64];
	int n;                /* slots in use */
	bool talk;            /* progress lines on stderr */
};

static int running_to(struct run *r, const char *dest)
{
	int n = 0;

	for (int i = 0; i < r->n; i++)
		n += !strcmp(jstr(r->slots[i].move, "dest"), dest);
	return n;
}

/* Where the VM is after a failed move: the source still has it (ferryd
 * resumes it there), or says what it is. */
static const char *source_state(struct run *r, const char *vm, char *buf, size_t len)
{
	json_t *res, *err;

	if (cli_try_call(r->cli, OP_VM_SHOW, json_pack("{s:s}", "name", vm), &res, &err) < 0) {
		snprintf(buf, len, "%s", !strcmp(jstr(err, "code"), "not_found") ? "gone" : "unknown");
		json_decref(err);
		return buf;
	}
	snprintf(buf, len, "%s", jstr(res, "state"));
	json_decref(res);
	return buf;
}

static void record_failure(struct run *r, json_t *move, json_int_t job, const char *stage, const char *reason)
{
	char st[32];
	const char *where = source_state(r, jstr(move, "vm"), st, sizeof(st));
	json_t *f = json_pack("{s:s, s:s, s:s, s:s, s:s}", "vm", jstr(move, "vm"), "dest", jstr(move, "dest"), "stage",
			      stage, "reason", reason, "source-state", where);

	json_object_set_new(f, "job", job ? json_integer(job) : json_null());
	json_array_append_new(r->failed, f);
	if (r->talk)
		fprintf(stderr, "%s: not moved to %s%s%s: %s (on %s it is %s)\n", jstr(move, "vm"), jstr(move, "dest"),
			*stage ? " at stage " : "", stage, reason, r->e->source, where);
}

/* vm.move on a connection of its own: it carries this move's credential. */
static void start_move(struct run *r, json_t *move)
{
	struct cli one = {.host = r->cli->host, .socket = r->cli->socket, .port = r->cli->port, .json = true,
			  .quiet = true};
	json_t *res = NULL, *err = NULL;
	int rc;

	cli_authenticate_for_move(&one);
	rc = cli_try_call(&one, OP_VM_MOVE, move_args(r->e, jstr(move, "vm"), jstr(move, "dest"), true), &res, &err);
	cli_close(&one);
	if (rc < 0) {
		record_failure(r, move, 0, "", jstr(err, "message"));
		json_decref(err);
		return;
	}
	r->slots[r->n].move = move;
	r->slots[r->n].job = json_integer_value(json_object_get(res, "id"));
	if (r->talk)
		fprintf(stderr, "%s: moving to %s (job %lld)\n", jstr(move, "vm"), jstr(move, "dest"),
			(long long)r->slots[r->n].job);
	r->n++;
	json_decref(res);
}

static void job_ended(struct run *r, int i, json_t *job)
{
	json_t *move = r->slots[i].move, *m;

	if (!strcmp(jstr(job, "stage"), "completed")) {
		m = json_pack("{s:s, s:s, s:I, s:O}", "vm", jstr(move, "vm"), "dest", jstr(move, "dest"), "job",
			      r->slots[i].job, "elapsed-seconds", json_object_get(job, "elapsed-seconds"));
		if (json_object_get(job, "downtime-ms"))
			json_object_set(m, "downtime-ms", json_object_get(job, "downtime-ms"));
		json_array_append_new(r->moved, m);
		if (r->talk)
			fprintf(stderr, "%s: moved to %s in %.1f s\n", jstr(move, "vm"), jstr(move, "dest"),
				json_number_value(json_object_get(job, "elapsed-seconds")));
	} else {
		record_failure(r, move, r->slots[i].job, jstr(job, "failed-stage"),
			       *jstr(job, "error") ? jstr(job, "error") : jstr(job, "stage"));
	}
	r->slots[i] = r->slots[--r->n];
}

/* Asks after each job under way; false when ferryd did not answer. */
static bool poll_jobs(struct run *r)
{
	json_t *res, *err;

	for (int i = 0; i < r->n;) {
		if (cli_try_call(r->cli, OP_JOB_SHOW, json_pack("{s:I}", "id", r->slots[i].job), &res, &err) < 0) {
			bool lost = !strcmp(jstr(err, "code"), "unavailable");
			if (!lost) /* the job is gone (a ferryd restart forgets jobs) */
				record_failure(r, r->slots[i].move, r->slots[i].job, "", jstr(err, "message"));
			json_decref(err);
			if (lost) {
				cli_close(r->cli); /* the next call connects again */
				return false;
			}
			r->slots[i] = r->slots[--r->n];
			continue;
		}
		if (json_is_true(json_object_get(res, "done")))
			job_ended(r, i, res);
		else
			i++;
		json_decref(res);
	}
	return true;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* Starts the plan's moves in order, never more at once than r->e->limit in
 * all nor than a destination's own limits there; one that cannot start now
 * waits for its turn without holding back those behind it. */
static void run_plan(struct run *r)
{
	json_t *moves = json_object_get(r->plan, "moves");
	size_t n = json_array_size(moves), i;
	bool *started = calloc(n + 1, sizeof(bool));
	size_t left = n;
	int lost = 0;

	if (!started)
		return;
	while (left || r->n) {
		for (i = 0; i < n && r->n < r->e->limit && r->n < (int)ARRAY_SIZE(r->slots); i++) {
			json_t *m = json_array_get(moves, i);
			int dl = evacuate_dest_limit(r->plan, jstr(m, "dest"));
			if (started[i] || (dl > 0 && running_to(r, jstr(m, "dest")) >= dl))
				continue;
			started[i] = true;
			left--;
			start_move(r, m);
		}
		if (!r->n && !left)
			break;
		sleep_ms(POLL_MS);
		lost = poll_jobs(r) ? 0 : lost + 1;
		if (lost >= LOST_POLLS_MAX) {
			while (r->n) {
				record_failure(r, r->slots[0].move, r->slots[0].job, "",
					       "lost the connection to ferryd while following the job: see 'ferry job list'");
				r->slots[0] = r->slots[--r->n];
			}
			for (i = 0; i < n; i++)
				if (!started[i])
					record_failure(r, json_array_get(moves, i), 0, "", "not started: lost the connection to ferryd");
			break;
		}
	}
	free(started);
}

static void print_summary(json_t *out)
{
	json_t *m;
	size_t i;

	printf("Moved: %zu\n", json_array_size(json_object_get(out, "moved")));
	json_array_foreach(json_object_get(out, "moved"), i, m)
		printf("  %s -> %s (job %lld, %.1f s)\n", jstr(m, "vm"), jstr(m, "dest"),
		       (long long)json_integer_value(json_object_get(m, "job")),
		       json_number_value(json_object_get(m, "elapsed-seconds")));
	printf("Failed: %zu\n", json_array_size(json_object_get(out, "failed")));
	json_array_foreach(json_object_get(out, "failed"), i, m)
		printf("  %s -> %s: %s%s%s; here it is %s\n", jstr(m, "vm"), jstr(m, "dest"), jstr(m, "reason"),
		       *jstr(m, "stage") ? " (stage " : "", *jstr(m, "stage") ? jstr(m, "stage") : "",
		       jstr(m, "source-state"));
	printf("Skipped: %zu\n", json_array_size(json_object_get(out, "skipped")));
	json_array_foreach(json_object_get(out, "skipped"), i, m)
		printf("  %s (%s): %s\n", jstr(m, "vm"), jstr(m, "state"), jstr(m, "reason"));
}

/* The source's name and how many moves it runs at once (its limits). */
static int source_limits(struct cli *cli, struct evac *e, json_t **ret_host)
{
	json_t *h = cli_call(cli, OP_HOST_SHOW, NULL), *s;
	int64_t live, st;

	if (!h)
		return -1;
	s = json_object_get(h, "settings");
	live = json_integer_value(json_object_get(s, "max-migrations"));
	st = json_integer_value(json_object_get(s, "max-storage-migrations"));
	e->limit = (int)(e->storage && st < live ? st : live);
	if (e->limit < 1)
		e->limit = 1;
	if (e->max_parallel && e->max_parallel < e->limit)
		e->limit = e->max_parallel;
	e->source = jstr(h, "host-name");
	*ret_host = h;
	return 0;
}

int host_evacuate(struct cli *cli, int argc, char **argv)
{
	struct evac e = {.dests = json_array(), .paths = json_object()};
	json_t *host = NULL, *vms = NULL, *compares = NULL, *plan = NULL, *out = NULL;
	struct run r = {0};
	int rc = evac_options(&e, argc, argv);

	if (rc)
		goto out;
	rc = 1;
	/* a check reaches each destination as the user, like the move */
	cli_authenticate_for_move(cli);
	if (source_limits(cli, &e, &host) < 0 || !(vms = cli_call(cli, OP_VM_LIST, NULL)))
		goto out;
	compares = compare_all(cli, &e, json_object_get(vms, "vms"));
	plan = evacuate_plan(json_object_get(vms, "vms"), compares, e.dests, e.storage);
	if (!plan) {
		print_error("failed", "out of memory making the plan", NULL);
		goto out;
	}
	json_object_set_new(plan, "source", json_string(e.source));
	json_object_set_new(plan, "max-parallel", json_integer(e.limit));
	json_object_set_new(plan, "include-storage", json_boolean(e.storage));
	if (!cli->json)
		print_plan(plan);
	if (e.what_if) {
		if (cli->json) {
			out = json_pack("{s:O}", "plan", plan);
			print_json(out);
		}
		rc = plan_leaves_running(plan) ? 1 : 0;
		goto out;
	}
	r = (struct run){.cli = cli, .e = &e, .plan = plan, .moved = json_array(), .failed = json_array(),
			 .talk = !cli->json && !cli->quiet};
	if (r.talk)
		fprintf(stderr, "\n");
	run_plan(&r);
	out = json_pack("{s:O, s:O, s:O, s:O}", "plan", plan, "moved", r.moved, "failed", r.failed, "skipped",
			json_object_get(plan, "skipped"));
	if (cli->json)
		print_json(out);
	else {
		printf("\n");
		print_summary(out);
	}
	rc = json_array_size(r.failed) || plan_leaves_running(plan) ? 1 : 0;
out:
	json_decref(out);
	json_decref(r.moved);
	json_decref(r.failed);
	json_decref(plan);
	json_decref(compares);
	json_decref(vms);
	json_decref(host);
	json_decref(e.dests);
	json_decref(e.paths);
	return rc;
}
