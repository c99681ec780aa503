/* Metrics for Prometheus: the counters ferryd keeps about its moves (in
 * struct ferryd, under its lock), their text exposition, and the strict
 * parsing of the one request the metrics endpoint answers. Pure functions:
 * no locks, no sockets (metrics_server.c has those). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Label values are fixed sets, never text from a request or an error. */
enum metrics_kind { METRICS_MOVE, METRICS_MOVE_STORAGE, METRICS_KINDS };
/* Failed moves by the stage they failed at (the last one is "other"). */
#define METRICS_STAGES 7
/* Guest pause of completed moves, upper bounds in ms (+Inf follows). */
#define METRICS_PAUSE_BUCKETS 9

struct metrics {
	uint64_t started[METRICS_KINDS];   /* left the queue */
	uint64_t completed[METRICS_KINDS];
	uint64_t cancelled[METRICS_KINDS]; /* queued or running */
	uint64_t failed[METRICS_KINDS][METRICS_STAGES];
	uint64_t bytes_sent;               /* memory + disk of the moves that ended */
	uint64_t pause[METRICS_PAUSE_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
	uint64_t pause_count;
	uint64_t pause_sum_ms;
};

/* What is under way when the metrics are read. */
struct metrics_now {
	uint64_t bytes_sending;            /* memory + disk sent so far by moves under way */
	unsigned queued;
	unsigned active[METRICS_KINDS];    /* running jobs */
	unsigned incoming;                 /* planned VMs: moves coming to this host */
};

/* The index of a job's kind, or -1 for a kind not counted. */
int metrics_kind(const char *kind);
/* kind: a job's kind ("move", "move-storage"); other kinds are not counted. */
void metrics_started(struct metrics *m, const char *kind);
/* downtime_ms < 0: QEMU reported none (not observed). */
void metrics_completed(struct metrics *m, const char *kind, uint64_t bytes, int64_t downtime_ms);
/* stage: the stage name it failed at (job_stage_name). */
void metrics_failed(struct metrics *m, const char *kind, const char *stage, bool cancelled, uint64_t bytes);

/* The text exposition format 0.0.4 of m and now, NUL-terminated, malloc'ed. */
int metrics_render(const struct metrics *m, const struct metrics_now *now, char **ret_text, size_t *ret_len);

/* "A.B.C.D:PORT" or "[IPv6]:PORT", literal addresses only, port 1..65535. */
int metrics_parse_addr(const char *s, struct sockaddr_storage *ret_sa, socklen_t *ret_len);

/* The request head, headers and blank line included, is at most this long. */
#define METRICS_REQ_MAX 4096

enum metrics_request {
	METRICS_REQ_INCOMPLETE,  /* no blank line yet: read on */
	METRICS_REQ_OK,          /* GET /metrics */
	METRICS_REQ_NOT_FOUND,   /* GET of another path */
	METRICS_REQ_BAD_METHOD,  /* another method */
	METRICS_REQ_BAD,         /* not HTTP/1.x, bad characters, or too long */
};

/* Reads the len bytes received so far of a request. */
enum metrics_request metrics_parse_request(const char *buf, size_t len);
