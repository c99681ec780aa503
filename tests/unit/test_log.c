/* log.c: the text of a move event, the line on standard error, the level
 * filter and its names, the journal check; journal_send is wrapped
 * (-Wl,--wrap) so that no journal is needed. ferryd's option table has
 * --log-level. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ferryd.h"
#include "log.h"

/* what log.c handed to the journal; wrap_result is what the journal answers */
static struct {
	int calls, priority;
	char ident[32], message[4096], vm[64], peer[256], phase[32];
	uint64_t job;
} sent;
static int wrap_result;

int __wrap_journal_send(int priority, const char *ident, const char *message, uint64_t job, const char *vm,
			const char *peer, const char *phase);
int __wrap_journal_send(int priority, const char *ident, const char *message, uint64_t job, const char *vm,
			const char *peer, const char *phase)
{
	sent.calls++;
	sent.priority = priority;
	sent.job = job;
	snprintf(sent.ident, sizeof(sent.ident), "%s", ident);
	snprintf(sent.message, sizeof(sent.message), "%s", message);
	snprintf(sent.vm, sizeof(sent.vm), "%s", vm ? vm : "");
	snprintf(sent.peer, sizeof(sent.peer), "%s", peer ? peer : "");
	snprintf(sent.phase, sizeof(sent.phase), "%s", phase ? phase : "");
	return wrap_result;
}

static void move_text(void **state)
{
	char buf[256];

	(void)state;
	log_format_move(buf, sizeof(buf),
			&(struct log_move){.job = 12, .vm = "web1", .peer = "host2.lab.test", .phase = "memory"},
			"started");
	assert_string_equal(buf, "job 12 vm web1 peer host2.lab.test: phase memory: started");
	/* an incoming move has no job here; a local one no peer */
	log_format_move(buf, sizeof(buf), &(struct log_move){.vm = "web1", .peer = "10.77.0.11", .phase = "prepare"},
			"planned");
	assert_string_equal(buf, "vm web1 peer 10.77.0.11: phase prepare: planned");
	log_format_move(buf, sizeof(buf), &(struct log_move){.job = 3, .vm = "db", .peer = "", .phase = "storage"},
			"started");
	assert_string_equal(buf, "job 3 vm db: phase storage: started");
	log_format_move(buf, sizeof(buf), &(struct log_move){.phase = "abort"}, "x");
	assert_string_equal(buf, "phase abort: x");
	log_format_move(buf, sizeof(buf), &(struct log_move){0}, "just this");
	assert_string_equal(buf, "just this");
	/* cut to the buffer, never past it */
	log_format_move(buf, 10, &(struct log_move){.job = 123456, .vm = "web1"}, "started");
	assert_string_equal(buf, "job 12345");
}

static void stderr_line(void **state)
{
	struct timespec ts = {.tv_sec = 3600 * 24 * 365 + 3 * 3600 + 4 * 60 + 5, .tv_nsec = 678900000};
	char buf[128];

	(void)state;
	log_format_line(buf, sizeof(buf), &ts, "ferryd", 4242, LOG_WARN, "job 1 vm a: phase setup: failed");
	assert_string_equal(buf, "03:04:05.678 ferryd[4242]: warning: job 1 vm a: phase setup: failed\n");
	/* what came from elsewhere cannot start a second line */
	log_format_line(buf, sizeof(buf), &ts, "ferryd", 1, LOG_INFO, "vm evil\n03:04:05.678 ferryd[1]: error: x\r\t");
	assert_string_equal(buf, "03:04:05.678 ferryd[1]: info: vm evil 03:04:05.678 ferryd[1]: error: x  \n");
	/* a text too long is cut, and the line still ends */
	log_format_line(buf, 40, &ts, "ferryd", 1, LOG_ERR, "a very long message that does not fit at all");
	assert_int_equal(strlen(buf), 39);
	assert_memory_equal(buf, "03:04:05.678 ferryd[1]: error: a very ", 38);
	assert_int_equal(buf[38], '\n');
}

static void levels(void **state)
{
	static const char *const names[] = {"debug", "info", "warning", "error"};
	enum log_level l;

	(void)state;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(log_level_parse(names[i], &l), 0);
		assert_int_equal(l, (enum log_level)i);
		assert_string_equal(log_level_name(l), names[i]);
	}
	l = LOG_ERR;
	assert_int_equal(log_level_parse("warn", &l), -EINVAL);
	assert_int_equal(log_level_parse("INFO", &l), -EINVAL);
	assert_int_equal(log_level_parse("", &l), -EINVAL);
	assert_int_equal(log_level_parse("info ", &l), -EINVAL);
	assert_int_equal(l, LOG_ERR); /* untouched on failure */

	log_set_level(LOG_WARN);
	assert_false(log_enabled(LOG_DEBUG));
	assert_false(log_enabled(LOG_INFO));
	assert_true(log_enabled(LOG_WARN));
	assert_true(log_enabled(LOG_ERR));
	log_set_level(LOG_DEBUG);
	assert_true(log_enabled(LOG_DEBUG));
	log_set_level(LOG_INFO);
}

static void journal_stream(void **state)
{
	(void)state;
	assert_true(log_stream_is("8:1234", 8, 1234));
	assert_false(log_stream_is("8:1235", 8, 1234));
	assert_false(log_stream_is("9:1234", 8, 1234));
	assert_false(log_stream_is(NULL, 8, 1234));
	assert_false(log_stream_is("", 8, 1234));
	assert_false(log_stream_is("8:1234x", 8, 1234));
	assert_false(log_stream_is("8", 8, 1234));
}

/* Runs the log calls with standard error in a file; returns what they wrote. */
struct capture {
	int saved, fd;
	char path[64];
};

static void capture_start(struct capture *c)
{
	snprintf(c->path, sizeof(c->path), "/tmp/test_log.XXXXXX");
	c->fd = mkstemp(c->path);
	assert_true(c->fd >= 0);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_int_equal(dup2(c->fd, STDERR_FILENO), STDERR_FILENO);
}

static void capture_end(struct capture *c, char *buf, size_t len)
{
	ssize_t n;

	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	n = pread(c->fd, buf, len - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(c->fd);
	unlink(c->path);
}

static void filtered_lines_on_stderr(void **state)
{
	struct capture c;
	char out[4096], want[256];

	(void)state;
	unsetenv("JOURNAL_STREAM");
	sent.calls = 0;
	capture_start(&c);
	log_setup("ferryd");
	log_set_level(LOG_WARN);
	log_info("not shown");
	log_move_event(LOG_INFO, &(struct log_move){.job = 7, .vm = "web1", .phase = "setup"}, "not shown either");
	log_move_event(LOG_WARN, &(struct log_move){.job = 7, .vm = "web1", .peer = "host2", .phase = "memory"},
		       "failed: %s", "the network went away");
	log_err("plain %d", 1);
	log_set_level(LOG_INFO);
	capture_end(&c, out, sizeof(out));

	assert_int_equal(sent.calls, 0); /* not the journal */
	assert_null(strstr(out, "not shown"));
	snprintf(want, sizeof(want),
		 " ferryd[%ld]: warning: job 7 vm web1 peer host2: phase memory: failed: the network went away\n",
		 (long)getpid());
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, ": error: plain 1\n"));
	/* two events, two lines */
	assert_int_equal(strchr(strchr(out, '\n') + 1, '\n')[1], '\0');
}

/* Makes standard error, as it is now, the journal (wrapped) for log.c, or not. */
static void to_wrapped_journal(bool on)
{
	struct stat st;
	char env[64];

	if (on && fstat(STDERR_FILENO, &st) == 0) {
		snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
		setenv("JOURNAL_STREAM", env, 1);
	} else {
		unsetenv("JOURNAL_STREAM");
	}
	log_setup("ferryd");
	sent.calls = 0;
	wrap_result = 0;
}

static void journal_when_stderr_is_it(void **state)
{
	struct capture c;
	char out[4096];

	(void)state;
	capture_start(&c);
	to_wrapped_journal(true);
	log_move_event(LOG_WARN, &(struct log_move){.job = 12, .vm = "web1", .peer = "host2", .phase = "finish"},
		       "failed: %s", "gone");
	assert_int_equal(sent.calls, 1);
	assert_int_equal(sent.priority, 4);
	assert_string_equal(sent.ident, "ferryd");
	assert_string_equal(sent.message, "job 12 vm web1 peer host2: phase finish: failed: gone");
	assert_int_equal(sent.job, 12);
	assert_string_equal(sent.vm, "web1");
	assert_string_equal(sent.peer, "host2");
	assert_string_equal(sent.phase, "finish");
	log_info("a plain line");
	assert_int_equal(sent.calls, 2);
	assert_int_equal(sent.priority, 6);
	assert_int_equal(sent.job, 0);
	assert_string_equal(sent.vm, "");
	/* no journal after all (built without libsystemd): a "<N>" prefix on
	 * stderr, which journald reads as the priority */
	wrap_result = -ENOSYS;
	log_err("no journal %s", "here");
	capture_end(&c, out, sizeof(out));
	assert_string_equal(out, "<3>no journal here\n");
	to_wrapped_journal(false);
}

/* The destination's steps, from the request and its reply (move_log.c). */
static void incoming_steps(void **state)
{
	struct caller caller = {.addr = "10.77.0.11"};
	struct request req = {.op = "migrate.prepare", .caller = &caller};
	json_t *reply;

	(void)state;
	to_wrapped_journal(true);
	req.args = json_pack("{s:{s:s}}", "config", "name", "web1");
	reply = json_pack("{s:b, s:{s:s}}", "ok", 1, "result", "uri", "tcp:10.77.0.12:49152");
	incoming_log_step(&req, reply);
	assert_int_equal(sent.calls, 1);
	assert_int_equal(sent.priority, 6);
	assert_string_equal(sent.message,
			    "vm web1 peer 10.77.0.11: phase prepare: planned here, waiting for the migration at "
			    "tcp:10.77.0.12:49152");
	assert_int_equal(sent.job, 0);
	assert_string_equal(sent.vm, "web1");
	assert_string_equal(sent.peer, "10.77.0.11");
	assert_string_equal(sent.phase, "prepare");
	json_decref(reply);
	/* refused: a warning with the reason the source was given */
	reply = json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", "refused", "message",
			  "host2 cannot take the VM: not enough memory");
	incoming_log_step(&req, reply);
	assert_int_equal(sent.priority, 4);
	assert_string_equal(sent.message,
			    "vm web1 peer 10.77.0.11: phase prepare: refused: host2 cannot take the VM: not enough memory");
	json_decref(reply);
	json_decref(req.args);
	/* finish and abort name the VM themselves */
	req.op = "migrate.finish";
	req.args = json_pack("{s:s}", "name", "web1");
	reply = json_pack("{s:b}", "ok", 1);
	incoming_log_step(&req, reply);
	assert_string_equal(sent.message, "vm web1 peer 10.77.0.11: phase finish: arrived: runs here now");
	req.op = "migrate.abort";
	incoming_log_step(&req, reply);
	assert_string_equal(sent.phase, "abort");
	assert_int_equal(sent.calls, 4);
	json_decref(reply);
	json_decref(req.args);
	to_wrapped_journal(false);
}

static void option_table_has_log_level(void **state)
{
	const struct ferryd_opt *o = NULL;

	(void)state;
	for (size_t i = 0; i < ferryd_n_opts; i++)
		if (!strcmp(ferryd_opts[i].name, "log-level"))
			o = &ferryd_opts[i];
	assert_non_null(o);
	assert_string_equal(o->arg, "LEVEL");
	assert_true(o->flags & OPT_CMDLINE);
	assert_true(o->flags & OPT_CONF);
	/* the help names every level log_level_parse takes */
	for (enum log_level l = LOG_DEBUG; l <= LOG_ERR; l++)
		assert_non_null(strstr(o->help, log_level_name(l)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(move_text),
		cmocka_unit_test(stderr_line),
		cmocka_unit_test(levels),
		cmocka_unit_test(journal_stream),
		cmocka_unit_test(filtered_lines_on_stderr),
		cmocka_unit_test(journal_when_stderr_is_it),
		cmocka_unit_test(incoming_steps),
		cmocka_unit_test(option_table_has_log_level),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
