/* Kerberos authentication of ferry connections with MIT GSSAPI.
 *
 * Every credential handed out (forwarded TGT, S4U2Proxy evidence credential,
 * S4U2Self credential) is wrapped in struct gss_cred so that errors met when
 * it is used later can name the user and the host account acting for them.
 * Acceptor and impersonator credentials share one MEMORY ccache per host
 * name, where MIT keeps the computer account's TGT got from the keytab. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>

#include "gss.h"
#include "pac.h"

#define WANT_FLAGS (GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG | GSS_C_MUTUAL_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_REPLAY_FLAG)
#define NEED_FLAGS (GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG | GSS_C_MUTUAL_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_REPLAY_FLAG)

struct gss_session {
	gss_ctx_id_t ctx;
	gss_name_t peer;      /* acceptor: the client's name, with its PAC attributes */
};

struct gss_cred {
	gss_cred_id_t h;
	char user[256];       /* alice@LAB.TEST */
	char account[64];     /* HOST1$: the host account that obtained or holds it */
	bool forwarded;       /* a real TGT of the user */
	bool impersonated;    /* S4U2Self */
	bool unforwardable;   /* evidence ticket without the forwardable flag */
};

enum side { SIDE_CLIENT, SIDE_SERVER, SIDE_S4U2SELF };

/* What an error is about, for the plain-words explanation. */
struct why {
	enum side side;
	const char *user;      /* principal, or the local user name */
	const char *host;      /* the ferry host at the other end (client) or this one (server) */
	const char *account;   /* HOST1$ when a host credential is involved */
	const char *keytab;
	bool own_ccache;       /* the user's own tickets (kinit) */
	bool proxy;            /* using a credential obtained for the user: S4U2Proxy happens */
	bool any_protocol;     /* the credential came from S4U2Self */
	bool unforwardable;    /* the user's ticket to us was not forwardable */
};

static void appendf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t len, const char *fmt, ...)
{
	size_t off = strnlen(buf, len);
	va_list ap;

	if (off + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + off, len - off, fmt, ap);
	va_end(ap);
}

static void status_text(OM_uint32 maj, OM_uint32 min, char *buf, size_t len)
{
	OM_uint32 m, more = 0;
	gss_buffer_desc b;
	bool first = true;

	buf[0] = '\0';
	do {
		if (GSS_ERROR(gss_display_status(&m, maj, GSS_C_GSS_CODE, GSS_C_NO_OID, &more, &b)))
			break;
		appendf(buf, len, "%s%.*s", first ? "" : "; ", (int)b.length, (char *)b.value);
		first = false;
		gss_release_buffer(&m, &b);
	} while (more);
	if (!min)
		return;
	more = 0;
	do {
		if (GSS_ERROR(gss_display_status(&m, min, GSS_C_MECH_CODE, (gss_OID)gss_mech_krb5, &more, &b)))
			break;
		appendf(buf, len, "; %.*s", (int)b.length, (char *)b.value);
		gss_release_buffer(&m, &b);
	} while (more);
}

/* "host2.lab.test" -> "HOST2$": the AD computer account of a host. */
static void host_account(const char *fqdn, char *buf, size_t len)
{
	size_t i;

	for (i = 0; fqdn[i] && fqdn[i] != '.' && i < 15 && i + 2 < len; i++)
		buf[i] = (char)(fqdn[i] >= 'a' && fqdn[i] <= 'z' ? fqdn[i] - 32 : fqdn[i]);
	buf[i++] = '$';
	buf[i] = '\0';
}

static void local_user(char *buf, size_t len);

/* The principal of the default ccache, else the local user name: whom to
 * tell about a missing or expired ticket. */
static void ccache_user(char *buf, size_t len)
{
	krb5_context kc;
	krb5_ccache cc;
	krb5_principal p;
	char *name;

	local_user(buf, len);
	if (krb5_init_context(&kc) != 0)
		return;
	if (krb5_cc_default(kc, &cc) == 0) {
		if (krb5_cc_get_principal(kc, cc, &p) == 0) {
			if (krb5_unparse_name(kc, p, &name) == 0) {
				snprintf(buf, len, "%s", name);
				krb5_free_unparsed_name(kc, name);
			}
			krb5_free_principal(kc, p);
		}
		krb5_cc_close(kc, cc);
	}
	krb5_free_context(kc);
}

static void local_user(char *buf, size_t len)
{
	struct passwd pw, *pwp = NULL;
	char tmp[4096];

	if (getpwuid_r(geteuid(), &pw, tmp, sizeof(tmp), &pwp) == 0 && pwp)
		snprintf(buf, len, "%s", pw.pw_name);
	else
		snprintf(buf, len, "uid %u", (unsigned)geteuid());
}

static bool is_address(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static void explain(char *err, size_t errlen, const struct why *w, OM_uint32 maj, OM_uint32 min)
{
	krb5_error_code k = (krb5_error_code)min;
	OM_uint32 routine = GSS_ROUTINE_ERROR(maj);
	const char *user = w->user && w->user[0] ? w->user : "the user";
	const char *host = w->host ? w->host : "?";
	const char *acct = w->account ? w->account : "this host's account";
	const char *kt = w->keytab && w->keytab[0] ? w->keytab : "the default keytab";
	char st[512];

	status_text(maj, min, st, sizeof(st));
	err[0] = '\0';
	if (k == KRB5KRB_AP_ERR_SKEW || k == KRB5_KDCREP_SKEW) {
		appendf(err, errlen, "the clocks of this host and %s or the domain controller differ by more "
			"than Kerberos allows (5 minutes): synchronize them (chrony or another NTP client)",
			host);
	} else if (w->side == SIDE_SERVER) {
		if (k == KRB5KRB_AP_ERR_MODIFIED || k == KRB5KRB_AP_ERR_BAD_INTEGRITY || k == KRB5_KT_KVNONOTFOUND)
			appendf(err, errlen, "the ticket for ferry/%s does not match the key in %s: the keytab "
				"is stale; export it again from the directory (samba-tool domain exportkeytab)",
				host, kt);
		else if (k == KRB5_KT_NOTFOUND || k == KRB5KRB_AP_WRONG_PRINC || k == ENOENT ||
			 routine == GSS_S_NO_CRED)
			appendf(err, errlen, "%s holds no key for ferry/%s: export it (samba-tool domain "
				"exportkeytab FILE --principal=ferry/%s) or give ferryd the right --keytab",
				kt, host, host);
		else if (k == KRB5KRB_AP_ERR_TKT_EXPIRED || routine == GSS_S_CREDENTIALS_EXPIRED)
			appendf(err, errlen, "the client's Kerberos ticket has expired: it must run kinit again");
		else if (k == KRB5KRB_AP_ERR_REPEAT || routine == GSS_S_DUPLICATE_TOKEN)
			appendf(err, errlen, "a replayed Kerberos authenticator was refused");
		else
			appendf(err, errlen, "Kerberos authentication of a client of %s failed", host);
	} else if (k == KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN && is_address(host)) {
		appendf(err, errlen, "Kerberos needs the host's DNS name, not the address %s: give its name "
			"(such as the FQDN ferryd was started with, --host-name)", host);
	} else if (k == KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN) {
		appendf(err, errlen, "the directory does not know the service ferry/%s: check the host "
			"name, and register the service on the host's computer account (samba-tool spn "
			"add ferry/%s 'ACCOUNT$') and export it into its keytab", host, host);
	} else if (w->proxy && (k == KRB5KDC_ERR_BADOPTION || k == KRB5KDC_ERR_POLICY ||
				k == KRB5KDC_ERR_MUST_USE_USER2USER || k == KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN ||
				k == KRB5KDC_ERR_PADATA_TYPE_NOSUPP || routine == GSS_S_NO_CRED)) {
		char comp[64], shorthost[64];

		snprintf(comp, sizeof(comp), "%.*s", (int)strcspn(acct, "$"), acct);
		snprintf(shorthost, sizeof(shorthost), "%.*s", (int)strcspn(host, "."), host);
		if (w->unforwardable)
			appendf(err, errlen, "the KDC refused delegation from %s to ferry/%s: the ticket %s "
				"used to reach this host is not forwardable; %s must get one with kinit -f "
				"(forwardable = true in krb5.conf) and the account must not be marked "
				"'sensitive and cannot be delegated'; and %s must be allowed to delegate to "
				"ferry/%s (samba-tool delegation add-service '%s' ferry/%s)",
				acct, host, user, user, acct, host, acct, host);
		else if (w->any_protocol)
			appendf(err, errlen, "the KDC refused delegation from %s to ferry/%s for %s: allow it "
				"with `samba-tool delegation add-service '%s' ferry/%s` and `samba-tool "
				"delegation for-any-protocol '%s' on` (or ADUC → %s → Delegation → Trust this "
				"computer for delegation to specified services only → Use any authentication "
				"protocol → add ferry on %s)",
				acct, host, user, acct, host, acct, comp, shorthost);
		else
			appendf(err, errlen, "the KDC refused delegation from %s to ferry/%s: allow it with "
				"`samba-tool delegation add-service '%s' ferry/%s` (or ADUC → %s → Delegation → "
				"Trust this computer for delegation to specified services only → Use Kerberos "
				"only → add ferry on %s)", acct, host, acct, host, comp, shorthost);
	} else if (w->side == SIDE_S4U2SELF && k == KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN) {
		appendf(err, errlen, "the directory does not know the user %s", user);
	} else if ((w->proxy || w->side == SIDE_S4U2SELF) &&
		   (k == KRB5KDC_ERR_PREAUTH_FAILED || k == KRB5KRB_AP_ERR_BAD_INTEGRITY ||
		    k == KRB5_KT_NOTFOUND || k == KRB5_KT_KVNONOTFOUND || k == ENOENT ||
		    k == KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN)) {
		appendf(err, errlen, "this host cannot get a ticket for its account %s with the keytab %s: "
			"export the account's current keys into it (samba-tool domain exportkeytab FILE "
			"--principal='%s')", acct, kt, acct);
	} else if (w->own_ccache && (routine == GSS_S_NO_CRED || k == KRB5_FCC_NOFILE || k == KRB5_CC_NOTFOUND ||
				     k == KRB5_CC_NOSUPP)) {
		appendf(err, errlen, "no Kerberos ticket for %s: run kinit", user);
	} else if (routine == GSS_S_NO_CRED || k == KRB5_FCC_NOFILE || k == KRB5_CC_NOTFOUND) {
		appendf(err, errlen, "no usable Kerberos credential of %s on this host: the user must "
			"authenticate again", user);
	} else if (k == KRB5KRB_AP_ERR_TKT_EXPIRED || k == KRB5KDC_ERR_TGT_REVOKED ||
		   routine == GSS_S_CREDENTIALS_EXPIRED || routine == GSS_S_CONTEXT_EXPIRED) {
		appendf(err, errlen, "the Kerberos ticket of %s has expired: %s", user,
			w->own_ccache ? "run kinit again" : "the user must authenticate again");
	} else if (k == KRB5KDC_ERR_PREAUTH_FAILED || k == KRB5KRB_AP_ERR_BAD_INTEGRITY) {
		appendf(err, errlen, "wrong password for %s: run kinit again", user);
	} else if (k == KRB5KDC_ERR_KEY_EXP) {
		appendf(err, errlen, "the password of %s has expired: change it with kpasswd", user);
	} else if (k == KRB5KDC_ERR_CLIENT_REVOKED) {
		appendf(err, errlen, "the account %s is disabled or locked out in the directory", user);
	} else if (k == KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN) {
		appendf(err, errlen, "the directory does not know %s: check the name and realm given to kinit",
			user);
	} else if (k == KRB5KRB_AP_ERR_MODIFIED) {
		appendf(err, errlen, "%s could not read our ticket for ferry/%s: its keytab is stale, or the "
			"name leads to another machine; export the keytab again on %s", host, host, host);
	} else if (k == KRB5_KDC_UNREACH || k == KRB5_REALM_UNKNOWN || k == KRB5_REALM_CANT_RESOLVE ||
		   k == KRB5_CONFIG_NODEFREALM) {
		appendf(err, errlen, "cannot reach a domain controller (KDC) of the realm: check krb5.conf "
			"(KRB5_CONFIG) and the network");
	} else {
		appendf(err, errlen, "Kerberos authentication of %s to ferry/%s failed", user, host);
	}
	appendf(err, errlen, " (%s)", st);
}

void gss_server_refusal(uint32_t maj, uint32_t min, const char *host, char *buf, size_t len)
{
	krb5_error_code k = (krb5_error_code)min;
	OM_uint32 routine = GSS_ROUTINE_ERROR(maj);

	/* What the client can fix itself is said; what concerns this host's
	 * keytab and principals stays in its log (review L12). */
	if (k == KRB5KRB_AP_ERR_SKEW)
		snprintf(buf, len, "the clocks of your host and %s differ by more than Kerberos allows (5 minutes): "
			 "synchronize them", host);
	else if (k == KRB5KRB_AP_ERR_TKT_EXPIRED || routine == GSS_S_CREDENTIALS_EXPIRED)
		snprintf(buf, len, "your Kerberos ticket has expired: run kinit again");
	else if (k == KRB5KRB_AP_ERR_REPEAT || (maj & GSS_S_DUPLICATE_TOKEN)) /* a supplementary bit */
		snprintf(buf, len, "a replayed Kerberos authenticator was refused");
	else
		snprintf(buf, len, "Kerberos authentication to %s failed: its administrator finds the reason in "
			 "ferryd's log there", host);
}

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

static void display_name(gss_name_t n, char *buf, size_t len)
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

/* The caller's own initiator credential, refusing a missing or expired one early. */
static int own_cred(gss_cred_id_t *ret, char *user, size_t ulen, char *err, size_t errlen)
{
	struct why w = {.side = SIDE_CLIENT, .user = user, .own_ccache = true};
	OM_uint32 maj, min, life = 0;
	gss_name_t name = GSS_C_NO_NAME;

	ccache_user(user, ulen);
	maj = gss_acquire_cred(&min, GSS_C_NO_NAME, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_INITIATE, ret,
			       NULL, NULL);
	if (GSS_ERROR(maj)) {
		explain(err, errlen, &w, maj, min);
		return -ENOKEY;
	}
	maj = gss_inquire_cred(&min, *ret, &name, &life, NULL, NULL);
	if (name != GSS_C_NO_NAME) {
		display_name(name, user, ulen);
		gss_release_name(&min, &name);
	}
	if (maj == GSS_S_CREDENTIALS_EXPIRED || (!GSS_ERROR(maj) && life == 0)) {
		explain(err, errlen, &w, GSS_S_CREDENTIALS_EXPIRED, 0);
		gss_release_cred(&min, ret);
		return -EKEYEXPIRED;
	}
	return 0;
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

static void store_init(gss_key_value_element_desc el[3], gss_key_value_set_desc *store, const char *keytab,
		       const char *host_fqdn, char *ccname, size_t cclen)
{
	size_t n = 0;

	snprintf(ccname, cclen, "MEMORY:ferry-host-%s", host_fqdn);
	if (keytab && keytab[0]) {
		el[n++] = (gss_key_value_element_desc){"keytab", keytab};
		el[n++] = (gss_key_value_element_desc){"client_keytab", keytab};
	}
	el[n++] = (gss_key_value_element_desc){"ccache", ccname};
	store->count = (OM_uint32)n;
	store->elements = el;
}

static int cred_new(gss_cred_id_t h, const char *user, const char *host_fqdn, bool forwarded,
		    bool impersonated, void **ret)
{
	struct gss_cred *gc = calloc(1, sizeof(*gc));

	if (!gc)
		return -ENOMEM;
	gc->h = h;
	snprintf(gc->user, sizeof(gc->user), "%s", user);
	host_account(host_fqdn, gc->account, sizeof(gc->account));
	gc->forwarded = forwarded;
	gc->impersonated = impersonated;
	*ret = gc;
	return 0;
}

/* MIT's GSS_KRB5_GET_TKT_FLAGS_OID (not in the public headers): the flags of
 * the ticket the client presented. */
static bool ticket_forwardable(gss_ctx_id_t ctx)
{
	static gss_OID_desc oid = {11, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x05\x01"};
	gss_buffer_set_t set = GSS_C_NO_BUFFER_SET;
	OM_uint32 min;
	krb5_flags f = 0;

	if (GSS_ERROR(gss_inquire_sec_context_by_oid(&min, ctx, &oid, &set)) || !set)
		return true; /* unknown: let the KDC decide and report */
	if (set->count == 1 && set->elements[0].length == sizeof(f))
		memcpy(&f, set->elements[0].value, sizeof(f));
	else
		f = TKT_FLG_FORWARDABLE;
	gss_release_buffer_set(&min, &set);
	return f & TKT_FLG_FORWARDABLE;
}

/* MIT sets GSS_C_DELEG_FLAG for an S4U2Proxy evidence credential too, whose
 * ccache holds the host account's TGT: only a TGT of the user tells that the
 * client really forwarded one. */
static bool cred_has_tgt(gss_cred_id_t h, const char *user)
{
	krb5_context kc;
	krb5_ccache cc;
	krb5_principal me;
	krb5_cc_cursor cur;
	krb5_creds c;
	OM_uint32 min;
	bool yes = false;

	if (krb5_init_context(&kc) != 0)
		return false;
	if (krb5_parse_name(kc, user, &me) != 0)
		goto out_ctx;
	if (krb5_cc_new_unique(kc, "MEMORY", NULL, &cc) != 0)
		goto out_me;
	if (krb5_cc_initialize(kc, cc, me) != 0 || GSS_ERROR(gss_krb5_copy_ccache(&min, h, cc)) ||
	    krb5_cc_start_seq_get(kc, cc, &cur) != 0)
		goto out_cc;
	while (!yes && krb5_cc_next_cred(kc, cc, &cur, &c) == 0) {
		yes = !krb5_is_config_principal(kc, c.server) && krb5_principal_compare(kc, c.client, me) &&
		      c.server->length == 2 &&
		      c.server->data[0].length == 6 && memcmp(c.server->data[0].data, "krbtgt", 6) == 0;
		krb5_free_cred_contents(kc, &c);
	}
	krb5_cc_end_seq_get(kc, cc, &cur);
out_cc:
	krb5_cc_destroy(kc, cc);
out_me:
	krb5_free_principal(kc, me);
out_ctx:
	krb5_free_context(kc);
	return yes;
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

int gss_impersonate(const char *keytab, const char *host_fqdn, const char *user_principal,
		    void **ret_cred, char *err, size_t errlen)
{
	gss_key_value_element_desc el[3];
	gss_key_value_set_desc store;
	gss_cred_id_t svc = GSS_C_NO_CREDENTIAL, h = GSS_C_NO_CREDENTIAL;
	gss_name_t uname = GSS_C_NO_NAME;
	gss_buffer_desc b = {strlen(user_principal), (void *)user_principal};
	OM_uint32 maj, min;
	char ccname[300], acct[64];
	struct why w = {.side = SIDE_S4U2SELF, .user = user_principal, .host = host_fqdn, .keytab = keytab,
			.account = acct, .any_protocol = true};
	int r;

	host_account(host_fqdn, acct, sizeof(acct));
	store_init(el, &store, keytab, host_fqdn, ccname, sizeof(ccname));
	/* No desired name: the TGT goes to the keytab's first principal, the
	 * computer account (AD refuses AS requests for ferry/FQDN as a client). */
	maj = gss_acquire_cred_from(&min, GSS_C_NO_NAME, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_INITIATE,
				    &store, &svc, NULL, NULL);
	if (GSS_ERROR(maj)) {
		w.proxy = true;
		explain(err, errlen, &w, maj, min);
		return -ENOKEY;
	}
	maj = gss_import_name(&min, &b, (gss_OID)GSS_KRB5_NT_PRINCIPAL_NAME, &uname);
	if (GSS_ERROR(maj)) {
		snprintf(err, errlen, "'%s' is not a Kerberos principal name", user_principal);
		r = -EINVAL;
		goto out;
	}
	maj = gss_acquire_cred_impersonate_name(&min, svc, uname, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
						GSS_C_INITIATE, &h, NULL, NULL);
	if (GSS_ERROR(maj)) {
		explain(err, errlen, &w, maj, min);
		r = -EACCES;
		goto out;
	}
	r = cred_new(h, user_principal, host_fqdn, false, true, ret_cred);
	if (r < 0)
		gss_release_cred(&min, &h);
out:
	gss_release_name(&min, &uname);
	gss_release_cred(&min, &svc);
	return r;
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

const char *gss_cred_user(const void *cred)
{
	const struct gss_cred *gc = cred;

	return gc ? gc->user : "";
}

void gss_cred_free(void *cred)
{
	struct gss_cred *gc = cred;
	OM_uint32 min;

	if (!gc)
		return;
	gss_release_cred(&min, &gc->h);
	free(gc);
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

int net_connect(const char *host, int port, int timeout_ms, int *ret_fd, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	char portstr[16];
	int fd = -1, r, e = ECONNREFUSED;

	snprintf(portstr, sizeof(portstr), "%d", port);
	r = getaddrinfo(host, portstr, &hints, &res);
	if (r != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(r));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd p;
		socklen_t len = sizeof(e);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		e = errno;
		if (e == EINPROGRESS) {
			p = (struct pollfd){.fd = fd, .events = POLLOUT};
			r = poll(&p, 1, timeout_ms);
			if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e == 0)
				break;
			if (r == 0)
				e = ETIMEDOUT;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to %s port %d: %s%s", host, port, strerror(e),
			 e == ECONNREFUSED ? " (is ferryd running there, listening with --listen?)" : "");
		return -e;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	*ret_fd = fd;
	return 0;
}
