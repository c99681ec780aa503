/* The migration link probe: how many bytes per second the migration
 * network carries from the source to the destination, measured before a
 * move (move_predict.c).
 *
 * The source asks migrate.probe on its sealed connection; the destination
 * listens once on the address that connection reached (where the migration
 * stream would go), answers the port, a one-time token and its limits
 * (peer_msg.h: at most PEER_PROBE_MS_MAX ms and PEER_PROBE_BYTES_MAX bytes).
 * The source connects, sends the token, then bytes for at most that long;
 * the destination accepts one connection, from the source's address only,
 * reads and discards, and writes back what it counted: bytes and the
 * microseconds between the token and the last byte read. The listener is
 * closed at the first connection with the right token, or after
 * PROBE_ACCEPT_MS; one probe at a time per host. The bytes are not
 * encrypted (docs/architecture.md, Prediction). */
#pragma once
#include <stddef.h>

#include "peer_msg.h"

#define PROBE_ACCEPT_MS 3000  /* the listener lives at most this long */

/* Source: connects to addr (the destination's address of the sealed
 * connection) at asked->port, sends, and reads the destination's count. */
int probe_send(const char *addr, const struct peer_probe_reply *asked, struct peer_probe_result *ret, char *err,
	       size_t errlen);
