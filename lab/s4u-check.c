/*
 * s4u-check: exercise Kerberos constrained delegation the way ferryd will,
 * with MIT GSSAPI, in one process.
 *
 *   s4u-check evidence USER_CCACHE SVC_KEYTAB SVC_CCACHE SRC_SVC DST_SVC DST_KEYTAB
 *   s4u-check impersonate USER SVC_KEYTAB SVC_CCACHE DST_SVC DST_KEYTAB
 *
 * evidence:    the user (credentials in USER_CCACHE) authenticates to SRC_SVC
 *              (e.g. ferry@host1.lab.test); the acceptor, holding SVC_KEYTAB
 *              and a TGT of the service account in SVC_CCACHE (fetched from
 *              the keytab if missing), gets a "delegated" credential for the
 *              user from the forwardable service ticket, and uses it to reach
 *              DST_SVC (S4U2Proxy, "Kerberos only" delegation).
 * impersonate: protocol transition: the service obtains a ticket for USER to
 *              itself (S4U2Self) and uses it for DST_SVC (S4U2Proxy),
 *              "any authentication protocol" delegation.
 * In both cases the token is then accepted with DST_KEYTAB, which proves the
 * destination sees USER as the initiator. Services are GSS host-based names
 * (service@host). Exit 0 on success, 1 on failure, with the GSS error.
 *
 * Build: cc -o s4u-check s4u-check.c $(krb5-config --libs gssapi)
 */
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void report(const char *what, OM_uint32 maj, OM_uint32 min)
{
	OM_uint32 m, ctx = 0;
	gss_buffer_desc buf;
	fprintf(stderr, "s4u-check: %s failed:", what);
	do {
		gss_display_status(&m, maj, GSS_C_GSS_CODE, GSS_C_NO_OID, &ctx, &buf);
		fprintf(stderr, " %.*s;", (int)buf.length, (char *)buf.value);
		gss_release_buffer(&m, &buf);
	} while (ctx);
	ctx = 0;
	do {
		gss_display_status(&m, min, GSS_C_MECH_CODE, (gss_OID)gss_mech_krb5, &ctx, &buf);
		fprintf(stderr, " %.*s", (int)buf.length, (char *)buf.value);
		gss_release_buffer(&m, &buf);
	} while (ctx);
	fprintf(stderr, "\n");
	exit(1);
}

#define CHECK(what, call)                     \
	do {                                      \
		OM_uint32 maj_ = (call);              \
		if (GSS_ERROR(maj_)) report(what, maj_, min); \
	} while (0)

static gss_name_t import(const char *s, gss_OID type)
{
	OM_uint32 min;
	gss_name_t n;
	gss_buffer_desc b = {strlen(s), (void *)s};
	CHECK("gss_import_name", gss_import_name(&min, &b, type, &n));
	return n;
}

static gss_cred_id_t acquire(gss_name_t name, gss_cred_usage_t usage, const gss_key_value_element_desc *el, int n)
{
	OM_uint32 min;
	gss_cred_id_t c;
	gss_key_value_set_desc store = {n, (gss_key_value_element_desc *)el};
	CHECK("gss_acquire_cred_from", gss_acquire_cred_from(&min, name, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
	                                                     usage, &store, &c, NULL, NULL));
	return c;
}

static void print_name(const char *label, gss_name_t n)
{
	OM_uint32 min;
	gss_buffer_desc b;
	CHECK("gss_display_name", gss_display_name(&min, n, &b, NULL));
	printf("%s%.*s\n", label, (int)b.length, (char *)b.value);
	gss_release_buffer(&min, &b);
}

/* init with cred towards target, accept with acc; returns the acceptor's view of the initiator */
static gss_name_t handshake(const char *label, gss_cred_id_t cred, const char *target, gss_cred_id_t acc,
                            gss_cred_id_t *deleg)
{
	OM_uint32 min, flags = 0;
	gss_ctx_id_t ictx = GSS_C_NO_CONTEXT, actx = GSS_C_NO_CONTEXT;
	gss_buffer_desc tok = GSS_C_EMPTY_BUFFER, out = GSS_C_EMPTY_BUFFER;
	gss_name_t src = GSS_C_NO_NAME, t = import(target, GSS_C_NT_HOSTBASED_SERVICE);
	char what[256];
	snprintf(what, sizeof what, "%s: init_sec_context to %s", label, target);
	CHECK(what, gss_init_sec_context(&min, cred, &ictx, t, (gss_OID)gss_mech_krb5,
	                                 GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG | GSS_C_CONF_FLAG, 0, NULL,
	                                 GSS_C_NO_BUFFER, NULL, &tok, &flags, NULL));
	snprintf(what, sizeof what, "%s: accept_sec_context at %s", label, target);
	CHECK(what, gss_accept_sec_context(&min, &actx, acc, &tok, NULL, &src, NULL, &out, &flags, NULL, deleg));
	gss_release_buffer(&min, &tok);
	gss_release_buffer(&min, &out);
	gss_delete_sec_context(&min, &ictx, NULL);
	gss_delete_sec_context(&min, &actx, NULL);
	gss_release_name(&min, &t);
	return src;
}

int main(int argc, char **argv)
{
	OM_uint32 min;
	gss_cred_id_t svc, dst, deleg = GSS_C_NO_CREDENTIAL, user;
	gss_name_t src;
	const char *mode = argc > 1 ? argv[1] : "";

	if (!strcmp(mode, "evidence") && argc == 8) {
		gss_key_value_element_desc ust[] = {{"ccache", argv[2]}};
		gss_key_value_element_desc sst[] = {{"keytab", argv[3]}, {"client_keytab", argv[3]}, {"ccache", argv[4]}};
		gss_key_value_element_desc dstst[] = {{"keytab", argv[7]}};
		user = acquire(GSS_C_NO_NAME, GSS_C_INITIATE, ust, 1);
		svc = acquire(GSS_C_NO_NAME, GSS_C_BOTH, sst, 3);
		dst = acquire(GSS_C_NO_NAME, GSS_C_ACCEPT, dstst, 1);
		src = handshake("user->source", user, argv[5], svc, &deleg);
		print_name("source service sees: ", src);
		if (deleg == GSS_C_NO_CREDENTIAL) {
			fprintf(stderr, "s4u-check: no delegated credential (user's ticket to %s not forwardable?)\n", argv[5]);
			return 1;
		}
		src = handshake("source->destination (S4U2Proxy)", deleg, argv[6], dst, NULL);
		print_name("destination service sees: ", src);
		return 0;
	}
	if (!strcmp(mode, "impersonate") && argc == 7) {
		gss_key_value_element_desc sst[] = {{"keytab", argv[3]}, {"client_keytab", argv[3]}, {"ccache", argv[4]}};
		gss_key_value_element_desc dstst[] = {{"keytab", argv[6]}};
		gss_name_t uname = import(argv[2], GSS_C_NT_USER_NAME);
		svc = acquire(GSS_C_NO_NAME, GSS_C_BOTH, sst, 3);
		dst = acquire(GSS_C_NO_NAME, GSS_C_ACCEPT, dstst, 1);
		CHECK("gss_acquire_cred_impersonate_name (S4U2Self)",
		      gss_acquire_cred_impersonate_name(&min, svc, uname, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
		                                        GSS_C_INITIATE, &user, NULL, NULL));
		src = handshake("source->destination (S4U2Self+S4U2Proxy)", user, argv[5], dst, NULL);
		print_name("destination service sees: ", src);
		return 0;
	}
	fprintf(stderr, "usage: s4u-check evidence USER_CCACHE SVC_KEYTAB SVC_CCACHE SRC_SVC DST_SVC DST_KEYTAB\n"
	                "       s4u-check impersonate USER SVC_KEYTAB SVC_CCACHE DST_SVC DST_KEYTAB\n");
	return 2;
}
