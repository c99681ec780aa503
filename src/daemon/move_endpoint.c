/* The source decides where its QEMU connects (move_endpoint.h). A destination
 * that answered "uri": "exec:..." could otherwise make the source's QEMU run a
 * shell command, and one that named another address could send the guest's
 * memory and disks anywhere. */
#include "move_endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static int port_field(const json_t *reply, const char *key, int *ret, char *err, size_t errlen)
{
	const json_t *v = json_object_get(reply, key);

	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535) {
		snprintf(err, errlen, "the destination's prepare reply has no valid \"%s\" (an integer from 1 to 65535)",
			 key);
		return -EPROTO;
	}
	*ret = (int)json_integer_value(v);
	return 0;
}

/* Same address, compared as binary: "::ffff:10.0.0.1" and "10.0.0.1" differ,
 * and so they should, since QEMU would connect with another family. */
static bool same_address(const char *a, const char *b, int *ret_family)
{
	unsigned char x[16], y[16];

	if (inet_pton(AF_INET, a, x) == 1 && inet_pton(AF_INET, b, y) == 1) {
		*ret_family = AF_INET;
		return memcmp(x, y, 4) == 0;
	}
	if (inet_pton(AF_INET6, a, x) == 1 && inet_pton(AF_INET6, b, y) == 1) {
		*ret_family = AF_INET6;
		return memcmp(x, y, 16) == 0;
	}
	return false;
}

int move_endpoint_from_reply(const json_t *reply, const char *connected_addr, bool storage,
			     struct move_endpoint *ret, char *err, size_t errlen)
{
	const json_t *a = json_object_get(reply, "address");
	struct move_endpoint e = {0};
	int family = 0, r;

	if (!json_is_string(a) || json_string_length(a) >= sizeof(e.address) ||
	    !same_address(json_string_value(a), connected_addr, &family)) {
		snprintf(err, errlen,
			 "the destination's prepare reply names the migration address \"%.64s\", not the address "
			 "%s this host is connected to: refused",
			 json_is_string(a) ? json_string_value(a) : "(none)", connected_addr);
		return -EPROTO;
	}
	snprintf(e.address, sizeof(e.address), "%s", connected_addr);
	if ((r = port_field(reply, "port", &e.port, err, errlen)) < 0)
		return r;
	if (storage && (r = port_field(reply, "nbd-port", &e.nbd_port, err, errlen)) < 0)
		return r;
	snprintf(e.uri, sizeof(e.uri), family == AF_INET6 ? "tcp:[%s]:%d" : "tcp:%s:%d", e.address, e.port);
	*ret = e;
	return 0;
}

int socket_address(int fd, bool peer, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const void *addr;

	if ((peer ? getpeername(fd, (struct sockaddr *)&ss, &sl) : getsockname(fd, (struct sockaddr *)&ss, &sl)) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		addr = &((struct sockaddr_in *)&ss)->sin_addr;
	else if (ss.ss_family == AF_INET6)
		addr = &((struct sockaddr_in6 *)&ss)->sin6_addr;
	else
		return -EAFNOSUPPORT;
	return inet_ntop(ss.ss_family, addr, out, (socklen_t)len) ? 0 : -errno;
}
