/* Connecting to ferryd: the local unix socket, or a remote host on TCP 6600
 * with Kerberos (see remote.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

int remote_connect(struct cli *cli);
void remote_close(struct cli *cli);

static int local_connect(struct cli *cli)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", cli->socket) >= sizeof(sa.sun_path)) {
		print_error("invalid", "control socket path too long", NULL);
		return -ENAMETOOLONG;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		char msg[512];
		int e = errno;
		snprintf(msg, sizeof(msg), "cannot reach ferryd at %s: %s", cli->socket, strerror(e));
		print_error("unavailable", msg,
			    e == ENOENT || e == ECONNREFUSED
				    ? "is ferryd running? (systemctl start ferryd, or --socket PATH / FERRY_SOCKET)"
				    : NULL);
		if (fd >= 0)
			close(fd);
		return -e;
	}
	conn_init(&cli->conn, fd, PROTO_MAX_MSG);
	return 0;
}

int cli_connect(struct cli *cli)
{
	int r;

	if (cli->connected)
		return 0;
	r = cli->host ? remote_connect(cli) : local_connect(cli);
	if (r == 0)
		cli->connected = true;
	return r;
}

int cli_try_call(struct cli *cli, const char *op, json_t *args, json_t **ret_result, json_t **ret_error)
{
	json_t *reply = NULL;
	char msg[256];
	int r;

	*ret_result = *ret_error = NULL;
	if (cli_connect(cli) < 0) {
		json_decref(args);
		*ret_error = json_pack("{s:s, s:s}", "code", "unavailable", "message", "cannot reach ferryd");
		return -1;
	}
	r = conn_call(&cli->conn, op, args, &reply);
	json_decref(args);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "lost the connection to ferryd during %s: %s", op, strerror(-r));
		*ret_error = json_pack("{s:s, s:s}", "code", "unavailable", "message", msg);
		return -1;
	}
	if (json_is_true(json_object_get(reply, "ok"))) {
		*ret_result = json_incref(json_object_get(reply, "result"));
		json_decref(reply);
		return 0;
	}
	*ret_error = json_incref(json_object_get(reply, "error"));
	if (!*ret_error)
		*ret_error = json_pack("{s:s, s:s}", "code", "failed", "message", "ferryd answered with no error");
	json_decref(reply);
	return -1;
}

json_t *cli_call(struct cli *cli, const char *op, json_t *args)
{
	json_t *result = NULL, *err = NULL;

	if (cli_try_call(cli, op, args, &result, &err) == 0)
		return result;
	/* a connection that failed was reported by cli_connect already */
	if (!cli->connected)
		goto out;
	/* the daemon's own answer goes to stdout too; "unavailable" is ours */
	if (cli->json && strcmp(jstr(err, "code"), "unavailable") != 0) {
		json_t *reply = json_pack("{s:b, s:O}", "ok", 0, "error", err);
		char *s = reply ? json_dumps(reply, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
		fprintf(stdout, "%s\n", s ? s : "{}");
		free(s);
		json_decref(reply);
	}
	print_error(jstr(err, "code"), jstr(err, "message"), jstr(err, "hint"));
out:
	json_decref(err);
	return NULL;
}

void cli_close(struct cli *cli)
{
	if (!cli->connected)
		return;
	if (cli->host)
		remote_close(cli);
	close(cli->conn.fd);
	cli->connected = false;
}
