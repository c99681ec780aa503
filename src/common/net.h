/* TCP connections out to other hosts. */
#pragma once
#include <stddef.h>

/* TCP connection to host:port (name or address), timeout_ms for the connect;
 * returns 0 and the fd (O_CLOEXEC), or -errno with err in plain words. */
int net_connect(const char *host, int port, int timeout_ms, int *ret_fd, char *err, size_t errlen);
