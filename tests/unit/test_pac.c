/* MS-PAC logon information (pac.c): a real buffer from the lab's Samba AD DC,
 * and damaged copies of it that must be refused cleanly. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pac.h"

/* urn:mspac:logon-info of alice@LAB.TEST (member of ferry-admins, RID 1105)
 * in a service ticket for ferry/host1.lab.test, as MIT GSSAPI gave it to
 * the acceptor (gss_get_name_attribute, authenticated). */
static const uint8_t alice_logon_info[] = {
	0x01, 0x10, 0x08, 0x00, 0xcc, 0xcc, 0xcc, 0xcc, 0xb8, 0x01, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x44, 0x8f, 0xe5, 0x00,
	0x57, 0x7e, 0xdd, 0x01, 0x44, 0x8f, 0xe5, 0x00, 0x57, 0x7e, 0xdd, 0x01,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x0a, 0x00, 0x0a, 0x00,
	0x04, 0x00, 0x02, 0x00, 0x16, 0x00, 0x16, 0x00, 0x08, 0x00, 0x02, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x10, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x18, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x4f, 0x04, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
	0x1c, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x04, 0x00, 0x06, 0x00, 0x20, 0x00, 0x02, 0x00, 0x06, 0x00, 0x08, 0x00,
	0x24, 0x00, 0x02, 0x00, 0x28, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x01, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x61, 0x00, 0x6c, 0x00,
	0x69, 0x00, 0x63, 0x00, 0x65, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x41, 0x00, 0x6c, 0x00,
	0x69, 0x00, 0x63, 0x00, 0x65, 0x00, 0x20, 0x00, 0x41, 0x00, 0x64, 0x00,
	0x6d, 0x00, 0x69, 0x00, 0x6e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
	0x01, 0x02, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x51, 0x04, 0x00, 0x00,
	0x07, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x02, 0x00, 0x00, 0x00, 0x44, 0x00, 0x43, 0x00, 0x04, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x4c, 0x00, 0x41, 0x00,
	0x42, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00, 0xa1, 0x7d, 0xdd, 0xff,
	0x11, 0x20, 0x45, 0x1b, 0x43, 0x3d, 0x0e, 0xe1, 0x01, 0x00, 0x00, 0x00,
	0x30, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x01, 0x00, 0x00, 0x00,
};

#define DOMAIN "S-1-5-21-4292705697-457515025-3775806787"
static const char *const alice_sids[] = {
	DOMAIN "-513",    /* primary group and GroupIds[0]: Domain Users */
	DOMAIN "-1105",   /* GroupIds[1]: ferry-admins */
	"S-1-18-1",       /* ExtraSids[0]: authentication authority asserted identity */
};

/* Offsets in alice_logon_info (16-byte headers, then the object). */
enum {
	OFF_VERSION = 0, OFF_ENDIAN = 1, OFF_OBJLEN = 8, OFF_TOP = 16,
	OFF_EFFECTIVE_NAME_LEN = 84, OFF_GROUP_COUNT = 128, OFF_GROUP_PTR = 132,
	OFF_DOMAIN_PTR = 172, OFF_SID_COUNT = 216, OFF_EXTRA_PTR = 220,
	OFF_GROUPS_CONF = 344, OFF_DOMAIN_SID = 400, OFF_EXTRA_CONF = 428, OFF_EXTRA_SID = 440,
};

static uint8_t *copy(void)
{
	uint8_t *b = malloc(sizeof(alice_logon_info));

	assert_non_null(b);
	memcpy(b, alice_logon_info, sizeof(alice_logon_info));
	return b;
}

static void put32(uint8_t *b, size_t off, uint32_t v)
{
	b[off] = (uint8_t)v;
	b[off + 1] = (uint8_t)(v >> 8);
	b[off + 2] = (uint8_t)(v >> 16);
	b[off + 3] = (uint8_t)(v >> 24);
}

static int parse(const uint8_t *b, size_t len)
{
	char **sids = (char **)1;
	size_t n = 99;
	int r = pac_logon_group_sids(b, len, &sids, &n);

	if (r < 0) {
		assert_null(sids);
		assert_int_equal(n, 0);
	}
	pac_sids_free(sids, n);
	return r;
}

static void real_buffer(void **state)
{
	char **sids;
	size_t n;

	(void)state;
	assert_int_equal(sizeof(alice_logon_info), 456);
	assert_int_equal(pac_logon_group_sids(alice_logon_info, sizeof(alice_logon_info), &sids, &n), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(sids[i], alice_sids[i]);
	pac_sids_free(sids, n);
}

static void trailing_bytes_ignored(void **state)
{
	uint8_t b[sizeof(alice_logon_info) + 8] = {0};

	(void)state;
	memcpy(b, alice_logon_info, sizeof(alice_logon_info));
	assert_int_equal(parse(b, sizeof(b)), 0);
}

static void every_truncation_fails(void **state)
{
	(void)state;
	assert_int_equal(parse(NULL, 0), -EBADMSG);
	for (size_t len = 0; len < sizeof(alice_logon_info); len++) {
		/* a heap copy of exactly len bytes: ASan catches any read past it */
		uint8_t *b = malloc(len ? len : 1);

		assert_non_null(b);
		memcpy(b, alice_logon_info, len);
		/* the object length still claims the whole buffer */
		assert_int_equal(parse(b, len), -EBADMSG);
		/* and with the object length shrunk to what is there */
		if (len >= 16) {
			put32(b, OFF_OBJLEN, (uint32_t)(len - 16));
			assert_int_equal(parse(b, len), -EBADMSG);
		}
		free(b);
	}
}

struct corruption {
	const char *what;
	size_t off;
	int width;      /* 1 or 4 bytes */
	uint32_t value;
	int expect;
};

static void corruptions_fail(void **state)
{
	static const struct corruption c[] = {
		{"NDR version 2", OFF_VERSION, 1, 2, -EBADMSG},
		{"big-endian", OFF_ENDIAN, 1, 0x00, -EBADMSG},
		{"object longer than the buffer", OFF_OBJLEN, 4, 441, -EBADMSG},
		{"object length 4 GiB", OFF_OBJLEN, 4, 0xffffffff, -EBADMSG},
		{"null top-level pointer", OFF_TOP, 4, 0, -EBADMSG},
		{"name length disagrees with its array", OFF_EFFECTIVE_NAME_LEN, 1, 12, -EBADMSG},
		{"odd name length", OFF_EFFECTIVE_NAME_LEN, 1, 9, -EBADMSG},
		{"GroupCount 2^32-1", OFF_GROUP_COUNT, 4, 0xffffffff, -E2BIG},
		{"GroupCount past the limit", OFF_GROUP_COUNT, 4, PAC_MAX_SIDS + 1, -E2BIG},
		{"GroupCount disagrees with the array", OFF_GROUP_COUNT, 4, 3, -EBADMSG},
		{"group array count huge", OFF_GROUPS_CONF, 4, 0x7fffffff, -EBADMSG},
		{"groups without their array", OFF_GROUP_PTR, 4, 0, -EBADMSG},
		{"no LogonDomainId", OFF_DOMAIN_PTR, 4, 0, -EBADMSG},
		{"domain SID revision 2", OFF_DOMAIN_SID + 4, 1, 2, -EBADMSG},
		{"domain SID with 16 sub-authorities", OFF_DOMAIN_SID + 5, 1, 16, -EBADMSG},
		{"domain SID count disagrees", OFF_DOMAIN_SID + 5, 1, 5, -EBADMSG},
		{"domain SID conformance 255", OFF_DOMAIN_SID, 4, 255, -EBADMSG},
		{"SidCount past the limit", OFF_SID_COUNT, 4, 0x1000, -E2BIG},
		{"SidCount disagrees with the array", OFF_SID_COUNT, 4, 2, -EBADMSG},
		{"extra SIDs without their array", OFF_EXTRA_PTR, 4, 0, -EBADMSG},
		{"extra SID array count huge", OFF_EXTRA_CONF, 4, 0x20000000, -EBADMSG},
		{"extra SID with 15 sub-authorities, cut short", OFF_EXTRA_SID + 5, 1, 15, -EBADMSG},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		uint8_t *b = copy();

		if (c[i].width == 1)
			b[c[i].off] = (uint8_t)c[i].value;
		else
			put32(b, c[i].off, c[i].value);
		if (parse(b, sizeof(alice_logon_info)) != c[i].expect)
			fail_msg("%s: expected %d", c[i].what, c[i].expect);
		free(b);
	}
}

/* Any single damaged byte: refused, or SIDs that still look like SIDs. */
static void every_byte_flip_is_safe(void **state)
{
	(void)state;
	for (size_t off = 0; off < sizeof(alice_logon_info); off++) {
		for (unsigned x = 1; x < 256; x <<= 1) {
			uint8_t *b = copy();
			char **sids;
			size_t n;
			int r;

			b[off] ^= (uint8_t)(x == 128 ? 0xff : x);
			r = pac_logon_group_sids(b, sizeof(alice_logon_info), &sids, &n);
			assert_true(r == 0 || r == -EBADMSG || r == -E2BIG);
			if (r == 0) {
				assert_true(n <= PAC_MAX_SIDS);
				for (size_t i = 0; i < n; i++)
					assert_true(strncmp(sids[i], "S-1-", 4) == 0 && strlen(sids[i]) < PAC_SID_STR_MAX);
			}
			pac_sids_free(sids, r == 0 ? n : 0);
			free(b);
		}
	}
}

static void sids_normalize(void **state)
{
	char out[PAC_SID_STR_MAX], small[8];

	(void)state;
	assert_int_equal(sid_normalize(DOMAIN "-1105", out, sizeof(out)), 0);
	assert_string_equal(out, DOMAIN "-1105");
	assert_int_equal(sid_normalize("s-1-5-21-01-2-3-1105", out, sizeof(out)), 0);
	assert_string_equal(out, "S-1-5-21-1-2-3-1105");
	assert_int_equal(sid_normalize("S-1-0x000000000012-1", out, sizeof(out)), 0);
	assert_string_equal(out, "S-1-18-1");
	assert_int_equal(sid_normalize("S-1-0xffffffffffff-7", out, sizeof(out)), 0);
	assert_string_equal(out, "S-1-0xFFFFFFFFFFFF-7");
	assert_int_equal(sid_normalize("S-1-5", out, sizeof(out)), 0);
	assert_string_equal(out, "S-1-5");
	assert_int_equal(sid_normalize("S-1-1-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15", out, sizeof(out)), 0);

	static const char *const bad[] = {
		"", "S", "S-1", "S-1-", "S-2-5-21", "X-1-5", "S-1-5-", "S-1-5--1", "S-1-5-21 ", " S-1-5",
		"S-1-5-+1", "S-1-5--", "S-1-5-4294967296", "S-1-281474976710656-1", "S-1-0x1000000000000-1",
		"S-1-0x-1", "S-1-5-0x15", "S-1-1-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16", "S-1-5-21-1\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sid_normalize(bad[i], out, sizeof(out)) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
	assert_int_equal(sid_normalize(DOMAIN "-1105", small, sizeof(small)), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(real_buffer),           cmocka_unit_test(trailing_bytes_ignored),
		cmocka_unit_test(every_truncation_fails), cmocka_unit_test(corruptions_fail),
		cmocka_unit_test(every_byte_flip_is_safe), cmocka_unit_test(sids_normalize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
