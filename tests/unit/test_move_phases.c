/* The source's phase table (move_source.c) without QEMU or a destination:
 * a fake QEMU on a socketpair (fake_qemu.h) behind the real vm_qmp.c,
 * blockjob.c and migrate_params.c, and fake runs of the phases
 * (move_stages.c is not linked). What is checked: a move that runs through,
 * a cancel and a failure in each phase and what they undo (QMP commands,
 * newest first), and what a restarted ferryd does from each persisted phase
 * (move_recover): the table of docs/architecture.md. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_qemu.h"
#include "move.h"
#include "move_state.h"
#include "ops.h"
#include "settings.h"
#include "util.h"

/* ---- QEMU's side (on the fake's thread: no assertions) ---- */

static struct {
	pthread_mutex_t lock;
	char status[32];  /* query-status */
	int cancelling;   /* query-migrate answers "cancelling" this many times after migrate_cancel */
	bool cancelled;
	char log[8192];   /* every command but the queries, in order */
} qemu = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int answer(const char *cmd, json_t *args, json_t **ret, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	pthread_mutex_lock(&qemu.lock);
	if (!strcmp(cmd, "query-status")) {
		*ret = json_pack("{s:s, s:b}", "status", qemu.status, "running", !strcmp(qemu.status, "running"));
	} else if (!strcmp(cmd, "query-block-jobs")) {
		*ret = json_array();
	} else if (!strcmp(cmd, "query-migrate")) {
		const char *st = !qemu.cancelled ? "none" : qemu.cancelling > 0 ? "cancelling" : "cancelled";
		if (qemu.cancelled && qemu.cancelling > 0)
			qemu.cancelling--;
		*ret = json_pack("{s:s}", "status", st);
	} else {
		char *a = args ? json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		size_t used = strlen(qemu.log);
		snprintf(qemu.log + used, sizeof(qemu.log) - used, "%s%s%s\n", cmd, a ? " " : "", a ? a : "");
		free(a);
		if (!strcmp(cmd, "cont"))
			snprintf(qemu.status, sizeof(qemu.status), "running");
		if (!strcmp(cmd, "migrate_cancel"))
			qemu.cancelled = true;
	}
	pthread_mutex_unlock(&qemu.lock);
	return 0;
}

static void qemu_reset(const char *status)
{
	pthread_mutex_lock(&qemu.lock);
	snprintf(qemu.status, sizeof(qemu.status), "%s", status);
	qemu.cancelling = 0;
	qemu.cancelled = false;
	qemu.log[0] = '\0';
	pthread_mutex_unlock(&qemu.lock);
}

/* ---- the world around move_source.c ---- */

static struct ferryd d;
static struct vm vm;
static struct job job;
static char rundir[64];

static struct {
	char log[1024];           /* runs, job stages, stubs called */
	int fail_in;              /* phase whose run fails, -1: none */
	int fail_with;            /* its error */
	bool unknown_outcome;     /* the failing finish cannot tell */
	char failed[2048];        /* job_fail's message */
	enum move_phase recorded[8]; /* moving.json's phase as each run began */
	int runs;
} world;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	size_t used = strlen(world.log);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(world.log + used, sizeof(world.log) - used, fmt, ap);
	va_end(ap);
}

/* One fake run: says its name, checks its phase was recorded first, does
 * what the real run leaves behind for the undo rows, fails when told. */
static int fake_run(void *ctx, enum move_phase p)
{
	struct move *m = ctx;
	struct move_record rec;

	say("%s ", move_phase_name(p));
	if (move_record_read(m->vm->rundir, &rec) == 0 && world.runs < 8)
		world.recorded[world.runs++] = rec.phase;
	if (p == MOVE_SETUP)
		m->prepared = true;
	if (p == MOVE_MEMORY)
		m->migrating = true;   /* migrate issued */
	if (p == MOVE_SWITCHOVER && (int)p != world.fail_in)
		m->migrating = false;  /* completed */
	if ((int)p != world.fail_in)
		return 0;
	if (world.unknown_outcome)
		m->outcome_unknown = true;
	snprintf(m->err, sizeof(m->err), "%s failed", move_phase_name(p));
	return world.fail_with;
}

int move_stage_setup(void *ctx) { return fake_run(ctx, MOVE_SETUP); }
int move_stage_storage(void *ctx) { return fake_run(ctx, MOVE_STORAGE); }
int move_stage_memory(void *ctx) { return fake_run(ctx, MOVE_MEMORY); }
int move_stage_switchover(void *ctx) { return fake_run(ctx, MOVE_SWITCHOVER); }
int move_stage_finish(void *ctx) { return fake_run(ctx, MOVE_FINISH); }
int move_stage_cleanup(void *ctx) { return fake_run(ctx, MOVE_CLEANUP); }

void job_set_stage(struct ferryd *dd, struct job *j, enum job_stage s)
{
	(void)dd;
	j->stage = s;
	say("[%d] ", (int)s);
}

void move_predict_learn(struct move *mm)
{
	(void)mm;
}

void job_enter_phase(struct ferryd *dd, struct job *j, enum job_stage s, const char *phase)
{
	(void)phase;
	job_set_stage(dd, j, s);
}

void job_fail(struct ferryd *dd, struct job *j, const char *fmt, ...)
{
	va_list ap;

	(void)dd;
	va_start(ap, fmt);
	vsnprintf(world.failed, sizeof(world.failed), fmt, ap);
	va_end(ap);
	j->stage = STAGE_FAILED;
}

/* The job runs at once, on this thread. */
int job_start(struct ferryd *dd, const char *kind, const char *name, const char *dest, bool live, bool storage,
	      json_t *args, struct caller *caller, void (*fn)(struct ferryd *, struct job *), struct job **ret)
{
	(void)kind, (void)live, (void)caller;
	memset(&job, 0, sizeof(job));
	job.id = 7;
	snprintf(job.vm, sizeof(job.vm), "%s", name);
	snprintf(job.dest, sizeof(job.dest), "%s", dest);
	job.storage = storage;
	job.args = args;
	fn(dd, &job);
	*ret = &job;
	return 0;
}

json_t *job_json(struct job *j) { return json_pack("{s:I}", "id", (json_int_t)j->id); }
struct vm *vm_find(struct ferryd *dd, const char *name)
{
	(void)dd;
	return !strcmp(name, "web1") ? &vm : NULL;
}
const char *vm_state(struct vm *v) { return v->busy ? v->busy : "running"; }
void vm_remove(struct ferryd *dd, struct vm *v, bool delete_disks)
{
	(void)dd, (void)v;
	say("vm_remove(disks %s) ", delete_disks ? "deleted" : "kept");
}
int qemu_stop(struct ferryd *dd, struct vm *v, int timeout_s, bool force)
{
	(void)dd, (void)v, (void)timeout_s, (void)force;
	say("qemu_stop ");
	return 0;
}
void move_peer_close(struct peer *p) { (void)p; }
/* the resumable copy has its own QMP (move_resume.c); these moves are not resumable */
void move_resume_undo(struct move *mm) { (void)mm; }
void move_resume_fold_running(struct vm *v) { (void)v; }
json_t *move_storage_args_check(json_t *args) { (void)args; return NULL; }
json_t *op_compare(struct request *req) { (void)req; return NULL; }
json_t *op_move_storage(struct request *req) { (void)req; return NULL; }

/* ---- set-up ---- */

static int start(void **state)
{
	(void)state;
	snprintf(rundir, sizeof(rundir), "/tmp/ferry-test-mp-XXXXXX");
	if (!mkdtemp(rundir) || fake_qemu_start(&vm, "web1", answer) < 0)
		return -1;
	snprintf(vm.rundir, sizeof(vm.rundir), "%s", rundir);
	json_object_set_new(vm.config, "disks", json_pack("[{s:s, s:s}]", "path", "/srv/vms/web1.qcow2", "format", "qcow2"));
	pthread_mutex_init(&d.lock, NULL);
	snprintf(d.host_name, sizeof(d.host_name), "host1.lab.test");
	d.settings = settings_defaults();
	json_object_set_new(d.settings, "migration-enabled", json_true());
	json_object_set_new(d.settings, "encryption", json_true());
	return 0;
}

static int stop(void **state)
{
	(void)state;
	fake_qemu_stop(&vm);
	json_decref(d.settings);
	pthread_mutex_destroy(&d.lock);
	return remove_tree(rundir);
}

static int fresh(void **state)
{
	(void)state;
	memset(&world, 0, sizeof(world));
	world.fail_in = -1;
	vm.busy = NULL;
	qemu_reset("running");
	move_record_remove(rundir);
	return 0;
}

/* vm.move, run to its end here (job_start above). */
static void move(bool storage)
{
	struct caller caller = {.local = true};
	json_t *args = json_pack("{s:s, s:s, s:b}", "name", "web1", "dest", "host2.lab.test", "include-storage", storage);
	struct request req = {.d = &d, .op = OP_VM_MOVE, .args = args, .caller = &caller};
	json_t *reply = NULL;

	for (const struct op_def *op = move_ops; op->name; op++)
		if (!strcmp(op->name, req.op))
			reply = op->fn(&req);
	assert_true(json_is_true(json_object_get(reply, "ok")));
	json_decref(reply);
	json_decref(args);
}

static bool recorded(void)
{
	struct move_record rec;

	return move_record_read(rundir, &rec) == 0;
}

/* What the walk back sends QEMU, newest first (docs/architecture.md). */
#define UNDO_SETUP                                                                                                 \
	"migrate-set-parameters {\"tls-creds\":\"\"}\n"                                                             \
	"object-del {\"id\":\"tlsmig\"}\n"
#define STOP_STORAGE "yank {\"instances\":[{\"node-name\":\"mig-tgt0\",\"type\":\"block-node\"}]}\n"
#define STOP_MEMORY "yank {\"instances\":[{\"type\":\"migration\"}]}\n"
#define UNDO_STORAGE                                                                                               \
	"block-job-cancel {\"device\":\"mig-mirror0\",\"force\":true}\n"                                            \
	"blockdev-del {\"node-name\":\"mig-tgt0\"}\n"
#define UNDO_MEMORY "migrate_cancel\ncont\n"

static void a_move_runs_every_phase_in_order(void **state)
{
	(void)state;
	move(true);
	/* job stages: setup 1, storage 2, memory 3, switchover 4 (finish too), cleanup 5, completed 6 */
	assert_string_equal(world.log, "[1] setup [2] storage [3] memory [4] switchover [4] finish [5] cleanup "
				       "[6] ");
	for (int i = 0; i < world.runs; i++)
		assert_int_equal(world.recorded[i], i); /* recorded before it ran */
	assert_int_equal(job.stage, STAGE_COMPLETED);
	assert_true(job.past_cancel_point);
	assert_string_equal(qemu.log, "");
}

static void without_storage_the_storage_phase_is_skipped(void **state)
{
	(void)state;
	qemu_reset("paused"); /* at pre-switchover */
	world.fail_in = MOVE_MEMORY;
	world.fail_with = -EIO;
	move(false);
	assert_string_equal(world.log, "[1] setup [3] memory ");
	assert_string_equal(qemu.log, STOP_MEMORY UNDO_MEMORY UNDO_SETUP);
	assert_string_equal(world.failed, "memory failed");
}

/* A cut network can keep QEMU's cancelled migration from ending: the job
 * ends only after it has, its sockets yanked again meanwhile, so that the
 * next move of the VM is not refused. */
static void a_failed_move_ends_after_qemus_migration_does(void **state)
{
	(void)state;
	qemu_reset("running");
	qemu.cancelling = 3;
	world.fail_in = MOVE_MEMORY;
	world.fail_with = -EIO;
	move(false);
	/* the guest ran on: no cont */
	assert_string_equal(qemu.log, STOP_MEMORY "migrate_cancel\n" STOP_MEMORY UNDO_SETUP);
	assert_int_equal(qemu.cancelling, 0);
	assert_int_equal(job.stage, STAGE_FAILED);
}

/* A cancel in each phase that honours it: every row entered is stopped,
 * then undone, newest first; the guest runs here; no record is left. */
static void a_cancel_walks_back_from_each_phase(void **state)
{
	static const struct {
		enum move_phase phase;
		const char *runs, *qmp;
	} cases[] = {
		{MOVE_SETUP, "[1] setup ", UNDO_SETUP},
		{MOVE_STORAGE, "[1] setup [2] storage ", STOP_STORAGE UNDO_STORAGE UNDO_SETUP},
		{MOVE_MEMORY, "[1] setup [2] storage [3] memory ", STOP_MEMORY STOP_STORAGE UNDO_MEMORY UNDO_STORAGE UNDO_SETUP},
		/* before migrate-continue: the migration is still under way */
		{MOVE_SWITCHOVER, "[1] setup [2] storage [3] memory [4] switchover ",
		 STOP_MEMORY STOP_STORAGE UNDO_MEMORY UNDO_STORAGE UNDO_SETUP},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		fresh(NULL);
		qemu_reset(cases[i].phase >= MOVE_MEMORY ? "paused" : "running");
		world.fail_in = (int)cases[i].phase;
		world.fail_with = -ECANCELED;
		move(true);
		assert_string_equal(world.log, cases[i].runs);
		assert_string_equal(qemu.log, cases[i].qmp);
		assert_string_equal(world.failed, "cancelled by the administrator");
		assert_int_equal(job.stage, STAGE_FAILED);
		assert_false(recorded());
		assert_null(vm.busy);
		assert_string_equal(qemu.status, "running");
	}
}

/* The cancel flag of each row, as the docs' table says. */
static void cancel_is_honoured_until_switchover(void **state)
{
	size_t n;
	const struct phase_row *rows = source_phase_table(&n);

	(void)state;
	assert_int_equal(n, MOVE_CLEANUP + 1);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(rows[i].id, (int)i);
		assert_string_equal(rows[i].name, move_phase_name((enum move_phase)i));
		assert_int_equal(rows[i].cancel, i <= MOVE_SWITCHOVER);
	}
	/* only storage and memory stop at once; switchover on has no undo of its own */
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(rows[i].stop != NULL, i == MOVE_STORAGE || i == MOVE_MEMORY);
		assert_int_equal(rows[i].undo != NULL, i <= MOVE_MEMORY);
	}
}

/* A finish whose answer is lost: the guest may run there, so it is not
 * resumed here, the destination is not told to abort and the record stays
 * for the administrator. */
static void an_unknown_finish_keeps_the_guest_paused(void **state)
{
	(void)state;
	qemu_reset("postmigrate");
	world.fail_in = MOVE_FINISH;
	world.fail_with = -EIO;
	world.unknown_outcome = true;
	move(true);
	assert_string_equal(qemu.log, STOP_STORAGE UNDO_STORAGE UNDO_SETUP);
	assert_string_equal(qemu.status, "postmigrate");
	assert_true(recorded());
	assert_true(job.past_cancel_point);
}

/* A finish the destination refused: the guest resumes here. */
static void a_refused_finish_resumes_here(void **state)
{
	(void)state;
	qemu_reset("postmigrate");
	world.fail_in = MOVE_FINISH;
	world.fail_with = -EPERM;
	move(true);
	assert_string_equal(qemu.log, STOP_STORAGE "cont\n" UNDO_STORAGE UNDO_SETUP);
	assert_string_equal(qemu.status, "running");
	assert_false(recorded());
}

/* A restart finds moving.json at each phase (move_recovery_for), with
 * storage: rolled back with the same rows (the old process's migration is
 * assumed under way), kept paused, or finished. */
static void a_restart_acts_on_each_persisted_phase(void **state)
{
	static const struct {
		enum move_phase phase;
		enum move_recovery decision;
		const char *qmp, *calls;
		bool removed, record_kept;
	} cases[] = {
		{MOVE_SETUP, RECOVER_ROLL_BACK, UNDO_SETUP, "", false, false},
		{MOVE_STORAGE, RECOVER_ROLL_BACK, STOP_STORAGE UNDO_STORAGE UNDO_SETUP, "", false, false},
		{MOVE_MEMORY, RECOVER_ROLL_BACK, STOP_MEMORY STOP_STORAGE UNDO_MEMORY UNDO_STORAGE UNDO_SETUP, "", false,
		 false},
		{MOVE_SWITCHOVER, RECOVER_ROLL_BACK, STOP_MEMORY STOP_STORAGE UNDO_MEMORY UNDO_STORAGE UNDO_SETUP, "",
		 false, false},
		{MOVE_FINISH, RECOVER_KEEP_PAUSED, "", "", false, true},
		{MOVE_CLEANUP, RECOVER_FINISH_CLEANUP, "", "qemu_stop vm_remove(disks deleted) ", true, true},
	};
	char tls[128];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct move_record rec = {.job = 7, .phase = cases[i].phase, .storage = true};
		fresh(NULL);
		qemu_reset(cases[i].phase >= MOVE_MEMORY ? "paused" : "running");
		snprintf(rec.dest, sizeof(rec.dest), "host2.lab.test");
		assert_int_equal(move_record_write(rundir, &rec), 0);
		snprintf(tls, sizeof(tls), "%s/tls-7", rundir);
		assert_int_equal(mkdir_p(tls, 0700), 0);
		assert_int_equal(move_recovery_for(cases[i].phase), cases[i].decision);
		assert_int_equal(move_recover(&d, &vm), cases[i].removed);
		assert_string_equal(qemu.log, cases[i].qmp);
		assert_string_equal(world.log, cases[i].calls);
		/* the stub vm_remove removes nothing: the record of a cleanup stays here */
		assert_int_equal(recorded(), cases[i].record_kept);
		if (cases[i].decision == RECOVER_ROLL_BACK) {
			assert_false(path_exists(tls)); /* the old process's key */
			assert_string_equal(qemu.status, "running");
		}
		remove_tree(tls);
	}
}

/* No record, or one from before phases were kept: nothing, or the old
 * meaning of finish-sent. */
static void a_restart_without_phase(void **state)
{
	static const char old[] = "{\"dest\":\"host2\",\"finish-sent\":true}";
	char path[128];

	(void)state;
	assert_false(move_recover(&d, &vm));
	assert_string_equal(qemu.log, "");
	snprintf(path, sizeof(path), "%s/moving.json", rundir);
	assert_int_equal(write_file_atomic(path, old, strlen(old), 0600), 0);
	assert_false(move_recover(&d, &vm));
	assert_string_equal(qemu.log, ""); /* finish: kept paused */
	assert_true(recorded());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(a_move_runs_every_phase_in_order, fresh),
		cmocka_unit_test_setup(without_storage_the_storage_phase_is_skipped, fresh),
		cmocka_unit_test_setup(a_failed_move_ends_after_qemus_migration_does, fresh),
		cmocka_unit_test_setup(a_cancel_walks_back_from_each_phase, fresh),
		cmocka_unit_test(cancel_is_honoured_until_switchover),
		cmocka_unit_test_setup(an_unknown_finish_keeps_the_guest_paused, fresh),
		cmocka_unit_test_setup(a_refused_finish_resumes_here, fresh),
		cmocka_unit_test_setup(a_restart_acts_on_each_persisted_phase, fresh),
		cmocka_unit_test_setup(a_restart_without_phase, fresh),
	};
	return cmocka_run_group_tests(tests, start, stop);
}
