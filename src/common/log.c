#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>

/* Set once at start-up, read by every thread afterwards. */
static enum log_level min_level = LOG_INFO;
static const char *ident = "ferry";

void log_set_level(enum log_level level) { min_level = level; }
void log_set_ident(const char *name) { ident = name; }

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"debug", "info", "warning", "error"};
	char line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One fprintf per line so that threads do not interleave inside a line. */
	fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
		ts.tv_nsec / 1000000, ident, names[level], line);
}
