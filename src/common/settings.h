/* Host settings: each declared once with its type, bounds and default. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* SETTING_PATHS: "" or clean absolute paths separated by ':' (a JSON string). */
enum setting_type { SETTING_BOOL, SETTING_INT, SETTING_ENUM, SETTING_PATHS };

struct setting_def {
	const char *name;
	enum setting_type type;
	int64_t min, max;               /* SETTING_INT */
	const char *const *choices;     /* SETTING_ENUM, NULL-terminated */
	const char *def;                /* default, as text */
	const char *help;
};

const struct setting_def *settings_table(size_t *ret_count);
const struct setting_def *setting_find(const char *name);
/* Is value one of the choices of the SETTING_ENUM setting name? */
bool setting_choice_ok(const char *name, const char *value);

/* Object with every setting at its default, plus "migration-networks": []. */
json_t *settings_defaults(void);
/* Parses text for one setting into a JSON value; err says what is allowed. */
int setting_parse(const struct setting_def *def, const char *text, json_t **ret, char *err, size_t errlen);
/* Checks a loaded settings object; unknown or bad values are replaced by defaults
 * and reported in err (returns the number of fixes). */
int settings_sanitize(json_t *settings, char *err, size_t errlen);
/* Describes allowed values: "1..64", "credssp|kerberos", "on|off". */
void setting_allowed(const struct setting_def *def, char *buf, size_t len);

int64_t settings_int(json_t *settings, const char *name);
bool settings_bool(json_t *settings, const char *name);
const char *settings_str(json_t *settings, const char *name);

/* Migration networks: "10.0.0.0/24" style CIDRs, IPv4 and IPv6. */
int cidr_parse(const char *text, int *ret_family, uint8_t ret_addr[16], int *ret_prefix);
bool cidr_contains(const char *cidr, const char *addr);
