/* QMP client against a scripted fake QEMU on a socketpair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qmp.h"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7}}, \"capabilities\": [\"oob\"]}}\n"

/* A step: wait for a request line containing expect (NULL: none), then send reply.
 * "$ID" in reply is replaced by the request's id. */
struct step {
	const char *expect;
	const char *reply;
};

struct fake {
	int fd;
	const struct step *steps;
	size_t n;
	bool big;          /* send an oversized line after the greeting exchange */
};

static int read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;

	while (n + 1 < len) {
		ssize_t r = read(fd, buf + n, 1);
		if (r <= 0)
			return -1;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = 0;
	return 0;
}

static void send_reply(int fd, const char *reply, const char *req)
{
	const char *idp = strstr(req, "\"id\":");
	char id[32] = "0", out[4096];
	const char *mark = strstr(reply, "$ID");

	if (idp)
		snprintf(id, sizeof(id), "%ld", strtol(idp + 5, NULL, 10));
	if (mark)
		snprintf(out, sizeof(out), "%.*s%s%s", (int)(mark - reply), reply, id, mark + 3);
	else
		snprintf(out, sizeof(out), "%s", reply);
	if (write(fd, out, strlen(out)) < 0)
		return;
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	char line[8192] = "";

	if (write(f->fd, GREETING, strlen(GREETING)) < 0)
		return NULL;
	for (size_t i = 0; i < f->n; i++) {
		if (f->steps[i].expect) {
			if (read_line(f->fd, line, sizeof(line)) < 0)
				break;
			if (!strstr(line, f->steps[i].expect))
				break;
		}
		send_reply(f->fd, f->steps[i].reply, line);
	}
	if (f->big) {
		size_t n = QMP_MAX_LINE + 100;
		char *b = malloc(n);
		memset(b, 'x', n);
		b[0] = '{';
		ssize_t w = write(f->fd, b, n); /* the client gives up before reading it all */
		(void)w;
		free(b);
	}
	/* keep the socket open until the client closes it */
	while (read(f->fd, line, sizeof(line)) > 0)
		;
	close(f->fd);
	return NULL;
}

static const struct step caps = {"qmp_capabilities", "{\"return\": {}, \"id\": $ID}\n"};

static struct qmp *start(struct fake *f, pthread_t *th, const struct step *steps, size_t n)
{
	int sv[2];
	struct qmp *q = NULL;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->fd = sv[1];
	f->steps = steps;
	f->n = n;
	assert_int_equal(pthread_create(th, NULL, fake_main, f), 0);
	assert_int_equal(qmp_connect_fd(sv[0], 2000, &q), 0);
	return q;
}

static void test_return(void **state)
{
	const struct step steps[] = {
		caps,
		{"query-status", "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": $ID}\n"},
	};
	struct fake f = {0};
	pthread_t th;
	struct qmp *q = start(&f, &th, steps, 2);
	json_t *ret = NULL;
	char err[256];

	assert_int_equal(qmp_execute(q, "query-status", NULL, &ret, err, sizeof(err)), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")), "running");
	json_decref(ret);
	qmp_close(q);
	pthread_join(th, NULL);
}

static void test_error(void **state)
{
	const struct step steps[] = {
		caps,
		{"\"bogus\"", "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command bogus has not been found\"}, \"id\": $ID}\n"},
		{"query-name", "{\"return\": {}, \"id\": $ID}\n"},
	};
	struct fake f = {0};
	pthread_t th;
	struct qmp *q = start(&f, &th, steps, 3);
	json_t *ret = NULL;
	char err[256];

	assert_int_equal(qmp_execute(q, "bogus", NULL, &ret, err, sizeof(err)), -EIO);
	assert_null(ret);
	assert_string_equal(err, "The command bogus has not been found");
	/* the connection stays usable after a QMP error */
	assert_int_equal(qmp_execute(q, "query-name", NULL, NULL, err, sizeof(err)), 0);
	qmp_close(q);
	pthread_join(th, NULL);
}

static void test_events(void **state)
{
	const struct step steps[] = {
		caps,
		{"block-job-complete",
		 "{\"event\": \"JOB_STATUS_CHANGE\", \"data\": {\"status\": \"ready\"}}\n"
		 "{\"event\": \"BLOCK_JOB_READY\", \"data\": {\"device\": \"m0\"}}\n"
		 "{\"timestamp\": {\"seconds\": 1}, \"event\": \"BLOCK_JOB_READY\", \"data\": {\"device\": \"m1\"}}\n"
		 "{\"return\": {}, \"id\": $ID}\n"},
		{NULL, "{\"event\": \"MIGRATION\", \"data\": {\"status\": \"completed\"}}\n"},
	};
	struct fake f = {0};
	pthread_t th;
	struct qmp *q = start(&f, &th, steps, 3);
	json_t *args = json_pack("{s:s}", "device", "m0"), *ev = NULL;
	char err[256];

	assert_int_equal(qmp_execute(q, "block-job-complete", args, NULL, err, sizeof(err)), 0);
	json_decref(args);
	assert_int_equal(qmp_take_event(q, "BLOCK_JOB_READY", &ev), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "data"), "device")), "m0");
	json_decref(ev);
	assert_int_equal(qmp_take_event(q, "BLOCK_JOB_READY", &ev), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "data"), "device")), "m1");
	json_decref(ev);
	assert_int_equal(qmp_take_event(q, "BLOCK_JOB_READY", &ev), -ENOENT);
	/* an event that arrives without a command */
	assert_int_equal(qmp_wait_event(q, "MIGRATION", 2000, &ev), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "data"), "status")), "completed");
	json_decref(ev);
	assert_int_equal(qmp_take_event(q, "JOB_STATUS_CHANGE", NULL), 0);
	qmp_close(q);
	pthread_join(th, NULL);
}

static void test_stale_id_and_timeout(void **state)
{
	const struct step steps[] = {
		caps,
		{"slow", ""},   /* never answered in time */
		{"query-name", "{\"return\": {\"stale\": 1}, \"id\": 2}\n{\"return\": {\"name\": \"x\"}, \"id\": $ID}\n"},
	};
	struct fake f = {0};
	pthread_t th;
	struct qmp *q = start(&f, &th, steps, 3);
	json_t *ret = NULL;
	char err[256];

	assert_int_equal(qmp_execute_timeout(q, "slow", NULL, 200, NULL, err, sizeof(err)), -ETIMEDOUT);
	assert_non_null(strstr(err, "did not answer"));
	assert_int_equal(qmp_execute(q, "query-name", NULL, &ret, err, sizeof(err)), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "name")), "x");
	json_decref(ret);
	qmp_close(q);
	pthread_join(th, NULL);
}

static void test_event_ring_bounded(void **state)
{
	static char burst[200 * 64];
	struct step steps[2] = {caps, {"query-status", NULL}};
	struct fake f = {0};
	pthread_t th;
	size_t n = 0;
	struct qmp *q;
	json_t *ev = NULL;
	char err[256];
	int count = 0;

	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(burst + n, sizeof(burst) - n, "{\"event\": \"E\", \"data\": {\"i\": %d}}\n", i);
	snprintf(burst + n, sizeof(burst) - n, "{\"return\": {}, \"id\": $ID}\n");
	steps[1].reply = burst;
	q = start(&f, &th, steps, 2);
	assert_int_equal(qmp_execute(q, "query-status", NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(qmp_take_event(q, "E", &ev), 0);
	/* the oldest were dropped: the first kept is number 100 - QMP_EVENT_RING */
	assert_int_equal(json_integer_value(json_object_get(json_object_get(ev, "data"), "i")), 100 - QMP_EVENT_RING);
	json_decref(ev);
	while (qmp_take_event(q, "E", NULL) == 0)
		count++;
	assert_int_equal(count, QMP_EVENT_RING - 1);
	qmp_close(q);
	pthread_join(th, NULL);
}

static void test_oversized_line(void **state)
{
	const struct step steps[] = {caps};
	struct fake f = {.big = true};
	pthread_t th;
	struct qmp *q = start(&f, &th, steps, 1);
	char err[256];

	assert_int_equal(qmp_execute_timeout(q, "query-status", NULL, 5000, NULL, err, sizeof(err)), -EMSGSIZE);
	assert_true(qmp_broken(q));
	assert_int_equal(qmp_execute(q, "query-status", NULL, NULL, err, sizeof(err)), -ENOTCONN);
	qmp_close(q);
	pthread_join(th, NULL);
}

static void test_bad_greeting_and_eof(void **state)
{
	int sv[2];
	struct qmp *q = NULL;
	const char *junk = "{\"hello\": 1}\n";

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(write(sv[1], junk, strlen(junk)), (ssize_t)strlen(junk));
	assert_int_equal(qmp_connect_fd(sv[0], 1000, &q), -EPROTO);
	close(sv[1]);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	assert_int_equal(qmp_connect_fd(sv[0], 1000, &q), -EPIPE);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(qmp_connect_fd(sv[0], 200, &q), -ETIMEDOUT); /* silent QEMU */
	close(sv[1]);
	assert_null(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_return),
		cmocka_unit_test(test_error),
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_stale_id_and_timeout),
		cmocka_unit_test(test_event_ring_bounded),
		cmocka_unit_test(test_oversized_line),
		cmocka_unit_test(test_bad_greeting_and_eof),
	};
	signal(SIGPIPE, SIG_IGN); /* the fake QEMU writes to a client that gave up */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
