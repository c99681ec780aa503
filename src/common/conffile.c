#include "conffile.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static char *trim(char *s)
{
	char *e;

	while (*s && isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

int conffile_parse(const char *text, size_t len, conf_cb cb, void *ctx, char *err, size_t errlen)
{
	char line[CONF_MAX_LINE + 1];
	size_t pos = 0;
	int lineno = 0, r;

	if (len > CONF_MAX_SIZE) {
		snprintf(err, errlen, "configuration larger than %d bytes", CONF_MAX_SIZE);
		return -EFBIG;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		char *key, *value, *eq;

		lineno++;
		if (n > CONF_MAX_LINE) {
			snprintf(err, errlen, "line %d: longer than %d characters", lineno, CONF_MAX_LINE);
			return -EINVAL;
		}
		memcpy(line, text + pos, n);
		line[n] = 0;
		pos += n + 1;
		if (memchr(line, 0, n)) {
			snprintf(err, errlen, "line %d: contains a NUL byte", lineno);
			return -EINVAL;
		}
		/* '#' starts a comment at the start of a line or after a blank */
		for (char *h = line; (h = strchr(h, '#')); h++)
			if (h == line || isspace((unsigned char)h[-1])) {
				*h = 0;
				break;
			}
		key = trim(line);
		if (!*key)
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			snprintf(err, errlen, "line %d: expected 'key = value'", lineno);
			return -EINVAL;
		}
		*eq = 0;
		value = trim(eq + 1);
		key = trim(key);
		if (!*key) {
			snprintf(err, errlen, "line %d: missing key before '='", lineno);
			return -EINVAL;
		}
		r = cb(ctx, key, value, lineno, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}
