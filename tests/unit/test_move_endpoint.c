/* The source builds the migration URI itself from a checked prepare reply
 * (review H1): nothing a destination sends reaches QMP's "migrate" as is. */
#include <setjmp.h>
#include <stdarg.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "move_endpoint.h"

static int parse(const char *reply, const char *connected, bool storage, struct move_endpoint *e, char *err)
{
	json_t *j = json_loads(reply, 0, NULL);
	int r;

	assert_non_null(j);
	r = move_endpoint_from_reply(j, connected, storage, e, err, 256);
	json_decref(j);
	return r;
}

static void test_good_reply_ignores_its_uri(void **state)
{
	struct move_endpoint e;
	char err[256];

	(void)state;
	assert_int_equal(parse("{\"uri\":\"exec:id >/tmp/pwned\",\"address\":\"10.78.0.12\",\"port\":49152,"
			       "\"nbd-port\":49153}", "10.78.0.12", true, &e, err), 0);
	assert_string_equal(e.uri, "tcp:10.78.0.12:49152");
	assert_string_equal(e.address, "10.78.0.12");
	assert_int_equal(e.nbd_port, 49153);
}

static void test_ipv6_is_bracketed(void **state)
{
	struct move_endpoint e;
	char err[256];

	(void)state;
	assert_int_equal(parse("{\"address\":\"fd00::12\",\"port\":5000}", "fd00:0::12", false, &e, err), 0);
	assert_string_equal(e.uri, "tcp:[fd00:0::12]:5000");
	assert_int_equal(e.nbd_port, 0);
}

static void test_other_address_refused(void **state)
{
	static const char *const bad[] = {
		"{\"address\":\"10.78.0.13\",\"port\":5000}",          /* another host */
		"{\"address\":\"host2.lab.test\",\"port\":5000}",      /* a name */
		"{\"address\":\"10.78.0.12,fd=3\",\"port\":5000}",     /* option string */
		"{\"address\":\"::ffff:10.78.0.12\",\"port\":5000}",   /* other family */
		"{\"address\":12,\"port\":5000}",                       /* wrong type */
		"{\"port\":5000}",                                      /* missing */
	};
	struct move_endpoint e;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], "10.78.0.12", false, &e, err), -EPROTO);
		assert_non_null(strstr(err, "not the address 10.78.0.12 this host is connected to"));
	}
}

static void test_bad_ports_refused(void **state)
{
	static const char *const bad[] = {
		"{\"address\":\"10.78.0.12\",\"port\":0,\"nbd-port\":5001}",
		"{\"address\":\"10.78.0.12\",\"port\":70000,\"nbd-port\":5001}",
		"{\"address\":\"10.78.0.12\",\"port\":\"5000\",\"nbd-port\":5001}",
		"{\"address\":\"10.78.0.12\",\"port\":-1,\"nbd-port\":5001}",
		"{\"address\":\"10.78.0.12\",\"port\":5000}",                   /* storage needs nbd-port */
		"{\"address\":\"10.78.0.12\",\"port\":5000,\"nbd-port\":65536}",
	};
	struct move_endpoint e;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], "10.78.0.12", true, &e, err), -EPROTO);
		assert_non_null(strstr(err, "an integer from 1 to 65535"));
	}
}

/* review L17: a unix socket has no IP address, and is not read as IPv6 */
static void test_socket_address(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);
	char out[64];
	int sv[2], l, c, a;
	(void)state;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(socket_address(sv[0], true, out, sizeof(out)), -EAFNOSUPPORT);
	assert_int_equal(socket_address(sv[0], false, out, sizeof(out)), -EAFNOSUPPORT);
	close(sv[0]);
	close(sv[1]);

	l = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &sl), 0);
	c = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
	a = accept(l, NULL, NULL);
	assert_true(a >= 0);
	assert_int_equal(socket_address(a, false, out, sizeof(out)), 0);
	assert_string_equal(out, "127.0.0.1");
	assert_int_equal(socket_address(c, true, out, sizeof(out)), 0);
	assert_string_equal(out, "127.0.0.1");
	close(a);
	close(c);
	close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_reply_ignores_its_uri),
		cmocka_unit_test(test_ipv6_is_bracketed),
		cmocka_unit_test(test_other_address_refused),
		cmocka_unit_test(test_bad_ports_refused),
		cmocka_unit_test(test_socket_address),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
