/* The pre-copy model and the guest's resident memory (predict.h). */
#include "predict.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB 1048576.0
#define RAM_MAPPING_SLACK (4u << 20) /* QEMU may round the RAM mapping up to its alignment */

int predict_run(const struct predict_input *in, struct predict_result *ret)
{
	struct predict_result r = {0};
	double b = in->link_bps, d = in->dirty_bps, fits, send, dirty = 0;

	if (!isfinite(b) || !isfinite(d) || b <= 0 || d < 0 || in->max_passes < 1 ||
	    in->max_passes > PREDICT_PASSES_MAX)
		return -EINVAL;
	fits = b * in->downtime_limit_ms / 1000.0; /* what the link moves within the downtime limit */
	send = (double)(in->first_pass_bytes < in->memory_bytes ? in->first_pass_bytes : in->memory_bytes);
	r.disk_seconds = (double)in->disk_bytes / b;
	for (;;) {
		double t = send / b;
		r.memory_seconds += t;
		r.passes++;
		/* what the guest dirtied meanwhile; never more than all of its RAM */
		dirty = fmin(d * t, (double)in->memory_bytes);
		if (dirty <= fits) {
			r.converges = true;
			break;
		}
		if (r.passes >= in->max_passes)
			break;
		send = dirty;
	}
	r.last_dirty_bytes = (uint64_t)dirty;
	r.downtime_ms = dirty / b * 1000.0 + (isfinite(in->switchover_ms) && in->switchover_ms > 0 ? in->switchover_ms : 0);
	r.total_seconds = r.disk_seconds + r.memory_seconds +
			  (in->rate_includes_switchover ? dirty / b : r.downtime_ms / 1000.0);
	if (r.converges)
		snprintf(r.reason, sizeof(r.reason),
			 "the link (%.1f MiB/s) outpaces the guest's dirtying (%.1f MiB/s): after %" PRIu32
			 " pass(es) what is left (%.1f MiB) fits the downtime limit of %" PRIu32 " ms",
			 b / MIB, d / MIB, r.passes, dirty / MIB, in->downtime_limit_ms);
	else if (d >= b)
		snprintf(r.reason, sizeof(r.reason),
			 "the guest dirties memory (%.1f MiB/s) at least as fast as the link moves it (%.1f MiB/s): "
			 "the passes never shrink what is left, so ferry forces the switchover after max-passes %" PRIu32
			 ", with a pause of about %.1f s",
			 d / MIB, b / MIB, in->max_passes, r.downtime_ms / 1000.0);
	else
		snprintf(r.reason, sizeof(r.reason),
			 "after max-passes %" PRIu32 " passes %.1f MiB are still dirty, more than the link (%.1f MiB/s) "
			 "moves within the downtime limit of %" PRIu32 " ms: ferry forces the switchover, with a pause "
			 "of about %.1f s",
			 in->max_passes, dirty / MIB, b / MIB, in->downtime_limit_ms, r.downtime_ms / 1000.0);
	*ret = r;
	return 0;
}

int predict_learn(uint64_t bytes, double seconds, double downtime_ms, double model_last_set_ms, double probe_bps,
		  struct predict_learned *ret)
{
	if (!bytes || !isfinite(seconds) || !isfinite(downtime_ms) || downtime_ms < 0 || seconds <= downtime_ms / 1000.0)
		return -EINVAL;
	ret->stream_bps = (double)bytes / seconds;
	ret->probe_bps = isfinite(probe_bps) && probe_bps > 0 ? probe_bps : 0;
	ret->switchover_ms = fmax(0.0, downtime_ms - (isfinite(model_last_set_ms) ? model_last_set_ms : 0));
	return 0;
}

double predict_link_rate(double probe_bps, const struct predict_learned *l)
{
	double qemu_inv;

	if (!l || !isfinite(l->stream_bps) || l->stream_bps <= 0)
		return probe_bps;
	if (!(l->probe_bps > 0))
		return fmin(probe_bps, l->stream_bps);
	if (l->stream_bps >= l->probe_bps) /* compression */
		return fmin(l->stream_bps, l->stream_bps * probe_bps / l->probe_bps);
	/* 1/stream = 1/QEMU + 1/link: QEMU's own time per byte, then the link's */
	qemu_inv = 1.0 / l->stream_bps - 1.0 / l->probe_bps;
	return 1.0 / (qemu_inv + 1.0 / probe_bps);
}

void predict_learn_merge(const struct predict_learned *old, const struct predict_learned *add,
			 struct predict_learned *ret)
{
	struct predict_learned m = *add;

	if (old && old->stream_bps > 0 &&
	    !(old->probe_bps > 0 && add->probe_bps > 0 &&
	      (old->probe_bps > 2 * add->probe_bps || add->probe_bps > 2 * old->probe_bps))) {
		m.stream_bps = (old->stream_bps + add->stream_bps) / 2;
		m.switchover_ms = (old->switchover_ms + add->switchover_ms) / 2;
	}
	*ret = m;
}

const char *predict_source_name(enum predict_source s)
{
	static const char *const names[] = {
		[PREDICT_LEARNED] = "learned",
		[PREDICT_OTHER_HOST] = "other-host",
		[PREDICT_DEFAULT] = "default",
	};

	return (size_t)s < sizeof(names) / sizeof(names[0]) ? names[s] : "default";
}

void predict_rate_choose(double probe_bps, const struct predict_learned *same, const struct predict_learned *others,
			 size_t n, struct predict_rate *ret)
{
	struct predict_rate r = {0};

	if (same) {
		r.bps = predict_link_rate(probe_bps, same);
		r.switchover_ms = same->switchover_ms;
		r.includes_switchover = true;
		r.source = PREDICT_LEARNED;
	} else if (n) {
		for (size_t i = 0; i < n; i++) {
			r.bps += predict_link_rate(probe_bps, &others[i]) / (double)n;
			r.switchover_ms += others[i].switchover_ms / (double)n;
		}
		r.includes_switchover = true;
		r.source = PREDICT_OTHER_HOST;
	} else {
		/* as a stream learned without its probe: the slower of the two */
		const struct predict_learned qemu = {.stream_bps = PREDICT_QEMU_DEFAULT_BPS};
		r.bps = predict_link_rate(probe_bps, &qemu);
		r.source = PREDICT_DEFAULT;
	}
	*ret = r;
}

bool predict_page_zero(const uint8_t *page, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (page[i])
			return false;
	return true;
}

uint64_t predict_nonzero_bytes(uint64_t ram_bytes, uint32_t sampled, uint32_t nonzero)
{
	if (!sampled)
		return ram_bytes;
	if (nonzero > sampled)
		nonzero = sampled;
	return (uint64_t)((double)ram_bytes * nonzero / sampled);
}

/* "Name:   1234 kB" at line: the number, in bytes. */
static bool field_kb(const char *line, const char *end, const char *name, uint64_t *ret)
{
	size_t n = strlen(name);
	char num[24];
	size_t k = 0;

	if ((size_t)(end - line) <= n || strncmp(line, name, n) != 0)
		return false;
	for (line += n; line < end && *line == ' '; line++)
		;
	while (line < end && *line >= '0' && *line <= '9' && k < sizeof(num) - 1)
		num[k++] = *line++;
	num[k] = 0;
	if (k == 0 || k > 15) /* up to 999 TB: no overflow below */
		return false;
	*ret = strtoull(num, NULL, 10) * 1024;
	return true;
}

/* A mapping's header: "START-END PERMS OFFSET DEV INODE [PATH]". The guest
 * RAM is private, writable, not executable (the TCG code buffer is), anonymous. */
static bool anonymous_rw(const char *line, const char *end, uint64_t *ret_start)
{
	char perms[5] = "";
	unsigned long long inode = 1, start = 0;
	int path_at = -1;
	char copy[256];
	size_t n = (size_t)(end - line) < sizeof(copy) - 1 ? (size_t)(end - line) : sizeof(copy) - 1;

	memcpy(copy, line, n);
	copy[n] = 0;
	if (sscanf(copy, "%llx-%*[0-9a-f] %4s %*x %*x:%*x %llu %n", &start, perms, &inode, &path_at) < 3)
		return false;
	*ret_start = start;
	return strcmp(perms, "rw-p") == 0 && inode == 0 && (path_at < 0 || copy[path_at] == 0);
}

int predict_guest_ram(const char *smaps, size_t len, uint64_t ram_bytes, struct predict_ram *ret)
{
	const char *p = smaps, *end = smaps + len;
	bool candidate = false, found = false;
	uint64_t size = 0, v, start = 0, best_start = 0, best_size = 0, best_rss = 0;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		/* a header starts with a hex digit; fields with a capital letter */
		if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')) {
			candidate = anonymous_rw(p, eol, &start);
			size = 0;
		} else if (candidate && field_kb(p, eol, "Size:", &v)) {
			size = v;
		} else if (candidate && size && field_kb(p, eol, "Rss:", &v)) {
			if (size >= ram_bytes && size - ram_bytes <= RAM_MAPPING_SLACK && (!found || size < best_size)) {
				best_start = start;
				best_size = size;
				best_rss = v;
				found = true;
			}
			candidate = false;
		}
		p = eol + 1;
	}
	if (!found)
		return -ENOENT;
	ret->start = best_start;
	ret->size = best_size;
	ret->resident = best_rss < ram_bytes ? best_rss : ram_bytes;
	return 0;
}

int predict_guest_resident(const char *smaps, size_t len, uint64_t ram_bytes, uint64_t *ret_bytes)
{
	struct predict_ram ram;
	int r = predict_guest_ram(smaps, len, ram_bytes, &ram);

	if (r == 0)
		*ret_bytes = ram.resident;
	return r;
}
