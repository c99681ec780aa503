/* The fake QEMU of the unit tests (fake_qemu.h). */
#include "fake_qemu.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qmp.h"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}}, \"capabilities\": [\"oob\"]}}\n"
#define MAX_FAKES 4

struct fake {
	struct vm *vm;
	int fd;
	fake_qemu_fn fn;
	pthread_t thread;
};

static struct fake fakes[MAX_FAKES];

static char *read_line(int fd)
{
	size_t n = 0, cap = 4096;
	char *buf = malloc(cap);

	while (buf) {
		ssize_t r = read(fd, buf + n, 1);
		if (r <= 0) {
			free(buf);
			return NULL;
		}
		if (buf[n] == '\n') {
			buf[n] = 0;
			return buf;
		}
		if (++n == cap) {
			char *more = realloc(buf, cap *= 2);
			if (!more)
				free(buf);
			buf = more;
		}
	}
	return NULL;
}

static int send_msg(int fd, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	size_t len = text ? strlen(text) : 0;
	int r = 0;

	if (!text || write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1)
		r = -1;
	free(text);
	json_decref(msg);
	return r;
}

static void *serve(void *arg)
{
	struct fake *f = arg;
	char *line;

	if (write(f->fd, GREETING, strlen(GREETING)) < 0)
		return NULL;
	while ((line = read_line(f->fd))) {
		json_t *req = json_loads(line, 0, NULL), *ret = NULL, *id, *reply;
		const char *cmd = json_string_value(json_object_get(req, "execute"));
		char err[512] = "";
		int r = 0;

		free(line);
		if (!cmd)
			cmd = json_string_value(json_object_get(req, "exec-oob"));
		id = json_object_get(req, "id");
		if (cmd && strcmp(cmd, "qmp_capabilities") != 0)
			r = f->fn(cmd, json_object_get(req, "arguments"), &ret, err, sizeof(err));
		if (r < 0)
			reply = json_pack("{s:{s:s, s:s}, s:O*}", "error", "class", "GenericError", "desc", err, "id", id);
		else
			reply = json_pack("{s:o, s:O*}", "return", ret ? ret : json_object(), "id", id);
		json_decref(req);
		if (send_msg(f->fd, reply) < 0)
			break;
	}
	return NULL;
}

int fake_qemu_start(struct vm *vm, const char *name, fake_qemu_fn fn)
{
	struct fake *f = NULL;
	int sv[2], r;

	for (size_t i = 0; i < MAX_FAKES && !f; i++)
		if (!fakes[i].vm)
			f = &fakes[i];
	if (!f)
		return -ENOSPC;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	*f = (struct fake){.vm = vm, .fd = sv[1], .fn = fn};
	if ((r = pthread_create(&f->thread, NULL, serve, f)) != 0) {
		close(sv[0]);
		close(sv[1]);
		f->vm = NULL;
		return -r;
	}
	vm->config = json_pack("{s:s, s:s}", "name", name, "id", "0b7e3c52-6f0a-4d7e-9a51-2c3d4e5f6a7b");
	pthread_mutex_init(&vm->qmp_lock, NULL);
	return qmp_connect_fd(sv[0], 5000, &vm->qmp);
}

void fake_qemu_stop(struct vm *vm)
{
	for (size_t i = 0; i < MAX_FAKES; i++) {
		struct fake *f = &fakes[i];
		if (f->vm != vm)
			continue;
		qmp_close(vm->qmp); /* the thread reads EOF and ends */
		vm->qmp = NULL;
		pthread_join(f->thread, NULL);
		close(f->fd);
		pthread_mutex_destroy(&vm->qmp_lock);
		json_decref(vm->config);
		vm->config = NULL;
		f->vm = NULL;
	}
}
