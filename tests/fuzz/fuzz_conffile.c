/* libFuzzer target: the ferryd.conf parser. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "conffile.h"

static int accept_all(void *ctx, const char *key, const char *value, int line, char *err, size_t errlen)
{
	(void)ctx; (void)line; (void)err; (void)errlen;
	return strlen(key) + strlen(value) > 0 ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];

	conffile_parse((const char *)data, size, accept_all, NULL, err, sizeof(err));
	return 0;
}
