/* Where the source's QEMU sends the guest: decided by the source from the
 * destination's prepare reply, never taken from it (review H1). */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define ENDPOINT_URI_MAX 80

struct move_endpoint {
	char address[64];             /* IP literal, as inet_ntop writes it */
	int port;                     /* migration stream, 1..65535 */
	int nbd_port;                 /* disk export, 1..65535; 0 without storage */
	char uri[ENDPOINT_URI_MAX];   /* "tcp:ADDR:PORT" or "tcp:[ADDR6]:PORT" */
};

/* Checks the destination's migrate.prepare reply: "address" must be the very
 * address the source is connected to (connected_addr, an IP literal), "port"
 * and, when storage moves, "nbd-port" integers from 1 to 65535. Any other
 * field, its "uri" included, is ignored: the URI is built here, always tcp:.
 * Returns 0 and *ret, or -EPROTO with err saying which field is wrong. */
int move_endpoint_from_reply(const json_t *reply, const char *connected_addr, bool storage,
			     struct move_endpoint *ret, char *err, size_t errlen);

/* The numeric IP address of a connected socket's other end (peer) or of its
 * own end; -EAFNOSUPPORT for a unix socket (review L17). */
int socket_address(int fd, bool peer, char *out, size_t len);
