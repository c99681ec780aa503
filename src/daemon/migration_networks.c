/* Migration networks: listen, advertise, accept (migration_networks.h). */
#include "migration_networks.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "settings.h"

const char *migration_network_of(const json_t *nets, const char *addr)
{
	const json_t *n;
	size_t i;

	json_array_foreach(nets, i, n) {
		const char *cidr = json_string_value(json_object_get(n, "cidr"));
		if (cidr && cidr_contains(cidr, addr))
			return cidr;
	}
	return NULL;
}

bool migration_source_accepted(const json_t *nets, bool use_any_network, const char *addr, char *nets_text,
			       size_t len)
{
	const json_t *n;
	size_t i, off = 0;

	nets_text[0] = '\0';
	json_array_foreach(nets, i, n) {
		const char *cidr = json_string_value(json_object_get(n, "cidr"));
		if (cidr && off < len)
			off += (size_t)snprintf(nets_text + off, len - off, "%s%s", off ? ", " : "", cidr);
	}
	return use_any_network || migration_network_of(nets, addr) != NULL;
}

/* An interface address as text, if it is one a source can reach. */
static bool usable_address(const struct ifaddrs *a, char *buf, size_t len)
{
	if (!a->ifa_addr)
		return false;
	if (a->ifa_addr->sa_family == AF_INET)
		return inet_ntop(AF_INET, &((const struct sockaddr_in *)a->ifa_addr)->sin_addr, buf, (socklen_t)len);
	if (a->ifa_addr->sa_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)a->ifa_addr)->sin6_addr;
		return !IN6_IS_ADDR_LINKLOCAL(in6) && inet_ntop(AF_INET6, in6, buf, (socklen_t)len);
	}
	return false;
}

json_t *migration_addresses(const json_t *nets, const struct ifaddrs *ifs)
{
	json_t *out = json_array();
	const json_t *n;
	size_t i;

	/* priorities are 0..1000 (settings.c); a stable order: priority, then
	 * the order of the networks, then of the interfaces */
	for (json_int_t prio = 0; prio <= 1000; prio++) {
		json_array_foreach(nets, i, n) {
			const char *cidr = json_string_value(json_object_get(n, "cidr"));
			if (!cidr || json_integer_value(json_object_get(n, "priority")) != prio)
				continue;
			for (const struct ifaddrs *a = ifs; a; a = a->ifa_next) {
				char buf[INET6_ADDRSTRLEN];
				if (usable_address(a, buf, sizeof(buf)) && cidr_contains(cidr, buf))
					json_array_append_new(out, json_pack("{s:s, s:I}", "address", buf, "priority", prio));
			}
		}
	}
	return out;
}

bool migration_cidr_canonical(const char *cidr, char *out, size_t len)
{
	uint8_t addr[16], net[16];
	char text[INET6_ADDRSTRLEN];
	int family, prefix;

	if (cidr_parse(cidr, &family, addr, &prefix) < 0) {
		snprintf(out, len, "%s", cidr);
		return true;
	}
	memcpy(net, addr, sizeof(net));
	for (int bit = prefix; bit < (family == AF_INET ? 32 : 128); bit++)
		net[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
	inet_ntop(family, net, text, sizeof(text));
	snprintf(out, len, "%s/%d", text, prefix);
	return memcmp(net, addr, sizeof(net)) == 0;
}
