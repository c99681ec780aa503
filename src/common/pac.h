/* The group SIDs of a Kerberos user, from the MS-PAC logon information
 * (PAC_LOGON_INFO, [MS-PAC] 2.5) that an Active Directory KDC puts in every
 * service ticket. MIT GSSAPI hands it to the acceptor, signature checked, as
 * the name attribute "urn:mspac:logon-info" (gss.h gss_session_group_sids).
 *
 * The buffer is an NDR type serialization (version 1, [MS-RPCE] 2.2.6) of a
 * KERB_VALIDATION_INFO. The parser reads it with bounds checks on every
 * access, trusts no count or length in it, and refuses more than PAC_MAX_SIDS
 * SIDs, SIDs with more than PAC_MAX_SUBAUTH sub-authorities and anything it
 * does not expect (big-endian or other NDR versions, counts that disagree). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAC_MAX_SIDS 2048          /* AD puts at most ~1015 in a token */
#define PAC_MAX_SUBAUTH 15         /* SID_MAX_SUB_AUTHORITIES */
#define PAC_SID_STR_MAX 192        /* "S-1-0x" + 12 hex + 15 x "-4294967295" + NUL */

/* The SIDs of the groups the user is a member of, as strings
 * ("S-1-5-21-4292705697-457515025-3775806787-513"), in PAC order without
 * duplicates: LogonDomainId + PrimaryGroupId, LogonDomainId + each GroupIds
 * RID, each ExtraSids SID (universal groups of other domains, well-known
 * SIDs such as S-1-18-1), ResourceGroupDomainSid + each ResourceGroupIds RID.
 * The user's own SID is not among them. On success *ret_sids is a malloc'd
 * array of *ret_n malloc'd strings (pac_sids_free). Returns 0, -EBADMSG for
 * a malformed buffer, -E2BIG past the limits, -ENOMEM. */
int pac_logon_group_sids(const uint8_t *buf, size_t len, char ***ret_sids, size_t *ret_n);
void pac_sids_free(char **sids, size_t n);

/* Checks a SID in string form ("S-1-5-21-...-1105", case-insensitive "s-",
 * identifier authority decimal or 0x hex, at most PAC_MAX_SUBAUTH
 * sub-authorities of 32 bits) and writes its canonical form, the one
 * pac_logon_group_sids produces, into out. Returns 0, -EINVAL, -ENAMETOOLONG. */
int sid_normalize(const char *in, char *out, size_t outlen);
