/* Kerberos (GSSAPI, MIT krb5) authentication of ferry connections and the
 * per-message security layer (integrity and confidentiality, gss_wrap).
 *
 * Handshake over frames (proto.h frame_send/frame_recv, at most
 * PROTO_MAX_PREAUTH bytes a token) before any JSON message is exchanged:
 * the client sends the first token. A frame whose payload starts with '{'
 * instead of a token is a refusal from the server (a reply_error object);
 * krb5 tokens always start with 0x60. Both sides bound the handshake with
 * GSS_HANDSHAKE_TIMEOUT_S (SO_RCVTIMEO/SO_SNDTIMEO, restored afterwards).
 *
 * After it, gss_protect() makes conn wrap every message (sealed, sequenced;
 * unsealed, replayed or reordered messages are refused). The local unix
 * socket uses the handshake only to pass an identity and credential, and
 * does not call gss_protect(). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define GSS_HANDSHAKE_TIMEOUT_S 10
/* Largest wrapped frame: a PROTO_MAX_MSG message plus the krb5 wrap overhead. */
#define GSS_MAX_WRAPPED (PROTO_MAX_MSG + 1024)

struct gss_session;  /* established context; owns gss handles */

enum gss_cred_kind {
	GSS_CRED_DEFAULT,     /* the caller's own ccache (KRB5CCNAME) */
	GSS_CRED_HANDLE,      /* a credential from gss_server_accept or gss_impersonate */
};

/* Client: authenticates to service "ferry@<host_fqdn>" (principal ferry/<fqdn>).
 * cred: for GSS_CRED_HANDLE, the opaque credential (void *) returned by
 * gss_server_accept (ret_deleg_cred) or gss_impersonate; it stays the caller's.
 * delegate: forward the caller's TGT (credssp-style, one hop); fails unless
 * it really was forwarded. err explains failures in plain words, with the fix
 * and the GSS status in parentheses. A refusal sent by the server is reported
 * as -EACCES with its message. */
int gss_client_start(struct conn *conn, const char *host_fqdn, enum gss_cred_kind kind, void *cred,
		     bool delegate, struct gss_session **ret, char *err, size_t errlen);

/* Server: accepts with the keytab (NULL or "" = default) a ticket for
 * ferry/<host_fqdn>. Every service of an AD computer account shares its key
 * and MIT reports the account as the target, so a ticket for another of its
 * services (host/, cifs/) cannot be told apart and is accepted too.
 * Returns the client principal, and any credential usable for onward hops (a
 * forwarded TGT, or an S4U2Proxy evidence credential when the client's ticket
 * was forwardable), else NULL; ret_forwarded tells whether it is a real
 * forwarded TGT (credssp). Sends nothing on failure: the caller logs err (the
 * cause and fix in full, with keytab path and principals) and answers with a
 * reply_error frame whose message is ret_public (what the client may know). */
int gss_server_accept(struct conn *conn, const char *keytab, const char *host_fqdn,
		      struct gss_session **ret, char *ret_principal, size_t plen,
		      void **ret_deleg_cred, bool *ret_forwarded, char *err, size_t errlen,
		      char *ret_public, size_t publen);
/* The refusal a client gets for a failed accept (maj/min GSS and krb5
 * status): its clock, its expired ticket or a replay in plain words, else a
 * pointer to this host's log; never the keytab or its principals. */
void gss_server_refusal(uint32_t maj, uint32_t min, const char *host, char *buf, size_t len);

/* The group SIDs of the client of an accepted context (server side), read
 * from the MS-PAC logon information of its service ticket (pac.h), which MIT
 * verified with the service key. Any ticket from an Active Directory KDC
 * carries one, S4U2Proxy and S4U2Self tickets too. Returns 0 with no SIDs
 * when the ticket has no PAC; on failure (-EBADMSG: unverified or malformed
 * PAC, -E2BIG, -EIO) err says why and there are no SIDs. *ret_sids: free
 * with pac_sids_free. */
int gss_session_group_sids(struct gss_session *s, char ***ret_sids, size_t *ret_n, char *err, size_t errlen);

/* Seals every later message on conn with the session and raises conn->max_msg
 * to GSS_MAX_WRAPPED. The session must outlive the use of conn. */
void gss_protect(struct gss_session *s, struct conn *conn);

/* S4U2Self (protocol transition): a credential for user@REALM obtained with the
 * host's keytab (its computer account, the first entry, gets the TGT: AD does
 * not issue TGTs to service principals); the directory must allow "any
 * authentication protocol" for the hop that uses it. */
int gss_impersonate(const char *keytab, const char *host_fqdn, const char *user_principal,
		    void **ret_cred, char *err, size_t errlen);

/* The user a credential acts for ("alice@LAB.TEST"), "" if unknown. */
const char *gss_cred_user(const void *cred);
void gss_cred_free(void *cred);
void gss_session_free(struct gss_session *s);
