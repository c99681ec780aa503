/* libFuzzer target: the metrics endpoint's request parser and its address
 * parser. The data is taken as it comes: no NUL at the end. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char *s;

	metrics_parse_request((const char *)data, size);
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	metrics_parse_addr(s, &ss, &len);
	free(s);
	return 0;
}
