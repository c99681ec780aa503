/* Kerberos for the CLI: a remote ferryd on TCP (ferry -H HOST, sealed
 * messages, the user's tickets from kinit), and handing the user's identity
 * and forwarded TGT to the local ferryd (credssp). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gss.h"
#include "net.h"
#include "ops.h"
#include "util.h"

#define CONNECT_TIMEOUT_MS 10000

int remote_connect(struct cli *cli)
{
	struct gss_session *s = NULL;
	char err[1024];
	int fd, r;

	r = net_connect(cli->host, cli->port, CONNECT_TIMEOUT_MS, &fd, err, sizeof(err));
	if (r < 0) {
		print_error("unavailable", err, NULL);
		return r;
	}
	conn_init(&cli->conn, fd, PROTO_MAX_PREAUTH);
	r = gss_client_start(&cli->conn, cli->host, GSS_CRED_DEFAULT, NULL, false, &s, err, sizeof(err));
	if (r < 0) {
		print_error("unauthenticated", err, NULL);
		close(fd);
		return r;
	}
	gss_protect(s, &cli->conn);
	cli->gss = s;
	return 0;
}

void remote_close(struct cli *cli)
{
	gss_session_free(cli->gss);
	cli->gss = NULL;
}

/* The local ferryd runs as root. Only to it, or to a process of the user
 * (which can read the user's tickets anyway), does the CLI hand a ticket
 * and a forwarded TGT for the service that process names (review L16):
 * --socket or FERRY_SOCKET could point at anyone's socket. */
static int check_socket_owner(struct cli *cli, char *err, size_t errlen)
{
	uid_t uid;
	int r;

	if ((r = socket_peer_uid(cli->conn.fd, &uid)) < 0) {
		snprintf(err, errlen, "cannot tell who serves the control socket: %s", strerror(-r));
		return r;
	}
	if (uid != 0 && uid != geteuid()) {
		snprintf(err, errlen, "the control socket %s is served by uid %u, not by root: ferry gives Kerberos "
			 "credentials only to a ferryd that runs as root",
			 cli->socket ? cli->socket : "(default)", (unsigned)uid);
		return -EPERM;
	}
	return 0;
}

int cli_local_kerberos(struct cli *cli, char *err, size_t errlen)
{
	struct gss_session *s = NULL;
	json_t *reply = NULL, *res, *e;
	const char *host;
	char perr[256];
	bool delegate;
	int r;

	if (cli->host) {
		snprintf(err, errlen, "credentials can only be handed to the ferryd of this host: run ferry "
			 "on the source host without -H");
		return -EINVAL;
	}
	if (cli_connect(cli) < 0) {
		snprintf(err, errlen, "cannot reach the local ferryd");
		return -ENOTCONN;
	}
	if ((r = check_socket_owner(cli, err, errlen)) < 0)
		goto fail;
	r = conn_call(&cli->conn, OP_AUTH_KERBEROS, NULL, &reply);
	if (r < 0) {
		snprintf(err, errlen, "lost the connection to ferryd: %s", strerror(-r));
		goto fail;
	}
	res = json_object_get(reply, "result");
	if (!json_is_true(json_object_get(reply, "ok"))) {
		e = json_object_get(reply, "error");
		snprintf(err, errlen, "%s", jstr(e, "message") ? jstr(e, "message") : "ferryd refused auth.kerberos");
		json_decref(reply);
		return -EACCES;
	}
	host = json_string_value(json_object_get(res, "host"));
	/* credssp forwards the TGT; kerberos gives the ticket only, as evidence */
	delegate = jstr(res, "auth") && !strcmp(jstr(res, "auth"), "credssp");
	if (!host) {
		snprintf(err, errlen, "ferryd did not say its host name");
		r = -EPROTO;
		goto fail;
	}
	r = gss_client_start(&cli->conn, host, GSS_CRED_DEFAULT, NULL, delegate, &s, err, errlen);
	json_decref(reply);
	reply = NULL;
	if (r < 0)
		goto fail;
	gss_session_free(s); /* the local socket is not sealed */
	r = conn_recv(&cli->conn, &reply, perr, sizeof(perr));
	if (r < 0) {
		snprintf(err, errlen, "lost the connection to ferryd after authenticating: %s", perr);
		goto fail;
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		e = json_object_get(reply, "error");
		snprintf(err, errlen, "%s", jstr(e, "message") ? jstr(e, "message") : "ferryd refused the ticket");
		r = -EACCES;
		goto fail;
	}
	json_decref(reply);
	return 0;
fail:
	/* The daemon may be mid-handshake: drop the connection rather than
	 * leave it waiting for a token. */
	json_decref(reply);
	cli_close(cli);
	return r;
}
