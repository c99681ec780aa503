/* Shared only between gss.c, gss_cred.c and gss_errors.c: the credential
 * wrapper, the description of what a Kerberos error is about, and the
 * helpers each file lends the others. gss.h is the interface. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>

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

/* gss.c */
void display_name(gss_name_t n, char *buf, size_t len);

/* gss_cred.c */
void host_account(const char *fqdn, char *buf, size_t len);
int own_cred(gss_cred_id_t *ret, char *user, size_t ulen, char *err, size_t errlen);
void store_init(gss_key_value_element_desc el[3], gss_key_value_set_desc *store, const char *keytab,
		const char *host_fqdn, char *ccname, size_t cclen);
int cred_new(gss_cred_id_t h, const char *user, const char *host_fqdn, bool forwarded,
	     bool impersonated, void **ret);
bool ticket_forwardable(gss_ctx_id_t ctx);
bool cred_has_tgt(gss_cred_id_t h, const char *user);

/* gss_errors.c */
void status_text(OM_uint32 maj, OM_uint32 min, char *buf, size_t len);
void explain(char *err, size_t errlen, const struct why *w, OM_uint32 maj, OM_uint32 min);
