/* MS-PAC logon information: the group SIDs of a user (pac.h).
 *
 * Layout of the buffer ([MS-RPCE] 2.2.6 type serialization version 1, NDR20,
 * 32-bit pointers; [MS-PAC] 2.5 KERB_VALIDATION_INFO):
 *
 *   common header  01 10 08 00 cc cc cc cc   version 1, little-endian, 8 bytes
 *   private header u32 object length, u32 filler
 *   u32 referent of the top-level pointer, then the fixed part of the
 *   structure (216 bytes; RPC_UNICODE_STRING = u16 Length, u16 MaximumLength,
 *   u32 pointer), then the referents of its pointers in the order the
 *   pointers appear: six strings, GroupIds, two strings, LogonDomainId,
 *   ExtraSids (the array, then the SIDs its elements point to),
 *   ResourceGroupDomainSid, ResourceGroupIds.
 *
 * Every read goes through struct rd, which refuses to step past the object;
 * counts are checked against the limits before anything is sized by them. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pac.h"

struct rd {
	const uint8_t *p;
	size_t len;
	size_t off;
};

struct sid {
	uint8_t n;
	uint64_t auth;
	uint32_t sub[PAC_MAX_SUBAUTH];
};

struct sids {
	char **v;
	size_t n, cap;
};

static int rd_align(struct rd *r, size_t a)
{
	size_t pad = (a - r->off % a) % a;

	if (pad > r->len - r->off)
		return -EBADMSG;
	r->off += pad;
	return 0;
}

static int rd_skip(struct rd *r, size_t n)
{
	if (n > r->len - r->off)
		return -EBADMSG;
	r->off += n;
	return 0;
}

static int rd_u8(struct rd *r, uint8_t *v)
{
	if (r->len - r->off < 1)
		return -EBADMSG;
	*v = r->p[r->off++];
	return 0;
}

static int rd_u16(struct rd *r, uint16_t *v)
{
	if (rd_align(r, 2) < 0 || r->len - r->off < 2)
		return -EBADMSG;
	*v = (uint16_t)(r->p[r->off] | r->p[r->off + 1] << 8);
	r->off += 2;
	return 0;
}

static int rd_u32(struct rd *r, uint32_t *v)
{
	const uint8_t *b;

	if (rd_align(r, 4) < 0 || r->len - r->off < 4)
		return -EBADMSG;
	b = r->p + r->off;
	*v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	r->off += 4;
	return 0;
}

/* RPC_UNICODE_STRING in the fixed part. */
struct ustr {
	uint16_t length, maxlen;
	uint32_t ptr;
};

static int rd_ustr(struct rd *r, struct ustr *s)
{
	if (rd_u16(r, &s->length) < 0 || rd_u16(r, &s->maxlen) < 0 || rd_u32(r, &s->ptr) < 0)
		return -EBADMSG;
	if (s->length > s->maxlen || (s->length & 1) || (s->maxlen & 1))
		return -EBADMSG;
	return 0;
}

/* The deferred characters of a string: a conformant varying array whose
 * counts must agree with the lengths of the fixed part. Skipped. */
static int rd_ustr_data(struct rd *r, const struct ustr *s)
{
	uint32_t max, offset, actual;

	if (!s->ptr)
		return 0;
	if (rd_u32(r, &max) < 0 || rd_u32(r, &offset) < 0 || rd_u32(r, &actual) < 0)
		return -EBADMSG;
	if (offset != 0 || max != s->maxlen / 2u || actual != s->length / 2u)
		return -EBADMSG;
	return rd_skip(r, (size_t)actual * 2);
}

/* RPC_SID: conformance (the sub-authority count), revision, count,
 * 6-byte big-endian identifier authority, the sub-authorities. */
static int rd_sid(struct rd *r, struct sid *sid)
{
	uint32_t conf;
	uint8_t rev, n, a;

	if (rd_u32(r, &conf) < 0 || rd_u8(r, &rev) < 0 || rd_u8(r, &n) < 0)
		return -EBADMSG;
	if (rev != 1 || n > PAC_MAX_SUBAUTH || conf != n)
		return -EBADMSG;
	sid->n = n;
	sid->auth = 0;
	for (int i = 0; i < 6; i++) {
		if (rd_u8(r, &a) < 0)
			return -EBADMSG;
		sid->auth = sid->auth << 8 | a;
	}
	for (uint8_t i = 0; i < n; i++)
		if (rd_u32(r, &sid->sub[i]) < 0)
			return -EBADMSG;
	return 0;
}

static void sid_format(const struct sid *sid, char *out, size_t len)
{
	size_t off;

	if (sid->auth >> 32)
		off = (size_t)snprintf(out, len, "S-1-0x%012" PRIX64, sid->auth);
	else
		off = (size_t)snprintf(out, len, "S-1-%" PRIu64, sid->auth);
	for (uint8_t i = 0; i < sid->n && off < len; i++)
		off += (size_t)snprintf(out + off, len - off, "-%" PRIu32, sid->sub[i]);
}

static int sids_add(struct sids *s, const struct sid *sid)
{
	char buf[PAC_SID_STR_MAX], *copy;

	sid_format(sid, buf, sizeof(buf));
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], buf))
			return 0;
	if (s->n >= PAC_MAX_SIDS)
		return -E2BIG;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		char **v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	copy = strdup(buf);
	if (!copy)
		return -ENOMEM;
	s->v[s->n++] = copy;
	return 0;
}

static int sids_add_rid(struct sids *s, const struct sid *domain, uint32_t rid)
{
	struct sid g = *domain;

	if (g.n >= PAC_MAX_SUBAUTH)
		return -EBADMSG;
	g.sub[g.n++] = rid;
	return sids_add(s, &g);
}

/* The conformant-array header of count 8-byte elements behind pointer ptr:
 * 1 when the array follows, 0 when there is none, or a negative error. */
static int rd_array8(struct rd *r, uint32_t ptr, uint32_t count)
{
	uint32_t max;

	if (!ptr)
		return count ? -EBADMSG : 0;
	if (rd_u32(r, &max) < 0 || max != count)
		return -EBADMSG;
	if (count > PAC_MAX_SIDS)
		return -E2BIG;
	if ((size_t)count * 8 > r->len - r->off)
		return -EBADMSG;
	return 1;
}

/* A GROUP_MEMBERSHIP array (RID, attributes) of count elements. */
static int rd_groups(struct rd *r, uint32_t ptr, uint32_t count, const struct sid *domain, struct sids *out)
{
	uint32_t rid, attr;
	int e;

	if ((e = rd_array8(r, ptr, count)) <= 0)
		return e;
	if (count && !domain)
		return -EBADMSG;
	for (uint32_t i = 0; i < count; i++) {
		if (rd_u32(r, &rid) < 0 || rd_u32(r, &attr) < 0)
			return -EBADMSG;
		if ((e = sids_add_rid(out, domain, rid)) < 0)
			return e;
	}
	return 0;
}

/* KERB_SID_AND_ATTRIBUTES array, then the SIDs its elements point to. */
static int rd_extra_sids(struct rd *r, uint32_t ptr, uint32_t count, struct sids *out)
{
	uint32_t sidptr, attr;
	size_t elems;
	struct sid sid;
	int e;

	if ((e = rd_array8(r, ptr, count)) <= 0)
		return e;
	elems = r->off;
	r->off += (size_t)count * 8;
	for (uint32_t i = 0; i < count; i++) {
		struct rd el = {r->p, r->len, elems + (size_t)i * 8};

		if (rd_u32(&el, &sidptr) < 0 || rd_u32(&el, &attr) < 0)
			return -EBADMSG;
		if (!sidptr)
			continue;
		if (rd_sid(r, &sid) < 0)
			return -EBADMSG;
		if ((e = sids_add(out, &sid)) < 0)
			return e;
	}
	return 0;
}

void pac_sids_free(char **sids, size_t n)
{
	if (!sids)
		return;
	for (size_t i = 0; i < n; i++)
		free(sids[i]);
	free(sids);
}

int pac_logon_group_sids(const uint8_t *buf, size_t len, char ***ret_sids, size_t *ret_n)
{
	struct rd hdr = {buf, len, 0}, r;
	struct ustr str[8];     /* EffectiveName .. HomeDirectoryDrive, LogonServer, LogonDomainName */
	struct sid domain, resdomain;
	struct sids out = {0};
	uint32_t objlen, filler, top, u32, primary, group_count, group_ptr, domain_ptr;
	uint32_t sid_count, extra_ptr, resdomain_ptr, res_count, res_ptr;
	uint16_t u16;
	uint8_t version, endian;
	size_t groups_off;
	int e = -EBADMSG;

	*ret_sids = NULL;
	*ret_n = 0;
	if (!buf)
		return -EBADMSG;
	/* common and private header */
	if (rd_u8(&hdr, &version) < 0 || rd_u8(&hdr, &endian) < 0 || rd_u16(&hdr, &u16) < 0 ||
	    rd_u32(&hdr, &filler) < 0 || rd_u32(&hdr, &objlen) < 0 || rd_u32(&hdr, &filler) < 0)
		return -EBADMSG;
	if (version != 1 || endian != 0x10 || u16 != 8 || objlen > len - hdr.off)
		return -EBADMSG;
	/* the object, aligned from its own start (the headers are 16 bytes) */
	r = (struct rd){buf + hdr.off, objlen, 0};
	if (rd_u32(&r, &top) < 0 || !top)
		goto out;
	/* fixed part: six FILETIMEs, six strings */
	if (rd_skip(&r, 6 * 8) < 0)
		goto out;
	for (int i = 0; i < 6; i++)
		if (rd_ustr(&r, &str[i]) < 0)
			goto out;
	/* LogonCount, BadPasswordCount, UserId, PrimaryGroupId, GroupCount, GroupIds */
	if (rd_u16(&r, &u16) < 0 || rd_u16(&r, &u16) < 0 || rd_u32(&r, &u32) < 0 || rd_u32(&r, &primary) < 0 ||
	    rd_u32(&r, &group_count) < 0 || rd_u32(&r, &group_ptr) < 0)
		goto out;
	/* UserFlags, UserSessionKey, LogonServer, LogonDomainName, LogonDomainId */
	if (rd_u32(&r, &u32) < 0 || rd_skip(&r, 16) < 0 || rd_ustr(&r, &str[6]) < 0 || rd_ustr(&r, &str[7]) < 0 ||
	    rd_u32(&r, &domain_ptr) < 0)
		goto out;
	/* Reserved1[2], UserAccountControl, SubAuthStatus, two FILETIMEs,
	 * FailedILogonCount, Reserved3 */
	if (rd_skip(&r, 2 * 4 + 4 + 4 + 2 * 8 + 4 + 4) < 0)
		goto out;
	if (rd_u32(&r, &sid_count) < 0 || rd_u32(&r, &extra_ptr) < 0 || rd_u32(&r, &resdomain_ptr) < 0 ||
	    rd_u32(&r, &res_count) < 0 || rd_u32(&r, &res_ptr) < 0)
		goto out;
	if (group_count > PAC_MAX_SIDS || sid_count > PAC_MAX_SIDS || res_count > PAC_MAX_SIDS) {
		e = -E2BIG;
		goto out;
	}
	/* the referents, in pointer order */
	for (int i = 0; i < 6; i++)
		if (rd_ustr_data(&r, &str[i]) < 0)
			goto out;
	/* GroupIds come before LogonDomainId: remember where, read them after it */
	groups_off = r.off;
	if (group_ptr) {
		if (rd_u32(&r, &u32) < 0 || u32 != group_count || (size_t)group_count * 8 > r.len - r.off)
			goto out;
		r.off += (size_t)group_count * 8;
	} else if (group_count) {
		goto out;
	}
	if (rd_ustr_data(&r, &str[6]) < 0 || rd_ustr_data(&r, &str[7]) < 0)
		goto out;
	if (!domain_ptr || rd_sid(&r, &domain) < 0)
		goto out;
	if ((e = sids_add_rid(&out, &domain, primary)) < 0)
		goto out;
	{
		struct rd g = {r.p, r.len, groups_off};

		if ((e = rd_groups(&g, group_ptr, group_count, &domain, &out)) < 0)
			goto out;
	}
	if ((e = rd_extra_sids(&r, extra_ptr, sid_count, &out)) < 0)
		goto out;
	e = -EBADMSG;
	if (resdomain_ptr && rd_sid(&r, &resdomain) < 0)
		goto out;
	if ((e = rd_groups(&r, res_ptr, res_count, resdomain_ptr ? &resdomain : NULL, &out)) < 0)
		goto out;
	*ret_sids = out.v;
	*ret_n = out.n;
	return 0;
out:
	pac_sids_free(out.v, out.n);
	return e;
}

static int parse_u64(const char **s, int base, uint64_t max, uint64_t *ret)
{
	const char *p = *s;
	uint64_t v = 0;
	int d, n = 0;

	for (;; p++, n++) {
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			break;
		if (v > (max - (uint64_t)d) / (uint64_t)base)
			return -EINVAL;
		v = v * (uint64_t)base + (uint64_t)d;
	}
	if (!n)
		return -EINVAL;
	*s = p;
	*ret = v;
	return 0;
}

int sid_normalize(const char *in, char *out, size_t outlen)
{
	struct sid sid = {0};
	const char *p = in;
	uint64_t v;
	char buf[PAC_SID_STR_MAX];

	if ((p[0] != 'S' && p[0] != 's') || p[1] != '-' || p[2] != '1' || p[3] != '-')
		return -EINVAL;
	p += 4;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		p += 2;
		if (parse_u64(&p, 16, 0xffffffffffffULL, &sid.auth) < 0)
			return -EINVAL;
	} else if (parse_u64(&p, 10, 0xffffffffffffULL, &sid.auth) < 0) {
		return -EINVAL;
	}
	while (*p == '-') {
		p++;
		if (sid.n >= PAC_MAX_SUBAUTH || parse_u64(&p, 10, UINT32_MAX, &v) < 0)
			return -EINVAL;
		sid.sub[sid.n++] = (uint32_t)v;
	}
	if (*p)
		return -EINVAL;
	sid_format(&sid, buf, sizeof(buf));
	if ((size_t)snprintf(out, outlen, "%s", buf) >= outlen)
		return -ENAMETOOLONG;
	return 0;
}
