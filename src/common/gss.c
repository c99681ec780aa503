/* Kerberos authentication of ferry connections with MIT GSSAPI: the
 * handshake, client and server, and the per-message sealing after it.
 * Credentials are in gss_cred.c, the plain-words errors in gss_errors.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>

#include "gss.h"
#include "gss_internal.h"
#include "pac.h"

#define WANT_FLAGS (GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG | GSS_C_MUTUAL_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_REPLAY_FLAG)
#define NEED_FLAGS (GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG | GSS_C_MUTUAL_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_REPLAY_FLAG)

struct gss_session {
	gss_ctx_id_t ctx;
	gss_name_t peer;      /* acceptor: the client's name, with its PAC attributes */
};

/* Socket timeouts bounding the handshake; put back afterwards. */
struct saved_timeouts {
	struct timeval rcv, snd;
	bool ok;
};

static void timeouts_set(int fd, struct saved_timeouts *s)
{
	struct timeval tv = {.tv_sec = GSS_HANDSHAKE_TIMEOUT_S};
	socklen_t len = sizeof(s->rcv);

	s->ok = getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &s->rcv, &len) == 0 &&
		(len = sizeof(s->snd), getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &s->snd, &len) == 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void timeouts_restore(int fd, const struct saved_timeouts *s)
{
	struct timeval zero = {0};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, s->ok ? &s->rcv : &zero, sizeof(zero));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, s->ok ? &s->snd : &zero, sizeof(zero));
}

static void io_error(char *err, size_t errlen, int r, const char *peer)
{
	if (r == -EAGAIN || r == -EWOULDBLOCK)
		snprintf(err, errlen, "%s did not go on with the Kerberos handshake within %d s", peer,
			 GSS_HANDSHAKE_TIMEOUT_S);
	else if (r == -EPIPE || r == -ECONNRESET)
		snprintf(err, errlen, "%s closed the connection during the Kerberos handshake", peer);
	else if (r == -EBADMSG || r == -EMSGSIZE)
		snprintf(err, errlen, "%s does not speak the ferry protocol (version %d) or sent an oversized "
			 "token", peer, PROTO_VERSION);
	else
		snprintf(err, errlen, "connection to %s failed during the Kerberos handshake: %s", peer,
			 strerror(-r));
}

/* Client: the next token from the server, or its refusal. */
static int recv_token(int fd, const char *host, uint8_t **ret, size_t *ret_len, char *err, size_t errlen)
{
	json_t *msg = NULL, *e;
	uint8_t *buf;
	size_t len;
	char perr[128];
	int r;

	r = frame_recv(fd, PROTO_MAX_PREAUTH, &buf, &len);
	if (r < 0) {
		io_error(err, errlen, r, host);
		return r;
	}
	if (buf[0] != '{') {
		*ret = buf;
		*ret_len = len;
		return 0;
	}
	if (proto_parse(buf, len, &msg, perr, sizeof(perr)) < 0) {
		snprintf(err, errlen, "%s sent a malformed refusal: %s", host, perr);
		r = -EBADMSG;
	} else {
		const char *m, *h;
		e = json_object_get(msg, "error");
		m = json_string_value(json_object_get(e, "message"));
		h = json_string_value(json_object_get(e, "hint"));
		snprintf(err, errlen, "%s refused the connection: %s%s%s", host, m ? m : "no reason given",
			 h ? ": " : "", h ? h : "");
		r = -EACCES;
	}
	json_decref(msg);
	free(buf);
	return r;
}

static int import_service(const char *host_fqdn, gss_name_t *ret)
{
	char svc[300];
	gss_buffer_desc b;
	OM_uint32 maj, min;

	if ((size_t)snprintf(svc, sizeof(svc), "ferry@%s", host_fqdn) >= sizeof(svc))
		return -ENAMETOOLONG;
	b.value = svc;
	b.length = strlen(svc);
	maj = gss_import_name(&min, &b, GSS_C_NT_HOSTBASED_SERVICE, ret);
	return GSS_ERROR(maj) ? -EINVAL : 0;
}

void display_name(gss_name_t n, char *buf, size_t len)
{
	gss_buffer_desc b;
	OM_uint32 min;

	buf[0] = '\0';
	if (GSS_ERROR(gss_display_name(&min, n, &b, NULL)))
		return;
	snprintf(buf, len, "%.*s", (int)b.length, (char *)b.value);
	gss_release_buffer(&min, &b);
}

/* A GSS output buffer as a malloc'd copy that proto.c frees. */
static int copy_out(const gss_buffer_desc *ob, uint8_t **ret, size_t *ret_len)
{
	*ret = malloc(ob->length ? ob->length : 1);
	if (!*ret)
		return -ENOMEM;
	memcpy(*ret, ob->value, ob->length);
	*ret_len = ob->length;
	return 0;
}

static int sec_wrap(void *ctx, const uint8_t *in, size_t len, uint8_t **ret, size_t *ret_len)
{
	struct gss_session *s = ctx;
	gss_buffer_desc ib = {len, (void *)in}, ob = GSS_C_EMPTY_BUFFER;
	OM_uint32 maj, min;
	int conf = 0, r = 0;

	maj = gss_wrap(&min, s->ctx, 1, GSS_C_QOP_DEFAULT, &ib, &conf, &ob);
	if (GSS_ERROR(maj))
		return -EIO;
	r = conf ? copy_out(&ob, ret, ret_len) : -EPROTO;
	gss_release_buffer(&min, &ob);
	return r;
}

/* Refuses anything but a sealed message in sequence (GSS_S_COMPLETE without
 * supplementary bits: no duplicate, old, gap or out-of-order token). */
static int sec_unwrap(void *ctx, const uint8_t *in, size_t len, uint8_t **ret, size_t *ret_len)
{
	struct gss_session *s = ctx;
	gss_buffer_desc ib = {len, (void *)in}, ob = GSS_C_EMPTY_BUFFER;
	OM_uint32 maj, min;
	gss_qop_t qop;
	int conf = 0, r = 0;

	maj = gss_unwrap(&min, s->ctx, &ib, &ob, &conf, &qop);
	r = maj == GSS_S_COMPLETE && conf ? copy_out(&ob, ret, ret_len) : -EBADMSG;
	gss_release_buffer(&min, &ob);
	return r;
}

static const struct sec_ops gss_sec_ops = {.wrap = sec_wrap, .unwrap = sec_unwrap};

void gss_protect(struct gss_session *s, struct conn *conn)
{
	conn->sec = &gss_sec_ops;
	conn->sec_ctx = s;
	conn->max_msg = GSS_MAX_WRAPPED;
}

int gss_client_start(struct conn *conn, const char *host_fqdn, enum gss_cred_kind kind, void *cred,
		     bool delegate, struct gss_session **ret, char *err, size_t errlen)
{
	OM_uint32 maj, min, flags = 0, req = WANT_FLAGS | (delegate ? GSS_C_DELEG_FLAG : 0);
	gss_cred_id_t own = GSS_C_NO_CREDENTIAL, use;
	gss_name_t target = GSS_C_NO_NAME;
	gss_buffer_desc in = GSS_C_EMPTY_BUFFER, out = GSS_C_EMPTY_BUFFER;
	struct gss_cred *gc = cred;
	struct saved_timeouts saved;
	struct gss_session *s;
	struct why w = {.side = SIDE_CLIENT, .host = host_fqdn};
	uint8_t *tok = NULL;
	size_t toklen;
	char user[256];
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ctx = GSS_C_NO_CONTEXT;
	if (kind == GSS_CRED_DEFAULT) {
		r = own_cred(&own, user, sizeof(user), err, errlen);
		if (r < 0) {
			free(s);
			return r;
		}
		use = own;
		w.own_ccache = true;
		w.user = user;
	} else {
		if (!gc) {
			free(s);
			snprintf(err, errlen, "no credential of the user to act with");
			return -EINVAL;
		}
		use = gc->h;
		w.user = gc->user;
		w.account = gc->account;
		w.proxy = !gc->forwarded;
		w.any_protocol = gc->impersonated;
		w.unforwardable = gc->unforwardable;
	}
	r = import_service(host_fqdn, &target);
	if (r < 0) {
		snprintf(err, errlen, "'%s' is not a usable host name", host_fqdn);
		goto out_cred;
	}
	timeouts_set(conn->fd, &saved);
	for (;;) {
		maj = gss_init_sec_context(&min, use, &s->ctx, target, (gss_OID)gss_mech_krb5, req, 0,
					   GSS_C_NO_CHANNEL_BINDINGS, tok ? &in : GSS_C_NO_BUFFER, NULL, &out,
					   &flags, NULL);
		free(tok);
		tok = NULL;
		if (GSS_ERROR(maj)) {
			OM_uint32 m2;
			gss_release_buffer(&m2, &out);
			explain(err, errlen, &w, maj, min);
			r = -EACCES;
			goto out;
		}
		if (out.length) {
			r = frame_send(conn->fd, out.value, out.length);
			gss_release_buffer(&min, &out);
			if (r < 0) {
				io_error(err, errlen, r, host_fqdn);
				goto out;
			}
		}
		if (!(maj & GSS_S_CONTINUE_NEEDED))
			break;
		r = recv_token(conn->fd, host_fqdn, &tok, &toklen, err, errlen);
		if (r < 0)
			goto out;
		in.value = tok;
		in.length = toklen;
	}
	if ((flags & NEED_FLAGS) != NEED_FLAGS) {
		snprintf(err, errlen, "the Kerberos context with %s lacks encryption, integrity or mutual "
			 "authentication: refused", host_fqdn);
		r = -EPROTO;
		goto out;
	}
	if (delegate && !(flags & GSS_C_DELEG_FLAG)) {
		snprintf(err, errlen, "the Kerberos ticket of %s could not be forwarded to %s: get a "
			 "forwardable one with kinit -f (and forwardable = true in krb5.conf)", w.user, host_fqdn);
		r = -EACCES;
		goto out;
	}
	r = 0;
out:
	timeouts_restore(conn->fd, &saved);
	gss_release_name(&min, &target);
out_cred:
	if (own != GSS_C_NO_CREDENTIAL)
		gss_release_cred(&min, &own);
	if (r < 0)
		gss_session_free(s);
	else
		*ret = s;
	return r;
}

/* Review M4: with no desired name MIT accepts a ticket for any principal
 * whose key is in the keytab (host/, nfs/, HTTP/ in a shared
 * /etc/krb5.keytab) and reports that principal as the target. ferryd accepts
 * only ferry/<host>, or this host's account: in Active Directory every SPN of
 * the account shares its key, and MIT may name the account instead (so a
 * host/ ticket of the same account cannot be told apart: docs/security.md). */
static bool acceptor_name_ok(gss_ctx_id_t ctx, const char *host_fqdn, char *ret_target, size_t len)
{
	gss_name_t target = GSS_C_NO_NAME;
	char want[300], account[32];
	OM_uint32 min;
	bool ok;

	ret_target[0] = '\0';
	if (GSS_ERROR(gss_inquire_context(&min, ctx, NULL, &target, NULL, NULL, NULL, NULL, NULL)))
		return false;
	display_name(target, ret_target, len);
	gss_release_name(&min, &target);
	snprintf(want, sizeof(want), "ferry/%s@", host_fqdn);
	host_account(host_fqdn, account, sizeof(account) - 1);
	strcat(account, "@");
	ok = strncasecmp(ret_target, want, strlen(want)) == 0 || strncasecmp(ret_target, account, strlen(account)) == 0;
	return ok;
}

int gss_server_accept(struct conn *conn, const char *keytab, const char *host_fqdn,
		      struct gss_session **ret, char *ret_principal, size_t plen,
		      void **ret_deleg_cred, bool *ret_forwarded, char *err, size_t errlen,
		      char *ret_public, size_t publen)
{
	gss_key_value_element_desc el[3];
	gss_key_value_set_desc store;
	gss_cred_id_t acc = GSS_C_NO_CREDENTIAL, deleg = GSS_C_NO_CREDENTIAL;
	gss_name_t src = GSS_C_NO_NAME;
	gss_buffer_desc in = GSS_C_EMPTY_BUFFER, out = GSS_C_EMPTY_BUFFER;
	struct why w = {.side = SIDE_SERVER, .host = host_fqdn, .keytab = keytab};
	struct saved_timeouts saved;
	struct gss_session *s;
	OM_uint32 maj, min, flags = 0;
	char ccname[300], principal[256], target[300];
	uint8_t *tok = NULL;
	size_t toklen;
	void *dc = NULL;
	int r;

	snprintf(ret_public, publen, "Kerberos authentication to %s failed", host_fqdn);
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ctx = GSS_C_NO_CONTEXT;
	s->peer = GSS_C_NO_NAME;
	store_init(el, &store, keytab, host_fqdn, ccname, sizeof(ccname));
	/* GSS_C_BOTH: MIT then turns a forwardable ticket into an S4U2Proxy
	 * evidence credential. Accept-only still serves the host without it. */
	maj = gss_acquire_cred_from(&min, GSS_C_NO_NAME, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_BOTH,
				    &store, &acc, NULL, NULL);
	if (GSS_ERROR(maj))
		maj = gss_acquire_cred_from(&min, GSS_C_NO_NAME, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
					    GSS_C_ACCEPT, &store, &acc, NULL, NULL);
	if (GSS_ERROR(maj)) {
		explain(err, errlen, &w, maj, min);
		gss_server_refusal(maj, min, host_fqdn, ret_public, publen);
		free(s);
		return -ENOKEY;
	}
	timeouts_set(conn->fd, &saved);
	for (;;) {
		r = frame_recv(conn->fd, PROTO_MAX_PREAUTH, &tok, &toklen);
		if (r < 0) {
			io_error(err, errlen, r, "the client");
			goto out;
		}
		if (tok[0] == '{') {
			snprintf(err, errlen, "a request came before Kerberos authentication: ferry clients "
				 "authenticate first (ferry -H HOST uses the ticket from kinit)");
			r = -EPROTO;
			goto out;
		}
		in.value = tok;
		in.length = toklen;
		maj = gss_accept_sec_context(&min, &s->ctx, acc, &in, GSS_C_NO_CHANNEL_BINDINGS, &src, NULL,
					     &out, &flags, NULL, &deleg);
		free(tok);
		tok = NULL;
		if (GSS_ERROR(maj)) {
			explain(err, errlen, &w, maj, min);
			gss_server_refusal(maj, min, host_fqdn, ret_public, publen);
			r = -EACCES;
			goto out;
		}
		if (!(maj & GSS_S_CONTINUE_NEEDED))
			break;
		r = frame_send(conn->fd, out.value, out.length);
		gss_release_buffer(&min, &out);
		if (r < 0) {
			io_error(err, errlen, r, "the client");
			goto out;
		}
	}
	if ((flags & NEED_FLAGS) != NEED_FLAGS || (flags & GSS_C_ANON_FLAG)) {
		snprintf(err, errlen, "the client's Kerberos context lacks encryption, integrity, replay "
			 "protection or mutual authentication, or is anonymous: refused");
		r = -EPROTO;
		goto out;
	}
	if (!acceptor_name_ok(s->ctx, host_fqdn, target, sizeof(target))) {
		snprintf(err, errlen, "the client offered a ticket for %s; ferryd on %s accepts only ferry/%s",
			 target[0] ? target : "another service", host_fqdn, host_fqdn);
		r = -EACCES;
		goto out;
	}
	display_name(src, principal, sizeof(principal));
	if (!principal[0] || (size_t)snprintf(ret_principal, plen, "%s", principal) >= plen) {
		snprintf(err, errlen, "the client's principal name is empty or too long");
		r = -ENAMETOOLONG;
		goto out;
	}
	if (deleg != GSS_C_NO_CREDENTIAL) {
		r = cred_new(deleg, principal, host_fqdn, cred_has_tgt(deleg, principal), false, &dc);
		if (r < 0)
			goto out;
		((struct gss_cred *)dc)->unforwardable = !ticket_forwardable(s->ctx);
		deleg = GSS_C_NO_CREDENTIAL;
	}
	/* Only now the mutual-authentication token: a refused client gets the
	 * caller's reply_error instead. */
	if (out.length) {
		r = frame_send(conn->fd, out.value, out.length);
		if (r < 0) {
			io_error(err, errlen, r, "the client");
			goto out;
		}
	}
	s->peer = src;  /* for gss_session_group_sids */
	src = GSS_C_NO_NAME;
	r = 0;
out:
	timeouts_restore(conn->fd, &saved);
	free(tok);
	gss_release_buffer(&min, &out);
	gss_release_name(&min, &src);
	if (deleg != GSS_C_NO_CREDENTIAL)
		gss_release_cred(&min, &deleg);
	gss_release_cred(&min, &acc);
	if (r < 0) {
		/* the other refusals reveal nothing of this host: said as they are */
		if (r != -EACCES)
			snprintf(ret_public, publen, "%s", err);
		gss_cred_free(dc);
		gss_session_free(s);
		return r;
	}
	*ret = s;
	*ret_deleg_cred = dc;
	*ret_forwarded = dc && ((struct gss_cred *)dc)->forwarded;
	return 0;
}

int gss_session_group_sids(struct gss_session *s, char ***ret_sids, size_t *ret_n, char *err, size_t errlen)
{
	static const char attr[] = "urn:mspac:logon-info";
	gss_buffer_desc name = {sizeof(attr) - 1, (void *)attr}, value = GSS_C_EMPTY_BUFFER,
			display = GSS_C_EMPTY_BUFFER;
	OM_uint32 maj, min;
	int authenticated = 0, complete = 0, more = -1, r;

	*ret_sids = NULL;
	*ret_n = 0;
	err[0] = '\0';
	if (!s || s->peer == GSS_C_NO_NAME)
		return 0;
	maj = gss_get_name_attribute(&min, s->peer, &name, &authenticated, &complete, &value, &display, &more);
	if (maj == GSS_S_UNAVAILABLE)
		return 0; /* no PAC in the ticket (an MIT KDC, or NO_AUTH_DATA_REQUIRED) */
	if (GSS_ERROR(maj)) {
		status_text(maj, min, err, errlen);
		return -EIO;
	}
	if (!authenticated) {
		/* MIT marks the PAC authenticated once its server signature checks
		 * out with our key: an unverified one is never believed. */
		snprintf(err, errlen, "the PAC of the client's ticket did not verify: its group "
			 "memberships are ignored");
		r = -EBADMSG;
		goto out;
	}
	r = pac_logon_group_sids(value.value, value.length, ret_sids, ret_n);
	if (r == -E2BIG)
		snprintf(err, errlen, "the PAC of the client's ticket lists more than %d groups: they are "
			 "ignored", PAC_MAX_SIDS);
	else if (r < 0)
		snprintf(err, errlen, "the PAC logon information of the client's ticket is malformed "
			 "(%zu bytes): its group memberships are ignored", (size_t)value.length);
out:
	gss_release_buffer(&min, &value);
	gss_release_buffer(&min, &display);
	return r;
}

void gss_session_free(struct gss_session *s)
{
	OM_uint32 min;

	if (!s)
		return;
	gss_delete_sec_context(&min, &s->ctx, GSS_C_NO_BUFFER);
	gss_release_name(&min, &s->peer);
	free(s);
}
