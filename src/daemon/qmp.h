/* QMP client: newline-delimited JSON over a unix socket to one QEMU.
 * Not thread-safe: callers serialize (struct vm.qmp_lock). */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define QMP_MAX_LINE (1024 * 1024)
#define QMP_EVENT_RING 64
#define QMP_DEFAULT_TIMEOUT_MS 30000

struct qmp;

/* Connects, reads the greeting and negotiates capabilities. */
int qmp_connect(const char *path, int timeout_ms, struct qmp **ret);
/* Same over an already connected stream socket (takes ownership of fd). */
int qmp_connect_fd(int fd, int timeout_ms, struct qmp **ret);
void qmp_close(struct qmp *q);

/* Runs cmd with args (borrowed; NULL for none). ret_return (optional) gets a
 * new reference to "return". -EIO with err = QEMU's description when QEMU
 * answers with an error; -ETIMEDOUT; -EPIPE/-EMSGSIZE/-EPROTO break the
 * connection (later calls fail with -ENOTCONN). */
int qmp_execute(struct qmp *q, const char *cmd, json_t *args, json_t **ret_return, char *err,
		size_t errlen);
int qmp_execute_timeout(struct qmp *q, const char *cmd, json_t *args, int timeout_ms,
			json_t **ret_return, char *err, size_t errlen);

/* An out-of-band command (exec-oob), answered by QEMU's monitor thread even
 * while its main loop is blocked; -ENOTSUP when not negotiated. */
int qmp_execute_oob(struct qmp *q, const char *cmd, json_t *args, int timeout_ms, char *err, size_t errlen);

/* Events that arrived while reading (the last QMP_EVENT_RING are kept).
 * take: removes the oldest event with that name; -ENOENT if none. */
int qmp_take_event(struct qmp *q, const char *name, json_t **ret_event);
/* Reads from QEMU until an event of that name arrives (or one is already kept). */
int qmp_wait_event(struct qmp *q, const char *name, int timeout_ms, json_t **ret_event);
/* Drops every kept event. */
void qmp_clear_events(struct qmp *q);
bool qmp_broken(const struct qmp *q);
