/* Readers of the messages between two ferryd (peer_msg.h). Each error names
 * the field and what it must be; a value is quoted only when short, never a
 * megabyte of it back into a reply or the log. */
#include "ops.h"
#include "peer_msg.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "settings.h"
#include "util.h"
#include "vmconfig.h"

#define CLEAN_PATH "a clean absolute path (no empty, '.' or '..' component, no trailing '/')"

const char *peer_msg_code(int r)
{
	if (r == -EBADMSG)
		return "invalid";
	if (r == -ENOMEM)
		return "failed";
	return "bad_request";
}

/* Absent: def. Present: true or false, nothing else. */
static int read_bool(json_t *obj, const char *op, const char *key, bool def, bool *ret, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	if (v && !json_is_boolean(v)) {
		snprintf(err, errlen, "%s: %s must be true or false", op, key);
		return -EINVAL;
	}
	*ret = v ? json_is_true(v) : def;
	return 0;
}

static bool int_in(json_t *v, json_int_t min, json_int_t max)
{
	return json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max;
}

/* Absent: NULL. Present: a string that is a clean absolute path. */
static int read_path(json_t *obj, const char *op, const char *key, const char **ret, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	if (v && (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
		  !path_is_clean(json_string_value(v)))) {
		snprintf(err, errlen, "%s: %s must be %s", op, key, CLEAN_PATH);
		return -EINVAL;
	}
	*ret = json_string_value(v);
	return 0;
}

static bool is_hex(const char *s, size_t len)
{
	return s && strlen(s) == len && strspn(s, "0123456789abcdefABCDEF") == len;
}

/* Every file the configuration names, spelt one way only: storage_root_of
 * would refuse the others later, here the peer learns which field it was. */
static int config_paths_clean(json_t *cfg, char *why, size_t len)
{
	static const char *const keys[] = {"kernel", "initrd", "vm-path"};
	json_t *dsk;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(keys); i++) {
		const char *p = json_string_value(json_object_get(cfg, keys[i]));
		if (p && !path_is_clean(p)) {
			snprintf(why, len, "%s must be %s", keys[i], CLEAN_PATH);
			return -EINVAL;
		}
	}
	json_array_foreach(json_object_get(cfg, "disks"), i, dsk) {
		if (!path_is_clean(json_string_value(json_object_get(dsk, "path")))) {
			snprintf(why, len, "disk %zu path must be %s", i, CLEAN_PATH);
			return -EINVAL;
		}
	}
	return 0;
}

int peer_read_config(json_t *v, json_t **ret, char *err, size_t errlen)
{
	static const char prefix[] = "the VM configuration sent is not valid here";
	char why[512];
	json_t *cfg;

	if (!v) {
		snprintf(err, errlen, "%s: config is missing", prefix);
		return -EBADMSG;
	}
	if (!(cfg = json_deep_copy(v))) {
		snprintf(err, errlen, "%s: out of memory", prefix);
		return -ENOMEM;
	}
	if (vmconfig_normalize(cfg, why, sizeof(why)) < 0 || config_paths_clean(cfg, why, sizeof(why)) < 0) {
		json_decref(cfg);
		snprintf(err, errlen, "%s: %s", prefix, why);
		return -EBADMSG;
	}
	*ret = cfg;
	return 0;
}

/* The size list: one entry per disk, sizes in bytes. */
static int read_sizes(json_t *args, const char *op, bool storage, json_t **ret, char *err, size_t errlen)
{
	json_t *disks = json_object_get(args, "disks"), *d;
	size_t i;

	if (!json_is_array(disks) || json_array_size(disks) > VM_MAX_DISKS) {
		snprintf(err, errlen, "%s: disks must be a list of at most %d disk sizes", op, VM_MAX_DISKS);
		return -EINVAL;
	}
	json_array_foreach(disks, i, d) {
		const char *p = json_string_value(json_object_get(d, "path"));
		json_t *fp = json_object_get(d, "fingerprint");
		if (!json_is_object(d)) {
			snprintf(err, errlen, "%s: disks[%zu] must be an object {path, size, allocated}", op, i);
			return -EINVAL;
		}
		if (!p || strlen(p) != json_string_length(json_object_get(d, "path")) || !path_is_clean(p)) {
			snprintf(err, errlen, "%s: disks[%zu].path must be %s", op, i, CLEAN_PATH);
			return -EINVAL;
		}
		/* a disk that is copied has a size; a shared raw file may be empty */
		if (!int_in(json_object_get(d, "size"), storage ? 1 : 0, PEER_DISK_BYTES_MAX)) {
			snprintf(err, errlen, "%s: disks[%zu].size must be an integer from %d to %lld (bytes)", op, i,
				 storage ? 1 : 0, (long long)PEER_DISK_BYTES_MAX);
			return -EINVAL;
		}
		if (!int_in(json_object_get(d, "allocated"), 0, PEER_DISK_BYTES_MAX)) {
			snprintf(err, errlen, "%s: disks[%zu].allocated must be an integer from 0 to %lld (bytes)", op, i,
				 (long long)PEER_DISK_BYTES_MAX);
			return -EINVAL;
		}
		if (fp && !json_is_object(fp)) {
			snprintf(err, errlen, "%s: disks[%zu].fingerprint must be an object", op, i);
			return -EINVAL;
		}
	}
	*ret = disks;
	return 0;
}

/* The source's capabilities: only what check_incoming reads. */
static int read_source(json_t *args, const char *op, json_t **ret, char *err, size_t errlen)
{
	json_t *src = json_object_get(args, "source"), *accel, *flags, *f;
	size_t i;

	*ret = NULL;
	if (!src)
		return 0;
	if (!json_is_object(src)) {
		snprintf(err, errlen, "%s: source must be an object (the source host's capabilities)", op);
		return -EINVAL;
	}
	accel = json_object_get(src, "accelerator");
	if (accel && (!json_is_string(accel) || (strcmp(json_string_value(accel), "kvm") != 0 &&
						 strcmp(json_string_value(accel), "tcg") != 0))) {
		snprintf(err, errlen, "%s: source.accelerator must be kvm or tcg", op);
		return -EINVAL;
	}
	flags = json_object_get(src, "cpu-flags");
	if (flags && (!json_is_array(flags) || json_array_size(flags) > PEER_CPU_FLAGS_MAX)) {
		snprintf(err, errlen, "%s: source.cpu-flags must be a list of at most %d CPU flags", op,
			 PEER_CPU_FLAGS_MAX);
		return -EINVAL;
	}
	json_array_foreach(flags, i, f) {
		if (!json_is_string(f) || json_string_length(f) == 0 || json_string_length(f) > PEER_CPU_FLAG_LEN_MAX ||
		    strlen(json_string_value(f)) != json_string_length(f)) {
			snprintf(err, errlen, "%s: source.cpu-flags[%zu] must be a string of 1 to %d characters", op, i,
				 PEER_CPU_FLAG_LEN_MAX);
			return -EINVAL;
		}
	}
	*ret = src;
	return 0;
}

void peer_check_clear(struct peer_check *c)
{
	json_decref(c->config);
	c->config = NULL;
}

/* PEER_RESUME_TOKEN_HEX lower-case hex digits */
static bool is_token(const json_t *v)
{
	const char *s = json_string_value(v);

	return is_hex(s, PEER_RESUME_TOKEN_HEX) && strspn(s, "0123456789abcdef") == PEER_RESUME_TOKEN_HEX;
}

static int read_resume_tokens(json_t *args, const char *op, const json_t **ret, char *err, size_t errlen)
{
	json_t *t = json_object_get(args, "resume-tokens"), *v;
	size_t i;

	*ret = NULL;
	if (!t)
		return 0;
	if (!json_is_array(t) || json_array_size(t) > VM_MAX_DISKS)
		goto bad;
	json_array_foreach(t, i, v)
		if (!json_is_null(v) && !is_token(v))
			goto bad;
	*ret = t;
	return 0;
bad:
	snprintf(err, errlen, "%s: resume-tokens must be a list of at most %d entries, each null or %d lower-case hex "
		 "digits", op, VM_MAX_DISKS, PEER_RESUME_TOKEN_HEX);
	return -EINVAL;
}

static int read_check(json_t *args, const char *op, struct peer_check *ret, char *err, size_t errlen)
{
	struct peer_check c = {0};
	const char *cfg_vm_path;
	int r;

	if (!json_is_object(args)) {
		snprintf(err, errlen, "%s: the arguments must be a JSON object", op);
		return -EINVAL;
	}
	if ((r = read_bool(args, op, "include-storage", false, &c.include_storage, err, errlen)) < 0 ||
	    (r = read_path(args, op, "storage-path", &c.storage_path, err, errlen)) < 0 ||
	    (r = read_path(args, op, "vm-path", &c.vm_path, err, errlen)) < 0 ||
	    (r = read_sizes(args, op, c.include_storage, &c.disks, err, errlen)) < 0 ||
	    (r = read_source(args, op, &c.source, err, errlen)) < 0 ||
	    (r = read_resume_tokens(args, op, &c.resume_tokens, err, errlen)) < 0)
		return r;
	if (c.resume_tokens && json_array_size(c.resume_tokens) != json_array_size(c.disks)) {
		snprintf(err, errlen, "%s: resume-tokens must have one entry per disk", op);
		return -EINVAL;
	}
	if ((r = peer_read_config(json_object_get(args, "config"), &c.config, err, errlen)) < 0)
		return r;
	/* the VM's directory is made at the configuration's vm-path, and only
	 * the request's is checked against the storage roots: one and the same */
	cfg_vm_path = json_string_value(json_object_get(c.config, "vm-path"));
	if (cfg_vm_path && (!c.vm_path || strcmp(cfg_vm_path, c.vm_path) != 0)) {
		snprintf(err, errlen, "%s: the configuration's vm-path must be the request's vm-path", op);
		peer_check_clear(&c);
		return -EINVAL;
	}
	*ret = c;
	return 0;
}

int peer_read_check(json_t *args, struct peer_check *ret, char *err, size_t errlen)
{
	return read_check(args, OP_MIGRATE_CHECK, ret, err, errlen);
}

int peer_read_prepare(json_t *args, struct peer_prepare *ret, char *err, size_t errlen)
{
	static const char op[] = OP_MIGRATE_PREPARE;
	struct peer_prepare p = {0};
	json_t *ch, *psk, *id;
	int r;

	if (!json_is_object(args)) {
		snprintf(err, errlen, "%s: the arguments must be a JSON object", op);
		return -EINVAL;
	}
	if ((r = read_bool(args, op, "encryption", true, &p.encryption, err, errlen)) < 0)
		return r;
	ch = json_object_get(args, "channels");
	if (ch && !int_in(ch, 0, PEER_CHANNELS_MAX)) {
		snprintf(err, errlen, "%s: channels must be an integer from 0 to %d", op, PEER_CHANNELS_MAX);
		return -EINVAL;
	}
	p.channels = (int)json_integer_value(ch);
	p.performance = json_string_value(json_object_get(args, "performance"));
	if (!p.performance || !setting_choice_ok("performance", p.performance)) {
		snprintf(err, errlen, "%s: performance must be tcpip, compression or multichannel", op);
		return -EINVAL;
	}
	/* the key goes into keys.psk as IDENTITY:HEX: 64 hex digits, nothing
	 * else (review L17). Checked whenever sent; needed with encryption. */
	psk = json_object_get(args, "psk");
	id = json_object_get(args, "psk-identity");
	if ((psk || p.encryption) && !is_hex(json_string_value(psk), PEER_PSK_HEX_LEN)) {
		snprintf(err, errlen, "%s: psk must be a key of 32 bytes in %d hex digits", op, PEER_PSK_HEX_LEN);
		return -EINVAL;
	}
	if ((id || p.encryption) && !name_is_valid(json_string_value(id), PEER_PSK_IDENTITY_MAX)) {
		snprintf(err, errlen, "%s: psk-identity must be 1-%d letters, digits, '-', '_' or '.'", op,
			 PEER_PSK_IDENTITY_MAX);
		return -EINVAL;
	}
	p.psk = json_string_value(psk);
	p.psk_identity = json_string_value(id);
	if ((r = read_check(args, op, &p.check, err, errlen)) < 0)
		return r;
	*ret = p;
	return 0;
}

int peer_read_name(json_t *args, const char *op, const char **ret, char *err, size_t errlen)
{
	const char *name = json_string_value(json_object_get(args, "name"));

	if (!name_is_valid(name, VM_NAME_MAX)) {
		snprintf(err, errlen, "%s: name must be a VM name (1-%d letters, digits, '-', '_' or '.')", op,
			 VM_NAME_MAX);
		return -EINVAL;
	}
	*ret = name;
	return 0;
}

int peer_read_kept_token(json_t *args, const char *op, const char **ret, char *err, size_t errlen)
{
	json_t *t = json_object_get(args, "kept-copy-token");

	*ret = NULL;
	if (!t)
		return 0;
	if (!is_token(t)) {
		snprintf(err, errlen, "%s: kept-copy-token must be %d lower-case hex digits", op, PEER_RESUME_TOKEN_HEX);
		return -EINVAL;
	}
	*ret = json_string_value(t);
	return 0;
}

static bool ip_literal(const char *s)
{
	unsigned char buf[16];

	return s && strlen(s) < 64 && (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1);
}

int peer_read_addresses_reply(json_t *result, struct peer_addresses *ret, char *err, size_t errlen)
{
	static const char what[] = "the destination's " OP_MIGRATE_ADDRESSES " reply";
	struct peer_addresses a = {0};
	json_t *addrs = json_object_get(result, "addresses"), *e, *v;
	size_t i;

	if (!json_is_array(addrs) || json_array_size(addrs) > PEER_ADDRESSES_MAX) {
		snprintf(err, errlen, "%s has no valid addresses (a list of at most %d)", what, PEER_ADDRESSES_MAX);
		return -EPROTO;
	}
	json_array_foreach(addrs, i, e) {
		if (!ip_literal(json_string_value(json_object_get(e, "address")))) {
			snprintf(err, errlen, "%s: addresses[%zu].address must be an IP address", what, i);
			return -EPROTO;
		}
		if (!int_in(json_object_get(e, "priority"), 0, PEER_PRIORITY_MAX)) {
			snprintf(err, errlen, "%s: addresses[%zu].priority must be an integer from 0 to %d", what, i,
				 PEER_PRIORITY_MAX);
			return -EPROTO;
		}
	}
	v = json_object_get(result, "migration-enabled");
	if (!json_is_boolean(v)) {
		snprintf(err, errlen, "%s: migration-enabled must be true or false", what);
		return -EPROTO;
	}
	a.migration_enabled = json_is_true(v);
	v = json_object_get(result, "encryption-required");
	if (v && !json_is_boolean(v)) {
		snprintf(err, errlen, "%s: encryption-required must be true or false", what);
		return -EPROTO;
	}
	a.encryption_required = json_is_true(v);
	v = json_object_get(result, "clock-ms");
	if (v && !int_in(v, 1, PEER_CLOCK_MS_MAX)) {
		snprintf(err, errlen, "%s: clock-ms must be a time in ms since 1970", what);
		return -EPROTO;
	}
	a.clock_ms = v ? json_integer_value(v) : 0;
	a.n = json_array_size(addrs);
	if (a.n)
		snprintf(a.first, sizeof(a.first), "%s", json_string_value(json_object_get(json_array_get(addrs, 0),
										       "address")));
	*ret = a;
	return 0;
}

int peer_read_check_reply(json_t *result, json_t **ret_problems, char *err, size_t errlen)
{
	static const char what[] = "the destination's " OP_MIGRATE_CHECK " reply";
	json_t *problems = json_object_get(result, "problems"), *p;
	size_t i;

	if (!json_is_array(problems) || json_array_size(problems) > PEER_PROBLEMS_MAX) {
		snprintf(err, errlen, "%s has no valid problems (a list of at most %d)", what, PEER_PROBLEMS_MAX);
		return -EPROTO;
	}
	json_array_foreach(problems, i, p) {
		if (!json_is_string(p) || json_string_length(p) == 0 || json_string_length(p) > PEER_PROBLEM_LEN_MAX) {
			snprintf(err, errlen, "%s: problems[%zu] must be a string of 1 to %d characters", what, i,
				 PEER_PROBLEM_LEN_MAX);
			return -EPROTO;
		}
	}
	if (!json_is_object(json_object_get(result, "capabilities"))) {
		snprintf(err, errlen, "%s: capabilities must be an object", what);
		return -EPROTO;
	}
	*ret_problems = problems;
	return 0;
}

int peer_read_check_room(json_t *result, json_t **ret_room, char *err, size_t errlen)
{
	static const char what[] = "the destination's " OP_MIGRATE_CHECK " reply: room";
	static const char *const ints[] = {"memory-needed-mib", "memory-available-mib", "max-migrations",
					   "max-storage-migrations"};
	static const json_int_t max[] = {PEER_MEMORY_MIB_MAX, PEER_MEMORY_MIB_MAX, PEER_LIMIT_MAX, PEER_LIMIT_MAX};
	static const json_int_t min[] = {0, 0, 1, 1};
	json_t *room = json_object_get(result, "room"), *disks, *d, *out, *list;
	size_t i;

	*ret_room = NULL;
	if (!room)
		return 0;
	disks = json_object_get(room, "disks");
	if (!json_is_object(room) || !json_is_array(disks) || json_array_size(disks) > PEER_ROOM_DIRS_MAX) {
		snprintf(err, errlen, "%s must be an object with a list of at most %d disks", what, PEER_ROOM_DIRS_MAX);
		return -EPROTO;
	}
	for (i = 0; i < ARRAY_SIZE(ints); i++)
		if (!int_in(json_object_get(room, ints[i]), min[i], max[i])) {
			snprintf(err, errlen, "%s: %s must be a number from %lld to %lld", what, ints[i], (long long)min[i],
				 (long long)max[i]);
			return -EPROTO;
		}
	json_array_foreach(disks, i, d) {
		const char *dir = json_string_value(json_object_get(d, "dir"));
		if (!dir || strlen(dir) != json_string_length(json_object_get(d, "dir")) || !path_is_clean(dir) ||
		    !int_in(json_object_get(d, "needed"), 0, PEER_DISK_BYTES_MAX * PEER_ROOM_DIRS_MAX) ||
		    !int_in(json_object_get(d, "free"), 0, INT64_MAX)) {
			snprintf(err, errlen, "%s: disks[%zu] must be {\"dir\": %s, \"needed\", \"free\": bytes}", what,
				 i, CLEAN_PATH);
			return -EPROTO;
		}
	}
	list = json_array();
	json_array_foreach(disks, i, d)
		json_array_append_new(list, json_pack("{s:O, s:O, s:O}", "dir", json_object_get(d, "dir"), "needed",
						      json_object_get(d, "needed"), "free", json_object_get(d, "free")));
	out = json_pack("{s:o}", "disks", list);
	for (i = 0; out && i < ARRAY_SIZE(ints); i++)
		json_object_set(out, ints[i], json_object_get(room, ints[i]));
	if (!out)
		return -ENOMEM;
	*ret_room = out;
	return 0;
}

int peer_read_check_reuse(json_t *result, size_t ndisks, json_t **ret_reuse, char *err, size_t errlen)
{
	json_t *reuse = json_object_get(result, "reuse"), *b;
	size_t i;

	*ret_reuse = NULL;
	if (!reuse)
		return 0;
	if (!json_is_array(reuse) || json_array_size(reuse) != ndisks)
		goto bad;
	json_array_foreach(reuse, i, b)
		if (!json_is_boolean(b))
			goto bad;
	*ret_reuse = reuse;
	return 0;
bad:
	snprintf(err, errlen, "the destination's " OP_MIGRATE_CHECK " reply: reuse must be a list of %zu booleans, one "
		 "per disk", ndisks);
	return -EPROTO;
}

int peer_read_probe(json_t *args, struct peer_probe *ret, char *err, size_t errlen)
{
	static const char op[] = OP_MIGRATE_PROBE;
	json_t *ms = json_object_get(args, "milliseconds");

	if (args && !json_is_object(args)) {
		snprintf(err, errlen, "%s: the arguments must be a JSON object", op);
		return -EINVAL;
	}
	if (ms && !int_in(ms, PEER_PROBE_MS_MIN, PEER_PROBE_MS_MAX)) {
		snprintf(err, errlen, "%s: milliseconds must be an integer from %d to %d", op, PEER_PROBE_MS_MIN,
			 PEER_PROBE_MS_MAX);
		return -EINVAL;
	}
	ret->milliseconds = ms ? (uint32_t)json_integer_value(ms) : PEER_PROBE_MS_MAX;
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int peer_read_probe_reply(json_t *result, struct peer_probe_reply *ret, char *err, size_t errlen)
{
	static const char what[] = "the destination's " OP_MIGRATE_PROBE " reply";
	struct peer_probe_reply p = {0};
	const char *token = json_string_value(json_object_get(result, "token"));

	if (!int_in(json_object_get(result, "port"), 1, 65535)) {
		snprintf(err, errlen, "%s: port must be an integer from 1 to 65535", what);
		return -EPROTO;
	}
	if (!is_hex(token, 2 * PEER_PROBE_TOKEN_LEN)) {
		snprintf(err, errlen, "%s: token must be %d hex digits", what, 2 * PEER_PROBE_TOKEN_LEN);
		return -EPROTO;
	}
	if (!int_in(json_object_get(result, "milliseconds"), PEER_PROBE_MS_MIN, PEER_PROBE_MS_MAX)) {
		snprintf(err, errlen, "%s: milliseconds must be an integer from %d to %d", what, PEER_PROBE_MS_MIN,
			 PEER_PROBE_MS_MAX);
		return -EPROTO;
	}
	if (!int_in(json_object_get(result, "bytes"), 1, PEER_PROBE_BYTES_MAX)) {
		snprintf(err, errlen, "%s: bytes must be an integer from 1 to %u", what, PEER_PROBE_BYTES_MAX);
		return -EPROTO;
	}
	p.port = (int)json_integer_value(json_object_get(result, "port"));
	for (size_t i = 0; i < PEER_PROBE_TOKEN_LEN; i++)
		p.token[i] = (uint8_t)(hex_digit(token[2 * i]) << 4 | hex_digit(token[2 * i + 1]));
	p.milliseconds = (uint32_t)json_integer_value(json_object_get(result, "milliseconds"));
	p.bytes = (uint32_t)json_integer_value(json_object_get(result, "bytes"));
	*ret = p;
	return 0;
}

static uint64_t be64(const uint8_t *b)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

int peer_read_probe_result(const uint8_t *buf, size_t len, const struct peer_probe_reply *asked,
			   struct peer_probe_result *ret, char *err, size_t errlen)
{
	static const char what[] = "the destination's count of the link probe";
	uint64_t bytes, us, max_us = (uint64_t)asked->milliseconds * 1000 + PEER_PROBE_LATE_US;

	if (len != PEER_PROBE_RESULT_LEN) {
		snprintf(err, errlen, "%s: %zu bytes arrived, not %d", what, len, PEER_PROBE_RESULT_LEN);
		return -EPROTO;
	}
	bytes = be64(buf);
	us = be64(buf + 8);
	if (bytes > asked->bytes) {
		snprintf(err, errlen, "%s: more bytes (%llu) than its limit (%u)", what, (unsigned long long)bytes,
			 asked->bytes);
		return -EPROTO;
	}
	if (us < 1 || us > max_us) {
		snprintf(err, errlen, "%s: a time of %llu us, outside 1..%llu", what, (unsigned long long)us,
			 (unsigned long long)max_us);
		return -EPROTO;
	}
	ret->bytes = bytes;
	ret->microseconds = us;
	return 0;
}

int peer_read_kept_recorded(json_t *result, bool *ret, char *err, size_t errlen)
{
	json_t *v = json_object_get(result, "kept-copy-recorded");

	*ret = false;
	if (v && !json_is_boolean(v)) {
		snprintf(err, errlen, "the destination's " OP_MIGRATE_FINISH " reply: kept-copy-recorded must be true or "
			 "false");
		return -EPROTO;
	}
	*ret = json_is_true(v);
	return 0;
}

int peer_read_finish_reply(json_t *result, int64_t *ret_resumed_ms, char *err, size_t errlen)
{
	json_t *v = json_object_get(result, "resumed-ms");

	if (v && !int_in(v, 1, PEER_CLOCK_MS_MAX)) {
		snprintf(err, errlen, "the destination's " OP_MIGRATE_FINISH " reply: resumed-ms must be a time in ms "
			 "since 1970");
		return -EPROTO;
	}
	*ret_resumed_ms = v ? json_integer_value(v) : 0;
	return 0;
}
