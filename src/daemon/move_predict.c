/* The prediction of a move (move.h), measured at the source: the guest's
 * dirty rate (QMP calc-dirty-rate, page sampling, run while the link is
 * probed), the link's throughput (probe.h), the RAM the guest touched
 * (/proc/PID/smaps), the disks' allocated bytes; then the model (predict.h). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "learned_store.h"
#include "log.h"
#include "move.h"
#include "ops.h"
#include "peer_msg.h"
#include "predict.h"
#include "probe.h"
#include "settings.h"
#include "util.h"
#include "vm_qmp.h"

#define MIB 1048576ull
#define DIRTY_CALC_S 1           /* QEMU's shortest measurement; a longer one sees a small working set twice */
#define DIRTY_SAMPLE_PAGES 4096  /* pages sampled per GiB of RAM: QEMU's largest, for small guests */
#define DIRTY_WAIT_MS 3000       /* after the probe, how long the measurement may still take */
/* A move's probe is short: its setup waits for it. vm.compare takes the
 * longest, which the dirty rate's second costs anyway. */
#define MOVE_PROBE_MS 250
#define SMAPS_MAX (16u << 20)
#define PAGE 4096u
#define ZERO_SAMPLE_PAGES 4096u  /* pages looked at for zeros: 16 MiB read, a few ms */

static int dirty_start(struct vm *vm, char *err, size_t len)
{
	return qmpf(vm, err, len, NULL, "calc-dirty-rate", "{s:i, s:i, s:s}", "calc-time", DIRTY_CALC_S,
		    "sample-pages", DIRTY_SAMPLE_PAGES, "mode", "page-sampling");
}

/* The measured rate in bytes per second (QEMU reports whole MiB/s). */
static int dirty_read(struct vm *vm, uint64_t deadline, double *ret_bps, char *err, size_t len)
{
	for (;;) {
		json_t *info = NULL, *rate;
		char status[32];
		int r = vm_qmp(vm, "query-dirty-rate", NULL, &info, err, len);
		if (r < 0)
			return r;
		snprintf(status, sizeof(status), "%s", arg_str(info, "status") ?: "");
		rate = json_object_get(info, "dirty-rate");
		if (!strcmp(status, "measured") && json_is_integer(rate) && json_integer_value(rate) >= 0) {
			*ret_bps = (double)json_integer_value(rate) * MIB;
			json_decref(info);
			return 0;
		}
		json_decref(info);
		if (strcmp(status, "measuring") != 0) {
			snprintf(err, len, "QEMU's measurement ended as '%s'", status);
			return -EIO;
		}
		if (now_ms() >= deadline) {
			snprintf(err, len, "QEMU's measurement took more than %d s", DIRTY_CALC_S + DIRTY_WAIT_MS / 1000);
			return -ETIMEDOUT;
		}
		usleep(100 * 1000);
	}
}

/* The bytes the first pass puts on the stream: QEMU sends a page of zeros
 * as a flag, so only the pages that hold data count. ZERO_SAMPLE_PAGES
 * pages spread evenly over the guest's RAM: a page not present
 * (/proc/PID/pagemap) is zero, a present one is read (/proc/PID/mem) and
 * looked at. Without that, the RAM QEMU holds resident (smaps' Rss). */
static int nonzero_bytes(struct vm *vm, uint64_t ram, uint64_t *ret, uint64_t *ret_resident)
{
	struct predict_ram map;
	char path[64], *text = NULL;
	uint8_t page[PAGE];
	uint32_t sampled = 0, nonzero = 0;
	uint64_t pages, step;
	size_t len;
	int r, pm = -1, mem = -1;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)vm->pid);
	if ((r = read_file(path, SMAPS_MAX, &text, &len)) < 0)
		return r;
	r = predict_guest_ram(text, len, ram, &map);
	free(text);
	if (r < 0)
		return r;
	*ret_resident = map.resident;
	*ret = map.resident;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)vm->pid);
	pm = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)vm->pid);
	mem = open(path, O_RDONLY | O_CLOEXEC);
	if (pm < 0 || mem < 0)
		goto out; /* resident bytes, then */
	pages = ram / PAGE;
	step = pages > ZERO_SAMPLE_PAGES ? pages / ZERO_SAMPLE_PAGES : 1;
	for (uint64_t i = step / 2; i < pages && sampled < ZERO_SAMPLE_PAGES; i += step) {
		uint64_t addr = map.start + i * PAGE, entry;
		if (pread(pm, &entry, sizeof(entry), (off_t)(addr / PAGE * sizeof(entry))) != sizeof(entry))
			goto out;
		sampled++;
		if (!(entry & (3ull << 62))) /* neither present nor swapped: never touched */
			continue;
		if (pread(mem, page, sizeof(page), (off_t)addr) != sizeof(page))
			goto out;
		if (!predict_page_zero(page, sizeof(page)))
			nonzero++;
	}
	*ret = predict_nonzero_bytes(ram, sampled, nonzero);
out:
	if (pm >= 0)
		close(pm);
	if (mem >= 0)
		close(mem);
	return 0;
}

/* Bytes per second from here to the destination, on the connection's addresses. */
static int link_probe(struct move *m, int ms, double *ret_bps, char *err, size_t len)
{
	struct peer_probe_reply asked;
	struct peer_probe_result got;
	char addr[64];
	json_t *res = NULL;
	int r;

	r = move_peer_call(m, OP_MIGRATE_PROBE, json_pack("{s:i}", "milliseconds", ms), &res);
	if (r < 0) {
		snprintf(err, len, "%s", m->err);
		m->err[0] = 0;
		return r;
	}
	r = peer_read_probe_reply(res, &asked, err, len);
	json_decref(res);
	if (r < 0)
		return r;
	if ((r = socket_address(m->peer.conn.fd, true, addr, sizeof(addr))) < 0) {
		snprintf(err, len, "cannot read the destination's address: %s", strerror(-r));
		return r;
	}
	if ((r = probe_send(addr, &asked, &got, err, len)) < 0)
		return r;
	*ret_bps = (double)got.bytes * 1e6 / (double)got.microseconds;
	return 0;
}

static void add_why(char *why, size_t len, const char *what, const char *err)
{
	size_t n = strlen(why);

	snprintf(why + n, len - n, "%s%s not measured: %s", n ? "; " : "", what, err);
}

/* What a learned rate holds for: QEMU's stream differs with the
 * performance option (zstd, channels) and with TLS. Under d->lock. */
static void stream_kind(struct move *m, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", m->perf[0] ? m->perf : settings_str(m->d->settings, "performance"),
		 m->tls ? "+tls" : "");
}

/* The entry learned from moves to dest of this kind of stream. */
static bool learned_is(const struct learned_link *e, const char *dest, const char *kind)
{
	return e->dest[0] && !strcmp(e->dest, dest) && !strcmp(e->kind, kind);
}

/* What was learned for this kind of stream: for dest (ret_same, true
 * when there is one), and for the other hosts (up to ARRAY_SIZE(d->learned)
 * in others, ret_n of them). */
static bool learned_for(struct move *m, const char *dest, struct predict_learned *ret_same,
			struct predict_learned *others, size_t *ret_n)
{
	struct ferryd *d = m->d;
	char kind[32];
	bool found = false;

	*ret_n = 0;
	pthread_mutex_lock(&d->lock);
	stream_kind(m, kind, sizeof(kind));
	for (size_t i = 0; i < ARRAY_SIZE(d->learned); i++) {
		if (learned_is(&d->learned[i], dest, kind)) {
			*ret_same = d->learned[i].l;
			found = true;
		} else if (d->learned[i].dest[0] && !strcmp(d->learned[i].kind, kind)) {
			others[(*ret_n)++] = d->learned[i].l;
		}
	}
	pthread_mutex_unlock(&d->lock);
	return found;
}

void move_predict_learn(struct move *m)
{
	struct ferryd *d = m->d;
	struct job *j = m->j;
	struct predict_learned l;
	double model_last_ms = 0, probe = 0;
	uint64_t bytes;
	char kind[32];
	size_t i, slot;
	int r;

	pthread_mutex_lock(&d->lock);
	stream_kind(m, kind, sizeof(kind));
	bytes = j->mem_transferred + (m->storage ? j->disk_total : 0);
	if (j->prediction) {
		probe = json_number_value(json_object_get(j->prediction, "link-bytes-per-second"));
		model_last_ms = json_number_value(json_object_get(j->prediction, "downtime-ms")) -
				json_number_value(json_object_get(j->prediction, "learned-switchover-ms"));
	}
	r = j->copy_started_ms && j->copy_ended_ms > j->copy_started_ms && j->downtime_ms >= 0
		    ? predict_learn(bytes, (double)(j->copy_ended_ms - j->copy_started_ms) / 1000.0,
				    (double)j->downtime_ms, model_last_ms, probe, &l)
		    : -EINVAL;
	if (r == 0) {
		slot = ARRAY_SIZE(d->learned);
		for (i = 0; i < ARRAY_SIZE(d->learned) && slot == ARRAY_SIZE(d->learned); i++)
			if (learned_is(&d->learned[i], j->dest, kind)) /* its own entry */
				slot = i;
		for (i = 0; i < ARRAY_SIZE(d->learned) && slot == ARRAY_SIZE(d->learned); i++)
			if (!d->learned[i].dest[0]) /* else an empty one */
				slot = i;
		if (slot == ARRAY_SIZE(d->learned)) /* else the first */
			slot = 0;
		if (learned_is(&d->learned[slot], j->dest, kind))
			predict_learn_merge(&d->learned[slot].l, &l, &l);
		snprintf(d->learned[slot].dest, sizeof(d->learned[slot].dest), "%s", j->dest);
		snprintf(d->learned[slot].kind, sizeof(d->learned[slot].kind), "%s", kind);
		d->learned[slot].l = l;
		learned_save(d);
	}
	pthread_mutex_unlock(&d->lock);
}

void move_predict_begin(struct move *m)
{
	char err[512];

	if (dirty_start(m->vm, err, sizeof(err)) < 0)
		add_why(m->predict_why, sizeof(m->predict_why), "the dirty rate", err);
	else
		m->dirty_measuring = true;
}

json_t *move_predict(struct move *m, struct vm *vm, json_t *sizes)
{
	struct predict_input in = {0};
	struct predict_result out;
	json_t *p, *dsk;
	/* a move's setup, which ran move_predict_begin; vm.compare's job is no
	 * job (id 0) */
	const bool in_move = m->j->id != 0;
	const struct log_move ev = {.job = m->j->id, .vm = m->j->vm, .peer = m->j->dest,
				    .phase = in_move ? "setup" : NULL};
	char why[1024] = "", err[512];
	double dirty = -1, link = -1;
	uint64_t resident = 0;
	struct predict_learned learned, others[ARRAY_SIZE(m->d->learned)];
	struct predict_rate rate;
	size_t n = 0;
	bool measuring = false;
	size_t i;

	pthread_mutex_lock(&m->d->lock);
	in.downtime_limit_ms = (uint32_t)settings_int(m->d->settings, "downtime-ms");
	in.max_passes = (uint32_t)settings_int(m->d->settings, "max-passes");
	pthread_mutex_unlock(&m->d->lock);
	in.memory_bytes = (uint64_t)json_integer_value(json_object_get(m->vm->config, "memory-mib")) * MIB;
	in.first_pass_bytes = in.memory_bytes;
	/* of a disk the destination builds on (a kept copy), only what its
	 * resume bitmap marks goes, in proportion */
	if (m->storage)
		json_array_foreach(sizes, i, dsk) {
			double part = i < VM_MAX_DISKS && m->reuse[i] && m->disk_size[i] ?
					      (double)m->to_copy[i] / (double)m->disk_size[i] : 1.0;
			in.disk_bytes += (uint64_t)((double)json_integer_value(json_object_get(dsk, "allocated")) *
						    (part < 1.0 ? part : 1.0));
		}

	/* QEMU measures on its own thread while the link is probed (a move
	 * started it at the beginning of its setup) */
	if (in_move) {
		measuring = m->dirty_measuring;
		snprintf(why, sizeof(why), "%s", m->predict_why);
	} else if (!vm) {
		add_why(why, sizeof(why), "the dirty rate", "the VM is not running here, or busy");
	} else if (dirty_start(vm, err, sizeof(err)) < 0) {
		add_why(why, sizeof(why), "the dirty rate", err);
	} else {
		measuring = true;
	}
	if (link_probe(m, in_move ? MOVE_PROBE_MS : PEER_PROBE_MS_MAX, &link, err, sizeof(err)) < 0)
		add_why(why, sizeof(why), "the link", err);
	if (measuring && dirty_read(vm, now_ms() + DIRTY_WAIT_MS, &dirty, err, sizeof(err)) < 0)
		add_why(why, sizeof(why), "the dirty rate", err);
	if (!vm || nonzero_bytes(vm, in.memory_bytes, &in.first_pass_bytes, &resident) < 0)
		in.first_pass_bytes = resident = in.memory_bytes; /* unknown: all of it */

	p = json_pack("{s:I, s:I, s:I, s:I, s:i, s:i, s:b, s:b}", "memory-bytes", (json_int_t)in.memory_bytes,
		      "memory-resident-bytes", (json_int_t)resident, "memory-to-send-bytes",
		      (json_int_t)in.first_pass_bytes, "disk-bytes", (json_int_t)in.disk_bytes,
		      "downtime-limit-ms", (int)in.downtime_limit_ms, "max-passes", (int)in.max_passes, "encryption",
		      m->tls, "link-encrypted", 0);
	if (link >= 0)
		json_object_set_new(p, "link-bytes-per-second", json_integer((json_int_t)link));
	if (dirty >= 0)
		json_object_set_new(p, "dirty-bytes-per-second", json_integer((json_int_t)dirty));
	in.link_bps = link;
	in.dirty_bps = dirty;
	if (link >= 0) {
		/* QEMU's stream to this host, else to others, else the default
		 * (predict.h) */
		bool same = learned_for(m, m->j->dest, &learned, others, &n);

		predict_rate_choose(link, same ? &learned : NULL, others, n, &rate);
		in.link_bps = rate.bps;
		in.rate_includes_switchover = rate.includes_switchover;
		in.switchover_ms = rate.switchover_ms;
		if (same) {
			json_object_set_new(p, "learned-stream-bytes-per-second",
					    json_integer((json_int_t)learned.stream_bps));
			json_object_set_new(p, "learned-probe-bytes-per-second",
					    json_integer((json_int_t)learned.probe_bps));
		}
		if (rate.includes_switchover)
			json_object_set_new(p, "learned-switchover-ms",
					    json_integer((json_int_t)(rate.switchover_ms + 0.5)));
		json_object_set_new(p, "rate-bytes-per-second", json_integer((json_int_t)in.link_bps));
		json_object_set_new(p, "rate-source", json_string(predict_source_name(rate.source)));
	}
	if (!why[0] && predict_run(&in, &out) < 0)
		snprintf(why, sizeof(why), "the link carried nothing measurable");
	if (why[0]) {
		utf8_clean(why);
		json_object_set_new(p, "unavailable", json_string(why));
		log_move_event(LOG_INFO, &ev, "no prediction: %s", why);
		return p;
	}
	json_object_set_new(p, "disk-seconds", json_real(out.disk_seconds));
	json_object_set_new(p, "memory-seconds", json_real(out.memory_seconds));
	json_object_set_new(p, "total-seconds", json_real(out.total_seconds));
	json_object_set_new(p, "downtime-ms", json_integer((json_int_t)(out.downtime_ms + 0.5)));
	json_object_set_new(p, "passes", json_integer(out.passes));
	json_object_set_new(p, "converges", json_boolean(out.converges));
	json_object_set_new(p, "reason", json_string(out.reason));
	log_move_event(LOG_INFO, &ev,
		       "predicted %.1f s, downtime %.0f ms (link %.1f MiB/s, rate %.1f MiB/s, dirty %.1f MiB/s, "
		       "%.1f MiB to send, %s)",
		       out.total_seconds, out.downtime_ms, link / MIB, in.link_bps / MIB, dirty / MIB,
		       (double)in.first_pass_bytes / MIB,
		       out.converges ? "converges" : "does not converge");
	return p;
}

/* vm.compare: the VM is measured only while it runs and nothing else owns
 * it; it is marked "measuring" meanwhile, so that it cannot go away. */
json_t *move_predict_compare(struct move *m, const char *name, json_t *sizes)
{
	struct ferryd *d = m->d;
	struct vm *vm;
	json_t *p;

	pthread_mutex_lock(&d->lock);
	vm = vm_find(d, name);
	if (vm && (vm->busy || vm->incoming || strcmp(vm_state(vm), "running") != 0))
		vm = NULL;
	if (vm)
		vm->busy = "measuring";
	pthread_mutex_unlock(&d->lock);
	p = move_predict(m, vm, sizes);
	if (vm) {
		pthread_mutex_lock(&d->lock);
		vm->busy = NULL;
		pthread_mutex_unlock(&d->lock);
	}
	return p;
}
