#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

void print_error(const char *code, const char *msg, const char *hint)
{
	fprintf(stderr, "ferry: %s\n", msg);
	if (hint && *hint)
		fprintf(stderr, "  hint: %s\n", hint);
	(void)code;
}

void print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (s) {
		puts(s);
		free(s);
	}
}

static void cell(json_t *v, char *buf, size_t len)
{
	if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, len, "%s", json_is_true(v) ? "on" : "off");
	else if (json_is_array(v)) {
		size_t i, n = 0;
		json_t *e;
		buf[0] = 0;
		json_array_foreach(v, i, e) {
			char sub[128];
			cell(e, sub, sizeof(sub));
			n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s", i ? "," : "", sub);
		}
		if (!json_array_size(v))
			snprintf(buf, len, "-");
	} else
		snprintf(buf, len, "-");
}

/* Left-aligned columns sized to their widest cell. */
void print_table(json_t *rows, const char *const cols[], const char *const heads[])
{
	size_t ncols = 0, width[16] = {0}, i;
	json_t *row;
	char buf[256];

	while (cols[ncols] && ncols < 16)
		ncols++;
	for (size_t c = 0; c < ncols; c++)
		width[c] = strlen(heads[c]);
	json_array_foreach(rows, i, row)
		for (size_t c = 0; c < ncols; c++) {
			cell(json_object_get(row, cols[c]), buf, sizeof(buf));
			if (strlen(buf) > width[c])
				width[c] = strlen(buf);
		}
	for (size_t c = 0; c < ncols; c++)
		printf("%-*s%s", (int)width[c], heads[c], c + 1 < ncols ? "  " : "\n");
	json_array_foreach(rows, i, row)
		for (size_t c = 0; c < ncols; c++) {
			cell(json_object_get(row, cols[c]), buf, sizeof(buf));
			printf("%-*s%s", (int)width[c], buf, c + 1 < ncols ? "  " : "\n");
		}
}

void format_bytes(unsigned long long b, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)b;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

int usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ferry: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: ferry %s %s %s\n(see 'ferry %s %s --help')\n", cmd->group, cmd->name,
		cmd->args, cmd->group, cmd->name);
	return 2;
}
