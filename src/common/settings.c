#include "settings.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const auth_choices[] = {"credssp", "kerberos", NULL};
static const char *const perf_choices[] = {"tcpip", "compression", "multichannel", NULL};
/* stall_ladder.h's policies (a unit test keeps them equal) */
static const char *const stall_choices[] = {"ladder", "cancel", "force", NULL};

static const struct setting_def table[] = {
	{"migration-enabled", SETTING_BOOL, 0, 0, NULL, "off",
	 "accept and start live migrations (Enable-VMMigration)"},
	{"max-migrations", SETTING_INT, 1, 64, NULL, "2",
	 "simultaneous live migrations; more wait in the queue"},
	{"max-storage-migrations", SETTING_INT, 1, 64, NULL, "2",
	 "simultaneous storage migrations; more wait in the queue"},
	{"use-any-network", SETTING_BOOL, 0, 0, NULL, "off",
	 "accept migrations on any address instead of the listed networks"},
	{"auth", SETTING_ENUM, 0, 0, auth_choices, "credssp",
	 "authentication for migrations: credssp (sign in to the source) or kerberos (constrained delegation)"},
	{"performance", SETTING_ENUM, 0, 0, perf_choices, "compression",
	 "tcpip: one plain stream; compression: zstd; multichannel: several streams"},
	{"encryption", SETTING_BOOL, 0, 0, NULL, "on",
	 "encrypt migration traffic with TLS and a one-time key"},
	{"max-passes", SETTING_INT, 1, 100, NULL, "10",
	 "memory pre-copy passes after which a move that does not converge ends as on-stall says"},
	{"downtime-ms", SETTING_INT, 1, 60000, NULL, "300",
	 "pause of the guest at switchover that ends pre-copy (QEMU's downtime-limit at the start)"},
	{"max-downtime-ms", SETTING_INT, 10, 60000, NULL, "300",
	 "the longest pause of the guest a move may take: the stall ladder never goes beyond it"},
	{"on-stall", SETTING_ENUM, 0, 0, stall_choices, "ladder",
	 "when memory stops shrinking: ladder (raise the downtime limit, throttle the vCPUs, then switch over "
	 "within max-downtime-ms or cancel after max-passes), cancel, or force (after max-passes switch over "
	 "whatever the pause)"},
	{"channels", SETTING_INT, 2, 16, NULL, "4",
	 "streams used by the multichannel performance option"},
	{"stall-timeout", SETTING_INT, 5, 3600, NULL, "30",
	 "seconds without progress after which a move gives up (network cut)"},
	{"stop-timeout", SETTING_INT, 1, 3600, NULL, "30",
	 "seconds a graceful stop may take before the VM is forced off"},
	{"partial-copy-retention", SETTING_INT, 0, 604800, NULL, "0",
	 "seconds this host keeps the disks of an incoming move with storage that failed, and offers the disks "
	 "a move from here with --keep-source-disks left, so that the next move of the VM here sends only what "
	 "they lack; 0: off (a failed move's copy is deleted at once)"},
	{"storage-roots", SETTING_PATHS, 0, 0, NULL, "",
	 "directories (':'-separated) under which incoming moves may create or open disk and VM files "
	 "and read kernels; empty: STATE_DIR/disks"},
};

const struct setting_def *settings_table(size_t *ret_count)
{
	*ret_count = ARRAY_SIZE(table);
	return table;
}

const struct setting_def *setting_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(table); i++)
		if (strcmp(table[i].name, name) == 0)
			return &table[i];
	return NULL;
}

bool setting_choice_ok(const char *name, const char *value)
{
	const struct setting_def *def = setting_find(name);

	if (!def || def->type != SETTING_ENUM || !value)
		return false;
	for (const char *const *c = def->choices; *c; c++)
		if (!strcmp(*c, value))
			return true;
	return false;
}

void setting_allowed(const struct setting_def *def, char *buf, size_t len)
{
	size_t n = 0;

	switch (def->type) {
	case SETTING_BOOL:
		snprintf(buf, len, "on|off");
		break;
	case SETTING_INT:
		snprintf(buf, len, "%lld..%lld", (long long)def->min, (long long)def->max);
		break;
	case SETTING_PATHS:
		snprintf(buf, len, "DIR[:DIR...] (absolute, clean, at most 16, not / or under /etc, /usr, /boot, "
			 "/proc, /sys, /dev, /bin, /sbin, /lib) or \"\"");
		break;
	case SETTING_ENUM:
		buf[0] = 0;
		for (const char *const *c = def->choices; *c && n < len; c++)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", c == def->choices ? "" : "|", *c);
		break;
	}
}

/* Never a storage root: the whole tree, or the system's own files. */
static bool system_path(const char *p)
{
	static const char *const sys[] = {"/etc", "/usr", "/boot", "/proc", "/sys", "/dev", "/bin", "/sbin", "/lib"};

	if (!strcmp(p, "/"))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(sys); i++) {
		size_t n = strlen(sys[i]);
		if (!strncmp(p, sys[i], n) && (p[n] == 0 || p[n] == '/'))
			return true;
	}
	return false;
}

/* "" or up to 16 clean absolute paths separated by ':', none a system path */
static bool paths_ok(const char *text)
{
	char buf[4096], *save = NULL;
	int n = 0;

	if (strlen(text) >= sizeof(buf) || strstr(text, "::") || text[0] == ':' ||
	    (text[0] && text[strlen(text) - 1] == ':'))
		return false;
	snprintf(buf, sizeof(buf), "%s", text);
	for (char *p = strtok_r(buf, ":", &save); p; p = strtok_r(NULL, ":", &save))
		if (++n > 16 || !path_is_clean(p) || strchr(p, ',') || system_path(p))
			return false;
	return true;
}

int setting_parse(const struct setting_def *def, const char *text, json_t **ret, char *err, size_t errlen)
{
	char allowed[128];
	uint64_t v;

	setting_allowed(def, allowed, sizeof(allowed));
	switch (def->type) {
	case SETTING_BOOL:
		if (!strcmp(text, "on") || !strcmp(text, "true") || !strcmp(text, "yes") || !strcmp(text, "1")) {
			*ret = json_true();
			return 0;
		}
		if (!strcmp(text, "off") || !strcmp(text, "false") || !strcmp(text, "no") || !strcmp(text, "0")) {
			*ret = json_false();
			return 0;
		}
		break;
	case SETTING_INT:
		if (parse_u64(text, (uint64_t)def->min, (uint64_t)def->max, &v) == 0) {
			*ret = json_integer((json_int_t)v);
			return 0;
		}
		break;
	case SETTING_ENUM:
		for (const char *const *c = def->choices; *c; c++)
			if (strcmp(*c, text) == 0) {
				*ret = json_string(text);
				return 0;
			}
		break;
	case SETTING_PATHS:
		if (paths_ok(text)) {
			*ret = json_string(text);
			return 0;
		}
		break;
	}
	snprintf(err, errlen, "invalid value '%s' for %s: allowed %s", text, def->name, allowed);
	return -EINVAL;
}

json_t *settings_defaults(void)
{
	json_t *o = json_object();
	char err[256];

	for (size_t i = 0; i < ARRAY_SIZE(table); i++) {
		json_t *v = NULL;
		if (setting_parse(&table[i], table[i].def, &v, err, sizeof(err)) == 0)
			json_object_set_new(o, table[i].name, v);
	}
	json_object_set_new(o, "migration-networks", json_array());
	return o;
}

static bool value_ok(const struct setting_def *def, json_t *v)
{
	switch (def->type) {
	case SETTING_BOOL:
		return json_is_boolean(v);
	case SETTING_INT:
		return json_is_integer(v) && json_integer_value(v) >= def->min &&
		       json_integer_value(v) <= def->max;
	case SETTING_ENUM:
		if (!json_is_string(v))
			return false;
		for (const char *const *c = def->choices; *c; c++)
			if (strcmp(*c, json_string_value(v)) == 0)
				return true;
		return false;
	case SETTING_PATHS:
		return json_is_string(v) && paths_ok(json_string_value(v));
	}
	return false;
}

int settings_sanitize(json_t *settings, char *err, size_t errlen)
{
	json_t *defaults = settings_defaults(), *nets;
	int fixes = 0;
	size_t n = 0;

	err[0] = 0;
	for (size_t i = 0; i < ARRAY_SIZE(table); i++) {
		json_t *v = json_object_get(settings, table[i].name);
		if (v && value_ok(&table[i], v))
			continue;
		if (v && n < errlen)
			n += (size_t)snprintf(err + n, errlen - n, "%s%s: bad value, using default %s",
					      fixes ? "; " : "", table[i].name, table[i].def);
		json_object_set(settings, table[i].name, json_object_get(defaults, table[i].name));
		fixes += v ? 1 : 0;
	}
	nets = json_object_get(settings, "migration-networks");
	if (!json_is_array(nets))
		json_object_set_new(settings, "migration-networks", json_array());
	json_decref(defaults);
	return fixes;
}

int64_t settings_int(json_t *settings, const char *name)
{
	return json_integer_value(json_object_get(settings, name));
}

bool settings_bool(json_t *settings, const char *name)
{
	return json_is_true(json_object_get(settings, name));
}

const char *settings_str(json_t *settings, const char *name)
{
	const char *s = json_string_value(json_object_get(settings, name));
	return s ? s : "";
}

int cidr_parse(const char *text, int *ret_family, uint8_t ret_addr[16], int *ret_prefix)
{
	char buf[64];
	const char *slash = strchr(text, '/');
	uint64_t prefix;
	int family;
	size_t n;

	if (!slash || (n = (size_t)(slash - text)) == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, text, n);
	buf[n] = 0;
	memset(ret_addr, 0, 16);
	family = strchr(buf, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(family, buf, ret_addr) != 1)
		return -EINVAL;
	if (parse_u64(slash + 1, 0, family == AF_INET ? 32 : 128, &prefix) < 0)
		return -EINVAL;
	*ret_family = family;
	*ret_prefix = (int)prefix;
	return 0;
}

bool cidr_contains(const char *cidr, const char *addr)
{
	uint8_t net[16], a[16] = {0};
	int family, prefix;

	if (cidr_parse(cidr, &family, net, &prefix) < 0)
		return false;
	if (inet_pton(family, addr, a) != 1)
		return false;
	for (int bit = 0; bit < prefix; bit++) {
		uint8_t mask = (uint8_t)(0x80 >> (bit % 8));
		if ((net[bit / 8] & mask) != (a[bit / 8] & mask))
			return false;
	}
	return true;
}
