/* A disk copy that can resume, at the source (move_resume.h). */
#include "move_resume.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "partial.h"
#include "settings.h"
#include "util.h"
#include "vm_qmp.h"
#include "vmconfig.h"

#define BM_COPY "ferry-copy"     /* on the disk: what the backup has still to send */
#define BM_WRITES "ferry-writes" /* on the overlay: the guest's writes since the snapshot */
#define BM_RESUME "ferry-resume-" /* + token, persistent, on the disk */
#define POLL_MS 200

static void overlay_node(size_t i, char *out, size_t len)
{
	snprintf(out, len, "ferry-ov%zu", i);
}

static const char *disk_path(struct vm *vm, size_t i)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(vm->config, "disks"), i), "path"));
}

/* node as query-named-block-nodes shows it (its "image", its
 * "dirty-bitmaps"), a new reference, or NULL. */
static json_t *named_node(struct vm *vm, const char *node)
{
	json_t *nodes = NULL, *n, *ret = NULL;
	char err[256];
	size_t i;

	if (vm_qmp(vm, "query-named-block-nodes", NULL, &nodes, err, sizeof(err)) < 0)
		return NULL;
	json_array_foreach(nodes, i, n)
		if (!strcmp(arg_str(n, "node-name") ?: "", node)) {
			ret = json_incref(n);
			break;
		}
	json_decref(nodes);
	return ret;
}

static json_t *node_bitmaps(struct vm *vm, const char *node)
{
	json_t *n = named_node(vm, node), *ret = n ? json_incref(json_object_get(n, "dirty-bitmaps")) : NULL;

	json_decref(n);
	return ret;
}

/* PARTIAL_TOKEN_HEX lower-case hex digits, as partial_new_token makes them */
static bool token_valid(const char *t)
{
	return t && strlen(t) == PARTIAL_TOKEN_HEX && strspn(t, "0123456789abcdef") == PARTIAL_TOKEN_HEX;
}

static bool is_resume_name(const char *name)
{
	return name && !strncmp(name, BM_RESUME, strlen(BM_RESUME)) && token_valid(name + strlen(BM_RESUME));
}

/* Disk i's resume bitmap: its token (a JSON string, or null where there is
 * none or QEMU marks it inconsistent), its name in name ("" when none), the
 * bytes it marks and the disk's virtual size. */
static json_t *resume_bitmap(struct vm *vm, size_t i, char *name, size_t len, uint64_t *ret_marked,
			     uint64_t *ret_size)
{
	char node[64], err[256];
	json_t *n = NULL, *b, *tok = json_null();
	size_t k;

	name[0] = '\0';
	if (blockjob_disk_node(vm, i, node, sizeof(node), err, sizeof(err)) == 0)
		n = named_node(vm, node);
	*ret_size = (uint64_t)json_integer_value(json_object_get(json_object_get(n, "image"), "virtual-size"));
	*ret_marked = *ret_size;
	json_array_foreach(json_object_get(n, "dirty-bitmaps"), k, b) {
		const char *bm = arg_str(b, "name");
		if (is_resume_name(bm) && json_is_true(json_object_get(b, "persistent")) &&
		    !json_is_true(json_object_get(b, "inconsistent"))) {
			snprintf(name, len, "%s", bm);
			*ret_marked = (uint64_t)json_integer_value(json_object_get(b, "count"));
			json_decref(tok);
			tok = json_string(bm + strlen(BM_RESUME));
			break;
		}
	}
	json_decref(n);
	return tok;
}

json_t *move_resume_tokens(struct move *m)
{
	json_t *tokens = json_array();

	for (size_t i = 0; i < m->ndisks && i < VM_MAX_DISKS; i++)
		json_array_append_new(tokens, resume_bitmap(m->vm, i, m->resume_name[i], sizeof(m->resume_name[i]),
							    &m->to_copy[i], &m->disk_size[i]));
	return tokens;
}

json_t *move_resume_compare_tokens(struct move *m, const char *name)
{
	struct ferryd *d = m->d;
	struct vm *vm, *snap = m->vm;
	json_t *tokens;

	pthread_mutex_lock(&d->lock);
	vm = vm_find(d, name);
	if (vm && (vm->busy || vm->incoming || strcmp(vm_state(vm), "running") != 0 ||
		   json_array_size(json_object_get(vm->config, "disks")) != m->ndisks))
		vm = NULL;
	if (vm)
		vm->busy = "measuring";
	pthread_mutex_unlock(&d->lock);
	if (!vm)
		return NULL;
	m->vm = vm;
	tokens = move_resume_tokens(m);
	m->vm = snap;
	pthread_mutex_lock(&d->lock);
	vm->busy = NULL;
	pthread_mutex_unlock(&d->lock);
	return tokens;
}

/* persistent bitmaps live in qcow2 files only */
static bool all_qcow2(struct vm *vm)
{
	bool qcow2 = true;
	json_t *dsk;
	size_t i;

	json_array_foreach(json_object_get(vm->config, "disks"), i, dsk)
		qcow2 &= !strcmp(arg_str(dsk, "format") ?: "", "qcow2");
	return qcow2;
}

int move_resume_read_reply(struct move *m, const json_t *reply)
{
	const json_t *p = json_object_get(reply, "partial"), *reuse, *keep;
	const char *token;
	size_t i;

	m->resumable = false;
	if (!p || json_is_null(p))
		return 0;
	keep = json_object_get(p, "keep");
	token = json_string_value(json_object_get(p, "token"));
	reuse = json_object_get(p, "reuse");
	if (!json_is_object(p) || !json_is_boolean(keep) || !token_valid(token) || !json_is_array(reuse) ||
	    json_array_size(reuse) != m->ndisks || m->ndisks > VM_MAX_DISKS) {
		snprintf(m->err, sizeof(m->err), "%s sent a malformed \"partial\" in its prepare reply", m->j->dest);
		return -EPROTO;
	}
	for (i = 0; i < m->ndisks; i++) {
		const json_t *b = json_array_get(reuse, i);
		if (!json_is_boolean(b) || (json_is_true(b) && !m->resume_name[i][0])) {
			snprintf(m->err, sizeof(m->err), "%s claims a kept copy of disk %zu that this host has no record "
				 "for", m->j->dest, i);
			return -EPROTO;
		}
		m->reuse[i] = json_is_true(b);
	}
	snprintf(m->partial_token, sizeof(m->partial_token), "%s", token);
	m->resumable = json_is_true(keep) && all_qcow2(m->vm) && m->storage;
	return 0;
}

/* Every resume bitmap of node goes: what they knew is in BM_COPY now, or
 * the destination kept nothing for them. */
static void drop_resume_bitmaps(struct vm *vm, const char *node)
{
	json_t *bms = node_bitmaps(vm, node), *b;
	char err[256];
	size_t k;

	json_array_foreach(bms, k, b)
		if (is_resume_name(arg_str(b, "name")))
			qmpf(vm, err, sizeof(err), NULL, "block-dirty-bitmap-remove", "{s:s, s:s}", "node", node, "name",
			     arg_str(b, "name"));
	json_decref(bms);
}

/* DISK.ferry-overlay: a new qcow2 file over the disk, owned by QEMU's user.
 * One already there holds writes a crash left: never overwritten. */
static int overlay_create(struct move *m, size_t i, uint64_t size, char *path, size_t len)
{
	const char *disk = disk_path(m->vm, i), *fmt = json_string_value(json_object_get(
						      json_array_get(json_object_get(m->vm->config, "disks"), i), "format"));
	char sz[32], out[1024];
	const char *const argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", "-u", "-F", fmt, "-b", disk, path, sz,
				    NULL};
	int fd, r;

	if ((size_t)snprintf(path, len, "%s" OVERLAY_SUFFIX, disk) >= len)
		return -ENAMETOOLONG;
	snprintf(sz, sizeof(sz), "%" PRIu64, size);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(m->err, sizeof(m->err), "cannot create %s: %s%s", path, strerror(errno),
			 errno == EEXIST ? " (an earlier move's writes: starting the VM again folds them in)" : "");
		return -errno;
	}
	close(fd);
	if ((r = run_cmd(argv, out, sizeof(out))) != 0) {
		snprintf(m->err, sizeof(m->err), "cannot create %s: %s", path, r < 0 ? strerror(-r) : out);
		unlink(path);
		return -EIO;
	}
	return qemu_file_own(m->d, path, m->err, sizeof(m->err));
}

static int start_one(struct move *m, size_t i)
{
	char ov[32], path[PATH_MAX + 32], job[32], tgt[32];
	const char *base = m->base_node[i];
	json_t *info, *b;
	size_t k;
	int r;

	if ((r = blockjob_disk_node(m->vm, i, m->base_node[i], sizeof(m->base_node[i]), m->err, sizeof(m->err))) < 0)
		return r;
	/* the copy's bitmap: empty for a full copy; what the kept copy lacks */
	qmpf(m->vm, m->err, sizeof(m->err), NULL, "block-dirty-bitmap-remove", "{s:s, s:s}", "node", base, "name",
	     BM_COPY);
	if ((r = qmpf(m->vm, m->err, sizeof(m->err), NULL, "block-dirty-bitmap-add", "{s:s, s:s}", "node", base,
		      "name", BM_COPY)) < 0)
		return r;
	if (m->reuse[i] && (r = qmpf(m->vm, m->err, sizeof(m->err), NULL, "block-dirty-bitmap-merge",
				     "{s:s, s:s, s:[s]}", "node", base, "target", BM_COPY, "bitmaps",
				     m->resume_name[i])) < 0)
		return r;
	drop_resume_bitmaps(m->vm, base);
	/* what is to send: the disk, or what the copy's bitmap marks */
	if (!(info = named_node(m->vm, base))) {
		snprintf(m->err, sizeof(m->err), "QEMU shows no node %s", base);
		return -EIO;
	}
	m->disk_size[i] = (uint64_t)json_integer_value(json_object_get(json_object_get(info, "image"), "virtual-size"));
	m->to_copy[i] = m->disk_size[i];
	json_array_foreach(json_object_get(info, "dirty-bitmaps"), k, b)
		if (m->reuse[i] && !strcmp(arg_str(b, "name") ?: "", BM_COPY))
			m->to_copy[i] = (uint64_t)json_integer_value(json_object_get(b, "count"));
	json_decref(info);
	if ((r = overlay_create(m, i, m->disk_size[i], path, sizeof(path))) < 0)
		return r;
	overlay_node(i, ov, sizeof(ov));
	r = qmpf(m->vm, m->err, sizeof(m->err), NULL, "blockdev-add", "{s:s, s:s, s:{s:s, s:s}, s:n}", "driver",
		 "qcow2", "node-name", ov, "file", "driver", "file", "filename", path, "backing");
	if (r < 0) {
		unlink(path);
		return r;
	}
	m->overlaid[i] = true;
	if ((r = qmpf(m->vm, m->err, sizeof(m->err), NULL, "block-dirty-bitmap-add", "{s:s, s:s}", "node", ov, "name",
		      BM_WRITES)) < 0 ||
	    (r = qmpf(m->vm, m->err, sizeof(m->err), NULL, "blockdev-snapshot", "{s:s, s:s}", "node", base, "overlay",
		      ov)) < 0)
		return r;
	m->snapped[i] = true;
	snprintf(job, sizeof(job), MIG_JOBS "-backup%zu", i);
	snprintf(tgt, sizeof(tgt), MIG_JOBS "-tgt%zu", i);
	if ((r = qmpf(m->vm, m->err, sizeof(m->err), NULL, "blockdev-backup",
		      "{s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "job-id", job, "device", base, "target", tgt, "sync",
		      m->reuse[i] ? "bitmap" : "full", "bitmap", BM_COPY, "bitmap-mode", "always", "auto-dismiss",
		      0)) < 0)
		return r;
	m->backed_up[i] = true;
	return 0;
}

struct copy_round {
	struct move *m;
	blockjob_round_fn round;
	uint64_t total;
};

/* The backups that ended are dismissed and no longer counted: the total
 * stays what the copy set out to send. */
static int copy_round(void *ctx, const struct blockjob_progress *p)
{
	struct copy_round *c = ctx;
	struct blockjob_progress all = *p;

	all.total = c->total;
	return c->round ? c->round(c->m, &all) : 0;
}

uint64_t move_resume_reused_bytes(const struct move *m)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < m->ndisks && i < VM_MAX_DISKS; i++)
		if (m->reuse[i] && m->disk_size[i] > m->to_copy[i])
			sum += m->disk_size[i] - m->to_copy[i];
	return sum;
}

int move_resume_copy(struct move *m, blockjob_round_fn round)
{
	struct copy_round c = {.m = m, .round = round};
	uint64_t total = 0;
	char why[512] = "";
	int r;

	for (size_t i = 0; i < m->ndisks; i++) {
		if ((r = start_one(m, i)) < 0)
			return r;
		total += m->disk_size[i];
	}
	job_set_disk_reuse(m->d, m->j, move_resume_reused_bytes(m), total);
	for (size_t i = 0; i < m->ndisks; i++)
		c.total += m->to_copy[i];
	r = blockjob_wait_kind(m->vm, MIG_JOBS, "backup", m->ndisks, BLOCKJOB_GONE, now_ms() + BLOCKJOB_SYNC_TIMEOUT_MS,
			       POLL_MS, copy_round, &c, why, sizeof(why));
	/* without a reason from the jobs, the round's (cancel, stall) is in m->err */
	if (r < 0 && why[0])
		snprintf(m->err, sizeof(m->err), "copying the disks failed: %s", why);
	return r;
}

/* Active commit of overlay i into its disk: on READY, with resume_name, the
 * resume bitmap is recorded on the disk (base), then the guest is pivoted
 * back. 0 or -errno. */
static int fold_one(struct vm *vm, size_t i, const char *base, const char *resume_name)
{
	char ov[32], job[32], err[512], why[512] = "";
	int r;

	overlay_node(i, ov, sizeof(ov));
	snprintf(job, sizeof(job), MIG_JOBS "-commit%zu", i);
	if ((r = qmpf(vm, err, sizeof(err), NULL, "block-commit", "{s:s, s:s, s:b}", "job-id", job, "device", ov,
		      "auto-dismiss", 0)) < 0)
		goto fail;
	if ((r = blockjob_wait_kind(vm, MIG_JOBS, "commit", 1, BLOCKJOB_READY, now_ms() + 600000, 100, NULL, NULL, why,
				    sizeof(why))) < 0) {
		snprintf(err, sizeof(err), "%s", why);
		goto fail;
	}
	/* the disk is writable again during the commit: the record of what the
	 * destination's copy lacks goes on it, before the guest writes there */
	if (resume_name && base) {
		if (qmpf(vm, err, sizeof(err), NULL, "block-dirty-bitmap-add", "{s:s, s:s, s:b}", "node", base, "name",
			 resume_name, "persistent", 1) < 0 ||
		    qmpf(vm, err, sizeof(err), NULL, "block-dirty-bitmap-merge", "{s:s, s:s, s:[s, {s:s, s:s}]}", "node",
			 base, "target", resume_name, "bitmaps", BM_COPY, "node", ov, "name", BM_WRITES) < 0) {
			log_warn("VM %s: cannot record what the destination's partial copy lacks (%s): the next move "
				 "copies the disk in full", vmconfig_name(vm->config), err);
			qmpf(vm, err, sizeof(err), NULL, "block-dirty-bitmap-remove", "{s:s, s:s}", "node", base, "name",
			     resume_name);
		} else {
			log_info("VM %s: disk %s: what the destination's partial copy lacks is recorded (bitmap %s)",
				 vmconfig_name(vm->config), disk_path(vm, i) ?: "?", resume_name);
		}
	}
	if ((r = qmpf(vm, err, sizeof(err), NULL, "block-job-complete", "{s:s}", "device", job)) < 0)
		goto fail;
	if ((r = blockjob_wait_kind(vm, MIG_JOBS, "commit", 1, BLOCKJOB_GONE, now_ms() + 600000, 100, NULL, NULL, why,
				    sizeof(why))) < 0) {
		snprintf(err, sizeof(err), "%s", why);
		goto fail;
	}
	return 0;
fail:
	log_err("VM %s: folding the guest's writes back from %s%s failed: %s; they stay there and are folded in "
		"when the VM starts again", vmconfig_name(vm->config), disk_path(vm, i) ?: "?", OVERLAY_SUFFIX, err);
	blockjob_cancel_kind(vm, MIG_JOBS, "commit", i + 1, 2000);
	return r;
}

/* The overlay's node and file go, once it is out of the guest's way. */
static void overlay_remove(struct vm *vm, size_t i)
{
	char ov[32], err[256], path[PATH_MAX + 32];

	overlay_node(i, ov, sizeof(ov));
	if (qmpf(vm, err, sizeof(err), NULL, "blockdev-del", "{s:s}", "node-name", ov) == 0 && disk_path(vm, i)) {
		snprintf(path, sizeof(path), "%s" OVERLAY_SUFFIX, disk_path(vm, i));
		unlink(path);
	}
}

void move_resume_undo(struct move *m)
{
	char err[256], name[64];

	blockjob_cancel_kind(m->vm, MIG_JOBS, "backup", m->ndisks, 5000);
	snprintf(name, sizeof(name), BM_RESUME "%s", m->partial_token);
	for (size_t i = 0; i < m->ndisks; i++) {
		if (m->snapped[i] && fold_one(m->vm, i, m->base_node[i], m->backed_up[i] ? name : NULL) < 0)
			continue;
		if (m->overlaid[i])
			overlay_remove(m->vm, i);
		if (m->base_node[i][0])
			qmpf(m->vm, err, sizeof(err), NULL, "block-dirty-bitmap-remove", "{s:s, s:s}", "node",
			     m->base_node[i], "name", BM_COPY);
		m->snapped[i] = m->overlaid[i] = m->backed_up[i] = false;
	}
}

const char *move_resume_offer_kept(struct move *m)
{
	if (!m->storage || !m->keep_disks || partial_retention_s(m->d) <= 0 || !all_qcow2(m->vm))
		return NULL;
	if (!m->kept_token[0]) /* a finish asked again keeps its token */
		partial_new_token(m->kept_token);
	return m->kept_token;
}

void move_resume_keep_source(struct move *m)
{
	json_t *files = json_array(), *dsk;
	int64_t keep_s = partial_retention_s(m->d);
	struct stat st;
	size_t i;
	int r = 0;

	json_array_foreach(json_object_get(m->vm->config, "disks"), i, dsk) {
		const char *path = arg_str(dsk, "path");
		if (!path || stat(path, &st) < 0) {
			r = -errno;
			break;
		}
		json_array_append_new(files, json_pack("{s:s, s:I, s:I}", "path", path, "dev", (json_int_t)st.st_dev,
						       "ino", (json_int_t)st.st_ino));
	}
	if (r == 0)
		r = partial_keep(m->d, PARTIAL_SOURCE_DISKS, vmconfig_id(m->vm->config), vmconfig_name(m->vm->config),
				 m->j->dest, m->kept_token, files, keep_s);
	if (r < 0)
		log_warn("VM %s: cannot record its kept disks for a move back (%s): that move needs them out of its "
			 "way", vmconfig_name(m->vm->config), strerror(-r));
	else
		log_info("VM %s: its disks stay here; a move back from %s within %lld s sends only what the guest "
			 "wrote there", vmconfig_name(m->vm->config), m->j->dest, (long long)keep_s);
	json_decref(files);
}

int move_resume_mark_kept(struct vm *vm, const char *token, char *err, size_t len)
{
	size_t n = json_array_size(json_object_get(vm->config, "disks")), i;
	char node[64], name[64];
	int r = 0;

	if (!token_valid(token)) {
		snprintf(err, len, "not a token: %s", token ? token : "(none)");
		return -EINVAL;
	}
	snprintf(name, sizeof(name), BM_RESUME "%s", token);
	for (i = 0; i < n && r == 0; i++) {
		if ((r = blockjob_disk_node(vm, i, node, sizeof(node), err, len)) < 0)
			break;
		/* one kept copy per disk: the newest */
		drop_resume_bitmaps(vm, node);
		r = qmpf(vm, err, len, NULL, "block-dirty-bitmap-add", "{s:s, s:s, s:b}", "node", node, "name", name,
			 "persistent", 1);
	}
	if (r < 0) /* all or none: a disk without its record cannot be reused */
		while (i-- > 0) {
			char e2[256];
			if (blockjob_disk_node(vm, i, node, sizeof(node), e2, sizeof(e2)) == 0)
				qmpf(vm, e2, sizeof(e2), NULL, "block-dirty-bitmap-remove", "{s:s, s:s}", "node", node,
				     "name", name);
		}
	return r;
}

void move_resume_fold_running(struct vm *vm)
{
	size_t n = json_array_size(json_object_get(vm->config, "disks"));
	char node[64], ov[32], err[256];

	blockjob_cancel_kind(vm, MIG_JOBS, "backup", n, 2000);
	for (size_t i = 0; i < n; i++) {
		overlay_node(i, ov, sizeof(ov));
		if (blockjob_disk_node(vm, i, node, sizeof(node), err, sizeof(err)) < 0)
			continue;
		if (!strcmp(node, ov) && fold_one(vm, i, NULL, NULL) < 0)
			continue;
		overlay_remove(vm, i); /* fails harmlessly when there is none */
	}
}

void move_resume_drop_overlays(struct vm *vm, bool keep_disks)
{
	json_t *dsk;
	size_t i;

	json_array_foreach(json_object_get(vm->config, "disks"), i, dsk) {
		char path[PATH_MAX + 32], err[512];
		snprintf(path, sizeof(path), "%s" OVERLAY_SUFFIX, arg_str(dsk, "path"));
		if (!path_exists(path))
			continue;
		if (keep_disks && overlay_fold_offline(arg_str(dsk, "path"), err, sizeof(err)) < 0)
			log_err("VM %s: %s", vmconfig_name(vm->config), err);
		else
			unlink(path);
	}
}

int overlay_fold_offline(const char *path, char *err, size_t errlen)
{
	char ov[PATH_MAX + 32], out[1024];
	const char *const argv[] = {"qemu-img", "commit", "-q", "-f", "qcow2", ov, NULL};
	int r;

	snprintf(ov, sizeof(ov), "%s" OVERLAY_SUFFIX, path);
	if (!path_exists(ov))
		return 0;
	if ((r = run_cmd(argv, out, sizeof(out))) != 0) {
		snprintf(err, errlen, "the guest's writes in %s could not be folded into %s: %s; the file is kept", ov,
			 path, r < 0 ? strerror(-r) : out);
		return -EIO;
	}
	log_info("folded the guest's writes in %s back into %s", ov, path);
	unlink(ov);
	return 0;
}
