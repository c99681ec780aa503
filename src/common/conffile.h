/* ferryd.conf: "key = value" lines; '#' starts a comment at the start of a
 * line or after a blank (so "a#b" is a value, "a #b" is "a"). Bounded and strict. */
#pragma once
#include <stddef.h>

#define CONF_MAX_LINE 1024
#define CONF_MAX_SIZE (256 * 1024)

typedef int (*conf_cb)(void *ctx, const char *key, const char *value, int line, char *err, size_t errlen);

/* Calls cb for every setting in text; stops at the first error, naming its line. */
int conffile_parse(const char *text, size_t len, conf_cb cb, void *ctx, char *err, size_t errlen);
