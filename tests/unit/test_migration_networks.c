/* migration_networks.c: one answer for listening, advertising and
 * accepting, IPv4 and IPv6 alike, from the settings and an interface list
 * built here (no network needed). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "migration_networks.h"

#define MAX_IFS 8

static struct ifaddrs ifs[MAX_IFS];
static struct sockaddr_storage addrs[MAX_IFS];

/* A list of interface addresses, NULL-terminated. */
static struct ifaddrs *interfaces(const char *first, ...)
{
	va_list ap;
	size_t n = 0;

	memset(ifs, 0, sizeof(ifs));
	va_start(ap, first);
	for (const char *a = first; a && n < MAX_IFS; a = va_arg(ap, const char *), n++) {
		struct sockaddr_in *in = (struct sockaddr_in *)&addrs[n];
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addrs[n];
		memset(&addrs[n], 0, sizeof(addrs[n]));
		if (inet_pton(AF_INET, a, &in->sin_addr) == 1)
			in->sin_family = AF_INET;
		else if (inet_pton(AF_INET6, a, &in6->sin6_addr) == 1)
			in6->sin6_family = AF_INET6;
		ifs[n].ifa_name = "eth0";
		ifs[n].ifa_addr = (struct sockaddr *)&addrs[n];
		if (n > 0)
			ifs[n - 1].ifa_next = &ifs[n];
	}
	va_end(ap);
	return n ? &ifs[0] : NULL;
}

static json_t *networks(void)
{
	return json_pack("[{s:s, s:i}, {s:s, s:i}]", "cidr", "10.78.0.0/24", "priority", 5, "cidr", "fd00:78::/64",
			 "priority", 1);
}

static void advertises_ipv4_and_ipv6_by_priority(void **state)
{
	json_t *nets = networks(), *out;
	struct ifaddrs *l = interfaces("127.0.0.1", "10.77.0.12", "10.78.0.12", "fe80::1", "fd00:78::12", NULL);

	(void)state;
	out = migration_addresses(nets, l);
	assert_int_equal(json_array_size(out), 2);
	/* the IPv6 network has the better priority (1) */
	assert_string_equal(json_string_value(json_object_get(json_array_get(out, 0), "address")), "fd00:78::12");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(out, 0), "priority")), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(out, 1), "address")), "10.78.0.12");
	json_decref(out);
	json_decref(nets);
}

static void link_local_is_not_advertised(void **state)
{
	json_t *nets = json_pack("[{s:s, s:i}]", "cidr", "fe80::/10", "priority", 0), *out;

	(void)state;
	out = migration_addresses(nets, interfaces("fe80::1", NULL));
	assert_int_equal(json_array_size(out), 0);
	json_decref(out);
	json_decref(nets);
}

static void listening_and_accepting_agree(void **state)
{
	json_t *nets = networks();
	char text[128];

	(void)state;
	assert_string_equal(migration_network_of(nets, "10.78.0.11"), "10.78.0.0/24");
	assert_string_equal(migration_network_of(nets, "fd00:78::11"), "fd00:78::/64");
	assert_null(migration_network_of(nets, "10.77.0.11"));
	assert_true(migration_source_accepted(nets, false, "fd00:78::11", text, sizeof(text)));
	assert_false(migration_source_accepted(nets, false, "10.77.0.11", text, sizeof(text)));
	assert_string_equal(text, "10.78.0.0/24, fd00:78::/64");
	assert_true(migration_source_accepted(nets, true, "10.77.0.11", text, sizeof(text)));
	json_decref(nets);
}

static void cidr_canonical(void **state)
{
	char out[64];

	(void)state;
	assert_true(migration_cidr_canonical("10.78.0.0/24", out, sizeof(out)));
	assert_string_equal(out, "10.78.0.0/24");
	assert_false(migration_cidr_canonical("10.78.0.5/24", out, sizeof(out)));
	assert_string_equal(out, "10.78.0.0/24");
	assert_true(migration_cidr_canonical("FD00:78:0::/64", out, sizeof(out)));
	assert_string_equal(out, "fd00:78::/64");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(advertises_ipv4_and_ipv6_by_priority),
		cmocka_unit_test(link_local_is_not_advertised),
		cmocka_unit_test(listening_and_accepting_agree),
		cmocka_unit_test(cidr_canonical),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
