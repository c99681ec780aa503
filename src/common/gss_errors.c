/* Kerberos failures in plain words: the cause and the fix, for the log and
 * the user, and the part of it a refused client may be told. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>

#include "gss.h"
#include "gss_internal.h"

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

void status_text(OM_uint32 maj, OM_uint32 min, char *buf, size_t len)
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

static bool is_address(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

void explain(char *err, size_t errlen, const struct why *w, OM_uint32 maj, OM_uint32 min)
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
