#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "util.h"

/* Set once at start-up, read by every thread afterwards. */
static enum log_level min_level = LOG_INFO;
static const char *ident = "ferry";
static bool to_journal; /* standard error is the journal */

static const char *const level_names[] = {
	[LOG_DEBUG] = "debug", [LOG_INFO] = "info", [LOG_WARN] = "warning", [LOG_ERR] = "error"};
/* syslog's priorities (<syslog.h> cannot be included beside log.h) */
static const int level_priority[] = {[LOG_DEBUG] = 7, [LOG_INFO] = 6, [LOG_WARN] = 4, [LOG_ERR] = 3};

void log_set_level(enum log_level level) { min_level = level; }

bool log_enabled(enum log_level level) { return level >= min_level; }

const char *log_level_name(enum log_level level) { return level_names[level]; }

int log_level_parse(const char *name, enum log_level *ret)
{
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
		if (!strcmp(name, level_names[i])) {
			*ret = (enum log_level)i;
			return 0;
		}
	return -EINVAL;
}

bool log_stream_is(const char *journal_stream, dev_t dev, ino_t ino)
{
	unsigned long long d, i;
	int end = 0;

	if (!journal_stream || sscanf(journal_stream, "%llu:%llu%n", &d, &i, &end) != 2 ||
	    journal_stream[end] != '\0')
		return false;
	return d == (unsigned long long)dev && i == (unsigned long long)ino;
}

void log_setup(const char *name)
{
	struct stat st;

	ident = name;
	/* systemd sets JOURNAL_STREAM to the device and inode of the stream it
	 * connected; if standard error is still that stream (not redirected by
	 * a wrapper), lines go to the journal with their priority. */
	to_journal = fstat(STDERR_FILENO, &st) == 0 && log_stream_is(getenv("JOURNAL_STREAM"), st.st_dev, st.st_ino);
}

void log_format_move(char *buf, size_t len, const struct log_move *ev, const char *msg)
{
	size_t n = 0;

#define ADD(...)                                                                  \
	do {                                                                      \
		if (n < len)                                                      \
			n += (size_t)snprintf(buf + n, len - n, __VA_ARGS__);     \
	} while (0)

	if (!len)
		return;
	buf[0] = '\0';
	if (ev->job)
		ADD("job %" PRIu64, ev->job);
	if (ev->vm && *ev->vm)
		ADD("%svm %s", n ? " " : "", ev->vm);
	if (ev->peer && *ev->peer)
		ADD("%speer %s", n ? " " : "", ev->peer);
	if (ev->phase && *ev->phase)
		ADD("%sphase %s", n ? ": " : "", ev->phase);
	ADD("%s%s", n ? ": " : "", msg);
#undef ADD
}

/* Replaces control characters by blanks: a name or a message from the
 * network cannot make a line that looks like another event. */
static void one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

void log_format_line(char *buf, size_t len, const struct timespec *ts, const char *name, pid_t pid,
		     enum log_level level, const char *text)
{
	struct tm tm;
	int n;

	gmtime_r(&ts->tv_sec, &tm);
	n = snprintf(buf, len, "%02d:%02d:%02d.%03ld %s[%ld]: %s: ", tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts->tv_nsec / 1000000, name, (long)pid, level_names[level]);
	if (n < 0 || (size_t)n >= len)
		return;
	snprintf(buf + n, len - (size_t)n, "%s", text);
	one_line(buf + n);
	/* the newline, even when the text was cut */
	n = (int)strlen(buf);
	if ((size_t)n + 1 < len)
		buf[n++] = '\n', buf[n] = '\0';
	else
		buf[len - 2] = '\n';
}

/* One event, one write(2) (not stdio, which may split it): threads do not
 * interleave inside a line. */
static void write_line(const char *line)
{
	size_t len = strlen(line);
	ssize_t n;

	while (len > 0) {
		n = write(STDERR_FILENO, line, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		line += n;
		len -= (size_t)n;
	}
}

static void emit(enum log_level level, const struct log_move *ev, char *text)
{
	static const struct log_move none = {0};
	struct timespec ts;
	char line[4096];

	if (!ev)
		ev = &none;
	one_line(text);
	if (to_journal) {
		if (journal_send(level_priority[level], ident, text, ev->job, ev->vm, ev->peer, ev->phase) == 0)
			return;
		/* without libsystemd: journald reads the priority from a "<N>" prefix
		 * and adds the time and program itself */
		snprintf(line, sizeof(line), "<%d>%s\n", level_priority[level], text);
		write_line(line);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	log_format_line(line, sizeof(line), &ts, ident, getpid(), level, text);
	write_line(line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char text[2048];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	emit(level, NULL, text);
}

void log_move_event(enum log_level level, const struct log_move *ev, const char *fmt, ...)
{
	char msg[2048], text[3072];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_format_move(text, sizeof(text), ev, msg);
	emit(level, ev, text);
}
