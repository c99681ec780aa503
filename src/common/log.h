/* Logging: one line per event, with a level. On standard error, or, when
 * standard error is the systemd journal, in the journal with its priority
 * (and, for moves, structured fields). */
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERR };

/* Where a move event happened: any field may be 0 / NULL (left out). */
struct log_move {
	uint64_t job;      /* the job on this host; 0 for an incoming move */
	const char *vm;
	const char *peer;  /* the other host: the destination, or the source's address */
	const char *phase; /* the job's stage or the destination's step */
};

/* At start-up, before any thread: names the program and finds out whether
 * standard error is the journal (JOURNAL_STREAM, as systemd sets it). */
void log_setup(const char *ident);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* "error", "warning", "info", "debug" (what --log-level takes). */
int log_level_parse(const char *name, enum log_level *ret);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line for a step of a move: "job 12 vm web1 peer host2.example.com:
 * phase memory: MESSAGE"; in the journal also FERRY_JOB, FERRY_VM,
 * FERRY_PEER, FERRY_PHASE. */
void log_move_event(enum log_level level, const struct log_move *ev, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)

/* The pure parts, for the tests. */
/* The text of a move event, without level or program: see log_move_event. */
void log_format_move(char *buf, size_t len, const struct log_move *ev, const char *msg);
/* A line for standard error: "HH:MM:SS.mmm IDENT[PID]: LEVEL: TEXT\n" (UTC),
 * control characters of text replaced by blanks: one event, one line. */
void log_format_line(char *buf, size_t len, const struct timespec *ts, const char *ident, pid_t pid,
		     enum log_level level, const char *text);
/* Whether JOURNAL_STREAM's "DEV:INO" names the file standard error is. */
bool log_stream_is(const char *journal_stream, dev_t dev, ino_t ino);
