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

json_t *cli_call(struct cli *cli, const char *op, json_t *args)
{
	json_t *reply = NULL, *result = NULL, *err;
	char msg[256];
	int r;

	if (cli_connect(cli) < 0)
		goto out;
	r = conn_call(&cli->conn, op, args, &reply);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "lost the connection to ferryd during %s: %s", op, strerror(-r));
		print_error("unavailable", msg, NULL);
		goto out;
	}
	if (json_is_true(json_object_get(reply, "ok"))) {
		result = json_incref(json_object_get(reply, "result"));
		goto out;
	}
	err = json_object_get(reply, "error");
	if (cli->json) {
		char *s = json_dumps(reply, JSON_INDENT(2) | JSON_SORT_KEYS);
		fprintf(stdout, "%s\n", s ? s : "{}");
		free(s);
	}
	print_error(jstr(err, "code"), jstr(err, "message"), jstr(err, "hint"));
out:
	json_decref(args);
	json_decref(reply);
	return result;
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
