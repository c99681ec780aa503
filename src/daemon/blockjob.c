/* QEMU block jobs of a move (blockjob.h). */
#include "blockjob.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "vm_qmp.h"

static void job_id(const char *prefix, const char *kind, size_t i, char *out, size_t len)
{
	snprintf(out, len, "%s-%s%zu", prefix, kind, i);
}

static void target_node(const char *prefix, size_t i, char *out, size_t len)
{
	snprintf(out, len, "%s-tgt%zu", prefix, i);
}

int blockjob_disk_node(struct vm *vm, size_t i, char *out, size_t len, char *err, size_t errlen)
{
	char qdev[64];
	json_t *ret = NULL, *b;
	size_t k;
	int r;

	r = vm_qmp(vm, "query-block", NULL, &ret, err, errlen);
	if (r < 0)
		return r;
	snprintf(qdev, sizeof(qdev), "/machine/peripheral/vd%zu/", i);
	r = -ENOENT;
	json_array_foreach(ret, k, b) {
		const char *q = arg_str(b, "qdev");
		const char *node = arg_str(json_object_get(b, "inserted"), "node-name");
		if (q && node && strncmp(q, qdev, strlen(qdev)) == 0) {
			snprintf(out, len, "%s", node);
			r = 0;
			break;
		}
	}
	if (r < 0)
		snprintf(err, errlen, "QEMU shows no disk vd%zu", i);
	json_decref(ret);
	return r;
}

int blockjob_mirror_start(struct vm *vm, const char *prefix, size_t i, const char *node, const char *sync, char *err,
			  size_t errlen)
{
	char id[48], tgt[48];

	job_id(prefix, "mirror", i, id, sizeof(id));
	target_node(prefix, i, tgt, sizeof(tgt));
	return qmpf(vm, err, errlen, NULL, "blockdev-mirror", "{s:s, s:s, s:s, s:s, s:b}", "job-id", id, "device", node,
		    "target", tgt, "sync", sync, "auto-dismiss", 0);
}

int blockjob_finish_all(struct vm *vm, const char *prefix, size_t n, bool pivot, char *err, size_t errlen)
{
	char id[48];
	int r;

	for (size_t i = 0; i < n; i++) {
		job_id(prefix, "mirror", i, id, sizeof(id));
		if ((r = qmpf(vm, err, errlen, NULL, pivot ? "block-job-complete" : "block-job-cancel", "{s:s}", "device",
			      id)) < 0)
			return r;
	}
	return 0;
}

static bool of_family(const char *id, const char *prefix, const char *kind)
{
	size_t n = strlen(prefix), k = strlen(kind);

	return id && strncmp(id, prefix, n) == 0 && id[n] == '-' && strncmp(id + n + 1, kind, k) == 0 &&
	       id[n + 1 + k] >= '0' && id[n + 1 + k] <= '9';
}

enum dismiss { DISMISS_NONE, DISMISS_DONE, DISMISS_ALL };

/* One query-block-jobs: the family's progress. Concluded jobs are dismissed
 * (and no longer counted) when they ended well (DISMISS_DONE), or in any case
 * (DISMISS_ALL, cleanup: their error is not reported either). */
static int progress(struct vm *vm, const char *prefix, const char *kind, enum dismiss dismiss,
		    struct blockjob_progress *p, char *err, size_t errlen)
{
	json_t *jobs = NULL, *bj;
	size_t i;
	int r;

	memset(p, 0, sizeof(*p));
	if ((r = vm_qmp(vm, "query-block-jobs", NULL, &jobs, err, errlen)) < 0)
		return r;
	json_array_foreach(jobs, i, bj) {
		const char *id = arg_str(bj, "device"), *status = arg_str(bj, "status"), *e = arg_str(bj, "error");
		uint64_t len = (uint64_t)json_integer_value(json_object_get(bj, "len"));
		uint64_t off = (uint64_t)json_integer_value(json_object_get(bj, "offset"));
		bool concluded = status && !strcmp(status, "concluded");

		if (!of_family(id, prefix, kind))
			continue;
		if (concluded && (dismiss == DISMISS_ALL || (dismiss == DISMISS_DONE && !e))) {
			qmpf(vm, err, errlen, NULL, "job-dismiss", "{s:s}", "id", id);
			continue;
		}
		if (e && !p->error[0])
			snprintf(p->error, sizeof(p->error), "%s", e);
		if (concluded && !e && !p->error[0])
			snprintf(p->error, sizeof(p->error), "the copy stopped by itself");
		p->found++;
		p->total += len;
		p->remaining += len > off ? len - off : 0;
		p->ready += json_is_true(json_object_get(bj, "ready"));
	}
	json_decref(jobs);
	return 0;
}

static int check_kind(struct vm *vm, const char *prefix, const char *kind, size_t n, struct blockjob_progress *ret,
		      char *err, size_t errlen)
{
	int r;

	if ((r = progress(vm, prefix, kind, DISMISS_NONE, ret, err, errlen)) < 0)
		return r;
	if (ret->error[0]) {
		snprintf(err, errlen, "%s", ret->error);
		return -EIO;
	}
	if (ret->found < n) {
		snprintf(err, errlen, "a disk copy stopped unexpectedly (its target went away)");
		return -EIO;
	}
	return 0;
}

int blockjob_check(struct vm *vm, const char *prefix, size_t n, struct blockjob_progress *ret, char *err,
		   size_t errlen)
{
	return check_kind(vm, prefix, "mirror", n, ret, err, errlen);
}

int blockjob_wait(struct vm *vm, const char *prefix, size_t n, enum blockjob_until until, uint64_t deadline_ms,
		  unsigned poll_ms, blockjob_round_fn round, void *ctx, char *err, size_t errlen)
{
	return blockjob_wait_kind(vm, prefix, "mirror", n, until, deadline_ms, poll_ms, round, ctx, err, errlen);
}

int blockjob_wait_kind(struct vm *vm, const char *prefix, const char *kind, size_t n, enum blockjob_until until,
		       uint64_t deadline_ms, unsigned poll_ms, blockjob_round_fn round, void *ctx, char *err,
		       size_t errlen)
{
	struct blockjob_progress p;
	int r;

	for (;;) {
		if (until == BLOCKJOB_READY)
			r = check_kind(vm, prefix, kind, n, &p, err, errlen);
		else if ((r = progress(vm, prefix, kind, DISMISS_DONE, &p, err, errlen)) == 0 && p.error[0]) {
			snprintf(err, errlen, "%s", p.error);
			r = -EIO;
		}
		if (r < 0)
			return r;
		if (until == BLOCKJOB_READY ? p.ready == n : p.found == 0)
			return 0;
		if (round && (r = round(ctx, &p)) < 0)
			return r;
		if (now_ms() > deadline_ms) {
			snprintf(err, errlen, "the disk copies did not %s in time",
				 until == BLOCKJOB_READY ? "reach sync" : "finish");
			return -ETIMEDOUT;
		}
		usleep(poll_ms * 1000);
	}
}

void blockjob_cancel_kind(struct vm *vm, const char *prefix, const char *kind, size_t n, unsigned wait_ms)
{
	uint64_t deadline = now_ms() + wait_ms;
	struct blockjob_progress p;
	char err[256], id[48];

	for (size_t i = 0; i < n; i++) {
		job_id(prefix, kind, i, id, sizeof(id));
		qmpf(vm, err, sizeof(err), NULL, "block-job-cancel", "{s:s, s:b}", "device", id, "force", 1);
	}
	while (progress(vm, prefix, kind, DISMISS_ALL, &p, err, sizeof(err)) == 0 && p.found > 0 &&
	       now_ms() < deadline)
		usleep(100 * 1000);
}

void blockjob_abandon(struct vm *vm, const char *prefix, size_t n, unsigned wait_ms)
{
	char err[256], id[48];

	blockjob_cancel_kind(vm, prefix, "mirror", n, wait_ms);
	for (size_t i = 0; i < n; i++) {
		target_node(prefix, i, id, sizeof(id));
		qmpf(vm, err, sizeof(err), NULL, "blockdev-del", "{s:s}", "node-name", id);
	}
}
