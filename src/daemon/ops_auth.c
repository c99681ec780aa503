/* auth.kerberos: a user on this host hands their Kerberos identity, and
 * usually their forwarded TGT (credssp), to ferryd over the local socket.
 *
 * The reply {"service": "ferry@FQDN", "host": FQDN, "auth": "credssp" or
 * "kerberos"} is followed by a GSS handshake in raw
 * frames (gss.h), then a second reply with the outcome. Later requests on
 * the connection carry the principal and credential; they are not sealed,
 * the unix socket being private to the two ends. Open to every local user:
 * each later request is authorized as usual (dispatch). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ferryd.h"
#include "gss.h"
#include "log.h"
#include "ops.h"
#include "settings.h"

static json_t *op_auth_kerberos(struct request *req)
{
	struct ferryd *d = req->d;
	struct caller *c = req->caller;
	struct gss_session *gs = NULL;
	char principal[sizeof(c->principal)], err[1024], pub[512], auth[16];
	void *cred = NULL;
	bool forwarded = false;
	json_t *go;
	int r;

	if (c->principal[0])
		return reply_error("bad_request", "open a new connection to authenticate again",
				   "this connection is already authenticated as %s", c->principal);
	/* auth tells the CLI whether to forward the TGT (credssp): not a secret,
	 * and host.show is for administrators only */
	pthread_mutex_lock(&d->lock);
	snprintf(auth, sizeof(auth), "%s", settings_str(d->settings, "auth"));
	pthread_mutex_unlock(&d->lock);
	go = reply_ok(json_pack("{s:s+, s:s, s:s}", "service", "ferry@", d->host_name, "host", d->host_name, "auth",
				auth));
	r = conn_send(req->conn, go);
	json_decref(go);
	if (r < 0)
		return reply_error("unavailable", NULL, "cannot answer: %s", strerror(-r));
	r = gss_server_accept(req->conn, d->keytab[0] ? d->keytab : NULL, d->host_name, &gs, principal,
			      sizeof(principal), &cred, &forwarded, err, sizeof(err), pub, sizeof(pub));
	if (r < 0) {
		log_info(OP_AUTH_KERBEROS " from uid %u refused: %s", (unsigned)c->uid, err);
		return reply_error("unauthenticated", NULL, "%s", pub);
	}
	snprintf(c->principal, sizeof(c->principal), "%s", principal);
	caller_load_groups(c, gs);
	/* Only the identity, its groups and the credential matter here: no sealing. */
	gss_session_free(gs);
	gss_cred_free(c->deleg_cred);
	c->deleg_cred = cred;
	c->forwarded = forwarded;
	log_info("uid %u authenticated as %s%s, %zu group SIDs", (unsigned)c->uid, principal,
		 !cred ? "" : forwarded ? " (forwarded ticket)" : " (delegable ticket)", c->n_group_sids);
	return reply_ok(json_pack("{s:s, s:b, s:b}", "principal", principal, "forwarded", forwarded,
				  "delegable", cred != NULL));
}

const struct op_def auth_ops[] = {
	{OP_AUTH_KERBEROS, op_auth_kerberos, OP_LOCAL},
	{NULL, NULL, 0},
};
