/* The migration networks (host setting migration-networks, a list of
 * {cidr, priority}) in one place, for both ends of a move: which local
 * addresses the TCP 6600 listener binds, which addresses a destination
 * advertises to a source (IPv4 and IPv6, best priority first), and which
 * sources it accepts. Pure functions of the settings and the interface list,
 * so that they can be tested without a network. */
#pragma once
#include <ifaddrs.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The network of nets that holds addr (a numeric address), else NULL. */
const char *migration_network_of(const json_t *nets, const char *addr);
/* Whether a source at addr may move a VM here: use-any-network, or addr in
 * one of nets. nets_text gets the networks for a refusal ("a, b"). */
bool migration_source_accepted(const json_t *nets, bool use_any_network, const char *addr, char *nets_text,
			       size_t len);
/* The addresses of ifs inside nets, as [{address, priority}], by priority
 * then interface order; IPv6 link-local addresses (which need a zone) are
 * left out. */
json_t *migration_addresses(const json_t *nets, const struct ifaddrs *ifs);
/* The canonical text of a valid CIDR (host bits cleared, the address as
 * inet_ntop writes it); false if the text had host bits set. */
bool migration_cidr_canonical(const char *cidr, char *out, size_t len);
