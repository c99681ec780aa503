#include "vmconfig.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static const char *const known_fields[] = {
	"name", "id", "memory-mib", "vcpus", "kernel", "initrd", "cmdline",
	"disks", "nics", "processor-compat", "config-version", "vm-path",
};

static const char *const machine_types[] = {
	[5] = "pc-q35-5.2", [6] = "pc-q35-6.2", [7] = "pc-q35-7.2",
};

const char *vmconfig_machine_type(int version)
{
	if (version < VM_CONFIG_VERSION_MIN || version > VM_CONFIG_VERSION_MAX)
		return NULL;
	return machine_types[version];
}

const char *vmconfig_cpu_model(json_t *cfg, bool kvm)
{
	if (json_is_true(json_object_get(cfg, "processor-compat")))
		return VM_COMPAT_CPU_MODEL;
	return kvm ? "host" : "max";
}

const char *vmconfig_name(json_t *cfg) { return json_string_value(json_object_get(cfg, "name")); }
const char *vmconfig_id(json_t *cfg) { return json_string_value(json_object_get(cfg, "id")); }

void vmconfig_new_id(char out[37])
{
	uint8_t b[16];

	random_bytes(b, sizeof(b));
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
}

void vmconfig_new_mac(char out[18])
{
	uint8_t b[3];

	random_bytes(b, sizeof(b));
	snprintf(out, 18, "52:54:00:%02x:%02x:%02x", b[0], b[1], b[2]);
}

static bool is_known(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(known_fields); i++)
		if (strcmp(known_fields[i], key) == 0)
			return true;
	return false;
}

static int int_field(json_t *cfg, const char *key, json_int_t min, json_int_t max, json_int_t def,
		     char *err, size_t errlen)
{
	json_t *v = json_object_get(cfg, key);

	if (!v) {
		json_object_set_new(cfg, key, json_integer(def));
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		snprintf(err, errlen, "%s must be an integer from %lld to %lld", key, (long long)min,
			 (long long)max);
		return -EINVAL;
	}
	return 0;
}

static int path_field(json_t *obj, const char *key, bool required, const char *what, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	const char *s = json_string_value(v);

	if (!v && !required)
		return 0;
	if (!s || s[0] != '/' || strlen(s) > 1024 || strchr(s, ',') || strstr(s, "/../")) {
		snprintf(err, errlen, "%s must be an absolute path without commas or '..'", what);
		return -EINVAL;
	}
	return 0;
}

static bool mac_ok(const char *s)
{
	unsigned int b[6];
	char tail;

	return s && strlen(s) == 17 &&
	       sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) == 6 &&
	       !(b[0] & 1);
}

static int disks_normalize(json_t *cfg, char *err, size_t errlen)
{
	json_t *disks = json_object_get(cfg, "disks"), *d;
	size_t i;

	if (!disks) {
		json_object_set_new(cfg, "disks", json_array());
		return 0;
	}
	if (!json_is_array(disks) || json_array_size(disks) > VM_MAX_DISKS) {
		snprintf(err, errlen, "disks must be a list of at most %d disks", VM_MAX_DISKS);
		return -EINVAL;
	}
	json_array_foreach(disks, i, d) {
		json_t *fmt = json_object_get(d, "format");
		char what[32];
		if (!json_is_object(d)) {
			snprintf(err, errlen, "disk %zu must be an object with a path", i);
			return -EINVAL;
		}
		snprintf(what, sizeof(what), "disk %zu path", i);
		if (path_field(d, "path", true, what, err, errlen) < 0)
			return -EINVAL;
		if (!fmt)
			json_object_set_new(d, "format", json_string("qcow2"));
		else if (!json_is_string(fmt) || (strcmp(json_string_value(fmt), "qcow2") &&
						   strcmp(json_string_value(fmt), "raw"))) {
			snprintf(err, errlen, "disk %zu format must be qcow2 or raw", i);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(json_string_value(json_object_get(json_array_get(disks, j), "path")),
				   json_string_value(json_object_get(d, "path"))) == 0) {
				snprintf(err, errlen, "disk %zu uses the same file as disk %zu", i, j);
				return -EINVAL;
			}
	}
	return 0;
}

static int nics_normalize(json_t *cfg, char *err, size_t errlen)
{
	json_t *nics = json_object_get(cfg, "nics"), *n;
	size_t i;

	if (!nics) {
		json_object_set_new(cfg, "nics", json_array());
		return 0;
	}
	if (!json_is_array(nics) || json_array_size(nics) > VM_MAX_NICS) {
		snprintf(err, errlen, "nics must be a list of at most %d network adapters", VM_MAX_NICS);
		return -EINVAL;
	}
	json_array_foreach(nics, i, n) {
		json_t *mac;
		if (!json_is_object(n) || !name_is_valid(json_string_value(json_object_get(n, "switch")), 15)) {
			snprintf(err, errlen, "nic %zu needs a switch name (letters, digits, -_., at most 15)", i);
			return -EINVAL;
		}
		mac = json_object_get(n, "mac");
		if (!mac) {
			char m[18];
			vmconfig_new_mac(m);
			json_object_set_new(n, "mac", json_string(m));
		} else if (!mac_ok(json_string_value(mac))) {
			snprintf(err, errlen, "nic %zu mac must look like 52:54:00:12:34:56 (unicast)", i);
			return -EINVAL;
		}
	}
	return 0;
}

int vmconfig_normalize(json_t *cfg, char *err, size_t errlen)
{
	const char *key, *id;
	json_t *v;

	if (!json_is_object(cfg)) {
		snprintf(err, errlen, "VM configuration must be a JSON object");
		return -EINVAL;
	}
	json_object_foreach(cfg, key, v) {
		if (!is_known(key)) {
			snprintf(err, errlen, "unknown VM configuration field '%s'", key);
			return -EINVAL;
		}
	}
	if (!name_is_valid(vmconfig_name(cfg), VM_NAME_MAX)) {
		snprintf(err, errlen, "VM name must be 1-%d letters, digits, '-', '_' or '.', not starting with '-' or '.'",
			 VM_NAME_MAX);
		return -EINVAL;
	}
	v = json_object_get(cfg, "id");
	id = json_string_value(v);
	if (!v) {
		char nid[37];
		vmconfig_new_id(nid);
		json_object_set_new(cfg, "id", json_string(nid));
	} else if (!id || strlen(id) != 36 || !name_is_valid(id, 36)) {
		snprintf(err, errlen, "id must be a UUID");
		return -EINVAL;
	}
	if (int_field(cfg, "memory-mib", 16, 1024 * 1024, 512, err, errlen) < 0 ||
	    int_field(cfg, "vcpus", 1, 64, 1, err, errlen) < 0 ||
	    int_field(cfg, "config-version", VM_CONFIG_VERSION_MIN, VM_CONFIG_VERSION_MAX,
		      VM_CONFIG_VERSION_DEFAULT, err, errlen) < 0)
		goto version;
	if (path_field(cfg, "kernel", false, "kernel", err, errlen) < 0 ||
	    path_field(cfg, "initrd", false, "initrd", err, errlen) < 0 ||
	    path_field(cfg, "vm-path", false, "vm-path", err, errlen) < 0)
		return -EINVAL;
	if (json_object_get(cfg, "initrd") && !json_object_get(cfg, "kernel")) {
		snprintf(err, errlen, "initrd given without a kernel");
		return -EINVAL;
	}
	v = json_object_get(cfg, "cmdline");
	if (v && (!json_is_string(v) || json_string_length(v) > 2048)) {
		snprintf(err, errlen, "cmdline must be a string of at most 2048 characters");
		return -EINVAL;
	}
	v = json_object_get(cfg, "processor-compat");
	if (!v)
		json_object_set_new(cfg, "processor-compat", json_false());
	else if (!json_is_boolean(v)) {
		snprintf(err, errlen, "processor-compat must be true or false");
		return -EINVAL;
	}
	if (disks_normalize(cfg, err, errlen) < 0 || nics_normalize(cfg, err, errlen) < 0)
		return -EINVAL;
	if (!json_object_get(cfg, "kernel") && json_array_size(json_object_get(cfg, "disks")) == 0) {
		snprintf(err, errlen, "a VM needs a kernel (--kernel) or a boot disk (--disk)");
		return -EINVAL;
	}
	return 0;
version:
	if (strstr(err, "config-version"))
		snprintf(err, errlen,
			 "configuration version must be %d to %d (version 5 is the oldest that can live-migrate)",
			 VM_CONFIG_VERSION_MIN, VM_CONFIG_VERSION_MAX);
	return -EINVAL;
}
