/* What ferryd needs from the machine's Kerberos configuration, checked once at
 * start-up so that a missing or wrong setting is one clear line in the log
 * instead of a KDC error in the middle of a move (docs/security.md, "The
 * machine's Kerberos configuration"). */
#include "krb5_check.h"

#include <errno.h>
#include <krb5/krb5.h>
#include <profile.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DOC "(docs/security.md)"

struct report {
	krb5_check_fn fn;
	void *ctx;
	int n;
};

static void say(struct report *r, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r->fn(r->ctx, line);
	r->n++;
}

/* The profile MIT reads: $KRB5_CONFIG (a ':'-separated list) or /etc/krb5.conf.
 * Writes the first that exists to ret_path; false if none does. */
static bool config_file(char *ret_path, size_t len)
{
	const char *env = getenv("KRB5_CONFIG");
	char list[4096], *save = NULL;

	snprintf(list, sizeof(list), "%s", env && *env ? env : "/etc/krb5.conf");
	for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		if (access(p, R_OK) == 0) {
			snprintf(ret_path, len, "%s", p);
			return true;
		}
	}
	snprintf(ret_path, len, "%s", env && *env ? env : "/etc/krb5.conf");
	return false;
}

/* Does the keytab hold a key for ferry/<host>@ANY? */
static void check_keytab(struct report *r, krb5_context kc, const char *keytab, const char *host)
{
	char want[300], name[1100] = "";
	krb5_keytab kt = NULL;
	krb5_kt_cursor cur;
	krb5_keytab_entry e;
	krb5_error_code k;
	bool found = false;
	int n = 0;

	snprintf(want, sizeof(want), "ferry/%s@", host);
	k = keytab && *keytab ? krb5_kt_resolve(kc, keytab, &kt) : krb5_kt_default(kc, &kt);
	if (k == 0)
		k = krb5_kt_get_name(kc, kt, name, sizeof(name));
	if (k == 0)
		k = krb5_kt_start_seq_get(kc, kt, &cur);
	if (k != 0) {
		say(r, "keytab %s cannot be read (%s); Kerberos moves need one with the key of ferry/%s and of "
		       "this host's account: export it from the directory and give it with --keytab " DOC,
		    name[0] ? name : (keytab && *keytab ? keytab : "(default)"),
		    k == ENOENT || k == KRB5_KT_NOTFOUND ? "not found" : krb5_get_error_message(kc, k), host);
		if (kt)
			krb5_kt_close(kc, kt);
		return;
	}
	while (krb5_kt_next_entry(kc, kt, &e, &cur) == 0) {
		char *p = NULL;

		n++;
		if (krb5_unparse_name(kc, e.principal, &p) == 0) {
			found |= strncmp(p, want, strlen(want)) == 0;
			krb5_free_unparsed_name(kc, p);
		}
		krb5_free_keytab_entry_contents(kc, &e);
	}
	krb5_kt_end_seq_get(kc, kt, &cur);
	if (!found)
		say(r, "keytab %s holds no key for ferry/%s (%d entries); peers cannot authenticate to this host: "
		       "export it (samba-tool domain exportkeytab FILE --principal=ferry/%s) " DOC,
		    name, host, n, host);
	krb5_kt_close(kc, kt);
}

int krb5_check_setup(const char *keytab, const char *host_name, krb5_check_fn fn, void *ctx)
{
	struct report r = {.fn = fn, .ctx = ctx};
	krb5_context kc = NULL;
	struct _profile_t *prof = NULL;
	char path[4096], *realm = NULL;
	int fwd = 0;

	if (!config_file(path, sizeof(path))) {
		say(&r, "%s not found; Kerberos moves need it, with default_realm and forwardable = true in "
			"[libdefaults] and the realm's KDCs " DOC, path);
		return r.n;
	}
	if (krb5_init_context(&kc) != 0) {
		say(&r, "%s cannot be read as a Kerberos configuration; Kerberos moves need it " DOC, path);
		return r.n;
	}
	if (krb5_get_default_realm(kc, &realm) != 0)
		say(&r, "%s has no default_realm in [libdefaults]; Kerberos moves need it " DOC, path);
	else
		krb5_free_default_realm(kc, realm);
	if (krb5_get_profile(kc, &prof) == 0) {
		profile_get_boolean(prof, "libdefaults", "forwardable", NULL, 0, &fwd);
		profile_release(prof);
	}
	/* MIT asks the KDC for the options its own TGT has: without forwardable
	 * the S4U2Self ticket is not forwardable either, and S4U2Proxy fails. */
	if (!fwd)
		say(&r, "%s does not set forwardable = true in [libdefaults]; delegation (auth kerberos from a "
			"local request, and the tickets users forward for credssp) needs it " DOC, path);
	check_keytab(&r, kc, keytab, host_name);
	krb5_free_context(kc);
	return r.n;
}
