/* libFuzzer target: every message one ferryd reads from another (peer_msg.c),
 * after the frame payload parser (proto.c). The payload is read as a request
 * {"op", "args"} whose args go through every request reader, and as a reply
 * whose "result" (or the object itself) goes through every reply reader and
 * the prepare reply's (move_endpoint.c); the raw bytes go through the reader
 * of the link probe's count. Whatever a reader accepts must hold
 * what its callers rely on; a broken promise traps. */
#include <arpa/inet.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "move_endpoint.h"
#include "peer_msg.h"
#include "proto.h"
#include "settings.h"
#include "util.h"
#include "vmconfig.h"

#define CHECK(x)                                                                                               \
	do {                                                                                                   \
		if (!(x))                                                                                      \
			__builtin_trap();                                                                      \
	} while (0)

/* A path the destination may create or open: clean, no ".." anywhere. */
static bool safe_path(const char *p)
{
	size_t n = p ? strlen(p) : 0;

	return path_is_clean(p) && !strstr(p, "/../") && !(n >= 3 && strcmp(p + n - 3, "/..") == 0) &&
	       n < PATH_MAX;
}

static bool hex64(const char *s)
{
	return s && strlen(s) == PEER_PSK_HEX_LEN && strspn(s, "0123456789abcdefABCDEF") == PEER_PSK_HEX_LEN;
}

static void config_invariants(json_t *cfg)
{
	json_t *d, *n;
	size_t i;

	CHECK(json_is_object(cfg));
	CHECK(name_is_valid(vmconfig_name(cfg), VM_NAME_MAX));
	CHECK(vmconfig_id(cfg) && strlen(vmconfig_id(cfg)) == 36);
	CHECK(vmconfig_machine_type((int)json_integer_value(json_object_get(cfg, "config-version"))));
	CHECK(json_integer_value(json_object_get(cfg, "memory-mib")) >= 16 &&
	      json_integer_value(json_object_get(cfg, "memory-mib")) <= 1024 * 1024);
	for (const char *const *k = (const char *const[]){"kernel", "initrd", "vm-path", NULL}; *k; k++) {
		json_t *v = json_object_get(cfg, *k);
		CHECK(!v || (safe_path(json_string_value(v)) && !strchr(json_string_value(v), ',')));
	}
	CHECK(json_array_size(json_object_get(cfg, "disks")) <= VM_MAX_DISKS);
	json_array_foreach(json_object_get(cfg, "disks"), i, d) {
		const char *fmt = json_string_value(json_object_get(d, "format"));
		const char *p = json_string_value(json_object_get(d, "path"));
		CHECK(safe_path(p) && !strchr(p, ','));
		CHECK(fmt && (!strcmp(fmt, "qcow2") || !strcmp(fmt, "raw")));
	}
	CHECK(json_array_size(json_object_get(cfg, "nics")) <= VM_MAX_NICS);
	json_array_foreach(json_object_get(cfg, "nics"), i, n)
		CHECK(name_is_valid(json_string_value(json_object_get(n, "switch")), 15));
}

static void check_invariants(const struct peer_check *c)
{
	json_t *d, *f;
	size_t i;

	config_invariants(c->config);
	CHECK(!c->storage_path || safe_path(c->storage_path));
	CHECK(!c->vm_path || safe_path(c->vm_path));
	/* the VM's directory is made where the checked request path says */
	CHECK(!json_object_get(c->config, "vm-path") ||
	      (c->vm_path && !strcmp(json_string_value(json_object_get(c->config, "vm-path")), c->vm_path)));
	CHECK(json_is_array(c->disks) && json_array_size(c->disks) <= VM_MAX_DISKS);
	CHECK(!c->resume_tokens || json_array_size(c->resume_tokens) == json_array_size(c->disks));
	json_array_foreach(c->disks, i, d) {
		json_int_t size = json_integer_value(json_object_get(d, "size"));
		json_int_t alloc = json_integer_value(json_object_get(d, "allocated"));
		CHECK(safe_path(json_string_value(json_object_get(d, "path"))));
		CHECK(json_is_integer(json_object_get(d, "size")) && size >= (c->include_storage ? 1 : 0) &&
		      size <= PEER_DISK_BYTES_MAX);
		CHECK(json_is_integer(json_object_get(d, "allocated")) && alloc >= 0 && alloc <= PEER_DISK_BYTES_MAX);
	}
	if (c->source) {
		const char *a = json_string_value(json_object_get(c->source, "accelerator"));
		CHECK(!json_object_get(c->source, "accelerator") || (a && (!strcmp(a, "kvm") || !strcmp(a, "tcg"))));
		json_array_foreach(json_object_get(c->source, "cpu-flags"), i, f)
			CHECK(json_is_string(f) && json_string_length(f) <= PEER_CPU_FLAG_LEN_MAX);
	}
}

static void requests(json_t *args)
{
	struct peer_prepare p;
	struct peer_probe probe;
	struct peer_check c;
	const char *name;
	json_t *cfg;
	char err[1024];
	int r;

	if ((r = peer_read_prepare(args, &p, err, sizeof(err))) == 0) {
		check_invariants(&p.check);
		/* the key line QEMU reads: IDENTITY:HEX, one line */
		CHECK(!p.encryption || (hex64(p.psk) && name_is_valid(p.psk_identity, PEER_PSK_IDENTITY_MAX)));
		CHECK(!p.psk || hex64(p.psk));
		CHECK(p.performance && setting_choice_ok("performance", p.performance));
		CHECK(p.channels >= 0 && p.channels <= PEER_CHANNELS_MAX);
		peer_check_clear(&p.check);
	} else {
		CHECK(err[0] && (r == -EINVAL || r == -EBADMSG || r == -ENOMEM));
	}
	if ((r = peer_read_check(args, &c, err, sizeof(err))) == 0) {
		check_invariants(&c);
		peer_check_clear(&c);
	} else {
		CHECK(err[0]);
	}
	if (peer_read_probe(args, &probe, err, sizeof(err)) == 0)
		CHECK(probe.milliseconds >= PEER_PROBE_MS_MIN && probe.milliseconds <= PEER_PROBE_MS_MAX);
	if (peer_read_name(args, OP_MIGRATE_FINISH, &name, err, sizeof(err)) == 0)
		CHECK(name_is_valid(name, VM_NAME_MAX) && !strchr(name, '/'));
	/* a token names a QEMU bitmap: hex digits only */
	if (peer_read_kept_token(args, OP_MIGRATE_FINISH, &name, err, sizeof(err)) == 0)
		CHECK(!name || (strlen(name) == PEER_RESUME_TOKEN_HEX &&
				strspn(name, "0123456789abcdef") == PEER_RESUME_TOKEN_HEX));
	/* the configuration alone, as the fuzzer wrote it */
	if (peer_read_config(args, &cfg, err, sizeof(err)) == 0) {
		config_invariants(cfg);
		json_decref(cfg);
	}
}

static void replies(json_t *result)
{
	struct peer_addresses a;
	struct peer_probe_reply probe;
	struct move_endpoint e;
	int64_t resumed;
	bool kept;
	json_t *problems, *p, *room, *reuse;
	char err[512];
	size_t i;

	if (peer_read_addresses_reply(result, &a, err, sizeof(err)) == 0) {
		unsigned char buf[16];
		CHECK(a.n <= PEER_ADDRESSES_MAX);
		CHECK(a.n == 0 ? a.first[0] == 0
			       : inet_pton(AF_INET, a.first, buf) == 1 || inet_pton(AF_INET6, a.first, buf) == 1);
		CHECK(a.clock_ms >= 0 && a.clock_ms <= PEER_CLOCK_MS_MAX);
	}
	if (peer_read_finish_reply(result, &resumed, err, sizeof(err)) == 0)
		CHECK(resumed >= 0 && resumed <= PEER_CLOCK_MS_MAX);
	if (peer_read_kept_recorded(result, &kept, err, sizeof(err)) == 0)
		CHECK(kept == json_is_true(json_object_get(result, "kept-copy-recorded")));
	if (peer_read_check_reply(result, &problems, err, sizeof(err)) == 0) {
		CHECK(json_array_size(problems) <= PEER_PROBLEMS_MAX);
		json_array_foreach(problems, i, p)
			CHECK(json_is_string(p) && json_string_length(p) <= PEER_PROBLEM_LEN_MAX);
	}
	if (peer_read_check_room(result, &room, err, sizeof(err)) == 0 && room) {
		json_t *d;
		CHECK(json_object_size(room) == 5 && json_array_size(json_object_get(room, "disks")) <= PEER_ROOM_DIRS_MAX);
		json_array_foreach(json_object_get(room, "disks"), i, d)
			CHECK(safe_path(json_string_value(json_object_get(d, "dir"))) &&
			      json_integer_value(json_object_get(d, "needed")) >= 0 &&
			      json_integer_value(json_object_get(d, "free")) >= 0);
		json_decref(room);
	}
	for (size_t n = 0; n <= VM_MAX_DISKS; n++)
		if (peer_read_check_reuse(result, n, &reuse, err, sizeof(err)) == 0 && reuse) {
			CHECK(json_array_size(reuse) == n);
			json_array_foreach(reuse, i, p)
				CHECK(json_is_boolean(p));
		}
	if (peer_read_probe_reply(result, &probe, err, sizeof(err)) == 0)
		CHECK(probe.port >= 1 && probe.port <= 65535 && probe.milliseconds >= PEER_PROBE_MS_MIN &&
		      probe.milliseconds <= PEER_PROBE_MS_MAX && probe.bytes >= 1 && probe.bytes <= PEER_PROBE_BYTES_MAX);
	for (int storage = 0; storage < 2; storage++)
		if (move_endpoint_from_reply(result, "10.78.0.12", storage, &e, err, sizeof(err)) == 0)
			CHECK(strncmp(e.uri, "tcp:10.78.0.12:", 15) == 0 && e.port >= 1 && e.port <= 65535 &&
			      (storage ? e.nbd_port >= 1 && e.nbd_port <= 65535 : e.nbd_port == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct peer_probe_reply probe_asked = {.port = 1, .milliseconds = 1000, .bytes = 1 << 20};
	struct peer_probe_result count;
	const char *op;
	json_t *msg = NULL, *args;
	char err[256];

	/* the count the destination writes back on the probe connection: raw bytes */
	if (peer_read_probe_result(data, size, &probe_asked, &count, err, sizeof(err)) == 0)
		CHECK(size == PEER_PROBE_RESULT_LEN && count.bytes <= probe_asked.bytes && count.microseconds >= 1 &&
		      count.microseconds <= probe_asked.milliseconds * 1000ull + PEER_PROBE_LATE_US);
	if (proto_parse(data, size, &msg, err, sizeof(err)) < 0)
		return 0;
	if (proto_check_request(msg, &op, &args, err, sizeof(err)) == 0 && args)
		requests(args);
	requests(msg);
	replies(json_object_get(msg, "result") ? json_object_get(msg, "result") : msg);
	json_decref(msg);
	return 0;
}
