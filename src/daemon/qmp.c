#include "qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

struct qmp {
	int fd;
	bool broken;
	char *buf;              /* received, not yet parsed bytes */
	size_t len;
	uint64_t next_id;
	bool oob;               /* out-of-band commands negotiated */
	json_t *events[QMP_EVENT_RING]; /* oldest at head */
	size_t ev_head, ev_count;
};

bool qmp_broken(const struct qmp *q) { return q->broken; }

static void event_push(struct qmp *q, json_t *ev)
{
	size_t slot;

	if (q->ev_count == QMP_EVENT_RING) {
		json_decref(q->events[q->ev_head]);
		q->events[q->ev_head] = NULL;
		q->ev_head = (q->ev_head + 1) % QMP_EVENT_RING;
		q->ev_count--;
	}
	slot = (q->ev_head + q->ev_count) % QMP_EVENT_RING;
	q->events[slot] = json_incref(ev);
	q->ev_count++;
}

int qmp_take_event(struct qmp *q, const char *name, json_t **ret_event)
{
	for (size_t i = 0; i < q->ev_count; i++) {
		size_t slot = (q->ev_head + i) % QMP_EVENT_RING;
		json_t *ev = q->events[slot];

		if (strcmp(json_string_value(json_object_get(ev, "event")), name) != 0)
			continue;
		/* close the gap by shifting the newer events down */
		for (size_t j = i; j + 1 < q->ev_count; j++)
			q->events[(q->ev_head + j) % QMP_EVENT_RING] =
				q->events[(q->ev_head + j + 1) % QMP_EVENT_RING];
		q->events[(q->ev_head + q->ev_count - 1) % QMP_EVENT_RING] = NULL;
		q->ev_count--;
		if (ret_event)
			*ret_event = ev;
		else
			json_decref(ev);
		return 0;
	}
	return -ENOENT;
}

void qmp_clear_events(struct qmp *q)
{
	json_t *ev;

	while (q->ev_count > 0 && (ev = q->events[q->ev_head])) {
		json_decref(ev);
		q->events[q->ev_head] = NULL;
		q->ev_head = (q->ev_head + 1) % QMP_EVENT_RING;
		q->ev_count--;
	}
	q->ev_head = 0;
	q->ev_count = 0;
}

static int fail(struct qmp *q, int r)
{
	if (r != -ETIMEDOUT && r != -EIO)
		q->broken = true;
	return r;
}

/* Reads one JSON object line, waiting until deadline (monotonic ms). */
static int read_msg(struct qmp *q, uint64_t deadline, json_t **ret)
{
	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
		struct pollfd pfd = {.fd = q->fd, .events = POLLIN};
		uint64_t now;
		ssize_t n;
		int pr;

		if (nl) {
			size_t linelen = (size_t)(nl - q->buf);
			json_error_t jerr;
			json_t *msg;

			bool blank = linelen == 0 || (linelen == 1 && q->buf[0] == '\r');

			msg = json_loadb(q->buf, linelen, JSON_REJECT_DUPLICATES, &jerr);
			memmove(q->buf, nl + 1, q->len - linelen - 1);
			q->len -= linelen + 1;
			if (!msg) {
				if (blank)
					continue;
				return fail(q, -EPROTO);
			}
			if (!json_is_object(msg)) {
				json_decref(msg);
				return fail(q, -EPROTO);
			}
			*ret = msg;
			return 0;
		}
		if (q->len >= QMP_MAX_LINE)
			return fail(q, -EMSGSIZE);
		now = now_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		pr = poll(&pfd, 1, (int)(deadline - now > 60000 ? 60000 : deadline - now));
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			return fail(q, -errno);
		}
		if (pr == 0)
			continue;
		n = read(q->fd, q->buf + q->len, QMP_MAX_LINE - q->len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return fail(q, -errno);
		}
		if (n == 0)
			return fail(q, -EPIPE);
		q->len += (size_t)n;
	}
}

static int send_msg(struct qmp *q, json_t *msg)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	size_t len;
	int r = 0;

	if (!s)
		return -ENOMEM;
	len = strlen(s);
	s[len] = 0;
	for (size_t off = 0; off <= len;) {
		/* the line then its newline; MSG_NOSIGNAL: a dead QEMU must not kill ferryd */
		const char *p = off < len ? s + off : "\n";
		size_t want = off < len ? len - off : 1;
		ssize_t w = send(q->fd, p, want, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			r = fail(q, -errno);
			break;
		}
		off += (size_t)w;
	}
	free(s);
	return r;
}

static int execute_how(struct qmp *q, const char *how, const char *cmd, json_t *args, int timeout_ms,
		       json_t **ret_return, char *err, size_t errlen);

static int execute(struct qmp *q, const char *cmd, json_t *args, int timeout_ms, json_t **ret_return,
		   char *err, size_t errlen)
{
	return execute_how(q, "execute", cmd, args, timeout_ms, ret_return, err, errlen);
}

int qmp_execute_oob(struct qmp *q, const char *cmd, json_t *args, int timeout_ms, char *err, size_t errlen)
{
	if (!q->oob) {
		snprintf(err, errlen, "QEMU offers no out-of-band commands");
		return -ENOTSUP;
	}
	return execute_how(q, "exec-oob", cmd, args, timeout_ms, NULL, err, errlen);
}

static int execute_how(struct qmp *q, const char *how, const char *cmd, json_t *args, int timeout_ms,
		       json_t **ret_return,
		   char *err, size_t errlen)
{
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : QMP_DEFAULT_TIMEOUT_MS);
	json_t *req, *msg = NULL;
	uint64_t id;
	int r;

	if (err && errlen)
		err[0] = 0;
	if (q->broken) {
		if (err)
			snprintf(err, errlen, "QMP connection to QEMU is closed");
		return -ENOTCONN;
	}
	id = ++q->next_id;
	req = json_pack("{s:s, s:I}", how, cmd, "id", (json_int_t)id);
	if (!req)
		return -ENOMEM;
	if (args)
		json_object_set(req, "arguments", args);
	r = send_msg(q, req);
	json_decref(req);
	if (r < 0)
		goto io_error;
	for (;;) {
		json_t *e, *jid;

		r = read_msg(q, deadline, &msg);
		if (r < 0)
			goto io_error;
		if (json_object_get(msg, "event")) {
			if (json_is_string(json_object_get(msg, "event")))
				event_push(q, msg);
			json_decref(msg);
			continue;
		}
		jid = json_object_get(msg, "id");
		if (!json_is_integer(jid) || (uint64_t)json_integer_value(jid) != id) {
			/* late answer to a command that timed out earlier */
			json_decref(msg);
			continue;
		}
		if ((e = json_object_get(msg, "error"))) {
			const char *desc = json_string_value(json_object_get(e, "desc"));
			if (err)
				snprintf(err, errlen, "%s", desc ? desc : "QEMU reported an error");
			json_decref(msg);
			return -EIO;
		}
		if (!json_object_get(msg, "return")) {
			json_decref(msg);
			continue;
		}
		if (ret_return)
			*ret_return = json_incref(json_object_get(msg, "return"));
		json_decref(msg);
		return 0;
	}
io_error:
	if (err) {
		if (r == -ETIMEDOUT)
			snprintf(err, errlen, "QEMU did not answer '%s' within %d s", cmd,
				 (timeout_ms > 0 ? timeout_ms : QMP_DEFAULT_TIMEOUT_MS) / 1000);
		else if (r == -EMSGSIZE)
			snprintf(err, errlen, "QEMU sent a QMP message larger than %d bytes", QMP_MAX_LINE);
		else if (r == -EPROTO)
			snprintf(err, errlen, "QEMU sent malformed QMP");
		else
			snprintf(err, errlen, "QMP connection to QEMU lost: %s", strerror(-r));
	}
	return r;
}

int qmp_execute(struct qmp *q, const char *cmd, json_t *args, json_t **ret_return, char *err, size_t errlen)
{
	return execute(q, cmd, args, QMP_DEFAULT_TIMEOUT_MS, ret_return, err, errlen);
}

int qmp_execute_timeout(struct qmp *q, const char *cmd, json_t *args, int timeout_ms, json_t **ret_return,
			char *err, size_t errlen)
{
	return execute(q, cmd, args, timeout_ms, ret_return, err, errlen);
}

int qmp_wait_event(struct qmp *q, const char *name, int timeout_ms, json_t **ret_event)
{
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);

	for (;;) {
		json_t *msg;
		int r;

		if (qmp_take_event(q, name, ret_event) == 0)
			return 0;
		if (q->broken)
			return -ENOTCONN;
		r = read_msg(q, deadline, &msg);
		if (r < 0)
			return r;
		if (json_is_string(json_object_get(msg, "event")))
			event_push(q, msg);
		json_decref(msg);
	}
}

int qmp_connect_fd(int fd, int timeout_ms, struct qmp **ret)
{
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : QMP_DEFAULT_TIMEOUT_MS);
	struct qmp *q;
	json_t *greeting = NULL;
	char err[256];
	int r;

	q = calloc(1, sizeof(*q));
	if (!q || !(q->buf = malloc(QMP_MAX_LINE))) {
		free(q);
		close(fd);
		return -ENOMEM;
	}
	q->fd = fd;
	r = read_msg(q, deadline, &greeting);
	if (r < 0)
		goto out;
	if (!json_object_get(greeting, "QMP")) {
		r = -EPROTO;
		goto out;
	}
	{
		/* out-of-band: commands like yank then run even while QEMU's main loop is stuck */
		json_t *caps = json_object_get(json_object_get(greeting, "QMP"), "capabilities"), *c, *args = NULL;
		size_t i;
		json_array_foreach(caps, i, c)
			if (json_is_string(c) && !strcmp(json_string_value(c), "oob"))
				args = json_pack("{s:[s]}", "enable", "oob");
		r = execute(q, "qmp_capabilities", args, timeout_ms, NULL, err, sizeof(err));
		q->oob = r == 0 && args;
		json_decref(args);
	}
	if (r < 0)
		goto out;
	*ret = q;
	q = NULL;
out:
	json_decref(greeting);
	qmp_close(q);
	return r;
}

int qmp_connect(const char *path, int timeout_ms, struct qmp **ret)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return qmp_connect_fd(fd, timeout_ms, ret);
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	qmp_clear_events(q);
	if (q->fd >= 0)
		close(q->fd);
	free(q->buf);
	free(q);
}
