/* Start-up check of the machine's Kerberos configuration (krb5_check.c). */
#pragma once
#include <stdbool.h>

typedef void (*krb5_check_fn)(void *ctx, const char *line);

/* Checks what Kerberos moves need from the configuration ($KRB5_CONFIG or
 * /etc/krb5.conf: present, a default realm, forwardable = true) and from the
 * keytab (NULL or "" = the default one: readable, a key for
 * ferry/<host_name>). Calls fn once per problem with one line that says what
 * to fix; returns the number of problems. */
int krb5_check_setup(const char *keytab, const char *host_name, krb5_check_fn fn, void *ctx);
