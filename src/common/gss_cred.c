/* Kerberos credentials of ferry: the caller's own, those a client handed
 * over (forwarded TGT, S4U2Proxy evidence credential) and S4U2Self ones.
 *
 * Every credential handed out is wrapped in struct gss_cred so that errors
 * met when it is used later can name the user and the host account acting
 * for them. Acceptor and impersonator credentials share one MEMORY ccache per
 * host name, where MIT keeps the computer account's TGT got from the keytab. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>

#include "gss.h"
#include "gss_internal.h"

/* "host2.lab.test" -> "HOST2$": the AD computer account of a host. */
void host_account(const char *fqdn, char *buf, size_t len)
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

/* The caller's own initiator credential, refusing a missing or expired one early. */
int own_cred(gss_cred_id_t *ret, char *user, size_t ulen, char *err, size_t errlen)
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

void store_init(gss_key_value_element_desc el[3], gss_key_value_set_desc *store, const char *keytab,
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

int cred_new(gss_cred_id_t h, const char *user, const char *host_fqdn, bool forwarded,
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
bool ticket_forwardable(gss_ctx_id_t ctx)
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
bool cred_has_tgt(gss_cred_id_t h, const char *user)
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
