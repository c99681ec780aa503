/* Wire protocol: frames, limits, malformed input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto.h"

static void roundtrip(void **state)
{
	int sv[2];
	struct conn a, b;
	json_t *msg, *got = NULL;
	char err[256];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	conn_init(&a, sv[0], PROTO_MAX_MSG);
	conn_init(&b, sv[1], PROTO_MAX_MSG);
	msg = json_pack("{s:s, s:{s:s}}", "op", "vm.start", "args", "name", "web1");
	assert_int_equal(conn_send(&a, msg), 0);
	assert_int_equal(conn_recv(&b, &got, err, sizeof(err)), 0);
	assert_true(json_equal(msg, got));
	json_decref(msg);
	json_decref(got);
	close(sv[0]);
	assert_int_equal(conn_recv(&b, &got, err, sizeof(err)), -EPIPE);
	close(sv[1]);
}

static void header_checks(void **state)
{
	uint8_t hdr[PROTO_HEADER_LEN];
	uint32_t len;

	(void)state;
	proto_header_encode(hdr, 100);
	assert_int_equal(proto_header_decode(hdr, 1000, &len), 0);
	assert_int_equal(len, 100);
	assert_int_equal(proto_header_decode(hdr, 99, &len), -EMSGSIZE);
	proto_header_encode(hdr, 0);
	assert_int_equal(proto_header_decode(hdr, 1000, &len), -EMSGSIZE);
	proto_header_encode(hdr, 10);
	hdr[3] = PROTO_VERSION + 1;
	assert_int_equal(proto_header_decode(hdr, 1000, &len), -EBADMSG);
	proto_header_encode(hdr, 10);
	hdr[0] = 'X';
	assert_int_equal(proto_header_decode(hdr, 1000, &len), -EBADMSG);
}

static void bad_payloads(void **state)
{
	static const char *const bad[] = {
		"", "{", "[1,2]", "\"op\"", "{\"op\":1}x", "{\"a\":1,\"a\":2}", "nul\0",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	};
	char err[256];
	json_t *v;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = NULL;
		assert_int_equal(proto_parse((const uint8_t *)bad[i], strlen(bad[i]) + (i == 6), &v, err, sizeof(err)),
				 -EPROTO);
		assert_null(v);
		assert_true(strlen(err) > 0);
	}
	/* deep nesting inside an object is refused too */
	const char *deep = "{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}";
	assert_int_equal(proto_parse((const uint8_t *)deep, strlen(deep), &v, err, sizeof(err)), -EPROTO);
}

static void request_checks(void **state)
{
	char err[256];
	const char *op;
	json_t *args, *m;

	(void)state;
	m = json_pack("{s:s}", "op", "vm.list");
	assert_int_equal(proto_check_request(m, &op, &args, err, sizeof(err)), 0);
	assert_string_equal(op, "vm.list");
	assert_null(args);
	json_decref(m);
	m = json_pack("{s:s, s:[]}", "op", "vm.list", "args");
	assert_int_equal(proto_check_request(m, &op, &args, err, sizeof(err)), -EPROTO);
	json_decref(m);
	m = json_pack("{s:i}", "op", 3);
	assert_int_equal(proto_check_request(m, &op, &args, err, sizeof(err)), -EPROTO);
	json_decref(m);
	m = json_pack("{s:s}", "op", "");
	assert_int_equal(proto_check_request(m, &op, &args, err, sizeof(err)), -EPROTO);
	json_decref(m);
}

static void oversized_and_truncated(void **state)
{
	int sv[2];
	struct conn b;
	uint8_t hdr[PROTO_HEADER_LEN];
	json_t *got = NULL;
	char err[256];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	conn_init(&b, sv[1], 1024);
	proto_header_encode(hdr, 4096);
	assert_int_equal(write(sv[0], hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	assert_int_equal(conn_recv(&b, &got, err, sizeof(err)), -EMSGSIZE);
	proto_header_encode(hdr, 100);
	assert_int_equal(write(sv[0], hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	assert_int_equal(write(sv[0], "{\"op\"", 5), 5);
	close(sv[0]);
	assert_int_equal(conn_recv(&b, &got, err, sizeof(err)), -EBADMSG);
	close(sv[1]);
}

static void replies(void **state)
{
	json_t *r;

	(void)state;
	r = reply_error("not_found", "see ferry vm list", "no VM named %s", "x");
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "error"), "message")),
			    "no VM named x");
	json_decref(r);
	r = reply_ok(NULL);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
}

/* A message cut at 1024 bytes inside a '→', or with a byte that is not
 * UTF-8, still makes a reply (review L11): before, json_pack gave NULL. */
static void reply_error_utf8(void **state)
{
	char pad[1022];
	const char *m;
	json_t *r;

	(void)state;
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	r = reply_error("failed", NULL, "%s\xe2\x86\x92 more", pad); /* 1021 + 3 bytes: cut after E2 86 */
	assert_non_null(r);
	m = json_string_value(json_object_get(json_object_get(r, "error"), "message"));
	assert_int_equal(strlen(m), 1021);
	json_decref(r);
	r = reply_error("failed", NULL, "disk %s", "/srv/\xff.img");
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "error"), "message")),
			    "disk /srv/?.img");
	json_decref(r);
	r = reply_ok(NULL);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_true(json_is_object(json_object_get(r, "result")));
	json_decref(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(roundtrip),     cmocka_unit_test(header_checks),
		cmocka_unit_test(bad_payloads),  cmocka_unit_test(request_checks),
		cmocka_unit_test(oversized_and_truncated), cmocka_unit_test(replies),
		cmocka_unit_test(reply_error_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
