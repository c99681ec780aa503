/* Metrics: counters of moves, their Prometheus text exposition (format
 * 0.0.4), and the parsing of a request to the metrics endpoint. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

static const char *const kind_names[METRICS_KINDS] = {[METRICS_MOVE] = "move", [METRICS_MOVE_STORAGE] = "move-storage"};
/* The stages a job can fail at (job.c stage_names); anything else is "other". */
static const char *const stage_names[METRICS_STAGES] = {"queued", "setup",   "storage", "memory",
							"switchover", "cleanup", "other"};
static const uint64_t pause_bounds_ms[METRICS_PAUSE_BUCKETS] = {10, 25, 50, 100, 250, 500, 1000, 2500, 5000};

int metrics_kind(const char *kind)
{
	for (int i = 0; i < METRICS_KINDS; i++)
		if (!strcmp(kind, kind_names[i]))
			return i;
	return -1;
}

static int stage_index(const char *stage)
{
	for (int i = 0; i < METRICS_STAGES - 1; i++)
		if (!strcmp(stage, stage_names[i]))
			return i;
	return METRICS_STAGES - 1;
}

void metrics_started(struct metrics *m, const char *kind)
{
	int k = metrics_kind(kind);

	if (k >= 0)
		m->started[k]++;
}

void metrics_completed(struct metrics *m, const char *kind, uint64_t bytes, int64_t downtime_ms)
{
	int k = metrics_kind(kind), b = 0;

	if (k < 0)
		return;
	m->completed[k]++;
	m->bytes_sent += bytes;
	if (downtime_ms < 0)
		return;
	while (b < METRICS_PAUSE_BUCKETS && (uint64_t)downtime_ms > pause_bounds_ms[b])
		b++;
	m->pause[b]++;
	m->pause_count++;
	m->pause_sum_ms += (uint64_t)downtime_ms;
}

void metrics_failed(struct metrics *m, const char *kind, const char *stage, bool cancelled, uint64_t bytes)
{
	int k = metrics_kind(kind);

	if (k < 0)
		return;
	if (cancelled)
		m->cancelled[k]++;
	else
		m->failed[k][stage_index(stage)]++;
	m->bytes_sent += bytes;
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void per_kind(FILE *f, const char *name, const char *type, const char *help, const uint64_t v[METRICS_KINDS])
{
	head(f, name, type, help);
	for (int k = 0; k < METRICS_KINDS; k++)
		fprintf(f, "%s{kind=\"%s\"} %llu\n", name, kind_names[k], (unsigned long long)v[k]);
}

int metrics_render(const struct metrics *m, const struct metrics_now *now, char **ret_text, size_t *ret_len)
{
	uint64_t cumulative = 0;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	per_kind(f, "ferry_moves_started_total", "counter", "Moves that left the queue and began.", m->started);
	per_kind(f, "ferry_moves_completed_total", "counter", "Moves that completed.", m->completed);
	head(f, "ferry_moves_failed_total", "counter", "Moves that failed, by the stage they failed at.");
	for (int k = 0; k < METRICS_KINDS; k++)
		for (int s = 0; s < METRICS_STAGES; s++)
			fprintf(f, "ferry_moves_failed_total{kind=\"%s\",stage=\"%s\"} %llu\n", kind_names[k],
				stage_names[s], (unsigned long long)m->failed[k][s]);
	per_kind(f, "ferry_moves_cancelled_total", "counter", "Moves cancelled, queued or running.", m->cancelled);
	head(f, "ferry_move_bytes_sent_total", "counter",
	     "Memory and disk bytes sent to other hosts by moves, those under way included.");
	fprintf(f, "ferry_move_bytes_sent_total %llu\n", (unsigned long long)(m->bytes_sent + now->bytes_sending));
	head(f, "ferry_move_pause_seconds", "histogram", "Guest pause of completed moves (QEMU downtime).");
	for (int b = 0; b <= METRICS_PAUSE_BUCKETS; b++) {
		cumulative += m->pause[b];
		if (b < METRICS_PAUSE_BUCKETS)
			fprintf(f, "ferry_move_pause_seconds_bucket{le=\"%g\"} %llu\n",
				(double)pause_bounds_ms[b] / 1000.0, (unsigned long long)cumulative);
		else
			fprintf(f, "ferry_move_pause_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
	}
	fprintf(f, "ferry_move_pause_seconds_sum %.3f\n", (double)m->pause_sum_ms / 1000.0);
	fprintf(f, "ferry_move_pause_seconds_count %llu\n", (unsigned long long)m->pause_count);
	head(f, "ferry_moves_queued", "gauge", "Moves waiting in the queue for the host's limits.");
	fprintf(f, "ferry_moves_queued %u\n", now->queued);
	head(f, "ferry_moves_active", "gauge", "Moves under way: outgoing and local jobs, incoming planned VMs.");
	for (int k = 0; k < METRICS_KINDS; k++)
		fprintf(f, "ferry_moves_active{kind=\"%s\"} %u\n", kind_names[k], now->active[k]);
	fprintf(f, "ferry_moves_active{kind=\"incoming\"} %u\n", now->incoming);
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	*ret_text = text;
	*ret_len = len;
	return 0;
}

int metrics_parse_addr(const char *s, struct sockaddr_storage *ret_sa, socklen_t *ret_len)
{
	struct sockaddr_storage ss = {0};
	char host[INET6_ADDRSTRLEN];
	const char *end, *port;
	bool v6 = s[0] == '[';
	uint64_t p;

	if (v6) {
		end = strchr(s, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		s++;
		port = end + 2;
	} else {
		end = strchr(s, ':');
		if (!end || strchr(end + 1, ':'))
			return -EINVAL; /* an IPv6 address goes in brackets */
		port = end + 1;
	}
	if (end == s || (size_t)(end - s) >= sizeof(host) || parse_u64(port, 1, 65535, &p) < 0)
		return -EINVAL;
	memcpy(host, s, (size_t)(end - s));
	host[end - s] = 0;
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -EINVAL;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)p);
		*ret_len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -EINVAL;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)p);
		*ret_len = sizeof(*a);
	}
	*ret_sa = ss;
	return 0;
}

/* Printable ASCII and tab; CR only before LF, LF only after CR. */
static bool head_chars_ok(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c == '\r' ? i + 1 < len && buf[i + 1] != '\n' : c == '\n' ? i == 0 || buf[i - 1] != '\r'
								  : c != '\t' && (c < 0x20 || c > 0x7e))
			return false;
	}
	return true;
}

/* Header fields: "Name: value", a name of letters, digits and '-'. */
static bool headers_ok(const char *p, const char *end)
{
	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p)), *c = p;
		while (c < eol && (isalnum((unsigned char)*c) || *c == '-'))
			c++;
		if (c == p || c == eol || *c != ':')
			return false;
		p = eol + 2;
	}
	return true;
}

enum metrics_request metrics_parse_request(const char *buf, size_t len)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4), *sp1, *sp2, *eol;
	size_t n;

	if (!end)
		return len >= METRICS_REQ_MAX || !head_chars_ok(buf, len) ? METRICS_REQ_BAD : METRICS_REQ_INCOMPLETE;
	n = (size_t)(end - buf) + 4;
	if (n > METRICS_REQ_MAX || !head_chars_ok(buf, n))
		return METRICS_REQ_BAD;
	/* request line: METHOD SP TARGET SP HTTP/1.x */
	eol = memchr(buf, '\r', n);
	sp1 = memchr(buf, ' ', (size_t)(eol - buf));
	if (!sp1 || sp1 == buf)
		return METRICS_REQ_BAD;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (!sp2 || sp2 == sp1 + 1 || sp1[1] != '/' || memchr(sp1 + 1, '\t', (size_t)(sp2 - sp1 - 1)))
		return METRICS_REQ_BAD;
	if (eol - sp2 - 1 != 8 || (memcmp(sp2 + 1, "HTTP/1.0", 8) && memcmp(sp2 + 1, "HTTP/1.1", 8)))
		return METRICS_REQ_BAD;
	for (const char *c = buf; c < sp1; c++)
		if (*c < 'A' || *c > 'Z')
			return METRICS_REQ_BAD;
	if (eol + 2 < end + 2 && !headers_ok(eol + 2, end + 2))
		return METRICS_REQ_BAD;
	if (sp1 - buf != 3 || memcmp(buf, "GET", 3))
		return METRICS_REQ_BAD_METHOD;
	if (sp2 - sp1 - 1 != 8 || memcmp(sp1 + 1, "/metrics", 8))
		return METRICS_REQ_NOT_FOUND;
	return METRICS_REQ_OK;
}
