/* Helpers of util.c: UTF-8 that jansson accepts (review L11). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "util.h"

/* "→" is E2 86 92: every cut inside it is dropped, nothing else. */
static void truncate_cuts_incomplete_character(void **state)
{
	char full[] = "a \xe2\x86\x92 b", buf[16];

	(void)state;
	for (size_t n = 1; n <= strlen(full) + 1; n++) {
		snprintf(buf, n, "%s", full);
		json_t *j;
		utf8_truncate(buf);
		j = json_string(buf);
		assert_non_null(j);
		json_decref(j);
		if (n - 1 == 3 || n - 1 == 4)
			assert_string_equal(buf, "a "); /* cut after E2 or E2 86 */
	}
	strcpy(buf, "x\xf0\x9f\x98");     /* 3 of the 4 bytes of U+1F600 */
	utf8_truncate(buf);
	assert_string_equal(buf, "x");
	strcpy(buf, "x\xf0\x9f\x98\x80"); /* complete: kept */
	utf8_truncate(buf);
	assert_string_equal(buf, "x\xf0\x9f\x98\x80");
	strcpy(buf, "plain");
	utf8_truncate(buf);
	assert_string_equal(buf, "plain");
	buf[0] = '\0';
	utf8_truncate(buf);
	assert_string_equal(buf, "");
}

static void sanitize_replaces_invalid_bytes(void **state)
{
	char a[] = "ok \xff\xfe \xc0\xaf \xed\xa0\x80 \xe2\x86\x92 \x80";
	char b[] = "caf\xc3\xa9";
	json_t *s;

	(void)state;
	assert_null(json_string(a));
	/* 0xff, 0xfe, overlong C0 AF (2), surrogate ED A0 80 (3), lone 0x80 */
	assert_int_equal(utf8_sanitize(a, strlen(a)), 8);
	assert_string_equal(a, "ok ?? ?? ??? \xe2\x86\x92 ?");
	s = json_string(a);
	assert_non_null(s);
	json_decref(s);
	assert_int_equal(utf8_sanitize(b, strlen(b)), 0);
	assert_string_equal(b, "caf\xc3\xa9");
}

static void clean_makes_any_text_packable(void **state)
{
	char buf[7];
	json_t *s;

	(void)state;
	snprintf(buf, sizeof(buf), "%s", "\xff\xe2\x86\x92\xe2\x86\x92"); /* 6 bytes fit: the 2nd arrow is cut */
	utf8_clean(buf);
	assert_string_equal(buf, "?\xe2\x86\x92");
	s = json_string(buf);
	assert_non_null(s);
	json_decref(s);
}

/* What vm console shows of a guest's bytes (review L16). */
static void visible_output(void **state)
{
	const char in[] = "ok\r\n\tx\x1b[2J\x07\x7f\xc2\x9b" "31m \xe2\x86\x92 \xc3\xa9";
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	(void)state;
	assert_non_null(f);
	fput_visible(in, sizeof(in) - 1, f);
	fclose(f);
	assert_string_equal(out, "ok\r\n\tx^[[2J^G^?\\x9b31m \xe2\x86\x92 \xc3\xa9");
	free(out);
}

static void peer_uid_of_socketpair(void **state)
{
	int sv[2];
	uid_t uid = (uid_t)-1;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(socket_peer_uid(sv[0], &uid), 0);
	assert_int_equal(uid, geteuid());
	close(sv[0]);
	close(sv[1]);
	assert_true(socket_peer_uid(-1, &uid) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(truncate_cuts_incomplete_character),
		cmocka_unit_test(sanitize_replaces_invalid_bytes),
		cmocka_unit_test(clean_makes_any_text_packable),
		cmocka_unit_test(visible_output),
		cmocka_unit_test(peer_uid_of_socketpair),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
